/* Client requests: decoding, staging writes into one engine batch per
 * wakeup, reads, scans, status, and the dispatch from the sockets. */
#define _GNU_SOURCE
#include "writer.h"

/* An error reply on an envelope the request owns (sent with it) or shares
 * with the others of its message (borrowed). */
static void error_to(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, bool shared,
                     uint64_t request_id, int code, const char *msg)
{
    if (shared)
        send_error_borrowed(w, sock, *envelope_p, request_id, code, msg);
    else
        send_error(w, sock, envelope_p, request_id, code, msg);
}

void reply_error(ctx_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void reply_error(ctx_t *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_to(c->w, c->sock, &c->envelope, c->envelope_shared, c->req->request_id, code, msg);
}

void reply(ctx_t *c, const strata_reply_t *rep)
{
    if (c->envelope_shared)
        send_reply_borrowed(c->w, c->sock, c->envelope, rep);
    else
        send_reply(c->w, c->sock, &c->envelope, rep);
}

zmsg_t *ctx_envelope(ctx_t *c)
{
    if (c->envelope_shared)
        return zmsg_dup(c->envelope);
    zmsg_t *envelope = c->envelope;
    c->envelope = NULL;
    return envelope;
}

/* Writes that arrive together are staged and go to the engine as one WAL
 * append (one pwrite, one memtable pass) when the drain ends or a read
 * needs them: per-request syscalls were the loop's largest cost. Each
 * request keeps its own seqs and its own reply. */
static const strata_write_options_t unsynced = {.durability = STRATA_ASYNC};

static int stage(ctx_t *c, size_t n_ops)
{
    writer_t *w = c->w;
    if (w->n_staged == 0)
        w->stage_base = strata_db_appended_seq(w->db) + 1;
    if (w->n_staged == w->cap_staged) {
        size_t cap = w->cap_staged ? w->cap_staged * 2 : 256;
        staged_t *grown = realloc(w->staged, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        w->staged = grown;
        w->cap_staged = cap;
    }
    w->staged[w->n_staged++] = (staged_t){.sock = c->sock,
                                          .envelope = ctx_envelope(c),
                                          .request_id = c->req->request_id,
                                          .op = c->req->op,
                                          .durability = c->req->durability,
                                          .at_commit = consensus_at_commit(w, c->req),
                                          .session_op = c->req->session != 0,
                                          .n_ops = n_ops,
                                          .start_ns = c->start_ns};
    return 0;
}

void flush_staged(writer_t *w)
{
    if (w->n_staged == 0)
        return;
    uint64_t first = 0;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_db_write(w->db, &unsynced, w->batch, &first, &err);
    /* Session records named their seqs before the write (sessions.c): the
     * loop is the log's only appender, so they cannot be off. */
    if (!rc && first != w->stage_base)
        log_error("event=stage_base_mismatch expected=%" PRIu64 " got=%" PRIu64, w->stage_base,
                  first);
    uint64_t seq = first, now = now_ns(), want = 0;
    /* A quorum write on a cluster node is acknowledged at its commit,
     * whatever its durability: a write only this node holds can be cut by
     * the next master. */
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
        ops += s->n_ops - s->session_op;
        if (s->durability == STRATA_DURABILITY_ASYNC && !s->at_commit) {
            strata_reply_t rep = {
                .request_id = s->request_id, .op = s->op, .seq = last - s->session_op};
            send_reply(w, s->sock, &s->envelope, &rep);
            async_replies++;
            continue;
        }
        pending_t p = {.sock = s->sock,
                       .envelope = s->envelope,
                       .request_id = s->request_id,
                       .op = s->op,
                       .seq = last,
                       .reply_seq = s->session_op ? last - 1 : 0,
                       .start_ns = s->start_ns};
        if (pending_push(s->at_commit ? &w->committing : &w->pending, &p) != 0) {
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
    w->stats.pending = w->pending.len + w->committing.len;
    pthread_mutex_unlock(&w->stats_mu);
    w->n_staged = 0;
    w->staged_bytes = 0;
    w->staged_ops = 0;
    strata_batch_clear(w->batch);
    if (want)
        want_sync(w, want);
    if (w->cx && !rc)
        consensus_proposed(w, seq - 1);
}

/* A cluster node takes writes only as master, and an atomic group must fit
 * one append to a follower, whose WAL takes whole groups only
 * (proto/RAFT.md): at most STRATA_RAFT_MAX_ENTRIES entries and the message
 * cap less room for the entries' headers. Staged requests share a group,
 * so they go out before one that would not fit with them. */
#define CLUSTER_GROUP_BYTES (STRATA_RAFT_MSG_MAX - 64 * 1024)
#define ENTRY_OVERHEAD      64 /* header and topic, generously */

static bool cluster_gate(ctx_t *c, size_t n_ops, size_t bytes)
{
    writer_t *w = c->w;
    if (!w->cx)
        return session_duplicate(c);
    n_ops += c->req->session != 0; /* its session's record */
    char msg[768];
    if (consensus_refuse_write(w, msg, sizeof msg)) {
        reply_error(c, STRATA_ENOTMASTER, "%s", msg);
        return true;
    }
    if (consensus_lagging(w, c->req, msg, sizeof msg)) {
        reply_error(c, STRATA_EBUSY, "%s", msg);
        return true;
    }
    size_t need = bytes + n_ops * ENTRY_OVERHEAD;
    if (n_ops > STRATA_RAFT_MAX_ENTRIES || need > CLUSTER_GROUP_BYTES) {
        reply_error(c, STRATA_ETOOBIG,
                    "%s: %zu ops of %zu bytes; a cluster node takes at most %u ops and %u bytes "
                    "in one request",
                    strata_op_name(c->req->op), n_ops, bytes, STRATA_RAFT_MAX_ENTRIES,
                    (unsigned)(CLUSTER_GROUP_BYTES - n_ops * ENTRY_OVERHEAD));
        return true;
    }
    if (w->staged_ops + n_ops > STRATA_RAFT_MAX_ENTRIES ||
        w->staged_bytes + w->staged_ops * ENTRY_OVERHEAD + need > CLUSTER_GROUP_BYTES)
        flush_staged(w);
    return session_duplicate(c);
}

/* Adds ops for one request; on failure the batch is cut back to where it
 * was, so other staged requests are untouched. */
static void stage_or_fail(ctx_t *c, size_t ops_before, size_t n_ops, size_t bytes, int rc,
                          const char *what)
{
    writer_t *w = c->w;
    if (!rc && !(rc = session_record(c, n_ops)) && c->req->session)
        n_ops++;
    if (!rc)
        rc = stage(c, n_ops);
    if (rc) {
        strata_batch_truncate(w->batch, ops_before);
        session_unrecord(c); /* it may have recorded what was not staged */
        return reply_error(c, rc, "%s: %s", what, strata_strerror(rc));
    }
    w->staged_bytes += bytes;
    w->staged_ops += n_ops;
    if (w->n_staged >= STAGE_MAX_REQUESTS || w->staged_bytes >= STAGE_MAX_BYTES)
        flush_staged(w);
}

/* The node's own processes, on the control endpoint, may write its
 * reserved keys; a client may not (strata_check_client_write). */
static int check_write(ctx_t *c, const char *field, strata_bytes_t key, const char *topic)
{
    strata_error_t err;
    if (c->from_control || strata_check_client_write(field, key, topic, &err) == 0)
        return 0;
    reply_error(c, STRATA_EINVAL, "%s", err.msg);
    return STRATA_EINVAL;
}

/* Clients may not write the node's own keys; its processes, on the control
 * endpoint, may, and those writes carry the system topic so subscribers
 * skip them. */
static int put_op(ctx_t *c, strata_bytes_t key, strata_bytes_t value)
{
    if (strata_is_sys_key(key))
        return c->from_control ? strata_batch_put_topic(c->w->batch, STRATA_SYS_TOPIC, key.data,
                                                        key.len, value.data, value.len)
                               : STRATA_EINVAL;
    return strata_batch_put(c->w->batch, key.data, key.len, value.data, value.len);
}

static int delete_op(ctx_t *c, strata_bytes_t key)
{
    if (strata_is_sys_key(key) && !c->from_control)
        return STRATA_EINVAL;
    return strata_batch_delete(c->w->batch, key.data, key.len);
}

static void handle_put(ctx_t *c)
{
    const strata_request_t *req = c->req;
    if (req->key.len == 0)
        return reply_error(c, STRATA_EINVAL, "put.key: empty");
    if (check_write(c, "put", req->key, NULL) || cluster_gate(c, 1, req->key.len + req->value.len))
        return;
    size_t before = strata_batch_count(c->w->batch);
    int rc = put_op(c, req->key, req->value);
    stage_or_fail(c, before, 1, req->key.len + req->value.len, rc, "put");
}

static void handle_delete(ctx_t *c)
{
    const strata_request_t *req = c->req;
    if (req->key.len == 0)
        return reply_error(c, STRATA_EINVAL, "delete.key: empty");
    if (check_write(c, "delete", req->key, NULL) || cluster_gate(c, 1, req->key.len))
        return;
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
        char field[48];
        snprintf(field, sizeof field, "batch.ops[%zu]", i);
        if (check_write(c, field, req->ops[i].key, NULL))
            return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < req->n_ops; i++)
        bytes += req->ops[i].key.len + req->ops[i].value.len;
    if (cluster_gate(c, req->n_ops, bytes))
        return;
    size_t before = strata_batch_count(c->w->batch);
    int rc = 0;
    for (size_t i = 0; i < req->n_ops && !rc; i++) {
        const strata_batch_op_t *op = &req->ops[i];
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
    if (rc) /* the decoder's message names the type and field, or "record" */
        return reply_error(c, rc, "%s", err.msg);
    char key[STRATA_RECORD_KEY_MAX];
    ssize_t key_len = strata_record_key(&rec, key, sizeof key);
    const char *topic = strata_record_topic(&rec);
    if (key_len <= 0 || !topic) {
        strata_record_clear(&rec);
        return reply_error(c, STRATA_EINVAL, "record: no key or topic for this type");
    }
    if (check_write(c, "record", (strata_bytes_t){(const uint8_t *)key, (size_t)key_len}, topic)) {
        strata_record_clear(&rec);
        return;
    }
    if (cluster_gate(c, 1, (size_t)key_len + req->value.len)) {
        strata_record_clear(&rec);
        return;
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
    size_t total = 0;
    for (; i < n; i++) {
        void *value = NULL;
        size_t len = 0;
        if (!c->from_control && strata_is_sys_key(keys[i]))
            continue; /* the node's own keys are not found on the client endpoint */
        rc = strata_db_get(c->w->db, &ro, keys[i].data, keys[i].len, &value, &len, &err);
        if (rc == STRATA_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        values[i] = (strata_value_t){.found = true, .value = {value, len}};
        /* Stop as soon as the reply cannot fit one message, rather than
         * read every value first (1,024 of 1 MiB held 1 GiB). */
        total += len + 16;
        if (total > STRATA_PROTO_MAX_MESSAGE) {
            rc = strata_error_set(&err, STRATA_ETOOBIG,
                                  "the values up to this one exceed the reply cap of %u bytes; "
                                  "ask for fewer keys",
                                  STRATA_PROTO_MAX_MESSAGE);
            break;
        }
    }
    if (rc) {
        reply_error(c, rc, "%s key %zu: %s", strata_op_name(req->op), i, err.msg);
    } else {
        strata_reply_t rep = {.request_id = req->request_id,
                              .op = req->op,
                              .applied_seq = snapshot,
                              .values = values,
                              .n_values = n};
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

/* Just past every key under STRATA_SYS_KEY_PREFIX ("\0strata/"): '/' + 1. */
static const char SYS_KEY_PAST[] = "\0strata0";

/* A page of [start, end) from the cursor, which is the next key to return.
 * On the client endpoint the node's own keys are left out. */
static void handle_scan(ctx_t *c)
{
    const strata_request_t *req = c->req;
    uint32_t limit = req->scan_limit ? req->scan_limit : c->w->scan_limit;
    /* One view for the page, so its applied_seq says what it reflects. */
    uint64_t snapshot = strata_db_last_seq(c->w->db);
    strata_read_options_t ro = {
        .snapshot_seq = snapshot,
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
        if (!c->from_control && strata_is_sys_key((strata_bytes_t){k, klen})) {
            /* The node's own keys are skipped on the client endpoint: jump
             * past the whole prefix, which sorts first. */
            strata_db_iter_seek(it, SYS_KEY_PAST, sizeof SYS_KEY_PAST - 1);
            if (!strata_db_iter_valid(it))
                break;
            k = strata_db_iter_key(it, &klen);
        }
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
                              .applied_seq = snapshot,
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
    consensus_stats_t cs;
    consensus_stats(c->w, &cs);
    strata_reply_t rep = {.request_id = c->req->request_id,
                          .op = STRATA_OP_STATUS,
                          .role = cs.id ? cs.role : "standalone",
                          .term = cs.term,
                          .last_seq = db.last_seq,
                          .durable_seq = db.durable_seq};
    reply(c, &rep);
}

void reply_pairs(ctx_t *c, strata_op_t op, pairs_t *p)
{
    strata_reply_t rep = {
        .request_id = c->req->request_id, .op = op, .pairs = p->pairs, .n_pairs = p->n};
    reply(c, &rep);
}

static void handle_stats(ctx_t *c)
{
    /* Room for every figure with 8 nodes (each other node has three). */
    strata_pair_t pairs[96];
    char values[96][64];
    pairs_t p = {pairs, values, 0, 96};
    stats_pairs(c->w, &p);
    reply_pairs(c, STRATA_OP_STATS, &p);
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
    case STRATA_OP_SCAN: {
        char why[256];
        if (consensus_refuse_read(c->w, why, sizeof why))
            return reply_error(c, STRATA_ENOTMASTER, "%s", why);
        uint64_t applied = strata_db_last_seq(c->w->db);
        if (c->req->min_seq > applied)
            return reply_error(c, STRATA_EBUSY,
                               "%s.min_seq: %" PRIu64
                               " is past what this node has applied (%" PRIu64
                               "); retry, or read from the master",
                               strata_op_name(c->req->op), c->req->min_seq, applied);
        return c->req->op == STRATA_OP_SCAN ? handle_scan(c) : handle_get(c);
    }
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
    case STRATA_OP_SUBSCRIBER_DELETE:
    case STRATA_OP_SUBSCRIBER_RESET:
    case STRATA_OP_DELIVER:
        return reply_error(c, STRATA_EINVAL, "request: %s is served by strata-distributor",
                           strata_op_name(op));
    case STRATA_OP_NONE:
        break;
    }
    reply_error(c, STRATA_EINVAL, "request: no body");
}

/* The reads, whose replies run to megabytes; every other reply is a few
 * dozen bytes (a control verb's pairs at most a few KiB). */
static bool big_reply(strata_op_t op)
{
    return op == STRATA_OP_GET || op == STRATA_OP_MULTI_GET || op == STRATA_OP_SCAN;
}

/* One request frame, its envelope its own (the routing id, perhaps a
 * delimiter). */
static void handle_request(writer_t *w, zsock_t *sock, zmsg_t *envelope, bool shared,
                           zframe_t *payload, uint64_t start)
{
    pthread_mutex_lock(&w->stats_mu);
    w->stats.requests++;
    pthread_mutex_unlock(&w->stats_mu);
    strata_request_t req;
    strata_error_t err;
    int rc = strata_request_decode_view(zframe_data(payload), zframe_size(payload), &req, &err);
    if (rc) {
        pthread_mutex_lock(&w->stats_mu);
        w->stats.malformed++;
        pthread_mutex_unlock(&w->stats_mu);
        log_debug("event=bad_request bytes=%zu error=\"%s\"", zframe_size(payload), err.msg);
        error_to(w, sock, &envelope, shared, req.request_id, rc, err.msg);
    } else if (sock == w->router && svc_outq_full(w->outq) && big_reply(req.op)) {
        /* Refused unread: answering would only add to what is queued. The
         * client that is not reading goes, so the others get served again;
         * small answers (writes, status) still flow meanwhile. */
        atomic_fetch_add(&w->replies_refused, 1);
        svc_conncap_shed(w->conncap, SHED_MIN_BYTES, "reply queue full");
        char text[160];
        snprintf(text, sizeof text,
                 "busy: %" PRIu64
                 " bytes of replies are waiting for clients to read them (cap %" PRIu64
                 ", writer/reply_queue_mb)",
                 svc_outq_bytes(w->outq), svc_outq_cap(w->outq));
        error_to(w, sock, &envelope, shared, req.request_id, STRATA_EBUSY, text);
    } else {
        ctx_t c = {.w = w,
                   .sock = sock,
                   .envelope = envelope,
                   .envelope_shared = shared,
                   .req = &req,
                   .from_control = sock == w->control,
                   .role = sock == w->control ? NULL : svc_curve_role(w->curve, payload),
                   .start_ns = start};
        dispatch(&c);
        envelope = c.envelope; /* NULL when a handler kept or sent it */
    }
    if (!shared)
        zmsg_destroy(&envelope);
    strata_request_clear(&req);
}

/* One ROUTER message: the routing id, an optional empty delimiter, then one
 * request per frame (PROTOCOL.md). Anything else gets an error reply, never
 * a crash. */
static void handle_message(writer_t *w, zsock_t *sock, zmsg_t *msg)
{
    uint64_t start = now_ns();
    zframe_t *id = zmsg_pop(msg);
    zmsg_t *envelope = zmsg_new();
    if (!envelope) {
        zframe_destroy(&id);
        zmsg_destroy(&msg);
        return;
    }
    zmsg_append(envelope, &id);
    /* An empty frame first is the delimiter, unless it is all there is: a
     * request is never empty, so then it is a malformed one. */
    if (zmsg_size(msg) > 1 && zframe_size(zmsg_first(msg)) == 0) {
        zframe_t *delimiter = zmsg_pop(msg);
        zmsg_append(envelope, &delimiter);
    }
    size_t n = zmsg_size(msg);
    if (n > REQUEST_FRAMES_MAX) {
        pthread_mutex_lock(&w->stats_mu);
        w->stats.requests++;
        w->stats.malformed++;
        pthread_mutex_unlock(&w->stats_mu);
        char text[128];
        snprintf(text, sizeof text, "request: %zu request frames in one message, cap %u", n,
                 (unsigned)REQUEST_FRAMES_MAX);
        send_error(w, sock, &envelope, 0, STRATA_EINVAL, text);
        zmsg_destroy(&msg);
        return;
    }
    if (n > 1 && sock == w->router)
        multi_id_add(w, zmsg_first(envelope));
    /* One request has the envelope; several share it, and what keeps it
     * (a write waiting for its sync) takes a copy. */
    bool shared = n > 1;
    zframe_t *payload;
    while ((payload = zmsg_pop(msg))) {
        handle_request(w, sock, envelope, shared, payload, start);
        zframe_destroy(&payload);
    }
    if (shared)
        zmsg_destroy(&envelope);
    zmsg_destroy(&msg);
}

int on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    writer_t *w = arg;
    w->batching = true;
    for (int i = 0; i < DRAIN_MAX && !w->terminating; i++) {
        if (i > 0 && !(zsock_events(sock) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) {
            replies_flush(w);
            return zsys_interrupted ? -1 : 0;
        }
        if (zmsg_size(msg) < 2) { /* ROUTER always adds the id; be safe */
            zmsg_destroy(&msg);
            continue;
        }
        handle_message(w, sock, msg);
    }
    flush_staged(w);
    replies_flush(w);
    return w->terminating ? -1 : 0;
}

/* ---- startup and shutdown -------------------------------------------------- */
