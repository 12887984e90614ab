/* strata-snapshotter: periodic and on-demand snapshots of the node, and the
 * WAL truncation they make safe. The writer owns the engine, so a snapshot is
 * its `checkpoint` control verb into a temporary directory here; this process
 * then lists and checksums every file (SNAPSHOT, lib/engine/snapshot.md), renames the
 * directory into place, keeps the newest `keep`, and asks the writer to
 * delete the WAL the snapshot covers (`truncate_wal`, which still honours the
 * retention subscribers need). A snapshot is only ever used through its
 * final name, which appears by rename after it is whole and fsync'd, so a
 * kill at any point leaves either the old set or the new one, plus a
 * `.tmp-*` directory the next start removes. */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "router.h"
#include "verbs.h"
#include "strata/client.h"
#include "strata/codec.h"
#include "strata/snapshot.h"

#define SNAPSHOTTER_VERSION "0.1.0"

/* A checkpoint flushes the memtable first: up to writer/memtable_mb to
 * write, on a disk that may be slow. */
#define CHECKPOINT_TIMEOUT_MS 600000

typedef struct {
    svc_config_t *cfg;
    char data_dir[PATH_MAX], snap_dir[PATH_MAX];
    char writer_file[PATH_MAX + 32], endpoints_file[PATH_MAX + 32];
    char endpoint[PATH_MAX + 32], metrics_url[128];
    uint64_t interval_s, keep;
    bool truncate_wal;
    zsock_t *router;
    svc_http_t *http;
    strata_client_t *writer;
    unsigned attempts;
    /* Read by the metrics thread. */
    _Atomic uint64_t taken, failed, last_seq, last_ms, wal_deleted, kept;
    _Atomic bool ready;
} snap_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the writer ------------------------------------------------------------- */

/* One control call; a failed call drops the connection, since a restarted
 * writer may be elsewhere. */
static int writer_control(snap_t *s, const char *verb, const char *arg, strata_reply_t *rep,
                          strata_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = svc_writer_connect(s->writer_file, CHECKPOINT_TIMEOUT_MS, &s->writer, err);
    if (rc == 0)
        rc = strata_client_control(s->writer, verb, &arg, arg ? 1 : 0, rep, err);
    if (rc && rc != STRATA_EINVAL && rc != STRATA_EEXIST)
        strata_client_destroy(&s->writer);
    return rc;
}

/* ---- snapshots --------------------------------------------------------------- */

/* Removes what a killed snapshotter (or writer checkpoint) left half-built. */
static void remove_partials(snap_t *s)
{
    DIR *d = opendir(s->snap_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".tmp-", 5) != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", s->snap_dir, de->d_name);
        strata_error_t err;
        if (strata_snapshot_remove(path, &err) == 0)
            log_info("event=partial_removed path=%s", path);
        else
            log_warning("event=partial_remove_failed path=%s error=\"%s\"", path, err.msg);
    }
    closedir(d);
}

/* Keeps the newest s->keep sealed snapshots. */
static void prune(snap_t *s)
{
    char **names = NULL;
    size_t count = 0;
    strata_error_t err;
    if (strata_snapshot_list(s->snap_dir, &names, &count, &err) != 0) {
        log_warning("event=list_failed dir=%s error=\"%s\"", s->snap_dir, err.msg);
        return;
    }
    size_t drop = count > s->keep ? count - s->keep : 0;
    for (size_t i = 0; i < drop; i++) {
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", s->snap_dir, names[i]);
        if (strata_snapshot_remove(path, &err) == 0)
            log_info("event=snapshot_pruned name=%s", names[i]);
        else
            log_warning("event=prune_failed name=%s error=\"%s\"", names[i], err.msg);
    }
    atomic_store(&s->kept, count - drop);
    strata_snapshot_list_free(names, count);
}

typedef struct {
    char name[64], path[PATH_MAX + 100];
    uint64_t seq, files, bytes, ms;
    uint32_t wal_deleted;
    bool existed; /* no write since the last snapshot: it stands */
} result_t;

static int take_snapshot(snap_t *s, result_t *res, strata_error_t *err)
{
    memset(res, 0, sizeof *res);
    uint64_t start = now_ms();
    /* A writer checkpoint asked for by a snapshotter killed since may have
     * finished after our start-up clean-up. */
    remove_partials(s);
    char tmp[PATH_MAX + 100];
    snprintf(tmp, sizeof tmp, "%s/.tmp-%d-%u", s->snap_dir, (int)getpid(), ++s->attempts);
    strata_reply_t rep;
    uint64_t term = 0;
    int rc = writer_control(s, "checkpoint", tmp, &rep, err);
    if (rc == 0) {
        const char *seq = svc_reply_get(&rep, "seq");
        res->seq = seq ? strtoull(seq, NULL, 10) : 0;
        if (!seq)
            rc = strata_error_set(err, STRATA_EIO, "the writer's checkpoint reply has no seq");
    }
    strata_reply_clear(&rep);
    if (rc == 0 && strata_client_status(s->writer, &rep, err) == 0)
        term = rep.term;
    strata_reply_clear(&rep);
    strata_snapshot_meta_t meta = {0};
    if (rc == 0)
        rc = strata_snapshot_seal(tmp, res->seq, term, svc_config_get(s->cfg, "node/name"), &meta,
                                  err);
    res->files = meta.n_files;
    res->bytes = meta.bytes;
    strata_snapshot_meta_free(&meta);
    snprintf(res->name, sizeof res->name, "snap-%020" PRIu64, res->seq);
    snprintf(res->path, sizeof res->path, "%s/%s", s->snap_dir, res->name);
    if (rc == 0 && access(res->path, F_OK) == 0) {
        res->existed = true; /* the same seq: identical content */
        rc = strata_snapshot_remove(tmp, err);
    } else if (rc == 0) {
        if (rename(tmp, res->path) != 0)
            rc = strata_error_set(err, STRATA_EIO, "rename %s: %s", tmp, strerror(errno));
        int fd = rc == 0 ? open(s->snap_dir, O_RDONLY) : -1;
        if (rc == 0 && (fd < 0 || fsync(fd) != 0))
            rc = strata_error_set(err, STRATA_EIO, "fsync %s: %s", s->snap_dir, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc) {
        strata_error_t ignored;
        strata_snapshot_remove(tmp, &ignored);
        atomic_fetch_add(&s->failed, 1);
        log_error("event=snapshot_failed error=\"%s\"", err->msg);
        return rc;
    }
    prune(s);
    if (s->truncate_wal) {
        char below[32];
        snprintf(below, sizeof below, "%" PRIu64, res->seq + 1);
        strata_error_t terr;
        if (writer_control(s, "truncate_wal", below, &rep, &terr) == 0) {
            const char *deleted = svc_reply_get(&rep, "deleted");
            res->wal_deleted = deleted ? (uint32_t)strtoul(deleted, NULL, 10) : 0;
            atomic_fetch_add(&s->wal_deleted, res->wal_deleted);
        } else {
            /* The snapshot stands; the next one truncates. */
            log_warning("event=wal_truncation_failed error=\"%s\"", terr.msg);
        }
        strata_reply_clear(&rep);
    }
    res->ms = now_ms() - start;
    atomic_fetch_add(&s->taken, 1);
    atomic_store(&s->last_seq, res->seq);
    atomic_store(&s->last_ms, res->ms);
    log_info("event=snapshot name=%s seq=%" PRIu64 " files=%" PRIu64 " bytes=%" PRIu64
             " existed=%d wal_segments_deleted=%" PRIu32 " ms=%" PRIu64,
             res->name, res->seq, res->files, res->bytes, res->existed, res->wal_deleted, res->ms);
    return 0;
}

/* ---- requests ------------------------------------------------------------------ */

static void send_reply(snap_t *s, zframe_t *identity, bool delimited, const strata_reply_t *rep)
{
    svc_router_send(s->router, identity, delimited, rep);
}

static void send_error(snap_t *s, zframe_t *identity, bool delimited, uint64_t request_id, int code,
                       const char *text)
{
    svc_router_send_error(s->router, identity, delimited, request_id, code, text);
}

/* One control request, as the verb handlers see it. */
typedef struct {
    snap_t *s;
    zframe_t *identity;
    bool delimited;
    const strata_request_t *req;
} call_t;

static void verb_snapshot(void *arg)
{
    call_t *c = arg;
    snap_t *s = c->s;
    zframe_t *identity = c->identity;
    bool delimited = c->delimited;
    const strata_request_t *req = c->req;
    strata_reply_t rep = {.request_id = req->request_id, .op = STRATA_OP_CONTROL};
    result_t res;
    strata_error_t err;
    int rc = take_snapshot(s, &res, &err);
    if (rc)
        return send_error(s, identity, delimited, req->request_id, rc, err.msg);
    char seq[32], files[32], bytes[32], ms[32], deleted[16];
    snprintf(seq, sizeof seq, "%" PRIu64, res.seq);
    snprintf(files, sizeof files, "%" PRIu64, res.files);
    snprintf(bytes, sizeof bytes, "%" PRIu64, res.bytes);
    snprintf(ms, sizeof ms, "%" PRIu64, res.ms);
    snprintf(deleted, sizeof deleted, "%" PRIu32, res.wal_deleted);
    strata_pair_t pairs[] = {{"name", res.name},
                             {"path", res.path},
                             {"seq", seq},
                             {"files", files},
                             {"bytes", bytes},
                             {"existed", res.existed ? "true" : "false"},
                             {"wal_segments_deleted", deleted},
                             {"ms", ms}};
    rep.pairs = pairs;
    rep.n_pairs = sizeof pairs / sizeof pairs[0];
    send_reply(s, identity, delimited, &rep);
}

static void verb_ping(void *arg)
{
    call_t *c = arg;
    strata_pair_t pairs[] = {
        {"pong", "1"}, {"version", SNAPSHOTTER_VERSION}, {"dir", c->s->snap_dir}};
    strata_reply_t rep = {
        .request_id = c->req->request_id, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 3};
    send_reply(c->s, c->identity, c->delimited, &rep);
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

static int on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    result_t res;
    strata_error_t err;
    take_snapshot(arg, &res, &err); /* logged either way; the next period retries */
    return 0;
}

/* ---- metrics, endpoints, main --------------------------------------------------- */

static void write_metrics(void *arg, FILE *out)
{
    snap_t *s = arg;
    prom_counter(out, "snapshots_total", "snapshots taken", atomic_load(&s->taken));
    prom_counter(out, "snapshot_failures_total", "snapshots that failed", atomic_load(&s->failed));
    prom_gauge(out, "snapshot_last_seq", "seq of the newest snapshot",
               (double)atomic_load(&s->last_seq));
    prom_gauge(out, "snapshot_last_duration_seconds", "how long the newest snapshot took",
               (double)atomic_load(&s->last_ms) / 1e3);
    prom_gauge(out, "snapshots_kept", "sealed snapshots on disk", (double)atomic_load(&s->kept));
    prom_counter(out, "snapshot_wal_segments_deleted_total",
                 "WAL segments the writer deleted after snapshots", atomic_load(&s->wal_deleted));
}

static bool is_ready(void *arg)
{
    return atomic_load(&((snap_t *)arg)->ready);
}

static int write_endpoints(snap_t *s, strata_error_t *err)
{
    strata_pair_t pairs[] = {
        {"endpoint", s->endpoint}, {"dir", s->snap_dir}, {"metrics", s->metrics_url}};
    return svc_write_endpoints(s->endpoints_file, "snapshotter", pairs, 3, err);
}

static int load(snap_t *s, strata_error_t *err)
{
    int rc;
    if ((rc = svc_config_u64(s->cfg, "snapshotter/interval_s", &s->interval_s, err)) ||
        (rc = svc_config_u64(s->cfg, "snapshotter/keep", &s->keep, err)) ||
        (rc = svc_config_bool(s->cfg, "snapshotter/truncate_wal", &s->truncate_wal, err)))
        return rc;
    if (s->interval_s > 31 * 86400 || s->keep < 1 || s->keep > 1000)
        return strata_error_set(err, STRATA_EINVAL,
                                "snapshotter config out of range: interval_s 0..2678400 (0: only "
                                "on request), keep 1..1000");
    return 0;
}

const char *snapshotter_version(void)
{
    return SNAPSHOTTER_VERSION;
}

int snapshotter_main(const char *default_config, const char *config_file, bool print_config)
{
    int rc;
    static snap_t snap;
    snap_t *s = &snap;
    strata_error_t err;
    strata_error_clear(&err);
    rc = svc_config_load(default_config, config_file, &s->cfg, &err);
    if (rc == 0)
        rc = load(s, &err);
    if (rc == 0 && print_config) {
        svc_config_print(s->cfg, stdout);
        svc_config_destroy(&s->cfg);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "strata-snapshotter: %s\n", err.msg);
        svc_config_destroy(&s->cfg);
        return 2;
    }
    zsys_init();
    zloop_t *loop = NULL;
    if ((rc = svc_log_init("strata-snapshotter", svc_config_get(s->cfg, "log/level"), &err)))
        goto fail;
    const char *dir = svc_config_get(s->cfg, "node/data_dir");
    if (!realpath(dir, s->data_dir)) {
        rc = strata_error_set(&err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)",
                              dir, strerror(errno));
        goto fail;
    }
    const char *snap_dir = svc_config_get(s->cfg, "snapshotter/dir");
    if (*snap_dir)
        snprintf(s->snap_dir, sizeof s->snap_dir, "%s", snap_dir);
    else
        snprintf(s->snap_dir, sizeof s->snap_dir, "%.4000s/snapshots", s->data_dir);
    if (mkdir(s->snap_dir, 0755) != 0 && errno != EEXIST) {
        rc = strata_error_set(&err, STRATA_EIO, "mkdir %s: %s", s->snap_dir, strerror(errno));
        goto fail;
    }
    snprintf(s->writer_file, sizeof s->writer_file, "%.4000s/writer.endpoints", s->data_dir);
    snprintf(s->endpoints_file, sizeof s->endpoints_file, "%.4000s/snapshotter.endpoints",
             s->data_dir);
    const char *ep = svc_config_get(s->cfg, "snapshotter/endpoint");
    char bind_ep[PATH_MAX + 32];
    if (*ep)
        snprintf(bind_ep, sizeof bind_ep, "%s", ep);
    else
        snprintf(bind_ep, sizeof bind_ep, "ipc://%.4000s/snapshotter.ctl", s->data_dir);
    s->router = zsock_new(ZMQ_ROUTER);
    if (!s->router || zsock_bind(s->router, "%s", bind_ep) < 0) {
        rc = strata_error_set(&err, STRATA_EIO, "snapshotter/endpoint: cannot bind %s", bind_ep);
        goto fail;
    }
    zsock_set_maxmsgsize(s->router, STRATA_PROTO_MAX_MESSAGE);
    char *last = zsock_last_endpoint(s->router);
    snprintf(s->endpoint, sizeof s->endpoint, "%s", last ? last : bind_ep);
    zstr_free(&last);
    uint16_t http_port = 0;
    const char *metrics = svc_config_get(s->cfg, "metrics/endpoint");
    if ((rc = svc_http_start(metrics, write_metrics, is_ready, s, &s->http, &http_port, &err)))
        goto fail;
    if (s->http) {
        snprintf(s->metrics_url, sizeof s->metrics_url, "http://%.*s:%u/metrics",
                 (int)(strrchr(metrics, ':') - metrics), metrics, http_port);
    } else {
        snprintf(s->metrics_url, sizeof s->metrics_url, "off");
    }
    remove_partials(s);
    prune(s);
    if ((rc = write_endpoints(s, &err)))
        goto fail;
    loop = zloop_new();
    zloop_reader(loop, s->router, on_request, s);
    zloop_timer(loop, 100, 0, svc_interrupt_tick, NULL);
    if (s->interval_s > 0)
        zloop_timer(loop, s->interval_s * 1000, 0, on_timer, s);
    atomic_store(&s->ready, true);
    log_info("event=ready node=%s endpoint=%s dir=%s interval_s=%" PRIu64 " keep=%" PRIu64
             " metrics=%s pid=%d",
             svc_config_get(s->cfg, "node/name"), s->endpoint, s->snap_dir, s->interval_s, s->keep,
             s->metrics_url, (int)getpid());
    zloop_start(loop);
    zloop_destroy(&loop);
    unlink(s->endpoints_file);
    log_info("event=stopped");
    rc = 0;
    goto out;
fail:
    log_error("event=start_failed error=\"%s\"", err.msg);
    fprintf(stderr, "strata-snapshotter: %s\n", err.msg);
    rc = 1;
out:
    svc_http_stop(&s->http);
    strata_client_destroy(&s->writer);
    zsock_destroy(&s->router);
    svc_config_destroy(&s->cfg);
    return rc;
}
