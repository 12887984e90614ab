/* strata-bench fanout: publish-to-receive latency and throughput from one
 * producer (this process, playing the writer) to reader processes: Strata's
 * shm ring with 1 and 4 readers against a raw SPSC shm ring written here,
 * and the distributor's PUB over TCP loopback against raw libzmq PUB/SUB.
 * Every transport carries the same bytes: whole WAL entries (lib/log/wal.md). */
#define _GNU_SOURCE
#include "bench.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "strata/entry.h"
#include "strata/pubframe.h"
#include "strata/ring.h"

/* The entries: topic "market", an 8-byte key (the seq, big-endian) and a
 * value padded so the whole entry is 64 or 512 bytes. The value starts with
 * the send time, CLOCK_MONOTONIC ns: system-wide, so a reader process can
 * subtract it from its own clock. */
#define S_TOPIC       "market"
#define S_TOPIC_BYTES 6
#define S_KEY_BYTES   8
#define S_ENTRY_TERM  1
#define S_MAX_ENTRY   512

#define S_MAX_READERS 4
#define S_MAX_BUCKETS 4096                /* the histogram has 3968 */
#define S_GROUP       64                  /* entries per publish in the grouped throughput runs */
#define S_RING_BYTES  (UINT64_C(8) << 20) /* both shm rings; fits the 32 MiB L3 */
/* msg/s in the latency runs. 100k/s saturates ZeroMQ's per-message path on
 * two cores (the producer held only about 65k/s), so TCP runs slower. */
#define S_SHM_PACED_RATE 100000
#define S_TCP_PACED_RATE 20000
#define S_SPIN_US        1000000 /* ring readers busy-poll: a second before any futex sleep */
#define S_POLL_MS        100     /* readers look at the abort flag and deadline this often */
#define S_TCP_WINDOW     16384   /* messages in flight over TCP, at most half a ring */
#define S_TCP_WARMUP     20000
#define S_READY_S        10.0 /* readers, and the distributor, to be ready */
#define S_REAP_S         5.0

/* Per configuration: reps runs, the median reported. A paced run lasts
 * PACED_S at its rate; an unpaced one sends UNPACED_MSGS or stops at
 * UNPACED_MAX_S (the row says how many went). A paced producer that falls
 * behind stops at twice PACED_S. --quick must finish the verb in under two
 * minutes: 3 modes x 2 sizes x 5 configurations x 3 reps, under 0.4 s each
 * on an idle machine (warm-up included) and at most about 1 s. */
#define QUICK_REPS          3
#define QUICK_PACED_S       0.3
#define QUICK_UNPACED_MSGS  300000
#define QUICK_UNPACED_MAX_S 0.5
#define QUICK_RUN_S         10.0 /* a run's deadline, when something is stuck */
#define FULL_REPS           5
#define FULL_PACED_S        3.0
#define FULL_UNPACED_MSGS   3000000
#define FULL_UNPACED_MAX_S  10.0
#define FULL_RUN_S          60.0
#define MAX_REPS            (FULL_REPS > QUICK_REPS ? FULL_REPS : QUICK_REPS)

static const unsigned s_sizes[] = {64, 512};
#define SIZE_COUNT (sizeof s_sizes / sizeof s_sizes[0])

typedef struct {
    const char *name;
    bool paced;
    unsigned group; /* entries per publish */
    const char *what;
} s_mode_t;

static const s_mode_t s_modes[] = {
    {"lat", true, 1, "latency: paced, one publish per message"},
    {"tput.b1", false, 1,
     "throughput: unpaced, one publish per message (latency includes queueing)"},
    {"tput.b64", false, S_GROUP,
     "throughput: unpaced, one publish per 64 messages (latency includes queueing)"},
};
#define MODE_COUNT (sizeof s_modes / sizeof s_modes[0])

/* ---- what the readers share with the producer ---------------------------- */

typedef enum {
    S_READER_STARTING = 0,
    S_READER_READY,
    S_READER_DONE,
    S_READER_FAILED, /* the states from here on are failures */
    S_READER_LAPPED,
} s_reader_state_t;

typedef struct {
    uint64_t upper_ns;
    uint64_t count;
} s_bucket_t;

/* One reader process's slot in the shared block; each on its own lines so
 * the readers' progress stores do not contend. */
typedef struct {
    _Alignas(64) _Atomic uint64_t progress_seq; /* last seq taken; the producer's window */
    _Alignas(64) _Atomic int state;             /* s_reader_state_t */
    uint64_t last_receive_ns;
    uint64_t measured; /* messages whose latency was recorded */
    char error[256];
    uint32_t n_buckets; /* the latency histogram, for the producer to merge */
    s_bucket_t buckets[S_MAX_BUCKETS];
} s_slot_t;

typedef struct {
    _Atomic int abort;
    _Atomic int port; /* zmq: the PUB's port, once bound */
    /* The last seq of the run; lowered, once, when the producer stops
     * early at its time cap (readers notice within S_POLL_MS). */
    _Alignas(64) _Atomic uint64_t last_seq;
    s_slot_t slots[S_MAX_READERS];
} s_shared_t;

/* The raw SPSC ring: a head counter (bytes published) and records of
 * [u32 length][u32 zero][bytes], 8-byte aligned; a length of S_SPSC_WRAP
 * sends the reader to the start. The producer's window is its tail. */
#define S_SPSC_WRAP UINT32_MAX
typedef struct {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) uint8_t data[];
} s_spsc_t;

typedef struct s_run s_run_t;
typedef struct s_distributor s_distributor_t;
typedef struct s_reader s_reader_t;

/* One transport: setup runs before the readers fork, start after; publish
 * makes count concatenated entries (seqs up to last_seq) visible; poke is
 * called while the producer waits for the readers to be ready. */
typedef struct {
    const char *name;
    const char *anchor;  /* the transport this one is compared with, or NULL */
    unsigned paced_rate; /* msg/s in the latency runs */
    bool tcp;            /* else shared memory */
    int (*setup)(s_run_t *run);
    int (*start)(s_run_t *run);
    int (*publish)(s_run_t *run, const uint8_t *entries, size_t len, unsigned count,
                   uint64_t last_seq);
    void (*poke)(s_run_t *run);
    void (*teardown)(s_run_t *run);
    int (*read)(s_reader_t *reader); /* a reader process's loop */
} s_transport_t;

/* One run of one configuration. Readers are forked from it, so they see
 * every field as it was at fork. */
struct s_run {
    const s_transport_t *transport;
    const s_mode_t *mode;
    unsigned readers;
    unsigned size;
    uint64_t first_seq;
    uint64_t warmup_msgs;  /* unmeasured, first: shm pages faulted in on both sides */
    uint64_t measure_from; /* first measured seq */
    uint64_t msgs;         /* measured messages planned; shared->last_seq is what went */
    uint64_t window;       /* most messages the producer may be ahead of the slowest reader */
    uint64_t min_progress; /* the producer's cached view of the slowest reader */
    uint64_t deadline_ns;
    uint64_t realtime_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC, for entry timestamps */
    s_shared_t *shared;
    pid_t pids[S_MAX_READERS]; /* 0 once reaped */
    int statuses[S_MAX_READERS];
    char error[512]; /* the first failure, for the row */
    bool lapped;
    uint8_t *entries; /* a group of entries being built */
    /* transport state */
    char ring_path[128];
    strata_ring_t *ring;
    uint64_t appended_seq; /* the last seq appended to ring */
    s_distributor_t *distributor;
    s_spsc_t *spsc;
    uint64_t spsc_pos;
    void *zmq_ctx;
    void *zmq_pub;
    uint64_t last_poke_ns;
};

/* A reader process's state. */
struct s_reader {
    s_run_t *run;
    s_slot_t *slot;
    strata_histogram_t *latency;
    uint64_t expected_seq;
};

static inline void s_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* For polling loops outside the measured path. */
static void s_pause_briefly(void)
{
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

static inline void s_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void s_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t s_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t s_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- entries ------------------------------------------------------------- */

/* Where this bench's entries hold the key (the seq, big-endian) and the
 * value (the send time first): found once, before any reader forks, by
 * decoding an entry strata_entry_encode built, so that the readers of the
 * raw anchors read those two fields without decoding every message and
 * without a copy of the entry's layout here. */
static size_t s_key_off, s_value_off;

/* The entry for seq, sent at sent_ns, of size bytes in all. */
static void s_entry_build(uint8_t *entry, unsigned size, uint64_t seq, uint64_t sent_ns,
                          uint64_t realtime_offset_ns)
{
    uint8_t key[S_KEY_BYTES], value[S_MAX_ENTRY];
    size_t value_len = size - strata_entry_size(S_TOPIC_BYTES, S_KEY_BYTES, 0);
    for (int i = 0; i < S_KEY_BYTES; i++)
        key[i] = (uint8_t)(seq >> (56 - 8 * i));
    s_put_le64(value, sent_ns);
    for (size_t i = 8; i < value_len; i++)
        value[i] = (uint8_t)('a' + (i * 7) % 26);
    strata_entry_t e = {.seq = seq,
                        .term = S_ENTRY_TERM,
                        .timestamp_ns = sent_ns + realtime_offset_ns,
                        .type = STRATA_VALUE_PUT,
                        .topic = (const uint8_t *)S_TOPIC,
                        .topic_len = S_TOPIC_BYTES,
                        .key = key,
                        .key_len = S_KEY_BYTES,
                        .value = value,
                        .value_len = (uint32_t)value_len};
    strata_entry_encode(entry, &e);
}

static void s_layout_init(void)
{
    uint8_t buf[S_MAX_ENTRY];
    s_entry_build(buf, 64, 1, 0, 0);
    strata_entry_t e;
    size_t used = 0;
    strata_error_t err;
    if (strata_entry_decode(buf, 64, 0, &e, &used, &err) != 0 || used != 64) {
        fprintf(stderr, "strata-bench: fanout: the bench's own entry does not decode: %s\n",
                err.msg);
        exit(1);
    }
    s_key_off = (size_t)(e.key - buf);
    s_value_off = (size_t)(e.value - buf);
}

static inline uint64_t s_seq_of(const uint8_t *entry)
{
    uint64_t v = 0;
    for (int i = 0; i < S_KEY_BYTES; i++)
        v = v << 8 | entry[s_key_off + i];
    return v;
}

static inline uint64_t s_sent_of(const uint8_t *entry)
{
    return s_get_le64(entry + s_value_off);
}

/* ---- the reader side (child processes) ----------------------------------- */

static int s_reader_fail(s_reader_t *r, s_reader_state_t state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_reader_fail(s_reader_t *r, s_reader_state_t state, const char *fmt, ...)
{
    if (!r->slot->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->slot->error, sizeof r->slot->error, fmt, ap);
        va_end(ap);
    }
    atomic_store(&r->slot->state, state);
    return -1;
}

static void s_reader_ready(s_reader_t *r)
{
    atomic_store(&r->slot->state, S_READER_READY);
}

static bool s_reader_finished(const s_reader_t *r)
{
    return r->expected_seq > atomic_load_explicit(&r->run->shared->last_seq, memory_order_relaxed);
}

/* Checked whenever a reader has waited a while: the producer gave up, or
 * the run is past its deadline. */
static int s_reader_check_stop(s_reader_t *r)
{
    if (atomic_load(&r->run->shared->abort))
        return s_reader_fail(r, S_READER_FAILED, "stopped by the producer at seq %" PRIu64,
                             r->expected_seq);
    if (bench_now_ns() > r->run->deadline_ns)
        return s_reader_fail(r, S_READER_FAILED,
                             "deadline passed waiting for seq %" PRIu64 " (last is %" PRIu64 ")",
                             r->expected_seq, atomic_load(&r->run->shared->last_seq));
    return 0;
}

/* One received message: exactly once and in order, or the run fails. */
static inline int s_reader_take(s_reader_t *r, uint64_t seq, uint64_t sent_ns, uint64_t now_ns)
{
    if (seq != r->expected_seq)
        return s_reader_fail(
            r, S_READER_FAILED, "seq %" PRIu64 " arrived where %" PRIu64 " was due (%s)", seq,
            r->expected_seq, seq < r->expected_seq ? "a duplicate or reordering" : "a gap");
    if (seq >= r->run->measure_from) {
        strata_histogram_record(r->latency, now_ns - sent_ns);
        r->slot->measured++;
        r->slot->last_receive_ns = now_ns;
    }
    atomic_store_explicit(&r->slot->progress_seq, seq, memory_order_release);
    r->expected_seq++;
    return 0;
}

/* The histogram goes to the producer as (bucket top, count) pairs: merging
 * them back loses nothing a percentile can see. */
static void s_reader_store_histogram(s_reader_t *r)
{
    strata_histogram_cursor_t cursor = {0};
    uint64_t upper, cumulative, previous = 0;
    uint32_t n = 0;
    while (n < S_MAX_BUCKETS &&
           strata_histogram_next_bucket(r->latency, &cursor, &upper, &cumulative)) {
        r->slot->buckets[n++] = (s_bucket_t){upper, cumulative - previous};
        previous = cumulative;
    }
    r->slot->n_buckets = n;
}

static void s_reader_process(s_run_t *run, unsigned index, pid_t parent)
{
    /* Dies with the bench, so an aborted run leaves no spinning reader. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(EXIT_FAILURE);
    s_reader_t r = {.run = run,
                    .slot = &run->shared->slots[index],
                    .latency = strata_histogram_new(),
                    .expected_seq = run->first_seq};
    if (!r.latency)
        _exit(EXIT_FAILURE);
    int rc = run->transport->read(&r);
    if (rc == 0 && !s_reader_finished(&r))
        rc = s_reader_fail(&r, S_READER_FAILED, "reader loop ended early");
    s_reader_store_histogram(&r);
    if (rc == 0)
        atomic_store(&r.slot->state, S_READER_DONE);
    _exit(rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

/* ---- the producer's side of the processes -------------------------------- */

static int s_run_fail(s_run_t *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_run_fail(s_run_t *run, const char *fmt, ...)
{
    if (!run->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(run->error, sizeof run->error, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Reaps reader i if it has exited; true when it is gone. */
static bool s_reader_reaped(s_run_t *run, unsigned i)
{
    if (run->pids[i] == 0)
        return true;
    if (waitpid(run->pids[i], &run->statuses[i], WNOHANG) != run->pids[i])
        return false;
    run->pids[i] = 0;
    return true;
}

/* A reader's failure as the run's, in words. */
static int s_run_fail_reader(s_run_t *run, unsigned i, const char *waiting_for)
{
    s_slot_t *slot = &run->shared->slots[i];
    int state = atomic_load(&slot->state);
    if (state == S_READER_LAPPED)
        run->lapped = true;
    if (state >= S_READER_FAILED)
        return s_run_fail(run, "reader %u %s: %s", i,
                          state == S_READER_LAPPED ? "LAPPED" : "failed",
                          slot->error[0] ? slot->error : "no reason given");
    if (run->pids[i] == 0) {
        char how[96];
        bench_describe_status(run->statuses[i], how, sizeof how);
        return s_run_fail(run, "reader %u ended with %s %s", i, how, waiting_for);
    }
    uint64_t progress = atomic_load(&slot->progress_seq);
    if (progress < run->first_seq)
        return s_run_fail(run, "reader %u: deadline passed %s, with no message taken", i,
                          waiting_for);
    return s_run_fail(run,
                      "reader %u: deadline passed %s (it took seqs %" PRIu64 "..%" PRIu64
                      ", of %" PRIu64 "..%" PRIu64 ")",
                      i, waiting_for, run->first_seq, progress, run->first_seq,
                      atomic_load(&run->shared->last_seq));
}

typedef enum { S_WAIT_READY, S_WAIT_PROGRESS, S_WAIT_DONE } s_wait_t;

static bool s_reader_met(s_run_t *run, unsigned i, s_wait_t what, uint64_t seq)
{
    s_slot_t *slot = &run->shared->slots[i];
    int state = atomic_load(&slot->state);
    switch (what) {
    case S_WAIT_READY:
        return state >= S_READER_READY && state < S_READER_FAILED;
    case S_WAIT_PROGRESS:
        return atomic_load(&slot->progress_seq) >= seq;
    case S_WAIT_DONE:
        return state == S_READER_DONE;
    }
    return false;
}

/* Checks reader i once: 1 when it satisfies what, 0 not yet, -1 when it
 * failed or died (the run's error says which and why). */
static int s_reader_check(s_run_t *run, unsigned i, s_wait_t what, uint64_t seq,
                          const char *waiting_for)
{
    if (atomic_load(&run->shared->slots[i].state) >= S_READER_FAILED)
        return s_run_fail_reader(run, i, waiting_for);
    if (s_reader_met(run, i, what, seq))
        return 1;
    /* The state is stored before the exit, so a reader that is gone
     * without meeting the condition never will. */
    if (s_reader_reaped(run, i) && !s_reader_met(run, i, what, seq))
        return s_run_fail_reader(run, i, waiting_for);
    return 0;
}

/* 1 when every reader satisfies what, 0 not yet, -1 when one failed. */
static int s_readers_check(s_run_t *run, s_wait_t what, uint64_t seq, const char *waiting_for)
{
    int all = 1;
    for (unsigned i = 0; i < run->readers; i++) {
        int rc = s_reader_check(run, i, what, seq, waiting_for);
        if (rc < 0)
            return -1;
        if (rc == 0)
            all = 0;
    }
    return all;
}

static int s_readers_wait(s_run_t *run, s_wait_t what, uint64_t seq, double seconds,
                          const char *waiting_for)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
    if (deadline > run->deadline_ns)
        deadline = run->deadline_ns;
    for (;;) {
        int rc = s_readers_check(run, what, seq, waiting_for);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
        if (bench_now_ns() > deadline) {
            for (unsigned i = 0; i < run->readers; i++)
                if (s_reader_check(run, i, what, seq, waiting_for) == 0)
                    return s_run_fail_reader(run, i, waiting_for);
            return s_run_fail(run, "deadline passed %s", waiting_for);
        }
        if (what == S_WAIT_READY && run->transport->poke)
            run->transport->poke(run);
        s_pause_briefly();
    }
}

/* Forks the readers; each runs the transport's loop and exits. */
static int s_readers_start(s_run_t *run)
{
    pid_t parent = getpid();
    fflush(NULL);
    for (unsigned i = 0; i < run->readers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return s_run_fail(run, "fork: %s", strerror(errno));
        if (pid == 0)
            s_reader_process(run, i, parent); /* does not return */
        run->pids[i] = pid;
    }
    return 0;
}

/* Waits for every reader to exit; kills those still there after grace. A
 * reader that exits non-zero after saying it was done fails the run too. */
static int s_readers_reap(s_run_t *run, double grace_s)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(grace_s * 1e9);
    int rc = 0;
    for (unsigned i = 0; i < run->readers; i++) {
        while (!s_reader_reaped(run, i) && bench_now_ns() < deadline)
            s_pause_briefly();
        if (run->pids[i] != 0) {
            kill(run->pids[i], SIGKILL);
            waitpid(run->pids[i], &run->statuses[i], 0);
            run->pids[i] = 0;
            rc = s_run_fail(run, "reader %u did not exit within %.0f s; killed", i, grace_s);
        } else if (!WIFEXITED(run->statuses[i]) || WEXITSTATUS(run->statuses[i]) != 0) {
            rc = s_run_fail_reader(run, i, "at the end");
        }
    }
    return rc;
}

/* ---- the producer -------------------------------------------------------- */

static uint64_t s_min_progress(s_run_t *run)
{
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < run->readers; i++) {
        uint64_t p =
            atomic_load_explicit(&run->shared->slots[i].progress_seq, memory_order_acquire);
        if (p < min)
            min = p;
    }
    return min;
}

/* Holds the producer until the slowest reader is within the window of
 * last_seq: the SPSC ring's tail, and for the others the same bound, so
 * unpaced runs measure delivery to every reader rather than how fast the
 * producer can overwrite them (or ZeroMQ can queue). */
static int s_window_wait(s_run_t *run, uint64_t last_seq)
{
    if (last_seq - run->min_progress <= run->window)
        return 0;
    for (uint64_t spins = 0;; spins++) {
        run->min_progress = s_min_progress(run);
        if (last_seq - run->min_progress <= run->window)
            return 0;
        if (spins % 1024 == 1023) {
            int rc = s_readers_check(run, S_WAIT_PROGRESS, last_seq - run->window,
                                     "while the producer waited for it");
            if (rc < 0)
                return -1;
            if (bench_now_ns() > run->deadline_ns)
                return s_run_fail(run,
                                  "deadline passed with the producer at seq %" PRIu64
                                  " waiting for the readers (slowest at %" PRIu64 ")",
                                  last_seq, run->min_progress);
        }
        sched_yield(); /* on two cores the reader may need this one */
    }
}

/* Sends up to count messages from seq first_seq, in groups of the mode's
 * size, paced or not, stopping early at stop_ns (0: never). *start_ns gets
 * the send time of the first, *sent how many went. */
static int s_produce(s_run_t *run, uint64_t first_seq, uint64_t count, bool paced, uint64_t stop_ns,
                     uint64_t *start_ns, uint64_t *sent)
{
    unsigned group = run->mode->group;
    uint64_t period_ns = paced ? 1000000000u / run->transport->paced_rate : 0;
    uint64_t next_send_ns = bench_now_ns();
    *start_ns = next_send_ns;
    for (*sent = 0; *sent < count;) {
        unsigned n = count - *sent < group ? (unsigned)(count - *sent) : group;
        uint64_t seq = first_seq + *sent;
        if (s_window_wait(run, seq + n - 1) != 0)
            return -1;
        uint64_t now = bench_now_ns();
        if (paced) {
            /* Busy-wait to the slot; after a stall (descheduled) start a
             * new schedule rather than burst to catch up. */
            while (now < next_send_ns) {
                s_cpu_relax();
                now = bench_now_ns();
            }
            next_send_ns =
                now > next_send_ns + period_ns ? now + period_ns : next_send_ns + period_ns;
        }
        if (stop_ns && now >= stop_ns && *sent > 0)
            break;
        for (unsigned i = 0; i < n; i++)
            s_entry_build(run->entries + (size_t)i * run->size, run->size, seq + i, bench_now_ns(),
                          run->realtime_offset_ns);
        if (*sent == 0)
            *start_ns = s_sent_of(run->entries);
        if (run->transport->publish(run, run->entries, (size_t)n * run->size, n, seq + n - 1) != 0)
            return -1;
        *sent += n;
    }
    return 0;
}

/* ---- (a) the Strata shm ring --------------------------------------------- */

static int s_ring_setup(s_run_t *run)
{
    snprintf(run->ring_path, sizeof run->ring_path, "/dev/shm/strata-bench-fanout-%d.ring",
             (int)getpid());
    strata_ring_options_t options = {.capacity_bytes = S_RING_BYTES, .first_seq = run->first_seq};
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_ring_create(run->ring_path, &options, &run->ring, &err);
    if (rc != 0)
        return s_run_fail(run, "strata_ring_create %s: %s (%s)", run->ring_path,
                          strata_strerror(rc), err.msg);
    return 0;
}

static int s_ring_publish(s_run_t *run, const uint8_t *entries, size_t len, unsigned count,
                          uint64_t last_seq)
{
    strata_error_t err;
    int rc = strata_ring_append(run->ring, entries, len, &err);
    if (rc != 0)
        return s_run_fail(run, "strata_ring_append of seq %" PRIu64 ": %s (%s)",
                          last_seq - count + 1, strata_strerror(rc), err.msg);
    run->appended_seq = last_seq;
    strata_ring_publish(run->ring, last_seq);
    return 0;
}

static void s_ring_teardown(s_run_t *run)
{
    strata_ring_close(&run->ring, true);
}

/* A local subscriber: every ordinary topic, from the run's first seq,
 * busy-polling in next() (spin_us outlasts the timeout). */
static int s_ring_read(s_reader_t *r)
{
    s_run_t *run = r->run;
    strata_ring_reader_options_t options = {
        .start = STRATA_RING_FROM_SEQ, .from_seq = run->first_seq, .spin_us = S_SPIN_US};
    strata_ring_reader_t *reader = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_ring_reader_open(run->ring_path, &options, &reader, &err);
    if (rc != 0)
        return s_reader_fail(r, S_READER_FAILED, "strata_ring_reader_open %s: %s (%s)",
                             run->ring_path, strata_strerror(rc), err.msg);
    s_reader_ready(r);
    rc = 0;
    while (rc == 0 && !s_reader_finished(r)) {
        strata_entry_t entry;
        int next_rc = strata_ring_reader_next(reader, S_POLL_MS, &entry, NULL, NULL);
        uint64_t now = bench_now_ns();
        if (next_rc == STRATA_ETIMEDOUT) {
            rc = s_reader_check_stop(r);
        } else if (next_rc == STRATA_ELAPPED) {
            rc = s_reader_fail(r, S_READER_LAPPED,
                               "lapped by the producer: next seq %" PRIu64 " is gone",
                               strata_ring_reader_next_seq(reader));
        } else if (next_rc != 0) {
            rc = s_reader_fail(r, S_READER_FAILED,
                               "strata_ring_reader_next waiting for seq %" PRIu64 ": %s",
                               r->expected_seq, strata_strerror(next_rc));
        } else if (entry.value_len < 8) {
            rc = s_reader_fail(r, S_READER_FAILED, "seq %" PRIu64 ": a %u-byte value", entry.seq,
                               entry.value_len);
        } else {
            uint64_t seq = entry.seq, sent_ns = s_get_le64(entry.value);
            if (!strata_ring_reader_intact(reader))
                rc = s_reader_fail(r, S_READER_LAPPED,
                                   "lapped by the producer while reading seq %" PRIu64, seq);
            else
                rc = s_reader_take(r, seq, sent_ns, now);
        }
    }
    strata_ring_reader_close(&reader);
    return rc;
}

static const s_transport_t s_ring_transport = {
    .name = "ring",
    .paced_rate = S_SHM_PACED_RATE,
    .anchor = "spsc",
    .setup = s_ring_setup,
    .publish = s_ring_publish,
    .teardown = s_ring_teardown,
    .read = s_ring_read,
};

/* ---- (b) the raw SPSC shm ring: the physical anchor for (a) -------------- */

static size_t s_spsc_map_bytes(void)
{
    return sizeof(s_spsc_t) + S_RING_BYTES;
}

/* A memfd mapped shared before the fork: the reader process inherits the
 * mapping, as it would get it by mapping a /dev/shm file. */
static int s_spsc_setup(s_run_t *run)
{
    int fd = memfd_create("strata-bench-spsc", MFD_CLOEXEC);
    if (fd < 0)
        return s_run_fail(run, "memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)s_spsc_map_bytes()) != 0) {
        close(fd);
        return s_run_fail(run, "ftruncate memfd: %s", strerror(errno));
    }
    void *map = mmap(NULL, s_spsc_map_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return s_run_fail(run, "mmap memfd: %s", strerror(errno));
    run->spsc = map;
    run->spsc_pos = 0;
    return 0;
}

static int s_spsc_publish(s_run_t *run, const uint8_t *entries, size_t len, unsigned count,
                          uint64_t last_seq)
{
    uint64_t pos = run->spsc_pos;
    size_t entry_len = len / count;
    uint64_t record_bytes = 8 + ((entry_len + 7) & ~(uint64_t)7);
    for (unsigned i = 0; i < count; i++) {
        uint64_t offset = pos & (S_RING_BYTES - 1);
        if (offset + record_bytes > S_RING_BYTES) {
            s_put_le32(run->spsc->data + offset, S_SPSC_WRAP);
            pos += S_RING_BYTES - offset;
            offset = 0;
        }
        uint8_t *record = run->spsc->data + offset;
        s_put_le32(record, (uint32_t)entry_len);
        memcpy(record + 8, entries + i * entry_len, entry_len);
        pos += record_bytes;
    }
    run->spsc_pos = pos;
    atomic_store_explicit(&run->spsc->head, pos, memory_order_release);
    return 0;
}

static void s_spsc_teardown(s_run_t *run)
{
    if (run->spsc)
        munmap(run->spsc, s_spsc_map_bytes());
    run->spsc = NULL;
}

/* Busy-polls the head; reads seq and send time in place. */
static int s_spsc_read(s_reader_t *r)
{
    s_spsc_t *spsc = r->run->spsc;
    uint64_t cursor = 0;
    s_reader_ready(r);
    for (uint64_t spins = 0; !s_reader_finished(r);) {
        uint64_t head = atomic_load_explicit(&spsc->head, memory_order_acquire);
        if (head == cursor) {
            s_cpu_relax();
            if (++spins % (1u << 20) == 0 && s_reader_check_stop(r) != 0)
                return -1;
            continue;
        }
        if (head - cursor > S_RING_BYTES)
            return s_reader_fail(r, S_READER_LAPPED, "lapped: head %" PRIu64 ", cursor %" PRIu64,
                                 head, cursor);
        while (cursor < head) {
            uint64_t offset = cursor & (S_RING_BYTES - 1);
            const uint8_t *record = spsc->data + offset;
            uint32_t len = s_get_le32(record);
            if (len == S_SPSC_WRAP) {
                cursor += S_RING_BYTES - offset;
                continue;
            }
            uint64_t now = bench_now_ns();
            if (s_reader_take(r, s_seq_of(record + 8), s_sent_of(record + 8), now) != 0)
                return -1;
            cursor += 8 + ((len + 7) & ~(uint64_t)7);
        }
    }
    return 0;
}

static const s_transport_t s_spsc_transport = {
    .name = "spsc",
    .paced_rate = S_SHM_PACED_RATE,
    .setup = s_spsc_setup,
    .publish = s_spsc_publish,
    .teardown = s_spsc_teardown,
    .read = s_spsc_read,
};

/* ---- (d) raw libzmq PUB/SUB over TCP loopback: the anchor for (c) -------- */

/* The PUB binds after the fork (a ZeroMQ context must not cross one) and
 * hands its port to the readers through the shared block. No HWM: the
 * window bounds what is queued, so nothing is dropped. */
static int s_zmq_start(s_run_t *run)
{
    run->zmq_ctx = zmq_ctx_new();
    run->zmq_pub = run->zmq_ctx ? zmq_socket(run->zmq_ctx, ZMQ_PUB) : NULL;
    if (!run->zmq_pub)
        return s_run_fail(run, "zmq PUB socket: %s", zmq_strerror(zmq_errno()));
    int zero = 0;
    char endpoint[256];
    size_t endpoint_len = sizeof endpoint;
    if (zmq_setsockopt(run->zmq_pub, ZMQ_SNDHWM, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(run->zmq_pub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(run->zmq_pub, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(run->zmq_pub, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len) != 0)
        return s_run_fail(run, "zmq PUB bind tcp://127.0.0.1:*: %s", zmq_strerror(zmq_errno()));
    const char *colon = strrchr(endpoint, ':');
    atomic_store(&run->shared->port, colon ? atoi(colon + 1) : 0);
    return 0;
}

static int s_zmq_send_entry(s_run_t *run, const uint8_t *entry, size_t len)
{
    if (zmq_send(run->zmq_pub, S_TOPIC, S_TOPIC_BYTES, ZMQ_SNDMORE) < 0 ||
        zmq_send(run->zmq_pub, entry, len, 0) < 0)
        return s_run_fail(run, "zmq_send: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static int s_zmq_publish(s_run_t *run, const uint8_t *entries, size_t len, unsigned count,
                         uint64_t last_seq)
{
    size_t entry_len = len / count;
    for (unsigned i = 0; i < count; i++)
        if (s_zmq_send_entry(run, entries + i * entry_len, entry_len) != 0)
            return -1;
    return 0;
}

/* A SUB that connects late misses what was sent before its subscription
 * arrived, so until every reader is ready the producer sends probes (seq
 * 0), which the readers skip; the first one a reader sees makes it ready. */
static void s_zmq_poke(s_run_t *run)
{
    uint64_t now = bench_now_ns();
    if (now - run->last_poke_ns < 1000000)
        return;
    run->last_poke_ns = now;
    s_entry_build(run->entries, run->size, 0, now, run->realtime_offset_ns);
    s_zmq_send_entry(run, run->entries, run->size);
}

static void s_zmq_teardown(s_run_t *run)
{
    if (run->zmq_pub)
        zmq_close(run->zmq_pub);
    if (run->zmq_ctx)
        zmq_ctx_term(run->zmq_ctx);
    run->zmq_pub = run->zmq_ctx = NULL;
}

static int s_zmq_read(s_reader_t *r)
{
    s_run_t *run = r->run;
    int port;
    while ((port = atomic_load(&run->shared->port)) == 0) {
        if (s_reader_check_stop(r) != 0)
            return -1;
        s_pause_briefly();
    }
    void *ctx = zmq_ctx_new();
    void *sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    int zero = 0, timeout_ms = S_POLL_MS, rc = 0;
    if (!sub || zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms) != 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, S_TOPIC, S_TOPIC_BYTES) != 0 ||
        zmq_connect(sub, endpoint) != 0)
        rc = s_reader_fail(r, S_READER_FAILED, "zmq SUB %s: %s", endpoint,
                           zmq_strerror(zmq_errno()));
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    while (rc == 0 && !s_reader_finished(r)) {
        if (zmq_msg_recv(&topic, sub, 0) < 0) {
            if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
                rc = s_reader_check_stop(r);
            else
                rc = s_reader_fail(r, S_READER_FAILED, "zmq_msg_recv: %s",
                                   zmq_strerror(zmq_errno()));
            continue;
        }
        /* The rest of a multipart message is already here. */
        if (!zmq_msg_more(&topic) || zmq_msg_recv(&body, sub, 0) < 0) {
            rc = s_reader_fail(r, S_READER_FAILED, "a message without its payload frame");
            continue;
        }
        uint64_t now = bench_now_ns();
        const uint8_t *entry = zmq_msg_data(&body);
        if (zmq_msg_size(&body) != run->size) {
            rc = s_reader_fail(r, S_READER_FAILED, "a %zu-byte payload, not %u",
                               zmq_msg_size(&body), run->size);
            continue;
        }
        uint64_t seq = s_seq_of(entry);
        if (seq == 0) {
            if (atomic_load(&r->slot->state) == S_READER_STARTING)
                s_reader_ready(r);
            continue;
        }
        rc = s_reader_take(r, seq, s_sent_of(entry), now);
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    if (sub)
        zmq_close(sub);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

static const s_transport_t s_zmq_transport = {
    .name = "zmq",
    .paced_rate = S_TCP_PACED_RATE,
    .tcp = true,
    .start = s_zmq_start,
    .publish = s_zmq_publish,
    .poke = s_zmq_poke,
    .teardown = s_zmq_teardown,
    .read = s_zmq_read,
};

/* ---- (c) the distributor's live PUB over TCP loopback -------------------- */

/* bench/CMakeLists.txt names the built distributor; this is for other builds. */
#ifndef STRATA_DISTRIBUTOR_BIN
#define STRATA_DISTRIBUTOR_BIN "build/services/distributor/strata-distributor"
#endif
#define S_DISTRIBUTOR_STOP_S 10.0

/* One strata-distributor for the whole verb, reading a ring this process
 * produces as the writer would: it finds the ring through
 * <dir>/writer.endpoints. The ring lives as long as the distributor, so
 * seqs go on from run to run. */
struct s_distributor {
    pid_t pid; /* 0 when not running */
    char *dir;
    char *log_path;
    char ring_path[128];
    strata_ring_t *ring;
    uint64_t next_seq; /* the next seq to append */
    bool warmed;       /* the ring has wrapped once */
    char live[256];    /* the live XPUB's endpoint */
};

/* True while the distributor runs; reaps it and says why when it is gone. */
static bool s_distributor_alive(s_distributor_t *d)
{
    int status;
    if (d->pid <= 0)
        return false;
    if (waitpid(d->pid, &status, WNOHANG) != d->pid)
        return true;
    char how[96];
    bench_describe_status(status, how, sizeof how);
    fprintf(stderr, "strata-bench: strata-distributor (pid %d) ended with %s\n", (int)d->pid, how);
    bench_show_log_tail(d->log_path);
    d->pid = 0;
    return false;
}

/* <dir>/writer.endpoints as the writer writes it, naming our ring. */
static int s_distributor_write_writer_file(const s_distributor_t *d)
{
    char *path = bench_path(d->dir, "writer.endpoints");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    zconfig_t *root = zconfig_new("root", NULL);
    zconfig_put(root, "writer/pid", pid);
    zconfig_put(root, "writer/ring", d->ring_path);
    int rc = zconfig_save(root, path);
    zconfig_destroy(&root);
    if (rc != 0)
        fprintf(stderr, "strata-bench: cannot write %s\n", path);
    free(path);
    return rc == 0 ? 0 : -1;
}

static int s_distributor_wait_ready(s_distributor_t *d)
{
    int rc =
        bench_wait_endpoints(d->pid, "strata-distributor", d->dir, "distributor",
                             "distributor/live", d->live, sizeof d->live, S_READY_S, d->log_path);
    if (rc != 0 && waitpid(d->pid, NULL, WNOHANG) != 0)
        d->pid = 0; /* reaped: it ended */
    return rc;
}

static int s_distributor_start(s_distributor_t *d, bench_t *b)
{
    memset(d, 0, sizeof *d);
    d->next_seq = 1;
    if (access(STRATA_DISTRIBUTOR_BIN, X_OK) != 0) {
        fprintf(stderr,
                "strata-bench: fanout: no strata-distributor at %s (%s); the distributor "
                "rows are skipped\n",
                STRATA_DISTRIBUTOR_BIN, strerror(errno));
        return -1;
    }
    d->dir = bench_case_dir(b, "fanout-distributor");
    d->log_path = bench_path(d->dir, "distributor.log");
    char *wal_dir = bench_path(d->dir, "wal");
    int made = mkdir(wal_dir, 0755);
    free(wal_dir);
    snprintf(d->ring_path, sizeof d->ring_path, "/dev/shm/strata-bench-fanout-%d-distributor.ring",
             (int)getpid());
    strata_ring_options_t options = {.capacity_bytes = S_RING_BYTES, .first_seq = d->next_seq};
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_ring_create(d->ring_path, &options, &d->ring, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: strata_ring_create %s: %s (%s)\n", d->ring_path,
                strata_strerror(rc), err.msg);
        return -1;
    }
    if (made != 0 || s_distributor_write_writer_file(d) != 0)
        return -1;
    char *data_dir_var = NULL;
    if (asprintf(&data_dir_var, "STRATA_NODE_DATA_DIR=%s", d->dir) < 0)
        data_dir_var = NULL;
    bench_alloc_or_die(data_dir_var);
    /* Ports the OS picks, so a node already running here does not collide. */
    const char *const env[] = {data_dir_var,
                               "STRATA_DISTRIBUTOR_LIVE=tcp://127.0.0.1:*",
                               "STRATA_DISTRIBUTOR_DELAYED=tcp://127.0.0.1:*",
                               "STRATA_DISTRIBUTOR_HISTORY=tcp://127.0.0.1:*",
                               "STRATA_DISTRIBUTOR_METRICS=127.0.0.1:0",
                               NULL};
    char *const argv[] = {STRATA_DISTRIBUTOR_BIN, NULL};
    d->pid = bench_spawn(argv, env, d->log_path);
    free(data_dir_var);
    if (d->pid < 0) {
        d->pid = 0;
        return -1;
    }
    return s_distributor_wait_ready(d);
}

/* SIGTERM, then SIGKILL after a grace period; removes the ring. Returns -1
 * when it did not end cleanly. */
static int s_distributor_stop(s_distributor_t *d)
{
    int rc = bench_stop_child(d->pid, "strata-distributor", S_DISTRIBUTOR_STOP_S, d->log_path);
    d->pid = 0;
    strata_ring_close(&d->ring, true);
    free(d->dir);
    free(d->log_path);
    d->dir = d->log_path = NULL;
    return rc;
}

static int s_distributor_setup(s_run_t *run)
{
    if (!s_distributor_alive(run->distributor))
        return s_run_fail(run, "strata-distributor is not running");
    run->ring = run->distributor->ring;
    return 0;
}

static void s_distributor_teardown(s_run_t *run)
{
    /* The ring stays; the next run appends after what this one did. */
    run->distributor->next_seq = run->appended_seq + 1;
    run->ring = NULL;
}

/* A live subscriber as proto/DISTRIBUTION.md describes it: [topic][meta][entries]
 * messages, subscribed to the topic and then to "$hb"; the first heartbeat
 * (sent when a subscription arrives) says both subscriptions are in place. */
static int s_distributor_read(s_reader_t *r)
{
    s_run_t *run = r->run;
    void *ctx = zmq_ctx_new();
    void *sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int zero = 0, timeout_ms = S_POLL_MS, rc = 0;
    if (!sub || zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms) != 0 ||
        zmq_connect(sub, run->distributor->live) != 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, S_TOPIC, S_TOPIC_BYTES) != 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "$hb", 3) != 0)
        rc = s_reader_fail(r, S_READER_FAILED, "zmq SUB %s: %s", run->distributor->live,
                           zmq_strerror(zmq_errno()));
    zmq_msg_t frames[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&frames[i]);
    while (rc == 0 && !s_reader_finished(r)) {
        if (zmq_msg_recv(&frames[0], sub, 0) < 0) {
            if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
                rc = s_reader_check_stop(r);
            else
                rc = s_reader_fail(r, S_READER_FAILED, "zmq_msg_recv: %s",
                                   zmq_strerror(zmq_errno()));
            continue;
        }
        /* The rest of a multipart message is already here. */
        if (!zmq_msg_more(&frames[0]) || zmq_msg_recv(&frames[1], sub, 0) < 0 ||
            !zmq_msg_more(&frames[1]) || zmq_msg_recv(&frames[2], sub, 0) < 0 ||
            zmq_msg_more(&frames[2])) {
            rc = s_reader_fail(r, S_READER_FAILED, "a PUB message that is not three frames");
            continue;
        }
        uint64_t now = bench_now_ns();
        /* The library's own decoder, as every subscriber's: a new meta
         * version is read here as soon as the distributor sends it. */
        strata_pub_meta_t meta;
        strata_error_t err;
        if (strata_pub_meta_decode(zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                                   zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), &meta,
                                   &err) != 0) {
            rc = s_reader_fail(r, S_READER_FAILED, "%s", err.msg);
            continue;
        }
        if (meta.kind == STRATA_PUB_HEARTBEAT) {
            if (atomic_load(&r->slot->state) == S_READER_STARTING)
                s_reader_ready(r);
            continue;
        }
        const uint8_t *entry = zmq_msg_data(&frames[2]);
        if (zmq_msg_size(&frames[2]) != (size_t)meta.count * run->size) {
            rc = s_reader_fail(r, S_READER_FAILED, "a message of %" PRIu32 " entries in %zu bytes",
                               meta.count, zmq_msg_size(&frames[2]));
            continue;
        }
        for (uint32_t i = 0; i < meta.count && rc == 0; i++, entry += run->size) {
            uint64_t seq = s_seq_of(entry);
            /* Before this run's first: what an earlier run left in flight. */
            if (seq < run->first_seq && r->expected_seq == run->first_seq)
                continue;
            rc = s_reader_take(r, seq, s_sent_of(entry), now);
        }
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&frames[i]);
    if (sub)
        zmq_close(sub);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

static const s_transport_t s_distributor_transport = {
    .name = "distributor",
    .anchor = "zmq",
    .paced_rate = S_TCP_PACED_RATE,
    .tcp = true,
    .setup = s_distributor_setup,
    .publish = s_ring_publish,
    .teardown = s_distributor_teardown,
    .read = s_distributor_read,
};

/* ---- one run ------------------------------------------------------------- */

typedef struct {
    bool ok;
    bool lapped;
    uint64_t msgs; /* measured messages sent */
    double msg_per_s;
    uint64_t p50_ns, p99_ns, p999_ns;
} s_result_t;

typedef struct {
    bench_t *b;
    double paced_seconds;
    uint64_t unpaced_msgs;
    double unpaced_max_seconds;
    double run_seconds; /* a run's deadline */
    unsigned reps;
    uint64_t realtime_offset_ns;
    s_distributor_t distributor; /* pid 0: its rows are skipped */
} s_ctx_t;

static uint64_t s_planned_msgs(const s_ctx_t *ctx, const s_transport_t *transport,
                               const s_mode_t *mode)
{
    return mode->paced ? (uint64_t)(ctx->paced_seconds * transport->paced_rate) : ctx->unpaced_msgs;
}

/* After a failed run the distributor may be stuck (a pump lapped with no
 * WAL behind the ring to fill the gap from), so the next run gets a fresh
 * one and a fresh ring. */
static void s_distributor_restart(s_ctx_t *ctx)
{
    /* Its log says why it stopped publishing, when it is still running. */
    if (s_distributor_alive(&ctx->distributor))
        bench_show_log_tail(ctx->distributor.log_path);
    s_distributor_stop(&ctx->distributor);
    if (s_distributor_start(&ctx->distributor, ctx->b) != 0)
        fprintf(stderr, "strata-bench: fanout: strata-distributor did not restart\n");
}

/* Sets up the transport, forks the readers, waits until they are ready,
 * warms up (unmeasured: every shm page faulted in on both sides), sends the
 * measured messages, waits for every reader to take the last one, and
 * merges what they measured. */
static void s_run_once(s_ctx_t *ctx, const s_transport_t *transport, unsigned readers,
                       unsigned size, const s_mode_t *mode, s_result_t *result)
{
    s_run_t run = {.transport = transport,
                   .mode = mode,
                   .readers = readers,
                   .size = size,
                   .first_seq = 1,
                   .realtime_offset_ns = ctx->realtime_offset_ns};
    bool warm = false; /* the rings start cold, except the distributor's after its first run */
    if (transport == &s_distributor_transport) {
        run.distributor = &ctx->distributor;
        run.first_seq = run.distributor->next_seq;
        warm = run.distributor->warmed;
    }
    run.appended_seq = run.first_seq - 1;
    run.msgs = s_planned_msgs(ctx, transport, mode);
    double max_seconds = mode->paced ? 2 * ctx->paced_seconds : ctx->unpaced_max_seconds;
    /* A cold ring is wrapped once, with room to spare, before measuring;
     * over TCP the connections and buffers warm up too. */
    uint64_t ring_wrap_msgs = S_RING_BYTES / size + S_RING_BYTES / size / 8;
    run.warmup_msgs = !transport->tcp || (run.distributor && !warm) ? ring_wrap_msgs : S_TCP_WARMUP;
    run.measure_from = run.first_seq + run.warmup_msgs;
    /* Half a ring, so a reader of a ring (the distributor's pump too) is
     * never lapped; TCP at most S_TCP_WINDOW. */
    run.window = S_RING_BYTES / 2 / (size + 8);
    if (transport->tcp && run.window > S_TCP_WINDOW)
        run.window = S_TCP_WINDOW;
    run.min_progress = run.first_seq - 1;
    run.deadline_ns = bench_now_ns() + (uint64_t)(ctx->run_seconds * 1e9);
    run.entries = bench_alloc_or_die(malloc((size_t)S_GROUP * size));
    run.shared =
        mmap(NULL, sizeof *run.shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (run.shared == MAP_FAILED) {
        fprintf(stderr, "strata-bench: mmap: %s\n", strerror(errno));
        exit(EXIT_FAILURE);
    }
    atomic_store(&run.shared->last_seq, run.measure_from + run.msgs - 1);
    for (unsigned i = 0; i < readers; i++)
        atomic_store(&run.shared->slots[i].progress_seq, run.first_seq - 1);

    *result = (s_result_t){0};
    uint64_t start_ns = 0, warmup_start_ns = 0, msgs = 0, warmup_sent = 0;
    int rc = transport->setup ? transport->setup(&run) : 0;
    bool forked = false;
    if (rc == 0) {
        rc = s_readers_start(&run);
        forked = true;
    }
    if (rc == 0 && transport->start)
        rc = transport->start(&run);
    if (rc == 0)
        rc = s_readers_wait(&run, S_WAIT_READY, 0, S_READY_S, "before it was ready");
    if (rc == 0)
        rc = s_produce(&run, run.first_seq, run.warmup_msgs, false, 0, &warmup_start_ns,
                       &warmup_sent);
    if (rc == 0)
        rc = s_readers_wait(&run, S_WAIT_PROGRESS, run.measure_from - 1, ctx->run_seconds,
                            "during the warm-up");
    if (rc == 0 && run.distributor)
        run.distributor->warmed = true;
    if (rc == 0) {
        uint64_t stop_ns = bench_now_ns() + (uint64_t)(max_seconds * 1e9);
        rc = s_produce(&run, run.measure_from, run.msgs, mode->paced, stop_ns, &start_ns, &msgs);
        if (msgs < run.msgs)
            atomic_store(&run.shared->last_seq, run.measure_from + msgs - 1);
    }
    if (rc == 0)
        rc = s_readers_wait(&run, S_WAIT_DONE, 0, ctx->run_seconds, "before the last message");
    if (rc != 0)
        atomic_store(&run.shared->abort, 1);
    if (forked && s_readers_reap(&run, S_REAP_S) != 0)
        rc = -1;
    if (transport->teardown)
        transport->teardown(&run);

    if (rc == 0) {
        strata_histogram_t *latency = bench_alloc_or_die(strata_histogram_new());
        uint64_t end_ns = start_ns;
        for (unsigned i = 0; i < readers; i++) {
            const s_slot_t *slot = &run.shared->slots[i];
            for (uint32_t k = 0; k < slot->n_buckets; k++)
                for (uint64_t n = 0; n < slot->buckets[k].count; n++)
                    strata_histogram_record(latency, slot->buckets[k].upper_ns);
            if (slot->last_receive_ns > end_ns)
                end_ns = slot->last_receive_ns;
            if (slot->measured != msgs)
                rc = s_run_fail(&run, "reader %u measured %" PRIu64 " of %" PRIu64 " messages", i,
                                slot->measured, msgs);
        }
        result->ok = rc == 0;
        result->msgs = msgs;
        result->msg_per_s =
            end_ns > start_ns ? (double)msgs / ((double)(end_ns - start_ns) / 1e9) : 0.0;
        result->p50_ns = strata_histogram_percentile(latency, 50.0);
        result->p99_ns = strata_histogram_percentile(latency, 99.0);
        result->p999_ns = strata_histogram_percentile(latency, 99.9);
        strata_histogram_destroy(&latency);
    }
    if (rc != 0) {
        result->lapped = run.lapped;
        fprintf(stderr, "strata-bench: fanout %s readers=%u size=%u %s: %s\n", transport->name,
                readers, size, mode->name, run.error[0] ? run.error : "failed");
        if (run.distributor)
            s_distributor_restart(ctx);
    }
    munmap(run.shared, sizeof *run.shared);
    free(run.entries);
}

/* ---- rows ---------------------------------------------------------------- */

/* One row of a table: a transport and reader count, measured reps times. */
typedef struct {
    const s_transport_t *transport;
    unsigned readers;
    s_result_t runs[MAX_REPS];
    s_result_t median;
    unsigned ok;
    unsigned lapped;
} s_row_t;

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each metric's median over the runs that succeeded (the lower middle for
 * an even count). */
static void s_row_median(s_row_t *row, unsigned reps)
{
    double values[5][MAX_REPS];
    unsigned n = 0;
    for (unsigned i = 0; i < reps; i++) {
        const s_result_t *r = &row->runs[i];
        row->lapped += r->lapped;
        if (!r->ok)
            continue;
        values[0][n] = r->msg_per_s;
        values[1][n] = (double)r->p50_ns;
        values[2][n] = (double)r->p99_ns;
        values[3][n] = (double)r->p999_ns;
        values[4][n] = (double)r->msgs;
        n++;
    }
    row->ok = n;
    if (n == 0)
        return;
    for (unsigned m = 0; m < 5; m++)
        qsort(values[m], n, sizeof values[m][0], s_compare_double);
    unsigned mid = (n - 1) / 2;
    row->median = (s_result_t){.ok = true,
                               .msg_per_s = values[0][mid],
                               .p50_ns = (uint64_t)values[1][mid],
                               .p99_ns = (uint64_t)values[2][mid],
                               .p999_ns = (uint64_t)values[3][mid],
                               .msgs = (uint64_t)values[4][mid]};
}

static void s_status(const s_row_t *row, unsigned reps, char *buf, size_t size)
{
    if (row->ok == reps)
        snprintf(buf, size, "ok");
    else if (row->lapped)
        snprintf(buf, size, "LAPPED(%u/%u)", row->lapped, reps);
    else
        snprintf(buf, size, "FAILED(%u/%u)", reps - row->ok, reps);
}

static void s_table_header(unsigned size, const s_mode_t *mode, const s_ctx_t *ctx)
{
    printf("\nfanout %u-byte entries, %s", size, mode->what);
    if (mode->paced)
        printf(" at %d msg/s over shm, %d over TCP, for %.1f s", S_SHM_PACED_RATE, S_TCP_PACED_RATE,
               ctx->paced_seconds);
    else
        printf(", %" PRIu64 " msgs or %.1f s", ctx->unpaced_msgs, ctx->unpaced_max_seconds);
    printf("; median of %u\n", ctx->reps);
    printf("%-12s %7s %5s %9s %11s %9s %9s %9s  %-13s %-6s %8s %6s\n", "transport", "readers",
           "size", "msgs", "msg/s", "p50 us", "p99 us", "p999 us", "status", "anchor", "msg/s x",
           "p99 x");
}

/* Whether a paced row kept (nearly) its rate: if not, the producer fell
 * behind and its latency includes queueing. */
static bool s_pace_held(const s_row_t *row)
{
    return !row->ok || row->median.msg_per_s >= 0.9 * row->transport->paced_rate;
}

/* Prints the row and its JSON line; the ratios against anchor when both
 * rows have every run. Ratios: msg/s higher is better, p99 lower; a paced
 * row's msg/s is the pacing, so it has no msg/s ratio. */

/* One row in the shape every bench writes; the case is in the metric name,
 * <size>B.<readers>r.<figure> (e.g. 64B.1r.msg_per_s), the mode in the
 * bench name (fanout.<mode>). */
static void s_emit(const s_ctx_t *ctx, const char *bench, const char *system, unsigned size,
                   unsigned readers, const char *what, double value, const char *unit)
{
    char metric[96];
    snprintf(metric, sizeof metric, "%uB.%ur.%s", size, readers, what);
    bench_emit(ctx->b, bench, system, metric, value, unit);
}

static void s_row_report(const s_ctx_t *ctx, const s_row_t *row, const s_row_t *anchor,
                         unsigned size, const s_mode_t *mode)
{
    uint64_t msgs = row->median.msgs;
    char status[32], rate[16] = "-", p50[16] = "-", p99[16] = "-", p999[16] = "-";
    char rate_ratio[16] = "-", p99_ratio[16] = "-";
    s_status(row, ctx->reps, status, sizeof status);
    const s_result_t *m = &row->median;
    if (row->ok) {
        snprintf(rate, sizeof rate, "%.0f", m->msg_per_s);
        snprintf(p50, sizeof p50, "%.2f", (double)m->p50_ns / 1000.0);
        snprintf(p99, sizeof p99, "%.2f", (double)m->p99_ns / 1000.0);
        snprintf(p999, sizeof p999, "%.2f", (double)m->p999_ns / 1000.0);
    }
    bool ratios = anchor && row->ok == ctx->reps && anchor->ok == ctx->reps;
    double msg_ratio = 0, latency_ratio = 0;
    if (ratios) {
        msg_ratio = anchor->median.msg_per_s > 0 ? m->msg_per_s / anchor->median.msg_per_s : 0;
        latency_ratio =
            anchor->median.p99_ns > 0 ? (double)m->p99_ns / (double)anchor->median.p99_ns : 0;
        if (!mode->paced)
            snprintf(rate_ratio, sizeof rate_ratio, "%.2fx", msg_ratio);
        snprintf(p99_ratio, sizeof p99_ratio, "%.2fx", latency_ratio);
    }
    printf("%-12s %7u %5u %9" PRIu64 " %11s %9s %9s %9s  %-13s %-6s %8s %6s\n",
           row->transport->name, row->readers, size, msgs, rate, p50, p99, p999, status,
           anchor ? anchor->transport->name : "-", rate_ratio, p99_ratio);
    if (mode->paced && !s_pace_held(row))
        printf("  note: %s held only %.0f of %u msg/s: the path saturated, so this latency "
               "includes queueing\n",
               row->transport->name, m->msg_per_s, row->transport->paced_rate);
    fflush(stdout);

    if (!ctx->b->json)
        return;
    char bench[32], pair[64];
    snprintf(bench, sizeof bench, "fanout.%s", mode->name);
    const char *sys = row->transport->name;
    s_emit(ctx, bench, sys, size, row->readers, "reps_ok", row->ok, "reps");
    s_emit(ctx, bench, sys, size, row->readers, "lapped", row->lapped, "reps");
    if (mode->paced)
        s_emit(ctx, bench, sys, size, row->readers, "pace_held", s_pace_held(row), "bool");
    if (row->ok) {
        s_emit(ctx, bench, sys, size, row->readers, "msg_per_s", m->msg_per_s, "msg/s");
        s_emit(ctx, bench, sys, size, row->readers, "p50", (double)m->p50_ns, "ns");
        s_emit(ctx, bench, sys, size, row->readers, "p99", (double)m->p99_ns, "ns");
        s_emit(ctx, bench, sys, size, row->readers, "p999", (double)m->p999_ns, "ns");
    }
    if (ratios) {
        snprintf(pair, sizeof pair, "%s/%s", sys, anchor->transport->name);
        if (!mode->paced)
            s_emit(ctx, bench, pair, size, row->readers, "msg_per_s_ratio", msg_ratio, "x");
        s_emit(ctx, bench, pair, size, row->readers, "p99_ratio", latency_ratio, "x");
    }
}

/* ---- the verb ------------------------------------------------------------ */

/* One table: every configuration at one size and mode, reps times, the
 * order rotating each rep so drift in the machine hits all alike. */
static int s_table(s_ctx_t *ctx, unsigned size, const s_mode_t *mode, s_row_t *rows,
                   unsigned n_rows)
{
    s_table_header(size, mode, ctx);
    for (unsigned rep = 0; rep < ctx->reps; rep++)
        for (unsigned k = 0; k < n_rows; k++) {
            s_row_t *row = &rows[(k + rep) % n_rows];
            s_run_once(ctx, row->transport, row->readers, size, mode, &row->runs[rep]);
        }
    int failed = 0;
    for (unsigned i = 0; i < n_rows; i++) {
        s_row_median(&rows[i], ctx->reps);
        failed |= rows[i].ok != ctx->reps;
    }
    for (unsigned i = 0; i < n_rows; i++) {
        const s_row_t *anchor = NULL;
        for (unsigned j = 0; j < n_rows && rows[i].transport->anchor; j++)
            if (strcmp(rows[j].transport->name, rows[i].transport->anchor) == 0)
                anchor = &rows[j];
        s_row_report(ctx, &rows[i], anchor, size, mode);
    }
    return failed;
}

static uint64_t s_realtime_offset_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t realtime = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return realtime - bench_now_ns();
}

int bench_fanout(bench_t *b)
{
    uint64_t verb_start_ns = bench_now_ns();
    s_layout_init();
    s_ctx_t ctx = {.b = b,
                   .paced_seconds = b->quick ? QUICK_PACED_S : FULL_PACED_S,
                   .unpaced_msgs = b->quick ? QUICK_UNPACED_MSGS : FULL_UNPACED_MSGS,
                   .unpaced_max_seconds = b->quick ? QUICK_UNPACED_MAX_S : FULL_UNPACED_MAX_S,
                   .run_seconds = b->quick ? QUICK_RUN_S : FULL_RUN_S,
                   .reps = b->quick ? QUICK_REPS : FULL_REPS,
                   .realtime_offset_ns = s_realtime_offset_ns()};
    int failed = 0;
    if (s_distributor_start(&ctx.distributor, b) != 0) {
        fprintf(stderr, "strata-bench: fanout: strata-distributor did not start; the "
                        "distributor rows are skipped\n");
        s_distributor_stop(&ctx.distributor);
        failed = 1;
    }
    /* The configurations of every table; an anchor comes before what is
     * compared with it. */
    struct {
        const s_transport_t *transport;
        unsigned readers;
    } configs[] = {
        {&s_spsc_transport, 1}, {&s_ring_transport, 1},        {&s_ring_transport, 4},
        {&s_zmq_transport, 1},  {&s_distributor_transport, 1},
    };
    unsigned n_configs = sizeof configs / sizeof configs[0];
    if (ctx.distributor.pid == 0)
        n_configs--; /* the distributor is last */

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("One producer (this process, as the writer); readers in processes of their own; %ld "
           "CPUs online,\nnone pinned. spsc, a raw SPSC shm ring, is the floor for ring; zmq, raw "
           "libzmq PUB/SUB,\nis the floor for distributor (which reads a ring and publishes over "
           "TCP). Rings of %" PRIu64 " MiB\nare wrapped once before measuring; the producer "
           "stays within half a ring (TCP: %d msgs) of\nthe slowest reader. Latency: send to "
           "receive (CLOCK_MONOTONIC across processes) over every\nreader's messages. msg/s: "
           "messages over first send to the last reader's last receive.\nEach metric is its "
           "median over the runs; ratios are against the anchor row.\n",
           cpus, S_RING_BYTES >> 20, S_TCP_WINDOW);
    if (ctx.distributor.pid > 0)
        printf("strata-distributor %s (pid %d), live %s\n", STRATA_DISTRIBUTOR_BIN,
               (int)ctx.distributor.pid, ctx.distributor.live);

    for (size_t s = 0; s < SIZE_COUNT; s++)
        for (size_t m = 0; m < MODE_COUNT; m++) {
            s_row_t rows[sizeof configs / sizeof configs[0]];
            memset(rows, 0, sizeof rows);
            for (unsigned i = 0; i < n_configs; i++) {
                rows[i].transport = configs[i].transport;
                rows[i].readers = configs[i].readers;
            }
            failed |= s_table(&ctx, s_sizes[s], &s_modes[m], rows, n_configs);
        }
    if (ctx.distributor.pid > 0 && s_distributor_stop(&ctx.distributor) != 0)
        failed = 1;
    printf("fanout: %.0f s\n", (double)(bench_now_ns() - verb_start_ns) / 1e9);
    return failed;
}
