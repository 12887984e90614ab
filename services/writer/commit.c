/* Replies and durability: the sync thread that turns written requests into
 * group-committed sync replies, the FIFO of replies waiting for it, and the
 * job threads for flush, compact, checkpoint and installs. */
#define _GNU_SOURCE
#include "writer.h"

#include <assert.h>

static size_t multi_slot(const uint8_t *id, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)(h % MULTI_IDS);
}

void multi_id_add(writer_t *w, zframe_t *routing_id)
{
    size_t len = zframe_size(routing_id);
    if (len == 0 || len > MULTI_ID_MAX)
        return;
    uint8_t *slot = w->multi_ids[multi_slot(zframe_data(routing_id), len)];
    slot[0] = (uint8_t)len;
    memcpy(slot + 1, zframe_data(routing_id), len);
}

static bool multi_id_has(const writer_t *w, const zframe_t *routing_id)
{
    size_t len = zframe_size((zframe_t *)routing_id);
    if (len == 0 || len > MULTI_ID_MAX)
        return false;
    const uint8_t *data = zframe_data((zframe_t *)routing_id);
    const uint8_t *slot = w->multi_ids[multi_slot(data, len)];
    return slot[0] == len && memcmp(slot + 1, data, len) == 0;
}

static void batch_send(writer_t *w, reply_batch_t *b)
{
    assert(b->n > 0); /* an envelope alone would leave the socket inside a message */
    zframe_t *f;
    /* As svc_outq_send_after: a failed frame (only at shutdown) still lets
     * the message end, so the socket is never left inside one. */
    while ((f = zmsg_pop(b->envelope))) {
        zframe_send(&f, b->sock, ZFRAME_MORE);
        zframe_destroy(&f);
    }
    zmsg_destroy(&b->envelope);
    void *handle = zsock_resolve(b->sock);
    for (size_t i = 0; i < b->n; i++)
        svc_outq_send(w->outq, handle, b->frames[i].buf, b->frames[i].len,
                      i + 1 < b->n ? ZMQ_SNDMORE : 0);
    b->n = b->bytes = 0;
}

void replies_flush(writer_t *w)
{
    for (size_t i = 0; i < w->n_batches; i++)
        batch_send(w, &w->batches[i]);
    w->n_batches = 0;
    w->batching = false;
}

/* Adds a reply to its connection's batch, when it has one or may start
 * one; false when it must go on its own. A borrowed envelope stays the
 * caller's; an owned one is the batch's or destroyed. */
static bool batch_add(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, bool borrowed, void *buf,
                      size_t len)
{
    zframe_t *id = zmsg_first(*envelope_p);
    if (!w->batching || sock != w->router || !id || !multi_id_has(w, id))
        return false;
    size_t id_len = zframe_size(id);
    reply_batch_t *b = NULL;
    for (size_t i = 0; i < w->n_batches && !b; i++)
        if (w->batches[i].id_len == id_len && !memcmp(w->batches[i].id, zframe_data(id), id_len) &&
            zmsg_size(w->batches[i].envelope) == zmsg_size(*envelope_p))
            b = &w->batches[i];
    if (!b) {
        zmsg_t *own = borrowed ? zmsg_dup(*envelope_p) : *envelope_p;
        if (!own)
            return false;
        if (w->n_batches == REPLY_BATCHES) {
            bool was = w->batching;
            replies_flush(w);
            w->batching = was;
        }
        b = &w->batches[w->n_batches++];
        b->sock = sock;
        b->envelope = own;
        b->id_len = id_len;
        memcpy(b->id, zframe_data(id), id_len);
        if (!borrowed)
            *envelope_p = NULL;
    } else if (!borrowed) {
        zmsg_destroy(envelope_p);
    }
    b->frames[b->n].buf = buf;
    b->frames[b->n].len = len;
    b->n++;
    b->bytes += len;
    if (b->n == REPLY_FRAMES_MAX || b->bytes >= REPLY_BATCH_BYTES) {
        /* Sent now, and its envelope with it: the next reply starts over. */
        batch_send(w, b);
        *b = w->batches[--w->n_batches];
    }
    return true;
}

static void reply_out(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, bool borrowed,
                      const strata_reply_t *rep)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    if (strata_reply_encode(rep, &buf, &len, &err) != 0) {
        /* A reply we built that does not encode (a scan page too big, say)
         * still owes the client an answer. */
        log_error("event=reply_encode_failed op=%s error=\"%s\"", strata_op_name(rep->op), err.msg);
        strata_reply_t fallback = {.request_id = rep->request_id,
                                   .status = err.code ? err.code : STRATA_EINVAL,
                                   .message = err.msg};
        if (strata_reply_encode(&fallback, &buf, &len, NULL) != 0) {
            if (!borrowed)
                zmsg_destroy(envelope_p);
            return;
        }
    }
    if (*envelope_p && batch_add(w, sock, envelope_p, borrowed, buf, len))
        return;
    zmsg_t *out = borrowed ? zmsg_dup(*envelope_p) : *envelope_p;
    if (!borrowed)
        *envelope_p = NULL;
    if (!out) { /* out of memory, or no envelope to address it with */
        free(buf);
        return;
    }
    svc_outq_send_after(w->outq, sock, &out, buf, len);
}

void send_reply(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, const strata_reply_t *rep)
{
    reply_out(w, sock, envelope_p, false, rep);
}

void send_reply_borrowed(writer_t *w, zsock_t *sock, zmsg_t *envelope, const strata_reply_t *rep)
{
    reply_out(w, sock, &envelope, true, rep);
}

static void count_error(writer_t *w)
{
    pthread_mutex_lock(&w->stats_mu);
    w->stats.errors++;
    pthread_mutex_unlock(&w->stats_mu);
}

void send_error_borrowed(writer_t *w, zsock_t *sock, zmsg_t *envelope, uint64_t request_id,
                         int code, const char *message)
{
    strata_reply_t rep = {.request_id = request_id, .status = code, .message = message};
    count_error(w);
    send_reply_borrowed(w, sock, envelope, &rep);
}

void send_error(writer_t *w, zsock_t *sock, zmsg_t **envelope_p, uint64_t request_id, int code,
                const char *message)
{
    strata_reply_t rep = {.request_id = request_id, .status = code, .message = message};
    count_error(w);
    send_reply(w, sock, envelope_p, &rep);
}

void send_write_reply(writer_t *w, pending_t *p)
{
    strata_reply_t rep = {
        .request_id = p->request_id, .op = p->op, .seq = p->reply_seq ? p->reply_seq : p->seq};
    send_reply(w, p->sock, &p->envelope, &rep);
}

/* ---- the sync thread ----------------------------------------------------- */

void *sync_main(void *arg)
{
    writer_t *w = arg;
    zsock_t *pipe = zsock_new_pair(w->sync_pipe_ep + 0);
    pthread_mutex_lock(&w->sync_mu);
    for (;;) {
        while (!w->sync_stop && w->sync_want <= w->sync_done)
            pthread_cond_wait(&w->sync_cv, &w->sync_mu);
        if (w->sync_want <= w->sync_done)
            break; /* stopping with nothing left to cover */
        uint64_t epoch = w->sync_epoch;
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
        if (durable > w->sync_done && epoch == w->sync_epoch)
            w->sync_done = durable;
    }
    pthread_mutex_unlock(&w->sync_mu);
    zsock_destroy(&pipe);
    return NULL;
}

void want_sync(writer_t *w, uint64_t seq)
{
    pthread_mutex_lock(&w->sync_mu);
    if (seq > w->sync_want) {
        w->sync_want = seq;
        pthread_cond_signal(&w->sync_cv);
    }
    pthread_mutex_unlock(&w->sync_mu);
}

int pending_push(pending_ring_t *r, const pending_t *p)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        pending_t *grown = malloc(cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        for (size_t i = 0; i < r->len; i++)
            grown[i] = r->items[(r->head + i) % r->cap];
        free(r->items);
        r->items = grown;
        r->cap = cap;
        r->head = 0;
    }
    r->items[(r->head + r->len) % r->cap] = *p;
    r->len++;
    return 0;
}

pending_t *pending_front(pending_ring_t *r)
{
    return r->len ? &r->items[r->head] : NULL;
}

void pending_pop(pending_ring_t *r)
{
    r->head = (r->head + 1) % r->cap;
    r->len--;
}

/* The sync thread reports one round: release every reply it covered, or
 * fail every waiting one (a failed fdatasync is never retried as success). */
int on_sync(zloop_t *loop, zsock_t *pipe, void *arg)
{
    writer_t *w = arg;
    int rc = 0;
    uint64_t durable = 0, took = 0;
    char *message = NULL;
    if (zsock_recv(pipe, "i88s", &rc, &durable, &took, &message) != 0)
        return 0;
    uint64_t now = now_ns();
    size_t released = 0;
    if (w->cx && rc) {
        /* The core may already count on what this sync was to cover
         * (raft.md R11): stop, and let recovery find what is on disk. */
        log_error("event=consensus_fatal what=sync error=\"%s\"", message ? message : "");
        _exit(70);
    }
    /* On a cluster node the core learns what is durable; quorum writes
     * wait for their commit instead (consensus.c). */
    if (w->cx && loop)
        consensus_durable(w);
    pending_t *p;
    w->batching = true;
    while ((p = pending_front(&w->pending))) {
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
        pending_pop(&w->pending);
        released++;
    }
    replies_flush(w);
    pthread_mutex_lock(&w->stats_mu);
    strata_histogram_record(w->stats.sync_ns, took);
    if (rc) {
        w->stats.sync_failures++;
    } else {
        w->stats.syncs++;
        if (released)
            strata_histogram_record(w->stats.sync_batch, released);
    }
    w->stats.pending = w->pending.len + w->committing.len;
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

void job_free(job_t *job)
{
    for (size_t i = 0; job->outputs && i < job->install.n_outputs; i++)
        free(job->outputs[i]);
    free(job->outputs);
    free(job->numbers);
    free(job);
}

void *job_main(void *arg)
{
    job_t *job = arg;
    strata_error_clear(&job->err);
    if (!strcmp(job->verb, "flush"))
        job->rc = strata_db_flush(job->w->db, &job->err);
    else if (!strcmp(job->verb, "compact"))
        job->rc = strata_db_compact(job->w->db, &job->err);
    else if (!strcmp(job->verb, "checkpoint")) {
        job->rc = strata_db_checkpoint(job->w->db, job->arg, &job->seq, &job->err);
        /* What a follower installing it needs (the log's start); the WAL
         * still holds the entry, since only a snapshot past it truncates. */
        if (job->rc == 0 && job->seq && strata_db_term_at(job->w->db, job->seq, &job->term) != 0)
            job->term = 0;
    } else if (!strcmp(job->verb, "truncate_wal"))
        job->rc = strata_db_truncate_wal(job->w->db, job->arg_seq, &job->deleted, &job->err);
    else if (!strcmp(job->verb, "install_compaction"))
        job->rc =
            strata_db_install_compaction(job->w->db, &job->install, &job->installed, &job->err);
    zsock_t *push = zsock_new_push(job->w->jobs_ep);
    zsock_send(push, "p", job);
    zsock_destroy(&push);
    return NULL;
}

int on_job_done(zloop_t *loop, zsock_t *pull, void *arg)
{
    writer_t *w = arg;
    job_t *job = NULL;
    if (zsock_recv(pull, "p", &job) != 0 || !job)
        return 0;
    /* The thread has only its socket's close left: joining costs the loop
     * microseconds and means no job thread or socket is left behind once
     * writer_destroy returns (an embedding process may end ZMQ right then). */
    pthread_join(job->thread, NULL);
    w->jobs_running--;
    w->client_jobs_running -= job->from_client;
    if (job->rc) {
        send_error(w, job->sock, &job->envelope, job->request_id, job->rc, job->err.msg);
    } else {
        char ms[32], seq[32], deleted[16], installed[32], term[32];
        snprintf(ms, sizeof ms, "%.3f", (double)(now_ns() - job->start_ns) / 1e6);
        snprintf(seq, sizeof seq, "%" PRIu64, job->seq);
        snprintf(deleted, sizeof deleted, "%" PRIu32, job->deleted);
        snprintf(term, sizeof term, "%" PRIu64, job->term);
        strata_pair_t pairs[5] = {{"verb", job->verb}, {"ms", ms}};
        size_t n = 2;
        if (!strcmp(job->verb, "checkpoint")) {
            pairs[n++] = (strata_pair_t){"seq", seq};
            pairs[n++] = (strata_pair_t){"term", term};
            pairs[n++] = (strata_pair_t){"path", job->arg};
        } else if (!strcmp(job->verb, "truncate_wal")) {
            pairs[n++] = (strata_pair_t){"deleted", deleted};
            if (job->deleted && w->cx)
                consensus_compacted(w);
        } else if (!strcmp(job->verb, "install_compaction")) {
            snprintf(installed, sizeof installed, "%" PRIu64, job->installed);
            pairs[n++] = (strata_pair_t){"tables", installed};
        }
        strata_reply_t rep = {
            .request_id = job->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = n};
        send_reply(w, job->sock, &job->envelope, &rep);
    }
    /* A failure's reason went back to the requester, which logs it with
     * what it knows: here the outcome only, as for every job. */
    if (!strcmp(job->verb, "install_compaction"))
        log_info("event=compaction_installed rc=%d level=%d inputs=%zu+%zu outputs=%zu ms=%.3f",
                 job->rc, job->install.level, job->install.n_inputs[0], job->install.n_inputs[1],
                 job->install.n_outputs, (double)(now_ns() - job->start_ns) / 1e6);
    else
        log_info("event=%s_done rc=%d ms=%.3f", job->verb, job->rc,
                 (double)(now_ns() - job->start_ns) / 1e6);
    job_free(job);
    return 0;
}
