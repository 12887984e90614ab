/* The subscriber's history endpoint (paged replay requests, replies that
 * arrive while a session waits) and gap repair: fetching from history what
 * the stream missed, then handing off to live (the Clone pattern). */
#define _GNU_SOURCE
#include "subscriber_impl.h"

/* ---- the history endpoint ------------------------------------------------ */

/* Sends req (its request_id already set) as one frame, waiting at most the
 * history timeout for room in the queue. */
int sub_history_send(strata_sub_t *self, const strata_request_t *req, strata_error_t *err)
{
    return client_send_request(self->history_handle, self->history_endpoint, req,
                               client_deadline_ms(self->timeout_ms), self->timeout_ms, err);
}

/* Reads one queued message without waiting and decodes its last frame (the
 * reply; anything before it is envelope). 1 read (*reply filled, *rc its
 * decode result), 0 nothing queued. */
int sub_history_read(strata_sub_t *self, strata_reply_t *reply, int *rc, strata_error_t *err)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, self->history_handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return 0;
    }
    while (zmq_msg_more(&frame)) {
        zmq_msg_t next;
        zmq_msg_init(&next);
        /* The rest of a multipart message is already here: this cannot block. */
        if (zmq_msg_recv(&next, self->history_handle, 0) < 0) {
            zmq_msg_close(&next);
            break;
        }
        zmq_msg_move(&frame, &next);
        zmq_msg_close(&next);
    }
    strata_error_t decode_err;
    strata_error_clear(&decode_err);
    *rc = strata_reply_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), reply, &decode_err);
    zmq_msg_close(&frame);
    if (*rc)
        *rc = strata_error_set(err, *rc == STRATA_ENOMEM ? STRATA_ENOMEM : STRATA_EINVAL,
                               "%s: malformed reply: %s", self->history_endpoint, decode_err.msg);
    return 1;
}

/* A reply that is not the one a call waits for, on a durable session: ack
 * confirmations, ack errors (ENOTFOUND: the session is gone, subscribe
 * again), deliveries of a replaced session (dropped). Returns an error the
 * caller should report, or 0. */
int sub_on_async_reply(strata_sub_t *self, const strata_reply_t *reply, strata_error_t *err)
{
    if (!self->durable)
        return 0; /* a late reply to a call that timed out */
    if (reply->status < 0) {
        if (reply->request_id == self->session_id)
            return strata_error_set(err, reply->status, "%s: subscription '%s': %s",
                                    self->history_endpoint, self->durable, reply->message);
        if (reply->request_id < self->session_id)
            return 0; /* an ack of a session already replaced */
        if (reply->status == STRATA_ENOTFOUND) {
            self->resubscribe = true;
            return 0;
        }
        return strata_error_set(err, reply->status, "%s: ack of '%s': %s", self->history_endpoint,
                                self->durable, reply->message);
    }
    if (reply->op == STRATA_OP_ACK && reply->durable_seq > self->durable_seq)
        self->durable_seq = reply->durable_seq;
    return 0;
}

/* Sends req and waits up to the history timeout for its reply, handling
 * what else arrives meanwhile. The reply's status becomes the return
 * (with its message); the caller clears *reply either way. */
int sub_history_call(strata_sub_t *self, strata_request_t *req, strata_reply_t *reply,
                     strata_error_t *err)
{
    memset(reply, 0, sizeof *reply);
    if (req->request_id == 0)
        req->request_id = self->next_request_id++;
    int rc = sub_history_send(self, req, err);
    if (rc)
        return rc;
    int64_t deadline = client_deadline_ms(self->timeout_ms);
    for (;;) {
        int decode_rc = 0;
        while (sub_history_read(self, reply, &decode_rc, err)) {
            if (decode_rc) {
                strata_reply_clear(reply);
                return decode_rc;
            }
            if (reply->request_id == req->request_id) {
                if (reply->status < 0)
                    return strata_error_set(err, reply->status, "%s: %s: %s",
                                            self->history_endpoint, strata_op_name(req->op),
                                            reply->message);
                if (reply->op != req->op)
                    return strata_error_set(err, STRATA_EINVAL, "%s: reply to %s carries a %s body",
                                            self->history_endpoint, strata_op_name(req->op),
                                            strata_op_name(reply->op));
                return 0;
            }
            if (self->durable && reply->op == STRATA_OP_DELIVER &&
                reply->request_id == self->session_id) {
                strata_reply_clear(reply);
                return strata_error_set(err, STRATA_EINVAL,
                                        "%s: a delivery arrived before the subscribe reply",
                                        self->history_endpoint);
            }
            rc = sub_on_async_reply(self, reply, err);
            strata_reply_clear(reply);
            if (rc)
                return rc;
        }
        long wait_ms = client_remaining_ms(deadline);
        if (wait_ms == 0)
            return strata_error_set(err, STRATA_ETIMEDOUT, "%s: no reply to %s within %d ms",
                                    self->history_endpoint, strata_op_name(req->op),
                                    self->timeout_ms);
        if ((rc = sub_poll(self->history_handle, self->history_endpoint, wait_ms, err)) < 0)
            return rc;
    }
}

/* ---- repair ----------------------------------------------------------------- */

void sub_repair_start_base(strata_sub_t *self, uint64_t from_seq, uint64_t from_time_ns,
                           uint64_t to_seq)
{
    self->repair = (repair_t){
        .active = true, .from_seq = from_seq, .from_time_ns = from_time_ns, .to_seq = to_seq};
}

void sub_repair_start_topic(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t from_seq,
                            uint64_t to_seq)
{
    self->repair = (repair_t){.active = true,
                              .exact = true,
                              .topic_len = (uint16_t)len,
                              .from_seq = from_seq,
                              .to_seq = to_seq};
    memcpy(self->repair.topic, topic, len);
    self->repair.topic[len] = '\0';
}

static int s_repair_finish(strata_sub_t *self, strata_error_t *err)
{
    repair_t *repair = &self->repair;
    repair->active = false;
    if (!repair->exact) {
        sub_lift_all(self, repair->to_seq);
        return 0;
    }
    const uint8_t *topic = (const uint8_t *)repair->topic;
    if (sub_last(self, topic, repair->topic_len) >= repair->to_seq)
        return 0;
    return sub_set_last(self, topic, repair->topic_len, repair->to_seq, err);
}

static const char *s_repair_text(const strata_sub_t *self, char *out, size_t cap)
{
    const repair_t *repair = &self->repair;
    char topic[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 8] = "";
    if (repair->exact)
        strata_pub_topic_text(topic, sizeof topic, (const uint8_t *)repair->topic,
                              repair->topic_len);
    if (repair->from_seq)
        snprintf(out, cap, "replay of %s%s%s seqs %" PRIu64 "..%" PRIu64,
                 repair->exact ? "topic '" : "the subscription", repair->exact ? topic : "",
                 repair->exact ? "'" : "", repair->from_seq, repair->to_seq);
    else
        snprintf(out, cap, "replay of the subscription from time %" PRIu64 " ns to seq %" PRIu64,
                 repair->from_time_ns, repair->to_seq);
    return out;
}

/* Checks one page against the request, whole, before anything moves: the
 * entries, their range, and that next_seq moves the replay on. */
static int s_repair_check(strata_sub_t *self, const strata_reply_t *page, const char *what,
                          strata_error_t *err)
{
    const repair_t *repair = &self->repair;
    batch_t *batch = &self->batch;
    int rc = sub_decode_entries(batch, page->entries_blob.data, page->entries_blob.len, page->count,
                                what, err);
    if (rc)
        return rc;
    if (batch->n_items) {
        uint64_t first = batch->items[0].entry.seq;
        uint64_t last = batch->items[batch->n_items - 1].entry.seq;
        if ((repair->from_seq && first < repair->from_seq) || last > repair->to_seq)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: entries %" PRIu64 "..%" PRIu64
                                    " lie outside the range asked for",
                                    what, first, last);
        if (page->next_seq <= last)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: next_seq %" PRIu64
                                    " is not past the page's last seq %" PRIu64,
                                    what, page->next_seq, last);
    }
    /* A page that neither ends the replay nor moves it on would loop forever. */
    if (!page->done && page->next_seq <= repair->from_seq)
        return strata_error_set(err, STRATA_EINVAL,
                                "%s: next_seq %" PRIu64 " does not move past from_seq %" PRIu64,
                                what, page->next_seq, repair->from_seq);
    return 0;
}

/* Filters a checked page in the batch: the topic (exactly the repaired one,
 * or any subscribed), then seq > L[t]. */
static int s_repair_filter(strata_sub_t *self, strata_error_t *err)
{
    const repair_t *repair = &self->repair;
    batch_t *batch = &self->batch;
    size_t kept = 0;
    for (size_t i = 0; i < batch->n_items; i++) {
        const strata_entry_t *e = &batch->items[i].entry;
        size_t topic_len;
        const uint8_t *topic = sub_entry_topic(e, &topic_len);
        bool ours = repair->exact ? topic_len == repair->topic_len &&
                                        memcmp(topic, repair->topic, topic_len) == 0
                                  : sub_subscribed(self, topic, topic_len);
        if (!ours)
            continue;
        if (e->seq <= sub_last(self, topic, topic_len)) {
            self->stats.duplicates++;
            continue;
        }
        int rc = sub_set_last(self, topic, topic_len, e->seq, err);
        if (rc)
            return rc;
        if (!sub_before_floor(self, e))
            sub_batch_keep(batch, &kept, i);
    }
    batch->n_items = kept;
    return 0;
}

/* Fetches one page of the repair in progress into the batch. A failed
 * request leaves the repair to be retried by the next call, except
 * ETRUNCATED: the node no longer has those entries, so the repair is given
 * up (the caller is told) and the stream goes on after it. */
int sub_repair_step(strata_sub_t *self, strata_error_t *err)
{
    repair_t *repair = &self->repair;
    char what[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 128];
    s_repair_text(self, what, sizeof what);
    const char *one_topic[] = {repair->topic};
    strata_request_t req = {
        .op = STRATA_OP_REPLAY,
        .topics = repair->exact ? one_topic : (const char *const *)self->topics,
        .n_topics = repair->exact ? 1 : self->n_topics,
        .seq = repair->from_seq,
        .from_time_ns = repair->from_seq ? 0 : repair->from_time_ns,
        .to_seq = repair->to_seq,
    };
    batch_t *batch = &self->batch;
    strata_error_t call_err;
    int rc = sub_history_call(self, &req, &batch->reply, &call_err);
    if (rc) {
        strata_reply_clear(&batch->reply);
        if (rc == STRATA_ETRUNCATED) {
            int finish_rc = s_repair_finish(self, err);
            if (finish_rc)
                return finish_rc;
        }
        return strata_error_set(err, rc, "%s: %s", what, call_err.msg);
    }
    const strata_reply_t *page = &batch->reply;
    rc = s_repair_check(self, page, what, err);
    if (rc == 0)
        rc = s_repair_filter(self, err);
    if (rc) {
        sub_batch_release(batch);
        return rc;
    }
    batch->from_replay = true;
    if (page->done || page->next_seq > repair->to_seq)
        return s_repair_finish(self, err);
    repair->from_seq = page->next_seq;
    return 0;
}
