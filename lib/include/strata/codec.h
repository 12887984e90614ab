/* The one codec for the client/server protocol (proto/PROTOCOL.md): plain C
 * requests and replies in, protobuf frames out, and back. Services and clients
 * use only this header; the protobuf-c structs stay inside lib/wire/codec.c. */
#ifndef STRATA_CODEC_H
#define STRATA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/wal.h"

/* Protocol caps; PROTOCOL.md explains each. A decoder rejects anything
 * beyond them with STRATA_ETOOBIG and the field named in the error. */
#define STRATA_PROTO_VERSION         1u
#define STRATA_PROTO_MAX_MESSAGE     (8u << 20) /* one frame, request or reply */
#define STRATA_PROTO_MAX_KEY         (64u << 10)
#define STRATA_PROTO_MAX_VALUE       (1u << 20)
#define STRATA_PROTO_MAX_BATCH_OPS   1024u
#define STRATA_PROTO_MAX_MULTI_GET   1024u
#define STRATA_PROTO_MAX_SCAN_LIMIT  10000u
#define STRATA_PROTO_MAX_CURSOR      (64u << 10)
#define STRATA_PROTO_MAX_TEXT        4096u /* control verb/arg, pair, error message */
#define STRATA_PROTO_MAX_ARGS        32u
#define STRATA_PROTO_MAX_INSTALL     4096u /* tables in each list of an install */
#define STRATA_PROTO_MAX_PAIRS       4096u
#define STRATA_PROTO_MAX_TOPICS      64u  /* per replay or subscription */
#define STRATA_PROTO_MAX_TOPIC       255u /* bytes in one topic */
#define STRATA_PROTO_MAX_NAME        128u /* durable subscriber name */
#define STRATA_PROTO_MAX_SUBSCRIBERS 4096u

/* Keys under this prefix belong to the node's own processes (durable
 * subscriber offsets, ...): the writer accepts writes to them only on its
 * control endpoint and files them under the system topic. */
#define STRATA_SYS_KEY_PREFIX     "\0strata/"
#define STRATA_SYS_KEY_PREFIX_LEN 8u
#define STRATA_SYS_TOPIC          "$sys"
/* Topics beginning with this are the node's own ($sys, the distributor's
 * $hb): no client write may use one. */
#define STRATA_SYS_TOPIC_PREFIX '$'

typedef enum {
    STRATA_OP_NONE = 0,
    STRATA_OP_PUT,
    STRATA_OP_DELETE,
    STRATA_OP_BATCH,
    STRATA_OP_GET,
    STRATA_OP_MULTI_GET,
    STRATA_OP_SCAN,
    STRATA_OP_STATUS,
    STRATA_OP_STATS,
    STRATA_OP_CONTROL,
    STRATA_OP_RECORD, /* a typed record in value; the server derives topic and key */
    /* The distributor's history endpoint (proto/DISTRIBUTION.md). */
    STRATA_OP_REPLAY,
    STRATA_OP_SUBSCRIBE,
    STRATA_OP_ACK,
    STRATA_OP_SUBSCRIBERS,
    STRATA_OP_DELIVER, /* replies only: entries pushed to a durable session */
    STRATA_OP_SUBSCRIBER_DELETE,
    STRATA_OP_SUBSCRIBER_RESET,
} strata_op_t;

/* subscriber_reset: where the acked seq goes. */
typedef enum {
    STRATA_RESET_TO_SEQ = 0, /* seq is the next to deliver */
    STRATA_RESET_TO_EARLIEST = 1,
    STRATA_RESET_TO_LATEST = 2,
} strata_reset_to_t;

/* The wire's durability is the WAL's (strata/wal.h): SYNC (0, the
 * default) replies after fdatasync, ASYNC after write(). */
#define STRATA_DURABILITY_SYNC  STRATA_SYNC
#define STRATA_DURABILITY_ASYNC STRATA_ASYNC

/* When a cluster master acknowledges a write (PROTOCOL.md, "Cluster
 * nodes"); a single node ignores it. */
typedef enum {
    STRATA_REPLICATION_DEFAULT = 0, /* the node's cluster/replication */
    STRATA_REPLICATION_QUORUM = 1,  /* durable on a majority of the voters */
    STRATA_REPLICATION_ASYNC = 2,   /* durable on the master, as durability says */
} strata_replication_t;

typedef enum {
    STRATA_BATCH_PUT = 0,
    STRATA_BATCH_DELETE = 1,
} strata_batch_kind_t;

/* A view of bytes someone else owns. */
typedef struct {
    const uint8_t *data;
    size_t len;
} strata_bytes_t;

typedef struct {
    strata_batch_kind_t kind;
    strata_bytes_t key;
    strata_bytes_t value;
} strata_batch_op_t;

/* A compactor's finished job (control install_compaction): tables by number
 * at level and level + 1, the finished outputs by bare file name. */
typedef struct {
    uint32_t level;
    const uint64_t *inputs[2];
    size_t n_inputs[2];
    const char *const *outputs;
    size_t n_outputs;
    uint64_t cpu_ns;
} strata_install_t;

/* Which fields matter depends on op. After decode every pointer is into
 * memory the request owns, valid until strata_request_clear(); for encode the
 * caller fills the views with its own memory and keeps ownership. */
typedef struct {
    uint32_t version; /* encode: 0 means STRATA_PROTO_VERSION */
    uint64_t request_id;
    strata_op_t op;
    strata_durability_t durability;
    strata_replication_t replication;
    uint64_t min_seq;             /* get, multi-get, scan: answered once applied (0: now) */
    uint64_t session;             /* writes: the client's session (0: none); request_id orders it */
    strata_bytes_t key;           /* put, delete, get */
    strata_bytes_t value;         /* put, record */
    const strata_batch_op_t *ops; /* batch */
    size_t n_ops;
    const strata_bytes_t *keys; /* multi-get */
    size_t n_keys;
    strata_bytes_t scan_start;
    strata_bytes_t scan_end; /* empty: no upper bound */
    strata_bytes_t scan_cursor;
    uint32_t scan_limit; /* 0: server default */
    const char *verb;    /* control */
    const char *const *args;
    size_t n_args;
    const strata_install_t *install; /* control: install_compaction's; NULL: absent */
    const char *name;                /* subscribe, ack, subscriber_delete, subscriber_reset */
    const char *const *topics;       /* replay, subscribe */
    size_t n_topics;
    uint64_t seq;          /* replay, subscribe: from_seq; ack: acked; reset: next to deliver */
    uint64_t from_time_ns; /* replay */
    uint64_t to_seq;       /* replay */
    uint32_t max_entries;  /* replay */
    uint32_t max_bytes;    /* replay */
    uint32_t window;       /* subscribe */
    void *decoded_;        /* private: what decode allocated */
    /* subscriber_reset: where the acked seq goes (seq for STRATA_RESET_TO_SEQ) */
    strata_reset_to_t reset_to;
} strata_request_t;

typedef struct {
    bool found;
    strata_bytes_t value;
} strata_value_t;

typedef struct {
    strata_bytes_t key;
    strata_bytes_t value;
} strata_kv_t;

typedef struct {
    const char *name;
    const char *value;
} strata_pair_t;

typedef struct {
    const char *name;
    const char *const *topics;
    size_t n_topics;
    uint64_t acked_seq;
    uint64_t lag_records;
    uint64_t lag_ms;
    uint64_t unacked;
    uint64_t resends;
    bool connected;
} strata_subscriber_info_t;

/* op says which body the reply carries; an error reply (status < 0) needs a
 * message and may carry op NONE and no body. Ownership as for strata_request_t. */
typedef struct {
    uint32_t version; /* encode: 0 means STRATA_PROTO_VERSION */
    uint64_t request_id;
    strata_op_t op;
    int32_t status;               /* 0 or a negative strata_err_t */
    const char *message;          /* NULL or "" when status is 0 */
    uint64_t seq;                 /* put, delete, batch, record: last sequence number written */
    uint64_t applied_seq;         /* get, multi-get, scan: every seq up to it is reflected */
    const strata_value_t *values; /* get (exactly one), multi-get */
    size_t n_values;
    const strata_kv_t *entries; /* scan */
    size_t n_entries;
    strata_bytes_t next_cursor; /* scan: empty when the range is exhausted */
    const char *role;           /* status */
    uint64_t term;
    uint64_t last_seq;
    uint64_t durable_seq;
    const strata_pair_t *pairs; /* stats, control */
    size_t n_pairs;
    strata_bytes_t entries_blob; /* replay, deliver: whole WAL entries, concatenated */
    uint32_t count;              /* entries in entries_blob */
    uint64_t next_seq;           /* replay */
    uint64_t published_seq;      /* replay, subscribe */
    bool done;                   /* replay */
    uint64_t acked_seq;          /* subscribe, subscriber_delete, subscriber_reset */
    uint64_t first_seq;          /* deliver (last_seq above is its last) */
    /* ack: durable_seq above is the stored offset */
    const strata_subscriber_info_t *subscribers;
    size_t n_subscribers;
    void *decoded_; /* private: what decode allocated */
} strata_reply_t;

/* Packs req into a malloc'd frame the caller frees. STRATA_EINVAL for an op
 * or enum outside the protocol, STRATA_ETOOBIG if the frame would exceed
 * STRATA_PROTO_MAX_MESSAGE. Field caps are the receiver's to enforce. */
int strata_request_encode(const strata_request_t *req, uint8_t **buf, size_t *len,
                          strata_error_t *err);

/* Parses one frame into out (which the caller then clears, whatever the
 * result). Returns 0, STRATA_EINVAL (malformed frame, unknown op or enum),
 * STRATA_EVERSION (version other than STRATA_PROTO_VERSION) or STRATA_ETOOBIG
 * (a cap exceeded), with the field named in err. On EVERSION, EINVAL after
 * parsing and ETOOBIG for a field, out->request_id is set so the server can
 * still address its error reply. Never crashes on hostile input. */
int strata_request_decode(const void *buf, size_t len, strata_request_t *out, strata_error_t *err);

/* As strata_request_decode, but a put, delete or get may point into buf
 * instead of copies: buf must outlive out. The server's hot path. */
int strata_request_decode_view(const void *buf, size_t len, strata_request_t *out,
                               strata_error_t *err);

/* Frees what decode allocated and zeroes req; safe on a zeroed request. */
void strata_request_clear(strata_request_t *req);

/* As for requests. A reply is either a success (status 0) with its op's body
 * or an error (status < 0) with a non-empty message and usually no body;
 * anything else is STRATA_EINVAL both ways. */
int strata_reply_encode(const strata_reply_t *rep, uint8_t **buf, size_t *len, strata_error_t *err);
int strata_reply_decode(const void *buf, size_t len, strata_reply_t *out, strata_error_t *err);
void strata_reply_clear(strata_reply_t *rep);

const char *strata_op_name(strata_op_t op);

/* The one check every client write path (put, delete, batch ops, records)
 * makes: a key under STRATA_SYS_KEY_PREFIX or a topic (may be NULL: the
 * default) beginning with STRATA_SYS_TOPIC_PREFIX is the node's own.
 * STRATA_EINVAL naming field, e.g. `record.key: the \0strata/ prefix is
 * reserved` or `record.topic: '$sys' is reserved ($-prefixed topics are the
 * node's)`. */
int strata_check_client_write(const char *field, strata_bytes_t key, const char *topic,
                              strata_error_t *err);
/* Whether key lies in the node's reserved key space. */
bool strata_is_sys_key(strata_bytes_t key);

#endif
