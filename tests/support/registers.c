/* See registers.h. */
#define _GNU_SOURCE
#include "registers.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strata/client.h"
#include "support.h"
#include "writers.h"

/* Shared by the threads so they meet on one key at a time. */
static _Atomic uint64_t s_ops, s_value;

/* Process ids apart from the append writers' (writers.c: idx * 1000000). */
#define REGISTER_PROCESS_BASE 100

static void log_op(ts_register_t *r, ts_op_type_t type, ts_op_f_t f, const char *key,
                   ts_value_kind_t vkind, int64_t value, int node, uint64_t term, uint64_t seq)
{
    ts_op_t op = {.process = (REGISTER_PROCESS_BASE + r->idx) * 1000000 + r->retired,
                  .type = type,
                  .f = f,
                  .key = key,
                  .vkind = vkind,
                  .value = value,
                  .node = node,
                  .term = term,
                  .seq = seq};
    ck_assert_int_eq(ts_history_log(r->history, &op), 0);
    if (type == TS_INFO)
        r->retired++;
}

/* The master a refusal names ("the master is node N at ..."), else the
 * next node. */
static int next_guess(const ts_register_t *r, int node, const char *msg)
{
    const char *at = strstr(msg, "the master is node ");
    if (at) {
        int n = atoi(at + strlen("the master is node "));
        if (n >= 1 && n <= r->cl->n)
            return n - 1;
    }
    return (node + 1) % r->cl->n;
}

static void reconnect(ts_register_t *r, strata_client_t **c, int node)
{
    strata_client_destroy(&c[node]);
    c[node] = ts_writer_connect(&r->cl->m[node]);
}

/* Whether node says it leads, and in which term. */
static bool leads(strata_client_t *c, uint64_t *term)
{
    strata_reply_t rep;
    strata_error_t err;
    bool yes =
        c && strata_client_status(c, &rep, &err) == 0 && rep.role && !strcmp(rep.role, "leader");
    if (yes)
        *term = rep.term;
    if (c)
        strata_reply_clear(&rep);
    return yes;
}

static int do_write(ts_register_t *r, strata_client_t **c, int node, const char *key)
{
    int64_t v = (int64_t)atomic_fetch_add(&s_value, 1) + 1;
    char value[24];
    snprintf(value, sizeof value, "%" PRId64, v);
    log_op(r, TS_INVOKE, TS_WRITE, key, TS_V_INT, v, node + 1, 0, 0);
    strata_request_t req = {.op = STRATA_OP_PUT,
                            .durability = STRATA_DURABILITY_SYNC,
                            .replication = STRATA_REPLICATION_QUORUM,
                            .key = {(const uint8_t *)key, strlen(key)},
                            .value = {(const uint8_t *)value, strlen(value)}};
    strata_reply_t rep;
    strata_error_t err = {0};
    int rc = c[node] ? strata_client_call(c[node], &req, &rep, &err) : STRATA_ETIMEDOUT;
    uint64_t seq = 0, term = 0;
    if (c[node]) {
        seq = rep.seq;
        term = rep.term;
        strata_reply_clear(&rep);
    }
    if (rc == 0) {
        log_op(r, TS_OK, TS_WRITE, key, TS_V_INT, v, node + 1, term, seq);
        atomic_fetch_add(&r->writes, 1);
        return node;
    }
    if (rc == STRATA_ETIMEDOUT || (rc == STRATA_ENOTMASTER && strstr(err.msg, "unknown"))) {
        log_op(r, TS_INFO, TS_WRITE, key, TS_V_INT, v, node + 1, 0, 0);
        r->unknown++;
        reconnect(r, c, node);
        return (node + 1) % r->cl->n;
    }
    log_op(r, TS_FAIL, TS_WRITE, key, TS_V_INT, v, node + 1, 0, 0);
    r->refused++;
    return next_guess(r, node, rc == STRATA_ENOTMASTER ? err.msg : "");
}

static int do_read(ts_register_t *r, strata_client_t **c, int node, const char *key)
{
    log_op(r, TS_INVOKE, TS_READ, key, TS_V_NONE, 0, node + 1, 0, 0);
    uint64_t term = 0, term_after = 0;
    if (!leads(c[node], &term)) {
        /* Nothing was read: the read did not happen. */
        log_op(r, TS_FAIL, TS_READ, key, TS_V_NONE, 0, node + 1, 0, 0);
        r->refused++;
        return (node + 1) % r->cl->n;
    }
    void *value = NULL;
    size_t len = 0;
    strata_error_t err = {0};
    int rc = strata_client_get(c[node], key, strlen(key), &value, &len, &err);
    int64_t v = 0;
    if (rc == 0) {
        char text[24];
        snprintf(text, sizeof text, "%.*s", (int)(len < 23 ? len : 23), (const char *)value);
        v = strtoll(text, NULL, 10);
    }
    free(value);
    if (rc != 0 && rc != STRATA_ENOTFOUND) {
        bool timeout = rc == STRATA_ETIMEDOUT;
        log_op(r, timeout ? TS_INFO : TS_FAIL, TS_READ, key, TS_V_NONE, 0, node + 1, term, 0);
        if (timeout) {
            r->unsure++;
            reconnect(r, c, node);
        } else {
            r->refused++;
        }
        return (node + 1) % r->cl->n;
    }
    if (!leads(c[node], &term_after) || term_after != term) {
        log_op(r, TS_INFO, TS_READ, key, TS_V_NONE, 0, node + 1, term, 0);
        r->unsure++;
        return (node + 1) % r->cl->n;
    }
    log_op(r, TS_OK, TS_READ, key, rc == 0 ? TS_V_INT : TS_V_NULL, v, node + 1, term, 0);
    atomic_fetch_add(&r->reads, 1);
    return node;
}

static void *register_main(void *arg)
{
    ts_register_t *r = arg;
    strata_client_t *c[TS_CLUSTER_MAX] = {0};
    for (int i = 0; i < r->cl->n; i++)
        c[i] = ts_writer_connect(&r->cl->m[i]);
    int node = r->idx % r->cl->n;
    while (!atomic_load(&r->stop)) {
        char key[32];
        snprintf(key, sizeof key, "reg-%" PRIu64,
                 atomic_fetch_add(&s_ops, 1) / TS_REGISTER_KEY_OPS);
        int was = node;
        if (!c[node])
            c[node] = ts_writer_connect(&r->cl->m[node]);
        node = ts_rand(&r->rng) % 2 ? do_write(r, c, node, key) : do_read(r, c, node, key);
        if (node != was) {
            struct timespec nap = {0, 5 * 1000000};
            nanosleep(&nap, NULL); /* a short backoff between nodes, not a wait for state */
        }
    }
    for (int i = 0; i < r->cl->n; i++)
        strata_client_destroy(&c[i]);
    return NULL;
}

void ts_registers_start(ts_cluster_t *cl, ts_register_t *rs, ts_history_t *history, uint64_t seed)
{
    for (int k = 0; k < TS_REGISTERS; k++) {
        rs[k] = (ts_register_t){.cl = cl, .idx = k, .history = history, .rng = seed + 7919u * k};
        ck_assert_int_eq(pthread_create(&rs[k].thread, NULL, register_main, &rs[k]), 0);
    }
}

void ts_registers_stop(ts_register_t *rs)
{
    for (int k = 0; k < TS_REGISTERS; k++)
        atomic_store(&rs[k].stop, true);
    for (int k = 0; k < TS_REGISTERS; k++)
        pthread_join(rs[k].thread, NULL);
}

uint64_t ts_registers_ok(ts_register_t *rs)
{
    uint64_t n = 0;
    for (int k = 0; k < TS_REGISTERS; k++)
        n += atomic_load(&rs[k].reads) + atomic_load(&rs[k].writes);
    return n;
}
