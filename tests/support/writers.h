/* Writing clients for cluster tests: threads putting fresh keys
 * (c<client>-<n>, the value the key) in quorum or async mode, each
 * recording what was acknowledged, by which node and when; then the
 * checks that every acknowledged write is on every node. */
#ifndef STRATA_TEST_WRITERS_H
#define STRATA_TEST_WRITERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "history.h"
#include "strata/client.h"

#define TS_WRITERS 3
/* Writes one client makes at most: ten minutes of quorum writes at a few
 * hundred a second each (a soak's window) fit. The arrays take the pages
 * they touch only. */
#define TS_WRITER_MAX_OPS 1000000

typedef struct {
    ts_cluster_t *cl;
    int idx;
    _Atomic bool stop;
    bool async;    /* REPLICATION_ASYNC writes */
    bool sessions; /* one client over every node, resending what is unknown */
    /* what the server acknowledged: key number, seq, when */
    uint32_t *acked;
    uint64_t *acked_seq, *acked_ns;
    int *acked_node;
    _Atomic uint64_t n_acked;
    uint64_t unknown, refused;
    _Atomic uint64_t last_ack_ns;
    _Atomic int last_ack_node;
    pthread_t thread;
    /* NULL, or where each write is logged as an append of its number to
     * the list "c<idx>" (history.md) */
    ts_history_t *history;
    int retired; /* processes retired by an info: the id's low part */
} ts_writer_t;

/* The key of a client's n-th write. */
void ts_writer_key(char *key, size_t cap, int client, uint32_t i);
/* A client of the member with a short timeout, so one stuck on a dead
 * master moves on soon. */
strata_client_t *ts_writer_connect(ts_member_t *m);
/* TS_WRITERS threads into ws: each on its own node first, moving to the
 * next node on a refusal or timeout; with sessions, each one session over
 * every node that resends what is unknown. */
void ts_writers_start_mode(ts_cluster_t *cl, ts_writer_t *ws, bool async, bool sessions);
void ts_writers_start(ts_cluster_t *cl, ts_writer_t *ws, bool async);
/* Writers (quorum, or async) that log every write to history. */
void ts_writers_start_history(ts_cluster_t *cl, ts_writer_t *ws, bool async, ts_history_t *history);
/* What every node holds of each writer's list: one read (ok, a list of the
 * numbers of the keys it has) per node and writer, for ts_check_appends;
 * free with ts_writers_final_reads_free. */
size_t ts_writers_final_reads(ts_cluster_t *cl, ts_op_t **reads);
void ts_writers_final_reads_free(ts_op_t *reads, size_t n);
void ts_writers_stop(ts_writer_t *ws);
void ts_writers_free(ts_writer_t *ws);
uint64_t ts_writers_acked(ts_writer_t *ws);
/* Waits until more writes were acknowledged; fails the test after timeout_ms. */
void ts_writers_wait(ts_writer_t *ws, uint64_t more, unsigned timeout_ms);
/* One more write through the master, so a follower that kept a deposed
 * master's unreplicated tail meets a conflicting entry and cuts it. */
void ts_cluster_final_write(ts_cluster_t *cl);
/* Every key a client had acknowledged, read on every node. */
void ts_writers_check_everywhere(ts_cluster_t *cl, ts_writer_t *ws);
/* A final write, the nodes agreeing on one commit seq, every acknowledged
 * write everywhere, identical logs and one master per term; prints a line
 * and returns the commit seq the nodes agreed on. */
uint64_t ts_writers_settle_and_check(ts_cluster_t *cl, ts_writer_t *ws);

#endif
