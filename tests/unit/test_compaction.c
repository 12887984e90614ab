/* The compaction picker: what it chooses from a version, by score, with
 * the round-robin cursor, and when tombstones may go. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compaction.h"
#include "support.h"

/* Adds a table record (no file needed: the picker reads only metadata). */
static void add(vset_t *vs, int level, const char *lo, const char *hi, uint64_t size)
{
    strata_table_props_t props = {
        .file_size = size,
        .entries = 1,
        .smallest_key = (uint8_t *)lo,
        .smallest_len = strlen(lo),
        .largest_key = (uint8_t *)hi,
        .largest_len = strlen(hi),
    };
    edit_t edit;
    edit_init(&edit);
    edit_add(&edit, level, vfile_new(vset_new_file_number(vs), &props));
    ck_assert_int_eq(vset_apply(vs, &edit, NULL), 0);
    edit_clear(&edit);
}

static compaction_options_t small_levels(void)
{
    compaction_options_t o;
    compaction_options_init(&o);
    o.level1_bytes = 1000; /* L2 10000, L3 100000 */
    return o;
}

static compaction_t *pick(vset_t *vs, compaction_cursor_t *cursor, bool force)
{
    compaction_options_t o = small_levels();
    version_t *v = vset_current(vs);
    compaction_t *c = NULL;
    ck_assert_int_eq(compaction_pick(v, &o, cursor, force, &c), 0);
    version_unref(&v);
    return c;
}

START_TEST(l0_compacts_whole_into_the_overlapping_l1_files_at_the_trigger)
{
    char *dir = ts_tempdir("pick");
    vset_t *vs = NULL;
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, NULL), 0);
    compaction_cursor_t cursor = {0};
    add(vs, 1, "a", "c", 100);
    add(vs, 1, "d", "f", 100);
    add(vs, 1, "x", "z", 100);
    for (int i = 0; i < 3; i++)
        add(vs, 0, "b", "e", 10);
    ck_assert_ptr_null(pick(vs, &cursor, false)); /* 3 of 4 */
    compaction_t *forced = pick(vs, &cursor, true);
    ck_assert_ptr_nonnull(forced);
    compaction_free(&forced);
    add(vs, 0, "c", "d", 10);
    compaction_t *c = pick(vs, &cursor, false);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->level, 0);
    ck_assert_uint_eq(c->n_inputs[0], 4);
    ck_assert_uint_eq(c->n_inputs[1], 2); /* a..c and d..f, not x..z */
    ck_assert(c->bottom);
    compaction_free(&c);
    vset_close(&vs);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(an_oversized_level_is_compacted_round_robin)
{
    char *dir = ts_tempdir("pick");
    vset_t *vs = NULL;
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, NULL), 0);
    compaction_cursor_t cursor = {0};
    add(vs, 1, "a", "b", 400);
    add(vs, 1, "c", "d", 400);
    add(vs, 1, "e", "f", 400); /* 1200 > 1000 */
    add(vs, 2, "c", "c", 50);
    add(vs, 3, "e", "e", 50);
    const char *want[] = {"a", "c", "e", "a"};
    for (int round = 0; round < 4; round++) {
        compaction_t *c = pick(vs, &cursor, false);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->level, 1);
        ck_assert_uint_eq(c->n_inputs[0], 1);
        ck_assert_int_eq(c->inputs[0][0]->smallest[0], want[round][0]);
        /* c..d overlaps the L2 file; e..f has an L3 file below it. */
        ck_assert_uint_eq(c->n_inputs[1], round == 1 ? 1 : 0);
        ck_assert(c->bottom == (round != 2));
        compaction_free(&c);
    }
    compaction_cursor_clear(&cursor);
    vset_close(&vs);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(tombstones_stay_when_a_deeper_file_overlaps_any_input)
{
    char *dir = ts_tempdir("pick");
    vset_t *vs = NULL;
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, NULL), 0);
    compaction_cursor_t cursor = {0};
    add(vs, 1, "c", "d", 2000); /* over the L1 limit */
    add(vs, 2, "b", "f", 50);   /* reaches past c..d */
    add(vs, 3, "e", "e", 50);   /* under the L2 input only */
    compaction_t *c = pick(vs, &cursor, false);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->n_inputs[1], 1);
    ck_assert(!c->bottom);
    compaction_free(&c);
    compaction_cursor_clear(&cursor);
    vset_close(&vs);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(level_limits_grow_tenfold)
{
    compaction_options_t o = small_levels();
    ck_assert_uint_eq(compaction_level_limit(&o, 1), 1000);
    ck_assert_uint_eq(compaction_level_limit(&o, 2), 10000);
    ck_assert_uint_eq(compaction_level_limit(&o, 6), 100000000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compaction");
    TCase *tc = tcase_create("picker");
    tcase_add_test(tc, l0_compacts_whole_into_the_overlapping_l1_files_at_the_trigger);
    tcase_add_test(tc, an_oversized_level_is_compacted_round_robin);
    tcase_add_test(tc, tombstones_stay_when_a_deeper_file_overlaps_any_input);
    tcase_add_test(tc, level_limits_grow_tenfold);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
