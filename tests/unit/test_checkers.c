/* The history format and its checkers (tests/support/history.h,
 * checkers.h): every kind of problem caught in a handcrafted bad history
 * and absent from a good one, the register search's edges, and the JSONL
 * round trip. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkers.h"
#include "history.h"
#include "support.h"

#define N(a) (sizeof(a) / sizeof *(a))

/* ---- Building histories ---- */

static ts_op_t op(int p, ts_op_type_t type, ts_op_f_t f, const char *key, int64_t v)
{
    bool valued = f != TS_READ;
    return (ts_op_t){.process = p,
                     .type = type,
                     .f = f,
                     .key = key,
                     .vkind = valued ? TS_V_INT : TS_V_NONE,
                     .value = valued ? v : 0,
                     .t = 1};
}

static ts_op_t read_list(const char *key, int node, const int64_t *list, size_t n)
{
    return (ts_op_t){.process = 100 + node,
                     .type = TS_OK,
                     .f = TS_READ,
                     .key = key,
                     .vkind = TS_V_LIST,
                     .list = list,
                     .list_len = n,
                     .t = 1,
                     .node = node};
}

/* A register read's ok: value, or null when null is true. */
static ts_op_t read_ok(int p, const char *key, int64_t v, bool null)
{
    return (ts_op_t){.process = p,
                     .type = TS_OK,
                     .f = TS_READ,
                     .key = key,
                     .vkind = null ? TS_V_NULL : TS_V_INT,
                     .value = v,
                     .t = 1};
}

#define INV(p, f, k, v) op(p, TS_INVOKE, f, k, v)
#define OK(p, f, k, v)  op(p, TS_OK, f, k, v)

/* An acknowledged append that names its seq and term. */
static ts_op_t ack(int p, const char *key, int64_t v, uint64_t seq, uint64_t term)
{
    ts_op_t o = OK(p, TS_APPEND, key, v);
    o.seq = seq;
    o.term = term;
    o.node = 1;
    return o;
}

/* ---- Capturing a report ---- */

typedef struct {
    ts_report_t r;
    char *text;
    size_t len;
} capture_t;

static void capture_start(capture_t *c)
{
    memset(c, 0, sizeof *c);
    c->r.out = open_memstream(&c->text, &c->len);
    ck_assert_ptr_nonnull(c->r.out);
}

/* The lines so far (valid until capture_end). */
static const char *captured(capture_t *c)
{
    fflush(c->r.out);
    return c->text;
}

static void capture_end(capture_t *c)
{
    fclose(c->r.out);
    free(c->text);
}

/* Exactly want[k] findings of each kind k listed, none of any other. */
static void assert_counts(capture_t *c, const ts_problem_t *kinds, const size_t *want, size_t n)
{
    for (int k = 0; k < TS_N_PROBLEMS; k++) {
        size_t expected = 0;
        for (size_t i = 0; i < n; i++)
            if (kinds[i] == (ts_problem_t)k)
                expected = want[i];
        ck_assert_msg(c->r.count[k] == expected, "%zu %s findings, expected %zu; lines:\n%s",
                      c->r.count[k], ts_problem_name((ts_problem_t)k), expected, captured(c));
    }
}

static void assert_clean(capture_t *c)
{
    assert_counts(c, NULL, NULL, 0);
    ck_assert_msg(!captured(c) || !captured(c)[0], "unexpected lines:\n%s", captured(c));
}

/* The register checker passes history without a line. */
static void assert_linearizable(const ts_op_t *history, size_t n)
{
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_registers(history, n, 0, &c.r), 0);
    assert_clean(&c);
    capture_end(&c);
}

/* Some line starts with kind and holds every one of the words. */
static void assert_line(capture_t *c, ts_problem_t kind, const char *const *words, size_t n)
{
    const char *text = captured(c);
    ck_assert_ptr_nonnull(text);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        bool all = !strncmp(buf, ts_problem_name(kind), strlen(ts_problem_name(kind))) &&
                   buf[strlen(ts_problem_name(kind))] == ':';
        for (size_t i = 0; i < n && all; i++)
            all = strstr(buf, words[i]) != NULL;
        if (all)
            return;
        line += len + (end != NULL);
    }
    ck_abort_msg("no %s line naming all of %s ...; lines:\n%s", ts_problem_name(kind), words[0],
                 text);
}

#define ASSERT_LINE(c, kind, ...)                                                                  \
    assert_line(c, kind, (const char *const[]){__VA_ARGS__},                                       \
                N(((const char *const[]){__VA_ARGS__})))

/* ---- Append checker ---- */

/* k1: 1 and 2 ok, 3 info (may or may not have landed), 4 failed. */
static ts_op_t append_history[8];

static void make_append_history(void)
{
    const ts_op_t ops[] = {
        INV(1, TS_APPEND, "k1", 1),         INV(2, TS_APPEND, "k1", 2),
        OK(1, TS_APPEND, "k1", 1),          OK(2, TS_APPEND, "k1", 2),
        INV(3, TS_APPEND, "k1", 3),         INV(1, TS_APPEND, "k1", 4),
        op(3, TS_INFO, TS_APPEND, "k1", 3), op(1, TS_FAIL, TS_APPEND, "k1", 4),
    };
    memcpy(append_history, ops, sizeof ops);
}

START_TEST(appends_all_read_back_pass)
{
    static const int64_t with_info[] = {1, 2, 3}, without[] = {1, 2};
    /* node2 lacks the info append: that it never landed there is fine, and
     * [1,2] is a prefix of [1,2,3] */
    const ts_op_t finals[] = {read_list("k1", 1, with_info, 3), read_list("k1", 2, without, 2)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      0);
    assert_clean(&c);
    capture_end(&c);
}
END_TEST

START_TEST(an_acknowledged_append_missing_on_a_node_is_lost)
{
    static const int64_t all[] = {1, 2}, missing[] = {1};
    const ts_op_t finals[] = {read_list("k1", 1, all, 2), read_list("k1", 2, missing, 1),
                              read_list("k1", 3, all, 2)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      1);
    assert_counts(&c, (ts_problem_t[]){TS_LOST}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_LOST, "key k1 value 2", "p2", "missing on node2");
    capture_end(&c);
}
END_TEST

START_TEST(a_node_without_a_final_read_of_a_key_lost_it_all)
{
    static const int64_t all[] = {1, 2};
    const ts_op_t finals[] = {read_list("k1", 1, all, 2), read_list("other", 2, NULL, 0)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      2);
    assert_counts(&c, (ts_problem_t[]){TS_LOST}, (size_t[]){2}, 1);
    ASSERT_LINE(&c, TS_LOST, "key k1 value 1", "missing on node2");
    ASSERT_LINE(&c, TS_LOST, "key k1 value 2", "missing on node2");
    capture_end(&c);
}
END_TEST

START_TEST(a_value_no_append_invoked_is_unexpected)
{
    static const int64_t odd[] = {1, 2, 99};
    const ts_op_t finals[] = {read_list("k1", 1, odd, 3), read_list("k1", 2, odd, 3)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      1);
    assert_counts(&c, (ts_problem_t[]){TS_UNEXPECTED}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_UNEXPECTED, "key k1 value 99", "node1 node2");
    capture_end(&c);
}
END_TEST

START_TEST(a_value_read_twice_is_duplicated)
{
    static const int64_t twice[] = {1, 2, 2}, once[] = {1, 2};
    const ts_op_t finals[] = {read_list("k1", 1, once, 2), read_list("k1", 2, twice, 3)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      1);
    assert_counts(&c, (ts_problem_t[]){TS_DUPLICATED}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_DUPLICATED, "key k1 value 2", "2 times on node2");
    capture_end(&c);
}
END_TEST

START_TEST(a_failed_append_read_back_is_failed_but_present)
{
    static const int64_t with_failed[] = {1, 2, 4};
    const ts_op_t finals[] = {read_list("k1", 1, with_failed, 3),
                              read_list("k1", 2, with_failed, 3)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      1);
    assert_counts(&c, (ts_problem_t[]){TS_FAILED_BUT_PRESENT}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_FAILED_BUT_PRESENT, "key k1 value 4", "p1", "node1 node2");
    capture_end(&c);
}
END_TEST

START_TEST(lists_that_are_not_prefixes_of_each_other_are_divergent)
{
    static const int64_t a[] = {1, 2, 3}, b[] = {1, 3, 2};
    const ts_op_t finals[] = {read_list("k1", 1, a, 3), read_list("k1", 2, a, 3),
                              read_list("k1", 3, b, 3)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(append_history, N(append_history), finals, N(finals), &c.r),
                      2);
    assert_counts(&c, (ts_problem_t[]){TS_DIVERGENT}, (size_t[]){2}, 1);
    ASSERT_LINE(&c, TS_DIVERGENT, "key k1", "node1 and node3", "index 1 (2 vs 3)");
    ASSERT_LINE(&c, TS_DIVERGENT, "key k1", "node2 and node3", "index 1 (2 vs 3)");
    capture_end(&c);
}
END_TEST

/* k1's ok appends at t 100 (value 1) and 200 (value 2); neither node holds
 * value 2. */
static void lose_the_second_append(ts_op_t *history, const ts_op_t **finals_out)
{
    memcpy(history, append_history, sizeof append_history);
    history[2].t = 100;
    history[3].t = 200;
    static const int64_t first[] = {1};
    static ts_op_t finals[2];
    finals[0] = read_list("k1", 1, first, 1);
    finals[1] = read_list("k1", 2, first, 1);
    *finals_out = finals;
}

START_TEST(an_async_append_lost_inside_a_window_is_excused)
{
    ts_op_t history[N(append_history)];
    const ts_op_t *finals;
    lose_the_second_append(history, &finals);
    const ts_window_t windows[] = {{10, 20}, {150, 250}};
    size_t excused = 9;
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(
        ts_check_async_appends(history, N(history), finals, 2, windows, N(windows), &excused, &c.r),
        0);
    ck_assert_uint_eq(excused, 1);
    assert_clean(&c);
    capture_end(&c);
}
END_TEST

START_TEST(an_async_append_lost_outside_every_window_is_lost)
{
    ts_op_t history[N(append_history)];
    const ts_op_t *finals;
    lose_the_second_append(history, &finals);
    const ts_window_t windows[] = {{10, 20}, {201, 250}};
    size_t excused = 9;
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(
        ts_check_async_appends(history, N(history), finals, 2, windows, N(windows), &excused, &c.r),
        1);
    ck_assert_uint_eq(excused, 0);
    assert_counts(&c, (ts_problem_t[]){TS_LOST}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_LOST, "key k1 value 2", "node1", "node2");
    capture_end(&c);
}
END_TEST

START_TEST(an_async_append_one_node_kept_is_not_excused)
{
    /* Held on node1 and missing on node2: not lost to a failover but
     * missing from one node, whatever the windows say. */
    ts_op_t history[N(append_history)];
    const ts_op_t *finals_lost;
    lose_the_second_append(history, &finals_lost);
    static const int64_t both[] = {1, 2}, first[] = {1};
    const ts_op_t finals[] = {read_list("k1", 1, both, 2), read_list("k1", 2, first, 1)};
    const ts_window_t windows[] = {{0, 1000}};
    size_t excused = 9;
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_async_appends(history, N(history), finals, N(finals), windows,
                                             N(windows), &excused, &c.r),
                      1);
    ck_assert_uint_eq(excused, 0);
    ASSERT_LINE(&c, TS_LOST, "key k1 value 2", "missing on node2");
    capture_end(&c);
}
END_TEST

START_TEST(a_completion_without_an_invoke_is_malformed)
{
    const ts_op_t history[] = {OK(1, TS_APPEND, "k1", 1)};
    static const int64_t one[] = {1};
    const ts_op_t finals[] = {read_list("k1", 1, one, 1)};
    capture_t c;
    capture_start(&c);
    /* with no invoke there is no append of 1, so the read is unexpected too */
    ck_assert_uint_eq(ts_check_appends(history, N(history), finals, N(finals), &c.r), 2);
    assert_counts(&c, (ts_problem_t[]){TS_MALFORMED, TS_UNEXPECTED}, (size_t[]){1, 1}, 2);
    ASSERT_LINE(&c, TS_MALFORMED, "key k1", "p1", "line 1 completes no invoke");
    capture_end(&c);
}
END_TEST

/* ---- Register checker ---- */

START_TEST(a_linearizable_concurrent_register_history_passes)
{
    const ts_op_t history[] = {
        INV(4, TS_READ, "r1", 0), /* overlaps the write of 1: may read null */
        INV(1, TS_WRITE, "r1", 1),         INV(2, TS_READ, "r1", 0),
        OK(1, TS_WRITE, "r1", 1),          read_ok(4, "r1", 0, true),
        INV(3, TS_WRITE, "r1", 2),         read_ok(2, "r1", 2, false), /* saw 2 before its ok */
        INV(1, TS_READ, "r1", 0),          OK(3, TS_WRITE, "r1", 2),
        read_ok(1, "r1", 2, false),        INV(2, TS_WRITE, "r1", 3),
        op(2, TS_FAIL, TS_WRITE, "r1", 3), INV(3, TS_READ, "r1", 0),
        read_ok(3, "r1", 2, false),
    };
    assert_linearizable(history, N(history));
}
END_TEST

START_TEST(a_stale_read_is_nonlinearizable)
{
    const ts_op_t history[] = {
        INV(1, TS_WRITE, "r1", 1), OK(1, TS_WRITE, "r1", 1), INV(1, TS_WRITE, "r1", 2),
        OK(1, TS_WRITE, "r1", 2),  INV(2, TS_READ, "r1", 0), read_ok(2, "r1", 1, false),
    };
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_registers(history, N(history), 0, &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_NONLINEARIZABLE}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_NONLINEARIZABLE, "key r1", "the read of 1 by p2 (lines 5-6)",
                "leaves the register at 2");
    capture_end(&c);
}
END_TEST

/* p1's write of 5 timed out; what p2 reads afterwards decides. */
static size_t check_after_info(const ts_op_t *reads, size_t n, capture_t *c)
{
    ts_op_t history[8] = {INV(1, TS_WRITE, "r1", 5), op(1, TS_INFO, TS_WRITE, "r1", 5)};
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        history[len++] = INV(2, TS_READ, "r1", 0);
        history[len++] = reads[i];
    }
    return ts_check_registers(history, len, 0, &c->r);
}

START_TEST(an_info_write_may_have_applied_or_not)
{
    capture_t c;
    capture_start(&c);
    const ts_op_t applied[] = {read_ok(2, "r1", 5, false)};
    ck_assert_uint_eq(check_after_info(applied, 1, &c), 0);
    const ts_op_t not_applied[] = {read_ok(2, "r1", 0, true), read_ok(2, "r1", 0, true)};
    ck_assert_uint_eq(check_after_info(not_applied, 2, &c), 0);
    /* late: not yet at the first read, applied by the second */
    const ts_op_t late[] = {read_ok(2, "r1", 0, true), read_ok(2, "r1", 5, false)};
    ck_assert_uint_eq(check_after_info(late, 2, &c), 0);
    assert_clean(&c);
    /* but once seen it stays: nothing writes null */
    const ts_op_t undone[] = {read_ok(2, "r1", 5, false), read_ok(2, "r1", 0, true)};
    ck_assert_uint_eq(check_after_info(undone, 2, &c), 1);
    assert_counts(&c, (ts_problem_t[]){TS_NONLINEARIZABLE}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_NONLINEARIZABLE, "key r1", "the read of null by p2 (lines 5-6)");
    capture_end(&c);
}
END_TEST

START_TEST(a_failed_write_read_back_is_nonlinearizable)
{
    const ts_op_t history[] = {INV(1, TS_WRITE, "r1", 7), op(1, TS_FAIL, TS_WRITE, "r1", 7),
                               INV(2, TS_READ, "r1", 0), read_ok(2, "r1", 7, false)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_registers(history, N(history), 0, &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_NONLINEARIZABLE}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_NONLINEARIZABLE, "key r1", "the read of 7 by p2", "at null");
    capture_end(&c);
}
END_TEST

START_TEST(a_read_of_zero_is_not_a_read_of_null)
{
    const ts_op_t history[] = {INV(2, TS_READ, "r2", 0), read_ok(2, "r2", 0, false)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_registers(history, N(history), 0, &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_NONLINEARIZABLE}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_NONLINEARIZABLE, "key r2", "the read of 0 by p2 (lines 1-2)");
    capture_end(&c);
}
END_TEST

/* Concurrent writes of 1..writes, all acknowledged, then reads of 1 and 2
 * one after the other: no order explains both, and proving so means
 * visiting every subset of the writes with every last write. */
static size_t check_many_writes(int writes, size_t max_states, capture_t *c)
{
    ts_op_t history[2 * 32 + 4];
    size_t len = 0;
    for (int w = 1; w <= writes; w++)
        history[len++] = INV(w, TS_WRITE, "r9", w);
    for (int w = 1; w <= writes; w++)
        history[len++] = OK(w, TS_WRITE, "r9", w);
    history[len++] = INV(0, TS_READ, "r9", 0);
    history[len++] = read_ok(0, "r9", 1, false);
    history[len++] = INV(0, TS_READ, "r9", 0);
    history[len++] = read_ok(0, "r9", 2, false);
    return ts_check_registers(history, len, max_states, &c->r);
}

START_TEST(a_search_past_its_bound_reports_unknown_not_a_violation)
{
    capture_t c;
    capture_start(&c);
    /* few writes: the search completes and finds the violation */
    ck_assert_uint_eq(check_many_writes(6, 0, &c), 1);
    assert_counts(&c, (ts_problem_t[]){TS_NONLINEARIZABLE}, (size_t[]){1}, 1);
    capture_end(&c);
    /* 22: 22 * 2^21 states, past the default bound too; a lower bound
     * keeps the test quick under the sanitizers */
    capture_start(&c);
    ck_assert_uint_eq(check_many_writes(22, 100000, &c), 0);
    assert_counts(&c, (ts_problem_t[]){TS_UNKNOWN}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_UNKNOWN, "key r9", "100000 states", "24 operations");
    capture_end(&c);
}
END_TEST

START_TEST(a_lost_then_overwritten_write_hides_from_a_register_not_from_appends)
{
    const ts_op_t registers[] = {INV(1, TS_WRITE, "r1", 1), OK(1, TS_WRITE, "r1", 1),
                                 INV(1, TS_WRITE, "r1", 2), OK(1, TS_WRITE, "r1", 2),
                                 INV(2, TS_READ, "r1", 0),  read_ok(2, "r1", 2, false)};
    assert_linearizable(registers, N(registers));
    capture_t c;

    const ts_op_t appends[] = {INV(1, TS_APPEND, "k1", 1), OK(1, TS_APPEND, "k1", 1),
                               INV(1, TS_APPEND, "k1", 2), OK(1, TS_APPEND, "k1", 2)};
    static const int64_t only_the_second[] = {2};
    const ts_op_t finals[] = {read_list("k1", 1, only_the_second, 1)};
    capture_start(&c);
    ck_assert_uint_eq(ts_check_appends(appends, N(appends), finals, N(finals), &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_LOST}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_LOST, "key k1 value 1", "missing on node1");
    capture_end(&c);
}
END_TEST

START_TEST(register_keys_are_checked_apart)
{
    /* each key alone is fine; read as one register they would not be */
    const ts_op_t history[] = {INV(1, TS_WRITE, "a", 1), OK(1, TS_WRITE, "a", 1),
                               INV(1, TS_WRITE, "b", 2), OK(1, TS_WRITE, "b", 2),
                               INV(2, TS_READ, "a", 0),  read_ok(2, "a", 1, false)};
    assert_linearizable(history, N(history));
}
END_TEST

/* ---- Log checker ---- */

static const ts_log_entry_t log_a[] = {{1, 1, 0xa1}, {2, 1, 0xa2}, {3, 2, 0xa3}, {4, 2, 0xa4}};
/* agrees with log_a up to seq 3; its seq 4 is a deposed master's */
static const ts_log_entry_t log_b[] = {{1, 1, 0xa1}, {2, 1, 0xa2}, {3, 2, 0xa3}, {4, 3, 0xb4}};
/* retention dropped seq 1 */
static const ts_log_entry_t log_c[] = {{2, 1, 0xa2}, {3, 2, 0xa3}, {4, 2, 0xa4}};

START_TEST(logs_equal_up_to_their_commits_pass)
{
    const ts_node_log_t logs[] = {{1, log_a, 4, 4}, {2, log_b, 4, 3}, {3, log_c, 3, 4}};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_logs(logs, N(logs), &c.r), 0);
    assert_clean(&c);
    capture_end(&c);
}
END_TEST

START_TEST(logs_differing_below_both_commits_are_divergent)
{
    static const ts_log_entry_t crc_only[] = {{2, 1, 0xa2}, {3, 2, 0xff}, {4, 2, 0xa4}};
    const ts_node_log_t logs[] = {{1, log_a, 4, 4}, {2, log_b, 4, 4}, {3, crc_only, 3, 4}};
    capture_t c;
    capture_start(&c);
    /* node1-node2 at 4 (term), node1-node3 and node2-node3 at 3 (crc) */
    ck_assert_uint_eq(ts_check_logs(logs, N(logs), &c.r), 3);
    assert_counts(&c, (ts_problem_t[]){TS_DIVERGENT}, (size_t[]){3}, 1);
    ASSERT_LINE(&c, TS_DIVERGENT, "node1 and node2 differ at seq 4", "term 2", "term 3");
    ASSERT_LINE(&c, TS_DIVERGENT, "node1 and node3 differ at seq 3", "crc 000000a3",
                "crc 000000ff");
    ASSERT_LINE(&c, TS_DIVERGENT, "node2 and node3 differ at seq 3");
    capture_end(&c);
}
END_TEST

START_TEST(one_leader_per_term_passes_two_are_flagged)
{
    const ts_leader_t good[] = {{1, 1}, {2, 2}, {2, 2}, {3, 1}, {0, 3}};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_leaders(good, N(good), &c.r), 0);
    assert_clean(&c);
    capture_end(&c);

    const ts_leader_t bad[] = {{1, 1}, {4, 3}, {2, 2}, {4, 1}, {4, 3}, {5, 2}};
    capture_start(&c);
    ck_assert_uint_eq(ts_check_leaders(bad, N(bad), &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_TWO_MASTERS}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_TWO_MASTERS, "term 4 led by node1 node3");
    capture_end(&c);
}
END_TEST

START_TEST(an_ack_whose_entry_has_another_term_is_below_term)
{
    const ts_node_log_t logs[] = {{2, log_b, 4, 3}, {1, log_a, 4, 4}};
    const ts_op_t good[] = {ack(1, "k1", 10, 3, 2), ack(2, "k1", 11, 4, 2),
                            /* beyond every commit: not checked */
                            ack(3, "k1", 12, 9, 7), ack(3, "k1", 13, 0, 2)};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_acks(good, N(good), logs, N(logs), NULL, 0, &c.r), 0);
    assert_clean(&c);
    capture_end(&c);

    /* node2 has seq 4 in term 3 but not committed: node1's term 2 decides */
    const ts_op_t stale[] = {ack(1, "k1", 10, 3, 1), ack(2, "k1", 11, 4, 3)};
    capture_start(&c);
    ck_assert_uint_eq(ts_check_acks(stale, N(stale), logs, N(logs), NULL, 0, &c.r), 2);
    assert_counts(&c, (ts_problem_t[]){TS_ACK_BELOW_TERM}, (size_t[]){2}, 1);
    ASSERT_LINE(&c, TS_ACK_BELOW_TERM, "key k1 value 10", "p1", "seq 3 in term 1",
                "node2's log holds term 2");
    ASSERT_LINE(&c, TS_ACK_BELOW_TERM, "key k1 value 11", "p2", "seq 4 in term 3",
                "node1's log holds term 2");
    capture_end(&c);
}
END_TEST

START_TEST(an_acked_entry_set_aside_is_a_rolled_back_ack)
{
    static const uint64_t stale_terms[] = {1, 1}, acked_terms[] = {2, 2};
    const ts_op_t acks[] = {ack(1, "k1", 10, 3, 2), ack(2, "k1", 11, 5, 2)};
    /* node3 cut seqs 3-4 of term 1: entries the acked ones replaced */
    const ts_rollback_t fine[] = {{3, 3, 4, stale_terms}};
    capture_t c;
    capture_start(&c);
    ck_assert_uint_eq(ts_check_acks(acks, N(acks), NULL, 0, fine, N(fine), &c.r), 0);
    assert_clean(&c);
    capture_end(&c);

    const ts_rollback_t cut[] = {{3, 2, 3, acked_terms}, {2, 3, 4, stale_terms}};
    capture_start(&c);
    ck_assert_uint_eq(ts_check_acks(acks, N(acks), NULL, 0, cut, N(cut), &c.r), 1);
    assert_counts(&c, (ts_problem_t[]){TS_ROLLED_BACK_ACK}, (size_t[]){1}, 1);
    ASSERT_LINE(&c, TS_ROLLED_BACK_ACK, "key k1 value 10", "p1", "seq 3 term 2",
                "node3 set it aside (seqs 2-3)");
    capture_end(&c);
}
END_TEST

/* ---- JSONL ---- */

static void assert_same_op(const ts_op_t *a, const ts_op_t *b)
{
    ck_assert_int_eq(a->process, b->process);
    ck_assert_int_eq(a->type, b->type);
    ck_assert_int_eq(a->f, b->f);
    ck_assert_str_eq(a->key, b->key);
    ck_assert_int_eq(a->vkind, b->vkind);
    if (a->vkind == TS_V_INT)
        ck_assert_int_eq(a->value, b->value);
    ck_assert_uint_eq(a->list_len, b->list_len);
    for (size_t i = 0; i < a->list_len; i++)
        ck_assert_int_eq(a->list[i], b->list[i]);
    ck_assert_uint_eq(a->t, b->t);
    ck_assert_int_eq(a->node, b->node);
    ck_assert_uint_eq(a->term, b->term);
    ck_assert_uint_eq(a->seq, b->seq);
}

START_TEST(jsonl_round_trip_keeps_every_field)
{
    static const int64_t list[] = {INT64_MIN, -1, 0, INT64_MAX};
    ts_op_t ops[] = {
        INV(0, TS_APPEND, "k1", 7),
        op(3, TS_INFO, TS_WRITE, "quote\" back\\ nl\n tab\t é", -42),
        read_list("k1", 2, list, N(list)),
        read_list("empty", 3, NULL, 0),
        read_ok(5, "r1", 0, true),
        read_ok(5, "r1", 123456789012345ll, false),
        op(6, TS_FAIL, TS_READ, "r1", 0),
        ack(7, "k2", 1, UINT64_MAX, 1ull << 60),
    };
    ops[0].t = UINT64_MAX; /* ns since boot outgrow a double's exact integers */
    ops[1].t = (1ull << 53) + 1;
    char *dir = ts_tempdir("checkers"), *path = ts_path(dir, "h.jsonl");
    ts_history_t *h = ts_history_open(path);
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < N(ops); i++)
        ck_assert_int_eq(ts_history_log(h, &ops[i]), 0);
    ck_assert_int_eq(ts_history_close(&h), 0);
    ck_assert_ptr_null(h);
    ts_op_t *back;
    size_t n;
    char err[TS_HISTORY_ERRMAX];
    ck_assert_msg(ts_history_load(path, &back, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, N(ops));
    for (size_t i = 0; i < n; i++)
        assert_same_op(&ops[i], &back[i]);
    ts_history_free(back, n);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

typedef struct {
    ts_history_t *h;
    int process;
} logger_t;

static void *log_many(void *arg)
{
    logger_t *l = arg;
    for (int i = 0; i < 500; i++) {
        ts_op_t o = op(l->process, i % 2 ? TS_OK : TS_INVOKE, TS_APPEND, "shared", i / 2);
        o.t = 0; /* stamped by the writer */
        ck_assert_int_eq(ts_history_log(l->h, &o), 0);
    }
    return NULL;
}

START_TEST(lines_from_many_threads_stay_whole_and_in_t_order)
{
    char *dir = ts_tempdir("checkers"), *path = ts_path(dir, "h.jsonl");
    ts_history_t *h = ts_history_open(path);
    ck_assert_ptr_nonnull(h);
    pthread_t threads[4];
    logger_t loggers[4];
    for (int i = 0; i < 4; i++) {
        loggers[i] = (logger_t){h, i};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, log_many, &loggers[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    ck_assert_int_eq(ts_history_close(&h), 0);
    ts_op_t *back;
    size_t n;
    char err[TS_HISTORY_ERRMAX];
    ck_assert_msg(ts_history_load(path, &back, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 2000);
    int next[4] = {0};
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_gt(back[i].t, 0);
        if (i)
            ck_assert_uint_ge(back[i].t, back[i - 1].t);
        /* each thread's lines in its own order */
        ck_assert_int_eq(back[i].value, next[back[i].process]++ / 2);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(next[i], 500);
    ts_history_free(back, n);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(a_malformed_line_is_refused_naming_file_line_and_field)
{
    static const struct {
        const char *line, *field, *why;
    } cases[] = {
        {"{\"p\":1,\"type\":\"ok\",\"f\":\"append\",\"k\":\"a\",\"v\":\"x\",\"t\":1}", "\"v\"",
         "expected an integer"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"append\",\"k\":\"a\",\"t\":1}", "\"v\"",
         "an append's invoke needs an integer"},
        {"{\"type\":\"ok\",\"f\":\"read\",\"k\":\"a\",\"v\":[],\"t\":1}", "\"p\"", "missing"},
        {"{\"p\":1,\"type\":\"done\",\"f\":\"read\",\"k\":\"a\",\"t\":1}", "\"type\"",
         "unknown value \"done\""},
        {"{\"p\":1,\"type\":\"ok\",\"f\":\"read\",\"k\":\"a\",\"v\":[1,2.5],\"t\":1}", "\"v\"",
         "not an integer"},
        {"{\"p\":1,\"type\":\"ok\",\"f\":\"read\",\"k\":\"a\",\"t\":1}", "\"v\"",
         "a read's ok needs what was read"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":1,\"sq\":2}", "\"sq\"",
         "unknown field"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"\",\"t\":1}", "\"k\"", "empty key"},
        {"{\"p\":-1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":1}", "\"p\"",
         "out of range"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":18446744073709551616}",
         "\"t\"", "out of range"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":1,\"t\":2}", "\"t\"",
         "given twice"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":1} x", "column 50",
         "trailing characters"},
        {"{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a", "\"k\"", "unterminated string"},
    };
    static const char good[] = "{\"p\":1,\"type\":\"invoke\",\"f\":\"read\",\"k\":\"a\",\"t\":1}\n";
    char *dir = ts_tempdir("checkers"), *path = ts_path(dir, "bad.jsonl");
    for (size_t i = 0; i < N(cases); i++) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s%s%s\n%s", good, good, cases[i].line, good);
        fclose(f);
        ts_op_t *ops = (ts_op_t *)1;
        size_t n = 99;
        char err[TS_HISTORY_ERRMAX] = "";
        ck_assert_int_eq(ts_history_load(path, &ops, &n, err, sizeof err), -1);
        ck_assert_ptr_null(ops);
        ck_assert_uint_eq(n, 0);
        char where[600];
        snprintf(where, sizeof where, "%s:3: ", path);
        ck_assert_msg(!strncmp(err, where, strlen(where)), "case %zu: %s", i, err);
        ck_assert_msg(strstr(err, cases[i].field), "case %zu: %s", i, err);
        ck_assert_msg(strstr(err, cases[i].why), "case %zu: %s", i, err);
    }
    /* the same file with the bad line gone loads */
    FILE *f = fopen(path, "w");
    fprintf(f, "%s%s", good, good);
    fclose(f);
    ts_op_t *ops;
    size_t n;
    char err[TS_HISTORY_ERRMAX];
    ck_assert_msg(ts_history_load(path, &ops, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 2);
    ts_history_free(ops, n);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkers");
    TCase *tc = tcase_create("appends");
    tcase_add_checked_fixture(tc, make_append_history, NULL);
    tcase_add_test(tc, appends_all_read_back_pass);
    tcase_add_test(tc, an_acknowledged_append_missing_on_a_node_is_lost);
    tcase_add_test(tc, a_node_without_a_final_read_of_a_key_lost_it_all);
    tcase_add_test(tc, a_value_no_append_invoked_is_unexpected);
    tcase_add_test(tc, a_value_read_twice_is_duplicated);
    tcase_add_test(tc, a_failed_append_read_back_is_failed_but_present);
    tcase_add_test(tc, lists_that_are_not_prefixes_of_each_other_are_divergent);
    tcase_add_test(tc, a_completion_without_an_invoke_is_malformed);
    tcase_add_test(tc, an_async_append_lost_inside_a_window_is_excused);
    tcase_add_test(tc, an_async_append_lost_outside_every_window_is_lost);
    tcase_add_test(tc, an_async_append_one_node_kept_is_not_excused);
    suite_add_tcase(s, tc);
    tc = tcase_create("registers");
    tcase_add_test(tc, a_linearizable_concurrent_register_history_passes);
    tcase_add_test(tc, a_stale_read_is_nonlinearizable);
    tcase_add_test(tc, an_info_write_may_have_applied_or_not);
    tcase_add_test(tc, a_failed_write_read_back_is_nonlinearizable);
    tcase_add_test(tc, a_read_of_zero_is_not_a_read_of_null);
    tcase_add_test(tc, a_search_past_its_bound_reports_unknown_not_a_violation);
    tcase_add_test(tc, a_lost_then_overwritten_write_hides_from_a_register_not_from_appends);
    tcase_add_test(tc, register_keys_are_checked_apart);
    suite_add_tcase(s, tc);
    tc = tcase_create("logs");
    tcase_add_test(tc, logs_equal_up_to_their_commits_pass);
    tcase_add_test(tc, logs_differing_below_both_commits_are_divergent);
    tcase_add_test(tc, one_leader_per_term_passes_two_are_flagged);
    tcase_add_test(tc, an_ack_whose_entry_has_another_term_is_below_term);
    tcase_add_test(tc, an_acked_entry_set_aside_is_a_rolled_back_ack);
    suite_add_tcase(s, tc);
    tc = tcase_create("jsonl");
    tcase_add_test(tc, jsonl_round_trip_keeps_every_field);
    tcase_add_test(tc, lines_from_many_threads_stay_whole_and_in_t_order);
    tcase_add_test(tc, a_malformed_line_is_refused_naming_file_line_and_field);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
