/* What an operator's tooling reads from every process of a node: each
 * /metrics page passes `promtool check metrics`, carries process_* and
 * strata_build_info under its own process label, and the distributor shows
 * per-subscriber lag; /readyz says whether the writer is there; logs carry
 * time, process and level in text and JSON. */
#include <check.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "strata/subscriber.h"
#include "support.h"

#define DEADLINE_MS 20000

static const char *const processes[] = {"writer",    "election",    "replicator",
                                        "compactor", "distributor", "snapshotter"};
#define N_PROCESSES (sizeof processes / sizeof processes[0])

static ts_cluster_t s_cl;
static ts_member_t *s_m;

static void whole_node(void)
{
    ts_cluster_start(&s_cl, 1, "obs");
    s_m = &s_cl.m[0];
    ck_assert_int_eq(ts_cluster_master(&s_cl, DEADLINE_MS, NULL), 1);
    ts_member_start_compactor(s_m);
    ts_member_start_snapshotter(s_m, NULL);
    ts_member_start_distributor(s_m);
}

/* The metrics URL a process wrote in <data>/<process>.endpoints. */
static char *metrics_url(const char *process)
{
    char path[700], key[64];
    snprintf(path, sizeof path, "%s/%s.endpoints", s_m->data, process);
    zconfig_t *root = zconfig_load(path);
    ck_assert_msg(root, "no %s", path);
    snprintf(key, sizeof key, "%s/metrics", process);
    char *url = strdup(zconfig_get(root, key, ""));
    zconfig_destroy(&root);
    ck_assert_msg(!strncmp(url, "http://", 7), "%s: metrics '%s'", path, url);
    return url;
}

/* url with /metrics replaced by path. */
static char *admin_url(const char *process, const char *path)
{
    char *url = metrics_url(process);
    char *slash = strstr(url + 7, "/");
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    size_t cap = strlen(url) + strlen(path) + 1;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    snprintf(out, cap, "%s%s", url, path);
    free(url);
    return out;
}

static char *page_of(const char *process)
{
    char *url = metrics_url(process);
    char *resp = ts_http_get(url);
    free(url);
    ck_assert_ptr_nonnull(strstr(resp, " 200 "));
    char *body = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    char *page = strdup(body + 4);
    free(resp);
    return page;
}

static bool have_promtool(void)
{
    return system("command -v promtool >/dev/null 2>&1") == 0;
}

START_TEST(every_metrics_page_passes_promtool)
{
    whole_node();
    char *dir = ts_tempdir("obs-pages");
    for (size_t i = 0; i < N_PROCESSES; i++) {
        char *page = page_of(processes[i]);
        char *file = ts_path(dir, processes[i]);
        FILE *f = fopen(file, "w");
        ck_assert_ptr_nonnull(f);
        fputs(page, f);
        fclose(f);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", file);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        char said[4096] = "";
        size_t n = fread(said, 1, sizeof said - 1, p);
        said[n] = '\0';
        int status = pclose(p);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "%s: promtool check metrics says:\n%s", processes[i], said);
        free(file);
        free(page);
    }
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* One rule keeps the processes of a node apart: every sample carries
 * process="<name>", the standard families and strata_build_info too. */
START_TEST(every_sample_is_labelled_by_its_process)
{
    whole_node();
    for (size_t i = 0; i < N_PROCESSES; i++) {
        char *page = page_of(processes[i]);
        char label[64], want[160];
        snprintf(label, sizeof label, "{process=\"%s\"", processes[i]);
        char *save = NULL;
        char *copy = strdup(page);
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            if (line[0] != '#')
                ck_assert_msg(strstr(line, label), "%s: unlabelled sample %s", processes[i], line);
        free(copy);
        const char *families[] = {"process_cpu_seconds_total",
                                  "process_resident_memory_bytes",
                                  "process_virtual_memory_bytes",
                                  "process_open_fds",
                                  "process_max_fds",
                                  "process_start_time_seconds"};
        for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
            snprintf(want, sizeof want, "\n%s%s}", families[k], label);
            ck_assert_msg(strstr(page, want), "%s: no %s", processes[i], want);
        }
        snprintf(want, sizeof want, "\nstrata_build_info%s,version=\"", label);
        ck_assert_msg(strstr(page, want), "%s: no strata_build_info", processes[i]);
        ck_assert_ptr_nonnull(strstr(page, ",commit=\""));
        free(page);
    }
}
END_TEST

typedef struct {
    const char *want;
} lag_wait_t;

static bool lag_shown(void *arg)
{
    char *page = page_of("distributor");
    bool found = strstr(page, ((lag_wait_t *)arg)->want) != NULL;
    free(page);
    return found;
}

START_TEST(distributor_exports_lag_per_durable_subscriber)
{
    whole_node();
    strata_sub_options_t opts = {.stream_endpoint = s_m->dist.live,
                                 .history_endpoint = s_m->dist.history,
                                 .durable = "obs-reader",
                                 .from_seq = 1};
    strata_sub_t *sub = NULL;
    strata_error_t err;
    ck_assert_msg(strata_sub_open(&opts, &sub, &err) == 0, "durable open: %s", err.msg);
    lag_wait_t w = {"strata_distributor_subscriber_lag_records{process=\"distributor\","
                    "subscriber=\"obs-reader\"} "};
    ck_assert_msg(ts_wait_for(lag_shown, &w, DEADLINE_MS), "no %s", w.want);
    w.want = "strata_distributor_subscriber_lag_seconds{process=\"distributor\","
             "subscriber=\"obs-reader\"} ";
    ck_assert_msg(ts_wait_for(lag_shown, &w, DEADLINE_MS), "no %s", w.want);
    strata_sub_close(&sub);
}
END_TEST

typedef struct {
    char *url;
    const char *status; /* " 200 " or " 503 " */
} ready_wait_t;

static bool readyz_is(void *arg)
{
    ready_wait_t *w = arg;
    char *resp = ts_http_get(w->url);
    bool match = !strncmp(resp, "HTTP/1.", 7) && strstr(resp, w->status) == resp + 8;
    free(resp);
    return match;
}

/* /readyz means one thing everywhere: this process and the writer it
 * serves can take their work. A compactor or snapshotter whose writer died
 * says 503 within a few seconds, and 200 again once a writer is back. */
START_TEST(a_dependant_of_a_dead_writer_is_not_ready)
{
    whole_node();
    const char *dependants[] = {"compactor", "snapshotter", "distributor", "election",
                                "replicator"};
    ready_wait_t w[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (ready_wait_t){admin_url(dependants[i], "/readyz"), " 200 "};
        ck_assert_msg(ts_wait_for(readyz_is, &w[i], DEADLINE_MS), "%s never ready", dependants[i]);
    }
    ts_node_kill9(&s_m->writer);
    for (int i = 0; i < 5; i++) {
        w[i].status = " 503 ";
        ck_assert_msg(ts_wait_for(readyz_is, &w[i], DEADLINE_MS),
                      "%s still ready %d s after its writer died", dependants[i],
                      DEADLINE_MS / 1000);
    }
    ts_member_start_writer(s_m);
    for (int i = 0; i < 5; i++) {
        w[i].status = " 200 ";
        ck_assert_msg(ts_wait_for(readyz_is, &w[i], DEADLINE_MS),
                      "%s not ready again with its writer back", dependants[i]);
        free(w[i].url);
    }
}
END_TEST

/* Each line of a log file, with a count of those that pass ok(). */
static size_t lines_of(const char *path, bool (*ok)(const char *line, void *arg), void *arg,
                       size_t *passed)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "no log %s", path);
    char line[4096];
    size_t n = 0;
    *passed = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        *passed += ok(line, arg);
    }
    fclose(f);
    return n;
}

static bool text_line(const char *line, void *arg)
{
    return regexec(arg, line, 0, NULL, 0) == 0;
}

static bool ready_event(const char *line, void *arg)
{
    return strstr(line, " writer info event=ready ") != NULL;
}

START_TEST(text_logs_have_time_process_and_level_on_every_line)
{
    char *dir = ts_tempdir("obs-text");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}"
                             "[+-][0-9]{2}:[0-9]{2} writer (error|warning|info|debug) event=",
                             REG_EXTENDED),
                     0);
    size_t passed, ready;
    size_t n = lines_of(node.log, text_line, &re, &passed);
    regfree(&re);
    ck_assert_msg(n > 0 && passed == n, "%zu of %zu lines of %s are not time process level event",
                  n - passed, n, node.log);
    lines_of(node.log, ready_event, NULL, &ready);
    ck_assert_uint_eq(ready, 1);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

static bool json_line(const char *line, void *arg)
{
    cJSON *obj = cJSON_Parse(line);
    const cJSON *process = cJSON_GetObjectItem(obj, "process"),
                *time = cJSON_GetObjectItem(obj, "time"),
                *level = cJSON_GetObjectItem(obj, "level"),
                *event = cJSON_GetObjectItem(obj, "event");
    bool ok = cJSON_IsString(process) && !strcmp(process->valuestring, "writer") &&
              cJSON_IsString(time) && strlen(time->valuestring) == 29 && cJSON_IsString(level) &&
              cJSON_IsString(event);
    if (ok && !strcmp(event->valuestring, "ready"))
        (*(int *)arg)++;
    cJSON_Delete(obj);
    return ok;
}

START_TEST(json_logs_are_one_object_a_line)
{
    char *dir = ts_tempdir("obs-json");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    const char *const env[] = {"STRATA_LOG_FORMAT=json", NULL};
    ts_node_start(&node, data, env);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    int ready = 0;
    size_t passed;
    size_t n = lines_of(node.log, json_line, &ready, &passed);
    ck_assert_msg(n > 0 && passed == n, "%zu of %zu lines of %s are not the JSON object",
                  n - passed, n, node.log);
    ck_assert_int_eq(ready, 1);
    ts_rmtree(dir);
    free(data);
    free(dir);
}
END_TEST

static void teardown(void)
{
    if (s_m)
        ts_cluster_destroy(&s_cl);
    s_m = NULL;
}

int main(void)
{
    if (!have_promtool()) {
        fprintf(stderr, "promtool not installed (deploy/install-deps.sh installs it): skipped\n");
        return 77;
    }
    Suite *s = suite_create("observability");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_metrics_page_passes_promtool);
    tcase_add_test(tc, every_sample_is_labelled_by_its_process);
    tcase_add_test(tc, distributor_exports_lag_per_durable_subscriber);
    suite_add_tcase(s, tc);
    TCase *ready = tcase_create("readiness");
    tcase_add_checked_fixture(ready, NULL, teardown);
    tcase_set_timeout(ready, 180);
    tcase_add_test(ready, a_dependant_of_a_dead_writer_is_not_ready);
    suite_add_tcase(s, ready);
    TCase *logs = tcase_create("logs");
    tcase_set_timeout(logs, 120);
    tcase_add_test(logs, text_logs_have_time_process_and_level_on_every_line);
    tcase_add_test(logs, json_logs_are_one_object_a_line);
    suite_add_tcase(s, logs);
    return ts_run(s);
}
