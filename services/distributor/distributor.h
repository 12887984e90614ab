/* The distributor's object, shared by its three files: pump.c (the thread
 * reading the ring and owning the XPUB sockets), serving.c (the history
 * ROUTER on the main thread) and distributor.c (build, run, destroy). */
#ifndef STRATA_DISTRIBUTOR_H
#define STRATA_DISTRIBUTOR_H

#include <czmq.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "conncap.h"
#include "curve.h"
#include "http.h"
#include "log.h"
#include "outq.h"
#include "strata/client.h"
#include "strata/codec.h"
#include "strata/pubframe.h"
#include "strata/ring.h"
#include "strata/tail.h"
#include "strata/wal.h"

#define DISTRIBUTOR_VERSION   "0.1.0"
#define META_BYTES            STRATA_PUB_META_BYTES
#define KIND_ENTRIES          STRATA_PUB_ENTRIES
#define KIND_HEARTBEAT        STRATA_PUB_HEARTBEAT
#define HB_TOPICS_PER_MESSAGE STRATA_PUB_HB_MAX_TOPICS
#define HB_TOPIC              STRATA_PUB_HB_TOPIC
#define NO_TOPIC              "kv" /* what a write without a topic is published under */
/* A delayed batch is sent early past this, so a message stays well under
 * the subscribers' frame cap. */
#define BATCH_MAX_BYTES (4u << 20)
/* A live message holds the entries of one topic that were already in the
 * ring together, up to this many bytes (a larger entry goes alone): one
 * message, not one per entry, is what a backlog costs to send, and the
 * cap keeps the first entry's wait for the last one short. */
#define LIVE_BATCH_MAX_BYTES (64u << 10)
/* Entries the pump takes in one go before it looks at subscriptions and
 * heartbeats; the live message open at the end of it goes out then. */
#define PUMP_BURST_ENTRIES 256
/* The pump sleeps on the ring's futex at once rather than spin (the ring's
 * default is 50 us): every entry it takes wakes ZeroMQ's I/O thread, and
 * on the same machine the subscribers, which need the core a spinning
 * pump holds. At 20k entries/s, one every 50 us, a 50 us spin kept the
 * pump on a core nearly all the time. */
#define PUMP_SPIN_US  1
#define SUBS_CHECK_NS 1000000ull /* how often the pump reads the XPUBs' subscriptions */
/* A connection is only closed as the one not reading when at least this
 * much waits in its kernel send queue. A stalled peer's fills to its send
 * buffer, which a slow start may leave near the kernel's 16 KiB default;
 * a reading peer's is near empty, and the largest is taken anyway. */
#define SHED_MIN_BYTES     (4u << 10)
#define WAL_MAX_ENTRY      (STRATA_PROTO_MAX_MESSAGE)
#define PAGE_DEFAULT_BYTES (1u << 20)
#define PAGE_MAX_BYTES     (4u << 20)
#define PAGE_MAX_ENTRIES   10000u
/* Entries a replay page examines at most, so a sparse topic cannot hold
 * the loop; the reply's next_seq says where to go on. */
#define PAGE_MAX_EXAMINED   200000u
#define DELIVER_MAX_ENTRIES 256u
/* /metrics shows the lag of at most this many durable subscribers, the
 * ones furthest behind, refreshed this often from the main thread. */
#define LAG_METRICS_MAX        64u
#define LAG_METRICS_REFRESH_NS 1000000000ull
#define CURSOR_CACHE           8
#define SUB_KEY_PREFIX         STRATA_SYS_KEY_PREFIX "sub/"
#define SUB_KEY_PREFIX_LEN     (STRATA_SYS_KEY_PREFIX_LEN + 4)

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

typedef struct dist dist_t;

/* Checks the numeric keys of a loaded config (for --print-config). */
int dist_check_config(svc_config_t *cfg, strata_error_t *err);

/* Builds the distributor from a loaded config (taking ownership of it):
 * binds the three endpoints and the metrics listener, starts the pump
 * thread and writes <data_dir>/distributor.endpoints. */
int dist_new(svc_config_t **cfg_p, dist_t **out, strata_error_t *err);

/* Serves the history endpoint until interrupted, or, with a pipe, until
 * the pipe sends anything (zactor's $TERM); then stores pending acks. */
int dist_run(dist_t *self, zsock_t *pipe);

/* Stops the pump, removes the endpoints file and frees everything. */
void dist_destroy(dist_t **self_p);

/* zactor body for running the server in-process: args is a
 * svc_config_t * (ownership taken); signals the pipe 0 when serving, or
 * the error code when it could not start. */
void dist_actor(zsock_t *pipe, void *args);

/* Where the endpoints were bound (tcp://127.0.0.1:* resolved). */
const char *dist_live_endpoint(const dist_t *self);
const char *dist_delayed_endpoint(const dist_t *self);
const char *dist_history_endpoint(const dist_t *self);

/* ---- internals shared by the three files ---------------------------------- */

typedef struct {
    uint64_t last; /* last seq sent on this topic and tier */
    uint8_t *buf;  /* delayed: entries waiting for the next batch */
    size_t len, cap;
    size_t last_off; /* delayed: where the batch's last entry starts */
    size_t name_len;
    uint32_t count;
    char name[];
} topic_state_t;

/* The live message being built (pump.c): consecutive entries of one topic. */
typedef struct {
    topic_state_t *topic; /* NULL while empty */
    uint8_t *buf;         /* malloc'd: handed to ZeroMQ when sent */
    size_t len, cap;
    uint32_t count;
    uint64_t last_seq, last_term;
} live_batch_t;

typedef struct {
    zsock_t *pub;
    int tier;         /* 0 live, 1 delayed */
    zhashx_t *topics; /* name -> topic_state_t */
    uint64_t last_send_ns;
    bool hb_now; /* a subscription arrived: heartbeat at once */
    uint64_t messages, entries, heartbeats;
    /* The bytes ZeroMQ holds for this tier's subscribers, capped by
     * distributor/pub_queue_mb: past it messages are dropped (subscribers
     * see the gap) and the subscriber not reading is closed. */
    svc_outq_t *outq;
    svc_conncap_t *conncap;
    _Atomic uint64_t dropped;
} tier_t;

typedef struct sub sub_t;

struct dist {
    svc_config_t *cfg;
    char data_dir[PATH_MAX], wal_dir[PATH_MAX + 8], writer_file[PATH_MAX + 32],
        endpoints_file[PATH_MAX + 32];
    char live_ep[256], delayed_ep[256], history_ep[256], metrics_url[128];
    uint64_t delay_ms, heartbeat_ms, sndhwm, window, ack_timeout_ms, ack_flush_ms,
        session_timeout_ms;
    /* What one client can make this process hold: a session's window in
     * entries and its unacked entries in bytes, and how many durable
     * names exist (each is a session object and a stored offset). */
    uint64_t max_window, max_unacked_mb, max_sessions;
    uint64_t session_expire_s;              /* a durable name unused this long goes */
    uint64_t pub_queue_mb, max_subscribers; /* per tier */
    svc_http_t *http;
    svc_curve_t *curve; /* NULL: security/curve off */
    zsock_t *history, *notify, *notify_in;
    bool endpoints_written;

    /* pump thread */
    pthread_t pump;
    bool pump_running;
    atomic_bool stop;
    tier_t live, delayed;
    strata_tail_t *tail; /* the ring, then the WAL where the ring lacks */
    uint64_t instance, start_seq;
    uint64_t next_flush_ns, last_notify_ns, notified, subs_checked_ns;
    _Atomic uint64_t covered; /* every entry <= this has gone out on the live stream */
    uint64_t covered_term;    /* the term of the entry at covered (0: none); heartbeats carry it */
    /* The last entry taken from the tail: covered once the live message
     * holding it has gone out. */
    uint64_t read_seq, read_term;
    live_batch_t live_batch;
    topic_state_t *last_live, *last_delayed; /* the previous entry's topic */
    bool ring_ready_known;                   /* ring_ready has been stored once */
    svc_episode_t tail_failing;              /* a WAL the tail cannot read fails every turn */
    _Atomic uint64_t laps, wal_catchups, ring_reopens;
    _Atomic uint64_t live_entries, delayed_batches, heartbeats;
    atomic_bool ring_ready;

    /* main thread */
    strata_client_t *writer;
    zhashx_t *subs; /* name -> sub_t */
    /* Durable sessions connected (at least; recounted every sessions
     * tick): while 0 the pump does not wake this thread per publish. */
    _Atomic uint32_t sessions_connected;
    struct {
        strata_wal_cursor_t *cursor;
        uint64_t next_seq, used_ns;
    } cursors[CURSOR_CACHE];
    pthread_mutex_t stats_mu; /* main writes, the HTTP thread reads */
    uint64_t replay_requests, replay_entries, acks, offset_writes, offset_write_failures,
        deliveries;
    struct {
        char name[STRATA_PROTO_MAX_NAME + 1];
        uint64_t records, ms;
    } lag[LAG_METRICS_MAX]; /* furthest behind first */
    size_t n_lag, lag_omitted;
    uint64_t lag_refreshed_ns; /* main thread only */
    uint64_t flush_retry_ns;   /* after a failed store, wait before asking the writer again */
    /* A writer down fails every retry of these alike. */
    svc_episode_t store_failing, expiry_failing;
};

/* pump.c */
int pump_tail_open(dist_t *d, strata_error_t *err);
void *pump_main(void *arg);
void topic_state_free(void **item);

/* serving.c */
bool topic_matches(const uint8_t *topic, size_t len, char *const *prefixes, size_t n);
void sub_destroy(void **item);
void offsets_flush(dist_t *d);
int on_history(zloop_t *loop, zsock_t *sock, void *arg);
int on_notify(zloop_t *loop, zsock_t *sock, void *arg);
int on_sessions_timer(zloop_t *loop, int timer_id, void *arg);
int on_flush_timer(zloop_t *loop, int timer_id, void *arg);
void write_metrics(void *arg, FILE *out);
bool is_ready(void *arg);

#endif
