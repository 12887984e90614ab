/* Pins the histogram's promises: exact below 256, within 1/128 above, exact
 * min/max/sum, merge equal to recording everything in one, and bucket walks
 * whose cumulative counts end at the total. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "strata/histogram.h"
#include "support.h"

/* The bucket that value lands in, seen through the public walk. */
static uint64_t s_upper_of(uint64_t value)
{
    static strata_histogram_t *h; /* reused: a fresh 32 KiB calloc per call is slow under ASan */
    if (!h)
        h = strata_histogram_new();
    ck_assert_ptr_nonnull(h);
    strata_histogram_reset(h);
    strata_histogram_record(h, value);
    strata_histogram_cursor_t cursor = {0};
    uint64_t upper = 0, cumulative = 0;
    ck_assert(strata_histogram_next_bucket(h, &cursor, &upper, &cumulative));
    ck_assert_uint_eq(cumulative, 1);
    ck_assert(!strata_histogram_next_bucket(h, &cursor, &upper, &cumulative));
    return upper;
}

START_TEST(empty_histogram_reports_zeros)
{
    strata_histogram_t *h = strata_histogram_new();
    ck_assert_uint_eq(strata_histogram_count(h), 0);
    ck_assert_uint_eq(strata_histogram_min(h), 0);
    ck_assert_uint_eq(strata_histogram_max(h), 0);
    ck_assert_uint_eq(strata_histogram_percentile(h, 99.0), 0);
    ck_assert_double_eq(strata_histogram_mean(h), 0.0);
    ck_assert_uint_eq(strata_histogram_count_at_or_below(h, UINT64_MAX), 0);
    strata_histogram_cursor_t cursor = {0};
    uint64_t upper, cumulative;
    ck_assert(!strata_histogram_next_bucket(h, &cursor, &upper, &cumulative));
    strata_histogram_destroy(&h);
    ck_assert_ptr_null(h);
    strata_histogram_destroy(&h); /* a second destroy is harmless */
}
END_TEST

START_TEST(values_below_256_are_exact)
{
    for (uint64_t v = 0; v < 256; v++)
        ck_assert_uint_eq(s_upper_of(v), v);
    strata_histogram_t *h = strata_histogram_new();
    for (uint64_t v = 1; v <= 200; v++)
        strata_histogram_record(h, v);
    ck_assert_uint_eq(strata_histogram_percentile(h, 50.0), 100);
    ck_assert_uint_eq(strata_histogram_percentile(h, 99.0), 198);
    ck_assert_uint_eq(strata_histogram_percentile(h, 99.5), 199);
    strata_histogram_destroy(&h);
}
END_TEST

START_TEST(every_value_is_within_one_128th_of_its_bucket_top)
{
    uint64_t state = ts_seed("histogram");
    for (int i = 0; i < 20000; i++) {
        int bits = (int)(ts_rand(&state) % 37) + 1;
        uint64_t v = ts_rand(&state) >> (64 - bits);
        uint64_t upper = s_upper_of(v);
        ck_assert_uint_ge(upper, v);
        ck_assert_uint_le(upper - v, v / 128);
    }
    /* Both sides of each power of two, where the bucket width doubles. */
    for (int e = 8; e < 37; e++) {
        uint64_t p = UINT64_C(1) << e;
        ck_assert_uint_eq(s_upper_of(p - 1), p - 1);
        ck_assert_uint_eq(s_upper_of(p), p + (p >> 7) - 1);
        ck_assert_uint_lt(s_upper_of(p - 1), s_upper_of(p));
    }
}
END_TEST

START_TEST(bucket_tops_rise_with_the_value)
{
    uint64_t previous = 0;
    for (uint64_t v = 0; v < (UINT64_C(1) << 20); v += 1 + v / 1000) {
        uint64_t upper = s_upper_of(v);
        ck_assert_uint_ge(upper, previous);
        previous = upper;
    }
}
END_TEST

START_TEST(percentiles_of_a_uniform_range_are_within_one_percent)
{
    strata_histogram_t *h = strata_histogram_new();
    const uint64_t n = 1000000;
    for (uint64_t v = 1; v <= n; v++)
        strata_histogram_record(h, v * 1000); /* 1 us .. 1 s */
    const double percents[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof percents / sizeof percents[0]; i++) {
        double exact = percents[i] / 100.0 * (double)n * 1000.0;
        double got = (double)strata_histogram_percentile(h, percents[i]);
        ck_assert_msg(got >= exact * 0.999 && got <= exact * 1.01, "p%g: %.0f vs %.0f", percents[i],
                      got, exact);
    }
    ck_assert_uint_eq(strata_histogram_percentile(h, 0.0), 1000);
    ck_assert_uint_eq(strata_histogram_percentile(h, 100.0), n * 1000);
    ck_assert_uint_eq(strata_histogram_min(h), 1000);
    ck_assert_uint_eq(strata_histogram_max(h), n * 1000);
    ck_assert_uint_eq(strata_histogram_sum(h), 1000 * n * (n + 1) / 2);
    ck_assert_double_eq_tol(strata_histogram_mean(h), 500000.5 * 1000, 1e-3);
    strata_histogram_destroy(&h);
}
END_TEST

START_TEST(merge_equals_recording_everything_in_one)
{
    uint64_t state = ts_seed("histogram");
    strata_histogram_t *a = strata_histogram_new();
    strata_histogram_t *b = strata_histogram_new();
    strata_histogram_t *all = strata_histogram_new();
    strata_histogram_t *empty = strata_histogram_new();
    for (int i = 0; i < 100000; i++) {
        uint64_t v = ts_rand(&state) % 50000000;
        strata_histogram_record(i % 3 ? a : b, v);
        strata_histogram_record(all, v);
    }
    strata_histogram_merge(a, empty);
    strata_histogram_merge(a, b);
    strata_histogram_merge(empty, a); /* into an empty one: min comes from src */
    ck_assert_uint_eq(strata_histogram_count(a), strata_histogram_count(all));
    ck_assert_uint_eq(strata_histogram_min(a), strata_histogram_min(all));
    ck_assert_uint_eq(strata_histogram_min(empty), strata_histogram_min(all));
    ck_assert_uint_eq(strata_histogram_max(a), strata_histogram_max(all));
    ck_assert_uint_eq(strata_histogram_sum(a), strata_histogram_sum(all));
    strata_histogram_cursor_t ca = {0}, call = {0};
    uint64_t ua, cuma, uall, cumall;
    for (;;) {
        bool more = strata_histogram_next_bucket(a, &ca, &ua, &cuma);
        ck_assert(more == strata_histogram_next_bucket(all, &call, &uall, &cumall));
        if (!more)
            break;
        ck_assert_uint_eq(ua, uall);
        ck_assert_uint_eq(cuma, cumall);
    }
    strata_histogram_destroy(&a);
    strata_histogram_destroy(&b);
    strata_histogram_destroy(&all);
    strata_histogram_destroy(&empty);
}
END_TEST

START_TEST(values_past_the_range_land_in_the_top_bucket_with_exact_max)
{
    strata_histogram_t *h = strata_histogram_new();
    strata_histogram_record(h, 5);
    strata_histogram_record(h, UINT64_C(1000) * 1000 * 1000 * 1000); /* 1000 s */
    strata_histogram_record(h, UINT64_C(1000) * 1000 * 1000 * 1000);
    ck_assert_uint_eq(strata_histogram_max(h), UINT64_C(1000) * 1000 * 1000 * 1000);
    ck_assert_uint_eq(strata_histogram_percentile(h, 100.0), UINT64_C(1000) * 1000 * 1000 * 1000);
    ck_assert_uint_eq(strata_histogram_percentile(h, 50.0), STRATA_HISTOGRAM_MAX_TRACKABLE);
    ck_assert_uint_eq(s_upper_of(STRATA_HISTOGRAM_MAX_TRACKABLE), STRATA_HISTOGRAM_MAX_TRACKABLE);
    ck_assert_uint_eq(s_upper_of(UINT64_MAX), STRATA_HISTOGRAM_MAX_TRACKABLE);
    strata_histogram_record(h, UINT64_MAX);
    ck_assert_uint_eq(strata_histogram_sum(h), UINT64_MAX); /* saturated, not wrapped */
    strata_histogram_destroy(&h);
}
END_TEST

START_TEST(count_at_or_below_matches_a_brute_count_within_a_bucket)
{
    uint64_t state = ts_seed("histogram");
    enum { N = 20000 };
    static uint64_t values[N];
    strata_histogram_t *h = strata_histogram_new();
    for (int i = 0; i < N; i++) {
        values[i] = ts_rand(&state) % 10000000;
        strata_histogram_record(h, values[i]);
    }
    /* Prometheus-style bounds: 100 us, 1 ms, 5 ms. */
    const uint64_t bounds[] = {100000, 1000000, 5000000};
    for (size_t b = 0; b < 3; b++) {
        uint64_t exact = 0, within_bucket = 0;
        for (int i = 0; i < N; i++) {
            exact += values[i] <= bounds[b];
            within_bucket += values[i] <= bounds[b] - bounds[b] / 128;
        }
        uint64_t got = strata_histogram_count_at_or_below(h, bounds[b]);
        ck_assert_uint_le(got, exact);
        ck_assert_uint_ge(got, within_bucket);
    }
    ck_assert_uint_eq(strata_histogram_count_at_or_below(h, strata_histogram_max(h)), N);
    if (strata_histogram_min(h) > 0)
        ck_assert_uint_eq(strata_histogram_count_at_or_below(h, strata_histogram_min(h) - 1), 0);
    strata_histogram_destroy(&h);
}
END_TEST

START_TEST(bucket_walk_ends_at_the_total_count)
{
    strata_histogram_t *h = strata_histogram_new();
    for (uint64_t v = 0; v < 100000; v += 7)
        strata_histogram_record(h, v * v);
    strata_histogram_cursor_t cursor = {0};
    uint64_t upper, cumulative = 0, last_upper = 0, last_cumulative = 0;
    int buckets = 0;
    while (strata_histogram_next_bucket(h, &cursor, &upper, &cumulative)) {
        if (buckets++ > 0)
            ck_assert_uint_gt(upper, last_upper);
        ck_assert_uint_gt(cumulative, last_cumulative);
        last_upper = upper;
        last_cumulative = cumulative;
    }
    ck_assert_uint_eq(last_cumulative, strata_histogram_count(h));
    ck_assert(!strata_histogram_next_bucket(h, &cursor, &upper, &cumulative));
    strata_histogram_destroy(&h);
}
END_TEST

START_TEST(reset_empties_the_histogram)
{
    strata_histogram_t *h = strata_histogram_new();
    strata_histogram_record(h, 12345);
    strata_histogram_reset(h);
    ck_assert_uint_eq(strata_histogram_count(h), 0);
    ck_assert_uint_eq(strata_histogram_max(h), 0);
    strata_histogram_record(h, 777);
    ck_assert_uint_eq(strata_histogram_min(h), 777);
    ck_assert_uint_eq(strata_histogram_percentile(h, 50.0), 777);
    strata_histogram_destroy(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("histogram");
    TCase *tc = tcase_create("histogram");
    tcase_add_test(tc, empty_histogram_reports_zeros);
    tcase_add_test(tc, values_below_256_are_exact);
    tcase_add_test(tc, every_value_is_within_one_128th_of_its_bucket_top);
    tcase_add_test(tc, bucket_tops_rise_with_the_value);
    tcase_add_test(tc, percentiles_of_a_uniform_range_are_within_one_percent);
    tcase_add_test(tc, merge_equals_recording_everything_in_one);
    tcase_add_test(tc, values_past_the_range_land_in_the_top_bucket_with_exact_max);
    tcase_add_test(tc, count_at_or_below_matches_a_brute_count_within_a_bucket);
    tcase_add_test(tc, bucket_walk_ends_at_the_total_count);
    tcase_add_test(tc, reset_empties_the_histogram);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
