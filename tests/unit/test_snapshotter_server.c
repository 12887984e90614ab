/* strata-snapshotter's server object run in-process beside the writer's:
 * snapshots on request (sealed, listed, pruned to keep), ping while idle,
 * and a clean stop on request. The writer going away mid-checkpoint is
 * test_snapshot's, with real processes. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshotter.h"
#include "strata/client.h"
#include "strata/snapshot.h"
#include "support.h"
#include "writer.h"

static svc_config_t *config_for(const char *dir)
{
    char text[1400];
    snprintf(text, sizeof text,
             "node\n    name = inproc\n    data_dir = %s\n"
             "writer\n    endpoint = tcp://127.0.0.1:*\n    control = \"\"\n"
             "    memtable_mb = 4\n    max_immutable_memtables = 4\n    sync_interval_ms = 10\n"
             "    wal_segment_mb = 4\n    lz4 = false\n    scan_limit = 1000\n    ring = off\n"
             "    ring_mb = 1\n    wal_retain_mb = 0\n    wal_retain_hours = 0\n"
             "    wal_truncation = flush\n    compaction = compactor\n"
             "snapshotter\n    endpoint = tcp://127.0.0.1:*\n    dir = \"\"\n"
             "    interval_s = 0\n    keep = 2\n    truncate_wal = true\n"
             "metrics\n    endpoint = off\n"
             "log\n    level = warning\n",
             dir);
    svc_config_t *cfg = NULL;
    strata_error_t err;
    ck_assert_msg(svc_config_load(text, NULL, &cfg, &err) == 0, "config: %s", err.msg);
    return cfg;
}

static void *run_writer(void *arg)
{
    writer_run(arg);
    return NULL;
}

static void *run_snapshotter(void *arg)
{
    snapshotter_run(arg);
    return NULL;
}

static strata_client_t *connect_to(const char *endpoint)
{
    strata_client_options_t opts = {.endpoint = endpoint, .timeout_ms = 5000};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &c, &err) == 0, "connect: %s", err.msg);
    return c;
}

static const char *pair(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    return NULL;
}

START_TEST(snapshots_beside_an_in_process_writer)
{
    char *dir = ts_tempdir("ssrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t writer_loop;
    ck_assert_int_eq(pthread_create(&writer_loop, NULL, run_writer, w), 0);
    strata_client_t *c = connect_to(writer_endpoint(w));

    snapshotter_t *snap = NULL;
    ck_assert_msg(snapshotter_new(config_for(dir), &snap, &err) == 0, "snapshotter_new: %s",
                  err.msg);
    const char *ep = snapshotter_endpoint(snap);
    ck_assert_msg(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && !strchr(ep, '*'), "endpoint %s", ep);
    pthread_t snap_loop;
    ck_assert_int_eq(pthread_create(&snap_loop, NULL, run_snapshotter, snap), 0);
    strata_client_t *sc = connect_to(ep);
    strata_reply_t rep;
    uint64_t seqs[3] = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof key, "r%d-k%02d", round, i);
            ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, key, strlen(key), "v", 1,
                                               &seqs[round], &err),
                             0);
        }
        ck_assert_msg(strata_client_control(sc, "snapshot", NULL, 0, &rep, &err) == 0,
                      "snapshot: %s", err.msg);
        ck_assert_uint_eq(strtoull(pair(&rep, "seq"), NULL, 10), seqs[round]);
        ck_assert_str_eq(pair(&rep, "existed"), "false");
        strata_reply_clear(&rep);
    }
    /* No write since: the same snapshot stands. */
    ck_assert_int_eq(strata_client_control(sc, "snapshot", NULL, 0, &rep, &err), 0);
    ck_assert_str_eq(pair(&rep, "existed"), "true");
    strata_reply_clear(&rep);
    ck_assert_int_eq(strata_client_control(sc, "ping", NULL, 0, &rep, &err), 0);
    ck_assert_str_eq(pair(&rep, "snapshot_running"), "false");
    strata_reply_clear(&rep);
    /* keep = 2: the two newest, each whole. */
    char *snapshots = ts_path(dir, "snapshots");
    char **names = NULL;
    size_t count = 0;
    ck_assert_int_eq(strata_snapshot_list(snapshots, &names, &count, &err), 0);
    ck_assert_uint_eq(count, 2);
    char want[64];
    snprintf(want, sizeof want, "snap-%020llu", (unsigned long long)seqs[2]);
    ck_assert_str_eq(names[1], want);
    strata_snapshot_list_free(names, count);
    free(snapshots);
    strata_client_destroy(&sc);

    snapshotter_stop(snap);
    pthread_join(snap_loop, NULL);
    snapshotter_destroy(&snap);
    ck_assert_ptr_null(snap);

    strata_client_t *ctl = connect_to(writer_control_endpoint(w));
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    strata_client_destroy(&c);
    pthread_join(writer_loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("snapshotter_server");
    TCase *tc = tcase_create("snapshotter_server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, snapshots_beside_an_in_process_writer);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
