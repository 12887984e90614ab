/* The client side of the distribution protocol (proto/DISTRIBUTION.md):
 * a SUB socket on a PUB tier with gap detection and repair,
 * the Clone hand-off from history to live, and durable sessions on the
 * history endpoint. The contract is strata/subscriber.h; stratactl tail and
 * applications use it. */
#define _GNU_SOURCE
#include "subscriber_impl.h"

/* One poll of one socket. 1 readable, 0 not within wait_ms, or an error
 * (ECLOSED when a signal set zsys_interrupted, as in client.c). */
int sub_poll(void *handle, const char *endpoint, long wait_ms, strata_error_t *err)
{
    if (zsys_interrupted)
        return strata_error_set(err, STRATA_ECLOSED, "interrupted");
    zmq_pollitem_t item = {.socket = handle, .events = ZMQ_POLLIN};
    int n = zmq_poll(&item, 1, wait_ms);
    if (n >= 0)
        return n > 0 ? 1 : 0;
    if (zmq_errno() != EINTR)
        return strata_error_set(err, STRATA_EIO, "poll %s: %s", endpoint,
                                zmq_strerror(zmq_errno()));
    if (zsys_interrupted)
        return strata_error_set(err, STRATA_ECLOSED, "interrupted");
    return 0;
}

/* ---- the L[t] table ------------------------------------------------------ */

static size_t s_key_hash(const void *key)
{
    const topic_key_t *k = key;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (uint16_t i = 0; i < k->len; i++)
        h = (h ^ k->bytes[i]) * 0x100000001b3ull;
    return (size_t)h;
}

static int s_key_compare(const void *a, const void *b)
{
    const topic_key_t *ka = a, *kb = b;
    if (ka->len != kb->len)
        return ka->len < kb->len ? -1 : 1;
    return memcmp(ka->bytes, kb->bytes, ka->len);
}

static void *s_key_dup(const void *key)
{
    const topic_key_t *k = key;
    topic_key_t *copy = malloc(sizeof *copy + k->len);
    if (copy) {
        copy->len = k->len;
        memcpy(copy->bytes, k->bytes, k->len);
    }
    return copy;
}

static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

/* A lookup key on the stack; topics are at most 255 bytes (proto caps). */
typedef struct {
    topic_key_t key;
    uint8_t room[STRATA_PROTO_MAX_TOPIC];
} key_buf_t;

static const topic_key_t *s_key(key_buf_t *buf, const uint8_t *topic, size_t len)
{
    buf->key.len = (uint16_t)len;
    memcpy(buf->key.bytes, topic, len);
    return &buf->key;
}

/* L[t], or B for a topic not seen yet. */
uint64_t sub_last(strata_sub_t *self, const uint8_t *topic, size_t len)
{
    key_buf_t buf;
    const uint64_t *last = zhashx_lookup(self->last_seq, s_key(&buf, topic, len));
    return last ? *last : self->base_seq;
}

int sub_set_last(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t seq,
                 strata_error_t *err)
{
    key_buf_t buf;
    const topic_key_t *key = s_key(&buf, topic, len);
    uint64_t *last = zhashx_lookup(self->last_seq, key);
    if (last) {
        *last = seq;
        return 0;
    }
    last = malloc(sizeof *last);
    if (!last || zhashx_insert(self->last_seq, key, last) != 0) {
        free(last);
        return strata_error_set(err, STRATA_ENOMEM, "subscriber: out of memory");
    }
    *last = seq;
    return 0;
}

/* Everything up to seq is delivered: B and every L[t] move up to it. */
void sub_lift_all(strata_sub_t *self, uint64_t seq)
{
    if (self->base_seq < seq)
        self->base_seq = seq;
    for (uint64_t *last = zhashx_first(self->last_seq); last; last = zhashx_next(self->last_seq))
        if (*last < seq)
            *last = seq;
}

/* ---- small helpers ------------------------------------------------------- */

/* Does the subscription cover topic? With no prefixes: every topic not
 * beginning with '$' (the node's own). */
bool sub_subscribed(const strata_sub_t *self, const uint8_t *topic, size_t len)
{
    if (self->n_topics == 0)
        return len == 0 || topic[0] != '$';
    for (size_t i = 0; i < self->n_topics; i++) {
        size_t plen = strlen(self->topics[i]);
        if (len >= plen && memcmp(topic, self->topics[i], plen) == 0)
            return true;
    }
    return false;
}

/* The topic an entry is published under: its own, or "kv" when it has none. */
const uint8_t *sub_entry_topic(const strata_entry_t *e, size_t *len)
{
    if (e->topic_len) {
        *len = e->topic_len;
        return e->topic;
    }
    *len = sizeof NO_TOPIC - 1;
    return (const uint8_t *)NO_TOPIC;
}

/* ---- batches -------------------------------------------------------------- */

void sub_batch_release(batch_t *batch)
{
    zmsg_destroy(&batch->msg);
    strata_reply_clear(&batch->reply);
    batch->n_items = batch->next = 0;
    batch->from_replay = false;
}

static int s_batch_reserve(batch_t *batch, size_t n, strata_error_t *err)
{
    if (n <= batch->cap_items)
        return 0;
    item_t *items = realloc(batch->items, n * sizeof *items);
    if (!items)
        return strata_error_set(err, STRATA_ENOMEM, "subscriber: %zu entries", n);
    batch->items = items;
    batch->cap_items = n;
    return 0;
}

/* Decodes count whole WAL entries filling exactly len bytes into the batch's
 * items (not yet handed out: the caller filters them). what names the
 * source for messages. Seqs must rise strictly. */
int sub_decode_entries(batch_t *batch, const uint8_t *data, size_t len, uint32_t count,
                       const char *what, strata_error_t *err)
{
    batch->n_items = batch->next = 0;
    if ((uint64_t)count * strata_entry_size(0, 0, 0) > len)
        return strata_error_set(err, STRATA_EINVAL,
                                "%s: count %" PRIu32 " cannot fit in %zu bytes of entries", what,
                                count, len);
    int rc = s_batch_reserve(batch, count, err);
    if (rc)
        return rc;
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        item_t *item = &batch->items[i];
        size_t used = 0;
        strata_error_t entry_err;
        rc = strata_entry_decode(data + off, len - off, (uint32_t)len, &item->entry, &used,
                                 &entry_err);
        if (rc)
            return strata_error_set(err, rc, "%s: entry %" PRIu32 " of %" PRIu32 ": %s", what, i,
                                    count, entry_err.msg);
        if (i > 0 && item->entry.seq <= batch->items[i - 1].entry.seq)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: entry %" PRIu32 " has seq %" PRIu64 " after %" PRIu64,
                                    what, i, item->entry.seq, batch->items[i - 1].entry.seq);
        item->raw = data + off;
        item->raw_len = used;
        off += used;
    }
    if (off != len)
        return strata_error_set(err, STRATA_EINVAL, "%s: %" PRIu32 " entries use %zu of %zu bytes",
                                what, count, off, len);
    batch->n_items = count;
    return 0;
}

/* Keeps item i for delivery (items are compacted in place, in order). */
void sub_batch_keep(batch_t *batch, size_t *kept, size_t i)
{
    if (*kept != i)
        batch->items[*kept] = batch->items[i];
    (*kept)++;
}

/* The time floor of a from_time start: an entry committed before it is
 * not the subscriber's (it only matters when from_time lies past the
 * replay's end); the first entry at or after it clears it. */
bool sub_before_floor(strata_sub_t *self, const strata_entry_t *entry)
{
    if (self->time_floor_ns == 0)
        return false;
    if (entry->timestamp_ns < self->time_floor_ns)
        return true;
    self->time_floor_ns = 0;
    return false;
}

static bool s_batch_take(strata_sub_t *self, strata_entry_t *entry, const uint8_t **raw,
                         size_t *raw_len)
{
    batch_t *batch = &self->batch;
    if (batch->next >= batch->n_items)
        return false;
    const item_t *item = &batch->items[batch->next++];
    *entry = item->entry;
    if (raw)
        *raw = item->raw;
    if (raw_len)
        *raw_len = item->raw_len;
    self->stats.delivered++;
    if (batch->from_replay)
        self->stats.replayed++;
    if (self->durable)
        self->last_delivered = item->entry.seq;
    return true;
}

/* ---- the stream ------------------------------------------------------------ */

/* Frames and meta of one PUB message, checked (strata/pubframe.h); the
 * entries are decoded later. */
static int s_parse_pub(const strata_sub_t *self, zmsg_t *msg, pub_msg_t *out, strata_error_t *err)
{
    const char *ep = self->stream_endpoint;
    if (zmsg_size(msg) != 3)
        return strata_error_set(err, STRATA_EINVAL, "%s: message of %zu frames, expected 3", ep,
                                zmsg_size(msg));
    zframe_t *topic = zmsg_first(msg), *meta = zmsg_next(msg), *body = zmsg_next(msg);
    out->topic = zframe_data(topic);
    out->topic_len = zframe_size(topic);
    out->body = zframe_data(body);
    out->body_len = zframe_size(body);
    strata_pub_meta_t m;
    strata_error_t detail;
    int rc = strata_pub_meta_decode(out->topic, out->topic_len, zframe_data(meta),
                                    zframe_size(meta), &m, &detail);
    out->version = m.version;
    out->kind = m.kind;
    out->count = m.count;
    out->term = m.term;
    out->prev_seq = m.prev_seq;
    out->instance = m.instance;
    out->start_seq = m.start_seq;
    if (rc)
        return strata_error_set(err, rc, "%s: %s", ep, detail.msg);
    return 0;
}

/* Walks a heartbeat body: covered_seq, then n x (topic, last seq). With
 * visit NULL it only checks the layout. */
typedef int (*hb_visit_fn)(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t last,
                           strata_error_t *err);

typedef struct {
    strata_sub_t *self;
    hb_visit_fn visit;
    bool visit_failed; /* its error already says where */
} hb_walk_t;

static int s_heartbeat_visit(void *arg, const uint8_t *topic, size_t len, uint64_t last,
                             strata_error_t *err)
{
    hb_walk_t *walk = arg;
    int rc = walk->visit(walk->self, topic, len, last, err);
    walk->visit_failed = rc != 0;
    return rc;
}

static int s_heartbeat_walk(strata_sub_t *self, const pub_msg_t *m, uint64_t *covered,
                            uint32_t *n_topics, hb_visit_fn visit, strata_error_t *err)
{
    hb_walk_t walk = {.self = self, .visit = visit};
    strata_error_t detail;
    int rc = strata_pub_hb_decode(m->body, m->body_len, covered, n_topics,
                                  visit ? s_heartbeat_visit : NULL, &walk, &detail);
    if (rc && walk.visit_failed) {
        *err = detail;
        return rc;
    }
    if (rc)
        return strata_error_set(err, rc, "%s: %s", self->stream_endpoint, detail.msg);
    return 0;
}

/* Heartbeat visitor: the first subscribed topic whose last seq passes L[t]
 * starts a repair; the heartbeat is looked at again once it is done. */
static int s_heartbeat_gap(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t last,
                           strata_error_t *err)
{
    if (self->repair.active || !sub_subscribed(self, topic, len))
        return 0;
    uint64_t known = sub_last(self, topic, len);
    if (last <= known)
        return 0;
    self->stats.gaps++;
    sub_repair_start_topic(self, topic, len, known + 1, last);
    return 0;
}

static int s_on_heartbeat(strata_sub_t *self, zmsg_t **msg_p, const pub_msg_t *m,
                          strata_error_t *err)
{
    uint64_t covered = 0;
    uint32_t n_topics = 0;
    int rc = s_heartbeat_walk(self, m, &covered, &n_topics, s_heartbeat_gap, err);
    if (rc) {
        zmsg_destroy(msg_p);
        return rc;
    }
    if (self->repair.active) {
        self->postponed = *msg_p; /* looked at again once the repair is done */
        *msg_p = NULL;
        return 0;
    }
    /* Every topic sent by this instance is listed with its last seq and is
     * delivered up to it: so is everything up to covered_seq, when the
     * list is whole. A list of 256 may continue in the next heartbeat. */
    if (n_topics < STRATA_PUB_HB_MAX_TOPICS && self->base_seq >= self->start_seq - 1)
        sub_lift_all(self, covered);
    zmsg_destroy(msg_p);
    return 0;
}

/* Decodes an entries message into the batch and checks it whole: every
 * entry of the message's topic, the first after prev_seq. */
static int s_check_entries(strata_sub_t *self, const pub_msg_t *m, strata_error_t *err)
{
    char topic_text[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 8], what[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 64];
    strata_pub_topic_text(topic_text, sizeof topic_text, m->topic, m->topic_len);
    snprintf(what, sizeof what, "%s: topic '%s'", self->stream_endpoint, topic_text);
    batch_t *batch = &self->batch;
    int rc = sub_decode_entries(batch, m->body, m->body_len, m->count, what, err);
    for (size_t i = 0; rc == 0 && i < batch->n_items; i++) {
        const strata_entry_t *e = &batch->items[i].entry;
        size_t topic_len;
        const uint8_t *topic = sub_entry_topic(e, &topic_len);
        if (topic_len != m->topic_len || memcmp(topic, m->topic, m->topic_len) != 0)
            rc = strata_error_set(err, STRATA_EINVAL,
                                  "%s: entry %zu (seq %" PRIu64 ") is of another topic", what, i,
                                  e->seq);
        else if (i == 0 && e->seq <= m->prev_seq)
            rc = strata_error_set(err, STRATA_EINVAL,
                                  "%s: first seq %" PRIu64 " is not after prev_seq %" PRIu64, what,
                                  e->seq, m->prev_seq);
        else if (i > 0 && e->term < batch->items[i - 1].entry.term)
            rc = strata_error_set(err, STRATA_EINVAL,
                                  "%s: entry %zu (seq %" PRIu64 ") has term %" PRIu64
                                  " after term %" PRIu64,
                                  what, i, e->seq, e->term, batch->items[i - 1].entry.term);
    }
    /* Version 2 says the last entry's term; a meta that disagrees with the
     * entries it carries cannot be trusted about anything else either. */
    if (rc == 0 && m->version >= 2 && batch->items[batch->n_items - 1].entry.term != m->term)
        rc = strata_error_set(err, STRATA_EINVAL,
                              "%s: meta term %" PRIu64 ", but its last entry (seq %" PRIu64
                              ") has term %" PRIu64,
                              what, m->term, batch->items[batch->n_items - 1].entry.seq,
                              batch->items[batch->n_items - 1].entry.term);
    if (rc)
        batch->n_items = 0;
    return rc;
}

/* The gap rule for a checked entries message, whose entries are in the batch. */
static int s_on_entries(strata_sub_t *self, zmsg_t **msg_p, const pub_msg_t *m, strata_error_t *err)
{
    batch_t *batch = &self->batch;
    uint64_t known = sub_last(self, m->topic, m->topic_len);
    if (m->prev_seq > known) {
        /* Entries of this topic in (known, prev_seq] never arrived. */
        batch->n_items = 0;
        self->stats.gaps++;
        sub_repair_start_topic(self, m->topic, m->topic_len, known + 1, m->prev_seq);
        self->postponed = *msg_p;
        *msg_p = NULL;
        return 0;
    }
    size_t kept = 0;
    for (size_t i = 0; i < batch->n_items; i++) {
        if (batch->items[i].entry.seq <= known)
            self->stats.duplicates++;
        else if (!sub_before_floor(self, &batch->items[i].entry))
            sub_batch_keep(batch, &kept, i);
    }
    uint64_t last = batch->items[batch->n_items - 1].entry.seq;
    batch->n_items = kept;
    int rc = last > known ? sub_set_last(self, m->topic, m->topic_len, last, err) : 0;
    if (rc) {
        batch->n_items = 0;
        zmsg_destroy(msg_p);
        return rc;
    }
    batch->msg = *msg_p; /* the items point into it */
    *msg_p = NULL;
    return 0;
}

/* One PUB message, in arrival order: a new distributor instance first
 * repairs everything up to its start_seq - 1, then the gap rule. Takes
 * ownership of *msg_p. A message that fails a check is dropped and its
 * error returned (a gap it leaves is repaired later). */
static int s_on_stream(strata_sub_t *self, zmsg_t **msg_p, strata_error_t *err)
{
    pub_msg_t m;
    int rc = s_parse_pub(self, *msg_p, &m, err);
    if (rc == 0 && m.kind == STRATA_PUB_ENTRIES && !sub_subscribed(self, m.topic, m.topic_len)) {
        zmsg_destroy(msg_p); /* with no prefixes: a '$' topic, never ours */
        return 0;
    }
    /* Checked whole before it moves anything: a broken message is only dropped. */
    uint64_t covered;
    uint32_t n_listed;
    if (rc == 0)
        rc = m.kind == STRATA_PUB_ENTRIES
                 ? s_check_entries(self, &m, err)
                 : s_heartbeat_walk(self, &m, &covered, &n_listed, NULL, err);
    if (rc) {
        zmsg_destroy(msg_p);
        return rc;
    }
    if (m.term > self->term)
        self->term = m.term;
    if (m.instance != self->instance) {
        /* What the old instance sent and we did not see is unknowable from
         * the stream: replay every subscribed prefix up to where the new one starts. */
        self->instance = m.instance;
        self->start_seq = m.start_seq;
        if (m.start_seq - 1 > self->base_seq) {
            self->batch.n_items = 0;
            self->stats.gaps++;
            sub_repair_start_base(self, self->base_seq + 1, 0, m.start_seq - 1);
            self->postponed = *msg_p;
            *msg_p = NULL;
            return 0;
        }
    }
    if (m.kind == STRATA_PUB_HEARTBEAT)
        return s_on_heartbeat(self, msg_p, &m, err);
    return s_on_entries(self, msg_p, &m, err);
}

/* One message from the SUB socket. NULL when none arrived by the deadline
 * (*rc 0) or on error (*rc set). */
static zmsg_t *s_stream_recv(strata_sub_t *self, int64_t deadline, int *rc, strata_error_t *err)
{
    *rc = 0;
    for (;;) {
        long wait_ms = client_remaining_ms(deadline);
        bool failover_due = false, failover_check = false;
        if (self->n_nodes > 1) {
            /* With other nodes to go to, a silent stream is not waited on
             * past failover_ms, whatever the caller's timeout. Silence is
             * an empty socket: a caller that comes back late finds what
             * arrived meanwhile queued, and reads it first. */
            long left = (long)(self->last_stream_ms + self->failover_ms - client_mono_ms());
            if (left <= 0) {
                failover_due = true;
                wait_ms = 0;
            } else if (wait_ms < 0 || wait_ms > left) {
                failover_check = true;
                wait_ms = left;
            }
        }
        int ready = sub_poll(self->stream_handle, self->stream_endpoint, wait_ms, err);
        if (ready < 0) {
            *rc = ready;
            return NULL;
        }
        if (ready == 0 && failover_due) {
            self->fail_over = true;
            return NULL;
        }
        if (ready == 0) {
            if (!failover_check && client_remaining_ms(deadline) == 0)
                return NULL;
            continue; /* a signal that is not an interrupt, or the failover check */
        }
        zmsg_t *msg = zmsg_recv(self->stream);
        if (msg) {
            self->last_stream_ms = client_mono_ms();
            return msg;
        }
        if (zsys_interrupted) {
            *rc = strata_error_set(err, STRATA_ECLOSED, "interrupted");
            return NULL;
        }
    }
}

/* The next stream message to look at: the one a repair postponed, those
 * that came before the first heartbeat, then the socket. */
static zmsg_t *s_stream_message(strata_sub_t *self, int64_t deadline, int *rc, strata_error_t *err)
{
    *rc = 0;
    if (self->postponed) {
        zmsg_t *msg = self->postponed;
        self->postponed = NULL;
        return msg;
    }
    if (zlist_size(self->early))
        return zlist_pop(self->early);
    return s_stream_recv(self, deadline, rc, err);
}

static int s_open_stream(strata_sub_t *self, strata_error_t *err);
static int s_open_history(strata_sub_t *self, strata_error_t *err);

/* Moves to the next node: new sockets, and nothing kept that came from the
 * old node but what its seqs taught (B and every L[t]). A repair in
 * progress is dropped rather than finished elsewhere, because the next
 * node may not have reached its end yet and a replay stops at what a node
 * has published; the next node's first heartbeat and seqs find the same
 * gap again, up to what that node has. */
static int s_switch_node(strata_sub_t *self, strata_error_t *err)
{
    self->fail_over = false;
    zsock_destroy(&self->stream);
    zsock_destroy(&self->history);
    self->stream_handle = self->history_handle = NULL;
    zmsg_destroy(&self->postponed);
    zmsg_t *msg;
    while ((msg = zlist_pop(self->early)))
        zmsg_destroy(&msg);
    self->repair.active = false;
    /* No instance matches 0: the next node's first message is a new one. */
    self->instance = 0;
    self->node = (self->node + 1) % self->n_nodes;
    self->stream_endpoint = self->node_streams[self->node];
    self->history_endpoint = self->node_histories[self->node];
    self->last_stream_ms = client_mono_ms();
    int rc = s_open_history(self, err);
    if (rc == 0)
        rc = s_open_stream(self, err);
    return rc;
}

static int s_next_stream(strata_sub_t *self, int timeout_ms, strata_entry_t *entry,
                         const uint8_t **raw, size_t *raw_len, strata_error_t *err)
{
    int64_t deadline = client_deadline_ms(timeout_ms);
    for (;;) {
        if (s_batch_take(self, entry, raw, raw_len))
            return 0;
        sub_batch_release(&self->batch);
        int rc;
        if (self->fail_over) {
            if ((rc = s_switch_node(self, err)))
                return rc;
            self->stats.failovers++;
            continue;
        }
        if (self->repair.active) {
            rc = sub_repair_step(self, err);
            if (rc == STRATA_ETIMEDOUT && self->n_nodes > 1) {
                /* The node stopped answering mid-repair: another has it. */
                self->fail_over = true;
                continue;
            }
            if (rc)
                return rc;
            continue;
        }
        zmsg_t *msg = s_stream_message(self, deadline, &rc, err);
        if (!msg && self->fail_over)
            continue;
        if (!msg)
            return rc ? rc
                      : strata_error_set(err, STRATA_ETIMEDOUT, "%s: nothing within %d ms",
                                         self->stream_endpoint, timeout_ms);
        if ((rc = s_on_stream(self, &msg, err)))
            return rc;
    }
}

/* Waits for the first heartbeat, keeping what comes before it (and it)
 * for next(), then sets up the Clone hand-off: B at H (its covered_seq), or
 * a replay from from_seq/from_time up to H that leaves B and every L[t] there. */
static int s_stream_start(strata_sub_t *self, strata_error_t *err)
{
    int64_t deadline = client_deadline_ms(self->timeout_ms);
    size_t tried = 1;
    pub_msg_t hb;
    self->last_stream_ms = client_mono_ms();
    for (;;) {
        int rc = 0;
        zmsg_t *msg = s_stream_recv(self, deadline, &rc, err);
        if (!msg && self->fail_over && tried < self->n_nodes) {
            /* This node is silent: open on the next one. */
            if ((rc = s_switch_node(self, err)))
                return rc;
            tried++;
            continue;
        }
        if (!msg && self->fail_over)
            return strata_error_set(err, STRATA_ETIMEDOUT,
                                    "no heartbeat from any of the %zu nodes within %d ms each "
                                    "(last tried %s; are the distributors up?)",
                                    self->n_nodes, self->failover_ms, self->stream_endpoint);
        if (!msg)
            return rc ? rc
                      : strata_error_set(err, STRATA_ETIMEDOUT,
                                         "%s: no heartbeat within %d ms (is the distributor up?)",
                                         self->stream_endpoint, self->timeout_ms);
        strata_error_t parse_err;
        bool is_hb =
            s_parse_pub(self, msg, &hb, &parse_err) == 0 && hb.kind == STRATA_PUB_HEARTBEAT;
        if (zlist_append(self->early, msg) != 0) {
            zmsg_destroy(&msg);
            return strata_error_set(err, STRATA_ENOMEM, "subscriber: out of memory");
        }
        if (is_hb)
            break;
    }
    uint64_t covered = 0;
    uint32_t n_topics = 0;
    int rc = s_heartbeat_walk(self, &hb, &covered, &n_topics, NULL, err);
    if (rc)
        return rc;
    self->instance = hb.instance;
    self->start_seq = hb.start_seq;
    self->term = hb.term;
    /* Where the stream stands: a fresh instance may not have covered what
     * it did not publish, but everything before its start_seq is history. */
    uint64_t stands = covered > hb.start_seq - 1 ? covered : hb.start_seq - 1;
    if (self->from_seq) {
        self->base_seq = self->from_seq - 1;
        if (self->from_seq <= stands)
            sub_repair_start_base(self, self->from_seq, 0, stands);
    } else if (self->from_time_ns) {
        self->time_floor_ns = self->from_time_ns;
        if (stands > 0)
            sub_repair_start_base(self, 0, self->from_time_ns, stands);
    } else {
        self->base_seq = stands;
    }
    /* The first page now, so that a start the node cannot serve fails here. */
    if (self->repair.active && (rc = sub_repair_step(self, err)))
        return rc;
    return 0;
}

/* ---- durable sessions ---------------------------------------------------- */

static int s_send_ack(strata_sub_t *self, uint64_t seq, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_ACK,
                            .request_id = self->next_request_id++,
                            .name = self->durable,
                            .seq = seq};
    int rc = sub_history_send(self, &req, err);
    if (rc == 0)
        self->last_ack_ms = client_mono_ms();
    return rc;
}

/* Opens (or reopens) the session. The offset it reports is where entries
 * start; what this process delivered beyond it stays dropped as
 * duplicates, and an ack the old session lost is sent again. */
static int s_subscribe(strata_sub_t *self, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_SUBSCRIBE,
                            .request_id = self->next_request_id++,
                            .name = self->durable,
                            .topics = (const char *const *)self->topics,
                            .n_topics = self->n_topics,
                            .window = self->window,
                            .seq = self->from_seq};
    bool first = self->session_id == 0;
    self->session_id = req.request_id;
    strata_reply_t reply;
    int rc = sub_history_call(self, &req, &reply, err);
    if (rc == 0) {
        self->acked_seq = reply.acked_seq;
        if (first || self->last_delivered < reply.acked_seq)
            self->last_delivered = reply.acked_seq;
        if (self->durable_seq < reply.acked_seq)
            self->durable_seq = reply.acked_seq;
        self->resubscribe = false;
        self->last_ack_ms = client_mono_ms();
        if (self->last_ack_seq > reply.acked_seq)
            rc = s_send_ack(self, self->last_ack_seq, err);
        else
            self->last_ack_seq = reply.acked_seq;
    }
    strata_reply_clear(&reply);
    return rc;
}

/* A DeliverReply of the session: checked whole (count, bytes, first and
 * last seq), then what was already delivered is dropped. */
static int s_on_deliver(strata_sub_t *self, strata_reply_t *reply, strata_error_t *err)
{
    batch_t *batch = &self->batch;
    batch->reply = *reply;
    memset(reply, 0, sizeof *reply);
    const strata_reply_t *d = &batch->reply;
    char what[STRATA_PROTO_MAX_NAME + 256];
    snprintf(what, sizeof what, "%s: delivery to '%s'", self->history_endpoint, self->durable);
    int rc = d->count ? 0 : strata_error_set(err, STRATA_EINVAL, "%s: count 0", what);
    if (rc == 0)
        rc = sub_decode_entries(batch, d->entries_blob.data, d->entries_blob.len, d->count, what,
                                err);
    if (rc == 0 && (batch->items[0].entry.seq != d->first_seq ||
                    batch->items[batch->n_items - 1].entry.seq != d->last_seq))
        rc = strata_error_set(
            err, STRATA_EINVAL,
            "%s: entries run %" PRIu64 "..%" PRIu64 ", the reply says %" PRIu64 "..%" PRIu64, what,
            batch->items[0].entry.seq, batch->items[batch->n_items - 1].entry.seq, d->first_seq,
            d->last_seq);
    if (rc) {
        sub_batch_release(batch);
        return rc;
    }
    size_t kept = 0;
    bool acked_again = false;
    for (size_t i = 0; i < batch->n_items; i++) {
        uint64_t seq = batch->items[i].entry.seq;
        if (seq > self->last_delivered) {
            sub_batch_keep(batch, &kept, i);
            continue;
        }
        self->stats.duplicates++;
        acked_again = acked_again || seq <= self->last_ack_seq;
    }
    batch->n_items = kept;
    /* Resent entries the caller has acked already (the ack went to a session
     * that ended): nobody else will ack them, so say it again now rather
     * than at the next keepalive. */
    return acked_again ? s_send_ack(self, self->last_ack_seq, err) : 0;
}

static int s_next_durable(strata_sub_t *self, int timeout_ms, strata_entry_t *entry,
                          const uint8_t **raw, size_t *raw_len, strata_error_t *err)
{
    int64_t deadline = client_deadline_ms(timeout_ms);
    for (;;) {
        if (s_batch_take(self, entry, raw, raw_len))
            return 0;
        sub_batch_release(&self->batch);
        int rc;
        if (self->resubscribe) {
            if ((rc = s_subscribe(self, err)))
                return rc;
            self->stats.resubscribes++;
        }
        /* A keepalive: the same ack again, so an idle session is not ended. */
        int64_t keepalive_in = self->last_ack_ms + KEEPALIVE_MS - client_mono_ms();
        if (keepalive_in <= 0) {
            if ((rc = s_send_ack(self, self->last_ack_seq, err)))
                return rc;
            keepalive_in = KEEPALIVE_MS;
        }
        strata_reply_t reply;
        int decode_rc = 0;
        if (sub_history_read(self, &reply, &decode_rc, err)) {
            if (decode_rc) {
                strata_reply_clear(&reply);
                return decode_rc;
            }
            if (reply.op == STRATA_OP_DELIVER && reply.status == 0 &&
                reply.request_id == self->session_id)
                rc = s_on_deliver(self, &reply, err);
            else
                rc = sub_on_async_reply(self, &reply, err);
            strata_reply_clear(&reply);
            if (rc)
                return rc;
            continue;
        }
        long wait_ms = client_remaining_ms(deadline);
        if (wait_ms == 0)
            return strata_error_set(err, STRATA_ETIMEDOUT, "%s: nothing for '%s' within %d ms",
                                    self->history_endpoint, self->durable, timeout_ms);
        if (wait_ms < 0 || wait_ms > keepalive_in)
            wait_ms = (long)keepalive_in;
        if ((rc = sub_poll(self->history_handle, self->history_endpoint, wait_ms, err)) < 0)
            return rc;
    }
}

/* ---- life cycle ------------------------------------------------------------ */

static int s_check_options(const strata_sub_options_t *opts, strata_error_t *err)
{
    if (!opts)
        return strata_error_set(err, STRATA_EINVAL, "subscriber: no options");
    if (opts->timeout_ms < 0)
        return strata_error_set(err, STRATA_EINVAL, "timeout_ms: %d, must be >= 0",
                                opts->timeout_ms);
    if (opts->n_topics > STRATA_PROTO_MAX_TOPICS)
        return strata_error_set(err, STRATA_EINVAL, "topics: %zu, at most %u", opts->n_topics,
                                STRATA_PROTO_MAX_TOPICS);
    if (opts->n_topics && !opts->topics)
        return strata_error_set(err, STRATA_EINVAL, "topics: NULL with n_topics %zu",
                                opts->n_topics);
    for (size_t i = 0; i < opts->n_topics; i++) {
        size_t len = opts->topics[i] ? strlen(opts->topics[i]) : 0;
        if (len == 0 || len > STRATA_PROTO_MAX_TOPIC)
            return strata_error_set(err, STRATA_EINVAL,
                                    "topic %zu: %zu bytes, must be 1..%u (no topics: all)", i, len,
                                    STRATA_PROTO_MAX_TOPIC);
    }
    if (opts->failover_ms < 0)
        return strata_error_set(err, STRATA_EINVAL, "failover_ms: %d, must be >= 0",
                                opts->failover_ms);
    if (opts->nodes || opts->n_nodes) {
        if (!opts->nodes || opts->n_nodes == 0 || opts->n_nodes > STRATA_SUB_MAX_NODES)
            return strata_error_set(err, STRATA_EINVAL, "nodes: %zu (%s), must be 1..%u",
                                    opts->n_nodes, opts->nodes ? "given" : "NULL",
                                    STRATA_SUB_MAX_NODES);
        if (opts->stream_endpoint || opts->history_endpoint)
            return strata_error_set(err, STRATA_EINVAL,
                                    "nodes: given with stream_endpoint or history_endpoint too; "
                                    "put every endpoint in nodes");
        if (opts->durable)
            return strata_error_set(err, STRATA_EINVAL,
                                    "nodes: a durable session is held by one node's distributor; "
                                    "give its endpoints, not nodes");
        for (size_t i = 0; i < opts->n_nodes; i++)
            if (!opts->nodes[i].stream_endpoint || !*opts->nodes[i].stream_endpoint ||
                !opts->nodes[i].history_endpoint || !*opts->nodes[i].history_endpoint)
                return strata_error_set(err, STRATA_EINVAL,
                                        "node %zu: needs both stream_endpoint and "
                                        "history_endpoint",
                                        i);
    }
    if (!opts->curve_server_key != !opts->curve_cert)
        return strata_error_set(err, STRATA_EINVAL,
                                "curve: needs both curve_server_key and curve_cert");
    if (opts->durable) {
        size_t len = strlen(opts->durable);
        if (len == 0 || len > STRATA_PROTO_MAX_NAME)
            return strata_error_set(err, STRATA_EINVAL, "durable name: %zu bytes, must be 1..%u",
                                    len, STRATA_PROTO_MAX_NAME);
        if (opts->from_time_ns && !opts->from_seq)
            return strata_error_set(err, STRATA_EINVAL,
                                    "durable sessions start from a seq, not a time");
    }
    return 0;
}

static int s_copy_options(strata_sub_t *self, const strata_sub_options_t *opts)
{
    size_t n = opts->n_nodes ? opts->n_nodes : 1;
    self->node_streams = calloc(n, sizeof *self->node_streams);
    self->node_histories = calloc(n, sizeof *self->node_histories);
    if (!self->node_streams || !self->node_histories)
        return STRATA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *stream = opts->n_nodes           ? opts->nodes[i].stream_endpoint
                             : opts->stream_endpoint ? opts->stream_endpoint
                                                     : STRATA_SUB_DEFAULT_LIVE;
        const char *history = opts->n_nodes            ? opts->nodes[i].history_endpoint
                              : opts->history_endpoint ? opts->history_endpoint
                                                       : STRATA_SUB_DEFAULT_HISTORY;
        self->node_streams[i] = strdup(stream);
        self->node_histories[i] = strdup(history);
        self->n_nodes++;
        if (!self->node_streams[i] || !self->node_histories[i])
            return STRATA_ENOMEM;
    }
    self->stream_endpoint = self->node_streams[0];
    self->history_endpoint = self->node_histories[0];
    self->failover_ms = opts->failover_ms ? opts->failover_ms : DEFAULT_FAILOVER_MS;
    if (opts->durable && !(self->durable = strdup(opts->durable)))
        return STRATA_ENOMEM;
    self->topics = calloc(opts->n_topics + 1, sizeof *self->topics);
    if (!self->topics)
        return STRATA_ENOMEM;
    for (size_t i = 0; i < opts->n_topics; i++) {
        if (!(self->topics[i] = strdup(opts->topics[i])))
            return STRATA_ENOMEM;
        self->n_topics++;
    }
    self->from_seq = opts->from_seq;
    self->from_time_ns = opts->from_seq ? 0 : opts->from_time_ns;
    self->window = opts->window;
    self->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    if ((opts->curve_server_key && !(self->curve_server_key = strdup(opts->curve_server_key))) ||
        (opts->curve_cert && !(self->curve_cert = strdup(opts->curve_cert))))
        return STRATA_ENOMEM;
    return 0;
}

/* The SUB: topics first, "$hb" last, so the heartbeat its subscription
 * triggers is sent after every topic subscription is in place. */
static int s_open_stream(strata_sub_t *self, strata_error_t *err)
{
    self->stream = zsock_new(ZMQ_SUB);
    if (!self->stream)
        return strata_error_set(err, STRATA_ENOMEM, "subscriber: cannot create the SUB socket: %s",
                                zmq_strerror(zmq_errno()));
    self->stream_handle = zsock_resolve(self->stream);
    zsock_set_linger(self->stream, 0);
    zsock_set_maxmsgsize(self->stream, SUB_MAX_MESSAGE);
    zsock_set_rcvhwm(self->stream, SUB_RCVHWM);
    if (self->n_topics == 0)
        zsock_set_subscribe(self->stream, "");
    for (size_t i = 0; i < self->n_topics; i++)
        zsock_set_subscribe(self->stream, self->topics[i]);
    zsock_set_subscribe(self->stream, STRATA_PUB_HB_TOPIC);
    int rc = client_curve_apply(self->stream, self->curve_server_key, self->curve_cert, err);
    if (rc)
        return rc;
    if (zsock_connect(self->stream, "%s", self->stream_endpoint) != 0)
        return strata_error_set(err, STRATA_EINVAL, "stream endpoint '%s': %s",
                                self->stream_endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

static int s_open_history(strata_sub_t *self, strata_error_t *err)
{
    self->history = zsock_new(ZMQ_DEALER);
    if (!self->history)
        return strata_error_set(err, STRATA_ENOMEM,
                                "subscriber: cannot create the DEALER socket: %s",
                                zmq_strerror(zmq_errno()));
    self->history_handle = zsock_resolve(self->history);
    zsock_set_linger(self->history, 0);
    zsock_set_maxmsgsize(self->history, SUB_MAX_MESSAGE);
    zsock_set_sndhwm(self->history, HISTORY_HWM);
    zsock_set_rcvhwm(self->history, HISTORY_HWM);
    int rc = client_curve_apply(self->history, self->curve_server_key, self->curve_cert, err);
    if (rc)
        return rc;
    if (zsock_connect(self->history, "%s", self->history_endpoint) != 0)
        return strata_error_set(err, STRATA_EINVAL, "history endpoint '%s': %s",
                                self->history_endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int strata_sub_open(const strata_sub_options_t *opts, strata_sub_t **sub_p, strata_error_t *err)
{
    *sub_p = NULL;
    int rc = s_check_options(opts, err);
    if (rc)
        return rc;
    strata_sub_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "subscriber: out of memory");
    self->next_request_id = 1;
    client_zsys_init_once();
    self->last_seq = zhashx_new();
    self->early = zlist_new();
    if (!self->last_seq || !self->early || s_copy_options(self, opts) != 0) {
        strata_sub_close(&self);
        return strata_error_set(err, STRATA_ENOMEM, "subscriber: out of memory");
    }
    zhashx_set_key_hasher(self->last_seq, s_key_hash);
    zhashx_set_key_comparator(self->last_seq, s_key_compare);
    zhashx_set_key_duplicator(self->last_seq, s_key_dup);
    zhashx_set_key_destructor(self->last_seq, s_free_item);
    zhashx_set_destructor(self->last_seq, s_free_item);
    rc = s_open_history(self, err);
    if (rc == 0 && !self->durable)
        rc = s_open_stream(self, err);
    if (rc == 0)
        rc = self->durable ? s_subscribe(self, err) : s_stream_start(self, err);
    if (rc) {
        strata_sub_close(&self);
        return rc;
    }
    *sub_p = self;
    return 0;
}

void strata_sub_close(strata_sub_t **sub_p)
{
    strata_sub_t *self = sub_p ? *sub_p : NULL;
    if (!self)
        return;
    sub_batch_release(&self->batch);
    free(self->batch.items);
    zmsg_destroy(&self->postponed);
    if (self->early) {
        zmsg_t *msg;
        while ((msg = zlist_pop(self->early)))
            zmsg_destroy(&msg);
        zlist_destroy(&self->early);
    }
    zhashx_destroy(&self->last_seq);
    zsock_destroy(&self->stream);
    zsock_destroy(&self->history);
    for (size_t i = 0; i < self->n_topics; i++)
        free(self->topics[i]);
    free(self->topics);
    free(self->durable);
    for (size_t i = 0; i < self->n_nodes; i++) {
        free(self->node_streams[i]);
        free(self->node_histories[i]);
    }
    free(self->node_streams);
    free(self->node_histories);
    free(self->curve_server_key);
    free(self->curve_cert);
    free(self);
    *sub_p = NULL;
}

/* ---- the API ----------------------------------------------------------------- */

int strata_sub_next(strata_sub_t *self, int timeout_ms, strata_entry_t *entry, const uint8_t **raw,
                    size_t *raw_len, strata_error_t *err)
{
    if (self->durable)
        return s_next_durable(self, timeout_ms, entry, raw, raw_len, err);
    return s_next_stream(self, timeout_ms, entry, raw, raw_len, err);
}

int strata_sub_ack(strata_sub_t *self, uint64_t seq, strata_error_t *err)
{
    if (!self->durable)
        return strata_error_set(err, STRATA_EINVAL, "ack: not a durable subscription");
    if (seq > self->last_delivered)
        return strata_error_set(err, STRATA_EINVAL,
                                "ack %" PRIu64 ": past the last delivered seq %" PRIu64, seq,
                                self->last_delivered);
    if (seq < self->last_ack_seq)
        return 0; /* cumulative: a later ack already covers it */
    int rc = s_send_ack(self, seq, err);
    if (rc == 0)
        self->last_ack_seq = seq;
    return rc;
}

uint64_t strata_sub_acked_seq(const strata_sub_t *self)
{
    return self->acked_seq;
}

uint64_t strata_sub_durable_seq(const strata_sub_t *self)
{
    return self->durable_seq;
}

void strata_sub_stats(const strata_sub_t *self, strata_sub_stats_t *stats)
{
    *stats = self->stats;
}

size_t strata_sub_node(const strata_sub_t *self)
{
    return self->node;
}

uint64_t strata_sub_term(const strata_sub_t *self)
{
    return self->term;
}
