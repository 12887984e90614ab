/* strata-compactor: the node's leveled compaction, out of the writer's
 * process. The writer owns the MANIFEST; this process reads it (read-only,
 * when the writer says the version changed), picks with the engine's
 * picker, merges the input tables straight from their mmaps into tables of
 * its own under <data_dir>/compaction, and asks the writer to install them
 * (`install_compaction`): the writer checks that the inputs are still live,
 * renames the outputs in and logs one version edit, or refuses and changes
 * nothing. So a kill at any point leaves the version whole; what is left
 * in compaction/ (finished or .tmp) belongs to no version and goes at the
 * next start. One compactor per node, held by a lock on compaction/LOCK.
 *
 * The server is an object (compactor_new/run/destroy) that main.c wraps and
 * a test can run in-process: work.c is its worker thread (picking, merging,
 * installing, manual requests), server.c its control endpoint, metrics and
 * start-up. */
#ifndef STRATA_COMPACTOR_H
#define STRATA_COMPACTOR_H

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
#include "strata/compaction.h"
#include "strata/io.h"

typedef struct compactor compactor_t;

/* Takes cfg (the node's config with its compactor, writer/lz4, metrics and
 * log sections). Checks the config, takes compaction/LOCK under
 * node/data_dir (removing what a killed compactor left there), binds the
 * control endpoint and the metrics port, and starts the worker thread. */
int compactor_new(svc_config_t *cfg, compactor_t **compactor_p, strata_error_t *err);
/* Serves the control endpoint until SIGINT/SIGTERM or compactor_stop. */
int compactor_run(compactor_t *c);
/* From any thread: makes compactor_run return within a tick. */
void compactor_stop(compactor_t *c);
/* Stops the worker (a running job is abandoned, its outputs removed). */
void compactor_destroy(compactor_t **compactor_p);
const char *compactor_endpoint(const compactor_t *c);
const char *compactor_version(void);
/* Checks a config as compactor_new would, without starting anything. */
int compactor_check_config(svc_config_t *cfg, strata_error_t *err);

/* ---- inside the server ---------------------------------------------------- */

#define COMPACTOR_VERSION "0.1.0"

/* The writer holds a compaction_state request this long when nothing
 * changed; the client waits a little longer for the answer. */
#define STATE_WAIT_MS     1000
#define WRITER_TIMEOUT_MS 10000
/* A manual compaction of L1+ goes this many files at a time, so that one
 * install stays small and the node keeps flushing meanwhile. */
#define MANUAL_CHUNK_FILES 16
#define MAX_STALE_RETRIES  100

typedef struct {
    uint64_t id;
    int level; /* -1: every level down to the deepest that has data */
    bool has_lo, has_hi;
    char lo[256], hi[256];
} manual_t;

struct compactor {
    svc_config_t *cfg;
    char data_dir[PATH_MAX], work_dir[PATH_MAX + 16];
    char writer_file[PATH_MAX + 32], endpoints_file[PATH_MAX + 32];
    char endpoint[PATH_MAX + 32], metrics_url[128];
    strata_compaction_options_t copts;
    strata_table_options_t topts;
    strata_io_t io; /* posix, with writes throttled */
    uint64_t rate_bytes_s, cpu_percent;
    zsock_t *router;
    svc_http_t *http;
    int lock_fd;
    pthread_t worker;
    bool worker_running;
    /* Worker thread only. */
    strata_client_t *writer;
    strata_compaction_cursor_t *cursor;
    uint64_t jobs;
    uint64_t job_start_ns, job_cpu0_ns, job_written;
    /* A disk or MANIFEST that keeps failing fails every retry alike. */
    svc_episode_t work_failing;

    /* Shared with the loop (requests) under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    const char *state;                /* idle, compacting, installing, no_writer */
    strata_compaction_job_t *current; /* its progress, while it runs */
    uint64_t current_entries, current_bytes;
    int current_level;
    uint64_t next_manual_id;
    bool has_pending;
    manual_t pending;
    uint64_t manual_id;       /* the newest manual request started */
    const char *manual_state; /* none, running, done, failed */
    char manual_step[32];
    char manual_error[512];
    uint64_t manual_done_bytes, manual_total_bytes, manual_compactions;

    /* Read by the metrics thread. */
    _Atomic uint64_t compactions, stale, failures, bytes_read, bytes_written, cpu_ns, throttle_ns;
    _Atomic uint64_t written_now; /* of the running job */
    _Atomic bool ready, busy;
    _Atomic bool stop_requested; /* compactor_stop: ends compactor_run */
    bool clean_stop;             /* compactor_run returned */
};

/* work.c: the worker thread's body, and the throttled write every output
 * byte goes through. */
void *compactor_worker(void *arg);
ssize_t compactor_throttled_pwrite(strata_io_t *io, int fd, const void *buf, size_t len,
                                   uint64_t off);

#endif
