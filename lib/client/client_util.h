/* What the client and the subscriber share: czmq's initialisation and the
 * deadline arithmetic of their timeouts. Private to the library. */
#ifndef STRATA_CLIENT_UTIL_H
#define STRATA_CLIENT_UTIL_H

#include <czmq.h>
#include <stdint.h>

#include "strata/codec.h"
#include "strata/err.h"

/* czmq's first zsys_init is not thread-safe: a thread creating its first
 * socket while another is still inside zsys_init trips an assertion there.
 * Clients and subscribers are made from many threads, so every part of the
 * library that makes sockets calls this first; one pthread_once for all of
 * them, since two separate ones would race each other the same way. */
void client_zsys_init_once(void);

/* Makes sock a CURVE client, before its connect: server_key is the
 * server's public key (40 characters of Z85) or the path of its public
 * certificate, cert the path of this client's certificate with its secret
 * key. Both NULL: nothing to do (a plain connection); one alone is
 * EINVAL, as is a file that cannot be read. */
int client_curve_apply(zsock_t *sock, const char *server_key, const char *cert,
                       strata_error_t *err);

/* CLOCK_MONOTONIC in ms. */
int64_t client_mono_ms(void);
/* A deadline in client_mono_ms() time; a negative timeout waits forever (-1). */
int64_t client_deadline_ms(int timeout_ms);
/* What is left for zmq_poll: -1 forever, 0 once the deadline has passed. */
long client_remaining_ms(int64_t deadline);

/* Encodes req as one frame and sends it on the libzmq socket handle without
 * blocking past deadline (client_deadline_ms time): a full send queue is
 * ETIMEDOUT ("queue full for timeout_ms"), a signal ECLOSED. endpoint and
 * timeout_ms only name things in errors. */
int client_send_request(void *handle, const char *endpoint, const strata_request_t *req,
                        int64_t deadline, int timeout_ms, strata_error_t *err);
/* As client_send_request for n encoded requests, sent as one message of n
 * frames. Each bufs[i] was malloc'd and is ZeroMQ's or freed here,
 * whatever the result. */
int client_send_frames(void *handle, const char *endpoint, uint8_t *const *bufs, const size_t *lens,
                       size_t n, int64_t deadline, int timeout_ms, strata_error_t *err);

#endif
