/* The read-only WAL cursor: reading a multi-segment log, following a log
 * being appended, seeks by seq and time, truncation under the cursor, and
 * the end of what is intact (torn tails, unfinished groups) versus damage. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/crc.h"
#include "strata/db.h"
#include "strata/entry.h"
#include "strata/wal.h"
#include "support.h"

/* ---- entries with contents derived from their seq ---- */

typedef struct {
    char key[32];
    char topic[8];
    char value[300];
} op_data_t;

static strata_wal_op_t make_op(uint64_t seq, op_data_t *d)
{
    int key_len = snprintf(d->key, sizeof d->key, "key-%" PRIu64, seq);
    int topic_len = seq % 4 == 0 ? snprintf(d->topic, sizeof d->topic, "t%d", (int)(seq % 7)) : 0;
    uint32_t value_len = (uint32_t)((seq * 37) % sizeof d->value);
    memset(d->value, 'a' + (int)(seq % 26), value_len);
    return (strata_wal_op_t){
        .type = seq % 10 == 9 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT,
        .topic = d->topic,
        .topic_len = (uint16_t)topic_len,
        .key = d->key,
        .key_len = (uint32_t)key_len,
        .value = d->value,
        .value_len = seq % 10 == 9 ? 0 : value_len,
    };
}

static void check_entry(const strata_entry_t *e, uint64_t seq)
{
    op_data_t d;
    strata_wal_op_t op = make_op(seq, &d);
    ck_assert_uint_eq(e->seq, seq);
    ck_assert_uint_eq(e->type, op.type);
    ck_assert_uint_eq(e->topic_len, op.topic_len);
    ck_assert_uint_eq(e->key_len, op.key_len);
    ck_assert_uint_eq(e->value_len, op.value_len);
    ck_assert(memcmp(e->topic, op.topic, op.topic_len) == 0);
    ck_assert(memcmp(e->key, op.key, op.key_len) == 0);
    ck_assert(memcmp(e->value, op.value, op.value_len) == 0);
}

/* Batches of 1 to 4 ops, the size set by the seq they start at. */
static size_t batch_size_at(uint64_t seq)
{
    return (size_t)(seq % 4) + 1;
}

/* Appends entries so that the log ends at last (given it ends at *next - 1). */
static void append_through(strata_wal_t *wal, uint64_t *next, uint64_t last,
                           strata_durability_t durability)
{
    while (*next <= last) {
        size_t n = batch_size_at(*next);
        if (*next + n - 1 > last)
            n = (size_t)(last - *next + 1);
        op_data_t data[4];
        strata_wal_op_t ops[4];
        for (size_t i = 0; i < n; i++)
            ops[i] = make_op(*next + i, &data[i]);
        uint64_t first = 0;
        strata_error_t err;
        ck_assert_msg(strata_wal_append(wal, ops, n, durability, &first, &err) == 0, "append: %s",
                      err.msg);
        ck_assert_uint_eq(first, *next);
        *next += n;
    }
}

/* ---- the writer side ---- */

typedef struct {
    uint8_t *bytes; /* every group's bytes, concatenated (on_written) */
    size_t len, cap;
} written_t;

static void on_written(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                       uint64_t last_seq)
{
    written_t *w = arg;
    if (w->len + len > w->cap) {
        w->cap = (w->len + len) * 2;
        w->bytes = realloc(w->bytes, w->cap);
        ck_assert_ptr_nonnull(w->bytes);
    }
    memcpy(w->bytes + w->len, entries, len);
    w->len += len;
}

static strata_wal_t *open_wal(const char *dir, uint64_t segment_bytes, written_t *w)
{
    strata_wal_options_t opts = {.dir = dir,
                                 .segment_bytes = segment_bytes,
                                 .on_written = w ? on_written : NULL,
                                 .observer_arg = w};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err) == 0, "open %s: %s", dir,
                  err.msg);
    return wal;
}

static void close_wal(strata_wal_t **wal)
{
    strata_error_t err;
    ck_assert_msg(strata_wal_close(wal, &err) == 0, "close: %s", err.msg);
}

/* A closed log of seqs 1..n in small segments. */
static char *make_log(uint64_t n, uint64_t segment_bytes, written_t *w)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, segment_bytes, w);
    uint64_t next = 1;
    append_through(wal, &next, n, STRATA_ASYNC);
    close_wal(&wal);
    return dir;
}

static char *segment_file(const char *dir, uint64_t number)
{
    char name[32];
    snprintf(name, sizeof name, "%016" PRIu64 ".wal", number);
    return ts_path(dir, name);
}

static uint64_t count_segments(const char *dir)
{
    uint64_t n = 0;
    for (;; n++) {
        char *path = segment_file(dir, n + 1);
        bool exists = access(path, F_OK) == 0;
        free(path);
        if (!exists)
            return n;
    }
}

/* ---- the reader side ---- */

static strata_wal_cursor_t *open_cursor(const char *dir)
{
    strata_wal_cursor_t *c = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_cursor_open(dir, 0, &c, &err) == 0, "cursor open %s: %s", dir,
                  err.msg);
    return c;
}

static void seek(strata_wal_cursor_t *c, uint64_t seq)
{
    strata_error_t err;
    ck_assert_msg(strata_wal_cursor_seek(c, seq, &err) == 0, "seek %" PRIu64 ": %s", seq, err.msg);
}

/* next() that must return seq, checked against its contents. */
static void expect_next(strata_wal_cursor_t *c, uint64_t limit, uint64_t seq)
{
    strata_entry_t e;
    strata_error_t err;
    int rc = strata_wal_cursor_next(c, limit, &e, NULL, NULL, &err);
    ck_assert_msg(rc == 0, "next, expecting seq %" PRIu64 ": %d %s", seq, rc, err.msg);
    check_entry(&e, seq);
}

static void expect_end(strata_wal_cursor_t *c, uint64_t limit)
{
    strata_entry_t e;
    strata_error_t err;
    int rc = strata_wal_cursor_next(c, limit, &e, NULL, NULL, &err);
    ck_assert_msg(rc == STRATA_ETIMEDOUT, "expected the end, got %d (seq %" PRIu64 ") %s", rc,
                  rc == 0 ? e.seq : 0, err.msg);
}

/* ---- tests ---- */

START_TEST(reads_every_entry_of_a_multi_segment_log_with_the_written_bytes)
{
    written_t w = {0};
    char *dir = make_log(2000, 16 * 1024, &w);
    ck_assert_uint_gt(count_segments(dir), 5);
    strata_wal_cursor_t *c = open_cursor(dir);
    ck_assert_uint_eq(strata_wal_cursor_oldest_seq(c), 1);
    size_t raw_off = 0;
    uint64_t batch_end = 0;
    for (uint64_t seq = 1; seq <= 2000; seq++) {
        strata_entry_t e;
        const uint8_t *raw = NULL;
        size_t raw_len = 0;
        strata_error_t err;
        int rc = strata_wal_cursor_next(c, 0, &e, &raw, &raw_len, &err);
        ck_assert_msg(rc == 0, "seq %" PRIu64 ": %s", seq, err.msg);
        check_entry(&e, seq);
        /* A batch's entries but its last carry the group flag. */
        if (seq > batch_end)
            batch_end = seq + batch_size_at(seq) - 1 < 2000 ? seq + batch_size_at(seq) - 1 : 2000;
        ck_assert_uint_eq(e.flags, seq < batch_end ? 1 : 0);
        ck_assert_uint_le(raw_off + raw_len, w.len);
        ck_assert_msg(memcmp(raw, w.bytes + raw_off, raw_len) == 0, "raw bytes of seq %" PRIu64,
                      seq);
        raw_off += raw_len;
        strata_entry_t again;
        size_t used = 0;
        ck_assert_int_eq(strata_entry_decode(raw, raw_len, 0, &again, &used, NULL), 0);
        ck_assert_uint_eq(used, raw_len);
        ck_assert_uint_eq(again.seq, seq);
    }
    ck_assert_uint_eq(raw_off, w.len);
    expect_end(c, 0);
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    ck_assert_ptr_null(c);
    free(w.bytes);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct {
    strata_wal_t *wal;
    uint64_t last;
} appender_t;

static void *append_concurrently(void *arg)
{
    appender_t *a = arg;
    uint64_t next = 1;
    /* Mixed durability in small steps, so the reader meets rolls, partly
     * written groups and quiet moments. */
    while (next <= a->last) {
        uint64_t to = next + 40 < a->last ? next + 40 : a->last;
        append_through(a->wal, &next, to, next % 3 ? STRATA_ASYNC : STRATA_SYNC);
    }
    return NULL;
}

START_TEST(follows_a_log_another_thread_is_appending)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 32 * 1024, NULL);
    strata_wal_cursor_t *c = open_cursor(dir);
    appender_t a = {.wal = wal, .last = 5000};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, append_concurrently, &a), 0);
    uint64_t expected = 1;
    uint64_t deadline = ts_now_ns() + 60ull * 1000000000ull;
    while (expected <= a.last) {
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err);
        if (rc == STRATA_ETIMEDOUT) {
            ck_assert_msg(ts_now_ns() < deadline, "stuck before seq %" PRIu64 ": %s", expected,
                          err.msg);
            usleep(100); /* a poll interval; the deadline bounds the wait */
            continue;
        }
        ck_assert_msg(rc == 0, "next at seq %" PRIu64 ": %s", expected, err.msg);
        check_entry(&e, expected);
        expected++;
    }
    pthread_join(t, NULL);
    expect_end(c, 0);
    ck_assert_uint_gt(count_segments(dir), 5);
    close_wal(&wal);
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(limit_seq_holds_the_cursor_back)
{
    char *dir = make_log(100, 4096, NULL);
    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 50; seq++)
        expect_next(c, 50, seq);
    expect_end(c, 50);
    expect_end(c, 50);
    expect_next(c, 51, 51);
    for (uint64_t seq = 52; seq <= 100; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    expect_end(c, 1000);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(seek_lands_on_the_seq_in_any_segment)
{
    char *dir = make_log(3000, 8192, NULL);
    uint64_t segments = count_segments(dir);
    ck_assert_uint_gt(segments, 10);
    strata_wal_cursor_t *c = open_cursor(dir);
    uint64_t targets[] = {1, 2, 2999, 3000, 1500, 777};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        seek(c, targets[i]);
        expect_next(c, 0, targets[i]);
    }
    /* Each segment's first seq, read from its header. */
    for (uint64_t n = 1; n <= segments; n++) {
        char *path = segment_file(dir, n);
        uint64_t first = 0;
        ts_file_read_at(path, 24, &first, 8);
        free(path);
        seek(c, first);
        expect_next(c, 0, first);
        if (first > 1) {
            seek(c, first - 1); /* the last entry of the segment before */
            expect_next(c, 0, first - 1);
            expect_next(c, 0, first);
        }
    }
    uint64_t rng = ts_seed("seek_lands_on_the_seq_in_any_segment");
    for (int i = 0; i < 50; i++) {
        uint64_t seq = 1 + ts_rand(&rng) % 3000;
        seek(c, seq);
        for (uint64_t s = seq; s < seq + 5 && s <= 3000; s++)
            expect_next(c, 0, s);
    }
    seek(c, 0); /* the oldest */
    expect_next(c, 0, 1);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(seeks_back_within_a_segment_land_on_the_seq)
{
    /* One segment of 20,000 entries: seeks back into what the cursor read
     * start from a mark it kept, not from the segment's first entry. */
    char *dir = make_log(20000, 64u << 20, NULL);
    ck_assert_uint_eq(count_segments(dir), 1);
    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 20000; seq++)
        expect_next(c, 0, seq);
    uint64_t rng = ts_seed("seeks_back_within_a_segment_land_on_the_seq");
    for (int i = 0; i < 200; i++) {
        uint64_t seq = 1 + ts_rand(&rng) % 20000;
        seek(c, seq);
        for (uint64_t s = seq; s < seq + 70 && s <= 20000; s++)
            expect_next(c, 0, s);
    }
    seek(c, 20000); /* the last, then the end */
    expect_next(c, 0, 20000);
    expect_end(c, 0);
    seek(c, 1);
    expect_next(c, 0, 1);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(seek_past_the_end_waits_there_for_the_writer)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 4096, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 100, STRATA_ASYNC);
    strata_wal_cursor_t *c = open_cursor(dir);
    seek(c, 250);
    expect_end(c, 0);
    append_through(wal, &next, 300, STRATA_ASYNC);
    expect_next(c, 0, 250);
    expect_next(c, 0, 251);
    close_wal(&wal);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cursor_on_an_empty_directory_waits_for_the_first_segment)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_cursor_t *c = open_cursor(dir);
    ck_assert_uint_eq(strata_wal_cursor_oldest_seq(c), 0);
    expect_end(c, 0);
    strata_wal_t *wal = open_wal(dir, 4096, NULL);
    expect_end(c, 0);
    uint64_t next = 1;
    append_through(wal, &next, 10, STRATA_SYNC);
    for (uint64_t seq = 1; seq <= 10; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    close_wal(&wal);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct {
    uint64_t seq;
    uint64_t ts;
} stamp_t;

START_TEST(seek_time_finds_the_first_entry_at_or_after_a_time)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 4096, NULL);
    uint64_t next = 1;
    /* One appender: every group has a commit time of its own. */
    append_through(wal, &next, 400, STRATA_ASYNC);
    close_wal(&wal);
    ck_assert_uint_gt(count_segments(dir), 5);

    stamp_t stamps[400];
    strata_wal_cursor_t *c = open_cursor(dir);
    for (int i = 0; i < 400; i++) {
        strata_entry_t e;
        ck_assert_int_eq(strata_wal_cursor_next(c, 0, &e, NULL, NULL, NULL), 0);
        stamps[i] = (stamp_t){e.seq, e.timestamp_ns};
        if (i)
            ck_assert_uint_ge(stamps[i].ts, stamps[i - 1].ts);
    }
    uint64_t rng = ts_seed("seek_time_finds_the_first_entry_at_or_after_a_time");
    for (int round = 0; round < 60; round++) {
        int pick = (int)(ts_rand(&rng) % 400);
        /* The entry's own time, and just after it. */
        for (uint64_t delta = 0; delta <= 1; delta++) {
            uint64_t ts = stamps[pick].ts + delta;
            int want = 0;
            while (want < 400 && stamps[want].ts < ts)
                want++;
            strata_error_t err;
            ck_assert_msg(strata_wal_cursor_seek_time(c, ts, &err) == 0, "%s", err.msg);
            if (want == 400) {
                expect_end(c, 0);
                continue;
            }
            strata_entry_t e;
            ck_assert_msg(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err) == 0, "%s", err.msg);
            ck_assert_uint_eq(e.seq, stamps[want].seq);
        }
    }
    ck_assert_int_eq(strata_wal_cursor_seek_time(c, 0, NULL), 0);
    expect_next(c, 0, 1);
    ck_assert_int_eq(strata_wal_cursor_seek_time(c, UINT64_MAX, NULL), 0);
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(groups_and_entries_larger_than_the_read_chunk)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 4 << 20, NULL);
    size_t sizes[] = {1500000, 3 << 20, 10, 2500000};
    uint8_t *value = malloc(3 << 20);
    for (size_t i = 0; i < 3 << 20; i++)
        value[i] = (uint8_t)(i * 31 + 7);
    strata_wal_op_t ops[4];
    for (int i = 0; i < 4; i++)
        ops[i] = (strata_wal_op_t){.type = STRATA_VALUE_PUT,
                                   .key = "big",
                                   .key_len = 3,
                                   .value = value,
                                   .value_len = (uint32_t)sizes[i]};
    /* One group of 7 MiB across the 4 MiB segment size, then singles. */
    ck_assert_int_eq(strata_wal_append(wal, ops, 4, STRATA_ASYNC, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(strata_wal_append(wal, &ops[i], 1, STRATA_ASYNC, NULL, NULL), 0);
    close_wal(&wal);
    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 8; seq++) {
        strata_entry_t e;
        strata_error_t err;
        ck_assert_msg(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(e.seq, seq);
        ck_assert_uint_eq(e.value_len, sizes[(seq - 1) % 4]);
        ck_assert(memcmp(e.value, value, e.value_len) == 0);
    }
    expect_end(c, 0);
    /* A reader whose cap is below the entries cannot read them: damage in a
     * sealed segment, named, not a crash or an allocation of the length. */
    strata_wal_cursor_close(&c);
    strata_error_t err;
    ck_assert_int_eq(strata_wal_cursor_open(dir, 1 << 20, &c, &err), 0);
    strata_entry_t e;
    ck_assert_int_eq(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "oversize length") != NULL, "message: %s", err.msg);
    strata_wal_cursor_close(&c);
    free(value);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(truncation_under_the_cursor)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 4096, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 600, STRATA_ASYNC);
    ck_assert_uint_gt(count_segments(dir), 8);

    /* One cursor mid-way through segment 1, one positioned there but idle. */
    strata_wal_cursor_t *reading = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 5; seq++)
        expect_next(reading, 0, seq);
    strata_wal_cursor_t *idle = open_cursor(dir);
    strata_wal_cursor_t *fresh = open_cursor(dir);

    ck_assert_int_eq(strata_wal_delete_below(wal, 300, NULL, NULL), 0);
    uint64_t oldest = strata_wal_cursor_oldest_seq(fresh);
    ck_assert_uint_gt(oldest, 100);
    ck_assert_uint_le(oldest, 300);

    /* A seek below the log names what is left. */
    strata_error_t err;
    ck_assert_int_eq(strata_wal_cursor_seek(fresh, 1, &err), STRATA_ETRUNCATED);
    char want[64];
    snprintf(want, sizeof want, "oldest seq retained is %" PRIu64, oldest);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message: %s", err.msg);
    ck_assert_int_eq(strata_wal_cursor_seek(fresh, oldest - 1, &err), STRATA_ETRUNCATED);
    seek(fresh, oldest);
    expect_next(fresh, 0, oldest);

    /* The open segment stays readable; past it the successor is gone. */
    uint64_t seq = 6;
    strata_entry_t e;
    int rc;
    while ((rc = strata_wal_cursor_next(reading, 0, &e, NULL, NULL, &err)) == 0)
        check_entry(&e, seq++);
    ck_assert_int_eq(rc, STRATA_ETRUNCATED);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message: %s", err.msg);
    ck_assert_uint_gt(seq, 6);
    ck_assert_uint_lt(seq, oldest);
    /* The idle cursor gets the same. */
    while ((rc = strata_wal_cursor_next(idle, 0, &e, NULL, NULL, &err)) == 0)
        ;
    ck_assert_int_eq(rc, STRATA_ETRUNCATED);
    /* A seek puts it back on the log. */
    seek(reading, oldest);
    for (seq = oldest; seq <= 600; seq++)
        expect_next(reading, 0, seq);
    expect_end(reading, 0);

    close_wal(&wal);
    strata_wal_cursor_close(&reading);
    strata_wal_cursor_close(&idle);
    strata_wal_cursor_close(&fresh);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_cursor_inside_a_deleted_segment_reads_on_into_the_next)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 4096, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 200, STRATA_ASYNC);
    strata_wal_cursor_t *c = open_cursor(dir);
    expect_next(c, 0, 1);
    /* Only segment 1 goes: its successor is still there to move on to. */
    char *seg2 = segment_file(dir, 2);
    uint64_t second_first = 0;
    ts_file_read_at(seg2, 24, &second_first, 8);
    free(seg2);
    uint32_t deleted = 0;
    ck_assert_int_eq(strata_wal_delete_below(wal, second_first, &deleted, NULL), 0);
    ck_assert_uint_eq(deleted, 1);
    for (uint64_t seq = 2; seq <= 200; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    close_wal(&wal);
    strata_wal_cursor_close(&c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* The last entry's bytes, cut from the end of the newest segment. */
static uint8_t *cut_last_entries(const char *path, size_t entry_bytes)
{
    uint64_t size = ts_file_size(path);
    uint8_t *bytes = malloc(entry_bytes);
    ts_file_read_at(path, size - entry_bytes, bytes, entry_bytes);
    ts_file_truncate(path, size - entry_bytes);
    return bytes;
}

static size_t encoded_size(uint64_t seq)
{
    op_data_t d;
    strata_wal_op_t op = make_op(seq, &d);
    return 40 + op.topic_len + op.key_len + op.value_len;
}

START_TEST(torn_tail_reads_as_the_end_until_the_entry_is_whole)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 0, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 99, STRATA_ASYNC);
    /* 100 alone, so the torn entry is a whole group of its own. */
    op_data_t d;
    strata_wal_op_t op = make_op(100, &d);
    ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_SYNC, NULL, NULL), 0);
    close_wal(&wal);

    char *path = segment_file(dir, 1);
    size_t len = encoded_size(100);
    uint8_t *entry = cut_last_entries(path, len);
    uint64_t end = ts_file_size(path);
    /* Half an entry at the end, as a crash mid-write leaves it. */
    ts_file_write_at(path, end, entry, len / 2);
    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 99; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    expect_end(c, 0);
    /* The rest arrives: the same offset is read again. */
    ts_file_write_at(path, end + len / 2, entry + len / 2, len - len / 2);
    expect_next(c, 0, 100);
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    free(entry);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(incomplete_group_is_not_returned_until_its_last_entry_arrives)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 0, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 20, STRATA_ASYNC);
    op_data_t d[3];
    strata_wal_op_t ops[3] = {make_op(21, &d[0]), make_op(22, &d[1]), make_op(23, &d[2])};
    ck_assert_int_eq(strata_wal_append(wal, ops, 3, STRATA_SYNC, NULL, NULL), 0);
    close_wal(&wal);

    /* 21 and 22 carry flag bit 0; 23 closes the group and is cut off. */
    char *path = segment_file(dir, 1);
    size_t len = encoded_size(23);
    uint8_t *last = cut_last_entries(path, len);
    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 20; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    seek(c, 22); /* not even from the middle of the group */
    expect_end(c, 0);
    seek(c, 21);
    ts_file_write_at(path, ts_file_size(path), last, len);
    expect_next(c, 0, 21);
    expect_next(c, 0, 22);
    expect_next(c, 0, 23);
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    free(last);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_writer_restarting_over_a_torn_group_is_followed)
{
    char *dir = ts_tempdir("walcur");
    strata_wal_t *wal = open_wal(dir, 0, NULL);
    uint64_t next = 1;
    append_through(wal, &next, 50, STRATA_ASYNC);
    op_data_t d[3];
    strata_wal_op_t ops[3] = {make_op(51, &d[0]), make_op(52, &d[1]), make_op(53, &d[2])};
    ck_assert_int_eq(strata_wal_append(wal, ops, 3, STRATA_SYNC, NULL, NULL), 0);
    close_wal(&wal);
    /* A crash mid-group: 51 whole (flag bit 0 set), half of 52, no 53. */
    char *path = segment_file(dir, 1);
    ts_wal_as_crashed(dir);
    ts_file_truncate(path, ts_file_size(path) - encoded_size(53) - encoded_size(52) / 2);

    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq <= 50; seq++)
        expect_next(c, 0, seq);
    expect_end(c, 0);
    /* The writer restarts: recovery cuts the group, and 51.. are written
     * again in its place, this time one entry per group. */
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_recovery_t report;
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, &report, &wal, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(report.last_seq, 50);
    ck_assert_str_ne(report.tail_kind, "");
    for (uint64_t seq = 51; seq <= 60; seq++) {
        op_data_t one;
        strata_wal_op_t op = make_op(seq, &one);
        ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, NULL), 0);
    }
    for (uint64_t seq = 51; seq <= 60; seq++) {
        strata_entry_t e;
        ck_assert_msg(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err) == 0, "%s", err.msg);
        check_entry(&e, seq);
        ck_assert_uint_eq(e.flags, 0);
    }
    expect_end(c, 0);
    close_wal(&wal);
    strata_wal_cursor_close(&c);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(damage_in_a_sealed_segment_is_corrupt_naming_the_file)
{
    char *dir = make_log(600, 4096, NULL);
    ck_assert_uint_gt(count_segments(dir), 3);
    char *path = segment_file(dir, 2);
    uint64_t first = 0;
    ts_file_read_at(path, 24, &first, 8);
    /* A payload byte of the segment's first entry. */
    uint64_t off = 64 + 45;
    uint8_t b;
    ts_file_read_at(path, off, &b, 1);
    b ^= 0x40;
    ts_file_write_at(path, off, &b, 1);

    strata_wal_cursor_t *c = open_cursor(dir);
    for (uint64_t seq = 1; seq < first; seq++)
        expect_next(c, 0, seq);
    strata_entry_t e;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "0000000000000002.wal offset") != NULL, "message: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "sealed") != NULL, "message: %s", err.msg);
    /* It stays there rather than skip the damage. */
    ck_assert_int_eq(strata_wal_cursor_next(c, 0, &e, NULL, NULL, &err), STRATA_ECORRUPT);
    /* Seeking past the damaged segment reads on. */
    char *seg3 = segment_file(dir, 3);
    uint64_t third_first = 0;
    ts_file_read_at(seg3, 24, &third_first, 8);
    free(seg3);
    seek(c, third_first);
    expect_next(c, 0, third_first);
    strata_wal_cursor_close(&c);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(unknown_format_version_is_refused_naming_file_and_offset)
{
    char *dir = make_log(10, 0, NULL);
    char *path = segment_file(dir, 1);
    uint8_t header[64];
    ts_file_read_at(path, 0, header, sizeof header);
    header[8] = 2;
    uint32_t crc = strata_crc32c(0, header, 60);
    memcpy(header + 60, &crc, 4);
    ts_file_write_at(path, 0, header, sizeof header);
    strata_wal_cursor_t *c = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_cursor_open(dir, 0, &c, &err), STRATA_EVERSION);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "0000000000000001.wal offset 8") != NULL, "message: %s", err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- through the embedded engine ---- */

typedef struct {
    _Atomic uint64_t written_last;
    _Atomic uint64_t durable;
} db_observed_t;

static void db_written(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                       uint64_t last_seq)
{
    atomic_store(&((db_observed_t *)arg)->written_last, last_seq);
}

static void db_durable(void *arg, uint64_t seq)
{
    atomic_store(&((db_observed_t *)arg)->durable, seq);
}

START_TEST(db_options_reach_the_wal_and_a_cursor_reads_its_log)
{
    char *dir = ts_tempdir("walcur");
    db_observed_t o = {0};
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    ck_assert_uint_eq(opts.wal_retain_bytes, 0);
    ck_assert_uint_eq(opts.wal_retain_ms, 0);
    opts.dir = dir;
    opts.durability = STRATA_ASYNC;
    opts.wal_segment_bytes = 4096;
    opts.wal_on_written = db_written;
    opts.wal_on_durable = db_durable;
    opts.wal_observer_arg = &o;
    opts.wal_retain_bytes = UINT64_MAX; /* keep every flushed segment */
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open: %s", err.msg);
    char key[32];
    for (int i = 1; i <= 600; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_int_eq(strata_db_put(db, NULL, key, strlen(key), "value", 5, NULL, NULL), 0);
    }
    ck_assert_uint_eq(atomic_load(&o.written_last), 600);
    ck_assert_int_eq(strata_db_sync(db, &err), 0);
    ck_assert_uint_eq(atomic_load(&o.durable), 600);
    ck_assert_int_eq(strata_db_flush(db, &err), 0);
    char *wal_dir = ts_path(dir, "wal");
    ck_assert_uint_gt(count_segments(wal_dir), 3); /* retained past the flush */
    strata_wal_cursor_t *c = open_cursor(wal_dir);
    ck_assert_uint_eq(strata_wal_cursor_oldest_seq(c), 1);
    for (uint64_t seq = 1; seq <= 600; seq++) {
        strata_entry_t e;
        ck_assert_int_eq(strata_wal_cursor_next(c, atomic_load(&o.durable), &e, NULL, NULL, &err),
                         0);
        ck_assert_uint_eq(e.seq, seq);
        snprintf(key, sizeof key, "key-%d", (int)seq);
        ck_assert(e.key_len == strlen(key) && memcmp(e.key, key, e.key_len) == 0);
    }
    expect_end(c, 0);
    strata_wal_cursor_close(&c);
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    free(wal_dir);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wal_cursor");
    TCase *tc = tcase_create("wal_cursor");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reads_every_entry_of_a_multi_segment_log_with_the_written_bytes);
    tcase_add_test(tc, follows_a_log_another_thread_is_appending);
    tcase_add_test(tc, limit_seq_holds_the_cursor_back);
    tcase_add_test(tc, seeks_back_within_a_segment_land_on_the_seq);
    tcase_add_test(tc, seek_lands_on_the_seq_in_any_segment);
    tcase_add_test(tc, seek_past_the_end_waits_there_for_the_writer);
    tcase_add_test(tc, cursor_on_an_empty_directory_waits_for_the_first_segment);
    tcase_add_test(tc, seek_time_finds_the_first_entry_at_or_after_a_time);
    tcase_add_test(tc, groups_and_entries_larger_than_the_read_chunk);
    tcase_add_test(tc, truncation_under_the_cursor);
    tcase_add_test(tc, a_cursor_inside_a_deleted_segment_reads_on_into_the_next);
    tcase_add_test(tc, torn_tail_reads_as_the_end_until_the_entry_is_whole);
    tcase_add_test(tc, incomplete_group_is_not_returned_until_its_last_entry_arrives);
    tcase_add_test(tc, a_writer_restarting_over_a_torn_group_is_followed);
    tcase_add_test(tc, damage_in_a_sealed_segment_is_corrupt_naming_the_file);
    tcase_add_test(tc, unknown_format_version_is_refused_naming_file_and_offset);
    tcase_add_test(tc, db_options_reach_the_wal_and_a_cursor_reads_its_log);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
