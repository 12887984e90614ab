/* Sorted string tables: immutable files of (key, seq, type, value) in
 * memtable order (key ascending, then seq descending), written once by a
 * builder and read through mmap. Format: lib/engine/sstable.md. The flush and
 * compaction code writes them; version.c reads them through a table cache. */
#ifndef STRATA_SSTABLE_H
#define STRATA_SSTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"
#include "strata/memtable.h"

typedef struct {
    size_t block_bytes;     /* target uncompressed data block size; default 4096 */
    int restart_interval;   /* keys between prefix-compression restarts; default 16 */
    int bloom_bits_per_key; /* default 10 (about 1% false positives); 0 = no filter */
    bool lz4;               /* compress data blocks with LZ4 when it saves >= 12.5% */
    strata_io_t *io;        /* NULL: POSIX (the reader mmaps the file directly) */
} strata_table_options_t;

void strata_table_options_init(strata_table_options_t *opts);

/* What a finished table holds; the keys are malloc'd copies owned by the
 * struct (strata_table_props_clear frees them). */
typedef struct {
    uint64_t file_size;
    uint64_t entries;
    uint64_t deletes;
    uint64_t min_seq;
    uint64_t max_seq;
    uint64_t data_blocks;
    uint64_t raw_key_bytes;
    uint64_t raw_value_bytes;
    uint8_t *smallest_key; /* user key of the first entry */
    size_t smallest_len;
    uint8_t *largest_key; /* user key of the last entry */
    size_t largest_len;
} strata_table_props_t;

void strata_table_props_clear(strata_table_props_t *props);
/* Deep copy; returns 0 or STRATA_ENOMEM. */
int strata_table_props_copy(strata_table_props_t *dst, const strata_table_props_t *src);

/* ---- writing ---- */

typedef struct strata_table_builder strata_table_builder_t;

/* Starts a table that will appear at path only when finished: it is
 * written to "<path>.tmp", fsync'd, renamed, and the directory fsync'd. */
int strata_table_builder_new(const strata_table_options_t *opts, const char *path,
                             strata_table_builder_t **builder_p, strata_error_t *err);
/* Entries must come in strictly increasing memtable order; a key out of
 * order is STRATA_EINVAL. */
int strata_table_builder_add(strata_table_builder_t *self, const void *key, size_t key_len,
                             uint64_t seq, strata_value_type_t type, const void *value,
                             size_t value_len, strata_error_t *err);
/* Bytes written so far (an estimate of the final size, for splitting
 * compaction outputs). */
uint64_t strata_table_builder_size(const strata_table_builder_t *self);
uint64_t strata_table_builder_entries(const strata_table_builder_t *self);
/* Writes index, filter, properties and footer, makes the file durable and
 * visible, frees the builder and nulls *builder_p. props may be NULL. */
int strata_table_builder_finish(strata_table_builder_t **builder_p, strata_table_props_t *props,
                                strata_error_t *err);
/* Gives up: removes the temp file, frees, nulls *builder_p. */
void strata_table_builder_abandon(strata_table_builder_t **builder_p);

/* ---- reading ---- */

typedef struct strata_table strata_table_t;
typedef struct strata_table_iter strata_table_iter_t;

/* Maps path read-only after checking its size, footer magic, version and
 * CRC, and the index and properties blocks: a short or damaged file is an
 * error naming file and offset, never a SIGBUS later. */
int strata_table_open(const strata_table_options_t *opts, const char *path,
                      strata_table_t **table_p, strata_error_t *err);
void strata_table_close(strata_table_t **table_p);
const strata_table_props_t *strata_table_props(const strata_table_t *self);

/* False only when the bloom filter proves key is absent. */
bool strata_table_may_contain(const strata_table_t *self, const void *key, size_t key_len);

/* Newest entry of key with seq <= snapshot_seq: returns 1 and fills the
 * outputs (value is a malloc'd copy the caller frees, also for a delete
 * marker where it is an empty allocation; any output may be NULL), 0 when
 * the table has none, or a negative error (a block that fails its
 * checksum is STRATA_ECORRUPT naming file and offset). */
int strata_table_get(strata_table_t *self, const void *key, size_t key_len, uint64_t snapshot_seq,
                     strata_value_type_t *type, void **value, size_t *value_len, uint64_t *seq,
                     strata_error_t *err);

/* Iterators walk every entry in memtable order; the table must outlive
 * them. Key and value pointers stay valid until the iterator moves. A
 * damaged block makes the iterator invalid with strata_table_iter_status
 * returning the error. */
strata_table_iter_t *strata_table_iter_new(strata_table_t *table);
void strata_table_iter_destroy(strata_table_iter_t **self_p);
void strata_table_iter_seek_first(strata_table_iter_t *it);
void strata_table_iter_seek_last(strata_table_iter_t *it);
/* First entry >= (key, seq) in memtable order. */
void strata_table_iter_seek(strata_table_iter_t *it, const void *key, size_t key_len, uint64_t seq);
bool strata_table_iter_valid(const strata_table_iter_t *it);
void strata_table_iter_next(strata_table_iter_t *it);
void strata_table_iter_prev(strata_table_iter_t *it);
const void *strata_table_iter_key(const strata_table_iter_t *it, size_t *key_len);
const void *strata_table_iter_value(const strata_table_iter_t *it, size_t *value_len);
uint64_t strata_table_iter_seq(const strata_table_iter_t *it);
strata_value_type_t strata_table_iter_type(const strata_table_iter_t *it);
int strata_table_iter_status(const strata_table_iter_t *it, strata_error_t *err);

/* Checks every block's checksum; for `stratactl verify`. */
int strata_table_verify(strata_table_t *self, strata_error_t *err);

#endif
