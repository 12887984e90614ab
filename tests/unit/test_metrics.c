/* The shared metrics table: one snapshot, one set of rows, and from them the
 * stats pairs (names, integer and decimal values) and the Prometheus text
 * (HELP and TYPE before each family, counters and scaled gauges, a scaled
 * figure exactly the quotient). */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "support.h"

typedef struct {
    uint64_t requests, seq, wait_ns;
    double mean;
} snap_t;

static const svc_metric_t rows[] = {
    {"requests_total", "requests_total", "Requests.", SVC_COUNTER, offsetof(snap_t, requests),
     false, 0, 0},
    {"last_seq", "last_seq", "Last seq.", SVC_GAUGE, offsetof(snap_t, seq), false, 0, 0},
    {"batch_mean", NULL, "Mean batch.", SVC_GAUGE, offsetof(snap_t, mean), true, 0, 2},
    {NULL, "wait_seconds_total", "Time waited.", SVC_COUNTER, offsetof(snap_t, wait_ns), false,
     1e-9, 0},
};

static void collect(void *sink, const char *name, const char *value)
{
    char *out = sink;
    snprintf(out + strlen(out), 512 - strlen(out), "%s=%s;", name, value);
}

START_TEST(stats_pairs_and_prometheus_text_come_from_the_same_rows)
{
    snap_t snap = {
        .requests = 18446744073709551615u, .seq = 42, .wait_ns = 1500000000, .mean = 2.345};
    char pairs[512] = "";
    svc_metrics_pairs(rows, 4, &snap, collect, pairs);
    ck_assert_str_eq(pairs, "requests_total=18446744073709551615;last_seq=42;batch_mean=2.35;");

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    svc_metrics_prom(rows, 4, &snap, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "# HELP strata_requests_total Requests.\n"
                                       "# TYPE strata_requests_total counter\n"
                                       "strata_requests_total 18446744073709551615\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE strata_last_seq gauge\nstrata_last_seq 42\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "# TYPE strata_wait_seconds_total counter\nstrata_wait_seconds_total 1.5\n"));
    ck_assert_ptr_null(strstr(text, "batch_mean")); /* stats only */
    free(text);
}
END_TEST

/* 9 ms times 1e-3 is one ulp off 9 / 1e3, the double nearest 0.009, and
 * 1500000007 ns times 1e-9 off 1500000007 / 1e9: both must print as the
 * quotient. */
START_TEST(a_scaled_figure_is_the_quotient)
{
    typedef struct {
        uint64_t ms, ns;
    } figures_t;
    static const svc_metric_t scaled[] = {
        {NULL, "took_seconds", "Took.", SVC_GAUGE, offsetof(figures_t, ms), false, 1e-3, 0},
        {NULL, "spent_seconds_total", "Spent.", SVC_COUNTER, offsetof(figures_t, ns), false, 1e-9,
         0},
    };
    figures_t f = {.ms = 9, .ns = 1500000007};
    /* else this test shows nothing */
    ck_assert(9 * 1e-3 != 9 / 1e3 && 1500000007 * 1e-9 != 1500000007 / 1e9);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    svc_metrics_prom(scaled, 2, &f, out);
    fclose(out);
    char want[128];
    snprintf(want, sizeof want, "\nstrata_took_seconds %.17g\n", 9 / 1e3);
    ck_assert_msg(strstr(text, want), "want%sin\n%s", want, text);
    snprintf(want, sizeof want, "\nstrata_spent_seconds_total %.17g\n", 1500000007 / 1e9);
    ck_assert_msg(strstr(text, want), "want%sin\n%s", want, text);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, stats_pairs_and_prometheus_text_come_from_the_same_rows);
    tcase_add_test(tc, a_scaled_figure_is_the_quotient);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
