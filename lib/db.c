/* The embedded engine: a WAL in <dir>/wal and memtables in memory. The
 * WAL's group-commit leader inserts into the active memtable (so inserts are
 * single-threaded and in seq order); readers take references under a short
 * lock and then search without it. */
#define _GNU_SOURCE
#include "strata/db.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "strata/memtable.h"

#define DEFAULT_MEMTABLE_BYTES ((size_t)128 << 20)
#define READ_REFS_ON_STACK     8

struct strata_db {
    strata_db_options_t opts;
    char *dir;
    int lock_fd;
    strata_wal_t *wal;
    strata_wal_recovery_t recovery;

    pthread_mutex_t mu; /* guards the memtable list, not their contents */
    strata_memtable_t *active;
    strata_memtable_t **immutables; /* oldest first */
    size_t n_immutables;
    size_t cap_immutables;

    _Atomic uint64_t visible_seq; /* every write up to here is readable */
    _Atomic int failed;           /* a memtable insert ran out of memory */
};

typedef struct {
    size_t topic_off, key_off, value_off;
    uint16_t topic_len;
    uint32_t key_len, value_len;
    uint8_t type;
} batch_op_t;

struct strata_batch {
    batch_op_t *ops;
    size_t n_ops, cap_ops;
    uint8_t *bytes; /* keys and values, addressed by offset so growth is safe */
    size_t n_bytes, cap_bytes;
};

void strata_db_options_init(strata_db_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->durability = STRATA_SYNC;
    opts->memtable_bytes = DEFAULT_MEMTABLE_BYTES;
    opts->async_sync_interval_ms = 10;
    opts->wal_segment_bytes = (uint64_t)64 << 20;
}

/* ---- memtable list ----------------------------------------------------- */

/* Called only by the single inserting thread. */
static int switch_memtable(strata_db_t *self)
{
    strata_memtable_t *fresh = strata_memtable_new();
    if (!fresh)
        return STRATA_ENOMEM;
    pthread_mutex_lock(&self->mu);
    if (self->n_immutables == self->cap_immutables) {
        size_t cap = self->cap_immutables ? self->cap_immutables * 2 : 4;
        strata_memtable_t **grown = realloc(self->immutables, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&self->mu);
            strata_memtable_unref(&fresh);
            return STRATA_ENOMEM;
        }
        self->immutables = grown;
        self->cap_immutables = cap;
    }
    self->immutables[self->n_immutables++] = self->active;
    self->active = fresh;
    pthread_mutex_unlock(&self->mu);
    return 0;
}

static int insert(strata_db_t *self, uint64_t seq, uint8_t type, const void *key, size_t key_len,
                  const void *value, size_t value_len)
{
    if (strata_memtable_bytes(self->active) >= self->opts.memtable_bytes) {
        int rc = switch_memtable(self);
        if (rc)
            return rc;
    }
    return strata_memtable_add(self->active, seq, (strata_value_type_t)type, key, key_len, value,
                               value_len);
}

static void apply_group(void *arg, uint64_t first_seq, uint64_t term, const strata_wal_op_t *ops,
                        size_t n_ops)
{
    strata_db_t *self = arg;
    for (size_t i = 0; i < n_ops; i++) {
        const strata_wal_op_t *op = &ops[i];
        if (insert(self, first_seq + i, op->type, op->key, op->key_len, op->value, op->value_len) <
            0)
            atomic_store(&self->failed, STRATA_ENOMEM);
    }
    /* Published after the whole group so a batch becomes visible at once. */
    atomic_store_explicit(&self->visible_seq, first_seq + n_ops - 1, memory_order_release);
}

static int replay_entry(void *arg, const strata_wal_entry_t *e)
{
    strata_db_t *self = arg;
    int rc = insert(self, e->seq, e->type, e->key, e->key_len, e->value, e->value_len);
    if (rc == 0)
        atomic_store(&self->visible_seq, e->seq);
    return rc;
}

/* ---- open / close ------------------------------------------------------ */

static void db_free(strata_db_t *self)
{
    strata_memtable_unref(&self->active);
    for (size_t i = 0; i < self->n_immutables; i++)
        strata_memtable_unref(&self->immutables[i]);
    free(self->immutables);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&self->mu);
    free(self->dir);
    free(self);
}

/* One process per directory: a second opener would interleave WAL writes. */
static int take_lock(strata_db_t *self, strata_error_t *err)
{
    char *path = NULL;
    if (asprintf(&path, "%s/LOCK", self->dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (self->lock_fd < 0)
        rc = strata_error_set(err, STRATA_EIO, "open %s: %s", path, strerror(errno));
    else if (flock(self->lock_fd, LOCK_EX | LOCK_NB) < 0)
        rc = strata_error_set(
            err, errno == EWOULDBLOCK ? STRATA_EEXIST : STRATA_EIO, "%s: %s", path,
            errno == EWOULDBLOCK ? "database is open in another process" : strerror(errno));
    free(path);
    return rc;
}

int strata_db_open(const strata_db_options_t *opts, strata_db_t **db_p, strata_error_t *err)
{
    strata_error_clear(err);
    if (!opts || !opts->dir || !db_p)
        return strata_error_set(err, STRATA_EINVAL, "db open needs options with a dir");
    *db_p = NULL;
    strata_db_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->opts = *opts;
    self->lock_fd = -1;
    pthread_mutex_init(&self->mu, NULL);
    if (!self->opts.memtable_bytes)
        self->opts.memtable_bytes = DEFAULT_MEMTABLE_BYTES;
    self->dir = strdup(opts->dir);
    self->opts.dir = self->dir;
    self->active = strata_memtable_new();
    if (!self->dir || !self->active) {
        db_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    strata_io_t *io = opts->io ? opts->io : strata_io_posix();
    int rc = strata_io_mkdirs(io, self->dir);
    if (rc < 0) {
        rc = strata_error_set(err, STRATA_EIO, "create directory %s: %s", self->dir, strerror(-rc));
        db_free(self);
        return rc;
    }
    rc = take_lock(self, err);
    if (rc) {
        db_free(self);
        return rc;
    }

    char *wal_dir = NULL;
    if (asprintf(&wal_dir, "%s/wal", self->dir) < 0) {
        db_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    strata_wal_options_t wo = {
        .dir = wal_dir,
        .segment_bytes = opts->wal_segment_bytes,
        .async_sync_interval_ms = opts->async_sync_interval_ms,
        .repair = opts->repair_wal,
        .io = io,
        .apply = apply_group,
        .apply_arg = self,
    };
    rc = strata_wal_open(&wo, 1, replay_entry, self, &self->recovery, &self->wal, err);
    free(wal_dir);
    if (rc) {
        db_free(self);
        return rc;
    }
    *db_p = self;
    return 0;
}

int strata_db_close(strata_db_t **db_p, strata_error_t *err)
{
    if (!db_p || !*db_p)
        return 0;
    strata_db_t *self = *db_p;
    *db_p = NULL;
    int rc = strata_wal_close(&self->wal, err);
    db_free(self);
    return rc;
}

/* ---- writes ------------------------------------------------------------ */

static strata_durability_t durability_of(const strata_db_t *self, const strata_write_options_t *wo)
{
    return wo ? wo->durability : self->opts.durability;
}

static int write_ops(strata_db_t *self, const strata_write_options_t *wo,
                     const strata_wal_op_t *ops, size_t n_ops, uint64_t *first_seq,
                     strata_error_t *err)
{
    int failed = atomic_load(&self->failed);
    if (failed)
        return strata_error_set(err, STRATA_EREADONLY,
                                "database stopped accepting writes after a memtable insert "
                                "ran out of memory");
    return strata_wal_append(self->wal, ops, n_ops, durability_of(self, wo), first_seq, err);
}

static int check_lengths(size_t key_len, size_t value_len, strata_error_t *err)
{
    if (key_len > UINT32_MAX || value_len > UINT32_MAX)
        return strata_error_set(err, STRATA_ETOOBIG, "key of %zu or value of %zu bytes", key_len,
                                value_len);
    return 0;
}

int strata_db_put(strata_db_t *self, const strata_write_options_t *wo, const void *key,
                  size_t key_len, const void *value, size_t value_len, uint64_t *seq,
                  strata_error_t *err)
{
    int rc = check_lengths(key_len, value_len, err);
    if (rc)
        return rc;
    strata_wal_op_t op = {
        .type = STRATA_VALUE_PUT,
        .key = key,
        .key_len = (uint32_t)key_len,
        .value = value,
        .value_len = (uint32_t)value_len,
    };
    return write_ops(self, wo, &op, 1, seq, err);
}

int strata_db_delete(strata_db_t *self, const strata_write_options_t *wo, const void *key,
                     size_t key_len, uint64_t *seq, strata_error_t *err)
{
    int rc = check_lengths(key_len, 0, err);
    if (rc)
        return rc;
    strata_wal_op_t op = {.type = STRATA_VALUE_DELETE, .key = key, .key_len = (uint32_t)key_len};
    return write_ops(self, wo, &op, 1, seq, err);
}

int strata_db_write(strata_db_t *self, const strata_write_options_t *wo, strata_batch_t *batch,
                    uint64_t *first_seq, strata_error_t *err)
{
    if (!batch || batch->n_ops == 0)
        return strata_error_set(err, STRATA_EINVAL, "empty batch");
    strata_wal_op_t *ops = malloc(batch->n_ops * sizeof *ops);
    if (!ops)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    for (size_t i = 0; i < batch->n_ops; i++) {
        const batch_op_t *b = &batch->ops[i];
        ops[i] = (strata_wal_op_t){
            .type = b->type,
            .topic = batch->bytes + b->topic_off,
            .topic_len = b->topic_len,
            .key = batch->bytes + b->key_off,
            .key_len = b->key_len,
            .value = batch->bytes + b->value_off,
            .value_len = b->value_len,
        };
    }
    int rc = write_ops(self, wo, ops, batch->n_ops, first_seq, err);
    free(ops);
    return rc;
}

int strata_db_sync(strata_db_t *self, strata_error_t *err)
{
    return strata_wal_sync(self->wal, err);
}

/* ---- reads ------------------------------------------------------------- */

int strata_db_get(strata_db_t *self, const strata_read_options_t *ro, const void *key,
                  size_t key_len, void **value, size_t *value_len, strata_error_t *err)
{
    uint64_t snapshot = ro && ro->snapshot_seq
                            ? ro->snapshot_seq
                            : atomic_load_explicit(&self->visible_seq, memory_order_acquire);
    strata_memtable_t *stack_refs[READ_REFS_ON_STACK];
    strata_memtable_t **refs = stack_refs;
    size_t n = 0;

    pthread_mutex_lock(&self->mu);
    size_t need = self->n_immutables + 1;
    if (need > READ_REFS_ON_STACK) {
        refs = malloc(need * sizeof *refs);
        if (!refs) {
            pthread_mutex_unlock(&self->mu);
            return strata_error_set(err, STRATA_ENOMEM, "out of memory");
        }
    }
    refs[n++] = self->active;
    for (size_t i = self->n_immutables; i-- > 0;)
        refs[n++] = self->immutables[i];
    for (size_t i = 0; i < n; i++)
        strata_memtable_ref(refs[i]);
    pthread_mutex_unlock(&self->mu);

    int rc = STRATA_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        strata_value_type_t type;
        const void *found;
        size_t found_len;
        if (!strata_memtable_get(refs[i], key, key_len, snapshot, &type, &found, &found_len, NULL))
            continue;
        if (type == STRATA_VALUE_PUT) {
            void *copy = malloc(found_len ? found_len : 1);
            if (!copy) {
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
                break;
            }
            memcpy(copy, found, found_len);
            *value = copy;
            *value_len = found_len;
            rc = 0;
        }
        break; /* the newest entry decides, a delete marker included */
    }
    for (size_t i = 0; i < n; i++)
        strata_memtable_unref(&refs[i]);
    if (refs != stack_refs)
        free(refs);
    if (rc == STRATA_ENOTFOUND)
        strata_error_set(err, rc, "not found");
    return rc;
}

uint64_t strata_db_last_seq(strata_db_t *self)
{
    return atomic_load_explicit(&self->visible_seq, memory_order_acquire);
}

void strata_db_stats(strata_db_t *self, strata_db_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    stats->recovery = self->recovery;
    stats->last_seq = strata_db_last_seq(self);
    stats->durable_seq = strata_wal_durable_seq(self->wal);
    pthread_mutex_lock(&self->mu);
    stats->active_memtable_bytes = strata_memtable_bytes(self->active);
    stats->immutable_memtables = (uint32_t)self->n_immutables;
    pthread_mutex_unlock(&self->mu);
    strata_wal_stats(self->wal, &stats->wal);
}

/* ---- batches ----------------------------------------------------------- */

strata_batch_t *strata_batch_new(void)
{
    return calloc(1, sizeof(strata_batch_t));
}

void strata_batch_destroy(strata_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ops);
    free((*self_p)->bytes);
    free(*self_p);
    *self_p = NULL;
}

static int batch_reserve(strata_batch_t *self, size_t more_bytes)
{
    if (self->n_ops == self->cap_ops) {
        size_t cap = self->cap_ops ? self->cap_ops * 2 : 8;
        batch_op_t *grown = realloc(self->ops, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->ops = grown;
        self->cap_ops = cap;
    }
    if (self->n_bytes + more_bytes > self->cap_bytes) {
        size_t cap = self->cap_bytes ? self->cap_bytes : 256;
        while (cap < self->n_bytes + more_bytes)
            cap *= 2;
        uint8_t *grown = realloc(self->bytes, cap);
        if (!grown)
            return STRATA_ENOMEM;
        self->bytes = grown;
        self->cap_bytes = cap;
    }
    return 0;
}

static int batch_add(strata_batch_t *self, uint8_t type, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    if (key_len > UINT32_MAX || value_len > UINT32_MAX)
        return STRATA_ETOOBIG;
    int rc = batch_reserve(self, key_len + value_len);
    if (rc)
        return rc;
    batch_op_t *op = &self->ops[self->n_ops++];
    *op = (batch_op_t){
        .type = type,
        .topic_off = self->n_bytes,
        .key_off = self->n_bytes,
        .key_len = (uint32_t)key_len,
        .value_off = self->n_bytes + key_len,
        .value_len = (uint32_t)value_len,
    };
    if (key_len)
        memcpy(self->bytes + self->n_bytes, key, key_len);
    if (value_len)
        memcpy(self->bytes + self->n_bytes + key_len, value, value_len);
    self->n_bytes += key_len + value_len;
    return 0;
}

int strata_batch_put(strata_batch_t *self, const void *key, size_t key_len, const void *value,
                     size_t value_len)
{
    return batch_add(self, STRATA_VALUE_PUT, key, key_len, value, value_len);
}

int strata_batch_delete(strata_batch_t *self, const void *key, size_t key_len)
{
    return batch_add(self, STRATA_VALUE_DELETE, key, key_len, NULL, 0);
}

size_t strata_batch_count(const strata_batch_t *self)
{
    return self->n_ops;
}

void strata_batch_clear(strata_batch_t *self)
{
    self->n_ops = 0;
    self->n_bytes = 0;
}
