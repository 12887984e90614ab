/* The write-ahead log: segmented files of self-validating entries, with
 * group commit across threads and per-call durability. Spec: lib/log/wal.md.
 * db.c writes through it; the writer, replicator and distributor read it. */
#ifndef STRATA_WAL_H
#define STRATA_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/entry.h"
#include "strata/err.h"
#include "strata/io.h"

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

/* Called once per appended group, in seq order, one group at a time, by
 * whichever thread leads the group commit: after the group is written, and
 * after its fdatasync when synced is true (some member asked for sync),
 * before its appenders return. entries are the group's exact bytes. The
 * log itself applies nothing: its owner decides here what is committed
 * (lib/log/wal.md, "Append, commit, apply"). */
typedef void (*strata_wal_appended_fn)(void *arg, const uint8_t *entries, size_t len,
                                       uint64_t first_seq, uint64_t last_seq, bool synced);

/* Observers for the log's readers (the writer feeds its shm ring from
 * them). written: the exact entry bytes of one group, just written (not
 * yet synced), called by the group's leader in seq order, one group at a
 * time, before the group's appenders return. durable: durable_seq moved
 * forward to seq; may be called from the leader, a roll, the sync timer
 * or sync_written, never with a smaller seq than an earlier call, and
 * never for a seq whose written call has not returned. Entries found by
 * recovery at open are not reported. Both must be quick, and must not
 * append, sync, or wait for a lock that is held across those calls. */
typedef void (*strata_wal_written_fn)(void *arg, const uint8_t *entries, size_t len,
                                      uint64_t first_seq, uint64_t last_seq);
typedef void (*strata_wal_durable_fn)(void *arg, uint64_t durable_seq);

/* Replay callback; a non-zero return stops the open with that error code. */
typedef int (*strata_wal_replay_fn)(void *arg, const strata_entry_t *entry);

typedef struct {
    const char *dir;                 /* created if missing */
    uint64_t segment_bytes;          /* roll to a new segment past this; default 64 MiB */
    uint32_t max_entry_bytes;        /* cap on one entry's payload; default 64 MiB */
    uint32_t async_sync_interval_ms; /* background fdatasync period; default 10 */
    bool repair;        /* at mid-log corruption, keep the good prefix instead of failing */
    uint64_t term;      /* written into new entries */
    uint64_t first_seq; /* first seq when the log is empty (a checkpoint); default 1 */
    strata_io_t *io;    /* NULL: POSIX */
    strata_wal_appended_fn on_appended; /* may be NULL; called with observer_arg */
    strata_wal_written_fn on_written;   /* may be NULL */
    strata_wal_durable_fn on_durable;   /* may be NULL */
    void *observer_arg;
    /* History kept for subscribers: strata_wal_delete_below keeps a
     * segment below its checkpoint while the segments from it to the
     * newest total at most retain_bytes and it is younger than retain_ms.
     * 0 sets no bound on its axis; both 0 (the embedded default): nothing
     * is kept beyond the checkpoint. */
    uint64_t retain_bytes;
    uint64_t retain_ms;
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

/* One finding of strata_wal_verify. torn_tail: damage at the end of the
 * newest segment that open would cut (only unacknowledged writes can be
 * there, normal after a crash or beside a live writer); otherwise damage
 * that open would refuse without repair. Valid during the callback. */
typedef struct {
    const char *file; /* "wal/0000000000000001.wal" */
    uint64_t offset;  /* of the damaged entry, or where the log would be cut */
    const char *kind; /* as lib/log/wal.md names it: "bad crc", "seq gap", ... */
    bool torn_tail;
    const char *message; /* one line naming file, offset and kind */
} strata_wal_damage_t;
typedef void (*strata_wal_damage_fn)(void *arg, const strata_wal_damage_t *damage);

/* Runs open's scan over the log in dir, checking every entry of every
 * segment (lengths against max_entry_bytes, 0: the default cap, before
 * anything is read; CRC; seq continuity within and across segments), and
 * changes nothing: no truncation, removal, rename or lock, so it may run
 * beside a live writer. Each finding goes to on_damage (may be NULL); after
 * damage the scan goes on with the next segment. *report (may be NULL)
 * gets what open would report, with entries_replayed counting the entries
 * checked. Returns 0 when open would succeed without repair (a torn tail
 * allowed), STRATA_ECORRUPT when there is any other finding (err holds the
 * first; an unknown format version counts), or another error when the
 * directory cannot be listed. */
int strata_wal_verify(const char *dir, uint32_t max_entry_bytes, strata_wal_damage_fn on_damage,
                      void *damage_arg, strata_wal_recovery_t *report, strata_error_t *err);

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

/* 0 while appends are accepted; after a write, sync or truncation failure
 * (sticky until the log is reopened), that error, its message in err. */
int strata_wal_failure(strata_wal_t *self, strata_error_t *err);
uint64_t strata_wal_last_seq(strata_wal_t *self);    /* last appended */
uint64_t strata_wal_durable_seq(strata_wal_t *self); /* last covered by fdatasync */
void strata_wal_set_term(strata_wal_t *self, uint64_t term);

/* The bytes of the segments that hold seq and every later one: what
 * deleting nothing below seq keeps on disk. Thread-safe. */
uint64_t strata_wal_bytes_from(strata_wal_t *self, uint64_t seq);

/* Deletes whole segments whose last seq is < checkpoint_seq, oldest first,
 * never the active segment, and none that retention keeps (retain_bytes,
 * retain_ms). *deleted (may be NULL) gets the count. */
int strata_wal_delete_below(strata_wal_t *self, uint64_t checkpoint_seq, uint32_t *deleted,
                            strata_error_t *err);

/* ---- following another log (a replica) ----
 * A follower's log holds exactly the leader's entries: each carries the
 * seq, term and flags the leader gave it and is stored byte for byte. */

/* What a refused follower append says about this log, so the sender can
 * find the point where the two logs agree. */
typedef struct {
    uint64_t last_seq;   /* this log's last seq */
    uint64_t term;       /* the term this log has at prev_seq, 0 when it has no entry there */
    uint64_t term_first; /* the first seq this log holds in that term */
} strata_wal_hint_t;

/* Appends entries (len bytes of whole encoded entries, each with its own
 * seq, term and flags) after the entry (prev_seq, prev_term). prev_seq may
 * be the seq just below the log's first (an empty log's start, prev_term
 * ignored). Refused with STRATA_ECONFLICT and *hint filled when the log
 * has no entry at prev_seq or one of another term, or when an entry's seq
 * is present with another term (the owner truncates first). Entries the
 * log already holds with the same term are skipped, so a resend is
 * harmless. STRATA_EINVAL for malformed input: damaged entries, seqs not
 * contiguous from prev_seq + 1, a term below prev_term or going back, or
 * a batch that ends inside an atomic group. The rest is written through
 * the group commit with the given durability; *appended (may be NULL)
 * gets the count written. Thread-safe, but meant for a log that has no
 * leader appends at the same time. */
int strata_wal_append_entries(strata_wal_t *self, const uint8_t *entries, size_t len,
                              uint64_t prev_seq, uint64_t prev_term, strata_durability_t durability,
                              size_t *appended, strata_wal_hint_t *hint, strata_error_t *err);

/* The term of the entry at seq: 0 with *term set, or STRATA_ENOTFOUND
 * when the log does not hold seq. */
int strata_wal_term_at(strata_wal_t *self, uint64_t seq, uint64_t *term);

/* What a consensus core needs of the log at start: the first seq it holds
 * (the next seq when it holds none) and, ascending, the first seq and the
 * term of each run of entries of one term, in arrays the caller frees
 * (both NULL when *n_runs is 0). A run may start below *first_seq when
 * retention removed its head. */
int strata_wal_terms(strata_wal_t *self, uint64_t *first_seq, uint64_t **run_first_seq,
                     uint64_t **run_term, size_t *n_runs, strata_error_t *err);

/* What strata_wal_truncate_after cut. */
typedef struct {
    uint64_t first_seq, last_seq; /* the cut entries; 0 when nothing was cut */
    uint64_t first_term, last_term;
    uint64_t entries;
    uint64_t bytes;
    char rollback_path[512]; /* the file holding the cut entries */
} strata_wal_cut_t;

/* Cuts every entry with seq > seq: a suffix that was never committed. The
 * cut entries are first saved byte for byte in "<dir>/rollback/", then
 * later segments are removed newest first and the segment holding seq + 1
 * is truncated at that entry, each step synced, so a crash at any point
 * leaves a valid prefix of the log (lib/log/wal.md, "Cutting an uncommitted suffix").
 * STRATA_EINVAL when seq is below the first retained seq or the cut would
 * split an atomic group. Nothing to cut is success with an empty *cut.
 * Waits for appends in flight; thread-safe. */
int strata_wal_truncate_after(strata_wal_t *self, uint64_t seq, strata_wal_cut_t *cut,
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

/* ---- read-only cursor ----
 * Reads a log directory another process (the writer) is appending to: the
 * distributor's historical tier and durable subscriptions. It never
 * writes, locks or repairs. It stops at the end of what is intact: an
 * entry still being written, a torn tail, or a group whose last entry is
 * not there yet reads as the end (STRATA_ETIMEDOUT from next), and a
 * later call sees entries written since. Damage followed by intact data in
 * a sealed segment is STRATA_ECORRUPT naming file and offset. Segments
 * deleted under the cursor are handled: an open segment stays readable,
 * and a seek below the oldest segment is STRATA_ETRUNCATED. */
typedef struct strata_wal_cursor strata_wal_cursor_t;

/* Opens a cursor at the oldest entry. max_entry_bytes 0: the default cap.
 * A directory with no segment yet is fine: next() waits for one. */
int strata_wal_cursor_open(const char *dir, uint32_t max_entry_bytes,
                           strata_wal_cursor_t **cursor_p, strata_error_t *err);
/* Positions so that next() returns seq first (0: the oldest entry).
 * STRATA_ETRUNCATED (naming the oldest seq retained) when seq is below the
 * log; a seq past the end waits there. */
int strata_wal_cursor_seek(strata_wal_cursor_t *self, uint64_t seq, strata_error_t *err);
/* Positions at the first entry whose timestamp is >= ts_ns (entries are
 * in commit-time order within a writer's run). STRATA_ETRUNCATED when
 * older segments were deleted and ts_ns is older than what is left. */
int strata_wal_cursor_seek_time(strata_wal_cursor_t *self, uint64_t ts_ns, strata_error_t *err);
/* The next entry; entry's pointers and *raw (the whole entry as on disk)
 * stay valid until the next call. Returns 0, STRATA_ETIMEDOUT at the current
 * end of the log (call again later), or an error: STRATA_ECORRUPT,
 * STRATA_ETRUNCATED when the writer deleted the segments ahead of the
 * cursor, STRATA_ESTALE when the current segment was removed with nothing
 * after it (seek again). Never returns an entry with seq > limit_seq
 * (0: no limit): pass what is durable/published. */
int strata_wal_cursor_next(strata_wal_cursor_t *self, uint64_t limit_seq, strata_entry_t *entry,
                           const uint8_t **raw, size_t *raw_len, strata_error_t *err);
/* The first seq of the oldest segment (the next seq to be written when the
 * log holds no entry yet); 0 when there is no segment. */
uint64_t strata_wal_cursor_oldest_seq(strata_wal_cursor_t *self);
void strata_wal_cursor_close(strata_wal_cursor_t **cursor_p);

#endif
