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

#endif
