/* strata-election and strata-replicator as real processes between fake
 * writers (proto/TRANSPORT.md): the test binds each node's raft endpoint
 * itself and publishes it in writer.endpoints, so it sees exactly what a
 * writer would. HELLO reaches the writer; a message crosses from one
 * node's writer to the other's byte for byte; one for a node that is not
 * running is dropped and counted; one with the wrong `to` is refused at the
 * receiving node and never reaches its writer; the writer's ROLE shows in
 * stats; a writer that restarts, on the same or another endpoint, is found
 * again; a bad cluster config stops the process naming the key. */
#define _GNU_SOURCE
#include <check.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node.h"
#include "strata/client.h"
#include "strata/entry.h"
#include "strata/raft_msg.h"
#include "support.h"

#define HEARTBEAT_MS 20
#define DEADLINE_MS  15000
#define MAX_FRAME    ((int)STRATA_RAFT_MSG_MAX + (64 << 10))

static const char *const kinds[] = {"election", "replicator"};

/* One node as the test plays it: its data dir and config, the fake
 * writer's ROUTER, and the transport under test. */
typedef struct {
    uint32_t id;
    char *data, *cfg;
    zsock_t *raft;
    char raft_ep[700];
    zframe_t *transport; /* routing id of the latest HELLO */
    ts_relay_t relay;
} fake_node_t;

/* Binds the fake writer's raft ROUTER at ipc://<data>/<name> and publishes
 * it in writer.endpoints, as the writer does. */
static void writer_bind(fake_node_t *n, const char *name)
{
    snprintf(n->raft_ep, sizeof n->raft_ep, "ipc://%s/%s", n->data, name);
    n->raft = zsock_new(ZMQ_ROUTER);
    ck_assert_ptr_nonnull(n->raft);
    zsock_set_maxmsgsize(n->raft, MAX_FRAME);
    zsock_set_linger(n->raft, 0);
    ck_assert_int_ge(zsock_bind(n->raft, "%s", n->raft_ep), 0);
    char *path = ts_path(n->data, "writer.endpoints");
    zconfig_t *root = zconfig_new("root", NULL);
    zconfig_put(root, "writer/pid", "1");
    zconfig_put(root, "writer/raft", n->raft_ep);
    ck_assert_int_eq(zconfig_save(root, path), 0);
    zconfig_destroy(&root);
    free(path);
}

static void writer_close(fake_node_t *n)
{
    zsock_destroy(&n->raft);
    zframe_destroy(&n->transport);
}

/* Peer lists for nodes 1..3 on free ports; node 3 never runs. */
static void peer_list(char *out, size_t cap)
{
    snprintf(out, cap, "1=tcp://127.0.0.1:%d,2=tcp://127.0.0.1:%d,3=tcp://127.0.0.1:%d",
             ts_free_port(), ts_free_port(), ts_free_port());
}

static void write_config(const char *path, const char *data, const char *id, const char *voters,
                         const char *election_peers, const char *replicator_peers)
{
    zconfig_t *root = zconfig_new("root", NULL);
    zconfig_put(root, "node/data_dir", data);
    zconfig_put(root, "cluster/id", id);
    zconfig_put(root, "cluster/voters", voters);
    zconfig_put(root, "cluster/election_peers", election_peers);
    zconfig_put(root, "cluster/replicator_peers", replicator_peers);
    char beat[16];
    snprintf(beat, sizeof beat, "%d", HEARTBEAT_MS);
    zconfig_put(root, "cluster/heartbeat_ms", beat);
    zconfig_put(root, "election/metrics", "127.0.0.1:0");
    zconfig_put(root, "replicator/metrics", "127.0.0.1:0");
    ck_assert_int_eq(zconfig_save(root, path), 0);
    zconfig_destroy(&root);
}

static void node_setup(fake_node_t *n, const char *dir, uint32_t id, const char *election_peers,
                       const char *replicator_peers)
{
    memset(n, 0, sizeof *n);
    n->id = id;
    char name[32];
    snprintf(name, sizeof name, "node%" PRIu32, id);
    n->data = ts_path(dir, name);
    ck_assert_int_eq(mkdir(n->data, 0755), 0);
    snprintf(name, sizeof name, "node%" PRIu32 ".cfg", id);
    n->cfg = ts_path(dir, name);
    char id_text[8];
    snprintf(id_text, sizeof id_text, "%" PRIu32, id);
    write_config(n->cfg, n->data, id_text, "1,2,3", election_peers, replicator_peers);
    writer_bind(n, "writer.raft");
}

static void node_teardown(fake_node_t *n)
{
    if (n->relay.pid > 0) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s.endpoints", n->data, n->relay.kind);
        ck_assert_int_eq(ts_relay_stop(&n->relay), 0);
        ck_assert_msg(access(path, F_OK) != 0, "%s is still there after a clean stop", path);
    }
    writer_close(n);
    free(n->data);
    free(n->cfg);
}

/* The next message to the fake writer whose verb (frame 1) is verb, within
 * timeout_ms; every HELLO on the way is checked and its sender kept. NULL
 * when none came. */
static zmsg_t *writer_expect(fake_node_t *n, const char *kind, const char *verb, int timeout_ms)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (ts_now_ns() < deadline) {
        int left = (int)((deadline - ts_now_ns()) / 1000000ull) + 1;
        zsock_set_rcvtimeo(n->raft, left);
        zmsg_t *msg = zmsg_recv(n->raft);
        if (!msg)
            continue;
        zframe_t *routing = zmsg_first(msg), *v = zmsg_next(msg);
        if (v && zframe_streq(v, "HELLO")) {
            ck_assert_uint_eq(zmsg_size(msg), 4);
            zframe_t *k = zmsg_next(msg), *id = zmsg_next(msg);
            ck_assert_msg(zframe_streq(k, kind), "HELLO of kind '%.*s', want %s",
                          (int)zframe_size(k), (char *)zframe_data(k), kind);
            ck_assert_uint_eq(zframe_size(id), 4);
            const uint8_t *b = zframe_data(id);
            uint32_t got =
                (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            ck_assert_uint_eq(got, n->id);
            zframe_destroy(&n->transport);
            n->transport = zframe_dup(routing);
        }
        if (v && zframe_streq(v, verb))
            return msg;
        zmsg_destroy(&msg);
    }
    return NULL;
}

/* The fake writer sends verb and its frames to the transport that said
 * HELLO last. */
static void writer_send(fake_node_t *n, const char *verb, const void *const *frames,
                        const size_t *lens, size_t n_frames)
{
    ck_assert_ptr_nonnull(n->transport);
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(n->transport)});
    zmsg_addstr(msg, verb);
    for (size_t i = 0; i < n_frames; i++)
        zmsg_addmem(msg, frames[i], lens[i]);
    ck_assert_int_eq(zmsg_send(&msg, n->raft), 0);
}

static void writer_send_msg(fake_node_t *n, const uint8_t *buf, size_t len)
{
    const void *frames[] = {buf};
    writer_send(n, "MSG", frames, &len, 1);
}

/* A message of the kind's own types, encoded: a vote for the election, an
 * append with three WAL entries for the replicator. */
static void make_message(const char *kind, uint32_t from, uint32_t to, uint64_t ctx, uint8_t **out,
                         size_t *len)
{
    strata_error_t err;
    if (!strcmp(kind, "election")) {
        strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_VOTE,
                               .from = from,
                               .to = to,
                               .term = 5,
                               .incarnation = 99,
                               .last_seq = 10 + ctx,
                               .last_term = 4};
        ck_assert_msg(strata_raft_msg_encode(&m, NULL, 0, out, len, &err) == 0, "%s", err.msg);
        return;
    }
    uint8_t frames[4096];
    size_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "key-%zu", i);
        strata_entry_t e = {.seq = 11 + i,
                            .term = 5,
                            .timestamp_ns = 1700000000000000000ull + i,
                            .type = STRATA_VALUE_PUT,
                            .key = (const uint8_t *)key,
                            .key_len = (uint32_t)klen,
                            .value = (const uint8_t *)"value",
                            .value_len = 5};
        strata_entry_encode(frames + off, &e);
        off += strata_entry_size(0, (size_t)klen, 5);
    }
    strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = from,
                           .to = to,
                           .term = 5,
                           .incarnation = 99,
                           .prev_seq = 10,
                           .prev_term = 4,
                           .commit_seq = 9,
                           .ctx = ctx,
                           .n_entries = 3};
    ck_assert_msg(strata_raft_msg_encode(&m, frames, off, out, len, &err) == 0, "%s", err.msg);
}

static bool same_bytes(zframe_t *f, const uint8_t *buf, size_t len)
{
    return zframe_size(f) == len && memcmp(zframe_data(f), buf, len) == 0;
}

/* The transport's stats reply; the caller clears it. */
static void stats(ts_relay_t *relay, strata_reply_t *rep)
{
    strata_client_t *c = ts_connect(relay->control, 10000);
    strata_error_t err;
    ck_assert_msg(strata_client_control(c, "stats", NULL, 0, rep, &err) == 0, "stats: %s", err.msg);
    strata_client_destroy(&c);
}

static uint64_t relay_stat(ts_relay_t *relay, const char *name)
{
    strata_reply_t rep;
    stats(relay, &rep);
    uint64_t v = strtoull(ts_pair(&rep, name), NULL, 10);
    strata_reply_clear(&rep);
    return v;
}

typedef struct {
    ts_relay_t *relay;
    const char *name;
    uint64_t at_least;
} stat_wait_t;

static bool stat_reached(void *arg)
{
    stat_wait_t *w = arg;
    return relay_stat(w->relay, w->name) >= w->at_least;
}

static void wait_stat(ts_relay_t *relay, const char *name, uint64_t at_least)
{
    stat_wait_t w = {relay, name, at_least};
    ck_assert_msg(ts_wait_for(stat_reached, &w, DEADLINE_MS), "%s stayed below %" PRIu64, name,
                  at_least);
}

START_TEST(the_transport_carries_its_kind_between_writers)
{
    const char *kind = kinds[_i];
    char *dir = ts_tempdir("transport");
    char election_peers[256], replicator_peers[256];
    peer_list(election_peers, sizeof election_peers);
    peer_list(replicator_peers, sizeof replicator_peers);
    fake_node_t nodes[2];
    for (uint32_t i = 0; i < 2; i++) {
        node_setup(&nodes[i], dir, i + 1, election_peers, replicator_peers);
        ts_relay_start_config(&nodes[i].relay, kind, nodes[i].data, nodes[i].cfg, NULL);
    }
    fake_node_t *n1 = &nodes[0], *n2 = &nodes[1];

    /* HELLO with the kind and the node's id, at connect and every beat. */
    for (int i = 0; i < 2; i++) {
        zmsg_t *hello = writer_expect(&nodes[i], kind, "HELLO", DEADLINE_MS);
        ck_assert_msg(hello != NULL, "node %d's writer got no HELLO", i + 1);
        zmsg_destroy(&hello);
    }

    /* 1 -> 2, byte for byte. The peer connection comes up in the
     * background (ZMQ_IMMEDIATE drops until then), so the writer resends
     * as Raft would until one arrives. */
    uint8_t *m12;
    size_t m12_len;
    make_message(kind, 1, 2, 1, &m12, &m12_len);
    zmsg_t *got = NULL;
    for (uint64_t deadline = ts_now_ns() + DEADLINE_MS * 1000000ull;
         !got && ts_now_ns() < deadline;) {
        writer_send_msg(n1, m12, m12_len);
        got = writer_expect(n2, kind, "MSG", 100);
    }
    ck_assert_msg(got != NULL, "node 2's writer got nothing that node 1's writer sent");
    ck_assert_uint_eq(zmsg_size(got), 3);
    zmsg_first(got);
    zmsg_next(got);
    ck_assert_msg(same_bytes(zmsg_next(got), m12, m12_len), "the message changed on the way");
    zmsg_destroy(&got);
    ck_assert_uint_ge(relay_stat(&n1->relay, "peer_2_sent_total"), 1);
    ck_assert_uint_ge(relay_stat(&n1->relay, "to_peers_total"), 1);
    ck_assert_uint_ge(relay_stat(&n2->relay, "from_peers_total"), 1);

    /* Node 3 is not running: dropped, not queued, and counted. */
    uint64_t dropped = relay_stat(&n1->relay, "dropped_total");
    uint8_t *m13;
    size_t m13_len;
    make_message(kind, 1, 3, 2, &m13, &m13_len);
    writer_send_msg(n1, m13, m13_len);
    wait_stat(&n1->relay, "dropped_total", dropped + 1);
    ck_assert_uint_eq(relay_stat(&n1->relay, "peer_3_sent_total"), 0);

    /* Straight to node 2's bind endpoint with to = 1: refused there. A
     * good message after it on the same connection shows the bad one
     * never reached the writer (one connection keeps its order). */
    uint64_t refused = relay_stat(&n2->relay, "refused_total");
    zsock_t *rogue = zsock_new(ZMQ_DEALER);
    ck_assert_ptr_nonnull(rogue);
    zsock_set_linger(rogue, 0);
    char *port = strrchr(n2->relay.bind, ':');
    ck_assert_ptr_nonnull(port);
    ck_assert_int_eq(zsock_connect(rogue, "tcp://127.0.0.1%s", port), 0);
    uint8_t *wrong;
    size_t wrong_len;
    make_message(kind, 1, 1, 3, &wrong, &wrong_len);
    zmsg_t *bad = zmsg_new();
    zmsg_addstr(bad, "MSG");
    zmsg_addmem(bad, wrong, wrong_len);
    ck_assert_int_eq(zmsg_send(&bad, rogue), 0);
    wait_stat(&n2->relay, "refused_total", refused + 1);
    uint8_t *good;
    size_t good_len;
    make_message(kind, 1, 2, 4, &good, &good_len);
    zmsg_t *sentinel = zmsg_new();
    zmsg_addstr(sentinel, "MSG");
    zmsg_addmem(sentinel, good, good_len);
    ck_assert_int_eq(zmsg_send(&sentinel, rogue), 0);
    got = writer_expect(n2, kind, "MSG", DEADLINE_MS);
    ck_assert_msg(got != NULL, "the good message after the refused one did not arrive");
    zmsg_first(got);
    zmsg_next(got);
    ck_assert_msg(same_bytes(zmsg_next(got), good, good_len),
                  "node 2's writer got something other than the good message");
    zmsg_destroy(&got);
    zsock_destroy(&rogue);

    /* The writer's ROLE shows in stats. */
    uint8_t term[8] = {7}, role[1] = {3}, leader[4] = {2}, commit[8] = {42};
    const void *frames[] = {term, role, leader, commit};
    const size_t lens[] = {8, 1, 4, 8};
    writer_send(n2, "ROLE", frames, lens, 4);
    wait_stat(&n2->relay, "term", 7);
    strata_reply_t rep;
    stats(&n2->relay, &rep);
    ck_assert_str_eq(ts_pair(&rep, "term"), "7");
    ck_assert_str_eq(ts_pair(&rep, "role"), "3");
    ck_assert_str_eq(ts_pair(&rep, "role_name"), "leader");
    ck_assert_str_eq(ts_pair(&rep, "leader"), "2");
    ck_assert_str_eq(ts_pair(&rep, "commit_seq"), "42");
    ck_assert_str_eq(ts_pair(&rep, "writer_connected"), "1");
    ck_assert_str_eq(ts_pair(&rep, "node_id"), "2");
    strata_reply_clear(&rep);

    /* The same figures on /metrics, counters typed counter. */
    char *page = ts_http_get(n2->relay.metrics);
    char want[128];
    snprintf(want, sizeof want, "# TYPE strata_%s_refused_total counter", kind);
    ck_assert_msg(strstr(page, want), "no '%s' in:\n%s", want, page);
    snprintf(want, sizeof want, "strata_%s_term 7", kind);
    ck_assert_msg(strstr(page, want), "no '%s' in:\n%s", want, page);
    snprintf(want, sizeof want, "strata_%s_peer_sent_total{peer=\"1\"}", kind);
    ck_assert_msg(strstr(page, want), "no '%s' in:\n%s", want, page);
    free(page);

    /* Writers that restart: node 1's on another endpoint (the relay reads
     * writer.endpoints again once the writer is silent), node 2's on the
     * same one (ZeroMQ reconnects). Each gets HELLO again. */
    writer_close(n1);
    writer_bind(n1, "writer-restarted.raft");
    writer_close(n2);
    writer_bind(n2, "writer.raft");
    for (int i = 0; i < 2; i++) {
        zmsg_t *hello = writer_expect(&nodes[i], kind, "HELLO", DEADLINE_MS);
        ck_assert_msg(hello != NULL, "node %d's restarted writer got no HELLO", i + 1);
        zmsg_destroy(&hello);
    }
    stats(&n1->relay, &rep);
    ck_assert_str_eq(ts_pair(&rep, "writer_raft"), n1->raft_ep);
    strata_reply_clear(&rep);
    /* And messages flow again to the restarted writer. */
    got = NULL;
    for (uint64_t deadline = ts_now_ns() + DEADLINE_MS * 1000000ull;
         !got && ts_now_ns() < deadline;) {
        writer_send_msg(n1, m12, m12_len);
        got = writer_expect(n2, kind, "MSG", 100);
    }
    ck_assert_msg(got != NULL, "nothing reached node 2's restarted writer");
    zmsg_destroy(&got);

    free(m12);
    free(m13);
    free(wrong);
    free(good);
    for (int i = 0; i < 2; i++)
        node_teardown(&nodes[i]);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* Runs bin -c config; stderr into *out. An alarm ends a process that
 * wrongly starts to serve. */
static int run_stderr(const char *bin, const char *config, char **out)
{
    const char *argv[] = {bin, "-c", config, NULL};
    return ts_run_output(argv, NULL, TS_STDERR, 30, out);
}

START_TEST(a_bad_cluster_config_stops_the_process_naming_the_key)
{
    const char *kind = kinds[_i];
    const char *bin = _i == 0 ? STRATA_ELECTION_BIN : STRATA_REPLICATOR_BIN;
    char *dir = ts_tempdir("transport");
    char *cfg = ts_path(dir, "node.cfg");
    char peers_key[64];
    snprintf(peers_key, sizeof peers_key, "cluster/%s_peers", kind);
    const char *full = "1=tcp://127.0.0.1:61001,2=tcp://127.0.0.1:61002,3=tcp://127.0.0.1:61003";
    const char *short_list = "1=tcp://127.0.0.1:61001,2=tcp://127.0.0.1:61002";
    struct {
        const char *id, *peers, *key, *item;
    } cases[] = {
        {"0", full, "cluster/id", "0"},
        {"1", short_list, peers_key, "node 3"},
        {"4", full, peers_key, "cluster/id 4"},
        {"1", "1=tcp://127.0.0.1:61001,2=udp://x:1,3=tcp://127.0.0.1:61003", peers_key,
         "2=udp://x:1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_config(cfg, dir, cases[c].id, "1,2,3", cases[c].peers, cases[c].peers);
        char *out = NULL;
        int rc = run_stderr(bin, cfg, &out);
        ck_assert_msg(rc != 0, "%s with case %zu: exit 0", bin, c);
        ck_assert_msg(strstr(out, cases[c].key) && strstr(out, cases[c].item),
                      "%s case %zu: stderr names neither %s nor '%s': %s", bin, c, cases[c].key,
                      cases[c].item, out);
        free(out);
    }
    ts_rmtree(dir);
    free(cfg);
    free(dir);
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("transport");
    tcase_add_loop_test(tc, the_transport_carries_its_kind_between_writers, 0, 2);
    tcase_add_loop_test(tc, a_bad_cluster_config_stops_the_process_naming_the_key, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(transport_suite());
}
