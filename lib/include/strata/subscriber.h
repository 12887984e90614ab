/* Remote subscriptions to a node's distributor (proto/DISTRIBUTION.md), in the
 * client library. Three ways to subscribe, one call to read:
 *
 *  - live (from_seq 0, no durable name): SUB to the live or delayed stream;
 *    gaps (dropped messages, a restarted distributor) are detected by seq
 *    and repaired from the history endpoint before delivery goes on;
 *  - from a seq or a time: history replay, then a hand-off to the live
 *    stream with no gap and no duplicate (the Clone pattern);
 *  - durable (a name): a session on the history endpoint that resumes after
 *    the subscriber's last durable ack, in global seq order, acked with
 *    strata_sub_ack.
 *
 * Order is per topic for the first two (global except around a repair) and
 * global for durable sessions. Entries are handed out as written to the WAL:
 * a write without a topic has topic_len 0 (it travels as "kv"). Repairs run
 * inside strata_sub_next, synchronously, one history page per request. The
 * SUB socket queues up to a million messages while a repair runs; whatever
 * ZeroMQ still drops (or a distributor restart loses) is found by seq and
 * repaired the same way. Local zero-copy readers use strata/ring.h.
 * One subscriber is used from one thread.
 *
 * Every entry carries the term of the leader that wrote it (entry->term,
 * from its WAL bytes); a stream message's meta frame says the term too, and
 * the subscriber checks that they agree (proto/DISTRIBUTION.md).
 *
 * Cluster failover (stream subscriptions): given the endpoints of every
 * node's distributor (nodes), the subscriber reads one node at a time and,
 * when that node's stream sends nothing, heartbeats included, for
 * failover_ms (or its history endpoint does not answer a repair within
 * timeout_ms), moves to the next node in the list and carries on from
 * where it was: the new node's heartbeat and seqs show what this
 * subscriber has not been given, which is replayed from that node's
 * history before its live stream is delivered, so no entry is skipped or
 * delivered twice (a committed seq means the same entry on every node).
 * A node that is behind resends what was already delivered; it is dropped
 * as a duplicate. Failover is decided by silence only: a node whose
 * distributor keeps heartbeating while its writer is down is not left. */
#ifndef STRATA_SUBSCRIBER_H
#define STRATA_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/wal.h"

typedef struct strata_sub strata_sub_t;

#define STRATA_SUB_DEFAULT_LIVE    "tcp://127.0.0.1:7410"
#define STRATA_SUB_DEFAULT_DELAYED "tcp://127.0.0.1:7411"
#define STRATA_SUB_DEFAULT_HISTORY "tcp://127.0.0.1:7412"

/* Most nodes a subscriber fails over between. */
#define STRATA_SUB_MAX_NODES 16

/* One node's distributor: its stream (the same tier on every node) and its
 * history endpoint. */
typedef struct {
    const char *stream_endpoint;
    const char *history_endpoint;
} strata_sub_node_t;

typedef struct {
    const char *stream_endpoint;  /* live or delayed PUB; NULL: STRATA_SUB_DEFAULT_LIVE */
    const char *history_endpoint; /* NULL: STRATA_SUB_DEFAULT_HISTORY */
    const char *const *topics;    /* prefixes, 1..255 bytes; none: every topic not beginning
                                     with '$'; at most 64 */
    size_t n_topics;
    uint64_t from_seq;     /* > 0: replay from here, then live */
    uint64_t from_time_ns; /* > 0 (and from_seq 0): replay from this commit time;
                              not for durable sessions */
    const char *durable;   /* non-NULL: a durable session under this name (1..128 bytes);
                              from_seq then only applies to a name the node has not seen */
    uint32_t window;       /* durable: unacked entries in flight; 0: server default */
    int timeout_ms;        /* per history request, and for open's first heartbeat; 0: 5000 */
    /* CURVE, for a distributor with security/curve on (both or neither),
     * as strata_client_options_t takes them: the server's public key (40
     * characters of Z85, or the path of its public certificate) and this
     * client's certificate with its secret key. They apply to the stream
     * and the history socket alike. A key the distributor does not know
     * gets nothing: open times out. A durable name belongs to the key
     * that created it; another key is refused with STRATA_EPERM. */
    const char *curve_server_key;
    const char *curve_cert;
    /* A cluster: every node's endpoints (1..STRATA_SUB_MAX_NODES, both set
     * for each), instead of stream_endpoint and history_endpoint (which
     * must then be NULL). Open starts at nodes[0] (trying the next when a
     * node sends no heartbeat within failover_ms); not for durable
     * sessions, whose session and unacked window one distributor holds. The CURVE
     * key, when given, must be every node's. */
    const strata_sub_node_t *nodes;
    size_t n_nodes;
    int failover_ms; /* with nodes: silence that moves to the next node; 0: 1000 */
} strata_sub_options_t;

/* Connects. A stream subscription waits for the stream's first heartbeat
 * (where the stream stands) and, with from_seq or from_time_ns, fetches the
 * first replay page; a durable one subscribes (so the stored offset is
 * known on return: strata_sub_acked_seq). STRATA_ETRUNCATED when from_seq or
 * the stored offset is older than the node retains; STRATA_ETIMEDOUT when
 * the distributor does not answer; STRATA_EINVAL for bad options or a
 * malformed endpoint (the message names it). */
int strata_sub_open(const strata_sub_options_t *opts, strata_sub_t **sub_p, strata_error_t *err);

/* The next entry, decoded and CRC-checked. Pointers in *entry (and *raw,
 * the whole WAL entry, if raw is non-NULL) stay valid until the next call.
 * Returns 0; STRATA_ETIMEDOUT when nothing arrived within timeout_ms (0
 * polls, -1 waits forever), or when the history endpoint did not answer a
 * repair or a resubscribe within the options' timeout (retried by the next
 * call; err says which; with nodes, a repair that is not answered moves to
 * the next node instead, and so does a stream silent for failover_ms,
 * within the same call); STRATA_ECLOSED when a signal set zsys_interrupted.
 * Any other error concerns one message or one repair and the next call goes
 * on after it: a message that fails a check (STRATA_EVERSION for another
 * meta version, STRATA_ECORRUPT for a bad CRC, STRATA_EINVAL for frames,
 * counts or lengths that do not add up) is dropped, and the gap it leaves is
 * repaired later; a repair whose entries the node no longer retains
 * (STRATA_ETRUNCATED) is given up, those entries are lost to this
 * subscriber, and delivery goes on after them. */
int strata_sub_next(strata_sub_t *self, int timeout_ms, strata_entry_t *entry, const uint8_t **raw,
                    size_t *raw_len, strata_error_t *err);

/* Durable only: every delivered entry with seq <= seq is processed. Sent
 * without waiting; strata_sub_durable_seq reports what the distributor has
 * stored (next() reads the confirmations, and sends the same ack again as a
 * keepalive after a second without one). An ack below an earlier one is a
 * no-op. STRATA_EINVAL on a non-durable subscriber or for a seq past the
 * last entry next() returned. After the session ends (ENOTFOUND from the
 * distributor) next() subscribes again, resends the last ack, and drops
 * entries it has already returned. */
int strata_sub_ack(strata_sub_t *self, uint64_t seq, strata_error_t *err);

/* Durable: the offset the subscribe found (entries start after it). */
uint64_t strata_sub_acked_seq(const strata_sub_t *self);
/* Durable: the highest ack the distributor has confirmed stored. */
uint64_t strata_sub_durable_seq(const strata_sub_t *self);

typedef struct {
    uint64_t delivered;    /* entries returned by next */
    uint64_t replayed;     /* of those, from replay requests (repairs and the hand-off) */
    uint64_t gaps;         /* gaps detected on the stream (prev_seq, heartbeat, new instance) */
    uint64_t duplicates;   /* entries dropped as already delivered */
    uint64_t resubscribes; /* durable sessions reopened after the distributor lost one */
    uint64_t failovers;    /* moves to another node (options' nodes) */
} strata_sub_stats_t;
void strata_sub_stats(const strata_sub_t *self, strata_sub_stats_t *stats);

/* Stream subscriptions: the index in the options' nodes of the node read
 * now (0 without nodes), and the highest term its stream messages have
 * carried (0 before any, or from a distributor that sends meta version 1). */
size_t strata_sub_node(const strata_sub_t *self);
uint64_t strata_sub_term(const strata_sub_t *self);

void strata_sub_close(strata_sub_t **sub_p);

#endif
