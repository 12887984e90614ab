/* The node's shared-memory ring: the writer copies each committed WAL entry
 * into one file in /dev/shm, and reader processes (the distributor's live
 * tier) read the entries in place, each with its own cursor, without ever
 * slowing the writer down. Format and protocol: lib/log/ring.md. */
#define _GNU_SOURCE
#include "strata/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "coding.h"
#include "entry.h"

#define RING_MAGIC            "STRATARG"
#define RING_VERSION          1u
#define RING_HEADER_SIZE      4096u
#define RING_MIN_CAPACITY     (UINT64_C(64) << 10)
#define RING_MAX_CAPACITY     (UINT64_C(8) << 30)
#define RING_DEFAULT_CAPACITY (UINT64_C(64) << 20)
#define RING_DEFAULT_SPIN_US  50u

#define OFF_MAGIC        0
#define OFF_VERSION      8
#define OFF_HEADER_SIZE  12
#define OFF_CAPACITY     16
#define OFF_RING_ID      24
#define OFF_CREATED_NS   32
#define OFF_PRODUCER_PID 40
#define OFF_FIRST_SEQ    48
#define OFF_SHARED       64

#define RECORD_HEADER      8u
#define RECORD_ENTRY       1u
#define RECORD_PAD         2u
#define RECORD_OVERSIZE    3u
#define OVERSIZE_TOPIC_MAX 4096u /* an oversize marker carries the topic up to this */

/* A waiting reader wakes at least this often to re-check the file, so a ring
 * whose producer died and whose file was replaced or removed without waking
 * it is still noticed. */
#define WAIT_SLICE_NS (UINT64_C(250) * 1000000)
/* How often a reader without write access (no futex) polls head. */
#define POLL_INTERVAL_NS (UINT64_C(1000000))

/* next()'s internal "read up to head and found nothing to deliver". */
#define RING_DRAINED 1

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the header's atomics are in host order, which ring.md fixes as little-endian");

/* The header's shared, changing part. Fields sit on cache lines by writer:
 * publish writes the first, overwrites the second, the producer's wake-ups
 * the third, and the fourth is the only one readers write. */
typedef struct {
    _Alignas(64) _Atomic uint64_t head; /* byte position published */
    _Atomic uint64_t published_seq;
    _Alignas(64) _Atomic uint64_t tail; /* oldest byte position still intact */
    _Atomic uint64_t oldest_seq;
    _Alignas(64) _Atomic uint32_t wake; /* the futex word: bumped on publish and close */
    _Atomic uint32_t closed;
    _Alignas(64) _Atomic uint32_t waiters;
} ring_shared_t;

_Static_assert(OFF_SHARED + offsetof(ring_shared_t, head) == 64, "head at 64");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, published_seq) == 72, "published_seq at 72");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, tail) == 128, "tail at 128");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, oldest_seq) == 136, "oldest_seq at 136");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, wake) == 192, "wake at 192");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, closed) == 196, "closed at 196");
_Static_assert(OFF_SHARED + offsetof(ring_shared_t, waiters) == 256, "waiters at 256");
_Static_assert(OFF_SHARED + sizeof(ring_shared_t) <= RING_HEADER_SIZE, "header fits a page");

struct strata_ring {
    char *path;
    uint8_t *map;
    uint64_t map_len;
    uint8_t *data;
    uint64_t capacity;
    ring_shared_t *shared;
    dev_t dev; /* close unlinks path only while it is still this file */
    ino_t ino;

    pthread_mutex_t mu;
    /* Everything below is guarded by mu. */
    uint64_t write_pos;    /* where the next record goes */
    uint64_t tail;         /* the producer's copy of shared->tail */
    uint64_t next_seq;     /* the seq the next appended entry must carry */
    uint64_t durable_upto; /* the largest upto publish was given */
    /* End position of each appended, unpublished entry, oldest first: the
     * entry at index i has seq next_seq - ends_count + i. A circular buffer;
     * publish turns a seq into the position head must reach with it. */
    uint64_t *ends;
    size_t ends_cap;
    size_t ends_start;
    size_t ends_count;
};

struct strata_ring_reader {
    char *path;
    uint8_t *map; /* the whole file, read-only */
    uint64_t map_len;
    uint8_t *header_rw;       /* the header page again, writable; NULL: poll, no futex */
    ring_shared_t *shared;    /* in map */
    ring_shared_t *shared_rw; /* in header_rw, for waiters and FUTEX_WAIT */
    const uint8_t *data;
    uint64_t capacity;
    uint64_t first_seq;
    uint64_t ring_id;
    uint64_t created_ns;
    uint32_t producer_pid;
    dev_t dev;
    ino_t ino;
    char **prefixes;
    size_t *prefix_lens;
    size_t n_prefixes;
    uint64_t spin_ns;

    uint64_t pos;      /* the record next() reads next */
    uint64_t next_seq; /* the seq of the record at pos; 0 until a record there is read */
    uint64_t min_seq;  /* records below it are skipped (seek past what is published) */
    bool lapped;       /* sticky until a seek succeeds */
    bool has_last;
    uint64_t last_pos; /* the record next() returned last, for intact() */
};

/* ---- helpers shared by both sides ------------------------------------- */

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
                          .tv_nsec = (long)(timeout_ns % 1000000000ull)};
    /* Not FUTEX_PRIVATE_FLAG: the producer wakes from another process. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static bool capacity_valid(uint64_t capacity)
{
    return capacity >= RING_MIN_CAPACITY && capacity <= RING_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

static uint64_t record_size(uint64_t body_len)
{
    return RECORD_HEADER + ((body_len + 7) & ~UINT64_C(7));
}

static void put_record_header(uint8_t *p, uint32_t body_len, uint16_t kind)
{
    put_u32(p, body_len);
    put_u16(p + 4, kind);
    put_u16(p + 6, 0);
}

typedef struct {
    uint16_t kind;
    uint64_t span; /* bytes from this record to the next */
    const uint8_t *wal;
    uint64_t entry_len; /* the whole entry's size, in the ring or not */
    strata_entry_t entry;
    bool wanted; /* an entry or marker that passes the reader's topic filter */
} ring_record_t;

/* Decodes the record at pos. Every length is checked against the data area
 * before it is followed: a reader may be looking at bytes the producer is
 * overwriting, so nothing here is trusted until the caller re-checks tail. */
static bool record_decode(const uint8_t *data, uint64_t capacity, uint64_t pos, ring_record_t *rec)
{
    uint64_t index = pos & (capacity - 1);
    uint64_t room = capacity - index;
    const uint8_t *p = data + index;
    uint32_t body_len = get_u32(p);
    *rec = (ring_record_t){.kind = get_u16(p + 4)};
    if (rec->kind == RECORD_PAD) {
        rec->span = room;
        return true;
    }
    if (rec->kind != RECORD_ENTRY && rec->kind != RECORD_OVERSIZE)
        return false;
    if (body_len < ENTRY_HEADER || RECORD_HEADER + (uint64_t)body_len > room)
        return false;
    const uint8_t *wal = p + RECORD_HEADER;
    uint32_t payload = entry_payload_len(wal);
    uint16_t topic_len = entry_topic_len(wal);
    uint32_t key_len = entry_key_len(wal);
    if ((uint64_t)topic_len + key_len > payload)
        return false;
    uint64_t whole_len = entry_len(wal);
    bool whole = rec->kind == RECORD_ENTRY;
    bool topic_carried = true;
    if (whole) {
        if (whole_len != body_len)
            return false;
    } else {
        topic_carried = body_len == ENTRY_HEADER + topic_len;
        bool topic_dropped = body_len == ENTRY_HEADER && topic_len > OVERSIZE_TOPIC_MAX;
        if (whole_len <= capacity / 4 || !(topic_carried || topic_dropped))
            return false;
    }
    rec->span = record_size(body_len);
    rec->wal = wal;
    rec->entry_len = whole_len;
    entry_header_decode(wal, topic_carried, whole, &rec->entry);
    return true;
}

/* ---- producer ---------------------------------------------------------- */

static int sys_fail(strata_error_t *err, const char *what, const char *path)
{
    return strata_error_set(err, STRATA_EIO, "ring %s: %s: %s", path, what, strerror(errno));
}

static uint64_t random_ring_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id || id == 0) {
        /* Early boot without entropy: unique enough to tell rings apart. */
        id = now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32) ^ now_ns(CLOCK_MONOTONIC);
    }
    return id;
}

static void write_header(uint8_t *h, uint64_t capacity, uint64_t ring_id, uint64_t first_seq)
{
    memcpy(h + OFF_MAGIC, RING_MAGIC, 8);
    put_u32(h + OFF_VERSION, RING_VERSION);
    put_u32(h + OFF_HEADER_SIZE, RING_HEADER_SIZE);
    put_u64(h + OFF_CAPACITY, capacity);
    put_u64(h + OFF_RING_ID, ring_id);
    put_u64(h + OFF_CREATED_NS, now_ns(CLOCK_REALTIME));
    put_u32(h + OFF_PRODUCER_PID, (uint32_t)getpid());
    put_u64(h + OFF_FIRST_SEQ, first_seq);
}

/* Marks the ring a create() just replaced as closed and wakes its readers,
 * so they notice at once instead of at their next periodic check. Best
 * effort: old_fd may not be a ring at all. */
static void retire_replaced(int old_fd)
{
    struct stat st;
    uint8_t h[16];
    if (fstat(old_fd, &st) != 0 || st.st_size < (off_t)RING_HEADER_SIZE ||
        pread(old_fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, RING_MAGIC, 8) != 0 ||
        get_u32(h + OFF_VERSION) != RING_VERSION)
        return;
    uint8_t *map = mmap(NULL, RING_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, old_fd, 0);
    if (map == MAP_FAILED)
        return;
    ring_shared_t *shared = (ring_shared_t *)(map + OFF_SHARED);
    atomic_store_explicit(&shared->closed, 1, memory_order_release);
    atomic_fetch_add_explicit(&shared->wake, 1, memory_order_seq_cst);
    futex_wake_all(&shared->wake);
    munmap(map, RING_HEADER_SIZE);
}

static void ring_free(strata_ring_t *self)
{
    if (!self)
        return;
    if (self->map)
        munmap(self->map, self->map_len);
    pthread_mutex_destroy(&self->mu);
    free(self->ends);
    free(self->path);
    free(self);
}

int strata_ring_create(const char *path, const strata_ring_options_t *opts, strata_ring_t **ring_p,
                       strata_error_t *err)
{
    strata_error_clear(err);
    if (!path || !ring_p)
        return strata_error_set(err, STRATA_EINVAL, "ring create needs a path and a result");
    *ring_p = NULL;
    uint64_t capacity = opts && opts->capacity_bytes ? opts->capacity_bytes : RING_DEFAULT_CAPACITY;
    if (!capacity_valid(capacity))
        return strata_error_set(err, STRATA_EINVAL,
                                "ring %s: capacity_bytes %" PRIu64
                                " is not a power of two from 64 KiB to 8 GiB",
                                path, capacity);
    uint64_t first_seq = opts && opts->first_seq ? opts->first_seq : 1;

    strata_ring_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    pthread_mutex_init(&self->mu, NULL);
    self->path = strdup(path);
    self->ends_cap = 1024;
    self->ends = malloc(self->ends_cap * sizeof *self->ends);
    uint64_t ring_id = random_ring_id();
    char *tmp = NULL;
    if (!self->path || !self->ends ||
        asprintf(&tmp, "%s.tmp-%d-%016" PRIx64, path, (int)getpid(), ring_id) < 0) {
        ring_free(self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }

    int rc = 0;
    int old_fd = -1;
    self->map_len = RING_HEADER_SIZE + capacity;
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = sys_fail(err, "create temporary file", tmp);
        goto fail;
    }
    if (ftruncate(fd, (off_t)self->map_len) != 0) {
        rc = sys_fail(err, "size", tmp);
        goto fail;
    }
    /* Reserve the pages now: on a full tmpfs a later page fault would be a
     * SIGBUS in the middle of an append. */
    int sys = posix_fallocate(fd, 0, (off_t)self->map_len);
    if (sys != 0 && sys != EOPNOTSUPP && sys != EINVAL) {
        errno = sys;
        rc = sys_fail(err, "reserve space", tmp);
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sys_fail(err, "stat", tmp);
        goto fail;
    }
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    void *map = mmap(NULL, self->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = sys_fail(err, "map", tmp);
        goto fail;
    }
    self->map = map;
    self->data = self->map + RING_HEADER_SIZE;
    self->capacity = capacity;
    self->shared = (ring_shared_t *)(self->map + OFF_SHARED);
    self->next_seq = first_seq;
    write_header(self->map, capacity, ring_id, first_seq);

    old_fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (rename(tmp, path) != 0) {
        rc = sys_fail(err, "rename temporary file over it", path);
        goto fail;
    }
    if (old_fd >= 0) {
        retire_replaced(old_fd);
        close(old_fd);
    }
    close(fd);
    free(tmp);
    *ring_p = self;
    return 0;

fail:
    if (old_fd >= 0)
        close(old_fd);
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    ring_free(self);
    return rc;
}

/* Walks the WAL entries of one append call before anything is copied, so a
 * malformed call writes nothing. *count gets the number of entries. */
static int check_entries(const strata_ring_t *self, const uint8_t *entries, size_t len,
                         size_t *count, strata_error_t *err)
{
    uint64_t expected = self->next_seq;
    size_t off = 0;
    size_t n = 0;
    while (off < len) {
        if (len - off < ENTRY_HEADER)
            return strata_error_set(err, STRATA_EINVAL,
                                    "ring append: offset %zu: %zu bytes left, less than an entry "
                                    "header",
                                    off, len - off);
        const uint8_t *p = entries + off;
        uint32_t payload = entry_payload_len(p);
        uint64_t seq = entry_seq(p);
        if ((uint64_t)entry_topic_len(p) + entry_key_len(p) > payload)
            return strata_error_set(err, STRATA_EINVAL,
                                    "ring append: offset %zu: topic and key lengths exceed "
                                    "payload_len %" PRIu32,
                                    off, payload);
        if ((uint64_t)payload > len - off - ENTRY_HEADER)
            return strata_error_set(err, STRATA_EINVAL,
                                    "ring append: offset %zu: payload_len %" PRIu32
                                    " runs past the %zu bytes given",
                                    off, payload, len);
        if (seq != expected)
            return strata_error_set(err, STRATA_EINVAL,
                                    "ring append: offset %zu: seq %" PRIu64 ", expected %" PRIu64,
                                    off, seq, expected);
        expected++;
        n++;
        off += ENTRY_HEADER + (size_t)payload;
    }
    *count = n;
    return 0;
}

static int ends_reserve(strata_ring_t *self, size_t more, strata_error_t *err)
{
    if (self->ends_count + more <= self->ends_cap)
        return 0;
    size_t cap = self->ends_cap;
    while (cap < self->ends_count + more)
        cap *= 2;
    uint64_t *grown = malloc(cap * sizeof *grown);
    if (!grown)
        return strata_error_set(err, STRATA_ENOMEM, "ring %s: out of memory", self->path);
    for (size_t i = 0; i < self->ends_count; i++)
        grown[i] = self->ends[(self->ends_start + i) % self->ends_cap];
    free(self->ends);
    self->ends = grown;
    self->ends_cap = cap;
    self->ends_start = 0;
    return 0;
}

/* The producer's own records need no checking, only walking. */
static uint64_t record_span(const strata_ring_t *self, uint64_t pos)
{
    const uint8_t *p = self->data + (pos & (self->capacity - 1));
    if (get_u16(p + 4) == RECORD_PAD)
        return self->capacity - (pos & (self->capacity - 1));
    return record_size(get_u32(p));
}

/* Moves tail forward, whole records at a time, until the bytes below end
 * are free to overwrite. */
static void retire_below(strata_ring_t *self, uint64_t end)
{
    if (end <= self->tail + self->capacity)
        return;
    uint64_t tail = self->tail;
    while (tail + self->capacity < end)
        tail += record_span(self, tail);
    self->tail = tail;
    atomic_store_explicit(&self->shared->tail, tail, memory_order_relaxed);
    /* The seqlock's write side: a reader that sees any byte written after
     * this fence also sees the new tail when it re-checks, and so discards
     * what it read. */
    atomic_thread_fence(memory_order_release);
}

/* Where a record of size bytes goes, after a pad record when it would not
 * fit before the end of the data area; everything it covers is behind tail
 * when this returns. */
static uint8_t *reserve(strata_ring_t *self, uint64_t size)
{
    uint64_t mask = self->capacity - 1;
    uint64_t room = self->capacity - (self->write_pos & mask);
    uint64_t pad = room < size ? room : 0;
    retire_below(self, self->write_pos + pad + size);
    if (pad) {
        put_record_header(self->data + (self->write_pos & mask), 0, RECORD_PAD);
        self->write_pos += pad;
    }
    return self->data + (self->write_pos & mask);
}

static void write_entry(strata_ring_t *self, const uint8_t *entry, uint64_t entry_len)
{
    uint16_t kind = RECORD_ENTRY;
    uint64_t body_len = entry_len;
    if (entry_len > self->capacity / 4) {
        /* Copying it would evict a quarter of the ring for one entry; readers
         * fetch it from the log instead. The marker keeps the header and, when
         * short enough, the topic, so readers can still filter on it. */
        uint16_t topic_len = entry_topic_len(entry);
        kind = RECORD_OVERSIZE;
        body_len = ENTRY_HEADER + (topic_len <= OVERSIZE_TOPIC_MAX ? topic_len : 0);
    }
    uint64_t size = record_size(body_len);
    uint8_t *p = reserve(self, size);
    put_record_header(p, (uint32_t)body_len, kind);
    memcpy(p + RECORD_HEADER, entry, body_len);
    self->write_pos += size;
}

static void wake_readers(ring_shared_t *shared)
{
    /* seq_cst here and on the reader's waiters increment: either this load
     * sees the reader's waiters, or the reader's FUTEX_WAIT sees the new wake
     * word and returns at once. Either way no wake-up is lost. */
    atomic_fetch_add_explicit(&shared->wake, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&shared->waiters, memory_order_seq_cst) != 0)
        futex_wake_all(&shared->wake);
}

/* Moves head over every appended entry with seq <= durable_upto. mu held. */
static void publish_locked(strata_ring_t *self)
{
    uint64_t first_unpublished = self->next_seq - self->ends_count;
    if (self->ends_count == 0 || self->durable_upto < first_unpublished)
        return;
    uint64_t last = self->durable_upto < self->next_seq ? self->durable_upto : self->next_seq - 1;
    size_t n = (size_t)(last - first_unpublished + 1);
    uint64_t head = self->ends[(self->ends_start + n - 1) % self->ends_cap];
    self->ends_start = (self->ends_start + n) % self->ends_cap;
    self->ends_count -= n;
    /* published_seq before head: a reader that loads head and then
     * published_seq knows the entry at head has a seq <= published_seq + 1,
     * which is what lets it wait at head for a later seq. */
    atomic_store_explicit(&self->shared->published_seq, last, memory_order_release);
    atomic_store_explicit(&self->shared->head, head, memory_order_release);
    wake_readers(self->shared);
}

int strata_ring_append(strata_ring_t *self, const uint8_t *entries, size_t len, strata_error_t *err)
{
    strata_error_clear(err);
    if (!self || !entries || len == 0)
        return strata_error_set(err, STRATA_EINVAL, "ring append needs at least one entry");
    pthread_mutex_lock(&self->mu);
    size_t count = 0;
    int rc = check_entries(self, entries, len, &count, err);
    if (rc == 0)
        rc = ends_reserve(self, count, err);
    if (rc == 0) {
        for (size_t off = 0; off < len;) {
            uint64_t len_here = entry_len(entries + off);
            write_entry(self, entries + off, len_here);
            self->ends[(self->ends_start + self->ends_count++) % self->ends_cap] = self->write_pos;
            off += (size_t)len_here;
        }
        self->next_seq += count;
        uint64_t oldest = self->tail;
        if (get_u16(self->data + (oldest & (self->capacity - 1)) + 4) == RECORD_PAD)
            oldest += record_span(self, oldest);
        const uint8_t *wal = self->data + (oldest & (self->capacity - 1)) + RECORD_HEADER;
        atomic_store_explicit(&self->shared->oldest_seq, entry_seq(wal), memory_order_relaxed);
        /* An earlier publish may already cover these (durable before the
         * ring saw them). */
        publish_locked(self);
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

void strata_ring_publish(strata_ring_t *self, uint64_t upto)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    if (upto > self->durable_upto) {
        self->durable_upto = upto;
        publish_locked(self);
    }
    pthread_mutex_unlock(&self->mu);
}

uint64_t strata_ring_published_seq(const strata_ring_t *self)
{
    return self ? atomic_load_explicit(&self->shared->published_seq, memory_order_acquire) : 0;
}

void strata_ring_close(strata_ring_t **ring_p, bool unlink_file)
{
    if (!ring_p || !*ring_p)
        return;
    strata_ring_t *self = *ring_p;
    pthread_mutex_lock(&self->mu);
    atomic_store_explicit(&self->shared->closed, 1, memory_order_release);
    wake_readers(self->shared);
    pthread_mutex_unlock(&self->mu);
    /* Never remove a newer ring another create() has put at path. */
    struct stat st;
    if (unlink_file && stat(self->path, &st) == 0 && st.st_dev == self->dev &&
        st.st_ino == self->ino)
        unlink(self->path);
    ring_free(self);
    *ring_p = NULL;
}

/* ---- reader ------------------------------------------------------------ */

static void reader_free(strata_ring_reader_t *self)
{
    if (!self)
        return;
    if (self->map)
        munmap(self->map, self->map_len);
    if (self->header_rw)
        munmap(self->header_rw, RING_HEADER_SIZE);
    for (size_t i = 0; i < self->n_prefixes; i++)
        free(self->prefixes[i]);
    free(self->prefixes);
    free(self->prefix_lens);
    free(self->path);
    free(self);
}

/* Checks the header read from the file before anything is mapped. */
static int check_header(strata_ring_reader_t *self, const uint8_t *h, uint64_t file_size,
                        strata_error_t *err)
{
    const char *path = self->path;
    if (file_size < RING_HEADER_SIZE)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "ring %s: file size %" PRIu64 " is less than the %u-byte header",
                                path, file_size, RING_HEADER_SIZE);
    if (memcmp(h + OFF_MAGIC, RING_MAGIC, 8) != 0)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "ring %s: offset 0: bad magic, not a Strata ring file", path);
    uint32_t version = get_u32(h + OFF_VERSION);
    if (version != RING_VERSION)
        return strata_error_set(err, STRATA_EVERSION,
                                "ring %s: offset 8: ring format version %" PRIu32
                                ", this build reads %u",
                                path, version, RING_VERSION);
    uint32_t header_size = get_u32(h + OFF_HEADER_SIZE);
    if (header_size != RING_HEADER_SIZE)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "ring %s: offset 12: header size %" PRIu32 ", expected %u", path,
                                header_size, RING_HEADER_SIZE);
    uint64_t capacity = get_u64(h + OFF_CAPACITY);
    if (!capacity_valid(capacity))
        return strata_error_set(err, STRATA_ECORRUPT,
                                "ring %s: offset 16: capacity %" PRIu64
                                " is not a power of two from 64 KiB to 8 GiB",
                                path, capacity);
    if (file_size != RING_HEADER_SIZE + capacity)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "ring %s: file size %" PRIu64 ", expected %u + capacity %" PRIu64
                                " (truncated?)",
                                path, file_size, RING_HEADER_SIZE, capacity);
    self->capacity = capacity;
    self->ring_id = get_u64(h + OFF_RING_ID);
    self->created_ns = get_u64(h + OFF_CREATED_NS);
    self->producer_pid = get_u32(h + OFF_PRODUCER_PID);
    self->first_seq = get_u64(h + OFF_FIRST_SEQ);
    return 0;
}

static int copy_prefixes(strata_ring_reader_t *self, const strata_ring_reader_options_t *opts,
                         strata_error_t *err)
{
    if (!opts || opts->n_topics == 0)
        return 0;
    if (!opts->topics)
        return strata_error_set(err, STRATA_EINVAL, "ring %s: n_topics %zu but no topics",
                                self->path, opts->n_topics);
    self->prefixes = calloc(opts->n_topics, sizeof *self->prefixes);
    self->prefix_lens = calloc(opts->n_topics, sizeof *self->prefix_lens);
    if (!self->prefixes || !self->prefix_lens)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    for (size_t i = 0; i < opts->n_topics; i++) {
        if (!opts->topics[i])
            return strata_error_set(err, STRATA_EINVAL, "ring %s: topic prefix %zu is NULL",
                                    self->path, i);
        self->prefixes[i] = strdup(opts->topics[i]);
        if (!self->prefixes[i])
            return strata_error_set(err, STRATA_ENOMEM, "out of memory");
        self->prefix_lens[i] = strlen(self->prefixes[i]);
        self->n_prefixes = i + 1;
    }
    return 0;
}

static bool topic_wanted(const strata_ring_reader_t *self, const strata_entry_t *e)
{
    bool system = e->topic && e->topic_len > 0 && e->topic[0] == '$';
    if (self->n_prefixes == 0)
        return !system;
    if (!e->topic && e->topic_len) /* an oversize marker whose topic was too long to carry */
        return true;
    /* A write without a topic is published as "kv" (proto/DISTRIBUTION.md); filter
     * it under that name so a ring reader and a remote one agree. */
    const uint8_t *topic = e->topic_len ? e->topic : (const uint8_t *)"kv";
    size_t topic_len = e->topic_len ? e->topic_len : 2;
    for (size_t i = 0; i < self->n_prefixes; i++) {
        size_t len = self->prefix_lens[i];
        const char *prefix = self->prefixes[i];
        if (len <= topic_len && memcmp(topic, prefix, len) == 0 && (!system || prefix[0] == '$'))
            return true;
    }
    return false;
}

static void position(strata_ring_reader_t *self, uint64_t pos, uint64_t next_seq, uint64_t min_seq)
{
    self->pos = pos;
    self->next_seq = next_seq;
    self->min_seq = min_seq;
    self->lapped = false;
    self->has_last = false;
}

static int lapped_at(strata_ring_reader_t *self, uint64_t needed_seq)
{
    self->lapped = true;
    self->next_seq = 0;
    self->min_seq = needed_seq;
    return STRATA_ELAPPED;
}

static int lapped(strata_ring_reader_t *self)
{
    return lapped_at(self, strata_ring_reader_next_seq(self));
}

static uint64_t seq_after(const strata_ring_reader_t *self, uint64_t published)
{
    return published ? published + 1 : self->first_seq;
}

/* The seqlock's read side: decodes the record at pos and decides the filter,
 * then re-checks tail. Any of those bytes may have been mid-overwrite, so
 * the result counts only if tail is still at or behind the record:
 * STRATA_ELAPPED if not, else 0, or STRATA_ECORRUPT for a malformed one. */
static int record_read(const strata_ring_reader_t *self, uint64_t pos, ring_record_t *rec)
{
    bool ok = record_decode(self->data, self->capacity, pos, rec);
    rec->wanted = ok && rec->kind != RECORD_PAD && topic_wanted(self, &rec->entry);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&self->shared->tail, memory_order_relaxed) > pos)
        return STRATA_ELAPPED;
    return ok ? 0 : STRATA_ECORRUPT;
}

/* Positions the cursor on the record with seq target (the oldest record when
 * target is 0), scanning from tail, or at head to wait when target is not
 * published yet. STRATA_ELAPPED when target is no longer in the ring. */
static int locate(strata_ring_reader_t *self, uint64_t target)
{
    /* head, then published_seq (stored in the other order): the entry at
     * head has a seq <= published + 1. */
    uint64_t head = atomic_load_explicit(&self->shared->head, memory_order_acquire);
    uint64_t published = atomic_load_explicit(&self->shared->published_seq, memory_order_acquire);
    if (target != 0 && target >= seq_after(self, published)) {
        position(self, head, 0, target);
        return 0;
    }
    if (target != 0 && target < self->first_seq)
        return lapped_at(self, target);
    for (;;) {
        uint64_t pos = atomic_load_explicit(&self->shared->tail, memory_order_acquire);
        uint64_t seq_at_pos = 0;
        bool restart = false;
        while (pos < head) {
            ring_record_t rec;
            int rc = record_read(self, pos, &rec);
            if (rc == STRATA_ELAPPED) {
                restart = true; /* overwritten while we scanned: from the new tail */
                break;
            }
            if (rc)
                return rc;
            if (rec.kind != RECORD_PAD) {
                if (target == 0 || rec.entry.seq == target) {
                    position(self, pos, rec.entry.seq, rec.entry.seq);
                    return 0;
                }
                if (rec.entry.seq > target)
                    return lapped_at(self, target);
                seq_at_pos = rec.entry.seq + 1;
            }
            pos += rec.span;
        }
        if (restart)
            continue;
        if (seq_at_pos) { /* published since we loaded head: wait at head */
            position(self, head, seq_at_pos, target);
            return 0;
        }
        if (target == 0) { /* nothing published is left: the oldest is the next */
            position(self, head, 0, seq_after(self, published));
            return 0;
        }
        return lapped_at(self, target);
    }
}

int strata_ring_reader_open(const char *path, const strata_ring_reader_options_t *opts,
                            strata_ring_reader_t **reader_p, strata_error_t *err)
{
    strata_error_clear(err);
    if (!path || !reader_p)
        return strata_error_set(err, STRATA_EINVAL, "ring reader open needs a path and a result");
    *reader_p = NULL;
    strata_ring_reader_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->path = strdup(path);
    if (!self->path) {
        free(self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    uint32_t spin_us = opts && opts->spin_us ? opts->spin_us : RING_DEFAULT_SPIN_US;
    self->spin_ns = (uint64_t)spin_us * 1000;
    int rc = copy_prefixes(self, opts, err);
    if (rc) {
        reader_free(self);
        return rc;
    }

    /* Write access is only for the waiters count; without it we poll. */
    bool writable = true;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
        writable = false;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = sys_fail(err, "open", path);
        reader_free(self);
        return rc;
    }
    struct stat st;
    uint8_t header[64];
    if (fstat(fd, &st) != 0) {
        rc = sys_fail(err, "stat", path);
        goto out;
    }
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    memset(header, 0, sizeof header);
    if (pread(fd, header, sizeof header, 0) < 0) {
        rc = sys_fail(err, "read header", path);
        goto out;
    }
    rc = check_header(self, header, (uint64_t)st.st_size, err);
    if (rc)
        goto out;
    self->map_len = RING_HEADER_SIZE + self->capacity;
    void *map = mmap(NULL, self->map_len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = sys_fail(err, "map", path);
        goto out;
    }
    self->map = map;
    self->data = self->map + RING_HEADER_SIZE;
    self->shared = (ring_shared_t *)(self->map + OFF_SHARED);
    if (writable) {
        void *rw = mmap(NULL, RING_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (rw != MAP_FAILED) {
            self->header_rw = rw;
            self->shared_rw = (ring_shared_t *)(self->header_rw + OFF_SHARED);
        }
    }

    strata_ring_start_t start = opts ? opts->start : STRATA_RING_FROM_NEWEST;
    if (start == STRATA_RING_FROM_NEWEST) {
        uint64_t head = atomic_load_explicit(&self->shared->head, memory_order_acquire);
        uint64_t published =
            atomic_load_explicit(&self->shared->published_seq, memory_order_acquire);
        position(self, head, 0, seq_after(self, published));
    } else if (start == STRATA_RING_FROM_OLDEST) {
        rc = locate(self, 0);
        if (rc)
            strata_error_set(err, rc, "ring %s: malformed record while finding the oldest", path);
    } else if (start == STRATA_RING_FROM_SEQ && opts->from_seq != 0) {
        rc = locate(self, opts->from_seq);
        if (rc == STRATA_ELAPPED) {
            strata_ring_info_t info;
            strata_ring_reader_info(self, &info);
            strata_error_set(
                err, rc, "ring %s: seq %" PRIu64 " is no longer in the ring (oldest %" PRIu64 ")",
                path, opts->from_seq, info.oldest_seq);
        } else if (rc) {
            strata_error_set(err, rc, "ring %s: malformed record while seeking seq %" PRIu64, path,
                             opts->from_seq);
        }
    } else {
        rc = strata_error_set(err, STRATA_EINVAL, "ring %s: bad start %d (from_seq %" PRIu64 ")",
                              path, (int)start, opts->from_seq);
    }
out:
    close(fd); /* the mappings keep the file */
    if (rc) {
        reader_free(self);
        return rc;
    }
    *reader_p = self;
    return 0;
}

/* Reads records from pos up to head. Returns 0 or STRATA_ETOOBIG with the
 * record delivered, RING_DRAINED when nothing up to head passed the filter,
 * or STRATA_ELAPPED / STRATA_ECORRUPT. */
static int read_published(strata_ring_reader_t *self, uint64_t head, strata_entry_t *entry,
                          const uint8_t **raw, size_t *raw_len)
{
    while (self->pos < head) {
        if (atomic_load_explicit(&self->shared->tail, memory_order_acquire) > self->pos)
            return lapped(self);
        ring_record_t rec;
        int rc = record_read(self, self->pos, &rec);
        if (rc == STRATA_ELAPPED)
            return lapped(self);
        if (rc)
            return rc;
        if (rec.kind == RECORD_PAD) {
            self->pos += rec.span;
            continue;
        }
        /* Seqs are gap-free; before the first record read at a position
         * (next_seq 0) the cursor only knows an upper bound, min_seq. */
        if (self->next_seq ? rec.entry.seq != self->next_seq : rec.entry.seq > self->min_seq)
            return STRATA_ECORRUPT;
        self->next_seq = rec.entry.seq;
        if (!rec.wanted || rec.entry.seq < self->min_seq) {
            self->pos += rec.span;
            self->next_seq++;
            continue;
        }
        if (entry)
            *entry = rec.entry;
        if (raw)
            *raw = rec.kind == RECORD_ENTRY ? rec.wal : NULL;
        if (raw_len)
            *raw_len = (size_t)rec.entry_len;
        self->has_last = true;
        self->last_pos = self->pos;
        if (rec.kind == RECORD_OVERSIZE)
            return STRATA_ETOOBIG; /* the cursor stays on it until a seek */
        self->pos += rec.span;
        self->next_seq++;
        return 0;
    }
    return RING_DRAINED;
}

/* The ring file at path is no longer the one mapped: replaced or removed. */
static bool file_replaced(const strata_ring_reader_t *self)
{
    struct stat st;
    if (stat(self->path, &st) != 0)
        return errno == ENOENT;
    return st.st_dev != self->dev || st.st_ino != self->ino;
}

/* Busy-waits up to spin_ns for head to move: cheaper than a futex round
 * trip while the producer publishes steadily. */
static void spin_for_head(const strata_ring_reader_t *self, uint64_t spin_ns)
{
    uint64_t start = now_ns(CLOCK_MONOTONIC);
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&self->shared->head, memory_order_relaxed) != self->pos ||
            atomic_load_explicit(&self->shared->closed, memory_order_relaxed))
            return;
        cpu_relax();
        if ((i & 63) == 0 && now_ns(CLOCK_MONOTONIC) - start >= spin_ns)
            return;
    }
}

static void sleep_for_head(strata_ring_reader_t *self, uint32_t wake_word, uint64_t max_ns)
{
    if (!self->shared_rw) {
        uint64_t ns = max_ns < POLL_INTERVAL_NS ? max_ns : POLL_INTERVAL_NS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ns};
        nanosleep(&ts, NULL);
        return;
    }
    atomic_fetch_add_explicit(&self->shared_rw->waiters, 1, memory_order_seq_cst);
    futex_wait(&self->shared_rw->wake, wake_word, max_ns < WAIT_SLICE_NS ? max_ns : WAIT_SLICE_NS);
    atomic_fetch_sub_explicit(&self->shared_rw->waiters, 1, memory_order_seq_cst);
}

int strata_ring_reader_next(strata_ring_reader_t *self, int timeout_ms, strata_entry_t *entry,
                            const uint8_t **raw, size_t *raw_len)
{
    if (!self)
        return STRATA_EINVAL;
    self->has_last = false;
    if (self->lapped)
        return STRATA_ELAPPED;
    bool forever = timeout_ms < 0;
    uint64_t timeout_ns = forever ? 0 : (uint64_t)timeout_ms * 1000000ull;
    uint64_t start = 0;
    bool spun = timeout_ms == 0; /* a poll does not spin */
    for (;;) {
        /* The wake word before head: if a publish lands after this load,
         * FUTEX_WAIT below sees the word changed and does not sleep. */
        uint32_t wake_word = atomic_load_explicit(&self->shared->wake, memory_order_acquire);
        uint64_t head = atomic_load_explicit(&self->shared->head, memory_order_acquire);
        if (self->pos < head) {
            int rc = read_published(self, head, entry, raw, raw_len);
            if (rc != RING_DRAINED)
                return rc;
            continue;
        }
        /* Unpublished appends can overwrite a reader waiting at head. */
        if (atomic_load_explicit(&self->shared->tail, memory_order_acquire) > self->pos)
            return lapped(self);
        if (atomic_load_explicit(&self->shared->closed, memory_order_acquire)) {
            if (atomic_load_explicit(&self->shared->head, memory_order_acquire) > self->pos)
                continue; /* published just before the close */
            return STRATA_ESTALE;
        }
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (start == 0)
            start = now;
        uint64_t elapsed = now - start;
        uint64_t left = forever ? UINT64_MAX : elapsed >= timeout_ns ? 0 : timeout_ns - elapsed;
        if (!spun) {
            spun = true;
            spin_for_head(self, left < self->spin_ns ? left : self->spin_ns);
            continue;
        }
        if (file_replaced(self))
            return STRATA_ESTALE;
        if (left == 0)
            return STRATA_ETIMEDOUT;
        sleep_for_head(self, wake_word, left);
    }
}

bool strata_ring_reader_pending(const strata_ring_reader_t *self)
{
    if (!self)
        return false;
    return self->lapped ||
           atomic_load_explicit(&self->shared->head, memory_order_acquire) > self->pos ||
           atomic_load_explicit(&self->shared->closed, memory_order_acquire);
}

bool strata_ring_reader_intact(const strata_ring_reader_t *self)
{
    if (!self || !self->has_last)
        return false;
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&self->shared->tail, memory_order_relaxed) <= self->last_pos;
}

int strata_ring_reader_seek(strata_ring_reader_t *self, uint64_t seq)
{
    if (!self || seq == 0)
        return STRATA_EINVAL;
    self->has_last = false;
    /* Forward from an intact cursor: next() skips up to it, no scan. */
    if (!self->lapped && seq >= strata_ring_reader_next_seq(self) &&
        atomic_load_explicit(&self->shared->tail, memory_order_acquire) <= self->pos) {
        self->min_seq = seq;
        return 0;
    }
    return locate(self, seq);
}

uint64_t strata_ring_reader_next_seq(const strata_ring_reader_t *self)
{
    if (!self)
        return 0;
    return self->next_seq > self->min_seq ? self->next_seq : self->min_seq;
}

void strata_ring_reader_info(const strata_ring_reader_t *self, strata_ring_info_t *info)
{
    if (!self || !info)
        return;
    const ring_shared_t *shared = self->shared;
    uint64_t published = atomic_load_explicit(&shared->published_seq, memory_order_acquire);
    uint64_t oldest = atomic_load_explicit(&shared->oldest_seq, memory_order_acquire);
    *info = (strata_ring_info_t){
        .ring_id = self->ring_id,
        .capacity_bytes = self->capacity,
        .first_seq = self->first_seq,
        .oldest_seq = published && oldest && oldest <= published ? oldest : 0,
        .published_seq = published,
        .created_ns = self->created_ns,
        .producer_pid = self->producer_pid,
        .closed = atomic_load_explicit(&shared->closed, memory_order_acquire) != 0,
    };
}

void strata_ring_reader_close(strata_ring_reader_t **reader_p)
{
    if (!reader_p)
        return;
    reader_free(*reader_p);
    *reader_p = NULL;
}
