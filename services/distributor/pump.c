/* strata-distributor's pump thread: reads the writer's shm ring (filling
 * what it lacks from the WAL) and publishes every committed entry on the
 * live and delayed XPUB sockets, with heartbeats (proto/DISTRIBUTION.md). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "distributor.h"
#include "log.h"
#include "strata/pubframe.h"
#include "strata/tail.h"

/* ---- the pump: ring to PUB ------------------------------------------------ */

static void meta_encode(uint8_t *m, int kind, int tier, uint32_t count, uint64_t prev,
                        uint64_t instance, uint64_t start_seq, uint64_t term)
{
    strata_pub_meta_t meta = {.term = term,
                              .kind = (uint8_t)kind,
                              .tier = (uint8_t)tier,
                              .count = count,
                              .prev_seq = prev,
                              .instance = instance,
                              .start_seq = start_seq};
    strata_pub_meta_encode(&meta, m);
}

/* One message, three frames; body must come from malloc and is ZeroMQ's
 * (or freed) from here on. PUB drops what a slow subscriber's queue has no
 * room for; the seqs make that visible to it, so we never block here. The
 * same holds past the tier's byte cap, where the subscriber that stopped
 * reading (it holds the queue) is closed so the others get entries again. */
static void pub_send(tier_t *t, const void *topic, size_t topic_len, const uint8_t *meta,
                     void *body, size_t body_len)
{
    if (svc_outq_full(t->outq)) {
        svc_conncap_shed(t->conncap, SHED_MIN_BYTES, "subscriber queue full");
        atomic_fetch_add(&t->dropped, 1);
        free(body);
        return;
    }
    void *s = zsock_resolve(t->pub);
    zmq_send(s, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, meta, META_BYTES, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    svc_outq_send(t->outq, s, body, body_len, ZMQ_DONTWAIT);
    t->messages++;
}

/* pub_send of a body the caller keeps. */
static void pub_send_copy(tier_t *t, const void *topic, size_t topic_len, const uint8_t *meta,
                          const void *body, size_t body_len)
{
    void *copy = malloc(body_len ? body_len : 1);
    if (!copy) {
        atomic_fetch_add(&t->dropped, 1);
        return;
    }
    memcpy(copy, body, body_len);
    pub_send(t, topic, topic_len, meta, copy, body_len);
}

/* Whether ts is the state of topic (empty: NO_TOPIC, as topic_get files it). */
static bool topic_is(const topic_state_t *ts, const uint8_t *topic, size_t len)
{
    if (len == 0) {
        topic = (const uint8_t *)NO_TOPIC;
        len = strlen(NO_TOPIC);
    }
    if (len > STRATA_PROTO_MAX_TOPIC)
        len = STRATA_PROTO_MAX_TOPIC;
    return ts->name_len == len && memcmp(ts->name, topic, len) == 0;
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
    ts->name_len = len;
    ts->last = d->start_seq - 1;
    zhashx_insert(t->topics, ts->name, ts);
    return ts;
}

static void heartbeat(dist_t *d, tier_t *t, uint64_t covered)
{
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_HEARTBEAT, t->tier, 0, 0, d->instance, d->start_seq, d->covered_term);
    size_t cap = STRATA_PUB_HB_HEADER + HB_TOPICS_PER_MESSAGE * (2 + STRATA_PROTO_MAX_TOPIC + 8);
    uint8_t *body = malloc(cap);
    if (!body)
        return;
    topic_state_t *ts = zhashx_first(t->topics);
    do { /* at least one message, even with no topics */
        size_t off = STRATA_PUB_HB_HEADER;
        uint32_t n = 0;
        for (; ts && n < HB_TOPICS_PER_MESSAGE; ts = zhashx_next(t->topics), n++)
            off += strata_pub_hb_put_topic(body + off, ts->name, strlen(ts->name), ts->last);
        strata_pub_hb_put_header(body, covered, n);
        pub_send_copy(t, HB_TOPIC, strlen(HB_TOPIC), meta, body, off);
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
    const uint8_t *last_entry = ts->buf + ts->last_off;
    /* A batch may span a term change: it carries its last entry's term. */
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_ENTRIES, 1, ts->count, ts->last, d->instance, d->start_seq,
                get_le64(last_entry + 24));
    pub_send_copy(&d->delayed, ts->name, strlen(ts->name), meta, ts->buf, ts->len);
    ts->last = get_le64(last_entry + 16);
    d->delayed.entries += ts->count;
    d->delayed.last_send_ns = now_ns();
    atomic_fetch_add(&d->delayed_batches, 1);
    ts->len = 0;
    ts->count = 0;
}

/* Sends the open live message, if any. */
static void live_send(dist_t *d)
{
    live_batch_t *b = &d->live_batch;
    if (!b->count)
        return;
    topic_state_t *ts = b->topic;
    uint8_t meta[META_BYTES];
    meta_encode(meta, KIND_ENTRIES, 0, b->count, ts->last, d->instance, d->start_seq, b->last_term);
    /* The outq counts what malloc holds: give back what the batch did not
     * fill (in place). */
    if (b->cap - b->len > b->len / 4) {
        uint8_t *fitted = realloc(b->buf, b->len);
        if (fitted)
            b->buf = fitted;
    }
    pub_send(&d->live, ts->name, strlen(ts->name), meta, b->buf, b->len);
    ts->last = b->last_seq;
    d->live.entries += b->count;
    d->live.last_send_ns = now_ns();
    atomic_fetch_add(&d->live_entries, b->count);
    *b = (live_batch_t){0};
}

/* Sends the open live message, then says everything read so far is
 * covered: a heartbeat or a replay never runs ahead of the stream. */
static void live_flush(dist_t *d)
{
    live_send(d);
    d->covered_term = d->read_term;
    atomic_store(&d->covered, d->read_seq);
}

/* Adds an entry to the open live message: entries of one topic read in
 * one burst travel together, in seq order, so the stream's order across
 * topics stays the log's. */
static void live_add(dist_t *d, topic_state_t *ts, const strata_entry_t *e, const uint8_t *raw,
                     size_t raw_len)
{
    live_batch_t *b = &d->live_batch;
    if (b->count && (b->topic != ts || b->len + raw_len > LIVE_BATCH_MAX_BYTES))
        live_send(d);
    if (b->len + raw_len > b->cap) {
        /* A lone entry costs one exact malloc (the common case when the
         * pump keeps up); a second one means a backlog: room for more. */
        size_t cap = b->cap ? 2 * b->cap : raw_len;
        if (b->cap && cap < 16 * raw_len)
            cap = 16 * raw_len;
        if (cap > LIVE_BATCH_MAX_BYTES)
            cap = LIVE_BATCH_MAX_BYTES;
        if (cap < b->len + raw_len)
            cap = b->len + raw_len;
        uint8_t *grown = realloc(b->buf, cap);
        if (!grown) {
            /* Not sent, but counted as sent: the next message's prev_seq
             * shows subscribers the gap, as for any dropped message. What
             * is open goes first, so its own prev_seq stays right. */
            log_error("event=out_of_memory seq=%" PRIu64, e->seq);
            live_send(d);
            atomic_fetch_add(&d->live.dropped, 1);
            ts->last = e->seq;
            return;
        }
        b->buf = grown;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, raw, raw_len);
    b->len += raw_len;
    b->count++;
    b->topic = ts;
    b->last_seq = e->seq;
    b->last_term = e->term;
}

/* Takes one committed entry (raw is a private copy, already checked) into
 * the live message and the topic's delayed batch. */
static void publish_entry(dist_t *d, const strata_entry_t *e, const uint8_t *raw, size_t raw_len)
{
    if (e->topic_len > 0 && e->topic[0] == '$') /* the node's own: never on PUB */
        goto covered;
    topic_state_t *live = d->last_live, *later = d->last_delayed;
    /* Runs of one topic are the common case: look up only when it changes. */
    if (!live || !topic_is(live, e->topic, e->topic_len)) {
        live = d->last_live = topic_get(d, &d->live, e->topic, e->topic_len);
        later = d->last_delayed = topic_get(d, &d->delayed, e->topic, e->topic_len);
    }
    if (!live || !later) {
        log_error("event=out_of_memory seq=%" PRIu64, e->seq);
        goto covered;
    }
    live_add(d, live, e, raw, raw_len);

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
    later->last_off = later->len;
    later->len += raw_len;
    later->count++;
covered:
    d->read_seq = e->seq;
    d->read_term = e->term;
}

/* Where the writer's ring is (its endpoints file says, "off" when it has
 * none): asked by the tail at every (re)attach. */
static int locate_ring(void *arg, char *out, size_t cap)
{
    dist_t *d = arg;
    zconfig_t *root = zconfig_load(d->writer_file);
    if (!root)
        return -1;
    const char *v = zconfig_get(root, "writer/ring", NULL);
    int rc = v && *v && strcmp(v, "off") ? 0 : -1;
    if (!rc)
        snprintf(out, cap, "%s", v);
    zconfig_destroy(&root);
    return rc;
}

/* The term of the entry at seq, read from the WAL: the heartbeats sent
 * before this instance publishes its first entry carry it. 0 for seq 0 or
 * when the WAL no longer holds it (logged). */
static uint64_t term_at(dist_t *d, uint64_t seq)
{
    if (seq == 0)
        return 0;
    strata_wal_cursor_t *c = NULL;
    strata_entry_t e = {0};
    const uint8_t *raw;
    size_t raw_len;
    strata_error_t err;
    int rc = strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &c, &err);
    if (rc == 0)
        rc = strata_wal_cursor_seek(c, seq, &err);
    if (rc == 0)
        rc = strata_wal_cursor_next(c, seq, &e, &raw, &raw_len, &err);
    if (rc == 0 && e.seq != seq)
        rc = strata_error_set(&err, STRATA_ENOTFOUND, "the WAL's entry there has seq %" PRIu64,
                              e.seq);
    strata_wal_cursor_close(&c);
    if (rc) {
        log_error("event=term_unknown seq=%" PRIu64 " error=\"%s\"", seq, err.msg);
        return 0;
    }
    return e.term;
}

/* Takes the tail's next entry, if one comes within timeout_ms; true when
 * one did. The tail (lib/log/tail.c) fills whatever the ring lacks from
 * the WAL, so the pump reads one seq at a time. */
static bool pump_step(dist_t *d, int timeout_ms)
{
    strata_entry_t e;
    const uint8_t *raw;
    size_t raw_len;
    strata_error_t err;
    int rc = strata_tail_next(d->tail, 0, timeout_ms, &e, &raw, &raw_len, &err);
    if (!d->start_seq && strata_tail_start_seq(d->tail)) {
        d->start_seq = strata_tail_start_seq(d->tail);
        d->read_seq = d->start_seq - 1;
        d->read_term = term_at(d, d->read_seq);
        live_flush(d); /* nothing to send: covered and its term */
    }
    if (rc == 0) {
        uint64_t failures = svc_episode_cleared(&d->tail_failing);
        if (failures)
            log_info("event=tail_recovered seq=%" PRIu64 " failures=%" PRIu64, e.seq, failures);
        publish_entry(d, &e, raw, raw_len);
    } else if (rc != STRATA_ETIMEDOUT && svc_episode_failed(&d->tail_failing, rc)) {
        /* The pump asks again at once: the line is for the first of them. */
        log_error("event=tail_failed seq=%" PRIu64 " error=\"%s\"", d->read_seq + 1, err.msg);
    }
    return rc == 0;
}

/* Takes what the tail has at once, up to PUMP_BURST_ENTRIES, waiting up to
 * timeout_ms for the first, and sends it: the message leaves right after
 * its last entry is read, with no poll that finds nothing in between. The
 * tail's counters are looked at once per burst, not per entry. */
static void pump_burst(dist_t *d, int timeout_ms)
{
    strata_tail_stats_t before, after;
    strata_tail_stats(d->tail, &before);
    uint64_t from = d->read_seq + 1;
    for (int i = 0; i < PUMP_BURST_ENTRIES && (i == 0 || strata_tail_pending(d->tail)); i++)
        if (!pump_step(d, i == 0 ? timeout_ms : 0))
            break;
    strata_tail_stats(d->tail, &after);
    if (after.ring_attaches != before.ring_attaches)
        log_info("event=ring_attached next_seq=%" PRIu64, strata_tail_next_seq(d->tail));
    if (after.wal_refills != before.wal_refills)
        log_info("event=wal_catchup from=%" PRIu64, from);
    if (before.ring_attached && !after.ring_attached)
        log_info("event=ring_stale covered=%" PRIu64, d->read_seq);
    if (after.laps != before.laps)
        atomic_store(&d->laps, after.laps);
    if (after.wal_refills != before.wal_refills)
        atomic_store(&d->wal_catchups, after.wal_refills);
    if (after.ring_attaches != before.ring_attaches)
        atomic_store(&d->ring_reopens, after.ring_attaches);
    if (after.ring_attached != before.ring_attached || !d->ring_ready_known) {
        atomic_store(&d->ring_ready, after.ring_attached);
        d->ring_ready_known = true;
    }
    live_flush(d);
}

int pump_tail_open(dist_t *d, strata_error_t *err)
{
    strata_tail_options_t opts = {.ring_locate = locate_ring,
                                  .ring_locate_arg = d,
                                  .wal_dir = d->wal_dir,
                                  .max_entry_bytes = WAL_MAX_ENTRY,
                                  .spin_us = PUMP_SPIN_US};
    return strata_tail_open(&opts, &d->tail, err);
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

/* Tells the main thread how far the stream is, for its durable sessions;
 * with none connected there is nothing to wake it for (a subscribe reads
 * covered itself). */
static void notify_main(dist_t *d, bool force)
{
    if (!force && atomic_load(&d->sessions_connected) == 0)
        return;
    uint64_t covered = atomic_load(&d->covered), now = now_ns();
    if (covered == d->notified || (!force && now - d->last_notify_ns < 1000000))
        return;
    zsock_send(d->notify, "8", covered);
    d->notified = covered;
    d->last_notify_ns = now;
}

void *pump_main(void *arg)
{
    dist_t *d = arg;
    while (!atomic_load(&d->stop)) {
        uint64_t now = now_ns();
        /* Sleep at most until the next heartbeat or batch is due. */
        uint64_t hb_at = d->live.last_send_ns + d->heartbeat_ms * 1000000ull;
        uint64_t due = hb_at < d->next_flush_ns ? hb_at : d->next_flush_ns;
        int timeout = due > now ? (int)((due - now) / 1000000ull) : 0;
        if (timeout > 100)
            timeout = 100;
        pump_burst(d, timeout);
        now = now_ns();
        /* Each look is a poll(2) inside ZeroMQ: once a millisecond is soon
         * enough for a new subscriber's heartbeat, and a pump woken per
         * entry does not pay it per entry. */
        if (now - d->subs_checked_ns >= SUBS_CHECK_NS) {
            check_subscriptions(&d->live);
            check_subscriptions(&d->delayed);
            d->subs_checked_ns = now;
        }
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
    live_flush(d);
    notify_main(d, true);
    return NULL;
}

void topic_state_free(void **item)
{
    topic_state_t *ts = *item;
    if (ts) {
        free(ts->buf);
        free(ts);
    }
    *item = NULL;
}
