/* strata-bench memtable: the in-memory write and read path on one thread.
 * Strata's skiplist memtable directly, against a RocksDB with the WAL off and
 * a write buffer big enough that nothing flushes, so both hold every key in
 * memory. */
#define _GNU_SOURCE
#include "bench.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "strata/err.h"
#include "strata/memtable.h"

#define MEMTABLE_KEYS        1000000u
#define ROCKSDB_WRITE_BUFFER (UINT64_C(512) << 20)
#define MEMTABLE_GET_STREAM  UINT64_C(0x6E7)

/* What both engines get: the same keys, inserted in the same order, then
 * read back in the same random order. */
typedef struct {
    uint8_t *keys; /* MEMTABLE_KEYS * BENCH_KEY_BYTES */
    uint64_t seed;
} s_workload_t;

static const uint8_t *s_key(const s_workload_t *w, uint64_t i)
{
    return w->keys + i * BENCH_KEY_BYTES;
}

static void s_finish(bench_case_t *c, uint64_t start_ns)
{
    c->seconds = (double)(bench_now_ns() - start_ns) / 1e9;
}

static int s_strata(bench_t *b, const s_workload_t *w, bench_case_t *insert, bench_case_t *get,
                    size_t *bytes)
{
    strata_memtable_t *mt = strata_memtable_new();
    if (!mt) {
        fprintf(stderr, "strata-bench: strata_memtable_new: out of memory\n");
        return -1;
    }
    int rc = 0;
    uint64_t start = bench_now_ns();
    for (uint64_t i = 0; i < MEMTABLE_KEYS; i++) {
        uint64_t before = bench_now_ns();
        rc = strata_memtable_add(mt, i + 1, STRATA_VALUE_PUT, s_key(w, i), BENCH_KEY_BYTES,
                                 bench_value(), BENCH_VALUE_BYTES);
        strata_histogram_record(insert->latency, bench_now_ns() - before);
        if (rc != 0) {
            fprintf(stderr, "strata-bench: strata_memtable_add: %s\n", strata_strerror(rc));
            goto done;
        }
        insert->ops++;
    }
    s_finish(insert, start);
    *bytes = strata_memtable_bytes(mt);

    uint64_t rng = w->seed ^ MEMTABLE_GET_STREAM;
    start = bench_now_ns();
    for (uint64_t i = 0; i < MEMTABLE_KEYS; i++) {
        const uint8_t *key = s_key(w, bench_rand(&rng) % MEMTABLE_KEYS);
        const void *value;
        size_t value_len;
        uint64_t before = bench_now_ns();
        int found = strata_memtable_get(mt, key, BENCH_KEY_BYTES, UINT64_MAX, NULL, &value,
                                        &value_len, NULL);
        strata_histogram_record(get->latency, bench_now_ns() - before);
        if (found != 1 || value_len != BENCH_VALUE_BYTES ||
            memcmp(value, bench_value(), BENCH_VALUE_BYTES) != 0) {
            fprintf(stderr, "strata-bench: strata_memtable_get lost an inserted key (%d)\n", found);
            rc = -1;
            goto done;
        }
        get->ops++;
    }
    s_finish(get, start);
done:
    strata_memtable_unref(&mt);
    return rc;
}

static int s_rocksdb(bench_t *b, const s_workload_t *w, bench_case_t *insert, bench_case_t *get,
                     size_t *bytes)
{
    char *dir = bench_case_dir(b, "rocksdb-memtable");
    rocksdb_options_t *options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(options, 1);
    rocksdb_options_set_write_buffer_size(options, ROCKSDB_WRITE_BUFFER);
    rocksdb_writeoptions_t *write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(write_options, 1);
    rocksdb_readoptions_t *read_options = rocksdb_readoptions_create();
    char *error = NULL;
    int rc = -1;
    rocksdb_t *db = rocksdb_open(options, dir, &error);
    if (error) {
        fprintf(stderr, "strata-bench: rocksdb_open %s: %s\n", dir, error);
        goto done;
    }
    uint64_t start = bench_now_ns();
    for (uint64_t i = 0; i < MEMTABLE_KEYS; i++) {
        uint64_t before = bench_now_ns();
        rocksdb_put(db, write_options, (const char *)s_key(w, i), BENCH_KEY_BYTES,
                    (const char *)bench_value(), BENCH_VALUE_BYTES, &error);
        strata_histogram_record(insert->latency, bench_now_ns() - before);
        if (error) {
            fprintf(stderr, "strata-bench: rocksdb_put: %s\n", error);
            goto done;
        }
        insert->ops++;
    }
    s_finish(insert, start);
    char *size = rocksdb_property_value(db, "rocksdb.cur-size-active-mem-table");
    *bytes = size ? strtoull(size, NULL, 10) : 0;
    rocksdb_free(size);

    /* get_pinned rather than get: it returns a view into the memtable, as
     * strata_memtable_get does, instead of a malloc'd copy. */
    uint64_t rng = w->seed ^ MEMTABLE_GET_STREAM;
    start = bench_now_ns();
    for (uint64_t i = 0; i < MEMTABLE_KEYS; i++) {
        const uint8_t *key = s_key(w, bench_rand(&rng) % MEMTABLE_KEYS);
        uint64_t before = bench_now_ns();
        rocksdb_pinnableslice_t *slice =
            rocksdb_get_pinned(db, read_options, (const char *)key, BENCH_KEY_BYTES, &error);
        size_t value_len = 0;
        const char *value = slice ? rocksdb_pinnableslice_value(slice, &value_len) : NULL;
        bool intact = value && value_len == BENCH_VALUE_BYTES &&
                      memcmp(value, bench_value(), BENCH_VALUE_BYTES) == 0;
        rocksdb_pinnableslice_destroy(slice);
        strata_histogram_record(get->latency, bench_now_ns() - before);
        if (error || !intact) {
            fprintf(stderr, "strata-bench: rocksdb_get_pinned lost an inserted key: %s\n",
                    error ? error : "no value");
            goto done;
        }
        get->ops++;
    }
    s_finish(get, start);
    rc = 0;
done:
    rocksdb_free(error);
    if (db)
        rocksdb_close(db);
    rocksdb_readoptions_destroy(read_options);
    rocksdb_writeoptions_destroy(write_options);
    rocksdb_options_destroy(options);
    bench_rmtree(dir);
    free(dir);
    return rc;
}

int bench_memtable(bench_t *b)
{
    s_workload_t w = {.keys = malloc((size_t)MEMTABLE_KEYS * BENCH_KEY_BYTES), .seed = b->seed};
    if (!w.keys) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    uint64_t rng = b->seed;
    for (uint64_t i = 0; i < MEMTABLE_KEYS; i++)
        bench_random_key(&rng, w.keys + i * BENCH_KEY_BYTES);

    bench_case_t cases[2][2]; /* [strata, rocksdb][insert, get] */
    static const char *systems[2] = {"strata", "rocksdb"};
    for (int s = 0; s < 2; s++) {
        bench_case_init(&cases[s][0], "memtable.insert", systems[s]);
        bench_case_init(&cases[s][1], "memtable.get", systems[s]);
    }
    size_t bytes[2] = {0, 0};
    bench_table_header("memtable: 1M random 16 B keys + 100 B values, one thread; latency is "
                       "one call");
    int failed = s_strata(b, &w, &cases[0][0], &cases[0][1], &bytes[0]) != 0;
    failed |= s_rocksdb(b, &w, &cases[1][0], &cases[1][1], &bytes[1]) != 0;
    for (int op = 0; op < 2; op++) {
        bench_case_report(b, &cases[0][op]);
        bench_case_report(b, &cases[1][op]);
        bench_ratio_report(b, &cases[0][op], &cases[1][op]);
    }
    printf("memory after the inserts: strata %.1f MiB (%.0f B/entry), rocksdb %.1f MiB (%.0f "
           "B/entry).\nrocksdb runs with the WAL off and a %llu MiB write buffer; gets use "
           "rocksdb_get_pinned.\nratio rows: strata/rocksdb; ops/s higher is better, latency "
           "lower is better.\n",
           (double)bytes[0] / 1048576.0, (double)bytes[0] / MEMTABLE_KEYS,
           (double)bytes[1] / 1048576.0, (double)bytes[1] / MEMTABLE_KEYS,
           (unsigned long long)(ROCKSDB_WRITE_BUFFER >> 20));
    for (int s = 0; s < 2; s++) {
        bench_emit(b, "memtable.insert", systems[s], "memory_bytes", (double)bytes[s], "bytes");
        for (int op = 0; op < 2; op++)
            bench_case_release(&cases[s][op]);
    }
    free(w.keys);
    return failed;
}
