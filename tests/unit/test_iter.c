/* The k-way merge iterator: the union of its children in memtable order,
 * both ways, with seeks and direction changes anywhere. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iter.h"
#include "support.h"

#define CHILDREN 4
#define ENTRIES  3000

typedef struct {
    char key[16];
    uint64_t seq;
} ref_t;

static int ref_cmp(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    return ikey_compare_internal(x->key, strlen(x->key), x->seq, y->key, strlen(y->key), y->seq);
}

static void expect_at(iter_t *it, const ref_t *r, int i, const char *what)
{
    ck_assert_msg(iter_valid(it), "%s: ended at %d", what, i);
    size_t len;
    const char *key = iter_key(it, &len);
    ck_assert_msg(len == strlen(r[i].key) && memcmp(key, r[i].key, len) == 0 &&
                      iter_seq(it) == r[i].seq,
                  "%s at %d: got %.*s@%llu want %s@%llu", what, i, (int)len, key,
                  (unsigned long long)iter_seq(it), r[i].key, (unsigned long long)r[i].seq);
}

START_TEST(merge_yields_the_sorted_union_both_ways_with_turns)
{
    uint64_t rng = ts_seed("test_iter");
    strata_memtable_t *mem[CHILDREN];
    iter_t *children[CHILDREN];
    ref_t *ref = calloc(ENTRIES, sizeof *ref);
    for (int c = 0; c < CHILDREN; c++)
        mem[c] = strata_memtable_new();
    for (int i = 0; i < ENTRIES; i++) {
        /* Few keys, many versions: versions of one key spread over children. */
        snprintf(ref[i].key, sizeof ref[i].key, "k%04d", (int)(ts_rand(&rng) % 500));
        ref[i].seq = (uint64_t)i + 1;
        int c = (int)(ts_rand(&rng) % CHILDREN);
        ck_assert_int_eq(strata_memtable_add(mem[c], ref[i].seq, STRATA_VALUE_PUT, ref[i].key,
                                             strlen(ref[i].key), "v", 1),
                         0);
    }
    qsort(ref, ENTRIES, sizeof *ref, ref_cmp);
    for (int c = 0; c < CHILDREN; c++)
        children[c] = iter_memtable(mem[c]);
    iter_t *it = iter_merge(children, CHILDREN);

    iter_seek_first(it);
    for (int i = 0; i < ENTRIES; i++, iter_next(it))
        expect_at(it, ref, i, "forward");
    ck_assert(!iter_valid(it));
    iter_seek_last(it);
    for (int i = ENTRIES - 1; i >= 0; i--, iter_prev(it))
        expect_at(it, ref, i, "backward");
    ck_assert(!iter_valid(it));

    for (int round = 0; round < 200; round++) {
        int i = (int)(ts_rand(&rng) % ENTRIES);
        iter_seek(it, ref[i].key, strlen(ref[i].key), ref[i].seq);
        for (int step = 0; step < 30 && i >= 0 && i < ENTRIES; step++) {
            expect_at(it, ref, i, "zigzag");
            if (ts_rand(&rng) % 2) {
                iter_next(it);
                i++;
            } else {
                iter_prev(it);
                i--;
            }
        }
        if (i < 0 || i >= ENTRIES)
            ck_assert(!iter_valid(it));
    }
    ck_assert_int_eq(iter_status(it, NULL), 0);
    iter_destroy(&it);
    for (int c = 0; c < CHILDREN; c++)
        strata_memtable_unref(&mem[c]);
    free(ref);
}
END_TEST

START_TEST(merge_of_nothing_is_empty)
{
    iter_t *it = iter_merge(NULL, 0);
    iter_seek_first(it);
    ck_assert(!iter_valid(it));
    iter_seek_last(it);
    ck_assert(!iter_valid(it));
    iter_destroy(&it);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("iter");
    TCase *tc = tcase_create("merge");
    tcase_add_test(tc, merge_yields_the_sorted_union_both_ways_with_turns);
    tcase_add_test(tc, merge_of_nothing_is_empty);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
