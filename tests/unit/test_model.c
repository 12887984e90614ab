/* A randomized model test: thousands of random operations against the
 * engine and an in-memory model, checking every result. Operations: put,
 * delete, batch, get, forward and reverse scans with bounds, zigzag seeks,
 * snapshot reads, flushes and reopens; then a table is damaged, and later
 * one is removed, and every scan must either match the model or fail: never
 * succeed with keys missing or stale. The seed is printed; replay a failure
 * with STRATA_TEST_SEED. STRATA_SOAK=1 runs ten times longer. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/db.h"
#include "support.h"

#define KEYS      200
#define SNAPSHOTS 4

typedef struct {
    char *value[KEYS]; /* NULL: absent */
} model_t;

typedef struct {
    model_t model;
    uint64_t seq;
    bool used;
} snapshot_t;

static const model_t *trace_model;
static int trace_op;

static void key_name(char *buf, int k)
{
    snprintf(buf, 16, "k%03d", k);
}

/* STRATA_TEST_TRACE=<key> prints every change to that key, to debug a seed. */
static const char *trace_key;

static void model_set(model_t *m, int k, const char *value)
{
    char name[16];
    snprintf(name, sizeof name, "k%03d", k);
    if (trace_key && m == trace_model && strcmp(name, trace_key) == 0)
        fprintf(stderr, "trace: op %d %s = %s\n", trace_op, name, value ? value : "(deleted)");
    free(m->value[k]);
    m->value[k] = value ? strdup(value) : NULL;
}

static void model_copy(model_t *dst, const model_t *src)
{
    for (int k = 0; k < KEYS; k++)
        dst->value[k] = src->value[k] ? strdup(src->value[k]) : NULL;
}

static void model_free(model_t *m)
{
    for (int k = 0; k < KEYS; k++) {
        free(m->value[k]);
        m->value[k] = NULL;
    }
}

static strata_db_t *open_db(const char *dir)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.memtable_bytes = 16 * 1024; /* flushes happen on their own too */
    opts.durability = STRATA_ASYNC;
    /* Tiny levels, so data moves down through several of them. */
    opts.level1_bytes = 2 * 1024;
    opts.target_file_bytes = 1024;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open: %s", err.msg);
    return db;
}

static void check_get(strata_db_t *db, const model_t *m, uint64_t snap, int k, int op)
{
    char key[16];
    key_name(key, k);
    strata_read_options_t ro = {.snapshot_seq = snap};
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_db_get(db, &ro, key, strlen(key), &value, &len, &err);
    if (!m->value[k]) {
        ck_assert_msg(rc == STRATA_ENOTFOUND, "op %d get %s @%llu: want absent, rc %d '%.*s'", op,
                      key, (unsigned long long)snap, rc, rc ? 0 : (int)len, (char *)value);
    } else {
        ck_assert_msg(rc == 0, "op %d get %s @%llu: want '%s', rc %d (%s)", op, key,
                      (unsigned long long)snap, m->value[k], rc, err.msg);
        ck_assert_msg(len == strlen(m->value[k]) && memcmp(value, m->value[k], len) == 0,
                      "op %d get %s: '%.*s' want '%s'", op, key, (int)len, (char *)value,
                      m->value[k]);
    }
    free(value);
}

static void check_entry(strata_db_iter_t *it, const model_t *m, int k, int op, const char *what)
{
    char key[16];
    key_name(key, k);
    ck_assert_msg(strata_db_iter_valid(it), "op %d %s: iterator ended, want %s", op, what, key);
    size_t klen, vlen;
    const char *got_key = strata_db_iter_key(it, &klen);
    const char *got_value = strata_db_iter_value(it, &vlen);
    ck_assert_msg(klen == strlen(key) && memcmp(got_key, key, klen) == 0,
                  "op %d %s: key '%.*s' want %s", op, what, (int)klen, got_key, key);
    ck_assert_msg(vlen == strlen(m->value[k]) && memcmp(got_value, m->value[k], vlen) == 0,
                  "op %d %s: %s value '%.*s' want '%s'", op, what, key, (int)vlen, got_value,
                  m->value[k]);
}

/* Forward and reverse scans over [lo, hi) against the model. */
static void check_scan(strata_db_t *db, const model_t *m, uint64_t snap, int lo, int hi, int op)
{
    char lo_key[16], hi_key[16];
    key_name(lo_key, lo);
    key_name(hi_key, hi);
    strata_read_options_t ro = {.snapshot_seq = snap};
    if (lo > 0) {
        ro.lower_bound = lo_key;
        ro.lower_len = strlen(lo_key);
    }
    if (hi < KEYS) {
        ro.upper_bound = hi_key;
        ro.upper_len = strlen(hi_key);
    }
    strata_db_iter_t *it = strata_db_iter_new(db, &ro);
    ck_assert_ptr_nonnull(it);
    strata_db_iter_seek_first(it);
    for (int k = lo; k < hi; k++) {
        if (!m->value[k])
            continue;
        check_entry(it, m, k, op, "forward scan");
        strata_db_iter_next(it);
    }
    ck_assert_msg(!strata_db_iter_valid(it), "op %d forward scan: extra entries", op);
    strata_db_iter_seek_last(it);
    for (int k = hi - 1; k >= lo; k--) {
        if (!m->value[k])
            continue;
        check_entry(it, m, k, op, "reverse scan");
        strata_db_iter_prev(it);
    }
    ck_assert_msg(!strata_db_iter_valid(it), "op %d reverse scan: extra entries", op);
    ck_assert_int_eq(strata_db_iter_status(it, NULL), 0);
    strata_db_iter_destroy(&it);
}

/* A forward scan of [lo, hi) over a damaged directory: each entry it
 * yields is the model's next one, and it either ends exactly where the
 * model does with status 0 or stops with an error. Returns true when it
 * stopped with an error. */
static bool check_scan_or_error(strata_db_t *db, const model_t *m, int lo, int hi, int op)
{
    char lo_key[16], hi_key[16];
    key_name(lo_key, lo);
    key_name(hi_key, hi);
    strata_read_options_t ro = {.lower_bound = lo_key,
                                .lower_len = strlen(lo_key),
                                .upper_bound = hi < KEYS ? hi_key : NULL,
                                .upper_len = hi < KEYS ? strlen(hi_key) : 0};
    strata_db_iter_t *it = strata_db_iter_new(db, &ro);
    ck_assert_ptr_nonnull(it);
    strata_db_iter_seek_first(it);
    bool failed = false;
    for (int k = lo; k < hi && !failed; k++) {
        if (!m->value[k])
            continue;
        if (!strata_db_iter_valid(it)) {
            ck_assert_msg(strata_db_iter_status(it, NULL) != 0,
                          "op %d damaged scan [%d, %d): ended with status 0 before key %d", op, lo,
                          hi, k);
            failed = true;
            break;
        }
        check_entry(it, m, k, op, "damaged scan");
        strata_db_iter_next(it);
    }
    if (!failed) {
        failed = strata_db_iter_status(it, NULL) != 0;
        ck_assert_msg(failed || !strata_db_iter_valid(it), "op %d damaged scan: extra entries", op);
    }
    strata_db_iter_destroy(&it);
    return failed;
}

/* A table of dir, chosen by rng; false when there is none. */
static bool pick_table(const char *dir, uint64_t *rng, char *path, size_t cap)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    int tables = 0;
    char names[64][64];
    for (int i = 0; i < n; i++) {
        size_t len = strlen(entries[i]->d_name);
        if (len > 4 && !strcmp(entries[i]->d_name + len - 4, ".sst") && tables < 64)
            snprintf(names[tables++], 64, "%.63s", entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    if (!tables)
        return false;
    snprintf(path, cap, "%s/%s", dir, names[ts_rand(rng) % (uint64_t)tables]);
    return true;
}

/* Damages (flips a byte in) or removes one table, reopens, and runs scans
 * that must match the model or fail; closes the db either way. */
static void scan_past_damage(char *dir, strata_db_t **db, const model_t *m, uint64_t *rng,
                             bool remove, int op)
{
    if (*db)
        ck_assert_int_eq(strata_db_close(db, NULL), 0);
    *db = NULL;
    char path[4200];
    if (!pick_table(dir, rng, path, sizeof path))
        return;
    if (remove) {
        ck_assert_int_eq(unlink(path), 0);
    } else {
        uint64_t off = ts_rand(rng) % (ts_file_size(path) / 2 + 1);
        uint8_t b;
        ts_file_read_at(path, off, &b, 1);
        b ^= 0x20;
        ts_file_write_at(path, off, &b, 1);
    }
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.disable_auto_compaction = true; /* the damage stays where it is */
    strata_error_t err;
    if (strata_db_open(&opts, db, &err) != 0) {
        fprintf(stderr, "test_model: %s %s: open refused: %s\n", remove ? "removed" : "damaged",
                path, err.msg);
        *db = NULL;
        return;
    }
    int failures = 0;
    for (int i = 0; i < 40; i++) {
        int lo = (int)(ts_rand(rng) % KEYS);
        int hi = lo + (int)(ts_rand(rng) % (KEYS - lo + 1));
        failures += check_scan_or_error(*db, m, lo, hi, op + i);
    }
    failures += check_scan_or_error(*db, m, 0, KEYS, op);
    fprintf(stderr, "test_model: %s %s: %d of 41 scans stopped with an error\n",
            remove ? "removed" : "damaged", path, failures);
    ck_assert_int_eq(strata_db_close(db, NULL), 0);
}

/* Seeks to a random key, then walks randomly back and forth. */
static void check_zigzag(strata_db_t *db, const model_t *m, uint64_t *rng, int op)
{
    strata_db_iter_t *it = strata_db_iter_new(db, NULL);
    int k = (int)(ts_rand(rng) % KEYS);
    char key[16];
    key_name(key, k);
    bool for_prev = ts_rand(rng) % 2;
    if (for_prev) {
        strata_db_iter_seek_for_prev(it, key, strlen(key));
        while (k >= 0 && !m->value[k])
            k--;
    } else {
        strata_db_iter_seek(it, key, strlen(key));
        while (k < KEYS && !m->value[k])
            k++;
    }
    for (int step = 0; step < 20; step++) {
        if (k < 0 || k >= KEYS) {
            ck_assert_msg(!strata_db_iter_valid(it), "op %d zigzag: valid past the end", op);
            break;
        }
        check_entry(it, m, k, op, "zigzag");
        if (ts_rand(rng) % 2) {
            strata_db_iter_next(it);
            do
                k++;
            while (k < KEYS && !m->value[k]);
        } else {
            strata_db_iter_prev(it);
            do
                k--;
            while (k >= 0 && !m->value[k]);
        }
    }
    strata_db_iter_destroy(&it);
}

START_TEST(random_operations_match_an_ordered_map)
{
    uint64_t rng = ts_seed("test_model");
    int ops = ts_soak() ? 50000 : 6000;
    char *dir = ts_tempdir("model");
    strata_db_t *db = open_db(dir);
    model_t model = {0};
    snapshot_t snaps[SNAPSHOTS] = {0};
    char key[16], value[32];
    int reopens = 0, flushes = 0, compactions = 0;
    trace_key = getenv("STRATA_TEST_TRACE");
    trace_model = &model;
    for (int op = 0; op < ops; op++) {
        trace_op = op;
        int k = (int)(ts_rand(&rng) % KEYS);
        key_name(key, k);
        unsigned dice = (unsigned)(ts_rand(&rng) % 100);
        if (dice < 35) {
            snprintf(value, sizeof value, "v%d-%llu", op, (unsigned long long)(rng % 1000));
            ck_assert_int_eq(
                strata_db_put(db, NULL, key, strlen(key), value, strlen(value), NULL, NULL), 0);
            model_set(&model, k, value);
        } else if (dice < 45) {
            ck_assert_int_eq(strata_db_delete(db, NULL, key, strlen(key), NULL, NULL), 0);
            model_set(&model, k, NULL);
        } else if (dice < 50) {
            strata_batch_t *b = strata_batch_new();
            for (int i = 0; i < 3; i++) {
                int bk = (int)(ts_rand(&rng) % KEYS);
                key_name(key, bk);
                if (ts_rand(&rng) % 4 == 0) {
                    strata_batch_delete(b, key, strlen(key));
                    model_set(&model, bk, NULL);
                } else {
                    snprintf(value, sizeof value, "b%d-%d", op, i);
                    strata_batch_put(b, key, strlen(key), value, strlen(value));
                    model_set(&model, bk, value);
                }
            }
            ck_assert_int_eq(strata_db_write(db, NULL, b, NULL, NULL), 0);
            strata_batch_destroy(&b);
        } else if (dice < 70) {
            check_get(db, &model, 0, k, op);
        } else if (dice < 75) {
            int lo = (int)(ts_rand(&rng) % KEYS);
            int hi = lo + (int)(ts_rand(&rng) % (KEYS - lo + 1));
            check_scan(db, &model, 0, lo, hi, op);
        } else if (dice < 80) {
            check_zigzag(db, &model, &rng, op);
        } else if (dice < 83) {
            snapshot_t *s = &snaps[ts_rand(&rng) % SNAPSHOTS];
            if (s->used)
                strata_db_snapshot_release(db, s->seq);
            model_free(&s->model);
            model_copy(&s->model, &model);
            s->seq = strata_db_snapshot_acquire(db);
            s->used = true;
        } else if (dice < 93) {
            snapshot_t *s = &snaps[ts_rand(&rng) % SNAPSHOTS];
            if (s->used && s->seq > 0) {
                check_get(db, &s->model, s->seq, k, op);
                if (dice < 88)
                    check_scan(db, &s->model, s->seq, 0, KEYS, op);
            }
        } else if (dice < 96) {
            strata_error_t err;
            ck_assert_msg(strata_db_flush(db, &err) == 0, "flush: %s", err.msg);
            flushes++;
            if (trace_key)
                fprintf(stderr, "trace: op %d flush\n", op);
        } else if (dice < 98) {
            strata_error_t err;
            ck_assert_msg(strata_db_compact(db, &err) == 0, "compact: %s", err.msg);
            compactions++;
            if (trace_key)
                fprintf(stderr, "trace: op %d compact\n", op);
        } else {
            ck_assert_int_eq(strata_db_close(&db, NULL), 0);
            db = open_db(dir);
            reopens++;
            if (trace_key)
                fprintf(stderr, "trace: op %d reopen\n", op);
            for (int i = 0; i < SNAPSHOTS; i++) /* snapshots end with the process */
                snaps[i].used = false;
        }
    }
    check_scan(db, &model, 0, 0, KEYS, ops);
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    fprintf(stderr,
            "test_model: %d ops, %d reopens, %d flushes, %d forced compactions, %llu compactions "
            "since the last open; files per level %u %u %u %u\n",
            ops, reopens, flushes, compactions, (unsigned long long)stats.compactions,
            stats.level_files[0], stats.level_files[1], stats.level_files[2], stats.level_files[3]);
    ck_assert_msg(stats.level_files[2] + stats.level_files[3] > 0, "data never reached L2");
    scan_past_damage(dir, &db, &model, &rng, false, ops);
    scan_past_damage(dir, &db, &model, &rng, true, ops + 100);
    model_free(&model);
    for (int i = 0; i < SNAPSHOTS; i++)
        model_free(&snaps[i].model);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, ts_soak() ? 3600 : 300);
    tcase_add_test(tc, random_operations_match_an_ordered_map);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
