/* stratactl as a user runs it: a child process whose exit code, stdout and
 * stderr are checked. First what needs no server (usage errors, help for
 * every verb, an unreachable server), then every verb against a real
 * strata-writer, in text and in --json. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cJSON.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>

#include "node.h"
#include "strata/client.h"
#include "support.h"

#ifndef STRATACTL_BIN
#error "STRATACTL_BIN must name the stratactl binary"
#endif

#define RUN_DEADLINE_MS 30000
#define MAX_ARGS        32

typedef struct {
    int code; /* exit status, or 128 + signal */
    char *out;
    size_t out_len; /* stdout may hold NULs */
    char *err;
} run_t;

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    ck_assert_ptr_nonnull(*buf);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* A stratactl child still running, its stdout and stderr on pipes. */
typedef struct {
    pid_t pid;
    int out_fd, err_fd;
    const char *verb;
} pending_t;

/* Starts stratactl with argv (NULL-terminated, without the binary),
 * server_env as $STRATA_SERVER (NULL: unset) and stdin from the file
 * stdin_path (NULL: the test's). */
static pending_t run_spawn_in(const char *server_env, const char *stdin_path,
                              const char *const *argv)
{
    const char *full[MAX_ARGS + 2] = {STRATACTL_BIN};
    size_t n = 1;
    for (; argv[n - 1]; n++) {
        ck_assert_uint_lt(n, MAX_ARGS);
        full[n] = argv[n - 1];
    }
    full[n] = NULL;

    int out_pipe[2], err_pipe[2];
    ck_assert_int_eq(pipe(out_pipe), 0);
    ck_assert_int_eq(pipe(err_pipe), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(out_pipe[0]);
        close(out_pipe[1]);
        close(err_pipe[0]);
        close(err_pipe[1]);
        if (stdin_path) {
            int in = open(stdin_path, O_RDONLY);
            if (in < 0 || dup2(in, 0) < 0)
                _exit(126);
            close(in);
        }
        if (server_env)
            setenv("STRATA_SERVER", server_env, 1);
        else
            unsetenv("STRATA_SERVER");
        execv(full[0], (char *const *)full);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    return (pending_t){.pid = pid, .out_fd = out_pipe[0], .err_fd = err_pipe[0], .verb = argv[0]};
}

static pending_t run_spawn(const char *server_env, const char *const *argv)
{
    return run_spawn_in(server_env, NULL, argv);
}

/* Whether the child has exited, without reaping it. */
static bool run_exited(const pending_t *p)
{
    siginfo_t info = {0};
    ck_assert_int_eq(waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT), 0);
    return info.si_pid == p->pid;
}

/* Collects both streams until the child closes them, then reaps it; fails
 * the test past RUN_DEADLINE_MS. */
static run_t run_wait(pending_t p)
{
    pid_t pid = p.pid;
    run_t r = {0};
    size_t out_len = 0, err_len = 0;
    append(&r.out, &out_len, "", 0);
    append(&r.err, &err_len, "", 0);
    struct pollfd fds[2] = {{.fd = p.out_fd, .events = POLLIN}, {.fd = p.err_fd, .events = POLLIN}};
    uint64_t deadline = ts_now_ns() + (uint64_t)RUN_DEADLINE_MS * 1000000ull;
    int open_fds = 2;
    while (open_fds > 0) {
        int64_t left_ms = ((int64_t)deadline - (int64_t)ts_now_ns()) / 1000000;
        if (left_ms <= 0) {
            kill(pid, SIGKILL);
            ck_abort_msg("stratactl %s did not finish in %d ms", p.verb, RUN_DEADLINE_MS);
        }
        int ready = poll(fds, 2, (int)left_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(ready, 0);
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            char buf[4096];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                if (i == 0)
                    append(&r.out, &out_len, buf, (size_t)got);
                else
                    append(&r.err, &err_len, buf, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    r.out_len = out_len;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

static run_t run_env(const char *server_env, const char *const *argv)
{
    return run_wait(run_spawn(server_env, argv));
}

static run_t run_argv(const char *const *argv)
{
    return run_env(NULL, argv);
}

/* run("get", "k", NULL) */
static run_t run(const char *first, ...)
{
    const char *argv[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *arg = first; arg; arg = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, MAX_ARGS);
        argv[n++] = arg;
    }
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv);
}

/* stdout must be exactly one JSON document; the caller deletes it. */
static cJSON *parse_json(const run_t *r)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(r->out, &end, 1);
    ck_assert_msg(doc != NULL, "stdout is not one JSON document: [%s]", r->out);
    return doc;
}

static const char *json_string(const cJSON *doc, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(doc, name);
    ck_assert_msg(cJSON_IsString(item), "'%s' is not a string member", name);
    return item->valuestring;
}

static double json_number(const cJSON *doc, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(doc, name);
    ck_assert_msg(cJSON_IsNumber(item), "'%s' is not a number member", name);
    return item->valuedouble;
}

/* An error is one line on stderr: "stratactl: <verb>: <message>", printed
 * once, its prefix once (not "stratactl: x: stratactl: x: ..." nor "verify:
 * verify DIR"), and the message nowhere else on stderr. */
static void assert_error_line(const run_t *r, const char *verb, const char *needle)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "stratactl: %s: ", verb);
    const char *line = strstr(r->err, prefix);
    ck_assert_msg(line != NULL, "no '%s' line in stderr: [%s]", prefix, r->err);
    const char *newline = strchr(line, '\n');
    ck_assert_msg(newline && newline[1] == '\0', "error is not the last, whole line: [%s]", r->err);
    if (needle)
        ck_assert_msg(strstr(line, needle) != NULL, "'%s' not in [%s]", needle, line);
    const char *message = line + strlen(prefix);
    ck_assert_msg(!strstr(message, "stratactl:"), "prefixed twice: [%s]", line);
    size_t verb_len = strlen(verb);
    ck_assert_msg(strncmp(message, verb, verb_len) ||
                      (message[verb_len] != ' ' && message[verb_len] != ':'),
                  "the verb twice: [%s]", line);
    char *text = strndup(message, (size_t)(newline - message));
    ck_assert_msg(strstr(r->err, text) == message, "the message twice: [%s]", r->err);
    free(text);
}

/* A loopback port reserved without listening: connecting is refused, so
 * nobody ever answers there. Close the fd when done. */
static int reserve_dead_port(char *endpoint, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(endpoint, cap, "tcp://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

static const char *const s_order_fields[] = {
    "order_id=ORD-1",
    "user_id=u42",
    "instrument_id=rb2410",
    "direction=buy",
    "offset=open",
    "price=101.5",
    "volume=3",
    "timestamp_ns=1700000000000000001",
};
#define N_ORDER_FIELDS (sizeof s_order_fields / sizeof s_order_fields[0])

/* argv for "record put OrderInsert <fields>" with one field replaced. */
static void order_argv(const char **argv, const char *server, const char *replace)
{
    size_t n = 0;
    if (server) {
        argv[n++] = "-s";
        argv[n++] = server;
    }
    argv[n++] = "record";
    argv[n++] = "put";
    argv[n++] = "OrderInsert";
    size_t name_len = replace ? strcspn(replace, "=") : 0;
    for (size_t i = 0; i < N_ORDER_FIELDS; i++)
        argv[n++] = replace && strncmp(s_order_fields[i], replace, name_len + 1) == 0
                        ? replace
                        : s_order_fields[i];
    argv[n] = NULL;
}

/* Writes len bytes to a new file dir/name; returns its path (malloc'd). */
static char *write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = ts_path(dir, name);
    FILE *out = fopen(path, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(fwrite(data, 1, len, out), len);
    ck_assert_int_eq(fclose(out), 0);
    return path;
}

/* run() with stdin from the file at stdin_path. */
static run_t run_in(const char *stdin_path, const char *first, ...)
{
    const char *argv[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *arg = first; arg; arg = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, MAX_ARGS);
        argv[n++] = arg;
    }
    va_end(ap);
    argv[n] = NULL;
    return run_wait(run_spawn_in(NULL, stdin_path, argv));
}

/* stdout must be exactly the len bytes at want. */
static void assert_out_bytes(const run_t *r, const void *want, size_t len)
{
    ck_assert_msg(r->out_len == len && memcmp(r->out, want, len) == 0,
                  "stdout: %zu bytes, want %zu: [%s]", r->out_len, len, r->out);
}

/* ---- without a server ---------------------------------------------------------- */

START_TEST(no_verb_is_a_usage_error)
{
    run_t r = run(NULL);
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_msg(strstr(r.err, "stratactl: no verb given\n") != NULL, "[%s]", r.err);
    run_free(&r);
}
END_TEST

START_TEST(unknown_verb_is_a_usage_error)
{
    run_t r = run("frobnicate", "x", NULL);
    ck_assert_int_eq(r.code, 2);
    assert_error_line(&r, "frobnicate", "unknown verb");
    run_free(&r);

    r = run("--json", "frobnicate", NULL);
    ck_assert_int_eq(r.code, 2);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "code"), 2);
    ck_assert_ptr_nonnull(strstr(json_string(doc, "error"), "unknown verb"));
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(wrong_arity_and_bad_flags_are_usage_errors)
{
    static const char *const cases[][7] = {
        {"put", "k", NULL},
        {"put", "k", "v", "w", NULL},
        {"get", NULL},
        {"get", "a", "b", NULL},
        {"del", NULL},
        {"scan", "a", "b", "c", NULL},
        {"status", "x", NULL},
        {"stats", "x", NULL},
        {"record", NULL},
        {"record", "frob", NULL},
        {"record", "put", NULL},
        {"record", "put", "NoSuchType", "a=1", NULL},
        {"record", "get", NULL},
        {"get", "k", "--limit", "3", NULL},
        {"put", "k", "v", "--record", NULL},
        {"scan", "--limit", "0", NULL},
        {"scan", "--limit", "ten", NULL},
        {"scan", "--page", "10001", NULL},
        {"--timeout", "0", "status", NULL},
        {"--timeout", NULL},
        {"--bogus", "status", NULL},
        {"-s", "not-an-endpoint", "status", NULL},
        {"help", "frobnicate", NULL},
        {"cluster", NULL},
        {"cluster", "transfer", NULL},
        {"cluster", "transfer", "0", NULL},
        {"cluster", "transfer", "two", NULL},
        {"cluster", "step-down", "2", NULL},
        {"cluster", "status", "--servers", "tcp://127.0.0.1:1,,tcp://127.0.0.1:2", NULL},
        {"cluster", "status", "--cluster", "/nonexistent/cluster.endpoints", NULL},
        {"cluster", "status", "--servers", "a", "--cluster", "b", NULL},
        {"cluster", "status", "--servers", "not-an-endpoint", NULL},
        {"status", "--servers", "tcp://127.0.0.1:1", NULL},
        {"dump", NULL},
        {"dump", "wal", NULL},
        {"dump", "wal", "x", "--count", "0", NULL},
        {"dump", "manifest", "x", "--stats", NULL},
        {"repair", NULL},
        {"repair", "x", "--from", "3", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run_argv(cases[i]);
        ck_assert_msg(r.code == 2, "case %zu (%s %s): exit %d, stderr [%s]", i, cases[i][0],
                      cases[i][1] ? cases[i][1] : "", r.code, r.err);
        ck_assert_msg(strstr(r.err, "stratactl: ") != NULL, "case %zu: stderr [%s]", i, r.err);
        ck_assert_msg(r.out[0] == '\0', "case %zu: stdout [%s]", i, r.out);
        run_free(&r);
    }
}
END_TEST

static const char *const s_verbs[] = {"put",
                                      "get",
                                      "mget",
                                      "batch",
                                      "del",
                                      "scan",
                                      "status",
                                      "stats",
                                      "tail",
                                      "subscribers",
                                      "snapshot",
                                      "snapshots",
                                      "backup",
                                      "restore",
                                      "keygen",
                                      "verify",
                                      "compact",
                                      "record put",
                                      "record get",
                                      "cluster status",
                                      "cluster transfer",
                                      "cluster step-down",
                                      "check",
                                      "dump wal",
                                      "dump sst",
                                      "dump manifest",
                                      "dump snapshot",
                                      "repair",
                                      "help"};
#define N_VERBS (sizeof s_verbs / sizeof s_verbs[0])

START_TEST(every_verb_has_help)
{
    for (size_t i = 0; i < N_VERBS; i++) {
        char verb[32], *sub;
        snprintf(verb, sizeof verb, "%s", s_verbs[i]);
        sub = strchr(verb, ' ');
        if (sub)
            *sub++ = '\0';
        char want[64];
        snprintf(want, sizeof want, "usage: stratactl [flags] %s", s_verbs[i]);

        const char *as_flag[] = {verb, sub ? sub : "--help", sub ? "--help" : NULL, NULL};
        const char *as_verb[] = {"help", verb, sub, NULL};
        const char *const *forms[] = {as_flag, as_verb};
        for (size_t f = 0; f < 2; f++) {
            run_t r = run_argv(forms[f]);
            ck_assert_msg(r.code == 0, "%s, form %zu: exit %d [%s]", s_verbs[i], f, r.code, r.err);
            ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "%s: [%s]", s_verbs[i], r.out);
            run_free(&r);
        }
    }
}
END_TEST

START_TEST(top_level_help_lists_verbs_and_exit_codes)
{
    run_t r = run("--help", NULL);
    ck_assert_int_eq(r.code, 0);
    for (size_t i = 0; i < N_VERBS; i++)
        ck_assert_msg(strstr(r.out, s_verbs[i]) != NULL, "%s missing", s_verbs[i]);
    ck_assert_ptr_nonnull(strstr(r.out, "exit codes:"));
    ck_assert_ptr_nonnull(strstr(r.out, "  4  unreachable"));
    ck_assert_ptr_nonnull(strstr(r.out, "--server"));
    run_free(&r);

    r = run("--json", "help", NULL);
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "verbs")), (int)N_VERBS);
    ck_assert_str_eq(json_string(cJSON_GetObjectItem(doc, "exit_codes"), "1"), "not found");
    cJSON_Delete(doc);
    run_free(&r);

    r = run("--version", NULL);
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "stratactl "));
    run_free(&r);
}
END_TEST

START_TEST(unreachable_server_exits_4)
{
    char endpoint[64];
    int fd = reserve_dead_port(endpoint, sizeof endpoint);
    static const char *const verbs[][3] = {
        {"get", "k", NULL}, {"put", "k", "v"}, {"del", "k", NULL},
        {"scan", NULL},     {"status", NULL},  {"stats", NULL},
    };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const char *argv[8] = {"-s", endpoint, "--timeout", "300"};
        memcpy(argv + 4, verbs[i], sizeof verbs[i]);
        uint64_t started = ts_now_ns();
        run_t r = run_argv(argv);
        ck_assert_msg(r.code == 4, "%s: exit %d [%s]", verbs[i][0], r.code, r.err);
        ck_assert_uint_lt((ts_now_ns() - started) / 1000000, 10000);
        assert_error_line(&r, verbs[i][0], "no reply");
        ck_assert_str_eq(r.out, "");
        run_free(&r);
    }

    /* $STRATA_SERVER is the default server; --json reports the error on stdout too. */
    const char *argv[] = {"--timeout", "300", "--json", "status", NULL};
    run_t r = run_env(endpoint, argv);
    ck_assert_int_eq(r.code, 4);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "code"), 4);
    ck_assert_int_eq((int)json_number(doc, "status"), STRATA_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(json_string(doc, "error"), endpoint));
    cJSON_Delete(doc);
    run_free(&r);
    close(fd);
}
END_TEST

START_TEST(record_help_lists_every_type_and_its_fields)
{
    run_t r = run("record", "--help", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    static const char *const wanted[] = {"usage: stratactl [flags] record put",
                                         "usage: stratactl [flags] record get",
                                         "OrderInsert",
                                         "OrderCancel",
                                         "TradeExecuted",
                                         "AccountUpdate",
                                         "MarketTick",
                                         "Raw",
                                         "exchange_order_id",
                                         "timestamp_ns",
                                         "direction buy|sell"};
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        ck_assert_msg(strstr(r.out, wanted[i]) != NULL, "no '%s' in [%s]", wanted[i], r.out);
    run_free(&r);
}
END_TEST

/* Every verb that talks to a process gives up after --timeout, not 5 s,
 * with a message naming the endpoint and the wait. */
START_TEST(unreachable_endpoint_fails_within_the_timeout)
{
    char dead[64];
    int fd = reserve_dead_port(dead, sizeof dead);
    static const char *const verbs[][6] = {
        {"status"},
        {"stats"},
        {"get", "k"},
        {"get", "k", "--raw"},
        {"mget", "a", "b"},
        {"put", "k", "v"},
        {"del", "k"},
        {"batch", "put", "k", "v"},
        {"scan"},
        {"record", "get", "k"},
        {"cluster", "status"},
        {"cluster", "step-down"},
        {"cluster", "transfer", "2"},
    };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const char *argv[12] = {"-s", dead, "--timeout", "300"};
        memcpy(argv + 4, verbs[i], sizeof verbs[i]);
        uint64_t started = ts_now_ns();
        run_t r = run_argv(argv);
        uint64_t ms = (ts_now_ns() - started) / 1000000;
        ck_assert_msg(r.code == 4, "%s: exit %d [%s]", verbs[i][0], r.code, r.err);
        ck_assert_msg(ms < 1500, "%s %s: %llu ms", verbs[i][0], verbs[i][1] ? verbs[i][1] : "",
                      (unsigned long long)ms);
        ck_assert_msg(strstr(r.err, "within 300 ms") && strstr(r.err, dead), "%s: [%s]",
                      verbs[i][0], r.err);
        char verb[64];
        bool two_words = !strcmp(verbs[i][0], "cluster") || !strcmp(verbs[i][0], "record");
        snprintf(verb, sizeof verb, "%s%s%s", verbs[i][0], two_words ? " " : "",
                 two_words ? verbs[i][1] : "");
        assert_error_line(&r, verb, dead);
        run_free(&r);
    }
    /* The distributor's verbs: its endpoints given as flags. */
    const char *tail[] = {"--timeout", "300", "tail", "--live", dead, "--history", dead, NULL};
    const char *subscribers[] = {"--timeout", "300", "subscribers", "--history", dead, NULL};
    const char *const *dist_verbs[] = {tail, subscribers};
    for (size_t i = 0; i < 2; i++) {
        uint64_t started = ts_now_ns();
        run_t r = run_argv(dist_verbs[i]);
        uint64_t ms = (ts_now_ns() - started) / 1000000;
        ck_assert_msg(r.code == 4, "%s: exit %d [%s]", dist_verbs[i][2], r.code, r.err);
        ck_assert_msg(ms < 1500, "%s: %llu ms", dist_verbs[i][2], (unsigned long long)ms);
        ck_assert_msg(strstr(r.err, "within 300 ms"), "%s: [%s]", dist_verbs[i][2], r.err);
        run_free(&r);
    }
    close(fd);
}
END_TEST

/* The offline verbs' errors come from the library, which names the path;
 * stratactl adds its verb once (not "verify: verify DIR", "dump manifest:
 * DIR: DIR: ..." or "keygen: keygen: ..."). */
START_TEST(offline_errors_name_the_path_once)
{
    char *dir = ts_tempdir("ctl-offline-errors");
    char *missing = ts_path(dir, "missing");
    char *unwritable = ts_path(missing, "key"), *secret = ts_path(missing, "key_secret");
    struct {
        const char *verb; /* as the error line names it */
        const char *argv[4];
        const char *path; /* the error names it */
        int code;
    } cases[] = {
        {"verify", {"verify", missing}, missing, 1},
        {"restore", {"restore", missing, dir}, missing, 1},
        {"dump manifest", {"dump", "manifest", missing}, missing, 1},
        {"dump snapshot", {"dump", "snapshot", missing}, missing, 1},
        {"dump wal", {"dump", "wal", missing}, missing, 1},
        {"keygen", {"keygen", unwritable}, secret, 3}, /* PATH and PATH_secret */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run_argv(cases[i].argv);
        ck_assert_msg(r.code == cases[i].code, "%s: exit %d [%s]", cases[i].verb, r.code, r.err);
        assert_error_line(&r, cases[i].verb, cases[i].path);
        const char *named = strstr(r.err, cases[i].path);
        ck_assert_msg(!strstr(named + 1, cases[i].path), "%s: the path twice: [%s]", cases[i].verb,
                      r.err);
        run_free(&r);
    }
    free(secret);
    free(unwritable);
    free(missing);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(invalid_record_is_refused_before_sending)
{
    /* The server's validation runs here first: the record never leaves. */
    char endpoint[64];
    int fd = reserve_dead_port(endpoint, sizeof endpoint);
    const char *argv[MAX_ARGS];
    order_argv(argv, endpoint, "price=-1");
    run_t r = run_argv(argv);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "record put", "OrderInsert.price");
    run_free(&r);
    close(fd);
}
END_TEST

/* keygen writes a certificate pair (the secret part 0600) with its role, and
 * stratactl talks to a CURVE writer and its distributor with --server-key
 * and --cert, and is never answered without them. */
START_TEST(keygen_and_curve_flags_reach_a_curve_writer)
{
    char *dir = ts_tempdir("ctl-curve");
    char *allowed = ts_path(dir, "allowed");
    ck_assert_int_eq(mkdir(allowed, 0700), 0);
    char server[1024], app[1024], app_public[1024];
    snprintf(server, sizeof server, "%s/server", dir);
    snprintf(app, sizeof app, "%s/app", dir);
    snprintf(app_public, sizeof app_public, "%s/app.cert", allowed);
    run_t r = run("keygen", server, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "public key "));
    run_free(&r);
    r = run("--json", "keygen", app, "--role", "admin", NULL);
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "role"), "admin");
    ck_assert_uint_eq(strlen(json_string(doc, "public_key")), 40);
    cJSON_Delete(doc);
    run_free(&r);
    char secret[1100];
    snprintf(secret, sizeof secret, "%s_secret", app);
    struct stat st;
    ck_assert_int_eq(stat(secret, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(rename(app, app_public), 0); /* the public part goes to the allow-list */

    char env_server[1100], env_clients[1100];
    snprintf(env_server, sizeof env_server, "STRATA_SECURITY_SERVER_CERT=%s_secret", server);
    snprintf(env_clients, sizeof env_clients, "STRATA_SECURITY_CLIENTS_DIR=%s", allowed);
    const char *const env[] = {"STRATA_SECURITY_CURVE=true", env_server, env_clients, NULL};
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, env);
    r = run("-s", node.endpoint, "--server-key", server, "--cert", secret, "put", "k", "v", NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = run("-s", node.endpoint, "--timeout", "1000", "get", "k", NULL);
    ck_assert_int_eq(r.code, 4);
    run_free(&r);

    /* The distributor takes the same keys on tail and subscribers; a durable
     * name is app's, so another allowed key is refused it. */
    char other[1024], other_public[1024], other_secret[1100];
    snprintf(other, sizeof other, "%s/other", dir);
    snprintf(other_public, sizeof other_public, "%s/other.cert", allowed);
    snprintf(other_secret, sizeof other_secret, "%s_secret", other);
    r = run("keygen", other, NULL);
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    ck_assert_int_eq(rename(other, other_public), 0);
    ts_dist_t dist;
    ts_dist_start(&dist, data, env);
    r = run("--server-key", server, "--cert", secret, "tail", "--durable", "ops", "--dir", data,
            "--from", "1", "--count", "1", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, "\tk\tv\n") != NULL, "[%s]", r.out);
    run_free(&r);
    r = run("--server-key", server, "--cert", secret, "subscribers", "--dir", data, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, "\nops ") != NULL, "[%s]", r.out);
    run_free(&r);
    r = run("--server-key", server, "--cert", other_secret, "tail", "--durable", "ops", "--dir",
            data, "--count", "1", NULL);
    ck_assert_msg(r.code == 3, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.err, "durable session 'ops' belongs to another client key"), "[%s]",
                  r.err);
    run_free(&r);
    r = run("--timeout", "1000", "tail", "--dir", data, "--count", "1", NULL);
    ck_assert_msg(r.code == 4, "exit %d [%s]", r.code, r.err);
    run_free(&r);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_rmtree(dir);
    free(data);
    free(allowed);
    free(dir);
}
END_TEST

/* ---- against a real writer --------------------------------------------------- */

static char *s_dir;
static ts_node_t s_node;

static void writer_setup(void)
{
    s_dir = ts_tempdir("ctl");
    char *data = ts_path(s_dir, "node");
    ts_node_start(&s_node, data, NULL);
    free(data);
}

static void writer_teardown(void)
{
    ck_assert_int_eq(ts_node_stop(&s_node), 0);
    ts_rmtree(s_dir);
    free(s_dir);
}

/* run() against the test's writer. */
#define ctl(...) run("-s", s_node.endpoint, __VA_ARGS__, NULL)

START_TEST(put_get_del_round_trip)
{
    run_t r = ctl("put", "k1", "v1");
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    unsigned long long seq = 0;
    ck_assert_int_eq(sscanf(r.out, "seq %llu", &seq), 1);
    ck_assert_uint_gt(seq, 0);
    run_free(&r);

    r = ctl("get", "k1");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "v1\n");
    run_free(&r);

    r = ctl("--json", "--async", "put", "k2", "v2");
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "key"), "k2");
    ck_assert(json_number(doc, "seq") > (double)seq);
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("get", "k2", "--json");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "key"), "k2");
    ck_assert_str_eq(json_string(doc, "value"), "v2");
    ck_assert_ptr_null(cJSON_GetObjectItem(doc, "record"));
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("-q", "del", "k1");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "");
    run_free(&r);

    r = ctl("get", "k1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    assert_error_line(&r, "get", "k1: not found");
    run_free(&r);

    r = ctl("-q", "get", "k1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, "");
    run_free(&r);

    r = ctl("--json", "get", "k1");
    ck_assert_int_eq(r.code, 1);
    doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "code"), 1);
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(odd_bytes_are_escaped_and_dash_keys_need_double_dash)
{
    run_t r = ctl("put", "tab\tkey", "a\x01\\z\xff");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    r = ctl("get", "tab\tkey");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "a\\x01\\\\z\\xff\n");
    run_free(&r);

    r = ctl("--json", "get", "tab\tkey");
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "key"), "tab\tkey");
    /* 0xff is not UTF-8: the value is base64, and says so. */
    ck_assert_str_eq(json_string(cJSON_GetObjectItem(doc, "value"), "base64"), "YQFcev8=");
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("put", "--", "-dash", "v");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    r = ctl("get", "--", "-dash");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "v\n");
    run_free(&r);
}
END_TEST

START_TEST(utf8_is_text_and_other_bytes_are_marked_base64)
{
    /* café in UTF-8 stays café: plain, --json, scan, mget. */
    run_t r = ctl("put", "caf\xc3\xa9", "cr\xc3\xa8me");
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("get", "caf\xc3\xa9");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "cr\xc3\xa8me\n");
    run_free(&r);
    r = ctl("--json", "get", "caf\xc3\xa9");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "\"key\":\t\"caf\xc3\xa9\"") != NULL, "[%s]", r.out);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "value"), "cr\xc3\xa8me");
    cJSON_Delete(doc);
    run_free(&r);
    r = ctl("--json", "scan", "caf", "cag");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    cJSON *entry = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "entries"), 0);
    ck_assert_str_eq(json_string(entry, "key"), "caf\xc3\xa9");
    cJSON_Delete(doc);
    run_free(&r);

    /* A lone 0xe9 (Latin-1 é) is not UTF-8: escaped as text, base64 in JSON. */
    r = ctl("put", "latin1", "caf\xe9");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    r = ctl("get", "latin1");
    ck_assert_str_eq(r.out, "caf\\xe9\n");
    run_free(&r);
    r = ctl("--json", "scan", "latin1", "latin2");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    entry = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "entries"), 0);
    ck_assert_str_eq(json_string(cJSON_GetObjectItem(entry, "value"), "base64"), "Y2Fm6Q==");
    cJSON_Delete(doc);
    run_free(&r);

    /* --raw: the bytes and nothing else; --hex: hex and a newline. */
    r = ctl("get", "--raw", "latin1");
    ck_assert_int_eq(r.code, 0);
    assert_out_bytes(&r, "caf\xe9", 4);
    run_free(&r);
    r = ctl("get", "--hex", "latin1");
    ck_assert_str_eq(r.out, "636166e9\n");
    run_free(&r);
    r = ctl("scan", "latin1", "latin2", "--hex");
    ck_assert_str_eq(r.out, "6c6174696e31\t636166e9\n");
    run_free(&r);
    r = ctl("--json", "get", "--raw", "latin1");
    ck_assert_int_eq(r.code, 2);
    run_free(&r);

    /* stats: figures are JSON numbers. */
    r = ctl("--json", "stats");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    ck_assert(json_number(doc, "writes_total") >= 2);
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(values_come_from_stdin_or_a_file_up_to_the_cap)
{
    unsigned char every_byte[256];
    for (int i = 0; i < 256; i++)
        every_byte[i] = (unsigned char)i;
    char *path = write_file(s_dir, "bytes", every_byte, sizeof every_byte);
    run_t r = ctl("put", "file-key", "--file", path);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("get", "file-key", "--raw");
    assert_out_bytes(&r, every_byte, sizeof every_byte);
    run_free(&r);
    r = run_in(path, "-s", s_node.endpoint, "put", "stdin-key", "-x", NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("get", "stdin-key", "--raw");
    assert_out_bytes(&r, every_byte, sizeof every_byte);
    run_free(&r);
    free(path);

    /* Exactly the cap goes through; one byte more is refused, saying why. */
    size_t cap = STRATA_PROTO_MAX_VALUE;
    char *big = malloc(cap + 1);
    memset(big, 'v', cap + 1);
    char *at_cap = write_file(s_dir, "at-cap", big, cap);
    char *over = write_file(s_dir, "over-cap", big, cap + 1);
    free(big);
    r = ctl("put", "big", "--file", at_cap);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("put", "big", "--file", over);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "put", "more than 1048576 bytes, the protocol's cap for a value");
    run_free(&r);
    r = run_in(over, "-s", s_node.endpoint, "put", "big", "--stdin", NULL);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "put", "stdin: more than 1048576 bytes");
    run_free(&r);
    /* One source of the value, no more. */
    r = ctl("put", "k", "v", "--file", at_cap);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = ctl("put", "k");
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    free(at_cap);
    free(over);
}
END_TEST

START_TEST(mget_reads_several_keys_and_marks_the_missing)
{
    run_t r = ctl("batch", "put", "m1", "one", "put", "m2", "caf\xe9");
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("mget", "m1", "nope", "m2");
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "m1\tone\nnope\t(not found)\nm2\tcaf\\xe9\n");
    assert_error_line(&r, "mget", "1 of 3 keys not found");
    run_free(&r);
    r = ctl("mget", "m1", "m2");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    r = ctl("--json", "mget", "m1", "nope", "m2");
    ck_assert_int_eq(r.code, 1);
    cJSON *doc = parse_json(&r);
    cJSON *entries = cJSON_GetObjectItem(doc, "entries");
    ck_assert_str_eq(json_string(cJSON_GetArrayItem(entries, 0), "value"), "one");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 1), "value")));
    ck_assert_str_eq(
        json_string(cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 2), "value"), "base64"),
        "Y2Fm6Q==");
    ck_assert_int_eq((int)json_number(doc, "missing"), 1);
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(batch_writes_arguments_and_stdin_lines_atomically)
{
    static const char lines[] = "# a comment, then a blank line\n"
                                "\n"
                                "put \"bin\\x00key\" \"v\\xff\"\n"
                                "  put\tspaced \"two words\"\r\n"
                                "del b1\n";
    char *path = write_file(s_dir, "batch.txt", lines, sizeof lines - 1);
    /* Arguments first, then the lines: b1 is put, then deleted. */
    run_t r = run_in(path, "-s", s_node.endpoint, "batch", "put", "b1", "x", "put", "b2", "y",
                     "--stdin", NULL);
    free(path);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    unsigned long long seq = 0, ops = 0;
    ck_assert_msg(sscanf(r.out, "seq %llu ops %llu", &seq, &ops) == 2, "[%s]", r.out);
    ck_assert_uint_eq(ops, 5);
    run_free(&r);
    r = ctl("scan", "bin", "bio", "--hex");
    ck_assert_str_eq(r.out, "62696e006b6579\t76ff\n");
    run_free(&r);
    r = ctl("mget", "b1", "b2", "spaced");
    ck_assert_str_eq(r.out, "b1\t(not found)\nb2\ty\nspaced\ttwo words\n");
    run_free(&r);

    /* A bad line anywhere writes nothing, and names the line. */
    static const char bad[] = "put ok 1\nput k \"unterminated\n";
    path = write_file(s_dir, "bad.txt", bad, sizeof bad - 1);
    r = run_in(path, "-s", s_node.endpoint, "batch", "--stdin", NULL);
    ck_assert_int_eq(r.code, 2);
    assert_error_line(&r, "batch", "stdin line 2, word 3: no closing quote");
    run_free(&r);
    free(path);
    r = ctl("get", "ok");
    ck_assert_int_eq(r.code, 1);
    run_free(&r);
    r = ctl("batch", "put", "k");
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = ctl("batch");
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
}
END_TEST

START_TEST(scan_pages_through_the_cursor)
{
    enum { N = 25 };
    strata_client_options_t opts = {.endpoint = s_node.endpoint};
    strata_client_t *client = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_client_connect(&opts, &client, &err), 0);
    for (int i = 0; i < N; i++) {
        char key[16], value[16];
        snprintf(key, sizeof key, "s%02d", i);
        snprintf(value, sizeof value, "v%d", i);
        ck_assert_int_eq(strata_client_put(client, STRATA_DURABILITY_ASYNC, key, strlen(key), value,
                                           strlen(value), NULL, &err),
                         0);
    }
    strata_client_destroy(&client);

    /* Pages of 7: four requests, every entry once, in order. */
    run_t r = ctl("scan", "--page", "7");
    ck_assert_int_eq(r.code, 0);
    char *line = r.out;
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "s%02d\tv%d\n", i, i);
        ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "entry %d: [%s]", i, line);
        line += strlen(want);
    }
    ck_assert_str_eq(line, "");
    run_free(&r);

    r = ctl("--json", "scan", "--limit", "10", "--page", "3");
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "count"), 10);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(doc, "more")));
    cJSON *entries = cJSON_GetObjectItem(doc, "entries");
    ck_assert_int_eq(cJSON_GetArraySize(entries), 10);
    ck_assert_str_eq(json_string(cJSON_GetArrayItem(entries, 9), "key"), "s09");
    ck_assert_str_eq(json_string(cJSON_GetArrayItem(entries, 9), "value"), "v9");
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("--json", "scan", "s05", "s10");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "count"), 5);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(doc, "more")));
    ck_assert_str_eq(json_string(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "entries"), 0), "key"),
                     "s05");
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(status_and_stats_report_the_node)
{
    run_t r = ctl("put", "k", "v");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);

    r = ctl("status");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "role         standalone\nterm         0\n") != NULL, "[%s]",
                  r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "durable_seq"));
    run_free(&r);

    r = ctl("--json", "status");
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "role"), "standalone");
    ck_assert_str_eq(json_string(doc, "endpoint"), s_node.endpoint);
    ck_assert(json_number(doc, "last_seq") >= 1);
    ck_assert(json_number(doc, "durable_seq") >= 1);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(doc, "term")));
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("stats");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "writes_total"));
    run_free(&r);

    r = ctl("--json", "stats");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    ck_assert_int_ge(cJSON_GetArraySize(doc), 2);
    ck_assert(json_number(doc, "writes_total") >= 1);
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(records_are_written_and_read_back)
{
    const char *argv[MAX_ARGS];
    order_argv(argv, s_node.endpoint, NULL);
    run_t r = run_argv(argv);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    unsigned long long seq = 0;
    ck_assert_int_eq(sscanf(r.out, "seq %llu topic orders key o/ORD-1\n", &seq), 1);
    ck_assert_msg(strstr(r.out, "topic orders key o/ORD-1\n") != NULL, "[%s]", r.out);
    run_free(&r);

    /* The same through --json, under another order id. */
    const char *json_argv[MAX_ARGS + 1] = {"--json"};
    order_argv(json_argv + 1, s_node.endpoint, "order_id=ORD-2");
    r = run_argv(json_argv);
    ck_assert_int_eq(r.code, 0);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "type"), "OrderInsert");
    ck_assert_str_eq(json_string(doc, "topic"), "orders");
    ck_assert_str_eq(json_string(doc, "key"), "o/ORD-2");
    ck_assert(json_number(doc, "seq") > (double)seq);
    cJSON_Delete(doc);
    run_free(&r);

    r = ctl("record", "get", "o/ORD-1");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "\"type\": \"OrderInsert\"") != NULL, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\"price\": 101.5") != NULL, "[%s]", r.out);
    run_free(&r);

    r = ctl("get", "--record", "o/ORD-1");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\"order_id\": \"ORD-1\""));
    run_free(&r);

    r = ctl("--json", "get", "o/ORD-2");
    ck_assert_int_eq(r.code, 0);
    doc = parse_json(&r);
    cJSON *record = cJSON_GetObjectItem(doc, "record");
    ck_assert_ptr_nonnull(record);
    ck_assert_str_eq(json_string(record, "order_id"), "ORD-2");
    ck_assert_int_eq((int)json_number(record, "volume"), 3);
    cJSON_Delete(doc);
    run_free(&r);

    /* A plain value is not a record; a missing key is still "not found". */
    r = ctl("put", "plain", "hello");
    ck_assert_int_eq(r.code, 0);
    run_free(&r);
    r = ctl("record", "get", "plain");
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "record get", "not a record");
    run_free(&r);
    r = ctl("record", "get", "o/NOPE");
    ck_assert_int_eq(r.code, 1);
    run_free(&r);

    /* A bad field names itself; nothing is written. */
    order_argv(argv, s_node.endpoint, "price=-1");
    r = run_argv(argv);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "record put", "OrderInsert.price");
    run_free(&r);
    order_argv(argv, s_node.endpoint, "direction=up");
    r = run_argv(argv);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "record put", "OrderInsert.direction");
    run_free(&r);
}
END_TEST

START_TEST(server_errors_exit_3_with_the_server_message)
{
    /* A key over the protocol's 64 KiB cap is refused by the server. */
    size_t len = STRATA_PROTO_MAX_KEY + 1;
    char *key = malloc(len + 1);
    memset(key, 'k', len);
    key[len] = '\0';
    run_t r = ctl("put", key, "v");
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "put", "key");
    run_free(&r);
    free(key);
}
END_TEST

START_TEST(cluster_verbs_on_a_single_node)
{
    /* -s alone is the list; a single node is no cluster. */
    run_t r = ctl("cluster", "transfer", "2");
    ck_assert_msg(r.code == 3, "exit %d [%s]", r.code, r.err);
    assert_error_line(&r, "cluster transfer",
                      "control transfer: this node is not part of a cluster (cluster/id 0)");
    ck_assert_str_eq(r.out, "");
    run_free(&r);

    r = ctl("cluster", "status");
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, s_node.endpoint) && strstr(r.out, " standalone "), "[%s]", r.out);
    run_free(&r);
}
END_TEST

/* ---- tail and subscribers, against a writer and its distributor ---------- */

static ts_dist_t s_dist;

static void dist_setup(void)
{
    writer_setup();
    ts_dist_start(&s_dist, s_node.dir, NULL);
}

static void dist_teardown(void)
{
    ck_assert_int_eq(ts_dist_stop(&s_dist), 0);
    writer_teardown();
}

/* Puts key=value with sync; returns its seq. */
static unsigned long long put_seq(const char *key, const char *value)
{
    run_t r = ctl("put", key, value);
    ck_assert_msg(r.code == 0, "put %s: [%s]", key, r.err);
    unsigned long long seq = 0;
    ck_assert_int_eq(sscanf(r.out, "seq %llu", &seq), 1);
    run_free(&r);
    return seq;
}

/* Line i (0-based) of text, copied into line; false past the end. */
static bool nth_line(const char *text, size_t i, char *line, size_t cap)
{
    for (; i > 0; i--) {
        text = strchr(text, '\n');
        if (!text)
            return false;
        text++;
    }
    const char *end = strchr(text, '\n');
    if (!end)
        return false;
    snprintf(line, cap, "%.*s", (int)(end - text), text);
    return true;
}

START_TEST(tail_replays_from_a_seq_then_goes_live)
{
    unsigned long long first = put_seq("k1", "v1");
    const char *argv[32];
    order_argv(argv, s_node.endpoint, NULL);
    run_t r = run_argv(argv);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    put_seq("k2", "v2");

    /* History: the two puts and the record, in seq order, the record as JSON. */
    char from[32], line[1024], want[64];
    snprintf(from, sizeof from, "%llu", first);
    r = run("tail", "--dir", s_node.dir, "--from", from, "--count", "3", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert(nth_line(r.out, 0, line, sizeof line));
    snprintf(want, sizeof want, "%llu\t\tk1\tv1", first);
    ck_assert_str_eq(line, want);
    ck_assert(nth_line(r.out, 1, line, sizeof line));
    ck_assert_msg(strstr(line, "\torders\to/ORD-1\t{\"type\":\"OrderInsert\"") != NULL, "[%s]",
                  line);
    ck_assert(nth_line(r.out, 2, line, sizeof line));
    ck_assert_msg(strstr(line, "\t\tk2\tv2") != NULL, "[%s]", line);
    ck_assert(!nth_line(r.out, 3, line, sizeof line));
    run_free(&r);

    /* A topic filter and JSON lines: only the record, decoded. */
    r = run("tail", "orders", "--json", "--dir", s_node.dir, "--from", from, "--count", "1", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    ck_assert_str_eq(json_string(doc, "topic"), "orders");
    ck_assert_str_eq(json_string(doc, "op"), "put");
    ck_assert_str_eq(json_string(cJSON_GetObjectItem(doc, "record"), "order_id"), "ORD-1");
    ck_assert((unsigned long long)json_number(doc, "seq") == first + 1);
    cJSON_Delete(doc);
    run_free(&r);

    /* Live, from now: tail only sees what is written after it subscribed, so
     * keep writing until it has printed one record and exited. */
    const char *live_argv[] = {"tail", "kv", "--dir", s_node.dir, "--count", "1", NULL};
    pending_t p = run_spawn(NULL, live_argv);
    unsigned long long last = 0;
    uint64_t deadline = ts_now_ns() + 20000000000ull;
    while (!run_exited(&p)) {
        ck_assert_msg(ts_now_ns() < deadline, "tail never printed a live record");
        last = put_seq("live", "x");
        usleep(20000); /* paces the writes; the loop ends on tail's exit */
    }
    r = run_wait(p);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    unsigned long long seq = 0;
    ck_assert_int_eq(sscanf(r.out, "%llu\t", &seq), 1);
    ck_assert(seq > first + 2 && seq <= last);
    ck_assert_msg(strstr(r.out, "\tlive\tx\n") != NULL, "[%s]", r.out);
    run_free(&r);
}
END_TEST

/* UTC ISO-8601 with ns, as --from-time and --to take it. */
static void iso_time(uint64_t ns, char *out, size_t cap)
{
    time_t seconds = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    char whole[32];
    strftime(whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%09lluZ", whole, (unsigned long long)(ns % 1000000000ull));
}

START_TEST(tail_to_stops_at_a_seq_or_a_commit_time)
{
    unsigned long long first = put_seq("t1", "a");
    put_seq("t2", "b");
    put_seq("t3", "c");
    char from[32], to[32];
    snprintf(from, sizeof from, "%llu", first);
    snprintf(to, sizeof to, "%llu", first + 1);

    /* No --count: --to alone ends it, after t2. */
    run_t r = run("tail", "kv", "--dir", s_node.dir, "--from", from, "--to", to, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    char want[128];
    snprintf(want, sizeof want, "%llu\t\tt1\ta\n%llu\t\tt2\tb\n", first, first + 1);
    ck_assert_str_eq(r.out, want);
    run_free(&r);

    /* --to TIME: the commit time of t2 (from --json) includes t2, not t3. */
    r = run("tail", "kv", "--json", "--dir", s_node.dir, "--from", to, "--count", "1", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    cJSON_Delete(doc);
    /* The digits as printed: a double (cJSON's number) rounds a time in ns
     * by up to 128 ns, which may fall before t2's commit. */
    const char *ts = strstr(r.out, "\"timestamp_ns\":");
    ck_assert_ptr_nonnull(ts);
    ts += strlen("\"timestamp_ns\":");
    while (*ts == ' ')
        ts++;
    char until[64];
    iso_time(strtoull(ts, NULL, 10), until, sizeof until);
    run_free(&r);
    r = run("tail", "kv", "--dir", s_node.dir, "--from", from, "--to", until, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_str_eq(r.out, want);
    run_free(&r);

    r = run("tail", "--dir", s_node.dir, "--from", to, "--to", from, NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = run("tail", "--dir", s_node.dir, "--to", "yesterday", NULL);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "--to") != NULL, "[%s]", r.err);
    run_free(&r);
}
END_TEST

START_TEST(tail_durable_resumes_after_its_ack_and_subscribers_lists_it)
{
    unsigned long long first = put_seq("d1", "a");
    put_seq("d2", "b");
    put_seq("d3", "c");
    char from[32];
    snprintf(from, sizeof from, "%llu", first);

    run_t r = run("tail", "kv", "--durable", "ops", "--dir", s_node.dir, "--from", from, "--count",
                  "2", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, "\td1\ta\n") && strstr(r.out, "\td2\tb\n"), "[%s]", r.out);
    run_free(&r);

    /* The next session under the name starts after the last ack: d3. */
    r = run("tail", "kv", "--durable", "ops", "--dir", s_node.dir, "--count", "1", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    char want[64];
    snprintf(want, sizeof want, "%llu\t\td3\tc\n", first + 2);
    ck_assert_str_eq(r.out, want);
    run_free(&r);

    r = run("subscribers", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "NAME", 4) == 0, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\nops ") != NULL, "[%s]", r.out);
    run_free(&r);

    r = run("subscribers", "--json", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    cJSON *rows = cJSON_GetObjectItem(doc, "subscribers");
    ck_assert_int_eq(cJSON_GetArraySize(rows), 1);
    cJSON *row = cJSON_GetArrayItem(rows, 0);
    ck_assert_str_eq(json_string(row, "name"), "ops");
    ck_assert((unsigned long long)json_number(row, "acked_seq") == first + 2);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(row, "topics"), 0)->valuestring, "kv");
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(subscribers_reset_and_delete_a_stopped_durable_name)
{
    unsigned long long first = put_seq("r1", "a");
    put_seq("r2", "b");
    char from[32];
    snprintf(from, sizeof from, "%llu", first);
    run_t r = run("tail", "kv", "--durable", "ops", "--dir", s_node.dir, "--from", from, "--count",
                  "2", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    run_free(&r);

    r = run("subscribers", "delete", "nobody", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 1, "exit %d [%s]", r.code, r.err);
    assert_error_line(&r, "subscribers", "subscriber_delete: no durable subscriber 'nobody'");
    run_free(&r);
    r = run("subscribers", "reset", "ops", "--dir", s_node.dir, NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = run("subscribers", "rename", "ops", "--dir", s_node.dir, NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = run("tail", "kv", "--dir", s_node.dir, "--to", "earliest", NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);

    /* The session tail left ends after the distributor's session timeout;
     * until then the name is busy (exit 3). */
    for (uint64_t deadline = ts_now_ns() + 20000000000ull;;) {
        r = run("subscribers", "reset", "ops", "--to", "earliest", "--dir", s_node.dir, NULL);
        if (r.code != 3)
            break;
        assert_error_line(&r, "subscribers", "durable session 'ops' is connected");
        run_free(&r);
        ck_assert_msg(ts_now_ns() < deadline, "ops still connected");
        usleep(200000);
    }
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "ops: acked seq 0, next delivered 1 (published ", 46) == 0, "[%s]",
                  r.out);
    run_free(&r);
    char to[32];
    snprintf(to, sizeof to, "%llu", first + 1);
    r = run("subscribers", "reset", "ops", "--to", to, "--json", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    ck_assert((unsigned long long)json_number(doc, "acked_seq") == first);
    cJSON_Delete(doc);
    run_free(&r);
    r = run("subscribers", "reset", "ops", "--to", "latest", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    run_free(&r);
    r = run("subscribers", "delete", "ops", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "deleted ops (acked seq ", 23) == 0, "[%s]", r.out);
    run_free(&r);
    r = run("subscribers", "--json", "--dir", s_node.dir, NULL);
    doc = parse_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "subscribers")), 0);
    cJSON_Delete(doc);
    run_free(&r);
}
END_TEST

START_TEST(tail_errors_name_what_was_wrong)
{
    run_t r = run("tail", "--dir", s_node.dir, "--from", "1", "--from-time", "0", NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = run("tail", "--dir", s_node.dir, "--from-time", "yesterday", NULL);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "--from-time") != NULL, "[%s]", r.err);
    run_free(&r);
    /* No distributor on that data dir: unreachable. */
    r = run("subscribers", "--dir", s_dir, NULL);
    ck_assert_msg(r.code == 4, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.err, "distributor.endpoints") != NULL, "[%s]", r.err);
    run_free(&r);
}
END_TEST

/* ---- cluster verbs, against a cluster's master and a voter with no master ---- */

static char *s_cluster_dir;
static ts_node_t s_master, s_lost;

static void cluster_setup(void)
{
    s_cluster_dir = ts_tempdir("ctl-cluster");
    char *master = ts_path(s_cluster_dir, "master"), *lost = ts_path(s_cluster_dir, "lost");
    ts_node_start(&s_master, master, ts_env_sole_voter);
    ts_node_start(&s_lost, lost, ts_env_unreachable_voter);
    free(master);
    free(lost);
    /* Polled until the master has won its election and committed its
     * first entry (a read is then not refused), or 15 s pass; a follower
     * answers reads too, so the role is checked first. */
    strata_client_t *c = ts_connect(s_master.endpoint, 2000);
    uint64_t deadline = ts_now_ns() + 15000000000ull;
    bool serving = false;
    while (!serving && ts_now_ns() < deadline) {
        strata_reply_t rep;
        strata_error_t err;
        bool leads =
            strata_client_status(c, &rep, &err) == 0 && rep.role && !strcmp(rep.role, "leader");
        strata_reply_clear(&rep);
        void *value = NULL;
        size_t len = 0;
        serving = leads && strata_client_get(c, "?", 1, &value, &len, &err) == STRATA_ENOTFOUND;
        if (!serving)
            nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL); /* the poll period */
    }
    strata_client_destroy(&c);
    ck_assert_msg(serving, "%s never became a serving master", s_master.endpoint);
}

static void cluster_teardown(void)
{
    ck_assert_int_eq(ts_node_stop(&s_lost), 0);
    ck_assert_int_eq(ts_node_stop(&s_master), 0);
    ts_rmtree(s_cluster_dir);
    free(s_cluster_dir);
}

static const cJSON *json_node(const cJSON *doc, const char *endpoint)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "nodes"))
    {
        if (!strcmp(json_string(row, "endpoint"), endpoint))
            return row;
    }
    ck_abort_msg("no node %s in the document", endpoint);
    return NULL;
}

/* The line of the table naming endpoint. */
static void table_line(const char *out, const char *endpoint, char *line, size_t cap)
{
    const char *at = strstr(out, endpoint);
    ck_assert_msg(at != NULL, "no line for %s in [%s]", endpoint, out);
    size_t len = strcspn(at, "\n");
    ck_assert_uint_lt(len, cap);
    memcpy(line, at, len);
    line[len] = '\0';
}

START_TEST(cluster_status_shows_every_node_and_the_silent_ones)
{
    char dead[64], servers[1024], line[1024];
    int fd = reserve_dead_port(dead, sizeof dead);
    snprintf(servers, sizeof servers, "%s,%s,%s", s_master.endpoint, s_lost.endpoint, dead);

    run_t r = run("--timeout", "1000", "--servers", servers, "cluster", "status", NULL);
    ck_assert_msg(r.code == 4, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, "ENDPOINT") && strstr(r.out, "COMMIT_SEQ") &&
                      strstr(r.out, "PEERS"),
                  "header: [%s]", r.out);
    table_line(r.out, s_master.endpoint, line, sizeof line);
    ck_assert_msg(strstr(line, " leader "), "master: [%s]", line);
    table_line(r.out, s_lost.endpoint, line, sizeof line);
    ck_assert_msg(!strstr(line, " leader ") && strstr(line, "2: contact never") &&
                      strstr(line, "3: contact never"),
                  "lost: [%s]", line);
    table_line(r.out, dead, line, sizeof line);
    ck_assert_msg(strstr(line, " unreachable ") && strstr(line, "no reply"), "dead: [%s]", line);
    assert_error_line(&r, "cluster status", "1 of 3 nodes unreachable");
    run_free(&r);

    r = run("--timeout", "1000", "--json", "--servers", servers, "cluster", "status", NULL);
    ck_assert_msg(r.code == 4, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "count"), 3);
    ck_assert_int_eq((int)json_number(doc, "unreachable"), 1);
    const cJSON *master = json_node(doc, s_master.endpoint);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(master, "reachable")));
    ck_assert_str_eq(json_string(master, "role"), "leader");
    ck_assert_int_eq((int)json_number(master, "node_id"), 1);
    ck_assert_int_eq((int)json_number(master, "leader"), 1);
    ck_assert(json_number(master, "term") >= 1);
    ck_assert(json_number(master, "commit_seq") >= 1);
    ck_assert(json_number(master, "last_seq") >= json_number(master, "commit_seq"));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(master, "durable_seq")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(master, "peers")), 0);
    const cJSON *lost = json_node(doc, s_lost.endpoint);
    ck_assert_str_ne(json_string(lost, "role"), "leader");
    ck_assert_int_eq((int)json_number(lost, "leader"), 0);
    const cJSON *peers = cJSON_GetObjectItem(lost, "peers");
    ck_assert_int_eq(cJSON_GetArraySize(peers), 2);
    const cJSON *peer = cJSON_GetArrayItem(peers, 0);
    ck_assert_int_eq((int)json_number(peer, "node_id"), 2);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(peer, "contact_ms")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(peer, "match")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(peer, "lag")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(peer, "lag_ms")));
    const cJSON *silent = json_node(doc, dead);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(silent, "reachable")));
    ck_assert_ptr_nonnull(strstr(json_string(silent, "error"), "no reply"));
    cJSON_Delete(doc);
    run_free(&r);
    close(fd);

    /* --cluster FILE, as deploy/strata-cluster writes it; all answer: 0. */
    char *file = ts_path(s_cluster_dir, "cluster.endpoints");
    FILE *out = fopen(file, "w");
    ck_assert_ptr_nonnull(out);
    fprintf(out, "# the two nodes\n%s\n\n  %s  \n", s_master.endpoint, s_lost.endpoint);
    fclose(out);
    r = run("--cluster", file, "cluster", "status", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    ck_assert_msg(strstr(r.out, s_master.endpoint) && strstr(r.out, s_lost.endpoint), "[%s]",
                  r.out);
    ck_assert_str_eq(r.err, "");
    run_free(&r);
    free(file);
}
END_TEST

START_TEST(status_shows_the_role_and_term_of_a_cluster_node)
{
    run_t r = run("-s", s_master.endpoint, "status", NULL);
    ck_assert_msg(r.code == 0, "exit %d [%s]", r.code, r.err);
    unsigned long long term = 0;
    const char *at = strstr(r.out, "role         leader\nterm         ");
    ck_assert_msg(at &&
                      sscanf(at + strlen("role         leader\nterm         "), "%llu", &term) == 1,
                  "[%s]", r.out);
    ck_assert_uint_ge(term, 1);
    run_free(&r);
}
END_TEST

START_TEST(step_down_and_transfer_reach_the_master)
{
    /* The voter that knows no master comes first: the verb must still
     * reach the master, which has no other voter. */
    char servers[1024];
    snprintf(servers, sizeof servers, "%s,%s", s_lost.endpoint, s_master.endpoint);
    run_t r = run("--servers", servers, "cluster", "step-down", NULL);
    ck_assert_msg(r.code == 3, "exit %d [%s]", r.code, r.err);
    assert_error_line(&r, "cluster step-down", "no other voter to hand over to");
    run_free(&r);

    r = run("--json", "--servers", servers, "cluster", "transfer", "2", NULL);
    ck_assert_msg(r.code == 3, "exit %d [%s]", r.code, r.err);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "code"), 3);
    ck_assert_int_eq((int)json_number(doc, "status"), STRATA_EINVAL);
    ck_assert_ptr_nonnull(
        strstr(json_string(doc, "error"), "node 2 is not another voter of this cluster"));
    cJSON_Delete(doc);
    run_free(&r);

    /* Only the masterless voter: its "not master" answer is the error. */
    r = run("--timeout", "500", "-s", s_lost.endpoint, "cluster", "step-down", NULL);
    ck_assert_msg(r.code == 3, "exit %d [%s]", r.code, r.err);
    assert_error_line(&r, "cluster step-down", "not master: no master is known in term");
    run_free(&r);
}
END_TEST

/* ---- offline files: dump and repair ------------------------------------------- */

/* The first entry of dir whose name ends with suffix (and starts with
 * prefix), as a path; NULL when none. Malloc'd. */
static char *find_entry(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    char *found = NULL;
    while (!found && (de = readdir(d))) {
        size_t len = strlen(de->d_name), slen = strlen(suffix);
        if (len >= slen && !strcmp(de->d_name + len - slen, suffix) &&
            !strncmp(de->d_name, prefix, strlen(prefix)))
            found = ts_path(dir, de->d_name);
    }
    closedir(d);
    return found;
}

static int count_lines(const char *out)
{
    int n = 0;
    for (; *out; out++)
        n += *out == '\n';
    return n;
}

static ts_snap_t s_files_snap;

static void files_setup(void)
{
    writer_setup();
    ts_snap_start(&s_files_snap, s_node.dir, NULL);
}

static void files_teardown(void)
{
    ck_assert_int_eq(ts_snap_stop(&s_files_snap), 0);
    writer_teardown();
}

START_TEST(dump_shows_what_was_written_in_each_kind_of_file)
{
    char *latin1 = write_file(s_dir, "latin1.bin", "caf\xe9", 4);
    run_t r = ctl("put", "a", "one");
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    r = ctl("put", "b", "two");
    run_free(&r);
    r = ctl("put", "c", "--file", latin1);
    run_free(&r);
    r = ctl("del", "a");
    run_free(&r);

    /* The WAL, in text: seq, term, topic, key, value. */
    r = run("dump", "wal", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_int_eq(count_lines(r.out), 4);
    ck_assert_msg(strstr(r.out, "1\t0\t") == r.out, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\ta\tone\n") && strstr(r.out, "\tb\ttwo\n") &&
                      strstr(r.out, "\tc\t0x636166e9\n") && strstr(r.out, "\ta\t(deleted)\n"),
                  "[%s]", r.out);
    ck_assert_msg(strstr(r.err, "4 entries read, last seq 4"), "[%s]", r.err);
    run_free(&r);

    /* JSON lines, --from and --count, and one segment file as the path. */
    char *segment = ts_path(s_node.dir, "wal/0000000000000001.wal");
    r = run("--json", "dump", "wal", segment, "--from", "2", "--count", "2", NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    char *second = strchr(r.out, '\n');
    ck_assert_ptr_nonnull(second);
    *second++ = '\0';
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq((int)json_number(doc, "seq"), 2);
    ck_assert_int_eq((int)json_number(doc, "term"), 0);
    ck_assert_str_eq(json_string(doc, "key"), "b");
    ck_assert_str_eq(json_string(doc, "value"), "two");
    cJSON_Delete(doc);
    doc = cJSON_Parse(second);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq((int)json_number(doc, "seq"), 3);
    ck_assert_str_eq(json_string(cJSON_GetObjectItem(doc, "value"), "base64"), "Y2Fm6Q==");
    cJSON_Delete(doc);
    ck_assert_ptr_null(strchr(second, '\n') ? strchr(strchr(second, '\n') + 1, '{') : NULL);
    run_free(&r);

    /* A snapshot flushes the memtable: a table, a MANIFEST edit, a snapshot. */
    r = run("snapshot", "--dir", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);
    char *table = find_entry(s_node.dir, "", ".sst");
    ck_assert_ptr_nonnull(table);
    r = run("dump", "sst", table, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    /* Key order, newest first: a's delete (4), a (1), b (2), c (3). */
    ck_assert_str_eq(r.out, "4\ta\t(deleted)\n1\ta\tone\n2\tb\ttwo\n3\tc\t0x636166e9\n");
    run_free(&r);
    r = run("dump", "sst", table, "--stats", NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_msg(strstr(r.out, "entries\t4\n") && strstr(r.out, "deletes\t1\n") &&
                      strstr(r.out, "min_seq\t1\n") && strstr(r.out, "max_seq\t4\n") &&
                      strstr(r.out, "smallest_key\ta\n") && strstr(r.out, "largest_key\tc\n"),
                  "[%s]", r.out);
    run_free(&r);

    const char *base = strrchr(table, '/') + 1;
    char add[64];
    snprintf(add, sizeof add, "add L0 %.10s size", base);
    r = run("dump", "manifest", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_msg(strstr(r.out, "edit offset 16") && strstr(r.out, add) &&
                      strstr(r.out, "entries 4 seq 1..4 keys a .. c"),
                  "[%s] want [%s]", r.out, add);
    run_free(&r);
    r = run("--json", "dump", "manifest", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_msg(strstr(r.out, "\"flushed_seq\":4") && strstr(r.out, "\"smallest\":\"a\""), "[%s]",
                  r.out);
    run_free(&r);

    char *snap = find_entry(s_files_snap.snapshots, "snap-", "");
    ck_assert_ptr_nonnull(snap);
    r = run("dump", "snapshot", snap, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    ck_assert_msg(strstr(r.out, "seq 4 term 0") && strstr(r.out, "  file CURRENT size") &&
                      strstr(r.out, "add L0") && strstr(r.out, "entries\t4\n"),
                  "[%s]", r.out);
    run_free(&r);

    /* A damaged table: the error names the file and offset, exit 3. */
    r = run("dump", "sst", segment, NULL);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "dump sst", "0000000000000001.wal");
    run_free(&r);
    free(snap);
    free(table);
    free(segment);
    free(latin1);
}
END_TEST

/* Flips the last byte of entry number `entry` (from 1) of a segment holding
 * `entries` entries of one size: its CRC no longer matches, and intact
 * entries follow, which a writer refuses as corruption. */
static void damage_entry(const char *path, int entry, int entries)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    off_t one = (size - 64) / entries; /* after the 64-byte segment header */
    ck_assert_int_eq((size - 64) % entries, 0);
    off_t at = 64 + one * entry - 1;
    unsigned char byte;
    ck_assert_int_eq(pread(fd, &byte, 1, at), 1);
    byte ^= 0xff;
    ck_assert_int_eq(pwrite(fd, &byte, 1, at), 1);
    close(fd);
}

START_TEST(repair_keeps_the_good_prefix_and_a_writer_opens_it)
{
    run_t r;
    const char *keys[] = {"k1", "k2", "k3", "k4", "k5", "k6"};
    for (int i = 0; i < 6; i++) {
        r = ctl("put", keys[i], "v");
        ck_assert_msg(r.code == 0, "[%s]", r.err);
        run_free(&r);
    }
    r = run("repair", s_node.dir, NULL);
    ck_assert_int_eq(r.code, 3);
    assert_error_line(&r, "repair", "a writer has");
    run_free(&r);

    ck_assert_int_eq(ts_node_stop(&s_node), 0);
    char *segment = ts_path(s_node.dir, "wal/0000000000000001.wal");
    damage_entry(segment, 3, 6);

    /* dump prints the good entries, then names the damage. */
    r = run("dump", "wal", s_node.dir, NULL);
    ck_assert_int_eq(r.code, 3);
    ck_assert_msg(strstr(r.out, "1\t0\t") == r.out && strstr(r.out, "\tk2\tv\n") &&
                      !strstr(r.out, "\tk3\t"),
                  "[%s]", r.out);
    ck_assert_msg(strstr(r.err, "problem ") && strstr(r.err, "0000000000000001.wal offset ") &&
                      strstr(r.err, "bad crc"),
                  "[%s]", r.err);
    run_free(&r);
    r = run("repair", s_node.dir, "--dry-run", NULL);
    ck_assert_msg(r.code == 0 && strstr(r.out, "nothing changed"), "[%s][%s]", r.out, r.err);
    run_free(&r);

    r = run("--json", "repair", s_node.dir, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "last_good_seq"), 2);
    ck_assert_int_eq((int)json_number(doc, "segments"), 1);
    ck_assert(json_number(doc, "bytes_cut") > 0);
    const char *aside = json_string(doc, "aside");
    ck_assert_msg(strstr(aside, "/wal-repair-"), "%s", aside);
    char *saved = ts_path(aside, "0000000000000001.wal.before-repair");
    ck_assert_int_eq(access(saved, F_OK), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "saved")), 1);
    ck_assert_str_eq(json_string(doc, "cut_kind"), "bad crc");
    free(saved);
    cJSON_Delete(doc);
    run_free(&r);

    r = run("dump", "wal", s_node.dir, NULL);
    ck_assert_msg(r.code == 0 && strstr(r.err, "2 entries read, last seq 2"), "[%s]", r.err);
    run_free(&r);

    /* A writer opens what repair kept and goes on from it. */
    char dir[sizeof s_node.dir];
    snprintf(dir, sizeof dir, "%s", s_node.dir);
    ts_node_start(&s_node, dir, NULL);
    r = ctl("get", "k2");
    ck_assert_msg(r.code == 0 && !strcmp(r.out, "v\n"), "[%s][%s]", r.out, r.err);
    run_free(&r);
    r = ctl("get", "k3");
    ck_assert_int_eq(r.code, 1);
    run_free(&r);
    r = ctl("put", "k7", "v");
    ck_assert_msg(r.code == 0 && !strcmp(r.out, "seq 3\n"), "[%s][%s]", r.out, r.err);
    run_free(&r);
    free(segment);
}
END_TEST

/* ---- admin verbs, against a whole node ----------------------------------------- */

static ts_dist_t s_admin_dist;
static ts_snap_t s_admin_snap;
static ts_comp_t s_admin_comp;

static void admin_setup(void)
{
    writer_setup();
    ts_dist_start(&s_admin_dist, s_node.dir, NULL);
    ts_snap_start(&s_admin_snap, s_node.dir, NULL);
    ts_comp_start(&s_admin_comp, s_node.dir, NULL);
}

static void admin_teardown(void)
{
    ck_assert_int_eq(ts_comp_stop(&s_admin_comp), 0);
    ck_assert_int_eq(ts_snap_stop(&s_admin_snap), 0);
    ck_assert_int_eq(ts_dist_stop(&s_admin_dist), 0);
    writer_teardown();
}

START_TEST(admin_verbs_reach_a_running_node_by_its_control_endpoint)
{
    run_t r = ctl("put", "k", "v");
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    run_free(&r);

    r = run("--json", "snapshot", "--control", s_admin_snap.endpoint, NULL);
    ck_assert_msg(r.code == 0, "[%s]", r.err);
    cJSON *doc = parse_json(&r);
    ck_assert_int_eq((int)json_number(doc, "seq"), 1);
    cJSON_Delete(doc);
    run_free(&r);

    r = run("compact", "--control", s_admin_comp.endpoint, NULL);
    ck_assert_msg(r.code == 0 && strstr(r.out, "compaction "), "[%s][%s]", r.out, r.err);
    run_free(&r);

    /* backup --control: a snapshot now, holding the write made after the last. */
    r = ctl("put", "k2", "v2");
    run_free(&r);
    char *dest = ts_path(s_dir, "backup");
    r = run("backup", dest, "--control", s_admin_snap.endpoint, NULL);
    ck_assert_msg(r.code == 0 && strstr(r.out, "seq 2 files "), "[%s][%s]", r.out, r.err);
    run_free(&r);
    r = run("dump", "wal", dest, NULL); /* a snapshot's wal/ is empty */
    ck_assert_msg(r.code == 0 && r.out[0] == '\0', "[%s][%s]", r.out, r.err);
    run_free(&r);
    r = run("verify", dest, NULL);
    ck_assert_msg(r.code == 0, "[%s][%s]", r.out, r.err);
    run_free(&r);

    /* The two ways to name the process exclude each other; one is needed. */
    r = run("snapshot", "--dir", s_node.dir, "--control", s_admin_snap.endpoint, NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    r = run("compact", NULL);
    ck_assert_int_eq(r.code, 2);
    assert_error_line(&r, "compact", "needs --dir DATADIR or --control ENDPOINT");
    run_free(&r);
    r = run("backup", dest, "--control", s_admin_snap.endpoint, "--snapshot", "x", NULL);
    ck_assert_int_eq(r.code, 2);
    run_free(&r);
    free(dest);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl");
    TCase *offline = tcase_create("offline");
    tcase_add_test(offline, no_verb_is_a_usage_error);
    tcase_add_test(offline, unknown_verb_is_a_usage_error);
    tcase_add_test(offline, wrong_arity_and_bad_flags_are_usage_errors);
    tcase_add_test(offline, every_verb_has_help);
    tcase_add_test(offline, top_level_help_lists_verbs_and_exit_codes);
    tcase_add_test(offline, unreachable_server_exits_4);
    tcase_add_test(offline, invalid_record_is_refused_before_sending);
    tcase_add_test(offline, record_help_lists_every_type_and_its_fields);
    tcase_add_test(offline, unreachable_endpoint_fails_within_the_timeout);
    tcase_add_test(offline, offline_errors_name_the_path_once);
    tcase_set_timeout(offline, 60); /* a dozen runs of --timeout 300 */
    tcase_add_test(offline, keygen_and_curve_flags_reach_a_curve_writer);
    suite_add_tcase(s, offline);

    TCase *live = tcase_create("writer");
    tcase_add_checked_fixture(live, writer_setup, writer_teardown);
    tcase_add_test(live, put_get_del_round_trip);
    tcase_add_test(live, odd_bytes_are_escaped_and_dash_keys_need_double_dash);
    tcase_add_test(live, utf8_is_text_and_other_bytes_are_marked_base64);
    tcase_add_test(live, values_come_from_stdin_or_a_file_up_to_the_cap);
    tcase_add_test(live, mget_reads_several_keys_and_marks_the_missing);
    tcase_add_test(live, batch_writes_arguments_and_stdin_lines_atomically);
    tcase_add_test(live, scan_pages_through_the_cursor);
    tcase_add_test(live, status_and_stats_report_the_node);
    tcase_add_test(live, records_are_written_and_read_back);
    tcase_add_test(live, server_errors_exit_3_with_the_server_message);
    tcase_add_test(live, cluster_verbs_on_a_single_node);
    suite_add_tcase(s, live);

    TCase *dist = tcase_create("distributor");
    tcase_add_checked_fixture(dist, dist_setup, dist_teardown);
    tcase_add_test(dist, tail_replays_from_a_seq_then_goes_live);
    tcase_add_test(dist, tail_durable_resumes_after_its_ack_and_subscribers_lists_it);
    tcase_add_test(dist, tail_errors_name_what_was_wrong);
    tcase_add_test(dist, tail_to_stops_at_a_seq_or_a_commit_time);
    suite_add_tcase(s, dist);
    /* Waits out a durable session's timeout (10 s by default). */
    TCase *subs = tcase_create("subscribers_admin");
    tcase_add_checked_fixture(subs, dist_setup, dist_teardown);
    tcase_set_timeout(subs, 60);
    tcase_add_test(subs, subscribers_reset_and_delete_a_stopped_durable_name);
    suite_add_tcase(s, subs);

    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, files_setup, files_teardown);
    tcase_set_timeout(files, 60);
    tcase_add_test(files, dump_shows_what_was_written_in_each_kind_of_file);
    tcase_add_test(files, repair_keeps_the_good_prefix_and_a_writer_opens_it);
    suite_add_tcase(s, files);

    TCase *admin = tcase_create("admin");
    tcase_add_checked_fixture(admin, admin_setup, admin_teardown);
    tcase_set_timeout(admin, 60);
    tcase_add_test(admin, admin_verbs_reach_a_running_node_by_its_control_endpoint);
    suite_add_tcase(s, admin);

    TCase *cluster = tcase_create("cluster");
    tcase_add_checked_fixture(cluster, cluster_setup, cluster_teardown);
    tcase_add_test(cluster, cluster_status_shows_every_node_and_the_silent_ones);
    tcase_add_test(cluster, status_shows_the_role_and_term_of_a_cluster_node);
    tcase_add_test(cluster, step_down_and_transfer_reach_the_master);
    suite_add_tcase(s, cluster);
    return ts_run(s);
}
