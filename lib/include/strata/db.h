/* The embedded engine: open a directory, put/get/delete/write batches, close.
 * Runs in-process with no services; the writer service wraps the same API.
 * Writes go to the WAL (group commit) and then to the active memtable; a
 * full memtable becomes immutable and a background thread flushes it to an
 * L0 SSTable. Reads see the active memtable, the immutable ones newest
 * first, then the SSTables of the current version. */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"
#include "strata/wal.h"

typedef struct strata_db strata_db_t;

/* Who decides what is committed (lib/log/wal.md, "Append, commit, apply").
 * LOCAL: the db itself, on a single node: a group of async writes commits
 * as it is written, a group with a sync write once it is durable, so a
 * write is readable exactly when its append returns. EXTERNAL: the owner
 * (a consensus core) calls strata_db_commit; appended entries stay
 * invisible to reads and to on_committed until then. */
typedef enum {
    STRATA_COMMIT_LOCAL = 0,
    STRATA_COMMIT_EXTERNAL = 1,
} strata_commit_mode_t;

/* Committed entries as they are applied: their exact bytes, in seq order,
 * one call at a time, each entry once. Entries recovery applies at open are
 * not reported. Must be quick and must not write to the db. */
typedef void (*strata_db_committed_fn)(void *arg, const uint8_t *entries, size_t len,
                                       uint64_t first_seq, uint64_t last_seq);
typedef struct strata_batch strata_batch_t;

typedef struct {
    const char *dir;                  /* created if missing */
    strata_durability_t durability;   /* default for writes; STRATA_SYNC */
    size_t memtable_bytes;            /* switch to immutable past this; default 128 MiB */
    uint32_t async_sync_interval_ms;  /* default 10 */
    uint64_t wal_segment_bytes;       /* default 64 MiB */
    bool repair_wal;                  /* see strata_wal_options_t.repair */
    strata_io_t *io;                  /* NULL: POSIX */
    uint32_t max_immutable_memtables; /* writes stall while this many await flush; default 4 */
    bool lz4;                         /* LZ4-compress SSTable blocks */
    uint32_t l0_compaction_trigger;   /* default 4 files */
    uint64_t level1_bytes;            /* L1 size limit, 10x per level below; default 64 MiB */
    uint64_t target_file_bytes;       /* compaction output size; default 8 MiB */
    bool disable_auto_compaction;     /* only strata_db_compact compacts */
    uint32_t max_open_tables;         /* table cache bound; default 1000 */
    /* Passed to the WAL: see strata_wal_options_t. */
    strata_wal_written_fn wal_on_written;
    strata_wal_durable_fn wal_on_durable;
    strata_db_committed_fn on_committed; /* called with wal_observer_arg */
    void *wal_observer_arg;
    strata_commit_mode_t commit_mode;
    /* EXTERNAL: appends are refused with STRATA_EBUSY while the entries
     * appended but not yet committed hold this many bytes; default 256 MiB. */
    size_t max_uncommitted_bytes;
    uint64_t wal_retain_bytes;
    uint64_t wal_retain_ms;
    /* Leave the WAL below the flushed seq in place after a flush; only
     * strata_db_truncate_wal removes it (a node's snapshotter decides when,
     * after a snapshot covers it). */
    bool manual_wal_truncation;
} strata_db_options_t;

/* Fills opts with the defaults above; dir stays for the caller to set. */
void strata_db_options_init(strata_db_options_t *opts);

/* Per-write choice; NULL means the db's default durability. */
typedef struct {
    strata_durability_t durability;
} strata_write_options_t;

/* Per-read choice; NULL or snapshot_seq 0 means "latest". Iterators also
 * honour the bounds: keys in [lower_bound, upper_bound), NULL for open. */
typedef struct {
    uint64_t snapshot_seq;
    const void *lower_bound;
    size_t lower_len;
    const void *upper_bound;
    size_t upper_len;
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
/* A put that carries its topic into the WAL entry (for subscribers); the
 * engine itself ignores topics. */
int strata_batch_put_topic(strata_batch_t *self, const char *topic, const void *key, size_t key_len,
                           const void *value, size_t value_len);
size_t strata_batch_count(const strata_batch_t *self);
void strata_batch_clear(strata_batch_t *self);
/* Drops every op after the first count (a caller undoing a partial add). */
void strata_batch_truncate(strata_batch_t *self, size_t count);
/* *first_seq (may be NULL) gets the seq of the batch's first operation. */
int strata_db_write(strata_db_t *self, const strata_write_options_t *wo, strata_batch_t *batch,
                    uint64_t *first_seq, strata_error_t *err);

/* Iterators over user keys in order, newest visible value of each, deletes
 * hidden, as of the snapshot (or the moment of creation). They hold the
 * memtables and tables they read, so writes, flushes and compactions go on
 * underneath. Key and value pointers stay valid until the iterator moves. */
typedef struct strata_db_iter strata_db_iter_t;
strata_db_iter_t *strata_db_iter_new(strata_db_t *self, const strata_read_options_t *ro);
void strata_db_iter_destroy(strata_db_iter_t **it_p);
void strata_db_iter_seek_first(strata_db_iter_t *it);
void strata_db_iter_seek_last(strata_db_iter_t *it);
/* First key >= key. */
void strata_db_iter_seek(strata_db_iter_t *it, const void *key, size_t key_len);
/* Last key <= key. */
void strata_db_iter_seek_for_prev(strata_db_iter_t *it, const void *key, size_t key_len);
bool strata_db_iter_valid(const strata_db_iter_t *it);
void strata_db_iter_next(strata_db_iter_t *it);
void strata_db_iter_prev(strata_db_iter_t *it);
const void *strata_db_iter_key(const strata_db_iter_t *it, size_t *key_len);
const void *strata_db_iter_value(const strata_db_iter_t *it, size_t *value_len);
/* 0, or the error that stopped the iterator (a damaged table block). */
int strata_db_iter_status(const strata_db_iter_t *it, strata_error_t *err);

/* Last seq visible to reads; pass it as snapshot_seq to pin a read. */
uint64_t strata_db_last_seq(strata_db_t *self);
/* Turns the active memtable into an L0 table now and waits until every
 * immutable memtable is flushed. */
int strata_db_flush(strata_db_t *self, strata_error_t *err);

/* Compacts L0 into L1 and then every level over its limit, and waits. */
int strata_db_compact(strata_db_t *self, strata_error_t *err);

/* Writes a checkpoint of the database into dest (which must not exist): a
 * directory that opens as a database of its own, consistent at one seq
 * (returned in *seq, may be NULL). It flushes the memtable first, so the
 * checkpoint is hard links to the live tables plus a MANIFEST, and its WAL
 * starts empty after that seq. Built under "<dest>.tmp" and renamed. */
int strata_db_checkpoint(strata_db_t *self, const char *dest, uint64_t *seq, strata_error_t *err);

/* Deletes WAL segments wholly below min(below_seq, flushed seq + 1), so
 * never one that recovery still needs, and none that the retention options
 * keep for subscribers. *deleted (may be NULL) gets the count. */
int strata_db_truncate_wal(strata_db_t *self, uint64_t below_seq, uint32_t *deleted,
                           strata_error_t *err);
/* strata_wal_bytes_from on the db's log (0 while it is closed). */
uint64_t strata_db_wal_bytes_from(strata_db_t *self, uint64_t seq);

/* ---- compaction in another process (the node's strata-compactor) ----
 * The compactor reads the version from the MANIFEST, merges tables into
 * files of its own, and offers the result here; the db installs it as one
 * version edit or refuses it, changing nothing. */

/* generation: bumped by every version change (flush, compaction), so a
 * compactor knows when to look again; smallest_snapshot_seq: the oldest
 * seq any reader may still ask for (a compaction may drop an entry only
 * when a newer one of its key is at or below it). */
void strata_db_compaction_state(strata_db_t *self, uint64_t *generation,
                                uint64_t *smallest_snapshot_seq);

typedef struct {
    int level;                 /* inputs from level and level + 1; outputs to level + 1 */
    const uint64_t *inputs[2]; /* table numbers at level and at level + 1 */
    size_t n_inputs[2];
    const char *const *outputs; /* finished tables, on the db's file system */
    size_t n_outputs;
    uint64_t cpu_ns; /* the compactor's, for stats */
} strata_compaction_result_t;

/* Checks that the inputs are still live at their levels and that the
 * outputs (each opened and its footer checked) are disjoint, in key order
 * and clear of the output level's other tables; renames the outputs into
 * the database under new numbers, fsyncs the directory and logs the edit.
 * STRATA_ESTALE: the version moved on, nothing changed, the outputs stay
 * where they were for the caller to remove. A failed MANIFEST write stops
 * the database (STRATA_EREADONLY afterwards). */
int strata_db_install_compaction(strata_db_t *self, const strata_compaction_result_t *result,
                                 uint64_t *tables_installed, strata_error_t *err);

/* A snapshot pins a seq: compaction keeps every version a read at that
 * seq needs until it is released. Returns the seq to read at. */
uint64_t strata_db_snapshot_acquire(strata_db_t *self);
void strata_db_snapshot_release(strata_db_t *self, uint64_t seq);

/* ---- a replicated log (STRATA_COMMIT_EXTERNAL only) ---- */

/* Makes every entry up to seq committed: applied to the memtable in seq
 * order, readable, and handed to on_committed. A seq past the last
 * appended entry commits up to that entry only (entries appended later
 * wait for the next call); a seq at or below the current commit changes
 * nothing. STRATA_EINVAL in LOCAL. */
int strata_db_commit(strata_db_t *self, uint64_t seq, strata_error_t *err);
/* The commit seq as the owner last set it (LOCAL: the last applied seq). */
uint64_t strata_db_commit_seq(strata_db_t *self);
/* The last seq in the log, committed or not, and the last fdatasync'd. */
uint64_t strata_db_appended_seq(strata_db_t *self);
uint64_t strata_db_durable_seq(strata_db_t *self);

/* strata_wal_append_entries on the db's log: a follower's entries, kept
 * invisible until committed. STRATA_EBUSY when the uncommitted entries
 * fill max_uncommitted_bytes. */
int strata_db_append_entries(strata_db_t *self, const uint8_t *entries, size_t len,
                             uint64_t prev_seq, uint64_t prev_term, strata_durability_t durability,
                             size_t *appended, strata_wal_hint_t *hint, strata_error_t *err);

/* Cuts every entry after seq from the log (strata_wal_truncate_after) and
 * from the pending queue. Refused with STRATA_EINVAL when seq is below the
 * commit seq: committed entries are never cut. The owner calls it from the
 * thread that also commits and appends, so the commit seq cannot move past
 * seq while the cut runs. */
int strata_db_truncate_after(strata_db_t *self, uint64_t seq, strata_wal_cut_t *cut,
                             strata_error_t *err);

/* The term of the log entry at seq (strata_wal_term_at). */
int strata_db_term_at(strata_db_t *self, uint64_t seq, uint64_t *term);
/* The log's first seq and its runs of terms (strata_wal_terms). */
int strata_db_log_terms(strata_db_t *self, uint64_t *first_seq, uint64_t **run_first_seq,
                        uint64_t **run_term, size_t *n_runs, strata_error_t *err);
/* The term written into entries appended from now on (a leader's). */
void strata_db_set_term(strata_db_t *self, uint64_t term);

/* Makes every acknowledged async write durable. */
int strata_db_sync(strata_db_t *self, strata_error_t *err);
/* The same, outside the WAL's writer queue (strata_wal_sync_written):
 * writes go on while it syncs. *durable_seq (may be NULL) gets the seq it
 * covers. */
int strata_db_sync_written(strata_db_t *self, uint64_t *durable_seq, strata_error_t *err);

typedef struct {
    strata_wal_recovery_t recovery; /* what the last open found */
    uint64_t last_seq;              /* applied, readable */
    uint64_t durable_seq;
    uint64_t appended_seq;      /* last in the log */
    uint64_t uncommitted_bytes; /* appended, waiting for commit */
    size_t active_memtable_bytes;
    uint32_t immutable_memtables;
    strata_wal_stats_t wal;
    uint64_t flushed_seq; /* every seq <= this is in SSTables */
    uint64_t flushes;     /* memtables written to L0 since open */
    uint64_t stalls;      /* times a write waited for a flush */
    uint64_t stall_ns;    /* total time writes waited */
    uint32_t level_files[7];
    uint64_t level_bytes[7];
    uint64_t user_bytes;  /* key + value bytes written since open */
    uint64_t flush_bytes; /* table bytes written by flushes */
    uint64_t compactions;
    uint64_t compaction_bytes_read;
    uint64_t compaction_bytes_written;
    uint64_t compaction_cpu_ns; /* CPU time of the compaction thread */
    double compaction_score;    /* >= 1: compaction is due */
    uint64_t open_tables;       /* tables the cache holds open */
} strata_db_stats_t;
void strata_db_stats(strata_db_t *self, strata_db_stats_t *stats);

/* 0 while writes are accepted. After a failure that stops them (a WAL
 * write or fdatasync, a flush, a MANIFEST write: never retried as success),
 * that error with its message; it lasts until the database is reopened. */
int strata_db_write_status(strata_db_t *self, strata_error_t *err);

#endif
