/* strata-bench service: the writer service against Redis, both started here
 * as child processes and driven over TCP loopback: sync puts (Strata's
 * fdatasync before the ack vs appendfsync always), async puts (vs appendfsync
 * everysec) and gets of preloaded keys, with 1, 16 and 64 requests in flight. */
#define _GNU_SOURCE
#include "bench.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/client.h"

/* bench/CMakeLists.txt names the built writer; this is for other builds. */
#ifndef STRATA_WRITER_BIN
#define STRATA_WRITER_BIN "build/services/writer/strata-writer"
#endif

/* Every comparison runs reps times, alternating which system goes first, and
 * reports the run with the median ops/s: this machine is noisy, and one
 * unlucky second should not decide a ratio. --quick must finish the verb in
 * under two minutes: 15 comparisons x 2 systems x 3 reps x 0.8 s is 72 s. */
#define QUICK_REPS         3
#define QUICK_REP_SECONDS  0.8
#define QUICK_PRELOAD_KEYS 50000
#define FULL_REPS          5
#define FULL_REP_SECONDS   3.0
#define FULL_PRELOAD_KEYS  500000

#define MAX_IN_FLIGHT      64
#define REPLY_TIMEOUT_MS   10000
#define START_DEADLINE_S   15.0
#define STOP_GRACE_S       30.0 /* a clean stop may end with a flush and an fsync */
#define PRELOAD_DEADLINE_S 600.0

typedef enum {
    S_PUT_SYNC,
    S_PUT_ASYNC,
    S_GET,
    S_WARMUP, /* a get whose answer does not matter: it opens the connection */
} s_op_t;

/* How the in-flight requests are spread: connections x depth each. Both
 * systems see exactly the same shape and the same keys. pN is one connection
 * keeping N requests pipelined (a client library's job); cN is N connections,
 * one thread each, one request at a time (N independent clients). */
typedef struct {
    const char *name;
    unsigned connections;
    unsigned depth;
} s_shape_t;

static const s_shape_t s_shapes[] = {
    {"p1", 1, 1}, {"p16", 1, 16}, {"p64", 1, 64}, {"c16", 16, 1}, {"c64", 64, 1},
};
#define SHAPE_COUNT (sizeof s_shapes / sizeof s_shapes[0])

typedef struct s_lane s_lane_t;

/* One system's client side: a lane calls send for every request and recv for
 * every reply; token pairs a reply with its request (its send time). */
typedef struct {
    const char *system;
    int (*connect)(s_lane_t *lane);
    void (*disconnect)(s_lane_t *lane);
    int (*send)(s_lane_t *lane, s_op_t op, const uint8_t *key, uint64_t *token);
    int (*recv)(s_lane_t *lane, s_op_t op, uint64_t *token);
} s_driver_t;

/* A server this verb started. */
typedef struct {
    const s_driver_t *driver;
    pid_t pid; /* 0 when not running */
    char *dir;
    char *log_path;
    char endpoint[256]; /* strata: the writer's client endpoint */
    int port;           /* redis */
} s_server_t;

/* Where a lane's keys come from. */
typedef enum {
    S_KEYS_FRESH,     /* random keys never written before: puts */
    S_KEYS_PRELOADED, /* random keys among the preloaded ones: gets */
    S_KEYS_PRELOAD,   /* the preloaded keys in order, once each */
} s_key_source_t;

/* One connection and the requests in flight on it. */
struct s_lane {
    const s_server_t *server;
    void *conn;
    uint64_t next_token; /* redis: replies come back in order */
    uint64_t next_reply_token;
    s_op_t op;
    s_key_source_t keys;
    unsigned depth;
    uint64_t rng;
    uint64_t preload_seed;
    uint64_t preload_count;
    uint64_t next_preload; /* S_KEYS_PRELOAD: next index to send */
    uint64_t slot_token[MAX_IN_FLIGHT];
    uint64_t slot_sent_ns[MAX_IN_FLIGHT];
    unsigned in_flight;
    strata_histogram_t *latency;
    uint64_t ops;
    uint64_t end_ns;
    pthread_barrier_t *start;
    const uint64_t *deadline_ns;
    char error[512];
    pthread_t thread;
};

typedef struct {
    bench_t *b;
    s_server_t writer;
    s_server_t redis_always;   /* sync puts */
    s_server_t redis_everysec; /* async puts and gets */
    bool redis;                /* false: redis rows skipped */
    unsigned reps;
    double rep_seconds;
    uint64_t preload_seed;
    uint64_t preload_count;
} s_ctx_t;

static int s_lane_fail(s_lane_t *lane, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_lane_fail(s_lane_t *lane, const char *fmt, ...)
{
    /* The first error is the one that explains the rest. */
    if (lane->error[0])
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lane->error, sizeof lane->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- child processes ----------------------------------------------------- */

/* SIGTERM, up to STOP_GRACE_S for a clean exit, then SIGKILL. Returns 0 for
 * a clean exit (code 0), -1 otherwise, with a warning on stderr. */
static int s_stop(s_server_t *server, const char *name)
{
    pid_t pid = server->pid;
    server->pid = 0;
    return bench_stop_child(pid, name, STOP_GRACE_S, server->log_path);
}

static void s_server_release(s_server_t *server)
{
    free(server->dir);
    free(server->log_path);
    server->dir = server->log_path = NULL;
}

/* ---- the Strata side ----------------------------------------------------- */

static int s_strata_connect(s_lane_t *lane)
{
    strata_client_options_t options = {.endpoint = lane->server->endpoint,
                                       .timeout_ms = REPLY_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_connect(&options, &client, &err);
    if (rc != 0)
        return s_lane_fail(lane, "strata connect %s: %s (%s)", lane->server->endpoint,
                           strata_strerror(rc), err.msg);
    lane->conn = client;
    return 0;
}

static void s_strata_disconnect(s_lane_t *lane)
{
    strata_client_t *client = lane->conn;
    strata_client_destroy(&client);
    lane->conn = NULL;
}

static int s_strata_send(s_lane_t *lane, s_op_t op, const uint8_t *key, uint64_t *token)
{
    strata_request_t req = {.key = {key, BENCH_KEY_BYTES}};
    if (op == S_PUT_SYNC || op == S_PUT_ASYNC) {
        req.op = STRATA_OP_PUT;
        req.durability = op == S_PUT_SYNC ? STRATA_DURABILITY_SYNC : STRATA_DURABILITY_ASYNC;
        req.value = (strata_bytes_t){bench_value(), BENCH_VALUE_BYTES};
    } else {
        req.op = STRATA_OP_GET;
    }
    strata_error_t err;
    strata_error_clear(&err);
    /* Queued until recv has no reply at hand, as hiredis's appended
     * commands wait for its next read. */
    int rc = strata_client_queue(lane->conn, &req, token, &err);
    if (rc != 0)
        return s_lane_fail(lane, "strata send: %s (%s)", strata_strerror(rc), err.msg);
    return 0;
}

static int s_strata_recv(s_lane_t *lane, s_op_t op, uint64_t *token)
{
    strata_reply_t reply = {0};
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_recv(lane->conn, REPLY_TIMEOUT_MS, &reply, &err);
    if (rc != 0)
        s_lane_fail(lane, "strata recv: %s (%s)", strata_strerror(rc), err.msg);
    else if (reply.status != 0)
        rc = s_lane_fail(lane, "strata reply: %s: %s", strata_strerror(reply.status),
                         reply.message ? reply.message : "");
    else if (op == S_GET && (reply.n_values != 1 || !reply.values[0].found))
        rc = s_lane_fail(lane, "strata get of a preloaded key: not found");
    else if (op == S_GET &&
             (reply.values[0].value.len != BENCH_VALUE_BYTES ||
              memcmp(reply.values[0].value.data, bench_value(), BENCH_VALUE_BYTES) != 0))
        rc = s_lane_fail(lane, "strata get of a preloaded key: wrong value (%zu bytes)",
                         reply.values[0].value.len);
    *token = reply.request_id;
    strata_reply_clear(&reply);
    return rc != 0 ? -1 : 0;
}

static const s_driver_t s_strata_driver = {"strata", s_strata_connect, s_strata_disconnect,
                                           s_strata_send, s_strata_recv};

/* The writer's fdatasync rounds so far (its stats pair syncs_total), so a
 * sync case can report how many puts one round carried. False if unknown. */
static bool s_writer_syncs(const s_server_t *writer, uint64_t *syncs_p)
{
    strata_client_options_t options = {.endpoint = writer->endpoint,
                                       .timeout_ms = REPLY_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_reply_t reply = {0};
    bool found = false;
    if (strata_client_connect(&options, &client, NULL) == 0 &&
        strata_client_stats(client, &reply, NULL) == 0)
        for (size_t i = 0; i < reply.n_pairs && !found; i++)
            if (strcmp(reply.pairs[i].name, "syncs_total") == 0) {
                *syncs_p = strtoull(reply.pairs[i].value, NULL, 10);
                found = true;
            }
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    return found;
}

static int s_writer_wait_ready(s_server_t *writer)
{
    int rc = bench_wait_endpoints(writer->pid, "strata-writer", writer->dir, "writer",
                                  "writer/endpoint", writer->endpoint, sizeof writer->endpoint,
                                  START_DEADLINE_S, writer->log_path);
    if (rc != 0 && waitpid(writer->pid, NULL, WNOHANG) != 0)
        writer->pid = 0; /* reaped: it ended */
    return rc;
}

static int s_writer_start(s_server_t *writer, const char *dir)
{
    writer->driver = &s_strata_driver;
    writer->dir = bench_path(dir, "writer");
    writer->log_path = bench_path(dir, "writer.log");
    if (mkdir(writer->dir, 0755) != 0) {
        fprintf(stderr, "strata-bench: mkdir %s: %s\n", writer->dir, strerror(errno));
        return -1;
    }
    char *data_dir_var = NULL;
    if (asprintf(&data_dir_var, "STRATA_NODE_DATA_DIR=%s", writer->dir) < 0)
        data_dir_var = NULL;
    bench_alloc_or_die(data_dir_var);
    /* Ports the OS picks, so a node already running here does not collide. */
    const char *const env[] = {data_dir_var, "STRATA_WRITER_ENDPOINT=tcp://127.0.0.1:*",
                               "STRATA_WRITER_METRICS=127.0.0.1:0", NULL};
    char *const argv[] = {STRATA_WRITER_BIN, NULL};
    writer->pid = bench_spawn(argv, env, writer->log_path);
    free(data_dir_var);
    if (writer->pid < 0) {
        writer->pid = 0;
        return -1;
    }
    if (s_writer_wait_ready(writer) != 0) {
        s_stop(writer, "strata-writer");
        return -1;
    }
    return 0;
}

/* ---- the Redis side ------------------------------------------------------ */

static int s_redis_connect(s_lane_t *lane)
{
    redisContext *ctx = bench_redis_connect(lane->server->port, 5000, REPLY_TIMEOUT_MS);
    if (!ctx || ctx->err) {
        s_lane_fail(lane, "redis connect 127.0.0.1:%d: %s", lane->server->port,
                    ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return -1;
    }
    lane->conn = ctx;
    return 0;
}

static void s_redis_disconnect(s_lane_t *lane)
{
    redisFree(lane->conn);
    lane->conn = NULL;
}

/* hiredis buffers appended commands and writes them all at the next read, as
 * a pipelining hiredis user gets them; ZMQ's I/O thread batches our sends the
 * same way. */
static int s_redis_send(s_lane_t *lane, s_op_t op, const uint8_t *key, uint64_t *token)
{
    redisContext *ctx = lane->conn;
    int rc;
    if (op == S_PUT_SYNC || op == S_PUT_ASYNC)
        rc = redisAppendCommand(ctx, "SET %b %b", key, (size_t)BENCH_KEY_BYTES, bench_value(),
                                (size_t)BENCH_VALUE_BYTES);
    else
        rc = redisAppendCommand(ctx, "GET %b", key, (size_t)BENCH_KEY_BYTES);
    if (rc != REDIS_OK)
        return s_lane_fail(lane, "redis append: %s", ctx->errstr);
    *token = lane->next_token++;
    return 0;
}

static int s_redis_recv(s_lane_t *lane, s_op_t op, uint64_t *token)
{
    redisContext *ctx = lane->conn;
    redisReply *reply = NULL;
    if (redisGetReply(ctx, (void **)&reply) != REDIS_OK || !reply)
        return s_lane_fail(lane, "redis reply: %s", ctx->errstr);
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR)
        rc = s_lane_fail(lane, "redis error: %s", reply->str);
    else if ((op == S_PUT_SYNC || op == S_PUT_ASYNC) && reply->type != REDIS_REPLY_STATUS)
        rc = s_lane_fail(lane, "redis SET: reply type %d, not a status", reply->type);
    else if (op == S_GET && reply->type != REDIS_REPLY_STRING)
        rc = s_lane_fail(lane, "redis GET of a preloaded key: not found");
    else if (op == S_GET &&
             (reply->len != BENCH_VALUE_BYTES || memcmp(reply->str, bench_value(), reply->len)))
        rc = s_lane_fail(lane, "redis GET of a preloaded key: wrong value (%zu bytes)", reply->len);
    freeReplyObject(reply);
    *token = lane->next_reply_token++;
    return rc;
}

static const s_driver_t s_redis_driver = {"redis", s_redis_connect, s_redis_disconnect,
                                          s_redis_send, s_redis_recv};

/* redis-server with an append-only file fsynced per appendfsync (always or
 * everysec) and no RDB snapshots, in its own directory. */
static int s_redis_start(s_server_t *redis, const char *redis_bin, const char *dir,
                         const char *appendfsync, char *version, size_t version_size)
{
    char name[64];
    snprintf(name, sizeof name, "redis-%s", appendfsync);
    redis->driver = &s_redis_driver;
    redis->dir = bench_path(dir, name);
    snprintf(name, sizeof name, "redis-%s.log", appendfsync);
    redis->log_path = bench_path(dir, name);
    if (mkdir(redis->dir, 0755) != 0) {
        fprintf(stderr, "strata-bench: mkdir %s: %s\n", redis->dir, strerror(errno));
        return -1;
    }
    const char *const args[] = {"--save",    "",  "--appendonly", "yes", "--appendfsync",
                                appendfsync, NULL};
    redis->port = 0;
    redis->pid = bench_redis_start(redis_bin, redis->dir, redis->log_path, NULL, args, &redis->port,
                                   version, version_size);
    if (redis->pid < 0) {
        redis->pid = 0;
        return -1;
    }
    return 0;
}

/* ---- lanes: N connections x depth requests in flight --------------------- */

/* The index-th preloaded key: a pure function of the index, so gets can draw
 * any of them without a table. splitmix64 is a bijection on its state, and
 * each index owns two states of its own, so no two keys collide. */
static void s_preloaded_key(uint64_t seed, uint64_t index, uint8_t key[BENCH_KEY_BYTES])
{
    uint64_t state = seed + index * 2 * UINT64_C(0x9E3779B97F4A7C15);
    bench_random_key(&state, key);
}

/* Whether the lane has another request to send now. */
static bool s_lane_next_key(s_lane_t *lane, uint64_t now_ns, uint8_t key[BENCH_KEY_BYTES])
{
    switch (lane->keys) {
    case S_KEYS_PRELOAD:
        if (lane->next_preload >= lane->preload_count || now_ns >= *lane->deadline_ns)
            return false;
        s_preloaded_key(lane->preload_seed, lane->next_preload++, key);
        return true;
    case S_KEYS_PRELOADED:
        if (now_ns >= *lane->deadline_ns)
            return false;
        s_preloaded_key(lane->preload_seed, bench_rand(&lane->rng) % lane->preload_count, key);
        return true;
    case S_KEYS_FRESH:
        if (now_ns >= *lane->deadline_ns)
            return false;
        bench_random_key(&lane->rng, key);
        return true;
    }
    return false;
}

/* Keeps depth requests in flight until the deadline, then collects the
 * replies still due. A request's latency runs from just before its send to
 * just after its reply is parsed. */
static int s_lane_run(s_lane_t *lane)
{
    const s_driver_t *driver = lane->server->driver;
    uint8_t key[BENCH_KEY_BYTES];
    for (;;) {
        uint64_t now = bench_now_ns();
        while (lane->in_flight < lane->depth && s_lane_next_key(lane, now, key)) {
            uint64_t token;
            if (driver->send(lane, lane->op, key, &token) != 0)
                return -1;
            lane->slot_token[lane->in_flight] = token;
            lane->slot_sent_ns[lane->in_flight] = now;
            lane->in_flight++;
            now = bench_now_ns();
        }
        if (lane->in_flight == 0)
            return 0;
        uint64_t token;
        if (driver->recv(lane, lane->op, &token) != 0)
            return -1;
        now = bench_now_ns();
        unsigned slot = 0;
        while (slot < lane->in_flight && lane->slot_token[slot] != token)
            slot++;
        if (slot == lane->in_flight)
            return s_lane_fail(lane, "%s: a reply to request %llu, which is not in flight",
                               driver->system, (unsigned long long)token);
        strata_histogram_record(lane->latency, now - lane->slot_sent_ns[slot]);
        lane->in_flight--;
        lane->slot_token[slot] = lane->slot_token[lane->in_flight];
        lane->slot_sent_ns[slot] = lane->slot_sent_ns[lane->in_flight];
        lane->ops++;
    }
}

static void *s_lane_main(void *arg)
{
    s_lane_t *lane = arg;
    pthread_barrier_wait(lane->start);
    s_lane_run(lane);
    lane->end_ns = bench_now_ns();
    return NULL;
}

/* One round trip, untimed, so connection set-up stays out of the case. */
static int s_lane_warm_up(s_lane_t *lane)
{
    uint8_t key[BENCH_KEY_BYTES] = {0};
    uint64_t sent, replied;
    if (lane->server->driver->send(lane, S_WARMUP, key, &sent) != 0 ||
        lane->server->driver->recv(lane, S_WARMUP, &replied) != 0)
        return -1;
    return 0;
}

/* What one run of a case is. */
typedef struct {
    s_op_t op;
    s_key_source_t keys;
    unsigned connections;
    unsigned depth;
    uint64_t seed;
    double seconds;
} s_run_t;

/* Connects run->connections lanes to server (in this thread: the clients'
 * first use sets up library state that is not ours to race), warms them up,
 * runs them on a thread each from one start to one deadline, and fills c. */
static int s_run_case(s_ctx_t *ctx, const s_server_t *server, const s_run_t *run, bench_case_t *c)
{
    assert(run->depth <= MAX_IN_FLIGHT);
    s_lane_t *lanes = bench_alloc_or_die(calloc(run->connections, sizeof *lanes));
    pthread_barrier_t start;
    uint64_t deadline_ns = UINT64_MAX;
    int rc = 0;
    unsigned connected = 0;
    for (; connected < run->connections && rc == 0; connected++) {
        s_lane_t *lane = &lanes[connected];
        lane->server = server;
        lane->op = run->op;
        lane->keys = run->keys;
        lane->depth = run->depth;
        lane->rng = run->seed ^ (UINT64_C(0x9E3779B97F4A7C15) * (connected + 1));
        lane->preload_seed = ctx->preload_seed;
        lane->preload_count = ctx->preload_count;
        lane->start = &start;
        lane->deadline_ns = &deadline_ns;
        lane->latency = bench_alloc_or_die(strata_histogram_new());
        if (server->driver->connect(lane) != 0 || s_lane_warm_up(lane) != 0) {
            fprintf(stderr, "strata-bench: %s %s: %s\n", c->bench, server->driver->system,
                    lane->error);
            rc = -1;
            if (!lane->conn) {
                strata_histogram_destroy(&lane->latency);
                break;
            }
        }
    }
    if (rc == 0) {
        if (pthread_barrier_init(&start, NULL, run->connections + 1) != 0) {
            fprintf(stderr, "strata-bench: pthread_barrier_init failed\n");
            exit(EXIT_FAILURE);
        }
        for (unsigned i = 0; i < run->connections; i++)
            if (pthread_create(&lanes[i].thread, NULL, s_lane_main, &lanes[i]) != 0) {
                fprintf(stderr, "strata-bench: cannot start thread %u\n", i);
                exit(EXIT_FAILURE);
            }
        bench_usage_t server_before, server_after, client_before, client_after;
        bool costs =
            bench_usage(server->pid, &server_before) == 0 && bench_usage(0, &client_before) == 0;
        uint64_t start_ns = bench_now_ns();
        deadline_ns = start_ns + (uint64_t)(run->seconds * 1e9);
        pthread_barrier_wait(&start); /* publishes deadline_ns to the lanes */
        uint64_t end_ns = start_ns;
        for (unsigned i = 0; i < run->connections; i++) {
            pthread_join(lanes[i].thread, NULL);
            if (lanes[i].error[0] && rc == 0) {
                fprintf(stderr, "strata-bench: %s %s: %s\n", c->bench, server->driver->system,
                        lanes[i].error);
                rc = -1;
            }
            strata_histogram_merge(c->latency, lanes[i].latency);
            c->ops += lanes[i].ops;
            if (lanes[i].end_ns > end_ns)
                end_ns = lanes[i].end_ns;
        }
        c->seconds = (double)(end_ns - start_ns) / 1e9;
        if (costs && bench_usage(server->pid, &server_after) == 0 &&
            bench_usage(0, &client_after) == 0)
            bench_case_costs(c, &server_before, &server_after, &client_before, &client_after);
        pthread_barrier_destroy(&start);
    }
    for (unsigned i = 0; i < connected; i++) {
        if (lanes[i].conn)
            server->driver->disconnect(&lanes[i]);
        strata_histogram_destroy(&lanes[i].latency);
    }
    free(lanes);
    return rc;
}

/* ---- the verb ------------------------------------------------------------ */

static const char *s_op_name(s_op_t op)
{
    switch (op) {
    case S_PUT_SYNC:
        return "put_sync";
    case S_PUT_ASYNC:
        return "put_async";
    case S_GET:
        return "get";
    case S_WARMUP:
        break;
    }
    return "warmup";
}

static uint64_t s_seed_for(uint64_t seed, const char *name, unsigned rep)
{
    for (const char *p = name; *p; p++)
        seed = seed * 31 + (uint8_t)*p;
    return seed * 31 + rep;
}

/* One op at one shape: reps runs per system, Strata first on even reps and
 * Redis first on odd ones, so drift in the machine hits both alike; reports
 * each system's median run and their ratio. */
static int s_compare(s_ctx_t *ctx, s_op_t op, const s_shape_t *shape)
{
    const s_server_t *servers[2] = {&ctx->writer,
                                    op == S_PUT_SYNC ? &ctx->redis_always : &ctx->redis_everysec};
    unsigned n_systems = ctx->redis ? 2 : 1;
    char name[48];
    snprintf(name, sizeof name, "service.%s.%s", s_op_name(op), shape->name);
    if (ctx->b->only && !strstr(name, ctx->b->only))
        return 0;
    bench_case_t runs[2][FULL_REPS > QUICK_REPS ? FULL_REPS : QUICK_REPS];
    int rc = 0;
    for (unsigned rep = 0; rep < ctx->reps; rep++) {
        s_run_t run = {.op = op,
                       .keys = op == S_GET ? S_KEYS_PRELOADED : S_KEYS_FRESH,
                       .connections = shape->connections,
                       .depth = shape->depth,
                       .seed = s_seed_for(ctx->b->seed, name, rep),
                       .seconds = ctx->rep_seconds};
        for (unsigned k = 0; k < n_systems; k++) {
            unsigned s = (rep % 2 == 0 || n_systems == 1) ? k : 1 - k;
            bench_case_t *c = &runs[s][rep];
            bench_case_init(c, name, servers[s]->driver->system);
            uint64_t syncs_before = 0, syncs_after = 0;
            bool count_syncs = op == S_PUT_SYNC && servers[s] == &ctx->writer &&
                               s_writer_syncs(servers[s], &syncs_before);
            if (rc == 0 && s_run_case(ctx, servers[s], &run, c) != 0)
                rc = -1;
            if (count_syncs && s_writer_syncs(servers[s], &syncs_after) &&
                syncs_after > syncs_before)
                c->group_size = (double)c->ops / (double)(syncs_after - syncs_before);
        }
    }
    const bench_case_t *median[2] = {NULL, NULL};
    for (unsigned s = 0; s < n_systems; s++) {
        median[s] = &runs[s][bench_median_run(runs[s], ctx->reps)];
        bench_case_report(ctx->b, median[s]);
    }
    if (median[1])
        bench_ratio_report(ctx->b, median[0], median[1]);
    for (unsigned s = 0; s < n_systems; s++)
        for (unsigned rep = 0; rep < ctx->reps; rep++)
            bench_case_release(&runs[s][rep]);
    return rc;
}

/* Writes the preload_count keys gets will read, as async puts 64 in flight. */
static int s_preload(s_ctx_t *ctx, const s_server_t *server)
{
    bench_case_t c;
    bench_case_init(&c, "service.preload", server->driver->system);
    s_run_t run = {.op = S_PUT_ASYNC,
                   .keys = S_KEYS_PRELOAD,
                   .connections = 1,
                   .depth = MAX_IN_FLIGHT,
                   .seconds = PRELOAD_DEADLINE_S};
    int rc = s_run_case(ctx, server, &run, &c);
    if (rc == 0 && c.ops != ctx->preload_count) {
        fprintf(stderr, "strata-bench: %s preload wrote %llu of %llu keys in %.0f s\n",
                server->driver->system, (unsigned long long)c.ops,
                (unsigned long long)ctx->preload_count, PRELOAD_DEADLINE_S);
        rc = -1;
    }
    if (rc == 0)
        printf("preloaded %llu keys into %s in %.2f s\n", (unsigned long long)c.ops,
               server->driver->system, c.seconds);
    bench_case_release(&c);
    return rc;
}

static const struct {
    s_op_t op;
    const char *title;
} s_tables[] = {
    {S_PUT_SYNC, "service put, sync: strata acks after fdatasync; redis appendfsync always"},
    {S_PUT_ASYNC, "service put, async: strata acks before fdatasync; redis appendfsync everysec"},
    {S_GET, "service get of preloaded keys (redis: the everysec instance)"},
};

int bench_service(bench_t *b)
{
    /* Ctrl-C should end the bench at once, as in the other verbs; czmq would
     * otherwise catch it for the client sockets. */
    zsys_handler_set(NULL);
    uint64_t verb_start_ns = bench_now_ns();
    s_ctx_t ctx = {.b = b,
                   .reps = b->quick ? QUICK_REPS : FULL_REPS,
                   .rep_seconds = b->quick ? QUICK_REP_SECONDS : FULL_REP_SECONDS,
                   .preload_seed = s_seed_for(b->seed, "service.preload", 0),
                   .preload_count = b->quick ? QUICK_PRELOAD_KEYS : FULL_PRELOAD_KEYS};
    if (access(STRATA_WRITER_BIN, X_OK) != 0) {
        fprintf(stderr, "strata-bench: service: no strata-writer at %s (%s); build it first\n",
                STRATA_WRITER_BIN, strerror(errno));
        return 1;
    }
    char *redis_bin = bench_find_in_path("redis-server");
    if (!redis_bin)
        fprintf(stderr, "strata-bench: service: redis-server is not on PATH (Debian: apt-get "
                        "install redis-server); the redis rows are skipped\n");
    char *dir = bench_case_dir(b, "service");
    int failed = 0;
    char redis_version[32] = "?";
    if (s_writer_start(&ctx.writer, dir) != 0) {
        failed = 1;
        goto done;
    }
    if (redis_bin) {
        ctx.redis = s_redis_start(&ctx.redis_always, redis_bin, dir, "always", redis_version,
                                  sizeof redis_version) == 0 &&
                    s_redis_start(&ctx.redis_everysec, redis_bin, dir, "everysec", redis_version,
                                  sizeof redis_version) == 0;
        if (!ctx.redis) {
            fprintf(stderr, "strata-bench: service: redis did not start; its rows are skipped\n");
            failed = 1;
        }
    }
    printf("strata-writer %s (pid %d) at %s\n", STRATA_WRITER_BIN, (int)ctx.writer.pid,
           ctx.writer.endpoint);
    if (ctx.redis)
        printf("redis-server %s %s (pids %d, %d), appendonly yes, no RDB saves\n", redis_version,
               redis_bin, (int)ctx.redis_always.pid, (int)ctx.redis_everysec.pid);
    printf("TCP loopback, %d-byte keys, %d-byte values. pN: one connection keeping N requests "
           "pipelined;\ncN: N connections, a thread each, one request at a time. Each row is the "
           "median by ops/s\nof %u runs of %.1f s, the systems taking turns.\n",
           BENCH_KEY_BYTES, BENCH_VALUE_BYTES, ctx.reps, ctx.rep_seconds);

    if (s_preload(&ctx, &ctx.writer) != 0 ||
        (ctx.redis && s_preload(&ctx, &ctx.redis_everysec) != 0)) {
        failed = 1;
        goto done;
    }
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++) {
        bench_table_header(s_tables[t].title);
        for (size_t i = 0; i < SHAPE_COUNT; i++)
            if (s_compare(&ctx, s_tables[t].op, &s_shapes[i]) != 0)
                failed = 1;
    }

done:;
    if (ctx.writer.pid > 0) {
        char *endpoints_path = bench_path(ctx.writer.dir, "writer.endpoints");
        if (s_stop(&ctx.writer, "strata-writer") != 0)
            failed = 1;
        else if (access(endpoints_path, F_OK) == 0)
            fprintf(stderr,
                    "strata-bench: warning: strata-writer left %s behind after a clean "
                    "shutdown\n",
                    endpoints_path);
        free(endpoints_path);
    }
    s_stop(&ctx.redis_always, "redis-server (always)");
    s_stop(&ctx.redis_everysec, "redis-server (everysec)");
    s_server_release(&ctx.writer);
    s_server_release(&ctx.redis_always);
    s_server_release(&ctx.redis_everysec);
    free(redis_bin);
    free(dir);
    printf("service: %.0f s\n", (double)(bench_now_ns() - verb_start_ns) / 1e9);
    return failed;
}
