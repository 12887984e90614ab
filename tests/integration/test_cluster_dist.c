/* Distribution across a cluster's failures, with real processes on loopback
 * (tests/support/cluster.h): three nodes, a strata-distributor on each, a
 * live subscriber given every node's endpoints and attached to a slave.
 * Writes go through the master while the master's writer is killed -9 (and
 * restarted), then while the distributor the subscriber reads is killed -9.
 * The subscriber must see every acknowledged write exactly once, with seqs
 * strictly increasing and each at the seq its write was acknowledged with;
 * no write, acknowledged or not, twice. The masters' no-op entries are on
 * topic $sys and never delivered, so only the keys written are compared. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "strata/client.h"
#include "strata/subscriber.h"
#include "support.h"

#define MAX_KEYS 200000

/* ---- the writer: one client, in order, moving to the master ---------------- */

typedef struct {
    ts_cluster_t *cl;
    _Atomic bool stop;
    uint64_t *acked_seq; /* by key number; 0: not acknowledged */
    _Atomic uint32_t next_key;
    _Atomic uint64_t n_acked, max_acked_seq;
    _Atomic uint64_t last_ack_ns;
    _Atomic int last_ack_node;
    uint64_t unknown;
    pthread_t thread;
} writer_t;

static void key_of(char *key, size_t cap, uint32_t i)
{
    snprintf(key, cap, "k%06" PRIu32, i);
}

/* Short, so a write stuck on a dead master moves on soon. */
static strata_client_t *connect_to(ts_member_t *m)
{
    return ts_member_connect(m, 250);
}

/* Puts keys in order, with no topic (published as "kv"). A write refused
 * outright (not master) is tried again on the next node; one whose outcome
 * is unknown is skipped, and may or may not be delivered (once). */
static void *writer_main(void *arg)
{
    writer_t *w = arg;
    int node = 0;
    strata_client_t *c = connect_to(&w->cl->m[node]);
    uint32_t i = 0;
    while (!atomic_load(&w->stop) && i < MAX_KEYS) {
        char key[32];
        key_of(key, sizeof key, i);
        strata_error_t err;
        strata_request_t req = {.op = STRATA_OP_PUT,
                                .durability = STRATA_DURABILITY_SYNC,
                                .replication = STRATA_REPLICATION_QUORUM,
                                .key = {(const uint8_t *)key, strlen(key)},
                                .value = {(const uint8_t *)key, strlen(key)}};
        strata_reply_t rep;
        uint64_t seq = 0;
        int rc = c ? strata_client_call(c, &req, &rep, &err) : STRATA_ETIMEDOUT;
        if (c) {
            seq = rep.seq;
            strata_reply_clear(&rep);
        }
        if (rc == 0) {
            w->acked_seq[i] = seq;
            if (seq > atomic_load(&w->max_acked_seq))
                atomic_store(&w->max_acked_seq, seq);
            atomic_fetch_add(&w->n_acked, 1);
            atomic_store(&w->last_ack_ns, ts_now_ns());
            atomic_store(&w->last_ack_node, node + 1);
            atomic_store(&w->next_key, ++i);
            continue;
        }
        if (rc == STRATA_ETIMEDOUT || (rc == STRATA_ENOTMASTER && strstr(err.msg, "unknown"))) {
            w->unknown++;
            atomic_store(&w->next_key, ++i);
        }
        strata_client_destroy(&c);
        node = (node + 1) % w->cl->n;
        c = connect_to(&w->cl->m[node]);
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, NULL); /* a short backoff between nodes, not a wait for state */
    }
    strata_client_destroy(&c);
    return NULL;
}

static void wait_acked(writer_t *w, uint64_t more, unsigned timeout_ms)
{
    uint64_t want = atomic_load(&w->n_acked) + more;
    uint64_t deadline = ts_now_ns() + timeout_ms * 1000000ull;
    while (atomic_load(&w->n_acked) < want && ts_now_ns() < deadline) {
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's count with a deadline */
    }
    ck_assert_msg(atomic_load(&w->n_acked) >= want, "no %" PRIu64 " acknowledged writes in %u ms",
                  more, timeout_ms);
}

/* ---- the reader: the subscriber in its own thread ------------------------- */

typedef struct {
    strata_sub_t *sub;
    _Atomic bool stop;
    uint64_t *delivered_seq; /* by key number; 0: not delivered */
    uint32_t *times;         /* deliveries by key number */
    _Atomic uint64_t last_seq, delivered;
    _Atomic uint64_t failovers;
    _Atomic size_t node;
    uint64_t last_term;
    char failure[1024];  /* the first thing that went wrong */
    _Atomic bool failed; /* set once failure is written: the other thread reads it then */
    pthread_t thread;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    while (!atomic_load(&r->stop) && !r->failure[0]) {
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(r->sub, 100, &e, NULL, NULL, &err);
        strata_sub_stats_t stats;
        strata_sub_stats(r->sub, &stats);
        atomic_store(&r->failovers, stats.failovers);
        atomic_store(&r->node, strata_sub_node(r->sub));
        if (rc == STRATA_ETIMEDOUT)
            continue;
        if (rc) {
            snprintf(r->failure, sizeof r->failure, "next: %s (%d)", err.msg, rc);
            break;
        }
        uint32_t k = 0;
        if (e.key_len != 7 || e.key[0] != 'k' || sscanf((const char *)e.key + 1, "%6u", &k) != 1 ||
            k >= MAX_KEYS) {
            snprintf(r->failure, sizeof r->failure, "seq %" PRIu64 ": a key this test never wrote",
                     e.seq);
            break;
        }
        if (e.seq <= atomic_load(&r->last_seq)) {
            snprintf(r->failure, sizeof r->failure,
                     "seq %" PRIu64 " delivered after seq %" PRIu64 " (key %u)", e.seq,
                     atomic_load(&r->last_seq), k);
            break;
        }
        if (e.term < r->last_term) {
            snprintf(r->failure, sizeof r->failure,
                     "seq %" PRIu64 " has term %" PRIu64 " after term %" PRIu64, e.seq, e.term,
                     r->last_term);
            break;
        }
        r->last_term = e.term;
        r->times[k]++;
        r->delivered_seq[k] = e.seq;
        atomic_store(&r->last_seq, e.seq);
        atomic_fetch_add(&r->delivered, 1);
    }
    if (r->failure[0])
        atomic_store(&r->failed, true);
    return NULL;
}

/* Waits until the subscriber has delivered up to seq, or failed. */
static void wait_delivered(reader_t *r, uint64_t seq, unsigned timeout_ms)
{
    uint64_t deadline = ts_now_ns() + timeout_ms * 1000000ull;
    while (atomic_load(&r->last_seq) < seq && !atomic_load(&r->failed) && ts_now_ns() < deadline) {
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL); /* polling the reader's progress with a deadline */
    }
    ck_assert_msg(!atomic_load(&r->failed), "subscriber: %s", r->failure);
    ck_assert_msg(atomic_load(&r->last_seq) >= seq,
                  "the subscriber reached seq %" PRIu64 ", not %" PRIu64 ", within %u ms",
                  atomic_load(&r->last_seq), seq, timeout_ms);
}

/* Kills the master's writer and waits for another node to acknowledge a
 * write; returns the killed node. */
static int kill_master_writer(ts_cluster_t *cl, writer_t *w)
{
    int master = ts_cluster_master(cl, 10000, NULL);
    ck_assert_int_gt(master, 0);
    uint64_t t0 = ts_now_ns();
    ts_node_kill9(&cl->m[master - 1].writer);
    uint64_t deadline = t0 + 10000000000ull;
    while (ts_now_ns() < deadline &&
           !(atomic_load(&w->last_ack_ns) > t0 && atomic_load(&w->last_ack_node) != master)) {
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's acknowledgements */
    }
    ck_assert_msg(atomic_load(&w->last_ack_ns) > t0 && atomic_load(&w->last_ack_node) != master,
                  "no write acknowledged by another node within 10 s of killing node%d's writer",
                  master);
    fprintf(stderr, "killed node%d's writer; node%d acknowledged writes %" PRIu64 " ms later\n",
            master, atomic_load(&w->last_ack_node), (atomic_load(&w->last_ack_ns) - t0) / 1000000);
    return master;
}

START_TEST(a_subscriber_sees_every_committed_write_once_across_master_and_distributor_kills)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "cluster-dist");
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    for (int i = 0; i < cl.n; i++)
        ts_member_start_distributor(&cl.m[i]);

    /* The subscriber starts on a slave; its list goes on with the master
     * (whose writer is killed and restarted before the subscriber needs
     * it), then the third node. */
    int slave = master % cl.n + 1, third = slave % cl.n + 1;
    int order[3] = {slave, master, third};
    strata_sub_node_t nodes[3];
    for (int i = 0; i < 3; i++)
        nodes[i] =
            (strata_sub_node_t){cl.m[order[i] - 1].dist.live, cl.m[order[i] - 1].dist.history};
    strata_sub_options_t opts = {
        .nodes = nodes, .n_nodes = 3, .failover_ms = 1000, .timeout_ms = 3000};
    reader_t r = {.delivered_seq = calloc(MAX_KEYS, sizeof(uint64_t)),
                  .times = calloc(MAX_KEYS, sizeof(uint32_t))};
    strata_error_t err;
    ck_assert_msg(strata_sub_open(&opts, &r.sub, &err) == 0, "open: %s", err.msg);
    /* Open moves on from a node that sends no heartbeat within failover_ms;
     * the test is about a subscriber on the slave, so it must be there. */
    ck_assert_msg(strata_sub_node(r.sub) == 0, "open skipped node%d's distributor (see %s)", slave,
                  cl.m[slave - 1].dist.log);
    ck_assert_int_eq(pthread_create(&r.thread, NULL, reader_main, &r), 0);

    writer_t w = {.cl = &cl, .acked_seq = calloc(MAX_KEYS, sizeof(uint64_t))};
    ck_assert_int_eq(pthread_create(&w.thread, NULL, writer_main, &w), 0);
    wait_acked(&w, 50, 15000);
    wait_delivered(&r, atomic_load(&w.max_acked_seq), 10000);

    /* The master's writer, killed: the slave's distributor goes on with
     * what the new master commits. */
    int killed = kill_master_writer(&cl, &w);
    ck_assert_int_eq(killed, master);
    wait_acked(&w, 50, 10000);
    ts_member_start_writer(&cl.m[killed - 1]);
    wait_acked(&w, 50, 10000);
    wait_delivered(&r, atomic_load(&w.max_acked_seq), 10000);
    ck_assert_uint_eq(atomic_load(&r.failovers), 0);

    /* The distributor the subscriber reads, killed: it moves on. */
    ts_dist_kill9(&cl.m[slave - 1].dist);
    uint64_t deadline = ts_now_ns() + 10000000000ull;
    while (atomic_load(&r.failovers) == 0 && !atomic_load(&r.failed) && ts_now_ns() < deadline) {
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL); /* polling the subscriber's failovers with a deadline */
    }
    ck_assert_msg(!atomic_load(&r.failed), "subscriber: %s", r.failure);
    ck_assert_msg(atomic_load(&r.failovers) > 0,
                  "the subscriber did not leave node%d's killed distributor within 10 s", slave);
    fprintf(stderr, "the subscriber moved to node%d\n", order[atomic_load(&r.node)]);
    wait_acked(&w, 50, 10000);
    atomic_store(&w.stop, true);
    pthread_join(w.thread, NULL);
    wait_delivered(&r, atomic_load(&w.max_acked_seq), 15000);
    atomic_store(&r.stop, true);
    pthread_join(r.thread, NULL);
    ck_assert_msg(!r.failure[0], "subscriber: %s", r.failure);

    uint32_t written = atomic_load(&w.next_key);
    uint64_t acked = 0, delivered_unacked = 0;
    for (uint32_t k = 0; k < written; k++) {
        ck_assert_msg(r.times[k] <= 1, "key k%06u delivered %u times", k, r.times[k]);
        if (w.acked_seq[k]) {
            acked++;
            ck_assert_msg(r.times[k] == 1, "acknowledged key k%06u (seq %" PRIu64 ") not delivered",
                          k, w.acked_seq[k]);
            ck_assert_msg(r.delivered_seq[k] == w.acked_seq[k],
                          "key k%06u delivered at seq %" PRIu64 ", acknowledged at %" PRIu64, k,
                          r.delivered_seq[k], w.acked_seq[k]);
        } else if (r.times[k]) {
            delivered_unacked++;
        }
    }
    ck_assert_uint_eq(acked, atomic_load(&w.n_acked));
    uint64_t term = strata_sub_term(r.sub);
    strata_sub_stats_t stats;
    strata_sub_stats(r.sub, &stats);
    fprintf(stderr,
            "%" PRIu64 " acknowledged writes delivered once each, %" PRIu64
            " with an unknown outcome of which %" PRIu64
            " committed and delivered once; last term %" PRIu64 "; subscriber: %" PRIu64
            " delivered, %" PRIu64 " replayed, %" PRIu64 " gaps, %" PRIu64
            " duplicates dropped, %" PRIu64 " failovers\n",
            acked, w.unknown, delivered_unacked, term, stats.delivered, stats.replayed, stats.gaps,
            stats.duplicates, stats.failovers);
    ck_assert_uint_ge(term, 2); /* the stream now serves a later master's log */
    strata_sub_close(&r.sub);
    free(r.delivered_seq);
    free(r.times);
    free(w.acked_seq);
    ts_cluster_destroy(&cl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_dist");
    TCase *tc = tcase_create("failover");
    tcase_set_timeout(tc, 300);
    tcase_add_test(
        tc, a_subscriber_sees_every_committed_write_once_across_master_and_distributor_kills);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
