/* Simulated power cuts through the faultio layer: at a random moment every
 * byte not covered by a completed fdatasync is dropped. With sync
 * durability nothing acknowledged may be lost; with async only the tail
 * after the last completed fdatasync may go, and what survives is always a
 * prefix of what was written (no holes, no wrong values). */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultio.h"
#include "strata/db.h"
#include "support.h"

#define THREADS 4
#define CYCLES  20

typedef struct {
    strata_db_t *db;
    int cycle;
    int thread;
    strata_durability_t durability;
    _Atomic uint32_t acked;  /* highest acknowledged index */
    _Atomic uint64_t writes; /* acknowledged writes, to time the cut */
} writer_t;

static void key_of(char *buf, size_t size, int cycle, int thread, uint32_t index)
{
    snprintf(buf, size, "p%03d/t%d/%07u", cycle, thread, index);
}

static void value_of(char *buf, size_t size, const char *key)
{
    snprintf(buf, size, "value-of-%s-%040d", key, 7);
}

static void *writer(void *p)
{
    writer_t *w = p;
    strata_write_options_t wo = {.durability = w->durability};
    char key[64], value[128];
    for (uint32_t i = 1;; i++) {
        key_of(key, sizeof key, w->cycle, w->thread, i);
        value_of(value, sizeof value, key);
        if (strata_db_put(w->db, &wo, key, strlen(key), value, strlen(value), NULL, NULL) != 0)
            return NULL; /* the power is gone: nothing more is acknowledged */
        atomic_store(&w->acked, i);
        atomic_fetch_add(&w->writes, 1);
    }
}

typedef struct {
    writer_t *w;
    uint64_t target;
} enough_t;

static bool enough_writes(void *arg)
{
    enough_t *e = arg;
    uint64_t total = 0;
    for (int t = 0; t < THREADS; t++)
        total += atomic_load(&e->w[t].writes);
    return total >= e->target;
}

/* Highest index of (cycle, thread) present, checking values and holes. */
static uint32_t surviving_prefix(strata_db_t *db, int cycle, int thread)
{
    char key[64], value[128];
    uint32_t i = 1;
    for (;; i++) {
        key_of(key, sizeof key, cycle, thread, i);
        void *got = NULL;
        size_t len = 0;
        if (strata_db_get(db, NULL, key, strlen(key), &got, &len, NULL) != 0)
            break;
        value_of(value, sizeof value, key);
        ck_assert_msg(len == strlen(value) && memcmp(got, value, len) == 0, "%s: wrong value", key);
        free(got);
    }
    for (uint32_t j = i + 1; j <= i + 3; j++) {
        key_of(key, sizeof key, cycle, thread, j);
        ck_assert_msg(strata_db_get(db, NULL, key, strlen(key), NULL, NULL, NULL) ==
                          STRATA_ENOTFOUND,
                      "%s present after a hole at %u", key, i);
    }
    return i - 1;
}

static void power_cut_loop(strata_durability_t durability, const char *tag)
{
    uint64_t rng = ts_seed(tag);
    char *dir = ts_tempdir(tag);
    uint64_t dropped_total = 0, lost_acked_total = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        faultio_t *fio = faultio_new();
        strata_db_options_t opts;
        strata_db_options_init(&opts);
        opts.dir = dir;
        opts.io = faultio_io(fio);
        opts.wal_segment_bytes = 128 * 1024;
        strata_db_t *db = NULL;
        strata_error_t err;
        ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open: %s", err.msg);

        writer_t w[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            w[i] = (writer_t){.db = db, .cycle = cycle, .thread = i, .durability = durability};
            pthread_create(&t[i], NULL, writer, &w[i]);
        }
        enough_t e = {w, 1 + ts_rand(&rng) % 2000};
        ck_assert(ts_wait_for(enough_writes, &e, 60000));
        /* Everything at or below this seq was fdatasync'd before the cut. */
        strata_db_stats_t stats;
        strata_db_stats(db, &stats);
        uint64_t durable_before = stats.durable_seq;
        dropped_total += faultio_crash(fio);
        uint32_t acked[THREADS];
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            acked[i] = atomic_load(&w[i].acked);
        }
        strata_db_close(&db, NULL); /* fails: the disk is gone; frees all */
        faultio_destroy(&fio);

        /* Reboot on the plain file system. */
        opts.io = NULL;
        ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "cycle %d reopen: %s", cycle, err.msg);
        ck_assert_uint_ge(strata_db_last_seq(db), durable_before);
        for (int i = 0; i < THREADS; i++) {
            uint32_t kept = surviving_prefix(db, cycle, i);
            if (durability == STRATA_SYNC)
                ck_assert_msg(kept >= acked[i], "cycle %d thread %d: acked %u, kept %u", cycle, i,
                              acked[i], kept);
            else if (kept < acked[i])
                lost_acked_total += acked[i] - kept;
        }
        ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    }
    fprintf(stderr,
            "%s: %d power cuts dropped %llu unsynced bytes; acknowledged async writes "
            "lost (allowed, after the last fdatasync): %llu\n",
            tag, CYCLES, (unsigned long long)dropped_total, (unsigned long long)lost_acked_total);
    if (durability == STRATA_ASYNC)
        ck_assert_msg(dropped_total > 0, "the cuts never caught unsynced data: test is blind");
    ts_rmtree(dir);
    free(dir);
}

START_TEST(sync_writes_survive_power_cuts_without_loss)
{
    power_cut_loop(STRATA_SYNC, "powercut-sync");
}
END_TEST

START_TEST(async_writes_lose_only_the_unsynced_tail)
{
    power_cut_loop(STRATA_ASYNC, "powercut-async");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("powercut");
    TCase *tc = tcase_create("powercut");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sync_writes_survive_power_cuts_without_loss);
    tcase_add_test(tc, async_writes_lose_only_the_unsynced_tail);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
