/* The WAL reader's damage table: each kind of damage gives exactly the
 * truncation or the error the spec (lib/log/wal.md) promises, never a crash
 * and never a wrong entry. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata/crc.h"
#include "strata/entry.h"
#include "strata/wal.h"
#include "support.h"

#define N_ENTRIES  10
#define ENTRY_SIZE 67 /* 40-byte header + 7-byte key + 20-byte value */
#define SEG1       "0000000000000001.wal"

static uint64_t entry_off(int seq)
{
    return 64 + (uint64_t)(seq - 1) * ENTRY_SIZE;
}

static void append_n(strata_wal_t *wal, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char key[8], value[21];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(value, sizeof value, "value-%014d", i);
        strata_wal_op_t op = {
            .type = STRATA_VALUE_PUT, .key = key, .key_len = 7, .value = value, .value_len = 20};
        ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_ASYNC, NULL, NULL), 0);
    }
}

static char *make_log(int n, uint64_t segment_bytes)
{
    char *dir = ts_tempdir("waldmg");
    strata_wal_options_t opts = {.dir = dir, .segment_bytes = segment_bytes};
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    append_n(wal, 1, n);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    return dir;
}

static void flip(const char *path, uint64_t off)
{
    uint8_t b;
    ts_file_read_at(path, off, &b, 1);
    b ^= 0x40;
    ts_file_write_at(path, off, &b, 1);
}

static void fill(const char *path, uint64_t off, uint8_t byte, size_t len)
{
    uint8_t *buf = malloc(len);
    memset(buf, byte, len);
    ts_file_write_at(path, off, buf, len);
    free(buf);
}

/* Rewrites an entry's seq and recomputes its crc: a well-formed entry in
 * the wrong place, which no torn write can produce. */
static void reseq(const char *path, int seq, uint64_t new_seq)
{
    uint8_t entry[ENTRY_SIZE];
    ts_file_read_at(path, entry_off(seq), entry, sizeof entry);
    memcpy(entry + 16, &new_seq, 8);
    uint32_t crc = strata_crc32c(0, entry + 4, sizeof entry - 4);
    memcpy(entry, &crc, 4);
    ts_file_write_at(path, entry_off(seq), entry, sizeof entry);
}

typedef void (*damage_fn)(const char *seg1, const char *dir);

static void torn_header(const char *p, const char *d)
{
    ts_file_truncate(p, entry_off(10) + 20);
}
static void torn_payload(const char *p, const char *d)
{
    ts_file_truncate(p, entry_off(10) + 50);
}
static void zero_fill(const char *p, const char *d)
{
    fill(p, entry_off(11), 0, 4096);
}
static void bad_crc_at_tail(const char *p, const char *d)
{
    flip(p, entry_off(10) + 60);
}
static void garbage_after_tail(const char *p, const char *d)
{
    fill(p, entry_off(11), 0xAB, 100);
}
static void bad_crc_in_middle(const char *p, const char *d)
{
    flip(p, entry_off(5) + 60);
}
static void seq_gap(const char *p, const char *d)
{
    reseq(p, 6, 7);
}
static void oversize_length_in_middle(const char *p, const char *d)
{
    uint32_t huge = 0x7fffffff;
    ts_file_write_at(p, entry_off(5) + 4, &huge, 4);
}
static void zero_page_in_middle(const char *p, const char *d)
{
    fill(p, entry_off(5), 0, ENTRY_SIZE);
}
static void torn_newest_segment_header(const char *p, const char *d)
{
    char *seg2 = ts_path(d, "0000000000000002.wal");
    FILE *f = fopen(seg2, "w");
    ck_assert_ptr_nonnull(f);
    fwrite("STRATAWL\1\0\0\0@\0\0\0garbage-torn-hdr", 1, 30, f);
    fclose(f);
    free(seg2);
}
static void unknown_version(const char *p, const char *d)
{
    uint8_t header[64];
    ts_file_read_at(p, 0, header, sizeof header);
    uint32_t version = 99;
    memcpy(header + 8, &version, 4);
    uint32_t crc = strata_crc32c(0, header, 60);
    memcpy(header + 60, &crc, 4);
    ts_file_write_at(p, 0, header, sizeof header);
}

/* Exactly the last entry gone, as if never written. */
static void torn_header_whole(const char *p, const char *d)
{
    (void)d;
    ts_file_truncate(p, entry_off(10));
}
static void newest_segment_removed(const char *p, const char *d)
{
    (void)d;
    ck_assert_int_eq(unlink(p), 0);
}

typedef struct {
    const char *name;
    damage_fn damage;
    bool clean; /* the log was closed cleanly: its LOGSTATE says so */
    bool repair;
    int open_rc;
    const char *kind; /* tail_kind after a successful open */
    uint64_t dropped; /* tail_bytes_dropped, or repaired_bytes_dropped with repair */
    uint64_t last_seq;
    const char *message; /* substring of the error on a failed open */
} damage_case_t;

static const damage_case_t cases[] = {
    {"torn header", torn_header, false, false, 0, "torn header", 20, 9, NULL},
    {"torn payload", torn_payload, false, false, 0, "torn payload", 50, 9, NULL},
    {"zero fill", zero_fill, false, false, 0, "zero fill", 4096, 10, NULL},
    {"bad crc at tail", bad_crc_at_tail, false, false, 0, "bad crc", ENTRY_SIZE, 9, NULL},
    {"garbage after tail", garbage_after_tail, false, false, 0, "oversize length", 100, 10, NULL},
    {"bad crc in middle", bad_crc_in_middle, false, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 " offset 332: bad crc in the middle of the log (last good seq 4)"},
    {"seq gap", seq_gap, false, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 " offset 399: seq gap (expected 6 found 7)"},
    {"oversize length", oversize_length_in_middle, false, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 " offset 332: oversize length in the middle of the log"},
    {"zero page in middle", zero_page_in_middle, false, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 " offset 332: zero fill in the middle of the log"},
    {"bad crc in middle, repaired", bad_crc_in_middle, false, true, 0, "bad crc", 6 * ENTRY_SIZE, 4,
     NULL},
    {"seq gap, repaired", seq_gap, false, true, 0, "seq gap", 5 * ENTRY_SIZE, 5, NULL},
    {"torn newest segment header", torn_newest_segment_header, false, false, 0,
     "torn segment header", 30, 10, NULL},
    {"unknown version", unknown_version, false, false, STRATA_EVERSION, NULL, 0, 0,
     SEG1 " offset 8: WAL format version 99, this build reads 1"},
    /* The same tail damage after a clean close is loss: the log state
     * records every entry as durable. */
    {"torn payload after a clean close", torn_payload, true, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 " offset 667: torn payload at the end of the log after seq 9, but"},
    {"bad crc at tail after a clean close", bad_crc_at_tail, true, false, STRATA_ECORRUPT, NULL, 0,
     0, "LOGSTATE records seq 10 as durable: acknowledged entries are lost, not a torn tail"},
    {"bad crc at tail after a clean close, repaired", bad_crc_at_tail, true, true, 0, "bad crc",
     ENTRY_SIZE, 9, NULL},
    {"a whole entry gone after a clean close", torn_header_whole, true, false, STRATA_ECORRUPT,
     NULL, 0, 0, SEG1 ": the log ends at seq 9, but"},
    {"newest segment removed", newest_segment_removed, true, false, STRATA_ECORRUPT, NULL, 0, 0,
     SEG1 ": missing, but"},
    {"newest segment removed after a crash", newest_segment_removed, false, false, STRATA_ECORRUPT,
     NULL, 0, 0, "records that the log reached segment 1"},
};

START_TEST(each_damage_gives_its_exact_truncation_or_error)
{
    const damage_case_t *c = &cases[_i];
    char *dir = make_log(N_ENTRIES, 0);
    char *seg1 = ts_path(dir, SEG1);
    if (!c->clean)
        ts_wal_as_crashed(dir);
    c->damage(seg1, dir);

    strata_wal_options_t opts = {.dir = dir, .repair = c->repair};
    strata_wal_t *wal = NULL;
    strata_wal_recovery_t report;
    strata_error_t err;
    int rc = strata_wal_open(&opts, 1, NULL, NULL, &report, &wal, &err);
    ck_assert_msg(rc == c->open_rc, "%s: open returned %d (%s), want %d", c->name, rc,
                  rc ? err.msg : "ok", c->open_rc);
    if (rc) {
        ck_assert_ptr_null(wal);
        ck_assert_msg(strstr(err.msg, c->message) != NULL, "%s: message '%s' lacks '%s'", c->name,
                      err.msg, c->message);
    } else {
        ck_assert_msg(strcmp(report.tail_kind, c->kind) == 0, "%s: kind '%s'", c->name,
                      report.tail_kind);
        uint64_t dropped = c->repair ? report.repaired_bytes_dropped : report.tail_bytes_dropped;
        ck_assert_msg(dropped == c->dropped, "%s: dropped %" PRIu64 " want %" PRIu64, c->name,
                      dropped, c->dropped);
        ck_assert_uint_eq(report.last_seq, c->last_seq);
        /* New appends continue the good prefix and a reopen is clean. */
        append_n(wal, 100, 100);
        ck_assert_uint_eq(strata_wal_last_seq(wal), c->last_seq + 1);
        ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
        ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, &report, &wal, &err), 0);
        ck_assert_str_eq(report.tail_kind, "");
        ck_assert_uint_eq(report.last_seq, c->last_seq + 1);
        ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    }
    free(seg1);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(damage_in_a_sealed_segment_is_corruption_even_at_its_end)
{
    char *dir = make_log(30, 700); /* several segments of ~9 entries */
    char *seg1 = ts_path(dir, SEG1);
    uint64_t size = ts_file_size(seg1);
    ts_file_truncate(seg1, size - 10);
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, SEG1) && strstr(err.msg, "torn payload in the middle"),
                  "message: %s", err.msg);
    free(seg1);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_torn_group_is_dropped_whole)
{
    char *dir = ts_tempdir("waldmg");
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_t *wal = NULL;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    append_n(wal, 1, 5);
    strata_wal_op_t ops[3];
    for (int i = 0; i < 3; i++)
        ops[i] = (strata_wal_op_t){.type = STRATA_VALUE_PUT,
                                   .key = "key-grp",
                                   .key_len = 7,
                                   .value = "value-of-the-group!!",
                                   .value_len = 20};
    ck_assert_int_eq(strata_wal_append(wal, ops, 3, STRATA_SYNC, NULL, NULL), 0);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    char *seg1 = ts_path(dir, SEG1);
    ts_wal_as_crashed(dir);
    ts_file_truncate(seg1, entry_off(9) - 10); /* cuts the group's last entry */
    strata_wal_recovery_t report;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, &report, &wal, NULL), 0);
    ck_assert_uint_eq(report.last_seq, 5);
    ck_assert_str_eq(report.tail_kind, "torn payload");
    ck_assert_uint_eq(report.tail_bytes_dropped, 2 * ENTRY_SIZE + ENTRY_SIZE - 10);
    ck_assert_uint_eq(report.tail_offset, entry_off(6));
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    free(seg1);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(a_segment_larger_than_the_cap_is_refused_before_reading)
{
    char *dir = make_log(1, 0);
    char *seg1 = ts_path(dir, SEG1);
    ts_file_truncate(seg1, (UINT64_C(4) << 30) + 1); /* sparse: no real space used */
    strata_wal_options_t opts = {.dir = dir};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err), STRATA_ETOOBIG);
    ck_assert_msg(strstr(err.msg, SEG1) != NULL, "message: %s", err.msg);
    free(seg1);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wal_damage");
    TCase *tc = tcase_create("damage");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, each_damage_gives_its_exact_truncation_or_error, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, damage_in_a_sealed_segment_is_corruption_even_at_its_end);
    tcase_add_test(tc, a_torn_group_is_dropped_whole);
    tcase_add_test(tc, a_segment_larger_than_the_cap_is_refused_before_reading);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
