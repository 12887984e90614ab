/* See conncap.h. */
#include "conncap.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "log.h"

struct svc_conncap {
    zactor_t *monitor;
    uint64_t cap;
    _Atomic uint64_t open; /* written by the loop, read by /metrics */
    _Atomic uint64_t refused;
};

int svc_conncap_new(zsock_t *sock, uint64_t max_clients, svc_conncap_t **conncap_p, uint64_t *cap,
                    strata_error_t *err)
{
    *conncap_p = NULL;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    uint64_t fds = lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)lim.rlim_cur;
    if (fds <= 2 * SVC_CONNCAP_RESERVE)
        return strata_error_set(err, STRATA_EINVAL,
                                "the descriptor limit (RLIMIT_NOFILE %" PRIu64
                                ") leaves no room for clients beside %u kept for files",
                                fds, SVC_CONNCAP_RESERVE);
    svc_conncap_t *c = calloc(1, sizeof *c);
    if (!c)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    c->cap = fds - SVC_CONNCAP_RESERVE < max_clients ? fds - SVC_CONNCAP_RESERVE : max_clients;
    c->monitor = zactor_new(zmonitor, sock);
    if (!c->monitor) {
        free(c);
        return strata_error_set(err, STRATA_EIO, "cannot monitor the client endpoint");
    }
    zstr_sendx(c->monitor, "LISTEN", "ACCEPTED", "DISCONNECTED", NULL);
    zstr_send(c->monitor, "START");
    zsock_wait(c->monitor);
    if (cap)
        *cap = c->cap;
    *conncap_p = c;
    return 0;
}

void svc_conncap_destroy(svc_conncap_t **conncap_p)
{
    svc_conncap_t *c = *conncap_p;
    if (!c)
        return;
    zactor_destroy(&c->monitor);
    free(c);
    *conncap_p = NULL;
}

zsock_t *svc_conncap_sock(svc_conncap_t *c)
{
    return zactor_sock(c->monitor);
}

int svc_conncap_handle(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    svc_conncap_t *c = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return 0;
    char *event = zmsg_popstr(msg), *value = zmsg_popstr(msg);
    if (event && value && !strcmp(event, "ACCEPTED")) {
        if (c->open >= c->cap) {
            /* The descriptor is the new connection's: ZeroMQ sees it end and
             * closes it, and a DISCONNECTED follows. */
            shutdown(atoi(value), SHUT_RDWR);
            if (atomic_fetch_add(&c->refused, 1) % 1000 == 0)
                log_warning("event=client_refused connections=%" PRIu64 " cap=%" PRIu64
                            " refused=%" PRIu64,
                            c->open, c->cap, atomic_load(&c->refused));
        }
        c->open++;
    } else if (event && !strcmp(event, "DISCONNECTED") && c->open > 0) {
        c->open--;
    }
    zstr_free(&event);
    zstr_free(&value);
    zmsg_destroy(&msg);
    return 0;
}

uint64_t svc_conncap_open(const svc_conncap_t *c)
{
    return c->open;
}

uint64_t svc_conncap_refused(const svc_conncap_t *c)
{
    return atomic_load(&c->refused);
}
