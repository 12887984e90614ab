/* The cluster verb's replica lag: a cluster's master driven at a paced rate
 * of batched sync puts, quorum then async replication, while a thread per
 * follower asks it, about every millisecond, what it has applied. A
 * record's lag on a follower runs from the master's acknowledgement to the
 * first answer of that follower that reflects the record. cluster.c calls
 * it with its cluster's endpoints. */
#define _GNU_SOURCE
#include "cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "strata/client.h"

/* 100 records a batch keeps the request rate at 1,000/s, well within what
 * one client connection carries; records per batch is also the unit of the
 * lag figures (a batch is applied whole). */
#define LAG_BATCH_RECORDS 100
/* Batches sent and not yet acknowledged at most: 64 ms of the target rate,
 * plenty for the master to group them. A master that falls behind slows
 * the writer down, and the achieved rate says so, rather than queueing
 * seconds of writes the run would then wait for. */
#define LAG_MAX_IN_FLIGHT 64
#define LAG_POLL_MS       1
#define REPLY_TIMEOUT_MS  10000
#define POLL_TIMEOUT_MS   500
#define CATCH_UP_S        30.0
#define MAX_FOLLOWERS     8

/* A follower's applied seq, first seen at at_ns. */
typedef struct {
    uint64_t seq;
    uint64_t at_ns;
} s_seen_t;

typedef struct {
    const char *endpoint;
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint64_t applied; /* the newest seq seen applied */
    s_seen_t *seen;           /* seq and at_ns both grow; read after join */
    size_t n_seen, cap;
    uint64_t failed_polls;
} s_follower_t;

/* A get of an absent key: its reply carries the seq every answer of the
 * node reflects. The time is the reply's arrival, when the follower had
 * applied at least that much. */
static void *s_watch(void *arg)
{
    s_follower_t *f = arg;
    strata_client_options_t options = {.endpoint = f->endpoint, .timeout_ms = POLL_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_connect(&options, &client, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: cluster.replica_lag: connect %s: %s (%s)\n", f->endpoint,
                strata_strerror(rc), err.msg);
        return NULL;
    }
    static const uint8_t key[] = "?";
    while (!atomic_load(&f->stop)) {
        strata_request_t req = {.op = STRATA_OP_GET, .key = {key, 1}};
        strata_reply_t reply = {0};
        rc = strata_client_call(client, &req, &reply, &err);
        uint64_t now = bench_now_ns();
        if (rc == 0 && reply.applied_seq > atomic_load(&f->applied)) {
            if (f->n_seen == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 4096;
                f->seen = bench_alloc_or_die(realloc(f->seen, f->cap * sizeof *f->seen));
            }
            f->seen[f->n_seen++] = (s_seen_t){reply.applied_seq, now};
            atomic_store(&f->applied, reply.applied_seq);
        } else if (rc != 0) {
            f->failed_polls++;
        }
        strata_reply_clear(&reply);
        bench_sleep_ms(LAG_POLL_MS);
    }
    strata_client_destroy(&client);
    return NULL;
}

/* The master's acknowledgement of one batch. */
typedef struct {
    uint64_t seq; /* the batch's last */
    uint64_t at_ns;
} s_ack_t;

/* Batches of fresh keys, total of them due one every LAG_BATCH_RECORDS /
 * rate seconds from the start, each sent once due (late ones at once)
 * while fewer than LAG_MAX_IN_FLIGHT wait for their acknowledgement; none
 * is sent after the last one's due time. Fills acks (capacity total) and
 * *n_acks, and *seconds with the time to the last reply; *refused counts
 * the batches the master refused for followers silent or behind by more
 * than cluster/max_lag_ms (STATUS EBUSY), which is how it holds back a writer
 * the followers cannot keep up with. 0, or -1 with the reason on stderr. */
static int s_drive(const char *master, strata_replication_t replication, double rate,
                   uint64_t total, uint64_t seed, s_ack_t *acks, uint64_t *n_acks,
                   uint64_t *refused, char *refusal, size_t refusal_size,
                   strata_histogram_t *ack_latency, double *seconds)
{
    strata_client_options_t options = {.endpoint = master, .timeout_ms = REPLY_TIMEOUT_MS};
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_client_connect(&options, &client, &err);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: cluster.replica_lag: connect %s: %s (%s)\n", master,
                strata_strerror(rc), err.msg);
        return -1;
    }
    uint8_t keys[LAG_BATCH_RECORDS][BENCH_KEY_BYTES];
    strata_batch_op_t ops[LAG_BATCH_RECORDS];
    uint64_t rng = seed, sent = 0, in_flight = 0;
    uint64_t tokens[LAG_MAX_IN_FLIGHT], sent_ns[LAG_MAX_IN_FLIGHT];
    double batch_ns = 1e9 * LAG_BATCH_RECORDS / rate;
    uint64_t start_ns = bench_now_ns();
    uint64_t end_ns = start_ns + (uint64_t)((double)total * batch_ns);
    *n_acks = *refused = 0;
    rc = 0;
    for (;;) {
        uint64_t now = bench_now_ns();
        bool sending = sent < total && now < end_ns;
        if (!sending && in_flight == 0)
            break;
        while (sending && in_flight < LAG_MAX_IN_FLIGHT &&
               now >= start_ns + (uint64_t)((double)sent * batch_ns)) {
            for (unsigned i = 0; i < LAG_BATCH_RECORDS; i++) {
                bench_random_key(&rng, keys[i]);
                ops[i] = (strata_batch_op_t){STRATA_BATCH_PUT,
                                             {keys[i], BENCH_KEY_BYTES},
                                             {bench_value(), BENCH_VALUE_BYTES}};
            }
            strata_request_t req = {.op = STRATA_OP_BATCH,
                                    .durability = STRATA_DURABILITY_SYNC,
                                    .replication = replication,
                                    .ops = ops,
                                    .n_ops = LAG_BATCH_RECORDS};
            if ((rc = strata_client_send(client, &req, &tokens[in_flight], &err)) != 0) {
                fprintf(stderr, "strata-bench: cluster.replica_lag: send: %s (%s)\n",
                        strata_strerror(rc), err.msg);
                break;
            }
            sent_ns[in_flight++] = bench_now_ns();
            sent++;
        }
        if (rc != 0)
            break;
        /* Until the next batch is due, or a reply comes first. */
        int wait_ms = REPLY_TIMEOUT_MS;
        if (sending && in_flight < LAG_MAX_IN_FLIGHT) {
            uint64_t due = start_ns + (uint64_t)((double)sent * batch_ns);
            wait_ms = due > now ? (int)((due - now + 999999) / 1000000) : 0;
            if (in_flight == 0) {
                bench_sleep_ms(wait_ms);
                continue;
            }
        }
        strata_reply_t reply = {0};
        rc = strata_client_recv(client, wait_ms, &reply, &err);
        now = bench_now_ns();
        bool replied = rc == 0;
        uint64_t slot = 0;
        while (replied && slot < in_flight && tokens[slot] != reply.request_id)
            slot++;
        if (rc == STRATA_ETIMEDOUT && wait_ms < REPLY_TIMEOUT_MS) {
            rc = 0;
        } else if (replied && slot == in_flight) {
            fprintf(stderr,
                    "strata-bench: cluster.replica_lag: a reply to request %llu, which is not in "
                    "flight\n",
                    (unsigned long long)reply.request_id);
            rc = -1;
        } else if (rc != 0) {
            fprintf(stderr, "strata-bench: cluster.replica_lag: recv: %s (%s)\n",
                    strata_strerror(rc), err.msg);
        } else if (reply.status == STRATA_EBUSY) {
            if (!*refused)
                snprintf(refusal, refusal_size, "%s", reply.message ? reply.message : "");
            (*refused)++;
        } else if (reply.status != 0) {
            fprintf(stderr, "strata-bench: cluster.replica_lag: batch: %s: %s\n",
                    strata_strerror(reply.status), reply.message ? reply.message : "");
            rc = -1;
        } else {
            acks[(*n_acks)++] = (s_ack_t){reply.seq, now};
            strata_histogram_record(ack_latency, now - sent_ns[slot]);
        }
        strata_reply_clear(&reply);
        if (rc != 0)
            break;
        if (replied) {
            in_flight--;
            tokens[slot] = tokens[in_flight];
            sent_ns[slot] = sent_ns[in_flight];
        }
    }
    *seconds = (double)(bench_now_ns() - start_ns) / 1e9;
    strata_client_destroy(&client);
    return rc == 0 ? 0 : -1;
}

/* When the follower was first seen to have applied seq; 0 when it never
 * was. */
static uint64_t s_applied_at(const s_follower_t *f, uint64_t seq)
{
    size_t lo = 0, hi = f->n_seen;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->seen[mid].seq >= seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < f->n_seen ? f->seen[lo].at_ns : 0;
}

/* One row: the paced writes acknowledged as replication says, under the
 * system's name. */
static int s_lag_row(bench_t *b, const char *system, strata_replication_t replication,
                     const char *master, const char *const *followers, unsigned n_followers,
                     double rate, double seconds, uint64_t seed)
{
    static const char *const bench = "cluster.replica_lag";
    s_follower_t watch[MAX_FOLLOWERS];
    memset(watch, 0, sizeof watch);
    for (unsigned i = 0; i < n_followers; i++) {
        watch[i].endpoint = followers[i];
        if (pthread_create(&watch[i].thread, NULL, s_watch, &watch[i]) != 0) {
            fprintf(stderr, "strata-bench: cannot start a thread\n");
            exit(EXIT_FAILURE);
        }
    }
    uint64_t total = (uint64_t)(seconds * rate / LAG_BATCH_RECORDS);
    s_ack_t *acks = bench_alloc_or_die(calloc(total ? total : 1, sizeof *acks));
    uint64_t n_acks = 0, last_seq = 0, refused = 0;
    char refusal[256] = "";
    double run_s = 0;
    strata_histogram_t *ack_latency = bench_alloc_or_die(strata_histogram_new());
    int rc = s_drive(master, replication, rate, total, seed, acks, &n_acks, &refused, refusal,
                     sizeof refusal, ack_latency, &run_s);
    for (uint64_t i = 0; i < n_acks; i++)
        last_seq = acks[i].seq > last_seq ? acks[i].seq : last_seq;
    /* The last batches' lag needs the followers to get there. */
    uint64_t deadline = bench_now_ns() + (uint64_t)(CATCH_UP_S * 1e9);
    for (unsigned i = 0; i < n_followers; i++)
        while (atomic_load(&watch[i].applied) < last_seq && bench_now_ns() < deadline)
            bench_sleep_ms(LAG_POLL_MS);
    for (unsigned i = 0; i < n_followers; i++) {
        atomic_store(&watch[i].stop, true);
        pthread_join(watch[i].thread, NULL);
    }

    /* Every batch counts once per follower: batches are all the same size,
     * so this is the distribution over records. */
    strata_histogram_t *lag = bench_alloc_or_die(strata_histogram_new());
    uint64_t unapplied = 0, failed_polls = 0, at_ack = 0;
    for (unsigned i = 0; i < n_followers; i++) {
        failed_polls += watch[i].failed_polls;
        for (uint64_t k = 0; k < n_acks; k++) {
            uint64_t at = s_applied_at(&watch[i], acks[k].seq);
            if (!at)
                unapplied += LAG_BATCH_RECORDS;
            else
                strata_histogram_record(lag, at > acks[k].at_ns ? at - acks[k].at_ns : 0);
            if (at && at <= acks[k].at_ns)
                at_ack++;
        }
        free(watch[i].seen);
    }
    free(acks);
    double achieved = run_s > 0 ? (double)(n_acks * LAG_BATCH_RECORDS) / run_s : 0;
    double p50 = (double)strata_histogram_percentile(lag, 50.0) / 1e6;
    double p99 = (double)strata_histogram_percentile(lag, 99.0) / 1e6;
    double max = (double)strata_histogram_max(lag) / 1e6;
    double ack_p50 = (double)strata_histogram_percentile(ack_latency, 50.0) / 1e6;
    double ack_p99 = (double)strata_histogram_percentile(ack_latency, 99.0) / 1e6;
    printf("%-22s %-19s %10.0f %10.0f %10.2f %10.2f %10.2f %10.2f %10.2f\n", bench, system, rate,
           achieved, ack_p50, ack_p99, p50, p99, max);
    bench_emit(b, bench, system, "records_per_s_target", rate, "records/s");
    bench_emit(b, bench, system, "records_per_s", achieved, "records/s");
    if (strata_histogram_count(ack_latency) > 0) {
        bench_emit(b, bench, system, "ack_ms_p50", ack_p50, "ms");
        bench_emit(b, bench, system, "ack_ms_p99", ack_p99, "ms");
    }
    if (strata_histogram_count(lag) > 0) {
        bench_emit(b, bench, system, "lag_ms_p50", p50, "ms");
        bench_emit(b, bench, system, "lag_ms_p99", p99, "ms");
        bench_emit(b, bench, system, "lag_ms_max", max, "ms");
    }
    if (unapplied > 0) {
        fprintf(stderr,
                "strata-bench: %s: %llu acknowledged records not applied on a follower %.0f s "
                "after the run\n",
                bench, (unsigned long long)unapplied, CATCH_UP_S);
        bench_emit(b, bench, system, "unapplied", (double)unapplied, "records");
        rc = -1;
    }
    if (at_ack > 0)
        printf("(%.0f%% of them applied on the follower before the acknowledgement arrived: lag "
               "0)\n",
               100.0 * (double)at_ack / (double)strata_histogram_count(lag));
    if (refused > 0) {
        printf("(the master refused %llu of %llu batches: %s)\n", (unsigned long long)refused,
               (unsigned long long)total, refusal);
        bench_emit(b, bench, system, "records_refused", (double)(refused * LAG_BATCH_RECORDS),
                   "records");
    }
    if (failed_polls > 0)
        printf("(%llu polls of a follower got no answer within %d ms)\n",
               (unsigned long long)failed_polls, POLL_TIMEOUT_MS);
    fflush(stdout);
    strata_histogram_destroy(&lag);
    strata_histogram_destroy(&ack_latency);
    return rc;
}

int cluster_lag_bench(bench_t *b, const char *master, const char *const *followers,
                      unsigned n_followers, double rate, double seconds, uint64_t seed)
{
    if (n_followers > MAX_FOLLOWERS)
        n_followers = MAX_FOLLOWERS;
    printf("%-22s %-19s %10s %10s %10s %10s %10s %10s %10s\n", "bench", "system", "target/s",
           "records/s", "ack p50", "ack p99", "lag p50", "lag p99", "lag max");
    /* Quorum first: async writes can leave the followers further behind,
     * and each row's run waits until they have caught up. */
    int rc = s_lag_row(b, "cluster3", STRATA_REPLICATION_QUORUM, master, followers, n_followers,
                       rate, seconds, seed);
    if (s_lag_row(b, "cluster3-async", STRATA_REPLICATION_ASYNC, master, followers, n_followers,
                  rate, seconds, seed + 1) != 0)
        rc = -1;
    return rc;
}
