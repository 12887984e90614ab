/* stratactl check against a real writer and distributor: Nagios's exit codes,
 * a process killed with SIGKILL (its endpoints file left behind) found
 * CRITICAL, --process scoping, the disk thresholds, and --json carrying the
 * same state as the exit code. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"
#include "support.h"

typedef struct {
    int code;
    char *out;
} run_t;

/* stratactl with args (NULL-terminated) and extra_env (may be NULL). */
static run_t run_env(const char *extra_env, const char *const *args)
{
    const char *argv[32] = {STRATACTL_BIN};
    size_t n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    run_t r = {0};
    r.code = ts_run_output(argv, extra_env, TS_STDOUT, 60, &r.out);
    return r;
}

#define check_run(...) run_env(NULL, (const char *const[]){"check", __VA_ARGS__, NULL})

static bool has_line(const char *out, const char *prefix)
{
    for (const char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, prefix, strlen(prefix)))
            return true;
    return false;
}

static cJSON *check_row(const cJSON *doc, const char *name)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "checks"))
    {
        const cJSON *n = cJSON_GetObjectItem(row, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return (cJSON *)row;
    }
    return NULL;
}

static const char *state_of(const cJSON *obj)
{
    const cJSON *s = cJSON_GetObjectItem(obj, "state");
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* ---- without a node ------------------------------------------------------------ */

START_TEST(bad_flags_and_names_are_unknown_exit_3)
{
    run_t r = check_run("--bogus");
    ck_assert_int_eq(r.code, 3);
    free(r.out);
    r = check_run("--process", "writer,bogus");
    ck_assert_int_eq(r.code, 3);
    free(r.out);
    r = check_run("--disk-warn", "101");
    ck_assert_int_eq(r.code, 3);
    free(r.out);
    r = check_run("extra-argument");
    ck_assert_int_eq(r.code, 3);
    free(r.out);
    r = check_run("--json", "--max-lag-ms", "soon");
    ck_assert_int_eq(r.code, 3);
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_msg(doc, "not JSON: %s", r.out);
    ck_assert_str_eq(state_of(doc), "UNKNOWN");
    ck_assert_int_eq(cJSON_GetObjectItem(doc, "code")->valueint, 3);
    cJSON_Delete(doc);
    free(r.out);
}
END_TEST

START_TEST(help_names_the_exit_codes)
{
    run_t r = run_env(NULL, (const char *const[]){"help", "check", NULL});
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--process"));
    ck_assert_ptr_nonnull(strstr(r.out, "3 UNKNOWN"));
    free(r.out);
    r = run_env(NULL, (const char *const[]){"--help", NULL});
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"));
    free(r.out);
}
END_TEST

START_TEST(a_missing_data_dir_is_critical)
{
    char *dir = ts_tempdir("check");
    char *missing = ts_path(dir, "nothing-here");
    run_t r = check_run("--dir", missing);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(has_line(r.out, "CRITICAL: dir: "), "%s", r.out);
    free(r.out);
    free(missing);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- a node: writer and distributor -------------------------------------------- */

static char *s_dir;
static ts_node_t s_node;
static ts_dist_t s_dist;

static void node_setup(void)
{
    s_dir = ts_tempdir("check");
    char *data = ts_path(s_dir, "node");
    ts_node_start(&s_node, data, NULL);
    ts_dist_start(&s_dist, data, NULL);
    free(data);
}

static void node_teardown(void)
{
    if (s_dist.pid > 0)
        ts_dist_stop(&s_dist);
    if (ts_node_alive(&s_node))
        ts_node_stop(&s_node);
    ts_rmtree(s_dir);
    free(s_dir);
}

static bool dist_ready(void *arg)
{
    (void)arg;
    run_t r = check_run("--dir", s_node.dir, "--process", "distributor");
    free(r.out);
    return r.code == 0;
}

START_TEST(a_running_node_is_ok)
{
    /* The distributor is ready once it has attached to the writer's ring. */
    ck_assert(ts_wait_for(dist_ready, NULL, 15000));
    run_t r = check_run("--dir", s_node.dir);
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.out);
    ck_assert_msg(!strncmp(r.out, "OK: 2 processes ready", 21), "%s", r.out);
    ck_assert_msg(has_line(r.out, "writer: OK: ready"), "%s", r.out);
    ck_assert_msg(has_line(r.out, "distributor: OK: ready"), "%s", r.out);
    ck_assert_msg(has_line(r.out, "role: OK: standalone"), "%s", r.out);
    ck_assert_msg(has_line(r.out, "disk: OK: "), "%s", r.out);
    ck_assert_msg(has_line(r.out, "writable: OK: "), "%s", r.out);
    free(r.out);

    /* $STRATA_NODE_DATA_DIR stands in for --dir. */
    char env[700];
    snprintf(env, sizeof env, "STRATA_NODE_DATA_DIR=%s", s_node.dir);
    r = run_env(env, (const char *const[]){"check", NULL});
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.out);
    free(r.out);
}
END_TEST

START_TEST(json_carries_the_same_state_with_numbers)
{
    ck_assert(ts_wait_for(dist_ready, NULL, 15000));
    run_t r = check_run("--dir", s_node.dir, "--json", "--disk-warn", "0");
    ck_assert_int_eq(r.code, 1);
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_msg(doc, "not JSON: %s", r.out);
    ck_assert_str_eq(state_of(doc), "WARNING");
    ck_assert_int_eq(cJSON_GetObjectItem(doc, "code")->valueint, 1);
    const cJSON *disk = check_row(doc, "disk");
    ck_assert_ptr_nonnull(disk);
    ck_assert_str_eq(state_of(disk), "WARNING");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(disk, "used_percent")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(disk, "free_bytes")));
    const cJSON *writer = check_row(doc, "writer");
    ck_assert_ptr_nonnull(writer);
    ck_assert_str_eq(state_of(writer), "OK");
    ck_assert_int_eq((int)cJSON_GetObjectItem(writer, "pid")->valuedouble, s_node.pid);
    const cJSON *role = check_row(doc, "role");
    ck_assert_ptr_nonnull(role);
    ck_assert_str_eq(cJSON_GetObjectItem(role, "role")->valuestring, "standalone");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(role, "term")));
    cJSON_Delete(doc);
    free(r.out);
}
END_TEST

START_TEST(disk_thresholds_give_warning_and_critical)
{
    run_t r = check_run("--dir", s_node.dir, "--process", "writer", "--disk-warn", "0");
    ck_assert_msg(r.code == 1, "exit %d: %s", r.code, r.out);
    ck_assert_msg(!strncmp(r.out, "WARNING: disk: ", 15), "%s", r.out);
    free(r.out);
    r = check_run("--dir", s_node.dir, "--process", "writer", "--disk-crit", "0");
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.out);
    ck_assert_msg(!strncmp(r.out, "CRITICAL: disk: ", 16), "%s", r.out);
    free(r.out);
}
END_TEST

START_TEST(process_scopes_the_check)
{
    ck_assert(ts_wait_for(dist_ready, NULL, 15000));
    run_t r = check_run("--dir", s_node.dir, "--process", "distributor");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.out);
    ck_assert(has_line(r.out, "distributor: OK"));
    ck_assert(!has_line(r.out, "writer:"));
    ck_assert(!has_line(r.out, "role:"));
    free(r.out);
    /* A process named must run: this node has no snapshotter. */
    r = check_run("--dir", s_node.dir, "--process", "writer,snapshotter");
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.out);
    ck_assert(has_line(r.out, "writer: OK"));
    ck_assert(has_line(r.out, "snapshotter: CRITICAL: not running"));
    free(r.out);
}
END_TEST

START_TEST(a_killed_distributor_is_critical_despite_its_file)
{
    ck_assert(ts_wait_for(dist_ready, NULL, 15000));
    ts_dist_kill9(&s_dist);
    char *file = ts_path(s_node.dir, "distributor.endpoints");
    ck_assert_msg(access(file, F_OK) == 0, "the killed distributor's file is gone");
    free(file);
    run_t r = check_run("--dir", s_node.dir, "--timeout", "500");
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.out);
    ck_assert_msg(!strncmp(r.out, "CRITICAL: distributor: ", 23), "%s", r.out);
    ck_assert(has_line(r.out, "writer: OK"));
    free(r.out);
    r = check_run("--dir", s_node.dir, "--json", "--timeout", "500");
    ck_assert_int_eq(r.code, 2);
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_msg(doc, "not JSON: %s", r.out);
    ck_assert_str_eq(state_of(doc), "CRITICAL");
    ck_assert_str_eq(state_of(check_row(doc, "distributor")), "CRITICAL");
    cJSON_Delete(doc);
    free(r.out);
    /* The writer's own container is still healthy. */
    r = check_run("--dir", s_node.dir, "--process", "writer");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.out);
    free(r.out);
}
END_TEST

START_TEST(a_killed_writer_is_critical)
{
    ts_node_kill9(&s_node);
    run_t r = check_run("--dir", s_node.dir, "--process", "writer", "--timeout", "500");
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.out);
    ck_assert_msg(has_line(r.out, "writer: CRITICAL: not answering"), "%s", r.out);
    ck_assert_msg(has_line(r.out, "role: CRITICAL: "), "%s", r.out);
    free(r.out);
    ts_node_discard_ring(&s_node);
}
END_TEST

/* ---- cluster nodes: a one-voter master, and a voter that reaches no peer ----- */

static ts_node_t s_master, s_lost;

static void cluster_setup(void)
{
    s_dir = ts_tempdir("check-cluster");
    char *master = ts_path(s_dir, "master"), *lost = ts_path(s_dir, "lost");
    ts_node_start(&s_master, master, ts_env_sole_voter);
    ts_node_start(&s_lost, lost, ts_env_unreachable_voter);
    free(master);
    free(lost);
}

static void cluster_teardown(void)
{
    ts_node_stop(&s_master);
    ts_node_stop(&s_lost);
    ts_rmtree(s_dir);
    free(s_dir);
}

static bool is_leader(void *arg)
{
    (void)arg;
    run_t r = check_run("--dir", s_master.dir, "--process", "writer");
    bool leader = r.code == 0 && has_line(r.out, "role: OK: leader");
    free(r.out);
    return leader;
}

START_TEST(a_cluster_node_needs_its_consensus_pair_and_a_master)
{
    ck_assert(ts_wait_for(is_leader, NULL, 15000));
    run_t r = check_run("--dir", s_master.dir, "--process", "writer", "--json");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.out);
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_msg(doc, "not JSON: %s", r.out);
    const cJSON *role = check_row(doc, "role");
    ck_assert_str_eq(cJSON_GetObjectItem(role, "role")->valuestring, "leader");
    ck_assert(cJSON_GetObjectItem(role, "term")->valuedouble >= 1);
    ck_assert_str_eq(state_of(check_row(doc, "replication")), "OK");
    cJSON_Delete(doc);
    free(r.out);

    /* Without --process, a cluster node's election and replicator must run. */
    r = check_run("--dir", s_master.dir, "--timeout", "500");
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.out);
    ck_assert_msg(has_line(r.out, "election: CRITICAL: not running"), "%s", r.out);
    ck_assert_msg(has_line(r.out, "replicator: CRITICAL: not running"), "%s", r.out);
    free(r.out);

    r = check_run("--dir", s_lost.dir, "--process", "writer");
    ck_assert_msg(r.code == 1, "exit %d: %s", r.code, r.out);
    ck_assert_msg(!strncmp(r.out, "WARNING: role: ", 15), "%s", r.out);
    ck_assert_msg(has_line(r.out, "replication: WARNING: no master known"), "%s", r.out);
    free(r.out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("check");
    TCase *offline = tcase_create("offline");
    tcase_add_test(offline, bad_flags_and_names_are_unknown_exit_3);
    tcase_add_test(offline, help_names_the_exit_codes);
    tcase_add_test(offline, a_missing_data_dir_is_critical);
    suite_add_tcase(s, offline);

    TCase *node = tcase_create("node");
    tcase_set_timeout(node, 120);
    tcase_add_checked_fixture(node, node_setup, node_teardown);
    tcase_add_test(node, a_running_node_is_ok);
    tcase_add_test(node, json_carries_the_same_state_with_numbers);
    tcase_add_test(node, disk_thresholds_give_warning_and_critical);
    tcase_add_test(node, process_scopes_the_check);
    tcase_add_test(node, a_killed_distributor_is_critical_despite_its_file);
    tcase_add_test(node, a_killed_writer_is_critical);
    suite_add_tcase(s, node);

    TCase *cluster = tcase_create("cluster");
    tcase_set_timeout(cluster, 120);
    tcase_add_checked_fixture(cluster, cluster_setup, cluster_teardown);
    tcase_add_test(cluster, a_cluster_node_needs_its_consensus_pair_and_a_master);
    suite_add_tcase(s, cluster);
    return ts_run(s);
}
