/* The C client for a Strata node (proto/PROTOCOL.md over a ZMQ DEALER).
 *
 * Two ways to use it. The blocking calls (put, get, ...) send one request and
 * wait for its reply up to the client's timeout. The pipelined pair
 * strata_client_send / strata_client_recv keeps many requests in flight on
 * the same socket; replies come back in any order and carry the request id
 * send returned. Both may be mixed: a blocking call keeps replies to other
 * requests that arrive meanwhile for a later recv.
 *
 * One client is one socket: use it from one thread at a time.
 *
 * Failover. Given a list of a cluster's endpoints (options.endpoints), the
 * client still talks to one node at a time, the first of the list to begin
 * with; strata_client_endpoint names it. A blocking call answered STATUS
 * ENOTMASTER (proto/PROTOCOL.md, "Cluster nodes") was not run by that node,
 * so the client sends it again elsewhere: to the master the answer names
 * (`... the master is node N at ENDPOINT ...`, whether or not ENDPOINT is in
 * the list), to the same node when it was elected a moment ago (`not master
 * yet`), else to the list's next entry; at once the first time, then after 5 ms,
 * doubling up to 200 ms between tries, all within the call's timeout. When the timeout
 * runs out first, the call returns the last ENOTMASTER with its message and
 * how many tries it took. Reads go to whatever node is in use, which serves
 * what it has committed. Never sent again:
 *   - a write (put, delete, batch, record) answered ENOTMASTER with
 *     "outcome unknown": the node had taken it and lost the office before it
 *     committed, so it may yet commit;
 *   - any call that got no reply in time: STRATA_ETIMEDOUT, and for a write
 *     a message saying its outcome is unknown (writes are not idempotent).
 * After either, the next call starts on the list's next entry. Moving to
 * another node drops requests sent with strata_client_send whose replies
 * have not arrived: their ids no longer count as in flight. The pipelined
 * calls themselves never move; their replies carry ENOTMASTER as is.
 * Without a list (endpoint alone) the client stays on its one endpoint and
 * returns every answer as it came. */
#ifndef STRATA_CLIENT_H
#define STRATA_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/codec.h"
#include "strata/err.h"

typedef struct strata_client strata_client_t;

#define STRATA_CLIENT_DEFAULT_ENDPOINT   "tcp://127.0.0.1:7400"
#define STRATA_CLIENT_DEFAULT_TIMEOUT_MS 5000
/* Requests one client keeps in flight at most; a send beyond it is
 * STRATA_ETOOBIG. It bounds the replies a client holds for a later recv. */
#define STRATA_CLIENT_MAX_IN_FLIGHT 100000u

typedef struct {
    const char *endpoint; /* NULL: STRATA_CLIENT_DEFAULT_ENDPOINT; ignored with endpoints */
    /* A cluster's client endpoints, for failover (above); the client copies
     * them. n_endpoints 0: endpoint alone, no failover. */
    const char *const *endpoints;
    size_t n_endpoints;
    int timeout_ms; /* per blocking call; 0: STRATA_CLIENT_DEFAULT_TIMEOUT_MS */
    /* CURVE, for a server with security/curve on (both or neither): the
     * server's public key as 40 characters of Z85, or the path of its
     * public certificate; and the path of this client's certificate with
     * its secret key (stratactl keygen writes both parts). A server that
     * does not know the key never answers: calls time out. */
    const char *curve_server_key;
    const char *curve_cert;
    /* A session (a random id the client picks): every write carries it
     * with its request id, so the server applies each at most once
     * (proto/PROTOCOL.md, "Sessions"). Then a write whose outcome is
     * unknown (no reply within timeout_ms, or a master that stepped down
     * before its commit) is sent again with the same request id, to the
     * next endpoint, until retry_ms (0: 10000) has passed since the call
     * began; only then is it reported unknown. A write refused for want of
     * a master is tried again the same way. */
    bool sessions;
    int retry_ms;
} strata_client_options_t;

/* Creates the socket and starts connecting (ZMQ connects in the background,
 * so an absent server shows up as STRATA_ETIMEDOUT on the first call).
 * STRATA_EINVAL names a malformed endpoint (every entry of a list is
 * checked) or an empty entry. */
int strata_client_connect(const strata_client_options_t *opts, strata_client_t **client_p,
                          strata_error_t *err);
/* Closes at once, dropping replies still in flight; nulls *client_p. */
void strata_client_destroy(strata_client_t **client_p);
/* The endpoint in use: the one given, a list entry, or a master's hint.
 * Valid until the next call on self. */
const char *strata_client_endpoint(const strata_client_t *self);

/* ---- blocking calls ----------------------------------------------------
 * Each returns 0 or a negative strata_err_t: the server's status when it
 * answered with an error (err carries its message), STRATA_ETIMEDOUT when no
 * reply came in time, STRATA_EINVAL for a reply that does not parse. seq
 * pointers may be NULL. */

int strata_client_put(strata_client_t *self, strata_durability_t durability, const void *key,
                      size_t key_len, const void *value, size_t value_len, uint64_t *seq,
                      strata_error_t *err);
int strata_client_delete(strata_client_t *self, strata_durability_t durability, const void *key,
                         size_t key_len, uint64_t *seq, strata_error_t *err);
/* Atomic: all ops or none. *seq gets the seq of the last op. */
int strata_client_batch(strata_client_t *self, strata_durability_t durability,
                        const strata_batch_op_t *ops, size_t n_ops, uint64_t *seq,
                        strata_error_t *err);
/* Validated by the server against proto/RECORDS.md; it derives the topic
 * and key from the record. msgpack is an encoded record (strata_record_encode). */
int strata_client_record_put(strata_client_t *self, strata_durability_t durability,
                             const void *msgpack, size_t len, uint64_t *seq, strata_error_t *err);
/* *value is malloc'd (the caller frees it); STRATA_ENOTFOUND when absent. */
int strata_client_get(strata_client_t *self, const void *key, size_t key_len, void **value,
                      size_t *value_len, strata_error_t *err);

/* The calls below fill *reply (the caller strata_reply_clear()s it, whatever
 * the result): multi_get's values, a scan page's entries and next_cursor,
 * status's role/term/last_seq/durable_seq, stats' and control's pairs. */
int strata_client_multi_get(strata_client_t *self, const strata_bytes_t *keys, size_t n_keys,
                            strata_reply_t *reply, strata_error_t *err);
/* One page of [start, end) (end empty: unbounded) of at most limit entries
 * (0: server default), from cursor (empty: from start). Continue with the
 * reply's next_cursor until it comes back empty. */
int strata_client_scan(strata_client_t *self, strata_bytes_t start, strata_bytes_t end,
                       uint32_t limit, strata_bytes_t cursor, strata_reply_t *reply,
                       strata_error_t *err);
int strata_client_status(strata_client_t *self, strata_reply_t *reply, strata_error_t *err);
int strata_client_stats(strata_client_t *self, strata_reply_t *reply, strata_error_t *err);
int strata_client_control(strata_client_t *self, const char *verb, const char *const *args,
                          size_t n_args, strata_reply_t *reply, strata_error_t *err);

/* Any request (req->request_id is assigned here): the building block of the
 * calls above. */
int strata_client_call(strata_client_t *self, strata_request_t *req, strata_reply_t *reply,
                       strata_error_t *err);

/* ---- pipelining --------------------------------------------------------- */

/* Sends req without waiting; assigns and returns its request id. Never
 * blocks for long: STRATA_ETIMEDOUT if the socket's send queue stays full
 * for the client's timeout. */
int strata_client_send(strata_client_t *self, strata_request_t *req, uint64_t *request_id,
                       strata_error_t *err);
/* As strata_client_send, but req waits in the client with the others queued
 * and they leave together, as one message (proto/PROTOCOL.md, "Several
 * requests in one message"), when strata_client_flush is called, when recv
 * has no reply at hand and must wait, when a blocking call or a send is
 * made, or once 128 requests or 256 KiB are queued. A caller keeping many
 * requests in flight queues each and recvs the replies: the requests and
 * replies then cross in a few messages, not one each. On an error the
 * requests queued with it are dropped too (none of them left) and no
 * longer count as in flight. */
int strata_client_queue(strata_client_t *self, strata_request_t *req, uint64_t *request_id,
                        strata_error_t *err);
/* Sends what strata_client_queue left waiting; 0 when nothing was. */
int strata_client_flush(strata_client_t *self, strata_error_t *err);
/* The next reply to any request sent, waiting up to timeout_ms (-1: forever,
 * 0: poll). Fills *reply (clear it after). The reply's own status is in
 * reply->status; the return is 0 when a reply arrived, STRATA_ETIMEDOUT when
 * none did, STRATA_EINVAL when one arrived that does not parse. */
int strata_client_recv(strata_client_t *self, int timeout_ms, strata_reply_t *reply,
                       strata_error_t *err);
/* Requests sent whose replies have not been returned yet (a blocking call
 * that timed out no longer counts: its late reply is dropped). With none in
 * flight, recv returns STRATA_ETIMEDOUT at once. */
size_t strata_client_in_flight(const strata_client_t *self);

#endif
