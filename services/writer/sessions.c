/* Client sessions: a write that names a session (proto/PROTOCOL.md,
 * "Sessions") is applied at most once per request_id. Each such write
 * carries, in its own atomic group, a put of the node's key
 * \0strata/session/<id> = "<request_id> <seq>", so the record is in the
 * log with the write: replicated with it, cut with it, and read back by
 * the next master from its committed state. A map here holds the records
 * of the writes in flight and the ones looked up since. */
#define _GNU_SOURCE
#include "writer.h"

#define SESSION_KEY_PREFIX "\0strata/session/"
#define SESSION_KEY_LEN    (sizeof SESSION_KEY_PREFIX - 1 + 16)
/* Records kept in memory; past it the committed ones are dropped (the log
 * has them), so a flood of sessions costs lookups, not memory. */
#define SESSIONS_MAX 100000

typedef struct {
    uint64_t request_id;
    uint64_t seq; /* the write's last op */
} session_t;

static void key_of(uint64_t session, uint8_t key[SESSION_KEY_LEN])
{
    char hex[17]; /* the key holds the 16 digits, not snprintf's NUL */
    snprintf(hex, sizeof hex, "%016" PRIx64, session);
    memcpy(key, SESSION_KEY_PREFIX, sizeof SESSION_KEY_PREFIX - 1);
    memcpy(key + sizeof SESSION_KEY_PREFIX - 1, hex, 16);
}

static void session_free(void **item)
{
    free(*item);
    *item = NULL;
}

static zhashx_t *map(writer_t *w)
{
    if (!w->sessions) {
        w->sessions = zhashx_new();
        if (w->sessions)
            zhashx_set_destructor(w->sessions, session_free);
    }
    return w->sessions;
}

/* What the node knows of a session: the map, else its committed record. */
static int lookup(writer_t *w, uint64_t session, session_t *out, bool *found)
{
    char name[17];
    snprintf(name, sizeof name, "%016" PRIx64, session);
    session_t *s = map(w) ? zhashx_lookup(w->sessions, name) : NULL;
    if (s) {
        *out = *s;
        *found = true;
        return 0;
    }
    uint8_t key[SESSION_KEY_LEN];
    key_of(session, key);
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_db_get(w->db, NULL, key, sizeof key, &value, &len, &err);
    *found = false;
    if (rc == STRATA_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), (const char *)value);
    free(value);
    if (sscanf(text, "%" SCNu64 " %" SCNu64, &out->request_id, &out->seq) != 2)
        return STRATA_ECORRUPT;
    *found = true;
    return 0;
}

static void remember(writer_t *w, uint64_t session, const session_t *s)
{
    if (!map(w))
        return;
    if (zhashx_size(w->sessions) >= SESSIONS_MAX) {
        uint64_t done = w->cx ? strata_db_commit_seq(w->db) : strata_db_last_seq(w->db);
        zlistx_t *keys = zhashx_keys(w->sessions);
        for (char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
            session_t *old = zhashx_lookup(w->sessions, k);
            if (old && old->seq + 1 <= done)
                zhashx_delete(w->sessions, k);
        }
        zlistx_destroy(&keys);
    }
    char name[17];
    snprintf(name, sizeof name, "%016" PRIx64, session);
    session_t *copy = malloc(sizeof *copy);
    if (!copy)
        return;
    *copy = *s;
    zhashx_update(w->sessions, name, copy);
}

bool session_duplicate(ctx_t *c)
{
    writer_t *w = c->w;
    const strata_request_t *req = c->req;
    if (!req->session)
        return false;
    session_t s;
    bool found = false;
    int rc = lookup(w, req->session, &s, &found);
    if (rc) {
        reply_error(c, rc, "%s: session %016" PRIx64 ": its record cannot be read (%s)",
                    strata_op_name(req->op), req->session, strata_strerror(rc));
        return true;
    }
    if (!found || req->request_id > s.request_id)
        return false;
    if (req->request_id < s.request_id) {
        reply_error(c, STRATA_ECONFLICT,
                    "%s: request %" PRIu64 " of session %016" PRIx64
                    " is older than its last write, request %" PRIu64 "; it was decided before",
                    strata_op_name(req->op), req->request_id, req->session, s.request_id);
        return true;
    }
    /* The same request again: answer as the original is answered, once
     * its record (the op after its last) is as safe as the original's
     * reply required. A cluster node waits for the commit. */
    pending_t p = {.sock = c->sock,
                   .envelope = ctx_envelope(c),
                   .request_id = req->request_id,
                   .op = req->op,
                   .seq = s.seq + 1,
                   .reply_seq = s.seq,
                   .start_ns = c->start_ns};
    if (!w->cx) {
        pthread_mutex_lock(&w->sync_mu);
        bool durable = p.seq <= w->sync_done;
        pthread_mutex_unlock(&w->sync_mu);
        if (durable ||
            (req->durability == STRATA_DURABILITY_ASYNC && p.seq <= strata_db_last_seq(w->db))) {
            send_write_reply(w, &p);
            return true;
        }
    }
    /* Queued behind later writes, it may be answered a little after its
     * record is safe, never before. */
    if (pending_push(w->cx ? &w->committing : &w->pending, &p) != 0) {
        send_error(w, p.sock, &p.envelope, p.request_id, STRATA_ENOMEM,
                   "out of memory queueing the reply");
        return true;
    }
    if (w->cx)
        consensus_release(w);
    else
        want_sync(w, p.seq);
    return true;
}

int session_record(ctx_t *c, size_t n_ops)
{
    writer_t *w = c->w;
    const strata_request_t *req = c->req;
    if (!req->session)
        return 0;
    uint64_t base = w->n_staged ? w->stage_base : strata_db_appended_seq(w->db) + 1;
    session_t s = {.request_id = req->request_id, .seq = base + w->staged_ops + n_ops - 1};
    uint8_t key[SESSION_KEY_LEN];
    key_of(req->session, key);
    char value[48];
    int len = snprintf(value, sizeof value, "%" PRIu64 " %" PRIu64, s.request_id, s.seq);
    int rc =
        strata_batch_put_topic(w->batch, STRATA_SYS_TOPIC, key, sizeof key, value, (size_t)len);
    if (rc == 0)
        remember(w, req->session, &s);
    return rc;
}

void session_unrecord(ctx_t *c)
{
    if (!c->req->session || !c->w->sessions)
        return;
    char name[17];
    snprintf(name, sizeof name, "%016" PRIx64, c->req->session);
    zhashx_delete(c->w->sessions, name);
}

void sessions_forget(writer_t *w)
{
    if (w->sessions)
        zhashx_purge(w->sessions);
}

void sessions_destroy(writer_t *w)
{
    zhashx_destroy(&w->sessions);
}
