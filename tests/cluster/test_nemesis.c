/* Three nodes, each in its own network namespace on a bridge
 * (tests/support/netns.h; root only), each running all six processes
 * (writer, election, replicator, distributor, compactor, and a snapshotter
 * taking a snapshot every few seconds), clients writing throughout, and a
 * nemesis that runs episodes drawn from a printed seed (STRATA_TEST_SEED
 * repeats a run): the master or a follower cut off from the network (its
 * link down) or from the other nodes only (nftables in its namespace; a
 * master cut so, which the clients still reach, must stop acknowledging
 * within its election timeout), a follower that stops hearing the master
 * (one way), the followers cut from each other (a non-transitive
 * partition), 20% loss between the master and a follower, kill -9 of the
 * master's writer or of any one process of any node, and SIGSTOP pauses of
 * the master's or a follower's writer, a node's processes restarted with
 * every clock 5% fast or slow (libfaketime) or with the monotonic clock an
 * hour ahead (a time namespace), and a node's fsyncs made 20-200 ms slower
 * (tests/support/slowdisk.c). Each episode ends healed, with a master
 * serving and writes acknowledged again.
 *
 * Quorum mode: three clients append to lists and two read and write
 * registers on the master (registers.h). After the last episode the nodes
 * settle, and the history (tests/support/history.md) passes every checker:
 * appends (nothing lost, unexpected, duplicated, failed but present, or
 * divergent between nodes), registers (linearizable), the nodes' committed
 * WALs identical, at most one master per term, no acknowledgement from a
 * stale term and none the nodes rolled back.
 *
 * Async mode: the master is killed, isolated or cut off while three
 * clients append with async replication. A failover may lose such writes,
 * but only those acknowledged within cluster/max_lag_ms and a heartbeat of
 * a fault (ts_check_async_appends); everything else is as in quorum mode.
 *
 * make test runs 10 quorum and 4 async episodes; STRATA_SOAK=1 runs 200
 * and 40. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkers.h"
#include "cluster.h"
#include "netns.h"
#include "registers.h"
#include "support.h"
#include "writers.h"

#define NODES 3
/* deploy/node.cfg's defaults, which the test's configs keep */
#define MAX_LAG_MS   1000
#define HEARTBEAT_MS 50

static ts_netns_t s_bed;
static bool s_bed_up;

/* Unchecked fixture: runs in Check's parent process, so the namespaces go
 * even when the test fails or times out. */
static void bed_create(void)
{
    ts_netns_sweep();
    s_bed_up = ts_netns_create(&s_bed, NODES);
}

static void bed_destroy(void)
{
    if (s_bed_up)
        ts_netns_destroy(&s_bed);
}

/* Snapshots every few seconds, so faults meet them and the WAL
 * truncation that follows. */
static const char *const s_snap_env[] = {"STRATA_SNAPSHOTTER_INTERVAL_S=4", NULL};

static void nap_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL); /* the length of a fault, not a wait for state */
}

typedef enum {
    ISOLATE_MASTER,
    ISOLATE_FOLLOWER,
    KILL_MASTER_WRITER,
    KILL_ANY_PROCESS,
    PAUSE_MASTER,
    PAUSE_FOLLOWER,
    SPLIT_MASTER,
    SPLIT_FOLLOWER,
    ONE_WAY,
    BRIDGE,
    LOSS,
    CLOCK_RATE,
    CLOCK_JUMP,
    SLOW_DISK,
    N_FAULTS
} fault_t;

static const char *const fault_names[N_FAULTS] = {"isolate the master",
                                                  "isolate a follower",
                                                  "kill -9 the master's writer",
                                                  "kill -9 one process",
                                                  "pause the master's writer",
                                                  "pause a follower's writer",
                                                  "cut the master from the other nodes",
                                                  "cut a follower from the other nodes",
                                                  "a follower stops hearing the master",
                                                  "cut the followers from each other",
                                                  "20% loss between the master and a follower",
                                                  "a node's clocks 5% fast or slow",
                                                  "a node's monotonic clock an hour ahead",
                                                  "a slow disk"};

/* The faults of the async run: those that depose the master. */
static const fault_t master_faults[] = {ISOLATE_MASTER, KILL_MASTER_WRITER, SPLIT_MASTER};

/* Acknowledgements node gave in (from, to]: a master cut off from a
 * majority must give none once its election timeout has passed. */
static uint64_t acks_from(ts_writer_t *ws, int node, uint64_t from, uint64_t to)
{
    uint64_t n_from = 0;
    for (int k = 0; k < TS_WRITERS; k++) {
        uint64_t n = atomic_load(&ws[k].n_acked);
        for (uint64_t j = 0; j < n; j++)
            n_from +=
                ws[k].acked_node[j] == node && ws[k].acked_ns[j] > from && ws[k].acked_ns[j] <= to;
    }
    return n_from;
}

static void heal_all(void)
{
    for (int i = 0; i < NODES; i++)
        ts_netns_heal(&s_bed, i);
}

/* The first write a node other than old acknowledged after since; 0 when
 * none has yet. */
static uint64_t first_ack_elsewhere(ts_writer_t *ws, int old, uint64_t since)
{
    uint64_t first = 0;
    for (int k = 0; k < TS_WRITERS; k++) {
        uint64_t n = atomic_load(&ws[k].n_acked);
        for (uint64_t j = n; j-- > 0 && ws[k].acked_ns[j] > since;)
            if (ws[k].acked_node[j] != old && (!first || ws[k].acked_ns[j] < first))
                first = ws[k].acked_ns[j];
    }
    return first;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* kill -9 one of a node's six processes and start it again after hold. */
static void kill_one(ts_member_t *v, int which, uint64_t hold)
{
    switch (which) {
    case 0:
        ts_node_kill9(&v->writer);
        break;
    case 1:
        ts_relay_kill9(&v->election);
        break;
    case 2:
        ts_relay_kill9(&v->replicator);
        break;
    case 3:
        ts_dist_kill9(&v->dist);
        break;
    case 4:
        ts_comp_kill9(&v->comp);
        break;
    default:
        ts_snap_kill9(&v->snap);
        break;
    }
    nap_ms(hold);
    switch (which) {
    case 0:
        ts_member_start_writer(v);
        break;
    case 1:
        ts_member_start_election(v);
        break;
    case 2:
        ts_member_start_replicator(v);
        break;
    case 3:
        ts_member_start_distributor(v);
        break;
    case 4:
        ts_member_start_compactor(v);
        break;
    default:
        ts_member_start_snapshotter(v, s_snap_env);
        break;
    }
}

/* One run of the nemesis: its cluster, clients and history. */
typedef struct {
    uint64_t seed, rng;
    ts_cluster_t cl;
    char *hist_dir, *hist_path;
    ts_history_t *history;
    ts_writer_t ws[TS_WRITERS];
    ts_register_t rs[TS_REGISTERS];
    bool registers;
    ts_window_t windows[200]; /* around each fault, for the async check */
    size_t n_windows;
    uint64_t failover_ms[200];
    int n_failovers;
} run_t;

static void run_start(run_t *r, const char *tag, bool async)
{
    memset(r, 0, sizeof *r);
    r->seed = r->rng = ts_seed(tag);
    ts_cluster_start_netns(&r->cl, NODES, tag, (const char(*)[24])s_bed.ns,
                           (const char(*)[48])s_bed.ip);
    /* Every node's syncs through the slow-disk shim, fast until a fault
     * slows one. */
    for (int i = 0; i < NODES; i++) {
        r->cl.m[i].slowdisk = true;
        ts_member_restart(&r->cl.m[i]);
    }
    ck_assert_int_gt(ts_cluster_master(&r->cl, 15000, NULL), 0);
    for (int i = 0; i < NODES; i++) {
        ts_member_start_distributor(&r->cl.m[i]);
        ts_member_start_compactor(&r->cl.m[i]);
        ts_member_start_snapshotter(&r->cl.m[i], s_snap_env);
    }
    r->hist_dir = ts_tempdir("nemesis-history");
    r->hist_path = ts_path(r->hist_dir, "history.jsonl");
    r->history = ts_history_open(r->hist_path);
    ck_assert_ptr_nonnull(r->history);
    ts_writers_start_history(&r->cl, r->ws, async, r->history);
    r->registers = !async;
    if (r->registers)
        ts_registers_start(&r->cl, r->rs, r->history, r->seed);
    ts_writers_wait(r->ws, 30, 15000);
}

/* Episode e: fault f for a while, then healed, a master serving and
 * writes acknowledged again. */
static void run_episode(run_t *r, int e, fault_t f)
{
    ts_cluster_t *cl = &r->cl;
    ts_writer_t *ws = r->ws;
    int master = ts_cluster_master(cl, 15000, NULL);
    ck_assert_msg(master > 0, "episode %d: no master within 15 s (seed %" PRIu64 ")", e, r->seed);
    int follower = (master + (int)(ts_rand(&r->rng) % (NODES - 1))) % NODES + 1;
    uint64_t hold = 500 + ts_rand(&r->rng) % 2000;
    ts_member_t *m = &cl->m[master - 1], *fm = &cl->m[follower - 1];
    /* The fault takes effect between t0 and t_on: applying a cut runs a few
     * commands. */
    uint64_t t0 = ts_now_ns(), t_on = t0;
    char what[96];
    snprintf(what, sizeof what, "%s", fault_names[f]);
    switch (f) {
    case ISOLATE_MASTER:
    case ISOLATE_FOLLOWER: {
        int node = f == ISOLATE_MASTER ? master : follower;
        snprintf(what, sizeof what, "%s (node%d)", fault_names[f], node);
        ts_netns_link(&s_bed, node - 1, false);
        t_on = ts_now_ns();
        nap_ms(hold);
        ts_netns_link(&s_bed, node - 1, true);
        break;
    }
    case KILL_MASTER_WRITER:
        snprintf(what, sizeof what, "%s (node%d)", fault_names[f], master);
        kill_one(m, 0, hold);
        break;
    case KILL_ANY_PROCESS: {
        static const char *const procs[] = {"writer",      "election",  "replicator",
                                            "distributor", "compactor", "snapshotter"};
        int node = 1 + (int)(ts_rand(&r->rng) % NODES), which = (int)(ts_rand(&r->rng) % 6);
        snprintf(what, sizeof what, "kill -9 node%d's %s%s", node, procs[which],
                 node == master ? " (the master)" : "");
        kill_one(&cl->m[node - 1], which, hold);
        break;
    }
    case PAUSE_MASTER:
    case PAUSE_FOLLOWER: {
        ts_member_t *p = f == PAUSE_MASTER ? m : fm;
        hold = 150 + hold % 1350;
        snprintf(what, sizeof what, "%s (node%d)", fault_names[f], p->id);
        ck_assert_int_eq(kill(p->writer.pid, SIGSTOP), 0);
        nap_ms(hold);
        ck_assert_int_eq(kill(p->writer.pid, SIGCONT), 0);
        break;
    }
    case SPLIT_MASTER:
    case SPLIT_FOLLOWER: {
        int node = f == SPLIT_MASTER ? master : follower;
        snprintf(what, sizeof what, "%s (node%d)", fault_names[f], node);
        for (int j = 1; j <= NODES; j++)
            if (j != node)
                ts_netns_cut(&s_bed, node - 1, j - 1, true);
        t_on = ts_now_ns();
        nap_ms(hold);
        uint64_t healed = ts_now_ns();
        heal_all();
        /* The clients still reach it: past an election timeout (and a
         * reply in flight) it acknowledges nothing. In async mode it
         * stops once no follower answered for max_lag_ms. */
        if (f == SPLIT_MASTER) {
            uint64_t after_ms = ws[0].async ? MAX_LAG_MS + HEARTBEAT_MS + 200 : 1200;
            uint64_t late = acks_from(ws, master, t_on + after_ms * 1000000ull, healed);
            ck_assert_msg(late == 0,
                          "episode %d: node%d, cut from the others, acknowledged %" PRIu64
                          " writes more than %" PRIu64 " ms after the cut (seed %" PRIu64 ")",
                          e, master, late, after_ms, r->seed);
        }
        break;
    }
    case ONE_WAY:
        snprintf(what, sizeof what, "%s (node%d from node%d)", fault_names[f], follower, master);
        ts_netns_cut(&s_bed, follower - 1, master - 1, false);
        nap_ms(hold);
        heal_all();
        break;
    case BRIDGE: {
        int other = follower % NODES + 1 == master ? master % NODES + 1 : follower % NODES + 1;
        snprintf(what, sizeof what, "%s (node%d, node%d)", fault_names[f], follower, other);
        ts_netns_cut(&s_bed, follower - 1, other - 1, true);
        ts_netns_cut(&s_bed, other - 1, follower - 1, true);
        nap_ms(hold);
        heal_all();
        break;
    }
    case LOSS:
        snprintf(what, sizeof what, "%s (node%d, node%d)", fault_names[f], master, follower);
        ts_netns_loss(&s_bed, master - 1, follower - 1, 20);
        ts_netns_loss(&s_bed, follower - 1, master - 1, 20);
        nap_ms(hold);
        heal_all();
        break;
    case CLOCK_RATE:
    case CLOCK_JUMP: {
        /* Its writer, election and replicator restarted under the clock,
         * long enough for their timers to run a while by it. */
        int node = 1 + (int)(ts_rand(&r->rng) % NODES);
        ts_member_t *v = &cl->m[node - 1];
        bool fast = ts_rand(&r->rng) % 2;
        hold *= 3;
        if (f == CLOCK_RATE)
            snprintf(v->faketime, sizeof v->faketime, "+0 x%s", fast ? "1.05" : "0.95");
        else
            v->monotonic_s = 3600;
        snprintf(what, sizeof what, "%s (node%d%s%s)", fault_names[f], node,
                 f == CLOCK_RATE ? (fast ? ", fast" : ", slow") : "",
                 node == master ? ", the master" : "");
        ts_member_restart(v);
        nap_ms(hold);
        v->faketime[0] = '\0';
        v->monotonic_s = 0;
        ts_member_restart(v);
        break;
    }
    case SLOW_DISK: {
        int node = 1 + (int)(ts_rand(&r->rng) % NODES);
        unsigned delay_us = 20000 + (unsigned)(ts_rand(&r->rng) % 180000);
        snprintf(what, sizeof what, "%s (node%d%s, %u ms per sync)", fault_names[f], node,
                 node == master ? ", the master" : "", delay_us / 1000);
        ts_member_slowdisk(&cl->m[node - 1], delay_us);
        nap_ms(hold);
        ts_member_slowdisk(&cl->m[node - 1], 0);
        break;
    }
    case N_FAULTS:
        break;
    }
    /* What async mode may lose: writes acknowledged within max_lag_ms (and
     * a heartbeat) of the master's loss, which is between t0 and t_on. */
    uint64_t w = (MAX_LAG_MS + HEARTBEAT_MS) * 1000000ull;
    if (r->n_windows < sizeof r->windows / sizeof r->windows[0])
        r->windows[r->n_windows++] = (ts_window_t){t0 > w ? t0 - w : 0, t_on + w};
    int after = ts_cluster_master(cl, 15000, NULL);
    ck_assert_msg(after > 0, "episode %d (%s): no master within 15 s of healing (seed %" PRIu64 ")",
                  e, what, r->seed);
    ts_writers_wait(ws, 20, 20000);
    char took[64] = "";
    if (f == ISOLATE_MASTER || f == KILL_MASTER_WRITER || f == SPLIT_MASTER) {
        uint64_t first = first_ack_elsewhere(ws, master, t0);
        if (first && r->n_failovers < 200) {
            r->failover_ms[r->n_failovers++] = (first - t0) / 1000000;
            snprintf(took, sizeof took, "; node%d acknowledged %" PRIu64 " ms after", after,
                     (first - t0) / 1000000);
        }
    }
    fprintf(stderr, "episode %d: %s for %" PRIu64 " ms; master node%d%s\n", e, what, hold, after,
            took);
}

/* The clients stopped, the nodes settled; the history loaded with every
 * node's final lists. */
static uint64_t run_settle(run_t *r, bool async, ts_op_t **ops, size_t *n_ops, ts_op_t **finals,
                           size_t *n_finals)
{
    if (r->registers)
        ts_registers_stop(r->rs);
    ts_writers_stop(r->ws);
    uint64_t commit;
    if (async) {
        ts_cluster_final_write(&r->cl);
        commit = ts_cluster_settle(&r->cl, 1, 30000);
        ck_assert_msg(commit > 0, "the nodes did not agree on one commit seq within 30 s");
        ts_cluster_check_logs(&r->cl, commit);
        ts_cluster_check_one_master_per_term(&r->cl);
    } else {
        commit = ts_writers_settle_and_check(&r->cl, r->ws);
    }
    ck_assert_int_eq(ts_history_close(&r->history), 0);
    char why[TS_HISTORY_ERRMAX];
    ck_assert_msg(ts_history_load(r->hist_path, ops, n_ops, why, sizeof why) == 0, "%s", why);
    *n_finals = ts_writers_final_reads(&r->cl, finals);
    return commit;
}

static void run_end(run_t *r, const char *mode, int episodes)
{
    if (r->n_failovers) {
        qsort(r->failover_ms, (size_t)r->n_failovers, sizeof r->failover_ms[0], cmp_u64);
        fprintf(stderr,
                "nemesis, %s (seed %" PRIu64 "): %d episodes; the master isolated or killed %d"
                " times, a new master acknowledging after p50 %" PRIu64 " ms, p99 %" PRIu64
                " ms, max %" PRIu64 " ms\n",
                mode, r->seed, episodes, r->n_failovers, r->failover_ms[r->n_failovers / 2],
                r->failover_ms[r->n_failovers * 99 / 100], r->failover_ms[r->n_failovers - 1]);
        ck_assert_msg(r->failover_ms[r->n_failovers - 1] <= 5000,
                      "a failover took %" PRIu64 " ms (seed %" PRIu64 ")",
                      r->failover_ms[r->n_failovers - 1], r->seed);
    }
    ts_rmtree(r->hist_dir);
    free(r->hist_path);
    free(r->hist_dir);
    ts_writers_free(r->ws);
    ts_cluster_destroy(&r->cl);
}

START_TEST(a_nemesis_loses_no_acknowledged_write)
{
    ck_assert_msg(s_bed_up, "the network namespaces could not be made: this suite runs as root "
                            "with iproute2 (see the lines above)");
    int episodes = ts_soak() ? 200 : 10;
    run_t *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    run_start(r, "nemesis", false);
    for (int e = 0; e < episodes; e++)
        run_episode(r, e, (fault_t)(ts_rand(&r->rng) % N_FAULTS));
    ts_op_t *ops = NULL, *finals = NULL;
    size_t n_ops = 0, n_finals = 0;
    uint64_t commit = run_settle(r, false, &ops, &n_ops, &finals, &n_finals);
    ts_report_t report = {.out = stderr};
    size_t appends = ts_check_appends(ops, n_ops, finals, n_finals, &report);
    size_t registers = ts_check_registers(ops, n_ops, 0, &report);
    size_t rolled_back = 0;
    size_t acks = ts_cluster_check_acks(&r->cl, ops, n_ops, commit, &rolled_back);
    uint64_t reads = 0, writes = 0, unsure = 0;
    for (int k = 0; k < TS_REGISTERS; k++) {
        reads += r->rs[k].reads;
        writes += r->rs[k].writes;
        unsure += r->rs[k].unsure;
    }
    fprintf(stderr,
            "history: %zu operations (registers: %" PRIu64 " reads, %" PRIu64 " writes ok, %" PRIu64
            " reads not known to be the master's, %zu keys too"
            " long to search); %zu final lists; %zu entries the nodes rolled back\n",
            n_ops, reads, writes, unsure, report.count[TS_UNKNOWN], n_finals, rolled_back);
    ck_assert_msg(appends + registers + acks == 0,
                  "the checkers found %zu problems with appends, %zu with registers and %zu with"
                  " acknowledgements in %s (lines above; seed %" PRIu64 ")",
                  appends, registers, acks, r->hist_path, r->seed);
    ck_assert_msg(reads > 0 && writes > 0, "the register clients completed no read or no write");
    ts_history_free(ops, n_ops);
    ts_writers_final_reads_free(finals, n_finals);
    run_end(r, "quorum", episodes);
    free(r);
}
END_TEST

START_TEST(an_async_failover_loses_only_its_window)
{
    ck_assert_msg(s_bed_up, "the network namespaces could not be made: this suite runs as root "
                            "with iproute2 (see the lines above)");
    int episodes = ts_soak() ? 40 : 4;
    run_t *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    run_start(r, "nemesis-async", true);
    for (int e = 0; e < episodes; e++)
        run_episode(
            r, e,
            master_faults[ts_rand(&r->rng) % (sizeof master_faults / sizeof master_faults[0])]);
    ts_op_t *ops = NULL, *finals = NULL;
    size_t n_ops = 0, n_finals = 0;
    run_settle(r, true, &ops, &n_ops, &finals, &n_finals);
    ts_report_t report = {.out = stderr};
    size_t excused = 0;
    size_t problems = ts_check_async_appends(ops, n_ops, finals, n_finals, r->windows, r->n_windows,
                                             &excused, &report);
    fprintf(stderr,
            "history: %zu operations, %zu final lists; %zu acknowledged async writes lost, each"
            " within %d ms of a fault\n",
            n_ops, n_finals, excused, MAX_LAG_MS + HEARTBEAT_MS);
    ck_assert_msg(problems == 0,
                  "the async checker found %zu problems in %s (lines above; seed %" PRIu64 ")",
                  problems, r->hist_path, r->seed);
    ts_history_free(ops, n_ops);
    ts_writers_final_reads_free(finals, n_finals);
    run_end(r, "async", episodes);
    free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nemesis");
    TCase *tc = tcase_create("netns");
    tcase_add_unchecked_fixture(tc, bed_create, bed_destroy);
    tcase_set_timeout(tc, ts_soak() ? 7200 : 600);
    tcase_add_test(tc, a_nemesis_loses_no_acknowledged_write);
    tcase_add_test(tc, an_async_failover_loses_only_its_window);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
