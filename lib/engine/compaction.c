/* Leveled compaction: picking by score with a round-robin cursor per level,
 * and the merge that writes the outputs. All of L0 is compacted at once,
 * because L0 files overlap: leaving an older one behind would let its stale
 * versions shadow newer ones that moved down to L1. */
#define _GNU_SOURCE
#include "compaction.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coding.h"
#include "iter.h"

void compaction_options_init(compaction_options_t *opts)
{
    opts->l0_trigger = 4;
    opts->level1_bytes = (uint64_t)64 << 20;
    opts->level_ratio = 10;
    opts->target_file_bytes = (uint64_t)8 << 20;
}

uint64_t compaction_level_limit(const compaction_options_t *opts, int level)
{
    uint64_t limit = opts->level1_bytes;
    for (int l = 1; l < level; l++)
        limit *= opts->level_ratio;
    return limit;
}

void compaction_cursor_clear(compaction_cursor_t *cursor)
{
    for (int level = 0; level < STRATA_LEVELS; level++) {
        free(cursor->key[level]);
        cursor->key[level] = NULL;
        cursor->key_len[level] = 0;
    }
}

static double level_score(const version_t *v, const compaction_options_t *opts, int level)
{
    if (level == 0)
        return (double)v->n_files[0] / (double)opts->l0_trigger;
    return (double)version_level_bytes(v, level) / (double)compaction_level_limit(opts, level);
}

double compaction_score(const version_t *version, const compaction_options_t *opts)
{
    double best = 0;
    /* The bottom level has nowhere to go, so it never scores. */
    for (int level = 0; level < STRATA_LEVELS - 1; level++) {
        double s = level_score(version, opts, level);
        if (s > best)
            best = s;
    }
    return best;
}

static bool overlaps(const vfile_t *f, const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                     size_t hi_len)
{
    return key_compare(f->largest, f->largest_len, lo, lo_len) >= 0 &&
           key_compare(f->smallest, f->smallest_len, hi, hi_len) <= 0;
}

static int push_file(compaction_t *c, int which, vfile_t *f)
{
    vfile_t **grown =
        realloc(c->inputs[which], (c->n_inputs[which] + 1) * sizeof *c->inputs[which]);
    if (!grown)
        return STRATA_ENOMEM;
    c->inputs[which] = grown;
    atomic_fetch_add(&f->refs, 1);
    grown[c->n_inputs[which]++] = f;
    return 0;
}

/* The user-key range [lo, hi] covered by a set of files. */
static void range_of(vfile_t **files, size_t n, const uint8_t **lo, size_t *lo_len,
                     const uint8_t **hi, size_t *hi_len)
{
    *lo = files[0]->smallest;
    *lo_len = files[0]->smallest_len;
    *hi = files[0]->largest;
    *hi_len = files[0]->largest_len;
    for (size_t i = 1; i < n; i++) {
        if (key_compare(files[i]->smallest, files[i]->smallest_len, *lo, *lo_len) < 0) {
            *lo = files[i]->smallest;
            *lo_len = files[i]->smallest_len;
        }
        if (key_compare(files[i]->largest, files[i]->largest_len, *hi, *hi_len) > 0) {
            *hi = files[i]->largest;
            *hi_len = files[i]->largest_len;
        }
    }
}

/* Adds the level + 1 files that c's level inputs overlap, decides whether
 * c is the bottom for its keys, and moves cursor (may be NULL) past them. */
static int complete_pick(version_t *v, compaction_t *c, compaction_cursor_t *cursor)
{
    int level = c->level;
    int rc = 0;
    const uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    range_of(c->inputs[0], c->n_inputs[0], &lo, &lo_len, &hi, &hi_len);
    for (size_t i = 0; i < v->n_files[level + 1] && rc == 0; i++)
        if (overlaps(v->files[level + 1][i], lo, lo_len, hi, hi_len))
            rc = push_file(c, 1, v->files[level + 1][i]);
    if (rc == 0) {
        /* Tombstones may go only where no deeper level could hold an older
         * version of their key: checked over the range of every input, since
         * the level+1 inputs can reach past the level's own. */
        const uint8_t *all_lo = lo, *all_hi = hi;
        size_t all_lo_len = lo_len, all_hi_len = hi_len;
        if (c->n_inputs[1]) {
            const uint8_t *lo1, *hi1;
            size_t lo1_len, hi1_len;
            range_of(c->inputs[1], c->n_inputs[1], &lo1, &lo1_len, &hi1, &hi1_len);
            if (key_compare(lo1, lo1_len, all_lo, all_lo_len) < 0) {
                all_lo = lo1;
                all_lo_len = lo1_len;
            }
            if (key_compare(hi1, hi1_len, all_hi, all_hi_len) > 0) {
                all_hi = hi1;
                all_hi_len = hi1_len;
            }
        }
        c->bottom = true;
        for (int l = level + 2; l < STRATA_LEVELS && c->bottom; l++)
            for (size_t i = 0; i < v->n_files[l] && c->bottom; i++)
                c->bottom = !overlaps(v->files[l][i], all_lo, all_lo_len, all_hi, all_hi_len);
        if (level > 0 && cursor) {
            uint8_t *key = dup_bytes(hi, hi_len);
            if (key) {
                free(cursor->key[level]);
                cursor->key[level] = key;
                cursor->key_len[level] = hi_len;
            }
        }
    }
    return rc;
}

int compaction_pick(version_t *v, const compaction_options_t *opts, compaction_cursor_t *cursor,
                    bool force, compaction_t **out)
{
    *out = NULL;
    int level = -1;
    double best = 0;
    for (int l = 0; l < STRATA_LEVELS - 1; l++) {
        double s = level_score(v, opts, l);
        if (s >= 1.0 && s > best) {
            best = s;
            level = l;
        }
    }
    if (level < 0 && force && v->n_files[0] > 0)
        level = 0;
    if (level < 0)
        return 0;
    compaction_t *c = calloc(1, sizeof *c);
    if (!c)
        return STRATA_ENOMEM;
    c->level = level;
    c->score = best;
    atomic_fetch_add(&v->refs, 1);
    c->version = v;
    int rc = 0;
    if (level == 0) {
        for (size_t i = 0; i < v->n_files[0] && rc == 0; i++)
            rc = push_file(c, 0, v->files[0][i]);
    } else {
        /* Round robin: the first file starting after the cursor, so every
         * key range of the level gets its turn. */
        size_t pick = 0;
        if (cursor->key[level]) {
            while (pick < v->n_files[level] &&
                   key_compare(v->files[level][pick]->smallest, v->files[level][pick]->smallest_len,
                               cursor->key[level], cursor->key_len[level]) <= 0)
                pick++;
            if (pick == v->n_files[level])
                pick = 0;
        }
        rc = push_file(c, 0, v->files[level][pick]);
    }
    if (rc == 0)
        rc = complete_pick(v, c, cursor);
    if (rc) {
        compaction_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

int compaction_pick_range(version_t *v, int level, const uint8_t *lo, size_t lo_len,
                          const uint8_t *hi, size_t hi_len, size_t max_files, compaction_t **out)
{
    *out = NULL;
    if (level < 0 || level >= STRATA_LEVELS - 1)
        return STRATA_EINVAL;
    compaction_t *c = calloc(1, sizeof *c);
    if (!c)
        return STRATA_ENOMEM;
    c->level = level;
    atomic_fetch_add(&v->refs, 1);
    c->version = v;
    int rc = 0;
    for (size_t i = 0; i < v->n_files[level] && rc == 0; i++) {
        vfile_t *f = v->files[level][i];
        /* L0 goes whole whatever the range: see the top of this file. */
        bool wanted =
            level == 0 || ((!lo || key_compare(f->largest, f->largest_len, lo, lo_len) >= 0) &&
                           (!hi || key_compare(f->smallest, f->smallest_len, hi, hi_len) <= 0));
        if (wanted && (level == 0 || c->n_inputs[0] < max_files))
            rc = push_file(c, 0, f);
    }
    if (rc == 0 && c->n_inputs[0] == 0) {
        compaction_free(&c);
        return 0;
    }
    if (rc == 0)
        rc = complete_pick(v, c, NULL);
    if (rc) {
        compaction_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void compaction_free(compaction_t **c_p)
{
    compaction_t *c = *c_p;
    *c_p = NULL;
    if (!c)
        return;
    for (int w = 0; w < 2; w++) {
        for (size_t i = 0; i < c->n_inputs[w]; i++)
            vfile_unref(&c->inputs[w][i]);
        free(c->inputs[w]);
    }
    version_unref(&c->version);
    free(c);
}

/* ---- running ----------------------------------------------------------- */

typedef struct {
    vset_t *vset;
    const strata_table_options_t *table_opts;
    edit_t *edit;
    int output_level;
    strata_table_builder_t *builder;
    uint64_t number;
    uint64_t *written; /* numbers of finished outputs, for cleanup on failure */
    size_t n_written;
    compaction_stats_t *stats;
    compaction_t *c;
} outputs_t;

static char *output_path(const outputs_t *o, uint64_t number)
{
    if (!o->c->output_dir)
        return vset_table_path(o->vset, number);
    char *path = NULL;
    if (asprintf(&path, "%s/%s-%" PRIu64 ".sst", o->c->output_dir, o->c->output_prefix, number) < 0)
        return NULL;
    return path;
}

static int output_open(outputs_t *o, strata_error_t *err)
{
    o->number = o->c->output_dir ? ++o->c->output_count : vset_new_file_number(o->vset);
    char *path = output_path(o, o->number);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = strata_table_builder_new(o->table_opts, path, &o->builder, err);
    free(path);
    return rc;
}

static int output_finish(outputs_t *o, strata_error_t *err)
{
    strata_table_props_t props;
    memset(&props, 0, sizeof props);
    int rc = strata_table_builder_finish(&o->builder, &props, err);
    if (rc)
        return rc;
    uint64_t *grown = realloc(o->written, (o->n_written + 1) * sizeof *grown);
    vfile_t *file = vfile_new(o->number, &props);
    o->stats->bytes_written += props.file_size;
    o->stats->tables_written++;
    strata_table_props_clear(&props);
    if (grown) {
        o->written = grown;
        o->written[o->n_written++] = o->number;
    }
    if (!grown || !file || edit_add(o->edit, o->output_level, file)) {
        vfile_unref(&file);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    return 0;
}

int compaction_run(vset_t *vset, const strata_table_options_t *table_opts,
                   const compaction_options_t *opts, compaction_t *c, uint64_t smallest_snapshot,
                   edit_t *edit, compaction_stats_t *stats, strata_error_t *err)
{
    size_t n = c->n_inputs[0] + c->n_inputs[1];
    iter_t **children = calloc(n ? n : 1, sizeof *children);
    if (!children)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    size_t k = 0;
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < c->n_inputs[w]; i++) {
            stats->bytes_read += c->inputs[w][i]->size;
            children[k++] = iter_file(c->inputs[w][i]);
        }
    for (size_t i = 0; i < k; i++)
        if (!children[i]) {
            for (size_t j = 0; j < k; j++)
                iter_destroy(&children[j]);
            free(children);
            return strata_error_set(err, STRATA_ENOMEM, "out of memory");
        }
    iter_t *in = iter_merge(children, k);
    free(children);
    if (!in)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");

    outputs_t o = {
        .vset = vset,
        .table_opts = table_opts,
        .edit = edit,
        .output_level = c->level + 1,
        .stats = stats,
        .c = c,
    };
    uint8_t *current = NULL; /* user key of the previous entry */
    size_t current_len = 0, current_cap = 0;
    bool have_current = false;
    uint64_t last_seq_for_key = UINT64_MAX;
    int rc = 0;
    for (iter_seek_first(in); rc == 0 && iter_valid(in); iter_next(in)) {
        size_t key_len, value_len;
        const void *key = iter_key(in, &key_len);
        uint64_t seq = iter_seq(in);
        strata_value_type_t type = iter_type(in);
        stats->entries_in++;
        if ((stats->entries_in & 1023) == 0)
            atomic_store_explicit(&c->progress_entries, stats->entries_in, memory_order_relaxed);
        bool new_key = !have_current || key_compare(key, key_len, current, current_len) != 0;
        if (new_key) {
            /* Outputs split only between user keys, so levels stay disjoint
             * by user key. */
            if (o.builder && strata_table_builder_size(o.builder) >= opts->target_file_bytes)
                rc = output_finish(&o, err);
            if (rc)
                break;
            if (key_len > current_cap) {
                uint8_t *grown = realloc(current, key_len);
                if (!grown) {
                    rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
                    break;
                }
                current = grown;
                current_cap = key_len;
            }
            if (key_len)
                memcpy(current, key, key_len);
            current_len = key_len;
            have_current = true;
            last_seq_for_key = UINT64_MAX;
        }
        bool drop = false;
        if (last_seq_for_key <= smallest_snapshot) {
            /* A newer entry of this key is visible to every snapshot. */
            drop = true;
        } else if (type == STRATA_VALUE_DELETE && seq <= smallest_snapshot && c->bottom) {
            /* Nothing older remains below for the tombstone to hide; any
             * older entries of this key in the inputs are dropped by the
             * rule above. */
            drop = true;
        }
        last_seq_for_key = seq;
        if (drop) {
            stats->entries_dropped++;
            continue;
        }
        if (!o.builder && (rc = output_open(&o, err)) != 0)
            break;
        const void *value = iter_value(in, &value_len);
        rc = strata_table_builder_add(o.builder, key, key_len, seq, type, value, value_len, err);
    }
    if (rc == 0)
        rc = iter_status(in, err);
    if (rc == 0 && o.builder)
        rc = output_finish(&o, err);
    if (rc) {
        strata_table_builder_abandon(&o.builder);
        for (size_t i = 0; i < o.n_written; i++) {
            char *path = output_path(&o, o.written[i]);
            if (path) {
                strata_io_t *io = table_opts->io ? table_opts->io : strata_io_posix();
                io->unlink(io, path);
            }
            free(path);
        }
    } else {
        for (int w = 0; w < 2 && rc == 0; w++)
            for (size_t i = 0; i < c->n_inputs[w] && rc == 0; i++)
                rc = edit_delete(edit, w == 0 ? c->level : c->level + 1, c->inputs[w][i]->number);
        if (rc)
            rc = strata_error_set(err, rc, "out of memory");
    }
    free(current);
    free(o.written);
    iter_destroy(&in);
    return rc;
}
