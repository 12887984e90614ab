/* strata-distributor's main thread: the history ROUTER (paged replay from
 * the WAL, durable sessions with acks stored through the writer, the
 * subscriber list, stats) and the metrics it reports (proto/DISTRIBUTION.md). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "distributor.h"
#include "metrics.h"
#include "log.h"
#include "node.h"
#include "router.h"

#define OWNER_KEY_LEN 40 /* a CURVE public key in Z85 */

/* ---- topic filters ------------------------------------------------------- */

/* proto/DISTRIBUTION.md: prefixes; none means every topic not beginning with '$';
 * a '$' topic only for a prefix that itself starts with '$'. An entry with
 * no topic is matched as NO_TOPIC, the topic the streams publish it under,
 * so a prefix means the same on a stream, in a replay and in a session. */
bool topic_matches(const uint8_t *topic, size_t len, char *const *prefixes, size_t n)
{
    if (len == 0) {
        topic = (const uint8_t *)NO_TOPIC;
        len = sizeof NO_TOPIC - 1;
    }
    bool sys = topic[0] == '$';
    if (n == 0)
        return !sys;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(prefixes[i]);
        if (sys && (pl == 0 || prefixes[i][0] != '$'))
            continue;
        if (pl <= len && !memcmp(topic, prefixes[i], pl))
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

/* ---- durable subscriptions ------------------------------------------------- */

struct sub {
    char name[STRATA_PROTO_MAX_NAME + 1];
    char **topics;
    size_t n_topics;
    uint64_t stored; /* the offset in the engine */
    uint64_t acked;  /* the highest ack received; stored catches up */
    bool dirty;
    uint64_t stored_ns;
    uint64_t seen_wall_ns; /* last subscribe, ack or stored offset: for expiry */
    /* The CURVE key that created the name (or first used it with CURVE
     * on); empty: none, and any client may use it. */
    char owner[OWNER_KEY_LEN + 1];

    /* the session, when connected */
    bool connected;
    zframe_t *identity;
    bool delimited;
    uint64_t request_id;
    uint32_t window;
    strata_wal_cursor_t *cursor;
    uint64_t next_seq;            /* the cursor's position */
    uint64_t *fifo_seq, *fifo_ts; /* sent and not acked, in order */
    uint32_t *fifo_bytes;         /* their encoded sizes */
    size_t fifo_head, fifo_len, fifo_cap;
    uint64_t unacked_bytes; /* the sum of fifo_bytes */
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
    free(s->fifo_bytes);
    s->fifo_seq = s->fifo_ts = NULL;
    s->fifo_bytes = NULL;
    s->fifo_head = s->fifo_len = s->fifo_cap = 0;
    s->unacked_bytes = 0;
    s->n_ack_ids = 0;
    s->connected = false;
}

void sub_destroy(void **item)
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

/* Offset record: version 1, acked u64, update time u64, topics; version 2
 * adds the owner's key (u8 length, then the Z85 text). A name without an
 * owner is still written as version 1, so those records stay what older
 * builds read. */
static size_t offset_encode(const sub_t *s, uint8_t *out, size_t cap)
{
    size_t owner_len = strlen(s->owner);
    size_t need = 1 + 8 + 8 + 2 + (owner_len ? 1 + owner_len : 0);
    for (size_t i = 0; i < s->n_topics; i++)
        need += 2 + strlen(s->topics[i]);
    if (need > cap)
        return 0;
    out[0] = owner_len ? 2 : 1;
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
    if (owner_len) {
        out[off] = (uint8_t)owner_len;
        memcpy(out + off + 1, s->owner, owner_len);
        off += 1 + owner_len;
    }
    return off;
}

static int offset_decode(const uint8_t *v, size_t len, sub_t *s, strata_error_t *err)
{
    if (len < 19 || (v[0] != 1 && v[0] != 2))
        return strata_error_set(err, STRATA_ECORRUPT, "subscriber %s: offset record version %u",
                                s->name, len ? v[0] : 0);
    s->stored = s->acked = get_le64(v + 1);
    s->stored_ns = get_le64(v + 9);
    s->seen_wall_ns = s->stored_ns;
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
    char owner[OWNER_KEY_LEN + 1] = "";
    if (v[0] == 2) {
        size_t ol = off < len ? v[off] : SIZE_MAX;
        if ((ol != 0 && ol != OWNER_KEY_LEN) || off + 1 + ol > len) {
            strv_free(topics, n);
            return strata_error_set(err, STRATA_ECORRUPT, "subscriber %s: owner key at offset %zu",
                                    s->name, off);
        }
        memcpy(owner, v + off + 1, ol);
        owner[ol] = '\0';
    }
    strv_free(s->topics, s->n_topics);
    s->topics = topics;
    s->n_topics = n;
    memcpy(s->owner, owner, sizeof owner);
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

/* The engine key of a durable name's stored offset, into key (room for
 * SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME bytes); returns its length. */
static size_t sub_key(const char *name, uint8_t *key)
{
    size_t nl = strlen(name);
    memcpy(key, SUB_KEY_PREFIX, SUB_KEY_PREFIX_LEN);
    memcpy(key + SUB_KEY_PREFIX_LEN, name, nl);
    return SUB_KEY_PREFIX_LEN + nl;
}

/* name's stored offset record through the writer (ENOTFOUND: none); any
 * other failure drops the connection. */
static int offset_get(dist_t *d, const char *name, void **value, size_t *value_len,
                      strata_error_t *err)
{
    uint8_t key[SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME];
    size_t len = sub_key(name, key);
    int rc = writer_connect(d, err);
    if (rc == 0)
        rc = strata_client_get(d->writer, key, len, value, value_len, err);
    if (rc && rc != STRATA_ENOTFOUND)
        writer_reset(d);
    return rc;
}

/* Deletes name's stored offset record, synced; a failure drops the
 * connection. */
static int offset_delete(dist_t *d, const char *name, strata_error_t *err)
{
    uint8_t key[SUB_KEY_PREFIX_LEN + STRATA_PROTO_MAX_NAME];
    size_t len = sub_key(name, key);
    int rc = writer_connect(d, err);
    if (rc == 0)
        rc = strata_client_delete(d->writer, STRATA_SYNC, key, len, NULL, err);
    if (rc)
        writer_reset(d);
    return rc;
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
void offsets_flush(dist_t *d)
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
    size_t vcap = 19 + STRATA_PROTO_MAX_TOPICS * (2 + STRATA_PROTO_MAX_TOPIC) + 1 + OWNER_KEY_LEN;
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
        size_t kl = sub_key(s->name, k);
        size_t vl = offset_encode(s, values + i * vcap, vcap);
        ops[i] = (strata_batch_op_t){
            .kind = STRATA_BATCH_PUT, .key = {k, kl}, .value = {values + i * vcap, vl}};
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
            which[j]->seen_wall_ns = wall_ns();
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
    if (rc && svc_episode_failed(&d->store_failing, rc))
        log_warning("event=offset_store_failed subscribers=%zu error=\"%s\"", n,
                    rc == STRATA_ENOMEM ? "out of memory" : err.msg);
    uint64_t failures = rc ? 0 : svc_episode_cleared(&d->store_failing);
    if (failures)
        log_info("event=offset_store_recovered subscribers=%zu failures=%" PRIu64, n, failures);
    free(ops);
    free(keys);
    free(values);
    free(which);
}

static int fifo_push(sub_t *s, uint64_t seq, uint64_t ts, uint32_t bytes)
{
    if (s->fifo_len == s->fifo_cap) {
        size_t cap = s->fifo_cap ? s->fifo_cap * 2 : 64;
        uint64_t *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
        uint32_t *c = malloc(cap * sizeof *c);
        if (!a || !b || !c) {
            free(a);
            free(b);
            free(c);
            return STRATA_ENOMEM;
        }
        for (size_t i = 0; i < s->fifo_len; i++) {
            a[i] = s->fifo_seq[(s->fifo_head + i) % s->fifo_cap];
            b[i] = s->fifo_ts[(s->fifo_head + i) % s->fifo_cap];
            c[i] = s->fifo_bytes[(s->fifo_head + i) % s->fifo_cap];
        }
        free(s->fifo_seq);
        free(s->fifo_ts);
        free(s->fifo_bytes);
        s->fifo_seq = a;
        s->fifo_ts = b;
        s->fifo_bytes = c;
        s->fifo_head = 0;
        s->fifo_cap = cap;
    }
    size_t at = (s->fifo_head + s->fifo_len) % s->fifo_cap;
    s->fifo_seq[at] = seq;
    s->fifo_ts[at] = ts;
    s->fifo_bytes[at] = bytes;
    s->fifo_len++;
    s->unacked_bytes += bytes;
    return 0;
}

/* Whether the session may be sent more: within its window in entries and
 * within the node's cap on unacked bytes. */
static bool session_has_room(const dist_t *d, const sub_t *s)
{
    return s->fifo_len < s->window && s->unacked_bytes < d->max_unacked_mb << 20;
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
    s->unacked_bytes = 0; /* what was sent is sent again from seq */
    return 0;
}

/* Sends what the window allows, in DELIVER messages of a few hundred. */
static void session_pump(dist_t *d, sub_t *s)
{
    uint64_t limit = atomic_load(&d->covered);
    uint8_t *blob = NULL;
    size_t len = 0, cap = 0;
    while (s->connected && session_has_room(d, s) && s->next_seq <= limit) {
        uint32_t count = 0;
        uint64_t first = 0, last = 0;
        len = 0;
        while (count < DELIVER_MAX_ENTRIES && len < PAGE_DEFAULT_BYTES && session_has_room(d, s)) {
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
            if (fifo_push(s, e.seq, e.timestamp_ns, (uint32_t)raw_len) != 0) {
                send_error_to(d, s->identity, s->delimited, s->request_id, STRATA_ENOMEM,
                              "session %s: out of memory; subscribe again", s->name);
                log_warning("event=session_failed name=%s error=\"out of memory\"", s->name);
                session_end(s);
                free(blob);
                return;
            }
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

/* key: the sender's CURVE key, NULL with CURVE off. Without CURVE there
 * is no key to compare, so an owner stored while it was on is kept but
 * not enforced until it is on again. */
static bool owned_by_other(const sub_t *s, const char *key)
{
    return key && s->owner[0] && strcmp(s->owner, key) != 0;
}

static void handle_subscribe(dist_t *d, zframe_t *identity, bool delimited,
                             const strata_request_t *req, const char *client_key)
{
    strata_error_t err;
    strata_error_clear(&err);
    if (!req->name || !*req->name)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                             "subscribe.name: empty");
    if (req->window > d->max_window)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                             "subscribe.window: %u, cap %" PRIu64 " (distributor/max_window)",
                             req->window, d->max_window);
    uint64_t published = atomic_load(&d->covered);
    int rc = writer_connect(d, &err);
    if (rc)
        return send_error_to(d, identity, delimited, req->request_id, rc, "%s", err.msg);
    sub_t *s = zhashx_lookup(d->subs, req->name);
    bool fresh = false;
    if (!s || (!s->connected && !s->dirty)) {
        /* Read the stored offset: the engine is the truth across restarts. */
        void *value = NULL;
        size_t value_len = 0;
        rc = offset_get(d, req->name, &value, &value_len, &err);
        if (rc && rc != STRATA_ENOTFOUND)
            return send_error_to(d, identity, delimited, req->request_id, rc,
                                 "reading the offset of %s: %s", req->name, err.msg);
        if (!s && zhashx_size(d->subs) >= d->max_sessions) {
            free(value);
            return send_error_to(d, identity, delimited, req->request_id, STRATA_EBUSY,
                                 "subscribe.name: %zu durable sessions exist, the cap "
                                 "(distributor/max_sessions)",
                                 zhashx_size(d->subs));
        }
        if (!s && !(s = sub_new(d, req->name))) {
            free(value);
            return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOMEM,
                                 "out of memory");
        }
        if (rc == 0) {
            rc = offset_decode(value, value_len, s, &err);
            free(value);
            if (rc)
                return send_error_to(d, identity, delimited, req->request_id, rc, "%s", err.msg);
        } else if (req->seq > published + 1) {
            /* Nothing would be delivered up to from_seq: refuse it rather
             * than skip entries that do not exist yet. */
            zhashx_delete(d->subs, req->name);
            if (!atomic_load(&d->ring_ready))
                return send_error_to(d, identity, delimited, req->request_id, STRATA_EBUSY,
                                     "subscribe.from_seq: %" PRIu64 ": the distributor has not "
                                     "attached to the writer yet; retry",
                                     req->seq);
            return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                                 "subscribe.from_seq: %" PRIu64
                                 " is past the published end %" PRIu64 " (at most %" PRIu64 ")",
                                 req->seq, published, published + 1);
        } else {
            fresh = true;
            /* New: from now, or from the seq asked for. */
            s->stored = s->acked = req->seq ? req->seq - 1 : published;
            s->owner[0] = '\0';
        }
    }
    if (owned_by_other(s, client_key)) {
        log_warning("event=session_refused name=%s key=%s", s->name, client_key);
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EPERM,
                             "subscribe: durable session '%s' belongs to another client key",
                             s->name);
    }
    if (client_key && !s->owner[0]) {
        /* A new name, or one made while CURVE was off: the first key to
         * use it with CURVE on keeps it. */
        snprintf(s->owner, sizeof s->owner, "%s", client_key);
        s->dirty = true;
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
    if ((rc = session_seek(d, s, s->acked + 1, &err))) {
        send_error_to(d, identity, delimited, req->request_id, rc, "subscriber %s: %s", s->name,
                      err.msg);
        if (fresh) /* a name whose start is not retained is not made */
            zhashx_delete(d->subs, req->name);
        return;
    }
    s->identity = zframe_dup(identity);
    s->delimited = delimited;
    s->request_id = req->request_id;
    s->window = req->window ? req->window : (uint32_t)d->window;
    s->connected = true;
    atomic_fetch_add(&d->sessions_connected, 1); /* the pump notifies from now on */
    s->heard_ns = s->progress_ns = now_ns();
    s->seen_wall_ns = wall_ns();
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

static void handle_ack(dist_t *d, zframe_t *identity, bool delimited, const strata_request_t *req,
                       const char *key)
{
    sub_t *s = req->name ? zhashx_lookup(d->subs, req->name) : NULL;
    if (s && owned_by_other(s, key))
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EPERM,
                             "ack: durable session '%s' belongs to another client key", s->name);
    if (!s || !same_peer(s, identity))
        return send_error_to(d, identity, delimited, req->request_id, STRATA_ENOTFOUND,
                             "ack: no session '%s' for this peer: subscribe again",
                             req->name ? req->name : "");
    pthread_mutex_lock(&d->stats_mu);
    d->acks++;
    pthread_mutex_unlock(&d->stats_mu);
    uint64_t now = now_ns();
    s->heard_ns = now;
    s->seen_wall_ns = wall_ns();
    uint64_t seq = req->seq;
    if (seq >= s->next_seq) /* never past what was read for it */
        seq = s->next_seq - 1;
    if (seq > s->acked) {
        s->acked = seq;
        s->dirty = true;
        s->progress_ns = now;
        while (s->fifo_len && s->fifo_seq[s->fifo_head] <= seq) {
            s->unacked_bytes -= s->fifo_bytes[s->fifo_head];
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

/* A subscriber's lag counts only entries of its topics: the node's own
 * writes ($sys, among them every ack's offset record) and other topics
 * after its acked seq are no lag. records: published - acked once an entry
 * of its topics is unacked, else 0; ms: now - that entry's commit time.
 * The search reads at most LAG_MAX_EXAMINED entries; past them, the last
 * one read stands in for the first of its topics (an upper bound). */
#define LAG_MAX_EXAMINED 10000u /* per subscriber: the list is answered on the loop */
static void sub_lag(dist_t *d, const sub_t *s, uint64_t covered, uint64_t *records, uint64_t *ms)
{
    *records = *ms = 0;
    if (s->acked >= covered)
        return;
    uint64_t ts = 0;
    if (s->fifo_len) {
        ts = s->fifo_ts[s->fifo_head];
    } else {
        /* A connected session has read up to next_seq - 1 and found
         * nothing of its topics there that is not acked. */
        uint64_t from = s->connected && s->next_seq > s->acked + 1 ? s->next_seq : s->acked + 1;
        strata_wal_cursor_t *c = NULL;
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        if (from <= covered && strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &c, NULL) == 0 &&
            strata_wal_cursor_seek(c, from, NULL) == 0) {
            for (uint32_t examined = 0;
                 strata_wal_cursor_next(c, covered, &e, &raw, &raw_len, NULL) == 0; examined++) {
                if (topic_matches(e.topic, e.topic_len, s->topics, s->n_topics) ||
                    examined + 1 >= LAG_MAX_EXAMINED) {
                    ts = e.timestamp_ns;
                    break;
                }
            }
        }
        strata_wal_cursor_close(&c);
        if (!ts)
            return; /* nothing of its topics is waiting */
    }
    *records = covered - s->acked;
    uint64_t now = wall_ns();
    *ms = now > ts ? (now - ts) / 1000000ull : 0;
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
    for (sub_t *s = zhashx_first(d->subs); s && i < n; s = zhashx_next(d->subs), i++) {
        uint64_t lag_records, lag_ms;
        sub_lag(d, s, covered, &lag_records, &lag_ms);
        infos[i] = (strata_subscriber_info_t){
            .name = s->name,
            .topics = (const char *const *)s->topics,
            .n_topics = s->n_topics,
            .acked_seq = s->acked,
            .lag_records = lag_records,
            .lag_ms = lag_ms,
            .unacked = s->fifo_len,
            .resends = s->resends,
            .connected = s->connected,
        };
    }
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_SUBSCRIBERS,
                          .subscribers = infos,
                          .n_subscribers = i};
    send_to(d, identity, delimited, &rep);
    free(infos);
}

/* ---- deleting and resetting a durable subscriber --------------------------------- */

/* The subscriber an admin request names, read from the engine when this
 * run has not (or has only a stale copy): NULL and a reply sent when it
 * does not exist, is another key's, or has a session. */
static sub_t *admin_target(dist_t *d, zframe_t *identity, bool delimited,
                           const strata_request_t *req, const char *client_key)
{
    const char *op = strata_op_name(req->op);
    strata_error_t err;
    strata_error_clear(&err);
    if (!req->name || !*req->name) {
        send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL, "%s.name: empty", op);
        return NULL;
    }
    sub_t *s = zhashx_lookup(d->subs, req->name);
    if (!s || (!s->connected && !s->dirty)) {
        void *value = NULL;
        size_t value_len = 0;
        int rc = offset_get(d, req->name, &value, &value_len, &err);
        if (rc == STRATA_ENOTFOUND) {
            if (s) /* gone from the engine (expired by another run): forget it */
                zhashx_delete(d->subs, req->name);
            send_error_to(d, identity, delimited, req->request_id, STRATA_ENOTFOUND,
                          "%s: no durable subscriber '%s'", op, req->name);
            return NULL;
        }
        if (rc) {
            send_error_to(d, identity, delimited, req->request_id, rc,
                          "reading the offset of %s: %s", req->name, err.msg);
            return NULL;
        }
        bool made = !s;
        if (made && !(s = sub_new(d, req->name))) {
            free(value);
            send_error_to(d, identity, delimited, req->request_id, STRATA_ENOMEM, "out of memory");
            return NULL;
        }
        rc = offset_decode(value, value_len, s, &err);
        free(value);
        if (rc) {
            if (made)
                zhashx_delete(d->subs, req->name);
            send_error_to(d, identity, delimited, req->request_id, rc, "%s", err.msg);
            return NULL;
        }
    }
    if (owned_by_other(s, client_key)) {
        log_warning("event=%s_refused name=%s key=%s", op, s->name, client_key);
        send_error_to(d, identity, delimited, req->request_id, STRATA_EPERM,
                      "%s: durable session '%s' belongs to another client key", op, s->name);
        return NULL;
    }
    if (s->connected) {
        send_error_to(d, identity, delimited, req->request_id, STRATA_EBUSY,
                      "%s: durable session '%s' is connected; stop its subscriber (its session "
                      "ends %" PRIu64 " ms after its last message)",
                      op, s->name, d->session_timeout_ms);
        return NULL;
    }
    return s;
}

/* As kafka-consumer-groups --delete: the name and its stored offset go; a
 * later subscribe under it starts as a new name. */
static void handle_subscriber_delete(dist_t *d, zframe_t *identity, bool delimited,
                                     const strata_request_t *req, const char *client_key)
{
    sub_t *s = admin_target(d, identity, delimited, req, client_key);
    if (!s)
        return;
    strata_error_t err;
    int rc = offset_delete(d, s->name, &err);
    if (rc)
        return send_error_to(d, identity, delimited, req->request_id, rc,
                             "subscriber_delete: deleting the offset of %s: %s", s->name, err.msg);
    uint64_t acked = s->acked;
    log_info("event=subscriber_deleted name=%s acked=%" PRIu64, s->name, acked);
    zhashx_delete(d->subs, req->name);
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_SUBSCRIBER_DELETE,
                          .acked_seq = acked,
                          .published_seq = atomic_load(&d->covered)};
    send_to(d, identity, delimited, &rep);
}

/* As kafka-consumer-groups --reset-offsets --to-earliest, --to-latest or
 * --to-offset: the acked seq is stored before the reply. */
static void handle_subscriber_reset(dist_t *d, zframe_t *identity, bool delimited,
                                    const strata_request_t *req, const char *client_key)
{
    uint64_t published = atomic_load(&d->covered);
    if (req->reset_to == STRATA_RESET_TO_SEQ && req->seq == 0)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                             "subscriber_reset.seq: 0 (give a seq, or to earliest or latest)");
    if (req->reset_to == STRATA_RESET_TO_SEQ && req->seq > published + 1)
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EINVAL,
                             "subscriber_reset.seq: %" PRIu64 " is past the published end %" PRIu64
                             " (at most %" PRIu64 ")",
                             req->seq, published, published + 1);
    sub_t *s = admin_target(d, identity, delimited, req, client_key);
    if (!s)
        return;
    uint64_t next = published + 1;
    if (req->reset_to != STRATA_RESET_TO_LATEST) {
        strata_wal_cursor_t *c = NULL;
        strata_error_t err;
        strata_error_clear(&err);
        int rc = strata_wal_cursor_open(d->wal_dir, WAL_MAX_ENTRY, &c, &err);
        uint64_t oldest = rc ? 0 : strata_wal_cursor_oldest_seq(c);
        strata_wal_cursor_close(&c);
        if (rc)
            return send_error_to(d, identity, delimited, req->request_id, rc,
                                 "subscriber_reset: %s", err.msg);
        if (oldest == 0 || oldest > published + 1)
            oldest = published + 1; /* nothing retained */
        if (req->reset_to == STRATA_RESET_TO_EARLIEST)
            next = oldest;
        else if (req->seq < oldest)
            return send_error_to(d, identity, delimited, req->request_id, STRATA_ETRUNCATED,
                                 "subscriber_reset.seq: %" PRIu64
                                 " is no longer retained: the oldest seq retained is %" PRIu64,
                                 req->seq, oldest);
        else
            next = req->seq;
    }
    uint64_t before = s->acked, stored_before = s->stored;
    s->acked = next - 1;
    s->dirty = true;
    s->seen_wall_ns = wall_ns();
    d->flush_retry_ns = 0; /* an operator's request: try the writer now */
    offsets_flush(d);
    if (s->dirty) {
        s->acked = before;
        s->dirty = s->acked != stored_before;
        return send_error_to(d, identity, delimited, req->request_id, STRATA_EIO,
                             "subscriber_reset: the offset of %s was not stored (see the "
                             "distributor's log); nothing changed",
                             s->name);
    }
    log_info("event=subscriber_reset name=%s from=%" PRIu64 " to=%" PRIu64, s->name, before,
             s->acked);
    strata_reply_t rep = {.request_id = req->request_id,
                          .op = STRATA_OP_SUBSCRIBER_RESET,
                          .acked_seq = s->acked,
                          .published_seq = published};
    send_to(d, identity, delimited, &rep);
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

/* ---- stats and metrics ---------------------------------------------------------- */

/* Everything the stats reply and /metrics show, read at one moment. */
typedef struct {
    uint64_t covered, start_seq, live_entries, delayed_batches, heartbeats, laps, wal_catchups,
        subscribers, replay_requests, replay_entries, deliveries, acks, offset_writes,
        offset_write_failures, pub_queue, dropped, shed, connections;
} figures_t;

#define U(field) offsetof(figures_t, field), false, 0, 0
static const svc_metric_t rows[] = {
    {"covered_seq", "distributor_covered_seq", "Every entry up to this seq has been published.",
     SVC_GAUGE, U(covered)},
    {"start_seq", NULL, "The first seq this run published.", SVC_GAUGE, U(start_seq)},
    {"live_entries", "distributor_live_entries_total", "Entries sent on the live stream.",
     SVC_COUNTER, U(live_entries)},
    {"delayed_batches", "distributor_delayed_batches_total", "Messages sent on the delayed stream.",
     SVC_COUNTER, U(delayed_batches)},
    {"heartbeats", "distributor_heartbeats_total", "Heartbeat messages sent.", SVC_COUNTER,
     U(heartbeats)},
    {"laps", "distributor_ring_laps_total",
     "Times the ring overwrote the pump's cursor (gap filled from the WAL).", SVC_COUNTER, U(laps)},
    {"wal_catchups", "distributor_wal_catchups_total", "Gaps filled from the WAL.", SVC_COUNTER,
     U(wal_catchups)},
    {"subscribers", NULL, "Durable sessions known, stored or connected.", SVC_GAUGE,
     U(subscribers)},
    {"stream_connections", "distributor_stream_connections",
     "Connections to the live and delayed streams.", SVC_GAUGE, U(connections)},
    {"pub_queue_bytes", "distributor_pub_queue_bytes",
     "Entry bytes ZeroMQ holds for live and delayed subscribers.", SVC_GAUGE, U(pub_queue)},
    {"pub_dropped_total", "distributor_pub_dropped_total",
     "Stream messages not sent because a stream's distributor/pub_queue_mb was reached.",
     SVC_COUNTER, U(dropped)},
    {"subscribers_shed_total", "distributor_subscribers_shed_total",
     "Stream connections closed for not reading while their stream's queue was full.", SVC_COUNTER,
     U(shed)},
    {NULL, "distributor_replay_requests_total", "History replay pages served.", SVC_COUNTER,
     U(replay_requests)},
    {NULL, "distributor_replay_entries_total", "Entries sent in replay pages.", SVC_COUNTER,
     U(replay_entries)},
    {NULL, "distributor_deliveries_total", "Entries sent to durable sessions.", SVC_COUNTER,
     U(deliveries)},
    {NULL, "distributor_acks_total", "Acks received from durable subscribers.", SVC_COUNTER,
     U(acks)},
    {NULL, "distributor_offset_writes_total", "Offset batches stored via the writer.", SVC_COUNTER,
     U(offset_writes)},
    {NULL, "distributor_offset_write_failures_total", "Offset batches the writer did not store.",
     SVC_COUNTER, U(offset_write_failures)},
};

/* on_loop: called from the loop, which alone may read the session table
 * and the start seq (the metrics thread shows neither). */
static void figures(dist_t *d, figures_t *f, bool on_loop)
{
    *f = (figures_t){.covered = atomic_load(&d->covered),
                     .live_entries = atomic_load(&d->live_entries),
                     .delayed_batches = atomic_load(&d->delayed_batches),
                     .heartbeats = atomic_load(&d->heartbeats),
                     .laps = atomic_load(&d->laps),
                     .wal_catchups = atomic_load(&d->wal_catchups)};
    tier_t *tiers[] = {&d->live, &d->delayed};
    for (int i = 0; i < 2; i++) {
        f->pub_queue += tiers[i]->outq ? svc_outq_bytes(tiers[i]->outq) : 0;
        f->dropped += atomic_load(&tiers[i]->dropped);
        if (tiers[i]->conncap) {
            f->shed += svc_conncap_shed_count(tiers[i]->conncap);
            f->connections += svc_conncap_open(tiers[i]->conncap);
        }
    }
    if (on_loop) {
        f->start_seq = d->start_seq;
        f->subscribers = zhashx_size(d->subs);
    }
    pthread_mutex_lock(&d->stats_mu);
    f->replay_requests = d->replay_requests;
    f->replay_entries = d->replay_entries;
    f->deliveries = d->deliveries;
    f->acks = d->acks;
    f->offset_writes = d->offset_writes;
    f->offset_write_failures = d->offset_write_failures;
    pthread_mutex_unlock(&d->stats_mu);
}

typedef struct {
    strata_pair_t pairs[sizeof rows / sizeof rows[0]];
    char values[sizeof rows / sizeof rows[0]][64];
    size_t n;
} pairs_t;

static void add_pair(void *sink, const char *name, const char *value)
{
    pairs_t *p = sink;
    snprintf(p->values[p->n], sizeof p->values[p->n], "%s", value);
    p->pairs[p->n] = (strata_pair_t){name, p->values[p->n]};
    p->n++;
}

static void stats_reply(dist_t *d, zframe_t *identity, bool delimited, uint64_t request_id)
{
    figures_t f;
    figures(d, &f, true);
    pairs_t p = {.n = 0};
    svc_metrics_pairs(rows, sizeof rows / sizeof rows[0], &f, add_pair, &p);
    strata_reply_t rep = {
        .request_id = request_id, .op = STRATA_OP_STATS, .pairs = p.pairs, .n_pairs = p.n};
    send_to(d, identity, delimited, &rep);
}

/* A subscriber name as a Prometheus label value: \\, \" and \\n escaped. */
static void label_value(FILE *out, const char *v)
{
    for (; *v; v++)
        if (*v == '\\' || *v == '"')
            fprintf(out, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
}

void write_metrics(void *arg, FILE *out)
{
    dist_t *d = arg;
    figures_t f;
    figures(d, &f, false);
    svc_metrics_prom(rows, sizeof rows / sizeof rows[0], &f, out);
    pthread_mutex_lock(&d->stats_mu);
    static const char *const family[2][2] = {
        {"strata_distributor_subscriber_lag_records",
         "Records committed that the durable subscriber has not acked."},
        {"strata_distributor_subscriber_lag_seconds",
         "Age of the oldest record the durable subscriber has not acked."}};
    for (int k = 0; k < 2; k++) {
        fprintf(out,
                "# HELP %s %s (at most %u subscribers, the furthest behind)\n# TYPE %s gauge\n",
                family[k][0], family[k][1], LAG_METRICS_MAX, family[k][0]);
        for (size_t i = 0; i < d->n_lag; i++) {
            fprintf(out, "%s{subscriber=\"", family[k][0]);
            label_value(out, d->lag[i].name);
            if (k == 0)
                fprintf(out, "\"} %" PRIu64 "\n", d->lag[i].records);
            else
                fprintf(out, "\"} %.3f\n", (double)d->lag[i].ms / 1e3);
        }
    }
    fprintf(out,
            "# HELP strata_distributor_subscriber_lag_omitted Durable subscribers left out of the "
            "lag families past their cap.\n"
            "# TYPE strata_distributor_subscriber_lag_omitted gauge\n"
            "strata_distributor_subscriber_lag_omitted %zu\n",
            d->lag_omitted);
    pthread_mutex_unlock(&d->stats_mu);
}

static int lag_cmp(const void *a, const void *b)
{
    const sub_t *x = *(sub_t *const *)a, *y = *(sub_t *const *)b;
    return x->acked < y->acked ? -1 : x->acked > y->acked; /* least acked is furthest behind */
}

/* Publishes the lag of the LAG_METRICS_MAX durable subscribers furthest
 * behind for write_metrics, which cannot touch d->subs from its thread. */
static void lag_refresh(dist_t *d, uint64_t now)
{
    if (now - d->lag_refreshed_ns < LAG_METRICS_REFRESH_NS)
        return;
    d->lag_refreshed_ns = now;
    size_t n = zhashx_size(d->subs), k = 0;
    sub_t **all = calloc(n ? n : 1, sizeof *all);
    if (!all)
        return;
    for (sub_t *s = zhashx_first(d->subs); s && k < n; s = zhashx_next(d->subs))
        all[k++] = s;
    qsort(all, k, sizeof *all, lag_cmp);
    uint64_t covered = atomic_load(&d->covered);
    size_t shown = k < LAG_METRICS_MAX ? k : LAG_METRICS_MAX;
    uint64_t records[LAG_METRICS_MAX], ms[LAG_METRICS_MAX];
    for (size_t i = 0; i < shown; i++) /* may read the WAL: outside the lock */
        sub_lag(d, all[i], covered, &records[i], &ms[i]);
    pthread_mutex_lock(&d->stats_mu);
    for (size_t i = 0; i < shown; i++) {
        snprintf(d->lag[i].name, sizeof d->lag[i].name, "%s", all[i]->name);
        d->lag[i].records = records[i];
        d->lag[i].ms = ms[i];
    }
    d->n_lag = shown;
    d->lag_omitted = k - shown;
    pthread_mutex_unlock(&d->stats_mu);
    free(all);
}

/* Attached to the writer's ring, and the writer answers (node.h's rule). */
bool is_ready(void *arg)
{
    dist_t *d = arg;
    return atomic_load(&d->ring_ready) && svc_writer_answers(d->writer_file);
}

/* ---- the main loop ---------------------------------------------------------- */

/* One request off the history socket: -1 to stop the loop. */
static int history_one(dist_t *d, zsock_t *sock)
{
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
    /* With CURVE on, the key the handshake proved: durable names are its. */
    const char *key = svc_curve_key(d->curve, payload);
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
            handle_subscribe(d, identity, delimited, &req, key);
            break;
        case STRATA_OP_ACK:
            handle_ack(d, identity, delimited, &req, key);
            break;
        case STRATA_OP_SUBSCRIBERS:
            handle_subscribers(d, identity, delimited, &req);
            break;
        case STRATA_OP_STATS:
            stats_reply(d, identity, delimited, req.request_id);
            break;
        case STRATA_OP_SUBSCRIBER_DELETE:
            handle_subscriber_delete(d, identity, delimited, &req, key);
            break;
        case STRATA_OP_SUBSCRIBER_RESET:
            handle_subscriber_reset(d, identity, delimited, &req, key);
            break;
        default:
            send_error_to(d, identity, delimited, req.request_id, STRATA_EINVAL,
                          "request: %s is not served by strata-distributor (replay, subscribe, "
                          "ack, subscribers, stats, subscriber_delete, subscriber_reset)",
                          strata_op_name(req.op));
        }
    }
    strata_request_clear(&req);
out:
    zframe_destroy(&identity);
    zframe_destroy(&payload);
    return 0;
}

/* Requests taken per wake-up at most. */
#define HISTORY_BURST 256

/* Takes the requests already queued, not just one: a durable subscriber
 * acks entry by entry, and with one request per wake-up every wake-up
 * also ran the offset flush that had come due, a synced write through the
 * writer, so each ack was stored on its own and, the window refilling one
 * entry per ack, a session moved at one entry per fdatasync (about 90 a
 * second on a loaded machine). Taken together, the acks of a burst share
 * one write. Bounded in count and to ack_flush_ms, so that resends,
 * flushes and the pump's wake-ups still come round. */
int on_history(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    dist_t *d = arg;
    uint64_t until = now_ns() + d->ack_flush_ms * 1000000ull;
    for (int i = 0; i < HISTORY_BURST; i++) {
        if (history_one(d, sock) != 0)
            return -1;
        if (!(zsock_events(sock) & ZMQ_POLLIN) || now_ns() >= until)
            break;
    }
    return 0;
}

static void pump_sessions(dist_t *d)
{
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs))
        if (s->connected)
            session_pump(d, s);
}

int on_notify(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    uint64_t covered;
    if (zsock_recv(sock, "8", &covered) == 0)
        pump_sessions(arg);
    return 0;
}

/* A durable name nobody has used for session_expire_s (counted from its
 * last subscribe or ack, or from its stored offset's time after a restart)
 * goes, with its stored offset: made-up names cannot pile up for ever. */
static void expire_names(dist_t *d)
{
    uint64_t now = wall_ns(), limit = d->session_expire_s * 1000000000ull;
    char *gone[16];
    size_t n = 0;
    for (sub_t *s = zhashx_first(d->subs); s && n < 16; s = zhashx_next(d->subs))
        if (!s->connected && !s->dirty && s->seen_wall_ns && now > s->seen_wall_ns &&
            now - s->seen_wall_ns > limit)
            gone[n++] = s->name;
    strata_error_t err;
    for (size_t i = 0; i < n; i++) {
        int rc = offset_delete(d, gone[i], &err);
        if (rc) {
            if (svc_episode_failed(&d->expiry_failing, rc))
                log_warning("event=name_expiry_failed name=%s error=\"%s\"", gone[i], err.msg);
            return; /* the next tick tries again */
        }
        uint64_t failures = svc_episode_cleared(&d->expiry_failing);
        if (failures)
            log_info("event=name_expiry_recovered failures=%" PRIu64, failures);
        log_info("event=name_expired name=%s idle_s=%" PRIu64, gone[i], d->session_expire_s);
        zhashx_delete(d->subs, gone[i]);
    }
}

/* Resends, session expiry, and the pump's wake-ups we may have coalesced. */
int on_sessions_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    dist_t *d = arg;
    expire_names(d);
    /* A stream stuck at its cap with nothing new to publish must still
     * lose its stalled subscriber: the shed needs two looks. */
    tier_t *tiers[] = {&d->live, &d->delayed};
    for (int i = 0; i < 2; i++)
        if (tiers[i]->outq && svc_outq_full(tiers[i]->outq))
            svc_conncap_shed(tiers[i]->conncap, SHED_MIN_BYTES, "subscriber queue full");
    uint64_t now = now_ns();
    lag_refresh(d, now);
    uint32_t connected = 0;
    for (sub_t *s = zhashx_first(d->subs); s; s = zhashx_next(d->subs)) {
        if (!s->connected)
            continue;
        connected++;
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
    /* An ended session is counted until the next tick: one more notify. */
    atomic_store(&d->sessions_connected, connected);
    return zsys_interrupted ? -1 : 0;
}

int on_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    offsets_flush(arg);
    return zsys_interrupted ? -1 : 0;
}
