/* The read-only cursor over a live log (lib/log/wal.md, "Reading a live log"):
 * another process, the distributor, reads the segments the writer is
 * appending to, with no lock and no write, and stops at what is intact. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coding.h"
#include "strata/wal.h"
#include "wal_format.h"

#define CURSOR_CHUNK   (1u << 20) /* sequential read size */
#define CURSOR_RETRIES 16         /* listings that raced the writer's deletions */
#define CURSOR_MARKS   1024       /* group starts remembered in the current segment */

struct strata_wal_cursor {
    char *dir;
    uint32_t max_entry_bytes;
    /* The current segment, kept open so the writer deleting it leaves it
     * readable. fd < 0: not positioned (the log had no segment yet), and
     * next() tries the last seek again. */
    int fd;
    uint64_t number;
    char *path;
    uint64_t off;          /* the next entry */
    uint64_t expected_seq; /* the seq the entry at off must carry */
    uint64_t group_end;    /* end of the group holding off once seen whole; <= off: not yet */
    /* Where the last seek asked to start: entries before it are read past. */
    uint64_t target_seq;
    uint64_t target_ts;
    /* File bytes [buf_off, buf_off + buf_len) of the current segment. */
    uint8_t *buf;
    size_t buf_cap;
    uint64_t buf_off;
    size_t buf_len;
    /* Group starts read in the current segment, ascending, at least
     * mark_every seqs apart: a seek back into what was read starts from the
     * nearest one instead of the segment's first entry (a replicator
     * resending a few entries would otherwise reread up to a whole segment
     * each time). */
    struct {
        uint64_t seq, off;
    } marks[CURSOR_MARKS];
    size_t n_marks;
    uint64_t mark_every;
};

typedef enum {
    READ_ENTRY,  /* an intact entry */
    READ_END,    /* no byte at all at the offset */
    READ_DAMAGED /* something that is not (yet) an intact entry, or an incomplete group */
} read_status_t;

static ssize_t pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static void forget_buffer(strata_wal_cursor_t *self)
{
    self->buf_off = 0;
    self->buf_len = 0;
}

static void leave_segment(strata_wal_cursor_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    free(self->path);
    self->path = NULL;
    forget_buffer(self);
    self->n_marks = 0;
    self->mark_every = 64;
}

/* The group starting at off (expected_seq) was read whole. When the marks
 * are full every other one goes and they grow twice as far apart. */
static void note_mark(strata_wal_cursor_t *self)
{
    size_t n = self->n_marks;
    if (n && self->expected_seq < self->marks[n - 1].seq + self->mark_every)
        return;
    if (n && self->off <= self->marks[n - 1].off)
        return;
    if (n == CURSOR_MARKS) {
        for (size_t i = 0; i < n / 2; i++)
            self->marks[i] = self->marks[2 * i];
        self->n_marks = n = n / 2;
        self->mark_every *= 2;
    }
    self->marks[n].seq = self->expected_seq;
    self->marks[n].off = self->off;
    self->n_marks = n + 1;
}

/* Makes file bytes [off, off + need) available in buf, reading a chunk
 * ahead. *avail gets how many bytes from off are there: fewer than need
 * at the current end of the file. */
static int ensure(strata_wal_cursor_t *self, uint64_t off, uint64_t need, uint64_t *avail,
                  strata_error_t *err)
{
    if (off >= self->buf_off && off + need <= self->buf_off + self->buf_len) {
        *avail = self->buf_off + self->buf_len - off;
        return 0;
    }
    size_t want = need > CURSOR_CHUNK ? (size_t)need : CURSOR_CHUNK;
    if (want > self->buf_cap) {
        uint8_t *grown = realloc(self->buf, want);
        if (!grown)
            return strata_error_set(err, STRATA_ENOMEM, "out of memory for a %zu-byte read", want);
        self->buf = grown;
        self->buf_cap = want;
    }
    ssize_t got = pread_full(self->fd, self->buf, want, off);
    if (got < 0) {
        forget_buffer(self);
        return strata_error_set(err, STRATA_EIO, "read %s offset %" PRIu64 ": %s",
                                display_name(self->path), off, strerror((int)-got));
    }
    self->buf_off = off;
    self->buf_len = (size_t)got;
    *avail = (uint64_t)got;
    return 0;
}

/* Reads and checks the entry at off; the cap is checked before the buffer
 * grows for the payload. */
static int read_entry(strata_wal_cursor_t *self, uint64_t off, strata_entry_t *e, uint64_t *len,
                      read_status_t *st, const char **kind, strata_error_t *err)
{
    uint64_t avail = 0;
    int rc = ensure(self, off, ENTRY_HEADER, &avail, err);
    if (rc)
        return rc;
    if (avail == 0) {
        *st = READ_END;
        return 0;
    }
    if (avail >= ENTRY_HEADER) {
        uint32_t payload = entry_payload_len(self->buf + (off - self->buf_off));
        if (payload <= self->max_entry_bytes) {
            rc = ensure(self, off, ENTRY_HEADER + (uint64_t)payload, &avail, err);
            if (rc)
                return rc;
        }
    }
    const uint8_t *p = self->buf + (off - self->buf_off);
    *st = entry_parse(p, avail, self->max_entry_bytes, e, len, kind) ? READ_ENTRY : READ_DAMAGED;
    return 0;
}

/* Checks that the group starting at off is all there: READ_ENTRY with
 * *end, READ_END when nothing follows off, or READ_DAMAGED with *bad_off
 * and *kind. The bytes are read, not kept: next() reads each entry again. */
static int find_group_end(strata_wal_cursor_t *self, read_status_t *st, uint64_t *end,
                          uint64_t *bad_off, const char **kind, strata_error_t *err)
{
    uint64_t off = self->off, seq = self->expected_seq;
    for (;;) {
        strata_entry_t e;
        uint64_t len = 0;
        int rc = read_entry(self, off, &e, &len, st, kind, err);
        if (rc)
            return rc;
        if (*st == READ_END && off > self->off) {
            *st = READ_DAMAGED;
            *kind = "incomplete group";
            *bad_off = self->off;
            return 0;
        }
        if (*st != READ_ENTRY) {
            *bad_off = off;
            return 0;
        }
        if (e.seq != seq)
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %" PRIu64 ": seq gap (expected %" PRIu64
                                    " found %" PRIu64 ")",
                                    display_name(self->path), off, seq, e.seq);
        off += len;
        seq++;
        if (!(e.flags & STRATA_ENTRY_GROUP_CONT)) {
            *end = off;
            return 0;
        }
    }
}

/* Opens segment number and checks its header: 0 with *fd_p open;
 * STRATA_ENOTFOUND when the file is gone (deleted since it was listed);
 * STRATA_ETIMEDOUT when it holds no whole header yet (the writer is
 * creating it); else an error naming the file. */
static int open_segment(strata_wal_cursor_t *self, uint64_t number, int *fd_p, uint64_t *first_seq,
                        uint64_t *created_ns, strata_error_t *err)
{
    char *path = wal_segment_path(self->dir, number);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT
                 ? strata_error_set(err, STRATA_ENOTFOUND, "%s is gone", display_name(path))
                 : strata_error_set(err, STRATA_EIO, "open %s: %s", display_name(path),
                                    strerror(errno));
        free(path);
        return rc;
    }
    /* The size first: the writer puts the header in before any entry, so
     * a file longer than a header when we looked had its header whole. */
    uint8_t header[WAL_HEADER_SIZE];
    struct stat st;
    ssize_t got = fstat(fd, &st) < 0 ? -errno : pread_full(fd, header, sizeof header, 0);
    if (got < 0) {
        rc = strata_error_set(err, STRATA_EIO, "read %s offset 0: %s", display_name(path),
                              strerror((int)-got));
    } else {
        const char *kind = NULL;
        rc = wal_check_segment_header(path, header, (uint64_t)got, number, first_seq, created_ns,
                                      &kind, err);
        if (rc == STRATA_ECORRUPT && kind && st.st_size <= (off_t)WAL_HEADER_SIZE)
            rc = strata_error_set(err, STRATA_ETIMEDOUT, "%s offset 0: header not written yet",
                                  display_name(path));
    }
    if (rc)
        close(fd);
    else
        *fd_p = fd;
    free(path);
    return rc;
}

/* Names segment number in a message as display_name would its path. */
static int segment_error(strata_wal_cursor_t *self, uint64_t number, strata_error_t *err, int code,
                         const char *what)
{
    char *path = wal_segment_path(self->dir, number);
    int rc = strata_error_set(err, code, "%s %s", path ? display_name(path) : self->dir, what);
    free(path);
    return rc;
}

/* open_segment's rc for a segment that has a successor: a header not
 * written yet is damage there, not a creation in progress. */
static int sealed_rc(strata_wal_cursor_t *self, uint64_t number, int rc, strata_error_t *err)
{
    if (rc != STRATA_ETIMEDOUT)
        return rc;
    return segment_error(self, number, err, STRATA_ECORRUPT,
                         "offset 0: torn segment header in a sealed segment");
}

static int enter_segment(strata_wal_cursor_t *self, int fd, uint64_t number, uint64_t first_seq,
                         strata_error_t *err)
{
    char *path = wal_segment_path(self->dir, number);
    if (!path) {
        close(fd);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    leave_segment(self);
    self->fd = fd;
    self->number = number;
    self->path = path;
    self->off = WAL_HEADER_SIZE;
    self->expected_seq = first_seq;
    self->group_end = 0;
    return 0;
}

/* One attempt at positioning; STRATA_ENOTFOUND when a segment vanished
 * between the listing and its open (the caller lists again). */
static int try_position(strata_wal_cursor_t *self, uint64_t seq, uint64_t ts, bool by_time,
                        strata_error_t *err)
{
    uint64_t *numbers = NULL;
    size_t n = 0;
    int rc = wal_list_segments(self->dir, &numbers, &n, err);
    if (rc)
        return rc;
    int fd = -1;
    uint64_t first = 0, created = 0;
    if (n == 0)
        goto out; /* nothing written yet: next() tries again */
    rc = open_segment(self, numbers[0], &fd, &first, &created, err);
    if (rc == STRATA_ETIMEDOUT && n == 1) {
        rc = 0; /* the first segment is being created */
        goto out;
    }
    rc = sealed_rc(self, numbers[0], rc, err);
    if (rc)
        goto out;
    close(fd);
    if (!by_time && seq && seq < first) {
        rc = strata_error_set(err, STRATA_ETRUNCATED,
                              "seq %" PRIu64 " is no longer in %s: the oldest seq retained is "
                              "%" PRIu64,
                              seq, self->dir, first);
        goto out;
    }
    /* Segment 1 is the first a log ever has; from a later one on, what is
     * older than its creation may be gone. */
    if (by_time && numbers[0] > 1 && ts < created) {
        rc = strata_error_set(err, STRATA_ETRUNCATED,
                              "entries from %" PRIu64 " ns may be gone from %s: the oldest seq "
                              "retained is %" PRIu64 ", written from %" PRIu64 " ns",
                              ts, self->dir, first, created);
        goto out;
    }
    /* The last segment whose first seq (or creation time) is <= the target;
     * headers rise with segment numbers, so a binary search reads few. */
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        int probe = -1;
        rc = open_segment(self, numbers[mid], &probe, &first, &created, err);
        if (rc == STRATA_ETIMEDOUT && mid == n - 1) {
            hi = mid - 1; /* the newest is being created */
            continue;
        }
        rc = sealed_rc(self, numbers[mid], rc, err);
        if (rc)
            goto out;
        close(probe);
        if ((by_time ? created : first) <= (by_time ? ts : seq))
            lo = mid;
        else
            hi = mid - 1;
    }
    rc = open_segment(self, numbers[lo], &fd, &first, NULL, err);
    if (rc == 0)
        rc = enter_segment(self, fd, numbers[lo], first, err);
out:
    free(numbers);
    return rc;
}

/* Positions at the segment that holds the target, a seq or (by_time) a
 * time; next() reads from its start and passes over what is before. */
static int position(strata_wal_cursor_t *self, uint64_t seq, uint64_t ts, bool by_time,
                    strata_error_t *err)
{
    leave_segment(self);
    self->target_seq = by_time ? 0 : seq;
    self->target_ts = by_time ? ts : 0;
    for (int attempt = 0; attempt < CURSOR_RETRIES; attempt++) {
        int rc = try_position(self, seq, ts, by_time, err);
        if (rc != STRATA_ENOTFOUND)
            return rc;
    }
    return strata_error_set(err, STRATA_EIO, "%s: segments kept vanishing while seeking",
                            self->dir);
}

static int end_of_log(strata_wal_cursor_t *self, strata_error_t *err)
{
    /* Read again next time: a writer that restarted may have cut what we
     * saw of an unfinished group and written over it. */
    forget_buffer(self);
    return strata_error_set(err, STRATA_ETIMEDOUT,
                            "%s offset %" PRIu64 ": end of the log for now (next seq %" PRIu64 ")",
                            display_name(self->path), self->off, self->expected_seq);
}

/* The writer has deleted the current segment and its successor: the
 * cursor fell behind truncation. */
static int fell_behind(strata_wal_cursor_t *self, strata_error_t *err)
{
    uint64_t *numbers = NULL;
    size_t n = 0;
    int rc = wal_list_segments(self->dir, &numbers, &n, err);
    if (rc)
        return rc;
    size_t i = 0;
    while (i < n && numbers[i] <= self->number)
        i++;
    uint64_t oldest = 0;
    int fd = -1;
    if (i < n && open_segment(self, numbers[i], &fd, &oldest, NULL, NULL) == 0)
        close(fd);
    free(numbers);
    if (i == n)
        return strata_error_set(err, STRATA_ESTALE,
                                "%s was removed by the writer and nothing follows it: seek again",
                                display_name(self->path));
    return strata_error_set(err, STRATA_ETRUNCATED,
                            "seq %" PRIu64 " is no longer in %s: the oldest seq retained is "
                            "%" PRIu64,
                            self->expected_seq, self->dir, oldest);
}

/* Whether the current segment is sealed, that is, a successor with a
 * whole header exists: 0 with its fd open, STRATA_ETIMEDOUT while the
 * current one is the newest, STRATA_ETRUNCATED when the writer deleted
 * past us. */
static int open_successor(strata_wal_cursor_t *self, int *fd, uint64_t *first_seq,
                          strata_error_t *err)
{
    int rc = open_segment(self, self->number + 1, fd, first_seq, NULL, err);
    if (rc == STRATA_ETIMEDOUT)
        return end_of_log(self, err);
    if (rc != STRATA_ENOTFOUND)
        return rc;
    struct stat open_st, named_st;
    if (fstat(self->fd, &open_st) == 0 && stat(self->path, &named_st) == 0 &&
        open_st.st_ino == named_st.st_ino && open_st.st_dev == named_st.st_dev)
        return end_of_log(self, err);
    /* The current segment is gone, so a successor was created before it
     * went (the active segment is never deleted): maybe just now. */
    rc = open_segment(self, self->number + 1, fd, first_seq, NULL, err);
    return rc == STRATA_ENOTFOUND ? fell_behind(self, err) : rc;
}

/* The group at off is not whole. In the newest segment that is the end of
 * the log for now. Once a successor exists the segment is sealed and
 * complete (the writer seals before it creates the next), so one more
 * look finds more entries, its clean end (move on), or damage. */
static int end_of_segment(strata_wal_cursor_t *self, strata_error_t *err)
{
    int next_fd = -1;
    uint64_t next_first = 0;
    int rc = open_successor(self, &next_fd, &next_first, err);
    if (rc)
        return rc;
    read_status_t st;
    uint64_t end = 0, bad_off = 0;
    const char *kind = NULL;
    rc = find_group_end(self, &st, &end, &bad_off, &kind, err);
    if (rc == 0 && st == READ_ENTRY)
        self->group_end = end;
    else if (rc == 0 && st == READ_DAMAGED)
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s offset %" PRIu64 ": %s in a sealed segment (last good seq "
                              "%" PRIu64 ")",
                              display_name(self->path), bad_off, kind, self->expected_seq - 1);
    else if (rc == 0 && next_first != self->expected_seq) {
        char what[128];
        snprintf(what, sizeof what,
                 "offset 24: seq gap between segments (expected %" PRIu64 " found %" PRIu64 ")",
                 self->expected_seq, next_first);
        rc = segment_error(self, self->number + 1, err, STRATA_ECORRUPT, what);
    } else if (rc == 0)
        return enter_segment(self, next_fd, self->number + 1, next_first, err);
    close(next_fd);
    return rc;
}

int strata_wal_cursor_open(const char *dir, uint32_t max_entry_bytes,
                           strata_wal_cursor_t **cursor_p, strata_error_t *err)
{
    strata_error_clear(err);
    if (!dir || !cursor_p)
        return strata_error_set(err, STRATA_EINVAL, "cursor open needs a dir");
    *cursor_p = NULL;
    strata_wal_cursor_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->fd = -1;
    self->max_entry_bytes = max_entry_bytes ? max_entry_bytes : ENTRY_DEFAULT_MAX;
    self->dir = strdup(dir);
    int rc = self->dir ? position(self, 0, 0, false, err)
                       : strata_error_set(err, STRATA_ENOMEM, "out of memory");
    if (rc) {
        strata_wal_cursor_close(&self);
        return rc;
    }
    *cursor_p = self;
    return 0;
}

void strata_wal_cursor_close(strata_wal_cursor_t **cursor_p)
{
    if (!cursor_p || !*cursor_p)
        return;
    strata_wal_cursor_t *self = *cursor_p;
    *cursor_p = NULL;
    leave_segment(self);
    free(self->buf);
    free(self->dir);
    free(self);
}

int strata_wal_cursor_seek(strata_wal_cursor_t *self, uint64_t seq, strata_error_t *err)
{
    strata_error_clear(err);
    struct stat st;
    if (self && self->fd >= 0 && self->n_marks && seq >= self->marks[0].seq &&
        seq <= self->expected_seq && stat(self->path, &st) == 0) {
        /* Back into what this segment gave, still in the log: from the
         * nearest mark. */
        size_t lo = 0, hi = self->n_marks - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            if (self->marks[mid].seq <= seq)
                lo = mid;
            else
                hi = mid - 1;
        }
        self->off = self->marks[lo].off;
        self->expected_seq = self->marks[lo].seq;
        self->group_end = 0;
        self->target_seq = seq;
        self->target_ts = 0;
        return 0;
    }
    return position(self, seq, 0, false, err);
}

int strata_wal_cursor_seek_time(strata_wal_cursor_t *self, uint64_t ts_ns, strata_error_t *err)
{
    strata_error_clear(err);
    return position(self, 0, ts_ns, true, err);
}

int strata_wal_cursor_next(strata_wal_cursor_t *self, uint64_t limit_seq, strata_entry_t *entry,
                           const uint8_t **raw, size_t *raw_len, strata_error_t *err)
{
    strata_error_clear(err);
    if (!self || !entry)
        return strata_error_set(err, STRATA_EINVAL, "cursor next needs a cursor and an entry");
    if (self->fd < 0) {
        int rc = position(self, self->target_seq, self->target_ts, self->target_ts != 0, err);
        if (rc)
            return rc;
        if (self->fd < 0)
            return strata_error_set(err, STRATA_ETIMEDOUT, "%s holds no segment yet", self->dir);
    }
    for (;;) {
        int rc;
        if (self->off >= self->group_end) {
            read_status_t st;
            uint64_t end = 0, bad_off = 0;
            const char *kind = NULL;
            rc = find_group_end(self, &st, &end, &bad_off, &kind, err);
            if (rc == 0 && st != READ_ENTRY) {
                rc = end_of_segment(self, err); /* 0: more to read, or moved on */
            } else if (rc == 0) {
                note_mark(self);
                self->group_end = end;
            }
            if (rc)
                return rc;
            continue;
        }
        strata_entry_t e;
        uint64_t len = 0;
        read_status_t st;
        const char *kind = NULL;
        rc = read_entry(self, self->off, &e, &len, &st, &kind, err);
        if (rc)
            return rc;
        if (st != READ_ENTRY || e.seq != self->expected_seq) {
            /* Whole a moment ago: the file changed under us, so a writer's
             * recovery cut it. Look at the group again; what was marked
             * past the cut is gone. */
            self->group_end = 0;
            self->n_marks = 0;
            continue;
        }
        if (limit_seq && e.seq > limit_seq)
            return strata_error_set(err, STRATA_ETIMEDOUT,
                                    "seq %" PRIu64 " is past the limit %" PRIu64, e.seq, limit_seq);
        uint64_t at = self->off;
        self->off += len;
        self->expected_seq = e.seq + 1;
        if (e.seq < self->target_seq || e.timestamp_ns < self->target_ts)
            continue;
        self->target_ts = 0; /* from here on, every entry, whatever its time */
        *entry = e;
        if (raw)
            *raw = self->buf + (at - self->buf_off);
        if (raw_len)
            *raw_len = (size_t)len;
        return 0;
    }
}

uint64_t strata_wal_cursor_oldest_seq(strata_wal_cursor_t *self)
{
    for (int attempt = 0; attempt < CURSOR_RETRIES; attempt++) {
        uint64_t *numbers = NULL;
        size_t n = 0;
        if (wal_list_segments(self->dir, &numbers, &n, NULL) != 0)
            return 0;
        uint64_t first = 0;
        int fd = -1;
        int rc = n ? open_segment(self, numbers[0], &fd, &first, NULL, NULL) : 0;
        free(numbers);
        if (rc == STRATA_ENOTFOUND)
            continue;
        if (rc == 0 && fd >= 0)
            close(fd);
        return rc == 0 ? first : 0;
    }
    return 0;
}
