/* Requests on a service's ROUTER socket, in the framing of proto/PROTOCOL.md:
 * [identity][payload] from a DEALER, [identity][empty][payload] from a REQ. */
#ifndef STRATA_SVC_ROUTER_H
#define STRATA_SVC_ROUTER_H

#include <czmq.h>
#include <stdbool.h>

#include "strata/codec.h"

/* Receives one message. Returns -1 when nothing came (interrupted), else 0
 * with *identity (NULL only for an empty message), *delimited (the peer is a
 * REQ: answer with the empty frame) and *payload, which is NULL when the
 * message did not have exactly one payload frame (*frames says how many it
 * had, identity excluded). The caller destroys both frames. */
int svc_router_recv(zsock_t *sock, zframe_t **identity, bool *delimited, zframe_t **payload,
                    size_t *frames);

/* Encodes rep and sends it to identity; an encode failure is logged. */
void svc_router_send(zsock_t *sock, zframe_t *identity, bool delimited, const strata_reply_t *rep);

/* An error reply: status code and a message naming the fault. */
void svc_router_send_error(zsock_t *sock, zframe_t *identity, bool delimited, uint64_t request_id,
                           int code, const char *text);

/* For a service that answers only control requests (the snapshotter, the
 * compactor): receives one request and hands it to fn; a bad frame count,
 * an undecodable payload or another op gets an error reply (wrong_op is the
 * message for the last). A zloop reader: -1 once interrupted. */
typedef void svc_control_fn(void *arg, zframe_t *identity, bool delimited,
                            const strata_request_t *req);
int svc_router_serve_control(zsock_t *sock, svc_control_fn *fn, void *arg, const char *wrong_op);

/* A zloop timer that ends the loop once zsys_interrupted is set: SIGTERM
 * may land on any thread (ZMQ's, MHD's), whose poll it does not wake, so a
 * loop with nothing else to do would never see it. arg: NULL, or an
 * _Atomic bool any thread may set to end the loop too (a server object's
 * stop). */
int svc_interrupt_tick(zloop_t *loop, int timer_id, void *arg);

/* Binds a control ROUTER at configured, or at ipc://<data_dir>/<service>.ctl
 * when it is empty, with the protocol's message cap; endpoint gets what it
 * bound (a tcp port chosen for '*' included). */
int svc_control_bind(const char *configured, const char *data_dir, const char *service,
                     zsock_t **router, char *endpoint, size_t cap, strata_error_t *err);

/* true for an ipc:// endpoint: a file, so bound only once its directory
 * exists, after the TCP ones (a port clash must fail a start before it
 * creates anything on disk). */
bool svc_endpoint_is_ipc(const char *endpoint);

#endif
