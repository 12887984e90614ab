/* strata-bench's shared helpers: the timed thread loop, the result table and
 * JSON lines, and the run's scratch directories. */
#define _GNU_SOURCE
#include "bench.h"

#include <czmq.h>
#include <rocksdb/c.h>

#include <errno.h>
#include <unistd.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdbool.h>
#include <signal.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const uint8_t *bench_value(void)
{
    /* Printable and not all one byte, so nothing downstream could make it
     * artificially cheap; neither engine compresses its WAL or memtable. */
    static uint8_t value[BENCH_VALUE_BYTES];
    static bool filled;
    if (!filled) {
        for (size_t i = 0; i < sizeof value; i++)
            value[i] = (uint8_t)('a' + (i * 7) % 26);
        filled = true;
    }
    return value;
}

void bench_case_init(bench_case_t *c, const char *bench, const char *system)
{
    memset(c, 0, sizeof *c);
    snprintf(c->bench, sizeof c->bench, "%s", bench);
    snprintf(c->system, sizeof c->system, "%s", system);
    c->latency = strata_histogram_new();
    if (!c->latency) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
}

void bench_case_release(bench_case_t *c)
{
    strata_histogram_destroy(&c->latency);
}

/* Quoting is not needed: every string emitted is one of our identifiers. */
void bench_emit(bench_t *b, const char *bench, const char *system, const char *metric, double value,
                const char *unit)
{
    if (!b->json)
        return;
    fprintf(b->json,
            "{\"bench\":\"%s\",\"system\":\"%s\",\"metric\":\"%s\",\"value\":%.10g,"
            "\"unit\":\"%s\"}\n",
            bench, system, metric, value, unit);
    fflush(b->json);
}

/* One thread's CPU time on record (schedstat's first field, in ns) and its
 * context switches (status), added to out. False when it is gone. */
static bool s_thread_usage(const char *task_dir, bench_usage_t *out)
{
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/schedstat", task_dir);
    FILE *f = fopen(path, "r");
    unsigned long long run_ns = 0;
    bool ok = f && fscanf(f, "%llu", &run_ns) == 1;
    if (f)
        fclose(f);
    if (!ok)
        return false;
    snprintf(path, sizeof path, "%s/status", task_dir);
    if (!(f = fopen(path, "r")))
        return false;
    unsigned long long switches = 0, n;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %llu", &n) == 1 ||
            sscanf(line, "nonvoluntary_ctxt_switches: %llu", &n) == 1)
            switches += n;
    fclose(f);
    out->cpu_ns += (double)run_ns;
    out->ctx_switches += (double)switches;
    return true;
}

int bench_usage(pid_t pid, bench_usage_t *out)
{
    *out = (bench_usage_t){0};
    if (pid == 0) {
        /* getrusage counts threads that have ended, which the client's
         * lanes have by the time the case is over. */
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) != 0)
            return -1;
        out->cpu_ns = ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
                      ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
        out->ctx_switches = (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
        return 0;
    }
    /* A server's threads live as long as it does, so their sum is its own. */
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    unsigned threads = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char task[320];
        snprintf(task, sizeof task, "%s/%s", dir, e->d_name);
        threads += s_thread_usage(task, out);
    }
    closedir(d);
    return threads > 0 ? 0 : -1;
}

void bench_case_costs(bench_case_t *c, const bench_usage_t *server_before,
                      const bench_usage_t *server_after, const bench_usage_t *client_before,
                      const bench_usage_t *client_after)
{
    if (c->ops == 0)
        return;
    double per_1k = 1000.0 / (double)c->ops;
    c->has_costs = true;
    c->server_cpu_ms_per_1k = (server_after->cpu_ns - server_before->cpu_ns) / 1e6 * per_1k;
    c->server_ctx_per_1k = (server_after->ctx_switches - server_before->ctx_switches) * per_1k;
    c->client_cpu_ms_per_1k = (client_after->cpu_ns - client_before->cpu_ns) / 1e6 * per_1k;
    c->client_ctx_per_1k = (client_after->ctx_switches - client_before->ctx_switches) * per_1k;
}

void bench_table_header(const char *title)
{
    printf("\n%s\n", title);
    printf("%-22s %-19s %12s %10s %10s %10s %10s %7s\n", "bench", "system", "ops", "ops/s",
           "p50 us", "p99 us", "p999 us", "group");
}

double bench_ops_per_s(const bench_case_t *c)
{
    return c->seconds > 0 ? (double)c->ops / c->seconds : 0.0;
}

unsigned bench_median_run(const bench_case_t *runs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        unsigned below = 0, equal = 0;
        for (unsigned j = 0; j < n; j++) {
            below += bench_ops_per_s(&runs[j]) < bench_ops_per_s(&runs[i]);
            equal += bench_ops_per_s(&runs[j]) == bench_ops_per_s(&runs[i]);
        }
        if (below <= n / 2 && n / 2 < below + equal)
            return i;
    }
    return 0;
}

static const struct {
    const char *metric;
    double percent;
} s_percentiles[] = {
    {"latency_p50", 50.0},
    {"latency_p99", 99.0},
    {"latency_p999", 99.9},
};
#define PERCENTILE_COUNT (sizeof s_percentiles / sizeof s_percentiles[0])

void bench_case_report(bench_t *b, const bench_case_t *c)
{
    uint64_t latency_ns[PERCENTILE_COUNT];
    for (size_t i = 0; i < PERCENTILE_COUNT; i++)
        latency_ns[i] = strata_histogram_percentile(c->latency, s_percentiles[i].percent);
    char group[16] = "-";
    if (c->group_size > 0)
        snprintf(group, sizeof group, "%.2f", c->group_size);
    printf("%-22s %-19s %12llu %10.0f %10.2f %10.2f %10.2f %7s\n", c->bench, c->system,
           (unsigned long long)c->ops, bench_ops_per_s(c), (double)latency_ns[0] / 1000.0,
           (double)latency_ns[1] / 1000.0, (double)latency_ns[2] / 1000.0, group);
    fflush(stdout);

    bench_emit(b, c->bench, c->system, "ops", (double)c->ops, "ops");
    bench_emit(b, c->bench, c->system, "ops_per_s", bench_ops_per_s(c), "ops/s");
    for (size_t i = 0; i < PERCENTILE_COUNT; i++)
        bench_emit(b, c->bench, c->system, s_percentiles[i].metric, (double)latency_ns[i], "ns");
    if (c->group_size > 0)
        bench_emit(b, c->bench, c->system, "group_size", c->group_size, "writes/group");
    if (c->has_costs) {
        printf("%-22s %-19s per 1k requests: server %.1f ms CPU, %.0f switches; client %.1f ms "
               "CPU, %.0f switches\n",
               "", "", c->server_cpu_ms_per_1k, c->server_ctx_per_1k, c->client_cpu_ms_per_1k,
               c->client_ctx_per_1k);
        bench_emit(b, c->bench, c->system, "server_cpu_per_1k", c->server_cpu_ms_per_1k, "ms");
        bench_emit(b, c->bench, c->system, "server_ctx_switches_per_1k", c->server_ctx_per_1k,
                   "switches");
        bench_emit(b, c->bench, c->system, "client_cpu_per_1k", c->client_cpu_ms_per_1k, "ms");
        bench_emit(b, c->bench, c->system, "client_ctx_switches_per_1k", c->client_ctx_per_1k,
                   "switches");
    }
}

void bench_ratio_report(bench_t *b, const bench_case_t *strata, const bench_case_t *anchor)
{
    /* A failed or empty case has no ratio; print dashes, emit nothing. */
    double ratio[1 + PERCENTILE_COUNT];
    bool valid[1 + PERCENTILE_COUNT];
    double anchor_ops = bench_ops_per_s(anchor);
    valid[0] = anchor_ops > 0 && strata->ops > 0;
    ratio[0] = valid[0] ? bench_ops_per_s(strata) / anchor_ops : 0;
    for (size_t i = 0; i < PERCENTILE_COUNT; i++) {
        uint64_t s = strata_histogram_percentile(strata->latency, s_percentiles[i].percent);
        uint64_t r = strata_histogram_percentile(anchor->latency, s_percentiles[i].percent);
        valid[1 + i] = r > 0 && strata->ops > 0;
        ratio[1 + i] = valid[1 + i] ? (double)s / (double)r : 0;
    }
    char cell[1 + PERCENTILE_COUNT][16];
    for (size_t i = 0; i < 1 + PERCENTILE_COUNT; i++) {
        if (valid[i])
            snprintf(cell[i], sizeof cell[i], "%.2fx", ratio[i]);
        else
            snprintf(cell[i], sizeof cell[i], "-");
    }
    char system[32];
    snprintf(system, sizeof system, "strata/%s", anchor->system);
    printf("%-22s %-19s %12s %10s %10s %10s %10s %7s\n", strata->bench, system, "", cell[0],
           cell[1], cell[2], cell[3], "");
    fflush(stdout);

    if (valid[0])
        bench_emit(b, strata->bench, system, "ops_per_s_ratio", ratio[0], "x, higher is better");
    for (size_t i = 0; i < PERCENTILE_COUNT; i++) {
        char metric[32];
        snprintf(metric, sizeof metric, "%s_ratio", s_percentiles[i].metric);
        if (valid[1 + i])
            bench_emit(b, strata->bench, system, metric, ratio[1 + i], "x, lower is better");
    }
}

typedef struct {
    bench_worker_t worker;
    bench_op_fn op;
    pthread_barrier_t *start;
    const uint64_t *deadline_ns;
    atomic_int *failed; /* first error, shared: one failing thread stops all */
    strata_histogram_t *latency;
    uint64_t ops;
    uint64_t end_ns;
    pthread_t thread;
} s_timed_thread_t;

static void *s_timed_thread_main(void *arg)
{
    s_timed_thread_t *t = arg;
    pthread_barrier_wait(t->start);
    uint64_t deadline = *t->deadline_ns;
    for (;;) {
        bench_random_key(&t->worker.rng, t->worker.key);
        uint64_t before = bench_now_ns();
        int rc = t->op(&t->worker);
        uint64_t after = bench_now_ns();
        if (rc != 0) {
            int none = 0;
            atomic_compare_exchange_strong(t->failed, &none, rc);
            break;
        }
        strata_histogram_record(t->latency, after - before);
        t->ops++;
        if (after >= deadline || atomic_load_explicit(t->failed, memory_order_relaxed))
            break;
    }
    t->end_ns = bench_now_ns();
    return NULL;
}

int bench_run_timed(bench_t *b, bench_case_t *c, unsigned threads, double seconds, bench_op_fn op,
                    void *arg)
{
    if (seconds <= 0)
        seconds = b->case_seconds;
    s_timed_thread_t *t = calloc(threads, sizeof *t);
    pthread_barrier_t start;
    atomic_int failed = 0;
    uint64_t deadline_ns = 0;
    if (!t || pthread_barrier_init(&start, NULL, threads + 1) != 0) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    /* Each thread's keys come from its own stream, fixed by the seed, the
     * case and the thread, so a rerun with the same seed writes the same keys. */
    uint64_t case_seed = b->seed;
    for (const char *p = c->bench; *p; p++)
        case_seed = case_seed * 31 + (uint8_t)*p;
    for (unsigned i = 0; i < threads; i++) {
        t[i].worker.id = i;
        t[i].worker.rng = case_seed ^ (UINT64_C(0x9E3779B97F4A7C15) * (i + 1));
        t[i].worker.arg = arg;
        t[i].op = op;
        t[i].start = &start;
        t[i].deadline_ns = &deadline_ns;
        t[i].failed = &failed;
        t[i].latency = strata_histogram_new();
        if (!t[i].latency || pthread_create(&t[i].thread, NULL, s_timed_thread_main, &t[i]) != 0) {
            fprintf(stderr, "strata-bench: cannot start thread %u\n", i);
            exit(EXIT_FAILURE);
        }
    }
    uint64_t start_ns = bench_now_ns();
    deadline_ns = start_ns + (uint64_t)(seconds * 1e9);
    pthread_barrier_wait(&start); /* publishes deadline_ns to the threads */
    uint64_t end_ns = start_ns;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(t[i].thread, NULL);
        strata_histogram_merge(c->latency, t[i].latency);
        strata_histogram_destroy(&t[i].latency);
        c->ops += t[i].ops;
        if (t[i].end_ns > end_ns)
            end_ns = t[i].end_ns;
    }
    c->seconds = (double)(end_ns - start_ns) / 1e9;
    pthread_barrier_destroy(&start);
    free(t);
    return atomic_load(&failed);
}

char *bench_case_dir(bench_t *b, const char *name)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", b->dir, name) < 0) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    bench_rmtree(path);
    if (mkdir(path, 0755) != 0) {
        fprintf(stderr, "strata-bench: mkdir %s: %s\n", path, strerror(errno));
        exit(EXIT_FAILURE);
    }
    return path;
}

static int s_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

void bench_rmtree(const char *path)
{
    nftw(path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- child processes ----------------------------------------------------- */

void *bench_alloc_or_die(void *p)
{
    if (!p) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

char *bench_path(const char *dir, const char *name)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        path = NULL;
    return bench_alloc_or_die(path);
}

char *bench_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return bench_alloc_or_die(s);
}

void bench_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *bench_find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = bench_alloc_or_die(strdup(path));
    char *found = NULL, *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *candidate = bench_path(*dir ? dir : ".", name);
        if (access(candidate, X_OK) == 0)
            found = candidate;
        else
            free(candidate);
    }
    free(copy);
    return found;
}

int bench_free_ports(int *ports, unsigned n)
{
    int *fds = bench_alloc_or_die(calloc(n ? n : 1, sizeof *fds));
    unsigned opened = 0;
    int rc = 0;
    for (; opened < n && rc == 0; opened++) {
        fds[opened] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET,
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof addr;
        if (fds[opened] < 0 || bind(fds[opened], (struct sockaddr *)&addr, sizeof addr) != 0 ||
            getsockname(fds[opened], (struct sockaddr *)&addr, &len) != 0) {
            fprintf(stderr, "strata-bench: no free loopback port: %s\n", strerror(errno));
            rc = -1;
        } else {
            ports[opened] = ntohs(addr.sin_port);
        }
    }
    for (unsigned i = 0; i < opened; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return rc;
}

/* environ with extra replacing any variable of the same name. Built before
 * fork, so the child only execs. */
static char **s_environment_with(const char *const extra[])
{
    extern char **environ;
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env])
        n_env++;
    while (extra[n_extra])
        n_extra++;
    char **envp = bench_alloc_or_die(calloc(n_env + n_extra + 1, sizeof *envp));
    size_t n = 0;
    for (size_t i = 0; i < n_env; i++) {
        bool replaced = false;
        for (size_t j = 0; j < n_extra && !replaced; j++) {
            size_t name_len = strcspn(extra[j], "=");
            replaced = strncmp(environ[i], extra[j], name_len + 1) == 0;
        }
        if (!replaced)
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[n++] = (char *)extra[j];
    return envp;
}

pid_t bench_spawn(char *const argv[], const char *const extra_env[], const char *log_path)
{
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "strata-bench: open %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    char **envp = s_environment_with(extra_env);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0)
            _exit(127);
        execve(argv[0], argv, envp);
        dprintf(STDERR_FILENO, "strata-bench: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int fork_errno = errno;
    close(log_fd);
    free(envp);
    if (pid < 0) {
        fprintf(stderr, "strata-bench: fork: %s\n", strerror(fork_errno));
        return -1;
    }
    return pid;
}

void bench_describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "status %d", status);
}

void bench_show_log_tail(const char *log_path)
{
    enum { TAIL_BYTES = 2048 };
    FILE *log = fopen(log_path, "r");
    if (!log)
        return;
    char tail[TAIL_BYTES + 1];
    if (fseek(log, -TAIL_BYTES, SEEK_END) != 0)
        rewind(log);
    size_t n = fread(tail, 1, TAIL_BYTES, log);
    fclose(log);
    tail[n] = '\0';
    /* Start at a line boundary unless the whole log fitted. */
    const char *start = n == TAIL_BYTES && strchr(tail, '\n') ? strchr(tail, '\n') + 1 : tail;
    fprintf(stderr, "strata-bench: the end of %s:\n%s%s", log_path, start,
            n && tail[n - 1] != '\n' ? "\n" : "");
}

static void s_pause_10ms(void)
{
    nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
}

int bench_wait_endpoints(pid_t pid, const char *name, const char *dir, const char *service,
                         const char *key, char *out, size_t out_size, double seconds,
                         const char *log_path)
{
    char file[64], pid_key[64];
    snprintf(file, sizeof file, "%s.endpoints", service);
    snprintf(pid_key, sizeof pid_key, "%s/pid", service);
    char *path = bench_path(dir, file);
    uint64_t deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
    int rc = -1;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char how[64];
            bench_describe_status(status, how, sizeof how);
            fprintf(stderr, "strata-bench: %s ended (%s) before it was ready\n", name, how);
            bench_show_log_tail(log_path);
            break;
        }
        /* A file being written may lack a key: read it again next round. */
        zconfig_t *config = access(path, R_OK) == 0 ? zconfig_load(path) : NULL;
        if (config) {
            bool ours = atol(zconfig_get(config, pid_key, "0")) == (long)pid;
            const char *value = key ? zconfig_get(config, key, "") : "-";
            if (ours && *value && out)
                snprintf(out, out_size, "%s", value);
            zconfig_destroy(&config);
            if (ours && *value) {
                rc = 0;
                break;
            }
        }
        if (bench_now_ns() >= deadline) {
            fprintf(stderr, "strata-bench: no complete %s after %.0f s\n", path, seconds);
            bench_show_log_tail(log_path);
            break;
        }
        s_pause_10ms();
    }
    free(path);
    return rc;
}

int bench_stop_child(pid_t pid, const char *name, double grace_s, const char *log_path)
{
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    uint64_t deadline = bench_now_ns() + (uint64_t)(grace_s * 1e9);
    int status = 0;
    pid_t reaped;
    while ((reaped = waitpid(pid, &status, WNOHANG)) == 0 && bench_now_ns() < deadline)
        s_pause_10ms();
    if (reaped == 0) {
        fprintf(stderr,
                "strata-bench: warning: %s (pid %d) still running %.0f s after SIGTERM; "
                "sending SIGKILL\n",
                name, (int)pid, grace_s);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        bench_show_log_tail(log_path);
        return -1;
    }
    if (reaped < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[64];
        bench_describe_status(status, how, sizeof how);
        fprintf(stderr, "strata-bench: warning: %s (pid %d) ended with %s on SIGTERM\n", name,
                (int)pid, how);
        bench_show_log_tail(log_path);
        return -1;
    }
    return 0;
}

bool bench_rocksdb_failed(const char *what, char **error)
{
    if (!*error)
        return false;
    fprintf(stderr, "strata-bench: %s: %s\n", what, *error);
    rocksdb_free(*error);
    *error = NULL;
    return true;
}
