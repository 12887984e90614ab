/* The compactor's control endpoint (compact, progress, ping), its metrics,
 * and the object's start-up and stop. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compactor.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "router.h"
#include "strata/codec.h"
#include "verbs.h"

/* ---- requests ------------------------------------------------------------------ */

static void send_error(compactor_t *s, zframe_t *identity, bool delimited, uint64_t request_id,
                       int code, const char *text)
{
    svc_router_send_error(s->router, identity, delimited, request_id, code, text);
}

/* compact LEVEL RANGE: LEVEL "-" or 0..5, RANGE "-" or "lo..hi" (either
 * side may be empty). */
static int parse_manual(const strata_request_t *req, manual_t *m, char *why, size_t cap)
{
    memset(m, 0, sizeof *m);
    m->level = -1;
    if (req->n_args != 2) {
        snprintf(why, cap, "compact takes LEVEL (- or 0..%d) and RANGE (- or lo..hi)",
                 STRATA_COMPACTION_LEVELS - 2);
        return -1;
    }
    const char *level = req->args[0], *range = req->args[1];
    if (strcmp(level, "-")) {
        char *end = NULL;
        long l = strtol(level, &end, 10);
        if (end == level || *end || l < 0 || l > STRATA_COMPACTION_LEVELS - 2) {
            snprintf(why, cap, "compact: level '%s' is not 0..%d", level,
                     STRATA_COMPACTION_LEVELS - 2);
            return -1;
        }
        m->level = (int)l;
    }
    if (strcmp(range, "-")) {
        const char *dots = strstr(range, "..");
        size_t lo_len = dots ? (size_t)(dots - range) : 0, hi_len = dots ? strlen(dots + 2) : 0;
        if (!dots || lo_len >= sizeof m->lo || hi_len >= sizeof m->hi) {
            snprintf(why, cap, "compact: range '%s' is not lo..hi (each under %zu bytes)", range,
                     sizeof m->lo);
            return -1;
        }
        m->has_lo = lo_len > 0;
        m->has_hi = hi_len > 0;
        memcpy(m->lo, range, lo_len);
        memcpy(m->hi, dots + 2, hi_len);
        if (m->has_lo && m->has_hi && strcmp(m->lo, m->hi) > 0) {
            snprintf(why, cap, "compact: range '%s' has lo after hi", range);
            return -1;
        }
    }
    return 0;
}

static void reply_progress(compactor_t *s, zframe_t *identity, bool delimited, uint64_t request_id)
{
    char v[16][40];
    pthread_mutex_lock(&s->mu);
    uint64_t merged = s->current ? strata_compaction_job_progress(s->current) : 0;
    snprintf(v[0], sizeof v[0], "%d", s->current_level);
    snprintf(v[1], sizeof v[1], "%" PRIu64, s->current_entries);
    snprintf(v[2], sizeof v[2], "%" PRIu64, merged);
    snprintf(v[3], sizeof v[3], "%" PRIu64, s->current_bytes);
    snprintf(v[4], sizeof v[4], "%" PRIu64, atomic_load(&s->written_now));
    snprintf(v[5], sizeof v[5], "%" PRIu64, s->manual_id);
    snprintf(v[6], sizeof v[6], "%" PRIu64, s->manual_done_bytes);
    snprintf(v[7], sizeof v[7], "%" PRIu64, s->manual_total_bytes);
    snprintf(v[8], sizeof v[8], "%" PRIu64, s->manual_compactions);
    snprintf(v[9], sizeof v[9], "%" PRIu64, atomic_load(&s->compactions));
    snprintf(v[10], sizeof v[10], "%" PRIu64, s->has_pending ? s->pending.id : 0);
    strata_pair_t pairs[] = {{"state", s->state},
                             {"level", v[0]},
                             {"input_entries", v[1]},
                             {"merged_entries", v[2]},
                             {"input_bytes", v[3]},
                             {"written_bytes", v[4]},
                             {"manual_id", v[5]},
                             {"manual_state", s->manual_state},
                             {"manual_step", s->manual_step},
                             {"manual_done_bytes", v[6]},
                             {"manual_total_bytes", v[7]},
                             {"manual_compactions", v[8]},
                             {"manual_error", s->manual_error},
                             {"manual_queued_id", v[10]},
                             {"compactions", v[9]}};
    strata_reply_t rep = {.request_id = request_id,
                          .op = STRATA_OP_CONTROL,
                          .pairs = pairs,
                          .n_pairs = sizeof pairs / sizeof pairs[0]};
    svc_router_send(s->router, identity, delimited, &rep);
    pthread_mutex_unlock(&s->mu);
}

/* One control request, as the verb handlers see it. */
typedef struct {
    compactor_t *s;
    zframe_t *identity;
    bool delimited;
    const strata_request_t *req;
} call_t;

static void verb_compact(void *arg)
{
    call_t *c = arg;
    compactor_t *s = c->s;
    const strata_request_t *req = c->req;
    manual_t m;
    char why[512];
    if (parse_manual(req, &m, why, sizeof why) != 0)
        return send_error(s, c->identity, c->delimited, req->request_id, STRATA_EINVAL, why);
    pthread_mutex_lock(&s->mu);
    /* A second request before the first starts replaces it. */
    m.id = ++s->next_manual_id;
    s->pending = m;
    s->has_pending = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, m.id);
    strata_pair_t pairs[] = {{"id", id}, {"queued", "true"}};
    strata_reply_t rep = {
        .request_id = req->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 2};
    log_info("event=manual_compaction_queued id=%s level=%s range=%s", id, req->args[0],
             req->args[1]);
    svc_router_send(s->router, c->identity, c->delimited, &rep);
}

static void verb_progress(void *arg)
{
    call_t *c = arg;
    reply_progress(c->s, c->identity, c->delimited, c->req->request_id);
}

static void verb_ping(void *arg)
{
    call_t *c = arg;
    strata_pair_t pairs[] = {{"pong", "1"}, {"version", COMPACTOR_VERSION}};
    strata_reply_t rep = {
        .request_id = c->req->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 2};
    svc_router_send(c->s->router, c->identity, c->delimited, &rep);
}

static const svc_verb_t verbs[] = {
    {"compact", 2, 2, false, verb_compact,
     "LEVEL RANGE: queue a manual compaction of LEVEL (- for every level) over RANGE (- or "
     "lo..hi)"},
    {"progress", 0, 0, false, verb_progress, "the running and the last manual compaction"},
    {"ping", 0, 0, false, verb_ping, "liveness and version"},
};

static void handle_control(void *arg, zframe_t *identity, bool delimited,
                           const strata_request_t *req)
{
    call_t c = {.s = arg, .identity = identity, .delimited = delimited, .req = req};
    char why[512];
    /* Only the node can reach this endpoint (ipc by default). */
    if (!svc_verbs_dispatch(verbs, sizeof verbs / sizeof verbs[0], req, true, &c, why, sizeof why))
        send_error(c.s, identity, delimited, req->request_id, STRATA_EINVAL, why);
}

static int on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    return svc_router_serve_control(
        sock, handle_control, arg,
        "request: strata-compactor serves control (compact, progress, ping)");
}

/* ---- metrics and start-up ------------------------------------------------------- */

/* Everything /metrics shows, read at one moment. */
typedef struct {
    uint64_t compactions, stale, failures, bytes_read, bytes_written, cpu_ns, throttle_ns, running;
} figures_t;

#define U(field)        offsetof(figures_t, field), false, 0, 0
#define S(field, scale) offsetof(figures_t, field), false, scale, 0
static const svc_metric_t rows[] = {
    {NULL, "compactions_total", "compactions installed by the writer", SVC_COUNTER, U(compactions)},
    {NULL, "compactions_stale_total", "compactions the writer refused because its version moved on",
     SVC_COUNTER, U(stale)},
    {NULL, "compaction_failures_total", "compactions that failed", SVC_COUNTER, U(failures)},
    {NULL, "compaction_read_bytes_total", "input table bytes of installed compactions", SVC_COUNTER,
     U(bytes_read)},
    {NULL, "compaction_written_bytes_total", "output table bytes installed", SVC_COUNTER,
     U(bytes_written)},
    {NULL, "compaction_cpu_seconds_total", "CPU time spent merging", SVC_COUNTER, S(cpu_ns, 1e-9)},
    {NULL, "compaction_throttle_seconds_total", "time slept to keep to rate_mb_s and cpu_percent",
     SVC_COUNTER, S(throttle_ns, 1e-9)},
    {NULL, "compaction_running", "1 while a compaction runs", SVC_GAUGE, U(running)},
};

static void write_metrics(void *arg, FILE *out)
{
    compactor_t *s = arg;
    figures_t f = {.compactions = atomic_load(&s->compactions),
                   .stale = atomic_load(&s->stale),
                   .failures = atomic_load(&s->failures),
                   .bytes_read = atomic_load(&s->bytes_read),
                   .bytes_written = atomic_load(&s->bytes_written),
                   .cpu_ns = atomic_load(&s->cpu_ns),
                   .throttle_ns = atomic_load(&s->throttle_ns),
                   .running = atomic_load(&s->busy)};
    svc_metrics_prom(rows, sizeof rows / sizeof rows[0], &f, out);
}

/* Started, and the writer it compacts for answers (node.h's rule). */
static bool is_ready(void *arg)
{
    compactor_t *s = arg;
    return atomic_load(&s->ready) && svc_writer_answers(s->writer_file);
}

static int write_endpoints(compactor_t *s, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", s->endpoint}, {"metrics", s->metrics_url}};
    return svc_write_endpoints(s->endpoints_file, "compactor", pairs, 2, err);
}

/* Takes compaction/LOCK and removes every table a killed compactor left:
 * none of them is in any version (the writer renames a table out of here
 * before its MANIFEST names it). */
static int claim_work_dir(compactor_t *s, strata_error_t *err)
{
    if (mkdir(s->work_dir, 0700) != 0 && errno != EEXIST)
        return strata_error_set(err, STRATA_EIO, "mkdir %s: %s", s->work_dir, strerror(errno));
    char lock[PATH_MAX + 32];
    snprintf(lock, sizeof lock, "%s/LOCK", s->work_dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return strata_error_set(err, STRATA_EIO, "open %s: %s", lock, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return strata_error_set(err, STRATA_EEXIST,
                                "%s is held: another strata-compactor runs on this node", lock);
    DIR *d = opendir(s->work_dir);
    if (!d)
        return strata_error_set(err, STRATA_EIO, "opendir %s: %s", s->work_dir, strerror(errno));
    unsigned removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        /* Finished outputs (.sst) and ones a kill cut short (.sst.tmp). */
        size_t len = strlen(de->d_name);
        bool table = len > 4 && !strcmp(de->d_name + len - 4, ".sst");
        bool partial = len > 8 && !strcmp(de->d_name + len - 8, ".sst.tmp");
        if (!table && !partial)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed) {
        log_info("event=partial_outputs_removed count=%u dir=%s", removed, s->work_dir);
        int fd = open(s->work_dir, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return 0;
}

static int load(compactor_t *s, strata_error_t *err)
{
    uint64_t l0, l1_mb, target_mb, rate_mb;
    bool lz4;
    int rc;
    if ((rc = svc_config_u64(s->cfg, "compactor/l0_trigger", &l0, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/level1_mb", &l1_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/target_file_mb", &target_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/rate_mb_s", &rate_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/cpu_percent", &s->cpu_percent, err)) ||
        (rc = svc_config_bool(s->cfg, "writer/lz4", &lz4, err)) ||
        (rc =
             svc_http_check("compactor/metrics", svc_config_get(s->cfg, "compactor/metrics"), err)))
        return rc;
    if (l0 < 2 || l0 > 64 || l1_mb < 1 || l1_mb > 1 << 20 || target_mb < 1 || target_mb > 4096 ||
        rate_mb > 100000 || s->cpu_percent < 1 || s->cpu_percent > 100)
        return strata_error_set(err, STRATA_EINVAL,
                                "compactor config out of range: l0_trigger 2..64, level1_mb "
                                "1..1048576, target_file_mb 1..4096, rate_mb_s 0..100000 (0: "
                                "unlimited), cpu_percent 1..100");
    strata_compaction_options_init(&s->copts);
    if (!(s->cursor = strata_compaction_cursor_new()))
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    s->copts.l0_trigger = (uint32_t)l0;
    s->copts.level1_bytes = l1_mb << 20;
    s->copts.target_file_bytes = target_mb << 20;
    s->rate_bytes_s = rate_mb << 20;
    s->io = *strata_io_posix();
    s->io.pwrite = compactor_throttled_pwrite;
    s->io.state = s;
    strata_table_options_init(&s->topts);
    s->topts.lz4 = lz4;
    s->topts.io = &s->io;
    return 0;
}

const char *compactor_version(void)
{
    return COMPACTOR_VERSION;
}

int compactor_check_config(svc_config_t *cfg, strata_error_t *err)
{
    compactor_t probe = {.cfg = cfg};
    int rc = load(&probe, err);
    strata_compaction_cursor_free(&probe.cursor);
    return rc;
}

int compactor_new(svc_config_t *cfg, compactor_t **compactor_p, strata_error_t *err)
{
    *compactor_p = NULL;
    compactor_t *s = calloc(1, sizeof *s);
    if (!s) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->lock_fd = -1;
    s->state = "idle";
    s->manual_state = "none";
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
    snprintf(s->work_dir, sizeof s->work_dir, "%.4000s/compaction", s->data_dir);
    snprintf(s->writer_file, sizeof s->writer_file, "%.4000s/writer.endpoints", s->data_dir);
    snprintf(s->endpoints_file, sizeof s->endpoints_file, "%.4000s/compactor.endpoints",
             s->data_dir);
    /* The TCP ports before anything on disk: a clash fails the start
     * without leaving a work dir behind. An ipc control socket (the
     * default) after the lock, since binding an ipc path takes it over from
     * whoever holds it. */
    const char *control = svc_config_get(s->cfg, "compactor/endpoint");
    bool control_tcp = *control && !svc_endpoint_is_ipc(control);
    if ((control_tcp && (rc = svc_control_bind(control, s->data_dir, "compactor", &s->router,
                                               s->endpoint, sizeof s->endpoint, err))) ||
        (rc = svc_http_listen("compactor/metrics", svc_config_get(s->cfg, "compactor/metrics"),
                              &s->http, s->metrics_url, sizeof s->metrics_url, err)) ||
        (rc = claim_work_dir(s, err)))
        goto fail;
    if ((!control_tcp && (rc = svc_control_bind(control, s->data_dir, "compactor", &s->router,
                                                s->endpoint, sizeof s->endpoint, err))) ||
        (rc = svc_http_serve(s->http, write_metrics, is_ready, s, err)))
        goto fail;
    if ((rc = write_endpoints(s, err)))
        goto fail;
    if (pthread_create(&s->worker, NULL, compactor_worker, s) != 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the worker thread");
        goto fail;
    }
    s->worker_running = true;
    *compactor_p = s;
    return 0;
fail:
    compactor_destroy(&s);
    return rc;
}

int compactor_run(compactor_t *s)
{
    zloop_t *loop = zloop_new();
    if (!loop)
        return STRATA_ENOMEM;
    zloop_reader(loop, s->router, on_request, s);
    zloop_timer(loop, 100, 0, svc_interrupt_tick, &s->stop_requested);
    atomic_store(&s->ready, true);
    log_info("event=ready node=%s endpoint=%s work_dir=%s l0_trigger=%u level1_mb=%" PRIu64
             " target_file_mb=%" PRIu64 " rate_mb_s=%" PRIu64 " cpu_percent=%" PRIu64
             " metrics=%s pid=%d",
             svc_config_get(s->cfg, "node/name"), s->endpoint, s->work_dir, s->copts.l0_trigger,
             s->copts.level1_bytes >> 20, s->copts.target_file_bytes >> 20, s->rate_bytes_s >> 20,
             s->cpu_percent, s->metrics_url, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
    log_info("event=stopping");
    s->clean_stop = true;
    return 0;
}

void compactor_stop(compactor_t *s)
{
    atomic_store(&s->stop_requested, true);
}

const char *compactor_endpoint(const compactor_t *s)
{
    return s->endpoint;
}

void compactor_destroy(compactor_t **compactor_p)
{
    compactor_t *s = *compactor_p;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_running)
        pthread_join(s->worker, NULL);
    /* Left behind after a failed start, so that an operator sees what ran. */
    if (s->clean_stop)
        unlink(s->endpoints_file);
    strata_compaction_cursor_free(&s->cursor);
    svc_http_stop(&s->http);
    strata_client_destroy(&s->writer);
    zsock_destroy(&s->router);
    svc_config_destroy(&s->cfg);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    if (s->clean_stop)
        log_info("event=stopped");
    free(s);
    *compactor_p = NULL;
}
