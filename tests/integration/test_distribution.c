/* Distribution end to end: a real strata-writer and strata-distributor on
 * loopback, read through the shm ring and through the distributor's
 * streams, history and durable sessions (proto/DISTRIBUTION.md). Every test
 * checks seqs exactly: each one once, in order, none missing. */
#define _GNU_SOURCE
#include <check.h>
#include <czmq.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node.h"
#include "strata/client.h"
#include "strata/pubframe.h"
#include "strata/ring.h"
#include "strata/subscriber.h"
#include "strata/wal.h"
#include "support.h"

static char *ring_path(const ts_node_t *node)
{
    char file[600];
    snprintf(file, sizeof file, "%s/writer.endpoints", node->dir);
    zconfig_t *cfg = zconfig_load(file);
    ck_assert_ptr_nonnull(cfg);
    char *path = strdup(zconfig_get(cfg, "writer/ring", ""));
    zconfig_destroy(&cfg);
    ck_assert_msg(path[0] == '/', "writer/ring: '%s'", path);
    return path;
}

/* ---- a loader: batched async puts, every seq it was given recorded ---- */

typedef struct {
    const char *endpoint;
    uint64_t total;    /* stop after this many puts (0: until stop) */
    uint32_t batch;    /* ops per request */
    unsigned pause_us; /* between requests, to keep a steady stream */
    atomic_bool stop;
    _Atomic uint64_t written, last_seq;
    uint8_t *seen; /* seq -> 1, sized cap */
    uint64_t cap;
    uint64_t first_seq;
    pthread_t thread;
} loader_t;

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    strata_client_t *c = ts_connect(l->endpoint, 10000);
    strata_batch_op_t *ops = calloc(l->batch, sizeof *ops);
    char(*keys)[32] = calloc(l->batch, 32);
    static const char value[] = "0123456789abcdef0123456789abcdef";
    uint64_t n = 0;
    while (!atomic_load(&l->stop) && (!l->total || n < l->total)) {
        uint32_t k = l->batch;
        if (l->total && l->total - n < k)
            k = (uint32_t)(l->total - n);
        for (uint32_t i = 0; i < k; i++) {
            int len = snprintf(keys[i], 32, "k%012" PRIu64, n + i);
            ops[i] = (strata_batch_op_t){.kind = STRATA_BATCH_PUT,
                                         .key = {(const uint8_t *)keys[i], (size_t)len},
                                         .value = {(const uint8_t *)value, sizeof value - 1}};
        }
        uint64_t last = 0;
        strata_error_t err;
        int rc = strata_client_batch(c, STRATA_ASYNC, ops, k, &last, &err);
        ck_assert_msg(rc == 0, "loader batch: %d %s", rc, err.msg);
        ck_assert_msg(last < l->cap, "seq %" PRIu64 " beyond the test's map", last);
        for (uint64_t s = last - k + 1; s <= last; s++)
            l->seen[s] = 1;
        if (!l->first_seq)
            l->first_seq = last - k + 1;
        n += k;
        atomic_store(&l->written, n);
        atomic_store(&l->last_seq, last);
        if (l->pause_us)
            usleep(l->pause_us); /* pacing, not synchronisation */
    }
    free(ops);
    free(keys);
    strata_client_destroy(&c);
    return NULL;
}

static void loader_start(loader_t *l, const char *endpoint, uint64_t total, uint32_t batch,
                         unsigned pause_us, uint64_t cap)
{
    memset(l, 0, sizeof *l);
    l->endpoint = endpoint;
    l->total = total;
    l->batch = batch;
    l->pause_us = pause_us;
    l->cap = cap;
    l->seen = calloc(cap, 1);
    ck_assert_ptr_nonnull(l->seen);
    ck_assert_int_eq(pthread_create(&l->thread, NULL, loader_main, l), 0);
}

/* A bounded loader runs to its total; an open-ended one is told to stop. */
static void loader_join(loader_t *l)
{
    if (!l->total)
        atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
}

/* The loader's seq after s (0 if none). */
static uint64_t loader_next(const loader_t *l, uint64_t s)
{
    uint64_t last = atomic_load(&l->last_seq);
    for (uint64_t x = s + 1; x <= last; x++)
        if (l->seen[x])
            return x;
    return 0;
}

/* ---- history replay, page by page, straight from the protocol ---- */

typedef void (*entry_fn)(void *arg, const strata_entry_t *e);

/* Replays [from, to] of every topic through the history endpoint. */
static void replay_range(strata_client_t *hist, uint64_t from, uint64_t to, entry_fn fn, void *arg)
{
    uint64_t next = from;
    for (;;) {
        strata_request_t req = {.op = STRATA_OP_REPLAY, .seq = next, .to_seq = to};
        strata_reply_t rep;
        strata_error_t err;
        int rc = strata_client_call(hist, &req, &rep, &err);
        ck_assert_msg(rc == 0, "replay from %" PRIu64 ": %d %s", next, rc, err.msg);
        size_t off = 0;
        for (uint32_t i = 0; i < rep.count; i++) {
            strata_entry_t e;
            size_t used;
            ck_assert_msg(strata_entry_decode(rep.entries_blob.data + off,
                                              rep.entries_blob.len - off, 64u << 20, &e, &used,
                                              &err) == 0,
                          "replay entry %u: %s", i, err.msg);
            fn(arg, &e);
            off += used;
        }
        ck_assert_uint_eq(off, rep.entries_blob.len);
        bool done = rep.done;
        next = rep.next_seq;
        strata_reply_clear(&rep);
        if (done || next > to)
            break;
    }
}

/* ---- a local ring reader that repairs laps from history ---- */

typedef struct {
    const char *ring;
    const char *history;
    uint64_t want_last; /* stop once this seq is read */
    bool pause_first;   /* do not read until released (forces a lap) */
    atomic_bool release;
    uint64_t next, laps, from_history, errors;
    char failure[640];
    pthread_t thread;
} local_t;

static void local_take(void *arg, const strata_entry_t *e)
{
    local_t *l = arg;
    if (e->seq != l->next && !l->failure[0])
        snprintf(l->failure, sizeof l->failure, "history gave seq %" PRIu64 ", expected %" PRIu64,
                 e->seq, l->next);
    l->next = e->seq + 1;
    l->from_history++;
}

static void *local_main(void *arg)
{
    local_t *l = arg;
    strata_ring_reader_options_t ro = {.start = STRATA_RING_FROM_OLDEST};
    strata_ring_reader_t *r = NULL;
    strata_error_t err;
    if (strata_ring_reader_open(l->ring, &ro, &r, &err) != 0) {
        snprintf(l->failure, sizeof l->failure, "open: %s", err.msg);
        return NULL;
    }
    while (l->pause_first && !atomic_load(&l->release))
        usleep(1000); /* the test holds this reader still on purpose */
    strata_client_t *hist = ts_connect(l->history, 10000);
    uint64_t deadline = ts_now_ns() + 300000000000ull;
    while (l->next <= l->want_last && !l->failure[0] && ts_now_ns() < deadline) {
        strata_entry_t e;
        int rc = strata_ring_reader_next(r, 1000, &e, NULL, NULL);
        if (rc == 0) {
            uint64_t seq = e.seq;
            if (!strata_ring_reader_intact(r))
                rc = STRATA_ELAPPED;
            else if (l->next && seq != l->next)
                snprintf(l->failure, sizeof l->failure,
                         "ring gave seq %" PRIu64 ", expected %" PRIu64, seq, l->next);
            else
                l->next = seq + 1;
        }
        if (rc == STRATA_ELAPPED) {
            /* Lapped: take what the ring lost from history, then go on in
             * the ring from there. */
            l->laps++;
            strata_ring_info_t info;
            strata_ring_reader_info(r, &info);
            uint64_t upto = info.oldest_seq ? info.oldest_seq + 1024 : info.published_seq;
            if (upto > info.published_seq)
                upto = info.published_seq;
            replay_range(hist, l->next, upto, local_take, l);
            if (strata_ring_reader_seek(r, l->next) != 0)
                continue; /* lapped again meanwhile: another round */
        } else if (rc && rc != STRATA_ETIMEDOUT) {
            l->errors++;
            snprintf(l->failure, sizeof l->failure, "ring next: %s", strata_strerror(rc));
        }
    }
    if (l->next <= l->want_last && !l->failure[0])
        snprintf(l->failure, sizeof l->failure, "stopped at %" PRIu64 " of %" PRIu64, l->next,
                 l->want_last);
    strata_client_destroy(&hist);
    strata_ring_reader_close(&r);
    return NULL;
}

/* ---- a remote subscriber on a thread ---- */

typedef struct {
    strata_sub_options_t opts;
    const loader_t *loader; /* the seqs it must see, in order */
    uint64_t until;         /* stop once this seq is delivered (0: loader's last, once joined) */
    atomic_bool loader_done;
    uint64_t last, count;
    uint64_t *got; /* every seq delivered, in delivery order */
    size_t cap_got;
    strata_sub_stats_t stats;
    char failure[640];
    pthread_t thread;
} remote_t;

static void *remote_main(void *arg)
{
    remote_t *r = arg;
    strata_sub_t *sub = NULL;
    strata_error_t err;
    if (strata_sub_open(&r->opts, &sub, &err) != 0) {
        snprintf(r->failure, sizeof r->failure, "open: %s", err.msg);
        return NULL;
    }
    uint64_t deadline = ts_now_ns() + 300000000000ull;
    while (!r->failure[0] && ts_now_ns() < deadline) {
        uint64_t goal = r->until;
        if (!goal && atomic_load(&r->loader_done))
            goal = atomic_load(&r->loader->last_seq);
        if (goal && r->last >= goal)
            break;
        strata_entry_t e;
        int rc = strata_sub_next(sub, 1000, &e, NULL, NULL, &err);
        if (rc == STRATA_ETIMEDOUT)
            continue;
        if (rc) {
            snprintf(r->failure, sizeof r->failure, "next: %d %s", rc, err.msg);
            break;
        }
        /* In order, never twice; completeness is checked once the loader
         * has recorded every seq it was given (remote_verify). */
        if (e.seq <= r->last)
            snprintf(r->failure, sizeof r->failure,
                     "delivered seq %" PRIu64 " after %" PRIu64 ": duplicate or out of order",
                     e.seq, r->last);
        if (r->count == r->cap_got) {
            r->cap_got = r->cap_got ? r->cap_got * 2 : 65536;
            r->got = realloc(r->got, r->cap_got * sizeof *r->got);
            ck_assert_ptr_nonnull(r->got);
        }
        r->got[r->count++] = e.seq;
        r->last = e.seq;
    }
    strata_sub_stats(sub, &r->stats);
    if (!r->failure[0] && ts_now_ns() >= deadline)
        snprintf(r->failure, sizeof r->failure, "timed out at %" PRIu64, r->last);
    strata_sub_close(&sub);
    return NULL;
}

/* Every seq the loader was given from `from` on was delivered (delivery
 * itself was checked in order and unique). */
static void remote_verify(const remote_t *r, const loader_t *l, uint64_t from)
{
    size_t i = 0;
    uint64_t last = atomic_load(&l->last_seq);
    for (uint64_t s = from; s <= last; s++) {
        if (!l->seen[s])
            continue;
        while (i < r->count && r->got[i] < s)
            i++;
        ck_assert_msg(i < r->count && r->got[i] == s, "seq %" PRIu64 " was never delivered", s);
    }
}

/* ---- tests ---- */

START_TEST(million_records_exactly_once_locally_and_remotely)
{
    char *dir = ts_tempdir("dist-million");
    char *data = ts_path(dir, "node");
    static const char *const env[] = {"STRATA_WRITER_RING_MB=256", NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    const uint64_t total = 1000000;
    char *ring = ring_path(&node);

    local_t local = {.ring = ring, .history = dist.history, .want_last = total, .next = 1};
    ck_assert_int_eq(pthread_create(&local.thread, NULL, local_main, &local), 0);
    loader_t loader;
    loader_start(&loader, node.endpoint, total, 1000, 0, total + 16);
    remote_t remote = {
        .opts = {.stream_endpoint = dist.live, .history_endpoint = dist.history, .from_seq = 1},
        .loader = &loader,
        .until = total};
    ck_assert_int_eq(pthread_create(&remote.thread, NULL, remote_main, &remote), 0);

    loader_join(&loader);
    ck_assert_uint_eq(atomic_load(&loader.last_seq), total);
    pthread_join(local.thread, NULL);
    pthread_join(remote.thread, NULL);
    printf("million: local laps=%" PRIu64 " from_history=%" PRIu64 "; remote delivered=%" PRIu64
           " replayed=%" PRIu64 " gaps=%" PRIu64 " duplicates=%" PRIu64 "\n",
           local.laps, local.from_history, remote.count, remote.stats.replayed, remote.stats.gaps,
           remote.stats.duplicates);
    ck_assert_msg(!local.failure[0], "local: %s", local.failure);
    ck_assert_msg(!remote.failure[0], "remote: %s", remote.failure);
    ck_assert_uint_eq(local.next, total + 1);
    ck_assert_uint_eq(remote.count, total);
    ck_assert_uint_eq(remote.last, total);
    remote_verify(&remote, &loader, 1);
    free(remote.got);

    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(ring);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(lapped_ring_reader_recovers_from_history)
{
    char *dir = ts_tempdir("dist-lap");
    char *data = ts_path(dir, "node");
    static const char *const env[] = {"STRATA_WRITER_RING_MB=1", NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    char *ring = ring_path(&node);
    /* ~80 B per entry: 60k entries are several rings' worth. */
    const uint64_t total = 60000;
    local_t local = {
        .ring = ring, .history = dist.history, .want_last = total, .next = 1, .pause_first = true};
    ck_assert_int_eq(pthread_create(&local.thread, NULL, local_main, &local), 0);
    loader_t loader;
    loader_start(&loader, node.endpoint, total, 500, 0, total + 16);
    loader_join(&loader);
    atomic_store(&local.release, true);
    pthread_join(local.thread, NULL);
    ck_assert_msg(!local.failure[0], "local: %s", local.failure);
    ck_assert_msg(local.laps >= 1, "the stopped reader was never lapped");
    ck_assert_msg(local.from_history > 0, "nothing came from history");
    ck_assert_uint_eq(local.next, total + 1);
    printf("lap: laps=%" PRIu64 " from_history=%" PRIu64 "\n", local.laps, local.from_history);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(ring);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static bool loader_past(void *arg)
{
    return atomic_load(&((loader_t *)arg)->written) >= 20000;
}

START_TEST(replay_from_seq_one_hands_off_to_live)
{
    char *dir = ts_tempdir("dist-handoff");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    loader_t loader;
    loader_start(&loader, node.endpoint, 0, 50, 500, 4u << 20);
    ck_assert(ts_wait_for(loader_past, &loader, 60000));
    /* Writes go on while the subscriber replays from the start. */
    remote_t remote = {
        .opts = {.stream_endpoint = dist.live, .history_endpoint = dist.history, .from_seq = 1},
        .loader = &loader};
    ck_assert_int_eq(pthread_create(&remote.thread, NULL, remote_main, &remote), 0);
    uint64_t until = atomic_load(&loader.written) + 40000;
    while (atomic_load(&loader.written) < until)
        usleep(10000); /* letting the loader run on; the check is below */
    loader_join(&loader);
    atomic_store(&remote.loader_done, true);
    pthread_join(remote.thread, NULL);
    printf("handoff: delivered=%" PRIu64 " replayed=%" PRIu64 " duplicates=%" PRIu64
           " gaps=%" PRIu64 "\n",
           remote.count, remote.stats.replayed, remote.stats.duplicates, remote.stats.gaps);
    ck_assert_msg(!remote.failure[0], "remote: %s", remote.failure);
    ck_assert_uint_eq(remote.count, atomic_load(&loader.written));
    ck_assert_uint_eq(remote.last, atomic_load(&loader.last_seq));
    remote_verify(&remote, &loader, 1);
    free(remote.got);
    ck_assert_msg(remote.stats.replayed > 0, "nothing came from history");
    ck_assert_msg(remote.stats.replayed < remote.count, "nothing came live");
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(distributor_restart_gap_is_detected_and_repaired)
{
    char *dir = ts_tempdir("dist-cut");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    loader_t loader;
    loader_start(&loader, node.endpoint, 0, 20, 1000, 4u << 20);
    remote_t remote = {
        .opts = {.stream_endpoint = dist.live, .history_endpoint = dist.history, .from_seq = 1},
        .loader = &loader};
    ck_assert_int_eq(pthread_create(&remote.thread, NULL, remote_main, &remote), 0);
    ck_assert(ts_wait_for(loader_past, &loader, 60000));
    /* Cut: the subscriber's connections drop and records go by unseen. */
    char live[320], delayed[320], history[320];
    snprintf(live, sizeof live, "STRATA_DISTRIBUTOR_LIVE=%s", dist.live);
    snprintf(delayed, sizeof delayed, "STRATA_DISTRIBUTOR_DELAYED=%s", dist.delayed);
    snprintf(history, sizeof history, "STRATA_DISTRIBUTOR_HISTORY=%s", dist.history);
    ts_dist_kill9(&dist);
    uint64_t at_cut = atomic_load(&loader.written);
    while (atomic_load(&loader.written) < at_cut + 5000)
        usleep(5000); /* records the subscriber cannot see yet */
    const char *const env[] = {live, delayed, history, NULL};
    ts_dist_start(&dist, data, env);
    uint64_t after = atomic_load(&loader.written);
    while (atomic_load(&loader.written) < after + 5000)
        usleep(5000);
    loader_join(&loader);
    atomic_store(&remote.loader_done, true);
    pthread_join(remote.thread, NULL);
    printf("cut: delivered=%" PRIu64 " replayed=%" PRIu64 " gaps=%" PRIu64 "\n", remote.count,
           remote.stats.replayed, remote.stats.gaps);
    ck_assert_msg(!remote.failure[0], "remote: %s", remote.failure);
    ck_assert_uint_eq(remote.count, atomic_load(&loader.written));
    remote_verify(&remote, &loader, 1);
    free(remote.got);
    ck_assert_msg(remote.stats.gaps >= 1, "the cut went unnoticed");
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(delayed_stream_batches_per_topic)
{
    char *dir = ts_tempdir("dist-delayed");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    zsock_t *sub = zsock_new_sub(dist.delayed, "kv");
    zsock_set_subscribe(sub, "$hb");
    zsock_set_rcvtimeo(sub, 5000);
    /* Subscribed once a heartbeat arrives: then write. */
    zmsg_t *m = zmsg_recv(sub);
    ck_assert_ptr_nonnull(m);
    zmsg_destroy(&m);
    loader_t loader;
    loader_start(&loader, node.endpoint, 3000, 100, 0, 10000);
    loader_join(&loader);
    uint64_t got = 0, messages = 0, last = 0;
    uint64_t deadline = ts_now_ns() + 30000000000ull;
    while (got < 3000 && ts_now_ns() < deadline) {
        m = zmsg_recv(sub);
        ck_assert_ptr_nonnull(m);
        zframe_t *topic = zmsg_first(m);
        zframe_t *meta = zmsg_next(m);
        zframe_t *body = zmsg_next(m);
        ck_assert_ptr_nonnull(body);
        if (zframe_streq(topic, "$hb")) {
            zmsg_destroy(&m);
            continue;
        }
        ck_assert(zframe_streq(topic, "kv"));
        ck_assert_int_eq(zframe_size(meta), 40);
        const uint8_t *mb = zframe_data(meta);
        ck_assert_int_eq(mb[0], 2); /* version */
        ck_assert_int_eq(mb[1], 1); /* entries */
        ck_assert_int_eq(mb[2], 1); /* delayed tier */
        uint32_t count =
            (uint32_t)mb[4] | (uint32_t)mb[5] << 8 | (uint32_t)mb[6] << 16 | (uint32_t)mb[7] << 24;
        size_t off = 0;
        for (uint32_t i = 0; i < count; i++) {
            strata_entry_t e;
            size_t used;
            strata_error_t err;
            ck_assert_msg(strata_entry_decode(zframe_data(body) + off, zframe_size(body) - off,
                                              1u << 20, &e, &used, &err) == 0,
                          "%s", err.msg);
            ck_assert_uint_eq(e.seq, last + 1);
            last = e.seq;
            off += used;
        }
        ck_assert_uint_eq(off, zframe_size(body));
        got += count;
        messages++;
        zmsg_destroy(&m);
    }
    printf("delayed: %" PRIu64 " entries in %" PRIu64 " messages\n", got, messages);
    ck_assert_uint_eq(got, 3000);
    ck_assert_msg(messages * 10 <= got, "%" PRIu64 " messages for %" PRIu64 " entries: not batched",
                  messages, got);
    zsock_destroy(&sub);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- durable subscriber, killed and restarted ---- */

/* The child: a durable subscriber reporting on stdout. O: the offset it
 * resumed after; S: each seq delivered (acked right after); D: the offset
 * the distributor has confirmed stored. */
static int durable_child(const char *live, const char *history, const char *name)
{
    strata_sub_options_t o = {.stream_endpoint = live,
                              .history_endpoint = history,
                              .durable = name,
                              .topics = (const char *const[]){"kv"},
                              .n_topics = 1,
                              .window = 200};
    strata_sub_t *sub = NULL;
    strata_error_t err;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strata_sub_open(&o, &sub, &err) != 0) {
        fprintf(stderr, "durable child: open: %s\n", err.msg);
        return 3;
    }
    printf("O %" PRIu64 "\n", strata_sub_acked_seq(sub));
    uint64_t n = 0, reported = 0;
    for (;;) {
        strata_entry_t e;
        int rc = strata_sub_next(sub, 200, &e, NULL, NULL, &err);
        if (rc == 0) {
            printf("S %" PRIu64 "\n", e.seq);
            if (strata_sub_ack(sub, e.seq, &err) != 0) {
                fprintf(stderr, "durable child: ack: %s\n", err.msg);
                return 3;
            }
            n++;
        } else if (rc != STRATA_ETIMEDOUT) {
            fprintf(stderr, "durable child: next: %s\n", err.msg);
            return 3;
        }
        uint64_t d = strata_sub_durable_seq(sub);
        if (d != reported) {
            printf("D %" PRIu64 "\n", d);
            reported = d;
        }
    }
}

typedef struct {
    pid_t pid;
    FILE *out;
} child_t;

static void child_start(child_t *c, const ts_dist_t *dist)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "test_distribution", "--durable-child", dist->live, dist->history,
              "d1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    c->pid = pid;
    c->out = fdopen(fds[0], "r");
}

/* Kills a child that has printed nothing for a minute, so that a stalled
 * subscription ends in the checks below (which say where it stopped)
 * rather than in the suite's timeout. */
typedef struct {
    pid_t pid;
    _Atomic uint64_t heard_ns;
    atomic_bool done;
} watchdog_t;

static void *watchdog_main(void *arg)
{
    watchdog_t *w = arg;
    while (!atomic_load(&w->done)) {
        /* heard_ns is read before the clock: the other order lets a line
         * read in between make heard_ns the later of the two, and the
         * unsigned difference wrap into a kill of a child that was
         * delivering all along (seen under ASan on a loaded machine). */
        uint64_t heard = atomic_load(&w->heard_ns), now = ts_now_ns();
        if (now > heard && now - heard > 60ull * 1000000000ull) {
            fprintf(stderr, "durable child %d silent for 60 s: killed\n", (int)w->pid);
            kill(w->pid, SIGKILL);
            break;
        }
        usleep(100000); /* the watchdog's period */
    }
    return NULL;
}

/* What each cycle's child reported, and every seq delivered in order. */
typedef struct {
    uint64_t offset, durable;
    size_t first, n; /* its S lines in delivered[] */
} cycle_t;

typedef struct {
    uint64_t *delivered;
    size_t n_delivered, cap;
    uint64_t max_seen; /* the highest seq any child delivered */
} report_t;

/* Takes one line of a child's report, in both loops below: a child goes
 * on delivering and acking between the moment the parent decides to kill
 * it and its death, so the lines read after the kill are deliveries like
 * any other. Left out of max_seen, a child that reached the loader's end in
 * that interval left the final run (which resumes after the acked seq)
 * nothing to deliver, and the test waiting for seqs already delivered. */
static void take_line(report_t *rep, cycle_t *run, const char *line)
{
    uint64_t v = strtoull(line + 2, NULL, 10);
    if (line[0] == 'O') {
        run->offset = v;
    } else if (line[0] == 'S') {
        if (rep->n_delivered == rep->cap) {
            rep->cap *= 2;
            rep->delivered = realloc(rep->delivered, rep->cap * sizeof *rep->delivered);
            ck_assert_ptr_nonnull(rep->delivered);
        }
        rep->delivered[rep->n_delivered++] = v;
        if (v > rep->max_seen)
            rep->max_seen = v;
    } else if (line[0] == 'D' && v > run->durable) {
        run->durable = v;
    }
}

/* A figure from the distributor's /metrics page. */
static uint64_t dist_metric(const ts_dist_t *dist, const char *name)
{
    char *page = ts_http_get(dist->metrics);
    char want[128];
    snprintf(want, sizeof want, "\nstrata_%s{process=\"distributor\"} ", name);
    const char *at = strstr(page, want);
    ck_assert_msg(at, "no '%s' in:\n%s", want + 1, page);
    uint64_t v = strtoull(at + strlen(want), NULL, 10);
    free(page);
    return v;
}

/* Waits until the distributor's subscriber list shows d1 acked at seq,
 * failing after a minute without progress (a loaded machine can take
 * minutes over a backlog of thousands), and telling the watchdog that the
 * child is not stalled while it progresses. */
static void wait_acked(const ts_dist_t *dist, watchdog_t *dog, uint64_t seq)
{
    strata_client_t *hist = ts_connect(dist->history, 10000);
    uint64_t acked = 0, moved_ns = ts_now_ns();
    while (acked < seq) {
        uint64_t before = acked;
        ck_assert_msg(ts_now_ns() - moved_ns < 60ull * 1000000000ull,
                      "d1 acked %" PRIu64 " of %" PRIu64 ", and no further for 60 s", acked, seq);
        strata_request_t req = {.op = STRATA_OP_SUBSCRIBERS};
        strata_reply_t rep;
        strata_error_t err;
        ck_assert_int_eq(strata_client_call(hist, &req, &rep, &err), 0);
        for (size_t i = 0; i < rep.n_subscribers; i++)
            if (!strcmp(rep.subscribers[i].name, "d1"))
                acked = rep.subscribers[i].acked_seq;
        strata_reply_clear(&rep);
        if (acked > before) {
            moved_ns = ts_now_ns();
            atomic_store(&dog->heard_ns, moved_ns);
        }
        usleep(10000); /* polling interval, bounded by the check above */
    }
    strata_client_destroy(&hist);
}

/* cycles runs of a durable subscriber killed with SIGKILL while a loader
 * writes, then a final run after the loader has stopped, which must reach
 * the loader's end; every seq once per run, in order, none missing.
 * drain: the loader stops before the second-to-last run instead, and that
 * run is killed only once it has acked the loader's last seq, every
 * delivery of it read after the decision to kill it; the final run then
 * resumes at the end with nothing left to deliver. */
static void kill9_cycles(const char *tag, int cycles, bool drain)
{
    char *dir = ts_tempdir("dist-durable");
    char *data = ts_path(dir, "node");
    static const char *const env[] = {"STRATA_DISTRIBUTOR_ACK_TIMEOUT_MS=500", NULL};
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    uint64_t seed = ts_seed(tag);
    uint64_t rng = seed;
    loader_t loader;
    loader_start(&loader, node.endpoint, 0, 10, 2000, 4u << 20);

    /* What each cycle's child reported; checked once the loader has
     * recorded every seq it was given. */
    cycle_t *runs = calloc((size_t)cycles + 1, sizeof *runs);
    report_t report = {.cap = 1u << 20};
    report.delivered = malloc(report.cap * sizeof *report.delivered);
    ck_assert_ptr_nonnull(report.delivered);
    for (int cycle = 0; cycle <= cycles; cycle++) {
        bool last_cycle = cycle == cycles, drained = drain && cycle == cycles - 1;
        if (drained) {
            /* Past what the runs so far delivered, so that the drained run
             * has something to deliver after the decision to kill it. */
            while (atomic_load(&loader.last_seq) <= report.max_seen)
                usleep(1000); /* the loader is running: bounded by its pace */
            loader_join(&loader);
        } else if (last_cycle && !drain) {
            loader_join(&loader); /* the final run must reach the loader's end */
        }
        child_t c;
        child_start(&c, &dist);
        /* The drained run's backlog must fit in the pipe while this
         * process waits for its acks without reading. */
        if (drained)
            ck_assert_int_ge(fcntl(fileno(c.out), F_SETPIPE_SZ, 1 << 20), 1 << 20);
        cycle_t *run = &runs[cycle];
        run->offset = UINT64_MAX;
        run->first = report.n_delivered;
        uint64_t lines = 0, kill_after = drained ? 1 : 20 + ts_rand(&rng) % 400;
        char line[64];
        watchdog_t dog = {.pid = c.pid, .heard_ns = ts_now_ns()};
        pthread_t dog_thread;
        ck_assert_int_eq(pthread_create(&dog_thread, NULL, watchdog_main, &dog), 0);
        /* The final run may find nothing left to deliver: its predecessor
         * can have delivered and acked up to the loader's end before it
         * died. It has subscribed once its O line is read, so the loop may
         * end there. */
        while (fgets(line, sizeof line, c.out)) {
            atomic_store(&dog.heard_ns, ts_now_ns());
            take_line(&report, run, line);
            lines++;
            if (last_cycle ? report.max_seen >= atomic_load(&loader.last_seq) : lines >= kill_after)
                break;
        }
        if (drained)
            wait_acked(&dist, &dog, atomic_load(&loader.last_seq));
        /* Killed first, then the watchdog joined: the join can wait out the
         * watchdog's 100 ms sleep, and the kill should land where
         * kill_after put it. */
        kill(c.pid, SIGKILL);
        atomic_store(&dog.done, true);
        pthread_join(dog_thread, NULL);
        int status;
        waitpid(c.pid, &status, 0);
        /* What the child printed before it died still counts. */
        while (fgets(line, sizeof line, c.out))
            take_line(&report, run, line);
        fclose(c.out);
        run->n = report.n_delivered - run->first;
        ck_assert_msg(run->offset != UINT64_MAX, "cycle %d: the child never subscribed", cycle);
    }

    uint64_t prev_durable = 0, dups = 0, max_before = 0, last = atomic_load(&loader.last_seq);
    for (int k = 0; k <= cycles; k++) {
        const cycle_t *run = &runs[k];
        ck_assert_msg(run->offset >= prev_durable,
                      "cycle %d: resumed after %" PRIu64 ", below its durable ack %" PRIu64
                      " (seed %" PRIu64 ")",
                      k, run->offset, prev_durable, seed);
        uint64_t expect = run->offset;
        for (size_t i = 0; i < run->n; i++) {
            uint64_t v = report.delivered[run->first + i];
            uint64_t want = loader_next(&loader, expect);
            ck_assert_msg(v == want,
                          "cycle %d: seq %" PRIu64 " delivered, %" PRIu64
                          " expected: a gap or a repeat (seed %" PRIu64 ")",
                          k, v, want, seed);
            ck_assert_msg(v > prev_durable,
                          "seq %" PRIu64 " redelivered at or below the durable ack %" PRIu64, v,
                          prev_durable);
            if (v <= max_before)
                dups++;
            expect = v;
        }
        for (size_t i = 0; i < run->n; i++)
            if (report.delivered[run->first + i] > max_before)
                max_before = report.delivered[run->first + i];
        if (run->durable > prev_durable)
            prev_durable = run->durable;
    }
    if (drain) {
        ck_assert_msg(runs[cycles - 1].n > 0 &&
                          report.delivered[runs[cycles - 1].first + runs[cycles - 1].n - 1] == last,
                      "the drained run did not end at %" PRIu64, last);
        ck_assert_uint_eq(runs[cycles].offset, last);
        ck_assert_uint_eq(runs[cycles].n, 0);
    }
    ck_assert_msg(report.max_seen == last,
                  "the final run stopped at %" PRIu64 " of %" PRIu64 " (resumed after %" PRIu64
                  ", seed %" PRIu64 ")",
                  report.max_seen, last, runs[cycles].offset, seed);
    /* Acks per offset write show whether the distributor coalesces them. */
    printf("durable: %d kill -9 cycles over seqs %" PRIu64 "..%" PRIu64 ", %zu deliveries, "
           "about %" PRIu64 " repeated above a durable ack, %" PRIu64 " acks stored in %" PRIu64
           " offset writes (seed %" PRIu64 ")\n",
           cycles, runs[0].offset + 1, last, report.n_delivered, dups,
           dist_metric(&dist, "distributor_acks_total"),
           dist_metric(&dist, "distributor_offset_writes_total"), seed);
    free(runs);
    free(report.delivered);

    /* The subscriber list shows it with its offset. */
    strata_client_t *hist = ts_connect(dist.history, 10000);
    strata_request_t req = {.op = STRATA_OP_SUBSCRIBERS};
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_int_eq(strata_client_call(hist, &req, &rep, &err), 0);
    ck_assert_uint_eq(rep.n_subscribers, 1);
    ck_assert_str_eq(rep.subscribers[0].name, "d1");
    ck_assert_uint_ge(rep.subscribers[0].acked_seq, prev_durable);
    strata_reply_clear(&rep);
    strata_client_destroy(&hist);

    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(loader.seen);
    free(data);
    ts_rmtree(dir);
    free(dir);
}

START_TEST(durable_subscriber_survives_kill9_cycles)
{
    kill9_cycles("durable-kill9", ts_soak() ? 100 : 20, false);
}
END_TEST

/* A subscriber killed after it acked everything: the next resumes at the
 * end. The test's own bookkeeping too: the drained run's deliveries are
 * all read after the decision to kill it, and must still count. */
START_TEST(durable_subscriber_killed_after_acking_everything_resumes_at_the_end)
{
    kill9_cycles("durable-drain", 3, true);
}
END_TEST

/* n sync puts of keys PREFIX000, PREFIX001, ... */
static void put_n(const ts_node_t *node, int n, const char *prefix)
{
    strata_client_t *w = ts_connect(node->endpoint, 10000);
    strata_error_t err;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%03d", prefix, i);
        ck_assert_int_eq(
            strata_client_put(w, STRATA_DURABILITY_SYNC, key, strlen(key), "v", 1, NULL, &err), 0);
    }
    strata_client_destroy(&w);
}

/* Waits up to 10 s for the distributor to have published seq n; returns
 * what it has published. */
static uint64_t wait_covered(strata_client_t *hist, uint64_t n)
{
    uint64_t covered = 0;
    for (uint64_t deadline = ts_now_ns() + 10000000000ull; covered < n && ts_now_ns() < deadline;)
        covered = ts_stat(hist, "covered_seq");
    ck_assert_uint_ge(covered, n);
    return covered;
}

/* What one client can make the distributor hold is capped: a window past
 * max_window is refused, new names past max_sessions are refused, and a
 * session that never acks is sent at most max_unacked_mb of entries (plus
 * the page in flight) until it acks. */
START_TEST(durable_sessions_are_capped_in_window_count_and_bytes)
{
    char *dir = ts_tempdir("dist-caps");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    const char *const env[] = {"STRATA_DISTRIBUTOR_MAX_SESSIONS=3",
                               "STRATA_DISTRIBUTOR_MAX_UNACKED_MB=1", NULL};
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    strata_client_t *w = ts_connect(node.endpoint, 10000);
    static char value[30000];
    memset(value, 'x', sizeof value);
    strata_error_t err;
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "big%03d", i);
        ck_assert_int_eq(strata_client_put(w, STRATA_DURABILITY_ASYNC, key, strlen(key), value,
                                           sizeof value, NULL, &err),
                         0);
    }
    strata_client_destroy(&w);

    strata_client_t *hist = ts_connect(dist.history, 10000);
    strata_reply_t rep;
    /* Everything written is published before the session starts. */
    wait_covered(hist, 100);
    strata_request_t huge = {.op = STRATA_OP_SUBSCRIBE, .name = "w", .window = UINT32_MAX};
    ck_assert_int_eq(strata_client_call(hist, &huge, &rep, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "subscribe.window: 4294967295, cap 65536 (distributor/max_window)");
    strata_reply_clear(&rep);

    /* A session from seq 1 that never acks: deliveries stop near 1 MiB.
     * A raw DEALER, since a session's deliveries all answer one request. */
    zsock_t *dealer = zsock_new_dealer(dist.history);
    ck_assert_ptr_nonnull(dealer);
    zsock_set_rcvtimeo(dealer, 1500);
    strata_request_t sub = {.version = 0,
                            .request_id = 77,
                            .op = STRATA_OP_SUBSCRIBE,
                            .name = "s1",
                            .window = 10000,
                            .seq = 1};
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    ck_assert_int_eq(strata_request_encode(&sub, &frame, &frame_len, &err), 0);
    ck_assert_int_eq(zsock_send(dealer, "b", frame, frame_len), 0);
    free(frame);
    uint64_t bytes = 0, last = 0;
    for (;;) {
        zframe_t *f = zframe_recv(dealer);
        if (!f)
            break; /* nothing more for 1.5 s */
        ck_assert_int_eq(strata_reply_decode(zframe_data(f), zframe_size(f), &rep, &err), 0);
        ck_assert_msg(rep.status == 0, "%s", rep.message);
        if (rep.op == STRATA_OP_DELIVER) {
            bytes += rep.entries_blob.len;
            last = rep.last_seq;
        }
        strata_reply_clear(&rep);
        zframe_destroy(&f);
    }
    ck_assert_msg(bytes >= (1u << 20) && bytes < (1u << 20) + (1u << 20),
                  "%" PRIu64 " bytes sent unacked with a 1 MiB cap", bytes);
    ck_assert_uint_lt(last, 100);
    /* An ack makes room again. */
    strata_request_t ack = {.request_id = 78, .op = STRATA_OP_ACK, .name = "s1", .seq = last};
    ck_assert_int_eq(strata_request_encode(&ack, &frame, &frame_len, &err), 0);
    ck_assert_int_eq(zsock_send(dealer, "b", frame, frame_len), 0);
    free(frame);
    bool more = false;
    for (int i = 0; i < 50 && !more; i++) {
        zframe_t *f = zframe_recv(dealer);
        if (!f)
            break;
        ck_assert_int_eq(strata_reply_decode(zframe_data(f), zframe_size(f), &rep, &err), 0);
        more = rep.op == STRATA_OP_DELIVER && rep.first_seq > last;
        strata_reply_clear(&rep);
        zframe_destroy(&f);
    }
    ck_assert_msg(more, "no delivery after the ack");
    zsock_destroy(&dealer);
    strata_client_destroy(&hist);

    /* Three names exist with s1; a fourth is refused, a known one is not. */
    hist = ts_connect(dist.history, 10000);
    const char *names[] = {"s2", "s3", "s4", "s1"};
    for (int i = 0; i < 4; i++) {
        strata_request_t r = {.op = STRATA_OP_SUBSCRIBE, .name = names[i]};
        int rc = strata_client_call(hist, &r, &rep, &err);
        if (i == 2) {
            ck_assert_int_eq(rc, STRATA_EBUSY);
            ck_assert_str_eq(err.msg, "subscribe.name: 3 durable sessions exist, the cap "
                                      "(distributor/max_sessions)");
        } else {
            ck_assert_msg(rc == 0, "subscribe %s: %s", names[i], err.msg);
        }
        strata_reply_clear(&rep);
    }
    strata_client_destroy(&hist);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* Sends one request on a raw DEALER (a session's deliveries all answer its
 * subscribe, so the blocking client cannot hold one). */
static void dealer_send(zsock_t *dealer, const strata_request_t *req)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(req, &frame, &frame_len, &err), 0);
    ck_assert_int_eq(zsock_send(dealer, "b", frame, frame_len), 0);
    free(frame);
}

/* The next reply of op on the DEALER (others are skipped), 0 when none. */
static int dealer_wait(zsock_t *dealer, strata_op_t op, strata_reply_t *rep)
{
    for (int i = 0; i < 100; i++) {
        zframe_t *f = zframe_recv(dealer);
        if (!f)
            return -1;
        strata_error_t err;
        ck_assert_int_eq(strata_reply_decode(zframe_data(f), zframe_size(f), rep, &err), 0);
        zframe_destroy(&f);
        if (rep->op == op || rep->status != 0)
            return 0;
        strata_reply_clear(rep);
    }
    return -1;
}

static const strata_subscriber_info_t *find_subscriber(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_subscribers; i++)
        if (!strcmp(rep->subscribers[i].name, name))
            return &rep->subscribers[i];
    ck_abort_msg("no subscriber %s listed", name);
    return NULL;
}

/* Writes without a topic travel as `kv` everywhere: a durable session on
 * the prefix "k" gets them. Once it has acked them, its lag is 0 however
 * many offset records ($sys) its acks write; an entry of its topics makes
 * it lag again. A from_seq past the published end + 1 is refused. */
START_TEST(durable_lag_counts_only_its_topics_and_from_seq_is_bounded)
{
    char *dir = ts_tempdir("dist-lag");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    put_n(&node, 5, "lag");
    strata_client_t *w = ts_connect(node.endpoint, 10000);
    strata_error_t err;
    strata_client_t *hist = ts_connect(dist.history, 10000);
    strata_reply_t rep;
    uint64_t covered = wait_covered(hist, 5);

    strata_request_t far = {.op = STRATA_OP_SUBSCRIBE, .name = "far", .seq = covered + 2};
    ck_assert_int_eq(strata_client_call(hist, &far, &rep, &err), STRATA_EINVAL);
    char want[160];
    snprintf(want, sizeof want,
             "subscribe.from_seq: %" PRIu64 " is past the published end %" PRIu64
             " (at most %" PRIu64 ")",
             covered + 2, covered, covered + 1);
    ck_assert_str_eq(err.msg, want);
    strata_reply_clear(&rep);

    zsock_t *dealer = zsock_new_dealer(dist.history);
    zsock_set_rcvtimeo(dealer, 5000);
    const char *topics[] = {"k"};
    strata_request_t sub = {.request_id = 1,
                            .op = STRATA_OP_SUBSCRIBE,
                            .name = "lag",
                            .topics = topics,
                            .n_topics = 1,
                            .seq = 1};
    dealer_send(dealer, &sub);
    ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_SUBSCRIBE, &rep), 0);
    ck_assert_msg(rep.status == 0, "%s", rep.message);
    strata_reply_clear(&rep);
    uint64_t last = 0, count = 0;
    while (last < 5) {
        ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_DELIVER, &rep), 0);
        ck_assert_msg(rep.status == 0, "%s", rep.message);
        last = rep.last_seq;
        count += rep.count;
        strata_reply_clear(&rep);
    }
    ck_assert_uint_eq(count, 5);
    strata_request_t ack = {.request_id = 2, .op = STRATA_OP_ACK, .name = "lag", .seq = last};
    dealer_send(dealer, &ack);
    ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_ACK, &rep), 0);
    ck_assert_uint_eq(rep.durable_seq, last);
    strata_reply_clear(&rep);
    /* The acks' offset records are published after `last`: no lag. */
    usleep(50000);
    strata_request_t list = {.op = STRATA_OP_SUBSCRIBERS};
    ck_assert_int_eq(strata_client_call(hist, &list, &rep, &err), 0);
    const strata_subscriber_info_t *info = find_subscriber(&rep, "lag");
    ck_assert_uint_eq(info->acked_seq, last);
    ck_assert_uint_eq(info->lag_records, 0);
    ck_assert_uint_eq(info->lag_ms, 0);
    strata_reply_clear(&rep);

    /* A write of its topics is lag until acked (the session gets it). */
    zsock_destroy(&dealer);
    usleep(20000);
    ck_assert_int_eq(strata_client_put(w, STRATA_DURABILITY_SYNC, "lag9", 4, "v", 1, NULL, &err),
                     0);
    usleep(50000);
    ck_assert_int_eq(strata_client_call(hist, &list, &rep, &err), 0);
    info = find_subscriber(&rep, "lag");
    ck_assert_uint_gt(info->lag_records, 0);
    ck_assert_uint_gt(info->lag_ms, 0);
    strata_reply_clear(&rep);

    strata_client_destroy(&w);
    strata_client_destroy(&hist);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* One admin request (subscriber_delete or subscriber_reset) on hist: its
 * status, with the reply in *rep and the message in err. */
static int admin_call(strata_client_t *hist, strata_op_t op, const char *name, strata_reset_to_t to,
                      uint64_t seq, strata_reply_t *rep, strata_error_t *err)
{
    strata_request_t req = {.op = op, .name = name, .reset_to = to, .seq = seq};
    return strata_client_call(hist, &req, rep, err);
}

/* Waits until the subscriber list shows name's session ended. */
static void wait_disconnected(strata_client_t *hist, const char *name)
{
    strata_request_t list = {.op = STRATA_OP_SUBSCRIBERS};
    strata_error_t err;
    for (uint64_t deadline = ts_now_ns() + 10000000000ull;;) {
        strata_reply_t rep;
        ck_assert_int_eq(strata_client_call(hist, &list, &rep, &err), 0);
        bool connected = find_subscriber(&rep, name)->connected;
        strata_reply_clear(&rep);
        if (!connected)
            return;
        ck_assert_msg(ts_now_ns() < deadline, "session %s still connected", name);
        usleep(50000);
    }
}

/* As kafka-consumer-groups: a stopped durable subscriber is reset to the
 * earliest, the latest or a seq, and deleted; both are refused while its
 * session is connected, for a name that does not exist, and for a seq out
 * of the retained and published range. A reset takes effect at the next
 * subscribe; a deleted name subscribes again as a new one. */
START_TEST(a_stopped_durable_subscriber_is_reset_and_deleted)
{
    char *dir = ts_tempdir("dist-admin");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    const char *const env[] = {"STRATA_DISTRIBUTOR_SESSION_TIMEOUT_MS=300", NULL};
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    put_n(&node, 4, "adm");
    strata_error_t err;
    strata_client_t *hist = ts_connect(dist.history, 10000);
    strata_reply_t rep;
    wait_covered(hist, 4);

    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_DELETE, "nobody", 0, 0, &rep, &err),
                     STRATA_ENOTFOUND);
    ck_assert_str_eq(err.msg, "subscriber_delete: no durable subscriber 'nobody'");
    strata_reply_clear(&rep);

    /* A connected session: both are refused. */
    zsock_t *dealer = zsock_new_dealer(dist.history);
    zsock_set_rcvtimeo(dealer, 5000);
    const char *topics[] = {"kv"}; /* the puts have no topic */
    strata_request_t sub = {
        .request_id = 1, .op = STRATA_OP_SUBSCRIBE, .name = "adm", .topics = topics, .n_topics = 1};
    dealer_send(dealer, &sub);
    ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_SUBSCRIBE, &rep), 0);
    ck_assert_msg(rep.status == 0, "%s", rep.message);
    uint64_t start = rep.acked_seq;
    strata_reply_clear(&rep);
    ck_assert_uint_ge(start, 4);
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_EARLIEST,
                                0, &rep, &err),
                     STRATA_EBUSY);
    ck_assert_str_eq(err.msg, "subscriber_reset: durable session 'adm' is connected; stop its "
                              "subscriber (its session ends 300 ms after its last message)");
    strata_reply_clear(&rep);
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_DELETE, "adm", 0, 0, &rep, &err),
                     STRATA_EBUSY);
    strata_reply_clear(&rep);
    zsock_destroy(&dealer);

    /* Once its session has timed out: out-of-range seqs are refused. */
    wait_disconnected(hist, "adm");
    int rc =
        admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_SEQ, 0, &rep, &err);
    strata_reply_clear(&rep);
    ck_assert_int_eq(rc, STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "subscriber_reset.seq: 0 (give a seq, or to earliest or latest)");
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_SEQ,
                                1000000, &rep, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "subscriber_reset.seq: 1000000 is past the published end "), "%s",
                  err.msg);
    strata_reply_clear(&rep);

    /* Earliest: the next session gets seq 1 on. */
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_EARLIEST,
                                0, &rep, &err),
                     0);
    ck_assert_uint_eq(rep.op, STRATA_OP_SUBSCRIBER_RESET);
    ck_assert_uint_eq(rep.acked_seq, 0);
    strata_reply_clear(&rep);
    dealer = zsock_new_dealer(dist.history);
    zsock_set_rcvtimeo(dealer, 5000);
    sub.topics = NULL;
    sub.n_topics = 0; /* the stored topics */
    dealer_send(dealer, &sub);
    ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_SUBSCRIBE, &rep), 0);
    ck_assert_uint_eq(rep.acked_seq, 0);
    strata_reply_clear(&rep);
    ck_assert_int_eq(dealer_wait(dealer, STRATA_OP_DELIVER, &rep), 0);
    ck_assert_uint_eq(rep.first_seq, 1);
    ck_assert_uint_eq(rep.count, 4); /* only its topic: no $sys */
    strata_reply_clear(&rep);
    zsock_destroy(&dealer);

    /* To a seq, then latest, then delete: a new name again after it. */
    wait_disconnected(hist, "adm");
    rc = admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_SEQ, 3, &rep, &err);
    ck_assert_uint_eq(rep.acked_seq, 2);
    strata_reply_clear(&rep);
    ck_assert_msg(rc == 0, "reset to 3: %s", err.msg);
    ck_assert_int_eq(
        admin_call(hist, STRATA_OP_SUBSCRIBER_RESET, "adm", STRATA_RESET_TO_LATEST, 0, &rep, &err),
        0);
    ck_assert_uint_eq(rep.acked_seq, rep.published_seq);
    strata_reply_clear(&rep);
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_DELETE, "adm", 0, 0, &rep, &err), 0);
    ck_assert_uint_eq(rep.op, STRATA_OP_SUBSCRIBER_DELETE);
    strata_reply_clear(&rep);
    strata_request_t list = {.op = STRATA_OP_SUBSCRIBERS};
    ck_assert_int_eq(strata_client_call(hist, &list, &rep, &err), 0);
    ck_assert_uint_eq(rep.n_subscribers, 0);
    strata_reply_clear(&rep);
    ck_assert_int_eq(admin_call(hist, STRATA_OP_SUBSCRIBER_DELETE, "adm", 0, 0, &rep, &err),
                     STRATA_ENOTFOUND);
    strata_reply_clear(&rep);

    strata_client_destroy(&hist);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A live subscriber that stops reading while 100 MiB of entries go out:
 * the distributor holds at most distributor/pub_queue_mb of them (8 MiB
 * here), closes that subscriber, and a new one gets entries again. */
START_TEST(a_live_subscriber_that_never_reads_is_bounded_and_closed)
{
    char *dir = ts_tempdir("dist-outq");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    const char *const env[] = {"STRATA_DISTRIBUTOR_PUB_QUEUE_MB=8", NULL};
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    strata_client_t *hist = ts_connect(dist.history, 10000);

    zsock_t *hog = zsock_new(ZMQ_SUB);
    zsock_set_rcvhwm(hog, 1);
    zsock_set_rcvbuf(hog, 4096);
    zsock_set_subscribe(hog, "");
    zsock_set_rcvtimeo(hog, 10000);
    ck_assert_int_eq(zsock_connect(hog, "%s", dist.live), 0);
    zmsg_t *first = zmsg_recv(hog); /* its subscription's heartbeat: it is attached */
    ck_assert_ptr_nonnull(first);
    zmsg_destroy(&first);
    uint64_t base = ts_rss_kib(dist.pid), peak = base, queue_peak = 0;

    strata_client_t *w = ts_connect(node.endpoint, 10000);
    static char value[256 * 1024];
    memset(value, 'q', sizeof value);
    strata_error_t err;
    for (int i = 0; i < 400; i++) {
        char key[16];
        snprintf(key, sizeof key, "q%03d", i);
        ck_assert_int_eq(strata_client_put(w, STRATA_DURABILITY_ASYNC, key, strlen(key), value,
                                           sizeof value, NULL, &err),
                         0);
        if (i % 16 == 0) {
            uint64_t r = ts_rss_kib(dist.pid), q = ts_stat(hist, "pub_queue_bytes");
            peak = r > peak ? r : peak;
            queue_peak = q > queue_peak ? q : queue_peak;
        }
    }
    uint64_t deadline = ts_now_ns() + 30000000000ull;
    while ((ts_stat(hist, "subscribers_shed_total") < 1 || ts_stat(hist, "covered_seq") < 400) &&
           ts_now_ns() < deadline) {
        uint64_t r = ts_rss_kib(dist.pid), q = ts_stat(hist, "pub_queue_bytes");
        peak = r > peak ? r : peak;
        queue_peak = q > queue_peak ? q : queue_peak;
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the distributor's counts with a deadline */
    }
    fprintf(stderr,
            "distributor never-reading subscriber: private RSS %" PRIu64
            " KiB before, peak %" PRIu64 " KiB; stream queue peak %" PRIu64 " bytes\n",
            base, peak, queue_peak);
    ck_assert_uint_ge(ts_stat(hist, "subscribers_shed_total"), 1);
    ck_assert_uint_ge(ts_stat(hist, "covered_seq"), 400);
    /* The queue: 8 MiB and one entry past it. The process: that, a 4 MiB
     * delayed batch and allocator slack; without the cap the 100 MiB stay. */
    ck_assert_uint_le(queue_peak, (8u << 20) + (1u << 20));
    if (!ts_sanitized())
        ck_assert_msg(peak <= base + 40 * 1024,
                      "distributor RSS grew from %" PRIu64 " to %" PRIu64 " KiB", base, peak);
    zsock_destroy(&hog);

    zsock_t *fresh = zsock_new(ZMQ_SUB);
    zsock_set_subscribe(fresh, "");
    zsock_set_rcvtimeo(fresh, 200);
    ck_assert_int_eq(zsock_connect(fresh, "%s", dist.live), 0);
    /* Until ZeroMQ has torn down the closed peer's pipe its bytes still
     * count, so a put right after the close may be dropped: put again after
     * every heartbeat or quiet spell until an entry arrives. */
    bool entry = false;
    int puts = 0;
    deadline = ts_now_ns() + 30000000000ull;
    while (!entry && ts_now_ns() < deadline) {
        char key[24];
        snprintf(key, sizeof key, "after%d", puts++);
        ck_assert_int_eq(
            strata_client_put(w, STRATA_DURABILITY_ASYNC, key, strlen(key), "v", 1, NULL, &err), 0);
        zmsg_t *m = zmsg_recv(fresh);
        if (m) {
            char *topic = zmsg_popstr(m);
            entry = topic && strcmp(topic, STRATA_PUB_HB_TOPIC) != 0;
            zstr_free(&topic);
            zmsg_destroy(&m);
        }
    }
    ck_assert_msg(entry,
                  "no entry reached a new subscriber in 30 s after the slow one went (%d puts; "
                  "stream queue %" PRIu64 " bytes, %" PRIu64 " dropped)",
                  puts, ts_stat(hist, "pub_queue_bytes"), ts_stat(hist, "pub_dropped_total"));
    zsock_destroy(&fresh);
    strata_client_destroy(&w);
    strata_client_destroy(&hist);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static bool subscriber_listed(strata_client_t *hist, const char *name)
{
    strata_request_t req = {.op = STRATA_OP_SUBSCRIBERS};
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_int_eq(strata_client_call(hist, &req, &rep, &err), 0);
    bool found = false;
    for (size_t i = 0; i < rep.n_subscribers; i++)
        found |= !strcmp(rep.subscribers[i].name, name);
    strata_reply_clear(&rep);
    return found;
}

/* A durable name nobody uses for session_expire_s goes, stored offset and
 * all; one in use stays. */
START_TEST(unused_durable_names_expire_with_their_offsets)
{
    char *dir = ts_tempdir("dist-expire");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    const char *const env[] = {"STRATA_DISTRIBUTOR_SESSION_EXPIRE_S=2",
                               "STRATA_DISTRIBUTOR_SESSION_TIMEOUT_MS=300", NULL};
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    strata_client_t *hist = ts_connect(dist.history, 10000);
    strata_request_t sub = {.op = STRATA_OP_SUBSCRIBE, .name = "idle"};
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_int_eq(strata_client_call(hist, &sub, &rep, &err), 0);
    strata_reply_clear(&rep);
    ck_assert(subscriber_listed(hist, "idle"));
    /* The node's own key: only its control endpoint reads it. */
    strata_client_t *w = ts_connect(node.control, 10000);
    static const char key[] = "\0strata/sub/idle";
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(w, key, sizeof key - 1, &value, &len, &err), 0);
    free(value);
    /* No acks, no session: after 2 s the name and its offset go. */
    uint64_t deadline = ts_now_ns() + 20000000000ull;
    bool listed = true;
    while (listed && ts_now_ns() < deadline) {
        listed = subscriber_listed(hist, "idle");
        if (listed) {
            struct timespec nap = {0, 100 * 1000000};
            nanosleep(&nap, NULL); /* polling the list with a deadline */
        }
    }
    ck_assert_msg(!listed, "the unused name is still listed");
    ck_assert_int_eq(strata_client_get(w, key, sizeof key - 1, &value, &len, &err),
                     STRATA_ENOTFOUND);
    strata_client_destroy(&w);
    strata_client_destroy(&hist);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- CURVE ------------------------------------------------------------------ */

/* A node key, two allowed client keys (a, b) and one the node does not
 * know, with the environment that turns CURVE on for a process. */
typedef struct {
    char server_public[41];
    char a[700], b[700], stranger[700]; /* the clients' secret certificates */
    char a_public[41];
    char server_cert[700], clients_dir[700];
    const char *env[4];
} curve_keys_t;

static void curve_keys_make(const char *dir, curve_keys_t *k)
{
    char *keys = ts_path(dir, "keys");
    char *allowed = ts_path(dir, "allowed");
    ck_assert_int_eq(mkdir(keys, 0700), 0);
    ck_assert_int_eq(mkdir(allowed, 0700), 0);
    char path[512];
    zcert_t *server = zcert_new();
    snprintf(path, sizeof path, "%s/server", keys);
    ck_assert_int_eq(zcert_save(server, path), 0);
    snprintf(k->server_public, sizeof k->server_public, "%s", zcert_public_txt(server));
    zcert_destroy(&server);
    static const char *const names[] = {"a", "b", "stranger"};
    char *secrets[] = {k->a, k->b, k->stranger};
    for (int i = 0; i < 3; i++) {
        zcert_t *cert = zcert_new();
        if (i < 2) {
            snprintf(path, sizeof path, "%s/%s.cert", allowed, names[i]);
            ck_assert_int_eq(zcert_save_public(cert, path), 0);
        }
        if (i == 0)
            snprintf(k->a_public, sizeof k->a_public, "%s", zcert_public_txt(cert));
        snprintf(path, sizeof path, "%s/%s", keys, names[i]);
        ck_assert_int_eq(zcert_save(cert, path), 0);
        snprintf(secrets[i], sizeof k->a, "%s_secret", path);
        zcert_destroy(&cert);
    }
    snprintf(k->server_cert, sizeof k->server_cert, "STRATA_SECURITY_SERVER_CERT=%s/server_secret",
             keys);
    snprintf(k->clients_dir, sizeof k->clients_dir, "STRATA_SECURITY_CLIENTS_DIR=%s", allowed);
    k->env[0] = "STRATA_SECURITY_CURVE=true";
    k->env[1] = k->server_cert;
    k->env[2] = k->clients_dir;
    k->env[3] = NULL;
    free(keys);
    free(allowed);
}

/* Reads n entries within 10 s, each past the one before; returns the last seq. */
static uint64_t read_n(strata_sub_t *sub, int n, uint64_t after)
{
    uint64_t deadline = ts_now_ns() + 10000000000ull, last = after;
    for (int got = 0; got < n;) {
        ck_assert_msg(ts_now_ns() < deadline, "%d of %d entries within 10 s", got, n);
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 200, &e, NULL, NULL, &err);
        if (rc == STRATA_ETIMEDOUT)
            continue;
        ck_assert_msg(rc == 0, "next: %s", err.msg);
        ck_assert_uint_gt(e.seq, last);
        last = e.seq;
        got++;
    }
    return last;
}

static int curve_sub_open(const ts_dist_t *dist, const curve_keys_t *k, const char *cert,
                          bool delayed, uint64_t from_seq, const char *durable, strata_sub_t **sub,
                          strata_error_t *err)
{
    strata_sub_options_t o = {.stream_endpoint = delayed ? dist->delayed : dist->live,
                              .history_endpoint = dist->history,
                              .from_seq = from_seq,
                              .durable = durable,
                              .timeout_ms = 1500,
                              .curve_server_key = cert ? k->server_public : NULL,
                              .curve_cert = cert};
    return strata_sub_open(&o, sub, err);
}

/* With security/curve on, the live and delayed streams and the history
 * endpoint answer only keys in clients_dir: no key, or an unknown one,
 * gets no heartbeat and no replay page. */
START_TEST(curve_streams_and_history_serve_known_keys_only)
{
    char *dir = ts_tempdir("dist-curve");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    curve_keys_t k;
    curve_keys_make(dir, &k);
    ts_dist_t dist;
    ts_dist_start(&dist, data, k.env);
    put_n(&node, 10, "c");

    /* A known key: replay from seq 1, then live, then the delayed stream. */
    strata_sub_t *sub = NULL;
    strata_error_t err;
    ck_assert_msg(curve_sub_open(&dist, &k, k.a, false, 1, NULL, &sub, &err) == 0, "open: %s",
                  err.msg);
    uint64_t last = read_n(sub, 10, 0);
    strata_sub_t *delayed = NULL;
    ck_assert_msg(curve_sub_open(&dist, &k, k.b, true, 0, NULL, &delayed, &err) == 0,
                  "open delayed: %s", err.msg);
    put_n(&node, 5, "d");
    read_n(sub, 5, last);
    read_n(delayed, 5, last);
    strata_sub_close(&delayed);
    strata_sub_close(&sub);

    /* The streams are up; no key and an unknown key get nothing. */
    const char *const certs[] = {NULL, k.stranger};
    for (int i = 0; i < 2; i++) {
        for (int tier = 0; tier < 2; tier++) {
            ck_assert_int_eq(curve_sub_open(&dist, &k, certs[i], tier, 0, NULL, &sub, &err),
                             STRATA_ETIMEDOUT);
            ck_assert_ptr_null(sub);
        }
        ck_assert_int_eq(curve_sub_open(&dist, &k, certs[i], false, 1, NULL, &sub, &err),
                         STRATA_ETIMEDOUT);
        ck_assert_int_eq(curve_sub_open(&dist, &k, certs[i], false, 0, "n", &sub, &err),
                         STRATA_ETIMEDOUT);
        strata_client_options_t co = {.endpoint = dist.history,
                                      .timeout_ms = 1000,
                                      .curve_server_key = certs[i] ? k.server_public : NULL,
                                      .curve_cert = certs[i]};
        strata_client_t *c = NULL;
        ck_assert_int_eq(strata_client_connect(&co, &c, &err), 0);
        strata_reply_t rep;
        ck_assert_int_eq(strata_client_stats(c, &rep, &err), STRATA_ETIMEDOUT);
        strata_reply_clear(&rep);
        strata_client_destroy(&c);
    }
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* Reads what arrives until the distributor has stored seq as acked. */
static void wait_stored(strata_sub_t *sub, uint64_t seq)
{
    uint64_t deadline = ts_now_ns() + 10000000000ull;
    while (strata_sub_durable_seq(sub) < seq) {
        ck_assert_msg(ts_now_ns() < deadline, "ack %" PRIu64 " not stored within 10 s", seq);
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 50, &e, NULL, NULL, &err);
        ck_assert_msg(rc == 0 || rc == STRATA_ETIMEDOUT, "next: %s", err.msg);
    }
}

static void assert_refused(const ts_dist_t *dist, const curve_keys_t *k, const char *cert,
                           const char *name)
{
    strata_sub_t *sub = NULL;
    strata_error_t err;
    ck_assert_int_eq(curve_sub_open(dist, k, cert, false, 0, name, &sub, &err), STRATA_EPERM);
    char want[256];
    snprintf(want, sizeof want, "subscribe: durable session '%s' belongs to another client key",
             name);
    ck_assert_msg(strstr(err.msg, want), "error: %s", err.msg);

    strata_client_options_t co = {.endpoint = dist->history,
                                  .timeout_ms = 5000,
                                  .curve_server_key = k->server_public,
                                  .curve_cert = cert};
    strata_client_t *c = NULL;
    ck_assert_int_eq(strata_client_connect(&co, &c, &err), 0);
    strata_request_t ack = {.op = STRATA_OP_ACK, .name = name, .seq = 1};
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_call(c, &ack, &rep, &err), STRATA_EPERM);
    snprintf(want, sizeof want, "ack: durable session '%s' belongs to another client key", name);
    ck_assert_str_eq(err.msg, want);
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
}

/* A durable name belongs to the key that created it: another key's
 * subscribe and ack are EPERM, before and after a distributor restart,
 * while the owner resumes where it acked. A record stored before owners
 * existed (version 1) still reads, and goes to the first key to use it. */
START_TEST(durable_names_belong_to_the_key_that_made_them)
{
    char *dir = ts_tempdir("dist-owner");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    curve_keys_t k;
    curve_keys_make(dir, &k);
    /* An offset stored by an older distributor: version 1, acked 0, no topics. */
    static const char legacy_key[] = "\0strata/sub/legacy";
    uint8_t legacy[19] = {1};
    strata_client_t *ctl = ts_connect(node.control, 10000);
    strata_error_t err;
    ck_assert_msg(strata_client_put(ctl, STRATA_DURABILITY_SYNC, legacy_key, sizeof legacy_key - 1,
                                    legacy, sizeof legacy, NULL, &err) == 0,
                  "put: %s", err.msg);
    ts_dist_t dist;
    ts_dist_start(&dist, data, k.env);
    put_n(&node, 10, "o");

    strata_sub_t *sub = NULL;
    ck_assert_msg(curve_sub_open(&dist, &k, k.a, false, 1, "audit", &sub, &err) == 0,
                  "subscribe: %s", err.msg);
    uint64_t last = read_n(sub, 10, 0);
    ck_assert_int_eq(strata_sub_ack(sub, last, &err), 0);
    wait_stored(sub, last);
    assert_refused(&dist, &k, k.b, "audit");
    strata_sub_close(&sub);

    /* The owner is stored with the offset. */
    static const char audit_key[] = "\0strata/sub/audit";
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(ctl, audit_key, sizeof audit_key - 1, &value, &len, &err),
                     0);
    ck_assert_uint_eq(((uint8_t *)value)[0], 2);
    ck_assert_ptr_nonnull(memmem(value, len, k.a_public, 40));
    free(value);

    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ts_dist_start(&dist, data, k.env);
    assert_refused(&dist, &k, k.b, "audit");
    ck_assert_msg(curve_sub_open(&dist, &k, k.a, false, 0, "audit", &sub, &err) == 0,
                  "resubscribe: %s", err.msg);
    ck_assert_uint_eq(strata_sub_acked_seq(sub), last);
    put_n(&node, 3, "p");
    read_n(sub, 3, last);
    strata_sub_close(&sub);

    /* The old record: b takes it, a is refused. */
    ck_assert_msg(curve_sub_open(&dist, &k, k.b, false, 0, "legacy", &sub, &err) == 0, "legacy: %s",
                  err.msg);
    strata_sub_close(&sub);
    assert_refused(&dist, &k, k.a, "legacy");

    strata_client_destroy(&ctl);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- each failure logged once ----------------------------------------------- */

typedef struct {
    const ts_dist_t *dist;
    uint64_t want;
} failures_t;

static bool offset_failures_reached(void *arg)
{
    failures_t *f = arg;
    return dist_metric(f->dist, "distributor_offset_write_failures_total") >= f->want;
}

typedef struct {
    const char *log;
} recovered_t;

static bool offset_store_recovered(void *arg)
{
    return ts_lines_with(((recovered_t *)arg)->log, "event=offset_store_recovered") > 0;
}

/* With the writer killed, a durable subscriber's ack cannot be stored and
 * the distributor retries it until a writer is back: one
 * offset_store_failed line for the outage and one offset_store_recovered
 * after it, not one per retry. */
START_TEST(a_writer_outage_is_one_offset_store_line_and_one_recovery)
{
    char *dir = ts_tempdir("dist-once");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    strata_sub_options_t o = {.stream_endpoint = dist.live,
                              .history_endpoint = dist.history,
                              .durable = "once",
                              .timeout_ms = 10000};
    strata_sub_t *sub = NULL;
    strata_error_t err;
    ck_assert_msg(strata_sub_open(&o, &sub, &err) == 0, "open: %s", err.msg);
    put_n(&node, 10, "o");
    uint64_t half = read_n(sub, 5, 0), last = read_n(sub, 5, half);
    ck_assert_int_eq(strata_sub_ack(sub, half, &err), 0);
    wait_stored(sub, half);

    ts_node_kill9(&node);
    ck_assert_int_eq(strata_sub_ack(sub, last, &err), 0);
    /* The retries are what the line must not follow: wait for a second. */
    failures_t f = {.dist = &dist, .want = 2};
    ck_assert_msg(ts_wait_for(offset_failures_reached, &f, 60000),
                  "the distributor did not retry the store twice in 60 s");
    ck_assert_uint_eq(ts_lines_with(dist.log, "event=offset_store_failed"), 1);

    /* The loop serves on while the writer is down: the store's retries
     * every half second must not hold it for their timeout (5 s) each. */
    strata_client_options_t co = {.endpoint = dist.history, .timeout_ms = 10000};
    strata_client_t *history = NULL;
    ck_assert_msg(strata_client_connect(&co, &history, &err) == 0, "connect: %s", err.msg);
    uint64_t worst_ms = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t t0 = ts_now_ns();
        strata_reply_t rep;
        ck_assert_msg(strata_client_stats(history, &rep, &err) == 0, "stats: %s", err.msg);
        strata_reply_clear(&rep);
        uint64_t ms = (ts_now_ns() - t0) / 1000000;
        worst_ms = ms > worst_ms ? ms : worst_ms;
    }
    strata_client_destroy(&history);
    ck_assert_msg(worst_ms < 2000, "a stats request waited %" PRIu64 " ms for the dead writer",
                  worst_ms);

    ts_node_start(&node, data, NULL);
    recovered_t r = {.log = dist.log};
    ck_assert_msg(ts_wait_for(offset_store_recovered, &r, 60000),
                  "no offset_store_recovered within 60 s of the writer's return");
    strata_sub_close(&sub);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ck_assert_uint_eq(ts_lines_with(dist.log, "event=offset_store_failed"), 1);
    ck_assert_uint_eq(ts_lines_with(dist.log, "event=offset_store_recovered"), 1);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *distribution_suite(void)
{
    Suite *s = suite_create("distribution");
    TCase *tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, million_records_exactly_once_locally_and_remotely);
    tcase_add_test(tc, lapped_ring_reader_recovers_from_history);
    tcase_add_test(tc, replay_from_seq_one_hands_off_to_live);
    tcase_add_test(tc, distributor_restart_gap_is_detected_and_repaired);
    tcase_add_test(tc, delayed_stream_batches_per_topic);
    tcase_add_test(tc, durable_subscriber_survives_kill9_cycles);
    tcase_add_test(tc, durable_subscriber_killed_after_acking_everything_resumes_at_the_end);
    tcase_add_test(tc, durable_sessions_are_capped_in_window_count_and_bytes);
    tcase_add_test(tc, unused_durable_names_expire_with_their_offsets);
    suite_add_tcase(s, tc);
    tc = tcase_create("subscriber_admin");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, durable_lag_counts_only_its_topics_and_from_seq_is_bounded);
    tcase_add_test(tc, a_stopped_durable_subscriber_is_reset_and_deleted);
    suite_add_tcase(s, tc);
    tc = tcase_create("slow_subscriber");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, a_live_subscriber_that_never_reads_is_bounded_and_closed);
    suite_add_tcase(s, tc);
    tc = tcase_create("curve");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, curve_streams_and_history_serve_known_keys_only);
    tcase_add_test(tc, durable_names_belong_to_the_key_that_made_them);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors_once");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, a_writer_outage_is_one_offset_store_line_and_one_recovery);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--durable-child"))
        return durable_child(argv[2], argv[3], argv[4]);
    return ts_run(distribution_suite());
}
