/* Pins the record schema of proto/RECORDS.md: round trips, the field named in
 * every rejection, strict vs lenient decoding, keys, JSON, and a decoder fuzz. */
#include <check.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/codec.h"
#include "strata/record.h"
#include "support.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const s_order_insert[] = {
    "order_id=ORD-1",
    "user_id=u42",
    "instrument_id=rb2410",
    "direction=buy",
    "offset=open",
    "price=3512.5",
    "volume=3",
    "timestamp_ns=1700000000000000001",
};
static const char *const s_order_cancel[] = {"order_id=ORD-1", "user_id=u42",
                                             "instrument_id=rb2410", "timestamp_ns=5"};
static const char *const s_trade_executed[] = {
    "trade_id=T-9",
    "order_id=ORD-1",
    "exchange_order_id=X-77",
    "instrument_id=rb2410",
    "direction=sell",
    "price=0.1",
    "volume=1.25",
    "timestamp_ns=18446744073709551615",
};
static const char *const s_account_update[] = {"user_id=u42", "balance=-12.5", "available=-20",
                                               "frozen=0",    "margin=7.5",    "timestamp_ns=9"};
static const char *const s_market_tick[] = {
    "instrument_id=rb2410", "last=3512", "bid=0", "ask=3513", "volume=0", "timestamp_ns=10"};
static const char *const s_raw[] = {"topic=audit", "key=k/1", "data=hello"};

typedef struct {
    const char *type;
    const char *const *pairs;
    size_t n;
} sample_t;

static const sample_t s_samples[] = {
    {"OrderInsert", s_order_insert, N(s_order_insert)},
    {"OrderCancel", s_order_cancel, N(s_order_cancel)},
    {"TradeExecuted", s_trade_executed, N(s_trade_executed)},
    {"AccountUpdate", s_account_update, N(s_account_update)},
    {"MarketTick", s_market_tick, N(s_market_tick)},
    {"Raw", s_raw, N(s_raw)},
};

static void s_build(const sample_t *sample, strata_record_t *rec)
{
    strata_error_t err;
    int rc = strata_record_from_fields(sample->type, sample->pairs, sample->n, rec, &err);
    ck_assert_msg(rc == 0, "%s: %s", sample->type, err.msg);
}

/* from_fields on the sample with one pair replaced (or appended when field
 * is new); returns the rc and leaves the message in err. */
static int s_with(const sample_t *sample, const char *pair, strata_record_t *rec,
                  strata_error_t *err)
{
    const char *pairs[16];
    size_t n = 0, name_len = strcspn(pair, "=");
    bool replaced = false;
    for (size_t i = 0; i < sample->n; i++) {
        if (strncmp(sample->pairs[i], pair, name_len) == 0 && sample->pairs[i][name_len] == '=') {
            pairs[n++] = pair;
            replaced = true;
        } else {
            pairs[n++] = sample->pairs[i];
        }
    }
    if (!replaced)
        pairs[n++] = pair;
    return strata_record_from_fields(sample->type, pairs, n, rec, err);
}

static void s_assert_same(const strata_record_t *a, const strata_record_t *b)
{
    ck_assert_int_eq(a->type, b->type);
    if (a->type == STRATA_RECORD_RAW) {
        ck_assert_str_eq(a->u.raw.topic, b->u.raw.topic);
        ck_assert_uint_eq(a->u.raw.key.len, b->u.raw.key.len);
        ck_assert_mem_eq(a->u.raw.key.ptr, b->u.raw.key.ptr, a->u.raw.key.len);
        ck_assert_uint_eq(a->u.raw.data.len, b->u.raw.data.len);
        if (a->u.raw.data.len)
            ck_assert_mem_eq(a->u.raw.data.ptr, b->u.raw.data.ptr, a->u.raw.data.len);
    } else {
        /* Both were zeroed before filling, so padding and string tails match. */
        ck_assert_mem_eq(&a->u, &b->u, sizeof a->u);
    }
}

START_TEST(every_type_round_trips_through_msgpack)
{
    for (size_t i = 0; i < N(s_samples); i++) {
        strata_record_t rec, back;
        strata_error_t err;
        uint8_t *buf;
        size_t len;
        s_build(&s_samples[i], &rec);
        ck_assert_int_eq(strata_record_encode(&rec, &buf, &len, &err), 0);
        for (int lenient = 0; lenient <= 1; lenient++) {
            int rc = strata_record_decode(buf, len, lenient, &back, &err);
            ck_assert_msg(rc == 0, "%s: %s", s_samples[i].type, err.msg);
            s_assert_same(&rec, &back);
            strata_record_clear(&back);
        }
        free(buf);
        strata_record_clear(&rec);
    }
}
END_TEST

START_TEST(encoding_is_a_map_tagged_with_type_and_version)
{
    strata_record_t rec;
    uint8_t *buf;
    size_t len;
    s_build(&s_samples[0], &rec);
    ck_assert_int_eq(strata_record_encode(&rec, &buf, &len, NULL), 0);
    /* Read it back with plain msgpack-c, as a subscriber without our headers would. */
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&result, (const char *)buf, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(result.data.type, MSGPACK_OBJECT_MAP);
    const msgpack_object_map *map = &result.data.via.map;
    ck_assert_uint_eq(map->size, 10);
    bool saw_type = false, saw_v = false, saw_price = false;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
        ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
        if (k->via.str.size == 4 && memcmp(k->via.str.ptr, "type", 4) == 0) {
            ck_assert_int_eq(v->type, MSGPACK_OBJECT_STR);
            ck_assert_int_eq(v->via.str.size, 11);
            ck_assert_mem_eq(v->via.str.ptr, "OrderInsert", 11);
            saw_type = true;
        } else if (k->via.str.size == 1 && k->via.str.ptr[0] == 'v') {
            ck_assert_int_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            ck_assert_uint_eq(v->via.u64, 1);
            saw_v = true;
        } else if (k->via.str.size == 5 && memcmp(k->via.str.ptr, "price", 5) == 0) {
            ck_assert_int_eq(v->type, MSGPACK_OBJECT_FLOAT64);
            ck_assert(v->via.f64 == 3512.5);
            saw_price = true;
        }
    }
    ck_assert(saw_type && saw_v && saw_price);
    msgpack_unpacked_destroy(&result);
    free(buf);
}
END_TEST

typedef struct {
    size_t sample;
    const char *pair;
    const char *message;
} bad_field_t;

static const bad_field_t s_bad_fields[] = {
    {0, "price=0", "OrderInsert.price: must be finite and > 0"},
    {0, "price=-1", "OrderInsert.price: must be finite and > 0"},
    {0, "price=nan", "OrderInsert.price: must be finite and > 0"},
    {0, "price=inf", "OrderInsert.price: must be finite and > 0"},
    {0, "volume=0", "OrderInsert.volume: must be finite and > 0"},
    {0, "order_id=123456789012345678901234567890123456789012345",
     "OrderInsert.order_id: 45 bytes, max 40"},
    {0, "user_id=123456789012345678901234567890123", "OrderInsert.user_id: 33 bytes, max 32"},
    {0, "instrument_id=12345678901234567", "OrderInsert.instrument_id: 17 bytes, max 16"},
    {0, "order_id=", "OrderInsert.order_id: must not be empty"},
    {0, "order_id=a/b", "OrderInsert.order_id: byte 0x2f at 1 not allowed"},
    {0, "user_id=a b", "OrderInsert.user_id: byte 0x20 at 1 not allowed"},
    {0, "direction=long", "OrderInsert.direction: must be buy or sell"},
    {0, "offset=closetoday", "OrderInsert.offset: must be open or close"},
    {0, "timestamp_ns=0", "OrderInsert.timestamp_ns: must be > 0"},
    {0, "prise=1", "OrderInsert: unknown field 'prise'"},
    {1, "timestamp_ns=0", "OrderCancel.timestamp_ns: must be > 0"},
    {2, "exchange_order_id=", "TradeExecuted.exchange_order_id: must not be empty"},
    {2, "direction=", "TradeExecuted.direction: must be buy or sell"},
    {3, "frozen=-0.5", "AccountUpdate.frozen: must be finite and >= 0"},
    {3, "balance=inf", "AccountUpdate.balance: must be finite"},
    {4, "ask=-1", "MarketTick.ask: must be finite and >= 0"},
    {5, "key=", "Raw.key: must not be empty"},
    {5, "topic=a/b", "Raw.topic: byte 0x2f at 1 not allowed"},
};

START_TEST(each_validation_error_names_its_field)
{
    for (size_t i = 0; i < N(s_bad_fields); i++) {
        const bad_field_t *bad = &s_bad_fields[i];
        strata_record_t rec;
        strata_error_t err;
        int rc = s_with(&s_samples[bad->sample], bad->pair, &rec, &err);
        ck_assert_msg(rc < 0, "%s accepted", bad->pair);
        ck_assert_msg(strstr(err.msg, bad->message), "%s: got '%s', want '%s'", bad->pair, err.msg,
                      bad->message);
        ck_assert_int_eq(rec.type, 0); /* left cleared */
    }
}
END_TEST

START_TEST(validate_and_encode_refuse_a_bad_struct)
{
    strata_record_t rec;
    strata_error_t err;
    s_build(&s_samples[0], &rec);
    rec.u.order_insert.price = NAN;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(strata_record_encode(&rec, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "OrderInsert.price: must be finite and > 0");
    ck_assert_ptr_null(buf);
    s_build(&s_samples[0], &rec);
    memset(rec.u.order_insert.order_id, 'x', sizeof rec.u.order_insert.order_id);
    ck_assert_int_eq(strata_record_validate(&rec, &err), STRATA_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "OrderInsert.order_id"));
    rec.type = 99;
    ck_assert_int_eq(strata_record_validate(&rec, &err), STRATA_EINVAL);
}
END_TEST

START_TEST(missing_and_repeated_fields_are_named)
{
    strata_record_t rec;
    strata_error_t err;
    /* Drop volume (index 6) from OrderInsert. */
    const char *pairs[8];
    size_t n = 0;
    for (size_t i = 0; i < N(s_order_insert); i++)
        if (i != 6)
            pairs[n++] = s_order_insert[i];
    ck_assert_int_eq(strata_record_from_fields("OrderInsert", pairs, n, &rec, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "OrderInsert: missing field 'volume'");
    const char *twice[] = {"topic=a", "key=k", "data=", "key=j"};
    ck_assert_int_eq(strata_record_from_fields("Raw", twice, 4, &rec, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "Raw.key: given twice");
}
END_TEST

START_TEST(bad_numbers_and_pairs_name_the_field)
{
    static const struct {
        size_t sample;
        const char *pair;
        const char *message;
    } cases[] = {
        {0, "price=abc", "OrderInsert.price: 'abc' is not a number"},
        {0, "price=", "OrderInsert.price: '' is not a number"},
        {0, "price=1.5x", "OrderInsert.price: '1.5x' is not a number"},
        {0, "volume=1e999", "OrderInsert.volume: '1e999' is not a number"},
        {0, "timestamp_ns=-5", "OrderInsert.timestamp_ns: '-5' is not a non-negative integer"},
        {0, "timestamp_ns= 5", "OrderInsert.timestamp_ns: ' 5' is not a non-negative integer"},
        {0, "timestamp_ns=1.5", "OrderInsert.timestamp_ns: '1.5' is not a non-negative integer"},
        {0, "timestamp_ns=18446744073709551616",
         "OrderInsert.timestamp_ns: '18446744073709551616' is not a non-negative integer"},
        {0, "noequals", "OrderInsert: 'noequals' is not field=value"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        strata_record_t rec;
        strata_error_t err;
        ck_assert_int_lt(s_with(&s_samples[cases[i].sample], cases[i].pair, &rec, &err), 0);
        ck_assert_msg(strcmp(err.msg, cases[i].message) == 0, "%s: got '%s'", cases[i].pair,
                      err.msg);
    }
    strata_record_t rec;
    strata_error_t err;
    ck_assert_int_eq(strata_record_from_fields("OrderInsrt", s_order_insert, 8, &rec, &err),
                     STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "unknown record type 'OrderInsrt'");
}
END_TEST

START_TEST(from_fields_fills_typed_values)
{
    strata_record_t rec;
    s_build(&s_samples[0], &rec);
    ck_assert_str_eq(rec.u.order_insert.order_id, "ORD-1");
    ck_assert_int_eq(rec.u.order_insert.direction, STRATA_DIRECTION_BUY);
    ck_assert_int_eq(rec.u.order_insert.offset, STRATA_OFFSET_OPEN);
    ck_assert(rec.u.order_insert.price == 3512.5);
    ck_assert_uint_eq(rec.u.order_insert.timestamp_ns, UINT64_C(1700000000000000001));
    s_build(&s_samples[2], &rec);
    ck_assert_uint_eq(rec.u.trade_executed.timestamp_ns, UINT64_MAX);
    ck_assert_int_eq(rec.u.trade_executed.direction, STRATA_DIRECTION_SELL);
    s_build(&s_samples[5], &rec);
    ck_assert_uint_eq(rec.u.raw.key.len, 3);
    ck_assert_mem_eq(rec.u.raw.key.ptr, "k/1", 3);
    ck_assert_uint_eq(rec.u.raw.data.len, 5);
    strata_record_clear(&rec);
}
END_TEST

/* Packs sample 0 plus one extra "name": value pair, as a newer writer would. */
static void s_pack_with_extra(msgpack_sbuffer *sbuf, const char *extra_name, bool drop_price)
{
    strata_record_t rec;
    s_build(&s_samples[0], &rec);
    const strata_order_insert_t *o = &rec.u.order_insert;
    msgpack_packer pk;
    msgpack_sbuffer_init(sbuf);
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (extra_name ? 11 : 10) - (drop_price ? 1 : 0));
#define KEY(s) (msgpack_pack_str(&pk, strlen(s)), msgpack_pack_str_body(&pk, s, strlen(s)))
    KEY("v");
    msgpack_pack_uint8(&pk, 1);
    if (extra_name) {
        KEY(extra_name);
        /* A nested value: a newer writer may add structured fields. */
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, -3);
        KEY("x");
    }
    KEY("order_id");
    KEY(o->order_id);
    KEY("user_id");
    KEY(o->user_id);
    KEY("instrument_id");
    KEY(o->instrument_id);
    KEY("direction");
    KEY("buy");
    KEY("offset");
    KEY("open");
    if (!drop_price) {
        KEY("price");
        msgpack_pack_int(&pk, 3512); /* an integer where a float is expected */
    }
    KEY("volume");
    msgpack_pack_float(&pk, 3.0f);
    KEY("timestamp_ns");
    msgpack_pack_uint64(&pk, o->timestamp_ns);
    KEY("type");
    KEY("OrderInsert");
#undef KEY
}

START_TEST(unknown_field_is_refused_strict_and_skipped_lenient)
{
    msgpack_sbuffer sbuf;
    strata_record_t rec;
    strata_error_t err;
    s_pack_with_extra(&sbuf, "prise", false);
    ck_assert_int_eq(strata_record_decode(sbuf.data, sbuf.size, false, &rec, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "OrderInsert: unknown field 'prise'");
    ck_assert_int_eq(strata_record_decode(sbuf.data, sbuf.size, true, &rec, &err), 0);
    ck_assert(rec.u.order_insert.price == 3512.0);
    ck_assert(rec.u.order_insert.volume == 3.0);
    msgpack_sbuffer_destroy(&sbuf);

    s_pack_with_extra(&sbuf, NULL, true);
    for (int lenient = 0; lenient <= 1; lenient++) {
        ck_assert_int_eq(strata_record_decode(sbuf.data, sbuf.size, lenient, &rec, &err),
                         STRATA_EINVAL);
        ck_assert_str_eq(err.msg, "OrderInsert: missing field 'price'");
    }
    msgpack_sbuffer_destroy(&sbuf);
}
END_TEST

static void s_decode_map_of(const char *type, unsigned version, int expect, const char *message)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, type, strlen(type));
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_unsigned_int(&pk, version);
    strata_record_t rec;
    strata_error_t err;
    ck_assert_int_eq(strata_record_decode(sbuf.data, sbuf.size, true, &rec, &err), expect);
    ck_assert_str_eq(err.msg, message);
    msgpack_sbuffer_destroy(&sbuf);
}

START_TEST(unknown_type_and_version_are_refused)
{
    s_decode_map_of("OrderAmend", 1, STRATA_EVERSION, "record: unknown record type 'OrderAmend'");
    s_decode_map_of("OrderInsert", 2, STRATA_EVERSION, "record.v: version 2, this reader knows 1");
    s_decode_map_of("OrderCancel", 1, STRATA_EINVAL, "OrderCancel: missing field 'order_id'");
    strata_record_t rec;
    strata_error_t err;
    static const uint8_t not_a_map[] = {0x93, 0x01, 0x02, 0x03};
    ck_assert_int_eq(strata_record_decode(not_a_map, sizeof not_a_map, true, &rec, &err),
                     STRATA_ECORRUPT);
    static const uint8_t trailing[] = {0x80, 0x00};
    ck_assert_int_eq(strata_record_decode(trailing, sizeof trailing, true, &rec, &err),
                     STRATA_ECORRUPT);
    ck_assert_int_eq(strata_record_decode(trailing, 0, true, &rec, &err), STRATA_ECORRUPT);
}
END_TEST

START_TEST(huge_declared_counts_are_refused_before_allocating)
{
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01};
    static const uint8_t huge_array_value[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t huge_str[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const uint8_t deep[64] = {[0 ... 62] = 0x91, [63] = 0x01};
    const struct {
        const uint8_t *p;
        size_t len;
    } cases[] = {{huge_map, sizeof huge_map},
                 {huge_array_value, sizeof huge_array_value},
                 {huge_str, sizeof huge_str},
                 {deep, sizeof deep}};
    for (size_t i = 0; i < N(cases); i++) {
        strata_record_t rec;
        strata_error_t err;
        ck_assert_int_eq(strata_record_decode(cases[i].p, cases[i].len, true, &rec, &err),
                         STRATA_ECORRUPT);
    }
}
END_TEST

START_TEST(keys_and_topics_follow_the_ids)
{
    static const char *const topics[] = {"orders",   "orders", "trades",
                                         "accounts", "market", "audit"};
    static const char *const keys[] = {
        "o/ORD-1", "o/ORD-1", "t/T-9", "a/u42", "m/rb2410/00000000000000000010", "k/1",
    };
    for (size_t i = 0; i < N(s_samples); i++) {
        strata_record_t rec;
        char key[STRATA_RECORD_KEY_MAX];
        s_build(&s_samples[i], &rec);
        ck_assert_str_eq(strata_record_topic(&rec), topics[i]);
        ck_assert_int_eq(strata_record_key(&rec, key, sizeof key), (ssize_t)strlen(keys[i]));
        ck_assert_str_eq(key, keys[i]);
        ck_assert_int_eq(strata_record_key(&rec, key, strlen(keys[i])), STRATA_ETOOBIG);
        strata_record_clear(&rec);
    }
    /* Ticks sort by time within an instrument, across digit-count changes. */
    strata_record_t early, late;
    char early_key[STRATA_RECORD_KEY_MAX], late_key[STRATA_RECORD_KEY_MAX];
    s_with(&s_samples[4], "timestamp_ns=9", &early, NULL);
    s_with(&s_samples[4], "timestamp_ns=10", &late, NULL);
    strata_record_key(&early, early_key, sizeof early_key);
    strata_record_key(&late, late_key, sizeof late_key);
    ck_assert_int_lt(strcmp(early_key, late_key), 0);
    s_with(&s_samples[4], "timestamp_ns=18446744073709551615", &late, NULL);
    ck_assert_int_eq(strata_record_key(&late, late_key, sizeof late_key), 2 + 6 + 1 + 20);
    ck_assert_ptr_null(strata_record_topic(&(strata_record_t){0}));
}
END_TEST

START_TEST(json_output_is_exact_and_escaped)
{
    strata_record_t rec;
    char *json;
    s_build(&s_samples[0], &rec);
    ck_assert_int_eq(strata_record_to_json(&rec, &json), 0);
    ck_assert_str_eq(json, "{\n"
                           "  \"type\": \"OrderInsert\",\n"
                           "  \"v\": 1,\n"
                           "  \"order_id\": \"ORD-1\",\n"
                           "  \"user_id\": \"u42\",\n"
                           "  \"instrument_id\": \"rb2410\",\n"
                           "  \"direction\": \"buy\",\n"
                           "  \"offset\": \"open\",\n"
                           "  \"price\": 3512.5,\n"
                           "  \"volume\": 3,\n"
                           "  \"timestamp_ns\": 1700000000000000001\n"
                           "}\n");
    free(json);

    const char *pairs[] = {"topic=t", "key=a\"b\\c\nd\te\x01", "data=\x7f\xc3\xa9"};
    ck_assert_int_eq(strata_record_from_fields("Raw", pairs, 3, &rec, NULL), 0);
    ck_assert_int_eq(strata_record_to_json(&rec, &json), 0);
    ck_assert_ptr_nonnull(strstr(json, "\"key\": \"a\\\"b\\\\c\\nd\\te\\u0001\""));
    ck_assert_ptr_nonnull(strstr(json, "\"data\": \"\\u007f\\u00c3\\u00a9\""));
    free(json);
    strata_record_clear(&rec);

    s_build(&s_samples[3], &rec);
    rec.u.account_update.balance = 0.1;
    ck_assert_int_eq(strata_record_to_json(&rec, &json), 0);
    ck_assert_ptr_nonnull(strstr(json, "\"balance\": 0.1,"));
    ck_assert_ptr_nonnull(strstr(json, "\"available\": -20,"));
    free(json);
}
END_TEST

/* Random byte flips, truncations, insertions and hostile headers over valid
 * encodings: the decoder must refuse or return a record that validates and
 * re-encodes, never crash or over-allocate (run under ASan). */
START_TEST(decoder_survives_mutated_encodings)
{
    uint64_t state = ts_seed("record_fuzz");
    uint8_t *valid[N(s_samples)];
    size_t valid_len[N(s_samples)];
    for (size_t i = 0; i < N(s_samples); i++) {
        strata_record_t rec;
        s_build(&s_samples[i], &rec);
        ck_assert_int_eq(strata_record_encode(&rec, &valid[i], &valid_len[i], NULL), 0);
        strata_record_clear(&rec);
    }
    static const uint8_t hostile[] = {0xdf, 0xdd, 0xdb, 0xc6, 0xc9, 0xd8, 0xc1, 0xcb, 0xff};
    size_t iterations = ts_soak() ? 1000000 : 50000, accepted = 0;
    uint8_t buf[512];
    for (size_t it = 0; it < iterations; it++) {
        size_t which = ts_rand(&state) % N(s_samples);
        size_t len = valid_len[which];
        ck_assert_uint_le(len, sizeof buf);
        memcpy(buf, valid[which], len);
        unsigned mutations = 1 + ts_rand(&state) % 4;
        for (unsigned m = 0; m < mutations && len > 0; m++) {
            size_t at = ts_rand(&state) % len;
            switch (ts_rand(&state) % 5) {
            case 0:
                buf[at] ^= (uint8_t)(1u << (ts_rand(&state) % 8));
                break;
            case 1:
                buf[at] = (uint8_t)ts_rand(&state);
                break;
            case 2:
                len = at; /* truncate */
                break;
            case 3:
                buf[at] = hostile[ts_rand(&state) % N(hostile)];
                for (size_t k = at + 1; k < len && k < at + 5; k++)
                    buf[k] = 0xff;
                break;
            default:
                if (len < sizeof buf) { /* insert a byte */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (uint8_t)ts_rand(&state);
                    len++;
                }
            }
        }
        strata_record_t rec;
        strata_error_t err;
        bool lenient = ts_rand(&state) & 1;
        /* Copy into an exact-size heap block so ASan sees any overread. */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        int rc = strata_record_decode(exact, len, lenient, &rec, &err);
        free(exact);
        if (rc == 0) {
            uint8_t *again;
            size_t again_len;
            ck_assert_int_eq(strata_record_validate(&rec, &err), 0);
            ck_assert_int_eq(strata_record_encode(&rec, &again, &again_len, &err), 0);
            free(again);
            accepted++;
        } else {
            ck_assert_int_eq(rec.type, 0);
            ck_assert(err.msg[0] != '\0');
        }
        strata_record_clear(&rec);
    }
    /* Flips inside string bodies keep a record valid: the loop must reach
     * the accept path, or it is not testing much. */
    ck_assert_uint_gt(accepted, 0);
    for (size_t i = 0; i < N(s_samples); i++)
        free(valid[i]);
}
END_TEST

/* RECORDS.md: a Raw record must fit the 1 MiB value cap whole, so its data
 * may hold 1048540 - T - K bytes (topic of T <= 31 bytes, key of K <= 255),
 * one less for a 32-byte topic and one less for a key of 256 or more. */
START_TEST(raw_data_cap_is_the_value_cap_less_its_envelope)
{
    static const struct {
        size_t topic_len, key_len, data_max;
    } cases[] = {{1, 1, 1048538}, {31, 255, 1048254}, {32, 256, 1048250}, {5, 1024, 1047510}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            strata_record_t rec = {.type = STRATA_RECORD_RAW};
            memset(rec.u.raw.topic, 't', cases[i].topic_len);
            rec.u.raw.key.len = cases[i].key_len;
            rec.u.raw.key.ptr = malloc(cases[i].key_len);
            memset(rec.u.raw.key.ptr, 'k', cases[i].key_len);
            rec.u.raw.data.len = cases[i].data_max + extra;
            rec.u.raw.data.ptr = calloc(1, rec.u.raw.data.len);
            uint8_t *buf = NULL;
            size_t len = 0;
            strata_error_t err;
            ck_assert_msg(strata_record_encode(&rec, &buf, &len, &err) == 0, "%s", err.msg);
            ck_assert_uint_eq(len, STRATA_PROTO_MAX_VALUE + extra);
            free(buf);
            strata_record_clear(&rec);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, every_type_round_trips_through_msgpack);
    tcase_add_test(tc, encoding_is_a_map_tagged_with_type_and_version);
    tcase_add_test(tc, each_validation_error_names_its_field);
    tcase_add_test(tc, validate_and_encode_refuse_a_bad_struct);
    tcase_add_test(tc, missing_and_repeated_fields_are_named);
    tcase_add_test(tc, bad_numbers_and_pairs_name_the_field);
    tcase_add_test(tc, from_fields_fills_typed_values);
    tcase_add_test(tc, unknown_field_is_refused_strict_and_skipped_lenient);
    tcase_add_test(tc, unknown_type_and_version_are_refused);
    tcase_add_test(tc, huge_declared_counts_are_refused_before_allocating);
    tcase_add_test(tc, keys_and_topics_follow_the_ids);
    tcase_add_test(tc, json_output_is_exact_and_escaped);
    tcase_add_test(tc, decoder_survives_mutated_encodings);
    tcase_add_test(tc, raw_data_cap_is_the_value_cap_less_its_envelope);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
