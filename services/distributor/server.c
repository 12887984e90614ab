/* The server object: configuration, sockets, threads, and the stop. */
#define _GNU_SOURCE
#include "dist.h"

/* ---- topic filters ------------------------------------------------------- */

/* proto/DISTRIBUTION.md: prefixes; none means every topic not beginning with '$';
 * a '$' topic only for a prefix that itself starts with '$'. */
bool topic_matches(const uint8_t *topic, size_t len, char *const *prefixes, size_t n)
{
    bool sys = len > 0 && topic[0] == '$';
    if (n == 0)
        return !sys;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(prefixes[i]);
        if (sys && (pl == 0 || prefixes[i][0] != '$'))
            continue;
        if (pl <= len && !memcmp(topic, prefixes[i], pl))
            return true;
        if (len == 0 && !strcmp(prefixes[i], NO_TOPIC))
            return true;
    }
    return false;
}

char **strv_dup(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            while (i > 0)
                free(out[--i]);
            free(out);
            return NULL;
        }
    return out;
}

void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static zsock_t *bind_sock(int type, const char *endpoint, char *bound, size_t cap, uint64_t hwm,
                          strata_error_t *err)
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
    return svc_write_endpoints(d->endpoints_file, "distributor", pairs, 5, err);
}

void topic_state_free(void **item)
{
    topic_state_t *ts = *item;
    if (ts) {
        free(ts->buf);
        free(ts);
    }
    *item = NULL;
}

static void dist_free(dist_t *d)
{
    svc_http_stop(&d->http);
    zsock_destroy(&d->history);
    zsock_destroy(&d->notify);
    zsock_destroy(&d->notify_in);
    zsock_destroy(&d->live.pub);
    zsock_destroy(&d->delayed.pub);
    zhashx_destroy(&d->live.topics);
    zhashx_destroy(&d->delayed.topics);
    zhashx_destroy(&d->subs);
    for (int i = 0; i < CURSOR_CACHE; i++)
        strata_wal_cursor_close(&d->cursors[i].cursor);
    strata_wal_cursor_close(&d->pump_cursor);
    strata_ring_reader_close(&d->ring);
    strata_client_destroy(&d->writer);
    free(d->scratch);
    svc_config_destroy(&d->cfg);
    pthread_mutex_destroy(&d->stats_mu);
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
        {"distributor/ack_timeout_ms", &d->ack_timeout_ms, 10, 3600000},
        {"distributor/ack_flush_ms", &d->ack_flush_ms, 1, 60000},
        {"distributor/session_timeout_ms", &d->session_timeout_ms, 100, 86400000},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
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

/* ---- the server object ------------------------------------------------- */

int dist_config_check(svc_config_t *cfg, strata_error_t *err)
{
    dist_t probe = {.cfg = cfg};
    return load_numbers(&probe, err);
}

int dist_new(svc_config_t *cfg, dist_t **dist_p, strata_error_t *err)
{
    *dist_p = NULL;
    dist_t *d = calloc(1, sizeof *d);
    if (!d) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&d->stats_mu, NULL);
    d->cfg = cfg;
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

    rc = STRATA_EIO;
    if (!(d->live.pub = bind_sock(ZMQ_XPUB, svc_config_get(d->cfg, "distributor/live"), d->live_ep,
                                  sizeof d->live_ep, d->sndhwm, err)) ||
        !(d->delayed.pub = bind_sock(ZMQ_XPUB, svc_config_get(d->cfg, "distributor/delayed"),
                                     d->delayed_ep, sizeof d->delayed_ep, d->sndhwm, err)) ||
        !(d->history = bind_sock(ZMQ_ROUTER, svc_config_get(d->cfg, "distributor/history"),
                                 d->history_ep, sizeof d->history_ep, 100000, err)))
        goto fail;
    zsock_set_router_mandatory(d->history, 0);
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://distributor-notify-%p", (void *)d);
    d->notify_in = zsock_new_pull(ep);
    if (!d->notify_in || !(d->notify = zsock_new_push(ep))) {
        zsock_destroy(&d->notify_in);
        rc = strata_error_set(err, STRATA_EIO, "cannot create the inproc notify pair");
        goto fail;
    }
    uint16_t http_port = 0;
    const char *metrics = svc_config_get(d->cfg, "metrics/endpoint");
    if ((rc = svc_http_start(metrics, write_metrics, is_ready, d, &d->http, &http_port, err))) {
        zsock_destroy(&d->notify_in);
        goto fail;
    }
    if (d->http) {
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(metrics, ':') - metrics), metrics);
        snprintf(d->metrics_url, sizeof d->metrics_url, "http://%s:%u/metrics", host, http_port);
    } else {
        snprintf(d->metrics_url, sizeof d->metrics_url, "off");
    }
    /* The pump owns the PUB sockets and the notify end from here on. */
    d->next_flush_ns = now_ns() + d->delay_ms * 1000000ull;
    if (pthread_create(&d->pump, NULL, pump_main, d) != 0) {
        zsock_destroy(&d->notify_in);
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the pump thread");
        goto fail;
    }
    if ((rc = write_endpoints(d, err))) {
        atomic_store(&d->stop, true);
        pthread_join(d->pump, NULL);
        zsock_destroy(&d->notify_in);
        goto fail;
    }
    *dist_p = d;
    return 0;

fail:
    dist_free(d);
    free(d);
    return rc ? rc : STRATA_EIO;
}

void dist_run(dist_t *d)
{
    zloop_t *loop = zloop_new();
    zloop_reader(loop, d->history, on_history, d);
    zloop_reader(loop, d->notify_in, on_notify, d);
    zloop_timer(loop, 10, 0, on_sessions_timer, d);
    zloop_timer(loop, d->ack_flush_ms, 0, on_flush_timer, d);
    log_info("event=ready node=%s live=%s delayed=%s history=%s metrics=%s dir=%s pid=%d",
             svc_config_get(d->cfg, "node/name"), d->live_ep, d->delayed_ep, d->history_ep,
             d->metrics_url, d->data_dir, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
}

void dist_destroy(dist_t **dist_p)
{
    dist_t *d = *dist_p;
    if (!d)
        return;
    *dist_p = NULL;
    log_info("event=stopping covered=%" PRIu64, atomic_load(&d->covered));
    offsets_flush(d); /* acks received are stored before we go */
    atomic_store(&d->stop, true);
    pthread_join(d->pump, NULL);
    zsock_destroy(&d->notify_in);
    unlink(d->endpoints_file);
    dist_free(d);
    free(d);
    log_info("event=stopped");
}
