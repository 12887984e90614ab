/* The public face of the picker and the runner (strata/compaction.h) for a
 * compactor in another process: a read-only version set with its current
 * version, and a job that owns the picked compaction and the edit the run
 * fills. The writer's own compaction thread uses compaction.h directly. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "compaction.h"
#include "iter.h"
#include "strata/compaction.h"
#include "version.h"

_Static_assert(STRATA_COMPACTION_LEVELS == STRATA_LEVELS, "one level count");

struct strata_tables {
    vset_t *vset;
    version_t *version; /* the one every count, info and pick reads */
    strata_table_options_t table_opts;
};

struct strata_compaction_cursor {
    compaction_cursor_t cursor;
};

struct strata_compaction_job {
    strata_tables_t *tables;
    compaction_t *c;
    edit_t edit;
    bool ran;
};

void strata_compaction_options_init(strata_compaction_options_t *opts)
{
    compaction_options_init(opts);
}

int strata_tables_open(const char *dir, const strata_table_options_t *table_opts,
                       strata_tables_t **tables_p, strata_error_t *err)
{
    *tables_p = NULL;
    strata_tables_t *t = calloc(1, sizeof *t);
    if (!t)
        return strata_error_set(err, STRATA_ENOMEM, "%s: out of memory", dir);
    if (table_opts)
        t->table_opts = *table_opts;
    else
        strata_table_options_init(&t->table_opts);
    int rc = vset_open_readonly(dir, NULL, &t->table_opts, NULL, &t->vset, err);
    if (rc) {
        free(t);
        return rc;
    }
    t->version = vset_current(t->vset);
    *tables_p = t;
    return 0;
}

void strata_tables_close(strata_tables_t **tables_p)
{
    strata_tables_t *t = *tables_p;
    if (!t)
        return;
    version_unref(&t->version);
    vset_close(&t->vset);
    free(t);
    *tables_p = NULL;
}

static bool level_ok(int level)
{
    return level >= 0 && level < STRATA_LEVELS;
}

size_t strata_tables_count(const strata_tables_t *tables, int level)
{
    return level_ok(level) ? tables->version->n_files[level] : 0;
}

static void info_of(const vfile_t *f, strata_table_info_t *out)
{
    *out = (strata_table_info_t){.number = f->number,
                                 .size = f->size,
                                 .entries = f->entries,
                                 .smallest = f->smallest,
                                 .smallest_len = f->smallest_len,
                                 .largest = f->largest,
                                 .largest_len = f->largest_len};
}

void strata_tables_info(const strata_tables_t *tables, int level, size_t i,
                        strata_table_info_t *out)
{
    info_of(tables->version->files[level][i], out);
}

size_t strata_tables_in_range(const strata_tables_t *tables, int level, const void *lo,
                              size_t lo_len, const void *hi, size_t hi_len, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < strata_tables_count(tables, level); i++) {
        const vfile_t *f = tables->version->files[level][i];
        if (lo && key_compare(f->largest, f->largest_len, lo, lo_len) < 0)
            continue;
        if (hi && key_compare(f->smallest, f->smallest_len, hi, hi_len) > 0)
            continue;
        n++;
        sum += f->size;
    }
    if (bytes)
        *bytes = sum;
    return n;
}

strata_compaction_cursor_t *strata_compaction_cursor_new(void)
{
    return calloc(1, sizeof(strata_compaction_cursor_t));
}

void strata_compaction_cursor_free(strata_compaction_cursor_t **cursor_p)
{
    if (!*cursor_p)
        return;
    compaction_cursor_clear(&(*cursor_p)->cursor);
    free(*cursor_p);
    *cursor_p = NULL;
}

/* Wraps a pick (or its absence) as a job. */
static int wrap(strata_tables_t *tables, int rc, compaction_t *c, strata_compaction_job_t **job_p)
{
    if (rc || !c)
        return rc;
    strata_compaction_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        compaction_free(&c);
        return STRATA_ENOMEM;
    }
    job->tables = tables;
    job->c = c;
    edit_init(&job->edit);
    *job_p = job;
    return 0;
}

int strata_compaction_job_pick(strata_tables_t *tables, const strata_compaction_options_t *opts,
                               strata_compaction_cursor_t *cursor, strata_compaction_job_t **job_p)
{
    *job_p = NULL;
    compaction_t *c = NULL;
    int rc = compaction_pick(tables->version, opts, &cursor->cursor, false, &c);
    return wrap(tables, rc, c, job_p);
}

int strata_compaction_job_pick_range(strata_tables_t *tables, int level, const void *lo,
                                     size_t lo_len, const void *hi, size_t hi_len, size_t max_files,
                                     strata_compaction_job_t **job_p)
{
    *job_p = NULL;
    if (!level_ok(level) || level == STRATA_LEVELS - 1)
        return STRATA_EINVAL;
    compaction_t *c = NULL;
    int rc = compaction_pick_range(tables->version, level, lo, lo_len, hi, hi_len, max_files, &c);
    return wrap(tables, rc, c, job_p);
}

int strata_compaction_job_level(const strata_compaction_job_t *job)
{
    return job->c->level;
}

size_t strata_compaction_job_inputs(const strata_compaction_job_t *job, int which)
{
    return which == 0 || which == 1 ? job->c->n_inputs[which] : 0;
}

void strata_compaction_job_input(const strata_compaction_job_t *job, int which, size_t i,
                                 strata_table_info_t *out)
{
    info_of(job->c->inputs[which][i], out);
}

uint64_t strata_compaction_job_progress(const strata_compaction_job_t *job)
{
    return atomic_load(&job->c->progress_entries);
}

int strata_compaction_job_run(strata_compaction_job_t *job, const strata_compaction_options_t *opts,
                              const char *output_dir, const char *output_prefix,
                              uint64_t smallest_snapshot, strata_compaction_stats_t *stats,
                              strata_error_t *err)
{
    if (job->ran)
        return strata_error_set(err, STRATA_EINVAL, "a compaction job runs once");
    if (!output_dir || !output_prefix)
        return strata_error_set(err, STRATA_EINVAL,
                                "a compaction job needs an output directory and prefix");
    job->ran = true;
    job->c->output_dir = output_dir;
    job->c->output_prefix = output_prefix;
    strata_compaction_stats_t local;
    if (!stats)
        stats = &local;
    int rc = compaction_run(job->tables->vset, &job->tables->table_opts, opts, job->c,
                            smallest_snapshot, &job->edit, stats, err);
    if (rc == 0)
        atomic_store(&job->c->progress_entries, stats->entries_in);
    return rc;
}

size_t strata_compaction_job_outputs(const strata_compaction_job_t *job)
{
    return job->edit.n_adds;
}

uint64_t strata_compaction_job_output(const strata_compaction_job_t *job, size_t i)
{
    return job->edit.adds[i].file->number;
}

void strata_compaction_job_free(strata_compaction_job_t **job_p)
{
    strata_compaction_job_t *job = *job_p;
    if (!job)
        return;
    edit_clear(&job->edit);
    compaction_free(&job->c);
    free(job);
    *job_p = NULL;
}
