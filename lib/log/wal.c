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
#include "strata/memtable.h"
#include "wal_format.h"

#define WAL_GROUP_BYTES      (1u << 20) /* soft cap on one group-commit write */
#define WAL_MAX_SEGMENT_FILE (UINT64_C(4) << 30)

#define DEFAULT_SEGMENT_BYTES (UINT64_C(64) << 20)
#define DEFAULT_SYNC_INTERVAL 10u

typedef struct {
    uint64_t number;
    uint64_t first_seq;
    uint64_t bytes;      /* file length: header and entries */
    uint64_t created_ns; /* from its header, for retention by age */
} wal_segment_t;

/* One appender waiting in the queue. Lives on the appender's stack. */
typedef struct wal_writer {
    struct wal_writer *next;
    const strata_wal_op_t *ops;
    size_t n_ops;
    uint8_t *encoded; /* entries with seq/term/time/crc still to be patched */
    size_t encoded_len;
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
    strata_wal_apply_fn apply;
    void *apply_arg;
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

/* ---- encoding ---------------------------------------------------------- */

static uint64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t op_encoded_len(const strata_wal_op_t *op)
{
    return WAL_ENTRY_HEADER + op->topic_len + (size_t)op->key_len + op->value_len;
}

/* Writes an entry with seq, term, time and crc left zero: the leader fills
 * them in once the group's order is fixed. */
static void encode_entry(uint8_t *p, const strata_wal_op_t *op, uint8_t flags)
{
    uint32_t payload = (uint32_t)(op->topic_len + op->key_len + op->value_len);
    memset(p, 0, WAL_ENTRY_HEADER);
    put_u32(p + 4, payload);
    p[8] = op->type;
    p[9] = flags;
    put_u16(p + 10, op->topic_len);
    put_u32(p + 12, op->key_len);
    uint8_t *q = p + WAL_ENTRY_HEADER;
    if (op->topic_len)
        memcpy(q, op->topic, op->topic_len);
    q += op->topic_len;
    if (op->key_len)
        memcpy(q, op->key, op->key_len);
    q += op->key_len;
    if (op->value_len)
        memcpy(q, op->value, op->value_len);
}

static void seal_entry(uint8_t *p, uint64_t seq, uint64_t term, uint64_t ts)
{
    put_u64(p + 16, seq);
    put_u64(p + 24, term);
    put_u64(p + 32, ts);
    uint32_t payload = get_u32(p + 4);
    put_u32(p, strata_crc32c(0, p + 4, WAL_ENTRY_HEADER - 4 + payload));
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

static int segments_push(strata_wal_t *self, uint64_t number, uint64_t first_seq, uint64_t bytes,
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

static int io_fail(strata_error_t *err, int sys_rc, const char *what, const char *path)
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
    int fd = io->open(io, path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        rc = io_fail(err, fd, "create", path);
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
        rc = io_fail(err, sys, "initialise", path);
        io->close(io, fd);
        goto out;
    }
    pthread_mutex_lock(&self->mu);
    rc = segments_push(self, number, first_seq, WAL_HEADER_SIZE, created_ns);
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

typedef struct {
    strata_wal_t *self;
    uint64_t replay_from;
    strata_wal_replay_fn replay;
    void *replay_arg;
    strata_wal_recovery_t *report;
    uint64_t expected_seq; /* seq the next entry must carry; 0 = take the first we see */
    uint64_t entries_replayed;
} recover_t;

bool wal_parse_entry(const uint8_t *p, uint64_t left, uint32_t max_entry, strata_wal_entry_t *e,
                     uint64_t *len, const char **kind)
{
    if (left < WAL_ENTRY_HEADER) {
        bool zero = true;
        for (uint64_t i = 0; i < left && zero; i++)
            zero = p[i] == 0;
        *kind = zero ? "zero fill" : "torn header";
        return false;
    }
    uint32_t payload = get_u32(p + 4);
    uint16_t topic_len = get_u16(p + 10);
    uint32_t key_len = get_u32(p + 12);
    if (get_u64(p) == 0 && get_u64(p + 8) == 0 && get_u64(p + 16) == 0) {
        *kind = "zero fill";
        return false;
    }
    if (payload > max_entry) {
        *kind = "oversize length";
        return false;
    }
    if ((uint64_t)topic_len + key_len > payload) {
        *kind = "bad lengths";
        return false;
    }
    if (WAL_ENTRY_HEADER + (uint64_t)payload > left) {
        *kind = "torn payload";
        return false;
    }
    if (strata_crc32c(0, p + 4, WAL_ENTRY_HEADER - 4 + payload) != get_u32(p)) {
        *kind = "bad crc";
        return false;
    }
    if ((p[8] != STRATA_VALUE_PUT && p[8] != STRATA_VALUE_DELETE) || (p[9] & ~WAL_KNOWN_FLAGS)) {
        *kind = "unknown entry type";
        return false;
    }
    e->type = p[8];
    e->flags = p[9];
    e->seq = get_u64(p + 16);
    e->term = get_u64(p + 24);
    e->timestamp_ns = get_u64(p + 32);
    e->topic_len = topic_len;
    e->key_len = key_len;
    e->value_len = payload - topic_len - key_len;
    e->topic = p + WAL_ENTRY_HEADER;
    e->key = e->topic + topic_len;
    e->value = e->key + key_len;
    *len = WAL_ENTRY_HEADER + (uint64_t)payload;
    return true;
}

/* The cold path after wal_parse_entry said no with kind: a line naming the
 * offending field and its value. Returns the field's offset in the entry. */
static uint32_t describe_damage(const uint8_t *p, uint64_t left, uint32_t max_entry,
                                const char *kind, char *out, size_t out_len)
{
    if (left < WAL_ENTRY_HEADER) {
        snprintf(out, out_len, "%s: entry header has %" PRIu64 " of %u bytes", kind, left,
                 WAL_ENTRY_HEADER);
        return 0;
    }
    uint32_t payload = get_u32(p + 4);
    if (strcmp(kind, "zero fill") == 0) {
        snprintf(out, out_len, "zero fill: crc, payload_len and seq are all zero");
        return 0;
    }
    if (strcmp(kind, "oversize length") == 0) {
        snprintf(out, out_len, "oversize length: payload_len %u is over the cap %u", payload,
                 max_entry);
        return 4;
    }
    if (strcmp(kind, "bad lengths") == 0) {
        snprintf(out, out_len, "bad lengths: topic_len %u + key_len %u exceed payload_len %u",
                 get_u16(p + 10), get_u32(p + 12), payload);
        return 10;
    }
    if (strcmp(kind, "torn payload") == 0) {
        snprintf(out, out_len, "torn payload: payload_len %u, %" PRIu64 " bytes present", payload,
                 left - WAL_ENTRY_HEADER);
        return 4;
    }
    if (strcmp(kind, "bad crc") == 0) {
        snprintf(out, out_len, "bad crc: crc 0x%08x stored, 0x%08x computed", get_u32(p),
                 strata_crc32c(0, p + 4, WAL_ENTRY_HEADER - 4 + payload));
        return 0;
    }
    if (p[8] != STRATA_VALUE_PUT && p[8] != STRATA_VALUE_DELETE) {
        snprintf(out, out_len, "unknown entry type: type %u", p[8]);
        return 8;
    }
    snprintf(out, out_len, "unknown entry type: flags 0x%02x", p[9]);
    return 9;
}

int strata_wal_entry_decode(const uint8_t *buf, size_t len, uint32_t max_entry_bytes,
                            strata_wal_entry_t *entry, size_t *used, strata_error_t *err)
{
    if ((!buf && len) || !entry)
        return strata_error_set(err, STRATA_EINVAL, "entry decode needs a buffer and an entry");
    uint32_t cap = max_entry_bytes ? max_entry_bytes : DEFAULT_MAX_ENTRY_BYTES;
    uint64_t n = 0;
    const char *kind = NULL;
    if (wal_parse_entry(buf, len, cap, entry, &n, &kind)) {
        if (used)
            *used = (size_t)n;
        return 0;
    }
    char detail[160];
    uint32_t field = describe_damage(buf, len, cap, kind, detail, sizeof detail);
    return strata_error_set(err,
                            strcmp(kind, "oversize length") == 0 ? STRATA_ETOOBIG : STRATA_ECORRUPT,
                            "WAL entry offset %u: %s", field, detail);
}

/* After damage at off: does any intact entry with a later seq follow? If so
 * the damage is in the middle of the log, not a torn tail. */
static bool intact_entry_follows(const uint8_t *buf, uint64_t size, uint64_t off,
                                 uint32_t max_entry, uint64_t after_seq)
{
    for (uint64_t p = off + 1; p + WAL_ENTRY_HEADER <= size; p++) {
        strata_wal_entry_t e;
        uint64_t len;
        const char *kind;
        uint32_t payload = get_u32(buf + p + 4);
        if (payload > max_entry || p + WAL_ENTRY_HEADER + payload > size)
            continue;
        if (wal_parse_entry(buf + p, size - p, max_entry, &e, &len, &kind) && e.seq > after_seq)
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
static int scan_segment(recover_t *r, const char *path, const uint8_t *buf, uint64_t size,
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
    strata_wal_entry_t *pending = NULL;
    size_t pending_cap = 0;
    int rc = 0;
    *good_end = off;
    *bad_kind = NULL;
    while (off < size) {
        strata_wal_entry_t e;
        uint64_t len;
        const char *kind;
        if (!wal_parse_entry(buf + off, size - off, self->max_entry_bytes, &e, &len, &kind)) {
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
        if (group_len == pending_cap) {
            size_t cap = pending_cap ? pending_cap * 2 : 16;
            strata_wal_entry_t *grown = realloc(pending, cap * sizeof *grown);
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
        if (e.flags & WAL_FLAG_GROUP_CONT)
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
    return sys < 0 ? io_fail(err, sys, "set aside", path) : 0;
}

/* Cuts a segment back to good_end and makes the cut durable. */
static int truncate_segment(strata_wal_t *self, const char *path, uint64_t good_end,
                            strata_error_t *err)
{
    strata_io_t *io = self->io;
    int fd = io->open(io, path, O_RDWR, 0);
    if (fd < 0)
        return io_fail(err, fd, "open", path);
    int sys = io->ftruncate(io, fd, good_end);
    if (sys == 0)
        sys = io->fdatasync(io, fd);
    io->close(io, fd);
    return sys < 0 ? io_fail(err, sys, "truncate", path) : 0;
}

static void report_tail(strata_wal_recovery_t *report, const char *kind, const char *path,
                        uint64_t offset)
{
    snprintf(report->tail_kind, sizeof report->tail_kind, "%s", kind);
    snprintf(report->tail_file, sizeof report->tail_file, "%s", display_name(path));
    report->tail_offset = offset;
}

/* Reads a whole segment file into *buf (grown as needed). */
static int read_file(strata_wal_t *self, const char *path, uint8_t **buf, size_t *buf_cap,
                     uint64_t *size, strata_error_t *err)
{
    strata_io_t *io = self->io;
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return io_fail(err, fd, "open", path);
    int sys = io->file_size(io, fd, size);
    if (sys < 0) {
        io->close(io, fd);
        return io_fail(err, sys, "stat", path);
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
    return sys < 0 ? io_fail(err, sys, "read", path) : 0;
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
static void verify_damage(strata_wal_t *self, recover_t *r, const char *path, uint64_t offset,
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

/* Recovery walks the segments oldest first. Damage in the newest segment
 * with nothing intact after it is a torn tail: cut and reported. Any other
 * damage is corruption: the open fails naming file, offset and kind, or,
 * with repair, the log keeps its good prefix and the rest is set aside. */
static int recover(strata_wal_t *self, recover_t *r, strata_error_t *err)
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
        rc = read_file(self, path, &buf, &buf_cap, &size, err);
        if (rc && rc != STRATA_ENOMEM && self->verify_only) {
            /* A segment listed and gone since was deleted by a live
             * writer's truncation: the log now starts after it. */
            bool gone = access(path, F_OK) != 0 && errno == ENOENT;
            if (gone)
                r->expected_seq = 0;
            else
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
        if (rc && kind && last &&
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
            rc = sys < 0 ? io_fail(err, sys, "remove", path) : 0;
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
        rc = segments_push(self, numbers[i], first_seq, size, created_ns);
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
            strata_error_clear(err);
            report_tail(report, bad_kind, path, good_end);
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
            rc = io_fail(err, sys, "sync", self->dir);
    }
    report->segments = (uint32_t)self->n_segments;
    report->entries_replayed = r->entries_replayed;
    free(next_path);
    free(path);
    free(buf);
    free(numbers);
    return rc;
}

static int count_entry(void *arg, const strata_wal_entry_t *entry)
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
    /* Only what recover() reads: no fd, no timer, and verify_only keeps it
     * from writing, truncating, renaming or removing anything. */
    strata_wal_t self = {
        .io = strata_io_posix(),
        .dir = (char *)dir,
        .max_entry_bytes = max_entry_bytes ? max_entry_bytes : DEFAULT_MAX_ENTRY_BYTES,
        .verify_only = true,
        .on_damage = on_damage,
        .damage_arg = damage_arg,
        .fd = -1,
    };
    pthread_mutex_init(&self.mu, NULL);
    /* The replay callback only makes the scan count what it checked. */
    recover_t r = {.self = &self, .replay = count_entry, .report = report};
    strata_error_t scan_err;
    strata_error_clear(&scan_err);
    int rc = recover(&self, &r, &scan_err);
    if (rc == 0 && self.damage_found) {
        rc = STRATA_ECORRUPT;
        scan_err = self.failure;
    }
    if (rc && err)
        *err = scan_err;
    pthread_mutex_destroy(&self.mu);
    free(self.segments);
    return rc;
}

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
            seal_entry(entry, seq++, term, ts);
            pos += WAL_ENTRY_HEADER + get_u32(entry + 4);
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

/* Queues w and returns when it has been written by some leader (possibly
 * itself). The lock is held on entry and on return. Leaders follow one
 * another: the next one is woken only after this one has written, synced,
 * applied and moved queue_head, and each takes its seqs under the lock, so
 * apply and on_written run one group at a time, in seq order. */
static void join_queue(strata_wal_t *self, wal_writer_t *w)
{
    w->next = NULL;
    if (self->queue_tail)
        self->queue_tail->next = w;
    else
        self->queue_head = w;
    self->queue_tail = w;
    while (!w->done && self->queue_head != w)
        pthread_cond_wait(&w->cv, &self->mu);
    if (w->done)
        return;

    /* Leader: take everyone queued, up to a soft byte cap. */
    wal_writer_t *last = w;
    size_t bytes = w->encoded_len;
    bool want_sync = w->want_sync;
    uint64_t n_entries = w->n_ops;
    while (last->next && bytes + last->next->encoded_len <= WAL_GROUP_BYTES) {
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
    if (!rc) {
        self->next_seq += n_entries;
        pthread_mutex_unlock(&self->mu);
        rc = write_group(self, w, last, first_seq, term, want_sync, &err);
        if (rc == 0 && self->apply) {
            uint64_t seq = first_seq;
            for (wal_writer_t *x = w;; x = x->next) {
                if (x->n_ops) {
                    self->apply(self->apply_arg, seq, term, x->ops, x->n_ops);
                    seq += x->n_ops;
                }
                if (x == last)
                    break;
            }
        }
        pthread_mutex_lock(&self->mu);
        if (rc) {
            if (!self->failed) {
                self->failed = rc;
                self->failure = err;
            }
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
    self->queue_head = last->next;
    if (!self->queue_head)
        self->queue_tail = NULL;
    else
        pthread_cond_signal(&self->queue_head->cv);
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
        total += op_encoded_len(op);
    }
    /* Encoding happens before taking the lock, so appenders do their
     * copying in parallel and the leader only seals and writes. */
    uint8_t stack_buf[1024];
    uint8_t *encoded = total <= sizeof stack_buf ? stack_buf : malloc(total);
    if (!encoded)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory encoding %zu bytes", total);
    size_t pos = 0;
    for (size_t i = 0; i < n_ops; i++) {
        encode_entry(encoded + pos, &ops[i], i + 1 < n_ops ? WAL_FLAG_GROUP_CONT : 0);
        pos += op_encoded_len(&ops[i]);
    }
    wal_writer_t w = {
        .ops = ops,
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
    self->max_entry_bytes = opts->max_entry_bytes ? opts->max_entry_bytes : DEFAULT_MAX_ENTRY_BYTES;
    self->sync_interval_ms =
        opts->async_sync_interval_ms ? opts->async_sync_interval_ms : DEFAULT_SYNC_INTERVAL;
    self->repair = opts->repair;
    self->term = opts->term;
    self->apply = opts->apply;
    self->apply_arg = opts->apply_arg;
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
        rc = io_fail(err, sys, "create directory", self->dir);
        goto fail;
    }
    recover_t r = {
        .self = self,
        .replay_from = replay_from,
        .replay = replay,
        .replay_arg = replay_arg,
        .report = report,
    };
    rc = recover(self, &r, err);
    if (rc)
        goto fail;
    self->next_seq = r.expected_seq ? r.expected_seq : (opts->first_seq ? opts->first_seq : 1);
    atomic_store(&self->last_seq, self->next_seq - 1);
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
            rc = io_fail(err, sys, "open", path);
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
            rc = io_fail(err, sys, "sync the parent of", self->dir);
            goto fail;
        }
        rc = segment_create(self, 1, self->next_seq, err);
        if (rc)
            goto fail;
    }
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
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "trim active segment: %s", strerror(-sys));
    }
    wal_free(self);
    return rc;
}

/* ---- accessors and maintenance ---------------------------------------- */

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
            rc = io_fail(err, sys, "delete", path ? path : self->dir);
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
            rc = io_fail(err, sys, "sync", self->dir);
    }
    if (deleted)
        *deleted = count;
    return rc;
}
