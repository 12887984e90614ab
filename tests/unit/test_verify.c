/* strata_db_verify and strata_wal_verify: every kind of damage is found
 * and named by file and offset, a torn tail or an orphan is only a
 * warning, nothing in the directory ever changes, and the WAL check says
 * exactly what open would say. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata/crc.h"
#include "strata/db.h"
#include "strata/memtable.h"
#include "strata/verify.h"
#include "strata/wal.h"
#include "support.h"

/* Three tables of TABLE_PUTS each, then UNFLUSHED_PUTS only in the WAL.
 * Entries are 80 bytes, so 16 KiB segments of 204 entries leave at least
 * three behind (seqs 409-612, 613-816, 817-900 once the flushes have
 * deleted the older ones); the newest holds 84 entries. */
#define TABLES            3
#define TABLE_PUTS        200
#define UNFLUSHED_PUTS    300
#define TOTAL_PUTS        (TABLES * TABLE_PUTS + UNFLUSHED_PUTS)
#define WAL_SEGMENT_BYTES 16384
#define WAL_HEADER        64

/* ---- building a data directory ---------------------------------------- */

static strata_db_t *open_db(const char *dir, size_t memtable_bytes, bool auto_compaction)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.durability = STRATA_ASYNC; /* close syncs; the tests need no per-put fsync */
    opts.wal_segment_bytes = WAL_SEGMENT_BYTES;
    opts.disable_auto_compaction = !auto_compaction;
    if (memtable_bytes)
        opts.memtable_bytes = memtable_bytes;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open %s: %s", dir, err.msg);
    return db;
}

static void put_range(strata_db_t *db, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "key-%06d", i % 1000000);
        snprintf(value, sizeof value, "value-%024d", i);
        strata_error_t err;
        ck_assert_msg(strata_db_put(db, NULL, key, 10, value, 30, NULL, &err) == 0, "put: %s",
                      err.msg);
    }
}

static char *make_db(void)
{
    char *dir = ts_tempdir("verify");
    strata_db_t *db = open_db(dir, 0, false);
    for (int t = 0; t < TABLES; t++) {
        put_range(db, t * TABLE_PUTS + 1, (t + 1) * TABLE_PUTS);
        ck_assert_int_eq(strata_db_flush(db, NULL), 0);
    }
    put_range(db, TABLES * TABLE_PUTS + 1, TOTAL_PUTS);
    strata_error_t err;
    ck_assert_msg(strata_db_close(&db, &err) == 0, "close: %s", err.msg);
    return dir;
}

/* ---- looking at and damaging files ------------------------------------ */

/* Sorted names in dir ending in suffix. */
static int list_names(const char *dir, const char *suffix, char names[][64], int max)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    int count = 0;
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        size_t len = strlen(name), slen = strlen(suffix);
        if (len > slen && strcmp(name + len - slen, suffix) == 0 && count < max)
            snprintf(names[count++], 64, "%.63s", name);
        free(entries[i]);
    }
    free(entries);
    return count;
}

/* "<dir>/wal/<the index-th segment>"; -1 is the newest. */
static char *segment_path(const char *dir, int index, char *name_out)
{
    char names[16][64];
    char *wal = ts_path(dir, "wal");
    int n = list_names(wal, ".wal", names, 16);
    ck_assert_int_gt(n, 0);
    int i = index < 0 ? n + index : index;
    ck_assert_int_lt(i, n);
    char *path = ts_path(wal, names[i]);
    if (name_out)
        snprintf(name_out, 64, "wal/%.59s", names[i]);
    free(wal);
    return path;
}

static char *table_path(const char *dir, int index, char *name_out)
{
    char names[16][64];
    int n = list_names(dir, ".sst", names, 16);
    ck_assert_int_gt(n, index);
    snprintf(name_out, 64, "%s", names[index]);
    return ts_path(dir, names[index]);
}

/* Where the k-th entry of a segment starts, walking the payload lengths. */
static uint64_t entry_offset(const char *segment, int k)
{
    uint64_t off = WAL_HEADER;
    for (int i = 0; i < k; i++) {
        uint32_t payload;
        ts_file_read_at(segment, off + 4, &payload, 4);
        off += 40 + payload;
    }
    return off;
}

/* The db's log as a crash would leave it (lib/log/wal.md, "The log state"). */
static void as_crashed(const char *dir)
{
    char *wal = ts_path(dir, "wal");
    ts_wal_as_crashed(wal);
    free(wal);
}

static void flip(const char *path, uint64_t off)
{
    uint8_t b;
    ts_file_read_at(path, off, &b, 1);
    b ^= 0x40;
    ts_file_write_at(path, off, &b, 1);
}

static void copy_file(const char *from, const char *to)
{
    uint64_t size = ts_file_size(from);
    uint8_t *buf = malloc(size);
    ts_file_read_at(from, 0, buf, size);
    FILE *f = fopen(to, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, size, f), size);
    fclose(f);
    free(buf);
}

/* Every file and directory under dir: name, type, size, mtime and a CRC of
 * the content, one line each, in name order. */
static void snapshot_tree(const char *dir, const char *rel, char **out, size_t *len)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            free(entries[i]);
            continue;
        }
        char *path = ts_path(dir, name);
        char *child = NULL;
        ck_assert_int_ge(asprintf(&child, "%s/%s", rel, name), 0);
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        uint32_t crc = 0;
        if (S_ISREG(st.st_mode) && st.st_size > 0) {
            uint8_t *buf = malloc((size_t)st.st_size);
            ts_file_read_at(path, 0, buf, (size_t)st.st_size);
            crc = strata_crc32c(0, buf, (size_t)st.st_size);
            free(buf);
        }
        char *line = NULL;
        int line_len =
            asprintf(&line, "%s mode=%o size=%lld mtime=%lld.%09ld crc=%08x\n", child, st.st_mode,
                     (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, crc);
        ck_assert_int_ge(line_len, 0);
        *out = realloc(*out, *len + (size_t)line_len + 1);
        memcpy(*out + *len, line, (size_t)line_len + 1);
        *len += (size_t)line_len;
        free(line);
        if (S_ISDIR(st.st_mode))
            snapshot_tree(path, child, out, len);
        free(child);
        free(path);
        free(entries[i]);
    }
    free(entries);
}

static char *snapshot(const char *dir)
{
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_ge(
        asprintf(&out, ". mtime=%lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec),
        0);
    len = strlen(out);
    snapshot_tree(dir, ".", &out, &len);
    return out;
}

/* ---- collecting findings ---------------------------------------------- */

typedef struct {
    char file[64];
    char kind[16];
    char message[512];
    uint64_t offset;
    bool has_offset;
    bool fatal;
} finding_t;

typedef struct {
    int n;
    finding_t f[32];
} findings_t;

static void collect(void *arg, const strata_verify_problem_t *p)
{
    findings_t *fs = arg;
    ck_assert_ptr_nonnull(p->file);
    ck_assert_ptr_nonnull(p->kind);
    ck_assert_ptr_nonnull(p->message);
    ck_assert_int_lt(fs->n, 32);
    finding_t *f = &fs->f[fs->n++];
    snprintf(f->file, sizeof f->file, "%s", p->file);
    snprintf(f->kind, sizeof f->kind, "%s", p->kind);
    snprintf(f->message, sizeof f->message, "%s", p->message);
    f->offset = p->offset;
    f->has_offset = p->has_offset;
    f->fatal = p->fatal;
}

static const finding_t *find(const findings_t *fs, const char *file, bool fatal)
{
    for (int i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].file, file) == 0 && fs->f[i].fatal == fatal)
            return &fs->f[i];
    return NULL;
}

static void dump(const findings_t *fs)
{
    for (int i = 0; i < fs->n; i++)
        fprintf(stderr, "  %s %s %s: %s\n", fs->f[i].fatal ? "problem" : "warning", fs->f[i].kind,
                fs->f[i].file, fs->f[i].message);
}

/* Runs verify, asserting the directory is unchanged by it. */
static int verify(const char *dir, findings_t *fs, strata_verify_stats_t *stats,
                  strata_error_t *err)
{
    memset(fs, 0, sizeof *fs);
    char *before = snapshot(dir);
    int rc = strata_db_verify(dir, collect, fs, stats, err);
    char *after = snapshot(dir);
    ck_assert_msg(strcmp(before, after) == 0, "verify changed %s:\nbefore\n%s\nafter\n%s", dir,
                  before, after);
    free(before);
    free(after);
    ck_assert_uint_eq(stats->problems + stats->warnings, (uint64_t)fs->n);
    return rc;
}

static void remove_db(char *dir)
{
    ts_rmtree(dir);
    free(dir);
}

/* ---- the data directory ----------------------------------------------- */

START_TEST(a_clean_directory_verifies_with_plausible_stats)
{
    char *dir = make_db();
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    int rc = verify(dir, &fs, &stats, &err);
    dump(&fs);
    ck_assert_msg(rc == 0, "verify: %s", err.msg);
    ck_assert_int_eq(fs.n, 0);
    ck_assert_uint_eq(stats.tables, TABLES);
    ck_assert_uint_gt(stats.table_bytes, 0);
    ck_assert_uint_eq(stats.manifest_files, 1);
    ck_assert_uint_ge(stats.wal_segments, 3);
    ck_assert_uint_ge(stats.wal_entries, UNFLUSHED_PUTS);
    ck_assert_uint_le(stats.wal_entries, TOTAL_PUTS);
    ck_assert_uint_gt(stats.wal_bytes, stats.wal_entries * 80);
    ck_assert_uint_eq(stats.last_seq, TOTAL_PUTS);
    remove_db(dir);
}
END_TEST

START_TEST(a_flipped_byte_in_a_table_data_block_is_a_problem_naming_it)
{
    char *dir = make_db();
    char name[64];
    char *path = table_path(dir, 1, name);
    flip(path, 100); /* inside the first data block, which starts at 0 */
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_int_eq(fs.n, 1);
    const finding_t *f = find(&fs, name, true);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->kind, "sstable");
    ck_assert(f->has_offset);
    ck_assert_uint_eq(f->offset, 0);
    ck_assert_msg(strstr(f->message, name) && strstr(f->message, "offset 0:"), "%s", f->message);
    ck_assert_str_eq(err.msg, f->message);
    ck_assert_uint_eq(stats.tables, TABLES); /* the others were still checked */
    free(path);
    remove_db(dir);
}
END_TEST

START_TEST(a_flipped_byte_mid_log_is_a_problem_naming_segment_and_offset)
{
    char *dir = make_db();
    char name[64];
    char *newest = segment_path(dir, -1, name);
    uint64_t off = entry_offset(newest, 10); /* 84 entries in it: intact ones follow */
    flip(newest, off + 50);
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_int_eq(fs.n, 1);
    const finding_t *f = find(&fs, name, true);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->kind, "wal");
    ck_assert(f->has_offset);
    ck_assert_uint_eq(f->offset, off);
    char expect[128];
    snprintf(expect, sizeof expect, "%s offset %" PRIu64 ": bad crc in the middle of the log", name,
             off);
    ck_assert_msg(strstr(f->message, expect), "'%s' lacks '%s'", f->message, expect);
    free(newest);
    remove_db(dir);
}
END_TEST

START_TEST(a_torn_tail_in_the_newest_segment_is_only_a_warning)
{
    char *dir = make_db();
    as_crashed(dir);
    char name[64];
    char *newest = segment_path(dir, -1, name);
    uint64_t size = ts_file_size(newest);
    ts_file_truncate(newest, size - 10);
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    int rc = verify(dir, &fs, &stats, &err);
    dump(&fs);
    ck_assert_msg(rc == 0, "verify: %s", err.msg);
    ck_assert_uint_eq(stats.problems, 0);
    ck_assert_uint_eq(stats.warnings, 1);
    const finding_t *f = find(&fs, name, false);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->kind, "wal");
    ck_assert_uint_eq(f->offset, size - 80); /* where open would cut */
    ck_assert_msg(strstr(f->message, "torn payload"), "%s", f->message);
    ck_assert_uint_eq(stats.last_seq, TOTAL_PUTS - 1);
    ck_assert_uint_eq(ts_file_size(newest), size - 10);
    free(newest);
    remove_db(dir);
}
END_TEST

START_TEST(tail_damage_after_a_clean_stop_is_loss_not_a_torn_tail)
{
    char *dir = make_db(); /* closed cleanly: LOGSTATE records seq 900 as durable */
    char name[64];
    char *newest = segment_path(dir, -1, name);
    uint64_t size = ts_file_size(newest);
    ts_file_truncate(newest, size - 10);
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_uint_eq(stats.problems, 1);
    const finding_t *f = find(&fs, name, true);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(strstr(f->message, "records seq 900 as durable") &&
                      strstr(f->message, "not a torn tail"),
                  "%s", f->message);
    /* open refuses it the same way, and changes nothing. */
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    strata_db_t *db = NULL;
    ck_assert_int_eq(strata_db_open(&opts, &db, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "not a torn tail"), "%s", err.msg);
    ck_assert_uint_eq(ts_file_size(newest), size - 10);
    free(newest);
    remove_db(dir);
}
END_TEST

START_TEST(a_missing_newest_segment_is_loss_named_by_open_and_verify)
{
    for (int crashed = 0; crashed < 2; crashed++) {
        char *dir = make_db();
        if (crashed)
            as_crashed(dir);
        char name[64];
        char *newest = segment_path(dir, -1, name);
        ck_assert_int_eq(unlink(newest), 0);
        findings_t fs;
        strata_verify_stats_t stats;
        strata_error_t err;
        ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
        dump(&fs);
        const finding_t *f = find(&fs, name, true);
        ck_assert_ptr_nonnull(f);
        ck_assert_msg(strstr(f->message, "missing") && strstr(f->message, "LOGSTATE"), "%s",
                      f->message);
        strata_db_options_t opts;
        strata_db_options_init(&opts);
        opts.dir = dir;
        strata_db_t *db = NULL;
        ck_assert_int_eq(strata_db_open(&opts, &db, &err), STRATA_ECORRUPT);
        ck_assert_msg(strstr(err.msg, name + 4) && strstr(err.msg, "missing"), "%s", err.msg);
        free(newest);
        remove_db(dir);
    }
}
END_TEST

/* Pages of `limit` keys from the start, each on a fresh iterator seeked to
 * where the last stopped, as the writer serves a paged scan. Returns the
 * status of the page that ended the scan; *seen counts the keys returned
 * before it, which must be the first *seen keys in order. */
static int scan_pages(strata_db_t *db, size_t limit, size_t *seen, strata_error_t *err)
{
    *seen = 0;
    char cursor[16] = "";
    for (;;) {
        strata_db_iter_t *it = strata_db_iter_new(db, NULL);
        ck_assert_ptr_nonnull(it);
        if (cursor[0])
            strata_db_iter_seek(it, cursor, strlen(cursor));
        else
            strata_db_iter_seek_first(it);
        size_t n = 0;
        for (; n < limit && strata_db_iter_valid(it); strata_db_iter_next(it), n++) {
            size_t len;
            const char *key = strata_db_iter_key(it, &len);
            char want[16];
            snprintf(want, sizeof want, "key-%06zu", *seen + 1);
            ck_assert_msg(len == 10 && !memcmp(key, want, 10), "key %zu is %.*s, not %s", *seen + 1,
                          (int)len, key, want);
            (*seen)++;
        }
        bool more = strata_db_iter_valid(it);
        if (more) {
            size_t len;
            const char *key = strata_db_iter_key(it, &len);
            snprintf(cursor, sizeof cursor, "%.*s", (int)len, key);
        }
        int rc = strata_db_iter_status(it, err);
        strata_db_iter_destroy(&it);
        if (rc || !more)
            return rc;
    }
}

START_TEST(a_paged_scan_stops_with_an_error_at_a_damaged_or_missing_table)
{
    for (int missing = 0; missing < 2; missing++) {
        char *dir = make_db();
        strata_db_t *db = open_db(dir, 0, false);
        size_t seen = 0;
        strata_error_t err;
        ck_assert_int_eq(scan_pages(db, 50, &seen, &err), 0);
        ck_assert_uint_eq(seen, TOTAL_PUTS);
        ck_assert_int_eq(strata_db_close(&db, NULL), 0);

        /* The middle table (keys TABLE_PUTS+1 .. 2*TABLE_PUTS): a byte
         * flipped in its first data block, or the file gone. */
        char name[64];
        char *path = table_path(dir, 1, name);
        if (missing)
            ck_assert_int_eq(unlink(path), 0);
        else
            flip(path, 100);
        strata_db_options_t opts;
        strata_db_options_init(&opts);
        opts.dir = dir;
        opts.disable_auto_compaction = true;
        int rc = strata_db_open(&opts, &db, &err);
        if (rc) {
            /* Refusing to open is also an answer that names the damage. */
            ck_assert_msg(strstr(err.msg, name), "%s", err.msg);
        } else {
            rc = scan_pages(db, 50, &seen, &err);
            ck_assert_msg(rc == STRATA_ECORRUPT || rc == STRATA_EIO || rc == STRATA_ENOTFOUND,
                          "%s table: the scan ended with %d after %zu of %d keys",
                          missing ? "a missing" : "a damaged", rc, seen, TOTAL_PUTS);
            ck_assert_uint_lt(seen, TOTAL_PUTS);
            ck_assert_msg(strstr(err.msg, name), "the error does not name %s: %s", name, err.msg);
            ck_assert_int_eq(strata_db_close(&db, NULL), 0);
        }
        free(path);
        remove_db(dir);
    }
}
END_TEST

START_TEST(a_missing_referenced_table_is_a_problem_naming_it)
{
    char *dir = make_db();
    char name[64];
    char *path = table_path(dir, 0, name);
    ck_assert_int_eq(unlink(path), 0);
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_int_eq(fs.n, 1);
    const finding_t *f = find(&fs, name, true);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->kind, "sstable");
    ck_assert(!f->has_offset);
    ck_assert_msg(strstr(f->message, "missing"), "%s", f->message);
    ck_assert_uint_eq(stats.tables, TABLES - 1);
    free(path);
    remove_db(dir);
}
END_TEST

START_TEST(a_log_that_starts_after_the_tables_stop_is_a_problem)
{
    char *dir = make_db();
    char name[64];
    char *oldest = segment_path(dir, 0, name);
    ck_assert_int_eq(unlink(oldest), 0); /* it held the seqs right after the tables */
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_int_eq(fs.n, 1);
    const finding_t *f = find(&fs, "wal", true);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(strstr(f->message, "seqs 601.."), "%s", f->message);
    ck_assert_uint_eq(stats.last_seq, TOTAL_PUTS);
    free(oldest);
    remove_db(dir);
}
END_TEST

START_TEST(a_corrupt_manifest_is_a_problem_naming_it_and_tables_are_still_checked)
{
    char *dir = make_db();
    char manifest[64] = "";
    char current[64] = "";
    char *current_path = ts_path(dir, "CURRENT");
    ts_file_read_at(current_path, 0, current, 16);
    ck_assert_int_eq(sscanf(current, "%63[^\n]", manifest), 1);
    char *path = ts_path(dir, manifest);
    flip(path, 16 + 8 + 2); /* the first record's payload; later records follow */
    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_int_eq(fs.n, 1);
    const finding_t *f = find(&fs, manifest, true);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->kind, "manifest");
    ck_assert(f->has_offset);
    ck_assert_uint_eq(f->offset, 16);
    ck_assert_msg(strstr(f->message, "bad record crc"), "%s", f->message);
    ck_assert_uint_eq(stats.manifest_files, 0);
    ck_assert_uint_eq(stats.tables, TABLES);
    free(path);
    free(current_path);
    remove_db(dir);
}
END_TEST

START_TEST(every_problem_in_a_directory_is_reported)
{
    char *dir = make_db();
    char flipped[64], deleted[64], sealed[64], newest[64];
    char *flipped_path = table_path(dir, 0, flipped);
    char *deleted_path = table_path(dir, 2, deleted);
    char *sealed_path = segment_path(dir, 0, sealed);
    char *newest_path = segment_path(dir, -1, newest);
    flip(flipped_path, 100);
    ck_assert_int_eq(unlink(deleted_path), 0);
    uint64_t sealed_off = entry_offset(sealed_path, 5);
    flip(sealed_path, sealed_off + 45);
    as_crashed(dir);
    ts_file_truncate(newest_path, ts_file_size(newest_path) - 3);
    char *orphan = ts_path(dir, "000999.sst");
    copy_file(flipped_path, orphan);

    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(verify(dir, &fs, &stats, &err), STRATA_ECORRUPT);
    dump(&fs);
    ck_assert_uint_eq(stats.problems, 3);
    ck_assert_uint_eq(stats.warnings, 2);
    ck_assert_ptr_nonnull(find(&fs, flipped, true));
    ck_assert_ptr_nonnull(find(&fs, deleted, true));
    const finding_t *wal = find(&fs, sealed, true);
    ck_assert_ptr_nonnull(wal);
    ck_assert_uint_eq(wal->offset, sealed_off);
    ck_assert_ptr_nonnull(find(&fs, newest, false));
    ck_assert_ptr_nonnull(find(&fs, "000999.sst", false));
    /* The scan picked up again after the damaged segment, up to the
     * entry the torn tail cost. */
    ck_assert_uint_eq(stats.last_seq, TOTAL_PUTS - 1);
    free(flipped_path);
    free(deleted_path);
    free(sealed_path);
    free(newest_path);
    free(orphan);
    remove_db(dir);
}
END_TEST

START_TEST(verify_never_changes_what_open_would_repair)
{
    /* verify() snapshots every run; here the dir holds what open would
     * cut, delete or rewrite: a torn WAL tail, an orphan table, a temp
     * table, a torn final MANIFEST record. */
    char *dir = make_db();
    char name[64], wal_name[64];
    char *newest = segment_path(dir, -1, wal_name);
    as_crashed(dir);
    ts_file_truncate(newest, ts_file_size(newest) - 20);
    char *table = table_path(dir, 0, name);
    char *orphan = ts_path(dir, "000999.sst");
    char *tmp = ts_path(dir, "001000.sst.tmp");
    copy_file(table, orphan);
    copy_file(table, tmp);
    char current[64] = "", manifest[64] = "";
    char *current_path = ts_path(dir, "CURRENT");
    ts_file_read_at(current_path, 0, current, 16);
    ck_assert_int_eq(sscanf(current, "%63[^\n]", manifest), 1);
    char *manifest_path = ts_path(dir, manifest);
    /* The start of a record whose write never finished. (Cutting the real
     * last edit instead would be a problem: the WAL it let go is gone.) */
    ts_file_write_at(manifest_path, ts_file_size(manifest_path), "\x10\x20\x30\x40\x05", 5);

    findings_t fs;
    strata_verify_stats_t stats;
    strata_error_t err;
    int rc = verify(dir, &fs, &stats, &err);
    dump(&fs);
    ck_assert_msg(rc == 0, "verify: %s", err.msg);
    ck_assert_uint_eq(stats.problems, 0);
    ck_assert_uint_eq(stats.warnings, 3);
    ck_assert_ptr_nonnull(find(&fs, wal_name, false));
    ck_assert_ptr_nonnull(find(&fs, "000999.sst", false));
    ck_assert_ptr_nonnull(find(&fs, manifest, false));
    /* A second run finds exactly the same: nothing was cut or deleted. */
    findings_t again;
    ck_assert_int_eq(verify(dir, &again, &stats, &err), 0);
    ck_assert_int_eq(again.n, fs.n);
    ck_assert_int_eq(access(tmp, F_OK), 0);
    free(newest);
    free(table);
    free(orphan);
    free(tmp);
    free(current_path);
    free(manifest_path);
    remove_db(dir);
}
END_TEST

START_TEST(a_checkpoint_verifies_clean)
{
    char *dir = make_db();
    strata_db_t *db = open_db(dir, 0, false);
    put_range(db, TOTAL_PUTS + 1, TOTAL_PUTS + 50);
    char *cp = ts_path(dir, "checkpoint");
    uint64_t at = 0;
    strata_error_t err;
    ck_assert_msg(strata_db_checkpoint(db, cp, &at, &err) == 0, "checkpoint: %s", err.msg);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    char *meta = ts_path(cp, "SNAPSHOT"); /* what a snapshotter adds beside it */
    FILE *f = fopen(meta, "w");
    ck_assert_ptr_nonnull(f);
    fputs("seq=950\n", f);
    fclose(f);

    findings_t fs;
    strata_verify_stats_t stats;
    int rc = verify(cp, &fs, &stats, &err);
    dump(&fs);
    ck_assert_msg(rc == 0, "verify: %s", err.msg);
    ck_assert_int_eq(fs.n, 0);
    ck_assert_uint_eq(stats.last_seq, at);
    ck_assert_uint_eq(at, TOTAL_PUTS + 50);
    ck_assert_uint_eq(stats.tables, TABLES + 1);
    ck_assert_uint_eq(stats.wal_entries, 0);
    ck_assert_int_ne(access(meta, F_OK), -1);
    char *lock = ts_path(cp, "LOCK");
    ck_assert_int_eq(access(lock, F_OK), -1);
    free(lock);
    free(meta);
    free(cp);
    remove_db(dir);
}
END_TEST

START_TEST(a_missing_or_foreign_directory_cannot_be_verified)
{
    char *dir = ts_tempdir("verify");
    char *foreign = ts_path(dir, "notes.txt");
    FILE *f = fopen(foreign, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    char *before = snapshot(dir);
    findings_t fs = {0};
    strata_verify_stats_t stats;
    strata_error_t err;
    ck_assert_int_eq(strata_db_verify(dir, collect, &fs, &stats, &err), STRATA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "not a Strata data directory"), "%s", err.msg);
    char *after = snapshot(dir); /* no CURRENT, wal/ or LOCK appeared */
    ck_assert_str_eq(before, after);
    char *missing = ts_path(dir, "nope");
    ck_assert_int_eq(strata_db_verify(missing, collect, &fs, &stats, &err), STRATA_ENOTFOUND);
    ck_assert_int_eq(access(missing, F_OK), -1);
    ck_assert_int_eq(strata_db_verify(foreign, collect, &fs, &stats, &err), STRATA_EINVAL);
    ck_assert_int_eq(fs.n, 0);
    free(before);
    free(after);
    free(foreign);
    free(missing);
    remove_db(dir);
}
END_TEST

/* ---- beside a live writer --------------------------------------------- */

typedef struct {
    strata_db_t *db;
    atomic_bool stop;
    atomic_int rounds;
} writer_t;

static void *write_loop(void *arg)
{
    writer_t *w = arg;
    for (int i = 1; !atomic_load(&w->stop); i += 100) {
        put_range(w->db, i, i + 99);
        atomic_fetch_add(&w->rounds, 1);
    }
    return NULL;
}

typedef struct {
    writer_t *writer;
    int rounds;
} progress_t;

static bool wrote_rounds(void *arg)
{
    progress_t *p = arg;
    return atomic_load(&p->writer->rounds) >= p->rounds;
}

START_TEST(a_live_writer_flushing_and_compacting_never_makes_a_problem)
{
    char *dir = ts_tempdir("verify");
    /* Small memtables: flushes, WAL truncation and compactions all run
     * while verify reads. */
    writer_t w = {.db = open_db(dir, 16 * 1024, true)};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, write_loop, &w), 0);
    for (int run = 0; run < 40; run++) {
        /* Each run starts after a few more flushes' worth of writes. */
        progress_t progress = {&w, run * 5 + 1};
        ck_assert(ts_wait_for(wrote_rounds, &progress, 10000));
        findings_t fs = {0};
        strata_verify_stats_t stats;
        strata_error_t err;
        int rc = strata_db_verify(dir, collect, &fs, &stats, &err);
        if (rc || stats.problems)
            dump(&fs);
        ck_assert_msg(rc == 0, "run %d: %s", run, err.msg);
        ck_assert_uint_eq(stats.problems, 0);
        ck_assert_uint_gt(stats.last_seq, 0);
    }
    atomic_store(&w.stop, true);
    pthread_join(thread, NULL);
    ck_assert_int_eq(strata_db_close(&w.db, NULL), 0);
    remove_db(dir);
}
END_TEST

/* ---- the WAL check agrees with open ----------------------------------- */

#define LOG_ENTRIES 10
#define LOG_ENTRY   67 /* 40-byte header + 7-byte key + 20-byte value */
#define SEG1        "0000000000000001.wal"

static void append_log(strata_wal_t *wal, int n)
{
    for (int i = 1; i <= n; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(value, sizeof value, "value-%014d", i);
        strata_wal_op_t op = {
            .type = STRATA_VALUE_PUT, .key = key, .key_len = 7, .value = value, .value_len = 20};
        ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, NULL), 0);
    }
}

static uint64_t log_entry(int seq)
{
    return WAL_HEADER + (uint64_t)(seq - 1) * LOG_ENTRY;
}

static void wal_bad_crc_in_middle(const char *dir)
{
    char *p = ts_path(dir, SEG1);
    flip(p, log_entry(5) + 60);
    free(p);
}
static void wal_torn_payload(const char *dir)
{
    char *p = ts_path(dir, SEG1);
    ts_file_truncate(p, log_entry(10) + 50);
    free(p);
}
static void wal_seq_gap(const char *dir)
{
    char *p = ts_path(dir, SEG1);
    uint8_t entry[LOG_ENTRY];
    ts_file_read_at(p, log_entry(6), entry, sizeof entry);
    uint64_t seq = 7;
    memcpy(entry + 16, &seq, 8);
    uint32_t crc = strata_crc32c(0, entry + 4, sizeof entry - 4);
    memcpy(entry, &crc, 4);
    ts_file_write_at(p, log_entry(6), entry, sizeof entry);
    free(p);
}
static void wal_torn_new_segment(const char *dir)
{
    char *p = ts_path(dir, "0000000000000002.wal");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fwrite("STRATAWL", 1, 8, f);
    fclose(f);
    free(p);
}
static void wal_unknown_version(const char *dir)
{
    char *p = ts_path(dir, SEG1);
    uint8_t header[WAL_HEADER];
    ts_file_read_at(p, 0, header, sizeof header);
    uint32_t version = 99;
    memcpy(header + 8, &version, 4);
    uint32_t crc = strata_crc32c(0, header, 60);
    memcpy(header + 60, &crc, 4);
    ts_file_write_at(p, 0, header, sizeof header);
    free(p);
}

typedef struct {
    const char *name;
    void (*damage)(const char *dir);
    bool torn_tail;  /* the one finding is a torn tail, and open succeeds */
    uint64_t offset; /* of the finding */
} wal_case_t;

static const wal_case_t wal_cases[] = {
    {"bad crc in middle", wal_bad_crc_in_middle, false, 64 + 4 * LOG_ENTRY},
    {"torn payload", wal_torn_payload, true, 64 + 9 * LOG_ENTRY},
    {"seq gap", wal_seq_gap, false, 64 + 5 * LOG_ENTRY},
    {"torn new segment", wal_torn_new_segment, true, 0},
    {"unknown version", wal_unknown_version, false, 8},
};

typedef struct {
    int n;
    strata_wal_damage_t first;
    char message[512];
} wal_findings_t;

static void collect_wal(void *arg, const strata_wal_damage_t *d)
{
    wal_findings_t *fs = arg;
    if (fs->n++ == 0) {
        fs->first = *d;
        snprintf(fs->message, sizeof fs->message, "%s", d->message);
    }
}

START_TEST(the_wal_check_finds_what_open_would_and_changes_nothing)
{
    const wal_case_t *c = &wal_cases[_i];
    char *dir = ts_tempdir("verifywal");
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    append_log(wal, LOG_ENTRIES);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    ts_wal_as_crashed(dir); /* damage at the tail reads as torn, not lost */
    c->damage(dir);

    char *before = snapshot(dir);
    wal_findings_t fs = {0};
    strata_wal_recovery_t checked;
    strata_error_t verify_err;
    int verify_rc = strata_wal_verify(dir, 0, collect_wal, &fs, &checked, &verify_err);
    char *after = snapshot(dir);
    ck_assert_msg(strcmp(before, after) == 0, "%s: verify changed the log", c->name);
    ck_assert_int_eq(fs.n, 1);
    ck_assert_msg(fs.first.torn_tail == c->torn_tail, "%s", c->name);
    ck_assert_uint_eq(fs.first.offset, c->offset);
    ck_assert_int_eq(verify_rc, c->torn_tail ? 0 : STRATA_ECORRUPT);

    strata_wal_recovery_t opened;
    strata_error_t open_err;
    int open_rc = strata_wal_open(&opts, 1, NULL, NULL, &opened, &wal, &open_err);
    if (c->torn_tail) {
        ck_assert_int_eq(open_rc, 0);
        ck_assert_str_eq(checked.tail_kind, opened.tail_kind);
        ck_assert_str_eq(checked.tail_file, opened.tail_file);
        ck_assert_uint_eq(checked.tail_offset, opened.tail_offset);
        ck_assert_uint_eq(checked.tail_bytes_dropped, opened.tail_bytes_dropped);
        ck_assert_uint_eq(checked.last_seq, opened.last_seq);
        ck_assert_uint_eq(checked.entries_replayed, opened.last_seq);
        ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    } else {
        ck_assert_int_ne(open_rc, 0);
        ck_assert_str_eq(verify_err.msg, open_err.msg);
        ck_assert_str_eq(fs.message, open_err.msg);
    }
    free(before);
    free(after);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(the_wal_check_goes_on_past_damage_to_later_segments)
{
    char *dir = ts_tempdir("verifywal");
    strata_wal_options_t opts = {.dir = dir, .segment_bytes = 700}; /* ~9 entries a segment */
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    append_log(wal, 40);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    char *seg1 = ts_path(dir, SEG1);
    char *seg3 = ts_path(dir, "0000000000000003.wal");
    flip(seg1, log_entry(2) + 50);
    ts_file_truncate(seg3, ts_file_size(seg3) - 5); /* sealed: a problem too */
    wal_findings_t fs = {0};
    strata_wal_recovery_t checked;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_verify(dir, 0, collect_wal, &fs, &checked, &err), STRATA_ECORRUPT);
    ck_assert_int_eq(fs.n, 2);
    ck_assert_uint_eq(checked.last_seq, 40);
    ck_assert_uint_ge(checked.segments, 5);
    ck_assert_msg(strstr(err.msg, SEG1 " offset 131: bad crc"), "%s", err.msg);
    free(seg1);
    free(seg3);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("verify");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_clean_directory_verifies_with_plausible_stats);
    tcase_add_test(tc, a_flipped_byte_in_a_table_data_block_is_a_problem_naming_it);
    tcase_add_test(tc, a_flipped_byte_mid_log_is_a_problem_naming_segment_and_offset);
    tcase_add_test(tc, a_torn_tail_in_the_newest_segment_is_only_a_warning);
    tcase_add_test(tc, a_missing_referenced_table_is_a_problem_naming_it);
    tcase_add_test(tc, tail_damage_after_a_clean_stop_is_loss_not_a_torn_tail);
    tcase_add_test(tc, a_missing_newest_segment_is_loss_named_by_open_and_verify);
    tcase_add_test(tc, a_paged_scan_stops_with_an_error_at_a_damaged_or_missing_table);
    tcase_add_test(tc, a_log_that_starts_after_the_tables_stop_is_a_problem);
    tcase_add_test(tc, a_corrupt_manifest_is_a_problem_naming_it_and_tables_are_still_checked);
    tcase_add_test(tc, every_problem_in_a_directory_is_reported);
    tcase_add_test(tc, verify_never_changes_what_open_would_repair);
    tcase_add_test(tc, a_checkpoint_verifies_clean);
    tcase_add_test(tc, a_missing_or_foreign_directory_cannot_be_verified);
    tcase_add_test(tc, a_live_writer_flushing_and_compacting_never_makes_a_problem);
    tcase_add_loop_test(tc, the_wal_check_finds_what_open_would_and_changes_nothing, 0,
                        (int)(sizeof wal_cases / sizeof wal_cases[0]));
    tcase_add_test(tc, the_wal_check_goes_on_past_damage_to_later_segments);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
