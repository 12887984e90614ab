/* Pins the subscriber (strata/subscriber.h) against a scripted distributor
 * in a zactor: a real XPUB and ROUTER on loopback speaking proto/DISTRIBUTION.md,
 * with WAL entries carrying real CRCs. Live delivery, gaps found by
 * prev_seq, by heartbeat and by a new instance, repaired from history in
 * pages; the Clone hand-off from a seq or a time; durable sessions (dedup,
 * acks, keepalives, resubscribe after ENOTFOUND); hostile frames; meta
 * versions 1 and 2 (the term); failover between two fakes. Every
 * wait is on an event with a deadline: the fake tells the test what it did. */
#include <check.h>
#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/codec.h"
#include "strata/crc.h"
#include "strata/subscriber.h"
#include "support.h"

#define WAIT_MS    5000
#define MAX_LOG    64
#define MAX_TOPICS 8
#define ENTRY_MAX  256
#define TS_PER_SEQ 1000 /* the fake commits seq s at time s * 1000 ns */
#define TERM       1    /* every entry the fake writes is of this term */

/* ---- WAL entries and PUB frames, built as lib/log/wal.md and proto/DISTRIBUTION.md say */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static size_t s_encode_entry(uint8_t *out, uint64_t seq, const char *topic, const char *key,
                             const char *value)
{
    size_t tl = strlen(topic), kl = strlen(key), vl = strlen(value);
    strata_entry_t e = {.seq = seq,
                        .term = TERM,
                        .timestamp_ns = seq * TS_PER_SEQ,
                        .type = STRATA_VALUE_PUT,
                        .topic = (const uint8_t *)topic,
                        .topic_len = (uint16_t)tl,
                        .key = (const uint8_t *)key,
                        .key_len = (uint32_t)kl,
                        .value = (const uint8_t *)value,
                        .value_len = (uint32_t)vl};
    strata_entry_encode(out, &e);
    return strata_entry_size(tl, kl, vl);
}

/* Writes a meta frame at version (1: 32 bytes, no term; else 40 with term
 * at offset 32) and returns its size. */
static size_t s_meta(uint8_t *meta, uint8_t version, uint8_t kind, uint32_t count, uint64_t prev,
                     uint64_t instance, uint64_t start_seq, uint64_t term)
{
    memset(meta, 0, 40);
    meta[0] = version;
    meta[1] = kind;
    put32(meta + 4, count);
    put64(meta + 8, prev);
    put64(meta + 16, instance);
    put64(meta + 24, start_seq);
    if (version == 1)
        return 32;
    put64(meta + 32, term);
    return 40;
}

/* ---- the fake distributor ------------------------------------------------ */

typedef struct {
    uint64_t seq;
    char topic[32];
    uint8_t bytes[ENTRY_MAX];
    size_t len;
} log_entry_t;

typedef struct {
    char topic[32];
    uint64_t last;
} topic_last_t;

typedef struct {
    /* Set before the actor starts. */
    uint32_t page_entries; /* per replay page */
    int expect_subs;       /* subscriptions per subscriber: a heartbeat after each set */
    uint64_t hb_publish;   /* > 0: publish this seq just before that heartbeat */
    uint64_t oldest;       /* replays from below it are ETRUNCATED */
    uint64_t stored_acked; /* the durable offset */
    uint8_t meta_version;  /* what it sends: 1, or 0 for 2 */
    /* The actor's own. */
    int pub_port, history_port;
    zsock_t *xpub, *router;
    log_entry_t log[MAX_LOG];
    size_t n_log;
    uint64_t instance, start_seq, covered;
    topic_last_t sent[MAX_TOPICS];
    size_t n_sent;
    int subs_seen;
    int bad_replays;
    zframe_t *session_routing;
    uint64_t session_id;
    bool gone;
    zlist_t *requests; /* char *, what arrived, for s_wait */
    char *waiting;
} fake_t;

/* proto/DISTRIBUTION.md: a write without a topic is published under "kv". */
static const char *s_pub_topic(const char *topic)
{
    return topic[0] ? topic : "kv";
}

static const log_entry_t *s_log_find(const fake_t *f, uint64_t seq)
{
    for (size_t i = 0; i < f->n_log; i++)
        if (f->log[i].seq == seq)
            return &f->log[i];
    return NULL;
}

static topic_last_t *s_sent(fake_t *f, const char *topic)
{
    for (size_t i = 0; i < f->n_sent; i++)
        if (strcmp(f->sent[i].topic, topic) == 0)
            return &f->sent[i];
    ck_assert_uint_lt(f->n_sent, MAX_TOPICS);
    topic_last_t *t = &f->sent[f->n_sent++];
    size_t len = strlen(topic); /* topic is a log entry's, already < sizeof t->topic */
    memcpy(t->topic, topic, len + 1);
    t->last = f->start_seq - 1;
    return t;
}

static void s_record(fake_t *f, zsock_t *pipe, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_record(fake_t *f, zsock_t *pipe, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    zlist_append(f->requests, line); /* autofree: the list keeps a copy */
    if (f->waiting && strncmp(line, f->waiting, strlen(f->waiting)) == 0) {
        zstr_free(&f->waiting);
        zstr_send(pipe, "ok");
    }
}

/* Sends seqs first..last of first's topic as one entries message (drop:
 * only advance the state, as if ZeroMQ had dropped it). */
static void s_publish(fake_t *f, uint64_t first, uint64_t last, bool drop)
{
    const log_entry_t *head = s_log_find(f, first);
    ck_assert_ptr_nonnull(head);
    const char *topic = s_pub_topic(head->topic);
    topic_last_t *sent = s_sent(f, topic);
    zchunk_t *body = zchunk_new(NULL, 0);
    uint32_t count = 0;
    for (uint64_t seq = first; seq <= last; seq++) {
        const log_entry_t *e = s_log_find(f, seq);
        if (e && strcmp(e->topic, head->topic) == 0) {
            zchunk_extend(body, e->bytes, e->len);
            count++;
        }
    }
    uint8_t meta[40];
    size_t meta_len = s_meta(meta, f->meta_version ? f->meta_version : 2, 1, count, sent->last,
                             f->instance, f->start_seq, TERM);
    if (!drop) {
        zmsg_t *msg = zmsg_new();
        zmsg_addstr(msg, topic);
        zmsg_addmem(msg, meta, meta_len);
        zmsg_addmem(msg, zchunk_data(body), zchunk_size(body));
        zmsg_send(&msg, f->xpub);
    }
    zchunk_destroy(&body);
    sent->last = last;
    if (f->covered < last)
        f->covered = last;
}

static void s_heartbeat(fake_t *f)
{
    uint8_t body[12 + MAX_TOPICS * (2 + 32 + 8)];
    put64(body, f->covered);
    put32(body + 8, (uint32_t)f->n_sent);
    size_t n = 12;
    for (size_t i = 0; i < f->n_sent; i++) {
        size_t len = strlen(f->sent[i].topic);
        put16(body + n, (uint16_t)len);
        memcpy(body + n + 2, f->sent[i].topic, len);
        put64(body + n + 2 + len, f->sent[i].last);
        n += 2 + len + 8;
    }
    uint8_t meta[40];
    size_t meta_len = s_meta(meta, f->meta_version ? f->meta_version : 2, 2, 0, 0, f->instance,
                             f->start_seq, f->covered ? TERM : 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "$hb");
    zmsg_addmem(msg, meta, meta_len);
    zmsg_addmem(msg, body, n);
    zmsg_send(&msg, f->xpub);
}

static void s_send_reply(fake_t *f, zframe_t *routing, const strata_reply_t *rep)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_msg(strata_reply_encode(rep, &buf, &len, &err) == 0, "encode: %s", err.msg);
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(routing)});
    zmsg_addmem(msg, buf, len);
    free(buf);
    zmsg_send(&msg, f->router);
}

static bool s_matches(const strata_request_t *req, const char *topic)
{
    topic = s_pub_topic(topic);
    if (req->n_topics == 0)
        return topic[0] != '$';
    for (size_t i = 0; i < req->n_topics; i++)
        if (strncmp(topic, req->topics[i], strlen(req->topics[i])) == 0)
            return true;
    return false;
}

static void s_topics_text(const strata_request_t *req, char *out, size_t cap)
{
    snprintf(out, cap, "%s", req->n_topics ? "" : "*");
    for (size_t i = 0; i < req->n_topics; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", req->topics[i]);
}

static void s_on_replay(fake_t *f, zsock_t *pipe, zframe_t *routing, const strata_request_t *req)
{
    char topics[128];
    s_topics_text(req, topics, sizeof topics);
    s_record(f, pipe, "replay %llu %llu %s t=%llu", (unsigned long long)req->seq,
             (unsigned long long)req->to_seq, topics, (unsigned long long)req->from_time_ns);
    strata_reply_t rep = {.request_id = req->request_id, .op = STRATA_OP_REPLAY};
    if (req->seq && req->seq < f->oldest) {
        char message[128];
        snprintf(message, sizeof message, "seq %llu is older than the oldest retained, %llu",
                 (unsigned long long)req->seq, (unsigned long long)f->oldest);
        rep = (strata_reply_t){
            .request_id = req->request_id, .status = STRATA_ETRUNCATED, .message = message};
        s_send_reply(f, routing, &rep);
        return;
    }
    uint64_t from = req->seq ? req->seq : req->from_time_ns / TS_PER_SEQ;
    uint64_t to = req->to_seq ? req->to_seq : f->covered;
    zchunk_t *blob = zchunk_new(NULL, 0);
    uint64_t seq = from;
    for (; seq <= to && rep.count < f->page_entries; seq++) {
        const log_entry_t *e = s_log_find(f, seq);
        if (e && s_matches(req, e->topic)) {
            zchunk_extend(blob, e->bytes, e->len);
            rep.count++;
        }
    }
    rep.entries_blob = (strata_bytes_t){zchunk_data(blob), zchunk_size(blob)};
    rep.next_seq = seq;
    rep.published_seq = f->covered;
    rep.done = seq > to;
    if (f->bad_replays > 0) {
        f->bad_replays--;
        rep.count++;
    }
    s_send_reply(f, routing, &rep);
    zchunk_destroy(&blob);
}

/* Sends the session entries first..last (all topics) as one delivery. */
static void s_deliver(fake_t *f, uint64_t first, uint64_t last)
{
    zchunk_t *blob = zchunk_new(NULL, 0);
    strata_reply_t rep = {.request_id = f->session_id, .op = STRATA_OP_DELIVER};
    for (uint64_t seq = first; seq <= last; seq++) {
        const log_entry_t *e = s_log_find(f, seq);
        if (e) {
            zchunk_extend(blob, e->bytes, e->len);
            if (rep.count++ == 0)
                rep.first_seq = seq;
            rep.last_seq = seq;
        }
    }
    rep.entries_blob = (strata_bytes_t){zchunk_data(blob), zchunk_size(blob)};
    if (rep.count)
        s_send_reply(f, f->session_routing, &rep);
    zchunk_destroy(&blob);
}

static void s_on_request(fake_t *f, zsock_t *pipe)
{
    zmsg_t *msg = zmsg_recv(f->router);
    zframe_t *routing = zmsg_pop(msg);
    zframe_t *payload = zmsg_last(msg);
    strata_request_t req;
    strata_error_t err;
    int rc = strata_request_decode(zframe_data(payload), zframe_size(payload), &req, &err);
    ck_assert_msg(rc == 0, "fake distributor: %s", err.msg);
    uint64_t last = f->n_log ? f->log[f->n_log - 1].seq : 0;
    strata_reply_t rep = {.request_id = req.request_id, .op = req.op};
    char topics[128];
    switch (req.op) {
    case STRATA_OP_REPLAY:
        s_on_replay(f, pipe, routing, &req);
        break;
    case STRATA_OP_SUBSCRIBE:
        s_topics_text(&req, topics, sizeof topics);
        zframe_destroy(&f->session_routing);
        f->session_routing = zframe_dup(routing);
        f->session_id = req.request_id;
        f->gone = false;
        rep.acked_seq = f->stored_acked;
        rep.published_seq = last;
        s_send_reply(f, routing, &rep);
        s_deliver(f, f->stored_acked + 1, last);
        s_record(f, pipe, "subscribe %s w=%u from=%llu %s", req.name, req.window,
                 (unsigned long long)req.seq, topics);
        break;
    case STRATA_OP_ACK:
        if (f->gone) {
            rep = (strata_reply_t){
                .request_id = req.request_id, .status = STRATA_ENOTFOUND, .message = "no session"};
        } else {
            if (req.seq > f->stored_acked)
                f->stored_acked = req.seq;
            rep.durable_seq = f->stored_acked;
        }
        s_send_reply(f, routing, &rep);
        s_record(f, pipe, "ack %s %llu", req.name, (unsigned long long)req.seq);
        break;
    default:
        ck_abort_msg("fake distributor: unexpected %s", strata_op_name(req.op));
    }
    strata_request_clear(&req);
    zframe_destroy(&routing);
    zmsg_destroy(&msg);
}

/* XPUB passes each subscription up; the heartbeat goes out once the ones
 * the test expects are all in place, so nothing published after is lost. */
static void s_on_subscription(fake_t *f, zsock_t *pipe)
{
    zframe_t *frame = zframe_recv(f->xpub);
    if (frame && zframe_size(frame) >= 1 && zframe_data(frame)[0] == 1) {
        s_record(f, pipe, "sub %.*s", (int)zframe_size(frame) - 1,
                 (const char *)zframe_data(frame) + 1);
        if (f->expect_subs && ++f->subs_seen % f->expect_subs == 0) {
            if (f->hb_publish)
                s_publish(f, f->hb_publish, f->hb_publish, false);
            s_heartbeat(f);
        }
    }
    zframe_destroy(&frame);
}

static uint64_t s_arg(zmsg_t *cmd)
{
    char *text = zmsg_popstr(cmd);
    ck_assert_ptr_nonnull(text);
    uint64_t value = strtoull(text, NULL, 10);
    free(text);
    return value;
}

/* Pipe commands; each is answered with one string. */
static bool s_on_command(fake_t *f, zsock_t *pipe)
{
    zmsg_t *cmd = zmsg_recv(pipe);
    char *verb = cmd ? zmsg_popstr(cmd) : NULL;
    bool go_on = verb && strcmp(verb, "$TERM") != 0;
    char reply[64] = "ok";
    if (!go_on) {
        /* the actor ends */
    } else if (strcmp(verb, "append") == 0) {
        char *topic = zmsg_popstr(cmd), *key = zmsg_popstr(cmd), *value = zmsg_popstr(cmd);
        ck_assert_uint_lt(f->n_log, MAX_LOG);
        log_entry_t *e = &f->log[f->n_log];
        e->seq = f->n_log ? f->log[f->n_log - 1].seq + 1 : 1;
        snprintf(e->topic, sizeof e->topic, "%s", topic);
        e->len = s_encode_entry(e->bytes, e->seq, topic, key, value);
        f->n_log++;
        snprintf(reply, sizeof reply, "%llu", (unsigned long long)e->seq);
        free(topic);
        free(key);
        free(value);
    } else if (strcmp(verb, "publish") == 0 || strcmp(verb, "drop") == 0) {
        uint64_t first = s_arg(cmd);
        uint64_t last = zmsg_size(cmd) ? s_arg(cmd) : first;
        s_publish(f, first, last, verb[0] == 'd');
    } else if (strcmp(verb, "heartbeat") == 0) {
        s_heartbeat(f);
    } else if (strcmp(verb, "restart") == 0) {
        f->instance = s_arg(cmd);
        f->start_seq = s_arg(cmd);
        f->covered = f->start_seq - 1;
        f->n_sent = 0;
    } else if (strcmp(verb, "raw") == 0) {
        zmsg_send(&cmd, f->xpub); /* the frames after the verb, as they are */
    } else if (strcmp(verb, "bad_replay") == 0) {
        f->bad_replays++;
    } else if (strcmp(verb, "deliver") == 0) {
        uint64_t first = s_arg(cmd);
        s_deliver(f, first, s_arg(cmd));
    } else if (strcmp(verb, "gone") == 0) {
        f->gone = true;
    } else if (strcmp(verb, "wait") == 0) {
        char *prefix = zmsg_popstr(cmd);
        bool seen = false;
        for (char *line = zlist_first(f->requests); line; line = zlist_next(f->requests))
            seen = seen || strncmp(line, prefix, strlen(prefix)) == 0;
        if (!seen) {
            f->waiting = prefix; /* answered by s_record */
            reply[0] = '\0';
        } else {
            free(prefix);
        }
    } else if (strcmp(verb, "requests") == 0) {
        size_t n = 0;
        for (char *line = zlist_first(f->requests); line; line = zlist_next(f->requests))
            n += strlen(line) + 1;
        char *all = calloc(1, n + 1);
        for (char *line = zlist_first(f->requests); line; line = zlist_next(f->requests))
            strcat(strcat(all, line), "\n");
        zstr_send(pipe, all);
        free(all);
        reply[0] = '\0';
    } else {
        ck_abort_msg("fake distributor: unknown command %s", verb);
    }
    if (go_on && reply[0])
        zstr_send(pipe, reply);
    free(verb);
    zmsg_destroy(&cmd);
    return go_on;
}

static void s_fake_actor(zsock_t *pipe, void *arg)
{
    fake_t *f = arg;
    f->xpub = zsock_new(ZMQ_XPUB);
    zsock_set_xpub_verbose(f->xpub, 1);
    zsock_set_sndhwm(f->xpub, 0);
    f->pub_port = zsock_bind(f->xpub, "tcp://127.0.0.1:*");
    f->router = zsock_new(ZMQ_ROUTER);
    f->history_port = zsock_bind(f->router, "tcp://127.0.0.1:*");
    f->requests = zlist_new();
    zlist_autofree(f->requests);
    zpoller_t *poller = zpoller_new(pipe, f->xpub, f->router, NULL);
    zsock_signal(pipe, 0);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == f->xpub)
            s_on_subscription(f, pipe);
        else if (which == f->router)
            s_on_request(f, pipe);
        else if (which != pipe || !s_on_command(f, pipe))
            break;
    }
    zpoller_destroy(&poller);
    zlist_destroy(&f->requests);
    zstr_free(&f->waiting);
    zframe_destroy(&f->session_routing);
    zsock_destroy(&f->xpub);
    zsock_destroy(&f->router);
}

typedef struct {
    fake_t *state;
    zactor_t *actor;
    char stream[64], history[64];
} fake_handle_t;

static fake_handle_t s_fake_start(fake_t *state)
{
    if (!state->page_entries)
        state->page_entries = 2;
    state->instance = 7;
    state->start_seq = 1;
    fake_handle_t fake = {.state = state};
    fake.actor = zactor_new(s_fake_actor, state);
    ck_assert_ptr_nonnull(fake.actor);
    zsock_set_rcvtimeo(fake.actor, WAIT_MS);
    snprintf(fake.stream, sizeof fake.stream, "tcp://127.0.0.1:%d", state->pub_port);
    snprintf(fake.history, sizeof fake.history, "tcp://127.0.0.1:%d", state->history_port);
    return fake;
}

/* One command (NULL-terminated words); returns the fake's answer (freed by the caller). */
static char *s_cmd(fake_handle_t *fake, const char *verb, ...)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, verb);
    va_list ap;
    va_start(ap, verb);
    for (const char *word; (word = va_arg(ap, const char *));)
        zmsg_addstr(msg, word);
    va_end(ap);
    zmsg_send(&msg, fake->actor);
    char *answer = zstr_recv(fake->actor);
    ck_assert_msg(answer != NULL, "fake distributor: no answer to %s", verb);
    return answer;
}

static void s_do(fake_handle_t *fake, const char *verb, const char *arg1, const char *arg2)
{
    free(s_cmd(fake, verb, arg1, arg2, NULL));
}

static void s_seqs(fake_handle_t *fake, const char *verb, uint64_t first, uint64_t last)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%llu", (unsigned long long)first);
    snprintf(b, sizeof b, "%llu", (unsigned long long)last);
    s_do(fake, verb, a, b);
}

static uint64_t s_append(fake_handle_t *fake, const char *topic, const char *key)
{
    char value[64];
    snprintf(value, sizeof value, "value of %s", key);
    char *seq = s_cmd(fake, "append", topic, key, value, NULL);
    uint64_t n = strtoull(seq, NULL, 10);
    free(seq);
    return n;
}

/* Blocks until the fake has seen a request starting with prefix. */
static void s_wait(fake_handle_t *fake, const char *prefix)
{
    free(s_cmd(fake, "wait", prefix, NULL));
}

static bool s_saw(fake_handle_t *fake, const char *line)
{
    char *all = s_cmd(fake, "requests", NULL);
    char want[256];
    snprintf(want, sizeof want, "%s\n", line);
    bool found = strstr(all, want) != NULL;
    if (!found)
        fprintf(stderr, "requests lack '%s':\n%s", line, all);
    free(all);
    return found;
}

static void s_fake_stop(fake_handle_t *fake)
{
    zactor_destroy(&fake->actor);
}

/* ---- subscriber helpers --------------------------------------------------- */

static strata_sub_t *s_open(const strata_sub_options_t *opts)
{
    strata_sub_t *sub = NULL;
    strata_error_t err;
    int rc = strata_sub_open(opts, &sub, &err);
    ck_assert_msg(rc == 0, "open: %d %s", rc, err.msg);
    return sub;
}

/* The next entry, which must be seq of topic; checks the raw bytes too. */
static void s_expect(strata_sub_t *sub, uint64_t seq, const char *topic)
{
    strata_entry_t e;
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    strata_error_t err;
    int rc = strata_sub_next(sub, WAIT_MS, &e, &raw, &raw_len, &err);
    ck_assert_msg(rc == 0, "next (want seq %llu): %d %s", (unsigned long long)seq, rc, err.msg);
    ck_assert_msg(e.seq == seq, "got seq %llu, want %llu", (unsigned long long)e.seq,
                  (unsigned long long)seq);
    ck_assert_uint_eq(e.topic_len, strlen(topic));
    ck_assert_mem_eq(e.topic, topic, e.topic_len);
    ck_assert_uint_eq(e.timestamp_ns, seq * TS_PER_SEQ);
    ck_assert_uint_eq(e.term, TERM);
    ck_assert_uint_eq(raw_len, 40 + e.topic_len + e.key_len + e.value_len);
    ck_assert_ptr_eq(e.topic, raw + 40);
    char value[64];
    snprintf(value, sizeof value, "value of %.*s", (int)e.key_len, (const char *)e.key);
    ck_assert_uint_eq(e.value_len, strlen(value));
    ck_assert_mem_eq(e.value, value, e.value_len);
}

static void s_expect_nothing(strata_sub_t *sub)
{
    strata_entry_t e;
    strata_error_t err;
    int rc = strata_sub_next(sub, 0, &e, NULL, NULL, &err);
    ck_assert_msg(rc == STRATA_ETIMEDOUT, "next: %d (seq %llu) %s", rc, (unsigned long long)e.seq,
                  err.msg);
}

static int s_expect_error(strata_sub_t *sub, int code, const char *want)
{
    strata_entry_t e;
    strata_error_t err;
    int rc = strata_sub_next(sub, WAIT_MS, &e, NULL, NULL, &err);
    ck_assert_msg(rc == code, "next: %d, want %d: %s", rc, code, rc ? err.msg : "");
    ck_assert_msg(strstr(err.msg, want), "error '%s' lacks '%s'", err.msg, want);
    return rc;
}

/* Calls next (expecting nothing to deliver) until cond holds, up to WAIT_MS. */
static void s_pump_until(strata_sub_t *sub, bool (*cond)(strata_sub_t *, uint64_t), uint64_t arg)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)WAIT_MS * 1000000;
    while (!cond(sub, arg)) {
        ck_assert_msg(ts_now_ns() < deadline, "condition not met within %d ms", WAIT_MS);
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 20, &e, NULL, NULL, &err);
        ck_assert_msg(rc == STRATA_ETIMEDOUT, "next: %d (seq %llu) %s", rc,
                      (unsigned long long)e.seq, err.msg);
    }
}

static bool s_duplicates_reach(strata_sub_t *sub, uint64_t n)
{
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    return stats.duplicates >= n;
}

static bool s_durable_reaches(strata_sub_t *sub, uint64_t seq)
{
    return strata_sub_durable_seq(sub) >= seq;
}

static bool s_resubscribed(strata_sub_t *sub, uint64_t n)
{
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    return stats.resubscribes >= n;
}

/* A live subscription to topics (none: all) on a fresh fake. */
static strata_sub_t *s_open_live(fake_handle_t *fake, const char *const *topics, size_t n)
{
    strata_sub_options_t opts = {.stream_endpoint = fake->stream,
                                 .history_endpoint = fake->history,
                                 .topics = topics,
                                 .n_topics = n,
                                 .timeout_ms = WAIT_MS};
    return s_open(&opts);
}

/* ---- live ------------------------------------------------------------------ */

START_TEST(live_entries_arrive_in_order_and_dollar_topics_are_skipped)
{
    fake_t state = {.expect_subs = 2}; /* "" and "$hb" */
    fake_handle_t fake = s_fake_start(&state);
    strata_sub_t *sub = s_open_live(&fake, NULL, 0);
    ck_assert(s_saw(&fake, "sub "));
    ck_assert(s_saw(&fake, "sub $hb"));

    s_append(&fake, "orders", "o1");
    s_append(&fake, "trades", "t1");
    s_append(&fake, "$sys", "offset");
    s_append(&fake, "orders", "o2");
    s_append(&fake, "orders", "o3");
    s_seqs(&fake, "publish", 1, 1);
    s_seqs(&fake, "publish", 2, 2);
    s_seqs(&fake, "publish", 3, 3);
    s_seqs(&fake, "publish", 4, 5); /* one message of two entries, as the delayed tier sends */
    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "trades");
    s_expect(sub, 4, "orders");
    s_expect(sub, 5, "orders");
    s_expect_nothing(sub);

    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 4);
    ck_assert_uint_eq(stats.replayed, 0);
    ck_assert_uint_eq(stats.gaps, 0);
    ck_assert_uint_eq(stats.duplicates, 0);
    strata_sub_close(&sub);
    ck_assert_ptr_null(sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(dropped_messages_are_repaired_in_pages_topic_exact)
{
    fake_t state = {.expect_subs = 2}; /* "orders" and "$hb" */
    fake_handle_t fake = s_fake_start(&state);
    const char *topics[] = {"orders"};
    strata_sub_t *sub = s_open_live(&fake, topics, 1);

    s_append(&fake, "orders", "o1");  /* 1 */
    s_append(&fake, "orders", "o2");  /* 2 */
    s_append(&fake, "orders", "o3");  /* 3: lost */
    s_append(&fake, "orders2", "x4"); /* 4: another topic under the prefix */
    s_append(&fake, "orders", "o5");  /* 5: lost */
    s_append(&fake, "orders", "o6");  /* 6 */
    s_seqs(&fake, "publish", 1, 1);
    s_seqs(&fake, "publish", 2, 2);
    s_seqs(&fake, "drop", 3, 3);
    s_seqs(&fake, "publish", 4, 4);
    s_seqs(&fake, "drop", 5, 5);
    s_seqs(&fake, "publish", 6, 6);

    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "orders");
    s_expect(sub, 4, "orders2");
    /* 6 says orders' previous was 5; L[orders] is 2: replay 3..5 of
     * "orders", two entries a page; 4 comes back and is not delivered again. */
    s_expect(sub, 3, "orders");
    s_expect(sub, 5, "orders");
    s_expect(sub, 6, "orders");
    s_expect_nothing(sub);
    ck_assert(s_saw(&fake, "replay 3 5 orders t=0"));
    ck_assert(s_saw(&fake, "replay 5 5 orders t=0"));

    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 6);
    ck_assert_uint_eq(stats.replayed, 2);
    ck_assert_uint_eq(stats.gaps, 1);
    ck_assert_uint_eq(stats.duplicates, 0);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

/* The live tier sends a backlog as messages of several entries of one
 * topic (DISTRIBUTION.md revision 7): each entry is delivered once, and a
 * lost message of several shows as one gap, repaired whole. */
START_TEST(live_messages_of_several_entries_deliver_each_once_and_repair_as_one_gap)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    strata_sub_t *sub = s_open_live(&fake, NULL, 0);
    s_append(&fake, "orders", "o1");
    s_append(&fake, "orders", "o2");
    s_append(&fake, "orders", "o3");
    s_append(&fake, "trades", "t4");
    s_append(&fake, "orders", "o5"); /* 5 and 6: lost in one message */
    s_append(&fake, "orders", "o6");
    s_append(&fake, "orders", "o7");
    s_append(&fake, "orders", "o8");
    s_seqs(&fake, "publish", 1, 3);
    s_seqs(&fake, "publish", 4, 4);
    s_seqs(&fake, "drop", 5, 6);
    s_seqs(&fake, "publish", 7, 8);
    for (uint64_t seq = 1; seq <= 8; seq++)
        s_expect(sub, seq, seq == 4 ? "trades" : "orders");
    s_expect_nothing(sub);
    /* L[orders] was 3: the replay is of "orders" alone, so 4 is not resent. */
    ck_assert(s_saw(&fake, "replay 4 6 orders t=0"));

    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 8);
    ck_assert_uint_eq(stats.replayed, 2);
    ck_assert_uint_eq(stats.gaps, 1);
    ck_assert_uint_eq(stats.duplicates, 0);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(heartbeat_reveals_a_lost_last_message)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    const char *topics[] = {"orders"};
    strata_sub_t *sub = s_open_live(&fake, topics, 1);
    s_append(&fake, "orders", "o1");
    s_append(&fake, "trades", "t2"); /* not subscribed: never repaired */
    s_append(&fake, "orders", "o3");
    s_seqs(&fake, "publish", 1, 1);
    s_seqs(&fake, "drop", 2, 2);
    s_seqs(&fake, "drop", 3, 3);
    s_do(&fake, "heartbeat", NULL, NULL);
    s_expect(sub, 1, "orders");
    s_expect(sub, 3, "orders");
    s_expect_nothing(sub);
    ck_assert(s_saw(&fake, "replay 2 3 orders t=0"));
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.gaps, 1);
    ck_assert_uint_eq(stats.replayed, 1);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(writes_without_a_topic_travel_and_repair_as_kv)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    const char *topics[] = {"kv"};
    strata_sub_t *sub = s_open_live(&fake, topics, 1);
    for (int i = 0; i < 3; i++)
        s_append(&fake, "", "k");
    s_seqs(&fake, "publish", 1, 1);
    s_seqs(&fake, "drop", 2, 2);
    s_seqs(&fake, "publish", 3, 3);
    s_expect(sub, 1, ""); /* the entry as written: no topic */
    s_expect(sub, 2, "");
    s_expect(sub, 3, "");
    ck_assert(s_saw(&fake, "replay 2 2 kv t=0"));
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(new_instance_repairs_up_to_its_start_seq)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    strata_sub_t *sub = s_open_live(&fake, NULL, 0);
    s_append(&fake, "orders", "o1");
    s_append(&fake, "orders", "o2");
    s_append(&fake, "trades", "t3");
    s_append(&fake, "orders", "o4");
    s_append(&fake, "orders", "o5");
    s_seqs(&fake, "publish", 1, 1);
    s_do(&fake, "heartbeat", NULL, NULL); /* covered 1, list whole: B moves to 1 */
    /* 2..4 went out from the old instance while we were cut off; a new
     * instance starts at 5. */
    s_do(&fake, "restart", "8", "5");
    s_seqs(&fake, "publish", 5, 5);
    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "orders");
    s_expect(sub, 3, "trades");
    s_expect(sub, 4, "orders");
    s_expect(sub, 5, "orders");
    s_expect_nothing(sub);
    ck_assert(s_saw(&fake, "replay 2 4 * t=0"));
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.gaps, 1);
    ck_assert_uint_eq(stats.replayed, 3);
    ck_assert_uint_eq(stats.duplicates, 0);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

/* ---- replay, then live ------------------------------------------------------ */

START_TEST(from_seq_hands_off_to_live_without_gap_or_duplicate)
{
    fake_t state = {.expect_subs = 2, .hb_publish = 4};
    fake_handle_t fake = s_fake_start(&state);
    s_append(&fake, "orders", "o1");
    s_append(&fake, "orders", "o2");
    s_append(&fake, "trades", "t3");
    s_append(&fake, "orders", "o4"); /* sent after the subscriptions, before the heartbeat */
    s_append(&fake, "orders", "o5");
    s_append(&fake, "trades", "t6");
    s_seqs(&fake, "publish", 1, 1); /* before anyone subscribed */
    s_seqs(&fake, "publish", 2, 2);
    s_seqs(&fake, "publish", 3, 3);

    strata_sub_options_t opts = {.stream_endpoint = fake.stream,
                                 .history_endpoint = fake.history,
                                 .from_seq = 2,
                                 .timeout_ms = WAIT_MS};
    strata_sub_t *sub = s_open(&opts);
    /* open fetched the first page (2, 3); 5 and 6 arrive while the replay
     * is still going; 4 is both replayed and in the buffer. */
    ck_assert(s_saw(&fake, "replay 2 4 * t=0"));
    s_seqs(&fake, "publish", 5, 5);
    s_seqs(&fake, "publish", 6, 6);
    s_expect(sub, 2, "orders");
    s_expect(sub, 3, "trades");
    s_expect(sub, 4, "orders");
    s_expect(sub, 5, "orders");
    s_expect(sub, 6, "trades");
    s_expect_nothing(sub);
    ck_assert(s_saw(&fake, "replay 4 4 * t=0"));
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 5);
    ck_assert_uint_eq(stats.replayed, 3);
    ck_assert_uint_eq(stats.duplicates, 1);
    ck_assert_uint_eq(stats.gaps, 0);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(from_time_starts_at_the_first_entry_committed_then)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    for (int i = 0; i < 4; i++)
        s_append(&fake, "orders", i % 2 ? "b" : "a");
    s_seqs(&fake, "publish", 1, 4);
    strata_sub_options_t opts = {.stream_endpoint = fake.stream,
                                 .history_endpoint = fake.history,
                                 .from_time_ns = 3 * TS_PER_SEQ,
                                 .timeout_ms = WAIT_MS};
    strata_sub_t *sub = s_open(&opts);
    s_append(&fake, "orders", "c");
    s_seqs(&fake, "publish", 5, 5);
    s_expect(sub, 3, "orders");
    s_expect(sub, 4, "orders");
    s_expect(sub, 5, "orders");
    s_expect_nothing(sub);
    ck_assert(s_saw(&fake, "replay 0 4 * t=3000"));
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(truncated_history_is_reported_and_a_repair_is_given_up)
{
    fake_t state = {.expect_subs = 2, .oldest = 3};
    fake_handle_t fake = s_fake_start(&state);
    for (int i = 0; i < 5; i++)
        s_append(&fake, "orders", "k");
    s_seqs(&fake, "publish", 1, 1);
    strata_sub_options_t opts = {.stream_endpoint = fake.stream,
                                 .history_endpoint = fake.history,
                                 .from_seq = 1,
                                 .timeout_ms = WAIT_MS};
    strata_sub_t *sub = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_ETRUNCATED);
    ck_assert_ptr_null(sub);
    ck_assert_msg(strstr(err.msg, "oldest retained, 3"), "message: %s", err.msg);

    /* Live from 1: 2 is lost and older than the log keeps. */
    opts.from_seq = 0;
    sub = s_open(&opts);
    s_seqs(&fake, "drop", 2, 2);
    s_seqs(&fake, "publish", 3, 3);
    s_expect_error(sub, STRATA_ETRUNCATED, "topic 'orders' seqs 2..2");
    s_expect(sub, 3, "orders");
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

/* ---- durable ------------------------------------------------------------------ */

static strata_sub_t *s_open_durable(fake_handle_t *fake)
{
    strata_sub_options_t opts = {
        .history_endpoint = fake->history, .durable = "app", .window = 50, .timeout_ms = WAIT_MS};
    return s_open(&opts);
}

START_TEST(durable_session_delivers_drops_resends_and_acks)
{
    fake_t state = {.stored_acked = 2};
    fake_handle_t fake = s_fake_start(&state);
    for (int i = 0; i < 5; i++)
        s_append(&fake, i % 2 ? "trades" : "orders", "k");
    strata_sub_t *sub = s_open_durable(&fake);
    ck_assert(s_saw(&fake, "subscribe app w=50 from=0 *"));
    ck_assert_uint_eq(strata_sub_acked_seq(sub), 2);
    s_expect(sub, 3, "orders");
    s_expect(sub, 4, "trades");

    strata_error_t err;
    ck_assert_int_eq(strata_sub_ack(sub, 5, &err), STRATA_EINVAL); /* not delivered yet */
    s_expect(sub, 5, "orders");

    /* No ack came in time: the distributor resends from acked + 1. */
    s_seqs(&fake, "deliver", 3, 5);
    s_pump_until(sub, s_duplicates_reach, 3);

    ck_assert_int_eq(strata_sub_ack(sub, 4, &err), 0);
    s_wait(&fake, "ack app 4");
    ck_assert_int_eq(strata_sub_ack(sub, 5, &err), 0);
    s_wait(&fake, "ack app 5");
    s_pump_until(sub, s_durable_reaches, 5);
    ck_assert_uint_eq(strata_sub_durable_seq(sub), 5);
    ck_assert_int_eq(strata_sub_ack(sub, 3, &err), 0); /* covered already: nothing sent */

    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 3);
    ck_assert_uint_eq(stats.duplicates, 3);
    ck_assert_uint_eq(stats.resubscribes, 0);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(ack_to_a_gone_session_subscribes_again)
{
    fake_t state = {0};
    fake_handle_t fake = s_fake_start(&state);
    for (int i = 0; i < 3; i++)
        s_append(&fake, "orders", "k");
    strata_sub_t *sub = s_open_durable(&fake);
    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "orders");
    s_expect(sub, 3, "orders");
    s_append(&fake, "orders", "k"); /* 4: the new session brings it */
    s_do(&fake, "gone", NULL, NULL);
    strata_error_t err;
    ck_assert_int_eq(strata_sub_ack(sub, 2, &err), 0);
    /* ENOTFOUND: subscribe again; the session restarts at the stored 0,
     * so 1..3 come again and are dropped, and the lost ack is sent again. */
    s_expect(sub, 4, "orders");
    s_pump_until(sub, s_durable_reaches, 2); /* only the second ack 2 is answered */
    ck_assert(s_saw(&fake, "subscribe app w=50 from=0 *"));
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.resubscribes, 1);
    ck_assert_uint_eq(stats.duplicates, 3);
    ck_assert_uint_eq(stats.delivered, 4);
    ck_assert(s_resubscribed(sub, 1));
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(idle_durable_session_sends_keepalive_acks)
{
    fake_t state = {.stored_acked = 9};
    fake_handle_t fake = s_fake_start(&state);
    strata_sub_t *sub = s_open_durable(&fake);
    ck_assert_uint_eq(strata_sub_acked_seq(sub), 9);
    strata_entry_t e;
    strata_error_t err;
    /* One second idle inside next: the same ack again. */
    ck_assert_int_eq(strata_sub_next(sub, 1300, &e, NULL, NULL, &err), STRATA_ETIMEDOUT);
    s_wait(&fake, "ack app 9");
    strata_sub_close(&sub);

    /* Not durable: no acks. */
    fake_t live_state = {.expect_subs = 2};
    fake_handle_t live = s_fake_start(&live_state);
    sub = s_open_live(&live, NULL, 0);
    ck_assert_int_eq(strata_sub_ack(sub, 1, &err), STRATA_EINVAL);
    strata_sub_close(&sub);
    s_fake_stop(&live);
    s_fake_stop(&fake);
}
END_TEST

/* ---- hostile input --------------------------------------------------------- */

/* Sends topic, meta, body as one PUB message of n_frames (2 or 3). */
static void s_raw(fake_handle_t *fake, const char *topic, const uint8_t *meta, size_t meta_len,
                  const uint8_t *body, size_t body_len, int n_frames)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "raw");
    zmsg_addstr(msg, topic);
    zmsg_addmem(msg, meta, meta_len);
    if (n_frames > 2)
        zmsg_addmem(msg, body, body_len);
    zmsg_send(&msg, fake->actor);
    char *answer = zstr_recv(fake->actor);
    ck_assert_ptr_nonnull(answer);
    free(answer);
}

START_TEST(garbage_messages_are_errors_and_their_gaps_are_repaired)
{
    fake_t state = {.expect_subs = 2};
    fake_handle_t fake = s_fake_start(&state);
    strata_sub_t *sub = s_open_live(&fake, NULL, 0);
    s_append(&fake, "orders", "o1");
    s_append(&fake, "orders", "o2");
    uint8_t entry[ENTRY_MAX], meta[40];
    size_t len = s_encode_entry(entry, 1, "orders", "o1", "value of o1");

    s_meta(meta, 3, 1, 1, 0, 7, 1, TERM);
    s_raw(&fake, "orders", meta, 40, entry, len, 3);
    s_expect_error(sub, STRATA_EVERSION, "meta version 3");
    s_meta(meta, 2, 1, 1, 0, 7, 1, TERM + 4);
    s_raw(&fake, "orders", meta, 40, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "meta term 5, but its last entry (seq 1) has term 1");
    s_meta(meta, 2, 1, 1, 0, 7, 1, TERM);
    s_raw(&fake, "orders", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "meta of 32 bytes, expected 40 for version 2");

    s_meta(meta, 1, 1, 2, 0, 7, 1, 0);
    s_raw(&fake, "orders", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "count 2 cannot fit");
    s_meta(meta, 1, 1, 1, 0, 7, 1, 0);
    uint8_t twice[2 * ENTRY_MAX];
    memcpy(twice, entry, len);
    memcpy(twice + len, entry, len);
    s_raw(&fake, "orders", meta, 32, twice, 2 * len, 3);
    s_expect_error(sub, STRATA_EINVAL, "1 entries use");

    entry[len - 1] ^= 0x20;
    s_raw(&fake, "orders", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_ECORRUPT, "bad crc");
    /* Broken and claiming a new instance from seq 1000: dropped before it
     * can start a replay of everything below 1000. */
    s_meta(meta, 1, 1, 1, 0, 99, 1000, 0);
    s_raw(&fake, "orders", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_ECORRUPT, "bad crc");
    s_meta(meta, 1, 1, 1, 0, 7, 1, 0);
    entry[len - 1] ^= 0x20;

    s_raw(&fake, "orders", meta, 31, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "meta of 31 bytes");
    s_raw(&fake, "orders", meta, 32, NULL, 0, 2);
    s_expect_error(sub, STRATA_EINVAL, "2 frames");
    s_raw(&fake, "trades", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "another topic");
    s_meta(meta, 1, 2, 0, 0, 7, 1, 0);
    s_raw(&fake, "$hb", meta, 32, (const uint8_t *)"short", 5, 3);
    s_expect_error(sub, STRATA_EINVAL, "heartbeat of 5 bytes");
    s_meta(meta, 1, 9, 1, 0, 7, 1, 0);
    s_raw(&fake, "orders", meta, 32, entry, len, 3);
    s_expect_error(sub, STRATA_EINVAL, "kind 9 unknown");

    /* Nothing of 1 was delivered; 2 says it follows 1: repaired from history,
     * whose first page is broken once (an error, retried by the next call). */
    s_do(&fake, "bad_replay", NULL, NULL);
    s_seqs(&fake, "drop", 1, 1);
    s_seqs(&fake, "publish", 2, 2);
    s_expect_error(sub, STRATA_EINVAL, "count 2 cannot fit");
    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "orders");
    s_expect_nothing(sub);
    char *requests = s_cmd(&fake, "requests", NULL);
    ck_assert_msg(!strstr(requests, "replay 1 999"), "requests:\n%s", requests);
    ck_assert_msg(strstr(requests, "replay 1 1 orders"), "requests:\n%s", requests);
    free(requests);
    strata_sub_close(&sub);
    s_fake_stop(&fake);
}
END_TEST

START_TEST(bad_options_are_einval_and_an_absent_distributor_times_out)
{
    strata_sub_t *sub = NULL;
    strata_error_t err;
    const char *many[STRATA_PROTO_MAX_TOPICS + 1];
    for (size_t i = 0; i <= STRATA_PROTO_MAX_TOPICS; i++)
        many[i] = "t";
    strata_sub_options_t opts = {.topics = many, .n_topics = STRATA_PROTO_MAX_TOPICS + 1};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    const char *empty[] = {""};
    opts = (strata_sub_options_t){.topics = empty, .n_topics = 1};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    char name[STRATA_PROTO_MAX_NAME + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    opts = (strata_sub_options_t){.durable = name};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    opts = (strata_sub_options_t){.durable = "app", .from_time_ns = 5};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    opts = (strata_sub_options_t){.stream_endpoint = "nonsense"};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "nonsense"), "names the endpoint: %s", err.msg);
    ck_assert_ptr_null(sub);

    /* A port held by a socket that never answers: freeing it instead would
     * let another test's server take it meanwhile. */
    zsock_t *placeholder = zsock_new(ZMQ_DEALER);
    int port = zsock_bind(placeholder, "tcp://127.0.0.1:*");
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    opts = (strata_sub_options_t){
        .stream_endpoint = endpoint, .history_endpoint = endpoint, .timeout_ms = 100};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_ETIMEDOUT);
    ck_assert_msg(strstr(err.msg, "no heartbeat"), "message: %s", err.msg);
    opts.durable = "app";
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_ETIMEDOUT);
    ck_assert_ptr_null(sub);

    /* Nodes: every node needs both endpoints, and replaces the single pair. */
    strata_sub_node_t nodes[2] = {{endpoint, endpoint}, {endpoint, NULL}};
    opts = (strata_sub_options_t){.nodes = nodes, .n_nodes = 2};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "node 1: needs both"), "message: %s", err.msg);
    opts = (strata_sub_options_t){.nodes = nodes, .n_nodes = 1, .stream_endpoint = endpoint};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "put every endpoint in nodes"), "message: %s", err.msg);
    opts = (strata_sub_options_t){.nodes = nodes, .n_nodes = 1, .durable = "app"};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "durable session is held by one node"), "message: %s", err.msg);
    opts = (strata_sub_options_t){.nodes = nodes, .n_nodes = STRATA_SUB_MAX_NODES + 1};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    opts = (strata_sub_options_t){.nodes = nodes, .n_nodes = 1, .failover_ms = -1};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "failover_ms: -1"), "message: %s", err.msg);
    /* Two silent nodes: open tries each for failover_ms, then says so. */
    nodes[1].history_endpoint = endpoint;
    opts = (strata_sub_options_t){
        .nodes = nodes, .n_nodes = 2, .failover_ms = 100, .timeout_ms = WAIT_MS};
    ck_assert_int_eq(strata_sub_open(&opts, &sub, &err), STRATA_ETIMEDOUT);
    ck_assert_msg(strstr(err.msg, "no heartbeat from any of the 2 nodes"), "message: %s", err.msg);
    ck_assert_ptr_null(sub);
    zsock_destroy(&placeholder);
}
END_TEST

/* ---- terms and failover -------------------------------------------------------- */

/* A distributor before meta version 2 is still read (its term reads 0);
 * a version 2 one says the term, and every entry carries its own. */
START_TEST(meta_version_1_is_read_and_version_2_carries_the_term)
{
    for (uint8_t version = 1; version <= 2; version++) {
        fake_t state = {.expect_subs = 2, .meta_version = version};
        fake_handle_t fake = s_fake_start(&state);
        strata_sub_t *sub = s_open_live(&fake, NULL, 0);
        s_append(&fake, "orders", "o1");
        s_append(&fake, "orders", "o2");
        s_seqs(&fake, "publish", 1, 1);
        s_seqs(&fake, "publish", 2, 2);
        s_expect(sub, 1, "orders"); /* checks e.term */
        s_expect(sub, 2, "orders");
        s_expect_nothing(sub);
        ck_assert_uint_eq(strata_sub_term(sub), version == 1 ? 0 : TERM);
        strata_sub_close(&sub);
        s_fake_stop(&fake);
    }
}
END_TEST

static bool s_failovers_reach(strata_sub_t *sub, uint64_t n)
{
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    return stats.failovers >= n;
}

/* Node A goes silent after delivering 1..3; node B, which has published
 * up to 4, is read from where A stopped: 4 from B's history (its heartbeat
 * says orders reached 4), 5 live. Then B goes silent and C, which is
 * behind (it published up to 3), resends 4 and 5: dropped as duplicates,
 * and 6 delivered. Nothing twice and nothing missing. */
START_TEST(a_silent_node_is_left_for_the_next_without_gap_or_duplicate)
{
    fake_t state_a = {.expect_subs = 2}, state_b = {.expect_subs = 2}, state_c = {.expect_subs = 2};
    fake_handle_t a = s_fake_start(&state_a), b = s_fake_start(&state_b),
                  c = s_fake_start(&state_c);
    fake_handle_t *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        s_append(all[i], "orders", "o1");
        s_append(all[i], "trades", "t1");
        s_append(all[i], "orders", "o2");
        s_append(all[i], "orders", "o3");
        s_append(all[i], "trades", "t2");
        s_append(all[i], "orders", "o4");
    }
    strata_sub_node_t nodes[3] = {
        {a.stream, a.history}, {b.stream, b.history}, {c.stream, c.history}};
    strata_sub_options_t opts = {
        .nodes = nodes, .n_nodes = 3, .failover_ms = 300, .timeout_ms = WAIT_MS};
    strata_sub_t *sub = s_open(&opts);
    ck_assert_uint_eq(strata_sub_node(sub), 0);
    s_seqs(&a, "publish", 1, 1);
    s_seqs(&a, "publish", 2, 2);
    s_seqs(&a, "publish", 3, 3);
    /* Read only after failover_ms has passed: what A sent meanwhile is
     * queued, so A is not silent. Time passing is the point here, not
     * something to wait for. */
    uint64_t late = ts_now_ns() + 400 * 1000000ull;
    while (ts_now_ns() < late) {
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL);
    }
    s_expect(sub, 1, "orders");
    s_expect(sub, 2, "trades");
    s_expect(sub, 3, "orders");
    strata_sub_stats_t stats;
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.failovers, 0);
    /* B publishes 1..4 before the subscriber reaches it: only its history
     * and its heartbeat can tell of them. */
    for (uint64_t seq = 1; seq <= 4; seq++)
        s_seqs(&b, "publish", seq, seq);
    s_fake_stop(&a);

    s_expect(sub, 4, "orders");
    ck_assert_uint_eq(strata_sub_node(sub), 1);
    ck_assert(s_saw(&b, "replay 4 4 orders t=0"));
    s_seqs(&b, "publish", 5, 5);
    s_expect(sub, 5, "trades");
    s_expect_nothing(sub);
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.failovers, 1);
    ck_assert_uint_eq(stats.delivered, 5);
    ck_assert_uint_eq(stats.duplicates, 0);
    ck_assert_uint_eq(strata_sub_term(sub), TERM);

    for (uint64_t seq = 1; seq <= 3; seq++)
        s_seqs(&c, "publish", seq, seq);
    s_fake_stop(&b);
    s_pump_until(sub, s_failovers_reach, 2);
    ck_assert_uint_eq(strata_sub_node(sub), 2);
    s_wait(&c, "sub $hb"); /* C's heartbeat is out: what it publishes now reaches us */
    for (uint64_t seq = 4; seq <= 6; seq++)
        s_seqs(&c, "publish", seq, seq);
    s_expect(sub, 6, "orders");
    s_expect_nothing(sub);
    strata_sub_stats(sub, &stats);
    ck_assert_uint_eq(stats.delivered, 6);
    ck_assert_uint_eq(stats.duplicates, 2);
    ck_assert_uint_eq(stats.gaps, 1); /* B's heartbeat only */
    strata_sub_close(&sub);
    s_fake_stop(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("subscriber");
    TCase *live = tcase_create("live");
    tcase_add_test(live, live_entries_arrive_in_order_and_dollar_topics_are_skipped);
    tcase_add_test(live, dropped_messages_are_repaired_in_pages_topic_exact);
    tcase_add_test(live, live_messages_of_several_entries_deliver_each_once_and_repair_as_one_gap);
    tcase_add_test(live, heartbeat_reveals_a_lost_last_message);
    tcase_add_test(live, writes_without_a_topic_travel_and_repair_as_kv);
    tcase_add_test(live, new_instance_repairs_up_to_its_start_seq);
    suite_add_tcase(s, live);
    TCase *clone = tcase_create("replay_then_live");
    tcase_add_test(clone, from_seq_hands_off_to_live_without_gap_or_duplicate);
    tcase_add_test(clone, from_time_starts_at_the_first_entry_committed_then);
    tcase_add_test(clone, truncated_history_is_reported_and_a_repair_is_given_up);
    suite_add_tcase(s, clone);
    TCase *durable = tcase_create("durable");
    tcase_add_test(durable, durable_session_delivers_drops_resends_and_acks);
    tcase_add_test(durable, ack_to_a_gone_session_subscribes_again);
    tcase_add_test(durable, idle_durable_session_sends_keepalive_acks);
    suite_add_tcase(s, durable);
    TCase *bad = tcase_create("hostile");
    tcase_add_test(bad, garbage_messages_are_errors_and_their_gaps_are_repaired);
    tcase_add_test(bad, bad_options_are_einval_and_an_absent_distributor_times_out);
    TCase *nodes = tcase_create("nodes");
    tcase_add_test(nodes, meta_version_1_is_read_and_version_2_carries_the_term);
    tcase_add_test(nodes, a_silent_node_is_left_for_the_next_without_gap_or_duplicate);
    suite_add_tcase(s, nodes);
    suite_add_tcase(s, bad);
    return ts_run(s);
}
