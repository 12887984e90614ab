/* The SSTable bloom filter: no false negatives, and about the false
 * positive rate its bits per key promise. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bloom.h"
#include "support.h"

static uint8_t *build(int bits_per_key, uint64_t first, uint64_t n, size_t *len)
{
    bloom_builder_t b;
    bloom_builder_init(&b, bits_per_key);
    char key[32];
    for (uint64_t i = first; i < first + n; i++) {
        int key_len = snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
        if (bloom_builder_add(&b, key, (size_t)key_len) != 0)
            ck_abort_msg("out of memory"); /* not ck_assert: it reports every pass */
    }
    *len = bloom_builder_size(&b);
    uint8_t *filter = malloc(*len);
    bloom_builder_finish(&b, filter);
    bloom_builder_free(&b);
    return filter;
}

static bool contains(const uint8_t *filter, size_t len, uint64_t i)
{
    char key[32];
    int key_len = snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
    return bloom_may_contain(filter, len, bloom_hash(key, (size_t)key_len));
}

START_TEST(every_added_key_matches)
{
    static const uint64_t sizes[] = {1, 2, 7, 100, 1000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len;
        uint8_t *filter = build(10, 0, sizes[s], &len);
        ck_assert(bloom_filter_valid(filter, len));
        for (uint64_t i = 0; i < sizes[s]; i++)
            if (!contains(filter, len, i))
                ck_abort_msg("false negative for key %llu of %llu", (unsigned long long)i,
                             (unsigned long long)sizes[s]);
        free(filter);
    }
}
END_TEST

START_TEST(false_positive_rate_of_ten_bits_per_key_is_about_one_percent)
{
    uint64_t rng = ts_seed("test_bloom");
    uint64_t first = ts_rand(&rng) % 1000000000ull;
    size_t len;
    uint8_t *filter = build(10, first, 100000, &len);
    ck_assert_uint_le(len, 100000 * 10 / 8 + 2);
    uint64_t false_positives = 0, probes = 100000;
    for (uint64_t i = 0; i < probes; i++)
        false_positives += contains(filter, len, first + 100000 + i);
    double rate = (double)false_positives / (double)probes;
    fprintf(stderr, "test_bloom: %llu of %llu absent keys matched (%.3f%%)\n",
            (unsigned long long)false_positives, (unsigned long long)probes, rate * 100);
    ck_assert_msg(rate < 0.02, "false positive rate %.4f", rate);
    free(filter);
}
END_TEST

START_TEST(more_bits_per_key_means_fewer_false_positives)
{
    size_t len5, len20;
    uint8_t *f5 = build(5, 0, 20000, &len5);
    uint8_t *f20 = build(20, 0, 20000, &len20);
    uint64_t fp5 = 0, fp20 = 0;
    for (uint64_t i = 20000; i < 120000; i++) {
        fp5 += contains(f5, len5, i);
        fp20 += contains(f20, len20, i);
    }
    ck_assert_uint_gt(fp5, fp20 * 10);
    ck_assert_uint_lt(fp20, 100); /* about 0.01% expected */
    free(f5);
    free(f20);
}
END_TEST

START_TEST(an_empty_filter_matches_nothing_and_a_malformed_one_everything)
{
    size_t len;
    uint8_t *filter = build(10, 0, 0, &len);
    ck_assert(bloom_filter_valid(filter, len));
    for (uint64_t i = 0; i < 1000; i++)
        if (contains(filter, len, i))
            ck_abort_msg("an empty filter matched key %llu", (unsigned long long)i);
    /* A k of 0 or beyond 30 is not ours: the filter cannot rule keys out. */
    filter[len - 1] = 0;
    ck_assert(!bloom_filter_valid(filter, len));
    ck_assert(contains(filter, len, 1));
    filter[len - 1] = 31;
    ck_assert(!bloom_filter_valid(filter, len));
    ck_assert(contains(filter, len, 1));
    ck_assert(!bloom_filter_valid(filter, 1));
    free(filter);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bloom");
    TCase *tc = tcase_create("bloom");
    tcase_add_test(tc, every_added_key_matches);
    tcase_add_test(tc, false_positive_rate_of_ten_bits_per_key_is_about_one_percent);
    tcase_add_test(tc, more_bits_per_key_means_fewer_false_positives);
    tcase_add_test(tc, an_empty_filter_matches_nothing_and_a_malformed_one_everything);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
