/* What the cluster verb's files share: cluster.c runs the verb and Strata's
 * side (one writer alone, a 3-node cluster), cluster_redis.c the Redis side
 * (a master with two replicas, three Sentinels), cluster_lag.c the
 * cluster's replica lag. Each system is a row of two small tables: how to
 * drive it for the throughput cases and how to kill its master and write
 * through the failover. */
#ifndef STRATA_BENCH_CLUSTER_H
#define STRATA_BENCH_CLUSTER_H

#include "bench.h"

#define CLUSTER_NAME_BYTES 64  /* a node's name, e.g. tcp://127.0.0.1:40123 */
#define CLUSTER_WHY_BYTES  256 /* why a write was not acknowledged */
/* How long a failover writer waits for a write's acknowledgement (Strata:
 * the client's timeout; Redis: WAIT's and the connect's) before it gives the
 * write up and tries a fresh key. */
#define CLUSTER_WRITER_TIMEOUT_MS 250

/* One system of the throughput cases. */
typedef struct {
    const char *name; /* the rows' system */
    void *self;
    /* Writes of fresh keys (from seed) on one connection to the master,
     * depth in flight, for seconds, acknowledged as the system's replication
     * promises; fills c (ops, seconds, latency, group_size when known). A
     * request's latency runs from just before its send to just after its
     * acknowledgement arrives. 0, or -1 with the reason on stderr. */
    int (*run_case)(void *self, unsigned depth, uint64_t seed, double seconds, bench_case_t *c);
    /* Waits until every replica holds what the master has, so one run's
     * catching up does not load the disk under the next one. */
    void (*settle)(void *self);
} cluster_contender_t;

/* One system under kill -9 of its master. A client is used by one thread at
 * a time: the writer thread during a round, the caller after it. */
typedef struct {
    const char *name; /* the rows' system */
    void *self;
    /* A client that follows the system's master; NULL with the reason on
     * stderr. */
    void *(*client_new)(void *self);
    void (*client_destroy)(void **client_p);
    /* One write of key (the value is the key), returning when the master
     * acknowledged it or gave up within a short timeout. 1: acknowledged as
     * the system's replication promises, the acknowledging node's name in
     * node (CLUSTER_NAME_BYTES); 0: not acknowledged (no master reachable,
     * refused, timed out, or fewer replicas than promised), the reason in
     * why (CLUSTER_WHY_BYTES). */
    int (*put)(void *client, const char *key, char *node, char *why);
    /* 1 when the master has key, 0 when it does not, -1 when it cannot tell
     * (the reason on stderr). */
    int (*present)(void *client, const char *key);
    /* Waits until the system is whole and ready for a failover, then kill -9
     * its master: the node's name into killed (CLUSTER_NAME_BYTES), the time of the signal into
     * *kill_ns. 0, or -1 with the reason on stderr. */
    int (*kill_master)(void *self, char *killed, uint64_t *kill_ns);
    /* Starts the killed node again as a replica and waits until every node
     * holds what the new master has. 0, or -1 with the reason on stderr. */
    int (*recover)(void *self);
} cluster_failover_ops_t;

/* ---- cluster_redis.c --------------------------------------------------- */

typedef struct cluster_redis cluster_redis_t;

/* Three redis-servers in dir (appendonly yes, appendfsync always), two of
 * them replicas of the first, and three Sentinels monitoring the master;
 * returns once both replicas are in sync. NULL with the reason on stderr,
 * everything started stopped. */
cluster_redis_t *cluster_redis_new(const char *redis_bin, const char *dir);
/* Stops every process; nulls *self_p. -1 when one did not stop cleanly. */
int cluster_redis_destroy(cluster_redis_t **self_p);
/* One line per process, for the verb's header. */
void cluster_redis_describe(const cluster_redis_t *self);
/* SET then WAIT 1: "redis-repl". */
cluster_contender_t cluster_redis_contender(cluster_redis_t *self);
/* SET alone, still fsynced on the master before its reply: "redis-async". */
cluster_contender_t cluster_redis_contender_async(cluster_redis_t *self);
cluster_failover_ops_t cluster_redis_failover(cluster_redis_t *self);

/* ---- cluster_lag.c ------------------------------------------------------ */

/* Drives master with batched sync puts of fresh keys at rate records/s for
 * seconds, twice: quorum replication (the rows' system "cluster3"), then
 * async ("cluster3-async"). Prints and emits the cluster.replica_lag rows:
 * the rate achieved, a batch's acknowledgement latency, and p50/p99/max of
 * the time from the master's acknowledgement of a record to a follower
 * having applied it, over every record on every follower. Waits for the
 * followers to apply each run's last batch. 0, or -1 with the reason on
 * stderr. */
int cluster_lag_bench(bench_t *b, const char *master, const char *const *followers,
                      unsigned n_followers, double rate, double seconds, uint64_t seed);

#endif
