/* strata-bench wal: what a durable write costs. First the disk's own floor
 * (4 KiB write + fdatasync), then Strata's WAL append and RocksDB's put, each
 * unsynced on one thread and synced (group commit) on 1, 2 and 8 threads. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/entry.h"
#include "strata/wal.h"

/* ---- the disk's floor ---------------------------------------------------- */

#define FLOOR_BLOCK_BYTES 4096
#define FLOOR_FILE_BLOCKS 256

typedef struct {
    int fd;
    uint8_t block[FLOOR_BLOCK_BYTES];
    uint64_t next_block;
} s_floor_t;

/* Overwrites blocks of a file that is already written and synced, so each
 * fdatasync flushes data only: no size change and no extent conversion in the
 * file system journal. Nothing that writes and syncs can be cheaper. */
static int s_floor_op(bench_worker_t *w)
{
    s_floor_t *f = w->arg;
    off_t off = (off_t)(f->next_block++ % FLOOR_FILE_BLOCKS) * FLOOR_BLOCK_BYTES;
    if (pwrite(f->fd, f->block, sizeof f->block, off) != (ssize_t)sizeof f->block ||
        fdatasync(f->fd) != 0) {
        fprintf(stderr, "strata-bench: fdatasync floor: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int s_fdatasync_floor(bench_t *b)
{
    bench_case_t c;
    bench_case_init(&c, "wal.fdatasync_floor", "disk");
    char *dir = bench_case_dir(b, "floor");
    char *path = NULL;
    s_floor_t *f = calloc(1, sizeof *f);
    if (!f || asprintf(&path, "%s/floor.dat", dir) < 0) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    memset(f->block, 0xA5, sizeof f->block);
    int rc = -1;
    f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        fprintf(stderr, "strata-bench: open %s: %s\n", path, strerror(errno));
        goto done;
    }
    for (uint64_t i = 0; i < FLOOR_FILE_BLOCKS; i++)
        if (pwrite(f->fd, f->block, sizeof f->block, (off_t)(i * FLOOR_BLOCK_BYTES)) !=
            (ssize_t)sizeof f->block) {
            fprintf(stderr, "strata-bench: write %s: %s\n", path, strerror(errno));
            goto done;
        }
    if (fsync(f->fd) != 0) {
        fprintf(stderr, "strata-bench: fsync %s: %s\n", path, strerror(errno));
        goto done;
    }
    rc = bench_run_timed(b, &c, 1, b->case_seconds / 2, s_floor_op, f);
    bench_case_report(b, &c);
done:
    if (f->fd >= 0)
        close(f->fd);
    bench_rmtree(dir);
    free(path);
    free(dir);
    free(f);
    bench_case_release(&c);
    return rc;
}

/* ---- Strata -------------------------------------------------------------- */

/* Calls of the batched cases carry this many writes (the design's
 * append_batch): one call, one group, one seq range. */
#define BATCH_OPS 64

typedef struct {
    strata_wal_t *wal;
    strata_durability_t durability;
    unsigned batch; /* writes per call */
} s_strata_t;

static int s_strata_append(bench_worker_t *w)
{
    s_strata_t *s = w->arg;
    uint8_t keys[BATCH_OPS][BENCH_KEY_BYTES];
    strata_wal_op_t ops[BATCH_OPS];
    for (unsigned i = 0; i < s->batch; i++) {
        if (i == 0)
            memcpy(keys[0], w->key, BENCH_KEY_BYTES);
        else
            bench_random_key(&w->rng, keys[i]);
        ops[i] = (strata_wal_op_t){
            .type = STRATA_VALUE_PUT,
            .key = keys[i],
            .key_len = BENCH_KEY_BYTES,
            .value = bench_value(),
            .value_len = BENCH_VALUE_BYTES,
        };
    }
    uint64_t seq;
    strata_error_t err;
    int rc = strata_wal_append(s->wal, ops, s->batch, s->durability, &seq, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: strata_wal_append: %s: %s\n", strata_strerror(rc), err.msg);
    return rc;
}

static int s_strata_case(bench_t *b, bench_case_t *c, strata_durability_t durability,
                         unsigned threads, unsigned batch)
{
    char *dir = bench_case_dir(b, "strata-wal");
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_recovery_t report;
    strata_error_t err;
    s_strata_t s = {.durability = durability, .batch = batch};
    int rc = strata_wal_open(&opts, 0, NULL, NULL, &report, &s.wal, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_wal_open %s: %s: %s\n", dir, strata_strerror(rc),
                err.msg);
    } else {
        rc = bench_run_timed(b, c, threads, 0, s_strata_append, &s);
        c->ops *= batch;
        strata_wal_stats_t stats;
        strata_wal_stats(s.wal, &stats);
        if (stats.groups > 0)
            c->group_size = (double)stats.appends / (double)stats.groups;
        int close_rc = strata_wal_close(&s.wal, &err);
        if (close_rc != 0) {
            fprintf(stderr, "strata-bench: strata_wal_close: %s: %s\n", strata_strerror(close_rc),
                    err.msg);
            rc = rc ? rc : close_rc;
        }
    }
    bench_rmtree(dir);
    free(dir);
    return rc;
}

/* ---- RocksDB ------------------------------------------------------------- */

typedef struct {
    rocksdb_t *db;
    rocksdb_writeoptions_t *write_options;
    unsigned batch;
} s_rocksdb_t;

static int s_rocksdb_put(bench_worker_t *w)
{
    s_rocksdb_t *r = w->arg;
    char *error = NULL;
    if (r->batch > 1) {
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        uint8_t key[BENCH_KEY_BYTES];
        memcpy(key, w->key, sizeof key);
        for (unsigned i = 0; i < r->batch; i++) {
            if (i)
                bench_random_key(&w->rng, key);
            rocksdb_writebatch_put(wb, (const char *)key, BENCH_KEY_BYTES,
                                   (const char *)bench_value(), BENCH_VALUE_BYTES);
        }
        rocksdb_write(r->db, r->write_options, wb, &error);
        rocksdb_writebatch_destroy(wb);
    } else {
        rocksdb_put(r->db, r->write_options, (const char *)w->key, BENCH_KEY_BYTES,
                    (const char *)bench_value(), BENCH_VALUE_BYTES, &error);
    }
    if (error) {
        fprintf(stderr, "strata-bench: rocksdb_put: %s\n", error);
        rocksdb_free(error);
        return -1;
    }
    return 0;
}

/* A ticker from RocksDB's statistics dump ("rocksdb.write.self COUNT : 12"). */
static uint64_t s_rocksdb_ticker(const char *dump, const char *name)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s COUNT : ", name);
    const char *at = dump ? strstr(dump, pattern) : NULL;
    return at ? strtoull(at + strlen(pattern), NULL, 10) : 0;
}

static int s_rocksdb_case(bench_t *b, bench_case_t *c, bool sync, unsigned threads, unsigned batch)
{
    char *dir = bench_case_dir(b, "rocksdb-wal");
    rocksdb_options_t *options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(options, 1);
    /* Statistics give the group size; they cost little next to an fdatasync,
     * so they stay off for the unsynced case. */
    if (sync)
        rocksdb_options_enable_statistics(options);
    s_rocksdb_t r = {.write_options = rocksdb_writeoptions_create(), .batch = batch};
    rocksdb_writeoptions_set_sync(r.write_options, sync);
    char *error = NULL;
    int rc = -1;
    r.db = rocksdb_open(options, dir, &error);
    if (error) {
        fprintf(stderr, "strata-bench: rocksdb_open %s: %s\n", dir, error);
        rocksdb_free(error);
        error = NULL;
    } else {
        rc = bench_run_timed(b, c, threads, 0, s_rocksdb_put, &r);
        c->ops *= batch;
        if (sync) {
            char *dump = rocksdb_options_statistics_get_string(options);
            /* The leader of a write group counts as self, each follower it
             * writes for as other. */
            uint64_t self = s_rocksdb_ticker(dump, "rocksdb.write.self");
            uint64_t other = s_rocksdb_ticker(dump, "rocksdb.write.other");
            if (self > 0)
                c->group_size = (double)(self + other) / (double)self;
            rocksdb_free(dump);
        }
        rocksdb_close(r.db);
        rocksdb_destroy_db(options, dir, &error);
        if (error) {
            rocksdb_free(error);
            error = NULL;
        }
    }
    rocksdb_writeoptions_destroy(r.write_options);
    rocksdb_options_destroy(options);
    bench_rmtree(dir);
    free(dir);
    return rc;
}

/* ---- the verb ------------------------------------------------------------ */

/* One row pair and its ratio: Strata then RocksDB with the same settings. */
static int s_compare(bench_t *b, const char *name, bool sync, unsigned threads, unsigned batch)
{
    bench_case_t strata, rocksdb;
    bench_case_init(&strata, name, "strata");
    bench_case_init(&rocksdb, name, "rocksdb");
    int failed = 0;
    if (s_strata_case(b, &strata, sync ? STRATA_SYNC : STRATA_ASYNC, threads, batch) != 0)
        failed = 1;
    bench_case_report(b, &strata);
    if (s_rocksdb_case(b, &rocksdb, sync, threads, batch) != 0)
        failed = 1;
    bench_case_report(b, &rocksdb);
    bench_ratio_report(b, &strata, &rocksdb);
    bench_case_release(&strata);
    bench_case_release(&rocksdb);
    return failed;
}

int bench_wal(bench_t *b)
{
    bench_table_header("wal: one 16 B key + 100 B value per call; latency is one call\n(batch64: "
                       "64 writes per call, ops/s counts writes)");
    int failed = s_fdatasync_floor(b) != 0;
    failed |= s_compare(b, "wal.async.t1", false, 1, 1);
    failed |= s_compare(b, "wal.async.t4", false, 4, 1);
    failed |= s_compare(b, "wal.async.batch64", false, 1, BATCH_OPS);
    static const unsigned thread_counts[] = {1, 2, 8};
    for (size_t i = 0; i < sizeof thread_counts / sizeof thread_counts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "wal.sync.t%u", thread_counts[i]);
        failed |= s_compare(b, name, true, thread_counts[i], 1);
    }
    printf("ops/s counts every thread's calls over the case's wall time. group: writes per "
           "group commit\n(strata: appends/groups from strata_wal_stats; rocksdb: write.self + "
           "write.other over write.self).\nratio rows: strata/rocksdb; ops/s higher is better, "
           "latency lower is better. A RocksDB put\nalso inserts into its memtable; a Strata WAL "
           "append does not.\n");
    return failed;
}
