/* strata-distributor's server object run in-process (dist_actor), as
 * main.c runs it: bound to tcp://127.0.0.1:*, found through the
 * distributor.endpoints it writes, answering on its history endpoint
 * before any writer exists (stats, and /metrics with the same figures), and
 * gone (endpoints file removed) on $TERM. */
#define _GNU_SOURCE
#include <check.h>
#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "distributor.h"
#include "support.h"

static svc_config_t *config_for(const char *dir)
{
    char text[2048];
    snprintf(text, sizeof text,
             "node\n"
             "    name = test\n"
             "    data_dir = %s\n"
             "distributor\n"
             "    live = tcp://127.0.0.1:*\n"
             "    delayed = tcp://127.0.0.1:*\n"
             "    history = tcp://127.0.0.1:*\n"
             "    delay_ms = 100\n"
             "    heartbeat_ms = 100\n"
             "    sndhwm = 1000\n"
             "    window = 100\n"
             "    max_window = 65536\n"
             "    max_unacked_mb = 16\n"
             "    max_sessions = 1024\n"
             "    session_expire_s = 604800\n"
             "    ack_timeout_ms = 2000\n"
             "    ack_flush_ms = 5\n"
             "    session_timeout_ms = 10000\n"
             "    metrics = 127.0.0.1:0\n"
             "log\n"
             "    level = warning\n",
             dir);
    svc_config_t *cfg = NULL;
    strata_error_t err;
    ck_assert_msg(svc_config_load(text, NULL, &cfg, &err) == 0, "config: %s", err.msg);
    return cfg;
}

START_TEST(runs_in_process_bound_to_free_ports_and_stops_on_term)
{
    char *dir = ts_tempdir("dist");
    char *endpoints = ts_path(dir, "distributor.endpoints");
    zactor_t *actor = zactor_new(dist_actor, config_for(dir));
    ck_assert_ptr_nonnull(actor);
    zconfig_t *root = zconfig_load(endpoints);
    ck_assert_msg(root != NULL, "no %s once the actor signalled", endpoints);
    const char *history = zconfig_get(root, "distributor/history", "");
    const char *live = zconfig_get(root, "distributor/live", "");
    ck_assert_msg(strncmp(history, "tcp://127.0.0.1:", 16) == 0 && !strstr(history, "*"),
                  "history endpoint %s", history);
    ck_assert_msg(strncmp(live, "tcp://127.0.0.1:", 16) == 0 && !strstr(live, "*"),
                  "live endpoint %s", live);
    ck_assert_str_ne(history, live);

    strata_client_options_t opts = {.endpoint = history, .timeout_ms = 5000};
    strata_client_t *client = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &client, &err) == 0, "connect: %s", err.msg);
    strata_reply_t rep;
    ck_assert_msg(strata_client_stats(client, &rep, &err) == 0, "stats: %s", err.msg);
    /* The names and order proto/DISTRIBUTION.md gives. */
    static const char *const names[] = {
        "covered_seq",     "start_seq",         "live_entries",
        "delayed_batches", "heartbeats",        "laps",
        "wal_catchups",    "subscribers",       "stream_connections",
        "pub_queue_bytes", "pub_dropped_total", "subscribers_shed_total"};
    ck_assert_uint_eq(rep.n_pairs, 12);
    for (size_t i = 0; i < 12; i++)
        ck_assert_str_eq(rep.pairs[i].name, names[i]);
    bool saw_subscribers = false;
    for (size_t i = 0; i < rep.n_pairs; i++)
        if (!strcmp(rep.pairs[i].name, "subscribers")) {
            ck_assert_str_eq(rep.pairs[i].value, "0");
            saw_subscribers = true;
        }
    ck_assert(saw_subscribers);

    /* The families dashboards know, each once with its type (counters end
     * in _total exactly once), and the figures both outputs show agree. */
    const char *metrics = zconfig_get(root, "distributor/metrics", "");
    char *page = ts_http_get(metrics);
    ck_assert_msg(strncmp(page, "HTTP/1.", 7) == 0 && strstr(page, " 200 "), "%s", page);
    static const char *const gauges[] = {
        "distributor_covered_seq", "distributor_stream_connections", "distributor_pub_queue_bytes"};
    static const char *const counters[] = {"distributor_live_entries_total",
                                           "distributor_delayed_batches_total",
                                           "distributor_heartbeats_total",
                                           "distributor_ring_laps_total",
                                           "distributor_wal_catchups_total",
                                           "distributor_replay_requests_total",
                                           "distributor_replay_entries_total",
                                           "distributor_deliveries_total",
                                           "distributor_acks_total",
                                           "distributor_offset_writes_total",
                                           "distributor_offset_write_failures_total",
                                           "distributor_pub_dropped_total",
                                           "distributor_subscribers_shed_total"};
    char line[128];
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        snprintf(line, sizeof line, "# TYPE strata_%s gauge\n", gauges[i]);
        ck_assert_msg(strstr(page, line), "no %s in\n%s", line, page);
    }
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        snprintf(line, sizeof line, "# TYPE strata_%s counter\n", counters[i]);
        ck_assert_msg(strstr(page, line), "no %s in\n%s", line, page);
    }
    size_t families = 0;
    for (const char *at = page; (at = strstr(at, "# TYPE ")) != NULL; at++)
        families++;
    ck_assert_uint_eq(families, 16);
    ck_assert_msg(!strstr(page, "_total_total"), "%s", page);
    static const char *const shared[][2] = {{"covered_seq", "distributor_covered_seq"},
                                            {"live_entries", "distributor_live_entries_total"},
                                            {"heartbeats", "distributor_heartbeats_total"}};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        const char *value = NULL;
        for (size_t j = 0; j < rep.n_pairs; j++)
            if (!strcmp(rep.pairs[j].name, shared[i][0]))
                value = rep.pairs[j].value;
        ck_assert_ptr_nonnull(value);
        snprintf(line, sizeof line, "\nstrata_%s ", shared[i][1]);
        const char *shown = strstr(page, line);
        ck_assert_msg(shown, "no %s in\n%s", line, page);
        shown += strlen(line);
        ck_assert_msg(strncmp(shown, value, strlen(value)) == 0 && shown[strlen(value)] == '\n',
                      "%s: stats %s, /metrics %.20s", shared[i][0], value, shown);
    }
    free(page);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    zconfig_destroy(&root);

    zactor_destroy(&actor);
    ck_assert_msg(access(endpoints, F_OK) != 0, "%s left behind", endpoints);
    ts_rmtree(dir);
    free(endpoints);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("distributor");
    TCase *tc = tcase_create("actor");
    tcase_add_test(tc, runs_in_process_bound_to_free_ports_and_stops_on_term);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
