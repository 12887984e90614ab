/* No spurious elections: three nodes, each in its own network namespace
 * (tests/support/netns.h; root only), three clients writing in quorum mode
 * throughout, and faults that a healthy cluster must ride out with the same
 * master in the same term: 10% loss both ways between the master and a
 * follower, 200 ms SIGSTOP pauses of a follower's writer and 150 ms pauses
 * of the master's (each followed by 800 ms running), a follower cut off from
 * the master while a pipelined client writes 100,000 records (1,000,000
 * under STRATA_SOAK) and then catching up while the clients write on, and a
 * follower whose processes run with every clock 5% fast (libfaketime,
 * CLOCK_MONOTONIC included). None is long enough to call for an election:
 * pauses and losses stay well inside the election timeout (500..1000 ms,
 * heartbeat 50 ms), and a follower that stops hearing the master only asks
 * for pre-votes, which a follower that hears it refuses (lib/raft/raft.md,
 * R6).
 *
 * Each scenario runs on a fresh cluster for a window of STRATA_STABILITY_S
 * seconds (15 by default, 600 under STRATA_SOAK), during which a thread
 * asks every writer for its role and term every 100 ms. It fails when any
 * node reported a term other than the one the window began with, a master
 * other than the first, or when the clients went a second without an
 * acknowledgement (in the catch-up, from the end of the bulk load on: the
 * load takes the master at full speed, and what is asked of the cluster
 * meanwhile is no election); after the window every acknowledged write must
 * be on every node. Each prints its duration, the writes acknowledged, the terms
 * seen, the leader changes and the role changes the writers logged (a
 * follower that asked for pre-votes shows there without a new term). */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "netns.h"
#include "support.h"
#include "writers.h"

#define NODES 3
/* The longest the clients may go without an acknowledgement. */
#define MAX_ACK_GAP_MS 1000
#define POLL_MS        100

static ts_netns_t s_bed;
static bool s_bed_up;
static char *s_tmp;

/* Unchecked fixture: runs in Check's parent process, so the namespaces,
 * the processes in them and the data go even when a test fails or times
 * out. The tests make their directories under one TMPDIR for that. */
static void bed_create(void)
{
    ts_netns_sweep();
    s_bed_up = ts_netns_create(&s_bed, NODES);
    static const char *base;
    if (!base) /* the caller's, before a case before this one set ours */
        base = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : "/tmp";
    if (asprintf(&s_tmp, "%s/strata-stability-XXXXXX", base) < 0) {
        s_tmp = NULL;
        return;
    }
    if (!mkdtemp(s_tmp)) {
        free(s_tmp);
        s_tmp = NULL;
        return;
    }
    setenv("TMPDIR", s_tmp, 1);
}

static void bed_destroy(void)
{
    if (s_bed_up)
        ts_netns_destroy(&s_bed);
    if (s_tmp)
        ts_rmtree(s_tmp);
    free(s_tmp);
    s_tmp = NULL;
}

/* What a test that failed before may have left in the namespaces. */
static void bed_reset(void)
{
    ck_assert_msg(s_bed_up, "the network namespaces could not be made: this suite runs as root "
                            "with iproute2 and nftables (see the lines above)");
    for (int i = 0; i < NODES; i++) {
        ts_netns_heal(&s_bed, i);
        ts_sh("ip netns pids %s | xargs -r kill -9", s_bed.ns[i]);
    }
}

static void nap_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL); /* the length of a fault or of a window, not a wait for state */
}

static unsigned window_s(void)
{
    const char *s = getenv("STRATA_STABILITY_S");
    if (s && atoi(s) > 0)
        return (unsigned)atoi(s);
    return ts_soak() ? 600 : 15;
}

/* ---- the watch: every writer's role and term, every POLL_MS ----------- */

#define MAX_SEEN 32

typedef struct {
    ts_cluster_t *cl;
    _Atomic bool stop;
    pthread_t thread;
    int leader;    /* the master the window began with */
    uint64_t term; /* and its term */
    int polls, unanswered;
    uint64_t terms[MAX_SEEN];
    int n_terms;
    int leader_changes;
    int last_leader;
    uint64_t last_term;
    char changes[512]; /* the first few, for the failure message */
    uint64_t t0;
} watch_t;

static void seen_term(watch_t *w, uint64_t t)
{
    for (int k = 0; k < w->n_terms; k++)
        if (w->terms[k] == t)
            return;
    if (w->n_terms < MAX_SEEN)
        w->terms[w->n_terms++] = t;
}

static void *watch_main(void *arg)
{
    watch_t *w = arg;
    while (!atomic_load(&w->stop)) {
        uint64_t started = ts_now_ns();
        for (int i = 0; i < w->cl->n; i++) {
            char role[32];
            uint64_t t = 0;
            if (!ts_member_status(&w->cl->m[i], role, sizeof role, &t)) {
                w->unanswered++;
                continue;
            }
            seen_term(w, t);
            if (strcmp(role, "leader"))
                continue;
            int id = i + 1;
            if (id != w->last_leader || t != w->last_term) {
                w->leader_changes++;
                size_t len = strlen(w->changes);
                snprintf(w->changes + len, sizeof w->changes - len,
                         "%s+%.1f s: node%d master in term %" PRIu64, len ? "; " : "",
                         (double)(ts_now_ns() - w->t0) / 1e9, id, t);
                w->last_leader = id;
                w->last_term = t;
            }
        }
        w->polls++;
        uint64_t spent_ms = (ts_now_ns() - started) / 1000000;
        if (spent_ms < POLL_MS)
            nap_ms(POLL_MS - spent_ms);
    }
    return NULL;
}

/* "event=role" lines in the node's current writer log: role changes. */
static int role_events(ts_member_t *m, int *precandidate)
{
    FILE *f = fopen(m->writer.log, "r");
    int n = 0;
    if (!f)
        return 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "event=role "))
            continue;
        n++;
        if (precandidate && strstr(line, "role=precandidate"))
            (*precandidate)++;
    }
    fclose(f);
    return n;
}

typedef struct {
    const char *name;
    ts_cluster_t cl;
    ts_writer_t ws[TS_WRITERS];
    int master, follower; /* the master and the follower the faults pick */
    watch_t watch;
    uint64_t t0, acked0;
    /* 0, or where the longest time without an acknowledgement is measured
     * from: a bulk load at full speed starves the clients of the master by
     * design, the stability asked of it is no election */
    uint64_t gap_from;
    int roles0[NODES], pre0[NODES];
} run_t;

/* A cluster in the bed with the clients writing and a master serving. */
static void run_start(run_t *r, const char *name)
{
    bed_reset();
    memset(r, 0, sizeof *r);
    r->name = name;
    ts_cluster_start_netns(&r->cl, NODES, "stability", (const char(*)[24])s_bed.ns,
                           (const char(*)[48])s_bed.ip);
    r->master = ts_cluster_master(&r->cl, 15000, NULL);
    ck_assert_int_gt(r->master, 0);
    ts_writers_start(&r->cl, r->ws, false);
    ts_writers_wait(r->ws, 30, 15000);
    r->follower = r->master % NODES + 1;
}

/* The window opens: the master and its term now, the watch from here. */
static void window_open(run_t *r)
{
    uint64_t term = 0;
    int master = ts_cluster_master(&r->cl, 15000, &term);
    ck_assert_msg(master == r->master, "%s: node%d is master before the window, not node%d",
                  r->name, master, r->master);
    for (int i = 0; i < NODES; i++)
        r->roles0[i] = role_events(&r->cl.m[i], &r->pre0[i]);
    r->t0 = ts_now_ns();
    r->acked0 = ts_writers_acked(r->ws);
    r->watch = (watch_t){.cl = &r->cl,
                         .leader = master,
                         .term = term,
                         .last_leader = master,
                         .last_term = term,
                         .t0 = r->t0};
    seen_term(&r->watch, term);
    ck_assert_int_eq(pthread_create(&r->watch.thread, NULL, watch_main, &r->watch), 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Acknowledgements in (from, to] and the longest time in it without one. */
static uint64_t acks_in(ts_writer_t *ws, uint64_t from, uint64_t to, uint64_t *max_gap_ns)
{
    size_t n = 0, cap = 0;
    uint64_t *at = NULL;
    for (int k = 0; k < TS_WRITERS; k++) {
        uint64_t acked = atomic_load(&ws[k].n_acked);
        for (uint64_t j = 0; j < acked; j++) {
            if (ws[k].acked_ns[j] <= from || ws[k].acked_ns[j] > to)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 4096;
                at = realloc(at, cap * sizeof *at);
                ck_assert_ptr_nonnull(at);
            }
            at[n++] = ws[k].acked_ns[j];
        }
    }
    qsort(at, n, sizeof *at, cmp_u64);
    uint64_t gap = 0, prev = from;
    for (size_t i = 0; i < n; i++) {
        if (at[i] - prev > gap)
            gap = at[i] - prev;
        prev = at[i];
    }
    if (to - prev > gap)
        gap = to - prev;
    free(at);
    *max_gap_ns = gap;
    return n;
}

/* The window closes: the same master in the same term on every node all
 * along, and acknowledgements all along; then every acknowledged write
 * everywhere. */
static void window_close(run_t *r, const char *extra)
{
    uint64_t t1 = ts_now_ns();
    atomic_store(&r->watch.stop, true);
    pthread_join(r->watch.thread, NULL);
    watch_t *w = &r->watch;
    uint64_t term = 0;
    int master = ts_cluster_master(&r->cl, 15000, &term);
    int roles = 0, pre = 0;
    for (int i = 0; i < NODES; i++) {
        int pre_i = 0;
        roles += role_events(&r->cl.m[i], &pre_i) - r->roles0[i];
        pre += pre_i - r->pre0[i];
    }
    uint64_t gap_ns = 0, acked = acks_in(r->ws, r->t0, t1, &gap_ns);
    if (r->gap_from)
        acks_in(r->ws, r->gap_from, t1, &gap_ns);
    qsort(w->terms, (size_t)w->n_terms, sizeof w->terms[0], cmp_u64);
    char terms[256] = "";
    for (int k = 0; k < w->n_terms; k++) {
        size_t len = strlen(terms);
        snprintf(terms + len, sizeof terms - len, "%s%" PRIu64, k ? "," : "", w->terms[k]);
    }
    fprintf(stderr,
            "stability: %s: %.1f s, %" PRIu64 " writes acknowledged (%.0f/s, longest gap %" PRIu64
            " ms%s), terms seen {%s}, leader changes %d, role changes logged %d (%d to "
            "precandidate), %d polls%s%s\n",
            r->name, (double)(t1 - r->t0) / 1e9, acked, (double)acked * 1e9 / (double)(t1 - r->t0),
            gap_ns / 1000000, r->gap_from ? " after the load" : "", terms, w->leader_changes, roles,
            pre, w->polls, extra ? "; " : "", extra ? extra : "");
    char closed[64] = "no master serving within 15 s";
    if (master)
        snprintf(closed, sizeof closed, "node%d in term %" PRIu64, master, term);
    ck_assert_msg(w->leader_changes == 0 && master == w->leader && term == w->term,
                  "%s: node%d was master in term %" PRIu64 " when the window opened, %s when it "
                  "closed; seen: %s",
                  r->name, w->leader, w->term, closed, w->changes);
    ck_assert_msg(w->n_terms == 1,
                  "%s: the nodes reported terms {%s} in the window, not only %" PRIu64, r->name,
                  terms, w->term);
    ck_assert_msg(acked > 0 && gap_ns <= MAX_ACK_GAP_MS * 1000000ull,
                  "%s: %" PRIu64 " writes acknowledged, the longest time without one %" PRIu64
                  " ms (at most %d)",
                  r->name, acked, gap_ns / 1000000, MAX_ACK_GAP_MS);
}

static void run_finish(run_t *r)
{
    ts_writers_stop(r->ws);
    ts_writers_settle_and_check(&r->cl, r->ws);
    ts_writers_free(r->ws);
    ts_cluster_destroy(&r->cl);
}

/* ---- the scenarios ------------------------------------------------------- */

START_TEST(loss_between_master_and_follower)
{
    run_t r;
    run_start(&r, "10% loss between the master and a follower");
    window_open(&r);
    ts_netns_loss(&s_bed, r.master - 1, r.follower - 1, 10);
    ts_netns_loss(&s_bed, r.follower - 1, r.master - 1, 10);
    nap_ms(window_s() * 1000ull);
    ts_netns_heal(&s_bed, r.master - 1);
    ts_netns_heal(&s_bed, r.follower - 1);
    char what[64];
    snprintf(what, sizeof what, "node%d and node%d", r.master, r.follower);
    window_close(&r, what);
    run_finish(&r);
}
END_TEST

/* Pauses of pause_ms, each followed by run_ms running, for the window. */
static void pauses(run_t *r, ts_member_t *m, uint64_t pause_ms, uint64_t run_ms)
{
    window_open(r);
    uint64_t end = r->t0 + window_s() * 1000000000ull;
    int n = 0;
    while (ts_now_ns() < end) {
        ck_assert_int_eq(kill(m->writer.pid, SIGSTOP), 0);
        nap_ms(pause_ms);
        ck_assert_int_eq(kill(m->writer.pid, SIGCONT), 0);
        n++;
        nap_ms(run_ms);
    }
    char what[64];
    snprintf(what, sizeof what, "node%d's writer paused %d times", m->id, n);
    window_close(r, what);
}

START_TEST(follower_paused)
{
    run_t r;
    run_start(&r, "200 ms pauses of a follower's writer");
    pauses(&r, &r.cl.m[r.follower - 1], 200, 800);
    run_finish(&r);
}
END_TEST

START_TEST(master_paused)
{
    run_t r;
    run_start(&r, "150 ms pauses of the master's writer");
    pauses(&r, &r.cl.m[r.master - 1], 150, 800);
    run_finish(&r);
}
END_TEST

/* A writer's figure from its stats; false when it does not answer. */
static bool stat_of(ts_member_t *m, const char *name, uint64_t *v)
{
    strata_client_t *c = ts_member_connect(m, 1000);
    if (!c)
        return false;
    strata_reply_t rep;
    strata_error_t err;
    bool ok = strata_client_stats(c, &rep, &err) == 0, found = false;
    for (size_t i = 0; ok && i < rep.n_pairs; i++)
        if (!strcmp(rep.pairs[i].name, name)) {
            *v = strtoull(rep.pairs[i].value, NULL, 10);
            found = true;
        }
    if (ok)
        strata_reply_clear(&rep);
    strata_client_destroy(&c);
    return found;
}

#define BULK_DEPTH 256

/* n records of 100 bytes through one pipelined client, in quorum mode. */
static void bulk_load(ts_member_t *m, uint32_t n)
{
    strata_client_options_t opts = {.endpoint = m->client, .timeout_ms = 30000};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &c, &err) == 0, "%s", err.msg);
    char value[100];
    memset(value, 'v', sizeof value);
    uint32_t sent = 0, done = 0;
    while (done < n) {
        while (sent < n && sent - done < BULK_DEPTH) {
            char key[32];
            snprintf(key, sizeof key, "bulk-%08" PRIu32, sent);
            strata_request_t req = {.op = STRATA_OP_PUT,
                                    .durability = STRATA_DURABILITY_SYNC,
                                    .replication = STRATA_REPLICATION_QUORUM,
                                    .key = {(const uint8_t *)key, strlen(key)},
                                    .value = {(const uint8_t *)value, sizeof value}};
            uint64_t id;
            ck_assert_msg(strata_client_send(c, &req, &id, &err) == 0, "send: %s", err.msg);
            sent++;
        }
        strata_reply_t rep = {0};
        int rc = strata_client_recv(c, 30000, &rep, &err);
        ck_assert_msg(rc == 0 && rep.status == 0, "bulk put %" PRIu32 ": rc %d, status %d %s", done,
                      rc, rep.status, rep.message ? rep.message : err.msg);
        strata_reply_clear(&rep);
        done++;
    }
    strata_client_destroy(&c);
}

START_TEST(follower_falls_behind_and_catches_up)
{
    uint32_t records = ts_soak() ? 1000000 : 100000;
    run_t r;
    run_start(&r, "a follower falls behind and catches up");
    ts_member_t *m = &r.cl.m[r.master - 1], *f = &r.cl.m[r.follower - 1];
    window_open(&r);
    /* Cut from the master only: it still reaches the other follower, which
     * hears the master and so refuses it pre-votes. */
    ts_netns_cut(&s_bed, r.follower - 1, r.master - 1, true);
    uint64_t load0 = ts_now_ns();
    bulk_load(m, records);
    uint64_t load1 = ts_now_ns(), behind_seq = 0, f_cut = 0;
    ck_assert(stat_of(m, "last_seq", &behind_seq));
    ck_assert(stat_of(f, "last_seq", &f_cut));
    uint64_t acked_heal = ts_writers_acked(r.ws);
    uint64_t load_gap_ns = 0;
    acks_in(r.ws, load0, load1, &load_gap_ns);
    r.gap_from = load1;
    ts_netns_heal(&s_bed, r.follower - 1);
    /* Caught up: it holds what the master had when the cut ended. */
    uint64_t deadline = ts_now_ns() + (ts_soak() ? 1200 : 120) * 1000000000ull, f_seq = f_cut;
    while (f_seq < behind_seq && ts_now_ns() < deadline) {
        nap_ms(50); /* polling the follower's log with a deadline */
        stat_of(f, "last_seq", &f_seq);
    }
    uint64_t caught = ts_now_ns(), rest = r.t0 + window_s() * 1000000000ull;
    double load_s = (double)(load1 - load0) / 1e9, catch_s = (double)(caught - load1) / 1e9;
    char what[512];
    snprintf(what, sizeof what,
             "node%d %" PRIu64 " records behind (%" PRIu32 " loaded in %.1f s, %.0f/s, the clients'"
             " longest wait %" PRIu64 " ms meanwhile), %s %.1f s: %.0f records/s, while the "
             "clients had %.0f/s acknowledged",
             f->id, behind_seq - f_cut, records, load_s, records / load_s, load_gap_ns / 1000000,
             f_seq >= behind_seq ? "caught up in" : "NOT caught up after", catch_s,
             (double)(f_seq - f_cut) / catch_s,
             (double)(ts_writers_acked(r.ws) - acked_heal) / catch_s);
    if (ts_now_ns() < rest)
        nap_ms((rest - ts_now_ns()) / 1000000);
    window_close(&r, what);
    ck_assert_msg(f_seq >= behind_seq,
                  "node%d reached seq %" PRIu64 " of %" PRIu64 " in %.0f s after the cut ended",
                  f->id, f_seq, behind_seq, catch_s);
    run_finish(&r);
}
END_TEST

START_TEST(follower_clock_fast)
{
    run_t r;
    run_start(&r, "a follower's clocks 5% fast");
    ts_member_t *f = &r.cl.m[r.follower - 1];
    snprintf(f->faketime, sizeof f->faketime, "+0 x1.05");
    ts_member_restart(f);
    /* Back in the cluster: it holds what the master had after its start. */
    uint64_t want = 0, have = 0, deadline = ts_now_ns() + 30000000000ull;
    ck_assert(stat_of(&r.cl.m[r.master - 1], "last_seq", &want));
    while (have < want && ts_now_ns() < deadline) {
        nap_ms(50); /* polling the follower's log with a deadline */
        stat_of(f, "last_seq", &have);
    }
    ck_assert_msg(have >= want, "node%d restarted under libfaketime did not catch up", f->id);
    window_open(&r);
    nap_ms(window_s() * 1000ull);
    char what[96];
    snprintf(what, sizeof what, "node%d under FAKETIME=\"%s\"", f->id, f->faketime);
    window_close(&r, what);
    run_finish(&r);
}
END_TEST

int main(void)
{
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {{"loss", loss_between_master_and_follower},
                 {"pause_follower", follower_paused},
                 {"pause_master", master_paused},
                 {"catch_up", follower_falls_behind_and_catches_up},
                 {"clock_rate", follower_clock_fast}};
    Suite *s = suite_create("stability");
    /* One case each, so CK_RUN_CASE picks one, each with a bed of its own. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_unchecked_fixture(tc, bed_create, bed_destroy);
        /* The window, a cluster's start and the final checks; in catch_up a
         * million records loaded and caught up under STRATA_SOAK. */
        tcase_set_timeout(tc, (double)window_s() + (ts_soak() ? 1800 : 300));
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return ts_run(s);
}
