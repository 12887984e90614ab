/* strata-snapshotter: periodic and on-demand snapshots of the node, and the
 * WAL truncation they make safe. The writer owns the engine, so a snapshot is
 * its `checkpoint` control verb into a temporary directory here; this process
 * then lists and checksums every file (SNAPSHOT, lib/engine/snapshot.md),
 * renames the directory into place, keeps the newest `keep`, and asks the
 * writer to delete the WAL the snapshot covers (`truncate_wal`, which still
 * honours the retention subscribers need). A snapshot is only ever used
 * through its final name, which appears by rename after it is whole and
 * fsync'd, so a kill at any point leaves either the old set or the new one,
 * plus a `.tmp-*` directory the next start removes.
 *
 * The server is an object (snapshotter_new/run/stop/destroy) that main.c
 * wraps and a test can run in-process. Snapshots run on a worker thread
 * (work.c), so the loop (server.c) answers ping and queues requests while
 * the writer checkpoints, and a writer that dies mid-checkpoint is noticed
 * within a quarter second rather than at the checkpoint timeout. */
#ifndef STRATA_SNAPSHOTTER_H
#define STRATA_SNAPSHOTTER_H

#include <czmq.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "strata/client.h"

#define SNAPSHOTTER_VERSION "0.1.0"

/* A checkpoint flushes the memtable first: up to writer/memtable_mb to
 * write, on a disk that may be slow. A writer that dies meanwhile is
 * noticed at once (svc_writer_call), so this only bounds a live but stuck
 * writer. */
#define CHECKPOINT_TIMEOUT_MS 600000
/* snapshot requests waiting at once; more are refused with STRATA_EBUSY. */
#define MAX_WAITERS 64

typedef struct snapshotter snapshotter_t;

/* Takes cfg (the node's config with its snapshotter, metrics and log
 * sections). Checks it, prepares the snapshots directory (removing what a
 * killed run left), binds the control endpoint and the metrics port, and
 * starts the worker. */
int snapshotter_new(svc_config_t *cfg, snapshotter_t **snapshotter_p, strata_error_t *err);
/* Serves until SIGINT/SIGTERM or snapshotter_stop. */
int snapshotter_run(snapshotter_t *s);
/* From any thread: makes snapshotter_run return within a tick. */
void snapshotter_stop(snapshotter_t *s);
/* Stops the worker (a snapshot in progress is abandoned; its .tmp-*
 * directory goes at the next start). */
void snapshotter_destroy(snapshotter_t **snapshotter_p);
const char *snapshotter_endpoint(const snapshotter_t *s);
/* Checks a config as snapshotter_new would, without starting anything. */
int snapshotter_check_config(svc_config_t *cfg, strata_error_t *err);

/* ---- inside the server ---------------------------------------------------- */

typedef struct {
    char name[64], path[PATH_MAX + 100];
    uint64_t seq, files, bytes, ms;
    uint32_t wal_deleted;
    bool existed; /* no write since the last snapshot: it stands */
} snap_result_t;

/* A snapshot request waiting for its reply; the loop's alone. */
typedef struct {
    zframe_t *identity;
    bool delimited;
    uint64_t request_id;
} snap_waiter_t;

struct snapshotter {
    svc_config_t *cfg;
    char data_dir[PATH_MAX], snap_dir[PATH_MAX];
    char writer_file[PATH_MAX + 32], endpoints_file[PATH_MAX + 32];
    char endpoint[PATH_MAX + 32], metrics_url[128];
    uint64_t interval_s, keep;
    bool truncate_wal;
    zsock_t *router;
    svc_http_t *http;
    _Atomic bool stop_requested; /* snapshotter_stop: ends snapshotter_run */
    bool clean_stop;             /* snapshotter_run returned */

    /* The loop's: requests served by the running snapshot, and those
     * that came after it started, which the next one serves. */
    snap_waiter_t running[MAX_WAITERS], queued[MAX_WAITERS];
    size_t n_running, n_queued;
    bool busy, again; /* a snapshot runs; another is due after it */

    /* Loop and worker, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go, stopping, done;
    int done_rc;
    snap_result_t done_res;
    strata_error_t done_err;
    zsock_t *wake_loop; /* the worker's end: a frame means `done` is set */
    zsock_t *woken;     /* the loop's end */
    pthread_t worker;
    bool worker_running;

    /* The worker's alone. */
    strata_client_t *writer;
    unsigned attempts;
    /* A writer down for a while fails every periodic snapshot alike. */
    svc_episode_t snapshot_failing, truncation_failing;

    /* Read by the metrics thread. */
    _Atomic uint64_t taken, failed, last_seq, last_ms, wal_deleted, kept;
    _Atomic bool ready;
};

/* work.c */
void *snapshotter_worker(void *arg);
/* Removes what a killed snapshotter (or writer checkpoint) left half-built. */
void snapshotter_remove_partials(snapshotter_t *s);
/* Keeps the newest s->keep sealed snapshots. */
void snapshotter_prune(snapshotter_t *s);

#endif
