/* kill -9 loop: a child process writes with sync durability from several
 * threads and reports each acknowledged write over a pipe; the parent kills
 * it at a random moment, reopens the database and checks that every
 * acknowledged write is there, with its value, and that no thread's writes
 * have holes. STRATA_SOAK=1 runs 500 cycles instead of 50. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata/db.h"
#include "support.h"

#define THREADS    4
#define MAX_WRITES 100000 /* per thread per cycle; the kill comes long before */

typedef struct {
    uint32_t thread;
    uint32_t index; /* highest index acknowledged so far by this thread */
} ack_t;

static void key_of(char *buf, size_t size, int cycle, int thread, uint32_t index)
{
    snprintf(buf, size, "c%03d/t%d/%07u", cycle, thread, index);
}

/* A value that is a function of the key, so a wrong value is detectable. */
static size_t value_of(char *buf, size_t size, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)snprintf(buf, size, "%s|%016llx|%064d", key, (unsigned long long)h, 0);
}

typedef struct {
    strata_db_t *db;
    int cycle;
    int thread;
    int pipe_fd;
} writer_arg_t;

static void *child_writer(void *p)
{
    writer_arg_t *a = p;
    char key[64], value[160];
    for (uint32_t i = 1; i <= MAX_WRITES; i++) {
        int rc;
        if (i % 7 == 0) { /* every seventh write is a batch of i and i+1 */
            strata_batch_t *b = strata_batch_new();
            for (uint32_t j = i; j <= i + 1; j++) {
                key_of(key, sizeof key, a->cycle, a->thread, j);
                size_t n = value_of(value, sizeof value, key);
                strata_batch_put(b, key, strlen(key), value, n);
            }
            rc = strata_db_write(a->db, NULL, b, NULL, NULL);
            strata_batch_destroy(&b);
            i++;
        } else {
            key_of(key, sizeof key, a->cycle, a->thread, i);
            size_t n = value_of(value, sizeof value, key);
            rc = strata_db_put(a->db, NULL, key, strlen(key), value, n, NULL, NULL);
        }
        if (rc)
            _exit(3);
        ack_t ack = {(uint32_t)a->thread, i};
        if (write(a->pipe_fd, &ack, sizeof ack) != sizeof ack)
            _exit(4);
    }
    return NULL;
}

static void run_child(const char *dir, int cycle, int pipe_fd, size_t memtable_bytes)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    if (memtable_bytes)
        opts.memtable_bytes = memtable_bytes;
    opts.wal_segment_bytes = 256 * 1024; /* kills also land around segment rolls */
    strata_db_t *db = NULL;
    strata_error_t err;
    if (strata_db_open(&opts, &db, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(2);
    }
    pthread_t t[THREADS];
    writer_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg_t){db, cycle, i, pipe_fd};
        pthread_create(&t[i], NULL, child_writer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    _exit(0);
}

static bool present(strata_db_t *db, int cycle, int thread, uint32_t index, bool *value_ok)
{
    char key[64], value[160];
    key_of(key, sizeof key, cycle, thread, index);
    size_t n = value_of(value, sizeof value, key);
    void *got = NULL;
    size_t len = 0;
    int rc = strata_db_get(db, NULL, key, strlen(key), &got, &len, NULL);
    *value_ok = rc != 0 || (len == n && memcmp(got, value, n) == 0);
    free(got);
    return rc == 0;
}

static void kill_loop(const char *tag, size_t memtable_bytes)
{
    uint64_t rng = ts_seed(tag);
    int cycles = ts_soak() ? 500 : 50;
    char *dir = ts_tempdir("kill9");
    /* acked[c][t]: highest acknowledged index; kept[c][t]: highest present
     * after recovery. Both must hold forever after. */
    uint32_t(*acked)[THREADS] = calloc((size_t)cycles, sizeof *acked);
    uint32_t(*kept)[THREADS] = calloc((size_t)cycles, sizeof *kept);
    uint64_t torn_tails = 0;
    uint64_t deeper_tables = 0; /* tables below L0 seen at reopens: compactions ran */

    for (int cycle = 0; cycle < cycles; cycle++) {
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            run_child(dir, cycle, fds[1], memtable_bytes);
        }
        close(fds[1]);
        /* Kill after a random number of acks: from "right after open" to a
         * few thousand writes in. */
        uint64_t target = ts_rand(&rng) % 3000;
        uint64_t seen = 0;
        ack_t ack;
        while (seen < target) {
            struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
            ck_assert_msg(poll(&pfd, 1, 30000) == 1, "cycle %d: child stalled", cycle);
            ssize_t n = read(fds[0], &ack, sizeof ack);
            if (n == 0)
                break; /* child died on its own: waitpid says why */
            ck_assert_int_eq(n, sizeof ack);
            if (ack.index > acked[cycle][ack.thread])
                acked[cycle][ack.thread] = ack.index;
            seen++;
        }
        kill(pid, SIGKILL);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "cycle %d: child exited with status %d before the kill", cycle, status);
        /* Acks written before the kill are still in the pipe. */
        ssize_t n;
        while ((n = read(fds[0], &ack, sizeof ack)) == sizeof ack)
            if (ack.index > acked[cycle][ack.thread])
                acked[cycle][ack.thread] = ack.index;
        close(fds[0]);

        strata_db_options_t opts;
        strata_db_options_init(&opts);
        opts.dir = dir;
        if (memtable_bytes)
            opts.memtable_bytes = memtable_bytes;
        strata_db_t *db = NULL;
        strata_error_t err;
        ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "cycle %d: reopen: %s", cycle,
                      err.msg);
        strata_db_stats_t stats;
        strata_db_stats(db, &stats);
        if (stats.recovery.tail_kind[0])
            torn_tails++;
        for (int level = 1; level < 7; level++)
            deeper_tables += stats.level_files[level];

        for (int c = 0; c <= cycle; c++) {
            for (int t = 0; t < THREADS; t++) {
                bool ok;
                uint32_t i = 1;
                for (; present(db, c, t, i, &ok); i++)
                    ck_assert_msg(ok, "cycle %d thread %d index %u: wrong value", c, t, i);
                uint32_t highest = i - 1;
                ck_assert_msg(highest >= acked[c][t],
                              "cycle %d thread %d: acknowledged %u but only %u survived", c, t,
                              acked[c][t], highest);
                /* No holes: nothing after the first missing index. At most
                 * one write (or batch of two) per thread was in flight. */
                for (uint32_t j = i + 1; j <= i + 4; j++)
                    ck_assert_msg(!present(db, c, t, j, &ok),
                                  "cycle %d thread %d: hole at %u but %u present", c, t, i, j);
                if (c < cycle)
                    ck_assert_msg(highest == kept[c][t],
                                  "cycle %d thread %d: %u survived earlier, now %u", c, t,
                                  kept[c][t], highest);
                kept[c][t] = highest;
            }
        }
        ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    }
    fprintf(stderr, "%s: %d cycles, %llu recoveries cut a torn tail, %llu tables below L0 seen\n",
            tag, cycles, (unsigned long long)torn_tails, (unsigned long long)deeper_tables);
    if (memtable_bytes)
        ck_assert_msg(deeper_tables > 0, "no compaction ever ran: the loop never killed one");
    free(acked);
    free(kept);
    ts_rmtree(dir);
    free(dir);
}

START_TEST(every_acknowledged_sync_write_survives_kill_9)
{
    kill_loop("kill9-wal", 0);
}
END_TEST

/* A 64 KiB memtable flushes every few hundred writes, so kills land in
 * the middle of table writes, MANIFEST edits and WAL truncation. */
START_TEST(every_acknowledged_write_survives_kill_9_during_flush)
{
    kill_loop("kill9-flush", 64 * 1024);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kill9");
    TCase *tc = tcase_create("kill9");
    tcase_set_timeout(tc, ts_soak() ? 7200 : 600);
    tcase_add_test(tc, every_acknowledged_sync_write_survives_kill_9);
    tcase_add_test(tc, every_acknowledged_write_survives_kill_9_during_flush);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
