/* strata-bench cluster: what replication costs a sync put, and what a
 * failover costs. One strata-writer alone, a 3-node cluster of real
 * processes on loopback (a writer, strata-election and strata-replicator per
 * node) and Redis with two replicas (cluster_redis.c), all driven the same
 * way over one connection: a sync put is acknowledged by the single node
 * after its fdatasync, by the cluster's master once a majority of the voters
 * holds it durably (proto/PROTOCOL.md, "Cluster nodes"), and by Redis once
 * WAIT 1 says a replica has it. Then async replication, acknowledged once
 * the master alone has the write on disk (Redis: SET without WAIT), and
 * how far the cluster's followers trail a master written at 100,000
 * records/s (cluster_lag.c). Then the cluster's master writer and the
 * Redis master (under three Sentinels) are killed in turn while a client
 * writes: the time to the first write a new master acknowledges, and the
 * acknowledged writes the new master lacks. */
#define _GNU_SOURCE
#include "cluster.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/client.h"

/* bench/CMakeLists.txt names the built binaries; these are for other builds. */
#ifndef STRATA_WRITER_BIN
#define STRATA_WRITER_BIN "build/services/writer/strata-writer"
#endif
#ifndef STRATA_ELECTION_BIN
#define STRATA_ELECTION_BIN "build/services/election/strata-election"
#endif
#ifndef STRATA_REPLICATOR_BIN
#define STRATA_REPLICATOR_BIN "build/services/replicator/strata-replicator"
#endif

/* Medians of reps runs, the systems taking turns, as in the service verb:
 * this machine is noisy. --quick must finish in under three minutes: sync
 * puts at 3 depths x 3 systems x 3 reps x 2 s is 54 s and async puts at 3
 * depths x 2 systems x 3 reps x 1.5 s 27 s, plus starting ten servers and
 * three Sentinels, the replicas catching up after each run, twice 3 s of
 * paced writes for the replica lag, 10 cluster kills of about 3 s each and 3
 * Redis kills of about 5 s (1 s until Sentinel calls the master down, its
 * failover, and its pause before the next one, which a cluster kill in
 * between covers). Redis gets fewer kills than the cluster in --quick for
 * that pause: ten of them, most without a cluster kill to cover it, would
 * not fit. */
#define QUICK_REPS           3
#define QUICK_REP_SECONDS    2.0
#define QUICK_ASYNC_SECONDS  1.5
#define QUICK_LAG_SECONDS    3.0
#define QUICK_KILLS          10
#define QUICK_SENTINEL_KILLS 3
#define FULL_REPS            5
#define FULL_REP_SECONDS     5.0
#define FULL_ASYNC_SECONDS   5.0
#define FULL_LAG_SECONDS     10.0
#define FULL_KILLS           10
#define FULL_SENTINEL_KILLS  10
#define MAX_KILLS            10
_Static_assert(QUICK_KILLS <= MAX_KILLS && QUICK_SENTINEL_KILLS <= MAX_KILLS &&
                   FULL_KILLS <= MAX_KILLS && FULL_SENTINEL_KILLS <= MAX_KILLS,
               "a system's failover times are kept for MAX_KILLS kills");
#define MAX_REPS          (FULL_REPS > QUICK_REPS ? FULL_REPS : QUICK_REPS)
#define CONTENDERS        3 /* single, cluster3, redis-repl */
#define ASYNC_CONTENDERS  2 /* redis-async, cluster3-async */
#define LAG_RECORDS_PER_S 100000.0

#define NODES             3
#define MAX_CHILDREN      (3 * NODES)
#define MAX_IN_FLIGHT     64
#define REPLY_TIMEOUT_MS  10000
#define POLL_TIMEOUT_MS   500
#define START_DEADLINE_S  15.0
#define MASTER_DEADLINE_S 30.0
#define SETTLE_DEADLINE_S 30.0
#define STOP_GRACE_S      30.0 /* a clean stop may end with a flush and an fsync */

#define WRITES_BEFORE_KILL    20
#define WRITES_AFTER_FAILOVER 20
#define MAX_ROUND_WRITES      (1u << 20)
#define FAILOVER_DEADLINE_S   60.0
#define READ_TRIES            3

typedef struct {
    char name[48]; /* e.g. "strata-writer (node2)" */
    pid_t pid;     /* 0 when not running (or reaped) */
    char *log_path;
} s_child_t;

/* One system under test: its processes and its writers' client endpoints. */
typedef struct {
    const char *name; /* the rows' system: "single" or "cluster3" */
    s_child_t children[MAX_CHILDREN];
    unsigned n_children;
    char *data_dirs[NODES];
    s_child_t *writers[NODES];
    char endpoints[NODES][256];
    unsigned n_nodes;
    unsigned master;     /* index into endpoints */
    uint64_t started_ns; /* when its processes were started */
    char *configs[NODES];
    unsigned writer_starts[NODES];
    int killed; /* the node whose writer was killed and not started again; -1 */
} s_system_t;

/* ---- processes ----------------------------------------------------------- */

static s_child_t *s_spawn(s_system_t *sys, const char *name, char *const argv[],
                          const char *const env[], char *log_path)
{
    s_child_t *child = &sys->children[sys->n_children++];
    snprintf(child->name, sizeof child->name, "%s", name);
    child->log_path = log_path;
    child->pid = bench_spawn(argv, env, log_path);
    if (child->pid < 0)
        child->pid = 0;
    return child->pid > 0 ? child : NULL;
}

/* Waits for <data_dir>/<service>.endpoints; a child that ended is reaped
 * there, so it must not be signalled again (its pid may be reused). */
static int s_wait_ready(s_child_t *child, const char *data_dir, const char *service,
                        const char *key, char *out, size_t out_size)
{
    int rc = bench_wait_endpoints(child->pid, child->name, data_dir, service, key, out, out_size,
                                  START_DEADLINE_S, child->log_path);
    if (rc != 0 && waitpid(child->pid, NULL, WNOHANG) != 0)
        child->pid = 0;
    return rc;
}

/* The first child that has ended since it started, reaped and reported with
 * its log's tail; NULL when all run. */
static const s_child_t *s_find_ended(s_system_t *sys)
{
    for (unsigned i = 0; i < sys->n_children; i++) {
        s_child_t *child = &sys->children[i];
        int status;
        if (child->pid > 0 && waitpid(child->pid, &status, WNOHANG) == child->pid) {
            char how[64];
            bench_describe_status(status, how, sizeof how);
            fprintf(stderr, "strata-bench: cluster: %s (pid %d) ended (%s)\n", child->name,
                    (int)child->pid, how);
            bench_show_log_tail(child->log_path);
            child->pid = 0;
            return child;
        }
    }
    return NULL;
}

/* Relays before writers, so no writer is left talking to a dead relay, and
 * every writer stops with nothing in flight. */
static int s_system_stop(s_system_t *sys)
{
    int rc = 0;
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned i = sys->n_children; i-- > 0;) {
            s_child_t *child = &sys->children[i];
            bool writer = strncmp(child->name, "strata-writer", 13) == 0;
            if (child->pid <= 0 || writer != (pass == 1))
                continue;
            pid_t pid = child->pid;
            child->pid = 0;
            if (bench_stop_child(pid, child->name, STOP_GRACE_S, child->log_path) != 0)
                rc = -1;
        }
    return rc;
}

static void s_system_release(s_system_t *sys)
{
    for (unsigned i = 0; i < sys->n_children; i++)
        free(sys->children[i].log_path);
    for (unsigned i = 0; i < sys->n_nodes; i++) {
        free(sys->data_dirs[i]);
        free(sys->configs[i]);
    }
}

/* One writer with no cluster config, its ports chosen by the OS. */
static int s_single_start(s_system_t *sys, const char *dir)
{
    sys->name = "single";
    sys->n_nodes = 1;
    sys->data_dirs[0] = bench_path(dir, "single");
    if (mkdir(sys->data_dirs[0], 0755) != 0) {
        fprintf(stderr, "strata-bench: mkdir %s: %s\n", sys->data_dirs[0], strerror(errno));
        return -1;
    }
    char *data_dir_var = bench_printf("STRATA_NODE_DATA_DIR=%s", sys->data_dirs[0]);
    const char *const env[] = {data_dir_var, "STRATA_WRITER_ENDPOINT=tcp://127.0.0.1:*",
                               "STRATA_WRITER_METRICS=127.0.0.1:0", NULL};
    char *const argv[] = {STRATA_WRITER_BIN, NULL};
    sys->writers[0] =
        s_spawn(sys, "strata-writer (single)", argv, env, bench_path(dir, "single-writer.log"));
    free(data_dir_var);
    if (!sys->writers[0])
        return -1;
    return s_wait_ready(sys->writers[0], sys->data_dirs[0], "writer", "writer/endpoint",
                        sys->endpoints[0], sizeof sys->endpoints[0]);
}

/* The config tests/support/cluster.c and deploy/strata-cluster write: the
 * node's one file, every peer list naming all three nodes. */
static int s_write_config(const char *path, unsigned id, const char *data_dir, const int *ports)
{
    char voters[32] = "", election[256] = "", replicator[256] = "", client[256] = "";
    for (unsigned i = 0; i < NODES; i++) {
        const char *sep = i ? "," : "";
        size_t at;
        at = strlen(voters);
        snprintf(voters + at, sizeof voters - at, "%s%u", sep, i + 1);
        at = strlen(client);
        snprintf(client + at, sizeof client - at, "%s%u=tcp://127.0.0.1:%d", sep, i + 1,
                 ports[3 * i]);
        at = strlen(election);
        snprintf(election + at, sizeof election - at, "%s%u=tcp://127.0.0.1:%d", sep, i + 1,
                 ports[3 * i + 1]);
        at = strlen(replicator);
        snprintf(replicator + at, sizeof replicator - at, "%s%u=tcp://127.0.0.1:%d", sep, i + 1,
                 ports[3 * i + 2]);
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "strata-bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "node\n    name = node%u\n    data_dir = \"%s\"\n"
            "writer\n    endpoint = \"tcp://127.0.0.1:%d\"\n    metrics = \"127.0.0.1:0\"\n"
            "election\n    metrics = \"127.0.0.1:0\"\n"
            "replicator\n    metrics = \"127.0.0.1:0\"\n"
            "cluster\n    id = %u\n    voters = \"%s\"\n    election_peers = \"%s\"\n"
            "    replicator_peers = \"%s\"\n    client_peers = \"%s\"\n    bootstrap = true\n",
            id, data_dir, ports[3 * (id - 1)], id, voters, election, replicator, client);
    if (fclose(f) != 0) {
        fprintf(stderr, "strata-bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The node's role from its writer's status ("" when it does not answer). */
static void s_role(const char *endpoint, char *role, size_t size)
{
    strata_client_options_t options = {.endpoint = endpoint, .timeout_ms = POLL_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_reply_t reply = {0};
    role[0] = '\0';
    if (strata_client_connect(&options, &client, NULL) == 0 &&
        strata_client_status(client, &reply, NULL) == 0)
        snprintf(role, size, "%s", reply.role ? reply.role : "");
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
}

/* A new master answers ENOTMASTER until its first entry commits; any other
 * answer to a get (the key is absent) means it takes writes. */
static bool s_serves(const char *endpoint)
{
    strata_client_options_t options = {.endpoint = endpoint, .timeout_ms = POLL_TIMEOUT_MS};
    strata_client_t *client = NULL;
    void *value = NULL;
    size_t len = 0;
    int rc = STRATA_ETIMEDOUT;
    if (strata_client_connect(&options, &client, NULL) == 0)
        rc = strata_client_get(client, "?", 1, &value, &len, NULL);
    free(value);
    strata_client_destroy(&client);
    return rc == 0 || rc == STRATA_ENOTFOUND;
}

static int s_wait_master(s_system_t *sys)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(MASTER_DEADLINE_S * 1e9);
    char roles[NODES][32];
    do {
        if (s_find_ended(sys))
            return -1;
        for (unsigned i = 0; i < sys->n_nodes; i++) {
            s_role(sys->endpoints[i], roles[i], sizeof roles[i]);
            if (strcmp(roles[i], "leader") == 0 && s_serves(sys->endpoints[i])) {
                sys->master = i;
                return 0;
            }
        }
        bench_sleep_ms(20);
    } while (bench_now_ns() < deadline);
    fprintf(stderr,
            "strata-bench: cluster: no master serving after %.0f s (roles:", MASTER_DEADLINE_S);
    for (unsigned i = 0; i < sys->n_nodes; i++)
        fprintf(stderr, " node%u %s", i + 1, roles[i][0] ? roles[i] : "unreachable");
    fprintf(stderr, ")\n");
    for (unsigned i = 0; i < sys->n_children; i++)
        bench_show_log_tail(sys->children[i].log_path);
    return -1;
}

static int s_cluster_start(s_system_t *sys, const char *dir)
{
    sys->name = "cluster3";
    sys->n_nodes = NODES;
    int ports[MAX_CHILDREN]; /* node i: client, election, replicator at 3i.. */
    if (bench_free_ports(ports, MAX_CHILDREN) != 0)
        return -1;
    /* The configs name the data dirs absolutely: they must not depend on
     * where a process resolves them, and the writer's raft socket lives
     * there. */
    char *root = realpath(dir, NULL);
    if (!root) {
        fprintf(stderr, "strata-bench: realpath %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    sys->killed = -1;
    for (unsigned i = 0; i < NODES && rc == 0; i++) {
        char *node_dir = bench_printf("%s/node%u", root, i + 1);
        sys->data_dirs[i] = bench_printf("%s/data", node_dir);
        sys->configs[i] = bench_printf("%s/node.cfg", node_dir);
        snprintf(sys->endpoints[i], sizeof sys->endpoints[i], "tcp://127.0.0.1:%d", ports[3 * i]);
        if (mkdir(node_dir, 0755) != 0 || mkdir(sys->data_dirs[i], 0755) != 0) {
            fprintf(stderr, "strata-bench: mkdir under %s: %s\n", node_dir, strerror(errno));
            rc = -1;
        } else {
            rc = s_write_config(sys->configs[i], i + 1, sys->data_dirs[i], ports);
        }
        free(node_dir);
    }
    /* All nine start at once: an election needs a majority up, and waiting
     * for each in turn would only add up their start-up times. */
    static const char *const kinds[] = {"writer", "election", "replicator"};
    static const char *const bins[] = {STRATA_WRITER_BIN, STRATA_ELECTION_BIN,
                                       STRATA_REPLICATOR_BIN};
    s_child_t *children[NODES][3] = {{NULL}};
    sys->started_ns = bench_now_ns();
    for (unsigned i = 0; i < NODES && rc == 0; i++)
        for (unsigned k = 0; k < 3 && rc == 0; k++) {
            char name[48];
            snprintf(name, sizeof name, "strata-%s (node%u)", kinds[k], i + 1);
            char *const argv[] = {(char *)bins[k], "-c", sys->configs[i], NULL};
            const char *const env[] = {NULL};
            children[i][k] = s_spawn(sys, name, argv, env,
                                     bench_printf("%s/node%u/%s.log", root, i + 1, kinds[k]));
            if (!children[i][k])
                rc = -1;
        }
    for (unsigned i = 0; i < NODES && rc == 0; i++) {
        sys->writers[i] = children[i][0];
        for (unsigned k = 0; k < 3 && rc == 0; k++)
            rc = s_wait_ready(children[i][k], sys->data_dirs[i], kinds[k],
                              k == 0 ? "writer/endpoint" : NULL, NULL, 0);
    }
    if (rc == 0)
        rc = s_wait_master(sys);
    if (rc == 0)
        printf("cluster3: node%u is master, serving %.2f s after the nodes started\n",
               sys->master + 1, (double)(bench_now_ns() - sys->started_ns) / 1e9);
    free(root);
    return rc;
}

/* ---- the clients --------------------------------------------------------- */

static bool s_stats(const char *endpoint, const char *const names[], uint64_t values[], size_t n)
{
    strata_client_options_t options = {.endpoint = endpoint, .timeout_ms = REPLY_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_reply_t reply = {0};
    size_t found = 0;
    if (strata_client_connect(&options, &client, NULL) == 0 &&
        strata_client_stats(client, &reply, NULL) == 0)
        for (size_t i = 0; i < reply.n_pairs; i++)
            for (size_t j = 0; j < n; j++)
                if (strcmp(reply.pairs[i].name, names[j]) == 0) {
                    values[j] = strtoull(reply.pairs[i].value, NULL, 10);
                    found++;
                }
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    return found == n;
}

/* The master's fdatasync rounds, so a case can say how many puts one carried. */
static bool s_syncs(const s_system_t *sys, uint64_t *syncs)
{
    static const char *const names[] = {"syncs_total"};
    return s_stats(sys->endpoints[sys->master], names, syncs, 1);
}

/* Waits until every node holds and has committed what the master has, so a
 * follower still catching up does not load the disk under the next run,
 * whichever system's it is. Only a warning when it does not: the figures
 * are still what they are. */
static void s_settle(const s_system_t *sys)
{
    static const char *const names[] = {"commit_seq", "last_seq"};
    uint64_t deadline = bench_now_ns() + (uint64_t)(SETTLE_DEADLINE_S * 1e9);
    if (sys->n_nodes < 2)
        return;
    do {
        uint64_t want[2] = {0, 0}, got[2] = {0, 0};
        bool settled = s_stats(sys->endpoints[sys->master], names, want, 2) && want[0] == want[1];
        for (unsigned i = 0; i < sys->n_nodes && settled; i++)
            settled =
                s_stats(sys->endpoints[i], names, got, 2) && got[0] == want[0] && got[1] == want[1];
        if (settled)
            return;
        bench_sleep_ms(20);
    } while (bench_now_ns() < deadline);
    fprintf(stderr,
            "strata-bench: cluster: warning: the followers had not caught up %.0f s after "
            "a run\n",
            SETTLE_DEADLINE_S);
}

/* Sync puts of fresh random keys on one connection to the master, depth in
 * flight, for seconds, acknowledged as replication says (said outright, so
 * a node's cluster/replication cannot change what is measured; the single
 * node ignores it). A put's latency runs from just before its send to just
 * after its reply arrives. */
static int s_run_case(const s_system_t *sys, strata_replication_t replication, unsigned depth,
                      uint64_t seed, double seconds, bench_case_t *c)
{
    const char *endpoint = sys->endpoints[sys->master];
    strata_client_options_t options = {.endpoint = endpoint, .timeout_ms = REPLY_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_connect(&options, &client, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: %s %s: connect %s: %s (%s)\n", c->bench, sys->name, endpoint,
                strata_strerror(rc), err.msg);
        return -1;
    }
    /* One untimed round trip, so connection set-up stays out of the case. */
    void *value = NULL;
    size_t value_len = 0;
    rc = strata_client_get(client, "?", 1, &value, &value_len, &err);
    free(value);
    if (rc != 0 && rc != STRATA_ENOTFOUND) {
        fprintf(stderr, "strata-bench: %s %s: warm-up get: %s (%s)\n", c->bench, sys->name,
                strata_strerror(rc), err.msg);
        strata_client_destroy(&client);
        return -1;
    }
    uint64_t syncs_before = 0, syncs_after = 0;
    bool count_syncs = s_syncs(sys, &syncs_before);

    uint64_t rng = seed, tokens[MAX_IN_FLIGHT], sent_ns[MAX_IN_FLIGHT];
    uint8_t key[BENCH_KEY_BYTES];
    unsigned in_flight = 0;
    uint64_t start_ns = bench_now_ns(), deadline_ns = start_ns + (uint64_t)(seconds * 1e9);
    rc = 0;
    for (;;) {
        uint64_t now = bench_now_ns();
        while (rc == 0 && in_flight < depth && now < deadline_ns) {
            bench_random_key(&rng, key);
            strata_request_t req = {.op = STRATA_OP_PUT,
                                    .durability = STRATA_DURABILITY_SYNC,
                                    .replication = replication,
                                    .key = {key, BENCH_KEY_BYTES},
                                    .value = {bench_value(), BENCH_VALUE_BYTES}};
            rc = strata_client_send(client, &req, &tokens[in_flight], &err);
            if (rc != 0) {
                fprintf(stderr, "strata-bench: %s %s: send: %s (%s)\n", c->bench, sys->name,
                        strata_strerror(rc), err.msg);
                break;
            }
            sent_ns[in_flight++] = now;
            now = bench_now_ns();
        }
        if (rc != 0 || in_flight == 0)
            break;
        strata_reply_t reply = {0};
        rc = strata_client_recv(client, REPLY_TIMEOUT_MS, &reply, &err);
        now = bench_now_ns();
        unsigned slot = 0;
        while (slot < in_flight && tokens[slot] != reply.request_id)
            slot++;
        if (rc != 0)
            fprintf(stderr, "strata-bench: %s %s: recv: %s (%s)\n", c->bench, sys->name,
                    strata_strerror(rc), err.msg);
        else if (reply.status != 0)
            fprintf(stderr, "strata-bench: %s %s: put: %s: %s\n", c->bench, sys->name,
                    strata_strerror(reply.status), reply.message ? reply.message : "");
        else if (slot == in_flight)
            fprintf(stderr,
                    "strata-bench: %s %s: a reply to request %llu, which is not in "
                    "flight\n",
                    c->bench, sys->name, (unsigned long long)reply.request_id);
        rc = rc != 0 || reply.status != 0 || slot == in_flight ? -1 : 0;
        strata_reply_clear(&reply);
        if (rc != 0)
            break;
        strata_histogram_record(c->latency, now - sent_ns[slot]);
        c->ops++;
        in_flight--;
        tokens[slot] = tokens[in_flight];
        sent_ns[slot] = sent_ns[in_flight];
    }
    c->seconds = (double)(bench_now_ns() - start_ns) / 1e9;
    strata_client_destroy(&client);
    if (rc == 0 && count_syncs && s_syncs(sys, &syncs_after) && syncs_after > syncs_before)
        c->group_size = (double)c->ops / (double)(syncs_after - syncs_before);
    return rc;
}

/* ---- Strata as a contender and under failover ----------------------------- */

static int s_contender_run(s_system_t *sys, strata_replication_t replication, unsigned depth,
                           uint64_t seed, double seconds, bench_case_t *c)
{
    /* On this busy machine an election can move the office between runs;
     * each run writes to whichever node holds it then. */
    if (sys->n_nodes > 1 && s_wait_master(sys) != 0)
        return -1;
    int rc = s_run_case(sys, replication, depth, seed, seconds, c);
    if (rc != 0)
        s_find_ended(sys);
    return rc;
}

static int s_contender_run_quorum(void *self, unsigned depth, uint64_t seed, double seconds,
                                  bench_case_t *c)
{
    return s_contender_run(self, STRATA_REPLICATION_QUORUM, depth, seed, seconds, c);
}

static int s_contender_run_async(void *self, unsigned depth, uint64_t seed, double seconds,
                                 bench_case_t *c)
{
    return s_contender_run(self, STRATA_REPLICATION_ASYNC, depth, seed, seconds, c);
}

static void s_contender_settle(void *self)
{
    s_settle(self);
}

static cluster_contender_t s_contender(s_system_t *sys)
{
    return (cluster_contender_t){sys->name, sys, s_contender_run_quorum, s_contender_settle};
}

/* The cluster's rows of async puts: acknowledged once the master has them
 * on disk, the followers copying them afterwards. */
static cluster_contender_t s_contender_async(s_system_t *sys)
{
    return (cluster_contender_t){"cluster3-async", sys, s_contender_run_async, s_contender_settle};
}

/* A client over the whole endpoint list: it follows the master's "not
 * master" hints, and gives up on a silent node after CLUSTER_WRITER_TIMEOUT_MS. */
static void *s_client_new(void *self)
{
    s_system_t *sys = self;
    const char *endpoints[NODES];
    for (unsigned i = 0; i < sys->n_nodes; i++)
        endpoints[i] = sys->endpoints[i];
    strata_client_options_t options = {.endpoints = endpoints,
                                       .n_endpoints = sys->n_nodes,
                                       .timeout_ms = CLUSTER_WRITER_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_connect(&options, &client, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: cluster: connect: %s (%s)\n", strata_strerror(rc), err.msg);
    return client;
}

static void s_client_destroy(void **client_p)
{
    strata_client_t *client = *client_p;
    strata_client_destroy(&client);
    *client_p = NULL;
}

/* A sync put acknowledged once a majority holds it durably. */
static int s_put(void *arg, const char *key, char *node, char *why)
{
    strata_client_t *client = arg;
    strata_bytes_t bytes = {(const uint8_t *)key, strlen(key)};
    strata_request_t req = {.op = STRATA_OP_PUT,
                            .durability = STRATA_DURABILITY_SYNC,
                            .replication = STRATA_REPLICATION_QUORUM,
                            .key = bytes,
                            .value = bytes};
    strata_reply_t reply;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_call(client, &req, &reply, &err);
    strata_reply_clear(&reply);
    if (rc == 0)
        snprintf(node, CLUSTER_NAME_BYTES, "%s", strata_client_endpoint(client));
    else
        snprintf(why, CLUSTER_WHY_BYTES, "%s (%s)", strata_strerror(rc), err.msg);
    return rc == 0;
}

static int s_present(void *arg, const char *key)
{
    strata_client_t *client = arg;
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_get(client, key, strlen(key), &value, &len, &err);
    bool same = rc == 0 && len == strlen(key) && memcmp(value, key, len) == 0;
    free(value);
    if (rc == STRATA_ENOTFOUND)
        return 0;
    if (same)
        return 1;
    fprintf(stderr, "strata-bench: cluster: get %s at %s: %s\n", key,
            strata_client_endpoint(client), rc == 0 ? "another value" : err.msg);
    return -1;
}

/* kill -9 of the master's writer; its election and replicator go on. */
static int s_kill_master(void *self, char *killed, uint64_t *kill_ns)
{
    s_system_t *sys = self;
    if (s_wait_master(sys) != 0)
        return -1;
    s_child_t *writer = sys->writers[sys->master];
    snprintf(killed, CLUSTER_NAME_BYTES, "%s", sys->endpoints[sys->master]);
    *kill_ns = bench_now_ns();
    kill(writer->pid, SIGKILL);
    waitpid(writer->pid, NULL, 0);
    writer->pid = 0;
    sys->killed = (int)sys->master;
    return 0;
}

/* The killed writer again, with its config and data: it rejoins as a
 * follower and catches up from the new master. */
static int s_recover(void *self)
{
    s_system_t *sys = self;
    if (sys->killed < 0)
        return -1;
    unsigned i = (unsigned)sys->killed;
    sys->killed = -1;
    s_child_t *writer = sys->writers[i];
    char *log_path = bench_printf("%.*s.start%u.log", (int)strlen(writer->log_path) - 4,
                                  writer->log_path, ++sys->writer_starts[i] + 1);
    free(writer->log_path);
    writer->log_path = log_path;
    char *const argv[] = {STRATA_WRITER_BIN, "-c", sys->configs[i], NULL};
    const char *const env[] = {NULL};
    writer->pid = bench_spawn(argv, env, writer->log_path);
    if (writer->pid < 0) {
        writer->pid = 0;
        return -1;
    }
    if (s_wait_ready(writer, sys->data_dirs[i], "writer", "writer/endpoint", NULL, 0) != 0 ||
        s_wait_master(sys) != 0)
        return -1;
    s_settle(sys);
    return 0;
}

static cluster_failover_ops_t s_failover_ops(s_system_t *sys)
{
    return (cluster_failover_ops_t){sys->name, sys,       s_client_new,  s_client_destroy,
                                    s_put,     s_present, s_kill_master, s_recover};
}

/* ---- a failover round ---------------------------------------------------- */

/* One kill: a writer thread puts fresh keys one at a time through the
 * failover, and the calling thread kills the master under it. */
typedef struct {
    const cluster_failover_ops_t *ops;
    void *client;
    char prefix[48];
    char killed[CLUSTER_NAME_BYTES]; /* written before kill_ns */
    _Atomic uint64_t kill_ns;        /* 0 until the master is killed */
    _Atomic uint64_t first_ack_ns;   /* the first write another node acknowledged after it */
    _Atomic uint64_t n_acked;
    _Atomic bool stop;
    uint32_t *acked;             /* the numbers of the keys acknowledged, n_acked of them */
    char why[CLUSTER_WHY_BYTES]; /* why the last write was not acknowledged; read after join */
    pthread_t thread;
} s_round_t;

static void s_round_key(const s_round_t *round, uint32_t n, char key[64])
{
    snprintf(key, 64, "%s%06u", round->prefix, n);
}

static void *s_round_writer(void *arg)
{
    s_round_t *round = arg;
    char key[64], node[CLUSTER_NAME_BYTES], why[CLUSTER_WHY_BYTES];
    for (uint32_t n = 0; n < MAX_ROUND_WRITES && !atomic_load(&round->stop); n++) {
        s_round_key(round, n, key);
        if (!round->ops->put(round->client, key, node, why)) {
            memcpy(round->why, why, sizeof why);
            continue;
        }
        uint64_t now = bench_now_ns(), count = atomic_load(&round->n_acked);
        round->acked[count] = n;
        atomic_store(&round->n_acked, count + 1);
        uint64_t kill_ns = atomic_load(&round->kill_ns);
        if (kill_ns && now > kill_ns && atomic_load(&round->first_ack_ns) == 0 &&
            strcmp(node, round->killed) != 0)
            atomic_store(&round->first_ack_ns, now);
    }
    return NULL;
}

/* Until the writer has want acknowledgements (and, with after_kill, one
 * from the new master), or the deadline. */
static bool s_round_wait(s_round_t *round, uint64_t want, bool after_kill, double seconds)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
    while (bench_now_ns() < deadline) {
        if (atomic_load(&round->n_acked) >= want &&
            (!after_kill || atomic_load(&round->first_ack_ns) != 0))
            return true;
        bench_sleep_ms(1);
    }
    return false;
}

/* Writes, kills the master, times the first write a new master
 * acknowledges, brings the killed node back, then reads back every key
 * acknowledged in the round from the master. */
static int s_failover_round(const cluster_failover_ops_t *ops, unsigned kill, double *failover_ms,
                            uint64_t *acked, uint64_t *lost)
{
    s_round_t round = {.ops = ops};
    snprintf(round.prefix, sizeof round.prefix, "failover-%s-%u-", ops->name, kill);
    round.client = ops->client_new(ops->self);
    if (!round.client)
        return -1;
    round.acked = bench_alloc_or_die(calloc(MAX_ROUND_WRITES, sizeof *round.acked));
    if (pthread_create(&round.thread, NULL, s_round_writer, &round) != 0) {
        fprintf(stderr, "strata-bench: cannot start a thread\n");
        exit(EXIT_FAILURE);
    }
    const char *missing = NULL;
    uint64_t kill_ns = 0;
    int rc = 0;
    if (!s_round_wait(&round, WRITES_BEFORE_KILL, false, FAILOVER_DEADLINE_S))
        missing = "writes acknowledged before the kill";
    else if ((rc = ops->kill_master(ops->self, round.killed, &kill_ns)) == 0) {
        atomic_store(&round.kill_ns, kill_ns);
        if (!s_round_wait(&round, 0, true, FAILOVER_DEADLINE_S))
            missing = "a write acknowledged by a new master";
        else if (!s_round_wait(&round, atomic_load(&round.n_acked) + WRITES_AFTER_FAILOVER, true,
                               FAILOVER_DEADLINE_S))
            missing = "more writes acknowledged by the new master";
    }
    atomic_store(&round.stop, true);
    pthread_join(round.thread, NULL);
    if (missing) {
        fprintf(stderr,
                "strata-bench: cluster: %s kill %u: no %s within %.0f s (the last write: %s)\n",
                ops->name, kill + 1, missing, FAILOVER_DEADLINE_S, round.why[0] ? round.why : "-");
        rc = -1;
    }
    if (rc == 0)
        rc = ops->recover(ops->self);
    uint64_t n_acked = atomic_load(&round.n_acked);
    if (rc == 0)
        *failover_ms = (double)(atomic_load(&round.first_ack_ns) - kill_ns) / 1e6;
    *acked = n_acked;
    *lost = 0;
    for (uint64_t i = 0; i < n_acked && rc == 0; i++) {
        char key[64];
        s_round_key(&round, round.acked[i], key);
        /* A read that timed out on this busy machine says nothing yet. */
        int present = -1;
        for (unsigned tries = 0; tries < READ_TRIES && present < 0; tries++)
            present = ops->present(round.client, key);
        if (present < 0)
            rc = -1;
        else if (present == 0)
            (*lost)++;
    }
    ops->client_destroy(&round.client);
    free(round.acked);
    return rc;
}

/* ---- the verb ------------------------------------------------------------ */

/* bench_ratio_report names its row strata/<anchor>; here the row is
 * <cluster>/<anchor> (cluster3/single, cluster3/redis-repl,
 * cluster3-async/redis-async), with the two ratios that say what
 * replication costs: throughput and the tail. */
static void s_ratio_report(bench_t *b, const bench_case_t *cluster, const bench_case_t *anchor)
{
    char system[40], ops_cell[16] = "-", p99_cell[16] = "-";
    snprintf(system, sizeof system, "%s/%s", cluster->system, anchor->system);
    double anchor_ops = bench_ops_per_s(anchor);
    uint64_t anchor_p99 = strata_histogram_percentile(anchor->latency, 99.0);
    uint64_t cluster_p99 = strata_histogram_percentile(cluster->latency, 99.0);
    if (anchor_ops > 0 && cluster->ops > 0) {
        double ratio = bench_ops_per_s(cluster) / anchor_ops;
        snprintf(ops_cell, sizeof ops_cell, "%.2fx", ratio);
        bench_emit(b, cluster->bench, system, "ops_per_s_ratio", ratio, "x, higher is better");
    }
    if (anchor_p99 > 0 && cluster->ops > 0) {
        double ratio = (double)cluster_p99 / (double)anchor_p99;
        snprintf(p99_cell, sizeof p99_cell, "%.2fx", ratio);
        bench_emit(b, cluster->bench, system, "latency_p99_ratio", ratio, "x, lower is better");
    }
    /* A name longer than bench_case_report's column takes from the empty
     * ops column after it, so the ratios stay under their figures. */
    int overflow = (int)strlen(system) - 19;
    int ops_width = overflow > 0 ? (overflow < 12 ? 12 - overflow : 0) : 12;
    printf("%-22s %-19s %*s %10s %10s %10s %10s %7s\n", cluster->bench, system, ops_width, "",
           ops_cell, "", p99_cell, "", "");
    fflush(stdout);
}

static uint64_t s_seed_for(uint64_t seed, const char *name, unsigned rep)
{
    for (const char *p = name; *p; p++)
        seed = seed * 31 + (uint8_t)*p;
    return seed * 31 + rep;
}

/* One depth of op (put_sync, put_async): reps runs per system, a different
 * system first on each rep, so drift in the machine hits all alike.
 * contenders[1] is the cluster, compared with each of the others. */
static int s_compare(bench_t *b, const char *op, const cluster_contender_t *contenders, unsigned n,
                     unsigned depth, unsigned reps, double seconds)
{
    char name[48];
    snprintf(name, sizeof name, "cluster.%s.p%u", op, depth);
    bench_case_t runs[CONTENDERS][MAX_REPS];
    int rc = 0;
    for (unsigned rep = 0; rep < reps; rep++)
        for (unsigned k = 0; k < n; k++) {
            unsigned s = (rep + k) % n;
            bench_case_t *c = &runs[s][rep];
            bench_case_init(c, name, contenders[s].name);
            /* Every run writes keys of its own: a rerun with the same seed
             * writes the same ones, and no run overwrites another's. */
            if (rc == 0 &&
                contenders[s].run_case(contenders[s].self, depth,
                                       s_seed_for(b->seed, name, rep * n + s), seconds, c) != 0)
                rc = -1;
            if (rc == 0)
                contenders[s].settle(contenders[s].self);
        }
    const bench_case_t *median[CONTENDERS];
    for (unsigned s = 0; s < n; s++) {
        median[s] = &runs[s][bench_median_run(runs[s], reps)];
        bench_case_report(b, median[s]);
    }
    for (unsigned s = 0; s < n; s++)
        if (s != 1)
            s_ratio_report(b, median[1], median[s]);
    for (unsigned s = 0; s < n; s++)
        for (unsigned rep = 0; rep < reps; rep++)
            bench_case_release(&runs[s][rep]);
    return rc;
}

/* The paced writes of cluster_lag.c against sys's master, its other
 * nodes the followers watched. */
static int s_lag(bench_t *b, s_system_t *sys, double seconds)
{
    if (s_wait_master(sys) != 0)
        return -1;
    const char *followers[NODES];
    unsigned n = 0;
    for (unsigned i = 0; i < sys->n_nodes; i++)
        if (i != sys->master)
            followers[n++] = sys->endpoints[i];
    int rc = cluster_lag_bench(b, sys->endpoints[sys->master], followers, n, LAG_RECORDS_PER_S,
                               seconds, s_seed_for(b->seed, "cluster.replica_lag", 0));
    if (rc != 0)
        s_find_ended(sys);
    /* Writes the followers could not keep up with may have cost the master
     * its office. */
    if (s_wait_master(sys) != 0)
        return -1;
    s_settle(sys);
    return rc;
}

/* What the kills of one system measured. */
typedef struct {
    const char *system;
    unsigned planned, kills; /* kills meant, completed */
    double failover_ms[MAX_KILLS];
    uint64_t acked, lost;
} s_failover_t;

static int s_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_failover_p50(const s_failover_t *fo)
{
    double sorted[MAX_KILLS];
    memcpy(sorted, fo->failover_ms, fo->kills * sizeof sorted[0]);
    qsort(sorted, fo->kills, sizeof sorted[0], s_compare_doubles);
    return fo->kills % 2 ? sorted[fo->kills / 2]
                         : (sorted[fo->kills / 2 - 1] + sorted[fo->kills / 2]) / 2;
}

static void s_failover_report(bench_t *b, const s_failover_t *fo, unsigned n)
{
    static const char *const bench = "cluster.failover";
    printf("\n%-22s %-23s %6s %10s %10s %10s %10s\n", "bench", "system", "kills", "p50 ms",
           "max ms", "acked", "lost");
    for (unsigned s = 0; s < n; s++) {
        char p50_cell[16] = "-", max_cell[16] = "-";
        if (fo[s].kills > 0) {
            double p50 = s_failover_p50(&fo[s]), max = 0;
            for (unsigned k = 0; k < fo[s].kills; k++)
                max = fo[s].failover_ms[k] > max ? fo[s].failover_ms[k] : max;
            snprintf(p50_cell, sizeof p50_cell, "%.0f", p50);
            snprintf(max_cell, sizeof max_cell, "%.0f", max);
            bench_emit(b, bench, fo[s].system, "failover_ms_p50", p50, "ms");
            bench_emit(b, bench, fo[s].system, "failover_ms_max", max, "ms");
        }
        bench_emit(b, bench, fo[s].system, "kills", fo[s].kills, "kills");
        bench_emit(b, bench, fo[s].system, "acked", (double)fo[s].acked, "writes");
        bench_emit(b, bench, fo[s].system, "lost_acked", (double)fo[s].lost, "writes");
        printf("%-22s %-23s %6u %10s %10s %10llu %10llu\n", bench, fo[s].system, fo[s].kills,
               p50_cell, max_cell, (unsigned long long)fo[s].acked, (unsigned long long)fo[s].lost);
    }
    /* fo[1] is the cluster, as in the throughput rows. */
    for (unsigned s = 0; s < n; s++) {
        if (s == 1 || fo[s].kills == 0 || fo[1].kills == 0)
            continue;
        char system[48], cell[16];
        snprintf(system, sizeof system, "%s/%s", fo[1].system, fo[s].system);
        double ratio = s_failover_p50(&fo[1]) / s_failover_p50(&fo[s]);
        snprintf(cell, sizeof cell, "%.2fx", ratio);
        bench_emit(b, bench, system, "failover_ms_p50_ratio", ratio, "x, lower is better");
        printf("%-22s %-23s %6s %10s\n", bench, system, "", cell);
    }
    fflush(stdout);
}

/* fo[s].planned rounds per system, the systems taking turns while both
 * have rounds left: Sentinel starts no failover soon after the last one,
 * and that pause passes while the other system is being killed. */
static int s_failovers(const cluster_failover_ops_t *ops, s_failover_t *fo, unsigned n)
{
    int rc = 0;
    bool failed[CONTENDERS] = {false};
    unsigned kills = 0;
    for (unsigned s = 0; s < n; s++)
        kills = fo[s].planned > kills ? fo[s].planned : kills;
    for (unsigned kill = 0; kill < kills; kill++)
        for (unsigned s = 0; s < n; s++) {
            if (failed[s] || kill >= fo[s].planned)
                continue;
            double ms = 0;
            uint64_t acked = 0, lost = 0;
            if (s_failover_round(&ops[s], kill, &ms, &acked, &lost) != 0) {
                failed[s] = true;
                rc = -1;
                continue;
            }
            fo[s].failover_ms[fo[s].kills++] = ms;
            fo[s].acked += acked;
            fo[s].lost += lost;
            printf("%s kill %u: the first write acknowledged by a new master %.0f ms after the "
                   "kill; %llu acknowledged, %llu of them missing after\n",
                   ops[s].name, kill + 1, ms, (unsigned long long)acked, (unsigned long long)lost);
            fflush(stdout);
        }
    return rc;
}

int bench_cluster(bench_t *b)
{
    /* Ctrl-C should end the bench at once, as in the other verbs; czmq would
     * otherwise catch it for the client sockets. */
    zsys_handler_set(NULL);
    uint64_t verb_start_ns = bench_now_ns();
    unsigned reps = b->quick ? QUICK_REPS : FULL_REPS;
    double seconds = b->quick ? QUICK_REP_SECONDS : FULL_REP_SECONDS;
    double async_seconds = b->quick ? QUICK_ASYNC_SECONDS : FULL_ASYNC_SECONDS;
    double lag_seconds = b->quick ? QUICK_LAG_SECONDS : FULL_LAG_SECONDS;
    unsigned kills = b->quick ? QUICK_KILLS : FULL_KILLS;
    unsigned sentinel_kills = b->quick ? QUICK_SENTINEL_KILLS : FULL_SENTINEL_KILLS;
    static const char *const bins[] = {STRATA_WRITER_BIN, STRATA_ELECTION_BIN,
                                       STRATA_REPLICATOR_BIN};
    for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++)
        if (access(bins[i], X_OK) != 0) {
            fprintf(stderr, "strata-bench: cluster: no %s (%s); build it first\n", bins[i],
                    strerror(errno));
            return 1;
        }
    char *redis_bin = bench_find_in_path("redis-server");
    if (!redis_bin) {
        fprintf(stderr, "strata-bench: cluster: redis-server is not on PATH: the verb compares "
                        "against Redis with replicas and Sentinel (deploy/install-deps.sh installs "
                        "it; Debian: apt-get install redis-server)\n");
        return 1;
    }
    char *dir = bench_case_dir(b, "cluster");
    s_system_t single = {.name = "single", .killed = -1}, cluster = {.name = "cluster3"};
    cluster_redis_t *redis = NULL;
    int failed = 0;
    if (s_single_start(&single, dir) != 0 || s_cluster_start(&cluster, dir) != 0 ||
        !(redis = cluster_redis_new(redis_bin, dir))) {
        failed = 1;
        goto done;
    }
    printf("single: strata-writer (pid %d) at %s, no cluster config\n", (int)single.writers[0]->pid,
           single.endpoints[0]);
    for (unsigned i = 0; i < NODES; i++)
        printf("cluster3: node%u strata-writer (pid %d) at %s%s, with strata-election and "
               "strata-replicator\n",
               i + 1, (int)cluster.writers[i]->pid, cluster.endpoints[i],
               i == cluster.master ? " (master)" : "");
    cluster_redis_describe(redis);
    printf("TCP loopback, %d-byte keys, %d-byte values, fresh keys on one connection to the "
           "master. single:\nsync puts; cluster3: sync puts acknowledged once a majority holds "
           "them durably; redis-repl:\nSET then WAIT 1 (appendfsync always on the master, "
           "acknowledged once a replica has it;\nWAIT holds its connection, so Redis serves a "
           "connection's pairs one after another).\npN: N requests (SET+WAIT pairs) pipelined. "
           "Each row is the median by ops/s of %u runs\nof %.1f s, the systems taking turns; "
           "group is puts per fdatasync on the master.\n",
           BENCH_KEY_BYTES, BENCH_VALUE_BYTES, reps, seconds);

    bench_table_header("cluster put, sync: one writer alone, a 3-node cluster's master, Redis "
                       "with two replicas");
    const cluster_contender_t contenders[CONTENDERS] = {s_contender(&single), s_contender(&cluster),
                                                        cluster_redis_contender(redis)};
    static const unsigned depths[] = {MAX_IN_FLIGHT, 16, 1};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++)
        if (s_compare(b, "put_sync", contenders, CONTENDERS, depths[i], reps, seconds) != 0)
            failed = 1;
    /* The single writer has nothing more to show; it would only share the
     * disk from here on. */
    if (s_system_stop(&single) != 0)
        failed = 1;

    /* Redis keeps appendfsync always here: its SET is then answered after
     * the master's own fsync, as the cluster's async put is after the
     * master's fdatasync, so the one difference from the sync rows on both
     * sides is not waiting for a replica. */
    printf("\ncluster3-async: sync puts acknowledged once the master has them on disk "
           "(replication async),\nthe followers copying them afterwards; redis-async: SET "
           "alone (appendfsync always on the\nmaster, no WAIT). Each row is the median by "
           "ops/s of %u runs of %.1f s.\n",
           reps, async_seconds);
    bench_table_header("cluster put, async replication: a 3-node cluster's master, Redis with two "
                       "replicas without WAIT");
    const cluster_contender_t async_contenders[ASYNC_CONTENDERS] = {
        cluster_redis_contender_async(redis), s_contender_async(&cluster)};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++)
        if (s_compare(b, "put_async", async_contenders, ASYNC_CONTENDERS, depths[i], reps,
                      async_seconds) != 0)
            failed = 1;

    printf("\nreplica lag: batches of 100 sync puts paced at %.0f records/s for %.1f s on "
           "one\nconnection to cluster3's master (at most 64 batches in flight), quorum "
           "(cluster3), then\nasync replication (cluster3-async), each follower asked about "
           "every millisecond what it\nhas applied. records/s is what the master "
           "acknowledged, below the target when it\ncannot keep up; ack is a batch's send to its "
           "acknowledgement. A record's lag runs from\nthe master's acknowledgement to the first "
           "answer of a follower that has applied it (0\nwhen it had before the "
           "acknowledgement); p50/p99/max over every record on both\nfollowers. Times in ms.\n",
           LAG_RECORDS_PER_S, lag_seconds);
    if (s_lag(b, &cluster, lag_seconds) != 0)
        failed = 1;

    printf("\nfailover: kill -9 of the master (cluster3: its strata-writer) while one client "
           "writes fresh\nkeys one at a time, cluster3 %u times, redis-sentinel %u times, the "
           "systems taking turns\nwhile both have kills left. The time runs from the kill to the "
           "first write a new master\nacknowledges: cluster3 a quorum put through a client that "
           "follows \"not master\" hints;\nredis-sentinel SET+WAIT 1 to the master the Sentinels "
           "name. Either client gives up on a\nwrite after %d ms. The killed node then starts "
           "again as a replica; lost counts\nacknowledged keys the master does not have once it "
           "is in sync.\n",
           kills, sentinel_kills, CLUSTER_WRITER_TIMEOUT_MS);
    if (sentinel_kills < kills)
        printf("--quick kills Redis fewer times: each kill waits out Sentinel's pause between "
               "failovers.\n");
    const cluster_failover_ops_t ops[CONTENDERS - 1] = {cluster_redis_failover(redis),
                                                        s_failover_ops(&cluster)};
    s_failover_t fo[CONTENDERS - 1] = {{.system = ops[0].name, .planned = sentinel_kills},
                                       {.system = ops[1].name, .planned = kills}};
    if (s_failovers(ops, fo, CONTENDERS - 1) != 0)
        failed = 1;
    s_failover_report(b, fo, CONTENDERS - 1);

done:
    if (cluster_redis_destroy(&redis) != 0)
        failed = 1;
    s_system_t *systems[2] = {&single, &cluster};
    for (unsigned s = 0; s < 2; s++) {
        if (s_system_stop(systems[s]) != 0)
            failed = 1;
        s_system_release(systems[s]);
    }
    free(redis_bin);
    free(dir);
    printf("cluster: %.0f s\n", (double)(bench_now_ns() - verb_start_ns) / 1e9);
    return failed;
}
