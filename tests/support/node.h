/* Real strata-writer processes for integration tests: started on loopback
 * with free ports, found through the writer.endpoints file it writes when
 * ready, stopped with SIGTERM or killed with SIGKILL. */
#ifndef STRATA_TEST_NODE_H
#define STRATA_TEST_NODE_H

#include <stdbool.h>
#include <sys/types.h>

#include "strata/client.h"

typedef struct {
    pid_t pid;
    char dir[512];
    char endpoint[256]; /* tcp://127.0.0.1:PORT */
    char control[600];  /* ipc://DIR/writer.ctl */
    char metrics[256];  /* http://127.0.0.1:PORT/metrics */
    char log[600];      /* DIR/../writer-<pid>.log: the process's stderr */
} ts_node_t;

/* Starts STRATA_WRITER_BIN with data in data_dir (created if missing) and
 * waits up to 15 s for it to be ready. env: extra NULL-terminated
 * "NAME=value" strings (may be NULL). Fails the test when it does not come up,
 * printing its log. */
void ts_node_start(ts_node_t *node, const char *data_dir, const char *const *env);
/* Environments for ts_node_start making a cluster node of one writer: the
 * master of a one-voter cluster, and a voter of three that reaches neither
 * peer, so is never master and knows none. */
extern const char *const ts_env_sole_voter[];
extern const char *const ts_env_unreachable_voter[];
/* The same with -c config (NULL: none), the file giving the data dir and
 * the ports: only env is added to the test's environment. */
void ts_node_start_config(ts_node_t *node, const char *data_dir, const char *config,
                          const char *const *env);
/* SIGTERM and wait; returns the exit status (or 128+signal). */
int ts_node_stop(ts_node_t *node);
/* SIGKILL and reap. */
void ts_node_kill9(ts_node_t *node);
/* For a writer killed for good: removes the shm ring its writer.endpoints
 * names, which only a clean stop removes (a restart on the same dir reuses
 * it), so a test that deletes the dir leaves no 64 MiB in /dev/shm. */
void ts_node_discard_ring(const ts_node_t *node);
/* Whether the process is still running (reaps it if not). */
bool ts_node_alive(ts_node_t *node);

/* A strata-distributor beside a node's writer (same data dir), with free
 * ports; ready once it has written distributor.endpoints (its stream goes
 * live when it has attached to the writer's ring: wait for a heartbeat). */
typedef struct {
    pid_t pid;
    char dir[512];
    char live[256], delayed[256], history[256], metrics[256];
    char log[600];
} ts_dist_t;

void ts_dist_start(ts_dist_t *dist, const char *data_dir, const char *const *env);
void ts_dist_start_config(ts_dist_t *dist, const char *data_dir, const char *config,
                          const char *const *env);
int ts_dist_stop(ts_dist_t *dist);
void ts_dist_kill9(ts_dist_t *dist);

/* A strata-snapshotter beside a node's writer, snapshots only on request
 * (interval 0) unless env says otherwise; ready once it has written
 * snapshotter.endpoints (after removing what a killed one left half-built). */
typedef struct {
    pid_t pid;
    char dir[512];
    char endpoint[600];  /* ipc://DIR/snapshotter.ctl */
    char snapshots[600]; /* where the snapshots are */
    char log[600];
} ts_snap_t;

void ts_snap_start(ts_snap_t *snap, const char *data_dir, const char *const *env);
void ts_snap_start_config(ts_snap_t *snap, const char *data_dir, const char *config,
                          const char *const *env);
int ts_snap_stop(ts_snap_t *snap);
void ts_snap_kill9(ts_snap_t *snap);

/* A strata-compactor beside a node's writer; ready once it has written
 * compactor.endpoints (after taking compaction/LOCK and removing what a
 * killed one left there). */
typedef struct {
    pid_t pid;
    char dir[512];
    char endpoint[600]; /* ipc://DIR/compactor.ctl */
    char log[600];
} ts_comp_t;

void ts_comp_start(ts_comp_t *comp, const char *data_dir, const char *const *env);
void ts_comp_start_config(ts_comp_t *comp, const char *data_dir, const char *config,
                          const char *const *env);
int ts_comp_stop(ts_comp_t *comp);
void ts_comp_kill9(ts_comp_t *comp);

/* A Raft transport, strata-election or strata-replicator (kind "election"
 * or "replicator"), started with -c config beside a node's writer; ready
 * once it has written <kind>.endpoints. */
typedef struct {
    pid_t pid;
    char dir[512];
    char kind[16];
    char control[600]; /* ipc://DIR/<kind>.ctl */
    char metrics[256];
    char bind[256];
    char log[600];
} ts_relay_t;

void ts_relay_start_config(ts_relay_t *relay, const char *kind, const char *data_dir,
                           const char *config, const char *const *env);
int ts_relay_stop(ts_relay_t *relay);
void ts_relay_kill9(ts_relay_t *relay);

/* Processes the support library starts from now on run as prefix followed
 * by their own command line (the service's path, then its arguments); NULL
 * or an empty list for none. prefix[0] is looked up on PATH now and must
 * exec the rest in place, without a fork, so the recorded pid is the
 * service's own and kill -9 and SIGSTOP reach it: env, nice, or
 * "unshare --time --monotonic N" (util-linux 2.38 execs in place; with
 * --fork it would not). The faketime program forks and waits, so it cannot
 * be one: preload libfaketime through env instead (cluster.h, faketime).
 * A wrapper that forks shows as a start that never gets ready, since the
 * endpoints file names a pid other than the one started. The strings are
 * copied. */
void ts_spawn_wrap(const char *const *prefix);

/* The libfaketime for threaded programs (libfaketimeMT.so.1 of Debian's
 * faketime package, or $TS_LIBFAKETIME); NULL when it is not
 * installed. */
const char *ts_libfaketime(void);
/* The slow-disk shim built for the tests (tests/support/slowdisk.c): with
 * LD_PRELOAD naming it and TS_SLOWDISK naming a control file, every
 * fsync and fdatasync of the process first sleeps the microseconds the file
 * holds, read at every call. Not STRATA_...: the services refuse an
 * environment variable of theirs that names no config key. */
const char *ts_slowdisk_lib(void);
/* Writes delay_us into the control file at path (a new file renamed into
 * place, so the shim never reads a half-written one); 0 for a fast disk. */
void ts_slowdisk_set(const char *path, unsigned delay_us);

/* The value of a control or stats reply's pair; fails the test naming it
 * when the reply has none. */
const char *ts_pair(const strata_reply_t *rep, const char *name);
/* One figure of a server's stats reply, as a number; fails the test when
 * the call fails or the reply lacks it. */
uint64_t ts_stat(strata_client_t *c, const char *name);

/* Runs argv (argv[0] is the binary) with stdout captured into *out (malloc'd,
 * NUL-terminated; may be NULL to discard) and returns its exit status. */
int ts_run_capture(const char *const *argv, char **out);
/* The same with the test's environment plus extra_env ("NAME=value", may be
 * NULL), the streams chosen (TS_STDOUT, TS_STDERR or both) into *out, and
 * SIGALRM after alarm_s seconds (0: none). */
#define TS_STDOUT 1
#define TS_STDERR 2
int ts_run_output(const char *const *argv, const char *extra_env, int streams, unsigned alarm_s,
                  char **out);

#endif
