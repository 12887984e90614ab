/* The snapshotter's worker thread: one snapshot at a time, when the loop
 * asks (a request, or the period), each answered back through `done`. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "node.h"
#include "snapshotter.h"
#include "strata/codec.h"
#include "strata/snapshot.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool stopping(void *arg)
{
    snapshotter_t *s = arg;
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* One control call to the writer, given up when the writer dies or this
 * server stops. */
static int writer_control(snapshotter_t *s, const char *verb, const char *arg, strata_reply_t *rep,
                          strata_error_t *err)
{
    strata_request_t req = {
        .op = STRATA_OP_CONTROL, .verb = verb, .args = &arg, .n_args = arg ? 1 : 0};
    return svc_writer_call(s->writer_file, CHECKPOINT_TIMEOUT_MS, &s->writer, &req, rep, stopping,
                           s, err);
}

void snapshotter_remove_partials(snapshotter_t *s)
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

void snapshotter_prune(snapshotter_t *s)
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

static int take_snapshot(snapshotter_t *s, snap_result_t *res, strata_error_t *err)
{
    memset(res, 0, sizeof *res);
    uint64_t start = now_ms();
    /* A writer checkpoint asked for by a snapshotter killed since may have
     * finished after our start-up clean-up. */
    snapshotter_remove_partials(s);
    char tmp[PATH_MAX + 100];
    snprintf(tmp, sizeof tmp, "%s/.tmp-%d-%u", s->snap_dir, (int)getpid(), ++s->attempts);
    strata_reply_t rep;
    uint64_t term = 0;
    int rc = writer_control(s, "checkpoint", tmp, &rep, err);
    if (rc == 0) {
        const char *seq = svc_reply_get(&rep, "seq"), *t = svc_reply_get(&rep, "term");
        res->seq = seq ? strtoull(seq, NULL, 10) : 0;
        /* The entry's term, which a follower installing the snapshot
         * starts its log after. */
        term = t ? strtoull(t, NULL, 10) : 0;
        if (!seq)
            rc = strata_error_set(err, STRATA_EIO, "the writer's checkpoint reply has no seq");
    }
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
        if (svc_episode_failed(&s->snapshot_failing, rc))
            log_error("event=snapshot_failed error=\"%s\"", err->msg);
        return rc;
    }
    uint64_t failures = svc_episode_cleared(&s->snapshot_failing);
    if (failures)
        log_info("event=snapshot_recovered failures=%" PRIu64, failures);
    snapshotter_prune(s);
    if (s->truncate_wal) {
        char below[32];
        snprintf(below, sizeof below, "%" PRIu64, res->seq + 1);
        strata_error_t terr;
        int trc = writer_control(s, "truncate_wal", below, &rep, &terr);
        if (trc == 0) {
            const char *deleted = svc_reply_get(&rep, "deleted");
            res->wal_deleted = deleted ? (uint32_t)strtoul(deleted, NULL, 10) : 0;
            atomic_fetch_add(&s->wal_deleted, res->wal_deleted);
            failures = svc_episode_cleared(&s->truncation_failing);
            if (failures)
                log_info("event=wal_truncation_recovered failures=%" PRIu64, failures);
        } else if (svc_episode_failed(&s->truncation_failing, trc)) {
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

void *snapshotter_worker(void *arg)
{
    snapshotter_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->go && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping)
            break;
        s->go = false;
        pthread_mutex_unlock(&s->mu);
        snap_result_t res;
        strata_error_t err;
        strata_error_clear(&err);
        int rc = take_snapshot(s, &res, &err);
        pthread_mutex_lock(&s->mu);
        s->done = true;
        s->done_rc = rc;
        s->done_res = res;
        s->done_err = err;
        pthread_mutex_unlock(&s->mu);
        zstr_send(s->wake_loop, "done");
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    strata_client_destroy(&s->writer);
    return NULL;
}
