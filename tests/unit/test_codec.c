/* Pins the protocol codec (proto/PROTOCOL.md): every request and reply
 * round-trips, and hostile frames (garbage, truncations, mutations, unknown
 * versions, fields beyond their caps) get an error, never a crash. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_fast.h"
#include "strata/codec.h"
#include "support.h"

static strata_bytes_t bytes_of(const char *text)
{
    return (strata_bytes_t){.data = (const uint8_t *)text, .len = strlen(text)};
}

static void assert_bytes_eq(strata_bytes_t got, strata_bytes_t want)
{
    ck_assert_uint_eq(got.len, want.len);
    if (want.len)
        ck_assert(memcmp(got.data, want.data, want.len) == 0);
}

/* Encodes in, decodes into out (which the caller clears), checks the header. */
static void request_round_trip(const strata_request_t *in, strata_request_t *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(in, &buf, &len, &err), 0);
    int rc = strata_request_decode(buf, len, out, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    free(buf);
    ck_assert_uint_eq(out->version, STRATA_PROTO_VERSION);
    ck_assert_uint_eq(out->request_id, in->request_id);
    ck_assert_int_eq(out->op, in->op);
    ck_assert_int_eq(out->durability, in->durability);
}

static void reply_round_trip(const strata_reply_t *in, strata_reply_t *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_reply_encode(in, &buf, &len, &err), 0);
    int rc = strata_reply_decode(buf, len, out, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    free(buf);
    ck_assert_uint_eq(out->version, STRATA_PROTO_VERSION);
    ck_assert_uint_eq(out->request_id, in->request_id);
    ck_assert_int_eq(out->op, in->op);
    ck_assert_int_eq(out->status, in->status);
    ck_assert_str_eq(out->message, in->message ? in->message : "");
}

START_TEST(put_request_round_trips)
{
    strata_request_t in = {.request_id = UINT64_MAX,
                           .op = STRATA_OP_PUT,
                           .durability = STRATA_DURABILITY_ASYNC,
                           .key = bytes_of("k1"),
                           .value = {.data = (const uint8_t *)"v\0x", .len = 3}};
    strata_request_t out;
    request_round_trip(&in, &out);
    assert_bytes_eq(out.key, in.key);
    assert_bytes_eq(out.value, in.value);
    strata_request_clear(&out);
}
END_TEST

START_TEST(delete_request_defaults_to_sync)
{
    strata_request_t in = {.request_id = 2, .op = STRATA_OP_DELETE, .key = bytes_of("gone")};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_int_eq(out.durability, STRATA_DURABILITY_SYNC);
    assert_bytes_eq(out.key, in.key);
    strata_request_clear(&out);
}
END_TEST

START_TEST(batch_request_round_trips)
{
    strata_batch_op_t ops[3] = {
        {.kind = STRATA_BATCH_PUT, .key = bytes_of("a"), .value = bytes_of("1")},
        {.kind = STRATA_BATCH_DELETE, .key = bytes_of("b")},
        {.kind = STRATA_BATCH_PUT, .key = bytes_of("c"), .value = bytes_of("")},
    };
    strata_request_t in = {.request_id = 3, .op = STRATA_OP_BATCH, .ops = ops, .n_ops = 3};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_ops, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(out.ops[i].kind, ops[i].kind);
        assert_bytes_eq(out.ops[i].key, ops[i].key);
        assert_bytes_eq(out.ops[i].value, ops[i].value);
    }
    strata_request_clear(&out);

    /* An empty batch is legal on the wire; the server decides what it means. */
    strata_request_t empty = {.request_id = 4, .op = STRATA_OP_BATCH};
    request_round_trip(&empty, &out);
    ck_assert_uint_eq(out.n_ops, 0);
    strata_request_clear(&out);
}
END_TEST

START_TEST(get_request_round_trips)
{
    strata_request_t in = {.request_id = 5, .op = STRATA_OP_GET, .key = bytes_of("k")};
    strata_request_t out;
    request_round_trip(&in, &out);
    assert_bytes_eq(out.key, in.key);
    strata_request_clear(&out);
}
END_TEST

START_TEST(multi_get_request_round_trips)
{
    strata_bytes_t keys[3] = {bytes_of("x"), bytes_of(""), bytes_of("zz")};
    strata_request_t in = {.request_id = 6, .op = STRATA_OP_MULTI_GET, .keys = keys, .n_keys = 3};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_keys, 3);
    for (size_t i = 0; i < 3; i++)
        assert_bytes_eq(out.keys[i], keys[i]);
    strata_request_clear(&out);
}
END_TEST

START_TEST(scan_request_round_trips)
{
    strata_request_t in = {.request_id = 7,
                           .op = STRATA_OP_SCAN,
                           .scan_start = bytes_of("a"),
                           .scan_end = bytes_of("m"),
                           .scan_cursor = bytes_of("cursor-token"),
                           .scan_limit = 100};
    strata_request_t out;
    request_round_trip(&in, &out);
    assert_bytes_eq(out.scan_start, in.scan_start);
    assert_bytes_eq(out.scan_end, in.scan_end);
    assert_bytes_eq(out.scan_cursor, in.scan_cursor);
    ck_assert_uint_eq(out.scan_limit, 100);
    strata_request_clear(&out);
}
END_TEST

START_TEST(status_and_stats_requests_round_trip)
{
    strata_request_t out;
    strata_request_t status = {.request_id = 8, .op = STRATA_OP_STATUS};
    request_round_trip(&status, &out);
    strata_request_clear(&out);
    strata_request_t stats = {.request_id = 9, .op = STRATA_OP_STATS};
    request_round_trip(&stats, &out);
    strata_request_clear(&out);
}
END_TEST

START_TEST(control_request_round_trips)
{
    const char *args[2] = {"wal.sync_interval_ms", "5"};
    strata_request_t in = {
        .request_id = 10, .op = STRATA_OP_CONTROL, .verb = "configure", .args = args, .n_args = 2};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_str_eq(out.verb, "configure");
    ck_assert_uint_eq(out.n_args, 2);
    ck_assert_str_eq(out.args[0], args[0]);
    ck_assert_str_eq(out.args[1], args[1]);
    strata_request_clear(&out);
}
END_TEST

START_TEST(install_compaction_round_trips_and_caps_its_lists)
{
    uint64_t in0[] = {7, 9}, in1[] = {3};
    const char *outputs[] = {"41-1-1.sst", "41-1-2.sst"};
    strata_install_t install = {.level = 2,
                                .inputs = {in0, in1},
                                .n_inputs = {2, 1},
                                .outputs = outputs,
                                .n_outputs = 2,
                                .cpu_ns = 123456789};
    strata_request_t in = {.request_id = 13,
                           .op = STRATA_OP_CONTROL,
                           .verb = "install_compaction",
                           .install = &install};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_str_eq(out.verb, "install_compaction");
    ck_assert_uint_eq(out.n_args, 0);
    ck_assert_ptr_nonnull(out.install);
    ck_assert_uint_eq(out.install->level, 2);
    ck_assert_uint_eq(out.install->n_inputs[0], 2);
    ck_assert_uint_eq(out.install->inputs[0][1], 9);
    ck_assert_uint_eq(out.install->n_inputs[1], 1);
    ck_assert_uint_eq(out.install->inputs[1][0], 3);
    ck_assert_uint_eq(out.install->n_outputs, 2);
    ck_assert_str_eq(out.install->outputs[1], "41-1-2.sst");
    ck_assert_uint_eq(out.install->cpu_ns, 123456789);
    strata_request_clear(&out);

    /* A control request without the message decodes with install NULL. */
    strata_request_t plain = {.request_id = 14, .op = STRATA_OP_CONTROL, .verb = "ping"};
    request_round_trip(&plain, &out);
    ck_assert_ptr_null(out.install);
    strata_request_clear(&out);

    size_t n = STRATA_PROTO_MAX_INSTALL + 1;
    uint64_t *many = calloc(n, sizeof *many);
    ck_assert_ptr_nonnull(many);
    install.inputs[1] = many;
    install.n_inputs[1] = n;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(strata_request_encode(&in, &buf, &len, NULL), 0);
    strata_error_t err;
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), STRATA_ETOOBIG);
    ck_assert_msg(strstr(err.msg, "control.install.next_inputs"), "%s", err.msg);
    strata_request_clear(&out);
    free(buf);
    free(many);
}
END_TEST

START_TEST(record_request_round_trips_and_caps_its_value)
{
    strata_request_t in = {.request_id = 11, .op = STRATA_OP_RECORD, .value = bytes_of("\x82")};
    strata_request_t out;
    request_round_trip(&in, &out);
    ck_assert_int_eq(out.op, STRATA_OP_RECORD);
    assert_bytes_eq(out.value, in.value);
    strata_request_clear(&out);

    size_t big_len = STRATA_PROTO_MAX_VALUE + 1;
    uint8_t *big = calloc(1, big_len);
    ck_assert_ptr_nonnull(big);
    strata_request_t over = {.request_id = 12, .op = STRATA_OP_RECORD, .value = {big, big_len}};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(strata_request_encode(&over, &buf, &len, NULL), 0);
    strata_error_t err;
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), STRATA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "record.value"));
    ck_assert_uint_eq(out.request_id, 12);
    strata_request_clear(&out);
    free(buf);
    free(big);
}
END_TEST

START_TEST(write_replies_round_trip)
{
    strata_op_t ops[4] = {STRATA_OP_PUT, STRATA_OP_DELETE, STRATA_OP_BATCH, STRATA_OP_RECORD};
    for (size_t i = 0; i < 4; i++) {
        strata_reply_t in = {.request_id = 20 + i, .op = ops[i], .seq = 1000 + i};
        strata_reply_t out;
        reply_round_trip(&in, &out);
        ck_assert_uint_eq(out.seq, 1000 + i);
        strata_reply_clear(&out);
    }
}
END_TEST

START_TEST(get_reply_round_trips_found_and_missing)
{
    strata_value_t found = {.found = true, .value = bytes_of("hello")};
    strata_reply_t in = {.request_id = 21, .op = STRATA_OP_GET, .values = &found, .n_values = 1};
    strata_reply_t out;
    reply_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_values, 1);
    ck_assert(out.values[0].found);
    assert_bytes_eq(out.values[0].value, found.value);
    strata_reply_clear(&out);

    strata_value_t missing = {.found = false};
    in.values = &missing;
    reply_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_values, 1);
    ck_assert(!out.values[0].found);
    ck_assert_uint_eq(out.values[0].value.len, 0);
    strata_reply_clear(&out);
}
END_TEST

START_TEST(multi_get_reply_round_trips)
{
    strata_value_t values[3] = {{.found = true, .value = bytes_of("1")},
                                {.found = false},
                                {.found = true, .value = bytes_of("")}};
    strata_reply_t in = {
        .request_id = 22, .op = STRATA_OP_MULTI_GET, .values = values, .n_values = 3};
    strata_reply_t out;
    reply_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_values, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(out.values[i].found, values[i].found);
        assert_bytes_eq(out.values[i].value, values[i].value);
    }
    strata_reply_clear(&out);
}
END_TEST

START_TEST(scan_reply_round_trips_with_cursor)
{
    strata_kv_t entries[2] = {{bytes_of("a"), bytes_of("1")}, {bytes_of("b"), bytes_of("2")}};
    strata_reply_t in = {.request_id = 23,
                         .op = STRATA_OP_SCAN,
                         .entries = entries,
                         .n_entries = 2,
                         .next_cursor = bytes_of("b\x01")};
    strata_reply_t out;
    reply_round_trip(&in, &out);
    ck_assert_uint_eq(out.n_entries, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_bytes_eq(out.entries[i].key, entries[i].key);
        assert_bytes_eq(out.entries[i].value, entries[i].value);
    }
    assert_bytes_eq(out.next_cursor, in.next_cursor);
    strata_reply_clear(&out);
}
END_TEST

START_TEST(status_reply_round_trips)
{
    strata_reply_t in = {.request_id = 24,
                         .op = STRATA_OP_STATUS,
                         .role = "master",
                         .term = 7,
                         .last_seq = 99,
                         .durable_seq = 98};
    strata_reply_t out;
    reply_round_trip(&in, &out);
    ck_assert_str_eq(out.role, "master");
    ck_assert_uint_eq(out.term, 7);
    ck_assert_uint_eq(out.last_seq, 99);
    ck_assert_uint_eq(out.durable_seq, 98);
    strata_reply_clear(&out);
}
END_TEST

START_TEST(stats_and_control_replies_round_trip)
{
    strata_pair_t pairs[2] = {{"wal.syncs", "12"}, {"memtable.bytes", "4096"}};
    strata_op_t ops[2] = {STRATA_OP_STATS, STRATA_OP_CONTROL};
    for (size_t k = 0; k < 2; k++) {
        strata_reply_t in = {.request_id = 25, .op = ops[k], .pairs = pairs, .n_pairs = 2};
        strata_reply_t out;
        reply_round_trip(&in, &out);
        ck_assert_uint_eq(out.n_pairs, 2);
        for (size_t i = 0; i < 2; i++) {
            ck_assert_str_eq(out.pairs[i].name, pairs[i].name);
            ck_assert_str_eq(out.pairs[i].value, pairs[i].value);
        }
        strata_reply_clear(&out);
    }
}
END_TEST

START_TEST(error_reply_carries_status_and_message)
{
    strata_reply_t in = {.request_id = 26,
                         .op = STRATA_OP_NONE,
                         .status = STRATA_EVERSION,
                         .message = "request.version: 9 unknown, this side speaks 1"};
    strata_reply_t out;
    reply_round_trip(&in, &out);
    ck_assert_int_eq(out.status, STRATA_EVERSION);
    strata_reply_clear(&out);
}
END_TEST

/* ---- the distributor's history endpoint (proto/DISTRIBUTION.md) ---------------- */

static void assert_topics_eq(const char *const *got, size_t n_got, const char *const *want,
                             size_t n_want)
{
    ck_assert_uint_eq(n_got, n_want);
    for (size_t i = 0; i < n_want; i++)
        ck_assert_str_eq(got[i], want[i]);
}

START_TEST(replay_request_round_trips)
{
    const char *topics[] = {"orders", "trades"};
    strata_request_t in = {.request_id = 40,
                           .op = STRATA_OP_REPLAY,
                           .topics = topics,
                           .n_topics = 2,
                           .seq = 1000,
                           .from_time_ns = 1700000000000000001ull,
                           .to_seq = UINT64_MAX,
                           .max_entries = 10000,
                           .max_bytes = 4u << 20};
    strata_request_t out;
    request_round_trip(&in, &out);
    assert_topics_eq(out.topics, out.n_topics, topics, 2);
    ck_assert_uint_eq(out.seq, 1000);
    ck_assert_uint_eq(out.from_time_ns, 1700000000000000001ull);
    ck_assert_uint_eq(out.to_seq, UINT64_MAX);
    ck_assert_uint_eq(out.max_entries, 10000);
    ck_assert_uint_eq(out.max_bytes, 4u << 20);
    strata_request_clear(&out);

    /* No topics: every topic not beginning with '$'; zeros are defaults. */
    strata_request_t all = {.request_id = 41, .op = STRATA_OP_REPLAY};
    request_round_trip(&all, &out);
    ck_assert_uint_eq(out.n_topics, 0);
    ck_assert_uint_eq(out.seq, 0);
    ck_assert_uint_eq(out.to_seq, 0);
    strata_request_clear(&out);
}
END_TEST

START_TEST(subscribe_ack_and_subscribers_requests_round_trip)
{
    const char *topics[] = {"$sys"};
    strata_request_t sub = {.request_id = 42,
                            .op = STRATA_OP_SUBSCRIBE,
                            .name = "risk-engine",
                            .topics = topics,
                            .n_topics = 1,
                            .window = 1000,
                            .seq = 77};
    strata_request_t out;
    request_round_trip(&sub, &out);
    ck_assert_str_eq(out.name, "risk-engine");
    assert_topics_eq(out.topics, out.n_topics, topics, 1);
    ck_assert_uint_eq(out.window, 1000);
    ck_assert_uint_eq(out.seq, 77);
    strata_request_clear(&out);

    strata_request_t ack = {
        .request_id = 43, .op = STRATA_OP_ACK, .name = "risk-engine", .seq = UINT64_MAX - 1};
    request_round_trip(&ack, &out);
    ck_assert_str_eq(out.name, "risk-engine");
    ck_assert_uint_eq(out.seq, UINT64_MAX - 1);
    strata_request_clear(&out);

    strata_request_t list = {.request_id = 44, .op = STRATA_OP_SUBSCRIBERS};
    request_round_trip(&list, &out);
    strata_request_clear(&out);

    /* DELIVER is pushed by the server: it is no request. */
    strata_request_t deliver = {.request_id = 45, .op = STRATA_OP_DELIVER};
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(&deliver, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_ptr_null(buf);
}
END_TEST

/* subscriber_delete and subscriber_reset (DISTRIBUTION.md, "Deleting a
 * subscriber, moving its offset"): requests and replies round-trip, and a
 * reset `to` past RESET_TO_LATEST is refused naming the field. */
START_TEST(subscriber_delete_and_reset_round_trip)
{
    strata_request_t del = {.request_id = 51, .op = STRATA_OP_SUBSCRIBER_DELETE, .name = "audit"};
    strata_request_t out;
    request_round_trip(&del, &out);
    ck_assert_str_eq(out.name, "audit");
    strata_request_clear(&out);
    static const strata_reset_to_t tos[] = {STRATA_RESET_TO_SEQ, STRATA_RESET_TO_EARLIEST,
                                            STRATA_RESET_TO_LATEST};
    for (size_t i = 0; i < 3; i++) {
        strata_request_t reset = {.request_id = 52,
                                  .op = STRATA_OP_SUBSCRIBER_RESET,
                                  .name = "audit",
                                  .reset_to = tos[i],
                                  .seq = 99};
        request_round_trip(&reset, &out);
        ck_assert_str_eq(out.name, "audit");
        ck_assert_int_eq(out.reset_to, tos[i]);
        ck_assert_uint_eq(out.seq, 99);
        strata_request_clear(&out);
    }
    strata_request_t bad = {
        .request_id = 53, .op = STRATA_OP_SUBSCRIBER_RESET, .name = "a", .reset_to = 3};
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(&bad, &buf, &len, &err), 0);
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "subscriber_reset.to: 3 unknown");
    strata_request_clear(&out);
    free(buf);

    static const strata_op_t ops[] = {STRATA_OP_SUBSCRIBER_DELETE, STRATA_OP_SUBSCRIBER_RESET};
    for (size_t i = 0; i < 2; i++) {
        strata_reply_t rep = {.request_id = 54, .op = ops[i], .acked_seq = 7, .published_seq = 12};
        strata_reply_t got;
        reply_round_trip(&rep, &got);
        ck_assert_int_eq(got.op, ops[i]);
        ck_assert_uint_eq(got.acked_seq, 7);
        ck_assert_uint_eq(got.published_seq, 12);
        strata_reply_clear(&got);
    }
    ck_assert_str_eq(strata_op_name(STRATA_OP_SUBSCRIBER_DELETE), "subscriber_delete");
    ck_assert_str_eq(strata_op_name(STRATA_OP_SUBSCRIBER_RESET), "subscriber_reset");
}
END_TEST

START_TEST(history_replies_round_trip)
{
    static const uint8_t blob[] = {1, 2, 3, 0, 4, 5};
    strata_reply_t replay = {.request_id = 46,
                             .op = STRATA_OP_REPLAY,
                             .entries_blob = {blob, sizeof blob},
                             .count = 2,
                             .next_seq = 90,
                             .published_seq = 120,
                             .done = true};
    strata_reply_t out;
    reply_round_trip(&replay, &out);
    assert_bytes_eq(out.entries_blob, replay.entries_blob);
    ck_assert_uint_eq(out.count, 2);
    ck_assert_uint_eq(out.next_seq, 90);
    ck_assert_uint_eq(out.published_seq, 120);
    ck_assert(out.done);
    strata_reply_clear(&out);

    strata_reply_t sub = {
        .request_id = 47, .op = STRATA_OP_SUBSCRIBE, .acked_seq = 55, .published_seq = 60};
    reply_round_trip(&sub, &out);
    ck_assert_uint_eq(out.acked_seq, 55);
    ck_assert_uint_eq(out.published_seq, 60);
    strata_reply_clear(&out);

    strata_reply_t ack = {.request_id = 48, .op = STRATA_OP_ACK, .durable_seq = 58};
    reply_round_trip(&ack, &out);
    ck_assert_uint_eq(out.durable_seq, 58);
    strata_reply_clear(&out);

    strata_reply_t deliver = {.request_id = 47,
                              .op = STRATA_OP_DELIVER,
                              .entries_blob = {blob, sizeof blob},
                              .count = 1,
                              .first_seq = 56,
                              .last_seq = 56};
    reply_round_trip(&deliver, &out);
    assert_bytes_eq(out.entries_blob, deliver.entries_blob);
    ck_assert_uint_eq(out.count, 1);
    ck_assert_uint_eq(out.first_seq, 56);
    ck_assert_uint_eq(out.last_seq, 56);
    strata_reply_clear(&out);

    const char *topics[] = {"orders", "trades"};
    strata_subscriber_info_t infos[2] = {
        {.name = "risk",
         .topics = topics,
         .n_topics = 2,
         .acked_seq = 10,
         .lag_records = 5,
         .lag_ms = 250,
         .unacked = 3,
         .resends = 1,
         .connected = true},
        {.name = "audit", .acked_seq = 1},
    };
    strata_reply_t list = {
        .request_id = 49, .op = STRATA_OP_SUBSCRIBERS, .subscribers = infos, .n_subscribers = 2};
    reply_round_trip(&list, &out);
    ck_assert_uint_eq(out.n_subscribers, 2);
    ck_assert_str_eq(out.subscribers[0].name, "risk");
    assert_topics_eq(out.subscribers[0].topics, out.subscribers[0].n_topics, topics, 2);
    ck_assert_uint_eq(out.subscribers[0].acked_seq, 10);
    ck_assert_uint_eq(out.subscribers[0].lag_records, 5);
    ck_assert_uint_eq(out.subscribers[0].lag_ms, 250);
    ck_assert_uint_eq(out.subscribers[0].unacked, 3);
    ck_assert_uint_eq(out.subscribers[0].resends, 1);
    ck_assert(out.subscribers[0].connected);
    ck_assert_str_eq(out.subscribers[1].name, "audit");
    ck_assert_uint_eq(out.subscribers[1].n_topics, 0);
    ck_assert(!out.subscribers[1].connected);
    strata_reply_clear(&out);

    /* A replay the node cannot serve: an error reply naming what it still has. */
    strata_reply_t truncated = {.request_id = 50,
                                .status = STRATA_ETRUNCATED,
                                .message = "from_seq 3 is older than the oldest retained, 9"};
    reply_round_trip(&truncated, &out);
    strata_reply_clear(&out);
}
END_TEST

START_TEST(unknown_version_is_rejected_naming_it)
{
    strata_request_t in = {.version = 9, .request_id = 77, .op = STRATA_OP_STATUS};
    uint8_t *buf;
    size_t len;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(&in, &buf, &len, &err), 0);
    strata_request_t out;
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), STRATA_EVERSION);
    ck_assert_ptr_nonnull(strstr(err.msg, "request.version: 9"));
    ck_assert_uint_eq(out.request_id, 77); /* so the error reply can be addressed */
    strata_request_clear(&out);
    free(buf);

    strata_reply_t rep_in = {.version = 2, .request_id = 78, .op = STRATA_OP_STATUS};
    ck_assert_int_eq(strata_reply_encode(&rep_in, &buf, &len, &err), 0);
    strata_reply_t rep_out;
    ck_assert_int_eq(strata_reply_decode(buf, len, &rep_out, &err), STRATA_EVERSION);
    ck_assert_ptr_nonnull(strstr(err.msg, "reply.version: 2"));
    strata_reply_clear(&rep_out);
    free(buf);
}
END_TEST

/* Decodes frame as a request and expects code with want_msg in the error. */
static void expect_request_error(const strata_request_t *in, int code, const char *want_msg)
{
    uint8_t *buf;
    size_t len;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(in, &buf, &len, &err), 0);
    strata_request_t out;
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), code);
    ck_assert_msg(strstr(err.msg, want_msg), "error '%s' lacks '%s'", err.msg, want_msg);
    /* The cap check runs before decode allocates arrays of its own. */
    ck_assert_ptr_null(out.ops);
    ck_assert_ptr_null(out.keys);
    ck_assert_uint_eq(out.request_id, in->request_id);
    strata_request_clear(&out);
    free(buf);
}

/* Protobuf strings are UTF-8: a request carrying anything else in one is
 * refused naming the field and the byte, and a reply never carries any,
 * whatever it echoes, so strict readers (Python, Go, Java) can parse it. */
START_TEST(strings_are_utf8_both_ways)
{
    strata_request_t verb = {.request_id = 70, .op = STRATA_OP_CONTROL, .verb = "pi\xffng"};
    expect_request_error(&verb, STRATA_EINVAL, "control.verb: not UTF-8 at byte 2");
    const char *args[] = {"ok", "\xc0\xaf"}; /* an overlong '/' */
    strata_request_t arg = {
        .request_id = 71, .op = STRATA_OP_CONTROL, .verb = "x", .args = args, .n_args = 2};
    expect_request_error(&arg, STRATA_EINVAL, "control.args[1]: not UTF-8 at byte 0");
    strata_request_t name = {.request_id = 72, .op = STRATA_OP_SUBSCRIBE, .name = "a\xed\xa0\x80"};
    expect_request_error(&name, STRATA_EINVAL, "subscribe.name: not UTF-8 at byte 1");
    const char *topics[] = {"orders", "tr\xe9s"}; /* Latin-1, not UTF-8 */
    strata_request_t sub = {
        .request_id = 73, .op = STRATA_OP_REPLAY, .topics = topics, .n_topics = 2};
    expect_request_error(&sub, STRATA_EINVAL, "replay.topics[1]: not UTF-8 at byte 2");
    /* Real UTF-8 (two, three and four bytes) passes. */
    strata_request_t good = {.request_id = 74,
                             .op = STRATA_OP_CONTROL,
                             .verb = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"};
    strata_request_t out;
    request_round_trip(&good, &out);
    ck_assert_str_eq(out.verb, good.verb);
    strata_request_clear(&out);

    strata_pair_t pairs[] = {{"path", "/data/\xff\xfe"}};
    strata_reply_t rep = {
        .request_id = 75, .status = STRATA_EINVAL, .message = "control.verb: 'p\x80' unknown"};
    strata_reply_t back;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(strata_reply_encode(&rep, &buf, &len, NULL), 0);
    ck_assert_int_eq(strata_reply_decode(buf, len, &back, NULL), 0);
    ck_assert_str_eq(back.message, "control.verb: 'p\\x80' unknown");
    strata_reply_clear(&back);
    free(buf);
    strata_reply_t ctl = {.request_id = 76, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 1};
    ck_assert_int_eq(strata_reply_encode(&ctl, &buf, &len, NULL), 0);
    ck_assert_int_eq(strata_reply_decode(buf, len, &back, NULL), 0);
    ck_assert_str_eq(back.pairs[0].value, "/data/\\xFF\\xFE");
    strata_reply_clear(&back);
    free(buf);
}
END_TEST

START_TEST(oversize_fields_are_rejected_by_the_cap_check)
{
    size_t big = STRATA_PROTO_MAX_VALUE + 1;
    uint8_t *blob = calloc(1, big);
    strata_bytes_t big_key = {blob, 70000};
    strata_bytes_t big_value = {blob, big};

    strata_request_t put = {.request_id = 30, .op = STRATA_OP_PUT, .key = big_key};
    expect_request_error(&put, STRATA_ETOOBIG, "put.key: 70000 bytes, cap 65536");
    put.key = bytes_of("k");
    put.value = big_value;
    expect_request_error(&put, STRATA_ETOOBIG, "put.value: 1048577 bytes, cap 1048576");

    strata_batch_op_t *ops = calloc(STRATA_PROTO_MAX_BATCH_OPS + 1, sizeof *ops);
    strata_request_t batch = {.request_id = 31,
                              .op = STRATA_OP_BATCH,
                              .ops = ops,
                              .n_ops = STRATA_PROTO_MAX_BATCH_OPS + 1};
    expect_request_error(&batch, STRATA_ETOOBIG, "batch.ops: 1025 items, cap 1024");
    batch.n_ops = 3;
    ops[2].key = big_key;
    expect_request_error(&batch, STRATA_ETOOBIG, "batch.ops.key[2]: 70000 bytes");
    free(ops);

    strata_bytes_t *keys = calloc(STRATA_PROTO_MAX_MULTI_GET + 1, sizeof *keys);
    strata_request_t multi_get = {.request_id = 32,
                                  .op = STRATA_OP_MULTI_GET,
                                  .keys = keys,
                                  .n_keys = STRATA_PROTO_MAX_MULTI_GET + 1};
    expect_request_error(&multi_get, STRATA_ETOOBIG, "multi_get.keys: 1025 items");
    free(keys);

    strata_request_t scan = {.request_id = 33, .op = STRATA_OP_SCAN, .scan_limit = 10001};
    expect_request_error(&scan, STRATA_ETOOBIG, "scan.limit: 10001, cap 10000");

    char *long_verb = calloc(1, STRATA_PROTO_MAX_TEXT + 2);
    memset(long_verb, 'v', STRATA_PROTO_MAX_TEXT + 1);
    strata_request_t control = {.request_id = 34, .op = STRATA_OP_CONTROL, .verb = long_verb};
    expect_request_error(&control, STRATA_ETOOBIG, "control.verb: 4097 bytes");
    free(long_verb);

    strata_kv_t entry = {.key = big_key};
    strata_reply_t rep = {
        .request_id = 35, .op = STRATA_OP_SCAN, .entries = &entry, .n_entries = 1};
    uint8_t *buf;
    size_t len;
    strata_error_t err;
    ck_assert_int_eq(strata_reply_encode(&rep, &buf, &len, &err), 0);
    strata_reply_t rep_out;
    ck_assert_int_eq(strata_reply_decode(buf, len, &rep_out, &err), STRATA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "scan.entries.key[0]: 70000 bytes"));
    ck_assert_ptr_null(rep_out.entries);
    strata_reply_clear(&rep_out);
    free(buf);
    free(blob);
}
END_TEST

/* Encodes rep and expects its decode to fail with code and want_msg. */
static void expect_reply_error(const strata_reply_t *rep, int code, const char *want_msg)
{
    uint8_t *buf;
    size_t len;
    strata_error_t err;
    ck_assert_int_eq(strata_reply_encode(rep, &buf, &len, &err), 0);
    strata_reply_t out;
    ck_assert_int_eq(strata_reply_decode(buf, len, &out, &err), code);
    ck_assert_msg(strstr(err.msg, want_msg), "error '%s' lacks '%s'", err.msg, want_msg);
    ck_assert_ptr_null(out.subscribers);
    strata_reply_clear(&out);
    free(buf);
}

START_TEST(history_requests_over_their_caps_are_rejected)
{
    const char *many[STRATA_PROTO_MAX_TOPICS + 1];
    for (size_t i = 0; i <= STRATA_PROTO_MAX_TOPICS; i++)
        many[i] = "t";
    strata_request_t replay = {.request_id = 60,
                               .op = STRATA_OP_REPLAY,
                               .topics = many,
                               .n_topics = STRATA_PROTO_MAX_TOPICS + 1};
    expect_request_error(&replay, STRATA_ETOOBIG, "replay.topics: 65 items, cap 64");
    replay.n_topics = STRATA_PROTO_MAX_TOPICS;
    uint8_t *buf;
    size_t len;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(&replay, &buf, &len, &err), 0);
    strata_request_t out;
    ck_assert_int_eq(strata_request_decode(buf, len, &out, &err), 0); /* exactly the cap */
    strata_request_clear(&out);
    free(buf);

    char long_topic[STRATA_PROTO_MAX_TOPIC + 2];
    memset(long_topic, 'x', sizeof long_topic - 1);
    long_topic[sizeof long_topic - 1] = '\0';
    const char *topics[] = {"orders", long_topic};
    strata_request_t sub = {.request_id = 61,
                            .op = STRATA_OP_SUBSCRIBE,
                            .name = "app",
                            .topics = topics,
                            .n_topics = 2};
    expect_request_error(&sub, STRATA_ETOOBIG, "subscribe.topics[1]: 256 bytes, cap 255");
    sub.topics = many;
    sub.n_topics = STRATA_PROTO_MAX_TOPICS + 1;
    expect_request_error(&sub, STRATA_ETOOBIG, "subscribe.topics: 65 items");

    char long_name[STRATA_PROTO_MAX_NAME + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    sub.n_topics = 0;
    sub.name = long_name;
    expect_request_error(&sub, STRATA_ETOOBIG, "subscribe.name: 129 bytes, cap 128");
    strata_request_t ack = {.request_id = 62, .op = STRATA_OP_ACK, .name = long_name, .seq = 1};
    expect_request_error(&ack, STRATA_ETOOBIG, "ack.name: 129 bytes, cap 128");

    /* And the subscriber list a server sends back. */
    strata_subscriber_info_t info = {.name = long_name};
    strata_reply_t list = {
        .request_id = 63, .op = STRATA_OP_SUBSCRIBERS, .subscribers = &info, .n_subscribers = 1};
    expect_reply_error(&list, STRATA_ETOOBIG, "subscribers.name: 129 bytes");
    info = (strata_subscriber_info_t){.name = "app", .topics = topics, .n_topics = 2};
    expect_reply_error(&list, STRATA_ETOOBIG, "subscribers.topics[1]: 256 bytes");
    strata_subscriber_info_t *crowd = calloc(STRATA_PROTO_MAX_SUBSCRIBERS + 1, sizeof *crowd);
    for (size_t i = 0; i <= STRATA_PROTO_MAX_SUBSCRIBERS; i++)
        crowd[i].name = "s";
    list.subscribers = crowd;
    list.n_subscribers = STRATA_PROTO_MAX_SUBSCRIBERS + 1;
    expect_reply_error(&list, STRATA_ETOOBIG, "subscribers: 4097 items, cap 4096");
    free(crowd);
}
END_TEST

START_TEST(oversize_frames_are_refused_before_parsing)
{
    size_t len = STRATA_PROTO_MAX_MESSAGE + 1;
    uint8_t *frame = calloc(1, len);
    strata_error_t err;
    strata_request_t req;
    ck_assert_int_eq(strata_request_decode(frame, len, &req, &err), STRATA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "request: 8388609 bytes"));
    strata_request_clear(&req);
    strata_reply_t rep;
    ck_assert_int_eq(strata_reply_decode(frame, len, &rep, &err), STRATA_ETOOBIG);
    strata_reply_clear(&rep);

    /* The encoder refuses to build what no peer would accept. */
    uint8_t *blob = calloc(1, STRATA_PROTO_MAX_VALUE);
    strata_batch_op_t *ops = calloc(16, sizeof *ops);
    for (size_t i = 0; i < 16; i++)
        ops[i].value = (strata_bytes_t){blob, STRATA_PROTO_MAX_VALUE};
    strata_request_t batch = {.op = STRATA_OP_BATCH, .ops = ops, .n_ops = 16};
    uint8_t *buf = NULL;
    size_t buf_len = 0;
    ck_assert_int_eq(strata_request_encode(&batch, &buf, &buf_len, &err), STRATA_ETOOBIG);
    ck_assert_ptr_null(buf);
    free(ops);
    free(blob);
    free(frame);
}
END_TEST

START_TEST(frames_without_body_or_with_unknown_enums_are_rejected)
{
    strata_error_t err;
    strata_request_t req;
    /* version=1, no body */
    const uint8_t no_body[] = {0x08, 0x01};
    ck_assert_int_eq(strata_request_decode(no_body, sizeof no_body, &req, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no body"));
    strata_request_clear(&req);
    /* version=1, durability=5, status {} */
    const uint8_t bad_durability[] = {0x08, 0x01, 0x18, 0x05, 0x82, 0x01, 0x00};
    ck_assert_int_eq(strata_request_decode(bad_durability, sizeof bad_durability, &req, &err),
                     STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "request.durability: 5"));
    strata_request_clear(&req);
    /* version=1, replication=3, status {} */
    const uint8_t bad_replication[] = {0x08, 0x01, 0x20, 0x03, 0x82, 0x01, 0x00};
    ck_assert_int_eq(strata_request_decode(bad_replication, sizeof bad_replication, &req, &err),
                     STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "request.replication: 3 unknown"));
    strata_request_clear(&req);
    /* ... and replication=2 (async) decodes. */
    const uint8_t async_replication[] = {0x08, 0x01, 0x20, 0x02, 0x82, 0x01, 0x00};
    ck_assert_int_eq(strata_request_decode(async_replication, sizeof async_replication, &req, &err),
                     0);
    ck_assert_int_eq(req.replication, STRATA_REPLICATION_ASYNC);
    strata_request_clear(&req);
    /* version=1, batch { ops { kind=9 } } */
    const uint8_t bad_kind[] = {0x08, 0x01, 0x62, 0x04, 0x0a, 0x02, 0x08, 0x09};
    ck_assert_int_eq(strata_request_decode(bad_kind, sizeof bad_kind, &req, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "batch.ops[0].kind: 9"));
    strata_request_clear(&req);
    /* version=1, only a body field this build does not know (99, empty):
     * no body. PROTOCOL.md, "Errors, never crashes". */
    const uint8_t unknown_body[] = {0x08, 0x01, 0x9a, 0x06, 0x00};
    ck_assert_int_eq(strata_request_decode(unknown_body, sizeof unknown_body, &req, &err),
                     STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "request: no body (case 0)");
    strata_request_clear(&req);
    /* version=1, status {}, and unknown fields beside it (111, varint) and
     * inside it (5, varint): skipped, the request is a status. */
    const uint8_t unknown_fields[] = {0x08, 0x01, 0x82, 0x01, 0x02, 0x28, 0x07, 0xf8, 0x06, 0x01};
    ck_assert_int_eq(strata_request_decode(unknown_fields, sizeof unknown_fields, &req, &err), 0);
    ck_assert_int_eq(req.op, STRATA_OP_STATUS);
    strata_request_clear(&req);
    /* An empty frame is a request with version 0. */
    ck_assert_int_eq(strata_request_decode("", 0, &req, &err), STRATA_EVERSION);
    strata_request_clear(&req);

    /* version=1, request_id=5: a success without a body, e.g. a truncated reply. */
    const uint8_t empty_success[] = {0x08, 0x01, 0x10, 0x05};
    strata_reply_t rep;
    ck_assert_int_eq(strata_reply_decode(empty_success, sizeof empty_success, &rep, &err),
                     STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "without a body"));
    ck_assert_uint_eq(rep.request_id, 5);
    strata_reply_clear(&rep);

    uint8_t *buf = NULL;
    size_t len;
    strata_reply_t no_reason = {.status = STRATA_EIO};
    ck_assert_int_eq(strata_reply_encode(&no_reason, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "reply.message: empty"));
    strata_reply_t bodiless = {.status = 0};
    ck_assert_int_eq(strata_reply_encode(&bodiless, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_ptr_null(buf);

    strata_request_t unknown_op = {.op = (strata_op_t)42};
    ck_assert_int_eq(strata_request_encode(&unknown_op, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_ptr_null(buf);
}
END_TEST

/* Valid frames of every kind, for the truncation and mutation tests. */
typedef struct {
    uint8_t *buf;
    size_t len;
    bool is_reply;
} frame_t;

#define N_REQUESTS 13
#define N_REPLIES  14
#define N_SAMPLES  (N_REQUESTS + N_REPLIES)

static size_t sample_frames(frame_t *frames)
{
    static strata_batch_op_t ops[2] = {
        {.kind = STRATA_BATCH_PUT,
         .key = {(const uint8_t *)"a", 1},
         .value = {(const uint8_t *)"1", 1}},
        {.kind = STRATA_BATCH_DELETE, .key = {(const uint8_t *)"b", 1}}};
    static strata_bytes_t keys[2] = {{(const uint8_t *)"k1", 2}, {(const uint8_t *)"k2", 2}};
    static const char *args[1] = {"all"};
    static const char *topics[2] = {"orders", "trades"};
    strata_request_t reqs[N_REQUESTS] = {
        {.request_id = 1, .op = STRATA_OP_PUT, .key = bytes_of("key"), .value = bytes_of("value")},
        {.request_id = 2, .op = STRATA_OP_DELETE, .key = bytes_of("key")},
        {.request_id = 3, .op = STRATA_OP_BATCH, .ops = ops, .n_ops = 2},
        {.request_id = 4, .op = STRATA_OP_GET, .key = bytes_of("key")},
        {.request_id = 5, .op = STRATA_OP_MULTI_GET, .keys = keys, .n_keys = 2},
        {.request_id = 6,
         .op = STRATA_OP_SCAN,
         .scan_start = bytes_of("a"),
         .scan_end = bytes_of("z"),
         .scan_cursor = bytes_of("c"),
         .scan_limit = 10},
        {.request_id = 7, .op = STRATA_OP_STATUS, .durability = STRATA_DURABILITY_ASYNC},
        {.request_id = 8, .op = STRATA_OP_STATS},
        {.request_id = 9, .op = STRATA_OP_CONTROL, .verb = "compact", .args = args, .n_args = 1},
        {.request_id = 10,
         .op = STRATA_OP_REPLAY,
         .topics = topics,
         .n_topics = 2,
         .seq = 5,
         .to_seq = 9,
         .max_entries = 100},
        {.request_id = 11,
         .op = STRATA_OP_SUBSCRIBE,
         .name = "app",
         .topics = topics,
         .n_topics = 1,
         .window = 10},
        {.request_id = 12, .op = STRATA_OP_ACK, .name = "app", .seq = 7},
        {.request_id = 13, .op = STRATA_OP_SUBSCRIBERS},
    };
    static strata_value_t values[2] = {{.found = true, .value = {(const uint8_t *)"v", 1}},
                                       {.found = false}};
    static strata_kv_t entries[2] = {{{(const uint8_t *)"a", 1}, {(const uint8_t *)"1", 1}},
                                     {{(const uint8_t *)"b", 1}, {(const uint8_t *)"2", 1}}};
    static strata_pair_t pairs[1] = {{"wal.syncs", "3"}};
    static strata_subscriber_info_t infos[1] = {
        {.name = "app", .topics = topics, .n_topics = 2, .acked_seq = 4, .connected = true}};
    strata_reply_t reps[N_REPLIES] = {
        {.request_id = 1, .op = STRATA_OP_PUT, .seq = 5},
        {.request_id = 2, .op = STRATA_OP_BATCH, .seq = 6},
        {.request_id = 3, .op = STRATA_OP_GET, .values = values, .n_values = 1},
        {.request_id = 4, .op = STRATA_OP_MULTI_GET, .values = values, .n_values = 2},
        {.request_id = 5,
         .op = STRATA_OP_SCAN,
         .entries = entries,
         .n_entries = 2,
         .next_cursor = bytes_of("b")},
        {.request_id = 6, .op = STRATA_OP_STATUS, .role = "slave", .term = 2, .last_seq = 9},
        {.request_id = 7, .op = STRATA_OP_STATS, .pairs = pairs, .n_pairs = 1},
        {.request_id = 8, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 1},
        {.request_id = 9, .op = STRATA_OP_NONE, .status = STRATA_EINVAL, .message = "bad"},
        {.request_id = 10,
         .op = STRATA_OP_REPLAY,
         .entries_blob = bytes_of("entries"),
         .count = 1,
         .next_seq = 6,
         .published_seq = 9,
         .done = true},
        {.request_id = 11, .op = STRATA_OP_SUBSCRIBE, .acked_seq = 3, .published_seq = 9},
        {.request_id = 12, .op = STRATA_OP_ACK, .durable_seq = 7},
        {.request_id = 11,
         .op = STRATA_OP_DELIVER,
         .entries_blob = bytes_of("entries"),
         .count = 1,
         .first_seq = 4,
         .last_seq = 4},
        {.request_id = 13, .op = STRATA_OP_SUBSCRIBERS, .subscribers = infos, .n_subscribers = 1},
    };
    size_t n = 0;
    for (size_t i = 0; i < N_REQUESTS; i++, n++) {
        ck_assert_int_eq(strata_request_encode(&reqs[i], &frames[n].buf, &frames[n].len, NULL), 0);
        frames[n].is_reply = false;
    }
    for (size_t i = 0; i < N_REPLIES; i++, n++) {
        ck_assert_int_eq(strata_reply_encode(&reps[i], &frames[n].buf, &frames[n].len, NULL), 0);
        frames[n].is_reply = true;
    }
    return n;
}

static void free_frames(frame_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(frames[i].buf);
}

/* The fields the server's fast path fills, equal in both decodes. */
static void assert_requests_eq(const strata_request_t *a, const strata_request_t *b)
{
    ck_assert_uint_eq(a->version, b->version);
    ck_assert_uint_eq(a->request_id, b->request_id);
    ck_assert_int_eq(a->op, b->op);
    ck_assert_int_eq(a->durability, b->durability);
    ck_assert_int_eq(a->replication, b->replication);
    ck_assert_uint_eq(a->min_seq, b->min_seq);
    ck_assert_uint_eq(a->session, b->session);
    assert_bytes_eq(a->key, b->key);
    assert_bytes_eq(a->value, b->value);
}

/* The fields of a write or get reply, equal in both decodes. */
static void assert_replies_eq(const strata_reply_t *a, const strata_reply_t *b)
{
    ck_assert_uint_eq(a->version, b->version);
    ck_assert_uint_eq(a->request_id, b->request_id);
    ck_assert_int_eq(a->status, b->status);
    ck_assert_str_eq(a->message ? a->message : "(null)", b->message ? b->message : "(null)");
    ck_assert_int_eq(a->op, b->op);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert_uint_eq(a->applied_seq, b->applied_seq);
    if (a->op == STRATA_OP_GET) {
        ck_assert_uint_eq(a->n_values, b->n_values);
        ck_assert_int_eq(a->values[0].found, b->values[0].found);
        assert_bytes_eq(a->values[0].value, b->values[0].value);
    }
}

/* Decodes buf both ways; returns the result of decoding it as kind. A
 * request is decoded by protobuf-c and by the server's fast path too, and
 * the two must agree on the result, the error and every field. */
static int decode_as(const uint8_t *buf, size_t len, bool is_reply)
{
    strata_error_t err;
    int rc;
    if (is_reply) {
        strata_reply_t rep, pb;
        strata_error_t pb_err;
        rc = strata_reply_decode(buf, len, &rep, &err);
        int pb_rc = codec_reply_decode_pb(buf, len, &pb, &pb_err);
        ck_assert_int_eq(rc, pb_rc);
        if (rc == 0)
            assert_replies_eq(&rep, &pb);
        else
            ck_assert_str_eq(err.msg, pb_err.msg);
        strata_reply_clear(&pb);
        strata_reply_clear(&rep);
    } else {
        strata_request_t req, view;
        strata_error_t view_err;
        rc = strata_request_decode(buf, len, &req, &err);
        int view_rc = strata_request_decode_view(buf, len, &view, &view_err);
        ck_assert_int_eq(view_rc, rc);
        if (rc == 0)
            assert_requests_eq(&view, &req);
        else
            ck_assert_str_eq(view_err.msg, err.msg);
        strata_request_clear(&view);
        strata_request_clear(&req);
    }
    if (rc)
        ck_assert_msg(err.msg[0] != '\0', "error %d without a message", rc);
    return rc;
}

START_TEST(every_truncation_of_a_valid_frame_is_rejected)
{
    frame_t frames[N_SAMPLES];
    size_t n = sample_frames(frames);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(decode_as(frames[i].buf, frames[i].len, frames[i].is_reply), 0);
        for (size_t cut = 0; cut < frames[i].len; cut++) {
            /* A copy of exactly cut bytes, so ASan sees any read past the end. */
            uint8_t *prefix = malloc(cut ? cut : 1);
            memcpy(prefix, frames[i].buf, cut);
            ck_assert_msg(decode_as(prefix, cut, frames[i].is_reply) != 0,
                          "frame %zu cut at %zu of %zu decoded", i, cut, frames[i].len);
            free(prefix);
        }
    }
    free_frames(frames, n);
}
END_TEST

START_TEST(random_garbage_never_crashes_the_decoder)
{
    uint64_t rng = ts_seed("codec garbage");
    uint8_t buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t len = ts_rand(&rng) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)ts_rand(&rng);
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        decode_as(copy, len, false);
        decode_as(copy, len, true);
        free(copy);
    }
}
END_TEST

/* One random edit: flip a bit, overwrite a byte with a boundary value,
 * insert, delete, or duplicate a slice (protobuf-c merges repeated fields). */
static size_t mutate(uint8_t *buf, size_t len, size_t cap, uint64_t *rng)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x82};
    size_t pos = len ? ts_rand(rng) % len : 0;
    switch (ts_rand(rng) % 5) {
    case 0:
        if (len)
            buf[pos] ^= (uint8_t)(1u << (ts_rand(rng) % 8));
        return len;
    case 1:
        if (len)
            buf[pos] = interesting[ts_rand(rng) % sizeof interesting];
        return len;
    case 2:
        if (len < cap) {
            memmove(buf + pos + 1, buf + pos, len - pos);
            buf[pos] = (uint8_t)ts_rand(rng);
            return len + 1;
        }
        return len;
    case 3:
        if (len) {
            memmove(buf + pos, buf + pos + 1, len - pos - 1);
            return len - 1;
        }
        return len;
    default: {
        size_t slice = len - pos;
        if (slice > cap - len)
            slice = cap - len;
        memcpy(buf + len, buf + pos, slice);
        return len + slice;
    }
    }
}

START_TEST(mutated_frames_never_crash_the_decoder)
{
    uint64_t rng = ts_seed("codec mutations");
    frame_t frames[N_SAMPLES];
    size_t n = sample_frames(frames);
    enum { CAP = 1024 };
    uint8_t work[CAP];
    int rounds = ts_soak() ? 1000000 : 100000;
    for (int round = 0; round < rounds; round++) {
        const frame_t *seed_frame = &frames[ts_rand(&rng) % n];
        size_t len = seed_frame->len;
        memcpy(work, seed_frame->buf, len);
        int edits = 1 + (int)(ts_rand(&rng) % 4);
        for (int e = 0; e < edits; e++)
            len = mutate(work, len, CAP, &rng);
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, work, len);
        decode_as(copy, len, seed_frame->is_reply);
        decode_as(copy, len, !seed_frame->is_reply);
        free(copy);
    }
    free_frames(frames, n);
}
END_TEST

/* The server's hot path reads puts, deletes and gets and writes their
 * successful replies by hand (lib/wire/codec_fast.c): it must take every
 * such frame protobuf-c writes, read the same fields from it, and write
 * replies byte for byte as protobuf-c does. */
START_TEST(fast_paths_agree_with_protobuf_c)
{
    uint64_t rng = ts_seed("codec fast paths");
    static uint8_t data[2048];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)ts_rand(&rng);
    /* Field values around the varint length boundaries. */
    static const uint64_t numbers[] = {0,     1,          127,        128,      16383,
                                       16384, UINT32_MAX, UINT64_MAX, 1u << 31, 300};
#define PICK() numbers[ts_rand(&rng) % (sizeof numbers / sizeof numbers[0])]
    static const strata_op_t ops[] = {STRATA_OP_PUT, STRATA_OP_DELETE, STRATA_OP_GET};
    for (int round = 0; round < 20000; round++) {
        strata_op_t op = ops[ts_rand(&rng) % 3];
        strata_request_t in = {.request_id = PICK(),
                               .op = op,
                               .durability = (strata_durability_t)(ts_rand(&rng) % 2),
                               .replication = (strata_replication_t)(ts_rand(&rng) % 3),
                               .min_seq = op == STRATA_OP_GET ? PICK() : 0,
                               .session = op != STRATA_OP_GET ? PICK() : 0,
                               .key = {data, ts_rand(&rng) % 200}};
        if (op == STRATA_OP_PUT)
            in.value = (strata_bytes_t){data + 200, ts_rand(&rng) % 1800};
        uint8_t *buf = NULL;
        size_t len = 0;
        ck_assert_int_eq(strata_request_encode(&in, &buf, &len, NULL), 0);
        strata_request_t fast, full;
        ck_assert_msg(codec_fast_request(buf, len, &fast), "round %d: the fast path refused a %s",
                      round, strata_op_name(op));
        ck_assert_int_eq(strata_request_decode(buf, len, &full, NULL), 0);
        assert_requests_eq(&fast, &full);
        strata_request_clear(&full);
        free(buf);

        strata_value_t value = {.found = ts_rand(&rng) % 2,
                                .value = {data, ts_rand(&rng) % 3 ? ts_rand(&rng) % 2048 : 0}};
        strata_reply_t rep = {.request_id = PICK(),
                              .op = ts_rand(&rng) % 2 ? STRATA_OP_GET : ops[ts_rand(&rng) % 2],
                              .seq = PICK(),
                              .applied_seq = ts_rand(&rng) % 2 ? PICK() : 0,
                              .version = (uint32_t)(ts_rand(&rng) % 2),
                              .values = &value,
                              .n_values = 1};
        uint8_t *fast_buf = NULL, *pb_buf = NULL;
        size_t fast_len = 0, pb_len = 0;
        int rc = -1;
        ck_assert(codec_fast_reply(&rep, &fast_buf, &fast_len, &rc, NULL));
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(codec_reply_encode_pb(&rep, &pb_buf, &pb_len, NULL), 0);
        ck_assert_uint_eq(fast_len, pb_len);
        ck_assert_msg(memcmp(fast_buf, pb_buf, pb_len) == 0, "round %d: %s reply bytes differ",
                      round, strata_op_name(rep.op));
        strata_reply_t fast_rep, pb_rep;
        ck_assert(codec_fast_reply_decode(fast_buf, fast_len, &fast_rep));
        ck_assert_int_eq(codec_reply_decode_pb(fast_buf, fast_len, &pb_rep, NULL), 0);
        assert_replies_eq(&fast_rep, &pb_rep);
        strata_reply_clear(&fast_rep);
        strata_reply_clear(&pb_rep);
        free(fast_buf);
        free(pb_buf);
    }
#undef PICK
    /* Replies the fast path leaves alone: errors, other bodies, other
     * versions. */
    strata_reply_t others[] = {
        {.request_id = 1, .status = STRATA_EINVAL, .message = "put.key: too long"},
        {.request_id = 2, .op = STRATA_OP_STATUS, .role = "master"},
        {.request_id = 3, .op = STRATA_OP_PUT, .version = 7},
        {.request_id = 4, .op = STRATA_OP_PUT, .message = "a success that says something"},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = 0;
        ck_assert(!codec_fast_reply(&others[i], &buf, &len, &rc, NULL));
    }
}
END_TEST

/* The one rule every client write path applies (strata_check_client_write):
 * exactly the keys under \0strata/ and the topics beginning `$` are the
 * node's, and the message names the field the caller passed. */
START_TEST(reserved_keys_and_topics_are_refused_naming_the_field)
{
    static const char offset[] = "\0strata/sub/victim";
    strata_bytes_t sys = {(const uint8_t *)offset, sizeof offset - 1};
    strata_error_t err;
    ck_assert(strata_is_sys_key(sys));
    ck_assert_int_eq(strata_check_client_write("record", sys, "fills", &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "record.key: the \\0strata/ prefix is reserved");
    ck_assert_int_eq(strata_check_client_write("batch.ops[3]", sys, NULL, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "batch.ops[3].key: the \\0strata/ prefix is reserved");
    /* Both reserved: the key is named, as it is the one that does harm. */
    ck_assert_int_eq(strata_check_client_write("record", sys, "$sys", &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "record.key: the \\0strata/ prefix is reserved");

    static const char *const reserved[] = {"$sys", "$hb", "$"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        ck_assert_int_eq(strata_check_client_write("record", bytes_of("k"), reserved[i], &err),
                         STRATA_EINVAL);
        char want[128];
        snprintf(want, sizeof want,
                 "record.topic: '%s' is reserved ($-prefixed topics are the node's)", reserved[i]);
        ck_assert_str_eq(err.msg, want);
    }
    /* A topic past the message's room is cut, not overrun. */
    char topic[200];
    memset(topic, 'x', sizeof topic - 1);
    topic[0] = '$';
    topic[sizeof topic - 1] = '\0';
    ck_assert_int_eq(strata_check_client_write("record", bytes_of("k"), topic, &err),
                     STRATA_EINVAL);
    ck_assert_uint_eq(strlen(err.msg), strlen("record.topic: '' is reserved ($-prefixed topics "
                                              "are the node's)") +
                                           64);

    /* Next to the reserved space, not in it: a shorter prefix, another NUL
     * key, a `$` not at the start, the default topic. */
    static const char near[][10] = {"\0strata", "\0strata.", "\0other", "strata/"};
    static const size_t near_len[] = {7, 8, 6, 7};
    for (size_t i = 0; i < 4; i++) {
        strata_bytes_t key = {(const uint8_t *)near[i], near_len[i]};
        ck_assert_msg(!strata_is_sys_key(key), "near key %zu", i);
        ck_assert_int_eq(strata_check_client_write("put", key, NULL, &err), 0);
    }
    ck_assert_int_eq(strata_check_client_write("record", bytes_of("k"), "orders", &err), 0);
    ck_assert_int_eq(strata_check_client_write("record", bytes_of("k"), "a$b", &err), 0);
    ck_assert_int_eq(strata_check_client_write("record", bytes_of("k"), "", &err), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("codec");
    TCase *rt = tcase_create("round_trip");
    tcase_add_test(rt, put_request_round_trips);
    tcase_add_test(rt, fast_paths_agree_with_protobuf_c);
    tcase_add_test(rt, delete_request_defaults_to_sync);
    tcase_add_test(rt, batch_request_round_trips);
    tcase_add_test(rt, get_request_round_trips);
    tcase_add_test(rt, multi_get_request_round_trips);
    tcase_add_test(rt, scan_request_round_trips);
    tcase_add_test(rt, status_and_stats_requests_round_trip);
    tcase_add_test(rt, control_request_round_trips);
    tcase_add_test(rt, install_compaction_round_trips_and_caps_its_lists);
    tcase_add_test(rt, strings_are_utf8_both_ways);
    tcase_add_test(rt, record_request_round_trips_and_caps_its_value);
    tcase_add_test(rt, write_replies_round_trip);
    tcase_add_test(rt, get_reply_round_trips_found_and_missing);
    tcase_add_test(rt, multi_get_reply_round_trips);
    tcase_add_test(rt, scan_reply_round_trips_with_cursor);
    tcase_add_test(rt, status_reply_round_trips);
    tcase_add_test(rt, stats_and_control_replies_round_trip);
    tcase_add_test(rt, error_reply_carries_status_and_message);
    tcase_add_test(rt, replay_request_round_trips);
    tcase_add_test(rt, subscribe_ack_and_subscribers_requests_round_trip);
    tcase_add_test(rt, subscriber_delete_and_reset_round_trip);
    tcase_add_test(rt, history_replies_round_trip);
    suite_add_tcase(s, rt);

    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, unknown_version_is_rejected_naming_it);
    tcase_add_test(bad, oversize_fields_are_rejected_by_the_cap_check);
    tcase_add_test(bad, history_requests_over_their_caps_are_rejected);
    tcase_add_test(bad, oversize_frames_are_refused_before_parsing);
    tcase_add_test(bad, frames_without_body_or_with_unknown_enums_are_rejected);
    tcase_add_test(bad, every_truncation_of_a_valid_frame_is_rejected);
    tcase_add_test(bad, random_garbage_never_crashes_the_decoder);
    tcase_add_test(bad, mutated_frames_never_crash_the_decoder);
    tcase_add_test(bad, reserved_keys_and_topics_are_refused_naming_the_field);
    suite_add_tcase(s, bad);
    return ts_run(s);
}
