/* The embedded engine API: reads after writes, batches, snapshots,
 * memtable switches, reopen, and the one-process-per-directory lock. */
#define _GNU_SOURCE
#include <check.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compaction.h"
#include "strata/compaction.h"
#include "strata/db.h"
#include "version.h"
#include "support.h"

static strata_db_t *open_db_with(const char *dir, size_t memtable_bytes,
                                 bool disable_auto_compaction)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    if (memtable_bytes)
        opts.memtable_bytes = memtable_bytes;
    opts.disable_auto_compaction = disable_auto_compaction;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open %s: %s", dir, err.msg);
    return db;
}

static strata_db_t *open_db(const char *dir, size_t memtable_bytes)
{
    return open_db_with(dir, memtable_bytes, false);
}

static void close_db(strata_db_t **db)
{
    strata_error_t err;
    ck_assert_msg(strata_db_close(db, &err) == 0, "close: %s", err.msg);
}

static void put_str(strata_db_t *db, const char *key, const char *value)
{
    strata_error_t err;
    ck_assert_msg(strata_db_put(db, NULL, key, strlen(key), value, strlen(value), NULL, &err) == 0,
                  "put %s: %s", key, err.msg);
}

/* Asserts key holds value (or is absent when value is NULL). */
static void expect(strata_db_t *db, uint64_t snapshot, const char *key, const char *value)
{
    strata_read_options_t ro = {.snapshot_seq = snapshot};
    void *got = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_db_get(db, &ro, key, strlen(key), &got, &len, &err);
    if (!value) {
        ck_assert_msg(rc == STRATA_ENOTFOUND, "%s: expected absent, got rc %d", key, rc);
        return;
    }
    ck_assert_msg(rc == 0, "get %s: %s", key, err.msg);
    ck_assert_msg(len == strlen(value) && memcmp(got, value, len) == 0, "%s: got '%.*s' want '%s'",
                  key, (int)len, (char *)got, value);
    free(got);
}

/* A data directory is its owner's alone: directories 0700, files 0600,
 * whatever the umask lets through. */
static void assert_mode(const char *dir, const char *name, unsigned want)
{
    char *path = ts_path(dir, name);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    ck_assert_msg((st.st_mode & 0777) == want, "%s: mode %o, want %o", path, st.st_mode & 0777,
                  want);
    free(path);
}

START_TEST(data_files_are_private_to_their_owner)
{
    char *root = ts_tempdir("db");
    char *dir = ts_path(root, "node");
    mode_t old = umask(022);
    strata_db_t *db = open_db(dir, 0);
    ck_assert_int_eq(strata_db_put(db, NULL, "k", 1, "v", 1, NULL, NULL), 0);
    ck_assert_int_eq(strata_db_flush(db, NULL), 0);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    umask(old);
    assert_mode(root, "node", 0700);
    assert_mode(dir, "wal", 0700);
    assert_mode(dir, "wal/0000000000000001.wal", 0600);
    assert_mode(dir, "wal/LOGSTATE", 0600);
    assert_mode(dir, "CURRENT", 0600);
    assert_mode(dir, "000002.sst", 0600);
    ts_rmtree(root);
    free(dir);
    free(root);
}
END_TEST

START_TEST(put_get_delete_and_overwrite)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    expect(db, 0, "missing", NULL);
    put_str(db, "order/1", "buy 10 @ 100.5");
    put_str(db, "order/2", "sell 5 @ 101");
    expect(db, 0, "order/1", "buy 10 @ 100.5");
    put_str(db, "order/1", "buy 7 @ 100.5");
    expect(db, 0, "order/1", "buy 7 @ 100.5");
    uint64_t seq = 0;
    ck_assert_int_eq(strata_db_delete(db, NULL, "order/2", 7, &seq, NULL), 0);
    ck_assert_uint_eq(seq, 4);
    expect(db, 0, "order/2", NULL);
    put_str(db, "", "empty key");
    put_str(db, "empty value", "");
    expect(db, 0, "", "empty key");
    expect(db, 0, "empty value", "");
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(reopen_recovers_every_write_and_the_seq)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    char key[32], value[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        snprintf(value, sizeof value, "v%d", i * 3);
        put_str(db, key, value);
    }
    ck_assert_int_eq(strata_db_delete(db, NULL, "k00010", 6, NULL, NULL), 0);
    close_db(&db);
    db = open_db(dir, 0);
    ck_assert_uint_eq(strata_db_last_seq(db), 2001);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        snprintf(value, sizeof value, "v%d", i * 3);
        expect(db, 0, key, i == 10 ? NULL : value);
    }
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    ck_assert_uint_eq(stats.recovery.entries_replayed, 2001);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(batch_is_applied_whole_with_consecutive_seqs)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    put_str(db, "acct/alice", "100");
    strata_batch_t *b = strata_batch_new();
    ck_assert_int_eq(strata_batch_put(b, "acct/alice", 10, "60", 2), 0);
    ck_assert_int_eq(strata_batch_put(b, "acct/bob", 8, "40", 2), 0);
    ck_assert_int_eq(strata_batch_delete(b, "pending/1", 9), 0);
    ck_assert_uint_eq(strata_batch_count(b), 3);
    uint64_t first = 0;
    ck_assert_int_eq(strata_db_write(db, NULL, b, &first, NULL), 0);
    ck_assert_uint_eq(first, 2);
    ck_assert_uint_eq(strata_db_last_seq(db), 4);
    expect(db, 0, "acct/alice", "60");
    expect(db, 0, "acct/bob", "40");
    strata_batch_clear(b);
    ck_assert_int_eq(strata_db_write(db, NULL, b, NULL, NULL), STRATA_EINVAL);
    strata_batch_destroy(&b);
    ck_assert_ptr_null(b);
    close_db(&db);
    db = open_db(dir, 0);
    expect(db, 0, "acct/alice", "60");
    expect(db, 0, "acct/bob", "40");
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(snapshot_read_sees_exactly_the_writes_up_to_its_seq)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    put_str(db, "px", "100");
    uint64_t snap = strata_db_last_seq(db);
    put_str(db, "px", "101");
    put_str(db, "new", "x");
    ck_assert_int_eq(strata_db_delete(db, NULL, "px", 2, NULL, NULL), 0);
    expect(db, snap, "px", "100");
    expect(db, snap, "new", NULL);
    expect(db, snap + 1, "px", "101");
    expect(db, 0, "px", NULL);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(full_memtables_become_immutable_and_stay_readable)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 64 * 1024);
    char key[32], value[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        strata_write_options_t wo = {.durability = STRATA_ASYNC};
        ck_assert_int_eq(strata_db_put(db, &wo, key, strlen(key), value, strlen(value), NULL, NULL),
                         0);
    }
    put_str(db, "key-000005", "overwritten");
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    /* Each switch leaves an immutable memtable, flushed or still waiting. */
    ck_assert_uint_gt(stats.immutable_memtables + stats.flushes, 2);
    for (int i = 0; i < 3000; i += 7) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        expect(db, 0, key, value);
    }
    expect(db, 0, "key-000005", "overwritten");
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_second_open_of_the_same_directory_is_refused)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    strata_db_t *second = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_db_open(&opts, &second, &err), STRATA_EEXIST);
    ck_assert_ptr_null(second);
    ck_assert_msg(strstr(err.msg, "LOCK") != NULL, "message: %s", err.msg);
    close_db(&db);
    db = open_db(dir, 0); /* the lock went with the close */
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(async_writes_are_durable_after_sync)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 0);
    strata_write_options_t wo = {.durability = STRATA_ASYNC};
    uint64_t seq = 0;
    ck_assert_int_eq(strata_db_put(db, &wo, "a", 1, "1", 1, &seq, NULL), 0);
    ck_assert_int_eq(strata_db_sync(db, NULL), 0);
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    ck_assert_uint_ge(stats.durable_seq, seq);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static bool flushed_all(void *arg)
{
    strata_db_stats_t stats;
    strata_db_stats(arg, &stats);
    return stats.immutable_memtables == 0 && stats.flushes > 0;
}

START_TEST(flushed_memtables_are_read_from_sstables_and_survive_reopen)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 64 * 1024);
    char key[32], value[128];
    strata_write_options_t wo = {.durability = STRATA_ASYNC};
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        ck_assert_int_eq(strata_db_put(db, &wo, key, strlen(key), value, strlen(value), NULL, NULL),
                         0);
    }
    ck_assert_int_eq(strata_db_delete(db, NULL, "key-000007", 10, NULL, NULL), 0);
    ck_assert(ts_wait_for(flushed_all, db, 30000));
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    ck_assert_uint_gt(stats.flushes, 2);
    /* Flushed tables, some perhaps already compacted down to L1. */
    ck_assert_uint_gt(stats.level_files[0] + stats.level_files[1], 0);
    ck_assert_uint_gt(stats.flushed_seq, 1000);
    for (int i = 0; i < 5000; i += 3) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        expect(db, 0, key, value);
    }
    expect(db, 0, "key-000007", NULL);
    expect(db, 0, "key-999999", NULL);
    /* A snapshot from before the delete still sees the flushed value. */
    expect(db, 100, "key-000007",
           "0000000000000000000000000000000000000000000000000000000000000"
           "000000000000000000000000000000000000007");
    close_db(&db);

    db = open_db(dir, 64 * 1024);
    strata_db_stats(db, &stats);
    /* Only the unflushed tail of the WAL is replayed. */
    ck_assert_uint_lt(stats.recovery.entries_replayed, 5001);
    ck_assert_uint_eq(strata_db_last_seq(db), 5001);
    for (int i = 0; i < 5000; i += 3) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        expect(db, 0, key, value);
    }
    expect(db, 0, "key-000007", NULL);
    put_str(db, "after", "reopen");
    ck_assert_uint_eq(strata_db_last_seq(db), 5002);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* Replay links a memtable's worth of entries at a time, sorted: a WAL far
 * longer than the memtable must switch and flush as it replays, with the
 * versions of a key spread over several memtables and tables. */
START_TEST(long_wal_replays_into_small_memtables_and_flushes)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 256 << 20); /* nothing flushes while writing */
    enum { WRITES = 20000, KEYS = 1500 };
    char key[32], value[64];
    strata_write_options_t wo = {.durability = STRATA_ASYNC};
    for (int i = 0; i < WRITES; i++) {
        /* A scattered key order, so that replay order is not key order. */
        snprintf(key, sizeof key, "key-%05d", (int)((uint64_t)i * 7919 % KEYS));
        snprintf(value, sizeof value, "value-%d", i);
        ck_assert_int_eq(strata_db_put(db, &wo, key, strlen(key), value, strlen(value), NULL, NULL),
                         0);
    }
    ck_assert_int_eq(strata_db_delete(db, NULL, "key-00042", 9, NULL, NULL), 0);
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    ck_assert_uint_eq(stats.flushes, 0);
    close_db(&db);

    /* Without compaction, which may drop the older versions read below:
     * no snapshot holds them. */
    db = open_db_with(dir, 32 * 1024, true);
    strata_db_stats(db, &stats);
    ck_assert_uint_eq(stats.recovery.entries_replayed, WRITES + 1);
    ck_assert_uint_eq(strata_db_last_seq(db), WRITES + 1);
    ck_assert(ts_wait_for(flushed_all, db, 30000));
    strata_db_stats(db, &stats);
    ck_assert_uint_gt(stats.flushes, 10);
    /* The newest version of every key, and an older one at a snapshot. */
    for (int i = WRITES - KEYS; i < WRITES; i++) {
        snprintf(key, sizeof key, "key-%05d", (int)((uint64_t)i * 7919 % KEYS));
        snprintf(value, sizeof value, "value-%d", i);
        expect(db, 0, key, strcmp(key, "key-00042") == 0 ? NULL : value);
        snprintf(value, sizeof value, "value-%d", i - KEYS);
        expect(db, (uint64_t)(i - KEYS + 1), key, value);
    }
    put_str(db, "after", "replay");
    ck_assert_uint_eq(strata_db_last_seq(db), WRITES + 2);
    close_db(&db);

    /* Only the tail that the flushes did not cover is replayed now. */
    db = open_db(dir, 32 * 1024);
    strata_db_stats(db, &stats);
    ck_assert_uint_lt(stats.recovery.entries_replayed, WRITES);
    expect(db, 0, "after", "replay");
    expect(db, 0, "key-00042", NULL);
    snprintf(key, sizeof key, "key-%05d", (int)((uint64_t)(WRITES - 1) * 7919 % KEYS));
    snprintf(value, sizeof value, "value-%d", WRITES - 1);
    expect(db, 0, key, value);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_checkpoint_opens_as_its_own_database_at_one_seq)
{
    char *dir = ts_tempdir("db");
    strata_db_t *db = open_db(dir, 32 * 1024);
    char key[32], value[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%05d", i);
        snprintf(value, sizeof value, "value-%d", i);
        put_str(db, key, value);
    }
    char *cp = ts_path(dir, "checkpoint");
    uint64_t at = 0;
    strata_error_t err;
    ck_assert_msg(strata_db_checkpoint(db, cp, &at, &err) == 0, "checkpoint: %s", err.msg);
    ck_assert_uint_eq(at, 2000);
    ck_assert_int_eq(strata_db_checkpoint(db, cp, NULL, &err), STRATA_EEXIST);
    put_str(db, "key-00001", "changed after");
    put_str(db, "late", "x");
    close_db(&db); /* the original's compaction may now delete its tables */

    db = open_db(cp, 32 * 1024);
    ck_assert_uint_eq(strata_db_last_seq(db), 2000);
    expect(db, 0, "key-00001", "value-1");
    expect(db, 0, "key-01999", "value-1999");
    expect(db, 0, "late", NULL);
    put_str(db, "in checkpoint", "y");
    ck_assert_uint_eq(strata_db_last_seq(db), 2001);
    close_db(&db);
    db = open_db(cp, 32 * 1024);
    expect(db, 0, "in checkpoint", "y");
    close_db(&db);
    free(cp);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(the_table_cache_stays_within_its_bound)
{
    char *dir = ts_tempdir("db");
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.memtable_bytes = 16 * 1024;
    opts.max_open_tables = 2;
    opts.disable_auto_compaction = true; /* keep many L0 tables */
    strata_db_t *db = NULL;
    ck_assert_int_eq(strata_db_open(&opts, &db, NULL), 0);
    char key[32], value[128];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%06d", i);
        snprintf(value, sizeof value, "%0100d", i);
        ck_assert_int_eq(
            strata_db_put(db, NULL, key, strlen(key), value, strlen(value), NULL, NULL), 0);
    }
    ck_assert_int_eq(strata_db_flush(db, NULL), 0);
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    ck_assert_uint_gt(stats.level_files[0], 5);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2000; i += 7) {
            snprintf(key, sizeof key, "key-%06d", i);
            snprintf(value, sizeof value, "%0100d", i);
            expect(db, 0, key, value);
        }
    strata_db_stats(db, &stats);
    ck_assert_uint_le(stats.open_tables, 2);
    close_db(&db);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- compaction from another process ---------------------------------- */

static strata_db_t *open_manual(const char *dir)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.disable_auto_compaction = true;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open %s: %s", dir, err.msg);
    return db;
}

/* The compactor's half, as services/compactor does it: the version read
 * from the MANIFEST, picked, merged into work/. */
typedef struct {
    uint64_t inputs[2][64];
    size_t n_inputs[2];
    char *outputs[64];
    size_t n_outputs;
    int level;
} offsite_t;

/* Through the public compaction API, as strata-compactor does. */
static void compact_offsite(const char *dir, const char *work, offsite_t *o)
{
    memset(o, 0, sizeof *o);
    strata_tables_t *tables = NULL;
    strata_error_t err;
    ck_assert_msg(strata_tables_open(dir, NULL, &tables, &err) == 0, "%s", err.msg);
    /* The view: L0 newest first, keys bounding each table. */
    size_t n0 = strata_tables_count(tables, 0);
    ck_assert_uint_ge(n0, 1);
    ck_assert_uint_eq(strata_tables_count(tables, 7), 0);
    strata_table_info_t newest, oldest;
    strata_tables_info(tables, 0, 0, &newest);
    strata_tables_info(tables, 0, n0 - 1, &oldest);
    ck_assert_uint_gt(newest.number, oldest.number);
    ck_assert_int_le(memcmp(newest.smallest, newest.largest, newest.smallest_len), 0);
    uint64_t bytes = 0;
    ck_assert_uint_eq(strata_tables_in_range(tables, 0, NULL, 0, NULL, 0, &bytes), n0);
    ck_assert_uint_gt(bytes, 0);
    ck_assert_uint_eq(strata_tables_in_range(tables, 0, "zzz", 3, NULL, 0, NULL), 0);

    strata_compaction_options_t copts;
    strata_compaction_options_init(&copts);
    copts.l0_trigger = (uint32_t)n0;
    strata_compaction_cursor_t *cursor = strata_compaction_cursor_new();
    ck_assert_ptr_nonnull(cursor);
    strata_compaction_job_t *job = NULL;
    ck_assert_int_eq(strata_compaction_job_pick(tables, &copts, cursor, &job), 0);
    ck_assert_ptr_nonnull(job);
    ck_assert_int_eq(strata_compaction_job_pick_range(tables, 6, NULL, 0, NULL, 0, 1,
                                                      &(strata_compaction_job_t *){NULL}),
                     STRATA_EINVAL);
    strata_compaction_stats_t cs = {0};
    ck_assert_msg(strata_compaction_job_run(job, &copts, work, "t", 0, &cs, &err) == 0, "%s",
                  err.msg);
    ck_assert_uint_eq(cs.tables_written, strata_compaction_job_outputs(job));
    ck_assert_uint_eq(strata_compaction_job_progress(job), cs.entries_in);
    ck_assert_int_eq(strata_compaction_job_run(job, &copts, work, "t", 0, &cs, &err),
                     STRATA_EINVAL);
    o->level = strata_compaction_job_level(job);
    for (int w = 0; w < 2; w++) {
        o->n_inputs[w] = strata_compaction_job_inputs(job, w);
        for (size_t i = 0; i < o->n_inputs[w]; i++) {
            strata_table_info_t t;
            strata_compaction_job_input(job, w, i, &t);
            o->inputs[w][i] = t.number;
        }
    }
    for (size_t i = 0; i < strata_compaction_job_outputs(job); i++)
        ck_assert_int_ge(asprintf(&o->outputs[o->n_outputs++], "%s/t-%llu.sst", work,
                                  (unsigned long long)strata_compaction_job_output(job, i)),
                         0);
    strata_compaction_job_free(&job);
    strata_compaction_cursor_free(&cursor);
    strata_tables_close(&tables);
    ck_assert_ptr_null(tables);
}

static strata_compaction_result_t as_result(const offsite_t *o)
{
    return (strata_compaction_result_t){
        .level = o->level,
        .inputs = {o->inputs[0], o->inputs[1]},
        .n_inputs = {o->n_inputs[0], o->n_inputs[1]},
        .outputs = (const char *const *)o->outputs,
        .n_outputs = o->n_outputs,
    };
}

static uint32_t level_files(strata_db_t *db, int level)
{
    strata_db_stats_t st;
    strata_db_stats(db, &st);
    return st.level_files[level];
}

START_TEST(a_compaction_from_outside_is_installed_or_refused_whole)
{
    char *dir = ts_tempdir("db");
    char *work = ts_path(dir, "work");
    ck_assert_int_eq(mkdir(work, 0755), 0);
    strata_db_t *db = open_manual(dir);
    char key[32], value[64];
    strata_error_t err;
    for (int f = 0; f < 4; f++) {
        for (int i = 0; i < 500; i++) {
            snprintf(key, sizeof key, "key-%05d", i * 4 + f % 2);
            snprintf(value, sizeof value, "value-%d-%d", i, f);
            put_str(db, key, value);
        }
        ck_assert_int_eq(strata_db_flush(db, &err), 0);
    }
    ck_assert_uint_eq(level_files(db, 0), 4);
    uint64_t gen0 = 0, snap = 0;
    strata_db_compaction_state(db, &gen0, &snap);
    offsite_t o;
    compact_offsite(dir, work, &o);
    ck_assert_int_eq(o.level, 0);
    ck_assert_uint_eq(o.n_inputs[0], 4);
    ck_assert_uint_ge(o.n_outputs, 1);

    /* An input that is not live: refused, nothing changed, outputs left. */
    offsite_t bad = o;
    bad.inputs[0][0] = 999999;
    strata_compaction_result_t r = as_result(&bad);
    ck_assert_int_eq(strata_db_install_compaction(db, &r, NULL, &err), STRATA_ESTALE);
    ck_assert_msg(strstr(err.msg, "999999") != NULL, "%s", err.msg);
    /* Leaving an older L0 table behind would let it shadow what moved down. */
    bad = o;
    bad.n_inputs[0] = 1;
    r = as_result(&bad);
    ck_assert_int_eq(strata_db_install_compaction(db, &r, NULL, &err), STRATA_ESTALE);
    ck_assert_msg(strstr(err.msg, "left behind") != NULL, "%s", err.msg);
    ck_assert_uint_eq(level_files(db, 0), 4);
    ck_assert_uint_eq(ts_file_size(o.outputs[0]) > 0, 1);

    r = as_result(&o);
    uint64_t installed = 0;
    ck_assert_msg(strata_db_install_compaction(db, &r, &installed, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(installed, o.n_outputs);
    ck_assert_uint_eq(level_files(db, 0), 0);
    ck_assert_uint_eq(level_files(db, 1), o.n_outputs);
    ck_assert_int_ne(access(o.outputs[0], F_OK), 0); /* renamed in */
    uint64_t gen1 = 0;
    strata_db_compaction_state(db, &gen1, &snap);
    ck_assert_uint_gt(gen1, gen0);
    /* The same result again: its inputs are gone. */
    ck_assert_int_ne(strata_db_install_compaction(db, &r, NULL, &err), 0);
    expect(db, 0, "key-00000", "value-0-2");
    expect(db, 0, "key-00001", "value-0-3");
    expect(db, 0, "key-01997", "value-499-3");
    close_db(&db);
    db = open_manual(dir);
    ck_assert_uint_eq(level_files(db, 1), o.n_outputs);
    expect(db, 0, "key-00000", "value-0-2");
    expect(db, 0, "key-01996", "value-499-2");
    close_db(&db);
    for (size_t i = 0; i < o.n_outputs; i++)
        free(o.outputs[i]);
    free(work);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("db");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, data_files_are_private_to_their_owner);
    tcase_add_test(tc, put_get_delete_and_overwrite);
    tcase_add_test(tc, reopen_recovers_every_write_and_the_seq);
    tcase_add_test(tc, long_wal_replays_into_small_memtables_and_flushes);
    tcase_add_test(tc, batch_is_applied_whole_with_consecutive_seqs);
    tcase_add_test(tc, snapshot_read_sees_exactly_the_writes_up_to_its_seq);
    tcase_add_test(tc, full_memtables_become_immutable_and_stay_readable);
    tcase_add_test(tc, a_second_open_of_the_same_directory_is_refused);
    tcase_add_test(tc, async_writes_are_durable_after_sync);
    tcase_add_test(tc, flushed_memtables_are_read_from_sstables_and_survive_reopen);
    tcase_add_test(tc, a_checkpoint_opens_as_its_own_database_at_one_seq);
    tcase_add_test(tc, the_table_cache_stays_within_its_bound);
    tcase_add_test(tc, a_compaction_from_outside_is_installed_or_refused_whole);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
