/* The embedded engine: a WAL in <dir>/wal and memtables in memory, flushed
 * to SSTables by a background thread and compacted by another. Committed
 * entries are applied to the active memtable in seq order (db_commit.c);
 * readers take references under a short lock and then search without it. */
#define _GNU_SOURCE
#include "strata/db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "strata/memtable.h"
#include "strata/sstable.h"
#include "coding.h"
#include "compaction.h"
#include "iter.h"
#include "version.h"

#define DEFAULT_MEMTABLE_BYTES  ((size_t)128 << 20)
#define DEFAULT_MAX_IMMUTABLES  4
#define DEFAULT_MAX_UNCOMMITTED ((size_t)256 << 20)
#define READ_REFS_ON_STACK      8

#include "db_impl.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void strata_db_options_init(strata_db_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->durability = STRATA_SYNC;
    opts->memtable_bytes = DEFAULT_MEMTABLE_BYTES;
    opts->async_sync_interval_ms = 10;
    opts->wal_segment_bytes = (uint64_t)64 << 20;
    opts->max_immutable_memtables = DEFAULT_MAX_IMMUTABLES;
    opts->max_uncommitted_bytes = DEFAULT_MAX_UNCOMMITTED;
}

/* ---- memtable list ----------------------------------------------------- */

/* Called only by the single inserting thread. When flushes fall behind,
 * the write path waits here (a stall, counted and logged) rather than let
 * immutable memtables grow without bound. */
int db_switch_memtable(strata_db_t *self)
{
    strata_memtable_t *fresh = strata_memtable_new();
    if (!fresh)
        return STRATA_ENOMEM;
    pthread_mutex_lock(&self->mu);
    if (self->n_immutables >= self->opts.max_immutable_memtables && !atomic_load(&self->failed)) {
        uint64_t start = now_ns();
        self->stalls++;
        strata_log(STRATA_LOG_WARNING, "event=write_stall immutables=%zu limit=%u dir=%s",
                   self->n_immutables, self->opts.max_immutable_memtables, self->dir);
        while (self->n_immutables >= self->opts.max_immutable_memtables &&
               !atomic_load(&self->failed) && !self->stopping)
            pthread_cond_wait(&self->flush_cv, &self->mu);
        self->stall_ns += now_ns() - start;
    }
    if (self->n_immutables == self->cap_immutables) {
        size_t cap = self->cap_immutables ? self->cap_immutables * 2 : 4;
        strata_memtable_t **grown = realloc(self->immutables, cap * sizeof *grown);
        uint64_t *grown_seqs =
            grown ? realloc(self->immutable_last_seq, cap * sizeof *grown_seqs) : NULL;
        if (grown)
            self->immutables = grown;
        if (!grown || !grown_seqs) {
            pthread_mutex_unlock(&self->mu);
            strata_memtable_unref(&fresh);
            return STRATA_ENOMEM;
        }
        self->immutable_last_seq = grown_seqs;
        self->cap_immutables = cap;
    }
    self->immutable_last_seq[self->n_immutables] = self->last_inserted_seq;
    self->immutables[self->n_immutables++] = self->active;
    self->active = fresh;
    pthread_cond_broadcast(&self->flush_cv);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

int db_insert(strata_db_t *self, uint64_t seq, uint8_t type, const void *key, size_t key_len,
              const void *value, size_t value_len)
{
    if (strata_memtable_bytes(self->active) >= self->opts.memtable_bytes) {
        int rc = db_switch_memtable(self);
        if (rc)
            return rc;
    }
    int rc = strata_memtable_add(self->active, seq, (strata_value_type_t)type, key, key_len, value,
                                 value_len);
    if (rc == 0)
        self->last_inserted_seq = seq;
    return rc;
}

void db_set_failure(strata_db_t *self, const strata_error_t *err)
{
    pthread_mutex_lock(&self->mu);
    if (!atomic_load(&self->failed)) {
        self->failure = *err;
        atomic_store(&self->failed, err->code ? err->code : STRATA_EIO);
        strata_log(STRATA_LOG_ERROR, "event=background_error writes=stopped error=\"%s\"",
                   err->msg);
    }
    pthread_cond_broadcast(&self->flush_cv);
    pthread_mutex_unlock(&self->mu);
}

/* ---- flush ------------------------------------------------------------- */

/* Writes one immutable memtable to a new L0 table and logs it. Every
 * version of every key goes out: dropping shadowed ones is compaction's
 * job, since a snapshot may still need them. */
static int flush_memtable(strata_db_t *self, strata_memtable_t *mem, uint64_t last_seq,
                          strata_error_t *err)
{
    uint64_t number = vset_new_file_number(self->vset);
    char *path = vset_table_path(self->vset, number);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    strata_table_builder_t *builder = NULL;
    int rc = strata_table_builder_new(&self->table_opts, path, &builder, err);
    free(path);
    if (rc)
        return rc;
    strata_memtable_iter_t *it = strata_memtable_iter_new(mem);
    if (!it) {
        strata_table_builder_abandon(&builder);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    for (strata_memtable_iter_seek_first(it); rc == 0 && strata_memtable_iter_valid(it);
         strata_memtable_iter_next(it)) {
        size_t key_len, value_len;
        const void *key = strata_memtable_iter_key(it, &key_len);
        const void *value = strata_memtable_iter_value(it, &value_len);
        rc = strata_table_builder_add(builder, key, key_len, strata_memtable_iter_seq(it),
                                      strata_memtable_iter_type(it), value, value_len, err);
    }
    strata_memtable_iter_destroy(&it);
    strata_table_props_t props;
    memset(&props, 0, sizeof props);
    if (rc == 0)
        rc = strata_table_builder_finish(&builder, &props, err);
    else
        strata_table_builder_abandon(&builder);
    if (rc)
        return rc;
    edit_t edit;
    edit_init(&edit);
    vfile_t *file = vfile_new(number, &props);
    strata_table_props_clear(&props);
    if (!file || edit_add(&edit, 0, file)) {
        vfile_unref(&file);
        edit_clear(&edit);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    edit.has_flushed_seq = true;
    edit.flushed_seq = last_seq;
    edit.has_last_seq = true;
    edit.last_seq = last_seq;
    uint64_t bytes = file->size;
    pthread_mutex_lock(&self->vset_mu);
    rc = vset_apply(self->vset, &edit, err);
    pthread_mutex_unlock(&self->vset_mu);
    edit_clear(&edit);
    if (rc == 0) {
        pthread_mutex_lock(&self->mu);
        self->flush_bytes += bytes;
        pthread_cond_signal(&self->compact_cv);
        pthread_mutex_unlock(&self->mu);
    }
    return rc;
}

/* ---- compaction -------------------------------------------------------- */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The oldest seq any reader may still ask for. Called with mu held. */
static uint64_t smallest_snapshot(strata_db_t *self)
{
    uint64_t smallest = atomic_load(&self->visible_seq);
    for (size_t i = 0; i < self->n_snapshots; i++)
        if (self->snapshots[i] < smallest)
            smallest = self->snapshots[i];
    return smallest;
}

static bool compaction_due(strata_db_t *self)
{
    if (self->compact_forced)
        return true;
    if (self->opts.disable_auto_compaction)
        return false;
    version_t *v = vset_current(self->vset);
    bool due = compaction_score(v, &self->compaction_opts) >= 1.0;
    version_unref(&v);
    return due;
}

static void *compact_loop(void *arg)
{
    strata_db_t *self = arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stopping && (atomic_load(&self->failed) || !compaction_due(self)))
            pthread_cond_wait(&self->compact_cv, &self->mu);
        if (self->stopping)
            break;
        bool force = self->compact_forced;
        uint64_t snapshot = smallest_snapshot(self);
        pthread_mutex_unlock(&self->mu);

        version_t *v = vset_current(self->vset);
        compaction_t *c = NULL;
        int rc = compaction_pick(v, &self->compaction_opts, &self->cursor, force, &c);
        version_unref(&v);
        strata_error_t err;
        strata_error_clear(&err);
        if (rc)
            strata_error_set(&err, rc, "picking a compaction: %s", strata_strerror(rc));
        compaction_stats_t cs = {0};
        uint64_t cpu = thread_cpu_ns();
        if (rc == 0 && c) {
            edit_t edit;
            edit_init(&edit);
            rc = compaction_run(self->vset, &self->table_opts, &self->compaction_opts, c, snapshot,
                                &edit, &cs, &err);
            if (rc == 0) {
                pthread_mutex_lock(&self->vset_mu);
                rc = vset_apply(self->vset, &edit, &err);
                pthread_mutex_unlock(&self->vset_mu);
            }
            edit_clear(&edit);
        }
        cpu = thread_cpu_ns() - cpu;
        compaction_free(&c);
        pthread_mutex_lock(&self->mu);
        if (rc) {
            pthread_mutex_unlock(&self->mu);
            db_set_failure(self, &err);
            pthread_mutex_lock(&self->mu);
            self->compact_forced = false;
            self->compact_rounds++;
            pthread_cond_broadcast(&self->compact_cv);
            continue;
        }
        if (cs.tables_written || cs.entries_in) {
            self->compactions++;
            self->compaction_read += cs.bytes_read;
            self->compaction_written += cs.bytes_written;
            self->compaction_cpu_ns += cpu;
            /* After a forced L0 round, go on by score alone. */
            if (force)
                self->compact_forced = false;
        } else {
            self->compact_forced = false;
            self->compact_rounds++;
            pthread_cond_broadcast(&self->compact_cv);
        }
        if (!self->compact_forced && !compaction_due(self)) {
            self->compact_rounds++;
            pthread_cond_broadcast(&self->compact_cv);
        }
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

static void *flush_loop(void *arg)
{
    strata_db_t *self = arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stopping && (self->n_immutables == 0 || atomic_load(&self->failed)))
            pthread_cond_wait(&self->flush_cv, &self->mu);
        if (self->stopping)
            break;
        strata_memtable_t *mem = self->immutables[0];
        uint64_t last_seq = self->immutable_last_seq[0];
        strata_memtable_ref(mem);
        pthread_mutex_unlock(&self->mu);

        strata_error_t err;
        strata_error_clear(&err);
        int rc = flush_memtable(self, mem, last_seq, &err);
        if (rc) {
            db_set_failure(self, &err);
            strata_memtable_unref(&mem);
            pthread_mutex_lock(&self->mu);
            continue;
        }
        /* The table is in the current version before the memtable leaves
         * the list, so a reader always finds the data in one or the other. */
        pthread_mutex_lock(&self->mu);
        strata_memtable_unref(&self->immutables[0]);
        memmove(self->immutables, self->immutables + 1,
                (self->n_immutables - 1) * sizeof *self->immutables);
        memmove(self->immutable_last_seq, self->immutable_last_seq + 1,
                (self->n_immutables - 1) * sizeof *self->immutable_last_seq);
        self->n_immutables--;
        self->flushes++;
        pthread_cond_broadcast(&self->flush_cv);
        strata_wal_t *wal = self->wal;
        pthread_mutex_unlock(&self->mu);
        strata_memtable_unref(&mem);
        /* The WAL below the flushed seq is no longer needed for recovery. */
        if (wal && !self->opts.manual_wal_truncation &&
            strata_wal_delete_below(wal, last_seq + 1, NULL, &err) != 0)
            strata_log(STRATA_LOG_WARNING, "event=wal_truncation_failed error=\"%s\"", err.msg);
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* Links what replay staged into the active memtable and makes it readable.
 * Called by replay, or by open with write_mu held once replay is done. */
static void publish_replayed(strata_db_t *self)
{
    strata_memtable_publish(self->active);
    if (self->last_inserted_seq > atomic_load(&self->visible_seq))
        atomic_store(&self->visible_seq, self->last_inserted_seq);
}

/* Replay stages each entry and links a whole memtable at a time, sorted:
 * inserted one by one, random keys cost a cache-missing skiplist search
 * each, nine tenths of the open. A full memtable is published before it
 * switches, so it leaves the active slot whole and the flush that replay
 * may start sees every seq up to its last. Until open returns, replay is
 * the db's only writer and nothing else reads what write_mu guards, so it
 * takes no lock: one per entry was a tenth of the open. */
static int replay_entry(void *arg, const strata_entry_t *e)
{
    strata_db_t *self = arg;
    /* The owner decides what of the log is committed. */
    if (self->commit_mode == STRATA_COMMIT_EXTERNAL)
        return db_keep_pending(self, e);
    int rc = 0;
    if (strata_memtable_bytes(self->active) >= self->opts.memtable_bytes) {
        publish_replayed(self);
        rc = db_switch_memtable(self);
    }
    if (rc == 0)
        rc = strata_memtable_stage(self->active, e->seq, (strata_value_type_t)e->type, e->key,
                                   e->key_len, e->value, e->value_len);
    if (rc == 0)
        self->last_inserted_seq = e->seq;
    return rc;
}

/* The caller's log observers, behind the db's own. */
static void forward_written(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                            uint64_t last_seq)
{
    strata_db_t *self = arg;
    if (self->opts.wal_on_written)
        self->opts.wal_on_written(self->opts.wal_observer_arg, entries, len, first_seq, last_seq);
}

static void forward_durable(void *arg, uint64_t durable_seq)
{
    strata_db_t *self = arg;
    if (self->opts.wal_on_durable)
        self->opts.wal_on_durable(self->opts.wal_observer_arg, durable_seq);
}

/* ---- open / close ------------------------------------------------------ */

static void stop_threads(strata_db_t *self)
{
    pthread_mutex_lock(&self->mu);
    self->stopping = true;
    pthread_cond_broadcast(&self->flush_cv);
    pthread_cond_broadcast(&self->compact_cv);
    pthread_mutex_unlock(&self->mu);
    if (self->flush_running)
        pthread_join(self->flush_thread, NULL);
    if (self->compact_running)
        pthread_join(self->compact_thread, NULL);
    self->flush_running = false;
    self->compact_running = false;
}

static void db_free(strata_db_t *self)
{
    stop_threads(self);
    compaction_cursor_clear(&self->cursor);
    free(self->snapshots);
    strata_memtable_unref(&self->active);
    for (size_t i = 0; i < self->n_immutables; i++)
        strata_memtable_unref(&self->immutables[i]);
    free(self->immutables);
    free(self->immutable_last_seq);
    db_pending_free(self);
    vset_close(&self->vset);
    pthread_cond_destroy(&self->flush_cv);
    pthread_cond_destroy(&self->compact_cv);
    pthread_mutex_destroy(&self->write_mu);
    pthread_mutex_destroy(&self->vset_mu);
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
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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
    pthread_mutex_init(&self->write_mu, NULL);
    pthread_mutex_init(&self->vset_mu, NULL);
    pthread_cond_init(&self->flush_cv, NULL);
    pthread_cond_init(&self->compact_cv, NULL);
    compaction_options_init(&self->compaction_opts);
    if (opts->l0_compaction_trigger)
        self->compaction_opts.l0_trigger = opts->l0_compaction_trigger;
    if (opts->level1_bytes)
        self->compaction_opts.level1_bytes = opts->level1_bytes;
    if (opts->target_file_bytes)
        self->compaction_opts.target_file_bytes = opts->target_file_bytes;
    if (!self->opts.memtable_bytes)
        self->opts.memtable_bytes = DEFAULT_MEMTABLE_BYTES;
    if (!self->opts.max_uncommitted_bytes)
        self->opts.max_uncommitted_bytes = DEFAULT_MAX_UNCOMMITTED;
    if (!self->opts.max_immutable_memtables)
        self->opts.max_immutable_memtables = DEFAULT_MAX_IMMUTABLES;
    strata_table_options_init(&self->table_opts);
    self->table_opts.lz4 = opts->lz4;
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

    /* SSTables first: they say which seqs the WAL no longer has to replay. */
    rc = vset_open(self->dir, io, &self->table_opts, &self->vset, err);
    if (rc) {
        db_free(self);
        return rc;
    }
    if (opts->max_open_tables)
        vset_set_max_open_tables(self->vset, opts->max_open_tables);
    uint64_t flushed_seq = vset_flushed_seq(self->vset);
    atomic_store(&self->visible_seq, vset_last_seq(self->vset));
    self->commit_mode = opts->commit_mode;
    self->commit_seq = vset_last_seq(self->vset);
    self->last_inserted_seq = flushed_seq;
    /* Running before replay, so a long WAL can flush as it replays. */
    if (pthread_create(&self->flush_thread, NULL, flush_loop, self) != 0) {
        db_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "cannot start the flush thread");
    }
    self->flush_running = true;
    if (pthread_create(&self->compact_thread, NULL, compact_loop, self) != 0) {
        db_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "cannot start the compaction thread");
    }
    self->compact_running = true;

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
        .on_appended = db_on_appended,
        .on_written = forward_written,
        .on_durable = forward_durable,
        .observer_arg = self,
        .retain_bytes = opts->wal_retain_bytes,
        .retain_ms = opts->wal_retain_ms,
    };
    wo.first_seq = flushed_seq + 1; /* a checkpoint's WAL starts empty */
    strata_wal_t *wal = NULL;
    rc = strata_wal_open(&wo, flushed_seq + 1, replay_entry, self, &self->recovery, &wal, err);
    free(wal_dir);
    if (rc) {
        db_free(self);
        return rc;
    }
    pthread_mutex_lock(&self->write_mu);
    publish_replayed(self);
    pthread_mutex_unlock(&self->write_mu);
    pthread_mutex_lock(&self->mu);
    self->wal = wal;
    pthread_mutex_unlock(&self->mu);
    *db_p = self;
    return 0;
}

int strata_db_close(strata_db_t **db_p, strata_error_t *err)
{
    if (!db_p || !*db_p)
        return 0;
    strata_db_t *self = *db_p;
    *db_p = NULL;
    /* Background threads stop first: the flush may be truncating the WAL. */
    stop_threads(self);
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
    if (atomic_load(&self->failed)) {
        pthread_mutex_lock(&self->mu);
        int rc = strata_error_set(err, STRATA_EREADONLY,
                                  "database stopped accepting writes after: %s", self->failure.msg);
        pthread_mutex_unlock(&self->mu);
        return rc;
    }
    int rc = db_check_room(self, err);
    if (rc)
        return rc;
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

int strata_db_flush(strata_db_t *self, strata_error_t *err)
{
    pthread_mutex_lock(&self->write_mu);
    int rc = strata_memtable_count(self->active) ? db_switch_memtable(self) : 0;
    pthread_mutex_unlock(&self->write_mu);
    if (rc)
        return strata_error_set(err, rc, "switching the memtable: %s", strata_strerror(rc));
    pthread_mutex_lock(&self->mu);
    while (self->n_immutables > 0 && !atomic_load(&self->failed))
        pthread_cond_wait(&self->flush_cv, &self->mu);
    if (atomic_load(&self->failed))
        rc = strata_error_set(err, STRATA_EREADONLY, "flush failed: %s", self->failure.msg);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int strata_db_compact(strata_db_t *self, strata_error_t *err)
{
    int rc = strata_db_flush(self, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->mu);
    uint64_t round = self->compact_rounds;
    self->compact_forced = true;
    pthread_cond_broadcast(&self->compact_cv);
    while (self->compact_rounds == round && !atomic_load(&self->failed))
        pthread_cond_wait(&self->compact_cv, &self->mu);
    if (atomic_load(&self->failed))
        rc = strata_error_set(err, STRATA_EREADONLY, "compaction failed: %s", self->failure.msg);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

void strata_db_compaction_state(strata_db_t *self, uint64_t *generation,
                                uint64_t *smallest_snapshot_seq)
{
    pthread_mutex_lock(&self->mu);
    *smallest_snapshot_seq = smallest_snapshot(self);
    pthread_mutex_unlock(&self->mu);
    pthread_mutex_lock(&self->vset_mu);
    *generation = vset_generation(self->vset);
    pthread_mutex_unlock(&self->vset_mu);
}

static bool version_has(const version_t *v, int level, uint64_t number, uint64_t *size)
{
    for (size_t i = 0; i < v->n_files[level]; i++)
        if (v->files[level][i]->number == number) {
            *size = v->files[level][i]->size;
            return true;
        }
    return false;
}

static bool listed(const uint64_t *numbers, size_t n, uint64_t number)
{
    for (size_t i = 0; i < n; i++)
        if (numbers[i] == number)
            return true;
    return false;
}

/* Whether the compaction still fits the current version: its inputs are
 * live where it says, the L0 files it leaves behind are all newer than the
 * ones it took (else they would shadow what moved down), and its outputs
 * are disjoint, in order, and clear of every output-level file it did not
 * take. Returns 0 or STRATA_ESTALE with err naming the mismatch. */
static int compaction_fits(const version_t *v, const strata_compaction_result_t *r,
                           const strata_table_props_t *props, uint64_t *bytes_read,
                           strata_error_t *err)
{
    *bytes_read = 0;
    uint64_t newest_input = 0;
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < r->n_inputs[w]; i++) {
            uint64_t size = 0;
            if (!version_has(v, r->level + w, r->inputs[w][i], &size))
                return strata_error_set(err, STRATA_ESTALE,
                                        "install compaction: input table %" PRIu64
                                        " is no longer live at L%d",
                                        r->inputs[w][i], r->level + w);
            *bytes_read += size;
        }
    if (r->level == 0) {
        for (size_t i = 0; i < v->n_files[0]; i++)
            if (listed(r->inputs[0], r->n_inputs[0], v->files[0][i]->number) &&
                v->files[0][i]->max_seq > newest_input)
                newest_input = v->files[0][i]->max_seq;
        for (size_t i = 0; i < v->n_files[0]; i++) {
            const vfile_t *f = v->files[0][i];
            if (!listed(r->inputs[0], r->n_inputs[0], f->number) && f->min_seq <= newest_input)
                return strata_error_set(err, STRATA_ESTALE,
                                        "install compaction: L0 table %" PRIu64
                                        " (seqs from %" PRIu64 ") is left behind but not newer "
                                        "than the inputs (to %" PRIu64 ")",
                                        f->number, f->min_seq, newest_input);
        }
    }
    int out = r->level + 1;
    for (size_t o = 0; o < r->n_outputs; o++) {
        const strata_table_props_t *p = &props[o];
        if (o > 0 && key_compare(props[o - 1].largest_key, props[o - 1].largest_len,
                                 p->smallest_key, p->smallest_len) >= 0)
            return strata_error_set(err, STRATA_EINVAL,
                                    "install compaction: output %s overlaps or precedes the one "
                                    "before it",
                                    r->outputs[o]);
        for (size_t i = 0; i < v->n_files[out]; i++) {
            const vfile_t *f = v->files[out][i];
            if (listed(r->inputs[1], r->n_inputs[1], f->number))
                continue;
            if (key_compare(f->largest, f->largest_len, p->smallest_key, p->smallest_len) >= 0 &&
                key_compare(f->smallest, f->smallest_len, p->largest_key, p->largest_len) <= 0)
                return strata_error_set(err, STRATA_ESTALE,
                                        "install compaction: output %s overlaps L%d table %" PRIu64
                                        ", which it did not take as input",
                                        r->outputs[o], out, f->number);
        }
    }
    return 0;
}

int strata_db_install_compaction(strata_db_t *self, const strata_compaction_result_t *r,
                                 uint64_t *tables_installed, strata_error_t *err)
{
    strata_io_t *io = self->opts.io ? self->opts.io : strata_io_posix();
    if (tables_installed)
        *tables_installed = 0;
    if (r->level < 0 || r->level >= STRATA_LEVELS - 1 || r->n_inputs[0] == 0)
        return strata_error_set(err, STRATA_EINVAL,
                                "install compaction: level %d with %zu inputs (want L0..L%d and "
                                "at least one input)",
                                r->level, r->n_inputs[0], STRATA_LEVELS - 2);
    if (atomic_load(&self->failed))
        return strata_error_set(err, STRATA_EREADONLY, "install compaction: %s", self->failure.msg);
    /* Read back from disk rather than believed from the compactor: a table
     * that does not open is refused before anything changes. */
    strata_table_props_t *props = calloc(r->n_outputs ? r->n_outputs : 1, sizeof *props);
    uint64_t *numbers = calloc(r->n_outputs ? r->n_outputs : 1, sizeof *numbers);
    if (!props || !numbers) {
        free(props);
        free(numbers);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    int rc = 0;
    uint64_t bytes_written = 0;
    for (size_t o = 0; o < r->n_outputs && rc == 0; o++) {
        strata_table_t *t = NULL;
        rc = strata_table_open(&self->table_opts, r->outputs[o], &t, err);
        if (rc == 0) {
            if (strata_table_props_copy(&props[o], strata_table_props(t)) != 0)
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            strata_table_close(&t);
            bytes_written += props[o].file_size;
        }
    }
    size_t renamed = 0;
    edit_t edit;
    edit_init(&edit);
    uint64_t bytes_read = 0;
    pthread_mutex_lock(&self->vset_mu);
    version_t *v = vset_current(self->vset);
    if (rc == 0)
        rc = compaction_fits(v, r, props, &bytes_read, err);
    version_unref(&v);
    for (; rc == 0 && renamed < r->n_outputs; renamed++) {
        numbers[renamed] = vset_new_file_number(self->vset);
        char *path = vset_table_path(self->vset, numbers[renamed]);
        int sys = path ? io->rename(io, r->outputs[renamed], path) : -ENOMEM;
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "install compaction: rename %s to %s: %s",
                                  r->outputs[renamed], path ? path : "?", strerror(-sys));
        free(path);
        if (rc)
            break;
        vfile_t *f = vfile_new(numbers[renamed], &props[renamed]);
        if (!f || edit_add(&edit, r->level + 1, f) != 0) {
            vfile_unref(&f);
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        }
    }
    if (rc == 0 && renamed) {
        /* The renames are durable before the MANIFEST names the tables. */
        int sys = io->sync_dir(io, self->dir);
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "install compaction: fsync %s: %s", self->dir,
                                  strerror(-sys));
    }
    for (int w = 0; w < 2 && rc == 0; w++)
        for (size_t i = 0; i < r->n_inputs[w] && rc == 0; i++)
            if (edit_delete(&edit, r->level + w, r->inputs[w][i]) != 0)
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
    bool applied = false;
    if (rc == 0) {
        rc = vset_apply(self->vset, &edit, err);
        applied = rc == 0;
        /* A MANIFEST that cannot be written stops the database, as it
         * does for a flush. */
        if (rc)
            db_set_failure(self, err);
    }
    pthread_mutex_unlock(&self->vset_mu);
    edit_clear(&edit);
    if (!applied) {
        /* Renamed tables no version names: ours to remove. The rest stay
         * with the compactor, which cleans its own directory. */
        for (size_t o = 0; o < renamed; o++) {
            char *path = vset_table_path(self->vset, numbers[o]);
            if (path)
                io->unlink(io, path);
            free(path);
        }
    } else {
        pthread_mutex_lock(&self->mu);
        self->compactions++;
        self->compaction_read += bytes_read;
        self->compaction_written += bytes_written;
        self->compaction_cpu_ns += r->cpu_ns;
        pthread_mutex_unlock(&self->mu);
        if (tables_installed)
            *tables_installed = renamed;
    }
    for (size_t o = 0; o < r->n_outputs; o++)
        strata_table_props_clear(&props[o]);
    free(props);
    free(numbers);
    return rc;
}

int strata_db_checkpoint(strata_db_t *self, const char *dest, uint64_t *seq, strata_error_t *err)
{
    strata_io_t *io = self->opts.io ? self->opts.io : strata_io_posix();
    if (access(dest, F_OK) == 0)
        return strata_error_set(err, STRATA_EEXIST, "checkpoint %s: already exists", dest);
    int rc = strata_db_flush(self, err);
    if (rc)
        return rc;
    char *tmp = NULL, *wal = NULL, *parent = parent_dir(dest);
    if (asprintf(&tmp, "%s.tmp", dest) < 0 || asprintf(&wal, "%s.tmp/wal", dest) < 0 || !parent) {
        free(parent);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    /* The version and its flushed seq together are consistent at that
     * seq: every table holds only seqs at or below it. */
    pthread_mutex_lock(&self->vset_mu);
    version_t *v = vset_current(self->vset);
    uint64_t at = vset_flushed_seq(self->vset);
    pthread_mutex_unlock(&self->vset_mu);
    int sys = strata_io_mkdirs(io, wal);
    if (sys < 0)
        rc = strata_error_set(err, STRATA_EIO, "create %s: %s", wal, strerror(-sys));
    if (rc == 0)
        rc = vset_export(self->vset, v, at, tmp, err);
    version_unref(&v);
    if (rc == 0) {
        sys = io->sync_dir(io, wal);
        if (sys == 0)
            sys = io->rename(io, tmp, dest);
        if (sys == 0)
            sys = io->sync_dir(io, parent);
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "install checkpoint %s: %s", dest,
                                  strerror(-sys));
    }
    if (rc == 0 && seq)
        *seq = at;
    free(tmp);
    free(wal);
    free(parent);
    return rc;
}

int strata_db_truncate_wal(strata_db_t *self, uint64_t below_seq, uint32_t *deleted,
                           strata_error_t *err)
{
    if (deleted)
        *deleted = 0;
    pthread_mutex_lock(&self->vset_mu);
    uint64_t flushed = vset_flushed_seq(self->vset);
    pthread_mutex_unlock(&self->vset_mu);
    if (below_seq > flushed + 1)
        below_seq = flushed + 1;
    pthread_mutex_lock(&self->mu);
    strata_wal_t *wal = self->wal;
    pthread_mutex_unlock(&self->mu);
    if (!wal)
        return strata_error_set(err, STRATA_ECLOSED, "truncate wal: the database is closing");
    return strata_wal_delete_below(wal, below_seq, deleted, err);
}

uint64_t strata_db_wal_bytes_from(strata_db_t *self, uint64_t seq)
{
    pthread_mutex_lock(&self->mu);
    strata_wal_t *wal = self->wal;
    pthread_mutex_unlock(&self->mu);
    return wal ? strata_wal_bytes_from(wal, seq) : 0;
}

uint64_t strata_db_snapshot_acquire(strata_db_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t seq = atomic_load(&self->visible_seq);
    if (self->n_snapshots == self->cap_snapshots) {
        size_t cap = self->cap_snapshots ? self->cap_snapshots * 2 : 8;
        uint64_t *grown = realloc(self->snapshots, cap * sizeof *grown);
        if (grown) {
            self->snapshots = grown;
            self->cap_snapshots = cap;
        }
    }
    /* Out of memory leaves the snapshot unregistered: reads at it still
     * work until a compaction drops what it needed. */
    if (self->n_snapshots < self->cap_snapshots)
        self->snapshots[self->n_snapshots++] = seq;
    pthread_mutex_unlock(&self->mu);
    return seq;
}

void strata_db_snapshot_release(strata_db_t *self, uint64_t seq)
{
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < self->n_snapshots; i++)
        if (self->snapshots[i] == seq) {
            self->snapshots[i] = self->snapshots[--self->n_snapshots];
            break;
        }
    pthread_mutex_unlock(&self->mu);
}

int strata_db_sync(strata_db_t *self, strata_error_t *err)
{
    return strata_wal_sync(self->wal, err);
}

int strata_db_sync_written(strata_db_t *self, uint64_t *durable_seq, strata_error_t *err)
{
    return strata_wal_sync_written(self->wal, durable_seq, err);
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
    /* Taken under the same lock as the memtables: a flush installs its
     * table before it drops the memtable, so nothing falls between. */
    version_t *version = vset_current(self->vset);
    pthread_mutex_unlock(&self->mu);

    int rc = STRATA_ENOTFOUND;
    bool decided = false;
    for (size_t i = 0; i < n; i++) {
        strata_value_type_t type;
        const void *found;
        size_t found_len;
        if (!strata_memtable_get(refs[i], key, key_len, snapshot, &type, &found, &found_len, NULL))
            continue;
        if (type == STRATA_VALUE_PUT && !value) { /* an existence check */
            rc = 0;
        } else if (type == STRATA_VALUE_PUT) {
            void *copy = dup_bytes(found, found_len);
            if (!copy) {
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
                break;
            }
            *value = copy;
            *value_len = found_len;
            rc = 0;
        }
        decided = true;
        break; /* the newest entry decides, a delete marker included */
    }
    if (!decided) {
        strata_value_type_t type;
        void *found = NULL;
        size_t found_len = 0;
        int got = version_get(version, key, key_len, snapshot, &type, &found, &found_len, err);
        if (got < 0) {
            rc = got;
        } else if (got == 1 && type == STRATA_VALUE_PUT) {
            if (value) {
                *value = found;
                *value_len = found_len;
                found = NULL;
            }
            rc = 0;
        }
        free(found);
    }
    version_unref(&version);
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

int strata_db_write_status(strata_db_t *self, strata_error_t *err)
{
    int rc = atomic_load(&self->failed);
    if (rc) {
        pthread_mutex_lock(&self->mu);
        if (err)
            *err = self->failure;
        pthread_mutex_unlock(&self->mu);
        return rc;
    }
    return strata_wal_failure(self->wal, err);
}

void strata_db_stats(strata_db_t *self, strata_db_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    stats->recovery = self->recovery;
    stats->last_seq = strata_db_last_seq(self);
    stats->durable_seq = strata_wal_durable_seq(self->wal);
    stats->appended_seq = strata_wal_last_seq(self->wal);
    pthread_mutex_lock(&self->write_mu);
    stats->uncommitted_bytes = self->pending_len - self->pending_off;
    pthread_mutex_unlock(&self->write_mu);
    pthread_mutex_lock(&self->mu);
    stats->active_memtable_bytes = strata_memtable_bytes(self->active);
    stats->immutable_memtables = (uint32_t)self->n_immutables;
    stats->flushes = self->flushes;
    stats->stalls = self->stalls;
    stats->stall_ns = self->stall_ns;
    stats->flush_bytes = self->flush_bytes;
    stats->compactions = self->compactions;
    stats->compaction_bytes_read = self->compaction_read;
    stats->compaction_bytes_written = self->compaction_written;
    stats->compaction_cpu_ns = self->compaction_cpu_ns;
    pthread_mutex_unlock(&self->mu);
    pthread_mutex_lock(&self->write_mu);
    stats->user_bytes = self->user_bytes;
    pthread_mutex_unlock(&self->write_mu);
    stats->flushed_seq = vset_flushed_seq(self->vset);
    version_t *v = vset_current(self->vset);
    for (int level = 0; level < STRATA_LEVELS; level++) {
        stats->level_files[level] = (uint32_t)v->n_files[level];
        stats->level_bytes[level] = version_level_bytes(v, level);
    }
    stats->compaction_score = compaction_score(v, &self->compaction_opts);
    stats->open_tables = vset_open_tables(self->vset);
    version_unref(&v);
    strata_wal_stats(self->wal, &stats->wal);
}
