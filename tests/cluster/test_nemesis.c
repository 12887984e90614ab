/* Three nodes, each in its own network namespace on a bridge
 * (tests/support/netns.h; root only), three writing clients in quorum mode
 * throughout, and a nemesis that runs episodes drawn from a printed seed
 * (STRATA_TEST_SEED repeats a run): the master or a follower cut off from
 * the network (its link down) or from the other nodes only (nftables in its
 * namespace; a master cut so, which the clients still reach, must stop
 * acknowledging within its election timeout), a follower that stops
 * hearing the master (one way), the followers cut from each other (a
 * non-transitive partition), 20% loss between the master and a follower,
 * kill -9 of the master's writer or of any one process of any node, and
 * SIGSTOP pauses of the master's or a follower's writer. Each
 * episode ends healed, with a master serving and writes acknowledged again.
 * After the last the nodes settle: every acknowledged write is on every
 * node, the committed logs are identical and no term had two masters; and
 * the history of every write (tests/support/history.md) passes the append
 * checker against what each node holds: nothing lost, unexpected,
 * duplicated, failed but present, or divergent between nodes.
 * make test runs 10 episodes; STRATA_SOAK=1 runs 200. */
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
#include "support.h"
#include "writers.h"

#define NODES 3

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
                                                  "20% loss between the master and a follower"};

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

START_TEST(a_nemesis_loses_no_acknowledged_write)
{
    ck_assert_msg(s_bed_up, "the network namespaces could not be made: this suite runs as root "
                            "with iproute2 (see the lines above)");
    uint64_t seed = ts_seed("nemesis"), rng = seed;
    int episodes = ts_soak() ? 200 : 10;
    ts_cluster_t cl;
    ts_cluster_start_netns(&cl, NODES, "nemesis", (const char(*)[24])s_bed.ns,
                           (const char(*)[48])s_bed.ip);
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    /* Every write, as appends to each writer's list, for the checker. */
    char *hist_dir = ts_tempdir("nemesis-history");
    char *hist_path = ts_path(hist_dir, "history.jsonl");
    ts_history_t *history = ts_history_open(hist_path);
    ck_assert_ptr_nonnull(history);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start_history(&cl, ws, history);
    ts_writers_wait(ws, 30, 15000);

    uint64_t failover_ms[200];
    int n_failovers = 0;
    for (int e = 0; e < episodes; e++) {
        master = ts_cluster_master(&cl, 15000, NULL);
        ck_assert_msg(master > 0, "episode %d: no master within 15 s (seed %" PRIu64 ")", e, seed);
        fault_t f = (fault_t)(ts_rand(&rng) % N_FAULTS);
        int follower = (master + (int)(ts_rand(&rng) % (NODES - 1))) % NODES + 1;
        uint64_t hold = 500 + ts_rand(&rng) % 2000;
        ts_member_t *m = &cl.m[master - 1], *fm = &cl.m[follower - 1];
        uint64_t t0 = ts_now_ns();
        char what[96];
        snprintf(what, sizeof what, "%s", fault_names[f]);
        switch (f) {
        case ISOLATE_MASTER:
        case ISOLATE_FOLLOWER: {
            int node = f == ISOLATE_MASTER ? master : follower;
            snprintf(what, sizeof what, "%s (node%d)", fault_names[f], node);
            ts_netns_link(&s_bed, node - 1, false);
            nap_ms(hold);
            ts_netns_link(&s_bed, node - 1, true);
            break;
        }
        case KILL_MASTER_WRITER:
            snprintf(what, sizeof what, "%s (node%d)", fault_names[f], master);
            ts_node_kill9(&m->writer);
            nap_ms(hold);
            ts_member_start_writer(m);
            break;
        case KILL_ANY_PROCESS: {
            int node = 1 + (int)(ts_rand(&rng) % NODES), which = (int)(ts_rand(&rng) % 3);
            ts_member_t *victim = &cl.m[node - 1];
            static const char *const procs[] = {"writer", "election", "replicator"};
            snprintf(what, sizeof what, "kill -9 node%d's %s%s", node, procs[which],
                     node == master ? " (the master)" : "");
            if (which == 0)
                ts_node_kill9(&victim->writer);
            else
                ts_relay_kill9(which == 1 ? &victim->election : &victim->replicator);
            nap_ms(hold);
            if (which == 0)
                ts_member_start_writer(victim);
            else if (which == 1)
                ts_member_start_election(victim);
            else
                ts_member_start_replicator(victim);
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
            nap_ms(hold);
            uint64_t healed = ts_now_ns();
            heal_all();
            /* The clients still reach it: past an election timeout (and a
             * reply in flight) it acknowledges nothing. */
            if (f == SPLIT_MASTER) {
                uint64_t late = acks_from(ws, master, t0 + 1200000000ull, healed);
                ck_assert_msg(late == 0,
                              "episode %d: node%d, cut from the others, acknowledged %" PRIu64
                              " writes more than 1.2 s after the cut (seed %" PRIu64 ")",
                              e, master, late, seed);
            }
            break;
        }
        case ONE_WAY:
            snprintf(what, sizeof what, "%s (node%d from node%d)", fault_names[f], follower,
                     master);
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
        case N_FAULTS:
            break;
        }
        /* Healed: a master serves and the clients get acknowledgements. */
        int after = ts_cluster_master(&cl, 15000, NULL);
        ck_assert_msg(after > 0,
                      "episode %d (%s): no master within 15 s of healing (seed %" PRIu64 ")", e,
                      what, seed);
        ts_writers_wait(ws, 20, 20000);
        char took[64] = "";
        if (f == ISOLATE_MASTER || f == KILL_MASTER_WRITER || f == SPLIT_MASTER) {
            uint64_t first = first_ack_elsewhere(ws, master, t0);
            if (first) {
                failover_ms[n_failovers++] = (first - t0) / 1000000;
                snprintf(took, sizeof took, "; node%d acknowledged %" PRIu64 " ms after", after,
                         (first - t0) / 1000000);
            }
        }
        fprintf(stderr, "episode %d: %s for %" PRIu64 " ms; master node%d%s\n", e, what, hold,
                after, took);
    }
    ts_writers_stop(ws);
    ts_writers_settle_and_check(&cl, ws);
    ck_assert_int_eq(ts_history_close(&history), 0);
    ts_op_t *ops = NULL, *finals = NULL;
    size_t n_ops = 0;
    char why[TS_HISTORY_ERRMAX];
    ck_assert_msg(ts_history_load(hist_path, &ops, &n_ops, why, sizeof why) == 0, "%s", why);
    size_t n_finals = ts_writers_final_reads(&cl, &finals);
    ts_report_t report = {.out = stderr};
    size_t problems = ts_check_appends(ops, n_ops, finals, n_finals, &report);
    ck_assert_msg(problems == 0,
                  "the append checker found %zu problems in %s (lines above; seed %" PRIu64 ")",
                  problems, hist_path, seed);
    fprintf(stderr, "history: %zu operations, %zu final lists, the append checker found nothing\n",
            n_ops, n_finals);
    ts_history_free(ops, n_ops);
    ts_writers_final_reads_free(finals, n_finals);
    ts_rmtree(hist_dir);
    free(hist_path);
    free(hist_dir);
    if (n_failovers) {
        qsort(failover_ms, (size_t)n_failovers, sizeof failover_ms[0], cmp_u64);
        fprintf(stderr,
                "nemesis (seed %" PRIu64 "): %d episodes; the master isolated or killed %d times,"
                " a new master acknowledging after p50 %" PRIu64 " ms, max %" PRIu64 " ms\n",
                seed, episodes, n_failovers, failover_ms[n_failovers / 2],
                failover_ms[n_failovers - 1]);
        ck_assert_msg(failover_ms[n_failovers - 1] <= 5000,
                      "a failover took %" PRIu64 " ms (seed %" PRIu64 ")",
                      failover_ms[n_failovers - 1], seed);
    }
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nemesis");
    TCase *tc = tcase_create("netns");
    tcase_add_unchecked_fixture(tc, bed_create, bed_destroy);
    tcase_set_timeout(tc, ts_soak() ? 7200 : 600);
    tcase_add_test(tc, a_nemesis_loses_no_acknowledged_write);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
