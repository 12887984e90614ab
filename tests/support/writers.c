/* See writers.h. */
#define _GNU_SOURCE
#include "writers.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"

void ts_writer_key(char *key, size_t cap, int client, uint32_t i)
{
    snprintf(key, cap, "c%d-%06" PRIu32, client, i);
}

/* Short, so a client stuck on a dead master moves on soon and the failover
 * time measures the cluster rather than the client. */
strata_client_t *ts_writer_connect(ts_member_t *m)
{
    return ts_member_connect(m, 250);
}

/* A session client: the library follows the master and resends a write
 * whose outcome is unknown; the cluster applies each once. */
static void *session_client_main(void *arg)
{
    ts_writer_t *w = arg;
    const char *eps[TS_CLUSTER_MAX];
    for (int i = 0; i < w->cl->n; i++)
        eps[i] = w->cl->m[i].client;
    strata_client_options_t opts = {.endpoints = eps,
                                    .n_endpoints = (size_t)w->cl->n,
                                    .timeout_ms = 250,
                                    .sessions = true,
                                    .retry_ms = 30000};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_client_connect(&opts, &c, &err), 0);
    for (uint32_t i = 0; !atomic_load(&w->stop) && i < TS_WRITER_MAX_OPS; i++) {
        char key[32];
        ts_writer_key(key, sizeof key, w->idx, i);
        uint64_t seq = 0;
        if (strata_client_put(c, STRATA_DURABILITY_SYNC, key, strlen(key), key, strlen(key), &seq,
                              &err) != 0) {
            w->unknown++;
            continue;
        }
        uint64_t n = atomic_load(&w->n_acked);
        w->acked[n] = i;
        w->acked_seq[n] = seq;
        w->acked_ns[n] = ts_now_ns();
        w->acked_node[n] = 0;
        atomic_fetch_add(&w->n_acked, 1);
        atomic_store(&w->last_ack_ns, ts_now_ns());
    }
    strata_client_destroy(&c);
    return NULL;
}

/* With a history: one line of client k's list "c<k>" (value i). After an
 * info its process is retired (history.md), so the next gets a new id. */
static void record(ts_writer_t *w, ts_op_type_t type, uint32_t i, int node, uint64_t term,
                   uint64_t seq)
{
    if (!w->history)
        return;
    char list[16];
    snprintf(list, sizeof list, "c%d", w->idx);
    ts_op_t op = {.process = w->idx * 1000000 + w->retired,
                  .type = type,
                  .f = TS_APPEND,
                  .key = list,
                  .vkind = TS_V_INT,
                  .value = i,
                  .node = node,
                  .term = term,
                  .seq = seq};
    ck_assert_int_eq(ts_history_log(w->history, &op), 0);
    if (type == TS_INFO)
        w->retired++;
}

/* Puts keys in order; a write the server refused outright (not master) or
 * whose outcome is unknown (a timeout, a master deposed before the commit)
 * is skipped, and the next goes to the next node: the checks below ask
 * that acknowledged keys are everywhere and refused ones nowhere. */
static void *client_main(void *arg)
{
    ts_writer_t *w = arg;
    int node = w->idx % w->cl->n;
    strata_client_t *c = ts_writer_connect(&w->cl->m[node]);
    uint32_t i = 0;
    while (!atomic_load(&w->stop) && i < TS_WRITER_MAX_OPS) {
        char key[32];
        ts_writer_key(key, sizeof key, w->idx, i);
        record(w, TS_INVOKE, i, node + 1, 0, 0);
        strata_error_t err;
        uint64_t seq = 0;
        strata_request_t req = {.op = STRATA_OP_PUT,
                                .durability = STRATA_DURABILITY_SYNC,
                                .replication =
                                    w->async ? STRATA_REPLICATION_ASYNC : STRATA_REPLICATION_QUORUM,
                                .key = {(const uint8_t *)key, strlen(key)},
                                .value = {(const uint8_t *)key, strlen(key)}};
        strata_reply_t rep;
        int rc = c ? strata_client_call(c, &req, &rep, &err) : STRATA_ETIMEDOUT;
        uint64_t term = 0;
        if (c) {
            seq = rep.seq;
            term = rep.term;
            strata_reply_clear(&rep);
        }
        if (rc == 0) {
            record(w, TS_OK, i, node + 1, term, seq);
            uint64_t n = atomic_load(&w->n_acked);
            w->acked[n] = i;
            w->acked_seq[n] = seq;
            w->acked_ns[n] = ts_now_ns();
            w->acked_node[n] = node + 1;
            atomic_fetch_add(&w->n_acked, 1);
            atomic_store(&w->last_ack_ns, ts_now_ns());
            atomic_store(&w->last_ack_node, node + 1);
            i++;
            continue;
        }
        if (rc == STRATA_ETIMEDOUT || (rc == STRATA_ENOTMASTER && strstr(err.msg, "unknown"))) {
            record(w, TS_INFO, i, node + 1, 0, 0);
            w->unknown++;
        } else {
            record(w, TS_FAIL, i, node + 1, 0, 0);
            w->refused++;
        }
        i++;
        strata_client_destroy(&c);
        node = (node + 1) % w->cl->n;
        c = ts_writer_connect(&w->cl->m[node]);
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, NULL); /* a short backoff between nodes, not a wait for state */
    }
    strata_client_destroy(&c);
    return NULL;
}

static void start(ts_cluster_t *cl, ts_writer_t *ws, bool async, bool sessions,
                  ts_history_t *history)
{
    for (int k = 0; k < TS_WRITERS; k++) {
        ws[k] = (ts_writer_t){
            .cl = cl, .idx = k, .async = async, .sessions = sessions, .history = history};
        ws[k].acked = calloc(TS_WRITER_MAX_OPS, sizeof *ws[k].acked);
        ws[k].acked_seq = calloc(TS_WRITER_MAX_OPS, sizeof *ws[k].acked_seq);
        ws[k].acked_ns = calloc(TS_WRITER_MAX_OPS, sizeof *ws[k].acked_ns);
        ws[k].acked_node = calloc(TS_WRITER_MAX_OPS, sizeof *ws[k].acked_node);
        ck_assert_int_eq(pthread_create(&ws[k].thread, NULL,
                                        ws[k].sessions ? session_client_main : client_main, &ws[k]),
                         0);
    }
}

void ts_writers_start_mode(ts_cluster_t *cl, ts_writer_t *ws, bool async, bool sessions)
{
    start(cl, ws, async, sessions, NULL);
}

void ts_writers_start_history(ts_cluster_t *cl, ts_writer_t *ws, bool async, ts_history_t *history)
{
    start(cl, ws, async, false, history);
}

void ts_writers_start(ts_cluster_t *cl, ts_writer_t *ws, bool async)
{
    ts_writers_start_mode(cl, ws, async, false);
}

void ts_writers_free(ts_writer_t *ws)
{
    for (int k = 0; k < TS_WRITERS; k++) {
        free(ws[k].acked);
        free(ws[k].acked_seq);
        free(ws[k].acked_ns);
        free(ws[k].acked_node);
    }
}

void ts_writers_stop(ts_writer_t *ws)
{
    for (int k = 0; k < TS_WRITERS; k++)
        atomic_store(&ws[k].stop, true);
    for (int k = 0; k < TS_WRITERS; k++)
        pthread_join(ws[k].thread, NULL);
}

uint64_t ts_writers_acked(ts_writer_t *ws)
{
    uint64_t n = 0;
    for (int k = 0; k < TS_WRITERS; k++)
        n += atomic_load(&ws[k].n_acked);
    return n;
}

/* Waits until the clients have had more acknowledgements than before. */
void ts_writers_wait(ts_writer_t *ws, uint64_t more, unsigned timeout_ms)
{
    uint64_t want = ts_writers_acked(ws) + more, deadline = ts_now_ns() + timeout_ms * 1000000ull;
    while (ts_writers_acked(ws) < want && ts_now_ns() < deadline) {
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL); /* polling the clients' counts with a deadline */
    }
    ck_assert_msg(ts_writers_acked(ws) >= want, "no %" PRIu64 " acknowledged writes in %u ms", more,
                  timeout_ms);
}

/* One more write through the master, so a follower that kept a deposed
 * master's unreplicated tail meets a conflicting entry and cuts it. */
void ts_cluster_final_write(ts_cluster_t *cl)
{
    int master = ts_cluster_master(cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    strata_client_t *c = ts_writer_connect(&cl->m[master - 1]);
    ck_assert_ptr_nonnull(c);
    strata_error_t err;
    ck_assert_msg(strata_client_put(c, STRATA_DURABILITY_SYNC, "final", 5, "x", 1, NULL, &err) == 0,
                  "%s", err.msg);
    strata_client_destroy(&c);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every key a client had acknowledged, on every node: each node's keys of
 * each client read with scans (a get per key takes minutes after a long
 * soak), then each acknowledged number looked up. */
void ts_writers_check_everywhere(ts_cluster_t *cl, ts_writer_t *ws)
{
    ts_op_t *reads = NULL;
    size_t n = ts_writers_final_reads(cl, &reads);
    for (size_t r = 0; r < n; r++) {
        int64_t *held = (int64_t *)reads[r].list;
        qsort(held, reads[r].list_len, sizeof *held, cmp_i64);
        int k = atoi(reads[r].key + 1); /* "c<k>" */
        ck_assert(k >= 0 && k < TS_WRITERS);
        for (uint64_t j = 0; j < atomic_load(&ws[k].n_acked); j++) {
            int64_t want = ws[k].acked[j];
            ck_assert_msg(bsearch(&want, held, reads[r].list_len, sizeof *held, cmp_i64) != NULL,
                          "node%d: acknowledged c%d-%06" PRId64 " is missing", reads[r].node, k,
                          want);
        }
    }
    ts_writers_final_reads_free(reads, n);
}

uint64_t ts_writers_settle_and_check(ts_cluster_t *cl, ts_writer_t *ws)
{
    ts_cluster_final_write(cl);
    uint64_t commit = ts_cluster_settle(cl, 1, 30000);
    ck_assert_msg(commit > 0, "the nodes did not agree on one commit seq within 30 s");
    ts_writers_check_everywhere(cl, ws);
    ts_cluster_check_logs(cl, commit);
    int terms = ts_cluster_check_one_master_per_term(cl);
    uint64_t unknown = 0;
    for (int k = 0; k < TS_WRITERS; k++)
        unknown += ws[k].unknown;
    fprintf(stderr,
            "settled at commit %" PRIu64 ": %" PRIu64 " acknowledged writes on every node, %" PRIu64
            " with an unknown outcome, %d terms with a master, logs identical\n",
            commit, ts_writers_acked(ws), unknown, terms);
    return commit;
}

size_t ts_writers_final_reads(ts_cluster_t *cl, ts_op_t **reads_p)
{
    ts_op_t *reads = calloc((size_t)cl->n * TS_WRITERS, sizeof *reads);
    ck_assert_ptr_nonnull(reads);
    size_t n = 0;
    for (int i = 0; i < cl->n; i++) {
        strata_client_t *c = ts_member_connect(&cl->m[i], 10000);
        ck_assert_ptr_nonnull(c);
        for (int k = 0; k < TS_WRITERS; k++) {
            char start[16], end[16], *list = malloc(16);
            ck_assert_ptr_nonnull(list);
            snprintf(start, sizeof start, "c%d-", k);
            snprintf(end, sizeof end, "c%d.", k); /* '.' follows '-' */
            snprintf(list, 16, "c%d", k);
            int64_t *values = NULL;
            size_t n_values = 0, cap = 0;
            strata_bytes_t cursor = {NULL, 0};
            char *held = NULL;
            for (;;) {
                strata_reply_t rep;
                strata_error_t err;
                int rc = strata_client_scan(
                    c, (strata_bytes_t){(const uint8_t *)start, strlen(start)},
                    (strata_bytes_t){(const uint8_t *)end, strlen(end)}, 1000, cursor, &rep, &err);
                ck_assert_msg(rc == 0, "node%d: scan %s: %s", i + 1, start, err.msg);
                for (size_t e = 0; e < rep.n_entries; e++) {
                    if (n_values == cap) {
                        cap = cap ? 2 * cap : 1024;
                        values = realloc(values, cap * sizeof *values);
                        ck_assert_ptr_nonnull(values);
                    }
                    const strata_kv_t *kv = &rep.entries[e];
                    /* every writer's value is its key */
                    ck_assert_msg(kv->value.len == kv->key.len &&
                                      !memcmp(kv->value.data, kv->key.data, kv->key.len),
                                  "node%d: %.*s holds another value", i + 1, (int)kv->key.len,
                                  (const char *)kv->key.data);
                    char key[32];
                    snprintf(key, sizeof key, "%.*s", (int)kv->key.len, (const char *)kv->key.data);
                    values[n_values++] = strtoll(key + strlen(start), NULL, 10);
                }
                free(held);
                held = NULL;
                if (!rep.next_cursor.len) {
                    strata_reply_clear(&rep);
                    break;
                }
                held = malloc(rep.next_cursor.len);
                ck_assert_ptr_nonnull(held);
                memcpy(held, rep.next_cursor.data, rep.next_cursor.len);
                cursor = (strata_bytes_t){(const uint8_t *)held, rep.next_cursor.len};
                strata_reply_clear(&rep);
            }
            free(held);
            reads[n++] = (ts_op_t){.process = 0,
                                   .type = TS_OK,
                                   .f = TS_READ,
                                   .key = list,
                                   .vkind = TS_V_LIST,
                                   .list = values,
                                   .list_len = n_values,
                                   .node = i + 1};
        }
        strata_client_destroy(&c);
    }
    *reads_p = reads;
    return n;
}

void ts_writers_final_reads_free(ts_op_t *reads, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((void *)reads[i].key);
        free((void *)reads[i].list);
    }
    free(reads);
}
