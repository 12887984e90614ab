/* See outq.h. */
#define _GNU_SOURCE
#include "outq.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

struct svc_outq {
    uint64_t cap;
    _Atomic uint64_t bytes;
    /* One for the owner and one per message ZeroMQ holds: the release
     * callback may run on ZeroMQ's I/O thread after the owner is gone. */
    _Atomic uint64_t refs;
};

svc_outq_t *svc_outq_new(uint64_t cap)
{
    svc_outq_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cap = cap;
    atomic_init(&q->refs, 1);
    return q;
}

static void unref(svc_outq_t *q)
{
    if (atomic_fetch_sub(&q->refs, 1) == 1)
        free(q);
}

void svc_outq_destroy(svc_outq_t **q_p)
{
    if (*q_p)
        unref(*q_p);
    *q_p = NULL;
}

/* What malloc really holds for buf: a 20-byte reply costs more than 20. */
static uint64_t cost(void *buf)
{
    return (uint64_t)malloc_usable_size(buf) + sizeof(zmq_msg_t);
}

static void release(void *data, void *hint)
{
    svc_outq_t *q = hint;
    atomic_fetch_sub(&q->bytes, cost(data));
    free(data);
    unref(q);
}

int svc_outq_send(svc_outq_t *q, void *sock, void *buf, size_t len, int flags)
{
    if (!buf) /* ZeroMQ takes no NULL data with a release callback */
        buf = malloc(1);
    if (!buf)
        return -1;
    atomic_fetch_add(&q->refs, 1);
    atomic_fetch_add(&q->bytes, cost(buf));
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, buf, len, release, q) != 0) {
        release(buf, q);
        return -1;
    }
    int rc = zmq_msg_send(&msg, sock, flags);
    if (rc < 0)
        zmq_msg_close(&msg); /* runs release */
    return rc;
}

int svc_outq_send_after(svc_outq_t *q, zsock_t *sock, zmsg_t **envelope_p, void *buf, size_t len)
{
    zmsg_t *env = *envelope_p;
    *envelope_p = NULL;
    zframe_t *f;
    /* A frame that fails (only at shutdown) is gone; the last one is sent
     * all the same so the socket is never left inside a message. */
    while (env && (f = zmsg_pop(env))) {
        zframe_send(&f, sock, ZFRAME_MORE);
        zframe_destroy(&f); /* still ours when the send failed */
    }
    zmsg_destroy(&env);
    return svc_outq_send(q, zsock_resolve(sock), buf, len, 0);
}

uint64_t svc_outq_bytes(const svc_outq_t *q)
{
    return atomic_load(&q->bytes);
}

uint64_t svc_outq_cap(const svc_outq_t *q)
{
    return q->cap;
}

bool svc_outq_full(const svc_outq_t *q)
{
    return atomic_load(&q->bytes) >= q->cap;
}
