/* The node's shared-memory ring: one producer (the writer) copies each
 * committed WAL entry's bytes into a file in /dev/shm once; any number of
 * reader processes map it and read entries in place, each with its own
 * cursor. Readers never block or slow the producer: a reader that falls a
 * whole ring behind is lapped, sees STRATA_ELAPPED, and repairs the gap from
 * the log (the distributor's historical tier). Format: lib/log/ring.md. */
#ifndef STRATA_RING_H
#define STRATA_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/wal.h"

/* ---- producer ---- */

typedef struct strata_ring strata_ring_t;

typedef struct {
    uint64_t capacity_bytes; /* data area, a power of two, 64 KiB .. 8 GiB; 0: 64 MiB */
    uint64_t first_seq;      /* seq of the first entry the ring will carry; 0: 1 */
} strata_ring_options_t;

/* Creates (or atomically replaces) the ring file at path: a temporary file
 * beside it is sized, its pages reserved, its header written, then renamed
 * over path, so a reader never maps a half-made ring. The ring it replaces
 * is marked closed and its readers woken: they see STRATA_ESTALE once they
 * have read what it published. The file is mode 0644: readers running as
 * other users can only poll (see reader_open). */
int strata_ring_create(const char *path, const strata_ring_options_t *opts, strata_ring_t **ring_p,
                       strata_error_t *err);

/* Copies one or more whole, concatenated WAL entries (the bytes wal.md
 * defines, as the WAL wrote them) into the ring. They stay invisible to
 * readers until strata_ring_publish covers their seq. Entries must come in
 * seq order with no gap, from first_seq; a malformed or out-of-order call
 * is STRATA_EINVAL and writes nothing. The CRC is not re-checked. An entry
 * larger than capacity/4 is not copied: readers get STRATA_ETOOBIG for it
 * (see next). Never waits for readers: it overwrites the oldest entries.
 * Thread-safe against strata_ring_publish. */
int strata_ring_append(strata_ring_t *self, const uint8_t *entries, size_t len,
                       strata_error_t *err);

/* Makes every appended entry with seq <= upto visible and wakes sleeping
 * readers. Never moves backwards; a smaller upto is a no-op. upto may be
 * ahead of what is appended: entries appended later with seq <= upto are
 * visible as soon as they are appended. */
void strata_ring_publish(strata_ring_t *self, uint64_t upto);

uint64_t strata_ring_published_seq(const strata_ring_t *self); /* 0 when none */

/* Marks the ring closed (readers get STRATA_ESTALE once they have read
 * everything published), wakes them, unmaps it and, with unlink_file,
 * removes the file, unless path now names a newer ring that replaced it. */
void strata_ring_close(strata_ring_t **ring_p, bool unlink_file);

/* ---- reader ---- */

typedef struct strata_ring_reader strata_ring_reader_t;

typedef enum {
    STRATA_RING_FROM_NEWEST = 0, /* only entries published after open */
    STRATA_RING_FROM_OLDEST = 1, /* the oldest entry still in the ring */
    STRATA_RING_FROM_SEQ = 2,    /* from_seq; STRATA_ELAPPED if no longer in the ring */
} strata_ring_start_t;

typedef struct {
    strata_ring_start_t start;
    uint64_t from_seq;
    /* Topic prefixes to deliver; none means every topic. Topics that begin
     * with '$' are system topics: delivered only to a prefix that starts
     * with '$'. An entry with no topic is filtered as "kv", the topic the
     * distributor publishes it under.
     * Copied at open. */
    const char *const *topics;
    size_t n_topics;
    /* How long next() spins before it sleeps on the ring's futex. */
    uint32_t spin_us; /* 0: 50 */
} strata_ring_reader_options_t;

/* Maps path and validates the header (magic, version, sizes); a foreign,
 * truncated or version-mismatched file is refused naming path and field
 * (STRATA_ECORRUPT, STRATA_EVERSION). STRATA_RING_FROM_SEQ with a seq no
 * longer in the ring is STRATA_ELAPPED and no reader. Without write access
 * to the file the reader cannot sleep on the futex and polls every 1 ms. */
int strata_ring_reader_open(const char *path, const strata_ring_reader_options_t *opts,
                            strata_ring_reader_t **reader_p, strata_error_t *err);

/* The next entry at or after the cursor that passes the topic filter.
 * entry's pointers (and *raw, the whole WAL entry, if raw is non-NULL)
 * point into the ring: zero copy, valid until the next call on this
 * reader, and only if strata_ring_reader_intact() is still true after the
 * caller has used them. entry's scalars (seq, lengths, term, timestamp)
 * are already checked.
 * Returns 0, STRATA_ETIMEDOUT when nothing arrived within timeout_ms (0
 * polls once, -1 waits forever), STRATA_ELAPPED when the producer has
 * overwritten the cursor (strata_ring_reader_next_seq says what was next;
 * seek or reopen after repairing; every call returns it until then),
 * STRATA_ESTALE when the ring file was replaced or closed and everything
 * it published has been read (reopen), or STRATA_ECORRUPT on a malformed
 * entry.
 * STRATA_ETOOBIG: the next entry was larger than capacity/4 and is not in
 * the ring. entry has its seq, term, timestamp, type, flags, topic (NULL
 * when over 4096 bytes: such a marker passes every filter) and the real
 * key_len and value_len; key, value and *raw are NULL; *raw_len is the
 * entry's full size. next_seq() is its seq and the cursor stays there:
 * fetch that one entry from the log, then seek(seq + 1). */
int strata_ring_reader_next(strata_ring_reader_t *self, int timeout_ms, strata_entry_t *entry,
                            const uint8_t **raw, size_t *raw_len);

/* True when next() has something to say without waiting: a record
 * published past the cursor (it may yet be filtered out), a lap or a
 * close. A few loads, no syscall: for a caller that takes what is there
 * and then does other work rather than poll with next(0), which checks
 * the ring's path (a stat) each time it finds nothing. */
bool strata_ring_reader_pending(const strata_ring_reader_t *self);

/* True while the entry last returned by next() has not been overwritten:
 * check it after using the entry in place and before trusting what was
 * read (a seqlock-style validation; the producer never waits for readers).
 * When it is false, drop what was read: the reader is lapped at that
 * entry, and seek(entry.seq) returns STRATA_ELAPPED with next_seq() at it. */
bool strata_ring_reader_intact(const strata_ring_reader_t *self);

/* Repositions at seq (the next entry next() returns has seq >= it).
 * STRATA_ELAPPED if seq is older than the ring's oldest entry (next_seq()
 * is then seq); a seq beyond the newest published waits there. Forward
 * from a cursor that is not lapped it costs nothing; otherwise it scans
 * the ring from its oldest record. seq 0 is STRATA_EINVAL. */
int strata_ring_reader_seek(strata_ring_reader_t *self, uint64_t seq);

/* The seq the reader needs next: after STRATA_ELAPPED, where repair from
 * the log starts. */
uint64_t strata_ring_reader_next_seq(const strata_ring_reader_t *self);

typedef struct {
    uint64_t ring_id; /* random per created ring */
    uint64_t capacity_bytes;
    uint64_t first_seq;     /* first seq this ring carried */
    uint64_t oldest_seq;    /* oldest seq still readable, 0 when empty */
    uint64_t published_seq; /* newest published, 0 when none */
    uint64_t created_ns;
    uint32_t producer_pid;
    bool closed;
} strata_ring_info_t;
void strata_ring_reader_info(const strata_ring_reader_t *self, strata_ring_info_t *info);

void strata_ring_reader_close(strata_ring_reader_t **reader_p);

#endif
