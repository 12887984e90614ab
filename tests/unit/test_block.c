/* SSTable blocks: prefix-compressed round trips at every restart interval,
 * seeks to every position, backward steps across restarts, and decoders
 * that stop with an error on damaged bytes instead of reading past them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "strata/err.h"
#include "support.h"

typedef struct {
    uint8_t *key; /* internal key: user key + trailer */
    size_t key_len;
    uint8_t *value;
    size_t value_len;
} entry_t;

typedef struct {
    entry_t *e;
    size_t n;
} ref_t;

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    return ikey_compare(x->key, x->key_len, y->key, y->key_len - IKEY_TRAILER,
                        get_u64(y->key + y->key_len - IKEY_TRAILER));
}

/* n entries with user keys over a small alphabet (so prefixes are shared),
 * some with several seqs, sorted and unique. max_user bounds key length. */
static ref_t make_entries(uint64_t *rng, size_t n, size_t max_user, size_t max_value)
{
    ref_t r = {calloc(n, sizeof(entry_t)), 0};
    while (r.n < n) {
        size_t ulen = ts_rand(rng) % (max_user + 1);
        uint8_t *user = malloc(ulen + 1);
        for (size_t i = 0; i < ulen; i++)
            user[i] = (uint8_t)("abcd\xff\x00"[ts_rand(rng) % 6]);
        int versions = 1 + (int)(ts_rand(rng) % 3);
        for (int v = 0; v < versions && r.n < n; v++) {
            entry_t *e = &r.e[r.n++];
            e->key_len = ulen + IKEY_TRAILER;
            e->key = malloc(e->key_len);
            if (ulen)
                memcpy(e->key, user, ulen);
            uint64_t seq = ts_rand(rng) % 1000;
            put_u64(e->key + ulen, ikey_trailer(seq, 1 + (unsigned)(ts_rand(rng) % 2)));
            e->value_len = ts_rand(rng) % (max_value + 1);
            e->value = malloc(e->value_len + 1);
            for (size_t i = 0; i < e->value_len; i++)
                e->value[i] = (uint8_t)ts_rand(rng);
        }
        free(user);
    }
    qsort(r.e, r.n, sizeof(entry_t), entry_cmp);
    size_t out = 0; /* drop exact duplicates */
    for (size_t i = 0; i < r.n; i++) {
        if (out && entry_cmp(&r.e[out - 1], &r.e[i]) == 0) {
            free(r.e[i].key);
            free(r.e[i].value);
            continue;
        }
        r.e[out++] = r.e[i];
    }
    r.n = out;
    return r;
}

static void free_entries(ref_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->e[i].key);
        free(r->e[i].value);
    }
    free(r->e);
}

/* Builds a block of r with the given interval; returns a malloc'd copy. */
static uint8_t *build_block(const ref_t *r, int interval, size_t *len)
{
    block_builder_t b;
    block_builder_init(&b, interval);
    for (size_t i = 0; i < r->n; i++)
        ck_assert_int_eq(
            block_builder_add(&b, r->e[i].key, r->e[i].key_len, r->e[i].value, r->e[i].value_len),
            0);
    size_t estimate = block_builder_estimate(&b);
    const uint8_t *data;
    ck_assert_int_eq(block_builder_finish(&b, &data, len), 0);
    ck_assert_uint_eq(*len, estimate);
    uint8_t *copy = malloc(*len);
    memcpy(copy, data, *len);
    block_builder_free(&b);
    return copy;
}

static void assert_at(const block_iter_t *it, const ref_t *r, size_t i)
{
    /* Plain checks: ck_assert reports every passing call to the parent. */
    const entry_t *e = &r->e[i];
    if (!block_iter_valid(it))
        ck_abort_msg("iterator invalid, expected entry %zu", i);
    if (it->key_len != e->key_len || memcmp(it->key, e->key, e->key_len) != 0 ||
        it->value_len != e->value_len ||
        (e->value_len && memcmp(it->value, e->value, e->value_len) != 0))
        ck_abort_msg("entry %zu differs", i);
}

/* Index of the first entry >= (user, trailer): the answer a seek must give. */
static size_t lower_bound(const ref_t *r, const uint8_t *user, size_t ulen, uint64_t trailer)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ikey_compare(r->e[mid].key, r->e[mid].key_len, user, ulen, trailer) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void check_seek(block_iter_t *it, const ref_t *r, const uint8_t *user, size_t ulen,
                       uint64_t trailer)
{
    block_iter_seek(it, user, ulen, trailer);
    size_t want = lower_bound(r, user, ulen, trailer);
    if (it->status || (want == r->n && block_iter_valid(it)))
        ck_abort_msg("seek to entry %zu: status %d", want, it->status);
    if (want < r->n)
        assert_at(it, r, want);
}

static void check_block(const ref_t *r, int interval)
{
    size_t len;
    uint8_t *data = build_block(r, interval, &len);
    block_t block;
    ck_assert_int_eq(block_parse(&block, data, len), 0);
    ck_assert_uint_eq(block.num_restarts,
                      r->n ? (r->n + (size_t)interval - 1) / (size_t)interval : 1);
    block_iter_t it;
    block_iter_init(&it);
    block_iter_attach(&it, &block);

    size_t i = 0;
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it))
        assert_at(&it, r, i++);
    ck_assert_uint_eq(i, r->n);
    i = r->n;
    for (block_iter_seek_last(&it); block_iter_valid(&it); block_iter_prev(&it))
        assert_at(&it, r, --i);
    ck_assert_uint_eq(i, 0);
    ck_assert_int_eq(it.status, 0);

    for (i = 0; i < r->n; i++) {
        const entry_t *e = &r->e[i];
        size_t ulen = e->key_len - IKEY_TRAILER;
        uint64_t trailer = get_u64(e->key + ulen);
        check_seek(&it, r, e->key, ulen, trailer);     /* exactly there */
        check_seek(&it, r, e->key, ulen, trailer + 1); /* just before it */
        check_seek(&it, r, e->key, ulen, trailer - 1); /* just after it */
        check_seek(&it, r, e->key, ulen, ikey_trailer(IKEY_MAX_SEQ, IKEY_SEEK_TYPE));
        check_seek(&it, r, e->key, ulen, 0);
        /* From a seek, both directions walk the right neighbours. */
        block_iter_seek(&it, e->key, ulen, trailer);
        block_iter_prev(&it);
        if (i == 0)
            ck_assert(!block_iter_valid(&it));
        else
            assert_at(&it, r, i - 1);
        block_iter_seek(&it, e->key, ulen, trailer);
        block_iter_next(&it);
        if (i + 1 == r->n)
            ck_assert(!block_iter_valid(&it));
        else
            assert_at(&it, r, i + 1);
    }
    check_seek(&it, r, (const uint8_t *)"", 0, ikey_trailer(IKEY_MAX_SEQ, IKEY_SEEK_TYPE));
    check_seek(&it, r, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, 0);
    block_iter_free(&it);
    free(data);
}

START_TEST(random_entries_round_trip_at_every_restart_interval)
{
    uint64_t rng = ts_seed("test_block");
    static const int intervals[] = {1, 2, 3, 16, 100, 100000};
    static const size_t counts[] = {0, 1, 2, 15, 16, 17, 33, 500};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        ref_t r = make_entries(&rng, counts[c], 12, 40);
        for (size_t k = 0; k < sizeof intervals / sizeof intervals[0]; k++)
            check_block(&r, intervals[k]);
        free_entries(&r);
    }
}
END_TEST

START_TEST(keys_longer_than_the_inline_buffer_are_rebuilt_on_the_heap)
{
    uint64_t rng = ts_seed("test_block_long");
    ref_t r = make_entries(&rng, 300, 2000, 10);
    /* Long shared prefixes: every key starts with the same 1500 bytes. */
    for (size_t i = 0; i < r.n; i++) {
        uint8_t *longer = malloc(r.e[i].key_len + 1500);
        memset(longer, 'p', 1500);
        memcpy(longer + 1500, r.e[i].key, r.e[i].key_len);
        free(r.e[i].key);
        r.e[i].key = longer;
        r.e[i].key_len += 1500;
    }
    check_block(&r, 16);
    check_block(&r, 1);
    free_entries(&r);
}
END_TEST

START_TEST(prefix_compression_stores_shared_bytes_once)
{
    ref_t r = {calloc(64, sizeof(entry_t)), 64};
    for (size_t i = 0; i < r.n; i++) {
        r.e[i].key_len = 40 + IKEY_TRAILER;
        r.e[i].key = malloc(r.e[i].key_len);
        snprintf((char *)r.e[i].key, 41, "a-long-common-prefix-for-every-key-%05u",
                 (unsigned)i & 0xffff);
        put_u64(r.e[i].key + 40, ikey_trailer(7, 1));
        r.e[i].value = malloc(1);
    }
    size_t len16, len1;
    free(build_block(&r, 16, &len16));
    free(build_block(&r, 1, &len1));
    /* 48-byte keys: restarts store all of them, the rest about 13 bytes. */
    ck_assert_uint_lt(len16, 64 * 20 + 4 * 48 + 4 * 4 + 4);
    ck_assert_uint_gt(len1, 64 * 48);
    check_block(&r, 16);
    free_entries(&r);
}
END_TEST

START_TEST(malformed_restart_arrays_are_refused)
{
    block_t block;
    uint8_t buf[64] = {0};
    ck_assert_int_eq(block_parse(&block, buf, 3), STRATA_ECORRUPT);
    put_u32(buf + 4, 0); /* no restarts at all */
    ck_assert_int_eq(block_parse(&block, buf, 8), STRATA_ECORRUPT);
    put_u32(buf + 4, 1000); /* more restarts than bytes */
    ck_assert_int_eq(block_parse(&block, buf, 8), STRATA_ECORRUPT);
    put_u32(buf + 4, 1); /* the empty block */
    ck_assert_int_eq(block_parse(&block, buf, 8), 0);
    /* Restarts out of order or past the entries. */
    put_u32(buf + 20, 0);
    put_u32(buf + 24, 12);
    put_u32(buf + 28, 4);
    put_u32(buf + 32, 3);
    ck_assert_int_eq(block_parse(&block, buf, 36), STRATA_ECORRUPT);
    put_u32(buf + 24, 4);
    put_u32(buf + 28, 30);
    ck_assert_int_eq(block_parse(&block, buf, 36), STRATA_ECORRUPT);
    put_u32(buf + 20, 1); /* the first restart must be 0 */
    put_u32(buf + 28, 8);
    ck_assert_int_eq(block_parse(&block, buf, 36), STRATA_ECORRUPT);
}
END_TEST

/* Walks the whole block every way; returns whether the iterator reported
 * damage. Under ASan, any read past the bytes fails the test. */
static bool walk(const uint8_t *data, size_t len, const ref_t *r)
{
    block_t block;
    if (block_parse(&block, data, len) < 0)
        return true;
    block_iter_t it;
    block_iter_init(&it);
    bool damaged = false;
    block_iter_attach(&it, &block);
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
    }
    damaged |= it.status != 0;
    block_iter_attach(&it, &block);
    for (block_iter_seek_last(&it); block_iter_valid(&it); block_iter_prev(&it)) {
    }
    damaged |= it.status != 0;
    for (size_t i = 0; i < r->n; i += 7) {
        block_iter_attach(&it, &block);
        const entry_t *e = &r->e[i];
        block_iter_seek(&it, e->key, e->key_len - IKEY_TRAILER,
                        get_u64(e->key + e->key_len - IKEY_TRAILER));
        damaged |= it.status != 0;
    }
    block_iter_free(&it);
    return damaged;
}

START_TEST(damaged_bytes_give_an_error_never_a_read_past_the_block)
{
    uint64_t rng = ts_seed("test_block_damage");
    ref_t r = make_entries(&rng, 200, 20, 30);
    size_t len;
    uint8_t *good = build_block(&r, 16, &len);
    ck_assert(!walk(good, len, &r));
    uint8_t *bad = malloc(len);
    int detected = 0, rounds = 3000;
    for (int round = 0; round < rounds; round++) {
        memcpy(bad, good, len);
        int flips = 1 + (int)(ts_rand(&rng) % 4);
        for (int f = 0; f < flips; f++)
            bad[ts_rand(&rng) % len] ^= (uint8_t)(1 + ts_rand(&rng) % 255);
        /* Exact-size copies so ASan sees any overrun. */
        uint8_t *exact = malloc(len);
        memcpy(exact, bad, len);
        detected += walk(exact, len, &r);
        free(exact);
    }
    fprintf(stderr, "test_block: %d of %d damaged blocks reported by the decoder alone\n", detected,
            rounds);
    /* Checksums catch the rest in a table; here only safety is required. */
    ck_assert_int_gt(detected, 0);
    free(bad);
    free(good);
    free_entries(&r);
}
END_TEST

START_TEST(an_entry_claiming_more_bytes_than_the_block_is_reported_with_its_offset)
{
    ref_t r = {calloc(2, sizeof(entry_t)), 2};
    for (size_t i = 0; i < 2; i++) {
        r.e[i].key_len = 9;
        r.e[i].key = malloc(9);
        r.e[i].key[0] = (uint8_t)('a' + i);
        put_u64(r.e[i].key + 1, ikey_trailer(1, 1));
        r.e[i].value_len = 3;
        r.e[i].value = (uint8_t *)strdup("val");
    }
    size_t len;
    uint8_t *data = build_block(&r, 16, &len);
    /* Second entry starts at 3 + 9 + 3 = 15; its value length is byte 17. */
    ck_assert_uint_eq(data[17], 3);
    data[17] = 0x7f;
    block_t block;
    ck_assert_int_eq(block_parse(&block, data, len), 0);
    block_iter_t it;
    block_iter_init(&it);
    block_iter_attach(&it, &block);
    block_iter_seek_first(&it);
    ck_assert(block_iter_valid(&it));
    block_iter_next(&it);
    ck_assert(!block_iter_valid(&it));
    ck_assert_int_eq(it.status, STRATA_ECORRUPT);
    ck_assert_uint_eq(it.problem_off, 15);
    ck_assert_str_eq(it.problem, "entry overruns the block");
    block_iter_free(&it);
    free(data);
    free_entries(&r);
}
END_TEST

START_TEST(varints_round_trip_and_stop_at_the_limit)
{
    static const uint64_t values[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX};
    uint8_t buf[VARINT64_MAX_BYTES];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        size_t n = varint_put(buf, values[i]);
        uint64_t v = 0;
        ck_assert_ptr_eq(varint_get(buf, buf + n, &v), buf + n);
        ck_assert_uint_eq(v, values[i]);
        if (n > 1)
            ck_assert_ptr_null(varint_get(buf, buf + n - 1, &v));
    }
    memset(buf, 0xff, sizeof buf); /* never terminates within 64 bits */
    uint64_t v;
    ck_assert_ptr_null(varint_get(buf, buf + sizeof buf, &v));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("block");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, random_entries_round_trip_at_every_restart_interval);
    tcase_add_test(tc, keys_longer_than_the_inline_buffer_are_rebuilt_on_the_heap);
    tcase_add_test(tc, prefix_compression_stores_shared_bytes_once);
    tcase_add_test(tc, malformed_restart_arrays_are_refused);
    tcase_add_test(tc, damaged_bytes_give_an_error_never_a_read_past_the_block);
    tcase_add_test(tc, an_entry_claiming_more_bytes_than_the_block_is_reported_with_its_offset);
    tcase_add_test(tc, varints_round_trip_and_stop_at_the_limit);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
