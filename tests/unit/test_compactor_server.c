/* strata-compactor's server object run in-process beside the writer's, as
 * a node runs them as two processes: four flushes put four tables in L0,
 * the compactor picks them, merges them and has the writer install the
 * result, every key reads back, and `progress` and `compact` answer on its
 * control endpoint. Both stop on request. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compactor.h"
#include "strata/client.h"
#include "support.h"
#include "writer.h"

static svc_config_t *config_rated(const char *dir, unsigned rate_mb_s)
{
    char text[1400];
    snprintf(text, sizeof text,
             "node\n    name = inproc\n    data_dir = %s\n"
             "writer\n    endpoint = tcp://127.0.0.1:*\n    control = \"\"\n"
             "    memtable_mb = 4\n    max_immutable_memtables = 4\n    sync_interval_ms = 10\n"
             "    wal_segment_mb = 4\n    lz4 = false\n    scan_limit = 1000\n    ring = off\n"
             "    ring_mb = 1\n    wal_retain_mb = 0\n    wal_retain_hours = 0\n"
             "    wal_truncation = flush\n    compaction = compactor\n    metrics = off\n"
             "compactor\n    endpoint = tcp://127.0.0.1:*\n    l0_trigger = 4\n"
             "    level1_mb = 64\n    target_file_mb = 8\n    rate_mb_s = %u\n"
             "    cpu_percent = 100\n    metrics = off\n"
             "log\n    level = warning\n",
             dir, rate_mb_s);
    svc_config_t *cfg = NULL;
    strata_error_t err;
    ck_assert_msg(svc_config_load(text, NULL, &cfg, &err) == 0, "config: %s", err.msg);
    return cfg;
}

static svc_config_t *config_for(const char *dir)
{
    return config_rated(dir, 0);
}

static void *run_writer(void *arg)
{
    writer_run(arg);
    return NULL;
}

static void *run_compactor(void *arg)
{
    compactor_run(arg);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A named figure from the writer's stats. */
static uint64_t writer_stat(strata_client_t *c, const char *name)
{
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_stats(c, &rep, &err) == 0, "stats: %s", err.msg);
    uint64_t v = UINT64_MAX;
    for (size_t i = 0; i < rep.n_pairs; i++)
        if (!strcmp(rep.pairs[i].name, name))
            v = strtoull(rep.pairs[i].value, NULL, 10);
    strata_reply_clear(&rep);
    ck_assert_msg(v != UINT64_MAX, "stats has no %s", name);
    return v;
}

static const char *pair(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    return NULL;
}

/* Terminates the writer through its control endpoint, as the node's
 * launcher stops it, and frees it with its client c. */
static void stop_writer(writer_t *w, pthread_t loop, strata_client_t *c)
{
    strata_reply_t rep;
    strata_error_t err;
    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    strata_client_destroy(&c);
    pthread_join(loop, NULL);
    writer_destroy(&w);
}

START_TEST(compacts_beside_an_in_process_writer)
{
    char *dir = ts_tempdir("csrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t writer_loop;
    ck_assert_int_eq(pthread_create(&writer_loop, NULL, run_writer, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    strata_reply_t rep;
    for (int f = 0; f < 4; f++) {
        for (int i = 0; i < 500; i++) {
            char key[16], value[32];
            snprintf(key, sizeof key, "k%05d", i * 4 + f % 2);
            snprintf(value, sizeof value, "v-%d-%d", i, f);
            ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_ASYNC, key, strlen(key), value,
                                               strlen(value), NULL, &err),
                             0);
        }
        ck_assert_msg(strata_client_control(c, "flush", NULL, 0, &rep, &err) == 0, "flush: %s",
                      err.msg);
        strata_reply_clear(&rep);
    }
    ck_assert_uint_eq(writer_stat(c, "l0_files"), 4);

    compactor_t *comp = NULL;
    ck_assert_msg(compactor_new(config_for(dir), &comp, &err) == 0, "compactor_new: %s", err.msg);
    const char *ep = compactor_endpoint(comp);
    ck_assert_msg(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && !strchr(ep, '*'), "endpoint %s", ep);
    /* One compactor per node: a second one finds compaction/LOCK held. */
    compactor_t *second = NULL;
    ck_assert_int_eq(compactor_new(config_for(dir), &second, &err), STRATA_EEXIST);
    ck_assert_msg(strstr(err.msg, "another strata-compactor"), "%s", err.msg);
    ck_assert_ptr_null(second);
    pthread_t comp_loop;
    ck_assert_int_eq(pthread_create(&comp_loop, NULL, run_compactor, comp), 0);

    uint64_t deadline = now_ms() + 30000;
    while (writer_stat(c, "l0_files") != 0 && now_ms() < deadline) {
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's figure with a deadline */
    }
    ck_assert_uint_eq(writer_stat(c, "l0_files"), 0);
    ck_assert_uint_ge(writer_stat(c, "l1_files"), 1);
    for (int i = 0; i < 500; i += 37) {
        char key[16], want[32];
        snprintf(key, sizeof key, "k%05d", i * 4);
        snprintf(want, sizeof want, "v-%d-2", i);
        void *value = NULL;
        size_t len = 0;
        ck_assert_int_eq(strata_client_get(c, key, strlen(key), &value, &len, &err), 0);
        ck_assert_msg(len == strlen(want) && !memcmp(value, want, len), "%s: %.*s", key, (int)len,
                      (char *)value);
        free(value);
    }

    strata_client_t *cc = ts_connect(ep, 5000);
    ck_assert_int_eq(strata_client_control(cc, "progress", NULL, 0, &rep, &err), 0);
    ck_assert_ptr_nonnull(pair(&rep, "compactions"));
    ck_assert_uint_ge(strtoull(pair(&rep, "compactions"), NULL, 10), 1);
    strata_reply_clear(&rep);
    const char *bad[] = {"9", "-"};
    ck_assert_int_eq(strata_client_control(cc, "compact", bad, 2, &rep, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "level '9' is not 0..5"), "%s", err.msg);
    strata_reply_clear(&rep);
    strata_client_destroy(&cc);

    compactor_stop(comp);
    pthread_join(comp_loop, NULL);
    compactor_destroy(&comp);
    ck_assert_ptr_null(comp);

    stop_writer(w, writer_loop, c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A stop while a job writes its output abandons the job at its next write:
 * the throttle's refusal must end the write, not be retried as an
 * interrupted call (it was, and the compactor spun until SIGKILL). The
 * job is slowed to 1 MiB/s so that it is still writing when the stop
 * comes. */
START_TEST(a_stop_during_a_compaction_ends_it_promptly)
{
    char *dir = ts_tempdir("csrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t writer_loop;
    ck_assert_int_eq(pthread_create(&writer_loop, NULL, run_writer, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    strata_reply_t rep;
    static char value[1000];
    memset(value, 'v', sizeof value);
    for (int f = 0; f < 4; f++) { /* four tables of 3 MB: a 12 MB job */
        for (int i = 0; i < 3000; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d-%05d", f, i);
            ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_ASYNC, key, strlen(key), value,
                                               sizeof value, NULL, &err),
                             0);
        }
        ck_assert_msg(strata_client_control(c, "flush", NULL, 0, &rep, &err) == 0, "flush: %s",
                      err.msg);
        strata_reply_clear(&rep);
    }
    compactor_t *comp = NULL;
    ck_assert_msg(compactor_new(config_rated(dir, 1), &comp, &err) == 0, "compactor_new: %s",
                  err.msg);
    pthread_t comp_loop;
    ck_assert_int_eq(pthread_create(&comp_loop, NULL, run_compactor, comp), 0);
    strata_client_t *cc = ts_connect(compactor_endpoint(comp), 5000);
    uint64_t deadline = now_ms() + 20000, written = 0;
    while (written == 0 && now_ms() < deadline) {
        ck_assert_int_eq(strata_client_control(cc, "progress", NULL, 0, &rep, &err), 0);
        written = strtoull(pair(&rep, "written_bytes"), NULL, 10);
        strata_reply_clear(&rep);
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the job's figure with a deadline */
    }
    ck_assert_msg(written > 0, "no job started writing within 20 s");
    strata_client_destroy(&cc);

    uint64_t stop_at = now_ms();
    compactor_stop(comp);
    pthread_join(comp_loop, NULL);
    compactor_destroy(&comp);
    uint64_t took = now_ms() - stop_at;
    ck_assert_msg(took < 5000, "the stop took %llu ms", (unsigned long long)took);
    ck_assert_uint_eq(writer_stat(c, "l1_files"), 0); /* the job was abandoned */

    stop_writer(w, writer_loop, c);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compactor_server");
    TCase *tc = tcase_create("compactor_server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, compacts_beside_an_in_process_writer);
    tcase_add_test(tc, a_stop_during_a_compaction_ends_it_promptly);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
