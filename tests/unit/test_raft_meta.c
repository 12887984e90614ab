/* The Raft metadata file: round trips, slot alternation, the store rules,
 * power cuts at every I/O step of a store, torn and damaged slots. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faultio.h"
#include "strata/crc.h"
#include "strata/raft_meta.h"
#include "support.h"

#define SLOT_SIZE 44u

static strata_raft_meta_t *open_meta(strata_io_t *io, const char *dir, bool *fresh)
{
    strata_raft_meta_t *m = NULL;
    strata_error_t err;
    bool f = false;
    int rc = strata_raft_meta_open(io, dir, &m, &f, &err);
    ck_assert_msg(rc == 0, "open %s: %s", dir, err.msg);
    if (fresh)
        *fresh = f;
    return m;
}

static void store(strata_raft_meta_t *m, uint64_t term, uint32_t vote)
{
    strata_error_t err;
    int rc = strata_raft_meta_store(m, term, vote, &err);
    ck_assert_msg(rc == 0, "store %lu/%u: %s", (unsigned long)term, vote, err.msg);
}

/* The (term, vote) of the i-th store of a test, i from 1: every one differs. */
static uint64_t term_of(int i)
{
    return (uint64_t)i * 3;
}
static uint32_t vote_of(int i)
{
    return (uint32_t)(i % 5) + 1;
}

/* Stores 1..n through POSIX; returns the incarnation. */
static uint64_t prepare(const char *dir, int n)
{
    strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
    for (int i = 1; i <= n; i++)
        store(m, term_of(i), vote_of(i));
    uint64_t inc = strata_raft_meta_incarnation(m);
    strata_raft_meta_close(&m);
    return inc;
}

static bool exists(const char *dir, const char *name)
{
    char *p = ts_path(dir, name);
    bool e = access(p, F_OK) == 0;
    free(p);
    return e;
}

START_TEST(fresh_disk_then_round_trip)
{
    char *dir = ts_tempdir("raftmeta");
    bool fresh = false;
    strata_raft_meta_t *m = open_meta(NULL, dir, &fresh);
    ck_assert(fresh);
    ck_assert_uint_eq(strata_raft_meta_term(m), 0);
    ck_assert_uint_eq(strata_raft_meta_vote(m), 0);
    ck_assert_uint_eq(strata_raft_meta_seq(m), 0);
    uint64_t inc = strata_raft_meta_incarnation(m);
    ck_assert_uint_ne(inc, 0);
    /* Nothing is written before the first store. */
    ck_assert(!exists(dir, "raft-meta.1"));
    ck_assert(!exists(dir, "raft-meta.2"));
    store(m, 7, 3);
    ck_assert_uint_eq(strata_raft_meta_term(m), 7);
    ck_assert_uint_eq(strata_raft_meta_vote(m), 3);
    strata_raft_meta_close(&m);
    ck_assert_ptr_null(m);

    m = open_meta(NULL, dir, &fresh);
    ck_assert(!fresh);
    ck_assert_uint_eq(strata_raft_meta_term(m), 7);
    ck_assert_uint_eq(strata_raft_meta_vote(m), 3);
    ck_assert_uint_eq(strata_raft_meta_incarnation(m), inc);
    char *p1 = ts_path(dir, "raft-meta.1");
    ck_assert_uint_eq(ts_file_size(p1), SLOT_SIZE);
    free(p1);
    strata_raft_meta_close(&m);

    /* Another fresh disk gets another incarnation. */
    char *dir2 = ts_tempdir("raftmeta");
    m = open_meta(NULL, dir2, &fresh);
    ck_assert(fresh);
    ck_assert_uint_ne(strata_raft_meta_incarnation(m), inc);
    strata_raft_meta_close(&m);
    ts_rmtree(dir2);
    free(dir2);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(stores_alternate_between_the_slots)
{
    char *dir = ts_tempdir("raftmeta");
    strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
    for (int i = 1; i <= 6; i++) {
        store(m, term_of(i), vote_of(i));
        ck_assert_int_eq(strata_raft_meta_slot(m), i % 2 ? 1 : 2);
        ck_assert_uint_eq(strata_raft_meta_seq(m), (uint64_t)i);
        strata_raft_meta_t *again = open_meta(NULL, dir, NULL);
        ck_assert_uint_eq(strata_raft_meta_term(again), term_of(i));
        ck_assert_uint_eq(strata_raft_meta_vote(again), vote_of(i));
        ck_assert_uint_eq(strata_raft_meta_seq(again), (uint64_t)i);
        ck_assert_int_eq(strata_raft_meta_slot(again), i % 2 ? 1 : 2);
        strata_raft_meta_close(&again);
    }
    ck_assert(exists(dir, "raft-meta.1"));
    ck_assert(exists(dir, "raft-meta.2"));
    ck_assert(!exists(dir, "raft-meta.1.tmp"));
    ck_assert(!exists(dir, "raft-meta.2.tmp"));
    strata_raft_meta_close(&m);

    /* The slot after a reopen is still the other one. */
    m = open_meta(NULL, dir, NULL);
    store(m, 100, 1);
    ck_assert_int_eq(strata_raft_meta_slot(m), 1);
    ck_assert_uint_eq(strata_raft_meta_seq(m), 7);
    strata_raft_meta_close(&m);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(store_refuses_a_lower_term_and_a_second_vote)
{
    char *dir = ts_tempdir("raftmeta");
    strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
    store(m, 5, 0);
    store(m, 5, 2); /* a vote in a term that had none */
    strata_error_t err;
    ck_assert_int_eq(strata_raft_meta_store(m, 4, 2, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "raft meta: term 4 is below the stored term 5");
    ck_assert_int_eq(strata_raft_meta_store(m, 5, 3, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "raft meta: term 5 already has vote 2, refusing 3");
    ck_assert_int_eq(strata_raft_meta_store(m, 5, 0, &err), STRATA_EINVAL);
    /* The same value again is already durable: no write. */
    uint64_t seq = strata_raft_meta_seq(m);
    store(m, 5, 2);
    ck_assert_uint_eq(strata_raft_meta_seq(m), seq);
    store(m, 6, 0);
    ck_assert_uint_eq(strata_raft_meta_term(m), 6);
    ck_assert_uint_eq(strata_raft_meta_vote(m), 0);
    strata_raft_meta_close(&m);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(failed_sync_or_write_fails_the_store_and_every_later_one)
{
    for (int kind = 0; kind < 2; kind++) {
        for (int prior = 0; prior <= 2; prior++) {
            char *dir = ts_tempdir("raftmeta");
            prepare(dir, prior);
            faultio_t *fio = faultio_new();
            strata_raft_meta_t *m = open_meta(faultio_io(fio), dir, NULL);
            if (kind == 0)
                faultio_fail_sync_after(fio, 1);
            else
                faultio_fail_write_after(fio, 1);
            strata_error_t err;
            ck_assert_int_eq(strata_raft_meta_store(m, 50, 1, &err), STRATA_EIO);
            ck_assert_msg(strstr(err.msg, kind == 0 ? "fdatasync" : "write") &&
                              strstr(err.msg, "raft-meta."),
                          "%s", err.msg);
            /* The getters keep the last durable value. */
            ck_assert_uint_eq(strata_raft_meta_term(m), prior ? term_of(prior) : 0);
            faultio_fail_sync_after(fio, 0);
            faultio_fail_write_after(fio, 0);
            ck_assert_int_eq(strata_raft_meta_store(m, 51, 1, &err), STRATA_EREADONLY);
            ck_assert_str_eq(err.msg, "raft meta: an earlier write or sync failed; reopen");
            strata_raft_meta_close(&m);
            faultio_destroy(&fio);
            ts_rmtree(dir);
            free(dir);
        }
    }
}
END_TEST

/* A strata_io_t over a faultio that cuts the power just before its nth
 * call (1 = the first), so a store can be cut at each of its steps. */
typedef struct {
    strata_io_t io;
    strata_io_t *inner;
    faultio_t *fio;
    int calls, cut_at;
    bool cut;
} cutio_t;

static bool cut_now(strata_io_t *io)
{
    cutio_t *c = io->state;
    if (c->cut)
        return true;
    if (++c->calls == c->cut_at) {
        faultio_crash(c->fio);
        c->cut = true;
    }
    return c->cut;
}

#define INNER(io) (((cutio_t *)(io)->state)->inner)

static int c_open(strata_io_t *io, const char *path, int flags, int mode)
{
    return cut_now(io) ? -EIO : INNER(io)->open(INNER(io), path, flags, mode);
}
static int c_close(strata_io_t *io, int fd)
{
    /* The descriptor goes whatever happened: a cut machine has no fds. */
    cut_now(io);
    return INNER(io)->close(INNER(io), fd);
}
static ssize_t c_pwrite(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off)
{
    return cut_now(io) ? -EIO : INNER(io)->pwrite(INNER(io), fd, buf, len, off);
}
static ssize_t c_pread(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off)
{
    return cut_now(io) ? -EIO : INNER(io)->pread(INNER(io), fd, buf, len, off);
}
static int c_fdatasync(strata_io_t *io, int fd)
{
    return cut_now(io) ? -EIO : INNER(io)->fdatasync(INNER(io), fd);
}
static int c_fsync(strata_io_t *io, int fd)
{
    return cut_now(io) ? -EIO : INNER(io)->fsync(INNER(io), fd);
}
static int c_ftruncate(strata_io_t *io, int fd, uint64_t len)
{
    return cut_now(io) ? -EIO : INNER(io)->ftruncate(INNER(io), fd, len);
}
static int c_fallocate(strata_io_t *io, int fd, uint64_t off, uint64_t len)
{
    return cut_now(io) ? -EIO : INNER(io)->fallocate(INNER(io), fd, off, len);
}
static int c_file_size(strata_io_t *io, int fd, uint64_t *size)
{
    return cut_now(io) ? -EIO : INNER(io)->file_size(INNER(io), fd, size);
}
static int c_rename(strata_io_t *io, const char *from, const char *to)
{
    return cut_now(io) ? -EIO : INNER(io)->rename(INNER(io), from, to);
}
static int c_unlink(strata_io_t *io, const char *path)
{
    return cut_now(io) ? -EIO : INNER(io)->unlink(INNER(io), path);
}
static int c_mkdir(strata_io_t *io, const char *path, int mode)
{
    return cut_now(io) ? -EIO : INNER(io)->mkdir(INNER(io), path, mode);
}
static int c_sync_dir(strata_io_t *io, const char *dir)
{
    return cut_now(io) ? -EIO : INNER(io)->sync_dir(INNER(io), dir);
}

static void cutio_init(cutio_t *c, faultio_t *fio)
{
    *c = (cutio_t){
        .io = {c_open, c_close, c_pwrite, c_pread, c_fdatasync, c_fsync, c_ftruncate, c_fallocate,
               c_file_size, c_rename, c_unlink, c_mkdir, c_sync_dir, c},
        .inner = faultio_io(fio),
        .fio = fio,
    };
}

/* What a reboot reads must be the (term, vote) before the store or the one
 * it stored, the latter whenever the store said it was durable. */
static void check_after_cut(const char *dir, int prior, uint64_t inc, bool stored, int cut_at)
{
    bool fresh = false;
    strata_raft_meta_t *m = open_meta(NULL, dir, &fresh);
    uint64_t term = strata_raft_meta_term(m);
    uint32_t vote = strata_raft_meta_vote(m);
    bool is_new = term == term_of(prior + 1) && vote == vote_of(prior + 1);
    bool is_old = prior ? term == term_of(prior) && vote == vote_of(prior) && !fresh
                        : fresh && term == 0 && vote == 0;
    ck_assert_msg(is_new || is_old, "prior %d, cut before call %d: read term %lu vote %u", prior,
                  cut_at, (unsigned long)term, vote);
    ck_assert_msg(!stored || is_new, "prior %d, cut before call %d: an acknowledged store is lost",
                  prior, cut_at);
    if (!fresh && inc)
        ck_assert_uint_eq(strata_raft_meta_incarnation(m), inc);
    strata_raft_meta_close(&m);
}

START_TEST(power_cut_at_every_step_leaves_the_old_or_the_new_value)
{
    /* prior 0: the first store creates slot 1; 1: it creates slot 2; 2 and
     * 3: it overwrites slot 1, then slot 2, in place. */
    for (int prior = 0; prior <= 3; prior++) {
        int steps = 0;
        for (int cut_at = 1;; cut_at++) {
            char *dir = ts_tempdir("raftmeta");
            uint64_t inc = prepare(dir, prior);
            faultio_t *fio = faultio_new();
            cutio_t c;
            cutio_init(&c, fio);
            strata_raft_meta_t *m = open_meta(&c.io, dir, NULL);
            if (!prior)
                inc = strata_raft_meta_incarnation(m);
            c.calls = 0;
            c.cut_at = cut_at;
            strata_error_t err;
            int rc = strata_raft_meta_store(m, term_of(prior + 1), vote_of(prior + 1), &err);
            bool reached = c.cut;
            /* A cut at the last close comes after the fdatasync: the store
             * may then succeed, and check_after_cut holds it to that. */
            if (!reached)
                ck_assert_msg(rc == 0, "store: %s", err.msg);
            if (!reached)
                faultio_crash(fio); /* the cut comes right after the store */
            strata_raft_meta_close(&m);
            faultio_destroy(&fio);
            check_after_cut(dir, prior, inc, rc == 0, cut_at);
            ts_rmtree(dir);
            free(dir);
            if (!reached) {
                steps = cut_at - 1;
                break;
            }
        }
        /* open, write, fdatasync, close; a creation adds rename and sync_dir. */
        ck_assert_int_eq(steps, prior >= 2 ? 4 : 6);
    }
}
END_TEST

static void read_file(const char *path, uint8_t *buf)
{
    ck_assert_uint_eq(ts_file_size(path), SLOT_SIZE);
    ts_file_read_at(path, 0, buf, SLOT_SIZE);
}

START_TEST(torn_overwrite_leaves_the_old_value)
{
    /* A disk that kept any prefix or suffix of the in-place overwrite. */
    for (int prior = 2; prior <= 3; prior++) {
        char *dir = ts_tempdir("raftmeta");
        prepare(dir, prior);
        char *target = ts_path(dir, prior % 2 ? "raft-meta.2" : "raft-meta.1");
        uint8_t before[SLOT_SIZE], after[SLOT_SIZE];
        read_file(target, before);
        strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
        store(m, term_of(prior + 1), vote_of(prior + 1));
        strata_raft_meta_close(&m);
        read_file(target, after);
        for (unsigned j = 0; j <= SLOT_SIZE; j++) {
            for (int suffix = 0; suffix < 2; suffix++) {
                uint8_t mix[SLOT_SIZE];
                memcpy(mix, before, SLOT_SIZE);
                if (suffix)
                    memcpy(mix + SLOT_SIZE - j, after + SLOT_SIZE - j, j);
                else
                    memcpy(mix, after, j);
                ts_file_write_at(target, 0, mix, SLOT_SIZE);
                bool fresh;
                m = open_meta(NULL, dir, &fresh);
                /* The two records share magic and version: a mix that
                 * differs from the new record only there is the new one. */
                bool whole = memcmp(mix, after, SLOT_SIZE) == 0;
                uint64_t want = whole ? term_of(prior + 1) : term_of(prior);
                ck_assert_msg(
                    strata_raft_meta_term(m) == want, "prior %d, %s of %u bytes: term %lu", prior,
                    suffix ? "suffix" : "prefix", j, (unsigned long)strata_raft_meta_term(m));
                strata_raft_meta_close(&m);
            }
        }
        free(target);
        ts_rmtree(dir);
        free(dir);
    }
}
END_TEST

START_TEST(flipped_byte_in_one_slot_falls_back_to_the_other)
{
    char *dir = ts_tempdir("raftmeta");
    prepare(dir, 4); /* slot 1: store 3, slot 2: store 4 */
    const char *names[2] = {"raft-meta.1", "raft-meta.2"};
    for (int s = 0; s < 2; s++) {
        char *path = ts_path(dir, names[s]);
        uint8_t orig[SLOT_SIZE];
        read_file(path, orig);
        for (unsigned off = 0; off < SLOT_SIZE; off++) {
            uint8_t bad[SLOT_SIZE];
            memcpy(bad, orig, SLOT_SIZE);
            bad[off] ^= 0x10;
            ts_file_write_at(path, 0, bad, SLOT_SIZE);
            strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
            /* Damage to the newer slot loses the newest store, to the
             * older one nothing. */
            int want = s == 1 ? 3 : 4;
            ck_assert_msg(strata_raft_meta_term(m) == term_of(want) &&
                              strata_raft_meta_vote(m) == vote_of(want),
                          "%s offset %u: term %lu", names[s], off,
                          (unsigned long)strata_raft_meta_term(m));
            ck_assert_int_eq(strata_raft_meta_slot(m), s == 1 ? 1 : 2);
            strata_raft_meta_close(&m);
        }
        ts_file_write_at(path, 0, orig, SLOT_SIZE);
        free(path);
    }
    /* The next store after a fallback overwrites the damaged slot. */
    char *p2 = ts_path(dir, "raft-meta.2");
    ts_file_write_at(p2, 20, "\xff", 1);
    strata_raft_meta_t *m = open_meta(NULL, dir, NULL);
    store(m, 99, 2);
    ck_assert_int_eq(strata_raft_meta_slot(m), 2);
    strata_raft_meta_close(&m);
    m = open_meta(NULL, dir, NULL);
    ck_assert_uint_eq(strata_raft_meta_term(m), 99);
    strata_raft_meta_close(&m);
    free(p2);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static int open_rc(const char *dir, strata_error_t *err)
{
    strata_raft_meta_t *m = NULL;
    bool fresh = true;
    int rc = strata_raft_meta_open(NULL, dir, &m, &fresh, err);
    if (rc) {
        ck_assert_ptr_null(m);
        ck_assert(!fresh);
    }
    strata_raft_meta_close(&m);
    return rc;
}

START_TEST(both_slots_damaged_is_corrupt_naming_the_files)
{
    char *dir = ts_tempdir("raftmeta");
    const char *base = strrchr(dir, '/') + 1;
    prepare(dir, 2);
    char *p1 = ts_path(dir, "raft-meta.1"), *p2 = ts_path(dir, "raft-meta.2");
    ts_file_write_at(p1, 30, "\x01", 1);
    ts_file_truncate(p2, 10);
    strata_error_t err;
    ck_assert_int_eq(open_rc(dir, &err), STRATA_ECORRUPT);
    char want[512];
    uint8_t b1[SLOT_SIZE];
    ts_file_read_at(p1, 0, b1, SLOT_SIZE);
    uint32_t stored;
    memcpy(&stored, b1 + 40, 4);
    snprintf(want, sizeof want,
             "raft meta: no valid slot: %s/raft-meta.1 offset 40: crc mismatch (stored %08x, "
             "computed %08x); %s/raft-meta.2: 10 bytes, not 44",
             base, stored, strata_crc32c(0, b1, 40), base);
    ck_assert_str_eq(err.msg, want);

    /* One slot, damaged, and no other: corrupt too, not a new disk. */
    unlink(p2);
    ck_assert_int_eq(open_rc(dir, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "raft-meta.1 offset 40: crc mismatch") &&
                      strstr(err.msg, "raft-meta.2: absent"),
                  "%s", err.msg);
    free(p1);
    free(p2);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(intact_slot_of_a_newer_version_stops_the_load)
{
    char *dir = ts_tempdir("raftmeta");
    prepare(dir, 2);
    char *p2 = ts_path(dir, "raft-meta.2");
    uint8_t b[SLOT_SIZE];
    read_file(p2, b);
    b[8] = 2;
    uint32_t crc = strata_crc32c(0, b, 40);
    memcpy(b + 40, &crc, 4); /* little-endian host, as the tests assume */
    ts_file_write_at(p2, 0, b, SLOT_SIZE);
    strata_error_t err;
    ck_assert_int_eq(open_rc(dir, &err), STRATA_EVERSION);
    ck_assert_msg(strstr(err.msg, "raft-meta.2 offset 8: version 2 unknown, this side reads 1"),
                  "%s", err.msg);
    free(p2);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(slots_from_different_disks_are_corrupt)
{
    char *a = ts_tempdir("raftmeta"), *b = ts_tempdir("raftmeta");
    prepare(a, 2);
    prepare(b, 3);
    char *from = ts_path(b, "raft-meta.1"), *to = ts_path(a, "raft-meta.1");
    uint8_t buf[SLOT_SIZE];
    read_file(from, buf);
    ts_file_write_at(to, 0, buf, SLOT_SIZE);
    strata_error_t err;
    ck_assert_int_eq(open_rc(a, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "the slots come from different disks"), "%s", err.msg);

    /* Two intact slots with the same seq cannot both be the newest. */
    char *to2 = ts_path(a, "raft-meta.2");
    read_file(to2, buf);
    ts_file_write_at(to, 0, buf, SLOT_SIZE);
    ck_assert_int_eq(open_rc(a, &err), STRATA_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "offset 16: seq 2, the same as"), "%s", err.msg);
    free(from);
    free(to);
    free(to2);
    ts_rmtree(a);
    ts_rmtree(b);
    free(a);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("raft_meta");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fresh_disk_then_round_trip);
    tcase_add_test(tc, stores_alternate_between_the_slots);
    tcase_add_test(tc, store_refuses_a_lower_term_and_a_second_vote);
    tcase_add_test(tc, failed_sync_or_write_fails_the_store_and_every_later_one);
    tcase_add_test(tc, power_cut_at_every_step_leaves_the_old_or_the_new_value);
    tcase_add_test(tc, torn_overwrite_leaves_the_old_value);
    tcase_add_test(tc, flipped_byte_in_one_slot_falls_back_to_the_other);
    tcase_add_test(tc, both_slots_damaged_is_corrupt_naming_the_files);
    tcase_add_test(tc, intact_slot_of_a_newer_version_stops_the_load);
    tcase_add_test(tc, slots_from_different_disks_are_corrupt);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
