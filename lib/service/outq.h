/* The bytes a socket's outgoing messages hold while ZeroMQ still has them.
 *
 * ZeroMQ bounds a peer's queue in messages (the send HWM), not bytes: a
 * peer that stops reading can make a process hold HWM times the largest
 * message. Sent through an outq, a message's last frame is handed to
 * ZeroMQ without a copy, with a release callback that ZeroMQ's I/O thread
 * runs once the bytes are in the kernel (or dropped); the outq counts
 * what is in between. The owner compares that count with its cap, and when
 * it is over, refuses or drops new work and closes the connection that is
 * not reading (svc_conncap_shed). Messages ZeroMQ shares among several
 * peers (PUB) count once, which is what they cost. */
#ifndef STRATA_SVC_OUTQ_H
#define STRATA_SVC_OUTQ_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct svc_outq svc_outq_t;

/* cap: bytes; svc_outq_full says when the count reaches it. NULL when out
 * of memory. */
svc_outq_t *svc_outq_new(uint64_t cap);
/* The owner lets go; the object lives until ZeroMQ releases its last
 * message, so this may run before the sockets close. */
void svc_outq_destroy(svc_outq_t **q_p);
/* Sends buf, which must come from malloc and is the outq's from here on
 * (freed on every path), as the last frame or, with ZMQ_SNDMORE in flags,
 * a middle one. Returns zmq_msg_send's result. */
int svc_outq_send(svc_outq_t *q, void *sock, void *buf, size_t len, int flags);
/* Sends the frames of *envelope_p (consumed), then buf as above. */
int svc_outq_send_after(svc_outq_t *q, zsock_t *sock, zmsg_t **envelope_p, void *buf, size_t len);
uint64_t svc_outq_bytes(const svc_outq_t *q);
uint64_t svc_outq_cap(const svc_outq_t *q);
bool svc_outq_full(const svc_outq_t *q);

#endif
