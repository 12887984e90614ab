/* What every strata-bench verb shares: the run's settings, the key and value
 * shapes, a timed multi-threaded loop, and result rows that go both to the
 * human table on stdout and, with --json, to a JSON-lines file. */
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>

#include "strata/histogram.h"

#define BENCH_KEY_BYTES   16
#define BENCH_VALUE_BYTES 100

/* The run's settings, filled by main.c and read by every verb. */
typedef struct {
    const char *dir; /* this run's fresh data directory */
    bool quick;      /* every verb under a minute */
    FILE *json;      /* NULL without --json */
    uint64_t seed;
    double case_seconds; /* how long each timed case runs */
    const char *only;    /* --only: run the cases whose name holds it; NULL: all */
} bench_t;

/* One verb: a row of main.c's table, its body in bench_<name>.c. */
typedef struct {
    const char *name;
    int (*run)(bench_t *b);
    const char *help;
} bench_verb_t;

int bench_wal(bench_t *b);
int bench_memtable(bench_t *b);
int bench_engine(bench_t *b);
int bench_service(bench_t *b);
int bench_fanout(bench_t *b);
int bench_recovery(bench_t *b);
int bench_compaction(bench_t *b);
int bench_cluster(bench_t *b);

/* What one case measured; bench_case_report prints and emits it. */
typedef struct {
    char bench[48];  /* e.g. "wal.sync.t8" */
    char system[16]; /* "strata", "rocksdb", "leveldb", "disk" */
    uint64_t ops;
    double seconds; /* wall time of the whole case */
    strata_histogram_t *latency;
    double group_size; /* writes per group commit; 0 when not measured */
    /* What the case cost the server process and this (client) process, per
     * 1,000 requests: CPU ms and context switches. has_costs: measured. */
    bool has_costs;
    double server_cpu_ms_per_1k, server_ctx_per_1k;
    double client_cpu_ms_per_1k, client_ctx_per_1k;
} bench_case_t;

/* Empty case with a fresh histogram; exits on out of memory (a bench has
 * nothing better to do). */
void bench_case_init(bench_case_t *c, const char *bench, const char *system);
void bench_case_release(bench_case_t *c);

void bench_table_header(const char *title);
void bench_case_report(bench_t *b, const bench_case_t *c);
/* A case's ops per second (0 for a case that did not run). */
double bench_ops_per_s(const bench_case_t *c);
/* The index of the run with the median ops/s among n runs of one case. */
unsigned bench_median_run(const bench_case_t *runs, unsigned n);
/* The strata/<anchor's system> row, e.g. strata/rocksdb: throughput ratio
 * (higher is better for strata) and latency ratios (lower is better). */
void bench_ratio_report(bench_t *b, const bench_case_t *strata, const bench_case_t *anchor);
/* One JSON line, when --json was given. */
void bench_emit(bench_t *b, const char *bench, const char *system, const char *metric, double value,
                const char *unit);

uint64_t bench_now_ns(void);

/* CPU time and context switches (voluntary and not) a process has spent so
 * far, summed over its threads: pid 0 is this process, threads that have
 * ended included. */
typedef struct {
    double cpu_ns;
    double ctx_switches;
} bench_usage_t;
/* Returns 0, or -1 when the process cannot be read (it ended). */
int bench_usage(pid_t pid, bench_usage_t *out);
/* Fills c's per-1k-request costs from usages taken before and after it. */
void bench_case_costs(bench_case_t *c, const bench_usage_t *server_before,
                      const bench_usage_t *server_after, const bench_usage_t *client_before,
                      const bench_usage_t *client_after);

/* splitmix64: deterministic for a seed, and every 64-bit output distinct,
 * so keys drawn from it do not collide. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A random 16-byte key: two draws, so keys spread over the whole key space
 * and compare as bytes the same way in both engines. */
static inline void bench_random_key(uint64_t *state, uint8_t key[BENCH_KEY_BYTES])
{
    uint64_t halves[2] = {bench_rand(state), bench_rand(state)};
    for (int i = 0; i < 8; i++) {
        key[i] = (uint8_t)(halves[0] >> (56 - 8 * i));
        key[8 + i] = (uint8_t)(halves[1] >> (56 - 8 * i));
    }
}

/* The one 100-byte value every write carries. */
const uint8_t *bench_value(void);

/* A per-thread worker of bench_run_timed: its own PRNG and key buffer. */
typedef struct {
    unsigned id;
    uint64_t rng;
    uint8_t key[BENCH_KEY_BYTES];
    void *arg;
} bench_worker_t;

/* One timed operation; a non-zero return stops that thread and the case. */
typedef int (*bench_op_fn)(bench_worker_t *w);

/* Runs op on threads threads, each as fast as it can for b->case_seconds
 * (or seconds when > 0), timing every call into c->latency; fills c->ops and
 * c->seconds. A fresh key is drawn into w->key before each timed call.
 * Returns the first op error, or 0. */
int bench_run_timed(bench_t *b, bench_case_t *c, unsigned threads, double seconds, bench_op_fn op,
                    void *arg);

/* A fresh, empty subdirectory of the run directory; caller frees. */
char *bench_case_dir(bench_t *b, const char *name);
/* Removes a tree; quiet when it is already gone. */
void bench_rmtree(const char *path);

/* ---- child processes (the servers a bench runs against) ---------------- */

/* p, or exit with "out of memory" when it is NULL. */
void *bench_alloc_or_die(void *p);
/* "dir/name", malloc'd. */
char *bench_path(const char *dir, const char *name);
/* Starts argv[0] (a path) with extra_env (NAME=value, NULL-terminated)
 * replacing variables of the same name, stdout and stderr in log_path. The
 * child gets SIGTERM when this process dies first, so an aborted bench leaves
 * no server behind. Returns its pid, or -1 with the reason on stderr. */
pid_t bench_spawn(char *const argv[], const char *const extra_env[], const char *log_path);
/* "exit code N" or "signal N (name)". */
void bench_describe_status(int status, char *buf, size_t size);
/* The end of a child's log on stderr: the run directory holding it is
 * removed when the bench ends (unless --keep), and the reason is there. */
void bench_show_log_tail(const char *log_path);
/* Polls <dir>/<service>.endpoints, which a node service writes once it
 * serves, until it names pid and has a non-empty key (NULL: the pid is
 * enough), for up to seconds; key's value goes into out (may be NULL).
 * Returns 0, or -1 with the reason and the log's tail on stderr when the
 * process ended (it is reaped) or the time ran out. */
int bench_wait_endpoints(pid_t pid, const char *name, const char *dir, const char *service,
                         const char *key, char *out, size_t out_size, double seconds,
                         const char *log_path);
/* SIGTERM, up to grace_s for a clean exit, then SIGKILL; reaps it. Returns
 * 0 when it exited with code 0, else -1 with a warning and the log's tail. */
int bench_stop_child(pid_t pid, const char *name, double grace_s, const char *log_path);

/* "fmt" formatted into a malloc'd string; exits on out of memory. */
char *bench_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_sleep_ms(long ms);
/* The first executable name on PATH, malloc'd; NULL if there is none. */
char *bench_find_in_path(const char *name);
/* n loopback TCP ports free right now, all distinct: each socket stays bound
 * until all are picked. Another process may still take one before the
 * server meant for it binds it; that server then fails to start. Returns 0,
 * or -1 with the reason on stderr. */
int bench_free_ports(int *ports, unsigned n);

/* ---- redis-server (bench/redis.c: the service and cluster verbs' anchor) */

struct redisContext;
/* A hiredis connection to 127.0.0.1:port, connect_timeout_ms to connect
 * and reply_timeout_ms per reply; NULL or one with ->err set on failure
 * (the caller redisFree()s either). */
struct redisContext *bench_redis_connect(int port, long connect_timeout_ms, long reply_timeout_ms);
/* Starts redis-server bin in dir (which must exist) on 127.0.0.1:*port, or
 * on a free port when *port is 0 (a fresh one is tried when another process
 * takes it first), with stdout and stderr in log_path and no daemonizing:
 * config_file (NULL: none) first, then --port, --bind, --dir, then args
 * (NULL-terminated). Waits until it answers PING; version (may be NULL)
 * gets its redis_version. Returns its pid, or -1 with the reason and the
 * log's tail on stderr (the child is gone). */
pid_t bench_redis_start(const char *bin, const char *dir, const char *log_path,
                        const char *config_file, const char *const args[], int *port, char *version,
                        size_t version_size);

/* Prints what failed and RocksDB's error, frees it and clears *error; true
 * when there was one. */
bool bench_rocksdb_failed(const char *what, char **error);

#endif
