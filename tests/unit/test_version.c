/* The MANIFEST and versions: edits survive reopen, a torn last record is
 * dropped, damage before it is named, and a table outlives every version
 * that holds it but no longer. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "version.h"

static vset_t *open_vset(const char *dir)
{
    vset_t *vs = NULL;
    strata_error_t err;
    ck_assert_msg(vset_open(dir, NULL, NULL, &vs, &err) == 0, "open: %s", err.msg);
    return vs;
}

/* A table file on disk (contents irrelevant here) and its record. */
static vfile_t *fake_table(vset_t *vs, const char *smallest, const char *largest)
{
    uint64_t number = vset_new_file_number(vs);
    char *path = vset_table_path(vs, number);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    ck_assert_int_ge(fd, 0);
    close(fd);
    free(path);
    strata_table_props_t props = {
        .file_size = 1000 + number,
        .entries = 10,
        .min_seq = number * 10,
        .max_seq = number * 10 + 9,
        .smallest_key = (uint8_t *)smallest,
        .smallest_len = strlen(smallest),
        .largest_key = (uint8_t *)largest,
        .largest_len = strlen(largest),
    };
    return vfile_new(number, &props);
}

static bool table_exists(vset_t *vs, uint64_t number)
{
    char *path = vset_table_path(vs, number);
    bool exists = access(path, F_OK) == 0;
    free(path);
    return exists;
}

static void apply(vset_t *vs, edit_t *edit)
{
    strata_error_t err;
    ck_assert_msg(vset_apply(vs, edit, &err) == 0, "apply: %s", err.msg);
    edit_clear(edit);
}

START_TEST(edits_survive_reopen_with_levels_and_flushed_seq)
{
    char *dir = ts_tempdir("vset");
    vset_t *vs = open_vset(dir);
    edit_t edit;
    edit_init(&edit);
    vfile_t *a = fake_table(vs, "a", "f");
    vfile_t *b = fake_table(vs, "g", "m");
    uint64_t a_number = a->number, b_number = b->number;
    edit_add(&edit, 0, a);
    edit_add(&edit, 1, b);
    edit.has_flushed_seq = true;
    edit.flushed_seq = 42;
    edit.has_last_seq = true;
    edit.last_seq = 42;
    apply(vs, &edit);
    edit_init(&edit);
    edit_delete(&edit, 0, a_number);
    edit_add(&edit, 2, fake_table(vs, "n", "z"));
    apply(vs, &edit);
    uint64_t used = vset_new_file_number(vs);
    vset_close(&vs);

    vs = open_vset(dir);
    version_t *v = vset_current(vs);
    ck_assert_uint_eq(v->n_files[0], 0);
    ck_assert_uint_eq(v->n_files[1], 1);
    ck_assert_uint_eq(v->files[1][0]->number, b_number);
    ck_assert_uint_eq(v->files[1][0]->min_seq, b_number * 10);
    ck_assert_uint_eq(v->files[1][0]->largest_len, 1);
    ck_assert_int_eq(v->files[1][0]->largest[0], 'm');
    ck_assert_uint_eq(v->n_files[2], 1);
    ck_assert_uint_eq(vset_flushed_seq(vs), 42);
    ck_assert_uint_eq(vset_last_seq(vs), 42);
    ck_assert_uint_gt(vset_new_file_number(vs), used);
    ck_assert(!table_exists(vs, a_number)); /* deleted once unreferenced */
    ck_assert(table_exists(vs, b_number));
    version_unref(&v);
    vset_close(&vs);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_held_version_keeps_its_deleted_table_until_released)
{
    char *dir = ts_tempdir("vset");
    vset_t *vs = open_vset(dir);
    edit_t edit;
    edit_init(&edit);
    vfile_t *a = fake_table(vs, "a", "b");
    uint64_t number = a->number;
    edit_add(&edit, 0, a);
    apply(vs, &edit);
    version_t *held = vset_current(vs);
    edit_init(&edit);
    edit_delete(&edit, 0, number);
    apply(vs, &edit);
    ck_assert(table_exists(vs, number)); /* a reader still uses it */
    version_t *now = vset_current(vs);
    ck_assert_uint_eq(now->n_files[0], 0);
    version_unref(&now);
    version_unref(&held);
    ck_assert(!table_exists(vs, number));
    vset_close(&vs);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static char *live_manifest(const char *dir)
{
    char *current = ts_path(dir, "CURRENT");
    char name[64] = {0};
    ts_file_read_at(current, 0, name, (size_t)ts_file_size(current));
    free(current);
    name[strcspn(name, "\n")] = '\0';
    return ts_path(dir, name);
}

/* Two edits after the snapshot record; returns the manifest path. */
static char *manifest_with_edits(const char *dir, uint64_t *first_edit_off)
{
    vset_t *vs = open_vset(dir);
    char *path = live_manifest(dir);
    *first_edit_off = ts_file_size(path);
    for (int i = 0; i < 2; i++) {
        edit_t edit;
        edit_init(&edit);
        edit_add(&edit, 0, fake_table(vs, "k", "z"));
        edit.has_flushed_seq = true;
        edit.flushed_seq = 100 + (uint64_t)i;
        apply(vs, &edit);
    }
    vset_close(&vs);
    return path;
}

START_TEST(a_torn_last_record_is_dropped)
{
    char *dir = ts_tempdir("vset");
    uint64_t first_edit;
    char *path = manifest_with_edits(dir, &first_edit);
    ts_file_truncate(path, ts_file_size(path) - 3);
    vset_t *vs = open_vset(dir);
    ck_assert_uint_eq(vset_flushed_seq(vs), 100);
    version_t *v = vset_current(vs);
    ck_assert_uint_eq(v->n_files[0], 1);
    version_unref(&v);
    vset_close(&vs);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(damage_before_the_last_record_is_named)
{
    char *dir = ts_tempdir("vset");
    uint64_t first_edit;
    char *path = manifest_with_edits(dir, &first_edit);
    uint8_t byte;
    ts_file_read_at(path, first_edit + 10, &byte, 1);
    byte ^= 0xFF;
    ts_file_write_at(path, first_edit + 10, &byte, 1);
    vset_t *vs = NULL;
    strata_error_t err;
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, &err), STRATA_ECORRUPT);
    char want[96];
    snprintf(want, sizeof want, "offset %llu: bad record crc", (unsigned long long)first_edit);
    ck_assert_msg(strstr(err.msg, "MANIFEST-") && strstr(err.msg, want), "message: %s", err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(unknown_version_and_missing_manifest_are_refused)
{
    char *dir = ts_tempdir("vset");
    vset_t *vs = open_vset(dir);
    vset_close(&vs);
    char *path = live_manifest(dir);
    uint32_t version = 7;
    ts_file_write_at(path, 8, &version, 4);
    strata_error_t err;
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, &err), STRATA_EVERSION);
    ck_assert_msg(strstr(err.msg, "version 7") != NULL, "message: %s", err.msg);
    unlink(path);
    ck_assert_int_eq(vset_open(dir, NULL, NULL, &vs, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "missing") != NULL, "message: %s", err.msg);
    free(path);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(orphan_tables_and_temp_files_are_removed_at_open)
{
    char *dir = ts_tempdir("vset");
    vset_t *vs = open_vset(dir);
    edit_t edit;
    edit_init(&edit);
    vfile_t *kept = fake_table(vs, "a", "b");
    uint64_t kept_number = kept->number;
    edit_add(&edit, 0, kept);
    apply(vs, &edit);
    vfile_t *orphan = fake_table(vs, "c", "d"); /* written, never logged */
    uint64_t orphan_number = orphan->number;
    vfile_unref(&orphan);
    vset_close(&vs);
    char *tmp = ts_path(dir, "000099.sst.tmp");
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    vs = open_vset(dir);
    ck_assert(table_exists(vs, kept_number));
    ck_assert(!table_exists(vs, orphan_number));
    ck_assert_int_ne(access(tmp, F_OK), 0);
    vset_close(&vs);
    free(tmp);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("version");
    tcase_add_test(tc, edits_survive_reopen_with_levels_and_flushed_seq);
    tcase_add_test(tc, a_held_version_keeps_its_deleted_table_until_released);
    tcase_add_test(tc, a_torn_last_record_is_dropped);
    tcase_add_test(tc, damage_before_the_last_record_is_named);
    tcase_add_test(tc, unknown_version_and_missing_manifest_are_refused);
    tcase_add_test(tc, orphan_tables_and_temp_files_are_removed_at_open);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
