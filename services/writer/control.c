/* Control verbs: the table, its handlers, and the compactor's
 * compaction_state and install_compaction. */
#define _GNU_SOURCE
#include "verbs.h"
#include "writer.h"

static void ctl_ping(void *call)
{
    ctx_t *c = call;
    strata_pair_t pairs[] = {{"pong", "1"}, {"version", WRITER_VERSION}};
    pairs_t p = {pairs, NULL, 2, 2};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
}

/* install_compaction carries its job as a message (control.install):
 * OUTPUTS name tables in <data_dir>/compaction, the compactor's own
 * directory, by bare name, so that the rename cannot be pointed anywhere
 * else. The job thread outlives the request, so the lists are copied. */
static int parse_install(writer_t *w, job_t *job, const strata_request_t *req, char *why,
                         size_t cap)
{
    const strata_install_t *in = req->install;
    if (!in) {
        snprintf(why, cap, "control.install: absent (install_compaction takes its job there)");
        return -1;
    }
    if (in->level > 5) {
        snprintf(why, cap, "control.install.level: %u is not 0..5", in->level);
        return -1;
    }
    job->install.level = (int)in->level;
    size_t n0 = in->n_inputs[0], n1 = in->n_inputs[1];
    /* One allocation holds both lists, for job_free. */
    job->numbers = calloc(n0 + n1 + 1, sizeof *job->numbers);
    job->outputs = calloc(in->n_outputs + 1, sizeof *job->outputs);
    if (!job->numbers || !job->outputs) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    if (n0)
        memcpy(job->numbers, in->inputs[0], n0 * sizeof *job->numbers);
    if (n1)
        memcpy(job->numbers + n0, in->inputs[1], n1 * sizeof *job->numbers);
    job->install.inputs[0] = job->numbers;
    job->install.inputs[1] = job->numbers + n0;
    job->install.n_inputs[0] = n0;
    job->install.n_inputs[1] = n1;
    job->install.cpu_ns = in->cpu_ns;
    for (size_t i = 0; i < in->n_outputs; i++) {
        const char *name = in->outputs[i];
        size_t len = strlen(name);
        if (len < 5 || len > 64 || strchr(name, '/') || name[0] == '.' ||
            strcmp(name + len - 4, ".sst")) {
            snprintf(why, cap,
                     "control.install.outputs[%zu]: '%.80s' is not a table name in compaction/", i,
                     name);
            return -1;
        }
        if (asprintf(&job->outputs[i], "%s/compaction/%s", w->data_dir, name) < 0) {
            job->outputs[i] = NULL;
            snprintf(why, cap, "out of memory");
            return -1;
        }
        job->install.n_outputs = i + 1;
    }
    job->install.outputs = (const char *const *)job->outputs;
    return 0;
}

static void ctl_job(void *call)
{
    ctx_t *c = call;
    writer_t *w = c->w;
    if (w->jobs_running >= MAX_JOBS ||
        (!c->from_control && w->client_jobs_running >= MAX_CLIENT_JOBS))
        return reply_error(c, STRATA_EBUSY,
                           "control %s: %d jobs running (cap %d, %d from the client endpoint); "
                           "retry when one finishes",
                           c->req->verb, w->jobs_running, MAX_JOBS, MAX_CLIENT_JOBS);
    job_t *job = calloc(1, sizeof *job);
    if (!job)
        return reply_error(c, STRATA_ENOMEM, "out of memory");
    job->w = w;
    job->sock = c->sock;
    job->request_id = c->req->request_id;
    job->start_ns = now_ns();
    snprintf(job->verb, sizeof job->verb, "%s", c->req->verb);
    if (!strcmp(job->verb, "checkpoint")) {
        const char *dest = c->req->args[0];
        /* Hard links need the same file system, and a relative path would
         * depend on the writer's working directory. */
        if (dest[0] != '/' || strlen(dest) >= sizeof job->arg - 8) {
            free(job);
            return reply_error(c, STRATA_EINVAL,
                               "control checkpoint: '%s' is not an absolute path under %zu bytes",
                               dest, sizeof job->arg - 8);
        }
        snprintf(job->arg, sizeof job->arg, "%s", dest);
    } else if (!strcmp(job->verb, "truncate_wal")) {
        char *end = NULL;
        errno = 0;
        job->arg_seq = strtoull(c->req->args[0], &end, 10);
        if (errno || end == c->req->args[0] || *end || c->req->args[0][0] == '-') {
            free(job);
            return reply_error(c, STRATA_EINVAL, "control truncate_wal: '%s' is not a seq",
                               c->req->args[0]);
        }
        job->arg_seq = consensus_truncate_floor(c->w, job->arg_seq);
    } else if (!strcmp(job->verb, "install_compaction")) {
        char why[256];
        if (parse_install(c->w, job, c->req, why, sizeof why) != 0) {
            job_free(job);
            return reply_error(c, STRATA_EINVAL, "%s", why);
        }
    }
    job->from_client = !c->from_control;
    if (pthread_create(&job->thread, NULL, job_main, job) != 0) {
        job_free(job);
        return reply_error(c, STRATA_ENOMEM, "cannot start a thread for %s", c->req->verb);
    }
    job->envelope = ctx_envelope(c); /* read only when the job reports back, on this thread */
    c->w->jobs_running++;
    c->w->client_jobs_running += job->from_client;
    log_info("event=%s_start", job->verb);
}

static void state_reply(writer_t *w, zsock_t *sock, zmsg_t **envelope, uint64_t request_id)
{
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(w->db, &generation, &smallest);
    char gen[32], snap[32];
    snprintf(gen, sizeof gen, "%" PRIu64, generation);
    snprintf(snap, sizeof snap, "%" PRIu64, smallest);
    strata_pair_t pairs[] = {{"generation", gen},
                             {"smallest_snapshot", snap},
                             {"data_dir", w->data_dir},
                             {"compaction", w->external_compaction ? "compactor" : "internal"}};
    strata_reply_t rep = {.request_id = request_id,
                          .op = STRATA_OP_CONTROL,
                          .pairs = pairs,
                          .n_pairs = sizeof pairs / sizeof pairs[0]};
    send_reply(w, sock, envelope, &rep);
}

/* compaction_state [GENERATION WAIT_MS]: with a generation, the reply waits
 * (up to WAIT_MS, at most 10 s) until the version is no longer that one. */
static void ctl_compaction_state(void *call)
{
    ctx_t *c = call;
    uint64_t have = 0, wait_ms = 0;
    if (c->req->n_args == 2) {
        char *end1 = NULL, *end2 = NULL;
        have = strtoull(c->req->args[0], &end1, 10);
        wait_ms = strtoull(c->req->args[1], &end2, 10);
        if (end1 == c->req->args[0] || *end1 || end2 == c->req->args[1] || *end2)
            return reply_error(c, STRATA_EINVAL,
                               "control compaction_state: GENERATION and WAIT_MS are numbers");
        if (wait_ms > 10000)
            wait_ms = 10000;
    } else if (c->req->n_args != 0) {
        return reply_error(c, STRATA_EINVAL,
                           "control compaction_state: takes no args or GENERATION WAIT_MS");
    }
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(c->w->db, &generation, &smallest);
    state_waiter_t *waiter = wait_ms && generation == have ? calloc(1, sizeof *waiter) : NULL;
    if (!waiter) {
        zmsg_t *envelope = ctx_envelope(c);
        return state_reply(c->w, c->sock, &envelope, c->req->request_id);
    }
    waiter->sock = c->sock;
    waiter->envelope = ctx_envelope(c);
    waiter->request_id = c->req->request_id;
    waiter->generation = have;
    waiter->deadline_ns = now_ns() + wait_ms * 1000000;
    waiter->next = c->w->state_waiters;
    c->w->state_waiters = waiter;
}

/* Answers the held compaction_state requests whose version moved on or
 * whose wait is over (all of them when everything is). */
void release_state_waiters(writer_t *w, bool everything)
{
    uint64_t generation = 0, smallest = 0;
    strata_db_compaction_state(w->db, &generation, &smallest);
    uint64_t now = now_ns();
    state_waiter_t **pp = &w->state_waiters;
    while (*pp) {
        state_waiter_t *waiter = *pp;
        if (everything || waiter->generation != generation || now >= waiter->deadline_ns) {
            *pp = waiter->next;
            state_reply(w, waiter->sock, &waiter->envelope, waiter->request_id);
            free(waiter);
        } else {
            pp = &waiter->next;
        }
    }
}

/* With the compaction in another process, a stopped or slow compactor
 * shows as L0 growing: reads get slower, writes go on. Said once when it
 * starts, again each time it doubles, and when it clears. */
void watch_l0(writer_t *w)
{
    if (!w->external_compaction)
        return;
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    uint64_t l0 = st.level_files[0];
    enum { L0_BACKLOG = 12 }; /* three times the compaction trigger */
    if (l0 >= L0_BACKLOG && (w->l0_warned == 0 || l0 >= 2 * w->l0_warned)) {
        log_warning("event=l0_backlog l0_files=%" PRIu64 " hint=\"is strata-compactor running? "
                    "writes go on, reads slow down\"",
                    l0);
        w->l0_warned = l0;
    } else if (l0 < L0_BACKLOG / 2 && w->l0_warned) {
        log_info("event=l0_backlog_cleared l0_files=%" PRIu64, l0);
        w->l0_warned = 0;
    }
}

static void ctl_config(void *call)
{
    ctx_t *c = call;
    static const char *const keys[] = {"node/name",
                                       "node/data_dir",
                                       "writer/endpoint",
                                       "writer/control",
                                       "writer/memtable_mb",
                                       "writer/max_immutable_memtables",
                                       "writer/sync_interval_ms",
                                       "writer/wal_segment_mb",
                                       "writer/lz4",
                                       "writer/wal_truncation",
                                       "writer/compaction",
                                       "writer/scan_limit",
                                       "writer/metrics",
                                       "log/level",
                                       "log/format"};
    enum { N = sizeof keys / sizeof keys[0] };
    strata_pair_t pairs[N + 3];
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
        pairs[n++] = (strata_pair_t){keys[i], svc_config_get(c->w->cfg, keys[i])};
    pairs[n++] = (strata_pair_t){"effective/endpoint", c->w->endpoint};
    pairs[n++] = (strata_pair_t){"effective/control", c->w->control_ep};
    pairs[n++] = (strata_pair_t){"effective/metrics", c->w->metrics_url};
    pairs_t p = {pairs, NULL, n, n};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
}

static void ctl_terminate(void *call)
{
    ctx_t *c = call;
    strata_pair_t pairs[] = {{"terminating", "1"}};
    pairs_t p = {pairs, NULL, 1, 1};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
    c->w->terminating = true;
}

/* Leadership transfer (raft.md R8): answered once the core has taken it;
 * the new master shows in status within an election timeout. */
static void ctl_transfer(void *call)
{
    ctx_t *c = call;
    uint32_t to = 0;
    char why[256];
    if (!strcmp(c->req->verb, "transfer")) {
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(c->req->args[0], &end, 10);
        if (errno || end == c->req->args[0] || *end || v < 1 || v > 255)
            return reply_error(c, STRATA_EINVAL, "control transfer: '%s' is not a node id 1..255",
                               c->req->args[0]);
        to = (uint32_t)v;
    }
    int rc = consensus_transfer(c->w, &to, why, sizeof why);
    if (rc)
        return reply_error(c, rc, "control %s: %s", c->req->verb, why);
    char target[16];
    snprintf(target, sizeof target, "%u", to);
    strata_pair_t pairs[] = {{"verb", c->req->verb}, {"to", target}};
    pairs_t p = {pairs, NULL, 2, 2};
    reply_pairs(c, STRATA_OP_CONTROL, &p);
}

static const svc_verb_t verbs[] = {
    {"ping", 0, 0, false, ctl_ping, "liveness and version"},
    {"config", 0, 0, false, ctl_config, "effective configuration"},
    {"flush", 0, 0, false, ctl_job, "write the memtable to L0 and wait"},
    {"compact", 0, 0, false, ctl_job, "compact every level over its limit and wait"},
    {"checkpoint", 1, 1, true, ctl_job,
     "DEST: flush, then write a checkpoint (hard links and a MANIFEST) to DEST"},
    {"truncate_wal", 1, 1, true, ctl_job,
     "SEQ: delete WAL segments wholly below SEQ and the flushed seq, outside retention"},
    {"compaction_state", 0, 2, true, ctl_compaction_state,
     "[GENERATION WAIT_MS]: version generation and oldest snapshot; waits for a change"},
    {"install_compaction", 0, 0, true, ctl_job,
     "(job in control.install): install a compactor's result as one version edit"},
    {"terminate", 0, 0, true, ctl_terminate, "graceful shutdown (control endpoint only)"},
    {"transfer", 1, 1, false, ctl_transfer,
     "NODE: hand the master's office to NODE once it has caught up (cluster master only)"},
    {"step_down", 0, 0, false, ctl_transfer,
     "hand the master's office to the most up-to-date other voter (cluster master only)"},
};

void handle_control(ctx_t *c)
{
    char why[512];
    /* With CURVE, a TCP client's key says what it may do: any key the
     * liveness and config verbs, only an admin key the rest. */
    if (c->w->curve && !c->from_control && strcmp(c->req->verb, "ping") &&
        strcmp(c->req->verb, "config") && (!c->role || strcmp(c->role, "admin")))
        return reply_error(c, STRATA_EPERM, "control %s: needs the admin role; this key's is %s",
                           c->req->verb, c->role ? c->role : "unknown");
    if (!svc_verbs_dispatch(verbs, sizeof verbs / sizeof verbs[0], c->req, c->from_control, c, why,
                            sizeof why))
        reply_error(c, STRATA_EINVAL, "%s", why);
}
