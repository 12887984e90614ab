/* What the subscriber's files share: its state and the steps the stream and
 * the durable session (subscriber.c) take from the history endpoint and gap
 * repair (subscriber_repair.c). Private to lib/client. */
#ifndef STRATA_SUBSCRIBER_IMPL_H
#define STRATA_SUBSCRIBER_IMPL_H

#include "strata/subscriber.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coding.h"
#include "strata/codec.h"
#include "strata/pubframe.h"
#include "client_util.h"

/* Room for the largest frame either endpoint sends (a delayed batch is split
 * at 4 MiB, a history reply is capped at 8 MiB) plus its envelope. A bigger
 * frame makes ZeroMQ drop the connection, which the gap rule then repairs. */
#define SUB_MAX_MESSAGE ((int64_t)STRATA_PROTO_MAX_MESSAGE + (64 << 10))
/* Messages queued on the SUB side before ZeroMQ drops: generous, because a
 * repair blocks reading; what is dropped anyway is repaired from history. */
#define SUB_RCVHWM          1000000
#define HISTORY_HWM         100000
#define DEFAULT_TIMEOUT_MS  5000
#define KEEPALIVE_MS        1000
#define DEFAULT_FAILOVER_MS 1000
#define NO_TOPIC            "kv" /* what a write without a topic is published under */

/* One entry ready to hand out; its pointers are into the batch's owner. */
typedef struct {
    strata_entry_t entry;
    const uint8_t *raw;
    size_t raw_len;
} item_t;

/* The entries next() hands out, one at a time, from one owner: a stream
 * message or a history reply, kept until the caller's next call. */
typedef struct {
    zmsg_t *msg;
    strata_reply_t reply;
    item_t *items;
    size_t n_items, cap_items, next;
    bool from_replay;
} batch_t;

/* A replay in progress, one page per step. exact: one topic, delivered only
 * when the entry's topic is exactly it (the request names it as a prefix).
 * Otherwise a base repair of every subscribed prefix, which lifts B and
 * every L[t] to to_seq when done. */
typedef struct {
    bool active;
    bool exact;
    char topic[STRATA_PROTO_MAX_TOPIC + 1];
    uint16_t topic_len;
    uint64_t from_seq; /* 0: from_time_ns */
    uint64_t from_time_ns;
    uint64_t to_seq;
} repair_t;

/* A PUB message, parsed and checked (proto/DISTRIBUTION.md, "PUB messages"). */
typedef struct {
    const uint8_t *topic;
    size_t topic_len;
    uint8_t version;
    uint8_t kind;
    uint32_t count;
    uint64_t prev_seq;
    uint64_t instance;
    uint64_t start_seq;
    uint64_t term; /* 0 from a version 1 meta */
    const uint8_t *body;
    size_t body_len;
} pub_msg_t;

/* Topic keys of the L[t] table: bytes, not strings (a topic may hold NULs). */
typedef struct {
    uint16_t len;
    uint8_t bytes[];
} topic_key_t;

struct strata_sub {
    /* Every node's endpoints (one without the options' nodes); the two
     * below point at the node read now. */
    char **node_streams, **node_histories;
    size_t n_nodes, node;
    int failover_ms;
    int64_t last_stream_ms; /* when the node's stream last sent anything */
    bool fail_over;         /* the node went silent: move on before reading more */
    const char *stream_endpoint;
    const char *history_endpoint;
    char *durable; /* NULL: a stream subscription */
    char **topics;
    size_t n_topics;
    uint64_t from_seq;
    uint64_t from_time_ns;
    uint32_t window;
    int timeout_ms;
    char *curve_server_key, *curve_cert; /* NULL: no CURVE */

    zsock_t *stream; /* SUB; NULL for durable sessions */
    void *stream_handle;
    zsock_t *history; /* DEALER */
    void *history_handle;
    uint64_t next_request_id;

    /* Stream state: L[t] (every entry of t with seq <= it is delivered) and
     * the base B for topics not in the table. */
    zhashx_t *last_seq;
    uint64_t base_seq;
    uint64_t instance;
    uint64_t start_seq;
    uint64_t term;          /* the highest term a stream message carried */
    uint64_t time_floor_ns; /* from_time: entries committed before it are skipped */
    zlist_t *early;         /* zmsg_t that arrived before the first heartbeat */
    zmsg_t *postponed;      /* the message whose gap the repair is filling */
    repair_t repair;

    /* Durable state. */
    uint64_t session_id; /* the SubscribeRequest's id: deliveries carry it */
    uint64_t acked_seq;
    uint64_t durable_seq;
    uint64_t last_delivered;
    uint64_t last_ack_seq;
    int64_t last_ack_ms;
    bool resubscribe;

    batch_t batch;
    strata_sub_stats_t stats;
};

void sub_batch_keep(batch_t *batch, size_t *kept, size_t i);
void sub_batch_release(batch_t *batch);
bool sub_before_floor(strata_sub_t *self, const strata_entry_t *entry);
int sub_decode_entries(batch_t *batch, const uint8_t *data, size_t len, uint32_t count,
                       const char *what, strata_error_t *err);
const uint8_t *sub_entry_topic(const strata_entry_t *e, size_t *len);
int sub_history_call(strata_sub_t *self, strata_request_t *req, strata_reply_t *reply,
                     strata_error_t *err);
int sub_history_read(strata_sub_t *self, strata_reply_t *reply, int *rc, strata_error_t *err);
int sub_history_send(strata_sub_t *self, const strata_request_t *req, strata_error_t *err);
uint64_t sub_last(strata_sub_t *self, const uint8_t *topic, size_t len);
void sub_lift_all(strata_sub_t *self, uint64_t seq);
int sub_on_async_reply(strata_sub_t *self, const strata_reply_t *reply, strata_error_t *err);
int sub_poll(void *handle, const char *endpoint, long wait_ms, strata_error_t *err);
void sub_repair_start_base(strata_sub_t *self, uint64_t from_seq, uint64_t from_time_ns,
                           uint64_t to_seq);
void sub_repair_start_topic(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t from_seq,
                            uint64_t to_seq);
int sub_repair_step(strata_sub_t *self, strata_error_t *err);
int sub_set_last(strata_sub_t *self, const uint8_t *topic, size_t len, uint64_t seq,
                 strata_error_t *err);
bool sub_subscribed(const strata_sub_t *self, const uint8_t *topic, size_t len);

#endif
