/* Recovery's scan of the segment files, shared by open (which truncates a
 * torn tail and replays) and verify (which only reports): entry checks, seq
 * continuity, torn tails against mid-log damage. Format: lib/log/wal.md. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coding.h"
#include "entry.h"
#include "strata/crc.h"
#include "wal_impl.h"

/* After damage at off: does any intact entry with a later seq follow? If so
 * the damage is in the middle of the log, not a torn tail. */
static bool intact_entry_follows(const uint8_t *buf, uint64_t size, uint64_t off,
                                 uint32_t max_entry, uint64_t after_seq)
{
    for (uint64_t p = off + 1; p + ENTRY_HEADER <= size; p++) {
        strata_entry_t e;
        uint64_t len;
        const char *kind;
        uint32_t payload = entry_payload_len(buf + p);
        if (payload > max_entry || p + ENTRY_HEADER + payload > size)
            continue;
        if (entry_parse(buf + p, size - p, max_entry, &e, &len, &kind) && e.seq > after_seq)
            return true;
    }
    return false;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Scans one segment already read into buf. Returns 0 with *good_end set to
 * the end of the last complete group, or an error. On damage it sets
 * *bad_off and *bad_kind and returns STRATA_ECORRUPT; the caller decides
 * whether that is a torn tail or corruption. */
static int scan_segment(wal_recover_t *r, const char *path, const uint8_t *buf, uint64_t size,
                        bool deliver, uint64_t *good_end, uint64_t *bad_off, const char **bad_kind,
                        strata_error_t *err)
{
    strata_wal_t *self = r->self;
    uint64_t off = WAL_HEADER_SIZE;
    uint64_t group_start = off;
    uint64_t group_first_seq = r->expected_seq;
    size_t group_len = 0;
    /* Entries of an unfinished group wait here until its last one arrives,
     * so a torn group is never half-applied. */
    strata_entry_t *pending = NULL;
    size_t pending_cap = 0;
    int rc = 0;
    *good_end = off;
    *bad_kind = NULL;
    while (off < size) {
        strata_entry_t e;
        uint64_t len;
        const char *kind;
        if (!entry_parse(buf + off, size - off, self->max_entry_bytes, &e, &len, &kind)) {
            *bad_off = off;
            *bad_kind = kind;
            rc = STRATA_ECORRUPT;
            break;
        }
        if (r->expected_seq && e.seq != r->expected_seq) {
            rc = strata_error_set(err, STRATA_ECORRUPT,
                                  "%s offset %" PRIu64 ": seq gap (expected %" PRIu64
                                  " found %" PRIu64 ")",
                                  display_name(path), off, r->expected_seq, e.seq);
            *bad_off = off;
            *bad_kind = "seq gap";
            break;
        }
        r->expected_seq = e.seq + 1;
        if (wal_term_index_note(self, e.seq, e.term) < 0) {
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory replaying %s",
                                  display_name(path));
            break;
        }
        if (group_len == pending_cap) {
            size_t cap = pending_cap ? pending_cap * 2 : 16;
            strata_entry_t *grown = realloc(pending, cap * sizeof *grown);
            if (!grown) {
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory replaying %s",
                                      display_name(path));
                break;
            }
            pending = grown;
            pending_cap = cap;
        }
        pending[group_len++] = e;
        off += len;
        if (e.flags & STRATA_ENTRY_GROUP_CONT)
            continue;
        if (deliver && r->replay) {
            for (size_t i = 0; i < group_len && rc == 0; i++) {
                if (pending[i].seq < r->replay_from)
                    continue;
                rc = r->replay(r->replay_arg, &pending[i]);
                if (rc)
                    strata_error_set(err, rc, "replay stopped at seq %" PRIu64 " in %s",
                                     pending[i].seq, display_name(path));
                r->entries_replayed++;
            }
            if (rc)
                break;
        }
        if (r->report->first_seq == 0)
            r->report->first_seq = pending[0].seq;
        r->report->last_seq = e.seq;
        group_len = 0;
        group_start = off;
        group_first_seq = r->expected_seq;
        *good_end = off;
    }
    if (rc == 0 && group_len > 0) {
        *bad_off = group_start;
        *bad_kind = "incomplete group";
        rc = STRATA_ECORRUPT;
    }
    if (rc == STRATA_ECORRUPT) /* the seq of the first entry not kept */
        r->expected_seq = group_first_seq;
    free(pending);
    return rc;
}

int wal_check_segment_header(const char *path, const uint8_t *buf, uint64_t size, uint64_t number,
                             uint64_t *first_seq, uint64_t *created_ns, const char **kind,
                             strata_error_t *err)
{
    *kind = NULL;
    if (size < WAL_HEADER_SIZE) {
        *kind = "torn segment header";
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset 0: torn segment header (%" PRIu64 " of %u bytes)",
                                display_name(path), size, WAL_HEADER_SIZE);
    }
    if (memcmp(buf, WAL_MAGIC, 8) != 0 || strata_crc32c(0, buf, 60) != get_u32(buf + 60)) {
        *kind = "bad segment header";
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset 0: bad segment header (magic or crc)",
                                display_name(path));
    }
    uint32_t version = get_u32(buf + 8);
    if (version != WAL_VERSION || get_u32(buf + 12) != WAL_HEADER_SIZE)
        return strata_error_set(err, STRATA_EVERSION,
                                "%s offset 8: WAL format version %u, this build reads %u",
                                display_name(path), version, WAL_VERSION);
    if (get_u64(buf + 16) != number) {
        *kind = "bad segment header";
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset 16: segment number %" PRIu64 " does not match name",
                                display_name(path), get_u64(buf + 16));
    }
    if (first_seq)
        *first_seq = get_u64(buf + 24);
    if (created_ns)
        *created_ns = get_u64(buf + 32);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int wal_list_segments(const char *dir, uint64_t **numbers, size_t *count, strata_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return strata_error_set(err, STRATA_EIO, "open directory %s: %s", dir, strerror(errno));
    size_t n = 0, cap = 0;
    uint64_t *out = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strlen(name) != WAL_NAME_DIGITS + 4 || strcmp(name + WAL_NAME_DIGITS, ".wal") != 0)
            continue;
        bool digits = true;
        for (int i = 0; i < WAL_NAME_DIGITS; i++)
            digits = digits && name[i] >= '0' && name[i] <= '9';
        if (!digits)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *grown = realloc(out, cap * sizeof *grown);
            if (!grown) {
                free(out);
                closedir(d);
                return strata_error_set(err, STRATA_ENOMEM, "out of memory listing %s", dir);
            }
            out = grown;
        }
        out[n++] = strtoull(name, NULL, 10);
    }
    closedir(d);
    if (n)
        qsort(out, n, sizeof *out, cmp_u64);
    *numbers = out;
    *count = n;
    return 0;
}

/* Moves a segment that repair gave up on out of the log's name space, so it
 * is kept for inspection but never replayed. */
static int set_aside(strata_wal_t *self, const char *path, strata_error_t *err)
{
    char *aside = NULL;
    if (asprintf(&aside, "%s.corrupt", path) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int sys = self->io->rename(self->io, path, aside);
    free(aside);
    return sys < 0 ? wal_io_fail(err, sys, "set aside", path) : 0;
}

/* Cuts a segment back to good_end and makes the cut durable. */
static int truncate_segment(strata_wal_t *self, const char *path, uint64_t good_end,
                            strata_error_t *err)
{
    strata_io_t *io = self->io;
    int fd = io->open(io, path, O_RDWR, 0);
    if (fd < 0)
        return wal_io_fail(err, fd, "open", path);
    int sys = io->ftruncate(io, fd, good_end);
    if (sys == 0)
        sys = io->fdatasync(io, fd);
    io->close(io, fd);
    return sys < 0 ? wal_io_fail(err, sys, "truncate", path) : 0;
}

static void report_tail(strata_wal_recovery_t *report, const char *kind, const char *path,
                        uint64_t offset)
{
    snprintf(report->tail_kind, sizeof report->tail_kind, "%s", kind);
    snprintf(report->tail_file, sizeof report->tail_file, "%s", display_name(path));
    report->tail_offset = offset;
}

/* Reads a whole segment file into *buf (grown as needed). */
int wal_read_file(strata_wal_t *self, const char *path, uint8_t **buf, size_t *buf_cap,
                  uint64_t *size, strata_error_t *err)
{
    strata_io_t *io = self->io;
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return wal_io_fail(err, fd, "open", path);
    int sys = io->file_size(io, fd, size);
    if (sys < 0) {
        io->close(io, fd);
        return wal_io_fail(err, sys, "stat", path);
    }
    if (*size > WAL_MAX_SEGMENT_FILE) {
        io->close(io, fd);
        return strata_error_set(err, STRATA_ETOOBIG,
                                "%s: %" PRIu64 " bytes, more than a segment may hold",
                                display_name(path), *size);
    }
    if (*size > *buf_cap) {
        uint8_t *grown = realloc(*buf, *size);
        if (!grown) {
            io->close(io, fd);
            return strata_error_set(err, STRATA_ENOMEM, "out of memory reading %s",
                                    display_name(path));
        }
        *buf = grown;
        *buf_cap = *size;
    }
    sys = strata_io_pread_all(io, fd, *buf, *size, 0);
    io->close(io, fd);
    return sys < 0 ? wal_io_fail(err, sys, "read", path) : 0;
}

/* Where in a segment header the failed check looks, as the message names
 * it: the version, the first seq, the number, else the magic and CRC. */
static uint64_t header_damage_offset(const uint8_t *buf, uint64_t size, int rc, const char *kind)
{
    if (rc == STRATA_EVERSION)
        return 8;
    if (strcmp(kind, "seq gap between segments") == 0)
        return 24;
    if (size >= WAL_HEADER_SIZE && memcmp(buf, WAL_MAGIC, 8) == 0 &&
        strata_crc32c(0, buf, 60) == get_u32(buf + 60))
        return 16;
    return 0;
}

/* verify_only: damage that open would refuse. The first is kept for the
 * return, and the scan resyncs on the next segment's header, so one
 * damaged segment is one finding, not a cascade of seq gaps. */
static void verify_damage(strata_wal_t *self, wal_recover_t *r, const char *path, uint64_t offset,
                          const char *kind, const char *message)
{
    if (self->damage_found++ == 0)
        strata_error_set(&self->failure, STRATA_ECORRUPT, "%s", message);
    r->expected_seq = 0;
    strata_wal_damage_t damage = {
        .file = display_name(path), .offset = offset, .kind = kind, .message = message};
    if (self->on_damage)
        self->on_damage(self->damage_arg, &damage);
}

/* verify_only: the torn tail report_tail just recorded, which open would
 * cut (or, for a segment whose creation was cut off, remove); only
 * unacknowledged writes can be there. */
static void verify_torn_tail(strata_wal_t *self, const strata_wal_recovery_t *report,
                             const char *path, bool whole_segment)
{
    char message[sizeof report->tail_file + 160];
    snprintf(message, sizeof message,
             "%s offset %" PRIu64 ": %s at the end of the log; open would %s %" PRIu64
             " bytes (last good seq %" PRIu64 ")",
             report->tail_file, report->tail_offset, report->tail_kind,
             whole_segment ? "remove the segment of" : "drop", report->tail_bytes_dropped,
             report->last_seq);
    strata_wal_damage_t damage = {.file = display_name(path),
                                  .offset = report->tail_offset,
                                  .kind = report->tail_kind,
                                  .torn_tail = true,
                                  .message = message};
    if (self->on_damage)
        self->on_damage(self->damage_arg, &damage);
}

/* The log state (wal_state.c) says what the log must reach; below it
 * nothing is a torn tail. Repair keeps the good prefix whatever it says. */
static bool state_binds(const strata_wal_t *self)
{
    return self->state_present && !self->repair;
}

/* Loss the log state reveals: open fails with it, verify reports it. */
static int state_loss(strata_wal_t *self, wal_recover_t *r, const char *path, uint64_t offset,
                      const char *kind, strata_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int state_loss(strata_wal_t *self, wal_recover_t *r, const char *path, uint64_t offset,
                      const char *kind, strata_error_t *err, const char *fmt, ...)
{
    char message[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (self->verify_only) {
        verify_damage(self, r, path, offset, kind, message);
        return 0;
    }
    return strata_error_set(err, STRATA_ECORRUPT, "%s", message);
}

/* Recovery walks the segments oldest first. Damage in the newest segment
 * with nothing intact after it is a torn tail: cut and reported. Any other
 * damage is corruption: the open fails naming file, offset and kind, or,
 * with repair, the log keeps its good prefix and the rest is set aside. */
int wal_recover(strata_wal_t *self, wal_recover_t *r, strata_error_t *err)
{
    strata_wal_recovery_t *report = r->report;
    uint64_t *numbers = NULL;
    size_t count = 0;
    int rc = wal_list_segments(self->dir, &numbers, &count, err);
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    char *path = NULL;
    char *next_path = NULL;
    bool cut = false; /* repair dropped a suffix: later segments go aside */
    uint64_t newest = count ? numbers[count - 1] : 0;
    if (state_binds(self) && newest < self->state_newest) {
        char *missing = wal_segment_path(self->dir, self->state_newest);
        rc = missing ? state_loss(self, r, missing, 0, "missing segment", err,
                                  "%s: missing, but %s/LOGSTATE records that the log reached "
                                  "segment %" PRIu64 " (it now ends at segment %" PRIu64
                                  "): acknowledged entries are lost",
                                  display_name(missing), display_name(self->dir),
                                  self->state_newest, newest)
                     : strata_error_set(err, STRATA_ENOMEM, "out of memory");
        free(missing);
        if (rc) {
            free(numbers);
            return rc;
        }
    }

    for (size_t i = 0; i < count && rc == 0; i++) {
        bool last = i + 1 == count;
        free(path);
        path = wal_segment_path(self->dir, numbers[i]);
        if (!path) {
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            break;
        }
        if (cut) {
            rc = set_aside(self, path, err);
            continue;
        }
        uint64_t size = 0;
        rc = wal_read_file(self, path, &buf, &buf_cap, &size, err);
        if (rc && rc != STRATA_ENOMEM && self->verify_only) {
            /* A segment listed and gone since was deleted by a live
             * writer's truncation: the log now starts after it. */
            bool gone = access(path, F_OK) != 0 && errno == ENOENT;
            if (gone) {
                r->expected_seq = 0;
                r->vanished = true;
            } else
                verify_damage(self, r, path, 0,
                              rc == STRATA_ETOOBIG ? "oversize segment" : "unreadable", err->msg);
            strata_error_clear(err);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        report->bytes_scanned += size;

        uint64_t first_seq = 0, created_ns = 0;
        const char *kind = NULL;
        rc = wal_check_segment_header(path, buf, size, numbers[i], &first_seq, &created_ns, &kind,
                                      err);
        /* Unless the log state says this segment was there before. */
        if (rc && kind && last && !(state_binds(self) && numbers[i] <= self->state_newest) &&
            (size <= WAL_HEADER_SIZE || all_zero(buf + WAL_HEADER_SIZE, size - WAL_HEADER_SIZE))) {
            /* A crash while creating the newest segment: its header never
             * became durable, so no entry in it was ever acknowledged. */
            strata_error_clear(err);
            report_tail(report, kind, path, 0);
            report->tail_bytes_dropped = size;
            if (self->verify_only) {
                verify_torn_tail(self, report, path, true);
                rc = 0;
                break;
            }
            int sys = self->io->unlink(self->io, path);
            if (sys == 0)
                sys = self->io->sync_dir(self->io, self->dir);
            rc = sys < 0 ? wal_io_fail(err, sys, "remove", path) : 0;
            break;
        }
        if (rc == 0 && r->expected_seq && first_seq != r->expected_seq) {
            kind = "seq gap between segments";
            rc = strata_error_set(err, STRATA_ECORRUPT,
                                  "%s offset 24: seq gap between segments (expected %" PRIu64
                                  " found %" PRIu64 ")",
                                  display_name(path), r->expected_seq, first_seq);
        }
        if (rc && self->verify_only) {
            verify_damage(self, r, path, header_damage_offset(buf, size, rc, kind ? kind : ""),
                          kind ? kind : "unknown version", err->msg);
            strata_error_clear(err);
            rc = 0;
            continue;
        }
        if (rc) {
            if (!self->repair || !kind)
                break;
            strata_error_clear(err);
            report_tail(report, kind, path, 0);
            report->repaired_bytes_dropped += size;
            rc = set_aside(self, path, err);
            cut = true;
            continue;
        }
        r->expected_seq = first_seq;
        pthread_mutex_lock(&self->mu);
        rc = wal_segments_push(self, numbers[i], first_seq, size, created_ns);
        pthread_mutex_unlock(&self->mu);
        if (rc) {
            strata_error_set(err, rc, "out of memory");
            break;
        }

        /* A segment wholly below replay_from needs only its header checked,
         * so restart cost follows the unflushed tail, not the whole archive. */
        if (!last && r->replay_from > 0) {
            free(next_path);
            next_path = wal_segment_path(self->dir, numbers[i + 1]);
            uint8_t next_header[WAL_HEADER_SIZE];
            uint64_t next_first = 0;
            const char *next_kind = NULL;
            int fd = next_path ? self->io->open(self->io, next_path, O_RDONLY, 0) : -ENOMEM;
            int sys =
                fd < 0 ? fd : strata_io_pread_all(self->io, fd, next_header, sizeof next_header, 0);
            if (fd >= 0)
                self->io->close(self->io, fd);
            strata_error_t ignored;
            if (sys == 0 &&
                wal_check_segment_header(next_path, next_header, sizeof next_header, numbers[i + 1],
                                         &next_first, NULL, &next_kind, &ignored) == 0 &&
                next_first <= r->replay_from && next_first > first_seq) {
                if (report->first_seq == 0)
                    report->first_seq = first_seq;
                report->last_seq = next_first - 1;
                r->expected_seq = next_first;
                continue;
            }
        }

        uint64_t good_end = 0, bad_off = 0;
        const char *bad_kind = NULL;
        rc = scan_segment(r, path, buf, size, true, &good_end, &bad_off, &bad_kind, err);
        if (rc != STRATA_ECORRUPT || !bad_kind)
            continue; /* 0 moves on; any other error ends the loop */
        uint64_t last_good_seq = r->expected_seq - 1;
        bool seq_gap = strcmp(bad_kind, "seq gap") == 0;
        if (last && !seq_gap &&
            !intact_entry_follows(buf, size, bad_off, self->max_entry_bytes, last_good_seq)) {
            if (state_binds(self) && last_good_seq < self->state_reach) {
                rc = state_loss(self, r, path, bad_off, bad_kind, err,
                                "%s offset %" PRIu64 ": %s at the end of the log after seq %" PRIu64
                                ", but %s/LOGSTATE records seq %" PRIu64
                                " as durable: acknowledged entries are lost, not a torn tail",
                                display_name(path), bad_off, bad_kind, last_good_seq,
                                display_name(self->dir), self->state_reach);
                if (rc)
                    break;
                strata_error_clear(err);
                continue;
            }
            strata_error_clear(err);
            report_tail(report, bad_kind, path, good_end);
            /* Repair cutting what the state called durable is a repair. */
            if (self->state_present && last_good_seq < self->state_reach)
                report->repaired_bytes_dropped += size - good_end;
            else
                report->tail_bytes_dropped = size - good_end;
            if (self->verify_only) {
                verify_torn_tail(self, report, path, false);
                rc = 0;
                continue;
            }
            self->segments[self->n_segments - 1].bytes = good_end;
            rc = truncate_segment(self, path, good_end, err);
            continue;
        }
        if (!seq_gap)
            strata_error_set(err, STRATA_ECORRUPT,
                             "%s offset %" PRIu64 ": %s in the middle of the log (last good seq "
                             "%" PRIu64 ")",
                             display_name(path), bad_off, bad_kind, last_good_seq);
        if (self->verify_only) {
            verify_damage(self, r, path, bad_off, bad_kind, err->msg);
            strata_error_clear(err);
            rc = 0;
            continue;
        }
        if (!self->repair)
            break;
        strata_error_clear(err);
        report_tail(report, bad_kind, path, good_end);
        report->repaired_bytes_dropped += size - good_end;
        self->segments[self->n_segments - 1].bytes = good_end;
        rc = truncate_segment(self, path, good_end, err);
        cut = true;
    }
    if (rc == 0 && cut) {
        int sys = self->io->sync_dir(self->io, self->dir);
        if (sys < 0)
            rc = wal_io_fail(err, sys, "sync", self->dir);
    }
    /* Every entry read intact, and still short of what was durable: the
     * end of the newest segment went missing. */
    uint64_t reached = r->expected_seq ? r->expected_seq - 1 : 0;
    bool unknown_reach = r->vanished && !r->expected_seq; /* truncated while read, then nothing */
    if (rc == 0 && state_binds(self) && !self->damage_found && count > 0 && !unknown_reach &&
        newest >= self->state_newest && reached < self->state_reach)
        rc = state_loss(self, r, path ? path : self->dir, 0, "short log", err,
                        "%s: the log ends at seq %" PRIu64 ", but %s/LOGSTATE records seq %" PRIu64
                        " as durable: acknowledged entries are lost",
                        path ? display_name(path) : display_name(self->dir), reached,
                        display_name(self->dir), self->state_reach);
    report->segments = (uint32_t)self->n_segments;
    report->entries_replayed = r->entries_replayed;
    free(next_path);
    free(path);
    free(buf);
    free(numbers);
    return rc;
}

static int count_entry(void *arg, const strata_entry_t *entry)
{
    (void)arg;
    (void)entry;
    return 0;
}

int strata_wal_verify(const char *dir, uint32_t max_entry_bytes, strata_wal_damage_fn on_damage,
                      void *damage_arg, strata_wal_recovery_t *report, strata_error_t *err)
{
    strata_error_clear(err);
    if (!dir)
        return strata_error_set(err, STRATA_EINVAL, "WAL verify needs a dir");
    strata_wal_recovery_t local_report;
    if (!report)
        report = &local_report;
    memset(report, 0, sizeof *report);
    /* Only what wal_recover() reads: no fd, no timer, and verify_only keeps it
     * from writing, truncating, renaming or removing anything. */
    strata_wal_t self = {
        .io = strata_io_posix(),
        .dir = (char *)dir,
        .max_entry_bytes = max_entry_bytes ? max_entry_bytes : ENTRY_DEFAULT_MAX,
        .verify_only = true,
        .on_damage = on_damage,
        .damage_arg = damage_arg,
        .fd = -1,
    };
    pthread_mutex_init(&self.mu, NULL);
    /* The replay callback only makes the scan count what it checked. */
    wal_recover_t r = {.self = &self, .replay = count_entry, .report = report};
    strata_error_t scan_err;
    strata_error_clear(&scan_err);
    /* Read before the listing: a live writer records a new segment only
     * after creating it, so the listing cannot be older than the state. */
    int rc = wal_state_load(&self, &scan_err);
    if (rc && rc != STRATA_ENOMEM) {
        char *state = NULL;
        if (asprintf(&state, "%s/LOGSTATE", dir) >= 0)
            verify_damage(&self, &r, state, 0, "log state", scan_err.msg);
        free(state);
        strata_error_clear(&scan_err);
        rc = 0;
    }
    if (rc == 0)
        rc = wal_recover(&self, &r, &scan_err);
    if (rc == 0 && self.damage_found) {
        rc = STRATA_ECORRUPT;
        scan_err = self.failure;
    }
    if (rc && err)
        *err = scan_err;
    pthread_mutex_destroy(&self.mu);
    free(self.segments);
    free(self.terms);
    return rc;
}
