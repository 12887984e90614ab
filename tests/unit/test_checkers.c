/* The history format (tests/support/history.h): the JSONL round trip,
 * lines from many threads, and malformed lines refused by name. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    TCase *tc = tcase_create("jsonl");
    tcase_add_test(tc, jsonl_round_trip_keeps_every_field);
    tcase_add_test(tc, lines_from_many_threads_stay_whole_and_in_t_order);
    tcase_add_test(tc, a_malformed_line_is_refused_naming_file_line_and_field);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
