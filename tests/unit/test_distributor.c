/* strata-distributor's server object run in-process (dist_actor), as
 * main.c runs it: bound to tcp://127.0.0.1:*, found through the
 * distributor.endpoints it writes, answering on its history endpoint
 * before any writer exists (stats, and /metrics with the same figures), and
 * gone (endpoints file removed) on $TERM. And its live stream read raw,
 * from a ring the test writes as the writer would: a backlog goes out as
 * messages of several entries (proto/DISTRIBUTION.md, "PUB messages"). */
#define _GNU_SOURCE
#include <check.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distributor.h"
#include "strata/entry.h"
#include "strata/pubframe.h"
#include "strata/ring.h"
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
    /* Its 16, the 3 of per-subscriber lag, 6 process_* and strata_build_info. */
    ck_assert_uint_eq(families, 26);
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
        snprintf(line, sizeof line, "\nstrata_%s{process=\"distributor\"} ", shared[i][1]);
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

/* ---- the live stream from a ring ---------------------------------------- */

/* Entry seq of topic with a value_len-byte value, appended to out. */
static size_t put_entry(uint8_t *out, uint64_t seq, const char *topic, size_t value_len)
{
    static uint8_t value[4096];
    memset(value, 'v', sizeof value);
    strata_entry_t e = {.seq = seq,
                        .term = 3,
                        .timestamp_ns = seq,
                        .type = STRATA_VALUE_PUT,
                        .topic = (const uint8_t *)topic,
                        .topic_len = (uint16_t)strlen(topic),
                        .key = (const uint8_t *)"k",
                        .key_len = 1,
                        .value = value,
                        .value_len = (uint32_t)value_len};
    strata_entry_encode(out, &e);
    return strata_entry_size(e.topic_len, 1, value_len);
}

/* One PUB message, its three frames checked by the library's decoder;
 * false when none came within the deadline. */
static bool recv_pub(zsock_t *sub, char *topic, strata_pub_meta_t *meta, zchunk_t **body)
{
    zsock_set_rcvtimeo(sub, 5000);
    zmsg_t *msg = zmsg_recv(sub);
    if (!msg)
        return false;
    ck_assert_uint_eq(zmsg_size(msg), 3);
    zframe_t *t = zmsg_first(msg), *m = zmsg_next(msg), *b = zmsg_next(msg);
    strata_error_t err;
    ck_assert_msg(strata_pub_meta_decode(zframe_data(t), zframe_size(t), zframe_data(m),
                                         zframe_size(m), meta, &err) == 0,
                  "meta: %s", err.msg);
    ck_assert_uint_lt(zframe_size(t), 64);
    memcpy(topic, zframe_data(t), zframe_size(t));
    topic[zframe_size(t)] = '\0';
    *body = zchunk_new(zframe_data(b), zframe_size(b));
    zmsg_destroy(&msg);
    return true;
}

START_TEST(a_backlog_goes_out_in_messages_of_one_topic_each_in_log_order)
{
    char *dir = ts_tempdir("dist-batch");
    char *wal = ts_path(dir, "wal"), *ring_file = ts_path(dir, "ring"),
         *writer_file = ts_path(dir, "writer.endpoints");
    ck_assert_int_eq(mkdir(wal, 0755), 0);
    strata_ring_options_t ro = {.capacity_bytes = 8u << 20, .first_seq = 1};
    strata_ring_t *ring = NULL;
    strata_error_t err;
    ck_assert_msg(strata_ring_create(ring_file, &ro, &ring, &err) == 0, "ring: %s", err.msg);
    zconfig_t *writer = zconfig_new("root", NULL);
    zconfig_put(writer, "writer/ring", ring_file);
    ck_assert_int_eq(zconfig_save(writer, writer_file), 0);
    zconfig_destroy(&writer);

    zactor_t *actor = zactor_new(dist_actor, config_for(dir));
    ck_assert_ptr_nonnull(actor);
    char *endpoints = ts_path(dir, "distributor.endpoints");
    zconfig_t *root = zconfig_load(endpoints);
    ck_assert_ptr_nonnull(root);
    zsock_t *sub = zsock_new_sub(zconfig_get(root, "distributor/live", ""), "");
    ck_assert_ptr_nonnull(sub);
    /* The first heartbeat: the pump has attached (start_seq 1) and the
     * subscription is in place, so every entry below reaches us. */
    char topic[64];
    strata_pub_meta_t meta;
    zchunk_t *body = NULL;
    do {
        zchunk_destroy(&body);
        ck_assert_msg(recv_pub(sub, topic, &meta, &body), "no heartbeat");
    } while (meta.kind != STRATA_PUB_HEARTBEAT);
    zchunk_destroy(&body);
    ck_assert_uint_eq(meta.start_seq, 1);

    /* One publish makes the whole backlog visible at once: a run of "a"
     * larger than a live message may be, a system entry the stream skips,
     * a run of "b", then "a" again. */
    static const struct {
        const char *topic;
        unsigned n;
        size_t value;
    } runs[] = {{"a", 300, 700}, {"$sys", 1, 10}, {"b", 5, 10}, {"a", 1, 10}};
    size_t cap = 300 * 1024, len = 0;
    uint8_t *entries = malloc(cap);
    char topic_of[400][8];
    uint64_t seq = 0;
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
        for (unsigned i = 0; i < runs[r].n; i++) {
            len += put_entry(entries + len, ++seq, runs[r].topic, runs[r].value);
            snprintf(topic_of[seq], sizeof topic_of[seq], "%s", runs[r].topic);
        }
    ck_assert_int_eq(strata_ring_append(ring, entries, len, &err), 0);
    strata_ring_publish(ring, seq);
    free(entries);

    /* Every entry once, in log order; each message of one topic, its
     * prev_seq the last seq sent before on that topic, its term its last
     * entry's; a message of several entries under the byte cap. */
    uint64_t next = 1, last_a = 0, last_b = 0, messages = 0, most = 0;
    while (next <= seq) {
        if (!strcmp(topic_of[next], "$sys")) {
            next++;
            continue;
        }
        ck_assert_msg(recv_pub(sub, topic, &meta, &body), "nothing after seq %" PRIu64, next - 1);
        if (meta.kind == STRATA_PUB_HEARTBEAT) {
            zchunk_destroy(&body);
            continue;
        }
        messages++;
        most = meta.count > most ? meta.count : most;
        uint64_t *last = !strcmp(topic, "a") ? &last_a : &last_b;
        ck_assert_uint_eq(meta.prev_seq, *last);
        ck_assert_msg(meta.count == 1 || zchunk_size(body) <= LIVE_BATCH_MAX_BYTES,
                      "%" PRIu32 " entries in %zu bytes", meta.count, zchunk_size(body));
        size_t off = 0;
        strata_entry_t e;
        for (uint32_t i = 0; i < meta.count; i++) {
            size_t used = 0;
            ck_assert_int_eq(strata_entry_decode(zchunk_data(body) + off, zchunk_size(body) - off,
                                                 0, &e, &used, &err),
                             0);
            off += used;
            while (!strcmp(topic_of[next], "$sys"))
                next++;
            ck_assert_uint_eq(e.seq, next);
            ck_assert_str_eq(topic_of[next], topic);
            next++;
        }
        ck_assert_uint_eq(off, zchunk_size(body));
        ck_assert_uint_eq(meta.term, e.term);
        *last = e.seq;
        zchunk_destroy(&body);
    }
    ck_assert_uint_eq(last_a, seq);
    ck_assert_uint_eq(last_b, seq - 1);
    ck_assert_msg(most > 1 && messages < seq - 1, "%" PRIu64 " messages for %" PRIu64 " entries",
                  messages, seq - 1);
    /* A heartbeat follows what was sent: it covers the skipped entry too. */
    do {
        ck_assert(recv_pub(sub, topic, &meta, &body));
        zchunk_destroy(&body);
    } while (meta.kind != STRATA_PUB_HEARTBEAT);

    zsock_destroy(&sub);
    zactor_destroy(&actor);
    strata_ring_close(&ring, true);
    zconfig_destroy(&root);
    ts_rmtree(dir);
    free(endpoints);
    free(writer_file);
    free(ring_file);
    free(wal);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("distributor");
    TCase *tc = tcase_create("actor");
    tcase_add_test(tc, runs_in_process_bound_to_free_ports_and_stops_on_term);
    tcase_add_test(tc, a_backlog_goes_out_in_messages_of_one_topic_each_in_log_order);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
