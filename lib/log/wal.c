/* The write-ahead log: segment files, recovery with torn-tail truncation,
 * and group commit (LevelDB's writer queue: the thread at the head of the
 * queue writes and syncs for everyone queued behind it). Format: lib/log/wal.md. */
#define _GNU_SOURCE
#include "strata/wal.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coding.h"
#include "strata/crc.h"
#include "strata/entry.h"
#include "wal_format.h"

#define WAL_GROUP_BYTES (1u << 20) /* soft cap on one group-commit write */

#define DEFAULT_SEGMENT_BYTES (UINT64_C(64) << 20)
#define DEFAULT_SYNC_INTERVAL 10u

#include "wal_impl.h"

/* ---- encoding ---------------------------------------------------------- */

static uint64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void encode_segment_header(uint8_t *h, uint64_t number, uint64_t first_seq,
                                  uint64_t created_ns)
{
    memset(h, 0, WAL_HEADER_SIZE);
    memcpy(h, WAL_MAGIC, 8);
    put_u32(h + 8, WAL_VERSION);
    put_u32(h + 12, WAL_HEADER_SIZE);
    put_u64(h + 16, number);
    put_u64(h + 24, first_seq);
    put_u64(h + 32, created_ns);
    put_u32(h + 60, strata_crc32c(0, h, 60));
}

/* ---- segment files ----------------------------------------------------- */

char *wal_segment_path(const char *dir, uint64_t number)
{
    /* snprintf into malloc rather than asprintf(&local): GCC 12 at -O3
     * cannot tell the returned string from the local's address. */
    size_t size = strlen(dir) + 1 + WAL_NAME_DIGITS + sizeof ".wal";
    char *path = malloc(size);
    if (path)
        snprintf(path, size, "%s/%0*" PRIu64 ".wal", dir, WAL_NAME_DIGITS, number);
    return path;
}

int wal_segments_push(strata_wal_t *self, uint64_t number, uint64_t first_seq, uint64_t bytes,
                      uint64_t created_ns)
{
    if (self->n_segments == self->cap_segments) {
        size_t cap = self->cap_segments ? self->cap_segments * 2 : 16;
        wal_segment_t *grown = realloc(self->segments, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->segments = grown;
        self->cap_segments = cap;
    }
    self->segments[self->n_segments++] = (wal_segment_t){number, first_seq, bytes, created_ns};
    self->stats.segments = (uint32_t)self->n_segments;
    return 0;
}

int wal_io_fail(strata_error_t *err, int sys_rc, const char *what, const char *path)
{
    return strata_error_set(err, STRATA_EIO, "%s %s: %s", what, display_name(path),
                            strerror(-sys_rc));
}

/* Creates segment `number` starting at first_seq, durable (file and
 * directory entry) before it returns, and makes it the active one. */
static int segment_create(strata_wal_t *self, uint64_t number, uint64_t first_seq,
                          strata_error_t *err)
{
    strata_io_t *io = self->io;
    char *path = wal_segment_path(self->dir, number);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    int fd = io->open(io, path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        rc = wal_io_fail(err, fd, "create", path);
        goto out;
    }
    uint8_t header[WAL_HEADER_SIZE];
    uint64_t created_ns = now_realtime_ns();
    encode_segment_header(header, number, first_seq, created_ns);
    int sys = io->fallocate(io, fd, 0, self->segment_bytes);
    if (sys == 0)
        sys = strata_io_pwrite_all(io, fd, header, sizeof header, 0);
    if (sys == 0)
        sys = io->fdatasync(io, fd);
    if (sys == 0)
        sys = io->sync_dir(io, self->dir);
    if (sys < 0) {
        rc = wal_io_fail(err, sys, "initialise", path);
        io->close(io, fd);
        goto out;
    }
    pthread_mutex_lock(&self->mu);
    rc = wal_segments_push(self, number, first_seq, WAL_HEADER_SIZE, created_ns);
    pthread_mutex_unlock(&self->mu);
    if (rc < 0) {
        io->close(io, fd);
        strata_error_set(err, rc, "out of memory");
        goto out;
    }
    self->fd = fd;
    self->active_number = number;
    self->write_offset = WAL_HEADER_SIZE;
out:
    free(path);
    return rc;
}

/* ---- recovery ---------------------------------------------------------- */

/* ---- group commit ------------------------------------------------------ */

/* durable_seq only moves forward: the leader, the roll, the timer and
 * sync_written each advance it with what their own fdatasync covered, and
 * on_durable hears every advance in order. Called without mu held. */
static void advance_durable(strata_wal_t *self, uint64_t covered)
{
    pthread_mutex_lock(&self->durable_mu);
    if (covered > atomic_load(&self->durable_seq)) {
        atomic_store(&self->durable_seq, covered);
        if (self->on_durable)
            self->on_durable(self->observer_arg, covered);
    }
    pthread_mutex_unlock(&self->durable_mu);
}

static int failed_error(strata_wal_t *self, strata_error_t *err)
{
    if (err)
        *err = self->failure;
    return strata_error_set(err, STRATA_EREADONLY, "WAL is read-only after: %s", self->failure.msg);
}

static int grow_group_buf(strata_wal_t *self, size_t need)
{
    if (need <= self->group_cap)
        return 0;
    size_t cap = self->group_cap ? self->group_cap : 64 * 1024;
    while (cap < need)
        cap *= 2;
    uint8_t *grown = realloc(self->group_buf, cap);
    if (!grown)
        return STRATA_ENOMEM;
    self->group_buf = grown;
    self->group_cap = cap;
    return 0;
}

/* Seals the active segment and starts the next one. The old segment is
 * synced first so every segment but the active one is wholly durable. */
static int roll_segment(strata_wal_t *self, uint64_t first_seq, strata_error_t *err)
{
    strata_io_t *io = self->io;
    uint64_t number = self->active_number + 1;
    pthread_mutex_lock(&self->mu);
    while (self->bg_syncs)
        pthread_cond_wait(&self->bg_idle_cv, &self->mu);
    self->rolling = true;
    self->segments[self->n_segments - 1].bytes = self->write_offset; /* its sealed size */
    pthread_mutex_unlock(&self->mu);
    int rc = 0;
    uint64_t covered = atomic_load(&self->last_seq);
    int sys = io->fdatasync(io, self->fd);
    if (sys < 0) {
        rc = strata_error_set(err, STRATA_EIO, "fdatasync before segment roll: %s", strerror(-sys));
    } else {
        advance_durable(self, covered);
        /* Trim the preallocated space the segment will never use. */
        io->ftruncate(io, self->fd, self->write_offset);
        io->close(io, self->fd);
        self->fd = -1;
        rc = segment_create(self, number, first_seq, err);
        /* The new segment exists and every older one is sealed: from now
         * on a log without it, or ending before first_seq, lost entries. */
        if (rc == 0)
            rc = wal_state_save(self, number, first_seq - 1, false, err);
    }
    pthread_mutex_lock(&self->mu);
    self->rolling = false;
    pthread_cond_broadcast(&self->bg_idle_cv); /* sync_written may wait out a roll */
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* The leader's I/O for one group, done without the lock: nobody else
 * touches the file while we lead. */
static int write_group(strata_wal_t *self, wal_writer_t *head, wal_writer_t *last,
                       uint64_t first_seq, uint64_t term, bool want_sync, strata_error_t *err)
{
    size_t total = 0;
    for (wal_writer_t *w = head;; w = w->next) {
        total += w->encoded_len;
        if (w == last)
            break;
    }
    if (total > 0 && self->write_offset > WAL_HEADER_SIZE &&
        self->write_offset + total > self->segment_bytes) {
        int rc = roll_segment(self, first_seq, err);
        if (rc)
            return rc;
    }
    if (grow_group_buf(self, total) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory for a %zu-byte group", total);
    uint64_t ts = now_realtime_ns();
    uint64_t seq = first_seq;
    size_t pos = 0;
    for (wal_writer_t *w = head;; w = w->next) {
        if (w->encoded_len) /* sync-only requests carry no bytes */
            memcpy(self->group_buf + pos, w->encoded, w->encoded_len);
        size_t end = pos + w->encoded_len;
        while (pos < end) {
            uint8_t *entry = self->group_buf + pos;
            if (!w->sealed)
                entry_seal(entry, seq, term, ts);
            seq++;
            pos += entry_len(entry);
        }
        if (w == last)
            break;
    }
    strata_io_t *io = self->io;
    if (total > 0) {
        int sys = strata_io_pwrite_all(io, self->fd, self->group_buf, total, self->write_offset);
        if (sys < 0)
            return strata_error_set(err, STRATA_EIO, "write at offset %" PRIu64 ": %s",
                                    self->write_offset, strerror(-sys));
        self->write_offset += total;
        /* Before last_seq moves, so no fdatasync can report these seqs
         * durable before the observer has had their bytes. */
        if (self->on_written)
            self->on_written(self->observer_arg, self->group_buf, total, first_seq, seq - 1);
        atomic_store(&self->last_seq, seq - 1);
    }
    if (want_sync && atomic_load(&self->durable_seq) < atomic_load(&self->last_seq)) {
        uint64_t covered = atomic_load(&self->last_seq);
        int sys = io->fdatasync(io, self->fd);
        if (sys < 0)
            return strata_error_set(err, STRATA_EIO, "fdatasync: %s", strerror(-sys));
        advance_durable(self, covered);
        pthread_mutex_lock(&self->mu);
        self->stats.syncs++;
        pthread_mutex_unlock(&self->mu);
    }
    return 0;
}

static void enqueue(strata_wal_t *self, wal_writer_t *w)
{
    w->next = NULL;
    if (self->queue_tail)
        self->queue_tail->next = w;
    else
        self->queue_head = w;
    self->queue_tail = w;
    while (!w->done && self->queue_head != w)
        pthread_cond_wait(&w->cv, &self->mu);
}

static void dequeue(strata_wal_t *self, wal_writer_t *last)
{
    self->queue_head = last->next;
    if (!self->queue_head)
        self->queue_tail = NULL;
    else
        pthread_cond_signal(&self->queue_head->cv);
}

void wal_queue_enter(strata_wal_t *self, wal_writer_t *w)
{
    w->exclusive = true;
    enqueue(self, w);
    while (self->bg_syncs)
        pthread_cond_wait(&self->bg_idle_cv, &self->mu);
}

void wal_queue_leave(strata_wal_t *self, wal_writer_t *w)
{
    dequeue(self, w);
}

/* Records the group's term boundaries. A leader's group has one term; a
 * follower's entries carry their own. mu held. */
static int note_terms(strata_wal_t *self, wal_writer_t *head, wal_writer_t *last,
                      uint64_t first_seq, uint64_t term)
{
    if (!head->sealed)
        return wal_term_index_note(self, first_seq, term);
    const uint8_t *p = self->group_buf;
    for (size_t off = 0; off < head->encoded_len; off += (size_t)entry_len(p + off))
        if (wal_term_index_note(self, entry_seq(p + off), entry_term(p + off)) < 0)
            return STRATA_ENOMEM;
    (void)last;
    return 0;
}

/* Queues w and returns when it has been written by some leader (possibly
 * itself). The lock is held on entry and on return. Leaders follow one
 * another: the next one is woken only after this one has written, synced,
 * reported and moved queue_head, and each takes its seqs under the lock, so
 * on_written and on_appended run one group at a time, in seq order. */
static void join_queue(strata_wal_t *self, wal_writer_t *w)
{
    enqueue(self, w);
    if (w->done)
        return;

    /* Leader: take everyone queued, up to a soft byte cap. A follower's
     * sealed entries go alone: their seqs are their own. */
    wal_writer_t *last = w;
    size_t bytes = w->encoded_len;
    bool want_sync = w->want_sync;
    uint64_t n_entries = w->n_ops;
    while (!w->sealed && last->next && !last->next->sealed && !last->next->exclusive &&
           bytes + last->next->encoded_len <= WAL_GROUP_BYTES) {
        last = last->next;
        bytes += last->encoded_len;
        want_sync = want_sync || last->want_sync;
        n_entries += last->n_ops;
    }
    uint64_t first_seq = self->next_seq;
    uint64_t term = self->term;
    int rc = self->failed;
    strata_error_t err;
    strata_error_clear(&err);
    if (!rc && w->sealed && n_entries && entry_seq(w->encoded) != first_seq) {
        /* The log moved since the caller checked prev: not a failure of the
         * log, so this writer alone is refused. */
        w->done = true;
        w->rc = STRATA_ECONFLICT;
        w->first_seq = first_seq;
        dequeue(self, w);
        return;
    }
    if (!rc) {
        self->next_seq += n_entries;
        pthread_mutex_unlock(&self->mu);
        rc = write_group(self, w, last, first_seq, term, want_sync, &err);
        if (rc == 0 && bytes && self->on_appended)
            self->on_appended(self->observer_arg, self->group_buf, bytes, first_seq,
                              first_seq + n_entries - 1, want_sync);
        pthread_mutex_lock(&self->mu);
        if (rc) {
            if (!self->failed) {
                self->failed = rc;
                self->failure = err;
            }
            rc = STRATA_EREADONLY;
        } else if (bytes && note_terms(self, w, last, first_seq, term) < 0) {
            /* Without its term index the log cannot check a follower append. */
            self->failed = rc = STRATA_ENOMEM;
            strata_error_set(&self->failure, STRATA_ENOMEM, "out of memory for the term index");
            rc = STRATA_EREADONLY;
        } else {
            self->stats.groups += bytes > 0;
            self->stats.bytes += bytes;
            self->segments[self->n_segments - 1].bytes = self->write_offset;
        }
    }
    uint64_t seq = first_seq;
    for (wal_writer_t *x = w;; x = x->next) {
        x->done = true;
        x->rc = rc ? STRATA_EREADONLY : 0;
        x->first_seq = seq;
        seq += x->n_ops;
        if (x != w)
            pthread_cond_signal(&x->cv);
        if (x == last)
            break;
    }
    dequeue(self, last);
}

int strata_wal_append(strata_wal_t *self, const strata_wal_op_t *ops, size_t n_ops,
                      strata_durability_t durability, uint64_t *first_seq, strata_error_t *err)
{
    if (!self || (!ops && n_ops) || n_ops == 0)
        return strata_error_set(err, STRATA_EINVAL, "append needs at least one op");
    size_t total = 0;
    for (size_t i = 0; i < n_ops; i++) {
        const strata_wal_op_t *op = &ops[i];
        uint64_t payload = (uint64_t)op->topic_len + op->key_len + op->value_len;
        if (payload > self->max_entry_bytes)
            return strata_error_set(err, STRATA_ETOOBIG,
                                    "op %zu: %" PRIu64 " payload bytes, cap is %u", i, payload,
                                    self->max_entry_bytes);
        if (op->type != STRATA_VALUE_PUT && op->type != STRATA_VALUE_DELETE)
            return strata_error_set(err, STRATA_EINVAL, "op %zu: unknown type %u", i, op->type);
        total += strata_entry_size(op->topic_len, op->key_len, op->value_len);
    }
    /* Encoding happens before taking the lock, so appenders do their
     * copying in parallel and the leader only seals and writes. */
    uint8_t stack_buf[1024];
    uint8_t *encoded = total <= sizeof stack_buf ? stack_buf : malloc(total);
    if (!encoded)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory encoding %zu bytes", total);
    size_t pos = 0;
    for (size_t i = 0; i < n_ops; i++) {
        const strata_wal_op_t *op = &ops[i];
        entry_encode_unsealed(encoded + pos, op->type, i + 1 < n_ops ? STRATA_ENTRY_GROUP_CONT : 0,
                              op->topic, op->topic_len, op->key, op->key_len, op->value,
                              op->value_len);
        pos += strata_entry_size(ops[i].topic_len, ops[i].key_len, ops[i].value_len);
    }
    wal_writer_t w = {
        .n_ops = n_ops,
        .encoded = encoded,
        .encoded_len = total,
        .want_sync = durability == STRATA_SYNC,
    };
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&self->mu);
    int rc;
    if (self->failed) {
        rc = failed_error(self, err);
    } else {
        self->stats.appends++;
        join_queue(self, &w);
        rc = w.rc;
        if (rc)
            failed_error(self, err);
        else if (first_seq)
            *first_seq = w.first_seq;
    }
    pthread_mutex_unlock(&self->mu);
    pthread_cond_destroy(&w.cv);
    if (encoded != stack_buf)
        free(encoded);
    return rc;
}

/* The first seq this log still holds (the next one when it holds none). */
static uint64_t first_retained_seq(const strata_wal_t *self)
{
    return self->n_segments ? self->segments[0].first_seq : self->next_seq;
}

/* Checks a follower batch on its own before the log is consulted: every
 * entry intact, seqs contiguous from prev_seq + 1, terms never going back,
 * and the batch ending on a group boundary. *count gets the entries. */
static int check_follower_batch(const strata_wal_t *self, const uint8_t *entries, size_t len,
                                uint64_t prev_seq, uint64_t prev_term, size_t *count,
                                strata_error_t *err)
{
    uint64_t expected = prev_seq + 1;
    uint64_t term = prev_term;
    uint8_t flags = 0;
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        strata_entry_t e;
        size_t used;
        strata_error_t why;
        if (strata_entry_decode(entries + off, len - off, self->max_entry_bytes, &e, &used, &why) !=
            0)
            return strata_error_set(err, STRATA_EINVAL, "follower append: byte %zu: %s", off,
                                    why.msg);
        if (e.seq != expected)
            return strata_error_set(err, STRATA_EINVAL,
                                    "follower append: byte %zu: seq %" PRIu64 ", expected %" PRIu64,
                                    off, e.seq, expected);
        if (e.term < term)
            return strata_error_set(err, STRATA_EINVAL,
                                    "follower append: seq %" PRIu64 ": term %" PRIu64
                                    " is below the term %" PRIu64 " before it",
                                    e.seq, e.term, term);
        expected++;
        term = e.term;
        flags = e.flags;
        off += used;
        n++;
    }
    if (flags & STRATA_ENTRY_GROUP_CONT)
        return strata_error_set(err, STRATA_EINVAL,
                                "follower append: the batch ends inside an atomic group at seq "
                                "%" PRIu64,
                                expected - 1);
    *count = n;
    return 0;
}

static int refuse(strata_wal_t *self, uint64_t at_seq, strata_wal_hint_t *hint, strata_error_t *err,
                  const char *why)
{
    uint64_t last = self->next_seq - 1;
    strata_wal_hint_t h = {.last_seq = last};
    for (size_t i = self->n_terms; i-- > 0;) {
        if (self->terms[i].seq <= at_seq && at_seq <= last && at_seq >= first_retained_seq(self)) {
            h.term = self->terms[i].term;
            h.term_first = self->terms[i].seq;
            break;
        }
    }
    if (hint)
        *hint = h;
    return strata_error_set(err, STRATA_ECONFLICT,
                            "follower append: %s (log: last seq %" PRIu64 ", term %" PRIu64
                            " at seq %" PRIu64 " from seq %" PRIu64 ")",
                            why, h.last_seq, h.term, at_seq, h.term_first);
}

int strata_wal_append_entries(strata_wal_t *self, const uint8_t *entries, size_t len,
                              uint64_t prev_seq, uint64_t prev_term, strata_durability_t durability,
                              size_t *appended, strata_wal_hint_t *hint, strata_error_t *err)
{
    strata_error_clear(err);
    if (appended)
        *appended = 0;
    if (!self || (!entries && len))
        return strata_error_set(err, STRATA_EINVAL, "follower append needs a log and entries");
    size_t count = 0;
    int rc = check_follower_batch(self, entries, len, prev_seq, prev_term, &count, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->mu);
    if (self->failed) {
        rc = failed_error(self, err);
        pthread_mutex_unlock(&self->mu);
        return rc;
    }
    uint64_t last = self->next_seq - 1;
    uint64_t first = first_retained_seq(self);
    uint64_t have = 0;
    if (prev_seq > last) {
        rc = refuse(self, prev_seq, hint, err, "no entry at prev_seq");
    } else if (prev_seq >= first &&
               (wal_term_at_locked(self, prev_seq, &have) != 0 || have != prev_term)) {
        rc = refuse(self, prev_seq, hint, err, "prev_term differs");
    }
    /* Entries the log holds already must match; below the retained start
     * they are covered by the engine's tables and count as held. */
    size_t off = 0;
    size_t skip = 0;
    while (rc == 0 && off < len && entry_seq(entries + off) <= last) {
        uint64_t seq = entry_seq(entries + off);
        if (seq >= first &&
            (wal_term_at_locked(self, seq, &have) != 0 || have != entry_term(entries + off))) {
            rc = refuse(self, seq, hint, err, "an entry's seq is held with another term");
            break;
        }
        off += (size_t)entry_len(entries + off);
        skip++;
    }
    if (rc == 0 && off < len) {
        wal_writer_t w = {
            .n_ops = count - skip,
            .encoded = (uint8_t *)entries + off, /* sealed: copied, never written to */
            .encoded_len = len - off,
            .sealed = true,
            .want_sync = durability == STRATA_SYNC,
        };
        pthread_cond_init(&w.cv, NULL);
        self->stats.appends++;
        join_queue(self, &w);
        rc = w.rc;
        if (rc == STRATA_ECONFLICT)
            rc = refuse(self, entry_seq(entries + off) - 1, hint, err, "the log moved meanwhile");
        else if (rc)
            failed_error(self, err);
        else if (appended)
            *appended = count - skip;
        pthread_cond_destroy(&w.cv);
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* fdatasyncs what appends have already written, outside the writer queue,
 * so appenders keep going meanwhile. Lock held on entry and on return. A
 * roll syncs the old segment itself: a caller that needs target durable
 * waits it out, the timer just skips a beat. */
static int sync_written(strata_wal_t *self, uint64_t target, bool wait, strata_error_t *err)
{
    while (!self->failed && self->rolling && atomic_load(&self->durable_seq) < target) {
        if (!wait)
            return 0;
        pthread_cond_wait(&self->bg_idle_cv, &self->mu);
    }
    if (self->failed)
        return failed_error(self, err);
    if (atomic_load(&self->durable_seq) >= target)
        return 0;
    if (self->fd < 0)
        return strata_error_set(err, STRATA_EREADONLY, "WAL has no active segment");
    uint64_t covered = atomic_load(&self->last_seq);
    int fd = self->fd;
    self->bg_syncs++;
    pthread_mutex_unlock(&self->mu);
    int sys = self->io->fdatasync(self->io, fd);
    if (sys == 0)
        advance_durable(self, covered); /* outside mu, like the leader's */
    pthread_mutex_lock(&self->mu);
    self->bg_syncs--;
    pthread_cond_broadcast(&self->bg_idle_cv);
    if (sys < 0) {
        /* Never retried as success: the pages may be gone. */
        if (!self->failed) {
            self->failed = STRATA_EIO;
            strata_error_set(&self->failure, STRATA_EIO, "fdatasync: %s", strerror(-sys));
        }
        return failed_error(self, err);
    }
    self->stats.syncs++;
    return 0;
}

int strata_wal_sync_written(strata_wal_t *self, uint64_t *durable_seq, strata_error_t *err)
{
    pthread_mutex_lock(&self->mu);
    int rc = sync_written(self, atomic_load(&self->last_seq), true, err);
    if (durable_seq)
        *durable_seq = atomic_load(&self->durable_seq);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int strata_wal_sync(strata_wal_t *self, strata_error_t *err)
{
    wal_writer_t w = {.want_sync = true};
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&self->mu);
    int rc;
    if (self->failed) {
        rc = failed_error(self, err);
    } else {
        join_queue(self, &w);
        rc = w.rc;
        if (rc)
            failed_error(self, err);
    }
    pthread_mutex_unlock(&self->mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* Async durability: acknowledged writes become durable within one period.
 * The timer syncs the active fd directly rather than through the queue, so
 * an async append never waits behind a background fdatasync. */
static void *sync_timer(void *arg)
{
    strata_wal_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->closing) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)self->sync_interval_ms * 1000000u;
        deadline.tv_sec += (time_t)(ns / 1000000000u);
        deadline.tv_nsec = (long)(ns % 1000000000u);
        while (!self->closing &&
               pthread_cond_timedwait(&self->timer_cv, &self->mu, &deadline) != ETIMEDOUT)
            ;
        if (self->closing || self->failed)
            break;
        if (sync_written(self, atomic_load(&self->last_seq), false, NULL))
            break;
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* ---- open / close ------------------------------------------------------ */

static void wal_free(strata_wal_t *self)
{
    if (self->fd >= 0)
        self->io->close(self->io, self->fd);
    pthread_cond_destroy(&self->timer_cv);
    pthread_cond_destroy(&self->bg_idle_cv);
    pthread_mutex_destroy(&self->mu);
    pthread_mutex_destroy(&self->durable_mu);
    free(self->segments);
    free(self->terms);
    free(self->group_buf);
    free(self->dir);
    free(self);
}

int strata_wal_open(const strata_wal_options_t *opts, uint64_t replay_from,
                    strata_wal_replay_fn replay, void *replay_arg, strata_wal_recovery_t *report,
                    strata_wal_t **wal_p, strata_error_t *err)
{
    strata_error_clear(err);
    if (!opts || !opts->dir || !wal_p)
        return strata_error_set(err, STRATA_EINVAL, "WAL open needs options with a dir");
    *wal_p = NULL;
    strata_wal_recovery_t local_report;
    if (!report)
        report = &local_report;
    memset(report, 0, sizeof *report);

    strata_wal_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->io = opts->io ? opts->io : strata_io_posix();
    self->dir = strdup(opts->dir);
    self->segment_bytes = opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
    self->max_entry_bytes = opts->max_entry_bytes ? opts->max_entry_bytes : ENTRY_DEFAULT_MAX;
    self->sync_interval_ms =
        opts->async_sync_interval_ms ? opts->async_sync_interval_ms : DEFAULT_SYNC_INTERVAL;
    self->repair = opts->repair;
    self->term = opts->term;
    self->on_appended = opts->on_appended;
    self->on_written = opts->on_written;
    self->on_durable = opts->on_durable;
    self->observer_arg = opts->observer_arg;
    self->retain_bytes = opts->retain_bytes;
    self->retain_ms = opts->retain_ms;
    self->fd = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_mutex_init(&self->durable_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->timer_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&self->bg_idle_cv, NULL);
    if (!self->dir) {
        wal_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }

    int rc = 0;
    int sys = strata_io_mkdirs(self->io, self->dir);
    if (sys < 0) {
        rc = wal_io_fail(err, sys, "create directory", self->dir);
        goto fail;
    }
    if ((rc = wal_state_load(self, err)))
        goto fail;
    wal_recover_t r = {
        .self = self,
        .replay_from = replay_from,
        .replay = replay,
        .replay_arg = replay_arg,
        .report = report,
    };
    rc = wal_recover(self, &r, err);
    if (rc)
        goto fail;
    self->next_seq = r.expected_seq ? r.expected_seq : (opts->first_seq ? opts->first_seq : 1);
    atomic_store(&self->last_seq, self->next_seq - 1);
    wal_term_index_trim(self, self->next_seq - 1); /* a torn group's terms went with it */
    /* What recovery found is durable already; on_durable hears only what
     * this run makes durable, so its consumer starts at last_seq + 1. */
    atomic_store(&self->durable_seq, self->next_seq - 1);

    /* Appends continue in the newest segment when it has room, so reopening
     * does not leave a trail of tiny segments. */
    if (self->n_segments > 0) {
        wal_segment_t *active = &self->segments[self->n_segments - 1];
        char *path = wal_segment_path(self->dir, active->number);
        if (!path) {
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            goto fail;
        }
        int fd = self->io->open(self->io, path, O_RDWR, 0);
        uint64_t size = 0;
        sys = fd < 0 ? fd : self->io->file_size(self->io, fd, &size);
        if (sys < 0) {
            rc = wal_io_fail(err, sys, "open", path);
            if (fd >= 0)
                self->io->close(self->io, fd);
            free(path);
            goto fail;
        }
        free(path);
        self->fd = fd;
        self->active_number = active->number;
        self->write_offset = size;
        if (size >= self->segment_bytes) {
            rc = roll_segment(self, self->next_seq, err);
            if (rc)
                goto fail;
        }
    } else {
        /* The log directory itself must survive a crash before we ack. */
        char *parent = parent_dir(self->dir);
        sys = parent ? self->io->sync_dir(self->io, parent) : -ENOMEM;
        free(parent);
        if (sys < 0) {
            rc = wal_io_fail(err, sys, "sync the parent of", self->dir);
            goto fail;
        }
        rc = segment_create(self, 1, self->next_seq, err);
        if (rc)
            goto fail;
    }
    /* What recovery kept is the log now: made durable (a killed process's
     * last writes may still be only in the page cache), then recorded as
     * what the log must reach. */
    sys = self->io->fdatasync(self->io, self->fd);
    if (sys < 0) {
        rc = wal_io_fail(err, sys, "sync", "the active segment");
        goto fail;
    }
    if ((rc = wal_state_save(self, self->active_number, self->next_seq - 1, false, err)))
        goto fail;
    if (pthread_create(&self->timer, NULL, sync_timer, self) != 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "cannot start the WAL sync thread");
        goto fail;
    }
    self->timer_running = true;
    *wal_p = self;
    return 0;
fail:
    wal_free(self);
    return rc;
}

int strata_wal_close(strata_wal_t **wal_p, strata_error_t *err)
{
    if (!wal_p || !*wal_p)
        return 0;
    strata_wal_t *self = *wal_p;
    *wal_p = NULL;
    int rc = strata_wal_sync(self, err);
    pthread_mutex_lock(&self->mu);
    self->closing = true;
    pthread_cond_signal(&self->timer_cv);
    pthread_mutex_unlock(&self->mu);
    if (self->timer_running)
        pthread_join(self->timer, NULL);
    if (rc == 0 && self->fd >= 0) {
        int sys = self->io->ftruncate(self->io, self->fd, self->write_offset);
        if (sys == 0)
            sys = self->io->fdatasync(self->io, self->fd);
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "trim active segment: %s", strerror(-sys));
    }
    /* A clean close: the whole log is durable, so any shortfall at the
     * next open is loss, not a torn tail. */
    if (rc == 0 && !self->failed && self->fd >= 0)
        rc = wal_state_save(self, self->active_number, atomic_load(&self->last_seq), true, err);
    wal_free(self);
    return rc;
}

/* ---- accessors and maintenance ---------------------------------------- */

int strata_wal_failure(strata_wal_t *self, strata_error_t *err)
{
    pthread_mutex_lock(&self->mu);
    int rc = self->failed;
    if (rc && err)
        *err = self->failure;
    pthread_mutex_unlock(&self->mu);
    return rc;
}

uint64_t strata_wal_last_seq(strata_wal_t *self)
{
    return atomic_load(&self->last_seq);
}

uint64_t strata_wal_durable_seq(strata_wal_t *self)
{
    return atomic_load(&self->durable_seq);
}

void strata_wal_set_term(strata_wal_t *self, uint64_t term)
{
    pthread_mutex_lock(&self->mu);
    self->term = term;
    pthread_mutex_unlock(&self->mu);
}

void strata_wal_stats(strata_wal_t *self, strata_wal_stats_t *stats)
{
    pthread_mutex_lock(&self->mu);
    *stats = self->stats;
    pthread_mutex_unlock(&self->mu);
}

/* Whether retention keeps the oldest segment for the log's readers, given
 * newer_bytes, the size of it and every newer segment. A limit of 0 puts
 * no bound on its axis; both 0 keep nothing. Lock held. */
static bool retained(const strata_wal_t *self, uint64_t newer_bytes, uint64_t now_ns)
{
    if (!self->retain_bytes && !self->retain_ms)
        return false;
    if (self->retain_bytes && newer_bytes > self->retain_bytes)
        return false;
    if (self->retain_ms && self->retain_ms < UINT64_MAX / 1000000u) {
        uint64_t created = self->segments[0].created_ns;
        uint64_t age_ns = now_ns > created ? now_ns - created : 0;
        if (age_ns >= self->retain_ms * 1000000u)
            return false;
    }
    return true;
}

uint64_t strata_wal_bytes_from(strata_wal_t *self, uint64_t seq)
{
    uint64_t bytes = 0;
    pthread_mutex_lock(&self->mu);
    /* Segment i holds seqs [first_seq(i), first_seq(i+1)). */
    for (size_t i = 0; i < self->n_segments; i++)
        if (i + 1 == self->n_segments || self->segments[i + 1].first_seq > seq)
            bytes += self->segments[i].bytes;
    pthread_mutex_unlock(&self->mu);
    return bytes;
}

int strata_wal_delete_below(strata_wal_t *self, uint64_t checkpoint_seq, uint32_t *deleted,
                            strata_error_t *err)
{
    uint32_t count = 0;
    int rc = 0;
    uint64_t now_ns = now_realtime_ns(); /* creation times are realtime too */
    pthread_mutex_lock(&self->mu);
    uint64_t newer_bytes = 0;
    for (size_t i = 0; i < self->n_segments; i++)
        newer_bytes += self->segments[i].bytes;
    /* Segment i holds seqs [first_seq(i), first_seq(i+1)); the active
     * (last) segment is never a candidate. Oldest first, so a failure
     * leaves the log a contiguous suffix; and a newer segment is both
     * smaller in total and younger, so once one is retained all are. */
    while (self->n_segments > 1 && self->segments[1].first_seq <= checkpoint_seq &&
           !retained(self, newer_bytes, now_ns)) {
        char *path = wal_segment_path(self->dir, self->segments[0].number);
        int sys = path ? self->io->unlink(self->io, path) : -ENOMEM;
        if (sys < 0 && sys != -ENOENT) {
            rc = wal_io_fail(err, sys, "delete", path ? path : self->dir);
            free(path);
            break;
        }
        free(path);
        newer_bytes -= self->segments[0].bytes;
        memmove(self->segments, self->segments + 1,
                (self->n_segments - 1) * sizeof *self->segments);
        self->n_segments--;
        count++;
    }
    self->stats.segments = (uint32_t)self->n_segments;
    pthread_mutex_unlock(&self->mu);
    if (count && rc == 0) {
        int sys = self->io->sync_dir(self->io, self->dir);
        if (sys < 0)
            rc = wal_io_fail(err, sys, "sync", self->dir);
    }
    if (deleted)
        *deleted = count;
    return rc;
}
