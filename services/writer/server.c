/* The server object: sockets, the loop, the tick, and the drain at stop. */
#define _GNU_SOURCE
#include "writer.h"

int on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    writer_t *w = arg;
    if (w->state_waiters)
        release_state_waiters(w, false);
    if (++w->ticks % 10 == 0)
        watch_l0(w);
    /* A full queue with no request coming in must still lose its stalled
     * client: the shed needs two looks. */
    if (svc_outq_full(w->outq))
        svc_conncap_shed(w->conncap, SHED_MIN_BYTES, "reply queue full");
    return zsys_interrupted ? -1 : 0;
}

/* curve (may be NULL): the client endpoint's CURVE, set before the bind. */
static zsock_t *bind_router(const char *endpoint, svc_curve_t *curve, char *bound, size_t cap,
                            strata_error_t *err)
{
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock) {
        strata_error_set(err, STRATA_ENOMEM, "cannot create a ROUTER socket");
        return NULL;
    }
    zsock_set_maxmsgsize(sock, (int64_t)STRATA_PROTO_MAX_MESSAGE + 64 * 1024);
    zsock_set_sndhwm(sock, 100000);
    zsock_set_rcvhwm(sock, 100000);
    zsock_set_linger(sock, 2000); /* let final replies leave at shutdown */
    svc_curve_serve(curve, sock);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        strata_error_set(err, STRATA_EIO, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    char *last = zsock_last_endpoint(sock); /* ours to free */
    snprintf(bound, cap, "%s", last ? last : endpoint);
    zstr_free(&last);
    return sock;
}

static int write_endpoints(writer_t *w, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", w->endpoint},
                             {"control", w->control_ep},
                             {"metrics", w->metrics_url},
                             {"ring", w->ring_path[0] ? w->ring_path : "off"},
                             {"raft", consensus_endpoint(w)}};
    return svc_write_endpoints(w->endpoints_file, "writer", pairs, w->cx ? 5 : 4, err);
}

static void writer_free(writer_t *w)
{
    svc_http_stop(&w->http);
    svc_conncap_destroy(&w->conncap); /* its monitor before the socket it watches */
    zsock_destroy(&w->router);
    zsock_destroy(&w->control);
    svc_outq_destroy(&w->outq); /* freed when ZeroMQ lets go of the last reply */
    svc_curve_close(&w->curve);
    zsock_destroy(&w->sync_pipe);
    zsock_destroy(&w->jobs);
    consensus_close(w);
    sessions_destroy(w);
    strata_batch_destroy(&w->batch);
    if (w->db) {
        strata_error_t err;
        if (strata_db_close(&w->db, &err) != 0)
            log_error("event=close_failed error=\"%s\"", err.msg);
    }
    /* After the engine: its close publishes the last sync. Readers see the
     * closed flag; the file goes so /dev/shm does not collect dead rings. */
    strata_ring_t *ring = atomic_exchange(&w->ring, NULL);
    if (ring)
        strata_ring_close(&ring, true);
    strata_histogram_destroy(&w->stats.write_sync_ns);
    strata_histogram_destroy(&w->stats.write_async_ns);
    strata_histogram_destroy(&w->stats.read_ns);
    strata_histogram_destroy(&w->stats.sync_ns);
    strata_histogram_destroy(&w->stats.sync_batch);
    free(w->pending.items);
    free(w->committing.items);
    free(w->staged);
    free(w->multi_ids);
    free(w->batches);
    svc_config_destroy(&w->cfg);
    pthread_mutex_destroy(&w->sync_mu);
    pthread_cond_destroy(&w->sync_cv);
    pthread_mutex_destroy(&w->stats_mu);
}

/* Stop taking requests, let the sync thread cover what is pending, answer
 * it, then wait out running jobs. */
static void drain(writer_t *w)
{
    pthread_mutex_lock(&w->sync_mu);
    w->sync_stop = true;
    pthread_cond_signal(&w->sync_cv);
    pthread_mutex_unlock(&w->sync_mu);
    while (w->pending.len) {
        pthread_mutex_lock(&w->sync_mu);
        bool failed = w->sync_failed;
        pthread_mutex_unlock(&w->sync_mu);
        if (failed && !(zsock_events(w->sync_pipe) & ZMQ_POLLIN))
            break;
        zsock_set_rcvtimeo(w->sync_pipe, 100);
        on_sync(NULL, w->sync_pipe, w);
    }
    pthread_join(w->sync_thread, NULL);
    while (zsock_events(w->sync_pipe) & ZMQ_POLLIN)
        on_sync(NULL, w->sync_pipe, w);
    pending_t *p;
    while ((p = pending_front(&w->pending))) {
        send_error(w, p->sock, &p->envelope, p->request_id, STRATA_EREADONLY,
                   w->sync_failure[0] ? w->sync_failure : "shutting down before the sync");
        pending_pop(&w->pending);
    }
    /* Nothing commits while the node stops. */
    while ((p = pending_front(&w->committing))) {
        send_error(w, p->sock, &p->envelope, p->request_id, STRATA_ENOTMASTER,
                   "shutting down before this write committed; the write may or may not "
                   "commit (outcome unknown)");
        pending_pop(&w->committing);
    }
    while (w->jobs_running > 0)
        on_job_done(NULL, w->jobs, w);
    release_state_waiters(w, true);
}

/* ---- the server object ------------------------------------------------- */

/* node/data_dir, created if it is missing (*created says so). Only the
 * writer creates it; the node's other processes refuse a missing one. */
static int open_data_dir(writer_t *w, bool *created, strata_error_t *err)
{
    const char *dir = svc_config_get(w->cfg, "node/data_dir");
    struct stat st;
    *created = stat(dir, &st) != 0 && errno == ENOENT;
    int rc = strata_io_mkdirs(strata_io_posix(), dir);
    if (rc != 0)
        return strata_error_set(err, STRATA_EIO, "node/data_dir %s: cannot create: %s", dir,
                                strerror(-rc));
    if (!realpath(dir, w->data_dir))
        return strata_error_set(err, STRATA_EIO, "node/data_dir %s: %s", dir, strerror(errno));
    return 0;
}

/* true when dir holds no database yet (no CURRENT names a MANIFEST). */
static bool holds_no_database(const char *dir)
{
    char current[PATH_MAX + 16];
    snprintf(current, sizeof current, "%s/CURRENT", dir);
    return access(current, F_OK) != 0 && errno == ENOENT;
}

int writer_new(svc_config_t *cfg, writer_t **writer_p, strata_error_t *err)
{
    *writer_p = NULL;
    writer_t *w = calloc(1, sizeof *w);
    if (!w) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&w->sync_mu, NULL);
    pthread_cond_init(&w->sync_cv, NULL);
    pthread_mutex_init(&w->stats_mu, NULL);
    w->cfg = cfg;
    w->multi_ids = calloc(MULTI_IDS, sizeof *w->multi_ids);
    w->batches = calloc(REPLY_BATCHES, sizeof *w->batches);
    if (!w->multi_ids || !w->batches) {
        free(w->multi_ids);
        free(w->batches);
        free(w);
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    int rc;
    /* The TCP ports first, every one of them: a clash must fail the start
     * before anything is created on disk. An ipc endpoint lives in the
     * data dir, so it is bound once the dir exists. */
    const char *endpoint = svc_config_get(w->cfg, "writer/endpoint");
    const char *control = svc_config_get(w->cfg, "writer/control");
    if ((rc = svc_curve_open(w->cfg, &w->curve, err)))
        goto fail;
    rc = STRATA_EIO;
    if ((!svc_endpoint_is_ipc(endpoint) &&
         !(w->router = bind_router(endpoint, w->curve, w->endpoint, sizeof w->endpoint, err))) ||
        (*control && !svc_endpoint_is_ipc(control) &&
         !(w->control = bind_router(control, NULL, w->control_ep, sizeof w->control_ep, err))))
        goto fail;
    if ((rc = consensus_listen(w, err)) ||
        (rc = svc_http_listen("writer/metrics", svc_config_get(w->cfg, "writer/metrics"), &w->http,
                              w->metrics_url, sizeof w->metrics_url, err)))
        goto fail;
    bool created_dir = false;
    if ((rc = open_data_dir(w, &created_dir, err)))
        goto fail;
    snprintf(w->endpoints_file, sizeof w->endpoints_file, "%s/writer.endpoints", w->data_dir);
    w->stats.write_sync_ns = strata_histogram_new();
    w->stats.write_async_ns = strata_histogram_new();
    w->stats.read_ns = strata_histogram_new();
    w->stats.sync_ns = strata_histogram_new();
    w->stats.sync_batch = strata_histogram_new();
    if (!w->stats.write_sync_ns || !w->stats.write_async_ns || !w->stats.read_ns ||
        !w->stats.sync_ns || !w->stats.sync_batch) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = bootstrap_install(w->data_dir, err)))
        goto fail;
    bool new_database = holds_no_database(w->data_dir);
    if ((rc = open_db(w, err)))
        goto fail;
    /* Once, so that a mistyped path, which would otherwise start an empty
     * node without a word, shows in the log. */
    if (new_database)
        log_info("event=initialised dir=%s created_dir=%s", w->data_dir,
                 created_dir ? "yes" : "no");
    if ((rc = consensus_open(w, err)))
        goto fail;

    char control_cfg[PATH_MAX + 32];
    if (!*control) {
        snprintf(control_cfg, sizeof control_cfg, "ipc://%s/writer.ctl", w->data_dir);
        control = control_cfg;
    }
    rc = STRATA_EIO;
    if ((!w->router &&
         !(w->router = bind_router(endpoint, w->curve, w->endpoint, sizeof w->endpoint, err))) ||
        (!w->control &&
         !(w->control = bind_router(control, NULL, w->control_ep, sizeof w->control_ep, err))))
        goto fail;
    uint64_t cap = 0;
    if ((rc = svc_conncap_new(w->router, w->max_clients, &w->conncap, &cap, err)))
        goto fail;
    log_info("event=client_cap connections=%" PRIu64, cap);
    if (!(w->outq = svc_outq_new(w->reply_mb << 20))) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    rc = STRATA_EIO;
    snprintf(w->sync_pipe_ep, sizeof w->sync_pipe_ep, ">inproc://writer-sync-%p", (void *)w);
    snprintf(w->jobs_ep, sizeof w->jobs_ep, ">inproc://writer-jobs-%p", (void *)w);
    char bind_ep[128];
    snprintf(bind_ep, sizeof bind_ep, "@inproc://writer-sync-%p", (void *)w);
    w->sync_pipe = zsock_new_pair(bind_ep);
    snprintf(bind_ep, sizeof bind_ep, "@inproc://writer-jobs-%p", (void *)w);
    w->jobs = zsock_new_pull(bind_ep);
    if (!w->sync_pipe || !w->jobs) {
        strata_error_set(err, STRATA_EIO, "cannot bind the internal inproc sockets");
        goto fail;
    }
    if ((rc = svc_http_serve(w->http, write_metrics, is_ready, w, err)))
        goto fail;
    if (pthread_create(&w->sync_thread, NULL, sync_main, w) != 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the sync thread");
        goto fail;
    }
    if ((rc = write_endpoints(w, err))) {
        drain(w);
        goto fail;
    }

    *writer_p = w;
    return 0;

fail:
    writer_free(w);
    free(w);
    return rc ? rc : STRATA_EIO;
}

int writer_run(writer_t *w)
{
    zloop_t *loop = zloop_new();
    zloop_reader(loop, w->router, on_request, w);
    zloop_reader(loop, w->control, on_request, w);
    zloop_reader(loop, w->sync_pipe, on_sync, w);
    zloop_reader(loop, w->jobs, on_job_done, w);
    zloop_reader(loop, svc_conncap_sock(w->conncap), svc_conncap_handle, w->conncap);
    /* SIGTERM may land on any thread (ZMQ's, the sync thread, MHD's); the
     * handler only sets zsys_interrupted, which the loop checks after each
     * poll, so a timer bounds how long a quiet loop takes to notice. */
    zloop_timer(loop, 100, 0, on_tick, w);
    consensus_attach(w, loop);
    __atomic_store_n(&w->ready, true, __ATOMIC_RELEASE);
    log_info("event=ready node=%s endpoint=%s control=%s metrics=%s dir=%s pid=%d",
             svc_config_get(w->cfg, "node/name"), w->endpoint, w->control_ep, w->metrics_url,
             w->data_dir, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);

    return 0;
}

void writer_destroy(writer_t **writer_p)
{
    writer_t *w = *writer_p;
    if (!w)
        return;
    *writer_p = NULL;
    __atomic_store_n(&w->ready, false, __ATOMIC_RELEASE);
    log_info("event=stopping reason=%s pending=%zu", w->terminating ? "terminate" : "signal",
             w->pending.len + w->committing.len);
    drain(w);
    unlink(w->endpoints_file);
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    writer_free(w);
    free(w);
    log_info("event=stopped last_seq=%" PRIu64 " durable_seq=%" PRIu64, st.last_seq,
             st.durable_seq);
}

bool writer_restarting(const writer_t *w)
{
    return w->restart;
}

const char *writer_endpoint(const writer_t *w)
{
    return w->endpoint;
}

const char *writer_control_endpoint(const writer_t *w)
{
    return w->control_ep;
}
