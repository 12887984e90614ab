/* The log's shared state between its files: wal.c (append, group commit,
 * sync, follower appends, open, retention), wal_recover.c (the scan behind open and verify)
 * and wal_truncate.c (the term index and truncation).
 * Private to lib/log. */
#ifndef STRATA_WAL_IMPL_H
#define STRATA_WAL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "strata/wal.h"
#include "wal_format.h"

typedef struct {
    uint64_t number;
    uint64_t first_seq;
    uint64_t bytes;      /* file length: header and entries */
    uint64_t created_ns; /* from its header, for retention by age */
} wal_segment_t;

/* One appender waiting in the queue. Lives on the appender's stack. */
typedef struct wal_writer {
    struct wal_writer *next;
    size_t n_ops;
    uint8_t *encoded; /* entries with seq/term/time/crc still to be patched */
    size_t encoded_len;
    /* A follower's entries: already sealed with their own seq and term,
     * written as they are, in a group of their own. */
    bool sealed;
    /* Truncation: holds the head of the queue, writing nothing, so no
     * group is in flight while it cuts (wal_queue_enter/leave). */
    bool exclusive;
    bool want_sync;
    bool done;
    int rc;
    uint64_t first_seq;
    pthread_cond_t cv;
} wal_writer_t;

struct strata_wal {
    strata_io_t *io;
    char *dir;
    uint64_t segment_bytes;
    uint32_t max_entry_bytes;
    uint32_t sync_interval_ms;
    bool repair;
    /* strata_wal_verify: recovery's scan with every change to the files
     * skipped. Damage goes to on_damage and the scan carries on; the first
     * damage that recovery would refuse is kept in failure. */
    bool verify_only;
    strata_wal_damage_fn on_damage;
    void *damage_arg;
    uint32_t damage_found;
    /* <dir>/LOGSTATE as last read or written (wal_state.c): the newest
     * segment the log has had and the seq it holds durably at least. */
    bool state_present, state_clean;
    uint64_t state_newest, state_reach;
    strata_wal_appended_fn on_appended;
    strata_wal_written_fn on_written;
    strata_wal_durable_fn on_durable;
    void *observer_arg;
    uint64_t retain_bytes;
    uint64_t retain_ms;

    pthread_mutex_t mu;
    /* Everything below is guarded by mu unless it says otherwise. */
    wal_writer_t *queue_head;
    wal_writer_t *queue_tail;
    uint64_t next_seq; /* assigned to the next entry */
    uint64_t term;
    int failed; /* sticky: first write/sync failure */
    strata_error_t failure;
    wal_segment_t *segments; /* oldest first; the last one is active */
    size_t n_segments;
    size_t cap_segments;
    strata_wal_stats_t stats;
    bool closing;
    pthread_cond_t timer_cv;
    pthread_t timer;
    bool timer_running;
    /* The timer fdatasyncs outside the queue so async appends never wait
     * for it; a segment roll waits for it instead, before closing the fd. */
    uint32_t bg_syncs; /* fdatasyncs running outside the writer queue */
    bool rolling;
    pthread_cond_t bg_idle_cv;

    /* The first seq of each term the log holds, ascending; rebuilt by
     * recovery, extended by appends, cut back by truncation. */
    struct wal_term_start {
        uint64_t seq, term;
    } * terms;
    size_t n_terms, cap_terms;

    _Atomic uint64_t last_seq;    /* written to the file */
    _Atomic uint64_t durable_seq; /* covered by a successful fdatasync */
    /* Makes "advance durable_seq, tell on_durable" one step, so the
     * observer never hears a smaller seq after a larger one. Taken without
     * mu held (never inside it), so the observer may read the log's state. */
    pthread_mutex_t durable_mu;

    /* Only the group-commit leader touches these, so they need no lock. */
    int fd;
    uint64_t active_number;
    uint64_t write_offset;
    uint8_t *group_buf;
    size_t group_cap;
};

typedef struct {
    strata_wal_t *self;
    uint64_t replay_from;
    strata_wal_replay_fn replay;
    void *replay_arg;
    strata_wal_recovery_t *report;
    uint64_t expected_seq; /* seq the next entry must carry; 0 = take the first we see */
    uint64_t entries_replayed;
    /* verify beside a live writer: a listed segment was gone when read (its
     * truncation after a flush), so where the log reaches is unknown until
     * an entry or a segment header after it is read */
    bool vanished;
} wal_recover_t;

/* "create <path>: <strerror>" style I/O failures; returns STRATA_EIO. */
int wal_io_fail(strata_error_t *err, int sys_rc, const char *what, const char *path);
int wal_segments_push(strata_wal_t *self, uint64_t number, uint64_t first_seq, uint64_t bytes,
                      uint64_t created_ns);
/* Reads a whole file into *buf (grown as needed); *size gets its length. */
int wal_read_file(strata_wal_t *self, const char *path, uint8_t **buf, size_t *buf_cap,
                  uint64_t *size, strata_error_t *err);
/* Scans every segment in self->dir, repairing the tail and delivering
 * entries as r says; the body of open and of verify. */
int wal_recover(strata_wal_t *self, wal_recover_t *r, strata_error_t *err);

/* Writes data to path through a temporary name, synced and renamed, and
 * syncs dir: the file is there whole or not at all. */
int wal_write_durably(strata_io_t *io, const char *dir, const char *path, const void *data,
                      size_t len, strata_error_t *err);
/* Reads <dir>/LOGSTATE into self->state_* (absent: state_present false);
 * a damaged one is STRATA_ECORRUPT naming the field. */
int wal_state_load(strata_wal_t *self, strata_error_t *err);
/* Replaces <dir>/LOGSTATE durably, then self->state_*. */
int wal_state_save(strata_wal_t *self, uint64_t newest_segment, uint64_t reach_seq, bool clean,
                   strata_error_t *err);

/* Queues w (an exclusive writer) and returns once it heads the queue, so no
 * group is being written, and no sync runs outside the queue: the holder
 * may touch the active segment. mu held on entry and on return. */
void wal_queue_enter(strata_wal_t *self, wal_writer_t *w);
/* Hands the queue to whoever waits behind w. mu held. */
void wal_queue_leave(strata_wal_t *self, wal_writer_t *w);

/* The term index: the first seq of each term the log holds. */
int wal_term_index_note(strata_wal_t *self, uint64_t seq, uint64_t term);
/* strata_wal_term_at with mu held. */
int wal_term_at_locked(strata_wal_t *self, uint64_t seq, uint64_t *term);
/* Forgets every boundary above last_seq (after a cut or a torn tail). */
void wal_term_index_trim(strata_wal_t *self, uint64_t last_seq);

#endif
