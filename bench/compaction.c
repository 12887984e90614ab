/* strata-bench compaction: what compaction costs under a sustained write
 * load. One open-loop paced load (50k writes/s by default) runs for a fixed
 * time against strata-writer with strata-compactor, the writer alone (no
 * compaction: L0 grows), and RocksDB embedded here with and without
 * automatic compaction. Reports write latency, the CPU share of one core the
 * compaction took, and write amplification. */
#define _GNU_SOURCE
#include "bench.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "strata/client.h"

/* bench/CMakeLists.txt names the built services; these are for other builds. */
#ifndef STRATA_WRITER_BIN
#define STRATA_WRITER_BIN "build/services/writer/strata-writer"
#endif
#ifndef STRATA_COMPACTOR_BIN
#define STRATA_COMPACTOR_BIN "build/services/compactor/strata-compactor"
#endif

#define TARGET_WRITES_PER_S 50000
/* Writes fall due in bursts, 5 every 100 us: one due every 20 us had the
 * load's thread waking 50k times a second, which on two cores took CPU
 * from the writer and the compactor being measured. */
#define WRITES_PER_TICK 5
/* --quick must finish the verb in under two minutes: four phases of 22 s
 * plus a few seconds each to start and stop. */
#define QUICK_PHASE_S 22.0
#define FULL_PHASE_S  120.0
/* Small, so that a short run flushes every couple of seconds and L0 reaches
 * the compaction trigger many times over. */
#define MEMTABLE_MB      16
#define MAX_IMMUTABLE    4
#define L0_TRIGGER       4
#define LEVEL1_MB        64
#define TARGET_FILE_MB   8
#define GOAL_CPU_SHARE   0.10
#define HELD_FRACTION    0.98 /* of the target rate: "held" */
#define MAX_IN_FLIGHT    65536
#define REPLY_TIMEOUT_MS 10000
#define DRAIN_S          30.0
#define START_DEADLINE_S 15.0
#define STOP_GRACE_S     30.0
#define NO_L0_LIMIT      (1 << 20) /* rocksdb without compaction: never slow or stop */

/* ---- the load ------------------------------------------------------------ */

/* Write i is due at the start of its tick (WRITES_PER_TICK writes per
 * tick, one period_ns apart on average); its latency runs from its due
 * time, not from when it went out, so a client held up by a slow system
 * counts the wait (no coordinated omission). */
typedef struct {
    uint64_t rng;
    uint64_t period_ns;
    uint64_t start_ns, end_ns;
    uint64_t next; /* index of the next write to send */
    uint64_t acked;
    uint64_t last_ack_ns;
    strata_histogram_t *latency;
} s_load_t;

static void s_load_init(s_load_t *load, uint64_t seed, double seconds, strata_histogram_t *latency)
{
    memset(load, 0, sizeof *load);
    load->rng = seed;
    load->period_ns = 1000000000u / TARGET_WRITES_PER_S;
    load->start_ns = bench_now_ns();
    load->end_ns = load->start_ns + (uint64_t)(seconds * 1e9);
    load->latency = latency;
}

static uint64_t s_due_ns(const s_load_t *load, uint64_t index)
{
    return load->start_ns + index / WRITES_PER_TICK * (WRITES_PER_TICK * load->period_ns);
}

/* Until the last ack, when that came after the load's end: a system that
 * fell behind shows a rate under the target. */
static double s_load_seconds(const s_load_t *load)
{
    uint64_t end = load->last_ack_ns > load->end_ns ? load->last_ack_ns : load->end_ns;
    return (double)(end - load->start_ns) / 1e9;
}

static bool s_load_sending(const s_load_t *load)
{
    return s_due_ns(load, load->next) < load->end_ns;
}

static void s_sleep_until(uint64_t when_ns)
{
    struct timespec ts = {(time_t)(when_ns / 1000000000u), (long)(when_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- CPU time ------------------------------------------------------------ */

/* utime + stime of /proc/<pid>[/task/<tid>]/stat, in ns; 0 when it is gone.
 * comm (which may hold spaces) goes into comm when asked for. */
static uint64_t s_stat_cpu_ns(const char *stat_path, char *comm, size_t comm_size)
{
    char buf[1024];
    FILE *f = fopen(stat_path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close)
        return 0;
    if (comm)
        snprintf(comm, comm_size, "%.*s", (int)(close - open - 1), open + 1);
    /* After ") ": state is field 3, utime field 14 and stime field 15. */
    unsigned long long utime = 0, stime = 0;
    if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return 0;
    return (utime + stime) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

static uint64_t s_process_cpu_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return s_stat_cpu_ns(path, NULL, 0);
}

/* This process's CPU, split by RocksDB's thread names: its pools name their
 * threads rocksdb:low (compaction), rocksdb:high (flush), rocksdb:bottom. */
typedef struct {
    uint64_t compaction_ns, flush_ns, other_ns;
} s_thread_cpu_t;

static void s_thread_cpu(s_thread_cpu_t *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        uint64_t ns = s_stat_cpu_ns(path, comm, sizeof comm);
        if (strncmp(comm, "rocksdb:low", 11) == 0 || strncmp(comm, "rocksdb:bot", 11) == 0)
            out->compaction_ns += ns;
        else if (strncmp(comm, "rocksdb:high", 12) == 0)
            out->flush_ns += ns;
        else
            out->other_ns += ns;
    }
    if (d)
        closedir(d);
}

static uint64_t s_self_cpu_ns(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (uint64_t)usage.ru_utime.tv_sec * 1000000000u +
           (uint64_t)usage.ru_utime.tv_usec * 1000u +
           (uint64_t)usage.ru_stime.tv_sec * 1000000000u + (uint64_t)usage.ru_stime.tv_usec * 1000u;
}

/* ---- what a phase measured ----------------------------------------------- */

typedef struct {
    const char *name;   /* "compaction", "no_compaction" */
    bool compaction;    /* compaction runs during the load */
    const char *system; /* "strata", "rocksdb" */
} s_phase_t;

typedef struct {
    bench_case_t c;
    bool done;
    double compaction_cpu_s; /* the compactor process; rocksdb:low threads */
    double engine_cpu_s;     /* strata-writer; the rest of the rocksdb process */
    double client_cpu_s;     /* strata: this process (the load); rocksdb: in engine_cpu_s */
    double merge_cpu_s;      /* the engine's own count of its compactions' CPU time */
    uint64_t user_bytes;     /* key + value bytes acknowledged */
    uint64_t flush_bytes, compaction_bytes, wal_bytes;
    uint64_t flushes, compactions;
    double stall_ms;
    unsigned l0_files_end;
} s_result_t;

static double s_write_amp(const s_result_t *r)
{
    return r->user_bytes ? (double)(r->flush_bytes + r->compaction_bytes) / (double)r->user_bytes
                         : 0;
}

/* ---- the Strata side ----------------------------------------------------- */

typedef struct {
    pid_t pid; /* 0 when not running */
    const char *name;
    char *log_path;
} s_child_t;

typedef struct {
    s_child_t writer, compactor;
    char *dir;
    char endpoint[256];
} s_node_t;

static int s_child_stop(s_child_t *child)
{
    pid_t pid = child->pid;
    child->pid = 0;
    return bench_stop_child(pid, child->name, STOP_GRACE_S, child->log_path);
}

/* Starts one of the node's services on dir and waits until it is ready;
 * endpoint_key's value (may be NULL) goes into endpoint. */
static int s_child_start(s_child_t *child, const char *bin, const char *dir, const char *service,
                         const char *const env[], const char *endpoint_key, char *endpoint,
                         size_t endpoint_size)
{
    char *const argv[] = {(char *)bin, NULL};
    child->pid = bench_spawn(argv, env, child->log_path);
    if (child->pid < 0) {
        child->pid = 0;
        return -1;
    }
    if (bench_wait_endpoints(child->pid, child->name, dir, service, endpoint_key, endpoint,
                             endpoint_size, START_DEADLINE_S, child->log_path) != 0) {
        s_child_stop(child);
        return -1;
    }
    return 0;
}

static int s_node_start(s_node_t *node, const char *dir, bool compactor)
{
    node->dir = bench_path(dir, "data");
    node->writer = (s_child_t){.name = "strata-writer", .log_path = bench_path(dir, "writer.log")};
    node->compactor =
        (s_child_t){.name = "strata-compactor", .log_path = bench_path(dir, "compactor.log")};
    if (mkdir(node->dir, 0755) != 0) {
        fprintf(stderr, "strata-bench: mkdir %s: %s\n", node->dir, strerror(errno));
        return -1;
    }
    char data_dir_var[4200], memtable_var[64], immutable_var[64];
    snprintf(data_dir_var, sizeof data_dir_var, "STRATA_NODE_DATA_DIR=%s", node->dir);
    snprintf(memtable_var, sizeof memtable_var, "STRATA_WRITER_MEMTABLE_MB=%d", MEMTABLE_MB);
    snprintf(immutable_var, sizeof immutable_var, "STRATA_WRITER_MAX_IMMUTABLE_MEMTABLES=%d",
             MAX_IMMUTABLE);
    /* Ports the OS picks, so a node already running here does not collide. */
    const char *const writer_env[] = {data_dir_var,
                                      memtable_var,
                                      immutable_var,
                                      "STRATA_WRITER_ENDPOINT=tcp://127.0.0.1:*",
                                      "STRATA_WRITER_COMPACTION=compactor",
                                      "STRATA_WRITER_METRICS=127.0.0.1:0",
                                      NULL};
    if (s_child_start(&node->writer, STRATA_WRITER_BIN, node->dir, "writer", writer_env,
                      "writer/endpoint", node->endpoint, sizeof node->endpoint) != 0)
        return -1;
    if (!compactor)
        return 0;
    /* The engine's level shape, said here too so both systems match it. */
    char l0_var[64], level1_var[64], file_var[64];
    snprintf(l0_var, sizeof l0_var, "STRATA_COMPACTOR_L0_TRIGGER=%d", L0_TRIGGER);
    snprintf(level1_var, sizeof level1_var, "STRATA_COMPACTOR_LEVEL1_MB=%d", LEVEL1_MB);
    snprintf(file_var, sizeof file_var, "STRATA_COMPACTOR_TARGET_FILE_MB=%d", TARGET_FILE_MB);
    const char *const compactor_env[] = {
        data_dir_var, l0_var, level1_var, file_var, "STRATA_COMPACTOR_METRICS=127.0.0.1:0", NULL};
    return s_child_start(&node->compactor, STRATA_COMPACTOR_BIN, node->dir, "compactor",
                         compactor_env, NULL, NULL, 0);
}

static int s_node_stop(s_node_t *node)
{
    /* The compactor first: it would only log the writer's absence. */
    int rc = s_child_stop(&node->compactor);
    rc |= s_child_stop(&node->writer);
    free(node->dir);
    free(node->writer.log_path);
    free(node->compactor.log_path);
    return rc;
}

/* The writer's stats pairs this verb reads. */
typedef struct {
    uint64_t user_bytes, flush_bytes, compaction_bytes, wal_bytes;
    uint64_t flushes, compactions, stalls, l0_files;
    uint64_t compaction_cpu_ns; /* as the compactor reported each install */
    double stall_ms;
} s_writer_stats_t;

static int s_writer_stats(strata_client_t *client, s_writer_stats_t *out)
{
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"user_bytes", offsetof(s_writer_stats_t, user_bytes)},
        {"flush_written_bytes", offsetof(s_writer_stats_t, flush_bytes)},
        {"compaction_written_bytes", offsetof(s_writer_stats_t, compaction_bytes)},
        {"wal_bytes_total", offsetof(s_writer_stats_t, wal_bytes)},
        {"flushes_total", offsetof(s_writer_stats_t, flushes)},
        {"compactions", offsetof(s_writer_stats_t, compactions)},
        {"stalls_total", offsetof(s_writer_stats_t, stalls)},
        {"l0_files", offsetof(s_writer_stats_t, l0_files)},
        {"compaction_cpu_ns", offsetof(s_writer_stats_t, compaction_cpu_ns)},
    };
    memset(out, 0, sizeof *out);
    strata_reply_t reply = {0};
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_stats(client, &reply, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: writer stats: %s (%s)\n", strata_strerror(rc), err.msg);
        return -1;
    }
    size_t found = 0;
    for (size_t i = 0; i < reply.n_pairs; i++) {
        if (strcmp(reply.pairs[i].name, "stall_ms_total") == 0)
            out->stall_ms = strtod(reply.pairs[i].value, NULL);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            if (strcmp(reply.pairs[i].name, fields[f].name) == 0) {
                *(uint64_t *)((char *)out + fields[f].offset) =
                    strtoull(reply.pairs[i].value, NULL, 10);
                found++;
            }
    }
    strata_reply_clear(&reply);
    if (found == sizeof fields / sizeof fields[0])
        return 0;
    fprintf(stderr, "strata-bench: the writer's stats lack flush_written_bytes, user_bytes or "
                    "compaction_cpu_ns (an older strata-writer?)\n");
    return -1;
}

/* The load's own DEALER on libzmq rather than strata/client.h: it waits
 * for a reply or the next due write, whichever comes first, to the
 * microsecond (ppoll on ZMQ_FD), where the client's waits are whole
 * milliseconds; spinning instead would take a core from the writer. The
 * frames are the client's: one encoded request out, the reply in the last
 * frame back. */
typedef struct {
    void *ctx, *sock;
    int fd;
} s_conn_t;

static int s_conn_open(s_conn_t *conn, const char *endpoint)
{
    int zero = 0;
    size_t fd_size = sizeof conn->fd;
    conn->ctx = zmq_ctx_new();
    conn->sock = conn->ctx ? zmq_socket(conn->ctx, ZMQ_DEALER) : NULL;
    /* No high-water marks: a write due is sent, never held back here. */
    if (conn->sock && zmq_setsockopt(conn->sock, ZMQ_LINGER, &zero, sizeof zero) == 0 &&
        zmq_setsockopt(conn->sock, ZMQ_SNDHWM, &zero, sizeof zero) == 0 &&
        zmq_setsockopt(conn->sock, ZMQ_RCVHWM, &zero, sizeof zero) == 0 &&
        zmq_getsockopt(conn->sock, ZMQ_FD, &conn->fd, &fd_size) == 0 &&
        zmq_connect(conn->sock, endpoint) == 0)
        return 0;
    fprintf(stderr, "strata-bench: zmq connect %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
    return -1;
}

static void s_conn_close(s_conn_t *conn)
{
    if (conn->sock)
        zmq_close(conn->sock);
    if (conn->ctx)
        zmq_ctx_term(conn->ctx);
    memset(conn, 0, sizeof *conn);
}

static int s_conn_send(s_conn_t *conn, const strata_request_t *req)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    strata_error_clear(&err);
    if (strata_request_encode(req, &buf, &len, &err) != 0) {
        fprintf(stderr, "strata-bench: encode: %s\n", err.msg);
        return -1;
    }
    int sent = zmq_send(conn->sock, buf, len, 0);
    free(buf);
    if (sent == (int)len)
        return 0;
    fprintf(stderr, "strata-bench: zmq send: %s\n", zmq_strerror(zmq_errno()));
    return -1;
}

/* 1 with the next reply in *reply (clear it after), 0 when none is queued,
 * -1 on an error (said). */
static int s_conn_recv(s_conn_t *conn, strata_reply_t *reply)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, conn->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
            return 0;
        fprintf(stderr, "strata-bench: zmq recv: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* The rest of a multipart message is already here. */
    while (zmq_msg_more(&frame)) {
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        zmq_msg_recv(&frame, conn->sock, 0);
    }
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_reply_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), reply, &err);
    zmq_msg_close(&frame);
    if (rc == 0)
        return 1;
    fprintf(stderr, "strata-bench: a reply that does not decode: %s\n", err.msg);
    return -1;
}

/* Until a reply may be queued or until_ns. ZMQ_FD only signals that the
 * socket's state changed; ZMQ_EVENTS says whether a reply is queued now. */
static void s_conn_wait(s_conn_t *conn, uint64_t until_ns)
{
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(conn->sock, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN))
        return;
    uint64_t now = bench_now_ns();
    if (until_ns <= now)
        return;
    uint64_t wait_ns = until_ns - now;
    struct timespec timeout = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
    struct pollfd item = {.fd = conn->fd, .events = POLLIN};
    ppoll(&item, 1, &timeout, NULL);
}

/* One status round trip before the clock starts, so the connection's
 * set-up is not charged to the first writes. */
static int s_conn_warm_up(s_conn_t *conn)
{
    enum { WARM_UP_ID = 1u << 30 }; /* above any write's id */
    strata_request_t req = {.request_id = WARM_UP_ID, .op = STRATA_OP_STATUS};
    if (s_conn_send(conn, &req) != 0)
        return -1;
    uint64_t deadline = bench_now_ns() + (uint64_t)(START_DEADLINE_S * 1e9);
    while (bench_now_ns() < deadline) {
        strata_reply_t reply = {0};
        int got = s_conn_recv(conn, &reply);
        bool ours = got == 1 && reply.request_id == WARM_UP_ID && reply.status == 0;
        strata_reply_clear(&reply);
        if (got < 0 || ours)
            return ours ? 0 : -1;
        s_conn_wait(conn, deadline);
    }
    fprintf(stderr, "strata-bench: no status reply from the writer in %.0f s\n", START_DEADLINE_S);
    return -1;
}

/* The paced load over one pipelined connection: every write due goes out
 * at once, replies are read as they come, and the loop waits only when
 * there is nothing to send or read. Request ids are write indexes + 1. */
static int s_strata_load(s_conn_t *conn, s_load_t *load)
{
    uint64_t in_flight = 0, drain_deadline = UINT64_MAX;
    uint8_t key[BENCH_KEY_BYTES];
    int rc = 0;
    while (rc == 0) {
        bool progressed = false;
        uint64_t now = bench_now_ns();
        while (rc == 0 && s_load_sending(load) && s_due_ns(load, load->next) <= now &&
               in_flight < MAX_IN_FLIGHT) {
            bench_random_key(&load->rng, key);
            strata_request_t req = {.request_id = load->next + 1,
                                    .op = STRATA_OP_PUT,
                                    .durability = STRATA_DURABILITY_ASYNC,
                                    .key = {key, BENCH_KEY_BYTES},
                                    .value = {bench_value(), BENCH_VALUE_BYTES}};
            rc = s_conn_send(conn, &req);
            load->next++;
            in_flight++;
            progressed = true;
        }
        for (int got = 1; rc == 0 && in_flight > 0 && got == 1;) {
            strata_reply_t reply = {0};
            got = s_conn_recv(conn, &reply);
            uint64_t acked_ns = bench_now_ns();
            if (got == 1 &&
                (reply.status != 0 || reply.request_id == 0 || reply.request_id > load->next)) {
                fprintf(stderr, "strata-bench: strata put %llu: %s: %s\n",
                        (unsigned long long)reply.request_id, strata_strerror(reply.status),
                        reply.message ? reply.message : "not a request in flight");
                got = -1;
            }
            if (got == 1) {
                strata_histogram_record(load->latency,
                                        acked_ns - s_due_ns(load, reply.request_id - 1));
                load->acked++;
                load->last_ack_ns = acked_ns;
                in_flight--;
                progressed = true;
            }
            rc = got < 0 ? -1 : 0;
            strata_reply_clear(&reply);
        }
        if (rc != 0 || (!s_load_sending(load) && in_flight == 0))
            break;
        if (!s_load_sending(load) && drain_deadline == UINT64_MAX)
            drain_deadline = now + (uint64_t)(DRAIN_S * 1e9);
        if (now > drain_deadline) {
            fprintf(stderr, "strata-bench: %llu writes unanswered %.0f s after the load\n",
                    (unsigned long long)in_flight, DRAIN_S);
            rc = -1;
        } else if (!progressed) {
            s_conn_wait(conn, s_load_sending(load) ? s_due_ns(load, load->next) : drain_deadline);
        }
    }
    return rc;
}

static int s_strata_phase(bench_t *b, const s_phase_t *phase, double seconds, uint64_t seed,
                          s_result_t *r)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", phase->system, phase->name);
    char *dir = bench_case_dir(b, name);
    s_node_t node = {0};
    s_conn_t conn = {0};
    strata_client_t *stats_client = NULL;
    int rc = s_node_start(&node, dir, phase->compaction);
    strata_client_options_t options = {.endpoint = node.endpoint, .timeout_ms = REPLY_TIMEOUT_MS};
    strata_error_t err;
    if (rc == 0 && strata_client_connect(&options, &stats_client, &err) != 0) {
        fprintf(stderr, "strata-bench: connect %s: %s\n", node.endpoint, err.msg);
        rc = -1;
    }
    if (rc == 0)
        rc = s_conn_open(&conn, node.endpoint) != 0 || s_conn_warm_up(&conn) != 0 ? -1 : 0;
    s_writer_stats_t before, after;
    if (rc == 0)
        rc = s_writer_stats(stats_client, &before);
    if (rc == 0) {
        pid_t compactor = node.compactor.pid;
        uint64_t compactor0 = compactor ? s_process_cpu_ns(compactor) : 0;
        uint64_t writer0 = s_process_cpu_ns(node.writer.pid), self0 = s_self_cpu_ns();
        s_load_t load;
        s_load_init(&load, seed, seconds, r->c.latency);
        rc = s_strata_load(&conn, &load);
        double wall_s = s_load_seconds(&load);
        r->compaction_cpu_s =
            compactor ? (double)(s_process_cpu_ns(compactor) - compactor0) / 1e9 / wall_s : 0;
        r->engine_cpu_s = (double)(s_process_cpu_ns(node.writer.pid) - writer0) / 1e9 / wall_s;
        r->client_cpu_s = (double)(s_self_cpu_ns() - self0) / 1e9 / wall_s;
        r->c.ops = load.acked;
        r->c.seconds = wall_s;
        if (rc == 0)
            rc = s_writer_stats(stats_client, &after);
    }
    if (rc == 0) {
        r->user_bytes = r->c.ops * (BENCH_KEY_BYTES + BENCH_VALUE_BYTES);
        if (after.user_bytes - before.user_bytes != r->user_bytes)
            printf("anomaly: strata-writer counted %llu user bytes, the bench had %llu acked\n",
                   (unsigned long long)(after.user_bytes - before.user_bytes),
                   (unsigned long long)r->user_bytes);
        r->flush_bytes = after.flush_bytes - before.flush_bytes;
        r->compaction_bytes = after.compaction_bytes - before.compaction_bytes;
        r->wal_bytes = after.wal_bytes - before.wal_bytes;
        r->flushes = after.flushes - before.flushes;
        r->compactions = after.compactions - before.compactions;
        r->stall_ms = after.stall_ms - before.stall_ms;
        r->merge_cpu_s = (double)(after.compaction_cpu_ns - before.compaction_cpu_ns) / 1e9;
        r->l0_files_end = (unsigned)after.l0_files;
        r->done = true;
    }
    s_conn_close(&conn);
    strata_client_destroy(&stats_client);
    if (s_node_stop(&node) != 0)
        rc = -1;
    bench_rmtree(dir);
    free(dir);
    return rc;
}

/* ---- the RocksDB side ---------------------------------------------------- */

/* COUNT (or SUM) of one ticker or histogram in rocksdb's statistics text,
 * whose lines read "rocksdb.flush.write.bytes COUNT : 123". */
static uint64_t s_rocksdb_stat(const char *text, const char *name, const char *field)
{
    size_t name_len = strlen(name);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, name, name_len) != 0 || line[name_len] != ' ')
            continue;
        const char *end = strchr(line, '\n');
        const char *at = strstr(line, field);
        if (!at || (end && at > end))
            return 0;
        return strtoull(at + strlen(field), NULL, 10);
    }
    return 0;
}

/* Strata's shape: the same memtable and immutable memtables, L0 trigger,
 * L1 size, 10x per level, table size and no compression; two background
 * jobs (one flush, one compaction). Without compaction, L0 never slows or
 * stops writes, as Strata's does not. */
static rocksdb_options_t *s_rocksdb_options(bool compaction)
{
    rocksdb_options_t *options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(options, 1);
    rocksdb_options_set_write_buffer_size(options, (size_t)MEMTABLE_MB << 20);
    rocksdb_options_set_max_write_buffer_number(options, 1 + MAX_IMMUTABLE);
    rocksdb_options_set_num_levels(options, 7);
    rocksdb_options_set_level0_file_num_compaction_trigger(options, L0_TRIGGER);
    rocksdb_options_set_max_bytes_for_level_base(options, (uint64_t)LEVEL1_MB << 20);
    rocksdb_options_set_max_bytes_for_level_multiplier(options, 10);
    rocksdb_options_set_target_file_size_base(options, (uint64_t)TARGET_FILE_MB << 20);
    rocksdb_options_set_compression(options, rocksdb_no_compression);
    rocksdb_options_set_max_background_jobs(options, 2);
    rocksdb_options_enable_statistics(options);
    if (!compaction) {
        rocksdb_options_set_disable_auto_compactions(options, 1);
        rocksdb_options_set_level0_slowdown_writes_trigger(options, NO_L0_LIMIT);
        rocksdb_options_set_level0_stop_writes_trigger(options, NO_L0_LIMIT);
    }
    return options;
}

/* The same paced load, each write a rocksdb_put on this thread: a write
 * that blocks delays the ones due after it, and their latency shows it. */
static int s_rocksdb_load(rocksdb_t *db, s_load_t *load)
{
    rocksdb_writeoptions_t *write_options = rocksdb_writeoptions_create();
    uint8_t key[BENCH_KEY_BYTES];
    char *error = NULL;
    while (s_load_sending(load)) {
        uint64_t due = s_due_ns(load, load->next);
        if (bench_now_ns() < due)
            s_sleep_until(due);
        bench_random_key(&load->rng, key);
        rocksdb_put(db, write_options, (const char *)key, sizeof key, (const char *)bench_value(),
                    BENCH_VALUE_BYTES, &error);
        if (bench_rocksdb_failed("rocksdb_put", &error))
            break;
        load->last_ack_ns = bench_now_ns();
        strata_histogram_record(load->latency, load->last_ack_ns - due);
        load->acked++;
        load->next++;
    }
    rocksdb_writeoptions_destroy(write_options);
    return s_load_sending(load) ? -1 : 0;
}

static int s_rocksdb_phase(bench_t *b, const s_phase_t *phase, double seconds, uint64_t seed,
                           s_result_t *r)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", phase->system, phase->name);
    char *dir = bench_case_dir(b, name);
    rocksdb_options_t *options = s_rocksdb_options(phase->compaction);
    char *error = NULL;
    rocksdb_t *db = rocksdb_open(options, dir, &error);
    int rc = bench_rocksdb_failed("rocksdb_open", &error) ? -1 : 0;
    if (rc == 0) {
        s_thread_cpu_t cpu0, cpu1;
        s_thread_cpu(&cpu0);
        s_load_t load;
        s_load_init(&load, seed, seconds, r->c.latency);
        rc = s_rocksdb_load(db, &load);
        s_thread_cpu(&cpu1);
        double wall_s = s_load_seconds(&load);
        r->compaction_cpu_s = (double)(cpu1.compaction_ns - cpu0.compaction_ns) / 1e9 / wall_s;
        r->engine_cpu_s =
            (double)(cpu1.flush_ns + cpu1.other_ns - cpu0.flush_ns - cpu0.other_ns) / 1e9 / wall_s;
        r->c.ops = load.acked;
        r->c.seconds = wall_s;
        char *stats = rocksdb_options_statistics_get_string(options);
        if (stats) {
            r->flush_bytes = s_rocksdb_stat(stats, "rocksdb.flush.write.bytes", "COUNT : ");
            r->compaction_bytes = s_rocksdb_stat(stats, "rocksdb.compact.write.bytes", "COUNT : ");
            r->wal_bytes = s_rocksdb_stat(stats, "rocksdb.wal.bytes", "COUNT : ");
            r->stall_ms = (double)s_rocksdb_stat(stats, "rocksdb.stall.micros", "COUNT : ") / 1e3;
            r->compactions = s_rocksdb_stat(stats, "rocksdb.compaction.times.micros", "COUNT : ");
            r->merge_cpu_s =
                (double)s_rocksdb_stat(stats, "rocksdb.compaction.times.cpu_micros", "SUM : ") /
                1e6;
            /* Flushes are no ticker: each adds a sample of flush time. */
            r->flushes = s_rocksdb_stat(stats, "rocksdb.db.flush.micros", "COUNT : ");
            rocksdb_free(stats);
        }
        char *l0 = rocksdb_property_value(db, "rocksdb.num-files-at-level0");
        r->l0_files_end = l0 ? (unsigned)atoi(l0) : 0;
        rocksdb_free(l0);
        r->user_bytes = r->c.ops * (BENCH_KEY_BYTES + BENCH_VALUE_BYTES);
        r->done = rc == 0;
    }
    if (db)
        rocksdb_close(db);
    rocksdb_options_destroy(options);
    bench_rmtree(dir);
    free(dir);
    return rc;
}

/* ---- the verb ------------------------------------------------------------ */

static const s_phase_t s_phases[] = {
    {"compaction", true, "strata"},
    {"compaction", true, "rocksdb"},
    {"no_compaction", false, "strata"},
    {"no_compaction", false, "rocksdb"},
};
#define PHASE_COUNT (sizeof s_phases / sizeof s_phases[0])

static void s_report_costs(bench_t *b, const s_phase_t *phase, const s_result_t *r)
{
    char bench[64];
    snprintf(bench, sizeof bench, "compaction.%s", phase->name);
    char client[16] = "-";
    if (strcmp(phase->system, "strata") == 0)
        snprintf(client, sizeof client, "%.1f", 100 * r->client_cpu_s);
    printf("%-26s %-15s %9.1f %9.1f %8s %9.1f %9.1f %9.1f %7.2f %6llu %6llu %8.0f %4u\n", bench,
           phase->system, 100 * r->compaction_cpu_s, 100 * r->engine_cpu_s, client,
           (double)r->user_bytes / 1e6, (double)r->flush_bytes / 1e6,
           (double)r->compaction_bytes / 1e6, s_write_amp(r), (unsigned long long)r->flushes,
           (unsigned long long)r->compactions, r->stall_ms, r->l0_files_end);
    bench_emit(b, bench, phase->system, "compaction_cpu_share", r->compaction_cpu_s,
               "fraction of one core");
    bench_emit(b, bench, phase->system, "engine_cpu_share", r->engine_cpu_s,
               "fraction of one core");
    if (strcmp(phase->system, "strata") == 0)
        bench_emit(b, bench, phase->system, "client_cpu_share", r->client_cpu_s,
                   "fraction of one core");
    bench_emit(b, bench, phase->system, "user_bytes", (double)r->user_bytes, "bytes");
    bench_emit(b, bench, phase->system, "flush_bytes", (double)r->flush_bytes, "bytes");
    bench_emit(b, bench, phase->system, "compaction_bytes", (double)r->compaction_bytes, "bytes");
    bench_emit(b, bench, phase->system, "wal_bytes", (double)r->wal_bytes, "bytes");
    bench_emit(b, bench, phase->system, "write_amp", s_write_amp(r), "x");
    bench_emit(b, bench, phase->system, "stall_ms", r->stall_ms, "ms");
    bench_emit(b, bench, phase->system, "l0_files_end", r->l0_files_end, "files");
}

int bench_compaction(bench_t *b)
{
    zsys_handler_set(NULL);
    uint64_t verb_start_ns = bench_now_ns();
    double seconds = b->quick ? QUICK_PHASE_S : FULL_PHASE_S;
    for (size_t i = 0; i < 2; i++) {
        const char *bin = i == 0 ? STRATA_WRITER_BIN : STRATA_COMPACTOR_BIN;
        if (access(bin, X_OK) != 0) {
            fprintf(stderr, "strata-bench: compaction: no %s (%s); build it first\n", bin,
                    strerror(errno));
            return 1;
        }
    }
    /* The load sleeps between ticks 100 us apart: the default 50 us of
     * timer slack would add up to half a tick to every write. */
    int old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0);
    printf("\ncompaction: %d writes/s (%d-byte random keys, %d-byte values), open loop, for "
           "%.0f s per phase;\nstrata: async puts pipelined over one tcp loopback connection to "
           "strata-writer, with\nstrata-compactor or without; rocksdb: embedded, rocksdb_put on "
           "one thread, WAL on, no sync,\nwith automatic compaction or without. %d MiB memtable, "
           "L0 trigger %d, L1 %d MiB, 10x, %d MiB tables.\n",
           TARGET_WRITES_PER_S, BENCH_KEY_BYTES, BENCH_VALUE_BYTES, seconds, MEMTABLE_MB,
           L0_TRIGGER, LEVEL1_MB, TARGET_FILE_MB);
    fflush(stdout);
    s_result_t results[PHASE_COUNT];
    int failed = 0;
    for (size_t i = 0; i < PHASE_COUNT; i++) {
        const s_phase_t *phase = &s_phases[i];
        s_result_t *r = &results[i];
        memset(r, 0, sizeof *r);
        char bench[48];
        snprintf(bench, sizeof bench, "compaction.%s", phase->name);
        bench_case_init(&r->c, bench, phase->system);
        /* A phase leaves gigabytes dirty in the page cache (a full run):
         * their writeback would block the next phase's WAL writes. */
        sync();
        /* Both systems get the same keys in a phase of the same kind. */
        uint64_t seed = b->seed;
        for (const char *p = phase->name; *p; p++)
            seed = seed * 31 + (uint8_t)*p;
        int rc = strcmp(phase->system, "strata") == 0 ? s_strata_phase(b, phase, seconds, seed, r)
                                                      : s_rocksdb_phase(b, phase, seconds, seed, r);
        if (rc != 0) {
            fprintf(stderr, "strata-bench: compaction: %s %s failed\n", phase->system, phase->name);
            failed = 1;
        }
    }
    prctl(PR_SET_TIMERSLACK, old_slack > 0 ? old_slack : 50000, 0, 0, 0);

    bench_table_header("compaction: write latency from each write's due time to its ack");
    for (size_t i = 0; i < PHASE_COUNT; i += 2) {
        bench_case_report(b, &results[i].c);
        bench_case_report(b, &results[i + 1].c);
        if (results[i].done && results[i + 1].done)
            bench_ratio_report(b, &results[i].c, &results[i + 1].c);
    }

    printf("\n%-26s %-15s %9s %9s %8s %9s %9s %9s %7s %6s %6s %8s %4s\n", "costs", "system",
           "compact%", "engine%", "client%", "user MB", "flush MB", "compct MB", "w-amp", "flush",
           "compct", "stall ms", "L0");
    for (size_t i = 0; i < PHASE_COUNT; i++)
        if (results[i].done)
            s_report_costs(b, &s_phases[i], &results[i]);
    const s_result_t *strata = &results[0], *rocksdb = &results[1];
    if (strata->done && rocksdb->done && s_write_amp(rocksdb) > 0) {
        double amp_ratio = s_write_amp(strata) / s_write_amp(rocksdb);
        printf("%-26s %-15s %9s %9s %8s %9s %9s %9s %6.2fx\n", "compaction.compaction",
               "strata/rocksdb", "", "", "", "", "", "", amp_ratio);
        bench_emit(b, "compaction.compaction", "strata/rocksdb", "write_amp_ratio", amp_ratio,
                   "x, lower is better");
    }
    if (strata->done && rocksdb->done) {
        printf("compaction CPU as the engines count it, a check on compact%%: strata %.2f s (the "
               "compactor's merge\nthreads, reported with each install), rocksdb %.2f s "
               "(statistics compaction.times.cpu_micros)\n",
               strata->merge_cpu_s, rocksdb->merge_cpu_s);
        bench_emit(b, "compaction.compaction", "strata", "merge_cpu_s", strata->merge_cpu_s, "s");
        bench_emit(b, "compaction.compaction", "rocksdb", "merge_cpu_s", rocksdb->merge_cpu_s, "s");
    }
    /* p99 with compaction over p99 without: what compaction adds, per system. */
    for (size_t s = 0; s < 2; s++) {
        const s_result_t *with = &results[s], *without = &results[2 + s];
        if (!with->done || !without->done)
            continue;
        uint64_t p99_with = strata_histogram_percentile(with->c.latency, 99.0);
        uint64_t p99_without = strata_histogram_percentile(without->c.latency, 99.0);
        if (p99_without == 0)
            continue;
        double interference = (double)p99_with / (double)p99_without;
        printf("%s p99 with compaction / without: %.1f us / %.1f us = %.2fx\n", s_phases[s].system,
               (double)p99_with / 1e3, (double)p99_without / 1e3, interference);
        bench_emit(b, "compaction.interference", s_phases[s].system, "p99_with_over_without",
                   interference, "x, lower is better");
    }
    if (strata->done) {
        double rate = (double)strata->c.ops / strata->c.seconds;
        bool held = rate >= HELD_FRACTION * TARGET_WRITES_PER_S;
        bool met = strata->compaction_cpu_s < GOAL_CPU_SHARE;
        printf("goal: strata-compactor under %.0f%% of one core at %d writes/s: %.1f%% at %.0f "
               "writes/s, %s%s\n",
               100 * GOAL_CPU_SHARE, TARGET_WRITES_PER_S, 100 * strata->compaction_cpu_s, rate,
               met ? "met" : "NOT met",
               held ? "" : " (the load fell short of the target rate on this machine)");
        bench_emit(b, "compaction.compaction", "strata", "achieved_writes_per_s", rate, "writes/s");
    }
    printf(
        "Each phase starts on an empty database. Latency: from a write's due time (%d due at "
        "once every\n%.0f us) to its ack, so a client held up by a slow system counts the wait. "
        "compact%%: "
        "CPU of\nstrata-compactor's process or of rocksdb's rocksdb:low threads over the load, "
        "as %% of one\ncore (/proc utime+stime); engine%%: strata-writer's process (its flushes "
        "included), or the\nrest of the rocksdb process (its flush threads and the load's "
        "thread); client%%: this\nprocess driving strata. w-amp: (table bytes flushed + table "
        "bytes compactions wrote)\n/ key+value bytes acked during the load, WAL excluded "
        "(strata: the writer's stats\nflush_written_bytes and compaction_written_bytes; rocksdb: "
        "statistics rocksdb.flush.write.bytes\nand rocksdb.compact.write.bytes). Compaction "
        "left due at the end is not counted, for either.\nCaveat: strata is a service reached "
        "over tcp loopback by this process and rocksdb is\nembedded in it; both share this "
        "machine's cores with the load. strata async also fdatasyncs\nits WAL every 10 ms; "
        "rocksdb never syncs.\n",
        WRITES_PER_TICK, WRITES_PER_TICK * 1e9 / TARGET_WRITES_PER_S / 1e3);
    for (size_t i = 0; i < PHASE_COUNT; i++)
        bench_case_release(&results[i].c);
    printf("compaction: %.0f s\n", (double)(bench_now_ns() - verb_start_ns) / 1e9);
    return failed;
}
