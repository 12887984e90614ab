/* strata-snapshotter beside a real writer: snapshots sealed, listed, pruned
 * and truncating the WAL; stratactl backup and restore round trips and
 * refusals; and kill -9 of the snapshotter mid-snapshot while writes go on,
 * with every acknowledged write kept and no half snapshot ever listed. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node.h"
#include "strata/client.h"
#include "strata/snapshot.h"
#include "support.h"

#ifndef STRATACTL_BIN
#error "STRATACTL_BIN must name the stratactl binary"
#endif

static void put_kv(strata_client_t *client, uint64_t i, size_t value_len, uint64_t *seq)
{
    char key[32], value[2048];
    snprintf(key, sizeof key, "k%08" PRIu64, i);
    ck_assert_uint_le(value_len, sizeof value);
    memset(value, 'a' + (int)(i % 26), value_len);
    strata_error_t err;
    int rc = strata_client_put(client, STRATA_DURABILITY_SYNC, key, strlen(key), value, value_len,
                               seq, &err);
    ck_assert_msg(rc == 0, "put %s: %s", key, err.msg);
}

static void check_kv(strata_client_t *client, uint64_t i, size_t value_len, bool present)
{
    char key[32];
    snprintf(key, sizeof key, "k%08" PRIu64, i);
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_client_get(client, key, strlen(key), &value, &len, &err);
    if (!present) {
        ck_assert_msg(rc == STRATA_ENOTFOUND, "%s: present, or %s", key, err.msg);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", key, err.msg);
    ck_assert_uint_eq(len, value_len);
    for (size_t b = 0; b < len; b++)
        ck_assert_int_eq(((char *)value)[b], 'a' + (int)(i % 26));
    free(value);
}

typedef struct {
    uint64_t seq, wal_deleted;
    bool existed;
    char name[64];
} snap_result_t;

static snap_result_t take(const ts_snap_t *snap)
{
    strata_client_t *client = ts_connect(snap->endpoint, 60000);
    strata_reply_t rep;
    strata_error_t err;
    int rc = strata_client_control(client, "snapshot", NULL, 0, &rep, &err);
    ck_assert_msg(rc == 0, "snapshot: %s", err.msg);
    snap_result_t r = {.seq = strtoull(ts_pair(&rep, "seq"), NULL, 10),
                       .wal_deleted = strtoull(ts_pair(&rep, "wal_segments_deleted"), NULL, 10),
                       .existed = !strcmp(ts_pair(&rep, "existed"), "true")};
    snprintf(r.name, sizeof r.name, "%s", ts_pair(&rep, "name"));
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    return r;
}

static size_t count_entries(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "open %s", dir);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), slen = strlen(suffix);
        if (!strncmp(de->d_name, prefix, strlen(prefix)) && len >= slen &&
            !strcmp(de->d_name + len - slen, suffix))
            n++;
    }
    closedir(d);
    return n;
}

/* Every listed snapshot is whole: each file present with its checksum. */
static size_t check_all_snapshots(const char *snapshots)
{
    char **names = NULL;
    size_t count = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_snapshot_list(snapshots, &names, &count, &err), 0);
    for (size_t i = 0; i < count; i++) {
        char *path = ts_path(snapshots, names[i]);
        ck_assert_msg(strata_snapshot_check(path, NULL, NULL, &err) == 0, "%s: %s", names[i],
                      err.msg);
        free(path);
    }
    strata_snapshot_list_free(names, count);
    return count;
}

static int ctl(char **out, const char *a, const char *b, const char *c, const char *d,
               const char *e)
{
    const char *argv[] = {STRATACTL_BIN, a, b, c, d, e, NULL};
    return ts_run_capture(argv, out);
}

START_TEST(snapshots_seal_prune_and_truncate_the_wal)
{
    char *dir = ts_tempdir("snap-basic");
    char *data = ts_path(dir, "node");
    /* Small segments and no retention, so a snapshot's truncation shows. */
    const char *const writer_env[] = {"STRATA_WRITER_WAL_SEGMENT_MB=1",
                                      "STRATA_WRITER_WAL_RETAIN_MB=0",
                                      "STRATA_WRITER_WAL_RETAIN_HOURS=0", NULL};
    ts_node_t node;
    ts_node_start(&node, data, writer_env);
    const char *const snap_env[] = {"STRATA_SNAPSHOTTER_KEEP=2", NULL};
    ts_snap_t snap;
    ts_snap_start(&snap, data, snap_env);
    strata_client_t *client = ts_connect(node.endpoint, 10000);

    uint64_t last = 0;
    for (uint64_t i = 0; i < 3000; i++)
        put_kv(client, i, 1000, &last);
    char *wal = ts_path(data, "wal");
    size_t segments_before = count_entries(wal, "", ".wal");
    ck_assert_uint_ge(segments_before, 3);

    snap_result_t a = take(&snap);
    ck_assert_uint_eq(a.seq, last);
    ck_assert(!a.existed);
    ck_assert_uint_gt(a.wal_deleted, 0);
    ck_assert_uint_eq(count_entries(wal, "", ".wal"), segments_before - a.wal_deleted);

    /* Nothing written since: the same snapshot stands. */
    snap_result_t again = take(&snap);
    ck_assert(again.existed);
    ck_assert_str_eq(again.name, a.name);

    put_kv(client, 3000, 10, &last);
    snap_result_t b = take(&snap);
    put_kv(client, 3001, 10, &last);
    snap_result_t c = take(&snap);
    ck_assert_uint_lt(a.seq, b.seq);
    ck_assert_uint_lt(b.seq, c.seq);
    ck_assert_uint_eq(c.seq, last);
    /* keep = 2: the oldest is gone; the rest are whole. */
    ck_assert_uint_eq(check_all_snapshots(snap.snapshots), 2);
    char *oldest = ts_path(snap.snapshots, a.name);
    ck_assert_int_ne(access(oldest, F_OK), 0);
    free(oldest);

    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "snapshots", "--dir", data, NULL, NULL), 0);
    ck_assert_msg(strstr(out, b.name) && strstr(out, c.name) && !strstr(out, a.name), "[%s]", out);
    free(out);

    /* The WAL truncation lost nothing: a restart recovers every write. */
    strata_client_destroy(&client);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_node_start(&node, data, writer_env);
    client = ts_connect(node.endpoint, 10000);
    for (uint64_t i = 0; i < 3002; i += 97)
        check_kv(client, i, i < 3000 ? 1000 : 10, true);
    check_kv(client, 3001, 10, true);
    strata_client_destroy(&client);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(wal);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(backup_and_restore_round_trip)
{
    char *dir = ts_tempdir("snap-backup");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_snap_t snap;
    ts_snap_start(&snap, data, NULL);
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    uint64_t seq = 0;
    for (uint64_t i = 0; i < 500; i++)
        put_kv(client, i, 300, &seq);
    snap_result_t s = take(&snap);
    ck_assert_uint_eq(s.seq, seq);
    for (uint64_t i = 500; i < 600; i++)
        put_kv(client, i, 300, NULL); /* after the snapshot: not in the backup */

    char *backup = ts_path(dir, "backup");
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "backup", backup, "--dir", data, "-q"), 0);
    ck_assert_msg(strstr(out, "files") != NULL, "[%s]", out);
    free(out);
    /* A second backup onto it is refused rather than mixed in. */
    ck_assert_int_eq(ctl(NULL, "backup", backup, "--dir", data, "-q"), 3);

    char *restored = ts_path(dir, "restored");
    ck_assert_int_eq(ctl(NULL, "restore", backup, restored, NULL, NULL), 0);
    strata_client_destroy(&client);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);

    ts_node_start(&node, restored, NULL);
    client = ts_connect(node.endpoint, 10000);
    for (uint64_t i = 0; i < 600; i++)
        check_kv(client, i, 300, i < 500);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_int_eq(strata_client_status(client, &rep, &err), 0);
    ck_assert_uint_eq(rep.last_seq, s.seq);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    free(restored);
    free(backup);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* The first .sst in dir, into name. */
static void first_table(const char *dir, char *name, size_t cap)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    name[0] = '\0';
    while ((de = readdir(d)) != NULL && !name[0])
        if (strstr(de->d_name, ".sst"))
            snprintf(name, cap, "%s", de->d_name);
    closedir(d);
    ck_assert_msg(name[0], "no table in %s", dir);
}

START_TEST(restore_refuses_a_damaged_backup_naming_the_file)
{
    char *dir = ts_tempdir("snap-damage");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_snap_t snap;
    ts_snap_start(&snap, data, NULL);
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    for (uint64_t i = 0; i < 200; i++)
        put_kv(client, i, 100, NULL);
    take(&snap);
    strata_client_destroy(&client);
    char *backup = ts_path(dir, "backup");
    ck_assert_int_eq(ctl(NULL, "backup", backup, "--dir", data, "-q"), 0);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);

    /* A whole backup verifies clean, SNAPSHOT checksums included. */
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "verify", backup, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "SNAPSHOT checksums checked") && !strstr(out, "problem"), "[%s]",
                  out);
    free(out);

    char table[256];
    first_table(backup, table, sizeof table);
    char *path = ts_path(backup, table);
    uint8_t byte;
    ts_file_read_at(path, 40, &byte, 1);
    byte ^= 0x5a;
    ts_file_write_at(path, 40, &byte, 1);

    /* verify names the damaged block and the changed file. */
    ck_assert_int_eq(ctl(&out, "verify", backup, NULL, NULL, NULL), 3);
    ck_assert_msg(strstr(out, "problem") && strstr(out, table) && strstr(out, "checksum"), "[%s]",
                  out);
    free(out);

    char *restored = ts_path(dir, "restored");
    const char *argv[] = {STRATACTL_BIN, "--json", "restore", backup, restored, NULL};
    ck_assert_int_eq(ts_run_capture(argv, &out), 3);
    ck_assert_msg(strstr(out, table) != NULL && strstr(out, "crc32c") != NULL,
                  "the damaged table is not named: [%s]", out);
    free(out);
    ck_assert_int_ne(access(restored, F_OK), 0);
    /* On stderr the table is named once: its problem's line, then the
     * error with the count (which used to repeat the first problem). */
    const char *plain[] = {STRATACTL_BIN, "restore", backup, restored, NULL};
    ck_assert_int_eq(ts_run_output(plain, NULL, TS_STDERR, 60, &out), 3);
    const char *named = strstr(out, table);
    ck_assert_msg(named && !strstr(named + 1, table), "the table not named once: [%s]", out);
    ck_assert_msg(strstr(out, "stratactl: restore: 1 of the snapshot's files are bad\n"), "[%s]",
                  out);
    free(out);

    /* With the table whole again, a SNAPSHOT file that does not parse:
     * verify says why, as restore does (it used to count the problem and
     * print nothing about it). */
    ts_file_read_at(path, 40, &byte, 1);
    byte ^= 0x5a;
    ts_file_write_at(path, 40, &byte, 1);
    char *meta = ts_path(backup, "SNAPSHOT");
    ts_file_write_at(meta, 0, "XXXXXXXX", 8);
    ck_assert_int_eq(ctl(&out, "verify", backup, NULL, NULL, NULL), 3);
    ck_assert_msg(strstr(out, "problem ") && strstr(out, "SNAPSHOT line") &&
                      strstr(out, "does not match"),
                  "verify does not say why SNAPSHOT is bad: [%s]", out);
    free(out);

    /* Without its SNAPSHOT a directory is no backup at all. */
    ck_assert_int_eq(unlink(meta), 0);
    ck_assert_int_eq(ctl(NULL, "restore", backup, restored, NULL, NULL), 1);
    ck_assert_int_ne(access(restored, F_OK), 0);
    free(meta);
    free(restored);
    free(path);
    free(backup);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- kill -9 of the snapshotter mid-snapshot ---------------------------------- */

typedef struct {
    const char *endpoint;
    pthread_t thread;
    atomic_bool stop;
    _Atomic uint64_t acked; /* keys 0..acked-1 are acknowledged */
    char failure[1024];
} loader_t;

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    strata_client_options_t opts = {.endpoint = l->endpoint, .timeout_ms = 10000};
    strata_client_t *client = NULL;
    strata_error_t err;
    if (strata_client_connect(&opts, &client, &err) != 0) {
        snprintf(l->failure, sizeof l->failure, "connect: %s", err.msg);
        return NULL;
    }
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "k%08" PRIu64, i);
        memset(value, 'a' + (int)(i % 26), sizeof value);
        if (strata_client_put(client, STRATA_DURABILITY_SYNC, key, strlen(key), value, sizeof value,
                              NULL, &err) != 0) {
            snprintf(l->failure, sizeof l->failure, "put %s: %s", key, err.msg);
            break;
        }
        atomic_store(&l->acked, i + 1);
    }
    strata_client_destroy(&client);
    return NULL;
}

typedef struct {
    const ts_snap_t *snap;
} clean_t;

/* Takes a snapshot (which first removes what a killed one left) and says
 * whether nothing half-built remains. */
static bool snapshot_leaves_no_partial(void *arg)
{
    const ts_snap_t *snap = ((clean_t *)arg)->snap;
    take(snap);
    return count_entries(snap->snapshots, ".tmp-", "") == 0;
}

/* A writer that stops answering mid-checkpoint and is then killed: the
 * snapshotter keeps answering ping meanwhile, fails the snapshot within a
 * second of the kill naming the writer, and snapshots again once a writer
 * is back. */
START_TEST(a_writer_killed_mid_checkpoint_fails_the_snapshot_at_once)
{
    char *dir = ts_tempdir("snap-writer-gone");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_snap_t snap;
    ts_snap_start(&snap, data, NULL);
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    uint64_t seq = 0;
    for (uint64_t i = 0; i < 100; i++)
        put_kv(client, i, 100, &seq);
    strata_client_destroy(&client);

    /* The writer freezes: the checkpoint request gets no answer. */
    ck_assert_int_eq(kill(node.pid, SIGSTOP), 0);
    strata_client_t *waiting = ts_connect(snap.endpoint, 60000);
    strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = "snapshot"};
    uint64_t id = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_client_send(waiting, &req, &id, &err), 0);
    strata_client_t *pinger = ts_connect(snap.endpoint, 2000);
    strata_reply_t rep;
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(strata_client_control(pinger, "ping", NULL, 0, &rep, &err) == 0,
                      "ping during a checkpoint: %s", err.msg);
        strata_reply_clear(&rep);
    }
    strata_client_destroy(&pinger);
    /* stratactl honours the user's --timeout (it used to raise any to 600 s). */
    uint64_t asked_at = ts_now_ns();
    int code = ctl(NULL, "snapshot", "--dir", data, "--timeout", "1000");
    uint64_t asked_ms = (ts_now_ns() - asked_at) / 1000000;
    ck_assert_int_eq(code, 4);
    ck_assert_msg(asked_ms < 5000, "stratactl snapshot --timeout 1000 took %" PRIu64 " ms",
                  asked_ms);
    uint64_t killed_at = ts_now_ns();
    ts_node_kill9(&node); /* SIGKILL ends a stopped process too */
    int rc = strata_client_recv(waiting, 10000, &rep, &err);
    uint64_t took_ms = (ts_now_ns() - killed_at) / 1000000;
    ck_assert_msg(rc == 0, "no reply to the snapshot: %s", err.msg);
    ck_assert_uint_eq(rep.request_id, id);
    ck_assert_int_eq(rep.status, STRATA_EIO);
    ck_assert_msg(strstr(rep.message, "went away"), "%s", rep.message);
    ck_assert_msg(took_ms < 3000, "the failure took %" PRIu64 " ms after the kill", took_ms);
    strata_reply_clear(&rep);
    strata_client_destroy(&waiting);

    ts_node_start(&node, data, NULL);
    snap_result_t r = take(&snap);
    ck_assert_uint_ge(r.seq, seq);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* ---- each failure logged once --------------------------------------------------- */

/* A snapshot asked for that must fail; returns its status. */
static int take_failing(const ts_snap_t *snap)
{
    strata_client_t *client = ts_connect(snap->endpoint, 60000);
    strata_reply_t rep;
    strata_error_t err;
    int rc = strata_client_control(client, "snapshot", NULL, 0, &rep, &err);
    ck_assert_msg(rc != 0, "a snapshot succeeded: %s", ts_pair(&rep, "name"));
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    return rc;
}

/* The operators' rule "each error printed once": snapshots that keep
 * failing alike (the writer gone, then a target that cannot be written)
 * are one line per episode and one when it ends, not one per attempt; the
 * writer does not log the checkpoint's reason again; and stratactl's error
 * is one line. */
START_TEST(a_failure_that_repeats_is_logged_once_per_episode)
{
    char *dir = ts_tempdir("snap-once");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ts_snap_t snap;
    ts_snap_start(&snap, data, NULL);
    take(&snap);

    /* Episode 1: no writer. Every attempt fails at once (its pid is gone). */
    char first_writer_log[sizeof node.log];
    snprintf(first_writer_log, sizeof first_writer_log, "%s", node.log);
    ts_node_kill9(&node);
    for (int i = 0; i < 3; i++)
        take_failing(&snap);
    ck_assert_uint_eq(ts_lines_with(snap.log, "event=snapshot_failed"), 1);
    ts_node_start(&node, data, NULL);
    take(&snap);
    ck_assert_uint_eq(ts_lines_with(snap.log, "event=snapshot_recovered failures=3"), 1);

    /* Episode 2: the snapshots directory is a file, so the writer's
     * checkpoint cannot create its target there. */
    char *aside = ts_path(dir, "snapshots.aside");
    ck_assert_int_eq(rename(snap.snapshots, aside), 0);
    FILE *f = fopen(snap.snapshots, "w");
    ck_assert(f != NULL);
    fclose(f);
    ck_assert_int_eq(take_failing(&snap), STRATA_EIO);
    char *out = NULL;
    const char *argv[] = {STRATACTL_BIN, "snapshot", "--dir", data, NULL};
    ck_assert_int_eq(ts_run_output(argv, NULL, TS_STDERR, 60, &out), 3);
    ck_assert_msg(!strncmp(out, "stratactl: snapshot: ", 21) && strchr(out, '\n') &&
                      strchr(out, '\n')[1] == '\0' && !strstr(out + 1, "stratactl:"),
                  "not one stratactl line: [%s]", out);
    free(out);
    ck_assert_uint_eq(ts_lines_with(snap.log, "event=snapshot_failed"), 2);
    ck_assert_uint_eq(ts_lines_with(snap.log, "Not a directory"), 1);
    ck_assert_int_eq(unlink(snap.snapshots), 0);
    ck_assert_int_eq(rename(aside, snap.snapshots), 0);
    take(&snap);
    ck_assert_uint_eq(ts_lines_with(snap.log, "event=snapshot_recovered failures=2"), 1);

    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    /* The writer ran the checkpoint and answered its error: the line is
     * the snapshotter's, which asked. */
    ck_assert_uint_eq(ts_lines_with(node.log, "Not a directory"), 0);
    ck_assert_uint_eq(ts_lines_with(first_writer_log, "error"), 0);
    free(aside);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(snapshotter_kill9_mid_snapshot)
{
    uint64_t seed = ts_seed("snapshotter-kill9");
    uint64_t rng = seed;
    char *dir = ts_tempdir("snap-kill9");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    loader_t loader = {.endpoint = node.endpoint};
    ck_assert_int_eq(pthread_create(&loader.thread, NULL, loader_main, &loader), 0);

    unsigned cycles = ts_soak() ? 100 : 20;
    ts_snap_t snap;
    for (unsigned cycle = 0; cycle < cycles; cycle++) {
        ts_snap_start(&snap, data, NULL);
        if (cycle > 0) {
            /* A clean start after the kill: nothing half-built remains once
             * the next snapshot has run, and every listed snapshot is whole. */
            clean_t clean = {&snap};
            ck_assert_msg(ts_wait_for(snapshot_leaves_no_partial, &clean, 20000),
                          "a .tmp- entry outlived the restart (cycle %u, seed %" PRIu64 ")", cycle,
                          seed);
            check_all_snapshots(snap.snapshots);
        }
        /* Ask for a snapshot without waiting and kill the snapshotter at a
         * random point of it: before, during or after the writer's
         * checkpoint, the sealing or the rename. */
        strata_client_t *client = ts_connect(snap.endpoint, 10000);
        strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = "snapshot"};
        strata_error_t err;
        ck_assert_int_eq(strata_client_send(client, &req, NULL, &err), 0);
        usleep((useconds_t)(ts_rand(&rng) % 20000)); /* the kill point, not a wait */
        ts_snap_kill9(&snap);
        strata_client_destroy(&client);
        ck_assert_msg(!loader.failure[0], "the writer stopped serving: %s", loader.failure);
    }
    ts_snap_start(&snap, data, NULL);
    clean_t clean = {&snap};
    ck_assert(ts_wait_for(snapshot_leaves_no_partial, &clean, 20000));
    ck_assert_uint_ge(check_all_snapshots(snap.snapshots), 1);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);

    atomic_store(&loader.stop, true);
    pthread_join(loader.thread, NULL);
    ck_assert_msg(!loader.failure[0], "%s", loader.failure);
    uint64_t acked = atomic_load(&loader.acked);
    ck_assert_uint_gt(acked, 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_node_start(&node, data, NULL);
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    for (uint64_t i = 0; i < acked; i++)
        check_kv(client, i, 64, true);
    strata_client_destroy(&client);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    printf("snapshotter kill -9: %u cycles, %" PRIu64 " acknowledged writes all present (seed "
           "%" PRIu64 ")\n",
           cycles, acked, seed);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("snapshotter");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, snapshots_seal_prune_and_truncate_the_wal);
    tcase_add_test(tc, backup_and_restore_round_trip);
    tcase_add_test(tc, restore_refuses_a_damaged_backup_naming_the_file);
    tcase_add_test(tc, a_writer_killed_mid_checkpoint_fails_the_snapshot_at_once);
    tcase_add_test(tc, a_failure_that_repeats_is_logged_once_per_episode);
    tcase_add_test(tc, snapshotter_kill9_mid_snapshot);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
