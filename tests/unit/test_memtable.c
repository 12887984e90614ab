/* Pins the memtable's order (key ascending, seq descending), its snapshot
 * reads, its iterators against a sorted reference, its reference counting,
 * and that readers running beside the writer never see a half-linked node. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/err.h"
#include "strata/memtable.h"
#include "support.h"

static uint64_t g_seed;

/* Each test draws from its own stream of the run's seed. */
static uint64_t test_rng(uint64_t stream)
{
    uint64_t state = g_seed ^ (stream * 0x9E3779B97F4A7C15ull);
    return state ? state : 1;
}

static void add_put(strata_memtable_t *mt, uint64_t seq, const char *key, const char *value)
{
    ck_assert_int_eq(
        strata_memtable_add(mt, seq, STRATA_VALUE_PUT, key, strlen(key), value, strlen(value)), 0);
}

static void assert_get(strata_memtable_t *mt, const char *key, uint64_t snapshot_seq,
                       strata_value_type_t want_type, uint64_t want_seq, const char *want_value)
{
    strata_value_type_t type = 0;
    const void *value = NULL;
    size_t value_len = 0;
    uint64_t seq = 0;
    ck_assert_int_eq(
        strata_memtable_get(mt, key, strlen(key), snapshot_seq, &type, &value, &value_len, &seq),
        1);
    ck_assert_int_eq(type, want_type);
    ck_assert_uint_eq(seq, want_seq);
    ck_assert_uint_eq(value_len, strlen(want_value));
    ck_assert(memcmp(value, want_value, value_len) == 0);
}

static void assert_absent(strata_memtable_t *mt, const void *key, size_t key_len,
                          uint64_t snapshot_seq)
{
    ck_assert_int_eq(strata_memtable_get(mt, key, key_len, snapshot_seq, NULL, NULL, NULL, NULL),
                     0);
}

static void assert_iter_at(strata_memtable_iter_t *it, const char *key, uint64_t seq)
{
    ck_assert(strata_memtable_iter_valid(it));
    size_t key_len = 0;
    const void *got = strata_memtable_iter_key(it, &key_len);
    ck_assert_uint_eq(key_len, strlen(key));
    ck_assert(memcmp(got, key, key_len) == 0);
    ck_assert_uint_eq(strata_memtable_iter_seq(it), seq);
}

/* The reference order, written independently of the memtable's. */
static int order_compare(const void *a, size_t a_len, uint64_t a_seq, const void *b, size_t b_len,
                         uint64_t b_seq)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < a_len && i < b_len; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    if (a_len != b_len)
        return a_len < b_len ? -1 : 1;
    if (a_seq != b_seq)
        return a_seq > b_seq ? -1 : 1;
    return 0;
}

/* ---- single-threaded behaviour ---- */

START_TEST(empty_memtable_finds_nothing_and_iterates_nothing)
{
    strata_memtable_t *mt = strata_memtable_new();
    ck_assert_ptr_nonnull(mt);
    ck_assert_uint_eq(strata_memtable_count(mt), 0);
    assert_absent(mt, "a", 1, UINT64_MAX);
    assert_absent(mt, NULL, 0, UINT64_MAX);

    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    ck_assert_ptr_nonnull(it);
    strata_memtable_iter_seek_first(it);
    ck_assert(!strata_memtable_iter_valid(it));
    strata_memtable_iter_seek_last(it);
    ck_assert(!strata_memtable_iter_valid(it));
    strata_memtable_iter_seek(it, "a", 1, UINT64_MAX);
    ck_assert(!strata_memtable_iter_valid(it));
    strata_memtable_iter_destroy(&it);
    ck_assert_ptr_null(it);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(versions_iterate_by_key_then_newest_first)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 5, "b", "b5");
    add_put(mt, 1, "a", "a1");
    add_put(mt, 7, "b", "b7");
    add_put(mt, 3, "a", "a3");
    add_put(mt, 2, "c", "c2");

    static const struct {
        const char *key;
        uint64_t seq;
    } want[] = {{"a", 3}, {"a", 1}, {"b", 7}, {"b", 5}, {"c", 2}};
    size_t n = sizeof want / sizeof want[0];
    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_iter_seek_first(it);
    for (size_t i = 0; i < n; i++) {
        assert_iter_at(it, want[i].key, want[i].seq);
        strata_memtable_iter_next(it);
    }
    ck_assert(!strata_memtable_iter_valid(it));

    strata_memtable_iter_seek_last(it);
    for (size_t i = n; i-- > 0;) {
        assert_iter_at(it, want[i].key, want[i].seq);
        strata_memtable_iter_prev(it);
    }
    ck_assert(!strata_memtable_iter_valid(it));
    strata_memtable_iter_destroy(&it);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(newest_version_wins_at_snapshot)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 20, "k", "v20");
    add_put(mt, 10, "k", "v10");
    add_put(mt, 30, "k", "v30");
    add_put(mt, 25, "j", "other key");
    add_put(mt, 26, "l", "other key");

    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 30, "v30");
    assert_get(mt, "k", 30, STRATA_VALUE_PUT, 30, "v30");
    assert_get(mt, "k", 29, STRATA_VALUE_PUT, 20, "v20");
    assert_get(mt, "k", 20, STRATA_VALUE_PUT, 20, "v20");
    assert_get(mt, "k", 19, STRATA_VALUE_PUT, 10, "v10");
    assert_get(mt, "k", 10, STRATA_VALUE_PUT, 10, "v10");
    /* Older than every version: the next entry in order is another key. */
    assert_absent(mt, "k", 1, 9);
    assert_absent(mt, "k", 1, 0);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(delete_marker_is_found_and_hides_older_put)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "k", "alive");
    ck_assert_int_eq(strata_memtable_add(mt, 2, STRATA_VALUE_DELETE, "k", 1, NULL, 0), 0);

    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_DELETE, 2, "");
    assert_get(mt, "k", 1, STRATA_VALUE_PUT, 1, "alive");

    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_iter_seek(it, "k", 1, UINT64_MAX);
    assert_iter_at(it, "k", 2);
    ck_assert_int_eq(strata_memtable_iter_type(it), STRATA_VALUE_DELETE);
    strata_memtable_iter_next(it);
    assert_iter_at(it, "k", 1);
    ck_assert_int_eq(strata_memtable_iter_type(it), STRATA_VALUE_PUT);
    strata_memtable_iter_destroy(&it);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(prefix_key_sorts_first_and_bytes_compare_unsigned)
{
    strata_memtable_t *mt = strata_memtable_new();
    static const unsigned char high[] = {0xff};
    static const unsigned char a_nul[] = {'a', 0x00};
    ck_assert_int_eq(strata_memtable_add(mt, 1, STRATA_VALUE_PUT, high, 1, "", 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 2, STRATA_VALUE_PUT, "ab", 2, "", 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 3, STRATA_VALUE_PUT, a_nul, 2, "", 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 4, STRATA_VALUE_PUT, "a", 1, "", 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 5, STRATA_VALUE_PUT, NULL, 0, "", 0), 0);

    static const uint64_t want_seqs[] = {5, 4, 3, 2, 1}; /* "", "a", "a\0", "ab", "\xff" */
    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_iter_seek_first(it);
    for (size_t i = 0; i < 5; i++) {
        ck_assert(strata_memtable_iter_valid(it));
        ck_assert_uint_eq(strata_memtable_iter_seq(it), want_seqs[i]);
        strata_memtable_iter_next(it);
    }
    ck_assert(!strata_memtable_iter_valid(it));
    /* "a" must not match "a\0" or "ab", nor the other way round. */
    assert_get(mt, "a", UINT64_MAX, STRATA_VALUE_PUT, 4, "");
    assert_absent(mt, "a\0\0", 3, UINT64_MAX);
    strata_memtable_iter_destroy(&it);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(empty_key_and_zero_length_value_round_trip)
{
    strata_memtable_t *mt = strata_memtable_new();
    ck_assert_int_eq(strata_memtable_add(mt, 7, STRATA_VALUE_PUT, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 8, STRATA_VALUE_PUT, "x", 1, NULL, 0), 0);

    const void *value = NULL;
    size_t value_len = 99;
    uint64_t seq = 0;
    strata_value_type_t type = 0;
    ck_assert_int_eq(strata_memtable_get(mt, "", 0, UINT64_MAX, &type, &value, &value_len, &seq),
                     1);
    ck_assert_int_eq(type, STRATA_VALUE_PUT);
    ck_assert_uint_eq(seq, 7);
    ck_assert_uint_eq(value_len, 0);
    ck_assert_ptr_nonnull(value);
    assert_get(mt, "x", UINT64_MAX, STRATA_VALUE_PUT, 8, "");
    /* Every out parameter is optional. */
    ck_assert_int_eq(strata_memtable_get(mt, NULL, 0, UINT64_MAX, NULL, NULL, NULL, NULL), 1);
    strata_memtable_unref(&mt);
}
END_TEST

static unsigned char *big_value(size_t size, size_t salt)
{
    unsigned char *value = malloc(size);
    for (size_t i = 0; i < size; i++)
        value[i] = (unsigned char)(i * 131 + salt);
    return value;
}

START_TEST(values_larger_than_a_block_round_trip_beside_small_ones)
{
    /* Just over the own-block threshold, and well over a whole block. */
    static const size_t sizes[] = {300u << 10, 3u << 20, 1u << 20};
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "small-before", "s1");
    size_t total = 0;
    for (size_t i = 0; i < 3; i++) {
        unsigned char *big = big_value(sizes[i], i);
        char key[16];
        snprintf(key, sizeof key, "big%zu", i);
        ck_assert_int_eq(
            strata_memtable_add(mt, 10 + i, STRATA_VALUE_PUT, key, strlen(key), big, sizes[i]), 0);
        total += sizes[i];
        free(big);
    }
    add_put(mt, 2, "small-after", "s2");
    ck_assert_uint_ge(strata_memtable_bytes(mt), total);

    for (size_t i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "big%zu", i);
        const unsigned char *value = NULL;
        size_t value_len = 0;
        ck_assert_int_eq(strata_memtable_get(mt, key, strlen(key), UINT64_MAX, NULL,
                                             (const void **)&value, &value_len, NULL),
                         1);
        ck_assert_uint_eq(value_len, sizes[i]);
        unsigned char *want = big_value(sizes[i], i);
        ck_assert(memcmp(value, want, value_len) == 0);
        free(want);
    }
    assert_get(mt, "small-before", UINT64_MAX, STRATA_VALUE_PUT, 1, "s1");
    assert_get(mt, "small-after", UINT64_MAX, STRATA_VALUE_PUT, 2, "s2");

    /* A key larger than a block lives in its own block too. */
    size_t big_key_len = 2u << 20;
    char *big_key = malloc(big_key_len);
    memset(big_key, 'k', big_key_len);
    ck_assert_int_eq(strata_memtable_add(mt, 20, STRATA_VALUE_PUT, big_key, big_key_len, "bk", 2),
                     0);
    ck_assert_int_eq(
        strata_memtable_get(mt, big_key, big_key_len, UINT64_MAX, NULL, NULL, NULL, NULL), 1);
    assert_absent(mt, big_key, big_key_len - 1, UINT64_MAX);
    free(big_key);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(bytes_grow_with_every_add_and_cover_keys_and_values)
{
    strata_memtable_t *mt = strata_memtable_new();
    size_t before = strata_memtable_bytes(mt);
    size_t payload = 0;
    uint64_t rng = test_rng(1);
    for (uint64_t seq = 1; seq <= 20000; seq++) {
        char key[32];
        char value[200];
        int key_len = snprintf(key, sizeof key, "key%llu", (unsigned long long)ts_rand(&rng));
        size_t value_len = ts_rand(&rng) % sizeof value;
        memset(value, 'v', value_len);
        ck_assert_int_eq(
            strata_memtable_add(mt, seq, STRATA_VALUE_PUT, key, (size_t)key_len, value, value_len),
            0);
        size_t after = strata_memtable_bytes(mt);
        ck_assert_uint_gt(after, before);
        before = after;
        payload += (size_t)key_len + value_len;
        ck_assert_uint_eq(strata_memtable_count(mt), seq);
    }
    ck_assert_uint_ge(strata_memtable_bytes(mt), payload);
    /* Headers, links and padding cost something, but not double. */
    ck_assert_uint_le(strata_memtable_bytes(mt), 2 * payload + 64 * 20000);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(oversized_entry_returns_enomem_and_changes_nothing)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "k", "v");
    size_t bytes = strata_memtable_bytes(mt);
    /* Neither length is ever read: the size check comes first. */
    ck_assert_int_eq(strata_memtable_add(mt, 2, STRATA_VALUE_PUT, "k", 1, "v", SIZE_MAX),
                     STRATA_ENOMEM);
#if SIZE_MAX > UINT32_MAX
    ck_assert_int_eq(
        strata_memtable_add(mt, 3, STRATA_VALUE_PUT, "k", (size_t)UINT32_MAX + 1, "v", 1),
        STRATA_ENOMEM);
#endif
    ck_assert_uint_eq(strata_memtable_count(mt), 1);
    ck_assert_uint_eq(strata_memtable_bytes(mt), bytes);
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 1, "v");
    add_put(mt, 4, "k", "still usable");
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 4, "still usable");
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(iterator_keeps_memtable_alive_after_owner_unrefs)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "a", "va");
    add_put(mt, 2, "b", "vb");
    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_unref(&mt);
    ck_assert_ptr_null(mt);

    /* Under ASan a freed arena would show up here as a use after free. */
    strata_memtable_iter_seek_first(it);
    assert_iter_at(it, "a", 1);
    size_t value_len = 0;
    const void *value = strata_memtable_iter_value(it, &value_len);
    ck_assert_uint_eq(value_len, 2);
    ck_assert(memcmp(value, "va", 2) == 0);
    strata_memtable_iter_next(it);
    assert_iter_at(it, "b", 2);
    strata_memtable_iter_destroy(&it);
    ck_assert_ptr_null(it);
}
END_TEST

START_TEST(every_reference_must_go_before_the_memtable_does)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "k", "v");
    strata_memtable_t *reader = mt;
    strata_memtable_ref(reader);
    strata_memtable_unref(&mt);
    ck_assert_ptr_null(mt);
    assert_get(reader, "k", UINT64_MAX, STRATA_VALUE_PUT, 1, "v");
    strata_memtable_unref(&reader);
    ck_assert_ptr_null(reader);
    /* Unref of an already-nulled pointer is harmless. */
    strata_memtable_unref(&reader);
}
END_TEST

/* ---- random data against a sorted reference ---- */

typedef struct {
    unsigned char key[4];
    size_t key_len;
    uint64_t seq;
    strata_value_type_t type;
    char value[24];
    size_t value_len;
} ref_entry_t;

static int ref_entry_compare(const void *a, const void *b)
{
    const ref_entry_t *x = a, *y = b;
    return order_compare(x->key, x->key_len, x->seq, y->key, y->key_len, y->seq);
}

/* Short keys over a four-symbol alphabet that includes 0x00 and 0xff, so that
 * versions, prefixes and signedness mistakes all occur; seqs are unique but
 * inserted in random order. */
static void random_key(uint64_t *rng, unsigned char *key, size_t *key_len)
{
    static const unsigned char alphabet[] = {0x00, 'a', 0x80, 0xff};
    *key_len = ts_rand(rng) % 5;
    for (size_t i = 0; i < *key_len; i++)
        key[i] = alphabet[ts_rand(rng) % 4];
}

static ref_entry_t *fill_random(strata_memtable_t *mt, uint64_t *rng, size_t n)
{
    ref_entry_t *ref = calloc(n, sizeof *ref);
    uint64_t *seqs = malloc(n * sizeof *seqs);
    for (size_t i = 0; i < n; i++)
        seqs[i] = i + 1;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = ts_rand(rng) % (i + 1);
        uint64_t t = seqs[i];
        seqs[i] = seqs[j];
        seqs[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        ref_entry_t *e = &ref[i];
        random_key(rng, e->key, &e->key_len);
        e->seq = seqs[i];
        e->type = ts_rand(rng) % 5 == 0 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT;
        if (e->type == STRATA_VALUE_PUT)
            e->value_len =
                (size_t)snprintf(e->value, sizeof e->value, "v%llu", (unsigned long long)e->seq) *
                (ts_rand(rng) % 2);
        ck_assert_int_eq(
            strata_memtable_add(mt, e->seq, e->type, e->key, e->key_len, e->value, e->value_len),
            0);
    }
    free(seqs);
    qsort(ref, n, sizeof *ref, ref_entry_compare);
    return ref;
}

static void assert_iter_is(strata_memtable_iter_t *it, const ref_entry_t *e)
{
    ck_assert(strata_memtable_iter_valid(it));
    size_t key_len = 0, value_len = 0;
    const void *key = strata_memtable_iter_key(it, &key_len);
    const void *value = strata_memtable_iter_value(it, &value_len);
    ck_assert_uint_eq(strata_memtable_iter_seq(it), e->seq);
    ck_assert_uint_eq(key_len, e->key_len);
    ck_assert(key_len == 0 || memcmp(key, e->key, key_len) == 0);
    ck_assert_int_eq(strata_memtable_iter_type(it), e->type);
    ck_assert_uint_eq(value_len, e->value_len);
    ck_assert(value_len == 0 || memcmp(value, e->value, value_len) == 0);
}

/* Index of the first reference entry >= (key, seq), n when there is none. */
static size_t ref_lower_bound(const ref_entry_t *ref, size_t n, const void *key, size_t key_len,
                              uint64_t seq)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (order_compare(ref[mid].key, ref[mid].key_len, ref[mid].seq, key, key_len, seq) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum { RANDOM_ENTRIES = 5000 };

START_TEST(random_entries_iterate_like_a_sorted_reference_both_ways)
{
    uint64_t rng = test_rng(2);
    strata_memtable_t *mt = strata_memtable_new();
    ref_entry_t *ref = fill_random(mt, &rng, RANDOM_ENTRIES);
    ck_assert_uint_eq(strata_memtable_count(mt), RANDOM_ENTRIES);

    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_iter_seek_first(it);
    for (size_t i = 0; i < RANDOM_ENTRIES; i++) {
        assert_iter_is(it, &ref[i]);
        strata_memtable_iter_next(it);
    }
    ck_assert(!strata_memtable_iter_valid(it));

    strata_memtable_iter_seek_last(it);
    for (size_t i = RANDOM_ENTRIES; i-- > 0;) {
        assert_iter_is(it, &ref[i]);
        strata_memtable_iter_prev(it);
    }
    ck_assert(!strata_memtable_iter_valid(it));
    strata_memtable_iter_destroy(&it);
    free(ref);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(seek_lands_on_first_entry_at_or_after_target)
{
    uint64_t rng = test_rng(3);
    strata_memtable_t *mt = strata_memtable_new();
    ref_entry_t *ref = fill_random(mt, &rng, RANDOM_ENTRIES);
    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    for (int round = 0; round < 20000; round++) {
        unsigned char key[4];
        size_t key_len;
        random_key(&rng, key, &key_len);
        uint64_t seq;
        switch (round % 4) {
        case 0:
            seq = UINT64_MAX;
            break;
        case 1:
            seq = 0;
            break;
        default:
            seq = ts_rand(&rng) % (RANDOM_ENTRIES + 2);
        }
        size_t at = ref_lower_bound(ref, RANDOM_ENTRIES, key, key_len, seq);
        strata_memtable_iter_seek(it, key, key_len, seq);
        if (at == RANDOM_ENTRIES) {
            ck_assert(!strata_memtable_iter_valid(it));
            continue;
        }
        assert_iter_is(it, &ref[at]);
        /* Stepping either way from a seek follows the reference too. */
        if (round % 2) {
            strata_memtable_iter_next(it);
            if (at + 1 < RANDOM_ENTRIES)
                assert_iter_is(it, &ref[at + 1]);
            else
                ck_assert(!strata_memtable_iter_valid(it));
        } else {
            strata_memtable_iter_prev(it);
            if (at > 0)
                assert_iter_is(it, &ref[at - 1]);
            else
                ck_assert(!strata_memtable_iter_valid(it));
        }
    }
    strata_memtable_iter_seek_last(it);
    assert_iter_is(it, &ref[RANDOM_ENTRIES - 1]);
    strata_memtable_iter_destroy(&it);
    free(ref);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(get_matches_reference_at_random_snapshots)
{
    uint64_t rng = test_rng(4);
    strata_memtable_t *mt = strata_memtable_new();
    ref_entry_t *ref = fill_random(mt, &rng, RANDOM_ENTRIES);
    for (int round = 0; round < 20000; round++) {
        unsigned char key[4];
        size_t key_len;
        random_key(&rng, key, &key_len);
        uint64_t snapshot = round % 8 == 0 ? UINT64_MAX : ts_rand(&rng) % (RANDOM_ENTRIES + 2);
        size_t at = ref_lower_bound(ref, RANDOM_ENTRIES, key, key_len, snapshot);
        bool want = at < RANDOM_ENTRIES && ref[at].key_len == key_len &&
                    (key_len == 0 || memcmp(ref[at].key, key, key_len) == 0);

        strata_value_type_t type = 0;
        const void *value = NULL;
        size_t value_len = 0;
        uint64_t seq = 0;
        int found =
            strata_memtable_get(mt, key, key_len, snapshot, &type, &value, &value_len, &seq);
        ck_assert_int_eq(found, want);
        if (!want)
            continue;
        ck_assert_uint_eq(seq, ref[at].seq);
        ck_assert_uint_le(seq, snapshot);
        ck_assert_int_eq(type, ref[at].type);
        ck_assert_uint_eq(value_len, ref[at].value_len);
        ck_assert(value_len == 0 || memcmp(value, ref[at].value, value_len) == 0);
    }
    free(ref);
    strata_memtable_unref(&mt);
}
END_TEST

/* ---- bulk loading against single adds ---- */

typedef struct {
    unsigned char key[24];
    size_t key_len;
    uint64_t seq;
    strata_value_type_t type;
    char value[24];
    size_t value_len;
} bulk_entry_t;

/* Key shapes that the bulk sort handles on different paths: short keys that
 * are prefixes of each other or differ in 0x00 and 0xff, one hot key, keys
 * behind a long shared prefix (some shorter than it), and keys that differ
 * only past the 8 bytes the sort looks at first. */
typedef enum {
    KEYS_SHORT,
    KEYS_ONE,
    KEYS_SHARED_PREFIX,
    KEYS_LATE_DIFFERENCE,
    KEY_SHAPES,
} key_shape_t;

static void bulk_key(uint64_t *rng, key_shape_t shape, bulk_entry_t *e)
{
    static const unsigned char alphabet[] = {0x00, 'a', 0x80, 0xff};
    size_t fixed = 0, random = 0;
    switch (shape) {
    case KEYS_SHORT:
        random = ts_rand(rng) % 5;
        break;
    case KEYS_ONE:
        fixed = 3;
        break;
    case KEYS_SHARED_PREFIX:
        /* Now and then a key shorter than the prefix the others share. */
        fixed = ts_rand(rng) % 16 == 0 ? ts_rand(rng) % 12 : 12;
        random = fixed == 12 ? ts_rand(rng) % 7 : 0;
        break;
    case KEYS_LATE_DIFFERENCE:
        fixed = 18;
        random = ts_rand(rng) % 3;
        break;
    default:
        ck_abort();
    }
    memcpy(e->key, "account/0000000000000000", fixed);
    /* A first byte that differs keeps the shared prefix empty, so that
     * these keys tie on their first 8 bytes. */
    if (shape == KEYS_LATE_DIFFERENCE)
        e->key[0] = ts_rand(rng) % 2 ? 'a' : 'b';
    for (size_t i = 0; i < random; i++)
        e->key[fixed + i] = alphabet[ts_rand(rng) % 4];
    e->key_len = fixed + random;
}

/* n entries with unique seqs 1..n, in random order, or ascending as replay
 * stages them. */
static bulk_entry_t *bulk_entries(uint64_t *rng, key_shape_t shape, size_t n, bool seqs_ascending)
{
    bulk_entry_t *entries = calloc(n, sizeof *entries);
    for (size_t i = 0; i < n; i++)
        entries[i].seq = i + 1;
    for (size_t i = n - 1; !seqs_ascending && i > 0; i--) {
        size_t j = ts_rand(rng) % (i + 1);
        uint64_t t = entries[i].seq;
        entries[i].seq = entries[j].seq;
        entries[j].seq = t;
    }
    for (size_t i = 0; i < n; i++) {
        bulk_entry_t *e = &entries[i];
        bulk_key(rng, shape, e);
        e->type = ts_rand(rng) % 5 == 0 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT;
        e->value_len =
            (size_t)snprintf(e->value, sizeof e->value, "v%llu", (unsigned long long)e->seq) *
            (ts_rand(rng) % 2);
    }
    return entries;
}

/* The two memtables hold the same entries in the same order, and every
 * entry of bulk is found by a seek, which walks the upper levels too. */
static void assert_same_memtable(strata_memtable_t *bulk, strata_memtable_t *single)
{
    ck_assert_uint_eq(strata_memtable_count(bulk), strata_memtable_count(single));
    strata_memtable_iter_t *a = strata_memtable_iter_new(bulk);
    strata_memtable_iter_t *b = strata_memtable_iter_new(single);
    strata_memtable_iter_t *seek = strata_memtable_iter_new(bulk);
    uint64_t seen = 0;
    strata_memtable_iter_seek_first(a);
    strata_memtable_iter_seek_first(b);
    for (; strata_memtable_iter_valid(b);
         strata_memtable_iter_next(a), strata_memtable_iter_next(b)) {
        ck_assert(strata_memtable_iter_valid(a));
        size_t a_len, b_len, a_value_len, b_value_len;
        const void *a_key = strata_memtable_iter_key(a, &a_len);
        const void *b_key = strata_memtable_iter_key(b, &b_len);
        const void *a_value = strata_memtable_iter_value(a, &a_value_len);
        const void *b_value = strata_memtable_iter_value(b, &b_value_len);
        uint64_t seq = strata_memtable_iter_seq(b);
        ck_assert_uint_eq(strata_memtable_iter_seq(a), seq);
        ck_assert_uint_eq(a_len, b_len);
        ck_assert(a_len == 0 || memcmp(a_key, b_key, a_len) == 0);
        ck_assert_int_eq(strata_memtable_iter_type(a), strata_memtable_iter_type(b));
        ck_assert_uint_eq(a_value_len, b_value_len);
        ck_assert(a_value_len == 0 || memcmp(a_value, b_value, a_value_len) == 0);
        strata_memtable_iter_seek(seek, b_key, b_len, seq);
        ck_assert(strata_memtable_iter_valid(seek));
        ck_assert_uint_eq(strata_memtable_iter_seq(seek), seq);
        seen++;
    }
    ck_assert(!strata_memtable_iter_valid(a));
    ck_assert_uint_eq(seen, strata_memtable_count(single));
    strata_memtable_iter_destroy(&seek);
    strata_memtable_iter_destroy(&b);
    strata_memtable_iter_destroy(&a);
}

static void add_entry(strata_memtable_t *mt, const bulk_entry_t *e)
{
    ck_assert_int_eq(
        strata_memtable_add(mt, e->seq, e->type, e->key, e->key_len, e->value, e->value_len), 0);
}

static void stage_entry(strata_memtable_t *mt, const bulk_entry_t *e)
{
    ck_assert_int_eq(
        strata_memtable_stage(mt, e->seq, e->type, e->key, e->key_len, e->value, e->value_len), 0);
}

/* Loads the entries one by one into one memtable and into another by
 * adding the first `added`, then staging the rest `batch` at a time, and
 * compares the two. */
static void check_bulk_load(const bulk_entry_t *entries, size_t n, size_t added, size_t batch)
{
    strata_memtable_t *single = strata_memtable_new();
    strata_memtable_t *bulk = strata_memtable_new();
    for (size_t i = 0; i < n; i++)
        add_entry(single, &entries[i]);
    for (size_t i = 0; i < added; i++)
        add_entry(bulk, &entries[i]);
    for (size_t i = added; i < n; i++) {
        stage_entry(bulk, &entries[i]);
        if ((i - added + 1) % batch == 0)
            strata_memtable_publish(bulk);
    }
    strata_memtable_publish(bulk);
    assert_same_memtable(bulk, single);
    strata_memtable_unref(&bulk);
    strata_memtable_unref(&single);
}

START_TEST(bulk_load_matches_single_adds_for_every_key_shape)
{
    uint64_t rng = test_rng(20);
    const size_t n = 3000;
    for (key_shape_t shape = 0; shape < KEY_SHAPES; shape++) {
        for (int ascending = 0; ascending < 2; ascending++) {
            bulk_entry_t *entries = bulk_entries(&rng, shape, n, ascending);
            check_bulk_load(entries, n, 0, n);     /* one publish into an empty memtable */
            check_bulk_load(entries, n, 0, 1);     /* a publish per entry */
            check_bulk_load(entries, n, 0, 97);    /* batches, each into a non-empty one */
            check_bulk_load(entries, n, n / 2, n); /* into a half-full memtable */
            check_bulk_load(entries, n, n - 1, n); /* one entry among many */
            free(entries);
        }
    }
}
END_TEST

START_TEST(bulk_load_matches_single_adds_on_random_mixes)
{
    uint64_t rng = test_rng(21);
    int rounds = ts_soak() ? 200 : 20;
    for (int round = 0; round < rounds; round++) {
        size_t n = 1 + ts_rand(&rng) % 5000;
        bulk_entry_t *entries = bulk_entries(&rng, KEYS_SHORT, n, ts_rand(&rng) % 2);
        /* Mixed shapes in one load: some entries take another shape's key. */
        for (size_t i = 0; i < n; i++)
            if (ts_rand(&rng) % 3 == 0)
                bulk_key(&rng, ts_rand(&rng) % KEY_SHAPES, &entries[i]);
        check_bulk_load(entries, n, ts_rand(&rng) % (n + 1), 1 + ts_rand(&rng) % n);
        free(entries);
    }
}
END_TEST

START_TEST(big_bulk_load_into_an_empty_memtable_matches_single_adds)
{
    /* Past the entries at which staging starts the block-filling thread
     * and publish sorts and links on two threads. */
    uint64_t rng = test_rng(22);
    const size_t n = 70000;
    for (key_shape_t shape = 0; shape < KEY_SHAPES; shape++) {
        /* Seqs ascending, as replay stages them: the sanitizer builds
         * take minutes over the random order too. */
        bulk_entry_t *entries = bulk_entries(&rng, shape, n, true);
        check_bulk_load(entries, n, 0, n);
        free(entries);
    }
}
END_TEST

START_TEST(staged_entries_stay_invisible_until_published)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "b", "added");
    size_t bytes = strata_memtable_bytes(mt);
    ck_assert_int_eq(strata_memtable_stage(mt, 2, STRATA_VALUE_PUT, "a", 1, "staged", 6), 0);
    ck_assert_int_eq(strata_memtable_stage(mt, 3, STRATA_VALUE_DELETE, "b", 1, NULL, 0), 0);
    /* Their bytes count at once: they decide when the memtable is full. */
    ck_assert_uint_gt(strata_memtable_bytes(mt), bytes);
    ck_assert_uint_eq(strata_memtable_count(mt), 1);
    assert_absent(mt, "a", 1, UINT64_MAX);
    assert_get(mt, "b", UINT64_MAX, STRATA_VALUE_PUT, 1, "added");
    strata_memtable_iter_t *it = strata_memtable_iter_new(mt);
    strata_memtable_iter_seek_first(it);
    assert_iter_at(it, "b", 1);
    strata_memtable_iter_next(it);
    ck_assert(!strata_memtable_iter_valid(it));

    strata_memtable_publish(mt);
    ck_assert_uint_eq(strata_memtable_count(mt), 3);
    assert_get(mt, "a", UINT64_MAX, STRATA_VALUE_PUT, 2, "staged");
    assert_get(mt, "b", UINT64_MAX, STRATA_VALUE_DELETE, 3, "");
    assert_get(mt, "b", 2, STRATA_VALUE_PUT, 1, "added");
    strata_memtable_iter_seek_first(it);
    assert_iter_at(it, "a", 2);
    strata_memtable_iter_next(it);
    assert_iter_at(it, "b", 3);
    strata_memtable_iter_next(it);
    assert_iter_at(it, "b", 1);

    /* Publishing nothing changes nothing; staging again works. */
    strata_memtable_publish(mt);
    ck_assert_uint_eq(strata_memtable_count(mt), 3);
    ck_assert_int_eq(strata_memtable_stage(mt, 4, STRATA_VALUE_PUT, "c", 1, "again", 5), 0);
    strata_memtable_publish(mt);
    assert_get(mt, "c", UINT64_MAX, STRATA_VALUE_PUT, 4, "again");
    strata_memtable_iter_destroy(&it);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(oversized_stage_returns_enomem_and_stages_nothing)
{
    strata_memtable_t *mt = strata_memtable_new();
    ck_assert_int_eq(strata_memtable_stage(mt, 1, STRATA_VALUE_PUT, "k", 1, "v", 1), 0);
    size_t bytes = strata_memtable_bytes(mt);
    ck_assert_int_eq(strata_memtable_stage(mt, 2, STRATA_VALUE_PUT, "k", 1, "v", SIZE_MAX),
                     STRATA_ENOMEM);
    ck_assert_uint_eq(strata_memtable_bytes(mt), bytes);
    strata_memtable_publish(mt);
    ck_assert_uint_eq(strata_memtable_count(mt), 1);
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 1, "v");
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(unpublished_entries_are_freed_with_the_memtable)
{
    /* Under ASan this is a leak check: staged nodes live in the arena and
     * the staging array goes with the last reference. */
    strata_memtable_t *mt = strata_memtable_new();
    for (uint64_t seq = 1; seq <= 5000; seq++) {
        char key[16];
        int len = snprintf(key, sizeof key, "k%llu", (unsigned long long)(seq * 7919 % 5000));
        ck_assert_int_eq(
            strata_memtable_stage(mt, seq, STRATA_VALUE_PUT, key, (size_t)len, key, (size_t)len),
            0);
    }
    strata_memtable_unref(&mt);
}
END_TEST

/* ---- the point index ---- */

/* Keys that share all but their last bytes, as a counter's keys do: the hash
 * must still tell them apart. */
static size_t index_key(uint32_t id, char *key)
{
    return (size_t)sprintf(key, "user:%010u", id);
}

START_TEST(index_finds_every_key_and_misses_absent_ones)
{
    strata_memtable_t *mt = strata_memtable_new();
    char key[32];
    for (uint32_t id = 0; id < 5000; id += 2) {
        size_t key_len = index_key(id, key);
        ck_assert_int_eq(
            strata_memtable_add(mt, id + 1, STRATA_VALUE_PUT, key, key_len, key, key_len), 0);
    }
    for (uint32_t id = 0; id < 5000; id++) {
        size_t key_len = index_key(id, key);
        if (id % 2) {
            assert_absent(mt, key, key_len, UINT64_MAX);
            continue;
        }
        assert_get(mt, key, UINT64_MAX, STRATA_VALUE_PUT, id + 1, key);
        assert_get(mt, key, id + 1, STRATA_VALUE_PUT, id + 1, key);
        /* A prefix or an extension of a present key is another key. */
        assert_absent(mt, key, key_len - 1, UINT64_MAX);
        key[key_len] = '0';
        assert_absent(mt, key, key_len + 1, UINT64_MAX);
    }
    assert_absent(mt, "", 0, UINT64_MAX);
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(index_answers_newest_and_older_snapshots_search_the_list)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "k", "v1");
    add_put(mt, 2, "other", "o2");
    add_put(mt, 5, "k", "v5");
    add_put(mt, 9, "k", "v9");
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 9, "v9");
    assert_get(mt, "k", 9, STRATA_VALUE_PUT, 9, "v9");
    assert_get(mt, "k", 8, STRATA_VALUE_PUT, 5, "v5");
    assert_get(mt, "k", 4, STRATA_VALUE_PUT, 1, "v1");
    assert_absent(mt, "k", 1, 0);
    /* An entry older than the indexed one does not replace it. */
    add_put(mt, 3, "k", "v3");
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 9, "v9");
    assert_get(mt, "k", 4, STRATA_VALUE_PUT, 3, "v3");
    strata_memtable_unref(&mt);
}
END_TEST

START_TEST(index_returns_delete_markers_like_the_list)
{
    strata_memtable_t *mt = strata_memtable_new();
    add_put(mt, 1, "k", "alive");
    ck_assert_int_eq(strata_memtable_add(mt, 2, STRATA_VALUE_DELETE, "k", 1, NULL, 0), 0);
    ck_assert_int_eq(strata_memtable_add(mt, 3, STRATA_VALUE_DELETE, "never-put", 9, NULL, 0), 0);
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_DELETE, 2, "");
    assert_get(mt, "k", 1, STRATA_VALUE_PUT, 1, "alive");
    assert_get(mt, "never-put", UINT64_MAX, STRATA_VALUE_DELETE, 3, "");
    assert_absent(mt, "never-put", 9, 2);
    add_put(mt, 4, "k", "again");
    assert_get(mt, "k", UINT64_MAX, STRATA_VALUE_PUT, 4, "again");
    assert_get(mt, "k", 3, STRATA_VALUE_DELETE, 2, "");
    strata_memtable_unref(&mt);
}
END_TEST

/* The same entries added and bulk loaded: the bulk-loaded memtable has no
 * index, so the difference is the index, which bytes must count. */
START_TEST(index_memory_is_counted_and_stays_a_fraction_of_the_entries)
{
    enum { KEYS = 100000 };
    strata_memtable_t *added = strata_memtable_new();
    strata_memtable_t *staged = strata_memtable_new();
    char key[32];
    unsigned char value[100] = {0};
    for (uint32_t id = 0; id < KEYS; id++) {
        size_t key_len = index_key(id, key);
        ck_assert_int_eq(
            strata_memtable_add(added, id + 1, STRATA_VALUE_PUT, key, key_len, value, sizeof value),
            0);
        ck_assert_int_eq(strata_memtable_stage(staged, id + 1, STRATA_VALUE_PUT, key, key_len,
                                               value, sizeof value),
                         0);
    }
    strata_memtable_publish(staged);
    size_t index_bytes = strata_memtable_bytes(added) - strata_memtable_bytes(staged);
    /* 8-byte slots at most 3/4 full, the tables it outgrew beside it. */
    ck_assert_uint_ge(index_bytes, KEYS * 8 * 4 / 3);
    ck_assert_uint_le(index_bytes, KEYS * 8 * 8 / 3 * 2);
    ck_assert_uint_le(index_bytes, strata_memtable_bytes(staged) / 3);
    strata_memtable_unref(&added);
    strata_memtable_unref(&staged);
}
END_TEST

/* Replay fills memtables by staging; their gets search the list, and adds
 * after the publish stay findable beside the staged entries. */
START_TEST(bulk_loaded_memtable_answers_gets_without_an_index)
{
    strata_memtable_t *mt = strata_memtable_new();
    char key[32];
    add_put(mt, 1, "added-first", "a1");
    for (uint32_t id = 0; id < 3000; id += 2) {
        size_t key_len = index_key(id, key);
        ck_assert_int_eq(
            strata_memtable_stage(mt, id + 2, STRATA_VALUE_PUT, key, key_len, key, key_len), 0);
    }
    ck_assert_int_eq(
        strata_memtable_stage(mt, 5000, STRATA_VALUE_DELETE, "added-first", 11, NULL, 0), 0);
    strata_memtable_publish(mt);
    add_put(mt, 5001, "added-after", "a5001");
    size_t key_len = index_key(0, key);
    ck_assert_int_eq(strata_memtable_add(mt, 5002, STRATA_VALUE_PUT, key, key_len, "new", 3), 0);

    for (uint32_t id = 2; id < 3000; id++) {
        key_len = index_key(id, key);
        if (id % 2)
            assert_absent(mt, key, key_len, UINT64_MAX);
        else
            assert_get(mt, key, UINT64_MAX, STRATA_VALUE_PUT, id + 2, key);
    }
    key_len = index_key(0, key);
    char staged_value[32];
    memcpy(staged_value, key, key_len + 1);
    assert_get(mt, key, UINT64_MAX, STRATA_VALUE_PUT, 5002, "new");
    assert_get(mt, key, 5001, STRATA_VALUE_PUT, 2, staged_value);
    assert_get(mt, "added-first", UINT64_MAX, STRATA_VALUE_DELETE, 5000, "");
    assert_get(mt, "added-first", 4999, STRATA_VALUE_PUT, 1, "a1");
    assert_get(mt, "added-after", UINT64_MAX, STRATA_VALUE_PUT, 5001, "a5001");
    assert_absent(mt, "added-never", 11, UINT64_MAX);
    strata_memtable_unref(&mt);
}
END_TEST

/* ---- one writer, several readers ---- */

enum {
    CONCURRENT_KEYS = 50000, /* about four versions of each key */
    CONCURRENT_READERS = 3,
};

typedef struct {
    strata_memtable_t *mt;
    const uint32_t *key_of_entry; /* entry i has seq i + 1 */
    size_t entries;
    _Atomic size_t published; /* entries whose add has returned */
    atomic_bool done;
} shared_t;

typedef struct {
    shared_t *shared;
    strata_memtable_t *mt; /* the reader's own reference */
    uint64_t rng;
    char failure[256];
    uint64_t gets, scans;
} reader_t;

static size_t concurrent_key(uint32_t key_id, char *key)
{
    return (size_t)sprintf(key, "key%06u", key_id);
}

/* The value is a function of (key, seq), so a reader can tell a torn or
 * misattributed value from the one the writer wrote. */
static size_t concurrent_value(uint32_t key_id, uint64_t seq, unsigned char *value)
{
    size_t len = 12 + seq % 40;
    memcpy(value, &seq, 8);
    memcpy(value + 8, &key_id, 4);
    for (size_t i = 12; i < len; i++)
        value[i] = (unsigned char)(seq * 31 + key_id + i);
    return len;
}

/* Checks one entry a reader found: its key belongs to its seq and its value
 * is the one written for both. Returns false and records why otherwise. */
static bool check_entry(reader_t *r, const void *key, size_t key_len, uint64_t seq,
                        strata_value_type_t type, const void *value, size_t value_len)
{
    shared_t *s = r->shared;
    if (seq == 0 || seq > s->entries) {
        snprintf(r->failure, sizeof r->failure, "seq %llu out of range", (unsigned long long)seq);
        return false;
    }
    uint32_t key_id = s->key_of_entry[seq - 1];
    char want_key[16];
    unsigned char want_value[64];
    size_t want_key_len = concurrent_key(key_id, want_key);
    size_t want_value_len = concurrent_value(key_id, seq, want_value);
    if (key_len != want_key_len || memcmp(key, want_key, key_len) != 0 ||
        type != STRATA_VALUE_PUT || value_len != want_value_len ||
        memcmp(value, want_value, value_len) != 0) {
        snprintf(r->failure, sizeof r->failure, "seq %llu: key, type or value is not as written",
                 (unsigned long long)seq);
        return false;
    }
    return true;
}

static bool reader_gets(reader_t *r)
{
    shared_t *s = r->shared;
    for (int i = 0; i < 256; i++) {
        size_t published = atomic_load_explicit(&s->published, memory_order_acquire);
        if (published == 0)
            return true;
        size_t entry = ts_rand(&r->rng) % published;
        uint64_t entry_seq = entry + 1;
        char key[16];
        size_t key_len = concurrent_key(s->key_of_entry[entry], key);
        /* At the entry's own seq nothing newer is visible, so it must be
         * exactly that entry; at the latest, that entry or a newer one. */
        uint64_t snapshots[2] = {entry_seq, UINT64_MAX};
        for (int k = 0; k < 2; k++) {
            strata_value_type_t type = 0;
            const void *value = NULL;
            size_t value_len = 0;
            uint64_t seq = 0;
            if (!strata_memtable_get(r->mt, key, key_len, snapshots[k], &type, &value, &value_len,
                                     &seq)) {
                snprintf(r->failure, sizeof r->failure, "published seq %llu not found",
                         (unsigned long long)entry_seq);
                return false;
            }
            if ((k == 0 && seq != entry_seq) || seq < entry_seq) {
                snprintf(r->failure, sizeof r->failure, "get at %llu returned seq %llu",
                         (unsigned long long)snapshots[k], (unsigned long long)seq);
                return false;
            }
            if (!check_entry(r, key, key_len, seq, type, value, value_len))
                return false;
        }
        r->gets++;
    }
    return true;
}

static bool reader_scans(reader_t *r)
{
    shared_t *s = r->shared;
    size_t published = atomic_load_explicit(&s->published, memory_order_acquire);
    strata_memtable_iter_t *it = strata_memtable_iter_new(r->mt);
    size_t seen = 0;
    const void *last_key = NULL;
    size_t last_key_len = 0;
    uint64_t last_seq = 0;
    for (strata_memtable_iter_seek_first(it); strata_memtable_iter_valid(it);
         strata_memtable_iter_next(it)) {
        size_t key_len, value_len;
        const void *key = strata_memtable_iter_key(it, &key_len);
        const void *value = strata_memtable_iter_value(it, &value_len);
        uint64_t seq = strata_memtable_iter_seq(it);
        if (last_key && order_compare(last_key, last_key_len, last_seq, key, key_len, seq) >= 0) {
            snprintf(r->failure, sizeof r->failure, "scan out of order at seq %llu",
                     (unsigned long long)seq);
            break;
        }
        if (!check_entry(r, key, key_len, seq, strata_memtable_iter_type(it), value, value_len))
            break;
        last_key = key;
        last_key_len = key_len;
        last_seq = seq;
        seen++;
    }
    if (!r->failure[0] && seen < published)
        snprintf(r->failure, sizeof r->failure, "scan saw %zu entries, %zu were published", seen,
                 published);

    /* A short walk backwards from the end, in strictly decreasing order. */
    last_key = NULL;
    strata_memtable_iter_seek_last(it);
    for (int step = 0; !r->failure[0] && step < 64 && strata_memtable_iter_valid(it); step++) {
        size_t key_len;
        const void *key = strata_memtable_iter_key(it, &key_len);
        uint64_t seq = strata_memtable_iter_seq(it);
        if (last_key && order_compare(key, key_len, seq, last_key, last_key_len, last_seq) >= 0)
            snprintf(r->failure, sizeof r->failure, "backward walk out of order at seq %llu",
                     (unsigned long long)seq);
        last_key = key;
        last_key_len = key_len;
        last_seq = seq;
        strata_memtable_iter_prev(it);
    }
    strata_memtable_iter_destroy(&it);
    r->scans++;
    return !r->failure[0];
}

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    uint64_t last_count = 0;
    bool last_round = false;
    /* One more round after the writer finishes checks the final state. */
    while (!last_round) {
        last_round = atomic_load_explicit(&r->shared->done, memory_order_acquire);
        uint64_t count = strata_memtable_count(r->mt);
        if (count < last_count) {
            snprintf(r->failure, sizeof r->failure, "count went back from %llu to %llu",
                     (unsigned long long)last_count, (unsigned long long)count);
            break;
        }
        last_count = count;
        if (!reader_gets(r) || !reader_scans(r))
            break;
    }
    strata_memtable_unref(&r->mt);
    return NULL;
}

/* The writer adds entry by entry (stage_batch 0), or stages stage_batch
 * entries at a time and publishes them, as WAL replay does. */
static void run_readers_beside_writer(size_t stage_batch)
{
    /* A sanitizer's build is ten times slower: fewer entries still take a
     * stage_batch of 100,000 through a split publish and then another. */
    size_t entries = ts_soak() ? 1000000 : ts_sanitized() ? 120000 : 200000;
    uint64_t rng = test_rng(5);
    uint32_t *key_of_entry = malloc(entries * sizeof *key_of_entry);
    for (size_t i = 0; i < entries; i++)
        key_of_entry[i] = (uint32_t)(ts_rand(&rng) % CONCURRENT_KEYS);

    shared_t shared = {
        .mt = strata_memtable_new(), .key_of_entry = key_of_entry, .entries = entries};
    atomic_init(&shared.published, 0);
    atomic_init(&shared.done, false);

    reader_t readers[CONCURRENT_READERS];
    pthread_t threads[CONCURRENT_READERS];
    for (int i = 0; i < CONCURRENT_READERS; i++) {
        readers[i] = (reader_t){.shared = &shared, .mt = shared.mt, .rng = test_rng(10 + i)};
        strata_memtable_ref(readers[i].mt);
        ck_assert_int_eq(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
    }

    for (size_t i = 0; i < entries; i++) {
        char key[16];
        unsigned char value[64];
        size_t key_len = concurrent_key(key_of_entry[i], key);
        size_t value_len = concurrent_value(key_of_entry[i], i + 1, value);
        if (stage_batch == 0) {
            ck_assert_int_eq(strata_memtable_add(shared.mt, i + 1, STRATA_VALUE_PUT, key, key_len,
                                                 value, value_len),
                             0);
            atomic_store_explicit(&shared.published, i + 1, memory_order_release);
            continue;
        }
        ck_assert_int_eq(strata_memtable_stage(shared.mt, i + 1, STRATA_VALUE_PUT, key, key_len,
                                               value, value_len),
                         0);
        if ((i + 1) % stage_batch == 0 || i + 1 == entries) {
            strata_memtable_publish(shared.mt);
            atomic_store_explicit(&shared.published, i + 1, memory_order_release);
        }
    }
    /* The owner lets go first: the readers' references keep it alive. */
    strata_memtable_unref(&shared.mt);
    atomic_store_explicit(&shared.done, true, memory_order_release);

    for (int i = 0; i < CONCURRENT_READERS; i++) {
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        ck_assert_msg(!readers[i].failure[0], "reader %d: %s", i, readers[i].failure);
        ck_assert_uint_gt(readers[i].gets, 0);
        ck_assert_uint_gt(readers[i].scans, 0);
    }
    free(key_of_entry);
}

START_TEST(readers_never_see_torn_or_unordered_state_during_writes)
{
    run_readers_beside_writer(0);
}
END_TEST

START_TEST(readers_never_see_torn_or_unordered_state_during_publishes)
{
    run_readers_beside_writer(4096);
}
END_TEST

/* One writer adds distinct keys (and rewrites some) through table sizes
 * from the first to 2^19 slots while a reader checks every key it knows is
 * published, newest at the latest snapshot and exactly that version at its
 * own, and that keys never written stay absent. */
/* 300,000 keys take the table to 2^19 slots; the sanitizers' builds, ten
 * times slower, stop at 2^17 so the suite keeps inside CI's time. */
static uint32_t growth_keys = 300000;

typedef struct {
    strata_memtable_t *mt;
    _Atomic uint64_t published; /* seqs 1..published have been added */
    atomic_bool done;
    char failure[256];
    uint64_t checks;
} growth_t;

/* Seq s writes key (s - 1) % growth_keys: the first growth_keys seqs add
 * new keys, the rest rewrite the first ones. */
static uint32_t growth_key_of(uint64_t seq)
{
    return (uint32_t)((seq - 1) % growth_keys);
}

/* Checks the seq's key in g->mt, knowing that seq is published. */
static void growth_check(growth_t *g, uint64_t seq)
{
    char key[32];
    size_t key_len = index_key(growth_key_of(seq), key);
    uint64_t found_seq = 0;
    const void *value = NULL;
    size_t value_len = 0;
    if (!strata_memtable_get(g->mt, key, key_len, UINT64_MAX, NULL, &value, &value_len,
                             &found_seq) ||
        found_seq < seq || growth_key_of(found_seq) != growth_key_of(seq) ||
        value_len != sizeof found_seq || memcmp(value, &found_seq, sizeof found_seq))
        snprintf(g->failure, sizeof g->failure, "seq %llu: latest get found %llu",
                 (unsigned long long)seq, (unsigned long long)found_seq);
    else if (!strata_memtable_get(g->mt, key, key_len, seq, NULL, NULL, NULL, &found_seq) ||
             found_seq != seq)
        snprintf(g->failure, sizeof g->failure, "seq %llu: get at it found %llu",
                 (unsigned long long)seq, (unsigned long long)found_seq);
    key_len = index_key(growth_keys + (uint32_t)seq, key);
    if (strata_memtable_get(g->mt, key, key_len, UINT64_MAX, NULL, NULL, NULL, NULL))
        snprintf(g->failure, sizeof g->failure, "key never written found");
    g->checks++;
}

/* Each round checks every seq published since the last one, and as many
 * older ones drawn at random, which tables grown since must still hold. */
static void *growth_reader(void *arg)
{
    growth_t *g = arg;
    uint64_t rng = test_rng(20);
    uint64_t checked = 0;
    bool last_round = false;
    while (!last_round && !g->failure[0]) {
        last_round = atomic_load_explicit(&g->done, memory_order_acquire);
        uint64_t published = atomic_load_explicit(&g->published, memory_order_acquire);
        for (uint64_t seq = checked + 1; seq <= published && !g->failure[0]; seq++) {
            growth_check(g, seq);
            if (!g->failure[0])
                growth_check(g, 1 + ts_rand(&rng) % seq);
        }
        checked = published;
    }
    return NULL;
}

START_TEST(index_grows_while_readers_find_every_published_key)
{
    if (ts_sanitized())
        growth_keys = 75000;
    growth_t g = {.mt = strata_memtable_new()};
    atomic_init(&g.published, 0);
    atomic_init(&g.done, false);
    pthread_t reader;
    ck_assert_int_eq(pthread_create(&reader, NULL, growth_reader, &g), 0);
    for (uint64_t seq = 1; seq <= growth_keys + growth_keys / 4; seq++) {
        char key[32];
        size_t key_len = index_key(growth_key_of(seq), key);
        ck_assert_int_eq(
            strata_memtable_add(g.mt, seq, STRATA_VALUE_PUT, key, key_len, &seq, sizeof seq), 0);
        atomic_store_explicit(&g.published, seq, memory_order_release);
    }
    atomic_store_explicit(&g.done, true, memory_order_release);
    ck_assert_int_eq(pthread_join(reader, NULL), 0);
    ck_assert_msg(!g.failure[0], "reader: %s", g.failure);
    ck_assert_uint_gt(g.checks, 0);
    strata_memtable_unref(&g.mt);
}
END_TEST

START_TEST(readers_never_see_torn_or_unordered_state_during_big_publishes)
{
    /* The first publish goes into an empty memtable on two threads. */
    run_readers_beside_writer(100000);
}
END_TEST

int main(void)
{
    g_seed = ts_seed("test_memtable");

    Suite *s = suite_create("memtable");
    TCase *basics = tcase_create("basics");
    tcase_add_test(basics, empty_memtable_finds_nothing_and_iterates_nothing);
    tcase_add_test(basics, versions_iterate_by_key_then_newest_first);
    tcase_add_test(basics, newest_version_wins_at_snapshot);
    tcase_add_test(basics, delete_marker_is_found_and_hides_older_put);
    tcase_add_test(basics, prefix_key_sorts_first_and_bytes_compare_unsigned);
    tcase_add_test(basics, empty_key_and_zero_length_value_round_trip);
    tcase_add_test(basics, values_larger_than_a_block_round_trip_beside_small_ones);
    tcase_add_test(basics, bytes_grow_with_every_add_and_cover_keys_and_values);
    tcase_add_test(basics, oversized_entry_returns_enomem_and_changes_nothing);
    tcase_add_test(basics, iterator_keeps_memtable_alive_after_owner_unrefs);
    tcase_add_test(basics, every_reference_must_go_before_the_memtable_does);
    suite_add_tcase(s, basics);

    TCase *reference = tcase_create("reference");
    tcase_add_test(reference, random_entries_iterate_like_a_sorted_reference_both_ways);
    tcase_add_test(reference, seek_lands_on_first_entry_at_or_after_target);
    tcase_add_test(reference, get_matches_reference_at_random_snapshots);
    suite_add_tcase(s, reference);

    TCase *bulk = tcase_create("bulk");
    tcase_set_timeout(bulk, 120);
    tcase_add_test(bulk, bulk_load_matches_single_adds_for_every_key_shape);
    tcase_add_test(bulk, bulk_load_matches_single_adds_on_random_mixes);
    tcase_add_test(bulk, big_bulk_load_into_an_empty_memtable_matches_single_adds);
    tcase_add_test(bulk, staged_entries_stay_invisible_until_published);
    tcase_add_test(bulk, oversized_stage_returns_enomem_and_stages_nothing);
    tcase_add_test(bulk, unpublished_entries_are_freed_with_the_memtable);
    suite_add_tcase(s, bulk);

    TCase *index = tcase_create("index");
    tcase_set_timeout(index, 120);
    tcase_add_test(index, index_finds_every_key_and_misses_absent_ones);
    tcase_add_test(index, index_answers_newest_and_older_snapshots_search_the_list);
    tcase_add_test(index, index_returns_delete_markers_like_the_list);
    tcase_add_test(index, index_memory_is_counted_and_stays_a_fraction_of_the_entries);
    tcase_add_test(index, bulk_loaded_memtable_answers_gets_without_an_index);
    suite_add_tcase(s, index);

    TCase *concurrency = tcase_create("concurrency");
    tcase_set_timeout(concurrency, 240);
    tcase_add_test(concurrency, readers_never_see_torn_or_unordered_state_during_writes);
    tcase_add_test(concurrency, readers_never_see_torn_or_unordered_state_during_publishes);
    tcase_add_test(concurrency, index_grows_while_readers_find_every_published_key);
    tcase_add_test(concurrency, readers_never_see_torn_or_unordered_state_during_big_publishes);
    suite_add_tcase(s, concurrency);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
