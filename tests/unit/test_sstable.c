/* SSTables: builder and reader round trips against a sorted reference,
 * gets at snapshots, iterators both ways, the builder's refusals and file
 * handling, and the damage table: every kind of damage gives its named
 * error on open or on read, never a wrong value and never a crash. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "faultio.h"
#include "strata/crc.h"
#include "strata/sstable.h"
#include "support.h"

/* Check's ck_assert reports every passing check to the parent process (a
 * write per call); the hot loops below make millions of checks, so they
 * only call into Check on a failure. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* ---- the reference model ------------------------------------------------ */

typedef struct {
    char key[24];
    size_t key_len;
    uint64_t seq;
    strata_value_type_t type;
    uint8_t *value;
    size_t value_len;
} rec_t;

typedef struct {
    rec_t *r;
    size_t n;
} model_t;

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : alen < blen ? -1 : alen > blen;
}

/* Memtable order: key ascending, then seq descending. */
static int rec_cmp(const void *x, const void *y)
{
    const rec_t *a = x, *b = y;
    int c = key_cmp(a->key, a->key_len, b->key, b->key_len);
    return c ? c : a->seq > b->seq ? -1 : a->seq < b->seq;
}

/* A compressible value: "seq|" repeated, cut to len. */
static uint8_t *make_value(uint64_t seq, size_t len)
{
    uint8_t *v = malloc(len + 1);
    char unit[24];
    int unit_len = snprintf(unit, sizeof unit, "%llu|", (unsigned long long)seq);
    for (size_t i = 0; i < len; i++)
        v[i] = (uint8_t)unit[i % (size_t)unit_len];
    return v;
}

/* n_keys user keys (the empty key among them) with 1 to 3 versions each,
 * about a tenth of them deletes; values up to max_value bytes. */
static model_t make_model(uint64_t *rng, size_t n_keys, size_t max_value)
{
    model_t m = {calloc(n_keys * 3, sizeof(rec_t)), 0};
    for (size_t k = 0; k < n_keys; k++) {
        char key[24];
        int key_len = k == 0 ? 0
                             : snprintf(key, sizeof key, "k%llx",
                                        (unsigned long long)(ts_rand(rng) >> (ts_rand(rng) % 60)));
        uint64_t seq = 1 + ts_rand(rng) % 1000000;
        int versions = 1 + (int)(ts_rand(rng) % 3);
        for (int v = 0; v < versions; v++) {
            rec_t *r = &m.r[m.n++];
            memcpy(r->key, key, (size_t)key_len);
            r->key_len = (size_t)key_len;
            r->seq = seq;
            seq += 1 + ts_rand(rng) % 5;
            r->type = ts_rand(rng) % 10 == 0 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT;
            r->value_len = r->type == STRATA_VALUE_DELETE ? 0 : ts_rand(rng) % (max_value + 1);
            r->value = make_value(r->seq, r->value_len);
        }
    }
    qsort(m.r, m.n, sizeof(rec_t), rec_cmp);
    size_t out = 0; /* random keys may repeat: keep one entry per (key, seq) */
    for (size_t i = 0; i < m.n; i++) {
        if (out && rec_cmp(&m.r[out - 1], &m.r[i]) == 0) {
            free(m.r[i].value);
            continue;
        }
        m.r[out++] = m.r[i];
    }
    m.n = out;
    return m;
}

static void free_model(model_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->r[i].value);
    free(m->r);
}

static rec_t *model_push(model_t *m, size_t *cap, const char *key, size_t key_len, uint64_t seq,
                         strata_value_type_t type, size_t value_len)
{
    if (m->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        m->r = realloc(m->r, *cap * sizeof(rec_t));
    }
    rec_t *r = &m->r[m->n++];
    memset(r, 0, sizeof *r);
    memcpy(r->key, key, key_len);
    r->key_len = key_len;
    r->seq = seq;
    r->type = type;
    r->value_len = value_len;
    r->value = make_value(seq, value_len);
    return r;
}

/* Index of the first record >= (key, seq) in memtable order. */
static size_t model_lower_bound(const model_t *m, const char *key, size_t key_len, uint64_t seq)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const rec_t *r = &m->r[mid];
        int c = key_cmp(r->key, r->key_len, key, key_len);
        if (c < 0 || (c == 0 && r->seq > seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The newest record of key with seq <= snapshot, or NULL. */
static const rec_t *model_get(const model_t *m, const char *key, size_t key_len, uint64_t snapshot)
{
    size_t i = model_lower_bound(m, key, key_len, snapshot);
    if (i < m->n && key_cmp(m->r[i].key, m->r[i].key_len, key, key_len) == 0)
        return &m->r[i];
    return NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static strata_table_options_t options(bool lz4)
{
    strata_table_options_t o;
    strata_table_options_init(&o);
    o.lz4 = lz4;
    return o;
}

static void build(const char *path, const model_t *m, const strata_table_options_t *o,
                  strata_table_props_t *props)
{
    strata_table_builder_t *b = NULL;
    strata_error_t err;
    ck_assert_msg(strata_table_builder_new(o, path, &b, &err) == 0, "new: %s", err.msg);
    for (size_t i = 0; i < m->n; i++) {
        const rec_t *r = &m->r[i];
        EXPECT(strata_table_builder_add(b, r->key, r->key_len, r->seq, r->type, r->value,
                                        r->value_len, &err) == 0,
               "add %zu: %s", i, err.msg);
    }
    ck_assert_uint_eq(strata_table_builder_entries(b), m->n);
    ck_assert_msg(strata_table_builder_finish(&b, props, &err) == 0, "finish: %s", err.msg);
    ck_assert_ptr_null(b);
}

static strata_table_t *open_table(const char *path)
{
    strata_table_t *t = NULL;
    strata_error_t err;
    ck_assert_msg(strata_table_open(NULL, path, &t, &err) == 0, "open: %s", err.msg);
    return t;
}

static void assert_rec(const rec_t *r, strata_value_type_t type, const void *value,
                       size_t value_len, uint64_t seq)
{
    EXPECT(seq == r->seq && type == r->type && value_len == r->value_len &&
               (!value_len || memcmp(value, r->value, value_len) == 0),
           "%.*s: found seq %llu type %d value of %zu bytes, expected seq %llu type %d %zu bytes",
           (int)r->key_len, r->key, (unsigned long long)seq, type, value_len,
           (unsigned long long)r->seq, r->type, r->value_len);
}

static void assert_iter_at(strata_table_iter_t *it, const model_t *m, size_t i)
{
    EXPECT(strata_table_iter_valid(it), "iterator invalid, expected record %zu of %zu", i, m->n);
    const rec_t *r = &m->r[i];
    size_t key_len, value_len;
    const void *key = strata_table_iter_key(it, &key_len);
    const void *value = strata_table_iter_value(it, &value_len);
    EXPECT(key_cmp(key, key_len, r->key, r->key_len) == 0, "record %zu: key %.*s, expected %.*s", i,
           (int)key_len, (const char *)key, (int)r->key_len, r->key);
    assert_rec(r, strata_table_iter_type(it), value, value_len, strata_table_iter_seq(it));
}

static void expect_get(strata_table_t *t, const model_t *m, const char *key, size_t key_len,
                       uint64_t snapshot)
{
    const rec_t *want = model_get(m, key, key_len, snapshot);
    strata_value_type_t type = 0;
    void *value = NULL;
    size_t value_len = 0;
    uint64_t seq = 0;
    strata_error_t err;
    int rc = strata_table_get(t, key, key_len, snapshot, &type, &value, &value_len, &seq, &err);
    EXPECT(rc >= 0, "get: %s", err.msg);
    if (!want) {
        EXPECT(rc == 0, "get of %.*s at %llu found seq %llu", (int)key_len, key,
               (unsigned long long)snapshot, (unsigned long long)seq);
        return;
    }
    EXPECT(rc == 1, "get of %.*s at %llu found nothing", (int)key_len, key,
           (unsigned long long)snapshot);
    EXPECT(value != NULL, "no value for a found entry"); /* also for a delete: an empty one */
    assert_rec(want, type, value, value_len, seq);
    free(value);
}

static void check_props(const strata_table_props_t *p, const model_t *m)
{
    uint64_t deletes = 0, min_seq = UINT64_MAX, max_seq = 0, key_bytes = 0, value_bytes = 0;
    for (size_t i = 0; i < m->n; i++) {
        deletes += m->r[i].type == STRATA_VALUE_DELETE;
        min_seq = m->r[i].seq < min_seq ? m->r[i].seq : min_seq;
        max_seq = m->r[i].seq > max_seq ? m->r[i].seq : max_seq;
        key_bytes += m->r[i].key_len;
        value_bytes += m->r[i].value_len;
    }
    ck_assert_uint_eq(p->entries, m->n);
    ck_assert_uint_eq(p->deletes, deletes);
    ck_assert_uint_eq(p->min_seq, m->n ? min_seq : 0);
    ck_assert_uint_eq(p->max_seq, max_seq);
    ck_assert_uint_eq(p->raw_key_bytes, key_bytes);
    ck_assert_uint_eq(p->raw_value_bytes, value_bytes);
    ck_assert_ptr_nonnull(p->smallest_key);
    ck_assert_ptr_nonnull(p->largest_key);
    if (m->n) {
        const rec_t *first = &m->r[0], *last = &m->r[m->n - 1];
        ck_assert_int_eq(
            key_cmp((char *)p->smallest_key, p->smallest_len, first->key, first->key_len), 0);
        ck_assert_int_eq(key_cmp((char *)p->largest_key, p->largest_len, last->key, last->key_len),
                         0);
    }
}

/* Everything a reader can be asked, against the model. */
static void check_table(const char *path, const model_t *m, uint64_t *rng)
{
    strata_table_t *t = open_table(path);
    const strata_table_props_t *p = strata_table_props(t);
    check_props(p, m);
    ck_assert_uint_eq(p->file_size, ts_file_size(path));
    strata_error_t err;
    ck_assert_msg(strata_table_verify(t, &err) == 0, "verify: %s", err.msg);

    strata_table_iter_t *it = strata_table_iter_new(t);
    size_t i = 0;
    for (strata_table_iter_seek_first(it); strata_table_iter_valid(it); strata_table_iter_next(it))
        assert_iter_at(it, m, i++);
    ck_assert_uint_eq(i, m->n);
    ck_assert_int_eq(strata_table_iter_status(it, NULL), 0);
    for (strata_table_iter_seek_last(it); strata_table_iter_valid(it); strata_table_iter_prev(it))
        assert_iter_at(it, m, --i);
    ck_assert_uint_eq(i, 0);

    /* Every record at its own seq, one below, the latest and the oldest. */
    for (i = 0; i < m->n; i++) {
        const rec_t *r = &m->r[i];
        expect_get(t, m, r->key, r->key_len, r->seq);
        expect_get(t, m, r->key, r->key_len, r->seq - 1);
        expect_get(t, m, r->key, r->key_len, UINT64_MAX);
        expect_get(t, m, r->key, r->key_len, 0);
    }
    /* Absent keys, and seeks anywhere, with a step each way after. */
    size_t probes = m->n < 20000 ? m->n + 100 : 20000;
    for (size_t k = 0; k < probes; k++) {
        char key[24];
        size_t key_len;
        uint64_t seq;
        if (m->n && k % 2) {
            const rec_t *r = &m->r[ts_rand(rng) % m->n];
            memcpy(key, r->key, r->key_len);
            key_len = r->key_len;
            seq = r->seq + ts_rand(rng) % 3 - 1;
        } else {
            key_len = (size_t)snprintf(key, sizeof key, "k%llx~", (unsigned long long)ts_rand(rng));
            seq = ts_rand(rng) % 2 ? UINT64_MAX : ts_rand(rng) % 1000000;
            expect_get(t, m, key, key_len, seq);
        }
        strata_table_iter_seek(it, key, key_len, seq);
        size_t want = model_lower_bound(m, key, key_len, seq);
        if (want == m->n) {
            EXPECT(!strata_table_iter_valid(it), "seek past the end is valid");
            continue;
        }
        assert_iter_at(it, m, want);
        if (k % 3 == 0) {
            strata_table_iter_prev(it);
            if (want == 0)
                EXPECT(!strata_table_iter_valid(it), "prev from the first entry is valid");
            else
                assert_iter_at(it, m, want - 1);
        } else {
            strata_table_iter_next(it);
            if (want + 1 == m->n)
                EXPECT(!strata_table_iter_valid(it), "next from the last entry is valid");
            else
                assert_iter_at(it, m, want + 1);
        }
    }
    ck_assert_int_eq(strata_table_iter_status(it, NULL), 0);
    strata_table_iter_destroy(&it);
    ck_assert_ptr_null(it);
    strata_table_close(&t);
    ck_assert_ptr_null(t);
}

/* ---- round trips --------------------------------------------------------- */

static void round_trip(bool lz4, const char *tag)
{
    uint64_t rng = ts_seed(tag);
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000001.sst");
    model_t m = make_model(&rng, 50000, 200);
    ck_assert_uint_gt(m.n, 90000);
    strata_table_options_t o = options(lz4);
    strata_table_props_t props;
    build(path, &m, &o, &props);
    check_props(&props, &m);
    ck_assert_uint_eq(props.file_size, ts_file_size(path));
    ck_assert_uint_gt(props.data_blocks, 1000);
    strata_table_props_t copy;
    ck_assert_int_eq(strata_table_props_copy(&copy, &props), 0);
    check_props(&copy, &m);
    strata_table_props_clear(&copy);
    strata_table_props_clear(&props);
    check_table(path, &m, &rng);

    /* The values compress well, so LZ4 must have kept most blocks. */
    char *raw_path = ts_path(dir, "raw.sst");
    strata_table_options_t raw = options(false);
    build(raw_path, &m, &raw, NULL);
    if (lz4)
        ck_assert_uint_lt(ts_file_size(path), ts_file_size(raw_path) * 3 / 4);
    else
        ck_assert_uint_eq(ts_file_size(path), ts_file_size(raw_path));
    free(raw_path);
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}

START_TEST(hundred_thousand_entries_round_trip_against_a_sorted_reference)
{
    round_trip(false, "test_sstable_raw");
}
END_TEST

START_TEST(hundred_thousand_entries_round_trip_with_lz4_blocks)
{
    round_trip(true, "test_sstable_lz4");
}
END_TEST

START_TEST(small_blocks_and_restart_intervals_round_trip)
{
    uint64_t rng = ts_seed("test_sstable_small");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000002.sst");
    model_t m = make_model(&rng, 3000, 40);
    static const struct {
        size_t block_bytes;
        int restart_interval;
        int bloom_bits;
    } shapes[] = {{64, 1, 10}, {256, 2, 0}, {1, 16, 3}, {100000, 5, 20}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        strata_table_options_t o = options(s % 2 == 0);
        o.block_bytes = shapes[s].block_bytes;
        o.restart_interval = shapes[s].restart_interval;
        o.bloom_bits_per_key = shapes[s].bloom_bits;
        build(path, &m, &o, NULL);
        check_table(path, &m, &rng);
    }
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(empty_values_and_values_larger_than_a_block_round_trip)
{
    uint64_t rng = ts_seed("test_sstable_large");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000003.sst");
    model_t m = {0};
    size_t cap = 0;
    static const size_t sizes[] = {0, 0, 1, 4095, 4096, 5000, 20000, 300000, 2u << 20, 0, 7};
    char key[24];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int key_len = snprintf(key, sizeof key, "large-%02zu", i);
        model_push(&m, &cap, key, (size_t)key_len, 100 + i, STRATA_VALUE_PUT, sizes[i]);
    }
    /* An incompressible large value: LZ4 must store its block raw. */
    rec_t *r = model_push(&m, &cap, "random", 6, 7, STRATA_VALUE_PUT, 100000);
    for (size_t i = 0; i < r->value_len; i++)
        r->value[i] = (uint8_t)ts_rand(&rng);
    qsort(m.r, m.n, sizeof(rec_t), rec_cmp);
    for (int lz4 = 0; lz4 <= 1; lz4++) {
        strata_table_options_t o = options(lz4);
        strata_table_props_t props;
        build(path, &m, &o, &props);
        ck_assert_uint_ge(props.data_blocks, 6);
        strata_table_props_clear(&props);
        check_table(path, &m, &rng);
    }
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(a_table_with_one_entry_and_a_table_with_none)
{
    uint64_t rng = ts_seed("test_sstable_tiny");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000004.sst");
    model_t m = {0};
    size_t cap = 0;
    model_push(&m, &cap, "only", 4, 42, STRATA_VALUE_PUT, 5);
    strata_table_options_t o = options(true);
    build(path, &m, &o, NULL);
    check_table(path, &m, &rng);

    m.n = 0;
    strata_table_props_t props;
    build(path, &m, &o, &props);
    ck_assert_uint_eq(props.data_blocks, 0);
    ck_assert_uint_eq(props.smallest_len, 0);
    strata_table_props_clear(&props);
    check_table(path, &m, &rng);
    m.n = 1;
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(versions_of_one_key_across_many_blocks_resolve_at_every_snapshot)
{
    uint64_t rng = ts_seed("test_sstable_versions");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000005.sst");
    model_t m = {0};
    size_t cap = 0;
    model_push(&m, &cap, "a", 1, 5000, STRATA_VALUE_PUT, 10);
    for (uint64_t seq = 3000; seq >= 1000; seq -= 2)
        model_push(&m, &cap, "hot", 3, seq, seq % 10 == 0 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT,
                   seq % 10 == 0 ? 0 : 60);
    model_push(&m, &cap, "hot\x01", 4, 1, STRATA_VALUE_PUT, 10);
    model_push(&m, &cap, "z", 1, 2, STRATA_VALUE_PUT, 10);
    strata_table_options_t o = options(false);
    strata_table_props_t props;
    build(path, &m, &o, &props);
    ck_assert_uint_gt(props.data_blocks, 10);
    strata_table_props_clear(&props);
    check_table(path, &m, &rng);
    strata_table_t *t = open_table(path);
    for (uint64_t snap = 990; snap <= 3010; snap++)
        expect_get(t, &m, "hot", 3, snap);
    strata_table_close(&t);
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(the_filter_rules_out_absent_keys)
{
    uint64_t rng = ts_seed("test_sstable_filter");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000006.sst");
    model_t m = make_model(&rng, 20000, 10);
    strata_table_options_t o = options(false);
    build(path, &m, &o, NULL);
    strata_table_t *t = open_table(path);
    for (size_t i = 0; i < m.n; i++)
        ck_assert(strata_table_may_contain(t, m.r[i].key, m.r[i].key_len));
    int matched = 0;
    char key[24];
    for (int i = 0; i < 100000; i++) {
        int key_len = snprintf(key, sizeof key, "absent-%d", i);
        matched += strata_table_may_contain(t, key, (size_t)key_len);
    }
    ck_assert_int_lt(matched, 2000);
    strata_table_close(&t);

    o.bloom_bits_per_key = 0; /* no filter: everything may be there */
    build(path, &m, &o, NULL);
    t = open_table(path);
    ck_assert(strata_table_may_contain(t, "absent", 6));
    expect_get(t, &m, "absent", 6, UINT64_MAX);
    strata_table_close(&t);
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

typedef struct {
    strata_table_t *table;
    const model_t *model;
    uint64_t seed;
} reader_arg_t;

static void *reader(void *p)
{
    reader_arg_t *a = p;
    uint64_t rng = a->seed;
    for (int i = 0; i < 20000; i++) {
        const rec_t *r = &a->model->r[ts_rand(&rng) % a->model->n];
        void *value = NULL;
        size_t value_len;
        if (strata_table_get(a->table, r->key, r->key_len, r->seq, NULL, &value, &value_len, NULL,
                             NULL) != 1 ||
            value_len != r->value_len || memcmp(value, r->value, value_len) != 0) {
            free(value);
            return (void *)1;
        }
        free(value);
    }
    return NULL;
}

START_TEST(concurrent_gets_share_one_table)
{
    uint64_t rng = ts_seed("test_sstable_threads");
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000007.sst");
    model_t m = make_model(&rng, 5000, 100);
    strata_table_options_t o = options(true);
    build(path, &m, &o, NULL);
    strata_table_t *t = open_table(path);
    pthread_t threads[4];
    reader_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg_t){t, &m, ts_rand(&rng) | 1};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, reader, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *failed;
        pthread_join(threads[i], &failed);
        ck_assert_ptr_null(failed);
    }
    strata_table_close(&t);
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- the builder's refusals and file handling ----------------------------- */

START_TEST(the_builder_refuses_keys_out_of_order_and_keeps_going)
{
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000010.sst");
    strata_table_builder_t *b = NULL;
    strata_error_t err;
    ck_assert_int_eq(strata_table_builder_new(NULL, path, &b, &err), 0);
    ck_assert_int_eq(strata_table_builder_add(b, "b", 1, 10, STRATA_VALUE_PUT, "x", 1, &err), 0);
    /* Same key and seq, a smaller key, a newer version after an older one. */
    ck_assert_int_eq(strata_table_builder_add(b, "b", 1, 10, STRATA_VALUE_PUT, "y", 1, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "not after the previous one"), "%s", err.msg);
    ck_assert_int_eq(strata_table_builder_add(b, "a", 1, 99, STRATA_VALUE_PUT, "y", 1, &err),
                     STRATA_EINVAL);
    ck_assert_int_eq(strata_table_builder_add(b, "b", 1, 11, STRATA_VALUE_PUT, "y", 1, &err),
                     STRATA_EINVAL);
    /* Arguments no table can hold. */
    ck_assert_int_eq(strata_table_builder_add(b, "c", 1, UINT64_MAX, STRATA_VALUE_PUT, "", 0, &err),
                     STRATA_EINVAL);
    ck_assert_int_eq(strata_table_builder_add(b, "c", 1, 1, (strata_value_type_t)7, "", 0, &err),
                     STRATA_EINVAL);
    ck_assert_int_eq(
        strata_table_builder_add(b, "c", (16u << 20) + 1, 1, STRATA_VALUE_PUT, "", 0, &err),
        STRATA_ETOOBIG);
    /* An older version of the same key is in order. */
    ck_assert_int_eq(strata_table_builder_add(b, "b", 1, 9, STRATA_VALUE_DELETE, "", 0, &err), 0);
    ck_assert_int_eq(strata_table_builder_add(b, "c", 1, 1, STRATA_VALUE_PUT, "z", 1, &err), 0);
    ck_assert_int_eq(strata_table_builder_finish(&b, NULL, &err), 0);

    strata_table_t *t = open_table(path);
    ck_assert_uint_eq(strata_table_props(t)->entries, 3);
    void *value;
    size_t value_len;
    strata_value_type_t type;
    ck_assert_int_eq(strata_table_get(t, "b", 1, 100, &type, &value, &value_len, NULL, &err), 1);
    ck_assert_int_eq(type, STRATA_VALUE_PUT);
    ck_assert_mem_eq(value, "x", 1);
    free(value);
    ck_assert_int_eq(strata_table_get(t, "b", 1, 9, &type, &value, &value_len, NULL, &err), 1);
    ck_assert_int_eq(type, STRATA_VALUE_DELETE);
    ck_assert_uint_eq(value_len, 0);
    free(value);
    ck_assert_int_eq(strata_table_get(t, "a", 1, 100, NULL, NULL, NULL, NULL, &err), 0);
    strata_table_close(&t);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

START_TEST(a_finished_table_is_renamed_and_an_abandoned_one_leaves_nothing)
{
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000011.sst");
    char *tmp = ts_path(dir, "000011.sst.tmp");
    strata_table_builder_t *b = NULL;
    ck_assert_int_eq(strata_table_builder_new(NULL, path, &b, NULL), 0);
    ck_assert(exists(tmp));
    ck_assert(!exists(path));
    char key[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%05d", i);
        ck_assert_int_eq(strata_table_builder_add(b, key, 9, 1, STRATA_VALUE_PUT, key, 9, NULL), 0);
    }
    ck_assert_uint_gt(strata_table_builder_size(b), 2000 * 9);
    strata_table_builder_abandon(&b);
    ck_assert_ptr_null(b);
    strata_table_builder_abandon(&b); /* a second call is harmless */
    ck_assert(!exists(tmp));
    ck_assert(!exists(path));

    ck_assert_int_eq(strata_table_builder_new(NULL, path, &b, NULL), 0);
    ck_assert_int_eq(strata_table_builder_add(b, "k", 1, 1, STRATA_VALUE_PUT, "v", 1, NULL), 0);
    ck_assert_int_eq(strata_table_builder_finish(&b, NULL, NULL), 0);
    ck_assert(!exists(tmp));
    ck_assert(exists(path));

    char *missing = ts_path(dir, "no/such/dir/000012.sst");
    strata_error_t err;
    ck_assert_int_eq(strata_table_builder_new(NULL, missing, &b, &err), STRATA_EIO);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(err.msg, "000012.sst.tmp"), "%s", err.msg);
    strata_table_options_t o = options(false);
    o.block_bytes = (size_t)1 << 40;
    ck_assert_int_eq(strata_table_builder_new(&o, path, &b, &err), STRATA_EINVAL);
    free(missing);
    ts_rmtree(dir);
    free(tmp);
    free(path);
    free(dir);
}
END_TEST

START_TEST(a_failed_write_or_sync_fails_the_table_and_leaves_no_file)
{
    char *dir = ts_tempdir("sst");
    char *path = ts_path(dir, "000013.sst");
    char *tmp = ts_path(dir, "000013.sst.tmp");
    for (int mode = 0; mode < 3; mode++) {
        faultio_t *fio = faultio_new();
        if (mode == 0)
            faultio_fail_write_after(fio, 1);
        else
            faultio_fail_sync_after(fio, mode); /* the file's fdatasync, then the directory's */
        strata_table_options_t o = options(false);
        o.io = faultio_io(fio);
        strata_table_builder_t *b = NULL;
        strata_error_t err;
        ck_assert_int_eq(strata_table_builder_new(&o, path, &b, &err), 0);
        int rc = 0;
        char key[16], value[100] = {0};
        for (int i = 0; i < 20000 && rc == 0; i++) {
            snprintf(key, sizeof key, "key-%05d", i);
            rc =
                strata_table_builder_add(b, key, 9, 1, STRATA_VALUE_PUT, value, sizeof value, &err);
        }
        if (rc == 0) {
            ck_assert_int_ne(mode, 0); /* 2 MB of entries must have hit a write */
            rc = strata_table_builder_finish(&b, NULL, &err);
        } else {
            /* The failure is sticky: finish reports it again. */
            ck_assert_int_eq(strata_table_builder_finish(&b, NULL, &err), STRATA_EIO);
        }
        ck_assert_int_eq(rc, STRATA_EIO);
        ck_assert_ptr_null(b);
        ck_assert_msg(strstr(err.msg, mode == 0   ? "000013.sst.tmp offset"
                                      : mode == 1 ? "fdatasync"
                                                  : "sync directory"),
                      "mode %d: %s", mode, err.msg);
        ck_assert(!exists(tmp));
        ck_assert(!exists(path));
        faultio_destroy(&fio);
    }
    ts_rmtree(dir);
    free(tmp);
    free(path);
    free(dir);
}
END_TEST

/* ---- damage ------------------------------------------------------------- */

typedef struct {
    uint64_t size;
    uint64_t index_off, index_size, filter_off, filter_size, props_off, props_size;
    uint64_t block0_size;
} layout_t;

static uint64_t read_u64(const char *path, uint64_t off)
{
    uint8_t b[8];
    ts_file_read_at(path, off, b, 8);
    return get_u64(b);
}

static layout_t layout_of(const char *path)
{
    layout_t l = {.size = ts_file_size(path)};
    uint64_t f = l.size - 64;
    l.index_off = read_u64(path, f + 4);
    l.index_size = read_u64(path, f + 12);
    l.filter_off = read_u64(path, f + 20);
    l.filter_size = read_u64(path, f + 28);
    l.props_off = read_u64(path, f + 36);
    l.props_size = read_u64(path, f + 44);
    /* The first index entry: shared 0, key length, value length, key, handle. */
    uint8_t entry[64];
    ts_file_read_at(path, l.index_off, entry, sizeof entry);
    const uint8_t *p = entry, *end = entry + sizeof entry;
    uint64_t shared = 0, key_len = 0, value_len = 0, offset = 1;
    p = varint_get(p, end, &shared);
    ck_assert_ptr_nonnull(p);
    p = varint_get(p, end, &key_len);
    ck_assert_ptr_nonnull(p);
    p = varint_get(p, end, &value_len);
    ck_assert_ptr_nonnull(p);
    p = varint_get(p + key_len, end, &offset);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(offset, 0);
    ck_assert_ptr_nonnull(varint_get(p, end, &l.block0_size));
    return l;
}

static void flip(const char *path, uint64_t off)
{
    uint8_t b;
    ts_file_read_at(path, off, &b, 1);
    b ^= 0x10;
    ts_file_write_at(path, off, &b, 1);
}

static void set_byte(const char *path, uint64_t off, uint8_t b)
{
    ts_file_write_at(path, off, &b, 1);
}

static void zero(const char *path, uint64_t off, size_t len)
{
    uint8_t *z = calloc(1, len);
    ts_file_write_at(path, off, z, len);
    free(z);
}

/* Recomputes the checksum of the block at off: damage no torn write makes,
 * so the decoders behind the checksum get tested. */
static void reseal_block(const char *path, uint64_t off, uint64_t size)
{
    uint8_t *b = malloc(size + 1);
    ts_file_read_at(path, off, b, size + 1);
    uint8_t crc[4];
    put_u32(crc, strata_crc32c(0, b, size + 1));
    ts_file_write_at(path, off + size + 1, crc, 4);
    free(b);
}

static void reseal_footer(const char *path, const layout_t *l)
{
    uint8_t f[64];
    ts_file_read_at(path, l->size - 64, f, 64);
    put_u32(f, strata_crc32c(0, f + 4, 60));
    ts_file_write_at(path, l->size - 64, f, 64);
}

typedef void (*damage_fn)(const char *path, const layout_t *l);

static void data_bit_flip(const char *p, const layout_t *l)
{
    flip(p, 20);
}
static void data_zeroed_mid_file(const char *p, const layout_t *l)
{
    zero(p, l->index_off / 2, 64);
}
static void data_type_byte(const char *p, const layout_t *l)
{
    set_byte(p, l->block0_size, 1); /* claims LZ4; the checksum covers the type */
}
static void data_unknown_type_resealed(const char *p, const layout_t *l)
{
    set_byte(p, l->block0_size, 7);
    reseal_block(p, 0, l->block0_size);
}
static void data_entry_overrun_resealed(const char *p, const layout_t *l)
{
    set_byte(p, 0, 0x7f); /* first entry's shared length: more than an empty previous key */
    reseal_block(p, 0, l->block0_size);
}
static void data_restarts_resealed(const char *p, const layout_t *l)
{
    uint8_t n[4];
    put_u32(n, 100000);
    ts_file_write_at(p, l->block0_size - 4, n, 4);
    reseal_block(p, 0, l->block0_size);
}
static void data_lz4_length_resealed(const char *p, const layout_t *l)
{
    uint8_t b;
    ts_file_read_at(p, 0, &b, 1); /* the uncompressed length's first varint byte */
    set_byte(p, 0, b ^ 0x01);
    reseal_block(p, 0, l->block0_size);
}
static void data_block_truncated_away(const char *p, const layout_t *l)
{
    ts_file_truncate(p, l->block0_size / 2);
}
static void index_bit_flip(const char *p, const layout_t *l)
{
    flip(p, l->index_off + l->index_size / 2);
}
static void index_restarts_resealed(const char *p, const layout_t *l)
{
    uint8_t n[4];
    put_u32(n, 0xffffff);
    ts_file_write_at(p, l->index_off + l->index_size - 4, n, 4);
    reseal_block(p, l->index_off, l->index_size);
}
static void index_handle_resealed(const char *p, const layout_t *l)
{
    /* First entry: 3 header bytes, then the key; its handle's offset 0 becomes 1. */
    uint8_t header[3];
    ts_file_read_at(p, l->index_off, header, 3);
    set_byte(p, l->index_off + 3 + header[1], 1);
    reseal_block(p, l->index_off, l->index_size);
}
static void filter_bit_flip(const char *p, const layout_t *l)
{
    flip(p, l->filter_off + 3);
}
static void filter_zeroed(const char *p, const layout_t *l)
{
    zero(p, l->filter_off, l->filter_size);
}
static void props_bit_flip(const char *p, const layout_t *l)
{
    flip(p, l->props_off + 1);
}
static void props_missing_field_resealed(const char *p, const layout_t *l)
{
    set_byte(p, l->props_off, 100); /* "entries" becomes a tag from the future */
    reseal_block(p, l->props_off, l->props_size);
}
static void footer_handle_flip(const char *p, const layout_t *l)
{
    flip(p, l->size - 64 + 10);
}
static void footer_crc_flip(const char *p, const layout_t *l)
{
    flip(p, l->size - 64);
}
static void footer_magic_flip(const char *p, const layout_t *l)
{
    flip(p, l->size - 3);
}
static void footer_version(const char *p, const layout_t *l)
{
    set_byte(p, l->size - 12, 2);
    reseal_footer(p, l);
}
static void footer_zeroed(const char *p, const layout_t *l)
{
    zero(p, l->size - 64, 64);
}
static void footer_handle_outside_resealed(const char *p, const layout_t *l)
{
    uint8_t huge[8];
    put_u64(huge, l->size);
    ts_file_write_at(p, l->size - 64 + 12, huge, 8);
    reseal_footer(p, l);
}
static void footer_handle_far_beyond_resealed(const char *p, const layout_t *l)
{
    uint8_t huge[8];
    put_u64(huge, UINT64_MAX - 2);
    ts_file_write_at(p, l->size - 64 + 36, huge, 8); /* offset + size wraps past 2^64 */
    reseal_footer(p, l);
}
static void truncated_by_one(const char *p, const layout_t *l)
{
    ts_file_truncate(p, l->size - 1);
}
static void truncated_below_footer(const char *p, const layout_t *l)
{
    ts_file_truncate(p, 40);
}
static void truncated_to_nothing(const char *p, const layout_t *l)
{
    ts_file_truncate(p, 0);
}
static void appended_garbage(const char *p, const layout_t *l)
{
    ts_file_write_at(p, l->size, "garbage", 7);
}

typedef struct {
    const char *name;
    damage_fn damage;
    bool lz4;
    bool at_open; /* else open succeeds and reads report it */
    int code;
    const char *message;
} damage_case_t;

static const damage_case_t cases[] = {
    {"data bit flip", data_bit_flip, false, false, STRATA_ECORRUPT,
     "offset 0: data block checksum mismatch"},
    {"data bit flip (lz4)", data_bit_flip, true, false, STRATA_ECORRUPT,
     "offset 0: data block checksum mismatch"},
    {"data zeroed mid-file", data_zeroed_mid_file, false, false, STRATA_ECORRUPT,
     "data block checksum mismatch"},
    {"data type byte", data_type_byte, false, false, STRATA_ECORRUPT,
     "offset 0: data block checksum mismatch"},
    {"data unknown type", data_unknown_type_resealed, false, false, STRATA_ECORRUPT,
     "offset 0: data block has block type 7"},
    {"data entry overrun", data_entry_overrun_resealed, false, false, STRATA_ECORRUPT,
     "offset 0: data block shared prefix longer than the previous key (entry at block offset 0)"},
    {"data restarts", data_restarts_resealed, false, false, STRATA_ECORRUPT,
     "offset 0: data block restart array is malformed"},
    {"data lz4 length", data_lz4_length_resealed, true, false, STRATA_ECORRUPT,
     "offset 0: data block does not decompress"},
    {"data truncated away", data_block_truncated_away, false, true, STRATA_ECORRUPT, "bad magic"},
    {"index bit flip", index_bit_flip, false, true, STRATA_ECORRUPT,
     "index block checksum mismatch"},
    {"index restarts", index_restarts_resealed, false, true, STRATA_ECORRUPT,
     "index block restart array is malformed"},
    {"index handle", index_handle_resealed, false, false, STRATA_ECORRUPT,
     "offset 1: data block checksum mismatch"},
    {"filter bit flip", filter_bit_flip, false, true, STRATA_ECORRUPT,
     "filter block checksum mismatch"},
    {"filter zeroed", filter_zeroed, true, true, STRATA_ECORRUPT, "filter block checksum mismatch"},
    {"properties bit flip", props_bit_flip, false, true, STRATA_ECORRUPT,
     "properties block checksum mismatch"},
    {"properties missing field", props_missing_field_resealed, false, true, STRATA_ECORRUPT,
     "properties block lacks entries"},
    {"footer handle flip", footer_handle_flip, false, true, STRATA_ECORRUPT,
     "footer checksum mismatch"},
    {"footer crc flip", footer_crc_flip, false, true, STRATA_ECORRUPT, "footer checksum mismatch"},
    {"footer magic flip", footer_magic_flip, false, true, STRATA_ECORRUPT, "bad magic"},
    {"footer version", footer_version, false, true, STRATA_EVERSION,
     "table format version 2, this build reads 1"},
    {"footer zeroed", footer_zeroed, false, true, STRATA_ECORRUPT, "bad magic"},
    {"footer handle outside", footer_handle_outside_resealed, false, true, STRATA_ECORRUPT,
     "index handle"},
    {"footer handle far beyond", footer_handle_far_beyond_resealed, false, true, STRATA_ECORRUPT,
     "properties handle"},
    {"truncated by one byte", truncated_by_one, false, true, STRATA_ECORRUPT, "bad magic"},
    {"truncated below the footer", truncated_below_footer, false, true, STRATA_ECORRUPT,
     "offset 0: 40 bytes, shorter than the 64-byte footer"},
    {"truncated to nothing", truncated_to_nothing, false, true, STRATA_ECORRUPT,
     "offset 0: 0 bytes, shorter than the 64-byte footer"},
    {"garbage appended", appended_garbage, false, true, STRATA_ECORRUPT, "bad magic"},
};

static void assert_error(int rc, const strata_error_t *err, const damage_case_t *c,
                         const char *where)
{
    ck_assert_msg(rc == c->code, "%s: %s returned %d (%s), expected %d", c->name, where, rc,
                  err->msg, c->code);
    ck_assert_msg(strstr(err->msg, c->message), "%s: %s said \"%s\", expected \"%s\"", c->name,
                  where, err->msg, c->message);
    ck_assert_msg(strstr(err->msg, "000020.sst"), "%s: %s does not name the file: %s", c->name,
                  where, err->msg);
}

START_TEST(each_damage_gives_its_named_error_and_never_a_wrong_value)
{
    const damage_case_t *c = &cases[_i];
    uint64_t rng = ts_seed("test_sstable_damage");
    char *dir = ts_tempdir("sstdmg");
    char *path = ts_path(dir, "000020.sst");
    model_t m = make_model(&rng, 2000, 100);
    strata_table_options_t o = options(c->lz4);
    build(path, &m, &o, NULL);
    layout_t l = layout_of(path);
    ck_assert_uint_gt(l.index_off, 20 * l.block0_size); /* many data blocks */
    c->damage(path, &l);

    strata_table_t *t = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_table_open(NULL, path, &t, &err);
    if (c->at_open) {
        ck_assert_ptr_null(t);
        assert_error(rc, &err, c, "open");
        goto out;
    }
    ck_assert_msg(rc == 0, "%s: open: %s", c->name, err.msg);

    rc = strata_table_verify(t, &err);
    assert_error(rc, &err, c, "verify");

    /* Iteration yields a correct prefix, then stops with the error. */
    strata_table_iter_t *it = strata_table_iter_new(t);
    size_t i = 0;
    for (strata_table_iter_seek_first(it); strata_table_iter_valid(it); strata_table_iter_next(it))
        assert_iter_at(it, &m, i++);
    ck_assert_uint_lt(i, m.n);
    rc = strata_table_iter_status(it, &err);
    assert_error(rc, &err, c, "iterate");
    strata_table_iter_seek_first(it); /* the error is sticky */
    ck_assert(!strata_table_iter_valid(it));
    strata_table_iter_destroy(&it);

    /* Every get is right or an error; the damaged block gives errors. */
    int errors = 0;
    for (i = 0; i < m.n; i++) {
        const rec_t *r = &m.r[i];
        strata_value_type_t type;
        void *value = NULL;
        size_t value_len;
        uint64_t seq;
        rc = strata_table_get(t, r->key, r->key_len, r->seq, &type, &value, &value_len, &seq, &err);
        if (rc < 0) {
            assert_error(rc, &err, c, "get");
            errors++;
            continue;
        }
        EXPECT(rc == 1, "%s: get %zu found nothing", c->name, i);
        assert_rec(r, type, value, value_len, seq);
        free(value);
    }
    ck_assert_int_gt(errors, 0);
    strata_table_close(&t);
out:
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* Every byte of a table is in a checksummed block, its trailer or the
 * footer, so no single flipped byte anywhere can go unnoticed. */
START_TEST(every_single_byte_flip_is_detected_by_open_or_verify)
{
    uint64_t rng = ts_seed("test_sstable_flips");
    char *dir = ts_tempdir("sstdmg");
    char *path = ts_path(dir, "000021.sst");
    model_t m = make_model(&rng, 30, 30);
    strata_table_options_t o = options(_i == 1);
    o.block_bytes = 256;
    build(path, &m, &o, NULL);
    uint64_t size = ts_file_size(path);
    uint8_t *pristine = malloc(size);
    ts_file_read_at(path, 0, pristine, size);
    for (uint64_t off = 0; off < size; off++) {
        pristine[off] ^= (uint8_t)(1u << (off % 8));
        ts_file_write_at(path, 0, pristine, size);
        pristine[off] ^= (uint8_t)(1u << (off % 8));
        strata_table_t *t = NULL;
        strata_error_t err;
        int rc = strata_table_open(NULL, path, &t, &err);
        if (rc == 0) {
            rc = strata_table_verify(t, &err);
            for (size_t i = 0; i < m.n; i++) { /* right or an error, never wrong */
                const rec_t *r = &m.r[i];
                strata_value_type_t type;
                void *value = NULL;
                size_t value_len;
                uint64_t seq;
                int got = strata_table_get(t, r->key, r->key_len, r->seq, &type, &value, &value_len,
                                           &seq, NULL);
                EXPECT(got != 0, "byte %llu: get %zu found nothing", (unsigned long long)off, i);
                if (got == 1)
                    assert_rec(r, type, value, value_len, seq);
                free(value);
            }
            strata_table_close(&t);
        }
        EXPECT(rc == STRATA_ECORRUPT || rc == STRATA_EVERSION,
               "a flip of byte %llu of %llu went unnoticed (rc %d)", (unsigned long long)off,
               (unsigned long long)size, rc);
    }
    free(pristine);
    free_model(&m);
    ts_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sstable");
    TCase *tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hundred_thousand_entries_round_trip_against_a_sorted_reference);
    tcase_add_test(tc, hundred_thousand_entries_round_trip_with_lz4_blocks);
    tcase_add_test(tc, small_blocks_and_restart_intervals_round_trip);
    tcase_add_test(tc, empty_values_and_values_larger_than_a_block_round_trip);
    tcase_add_test(tc, a_table_with_one_entry_and_a_table_with_none);
    tcase_add_test(tc, versions_of_one_key_across_many_blocks_resolve_at_every_snapshot);
    tcase_add_test(tc, the_filter_rules_out_absent_keys);
    tcase_add_test(tc, concurrent_gets_share_one_table);
    suite_add_tcase(s, tc);

    TCase *files = tcase_create("builder");
    tcase_add_test(files, the_builder_refuses_keys_out_of_order_and_keeps_going);
    tcase_add_test(files, a_finished_table_is_renamed_and_an_abandoned_one_leaves_nothing);
    tcase_add_test(files, a_failed_write_or_sync_fails_the_table_and_leaves_no_file);
    suite_add_tcase(s, files);

    TCase *damage = tcase_create("damage");
    tcase_set_timeout(damage, 120);
    tcase_add_loop_test(damage, each_damage_gives_its_named_error_and_never_a_wrong_value, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_loop_test(damage, every_single_byte_flip_is_detected_by_open_or_verify, 0, 2);
    suite_add_tcase(s, damage);
    return ts_run(s);
}
