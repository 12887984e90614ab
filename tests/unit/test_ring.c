/* Ring behaviour: entries through the shared-memory ring to readers in other
 * processes, topic filters, lapping, publication, wake-ups, staleness and the
 * oversize marker. Entries are built here in the WAL's layout (lib/log/wal.md). */
#define _GNU_SOURCE
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/crc.h"
#include "strata/ring.h"
#include "support.h"

#define KIB         1024u
#define OFF_WAITERS 256 /* ring.md: the readers' waiters count */

/* ---- helpers ----------------------------------------------------------- */

/* A directory in /dev/shm, where rings live, holding one test's ring files. */
typedef struct {
    char *dir;
    char *path;
} ring_dir_t;

static ring_dir_t ring_dir(void)
{
    ring_dir_t d;
    char tmpl[] = "/dev/shm/strata-ring-XXXXXX";
    d.dir = mkdtemp(tmpl) ? strdup(tmpl) : ts_tempdir("ring");
    ck_assert_ptr_nonnull(d.dir);
    d.path = ts_path(d.dir, "ring");
    return d;
}

static void ring_dir_remove(ring_dir_t *d)
{
    ts_rmtree(d->dir);
    free(d->dir);
    free(d->path);
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static uint8_t value_byte(uint64_t seq, uint32_t i)
{
    return (uint8_t)(seq * 31 + i);
}

/* Encodes the entry for seq (lib/log/wal.md's layout, correct CRC): key
 * "k<seq>", value_len bytes derived from seq. Returns its size. */
static size_t make_entry(uint8_t *p, uint64_t seq, const char *topic, uint32_t value_len,
                         uint8_t flags)
{
    char key[24];
    uint32_t key_len = (uint32_t)snprintf(key, sizeof key, "k%" PRIu64, seq);
    uint16_t topic_len = (uint16_t)(topic ? strlen(topic) : 0);
    uint8_t value[value_len ? value_len : 1];
    for (uint32_t i = 0; i < value_len; i++)
        value[i] = value_byte(seq, i);
    strata_entry_t e = {.seq = seq,
                        .term = 7,
                        .timestamp_ns = seq * 1000u,
                        .type = STRATA_VALUE_PUT,
                        .flags = flags,
                        .topic = (const uint8_t *)topic,
                        .topic_len = topic_len,
                        .key = (const uint8_t *)key,
                        .key_len = key_len,
                        .value = value,
                        .value_len = value_len};
    strata_entry_encode(p, &e);
    return strata_entry_size(topic_len, key_len, value_len);
}

/* Whether e and raw, returned in place for seq, are what make_entry wrote. */
static bool entry_ok(const strata_entry_t *e, const uint8_t *raw, size_t raw_len, uint64_t seq,
                     const char *topic, uint32_t value_len)
{
    char key[24];
    size_t key_len = (size_t)snprintf(key, sizeof key, "k%" PRIu64, seq);
    size_t topic_len = topic ? strlen(topic) : 0;
    if (e->seq != seq || e->term != 7 || e->timestamp_ns != seq * 1000u || e->type != 1 ||
        e->topic_len != topic_len || e->key_len != key_len || e->value_len != value_len)
        return false;
    if ((topic_len && memcmp(e->topic, topic, topic_len) != 0) || memcmp(e->key, key, key_len) != 0)
        return false;
    for (uint32_t i = 0; i < value_len; i++)
        if (e->value[i] != value_byte(seq, i))
            return false;
    uint32_t crc;
    memcpy(&crc, raw, 4);
    return raw_len == strata_entry_size(topic_len, key_len, value_len) &&
           strata_crc32c(0, raw + 4, raw_len - 4) == le32toh(crc);
}

static strata_ring_t *create_ring(const char *path, uint64_t capacity, uint64_t first_seq)
{
    strata_ring_options_t opts = {.capacity_bytes = capacity, .first_seq = first_seq};
    strata_ring_t *ring = NULL;
    strata_error_t err;
    int rc = strata_ring_create(path, &opts, &ring, &err);
    ck_assert_msg(rc == 0, "create %s: %s", path, err.msg);
    return ring;
}

/* Appends seqs first..last as one call (one WAL group) on topic. */
static void append_range(strata_ring_t *ring, uint64_t first, uint64_t last, const char *topic,
                         uint32_t value_len)
{
    size_t one = strata_entry_size(topic ? strlen(topic) : 0, 24, value_len);
    uint8_t *buf = malloc(one * (size_t)(last - first + 1));
    ck_assert_ptr_nonnull(buf);
    size_t len = 0;
    for (uint64_t seq = first; seq <= last; seq++)
        len += make_entry(buf + len, seq, topic, value_len, seq < last ? 1 : 0);
    strata_error_t err;
    int rc = strata_ring_append(ring, buf, len, &err);
    ck_assert_msg(rc == 0, "append %" PRIu64 "..%" PRIu64 ": %s", first, last, err.msg);
    free(buf);
}

/* Appends and publishes seqs first..last, one call each. */
static void produce(strata_ring_t *ring, uint64_t first, uint64_t last, const char *topic,
                    uint32_t value_len)
{
    for (uint64_t seq = first; seq <= last; seq++) {
        append_range(ring, seq, seq, topic, value_len);
        strata_ring_publish(ring, seq);
    }
}

static strata_ring_reader_t *open_reader(const char *path, strata_ring_start_t start,
                                         uint64_t from_seq, const char *const *topics,
                                         size_t n_topics)
{
    strata_ring_reader_options_t opts = {
        .start = start, .from_seq = from_seq, .topics = topics, .n_topics = n_topics};
    strata_ring_reader_t *reader = NULL;
    strata_error_t err;
    int rc = strata_ring_reader_open(path, &opts, &reader, &err);
    ck_assert_msg(rc == 0, "open reader %s: %s", path, err.msg);
    return reader;
}

/* The next entry, which must be seq (made by produce with topic/value_len)
 * and still intact after it was checked. */
static void expect_entry(strata_ring_reader_t *reader, uint64_t seq, const char *topic,
                         uint32_t value_len)
{
    strata_entry_t e;
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    int rc = strata_ring_reader_next(reader, 0, &e, &raw, &raw_len);
    ck_assert_msg(rc == 0, "next, expecting seq %" PRIu64 ": %s", seq, strata_strerror(rc));
    ck_assert_uint_eq(e.seq, seq);
    ck_assert(entry_ok(&e, raw, raw_len, seq, topic, value_len));
    ck_assert(strata_ring_reader_intact(reader));
}

static void expect_rc(strata_ring_reader_t *reader, int expected)
{
    strata_entry_t e;
    int rc = strata_ring_reader_next(reader, 0, &e, NULL, NULL);
    ck_assert_msg(rc == expected, "next returned %s (seq %" PRIu64 "), expected %s",
                  strata_strerror(rc), rc == 0 ? e.seq : 0, strata_strerror(expected));
}

static void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    return p;
}

static int wait_child(pid_t pid)
{
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "reader process died with signal %d",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}

static bool counter_reaches(_Atomic uint32_t *counter, uint32_t target, unsigned timeout_ms)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (atomic_load(counter) < target) {
        if (ts_now_ns() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

typedef struct {
    int fd;
    uint8_t *header;
} header_view_t;

/* The ring's header as any process sees it, to watch the waiters count. */
static header_view_t header_view(const char *path)
{
    header_view_t v;
    v.fd = open(path, O_RDONLY);
    ck_assert_int_ge(v.fd, 0);
    v.header = mmap(NULL, 4096, PROT_READ, MAP_SHARED, v.fd, 0);
    ck_assert(v.header != MAP_FAILED);
    return v;
}

static void header_view_close(header_view_t *v)
{
    munmap(v->header, 4096);
    close(v->fd);
}

static bool reader_is_waiting(void *arg)
{
    header_view_t *v = arg;
    return atomic_load((_Atomic uint32_t *)(v->header + OFF_WAITERS)) > 0;
}

/* ---- one reader, a million entries ------------------------------------- */

#define MILLION_ENTRIES 1000000u
#define MILLION_LAG     1024u /* entries the producer may run ahead: < capacity/2 in bytes */

typedef struct {
    _Atomic uint32_t ready;
    _Atomic uint64_t checked; /* the last seq the reader verified */
} progress_t;

static uint32_t million_value_len(uint64_t seq)
{
    return (uint32_t)(((seq * 2654435761u) >> 11) % 201);
}

/* The reader process: every seq exactly once, in order, intact. */
static void million_reader(const char *path, progress_t *progress)
{
    strata_ring_reader_options_t opts = {.start = STRATA_RING_FROM_OLDEST};
    strata_ring_reader_t *reader = NULL;
    strata_error_t err;
    if (strata_ring_reader_open(path, &opts, &reader, &err) != 0) {
        fprintf(stderr, "reader open: %s\n", err.msg);
        _exit(2);
    }
    atomic_store(&progress->ready, 1);
    for (uint64_t seq = 1; seq <= MILLION_ENTRIES; seq++) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        int rc = strata_ring_reader_next(reader, 10000, &e, &raw, &raw_len);
        if (rc != 0) {
            fprintf(stderr, "reader: next at seq %" PRIu64 ": %s\n", seq, strata_strerror(rc));
            _exit(3);
        }
        if (!entry_ok(&e, raw, raw_len, seq, "t", million_value_len(seq))) {
            fprintf(stderr, "reader: expected seq %" PRIu64 ", got %" PRIu64 " or bad bytes\n", seq,
                    e.seq);
            _exit(4);
        }
        if (!strata_ring_reader_intact(reader)) {
            fprintf(stderr, "reader: seq %" PRIu64 " overwritten while read\n", seq);
            _exit(5);
        }
        atomic_store_explicit(&progress->checked, seq, memory_order_release);
    }
    strata_ring_reader_close(&reader);
    _exit(0);
}

/* The other producer thread: publishes what the appender has appended, as
 * the writer's fsync thread does with durable seqs. */
typedef struct {
    strata_ring_t *ring;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t appended;
    bool done;
} publisher_t;

static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    uint64_t published = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->appended == published && !p->done)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->appended == published)
            break;
        uint64_t upto = p->appended;
        pthread_mutex_unlock(&p->mu);
        strata_ring_publish(p->ring, upto);
        published = upto;
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

START_TEST(million_entries_reach_a_reader_process_once_each_in_order)
{
    ring_dir_t d = ring_dir();
    uint64_t rng = ts_seed("ring_million");
    strata_ring_t *ring = create_ring(d.path, 1024 * KIB, 1);
    progress_t *progress = shared_alloc(sizeof *progress);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        million_reader(d.path, progress);
    ck_assert_msg(counter_reaches(&progress->ready, 1, 10000), "reader never opened");

    publisher_t pub = {.ring = ring};
    pthread_mutex_init(&pub.mu, NULL);
    pthread_cond_init(&pub.cv, NULL);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, publisher_main, &pub), 0);

    uint8_t buf[8 * 512];
    uint64_t start_ns = ts_now_ns();
    uint64_t deadline = start_ns + 120 * 1000000000ull;
    for (uint64_t seq = 1; seq <= MILLION_ENTRIES;) {
        uint64_t last = seq + ts_rand(&rng) % 8;
        if (last > MILLION_ENTRIES)
            last = MILLION_ENTRIES;
        size_t len = 0;
        for (uint64_t s = seq; s <= last; s++)
            len += make_entry(buf + len, s, "t", million_value_len(s), s < last ? 1 : 0);
        /* Wait for the reader so it is never lapped: that is a separate test,
         * and this one must be deterministic. */
        for (unsigned spins = 0;
             last - atomic_load_explicit(&progress->checked, memory_order_acquire) > MILLION_LAG;
             spins++) {
            sched_yield();
            if ((spins & 1023) == 1023) {
                int status;
                ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
                              "reader exited early (status 0x%x) at seq %" PRIu64, status,
                              atomic_load(&progress->checked) + 1);
                ck_assert_msg(ts_now_ns() < deadline, "reader stuck at seq %" PRIu64,
                              atomic_load(&progress->checked) + 1);
            }
        }
        strata_error_t err;
        ck_assert_msg(strata_ring_append(ring, buf, len, &err) == 0, "append: %s", err.msg);
        pthread_mutex_lock(&pub.mu);
        pub.appended = last;
        pthread_cond_signal(&pub.cv);
        pthread_mutex_unlock(&pub.mu);
        seq = last + 1;
    }
    pthread_mutex_lock(&pub.mu);
    pub.done = true;
    pthread_cond_signal(&pub.cv);
    pthread_mutex_unlock(&pub.mu);
    pthread_join(thread, NULL);
    ck_assert_uint_eq(strata_ring_published_seq(ring), MILLION_ENTRIES);
    ck_assert_int_eq(wait_child(pid), 0);
    double secs = (double)(ts_now_ns() - start_ns) / 1e9;
    fprintf(stderr, "ring_million: %u entries in %.2f s (%.0f entries/s)\n", MILLION_ENTRIES, secs,
            MILLION_ENTRIES / secs);
    strata_ring_close(&ring, true);
    ck_assert_ptr_null(ring);
    munmap(progress, sizeof *progress);
    ring_dir_remove(&d);
}
END_TEST

/* ---- topic filters ----------------------------------------------------- */

#define TOPIC_ENTRIES 20000u

static const char *topic_of(uint64_t seq)
{
    static const char *const topics[5] = {"trades.eu", "quotes.us", "$sys.health", NULL,
                                          "trades.us"};
    return topics[seq % 5];
}

typedef struct {
    const char *const *prefixes;
    size_t n_prefixes;
    unsigned wanted_mask; /* bit i: seqs with seq % 5 == i */
} topic_reader_t;

static const char *const trades_only[] = {"trades"};
static const char *const quotes_and_sys[] = {"quotes", "$sys"};
static const char *const empty_prefix[] = {""};
static const char *const kv_only[] = {"kv"};
static const topic_reader_t topic_readers[5] = {
    {trades_only, 1, 1u << 0 | 1u << 4},
    {quotes_and_sys, 2, 1u << 1 | 1u << 2},
    {NULL, 0, 1u << 0 | 1u << 1 | 1u << 3 | 1u << 4},         /* all but '$' */
    {empty_prefix, 1, 1u << 0 | 1u << 1 | 1u << 3 | 1u << 4}, /* the same: "" prefixes all */
    {kv_only, 1, 1u << 3},                                    /* no topic is filtered as "kv" */
};

static uint64_t next_wanted(const topic_reader_t *r, uint64_t after)
{
    uint64_t seq = after + 1;
    while (seq <= TOPIC_ENTRIES && !(r->wanted_mask & (1u << (seq % 5))))
        seq++;
    return seq;
}

static void topic_reader_main(const char *path, const topic_reader_t *r, _Atomic uint32_t *ready)
{
    strata_ring_reader_options_t opts = {
        .start = STRATA_RING_FROM_OLDEST, .topics = r->prefixes, .n_topics = r->n_prefixes};
    strata_ring_reader_t *reader = NULL;
    if (strata_ring_reader_open(path, &opts, &reader, NULL) != 0)
        _exit(2);
    atomic_fetch_add(ready, 1);
    uint64_t expected = next_wanted(r, 0);
    for (;;) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        int rc = strata_ring_reader_next(reader, 10000, &e, &raw, &raw_len);
        if (rc == STRATA_ESTALE)
            break;
        if (rc != 0) {
            fprintf(stderr, "topic reader: %s\n", strata_strerror(rc));
            _exit(3);
        }
        if (e.seq != expected || !entry_ok(&e, raw, raw_len, e.seq, topic_of(e.seq), 8)) {
            fprintf(stderr, "topic reader: got seq %" PRIu64 ", expected %" PRIu64 "\n", e.seq,
                    expected);
            _exit(4);
        }
        expected = next_wanted(r, e.seq);
    }
    if (expected != TOPIC_ENTRIES + 1) {
        fprintf(stderr, "topic reader: stale before seq %" PRIu64 "\n", expected);
        _exit(5);
    }
    _exit(0);
}

START_TEST(topic_filters_deliver_exactly_their_topics_to_reader_processes)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 4096 * KIB, 1);
    _Atomic uint32_t *ready = shared_alloc(sizeof *ready);
    pid_t pids[5];
    for (int i = 0; i < 5; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            topic_reader_main(d.path, &topic_readers[i], ready);
    }
    ck_assert_msg(counter_reaches(ready, 5, 10000), "readers never opened");
    uint8_t buf[7 * 128];
    for (uint64_t seq = 1; seq <= TOPIC_ENTRIES;) {
        uint64_t last = seq + 6 > TOPIC_ENTRIES ? TOPIC_ENTRIES : seq + 6;
        size_t len = 0;
        for (uint64_t s = seq; s <= last; s++)
            len += make_entry(buf + len, s, topic_of(s), 8, s < last ? 1 : 0);
        ck_assert_int_eq(strata_ring_append(ring, buf, len, NULL), 0);
        strata_ring_publish(ring, last);
        seq = last + 1;
    }
    /* Readers drain everything, then see the close as STRATA_ESTALE. */
    strata_ring_close(&ring, false);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(wait_child(pids[i]) == 0, "topic reader %d failed", i);
    munmap(ready, sizeof *ready);
    ring_dir_remove(&d);
}
END_TEST

/* ---- lapping ----------------------------------------------------------- */

START_TEST(a_stopped_reader_is_lapped_and_seeks_back_into_the_ring)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    produce(ring, 1, 10, "t", 100);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    expect_entry(reader, 1, "t", 100);
    expect_entry(reader, 2, "t", 100);
    expect_entry(reader, 3, "t", 100);

    produce(ring, 11, 1000, "t", 100); /* about 150 KB through a 64 KiB ring */
    ck_assert(!strata_ring_reader_intact(reader));
    expect_rc(reader, STRATA_ELAPPED);
    ck_assert_uint_eq(strata_ring_reader_next_seq(reader), 4);
    expect_rc(reader, STRATA_ELAPPED); /* until a seek */

    strata_ring_info_t info;
    strata_ring_reader_info(reader, &info);
    ck_assert_uint_eq(info.published_seq, 1000);
    ck_assert_uint_eq(info.capacity_bytes, 64 * KIB);
    ck_assert_uint_gt(info.oldest_seq, 500);
    ck_assert_uint_lt(info.oldest_seq, 1000);
    uint64_t oldest = info.oldest_seq;

    ck_assert_int_eq(strata_ring_reader_seek(reader, oldest + 10), 0);
    expect_entry(reader, oldest + 10, "t", 100);
    expect_entry(reader, oldest + 11, "t", 100);
    ck_assert_int_eq(strata_ring_reader_seek(reader, oldest - 1), STRATA_ELAPPED);
    ck_assert_uint_eq(strata_ring_reader_next_seq(reader), oldest - 1);
    expect_rc(reader, STRATA_ELAPPED);
    ck_assert_int_eq(strata_ring_reader_seek(reader, oldest), 0);
    expect_entry(reader, oldest, "t", 100);

    /* An entry overwritten after next() returned it is no longer intact. */
    ck_assert_int_eq(strata_ring_reader_seek(reader, 1000), 0);
    expect_entry(reader, 1000, "t", 100);
    produce(ring, 1001, 1500, "t", 100);
    ck_assert(!strata_ring_reader_intact(reader));
    ck_assert_int_eq(strata_ring_reader_seek(reader, 1500), 0);
    expect_entry(reader, 1500, "t", 100);
    ck_assert(strata_ring_reader_intact(reader));

    /* A seq not yet published: the reader waits there. */
    ck_assert_int_eq(strata_ring_reader_seek(reader, 1505), 0);
    ck_assert_uint_eq(strata_ring_reader_next_seq(reader), 1505);
    expect_rc(reader, STRATA_ETIMEDOUT);
    produce(ring, 1501, 1506, "t", 100);
    expect_entry(reader, 1505, "t", 100);
    expect_entry(reader, 1506, "t", 100);

    strata_ring_reader_options_t opts = {.start = STRATA_RING_FROM_SEQ, .from_seq = 2};
    strata_ring_reader_t *late = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_ring_reader_open(d.path, &opts, &late, &err), STRATA_ELAPPED);
    ck_assert_ptr_null(late);
    ck_assert_msg(strstr(err.msg, "seq 2") && strstr(err.msg, d.path), "message: %s", err.msg);

    strata_ring_reader_close(&reader);
    ck_assert_ptr_null(reader);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(unpublished_overflow_laps_a_reader_waiting_at_head)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    produce(ring, 1, 5, "t", 100);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_NEWEST, 0, NULL, 0);
    expect_rc(reader, STRATA_ETIMEDOUT);
    append_range(ring, 6, 1000, "t", 100); /* more than the ring, none published */
    expect_rc(reader, STRATA_ELAPPED);
    ck_assert_uint_eq(strata_ring_reader_next_seq(reader), 6);
    strata_ring_publish(ring, 1000);
    ck_assert_int_eq(strata_ring_reader_seek(reader, 6), STRATA_ELAPPED);
    strata_ring_info_t info;
    strata_ring_reader_info(reader, &info);
    ck_assert_int_eq(strata_ring_reader_seek(reader, info.oldest_seq), 0);
    expect_entry(reader, info.oldest_seq, "t", 100);
    strata_ring_reader_close(&reader);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

/* A reader process racing a producer that never waits: it is lapped over
 * and over, and every entry it accepts (intact() true after checking it in
 * place) must be whole, with a good CRC, in seq order. */
#define RACE_ENTRIES 300000u

static uint32_t race_value_len(uint64_t seq)
{
    return (uint32_t)(((seq * 2654435761u) >> 9) % 1500);
}

static void racing_reader_main(const char *path, _Atomic uint32_t *ready)
{
    strata_ring_reader_options_t opts = {.start = STRATA_RING_FROM_OLDEST};
    strata_ring_reader_t *reader = NULL;
    if (strata_ring_reader_open(path, &opts, &reader, NULL) != 0)
        _exit(2);
    atomic_store(ready, 1);
    uint64_t expected = 1, accepted = 0, torn = 0, lapped = 0;
    for (;;) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        int rc = strata_ring_reader_next(reader, 10000, &e, &raw, &raw_len);
        if (rc == STRATA_ESTALE)
            break;
        if (rc == STRATA_ELAPPED) {
            lapped++;
            if (strata_ring_reader_next_seq(reader) != expected) {
                fprintf(stderr, "racing reader: lapped needing %" PRIu64 ", expected %" PRIu64 "\n",
                        strata_ring_reader_next_seq(reader), expected);
                _exit(3);
            }
            /* Catch up to the oldest entry left, as a caller would after
             * repairing the gap from the log. */
            strata_ring_info_t info;
            do {
                strata_ring_reader_info(reader, &info);
            } while (info.oldest_seq == 0 || strata_ring_reader_seek(reader, info.oldest_seq) != 0);
            expected = info.oldest_seq;
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "racing reader: %s\n", strata_strerror(rc));
            _exit(4);
        }
        bool ok = entry_ok(&e, raw, raw_len, e.seq, "race", race_value_len(e.seq));
        if (!strata_ring_reader_intact(reader)) {
            /* Overwritten while we looked: what we saw does not count, and
             * the reader is lapped at this entry. */
            torn++;
            if (strata_ring_reader_seek(reader, e.seq) != STRATA_ELAPPED ||
                strata_ring_reader_next_seq(reader) != e.seq)
                _exit(7);
            continue;
        }
        if (!ok || e.seq != expected) {
            fprintf(stderr,
                    "racing reader: accepted a bad entry (seq %" PRIu64 ", expected %" PRIu64 ")\n",
                    e.seq, expected);
            _exit(5);
        }
        accepted++;
        expected = e.seq + 1;
    }
    fprintf(stderr,
            "racing reader: %" PRIu64 " accepted, %" PRIu64 " overwritten while read, %" PRIu64
            " times lapped\n",
            accepted, torn, lapped);
    _exit(expected == RACE_ENTRIES + 1 ? 0 : 6);
}

START_TEST(a_reader_racing_the_producer_never_accepts_a_torn_entry)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    _Atomic uint32_t *ready = shared_alloc(sizeof *ready);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        racing_reader_main(d.path, ready);
    ck_assert_msg(counter_reaches(ready, 1, 10000), "reader never opened");
    uint8_t buf[4 * 2048];
    for (uint64_t seq = 1; seq <= RACE_ENTRIES;) {
        uint64_t last = seq + 3 > RACE_ENTRIES ? RACE_ENTRIES : seq + 3;
        size_t len = 0;
        for (uint64_t s = seq; s <= last; s++)
            len += make_entry(buf + len, s, "race", race_value_len(s), s < last ? 1 : 0);
        ck_assert_int_eq(strata_ring_append(ring, buf, len, NULL), 0);
        strata_ring_publish(ring, last);
        seq = last + 1;
    }
    strata_ring_close(&ring, false); /* the reader drains, then sees it stale */
    ck_assert_int_eq(wait_child(pid), 0);
    munmap(ready, sizeof *ready);
    ring_dir_remove(&d);
}
END_TEST

/* ---- publication ------------------------------------------------------- */

START_TEST(appends_are_invisible_until_published_up_to_their_seq)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 1024 * KIB, 1);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    append_range(ring, 1, 10, "t", 16);
    expect_rc(reader, STRATA_ETIMEDOUT);
    ck_assert_uint_eq(strata_ring_published_seq(ring), 0);

    strata_ring_publish(ring, 5); /* the middle of one append call */
    ck_assert_uint_eq(strata_ring_published_seq(ring), 5);
    for (uint64_t seq = 1; seq <= 5; seq++)
        expect_entry(reader, seq, "t", 16);
    expect_rc(reader, STRATA_ETIMEDOUT);
    strata_ring_publish(ring, 3); /* never backwards */
    ck_assert_uint_eq(strata_ring_published_seq(ring), 5);
    expect_rc(reader, STRATA_ETIMEDOUT);
    strata_ring_publish(ring, 10);
    for (uint64_t seq = 6; seq <= 10; seq++)
        expect_entry(reader, seq, "t", 16);
    expect_rc(reader, STRATA_ETIMEDOUT);

    /* Durable before the ring saw them: visible as soon as appended. */
    strata_ring_publish(ring, 12);
    ck_assert_uint_eq(strata_ring_published_seq(ring), 10);
    append_range(ring, 11, 14, "t", 16);
    ck_assert_uint_eq(strata_ring_published_seq(ring), 12);
    expect_entry(reader, 11, "t", 16);
    expect_entry(reader, 12, "t", 16);
    expect_rc(reader, STRATA_ETIMEDOUT);

    strata_ring_reader_close(&reader);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(readers_start_at_newest_oldest_or_a_given_seq)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 1024 * KIB, 1000);
    strata_ring_reader_t *oldest = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    ck_assert_uint_eq(strata_ring_reader_next_seq(oldest), 1000);
    produce(ring, 1000, 1004, "t", 4);
    strata_ring_reader_t *newest = open_reader(d.path, STRATA_RING_FROM_NEWEST, 0, NULL, 0);
    ck_assert_uint_eq(strata_ring_reader_next_seq(newest), 1005);
    expect_rc(newest, STRATA_ETIMEDOUT);
    strata_ring_reader_t *from = open_reader(d.path, STRATA_RING_FROM_SEQ, 1002, NULL, 0);
    strata_ring_reader_t *ahead = open_reader(d.path, STRATA_RING_FROM_SEQ, 1008, NULL, 0);
    expect_rc(ahead, STRATA_ETIMEDOUT);
    ck_assert_uint_eq(strata_ring_reader_next_seq(ahead), 1008);
    produce(ring, 1005, 1010, "t", 4);

    for (uint64_t seq = 1000; seq <= 1010; seq++)
        expect_entry(oldest, seq, "t", 4);
    for (uint64_t seq = 1005; seq <= 1010; seq++)
        expect_entry(newest, seq, "t", 4);
    for (uint64_t seq = 1002; seq <= 1010; seq++)
        expect_entry(from, seq, "t", 4);
    for (uint64_t seq = 1008; seq <= 1010; seq++)
        expect_entry(ahead, seq, "t", 4);
    expect_rc(oldest, STRATA_ETIMEDOUT);

    strata_ring_info_t info;
    strata_ring_reader_info(oldest, &info);
    ck_assert_uint_eq(info.first_seq, 1000);
    ck_assert_uint_eq(info.oldest_seq, 1000);
    ck_assert_uint_eq(info.published_seq, 1010);
    ck_assert_uint_eq(info.producer_pid, (uint32_t)getpid());
    ck_assert_uint_ne(info.ring_id, 0);
    ck_assert(!info.closed);

    strata_ring_reader_close(&oldest);
    strata_ring_reader_close(&newest);
    strata_ring_reader_close(&from);
    strata_ring_reader_close(&ahead);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(malformed_or_out_of_order_appends_write_nothing)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = NULL;
    strata_ring_options_t bad = {.capacity_bytes = 100000};
    strata_error_t err;
    ck_assert_int_eq(strata_ring_create(d.path, &bad, &ring, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "capacity"), "message: %s", err.msg);
    bad.capacity_bytes = 32 * KIB;
    ck_assert_int_eq(strata_ring_create(d.path, &bad, &ring, &err), STRATA_EINVAL);
    ck_assert_int_eq(access(d.path, F_OK), -1);

    ring = create_ring(d.path, 64 * KIB, 1);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    uint8_t buf[512];
    size_t one = make_entry(buf, 2, "t", 8, 0);
    ck_assert_int_eq(strata_ring_append(ring, buf, one, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "seq 2, expected 1"), "message: %s", err.msg);

    one = make_entry(buf, 1, "t", 8, 1);
    size_t two = make_entry(buf + one, 2, "t", 8, 0);
    ck_assert_int_eq(strata_ring_append(ring, buf, one + two - 1, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "runs past"), "message: %s", err.msg);
    ck_assert_int_eq(strata_ring_append(ring, buf, one + 20, &err), STRATA_EINVAL);
    put32(buf + 12, 1000); /* key_len beyond payload_len */
    ck_assert_int_eq(strata_ring_append(ring, buf, one + two, &err), STRATA_EINVAL);
    ck_assert_int_eq(strata_ring_append(ring, buf, 0, &err), STRATA_EINVAL);
    strata_ring_publish(ring, 10);
    expect_rc(reader, STRATA_ETIMEDOUT);

    produce(ring, 1, 2, "t", 8);
    expect_entry(reader, 1, "t", 8);
    expect_entry(reader, 2, "t", 8);
    expect_rc(reader, STRATA_ETIMEDOUT);
    strata_ring_reader_close(&reader);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

/* ---- waiting ----------------------------------------------------------- */

START_TEST(next_times_out_on_an_idle_ring)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    uint64_t start = ts_now_ns();
    ck_assert_int_eq(strata_ring_reader_next(reader, 50, NULL, NULL, NULL), STRATA_ETIMEDOUT);
    uint64_t elapsed_ms = (ts_now_ns() - start) / 1000000u;
    ck_assert_msg(elapsed_ms >= 40 && elapsed_ms < 2000, "50 ms timeout took %" PRIu64 " ms",
                  elapsed_ms);
    start = ts_now_ns();
    ck_assert_int_eq(strata_ring_reader_next(reader, 0, NULL, NULL, NULL), STRATA_ETIMEDOUT);
    ck_assert_uint_lt((ts_now_ns() - start) / 1000000u, 1000);
    strata_ring_reader_close(&reader);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

/* What a waiting reader process and its test share. */
typedef struct {
    _Atomic uint32_t ready;
    _Atomic uint64_t woken_at_ns; /* set by the test just before it publishes or closes */
} waiter_t;

/* Longer than a futex wake under load, shorter than the 250 ms a waiting
 * reader sleeps between checks when nobody wakes it (ring.md). */
#define WAKE_LATENCY_MAX_MS 150u

/* A reader process that waits up to 10 s for one entry or for staleness
 * (expect_rc_code) and exits 0 when it returned within WAKE_LATENCY_MAX_MS
 * of the test's publish or close. */
static void waiting_reader_main(const char *path, int expect_rc_code, waiter_t *w)
{
    strata_ring_reader_t *reader = NULL;
    strata_ring_reader_options_t opts = {.start = STRATA_RING_FROM_NEWEST};
    if (strata_ring_reader_open(path, &opts, &reader, NULL) != 0)
        _exit(2);
    atomic_store(&w->ready, 1);
    strata_entry_t e;
    int rc = strata_ring_reader_next(reader, 10000, &e, NULL, NULL);
    uint64_t woken_at = atomic_load(&w->woken_at_ns);
    uint64_t latency_us = woken_at ? (ts_now_ns() - woken_at) / 1000u : UINT64_MAX;
    if (rc != expect_rc_code) {
        fprintf(stderr, "waiting reader: %s\n", strata_strerror(rc));
        _exit(3);
    }
    if (latency_us >= WAKE_LATENCY_MAX_MS * 1000u) {
        fprintf(stderr, "waiting reader: returned %" PRIu64 " us after the wake\n", latency_us);
        _exit(4);
    }
    fprintf(stderr, "waiting reader: woken in %" PRIu64 " us\n", latency_us);
    _exit(0);
}

START_TEST(publish_wakes_a_reader_sleeping_in_another_process)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    waiter_t *w = shared_alloc(sizeof *w);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        waiting_reader_main(d.path, 0, w);
    header_view_t view = header_view(d.path);
    ck_assert_msg(ts_wait_for(reader_is_waiting, &view, 5000), "reader never slept on the futex");
    atomic_store(&w->woken_at_ns, ts_now_ns());
    produce(ring, 1, 1, "t", 8);
    ck_assert_int_eq(wait_child(pid), 0);
    header_view_close(&view);
    munmap(w, sizeof *w);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(close_wakes_a_waiting_reader_with_stale)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    waiter_t *w = shared_alloc(sizeof *w);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        waiting_reader_main(d.path, STRATA_ESTALE, w);
    header_view_t view = header_view(d.path);
    ck_assert_msg(ts_wait_for(reader_is_waiting, &view, 5000), "reader never slept on the futex");
    atomic_store(&w->woken_at_ns, ts_now_ns());
    strata_ring_close(&ring, true);
    ck_assert_int_eq(wait_child(pid), 0);
    ck_assert_int_eq(access(d.path, F_OK), -1);
    header_view_close(&view);
    munmap(w, sizeof *w);
    ring_dir_remove(&d);
}
END_TEST

/* Without write access to the file a reader cannot count itself as a
 * waiter, so it polls: slower to wake, still correct. */
START_TEST(a_reader_without_write_access_polls)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    ck_assert_int_eq(chmod(d.dir, 0755), 0);
    ck_assert_int_eq(chmod(d.path, 0444), 0);
    waiter_t *w = shared_alloc(sizeof *w);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* root opens anything read-write: become nobody first */
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(9);
        if (open(d.path, O_RDWR) >= 0)
            _exit(8);
        waiting_reader_main(d.path, 0, w);
    }
    ck_assert_msg(counter_reaches(&w->ready, 1, 5000), "reader never opened");
    atomic_store(&w->woken_at_ns, ts_now_ns());
    produce(ring, 1, 1, "t", 8);
    ck_assert_int_eq(wait_child(pid), 0);
    header_view_t view = header_view(d.path);
    ck_assert(!reader_is_waiting(&view));
    header_view_close(&view);
    munmap(w, sizeof *w);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

/* ---- foreign and stale files ------------------------------------------- */

static void expect_refused(const char *path, int code, const char *field)
{
    strata_ring_reader_t *reader = NULL;
    strata_error_t err;
    int rc = strata_ring_reader_open(path, NULL, &reader, &err);
    ck_assert_msg(rc == code, "open returned %s, expected %s (%s)", strata_strerror(rc),
                  strata_strerror(code), err.msg);
    ck_assert_ptr_null(reader);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, field),
                  "message names neither %s nor %s: %s", path, field, err.msg);
}

START_TEST(foreign_truncated_and_newer_version_files_are_refused_naming_the_field)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    strata_ring_close(&ring, false);
    uint8_t good[64];
    ts_file_read_at(d.path, 0, good, sizeof good);

    ts_file_write_at(d.path, 0, "NOTARING", 8);
    expect_refused(d.path, STRATA_ECORRUPT, "magic");
    ts_file_write_at(d.path, 0, good, sizeof good);

    uint8_t field[8];
    put32(field, 2);
    ts_file_write_at(d.path, 8, field, 4);
    expect_refused(d.path, STRATA_EVERSION, "version 2");
    ts_file_write_at(d.path, 0, good, sizeof good);

    put32(field, 8192);
    ts_file_write_at(d.path, 12, field, 4);
    expect_refused(d.path, STRATA_ECORRUPT, "header size");
    ts_file_write_at(d.path, 0, good, sizeof good);

    put64(field, 100000);
    ts_file_write_at(d.path, 16, field, 8);
    expect_refused(d.path, STRATA_ECORRUPT, "capacity");
    ts_file_write_at(d.path, 0, good, sizeof good);

    /* Still good after every repair. */
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    strata_ring_reader_close(&reader);

    ts_file_truncate(d.path, 4096 + 32 * KIB);
    expect_refused(d.path, STRATA_ECORRUPT, "file size");
    ts_file_truncate(d.path, 100);
    expect_refused(d.path, STRATA_ECORRUPT, "file size");
    unlink(d.path);
    expect_refused(d.path, STRATA_EIO, "open");
    ring_dir_remove(&d);
}
END_TEST

START_TEST(a_replaced_ring_is_stale_for_its_old_readers_after_they_drain)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *old_ring = create_ring(d.path, 64 * KIB, 1);
    produce(old_ring, 1, 5, "t", 8);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    expect_entry(reader, 1, "t", 8);
    expect_entry(reader, 2, "t", 8);

    strata_ring_t *new_ring = create_ring(d.path, 64 * KIB, 100);
    produce(new_ring, 100, 100, "t", 8);
    for (uint64_t seq = 3; seq <= 5; seq++)
        expect_entry(reader, seq, "t", 8);
    expect_rc(reader, STRATA_ESTALE);

    strata_ring_reader_t *fresh = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    strata_ring_info_t old_info, new_info;
    strata_ring_reader_info(reader, &old_info);
    strata_ring_reader_info(fresh, &new_info);
    ck_assert_uint_ne(old_info.ring_id, new_info.ring_id);
    ck_assert(old_info.closed);
    ck_assert(!new_info.closed);
    expect_entry(fresh, 100, "t", 8);

    /* The old producer must not remove the ring that replaced it. */
    strata_ring_close(&old_ring, true);
    ck_assert_int_eq(access(d.path, F_OK), 0);
    expect_rc(fresh, STRATA_ETIMEDOUT);
    strata_ring_close(&new_ring, true);
    ck_assert_int_eq(access(d.path, F_OK), -1);
    expect_rc(fresh, STRATA_ESTALE);
    strata_ring_reader_close(&reader);
    strata_ring_reader_close(&fresh);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(a_ring_moved_away_from_its_path_is_stale)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    produce(ring, 1, 2, "t", 8);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    char *moved = ts_path(d.dir, "moved");
    ck_assert_int_eq(rename(d.path, moved), 0);
    expect_entry(reader, 1, "t", 8);
    expect_entry(reader, 2, "t", 8);
    expect_rc(reader, STRATA_ESTALE); /* not closed: found by the path check */
    strata_ring_info_t info;
    strata_ring_reader_info(reader, &info);
    ck_assert(!info.closed);
    strata_ring_reader_close(&reader);
    strata_ring_close(&ring, false);
    free(moved);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(close_is_stale_only_after_everything_published_is_read)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_NEWEST, 0, NULL, 0);
    produce(ring, 1, 3, "t", 8);
    append_range(ring, 4, 4, "t", 8); /* never published */
    strata_ring_close(&ring, true);
    for (uint64_t seq = 1; seq <= 3; seq++)
        expect_entry(reader, seq, "t", 8);
    expect_rc(reader, STRATA_ESTALE);
    expect_rc(reader, STRATA_ESTALE);
    strata_ring_reader_close(&reader);
    ring_dir_remove(&d);
}
END_TEST

/* ---- oversize entries -------------------------------------------------- */

static void expect_too_big(strata_ring_reader_t *reader, uint64_t seq, const char *topic,
                           uint16_t topic_len, uint32_t value_len)
{
    strata_entry_t e;
    const uint8_t *raw = (const uint8_t *)"x";
    size_t raw_len = 0;
    int rc = strata_ring_reader_next(reader, 0, &e, &raw, &raw_len);
    ck_assert_msg(rc == STRATA_ETOOBIG, "next returned %s, expected too big for seq %" PRIu64,
                  strata_strerror(rc), seq);
    ck_assert_uint_eq(strata_ring_reader_next_seq(reader), seq);
    ck_assert_uint_eq(e.seq, seq);
    ck_assert_uint_eq(e.topic_len, topic_len);
    if (topic)
        ck_assert(memcmp(e.topic, topic, topic_len) == 0);
    else
        ck_assert_ptr_null(e.topic);
    ck_assert_ptr_null(e.value);
    ck_assert_uint_eq(e.value_len, value_len);
    ck_assert_ptr_null(raw);
    ck_assert_uint_eq(raw_len, strata_entry_size(topic_len, e.key_len, value_len));
    ck_assert(strata_ring_reader_intact(reader));
}

START_TEST(oversize_entry_is_a_marker_then_seek_past_it_continues)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    const char *const trades[] = {"trades"};
    const char *const blobs[] = {"blobs"};
    strata_ring_reader_t *all = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, NULL, 0);
    strata_ring_reader_t *trade = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, trades, 1);
    strata_ring_reader_t *blob = open_reader(d.path, STRATA_RING_FROM_OLDEST, 0, blobs, 1);
    char long_topic[5001];
    memset(long_topic, 'x', 5000);
    long_topic[5000] = '\0';

    produce(ring, 1, 2, "trades", 8);
    produce(ring, 3, 3, "blobs", 20 * KIB); /* over capacity/4 */
    produce(ring, 4, 4, "trades", 8);
    produce(ring, 5, 5, long_topic, 20 * KIB); /* marker too long to carry the topic */
    produce(ring, 6, 6, "trades", 8);

    expect_entry(all, 1, "trades", 8);
    expect_entry(all, 2, "trades", 8);
    expect_too_big(all, 3, "blobs", 5, 20 * KIB);
    expect_too_big(all, 3, "blobs", 5, 20 * KIB); /* stays until a seek */
    ck_assert_int_eq(strata_ring_reader_seek(all, 4), 0);
    expect_entry(all, 4, "trades", 8);
    expect_too_big(all, 5, NULL, 5000, 20 * KIB);
    ck_assert_int_eq(strata_ring_reader_seek(all, 6), 0);
    expect_entry(all, 6, "trades", 8);

    /* A filter skips a marker of another topic; one it cannot check it passes. */
    expect_entry(trade, 1, "trades", 8);
    expect_entry(trade, 2, "trades", 8);
    expect_entry(trade, 4, "trades", 8);
    expect_too_big(trade, 5, NULL, 5000, 20 * KIB);
    ck_assert_int_eq(strata_ring_reader_seek(trade, 6), 0);
    expect_entry(trade, 6, "trades", 8);

    expect_too_big(blob, 3, "blobs", 5, 20 * KIB);
    ck_assert_int_eq(strata_ring_reader_seek(blob, 4), 0);
    expect_too_big(blob, 5, NULL, 5000, 20 * KIB);
    ck_assert_int_eq(strata_ring_reader_seek(blob, 6), 0);
    expect_rc(blob, STRATA_ETIMEDOUT);

    strata_ring_reader_close(&all);
    strata_ring_reader_close(&trade);
    strata_ring_reader_close(&blob);
    strata_ring_close(&ring, true);
    ring_dir_remove(&d);
}
END_TEST

START_TEST(pending_says_whether_next_has_something_without_waiting)
{
    ring_dir_t d = ring_dir();
    strata_ring_t *ring = create_ring(d.path, 64 * KIB, 1);
    strata_ring_reader_t *reader = open_reader(d.path, STRATA_RING_FROM_NEWEST, 0, NULL, 0);
    ck_assert(!strata_ring_reader_pending(reader));
    append_range(ring, 1, 2, "t", 8);
    ck_assert(!strata_ring_reader_pending(reader)); /* appended, not published */
    strata_ring_publish(ring, 2);
    ck_assert(strata_ring_reader_pending(reader));
    expect_entry(reader, 1, "t", 8);
    ck_assert(strata_ring_reader_pending(reader));
    expect_entry(reader, 2, "t", 8);
    ck_assert(!strata_ring_reader_pending(reader));
    strata_ring_close(&ring, true);
    ck_assert(strata_ring_reader_pending(reader)); /* the close, as STRATA_ESTALE */
    expect_rc(reader, STRATA_ESTALE);
    strata_ring_reader_close(&reader);
    ring_dir_remove(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, million_entries_reach_a_reader_process_once_each_in_order);
    tcase_add_test(tc, topic_filters_deliver_exactly_their_topics_to_reader_processes);
    tcase_add_test(tc, a_stopped_reader_is_lapped_and_seeks_back_into_the_ring);
    tcase_add_test(tc, unpublished_overflow_laps_a_reader_waiting_at_head);
    tcase_add_test(tc, a_reader_racing_the_producer_never_accepts_a_torn_entry);
    tcase_add_test(tc, appends_are_invisible_until_published_up_to_their_seq);
    tcase_add_test(tc, readers_start_at_newest_oldest_or_a_given_seq);
    tcase_add_test(tc, malformed_or_out_of_order_appends_write_nothing);
    tcase_add_test(tc, next_times_out_on_an_idle_ring);
    tcase_add_test(tc, publish_wakes_a_reader_sleeping_in_another_process);
    tcase_add_test(tc, close_wakes_a_waiting_reader_with_stale);
    tcase_add_test(tc, a_reader_without_write_access_polls);
    tcase_add_test(tc, foreign_truncated_and_newer_version_files_are_refused_naming_the_field);
    tcase_add_test(tc, a_replaced_ring_is_stale_for_its_old_readers_after_they_drain);
    tcase_add_test(tc, a_ring_moved_away_from_its_path_is_stale);
    tcase_add_test(tc, close_is_stale_only_after_everything_published_is_read);
    tcase_add_test(tc, oversize_entry_is_a_marker_then_seek_past_it_continues);
    tcase_add_test(tc, pending_says_whether_next_has_something_without_waiting);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
