/* One node config file for all of a node's processes: deploy/node.cfg
 * holds every key of the registry with its default; writer, compactor,
 * snapshotter and distributor all start from the same file and serve; a
 * misspelled key in any section, or a misspelled STRATA_ variable, stops
 * every one of them, and strata-election and strata-replicator, with a
 * message naming it, at start and with --print-config alike; and so does a
 * bad value. */
#define _GNU_SOURCE
#include <check.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "node.h"
#include "strata/client.h"
#include "support.h"

#ifndef STRATA_NODE_CFG
#error "STRATA_NODE_CFG must name deploy/node.cfg"
#endif

extern char **environ;

static const char *const sections[] = {"node",      "security",    "log",         "writer",
                                       "compactor", "snapshotter", "distributor", "cluster",
                                       "election",  "replicator"};
enum { N_SECTIONS = sizeof sections / sizeof sections[0] };
/* sections[FIRST_PROCESS..END_PROCESS): the processes that serve from the
 * example as it is, metrics on free ports; election and replicator need
 * cluster/id (test_transport starts them). */
enum { FIRST_PROCESS = 3, END_PROCESS = 7 };
static const char *const bins[] = {STRATA_WRITER_BIN,      STRATA_COMPACTOR_BIN,
                                   STRATA_SNAPSHOTTER_BIN, STRATA_DISTRIBUTOR_BIN,
                                   STRATA_ELECTION_BIN,    STRATA_REPLICATOR_BIN};
enum { N_BINS = sizeof bins / sizeof bins[0] };

/* deploy/node.cfg with data under data_dir, every port free, and
 * typo_section/misspelt = 1 when typo_section is not NULL. */
static void write_config(const char *path, const char *data_dir, const char *typo_section)
{
    zconfig_t *root = zconfig_load(STRATA_NODE_CFG);
    ck_assert_msg(root != NULL, "%s does not parse", STRATA_NODE_CFG);
    zconfig_put(root, "node/data_dir", data_dir);
    zconfig_put(root, "writer/endpoint", "tcp://127.0.0.1:*");
    zconfig_put(root, "distributor/live", "tcp://127.0.0.1:*");
    zconfig_put(root, "distributor/delayed", "tcp://127.0.0.1:*");
    zconfig_put(root, "distributor/history", "tcp://127.0.0.1:*");
    for (size_t i = FIRST_PROCESS; i < END_PROCESS; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s/metrics", sections[i]);
        zconfig_put(root, key, "127.0.0.1:0");
    }
    zconfig_put(root, "snapshotter/interval_s", "0"); /* only on request */
    if (typo_section) {
        char key[64];
        snprintf(key, sizeof key, "%s/misspelt", typo_section);
        zconfig_put(root, key, "1");
    }
    ck_assert_int_eq(zconfig_save(root, path), 0);
    zconfig_destroy(&root);
}

/* Runs bin -c config [--print-config] with extra_env added, stdout and
 * stderr into *out; returns its exit status. An alarm ends a process that
 * wrongly starts to serve, so the test fails rather than hangs. */
static int run(const char *bin, const char *config, bool print, const char *extra_env, char **out)
{
    const char *argv[] = {bin, "-c", config, print ? "--print-config" : NULL, NULL};
    return ts_run_output(argv, extra_env, TS_STDOUT | TS_STDERR, 30, out);
}

START_TEST(the_example_holds_every_key_with_its_default)
{
    zconfig_t *registry = zconfig_str_load(svc_node_defaults);
    zconfig_t *example = zconfig_load(STRATA_NODE_CFG);
    ck_assert_ptr_nonnull(registry);
    ck_assert_ptr_nonnull(example);
    for (zconfig_t *sec = zconfig_child(registry); sec; sec = zconfig_next(sec))
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char path[128];
            snprintf(path, sizeof path, "%s/%s", zconfig_name(sec), zconfig_name(item));
            const char *want = zconfig_value(item) ? zconfig_value(item) : "";
            const char *got = zconfig_get(example, path, NULL);
            ck_assert_msg(got != NULL, "%s lacks %s", STRATA_NODE_CFG, path);
            ck_assert_msg(!strcmp(got, want), "%s: %s = '%s', the default is '%s'", STRATA_NODE_CFG,
                          path, got, want);
        }
    /* ... and nothing else: the processes would refuse it. */
    for (zconfig_t *sec = zconfig_child(example); sec; sec = zconfig_next(sec))
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char path[128];
            snprintf(path, sizeof path, "%s/%s", zconfig_name(sec), zconfig_name(item));
            ck_assert_msg(zconfig_locate(registry, path), "%s: %s is no key of the registry",
                          STRATA_NODE_CFG, path);
        }
    zconfig_destroy(&example);
    zconfig_destroy(&registry);
}
END_TEST

static void ping(const char *endpoint, const char *who)
{
    strata_client_t *client = ts_connect(endpoint, 10000);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_control(client, "ping", NULL, 0, &rep, &err) == 0, "%s ping: %s",
                  who, err.msg);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
}

static void check_metrics(const char *data_dir, const char *service)
{
    char path[700], key[64];
    snprintf(path, sizeof path, "%s/%s.endpoints", data_dir, service);
    snprintf(key, sizeof key, "%s/metrics", service);
    zconfig_t *endpoints = zconfig_load(path);
    ck_assert_msg(endpoints != NULL, "no %s", path);
    const char *url = zconfig_get(endpoints, key, "");
    ck_assert_msg(!strncmp(url, "http://127.0.0.1:", 17), "%s metrics at '%s'", service, url);
    char *page = ts_http_get(url);
    ck_assert_msg(page && strstr(page, "strata_"), "%s: no metrics page at %s", service, url);
    free(page);
    zconfig_destroy(&endpoints);
}

START_TEST(one_file_serves_every_process)
{
    char *dir = ts_tempdir("nodecfg");
    char *data = ts_path(dir, "node");
    char *cfg = ts_path(dir, "node.cfg");
    write_config(cfg, data, NULL);
    /* Variables the project reads elsewhere do not stop a process. */
    const char *const env[] = {"STRATA_TEST_SEED=1", "STRATA_NODE_START_TIMEOUT=30", NULL};

    ts_node_t node;
    ts_node_start_config(&node, data, cfg, env);
    ts_comp_t comp;
    ts_comp_start_config(&comp, data, cfg, env);
    ts_snap_t snap;
    ts_snap_start_config(&snap, data, cfg, env);
    ts_dist_t dist;
    ts_dist_start_config(&dist, data, cfg, env);

    strata_client_t *client = ts_connect(node.endpoint, 10000);
    strata_error_t err;
    uint64_t seq = 0;
    ck_assert_msg(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err) ==
                      0,
                  "put: %s", err.msg);
    void *value = NULL;
    size_t len = 0;
    ck_assert_msg(strata_client_get(client, "k", 1, &value, &len, &err) == 0, "get: %s", err.msg);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(memcmp(value, "v", 1), 0);
    free(value);
    strata_client_destroy(&client);

    ping(comp.endpoint, "compactor");
    ping(snap.endpoint, "snapshotter");
    /* The distributor read the same data dir: it covers the put. */
    strata_client_t *hist = ts_connect(dist.history, 10000);
    uint64_t covered = 0;
    for (uint64_t deadline = ts_now_ns() + 20000000000ull; covered < seq && ts_now_ns() < deadline;
         usleep(10000)) {
        strata_reply_t rep;
        ck_assert_msg(strata_client_stats(hist, &rep, &err) == 0, "distributor stats: %s", err.msg);
        covered = strtoull(ts_pair(&rep, "covered_seq"), NULL, 10);
        strata_reply_clear(&rep);
    }
    ck_assert_uint_ge(covered, seq);
    strata_client_destroy(&hist);

    /* Each process's own metrics key, each on a port of its own. */
    check_metrics(data, "writer");
    check_metrics(data, "compactor");
    check_metrics(data, "snapshotter");
    check_metrics(data, "distributor");

    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(cfg);
    free(data);
    free(dir);
}
END_TEST

START_TEST(a_misspelled_key_in_any_section_stops_every_process)
{
    char *dir = ts_tempdir("nodecfg");
    char *data = ts_path(dir, "node");
    char *cfg = ts_path(dir, "node.cfg");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        write_config(cfg, data, sections[s]);
        char key[64];
        snprintf(key, sizeof key, "'%s/misspelt'", sections[s]);
        for (size_t b = 0; b < N_BINS; b++)
            for (int print = 0; print < 2; print++) {
                char *out = NULL;
                int rc = run(bins[b], cfg, print, NULL, &out);
                ck_assert_msg(rc != 0, "%s%s with %s in the file: exit 0", bins[b],
                              print ? " --print-config" : "", key);
                ck_assert_msg(strstr(out, key) && strstr(out, cfg),
                              "%s%s: the message names neither %s nor the file: %s", bins[b],
                              print ? " --print-config" : "", key, out);
                free(out);
            }
    }
    ts_rmtree(dir);
    free(cfg);
    free(data);
    free(dir);
}
END_TEST

START_TEST(a_misspelled_variable_stops_every_process)
{
    char *dir = ts_tempdir("nodecfg");
    char *data = ts_path(dir, "node");
    char *cfg = ts_path(dir, "node.cfg");
    write_config(cfg, data, NULL);
    /* One per section and a shared metrics section that is no more. */
    static const char *const typos[] = {
        "STRATA_NODE_DATADIR=x",         "STRATA_SECURITY_CURV=true",
        "STRATA_LOG_LEVL=debug",         "STRATA_WRITER_MEMTABEL_MB=4",
        "STRATA_COMPACTOR_L0_TRIGER=4",  "STRATA_SNAPSHOTER_KEEP=2",
        "STRATA_DISTRIBUTOR_WINDOWS=10", "STRATA_METRICS_ENDPOINT=127.0.0.1:0",
        "STRATA_CLUSTER_VOTER=1",        "STRATA_ELECTION_BINDS=x",
        "STRATA_REPLICATOR_BINDS=x"};
    for (size_t t = 0; t < sizeof typos / sizeof typos[0]; t++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(typos[t], "="), typos[t]);
        for (size_t b = 0; b < N_BINS; b++)
            for (int print = 0; print < 2; print++) {
                char *out = NULL;
                int rc = run(bins[b], cfg, print, typos[t], &out);
                ck_assert_msg(rc != 0, "%s%s with %s: exit 0", bins[b],
                              print ? " --print-config" : "", typos[t]);
                ck_assert_msg(strstr(out, name), "%s%s: the message does not name %s: %s", bins[b],
                              print ? " --print-config" : "", name, out);
                free(out);
            }
    }
    ts_rmtree(dir);
    free(cfg);
    free(data);
    free(dir);
}
END_TEST

/* A cluster node's config (id 1 of three voters, free ports), so that
 * strata-election and strata-replicator get as far as their own keys. */
static void write_cluster_config(const char *path, const char *data_dir)
{
    write_config(path, data_dir, NULL);
    zconfig_t *root = zconfig_load(path);
    ck_assert_ptr_nonnull(root);
    char peers[3][256];
    static const char *const keys[] = {"cluster/election_peers", "cluster/replicator_peers",
                                       "cluster/client_peers"};
    for (int k = 0; k < 3; k++) {
        snprintf(peers[k], sizeof peers[k],
                 "1=tcp://127.0.0.1:%d,2=tcp://127.0.0.1:%d,"
                 "3=tcp://127.0.0.1:%d",
                 ts_free_port(), ts_free_port(), ts_free_port());
        zconfig_put(root, keys[k], peers[k]);
    }
    zconfig_put(root, "cluster/id", "1");
    zconfig_put(root, "cluster/voters", "1,2,3");
    zconfig_put(root, "election/metrics", "127.0.0.1:0");
    zconfig_put(root, "replicator/metrics", "127.0.0.1:0");
    ck_assert_int_eq(zconfig_save(root, path), 0);
    zconfig_destroy(&root);
}

START_TEST(print_config_refuses_the_values_a_start_refuses)
{
    char *dir = ts_tempdir("nodecfg");
    char *data = ts_path(dir, "node");
    char *cfg = ts_path(dir, "node.cfg");
    write_cluster_config(cfg, data);
    /* Each process's own keys, and the shared ones it reads: a number, a
     * switch, an endpoint, a metrics address, the security section, the
     * log level. */
    static const struct {
        size_t bin;
        const char *env, *key;
    } bad[] = {
        {0, "STRATA_WRITER_MEMTABLE_MB=abc", "writer/memtable_mb"},
        {0, "STRATA_WRITER_LZ4=maybe", "writer/lz4"},
        {0, "STRATA_WRITER_ENDPOINT=tcp://127.0.0.1:port", "writer/endpoint"},
        {0, "STRATA_WRITER_METRICS=nowhere", "writer/metrics"},
        {0, "STRATA_SECURITY_CURVE=maybe", "security/curve"},
        {0, "STRATA_SECURITY_CURVE=true", "security/server_cert"},
        {0, "STRATA_LOG_LEVEL=loud", "log/level"},
        {0, "STRATA_LOG_FORMAT=xml", "log/format"},
        {1, "STRATA_COMPACTOR_L0_TRIGGER=abc", "compactor/l0_trigger"},
        {1, "STRATA_COMPACTOR_ENDPOINT=compactor.ctl", "compactor/endpoint"},
        {1, "STRATA_SECURITY_CURVE=maybe", "security/curve"},
        {2, "STRATA_SNAPSHOTTER_KEEP=abc", "snapshotter/keep"},
        {2, "STRATA_SNAPSHOTTER_TRUNCATE_WAL=maybe", "snapshotter/truncate_wal"},
        {3, "STRATA_DISTRIBUTOR_WINDOW=abc", "distributor/window"},
        {3, "STRATA_DISTRIBUTOR_LIVE=live", "distributor/live"},
        {3, "STRATA_SECURITY_CURVE=maybe", "security/curve"},
        {4, "STRATA_CLUSTER_HEARTBEAT_MS=abc", "cluster/heartbeat_ms"},
        {4, "STRATA_ELECTION_METRICS=nowhere", "election/metrics"},
        {4, "STRATA_ELECTION_BIND=tcp://*", "election/bind"},
        {5, "STRATA_REPLICATOR_METRICS=nowhere", "replicator/metrics"},
        {5, "STRATA_REPLICATOR_BIND=ipc://", "replicator/bind"},
    };
    for (size_t b = 0; b < N_BINS; b++) {
        char *out = NULL;
        int rc = run(bins[b], cfg, true, NULL, &out);
        ck_assert_msg(rc == 0, "%s --print-config of the good config: exit %d: %s", bins[b], rc,
                      out);
        free(out);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int print = 1; print >= 0; print--) {
            char *out = NULL;
            int rc = run(bins[bad[i].bin], cfg, print, bad[i].env, &out);
            ck_assert_msg(rc != 0, "%s%s with %s: exit 0", bins[bad[i].bin],
                          print ? " --print-config" : "", bad[i].env);
            ck_assert_msg(strstr(out, bad[i].key), "%s%s with %s: the message does not name %s: %s",
                          bins[bad[i].bin], print ? " --print-config" : "", bad[i].env, bad[i].key,
                          out);
            free(out);
        }
    ts_rmtree(dir);
    free(cfg);
    free(data);
    free(dir);
}
END_TEST

static Suite *nodeconfig_suite(void)
{
    Suite *s = suite_create("nodeconfig");
    TCase *tc = tcase_create("nodeconfig");
    tcase_add_test(tc, the_example_holds_every_key_with_its_default);
    tcase_add_test(tc, one_file_serves_every_process);
    tcase_add_test(tc, a_misspelled_key_in_any_section_stops_every_process);
    tcase_add_test(tc, a_misspelled_variable_stops_every_process);
    tcase_add_test(tc, print_config_refuses_the_values_a_start_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(nodeconfig_suite());
}
