/* The ring-then-WAL tail reader (strata/tail.h): returns the committed log
 * in seq order, from the writer's shm ring while it holds what comes next,
 * and from the WAL segments when it does not, so no seq is ever skipped.
 * strata-distributor's pump reads through it; so does a replicator. */
#define _GNU_SOURCE
#include "strata/tail.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strata/ring.h"

#define TAIL_ATTACH_EVERY_NS 100000000ull /* a missing ring is looked for this often */
#define TAIL_IDLE_MS         10           /* no ring: how long a next() waits */
#define TAIL_PATH_MAX        4096

struct strata_tail {
    char *ring_path; /* NULL: ask ring_locate */
    int (*ring_locate)(void *arg, char *path, size_t cap);
    void *ring_locate_arg;
    char *wal_dir;
    uint32_t max_entry_bytes;
    uint32_t spin_us;

    strata_ring_reader_t *ring;
    strata_wal_cursor_t *cursor;
    uint64_t cursor_next; /* the seq the cursor returns next; 0: unknown */
    bool started;         /* covered and start_seq are known */
    uint64_t covered;     /* every seq <= this has been returned (or precedes start) */
    uint64_t start_seq;
    uint64_t fill_limit; /* non-zero: read the WAL up to this seq before the ring */
    uint64_t last_attach_ns;
    uint8_t *scratch; /* a ring entry, copied out before it is trusted */
    size_t scratch_cap;
    strata_tail_stats_t stats;
};

static uint64_t tail_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void tail_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int strata_tail_open(const strata_tail_options_t *opts, strata_tail_t **tail_p, strata_error_t *err)
{
    *tail_p = NULL;
    if (!opts->wal_dir || (!opts->ring_path && !opts->ring_locate))
        return strata_error_set(err, STRATA_EINVAL,
                                "tail: needs wal_dir and a ring_path or ring_locate");
    strata_tail_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "tail: out of memory");
    self->wal_dir = strdup(opts->wal_dir);
    self->ring_path = opts->ring_path ? strdup(opts->ring_path) : NULL;
    if (!self->wal_dir || (opts->ring_path && !self->ring_path)) {
        strata_tail_close(&self);
        return strata_error_set(err, STRATA_ENOMEM, "tail: out of memory");
    }
    self->ring_locate = opts->ring_locate;
    self->ring_locate_arg = opts->ring_locate_arg;
    self->max_entry_bytes = opts->max_entry_bytes;
    self->spin_us = opts->spin_us;
    if (opts->from_seq) {
        self->started = true;
        self->start_seq = opts->from_seq;
        self->covered = opts->from_seq - 1;
    }
    *tail_p = self;
    return 0;
}

static void tail_drop_ring(strata_tail_t *self)
{
    strata_ring_reader_close(&self->ring);
    self->stats.ring_attached = false;
}

/* Drops everything positional; the next call starts over at covered + 1. */
static void tail_reset(strata_tail_t *self)
{
    tail_drop_ring(self);
    strata_wal_cursor_close(&self->cursor);
    self->cursor_next = 0;
    self->fill_limit = 0;
}

/* The ring cannot give covered + 1: take covered + 1 .. upto from the WAL. */
static void tail_fill_until(strata_tail_t *self, uint64_t upto)
{
    if (upto > self->covered) {
        self->fill_limit = upto;
        self->stats.wal_refills++;
    }
}

/* (Re)attaches to the ring at covered + 1 (or at its newest entry on the
 * first attach without from_seq). When the ring no longer holds covered + 1,
 * attaches at its oldest and fills the gap from the WAL first. */
static int tail_attach(strata_tail_t *self, strata_error_t *err)
{
    uint64_t now = tail_now_ns();
    if (self->last_attach_ns && now - self->last_attach_ns < TAIL_ATTACH_EVERY_NS)
        return STRATA_ETIMEDOUT;
    self->last_attach_ns = now;
    char located[TAIL_PATH_MAX];
    const char *path = self->ring_path;
    if (!path) {
        if (self->ring_locate(self->ring_locate_arg, located, sizeof located) != 0)
            return STRATA_ETIMEDOUT;
        path = located;
    }
    /* Everything, '$' topics included: the stream has no holes. */
    static const char *const all[] = {"", "$"};
    strata_ring_reader_options_t ro = {
        .start = STRATA_RING_FROM_NEWEST, .topics = all, .n_topics = 2, .spin_us = self->spin_us};
    if (self->started) {
        ro.start = STRATA_RING_FROM_SEQ;
        ro.from_seq = self->covered + 1;
    }
    int rc = strata_ring_reader_open(path, &ro, &self->ring, err);
    if (rc == STRATA_ELAPPED) {
        ro.start = STRATA_RING_FROM_OLDEST;
        if ((rc = strata_ring_reader_open(path, &ro, &self->ring, err)))
            return rc == STRATA_EIO ? STRATA_ETIMEDOUT : rc;
        strata_ring_info_t info;
        strata_ring_reader_info(self->ring, &info);
        uint64_t oldest = info.oldest_seq ? info.oldest_seq : info.first_seq;
        tail_fill_until(self, oldest - 1);
    } else if (rc) {
        return rc == STRATA_EIO ? STRATA_ETIMEDOUT : rc; /* EIO: no ring file yet */
    }
    if (!self->started) {
        strata_ring_info_t info;
        strata_ring_reader_info(self->ring, &info);
        self->start_seq = strata_ring_reader_next_seq(self->ring);
        if (!self->start_seq)
            self->start_seq = info.published_seq + 1;
        self->covered = self->start_seq - 1;
        self->started = true;
    }
    self->stats.ring_attached = true;
    self->stats.ring_attaches++;
    return 0;
}

/* One entry of the gap from the WAL, or STRATA_ETIMEDOUT when the WAL has
 * nothing more up to fill_limit. */
static int tail_fill_next(strata_tail_t *self, strata_entry_t *entry, const uint8_t **raw,
                          size_t *raw_len, strata_error_t *err)
{
    int rc;
    if (!self->cursor &&
        (rc = strata_wal_cursor_open(self->wal_dir, self->max_entry_bytes, &self->cursor, err)))
        return rc;
    if (self->cursor_next != self->covered + 1) {
        if ((rc = strata_wal_cursor_seek(self->cursor, self->covered + 1, err)))
            return rc;
        self->cursor_next = self->covered + 1;
    }
    rc = strata_wal_cursor_next(self->cursor, self->fill_limit, entry, raw, raw_len, err);
    if (rc)
        return rc;
    if (entry->seq != self->covered + 1)
        return strata_error_set(err, STRATA_ECORRUPT, "%s: seq %llu where %llu was next",
                                self->wal_dir, (unsigned long long)entry->seq,
                                (unsigned long long)(self->covered + 1));
    self->covered = entry->seq;
    self->cursor_next = entry->seq + 1;
    self->stats.wal_entries++;
    return 0;
}

/* Copies the ring's entry out and checks it is still what was committed
 * (the producer never waits for readers). 0, or STRATA_ELAPPED when it
 * was overwritten or does not decode: the WAL has it. */
static int tail_take_ring_entry(strata_tail_t *self, const uint8_t *raw, size_t raw_len,
                                strata_entry_t *entry)
{
    if (raw_len > self->scratch_cap) {
        uint8_t *grown = realloc(self->scratch, raw_len);
        if (!grown)
            return STRATA_ENOMEM;
        self->scratch = grown;
        self->scratch_cap = raw_len;
    }
    memcpy(self->scratch, raw, raw_len);
    if (!strata_ring_reader_intact(self->ring))
        return STRATA_ELAPPED;
    size_t used;
    strata_error_t derr;
    if (strata_entry_decode(self->scratch, raw_len, self->max_entry_bytes, entry, &used, &derr) !=
        0)
        return STRATA_ELAPPED;
    return 0;
}

int strata_tail_next(strata_tail_t *self, uint64_t limit_seq, int timeout_ms, strata_entry_t *entry,
                     const uint8_t **raw, size_t *raw_len, strata_error_t *err)
{
    strata_error_clear(err);
    /* A few turns: fill, then back to the ring, then perhaps a new gap. */
    for (int turn = 0; turn < 4; turn++) {
        if (self->started && limit_seq && self->covered + 1 > limit_seq)
            return STRATA_ETIMEDOUT;
        if (self->fill_limit) {
            int rc = tail_fill_next(self, entry, raw, raw_len, err);
            if (rc == 0)
                return 0;
            if (rc != STRATA_ETIMEDOUT) {
                tail_reset(self);
                return rc;
            }
            /* The gap is filled (or the WAL has no more of it yet): the ring
             * goes on from covered + 1, or is attached again. */
            self->fill_limit = 0;
            if (self->ring && strata_ring_reader_seek(self->ring, self->covered + 1) != 0)
                tail_drop_ring(self);
            if (!self->ring)
                return STRATA_ETIMEDOUT;
        }
        if (!self->ring) {
            int rc = tail_attach(self, err);
            if (rc == STRATA_ETIMEDOUT) {
                if (timeout_ms)
                    tail_sleep_ms(timeout_ms < 0 || timeout_ms > TAIL_IDLE_MS ? TAIL_IDLE_MS
                                                                              : timeout_ms);
                return STRATA_ETIMEDOUT;
            }
            if (rc)
                return rc;
            if (self->fill_limit)
                continue;
        }
        const uint8_t *in_ring;
        size_t len;
        int rc = strata_ring_reader_next(self->ring, turn ? 0 : timeout_ms, entry, &in_ring, &len);
        if (rc == 0) {
            rc = tail_take_ring_entry(self, in_ring, len, entry);
            if (rc == STRATA_ENOMEM)
                return strata_error_set(err, rc, "tail: out of memory for a %zu-byte entry", len);
        }
        if (rc == 0) {
            if (entry->seq <= self->covered)
                continue; /* already returned */
            if (entry->seq > self->covered + 1) {
                /* The ring starts past what was returned: the WAL has the rest. */
                tail_fill_until(self, entry->seq - 1);
                if (strata_ring_reader_seek(self->ring, entry->seq) != 0)
                    tail_drop_ring(self);
                continue;
            }
            self->covered = entry->seq;
            *raw = self->scratch;
            *raw_len = len;
            return 0;
        }
        if (rc == STRATA_ETIMEDOUT)
            return rc;
        if (rc == STRATA_ELAPPED || rc == STRATA_ETOOBIG || rc == STRATA_ECORRUPT) {
            if (rc == STRATA_ELAPPED)
                self->stats.laps++;
            strata_ring_info_t info;
            strata_ring_reader_info(self->ring, &info);
            tail_fill_until(self, info.published_seq);
            if (!self->fill_limit)
                tail_drop_ring(self);
            continue;
        }
        /* STRATA_ESTALE: the writer stopped or restarted; find its new ring. */
        tail_drop_ring(self);
    }
    return STRATA_ETIMEDOUT;
}

bool strata_tail_pending(const strata_tail_t *self)
{
    if (self->fill_limit)
        return true;
    return self->ring && strata_ring_reader_pending(self->ring);
}

uint64_t strata_tail_next_seq(const strata_tail_t *self)
{
    return self->started ? self->covered + 1 : 0;
}

uint64_t strata_tail_start_seq(const strata_tail_t *self)
{
    return self->started ? self->start_seq : 0;
}

void strata_tail_stats(const strata_tail_t *self, strata_tail_stats_t *stats)
{
    *stats = self->stats;
}

void strata_tail_close(strata_tail_t **tail_p)
{
    strata_tail_t *self = *tail_p;
    if (!self)
        return;
    tail_reset(self);
    free(self->scratch);
    free(self->ring_path);
    free(self->wal_dir);
    free(self);
    *tail_p = NULL;
}
