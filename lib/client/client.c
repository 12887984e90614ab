/* The C client for a Strata node: one DEALER socket, request ids matched to
 * replies, blocking calls and pipelining on the same socket. Used by
 * stratactl, the tests and applications; the contract is strata/client.h. */
#define _GNU_SOURCE
#include "strata/client.h"
#include "client_util.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Room for the routing envelope around the largest frame the protocol allows. */
#define CLIENT_MAX_MESSAGE ((int64_t)STRATA_PROTO_MAX_MESSAGE + (64 << 10))
#define CLIENT_HWM         100000
#define ID_SET_MIN_SLOTS   64
/* strata_client_send queues up to this many requests, or bytes, before they
 * leave as one message (PROTOCOL.md, "Several requests in one message"). */
#define CLIENT_BATCH_MAX   128
#define CLIENT_BATCH_BYTES (256u << 10)

/* A reply that arrived while a blocking call waited for another one, or
 * with others in one message, kept for strata_client_recv. rc is its decode
 * result, and err its error, kept only for a failed decode. */
typedef struct {
    strata_reply_t reply;
    int rc;
    strata_error_t *err;
} stashed_reply_t;

/* Ids sent whose replies have not been handed out: an open-addressing set
 * (linear probing, backward-shift deletion; id 0 marks an empty slot, which
 * is why ids start at 1). stashed says the reply already waits in the stash,
 * so a duplicate of it is dropped. */
typedef struct {
    uint64_t id;
    bool stashed;
} id_slot_t;

typedef struct {
    id_slot_t *slots;
    size_t n_slots; /* a power of two */
    size_t count;
} id_set_t;

struct strata_client {
    zsock_t *dealer;
    void *handle;   /* the libzmq socket under dealer */
    char *endpoint; /* the one in use: a list entry or a master's hint */
    int timeout_ms;
    /* Failover (options.endpoints given): the list, the entry the rotation
     * is at, and whether the last call left this endpoint useless (no reply,
     * not the master) so the next call starts on the next one. */
    char **endpoints;
    size_t n_endpoints;
    size_t position;
    bool failover;
    bool move_on;
    char *curve_server_key, *curve_cert; /* kept to secure each new socket */
    uint64_t next_request_id;
    uint64_t session;   /* 0: none */
    int retry_ms;       /* a session write's budget for resends */
    uint64_t resend_id; /* set while a write is sent again: its id */
    id_set_t in_flight;
    /* A ring, oldest first; never longer than in_flight. A pipelining
     * caller has most of its replies pass through it, so it grows once and
     * allocates nothing per reply after that. */
    stashed_reply_t *stash;
    size_t stash_head, stash_len, stash_cap;
    /* Requests sent and not yet handed to ZeroMQ, encoded: they leave
     * together when a reply is to be waited for, a call is made, or the
     * batch is full. One message then carries what a pipelining caller
     * sent in a row, and the server answers it in as few. */
    uint8_t *queued[CLIENT_BATCH_MAX];
    size_t queued_len[CLIENT_BATCH_MAX];
    uint64_t queued_id[CLIENT_BATCH_MAX];
    size_t n_queued, queued_bytes;
};

/* ---- id set ------------------------------------------------------------ */

static size_t s_home(const id_set_t *set, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (set->n_slots - 1);
}

static id_slot_t *s_ids_find(const id_set_t *set, uint64_t id)
{
    if (id == 0 || set->n_slots == 0)
        return NULL;
    for (size_t i = s_home(set, id);; i = (i + 1) & (set->n_slots - 1)) {
        if (set->slots[i].id == id)
            return &set->slots[i];
        if (set->slots[i].id == 0)
            return NULL;
    }
}

static void s_ids_place(id_set_t *set, id_slot_t slot)
{
    size_t i = s_home(set, slot.id);
    while (set->slots[i].id != 0)
        i = (i + 1) & (set->n_slots - 1);
    set->slots[i] = slot;
    set->count++;
}

/* Makes room for one more id so that the insert after a successful send
 * cannot fail. */
static int s_ids_reserve(id_set_t *set)
{
    if ((set->count + 1) * 2 <= set->n_slots)
        return 0;
    size_t n_slots = set->n_slots ? set->n_slots * 2 : ID_SET_MIN_SLOTS;
    id_slot_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return STRATA_ENOMEM;
    id_set_t grown = {.slots = slots, .n_slots = n_slots, .count = 0};
    for (size_t i = 0; i < set->n_slots; i++)
        if (set->slots[i].id != 0)
            s_ids_place(&grown, set->slots[i]);
    free(set->slots);
    *set = grown;
    return 0;
}

static void s_ids_remove(id_set_t *set, uint64_t id)
{
    id_slot_t *found = s_ids_find(set, id);
    if (!found)
        return;
    size_t mask = set->n_slots - 1;
    size_t hole = (size_t)(found - set->slots);
    /* Pull back every later entry of the probe run whose home does not lie
     * cyclically in (hole, j], so lookups never stop early at the hole. */
    for (size_t j = (hole + 1) & mask; set->slots[j].id != 0; j = (j + 1) & mask) {
        size_t home = s_home(set, set->slots[j].id);
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            set->slots[hole] = set->slots[j];
            hole = j;
        }
    }
    set->slots[hole] = (id_slot_t){0};
    set->count--;
}

/* Drops every id whose reply has not arrived: the survivors are re-placed
 * into cleared slots so no probe run is left broken. */
static void s_ids_keep_stashed(id_set_t *set)
{
    size_t n_kept = 0;
    for (size_t i = 0; i < set->n_slots; i++)
        n_kept += set->slots[i].id != 0 && set->slots[i].stashed;
    id_slot_t *kept = n_kept ? malloc(n_kept * sizeof *kept) : NULL;
    if (n_kept && !kept)
        return; /* out of memory: the stale ids only make recv wait for nothing */
    for (size_t i = 0, k = 0; i < set->n_slots; i++)
        if (set->slots[i].id != 0 && set->slots[i].stashed)
            kept[k++] = set->slots[i];
    if (set->n_slots)
        memset(set->slots, 0, set->n_slots * sizeof *set->slots);
    set->count = 0;
    for (size_t i = 0; i < n_kept; i++)
        s_ids_place(set, kept[i]);
    free(kept);
}

/* ---- the stash ----------------------------------------------------------- */

static bool s_stash_push(strata_client_t *self, const stashed_reply_t *item)
{
    if (self->stash_len == self->stash_cap) {
        size_t cap = self->stash_cap ? self->stash_cap * 2 : 64;
        stashed_reply_t *grown = malloc(cap * sizeof *grown);
        if (!grown)
            return false;
        for (size_t i = 0; i < self->stash_len; i++)
            grown[i] = self->stash[(self->stash_head + i) % self->stash_cap];
        free(self->stash);
        self->stash = grown;
        self->stash_cap = cap;
        self->stash_head = 0;
    }
    self->stash[(self->stash_head + self->stash_len) % self->stash_cap] = *item;
    self->stash_len++;
    return true;
}

static bool s_stash_pop(strata_client_t *self, stashed_reply_t *item)
{
    if (self->stash_len == 0)
        return false;
    *item = self->stash[self->stash_head];
    self->stash_head = (self->stash_head + 1) % self->stash_cap;
    self->stash_len--;
    return true;
}

/* ---- the send queue ---------------------------------------------------- */

/* Forgets what is queued: none of it left, so no reply is to be waited for. */
static void s_queue_drop(strata_client_t *self)
{
    for (size_t i = 0; i < self->n_queued; i++) {
        free(self->queued[i]);
        s_ids_remove(&self->in_flight, self->queued_id[i]);
    }
    self->n_queued = self->queued_bytes = 0;
}

/* Hands what is queued to ZeroMQ as one message. On failure none of it
 * counts as in flight any more. */
static int s_flush(strata_client_t *self, int64_t deadline, strata_error_t *err)
{
    if (self->n_queued == 0)
        return 0;
    int rc = client_send_frames(self->handle, self->endpoint, self->queued, self->queued_len,
                                self->n_queued, deadline, self->timeout_ms, err);
    if (rc)
        for (size_t i = 0; i < self->n_queued; i++)
            s_ids_remove(&self->in_flight, self->queued_id[i]);
    self->n_queued = self->queued_bytes = 0;
    return rc;
}

/* ---- life cycle -------------------------------------------------------- */

/* A new socket connected to endpoint, in place of the current one. Requests
 * still in flight on the old one lose their replies with it, so their ids
 * are forgotten; replies already stashed stay for recv. */
static int s_open(strata_client_t *self, const char *endpoint, strata_error_t *err)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    char *copy = strdup(endpoint);
    if (!dealer || !copy) {
        zsock_destroy(&dealer);
        free(copy);
        return strata_error_set(err, STRATA_ENOMEM, "client: cannot create the socket: %s",
                                zmq_strerror(zmq_errno()));
    }
    /* Linger 0: destroy must not hang on an absent server. The high-water
     * marks leave room for deep pipelines before sends start to wait. */
    zsock_set_linger(dealer, 0);
    zsock_set_maxmsgsize(dealer, CLIENT_MAX_MESSAGE);
    zsock_set_sndhwm(dealer, CLIENT_HWM);
    zsock_set_rcvhwm(dealer, CLIENT_HWM);
    int rc = client_curve_apply(dealer, self->curve_server_key, self->curve_cert, err);
    if (rc == 0 && zsock_connect(dealer, "%s", endpoint) != 0)
        rc = strata_error_set(err, STRATA_EINVAL, "endpoint '%s': %s", endpoint,
                              zmq_strerror(zmq_errno()));
    if (rc) {
        zsock_destroy(&dealer);
        free(copy);
        return rc;
    }
    zsock_destroy(&self->dealer);
    self->dealer = dealer;
    self->handle = zsock_resolve(dealer);
    free(self->endpoint);
    self->endpoint = copy;
    s_ids_keep_stashed(&self->in_flight);
    s_queue_drop(self);
    return 0;
}

static char *s_strdup_or_null(const char *text, bool *failed)
{
    char *copy = text ? strdup(text) : NULL;
    if (text && !copy)
        *failed = true;
    return copy;
}

int strata_client_connect(const strata_client_options_t *opts, strata_client_t **client_p,
                          strata_error_t *err)
{
    *client_p = NULL;
    int timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : STRATA_CLIENT_DEFAULT_TIMEOUT_MS;
    if (timeout_ms < 0)
        return strata_error_set(err, STRATA_EINVAL, "timeout_ms: %d, must be >= 0", timeout_ms);
    size_t n_endpoints = opts && opts->endpoints ? opts->n_endpoints : 0;
    if (opts && opts->n_endpoints && !opts->endpoints)
        return strata_error_set(err, STRATA_EINVAL, "endpoints: NULL with n_endpoints %zu",
                                opts->n_endpoints);
    for (size_t i = 0; i < n_endpoints; i++)
        if (!opts->endpoints[i] || !opts->endpoints[i][0])
            return strata_error_set(err, STRATA_EINVAL, "endpoints[%zu]: empty", i);

    strata_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "client: out of memory");
    self->timeout_ms = timeout_ms;
    self->next_request_id = 1;
    if (opts && opts->retry_ms < 0) {
        free(self);
        return strata_error_set(err, STRATA_EINVAL, "retry_ms: %d, must be >= 0", opts->retry_ms);
    }
    if (opts && opts->sessions) {
        /* Any two sessions must differ, a restarted client's too. */
        while (!self->session)
            if (getrandom(&self->session, sizeof self->session, 0) != sizeof self->session)
                self->session =
                    (uint64_t)client_mono_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32;
        self->retry_ms = opts->retry_ms ? opts->retry_ms : 10000;
    }
    bool failed = false;
    if (opts) {
        self->curve_server_key = s_strdup_or_null(opts->curve_server_key, &failed);
        self->curve_cert = s_strdup_or_null(opts->curve_cert, &failed);
    }
    if (n_endpoints) {
        self->failover = true;
        self->endpoints = calloc(n_endpoints, sizeof *self->endpoints);
        failed |= !self->endpoints;
        for (size_t i = 0; self->endpoints && i < n_endpoints; i++) {
            self->endpoints[i] = s_strdup_or_null(opts->endpoints[i], &failed);
            self->n_endpoints++;
        }
    }
    if (failed) {
        strata_client_destroy(&self);
        return strata_error_set(err, STRATA_ENOMEM, "client: out of memory");
    }
    client_zsys_init_once();
    /* Every endpoint of the list is checked now, so a typo in the third one
     * does not wait for a failover to show. */
    for (size_t i = n_endpoints; i-- > 0;) {
        int rc = s_open(self, self->endpoints[i], err);
        if (rc) {
            strata_client_destroy(&self);
            return rc;
        }
    }
    if (!n_endpoints) {
        const char *endpoint =
            opts && opts->endpoint ? opts->endpoint : STRATA_CLIENT_DEFAULT_ENDPOINT;
        int rc = s_open(self, endpoint, err);
        if (rc) {
            strata_client_destroy(&self);
            return rc;
        }
    }
    *client_p = self;
    return 0;
}

const char *strata_client_endpoint(const strata_client_t *self)
{
    return self->endpoint;
}

void strata_client_destroy(strata_client_t **client_p)
{
    strata_client_t *self = client_p ? *client_p : NULL;
    if (!self)
        return;
    stashed_reply_t item;
    while (s_stash_pop(self, &item)) {
        strata_reply_clear(&item.reply);
        free(item.err);
    }
    free(self->stash);
    /* Linger is 0: what ZeroMQ still holds is dropped with the socket, and
     * so is what never reached it. */
    for (size_t i = 0; i < self->n_queued; i++)
        free(self->queued[i]);
    zsock_destroy(&self->dealer);
    free(self->in_flight.slots);
    free(self->endpoint);
    for (size_t i = 0; i < self->n_endpoints; i++)
        free(self->endpoints[i]);
    free(self->endpoints);
    free(self->curve_server_key);
    free(self->curve_cert);
    free(self);
    *client_p = NULL;
}

size_t strata_client_in_flight(const strata_client_t *self)
{
    return self->in_flight.count;
}

/* ---- sending ----------------------------------------------------------- */

static bool s_is_write(strata_op_t op)
{
    return op == STRATA_OP_PUT || op == STRATA_OP_DELETE || op == STRATA_OP_BATCH ||
           op == STRATA_OP_RECORD;
}

/* queue: leave it with the others queued until a flush (strata_client_queue);
 * otherwise it leaves now, with whatever was queued before it. */
static int s_send(strata_client_t *self, strata_request_t *req, int64_t deadline, bool queue,
                  uint64_t *request_id, strata_error_t *err)
{
    if (self->in_flight.count >= STRATA_CLIENT_MAX_IN_FLIGHT)
        return strata_error_set(err, STRATA_ETOOBIG, "client: %zu requests in flight, cap %u",
                                self->in_flight.count, (unsigned)STRATA_CLIENT_MAX_IN_FLIGHT);
    if (s_ids_reserve(&self->in_flight) != 0)
        return strata_error_set(err, STRATA_ENOMEM, "client: out of memory");
    req->request_id = self->resend_id ? self->resend_id : self->next_request_id++;
    if (self->session && s_is_write(req->op))
        req->session = self->session;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = strata_request_encode(req, &buf, &len, err);
    if (rc)
        return rc;
    s_ids_place(&self->in_flight, (id_slot_t){.id = req->request_id});
    self->queued[self->n_queued] = buf;
    self->queued_len[self->n_queued] = len;
    self->queued_id[self->n_queued] = req->request_id;
    self->n_queued++;
    self->queued_bytes += len;
    if (!queue || self->n_queued == CLIENT_BATCH_MAX || self->queued_bytes >= CLIENT_BATCH_BYTES)
        if ((rc = s_flush(self, deadline, err)) != 0)
            return rc;
    if (request_id)
        *request_id = req->request_id;
    return 0;
}

int strata_client_send(strata_client_t *self, strata_request_t *req, uint64_t *request_id,
                       strata_error_t *err)
{
    return s_send(self, req, client_deadline_ms(self->timeout_ms), false, request_id, err);
}

int strata_client_queue(strata_client_t *self, strata_request_t *req, uint64_t *request_id,
                        strata_error_t *err)
{
    return s_send(self, req, client_deadline_ms(self->timeout_ms), true, request_id, err);
}

int strata_client_flush(strata_client_t *self, strata_error_t *err)
{
    return s_flush(self, client_deadline_ms(self->timeout_ms), err);
}

/* ---- receiving --------------------------------------------------------- */

/* The decode result as the API promises it: a reply that does not parse is
 * EINVAL, whatever the decoder's finer code (its message names the cause). */
static int s_decode_rc(int rc)
{
    return rc == 0 || rc == STRATA_ENOMEM ? rc : STRATA_EINVAL;
}

/* Routes one received frame. The reply to wanted (0: to any id in flight) is
 * handed to the caller in *reply with its decode result in *rc (true);
 * replies to other ids in flight are stashed for strata_client_recv;
 * replies to ids not in flight (a timed-out call, a duplicate) are dropped.
 * A frame too broken to carry an id is handed out only when it can belong
 * to nobody else: to recv, or to the one call in flight. */
static bool s_route(strata_client_t *self, zmq_msg_t *frame, uint64_t wanted, bool may_take,
                    strata_reply_t *reply, int *rc, strata_error_t *err)
{
    strata_reply_t got;
    strata_error_t decode_err;
    strata_error_clear(&decode_err);
    int decode_rc = s_decode_rc(
        strata_reply_decode(zmq_msg_data(frame), zmq_msg_size(frame), &got, &decode_err));
    uint64_t id = got.request_id;
    bool anonymous = decode_rc != 0 && id == 0;
    if (anonymous && wanted && self->in_flight.count == 1 && s_ids_find(&self->in_flight, wanted))
        id = wanted;
    id_slot_t *slot = s_ids_find(&self->in_flight, id);
    bool take = may_take && ((anonymous && wanted == 0) ||
                             (slot && !slot->stashed && (wanted == 0 || id == wanted)));
    if (take) {
        if (slot)
            s_ids_remove(&self->in_flight, id);
        *reply = got;
        *rc = decode_rc;
        if (err)
            *err = decode_err;
        return true;
    }
    if (!slot || slot->stashed) {
        strata_reply_clear(&got);
        return false;
    }
    stashed_reply_t item = {.reply = got, .rc = decode_rc};
    if (decode_rc && (item.err = malloc(sizeof *item.err)))
        *item.err = decode_err;
    if ((decode_rc && !item.err) || !s_stash_push(self, &item)) {
        /* Out of memory: the reply is lost, so its id must not stay in flight. */
        free(item.err);
        strata_reply_clear(&got);
        s_ids_remove(&self->in_flight, id);
        return false;
    }
    slot->stashed = true;
    return false;
}

/* Waits until the reply to wanted (0: any) arrives or the deadline, set
 * timeout_ms from the start, passes. */
static int s_wait(strata_client_t *self, uint64_t wanted, int64_t deadline, int timeout_ms,
                  strata_reply_t *reply, strata_error_t *err)
{
    int rc = s_flush(self, deadline, err);
    if (rc)
        return rc;
    for (;;) {
        /* A message holds one reply per frame (an empty one is a REQ-style
         * delimiter): once the one wanted is taken, the rest of its message
         * is read too, and stashed. */
        bool taken = false, more = false;
        for (;;) {
            zmq_msg_t frame;
            zmq_msg_init(&frame);
            if (zmq_msg_recv(&frame, self->handle, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&frame);
                break;
            }
            more = zmq_msg_more(&frame);
            if (zmq_msg_size(&frame) > 0 && s_route(self, &frame, wanted, !taken, reply, &rc, err))
                taken = true;
            zmq_msg_close(&frame);
            if (taken && !more)
                break;
        }
        if (taken)
            return rc;
        long wait_ms = client_remaining_ms(deadline);
        if (wait_ms == 0)
            return strata_error_set(err, STRATA_ETIMEDOUT, "no reply from %s within %d ms",
                                    self->endpoint, timeout_ms);
        zmq_pollitem_t item = {.socket = self->handle, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, wait_ms) < 0) {
            if (zmq_errno() != EINTR)
                return strata_error_set(err, STRATA_EIO, "poll %s: %s", self->endpoint,
                                        zmq_strerror(zmq_errno()));
            if (zsys_interrupted)
                return strata_error_set(err, STRATA_ECLOSED, "interrupted");
        }
    }
}

int strata_client_recv(strata_client_t *self, int timeout_ms, strata_reply_t *reply,
                       strata_error_t *err)
{
    memset(reply, 0, sizeof *reply);
    stashed_reply_t item;
    if (s_stash_pop(self, &item)) {
        *reply = item.reply;
        if (err && item.err)
            *err = *item.err;
        else
            strata_error_clear(err);
        s_ids_remove(&self->in_flight, reply->request_id);
        free(item.err);
        return item.rc;
    }
    /* Only replies to ids in flight are ever handed out: with none, waiting
     * (perhaps forever) cannot succeed. */
    if (self->in_flight.count == 0)
        return strata_error_set(err, STRATA_ETIMEDOUT, "recv: no requests in flight");
    return s_wait(self, 0, client_deadline_ms(timeout_ms), timeout_ms, reply, err);
}

/* ---- blocking calls ---------------------------------------------------- */

/* Failover retries at once the first time, then waits this long, doubling
 * up to the cap: an election takes a few hundred ms, so the first tries are
 * quick and the later ones do not hammer the nodes. */
#define BACKOFF_FIRST_MS 5
#define BACKOFF_MAX_MS   200
#define HINT_MAX         512

/* The endpoint a "not master" answer names: `not master: the master is node
 * N at ENDPOINT (term T)`. */
static bool s_master_hint(const char *message, char *out, size_t cap)
{
    const char *named = message ? strstr(message, "the master is node ") : NULL;
    const char *at = named ? strstr(named, " at ") : NULL;
    if (!at)
        return false;
    at += 4;
    size_t len = strcspn(at, " ");
    if (len == 0 || len >= cap)
        return false;
    memcpy(out, at, len);
    out[len] = '\0';
    return true;
}

/* Moves to endpoint, or with NULL to the list's next entry. A hint that is
 * an entry of the list moves the rotation there, so "next" after it means
 * the entry after the master, not one already tried. */
static int s_move(strata_client_t *self, const char *endpoint, strata_error_t *err)
{
    if (!endpoint) {
        self->position = (self->position + 1) % self->n_endpoints;
        endpoint = self->endpoints[self->position];
    } else {
        for (size_t i = 0; i < self->n_endpoints; i++)
            if (!strcmp(self->endpoints[i], endpoint))
                self->position = i;
    }
    if (!strcmp(endpoint, self->endpoint))
        return 0;
    return s_open(self, endpoint, err);
}

/* One request to the endpoint in use, its reply or why none came. *sent
 * says whether the request left, i.e. whether a failure leaves its outcome
 * unknown. */
static int s_call_once(strata_client_t *self, strata_request_t *req, int64_t deadline,
                       strata_reply_t *reply, bool *sent, strata_error_t *err)
{
    memset(reply, 0, sizeof *reply);
    uint64_t request_id = 0;
    int rc = s_send(self, req, deadline, false, &request_id, err);
    *sent = rc == 0;
    if (rc)
        return rc;
    rc = s_wait(self, request_id, deadline, self->timeout_ms, reply, err);
    if (rc) /* forget the id so a reply arriving after we gave up is dropped */
        s_ids_remove(&self->in_flight, request_id);
    return rc;
}

/* With failover, a request another node could have served is sent there:
 * STATUS ENOTMASTER says this node did not run it (unless it says the
 * outcome is unknown: then a write may have been taken and is never sent
 * again). The hint in the answer is followed, else the list's next entry
 * is tried, waiting a little more each time, until the call's deadline. */
static int s_call(strata_client_t *self, strata_request_t *req, strata_reply_t *reply,
                  strata_error_t *err);

/* A session's write whose outcome is unknown goes again, with its request
 * id, to the next endpoint: the server applies a request id once. */
int strata_client_call(strata_client_t *self, strata_request_t *req, strata_reply_t *reply,
                       strata_error_t *err)
{
    if (!self->session || !s_is_write(req->op))
        return s_call(self, req, reply, err);
    req->session = self->session;
    int64_t until = client_mono_ms() + self->retry_ms;
    unsigned sends = 0;
    for (;;) {
        int rc = s_call(self, req, reply, err);
        sends++;
        bool unknown = (rc == STRATA_ETIMEDOUT && strstr(err->msg, "outcome is unknown")) ||
                       (rc == STRATA_ENOTMASTER && strstr(err->msg, "outcome unknown"));
        /* No master for a whole call (an election takes longer than
         * timeout_ms): the session makes going on safe, so go on. */
        bool again = unknown || rc == STRATA_ENOTMASTER;
        if (!again || client_mono_ms() >= until) {
            self->resend_id = 0;
            if (unknown)
                strata_error_set(err, rc,
                                 "%s (sent %u times with request id %" PRIu64
                                 " of session %016" PRIx64 " over %d ms)",
                                 err->msg, sends, req->request_id, self->session, self->retry_ms);
            return rc;
        }
        self->resend_id = req->request_id;
        strata_reply_clear(reply);
    }
}

static int s_call(strata_client_t *self, strata_request_t *req, strata_reply_t *reply,
                  strata_error_t *err)
{
    memset(reply, 0, sizeof *reply);
    int64_t started = client_mono_ms();
    int64_t deadline = client_deadline_ms(self->timeout_ms);
    if (self->move_on) {
        self->move_on = false;
        int rc = s_move(self, NULL, err);
        if (rc)
            return rc;
    }
    unsigned tries = 0;
    int backoff_ms = 0;
    for (;;) {
        tries++;
        bool sent = false;
        int rc = s_call_once(self, req, deadline, reply, &sent, err);
        if (rc == STRATA_ETIMEDOUT) {
            self->move_on = self->failover;
            if (sent && s_is_write(req->op))
                strata_error_set(err, rc,
                                 "no reply from %s within %d ms: the %s's outcome is unknown "
                                 "(it may or may not have been applied; it was not sent again)",
                                 self->endpoint, self->timeout_ms, strata_op_name(req->op));
            return rc;
        }
        if (rc)
            return rc;
        if (!self->failover || reply->status != STRATA_ENOTMASTER)
            break;
        if (reply->message && strstr(reply->message, "outcome unknown")) {
            self->move_on = true;
            break;
        }
        char hint[HINT_MAX];
        bool hinted =
            s_master_hint(reply->message, hint, sizeof hint) && strcmp(hint, self->endpoint) != 0;
        /* A master elected a moment ago answers so until its first entry
         * commits: it is the node to wait for. */
        bool stay = !hinted && reply->message && !strncmp(reply->message, "not master yet", 14);
        int wait_ms = backoff_ms;
        backoff_ms = backoff_ms
                         ? (backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2)
                         : BACKOFF_FIRST_MS;
        if (client_remaining_ms(deadline) <= wait_ms)
            break;
        if (wait_ms > 0)
            nanosleep(&(struct timespec){.tv_nsec = (long)wait_ms * 1000000L}, NULL);
        strata_reply_clear(reply);
        if (stay)
            continue;
        /* A hint that does not parse as an endpoint is no reason to stop:
         * the list's next entry may know better. */
        if (!hinted || s_move(self, hint, err) != 0)
            if ((rc = s_move(self, NULL, err)) != 0)
                return rc;
    }
    if (reply->status < 0) {
        if (tries > 1)
            return strata_error_set(err, reply->status, "%s (%u tries in %lld ms, the last at %s)",
                                    reply->message, tries, (long long)(client_mono_ms() - started),
                                    self->endpoint);
        return strata_error_set(err, reply->status, "%s", reply->message);
    }
    if (reply->op != req->op)
        return strata_error_set(err, STRATA_EINVAL, "reply to %s carries a %s body",
                                strata_op_name(req->op), strata_op_name(reply->op));
    return 0;
}

/* The write calls: a request whose reply is only a seq. */
static int s_write(strata_client_t *self, strata_request_t *req, uint64_t *seq, strata_error_t *err)
{
    strata_reply_t reply;
    int rc = strata_client_call(self, req, &reply, err);
    if (rc == 0 && seq)
        *seq = reply.seq;
    strata_reply_clear(&reply);
    return rc;
}

static strata_bytes_t s_bytes(const void *data, size_t len)
{
    return (strata_bytes_t){.data = data, .len = len};
}

int strata_client_put(strata_client_t *self, strata_durability_t durability, const void *key,
                      size_t key_len, const void *value, size_t value_len, uint64_t *seq,
                      strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_PUT,
                            .durability = durability,
                            .key = s_bytes(key, key_len),
                            .value = s_bytes(value, value_len)};
    return s_write(self, &req, seq, err);
}

int strata_client_delete(strata_client_t *self, strata_durability_t durability, const void *key,
                         size_t key_len, uint64_t *seq, strata_error_t *err)
{
    strata_request_t req = {
        .op = STRATA_OP_DELETE, .durability = durability, .key = s_bytes(key, key_len)};
    return s_write(self, &req, seq, err);
}

int strata_client_batch(strata_client_t *self, strata_durability_t durability,
                        const strata_batch_op_t *ops, size_t n_ops, uint64_t *seq,
                        strata_error_t *err)
{
    strata_request_t req = {
        .op = STRATA_OP_BATCH, .durability = durability, .ops = ops, .n_ops = n_ops};
    return s_write(self, &req, seq, err);
}

int strata_client_record_put(strata_client_t *self, strata_durability_t durability,
                             const void *msgpack, size_t len, uint64_t *seq, strata_error_t *err)
{
    strata_request_t req = {
        .op = STRATA_OP_RECORD, .durability = durability, .value = s_bytes(msgpack, len)};
    return s_write(self, &req, seq, err);
}

int strata_client_get(strata_client_t *self, const void *key, size_t key_len, void **value,
                      size_t *value_len, strata_error_t *err)
{
    *value = NULL;
    *value_len = 0;
    strata_request_t req = {.op = STRATA_OP_GET, .key = s_bytes(key, key_len)};
    strata_reply_t reply;
    int rc = strata_client_call(self, &req, &reply, err);
    if (rc == 0 && (reply.n_values != 1 || !reply.values[0].found))
        rc = strata_error_set(err, STRATA_ENOTFOUND, "not found");
    if (rc == 0) {
        strata_bytes_t found = reply.values[0].value;
        /* One byte more so an empty value is still a non-NULL pointer. */
        *value = malloc(found.len + 1);
        if (!*value) {
            rc = strata_error_set(err, STRATA_ENOMEM, "get: %zu bytes", found.len);
        } else {
            if (found.len)
                memcpy(*value, found.data, found.len);
            ((uint8_t *)*value)[found.len] = 0;
            *value_len = found.len;
        }
    }
    strata_reply_clear(&reply);
    return rc;
}

int strata_client_multi_get(strata_client_t *self, const strata_bytes_t *keys, size_t n_keys,
                            strata_reply_t *reply, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_MULTI_GET, .keys = keys, .n_keys = n_keys};
    int rc = strata_client_call(self, &req, reply, err);
    if (rc == 0 && reply->n_values != n_keys)
        rc = strata_error_set(err, STRATA_EINVAL, "multi_get: %zu values for %zu keys",
                              reply->n_values, n_keys);
    return rc;
}

int strata_client_scan(strata_client_t *self, strata_bytes_t start, strata_bytes_t end,
                       uint32_t limit, strata_bytes_t cursor, strata_reply_t *reply,
                       strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_SCAN,
                            .scan_start = start,
                            .scan_end = end,
                            .scan_limit = limit,
                            .scan_cursor = cursor};
    return strata_client_call(self, &req, reply, err);
}

int strata_client_status(strata_client_t *self, strata_reply_t *reply, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_STATUS};
    return strata_client_call(self, &req, reply, err);
}

int strata_client_stats(strata_client_t *self, strata_reply_t *reply, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_STATS};
    return strata_client_call(self, &req, reply, err);
}

int strata_client_control(strata_client_t *self, const char *verb, const char *const *args,
                          size_t n_args, strata_reply_t *reply, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = verb, .args = args, .n_args = n_args};
    return strata_client_call(self, &req, reply, err);
}
