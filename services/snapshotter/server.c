/* The snapshotter's control endpoint (snapshot, ping), its metrics, and
 * the object's start-up and stop. Snapshot requests wait here, in the loop,
 * while the worker (work.c) takes the snapshot that answers them. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "node.h"
#include "router.h"
#include "snapshotter.h"
#include "strata/codec.h"
#include "verbs.h"

/* ---- snapshot requests ---------------------------------------------------------- */

static void send_error(snapshotter_t *s, zframe_t *identity, bool delimited, uint64_t request_id,
                       int code, const char *text)
{
    svc_router_send_error(s->router, identity, delimited, request_id, code, text);
}

/* Hands the worker the next snapshot: the queued requests ride on it. */
static void start_snapshot(snapshotter_t *s)
{
    memcpy(s->running, s->queued, s->n_queued * sizeof *s->queued);
    s->n_running = s->n_queued;
    s->n_queued = 0;
    s->busy = true;
    s->again = false;
    pthread_mutex_lock(&s->mu);
    s->go = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void answer(snapshotter_t *s, const snap_waiter_t *w, int rc, const snap_result_t *res,
                   const strata_error_t *err)
{
    if (rc) {
        send_error(s, w->identity, w->delimited, w->request_id, rc, err->msg);
        return;
    }
    char seq[32], files[32], bytes[32], ms[32], deleted[16];
    snprintf(seq, sizeof seq, "%" PRIu64, res->seq);
    snprintf(files, sizeof files, "%" PRIu64, res->files);
    snprintf(bytes, sizeof bytes, "%" PRIu64, res->bytes);
    snprintf(ms, sizeof ms, "%" PRIu64, res->ms);
    snprintf(deleted, sizeof deleted, "%" PRIu32, res->wal_deleted);
    strata_pair_t pairs[] = {{"name", res->name},
                             {"path", res->path},
                             {"seq", seq},
                             {"files", files},
                             {"bytes", bytes},
                             {"existed", res->existed ? "true" : "false"},
                             {"wal_segments_deleted", deleted},
                             {"ms", ms}};
    strata_reply_t rep = {.request_id = w->request_id,
                          .op = STRATA_OP_CONTROL,
                          .pairs = pairs,
                          .n_pairs = sizeof pairs / sizeof pairs[0]};
    svc_router_send(s->router, w->identity, w->delimited, &rep);
}

/* The worker finished: every request it carried gets the result, and the
 * next snapshot starts if any came meanwhile. */
static int on_done(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    snapshotter_t *s = arg;
    char *msg = zstr_recv(sock);
    zstr_free(&msg);
    pthread_mutex_lock(&s->mu);
    bool done = s->done;
    int rc = s->done_rc;
    snap_result_t res = s->done_res;
    strata_error_t err = s->done_err;
    s->done = false;
    pthread_mutex_unlock(&s->mu);
    if (!done)
        return 0;
    for (size_t i = 0; i < s->n_running; i++) {
        answer(s, &s->running[i], rc, &res, &err);
        zframe_destroy(&s->running[i].identity);
    }
    s->n_running = 0;
    s->busy = false;
    if (s->n_queued || s->again)
        start_snapshot(s);
    return 0;
}

/* One control request, as the verb handlers see it. */
typedef struct {
    snapshotter_t *s;
    zframe_t *identity;
    bool delimited;
    const strata_request_t *req;
} call_t;

static void verb_snapshot(void *arg)
{
    call_t *c = arg;
    snapshotter_t *s = c->s;
    if (s->n_queued == MAX_WAITERS) {
        char why[96];
        snprintf(why, sizeof why, "snapshot: %d requests wait already, the cap; retry later",
                 MAX_WAITERS);
        return send_error(s, c->identity, c->delimited, c->req->request_id, STRATA_EBUSY, why);
    }
    zframe_t *identity = zframe_dup(c->identity);
    if (!identity)
        return send_error(s, c->identity, c->delimited, c->req->request_id, STRATA_ENOMEM,
                          "out of memory");
    s->queued[s->n_queued++] = (snap_waiter_t){
        .identity = identity, .delimited = c->delimited, .request_id = c->req->request_id};
    /* A request during a snapshot waits for the next one: the running one
     * may have checkpointed before the writes its caller expects in it. */
    if (!s->busy)
        start_snapshot(s);
}

static void verb_ping(void *arg)
{
    call_t *c = arg;
    char running[8];
    snprintf(running, sizeof running, "%s", c->s->busy ? "true" : "false");
    strata_pair_t pairs[] = {{"pong", "1"},
                             {"version", SNAPSHOTTER_VERSION},
                             {"dir", c->s->snap_dir},
                             {"snapshot_running", running}};
    strata_reply_t rep = {
        .request_id = c->req->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 4};
    svc_router_send(c->s->router, c->identity, c->delimited, &rep);
}

static const svc_verb_t verbs[] = {
    {"snapshot", 0, 0, false, verb_snapshot,
     "take a snapshot now, prune to keep, truncate the WAL below it"},
    {"ping", 0, 0, false, verb_ping, "liveness, version and the snapshots directory"},
};

static void handle_control(void *arg, zframe_t *identity, bool delimited,
                           const strata_request_t *req)
{
    call_t c = {.s = arg, .identity = identity, .delimited = delimited, .req = req};
    char why[512];
    if (!svc_verbs_dispatch(verbs, sizeof verbs / sizeof verbs[0], req, true, &c, why, sizeof why))
        send_error(c.s, identity, delimited, req->request_id, STRATA_EINVAL, why);
}

static int on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    return svc_router_serve_control(sock, handle_control, arg,
                                    "request: strata-snapshotter serves control (snapshot, ping)");
}

/* The period: a snapshot now, or right after the running one. */
static int on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    snapshotter_t *s = arg;
    if (s->busy)
        s->again = true;
    else
        start_snapshot(s);
    return 0;
}

/* ---- metrics and start-up ------------------------------------------------------- */

/* Everything /metrics shows, read at one moment. */
typedef struct {
    uint64_t taken, failed, last_seq, last_ms, kept, wal_deleted;
} figures_t;

#define U(field)        offsetof(figures_t, field), false, 0, 0
#define S(field, scale) offsetof(figures_t, field), false, scale, 0
static const svc_metric_t rows[] = {
    {NULL, "snapshots_total", "snapshots taken", SVC_COUNTER, U(taken)},
    {NULL, "snapshot_failures_total", "snapshots that failed", SVC_COUNTER, U(failed)},
    {NULL, "snapshot_last_seq", "seq of the newest snapshot", SVC_GAUGE, U(last_seq)},
    {NULL, "snapshot_last_duration_seconds", "how long the newest snapshot took", SVC_GAUGE,
     S(last_ms, 1e-3)},
    {NULL, "snapshots_kept", "sealed snapshots on disk", SVC_GAUGE, U(kept)},
    {NULL, "snapshot_wal_segments_deleted_total", "WAL segments the writer deleted after snapshots",
     SVC_COUNTER, U(wal_deleted)},
};

static void write_metrics(void *arg, FILE *out)
{
    snapshotter_t *s = arg;
    figures_t f = {.taken = atomic_load(&s->taken),
                   .failed = atomic_load(&s->failed),
                   .last_seq = atomic_load(&s->last_seq),
                   .last_ms = atomic_load(&s->last_ms),
                   .kept = atomic_load(&s->kept),
                   .wal_deleted = atomic_load(&s->wal_deleted)};
    svc_metrics_prom(rows, sizeof rows / sizeof rows[0], &f, out);
}

/* Started, and the writer it snapshots answers (node.h's rule). */
static bool is_ready(void *arg)
{
    snapshotter_t *s = arg;
    return atomic_load(&s->ready) && svc_writer_answers(s->writer_file);
}

static int write_endpoints(snapshotter_t *s, strata_error_t *err)
{
    strata_pair_t pairs[] = {
        {"endpoint", s->endpoint}, {"dir", s->snap_dir}, {"metrics", s->metrics_url}};
    return svc_write_endpoints(s->endpoints_file, "snapshotter", pairs, 3, err);
}

static int load(snapshotter_t *s, strata_error_t *err)
{
    int rc;
    if ((rc = svc_config_u64(s->cfg, "snapshotter/interval_s", &s->interval_s, err)) ||
        (rc = svc_config_u64(s->cfg, "snapshotter/keep", &s->keep, err)) ||
        (rc = svc_config_bool(s->cfg, "snapshotter/truncate_wal", &s->truncate_wal, err)) ||
        (rc = svc_http_check("snapshotter/metrics", svc_config_get(s->cfg, "snapshotter/metrics"),
                             err)))
        return rc;
    if (s->interval_s > 31 * 86400 || s->keep < 1 || s->keep > 1000)
        return strata_error_set(err, STRATA_EINVAL,
                                "snapshotter config out of range: interval_s 0..2678400 (0: only "
                                "on request), keep 1..1000");
    return 0;
}

int snapshotter_check_config(svc_config_t *cfg, strata_error_t *err)
{
    snapshotter_t probe = {.cfg = cfg};
    return load(&probe, err);
}

int snapshotter_new(svc_config_t *cfg, snapshotter_t **snapshotter_p, strata_error_t *err)
{
    *snapshotter_p = NULL;
    snapshotter_t *s = calloc(1, sizeof *s);
    if (!s) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = load(s, err);
    if (rc)
        goto fail;
    const char *dir = svc_config_get(s->cfg, "node/data_dir");
    if (!realpath(dir, s->data_dir)) {
        rc = strata_error_set(err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)", dir,
                              strerror(errno));
        goto fail;
    }
    const char *snap_dir = svc_config_get(s->cfg, "snapshotter/dir");
    if (*snap_dir)
        snprintf(s->snap_dir, sizeof s->snap_dir, "%s", snap_dir);
    else
        snprintf(s->snap_dir, sizeof s->snap_dir, "%.4000s/snapshots", s->data_dir);
    /* The TCP ports before anything on disk: a clash fails the start
     * without leaving a snapshots dir behind. An ipc control socket (the
     * default) lives in the data dir, so it comes after. */
    const char *control = svc_config_get(s->cfg, "snapshotter/endpoint");
    bool control_tcp = *control && !svc_endpoint_is_ipc(control);
    if ((control_tcp && (rc = svc_control_bind(control, s->data_dir, "snapshotter", &s->router,
                                               s->endpoint, sizeof s->endpoint, err))) ||
        (rc = svc_http_listen("snapshotter/metrics", svc_config_get(s->cfg, "snapshotter/metrics"),
                              &s->http, s->metrics_url, sizeof s->metrics_url, err)))
        goto fail;
    if (mkdir(s->snap_dir, 0700) != 0 && errno != EEXIST) {
        rc = strata_error_set(err, STRATA_EIO, "mkdir %s: %s", s->snap_dir, strerror(errno));
        goto fail;
    }
    snprintf(s->writer_file, sizeof s->writer_file, "%.4000s/writer.endpoints", s->data_dir);
    snprintf(s->endpoints_file, sizeof s->endpoints_file, "%.4000s/snapshotter.endpoints",
             s->data_dir);
    if (!control_tcp && (rc = svc_control_bind(control, s->data_dir, "snapshotter", &s->router,
                                               s->endpoint, sizeof s->endpoint, err)))
        goto fail;
    /* The worker's wake-up for the loop: a pipe of two inproc PAIRs, named
     * by this object's address so two objects in a process never meet. */
    char pipe_ep[64];
    snprintf(pipe_ep, sizeof pipe_ep, "@inproc://snapshotter-%p", (void *)s);
    s->woken = zsock_new_pair(pipe_ep);
    pipe_ep[0] = '>';
    s->wake_loop = s->woken ? zsock_new_pair(pipe_ep) : NULL;
    if (!s->woken || !s->wake_loop) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot create the worker's pipe");
        goto fail;
    }
    if ((rc = svc_http_serve(s->http, write_metrics, is_ready, s, err)))
        goto fail;
    snapshotter_remove_partials(s);
    snapshotter_prune(s);
    if ((rc = write_endpoints(s, err)))
        goto fail;
    if (pthread_create(&s->worker, NULL, snapshotter_worker, s) != 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the worker thread");
        goto fail;
    }
    s->worker_running = true;
    *snapshotter_p = s;
    return 0;
fail:
    snapshotter_destroy(&s);
    return rc;
}

int snapshotter_run(snapshotter_t *s)
{
    zloop_t *loop = zloop_new();
    if (!loop)
        return STRATA_ENOMEM;
    zloop_reader(loop, s->router, on_request, s);
    zloop_reader(loop, s->woken, on_done, s);
    zloop_timer(loop, 100, 0, svc_interrupt_tick, &s->stop_requested);
    if (s->interval_s > 0)
        zloop_timer(loop, s->interval_s * 1000, 0, on_timer, s);
    atomic_store(&s->ready, true);
    log_info("event=ready node=%s endpoint=%s dir=%s interval_s=%" PRIu64 " keep=%" PRIu64
             " metrics=%s pid=%d",
             svc_config_get(s->cfg, "node/name"), s->endpoint, s->snap_dir, s->interval_s, s->keep,
             s->metrics_url, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
    s->clean_stop = true;
    return 0;
}

void snapshotter_stop(snapshotter_t *s)
{
    atomic_store(&s->stop_requested, true);
}

const char *snapshotter_endpoint(const snapshotter_t *s)
{
    return s->endpoint;
}

void snapshotter_destroy(snapshotter_t **snapshotter_p)
{
    snapshotter_t *s = *snapshotter_p;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_running)
        pthread_join(s->worker, NULL);
    /* Whoever still waits hears why, rather than nothing. */
    for (size_t i = 0; i < s->n_running + s->n_queued; i++) {
        snap_waiter_t *w = i < s->n_running ? &s->running[i] : &s->queued[i - s->n_running];
        if (s->router)
            send_error(s, w->identity, w->delimited, w->request_id, STRATA_ECLOSED,
                       "snapshot: the snapshotter is stopping");
        zframe_destroy(&w->identity);
    }
    if (s->clean_stop) {
        unlink(s->endpoints_file);
        log_info("event=stopped");
    }
    svc_http_stop(&s->http);
    zsock_destroy(&s->wake_loop);
    zsock_destroy(&s->woken);
    zsock_destroy(&s->router);
    svc_config_destroy(&s->cfg);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    *snapshotter_p = NULL;
}
