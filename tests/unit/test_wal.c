/* WAL behaviour: round trips, group commit, segments, sticky failures,
 * the written/durable observers, retention and the entry decoder. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultio.h"
#include "strata/crc.h"
#include "strata/entry.h"
#include "strata/wal.h"
#include "support.h"

typedef struct {
    uint64_t count;
    uint64_t next_seq; /* seqs must arrive in order, gap-free */
    bool in_order;
    char last_key[64];
    char last_value[64];
    uint8_t last_type;
    char last_topic[16];
} collect_t;

static int collect(void *arg, const strata_entry_t *e)
{
    collect_t *c = arg;
    if (c->next_seq && e->seq != c->next_seq)
        c->in_order = false;
    c->next_seq = e->seq + 1;
    c->count++;
    snprintf(c->last_key, sizeof c->last_key, "%.*s", (int)e->key_len, e->key);
    snprintf(c->last_value, sizeof c->last_value, "%.*s", (int)e->value_len, e->value);
    snprintf(c->last_topic, sizeof c->last_topic, "%.*s", (int)e->topic_len, e->topic);
    c->last_type = e->type;
    return 0;
}

static strata_wal_t *open_wal(const char *dir, strata_io_t *io, uint64_t segment_bytes,
                              uint64_t replay_from, collect_t *c, strata_wal_recovery_t *report)
{
    strata_wal_options_t opts = {.dir = dir, .io = io, .segment_bytes = segment_bytes};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    int rc = strata_wal_open(&opts, replay_from, c ? collect : NULL, c, report, &wal, &err);
    ck_assert_msg(rc == 0, "open %s: %s", dir, err.msg);
    return wal;
}

static uint64_t put(strata_wal_t *wal, strata_durability_t d, const char *key, const char *value)
{
    strata_wal_op_t op = {
        .type = STRATA_VALUE_PUT,
        .key = key,
        .key_len = (uint32_t)strlen(key),
        .value = value,
        .value_len = (uint32_t)strlen(value),
    };
    uint64_t seq = 0;
    strata_error_t err;
    int rc = strata_wal_append(wal, &op, 1, d, &seq, &err);
    ck_assert_msg(rc == 0, "append %s: %s", key, err.msg);
    return seq;
}

static void close_wal(strata_wal_t **wal)
{
    strata_error_t err;
    ck_assert_msg(strata_wal_close(wal, &err) == 0, "close: %s", err.msg);
    ck_assert_ptr_null(*wal);
}

START_TEST(append_then_reopen_replays_every_entry_in_order)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 0, 1, NULL, NULL);
    char key[32], value[32];
    for (int i = 1; i <= 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        ck_assert_uint_eq(put(wal, i % 2 ? STRATA_SYNC : STRATA_ASYNC, key, value), i);
    }
    strata_wal_op_t del = {.type = STRATA_VALUE_DELETE,
                           .topic = "trades",
                           .topic_len = 6,
                           .key = "key-7",
                           .key_len = 5};
    uint64_t seq;
    ck_assert_int_eq(strata_wal_append(wal, &del, 1, STRATA_SYNC, &seq, NULL), 0);
    ck_assert_uint_eq(seq, 1001);
    close_wal(&wal);

    collect_t c = {.in_order = true};
    strata_wal_recovery_t report;
    wal = open_wal(dir, NULL, 0, 1, &c, &report);
    ck_assert_uint_eq(c.count, 1001);
    ck_assert(c.in_order);
    ck_assert_str_eq(c.last_key, "key-7");
    ck_assert_str_eq(c.last_topic, "trades");
    ck_assert_uint_eq(c.last_type, STRATA_VALUE_DELETE);
    ck_assert_uint_eq(report.first_seq, 1);
    ck_assert_uint_eq(report.last_seq, 1001);
    ck_assert_str_eq(report.tail_kind, "");
    ck_assert_uint_eq(report.tail_bytes_dropped, 0);
    ck_assert_uint_eq(put(wal, STRATA_SYNC, "after", "reopen"), 1002);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(replay_from_skips_older_entries_and_whole_segments)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 4096, 1, NULL, NULL);
    for (int i = 1; i <= 500; i++)
        put(wal, STRATA_ASYNC, "k", "0123456789012345678901234567890123456789");
    strata_wal_stats_t stats;
    strata_wal_stats(wal, &stats);
    ck_assert_uint_gt(stats.segments, 5);
    close_wal(&wal);

    collect_t c = {.in_order = true};
    strata_wal_recovery_t report;
    wal = open_wal(dir, NULL, 4096, 400, &c, &report);
    ck_assert_uint_eq(c.count, 101);
    ck_assert(c.in_order);
    ck_assert_uint_eq(c.next_seq, 501);
    ck_assert_uint_eq(report.last_seq, 500);
    /* Whole segments below 400 were only header-checked. */
    ck_assert_uint_lt(report.entries_replayed, 500);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(batch_gets_consecutive_seqs_and_replays_whole)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 0, 1, NULL, NULL);
    put(wal, STRATA_SYNC, "a", "1");
    strata_wal_op_t ops[3] = {
        {.type = STRATA_VALUE_PUT, .key = "b", .key_len = 1, .value = "2", .value_len = 1},
        {.type = STRATA_VALUE_DELETE, .key = "a", .key_len = 1},
        {.type = STRATA_VALUE_PUT, .key = "c", .key_len = 1, .value = "", .value_len = 0},
    };
    uint64_t first = 0;
    ck_assert_int_eq(strata_wal_append(wal, ops, 3, STRATA_SYNC, &first, NULL), 0);
    ck_assert_uint_eq(first, 2);
    ck_assert_uint_eq(strata_wal_last_seq(wal), 4);
    ck_assert_uint_eq(strata_wal_durable_seq(wal), 4);
    close_wal(&wal);
    collect_t c = {.in_order = true};
    wal = open_wal(dir, NULL, 0, 1, &c, NULL);
    ck_assert_uint_eq(c.count, 4);
    ck_assert_str_eq(c.last_key, "c");
    ck_assert_str_eq(c.last_value, "");
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- concurrency ---- */

typedef struct {
    strata_wal_t *wal;
    int n;
    uint64_t *seqs;
} appender_t;

static void *appender(void *arg)
{
    appender_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        strata_wal_op_t op = {
            .type = STRATA_VALUE_PUT, .key = "k", .key_len = 1, .value = "v", .value_len = 1};
        ck_assert_int_eq(strata_wal_append(a->wal, &op, 1, STRATA_SYNC, &a->seqs[i], NULL), 0);
    }
    return NULL;
}

typedef struct {
    uint64_t expected;
    bool ordered;
    pthread_t leader_seen;
} apply_check_t;

static void check_appended(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                           uint64_t last_seq, bool synced)
{
    apply_check_t *c = arg;
    if (first_seq != c->expected || !synced || len == 0)
        c->ordered = false;
    c->expected = last_seq + 1;
}

START_TEST(concurrent_appenders_share_group_commits_with_gap_free_seqs)
{
    char *dir = ts_tempdir("wal");
    faultio_t *slow = faultio_new();
    /* A 2 ms fdatasync, like a slow disk: appenders must pile up behind it. */
    faultio_set_sync_delay_us(slow, 2000);
    apply_check_t check = {.expected = 1, .ordered = true};
    strata_wal_options_t opts = {
        .dir = dir, .io = faultio_io(slow), .on_appended = check_appended, .observer_arg = &check};
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    enum { THREADS = 8, EACH = 100 };
    appender_t a[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (appender_t){.wal = wal, .n = EACH, .seqs = calloc(EACH, sizeof(uint64_t))};
        pthread_create(&t[i], NULL, appender, &a[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    uint8_t *seen = calloc(THREADS * EACH + 1, 1);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < EACH; j++) {
            uint64_t s = a[i].seqs[j];
            ck_assert_uint_ge(s, 1);
            ck_assert_uint_le(s, THREADS * EACH);
            ck_assert_msg(!seen[s], "seq %llu handed out twice", (unsigned long long)s);
            seen[s] = 1;
            if (j)
                ck_assert_uint_gt(s, a[i].seqs[j - 1]);
        }
        free(a[i].seqs);
    }
    ck_assert(check.ordered);
    ck_assert_uint_eq(check.expected, THREADS * EACH + 1);
    strata_wal_stats_t stats;
    strata_wal_stats(wal, &stats);
    ck_assert_uint_eq(stats.appends, THREADS * EACH);
    ck_assert_msg(stats.syncs * 2 < stats.appends, "only %llu appends per sync",
                  (unsigned long long)(stats.appends / (stats.syncs ? stats.syncs : 1)));
    close_wal(&wal);
    faultio_destroy(&slow);
    free(seen);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- segments ---- */

START_TEST(delete_below_removes_only_sealed_segments_wholly_below)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 4096, 1, NULL, NULL);
    for (int i = 1; i <= 300; i++)
        put(wal, STRATA_ASYNC, "key", "0123456789012345678901234567890123456789");
    strata_wal_stats_t before, after;
    strata_wal_stats(wal, &before);
    uint32_t deleted = 0;
    ck_assert_int_eq(strata_wal_delete_below(wal, 150, &deleted, NULL), 0);
    strata_wal_stats(wal, &after);
    ck_assert_uint_gt(deleted, 0);
    ck_assert_uint_eq(after.segments, before.segments - deleted);
    /* Even a checkpoint past the end keeps the active segment. */
    ck_assert_int_eq(strata_wal_delete_below(wal, 1000000, &deleted, NULL), 0);
    strata_wal_stats(wal, &after);
    ck_assert_uint_eq(after.segments, 1);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(delete_below_keeps_every_seq_at_or_above_checkpoint)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 4096, 1, NULL, NULL);
    for (int i = 1; i <= 300; i++)
        put(wal, STRATA_ASYNC, "key", "0123456789012345678901234567890123456789");
    ck_assert_int_eq(strata_wal_delete_below(wal, 150, NULL, NULL), 0);
    close_wal(&wal);
    collect_t c = {.in_order = true};
    strata_wal_recovery_t report;
    wal = open_wal(dir, NULL, 4096, 1, &c, &report);
    ck_assert_uint_le(report.first_seq, 150);
    ck_assert_uint_gt(report.first_seq, 1);
    ck_assert_uint_eq(report.last_seq, 300);
    ck_assert_uint_eq(c.count, 300 - report.first_seq + 1);
    ck_assert(c.in_order);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- failures ---- */

START_TEST(failed_fdatasync_makes_the_log_read_only_for_good)
{
    char *dir = ts_tempdir("wal");
    faultio_t *fio = faultio_new();
    strata_wal_t *wal = open_wal(dir, faultio_io(fio), 0, 1, NULL, NULL);
    put(wal, STRATA_SYNC, "before", "ok");
    faultio_fail_sync_after(fio, 1);
    strata_wal_op_t op = {.type = STRATA_VALUE_PUT, .key = "x", .key_len = 1};
    strata_error_t err;
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_SYNC, NULL, &err), STRATA_EREADONLY);
    ck_assert_msg(strstr(err.msg, "fdatasync") != NULL, "message: %s", err.msg);
    /* The disk "recovers", but the log must not: a retried fsync can lie. */
    faultio_fail_sync_after(fio, 0);
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, &err), STRATA_EREADONLY);
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_SYNC, NULL, &err), STRATA_EREADONLY);
    ck_assert_int_eq(strata_wal_sync(wal, &err), STRATA_EREADONLY);
    ck_assert_uint_eq(strata_wal_durable_seq(wal), 1);
    strata_wal_close(&wal, NULL);
    faultio_destroy(&fio);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(failed_write_makes_the_log_read_only)
{
    char *dir = ts_tempdir("wal");
    faultio_t *fio = faultio_new();
    strata_wal_t *wal = open_wal(dir, faultio_io(fio), 0, 1, NULL, NULL);
    faultio_fail_write_after(fio, 1);
    strata_wal_op_t op = {.type = STRATA_VALUE_PUT, .key = "x", .key_len = 1};
    strata_error_t err;
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, &err), STRATA_EREADONLY);
    ck_assert_msg(strstr(err.msg, "write") != NULL, "message: %s", err.msg);
    faultio_fail_write_after(fio, 0);
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, &err), STRATA_EREADONLY);
    strata_wal_close(&wal, NULL);
    faultio_destroy(&fio);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static bool durable_reached(void *arg)
{
    strata_wal_t *wal = arg;
    return strata_wal_durable_seq(wal) >= strata_wal_last_seq(wal);
}

START_TEST(async_appends_become_durable_by_the_background_sync)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 0, 1, NULL, NULL);
    uint64_t seq = put(wal, STRATA_ASYNC, "k", "v");
    ck_assert_uint_eq(strata_wal_last_seq(wal), seq);
    ck_assert(ts_wait_for(durable_reached, wal, 5000));
    ck_assert_uint_eq(strata_wal_durable_seq(wal), seq);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(sync_written_covers_every_async_append_that_returned)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 0, 1, NULL, NULL);
    uint64_t last = 0;
    for (int i = 0; i < 100; i++)
        last = put(wal, STRATA_ASYNC, "k", "v");
    uint64_t durable = 0;
    strata_error_t err;
    ck_assert_msg(strata_wal_sync_written(wal, &durable, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(durable, last);
    ck_assert_uint_eq(strata_wal_durable_seq(wal), last);
    /* Nothing new: no fdatasync, same answer. */
    strata_wal_stats_t before, after;
    strata_wal_stats(wal, &before);
    ck_assert_int_eq(strata_wal_sync_written(wal, &durable, &err), 0);
    strata_wal_stats(wal, &after);
    ck_assert_uint_eq(durable, last);
    ck_assert_uint_eq(after.syncs, before.syncs);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(failed_sync_written_makes_the_log_read_only)
{
    char *dir = ts_tempdir("wal");
    faultio_t *fio = faultio_new();
    strata_wal_t *wal = open_wal(dir, faultio_io(fio), 0, 1, NULL, NULL);
    uint64_t seq = put(wal, STRATA_ASYNC, "k", "v");
    faultio_fail_sync_after(fio, 1);
    strata_error_t err;
    uint64_t durable = 99;
    ck_assert_int_eq(strata_wal_sync_written(wal, &durable, &err), STRATA_EREADONLY);
    ck_assert_msg(strstr(err.msg, "fdatasync") != NULL, "message: %s", err.msg);
    ck_assert_uint_lt(durable, seq);
    faultio_fail_sync_after(fio, 0);
    ck_assert_int_eq(strata_wal_sync_written(wal, NULL, &err), STRATA_EREADONLY);
    strata_wal_op_t op = {.type = STRATA_VALUE_PUT, .key = "x", .key_len = 1};
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, &err), STRATA_EREADONLY);
    strata_wal_close(&wal, NULL);
    faultio_destroy(&fio);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct {
    strata_wal_t *wal;
    atomic_bool stop;
    int failures;
    uint64_t calls;
} syncer_t;

static void *sync_loop(void *arg)
{
    syncer_t *s = arg;
    while (!atomic_load(&s->stop)) {
        uint64_t before = strata_wal_last_seq(s->wal), durable = 0;
        if (strata_wal_sync_written(s->wal, &durable, NULL) != 0 || durable < before)
            s->failures++;
        s->calls++;
    }
    return NULL;
}

/* Appenders on small segments roll often while a syncer loops: each call
 * must cover what was written before it, across rolls. */
START_TEST(sync_written_races_appends_and_segment_rolls)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 64 * 1024, 1, NULL, NULL);
    syncer_t s = {.wal = wal};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sync_loop, &s), 0);
    char value[200];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    uint64_t last = 0;
    for (int i = 0; i < 5000; i++)
        last = put(wal, STRATA_ASYNC, "key", value);
    atomic_store(&s.stop, true);
    pthread_join(t, NULL);
    ck_assert_int_eq(s.failures, 0);
    ck_assert_uint_gt(s.calls, 0);
    uint64_t durable = 0;
    ck_assert_int_eq(strata_wal_sync_written(wal, &durable, NULL), 0);
    ck_assert_uint_eq(durable, last);
    strata_wal_stats_t st;
    strata_wal_stats(wal, &st);
    ck_assert_uint_gt(st.segments, 2);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(oversize_and_malformed_ops_are_rejected_with_the_op_named)
{
    char *dir = ts_tempdir("wal");
    strata_wal_options_t opts = {.dir = dir, .max_entry_bytes = 1024};
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    static char big[2048];
    strata_wal_op_t ops[2] = {
        {.type = STRATA_VALUE_PUT, .key = "a", .key_len = 1},
        {.type = STRATA_VALUE_PUT, .key = "b", .key_len = 1, .value = big, .value_len = 2048},
    };
    strata_error_t err;
    ck_assert_int_eq(strata_wal_append(wal, ops, 2, STRATA_SYNC, NULL, &err), STRATA_ETOOBIG);
    ck_assert_msg(strstr(err.msg, "op 1") != NULL, "message: %s", err.msg);
    ops[1].value_len = 10;
    ops[1].type = 9;
    ck_assert_int_eq(strata_wal_append(wal, ops, 2, STRATA_SYNC, NULL, &err), STRATA_EINVAL);
    ck_assert_int_eq(strata_wal_append(wal, ops, 0, STRATA_SYNC, NULL, &err), STRATA_EINVAL);
    /* Nothing was written by the rejected calls. */
    ck_assert_uint_eq(strata_wal_last_seq(wal), 0);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- observers ---- */

/* What the observers saw. on_written calls are serialised by the WAL and
 * on_durable calls by its durable lock, so plain fields suffice for what
 * each writes; written_seq is read across the two. */
typedef struct {
    uint8_t *bytes; /* every group's bytes, concatenated */
    size_t len, cap;
    uint64_t groups;
    uint64_t next_first; /* first_seq the next group must carry */
    bool written_in_order;
    bool bytes_match_seqs; /* each group decodes to exactly first..last */
    _Atomic uint64_t written_seq;
    uint64_t durable_seq;
    uint64_t durable_calls;
    bool durable_monotonic;
    bool durable_after_written; /* never reports a seq whose bytes were not observed */
} observed_t;

static void observed_init(observed_t *o, uint64_t first_seq)
{
    memset(o, 0, sizeof *o);
    o->next_first = first_seq;
    o->written_in_order = o->bytes_match_seqs = o->durable_monotonic = true;
    o->durable_after_written = true;
    atomic_store(&o->written_seq, first_seq - 1);
}

static void on_written(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                       uint64_t last_seq)
{
    observed_t *o = arg;
    if (first_seq != o->next_first || last_seq < first_seq)
        o->written_in_order = false;
    o->next_first = last_seq + 1;
    uint64_t seq = first_seq;
    for (size_t off = 0; off < len;) {
        strata_entry_t e;
        size_t used = 0;
        if (strata_entry_decode(entries + off, len - off, 0, &e, &used, NULL) != 0 ||
            e.seq != seq++) {
            o->bytes_match_seqs = false;
            break;
        }
        off += used;
    }
    if (seq != last_seq + 1)
        o->bytes_match_seqs = false;
    if (o->len + len > o->cap) {
        o->cap = (o->len + len) * 2;
        o->bytes = realloc(o->bytes, o->cap);
        ck_assert_ptr_nonnull(o->bytes);
    }
    memcpy(o->bytes + o->len, entries, len);
    o->len += len;
    o->groups++;
    atomic_store(&o->written_seq, last_seq);
}

static void on_durable(void *arg, uint64_t seq)
{
    observed_t *o = arg;
    if (seq <= o->durable_seq)
        o->durable_monotonic = false;
    if (seq > atomic_load(&o->written_seq))
        o->durable_after_written = false;
    o->durable_seq = seq;
    o->durable_calls++;
}

static strata_wal_t *open_observed(const char *dir, uint64_t segment_bytes, observed_t *o)
{
    strata_wal_options_t opts = {.dir = dir,
                                 .segment_bytes = segment_bytes,
                                 .on_written = on_written,
                                 .on_durable = on_durable,
                                 .observer_arg = o};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err) == 0, "open: %s",
                  err.msg);
    return wal;
}

/* The entry bytes of every segment file in dir, oldest first. */
static uint8_t *segment_entry_bytes(const char *dir, size_t *len)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    uint8_t *out = NULL;
    *len = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t nl = strlen(name);
        if (nl > 4 && strcmp(name + nl - 4, ".wal") == 0) {
            char *path = ts_path(dir, name);
            uint64_t size = ts_file_size(path);
            ck_assert_uint_ge(size, 64);
            out = realloc(out, *len + (size - 64) + 1);
            ts_file_read_at(path, 64, out + *len, size - 64);
            *len += size - 64;
            free(path);
        }
        free(names[i]);
    }
    free(names);
    return out;
}

typedef struct {
    strata_wal_t *wal;
    int n;
    int thread;
} mixed_appender_t;

/* Singles and batches, sync and async, so groups mix both. */
static void *mixed_appender(void *arg)
{
    mixed_appender_t *a = arg;
    char value[96];
    memset(value, 'a' + a->thread, sizeof value);
    for (int i = 0; i < a->n; i++) {
        strata_wal_op_t ops[3];
        size_t n_ops = i % 5 == 0 ? 3 : 1;
        for (size_t j = 0; j < n_ops; j++)
            ops[j] = (strata_wal_op_t){.type = STRATA_VALUE_PUT,
                                       .key = "key",
                                       .key_len = 3,
                                       .value = value,
                                       .value_len = (uint32_t)(i % sizeof value)};
        strata_durability_t d = i % 3 == 0 ? STRATA_SYNC : STRATA_ASYNC;
        ck_assert_int_eq(strata_wal_append(a->wal, ops, n_ops, d, NULL, NULL), 0);
    }
    return NULL;
}

static void run_mixed_appenders(strata_wal_t *wal, int threads, int each)
{
    pthread_t t[8];
    mixed_appender_t a[8];
    ck_assert_int_le(threads, 8);
    for (int i = 0; i < threads; i++) {
        a[i] = (mixed_appender_t){.wal = wal, .n = each, .thread = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, mixed_appender, &a[i]), 0);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

START_TEST(written_observer_sees_exactly_the_bytes_of_the_segment_files)
{
    char *dir = ts_tempdir("wal");
    observed_t o;
    observed_init(&o, 1);
    /* Small segments, so groups land on both sides of many rolls. */
    strata_wal_t *wal = open_observed(dir, 16 * 1024, &o);
    run_mixed_appenders(wal, 4, 300);
    uint64_t last = strata_wal_last_seq(wal);
    strata_wal_stats_t stats;
    strata_wal_stats(wal, &stats);
    ck_assert_uint_gt(stats.segments, 3);
    close_wal(&wal);

    ck_assert(o.written_in_order);
    ck_assert(o.bytes_match_seqs);
    ck_assert_uint_eq(o.next_first, last + 1);
    ck_assert_uint_eq(o.groups, stats.groups);
    size_t file_len = 0;
    uint8_t *file_bytes = segment_entry_bytes(dir, &file_len);
    ck_assert_uint_eq(file_len, o.len);
    ck_assert(memcmp(file_bytes, o.bytes, o.len) == 0);
    free(file_bytes);
    free(o.bytes);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(durable_observer_is_monotonic_and_reaches_the_last_seq)
{
    char *dir = ts_tempdir("wal");
    observed_t o;
    observed_init(&o, 1);
    strata_wal_t *wal = open_observed(dir, 64 * 1024, &o);
    /* A sync_written loop races the leaders and the timer for the advance. */
    syncer_t s = {.wal = wal};
    pthread_t syncer;
    ck_assert_int_eq(pthread_create(&syncer, NULL, sync_loop, &s), 0);
    run_mixed_appenders(wal, 6, 200);
    atomic_store(&s.stop, true);
    pthread_join(syncer, NULL);
    ck_assert_int_eq(s.failures, 0);
    ck_assert_int_eq(strata_wal_sync(wal, NULL), 0);
    uint64_t last = strata_wal_last_seq(wal);
    close_wal(&wal);
    ck_assert(o.durable_monotonic);
    ck_assert(o.durable_after_written);
    ck_assert_uint_gt(o.durable_calls, 1);
    ck_assert_uint_eq(o.durable_seq, last);
    free(o.bytes);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(durable_observer_hears_async_appends_from_the_timer)
{
    char *dir = ts_tempdir("wal");
    observed_t o;
    observed_init(&o, 1);
    strata_wal_t *wal = open_observed(dir, 0, &o);
    uint64_t seq = put(wal, STRATA_ASYNC, "k", "v");
    ck_assert(ts_wait_for(durable_reached, wal, 5000));
    close_wal(&wal);
    ck_assert_uint_eq(o.durable_seq, seq);
    ck_assert(o.durable_monotonic);
    free(o.bytes);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(reopen_does_not_report_recovered_entries_durable)
{
    char *dir = ts_tempdir("wal");
    strata_wal_t *wal = open_wal(dir, NULL, 0, 1, NULL, NULL);
    for (int i = 0; i < 10; i++)
        put(wal, STRATA_SYNC, "k", "v");
    close_wal(&wal);
    observed_t o;
    observed_init(&o, 11);
    wal = open_observed(dir, 0, &o);
    ck_assert_uint_eq(strata_wal_durable_seq(wal), 10);
    ck_assert_uint_eq(o.durable_calls, 0);
    ck_assert_uint_eq(o.groups, 0);
    ck_assert_uint_eq(put(wal, STRATA_SYNC, "k", "v"), 11);
    ck_assert_uint_eq(o.durable_seq, 11);
    ck_assert_uint_eq(o.durable_calls, 1);
    close_wal(&wal);
    ck_assert(o.written_in_order);
    free(o.bytes);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- retention ---- */

static strata_wal_t *open_retaining(const char *dir, uint64_t retain_bytes, uint64_t retain_ms)
{
    strata_wal_options_t opts = {
        .dir = dir, .segment_bytes = 4096, .retain_bytes = retain_bytes, .retain_ms = retain_ms};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err) == 0, "open: %s",
                  err.msg);
    return wal;
}

static void fill_segments(strata_wal_t *wal, int n)
{
    for (int i = 0; i < n; i++)
        put(wal, STRATA_ASYNC, "key", "0123456789012345678901234567890123456789");
}

/* Sizes of the segment files, oldest first; returns how many. */
static int segment_sizes(const char *dir, uint64_t *sizes, int max)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort), count = 0;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]->d_name);
        if (nl > 4 && strcmp(names[i]->d_name + nl - 4, ".wal") == 0 && count < max) {
            char *path = ts_path(dir, names[i]->d_name);
            sizes[count++] = ts_file_size(path);
            free(path);
        }
        free(names[i]);
    }
    free(names);
    return count;
}

START_TEST(retain_bytes_keeps_the_newest_segments_up_to_that_size)
{
    char *dir = ts_tempdir("wal");
    uint64_t retain = 3 * 4096 + 100;
    strata_wal_t *wal = open_retaining(dir, retain, 0);
    fill_segments(wal, 400);
    uint64_t sizes[64];
    int before = segment_sizes(dir, sizes, 64);
    ck_assert_int_gt(before, 6);
    /* Expected: drop the oldest while it and everything newer exceed retain. */
    uint64_t total = 0;
    for (int i = 0; i < before; i++)
        total += sizes[i];
    int expect_deleted = 0;
    while (expect_deleted < before - 1 && total > retain)
        total -= sizes[expect_deleted++];
    uint32_t deleted = 0;
    ck_assert_int_eq(strata_wal_delete_below(wal, UINT64_MAX, &deleted, NULL), 0);
    ck_assert_int_eq((int)deleted, expect_deleted);
    int after = segment_sizes(dir, sizes, 64);
    ck_assert_int_eq(after, before - expect_deleted);
    ck_assert_int_gt(after, 1);
    uint64_t kept = 0;
    for (int i = 0; i < after; i++)
        kept += sizes[i];
    ck_assert_uint_le(kept, retain);
    /* The checkpoint still rules: nothing at or above it goes. */
    close_wal(&wal);
    wal = open_retaining(dir, retain, 0);
    ck_assert_int_eq(strata_wal_delete_below(wal, 1, &deleted, NULL), 0);
    ck_assert_uint_eq(deleted, 0);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct {
    strata_wal_t *wal;
    uint32_t deleted;
} deleter_t;

static bool all_but_active_deleted(void *arg)
{
    deleter_t *d = arg;
    uint32_t n = 0;
    ck_assert_int_eq(strata_wal_delete_below(d->wal, UINT64_MAX, &n, NULL), 0);
    d->deleted += n;
    strata_wal_stats_t stats;
    strata_wal_stats(d->wal, &stats);
    return stats.segments == 1;
}

START_TEST(retain_ms_keeps_young_segments_and_lets_old_ones_go)
{
    char *dir = ts_tempdir("wal");
    /* An hour, by age only: everything is young, so everything stays. */
    strata_wal_t *wal = open_retaining(dir, 0, 3600 * 1000);
    fill_segments(wal, 300);
    strata_wal_stats_t before;
    strata_wal_stats(wal, &before);
    ck_assert_uint_gt(before.segments, 3);
    uint32_t deleted = 99;
    ck_assert_int_eq(strata_wal_delete_below(wal, UINT64_MAX, &deleted, NULL), 0);
    ck_assert_uint_eq(deleted, 0);
    close_wal(&wal);

    /* One millisecond, with room to spare by size: age alone lets them go. */
    wal = open_retaining(dir, UINT64_MAX, 1);
    deleter_t d = {.wal = wal};
    ck_assert(ts_wait_for(all_but_active_deleted, &d, 5000));
    ck_assert_uint_eq(d.deleted, before.segments - 1);
    close_wal(&wal);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- entry decoder ---- */

/* One entry as the WAL writes it, captured through on_written. */
static size_t capture_entry(uint8_t *out, size_t cap)
{
    char *dir = ts_tempdir("wal");
    observed_t o;
    observed_init(&o, 1);
    strata_wal_t *wal = open_observed(dir, 0, &o);
    strata_wal_op_t op = {.type = STRATA_VALUE_PUT,
                          .topic = "trades",
                          .topic_len = 6,
                          .key = "key-1",
                          .key_len = 5,
                          .value = "value-1",
                          .value_len = 7};
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_SYNC, NULL, NULL), 0);
    close_wal(&wal);
    ck_assert_uint_le(o.len, cap);
    memcpy(out, o.bytes, o.len);
    free(o.bytes);
    ts_rmtree(dir);
    free(dir);
    return o.len;
}

static void reseal(uint8_t *entry, size_t len)
{
    uint32_t crc = strata_crc32c(0, entry + 4, len - 4);
    memcpy(entry, &crc, 4);
}

static void expect_decode_error(const uint8_t *buf, size_t len, uint32_t cap, int code,
                                const char *field)
{
    strata_entry_t e;
    strata_error_t err;
    ck_assert_int_eq(strata_entry_decode(buf, len, cap, &e, NULL, &err), code);
    ck_assert_msg(strstr(err.msg, field) != NULL, "expected '%s' in: %s", field, err.msg);
}

START_TEST(entry_decode_round_trips_and_names_the_bad_field)
{
    uint8_t good[256], bad[256];
    size_t len = capture_entry(good, sizeof good);
    ck_assert_uint_eq(len, 40 + 6 + 5 + 7);
    strata_entry_t e;
    size_t used = 0;
    strata_error_t err;
    /* Trailing bytes are the next entry's business. */
    ck_assert_int_eq(strata_entry_decode(good, sizeof good, 0, &e, &used, &err), 0);
    ck_assert_uint_eq(used, len);
    ck_assert_uint_eq(e.seq, 1);
    ck_assert_uint_eq(e.type, STRATA_VALUE_PUT);
    ck_assert(e.topic_len == 6 && memcmp(e.topic, "trades", 6) == 0);
    ck_assert(e.key_len == 5 && memcmp(e.key, "key-1", 5) == 0);
    ck_assert(e.value_len == 7 && memcmp(e.value, "value-1", 7) == 0);

    expect_decode_error(good, 30, 0, STRATA_ECORRUPT, "torn header");
    expect_decode_error(good, len - 1, 0, STRATA_ECORRUPT, "payload_len");
    expect_decode_error(good, len, 10, STRATA_ETOOBIG, "payload_len 18 is over the cap 10");

    memcpy(bad, good, len);
    bad[len - 1] ^= 1;
    expect_decode_error(bad, len, 0, STRATA_ECORRUPT, "crc");

    memcpy(bad, good, len);
    bad[10] = 200; /* topic_len past payload_len */
    reseal(bad, len);
    expect_decode_error(bad, len, 0, STRATA_ECORRUPT, "topic_len 200");

    memcpy(bad, good, len);
    bad[8] = 9;
    reseal(bad, len);
    expect_decode_error(bad, len, 0, STRATA_ECORRUPT, "type 9");

    memcpy(bad, good, len);
    bad[9] = 0x80;
    reseal(bad, len);
    expect_decode_error(bad, len, 0, STRATA_ECORRUPT, "flags 0x80");

    memset(bad, 0, sizeof bad);
    expect_decode_error(bad, len, 0, STRATA_ECORRUPT, "zero fill");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wal");
    TCase *tc = tcase_create("wal");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, append_then_reopen_replays_every_entry_in_order);
    tcase_add_test(tc, replay_from_skips_older_entries_and_whole_segments);
    tcase_add_test(tc, batch_gets_consecutive_seqs_and_replays_whole);
    tcase_add_test(tc, concurrent_appenders_share_group_commits_with_gap_free_seqs);
    tcase_add_test(tc, delete_below_removes_only_sealed_segments_wholly_below);
    tcase_add_test(tc, delete_below_keeps_every_seq_at_or_above_checkpoint);
    tcase_add_test(tc, failed_fdatasync_makes_the_log_read_only_for_good);
    tcase_add_test(tc, failed_write_makes_the_log_read_only);
    tcase_add_test(tc, async_appends_become_durable_by_the_background_sync);
    tcase_add_test(tc, sync_written_covers_every_async_append_that_returned);
    tcase_add_test(tc, failed_sync_written_makes_the_log_read_only);
    tcase_add_test(tc, sync_written_races_appends_and_segment_rolls);
    tcase_add_test(tc, oversize_and_malformed_ops_are_rejected_with_the_op_named);
    tcase_add_test(tc, written_observer_sees_exactly_the_bytes_of_the_segment_files);
    tcase_add_test(tc, durable_observer_is_monotonic_and_reaches_the_last_seq);
    tcase_add_test(tc, durable_observer_hears_async_appends_from_the_timer);
    tcase_add_test(tc, reopen_does_not_report_recovered_entries_durable);
    tcase_add_test(tc, retain_bytes_keeps_the_newest_segments_up_to_that_size);
    tcase_add_test(tc, retain_ms_keeps_young_segments_and_lets_old_ones_go);
    tcase_add_test(tc, entry_decode_round_trips_and_names_the_bad_field);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
