/* Typed exchange records (proto/RECORDS.md). One table of field descriptors
 * per type drives encode, decode, validation, field=value parsing and JSON, so
 * adding a field is one table row. Used by the writer, stratactl and clients. */
#include "strata/record.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coding.h"

#define MAX_DEPTH 32 /* nesting a lenient reader will walk through */

/* Enum fields are stored as int: record.h's enums have no negative values. */
typedef enum { KIND_STR, KIND_ENUM, KIND_F64, KIND_U64, KIND_BYTES } field_kind_t;

/* What a field's value must satisfy beyond its kind. */
typedef enum { RULE_ANY, RULE_POSITIVE, RULE_NONNEG, RULE_FINITE, RULE_NONEMPTY } field_rule_t;

typedef struct {
    const char *name;
    field_kind_t kind;
    size_t offset; /* into strata_record_t */
    size_t cap;    /* KIND_STR / KIND_BYTES: max bytes */
    field_rule_t rule;
    const char *const *names; /* KIND_ENUM: names[1..n_names] */
    size_t n_names;
} field_t;

typedef struct {
    strata_record_type_t type;
    const char *name;
    const char *topic; /* NULL: the record carries its own (Raw) */
    const field_t *fields;
    size_t n_fields;
} type_desc_t;

static const char *const s_directions[] = {NULL, "buy", "sell"};
static const char *const s_offsets[] = {NULL, "open", "close"};

#define AT(member) offsetof(strata_record_t, u.member)
// clang-format off
#define STR(member, field, cap) {#field, KIND_STR, AT(member.field), cap, RULE_NONEMPTY, NULL, 0}
#define F64(member, field, rule) {#field, KIND_F64, AT(member.field), 0, rule, NULL, 0}
#define TIMESTAMP(member) {"timestamp_ns", KIND_U64, AT(member.timestamp_ns), 0, RULE_POSITIVE, NULL, 0}
#define DIRECTION(member) {"direction", KIND_ENUM, AT(member.direction), 0, RULE_ANY, s_directions, 2}
// clang-format on

_Static_assert(sizeof(strata_direction_t) == sizeof(int) && sizeof(strata_offset_t) == sizeof(int),
               "enum fields are stored as int");

static const field_t s_order_insert[] = {
    STR(order_insert, order_id, STRATA_ORDER_ID_MAX),
    STR(order_insert, user_id, STRATA_USER_ID_MAX),
    STR(order_insert, instrument_id, STRATA_INSTRUMENT_ID_MAX),
    DIRECTION(order_insert),
    {"offset", KIND_ENUM, AT(order_insert.offset), 0, RULE_ANY, s_offsets, 2},
    F64(order_insert, price, RULE_POSITIVE),
    F64(order_insert, volume, RULE_POSITIVE),
    TIMESTAMP(order_insert),
};
static const field_t s_order_cancel[] = {
    STR(order_cancel, order_id, STRATA_ORDER_ID_MAX),
    STR(order_cancel, user_id, STRATA_USER_ID_MAX),
    STR(order_cancel, instrument_id, STRATA_INSTRUMENT_ID_MAX),
    TIMESTAMP(order_cancel),
};
static const field_t s_trade_executed[] = {
    STR(trade_executed, trade_id, STRATA_ORDER_ID_MAX),
    STR(trade_executed, order_id, STRATA_ORDER_ID_MAX),
    STR(trade_executed, exchange_order_id, STRATA_ORDER_ID_MAX),
    STR(trade_executed, instrument_id, STRATA_INSTRUMENT_ID_MAX),
    DIRECTION(trade_executed),
    F64(trade_executed, price, RULE_POSITIVE),
    F64(trade_executed, volume, RULE_POSITIVE),
    TIMESTAMP(trade_executed),
};
/* Balance and available may go negative on losses; frozen and margin may not. */
static const field_t s_account_update[] = {
    STR(account_update, user_id, STRATA_USER_ID_MAX), F64(account_update, balance, RULE_FINITE),
    F64(account_update, available, RULE_FINITE),      F64(account_update, frozen, RULE_NONNEG),
    F64(account_update, margin, RULE_NONNEG),         TIMESTAMP(account_update),
};
/* Zero is legal in a tick: an empty side of the book, no trade yet. */
static const field_t s_market_tick[] = {
    STR(market_tick, instrument_id, STRATA_INSTRUMENT_ID_MAX),
    F64(market_tick, last, RULE_NONNEG),
    F64(market_tick, bid, RULE_NONNEG),
    F64(market_tick, ask, RULE_NONNEG),
    F64(market_tick, volume, RULE_NONNEG),
    TIMESTAMP(market_tick),
};
static const field_t s_raw[] = {
    STR(raw, topic, STRATA_TOPIC_MAX),
    {"key", KIND_BYTES, AT(raw.key), STRATA_RAW_KEY_MAX, RULE_NONEMPTY, NULL, 0},
    {"data", KIND_BYTES, AT(raw.data), STRATA_RAW_DATA_MAX, RULE_ANY, NULL, 0},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const type_desc_t s_types[] = {
    {STRATA_RECORD_ORDER_INSERT, "OrderInsert", "orders", s_order_insert, N(s_order_insert)},
    {STRATA_RECORD_ORDER_CANCEL, "OrderCancel", "orders", s_order_cancel, N(s_order_cancel)},
    {STRATA_RECORD_TRADE_EXECUTED, "TradeExecuted", "trades", s_trade_executed,
     N(s_trade_executed)},
    {STRATA_RECORD_ACCOUNT_UPDATE, "AccountUpdate", "accounts", s_account_update,
     N(s_account_update)},
    {STRATA_RECORD_MARKET_TICK, "MarketTick", "market", s_market_tick, N(s_market_tick)},
    {STRATA_RECORD_RAW, "Raw", NULL, s_raw, N(s_raw)},
};

static const type_desc_t *s_desc(strata_record_type_t type)
{
    for (size_t i = 0; i < N(s_types); i++)
        if (s_types[i].type == type)
            return &s_types[i];
    return NULL;
}

static const type_desc_t *s_desc_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < N(s_types); i++)
        if (strlen(s_types[i].name) == len && memcmp(s_types[i].name, name, len) == 0)
            return &s_types[i];
    return NULL;
}

static const field_t *s_field_by_name(const type_desc_t *desc, const char *name, size_t len)
{
    for (size_t i = 0; i < desc->n_fields; i++)
        if (strlen(desc->fields[i].name) == len && memcmp(desc->fields[i].name, name, len) == 0)
            return &desc->fields[i];
    return NULL;
}

/* A name from untrusted input, made safe to put in an error message. */
static const char *s_printable(const char *name, size_t len, char *out, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    out[n] = '\0';
    return out;
}

const char *strata_record_type_name(strata_record_type_t type)
{
    const type_desc_t *desc = s_desc(type);
    return desc ? desc->name : NULL;
}

strata_record_type_t strata_record_type_from_name(const char *name)
{
    const type_desc_t *desc = name ? s_desc_by_name(name, strlen(name)) : NULL;
    return desc ? desc->type : 0;
}

void strata_record_clear(strata_record_t *rec)
{
    if (!rec)
        return;
    if (rec->type == STRATA_RECORD_RAW) {
        free(rec->u.raw.key.ptr);
        free(rec->u.raw.data.ptr);
    }
    memset(rec, 0, sizeof *rec);
}

/* ---- storing one value (shared by decode and from_fields) ---- */

#define FIELD_PTR(rec, f) ((char *)(rec) + (f)->offset)

static int s_store_str(const type_desc_t *desc, const field_t *f, strata_record_t *rec,
                       const char *value, size_t len, strata_error_t *err)
{
    if (f->kind == KIND_ENUM) {
        for (size_t i = 1; i <= f->n_names; i++)
            if (strlen(f->names[i]) == len && memcmp(f->names[i], value, len) == 0) {
                int index = (int)i;
                memcpy(FIELD_PTR(rec, f), &index, sizeof index);
                return 0;
            }
        return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be %s or %s", desc->name, f->name,
                                f->names[1], f->names[2]);
    }
    if (len > f->cap)
        return strata_error_set(err, STRATA_ETOOBIG, "%s.%s: %zu bytes, max %zu", desc->name,
                                f->name, len, f->cap);
    if (f->kind == KIND_BYTES) {
        strata_owned_bytes_t *bytes = (strata_owned_bytes_t *)FIELD_PTR(rec, f);
        uint8_t *copy = dup_bytes(value, len);
        if (!copy)
            return strata_error_set(err, STRATA_ENOMEM, "%s.%s: out of memory", desc->name,
                                    f->name);
        free(bytes->ptr);
        bytes->ptr = copy;
        bytes->len = len;
        return 0;
    }
    if (memchr(value, '\0', len))
        return strata_error_set(err, STRATA_EINVAL, "%s.%s: contains a NUL byte", desc->name,
                                f->name);
    memcpy(FIELD_PTR(rec, f), value, len);
    FIELD_PTR(rec, f)[len] = '\0';
    return 0;
}

static void s_store_f64(const field_t *f, strata_record_t *rec, double value)
{
    memcpy(FIELD_PTR(rec, f), &value, sizeof value);
}

static void s_store_u64(const field_t *f, strata_record_t *rec, uint64_t value)
{
    memcpy(FIELD_PTR(rec, f), &value, sizeof value);
}

/* ---- validation ---- */

/* Ids go into keys ("m/<instrument_id>/...") so '/' would make keys
 * ambiguous; spaces and control bytes would make them unprintable. */
static bool s_id_byte_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '/';
}

static int s_validate_field(const type_desc_t *desc, const field_t *f, const strata_record_t *rec,
                            strata_error_t *err)
{
    const char *p = (const char *)rec + f->offset;
    switch (f->kind) {
    case KIND_STR: {
        size_t len = strnlen(p, f->cap + 1);
        if (len > f->cap)
            return strata_error_set(err, STRATA_ETOOBIG, "%s.%s: not terminated within %zu bytes",
                                    desc->name, f->name, f->cap);
        if (len == 0)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must not be empty", desc->name,
                                    f->name);
        for (size_t i = 0; i < len; i++)
            if (!s_id_byte_ok((unsigned char)p[i]))
                return strata_error_set(err, STRATA_EINVAL,
                                        "%s.%s: byte 0x%02x at %zu not allowed (printable ASCII "
                                        "except space and '/')",
                                        desc->name, f->name, (unsigned char)p[i], i);
        return 0;
    }
    case KIND_ENUM: {
        int value;
        memcpy(&value, p, sizeof value);
        if (value < 1 || (size_t)value > f->n_names)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be %s or %s", desc->name,
                                    f->name, f->names[1], f->names[2]);
        return 0;
    }
    case KIND_F64: {
        double value;
        memcpy(&value, p, sizeof value);
        if (!isfinite(value) || (f->rule == RULE_POSITIVE && !(value > 0)) ||
            (f->rule == RULE_NONNEG && !(value >= 0)))
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be finite%s", desc->name,
                                    f->name,
                                    f->rule == RULE_POSITIVE ? " and > 0"
                                    : f->rule == RULE_NONNEG ? " and >= 0"
                                                             : "");
        return 0;
    }
    case KIND_U64: {
        uint64_t value;
        memcpy(&value, p, sizeof value);
        if (f->rule == RULE_POSITIVE && value == 0)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be > 0", desc->name, f->name);
        return 0;
    }
    case KIND_BYTES: {
        const strata_owned_bytes_t *bytes = (const strata_owned_bytes_t *)p;
        if (bytes->len > f->cap)
            return strata_error_set(err, STRATA_ETOOBIG, "%s.%s: %zu bytes, max %zu", desc->name,
                                    f->name, bytes->len, f->cap);
        if (bytes->len && !bytes->ptr)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: %zu bytes but no buffer",
                                    desc->name, f->name, bytes->len);
        if (f->rule == RULE_NONEMPTY && bytes->len == 0)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must not be empty", desc->name,
                                    f->name);
        return 0;
    }
    }
    return strata_error_set(err, STRATA_EINVAL, "%s.%s: bad field kind", desc->name, f->name);
}

int strata_record_validate(const strata_record_t *rec, strata_error_t *err)
{
    const type_desc_t *desc = rec ? s_desc(rec->type) : NULL;
    if (!desc)
        return strata_error_set(err, STRATA_EINVAL, "record: unknown type %d",
                                rec ? (int)rec->type : -1);
    for (size_t i = 0; i < desc->n_fields; i++) {
        int rc = s_validate_field(desc, &desc->fields[i], rec, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- encode ---- */

static void s_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

int strata_record_encode(const strata_record_t *rec, uint8_t **buf, size_t *len,
                         strata_error_t *err)
{
    int rc = strata_record_validate(rec, err);
    if (rc)
        return rc;
    const type_desc_t *desc = s_desc(rec->type);
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + desc->n_fields);
    s_pack_cstr(&pk, "type");
    s_pack_cstr(&pk, desc->name);
    s_pack_cstr(&pk, "v");
    msgpack_pack_uint32(&pk, STRATA_RECORD_VERSION);
    for (size_t i = 0; i < desc->n_fields; i++) {
        const field_t *f = &desc->fields[i];
        const char *p = (const char *)rec + f->offset;
        s_pack_cstr(&pk, f->name);
        if (f->kind == KIND_STR) {
            s_pack_cstr(&pk, p);
        } else if (f->kind == KIND_ENUM) {
            int value;
            memcpy(&value, p, sizeof value);
            s_pack_cstr(&pk, f->names[value]);
        } else if (f->kind == KIND_F64) {
            double value;
            memcpy(&value, p, sizeof value);
            msgpack_pack_double(&pk, value);
        } else if (f->kind == KIND_U64) {
            uint64_t value;
            memcpy(&value, p, sizeof value);
            msgpack_pack_uint64(&pk, value);
        } else {
            const strata_owned_bytes_t *bytes = (const strata_owned_bytes_t *)p;
            msgpack_pack_bin(&pk, bytes->len);
            msgpack_pack_bin_body(&pk, bytes->ptr, bytes->len);
        }
    }
    /* sbuffer's write callback returns -1 only when realloc fails. */
    if (!sbuf.data) {
        msgpack_sbuffer_destroy(&sbuf);
        return strata_error_set(err, STRATA_ENOMEM, "%s: out of memory encoding", desc->name);
    }
    *len = sbuf.size;
    *buf = (uint8_t *)msgpack_sbuffer_release(&sbuf);
    return 0;
}

/* ---- decode ---- */

static bool s_read_be(const uint8_t *p, size_t len, size_t *pos, size_t n, uint64_t *out)
{
    if (n > len - *pos)
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = value << 8 | p[*pos + i];
    *pos += n;
    *out = value;
    return true;
}

/* Walks one msgpack object checking every length against the bytes left.
 * msgpack-c allocates a container's element array from its declared count
 * before reading the elements, so a 5-byte "map32 of 4 billion" would ask
 * for gigabytes; every element takes at least one byte, so bounding counts by
 * the remaining input bounds what msgpack-c will allocate. */
static bool s_check_object(const uint8_t *p, size_t len, size_t *pos, int depth)
{
    if (depth > MAX_DEPTH || *pos >= len)
        return false;
    uint8_t b = p[(*pos)++];
    uint64_t payload = 0, items = 0, n = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return true; /* fixint, nil, bool */
    if ((b & 0xf0) == 0x80)
        items = 2u * (b & 0x0f);
    else if ((b & 0xf0) == 0x90)
        items = b & 0x0f;
    else if ((b & 0xe0) == 0xa0)
        payload = b & 0x1f;
    else if (b == 0xc4 || b == 0xd9 || b == 0xc7) /* bin8, str8, ext8 */
        payload = s_read_be(p, len, pos, 1, &n) ? n + (b == 0xc7) : UINT64_MAX;
    else if (b == 0xc5 || b == 0xda || b == 0xc8)
        payload = s_read_be(p, len, pos, 2, &n) ? n + (b == 0xc8) : UINT64_MAX;
    else if (b == 0xc6 || b == 0xdb || b == 0xc9)
        payload = s_read_be(p, len, pos, 4, &n) ? n + (b == 0xc9) : UINT64_MAX;
    else if (b == 0xca || b == 0xce || b == 0xd2) /* float32, uint32, int32 */
        payload = 4;
    else if (b == 0xcb || b == 0xcf || b == 0xd3)
        payload = 8;
    else if (b == 0xcc || b == 0xd0)
        payload = 1;
    else if (b == 0xcd || b == 0xd1)
        payload = 2;
    else if (b >= 0xd4 && b <= 0xd8) /* fixext 1..16, plus the type byte */
        payload = 1 + (1u << (b - 0xd4));
    else if (b == 0xdc || b == 0xdd)
        items = s_read_be(p, len, pos, b == 0xdc ? 2 : 4, &n) ? n : UINT64_MAX;
    else if (b == 0xde || b == 0xdf)
        items = s_read_be(p, len, pos, b == 0xde ? 2 : 4, &n) ? 2 * n : UINT64_MAX;
    else
        return false; /* 0xc1 is never used */
    if (payload > len - *pos || items > len - *pos)
        return false;
    *pos += payload;
    for (uint64_t i = 0; i < items; i++)
        if (!s_check_object(p, len, pos, depth + 1))
            return false;
    return true;
}

static int s_store_object(const type_desc_t *desc, const field_t *f, strata_record_t *rec,
                          const msgpack_object *o, strata_error_t *err)
{
    switch (f->kind) {
    case KIND_STR:
    case KIND_ENUM:
        if (o->type != MSGPACK_OBJECT_STR)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be a string", desc->name,
                                    f->name);
        return s_store_str(desc, f, rec, o->via.str.ptr, o->via.str.size, err);
    case KIND_BYTES:
        /* Some languages' msgpack libraries only write str: take both. */
        if (o->type == MSGPACK_OBJECT_BIN)
            return s_store_str(desc, f, rec, o->via.bin.ptr, o->via.bin.size, err);
        if (o->type == MSGPACK_OBJECT_STR)
            return s_store_str(desc, f, rec, o->via.str.ptr, o->via.str.size, err);
        return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be bytes", desc->name, f->name);
    case KIND_F64:
        /* A writer in a dynamic language may send 100.0 as the integer 100. */
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
            s_store_f64(f, rec, o->via.f64);
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            s_store_f64(f, rec, (double)o->via.u64);
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            s_store_f64(f, rec, (double)o->via.i64);
        else
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be a number", desc->name,
                                    f->name);
        return 0;
    case KIND_U64:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: must be a non-negative integer",
                                    desc->name, f->name);
        s_store_u64(f, rec, o->via.u64);
        return 0;
    }
    return strata_error_set(err, STRATA_EINVAL, "%s.%s: bad field kind", desc->name, f->name);
}

static bool s_key_is(const msgpack_object *key, const char *name)
{
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen(name) &&
           memcmp(key->via.str.ptr, name, key->via.str.size) == 0;
}

static int s_check_missing(const type_desc_t *desc, uint64_t seen, strata_error_t *err)
{
    for (size_t i = 0; i < desc->n_fields; i++)
        if (!(seen & (UINT64_C(1) << i)))
            return strata_error_set(err, STRATA_EINVAL, "%s: missing field '%s'", desc->name,
                                    desc->fields[i].name);
    return 0;
}

/* Marks field f seen, refusing a second value for it. */
static int s_mark_seen(const type_desc_t *desc, const field_t *f, uint64_t *seen,
                       strata_error_t *err)
{
    uint64_t bit = UINT64_C(1) << (f - desc->fields);
    if (*seen & bit)
        return strata_error_set(err, STRATA_EINVAL, "%s.%s: given twice", desc->name, f->name);
    *seen |= bit;
    return 0;
}

static int s_decode_map(const msgpack_object *map, bool lenient, strata_record_t *rec,
                        strata_error_t *err)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return strata_error_set(err, STRATA_ECORRUPT, "record: not a msgpack map");
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t size = map->via.map.size;
    const type_desc_t *desc = NULL;
    bool have_version = false;
    char shown[48];
    for (uint32_t i = 0; i < size; i++) {
        if (s_key_is(&kv[i].key, "type")) {
            if (kv[i].val.type != MSGPACK_OBJECT_STR)
                return strata_error_set(err, STRATA_EINVAL, "record.type: must be a string");
            desc = s_desc_by_name(kv[i].val.via.str.ptr, kv[i].val.via.str.size);
            if (!desc)
                return strata_error_set(err, STRATA_EVERSION, "record: unknown record type '%s'",
                                        s_printable(kv[i].val.via.str.ptr, kv[i].val.via.str.size,
                                                    shown, sizeof shown));
        } else if (s_key_is(&kv[i].key, "v")) {
            if (kv[i].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return strata_error_set(err, STRATA_EINVAL, "record.v: must be an integer");
            if (kv[i].val.via.u64 != STRATA_RECORD_VERSION)
                return strata_error_set(
                    err, STRATA_EVERSION, "record.v: version %llu, this reader knows %d",
                    (unsigned long long)kv[i].val.via.u64, STRATA_RECORD_VERSION);
            have_version = true;
        }
    }
    if (!desc)
        return strata_error_set(err, STRATA_EINVAL, "record: missing field 'type'");
    if (!have_version)
        return strata_error_set(err, STRATA_EINVAL, "%s: missing field 'v'", desc->name);
    rec->type = desc->type;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < size; i++) {
        const msgpack_object *key = &kv[i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return strata_error_set(err, STRATA_ECORRUPT, "%s: field name is not a string",
                                    desc->name);
        if (s_key_is(key, "type") || s_key_is(key, "v"))
            continue;
        const field_t *f = s_field_by_name(desc, key->via.str.ptr, key->via.str.size);
        if (!f) {
            if (lenient)
                continue;
            return strata_error_set(
                err, STRATA_EINVAL, "%s: unknown field '%s'", desc->name,
                s_printable(key->via.str.ptr, key->via.str.size, shown, sizeof shown));
        }
        int rc = s_mark_seen(desc, f, &seen, err);
        if (!rc)
            rc = s_store_object(desc, f, rec, &kv[i].val, err);
        if (rc)
            return rc;
    }
    int rc = s_check_missing(desc, seen, err);
    return rc ? rc : strata_record_validate(rec, err);
}

int strata_record_decode(const void *buf, size_t len, bool lenient, strata_record_t *rec,
                         strata_error_t *err)
{
    memset(rec, 0, sizeof *rec);
    size_t pos = 0;
    if (!buf || !s_check_object(buf, len, &pos, 0))
        return strata_error_set(err, STRATA_ECORRUPT, "record: malformed msgpack (%zu bytes)", len);
    if (pos != len)
        return strata_error_set(err, STRATA_ECORRUPT, "record: %zu trailing bytes after the map",
                                len - pos);
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    size_t off = 0;
    int rc;
    if (msgpack_unpack_next(&result, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
        rc = strata_error_set(err, STRATA_ECORRUPT, "record: msgpack-c refused %zu bytes", len);
    else
        rc = s_decode_map(&result.data, lenient, rec, err);
    msgpack_unpacked_destroy(&result);
    if (rc)
        strata_record_clear(rec);
    return rc;
}

/* ---- keys and topics ---- */

const char *strata_record_topic(const strata_record_t *rec)
{
    const type_desc_t *desc = rec ? s_desc(rec->type) : NULL;
    if (!desc)
        return NULL;
    return desc->topic ? desc->topic : rec->u.raw.topic;
}

ssize_t strata_record_key(const strata_record_t *rec, char *buf, size_t cap)
{
    if (strata_record_validate(rec, NULL))
        return STRATA_EINVAL;
    int n;
    switch (rec->type) {
    case STRATA_RECORD_ORDER_INSERT:
        n = snprintf(buf, cap, "o/%s", rec->u.order_insert.order_id);
        break;
    case STRATA_RECORD_ORDER_CANCEL:
        n = snprintf(buf, cap, "o/%s", rec->u.order_cancel.order_id);
        break;
    case STRATA_RECORD_TRADE_EXECUTED:
        n = snprintf(buf, cap, "t/%s", rec->u.trade_executed.trade_id);
        break;
    case STRATA_RECORD_ACCOUNT_UPDATE:
        n = snprintf(buf, cap, "a/%s", rec->u.account_update.user_id);
        break;
    case STRATA_RECORD_MARKET_TICK:
        /* 20 digits hold any u64, so byte order is time order per instrument. */
        n = snprintf(buf, cap, "m/%s/%020llu", rec->u.market_tick.instrument_id,
                     (unsigned long long)rec->u.market_tick.timestamp_ns);
        break;
    default: {
        const strata_owned_bytes_t *key = &rec->u.raw.key;
        if (key->len >= cap)
            return STRATA_ETOOBIG;
        memcpy(buf, key->ptr, key->len);
        buf[key->len] = '\0';
        return (ssize_t)key->len;
    }
    }
    if (n < 0 || (size_t)n >= cap)
        return STRATA_ETOOBIG;
    return n;
}

/* ---- field=value ---- */

static int s_parse_text(const type_desc_t *desc, const field_t *f, strata_record_t *rec,
                        const char *value, strata_error_t *err)
{
    char *end = NULL;
    if (f->kind == KIND_F64) {
        errno = 0;
        double d = strtod(value, &end);
        if (end == value || *end != '\0' || errno == ERANGE)
            return strata_error_set(err, STRATA_EINVAL, "%s.%s: '%.40s' is not a number",
                                    desc->name, f->name, value);
        s_store_f64(f, rec, d);
        return 0;
    }
    if (f->kind == KIND_U64) {
        /* strtoull would accept " 5" and wrap "-5"; insist on plain digits. */
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno == ERANGE)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s.%s: '%.40s' is not a non-negative integer", desc->name,
                                    f->name, value);
        s_store_u64(f, rec, (uint64_t)u);
        return 0;
    }
    return s_store_str(desc, f, rec, value, strlen(value), err);
}

static int s_from_fields(const type_desc_t *desc, const char *const *pairs, size_t n,
                         strata_record_t *rec, strata_error_t *err)
{
    uint64_t seen = 0;
    char shown[48];
    for (size_t i = 0; i < n; i++) {
        const char *eq = pairs[i] ? strchr(pairs[i], '=') : NULL;
        if (!eq)
            return strata_error_set(
                err, STRATA_EINVAL, "%s: '%s' is not field=value", desc->name,
                pairs[i] ? s_printable(pairs[i], strlen(pairs[i]), shown, sizeof shown) : "(null)");
        size_t name_len = (size_t)(eq - pairs[i]);
        const field_t *f = s_field_by_name(desc, pairs[i], name_len);
        if (!f)
            return strata_error_set(err, STRATA_EINVAL, "%s: unknown field '%s'", desc->name,
                                    s_printable(pairs[i], name_len, shown, sizeof shown));
        int rc = s_mark_seen(desc, f, &seen, err);
        if (!rc)
            rc = s_parse_text(desc, f, rec, eq + 1, err);
        if (rc)
            return rc;
    }
    int rc = s_check_missing(desc, seen, err);
    return rc ? rc : strata_record_validate(rec, err);
}

int strata_record_from_fields(const char *type_name, const char *const *pairs, size_t n,
                              strata_record_t *rec, strata_error_t *err)
{
    memset(rec, 0, sizeof *rec);
    const type_desc_t *desc = type_name ? s_desc_by_name(type_name, strlen(type_name)) : NULL;
    if (!desc)
        return strata_error_set(err, STRATA_EINVAL, "unknown record type '%s'",
                                type_name ? type_name : "(null)");
    rec->type = desc->type;
    int rc = s_from_fields(desc, pairs, n, rec, err);
    if (rc)
        strata_record_clear(rec);
    return rc;
}

/* ---- JSON ---- */

/* Escapes per RFC 8259. bytes_mode maps bytes >= 0x80 to \u00XX (one code
 * point per byte) instead of passing them through as UTF-8. */
static void s_json_string(FILE *out, const char *s, size_t len, bool bytes_mode)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f || (bytes_mode && c >= 0x80))
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* Shortest of %.15g / %.17g that reads back exactly; JSON has no NaN or Inf. */
static void s_json_double(FILE *out, double d)
{
    if (!isfinite(d)) {
        fputs("null", out);
        return;
    }
    char text[40];
    snprintf(text, sizeof text, "%.15g", d);
    if (strtod(text, NULL) != d)
        snprintf(text, sizeof text, "%.17g", d);
    fputs(text, out);
}

int strata_record_to_json(const strata_record_t *rec, char **json)
{
    const type_desc_t *desc = rec ? s_desc(rec->type) : NULL;
    if (!desc)
        return STRATA_EINVAL;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return STRATA_ENOMEM;
    fprintf(out, "{\n  \"type\": \"%s\",\n  \"v\": %d", desc->name, STRATA_RECORD_VERSION);
    for (size_t i = 0; i < desc->n_fields; i++) {
        const field_t *f = &desc->fields[i];
        const char *p = (const char *)rec + f->offset;
        fprintf(out, ",\n  \"%s\": ", f->name);
        if (f->kind == KIND_STR) {
            s_json_string(out, p, strnlen(p, f->cap + 1), false);
        } else if (f->kind == KIND_ENUM) {
            int value;
            memcpy(&value, p, sizeof value);
            if (value >= 1 && (size_t)value <= f->n_names)
                s_json_string(out, f->names[value], strlen(f->names[value]), false);
            else
                fputs("null", out);
        } else if (f->kind == KIND_F64) {
            double value;
            memcpy(&value, p, sizeof value);
            s_json_double(out, value);
        } else if (f->kind == KIND_U64) {
            uint64_t value;
            memcpy(&value, p, sizeof value);
            fprintf(out, "%llu", (unsigned long long)value);
        } else {
            const strata_owned_bytes_t *bytes = (const strata_owned_bytes_t *)p;
            s_json_string(out, (const char *)bytes->ptr, bytes->ptr ? bytes->len : 0, true);
        }
    }
    fputs("\n}\n", out);
    if (fclose(out) != 0) {
        free(text);
        return STRATA_ENOMEM;
    }
    *json = text;
    return 0;
}
