/* strata-writer's server: owns the engine and serves it over ZeroMQ.
 *
 * One czmq event loop (zloop) handles both endpoints: a ROUTER for clients
 * and an ipc ROUTER for the node's other processes. Writes go into the WAL
 * and memtable at once without syncing; a sync reply waits in a FIFO until
 * the sync thread's next fdatasync covers its seq. That thread syncs
 * whatever has been written by the time it starts, so every request that
 * arrives during a sync rides the next one (group commit across clients),
 * and the loop itself never blocks on the disk: reads are answered while a
 * sync is in flight. Flush and compact run on job threads for the same
 * reason.
 *
 * The server is an object (writer_new/run/destroy) that main.c wraps and a
 * test can run in its own process. Its concerns live in one file each:
 * requests.c (handlers and staging), commit.c (the sync thread, pending
 * replies, jobs), control.c (control verbs), metrics.c (stats and
 * /metrics), open.c (the engine and the ring), server.c (sockets, loop,
 * drain). Private to services/writer. */
#ifndef STRATA_WRITER_H
#define STRATA_WRITER_H

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
#include "conncap.h"
#include "outq.h"
#include "router.h"
#include "curve.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "strata/codec.h"
#include "strata/db.h"
#include "strata/histogram.h"
#include "strata/io.h"
#include "strata/raft.h"
#include "strata/raft_msg.h"
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
/* Several requests in one message (PROTOCOL.md, "Several requests in one
 * message"): at most this many request frames, and the replies to such a
 * connection go back at most this many, or this many bytes, per message. */
#define REQUEST_FRAMES_MAX 1024
#define REPLY_FRAMES_MAX   64
#define REPLY_BATCH_BYTES  (256u << 10)
/* Connections that have sent several requests in one message, by routing id:
 * a direct-mapped table, so a collision forgets one (its replies go one per
 * message again, which is always allowed) and memory stays fixed. */
#define MULTI_IDS    4096
#define MULTI_ID_MAX 16
/* Connections with replies gathered at once; one more flushes them all. */
#define REPLY_BATCHES 64
/* A connection is only closed as the one not reading when at least this
 * much waits in its kernel send queue. A stalled peer's fills to its send
 * buffer, which a slow start may leave near the kernel's 16 KiB default;
 * a reading peer's is near empty, and the largest is taken anyway. */
#define SHED_MIN_BYTES (4u << 10)

/* A write's reply waiting for its seq to become durable or committed. */
typedef struct {
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    strata_op_t op;
    uint64_t seq;       /* what must be durable or committed */
    uint64_t reply_seq; /* the reply's seq, when not seq (a session's record follows) */
    uint64_t start_ns;
} pending_t;

typedef struct {
    pending_t *items;
    size_t head, len, cap;
} pending_ring_t;

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

/* Replies gathered for one connection, sent as one message by
 * replies_flush: the first reply's envelope, then a frame per reply. */
typedef struct {
    zsock_t *sock;
    zmsg_t *envelope;
    uint8_t id[MULTI_ID_MAX];
    size_t id_len;
    struct {
        void *buf;
        size_t len;
    } frames[REPLY_FRAMES_MAX];
    size_t n, bytes;
} reply_batch_t;

/* The cluster section of the config (consensus.c); id 0: a single node. */
typedef struct {
    uint32_t id;
    uint32_t voters[STRATA_RAFT_MAX_NODES], n_voters;
    uint32_t learners[STRATA_RAFT_MAX_NODES], n_learners;
    char client[256][256];     /* each node's client endpoint, by id */
    char replicator[256][256]; /* each node's replicator peer endpoint, by id */
    uint64_t heartbeat_ms, election_min_ms, election_max_ms, lease_ms;
    bool bootstrap;
    strata_replication_t replication; /* the node's default: quorum or async */
    uint64_t max_lag_ms; /* async writes are refused while the nearest follower lags this long */
    uint64_t follower_retain_mb; /* WAL kept for a lagging follower, at most */
} cluster_options_t;

typedef struct consensus consensus_t;

typedef struct {
    uint32_t id; /* 0: a single node, the rest is empty */
    const char *role;
    uint64_t term, commit_seq;
    uint32_t leader;
    uint64_t received, sent, dropped, refused;
} consensus_stats_t;

/* A write request applied to the staging batch, not yet to the engine. */
typedef struct {
    zsock_t *sock;
    zmsg_t *envelope;
    uint64_t request_id;
    strata_op_t op;
    strata_durability_t durability;
    bool at_commit;  /* a cluster node's quorum write: replied at its commit */
    bool session_op; /* its last op records its session (sessions.c) */
    size_t n_ops;
    uint64_t start_ns;
} staged_t;

/* Slow control verbs (flush, compact, checkpoint, truncate_wal,
 * install_compaction) run one thread each, at most MAX_JOBS at once and at
 * most MAX_CLIENT_JOBS of them asked for on the client endpoint, so clients
 * can never take the room the node's own compactor and snapshotter need.
 * Past either cap a request is refused with STRATA_EBUSY. */
#define MAX_JOBS        16
#define MAX_CLIENT_JOBS 8

typedef struct job {
    writer_t *w;
    pthread_t thread; /* joined when it reports back, so none outlives the server */
    zsock_t *sock;
    zmsg_t *envelope;
    bool from_client; /* counts against MAX_CLIENT_JOBS */
    uint64_t request_id;
    char verb[32];
    char arg[PATH_MAX]; /* checkpoint: the destination */
    uint64_t arg_seq;   /* truncate_wal: below this seq */
    int rc;
    strata_error_t err;
    uint64_t seq;     /* checkpoint: the seq it is consistent at */
    uint64_t term;    /* checkpoint: the term of the entry at seq (0: none known) */
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
    svc_curve_t *curve;     /* NULL: CURVE off */
    svc_conncap_t *conncap; /* the client endpoint's connection cap */
    /* Reply bytes ZeroMQ still holds, all clients together; over the cap
     * requests get EBUSY and the client not reading is closed. */
    svc_outq_t *outq;
    _Atomic uint64_t replies_refused;
    uint32_t scan_limit;
    uint64_t max_clients, reply_mb; /* from the config, read by open_db */
    bool ready, terminating;
    /* The loop ended to start again in place (a snapshot to install). */
    bool restart;
    struct bootstrap *boot; /* bootstrap.c; NULL until a copy is asked for */

    /* Pending sync replies, a ring in seq order. */
    /* Replies waiting, each ring in seq order: for their fdatasync, and
     * on a cluster node for their commit. */
    pending_ring_t pending, committing;

    /* The sync thread and what it is asked to cover. */
    pthread_t sync_thread;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t sync_want, sync_done;
    /* Bumped when a follower cuts its log: a sync that started before the
     * cut may report a durable seq the log no longer reaches. */
    uint64_t sync_epoch;
    bool sync_stop, sync_failed;
    char sync_failure[512];

    int jobs_running;        /* job threads started and not yet reported back */
    int client_jobs_running; /* of them, asked for on the client endpoint */
    uint64_t recovery_ns;    /* the open that replayed the WAL, at start */
    state_waiter_t *state_waiters;
    bool external_compaction;
    unsigned ticks;
    uint64_t l0_warned; /* L0 file count last warned about; 0: not backlogged */

    staged_t *staged;
    size_t n_staged, cap_staged, staged_bytes, staged_ops;

    /* The consensus host; NULL on a single node. */
    consensus_t *cx;

    /* Client sessions: the last write of each (sessions.c). */
    zhashx_t *sessions;
    uint64_t stage_base; /* the seq the staged batch's first op gets */

    /* Replies to connections in multi_ids are gathered while batching is
     * set (a loop callback that answers many requests) and sent per
     * connection when it ends. */
    uint8_t (*multi_ids)[MULTI_ID_MAX + 1]; /* [0]: the id's length, 0 for none */
    bool batching;
    reply_batch_t *batches; /* REPLY_BATCHES of them */
    size_t n_batches;

    pthread_mutex_t stats_mu; /* the loop writes, the HTTP thread reads */
    stats_t stats;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* name=value pairs of a stats reply, with room for their values. */
typedef struct {
    strata_pair_t *pairs;
    char (*values)[64];
    size_t n, cap;
} pairs_t;

/* One request being handled. */
typedef struct {
    writer_t *w;
    zsock_t *sock;
    zmsg_t *envelope;
    /* The envelope is the message's, which carries several requests: a
     * handler that keeps it takes a copy (ctx_envelope), and a reply sent
     * at once borrows it. */
    bool envelope_shared;
    const strata_request_t *req;
    bool from_control;
    const char *role; /* the CURVE key's role on the client endpoint; NULL: CURVE off */
    uint64_t start_ns;
} ctx_t;

/* server.c */
int writer_new(svc_config_t *cfg, writer_t **writer_p, strata_error_t *err); /* takes cfg */
int writer_run(writer_t *w); /* until interrupted or told to terminate */
void writer_destroy(writer_t **writer_p);
/* The run ended to start again in place (main.c runs a new writer). */
bool writer_restarting(const writer_t *w);
const char *writer_endpoint(const writer_t *w);
const char *writer_control_endpoint(const writer_t *w);
int on_tick(zloop_t *loop, int timer_id, void *arg);

/* commit.c */
void send_reply(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, const strata_reply_t *rep);
void send_error(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, uint64_t request_id, int code,
                const char *msg);
void send_write_reply(writer_t *w, pending_t *p);
/* As send_reply and send_error, with the envelope borrowed: it stays the
 * caller's. */
void send_reply_borrowed(writer_t *w, zsock_t *sock, zmsg_t *envelope, const strata_reply_t *rep);
void send_error_borrowed(writer_t *w, zsock_t *sock, zmsg_t *envelope, uint64_t request_id,
                         int code, const char *message);
/* Replies gathered since batching began go out, one message per connection,
 * and batching ends. */
void replies_flush(writer_t *w);
/* A connection that sent several requests in one message may get several
 * replies in one from now on. */
void multi_id_add(writer_t *w, zframe_t *routing_id);
void *sync_main(void *arg);
void want_sync(writer_t *w, uint64_t seq);
int pending_push(pending_ring_t *r, const pending_t *p);
/* The oldest reply waiting; NULL when none does. */
pending_t *pending_front(pending_ring_t *r);
void pending_pop(pending_ring_t *r);
int on_sync(zloop_t *loop, zsock_t *pipe, void *arg);
void job_free(job_t *job);
void *job_main(void *arg);
int on_job_done(zloop_t *loop, zsock_t *pull, void *arg);

/* metrics.c */
void pair_add(pairs_t *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void stats_pairs(writer_t *w, pairs_t *p);
void write_metrics(void *arg, FILE *out);
bool is_ready(void *arg);

/* requests.c */
void reply_error(ctx_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void reply(ctx_t *c, const strata_reply_t *rep);
/* The request's envelope, the caller's to keep (NULL: out of memory). */
zmsg_t *ctx_envelope(ctx_t *c);
void reply_pairs(ctx_t *c, strata_op_t op, pairs_t *p);
void flush_staged(writer_t *w);
int on_request(zloop_t *loop, zsock_t *sock, void *arg);

/* control.c */
void handle_control(ctx_t *c);
void release_state_waiters(writer_t *w, bool everything);
void watch_l0(writer_t *w);

/* bootstrap.c: copying the master's snapshot and installing it. */
/* Starts a copy of node leader's newest snapshot from its replicator at
 * endpoint, unless one runs or has finished (or failed under a second
 * ago); min_seq: the copy must reach at least this seq. */
void bootstrap_start(writer_t *w, uint32_t leader, const char *endpoint, uint64_t min_seq);
bool bootstrap_running(writer_t *w);
/* The copy is whole and named in bootstrap/INSTALL: restart to install. */
bool bootstrap_copied(writer_t *w);
void bootstrap_destroy(writer_t *w); /* stops and joins a running copy */
/* idle, copying, copied or failed, and the bytes the current or last copy
 * fetched. */
const char *bootstrap_progress(writer_t *w, uint64_t *bytes);
/* Before the engine opens: installs the copy bootstrap/INSTALL names, if
 * any, as the data dir's database (finishing one a crash interrupted). */
int bootstrap_install(const char *data_dir, strata_error_t *err);
/* The (seq, term) the newest install left the log starting after; -1 when
 * no install did. */
int bootstrap_mark(const char *data_dir, uint64_t *seq, uint64_t *term);

/* consensus.c */
int cluster_read_options(svc_config_t *cfg, cluster_options_t *o, strata_error_t *err);
/* Before the data dir: sets up the consensus host and binds writer/raft
 * when it is TCP, so a clash fails the start before anything is on disk.
 * No-op for id 0. */
int consensus_listen(writer_t *w, strata_error_t *err);
int consensus_open(writer_t *w, strata_error_t *err); /* after open_db; no-op for id 0 */
void consensus_attach(writer_t *w, zloop_t *loop);
void consensus_close(writer_t *w);
const char *consensus_endpoint(const writer_t *w);
/* What the WAL made durable, for the core. */
void consensus_durable(writer_t *w);
/* The leader wrote client entries up to last_seq. */
void consensus_proposed(writer_t *w, uint64_t last_seq);
/* True, with the client's message, when this node may not take writes. */
bool consensus_refuse_write(writer_t *w, char *msg, size_t cap);
/* Whether this write is replied at its commit (quorum), after its
 * replication mode or the node's default. */
bool consensus_at_commit(writer_t *w, const strata_request_t *req);
/* An async write while the nearest voter is silent or behind by more than
 * max_lag_ms: true, with the client's message. */
bool consensus_lagging(writer_t *w, const strata_request_t *req, char *msg, size_t cap);
/* The same for reads: a new master that has not committed its no-op may
 * not have applied what earlier masters acknowledged (R4). */
bool consensus_refuse_read(writer_t *w, char *msg, size_t cap);
void consensus_stats(const writer_t *w, consensus_stats_t *s);
/* Answers the replies whose writes are committed. */
void consensus_release(writer_t *w);
/* Per-node figures in Prometheus text, for the /metrics thread. */
void consensus_write_metrics(writer_t *w, FILE *out);
/* The highest truncate_wal bound that keeps what followers still need. */
uint64_t consensus_truncate_floor(writer_t *w, uint64_t below_seq);
/* WAL segments were deleted: the core learns where the log starts now. */
void consensus_compacted(writer_t *w);
/* Starts a leadership transfer to *to (0: the voter with the highest
 * match, set in *to). 0, or an error code with why. */
int consensus_transfer(writer_t *w, uint32_t *to, char *why, size_t cap);
/* name=value pairs per other node (match and last contact), for stats. */
void consensus_peer_pairs(writer_t *w, pairs_t *p);

/* sessions.c */
/* A write of a session that was already applied (answered as the original
 * was, or when that commits) or is older than its last: true when handled. */
bool session_duplicate(ctx_t *c);
/* Adds the op that records the request in its session, after its n_ops
 * ops; 0 or an error code. */
int session_record(ctx_t *c, size_t n_ops);
/* Takes back session_record's note when the request was not staged. */
void session_unrecord(ctx_t *c);
/* Forgets what is not in the log for sure (a change of role). */
void sessions_forget(writer_t *w);
void sessions_destroy(writer_t *w);

/* open.c */
int open_db(writer_t *w, strata_error_t *err);
/* The checks writer_new makes of the config's values, without opening
 * anything: what --print-config runs. */
int writer_check_config(svc_config_t *cfg, strata_error_t *err);

#endif
