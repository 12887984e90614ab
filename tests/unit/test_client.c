/* Pins the C client (strata/client.h) against a scripted ROUTER in a zactor:
 * every blocking call's reply shape, server errors with their message,
 * timeouts whose late replies are dropped, pipelining with replies out of
 * order, replies stashed during a blocking call, duplicates, broken frames. */
#include <check.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/client.h"
#include "support.h"

/* ---- the scripted server ------------------------------------------------
 * Answers every request at once, with bodies derived from the request so a
 * test can tell whose reply it got (a write's seq is its request id * 10, a
 * get's value is its key), except for keys that ask for something else:
 *   slow...  held until a "release" request arrives
 *   release  sends every held reply, then its own
 *   dup      answered twice
 *   fail     an EINVAL error reply
 *   missing  get: found = false
 *   garbage  a frame that is no Reply at all
 *   version  a Reply of version 7 (parses, carries the id, is refused)
 *   delim    an empty delimiter frame before the Reply
 * A fake playing a cluster node that is not the master answers writes and
 * control with STATUS ENOTMASTER and its not_master message, the first
 * `refuse` of them (-1: all); seq_base tells its seqs from another fake's. */

typedef struct {
    int port;
    unsigned requests; /* touched only by the actor */
    unsigned messages; /* request messages received; touched only by the actor */
    const char *not_master;
    int refuse;
    uint64_t seq_base;
} fake_args_t;

static zmsg_t *s_envelope(zframe_t *routing)
{
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(routing)});
    return msg;
}

static void s_send_reply(zsock_t *router, zframe_t *routing, const strata_reply_t *rep,
                         bool delimiter, zlist_t *held)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_msg(strata_reply_encode(rep, &buf, &len, &err) == 0, "encode: %s", err.msg);
    zmsg_t *msg = s_envelope(routing);
    if (delimiter)
        zmsg_addmem(msg, NULL, 0);
    zmsg_addmem(msg, buf, len);
    free(buf);
    if (held)
        zlist_append(held, msg);
    else
        zmsg_send(&msg, router);
}

static bool s_refused_op(strata_op_t op)
{
    return op == STRATA_OP_PUT || op == STRATA_OP_DELETE || op == STRATA_OP_BATCH ||
           op == STRATA_OP_RECORD || op == STRATA_OP_CONTROL;
}

static void s_answer(fake_args_t *args, zsock_t *router, zlist_t *held, zmsg_t *msg)
{
    zframe_t *routing = zmsg_pop(msg);
    zframe_t *payload = zmsg_last(msg);
    strata_request_t req;
    strata_error_t err;
    int rc = strata_request_decode(zframe_data(payload), zframe_size(payload), &req, &err);
    ck_assert_msg(rc == 0, "fake server: %s", err.msg);

    char key[64] = "";
    snprintf(key, sizeof key, "%.*s", (int)req.key.len, (const char *)req.key.data);
    strata_reply_t rep = {.request_id = req.request_id, .op = req.op};
    strata_value_t value = {.found = strcmp(key, "missing") != 0, .value = req.key};
    strata_kv_t entry = {.key = req.scan_start, .value = req.scan_cursor};
    strata_pair_t pair = {.name = "requests", .value = "1"};
    switch (req.op) {
    case STRATA_OP_GET:
        rep.values = &value;
        rep.n_values = 1;
        break;
    case STRATA_OP_MULTI_GET:
        rep.n_values = 0;
        break;
    case STRATA_OP_SCAN:
        rep.entries = &entry;
        rep.n_entries = 1;
        rep.next_cursor = req.scan_end; /* lets a test check which field went where */
        break;
    case STRATA_OP_STATUS:
        rep.role = "fake";
        rep.term = 3;
        rep.last_seq = 7;
        rep.durable_seq = 6;
        break;
    case STRATA_OP_STATS:
    case STRATA_OP_CONTROL:
        if (req.op == STRATA_OP_CONTROL)
            pair = (strata_pair_t){.name = req.verb, .value = req.n_args ? req.args[0] : ""};
        rep.pairs = &pair;
        rep.n_pairs = 1;
        break;
    default:
        rep.seq = args->seq_base + req.request_id * 10;
        break;
    }
    if (args->not_master && s_refused_op(req.op) && args->refuse != 0) {
        if (args->refuse > 0)
            args->refuse--;
        rep = (strata_reply_t){
            .request_id = req.request_id, .status = STRATA_ENOTMASTER, .message = args->not_master};
    }
    if (strcmp(key, "fail") == 0)
        rep = (strata_reply_t){.request_id = req.request_id,
                               .status = STRATA_EINVAL,
                               .message = "put.key: refused by the fake"};
    if (strcmp(key, "version") == 0)
        rep.version = 7;

    if (strcmp(key, "garbage") == 0) {
        zmsg_t *out = s_envelope(routing);
        zmsg_addstr(out, "\xff\xff not a reply");
        zmsg_send(&out, router);
    } else if (strncmp(key, "slow", 4) == 0) {
        s_send_reply(router, routing, &rep, false, held);
    } else {
        if (strcmp(key, "release") == 0) {
            zmsg_t *late;
            while ((late = zlist_pop(held)))
                zmsg_send(&late, router);
        }
        s_send_reply(router, routing, &rep, strcmp(key, "delim") == 0, NULL);
        if (strcmp(key, "dup") == 0)
            s_send_reply(router, routing, &rep, false, NULL);
    }
    strata_request_clear(&req);
    zframe_destroy(&routing);
}

static void s_fake_server(zsock_t *pipe, void *arg)
{
    fake_args_t *args = arg;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_rcvhwm(router, 0);
    zsock_set_sndhwm(router, 0);
    args->port = zsock_bind(router, "tcp://127.0.0.1:*");
    zlist_t *held = zlist_new();
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    zsock_signal(pipe, 0);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == router) {
            /* One request per frame after the routing id (the client
             * sends what it queued as one message): each is answered on
             * its own, as [routing, request]. */
            zmsg_t *msg = zmsg_recv(router);
            args->messages++;
            zframe_t *routing = zmsg_pop(msg);
            zframe_t *payload;
            while ((payload = zmsg_pop(msg))) {
                zmsg_t *one = s_envelope(routing);
                zmsg_append(one, &payload);
                s_answer(args, router, held, one);
                zmsg_destroy(&one);
            }
            zframe_destroy(&routing);
            zmsg_destroy(&msg);
            continue;
        }
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool term = !command || streq(command, "$TERM");
            free(command);
            if (term)
                break;
            continue;
        }
        break;
    }
    zmsg_t *msg;
    while ((msg = zlist_pop(held)))
        zmsg_destroy(&msg);
    zlist_destroy(&held);
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

typedef struct {
    fake_args_t args;
    zactor_t *actor;
    char endpoint[64];
} fake_t;

static void s_fake_start(fake_t *fake)
{
    memset(fake, 0, sizeof *fake);
    fake->actor = zactor_new(s_fake_server, &fake->args);
    ck_assert_ptr_nonnull(fake->actor);
    ck_assert_int_gt(fake->args.port, 0);
    snprintf(fake->endpoint, sizeof fake->endpoint, "tcp://127.0.0.1:%d", fake->args.port);
}

/* A fake cluster node: not the master when not_master is given (for the
 * first `refuse` writes; -1 all), its seqs offset by seq_base. */
static void s_fake_node_start(fake_t *fake, const char *not_master, int refuse, uint64_t seq_base)
{
    memset(fake, 0, sizeof *fake);
    fake->args.not_master = not_master;
    fake->args.refuse = refuse;
    fake->args.seq_base = seq_base;
    fake->actor = zactor_new(s_fake_server, &fake->args);
    ck_assert_ptr_nonnull(fake->actor);
    ck_assert_int_gt(fake->args.port, 0);
    snprintf(fake->endpoint, sizeof fake->endpoint, "tcp://127.0.0.1:%d", fake->args.port);
}

static strata_client_t *s_connect(const char *endpoint, int timeout_ms)
{
    strata_client_options_t opts = {.endpoint = endpoint, .timeout_ms = timeout_ms};
    strata_client_t *client = NULL;
    strata_error_t err;
    int rc = strata_client_connect(&opts, &client, &err);
    ck_assert_msg(rc == 0, "connect: %s", err.msg);
    return client;
}

static strata_request_t s_put_request(const char *key)
{
    return (strata_request_t){.op = STRATA_OP_PUT,
                              .key = {.data = (const uint8_t *)key, .len = strlen(key)},
                              .value = {.data = (const uint8_t *)"v", .len = 1}};
}

/* ---- tests ----------------------------------------------------------------- */

START_TEST(blocking_calls_return_their_reply_bodies)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    uint64_t seq = 0;

    /* Ids start at 1 and the fake answers seq = id * 10. */
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_uint_eq(seq, 10);
    ck_assert_int_eq(strata_client_delete(client, STRATA_DURABILITY_ASYNC, "k", 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, 20);
    strata_batch_op_t ops[] = {{.kind = STRATA_BATCH_PUT,
                                .key = {(const uint8_t *)"a", 1},
                                .value = {(const uint8_t *)"1", 1}}};
    ck_assert_int_eq(strata_client_batch(client, STRATA_DURABILITY_SYNC, ops, 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, 30);
    ck_assert_int_eq(
        strata_client_record_put(client, STRATA_DURABILITY_SYNC, "\x80", 1, NULL, &err), 0);

    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(client, "hello", 5, &value, &len, &err), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(value, "hello", 5);
    free(value);
    ck_assert_int_eq(strata_client_get(client, "missing", 7, &value, &len, &err), STRATA_ENOTFOUND);
    ck_assert_ptr_null(value);

    strata_reply_t reply;
    ck_assert_int_eq(strata_client_status(client, &reply, &err), 0);
    ck_assert_str_eq(reply.role, "fake");
    ck_assert_uint_eq(reply.term, 3);
    ck_assert_uint_eq(reply.last_seq, 7);
    ck_assert_uint_eq(reply.durable_seq, 6);
    strata_reply_clear(&reply);

    ck_assert_int_eq(strata_client_stats(client, &reply, &err), 0);
    ck_assert_uint_eq(reply.n_pairs, 1);
    ck_assert_str_eq(reply.pairs[0].name, "requests");
    strata_reply_clear(&reply);

    const char *args[] = {"now"};
    ck_assert_int_eq(strata_client_control(client, "compact", args, 1, &reply, &err), 0);
    ck_assert_str_eq(reply.pairs[0].name, "compact");
    ck_assert_str_eq(reply.pairs[0].value, "now");
    strata_reply_clear(&reply);

    strata_bytes_t start = {(const uint8_t *)"s", 1}, end = {(const uint8_t *)"e", 1};
    strata_bytes_t cursor = {(const uint8_t *)"c", 1};
    ck_assert_int_eq(strata_client_scan(client, start, end, 10, cursor, &reply, &err), 0);
    ck_assert_uint_eq(reply.n_entries, 1);
    ck_assert_mem_eq(reply.entries[0].key.data, "s", 1);
    ck_assert_mem_eq(reply.entries[0].value.data, "c", 1);
    ck_assert_mem_eq(reply.next_cursor.data, "e", 1);
    strata_reply_clear(&reply);

    /* The fake answers a multi-get with no values: a reply of the wrong
     * shape is an error, not a short array. */
    strata_bytes_t keys[] = {{(const uint8_t *)"a", 1}};
    ck_assert_int_eq(strata_client_multi_get(client, keys, 1, &reply, &err), STRATA_EINVAL);
    strata_reply_clear(&reply);

    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    strata_client_destroy(&client);
    ck_assert_ptr_null(client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(server_error_is_returned_with_its_message)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "fail", 4, "v", 1, NULL, &err),
        STRATA_EINVAL);
    ck_assert_int_eq(err.code, STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "put.key: refused by the fake");
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(timed_out_call_drops_its_late_reply)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 200);
    strata_error_t err;
    uint64_t started = ts_now_ns();
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "slow", 4, "v", 1, &seq, &err),
        STRATA_ETIMEDOUT);
    uint64_t waited_ms = (ts_now_ns() - started) / 1000000;
    ck_assert_uint_ge(waited_ms, 190);
    ck_assert_uint_lt(waited_ms, 3000);
    ck_assert_msg(strstr(err.msg, fake.endpoint) != NULL, "message names the endpoint: %s",
                  err.msg);
    ck_assert_uint_eq(strata_client_in_flight(client), 0);

    /* The fake sends the late reply (seq 10) before this one's (seq 20) on
     * the same connection: the client must skip the first. */
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "release", 7, "v", 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, 20);
    strata_reply_t reply;
    ck_assert_int_eq(strata_client_recv(client, 0, &reply, &err), STRATA_ETIMEDOUT);
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(pipelined_replies_match_their_request_ids_out_of_order)
{
    enum { N = 64 };
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        strata_request_t req = s_put_request("slow");
        ck_assert_int_eq(strata_client_send(client, &req, &ids[i], &err), 0);
        ck_assert_uint_eq(req.request_id, ids[i]);
        ck_assert_uint_eq(ids[i], (uint64_t)i + 1);
    }
    ck_assert_uint_eq(strata_client_in_flight(client), N);

    /* Nothing comes back while the fake holds them all. */
    strata_reply_t reply;
    ck_assert_int_eq(strata_client_recv(client, 20, &reply, &err), STRATA_ETIMEDOUT);
    strata_reply_clear(&reply);

    /* A blocking call overtakes them; the held replies that arrive while it
     * waits are kept for recv. */
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "release", 7, "v", 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, (N + 1) * 10);
    ck_assert_uint_eq(strata_client_in_flight(client), N);

    bool seen[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        int rc = strata_client_recv(client, 5000, &reply, &err);
        ck_assert_msg(rc == 0, "recv %d: %s", i, err.msg);
        ck_assert_int_eq(reply.status, 0);
        ck_assert_uint_ge(reply.request_id, 1);
        ck_assert_uint_le(reply.request_id, N);
        ck_assert(!seen[reply.request_id]);
        seen[reply.request_id] = true;
        ck_assert_uint_eq(reply.seq, reply.request_id * 10);
        strata_reply_clear(&reply);
    }
    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

/* Queued requests stay in the client until a wait needs them gone, then
 * leave together: the fake sees one message per flush, however many
 * requests it carries. */
START_TEST(queued_requests_leave_together)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    strata_reply_t reply;
    uint64_t sum = 0, expected = 0;
    /* 10, left by the recv that has no reply at hand; then 200: the first
     * 128 leave when the queue is full, the rest by an explicit flush. */
    for (int i = 0; i < 10; i++) {
        strata_request_t req = s_put_request("k");
        uint64_t id = 0;
        ck_assert_int_eq(strata_client_queue(client, &req, &id, &err), 0);
        expected += id;
    }
    ck_assert_uint_eq(strata_client_in_flight(client), 10);
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(strata_client_recv(client, 5000, &reply, &err) == 0, "recv %d: %s", i,
                      err.msg);
        sum += reply.request_id;
        strata_reply_clear(&reply);
    }
    for (int i = 0; i < 200; i++) {
        strata_request_t req = s_put_request("k");
        uint64_t id = 0;
        ck_assert_int_eq(strata_client_queue(client, &req, &id, &err), 0);
        expected += id;
    }
    ck_assert_int_eq(strata_client_flush(client, &err), 0);
    ck_assert_int_eq(strata_client_flush(client, &err), 0); /* nothing left: a no-op */
    for (int i = 0; i < 200; i++) {
        ck_assert_msg(strata_client_recv(client, 5000, &reply, &err) == 0, "recv %d: %s", i,
                      err.msg);
        sum += reply.request_id;
        strata_reply_clear(&reply);
    }
    ck_assert_uint_eq(sum, expected);
    /* A blocking call takes what is queued along, ahead of itself. */
    strata_request_t req = s_put_request("k");
    uint64_t queued_id = 0;
    ck_assert_int_eq(strata_client_queue(client, &req, &queued_id, &err), 0);
    uint64_t seq = 0;
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_int_eq(strata_client_recv(client, 5000, &reply, &err), 0);
    ck_assert_uint_eq(reply.request_id, queued_id);
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
    ck_assert_uint_eq(fake.args.messages, 4);
}
END_TEST

START_TEST(deep_pipeline_completes)
{
    enum { N = 5000 };
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    for (int i = 0; i < N; i++) {
        strata_request_t req = s_put_request("k");
        ck_assert_int_eq(strata_client_send(client, &req, NULL, &err), 0);
    }
    uint64_t sum = 0;
    strata_reply_t reply;
    for (int i = 0; i < N; i++) {
        int rc = strata_client_recv(client, 5000, &reply, &err);
        ck_assert_msg(rc == 0, "recv %d: %s", i, err.msg);
        sum += reply.request_id;
        strata_reply_clear(&reply);
    }
    ck_assert_uint_eq(sum, (uint64_t)N * (N + 1) / 2);
    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(duplicate_replies_are_dropped)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "dup", 3, "v", 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, 10);
    /* The duplicate arrives before this reply and must not be taken for it. */
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_uint_eq(seq, 20);

    strata_request_t req = s_put_request("dup");
    ck_assert_int_eq(strata_client_send(client, &req, NULL, &err), 0);
    strata_reply_t reply;
    ck_assert_int_eq(strata_client_recv(client, 5000, &reply, &err), 0);
    ck_assert_uint_eq(reply.request_id, 3);
    strata_reply_clear(&reply);
    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    ck_assert_int_eq(strata_client_recv(client, 0, &reply, &err), STRATA_ETIMEDOUT);
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(broken_replies_are_einval_and_delimiters_are_skipped)
{
    fake_t fake;
    s_fake_start(&fake);
    strata_client_t *client = s_connect(fake.endpoint, 5000);
    strata_error_t err;
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "garbage", 7, "v", 1, &seq, &err),
        STRATA_EINVAL);
    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "version", 7, "v", 1, &seq, &err),
        STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "version") != NULL, "names the version: %s", err.msg);
    ck_assert_int_eq(
        strata_client_put(client, STRATA_DURABILITY_SYNC, "delim", 5, "v", 1, &seq, &err), 0);
    ck_assert_uint_eq(seq, 30);

    strata_request_t req = s_put_request("garbage");
    ck_assert_int_eq(strata_client_send(client, &req, NULL, &err), 0);
    strata_reply_t reply;
    ck_assert_int_eq(strata_client_recv(client, 5000, &reply, &err), STRATA_EINVAL);
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    zactor_destroy(&fake.actor);
}
END_TEST

START_TEST(absent_server_times_out_and_bad_options_are_einval)
{
    /* A port held by a socket that never answers: freeing it instead would
     * let another test's server take it meanwhile. */
    zsock_t *placeholder = zsock_new(ZMQ_DEALER);
    int port = zsock_bind(placeholder, "tcp://127.0.0.1:*");
    ck_assert_int_gt(port, 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    strata_client_t *client = s_connect(endpoint, 100);
    strata_reply_t reply;
    strata_error_t err;
    ck_assert_int_eq(strata_client_status(client, &reply, &err), STRATA_ETIMEDOUT);
    strata_reply_clear(&reply);
    ck_assert_uint_eq(strata_client_in_flight(client), 0);
    strata_client_destroy(&client);
    zsock_destroy(&placeholder);

    strata_client_options_t bad_endpoint = {.endpoint = "nonsense"};
    ck_assert_int_eq(strata_client_connect(&bad_endpoint, &client, &err), STRATA_EINVAL);
    ck_assert_ptr_null(client);
    ck_assert_msg(strstr(err.msg, "nonsense") != NULL, "names the endpoint: %s", err.msg);
    strata_client_options_t bad_timeout = {.timeout_ms = -5};
    ck_assert_int_eq(strata_client_connect(&bad_timeout, &client, &err), STRATA_EINVAL);
}
END_TEST

START_TEST(in_flight_is_capped)
{
    /* Nobody listens, so every request stays in flight. */
    strata_client_t *client = s_connect("tcp://127.0.0.1:9", 200);
    strata_error_t err;
    int rc = 0;
    uint64_t sent = 0;
    while (rc == 0 && sent <= STRATA_CLIENT_MAX_IN_FLIGHT) {
        strata_request_t req = {.op = STRATA_OP_STATUS};
        if ((rc = strata_client_send(client, &req, NULL, &err)) == 0)
            sent++;
    }
    ck_assert_msg(rc == STRATA_ETOOBIG, "rc %d after %llu: %s", rc, (unsigned long long)sent,
                  err.msg);
    ck_assert_uint_eq(sent, STRATA_CLIENT_MAX_IN_FLIGHT);
    ck_assert_uint_eq(strata_client_in_flight(client), STRATA_CLIENT_MAX_IN_FLIGHT);
    strata_client_destroy(&client);
}
END_TEST

/* ---- failover ------------------------------------------------------------- */

static strata_client_t *s_connect_list(const char *const *endpoints, size_t n, int timeout_ms)
{
    strata_client_options_t opts = {
        .endpoints = endpoints, .n_endpoints = n, .timeout_ms = timeout_ms};
    strata_client_t *client = NULL;
    strata_error_t err;
    int rc = strata_client_connect(&opts, &client, &err);
    ck_assert_msg(rc == 0, "connect: %s", err.msg);
    return client;
}

#define MASTER_SEQS 1000000u

START_TEST(failover_follows_the_masters_hint_outside_the_list)
{
    fake_t master, slave;
    s_fake_node_start(&master, NULL, 0, MASTER_SEQS);
    char hint[160];
    snprintf(hint, sizeof hint, "not master: the master is node 2 at %s (term 5)", master.endpoint);
    s_fake_node_start(&slave, hint, -1, 0);

    const char *const list[] = {slave.endpoint};
    strata_client_t *client = s_connect_list(list, 1, 5000);
    ck_assert_str_eq(strata_client_endpoint(client), slave.endpoint);
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err);
    ck_assert_msg(rc == 0, "put: %s", err.msg);
    /* The slave saw id 1; the master answered the resend, id 2. */
    ck_assert_uint_eq(seq, MASTER_SEQS + 20);
    ck_assert_str_eq(strata_client_endpoint(client), master.endpoint);

    /* The client stays with the master: reads and writes go there. */
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_uint_eq(seq, MASTER_SEQS + 30);
    strata_reply_t reply;
    ck_assert_int_eq(
        strata_client_control(client, "transfer", (const char *[]){"3"}, 1, &reply, &err), 0);
    ck_assert_str_eq(reply.pairs[0].name, "transfer");
    strata_reply_clear(&reply);
    ck_assert_str_eq(strata_client_endpoint(client), master.endpoint);
    strata_client_destroy(&client);
    zactor_destroy(&slave.actor);
    zactor_destroy(&master.actor);
}
END_TEST

START_TEST(failover_without_a_hint_tries_the_next_entry)
{
    fake_t lost, master;
    s_fake_node_start(&lost, "not master: no master is known in term 4", -1, 0);
    s_fake_node_start(&master, NULL, 0, MASTER_SEQS);
    const char *const list[] = {lost.endpoint, master.endpoint};
    strata_client_t *client = s_connect_list(list, 2, 5000);
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_delete(client, STRATA_DURABILITY_SYNC, "k", 1, &seq, &err);
    ck_assert_msg(rc == 0, "delete: %s", err.msg);
    ck_assert_uint_eq(seq, MASTER_SEQS + 20);
    ck_assert_str_eq(strata_client_endpoint(client), master.endpoint);
    strata_client_destroy(&client);
    zactor_destroy(&lost.actor);
    zactor_destroy(&master.actor);
}
END_TEST

START_TEST(a_new_master_is_waited_for_where_it_is)
{
    /* Three "not master yet" answers, then writes: the client must keep
     * asking the same node, not wander off to the other one. */
    fake_t fresh, other;
    s_fake_node_start(&fresh,
                      "not master yet: elected in term 7, this node has not committed its "
                      "first entry; retry in a moment",
                      3, MASTER_SEQS);
    s_fake_node_start(&other, "not master: no master is known in term 7", -1, 0);
    const char *const list[] = {fresh.endpoint, other.endpoint};
    strata_client_t *client = s_connect_list(list, 2, 5000);
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err);
    ck_assert_msg(rc == 0, "put: %s", err.msg);
    ck_assert_uint_eq(seq, MASTER_SEQS + 40);
    ck_assert_str_eq(strata_client_endpoint(client), fresh.endpoint);
    strata_client_destroy(&client);
    zactor_destroy(&fresh.actor);
    zactor_destroy(&other.actor);
}
END_TEST

START_TEST(an_outcome_unknown_write_is_not_sent_again)
{
    static const char lost_write[] = "not master: this node stopped being master in term 3 "
                                     "before seq 9 committed; the write may or may not commit "
                                     "(outcome unknown)";
    fake_t deposed, master;
    s_fake_node_start(&deposed, lost_write, -1, 0);
    s_fake_node_start(&master, NULL, 0, MASTER_SEQS);
    const char *const list[] = {deposed.endpoint, master.endpoint};
    strata_client_t *client = s_connect_list(list, 2, 5000);
    strata_error_t err;
    uint64_t seq = 0;
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     STRATA_ENOTMASTER);
    ck_assert_str_eq(err.msg, lost_write);
    ck_assert_str_eq(strata_client_endpoint(client), deposed.endpoint);
    /* The next call starts on the next node. */
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_uint_eq(seq, MASTER_SEQS + 20);
    ck_assert_str_eq(strata_client_endpoint(client), master.endpoint);
    strata_client_destroy(&client);
    zactor_destroy(&deposed.actor);
    zactor_destroy(&master.actor);
}
END_TEST

START_TEST(a_write_without_reply_is_reported_as_unknown_and_the_next_call_moves_on)
{
    zsock_t *placeholder = zsock_new(ZMQ_DEALER); /* holds a port nobody answers on */
    int port = zsock_bind(placeholder, "tcp://127.0.0.1:*");
    ck_assert_int_gt(port, 0);
    char silent[64];
    snprintf(silent, sizeof silent, "tcp://127.0.0.1:%d", port);
    fake_t master;
    s_fake_node_start(&master, NULL, 0, MASTER_SEQS);
    const char *const list[] = {silent, master.endpoint};
    strata_client_t *client = s_connect_list(list, 2, 300);
    strata_error_t err;
    uint64_t seq = 0;
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     STRATA_ETIMEDOUT);
    ck_assert_msg(strstr(err.msg, silent) && strstr(err.msg, "outcome is unknown"), "%s", err.msg);
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err),
                     0);
    ck_assert_str_eq(strata_client_endpoint(client), master.endpoint);

    /* A read that times out says nothing of an outcome. */
    const char *const only_silent[] = {silent};
    strata_client_t *reader = s_connect_list(only_silent, 1, 300);
    strata_reply_t reply;
    ck_assert_int_eq(strata_client_status(reader, &reply, &err), STRATA_ETIMEDOUT);
    strata_reply_clear(&reply);
    ck_assert_msg(strstr(err.msg, "outcome") == NULL, "%s", err.msg);
    strata_client_destroy(&reader);
    strata_client_destroy(&client);
    zactor_destroy(&master.actor);
    zsock_destroy(&placeholder);
}
END_TEST

START_TEST(no_master_anywhere_gives_up_at_the_timeout)
{
    fake_t a, b;
    s_fake_node_start(&a, "not master: no master is known in term 2", -1, 0);
    s_fake_node_start(&b, "not master: no master is known in term 2", -1, 0);
    const char *const list[] = {a.endpoint, b.endpoint};
    strata_client_t *client = s_connect_list(list, 2, 400);
    strata_error_t err;
    uint64_t started = ts_now_ns();
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ENOTMASTER);
    uint64_t waited_ms = (ts_now_ns() - started) / 1000000;
    ck_assert_uint_lt(waited_ms, 3000);
    ck_assert_msg(strstr(err.msg, "no master is known in term 2") && strstr(err.msg, " tries in "),
                  "%s", err.msg);
    strata_client_destroy(&client);
    zactor_destroy(&a.actor);
    zactor_destroy(&b.actor);
}
END_TEST

START_TEST(a_single_endpoint_returns_not_master_as_it_came)
{
    fake_t master, slave;
    s_fake_node_start(&master, NULL, 0, MASTER_SEQS);
    char hint[160];
    snprintf(hint, sizeof hint, "not master: the master is node 2 at %s (term 5)", master.endpoint);
    s_fake_node_start(&slave, hint, -1, 0);
    strata_client_t *client = s_connect(slave.endpoint, 5000);
    strata_error_t err;
    ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ENOTMASTER);
    ck_assert_str_eq(err.msg, hint);
    ck_assert_str_eq(strata_client_endpoint(client), slave.endpoint);
    strata_client_destroy(&client);

    const char *const bad[] = {slave.endpoint, "nonsense"};
    strata_client_options_t opts = {.endpoints = bad, .n_endpoints = 2};
    ck_assert_int_eq(strata_client_connect(&opts, &client, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "nonsense") != NULL, "names the endpoint: %s", err.msg);
    const char *const empty[] = {""};
    opts = (strata_client_options_t){.endpoints = empty, .n_endpoints = 1};
    ck_assert_int_eq(strata_client_connect(&opts, &client, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "endpoints[0]") != NULL, "names the entry: %s", err.msg);
    zactor_destroy(&slave.actor);
    zactor_destroy(&master.actor);
}
END_TEST

/* czmq's first initialisation is not thread-safe; the client makes it so.
 * Each Check test runs in a fresh process, so this is the first use here. */
static pthread_barrier_t s_barrier;

static void *s_connect_at_once(void *arg)
{
    pthread_barrier_wait(&s_barrier);
    strata_client_t *client = s_connect(arg, 100);
    strata_client_destroy(&client);
    return NULL;
}

START_TEST(clients_may_be_created_from_many_threads_at_once)
{
    enum { THREADS = 16 };
    pthread_t threads[THREADS];
    ck_assert_int_eq(pthread_barrier_init(&s_barrier, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, s_connect_at_once, "tcp://127.0.0.1:9"),
                         0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&s_barrier);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("client");
    tcase_add_test(tc, blocking_calls_return_their_reply_bodies);
    tcase_add_test(tc, server_error_is_returned_with_its_message);
    tcase_add_test(tc, timed_out_call_drops_its_late_reply);
    tcase_add_test(tc, pipelined_replies_match_their_request_ids_out_of_order);
    tcase_add_test(tc, deep_pipeline_completes);
    tcase_add_test(tc, queued_requests_leave_together);
    tcase_add_test(tc, duplicate_replies_are_dropped);
    tcase_add_test(tc, broken_replies_are_einval_and_delimiters_are_skipped);
    tcase_add_test(tc, absent_server_times_out_and_bad_options_are_einval);
    tcase_add_test(tc, in_flight_is_capped);
    tcase_add_test(tc, clients_may_be_created_from_many_threads_at_once);
    tcase_add_test(tc, failover_follows_the_masters_hint_outside_the_list);
    tcase_add_test(tc, failover_without_a_hint_tries_the_next_entry);
    tcase_add_test(tc, a_new_master_is_waited_for_where_it_is);
    tcase_add_test(tc, an_outcome_unknown_write_is_not_sent_again);
    tcase_add_test(tc, a_write_without_reply_is_reported_as_unknown_and_the_next_call_moves_on);
    tcase_add_test(tc, no_master_anywhere_gives_up_at_the_timeout);
    tcase_add_test(tc, a_single_endpoint_returns_not_master_as_it_came);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
