/* strata-writer as a real process on loopback, driven with the client
 * library and with raw ZMQ frames: every verb, typed-record validation,
 * malformed and oversize frames, many clients in flight, metrics, graceful
 * shutdown, and kill -9 under load with every acknowledged write present
 * after the restart. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <czmq.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node.h"
#include <msgpack.h>

#include "strata/client.h"
#include "strata/record.h"
#include "support.h"

static strata_client_t *connect_to(const ts_node_t *node, int timeout_ms)
{
    strata_client_options_t opts = {.endpoint = node->endpoint, .timeout_ms = timeout_ms};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &c, &err) == 0, "connect: %s", err.msg);
    return c;
}

static void put_ok(strata_client_t *c, strata_durability_t d, const char *key, const char *value,
                   uint64_t *seq)
{
    strata_error_t err;
    int rc = strata_client_put(c, d, key, strlen(key), value, strlen(value), seq, &err);
    ck_assert_msg(rc == 0, "put %s: %d %s", key, rc, err.msg);
}

static void assert_value(strata_client_t *c, const char *key, const char *want)
{
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_client_get(c, key, strlen(key), &value, &len, &err);
    if (!want) {
        ck_assert_msg(rc == STRATA_ENOTFOUND, "get %s: want not found, got %d", key, rc);
        return;
    }
    ck_assert_msg(rc == 0, "get %s: %d %s", key, rc, err.msg);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(value, want, len) == 0);
    free(value);
}

static const char *pair_value(const strata_reply_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_pairs; i++)
        if (!strcmp(r->pairs[i].name, name))
            return r->pairs[i].value;
    return NULL;
}

/* GET over a plain socket: enough HTTP for a test. */
static char *http_get(const char *url)
{
    unsigned port = 0;
    char path[128];
    ck_assert_int_eq(sscanf(url, "http://127.0.0.1:%u%127s", &port, path), 2);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    return buf;
}

START_TEST(every_verb_answers_over_tcp)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    strata_client_t *c = connect_to(&node, 5000);
    strata_error_t err;

    uint64_t s1 = 0, s2 = 0, s3 = 0;
    put_ok(c, STRATA_SYNC, "alpha", "1", &s1);
    put_ok(c, STRATA_ASYNC, "beta", "2", &s2);
    ck_assert_uint_gt(s2, s1);
    assert_value(c, "alpha", "1");
    assert_value(c, "beta", "2");
    assert_value(c, "gamma", NULL);
    ck_assert_int_eq(strata_client_delete(c, STRATA_SYNC, "alpha", 5, &s3, &err), 0);
    ck_assert_uint_gt(s3, s2);
    assert_value(c, "alpha", NULL);

    strata_batch_op_t ops[3] = {
        {STRATA_BATCH_PUT, {(const uint8_t *)"b1", 2}, {(const uint8_t *)"x", 1}},
        {STRATA_BATCH_PUT, {(const uint8_t *)"b2", 2}, {(const uint8_t *)"y", 1}},
        {STRATA_BATCH_DELETE, {(const uint8_t *)"beta", 4}, {NULL, 0}},
    };
    uint64_t bseq = 0;
    ck_assert_msg(strata_client_batch(c, STRATA_SYNC, ops, 3, &bseq, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(bseq, s3 + 3);
    assert_value(c, "b1", "x");
    assert_value(c, "beta", NULL);
    /* An empty key is refused with the field named. */
    ck_assert_int_eq(strata_client_put(c, STRATA_SYNC, "", 0, "v", 1, NULL, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "put.key"));

    strata_bytes_t keys[3] = {
        {(const uint8_t *)"b2", 2}, {(const uint8_t *)"nope", 4}, {(const uint8_t *)"b1", 2}};
    strata_reply_t r;
    ck_assert_int_eq(strata_client_multi_get(c, keys, 3, &r, &err), 0);
    ck_assert_uint_eq(r.n_values, 3);
    ck_assert(r.values[0].found && r.values[0].value.len == 1 && r.values[0].value.data[0] == 'y');
    ck_assert(!r.values[1].found);
    ck_assert(r.values[2].found && r.values[2].value.data[0] == 'x');
    strata_reply_clear(&r);

    /* 250 keys paged 100 at a time: every key once, in order. */
    for (int i = 0; i < 250; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "s/%04d", i);
        snprintf(v, sizeof v, "v%d", i);
        put_ok(c, STRATA_ASYNC, k, v, NULL);
    }
    strata_bytes_t start = {(const uint8_t *)"s/", 2}, end = {(const uint8_t *)"s0", 2};
    uint8_t cursor[64];
    strata_bytes_t cur = {NULL, 0};
    int seen = 0, pages = 0;
    do {
        ck_assert_msg(strata_client_scan(c, start, end, 100, cur, &r, &err) == 0, "%s", err.msg);
        pages++;
        for (size_t i = 0; i < r.n_entries; i++, seen++) {
            char k[16];
            snprintf(k, sizeof k, "s/%04d", seen);
            ck_assert_uint_eq(r.entries[i].key.len, strlen(k));
            ck_assert(memcmp(r.entries[i].key.data, k, strlen(k)) == 0);
        }
        ck_assert_uint_le(r.next_cursor.len, sizeof cursor);
        if (r.next_cursor.len)
            memcpy(cursor, r.next_cursor.data, r.next_cursor.len);
        cur = (strata_bytes_t){cursor, r.next_cursor.len};
        strata_reply_clear(&r);
    } while (cur.len && pages < 10);
    ck_assert_int_eq(seen, 250);
    ck_assert_int_eq(pages, 3);

    ck_assert_int_eq(strata_client_status(c, &r, &err), 0);
    ck_assert_str_eq(r.role, "standalone");
    ck_assert_uint_ge(r.last_seq, bseq + 250);
    ck_assert_uint_ge(r.durable_seq, bseq); /* the sync batch was durable before its reply */
    strata_reply_clear(&r);

    ck_assert_int_eq(strata_client_stats(c, &r, &err), 0);
    ck_assert_ptr_nonnull(pair_value(&r, "writes_total"));
    ck_assert_uint_ge(strtoull(pair_value(&r, "writes_total"), NULL, 10), 254);
    ck_assert_uint_ge(strtoull(pair_value(&r, "syncs_total"), NULL, 10), 1);
    strata_reply_clear(&r);

    ck_assert_int_eq(strata_client_control(c, "ping", NULL, 0, &r, &err), 0);
    ck_assert_str_eq(pair_value(&r, "pong"), "1");
    strata_reply_clear(&r);
    ck_assert_int_eq(strata_client_control(c, "flush", NULL, 0, &r, &err), 0);
    strata_reply_clear(&r);
    ck_assert_int_eq(strata_client_control(c, "compact", NULL, 0, &r, &err), 0);
    strata_reply_clear(&r);
    assert_value(c, "s/0042", "v42"); /* read back from SSTables now */
    ck_assert_int_eq(strata_client_control(c, "bogus", NULL, 0, &r, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bogus"));
    strata_reply_clear(&r);
    ck_assert_int_eq(strata_client_control(c, "terminate", NULL, 0, &r, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "control endpoint"));
    strata_reply_clear(&r);
    const char *arg = "x";
    ck_assert_int_eq(strata_client_control(c, "ping", &arg, 1, &r, &err), STRATA_EINVAL);
    strata_reply_clear(&r);

    char *metrics = http_get(node.metrics);
    ck_assert_msg(strstr(metrics, "200 OK") != NULL, "%s", metrics);
    ck_assert_ptr_nonnull(strstr(metrics, "# TYPE strata_writer_writes_total counter"));
    ck_assert_ptr_nonnull(
        strstr(metrics, "strata_wal_sync_seconds_bucket{process=\"writer\",le=\"+Inf\"}"));
    ck_assert_ptr_nonnull(strstr(metrics, "strata_level_files{process=\"writer\",level=\"0\"}"));
    free(metrics);
    char ready_url[300];
    snprintf(ready_url, sizeof ready_url, "%.*s/readyz",
             (int)(strstr(node.metrics, "/metrics") - node.metrics), node.metrics);
    char *ready = http_get(ready_url);
    ck_assert_ptr_nonnull(strstr(ready, "200 OK"));
    free(ready);

    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    char *endpoints = ts_path(data, "writer.endpoints");
    ck_assert_int_ne(access(endpoints, F_OK), 0); /* removed at a clean stop */
    free(endpoints);

    /* Everything written comes back after a restart. */
    ts_node_start(&node, data, NULL);
    c = connect_to(&node, 5000);
    assert_value(c, "b2", "y");
    assert_value(c, "s/0249", "v249");
    assert_value(c, "alpha", NULL);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

START_TEST(typed_records_are_validated_and_keyed_by_the_writer)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    strata_client_t *c = connect_to(&node, 5000);
    strata_error_t err;

    const char *fields[] = {"order_id=A1",
                            "user_id=u7",
                            "instrument_id=BTC-USD",
                            "direction=buy",
                            "offset=open",
                            "price=101.5",
                            "volume=2",
                            "timestamp_ns=1700000000000000000"};
    strata_record_t rec;
    memset(&rec, 0, sizeof rec);
    ck_assert_msg(strata_record_from_fields("OrderInsert", fields, 8, &rec, &err) == 0, "%s",
                  err.msg);
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_record_encode(&rec, &buf, &len, &err), 0);
    uint64_t seq = 0;
    ck_assert_msg(strata_client_record_put(c, STRATA_SYNC, buf, len, &seq, &err) == 0, "%s",
                  err.msg);
    ck_assert_uint_gt(seq, 0);
    void *value = NULL;
    size_t vlen = 0;
    ck_assert_int_eq(strata_client_get(c, "o/A1", 4, &value, &vlen, &err), 0);
    ck_assert_uint_eq(vlen, len);
    ck_assert(memcmp(value, buf, len) == 0);
    free(value);
    free(buf);

    /* A bad field: encode bypasses validation only through raw msgpack, so
     * build the bytes by hand: price -1. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *names[] = {"type",      "v",      "order_id", "user_id", "instrument_id",
                           "direction", "offset", "price",    "volume",  "timestamp_ns"};
    msgpack_pack_map(&pk, 10);
    for (int i = 0; i < 10; i++) {
        msgpack_pack_str(&pk, strlen(names[i]));
        msgpack_pack_str_body(&pk, names[i], strlen(names[i]));
        const char *s = NULL;
        switch (i) {
        case 0:
            s = "OrderInsert";
            break;
        case 1:
            msgpack_pack_uint32(&pk, 1);
            break;
        case 2:
            s = "A2";
            break;
        case 3:
            s = "u7";
            break;
        case 4:
            s = "BTC-USD";
            break;
        case 5:
            s = "buy";
            break;
        case 6:
            s = "open";
            break;
        case 7:
            msgpack_pack_double(&pk, -1.0);
            break;
        case 8:
            msgpack_pack_double(&pk, 1.0);
            break;
        case 9:
            msgpack_pack_uint64(&pk, 1);
            break;
        }
        if (s) {
            msgpack_pack_str(&pk, strlen(s));
            msgpack_pack_str_body(&pk, s, strlen(s));
        }
    }
    int rc = strata_client_record_put(c, STRATA_SYNC, sb.data, sb.size, NULL, &err);
    ck_assert_int_eq(rc, STRATA_EINVAL);
    ck_assert_msg(strncmp(err.msg, "OrderInsert.price: ", 19) == 0, "message: %s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(strata_client_get(c, "o/A2", 4, &value, &vlen, &err), STRATA_ENOTFOUND);

    /* Not msgpack at all. */
    rc = strata_client_record_put(c, STRATA_SYNC, "\xc1\xc1", 2, NULL, &err);
    ck_assert_int_eq(rc, STRATA_ECORRUPT);
    ck_assert_str_eq(err.msg, "record: malformed msgpack (2 bytes)");

    strata_record_clear(&rec);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* Sends frames on a raw DEALER and returns the decoded reply. */
static int raw_call(zsock_t *s, zmsg_t *msg, strata_reply_t *r)
{
    ck_assert_int_eq(zmsg_send(&msg, s), 0);
    zmsg_t *in = zmsg_recv(s);
    if (!in)
        return -1;
    ck_assert_uint_eq(zmsg_size(in), 1);
    zframe_t *f = zmsg_first(in);
    int rc = strata_reply_decode(zframe_data(f), zframe_size(f), r, NULL);
    zmsg_destroy(&in);
    return rc;
}

START_TEST(malformed_and_oversize_frames_get_errors_not_crashes)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    zsock_t *s = zsock_new_dealer(node.endpoint);
    zsock_set_rcvtimeo(s, 5000);
    strata_reply_t r;

    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, "this is not protobuf \xff\xff\xff");
    ck_assert_int_eq(raw_call(s, m, &r), 0);
    ck_assert_int_eq(r.status, STRATA_EINVAL);
    ck_assert_uint_eq(r.request_id, 0);
    ck_assert_ptr_nonnull(strstr(r.message, "request"));
    strata_reply_clear(&r);

    /* A well-formed request of a version we do not speak: EVERSION, id kept. */
    strata_request_t req = {.version = 7, .request_id = 4242, .op = STRATA_OP_STATUS};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(strata_request_encode(&req, &buf, &len, NULL), 0);
    m = zmsg_new();
    zmsg_addmem(m, buf, len);
    free(buf);
    ck_assert_int_eq(raw_call(s, m, &r), 0);
    ck_assert_int_eq(r.status, STRATA_EVERSION);
    ck_assert_uint_eq(r.request_id, 4242);
    strata_reply_clear(&r);

    /* REQ-style envelope (empty delimiter) is accepted. */
    req = (strata_request_t){.request_id = 5, .op = STRATA_OP_STATUS};
    ck_assert_int_eq(strata_request_encode(&req, &buf, &len, NULL), 0);
    m = zmsg_new();
    zmsg_addmem(m, NULL, 0);
    zmsg_addmem(m, buf, len);
    free(buf);
    ck_assert_int_eq(zmsg_send(&m, s), 0);
    zmsg_t *in = zmsg_recv(s);
    ck_assert_ptr_nonnull(in);
    ck_assert_uint_eq(zmsg_size(in), 2); /* delimiter echoed */
    zmsg_destroy(&in);

    /* Over the protocol cap but under the socket's: ETOOBIG reply. */
    size_t big = STRATA_PROTO_MAX_MESSAGE + 1024;
    uint8_t *junk = calloc(1, big);
    m = zmsg_new();
    zmsg_addmem(m, junk, big);
    ck_assert_int_eq(raw_call(s, m, &r), 0);
    ck_assert_int_eq(r.status, STRATA_ETOOBIG);
    strata_reply_clear(&r);
    free(junk);

    /* Over ZMQ_MAXMSGSIZE: libzmq drops that connection; the writer lives on
     * and serves everyone else. */
    zsock_t *hog = zsock_new_dealer(node.endpoint);
    size_t huge = STRATA_PROTO_MAX_MESSAGE * 2;
    junk = calloc(1, huge);
    m = zmsg_new();
    zmsg_addmem(m, junk, huge);
    zmsg_send(&m, hog);
    free(junk);
    zsock_set_rcvtimeo(hog, 500);
    in = zmsg_recv(hog);
    ck_assert_ptr_null(in);
    zsock_destroy(&hog);

    strata_client_t *c = connect_to(&node, 5000);
    put_ok(c, STRATA_SYNC, "still", "alive", NULL);
    assert_value(c, "still", "alive");
    strata_client_destroy(&c);
    ck_assert(ts_node_alive(&node));
    zsock_destroy(&s);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* Reads replies on a raw DEALER until n have come, however they are spread
 * over messages; returns how many messages carried them. */
static int raw_replies(zsock_t *s, strata_reply_t *replies, int n)
{
    int got = 0, messages = 0;
    while (got < n) {
        zmsg_t *in = zmsg_recv(s);
        ck_assert_msg(in != NULL, "%d of %d replies, then nothing", got, n);
        messages++;
        for (zframe_t *f = zmsg_first(in); f; f = zmsg_next(in)) {
            ck_assert_int_lt(got, n);
            ck_assert_int_eq(
                strata_reply_decode(zframe_data(f), zframe_size(f), &replies[got], NULL), 0);
            got++;
        }
        zmsg_destroy(&in);
    }
    return messages;
}

static void add_request(zmsg_t *m, const strata_request_t *req)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(strata_request_encode(req, &buf, &len, NULL), 0);
    zmsg_addmem(m, buf, len);
    free(buf);
}

START_TEST(several_requests_in_one_message_are_answered_each)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    zsock_t *s = zsock_new_dealer(node.endpoint);
    zsock_set_rcvtimeo(s, 5000);

    /* Sync and async puts, a get of what the first put wrote, a request
     * that does not parse and a status, in one message: each gets its own
     * reply, matched by request id, whichever messages carry them. */
    enum { N = 6 };
    zmsg_t *m = zmsg_new();
    add_request(m, &(strata_request_t){.request_id = 1,
                                       .op = STRATA_OP_PUT,
                                       .durability = STRATA_DURABILITY_SYNC,
                                       .key = {(const uint8_t *)"a", 1},
                                       .value = {(const uint8_t *)"1", 1}});
    add_request(m, &(strata_request_t){.request_id = 2,
                                       .op = STRATA_OP_PUT,
                                       .durability = STRATA_DURABILITY_ASYNC,
                                       .key = {(const uint8_t *)"b", 1},
                                       .value = {(const uint8_t *)"2", 1}});
    add_request(m, &(strata_request_t){
                       .request_id = 3, .op = STRATA_OP_GET, .key = {(const uint8_t *)"a", 1}});
    zmsg_addstr(m, "\xff not a request");
    add_request(m, &(strata_request_t){.request_id = 5, .op = STRATA_OP_STATUS});
    add_request(m, &(strata_request_t){
                       .request_id = 6, .op = STRATA_OP_GET, .key = {(const uint8_t *)"b", 1}});
    ck_assert_int_eq(zmsg_send(&m, s), 0);
    strata_reply_t r[N];
    int messages = raw_replies(s, r, N);
    ck_assert_int_le(messages, N);
    bool seen[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        uint64_t id = r[i].request_id;
        ck_assert_uint_le(id, N);
        ck_assert(!seen[id]);
        seen[id] = true;
        if (id == 0) { /* the frame that did not parse */
            ck_assert_int_eq(r[i].status, STRATA_EINVAL);
            ck_assert_ptr_nonnull(strstr(r[i].message, "malformed"));
            continue;
        }
        ck_assert_msg(r[i].status == 0, "request %llu: %s", (unsigned long long)id,
                      r[i].message ? r[i].message : "");
        if (id == 3 || id == 6) {
            /* Reads see every write received before them. */
            ck_assert_uint_eq(r[i].n_values, 1);
            ck_assert(r[i].values[0].found);
            ck_assert_mem_eq(r[i].values[0].value.data, id == 3 ? "1" : "2", 1);
        }
    }
    for (int i = 0; i < N; i++)
        strata_reply_clear(&r[i]);

    /* More replies than one message takes: they come in several, whole,
     * and the connection serves on after them. */
    enum { MANY = 600 };
    m = zmsg_new();
    for (int i = 0; i < MANY; i++)
        add_request(m,
                    &(strata_request_t){.request_id = 1000 + (uint64_t)i, .op = STRATA_OP_STATUS});
    ck_assert_int_eq(zmsg_send(&m, s), 0);
    strata_reply_t *lots = calloc(MANY, sizeof *lots);
    ck_assert_int_ge(raw_replies(s, lots, MANY), 2);
    uint64_t id_sum = 0;
    for (int i = 0; i < MANY; i++) {
        ck_assert_int_eq(lots[i].status, 0);
        id_sum += lots[i].request_id;
        strata_reply_clear(&lots[i]);
    }
    free(lots);
    ck_assert_uint_eq(id_sum, (uint64_t)MANY * 1000 + (uint64_t)MANY * (MANY - 1) / 2);

    /* Past the cap of request frames: one error for the whole message,
     * none of it run. */
    m = zmsg_new();
    for (int i = 0; i < 1025; i++)
        add_request(m, &(strata_request_t){.request_id = 100 + (uint64_t)i,
                                           .op = STRATA_OP_PUT,
                                           .key = {(const uint8_t *)"c", 1},
                                           .value = {(const uint8_t *)"3", 1}});
    ck_assert_int_eq(zmsg_send(&m, s), 0);
    ck_assert_int_eq(raw_replies(s, r, 1), 1);
    ck_assert_int_eq(r[0].status, STRATA_EINVAL);
    ck_assert_uint_eq(r[0].request_id, 0);
    ck_assert_str_eq(r[0].message, "request: 1025 request frames in one message, cap 1024");
    strata_reply_clear(&r[0]);
    m = zmsg_new();
    add_request(m, &(strata_request_t){
                       .request_id = 7, .op = STRATA_OP_GET, .key = {(const uint8_t *)"c", 1}});
    ck_assert_int_eq(zmsg_send(&m, s), 0);
    ck_assert_int_eq(raw_replies(s, r, 1), 1);
    ck_assert_int_eq(r[0].status, 0);
    ck_assert(!r[0].values[0].found);
    strata_reply_clear(&r[0]);

    /* A connection that never sends two requests in one message gets one
     * reply per message, however many it has in flight. */
    zsock_t *single = zsock_new_dealer(node.endpoint);
    zsock_set_rcvtimeo(single, 5000);
    for (int i = 0; i < 50; i++) {
        m = zmsg_new();
        add_request(m, &(strata_request_t){.request_id = 1 + (uint64_t)i,
                                           .op = STRATA_OP_PUT,
                                           .durability = STRATA_DURABILITY_SYNC,
                                           .key = {(const uint8_t *)"d", 1},
                                           .value = {(const uint8_t *)"4", 1}});
        ck_assert_int_eq(zmsg_send(&m, single), 0);
    }
    strata_reply_t many[50];
    ck_assert_int_eq(raw_replies(single, many, 50), 50);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(many[i].status, 0);
        strata_reply_clear(&many[i]);
    }
    zsock_destroy(&single);

    zsock_destroy(&s);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

typedef struct {
    const ts_node_t *node;
    int id;
    int n;
    int depth;
    strata_durability_t durability;
    atomic_int *acked_total;
    /* filled by the thread: acked[i] when put i was acknowledged */
    uint8_t *acked;
    uint64_t *seqs; /* the seq each acknowledged put got */
    int errors;
    int stop_after_errors; /* 0: fail on any error */
} loader_t;

static void key_of(char *k, size_t cap, int thread, int i)
{
    snprintf(k, cap, "t%02d/%08d", thread, i);
}

static void value_of(char *v, size_t cap, int thread, int i)
{
    snprintf(v, cap, "value-%d-%d-%0*d", thread, i, 60, i);
}

/* Keeps depth sync puts in flight until n are sent and answered. */
static void *loader(void *arg)
{
    loader_t *l = arg;
    strata_client_t *c = connect_to(l->node, 1500);
    uint64_t *ids = calloc((size_t)l->n, sizeof *ids);
    int next = 0, done = 0;
    while (done < l->n) {
        while (next < l->n && next - done < l->depth) {
            char k[32], v[96];
            key_of(k, sizeof k, l->id, next);
            value_of(v, sizeof v, l->id, next);
            strata_request_t req = {.op = STRATA_OP_PUT,
                                    .durability = l->durability,
                                    .key = {(const uint8_t *)k, strlen(k)},
                                    .value = {(const uint8_t *)v, strlen(v)}};
            if (strata_client_send(c, &req, &ids[next], NULL) != 0)
                break;
            next++;
        }
        strata_reply_t r;
        int rc = strata_client_recv(c, 1500, &r, NULL);
        if (rc != 0) {
            l->errors++;
            break; /* the writer is gone or stuck: stop */
        }
        if (r.status == 0) {
            /* A fresh client numbers its requests consecutively. */
            uint64_t idx = r.request_id - ids[0];
            ck_assert(idx < (uint64_t)next && ids[idx] == r.request_id);
            l->acked[idx] = 1;
            if (l->seqs)
                l->seqs[idx] = r.seq;
            atomic_fetch_add(l->acked_total, 1);
        } else {
            l->errors++;
        }
        strata_reply_clear(&r);
        done++;
        if (l->errors && !l->stop_after_errors)
            break;
    }
    free(ids);
    strata_client_destroy(&c);
    return NULL;
}

START_TEST(many_clients_in_flight_share_group_commits)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    enum { THREADS = 8, N = 1500, DEPTH = 64 };
    atomic_int acked = 0;
    loader_t l[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        l[i] = (loader_t){.node = &node,
                          .id = i,
                          .n = N,
                          .depth = DEPTH,
                          .durability = STRATA_SYNC,
                          .acked_total = &acked,
                          .acked = calloc(N, 1)};
        ck_assert_int_eq(pthread_create(&t[i], NULL, loader, &l[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        ck_assert_msg(l[i].errors == 0, "thread %d: %d errors", i, l[i].errors);
    ck_assert_int_eq(atomic_load(&acked), THREADS * N);

    strata_client_t *c = connect_to(&node, 5000);
    strata_reply_t r;
    strata_error_t err;
    ck_assert_int_eq(strata_client_stats(c, &r, &err), 0);
    uint64_t syncs = strtoull(pair_value(&r, "syncs_total"), NULL, 10);
    double batch = strtod(pair_value(&r, "sync_batch_mean"), NULL);
    strata_reply_clear(&r);
    /* 12000 sync writes cannot have taken 12000 fdatasyncs: they rode together. */
    ck_assert_msg(syncs < (uint64_t)(THREADS * N) / 2 && batch > 2.0,
                  "syncs %" PRIu64 " batch mean %.2f", syncs, batch);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < N; j += 97) {
            char k[32], v[96];
            key_of(k, sizeof k, i, j);
            value_of(v, sizeof v, i, j);
            assert_value(c, k, v);
        }
    strata_client_destroy(&c);
    for (int i = 0; i < THREADS; i++)
        free(l[i].acked);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

typedef struct {
    atomic_int *count;
    int target;
} count_wait_t;

/* Reads back every put l saw acknowledged, with its exact value; returns
 * how many. cycle and seed only label a failure. */
static int assert_acked_present(strata_client_t *c, const loader_t *l, int cycle, uint64_t seed)
{
    int checked = 0;
    for (int j = 0; j < l->n; j++) {
        if (!l->acked[j])
            continue;
        char k[32], v[96];
        key_of(k, sizeof k, l->id, j);
        value_of(v, sizeof v, l->id, j);
        void *value = NULL;
        size_t len = 0;
        strata_error_t err;
        int rc = strata_client_get(c, k, strlen(k), &value, &len, &err);
        ck_assert_msg(rc == 0,
                      "cycle %d (seed %" PRIu64 "): acked %s (seq %" PRIu64 ", %s) missing: %d %s",
                      cycle, seed, k, l->seqs ? l->seqs[j] : 0,
                      l->durability == STRATA_SYNC ? "sync" : "async", rc, err.msg);
        ck_assert(len == strlen(v) && memcmp(value, v, len) == 0);
        free(value);
        checked++;
    }
    return checked;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static bool count_reached(void *arg)
{
    count_wait_t *w = arg;
    return atomic_load(w->count) >= w->target;
}

/* kill -9 mid-load, in both durability modes (a process crash loses neither:
 * async writes are in the page cache), restart, and find every ack. */
START_TEST(kill9_under_load_loses_no_acknowledged_write)
{
    uint64_t seed = ts_seed("writer kill9");
    uint64_t rng = seed;
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    const char *env[] = {"STRATA_WRITER_MEMTABLE_MB=1", NULL}; /* flushes during the run */
    int cycles = ts_soak() ? 20 : 4;
    for (int cycle = 0; cycle < cycles; cycle++) {
        ts_node_t node;
        ts_node_start(&node, data, env);
        enum { THREADS = 4, N = 4000 };
        atomic_int acked = 0;
        loader_t l[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            l[i] = (loader_t){.node = &node,
                              .id = cycle * THREADS + i,
                              .n = N,
                              .depth = 16,
                              .durability = (cycle + i) % 2 ? STRATA_ASYNC : STRATA_SYNC,
                              .acked_total = &acked,
                              .acked = calloc(N, 1),
                              .seqs = calloc(N, sizeof(uint64_t)),
                              .stop_after_errors = 1};
            ck_assert_int_eq(pthread_create(&t[i], NULL, loader, &l[i]), 0);
        }
        count_wait_t cw = {&acked, 500 + (int)(ts_rand(&rng) % 3000)};
        ck_assert(ts_wait_for(count_reached, &cw, 60000));
        ts_node_kill9(&node);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        /* Every acknowledgement names its own seq: a reply routed to the
         * wrong client would show up as a seq acknowledged twice. */
        uint64_t *all = calloc((size_t)THREADS * N, sizeof *all);
        size_t n_all = 0;
        for (int i = 0; i < THREADS; i++)
            for (int j = 0; j < N; j++)
                if (l[i].acked[j])
                    all[n_all++] = l[i].seqs[j];
        qsort(all, n_all, sizeof *all, cmp_u64);
        for (size_t i = 1; i < n_all; i++)
            ck_assert_msg(all[i] != all[i - 1], "seq %" PRIu64 " acknowledged twice", all[i]);
        free(all);

        ts_node_start(&node, data, env);
        strata_client_t *c = connect_to(&node, 5000);
        int checked = 0;
        for (int i = 0; i < THREADS; i++) {
            checked += assert_acked_present(c, &l[i], cycle, seed);
            free(l[i].acked);
            free(l[i].seqs);
        }
        ck_assert_int_ge(checked, cw.target);
        strata_client_destroy(&c);
        ck_assert_int_eq(ts_node_stop(&node), 0);
    }
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* SIGTERM with sync writes in flight: each gets an answer, the process
 * exits 0, and every acknowledged write is there after the restart. */
START_TEST(sigterm_answers_in_flight_writes_and_exits_cleanly)
{
    char *dir = ts_tempdir("writer");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    atomic_int acked = 0;
    loader_t l = {.node = &node,
                  .id = 0,
                  .n = 20000,
                  .depth = 64,
                  .durability = STRATA_SYNC,
                  .acked_total = &acked,
                  .acked = calloc(20000, 1),
                  .stop_after_errors = 1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, loader, &l), 0);
    count_wait_t cw = {&acked, 1000};
    ck_assert(ts_wait_for(count_reached, &cw, 60000));
    ck_assert_int_eq(ts_node_stop(&node), 0);
    pthread_join(t, NULL);
    ts_node_start(&node, data, NULL);
    strata_client_t *c = connect_to(&node, 5000);
    ck_assert_int_ge(assert_acked_present(c, &l, 0, 0), 1000);
    free(l.acked);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* A write that fails on disk (here the file size limit, as a full disk
 * would) stops writes, never retried as success; the writer serves reads
 * and /readyz says not ready until it is restarted. */
START_TEST(a_failed_wal_write_stops_writes_and_readiness)
{
    char *dir = ts_tempdir("writer-full");
    char *data = ts_path(dir, "node");
    /* The writer inherits a 2 MiB file size limit, with SIGXFSZ ignored so
     * the write fails with EFBIG instead of killing it; this process puts
     * its own limit back at once. */
    struct rlimit saved, small = {.rlim_cur = 2u << 20, .rlim_max = RLIM_INFINITY};
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small.rlim_max = saved.rlim_max;
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    const char *const env[] = {"STRATA_WRITER_WAL_SEGMENT_MB=8", "STRATA_WRITER_RING_MB=1", NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_xfsz);

    char ready_url[300];
    snprintf(ready_url, sizeof ready_url, "%.*s/readyz",
             (int)(strstr(node.metrics, "/metrics") - node.metrics), node.metrics);
    char *ready = http_get(ready_url);
    ck_assert_ptr_nonnull(strstr(ready, "200 OK"));
    free(ready);
    strata_client_t *c = connect_to(&node, 5000);
    strata_error_t err;
    char value[4096];
    memset(value, 'v', sizeof value);
    int rc = 0;
    uint64_t acked = 0;
    for (uint64_t i = 0; i < 2000 && rc == 0; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%06" PRIu64, i);
        rc = strata_client_put(c, STRATA_DURABILITY_SYNC, key, strlen(key), value, sizeof value,
                               NULL, &err);
        acked += rc == 0;
    }
    ck_assert_msg(rc != 0, "2000 puts of 4 KiB fit a 2 MiB file limit");
    ck_assert_uint_gt(acked, 0);
    /* Every later write is refused too, and reads still work. */
    ck_assert_int_ne(strata_client_put(c, STRATA_DURABILITY_ASYNC, "after", 5, "x", 1, NULL, &err),
                     0);
    void *got = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "k000000", 7, &got, &len, &err), 0);
    ck_assert_uint_eq(len, sizeof value);
    free(got);
    ready = http_get(ready_url);
    ck_assert_msg(strstr(ready, "503"), "readyz after a failed write: %.80s", ready);
    free(ready);
    strata_client_destroy(&c);
    ts_node_kill9(&node);

    /* A restart without the limit serves every acknowledged write. */
    ts_node_start(&node, data, env);
    c = connect_to(&node, 5000);
    for (uint64_t i = 0; i < acked; i += 97) {
        char key[32];
        snprintf(key, sizeof key, "k%06" PRIu64, i);
        ck_assert_int_eq(strata_client_get(c, key, strlen(key), &got, &len, &err), 0);
        free(got);
    }
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "after", 5, "x", 1, NULL, &err),
                     0);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* A client of a CURVE writer with the given certificate (NULL: none). */
static strata_client_t *curve_client(const ts_node_t *node, const char *server_public,
                                     const char *cert)
{
    strata_client_options_t opts = {.endpoint = node->endpoint,
                                    .timeout_ms = 1500,
                                    .curve_server_key = cert ? server_public : NULL,
                                    .curve_cert = cert};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &c, &err) == 0, "connect: %s", err.msg);
    return c;
}

/* With security/curve on, only keys in clients_dir get an answer, and only
 * an admin key may run the control verbs beyond ping and config. */
START_TEST(curve_admits_known_keys_and_roles_only)
{
    char *dir = ts_tempdir("writer-curve");
    char *data = ts_path(dir, "node");
    char *keys = ts_path(dir, "keys");
    char *allowed = ts_path(dir, "allowed");
    ck_assert_int_eq(mkdir(keys, 0700), 0);
    ck_assert_int_eq(mkdir(allowed, 0700), 0);
    char path[1024];
    zcert_t *server = zcert_new();
    snprintf(path, sizeof path, "%s/server", keys);
    ck_assert_int_eq(zcert_save(server, path), 0);
    static const char *const roles[] = {"client", "admin", NULL};
    static const char *const names[] = {"app", "ops", "stranger"};
    for (int i = 0; i < 3; i++) {
        zcert_t *cert = zcert_new();
        if (roles[i]) {
            zcert_set_meta(cert, "role", "%s", roles[i]);
            snprintf(path, sizeof path, "%s/%s.cert", allowed, names[i]);
            ck_assert_int_eq(zcert_save_public(cert, path), 0);
        }
        snprintf(path, sizeof path, "%s/%s", keys, names[i]);
        ck_assert_int_eq(zcert_save(cert, path), 0);
        zcert_destroy(&cert);
    }
    char server_secret[1024], clients_dir[1024];
    snprintf(server_secret, sizeof server_secret, "STRATA_SECURITY_SERVER_CERT=%s/server_secret",
             keys);
    snprintf(clients_dir, sizeof clients_dir, "STRATA_SECURITY_CLIENTS_DIR=%s", allowed);
    const char *const env[] = {"STRATA_SECURITY_CURVE=true", server_secret, clients_dir, NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    char server_public[41];
    snprintf(server_public, sizeof server_public, "%s", zcert_public_txt(server));
    zcert_destroy(&server);

    strata_error_t err;
    char cert[1024];
    /* No key, and a key the node does not know: never an answer. */
    strata_client_t *c = curve_client(&node, server_public, NULL);
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ETIMEDOUT);
    strata_client_destroy(&c);
    snprintf(cert, sizeof cert, "%s/stranger_secret", keys);
    c = curve_client(&node, server_public, cert);
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ETIMEDOUT);
    strata_client_destroy(&c);

    /* A client key writes and reads, and is refused flush. */
    snprintf(cert, sizeof cert, "%s/app_secret", keys);
    c = curve_client(&node, server_public, cert);
    ck_assert_msg(strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err) == 0,
                  "put: %s", err.msg);
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &len, &err), 0);
    free(value);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(c, "ping", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    ck_assert_int_eq(strata_client_control(c, "flush", NULL, 0, &rep, &err), STRATA_EPERM);
    ck_assert_str_eq(err.msg, "control flush: needs the admin role; this key's is client");
    strata_reply_clear(&rep);
    strata_client_destroy(&c);

    /* An admin key may flush; the server key may also be its certificate. */
    snprintf(cert, sizeof cert, "%s/ops_secret", keys);
    snprintf(path, sizeof path, "%s/server", keys);
    c = curve_client(&node, path, cert);
    ck_assert_msg(strata_client_control(c, "flush", NULL, 0, &rep, &err) == 0, "flush: %s",
                  err.msg);
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(keys);
    free(allowed);
    free(data);
    free(dir);
}
END_TEST

/* 1,100 idle TCP connections against a writer that takes 768 (the cap is
 * writer/max_clients, at most the descriptor limit less 256 kept for
 * files): the rest are shut at once, it keeps serving, and it rolls its WAL
 * segments (new files) as before. */
START_TEST(an_fd_flood_is_capped_and_the_wal_still_rolls)
{
    char *dir = ts_tempdir("writer-fds");
    char *data = ts_path(dir, "node");
    /* This process opens the 1,100 sockets: room for them (a soft limit of
     * 1,024 is common; raising it to the hard limit needs no privilege). */
    struct rlimit lim;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
    if (lim.rlim_cur < 4096) {
        lim.rlim_cur = lim.rlim_max < 4096 ? lim.rlim_max : 4096;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    }
    ck_assert_msg(lim.rlim_cur >= 1200, "RLIMIT_NOFILE hard limit %llu is too low for the test",
                  (unsigned long long)lim.rlim_cur);
    const char *const env[] = {"STRATA_WRITER_WAL_SEGMENT_MB=1", "STRATA_WRITER_RING_MB=1",
                               "STRATA_WRITER_MAX_CLIENTS=768", NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    strata_client_t *c = connect_to(&node, 5000);
    strata_error_t err;
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "first", 5, "v", 1, NULL, &err),
                     0);
    unsigned port = 0;
    ck_assert_int_eq(sscanf(node.endpoint, "tcp://127.0.0.1:%u", &port), 1);
    enum { FLOOD = 1100 };
    static int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fds[i], 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    uint64_t deadline = ts_now_ns() + 20000000000ull, refused = 0;
    while ((refused = ts_stat(c, "clients_refused_total")) < FLOOD - 768 &&
           ts_now_ns() < deadline) {
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's count with a deadline */
    }
    ck_assert_uint_ge(refused, FLOOD - 768);
    /* A refused connection is counted when it is shut and leaves the
     * open count when ZeroMQ reports it closed, a moment later (longer
     * under ASan): the cap must hold once those reports are in. */
    uint64_t open = 0;
    while ((open = ts_stat(c, "clients")) > 768 && ts_now_ns() < deadline) {
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's count with a deadline */
    }
    ck_assert_uint_le(open, 768);
    /* 3 MiB through 1 MiB segments: new WAL files while the flood holds. */
    static char value[64 * 1024];
    memset(value, 'f', sizeof value);
    for (int i = 0; i < 48; i++) {
        char key[16];
        snprintf(key, sizeof key, "roll%02d", i);
        ck_assert_msg(strata_client_put(c, STRATA_DURABILITY_SYNC, key, strlen(key), value,
                                        sizeof value, NULL, &err) == 0,
                      "put %d during the flood: %s", i, err.msg);
    }
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

/* A client pipelines 2,000 gets of a 1 MiB value and never reads a reply
 * (2 GiB of replies unbounded): the writer holds at most
 * writer/reply_queue_mb of them (16 MiB here) plus one reply, answers
 * EBUSY meanwhile, closes that client, and serves the others all along. */
START_TEST(a_client_that_never_reads_is_bounded_and_closed)
{
    char *dir = ts_tempdir("writer-outq");
    char *data = ts_path(dir, "node");
    const char *const env[] = {"STRATA_WRITER_REPLY_QUEUE_MB=16", "STRATA_WRITER_RING_MB=1", NULL};
    ts_node_t node;
    ts_node_start(&node, data, env);
    strata_client_t *c = connect_to(&node, 10000);
    strata_error_t err;
    static char value[1 << 20];
    memset(value, 'v', sizeof value);
    ck_assert_int_eq(
        strata_client_put(c, STRATA_DURABILITY_SYNC, "big", 3, value, sizeof value, NULL, &err), 0);
    void *got;
    size_t got_len;
    ck_assert_int_eq(strata_client_get(c, "big", 3, &got, &got_len, &err), 0);
    free(got);
    uint64_t base = ts_rss_kib(node.pid);

    zsock_t *hog = zsock_new(ZMQ_DEALER);
    zsock_set_rcvhwm(hog, 1);
    zsock_set_rcvbuf(hog, 4096);
    ck_assert_int_eq(zsock_connect(hog, "%s", node.endpoint), 0);
    enum { GETS = 2000 };
    for (int i = 0; i < GETS; i++) {
        strata_request_t req = {
            .request_id = (uint64_t)i + 1, .op = STRATA_OP_GET, .key = {(const uint8_t *)"big", 3}};
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(strata_request_encode(&req, &buf, &len, NULL), 0);
        ck_assert_int_eq(zsock_send(hog, "b", buf, len), 0);
        free(buf);
    }
    uint64_t peak = 0, queue_peak = 0, deadline = ts_now_ns() + 30000000000ull;
    while (ts_stat(c, "clients_shed_total") < 1 && ts_now_ns() < deadline) {
        uint64_t r = ts_rss_kib(node.pid), q = ts_stat(c, "reply_queue_bytes");
        peak = r > peak ? r : peak;
        queue_peak = q > queue_peak ? q : queue_peak;
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's count with a deadline */
    }
    uint64_t r = ts_rss_kib(node.pid);
    peak = r > peak ? r : peak;
    fprintf(stderr,
            "writer never-reading client: private RSS %" PRIu64 " KiB before, peak %" PRIu64
            " KiB; reply queue peak %" PRIu64 " bytes\n",
            base, peak, queue_peak);
    ck_assert_uint_ge(ts_stat(c, "clients_shed_total"), 1);
    ck_assert_uint_ge(ts_stat(c, "replies_refused_total"), 1);
    /* The queue: 16 MiB and one reply past it. The process: that, the
     * ring's sockets and allocator slack; without the cap it passes a
     * gigabyte. */
    ck_assert_uint_le(queue_peak, (16u << 20) + (2u << 20));
    if (!ts_sanitized())
        ck_assert_msg(peak <= base + 48 * 1024,
                      "writer RSS grew from %" PRIu64 " to %" PRIu64 " KiB", base, peak);
    /* ZeroMQ lets go of the closed client's queue a moment later: EBUSY
     * until then, and nothing else. */
    int rc;
    deadline = ts_now_ns() + 10000000000ull;
    while ((rc = strata_client_get(c, "big", 3, &got, &got_len, &err)) == STRATA_EBUSY &&
           ts_now_ns() < deadline) {
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's queue with a deadline */
    }
    ck_assert_msg(rc == 0, "get: %s", err.msg);
    ck_assert_uint_eq(got_len, sizeof value);
    free(got);
    zsock_destroy(&hog);
    /* Once it has gone, what ZeroMQ held for it is released: in a release
     * build within moments. Under ASan a closed connection's pipe has been
     * seen to stay (its monitor never reports it closed); bounded by the
     * cap, and reads are served, which is what this asserts everywhere. */
    deadline = ts_now_ns() + 10000000000ull;
    while (ts_stat(c, "reply_queue_bytes") > 0 && ts_now_ns() < deadline) {
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the writer's count with a deadline */
    }
    uint64_t left = ts_stat(c, "reply_queue_bytes");
    fprintf(stderr,
            "writer never-reading client: %" PRIu64 " reply bytes left, %" PRIu64 " clients\n",
            left, ts_stat(c, "clients"));
    ck_assert_uint_lt(left, 16u << 20);
    if (!ts_sanitized())
        ck_assert_uint_lt(left, 1 << 20);
    ck_assert_msg(strata_client_get(c, "big", 3, &got, &got_len, &err) == 0, "get: %s", err.msg);
    free(got);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

START_TEST(config_file_errors_name_the_key_and_env_overrides_apply)
{
    char *dir = ts_tempdir("writer");
    char *cfg = ts_path(dir, "bad.cfg");
    FILE *f = fopen(cfg, "w");
    fputs("writer\n    endpont = tcp://127.0.0.1:1\n", f);
    fclose(f);
    const char *argv[] = {STRATA_WRITER_BIN, "-c", cfg, "--print-config", NULL};
    char *out = NULL;
    ck_assert_int_eq(ts_run_capture(argv, &out), 2);
    free(out);

    f = fopen(cfg, "w");
    fputs("writer\n    scan_limit = 50\n", f);
    fclose(f);
    setenv("STRATA_WRITER_MEMTABLE_MB", "7", 1);
    ck_assert_int_eq(ts_run_capture(argv, &out), 0);
    unsetenv("STRATA_WRITER_MEMTABLE_MB");
    ck_assert_msg(strstr(out, "writer/scan_limit") && strstr(out, "= 50"), "%s", out);
    ck_assert_msg(strstr(out, "STRATA_WRITER_MEMTABLE_MB"), "%s", out);
    free(out);
    ts_rmtree(dir);
    free(cfg);
    free(dir);
}
END_TEST

static Suite *writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *tc = tcase_create("service");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_verb_answers_over_tcp);
    tcase_add_test(tc, typed_records_are_validated_and_keyed_by_the_writer);
    tcase_add_test(tc, malformed_and_oversize_frames_get_errors_not_crashes);
    tcase_add_test(tc, several_requests_in_one_message_are_answered_each);
    tcase_add_test(tc, many_clients_in_flight_share_group_commits);
    tcase_add_test(tc, kill9_under_load_loses_no_acknowledged_write);
    tcase_add_test(tc, sigterm_answers_in_flight_writes_and_exits_cleanly);
    tcase_add_test(tc, a_failed_wal_write_stops_writes_and_readiness);
    tcase_add_test(tc, curve_admits_known_keys_and_roles_only);
    tcase_add_test(tc, an_fd_flood_is_capped_and_the_wal_still_rolls);
    tcase_add_test(tc, a_client_that_never_reads_is_bounded_and_closed);
    tcase_add_test(tc, config_file_errors_name_the_key_and_env_overrides_apply);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(writer_suite());
}
