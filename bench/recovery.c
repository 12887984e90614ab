/* strata-bench recovery: how fast a restart after a crash replays the WAL,
 * Strata against RocksDB. A child fills an unflushed WAL and is SIGKILLed
 * once its last write is durable; then, several times, a child times the
 * open that replays that WAL into the memtable, reads a sample of the keys
 * back, and is SIGKILLed in turn, so every open starts from the crashed
 * state. The WAL is read from the page cache: nothing is dropped from it. */
#define _GNU_SOURCE
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/db.h"

#define RECOVERY_REPS 3
/* Writes per batch in the fill, for both systems: a writer's group commit
 * of small puts, without a syscall per put. */
#define FILL_BATCH_OPS 64
/* A limit, not an allocation: far over what the fill puts in the memtable,
 * so neither system flushes during the fill or the replay (both check). */
#define RECOVERY_MEMTABLE_BYTES ((size_t)4 << 30)
/* Keys read back after each open, spread over the fill, and the last. */
#define CHECKED_KEYS  1000
#define GOAL_MB_PER_S 1000.0
#define KEY_STREAM    UINT64_C(0x2EC0E27)

typedef struct {
    uint64_t key_seed;         /* of the key stream */
    uint64_t wal_target_bytes; /* Strata fills its WAL to this */
    uint64_t entries;          /* what Strata wrote: RocksDB writes as many */
} s_params_t;

/* What one child found, in memory shared with the parent. */
typedef struct {
    uint64_t entries;        /* fill: written; reopen: in the memtable after replay */
    uint64_t memtable_bytes; /* after the fill or the replay */
    uint64_t fill_ns;
    uint64_t open_ns;
    uint64_t scanned_bytes;  /* WAL bytes the open read, when the system says */
    uint64_t keys_checked;   /* read back after the open */
    uint64_t peak_rss_bytes; /* filled in by the parent */
} s_child_result_t;

typedef struct {
    const char *name;
    int (*fill)(const s_params_t *p, const char *dir, s_child_result_t *out);
    int (*reopen)(const s_params_t *p, const char *dir, s_child_result_t *out);
    const char *wal_dir;    /* under the database directory, "." for itself */
    const char *wal_suffix; /* of a WAL file's name */
} s_system_t;

/* ---- keys ---------------------------------------------------------------- */

/* Regenerates the fill's key stream and gets CHECKED_KEYS keys spread over
 * it and the last one written. get returns 1 for the key with the value
 * every put wrote, 0 for a missing key, -1 for an error (already said). */
static int s_check_keys(const char *system, const s_params_t *p, uint64_t entries,
                        int (*get)(void *ctx, const uint8_t *key), void *ctx, s_child_result_t *out)
{
    uint64_t rng = p->key_seed, stride = entries > CHECKED_KEYS ? entries / CHECKED_KEYS : 1;
    uint64_t checked = 0, missing = 0;
    uint8_t key[BENCH_KEY_BYTES];
    for (uint64_t i = 0; i < entries; i++) {
        bench_random_key(&rng, key);
        if (i % stride != stride - 1 && i != entries - 1)
            continue;
        int found = get(ctx, key);
        if (found < 0)
            return -1;
        checked++;
        missing += found == 0;
    }
    out->keys_checked = checked;
    if (missing == 0 && checked > 0)
        return 0;
    fprintf(stderr, "strata-bench: %s after replay: %llu of %llu written keys read back missing\n",
            system, (unsigned long long)missing, (unsigned long long)checked);
    return -1;
}

static int s_check_value(const char *system, const void *value, size_t value_len)
{
    if (value_len == BENCH_VALUE_BYTES && memcmp(value, bench_value(), BENCH_VALUE_BYTES) == 0)
        return 1;
    fprintf(stderr, "strata-bench: %s returned a wrong value (%zu bytes)\n", system, value_len);
    return -1;
}

/* ---- Strata -------------------------------------------------------------- */

static void s_strata_options(const char *dir, strata_db_options_t *opts)
{
    strata_db_options_init(opts);
    opts->dir = dir;
    opts->memtable_bytes = RECOVERY_MEMTABLE_BYTES;
}

/* Nothing flushed: every entry is in the active memtable and the WAL. */
static int s_strata_unflushed(const char *when, const strata_db_stats_t *stats)
{
    uint64_t tables = 0;
    for (size_t level = 0; level < sizeof stats->level_files / sizeof stats->level_files[0];
         level++)
        tables += stats->level_files[level];
    if (stats->flushes == 0 && stats->immutable_memtables == 0 && tables == 0)
        return 0;
    fprintf(stderr,
            "strata-bench: strata %s: %llu flushes, %u immutable memtables, %llu tables; the "
            "WAL must stay unflushed\n",
            when, (unsigned long long)stats->flushes, stats->immutable_memtables,
            (unsigned long long)tables);
    return -1;
}

static int s_strata_fill(const s_params_t *p, const char *dir, s_child_result_t *out)
{
    strata_db_options_t opts;
    s_strata_options(dir, &opts);
    strata_db_t *db = NULL;
    strata_error_t err;
    int rc = strata_db_open(&opts, &db, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_db_open %s: %s\n", dir, err.msg);
        return -1;
    }
    strata_batch_t *batch = bench_alloc_or_die(strata_batch_new());
    strata_write_options_t async = {.durability = STRATA_ASYNC};
    strata_db_stats_t stats = {0};
    uint64_t rng = p->key_seed, written = 0, start = bench_now_ns();
    uint8_t key[BENCH_KEY_BYTES];
    while (rc == 0 && stats.wal.bytes < p->wal_target_bytes) {
        strata_batch_clear(batch);
        for (int i = 0; i < FILL_BATCH_OPS && rc == 0; i++) {
            bench_random_key(&rng, key);
            rc = strata_batch_put(batch, key, sizeof key, bench_value(), BENCH_VALUE_BYTES);
        }
        if (rc == 0)
            rc = strata_db_write(db, &async, batch, NULL, &err);
        else
            strata_error_set(&err, rc, "batch put: %s", strata_strerror(rc));
        written += FILL_BATCH_OPS;
        if (written % (16 * FILL_BATCH_OPS) == 0)
            strata_db_stats(db, &stats);
    }
    if (rc == 0)
        rc = strata_db_sync(db, &err);
    strata_batch_destroy(&batch);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata fill: %s\n", err.msg);
        return -1;
    }
    out->fill_ns = bench_now_ns() - start;
    strata_db_stats(db, &stats);
    out->entries = written;
    out->memtable_bytes = stats.active_memtable_bytes;
    /* No close: the parent kills this process, as a crash would. */
    return s_strata_unflushed("after the fill", &stats);
}

static int s_strata_get(void *ctx, const uint8_t *key)
{
    void *value = NULL;
    size_t value_len = 0;
    strata_error_t err;
    int rc = strata_db_get(ctx, NULL, key, BENCH_KEY_BYTES, &value, &value_len, &err);
    if (rc == STRATA_ENOTFOUND)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_db_get: %s\n", err.msg);
        return -1;
    }
    int found = s_check_value("strata_db_get", value, value_len);
    free(value);
    return found;
}

static int s_strata_reopen(const s_params_t *p, const char *dir, s_child_result_t *out)
{
    strata_db_options_t opts;
    s_strata_options(dir, &opts);
    strata_db_t *db = NULL;
    strata_error_t err;
    uint64_t start = bench_now_ns();
    int rc = strata_db_open(&opts, &db, &err);
    out->open_ns = bench_now_ns() - start;
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_db_open %s: %s\n", dir, err.msg);
        return -1;
    }
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    out->entries = stats.recovery.entries_replayed;
    out->scanned_bytes = stats.recovery.bytes_scanned;
    out->memtable_bytes = stats.active_memtable_bytes;
    if (stats.recovery.tail_bytes_dropped > 0)
        fprintf(stderr, "strata-bench: strata recovery dropped a %llu-byte tail (%s)\n",
                (unsigned long long)stats.recovery.tail_bytes_dropped, stats.recovery.tail_kind);
    if (s_strata_unflushed("after the replay", &stats) != 0)
        return -1;
    return s_check_keys("strata", p, p->entries, s_strata_get, db, out);
}

/* ---- RocksDB ------------------------------------------------------------- */

/* The same memtable limit as Strata's, no compression, and recovery that
 * replays into the memtable and leaves it there: by default RocksDB writes
 * an L0 table of what it replayed before open returns, which Strata does
 * not do. 7.8's C API has no setter for that option, hence the string. */
static rocksdb_options_t *s_rocksdb_options(void)
{
    rocksdb_options_t *base = rocksdb_options_create();
    rocksdb_options_t *options = rocksdb_options_create();
    char *error = NULL;
    rocksdb_get_options_from_string(base, "avoid_flush_during_recovery=true", options, &error);
    rocksdb_options_destroy(base);
    if (bench_rocksdb_failed("rocksdb options", &error)) {
        rocksdb_options_destroy(options);
        return NULL;
    }
    rocksdb_options_set_create_if_missing(options, 1);
    rocksdb_options_set_write_buffer_size(options, RECOVERY_MEMTABLE_BYTES);
    rocksdb_options_set_compression(options, rocksdb_no_compression);
    return options;
}

/* A numeric property; some (num-files-at-level<N>) are only strings. */
static uint64_t s_rocksdb_property(rocksdb_t *db, const char *name)
{
    uint64_t value = 0;
    if (rocksdb_property_int(db, name, &value) == 0)
        return value;
    char *text = rocksdb_property_value(db, name);
    char *end = NULL;
    value = text ? strtoull(text, &end, 10) : 0;
    bool parsed = text && end != text;
    rocksdb_free(text);
    return parsed ? value : UINT64_MAX;
}

/* Every entry in the active memtable, none flushed. */
static int s_rocksdb_unflushed(rocksdb_t *db, const char *when, s_child_result_t *out)
{
    out->entries = s_rocksdb_property(db, "rocksdb.num-entries-active-mem-table");
    out->memtable_bytes = s_rocksdb_property(db, "rocksdb.cur-size-active-mem-table");
    uint64_t immutables = s_rocksdb_property(db, "rocksdb.num-immutable-mem-table");
    uint64_t l0 = s_rocksdb_property(db, "rocksdb.num-files-at-level0");
    if (immutables == 0 && l0 == 0)
        return 0;
    fprintf(stderr,
            "strata-bench: rocksdb %s: %llu immutable memtables, %llu L0 files; the WAL must "
            "stay unflushed\n",
            when, (unsigned long long)immutables, (unsigned long long)l0);
    return -1;
}

static int s_rocksdb_fill(const s_params_t *p, const char *dir, s_child_result_t *out)
{
    rocksdb_options_t *options = s_rocksdb_options();
    if (!options)
        return -1;
    char *error = NULL;
    rocksdb_t *db = rocksdb_open(options, dir, &error);
    rocksdb_options_destroy(options);
    if (bench_rocksdb_failed("rocksdb_open", &error))
        return -1;
    rocksdb_writeoptions_t *write_options = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create();
    uint64_t rng = p->key_seed, start = bench_now_ns();
    uint8_t key[BENCH_KEY_BYTES];
    for (uint64_t written = 0; written < p->entries && !error;) {
        rocksdb_writebatch_clear(batch);
        for (int i = 0; i < FILL_BATCH_OPS && written < p->entries; i++, written++) {
            bench_random_key(&rng, key);
            rocksdb_writebatch_put(batch, (const char *)key, sizeof key,
                                   (const char *)bench_value(), BENCH_VALUE_BYTES);
        }
        rocksdb_write(db, write_options, batch, &error);
    }
    rocksdb_writebatch_destroy(batch);
    rocksdb_writeoptions_destroy(write_options);
    if (bench_rocksdb_failed("rocksdb_write", &error))
        return -1;
    /* The last write made durable: FlushWAL(sync). */
    rocksdb_flush_wal(db, 1, &error);
    if (bench_rocksdb_failed("rocksdb_flush_wal", &error))
        return -1;
    out->fill_ns = bench_now_ns() - start;
    /* No close: the parent kills this process, as a crash would. */
    return s_rocksdb_unflushed(db, "after the fill", out);
}

typedef struct {
    rocksdb_t *db;
    rocksdb_readoptions_t *read_options;
} s_rocksdb_reader_t;

static int s_rocksdb_get(void *ctx, const uint8_t *key)
{
    s_rocksdb_reader_t *r = ctx;
    char *error = NULL;
    size_t value_len = 0;
    char *value =
        rocksdb_get(r->db, r->read_options, (const char *)key, BENCH_KEY_BYTES, &value_len, &error);
    if (bench_rocksdb_failed("rocksdb_get", &error))
        return -1;
    if (!value)
        return 0;
    int found = s_check_value("rocksdb_get", value, value_len);
    rocksdb_free(value);
    return found;
}

static int s_rocksdb_reopen(const s_params_t *p, const char *dir, s_child_result_t *out)
{
    rocksdb_options_t *options = s_rocksdb_options();
    if (!options)
        return -1;
    char *error = NULL;
    uint64_t start = bench_now_ns();
    rocksdb_t *db = rocksdb_open(options, dir, &error);
    out->open_ns = bench_now_ns() - start;
    rocksdb_options_destroy(options);
    if (bench_rocksdb_failed("rocksdb_open", &error))
        return -1;
    if (s_rocksdb_unflushed(db, "after the replay", out) != 0)
        return -1;
    s_rocksdb_reader_t reader = {.db = db, .read_options = rocksdb_readoptions_create()};
    int rc = s_check_keys("rocksdb", p, p->entries, s_rocksdb_get, &reader, out);
    rocksdb_readoptions_destroy(reader.read_options);
    return rc;
}

static const s_system_t s_systems[] = {
    {"strata", s_strata_fill, s_strata_reopen, "wal", ".wal"},
    {"rocksdb", s_rocksdb_fill, s_rocksdb_reopen, ".", ".log"},
};
#define SYSTEM_COUNT (sizeof s_systems / sizeof s_systems[0])

/* ---- children ------------------------------------------------------------ */

/* Runs fn in a child. Once fn has returned 0 (its writes durable, its
 * figures in *out) the child says so on a pipe and waits; the parent then
 * SIGKILLs it: the crash the next open recovers from. Returns 0 when the
 * child got that far. */
static int s_run_killed_child(const char *what, const s_system_t *system,
                              int (*fn)(const s_params_t *p, const char *dir,
                                        s_child_result_t *out),
                              const s_params_t *p, const char *dir, s_child_result_t *out)
{
    int ready[2];
    if (pipe(ready) != 0) {
        fprintf(stderr, "strata-bench: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        close(ready[0]);
        if (fn(p, dir, out) != 0)
            _exit(1);
        char done = 1;
        if (write(ready[1], &done, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    if (pid < 0) {
        fprintf(stderr, "strata-bench: fork: %s\n", strerror(errno));
        close(ready[0]);
        return -1;
    }
    char done = 0;
    ssize_t n;
    while ((n = read(ready[0], &done, 1)) < 0 && errno == EINTR)
        ;
    close(ready[0]);
    if (n == 1)
        kill(pid, SIGKILL);
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "strata-bench: wait4: %s\n", strerror(errno));
            return -1;
        }
    out->peak_rss_bytes = (uint64_t)usage.ru_maxrss * 1024;
    if (n == 1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 0;
    char how[64];
    bench_describe_status(status, how, sizeof how);
    fprintf(stderr, "strata-bench: %s %s failed: %s\n", system->name, what, how);
    return -1;
}

/* Bytes in the WAL files of a database directory: what a reopen replays. */
static uint64_t s_wal_bytes(const s_system_t *system, const char *db_dir)
{
    char *dir = bench_path(db_dir, system->wal_dir);
    DIR *d = opendir(dir);
    uint64_t total = 0;
    size_t suffix_len = strlen(system->wal_suffix);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len <= suffix_len || strcmp(e->d_name + len - suffix_len, system->wal_suffix) != 0)
            continue;
        char *path = bench_path(dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
        free(path);
    }
    if (d)
        closedir(d);
    free(dir);
    return total;
}

/* ---- the verb ------------------------------------------------------------ */

typedef struct {
    s_child_result_t fill;
    s_child_result_t reopens[RECOVERY_REPS];
    int reps_done;
    uint64_t wal_bytes;
    double open_s; /* median over the reps */
    double mb_per_s, entries_per_s;
} s_system_result_t;

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills once, then reopens RECOVERY_REPS times; removes the directory. */
static int s_run_system(bench_t *b, s_params_t *p, const s_system_t *system, s_system_result_t *r)
{
    char *dir = bench_case_dir(b, system->name);
    int failed = s_run_killed_child("fill", system, system->fill, p, dir, &r->fill);
    if (!failed && p->entries == 0)
        p->entries = r->fill.entries;
    if (!failed && r->fill.entries != p->entries) {
        fprintf(stderr, "strata-bench: %s fill left %llu entries in its memtable, not %llu\n",
                system->name, (unsigned long long)r->fill.entries, (unsigned long long)p->entries);
        failed = 1;
    }
    r->wal_bytes = s_wal_bytes(system, dir);
    if (!failed)
        printf("%s fill: %llu entries, %.1f MB of WAL in %.1f s, memtable %.0f MiB, peak RSS "
               "%.0f MiB; killed\n",
               system->name, (unsigned long long)r->fill.entries, (double)r->wal_bytes / 1e6,
               (double)r->fill.fill_ns / 1e9, (double)r->fill.memtable_bytes / 1048576.0,
               (double)r->fill.peak_rss_bytes / 1048576.0);
    for (int rep = 0; rep < RECOVERY_REPS && !failed; rep++) {
        s_child_result_t *o = &r->reopens[rep];
        failed = s_run_killed_child("reopen", system, system->reopen, p, dir, o);
        if (!failed && o->entries != p->entries) {
            fprintf(stderr, "strata-bench: %s reopen replayed %llu entries, not %llu\n",
                    system->name, (unsigned long long)o->entries, (unsigned long long)p->entries);
            failed = 1;
        }
        if (failed)
            break;
        if (o->scanned_bytes && o->scanned_bytes != r->wal_bytes)
            printf("%s reopen %d read %llu WAL bytes; the files hold %llu\n", system->name, rep + 1,
                   (unsigned long long)o->scanned_bytes, (unsigned long long)r->wal_bytes);
        r->reps_done++;
        printf("%s reopen %d: %.3f s, %llu entries replayed, %llu keys read back, peak RSS %.0f "
               "MiB; killed\n",
               system->name, rep + 1, (double)o->open_ns / 1e9, (unsigned long long)o->entries,
               (unsigned long long)o->keys_checked, (double)o->peak_rss_bytes / 1048576.0);
    }
    fflush(stdout);
    bench_rmtree(dir);
    free(dir);
    if (failed)
        return -1;
    double opens[RECOVERY_REPS];
    for (int rep = 0; rep < RECOVERY_REPS; rep++)
        opens[rep] = (double)r->reopens[rep].open_ns / 1e9;
    qsort(opens, RECOVERY_REPS, sizeof opens[0], s_cmp_double);
    r->open_s = opens[RECOVERY_REPS / 2];
    r->mb_per_s = (double)r->wal_bytes / 1e6 / r->open_s;
    r->entries_per_s = (double)p->entries / r->open_s;
    return 0;
}

static void s_report_row(bench_t *b, const char *system, const s_system_result_t *r)
{
    char opens[64] = "";
    for (int rep = 0; rep < r->reps_done; rep++) {
        size_t used = strlen(opens);
        snprintf(opens + used, sizeof opens - used, "%s%.3f", rep ? " " : "",
                 (double)r->reopens[rep].open_ns / 1e9);
    }
    printf("%-10s %-15s %10llu %9.1f %8.3f %-20s %9.0f %12.0f %9.0f\n", "recovery", system,
           (unsigned long long)r->fill.entries, (double)r->wal_bytes / 1e6, r->open_s, opens,
           r->mb_per_s, r->entries_per_s, (double)r->reopens[0].memtable_bytes / 1048576.0);
    bench_emit(b, "recovery", system, "entries", (double)r->fill.entries, "entries");
    bench_emit(b, "recovery", system, "wal_bytes", (double)r->wal_bytes, "bytes");
    bench_emit(b, "recovery", system, "open_s", r->open_s, "s");
    bench_emit(b, "recovery", system, "mb_per_s", r->mb_per_s, "MB/s");
    bench_emit(b, "recovery", system, "entries_per_s", r->entries_per_s, "entries/s");
}

int bench_recovery(bench_t *b)
{
    s_params_t p = {
        .key_seed = b->seed ^ KEY_STREAM,
        .wal_target_bytes = (uint64_t)(b->quick ? 256 : 1024) << 20,
    };
    s_system_result_t *results = mmap(NULL, SYSTEM_COUNT * sizeof *results, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED) {
        fprintf(stderr, "strata-bench: mmap: %s\n", strerror(errno));
        return 1;
    }
    memset(results, 0, SYSTEM_COUNT * sizeof *results);
    printf("\nrecovery: restart after a crash. A child fills an unflushed WAL (%llu MiB for "
           "strata,\nthe same entries for rocksdb) and is SIGKILLed once it is durable; %d "
           "children then each\ntime the open that replays it and are SIGKILLed in turn. The "
           "WAL is replayed from the\npage cache: nothing is dropped from it.\n",
           (unsigned long long)(p.wal_target_bytes >> 20), RECOVERY_REPS);
    int failed = 0;
    for (size_t s = 0; s < SYSTEM_COUNT; s++)
        failed |= s_run_system(b, &p, &s_systems[s], &results[s]) != 0;

    printf("\n%-10s %-15s %10s %9s %8s %-20s %9s %12s %9s\n", "bench", "system", "entries",
           "WAL MB", "open s", "each open s", "MB/s", "entries/s", "mem MiB");
    for (size_t s = 0; s < SYSTEM_COUNT; s++)
        if (results[s].reps_done == RECOVERY_REPS)
            s_report_row(b, s_systems[s].name, &results[s]);
    const s_system_result_t *strata = &results[0], *rocksdb = &results[1];
    if (!failed) {
        double mb_ratio = strata->mb_per_s / rocksdb->mb_per_s;
        double entries_ratio = strata->entries_per_s / rocksdb->entries_per_s;
        printf("%-10s %-15s %10s %9s %8s %-20s %8.2fx %11.2fx\n", "recovery", "strata/rocksdb", "",
               "", "", "", mb_ratio, entries_ratio);
        bench_emit(b, "recovery", "strata/rocksdb", "mb_per_s_ratio", mb_ratio,
                   "x, higher is better");
        bench_emit(b, "recovery", "strata/rocksdb", "entries_per_s_ratio", entries_ratio,
                   "x, higher is better");
    }
    if (strata->reps_done == RECOVERY_REPS)
        printf("goal: strata replays >= %.0f MB/s from the page cache: %.0f MB/s, %s (%.2fx "
               "the goal)\n",
               GOAL_MB_PER_S, strata->mb_per_s,
               strata->mb_per_s >= GOAL_MB_PER_S ? "met" : "NOT met",
               strata->mb_per_s / GOAL_MB_PER_S);
    printf("open s: median of the %d opens, each the wall time of strata_db_open or rocksdb_open "
           "alone;\nMB/s: the system's own WAL bytes (file sizes after the fill; MB = 10^6 B) over "
           "it. Each\nsystem frames the same entries differently (strata: a 40-byte header per "
           "entry; rocksdb:\none record per %d-put batch), so entries/s is the like-for-like "
           "rate. Both fill in\n%d-put batches, async; strata memtable_bytes and rocksdb "
           "write_buffer_size %zu GiB, so\nnothing flushes (checked after the fill and each "
           "open); rocksdb with\navoid_flush_during_recovery, else its open also writes an L0 "
           "table. After each open %d\nwritten keys spread over the fill and the last one are "
           "read back. mem MiB: the memtable\nafter the replay (strata active_memtable_bytes, "
           "rocksdb cur-size-active-mem-table).\n",
           RECOVERY_REPS, FILL_BATCH_OPS, FILL_BATCH_OPS, RECOVERY_MEMTABLE_BYTES >> 30,
           CHECKED_KEYS);
    munmap(results, SYSTEM_COUNT * sizeof *results);
    return failed;
}
