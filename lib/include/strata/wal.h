/* The write-ahead log: segmented files of self-validating entries, with
 * group commit across threads and per-call durability. Spec: lib/wal.md.
 * db.c writes through it; the writer, replicator and distributor read it. */
#ifndef STRATA_WAL_H
#define STRATA_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"

typedef enum {
    STRATA_SYNC = 0,  /* acknowledge after fdatasync of the group commit */
    STRATA_ASYNC = 1, /* acknowledge after write(); a timer fdatasyncs */
} strata_durability_t;

/* One operation for append: the caller's bytes, copied during append. */
typedef struct {
    uint8_t type; /* strata_value_type_t */
    const void *topic;
    uint16_t topic_len;
    const void *key;
    uint32_t key_len;
    const void *value;
    uint32_t value_len;
} strata_wal_op_t;

/* A decoded entry; its pointers are valid only during the callback. */
typedef struct {
    uint64_t seq;
    uint64_t term;
    uint64_t timestamp_ns;
    uint8_t type;
    uint8_t flags;
    const uint8_t *topic;
    uint16_t topic_len;
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *value;
    uint32_t value_len;
} strata_wal_entry_t;

/* Called once per appended group, in seq order, by whichever thread leads
 * the group commit, after the group is written (and synced when any member
 * asked for sync) and before its appenders return: so a memtable insert
 * here is single-threaded and ordered. first_seq is the seq of ops[0]. */
typedef void (*strata_wal_apply_fn)(void *arg, uint64_t first_seq, uint64_t term,
                                    const strata_wal_op_t *ops, size_t n_ops);

/* Replay callback; a non-zero return stops the open with that error code. */
typedef int (*strata_wal_replay_fn)(void *arg, const strata_wal_entry_t *entry);

typedef struct {
    const char *dir;                 /* created if missing */
    uint64_t segment_bytes;          /* roll to a new segment past this; default 64 MiB */
    uint32_t max_entry_bytes;        /* cap on one entry's payload; default 64 MiB */
    uint32_t async_sync_interval_ms; /* background fdatasync period; default 10 */
    bool repair;               /* at mid-log corruption, keep the good prefix instead of failing */
    uint64_t term;             /* written into new entries */
    uint64_t first_seq;        /* first seq when the log is empty (a checkpoint); default 1 */
    strata_io_t *io;           /* NULL: POSIX */
    strata_wal_apply_fn apply; /* may be NULL */
    void *apply_arg;
} strata_wal_options_t;

/* What recovery found and did, for the caller to log. */
typedef struct {
    uint64_t first_seq;          /* first seq in the log, 0 when empty */
    uint64_t last_seq;           /* last good seq, 0 when empty */
    uint64_t entries_replayed;   /* entries handed to the replay callback */
    uint64_t bytes_scanned;      /* segment bytes read and checked */
    uint32_t segments;           /* segment files found */
    uint64_t tail_bytes_dropped; /* bytes truncated off the last segment */
    char tail_kind[32];          /* "" when clean, else why the tail was dropped */
    char tail_file[256];
    uint64_t tail_offset;            /* where the truncation happened */
    uint64_t repaired_bytes_dropped; /* with repair: what the corruption cost */
} strata_wal_recovery_t;

typedef struct strata_wal strata_wal_t;

/* Opens (creating if needed) the log in opts->dir. Scans every segment,
 * truncates a torn tail (reported in *report), and hands each entry with
 * seq >= replay_from to replay (which may be NULL). A corrupt entry in the
 * middle fails the open with STRATA_ECORRUPT naming file, offset and kind,
 * unless opts->repair. New appends go to a fresh segment. */
int strata_wal_open(const strata_wal_options_t *opts, uint64_t replay_from,
                    strata_wal_replay_fn replay, void *replay_arg, strata_wal_recovery_t *report,
                    strata_wal_t **wal_p, strata_error_t *err);

/* Syncs what is written, trims the active segment's preallocation, frees.
 * Returns the first error met; *wal_p is freed and nulled either way. */
int strata_wal_close(strata_wal_t **wal_p, strata_error_t *err);

/* Thread-safe. Appends ops as one atomic group (all or none after a crash),
 * with consecutive seqs from *first_seq. Returns once the group is durable
 * per durability. After any failed write or fdatasync every call returns
 * STRATA_EREADONLY with the first failure's detail. */
int strata_wal_append(strata_wal_t *self, const strata_wal_op_t *ops, size_t n_ops,
                      strata_durability_t durability, uint64_t *first_seq, strata_error_t *err);

/* Makes everything appended so far durable. Thread-safe. */
int strata_wal_sync(strata_wal_t *self, strata_error_t *err);

/* Makes every append that has already returned durable without joining the
 * writer queue: appends go on while it syncs and ride the next call, which
 * is how a server turns async appends into group-committed sync replies.
 * *durable_seq (may be NULL) gets the seq now covered. A failed fdatasync
 * makes the WAL read-only, as for appends. Thread-safe. */
int strata_wal_sync_written(strata_wal_t *self, uint64_t *durable_seq, strata_error_t *err);

uint64_t strata_wal_last_seq(strata_wal_t *self);    /* last appended */
uint64_t strata_wal_durable_seq(strata_wal_t *self); /* last covered by fdatasync */
void strata_wal_set_term(strata_wal_t *self, uint64_t term);

/* Deletes whole segments whose last seq is < checkpoint_seq, oldest first,
 * never the active segment. *deleted (may be NULL) gets the count. */
int strata_wal_delete_below(strata_wal_t *self, uint64_t checkpoint_seq, uint32_t *deleted,
                            strata_error_t *err);

/* Counters for stats and benches. */
typedef struct {
    uint64_t appends;  /* append calls */
    uint64_t groups;   /* group commits (writes to the file) */
    uint64_t syncs;    /* fdatasync calls that succeeded */
    uint64_t bytes;    /* entry bytes written */
    uint32_t segments; /* live segment files */
} strata_wal_stats_t;
void strata_wal_stats(strata_wal_t *self, strata_wal_stats_t *stats);

#endif
