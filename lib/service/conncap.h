/* A cap on the TCP connections one ROUTER endpoint holds, so that clients
 * can never use up the process's file descriptors (the WAL must still be
 * able to open its next segment): ZeroMQ accepts without limit, so a
 * socket monitor counts accepted and closed connections, and one past the
 * cap is shut down as soon as it is accepted. The monitor also knows each
 * connection's descriptor, which lets an owner whose outgoing bytes are
 * over their cap close the peer that stopped reading (svc_conncap_shed). At start the soft
 * RLIMIT_NOFILE is raised to the hard one. */
#ifndef STRATA_SVC_CONNCAP_H
#define STRATA_SVC_CONNCAP_H

#include <czmq.h>
#include <stdint.h>

#include "strata/err.h"

/* Descriptors kept for files, pipes and ZeroMQ's own sockets. */
#define SVC_CONNCAP_RESERVE 256

typedef struct svc_conncap svc_conncap_t;

/* Watches sock (bound, tcp): at most max_clients connections, and never
 * more than the descriptor limit less SVC_CONNCAP_RESERVE. The effective
 * cap goes to *cap (may be NULL). */
int svc_conncap_new(zsock_t *sock, uint64_t max_clients, svc_conncap_t **conncap_p, uint64_t *cap,
                    strata_error_t *err);
void svc_conncap_destroy(svc_conncap_t **conncap_p);
/* The socket to read in the service's loop, with svc_conncap_handle. */
zsock_t *svc_conncap_sock(svc_conncap_t *c);
/* Handles one monitor event; a zloop reader. */
int svc_conncap_handle(zloop_t *loop, zsock_t *sock, void *arg);
/* Connections held now, refused since the start, and shed. */
uint64_t svc_conncap_open(const svc_conncap_t *c);
uint64_t svc_conncap_refused(const svc_conncap_t *c);
uint64_t svc_conncap_shed_count(const svc_conncap_t *c);
/* Looks at every connection's kernel send queue (at most once per 10 ms)
 * and closes the peer that is not reading: of those with at least
 * min_bytes unsent at this look and at the previous one (within a second)
 * and no fewer now, the one with the most. A reader with a large reply in
 * flight drains it between two looks. Returns 1 when it closed one. Safe
 * from any thread; the owner calls it while over its byte cap, from a
 * timer too, since two looks are needed. */
int svc_conncap_shed(svc_conncap_t *c, uint64_t min_bytes, const char *why);

#endif
