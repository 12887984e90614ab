/* The compactor's worker thread: it waits for the writer's version to
 * change, picks, merges with throttled writes, and has the writer install
 * the result; manual requests from the control endpoint go first. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compactor.h"
#include "log.h"
#include "node.h"
#include "strata/codec.h"

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

static bool stopping(compactor_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Sleeps up to ns, waking early when the process stops. */
static void nap(compactor_t *s, uint64_t ns)
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
ssize_t compactor_throttled_pwrite(strata_io_t *io, int fd, const void *buf, size_t len,
                                   uint64_t off)
{
    compactor_t *s = io->state;
    /* Not EINTR, which strata_io_pwrite_all retries: a stop during a job's
     * write spun there for ever, and the process never exited. */
    if (stopping(s))
        return -ECANCELED;
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
static int writer_call(compactor_t *s, strata_request_t *req, strata_reply_t *rep,
                       strata_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = svc_writer_connect(s->writer_file, WRITER_TIMEOUT_MS, &s->writer, err);
    if (rc == 0)
        rc = strata_client_call(s->writer, req, rep, err);
    if (rc && rc != STRATA_EINVAL && rc != STRATA_ESTALE)
        strata_client_destroy(&s->writer);
    return rc;
}

static int writer_control(compactor_t *s, const char *verb, const char *const *args, size_t n,
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
static int writer_state(compactor_t *s, bool wait, uint64_t have, writer_state_t *st,
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

static void set_state(compactor_t *s, const char *state)
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
static int install(compactor_t *s, const strata_compaction_job_t *job, const char *prefix,
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
static int run_one(compactor_t *s, strata_compaction_job_t *job, uint64_t smallest_snapshot,
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
        atomic_fetch_add(&s->failures, 1); /* logged by the caller, which decides what follows */
    }
    atomic_fetch_add(&s->cpu_ns, cpu);
    atomic_store(&s->busy, false);
    set_state(s, "idle");
    return rc;
}

static int open_tables(compactor_t *s, strata_tables_t **tables, strata_error_t *err)
{
    return strata_tables_open(s->data_dir, &s->topts, tables, err);
}

/* ---- manual compactions ---------------------------------------------------------- */

static void manual_finish(compactor_t *s, int rc, const char *message)
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
static void manual_run(compactor_t *s, const manual_t *m)
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

static bool take_manual(compactor_t *s, manual_t *m)
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

void *compactor_worker(void *arg)
{
    compactor_t *s = arg;
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
            if (svc_episode_failed(&s->work_failing, rc))
                log_warning("event=manifest_read_failed error=\"%s\"", err.msg);
            nap(s, 1000000000ull);
            continue;
        }
        strata_compaction_job_t *c = NULL;
        rc = strata_compaction_job_pick(tables, &s->copts, s->cursor, &c);
        int level = c ? strata_compaction_job_level(c) : -1;
        job_result_t res;
        if (rc == 0 && c)
            rc = run_one(s, c, st.smallest_snapshot, &res, &err);
        /* Nothing to do at this generation: wait for the next. After a
         * compaction the writer's generation moved, so look again now. */
        seen = c || rc ? UINT64_MAX : st.generation;
        strata_compaction_job_free(&c);
        strata_tables_close(&tables);
        if (rc && rc != STRATA_ESTALE && !stopping(s)) {
            bool news = svc_episode_failed(&s->work_failing, rc);
            if (news && level >= 0)
                log_warning("event=compaction_failed level=%d error=\"%s\"", level, err.msg);
            else if (news)
                log_warning("event=pick_failed error=\"%s\"", strata_strerror(rc));
            nap(s, 1000000000ull); /* a failing disk is not retried in a spin */
        } else if (!rc || rc == STRATA_ESTALE) {
            uint64_t failures = svc_episode_cleared(&s->work_failing);
            if (failures)
                log_info("event=compaction_recovered failures=%" PRIu64, failures);
        }
    }
    return NULL;
}
