/* The log as a replicated log: follower appends with their prev check and
 * hint, the term index, truncation of an uncommitted suffix into rollback/
 * (also under simulated power cuts), and the db's commit seq keeping
 * appended entries invisible to reads and to on_committed until the owner
 * commits them. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "faultio.h"
#include "strata/db.h"
#include "strata/entry.h"
#include "strata/wal.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------ */

/* Entries as raw bytes with an index of where each starts. */
typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    size_t *start; /* start[i]: offset of the i-th entry; start[n] = len */
    size_t n, cap_n;
} entries_t;

static void entries_add(entries_t *es, const uint8_t *raw, size_t raw_len)
{
    if (es->len + raw_len > es->cap) {
        es->cap = (es->len + raw_len) * 2 + 4096;
        es->bytes = realloc(es->bytes, es->cap);
    }
    if (es->n + 2 > es->cap_n) {
        es->cap_n = es->n * 2 + 16;
        es->start = realloc(es->start, es->cap_n * sizeof *es->start);
    }
    memcpy(es->bytes + es->len, raw, raw_len);
    es->start[es->n++] = es->len;
    es->len += raw_len;
    es->start[es->n] = es->len;
}

static void entries_free(entries_t *es)
{
    free(es->bytes);
    free(es->start);
    memset(es, 0, sizeof *es);
}

/* Every entry of the log in dir, read with the cursor. */
static entries_t read_log(const char *dir)
{
    entries_t es = {0};
    strata_wal_cursor_t *c = NULL;
    ck_assert_int_eq(strata_wal_cursor_open(dir, 0, &c, NULL), 0);
    for (;;) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        strata_error_t err;
        int rc = strata_wal_cursor_next(c, 0, &e, &raw, &raw_len, &err);
        if (rc == STRATA_ETIMEDOUT)
            break;
        ck_assert_msg(rc == 0, "cursor: %s", err.msg);
        entries_add(&es, raw, raw_len);
    }
    strata_wal_cursor_close(&c);
    return es;
}

/* The bytes of entries first..last (1-based seqs of a log starting at 1). */
static const uint8_t *span(const entries_t *es, uint64_t first, uint64_t last, size_t *len)
{
    *len = es->start[last] - es->start[first - 1];
    return es->bytes + es->start[first - 1];
}

static strata_wal_t *wal_open(const char *dir, strata_io_t *io, uint64_t segment_bytes)
{
    strata_wal_options_t opts = {.dir = dir, .io = io, .segment_bytes = segment_bytes};
    strata_wal_t *wal = NULL;
    strata_error_t err;
    ck_assert_msg(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, &err) == 0, "open: %s",
                  err.msg);
    return wal;
}

/* Appends seqs from..to one by one (sync), value of 100 bytes each. */
static void leader_append(strata_wal_t *wal, uint64_t from, uint64_t to)
{
    char key[32], value[100];
    for (uint64_t seq = from; seq <= to; seq++) {
        int kl = snprintf(key, sizeof key, "key-%06" PRIu64, seq);
        memset(value, 'a' + (int)(seq % 26), sizeof value);
        strata_wal_op_t op = {.type = STRATA_VALUE_PUT,
                              .key = key,
                              .key_len = (uint32_t)kl,
                              .value = value,
                              .value_len = sizeof value};
        uint64_t got = 0;
        ck_assert_int_eq(strata_wal_append(wal, &op, 1, STRATA_SYNC, &got, NULL), 0);
        ck_assert_uint_eq(got, seq);
    }
}

/* A log of 1..n: terms 1 up to n/2, then term 2; small segments. */
static void make_two_term_log(const char *dir, strata_io_t *io, uint64_t n)
{
    strata_wal_t *wal = wal_open(dir, io, 4096);
    strata_wal_set_term(wal, 1);
    leader_append(wal, 1, n / 2);
    strata_wal_set_term(wal, 2);
    leader_append(wal, n / 2 + 1, n);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
}

static size_t encode_one(uint8_t *out, uint64_t seq, uint64_t term, uint8_t flags, const char *key)
{
    strata_entry_t e = {.seq = seq,
                        .term = term,
                        .timestamp_ns = seq,
                        .type = STRATA_VALUE_PUT,
                        .flags = flags,
                        .key = (const uint8_t *)key,
                        .key_len = (uint32_t)strlen(key),
                        .value = (const uint8_t *)"v",
                        .value_len = 1};
    strata_entry_encode(out, &e);
    return strata_entry_size(0, e.key_len, 1);
}

/* ---- follower appends ----------------------------------------------------- */

START_TEST(follower_append_stores_entries_byte_identical_and_checks_prev)
{
    char *dir = ts_tempdir("replog");
    char *leader_dir = ts_path(dir, "leader");
    char *follower_dir = ts_path(dir, "follower");
    make_two_term_log(leader_dir, NULL, 40);
    entries_t src = read_log(leader_dir);
    ck_assert_uint_eq(src.n, 40);

    strata_wal_t *f = wal_open(follower_dir, NULL, 0);
    size_t len, appended = 99;
    strata_wal_hint_t hint;
    strata_error_t err;
    const uint8_t *b = span(&src, 1, 10, &len);
    ck_assert_msg(strata_wal_append_entries(f, b, len, 0, 0, STRATA_SYNC, &appended, &hint, &err) ==
                      0,
                  "%s", err.msg);
    ck_assert_uint_eq(appended, 10);
    ck_assert_uint_eq(strata_wal_last_seq(f), 10);
    ck_assert_uint_eq(strata_wal_durable_seq(f), 10);

    /* A resend of what the log holds is harmless. */
    ck_assert_int_eq(strata_wal_append_entries(f, b, len, 0, 0, STRATA_SYNC, &appended, NULL, NULL),
                     0);
    ck_assert_uint_eq(appended, 0);

    /* prev past the end: refused, the hint gives the end. */
    b = span(&src, 21, 25, &len);
    ck_assert_int_eq(strata_wal_append_entries(f, b, len, 20, 1, STRATA_SYNC, NULL, &hint, &err),
                     STRATA_ECONFLICT);
    ck_assert_uint_eq(hint.last_seq, 10);
    ck_assert_uint_eq(hint.term, 0);

    /* prev term differs: the hint names the term held there and its start. */
    b = span(&src, 11, 15, &len);
    ck_assert_int_eq(strata_wal_append_entries(f, b, len, 10, 0, STRATA_SYNC, NULL, &hint, &err),
                     STRATA_ECONFLICT);
    ck_assert_uint_eq(hint.term, 1);
    ck_assert_uint_eq(hint.term_first, 1);
    ck_assert_ptr_nonnull(strstr(err.msg, "prev_term"));

    /* The right prev: the rest, across the term change, goes in. */
    b = span(&src, 11, 40, &len);
    ck_assert_int_eq(
        strata_wal_append_entries(f, b, len, 10, 1, STRATA_ASYNC, &appended, NULL, &err), 0);
    ck_assert_uint_eq(appended, 30);
    uint64_t term = 0;
    ck_assert_int_eq(strata_wal_term_at(f, 20, &term), 0);
    ck_assert_uint_eq(term, 1);
    ck_assert_int_eq(strata_wal_term_at(f, 21, &term), 0);
    ck_assert_uint_eq(term, 2);
    ck_assert_int_eq(strata_wal_term_at(f, 41, &term), STRATA_ENOTFOUND);

    /* An entry held with another term is a conflict, not an overwrite. */
    uint8_t buf[256];
    size_t n = encode_one(buf, 40, 3, 0, "other");
    ck_assert_int_eq(strata_wal_append_entries(f, buf, n, 39, 2, STRATA_SYNC, NULL, &hint, &err),
                     STRATA_ECONFLICT);
    ck_assert_uint_eq(hint.term, 2);
    ck_assert_uint_eq(hint.term_first, 21);

    /* Malformed batches: a term going back, a gap, a group left open. */
    n = encode_one(buf, 41, 1, 0, "back");
    ck_assert_int_eq(strata_wal_append_entries(f, buf, n, 40, 2, STRATA_SYNC, NULL, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "term"));
    n = encode_one(buf, 42, 2, 0, "gap");
    ck_assert_int_eq(strata_wal_append_entries(f, buf, n, 40, 2, STRATA_SYNC, NULL, NULL, &err),
                     STRATA_EINVAL);
    n = encode_one(buf, 41, 2, STRATA_ENTRY_GROUP_CONT, "open");
    ck_assert_int_eq(strata_wal_append_entries(f, buf, n, 40, 2, STRATA_SYNC, NULL, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "group"));
    buf[60] ^= 1; /* damaged */
    ck_assert_int_eq(strata_wal_append_entries(f, buf, n, 40, 2, STRATA_SYNC, NULL, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_int_eq(strata_wal_close(&f, NULL), 0);

    /* Byte for byte the leader's log, and it reopens with its terms. */
    entries_t got = read_log(follower_dir);
    ck_assert_uint_eq(got.len, src.len);
    ck_assert_int_eq(memcmp(got.bytes, src.bytes, src.len), 0);
    f = wal_open(follower_dir, NULL, 0);
    ck_assert_int_eq(strata_wal_term_at(f, 30, &term), 0);
    ck_assert_uint_eq(term, 2);
    ck_assert_int_eq(strata_wal_close(&f, NULL), 0);
    entries_free(&got);
    entries_free(&src);
    ts_rmtree(dir);
    free(leader_dir);
    free(follower_dir);
    free(dir);
}
END_TEST

/* ---- truncation ------------------------------------------------------------ */

static char *rollback_file(const char *wal_dir, const char *ext, uint64_t first, uint64_t last)
{
    char *p = NULL;
    ck_assert_int_ge(
        asprintf(&p, "%s/rollback/%020" PRIu64 "-%020" PRIu64 ".%s", wal_dir, first, last, ext), 0);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s missing", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*len + 1);
    ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

START_TEST(truncate_after_cuts_the_suffix_into_rollback_and_survives_reopen)
{
    char *dir = ts_tempdir("replog");
    make_two_term_log(dir, NULL, 200);
    entries_t before = read_log(dir);
    ck_assert_uint_eq(before.n, 200);

    strata_wal_t *wal = wal_open(dir, NULL, 4096);
    strata_wal_stats_t st;
    strata_wal_stats(wal, &st);
    ck_assert_uint_gt(st.segments, 5); /* the cut crosses segments */
    strata_wal_cut_t cut;
    strata_error_t err;
    ck_assert_msg(strata_wal_truncate_after(wal, 150, &cut, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(cut.first_seq, 151);
    ck_assert_uint_eq(cut.last_seq, 200);
    ck_assert_uint_eq(cut.entries, 50);
    ck_assert_uint_eq(cut.first_term, 2);
    ck_assert_uint_eq(strata_wal_last_seq(wal), 150);
    ck_assert_uint_le(strata_wal_durable_seq(wal), 150);
    uint64_t term;
    ck_assert_int_eq(strata_wal_term_at(wal, 150, &term), 0);
    ck_assert_uint_eq(term, 2);
    ck_assert_int_eq(strata_wal_term_at(wal, 151, &term), STRATA_ENOTFOUND);

    /* The rollback file holds exactly the cut entries, and a report. */
    size_t expect_len, got_len, report_len;
    const uint8_t *expect = span(&before, 151, 200, &expect_len);
    char *entries_path = rollback_file(dir, "entries", 151, 200);
    ck_assert_str_eq(cut.rollback_path, entries_path);
    uint8_t *got = slurp(entries_path, &got_len);
    ck_assert_uint_eq(got_len, expect_len);
    ck_assert_int_eq(memcmp(got, expect, expect_len), 0);
    char *report_path = rollback_file(dir, "txt", 151, 200);
    char *report = (char *)slurp(report_path, &report_len);
    ck_assert_ptr_nonnull(strstr(report, "first_seq=151\nlast_seq=200\n"));
    ck_assert_ptr_nonnull(strstr(report, "entries=50\n"));

    /* Appends go on at 151, in a new term. */
    strata_wal_set_term(wal, 3);
    leader_append(wal, 151, 155);
    /* Nothing past the end to cut. */
    ck_assert_int_eq(strata_wal_truncate_after(wal, 155, &cut, NULL), 0);
    ck_assert_uint_eq(cut.entries, 0);
    /* A cut inside an atomic group is refused. */
    strata_wal_op_t ops[3] = {{.type = STRATA_VALUE_PUT, .key = "g1", .key_len = 2},
                              {.type = STRATA_VALUE_PUT, .key = "g2", .key_len = 2},
                              {.type = STRATA_VALUE_PUT, .key = "g3", .key_len = 2}};
    ck_assert_int_eq(strata_wal_append(wal, ops, 3, STRATA_SYNC, NULL, NULL), 0);
    ck_assert_int_eq(strata_wal_truncate_after(wal, 156, NULL, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "group"));
    ck_assert_uint_eq(strata_wal_last_seq(wal), 158);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);

    entries_t after = read_log(dir);
    ck_assert_uint_eq(after.n, 158);
    size_t prefix_len;
    span(&before, 1, 150, &prefix_len);
    ck_assert_int_eq(memcmp(after.bytes, before.bytes, prefix_len), 0);
    wal = wal_open(dir, NULL, 4096);
    ck_assert_uint_eq(strata_wal_last_seq(wal), 158);
    ck_assert_int_eq(strata_wal_term_at(wal, 151, &term), 0);
    ck_assert_uint_eq(term, 3);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);

    /* A log that starts past seq cannot cut below its start. */
    char *late = ts_path(dir, "late");
    strata_wal_options_t opts = {.dir = late, .first_seq = 100};
    ck_assert_int_eq(strata_wal_open(&opts, 1, NULL, NULL, NULL, &wal, NULL), 0);
    leader_append(wal, 100, 104);
    ck_assert_int_eq(strata_wal_truncate_after(wal, 50, NULL, &err), STRATA_EINVAL);
    ck_assert_int_eq(strata_wal_truncate_after(wal, 99, &cut, &err), 0); /* all of it */
    ck_assert_uint_eq(cut.entries, 5);
    ck_assert_uint_eq(strata_wal_last_seq(wal), 99);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);

    free(late);
    free(report);
    free(report_path);
    free(got);
    free(entries_path);
    entries_free(&after);
    entries_free(&before);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A power cut at every sync point of a truncation: the reopened log is a
 * clean prefix of the old one that keeps everything up to the cut point,
 * and repeating the cut gives exactly the cut log. */
/* The runs of terms a consensus core starts from: rebuilt by reopening,
 * cut back by a truncation, and still naming the run the first retained
 * entry belongs to after older segments are deleted. */
START_TEST(term_runs_follow_reopen_truncation_and_retention)
{
    char *dir = ts_tempdir("replog");
    make_two_term_log(dir, NULL, 200);
    strata_wal_t *wal = wal_open(dir, NULL, 4096);
    uint64_t first = 0, *seqs = NULL, *terms = NULL;
    size_t n = 0;
    strata_error_t err;
    ck_assert_int_eq(strata_wal_terms(wal, &first, &seqs, &terms, &n, &err), 0);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(seqs[0], 1);
    ck_assert_uint_eq(terms[0], 1);
    ck_assert_uint_eq(seqs[1], 101);
    ck_assert_uint_eq(terms[1], 2);
    free(seqs);
    free(terms);

    strata_wal_cut_t cut;
    ck_assert_msg(strata_wal_truncate_after(wal, 90, &cut, &err) == 0, "%s", err.msg);
    strata_wal_set_term(wal, 5);
    leader_append(wal, 91, 180);
    ck_assert_int_eq(strata_wal_terms(wal, &first, &seqs, &terms, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(seqs[1], 91);
    ck_assert_uint_eq(terms[1], 5);
    free(seqs);
    free(terms);

    uint32_t deleted = 0;
    ck_assert_msg(strata_wal_delete_below(wal, 120, &deleted, &err) == 0, "%s", err.msg);
    ck_assert_uint_gt(deleted, 0);
    ck_assert_int_eq(strata_wal_terms(wal, &first, &seqs, &terms, &n, &err), 0);
    ck_assert_uint_gt(first, 91);
    ck_assert_uint_le(first, 120);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(seqs[n - 1], first);
    ck_assert_uint_eq(terms[n - 1], 5);
    free(seqs);
    free(terms);
    ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(power_cut_at_any_point_of_a_truncation_leaves_a_valid_prefix)
{
    char *top = ts_tempdir("replog");
    char *proto = ts_path(top, "proto");
    make_two_term_log(proto, NULL, 120);
    entries_t before = read_log(proto);
    size_t keep_len;
    span(&before, 1, 60, &keep_len);
    bool finished = false;
    int points = 0;
    for (int k = 1; !finished && k < 64; k++) {
        char name[32];
        snprintf(name, sizeof name, "run%d", k);
        char *dir = ts_path(top, name);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp -r %s %s", proto, dir);
        ck_assert_int_eq(system(cmd), 0);
        faultio_t *fio = faultio_new();
        strata_wal_t *wal = wal_open(dir, faultio_io(fio), 4096);
        faultio_fail_sync_after(fio, k);
        strata_wal_cut_t cut;
        strata_error_t err;
        int rc = strata_wal_truncate_after(wal, 60, &cut, &err);
        finished = rc == 0;
        faultio_crash(fio);
        strata_wal_close(&wal, NULL);
        faultio_destroy(&fio);
        points++;

        entries_t after = read_log(dir);
        ck_assert_msg(after.n >= 60 && after.n <= 120, "crash at sync %d: %zu entries", k, after.n);
        ck_assert_int_eq(memcmp(after.bytes, before.bytes, after.len), 0);
        if (finished)
            ck_assert_uint_eq(after.n, 60);
        entries_free(&after);

        /* The owner cuts again after the restart: exactly the cut log. */
        wal = wal_open(dir, NULL, 4096);
        ck_assert_msg(strata_wal_truncate_after(wal, 60, NULL, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(strata_wal_last_seq(wal), 60);
        leader_append(wal, 61, 62);
        ck_assert_int_eq(strata_wal_close(&wal, NULL), 0);
        after = read_log(dir);
        ck_assert_uint_eq(after.n, 62);
        ck_assert_int_eq(memcmp(after.bytes, before.bytes, keep_len), 0);
        entries_free(&after);
        ts_rmtree(dir);
        free(dir);
    }
    ck_assert_msg(finished, "the truncation never finished");
    ck_assert_int_ge(points, 4); /* rollback writes, removals and the cut each crashed */
    entries_free(&before);
    ts_rmtree(top);
    free(proto);
    free(top);
}
END_TEST

/* ---- the db's commit seq ------------------------------------------------------ */

typedef struct {
    uint64_t calls, first, last, entries;
    bool in_order;
} committed_t;

static void on_committed(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                         uint64_t last_seq)
{
    committed_t *c = arg;
    if (c->last && first_seq != c->last + 1)
        c->in_order = false;
    if (!c->first)
        c->first = first_seq;
    c->last = last_seq;
    c->calls++;
    uint64_t expect = first_seq;
    for (size_t off = 0; off < len;) {
        strata_entry_t e;
        size_t used;
        if (strata_entry_decode(entries + off, len - off, 0, &e, &used, NULL) != 0 ||
            e.seq != expect++)
            c->in_order = false;
        off += used;
        c->entries++;
    }
    if (expect != last_seq + 1)
        c->in_order = false;
}

static strata_db_t *db_open(const char *dir, strata_commit_mode_t mode, committed_t *c, size_t cap)
{
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = dir;
    opts.commit_mode = mode;
    opts.on_committed = on_committed;
    opts.wal_observer_arg = c;
    if (cap)
        opts.max_uncommitted_bytes = cap;
    strata_db_t *db = NULL;
    strata_error_t err;
    ck_assert_msg(strata_db_open(&opts, &db, &err) == 0, "open: %s", err.msg);
    return db;
}

static bool has(strata_db_t *db, const char *key)
{
    void *v = NULL;
    size_t vl;
    int rc = strata_db_get(db, NULL, key, strlen(key), &v, &vl, NULL);
    free(v);
    ck_assert(rc == 0 || rc == STRATA_ENOTFOUND);
    return rc == 0;
}

static size_t count_keys(strata_db_t *db)
{
    strata_db_iter_t *it = strata_db_iter_new(db, NULL);
    size_t n = 0;
    for (strata_db_iter_seek_first(it); strata_db_iter_valid(it); strata_db_iter_next(it))
        n++;
    strata_db_iter_destroy(&it);
    return n;
}

static void put(strata_db_t *db, const char *key, uint64_t want_seq)
{
    uint64_t seq = 0;
    strata_error_t err;
    ck_assert_msg(strata_db_put(db, NULL, key, strlen(key), "v", 1, &seq, &err) == 0, "%s",
                  err.msg);
    ck_assert_uint_eq(seq, want_seq);
}

START_TEST(commit_below_durable_keeps_entries_invisible_until_committed)
{
    char *dir = ts_tempdir("replog");
    committed_t c = {.in_order = true};
    strata_db_t *db = db_open(dir, STRATA_COMMIT_EXTERNAL, &c, 0);
    put(db, "k1", 1);
    put(db, "k2", 2);
    put(db, "k3", 3);
    put(db, "k4", 4);
    ck_assert_int_eq(strata_db_sync(db, NULL), 0);
    strata_db_stats_t st;
    strata_db_stats(db, &st);
    ck_assert_uint_eq(st.durable_seq, 4);
    ck_assert_uint_eq(st.appended_seq, 4);
    ck_assert_uint_gt(st.uncommitted_bytes, 0);
    /* Durable, but not committed: nobody sees them. */
    ck_assert(!has(db, "k1"));
    ck_assert_uint_eq(count_keys(db), 0);
    ck_assert_uint_eq(strata_db_last_seq(db), 0);
    ck_assert_uint_eq(c.calls, 0);

    ck_assert_int_eq(strata_db_commit(db, 2, NULL), 0);
    ck_assert(has(db, "k1") && has(db, "k2") && !has(db, "k3"));
    ck_assert_uint_eq(count_keys(db), 2);
    ck_assert_uint_eq(strata_db_last_seq(db), 2);
    ck_assert_uint_eq(c.first, 1);
    ck_assert_uint_eq(c.last, 2);
    ck_assert_uint_eq(c.entries, 2);

    /* A follower append after seq 4, then commit past the end: what there
     * is commits, and no further (the owner commits again for more). */
    uint64_t term = 99;
    ck_assert_int_eq(strata_db_term_at(db, 4, &term), 0);
    uint8_t buf[256];
    size_t n = encode_one(buf, 5, term, 0, "k5");
    size_t appended = 0;
    strata_error_t err;
    ck_assert_msg(
        strata_db_append_entries(db, buf, n, 4, term, STRATA_SYNC, &appended, NULL, &err) == 0,
        "%s", err.msg);
    ck_assert_uint_eq(appended, 1);
    ck_assert(!has(db, "k5"));
    ck_assert_int_eq(strata_db_commit(db, 6, NULL), 0);
    ck_assert(has(db, "k3") && has(db, "k4") && has(db, "k5"));
    ck_assert_uint_eq(strata_db_commit_seq(db), 5);
    put(db, "k6", 6); /* past the commit seq: invisible until committed */
    ck_assert(!has(db, "k6"));
    ck_assert_int_eq(strata_db_commit(db, 6, NULL), 0);
    ck_assert(has(db, "k6"));
    ck_assert_uint_eq(c.entries, 6);
    ck_assert(c.in_order);

    /* Uncommitted entries can be cut; committed ones never. */
    put(db, "k7", 7);
    put(db, "k8", 8);
    ck_assert_int_eq(strata_db_truncate_after(db, 5, NULL, &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "committed"));
    strata_wal_cut_t cut;
    ck_assert_msg(strata_db_truncate_after(db, 6, &cut, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(cut.entries, 2);
    ck_assert_int_eq(strata_db_commit(db, 8, NULL), 0);
    ck_assert(!has(db, "k7") && !has(db, "k8"));
    ck_assert_uint_eq(strata_db_last_seq(db), 6);
    ck_assert_uint_eq(strata_db_commit_seq(db), 6); /* seqs 7 and 8 are gone */
    put(db, "k9", 7);
    /* The cut entries' seqs come back with new entries: a commit named
     * before they arrived does not cover them. */
    ck_assert(!has(db, "k9"));
    put(db, "k10", 8);
    ck_assert_int_eq(strata_db_commit(db, 8, NULL), 0);
    ck_assert(has(db, "k9") && has(db, "k10"));
    put(db, "k11", 9); /* beyond the commit seq: stays invisible */
    ck_assert(!has(db, "k11"));
    ck_assert_uint_eq(c.entries, 8);
    ck_assert(c.in_order);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);

    /* Recovery: the owner decides again. EXTERNAL keeps seq 9 invisible. */
    committed_t c2 = {.in_order = true};
    db = db_open(dir, STRATA_COMMIT_EXTERNAL, &c2, 0);
    ck_assert(!has(db, "k11"));
    ck_assert(!has(db, "k7"));
    ck_assert_int_eq(strata_db_commit(db, 9, NULL), 0);
    ck_assert(has(db, "k1") && has(db, "k9") && has(db, "k10") && has(db, "k11"));
    ck_assert(!has(db, "k7") && !has(db, "k8"));
    ck_assert_uint_eq(c2.first, 1);
    ck_assert_uint_eq(c2.last, 9);
    ck_assert(c2.in_order);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    char *wal_dir = ts_path(dir, "wal");
    char *rollback = rollback_file(wal_dir, "entries", 7, 8);
    free(wal_dir);
    struct stat sb;
    ck_assert_int_eq(stat(rollback, &sb), 0);
    ck_assert_uint_gt(sb.st_size, 0);
    free(rollback);

    /* LOCAL commits everything recovered, and refuses the owner's verbs. */
    committed_t c3 = {.in_order = true};
    db = db_open(dir, STRATA_COMMIT_LOCAL, &c3, 0);
    ck_assert(has(db, "k11"));
    ck_assert_uint_eq(c3.calls, 0); /* recovered entries are not reported */
    ck_assert_int_eq(strata_db_commit(db, 9, NULL), STRATA_EINVAL);
    ck_assert_int_eq(strata_db_truncate_after(db, 9, NULL, NULL), STRATA_EINVAL);
    put(db, "k12", 10);
    ck_assert(has(db, "k12"));
    ck_assert_uint_eq(c3.first, 10);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(uncommitted_bytes_have_a_cap)
{
    char *dir = ts_tempdir("replog");
    committed_t c = {.in_order = true};
    strata_db_t *db = db_open(dir, STRATA_COMMIT_EXTERNAL, &c, 1000);
    char value[300];
    memset(value, 'x', sizeof value);
    strata_error_t err;
    int rc = 0;
    uint64_t seq = 0;
    int accepted = 0;
    while (accepted < 10 &&
           (rc = strata_db_put(db, NULL, "k", 1, value, sizeof value, &seq, &err)) == 0)
        accepted++;
    ck_assert_int_eq(rc, STRATA_EBUSY);
    ck_assert_ptr_nonnull(strstr(err.msg, "max_uncommitted_bytes"));
    ck_assert_int_ge(accepted, 3);
    ck_assert_int_le(accepted, 4);
    ck_assert_int_eq(strata_db_commit(db, seq, NULL), 0);
    ck_assert_int_eq(strata_db_put(db, NULL, "k", 1, value, sizeof value, NULL, NULL), 0);
    ck_assert_int_eq(strata_db_close(&db, NULL), 0);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("replog");
    TCase *tc = tcase_create("replog");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, follower_append_stores_entries_byte_identical_and_checks_prev);
    tcase_add_test(tc, truncate_after_cuts_the_suffix_into_rollback_and_survives_reopen);
    tcase_add_test(tc, power_cut_at_any_point_of_a_truncation_leaves_a_valid_prefix);
    tcase_add_test(tc, term_runs_follow_reopen_truncation_and_retention);
    tcase_add_test(tc, commit_below_durable_keeps_entries_invisible_until_committed);
    tcase_add_test(tc, uncommitted_bytes_have_a_cap);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
