/* strata-election and strata-replicator as real processes between fake
 * writers (proto/TRANSPORT.md): the test binds each node's raft endpoint
 * itself and publishes it in writer.endpoints, so it sees exactly what a
 * writer would. HELLO reaches the writer; a message crosses from one
 * node's writer to the other's byte for byte; one for a node that is not
 * running is dropped and counted; one with the wrong `to` is refused at the
 * receiving node and never reaches its writer; the writer's ROLE shows in
 * stats; a writer that restarts, on the same or another endpoint, is found
 * again; a bad cluster config stops the process naming the key. The
 * replicator serves its newest snapshot to a DEALER as a follower's writer
 * would copy it, and answers every wrong request with SNAPERR; the
 * election answers no snapshot request, and publishes the writer's role
 * to every subscriber: at once, at each change, when the writer falls
 * silent and again every ten heartbeats. */
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
#include "strata/snapshot.h"
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
    /* Client endpoints are only named (in what the election publishes),
     * never connected to. */
    zconfig_put(root, "cluster/client_peers",
                "1=tcp://127.0.0.1:7101,2=tcp://127.0.0.1:7102,3=tcp://127.0.0.1:7103");
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

/* Node 1 of three, the others never running, with its transport of kind
 * started. */
static void lone_node(fake_node_t *n, const char *dir, const char *kind)
{
    char election_peers[256], replicator_peers[256];
    peer_list(election_peers, sizeof election_peers);
    peer_list(replicator_peers, sizeof replicator_peers);
    node_setup(n, dir, 1, election_peers, replicator_peers);
    ts_relay_start_config(&n->relay, kind, n->data, n->cfg, NULL);
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
    snprintf(want, sizeof want, "strata_%s_term{process=\"%s\"} 7", kind, kind);
    ck_assert_msg(strstr(page, want), "no '%s' in:\n%s", want, page);
    snprintf(want, sizeof want, "strata_%s_peer_sent_total{process=\"%s\",peer=\"1\"}", kind, kind);
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

/* ---- copying a snapshot ---------------------------------------------------------- */

#define SNAP_MAX_READ (1u << 20)

/* A follower's side of a snapshot copy: a DEALER on a relay's peer
 * endpoint, and what it asked and got, to hold the relay's counters to. */
typedef struct {
    zsock_t *sock;
    uint64_t requests, errors, bytes;
} requester_t;

static void requester_connect(requester_t *q, ts_relay_t *relay)
{
    memset(q, 0, sizeof *q);
    q->sock = zsock_new(ZMQ_DEALER);
    ck_assert_ptr_nonnull(q->sock);
    zsock_set_linger(q->sock, 0);
    char *port = strrchr(relay->bind, ':');
    ck_assert_ptr_nonnull(port);
    ck_assert_int_eq(zsock_connect(q->sock, "tcp://127.0.0.1%s", port), 0);
}

/* Sends verb and frames; the answer, or NULL when none came in time. */
static zmsg_t *ask_within(requester_t *q, const char *verb, const void *const *frames,
                          const size_t *lens, size_t n_frames, int timeout_ms)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, verb);
    for (size_t i = 0; i < n_frames; i++)
        zmsg_addmem(msg, frames[i], lens[i]);
    ck_assert_int_eq(zmsg_send(&msg, q->sock), 0);
    q->requests++;
    zsock_set_rcvtimeo(q->sock, timeout_ms);
    return zmsg_recv(q->sock);
}

static zmsg_t *ask(requester_t *q, const char *verb, const void *const *frames, const size_t *lens,
                   size_t n_frames)
{
    zmsg_t *answer = ask_within(q, verb, frames, lens, n_frames, DEADLINE_MS);
    ck_assert_msg(answer != NULL, "no answer to %s", verb);
    return answer;
}

static void put_u64(uint8_t *p, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static zmsg_t *snap_read(requester_t *q, const char *name, const char *path, uint64_t offset,
                         uint32_t length)
{
    uint8_t off[8], len[4];
    put_u64(off, offset, 8);
    put_u64(len, length, 4);
    const void *frames[] = {name, path, off, len};
    const size_t lens[] = {strlen(name), strlen(path), 8, 4};
    return ask(q, "SNAPREAD", frames, lens, 4);
}

/* answer is a SNAPERR whose text holds want and also (may be NULL); frees it. */
static void expect_snaperr(requester_t *q, zmsg_t *answer, const char *want, const char *also)
{
    char *verb = zmsg_popstr(answer);
    char *text = zmsg_popstr(answer);
    ck_assert_msg(verb && !strcmp(verb, "SNAPERR"), "'%s' (%s), want SNAPERR naming '%s'",
                  verb ? verb : "", text ? text : "", want);
    ck_assert_uint_eq(zmsg_size(answer), 0);
    ck_assert_msg(text && strstr(text, want) && (!also || strstr(text, also)),
                  "SNAPERR '%s' names not '%s' and '%s'", text ? text : "", want, also ? also : "");
    q->errors++;
    free(verb);
    free(text);
    zmsg_destroy(&answer);
}

/* A SNAPDATA for name, path and offset; its data is returned (the caller
 * frees it). */
static zframe_t *expect_snapdata(requester_t *q, zmsg_t *answer, const char *name, const char *path,
                                 uint64_t offset)
{
    char *verb = zmsg_popstr(answer);
    zframe_t *first = zmsg_first(answer);
    ck_assert_msg(verb && !strcmp(verb, "SNAPDATA"), "%s at %s offset %" PRIu64 ": got %s %.*s",
                  path, name, offset, verb ? verb : "nothing", first ? (int)zframe_size(first) : 0,
                  first ? (const char *)zframe_data(first) : "");
    free(verb);
    ck_assert_uint_eq(zmsg_size(answer), 4);
    uint8_t off[8];
    put_u64(off, offset, 8);
    ck_assert(same_bytes(zmsg_first(answer), (const uint8_t *)name, strlen(name)));
    ck_assert(same_bytes(zmsg_next(answer), (const uint8_t *)path, strlen(path)));
    ck_assert(same_bytes(zmsg_next(answer), off, 8));
    zframe_t *data = zmsg_next(answer);
    zmsg_remove(answer, data);
    zmsg_destroy(&answer);
    q->bytes += zframe_size(data);
    return data;
}

/* The whole of a file. */
static uint8_t *slurp(const char *path, size_t *len)
{
    *len = (size_t)ts_file_size(path);
    uint8_t *buf = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(buf);
    if (*len)
        ts_file_read_at(path, 0, buf, *len);
    return buf;
}

static void write_file(const char *dir, const char *name, uint64_t seed, size_t len)
{
    char *path = ts_path(dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "create %s", path);
    uint64_t state = seed | 1;
    for (size_t i = 0; i < len; i++)
        fputc((int)(ts_rand(&state) & 0xff), f);
    ck_assert_int_eq(fclose(f), 0);
    free(path);
}

/* <snapshots>/snap-<seq> with a few files, one over 2 MiB so a copy takes
 * several chunks, one in wal/, one empty; sealed as the snapshotter seals. */
static char *make_snapshot(const char *snapshots, uint64_t seq, strata_snapshot_meta_t *meta)
{
    char name[32];
    snprintf(name, sizeof name, "snap-%020" PRIu64, seq);
    char *dir = ts_path(snapshots, name);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    char *wal = ts_path(dir, "wal");
    ck_assert_int_eq(mkdir(wal, 0755), 0);
    free(wal);
    write_file(dir, "CURRENT", seq, 16);
    write_file(dir, "000007.sst", seq * 7, (5u << 19) + 12345);
    write_file(dir, "wal/000001.log", seq * 11, 4000);
    write_file(dir, "empty", seq, 0);
    strata_error_t err;
    ck_assert_msg(strata_snapshot_seal(dir, seq, 7, "node1", meta, &err) == 0, "seal: %s", err.msg);
    ck_assert_uint_eq(meta->n_files, 4);
    return dir;
}

/* SNAPLIST offers want_name with the exact bytes of its SNAPSHOT. */
static void expect_listed(requester_t *q, const char *snapshots, const char *want_name)
{
    zmsg_t *answer = ask(q, "SNAPLIST", NULL, NULL, 0);
    char *verb = zmsg_popstr(answer), *name = zmsg_popstr(answer);
    ck_assert_msg(!strcmp(verb, "SNAPLIST"), "SNAPLIST answered %s: %s", verb, name);
    ck_assert_str_eq(name, want_name);
    ck_assert_uint_eq(zmsg_size(answer), 1);
    char snapshot_file[700];
    snprintf(snapshot_file, sizeof snapshot_file, "%s/%s/SNAPSHOT", snapshots, want_name);
    size_t len;
    uint8_t *want = slurp(snapshot_file, &len);
    ck_assert_msg(same_bytes(zmsg_first(answer), want, len),
                  "SNAPLIST's frame is not the bytes of %s", snapshot_file);
    free(want);
    free(verb);
    free(name);
    zmsg_destroy(&answer);
}

/* Every file the snapshot lists, in chunks of 1 MiB and 300,000 bytes in
 * turn, comes back as it is on disk; at its end a read gives 0 bytes. */
static void copy_and_compare(requester_t *q, const char *dir, const char *name,
                             const strata_snapshot_meta_t *meta)
{
    for (size_t i = 0; i < meta->n_files; i++) {
        const strata_snapshot_file_t *f = &meta->files[i];
        uint8_t *copy = malloc(f->size + 1);
        uint64_t offset = 0;
        for (unsigned k = 0; offset < f->size; k++) {
            uint32_t length = k % 2 ? 300000 : SNAP_MAX_READ;
            zframe_t *data = expect_snapdata(q, snap_read(q, name, f->name, offset, length), name,
                                             f->name, offset);
            uint64_t want = f->size - offset < length ? f->size - offset : length;
            ck_assert_uint_eq(zframe_size(data), want);
            memcpy(copy + offset, zframe_data(data), zframe_size(data));
            offset += zframe_size(data);
            zframe_destroy(&data);
        }
        zframe_t *end =
            expect_snapdata(q, snap_read(q, name, f->name, f->size, 100), name, f->name, f->size);
        ck_assert_uint_eq(zframe_size(end), 0);
        zframe_destroy(&end);
        char *path = ts_path(dir, f->name);
        size_t len;
        uint8_t *disk = slurp(path, &len);
        ck_assert_uint_eq(len, f->size);
        ck_assert_msg(memcmp(copy, disk, len) == 0, "%s came back changed", path);
        free(disk);
        free(path);
        free(copy);
    }
}

START_TEST(the_replicator_serves_its_newest_snapshot)
{
    char *dir = ts_tempdir("transport");
    fake_node_t n;
    lone_node(&n, dir, "replicator");
    requester_t q;
    requester_connect(&q, &n.relay);
    char *snapshots = ts_path(n.data, "snapshots");

    /* No directory yet; then one with only what is not sealed. */
    expect_snaperr(&q, ask(&q, "SNAPLIST", NULL, NULL, 0), "no snapshot in ", "/snapshots");
    ck_assert_int_eq(mkdir(snapshots, 0755), 0);
    char *half = ts_path(snapshots, ".tmp-1-1");
    char *unsealed = ts_path(snapshots, "snap-00000000000000000099");
    ck_assert_int_eq(mkdir(half, 0755), 0);
    ck_assert_int_eq(mkdir(unsealed, 0755), 0);
    expect_snaperr(&q, ask(&q, "SNAPLIST", NULL, NULL, 0), "no snapshot in ", "/snapshots");

    strata_snapshot_meta_t meta42, meta43;
    char *snap42 = make_snapshot(snapshots, 42, &meta42);
    const char *name42 = "snap-00000000000000000042", *name43 = "snap-00000000000000000043";
    expect_listed(&q, snapshots, name42);
    copy_and_compare(&q, snap42, name42, &meta42);

    /* Each wrong request gets a SNAPERR naming what is wrong. */
    char *sst = ts_path(snap42, "000007.sst");
    uint64_t sst_size = ts_file_size(sst);
    expect_snaperr(&q, snap_read(&q, "snap-00000000000000000077", "CURRENT", 0, 10),
                   "snap-00000000000000000077", "gone");
    expect_snaperr(&q, snap_read(&q, "snap-00000000000000000099", "CURRENT", 0, 10),
                   "snap-00000000000000000099", NULL);
    expect_snaperr(&q, snap_read(&q, "snap-42", "CURRENT", 0, 10), "name", "'snap-42'");
    expect_snaperr(&q, snap_read(&q, "../snapshots", "CURRENT", 0, 10), "name", "../snapshots");
    expect_snaperr(&q, snap_read(&q, name42, "../x", 0, 10), "path", "'../x'");
    expect_snaperr(&q, snap_read(&q, name42, "SNAPSHOT", 0, 10), "path", "'SNAPSHOT'");
    expect_snaperr(&q, snap_read(&q, name42, "wal", 0, 10), "path", "'wal'");
    char past[32];
    snprintf(past, sizeof past, "%" PRIu64, sst_size + 1);
    expect_snaperr(&q, snap_read(&q, name42, "000007.sst", sst_size + 1, 10), "offset", past);
    expect_snaperr(&q, snap_read(&q, name42, "000007.sst", 0, 0), "length", "length: 0,");
    expect_snaperr(&q, snap_read(&q, name42, "000007.sst", 0, SNAP_MAX_READ + 1), "length",
                   "1048577");
    const void *frames[] = {name42, "CURRENT", "\0\0\0\0\0\0\0", "\x10\0\0\0\0\0\0\0"};
    size_t lens[] = {strlen(name42), 7, 7, 4};
    expect_snaperr(&q, ask(&q, "SNAPREAD", frames, lens, 4), "offset", "7 bytes");
    lens[2] = 8;
    lens[3] = 8;
    expect_snaperr(&q, ask(&q, "SNAPREAD", frames, lens, 4), "length", "8 bytes");
    expect_snaperr(&q, ask(&q, "SNAPREAD", frames, lens, 3), "SNAPREAD", "frames");
    expect_snaperr(&q, ask(&q, "SNAPLIST", frames, lens, 1), "SNAPLIST", "frames");

    /* A SNAPSHOT renamed into place anew (sealed again, with one more
     * file) is read again, not the parse kept from before. */
    write_file(snap42, "extra", 5, 10);
    strata_snapshot_meta_t resealed;
    strata_error_t err;
    ck_assert_msg(strata_snapshot_seal(snap42, 42, 7, "node1", &resealed, &err) == 0, "seal: %s",
                  err.msg);
    strata_snapshot_meta_free(&resealed);
    zframe_t *extra =
        expect_snapdata(&q, snap_read(&q, name42, "extra", 0, 100), name42, "extra", 0);
    ck_assert_uint_eq(zframe_size(extra), 10);
    zframe_destroy(&extra);

    /* A file shorter than SNAPSHOT lists: an error naming it, never short data. */
    ts_file_truncate(sst, sst_size - 1000);
    char at[32];
    snprintf(at, sizeof at, "offset %" PRIu64, sst_size - 1000);
    expect_snaperr(&q, snap_read(&q, name42, "000007.sst", sst_size - 2000, SNAP_MAX_READ),
                   "snap-00000000000000000042/000007.sst", at);
    zframe_t *data =
        expect_snapdata(&q, snap_read(&q, name42, "000007.sst", 0, 4096), name42, "000007.sst", 0);
    ck_assert_uint_eq(zframe_size(data), 4096);
    zframe_destroy(&data);

    /* A newer one is offered; the older can still be read until it goes. */
    char *snap43 = make_snapshot(snapshots, 43, &meta43);
    expect_listed(&q, snapshots, name43);
    copy_and_compare(&q, snap43, name43, &meta43);
    data = expect_snapdata(&q, snap_read(&q, name42, "CURRENT", 0, 100), name42, "CURRENT", 0);
    ck_assert_uint_eq(zframe_size(data), 16);
    zframe_destroy(&data);
    ts_rmtree(snap42);
    expect_snaperr(&q, snap_read(&q, name42, "CURRENT", 0, 100), name42, "gone");
    expect_listed(&q, snapshots, name43);

    /* The counters hold every request, every SNAPERR and every byte. */
    wait_stat(&n.relay, "snapshot_requests_total", q.requests);
    strata_reply_t rep;
    stats(&n.relay, &rep);
    char want[128];
    snprintf(want, sizeof want, "%" PRIu64, q.requests);
    ck_assert_str_eq(ts_pair(&rep, "snapshot_requests_total"), want);
    snprintf(want, sizeof want, "%" PRIu64, q.errors);
    ck_assert_str_eq(ts_pair(&rep, "snapshot_errors_total"), want);
    snprintf(want, sizeof want, "%" PRIu64, q.bytes);
    ck_assert_str_eq(ts_pair(&rep, "snapshot_bytes_served_total"), want);
    ck_assert_str_eq(ts_pair(&rep, "refused_total"), "0");
    strata_reply_clear(&rep);
    char *page = ts_http_get(n.relay.metrics);
    snprintf(want, sizeof want,
             "strata_replicator_snapshot_bytes_served_total{process=\"replicator\"} %" PRIu64,
             q.bytes);
    ck_assert_msg(strstr(page, want), "no '%s' in:\n%s", want, page);
    ck_assert_msg(strstr(page, "# TYPE strata_replicator_snapshot_errors_total counter"),
                  "no snapshot_errors_total counter in:\n%s", page);
    free(page);

    strata_snapshot_meta_free(&meta42);
    strata_snapshot_meta_free(&meta43);
    zsock_destroy(&q.sock);
    node_teardown(&n);
    free(sst);
    free(snap42);
    free(snap43);
    free(half);
    free(unsealed);
    free(snapshots);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(the_election_answers_no_snapshot_request)
{
    char *dir = ts_tempdir("transport");
    fake_node_t n;
    lone_node(&n, dir, "election");
    char *snapshots = ts_path(n.data, "snapshots");
    ck_assert_int_eq(mkdir(snapshots, 0755), 0);
    strata_snapshot_meta_t meta;
    char *snap = make_snapshot(snapshots, 42, &meta);
    requester_t q;
    requester_connect(&q, &n.relay);

    /* Refused and counted as any unknown verb is; once counted, the relay
     * is done with it, and no answer came. */
    uint64_t refused = relay_stat(&n.relay, "refused_total");
    zmsg_t *answer = ask_within(&q, "SNAPLIST", NULL, NULL, 0, 0);
    ck_assert_ptr_null(answer);
    wait_stat(&n.relay, "refused_total", refused + 1);
    zsock_set_rcvtimeo(q.sock, 200);
    answer = zmsg_recv(q.sock);
    ck_assert_msg(answer == NULL, "the election answered SNAPLIST");
    strata_reply_t rep;
    stats(&n.relay, &rep);
    for (size_t i = 0; i < rep.n_pairs; i++)
        ck_assert_msg(strncmp(rep.pairs[i].name, "snapshot_", 9) != 0,
                      "the election's stats show %s", rep.pairs[i].name);
    strata_reply_clear(&rep);
    char *page = ts_http_get(n.relay.metrics);
    ck_assert_msg(!strstr(page, "snapshot"), "the election's metrics show snapshots:\n%s", page);
    free(page);

    strata_snapshot_meta_free(&meta);
    zsock_destroy(&q.sock);
    node_teardown(&n);
    free(snap);
    free(snapshots);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

typedef struct {
    uint64_t term, leader;
    unsigned role, writer;
    char master[64];
} published_t;

/* The next ROLE the election publishes, within timeout_ms; false when none. */
static bool next_role(zsock_t *sub, int timeout_ms, published_t *out)
{
    zsock_set_rcvtimeo(sub, timeout_ms);
    zmsg_t *m = zmsg_recv(sub);
    if (!m)
        return false;
    ck_assert_uint_eq(zmsg_size(m), 6);
    zframe_t *f[6];
    f[0] = zmsg_first(m);
    for (int i = 1; i < 6; i++)
        f[i] = zmsg_next(m);
    ck_assert(zframe_streq(f[0], "ROLE"));
    ck_assert_uint_eq(zframe_size(f[1]), 8);
    ck_assert_uint_eq(zframe_size(f[2]), 1);
    ck_assert_uint_eq(zframe_size(f[3]), 4);
    ck_assert_uint_eq(zframe_size(f[4]), 1);
    memset(out, 0, sizeof *out);
    for (int i = 7; i >= 0; i--)
        out->term = out->term << 8 | zframe_data(f[1])[i];
    out->role = zframe_data(f[2])[0];
    for (int i = 3; i >= 0; i--)
        out->leader = out->leader << 8 | zframe_data(f[3])[i];
    out->writer = zframe_data(f[4])[0];
    snprintf(out->master, sizeof out->master, "%.*s", (int)zframe_size(f[5]),
             (const char *)zframe_data(f[5]));
    zmsg_destroy(&m);
    return true;
}

START_TEST(the_election_publishes_the_writers_role)
{
    char *dir = ts_tempdir("transport");
    fake_node_t n;
    lone_node(&n, dir, "election");
    zmsg_t *hello = writer_expect(&n, "election", "HELLO", DEADLINE_MS);
    ck_assert_ptr_nonnull(hello);
    zmsg_destroy(&hello);

    char *file = ts_path(n.data, "election.endpoints");
    zconfig_t *eps = zconfig_load(file);
    ck_assert_ptr_nonnull(eps);
    const char *roles = zconfig_get(eps, "election/roles", NULL);
    ck_assert_msg(roles && !strncmp(roles, "ipc://", 6), "election.endpoints has roles '%s'",
                  roles ? roles : "(none)");
    zsock_t *sub = zsock_new_sub(roles, "");
    ck_assert_ptr_nonnull(sub);
    zconfig_destroy(&eps);
    free(file);

    /* A new subscriber hears at once: no ROLE from the writer yet. */
    published_t p;
    ck_assert_msg(next_role(sub, 2000, &p), "nothing published to a new subscriber");
    ck_assert_uint_eq(p.role, 255);
    ck_assert_str_eq(p.master, "");

    /* The writer's ROLE, with the master's client endpoint. */
    uint8_t term[8] = {7}, role[1] = {0}, leader[4] = {2}, commit[8] = {42};
    const void *frames[] = {term, role, leader, commit};
    const size_t lens[] = {8, 1, 4, 8};
    writer_send(&n, "ROLE", frames, lens, 4);
    uint64_t deadline = ts_now_ns() + DEADLINE_MS * 1000000ull;
    bool seen = false;
    while (!seen && ts_now_ns() < deadline && next_role(sub, 1000, &p))
        seen = p.term == 7;
    ck_assert_msg(seen, "the writer's ROLE of term 7 was not published");
    ck_assert_uint_eq(p.role, 0);
    ck_assert_uint_eq(p.leader, 2);
    ck_assert_uint_eq(p.writer, 1);
    ck_assert_str_eq(p.master, "tcp://127.0.0.1:7102");

    /* Nothing changes: it is said again within ten heartbeats. */
    uint64_t before = ts_now_ns();
    ck_assert(next_role(sub, 20 * HEARTBEAT_MS, &p));
    ck_assert_uint_eq(p.term, 7);
    ck_assert_uint_le((ts_now_ns() - before) / 1000000, 20 * HEARTBEAT_MS);

    /* The writer falls silent: said at once, with writer 0. */
    seen = false;
    deadline = ts_now_ns() + DEADLINE_MS * 1000000ull;
    while (!seen && ts_now_ns() < deadline && next_role(sub, 1000, &p))
        seen = p.writer == 0;
    ck_assert_msg(seen, "a silent writer was not published");
    ck_assert_uint_eq(p.term, 7);

    zsock_destroy(&sub);
    node_teardown(&n);
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
    tcase_add_test(tc, the_election_publishes_the_writers_role);
    tcase_add_test(tc, the_replicator_serves_its_newest_snapshot);
    tcase_add_test(tc, the_election_answers_no_snapshot_request);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(transport_suite());
}
