/* See cluster.h. */
#define _GNU_SOURCE
#include "cluster.h"

#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "checkers.h"
#include "strata/client.h"
#include "strata/entry.h"
#include "strata/wal.h"
#include "netns.h"
#include "support.h"

static void nap_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void write_config(ts_cluster_t *cl, ts_member_t *m, bool bootstrap, const int (*ports)[3])
{
    char voters[64] = "", election[512] = "", replicator[512] = "", client[512] = "";
    for (int i = 0; i < cl->n; i++) {
        char item[96];
        snprintf(item, sizeof item, "%s%d", i ? "," : "", i + 1);
        strcat(voters, item);
        const char *host = cl->m[i].host;
        snprintf(item, sizeof item, "%s%d=tcp://%s:%d", i ? "," : "", i + 1, host, ports[i][1]);
        strcat(election, item);
        snprintf(item, sizeof item, "%s%d=tcp://%s:%d", i ? "," : "", i + 1, host, ports[i][2]);
        strcat(replicator, item);
        snprintf(item, sizeof item, "%s%d=tcp://%s:%d", i ? "," : "", i + 1, host, ports[i][0]);
        strcat(client, item);
    }
    FILE *f = fopen(m->cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "node\n    name = node%d\n    data_dir = \"%s\"\n"
            "writer\n    endpoint = \"%s\"\n    metrics = \"127.0.0.1:0\"\n"
            "election\n    metrics = \"127.0.0.1:0\"\n"
            "replicator\n    metrics = \"127.0.0.1:0\"\n"
            "cluster\n    id = %d\n    voters = \"%s\"\n    election_peers = \"%s\"\n"
            "    replicator_peers = \"%s\"\n    client_peers = \"%s\"\n    bootstrap = %s\n",
            m->id, m->data, m->client, m->id, voters, election, replicator, client,
            bootstrap ? "true" : "false");
    fclose(f);
}

/* The ports stay fixed for the cluster's life: peers name them. */
static int s_ports[TS_CLUSTER_MAX][3];

static void start(ts_cluster_t *cl, int n, const char *tag, const char (*ns)[24],
                  const char (*ips)[48])
{
    memset(cl, 0, sizeof *cl);
    cl->n = n;
    cl->root = ts_tempdir(tag);
    /* Each namespace has ports of its own: fixed ones will do there. */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            s_ports[i][k] = ns ? 7400 + 10 * k : ts_free_port();
    for (int i = 0; i < n; i++) {
        ts_member_t *m = &cl->m[i];
        m->id = i + 1;
        snprintf(m->host, sizeof m->host, "%s", ips ? ips[i] : "127.0.0.1");
        snprintf(m->netns, sizeof m->netns, "%s", ns ? ns[i] : "");
    }
    for (int i = 0; i < n; i++) {
        ts_member_t *m = &cl->m[i];
        snprintf(m->root, sizeof m->root, "%s/node%d", cl->root, m->id);
        /* From cl->root, not m->root: GCC's -Wrestrict takes one member of
         * *m written from another as an overlap once ts_member_t is this big. */
        snprintf(m->data, sizeof m->data, "%s/node%d/data", cl->root, m->id);
        snprintf(m->cfg, sizeof m->cfg, "%s/node%d/node.cfg", cl->root, m->id);
        snprintf(m->client, sizeof m->client, "tcp://%s:%d", ips ? ips[i] : "127.0.0.1",
                 s_ports[i][0]);
        ck_assert_int_eq(mkdir(m->root, 0755), 0);
        write_config(cl, m, true, (const int(*)[3])s_ports);
    }
    for (int i = 0; i < n; i++) {
        ts_member_start_writer(&cl->m[i]);
        ts_member_start_election(&cl->m[i]);
        ts_member_start_replicator(&cl->m[i]);
    }
}

void ts_cluster_start(ts_cluster_t *cl, int n, const char *tag)
{
    start(cl, n, tag, NULL, NULL);
}

void ts_cluster_start_netns(ts_cluster_t *cl, int n, const char *tag, const char (*ns)[24],
                            const char (*ips)[48])
{
    start(cl, n, tag, ns, ips);
}

void ts_member_no_bootstrap(ts_cluster_t *cl, ts_member_t *m)
{
    write_config(cl, m, false, (const int(*)[3])s_ports);
}

/* What a start of one of the node's processes runs under: its namespace,
 * and the environment and wrapper its fault fields ask for. */
typedef struct {
    char preload[1024], faketime[64], slowdisk[700], offset[24];
    const char *env[5];
} faults_t;

static const char *const *faults_on(ts_member_t *m, faults_t *f)
{
    memset(f, 0, sizeof *f);
    int n = 0;
    const char *libs[2];
    int n_libs = 0;
    if (m->faketime[0]) {
        libs[n_libs] = ts_libfaketime();
        ck_assert_msg(libs[n_libs] != NULL, "libfaketime is not installed (the Debian package "
                                            "faketime; deploy/install-deps.sh)");
        n_libs++;
        snprintf(f->faketime, sizeof f->faketime, "FAKETIME=%s", m->faketime);
        f->env[n++] = f->faketime;
    }
    if (m->slowdisk) {
        libs[n_libs++] = ts_slowdisk_lib();
        snprintf(m->slowdisk_ctl, sizeof m->slowdisk_ctl, "%s/slowdisk", m->root);
        snprintf(f->slowdisk, sizeof f->slowdisk, "TS_SLOWDISK=%s", m->slowdisk_ctl);
        f->env[n++] = f->slowdisk;
    }
    if (n_libs) {
        snprintf(f->preload, sizeof f->preload, "LD_PRELOAD=%s%s%s", libs[0], n_libs > 1 ? ":" : "",
                 n_libs > 1 ? libs[1] : "");
        f->env[n++] = f->preload;
    }
    f->env[n] = NULL;
    ts_spawn_netns(m->netns);
    snprintf(f->offset, sizeof f->offset, "%ld", m->monotonic_s);
    const char *const timens[] = {"unshare",    "--time",  "--monotonic", f->offset,
                                  "--boottime", f->offset, NULL};
    ts_spawn_wrap(m->monotonic_s ? timens : NULL);
    return f->env;
}

static void faults_off(void)
{
    ts_spawn_netns(NULL);
    ts_spawn_wrap(NULL);
}

void ts_member_start_writer(ts_member_t *m)
{
    faults_t f;
    ts_node_start_config(&m->writer, m->data, m->cfg, faults_on(m, &f));
    faults_off();
}

void ts_member_start_election(ts_member_t *m)
{
    faults_t f;
    ts_relay_start_config(&m->election, "election", m->data, m->cfg, faults_on(m, &f));
    faults_off();
}

void ts_member_start_replicator(ts_member_t *m)
{
    faults_t f;
    ts_relay_start_config(&m->replicator, "replicator", m->data, m->cfg, faults_on(m, &f));
    faults_off();
}

/* Stops the node's replicator, election and writer, those still running. */
static void stop_core(ts_member_t *m)
{
    if (m->replicator.pid > 0)
        ts_relay_stop(&m->replicator);
    if (m->election.pid > 0)
        ts_relay_stop(&m->election);
    if (m->writer.pid > 0)
        ts_node_stop(&m->writer);
}

void ts_member_restart(ts_member_t *m)
{
    stop_core(m);
    ts_member_start_writer(m);
    ts_member_start_election(m);
    ts_member_start_replicator(m);
}

void ts_member_slowdisk(ts_member_t *m, unsigned delay_us)
{
    snprintf(m->slowdisk_ctl, sizeof m->slowdisk_ctl, "%s/slowdisk", m->root);
    ts_slowdisk_set(m->slowdisk_ctl, delay_us);
}

void ts_member_start_distributor(ts_member_t *m)
{
    /* The config names no distributor ports, and every node's distributor
     * shares the host: free ports above the ephemeral range (as node.c
     * picks them), given as the environment overrides. */
    static const char *const ports[] = {"STRATA_DISTRIBUTOR_LIVE=tcp://127.0.0.1:![61000-65535]",
                                        "STRATA_DISTRIBUTOR_DELAYED=tcp://127.0.0.1:![61000-65535]",
                                        "STRATA_DISTRIBUTOR_HISTORY=tcp://127.0.0.1:![61000-65535]",
                                        "STRATA_DISTRIBUTOR_METRICS=127.0.0.1:0", NULL};
    ts_spawn_netns(m->netns);
    ts_dist_start_config(&m->dist, m->data, m->cfg, ports);
    ts_spawn_netns(NULL);
}

void ts_member_start_snapshotter(ts_member_t *m, const char *const *env)
{
    ts_spawn_netns(m->netns);
    ts_snap_start_config(&m->snap, m->data, m->cfg, env);
    ts_spawn_netns(NULL);
}

void ts_member_start_compactor(ts_member_t *m)
{
    ts_spawn_netns(m->netns);
    ts_comp_start_config(&m->comp, m->data, m->cfg, NULL);
    ts_spawn_netns(NULL);
}

void ts_cluster_destroy(ts_cluster_t *cl)
{
    for (int i = 0; i < cl->n; i++) {
        ts_member_t *m = &cl->m[i];
        if (m->snap.pid > 0)
            ts_snap_stop(&m->snap);
        if (m->comp.pid > 0)
            ts_comp_stop(&m->comp);
        if (m->dist.pid > 0)
            ts_dist_stop(&m->dist);
        stop_core(m);
    }
    ts_rmtree(cl->root);
    free(cl->root);
    cl->root = NULL;
}

strata_client_t *ts_member_connect(ts_member_t *m, int timeout_ms)
{
    strata_client_options_t opts = {.endpoint = m->client, .timeout_ms = timeout_ms};
    strata_client_t *c = NULL;
    strata_error_t err;
    return strata_client_connect(&opts, &c, &err) == 0 ? c : NULL;
}

bool ts_member_status(ts_member_t *m, char *role, size_t cap, uint64_t *term)
{
    strata_client_t *c = m->writer.pid > 0 ? ts_member_connect(m, 500) : NULL;
    if (!c)
        return false;
    strata_error_t err;
    strata_reply_t rep;
    bool ok = strata_client_status(c, &rep, &err) == 0;
    if (ok) {
        snprintf(role, cap, "%s", rep.role ? rep.role : "");
        if (term)
            *term = rep.term;
    }
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
    return ok;
}

int ts_cluster_master(ts_cluster_t *cl, unsigned timeout_ms, uint64_t *term)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000;
    do {
        for (int i = 0; i < cl->n; i++) {
            char role[32];
            uint64_t t = 0;
            ts_member_t *m = &cl->m[i];
            if (!ts_member_status(m, role, sizeof role, &t) || strcmp(role, "leader"))
                continue;
            /* Serving: its first entry of the term is committed. */
            strata_client_t *c = ts_member_connect(m, 500);
            strata_error_t err;
            if (!c)
                continue;
            void *value = NULL;
            size_t len = 0;
            int rc = strata_client_get(c, "?", 1, &value, &len, &err);
            free(value);
            strata_client_destroy(&c);
            if (rc == 0 || rc == STRATA_ENOTFOUND) {
                if (term)
                    *term = t;
                return m->id;
            }
        }
        nap_ms(20); /* polling the nodes' roles with a deadline */
    } while (ts_now_ns() < deadline);
    return 0;
}

static bool figures(ts_member_t *m, uint64_t *commit, uint64_t *last)
{
    strata_client_t *c = m->writer.pid > 0 ? ts_member_connect(m, 500) : NULL;
    strata_error_t err;
    if (!c)
        return false;
    strata_reply_t rep;
    bool ok = strata_client_stats(c, &rep, &err) == 0;
    *commit = *last = 0;
    for (size_t i = 0; ok && i < rep.n_pairs; i++) {
        if (!strcmp(rep.pairs[i].name, "commit_seq"))
            *commit = strtoull(rep.pairs[i].value, NULL, 10);
        else if (!strcmp(rep.pairs[i].name, "last_seq"))
            *last = strtoull(rep.pairs[i].value, NULL, 10);
    }
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
    return ok;
}

uint64_t ts_cluster_settle(ts_cluster_t *cl, uint64_t min_commit, unsigned timeout_ms)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000;
    do {
        uint64_t want = 0;
        bool same = true, any = false;
        for (int i = 0; i < cl->n && same; i++) {
            uint64_t commit, last;
            if (cl->m[i].writer.pid <= 0)
                continue;
            if (!figures(&cl->m[i], &commit, &last) || commit != last || (any && commit != want) ||
                commit < min_commit)
                same = false;
            want = commit;
            any = true;
        }
        if (same && any)
            return want;
        nap_ms(50); /* polling the nodes' commit seqs with a deadline */
    } while (ts_now_ns() < deadline);
    return 0;
}

/* A node's WAL up to upto as the log checker takes it: each entry's seq,
 * term and stored CRC (which covers every other byte of it). */
static ts_log_entry_t *read_log(const char *data, uint64_t upto, size_t *n_p)
{
    char wal[700];
    snprintf(wal, sizeof wal, "%s/wal", data);
    strata_wal_cursor_t *cur = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_cursor_open(wal, 0, &cur, &err) == 0, "%s: %s", wal, err.msg);
    ts_log_entry_t *v = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t len;
        int rc = strata_wal_cursor_next(cur, upto, &e, &raw, &len, &err);
        if (rc == STRATA_ETIMEDOUT)
            break;
        ck_assert_msg(rc == 0, "%s: %s", wal, err.msg);
        ck_assert_uint_ge(len, 4);
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            v = realloc(v, cap * sizeof *v);
            ck_assert_ptr_nonnull(v);
        }
        v[n++] = (ts_log_entry_t){.seq = e.seq,
                                  .term = e.term,
                                  .crc = (uint32_t)raw[0] | (uint32_t)raw[1] << 8 |
                                         (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 24};
    }
    strata_wal_cursor_close(&cur);
    *n_p = n;
    return v;
}

/* Every node's log up to upto, each committed there (settled). */
static void read_logs(ts_cluster_t *cl, uint64_t upto, ts_node_log_t *logs)
{
    for (int i = 0; i < cl->n; i++) {
        size_t n = 0;
        ts_log_entry_t *entries = read_log(cl->m[i].data, upto, &n);
        logs[i] =
            (ts_node_log_t){.node = cl->m[i].id, .entries = entries, .n = n, .commit_seq = upto};
    }
    ck_assert_msg(logs[0].n > 0 && logs[0].entries[logs[0].n - 1].seq == upto,
                  "node1's log does not reach the commit seq %" PRIu64, upto);
}

static void free_logs(ts_node_log_t *logs, int n)
{
    for (int i = 0; i < n; i++)
        free((void *)logs[i].entries);
}

void ts_cluster_check_logs(ts_cluster_t *cl, uint64_t upto)
{
    ts_node_log_t logs[TS_CLUSTER_MAX];
    read_logs(cl, upto, logs);
    ts_report_t report = {.out = stderr};
    size_t problems = ts_check_logs(logs, (size_t)cl->n, &report);
    free_logs(logs, cl->n);
    ck_assert_msg(problems == 0, "the nodes' committed logs differ (lines above)");
}

/* Every "event=role role=leader term=T" line of node i's writer logs. */
static void collect_leaders(ts_cluster_t *cl, int i, ts_leader_t **v, size_t *n, size_t *cap)
{
    DIR *d = opendir(cl->m[i].root);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        /* node.c names a writer's log <data dir>.writer-<n>.log */
        if (!strstr(de->d_name, ".writer-"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", cl->m[i].root, de->d_name);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        char line[1024];
        static const char mark[] = "event=role role=leader term=";
        while (fgets(line, sizeof line, f)) {
            const char *at = strstr(line, mark);
            if (!at)
                continue;
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *v = realloc(*v, *cap * sizeof **v);
                ck_assert_ptr_nonnull(*v);
            }
            (*v)[(*n)++] =
                (ts_leader_t){.term = strtoull(at + strlen(mark), NULL, 10), .node = cl->m[i].id};
        }
        fclose(f);
    }
    closedir(d);
}

static int cmp_term(const void *a, const void *b)
{
    uint64_t x = ((const ts_leader_t *)a)->term, y = ((const ts_leader_t *)b)->term;
    return x < y ? -1 : x > y;
}

int ts_cluster_check_one_master_per_term(ts_cluster_t *cl)
{
    ts_leader_t *leaders = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < cl->n; i++)
        collect_leaders(cl, i, &leaders, &n, &cap);
    ts_report_t report = {.out = stderr};
    size_t problems = ts_check_leaders(leaders, n, &report);
    qsort(leaders, n, sizeof *leaders, cmp_term);
    int terms = 0;
    for (size_t j = 0; j < n; j++)
        terms += leaders[j].term && (j == 0 || leaders[j].term != leaders[j - 1].term);
    free(leaders);
    ck_assert_msg(problems == 0, "a term had two masters (lines above)");
    return terms;
}

/* The entries one rollback file of node set aside: their seqs must run
 * from first to last without a gap. */
static void read_rollback(const char *path, int node, uint64_t first, uint64_t last,
                          ts_rollback_t *rb)
{
    size_t len = (size_t)ts_file_size(path);
    uint8_t *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    ts_file_read_at(path, 0, buf, len);
    ck_assert_uint_ge(last, first);
    uint64_t *terms = calloc(last - first + 1, sizeof *terms);
    ck_assert_ptr_nonnull(terms);
    size_t off = 0;
    uint64_t want = first;
    while (off < len) {
        strata_entry_t e;
        size_t used = 0;
        strata_error_t err;
        ck_assert_msg(strata_entry_decode(buf + off, len - off, 0, &e, &used, &err) == 0,
                      "%s: offset %zu: %s", path, off, err.msg);
        ck_assert_msg(e.seq == want && e.seq <= last,
                      "%s: offset %zu: seq %" PRIu64 ", not %" PRIu64, path, off, e.seq, want);
        terms[want++ - first] = e.term;
        off += used;
    }
    ck_assert_msg(want == last + 1, "%s: ends at seq %" PRIu64 ", its name says %" PRIu64, path,
                  want - 1, last);
    free(buf);
    *rb = (ts_rollback_t){.node = node, .first_seq = first, .last_seq = last, .terms = terms};
}

size_t ts_cluster_rollbacks(ts_cluster_t *cl, ts_rollback_t **out)
{
    ts_rollback_t *v = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < cl->n; i++) {
        char dir[700];
        snprintf(dir, sizeof dir, "%s/wal/rollback", cl->m[i].data);
        DIR *d = opendir(dir);
        if (!d)
            continue; /* the node never cut its log */
        struct dirent *de;
        while ((de = readdir(d))) {
            uint64_t first, last;
            char tail[16];
            if (sscanf(de->d_name, "%20" SCNu64 "-%20" SCNu64 ".%15s", &first, &last, tail) != 3 ||
                strcmp(tail, "entries"))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                v = realloc(v, cap * sizeof *v);
                ck_assert_ptr_nonnull(v);
            }
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            read_rollback(path, cl->m[i].id, first, last, &v[n++]);
        }
        closedir(d);
    }
    *out = v;
    return n;
}

void ts_cluster_rollbacks_free(ts_rollback_t *rollbacks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)rollbacks[i].terms);
    free(rollbacks);
}

size_t ts_cluster_check_acks(ts_cluster_t *cl, const ts_op_t *history, size_t n, uint64_t upto,
                             size_t *n_rolled_back)
{
    ts_node_log_t logs[TS_CLUSTER_MAX];
    read_logs(cl, upto, logs);
    ts_rollback_t *rollbacks = NULL;
    size_t n_rollbacks = ts_cluster_rollbacks(cl, &rollbacks);
    ts_report_t report = {.out = stderr};
    size_t problems =
        ts_check_acks(history, n, logs, (size_t)cl->n, rollbacks, n_rollbacks, &report);
    if (n_rolled_back) {
        *n_rolled_back = 0;
        for (size_t i = 0; i < n_rollbacks; i++)
            *n_rolled_back += rollbacks[i].last_seq - rollbacks[i].first_seq + 1;
    }
    ts_cluster_rollbacks_free(rollbacks, n_rollbacks);
    free_logs(logs, cl->n);
    return problems;
}
