/* A three-node cluster of real processes on loopback (tests/support/cluster.h):
 * writes from several clients while the master's writer is killed, and the
 * partial failures of a node (its election or its replicator killed, a
 * slave restarted, a slave's disk wiped). After each the cluster settles
 * and every acknowledged write is on every node, the committed logs are
 * identical and no term had two masters. */
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "strata/client.h"
#include "strata/io.h"
#include "strata/snapshot.h"
#include "strata/wal.h"
#include "support.h"
#include "writers.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(the_masters_writer_killed_ten_times_loses_no_acknowledged_write)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-kill");
    ck_assert_int_gt(ts_cluster_master(&cl, 15000, NULL), 0);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, false);
    enum { CYCLES = 10 };
    uint64_t took_ms[CYCLES];
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        ts_writers_wait(ws, 30, 10000);
        int master = ts_cluster_master(&cl, 10000, NULL);
        ck_assert_int_gt(master, 0);
        uint64_t t0 = ts_now_ns();
        ts_node_kill9(&cl.m[master - 1].writer);
        /* The first write another node acknowledges. */
        uint64_t deadline = t0 + 10000000000ull, first = 0;
        while (!first && ts_now_ns() < deadline) {
            for (int k = 0; k < TS_WRITERS; k++)
                if (atomic_load(&ws[k].last_ack_ns) > t0 &&
                    atomic_load(&ws[k].last_ack_node) != master &&
                    (!first || atomic_load(&ws[k].last_ack_ns) < first))
                    first = atomic_load(&ws[k].last_ack_ns);
            struct timespec nap = {0, 5 * 1000000};
            nanosleep(&nap, NULL); /* polling the clients' acknowledgements */
        }
        ck_assert_msg(first, "cycle %d: no write acknowledged within 10 s of killing node%d", cycle,
                      master);
        took_ms[cycle] = (first - t0) / 1000000;
        fprintf(stderr,
                "cycle %d: killed node%d's writer; a new master acknowledged after %" PRIu64
                " ms\n",
                cycle, master, took_ms[cycle]);
        ck_assert_uint_lt(took_ms[cycle], 5000);
        ts_member_start_writer(&cl.m[master - 1]);
    }
    ts_writers_stop(ws);
    qsort(took_ms, CYCLES, sizeof took_ms[0], cmp_u64);
    fprintf(
        stderr,
        "failover (kill -9 of the master's writer to the first acknowledged write): p50 %" PRIu64
        " ms, max %" PRIu64 " ms over %d cycles\n",
        took_ms[CYCLES / 2], took_ms[CYCLES - 1], CYCLES);
    ts_writers_settle_and_check(&cl, ws);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

START_TEST(killing_the_masters_election_process_changes_nothing)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-election");
    uint64_t term = 0;
    int master = ts_cluster_master(&cl, 15000, &term);
    ck_assert_int_gt(master, 0);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, false);
    ts_writers_wait(ws, 30, 10000);
    ts_relay_kill9(&cl.m[master - 1].election);
    /* Three election timeouts: appends keep every follower's timer reset. */
    uint64_t until = ts_now_ns() + 3000000000ull;
    int looked[TS_CLUSTER_MAX] = {0};
    while (ts_now_ns() < until) {
        ts_writers_wait(ws, 10, 5000);
        for (int i = 0; i < cl.n; i++) {
            char role[32];
            uint64_t t = 0;
            /* A status call the loaded machine answers late proves nothing
             * either way; the next round looks again. */
            if (!ts_member_status(&cl.m[i], role, sizeof role, &t))
                continue;
            looked[i]++;
            ck_assert_msg(t == term, "node%d is in term %" PRIu64 ", was %" PRIu64, i + 1, t, term);
            ck_assert_msg(!strcmp(role, i + 1 == master ? "leader" : "follower"), "node%d: %s",
                          i + 1, role);
        }
    }
    for (int i = 0; i < cl.n; i++)
        ck_assert_msg(looked[i] > 0, "node%d never answered a status call", i + 1);
    ts_member_start_election(&cl.m[master - 1]);
    ts_writers_stop(ws);
    ts_writers_settle_and_check(&cl, ws);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

START_TEST(killing_the_masters_replicator_makes_it_step_down)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-replicator");
    uint64_t term = 0;
    int master = ts_cluster_master(&cl, 15000, &term);
    ck_assert_int_gt(master, 0);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, false);
    ts_writers_wait(ws, 30, 10000);
    uint64_t t0 = ts_now_ns();
    ts_relay_kill9(&cl.m[master - 1].replicator);
    /* CheckQuorum: no follower answers it, so it steps down within
     * election_min of their last answers and the others elect a master. */
    char role[32] = "leader";
    uint64_t t = 0;
    while (ts_now_ns() < t0 + 5000000000ull) {
        if (ts_member_status(&cl.m[master - 1], role, sizeof role, &t) && strcmp(role, "leader"))
            break;
        struct timespec nap = {0, 10 * 1000000};
        nanosleep(&nap, NULL); /* polling its role with a deadline */
    }
    uint64_t stepped_ms = (ts_now_ns() - t0) / 1000000;
    fprintf(stderr, "the master without its replicator stepped down after %" PRIu64 " ms\n",
            stepped_ms);
    ck_assert_msg(strcmp(role, "leader"), "node%d still leads 5 s after its replicator died",
                  master);
    ck_assert_uint_le(stepped_ms, 1000); /* within the election timeout */
    int next = ts_cluster_master(&cl, 10000, NULL);
    ck_assert_int_gt(next, 0);
    ck_assert_int_ne(next, master);
    ts_writers_wait(ws, 30, 10000);
    ts_member_start_replicator(&cl.m[master - 1]);
    ts_writers_stop(ws);
    ts_writers_settle_and_check(&cl, ws);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

START_TEST(a_slave_restarted_or_wiped_catches_up)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-slave");
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    int slave = master % cl.n + 1;
    ts_member_t *s = &cl.m[slave - 1];
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, false);
    ts_writers_wait(ws, 30, 10000);

    /* Killed and restarted: it copies what it missed. */
    ts_node_kill9(&s->writer);
    ts_writers_wait(ws, 200, 10000);
    ts_member_start_writer(s);
    ts_writers_wait(ws, 30, 10000);

    /* Wiped: an empty data dir without bootstrap is a replaced disk. It
     * copies the log as a learner, then votes again. */
    ts_relay_stop(&s->replicator);
    ts_relay_stop(&s->election);
    ts_node_kill9(&s->writer);
    ts_writers_wait(ws, 100, 10000);
    ts_rmtree(s->data);
    ts_member_no_bootstrap(&cl, s);
    ts_member_start_writer(s);
    ts_member_start_election(s);
    ts_member_start_replicator(s);
    char role[32] = "";
    uint64_t deadline = ts_now_ns() + 20000000000ull;
    bool was_learner = false;
    while (ts_now_ns() < deadline) {
        if (ts_member_status(s, role, sizeof role, NULL)) {
            was_learner |= !strcmp(role, "learner");
            if (!strcmp(role, "follower"))
                break;
        }
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, NULL); /* polling its role with a deadline */
    }
    ck_assert_msg(was_learner, "the wiped node was never a learner");
    ck_assert_msg(!strcmp(role, "follower"), "the wiped node is %s after 20 s", role);
    ts_writers_wait(ws, 30, 10000);
    ts_writers_stop(ws);
    ts_writers_settle_and_check(&cl, ws);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

static bool file_exists(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static size_t wal_segments(const char *data)
{
    char wal[1024];
    snprintf(wal, sizeof wal, "%s/wal", data);
    DIR *d = opendir(wal);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strstr(de->d_name, ".wal") != NULL;
    closedir(d);
    return n;
}

/* The whole of the writer's current log (node.c keeps it in node->log). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    size_t got = fread(text, 1, (size_t)len, f);
    text[got] = '\0';
    fclose(f);
    return text;
}

static void copy_prefix(const char *from, const char *to, uint64_t len, bool flip)
{
    uint8_t *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    ts_file_read_at(from, 0, buf, len);
    if (flip)
        buf[len / 2] ^= 0x01;
    FILE *f = fopen(to, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ts_file_write_at(to, 0, buf, len);
    free(buf);
}

/* What a copy killed half-way leaves in the slave's bootstrap/: the
 * master's listing, the first half of one table, and the first half of
 * another with a byte changed (a copy must find that by its CRC). */
static void stage_partial_copy(const char *master_data, const char *slave_data, uint64_t seq)
{
    char name[64], snap[1024], part[1024];
    snprintf(name, sizeof name, "snap-%020" PRIu64, seq);
    snprintf(snap, sizeof snap, "%s/snapshots/%s", master_data, name);
    snprintf(part, sizeof part, "%s/bootstrap/%s.part", slave_data, name);
    ck_assert_int_eq(strata_io_mkdirs(strata_io_posix(), part), 0);
    strata_snapshot_meta_t meta = {0};
    strata_error_t err;
    ck_assert_msg(strata_snapshot_read(snap, &meta, &err) == 0, "%s", err.msg);
    char from[1200], to[1200];
    snprintf(from, sizeof from, "%s/SNAPSHOT", snap);
    snprintf(to, sizeof to, "%s/SNAPSHOT", part);
    copy_prefix(from, to, ts_file_size(from), false);
    int tables = 0;
    for (size_t i = 0; i < meta.n_files && tables < 2; i++) {
        if (!strstr(meta.files[i].name, ".sst") || meta.files[i].size < 2)
            continue;
        snprintf(from, sizeof from, "%s/%s", snap, meta.files[i].name);
        snprintf(to, sizeof to, "%s/%s", part, meta.files[i].name);
        copy_prefix(from, to, meta.files[i].size / 2, tables == 1);
        tables++;
    }
    strata_snapshot_meta_free(&meta);
    ck_assert_msg(tables == 2, "the master's snapshot %s has fewer than two tables", snap);
}

/* A slave down while the master's log moved on by more than
 * cluster/follower_retain_mb, and a snapshot let the master delete that
 * part: on its return it copies the master's newest snapshot from the
 * master's replicator, installs it and follows on from its seq, and
 * stratactl verify finds its data dir sound. */
START_TEST(a_slave_behind_retention_copies_the_masters_snapshot)
{
    /* Small segments and memtables, no retention for subscribers and 1 MiB
     * for a follower, so a few MiB of writes pass it. Every node's process reads
     * these (the environment overrides the config). */
    setenv("STRATA_WRITER_WAL_SEGMENT_MB", "1", 1);
    setenv("STRATA_WRITER_WAL_RETAIN_MB", "0", 1);
    setenv("STRATA_WRITER_WAL_RETAIN_HOURS", "0", 1);
    setenv("STRATA_CLUSTER_FOLLOWER_RETAIN_MB", "1", 1);
    setenv("STRATA_WRITER_MEMTABLE_MB", "1", 1); /* several tables in the snapshot */
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-behind");
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    ts_member_t *m = &cl.m[master - 1];
    int slave = master % cl.n + 1;
    ts_member_t *s = &cl.m[slave - 1];
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, false);
    ts_writers_wait(ws, 30, 10000);
    uint64_t killed_at = ts_now_ns();
    ts_node_kill9(&s->writer);

    /* 4 MiB while it is down. */
    strata_client_t *c = ts_writer_connect(m);
    ck_assert_ptr_nonnull(c);
    static char value[4096];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < 1024; i++) {
        char key[32];
        snprintf(key, sizeof key, "bulk-%04d", i);
        strata_error_t err;
        ck_assert_msg(strata_client_put(c, STRATA_DURABILITY_SYNC, key, strlen(key), value,
                                        sizeof value, NULL, &err) == 0,
                      "put %s: %s", key, err.msg);
    }
    /* The master reports the stopped slave's lag in entries and in time. */
    char lag_name[32], lag_ms_name[32];
    snprintf(lag_name, sizeof lag_name, "peer_%d_lag", slave);
    snprintf(lag_ms_name, sizeof lag_ms_name, "peer_%d_lag_ms", slave);
    uint64_t lag = ts_stat(c, lag_name), lag_ms = ts_stat(c, lag_ms_name);
    uint64_t down_ms = (ts_now_ns() - killed_at) / 1000000;
    fprintf(stderr, "node%d down %" PRIu64 " ms: lag %" PRIu64 " entries, %" PRIu64 " ms\n", slave,
            down_ms, lag, lag_ms);
    ck_assert_uint_ge(lag, 1024);
    ck_assert_msg(lag_ms + 100 >= down_ms / 2 && lag_ms <= down_ms + 100,
                  "lag %" PRIu64 " ms for a node down %" PRIu64 " ms", lag_ms, down_ms);
    strata_client_destroy(&c);
    const char *const snap_env[] = {"STRATA_SNAPSHOTTER_METRICS=127.0.0.1:0",
                                    "STRATA_SNAPSHOTTER_INTERVAL_S=0", NULL};
    ts_snap_t snap;
    ts_snap_start_config(&snap, m->data, m->cfg, snap_env);
    strata_client_t *sc = ts_connect(snap.endpoint, 60000);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_control(sc, "snapshot", NULL, 0, &rep, &err) == 0, "snapshot: %s",
                  err.msg);
    uint64_t snap_seq = strtoull(ts_pair(&rep, "seq"), NULL, 10);
    uint64_t deleted = strtoull(ts_pair(&rep, "wal_segments_deleted"), NULL, 10);
    strata_reply_clear(&rep);
    strata_client_destroy(&sc);
    ck_assert_msg(deleted >= 2,
                  "the master's snapshot at seq %" PRIu64 " deleted %" PRIu64
                  " WAL segments; the stopped slave should hold back none",
                  snap_seq, deleted);
    fprintf(stderr, "master node%d: snapshot at seq %" PRIu64 ", %" PRIu64 " segments deleted\n",
            master, snap_seq, deleted);

    stage_partial_copy(m->data, s->data, snap_seq);
    uint64_t back_at = ts_now_ns();
    ts_member_start_writer(s);
    /* Its log says so once the install is whole (the raft-snapshot file
     * comes a step earlier). */
    uint64_t deadline = ts_now_ns() + 60000000000ull;
    bool installed = false;
    while (!installed && ts_now_ns() < deadline) {
        char *text = read_text(s->writer.log);
        installed = strstr(text, "event=snapshot_installed") != NULL;
        free(text);
        struct timespec nap = {0, 20 * 1000000};
        if (!installed)
            nanosleep(&nap, NULL); /* polling for the install with a deadline */
    }
    ck_assert_msg(installed, "node%d installed no snapshot within 60 s of its return", slave);
    ck_assert_msg(file_exists(s->data, "raft-snapshot"), "node%d wrote no raft-snapshot", slave);
    fprintf(stderr, "node%d installed the master's snapshot %.0f ms after its return\n", slave,
            (double)(ts_now_ns() - back_at) / 1e6);
    char before[64];
    snprintf(before, sizeof before, "wal.before-snap-%020" PRIu64, snap_seq);
    ck_assert_msg(file_exists(s->data, before), "node%d kept no %s", slave, before);
    /* It went on from the partial copy, and fetched the damaged table again. */
    char *log = read_text(s->writer.log);
    ck_assert_msg(strstr(log, "event=bootstrap_copy ") && strstr(log, "resumed=1"),
                  "node%d did not continue the partial copy:\n%s", slave, log);
    ck_assert_msg(strstr(log, "event=bootstrap_crc_mismatch"),
                  "node%d did not catch the damaged table by its CRC", slave);
    const char *copied = strstr(log, "event=bootstrap_copied");
    ck_assert_msg(copied && !strstr(copied, "resumed_bytes=0 "), "node%d resumed nothing: %s",
                  slave, copied ? copied : "(no event=bootstrap_copied)");
    const char *end = strchr(copied, '\n');
    fprintf(stderr, "node%d: %.*s\n", slave, end ? (int)(end - copied) : 200, copied);
    free(log);
    ts_writers_wait(ws, 30, 20000);
    ts_writers_stop(ws);
    ts_writers_settle_and_check(&cl, ws);
    ck_assert_uint_gt(wal_segments(s->data), 0);
    int now_master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(now_master, 0);
    if (now_master != slave) {
        c = ts_writer_connect(&cl.m[now_master - 1]);
        ck_assert_ptr_nonnull(c);
        /* Its match reaches the master with its next answer. */
        uint64_t caught_up_by = ts_now_ns() + 5000000000ull, left;
        while ((left = ts_stat(c, lag_ms_name)) != 0 && ts_now_ns() < caught_up_by) {
            struct timespec nap = {0, 10 * 1000000};
            nanosleep(&nap, NULL); /* polling the master's figure with a deadline */
        }
        ck_assert_msg(left == 0, "node%d still lags %" PRIu64 " ms after settling", slave, left);
        strata_client_destroy(&c);
    }

    /* The installed node's data dir checks out, beside its running writer. */
    char *out = NULL;
    const char *argv[] = {STRATACTL_BIN, "verify", s->data, NULL};
    int code = ts_run_capture(argv, &out);
    ck_assert_msg(code == 0, "stratactl verify %s: exit %d\n%s", s->data, code, out ? out : "");
    free(out);
    ts_snap_stop(&snap);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

static bool present(strata_client_t *c, int client, uint32_t i)
{
    char key[32];
    ts_writer_key(key, sizeof key, client, i);
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_client_get(c, key, strlen(key), &value, &len, &err);
    free(value);
    ck_assert_msg(rc == 0 || rc == STRATA_ENOTFOUND, "get %s: %s", key, err.msg);
    return rc == 0;
}

/* One async put of key to member m: 0, or the error and its message. */
static int async_put(ts_member_t *m, const char *key, strata_error_t *err)
{
    strata_client_t *c = ts_writer_connect(m);
    ck_assert_ptr_nonnull(c);
    strata_request_t req = {.op = STRATA_OP_PUT,
                            .durability = STRATA_DURABILITY_SYNC,
                            .replication = STRATA_REPLICATION_ASYNC,
                            .key = {(const uint8_t *)key, strlen(key)},
                            .value = {(const uint8_t *)key, strlen(key)}};
    strata_reply_t rep;
    int rc = strata_client_call(c, &req, &rep, err);
    if (rc == 0)
        strata_reply_clear(&rep);
    strata_client_destroy(&c);
    return rc;
}

/* max_lag_ms bounds what a failover loses, so it counts a follower's
 * durable progress, not only its answers: followers whose fsyncs take 2 s
 * answer every heartbeat, yet fall over a second behind, and the master
 * refuses async writes until one catches up. */
START_TEST(async_writes_are_refused_while_the_nearest_follower_lags)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-async-lag");
    for (int i = 0; i < cl.n; i++) {
        cl.m[i].slowdisk = true;
        ts_member_restart(&cl.m[i]);
    }
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    strata_error_t err;
    ck_assert_msg(async_put(&cl.m[master - 1], "lag/0", &err) == 0, "async put: %s", err.msg);
    /* A log that stood still for over max_lag_ms does not make the first
     * writes after it look that far behind. */
    usleep(1500000);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(async_put(&cl.m[master - 1], "lag/idle", &err) == 0,
                      "async put %d after 1.5 s idle: %s", i, err.msg);
    for (int i = 0; i < cl.n; i++)
        if (i + 1 != master)
            ts_member_slowdisk(&cl.m[i], 2000000);
    uint64_t deadline = ts_now_ns() + 20000000000ull;
    int rc = 0, n = 1;
    while (ts_now_ns() < deadline) {
        char key[32];
        snprintf(key, sizeof key, "lag/%d", n++);
        rc = async_put(&cl.m[master - 1], key, &err);
        if (rc != 0)
            break;
        usleep(20000); /* a steady trickle of writes for the followers to fall behind on */
    }
    ck_assert_msg(rc == STRATA_EBUSY,
                  "no async write refused within 20 s of 2 s fsyncs (rc %d: %s)", rc,
                  rc ? err.msg : "");
    ck_assert_msg(strstr(err.msg, "nearest follower is") && strstr(err.msg, "behind"),
                  "refused for silence, not lag, though the followers answer: %s", err.msg);
    char refusal[sizeof err.msg];
    snprintf(refusal, sizeof refusal, "%s", err.msg);
    ck_assert_int_eq(ts_cluster_master(&cl, 1000, NULL), master);
    for (int i = 0; i < cl.n; i++)
        ts_member_slowdisk(&cl.m[i], 0);
    deadline = ts_now_ns() + 20000000000ull;
    do {
        rc = async_put(&cl.m[master - 1], "lag/after", &err);
    } while (rc == STRATA_EBUSY && ts_now_ns() < deadline && usleep(20000) == 0);
    ck_assert_msg(rc == 0, "async writes still refused 20 s after the disks were fast: %s",
                  err.msg);
    fprintf(stderr, "async-lag: %d writes accepted, then refused: %s\n", n - 2, refusal);
    ts_cluster_destroy(&cl);
}
END_TEST

/* Async writes are acknowledged before any follower has them, so a
 * failover may lose some: only the killed master's unreplicated tail (seqs
 * above everything of its that survived), acknowledged within max_lag_ms of
 * the kill, and set aside in rollback/ when it rejoins. */
START_TEST(async_writes_a_failover_loses_are_the_masters_unreplicated_tail)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-async");
    ck_assert_int_gt(ts_cluster_master(&cl, 15000, NULL), 0);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start(&cl, ws, true);
    enum { CYCLES = 3 };
    uint64_t kill_ns[CYCLES];
    int killed[CYCLES];
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        ts_writers_wait(ws, 200, 10000);
        killed[cycle] = ts_cluster_master(&cl, 10000, NULL);
        ck_assert_int_gt(killed[cycle], 0);
        /* The followers' replicators paused: what the master acknowledges
         * meanwhile reaches nobody, within max_lag_ms. */
        for (int i = 0; i < cl.n; i++)
            if (i + 1 != killed[cycle])
                kill(cl.m[i].replicator.pid, SIGSTOP);
        ts_writers_wait(ws, 50, 10000);
        kill_ns[cycle] = ts_now_ns();
        ts_node_kill9(&cl.m[killed[cycle] - 1].writer);
        for (int i = 0; i < cl.n; i++)
            if (i + 1 != killed[cycle])
                kill(cl.m[i].replicator.pid, SIGCONT);
        ck_assert_int_gt(ts_cluster_master(&cl, 10000, NULL), 0);
        ts_member_start_writer(&cl.m[killed[cycle] - 1]);
    }
    ts_writers_wait(ws, 30, 10000);
    ts_writers_stop(ws);
    ts_cluster_final_write(&cl);
    uint64_t commit = ts_cluster_settle(&cl, 1, 30000);
    ck_assert_msg(commit > 0, "the nodes did not agree on one commit seq within 30 s");
    ts_cluster_check_logs(&cl, commit);
    ts_cluster_check_one_master_per_term(&cl);

    strata_client_t *c = ts_writer_connect(&cl.m[0]);
    ck_assert_ptr_nonnull(c);
    uint64_t lost = 0, window_ms = 0, acked = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        uint64_t from = cycle ? kill_ns[cycle - 1] : 0, highest_kept = 0, lowest_lost = UINT64_MAX;
        for (int k = 0; k < TS_WRITERS; k++)
            for (uint64_t j = 0; j < atomic_load(&ws[k].n_acked); j++) {
                if (ws[k].acked_ns[j] <= from || ws[k].acked_ns[j] > kill_ns[cycle] ||
                    ws[k].acked_node[j] != killed[cycle])
                    continue;
                acked++;
                if (present(c, k, ws[k].acked[j])) {
                    if (ws[k].acked_seq[j] > highest_kept)
                        highest_kept = ws[k].acked_seq[j];
                    continue;
                }
                lost++;
                if (ws[k].acked_seq[j] < lowest_lost)
                    lowest_lost = ws[k].acked_seq[j];
                uint64_t ms = (kill_ns[cycle] - ws[k].acked_ns[j]) / 1000000;
                window_ms = ms > window_ms ? ms : window_ms;
                ck_assert_msg(ms <= 1000 + 200,
                              "a write acknowledged %" PRIu64 " ms before the kill was lost "
                              "(cluster/max_lag_ms 1000)",
                              ms);
            }
        ck_assert_msg(lowest_lost == UINT64_MAX || lowest_lost > highest_kept,
                      "cycle %d: seq %" PRIu64 " was lost below seq %" PRIu64 ", which was kept",
                      cycle, lowest_lost, highest_kept);
    }
    strata_client_destroy(&c);
    ck_assert_msg(lost > 0, "no acknowledged async write was lost with the followers paused");
    /* The killed masters kept their tails until they rejoined: cut into
     * rollback/, never merged. */
    uint64_t rolled = 0;
    for (int i = 0; i < cl.n; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/wal/rollback", cl.m[i].data);
        DIR *d = opendir(path);
        for (struct dirent *de; d && (de = readdir(d));)
            rolled += strstr(de->d_name, ".entries") != NULL;
        if (d)
            closedir(d);
    }
    ck_assert_msg(rolled > 0, "no rollback file on any node though %" PRIu64 " writes were lost",
                  lost);
    fprintf(stderr,
            "async: %d failovers, %" PRIu64 " acknowledged writes of the killed masters, %" PRIu64
            " lost, all above what their masters had replicated, acknowledged at most %" PRIu64
            " ms before the kill\n",
            CYCLES, acked, lost, window_ms);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

/* Clients with sessions through five failovers: each write they were told
 * was applied is in the log exactly once, and none was given up on. */
START_TEST(session_clients_apply_every_write_exactly_once_across_failovers)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-sessions");
    ck_assert_int_gt(ts_cluster_master(&cl, 15000, NULL), 0);
    ts_writer_t ws[TS_WRITERS];
    ts_writers_start_mode(&cl, ws, false, true);
    for (int cycle = 0; cycle < 5; cycle++) {
        ts_writers_wait(ws, 50, 20000);
        int master = ts_cluster_master(&cl, 10000, NULL);
        ck_assert_int_gt(master, 0);
        ts_node_kill9(&cl.m[master - 1].writer);
        ck_assert_int_gt(ts_cluster_master(&cl, 10000, NULL), 0);
        ts_member_start_writer(&cl.m[master - 1]);
    }
    ts_writers_wait(ws, 50, 20000);
    ts_writers_stop(ws);
    ts_cluster_final_write(&cl);
    uint64_t commit = ts_cluster_settle(&cl, 1, 30000);
    ck_assert_msg(commit > 0, "the nodes did not agree on one commit seq within 30 s");
    ts_cluster_check_logs(&cl, commit);
    ts_writers_check_everywhere(&cl, ws);
    uint64_t unknown = 0;
    for (int k = 0; k < TS_WRITERS; k++)
        unknown += ws[k].unknown;
    ck_assert_uint_eq(unknown, 0);
    /* Exactly once: every client key appears once in the committed log. */
    uint32_t *count[TS_WRITERS];
    for (int k = 0; k < TS_WRITERS; k++)
        count[k] = calloc(200000, sizeof *count[k]);
    char wal[700];
    snprintf(wal, sizeof wal, "%s/wal", cl.m[0].data);
    strata_wal_cursor_t *cur = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_cursor_open(wal, 0, &cur, &err), 0);
    strata_entry_t e;
    const uint8_t *raw;
    size_t raw_len;
    while (strata_wal_cursor_next(cur, commit, &e, &raw, &raw_len, &err) == 0) {
        int k;
        unsigned i;
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int)(e.key_len < 31 ? e.key_len : 31),
                 (const char *)e.key);
        if (sscanf(key, "c%d-%u", &k, &i) == 2 && k >= 0 && k < TS_WRITERS && i < 200000)
            count[k][i]++;
    }
    strata_wal_cursor_close(&cur);
    uint64_t writes = 0;
    for (int k = 0; k < TS_WRITERS; k++) {
        for (uint64_t j = 0; j < atomic_load(&ws[k].n_acked); j++) {
            uint32_t i = ws[k].acked[j];
            ck_assert_msg(count[k][i] == 1, "c%d-%06u is in the log %u times", k, i, count[k][i]);
            writes++;
        }
        free(count[k]);
    }
    fprintf(stderr, "sessions: %" PRIu64 " writes across 5 failovers, each in the log once\n",
            writes);
    ts_writers_free(ws);
    ts_cluster_destroy(&cl);
}
END_TEST

/* R7: a master whose followers stop answering stops answering reads once
 * its lease lapses, before another node could be elected and commit. */
START_TEST(a_master_cut_off_from_its_followers_stops_answering_reads)
{
    ts_cluster_t cl;
    ts_cluster_start(&cl, 3, "repl-lease");
    int master = ts_cluster_master(&cl, 15000, NULL);
    ck_assert_int_gt(master, 0);
    strata_client_t *c = ts_writer_connect(&cl.m[master - 1]);
    ck_assert_ptr_nonnull(c);
    strata_error_t err;
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &len, &err), STRATA_ENOTFOUND);
    for (int i = 0; i < cl.n; i++)
        if (i + 1 != master)
            kill(cl.m[i].replicator.pid, SIGSTOP);
    uint64_t t0 = ts_now_ns(), refused_ms = 0;
    int rc = 0;
    while (ts_now_ns() < t0 + 3000000000ull) {
        rc = strata_client_get(c, "k", 1, &value, &len, &err);
        free(value);
        value = NULL;
        if (rc == STRATA_ENOTMASTER) {
            refused_ms = (ts_now_ns() - t0) / 1000000;
            break;
        }
        struct timespec nap = {0, 5 * 1000000};
        nanosleep(&nap, NULL); /* polling the master's answer with a deadline */
    }
    for (int i = 0; i < cl.n; i++)
        if (i + 1 != master)
            kill(cl.m[i].replicator.pid, SIGCONT);
    ck_assert_msg(rc == STRATA_ENOTMASTER, "the cut-off master still answered reads after 3 s");
    ck_assert_msg(strstr(err.msg, "no read lease"), "%s", err.msg);
    fprintf(stderr, "a master cut off from its followers refused reads after %" PRIu64 " ms\n",
            refused_ms);
    /* The lease is 400 ms from the last round a majority answered, below
     * the earliest election (500 ms); the bound leaves room for a loaded
     * machine answering this client late. */
    ck_assert_uint_lt(refused_ms, 1000);
    strata_client_destroy(&c);
    ck_assert_int_gt(ts_cluster_master(&cl, 15000, NULL), 0);
    ts_cluster_destroy(&cl);
}
END_TEST

static Suite *replication_suite(void)
{
    Suite *s = suite_create("replication");
    TCase *tc = tcase_create("three_nodes");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, the_masters_writer_killed_ten_times_loses_no_acknowledged_write);
    tcase_add_test(tc, killing_the_masters_election_process_changes_nothing);
    tcase_add_test(tc, killing_the_masters_replicator_makes_it_step_down);
    tcase_add_test(tc, a_slave_restarted_or_wiped_catches_up);
    tcase_add_test(tc, a_slave_behind_retention_copies_the_masters_snapshot);
    tcase_add_test(tc, async_writes_a_failover_loses_are_the_masters_unreplicated_tail);
    tcase_add_test(tc, async_writes_are_refused_while_the_nearest_follower_lags);
    tcase_add_test(tc, session_clients_apply_every_write_exactly_once_across_failovers);
    tcase_add_test(tc, a_master_cut_off_from_its_followers_stops_answering_reads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(replication_suite());
}
