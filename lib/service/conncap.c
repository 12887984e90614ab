/* See conncap.h. */
#include "conncap.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/sockios.h>

#include "log.h"

typedef struct {
    int fd;
    int unsent; /* SIOCOUTQ when last looked at */
    bool shed;  /* shut down already: ZeroMQ has yet to see it */
} conn_t;

struct svc_conncap {
    zactor_t *monitor;
    uint64_t cap;
    _Atomic uint64_t open; /* written by the loop, read by /metrics */
    _Atomic uint64_t refused;
    _Atomic uint64_t shed;
    pthread_mutex_t mu; /* conns: the loop adds and removes, any thread sheds */
    conn_t *conns;
    size_t nconns, conns_cap;
    uint64_t last_look_ns;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fd_add(svc_conncap_t *c, int fd)
{
    pthread_mutex_lock(&c->mu);
    if (c->nconns == c->conns_cap) {
        size_t cap = c->conns_cap ? 2 * c->conns_cap : 64;
        conn_t *grown = realloc(c->conns, cap * sizeof *grown);
        if (grown) {
            c->conns = grown;
            c->conns_cap = cap;
        }
    }
    if (c->nconns < c->conns_cap) /* out of memory: that one cannot be shed */
        c->conns[c->nconns++] = (conn_t){.fd = fd};
    pthread_mutex_unlock(&c->mu);
}

static void fd_remove(svc_conncap_t *c, int fd)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nconns; i++)
        if (c->conns[i].fd == fd) {
            c->conns[i] = c->conns[--c->nconns];
            break;
        }
    pthread_mutex_unlock(&c->mu);
}

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
    pthread_mutex_init(&c->mu, NULL);
    c->cap = fds - SVC_CONNCAP_RESERVE < max_clients ? fds - SVC_CONNCAP_RESERVE : max_clients;
    c->monitor = zactor_new(zmonitor, sock);
    if (!c->monitor) {
        pthread_mutex_destroy(&c->mu);
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
    pthread_mutex_destroy(&c->mu);
    free(c->conns);
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
        int fd = atoi(value);
        fd_add(c, fd);
        if (c->open >= c->cap) {
            /* The descriptor is the new connection's: ZeroMQ sees it end and
             * closes it, and a DISCONNECTED follows. */
            shutdown(fd, SHUT_RDWR);
            if (atomic_fetch_add(&c->refused, 1) % 1000 == 0)
                log_warning("event=client_refused connections=%" PRIu64 " cap=%" PRIu64
                            " refused=%" PRIu64,
                            c->open, c->cap, atomic_load(&c->refused));
        }
        c->open++;
    } else if (event && value && !strcmp(event, "DISCONNECTED") && c->open > 0) {
        fd_remove(c, atoi(value));
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

uint64_t svc_conncap_shed_count(const svc_conncap_t *c)
{
    return atomic_load(&c->shed);
}

int svc_conncap_shed(svc_conncap_t *c, uint64_t min_bytes, const char *why)
{
    int shed = 0;
    pthread_mutex_lock(&c->mu);
    uint64_t now = mono_ns();
    if (now - c->last_look_ns >= 10000000u) {
        /* A peer that is not reading is one whose unsent bytes were over
         * min_bytes at the last look too, and have not gone down since: a
         * reader with a big reply in flight drains it between two looks. */
        bool looked = c->last_look_ns != 0 && now - c->last_look_ns < 1000000000u;
        int victim = -1, queued = 0;
        for (size_t i = 0; i < c->nconns; i++) {
            conn_t *k = &c->conns[i];
            int n = 0;
            /* SIOCOUTQ: bytes the peer has not taken (TCP: not yet acked;
             * a Unix socket: not yet read). */
            if (ioctl(k->fd, SIOCOUTQ, &n) != 0)
                n = 0;
            bool stalled = looked && !k->shed && (uint64_t)n >= min_bytes &&
                           (uint64_t)k->unsent >= min_bytes && n >= k->unsent;
            k->unsent = n;
            if (stalled && n > queued) {
                queued = n;
                victim = k->fd;
            }
        }
        c->last_look_ns = now;
        if (victim >= 0) {
            shutdown(victim, SHUT_RDWR);
            for (size_t i = 0; i < c->nconns; i++)
                if (c->conns[i].fd == victim)
                    c->conns[i].shed = true;
            atomic_fetch_add(&c->shed, 1);
            log_warning("event=slow_peer_closed fd=%d unsent_bytes=%d reason=\"%s\"", victim,
                        queued, why);
            shed = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return shed;
}
