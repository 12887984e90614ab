/* strata-compactor: the node's leveled compaction, out of the writer's
 * process. The writer owns the MANIFEST; this process reads it (read-only,
 * when the writer says the version changed), picks with the engine's
 * picker, merges the input tables straight from their mmaps into tables of
 * its own under <data_dir>/compaction, and asks the writer to install them
 * (`install_compaction`): the writer checks that the inputs are still live,
 * renames the outputs in and logs one version edit, or refuses and changes
 * nothing. So a kill at any point leaves the version whole; what is left
 * in compaction/ (finished or .tmp) belongs to no version and goes at the
 * next start. One
 * compactor per node, held by a lock on compaction/LOCK. */
#define _GNU_SOURCE
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "router.h"
#include "verbs.h"
#include "strata/client.h"
#include "strata/codec.h"
#include "strata/compaction.h"

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

typedef struct {
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
} comp_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool stopping(comp_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Sleeps up to ns, waking early when the process stops. */
static void nap(comp_t *s, uint64_t ns)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t t = (uint64_t)until.tv_nsec + ns;
    until.tv_sec += (time_t)(t / 1000000000ull);
    until.tv_nsec = (long)(t % 1000000000ull);
    pthread_mutex_lock(&s->mu);
    if (!s->stopping)
        pthread_cond_timedwait(&s->cv, &s->mu, &until);
    pthread_mutex_unlock(&s->mu);
}

/* ---- throttled writes ---------------------------------------------------------
 * Every output byte goes through here, on the worker thread: it keeps the
 * job's bytes written under rate_mb_s and its CPU time under cpu_percent of
 * its wall time, by sleeping. Reads come from mmaps at the merge's pace, so
 * they follow. A stop makes the write fail, which abandons the job. */
static ssize_t throttled_pwrite(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off)
{
    comp_t *s = io->state;
    if (stopping(s))
        return -EINTR;
    strata_io_t *posix = strata_io_posix();
    ssize_t n = posix->pwrite(posix, fd, buf, len, off);
    if (n <= 0)
        return n;
    s->job_written += (uint64_t)n;
    atomic_store(&s->written_now, s->job_written);
    uint64_t wall = now_ns() - s->job_start_ns, wait = 0;
    if (s->rate_bytes_s) {
        uint64_t due = (uint64_t)((double)s->job_written * 1e9 / (double)s->rate_bytes_s);
        if (due > wall)
            wait = due - wall;
    }
    if (s->cpu_percent < 100) {
        uint64_t cpu = thread_cpu_ns() - s->job_cpu0_ns;
        uint64_t due = cpu * 100 / s->cpu_percent;
        if (due > wall && due - wall > wait)
            wait = due - wall;
    }
    /* Short debts are paid later, in one sleep, rather than by a syscall
     * per block. */
    if (wait >= 2000000) {
        nap(s, wait);
        atomic_fetch_add(&s->throttle_ns, wait);
    }
    return n;
}

/* ---- the writer ------------------------------------------------------------- */

/* A failed call drops the connection: a restarted writer may be elsewhere. */
static int writer_call(comp_t *s, strata_request_t *req, strata_reply_t *rep, strata_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = svc_writer_connect(s->writer_file, WRITER_TIMEOUT_MS, &s->writer, err);
    if (rc == 0)
        rc = strata_client_call(s->writer, req, rep, err);
    if (rc && rc != STRATA_EINVAL && rc != STRATA_ESTALE)
        strata_client_destroy(&s->writer);
    return rc;
}

static int writer_control(comp_t *s, const char *verb, const char *const *args, size_t n,
                          strata_reply_t *rep, strata_error_t *err)
{
    strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = verb, .args = args, .n_args = n};
    return writer_call(s, &req, rep, err);
}

typedef struct {
    uint64_t generation, smallest_snapshot;
    bool internal; /* the writer compacts in a thread of its own */
} writer_state_t;

/* With wait, the writer answers when its version is no longer `have`, or
 * after STATE_WAIT_MS. */
static int writer_state(comp_t *s, bool wait, uint64_t have, writer_state_t *st,
                        strata_error_t *err)
{
    char gen[32], ms[16];
    snprintf(gen, sizeof gen, "%" PRIu64, have);
    snprintf(ms, sizeof ms, "%d", STATE_WAIT_MS);
    const char *args[] = {gen, ms};
    strata_reply_t rep;
    int rc = writer_control(s, "compaction_state", args, wait ? 2 : 0, &rep, err);
    if (rc == 0) {
        const char *g = svc_reply_get(&rep, "generation"),
                   *snap = svc_reply_get(&rep, "smallest_snapshot");
        if (!g || !snap)
            rc = strata_error_set(err, STRATA_EIO,
                                  "the writer's compaction_state reply lacks "
                                  "generation or smallest_snapshot");
        else {
            st->generation = strtoull(g, NULL, 10);
            st->smallest_snapshot = strtoull(snap, NULL, 10);
            const char *mode = svc_reply_get(&rep, "compaction");
            st->internal = mode && !strcmp(mode, "internal");
        }
    }
    strata_reply_clear(&rep);
    return rc;
}

/* ---- one compaction ------------------------------------------------------------ */

static void set_state(comp_t *s, const char *state)
{
    pthread_mutex_lock(&s->mu);
    s->state = state;
    pthread_mutex_unlock(&s->mu);
}

static void output_name(char *buf, size_t cap, const char *prefix, uint64_t number)
{
    snprintf(buf, cap, "%s-%" PRIu64 ".sst", prefix, number);
}

typedef struct {
    uint64_t bytes_read, bytes_written, tables;
} job_result_t;

/* Hands the finished job to the writer as one install_compaction message. */
static int install(comp_t *s, const strata_compaction_job_t *job, const char *prefix,
                   uint64_t cpu_ns, strata_error_t *err)
{
    int level = strata_compaction_job_level(job);
    size_t n0 = strata_compaction_job_inputs(job, 0), n1 = strata_compaction_job_inputs(job, 1);
    size_t n_out = strata_compaction_job_outputs(job);
    uint64_t *numbers = calloc(n0 + n1 + 1, sizeof *numbers);
    char **outputs = calloc(n_out + 1, sizeof *outputs);
    char *names = calloc(n_out + 1, 96);
    int rc = 0;
    if (!numbers || !outputs || !names)
        rc = strata_error_set(err, STRATA_ENOMEM, "install of an L%d compaction: out of memory",
                              level);
    for (int w = 0; rc == 0 && w < 2; w++)
        for (size_t i = 0; i < (w ? n1 : n0); i++) {
            strata_table_info_t t;
            strata_compaction_job_input(job, w, i, &t);
            numbers[(w ? n0 : 0) + i] = t.number;
        }
    for (size_t i = 0; rc == 0 && i < n_out; i++) {
        outputs[i] = names + i * 96;
        output_name(outputs[i], 96, prefix, strata_compaction_job_output(job, i));
    }
    if (rc == 0) {
        strata_install_t msg = {.level = (uint32_t)level,
                                .inputs = {numbers, numbers + n0},
                                .n_inputs = {n0, n1},
                                .outputs = (const char *const *)outputs,
                                .n_outputs = n_out,
                                .cpu_ns = cpu_ns};
        strata_request_t req = {
            .op = STRATA_OP_CONTROL, .verb = "install_compaction", .install = &msg};
        strata_reply_t rep;
        rc = writer_call(s, &req, &rep, err);
        strata_reply_clear(&rep);
    }
    free(numbers);
    free(outputs);
    free(names);
    return rc;
}

/* Merges job into compaction/ and has the writer install it. Whatever
 * does not end up installed is removed here. STRATA_ESTALE: the writer's
 * version moved on under it; nothing changed. */
static int run_one(comp_t *s, strata_compaction_job_t *job, uint64_t smallest_snapshot,
                   job_result_t *res, strata_error_t *err)
{
    memset(res, 0, sizeof *res);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%d-%" PRIu64, (int)getpid(), ++s->jobs);
    int level = strata_compaction_job_level(job);
    size_t n_in[2] = {strata_compaction_job_inputs(job, 0), strata_compaction_job_inputs(job, 1)};
    uint64_t in_entries = 0, in_bytes = 0;
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < n_in[w]; i++) {
            strata_table_info_t t;
            strata_compaction_job_input(job, w, i, &t);
            in_entries += t.entries;
            in_bytes += t.size;
        }
    pthread_mutex_lock(&s->mu);
    s->state = "compacting";
    s->current = job;
    s->current_entries = in_entries;
    s->current_bytes = in_bytes;
    s->current_level = level;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->busy, true);
    s->job_start_ns = now_ns();
    s->job_cpu0_ns = thread_cpu_ns();
    s->job_written = 0;
    atomic_store(&s->written_now, 0);

    strata_compaction_stats_t cs = {0};
    int rc =
        strata_compaction_job_run(job, &s->copts, s->work_dir, prefix, smallest_snapshot, &cs, err);
    uint64_t cpu = thread_cpu_ns() - s->job_cpu0_ns;
    pthread_mutex_lock(&s->mu);
    s->current = NULL;
    s->state = "installing";
    pthread_mutex_unlock(&s->mu);

    if (rc == 0)
        rc = install(s, job, prefix, cpu, err);
    /* Installed outputs were renamed away; the rest are ours to remove. */
    size_t n_out = strata_compaction_job_outputs(job);
    for (size_t i = 0; i < n_out; i++) {
        char name[96], path[PATH_MAX + 128];
        output_name(name, sizeof name, prefix, strata_compaction_job_output(job, i));
        snprintf(path, sizeof path, "%s/%s", s->work_dir, name);
        if (rc != 0)
            unlink(path);
    }
    if (rc == 0) {
        res->bytes_read = cs.bytes_read;
        res->bytes_written = cs.bytes_written;
        res->tables = cs.tables_written;
        atomic_fetch_add(&s->compactions, 1);
        atomic_fetch_add(&s->bytes_read, cs.bytes_read);
        atomic_fetch_add(&s->bytes_written, cs.bytes_written);
        log_info("event=compaction level=%d inputs=%zu+%zu outputs=%zu read=%" PRIu64
                 " written=%" PRIu64 " entries_in=%" PRIu64 " dropped=%" PRIu64
                 " cpu_ms=%.1f ms=%.1f",
                 level, n_in[0], n_in[1], n_out, cs.bytes_read, cs.bytes_written, cs.entries_in,
                 cs.entries_dropped, (double)cpu / 1e6, (double)(now_ns() - s->job_start_ns) / 1e6);
    } else if (rc == STRATA_ESTALE) {
        atomic_fetch_add(&s->stale, 1);
        log_info("event=compaction_stale level=%d reason=\"%s\"", level, err->msg);
    } else if (!stopping(s)) {
        atomic_fetch_add(&s->failures, 1);
        log_warning("event=compaction_failed level=%d error=\"%s\"", level, err->msg);
    }
    atomic_fetch_add(&s->cpu_ns, cpu);
    atomic_store(&s->busy, false);
    set_state(s, "idle");
    return rc;
}

static int open_tables(comp_t *s, strata_tables_t **tables, strata_error_t *err)
{
    return strata_tables_open(s->data_dir, &s->topts, tables, err);
}

/* ---- manual compactions ---------------------------------------------------------- */

static void manual_finish(comp_t *s, int rc, const char *message)
{
    pthread_mutex_lock(&s->mu);
    s->manual_state = rc ? "failed" : "done";
    snprintf(s->manual_error, sizeof s->manual_error, "%s", rc ? message : "");
    pthread_mutex_unlock(&s->mu);
    if (rc)
        log_warning("event=manual_compaction_failed id=%" PRIu64 " error=\"%s\"", s->manual_id,
                    message);
    else
        log_info("event=manual_compaction_done id=%" PRIu64 " compactions=%" PRIu64
                 " bytes=%" PRIu64,
                 s->manual_id, s->manual_compactions, s->manual_done_bytes);
}

/* Compacts the range level by level: one level into the next with
 * --level, else from L0 down to the deepest level that holds any of it.
 * L1+ goes MANUAL_CHUNK_FILES files at a time until the level has none of
 * the range left; L0 goes whole, once (under writes it never empties). */
static void manual_run(comp_t *s, const manual_t *m)
{
    strata_error_t err;
    strata_error_clear(&err);
    strata_tables_t *tables = NULL;
    int rc = open_tables(s, &tables, &err);
    if (rc)
        return manual_finish(s, rc, err.msg);
    const char *lo = m->has_lo ? m->lo : NULL, *hi = m->has_hi ? m->hi : NULL;
    size_t lo_len = m->has_lo ? strlen(m->lo) : 0, hi_len = m->has_hi ? strlen(m->hi) : 0;
    int from = m->level >= 0 ? m->level : 0, to = m->level >= 0 ? m->level + 1 : 1;
    uint64_t total = 0;
    for (int l = 0; l < STRATA_COMPACTION_LEVELS; l++) {
        uint64_t bytes = 0;
        if (!strata_tables_in_range(tables, l, lo, lo_len, hi, hi_len, &bytes))
            continue;
        if (m->level < 0 && l > to)
            to = l;
        if (l >= from && (m->level < 0 || l == m->level))
            total += bytes;
    }
    if (to > STRATA_COMPACTION_LEVELS - 1)
        to = STRATA_COMPACTION_LEVELS - 1;
    strata_tables_close(&tables);
    pthread_mutex_lock(&s->mu);
    s->manual_total_bytes = total;
    pthread_mutex_unlock(&s->mu);

    for (int level = from; level < to && rc == 0; level++) {
        pthread_mutex_lock(&s->mu);
        snprintf(s->manual_step, sizeof s->manual_step, "L%d->L%d", level, level + 1);
        pthread_mutex_unlock(&s->mu);
        int stale = 0;
        for (bool more = true; more && rc == 0 && !stopping(s);) {
            writer_state_t st;
            if ((rc = writer_state(s, false, 0, &st, &err)) || (rc = open_tables(s, &tables, &err)))
                break;
            strata_compaction_job_t *c = NULL;
            rc = strata_compaction_job_pick_range(tables, level, lo, lo_len, hi, hi_len,
                                                  MANUAL_CHUNK_FILES, &c);
            if (rc)
                strata_error_set(&err, rc, "picking L%d: %s", level, strata_strerror(rc));
            job_result_t res;
            if (rc == 0 && c)
                rc = run_one(s, c, st.smallest_snapshot, &res, &err);
            more = c && level > 0;
            strata_compaction_job_free(&c);
            strata_tables_close(&tables);
            if (rc == STRATA_ESTALE && ++stale < MAX_STALE_RETRIES) {
                rc = 0;
                more = true;
                continue;
            }
            if (rc == 0) {
                pthread_mutex_lock(&s->mu);
                s->manual_done_bytes += res.bytes_read;
                s->manual_compactions += res.tables || res.bytes_read ? 1 : 0;
                pthread_mutex_unlock(&s->mu);
            }
        }
    }
    if (rc == 0 && stopping(s))
        rc = strata_error_set(&err, STRATA_ECLOSED, "the compactor is stopping");
    manual_finish(s, rc, err.msg);
}

/* ---- the worker ----------------------------------------------------------------- */

static bool take_manual(comp_t *s, manual_t *m)
{
    pthread_mutex_lock(&s->mu);
    bool have = s->has_pending;
    if (have) {
        *m = s->pending;
        s->has_pending = false;
        s->manual_id = m->id;
        s->manual_state = "running";
        s->manual_step[0] = '\0';
        s->manual_error[0] = '\0';
        s->manual_done_bytes = s->manual_total_bytes = s->manual_compactions = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return have;
}

static void *worker_main(void *arg)
{
    comp_t *s = arg;
    uint64_t seen = UINT64_MAX; /* generation last found with nothing to do */
    bool idle_logged = false, internal_logged = false;
    while (!stopping(s)) {
        manual_t m;
        if (take_manual(s, &m)) {
            manual_run(s, &m);
            seen = UINT64_MAX;
            continue;
        }
        strata_error_t err;
        strata_error_clear(&err);
        writer_state_t st;
        int rc = writer_state(s, seen != UINT64_MAX, seen, &st, &err);
        if (rc) {
            if (!idle_logged)
                log_warning("event=writer_unreachable error=\"%s\" hint=\"retrying every "
                            "second\"",
                            err.msg);
            idle_logged = true;
            set_state(s, "no_writer");
            nap(s, 1000000000ull);
            seen = UINT64_MAX;
            continue;
        }
        if (idle_logged)
            log_info("event=writer_reachable generation=%" PRIu64, st.generation);
        idle_logged = false;
        set_state(s, "idle");
        if (st.generation == seen)
            continue; /* the wait ran out with nothing new */
        if (st.internal) {
            /* Two pickers would only refuse each other's work; manual
             * requests still run (the writer refuses what went stale). */
            if (!internal_logged)
                log_warning("event=writer_compacts_itself hint=\"writer/compaction = internal: "
                            "only manual compactions run here\"");
            internal_logged = true;
            seen = st.generation;
            continue;
        }
        internal_logged = false;
        strata_tables_t *tables = NULL;
        if ((rc = open_tables(s, &tables, &err)) != 0) {
            log_warning("event=manifest_read_failed error=\"%s\"", err.msg);
            nap(s, 1000000000ull);
            continue;
        }
        strata_compaction_job_t *c = NULL;
        rc = strata_compaction_job_pick(tables, &s->copts, s->cursor, &c);
        job_result_t res;
        if (rc == 0 && c)
            rc = run_one(s, c, st.smallest_snapshot, &res, &err);
        else if (rc)
            log_warning("event=pick_failed error=\"%s\"", strata_strerror(rc));
        /* Nothing to do at this generation: wait for the next. After a
         * compaction the writer's generation moved, so look again now. */
        seen = c || rc ? UINT64_MAX : st.generation;
        strata_compaction_job_free(&c);
        strata_tables_close(&tables);
        if (rc && rc != STRATA_ESTALE && !stopping(s))
            nap(s, 1000000000ull); /* a failing disk is not retried in a spin */
    }
    return NULL;
}

/* ---- requests ------------------------------------------------------------------ */

static void send_error(comp_t *s, zframe_t *identity, bool delimited, uint64_t request_id, int code,
                       const char *text)
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

static void reply_progress(comp_t *s, zframe_t *identity, bool delimited, uint64_t request_id)
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
    comp_t *s;
    zframe_t *identity;
    bool delimited;
    const strata_request_t *req;
} call_t;

static void verb_compact(void *arg)
{
    call_t *c = arg;
    comp_t *s = c->s;
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

/* ---- metrics, start-up, main ----------------------------------------------------- */

static void write_metrics(void *arg, FILE *out)
{
    comp_t *s = arg;
    prom_counter(out, "compactions_total", "compactions installed by the writer",
                 atomic_load(&s->compactions));
    prom_counter(out, "compactions_stale_total",
                 "compactions the writer refused because its version moved on",
                 atomic_load(&s->stale));
    prom_counter(out, "compaction_failures_total", "compactions that failed",
                 atomic_load(&s->failures));
    prom_counter(out, "compaction_read_bytes_total", "input table bytes of installed compactions",
                 atomic_load(&s->bytes_read));
    prom_counter(out, "compaction_written_bytes_total", "output table bytes installed",
                 atomic_load(&s->bytes_written));
    prom_gauge(out, "compaction_cpu_seconds_total", "CPU time spent merging",
               (double)atomic_load(&s->cpu_ns) / 1e9);
    prom_gauge(out, "compaction_throttle_seconds_total",
               "time slept to keep to rate_mb_s and cpu_percent",
               (double)atomic_load(&s->throttle_ns) / 1e9);
    prom_gauge(out, "compaction_running", "1 while a compaction runs", atomic_load(&s->busy));
}

static bool is_ready(void *arg)
{
    return atomic_load(&((comp_t *)arg)->ready);
}

static int write_endpoints(comp_t *s, strata_error_t *err)
{
    strata_pair_t pairs[] = {{"endpoint", s->endpoint}, {"metrics", s->metrics_url}};
    return svc_write_endpoints(s->endpoints_file, "compactor", pairs, 2, err);
}

/* Takes compaction/LOCK and removes every table a killed compactor left:
 * none of them is in any version (the writer renames a table out of here
 * before its MANIFEST names it). */
static int claim_work_dir(comp_t *s, strata_error_t *err)
{
    if (mkdir(s->work_dir, 0755) != 0 && errno != EEXIST)
        return strata_error_set(err, STRATA_EIO, "mkdir %s: %s", s->work_dir, strerror(errno));
    char lock[PATH_MAX + 32];
    snprintf(lock, sizeof lock, "%s/LOCK", s->work_dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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

static int load(comp_t *s, strata_error_t *err)
{
    uint64_t l0, l1_mb, target_mb, rate_mb;
    bool lz4;
    int rc;
    if ((rc = svc_config_u64(s->cfg, "compactor/l0_trigger", &l0, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/level1_mb", &l1_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/target_file_mb", &target_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/rate_mb_s", &rate_mb, err)) ||
        (rc = svc_config_u64(s->cfg, "compactor/cpu_percent", &s->cpu_percent, err)) ||
        (rc = svc_config_bool(s->cfg, "writer/lz4", &lz4, err)))
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
    s->io.pwrite = throttled_pwrite;
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

int compactor_main(const char *default_config, const char *config_file, bool print_config)
{
    int rc;
    static comp_t comp;
    comp_t *s = &comp;
    s->lock_fd = -1;
    s->state = "idle";
    s->manual_state = "none";
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
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
        fprintf(stderr, "strata-compactor: %s\n", err.msg);
        svc_config_destroy(&s->cfg);
        return 2;
    }
    zsys_init();
    zloop_t *loop = NULL;
    if ((rc = svc_log_init("strata-compactor", svc_config_get(s->cfg, "log/level"), &err)))
        goto fail;
    const char *dir = svc_config_get(s->cfg, "node/data_dir");
    if (!realpath(dir, s->data_dir)) {
        rc = strata_error_set(&err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)",
                              dir, strerror(errno));
        goto fail;
    }
    snprintf(s->work_dir, sizeof s->work_dir, "%.4000s/compaction", s->data_dir);
    snprintf(s->writer_file, sizeof s->writer_file, "%.4000s/writer.endpoints", s->data_dir);
    snprintf(s->endpoints_file, sizeof s->endpoints_file, "%.4000s/compactor.endpoints",
             s->data_dir);
    if ((rc = claim_work_dir(s, &err)))
        goto fail;
    const char *ep = svc_config_get(s->cfg, "compactor/endpoint");
    char bind_ep[PATH_MAX + 32];
    if (*ep)
        snprintf(bind_ep, sizeof bind_ep, "%s", ep);
    else
        snprintf(bind_ep, sizeof bind_ep, "ipc://%.4000s/compactor.ctl", s->data_dir);
    s->router = zsock_new(ZMQ_ROUTER);
    if (!s->router || zsock_bind(s->router, "%s", bind_ep) < 0) {
        rc = strata_error_set(&err, STRATA_EIO, "compactor/endpoint: cannot bind %s", bind_ep);
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
    if (s->http)
        snprintf(s->metrics_url, sizeof s->metrics_url, "http://%.*s:%u/metrics",
                 (int)(strrchr(metrics, ':') - metrics), metrics, http_port);
    else
        snprintf(s->metrics_url, sizeof s->metrics_url, "off");
    if ((rc = write_endpoints(s, &err)))
        goto fail;
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        rc = strata_error_set(&err, STRATA_ENOMEM, "cannot start the worker thread");
        goto fail;
    }
    s->worker_running = true;
    loop = zloop_new();
    zloop_reader(loop, s->router, on_request, s);
    zloop_timer(loop, 100, 0, svc_interrupt_tick, NULL);
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
    rc = 0;
    goto out;
fail:
    log_error("event=start_failed error=\"%s\"", err.msg);
    fprintf(stderr, "strata-compactor: %s\n", err.msg);
    rc = 1;
out:
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_running)
        pthread_join(s->worker, NULL);
    if (rc == 0)
        unlink(s->endpoints_file);
    strata_compaction_cursor_free(&s->cursor);
    svc_http_stop(&s->http);
    strata_client_destroy(&s->writer);
    zsock_destroy(&s->router);
    svc_config_destroy(&s->cfg);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (rc == 0)
        log_info("event=stopped");
    return rc;
}
