/* strata-writer: owns the engine and serves it over ZeroMQ.
 *
 * One czmq event loop (zloop) handles both endpoints: a ROUTER for clients
 * and an ipc ROUTER for the node's other processes. Writes go into the WAL
 * and memtable at once without syncing; a sync reply waits in a FIFO until
 * the sync thread's next fdatasync covers its seq. That thread syncs
 * whatever has been written by the time it starts, so every request that
 * arrives during a sync rides the next one (group commit across clients),
 * and the loop itself never blocks on the disk: reads are answered while a
 * sync is in flight. Flush and compact run on job threads for the same
 * reason. */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "strata/codec.h"
#include "strata/db.h"
#include "strata/histogram.h"
#include "strata/io.h"
#include "strata/record.h"
#include "strata/ring.h"

#define WRITER_VERSION "0.1.0"
/* Messages handled per wakeup before yielding to the other sockets. */
#define DRAIN_MAX 1024
/* Scan pages stop at this many key+value bytes so a reply fits a frame. */
#define SCAN_PAGE_BYTES (STRATA_PROTO_MAX_MESSAGE / 2)
/* A staged group of writes goes to the engine at this size at the latest. */
#define STAGE_MAX_REQUESTS 1024
#define STAGE_MAX_BYTES    (4u << 20)

static const char default_config[] = "node\n"
                                     "    name = node1\n"
                                     "    data_dir = ./strata-data\n"
                                     "writer\n"
                                     "    endpoint = tcp://127.0.0.1:7400\n"
                                     "    control = \"\"\n" /* empty: ipc://<data_dir>/writer.ctl */
                                     "    memtable_mb = 128\n"
                                     "    max_immutable_memtables = 4\n"
                                     "    sync_interval_ms = 10\n"
                                     "    wal_segment_mb = 64\n"
                                     "    lz4 = false\n"
                                     "    scan_limit = 1000\n"
                                     /* empty: /dev/shm/strata-<name>-<hash of data_dir>.ring */
                                     "    ring = \"\"\n"
                                     "    ring_mb = 64\n"
                                     "    wal_retain_mb = 1024\n"
                                     "    wal_retain_hours = 24\n"
                                     /* snapshot: only the snapshotter's truncate_wal deletes
                                        the WAL; flush: each flush does (no snapshotter) */
                                     "    wal_truncation = snapshot\n"
                                     /* compactor: strata-compactor compacts and installs its
                                        results here; internal: a thread of this process */
                                     "    compaction = compactor\n"
                                     "metrics\n"
                                     "    endpoint = 127.0.0.1:7480\n"
                                     "log\n"
                                     "    level = info\n";

/* A sync-durability reply waiting for its seq to become durable. */
typedef struct {
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    strata_op_t op;
    uint64_t seq;
    uint64_t start_ns;
} pending_t;

typedef struct {
    uint64_t requests, writes, write_ops, reads, errors, malformed, syncs, sync_failures;
    size_t pending;                     /* copy of the loop's pending_len for the HTTP thread */
    strata_histogram_t *write_sync_ns;  /* request in to reply out, sync durability */
    strata_histogram_t *write_async_ns; /* the same, async */
    strata_histogram_t *read_ns;
    strata_histogram_t *sync_ns;    /* one fdatasync round in the sync thread */
    strata_histogram_t *sync_batch; /* replies one sync released */
} stats_t;

typedef struct writer writer_t;

/* A write request applied to the staging batch, not yet to the engine. */
typedef struct {
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    strata_op_t op;
    strata_durability_t durability;
    size_t n_ops;
    uint64_t start_ns;
} staged_t;

typedef struct job {
    writer_t *w;
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    char verb[32];
    char arg[PATH_MAX]; /* checkpoint: the destination */
    uint64_t arg_seq;   /* truncate_wal: below this seq */
    int rc;
    strata_error_t err;
    uint64_t seq;     /* checkpoint: the seq it is consistent at */
    uint32_t deleted; /* truncate_wal: segments deleted */
    uint64_t start_ns;
    /* install_compaction: the result, and the storage its arrays point at */
    strata_compaction_result_t install;
    uint64_t *numbers;
    char **outputs;
    uint64_t installed;
} job_t;

/* A compaction_state request held until the version changes or its wait
 * ends: how the compactor is told, without polling, that there is news. */
typedef struct state_waiter {
    struct state_waiter *next;
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    uint64_t generation; /* the one the compactor already has */
    uint64_t deadline_ns;
} state_waiter_t;

struct writer {
    svc_config_t *cfg;
    strata_db_t *db;
    strata_batch_t *batch;
    zsock_t *router, *control, *sync_pipe, *jobs;
    char endpoint[256], control_ep[PATH_MAX + 32], data_dir[PATH_MAX],
        endpoints_file[PATH_MAX + 32];
    char metrics_url[128], sync_pipe_ep[128], jobs_ep[128];
    /* The shm ring local subscribers and the distributor read. The WAL's
     * observers feed it from the leader and sync threads, which start before
     * the ring exists (recovery), hence the atomic pointer. */
    strata_ring_t *_Atomic ring;
    char ring_path[PATH_MAX];
    svc_http_t *http;
    uint32_t scan_limit;
    bool ready, terminating;

    /* Pending sync replies, a ring in seq order. */
    pending_t *pending;
    size_t pending_head, pending_len, pending_cap;

    /* The sync thread and what it is asked to cover. */
    pthread_t sync_thread;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t sync_want, sync_done;
    bool sync_stop, sync_failed;
    char sync_failure[512];

    int jobs_running;
    uint64_t recovery_ns; /* the open that replayed the WAL, at start */
    state_waiter_t *state_waiters;
    bool external_compaction;
    unsigned ticks;
    uint64_t l0_warned; /* L0 file count last warned about; 0: not backlogged */

    staged_t *staged;
    size_t n_staged, cap_staged, staged_bytes;

    pthread_mutex_t stats_mu; /* the loop writes, the HTTP thread reads */
    stats_t stats;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- replies ------------------------------------------------------------ */

static void send_reply(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, const strata_reply_t *rep)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    zmsg_t *out = *envelope_p;
    *envelope_p = NULL;
    if (strata_reply_encode(rep, &buf, &len, &err) != 0) {
        /* A reply we built that does not encode (a scan page too big, say)
         * still owes the client an answer. */
        log_error("event=reply_encode_failed op=%s error=\"%s\"", strata_op_name(rep->op), err.msg);
        strata_reply_t fallback = {.request_id = rep->request_id,
                                   .status = err.code ? err.code : STRATA_EINVAL,
                                   .message = err.msg};
        if (strata_reply_encode(&fallback, &buf, &len, NULL) != 0) {
            zmsg_destroy(&out);
            return;
        }
    }
    zmsg_addmem(out, buf, len);
    free(buf);
    if (zmsg_send(&out, sock) != 0)
        zmsg_destroy(&out);
    (void)w;
}

static void send_error(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, uint64_t request_id,
                       int code, const char *message)
{
    strata_reply_t rep = {.request_id = request_id, .status = code, .message = message};
    pthread_mutex_lock(&w->stats_mu);
    w->stats.errors++;
    pthread_mutex_unlock(&w->stats_mu);
    send_reply(w, sock, envelope_p, &rep);
}

static void send_write_reply(writer_t *w, pending_t *p)
{
    strata_reply_t rep = {.request_id = p->request_id, .op = p->op, .seq = p->seq};
    send_reply(w, p->sock, &p->envelope, &rep);
}

/* ---- the sync thread ----------------------------------------------------- */

static void *sync_main(void *arg)
{
    writer_t *w = arg;
    zsock_t *pipe = zsock_new_pair(w->sync_pipe_ep + 0);
    pthread_mutex_lock(&w->sync_mu);
    for (;;) {
        while (!w->sync_stop && w->sync_want <= w->sync_done)
            pthread_cond_wait(&w->sync_cv, &w->sync_mu);
        if (w->sync_want <= w->sync_done)
            break; /* stopping with nothing left to cover */
        pthread_mutex_unlock(&w->sync_mu);
        uint64_t start = now_ns(), durable = 0;
        strata_error_t err;
        strata_error_clear(&err);
        int rc = strata_db_sync_written(w->db, &durable, &err);
        zsock_send(pipe, "i88s", rc, durable, now_ns() - start, err.msg);
        pthread_mutex_lock(&w->sync_mu);
        if (rc) {
            w->sync_failed = true;
            break;
        }
        if (durable > w->sync_done)
            w->sync_done = durable;
    }
    pthread_mutex_unlock(&w->sync_mu);
    zsock_destroy(&pipe);
    return NULL;
}

static void want_sync(writer_t *w, uint64_t seq)
{
    pthread_mutex_lock(&w->sync_mu);
    if (seq > w->sync_want) {
        w->sync_want = seq;
        pthread_cond_signal(&w->sync_cv);
    }
    pthread_mutex_unlock(&w->sync_mu);
}

static int pending_push(writer_t *w, const pending_t *p)
{
    if (w->pending_len == w->pending_cap) {
        size_t cap = w->pending_cap ? w->pending_cap * 2 : 1024;
        pending_t *grown = malloc(cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        for (size_t i = 0; i < w->pending_len; i++)
            grown[i] = w->pending[(w->pending_head + i) % w->pending_cap];
        free(w->pending);
        w->pending = grown;
        w->pending_cap = cap;
        w->pending_head = 0;
    }
    w->pending[(w->pending_head + w->pending_len) % w->pending_cap] = *p;
    w->pending_len++;
    return 0;
}

/* The sync thread reports one round: release every reply it covered, or
 * fail every waiting one (a failed fdatasync is never retried as success). */
static int on_sync(zloop_t *loop, zsock_t *pipe, void *arg)
{
    writer_t *w = arg;
    int rc = 0;
    uint64_t durable = 0, took = 0;
    char *message = NULL;
    if (zsock_recv(pipe, "i88s", &rc, &durable, &took, &message) != 0)
        return 0;
    uint64_t now = now_ns();
    size_t released = 0;
    while (w->pending_len) {
        pending_t *p = &w->pending[w->pending_head];
        if (!rc && p->seq > durable)
            break;
        if (rc) {
            char msg[700];
            snprintf(msg, sizeof msg, "write seq %" PRIu64 " not durable: %s", p->seq, message);
            send_error(w, p->sock, &p->envelope, p->request_id, STRATA_EREADONLY, msg);
        } else {
            send_write_reply(w, p);
            pthread_mutex_lock(&w->stats_mu);
            strata_histogram_record(w->stats.write_sync_ns, now - p->start_ns);
            pthread_mutex_unlock(&w->stats_mu);
        }
        w->pending_head = (w->pending_head + 1) % w->pending_cap;
        w->pending_len--;
        released++;
    }
    pthread_mutex_lock(&w->stats_mu);
    strata_histogram_record(w->stats.sync_ns, took);
    if (rc) {
        w->stats.sync_failures++;
    } else {
        w->stats.syncs++;
        if (released)
            strata_histogram_record(w->stats.sync_batch, released);
    }
    w->stats.pending = w->pending_len;
    pthread_mutex_unlock(&w->stats_mu);
    if (rc) {
        snprintf(w->sync_failure, sizeof w->sync_failure, "%s", message);
        log_error("event=sync_failed durable_seq=%" PRIu64 " failed_replies=%zu error=\"%s\"",
                  durable, released, message);
    }
    zstr_free(&message);
    return 0;
}

/* ---- jobs: slow control verbs off the loop ------------------------------ */

static void job_free(job_t *job)
{
    for (size_t i = 0; job->outputs && i < job->install.n_outputs; i++)
        free(job->outputs[i]);
    free(job->outputs);
    free(job->numbers);
    free(job);
}

static void *job_main(void *arg)
{
    job_t *job = arg;
    strata_error_clear(&job->err);
    if (!strcmp(job->verb, "flush"))
        job->rc = strata_db_flush(job->w->db, &job->err);
    else if (!strcmp(job->verb, "compact"))
        job->rc = strata_db_compact(job->w->db, &job->err);
    else if (!strcmp(job->verb, "checkpoint"))
        job->rc = strata_db_checkpoint(job->w->db, job->arg, &job->seq, &job->err);
    else if (!strcmp(job->verb, "truncate_wal"))
        job->rc = strata_db_truncate_wal(job->w->db, job->arg_seq, &job->deleted, &job->err);
    else if (!strcmp(job->verb, "install_compaction"))
        job->rc =
            strata_db_install_compaction(job->w->db, &job->install, &job->installed, &job->err);
    zsock_t *push = zsock_new_push(job->w->jobs_ep);
    zsock_send(push, "p", job);
    zsock_destroy(&push);
    return NULL;
}

static int on_job_done(zloop_t *loop, zsock_t *pull, void *arg)
{
    writer_t *w = arg;
    job_t *job = NULL;
    if (zsock_recv(pull, "p", &job) != 0 || !job)
        return 0;
    w->jobs_running--;
    if (job->rc) {
        send_error(w, job->sock, &job->envelope, job->request_id, job->rc, job->err.msg);
    } else {
        char ms[32], seq[32], deleted[16], installed[32];
        snprintf(ms, sizeof ms, "%.3f", (double)(now_ns() - job->start_ns) / 1e6);
        snprintf(seq, sizeof seq, "%" PRIu64, job->seq);
        snprintf(deleted, sizeof deleted, "%" PRIu32, job->deleted);
        strata_pair_t pairs[4] = {{"verb", job->verb}, {"ms", ms}};
        size_t n = 2;
        if (!strcmp(job->verb, "checkpoint")) {
            pairs[n++] = (strata_pair_t){"seq", seq};
            pairs[n++] = (strata_pair_t){"path", job->arg};
        } else if (!strcmp(job->verb, "truncate_wal")) {
            pairs[n++] = (strata_pair_t){"deleted", deleted};
        } else if (!strcmp(job->verb, "install_compaction")) {
            snprintf(installed, sizeof installed, "%" PRIu64, job->installed);
            pairs[n++] = (strata_pair_t){"tables", installed};
        }
        strata_reply_t rep = {
            .request_id = job->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = n};
        send_reply(w, job->sock, &job->envelope, &rep);
    }
    if (!strcmp(job->verb, "install_compaction"))
        log_info(
            "event=compaction_installed rc=%d level=%d inputs=%zu+%zu outputs=%zu ms=%.3f%s%s%s",
            job->rc, job->install.level, job->install.n_inputs[0], job->install.n_inputs[1],
            job->install.n_outputs, (double)(now_ns() - job->start_ns) / 1e6,
            job->rc ? " error=\"" : "", job->rc ? job->err.msg : "", job->rc ? "\"" : "");
    else
        log_info("event=%s_done rc=%d ms=%.3f", job->verb, job->rc,
                 (double)(now_ns() - job->start_ns) / 1e6);
    job_free(job);
    return 0;
}

/* ---- stats --------------------------------------------------------------- */

typedef struct {
    strata_pair_t *pairs;
    char (*values)[64];
    size_t n, cap;
} pairs_t;

static void pair_add(pairs_t *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pair_add(pairs_t *p, const char *name, const char *fmt, ...)
{
    if (p->n == p->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->values[p->n], sizeof p->values[p->n], fmt, ap);
    va_end(ap);
    p->pairs[p->n].name = name;
    p->pairs[p->n].value = p->values[p->n];
    p->n++;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void stats_pairs(writer_t *w, pairs_t *p)
{
    strata_db_stats_t db;
    strata_db_stats(w->db, &db);
    pthread_mutex_lock(&w->stats_mu);
    stats_t *s = &w->stats;
    pair_add(p, "requests_total", "%" PRIu64, s->requests);
    pair_add(p, "writes_total", "%" PRIu64, s->writes);
    pair_add(p, "write_ops_total", "%" PRIu64, s->write_ops);
    pair_add(p, "reads_total", "%" PRIu64, s->reads);
    pair_add(p, "errors_total", "%" PRIu64, s->errors);
    pair_add(p, "malformed_total", "%" PRIu64, s->malformed);
    pair_add(p, "syncs_total", "%" PRIu64, s->syncs);
    pair_add(p, "sync_failures_total", "%" PRIu64, s->sync_failures);
    pair_add(p, "sync_batch_mean", "%.2f", strata_histogram_mean(s->sync_batch));
    pair_add(p, "sync_p50_us", "%.1f", us(strata_histogram_percentile(s->sync_ns, 50)));
    pair_add(p, "sync_p99_us", "%.1f", us(strata_histogram_percentile(s->sync_ns, 99)));
    pair_add(p, "write_sync_p50_us", "%.1f", us(strata_histogram_percentile(s->write_sync_ns, 50)));
    pair_add(p, "write_sync_p99_us", "%.1f", us(strata_histogram_percentile(s->write_sync_ns, 99)));
    pair_add(p, "write_async_p99_us", "%.1f",
             us(strata_histogram_percentile(s->write_async_ns, 99)));
    pair_add(p, "read_p50_us", "%.1f", us(strata_histogram_percentile(s->read_ns, 50)));
    pair_add(p, "read_p99_us", "%.1f", us(strata_histogram_percentile(s->read_ns, 99)));
    pair_add(p, "pending_replies", "%zu", s->pending);
    pthread_mutex_unlock(&w->stats_mu);
    pair_add(p, "last_seq", "%" PRIu64, db.last_seq);
    pair_add(p, "durable_seq", "%" PRIu64, db.durable_seq);
    pair_add(p, "flushed_seq", "%" PRIu64, db.flushed_seq);
    pair_add(p, "memtable_bytes", "%zu", db.active_memtable_bytes);
    pair_add(p, "immutable_memtables", "%u", db.immutable_memtables);
    pair_add(p, "flushes_total", "%" PRIu64, db.flushes);
    pair_add(p, "stalls_total", "%" PRIu64, db.stalls);
    pair_add(p, "stall_ms_total", "%.3f", (double)db.stall_ns / 1e6);
    pair_add(p, "recovery_ms", "%.1f", (double)w->recovery_ns / 1e6);
    pair_add(p, "recovery_wal_bytes", "%" PRIu64, db.recovery.bytes_scanned);
    pair_add(p, "recovery_wal_entries", "%" PRIu64, db.recovery.entries_replayed);
    pair_add(p, "compactions", "%" PRIu64, db.compactions);
    pair_add(p, "compaction_read_bytes", "%" PRIu64, db.compaction_bytes_read);
    pair_add(p, "compaction_written_bytes", "%" PRIu64, db.compaction_bytes_written);
    pair_add(p, "compaction_cpu_ns", "%" PRIu64, db.compaction_cpu_ns);
    pair_add(p, "flush_written_bytes", "%" PRIu64, db.flush_bytes);
    pair_add(p, "user_bytes", "%" PRIu64, db.user_bytes);
    pair_add(p, "wal_segments", "%u", db.wal.segments);
    pair_add(p, "wal_bytes_total", "%" PRIu64, db.wal.bytes);
    static const char *const level_names[7] = {"l0_files", "l1_files", "l2_files", "l3_files",
                                               "l4_files", "l5_files", "l6_files"};
    for (int i = 0; i < 7; i++)
        pair_add(p, level_names[i], "%u", db.level_files[i]);
}

static void write_metrics(void *arg, FILE *out)
{
    writer_t *w = arg;
    strata_db_stats_t db;
    strata_db_stats(w->db, &db);
    pthread_mutex_lock(&w->stats_mu);
    stats_t *s = &w->stats;
    prom_counter(out, "writer_requests_total", "Requests received, any op.", s->requests);
    prom_counter(out, "writer_writes_total", "Write requests applied.", s->writes);
    prom_counter(out, "writer_write_ops_total", "Keys written (batch ops count each).",
                 s->write_ops);
    prom_counter(out, "writer_reads_total", "Read requests served.", s->reads);
    prom_counter(out, "writer_errors_total", "Error replies sent.", s->errors);
    prom_counter(out, "writer_malformed_total", "Frames that did not decode.", s->malformed);
    prom_counter(out, "wal_syncs_total", "Group-commit fdatasync rounds.", s->syncs);
    prom_counter(out, "wal_sync_failures_total", "Failed fdatasyncs (writes stop).",
                 s->sync_failures);
    prom_latency(out, "wal_sync_seconds", "One group-commit fdatasync round.", s->sync_ns);
    prom_sizes(out, "wal_sync_batch_replies", "Sync replies released by one fdatasync.",
               s->sync_batch);
    prom_latency(out, "writer_write_seconds", "Sync-durability write, request to reply.",
                 s->write_sync_ns);
    prom_latency(out, "writer_write_async_seconds", "Async-durability write, request to reply.",
                 s->write_async_ns);
    prom_latency(out, "writer_read_seconds", "Read request to reply.", s->read_ns);
    prom_gauge(out, "writer_pending_replies", "Sync replies waiting for their fdatasync.",
               (double)s->pending);
    pthread_mutex_unlock(&w->stats_mu);
    prom_gauge(out, "last_seq", "Last sequence number written.", (double)db.last_seq);
    prom_gauge(out, "durable_seq", "Last sequence number covered by fdatasync.",
               (double)db.durable_seq);
    prom_gauge(out, "flushed_seq", "Every seq at or below this is in SSTables.",
               (double)db.flushed_seq);
    prom_gauge(out, "memtable_bytes", "Bytes in the active memtable.",
               (double)db.active_memtable_bytes);
    prom_gauge(out, "immutable_memtables", "Memtables waiting for flush.",
               (double)db.immutable_memtables);
    prom_counter(out, "write_stalls_total", "Writes that waited for a flush.", db.stalls);
    prom_gauge(out, "write_stall_seconds_total", "Total time writes waited for flushes.",
               (double)db.stall_ns / 1e9);
    prom_gauge(out, "wal_segments", "Live WAL segment files.", (double)db.wal.segments);
    prom_gauge(out, "recovery_seconds", "How long the open at start took, WAL replay included.",
               (double)w->recovery_ns / 1e9);
    prom_gauge(out, "recovery_wal_bytes", "WAL bytes the open at start replayed.",
               (double)db.recovery.bytes_scanned);
    prom_counter(out, "compactions_total", "Compactions installed (by the compactor or in here).",
                 db.compactions);
    prom_counter(out, "compaction_read_bytes_total", "Input table bytes of installed compactions.",
                 db.compaction_bytes_read);
    prom_counter(out, "compaction_written_bytes_total", "Table bytes compactions installed.",
                 db.compaction_bytes_written);
    prom_counter(out, "flush_written_bytes_total", "Table bytes flushes wrote to L0.",
                 db.flush_bytes);
    prom_counter(out, "user_bytes_total", "Key and value bytes written since open.", db.user_bytes);
    fprintf(out,
            "# HELP strata_level_files SSTables per level.\n# TYPE strata_level_files gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_files{level=\"%d\"} %u\n", i, db.level_files[i]);
    fprintf(out, "# HELP strata_level_bytes SSTable bytes per level.\n"
                 "# TYPE strata_level_bytes gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_bytes{level=\"%d\"} %" PRIu64 "\n", i, db.level_bytes[i]);
    fprintf(out, "# HELP strata_role Role of this node (1 for the current one).\n"
                 "# TYPE strata_role gauge\nstrata_role{role=\"standalone\"} 1\n");
}

static bool is_ready(void *arg)
{
    writer_t *w = arg;
    return __atomic_load_n(&w->ready, __ATOMIC_ACQUIRE);
}

/* ---- request handlers ---------------------------------------------------- */

typedef struct {
    writer_t *w;
    zsock_t *sock;
    zmsg_t *envelope;
    const strata_request_t *req;
    bool from_control;
    uint64_t start_ns;
} ctx_t;

static void reply_error(ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(ctx_t *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_error(c->w, c->sock, &c->envelope, c->req->request_id, code, msg);
}

static void reply(ctx_t *c, const strata_reply_t *rep)
{
    send_reply(c->w, c->sock, &c->envelope, rep);
}

/* Writes that arrive together are staged and go to the engine as one WAL
 * append (one pwrite, one memtable pass) when the drain ends or a read
 * needs them: per-request syscalls were the loop's largest cost. Each
 * request keeps its own seqs and its own reply. */
static const strata_write_options_t unsynced = {.durability = STRATA_ASYNC};

static int stage(ctx_t *c, size_t n_ops)
{
    writer_t *w = c->w;
    if (w->n_staged == w->cap_staged) {
        size_t cap = w->cap_staged ? w->cap_staged * 2 : 256;
        staged_t *grown = realloc(w->staged, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        w->staged = grown;
        w->cap_staged = cap;
    }
    w->staged[w->n_staged++] = (staged_t){.sock = c->sock,
                                          .envelope = c->envelope,
                                          .request_id = c->req->request_id,
                                          .op = c->req->op,
                                          .durability = c->req->durability,
                                          .n_ops = n_ops,
                                          .start_ns = c->start_ns};
    c->envelope = NULL;
    return 0;
}

static void flush_staged(writer_t *w)
{
    if (w->n_staged == 0)
        return;
    uint64_t first = 0;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_db_write(w->db, &unsynced, w->batch, &first, &err);
    uint64_t seq = first, now = now_ns(), want = 0;
    size_t ops = 0, async_replies = 0;
    for (size_t i = 0; i < w->n_staged; i++) {
        staged_t *s = &w->staged[i];
        if (rc) {
            send_error(w, s->sock, &s->envelope, s->request_id, rc,
                       err.msg[0] ? err.msg : strata_strerror(rc));
            continue;
        }
        uint64_t last = seq + s->n_ops - 1;
        seq += s->n_ops;
        ops += s->n_ops;
        if (s->durability == STRATA_DURABILITY_ASYNC) {
            strata_reply_t rep = {.request_id = s->request_id, .op = s->op, .seq = last};
            send_reply(w, s->sock, &s->envelope, &rep);
            async_replies++;
            continue;
        }
        pending_t p = {.sock = s->sock,
                       .envelope = s->envelope,
                       .request_id = s->request_id,
                       .op = s->op,
                       .seq = last,
                       .start_ns = s->start_ns};
        if (pending_push(w, &p) != 0) {
            send_error(w, s->sock, &s->envelope, s->request_id, STRATA_ENOMEM,
                       "out of memory queueing the reply");
            continue;
        }
        want = last;
    }
    pthread_mutex_lock(&w->stats_mu);
    if (!rc) {
        w->stats.writes += w->n_staged;
        w->stats.write_ops += ops;
        for (size_t i = 0; i < w->n_staged && async_replies; i++)
            if (w->staged[i].durability == STRATA_DURABILITY_ASYNC)
                strata_histogram_record(w->stats.write_async_ns, now - w->staged[i].start_ns);
    }
    w->stats.pending = w->pending_len;
    pthread_mutex_unlock(&w->stats_mu);
    w->n_staged = 0;
    w->staged_bytes = 0;
    strata_batch_clear(w->batch);
    if (want)
        want_sync(w, want);
}

/* Adds ops for one request; on failure the batch is cut back to where it
 * was, so other staged requests are untouched. */
static void stage_or_fail(ctx_t *c, size_t ops_before, size_t n_ops, size_t bytes, int rc,
                          const char *what)
{
    writer_t *w = c->w;
    if (!rc)
        rc = stage(c, n_ops);
    if (rc) {
        strata_batch_truncate(w->batch, ops_before);
        return reply_error(c, rc, "%s: %s", what, strata_strerror(rc));
    }
    w->staged_bytes += bytes;
    if (w->n_staged >= STAGE_MAX_REQUESTS || w->staged_bytes >= STAGE_MAX_BYTES)
        flush_staged(w);
}

static bool is_sys_key(strata_bytes_t key)
{
    return key.len >= STRATA_SYS_KEY_PREFIX_LEN &&
           !memcmp(key.data, STRATA_SYS_KEY_PREFIX, STRATA_SYS_KEY_PREFIX_LEN);
}

/* Clients may not write the node's own keys; its processes, on the control
 * endpoint, may, and those writes carry the system topic so subscribers
 * skip them. */
static int put_op(ctx_t *c, strata_bytes_t key, strata_bytes_t value)
{
    if (is_sys_key(key))
        return c->from_control ? strata_batch_put_topic(c->w->batch, STRATA_SYS_TOPIC, key.data,
                                                        key.len, value.data, value.len)
                               : STRATA_EINVAL;
    return strata_batch_put(c->w->batch, key.data, key.len, value.data, value.len);
}

static int delete_op(ctx_t *c, strata_bytes_t key)
{
    if (is_sys_key(key) && !c->from_control)
        return STRATA_EINVAL;
    return strata_batch_delete(c->w->batch, key.data, key.len);
}

static void handle_put(ctx_t *c)
{
    const strata_request_t *req = c->req;
    if (req->key.len == 0)
        return reply_error(c, STRATA_EINVAL, "put.key: empty");
    if (is_sys_key(req->key) && !c->from_control)
        return reply_error(c, STRATA_EINVAL, "put.key: the \\0strata/ prefix is reserved");
    size_t before = strata_batch_count(c->w->batch);
    int rc = put_op(c, req->key, req->value);
    stage_or_fail(c, before, 1, req->key.len + req->value.len, rc, "put");
}

static void handle_delete(ctx_t *c)
{
    const strata_request_t *req = c->req;
    if (req->key.len == 0)
        return reply_error(c, STRATA_EINVAL, "delete.key: empty");
    if (is_sys_key(req->key) && !c->from_control)
        return reply_error(c, STRATA_EINVAL, "delete.key: the \\0strata/ prefix is reserved");
    size_t before = strata_batch_count(c->w->batch);
    int rc = delete_op(c, req->key);
    stage_or_fail(c, before, 1, req->key.len, rc, "delete");
}

static void handle_batch(ctx_t *c)
{
    const strata_request_t *req = c->req;
    if (req->n_ops == 0)
        return reply_error(c, STRATA_EINVAL, "batch.ops: empty");
    for (size_t i = 0; i < req->n_ops; i++) {
        if (req->ops[i].key.len == 0)
            return reply_error(c, STRATA_EINVAL, "batch.ops[%zu].key: empty", i);
        if (is_sys_key(req->ops[i].key) && !c->from_control)
            return reply_error(c, STRATA_EINVAL,
                               "batch.ops[%zu].key: the \\0strata/ prefix is reserved", i);
    }
    size_t before = strata_batch_count(c->w->batch), bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < req->n_ops && !rc; i++) {
        const strata_batch_op_t *op = &req->ops[i];
        bytes += op->key.len + op->value.len;
        rc = op->kind == STRATA_BATCH_PUT ? put_op(c, op->key, op->value) : delete_op(c, op->key);
    }
    stage_or_fail(c, before, req->n_ops, bytes, rc, "batch");
}

static void handle_record(ctx_t *c)
{
    const strata_request_t *req = c->req;
    strata_record_t rec;
    memset(&rec, 0, sizeof rec);
    strata_error_t err;
    int rc = strata_record_decode(req->value.data, req->value.len, false, &rec, &err);
    if (rc)
        return reply_error(c, rc, "record: %s", err.msg);
    char key[STRATA_RECORD_KEY_MAX];
    ssize_t key_len = strata_record_key(&rec, key, sizeof key);
    const char *topic = strata_record_topic(&rec);
    if (key_len <= 0 || !topic) {
        strata_record_clear(&rec);
        return reply_error(c, STRATA_EINVAL, "record: no key or topic for this type");
    }
    size_t before = strata_batch_count(c->w->batch);
    rc = strata_batch_put_topic(c->w->batch, topic, key, (size_t)key_len, req->value.data,
                                req->value.len);
    strata_record_clear(&rec);
    stage_or_fail(c, before, 1, (size_t)key_len + req->value.len, rc, "record");
}

static void read_done(ctx_t *c)
{
    pthread_mutex_lock(&c->w->stats_mu);
    c->w->stats.reads++;
    strata_histogram_record(c->w->stats.read_ns, now_ns() - c->start_ns);
    pthread_mutex_unlock(&c->w->stats_mu);
}

static void handle_get(ctx_t *c)
{
    const strata_request_t *req = c->req;
    bool multi = req->op == STRATA_OP_MULTI_GET;
    const strata_bytes_t *keys = multi ? req->keys : &req->key;
    size_t n = multi ? req->n_keys : 1;
    strata_value_t *values = calloc(n ? n : 1, sizeof *values);
    if (!values)
        return reply_error(c, STRATA_ENOMEM, "out of memory for %zu values", n);
    int rc = 0;
    strata_error_t err;
    size_t i = 0;
    uint64_t snapshot = strata_db_last_seq(c->w->db); /* one view for the whole multi-get */
    strata_read_options_t ro = {.snapshot_seq = snapshot};
    for (; i < n; i++) {
        void *value = NULL;
        size_t len = 0;
        rc = strata_db_get(c->w->db, &ro, keys[i].data, keys[i].len, &value, &len, &err);
        if (rc == STRATA_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        values[i] = (strata_value_t){.found = true, .value = {value, len}};
    }
    if (rc) {
        reply_error(c, rc, "%s key %zu: %s", strata_op_name(req->op), i, err.msg);
    } else {
        strata_reply_t rep = {
            .request_id = req->request_id, .op = req->op, .values = values, .n_values = n};
        reply(c, &rep);
        read_done(c);
    }
    for (size_t j = 0; j < n; j++)
        free((void *)values[j].value.data);
    free(values);
}

static int bytes_cmp(strata_bytes_t a, strata_bytes_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.data, b.data, n) : 0;
    return r ? r : (a.len > b.len) - (a.len < b.len);
}

/* A page of [start, end) from the cursor, which is the next key to return. */
static void handle_scan(ctx_t *c)
{
    const strata_request_t *req = c->req;
    uint32_t limit = req->scan_limit ? req->scan_limit : c->w->scan_limit;
    strata_read_options_t ro = {
        .lower_bound = req->scan_start.len ? req->scan_start.data : NULL,
        .lower_len = req->scan_start.len,
        .upper_bound = req->scan_end.len ? req->scan_end.data : NULL,
        .upper_len = req->scan_end.len,
    };
    strata_db_iter_t *it = strata_db_iter_new(c->w->db, &ro);
    if (!it)
        return reply_error(c, STRATA_ENOMEM, "out of memory for a scan iterator");
    strata_bytes_t from =
        bytes_cmp(req->scan_cursor, req->scan_start) > 0 ? req->scan_cursor : req->scan_start;
    if (from.len)
        strata_db_iter_seek(it, from.data, from.len);
    else
        strata_db_iter_seek_first(it);
    strata_kv_t *entries = calloc(limit, sizeof *entries);
    uint8_t *copies = NULL;
    size_t n = 0, bytes = 0;
    int rc = entries ? 0 : STRATA_ENOMEM;
    strata_bytes_t next = {0};
    /* Copies go into one arena so the iterator can move on. */
    size_t arena_cap = 0, arena_len = 0;
    size_t *offs = calloc(limit ? limit : 1, 2 * sizeof *offs);
    if (!offs)
        rc = STRATA_ENOMEM;
    for (; !rc && strata_db_iter_valid(it); strata_db_iter_next(it)) {
        size_t klen, vlen;
        const void *k = strata_db_iter_key(it, &klen);
        const void *v = strata_db_iter_value(it, &vlen);
        if (n == limit || (n > 0 && bytes + klen + vlen > SCAN_PAGE_BYTES)) {
            uint8_t *cur = malloc(klen ? klen : 1);
            if (!cur) {
                rc = STRATA_ENOMEM;
                break;
            }
            memcpy(cur, k, klen);
            next = (strata_bytes_t){cur, klen};
            break;
        }
        if (arena_len + klen + vlen > arena_cap) {
            size_t cap = arena_cap ? arena_cap : 64 * 1024;
            while (cap < arena_len + klen + vlen)
                cap *= 2;
            uint8_t *grown = realloc(copies, cap);
            if (!grown) {
                rc = STRATA_ENOMEM;
                break;
            }
            copies = grown;
            arena_cap = cap;
        }
        memcpy(copies + arena_len, k, klen);
        memcpy(copies + arena_len + klen, v, vlen);
        offs[2 * n] = arena_len;
        offs[2 * n + 1] = klen;
        entries[n].value.len = vlen;
        arena_len += klen + vlen;
        bytes += klen + vlen;
        n++;
    }
    strata_error_t err;
    strata_error_clear(&err);
    if (!rc)
        rc = strata_db_iter_status(it, &err);
    strata_db_iter_destroy(&it);
    if (rc) {
        reply_error(c, rc, "scan: %s", err.msg[0] ? err.msg : strata_strerror(rc));
    } else {
        for (size_t i = 0; i < n; i++) {
            entries[i].key = (strata_bytes_t){copies + offs[2 * i], offs[2 * i + 1]};
            entries[i].value.data = copies + offs[2 * i] + offs[2 * i + 1];
        }
        strata_reply_t rep = {.request_id = req->request_id,
                              .op = STRATA_OP_SCAN,
                              .entries = entries,
                              .n_entries = n,
                              .next_cursor = next};
        reply(c, &rep);
        read_done(c);
    }
    free((void *)next.data);
    free(offs);
    free(copies);
    free(entries);
}

static void handle_status(ctx_t *c)
{
    strata_db_stats_t db;
    strata_db_stats(c->w->db, &db);
    strata_reply_t rep = {.request_id = c->req->request_id,
                          .op = STRATA_OP_STATUS,
                          .role = "standalone",
                          .term = 0,
                          .last_seq = db.last_seq,
                          .durable_seq = db.durable_seq};
    reply(c, &rep);
}

static void reply_pairs(ctx_t *c, strata_op_t op, pairs_t *p)
{
    strata_reply_t rep = {
        .request_id = c->req->request_id, .op = op, .pairs = p->pairs, .n_pairs = p->n};
    reply(c, &rep);
}

static void handle_stats(ctx_t *c)
{
    strata_pair_t pairs[64];
    char values[64][64];
    pairs_t p = {pairs, values, 0, 64};
    stats_pairs(c->w, &p);
    reply_pairs(c, STRATA_OP_STATS, &p);
}

/* ---- control verbs -------------------------------------------------------- */

typedef struct {
    const char *verb;
    size_t min_args, max_args;
    bool control_only; /* only on the node-local ipc endpoint */
    void (*fn)(ctx_t *c);
    const char *summary;
} verb_t;

static void ctl_ping(ctx_t *c)
{
    strata_pair_t pairs[] = {{"pong", "1"}, {"version", WRITER_VERSION}};
    pairs_t p = {pairs, NULL, 2, 2};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
}

/* "12,13,14" or "-" (none) into a malloc'd array. */
static bool parse_numbers(const char *text, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!strcmp(text, "-"))
        return true;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    *out = calloc(cap, sizeof **out);
    if (!*out)
        return false;
    const char *p = text;
    for (;;) {
        char *end = NULL;
        errno = 0;
        uint64_t v = strtoull(p, &end, 10);
        if (errno || end == p || *p == '-' || (*end && *end != ','))
            return false;
        (*out)[(*n)++] = v;
        if (!*end)
            return true;
        p = end + 1;
    }
}

/* install_compaction LEVEL IN0 IN1 CPU_NS OUTPUTS: OUTPUTS names tables in
 * <data_dir>/compaction, the compactor's own directory, by bare name, so
 * that the rename cannot be pointed anywhere else. */
static int parse_install(writer_t *w, job_t *job, const strata_request_t *req, char *why,
                         size_t cap)
{
    char *end = NULL;
    long level = strtol(req->args[0], &end, 10);
    if (end == req->args[0] || *end || level < 0 || level > 5) {
        snprintf(why, cap, "level '%s' is not 0..5", req->args[0]);
        return -1;
    }
    job->install.level = (int)level;
    uint64_t *in[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++)
        if (!parse_numbers(req->args[1 + k], &in[k], &job->install.n_inputs[k])) {
            free(in[0]);
            free(in[1]);
            snprintf(why, cap, "inputs '%s' are not table numbers (N,N,... or -)",
                     req->args[1 + k]);
            return -1;
        }
    /* One allocation holds both lists, for job_free. */
    size_t n0 = job->install.n_inputs[0], n1 = job->install.n_inputs[1];
    job->numbers = calloc(n0 + n1 + 1, sizeof *job->numbers);
    if (job->numbers) {
        if (n0)
            memcpy(job->numbers, in[0], n0 * sizeof *in[0]);
        if (n1)
            memcpy(job->numbers + n0, in[1], n1 * sizeof *in[1]);
    }
    free(in[0]);
    free(in[1]);
    if (!job->numbers) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    job->install.inputs[0] = job->numbers;
    job->install.inputs[1] = job->numbers + n0;
    end = NULL;
    errno = 0;
    job->install.cpu_ns = strtoull(req->args[3], &end, 10);
    if (errno || end == req->args[3] || *end) {
        snprintf(why, cap, "cpu_ns '%s' is not a number", req->args[3]);
        return -1;
    }
    const char *list = req->args[4];
    size_t n = strcmp(list, "-") ? 1 : 0;
    for (const char *p = list; n && *p; p++)
        n += *p == ',';
    job->outputs = calloc(n + 1, sizeof *job->outputs);
    if (!job->outputs) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 64 || memchr(p, '/', len) || len < 5 ||
            memcmp(p + len - 4, ".sst", 4) || p[0] == '.') {
            snprintf(why, cap, "output '%.*s' is not a table name in compaction/", (int)len, p);
            return -1;
        }
        if (asprintf(&job->outputs[i], "%s/compaction/%.*s", w->data_dir, (int)len, p) < 0) {
            job->outputs[i] = NULL;
            snprintf(why, cap, "out of memory");
            return -1;
        }
        job->install.n_outputs = i + 1;
        p += len + 1;
    }
    job->install.outputs = (const char *const *)job->outputs;
    return 0;
}

static void ctl_job(ctx_t *c)
{
    job_t *job = calloc(1, sizeof *job);
    if (!job)
        return reply_error(c, STRATA_ENOMEM, "out of memory");
    job->w = c->w;
    job->sock = c->sock;
    job->envelope = c->envelope;
    job->request_id = c->req->request_id;
    job->start_ns = now_ns();
    snprintf(job->verb, sizeof job->verb, "%s", c->req->verb);
    if (!strcmp(job->verb, "checkpoint")) {
        const char *dest = c->req->args[0];
        /* Hard links need the same file system, and a relative path would
         * depend on the writer's working directory. */
        if (dest[0] != '/' || strlen(dest) >= sizeof job->arg - 8) {
            free(job);
            return reply_error(c, STRATA_EINVAL,
                               "control checkpoint: '%s' is not an absolute path under %zu bytes",
                               dest, sizeof job->arg - 8);
        }
        snprintf(job->arg, sizeof job->arg, "%s", dest);
    } else if (!strcmp(job->verb, "truncate_wal")) {
        char *end = NULL;
        errno = 0;
        job->arg_seq = strtoull(c->req->args[0], &end, 10);
        if (errno || end == c->req->args[0] || *end || c->req->args[0][0] == '-') {
            free(job);
            return reply_error(c, STRATA_EINVAL, "control truncate_wal: '%s' is not a seq",
                               c->req->args[0]);
        }
    } else if (!strcmp(job->verb, "install_compaction")) {
        char why[256];
        if (parse_install(c->w, job, c->req, why, sizeof why) != 0) {
            job_free(job);
            return reply_error(c, STRATA_EINVAL, "control install_compaction: %s", why);
        }
    }
    pthread_t t;
    if (pthread_create(&t, NULL, job_main, job) != 0) {
        job_free(job);
        return reply_error(c, STRATA_ENOMEM, "cannot start a thread for %s", c->req->verb);
    }
    pthread_detach(t);
    c->envelope = NULL;
    c->w->jobs_running++;
    log_info("event=%s_start", job->verb);
}

static void state_reply(writer_t *w, zsock_t *sock, zmsg_t **envelope, uint64_t request_id)
{
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(w->db, &generation, &smallest);
    char gen[32], snap[32];
    snprintf(gen, sizeof gen, "%" PRIu64, generation);
    snprintf(snap, sizeof snap, "%" PRIu64, smallest);
    strata_pair_t pairs[] = {{"generation", gen},
                             {"smallest_snapshot", snap},
                             {"data_dir", w->data_dir},
                             {"compaction", w->external_compaction ? "compactor" : "internal"}};
    strata_reply_t rep = {.request_id = request_id,
                          .op = STRATA_OP_CONTROL,
                          .pairs = pairs,
                          .n_pairs = sizeof pairs / sizeof pairs[0]};
    send_reply(w, sock, envelope, &rep);
}

/* compaction_state [GENERATION WAIT_MS]: with a generation, the reply waits
 * (up to WAIT_MS, at most 10 s) until the version is no longer that one. */
static void ctl_compaction_state(ctx_t *c)
{
    uint64_t have = 0, wait_ms = 0;
    if (c->req->n_args == 2) {
        char *end1 = NULL, *end2 = NULL;
        have = strtoull(c->req->args[0], &end1, 10);
        wait_ms = strtoull(c->req->args[1], &end2, 10);
        if (end1 == c->req->args[0] || *end1 || end2 == c->req->args[1] || *end2)
            return reply_error(c, STRATA_EINVAL,
                               "control compaction_state: GENERATION and WAIT_MS are numbers");
        if (wait_ms > 10000)
            wait_ms = 10000;
    } else if (c->req->n_args != 0) {
        return reply_error(c, STRATA_EINVAL,
                           "control compaction_state: takes no args or GENERATION WAIT_MS");
    }
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(c->w->db, &generation, &smallest);
    state_waiter_t *waiter = wait_ms && generation == have ? calloc(1, sizeof *waiter) : NULL;
    if (!waiter)
        return state_reply(c->w, c->sock, &c->envelope, c->req->request_id);
    waiter->sock = c->sock;
    waiter->envelope = c->envelope;
    c->envelope = NULL;
    waiter->request_id = c->req->request_id;
    waiter->generation = have;
    waiter->deadline_ns = now_ns() + wait_ms * 1000000;
    waiter->next = c->w->state_waiters;
    c->w->state_waiters = waiter;
}

/* Answers the held compaction_state requests whose version moved on or
 * whose wait is over (all of them when everything is). */
static void release_state_waiters(writer_t *w, bool everything)
{
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(w->db, &generation, &smallest);
    uint64_t now = now_ns();
    state_waiter_t **pp = &w->state_waiters;
    while (*pp) {
        state_waiter_t *waiter = *pp;
        if (everything || waiter->generation != generation || now >= waiter->deadline_ns) {
            *pp = waiter->next;
            state_reply(w, waiter->sock, &waiter->envelope, waiter->request_id);
            free(waiter);
        } else {
            pp = &waiter->next;
        }
    }
}

/* With the compaction in another process, a stopped or slow compactor
 * shows as L0 growing: reads get slower, writes go on. Said once when it
 * starts, again each time it doubles, and when it clears. */
static void watch_l0(writer_t *w)
{
    if (!w->external_compaction)
        return;
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    uint64_t l0 = st.level_files[0];
    enum { L0_BACKLOG = 12 }; /* three times the compaction trigger */
    if (l0 >= L0_BACKLOG && (w->l0_warned == 0 || l0 >= 2 * w->l0_warned)) {
        log_warning("event=l0_backlog l0_files=%" PRIu64 " hint=\"is strata-compactor running? "
                    "writes go on, reads slow down\"",
                    l0);
        w->l0_warned = l0;
    } else if (l0 < L0_BACKLOG / 2 && w->l0_warned) {
        log_info("event=l0_backlog_cleared l0_files=%" PRIu64, l0);
        w->l0_warned = 0;
    }
}

static void ctl_config(ctx_t *c)
{
    static const char *const keys[] = {"node/name",
                                       "node/data_dir",
                                       "writer/endpoint",
                                       "writer/control",
                                       "writer/memtable_mb",
                                       "writer/max_immutable_memtables",
                                       "writer/sync_interval_ms",
                                       "writer/wal_segment_mb",
                                       "writer/lz4",
                                       "writer/wal_truncation",
                                       "writer/compaction",
                                       "writer/scan_limit",
                                       "metrics/endpoint",
                                       "log/level"};
    enum { N = sizeof keys / sizeof keys[0] };
    strata_pair_t pairs[N + 3];
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
        pairs[n++] = (strata_pair_t){keys[i], svc_config_get(c->w->cfg, keys[i])};
    pairs[n++] = (strata_pair_t){"effective/endpoint", c->w->endpoint};
    pairs[n++] = (strata_pair_t){"effective/control", c->w->control_ep};
    pairs[n++] = (strata_pair_t){"effective/metrics", c->w->metrics_url};
    pairs_t p = {pairs, NULL, n, n};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
}

static void ctl_terminate(ctx_t *c)
{
    strata_pair_t pairs[] = {{"terminating", "1"}};
    pairs_t p = {pairs, NULL, 1, 1};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
    c->w->terminating = true;
}

static const verb_t verbs[] = {
    {"ping", 0, 0, false, ctl_ping, "liveness and version"},
    {"config", 0, 0, false, ctl_config, "effective configuration"},
    {"flush", 0, 0, false, ctl_job, "write the memtable to L0 and wait"},
    {"compact", 0, 0, false, ctl_job, "compact every level over its limit and wait"},
    {"checkpoint", 1, 1, true, ctl_job,
     "DEST: flush, then write a checkpoint (hard links and a MANIFEST) to DEST"},
    {"truncate_wal", 1, 1, true, ctl_job,
     "SEQ: delete WAL segments wholly below SEQ and the flushed seq, outside retention"},
    {"compaction_state", 0, 2, true, ctl_compaction_state,
     "[GENERATION WAIT_MS]: version generation and oldest snapshot; waits for a change"},
    {"install_compaction", 5, 5, true, ctl_job,
     "LEVEL IN0 IN1 CPU_NS OUTPUTS: install a compactor's result as one version edit"},
    {"terminate", 0, 0, true, ctl_terminate, "graceful shutdown (control endpoint only)"},
};

static void handle_control(ctx_t *c)
{
    const strata_request_t *req = c->req;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const verb_t *v = &verbs[i];
        if (strcmp(v->verb, req->verb))
            continue;
        if (v->control_only && !c->from_control)
            return reply_error(c, STRATA_EINVAL,
                               "control.verb: '%s' is only accepted on the control endpoint",
                               v->verb);
        if (req->n_args < v->min_args || req->n_args > v->max_args)
            return reply_error(c, STRATA_EINVAL, "control %s: takes %zu..%zu args, got %zu",
                               v->verb, v->min_args, v->max_args, req->n_args);
        return v->fn(c);
    }
    char known[256] = "";
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 verbs[i].verb);
    reply_error(c, STRATA_EINVAL, "control.verb: '%s' unknown (%s)", req->verb, known);
}

static void dispatch(ctx_t *c)
{
    strata_op_t op = c->req->op;
    /* Reads and control see every write received before them. */
    if (op != STRATA_OP_PUT && op != STRATA_OP_DELETE && op != STRATA_OP_BATCH &&
        op != STRATA_OP_RECORD)
        flush_staged(c->w);
    switch (op) {
    case STRATA_OP_PUT:
        return handle_put(c);
    case STRATA_OP_DELETE:
        return handle_delete(c);
    case STRATA_OP_BATCH:
        return handle_batch(c);
    case STRATA_OP_RECORD:
        return handle_record(c);
    case STRATA_OP_GET:
    case STRATA_OP_MULTI_GET:
        return handle_get(c);
    case STRATA_OP_SCAN:
        return handle_scan(c);
    case STRATA_OP_STATUS:
        return handle_status(c);
    case STRATA_OP_STATS:
        return handle_stats(c);
    case STRATA_OP_CONTROL:
        return handle_control(c);
    case STRATA_OP_REPLAY:
    case STRATA_OP_SUBSCRIBE:
    case STRATA_OP_ACK:
    case STRATA_OP_SUBSCRIBERS:
    case STRATA_OP_DELIVER:
        return reply_error(c, STRATA_EINVAL, "request: %s is served by strata-distributor",
                           strata_op_name(op));
    case STRATA_OP_NONE:
        break;
    }
    reply_error(c, STRATA_EINVAL, "request: no body");
}

/* One ROUTER message: routing id, an optional empty delimiter, one payload
 * frame. Anything else gets an error reply, never a crash. */
static void handle_message(writer_t *w, zsock_t *sock, zmsg_t *msg)
{
    uint64_t start = now_ns();
    size_t frames = zmsg_size(msg);
    zframe_t *payload = zmsg_last(msg);
    zmsg_remove(msg, payload); /* msg is now the envelope */
    pthread_mutex_lock(&w->stats_mu);
    w->stats.requests++;
    pthread_mutex_unlock(&w->stats_mu);
    bool delimited =
        frames == 3 && zframe_size(zmsg_first(msg)) > 0 && zframe_size(zmsg_next(msg)) == 0;
    if (frames != 2 && !delimited) {
        pthread_mutex_lock(&w->stats_mu);
        w->stats.malformed++;
        pthread_mutex_unlock(&w->stats_mu);
        while (zmsg_size(msg) > 1) {
            zframe_t *extra = zmsg_last(msg);
            zmsg_remove(msg, extra);
            zframe_destroy(&extra);
        }
        char text[128];
        snprintf(text, sizeof text, "request: expected one payload frame, got %zu frames",
                 frames - 1);
        send_error(w, sock, &msg, 0, STRATA_EINVAL, text);
        zframe_destroy(&payload);
        return;
    }
    strata_request_t req;
    strata_error_t err;
    int rc = strata_request_decode(zframe_data(payload), zframe_size(payload), &req, &err);
    if (rc) {
        pthread_mutex_lock(&w->stats_mu);
        w->stats.malformed++;
        pthread_mutex_unlock(&w->stats_mu);
        log_debug("event=bad_request bytes=%zu error=\"%s\"", zframe_size(payload), err.msg);
        send_error(w, sock, &msg, req.request_id, rc, err.msg);
    } else {
        ctx_t c = {.w = w,
                   .sock = sock,
                   .envelope = msg,
                   .req = &req,
                   .from_control = sock == w->control,
                   .start_ns = start};
        dispatch(&c);
        msg = c.envelope; /* NULL when a handler kept or sent it */
    }
    zmsg_destroy(&msg);
    strata_request_clear(&req);
    zframe_destroy(&payload);
}

static int on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    writer_t *w = arg;
    for (int i = 0; i < DRAIN_MAX && !w->terminating; i++) {
        if (i > 0 && !(zsock_events(sock) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            return zsys_interrupted ? -1 : 0;
        if (zmsg_size(msg) < 2) { /* ROUTER always adds the id; be safe */
            zmsg_destroy(&msg);
            continue;
        }
        handle_message(w, sock, msg);
    }
    flush_staged(w);
    return w->terminating ? -1 : 0;
}

/* ---- startup and shutdown -------------------------------------------------- */

static int on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    writer_t *w = arg;
    if (w->state_waiters)
        release_state_waiters(w, false);
    if (++w->ticks % 10 == 0)
        watch_l0(w);
    return zsys_interrupted ? -1 : 0;
}

/* Ring feed: each group's bytes go into the ring once committed, and become
 * visible to readers once fdatasync covers them too (the ring publishes up
 * to the smaller of the two), so a subscriber never sees a record that a
 * power cut or a new master could take back. */
static void ring_on_committed(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                              uint64_t last_seq)
{
    writer_t *w = arg;
    strata_ring_t *ring = atomic_load(&w->ring);
    if (!ring)
        return;
    strata_error_t err;
    if (strata_ring_append(ring, entries, len, &err) != 0)
        log_error("event=ring_append_failed first_seq=%" PRIu64 " last_seq=%" PRIu64
                  " error=\"%s\"",
                  first_seq, last_seq, err.msg);
}

static void ring_on_durable(void *arg, uint64_t seq)
{
    writer_t *w = arg;
    strata_ring_t *ring = atomic_load(&w->ring);
    if (ring)
        strata_ring_publish(ring, seq);
}

static int open_ring(writer_t *w, uint64_t last_seq, strata_error_t *err)
{
    uint64_t ring_mb;
    int rc = svc_config_u64(w->cfg, "writer/ring_mb", &ring_mb, err);
    if (rc)
        return rc;
    const char *path = svc_config_get(w->cfg, "writer/ring");
    if (!strcmp(path, "off"))
        return 0;
    if (ring_mb < 1 || ring_mb > 65536 || (ring_mb & (ring_mb - 1)))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/ring_mb: %" PRIu64 ", needs a power of two in 1..65536",
                                ring_mb);
    if (*path) {
        snprintf(w->ring_path, sizeof w->ring_path, "%s", path);
    } else {
        /* Several nodes may share a host (tests, a laptop): the data dir
         * tells their rings apart. FNV-1a is plenty for that. */
        uint32_t h = 2166136261u;
        for (const char *p = w->data_dir; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(w->ring_path, sizeof w->ring_path, "/dev/shm/strata-%s-%08x.ring",
                 svc_config_get(w->cfg, "node/name"), h);
    }
    strata_ring_options_t ro = {.capacity_bytes = ring_mb << 20, .first_seq = last_seq + 1};
    strata_ring_t *ring = NULL;
    if ((rc = strata_ring_create(w->ring_path, &ro, &ring, err)))
        return rc;
    atomic_store(&w->ring, ring);
    return 0;
}

static int open_db(writer_t *w, strata_error_t *err)
{
    uint64_t memtable_mb, max_imm, interval, segment_mb, scan_limit, retain_mb, retain_hours;
    bool lz4;
    int rc;
    if ((rc = svc_config_u64(w->cfg, "writer/memtable_mb", &memtable_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/max_immutable_memtables", &max_imm, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/sync_interval_ms", &interval, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_segment_mb", &segment_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/scan_limit", &scan_limit, err)) ||
        (rc = svc_config_bool(w->cfg, "writer/lz4", &lz4, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_retain_mb", &retain_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_retain_hours", &retain_hours, err)))
        return rc;
    const char *truncation = svc_config_get(w->cfg, "writer/wal_truncation");
    if (strcmp(truncation, "snapshot") && strcmp(truncation, "flush"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/wal_truncation: '%s', needs snapshot or flush", truncation);
    const char *compaction = svc_config_get(w->cfg, "writer/compaction");
    if (strcmp(compaction, "compactor") && strcmp(compaction, "internal"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/compaction: '%s', needs compactor or internal", compaction);
    if (memtable_mb < 1 || memtable_mb > 16384 || max_imm < 1 || max_imm > 64 || interval < 1 ||
        interval > 60000 || segment_mb < 1 || segment_mb > 4096 || scan_limit < 1 ||
        scan_limit > STRATA_PROTO_MAX_SCAN_LIMIT)
        return strata_error_set(
            err, STRATA_EINVAL,
            "writer config out of range: memtable_mb 1..16384, max_immutable_memtables 1..64, "
            "sync_interval_ms 1..60000, wal_segment_mb 1..4096, scan_limit 1..%u",
            STRATA_PROTO_MAX_SCAN_LIMIT);
    w->scan_limit = (uint32_t)scan_limit;
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = w->data_dir;
    opts.memtable_bytes = (size_t)memtable_mb << 20;
    opts.max_immutable_memtables = (uint32_t)max_imm;
    opts.async_sync_interval_ms = (uint32_t)interval;
    opts.wal_segment_bytes = segment_mb << 20;
    opts.lz4 = lz4;
    opts.on_committed = ring_on_committed;
    opts.wal_on_durable = ring_on_durable;
    opts.wal_observer_arg = w;
    opts.wal_retain_bytes = retain_mb << 20;
    opts.wal_retain_ms = retain_hours * 3600 * 1000;
    opts.manual_wal_truncation = !strcmp(truncation, "snapshot");
    w->external_compaction = !strcmp(compaction, "compactor");
    opts.disable_auto_compaction = w->external_compaction;
    uint64_t start = now_ns();
    rc = strata_db_open(&opts, &w->db, err);
    if (rc)
        return rc;
    w->recovery_ns = now_ns() - start;
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    /* Restart time is what operators wait on: its rate says whether the
     * WAL or the disk is to blame for a slow one. */
    log_info(
        "event=recovered dir=%s last_seq=%" PRIu64 " flushed_seq=%" PRIu64 " wal_entries=%" PRIu64
        " wal_bytes=%" PRIu64 " tail_dropped=%" PRIu64 " ms=%.1f wal_mb_s=%.0f",
        w->data_dir, st.last_seq, st.flushed_seq, st.recovery.entries_replayed,
        st.recovery.bytes_scanned, st.recovery.tail_bytes_dropped, (double)w->recovery_ns / 1e6,
        (double)st.recovery.bytes_scanned / 1e6 / ((double)w->recovery_ns / 1e9));
    if ((rc = open_ring(w, st.last_seq, err)))
        return rc;
    w->batch = strata_batch_new();
    return w->batch ? 0 : strata_error_set(err, STRATA_ENOMEM, "out of memory");
}

static zsock_t *bind_router(const char *endpoint, char *bound, size_t cap, strata_error_t *err)
{
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock) {
        strata_error_set(err, STRATA_ENOMEM, "cannot create a ROUTER socket");
        return NULL;
    }
    zsock_set_maxmsgsize(sock, (int64_t)STRATA_PROTO_MAX_MESSAGE + 64 * 1024);
    zsock_set_sndhwm(sock, 100000);
    zsock_set_rcvhwm(sock, 100000);
    zsock_set_linger(sock, 2000); /* let final replies leave at shutdown */
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        strata_error_set(err, STRATA_EIO, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    char *last = zsock_last_endpoint(sock); /* ours to free */
    snprintf(bound, cap, "%s", last ? last : endpoint);
    zstr_free(&last);
    return sock;
}

static int write_endpoints(writer_t *w, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", w->endpoint},
                             {"control", w->control_ep},
                             {"metrics", w->metrics_url},
                             {"ring", w->ring_path[0] ? w->ring_path : "off"}};
    return svc_write_endpoints(w->endpoints_file, "writer", pairs, 4, err);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: strata-writer [-c FILE] [--print-config] [-h] [--version]\n"
            "  -c, --config FILE  ZPL config (also $STRATA_CONFIG); every key can be\n"
            "                     overridden by STRATA_<SECTION>_<KEY>, e.g.\n"
            "                     STRATA_WRITER_ENDPOINT=tcp://0.0.0.0:7400\n"
            "  --print-config     print the effective config and where each value came from\n"
            "Without a config it serves %s with data under ./strata-data.\n",
            "tcp://127.0.0.1:7400");
}

static void writer_free(writer_t *w)
{
    svc_http_stop(&w->http);
    zsock_destroy(&w->router);
    zsock_destroy(&w->control);
    zsock_destroy(&w->sync_pipe);
    zsock_destroy(&w->jobs);
    strata_batch_destroy(&w->batch);
    if (w->db) {
        strata_error_t err;
        if (strata_db_close(&w->db, &err) != 0)
            log_error("event=close_failed error=\"%s\"", err.msg);
    }
    /* After the engine: its close publishes the last sync. Readers see the
     * closed flag; the file goes so /dev/shm does not collect dead rings. */
    strata_ring_t *ring = atomic_exchange(&w->ring, NULL);
    if (ring)
        strata_ring_close(&ring, true);
    strata_histogram_destroy(&w->stats.write_sync_ns);
    strata_histogram_destroy(&w->stats.write_async_ns);
    strata_histogram_destroy(&w->stats.read_ns);
    strata_histogram_destroy(&w->stats.sync_ns);
    strata_histogram_destroy(&w->stats.sync_batch);
    free(w->pending);
    free(w->staged);
    svc_config_destroy(&w->cfg);
    pthread_mutex_destroy(&w->sync_mu);
    pthread_cond_destroy(&w->sync_cv);
    pthread_mutex_destroy(&w->stats_mu);
}

/* Stop taking requests, let the sync thread cover what is pending, answer
 * it, then wait out running jobs. */
static void drain(writer_t *w)
{
    pthread_mutex_lock(&w->sync_mu);
    w->sync_stop = true;
    pthread_cond_signal(&w->sync_cv);
    pthread_mutex_unlock(&w->sync_mu);
    while (w->pending_len) {
        pthread_mutex_lock(&w->sync_mu);
        bool failed = w->sync_failed;
        pthread_mutex_unlock(&w->sync_mu);
        if (failed && !(zsock_events(w->sync_pipe) & ZMQ_POLLIN))
            break;
        zsock_set_rcvtimeo(w->sync_pipe, 100);
        on_sync(NULL, w->sync_pipe, w);
    }
    pthread_join(w->sync_thread, NULL);
    while (zsock_events(w->sync_pipe) & ZMQ_POLLIN)
        on_sync(NULL, w->sync_pipe, w);
    for (size_t i = 0; i < w->pending_len; i++) {
        pending_t *p = &w->pending[(w->pending_head + i) % w->pending_cap];
        send_error(w, p->sock, &p->envelope, p->request_id, STRATA_EREADONLY,
                   w->sync_failure[0] ? w->sync_failure : "shutting down before the sync");
    }
    w->pending_len = 0;
    while (w->jobs_running > 0)
        on_job_done(NULL, w->jobs, w);
    release_state_waiters(w, true);
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-writer", WRITER_VERSION, usage, &config_file,
                            &print_config);
    if (rc >= 0)
        return rc;

    writer_t w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.sync_mu, NULL);
    pthread_cond_init(&w.sync_cv, NULL);
    pthread_mutex_init(&w.stats_mu, NULL);
    strata_error_t err;
    strata_error_clear(&err);
    rc = svc_config_load(default_config, config_file, &w.cfg, &err);
    if (rc) {
        fprintf(stderr, "strata-writer: %s\n", err.msg);
        writer_free(&w);
        return 2;
    }
    if (print_config) {
        svc_config_print(w.cfg, stdout);
        writer_free(&w);
        return 0;
    }
    zsys_init();
    if ((rc = svc_log_init("strata-writer", svc_config_get(w.cfg, "log/level"), &err)))
        goto fail;

    const char *dir = svc_config_get(w.cfg, "node/data_dir");
    if ((rc = strata_io_mkdirs(strata_io_posix(), dir)) != 0) {
        rc = strata_error_set(&err, STRATA_EIO, "node/data_dir %s: cannot create: %s", dir,
                              strerror(-rc));
        goto fail;
    }
    if (!realpath(dir, w.data_dir)) {
        rc = strata_error_set(&err, STRATA_EIO, "node/data_dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    snprintf(w.endpoints_file, sizeof w.endpoints_file, "%s/writer.endpoints", w.data_dir);
    w.stats.write_sync_ns = strata_histogram_new();
    w.stats.write_async_ns = strata_histogram_new();
    w.stats.read_ns = strata_histogram_new();
    w.stats.sync_ns = strata_histogram_new();
    w.stats.sync_batch = strata_histogram_new();
    if (!w.stats.write_sync_ns || !w.stats.write_async_ns || !w.stats.read_ns || !w.stats.sync_ns ||
        !w.stats.sync_batch) {
        rc = strata_error_set(&err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = open_db(&w, &err)))
        goto fail;

    char control_cfg[PATH_MAX + 32];
    const char *control = svc_config_get(w.cfg, "writer/control");
    if (!*control) {
        snprintf(control_cfg, sizeof control_cfg, "ipc://%s/writer.ctl", w.data_dir);
        control = control_cfg;
    }
    rc = STRATA_EIO;
    if (!(w.router = bind_router(svc_config_get(w.cfg, "writer/endpoint"), w.endpoint,
                                 sizeof w.endpoint, &err)) ||
        !(w.control = bind_router(control, w.control_ep, sizeof w.control_ep, &err)))
        goto fail;
    snprintf(w.sync_pipe_ep, sizeof w.sync_pipe_ep, ">inproc://writer-sync-%p", (void *)&w);
    snprintf(w.jobs_ep, sizeof w.jobs_ep, ">inproc://writer-jobs-%p", (void *)&w);
    char bind_ep[128];
    snprintf(bind_ep, sizeof bind_ep, "@inproc://writer-sync-%p", (void *)&w);
    w.sync_pipe = zsock_new_pair(bind_ep);
    snprintf(bind_ep, sizeof bind_ep, "@inproc://writer-jobs-%p", (void *)&w);
    w.jobs = zsock_new_pull(bind_ep);
    if (!w.sync_pipe || !w.jobs) {
        strata_error_set(&err, STRATA_EIO, "cannot bind the internal inproc sockets");
        goto fail;
    }
    uint16_t http_port = 0;
    const char *metrics = svc_config_get(w.cfg, "metrics/endpoint");
    if ((rc = svc_http_start(metrics, write_metrics, is_ready, &w, &w.http, &http_port, &err)))
        goto fail;
    if (w.http) {
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(metrics, ':') - metrics), metrics);
        snprintf(w.metrics_url, sizeof w.metrics_url, "http://%s:%u/metrics", host, http_port);
    } else {
        snprintf(w.metrics_url, sizeof w.metrics_url, "off");
    }
    if (pthread_create(&w.sync_thread, NULL, sync_main, &w) != 0) {
        rc = strata_error_set(&err, STRATA_ENOMEM, "cannot start the sync thread");
        goto fail;
    }
    if ((rc = write_endpoints(&w, &err))) {
        drain(&w);
        goto fail;
    }

    zloop_t *loop = zloop_new();
    zloop_reader(loop, w.router, on_request, &w);
    zloop_reader(loop, w.control, on_request, &w);
    zloop_reader(loop, w.sync_pipe, on_sync, &w);
    zloop_reader(loop, w.jobs, on_job_done, &w);
    /* SIGTERM may land on any thread (ZMQ's, the sync thread, MHD's); the
     * handler only sets zsys_interrupted, which the loop checks after each
     * poll, so a timer bounds how long a quiet loop takes to notice. */
    zloop_timer(loop, 100, 0, on_tick, &w);
    __atomic_store_n(&w.ready, true, __ATOMIC_RELEASE);
    log_info("event=ready node=%s endpoint=%s control=%s metrics=%s dir=%s pid=%d",
             svc_config_get(w.cfg, "node/name"), w.endpoint, w.control_ep, w.metrics_url,
             w.data_dir, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);

    __atomic_store_n(&w.ready, false, __ATOMIC_RELEASE);
    log_info("event=stopping reason=%s pending=%zu", w.terminating ? "terminate" : "signal",
             w.pending_len);
    drain(&w);
    unlink(w.endpoints_file);
    strata_db_stats_t st;
    strata_db_stats(w.db, &st);
    writer_free(&w);
    log_info("event=stopped last_seq=%" PRIu64 " durable_seq=%" PRIu64, st.last_seq,
             st.durable_seq);
    return 0;

fail:
    log_error("event=start_failed error=\"%s\"", err.msg);
    fprintf(stderr, "strata-writer: %s\n", err.msg);
    writer_free(&w);
    return 1;
}
