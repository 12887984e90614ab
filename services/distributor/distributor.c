/* strata-distributor as an object: dist_new binds its endpoints and
 * starts the pump thread, dist_run serves the history endpoint on one
 * zloop, dist_destroy stops both. main.c wraps it; a test can run it
 * in-process through dist_actor. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distributor.h"
#include "log.h"
#include "node.h"
#include "router.h"

/* curve (NULL when off): made a CURVE server before the bind, so no
 * connection is ever accepted without the handshake. */
static zsock_t *bind_sock(int type, const char *endpoint, svc_curve_t *curve, char *bound,
                          size_t cap, uint64_t hwm, strata_error_t *err)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        strata_error_set(err, STRATA_ENOMEM, "cannot create a socket for %s", endpoint);
        return NULL;
    }
    zsock_set_maxmsgsize(sock, (int64_t)STRATA_PROTO_MAX_MESSAGE + 64 * 1024);
    zsock_set_sndhwm(sock, (int)hwm);
    zsock_set_rcvhwm(sock, 100000);
    zsock_set_linger(sock, 500);
    if (type == ZMQ_XPUB)
        zsock_set_xpub_verbose(sock, 1); /* every subscriber's $hb: heartbeat it at once */
    svc_curve_serve(curve, sock);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        strata_error_set(err, STRATA_EIO, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    char *last = zsock_last_endpoint(sock);
    snprintf(bound, cap, "%s", last ? last : endpoint);
    zstr_free(&last);
    return sock;
}

static int write_endpoints(dist_t *d, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", d->history_ep}, /* where requests go */
                             {"live", d->live_ep},
                             {"delayed", d->delayed_ep},
                             {"history", d->history_ep},
                             {"metrics", d->metrics_url}};
    int rc = svc_write_endpoints(d->endpoints_file, "distributor", pairs, 5, err);
    d->endpoints_written = rc == 0;
    return rc;
}

static void dist_free(dist_t *d)
{
    if (!d)
        return;
    svc_http_stop(&d->http);
    zsock_destroy(&d->history);
    zsock_destroy(&d->notify);
    svc_conncap_destroy(&d->live.conncap); /* each monitor before the socket it watches */
    svc_conncap_destroy(&d->delayed.conncap);
    zsock_destroy(&d->live.pub);
    zsock_destroy(&d->delayed.pub);
    svc_outq_destroy(&d->live.outq); /* freed once ZeroMQ lets go of their last message */
    svc_outq_destroy(&d->delayed.outq);
    svc_curve_close(&d->curve);
    zhashx_destroy(&d->live.topics);
    zhashx_destroy(&d->delayed.topics);
    zhashx_destroy(&d->subs);
    for (int i = 0; i < CURSOR_CACHE; i++)
        strata_wal_cursor_close(&d->cursors[i].cursor);
    strata_tail_close(&d->tail);
    strata_client_destroy(&d->writer);
    svc_config_destroy(&d->cfg);
    pthread_mutex_destroy(&d->stats_mu);
    free(d);
}

static int load_numbers(dist_t *d, strata_error_t *err)
{
    struct {
        const char *key;
        uint64_t *out, min, max;
    } keys[] = {
        {"distributor/delay_ms", &d->delay_ms, 1, 60000},
        {"distributor/heartbeat_ms", &d->heartbeat_ms, 10, 60000},
        {"distributor/sndhwm", &d->sndhwm, 1, 100000000},
        {"distributor/window", &d->window, 1, 1000000},
        {"distributor/max_window", &d->max_window, 1, 1000000},
        {"distributor/max_unacked_mb", &d->max_unacked_mb, 1, 65536},
        {"distributor/max_sessions", &d->max_sessions, 1, 1000000},
        {"distributor/session_expire_s", &d->session_expire_s, 1, 3153600000ull},
        {"distributor/ack_timeout_ms", &d->ack_timeout_ms, 10, 3600000},
        {"distributor/ack_flush_ms", &d->ack_flush_ms, 1, 60000},
        {"distributor/session_timeout_ms", &d->session_timeout_ms, 100, 86400000},
        {"distributor/pub_queue_mb", &d->pub_queue_mb, 1, 65536},
        {"distributor/max_subscribers", &d->max_subscribers, 1, 1000000},
    };
    d->pub_queue_mb = 64;
    d->max_subscribers = 10000;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (*keys[i].out && !svc_config_get(d->cfg, keys[i].key))
            continue; /* set above: an embedding config without it keeps that */
        int rc = svc_config_u64(d->cfg, keys[i].key, keys[i].out, err);
        if (rc)
            return rc;
        if (*keys[i].out < keys[i].min || *keys[i].out > keys[i].max)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: %" PRIu64 " out of range %" PRIu64 "..%" PRIu64,
                                    keys[i].key, *keys[i].out, keys[i].min, keys[i].max);
    }
    return 0;
}

int dist_check_config(svc_config_t *cfg, strata_error_t *err)
{
    dist_t *probe = calloc(1, sizeof *probe);
    if (!probe)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    probe->cfg = cfg;
    int rc = load_numbers(probe, err);
    if (!rc)
        rc = svc_http_check("distributor/metrics", svc_config_get(cfg, "distributor/metrics"), err);
    free(probe);
    return rc;
}

int dist_new(svc_config_t **cfg_p, dist_t **out, strata_error_t *err)
{
    *out = NULL;
    dist_t *d = calloc(1, sizeof *d);
    if (!d) {
        svc_config_destroy(cfg_p);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&d->stats_mu, NULL);
    d->cfg = *cfg_p;
    *cfg_p = NULL;
    int rc = load_numbers(d, err);
    if (rc)
        goto fail;
    const char *dir = svc_config_get(d->cfg, "node/data_dir");
    if (!realpath(dir, d->data_dir)) {
        rc = strata_error_set(err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)", dir,
                              strerror(errno));
        goto fail;
    }
    snprintf(d->wal_dir, sizeof d->wal_dir, "%.4000s/wal", d->data_dir);
    snprintf(d->writer_file, sizeof d->writer_file, "%.4000s/writer.endpoints", d->data_dir);
    snprintf(d->endpoints_file, sizeof d->endpoints_file, "%.4000s/distributor.endpoints",
             d->data_dir);
    d->instance = ((uint64_t)randof(0x7fffffff) << 32) ^ (uint64_t)getpid() ^ wall_ns();
    d->live.tier = 0;
    d->delayed.tier = 1;
    d->live.topics = zhashx_new();
    d->delayed.topics = zhashx_new();
    d->subs = zhashx_new();
    if (!d->live.topics || !d->delayed.topics || !d->subs) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    zhashx_set_destructor(d->live.topics, topic_state_free);
    zhashx_set_destructor(d->delayed.topics, topic_state_free);
    zhashx_set_destructor(d->subs, sub_destroy);

    if ((rc = svc_curve_open(d->cfg, &d->curve, err)))
        goto fail;
    /* The ports first, then any stream configured as ipc (a file there):
     * a port clash must fail the start with nothing created on disk. */
    if ((rc = svc_http_listen("distributor/metrics", svc_config_get(d->cfg, "distributor/metrics"),
                              &d->http, d->metrics_url, sizeof d->metrics_url, err)))
        goto fail;
    struct {
        int type;
        const char *key;
        zsock_t **sock;
        char *bound;
        size_t cap;
        uint64_t hwm;
    } socks[] = {
        {ZMQ_XPUB, "distributor/live", &d->live.pub, d->live_ep, sizeof d->live_ep, d->sndhwm},
        {ZMQ_XPUB, "distributor/delayed", &d->delayed.pub, d->delayed_ep, sizeof d->delayed_ep,
         d->sndhwm},
        {ZMQ_ROUTER, "distributor/history", &d->history, d->history_ep, sizeof d->history_ep,
         100000}};
    rc = STRATA_EIO;
    for (int ipc = 0; ipc < 2; ipc++)
        for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
            const char *endpoint = svc_config_get(d->cfg, socks[i].key);
            if (svc_endpoint_is_ipc(endpoint) == (ipc == 1) &&
                !(*socks[i].sock = bind_sock(socks[i].type, endpoint, d->curve, socks[i].bound,
                                             socks[i].cap, socks[i].hwm, err)))
                goto fail;
        }
    zsock_set_router_mandatory(d->history, 0);
    tier_t *tiers[] = {&d->live, &d->delayed};
    for (int i = 0; i < 2; i++) {
        uint64_t cap = 0;
        if (!(tiers[i]->outq = svc_outq_new(d->pub_queue_mb << 20))) {
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            goto fail;
        }
        if ((rc =
                 svc_conncap_new(tiers[i]->pub, d->max_subscribers, &tiers[i]->conncap, &cap, err)))
            goto fail;
        if (i == 0)
            log_info("event=subscriber_cap connections=%" PRIu64 " per_stream", cap);
    }
    rc = STRATA_EIO;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://distributor-notify-%p", (void *)d);
    d->notify_in = zsock_new_pull(ep);
    if (!d->notify_in || !(d->notify = zsock_new_push(ep))) {
        rc = strata_error_set(err, STRATA_EIO, "cannot create the inproc notify pair");
        goto fail;
    }
    if ((rc = svc_http_serve(d->http, write_metrics, is_ready, d, err)))
        goto fail;
    if ((rc = pump_tail_open(d, err)))
        goto fail;
    /* The pump owns the PUB sockets, the tail and the notify end from here on. */
    d->next_flush_ns = now_ns() + d->delay_ms * 1000000ull;
    if (pthread_create(&d->pump, NULL, pump_main, d) != 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the pump thread");
        goto fail;
    }
    d->pump_running = true;
    if ((rc = write_endpoints(d, err)))
        goto fail;
    *out = d;
    return 0;

fail:
    dist_destroy(&d);
    return rc;
}

static int on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    (void)arg;
    zmsg_t *msg = zmsg_recv(pipe);
    zmsg_destroy(&msg);
    return -1; /* $TERM, or anything: stop serving */
}

int dist_run(dist_t *d, zsock_t *pipe)
{
    zloop_t *loop = zloop_new();
    if (!loop)
        return STRATA_ENOMEM;
    zloop_reader(loop, d->history, on_history, d);
    zloop_reader(loop, d->notify_in, on_notify, d);
    zloop_reader(loop, svc_conncap_sock(d->live.conncap), svc_conncap_handle, d->live.conncap);
    zloop_reader(loop, svc_conncap_sock(d->delayed.conncap), svc_conncap_handle,
                 d->delayed.conncap);
    if (pipe)
        zloop_reader(loop, pipe, on_pipe, d);
    zloop_timer(loop, 10, 0, on_sessions_timer, d);
    zloop_timer(loop, d->ack_flush_ms, 0, on_flush_timer, d);
    log_info("event=ready node=%s live=%s delayed=%s history=%s metrics=%s curve=%s dir=%s pid=%d",
             svc_config_get(d->cfg, "node/name"), d->live_ep, d->delayed_ep, d->history_ep,
             d->metrics_url, d->curve ? "on" : "off", d->data_dir, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
    log_info("event=stopping covered=%" PRIu64, atomic_load(&d->covered));
    offsets_flush(d); /* acks received are stored before we go */
    return 0;
}

void dist_destroy(dist_t **self_p)
{
    dist_t *d = *self_p;
    if (!d)
        return;
    if (d->pump_running) {
        atomic_store(&d->stop, true);
        pthread_join(d->pump, NULL);
        d->pump_running = false;
    }
    zsock_destroy(&d->notify_in);
    if (d->endpoints_written)
        unlink(d->endpoints_file);
    dist_free(d);
    *self_p = NULL;
}

void dist_actor(zsock_t *pipe, void *args)
{
    svc_config_t *cfg = args;
    dist_t *d = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = dist_new(&cfg, &d, &err);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        zsock_signal(pipe, (byte)(-rc));
        return;
    }
    zsock_signal(pipe, 0);
    dist_run(d, pipe);
    dist_destroy(&d);
}

const char *dist_live_endpoint(const dist_t *self)
{
    return self->live_ep;
}

const char *dist_delayed_endpoint(const dist_t *self)
{
    return self->delayed_ep;
}

const char *dist_history_endpoint(const dist_t *self)
{
    return self->history_ep;
}
