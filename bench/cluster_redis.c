/* The cluster verb's Redis side: a master and two replicas on loopback, each
 * with appendonly yes and appendfsync always in its own directory, written
 * with SET followed by WAIT 1 (acknowledged once a replica has the write) or
 * with SET alone (acknowledged once the master has it on disk, the replicas
 * copying it afterwards); and three Sentinels (quorum 2) that fail the
 * master over when it is killed. cluster.c drives it through the two tables
 * of cluster.h. */
#define _GNU_SOURCE
#include "cluster.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NODES       3
#define SENTINELS   3
#define MASTER_NAME "m"
#define QUORUM      2
/* Sentinel's timings: the master is down after 1 s without a reply; a
 * failover that has not promoted a replica in 2 s is abandoned, and none is
 * started within two failover timeouts (plus up to 1 s that Sentinel adds
 * at random) of the last one. */
#define DOWN_AFTER_MS       1000
#define FAILOVER_TIMEOUT_MS 2000
#define SENTINEL_DESYNC_MS  1000

#define MAX_IN_FLIGHT           64
#define WAIT_TIMEOUT_MS         5000 /* the cases' WAIT 1: no replica in 5 s fails the case */
#define REPLY_TIMEOUT_MS        10000
#define WRITER_REPLY_TIMEOUT_MS 1000
#define RETRY_PAUSE_MS          5 /* between a failover writer's tries while there is no master */
#define POLL_MS                 10
#define SETTLE_DEADLINE_S       30.0
#define WHOLE_DEADLINE_S        60.0
#define STOP_GRACE_S            30.0

/* One redis-server process: a data node or a Sentinel. */
typedef struct {
    char name[40]; /* "redis-server (node2)", "redis-sentinel (1)" */
    pid_t pid;     /* 0 when not running (or reaped) */
    int port;      /* kept across restarts */
    char *dir;
    char *log_path;
    unsigned starts;
} s_proc_t;

struct cluster_redis {
    char *bin;
    char *root;
    s_proc_t nodes[NODES];
    s_proc_t sentinels[SENTINELS];
    unsigned master; /* index into nodes */
    int killed;      /* the node killed and not started again; -1 */
    uint64_t next_kill_ns;
    char version[32];
};

/* ---- queries ------------------------------------------------------------- */

/* One command on a fresh connection to port; NULL when it could not be
 * sent or the reply is an error. The caller frees the reply. */
static redisReply *s_ask(int port, const char *fmt, ...)
{
    redisContext *ctx = bench_redis_connect(port, 500, 1000);
    redisReply *reply = NULL;
    if (ctx && !ctx->err) {
        va_list ap;
        va_start(ap, fmt);
        reply = redisvCommand(ctx, fmt, ap);
        va_end(ap);
    }
    redisFree(ctx);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

/* The value of "name:" in an INFO text; "" when absent. */
static void s_info_field(const char *info, const char *name, char *out, size_t size)
{
    size_t len = strlen(name);
    out[0] = '\0';
    for (const char *line = info; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            snprintf(out, size, "%.*s", (int)strcspn(line + len + 1, "\r\n"), line + len + 1);
            return;
        }
    }
}

/* The value of field in a Sentinel reply of alternating names and values;
 * NULL when absent. */
static const char *s_pair(const redisReply *reply, const char *field)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        if (reply->element[i]->type == REDIS_REPLY_STRING &&
            reply->element[i + 1]->type == REDIS_REPLY_STRING &&
            strcmp(reply->element[i]->str, field) == 0)
            return reply->element[i + 1]->str;
    return NULL;
}

/* The master's port as one Sentinel sees it; -1 when it does not answer. */
static int s_sentinel_master_port(const s_proc_t *sentinel)
{
    redisReply *reply = s_ask(sentinel->port, "SENTINEL get-master-addr-by-name %s", MASTER_NAME);
    int port = -1;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(reply->element[1]->str);
    freeReplyObject(reply);
    return port;
}

/* The node every Sentinel names master; -1 while they do not agree on one. */
static int s_agreed_master(const cluster_redis_t *self)
{
    int port = s_sentinel_master_port(&self->sentinels[0]);
    for (unsigned i = 1; i < SENTINELS && port > 0; i++)
        if (s_sentinel_master_port(&self->sentinels[i]) != port)
            port = -1;
    for (unsigned i = 0; i < NODES && port > 0; i++)
        if (self->nodes[i].port == port)
            return (int)i;
    return -1;
}

/* ---- processes ----------------------------------------------------------- */

/* The first process that ended since it started, reaped and reported with
 * its log's tail; NULL when all that should run do. */
static const s_proc_t *s_find_ended(cluster_redis_t *self)
{
    s_proc_t *procs[NODES + SENTINELS];
    for (unsigned i = 0; i < NODES; i++)
        procs[i] = &self->nodes[i];
    for (unsigned i = 0; i < SENTINELS; i++)
        procs[NODES + i] = &self->sentinels[i];
    for (unsigned i = 0; i < NODES + SENTINELS; i++) {
        int status;
        if (procs[i]->pid > 0 && waitpid(procs[i]->pid, &status, WNOHANG) == procs[i]->pid) {
            char how[64];
            bench_describe_status(status, how, sizeof how);
            fprintf(stderr, "strata-bench: cluster: %s (pid %d) ended (%s)\n", procs[i]->name,
                    (int)procs[i]->pid, how);
            bench_show_log_tail(procs[i]->log_path);
            procs[i]->pid = 0;
            return procs[i];
        }
    }
    return NULL;
}

/* Starts proc from config_file (may be NULL) and args; a restart logs to a
 * file of its own, so the log of the process that was killed stays. */
static int s_proc_start(cluster_redis_t *self, s_proc_t *proc, const char *config_file,
                        const char *const args[], char *version, size_t version_size)
{
    free(proc->log_path);
    proc->log_path = proc->starts == 0
                         ? bench_printf("%s.log", proc->dir)
                         : bench_printf("%s.start%u.log", proc->dir, proc->starts + 1);
    proc->starts++;
    pid_t pid = bench_redis_start(self->bin, proc->dir, proc->log_path, config_file, args,
                                  &proc->port, version, version_size);
    proc->pid = pid > 0 ? pid : 0;
    return pid > 0 ? 0 : -1;
}

/* A data node: its append-only file fsynced before each reply, no RDB
 * snapshots, a replica of master_port when it is not 0. Replicas sync at
 * once (diskless, without the default 5 s wait for more replicas). */
static int s_node_start(cluster_redis_t *self, unsigned i, int master_port)
{
    /* A master's list ends where --replicaof would begin. */
    char port[16];
    snprintf(port, sizeof port, "%d", master_port);
    const char *const args[] = {"--save",
                                "",
                                "--appendonly",
                                "yes",
                                "--appendfsync",
                                "always",
                                "--repl-diskless-sync-delay",
                                "0",
                                master_port ? "--replicaof" : NULL,
                                "127.0.0.1",
                                port,
                                NULL};
    return s_proc_start(self, &self->nodes[i], NULL, args, self->version, sizeof self->version);
}

static int s_sentinel_start(cluster_redis_t *self, unsigned i)
{
    s_proc_t *sentinel = &self->sentinels[i];
    /* Sentinel rewrites its config file with what it learns: it must be
     * one of its own. */
    char *config = bench_printf("%s/sentinel.conf", sentinel->dir);
    FILE *f = fopen(config, "w");
    int rc = 0;
    if (!f) {
        fprintf(stderr, "strata-bench: cannot write %s: %s\n", config, strerror(errno));
        rc = -1;
    } else {
        fprintf(f,
                "sentinel monitor %s 127.0.0.1 %d %d\n"
                "sentinel down-after-milliseconds %s %d\n"
                "sentinel failover-timeout %s %d\n"
                "sentinel parallel-syncs %s 1\n",
                MASTER_NAME, self->nodes[self->master].port, QUORUM, MASTER_NAME, DOWN_AFTER_MS,
                MASTER_NAME, FAILOVER_TIMEOUT_MS, MASTER_NAME);
        if (fclose(f) != 0) {
            fprintf(stderr, "strata-bench: cannot write %s: %s\n", config, strerror(errno));
            rc = -1;
        }
    }
    const char *const args[] = {"--sentinel", NULL};
    if (rc == 0)
        rc = s_proc_start(self, sentinel, config, args, NULL, 0);
    free(config);
    return rc;
}

/* ---- waiting for the group ----------------------------------------------- */

/* Whether both replicas follow the master and hold everything it held when
 * asked, with no append-only file rewrite under way. The master's offset
 * grows by itself (Sentinels publish through it), so a replica at or past
 * it is in sync. A replica rewrites its file after a full sync and refuses
 * SIGTERM until that ends, so a group left rewriting would not stop. */
static bool s_in_sync(const cluster_redis_t *self, char *state, size_t size)
{
    const s_proc_t *master = &self->nodes[self->master];
    redisReply *reply = s_ask(master->port, "INFO replication");
    char role[16] = "", offset[32] = "";
    if (reply && reply->type == REDIS_REPLY_STRING) {
        s_info_field(reply->str, "role", role, sizeof role);
        s_info_field(reply->str, "master_repl_offset", offset, sizeof offset);
    }
    freeReplyObject(reply);
    if (strcmp(role, "master") != 0) {
        snprintf(state, size, "%s on port %d answers role '%s'", master->name, master->port, role);
        return false;
    }
    unsigned long long want = strtoull(offset, NULL, 10);
    for (unsigned i = 0; i < NODES; i++) {
        const s_proc_t *node = &self->nodes[i];
        if (i == self->master)
            continue;
        char link[16] = "", master_port[16] = "", replica_offset[32] = "", rewriting[8] = "",
             scheduled[8] = "";
        reply = s_ask(node->port, "INFO");
        if (reply && reply->type == REDIS_REPLY_STRING) {
            s_info_field(reply->str, "master_link_status", link, sizeof link);
            s_info_field(reply->str, "master_port", master_port, sizeof master_port);
            s_info_field(reply->str, "slave_repl_offset", replica_offset, sizeof replica_offset);
            s_info_field(reply->str, "aof_rewrite_in_progress", rewriting, sizeof rewriting);
            s_info_field(reply->str, "aof_rewrite_scheduled", scheduled, sizeof scheduled);
        }
        freeReplyObject(reply);
        if (strcmp(link, "up") != 0 || atoi(master_port) != master->port ||
            strtoull(replica_offset, NULL, 10) < want) {
            snprintf(state, size, "%s: link '%s' to port '%s', offset %s of %llu", node->name, link,
                     master_port, replica_offset[0] ? replica_offset : "?", want);
            return false;
        }
        if (strcmp(rewriting, "0") != 0 || strcmp(scheduled, "0") != 0) {
            snprintf(state, size, "%s: append-only file rewrite in progress '%s', scheduled '%s'",
                     node->name, rewriting, scheduled);
            return false;
        }
    }
    return true;
}

/* Whether every Sentinel names the master, sees no failover under way,
 * knows both replicas (reachable) and the other two Sentinels. */
static bool s_sentinels_ready(const cluster_redis_t *self, char *state, size_t size)
{
    int master_port = self->nodes[self->master].port;
    for (unsigned i = 0; i < SENTINELS; i++) {
        const s_proc_t *sentinel = &self->sentinels[i];
        redisReply *master = s_ask(sentinel->port, "SENTINEL master %s", MASTER_NAME);
        const char *port = s_pair(master, "port"), *flags = s_pair(master, "flags");
        const char *replicas = s_pair(master, "num-slaves");
        const char *others = s_pair(master, "num-other-sentinels");
        bool ready = port && atoi(port) == master_port && flags && strcmp(flags, "master") == 0 &&
                     replicas && atoi(replicas) == NODES - 1 && others &&
                     atoi(others) == SENTINELS - 1;
        snprintf(state, size, "%s: master port %s, flags %s, %s replicas, %s other sentinels",
                 sentinel->name, port ? port : "?", flags ? flags : "?", replicas ? replicas : "?",
                 others ? others : "?");
        freeReplyObject(master);
        if (!ready)
            return false;
        redisReply *list = s_ask(sentinel->port, "SENTINEL replicas %s", MASTER_NAME);
        for (size_t j = 0; ready && list && list->type == REDIS_REPLY_ARRAY && j < list->elements;
             j++) {
            const char *replica_flags = s_pair(list->element[j], "flags");
            ready = replica_flags && strcmp(replica_flags, "slave") == 0;
            if (!ready)
                snprintf(state, size, "%s: a replica with flags %s", sentinel->name,
                         replica_flags ? replica_flags : "?");
        }
        ready = ready && list && list->type == REDIS_REPLY_ARRAY;
        freeReplyObject(list);
        if (!ready)
            return false;
    }
    return true;
}

/* Waits until the replicas are in sync and, with sentinels, until the
 * Sentinels are ready too. */
static int s_wait_group(cluster_redis_t *self, bool sentinels, double seconds)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
    char state[256] = "";
    for (;;) {
        if (s_find_ended(self))
            return -1;
        /* Sentinel may fail a master over that this loaded machine kept
         * from answering in time, with no kill: follow it. */
        int agreed = self->sentinels[0].pid > 0 ? s_agreed_master(self) : -1;
        if (agreed >= 0)
            self->master = (unsigned)agreed;
        if (s_in_sync(self, state, sizeof state) &&
            (!sentinels || s_sentinels_ready(self, state, sizeof state)))
            return 0;
        if (bench_now_ns() >= deadline)
            break;
        bench_sleep_ms(POLL_MS);
    }
    fprintf(stderr, "strata-bench: cluster: redis %s after %.0f s (%s)\n",
            sentinels ? "replicas and Sentinels not ready" : "replicas not in sync", seconds,
            state);
    return -1;
}

/* ---- the group ----------------------------------------------------------- */

cluster_redis_t *cluster_redis_new(const char *redis_bin, const char *dir)
{
    cluster_redis_t *self = bench_alloc_or_die(calloc(1, sizeof *self));
    self->bin = bench_alloc_or_die(strdup(redis_bin));
    self->killed = -1;
    snprintf(self->version, sizeof self->version, "?");
    /* Absolute: Sentinel keeps its config file's path, and redis changes
     * into its --dir. */
    char *real = realpath(dir, NULL);
    self->root = real ? bench_path(real, "redis") : NULL;
    free(real);
    if (!self->root || mkdir(self->root, 0755) != 0) {
        fprintf(stderr, "strata-bench: cluster: cannot make a redis directory under %s: %s\n", dir,
                strerror(errno));
        cluster_redis_destroy(&self);
        return NULL;
    }
    int rc = 0;
    for (unsigned i = 0; i < NODES + SENTINELS && rc == 0; i++) {
        bool node = i < NODES;
        s_proc_t *proc = node ? &self->nodes[i] : &self->sentinels[i - NODES];
        unsigned n = node ? i + 1 : i - NODES + 1;
        snprintf(proc->name, sizeof proc->name,
                 node ? "redis-server (node%u)" : "redis-sentinel (%u)", n);
        proc->dir = bench_printf(node ? "%s/node%u" : "%s/sentinel%u", self->root, n);
        if (mkdir(proc->dir, 0755) != 0) {
            fprintf(stderr, "strata-bench: mkdir %s: %s\n", proc->dir, strerror(errno));
            rc = -1;
        }
    }
    for (unsigned i = 0; i < NODES && rc == 0; i++)
        rc = s_node_start(self, i, i == 0 ? 0 : self->nodes[0].port);
    if (rc == 0)
        rc = s_wait_group(self, false, SETTLE_DEADLINE_S);
    for (unsigned i = 0; i < SENTINELS && rc == 0; i++)
        rc = s_sentinel_start(self, i);
    if (rc != 0)
        cluster_redis_destroy(&self);
    return self;
}

int cluster_redis_destroy(cluster_redis_t **self_p)
{
    cluster_redis_t *self = *self_p;
    if (!self)
        return 0;
    int rc = 0;
    /* Sentinels first, so none starts a failover while the master stops. */
    s_proc_t *order[SENTINELS + NODES];
    for (unsigned i = 0; i < SENTINELS; i++)
        order[i] = &self->sentinels[i];
    for (unsigned i = 0; i < NODES; i++)
        order[SENTINELS + i] = &self->nodes[i];
    for (unsigned i = 0; i < SENTINELS + NODES; i++) {
        s_proc_t *proc = order[i];
        pid_t pid = proc->pid;
        proc->pid = 0;
        if (pid > 0 && bench_stop_child(pid, proc->name, STOP_GRACE_S, proc->log_path) != 0)
            rc = -1;
        free(proc->dir);
        free(proc->log_path);
    }
    free(self->bin);
    free(self->root);
    free(self);
    *self_p = NULL;
    return rc;
}

void cluster_redis_describe(const cluster_redis_t *self)
{
    for (unsigned i = 0; i < NODES; i++)
        printf("redis-repl: node%u redis-server %s (pid %d) at 127.0.0.1:%d%s\n", i + 1,
               self->version, (int)self->nodes[i].pid, self->nodes[i].port,
               i == self->master ? " (master)" : ", replica");
    printf("redis-sentinel: %d Sentinels (pids %d, %d, %d), quorum %d, down-after %d ms, "
           "failover-timeout %d ms\n",
           SENTINELS, (int)self->sentinels[0].pid, (int)self->sentinels[1].pid,
           (int)self->sentinels[2].pid, QUORUM, DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS);
}

/* ---- the throughput cases ------------------------------------------------ */

/* SET, then WAIT 1 when wait, per request, depth requests in flight on one
 * connection. Replies come back in order, so the oldest send time is the
 * one due. */
static int s_run(cluster_redis_t *self, bool wait, unsigned depth, uint64_t seed, double seconds,
                 bench_case_t *c)
{
    int port = self->nodes[self->master].port;
    redisContext *ctx = bench_redis_connect(port, 5000, REPLY_TIMEOUT_MS);
    redisReply *reply = ctx && !ctx->err ? redisCommand(ctx, "PING") : NULL;
    if (!reply || reply->type != REDIS_REPLY_STATUS) {
        fprintf(stderr, "strata-bench: %s %s: 127.0.0.1:%d: %s\n", c->bench, c->system, port,
                !ctx       ? "out of memory"
                : ctx->err ? ctx->errstr
                           : "no PONG");
        freeReplyObject(reply);
        redisFree(ctx);
        return -1;
    }
    freeReplyObject(reply);
    uint64_t rng = seed, sent_ns[MAX_IN_FLIGHT];
    uint8_t key[BENCH_KEY_BYTES];
    unsigned in_flight = 0, oldest = 0;
    uint64_t start_ns = bench_now_ns(), deadline_ns = start_ns + (uint64_t)(seconds * 1e9);
    int rc = 0;
    for (;;) {
        uint64_t now = bench_now_ns();
        while (rc == 0 && in_flight < depth && in_flight < MAX_IN_FLIGHT && now < deadline_ns) {
            bench_random_key(&rng, key);
            if (redisAppendCommand(ctx, "SET %b %b", key, (size_t)BENCH_KEY_BYTES, bench_value(),
                                   (size_t)BENCH_VALUE_BYTES) != REDIS_OK ||
                (wait && redisAppendCommand(ctx, "WAIT 1 %d", WAIT_TIMEOUT_MS) != REDIS_OK)) {
                fprintf(stderr, "strata-bench: %s %s: append: %s\n", c->bench, c->system,
                        ctx->errstr);
                rc = -1;
                break;
            }
            sent_ns[(oldest + in_flight) % MAX_IN_FLIGHT] = now;
            in_flight++;
            now = bench_now_ns();
        }
        if (rc != 0 || in_flight == 0)
            break;
        redisReply *set = NULL, *acks = NULL;
        if (redisGetReply(ctx, (void **)&set) != REDIS_OK ||
            (wait && redisGetReply(ctx, (void **)&acks) != REDIS_OK)) {
            fprintf(stderr, "strata-bench: %s %s: reply: %s\n", c->bench, c->system, ctx->errstr);
            rc = -1;
        } else if (set->type != REDIS_REPLY_STATUS) {
            fprintf(stderr, "strata-bench: %s %s: SET: %s\n", c->bench, c->system,
                    set->type == REDIS_REPLY_ERROR ? set->str : "not a status reply");
            rc = -1;
        } else if (wait && (acks->type != REDIS_REPLY_INTEGER || acks->integer < 1)) {
            fprintf(stderr, "strata-bench: %s %s: WAIT 1 %d: no replica acknowledged\n", c->bench,
                    c->system, WAIT_TIMEOUT_MS);
            rc = -1;
        }
        now = bench_now_ns();
        freeReplyObject(set);
        freeReplyObject(acks);
        if (rc != 0)
            break;
        strata_histogram_record(c->latency, now - sent_ns[oldest]);
        c->ops++;
        oldest = (oldest + 1) % MAX_IN_FLIGHT;
        in_flight--;
    }
    c->seconds = (double)(bench_now_ns() - start_ns) / 1e9;
    redisFree(ctx);
    if (rc != 0)
        s_find_ended(self);
    return rc;
}

static int s_run_wait(void *arg, unsigned depth, uint64_t seed, double seconds, bench_case_t *c)
{
    return s_run(arg, true, depth, seed, seconds, c);
}

static int s_run_nowait(void *arg, unsigned depth, uint64_t seed, double seconds, bench_case_t *c)
{
    return s_run(arg, false, depth, seed, seconds, c);
}

static void s_settle(void *arg)
{
    cluster_redis_t *self = arg;
    if (s_wait_group(self, false, SETTLE_DEADLINE_S) != 0)
        fprintf(stderr, "strata-bench: cluster: warning: the redis replicas had not caught up "
                        "after a run\n");
}

cluster_contender_t cluster_redis_contender(cluster_redis_t *self)
{
    return (cluster_contender_t){"redis-repl", self, s_run_wait, s_settle};
}

cluster_contender_t cluster_redis_contender_async(cluster_redis_t *self)
{
    return (cluster_contender_t){"redis-async", self, s_run_nowait, s_settle};
}

/* ---- failover ------------------------------------------------------------ */

/* A writer's connection to whichever node the Sentinels name master. */
typedef struct {
    cluster_redis_t *group;
    redisContext *ctx; /* NULL: ask the Sentinels again */
    int port;
} s_client_t;

static void *s_client_new(void *arg)
{
    s_client_t *client = bench_alloc_or_die(calloc(1, sizeof *client));
    client->group = arg;
    return client;
}

static void s_client_destroy(void **client_p)
{
    s_client_t *client = *client_p;
    if (client)
        redisFree(client->ctx);
    free(client);
    *client_p = NULL;
}

static void s_client_drop(s_client_t *client)
{
    redisFree(client->ctx);
    client->ctx = NULL;
}

/* Connected to the master the first Sentinel that answers names. */
static bool s_client_connect(s_client_t *client, char *why)
{
    if (client->ctx)
        return true;
    int port = -1;
    for (unsigned i = 0; i < SENTINELS && port <= 0; i++)
        port = s_sentinel_master_port(&client->group->sentinels[i]);
    if (port <= 0) {
        snprintf(why, CLUSTER_WHY_BYTES, "no Sentinel names a master");
        return false;
    }
    redisContext *ctx =
        bench_redis_connect(port, CLUSTER_WRITER_TIMEOUT_MS, WRITER_REPLY_TIMEOUT_MS);
    if (!ctx || ctx->err) {
        snprintf(why, CLUSTER_WHY_BYTES, "connect 127.0.0.1:%d: %s", port,
                 ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return false;
    }
    client->ctx = ctx;
    client->port = port;
    return true;
}

/* SET then WAIT 1: acknowledged when a replica has it. An I/O error or an
 * error reply (a replica not yet promoted answers READONLY) drops the
 * connection, so the next write asks the Sentinels again. */
static int s_put(void *arg, const char *key, char *node, char *why)
{
    s_client_t *client = arg;
    if (!s_client_connect(client, why)) {
        bench_sleep_ms(RETRY_PAUSE_MS);
        return 0;
    }
    redisContext *ctx = client->ctx;
    size_t len = strlen(key);
    redisReply *set = NULL, *wait = NULL;
    int acked = 0;
    if (redisAppendCommand(ctx, "SET %b %b", key, len, key, len) != REDIS_OK ||
        redisAppendCommand(ctx, "WAIT 1 %d", CLUSTER_WRITER_TIMEOUT_MS) != REDIS_OK ||
        redisGetReply(ctx, (void **)&set) != REDIS_OK ||
        redisGetReply(ctx, (void **)&wait) != REDIS_OK) {
        snprintf(why, CLUSTER_WHY_BYTES, "127.0.0.1:%d: %s", client->port, ctx->errstr);
        s_client_drop(client);
    } else if (set->type == REDIS_REPLY_ERROR) {
        snprintf(why, CLUSTER_WHY_BYTES, "127.0.0.1:%d: SET: %s", client->port, set->str);
        s_client_drop(client);
    } else if (wait->type != REDIS_REPLY_INTEGER || wait->integer < 1) {
        snprintf(why, CLUSTER_WHY_BYTES, "127.0.0.1:%d: WAIT 1 %d: no replica acknowledged",
                 client->port, CLUSTER_WRITER_TIMEOUT_MS);
    } else {
        snprintf(node, CLUSTER_NAME_BYTES, "127.0.0.1:%d", client->port);
        acked = 1;
    }
    freeReplyObject(set);
    freeReplyObject(wait);
    if (!acked && !client->ctx)
        bench_sleep_ms(RETRY_PAUSE_MS);
    return acked;
}

static int s_present(void *arg, const char *key)
{
    s_client_t *client = arg;
    char why[CLUSTER_WHY_BYTES];
    if (!s_client_connect(client, why)) {
        fprintf(stderr, "strata-bench: cluster: redis GET %s: %s\n", key, why);
        return -1;
    }
    size_t len = strlen(key);
    redisReply *reply = redisCommand(client->ctx, "GET %b", key, len);
    int rc = -1;
    if (!reply)
        fprintf(stderr, "strata-bench: cluster: redis GET %s: %s\n", key, client->ctx->errstr);
    else if (reply->type == REDIS_REPLY_NIL)
        rc = 0;
    else if (reply->type == REDIS_REPLY_STRING && reply->len == len &&
             memcmp(reply->str, key, len) == 0)
        rc = 1;
    else
        fprintf(stderr, "strata-bench: cluster: redis GET %s: an unexpected reply (type %d)\n", key,
                reply->type);
    if (!reply)
        s_client_drop(client);
    freeReplyObject(reply);
    return rc;
}

static int s_kill_master(void *arg, char *killed, uint64_t *kill_ns)
{
    cluster_redis_t *self = arg;
    if (s_wait_group(self, true, WHOLE_DEADLINE_S) != 0)
        return -1;
    while (bench_now_ns() < self->next_kill_ns)
        bench_sleep_ms(POLL_MS);
    s_proc_t *master = &self->nodes[self->master];
    snprintf(killed, CLUSTER_NAME_BYTES, "127.0.0.1:%d", master->port);
    *kill_ns = bench_now_ns();
    kill(master->pid, SIGKILL);
    waitpid(master->pid, NULL, 0);
    master->pid = 0;
    self->killed = (int)self->master;
    return 0;
}

/* The node every Sentinel names master, once they agree on one other than
 * the killed node. */
static int s_wait_new_master(cluster_redis_t *self)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(WHOLE_DEADLINE_S * 1e9);
    do {
        int agreed = s_agreed_master(self);
        if (agreed >= 0 && agreed != self->killed) {
            self->master = (unsigned)agreed;
            return 0;
        }
        bench_sleep_ms(POLL_MS);
    } while (bench_now_ns() < deadline && !s_find_ended(self));
    fprintf(stderr, "strata-bench: cluster: the Sentinels agreed on no new master in %.0f s\n",
            WHOLE_DEADLINE_S);
    for (unsigned i = 0; i < SENTINELS; i++)
        bench_show_log_tail(self->sentinels[i].log_path);
    return -1;
}

static int s_recover(void *arg)
{
    cluster_redis_t *self = arg;
    if (self->killed < 0 || s_wait_new_master(self) != 0)
        return -1;
    /* The failover began before now: waiting from here for Sentinel's
     * pause between failovers is enough. */
    self->next_kill_ns =
        bench_now_ns() + (uint64_t)(2 * FAILOVER_TIMEOUT_MS + SENTINEL_DESYNC_MS) * 1000000u;
    unsigned killed = (unsigned)self->killed;
    self->killed = -1;
    if (s_node_start(self, killed, self->nodes[self->master].port) != 0)
        return -1;
    return s_wait_group(self, false, SETTLE_DEADLINE_S);
}

cluster_failover_ops_t cluster_redis_failover(cluster_redis_t *self)
{
    return (cluster_failover_ops_t){"redis-sentinel", self,     s_client_new,
                                    s_client_destroy, s_put,    s_present,
                                    s_kill_master,    s_recover};
}
