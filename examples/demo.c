/* strata-demo: the embedded engine end to end, run by `make run` until the
 * writer service exists. Writes exchange-like records (orders, trades,
 * account updates) with sync durability, closes, reopens, and prints what
 * recovery found. Run it twice: the second run recovers the first's data. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strata/db.h"

#define ORDERS 3000

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static int fail(const char *what, const strata_error_t *err)
{
    fprintf(stderr, "strata-demo: %s: %s\n", what, err->msg);
    return 1;
}

static void print_recovery(const strata_db_stats_t *stats)
{
    const strata_wal_recovery_t *r = &stats->recovery;
    printf("recovered: seq %" PRIu64 "..%" PRIu64 ", %" PRIu64 " entries replayed from %u WAL "
           "segment(s), %" PRIu64 " bytes scanned\n",
           r->first_seq, r->last_seq, r->entries_replayed, r->segments, r->bytes_scanned);
    if (r->tail_kind[0])
        printf("recovery cut a torn tail: %s at %s offset %" PRIu64 " (%" PRIu64 " bytes)\n",
               r->tail_kind, r->tail_file, r->tail_offset, r->tail_bytes_dropped);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./data/demo";
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    strata_error_t err;
    strata_db_t *db = NULL;
    if (strata_db_open(&opts, &db, &err))
        return fail("open", &err);
    strata_db_stats_t stats;
    strata_db_stats(db, &stats);
    printf("opened %s\n", dir);
    print_recovery(&stats);
    uint64_t base = strata_db_last_seq(db);

    /* Orders are written one by one with sync durability; each fill is a
     * batch (trade + both orders' new state + the account), atomic. */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char key[64], value[256];
    const char *instruments[] = {"BTC-USD", "ETH-USD", "SOL-USD"};
    strata_batch_t *batch = strata_batch_new();
    for (int i = 0; i < ORDERS; i++) {
        uint64_t order_id = base + (uint64_t)i;
        const char *instrument = instruments[i % 3];
        snprintf(key, sizeof key, "orders/%020" PRIu64, order_id);
        int n = snprintf(value, sizeof value,
                         "{\"type\":\"OrderInsert\",\"user\":\"u%03d\",\"instrument\":\"%s\","
                         "\"side\":\"%s\",\"price\":%.2f,\"volume\":%d}",
                         i % 97, instrument, i % 2 ? "sell" : "buy", 100.0 + (i % 50) * 0.25,
                         1 + i % 10);
        if (strata_db_put(db, NULL, key, strlen(key), value, (size_t)n, NULL, &err))
            return fail("put order", &err);
        if (i % 10 == 9) {
            strata_batch_clear(batch);
            snprintf(key, sizeof key, "trades/%020" PRIu64, order_id);
            n = snprintf(value, sizeof value,
                         "{\"type\":\"TradeExecuted\",\"order\":%" PRIu64 ",\"price\":%.2f}",
                         order_id, 100.0 + (i % 50) * 0.25);
            strata_batch_put(batch, key, strlen(key), value, (size_t)n);
            snprintf(key, sizeof key, "accounts/u%03d", i % 97);
            n = snprintf(value, sizeof value, "{\"type\":\"AccountUpdate\",\"balance\":%d}",
                         100000 - i);
            strata_batch_put(batch, key, strlen(key), value, (size_t)n);
            if (strata_db_write(db, NULL, batch, NULL, &err))
                return fail("write fill", &err);
        }
    }
    strata_batch_destroy(&batch);
    double elapsed = seconds_since(&start);
    uint64_t written = strata_db_last_seq(db) - base;
    printf("wrote %" PRIu64 " records (orders, trades, account updates) with sync durability in "
           "%.2f s: %.0f records/s\n",
           written, elapsed, (double)written / elapsed);
    if (strata_db_close(&db, &err))
        return fail("close", &err);

    if (strata_db_open(&opts, &db, &err))
        return fail("reopen", &err);
    strata_db_stats(db, &stats);
    printf("reopened %s\n", dir);
    print_recovery(&stats);
    snprintf(key, sizeof key, "orders/%020" PRIu64, base + ORDERS - 1);
    void *got = NULL;
    size_t len = 0;
    if (strata_db_get(db, NULL, key, strlen(key), &got, &len, &err))
        return fail(key, &err);
    printf("last order %s = %.*s\n", key, (int)len, (char *)got);
    free(got);
    if (strata_db_get(db, NULL, "accounts/u000", 13, &got, &len, &err) == 0) {
        printf("account accounts/u000 = %.*s\n", (int)len, (char *)got);
        free(got);
    }
    if (strata_db_close(&db, &err))
        return fail("close", &err);
    return 0;
}
