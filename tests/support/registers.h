/* Register clients for cluster fault tests: threads writing unique integers
 * to a few shared keys and reading them back, every operation logged to a
 * history (history.md) for ts_check_registers. The key rotates every
 * TS_REGISTER_KEY_OPS operations so the linearizability search stays small.
 *
 * Writes go to the node believed to be master, in quorum mode. A read is
 * linearizable only when the master answers it under its read lease (a
 * slave answers from what it applied), and a client cannot tell from a get
 * reply which role answered. So each read is bracketed by two status calls
 * on the same node: when both say leader in the same term T, the node was
 * master of T the whole time (a node leads a term at most once) and the read
 * is logged ok; otherwise it is logged info, which the checker drops. */
#ifndef STRATA_TEST_REGISTERS_H
#define STRATA_TEST_REGISTERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "history.h"

#define TS_REGISTERS        2
#define TS_REGISTER_KEY_OPS 300

typedef struct {
    ts_cluster_t *cl;
    int idx;
    _Atomic bool stop;
    ts_history_t *history;
    uint64_t rng;
    int retired;                       /* processes retired by an info */
    _Atomic uint64_t reads, writes;    /* completed ok */
    uint64_t unknown, refused, unsure; /* info writes, fail, reads not bracketed */
    pthread_t thread;
} ts_register_t;

/* TS_REGISTERS threads into rs, drawing from seed. */
void ts_registers_start(ts_cluster_t *cl, ts_register_t *rs, ts_history_t *history, uint64_t seed);
void ts_registers_stop(ts_register_t *rs);
/* Reads and writes completed ok so far, over every thread. */
uint64_t ts_registers_ok(ts_register_t *rs);

#endif
