/* strata-snapshotter's server object run in-process beside the writer's:
 * snapshots on request (sealed, listed, pruned to keep, holding the keys
 * written before them), ping while idle, its /metrics page, and a clean
 * stop on request. The writer going away mid-checkpoint is test_snapshot's,
 * with real processes. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshotter.h"
#include "strata/client.h"
#include "strata/db.h"
#include "strata/snapshot.h"
#include "support.h"
#include "writer.h"

/* metrics: the snapshotter's snapshotter/metrics, "off" or 127.0.0.1:0 for
 * any port; the writer's is off. */
static svc_config_t *config_for(const char *dir, const char *metrics)
{
    char text[1400];
    snprintf(text, sizeof text,
             "node\n    name = inproc\n    data_dir = %s\n"
             "writer\n    endpoint = tcp://127.0.0.1:*\n    control = \"\"\n"
             "    memtable_mb = 4\n    max_immutable_memtables = 4\n    sync_interval_ms = 10\n"
             "    wal_segment_mb = 4\n    lz4 = false\n    scan_limit = 1000\n    ring = off\n"
             "    ring_mb = 1\n    wal_retain_mb = 0\n    wal_retain_hours = 0\n"
             "    wal_truncation = flush\n    compaction = compactor\n    metrics = off\n"
             "snapshotter\n    endpoint = tcp://127.0.0.1:*\n    dir = \"\"\n"
             "    interval_s = 0\n    keep = 2\n    truncate_wal = true\n    metrics = %s\n"
             "log\n    level = warning\n",
             dir, metrics);
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

/* Fails the test when absent, so a missing pair is reported by name rather
 * than as a crash in whatever reads the value. */
static const char *pair(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    ck_abort_msg("reply has no pair '%s'", name);
    return NULL;
}

/* The snapshot is opened as a database only through a copy: opening it in
 * place would replay and write into a sealed directory. */
static void assert_snapshot_holds(const char *dir, const char *snapshot, int rounds)
{
    strata_error_t err;
    ck_assert_msg(strata_snapshot_check(snapshot, NULL, NULL, &err) == 0, "check: %s", err.msg);
    char *copy = ts_path(dir, "restored");
    ck_assert_msg(strata_snapshot_copy(snapshot, copy, NULL, NULL, &err) == 0, "copy: %s", err.msg);
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = copy;
    strata_db_t *db = NULL;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open: %s", err.msg);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof key, "r%d-k%02d", round, i);
            void *value = NULL;
            size_t len = 0;
            int rc = strata_db_get(db, NULL, key, strlen(key), &value, &len, &err);
            if (round < rounds) {
                ck_assert_msg(rc == 0, "%s: %s", key, err.msg);
                ck_assert_uint_eq(len, 1);
                ck_assert_int_eq(((char *)value)[0], 'v');
            } else {
                ck_assert_msg(rc == STRATA_ENOTFOUND, "%s: rc %d, written after the snapshot", key,
                              rc);
            }
            free(value);
        }
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    ts_rmtree(copy);
    free(copy);
}

START_TEST(snapshots_beside_an_in_process_writer)
{
    char *dir = ts_tempdir("ssrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir, "off"), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t writer_loop;
    ck_assert_int_eq(pthread_create(&writer_loop, NULL, run_writer, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);

    snapshotter_t *snap = NULL;
    ck_assert_msg(snapshotter_new(config_for(dir, "127.0.0.1:0"), &snap, &err) == 0,
                  "snapshotter_new: %s", err.msg);
    const char *ep = snapshotter_endpoint(snap);
    ck_assert_msg(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && !strchr(ep, '*'), "endpoint %s", ep);
    pthread_t snap_loop;
    ck_assert_int_eq(pthread_create(&snap_loop, NULL, run_snapshotter, snap), 0);
    strata_client_t *sc = ts_connect(ep, 5000);
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
    /* The older one kept holds two rounds, not the third written after it. */
    char *older = ts_path(snapshots, names[0]);
    assert_snapshot_holds(dir, older, 2);
    free(older);
    char *newest = ts_path(snapshots, names[1]);
    assert_snapshot_holds(dir, newest, 3);
    free(newest);
    strata_snapshot_list_free(names, count);
    free(snapshots);

    /* Every figure is stored before the reply goes, so the page already
     * shows all four requests: the last one, which found its snapshot
     * standing, counts as taken too. */
    char *page = ts_http_get(snap->metrics_url);
    ck_assert_msg(strstr(page, "HTTP/1.") == page, "%s", page);
    ck_assert_msg(strstr(page, "# TYPE strata_snapshots_total "
                               "counter\nstrata_snapshots_total{process=\"snapshotter\"} 4\n"),
                  "%s", page);
    ck_assert_msg(strstr(page, "# TYPE strata_snapshot_failures_total counter\n"
                               "strata_snapshot_failures_total{process=\"snapshotter\"} 0\n"),
                  "%s", page);
    char line[96];
    snprintf(line, sizeof line, "\nstrata_snapshot_last_seq{process=\"snapshotter\"} %llu\n",
             (unsigned long long)seqs[2]);
    ck_assert_msg(strstr(page, line), "%s", page);
    ck_assert_msg(strstr(page, "# TYPE strata_snapshots_kept "
                               "gauge\nstrata_snapshots_kept{process=\"snapshotter\"} 2\n"),
                  "%s", page);
    ck_assert_msg(strstr(page, "# TYPE strata_snapshot_last_duration_seconds gauge\n"), "%s", page);
    ck_assert_msg(strstr(page, "# TYPE strata_snapshot_wal_segments_deleted_total counter\n"), "%s",
                  page);
    ck_assert_msg(!strstr(page, "_total_total"), "%s", page);
    free(page);
    strata_client_destroy(&sc);

    snapshotter_stop(snap);
    pthread_join(snap_loop, NULL);
    snapshotter_destroy(&snap);
    ck_assert_ptr_null(snap);

    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
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
