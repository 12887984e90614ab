/* The ring-then-WAL tail reader (strata/tail.h): a writer here appends to a
 * real WAL in a temp dir and copies each group into a real shm ring, as
 * strata-writer does; the tail must return every seq once, in order,
 * across ring laps, oversize entries, a writer restart and a seq limit. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/memtable.h"
#include "strata/ring.h"
#include "strata/tail.h"
#include "strata/wal.h"
#include "support.h"

#define RING_BYTES (64u * 1024u) /* the smallest ring: laps come quickly */
#define BIG_VALUE  (20u * 1024u) /* over a quarter of the ring: never copied into it */

/* ---- a writer: WAL + ring, contents derived from the seq ---- */

typedef struct {
    char *dir, *wal_dir, *shm_dir, *ring_path;
    strata_wal_t *wal;
    strata_ring_t *ring; /* NULL: the writer runs without one */
    uint64_t next;       /* the seq the next append gets */
} node_t;

static uint32_t value_len_of(uint64_t seq)
{
    return seq % 97 == 13 ? BIG_VALUE : (uint32_t)((seq * 37) % 300);
}

static void on_written(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                       uint64_t last_seq)
{
    (void)first_seq;
    node_t *n = arg;
    if (!n->ring)
        return;
    strata_error_t err;
    ck_assert_msg(strata_ring_append(n->ring, entries, len, &err) == 0, "ring append: %s", err.msg);
    strata_ring_publish(n->ring, last_seq);
}

static void node_open_wal(node_t *n)
{
    strata_wal_options_t opts = {.dir = n->wal_dir,
                                 .segment_bytes = 256 * 1024,
                                 .on_written = on_written,
                                 .observer_arg = n};
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, NULL, &n->wal, &err) == 0, "wal open: %s",
                  err.msg);
    n->next = strata_wal_last_seq(n->wal) + 1;
}

static void node_ring(node_t *n, uint64_t first_seq)
{
    strata_ring_options_t ro = {.capacity_bytes = RING_BYTES, .first_seq = first_seq};
    strata_error_t err;
    ck_assert_msg(strata_ring_create(n->ring_path, &ro, &n->ring, &err) == 0, "ring: %s", err.msg);
}

/* In place: the WAL's callback keeps n. */
static void node_init(node_t *n)
{
    memset(n, 0, sizeof *n);
    n->dir = ts_tempdir("tail");
    n->wal_dir = ts_path(n->dir, "wal");
    char tmpl[] = "/dev/shm/strata-tail-XXXXXX";
    n->shm_dir = mkdtemp(tmpl) ? strdup(tmpl) : ts_tempdir("tailshm");
    n->ring_path = ts_path(n->shm_dir, "ring");
    node_open_wal(n);
    node_ring(n, n->next);
}

/* A writer crash and restart: the ring goes, the WAL is reopened. */
static void node_stop(node_t *n)
{
    strata_ring_close(&n->ring, false);
    strata_error_t err;
    ck_assert_msg(strata_wal_close(&n->wal, &err) == 0, "wal close: %s", err.msg);
}

static void node_destroy(node_t *n)
{
    if (n->ring || n->wal)
        node_stop(n);
    ts_rmtree(n->dir);
    ts_rmtree(n->shm_dir);
    free(n->dir);
    free(n->wal_dir);
    free(n->shm_dir);
    free(n->ring_path);
}

static void node_write_through(node_t *n, uint64_t last)
{
    static char value[BIG_VALUE];
    while (n->next <= last) {
        uint64_t seq = n->next;
        char key[32], topic[8];
        int key_len = snprintf(key, sizeof key, "key-%" PRIu64, seq);
        int topic_len = snprintf(topic, sizeof topic, seq % 5 ? "t%d" : "$s%d", (int)(seq % 3));
        memset(value, 'a' + (int)(seq % 26), value_len_of(seq));
        strata_wal_op_t op = {.type = STRATA_VALUE_PUT,
                              .topic = topic,
                              .topic_len = (uint16_t)topic_len,
                              .key = key,
                              .key_len = (uint32_t)key_len,
                              .value = value,
                              .value_len = value_len_of(seq)};
        uint64_t first = 0;
        strata_error_t err;
        ck_assert_msg(strata_wal_append(n->wal, &op, 1, STRATA_SYNC, &first, &err) == 0,
                      "append: %s", err.msg);
        ck_assert_uint_eq(first, seq);
        n->next++;
    }
}

/* ---- the reader ---- */

static strata_tail_t *tail_open(node_t *n, uint64_t from_seq)
{
    strata_tail_options_t opts = {
        .ring_path = n->ring_path, .wal_dir = n->wal_dir, .from_seq = from_seq};
    strata_tail_t *tail = NULL;
    strata_error_t err;
    ck_assert_msg(strata_tail_open(&opts, &tail, &err) == 0, "tail open: %s", err.msg);
    return tail;
}

/* Reads exactly seqs from..to, in order, each whole and intact, waiting
 * for each with a deadline (a reattach may take up to 100 ms). */
static void expect_seqs(strata_tail_t *tail, uint64_t from, uint64_t to, uint64_t limit)
{
    for (uint64_t seq = from; seq <= to; seq++) {
        uint64_t deadline = ts_now_ns() + 5000000000ull;
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        strata_error_t err;
        int rc;
        while ((rc = strata_tail_next(tail, limit, 50, &e, &raw, &raw_len, &err)) ==
               STRATA_ETIMEDOUT)
            ck_assert_msg(ts_now_ns() < deadline, "seq %" PRIu64 " never came", seq);
        ck_assert_msg(rc == 0, "next (want %" PRIu64 "): %d %s", seq, rc, err.msg);
        ck_assert_msg(e.seq == seq, "got seq %" PRIu64 ", want %" PRIu64, e.seq, seq);
        ck_assert_uint_eq(e.value_len, value_len_of(seq));
        ck_assert(e.value_len == 0 ||
                  ((const uint8_t *)e.value)[e.value_len - 1] == (uint8_t)('a' + (int)(seq % 26)));
        /* raw is the whole entry and decodes to the same one. */
        strata_entry_t again;
        size_t used;
        ck_assert_int_eq(strata_entry_decode(raw, raw_len, 0, &again, &used, &err), 0);
        ck_assert_uint_eq(used, raw_len);
        ck_assert_uint_eq(again.seq, seq);
        ck_assert_uint_eq(strata_tail_next_seq(tail), seq + 1);
    }
}

static void expect_nothing(strata_tail_t *tail, uint64_t limit)
{
    strata_entry_t e;
    const uint8_t *raw;
    size_t raw_len;
    strata_error_t err;
    int rc = strata_tail_next(tail, limit, 0, &e, &raw, &raw_len, &err);
    ck_assert_msg(rc == STRATA_ETIMEDOUT, "next: %d (seq %" PRIu64 ") %s", rc, e.seq, err.msg);
}

START_TEST(reads_the_ring_in_order_without_touching_the_wal)
{
    node_t n;
    node_init(&n);
    strata_tail_t *tail = tail_open(&n, 1);
    node_write_through(&n, 12); /* below the first oversize seq, 13 */
    expect_seqs(tail, 1, 12, 0);
    expect_nothing(tail, 0);
    strata_tail_stats_t st;
    strata_tail_stats(tail, &st);
    ck_assert(st.ring_attached);
    ck_assert_uint_eq(st.ring_attaches, 1);
    ck_assert_uint_eq(st.wal_refills, 0);
    ck_assert_uint_eq(st.wal_entries, 0);
    ck_assert_uint_eq(strata_tail_start_seq(tail), 1);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(a_lapped_reader_is_filled_from_the_wal_with_no_gap_or_duplicate)
{
    node_t n;
    node_init(&n);
    strata_tail_t *tail = tail_open(&n, 1);
    node_write_through(&n, 10);
    expect_seqs(tail, 1, 5, 0);
    node_write_through(&n, 1500); /* many times the ring's size */
    expect_seqs(tail, 6, 1500, 0);
    expect_nothing(tail, 0);
    strata_tail_stats_t st;
    strata_tail_stats(tail, &st);
    ck_assert_uint_ge(st.laps, 1);
    ck_assert_uint_ge(st.wal_refills, 1);
    ck_assert_uint_ge(st.wal_entries, 1);
    /* And the ring again once caught up. */
    uint64_t from_wal = st.wal_entries;
    node_write_through(&n, 1510);
    expect_seqs(tail, 1501, 1510, 0);
    strata_tail_stats(tail, &st);
    ck_assert_uint_eq(st.wal_entries, from_wal);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(a_start_older_than_the_ring_begins_in_the_wal)
{
    node_t n;
    node_init(&n);
    node_write_through(&n, 800);
    strata_tail_t *tail = tail_open(&n, 1);
    expect_seqs(tail, 1, 800, 0);
    strata_tail_stats_t st;
    strata_tail_stats(tail, &st);
    ck_assert_uint_ge(st.wal_refills, 1);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(an_oversize_entry_comes_from_the_wal)
{
    node_t n;
    node_init(&n);
    strata_tail_t *tail = tail_open(&n, 1);
    node_write_through(&n, 12);
    expect_seqs(tail, 1, 12, 0);
    node_write_through(&n, 16); /* 13 is over a quarter of the ring */
    expect_seqs(tail, 13, 16, 0);
    strata_tail_stats_t st;
    strata_tail_stats(tail, &st);
    ck_assert_uint_eq(st.laps, 0);
    ck_assert_uint_ge(st.wal_refills, 1);
    ck_assert_uint_ge(st.wal_entries, 1);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(a_restarted_writer_is_followed_across_its_new_ring)
{
    node_t n;
    node_init(&n);
    strata_tail_t *tail = tail_open(&n, 1);
    node_write_through(&n, 10);
    expect_seqs(tail, 1, 10, 0);
    /* The writer stops, comes back, recovers and writes 11..20 before its
     * new ring exists (the ring starts at 21): the WAL holds the gap. */
    node_stop(&n);
    expect_nothing(tail, 0); /* the old ring: stale */
    node_open_wal(&n);
    ck_assert_uint_eq(n.next, 11);
    node_write_through(&n, 20);
    node_ring(&n, n.next);
    node_write_through(&n, 30);
    expect_seqs(tail, 11, 30, 0);
    strata_tail_stats_t st;
    strata_tail_stats(tail, &st);
    ck_assert_uint_ge(st.ring_attaches, 2);
    ck_assert_uint_ge(st.wal_refills, 1);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(the_limit_seq_is_never_passed)
{
    node_t n;
    node_init(&n);
    node_write_through(&n, 30);
    strata_tail_t *tail = tail_open(&n, 1);
    expect_seqs(tail, 1, 10, 10);
    expect_nothing(tail, 10);
    expect_seqs(tail, 11, 12, 12);
    expect_nothing(tail, 12);
    expect_seqs(tail, 13, 30, 0);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(from_zero_starts_at_the_rings_newest_and_waits_for_a_ring)
{
    node_t n;
    node_init(&n);
    node_write_through(&n, 5);
    strata_tail_options_t opts = {.ring_path = "/dev/shm/strata-tail-none/ring",
                                  .wal_dir = n.wal_dir};
    strata_tail_t *none = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_tail_open(&opts, &none, &err), 0);
    expect_nothing(none, 0);
    ck_assert_uint_eq(strata_tail_start_seq(none), 0);
    ck_assert_uint_eq(strata_tail_next_seq(none), 0);
    strata_tail_close(&none);

    strata_tail_t *tail = tail_open(&n, 0);
    expect_nothing(tail, 0);
    ck_assert_uint_eq(strata_tail_start_seq(tail), 6);
    node_write_through(&n, 8);
    expect_seqs(tail, 6, 8, 0);
    strata_tail_close(&tail);
    node_destroy(&n);
}
END_TEST

START_TEST(open_without_a_ring_or_a_wal_is_refused)
{
    strata_tail_options_t opts = {.wal_dir = "/tmp"};
    strata_tail_t *tail = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_tail_open(&opts, &tail, &err), STRATA_EINVAL);
    ck_assert_ptr_null(tail);
    ck_assert_msg(strstr(err.msg, "ring_path"), "%s", err.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tail");
    TCase *tc = tcase_create("tail");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reads_the_ring_in_order_without_touching_the_wal);
    tcase_add_test(tc, a_lapped_reader_is_filled_from_the_wal_with_no_gap_or_duplicate);
    tcase_add_test(tc, a_start_older_than_the_ring_begins_in_the_wal);
    tcase_add_test(tc, an_oversize_entry_comes_from_the_wal);
    tcase_add_test(tc, a_restarted_writer_is_followed_across_its_new_ring);
    tcase_add_test(tc, the_limit_seq_is_never_passed);
    tcase_add_test(tc, from_zero_starts_at_the_rings_newest_and_waits_for_a_ring);
    tcase_add_test(tc, open_without_a_ring_or_a_wal_is_refused);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
