/* A Strata cluster of real processes on loopback for tests: each node a
 * strata-writer with its strata-election and strata-replicator, one config
 * file per node (deploy/node.cfg's keys), free ports, data under one
 * temporary root. */
#ifndef STRATA_TEST_CLUSTER_H
#define STRATA_TEST_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "checkers.h"
#include "node.h"

#define TS_CLUSTER_MAX 5

typedef struct {
    int id;
    char root[512]; /* node<ID>: logs and the config */
    char data[600]; /* node<ID>/data: the data dir */
    char cfg[640];
    char client[64]; /* tcp://HOST:PORT */
    char host[48];   /* its address: 127.0.0.1, or its namespace's */
    char netns[24];  /* its processes' network namespace; "" for the test's */
    ts_node_t writer;
    ts_relay_t election, replicator;
    ts_dist_t dist; /* pid 0 until ts_member_start_distributor */
    ts_snap_t snap; /* pid 0 until ts_member_start_snapshotter */
    ts_comp_t comp; /* pid 0 until ts_member_start_compactor */
    /* Clock and disk faults of the node's writer, election and replicator,
     * taken up whenever ts_member_start_* starts one (ts_member_restart for
     * all three); all off in a new cluster. */
    /* libfaketime's FAKETIME, e.g. "+0 x1.05": every clock, CLOCK_MONOTONIC
     * too, 5% fast from each process's start; "" for none. */
    char faketime[32];
    /* CLOCK_MONOTONIC and CLOCK_BOOTTIME this many seconds ahead, in a time
     * namespace of their own (unshare --time); 0 for none. */
    long monotonic_s;
    /* The slow-disk shim preloaded; ts_member_slowdisk sets its delay in
     * slowdisk_ctl (node<ID>/slowdisk). */
    bool slowdisk;
    char slowdisk_ctl[640];
} ts_member_t;

typedef struct {
    int n;
    char *root;
    ts_member_t m[TS_CLUSTER_MAX];
} ts_cluster_t;

/* Writes the configs (bootstrap true) and starts every node's writer,
 * election and replicator. */
void ts_cluster_start(ts_cluster_t *cl, int n, const char *tag);
/* The same with node i in bed's namespace i at bed's address i (netns.h). */
void ts_cluster_start_netns(ts_cluster_t *cl, int n, const char *tag, const char (*ns)[24],
                            const char (*ips)[48]);
/* Stops every process still running and removes the data. */
void ts_cluster_destroy(ts_cluster_t *cl);

/* The processes of one node. */
void ts_member_start_writer(ts_member_t *m);
void ts_member_start_election(ts_member_t *m);
void ts_member_start_replicator(ts_member_t *m);
/* A strata-distributor on the node's writer, with the node's config and
 * free ports (dist.live, dist.history); ts_cluster_destroy stops it. */
void ts_member_start_distributor(ts_member_t *m);
/* A strata-snapshotter and a strata-compactor on the node's writer, with
 * its config (env: the snapshotter's overrides, e.g. its interval; may be
 * NULL); ts_cluster_destroy stops them. */
void ts_member_start_snapshotter(ts_member_t *m, const char *const *env);
void ts_member_start_compactor(ts_member_t *m);
/* Stops the node's replicator, election and writer (SIGTERM) and starts
 * them again, with the faults its fields name now. */
void ts_member_restart(ts_member_t *m);
/* The extra time each fsync and fdatasync of the node's processes takes,
 * from their next call on, running processes too (those started with
 * m->slowdisk set); 0: none. */
void ts_member_slowdisk(ts_member_t *m, unsigned delay_us);
/* Rewrites the node's config with bootstrap = false: an empty data dir
 * is then a replaced disk. */
void ts_member_no_bootstrap(ts_cluster_t *cl, ts_member_t *m);

/* The node (1..n) whose writer is master and serves (its first entry of
 * the term committed), waiting up to timeout_ms; 0 when none did. *term
 * (may be NULL) gets its term. */
int ts_cluster_master(ts_cluster_t *cl, unsigned timeout_ms, uint64_t *term);
/* A client of the node's writer; NULL when it cannot be made. */
strata_client_t *ts_member_connect(ts_member_t *m, int timeout_ms);
/* A node's writer's status: role into role (cap bytes) and term; false
 * when it does not answer. */
bool ts_member_status(ts_member_t *m, char *role, size_t cap, uint64_t *term);
/* Waits up to timeout_ms until every running writer has the same
 * commit_seq and last_seq, at least min_commit; returns that commit seq
 * (0 when they did not agree in time). */
uint64_t ts_cluster_settle(ts_cluster_t *cl, uint64_t min_commit, unsigned timeout_ms);
/* Every node's WAL up to upto (a commit seq all of them reached) through
 * ts_check_logs, comparing (seq, term, CRC): fails the test on a divergent
 * line. */
void ts_cluster_check_logs(ts_cluster_t *cl, uint64_t upto);
/* Every "event=role role=leader term=T" its writers logged, through
 * ts_check_leaders: fails the test when two nodes led in one term. Returns
 * how many terms had one. */
int ts_cluster_check_one_master_per_term(ts_cluster_t *cl);
/* What every node's WAL set aside in rollback/, one ts_rollback_t per
 * file; free with ts_cluster_rollbacks_free. Fails the test on a file that
 * does not decode. */
size_t ts_cluster_rollbacks(ts_cluster_t *cl, ts_rollback_t **rollbacks);
void ts_cluster_rollbacks_free(ts_rollback_t *rollbacks, size_t n);
/* ts_check_acks on history against every node's WAL up to upto (settled)
 * and their rollbacks: the problems found (reported to stderr);
 * *n_rolled_back (may be NULL) gets how many entries the rollbacks hold. */
size_t ts_cluster_check_acks(ts_cluster_t *cl, const ts_op_t *history, size_t n, uint64_t upto,
                             size_t *n_rolled_back);

#endif
