/* What a replicated log needs beyond appending: the term index (the term of
 * any retained seq, for a follower's prev check) and truncation of a suffix
 * that was never committed, with the cut entries kept in rollback/. Format
 * and crash rules: lib/log/wal.md, "Cutting an uncommitted suffix". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coding.h"
#include "entry.h"
#include "wal_impl.h"

/* ---- the term index ----------------------------------------------------- */

int wal_term_index_note(strata_wal_t *self, uint64_t seq, uint64_t term)
{
    if (self->n_terms && self->terms[self->n_terms - 1].term == term)
        return 0;
    if (self->n_terms == self->cap_terms) {
        size_t cap = self->cap_terms ? self->cap_terms * 2 : 8;
        struct wal_term_start *grown = realloc(self->terms, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->terms = grown;
        self->cap_terms = cap;
    }
    self->terms[self->n_terms++] = (struct wal_term_start){.seq = seq, .term = term};
    return 0;
}

void wal_term_index_trim(strata_wal_t *self, uint64_t last_seq)
{
    while (self->n_terms && self->terms[self->n_terms - 1].seq > last_seq)
        self->n_terms--;
}

int wal_term_at_locked(strata_wal_t *self, uint64_t seq, uint64_t *term)
{
    uint64_t first = self->n_segments ? self->segments[0].first_seq : self->next_seq;
    if (seq < first || seq >= self->next_seq)
        return STRATA_ENOTFOUND;
    for (size_t i = self->n_terms; i-- > 0;) {
        if (self->terms[i].seq <= seq) {
            *term = self->terms[i].term;
            return 0;
        }
    }
    return STRATA_ENOTFOUND;
}

int strata_wal_term_at(strata_wal_t *self, uint64_t seq, uint64_t *term)
{
    pthread_mutex_lock(&self->mu);
    int rc = wal_term_at_locked(self, seq, term);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int strata_wal_terms(strata_wal_t *self, uint64_t *first_seq, uint64_t **run_first_seq,
                     uint64_t **run_term, size_t *n_runs, strata_error_t *err)
{
    *run_first_seq = *run_term = NULL;
    *n_runs = 0;
    pthread_mutex_lock(&self->mu);
    *first_seq = self->n_segments ? self->segments[0].first_seq : self->next_seq;
    size_t n = self->n_terms;
    uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
    uint64_t *terms = n ? malloc(n * sizeof *terms) : NULL;
    if (n && (!seqs || !terms)) {
        pthread_mutex_unlock(&self->mu);
        free(seqs);
        free(terms);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory copying %zu term runs", n);
    }
    for (size_t i = 0; i < n; i++) {
        seqs[i] = self->terms[i].seq;
        terms[i] = self->terms[i].term;
    }
    pthread_mutex_unlock(&self->mu);
    *run_first_seq = seqs;
    *run_term = terms;
    *n_runs = n;
    return 0;
}

/* ---- truncation ----------------------------------------------------------- */

/* Appends the entries of buf[from, size) to *cut_buf, checking each. */
static int collect(strata_wal_t *self, const char *path, const uint8_t *buf, uint64_t from,
                   uint64_t size, uint8_t **cut_buf, size_t *cut_len, size_t *cut_cap,
                   strata_wal_cut_t *cut, strata_error_t *err)
{
    for (uint64_t off = from; off < size;) {
        strata_entry_t e;
        uint64_t len;
        const char *kind;
        if (!entry_parse(buf + off, size - off, self->max_entry_bytes, &e, &len, &kind))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %" PRIu64 ": %s while collecting a cut",
                                    display_name(path), off, kind);
        if (*cut_len + len > *cut_cap) {
            size_t cap = *cut_cap ? *cut_cap : 64 * 1024;
            while (cap < *cut_len + len)
                cap *= 2;
            uint8_t *grown = realloc(*cut_buf, cap);
            if (!grown)
                return strata_error_set(err, STRATA_ENOMEM, "out of memory for a cut");
            *cut_buf = grown;
            *cut_cap = cap;
        }
        memcpy(*cut_buf + *cut_len, buf + off, len);
        *cut_len += len;
        if (!cut->first_seq) {
            cut->first_seq = e.seq;
            cut->first_term = e.term;
        }
        cut->last_seq = e.seq;
        cut->last_term = e.term;
        cut->entries++;
        off += len;
    }
    return 0;
}

/* Finds, in segment buf, the offset of the entry seq and the flags of the
 * entry before it (when that one is in this segment). */
static int find_entry(strata_wal_t *self, const char *path, const uint8_t *buf, uint64_t size,
                      uint64_t seq, uint64_t *offset, int *prev_flags, strata_error_t *err)
{
    *prev_flags = -1;
    for (uint64_t off = WAL_HEADER_SIZE; off < size;) {
        strata_entry_t e;
        uint64_t len;
        const char *kind;
        if (!entry_parse(buf + off, size - off, self->max_entry_bytes, &e, &len, &kind))
            break;
        if (e.seq == seq) {
            *offset = off;
            return 0;
        }
        *prev_flags = e.flags;
        off += len;
    }
    return strata_error_set(err, STRATA_ECORRUPT, "%s: seq %" PRIu64 " not found for a cut",
                            display_name(path), seq);
}

static void report_text(char *out, size_t cap, const strata_wal_cut_t *cut)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(out, cap,
             "strata WAL rollback v1\n"
             "first_seq=%" PRIu64 "\nlast_seq=%" PRIu64 "\nfirst_term=%" PRIu64
             "\nlast_term=%" PRIu64 "\nentries=%" PRIu64 "\nbytes=%" PRIu64
             "\ncut_at_unix_ns=%" PRIu64 "\n",
             cut->first_seq, cut->last_seq, cut->first_term, cut->last_term, cut->entries,
             cut->bytes, (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec);
}

/* Saves the cut entries in <dir>/rollback/ before anything is removed. */
static int save_rollback(strata_wal_t *self, const uint8_t *data, size_t len, strata_wal_cut_t *cut,
                         strata_error_t *err)
{
    strata_io_t *io = self->io;
    char *dir = NULL, *entries_path = NULL, *report_path = NULL;
    int rc = 0;
    if (asprintf(&dir, "%s/rollback", self->dir) < 0 ||
        asprintf(&entries_path, "%s/%020" PRIu64 "-%020" PRIu64 ".entries", dir, cut->first_seq,
                 cut->last_seq) < 0 ||
        asprintf(&report_path, "%s/%020" PRIu64 "-%020" PRIu64 ".txt", dir, cut->first_seq,
                 cut->last_seq) < 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto out;
    }
    int sys = io->mkdir(io, dir, 0700);
    if (sys < 0 && sys != -EEXIST) {
        rc = wal_io_fail(err, sys, "create", dir);
        goto out;
    }
    if (sys == 0 && (sys = io->sync_dir(io, self->dir)) < 0) {
        rc = wal_io_fail(err, sys, "sync", self->dir);
        goto out;
    }
    char text[512];
    report_text(text, sizeof text, cut);
    rc = wal_write_durably(io, dir, entries_path, data, len, err);
    if (rc == 0)
        rc = wal_write_durably(io, dir, report_path, text, strlen(text), err);
    if (rc == 0)
        snprintf(cut->rollback_path, sizeof cut->rollback_path, "%s", entries_path);
out:
    free(report_path);
    free(entries_path);
    free(dir);
    return rc;
}

/* Makes segment index k the active one, truncated at offset. */
static int cut_segment(strata_wal_t *self, size_t k, uint64_t offset, strata_error_t *err)
{
    strata_io_t *io = self->io;
    wal_segment_t *seg = &self->segments[k];
    char *path = wal_segment_path(self->dir, seg->number);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    int fd = self->fd;
    if (seg->number != self->active_number) {
        fd = io->open(io, path, O_RDWR, 0);
        if (fd < 0) {
            rc = wal_io_fail(err, fd, "open", path);
            free(path);
            return rc;
        }
    }
    int sys = io->ftruncate(io, fd, offset);
    if (sys >= 0)
        sys = io->fdatasync(io, fd);
    if (sys < 0) {
        rc = wal_io_fail(err, sys, "truncate", path);
        if (fd != self->fd)
            io->close(io, fd);
    } else if (fd != self->fd) {
        if (self->fd >= 0)
            io->close(io, self->fd);
        self->fd = fd;
        self->active_number = seg->number;
    }
    free(path);
    if (rc == 0) {
        seg->bytes = offset;
        self->write_offset = offset;
    }
    return rc;
}

/* The cut itself, with the queue held exclusively. */
static int truncate_locked(strata_wal_t *self, uint64_t seq, strata_wal_cut_t *cut,
                           strata_error_t *err)
{
    uint64_t last = self->next_seq - 1;
    uint64_t first = self->n_segments ? self->segments[0].first_seq : self->next_seq;
    if (seq >= last)
        return 0;
    if (seq + 1 < first)
        return strata_error_set(err, STRATA_EINVAL,
                                "truncate after seq %" PRIu64 ": the log starts at seq %" PRIu64,
                                seq, first);
    size_t k = self->n_segments - 1;
    while (k > 0 && self->segments[k].first_seq > seq + 1)
        k--;
    uint8_t *buf = NULL, *cut_buf = NULL;
    size_t buf_cap = 0, cut_len = 0, cut_cap = 0;
    uint64_t size = 0, offset = 0;
    int prev_flags = -1;
    char *path = wal_segment_path(self->dir, self->segments[k].number);
    int rc = path ? wal_read_file(self, path, &buf, &buf_cap, &size, err)
                  : strata_error_set(err, STRATA_ENOMEM, "out of memory");
    if (rc == 0 && size > self->segments[k].bytes)
        size = self->segments[k].bytes; /* the active segment's preallocation */
    if (rc == 0)
        rc = find_entry(self, path, buf, size, seq + 1, &offset, &prev_flags, err);
    if (rc == 0 && prev_flags < 0 && k > 0) {
        /* The entry before the cut ends the previous segment. */
        char *prev_path = wal_segment_path(self->dir, self->segments[k - 1].number);
        uint8_t *prev = NULL;
        size_t prev_cap = 0;
        uint64_t prev_size = 0;
        rc = prev_path ? wal_read_file(self, prev_path, &prev, &prev_cap, &prev_size, err)
                       : strata_error_set(err, STRATA_ENOMEM, "out of memory");
        uint64_t unused;
        if (rc == 0 &&
            find_entry(self, prev_path, prev, prev_size, UINT64_MAX, &unused, &prev_flags, NULL) &&
            prev_flags < 0)
            prev_flags = 0;
        free(prev);
        free(prev_path);
    }
    if (rc == 0 && prev_flags > 0 && (prev_flags & STRATA_ENTRY_GROUP_CONT))
        rc = strata_error_set(err, STRATA_EINVAL,
                              "truncate after seq %" PRIu64 ": it is inside an atomic group", seq);
    if (rc == 0)
        rc = collect(self, path, buf, offset, size, &cut_buf, &cut_len, &cut_cap, cut, err);
    for (size_t i = k + 1; rc == 0 && i < self->n_segments; i++) {
        char *later = wal_segment_path(self->dir, self->segments[i].number);
        rc = later ? wal_read_file(self, later, &buf, &buf_cap, &size, err)
                   : strata_error_set(err, STRATA_ENOMEM, "out of memory");
        if (rc == 0 && size > self->segments[i].bytes)
            size = self->segments[i].bytes;
        if (rc == 0)
            rc = collect(self, later, buf, WAL_HEADER_SIZE, size, &cut_buf, &cut_len, &cut_cap, cut,
                         err);
        free(later);
    }
    cut->bytes = cut_len;
    if (rc == 0 && cut->entries)
        rc = save_rollback(self, cut_buf, cut_len, cut, err);
    /* The log state first: once a segment is gone, recovery must not
     * take its absence for loss, nor expect the cut entries. */
    if (rc == 0 && (self->n_segments > k + 1 || !self->state_present || self->state_reach > seq))
        rc = wal_state_save(self, self->segments[k].number,
                            self->state_reach < seq ? self->state_reach : seq, false, err);
    /* Newest first, each removal synced: a crash leaves a prefix. Until
     * here nothing changed, so a failure above leaves the log as it was. */
    bool touched = rc == 0;
    strata_io_t *io = self->io;
    while (rc == 0 && self->n_segments > k + 1) {
        wal_segment_t *seg = &self->segments[self->n_segments - 1];
        char *later = wal_segment_path(self->dir, seg->number);
        int sys = later ? io->unlink(io, later) : -ENOMEM;
        if (sys >= 0)
            sys = io->sync_dir(io, self->dir);
        if (sys < 0)
            rc = wal_io_fail(err, sys, "remove", later ? later : self->dir);
        if (rc == 0) {
            if (seg->number == self->active_number) {
                io->close(io, self->fd);
                self->fd = -1;
                self->active_number = 0;
            }
            self->n_segments--;
        }
        free(later);
    }
    if (rc == 0)
        rc = cut_segment(self, k, offset, err);
    if (rc == 0) {
        self->next_seq = seq + 1;
        atomic_store(&self->last_seq, seq);
        if (atomic_load(&self->durable_seq) > seq)
            atomic_store(&self->durable_seq, seq);
        wal_term_index_trim(self, seq);
        self->stats.segments = (uint32_t)self->n_segments;
    } else if (touched && !self->failed) {
        /* The files may be anywhere between the old log and the cut one:
         * no more appends until a reopen has recovered them. */
        self->failed = rc;
        self->failure = *err;
    }
    free(path);
    free(buf);
    free(cut_buf);
    return rc;
}

int strata_wal_truncate_after(strata_wal_t *self, uint64_t seq, strata_wal_cut_t *cut,
                              strata_error_t *err)
{
    strata_error_clear(err);
    strata_wal_cut_t local;
    if (!cut)
        cut = &local;
    memset(cut, 0, sizeof *cut);
    if (!self)
        return strata_error_set(err, STRATA_EINVAL, "truncate needs a log");
    strata_error_t scratch;
    if (!err)
        err = &scratch;
    wal_writer_t w = {0};
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&self->mu);
    wal_queue_enter(self, &w);
    int rc;
    if (self->failed) {
        *err = self->failure;
        rc = strata_error_set(err, STRATA_EREADONLY, "WAL is read-only after: %s",
                              self->failure.msg);
    } else {
        rc = truncate_locked(self, seq, cut, err);
    }
    wal_queue_leave(self, &w);
    pthread_mutex_unlock(&self->mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}
