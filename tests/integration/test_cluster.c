/* A writer that hosts the consensus core (cluster/id set): real
 * strata-writer processes, talked to over ZeroMQ. A node's whole cluster
 * needs its election and replicator; what one writer does on its own is
 * here: a one-voter cluster commits every write through the core, a voter
 * that reaches no peer takes no writes, a disk that was never bootstrapped
 * does not vote, and a client given both kinds of node writes to the
 * master. */
#include <check.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node.h"
#include "strata/client.h"
#include "support.h"

/* The node's status, polled until its role is want or 15 s pass. */
static uint64_t wait_role(const char *endpoint, const char *want)
{
    strata_client_t *c = ts_connect(endpoint, 2000);
    uint64_t deadline = ts_now_ns() + 15000000000ull, term = 0;
    char role[32] = "";
    while (ts_now_ns() < deadline) {
        strata_reply_t rep;
        strata_error_t err;
        if (strata_client_status(c, &rep, &err) == 0) {
            snprintf(role, sizeof role, "%s", rep.role ? rep.role : "");
            term = rep.term;
            strata_reply_clear(&rep);
            /* A new master serves once its first entry is committed. */
            void *value = NULL;
            size_t len = 0;
            if (!strcmp(role, want) &&
                (strcmp(want, "leader") ||
                 strata_client_get(c, "?", 1, &value, &len, &err) != STRATA_ENOTMASTER))
                break;
            free(value);
        }
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling the role with a deadline */
    }
    strata_client_destroy(&c);
    ck_assert_msg(!strcmp(role, want), "%s: role '%s', want %s", endpoint, role, want);
    return term;
}

static const char *const one_voter[] = {"STRATA_CLUSTER_ID=1", "STRATA_CLUSTER_VOTERS=1",
                                        "STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:7400",
                                        "STRATA_CLUSTER_BOOTSTRAP=true", NULL};

/* A voter of three that reaches neither peer: never master. */
static const char *const lone_voter[] = {"STRATA_CLUSTER_ID=1", "STRATA_CLUSTER_VOTERS=1,2,3",
                                         "STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:7400,"
                                         "2=tcp://127.0.0.1:7401,3=tcp://127.0.0.1:7402",
                                         "STRATA_CLUSTER_BOOTSTRAP=true", NULL};

START_TEST(a_one_voter_cluster_commits_every_write_through_the_core)
{
    char *root = ts_tempdir("cluster1"), *dir = ts_path(root, "node");
    ts_node_t node;
    ts_node_start(&node, dir, one_voter);
    uint64_t term = wait_role(node.endpoint, "leader");
    ck_assert_uint_ge(term, 1);
    strata_client_t *c = ts_connect(node.endpoint, 10000);
    strata_error_t err;
    uint64_t seq = 0;
    /* Both durabilities are acknowledged at the commit. */
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k1", 2, "v1", 2, &seq, &err), 0);
    ck_assert_uint_ge(seq, 2); /* the term's no-op came first */
    uint64_t seq2 = 0;
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_ASYNC, "k2", 2, "v2", 2, &seq2, &err),
                     0);
    ck_assert_uint_eq(seq2, seq + 1);
    void *value = NULL;
    size_t value_len = 0;
    ck_assert_int_eq(strata_client_get(c, "k2", 2, &value, &value_len, &err), 0);
    ck_assert_uint_eq(value_len, 2);
    free(value);
    ck_assert_uint_ge(ts_stat(c, "commit_seq"), seq2);
    ck_assert_uint_eq(ts_stat(c, "term"), term);
    /* Reads say what they reflect, and wait for nothing: a min_seq past
     * what the node applied is refused. */
    strata_request_t get = {
        .op = STRATA_OP_GET, .key = {(const uint8_t *)"k2", 2}, .min_seq = seq2};
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_call(c, &get, &rep, &err), 0);
    ck_assert_uint_ge(rep.applied_seq, seq2);
    strata_reply_clear(&rep);
    get.min_seq = seq2 + 1000;
    ck_assert_int_eq(strata_client_call(c, &get, &rep, &err), STRATA_EBUSY);
    strata_reply_clear(&rep);
    ck_assert_msg(strstr(err.msg, "get.min_seq: ") &&
                      strstr(err.msg, "is past what this node has applied"),
                  "%s", err.msg);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);

    /* A restart is a new election: a higher term, its own no-op, the data
     * kept. */
    ts_node_start(&node, dir, one_voter);
    uint64_t term2 = wait_role(node.endpoint, "leader");
    ck_assert_uint_gt(term2, term);
    c = ts_connect(node.endpoint, 10000);
    ck_assert_int_eq(strata_client_get(c, "k1", 2, &value, &value_len, &err), 0);
    ck_assert(value_len == 2 && memcmp(value, "v1", 2) == 0);
    free(value);
    uint64_t seq3 = 0;
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k3", 2, "v3", 2, &seq3, &err),
                     0);
    ck_assert_uint_eq(seq3, seq2 + 2);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(root);
    free(root);
    free(dir);
}
END_TEST

START_TEST(a_voter_that_reaches_no_peer_takes_no_writes)
{
    char *root = ts_tempdir("cluster3"), *dir = ts_path(root, "node");
    ts_node_t node;
    ts_node_start(&node, dir, lone_voter);
    strata_client_t *c = ts_connect(node.endpoint, 10000);
    strata_error_t err;
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ENOTMASTER);
    ck_assert_msg(strstr(err.msg, "not master: no master is known in term"), "%s", err.msg);
    /* Reads are served from what this node holds. */
    void *value = NULL;
    size_t value_len = 0;
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &value_len, &err), STRATA_ENOTFOUND);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_status(c, &rep, &err), 0);
    ck_assert_msg(strcmp(rep.role, "leader") != 0, "role %s", rep.role);
    strata_reply_clear(&rep);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(root);
    free(root);
    free(dir);
}
END_TEST

START_TEST(an_empty_disk_that_was_not_bootstrapped_does_not_vote)
{
    char *root = ts_tempdir("cluster-fresh"), *dir = ts_path(root, "node");
    const char *const env[] = {"STRATA_CLUSTER_ID=1", "STRATA_CLUSTER_VOTERS=1",
                               "STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:7400", NULL};
    ts_node_t node;
    ts_node_start(&node, dir, env);
    wait_role(node.endpoint, "learner");
    strata_client_t *c = ts_connect(node.endpoint, 10000);
    strata_error_t err;
    ck_assert_int_eq(strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, NULL, &err),
                     STRATA_ENOTMASTER);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(root);
    free(root);
    free(dir);
}
END_TEST

START_TEST(a_client_given_the_list_finds_the_master)
{
    /* Two real writers standing for two nodes: one that knows no master,
     * one that is master of its own one-voter cluster. */
    char *lost_root = ts_tempdir("cluster-lost"), *lost_dir = ts_path(lost_root, "node");
    char *master_root = ts_tempdir("cluster-master"), *master_dir = ts_path(master_root, "node");
    ts_node_t lost, master;
    ts_node_start(&lost, lost_dir, lone_voter);
    ts_node_start(&master, master_dir, one_voter);
    wait_role(master.endpoint, "leader");

    const char *const list[] = {lost.endpoint, master.endpoint};
    strata_client_options_t opts = {.endpoints = list, .n_endpoints = 2, .timeout_ms = 10000};
    strata_client_t *c = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_client_connect(&opts, &c, &err), 0);
    ck_assert_str_eq(strata_client_endpoint(c), lost.endpoint);
    /* A read is served where the client is. */
    void *value = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &len, &err), STRATA_ENOTFOUND);
    ck_assert_str_eq(strata_client_endpoint(c), lost.endpoint);

    uint64_t seq = 0;
    int rc = strata_client_put(c, STRATA_DURABILITY_SYNC, "k", 1, "v", 1, &seq, &err);
    ck_assert_msg(rc == 0, "put: %s", err.msg);
    ck_assert_str_eq(strata_client_endpoint(c), master.endpoint);
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &len, &err), 0);
    ck_assert(len == 1 && memcmp(value, "v", 1) == 0);
    free(value);
    strata_client_destroy(&c);

    /* The write is on the master only. */
    c = ts_connect(lost.endpoint, 10000);
    ck_assert_int_eq(strata_client_get(c, "k", 1, &value, &len, &err), STRATA_ENOTFOUND);
    strata_client_destroy(&c);
    ck_assert_int_eq(ts_node_stop(&lost), 0);
    ck_assert_int_eq(ts_node_stop(&master), 0);
    ts_rmtree(lost_root);
    ts_rmtree(master_root);
    free(lost_root);
    free(master_root);
    free(lost_dir);
    free(master_dir);
}
END_TEST

/* One request on a raw DEALER, so a test can send the same request id
 * twice: the reply's status and seq. */
static int raw_put(zsock_t *dealer, uint64_t session, uint64_t request_id, const char *key,
                   const char *value, uint64_t *seq, char *message, size_t cap)
{
    strata_request_t req = {.request_id = request_id,
                            .op = STRATA_OP_PUT,
                            .session = session,
                            .key = {(const uint8_t *)key, strlen(key)},
                            .value = {(const uint8_t *)value, strlen(value)}};
    uint8_t *frame = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_request_encode(&req, &frame, &len, &err), 0);
    ck_assert_int_eq(zsock_send(dealer, "b", frame, len), 0);
    free(frame);
    zframe_t *f = zframe_recv(dealer);
    ck_assert_ptr_nonnull(f);
    strata_reply_t rep;
    ck_assert_int_eq(strata_reply_decode(zframe_data(f), zframe_size(f), &rep, &err), 0);
    ck_assert_uint_eq(rep.request_id, request_id);
    int status = rep.status;
    *seq = rep.seq;
    snprintf(message, cap, "%s", rep.message ? rep.message : "");
    strata_reply_clear(&rep);
    zframe_destroy(&f);
    return status;
}

static uint64_t last_seq_of(const char *endpoint)
{
    strata_client_t *c = ts_connect(endpoint, 10000);
    uint64_t v = ts_stat(c, "last_seq");
    strata_client_destroy(&c);
    return v;
}

/* A session's request id is applied once: sent again it is answered with
 * the first seq and writes nothing, an older one is refused, and the record
 * outlives a restart (it is in the log). On a single node and on a cluster
 * node alike. */
static void sessions_apply_each_request_once(const char *const *env)
{
    char *root = ts_tempdir("sessions"), *dir = ts_path(root, "node");
    ts_node_t node;
    ts_node_start(&node, dir, env);
    if (env)
        wait_role(node.endpoint, "leader");
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_rcvtimeo(d, 5000);
    ck_assert_int_eq(zsock_connect(d, "%s", node.endpoint), 0);
    const uint64_t session = 0x5e55101100000001ull;
    char msg[512];
    uint64_t seq = 0, again = 0;
    ck_assert_int_eq(raw_put(d, session, 7, "s-key", "one", &seq, msg, sizeof msg), 0);
    uint64_t last = last_seq_of(node.endpoint);
    ck_assert_int_eq(raw_put(d, session, 7, "s-key", "two", &again, msg, sizeof msg), 0);
    ck_assert_uint_eq(again, seq);
    ck_assert_uint_eq(last_seq_of(node.endpoint), last); /* nothing written */
    ck_assert_int_eq(raw_put(d, session, 6, "s-key", "old", &again, msg, sizeof msg),
                     STRATA_ECONFLICT);
    ck_assert_msg(strstr(msg, "request 6 of session 5e55101100000001 is older than its last "
                              "write, request 7"),
                  "%s", msg);
    uint64_t next = 0;
    ck_assert_int_eq(raw_put(d, session, 8, "s-key", "three", &next, msg, sizeof msg), 0);
    ck_assert_uint_gt(next, seq);
    zsock_destroy(&d);
    ck_assert_int_eq(ts_node_stop(&node), 0);

    ts_node_start(&node, dir, env);
    if (env)
        wait_role(node.endpoint, "leader");
    d = zsock_new(ZMQ_DEALER);
    zsock_set_rcvtimeo(d, 5000);
    ck_assert_int_eq(zsock_connect(d, "%s", node.endpoint), 0);
    ck_assert_int_eq(raw_put(d, session, 8, "s-key", "four", &again, msg, sizeof msg), 0);
    ck_assert_uint_eq(again, next);
    strata_client_t *c = ts_connect(node.endpoint, 10000);
    void *value = NULL;
    size_t len = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_client_get(c, "s-key", 5, &value, &len, &err), 0);
    ck_assert(len == 5 && !memcmp(value, "three", 5));
    free(value);
    strata_client_destroy(&c);
    zsock_destroy(&d);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(root);
    free(root);
    free(dir);
}

START_TEST(a_session_applies_each_request_once_on_a_single_node)
{
    sessions_apply_each_request_once(NULL);
}
END_TEST

START_TEST(a_session_applies_each_request_once_on_a_cluster_node)
{
    sessions_apply_each_request_once(one_voter);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("one_writer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_one_voter_cluster_commits_every_write_through_the_core);
    tcase_add_test(tc, a_voter_that_reaches_no_peer_takes_no_writes);
    tcase_add_test(tc, an_empty_disk_that_was_not_bootstrapped_does_not_vote);
    tcase_add_test(tc, a_session_applies_each_request_once_on_a_single_node);
    tcase_add_test(tc, a_session_applies_each_request_once_on_a_cluster_node);
    tcase_add_test(tc, a_client_given_the_list_finds_the_master);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ts_run(cluster_suite());
}
