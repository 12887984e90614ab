/* Append, commit, apply (lib/log/wal.md): the WAL reports each appended
 * group here; the commit policy decides when it is committed; applying puts
 * committed entries into the memtable in seq order and only then makes them
 * readable and hands them to on_committed (the writer's ring). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "db_impl.h"
#include "entry.h"

/* Inserts the whole entries in bytes (seq order), makes them readable and
 * reports them. write_mu held. */
static void apply_bytes(strata_db_t *self, const uint8_t *bytes, size_t len, uint64_t first_seq,
                        uint64_t last_seq)
{
    for (size_t off = 0; off < len;) {
        strata_entry_t e;
        entry_header_decode(bytes + off, true, true, &e);
        self->user_bytes += (uint64_t)e.key_len + e.value_len;
        int rc = db_insert(self, e.seq, e.type, e.key, e.key_len, e.value, e.value_len);
        if (rc < 0) {
            strata_error_t err;
            strata_error_set(&err, rc, "memtable insert of seq %" PRIu64 ": %s", e.seq,
                             strata_strerror(rc));
            db_set_failure(self, &err);
        }
        off += (size_t)entry_len(bytes + off);
    }
    if (self->opts.on_committed)
        self->opts.on_committed(self->opts.wal_observer_arg, bytes, len, first_seq, last_seq);
    /* After the whole group, so a batch becomes readable at once. */
    atomic_store_explicit(&self->visible_seq, last_seq, memory_order_release);
}

static int pending_push(strata_db_t *self, const uint8_t *bytes, size_t len, uint64_t first_seq,
                        uint64_t last_seq)
{
    if (self->pending_off && self->pending_len + len > self->pending_cap) {
        memmove(self->pending, self->pending + self->pending_off,
                self->pending_len - self->pending_off);
        self->pending_len -= self->pending_off;
        self->pending_off = 0;
    }
    if (self->pending_len + len > self->pending_cap) {
        size_t cap = self->pending_cap ? self->pending_cap : 64 * 1024;
        while (cap < self->pending_len + len)
            cap *= 2;
        uint8_t *grown = realloc(self->pending, cap);
        if (!grown)
            return STRATA_ENOMEM;
        self->pending = grown;
        self->pending_cap = cap;
    }
    memcpy(self->pending + self->pending_len, bytes, len);
    self->pending_len += len;
    if (!self->pending_first)
        self->pending_first = first_seq;
    self->pending_last = last_seq;
    return 0;
}

/* Applies every pending entry the commit seq covers. write_mu held. */
static void apply_committed(strata_db_t *self)
{
    if (!self->pending_first || self->commit_seq < self->pending_first)
        return;
    uint64_t upto = self->commit_seq < self->pending_last ? self->commit_seq : self->pending_last;
    const uint8_t *start = self->pending + self->pending_off;
    size_t len = 0;
    while (self->pending_off + len < self->pending_len && entry_seq(start + len) <= upto)
        len += (size_t)entry_len(start + len);
    apply_bytes(self, start, len, self->pending_first, upto);
    self->pending_off += len;
    if (upto == self->pending_last) {
        self->pending_off = self->pending_len = 0;
        self->pending_first = self->pending_last = 0;
    } else {
        self->pending_first = upto + 1;
    }
}

void db_on_appended(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                    uint64_t last_seq, bool synced)
{
    (void)synced; /* the WAL calls only once a sync group is durable: LOCAL commits both now */
    strata_db_t *self = arg;
    pthread_mutex_lock(&self->write_mu);
    if (self->commit_mode == STRATA_COMMIT_LOCAL) {
        self->commit_seq = last_seq;
        apply_bytes(self, entries, len, first_seq, last_seq);
    } else if (pending_push(self, entries, len, first_seq, last_seq) < 0) {
        strata_error_t err;
        strata_error_set(&err, STRATA_ENOMEM,
                         "out of memory keeping seqs %" PRIu64 "..%" PRIu64 " until commit",
                         first_seq, last_seq);
        db_set_failure(self, &err);
    } else {
        apply_committed(self);
    }
    pthread_mutex_unlock(&self->write_mu);
}

int db_check_room(strata_db_t *self, strata_error_t *err)
{
    if (self->commit_mode == STRATA_COMMIT_LOCAL)
        return 0;
    pthread_mutex_lock(&self->write_mu);
    size_t held = self->pending_len - self->pending_off;
    pthread_mutex_unlock(&self->write_mu);
    if (held < self->opts.max_uncommitted_bytes)
        return 0;
    return strata_error_set(err, STRATA_EBUSY,
                            "uncommitted entries hold %zu bytes, at the cap of %zu "
                            "(max_uncommitted_bytes): waiting for the commit seq to move",
                            held, self->opts.max_uncommitted_bytes);
}

int db_keep_pending(strata_db_t *self, const strata_entry_t *e)
{
    size_t len = strata_entry_size(e->topic_len, e->key_len, e->value_len);
    uint8_t stack[1024];
    uint8_t *buf = len <= sizeof stack ? stack : malloc(len);
    if (!buf)
        return STRATA_ENOMEM;
    strata_entry_encode(buf, e); /* the same bytes: the encoding is canonical */
    pthread_mutex_lock(&self->write_mu);
    int rc = pending_push(self, buf, len, e->seq, e->seq);
    pthread_mutex_unlock(&self->write_mu);
    if (buf != stack)
        free(buf);
    return rc;
}

void db_pending_free(strata_db_t *self)
{
    free(self->pending);
    self->pending = NULL;
}

int strata_db_commit(strata_db_t *self, uint64_t seq, strata_error_t *err)
{
    if (self->commit_mode != STRATA_COMMIT_EXTERNAL)
        return strata_error_set(
            err, STRATA_EINVAL,
            "strata_db_commit: this db commits by itself (STRATA_COMMIT_LOCAL)");
    /* Only what this log holds can be committed here (Raft's follower
     * commits min(leader commit, last new entry)): an entry that arrives
     * later at a seq the owner named before is not known to be the one the
     * owner meant, so it waits for the next commit. */
    uint64_t appended = strata_wal_last_seq(self->wal);
    if (seq > appended)
        seq = appended;
    pthread_mutex_lock(&self->write_mu);
    if (seq > self->commit_seq) {
        self->commit_seq = seq;
        apply_committed(self);
    }
    pthread_mutex_unlock(&self->write_mu);
    return 0;
}

uint64_t strata_db_appended_seq(strata_db_t *self)
{
    return strata_wal_last_seq(self->wal);
}

uint64_t strata_db_durable_seq(strata_db_t *self)
{
    return strata_wal_durable_seq(self->wal);
}

uint64_t strata_db_commit_seq(strata_db_t *self)
{
    pthread_mutex_lock(&self->write_mu);
    uint64_t seq = self->commit_mode == STRATA_COMMIT_LOCAL ? atomic_load(&self->visible_seq)
                                                            : self->commit_seq;
    pthread_mutex_unlock(&self->write_mu);
    return seq;
}

static int external_only(const strata_db_t *self, const char *what, strata_error_t *err)
{
    if (self->commit_mode == STRATA_COMMIT_EXTERNAL)
        return 0;
    return strata_error_set(err, STRATA_EINVAL, "%s needs STRATA_COMMIT_EXTERNAL", what);
}

int strata_db_append_entries(strata_db_t *self, const uint8_t *entries, size_t len,
                             uint64_t prev_seq, uint64_t prev_term, strata_durability_t durability,
                             size_t *appended, strata_wal_hint_t *hint, strata_error_t *err)
{
    int rc = external_only(self, "strata_db_append_entries", err);
    if (rc == 0)
        rc = db_check_room(self, err);
    if (rc)
        return rc;
    return strata_wal_append_entries(self->wal, entries, len, prev_seq, prev_term, durability,
                                     appended, hint, err);
}

int strata_db_truncate_after(strata_db_t *self, uint64_t seq, strata_wal_cut_t *cut,
                             strata_error_t *err)
{
    int rc = external_only(self, "strata_db_truncate_after", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->write_mu);
    uint64_t applied = atomic_load(&self->visible_seq);
    uint64_t committed = self->commit_seq > applied ? self->commit_seq : applied;
    pthread_mutex_unlock(&self->write_mu);
    if (seq < committed)
        return strata_error_set(err, STRATA_EINVAL,
                                "truncate after seq %" PRIu64 ": seqs up to %" PRIu64
                                " are committed and are never cut",
                                seq, committed);
    /* Without write_mu: the WAL waits for appends in flight, whose
     * on_appended takes it. */
    rc = strata_wal_truncate_after(self->wal, seq, cut, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->write_mu);
    if (self->pending_first && self->pending_last > seq) {
        if (seq < self->pending_first) {
            self->pending_off = self->pending_len = 0;
            self->pending_first = self->pending_last = 0;
        } else {
            size_t end = self->pending_off;
            while (end < self->pending_len && entry_seq(self->pending + end) <= seq)
                end += (size_t)entry_len(self->pending + end);
            self->pending_len = end;
            self->pending_last = seq;
        }
    }
    pthread_mutex_unlock(&self->write_mu);
    return 0;
}

int strata_db_term_at(strata_db_t *self, uint64_t seq, uint64_t *term)
{
    return strata_wal_term_at(self->wal, seq, term);
}

int strata_db_log_terms(strata_db_t *self, uint64_t *first_seq, uint64_t **run_first_seq,
                        uint64_t **run_term, size_t *n_runs, strata_error_t *err)
{
    return strata_wal_terms(self->wal, first_seq, run_first_seq, run_term, n_runs, err);
}

void strata_db_set_term(strata_db_t *self, uint64_t term)
{
    strata_wal_set_term(self->wal, term);
}
