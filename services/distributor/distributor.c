/* strata-distributor: fans the node's committed records out to remote
 * subscribers (DISTRIBUTION.md).
 *
 * Two threads. The pump thread reads the writer's shm ring and owns the two
 * XPUB sockets: every record goes out on the live stream as soon as the
 * ring shows it, and into a per-topic batch the delayed stream sends every
 * delay_ms. When the ring laps it or the writer restarts, it reads the gap
 * from the WAL instead, so the streams never skip a seq. The main thread
 * owns the history ROUTER: paged replay from the WAL, durable sessions
 * (delivery with a window, acks stored through the writer, resend on
 * timeout) and the subscriber list. The two share only the covered seq. */
#define _GNU_SOURCE
#include <czmq.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "router.h"
#include "strata/client.h"
#include "strata/codec.h"
#include "strata/ring.h"
#include "strata/wal.h"

#define DISTRIBUTOR_VERSION   "0.1.0"
#define META_BYTES            32
#define META_VERSION          1
#define KIND_ENTRIES          1
#define KIND_HEARTBEAT        2
#define HB_TOPICS_PER_MESSAGE 256
#define HB_TOPIC              "$hb"
#define NO_TOPIC              "kv" /* what a write without a topic is published under */
/* A delayed batch is sent early past this, so a message stays well under
 * the subscribers' frame cap. */
#define BATCH_MAX_BYTES    (4u << 20)
#define WAL_MAX_ENTRY      (STRATA_PROTO_MAX_MESSAGE)
#define PAGE_DEFAULT_BYTES (1u << 20)
#define PAGE_MAX_BYTES     (4u << 20)
#define PAGE_MAX_ENTRIES   10000u
/* Entries a replay page examines at most, so a sparse topic cannot hold
 * the loop; the reply's next_seq says where to go on. */
#define PAGE_MAX_EXAMINED   200000u
#define DELIVER_MAX_ENTRIES 256u
#define CURSOR_CACHE        8
#define SUB_KEY_PREFIX      STRATA_SYS_KEY_PREFIX "sub/"
#define SUB_KEY_PREFIX_LEN  (STRATA_SYS_KEY_PREFIX_LEN + 4)

static const char default_config[] = "node\n"
                                     "    name = node1\n"
                                     "    data_dir = ./strata-data\n"
                                     "distributor\n"
                                     "    live = tcp://127.0.0.1:7410\n"
                                     "    delayed = tcp://127.0.0.1:7411\n"
                                     "    history = tcp://127.0.0.1:7412\n"
                                     "    delay_ms = 100\n"
                                     "    heartbeat_ms = 100\n"
                                     "    sndhwm = 100000\n"
                                     "    window = 1000\n"
                                     "    ack_timeout_ms = 2000\n"
                                     "    ack_flush_ms = 5\n"
                                     "    session_timeout_ms = 10000\n"
                                     "metrics\n"
                                     "    endpoint = 127.0.0.1:7481\n"
                                     "log\n"
                                     "    level = info\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- topic filters ------------------------------------------------------- */

/* DISTRIBUTION.md: prefixes; none means every topic not beginning with '$';
 * a '$' topic only for a prefix that itself starts with '$'. */
static bool topic_matches(const uint8_t *topic, size_t len, char *const *prefixes, size_t n)
{
    bool sys = len > 0 && topic[0] == '$';
    if (n == 0)
        return !sys;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(prefixes[i]);
        if (sys && (pl == 0 || prefixes[i][0] != '$'))
            continue;
        if (pl <= len && !memcmp(topic, prefixes[i], pl))
            return true;
        if (len == 0 && !strcmp(prefixes[i], NO_TOPIC))
            return true;
    }
    return false;
}

static char **strv_dup(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            while (i > 0)
                free(out[--i]);
            free(out);
            return NULL;
        }
    return out;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- shared state ---------------------------------------------------------- */

typedef struct {
    uint64_t last; /* last seq sent on this topic and tier */
    uint8_t *buf;  /* delayed: entries waiting for the next batch */
    size_t len, cap;
    uint32_t count;
    char name[];
} topic_state_t;

typedef struct {
    zsock_t *pub;
    int tier;         /* 0 live, 1 delayed */
    zhashx_t *topics; /* name -> topic_state_t */
    uint64_t last_send_ns;
    bool hb_now; /* a subscription arrived: heartbeat at once */
    uint64_t messages, entries, heartbeats;
} tier_t;

typedef struct sub sub_t;

typedef struct {
    svc_config_t *cfg;
    char data_dir[PATH_MAX], wal_dir[PATH_MAX + 8], writer_file[PATH_MAX + 32],
        endpoints_file[PATH_MAX + 32];
    char live_ep[256], delayed_ep[256], history_ep[256], metrics_url[128];
    uint64_t delay_ms, heartbeat_ms, sndhwm, window, ack_timeout_ms, ack_flush_ms,
        session_timeout_ms;
    svc_http_t *http;
    zsock_t *history, *notify;

    /* pump thread */
    pthread_t pump;
    atomic_bool stop;
    tier_t live, delayed;
    strata_ring_reader_t *ring;
    strata_wal_cursor_t *pump_cursor;
    uint64_t instance, start_seq;
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t next_flush_ns, last_notify_ns, notified;
    _Atomic uint64_t covered; /* every entry <= this has gone out on the live stream */
    _Atomic uint64_t laps, wal_catchups, ring_reopens;
    _Atomic uint64_t live_entries, delayed_batches, heartbeats;
    atomic_bool ring_ready;

    /* main thread */
    strata_client_t *writer;
    zhashx_t *subs; /* name -> sub_t */
    struct {
        strata_wal_cursor_t *cursor;
        uint64_t next_seq, used_ns;
    } cursors[CURSOR_CACHE];
    pthread_mutex_t stats_mu; /* main writes, the HTTP thread reads */
    uint64_t replay_requests, replay_entries, acks, offset_writes, offset_write_failures,
        deliveries;
    uint64_t flush_retry_ns; /* after a failed store, wait before asking the writer again */
} dist_t;

/* ---- the pump: ring to PUB ------------------------------------------------ */

static void meta_encode(uint8_t *m, int kind, int tier, uint32_t count, uint64_t prev,
                        uint64_t instance, uint64_t start_seq)
{
    memset(m, 0, META_BYTES);
    m[0] = META_VERSION;
    m[1] = (uint8_t)kind;
    m[2] = (uint8_t)tier;
    for (int i = 0; i < 4; i++)
        m[4 + i] = (uint8_t)(count >> (8 * i));
    put_le64(m + 8, prev);
    put_le64(m + 16, instance);
    put_le64(m + 24, start_seq);
}

/* One message, three frames. PUB drops what a slow subscriber's queue has no
 * room for; the seqs make that visible to it, so we never block here. */
static void pub_send(tier_t *t, const void *topic, size_t topic_len, const uint8_t *meta,
                     const void *body, size_t body_len)
{
    void *s = zsock_resolve(t->pub);
    zmq_send(s, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, meta, META_BYTES, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, body, body_len, ZMQ_DONTWAIT);
    t->messages++;
}

static topic_state_t *topic_get(dist_t *d, tier_t *t, const uint8_t *topic, size_t len)
{
    char name[STRATA_PROTO_MAX_TOPIC + 1];
    if (len == 0) {
        topic = (const uint8_t *)NO_TOPIC;
        len = strlen(NO_TOPIC);
    }
    if (len > STRATA_PROTO_MAX_TOPIC)
        len = STRATA_PROTO_MAX_TOPIC;
    memcpy(name, topic, len);
    name[len] = '\0';
    topic_state_t *ts = zhashx_lookup(t->topics, name);
    if (ts)
        return ts;
    ts = calloc(1, sizeof *ts + len + 1);
    if (!ts)
        return NULL;
    memcpy(ts->name, name, len + 1);
    ts->last = d->start_seq - 1;
    zhashx_insert(t->topics, ts->name, ts);
    return ts;
}

static void heartbeat(dist_t *d, tier_t *t, uint64_t covered)
{
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_HEARTBEAT, t->tier, 0, 0, d->instance, d->start_seq);
    size_t cap = 12 + HB_TOPICS_PER_MESSAGE * (2 + STRATA_PROTO_MAX_TOPIC + 8);
    uint8_t *body = malloc(cap);
    if (!body)
        return;
    topic_state_t *ts = zhashx_first(t->topics);
    do { /* at least one message, even with no topics */
        size_t off = 12;
        uint32_t n = 0;
        for (; ts && n < HB_TOPICS_PER_MESSAGE; ts = zhashx_next(t->topics), n++) {
            size_t len = strlen(ts->name);
            body[off] = (uint8_t)len;
            body[off + 1] = (uint8_t)(len >> 8);
            memcpy(body + off + 2, ts->name, len);
            put_le64(body + off + 2 + len, ts->last);
            off += 2 + len + 8;
        }
        put_le64(body, covered);
        for (int i = 0; i < 4; i++)
            body[8 + i] = (uint8_t)(n >> (8 * i));
        pub_send(t, HB_TOPIC, strlen(HB_TOPIC), meta, body, off);
    } while (ts);
    free(body);
    t->heartbeats++;
    t->last_send_ns = now_ns();
    t->hb_now = false;
    atomic_fetch_add(&d->heartbeats, 1);
}

static void delayed_flush(dist_t *d, topic_state_t *ts)
{
    if (!ts->count)
        return;
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_ENTRIES, 1, ts->count, ts->last, d->instance, d->start_seq);
    const uint8_t *last_entry = NULL;
    /* The batch's last seq is its last entry's: walk to it. */
    size_t off = 0;
    while (off < ts->len) {
        uint32_t payload = (uint32_t)ts->buf[off + 4] | (uint32_t)ts->buf[off + 5] << 8 |
                           (uint32_t)ts->buf[off + 6] << 16 | (uint32_t)ts->buf[off + 7] << 24;
        last_entry = ts->buf + off;
        off += 40 + payload;
    }
    pub_send(&d->delayed, ts->name, strlen(ts->name), meta, ts->buf, ts->len);
    ts->last = get_le64(last_entry + 16);
    d->delayed.entries += ts->count;
    d->delayed.last_send_ns = now_ns();
    atomic_fetch_add(&d->delayed_batches, 1);
    ts->len = 0;
    ts->count = 0;
}

/* Sends one committed entry (raw is a private copy, already checked). */
static void publish_entry(dist_t *d, const strata_entry_t *e, const uint8_t *raw,
                          size_t raw_len)
{
    if (e->topic_len > 0 && e->topic[0] == '$') /* the node's own: never on PUB */
        goto covered;
    topic_state_t *live = topic_get(d, &d->live, e->topic, e->topic_len);
    topic_state_t *later = topic_get(d, &d->delayed, e->topic, e->topic_len);
    if (!live || !later) {
        log_error("event=out_of_memory seq=%" PRIu64, e->seq);
        goto covered;
    }
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_ENTRIES, 0, 1, live->last, d->instance, d->start_seq);
    pub_send(&d->live, live->name, strlen(live->name), meta, raw, raw_len);
    live->last = e->seq;
    d->live.entries++;
    d->live.last_send_ns = now_ns();
    atomic_fetch_add(&d->live_entries, 1);

    if (later->len + raw_len > BATCH_MAX_BYTES)
        delayed_flush(d, later);
    if (later->len + raw_len > later->cap) {
        size_t cap = later->cap ? later->cap : 4096;
        while (cap < later->len + raw_len)
            cap *= 2;
        uint8_t *grown = realloc(later->buf, cap);
        if (!grown) {
            log_error("event=out_of_memory seq=%" PRIu64, e->seq);
            goto covered;
        }
        later->buf = grown;
        later->cap = cap;
    }
    memcpy(later->buf + later->len, raw, raw_len);
    later->len += raw_len;
    later->count++;
covered:
    atomic_store(&d->covered, e->seq);
}

static int read_writer_file(dist_t *d, const char *key, char *out, size_t cap)
{
    zconfig_t *root = zconfig_load(d->writer_file);
    if (!root)
        return -1;
    const char *v = zconfig_get(root, key, NULL);
    int rc = v && *v ? 0 : -1;
    if (!rc)
        snprintf(out, cap, "%s", v);
    zconfig_destroy(&root);
    return rc;
}

/* Publishes entries covered+1 .. limit from the WAL: how the pump fills a
 * gap the ring no longer holds (lapped, an entry too big for the ring, or
 * what a crashed writer recovered before its new ring began). */
static int catch_up_from_wal(dist_t *d, uint64_t limit)
{
    strata_error_t err;
    uint64_t from = atomic_load(&d->covered) + 1;
    if (from > limit)
        return 0;
    if (!d->pump_cursor &&
        strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &d->pump_cursor, &err) != 0) {
        log_error("event=wal_open_failed error=\"%s\"", err.msg);
        return -1;
    }
    if (strata_wal_cursor_seek(d->pump_cursor, from, &err) != 0) {
        log_error("event=wal_catchup_failed from=%" PRIu64 " error=\"%s\"", from, err.msg);
        strata_wal_cursor_close(&d->pump_cursor);
        return -1;
    }
    atomic_fetch_add(&d->wal_catchups, 1);
    uint64_t n = 0;
    for (;;) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        int rc = strata_wal_cursor_next(d->pump_cursor, limit, &e, &raw, &raw_len, &err);
        if (rc == STRATA_ETIMEDOUT)
            break;
        if (rc) {
            log_error("event=wal_catchup_failed seq=%" PRIu64 " error=\"%s\"",
                      atomic_load(&d->covered) + 1, err.msg);
            strata_wal_cursor_close(&d->pump_cursor);
            return -1;
        }
        publish_entry(d, &e, raw, raw_len);
        n++;
    }
    log_info("event=wal_catchup from=%" PRIu64 " to=%" PRIu64 " entries=%" PRIu64, from,
             atomic_load(&d->covered), n);
    return 0;
}

static void ring_close(dist_t *d)
{
    strata_ring_reader_close(&d->ring);
    atomic_store(&d->ring_ready, false);
}

/* (Re)attaches to the writer's ring, at the seq after what we covered, and
 * fills from the WAL whatever the ring does not hold. */
static int ring_attach(dist_t *d)
{
    char path[PATH_MAX];
    if (read_writer_file(d, "writer/ring", path, sizeof path) != 0 || !strcmp(path, "off"))
        return -1;
    strata_error_t err;
    strata_ring_reader_options_t ro = {.start = STRATA_RING_FROM_NEWEST};
    uint64_t covered = atomic_load(&d->covered);
    if (covered) {
        ro.start = STRATA_RING_FROM_SEQ;
        ro.from_seq = covered + 1;
    }
    /* Everything, '$' topics included: covered must move past them too. */
    static const char *const all[] = {"", "$"};
    ro.topics = all;
    ro.n_topics = 2;
    int rc = strata_ring_reader_open(path, &ro, &d->ring, &err);
    if (rc == STRATA_ELAPPED) {
        strata_ring_info_t info;
        ro.start = STRATA_RING_FROM_OLDEST;
        if ((rc = strata_ring_reader_open(path, &ro, &d->ring, &err)))
            return rc;
        strata_ring_reader_info(d->ring, &info);
        uint64_t oldest = info.oldest_seq ? info.oldest_seq : info.first_seq;
        if (catch_up_from_wal(d, oldest - 1) != 0 || atomic_load(&d->covered) + 1 < oldest) {
            ring_close(d);
            return -1;
        }
        if (strata_ring_reader_seek(d->ring, atomic_load(&d->covered) + 1) != 0) {
            ring_close(d);
            return -1;
        }
    } else if (rc) {
        if (rc != STRATA_EIO)
            log_warning("event=ring_open_failed path=%s error=\"%s\"", path, err.msg);
        return rc;
    }
    if (!d->start_seq) {
        strata_ring_info_t info;
        strata_ring_reader_info(d->ring, &info);
        d->start_seq = strata_ring_reader_next_seq(d->ring);
        if (!d->start_seq)
            d->start_seq = info.published_seq + 1;
        atomic_store(&d->covered, d->start_seq - 1);
    }
    atomic_store(&d->ring_ready, true);
    atomic_fetch_add(&d->ring_reopens, 1);
    log_info("event=ring_attached path=%s next_seq=%" PRIu64, path,
             strata_ring_reader_next_seq(d->ring));
    return 0;
}

static void check_subscriptions(tier_t *t)
{
    void *s = zsock_resolve(t->pub);
    uint8_t buf[STRATA_PROTO_MAX_TOPIC + 2];
    for (;;) {
        int n = zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            break;
        if (n >= 1 && buf[0] == 1)
            t->hb_now = true;
    }
}

static void notify_main(dist_t *d, bool force)
{
    uint64_t covered = atomic_load(&d->covered), now = now_ns();
    if (covered == d->notified || (!force && now - d->last_notify_ns < 1000000))
        return;
    zsock_send(d->notify, "8", covered);
    d->notified = covered;
    d->last_notify_ns = now;
}

static void pump_step_ring(dist_t *d, int timeout_ms)
{
    strata_entry_t e;
    const uint8_t *raw;
    size_t raw_len;
    int rc = strata_ring_reader_next(d->ring, timeout_ms, &e, &raw, &raw_len);
    if (rc == 0) {
        /* Copy out, then check the producer did not overwrite it meanwhile:
         * what we send must be what was committed. */
        if (raw_len > d->scratch_cap) {
            uint8_t *grown = realloc(d->scratch, raw_len);
            if (!grown)
                return;
            d->scratch = grown;
            d->scratch_cap = raw_len;
        }
        memcpy(d->scratch, raw, raw_len);
        if (!strata_ring_reader_intact(d->ring)) {
            rc = STRATA_ELAPPED;
        } else {
            strata_entry_t copy;
            size_t used;
            strata_error_t err;
            if (strata_entry_decode(d->scratch, raw_len, WAL_MAX_ENTRY, &copy, &used, &err)) {
                log_error("event=ring_entry_bad seq=%" PRIu64 " error=\"%s\"", e.seq, err.msg);
                rc = STRATA_ELAPPED; /* take it from the WAL instead */
            } else {
                publish_entry(d, &copy, d->scratch, raw_len);
                return;
            }
        }
    }
    if (rc == STRATA_ETIMEDOUT)
        return;
    if (rc == STRATA_ELAPPED || rc == STRATA_ETOOBIG || rc == STRATA_ECORRUPT) {
        atomic_fetch_add(&d->laps, rc == STRATA_ELAPPED ? 1 : 0);
        strata_ring_info_t info;
        strata_ring_reader_info(d->ring, &info);
        uint64_t upto = info.published_seq;
        if (catch_up_from_wal(d, upto) == 0 &&
            strata_ring_reader_seek(d->ring, atomic_load(&d->covered) + 1) == 0)
            return;
        ring_close(d); /* start over from the file */
        return;
    }
    /* ESTALE: the writer stopped or restarted. */
    log_info("event=ring_stale covered=%" PRIu64, atomic_load(&d->covered));
    ring_close(d);
}

static void *pump_main(void *arg)
{
    dist_t *d = arg;
    uint64_t last_attach_try = 0;
    while (!atomic_load(&d->stop)) {
        uint64_t now = now_ns();
        if (!d->ring) {
            if (now - last_attach_try >= 100000000ull) {
                last_attach_try = now;
                ring_attach(d);
            }
            if (!d->ring) {
                zclock_sleep(10); /* waiting for a writer: nothing to poll on */
            }
        }
        if (d->ring && atomic_load(&d->ring_ready)) {
            /* Sleep at most until the next heartbeat or batch is due. */
            uint64_t hb_at = d->live.last_send_ns + d->heartbeat_ms * 1000000ull;
            uint64_t due = hb_at < d->next_flush_ns ? hb_at : d->next_flush_ns;
            int timeout = due > now ? (int)((due - now) / 1000000ull) : 0;
            if (timeout > 100)
                timeout = 100;
            /* Read a burst before looking at anything else. */
            for (int i = 0; i < 256 && d->ring; i++) {
                uint64_t before = atomic_load(&d->covered);
                pump_step_ring(d, i == 0 ? timeout : 0);
                if (atomic_load(&d->covered) == before)
                    break;
            }
        }
        now = now_ns();
        check_subscriptions(&d->live);
        check_subscriptions(&d->delayed);
        uint64_t covered = atomic_load(&d->covered);
        if (d->start_seq &&
            (d->live.hb_now || now - d->live.last_send_ns >= d->heartbeat_ms * 1000000ull))
            heartbeat(d, &d->live, covered);
        if (d->start_seq && now >= d->next_flush_ns) {
            uint64_t sent_before = d->delayed.messages;
            for (topic_state_t *ts = zhashx_first(d->delayed.topics); ts;
                 ts = zhashx_next(d->delayed.topics))
                delayed_flush(d, ts);
            if (d->delayed.hb_now || d->delayed.messages == sent_before)
                heartbeat(d, &d->delayed, covered);
            d->next_flush_ns = now + d->delay_ms * 1000000ull;
        } else if (d->start_seq && d->delayed.hb_now) {
            heartbeat(d, &d->delayed, covered);
        }
        notify_main(d, false);
    }
    notify_main(d, true);
    return NULL;
}

/* ---- durable subscriptions ------------------------------------------------- */

struct sub {
    char name[STRATA_PROTO_MAX_NAME + 1];
    char **topics;
    size_t n_topics;
    uint64_t stored; /* the offset in the engine */
    uint64_t acked;  /* the highest ack received; stored catches up */
    bool dirty;
    uint64_t stored_ns;

    /* the session, when connected */
    bool connected;
    zframe_t *identity;
    bool delimited;
    uint64_t request_id;
    uint32_t window;
    strata_wal_cursor_t *cursor;
    uint64_t next_seq;            /* the cursor's position */
    uint64_t *fifo_seq, *fifo_ts; /* sent and not acked, in order */
    size_t fifo_head, fifo_len, fifo_cap;
    uint64_t progress_ns, heard_ns;
    uint64_t resends, delivered;
    uint64_t *ack_ids; /* ack requests waiting for the offset to be stored */
    size_t n_ack_ids, cap_ack_ids;
};

static void session_end(sub_t *s)
{
    zframe_destroy(&s->identity);
    strata_wal_cursor_close(&s->cursor);
    free(s->fifo_seq);
    free(s->fifo_ts);
    s->fifo_seq = s->fifo_ts = NULL;
    s->fifo_head = s->fifo_len = s->fifo_cap = 0;
    s->n_ack_ids = 0;
    s->connected = false;
}

static void sub_destroy(void **item)
{
    sub_t *s = *item;
    if (!s)
        return;
    session_end(s);
    strv_free(s->topics, s->n_topics);
    free(s->ack_ids);
    free(s);
    *item = NULL;
}

static void send_to(dist_t *d, zframe_t *identity, bool delimited, const strata_reply_t *rep)
{
    svc_router_send(d->history, identity, delimited, rep);
}

static void send_error_to(dist_t *d, zframe_t *identity, bool delimited, uint64_t request_id,
                          int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void send_error_to(dist_t *d, zframe_t *identity, bool delimited, uint64_t request_id,
                          int code, const char *fmt, ...)
{
    char text[STRATA_PROTO_MAX_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    strata_reply_t rep = {.request_id = request_id, .status = code, .message = text};
    send_to(d, identity, delimited, &rep);
}

/* Offset record: version 1, acked u64, update time u64, topics. */
static size_t offset_encode(const sub_t *s, uint8_t *out, size_t cap)
{
    size_t need = 1 + 8 + 8 + 2;
    for (size_t i = 0; i < s->n_topics; i++)
        need += 2 + strlen(s->topics[i]);
    if (need > cap)
        return 0;
    out[0] = 1;
    put_le64(out + 1, s->acked);
    put_le64(out + 9, wall_ns());
    out[17] = (uint8_t)s->n_topics;
    out[18] = (uint8_t)(s->n_topics >> 8);
    size_t off = 19;
    for (size_t i = 0; i < s->n_topics; i++) {
        size_t len = strlen(s->topics[i]);
        out[off] = (uint8_t)len;
        out[off + 1] = (uint8_t)(len >> 8);
        memcpy(out + off + 2, s->topics[i], len);
        off += 2 + len;
    }
    return off;
}

static int offset_decode(const uint8_t *v, size_t len, sub_t *s, strata_error_t *err)
{
    if (len < 19 || v[0] != 1)
        return strata_error_set(err, STRATA_ECORRUPT, "subscriber %s: offset record version %u",
                                s->name, len ? v[0] : 0);
    s->stored = s->acked = get_le64(v + 1);
    s->stored_ns = get_le64(v + 9);
    size_t n = (size_t)v[17] | (size_t)v[18] << 8, off = 19;
    if (n > STRATA_PROTO_MAX_TOPICS)
        return strata_error_set(err, STRATA_ECORRUPT, "subscriber %s: %zu topics", s->name, n);
    char **topics = calloc(n ? n : 1, sizeof *topics);
    if (!topics)
        return STRATA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t tl = off + 2 <= len ? ((size_t)v[off] | (size_t)v[off + 1] << 8) : SIZE_MAX;
        if (tl > STRATA_PROTO_MAX_TOPIC || off + 2 + tl > len ||
            !(topics[i] = strndup((const char *)v + off + 2, tl))) {
            strv_free(topics, i);
            return strata_error_set(err, STRATA_ECORRUPT, "subscriber %s: topic %zu at offset %zu",
                                    s->name, i, off);
        }
        off += 2 + tl;
    }
    strv_free(s->topics, s->n_topics);
    s->topics = topics;
    s->n_topics = n;
    return 0;
}

static int writer_connect(dist_t *d, strata_error_t *err)
{
    return svc_writer_connect(d->writer_file, 5000, &d->writer, err);
}

/* A blocking call failed: drop the connection so the next one starts clean
 * (a restarted writer may have a new control endpoint). */
static void writer_reset(dist_t *d)
{
    strata_client_destroy(&d->writer);
}

static sub_t *sub_new(dist_t *d, const char *name)
{
    sub_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    zhashx_insert(d->subs, s->name, s);
    return s;
}

/* Loads every stored subscriber (for the list; subscribe reads its own). */
static int subs_load(dist_t *d, strata_error_t *err)
{
    int rc = writer_connect(d, err);
    if (rc)
        return rc;
    strata_bytes_t start = {(const uint8_t *)SUB_KEY_PREFIX, SUB_KEY_PREFIX_LEN};
    uint8_t end_key[SUB_KEY_PREFIX_LEN];
    memcpy(end_key, SUB_KEY_PREFIX, SUB_KEY_PREFIX_LEN);
    end_key[SUB_KEY_PREFIX_LEN - 1]++; /* '/' + 1: just past the prefix */
    strata_bytes_t end = {end_key, sizeof end_key};
    uint8_t cursor_buf[STRATA_PROTO_MAX_CURSOR];
    strata_bytes_t cursor = {NULL, 0};
    do {
        strata_reply_t rep;
        rc = strata_client_scan(d->writer, start, end, 1000, cursor, &rep, err);
        if (rc) {
            strata_reply_clear(&rep);
            writer_reset(d);
            return rc;
        }
        for (size_t i = 0; i < rep.n_entries; i++) {
            const strata_kv_t *en = &rep.entries[i];
            char name[STRATA_PROTO_MAX_NAME + 1];
            size_t nl = en->key.len - SUB_KEY_PREFIX_LEN;
            if (nl == 0 || nl > STRATA_PROTO_MAX_NAME)
                continue;
            memcpy(name, en->key.data + SUB_KEY_PREFIX_LEN, nl);
            name[nl] = '\0';
            sub_t *s = zhashx_lookup(d->subs, name);
            if (s && (s->connected || s->dirty))
                continue; /* ours is newer */
            if (!s && !(s = sub_new(d, name)))
                break;
            strata_error_t derr;
            if (offset_decode(en->value.data, en->value.len, s, &derr) != 0)
                log_warning("event=bad_offset_record error=\"%s\"", derr.msg);
        }
        cursor.len = rep.next_cursor.len;
        if (cursor.len > sizeof cursor_buf)
            cursor.len = 0;
        if (cursor.len)
            memcpy(cursor_buf, rep.next_cursor.data, cursor.len);
        cursor.data = cursor_buf;
        strata_reply_clear(&rep);
    } while (cursor.len);
    return 0;
}

static void reply_acks(dist_t *d, sub_t *s)
{
    for (size_t i = 0; i < s->n_ack_ids && s->connected; i++) {
        strata_reply_t rep = {
            .request_id = s->ack_ids[i], .op = STRATA_OP_ACK, .durable_seq = s->stored};
        send_to(d, s->identity, s->delimited, &rep);
    }
    s->n_ack_ids = 0;
}

/* Stores every dirty offset in one synced batch through the writer. */
static void offsets_flush(dist_t *d)
{
    if (now_ns() < d->flush_retry_ns)
        return;
    size_t n = 0;
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs))
        n += s->dirty;
    if (!n)
        return;
    strata_batch_op_t *ops = calloc(n, sizeof *ops);
    uint8_t *keys = malloc(n * (SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME));
    size_t vcap = 19 + STRATA_PROTO_MAX_TOPICS * (2 + STRATA_PROTO_MAX_TOPIC);
    uint8_t *values = malloc(n * vcap);
    sub_t **which = calloc(n, sizeof *which);
    strata_error_t err;
    int rc = STRATA_ENOMEM;
    if (!ops || !keys || !values || !which)
        goto done;
    size_t i = 0;
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs)) {
        if (!s->dirty)
            continue;
        uint8_t *k = keys + i * (SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME);
        size_t nl = strlen(s->name);
        memcpy(k, SUB_KEY_PREFIX, SUB_KEY_PREFIX_LEN);
        memcpy(k + SUB_KEY_PREFIX_LEN, s->name, nl);
        size_t vl = offset_encode(s, values + i * vcap, vcap);
        ops[i] = (strata_batch_op_t){.kind = STRATA_BATCH_PUT,
                                     .key = {k, SUB_KEY_PREFIX_LEN + nl},
                                     .value = {values + i * vcap, vl}};
        which[i] = s;
        i++;
    }
    if ((rc = writer_connect(d, &err)) == 0) {
        uint64_t seq;
        rc = strata_client_batch(d->writer, STRATA_SYNC, ops, n, &seq, &err);
        if (rc)
            writer_reset(d);
    }
    if (rc == 0) {
        for (size_t j = 0; j < n; j++) {
            which[j]->stored = which[j]->acked;
            which[j]->dirty = false;
            reply_acks(d, which[j]);
        }
    }
done:
    pthread_mutex_lock(&d->stats_mu);
    if (rc)
        d->offset_write_failures++;
    else
        d->offset_writes++;
    pthread_mutex_unlock(&d->stats_mu);
    if (rc)
        d->flush_retry_ns = now_ns() + 500000000ull;
    if (rc)
        log_warning("event=offset_store_failed subscribers=%zu error=\"%s\"", n,
                    rc == STRATA_ENOMEM ? "out of memory" : err.msg);
    free(ops);
    free(keys);
    free(values);
    free(which);
}

static int fifo_push(sub_t *s, uint64_t seq, uint64_t ts)
{
    if (s->fifo_len == s->fifo_cap) {
        size_t cap = s->fifo_cap ? s->fifo_cap * 2 : 64;
        uint64_t *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
        if (!a || !b) {
            free(a);
            free(b);
            return STRATA_ENOMEM;
        }
        for (size_t i = 0; i < s->fifo_len; i++) {
            a[i] = s->fifo_seq[(s->fifo_head + i) % s->fifo_cap];
            b[i] = s->fifo_ts[(s->fifo_head + i) % s->fifo_cap];
        }
        free(s->fifo_seq);
        free(s->fifo_ts);
        s->fifo_seq = a;
        s->fifo_ts = b;
        s->fifo_head = 0;
        s->fifo_cap = cap;
    }
    size_t at = (s->fifo_head + s->fifo_len) % s->fifo_cap;
    s->fifo_seq[at] = seq;
    s->fifo_ts[at] = ts;
    s->fifo_len++;
    return 0;
}

static int session_seek(dist_t *d, sub_t *s, uint64_t seq, strata_error_t *err)
{
    int rc = 0;
    if (!s->cursor && (rc = strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &s->cursor, err)))
        return rc;
    if ((rc = strata_wal_cursor_seek(s->cursor, seq, err)))
        return rc;
    s->next_seq = seq;
    s->fifo_len = 0;
    return 0;
}

/* Sends what the window allows, in DELIVER messages of a few hundred. */
static void session_pump(dist_t *d, sub_t *s)
{
    uint64_t limit = atomic_load(&d->covered);
    uint8_t *blob = NULL;
    size_t len = 0, cap = 0;
    while (s->connected && s->fifo_len < s->window && s->next_seq <= limit) {
        uint32_t count = 0;
        uint64_t first = 0, last = 0;
        len = 0;
        while (count < DELIVER_MAX_ENTRIES && len < PAGE_DEFAULT_BYTES && s->fifo_len < s->window) {
            strata_entry_t e;
            const uint8_t *raw;
            size_t raw_len;
            strata_error_t err;
            int rc = strata_wal_cursor_next(s->cursor, limit, &e, &raw, &raw_len, &err);
            if (rc == STRATA_ETIMEDOUT)
                break;
            if (rc) {
                send_error_to(d, s->identity, s->delimited, s->request_id, rc, "session %s: %s",
                              s->name, err.msg);
                log_warning("event=session_failed name=%s error=\"%s\"", s->name, err.msg);
                session_end(s);
                free(blob);
                return;
            }
            s->next_seq = e.seq + 1;
            if (!topic_matches(e.topic, e.topic_len, s->topics, s->n_topics))
                continue;
            if (len + raw_len > cap) {
                size_t ncap = cap ? cap * 2 : 64 * 1024;
                while (ncap < len + raw_len)
                    ncap *= 2;
                uint8_t *grown = realloc(blob, ncap);
                if (!grown)
                    break;
                blob = grown;
                cap = ncap;
            }
            memcpy(blob + len, raw, raw_len);
            len += raw_len;
            if (!count)
                first = e.seq;
            last = e.seq;
            count++;
            if (s->fifo_len == 0)
                s->progress_ns = now_ns();
            fifo_push(s, e.seq, e.timestamp_ns);
        }
        if (!count)
            break;
        strata_reply_t rep = {.request_id = s->request_id,
                              .op = STRATA_OP_DELIVER,
                              .entries_blob = {blob, len},
                              .count = count,
                              .first_seq = first,
                              .last_seq = last};
        send_to(d, s->identity, s->delimited, &rep);
        s->delivered += count;
        pthread_mutex_lock(&d->stats_mu);
        d->deliveries += count;
        pthread_mutex_unlock(&d->stats_mu);
    }
    free(blob);
}

static bool same_peer(const sub_t *s, zframe_t *identity)
{
    return s->connected && s->identity && zframe_eq(s->identity, identity);
}

static void handle_subscribe(dist_t *d, zframe_t *identity, bool delimited,
                             const strata_request_t *req)
{
    strata_error_t err;
    strata_error_clear(&err);
    if (!req->name || !*req->name)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                             "subscribe.name: empty");
    int rc = writer_connect(d, &err);
    if (rc)
        return send_error_to(d, identity, delimited, req->request_id, rc, "%s", err.msg);
    sub_t *s = zhashx_lookup(d->subs, req->name);
    bool fresh = false;
    if (!s || (!s->connected && !s->dirty)) {
        /* Read the stored offset: the engine is the truth across restarts. */
        char key[SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME];
        size_t nl = strlen(req->name);
        memcpy(key, SUB_KEY_PREFIX, SUB_KEY_PREFIX_LEN);
        memcpy(key + SUB_KEY_PREFIX_LEN, req->name, nl);
        void *value = NULL;
        size_t value_len = 0;
        rc = strata_client_get(d->writer, key, SUB_KEY_PREFIX_LEN + nl, &value, &value_len, &err);
        if (rc && rc != STRATA_ENOTFOUND) {
            writer_reset(d);
            return send_error_to(d, identity, delimited, req->request_id, rc,
                                 "reading the offset of %s: %s", req->name, err.msg);
        }
        if (!s && !(s = sub_new(d, req->name)))
            return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOMEM,
                                 "out of memory");
        if (rc == 0) {
            rc = offset_decode(value, value_len, s, &err);
            free(value);
            if (rc)
                return send_error_to(d, identity, delimited, req->request_id, rc, "%s", err.msg);
        } else {
            fresh = true;
            /* New: from now, or from the seq asked for. */
            s->stored = s->acked = req->seq ? req->seq - 1 : atomic_load(&d->covered);
        }
    }
    if (req->n_topics) {
        char **topics = strv_dup(req->topics, req->n_topics);
        if (!topics)
            return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOMEM,
                                 "out of memory");
        strv_free(s->topics, s->n_topics);
        s->topics = topics;
        s->n_topics = req->n_topics;
        s->dirty = true;
    }
    if (fresh)
        s->dirty = true;
    session_end(s); /* a second session under one name replaces the first */
    if ((rc = session_seek(d, s, s->acked + 1, &err)))
        return send_error_to(d, identity, delimited, req->request_id, rc, "subscriber %s: %s",
                             s->name, err.msg);
    s->identity = zframe_dup(identity);
    s->delimited = delimited;
    s->request_id = req->request_id;
    s->window = req->window ? req->window : (uint32_t)d->window;
    s->connected = true;
    s->heard_ns = s->progress_ns = now_ns();
    if (s->dirty)
        offsets_flush(d); /* a new subscriber exists once its offset is stored */
    log_info("event=subscribed name=%s acked=%" PRIu64 " topics=%zu window=%u", s->name, s->acked,
             s->n_topics, s->window);
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_SUBSCRIBE,
                          .acked_seq = s->acked,
                          .published_seq = atomic_load(&d->covered)};
    send_to(d, identity, delimited, &rep);
    session_pump(d, s);
}

static void handle_ack(dist_t *d, zframe_t *identity, bool delimited, const strata_request_t *req)
{
    sub_t *s = req->name ? zhashx_lookup(d->subs, req->name) : NULL;
    if (!s || !same_peer(s, identity))
        return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOTFOUND,
                             "ack: no session '%s' for this peer: subscribe again",
                             req->name ? req->name : "");
    pthread_mutex_lock(&d->stats_mu);
    d->acks++;
    pthread_mutex_unlock(&d->stats_mu);
    uint64_t now = now_ns();
    s->heard_ns = now;
    uint64_t seq = req->seq;
    if (seq >= s->next_seq) /* never past what was read for it */
        seq = s->next_seq - 1;
    if (seq > s->acked) {
        s->acked = seq;
        s->dirty = true;
        s->progress_ns = now;
        while (s->fifo_len && s->fifo_seq[s->fifo_head] <= seq) {
            s->fifo_head = (s->fifo_head + 1) % s->fifo_cap;
            s->fifo_len--;
        }
    }
    if (!s->dirty) {
        strata_reply_t rep = {
            .request_id = req->request_id, .op = STRATA_OP_ACK, .durable_seq = s->stored};
        send_to(d, identity, delimited, &rep);
    } else {
        if (s->n_ack_ids == s->cap_ack_ids) {
            size_t cap = s->cap_ack_ids ? s->cap_ack_ids * 2 : 16;
            uint64_t *grown = realloc(s->ack_ids, cap * sizeof *grown);
            if (!grown)
                return;
            s->ack_ids = grown;
            s->cap_ack_ids = cap;
        }
        s->ack_ids[s->n_ack_ids++] = req->request_id;
    }
    session_pump(d, s);
}

/* Lag in ms: commit time of the first entry not acked. */
static uint64_t sub_lag_ms(dist_t *d, sub_t *s, uint64_t covered)
{
    if (s->acked >= covered)
        return 0;
    uint64_t ts = 0;
    if (s->fifo_len) {
        ts = s->fifo_ts[s->fifo_head];
    } else {
        strata_wal_cursor_t *c = NULL;
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        if (strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &c, NULL) == 0 &&
            strata_wal_cursor_seek(c, s->acked + 1, NULL) == 0 &&
            strata_wal_cursor_next(c, covered, &e, &raw, &raw_len, NULL) == 0)
            ts = e.timestamp_ns;
        strata_wal_cursor_close(&c);
    }
    uint64_t now = wall_ns();
    return ts && now > ts ? (now - ts) / 1000000ull : 0;
}

static void handle_subscribers(dist_t *d, zframe_t *identity, bool delimited,
                               const strata_request_t *req)
{
    strata_error_t err;
    if (subs_load(d, &err) != 0)
        log_warning("event=subscribers_load_failed error=\"%s\"", err.msg);
    size_t n = zhashx_size(d->subs);
    strata_subscriber_info_t *infos = calloc(n ? n : 1, sizeof *infos);
    if (!infos)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOMEM,
                             "out of memory");
    uint64_t covered = atomic_load(&d->covered);
    size_t i = 0;
    for (sub_t *s = zhashx_first(d->subs); s && i < n; s = zhashx_next(d->subs), i++)
        infos[i] = (strata_subscriber_info_t){
            .name = s->name,
            .topics = (const char *const *)s->topics,
            .n_topics = s->n_topics,
            .acked_seq = s->acked,
            .lag_records = covered > s->acked ? covered - s->acked : 0,
            .lag_ms = sub_lag_ms(d, s, covered),
            .unacked = s->fifo_len,
            .resends = s->resends,
            .connected = s->connected,
        };
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_SUBSCRIBERS,
                          .subscribers = infos,
                          .n_subscribers = i};
    send_to(d, identity, delimited, &rep);
    free(infos);
}

/* ---- replay ------------------------------------------------------------------ */

static strata_wal_cursor_t *cursor_take(dist_t *d, uint64_t next_seq)
{
    for (int i = 0; i < CURSOR_CACHE; i++)
        if (d->cursors[i].cursor && d->cursors[i].next_seq == next_seq) {
            strata_wal_cursor_t *c = d->cursors[i].cursor;
            d->cursors[i].cursor = NULL;
            return c;
        }
    return NULL;
}

/* Keeps a cursor where a pager will ask next; the least recently used goes. */
static void cursor_keep(dist_t *d, strata_wal_cursor_t *c, uint64_t next_seq)
{
    int slot = 0;
    for (int i = 0; i < CURSOR_CACHE; i++) {
        if (!d->cursors[i].cursor) {
            slot = i;
            break;
        }
        if (d->cursors[i].used_ns < d->cursors[slot].used_ns)
            slot = i;
    }
    strata_wal_cursor_close(&d->cursors[slot].cursor);
    d->cursors[slot].cursor = c;
    d->cursors[slot].next_seq = next_seq;
    d->cursors[slot].used_ns = now_ns();
}

static void handle_replay(dist_t *d, zframe_t *identity, bool delimited,
                          const strata_request_t *req)
{
    strata_error_t err;
    strata_error_clear(&err);
    uint64_t covered = atomic_load(&d->covered);
    uint64_t to = req->to_seq && req->to_seq < covered ? req->to_seq : covered;
    uint32_t max_entries = req->max_entries && req->max_entries < PAGE_MAX_ENTRIES
                               ? req->max_entries
                               : PAGE_MAX_ENTRIES;
    size_t max_bytes = req->max_bytes ? req->max_bytes : PAGE_DEFAULT_BYTES;
    if (max_bytes > PAGE_MAX_BYTES)
        max_bytes = PAGE_MAX_BYTES;

    strata_wal_cursor_t *c = req->seq ? cursor_take(d, req->seq) : NULL;
    int rc = 0;
    uint64_t next = req->seq;
    if (!c) {
        if ((rc = strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &c, &err)))
            goto fail;
        if (req->seq)
            rc = strata_wal_cursor_seek(c, req->seq, &err);
        else if (req->from_time_ns)
            rc = strata_wal_cursor_seek_time(c, req->from_time_ns, &err);
        else
            rc = strata_wal_cursor_seek(c, strata_wal_cursor_oldest_seq(c), &err);
        if (rc)
            goto fail;
    }
    uint8_t *blob = NULL;
    size_t len = 0, cap = 0;
    uint32_t count = 0, examined = 0;
    bool done = false;
    while (count < max_entries && len < max_bytes && examined < PAGE_MAX_EXAMINED) {
        if (next && next > to) {
            done = true;
            break;
        }
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        rc = strata_wal_cursor_next(c, to, &e, &raw, &raw_len, &err);
        if (rc == STRATA_ETIMEDOUT) {
            rc = 0;
            done = true;
            break;
        }
        if (rc) {
            free(blob);
            goto fail;
        }
        examined++;
        next = e.seq + 1;
        if (!topic_matches(e.topic, e.topic_len, (char *const *)req->topics, req->n_topics))
            continue;
        if (len + raw_len > cap) {
            size_t ncap = cap ? cap * 2 : 64 * 1024;
            while (ncap < len + raw_len)
                ncap *= 2;
            uint8_t *grown = realloc(blob, ncap);
            if (!grown) {
                free(blob);
                rc = strata_error_set(&err, STRATA_ENOMEM, "replay page of %zu bytes", ncap);
                goto fail;
            }
            blob = grown;
            cap = ncap;
        }
        memcpy(blob + len, raw, raw_len);
        len += raw_len;
        count++;
    }
    if (!next) /* an empty log, or a time past its end */
        next = covered + 1;
    if (next > to)
        done = true;
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_REPLAY,
                          .entries_blob = {blob, len},
                          .count = count,
                          .next_seq = next,
                          .published_seq = covered,
                          .done = done};
    send_to(d, identity, delimited, &rep);
    free(blob);
    if (!done)
        cursor_keep(d, c, next);
    else
        strata_wal_cursor_close(&c);
    pthread_mutex_lock(&d->stats_mu);
    d->replay_requests++;
    d->replay_entries += count;
    pthread_mutex_unlock(&d->stats_mu);
    return;
fail:
    strata_wal_cursor_close(&c);
    send_error_to(d, identity, delimited, req->request_id, rc, "replay: %s",
                  err.msg[0] ? err.msg : strata_strerror(rc));
}

/* ---- stats ------------------------------------------------------------------- */

static void stats_reply(dist_t *d, zframe_t *identity, bool delimited, uint64_t request_id)
{
    char values[8][32];
    uint64_t v[8] = {atomic_load(&d->covered),      d->start_seq,
                     atomic_load(&d->live_entries), atomic_load(&d->delayed_batches),
                     atomic_load(&d->heartbeats),   atomic_load(&d->laps),
                     atomic_load(&d->wal_catchups), zhashx_size(d->subs)};
    static const char *names[8] = {"covered_seq", "start_seq", "live_entries", "delayed_batches",
                                   "heartbeats",  "laps",      "wal_catchups", "subscribers"};
    strata_pair_t pairs[8];
    for (int i = 0; i < 8; i++) {
        snprintf(values[i], sizeof values[i], "%" PRIu64, v[i]);
        pairs[i] = (strata_pair_t){names[i], values[i]};
    }
    strata_reply_t rep = {
        .request_id = request_id, .op = STRATA_OP_STATS, .pairs = pairs, .n_pairs = 8};
    send_to(d, identity, delimited, &rep);
}

static void write_metrics(void *arg, FILE *out)
{
    dist_t *d = arg;
    prom_gauge(out, "distributor_covered_seq", "Every entry up to this seq has been published.",
               (double)atomic_load(&d->covered));
    prom_counter(out, "distributor_live_entries_total", "Entries sent on the live stream.",
                 atomic_load(&d->live_entries));
    prom_counter(out, "distributor_delayed_batches_total", "Messages sent on the delayed stream.",
                 atomic_load(&d->delayed_batches));
    prom_counter(out, "distributor_heartbeats_total", "Heartbeat messages sent.",
                 atomic_load(&d->heartbeats));
    prom_counter(out, "distributor_ring_laps_total",
                 "Times the ring overwrote the pump's cursor (gap filled from the WAL).",
                 atomic_load(&d->laps));
    prom_counter(out, "distributor_wal_catchups_total", "Gaps filled from the WAL.",
                 atomic_load(&d->wal_catchups));
    pthread_mutex_lock(&d->stats_mu);
    prom_counter(out, "distributor_replay_requests_total", "History replay pages served.",
                 d->replay_requests);
    prom_counter(out, "distributor_replay_entries_total", "Entries sent in replay pages.",
                 d->replay_entries);
    prom_counter(out, "distributor_deliveries_total", "Entries sent to durable sessions.",
                 d->deliveries);
    prom_counter(out, "distributor_acks_total", "Acks received from durable subscribers.", d->acks);
    prom_counter(out, "distributor_offset_writes_total", "Offset batches stored via the writer.",
                 d->offset_writes);
    prom_counter(out, "distributor_offset_write_failures_total",
                 "Offset batches the writer did not store.", d->offset_write_failures);
    pthread_mutex_unlock(&d->stats_mu);
}

static bool is_ready(void *arg)
{
    return atomic_load(&((dist_t *)arg)->ring_ready);
}

/* ---- the main loop ---------------------------------------------------------- */

static int on_history(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    dist_t *d = arg;
    zframe_t *identity, *payload;
    bool delimited;
    size_t frames;
    if (svc_router_recv(sock, &identity, &delimited, &payload, &frames) != 0)
        return zsys_interrupted ? -1 : 0;
    if (!identity || !payload) {
        if (identity)
            send_error_to(d, identity, delimited, 0, STRATA_EINVAL,
                          "request: expected one payload frame, got %zu frames", frames);
        goto out;
    }
    strata_request_t req;
    strata_error_t err;
    int rc = strata_request_decode(zframe_data(payload), zframe_size(payload), &req, &err);
    if (rc) {
        send_error_to(d, identity, delimited, req.request_id, rc, "%s", err.msg);
    } else {
        switch (req.op) {
        case STRATA_OP_REPLAY:
            handle_replay(d, identity, delimited, &req);
            break;
        case STRATA_OP_SUBSCRIBE:
            handle_subscribe(d, identity, delimited, &req);
            break;
        case STRATA_OP_ACK:
            handle_ack(d, identity, delimited, &req);
            break;
        case STRATA_OP_SUBSCRIBERS:
            handle_subscribers(d, identity, delimited, &req);
            break;
        case STRATA_OP_STATS:
            stats_reply(d, identity, delimited, req.request_id);
            break;
        default:
            send_error_to(d, identity, delimited, req.request_id, STRATA_EINVAL,
                          "request: %s is not served by strata-distributor (replay, subscribe, "
                          "ack, subscribers, stats)",
                          strata_op_name(req.op));
        }
    }
    strata_request_clear(&req);
out:
    zframe_destroy(&identity);
    zframe_destroy(&payload);
    return 0;
}

static void pump_sessions(dist_t *d)
{
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs))
        if (s->connected)
            session_pump(d, s);
}

static int on_notify(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    uint64_t covered;
    if (zsock_recv(sock, "8", &covered) == 0)
        pump_sessions(arg);
    return 0;
}

/* Resends, session expiry, and the pump's wake-ups we may have coalesced. */
static int on_sessions_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    dist_t *d = arg;
    uint64_t now = now_ns();
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs)) {
        if (!s->connected)
            continue;
        if (now - s->heard_ns > d->session_timeout_ms * 1000000ull) {
            log_info("event=session_expired name=%s acked=%" PRIu64, s->name, s->acked);
            session_end(s);
            continue;
        }
        if (s->fifo_len && now - s->progress_ns > d->ack_timeout_ms * 1000000ull) {
            strata_error_t err;
            s->resends++;
            log_info("event=resend name=%s from=%" PRIu64 " unacked=%zu", s->name, s->acked + 1,
                     s->fifo_len);
            if (session_seek(d, s, s->acked + 1, &err) != 0) {
                send_error_to(d, s->identity, s->delimited, s->request_id, err.code,
                              "session %s: %s", s->name, err.msg);
                session_end(s);
                continue;
            }
            s->progress_ns = now;
        }
        session_pump(d, s);
    }
    return zsys_interrupted ? -1 : 0;
}

static int on_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    offsets_flush(arg);
    return zsys_interrupted ? -1 : 0;
}

static zsock_t *bind_sock(int type, const char *endpoint, char *bound, size_t cap, uint64_t hwm,
                          strata_error_t *err)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        strata_error_set(err, STRATA_ENOMEM, "cannot create a socket for %s", endpoint);
        return NULL;
    }
    zsock_set_maxmsgsize(sock, (int64_t)STRATA_PROTO_MAX_MESSAGE + 64 * 1024);
    zsock_set_sndhwm(sock, (int)hwm);
    zsock_set_rcvhwm(sock, 100000);
    zsock_set_linger(sock, 500);
    if (type == ZMQ_XPUB)
        zsock_set_xpub_verbose(sock, 1); /* every subscriber's $hb: heartbeat it at once */
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        strata_error_set(err, STRATA_EIO, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    char *last = zsock_last_endpoint(sock);
    snprintf(bound, cap, "%s", last ? last : endpoint);
    zstr_free(&last);
    return sock;
}

static int write_endpoints(dist_t *d, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", d->history_ep}, /* where requests go */
                             {"live", d->live_ep},
                             {"delayed", d->delayed_ep},
                             {"history", d->history_ep},
                             {"metrics", d->metrics_url}};
    return svc_write_endpoints(d->endpoints_file, "distributor", pairs, 5, err);
}

static void topic_state_free(void **item)
{
    topic_state_t *ts = *item;
    if (ts) {
        free(ts->buf);
        free(ts);
    }
    *item = NULL;
}

static void dist_free(dist_t *d)
{
    svc_http_stop(&d->http);
    zsock_destroy(&d->history);
    zsock_destroy(&d->notify);
    zsock_destroy(&d->live.pub);
    zsock_destroy(&d->delayed.pub);
    zhashx_destroy(&d->live.topics);
    zhashx_destroy(&d->delayed.topics);
    zhashx_destroy(&d->subs);
    for (int i = 0; i < CURSOR_CACHE; i++)
        strata_wal_cursor_close(&d->cursors[i].cursor);
    strata_wal_cursor_close(&d->pump_cursor);
    strata_ring_reader_close(&d->ring);
    strata_client_destroy(&d->writer);
    free(d->scratch);
    svc_config_destroy(&d->cfg);
    pthread_mutex_destroy(&d->stats_mu);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: strata-distributor [-c FILE] [--print-config] [-h] [--version]\n"
                 "Reads the ring and WAL of the writer whose node/data_dir it shares.\n");
}

static int load_numbers(dist_t *d, strata_error_t *err)
{
    struct {
        const char *key;
        uint64_t *out, min, max;
    } keys[] = {
        {"distributor/delay_ms", &d->delay_ms, 1, 60000},
        {"distributor/heartbeat_ms", &d->heartbeat_ms, 10, 60000},
        {"distributor/sndhwm", &d->sndhwm, 1, 100000000},
        {"distributor/window", &d->window, 1, 1000000},
        {"distributor/ack_timeout_ms", &d->ack_timeout_ms, 10, 3600000},
        {"distributor/ack_flush_ms", &d->ack_flush_ms, 1, 60000},
        {"distributor/session_timeout_ms", &d->session_timeout_ms, 100, 86400000},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int rc = svc_config_u64(d->cfg, keys[i].key, keys[i].out, err);
        if (rc)
            return rc;
        if (*keys[i].out < keys[i].min || *keys[i].out > keys[i].max)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: %" PRIu64 " out of range %" PRIu64 "..%" PRIu64,
                                    keys[i].key, *keys[i].out, keys[i].min, keys[i].max);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-distributor", DISTRIBUTOR_VERSION, usage,
                            &config_file, &print_config);
    if (rc >= 0)
        return rc;

    static dist_t dist; /* the pump thread holds it until join */
    dist_t *d = &dist;
    pthread_mutex_init(&d->stats_mu, NULL);
    strata_error_t err;
    strata_error_clear(&err);
    rc = svc_config_load(default_config, config_file, &d->cfg, &err);
    if (rc == 0 && (rc = load_numbers(d, &err)) == 0 && print_config) {
        svc_config_print(d->cfg, stdout);
        dist_free(d);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "strata-distributor: %s\n", err.msg);
        dist_free(d);
        return 2;
    }
    zsys_init();
    if ((rc = svc_log_init("strata-distributor", svc_config_get(d->cfg, "log/level"), &err)))
        goto fail;
    const char *dir = svc_config_get(d->cfg, "node/data_dir");
    if (!realpath(dir, d->data_dir)) {
        rc = strata_error_set(&err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)",
                              dir, strerror(errno));
        goto fail;
    }
    snprintf(d->wal_dir, sizeof d->wal_dir, "%.4000s/wal", d->data_dir);
    snprintf(d->writer_file, sizeof d->writer_file, "%.4000s/writer.endpoints", d->data_dir);
    snprintf(d->endpoints_file, sizeof d->endpoints_file, "%.4000s/distributor.endpoints",
             d->data_dir);
    d->instance = ((uint64_t)randof(0x7fffffff) << 32) ^ (uint64_t)getpid() ^ wall_ns();
    d->live.tier = 0;
    d->delayed.tier = 1;
    d->live.topics = zhashx_new();
    d->delayed.topics = zhashx_new();
    d->subs = zhashx_new();
    if (!d->live.topics || !d->delayed.topics || !d->subs) {
        rc = strata_error_set(&err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    zhashx_set_destructor(d->live.topics, topic_state_free);
    zhashx_set_destructor(d->delayed.topics, topic_state_free);
    zhashx_set_destructor(d->subs, sub_destroy);

    rc = STRATA_EIO;
    if (!(d->live.pub = bind_sock(ZMQ_XPUB, svc_config_get(d->cfg, "distributor/live"), d->live_ep,
                                  sizeof d->live_ep, d->sndhwm, &err)) ||
        !(d->delayed.pub = bind_sock(ZMQ_XPUB, svc_config_get(d->cfg, "distributor/delayed"),
                                     d->delayed_ep, sizeof d->delayed_ep, d->sndhwm, &err)) ||
        !(d->history = bind_sock(ZMQ_ROUTER, svc_config_get(d->cfg, "distributor/history"),
                                 d->history_ep, sizeof d->history_ep, 100000, &err)))
        goto fail;
    zsock_set_router_mandatory(d->history, 0);
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://distributor-notify-%p", (void *)d);
    zsock_t *notify_in = zsock_new_pull(ep);
    if (!notify_in || !(d->notify = zsock_new_push(ep))) {
        zsock_destroy(&notify_in);
        rc = strata_error_set(&err, STRATA_EIO, "cannot create the inproc notify pair");
        goto fail;
    }
    uint16_t http_port = 0;
    const char *metrics = svc_config_get(d->cfg, "metrics/endpoint");
    if ((rc = svc_http_start(metrics, write_metrics, is_ready, d, &d->http, &http_port, &err))) {
        zsock_destroy(&notify_in);
        goto fail;
    }
    if (d->http) {
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(metrics, ':') - metrics), metrics);
        snprintf(d->metrics_url, sizeof d->metrics_url, "http://%s:%u/metrics", host, http_port);
    } else {
        snprintf(d->metrics_url, sizeof d->metrics_url, "off");
    }
    /* The pump owns the PUB sockets and the notify end from here on. */
    d->next_flush_ns = now_ns() + d->delay_ms * 1000000ull;
    if (pthread_create(&d->pump, NULL, pump_main, d) != 0) {
        zsock_destroy(&notify_in);
        rc = strata_error_set(&err, STRATA_ENOMEM, "cannot start the pump thread");
        goto fail;
    }
    if ((rc = write_endpoints(d, &err))) {
        atomic_store(&d->stop, true);
        pthread_join(d->pump, NULL);
        zsock_destroy(&notify_in);
        goto fail;
    }
    zloop_t *loop = zloop_new();
    zloop_reader(loop, d->history, on_history, d);
    zloop_reader(loop, notify_in, on_notify, d);
    zloop_timer(loop, 10, 0, on_sessions_timer, d);
    zloop_timer(loop, d->ack_flush_ms, 0, on_flush_timer, d);
    log_info("event=ready node=%s live=%s delayed=%s history=%s metrics=%s dir=%s pid=%d",
             svc_config_get(d->cfg, "node/name"), d->live_ep, d->delayed_ep, d->history_ep,
             d->metrics_url, d->data_dir, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
    log_info("event=stopping covered=%" PRIu64, atomic_load(&d->covered));
    offsets_flush(d); /* acks received are stored before we go */
    atomic_store(&d->stop, true);
    pthread_join(d->pump, NULL);
    zsock_destroy(&notify_in);
    unlink(d->endpoints_file);
    dist_free(d);
    log_info("event=stopped");
    return 0;

fail:
    log_error("event=start_failed error=\"%s\"", err.msg);
    fprintf(stderr, "strata-distributor: %s\n", err.msg);
    dist_free(d);
    return 1;
}
