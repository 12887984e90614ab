/* Writer processes for integration tests; see node.h. */
#define _GNU_SOURCE
#include "node.h"

#include <check.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"
#include "support.h"

#ifndef STRATA_WRITER_BIN
#error "STRATA_WRITER_BIN must name the strata-writer binary"
#endif
#ifndef STRATA_DISTRIBUTOR_BIN
#error "STRATA_DISTRIBUTOR_BIN must name the strata-distributor binary"
#endif
#ifndef STRATA_SLOWDISK_LIB
#error "STRATA_SLOWDISK_LIB must name the slow-disk shim (libstrata_slowdisk.so)"
#endif

extern char **environ;

static void print_file(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- %s\n", log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* <dir>/<service>.endpoints when it names pid, so the process under test
 * wrote it and not one before it; else NULL. */
static zconfig_t *own_endpoints(const char *dir, const char *service, pid_t pid)
{
    char path[600], key[64];
    snprintf(path, sizeof path, "%s/%s.endpoints", dir, service);
    snprintf(key, sizeof key, "%s/pid", service);
    zconfig_t *cfg = zconfig_load(path);
    if (cfg && atoi(zconfig_get(cfg, key, "0")) != pid)
        zconfig_destroy(&cfg);
    return cfg;
}

static void copy_key(zconfig_t *cfg, const char *service, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "%s/%s", service, name);
    snprintf(out, cap, "%s", zconfig_get(cfg, key, ""));
}

static bool read_endpoints(ts_node_t *node)
{
    zconfig_t *cfg = own_endpoints(node->dir, "writer", node->pid);
    if (!cfg)
        return false;
    copy_key(cfg, "writer", "endpoint", node->endpoint, sizeof node->endpoint);
    copy_key(cfg, "writer", "control", node->control, sizeof node->control);
    copy_key(cfg, "writer", "metrics", node->metrics, sizeof node->metrics);
    zconfig_destroy(&cfg);
    return true;
}

/* A random free port above Linux's ephemeral range (32768..60999), in
 * czmq's bind syntax. Tests restart a killed process on the ports it had;
 * a port from the ephemeral range could meanwhile be taken by any
 * outgoing connection, and a sequential pick by the next test's process. */
#define TS_TCP_PORT "tcp://127.0.0.1:![61000-65535]"
/* Generous: CI runs suites two at a time on two loaded cores. */
#define TS_START_DEADLINE_NS (30 * 1000000000ull)

static bool same_name(const char *a, const char *b)
{
    size_t len = strcspn(a, "=");
    return strncmp(a, b, len) == 0 && b[len] == '=';
}

/* The child's environment, built before the fork: this process has
 * threads (loaders, readers), and between fork and exec the child may only
 * make async-signal-safe calls, which putenv and malloc are not. Later
 * entries win: env over defaults over the data dir over our own. */
static char **child_environment(const char *dir_env, const char *const *defaults,
                                const char *const *env)
{
    size_t n_own = 0, n_over = dir_env ? 1 : 0, n = 0;
    while (environ[n_own])
        n_own++;
    for (size_t i = 0; defaults[i]; i++)
        n_over++;
    for (size_t i = 0; env && env[i]; i++)
        n_over++;
    const char **over = calloc(n_over + 1, sizeof *over);
    char **envp = calloc(n_own + n_over + 1, sizeof *envp);
    ck_assert(over != NULL && envp != NULL);
    size_t k = 0;
    if (dir_env)
        over[k++] = dir_env;
    for (size_t i = 0; defaults[i]; i++)
        over[k++] = defaults[i];
    for (size_t i = 0; env && env[i]; i++)
        over[k++] = env[i];
    for (size_t i = 0; i < n_own; i++) {
        bool replaced = false;
        for (size_t j = 0; j < n_over && !replaced; j++)
            replaced = same_name(over[j], environ[i]);
        if (!replaced)
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < n_over; j++) {
        bool later = false;
        for (size_t l = j + 1; l < n_over && !later; l++)
            later = same_name(over[l], over[j]);
        if (!later)
            envp[n++] = (char *)over[j];
    }
    free(over);
    return envp;
}

static char s_netns[32];

void ts_spawn_netns(const char *ns)
{
    snprintf(s_netns, sizeof s_netns, "%s", ns ? ns : "");
}

/* In the child: into the namespace ts_spawn_netns named, if any. */
static void join_netns(void)
{
    if (!s_netns[0])
        return;
    char path[64];
    snprintf(path, sizeof path, "/var/run/netns/%s", s_netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "cannot join network namespace %s: %s\n", s_netns, strerror(errno));
        _exit(126);
    }
    close(fd);
}

#define TS_WRAP_MAX 8
static char s_wrap[TS_WRAP_MAX][256];
static char s_wrap_path[512]; /* s_wrap[0] found on PATH */
static int s_n_wrap;

void ts_spawn_wrap(const char *const *prefix)
{
    s_n_wrap = 0;
    for (; prefix && prefix[s_n_wrap]; s_n_wrap++) {
        ck_assert_int_lt(s_n_wrap, TS_WRAP_MAX);
        ck_assert_uint_lt(strlen(prefix[s_n_wrap]), sizeof s_wrap[0]);
        snprintf(s_wrap[s_n_wrap], sizeof s_wrap[0], "%s", prefix[s_n_wrap]);
    }
    if (!s_n_wrap)
        return;
    /* Looked up here: between fork and exec only execve is safe. */
    snprintf(s_wrap_path, sizeof s_wrap_path, "%s", s_wrap[0]);
    const char *dirs = getenv("PATH");
    if (strchr(s_wrap[0], '/') || !dirs)
        return;
    for (const char *d = dirs; *d;) {
        size_t len = strcspn(d, ":");
        char cand[512];
        snprintf(cand, sizeof cand, "%.*s/%s", (int)len, d, s_wrap[0]);
        if (access(cand, X_OK) == 0) {
            snprintf(s_wrap_path, sizeof s_wrap_path, "%s", cand);
            return;
        }
        d += len + (d[len] == ':');
    }
    ck_abort_msg("ts_spawn_wrap: %s is not on PATH", s_wrap[0]);
}

/* Forks bin with the node's data dir, free ports (defaults, then env) and
 * its stderr in log; returns the child's pid. With a config file the
 * process gets -c config and only env: the file says the rest. */
static pid_t spawn(const char *bin, const char *name, const char *data_dir, const char *config,
                   const char *log, const char *const *defaults, const char *const *env)
{
    static const char *const none[] = {NULL};
    char dir_env[600];
    snprintf(dir_env, sizeof dir_env, "STRATA_NODE_DATA_DIR=%s", data_dir);
    char **envp =
        config ? child_environment(NULL, none, env) : child_environment(dir_env, defaults, env);
    /* Under a wrapper the service's argv[0] is its path: the wrapper execs that. */
    char *argv[TS_WRAP_MAX + 4];
    int argc = 0;
    for (int i = 0; i < s_n_wrap; i++)
        argv[argc++] = s_wrap[i];
    argv[argc++] = s_n_wrap ? (char *)bin : (char *)name;
    if (config) {
        argv[argc++] = "-c";
        argv[argc++] = (char *)config;
    }
    argv[argc] = NULL;
    const char *exe = s_n_wrap ? s_wrap_path : bin;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* A test that dies (a Check timeout) must not leave processes behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        join_netns();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execve(exe, argv, envp);
        _exit(127);
    }
    free(envp);
    return pid;
}

static void wait_ready(pid_t pid, const char *name, const char *data_dir, const char *log,
                       bool (*ready)(void *), void *arg);

static bool node_ready(void *arg)
{
    return read_endpoints(arg);
}

void ts_node_start(ts_node_t *node, const char *data_dir, const char *const *env)
{
    ts_node_start_config(node, data_dir, NULL, env);
}

void ts_node_start_config(ts_node_t *node, const char *data_dir, const char *config,
                          const char *const *env)
{
    memset(node, 0, sizeof *node);
    snprintf(node->dir, sizeof node->dir, "%s", data_dir);
    mkdir(data_dir, 0755);
    static unsigned started;
    snprintf(node->log, sizeof node->log, "%s.writer-%u.log", data_dir, started++);
    static const char *const defaults[] = {"STRATA_WRITER_ENDPOINT=" TS_TCP_PORT,
                                           "STRATA_WRITER_METRICS=127.0.0.1:0", NULL};
    node->pid =
        spawn(STRATA_WRITER_BIN, "strata-writer", data_dir, config, node->log, defaults, env);
    wait_ready(node->pid, "strata-writer", data_dir, node->log, node_ready, node);
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SIGTERM and wait; the log is printed when the exit was not clean. A
 * process still running after the deadline is killed and fails the test,
 * so a stop that hangs says so instead of running into the suite timeout. */
static int stop_pid(pid_t *pid, const char *log)
{
    if (*pid <= 0)
        return -1;
    pid_t p = *pid;
    *pid = 0;
    kill(p, SIGTERM);
    uint64_t deadline = ts_now_ns() + TS_START_DEADLINE_NS;
    int status = 0;
    pid_t reaped;
    while ((reaped = waitpid(p, &status, WNOHANG)) == 0 && ts_now_ns() < deadline)
        usleep(2000); /* polling for its exit, with a deadline */
    if (reaped == 0) {
        kill(p, SIGKILL);
        wait_status(p);
        print_file(log);
        ck_abort_msg("pid %d was still running %llu s after SIGTERM", (int)p,
                     (unsigned long long)(TS_START_DEADLINE_NS / 1000000000ull));
    }
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc != 0)
        print_file(log);
    return rc;
}

static void kill9_pid(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    wait_status(*pid);
    *pid = 0;
}

/* Polls ready(arg) until it holds; fails the test when the process exits
 * or the start deadline passes, printing its log and which it was. */
static void wait_ready(pid_t pid, const char *name, const char *data_dir, const char *log,
                       bool (*ready)(void *), void *arg)
{
    uint64_t deadline = ts_now_ns() + TS_START_DEADLINE_NS;
    while (!ready(arg)) {
        int status = 0;
        bool exited = waitpid(pid, &status, WNOHANG) == pid;
        if (exited || ts_now_ns() > deadline) {
            print_file(log);
            if (exited)
                ck_abort_msg("%s in %s exited before it was ready (%s %d)", name, data_dir,
                             WIFEXITED(status) ? "exit code" : "signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            ck_abort_msg("%s in %s was not ready after %llu s", name, data_dir,
                         (unsigned long long)(TS_START_DEADLINE_NS / 1000000000ull));
        }
        usleep(2000); /* polling the endpoints file, with a deadline */
    }
}

int ts_node_stop(ts_node_t *node)
{
    return stop_pid(&node->pid, node->log);
}

void ts_node_kill9(ts_node_t *node)
{
    kill9_pid(&node->pid);
}

void ts_node_discard_ring(const ts_node_t *node)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/writer.endpoints", node->dir);
    zconfig_t *cfg = zconfig_load(path);
    const char *ring = cfg ? zconfig_get(cfg, "writer/ring", "") : "";
    if (ring && ring[0] == '/')
        unlink(ring);
    zconfig_destroy(&cfg);
}

bool ts_node_alive(ts_node_t *node)
{
    if (node->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(node->pid, &status, WNOHANG);
    if (r == node->pid) {
        node->pid = 0;
        return false;
    }
    return true;
}

int ts_run_output(const char *const *argv, const char *extra_env, int streams, unsigned alarm_s,
                  char **out)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    ck_assert_ptr_nonnull(envp);
    memcpy(envp, environ, n * sizeof *envp);
    envp[n] = (char *)extra_env;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (streams & TS_STDOUT)
            dup2(fds[1], 1);
        if (streams & TS_STDERR)
            dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (alarm_s) /* a process that wrongly starts to serve fails the test */
            alarm(alarm_s);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    close(fds[1]);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t got = read(fds[0], buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fds[0]);
    if (!buf)
        buf = calloc(1, 1);
    buf[len] = '\0';
    int rc = wait_status(pid);
    if (out)
        *out = buf;
    else
        free(buf);
    return rc;
}

int ts_run_capture(const char *const *argv, char **out)
{
    return ts_run_output(argv, NULL, TS_STDOUT, 0, out);
}

static bool read_dist_endpoints(void *arg)
{
    ts_dist_t *dist = arg;
    zconfig_t *cfg = own_endpoints(dist->dir, "distributor", dist->pid);
    if (!cfg)
        return false;
    copy_key(cfg, "distributor", "live", dist->live, sizeof dist->live);
    copy_key(cfg, "distributor", "delayed", dist->delayed, sizeof dist->delayed);
    copy_key(cfg, "distributor", "history", dist->history, sizeof dist->history);
    copy_key(cfg, "distributor", "metrics", dist->metrics, sizeof dist->metrics);
    zconfig_destroy(&cfg);
    return true;
}

void ts_dist_start(ts_dist_t *dist, const char *data_dir, const char *const *env)
{
    ts_dist_start_config(dist, data_dir, NULL, env);
}

void ts_dist_start_config(ts_dist_t *dist, const char *data_dir, const char *config,
                          const char *const *env)
{
    memset(dist, 0, sizeof *dist);
    snprintf(dist->dir, sizeof dist->dir, "%s", data_dir);
    static unsigned started;
    snprintf(dist->log, sizeof dist->log, "%s.distributor-%u.log", data_dir, started++);
    static const char *const defaults[] = {
        "STRATA_DISTRIBUTOR_LIVE=" TS_TCP_PORT, "STRATA_DISTRIBUTOR_DELAYED=" TS_TCP_PORT,
        "STRATA_DISTRIBUTOR_HISTORY=" TS_TCP_PORT, "STRATA_DISTRIBUTOR_METRICS=127.0.0.1:0", NULL};
    dist->pid = spawn(STRATA_DISTRIBUTOR_BIN, "strata-distributor", data_dir, config, dist->log,
                      defaults, env);
    wait_ready(dist->pid, "strata-distributor", data_dir, dist->log, read_dist_endpoints, dist);
}

int ts_dist_stop(ts_dist_t *dist)
{
    return stop_pid(&dist->pid, dist->log);
}

void ts_dist_kill9(ts_dist_t *dist)
{
    kill9_pid(&dist->pid);
}

static bool read_snap_endpoints(void *arg)
{
    ts_snap_t *snap = arg;
    zconfig_t *cfg = own_endpoints(snap->dir, "snapshotter", snap->pid);
    if (!cfg)
        return false;
    copy_key(cfg, "snapshotter", "endpoint", snap->endpoint, sizeof snap->endpoint);
    copy_key(cfg, "snapshotter", "dir", snap->snapshots, sizeof snap->snapshots);
    zconfig_destroy(&cfg);
    return true;
}

void ts_snap_start(ts_snap_t *snap, const char *data_dir, const char *const *env)
{
    ts_snap_start_config(snap, data_dir, NULL, env);
}

void ts_snap_start_config(ts_snap_t *snap, const char *data_dir, const char *config,
                          const char *const *env)
{
    memset(snap, 0, sizeof *snap);
    snprintf(snap->dir, sizeof snap->dir, "%s", data_dir);
    static unsigned started;
    snprintf(snap->log, sizeof snap->log, "%s.snapshotter-%u.log", data_dir, started++);
    /* Only on request unless a test asks for a period. */
    static const char *const defaults[] = {"STRATA_SNAPSHOTTER_INTERVAL_S=0",
                                           "STRATA_SNAPSHOTTER_METRICS=127.0.0.1:0", NULL};
    snap->pid = spawn(STRATA_SNAPSHOTTER_BIN, "strata-snapshotter", data_dir, config, snap->log,
                      defaults, env);
    wait_ready(snap->pid, "strata-snapshotter", data_dir, snap->log, read_snap_endpoints, snap);
}

int ts_snap_stop(ts_snap_t *snap)
{
    return stop_pid(&snap->pid, snap->log);
}

void ts_snap_kill9(ts_snap_t *snap)
{
    kill9_pid(&snap->pid);
}

static bool read_comp_endpoints(void *arg)
{
    ts_comp_t *comp = arg;
    zconfig_t *cfg = own_endpoints(comp->dir, "compactor", comp->pid);
    if (!cfg)
        return false;
    copy_key(cfg, "compactor", "endpoint", comp->endpoint, sizeof comp->endpoint);
    zconfig_destroy(&cfg);
    return true;
}

void ts_comp_start(ts_comp_t *comp, const char *data_dir, const char *const *env)
{
    ts_comp_start_config(comp, data_dir, NULL, env);
}

void ts_comp_start_config(ts_comp_t *comp, const char *data_dir, const char *config,
                          const char *const *env)
{
    memset(comp, 0, sizeof *comp);
    snprintf(comp->dir, sizeof comp->dir, "%s", data_dir);
    static unsigned started;
    snprintf(comp->log, sizeof comp->log, "%s.compactor-%u.log", data_dir, started++);
    static const char *const defaults[] = {"STRATA_COMPACTOR_METRICS=127.0.0.1:0", NULL};
    comp->pid =
        spawn(STRATA_COMPACTOR_BIN, "strata-compactor", data_dir, config, comp->log, defaults, env);
    wait_ready(comp->pid, "strata-compactor", data_dir, comp->log, read_comp_endpoints, comp);
}

int ts_comp_stop(ts_comp_t *comp)
{
    return stop_pid(&comp->pid, comp->log);
}

void ts_comp_kill9(ts_comp_t *comp)
{
    kill9_pid(&comp->pid);
}

static bool read_relay_endpoints(void *arg)
{
    ts_relay_t *relay = arg;
    zconfig_t *cfg = own_endpoints(relay->dir, relay->kind, relay->pid);
    if (!cfg)
        return false;
    copy_key(cfg, relay->kind, "control", relay->control, sizeof relay->control);
    copy_key(cfg, relay->kind, "metrics", relay->metrics, sizeof relay->metrics);
    copy_key(cfg, relay->kind, "bind", relay->bind, sizeof relay->bind);
    zconfig_destroy(&cfg);
    return true;
}

void ts_relay_start_config(ts_relay_t *relay, const char *kind, const char *data_dir,
                           const char *config, const char *const *env)
{
    memset(relay, 0, sizeof *relay);
    snprintf(relay->dir, sizeof relay->dir, "%s", data_dir);
    snprintf(relay->kind, sizeof relay->kind, "%s", kind);
    static unsigned started;
    snprintf(relay->log, sizeof relay->log, "%s.%s-%u.log", data_dir, kind, started++);
    bool election = !strcmp(kind, "election");
    char prog[32];
    snprintf(prog, sizeof prog, "strata-%s", kind);
    static const char *const none[] = {NULL};
    relay->pid = spawn(election ? STRATA_ELECTION_BIN : STRATA_REPLICATOR_BIN, prog, data_dir,
                       config, relay->log, none, env);
    wait_ready(relay->pid, prog, data_dir, relay->log, read_relay_endpoints, relay);
}

int ts_relay_stop(ts_relay_t *relay)
{
    return stop_pid(&relay->pid, relay->log);
}

void ts_relay_kill9(ts_relay_t *relay)
{
    kill9_pid(&relay->pid);
}

const char *ts_pair(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    ck_abort_msg("no '%s' in the reply", name);
    return NULL;
}

uint64_t ts_stat(strata_client_t *c, const char *name)
{
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_stats(c, &rep, &err) == 0, "stats: %s", err.msg);
    const char *v = ts_pair(&rep, name);
    ck_assert_msg(v != NULL, "stats has no %s", name);
    uint64_t n = strtoull(v, NULL, 10);
    strata_reply_clear(&rep);
    return n;
}

const char *ts_libfaketime(void)
{
    static const char *const candidates[] = {
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1", "/usr/local/lib/faketime/libfaketimeMT.so.1", NULL};
    const char *own = getenv("TS_LIBFAKETIME");
    if (own && *own)
        return access(own, R_OK) == 0 ? own : NULL;
    for (size_t i = 0; candidates[i]; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}

const char *ts_slowdisk_lib(void)
{
    return STRATA_SLOWDISK_LIB;
}

void ts_slowdisk_set(const char *path, unsigned delay_us)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f != NULL, "%s: %s", tmp, strerror(errno));
    fprintf(f, "%u\n", delay_us);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(rename(tmp, path) == 0, "rename %s: %s", tmp, strerror(errno));
}

const char *const ts_env_sole_voter[] = {"STRATA_CLUSTER_ID=1", "STRATA_CLUSTER_VOTERS=1",
                                         "STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:7400",
                                         "STRATA_CLUSTER_BOOTSTRAP=true", NULL};
const char *const ts_env_unreachable_voter[] = {
    "STRATA_CLUSTER_ID=1", "STRATA_CLUSTER_VOTERS=1,2,3",
    "STRATA_CLUSTER_CLIENT_PEERS=1=tcp://127.0.0.1:7400,"
    "2=tcp://127.0.0.1:7401,3=tcp://127.0.0.1:7402",
    "STRATA_CLUSTER_BOOTSTRAP=true", NULL};
