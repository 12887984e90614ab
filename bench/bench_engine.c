/* strata-bench engine: the whole embedded engine against RocksDB and LevelDB
 * with the same settings and keys: fills, reads after a reopen, seeks with
 * a 100-entry scan, overwrites under compaction, write amplification and
 * peak RSS. Each system runs in a forked child so its peak RSS is its own. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <leveldb/c.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/db.h"

/* Settings every system gets; the write buffer and case lengths depend on
 * --quick (bench_engine). */
#define ENGINE_KEYS           1000000u
#define ENGINE_BLOOM_BITS     10
#define ENGINE_CACHE_BYTES    (UINT64_C(64) << 20)
#define ENGINE_L0_TRIGGER     4
#define ENGINE_LEVEL1_BYTES   (UINT64_C(64) << 20)
#define ENGINE_FILE_BYTES     (UINT64_C(8) << 20)
#define ENGINE_SEEK_NEXTS     100
#define ENGINE_LEVELS         7
#define ENGINE_SHUFFLE_STREAM UINT64_C(0x5F1E)

typedef struct {
    uint64_t keys;
    size_t write_buffer_bytes; /* memtable / write buffer, the same for all */
    double read_seconds;       /* each read case */
    double overwrite_seconds;
} s_params_t;

/* ---- keys ---------------------------------------------------------------- */

static void s_store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t s_load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Key number index: its big-endian index, so keys sort by index and fillseq
 * is sequential, then a scrambled tail whose low bit is 0 for keys that are
 * written and 1 for their missing twins. A missing key sorts right beside a
 * present one, inside every table's key range, so only a bloom filter (or
 * a block read) can say it is absent. */
static void s_key(uint64_t index, bool present, uint8_t key[BENCH_KEY_BYTES])
{
    uint64_t state = index;
    uint64_t tail = bench_rand(&state);
    s_store_be64(key, index);
    s_store_be64(key + 8, present ? tail & ~UINT64_C(1) : tail | 1);
}

/* ---- the systems --------------------------------------------------------- */

/* What a system has written to tables since its database was created
 * (across reopens), and its tables per level now. */
typedef struct {
    uint64_t table_bytes;
    uint64_t engine_user_bytes; /* the engine's own count; 0 when it keeps none */
    uint64_t compaction_cpu_ns; /* CPU time of compaction; 0 when not known */
    uint64_t open_ns;           /* wall time the database has been open */
    char shape[96];
} s_counters_t;

/* One database of one system, opened and closed any number of times. get
 * returns 1 for a key found with the expected value, 0 for an absent key,
 * -1 for an error or a wrong value; scan reads up to limit entries from the
 * first key >= from (NULL: the first key), checking every length. */
typedef struct {
    const char *name;
    void *(*create)(const s_params_t *p, const char *dir);
    void (*destroy)(void **self_p);
    int (*open)(void *self);
    void (*close)(void *self);
    int (*put)(void *self, const uint8_t *key);
    int (*get)(void *self, const uint8_t *key);
    int (*scan)(void *self, const uint8_t *from, uint64_t limit, uint8_t first[BENCH_KEY_BYTES],
                uint64_t *entries);
    int (*flush)(void *self);
    void (*counters)(void *self, s_counters_t *counters);
} s_system_t;

static void *s_alloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

static void s_shape_append(char *shape, size_t size, int level, uint64_t files)
{
    size_t used = strlen(shape);
    if (files > 0 && used < size)
        snprintf(shape + used, size - used, "%sL%d=%llu", used ? " " : "", level,
                 (unsigned long long)files);
}

/* 1 when a get returned the value every put writes, else -1 with a note. */
static int s_check_value(const char *what, const void *value, size_t value_len)
{
    if (value_len == BENCH_VALUE_BYTES && memcmp(value, bench_value(), BENCH_VALUE_BYTES) == 0)
        return 1;
    fprintf(stderr, "strata-bench: %s returned a wrong value (%zu bytes)\n", what, value_len);
    return -1;
}

/* Counts one scanned entry, keeping the first key; -1 with a note when its
 * lengths are not what every put wrote. */
static int s_scan_entry(const char *what, const void *key, size_t key_len, size_t value_len,
                        uint8_t first[BENCH_KEY_BYTES], uint64_t *entries)
{
    if (key_len != BENCH_KEY_BYTES || value_len != BENCH_VALUE_BYTES) {
        fprintf(stderr, "strata-bench: %s: %zu-byte key, %zu-byte value\n", what, key_len,
                value_len);
        return -1;
    }
    if (*entries == 0)
        memcpy(first, key, BENCH_KEY_BYTES);
    ++*entries;
    return 0;
}

/* ---- Strata ---- */

typedef struct {
    strata_db_options_t options;
    strata_db_t *db;
    uint64_t closed_table_bytes, closed_user_bytes; /* of earlier opens */
    uint64_t closed_cpu_ns, closed_open_ns;
    uint64_t opened_at_ns;
} s_strata_t;

static void *s_strata_create(const s_params_t *p, const char *dir)
{
    s_strata_t *self = s_alloc(sizeof *self);
    strata_db_options_init(&self->options);
    self->options.dir = dir;
    self->options.durability = STRATA_ASYNC;
    self->options.memtable_bytes = p->write_buffer_bytes;
    self->options.l0_compaction_trigger = ENGINE_L0_TRIGGER;
    self->options.level1_bytes = ENGINE_LEVEL1_BYTES;
    self->options.target_file_bytes = ENGINE_FILE_BYTES;
    return self;
}

static void s_strata_destroy(void **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

static int s_strata_open(void *arg)
{
    s_strata_t *self = arg;
    strata_error_t err;
    int rc = strata_db_open(&self->options, &self->db, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: strata_db_open %s: %s: %s\n", self->options.dir,
                strata_strerror(rc), err.msg);
    self->opened_at_ns = bench_now_ns();
    return rc;
}

static void s_strata_close(void *arg)
{
    s_strata_t *self = arg;
    /* Stats count from open, so what this open wrote is kept here. */
    strata_db_stats_t stats;
    strata_db_stats(self->db, &stats);
    self->closed_table_bytes += stats.flush_bytes + stats.compaction_bytes_written;
    self->closed_user_bytes += stats.user_bytes;
    self->closed_cpu_ns += stats.compaction_cpu_ns;
    self->closed_open_ns += bench_now_ns() - self->opened_at_ns;
    strata_error_t err;
    int rc = strata_db_close(&self->db, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: strata_db_close: %s: %s\n", strata_strerror(rc), err.msg);
}

static int s_strata_put(void *arg, const uint8_t *key)
{
    s_strata_t *self = arg;
    strata_error_t err;
    int rc = strata_db_put(self->db, NULL, key, BENCH_KEY_BYTES, bench_value(), BENCH_VALUE_BYTES,
                           NULL, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: strata_db_put: %s: %s\n", strata_strerror(rc), err.msg);
    return rc;
}

static int s_strata_get(void *arg, const uint8_t *key)
{
    s_strata_t *self = arg;
    void *value = NULL;
    size_t value_len = 0;
    strata_error_t err;
    int rc = strata_db_get(self->db, NULL, key, BENCH_KEY_BYTES, &value, &value_len, &err);
    if (rc == STRATA_ENOTFOUND)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_db_get: %s: %s\n", strata_strerror(rc), err.msg);
        return -1;
    }
    int found = s_check_value("strata_db_get", value, value_len);
    free(value);
    return found;
}

static int s_strata_scan(void *arg, const uint8_t *from, uint64_t limit,
                         uint8_t first[BENCH_KEY_BYTES], uint64_t *entries)
{
    s_strata_t *self = arg;
    *entries = 0;
    strata_db_iter_t *it = strata_db_iter_new(self->db, NULL);
    if (!it) {
        fprintf(stderr, "strata-bench: strata_db_iter_new failed\n");
        return -1;
    }
    if (from)
        strata_db_iter_seek(it, from, BENCH_KEY_BYTES);
    else
        strata_db_iter_seek_first(it);
    int rc = 0;
    while (rc == 0 && *entries < limit && strata_db_iter_valid(it)) {
        size_t key_len, value_len;
        const void *key = strata_db_iter_key(it, &key_len);
        strata_db_iter_value(it, &value_len);
        rc = s_scan_entry("strata iterator", key, key_len, value_len, first, entries);
        strata_db_iter_next(it);
    }
    strata_error_t err;
    int status = strata_db_iter_status(it, &err);
    if (status != 0) {
        fprintf(stderr, "strata-bench: strata iterator: %s: %s\n", strata_strerror(status),
                err.msg);
        rc = -1;
    }
    strata_db_iter_destroy(&it);
    return rc;
}

static int s_strata_flush(void *arg)
{
    s_strata_t *self = arg;
    strata_error_t err;
    int rc = strata_db_flush(self->db, &err);
    if (rc != 0)
        fprintf(stderr, "strata-bench: strata_db_flush: %s: %s\n", strata_strerror(rc), err.msg);
    return rc;
}

static void s_strata_counters(void *arg, s_counters_t *counters)
{
    s_strata_t *self = arg;
    strata_db_stats_t stats;
    strata_db_stats(self->db, &stats);
    counters->table_bytes =
        self->closed_table_bytes + stats.flush_bytes + stats.compaction_bytes_written;
    counters->engine_user_bytes = self->closed_user_bytes + stats.user_bytes;
    counters->compaction_cpu_ns = self->closed_cpu_ns + stats.compaction_cpu_ns;
    counters->open_ns = self->closed_open_ns + (bench_now_ns() - self->opened_at_ns);
    counters->shape[0] = '\0';
    for (int level = 0; level < ENGINE_LEVELS; level++)
        s_shape_append(counters->shape, sizeof counters->shape, level, stats.level_files[level]);
}

/* ---- RocksDB ---- */

typedef struct {
    char *dir;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *write_options;
    rocksdb_readoptions_t *read_options;
    rocksdb_flushoptions_t *flush_options;
    rocksdb_t *db;
    uint64_t closed_table_bytes; /* "rocksdb.stats" counts from open */
} s_rocksdb_t;

static void *s_rocksdb_create(const s_params_t *p, const char *dir)
{
    s_rocksdb_t *self = s_alloc(sizeof *self);
    self->dir = strdup(dir);
    self->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(self->options, 1);
    rocksdb_options_set_write_buffer_size(self->options, p->write_buffer_bytes);
    rocksdb_options_set_level0_file_num_compaction_trigger(self->options, ENGINE_L0_TRIGGER);
    rocksdb_options_set_max_bytes_for_level_base(self->options, ENGINE_LEVEL1_BYTES);
    rocksdb_options_set_target_file_size_base(self->options, ENGINE_FILE_BYTES);
    rocksdb_options_set_compression(self->options, rocksdb_no_compression);
    /* No statistics: they time every block read, which would slow RocksDB
     * down for a number rocksdb.stats also gives (see s_rocksdb_table_bytes). */
    self->table_options = rocksdb_block_based_options_create();
    self->cache = rocksdb_cache_create_lru(ENGINE_CACHE_BYTES);
    rocksdb_block_based_options_set_block_cache(self->table_options, self->cache);
    /* The table options take the policy over. */
    rocksdb_block_based_options_set_filter_policy(
        self->table_options, rocksdb_filterpolicy_create_bloom_full(ENGINE_BLOOM_BITS));
    rocksdb_options_set_block_based_table_factory(self->options, self->table_options);
    self->write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(self->write_options, 0);
    self->read_options = rocksdb_readoptions_create();
    self->flush_options = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(self->flush_options, 1);
    return self;
}

static void s_rocksdb_destroy(void **self_p)
{
    s_rocksdb_t *self = *self_p;
    rocksdb_flushoptions_destroy(self->flush_options);
    rocksdb_readoptions_destroy(self->read_options);
    rocksdb_writeoptions_destroy(self->write_options);
    rocksdb_options_destroy(self->options);
    rocksdb_block_based_options_destroy(self->table_options);
    rocksdb_cache_destroy(self->cache);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* Prints and frees a RocksDB or LevelDB error; true when there was one. */
static bool s_failed(const char *what, char **error, void (*free_fn)(void *))
{
    if (!*error)
        return false;
    fprintf(stderr, "strata-bench: %s: %s\n", what, *error);
    free_fn(*error);
    *error = NULL;
    return true;
}

static int s_rocksdb_open(void *arg)
{
    s_rocksdb_t *self = arg;
    char *error = NULL;
    self->db = rocksdb_open(self->options, self->dir, &error);
    return s_failed("rocksdb_open", &error, rocksdb_free) ? -1 : 0;
}

/* "Cumulative compaction: 0.42 GB write" from "rocksdb.stats": every table
 * byte written since open, flushes included (they count as level 0
 * compaction output), to the nearest 0.01 GiB. */
static uint64_t s_rocksdb_table_bytes(rocksdb_t *db)
{
    static const char label[] = "Cumulative compaction: ";
    char *stats = rocksdb_property_value(db, "rocksdb.stats");
    const char *at = stats ? strstr(stats, label) : NULL;
    double written_gib = at ? strtod(at + strlen(label), NULL) : 0;
    rocksdb_free(stats);
    return (uint64_t)(written_gib * 1073741824.0);
}

static void s_rocksdb_close(void *arg)
{
    s_rocksdb_t *self = arg;
    self->closed_table_bytes += s_rocksdb_table_bytes(self->db);
    rocksdb_close(self->db);
    self->db = NULL;
}

static int s_rocksdb_put(void *arg, const uint8_t *key)
{
    s_rocksdb_t *self = arg;
    char *error = NULL;
    rocksdb_put(self->db, self->write_options, (const char *)key, BENCH_KEY_BYTES,
                (const char *)bench_value(), BENCH_VALUE_BYTES, &error);
    return s_failed("rocksdb_put", &error, rocksdb_free) ? -1 : 0;
}

static int s_rocksdb_get(void *arg, const uint8_t *key)
{
    s_rocksdb_t *self = arg;
    char *error = NULL;
    /* Pinned: a view into the block cache or memtable, no copy. */
    rocksdb_pinnableslice_t *slice = rocksdb_get_pinned(self->db, self->read_options,
                                                        (const char *)key, BENCH_KEY_BYTES, &error);
    if (s_failed("rocksdb_get_pinned", &error, rocksdb_free))
        return -1;
    if (!slice)
        return 0;
    size_t value_len = 0;
    const char *value = rocksdb_pinnableslice_value(slice, &value_len);
    int found = s_check_value("rocksdb_get_pinned", value, value_len);
    rocksdb_pinnableslice_destroy(slice);
    return found;
}

static int s_rocksdb_scan(void *arg, const uint8_t *from, uint64_t limit,
                          uint8_t first[BENCH_KEY_BYTES], uint64_t *entries)
{
    s_rocksdb_t *self = arg;
    *entries = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator(self->db, self->read_options);
    if (from)
        rocksdb_iter_seek(it, (const char *)from, BENCH_KEY_BYTES);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = 0;
    while (rc == 0 && *entries < limit && rocksdb_iter_valid(it)) {
        size_t key_len, value_len;
        const void *key = rocksdb_iter_key(it, &key_len);
        rocksdb_iter_value(it, &value_len);
        rc = s_scan_entry("rocksdb iterator", key, key_len, value_len, first, entries);
        rocksdb_iter_next(it);
    }
    char *error = NULL;
    rocksdb_iter_get_error(it, &error);
    if (s_failed("rocksdb iterator", &error, rocksdb_free))
        rc = -1;
    rocksdb_iter_destroy(it);
    return rc;
}

static int s_rocksdb_flush(void *arg)
{
    s_rocksdb_t *self = arg;
    char *error = NULL;
    rocksdb_flush(self->db, self->flush_options, &error);
    return s_failed("rocksdb_flush", &error, rocksdb_free) ? -1 : 0;
}

static void s_rocksdb_counters(void *arg, s_counters_t *counters)
{
    s_rocksdb_t *self = arg;
    counters->table_bytes = self->closed_table_bytes + s_rocksdb_table_bytes(self->db);
    counters->engine_user_bytes = 0;
    counters->shape[0] = '\0';
    for (int level = 0; level < ENGINE_LEVELS; level++) {
        char property[48];
        snprintf(property, sizeof property, "rocksdb.num-files-at-level%d", level);
        char *files = rocksdb_property_value(self->db, property);
        s_shape_append(counters->shape, sizeof counters->shape, level,
                       files ? strtoull(files, NULL, 10) : 0);
        rocksdb_free(files);
    }
}

/* ---- LevelDB ---- */

typedef struct {
    char *dir;
    leveldb_options_t *options;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_writeoptions_t *write_options;
    leveldb_readoptions_t *read_options;
    leveldb_t *db;
    uint64_t closed_table_bytes; /* "leveldb.stats" counts from open */
} s_leveldb_t;

static void *s_leveldb_create(const s_params_t *p, const char *dir)
{
    s_leveldb_t *self = s_alloc(sizeof *self);
    self->dir = strdup(dir);
    self->options = leveldb_options_create();
    leveldb_options_set_create_if_missing(self->options, 1);
    leveldb_options_set_write_buffer_size(self->options, p->write_buffer_bytes);
    leveldb_options_set_max_file_size(self->options, ENGINE_FILE_BYTES);
    leveldb_options_set_compression(self->options, leveldb_no_compression);
    self->cache = leveldb_cache_create_lru(ENGINE_CACHE_BYTES);
    leveldb_options_set_cache(self->options, self->cache);
    self->filter = leveldb_filterpolicy_create_bloom(ENGINE_BLOOM_BITS);
    leveldb_options_set_filter_policy(self->options, self->filter);
    self->write_options = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(self->write_options, 0);
    self->read_options = leveldb_readoptions_create();
    return self;
}

static void s_leveldb_destroy(void **self_p)
{
    s_leveldb_t *self = *self_p;
    leveldb_readoptions_destroy(self->read_options);
    leveldb_writeoptions_destroy(self->write_options);
    leveldb_options_destroy(self->options);
    leveldb_filterpolicy_destroy(self->filter);
    leveldb_cache_destroy(self->cache);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

static int s_leveldb_open(void *arg)
{
    s_leveldb_t *self = arg;
    char *error = NULL;
    self->db = leveldb_open(self->options, self->dir, &error);
    return s_failed("leveldb_open", &error, leveldb_free) ? -1 : 0;
}

/* Sum of the Write(MB) column of "leveldb.stats": every table byte written
 * by memtable flushes and compactions since open, to the nearest MB per
 * level (the property prints whole MB). */
static uint64_t s_leveldb_table_bytes(leveldb_t *db)
{
    char *stats = leveldb_property_value(db, "leveldb.stats");
    const char *line = stats ? strstr(stats, "---\n") : NULL;
    double written_mb = 0;
    while (line && (line = strchr(line, '\n')) != NULL) {
        line++;
        int level, files;
        double size_mb, seconds, read_mb, write_mb;
        if (sscanf(line, "%d %d %lf %lf %lf %lf", &level, &files, &size_mb, &seconds, &read_mb,
                   &write_mb) == 6)
            written_mb += write_mb;
    }
    leveldb_free(stats);
    return (uint64_t)(written_mb * 1048576.0);
}

static void s_leveldb_close(void *arg)
{
    s_leveldb_t *self = arg;
    self->closed_table_bytes += s_leveldb_table_bytes(self->db);
    leveldb_close(self->db);
    self->db = NULL;
}

static int s_leveldb_put(void *arg, const uint8_t *key)
{
    s_leveldb_t *self = arg;
    char *error = NULL;
    leveldb_put(self->db, self->write_options, (const char *)key, BENCH_KEY_BYTES,
                (const char *)bench_value(), BENCH_VALUE_BYTES, &error);
    return s_failed("leveldb_put", &error, leveldb_free) ? -1 : 0;
}

static int s_leveldb_get(void *arg, const uint8_t *key)
{
    s_leveldb_t *self = arg;
    char *error = NULL;
    size_t value_len = 0;
    char *value = leveldb_get(self->db, self->read_options, (const char *)key, BENCH_KEY_BYTES,
                              &value_len, &error);
    if (s_failed("leveldb_get", &error, leveldb_free))
        return -1;
    if (!value)
        return 0;
    int found = s_check_value("leveldb_get", value, value_len);
    leveldb_free(value);
    return found;
}

static int s_leveldb_scan(void *arg, const uint8_t *from, uint64_t limit,
                          uint8_t first[BENCH_KEY_BYTES], uint64_t *entries)
{
    s_leveldb_t *self = arg;
    *entries = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(self->db, self->read_options);
    if (from)
        leveldb_iter_seek(it, (const char *)from, BENCH_KEY_BYTES);
    else
        leveldb_iter_seek_to_first(it);
    int rc = 0;
    while (rc == 0 && *entries < limit && leveldb_iter_valid(it)) {
        size_t key_len, value_len;
        const void *key = leveldb_iter_key(it, &key_len);
        leveldb_iter_value(it, &value_len);
        rc = s_scan_entry("leveldb iterator", key, key_len, value_len, first, entries);
        leveldb_iter_next(it);
    }
    char *error = NULL;
    leveldb_iter_get_error(it, &error);
    if (s_failed("leveldb iterator", &error, leveldb_free))
        rc = -1;
    leveldb_iter_destroy(it);
    return rc;
}

static int s_leveldb_flush(void *arg)
{
    s_leveldb_t *self = arg;
    /* The C API has no flush. CompactRange first writes the memtable to a
     * table and waits; over a range past every key it then finds nothing
     * more to compact. */
    uint8_t past_every_key[BENCH_KEY_BYTES + 1];
    memset(past_every_key, 0xFF, sizeof past_every_key);
    leveldb_compact_range(self->db, (const char *)past_every_key, sizeof past_every_key,
                          (const char *)past_every_key, sizeof past_every_key);
    return 0;
}

static void s_leveldb_counters(void *arg, s_counters_t *counters)
{
    s_leveldb_t *self = arg;
    counters->table_bytes = self->closed_table_bytes + s_leveldb_table_bytes(self->db);
    counters->engine_user_bytes = 0;
    counters->shape[0] = '\0';
    for (int level = 0; level < ENGINE_LEVELS; level++) {
        char property[48];
        snprintf(property, sizeof property, "leveldb.num-files-at-level%d", level);
        char *files = leveldb_property_value(self->db, property);
        s_shape_append(counters->shape, sizeof counters->shape, level,
                       files ? strtoull(files, NULL, 10) : 0);
        leveldb_free(files);
    }
}

static const s_system_t s_systems[] = {
    {"strata", s_strata_create, s_strata_destroy, s_strata_open, s_strata_close, s_strata_put,
     s_strata_get, s_strata_scan, s_strata_flush, s_strata_counters},
    {"rocksdb", s_rocksdb_create, s_rocksdb_destroy, s_rocksdb_open, s_rocksdb_close, s_rocksdb_put,
     s_rocksdb_get, s_rocksdb_scan, s_rocksdb_flush, s_rocksdb_counters},
    {"leveldb", s_leveldb_create, s_leveldb_destroy, s_leveldb_open, s_leveldb_close, s_leveldb_put,
     s_leveldb_get, s_leveldb_scan, s_leveldb_flush, s_leveldb_counters},
};
#define SYSTEM_COUNT (sizeof s_systems / sizeof s_systems[0])

/* ---- results shared by a child with the parent --------------------------- */

typedef enum {
    CASE_FILLSEQ,
    CASE_FILLRANDOM,
    CASE_READRANDOM,
    CASE_READMISSING,
    CASE_SEEKRANDOM,
    CASE_OVERWRITE,
    CASE_COUNT
} s_case_id_t;

static const char *s_case_names[CASE_COUNT] = {
    "engine.fillseq",     "engine.fillrandom",   "engine.readrandom",
    "engine.readmissing", "engine.seek_next100", "engine.overwrite",
};

/* More than the histogram's buckets (256 exact, then 128 per power of two
 * up to 2^37). */
#define MAX_BUCKETS 4096

typedef struct {
    uint64_t upper_ns;
    uint64_t count;
} s_bucket_t;

/* A case as the child measured it: the histogram travels as its non-empty
 * buckets, which the parent records again at each bucket's highest value.
 * Percentiles come out the same (they are rounded to that value anyway). */
typedef struct {
    bool done;
    bool failed;
    uint64_t ops;
    double seconds;
    uint32_t bucket_count;
    s_bucket_t buckets[MAX_BUCKETS];
} s_case_result_t;

/* One system's results, in memory shared with the parent, so whatever a
 * child finished before a crash is still reported. */
typedef struct {
    s_case_result_t cases[CASE_COUNT];
    int running; /* the case under way, for a crash report */
    bool have_counters;
    s_counters_t counters;    /* of the fillrandom database, at the end */
    char shape_at_reopen[96]; /* tables per level when reads began */
    uint64_t user_bytes;      /* key + value bytes put into that database */
    /* RSS split at the end, before the close: mapped table pages are file
     * RSS, block caches and memtables anonymous. */
    uint64_t anon_rss_bytes, file_rss_bytes;
} s_system_result_t;

static void s_export_case(const bench_case_t *c, bool failed, s_case_result_t *out)
{
    out->ops = c->ops;
    out->seconds = c->seconds;
    out->failed = failed;
    out->bucket_count = 0;
    strata_histogram_cursor_t cursor = {0};
    uint64_t upper_ns, cumulative, previous = 0;
    while (strata_histogram_next_bucket(c->latency, &cursor, &upper_ns, &cumulative)) {
        if (out->bucket_count < MAX_BUCKETS)
            out->buckets[out->bucket_count++] = (s_bucket_t){upper_ns, cumulative - previous};
        else /* cannot happen at today's bucket count; kept rather than lost */
            out->buckets[MAX_BUCKETS - 1].count += cumulative - previous;
        previous = cumulative;
    }
    out->done = true;
}

static void s_import_case(const s_case_result_t *in, bench_case_t *c)
{
    c->ops = in->ops;
    c->seconds = in->seconds;
    for (uint32_t i = 0; i < in->bucket_count; i++)
        for (uint64_t n = 0; n < in->buckets[i].count; n++)
            strata_histogram_record(c->latency, in->buckets[i].upper_ns);
}

/* ---- the workload, run in a child per system ----------------------------- */

/* A "Name:   123 kB" line of /proc/self/status, in bytes; 0 when absent. */
static uint64_t s_status_bytes(const char *status, const char *name)
{
    const char *at = strstr(status, name);
    return at ? strtoull(at + strlen(name), NULL, 10) * 1024 : 0;
}

static void s_rss_now(s_system_result_t *out)
{
    char status[4096];
    FILE *f = fopen("/proc/self/status", "r");
    size_t len = f ? fread(status, 1, sizeof status - 1, f) : 0;
    if (f)
        fclose(f);
    status[len] = '\0';
    out->anon_rss_bytes = s_status_bytes(status, "RssAnon:");
    out->file_rss_bytes = s_status_bytes(status, "RssFile:");
}

typedef struct {
    const s_system_t *system;
    void *db;
    uint64_t keys;
    uint64_t wrong; /* reads that found what they should not, or missed */
} s_timed_t;

/* bench_run_timed draws a fresh random w->key before each call; its first
 * eight bytes pick the key number. */
static uint64_t s_pick(const bench_worker_t *w, uint64_t range)
{
    return s_load_be64(w->key) % range;
}

static int s_op_readrandom(bench_worker_t *w)
{
    s_timed_t *t = w->arg;
    s_key(s_pick(w, t->keys), true, w->key);
    int found = t->system->get(t->db, w->key);
    if (found == 0)
        t->wrong++;
    return found < 0 ? -1 : 0;
}

static int s_op_readmissing(bench_worker_t *w)
{
    s_timed_t *t = w->arg;
    s_key(s_pick(w, t->keys), false, w->key);
    int found = t->system->get(t->db, w->key);
    if (found != 0)
        t->wrong++;
    return found < 0 ? -1 : 0;
}

/* db_bench's seekrandom with --seek_nexts=100: a fresh iterator, a seek to
 * an existing key, then 100 entries read forward. */
static int s_op_seek(bench_worker_t *w)
{
    s_timed_t *t = w->arg;
    s_key(s_pick(w, t->keys - ENGINE_SEEK_NEXTS + 1), true, w->key);
    uint8_t first[BENCH_KEY_BYTES];
    uint64_t entries;
    if (t->system->scan(t->db, w->key, ENGINE_SEEK_NEXTS, first, &entries) != 0)
        return -1;
    if (entries != ENGINE_SEEK_NEXTS || memcmp(first, w->key, BENCH_KEY_BYTES) != 0)
        t->wrong++;
    return 0;
}

static int s_op_overwrite(bench_worker_t *w)
{
    s_timed_t *t = w->arg;
    s_key(s_pick(w, t->keys), true, w->key);
    return t->system->put(t->db, w->key);
}

/* Puts key numbers order[0..keys) (or 0..keys in order), timing each. */
static int s_fill(bench_case_t *c, const s_system_t *system, void *db, const uint32_t *order,
                  uint64_t keys)
{
    uint8_t key[BENCH_KEY_BYTES];
    uint64_t start = bench_now_ns();
    for (uint64_t i = 0; i < keys; i++) {
        s_key(order ? order[i] : i, true, key);
        uint64_t before = bench_now_ns();
        int rc = system->put(db, key);
        strata_histogram_record(c->latency, bench_now_ns() - before);
        if (rc != 0)
            return -1;
        c->ops++;
    }
    c->seconds = (double)(bench_now_ns() - start) / 1e9;
    return 0;
}

/* One timed case on one thread; it fails on an error or on any read that
 * found what it should not (or missed what it should find). */
static int s_timed_case(bench_t *b, s_system_result_t *out, s_case_id_t id, double seconds,
                        bench_op_fn op, s_timed_t *t, const char *wrong_what)
{
    bench_case_t c;
    bench_case_init(&c, s_case_names[id], t->system->name);
    out->running = id;
    t->wrong = 0;
    int rc = bench_run_timed(b, &c, 1, seconds, op, t);
    if (t->wrong > 0)
        fprintf(stderr, "strata-bench: %s %s: %llu of %llu %s\n", t->system->name, s_case_names[id],
                (unsigned long long)t->wrong, (unsigned long long)c.ops, wrong_what);
    bool failed = rc != 0 || t->wrong > 0;
    s_export_case(&c, failed, &out->cases[id]);
    bench_case_release(&c);
    return failed ? -1 : 0;
}

static int s_fill_case(s_system_result_t *out, s_case_id_t id, const s_system_t *system, void *db,
                       const uint32_t *order, uint64_t keys)
{
    bench_case_t c;
    bench_case_init(&c, s_case_names[id], system->name);
    out->running = id;
    int rc = s_fill(&c, system, db, order, keys);
    s_export_case(&c, rc != 0, &out->cases[id]);
    bench_case_release(&c);
    return rc;
}

/* The fill order of fillrandom: every key number once, shuffled by the
 * seed, so each system gets the same order and every key exists after. */
static uint32_t *s_shuffled(uint64_t seed, uint64_t keys)
{
    uint32_t *order = malloc(keys * sizeof *order);
    if (!order) {
        fprintf(stderr, "strata-bench: out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (uint64_t i = 0; i < keys; i++)
        order[i] = (uint32_t)i;
    uint64_t rng = seed ^ ENGINE_SHUFFLE_STREAM;
    for (uint64_t i = keys - 1; i > 0; i--) {
        uint64_t j = bench_rand(&rng) % (i + 1);
        uint32_t swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
    return order;
}

static int s_fillseq(bench_t *b, const s_params_t *p, const s_system_t *system,
                     s_system_result_t *out)
{
    char name[32];
    snprintf(name, sizeof name, "%s-fillseq", system->name);
    char *dir = bench_case_dir(b, name);
    void *db = system->create(p, dir);
    int rc = system->open(db);
    if (rc == 0) {
        rc = s_fill_case(out, CASE_FILLSEQ, system, db, NULL, p->keys);
        system->close(db);
    }
    system->destroy(&db);
    bench_rmtree(dir);
    free(dir);
    return rc;
}

/* fillrandom, then on the same database after a reopen: the reads and the
 * overwrites. Every put into it counts toward its write amplification. */
static int s_fillrandom_and_after(bench_t *b, const s_params_t *p, const s_system_t *system,
                                  s_system_result_t *out)
{
    char name[32];
    snprintf(name, sizeof name, "%s-fillrandom", system->name);
    char *dir = bench_case_dir(b, name);
    void *db = system->create(p, dir);
    uint32_t *order = s_shuffled(b->seed, p->keys);
    s_timed_t t = {.system = system, .db = db, .keys = p->keys};
    int failed = 0;
    if (system->open(db) != 0) {
        failed = 1;
        goto done;
    }
    failed |= s_fill_case(out, CASE_FILLRANDOM, system, db, order, p->keys) != 0;
    out->user_bytes = out->cases[CASE_FILLRANDOM].ops * (BENCH_KEY_BYTES + BENCH_VALUE_BYTES);
    /* Flushed before the close, so after the reopen every key is in a table
     * and none is replayed from the WAL into a memtable. */
    failed |= system->flush(db) != 0;
    system->close(db);
    if (failed || system->open(db) != 0) {
        failed = 1;
        goto done;
    }
    s_counters_t counters;
    system->counters(db, &counters);
    memcpy(out->shape_at_reopen, counters.shape, sizeof out->shape_at_reopen);

    /* Warm-up: one full scan reads every table block into the page cache
     * (and the block caches, as far as they hold), and proves every key is
     * there exactly once. */
    uint8_t first[BENCH_KEY_BYTES];
    uint64_t entries = 0;
    if (system->scan(db, NULL, UINT64_MAX, first, &entries) != 0 || entries != p->keys) {
        fprintf(stderr, "strata-bench: %s: the warm-up scan found %llu keys, not %llu\n",
                system->name, (unsigned long long)entries, (unsigned long long)p->keys);
        failed = 1;
    }
    failed |= s_timed_case(b, out, CASE_READRANDOM, p->read_seconds, s_op_readrandom, &t,
                           "written keys not found") != 0;
    failed |= s_timed_case(b, out, CASE_READMISSING, p->read_seconds, s_op_readmissing, &t,
                           "never-written keys found") != 0;
    failed |= s_timed_case(b, out, CASE_SEEKRANDOM, p->read_seconds, s_op_seek, &t,
                           "seeks not landing on their key or short of 100 entries") != 0;
    failed |=
        s_timed_case(b, out, CASE_OVERWRITE, p->overwrite_seconds, s_op_overwrite, &t, "") != 0;
    out->user_bytes += out->cases[CASE_OVERWRITE].ops * (BENCH_KEY_BYTES + BENCH_VALUE_BYTES);
    /* Flushed so every byte written counts once as flushed, in all three. */
    failed |= system->flush(db) != 0;
    system->counters(db, &out->counters);
    out->have_counters = true;
    s_rss_now(out);
    system->close(db);
done:
    free(order);
    system->destroy(&db);
    bench_rmtree(dir);
    free(dir);
    return failed ? -1 : 0;
}

static int s_run_system(bench_t *b, const s_params_t *p, const s_system_t *system,
                        s_system_result_t *out)
{
    int failed = s_fillseq(b, p, system, out) != 0;
    failed |= s_fillrandom_and_after(b, p, system, out) != 0;
    return failed;
}

/* ---- the verb: children, then the tables --------------------------------- */

typedef struct {
    bool exited_cleanly;
    uint64_t peak_rss_bytes;
    double seconds;
} s_child_t;

/* Runs system in a child; its ru_maxrss is then that system's peak alone
 * (a process's own ru_maxrss only ever grows, so one process could not
 * give three). */
static void s_run_child(bench_t *b, const s_params_t *p, const s_system_t *system,
                        s_system_result_t *out, s_child_t *child)
{
    fflush(stdout);
    fflush(stderr);
    uint64_t start = bench_now_ns();
    out->running = -1;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "strata-bench: fork: %s\n", strerror(errno));
        return;
    }
    if (pid == 0)
        _exit(s_run_system(b, p, system, out) ? 1 : 0);
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "strata-bench: wait4: %s\n", strerror(errno));
            return;
        }
    child->seconds = (double)(bench_now_ns() - start) / 1e9;
    child->peak_rss_bytes = (uint64_t)usage.ru_maxrss * 1024;
    child->exited_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "strata-bench: %s died of signal %d during %s\n", system->name,
                WTERMSIG(status), out->running >= 0 ? s_case_names[out->running] : "setup");
    printf("%s: %.1f s, peak RSS %.0f MiB%s\n", system->name, child->seconds,
           (double)child->peak_rss_bytes / 1048576.0, child->exited_cleanly ? "" : ", FAILED");
}

static double s_write_amp(const s_system_result_t *r)
{
    return r->have_counters && r->user_bytes > 0
               ? (double)r->counters.table_bytes / (double)r->user_bytes
               : 0;
}

static void s_report_totals(bench_t *b, const s_system_result_t *results, const s_child_t *children)
{
    printf("\n%-22s %-15s %10s %10s %10s %10s %10s %10s\n", "totals", "system", "table MiB",
           "user MiB", "write-amp", "peak RSS", "end anon", "end file");
    for (size_t s = 0; s < SYSTEM_COUNT; s++) {
        const s_system_result_t *r = &results[s];
        const char *name = s_systems[s].name;
        printf("%-22s %-15s %10.1f %10.1f %10.2f %10.0f %10.0f %10.0f\n", "engine.totals", name,
               (double)r->counters.table_bytes / 1048576.0, (double)r->user_bytes / 1048576.0,
               s_write_amp(r), (double)children[s].peak_rss_bytes / 1048576.0,
               (double)r->anon_rss_bytes / 1048576.0, (double)r->file_rss_bytes / 1048576.0);
        if (r->have_counters)
            bench_emit(b, "engine.write_amp", name, "write_amp", s_write_amp(r), "x");
        bench_emit(b, "engine.peak_rss", name, "peak_rss", (double)children[s].peak_rss_bytes,
                   "bytes");
    }
    for (size_t s = 1; s < SYSTEM_COUNT; s++) {
        char system[32];
        snprintf(system, sizeof system, "strata/%s", s_systems[s].name);
        double amp = s_write_amp(&results[s]);
        double rss = (double)children[s].peak_rss_bytes;
        char amp_cell[16] = "-", rss_cell[16] = "-";
        if (amp > 0 && s_write_amp(&results[0]) > 0) {
            snprintf(amp_cell, sizeof amp_cell, "%.2fx", s_write_amp(&results[0]) / amp);
            bench_emit(b, "engine.write_amp", system, "write_amp_ratio",
                       s_write_amp(&results[0]) / amp, "x, lower is better");
        }
        if (rss > 0 && children[0].peak_rss_bytes > 0) {
            snprintf(rss_cell, sizeof rss_cell, "%.2fx", (double)children[0].peak_rss_bytes / rss);
            bench_emit(b, "engine.peak_rss", system, "peak_rss_ratio",
                       (double)children[0].peak_rss_bytes / rss, "x, lower is better");
        }
        printf("%-22s %-15s %10s %10s %10s %10s\n", "engine.totals", system, "", "", amp_cell,
               rss_cell);
    }
    printf("tables per level when the reads began:");
    for (size_t s = 0; s < SYSTEM_COUNT; s++)
        printf(" %s [%s]%s", s_systems[s].name, results[s].shape_at_reopen,
               s + 1 < SYSTEM_COUNT ? "," : "\n");
    printf("tables per level at the end:");
    for (size_t s = 0; s < SYSTEM_COUNT; s++)
        printf(" %s [%s]%s", s_systems[s].name, results[s].counters.shape,
               s + 1 < SYSTEM_COUNT ? "," : "\n");
    if (results[0].have_counters && results[0].counters.open_ns > 0) {
        const s_counters_t *c = &results[0].counters;
        double cpu_s = (double)c->compaction_cpu_ns / 1e9, open_s = (double)c->open_ns / 1e9;
        printf("strata compaction thread CPU: %.2f s over the %.1f s the fillrandom database was "
               "open: %.1f%% of one core\n",
               cpu_s, open_s, 100.0 * cpu_s / open_s);
        bench_emit(b, "engine.compaction", "strata", "cpu_seconds", cpu_s, "s");
        bench_emit(b, "engine.compaction", "strata", "cpu_share", cpu_s / open_s,
                   "fraction of one core");
    }
    if (results[0].have_counters && results[0].counters.engine_user_bytes != results[0].user_bytes)
        printf("anomaly: strata_db_stats counted %llu user bytes, the bench put %llu\n",
               (unsigned long long)results[0].counters.engine_user_bytes,
               (unsigned long long)results[0].user_bytes);
}

int bench_engine(bench_t *b)
{
    s_params_t p = {
        .keys = ENGINE_KEYS,
        .write_buffer_bytes = (size_t)(b->quick ? 16 : 64) << 20,
        .read_seconds = b->case_seconds,
        .overwrite_seconds = b->quick ? 5.0 : 30.0,
    };
    size_t shared_bytes = SYSTEM_COUNT * sizeof(s_system_result_t);
    s_system_result_t *results =
        mmap(NULL, shared_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED) {
        fprintf(stderr, "strata-bench: mmap: %s\n", strerror(errno));
        return 1;
    }
    printf("\nengine: %llu keys; %zu MiB write buffer, %d-bit bloom, 64 MiB block cache, no "
           "compression, no sync, WAL on\n",
           (unsigned long long)p.keys, p.write_buffer_bytes >> 20, ENGINE_BLOOM_BITS);
    s_child_t children[SYSTEM_COUNT] = {0};
    int failed = 0;
    for (size_t s = 0; s < SYSTEM_COUNT; s++) {
        s_run_child(b, &p, &s_systems[s], &results[s], &children[s]);
        failed |= !children[s].exited_cleanly;
    }

    bench_table_header("engine: one thread; latency is one put, get, or seek + 100 entries");
    for (int id = 0; id < CASE_COUNT; id++) {
        bench_case_t cases[SYSTEM_COUNT];
        for (size_t s = 0; s < SYSTEM_COUNT; s++) {
            bench_case_init(&cases[s], s_case_names[id], s_systems[s].name);
            const s_case_result_t *r = &results[s].cases[id];
            if (r->done)
                s_import_case(r, &cases[s]);
            failed |= !r->done || r->failed;
            bench_case_report(b, &cases[s]);
        }
        for (size_t s = 1; s < SYSTEM_COUNT; s++)
            bench_ratio_report(b, &cases[0], &cases[s]);
        for (size_t s = 0; s < SYSTEM_COUNT; s++)
            bench_case_release(&cases[s]);
    }
    s_report_totals(b, results, children);
    printf(
        "fillseq and fillrandom put %llu keys into a fresh database each; the fillrandom one is\n"
        "flushed, closed, reopened and scanned once (warm-up) before the reads, then overwritten\n"
        "at random for %.0f s. seek_next100: a new iterator, a seek, 100 entries read.\n"
        "write-amp = table bytes written by flushes and compactions / key+value bytes put, over\n"
        "the fillrandom database's life, after a final flush. Sources: strata: strata_db_stats\n"
        "flush_bytes + compaction_bytes_written; rocksdb: \"Cumulative compaction: X GB write\"\n"
        "(flushes included) of the rocksdb.stats property, to 0.01 GiB, statistics left off as\n"
        "they time every block read; leveldb: the Write(MB) column of the leveldb.stats property,\n"
        "summed over levels (whole MB per level). Each summed over both opens. Write-amp grows\n"
        "with the volume written and overwrite is timed, so a faster system is measured at a\n"
        "larger volume: compare it with the user MiB beside it.\n"
        "All three: L0 trigger 4, 8 MiB table files; L1 64 MiB for strata and rocksdb, 10 MiB\n"
        "(fixed) for leveldb. Strata has no block cache: it reads tables through mmap, and so\n"
        "does leveldb (its default on 64-bit; uncompressed mmap'd blocks skip its cache), so\n"
        "their RSS includes the table pages they touched; rocksdb preads into its 64 MiB cache.\n"
        "Strata async also fdatasyncs its WAL every 10 ms in the background; the others\n"
        "never sync. RSS in MiB: peak is ru_maxrss of a child that ran only that system; end\n"
        "anon/file is RssAnon/RssFile of /proc/self/status after the final flush.\n"
        "ratio rows: ops/s higher is better; latency, write-amp and RSS lower is better.\n",
        (unsigned long long)p.keys, p.overwrite_seconds);
    munmap(results, shared_bytes);
    return failed;
}
