/* strata-writer's server object run in-process, as main.c runs it: bound to
 * tcp://127.0.0.1:*, serving puts, gets and control verbs through the C
 * client, refusing a control-only verb on the client endpoint, and stopping
 * on `terminate` with every acknowledged write readable after a reopen. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/client.h"
#include "strata/db.h"
#include "strata/record.h"
#include "strata/snapshot.h"
#include "support.h"
#include "writer.h"

static svc_config_t *config_for(const char *dir)
{
    char text[1024];
    snprintf(text, sizeof text,
             "node\n    name = inproc\n    data_dir = %s\n"
             "writer\n    endpoint = tcp://127.0.0.1:*\n    control = \"\"\n"
             "    memtable_mb = 4\n    max_immutable_memtables = 4\n    sync_interval_ms = 10\n"
             "    wal_segment_mb = 4\n    lz4 = false\n    scan_limit = 1000\n    ring = off\n"
             "    ring_mb = 1\n    wal_retain_mb = 0\n    wal_retain_hours = 0\n"
             "    wal_truncation = flush\n    compaction = internal\n    metrics = off\n"
             "log\n    level = warning\n",
             dir);
    svc_config_t *cfg = NULL;
    strata_error_t err;
    ck_assert_msg(svc_config_load(text, NULL, &cfg, &err) == 0, "config: %s", err.msg);
    return cfg;
}

static void *run(void *arg)
{
    writer_run(arg);
    return NULL;
}

START_TEST(serves_in_process_and_stops_on_terminate)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    const char *ep = writer_endpoint(w);
    ck_assert_msg(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && !strchr(ep, '*'), "endpoint %s", ep);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);

    strata_client_t *c = ts_connect(ep, 5000);
    uint64_t seq = 0;
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        ck_assert_int_eq(strata_client_put(c,
                                           i % 2 ? STRATA_DURABILITY_SYNC : STRATA_DURABILITY_ASYNC,
                                           key, strlen(key), "v", 1, &seq, &err),
                         0);
    }
    ck_assert_uint_eq(seq, 100);
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "k042", 4, &value, &len, &err), 0);
    ck_assert_uint_eq(len, 1);
    free(value);

    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(c, "ping", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    ck_assert_int_eq(strata_client_control(c, "terminate", NULL, 0, &rep, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "only accepted on the control endpoint"));
    strata_reply_clear(&rep);
    const char *args[] = {"x"};
    ck_assert_int_eq(strata_client_control(c, "ping", args, 1, &rep, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "control ping: takes 0..0 args, got 1");
    strata_reply_clear(&rep);
    strata_client_destroy(&c);

    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    /* install_compaction takes its job as a message, checked before any file is touched. */
    ck_assert_int_eq(strata_client_control(ctl, "install_compaction", NULL, 0, &rep, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "control.install: absent"), "%s", err.msg);
    strata_reply_clear(&rep);
    const char *escape[] = {"../MANIFEST-000001"};
    strata_install_t job = {.level = 0, .outputs = escape, .n_outputs = 1};
    strata_request_t install = {
        .op = STRATA_OP_CONTROL, .verb = "install_compaction", .install = &job};
    ck_assert_int_eq(strata_client_call(ctl, &install, &rep, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "control.install.outputs[0]"), "%s", err.msg);
    strata_reply_clear(&rep);
    job.level = 6;
    ck_assert_int_eq(strata_client_call(ctl, &install, &rep, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "control.install.level: 6"), "%s", err.msg);
    strata_reply_clear(&rep);
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(loop, NULL);
    writer_destroy(&w);
    ck_assert_ptr_null(w);

    /* Everything acknowledged is there after the server is gone. */
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    strata_db_t *db = NULL;
    ck_assert_int_eq(strata_db_open(&opts, &db, &err), 0);
    ck_assert_uint_eq(strata_db_last_seq(db), 100);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* 1,500 pipelined flushes on each endpoint: each is done or refused with
 * EBUSY at once (no thread or socket per request past the caps), and the
 * writer serves on. It used to abort in zsock_new_checked. */
START_TEST(a_flood_of_jobs_is_refused_past_the_cap_and_the_writer_serves_on)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);
    const char *endpoints[2] = {writer_endpoint(w), writer_control_endpoint(w)};
    for (int e = 0; e < 2; e++) {
        strata_client_options_t opts = {.endpoint = endpoints[e], .timeout_ms = 30000};
        strata_client_t *c = NULL;
        ck_assert_int_eq(strata_client_connect(&opts, &c, &err), 0);
        enum { FLOOD = 1500 };
        for (int i = 0; i < FLOOD; i++) {
            strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = "flush"};
            uint64_t id;
            ck_assert_msg(strata_client_send(c, &req, &id, &err) == 0, "send %d: %s", i, err.msg);
        }
        int done = 0, busy = 0;
        for (int i = 0; i < FLOOD; i++) {
            strata_reply_t rep;
            ck_assert_msg(strata_client_recv(c, 30000, &rep, &err) == 0, "reply %d: %s", i,
                          err.msg);
            if (rep.status == 0) {
                done++;
            } else {
                ck_assert_int_eq(rep.status, STRATA_EBUSY);
                ck_assert_msg(strstr(rep.message, "control flush:") &&
                                  strstr(rep.message, "jobs running (cap 16, 8 from the client"),
                              "%s", rep.message);
                busy++;
            }
            strata_reply_clear(&rep);
        }
        ck_assert_int_gt(done, 0);
        ck_assert_int_gt(busy, 0);
        ck_assert_int_eq(done + busy, FLOOD);
        strata_client_destroy(&c);
    }
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_client_put(c, STRATA_DURABILITY_SYNC, "after", 5, "flood", 5, &seq, &err), 0);
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "after", 5, &value, &len, &err), 0);
    ck_assert(len == 5 && !memcmp(value, "flood", 5));
    free(value);
    strata_client_destroy(&c);
    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* The other job verbs go through the same cap: 1,500 of each pipelined on
 * the control endpoint is done (or, for an install with no inputs, refused
 * by the engine after running as a job) or EBUSY at once, never a crash. */
START_TEST(every_job_verb_is_capped)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);
    strata_client_options_t opts = {.endpoint = writer_control_endpoint(w), .timeout_ms = 30000};
    strata_client_t *ctl = NULL;
    ck_assert_int_eq(strata_client_connect(&opts, &ctl, &err), 0);
    static const char *const verbs[] = {"compact", "truncate_wal", "checkpoint",
                                        "install_compaction"};
    enum { FLOOD = 1500 };
    for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
        for (int i = 0; i < FLOOD; i++) {
            char dest[PATH_MAX];
            snprintf(dest, sizeof dest, "%s/cp%04d", dir, i);
            const char *args[1] = {!strcmp(verbs[v], "checkpoint") ? dest : "0"};
            strata_install_t none = {.level = 0};
            strata_request_t req = {.op = STRATA_OP_CONTROL,
                                    .verb = verbs[v],
                                    .args = args,
                                    .n_args = v == 1 || v == 2,
                                    .install = v == 3 ? &none : NULL};
            uint64_t id;
            ck_assert_msg(strata_client_send(ctl, &req, &id, &err) == 0, "send %s %d: %s", verbs[v],
                          i, err.msg);
        }
        int ran = 0, busy = 0;
        char cap_msg[128];
        snprintf(cap_msg, sizeof cap_msg, "control %s: ", verbs[v]);
        for (int i = 0; i < FLOOD; i++) {
            strata_reply_t rep;
            ck_assert_msg(strata_client_recv(ctl, 30000, &rep, &err) == 0, "%s reply %d: %s",
                          verbs[v], i, err.msg);
            if (rep.status == STRATA_EBUSY) {
                ck_assert_msg(!strncmp(rep.message, cap_msg, strlen(cap_msg)) &&
                                  strstr(rep.message, "jobs running (cap 16, 8 from the client"),
                              "%s", rep.message);
                busy++;
            } else if (v == 3) {
                ck_assert_int_eq(rep.status, STRATA_EINVAL);
                ck_assert_msg(strstr(rep.message, "install compaction: level 0 with 0 inputs"),
                              "%s", rep.message);
                ran++;
            } else {
                ck_assert_msg(rep.status == 0, "%s: %d %s", verbs[v], rep.status, rep.message);
                ran++;
            }
            strata_reply_clear(&rep);
        }
        ck_assert_msg(ran > 0 && busy > 0, "%s: %d ran, %d busy", verbs[v], ran, busy);
        ck_assert_int_eq(ran + busy, FLOOD);
    }
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    ck_assert_int_eq(
        strata_client_put(c, STRATA_DURABILITY_SYNC, "after", 5, "jobs", 4, NULL, &err), 0);
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "after", 5, &value, &len, &err), 0);
    ck_assert(len == 4 && !memcmp(value, "jobs", 4));
    free(value);
    strata_client_destroy(&c);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* terminate pipelined behind a full set of jobs: the loop stops with them
 * still running, and the stop waits for each and answers it, so no job's
 * requester is left without a reply and every checkpoint is complete. */
START_TEST(a_stop_waits_for_running_jobs_and_answers_them)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", i);
        ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_ASYNC, key, strlen(key), key,
                                           strlen(key), NULL, &err),
                         0);
    }
    strata_client_destroy(&c);
    strata_client_options_t opts = {.endpoint = writer_control_endpoint(w), .timeout_ms = 30000};
    strata_client_t *ctl = NULL;
    ck_assert_int_eq(strata_client_connect(&opts, &ctl, &err), 0);
    enum { JOBS = 16 };
    uint64_t ids[JOBS], terminate_id = 0;
    for (int i = 0; i < JOBS; i++) {
        char dest[PATH_MAX];
        snprintf(dest, sizeof dest, "%s/cp%02d", dir, i);
        const char *args[1] = {dest};
        strata_request_t req = {
            .op = STRATA_OP_CONTROL, .verb = "checkpoint", .args = args, .n_args = 1};
        ck_assert_int_eq(strata_client_send(ctl, &req, &ids[i], &err), 0);
    }
    strata_request_t stop = {.op = STRATA_OP_CONTROL, .verb = "terminate"};
    ck_assert_int_eq(strata_client_send(ctl, &stop, &terminate_id, &err), 0);
    /* The loop ends on terminate; the jobs' replies leave from the stop. */
    pthread_join(loop, NULL);
    writer_destroy(&w);
    bool answered[JOBS] = {false}, terminated = false;
    for (int i = 0; i < JOBS + 1; i++) {
        strata_reply_t rep;
        ck_assert_msg(strata_client_recv(ctl, 10000, &rep, &err) == 0, "reply %d of %d: %s", i,
                      JOBS + 1, err.msg);
        if (rep.request_id == terminate_id) {
            ck_assert_int_eq(rep.status, 0);
            terminated = true;
        }
        for (int j = 0; j < JOBS; j++) {
            if (rep.request_id != ids[j])
                continue;
            ck_assert_msg(rep.status == 0, "checkpoint %d: %d %s", j, rep.status, rep.message);
            answered[j] = true;
            char *manifest = NULL;
            char cp[PATH_MAX];
            snprintf(cp, sizeof cp, "%s/cp%02d", dir, j);
            DIR *d = opendir(cp);
            ck_assert_msg(d, "checkpoint %d replied done but %s is missing", j, cp);
            for (struct dirent *e; (e = readdir(d));)
                if (!strncmp(e->d_name, "MANIFEST", 8))
                    manifest = e->d_name;
            ck_assert_msg(manifest, "checkpoint %d: no MANIFEST in %s", j, cp);
            closedir(d);
        }
        strata_reply_clear(&rep);
    }
    ck_assert(terminated);
    for (int j = 0; j < JOBS; j++)
        ck_assert_msg(answered[j], "checkpoint %d has no reply", j);
    strata_client_destroy(&ctl);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A Raw record's bytes, topic and key as given. */
static void raw_record(const char *topic, const void *key, size_t key_len, uint8_t **buf,
                       size_t *len)
{
    strata_record_t rec = {.type = STRATA_RECORD_RAW};
    snprintf(rec.u.raw.topic, sizeof rec.u.raw.topic, "%s", topic);
    rec.u.raw.key.ptr = malloc(key_len);
    memcpy(rec.u.raw.key.ptr, key, key_len);
    rec.u.raw.key.len = key_len;
    strata_error_t err;
    ck_assert_msg(strata_record_encode(&rec, buf, len, &err) == 0, "encode: %s", err.msg);
    strata_record_clear(&rec);
}

/* Reads of the node's own keys (victim, stored): on the client endpoint a
 * get finds nothing and a scan from "" skips them, though they sort first;
 * on the control endpoint both see them (proto/PROTOCOL.md). */
static void assert_reserved_keys_hidden_from_clients(writer_t *w, strata_client_t *ctl,
                                                     const char *victim, size_t victim_len)
{
    strata_error_t err;
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    void *value = NULL;
    size_t vlen = 0;
    ck_assert_int_eq(strata_client_get(c, victim, victim_len, &value, &vlen, &err),
                     STRATA_ENOTFOUND);
    ck_assert_int_eq(strata_client_get(ctl, victim, victim_len, &value, &vlen, &err), 0);
    ck_assert_uint_eq(vlen, 1);
    free(value);
    strata_bytes_t keys[2] = {{(const uint8_t *)victim, victim_len}, {(const uint8_t *)"ok", 2}};
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_multi_get(c, keys, 2, &rep, &err), 0);
    ck_assert(!rep.values[0].found);
    strata_reply_clear(&rep);
    strata_bytes_t none = {NULL, 0};
    /* limit 1: the first page must hold the first client key, not be empty. */
    ck_assert_int_eq(strata_client_scan(c, none, none, 1, none, &rep, &err), 0);
    ck_assert_uint_eq(rep.n_entries, 1);
    ck_assert(!strata_is_sys_key(rep.entries[0].key));
    strata_reply_clear(&rep);
    ck_assert_int_eq(strata_client_scan(ctl, none, none, 1, none, &rep, &err), 0);
    ck_assert_uint_eq(rep.n_entries, 1);
    ck_assert(strata_is_sys_key(rep.entries[0].key));
    strata_reply_clear(&rep);
    /* A scan bounded inside the reserved prefix is empty for a client. */
    strata_bytes_t start = {(const uint8_t *)victim, 8}, end = {(const uint8_t *)"\0strata0", 8};
    ck_assert_int_eq(strata_client_scan(c, start, end, 0, none, &rep, &err), 0);
    ck_assert_uint_eq(rep.n_entries, 0);
    ck_assert_uint_eq(rep.next_cursor.len, 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
}

/* Keys under \0strata/ and $-topics are the node's: refused on every client
 * write path, naming the field, and allowed to the node's own processes on
 * the control endpoint. A durable subscriber's offset cannot be forged. */
START_TEST(reserved_keys_and_topics_are_refused_on_every_client_write_path)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    static const char victim[] = "\0strata/sub/victim";
    size_t victim_len = sizeof victim - 1;

    ck_assert_int_eq(
        strata_client_put(c, STRATA_DURABILITY_SYNC, victim, victim_len, "9", 1, NULL, &err),
        STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "put.key: the \\0strata/ prefix is reserved");
    ck_assert_int_eq(
        strata_client_delete(c, STRATA_DURABILITY_SYNC, victim, victim_len, NULL, &err),
        STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "delete.key: the \\0strata/ prefix is reserved");
    strata_batch_op_t ops[2] = {
        {.kind = STRATA_BATCH_PUT,
         .key = {(const uint8_t *)"ok", 2},
         .value = {(const uint8_t *)"v", 1}},
        {.kind = STRATA_BATCH_DELETE, .key = {(const uint8_t *)victim, victim_len}}};
    ck_assert_int_eq(strata_client_batch(c, STRATA_DURABILITY_SYNC, ops, 2, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "batch.ops[1].key: the \\0strata/ prefix is reserved");

    uint8_t *buf = NULL;
    size_t len = 0;
    raw_record("fills", victim, victim_len, &buf, &len);
    ck_assert_int_eq(strata_client_record_put(c, STRATA_DURABILITY_SYNC, buf, len, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "record.key: the \\0strata/ prefix is reserved");
    free(buf);
    static const char *const topics[] = {"$sys", "$hb"};
    for (int i = 0; i < 2; i++) {
        raw_record(topics[i], "k", 1, &buf, &len);
        ck_assert_int_eq(strata_client_record_put(c, STRATA_DURABILITY_SYNC, buf, len, NULL, &err),
                         STRATA_EINVAL);
        char want[128];
        snprintf(want, sizeof want,
                 "record.topic: '%s' is reserved ($-prefixed topics are the node's)", topics[i]);
        ck_assert_str_eq(err.msg, want);
        free(buf);
    }
    /* An ordinary Raw record goes through; nothing refused was written. */
    raw_record("fills", "k1", 2, &buf, &len);
    uint64_t seq = 0;
    ck_assert_int_eq(strata_client_record_put(c, STRATA_DURABILITY_SYNC, buf, len, &seq, &err), 0);
    ck_assert_uint_eq(seq, 1);
    free(buf);
    void *value = NULL;
    size_t vlen = 0;
    ck_assert_int_eq(strata_client_get(c, victim, victim_len, &value, &vlen, &err),
                     STRATA_ENOTFOUND);
    strata_client_destroy(&c);

    /* The node's own processes write offsets on the control endpoint. */
    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    ck_assert_int_eq(
        strata_client_put(ctl, STRATA_DURABILITY_SYNC, victim, victim_len, "9", 1, &seq, &err), 0);
    strata_reply_t rep;
    assert_reserved_keys_hidden_from_clients(w, ctl, victim, victim_len);
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A multi-get whose values cannot fit one reply stops reading at the value
 * that passes the cap and answers ETOOBIG naming it; a smaller one works. */
START_TEST(a_multi_get_past_the_reply_cap_stops_early)
{
    char *dir = ts_tempdir("wsrv");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t loop;
    ck_assert_int_eq(pthread_create(&loop, NULL, run, w), 0);
    strata_client_t *c = ts_connect(writer_endpoint(w), 5000);
    size_t big = STRATA_PROTO_MAX_VALUE;
    char *value = malloc(big);
    memset(value, 'b', big);
    strata_bytes_t keys[12];
    char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "big%02d", i);
        keys[i] = (strata_bytes_t){(const uint8_t *)names[i], strlen(names[i])};
        ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_ASYNC, names[i], strlen(names[i]),
                                           value, big, NULL, &err),
                         0);
    }
    free(value);
    strata_reply_t got;
    ck_assert_int_eq(strata_client_multi_get(c, keys, 12, &got, &err), STRATA_ETOOBIG);
    ck_assert_msg(
        strstr(err.msg, "multi_get key 7: the values up to this one exceed the reply cap"), "%s",
        err.msg);
    strata_reply_clear(&got);
    ck_assert_int_eq(strata_client_multi_get(c, keys, 4, &got, &err), 0);
    ck_assert(got.n_values == 4 && got.values[3].found && got.values[3].value.len == big);
    strata_reply_clear(&got);
    strata_client_destroy(&c);
    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- snapshot install (bootstrap.c) ---- */

static strata_db_t *open_db_at(const char *dir)
{
    strata_db_options_t o;
    strata_db_options_init(&o);
    o.dir = dir;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&o, &db, &err) == 0, "open %s: %s", dir, err.msg);
    return db;
}

/* n keys PREFIX-i (value = key); the first half flushed to a table. */
static uint64_t fill(strata_db_t *db, const char *prefix, int n)
{
    strata_error_t err;
    uint64_t seq = 0;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s-%04d", prefix, i);
        ck_assert_int_eq(strata_db_put(db, NULL, key, strlen(key), key, strlen(key), &seq, &err),
                         0);
        if (i == n / 2)
            ck_assert_int_eq(strata_db_flush(db, &err), 0);
    }
    return seq;
}

static bool has(strata_db_t *db, const char *prefix, int i)
{
    char key[32];
    snprintf(key, sizeof key, "%s-%04d", prefix, i);
    void *v = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_db_get(db, NULL, key, strlen(key), &v, &len, &err);
    ck_assert_msg(rc == 0 || rc == STRATA_ENOTFOUND, "get %s: %s", key, err.msg);
    bool found = rc == 0 && len == strlen(key) && !memcmp(v, key, len);
    free(v);
    return found;
}

/* A leader's sealed snapshot of 300 keys, copied into node/bootstrap/ and
 * named by INSTALL, as the copy thread leaves it. Returns its seq. */
static uint64_t stage_copy(const char *root, const char *node, char *name, size_t cap)
{
    char *leader = ts_path(root, "leader");
    strata_db_t *db = open_db_at(leader);
    fill(db, "lead", 300);
    char boot[1024], tmp[1100], final[1100];
    snprintf(boot, sizeof boot, "%s/bootstrap", node);
    ck_assert_int_eq(strata_io_mkdirs(strata_io_posix(), boot), 0);
    snprintf(tmp, sizeof tmp, "%s/incoming", boot);
    uint64_t seq = 0;
    strata_error_t err;
    ck_assert_msg(strata_db_checkpoint(db, tmp, &seq, &err) == 0, "checkpoint: %s", err.msg);
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    ck_assert_msg(strata_snapshot_seal(tmp, seq, 3, "leader", NULL, &err) == 0, "seal: %s",
                  err.msg);
    snprintf(name, cap, "snap-%020" PRIu64, seq);
    snprintf(final, sizeof final, "%s/%s", boot, name);
    ck_assert_int_eq(rename(tmp, final), 0);
    char install[1100];
    snprintf(install, sizeof install, "%s/INSTALL", boot);
    FILE *f = fopen(install, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", name);
    fclose(f);
    ts_rmtree(leader);
    free(leader);
    return seq;
}

static bool exists_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

START_TEST(an_install_interrupted_by_a_crash_is_finished_by_the_next_start)
{
    char *root = ts_tempdir("boot-install");
    char *node = ts_path(root, "node");
    strata_db_t *db = open_db_at(node);
    fill(db, "old", 500); /* its tables share numbers with the leader's */
    strata_error_t err;
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    char name[64];
    uint64_t seq = stage_copy(root, node, name, sizeof name);

    /* As a crash leaves it: the old log moved aside, CURRENT gone, some
     * of the old tables still there. */
    char wal[1100], before[1200], current[1100];
    snprintf(wal, sizeof wal, "%s/wal", node);
    snprintf(before, sizeof before, "%s/wal.before-%s", node, name);
    snprintf(current, sizeof current, "%s/CURRENT", node);
    ck_assert_int_eq(rename(wal, before), 0);
    ck_assert_int_eq(unlink(current), 0);

    ck_assert_msg(bootstrap_install(node, &err) == 0, "install: %s", err.msg);
    ck_assert(!exists_in(node, "bootstrap/INSTALL"));
    char copy[1200];
    snprintf(copy, sizeof copy, "bootstrap/%s", name);
    ck_assert_msg(!exists_in(node, copy), "the copy %s is still there", copy);
    ck_assert_msg(access(before, F_OK) == 0, "the old log is not in %s", before);
    uint64_t mark_seq = 0, mark_term = 0;
    ck_assert_int_eq(bootstrap_mark(node, &mark_seq, &mark_term), 0);
    ck_assert_uint_eq(mark_seq, seq);
    ck_assert_uint_eq(mark_term, 3);

    db = open_db_at(node);
    for (int i = 0; i < 300; i++)
        ck_assert_msg(has(db, "lead", i), "lead-%04d missing after the install", i);
    for (int i = 0; i < 500; i += 7)
        ck_assert_msg(!has(db, "old", i), "old-%04d survived the install", i);
    strata_db_stats_t st;
    strata_db_stats(db, &st);
    ck_assert_uint_eq(st.last_seq, seq);
    ck_assert_uint_eq(st.flushed_seq, seq);
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    /* A second start has nothing to do. */
    ck_assert_int_eq(bootstrap_install(node, &err), 0);

    /* The node writes on, then copies the same snapshot again: its log goes
     * aside under another name, never deleted. */
    db = open_db_at(node);
    fill(db, "new", 10);
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    char again[64];
    ck_assert_uint_eq(stage_copy(root, node, again, sizeof again), seq);
    ck_assert_str_eq(again, name);
    ck_assert_msg(bootstrap_install(node, &err) == 0, "install again: %s", err.msg);
    DIR *d = opendir(node);
    ck_assert_ptr_nonnull(d);
    size_t kept = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        kept += !strncmp(de->d_name, "wal.before-", 11);
    closedir(d);
    ck_assert_uint_eq(kept, 2);
    ts_rmtree(root);
    free(node);
    free(root);
}
END_TEST

START_TEST(a_damaged_copy_is_discarded_before_it_touches_the_data_dir)
{
    char *root = ts_tempdir("boot-damaged");
    char *node = ts_path(root, "node");
    strata_db_t *db = open_db_at(node);
    fill(db, "old", 200);
    strata_error_t err;
    ck_assert_int_eq(strata_db_close(&db, &err), 0);
    char name[64];
    stage_copy(root, node, name, sizeof name);
    /* One flipped byte in the copy's MANIFEST. */
    char boot[1100];
    snprintf(boot, sizeof boot, "%s/bootstrap/%s", node, name);
    strata_snapshot_meta_t meta = {0};
    ck_assert_int_eq(strata_snapshot_read(boot, &meta, &err), 0);
    char victim[1400] = "";
    for (size_t i = 0; i < meta.n_files; i++)
        if (!strncmp(meta.files[i].name, "MANIFEST-", 9))
            snprintf(victim, sizeof victim, "%s/%s", boot, meta.files[i].name);
    strata_snapshot_meta_free(&meta);
    ck_assert(victim[0]);
    uint8_t b;
    ts_file_read_at(victim, 0, &b, 1);
    b ^= 0x40;
    ts_file_write_at(victim, 0, &b, 1);

    ck_assert_int_eq(bootstrap_install(node, &err), 0);
    ck_assert(!exists_in(node, "bootstrap/INSTALL"));
    ck_assert(!exists_in(node, "raft-snapshot"));
    char before[200];
    snprintf(before, sizeof before, "wal.before-%s", name);
    ck_assert(!exists_in(node, before));
    db = open_db_at(node);
    for (int i = 0; i < 200; i++)
        ck_assert_msg(has(db, "old", i), "old-%04d lost", i);
    ck_assert_int_eq(strata_db_close(&db, &err), 0);

    /* Damage found once the old log is aside: the start fails, naming it. */
    stage_copy(root, node, name, sizeof name);
    snprintf(boot, sizeof boot, "%s/bootstrap/%s", node, name);
    ck_assert_int_eq(strata_snapshot_read(boot, &meta, &err), 0);
    for (size_t i = 0; i < meta.n_files; i++)
        if (!strncmp(meta.files[i].name, "MANIFEST-", 9))
            snprintf(victim, sizeof victim, "%s/%s", boot, meta.files[i].name);
    strata_snapshot_meta_free(&meta);
    ts_file_read_at(victim, 0, &b, 1);
    b ^= 0x40;
    ts_file_write_at(victim, 0, &b, 1);
    char wal[1100], moved[1300];
    snprintf(wal, sizeof wal, "%s/wal", node);
    snprintf(moved, sizeof moved, "%s/wal.before-%s", node, name);
    ck_assert_int_eq(rename(wal, moved), 0);
    ck_assert_int_ne(bootstrap_install(node, &err), 0);
    ck_assert_msg(strstr(err.msg, name) && strstr(err.msg, "damaged"), "error: %s", err.msg);
    ts_rmtree(root);
    free(node);
    free(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("writer_server");
    TCase *tc = tcase_create("writer_server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, serves_in_process_and_stops_on_terminate);
    tcase_add_test(tc, a_multi_get_past_the_reply_cap_stops_early);
    tcase_add_test(tc, reserved_keys_and_topics_are_refused_on_every_client_write_path);
    tcase_add_test(tc, a_flood_of_jobs_is_refused_past_the_cap_and_the_writer_serves_on);
    tcase_add_test(tc, every_job_verb_is_capped);
    tcase_add_test(tc, a_stop_waits_for_running_jobs_and_answers_them);
    tcase_add_test(tc, an_install_interrupted_by_a_crash_is_finished_by_the_next_start);
    tcase_add_test(tc, a_damaged_copy_is_discarded_before_it_touches_the_data_dir);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
