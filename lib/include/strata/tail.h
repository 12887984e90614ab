/* The committed log as one stream, in seq order with no gap: entries come
 * from the writer's shm ring while it holds them, and from the WAL
 * segments (read-only cursor) when the ring has lapped the reader, holds
 * an entry too big for it, or belongs to a restarted writer. The
 * distributor's pump publishes what it returns; a replicator ships it. */
#ifndef STRATA_TAIL_H
#define STRATA_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/wal.h"

typedef struct strata_tail strata_tail_t;

typedef struct {
    /* Where the ring is: ring_path, or when it is NULL, ring_locate, asked
     * again at every (re)attach since a restarted writer may publish
     * another ring (the distributor reads writer/ring from the writer's
     * endpoints file); it returns 0 with the path, non-zero when there is
     * no ring now. */
    const char *ring_path;
    int (*ring_locate)(void *arg, char *path, size_t cap);
    void *ring_locate_arg;
    const char *wal_dir; /* the WAL segments */
    /* The first seq to return; 0: whatever the ring publishes after the
     * first attach (strata_tail_start_seq says which once attached). */
    uint64_t from_seq;
    uint32_t max_entry_bytes; /* the WAL cursor's cap; 0: its default */
    /* How long next() busy-waits on the ring before it sleeps (the ring
     * reader's spin_us; 0: the ring's default, 1: hardly at all). */
    uint32_t spin_us;
} strata_tail_options_t;

/* Copies what it needs from opts; attaches lazily, in next(). */
int strata_tail_open(const strata_tail_options_t *opts, strata_tail_t **tail_p,
                     strata_error_t *err);

/* The next entry, seq strata_tail_next_seq(): its decoded fields and its
 * whole WAL bytes (*raw, *raw_len), both valid until the next call on this
 * tail. Never returns a seq above limit_seq (0: no limit). Waits up to
 * timeout_ms (0 polls) for the ring; returns STRATA_ETIMEDOUT when nothing
 * is there yet (no ring to attach to, nothing published), and at once
 * when the next seq is above limit_seq. Other errors (a WAL segment that cannot be read, a gap the
 * WAL no longer holds: STRATA_ETRUNCATED) name file and seq in err; the tail drops its ring and
 * cursor and starts over from the same seq on the next call. Attaching is tried at most every 100
 * ms. */
int strata_tail_next(strata_tail_t *self, uint64_t limit_seq, int timeout_ms, strata_entry_t *entry,
                     const uint8_t **raw, size_t *raw_len, strata_error_t *err);

/* True when next() would return at once: a gap being filled from the WAL,
 * or the ring has more past the cursor (strata_ring_reader_pending). False
 * says a next(0) would most likely find nothing; no syscall either way. */
bool strata_tail_pending(const strata_tail_t *self);

/* The seq next() returns next; 0 before from_seq 0 has been resolved. */
uint64_t strata_tail_next_seq(const strata_tail_t *self);

/* The first seq this tail returns (from_seq, or where the ring stood at
 * the first attach); 0 until known. */
uint64_t strata_tail_start_seq(const strata_tail_t *self);

typedef struct {
    bool ring_attached;     /* reading a ring now */
    uint64_t ring_attaches; /* successful (re)attaches */
    uint64_t laps;          /* the ring overwrote the cursor (or an entry read from it) */
    uint64_t wal_refills;   /* gaps filled from the WAL */
    uint64_t wal_entries;   /* entries returned from the WAL */
} strata_tail_stats_t;

void strata_tail_stats(const strata_tail_t *self, strata_tail_stats_t *stats);

void strata_tail_close(strata_tail_t **tail_p);

#endif
