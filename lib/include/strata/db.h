/* The embedded engine: open a directory, put/get/delete/write batches, close.
 * Runs in-process with no services; the writer service wraps the same API.
 * Writes go to the WAL (group commit) and then to the active memtable; reads
 * see the active memtable, then the immutable ones, newest first. */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"
#include "strata/wal.h"

typedef struct strata_db strata_db_t;
typedef struct strata_batch strata_batch_t;

typedef struct {
    const char *dir;                 /* created if missing */
    strata_durability_t durability;  /* default for writes; STRATA_SYNC */
    size_t memtable_bytes;           /* switch to immutable past this; default 128 MiB */
    uint32_t async_sync_interval_ms; /* default 10 */
    uint64_t wal_segment_bytes;      /* default 64 MiB */
    bool repair_wal;                 /* see strata_wal_options_t.repair */
    strata_io_t *io;                 /* NULL: POSIX */
} strata_db_options_t;

/* Fills opts with the defaults above; dir stays for the caller to set. */
void strata_db_options_init(strata_db_options_t *opts);

/* Per-write choice; NULL means the db's default durability. */
typedef struct {
    strata_durability_t durability;
} strata_write_options_t;

/* Per-read choice; NULL or snapshot_seq 0 means "latest". */
typedef struct {
    uint64_t snapshot_seq;
} strata_read_options_t;

int strata_db_open(const strata_db_options_t *opts, strata_db_t **db_p, strata_error_t *err);
/* Closes the WAL cleanly and frees; *db_p is nulled either way. */
int strata_db_close(strata_db_t **db_p, strata_error_t *err);

int strata_db_put(strata_db_t *self, const strata_write_options_t *wo, const void *key,
                  size_t key_len, const void *value, size_t value_len, uint64_t *seq,
                  strata_error_t *err);
int strata_db_delete(strata_db_t *self, const strata_write_options_t *wo, const void *key,
                     size_t key_len, uint64_t *seq, strata_error_t *err);

/* On success *value is a malloc'd copy the caller frees. STRATA_ENOTFOUND
 * when the key is absent or deleted as of the read's snapshot. */
int strata_db_get(strata_db_t *self, const strata_read_options_t *ro, const void *key,
                  size_t key_len, void **value, size_t *value_len, strata_error_t *err);

/* A batch is applied atomically: all of it survives a crash or none. */
strata_batch_t *strata_batch_new(void);
void strata_batch_destroy(strata_batch_t **self_p);
int strata_batch_put(strata_batch_t *self, const void *key, size_t key_len, const void *value,
                     size_t value_len);
int strata_batch_delete(strata_batch_t *self, const void *key, size_t key_len);
size_t strata_batch_count(const strata_batch_t *self);
void strata_batch_clear(strata_batch_t *self);
/* *first_seq (may be NULL) gets the seq of the batch's first operation. */
int strata_db_write(strata_db_t *self, const strata_write_options_t *wo, strata_batch_t *batch,
                    uint64_t *first_seq, strata_error_t *err);

/* Last seq visible to reads; pass it as snapshot_seq to pin a read. */
uint64_t strata_db_last_seq(strata_db_t *self);
/* Makes every acknowledged async write durable. */
int strata_db_sync(strata_db_t *self, strata_error_t *err);

typedef struct {
    strata_wal_recovery_t recovery; /* what the last open found */
    uint64_t last_seq;
    uint64_t durable_seq;
    size_t active_memtable_bytes;
    uint32_t immutable_memtables;
    strata_wal_stats_t wal;
} strata_db_stats_t;
void strata_db_stats(strata_db_t *self, strata_db_stats_t *stats);

#endif
