/* See codec_fast.h. The protobuf wire format: a field is a varint key
 * (number << 3 | wire type) and a varint (type 0) or a varint length and
 * that many bytes (type 2). */
#include "codec_fast.h"

#include <stdlib.h>
#include <string.h>

#define WIRE_VARINT 0u
#define WIRE_BYTES  2u

typedef struct {
    const uint8_t *p, *end;
} reader_t;

/* At most ten bytes, the tenth holding only the top bit; anything longer
 * or past the end is for protobuf-c to judge. */
static bool read_varint(reader_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return false;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool read_bytes(reader_t *r, strata_bytes_t *out)
{
    uint64_t n;
    if (!read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    /* Into the buffer even when empty: NULL + 0 is undefined, and every
     * reader below takes data + len. */
    *out = (strata_bytes_t){r->p, (size_t)n};
    r->p += n;
    return true;
}

/* The top level's varint fields, as bits by number: a Request's version,
 * request_id, durability, replication, min_seq and session; a Reply's
 * version, request_id and applied_seq. The others read here are bytes. */
#define REQUEST_VARINTS 0x7eu
#define REPLY_VARINTS   0x26u

/* The next top-level field, each at most once (seen): a varint field's
 * value in *v; a bytes field is left for the caller to read. */
static bool next_field(reader_t *r, uint32_t *seen, uint32_t varints, uint64_t *field, uint64_t *v)
{
    uint64_t tag;
    if (!read_varint(r, &tag))
        return false;
    *field = tag >> 3;
    uint64_t wire = tag & 7;
    if (*field >= 32 || (*seen & (1u << *field)))
        return false;
    *seen |= 1u << *field;
    if (varints & (1u << *field))
        return wire == WIRE_VARINT && read_varint(r, v);
    return wire == WIRE_BYTES;
}

/* A body: key = 1 and, for a put, value = 2, each at most once. */
static bool read_body(reader_t *r, bool has_value, strata_bytes_t *key, strata_bytes_t *value)
{
    strata_bytes_t body;
    if (!read_bytes(r, &body))
        return false;
    reader_t b = {body.data, body.data + body.len};
    unsigned seen = 0;
    while (b.p < b.end) {
        uint64_t tag;
        if (!read_varint(&b, &tag) || (tag & 7) != WIRE_BYTES)
            return false;
        uint64_t field = tag >> 3;
        if ((field != 1 && !(field == 2 && has_value)) || (seen & (1u << field)))
            return false;
        seen |= 1u << field;
        if (!read_bytes(&b, field == 1 ? key : value))
            return false;
    }
    return true;
}

bool codec_fast_request(const uint8_t *buf, size_t len, strata_request_t *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len > STRATA_PROTO_MAX_MESSAGE)
        return false;
    reader_t r = {buf, buf + len};
    uint32_t seen = 0;
    while (r.p < r.end) {
        uint64_t field, v = 0;
        if (!next_field(&r, &seen, REQUEST_VARINTS, &field, &v))
            goto slow;
        switch (field) {
        case 1:
            if (v != STRATA_PROTO_VERSION)
                goto slow;
            out->version = (uint32_t)v;
            break;
        case 2:
            out->request_id = v;
            break;
        case 3:
            if (v > STRATA_DURABILITY_ASYNC)
                goto slow;
            out->durability = (strata_durability_t)v;
            break;
        case 4:
            if (v > STRATA_REPLICATION_ASYNC)
                goto slow;
            out->replication = (strata_replication_t)v;
            break;
        case 5:
            out->min_seq = v;
            break;
        case 6:
            out->session = v;
            break;
        case 10:
        case 11:
        case 13:
            if (out->op != STRATA_OP_NONE)
                goto slow; /* a second body: protobuf-c keeps the last */
            out->op = field == 10 ? STRATA_OP_PUT : field == 11 ? STRATA_OP_DELETE : STRATA_OP_GET;
            if (!read_body(&r, field == 10, &out->key, &out->value))
                goto slow;
            break;
        default:
            goto slow;
        }
    }
    if (out->version != STRATA_PROTO_VERSION || out->op == STRATA_OP_NONE ||
        out->key.len > STRATA_PROTO_MAX_KEY || out->value.len > STRATA_PROTO_MAX_VALUE)
        goto slow;
    return true;
slow:
    memset(out, 0, sizeof *out);
    return false;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A varint field, left out at 0 as proto3 does. */
static size_t varint_field_size(uint64_t v)
{
    return v ? 1 + varint_size(v) : 0;
}

static uint8_t *put_varint_field(uint8_t *p, unsigned field, uint64_t v)
{
    if (!v)
        return p;
    *p++ = (uint8_t)(field << 3 | WIRE_VARINT);
    return put_varint(p, v);
}

bool codec_fast_reply(const strata_reply_t *rep, uint8_t **buf, size_t *len, int *rc,
                      strata_error_t *err)
{
    bool write = rep->op == STRATA_OP_PUT || rep->op == STRATA_OP_DELETE ||
                 rep->op == STRATA_OP_BATCH || rep->op == STRATA_OP_RECORD;
    if (rep->status != 0 || (rep->message && rep->message[0]) ||
        (rep->version && rep->version != STRATA_PROTO_VERSION) ||
        !(write || (rep->op == STRATA_OP_GET && rep->n_values == 1)))
        return false;
    /* The body: WriteReply {seq = 1}, or GetReply {value = 1: Value {found =
     * 1, value = 2}}. */
    const strata_value_t *value = rep->op == STRATA_OP_GET ? &rep->values[0] : NULL;
    size_t value_size = 0, body_size;
    if (value) {
        value_size = (value->found ? 2 : 0) +
                     (value->value.len ? 1 + varint_size(value->value.len) + value->value.len : 0);
        body_size = 1 + varint_size(value_size) + value_size;
    } else {
        body_size = varint_field_size(rep->seq);
    }
    uint64_t body_tag = (uint64_t)(rep->op + 9) << 3 | WIRE_BYTES;
    size_t size = 2 + varint_field_size(rep->request_id) + varint_field_size(rep->applied_seq) +
                  varint_size(body_tag) + varint_size(body_size) + body_size;
    if (size > STRATA_PROTO_MAX_MESSAGE) {
        *rc = strata_error_set(err, STRATA_ETOOBIG, "reply: %zu bytes, cap %u", size,
                               STRATA_PROTO_MAX_MESSAGE);
        return true;
    }
    uint8_t *out = malloc(size), *p = out;
    if (!out) {
        *rc = strata_error_set(err, STRATA_ENOMEM, "reply: %zu bytes", size);
        return true;
    }
    p = put_varint_field(p, 1, STRATA_PROTO_VERSION);
    p = put_varint_field(p, 2, rep->request_id);
    p = put_varint_field(p, 5, rep->applied_seq);
    p = put_varint(p, body_tag);
    p = put_varint(p, body_size);
    if (value) {
        *p++ = 1 << 3 | WIRE_BYTES;
        p = put_varint(p, value_size);
        p = put_varint_field(p, 1, value->found);
        if (value->value.len) {
            *p++ = 2 << 3 | WIRE_BYTES;
            p = put_varint(p, value->value.len);
            memcpy(p, value->value.data, value->value.len);
            p += value->value.len;
        }
    } else {
        p = put_varint_field(p, 1, rep->seq);
    }
    *buf = out;
    *len = (size_t)(p - out);
    *rc = 0;
    return true;
}

const char codec_fast_marker = 0;

bool codec_fast_reply_decode(const uint8_t *buf, size_t len, strata_reply_t *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len > STRATA_PROTO_MAX_MESSAGE)
        return false;
    reader_t r = {buf, buf + len};
    uint32_t seen = 0;
    strata_value_t value = {0};
    bool has_value = false;
    while (r.p < r.end) {
        uint64_t field, v = 0;
        if (!next_field(&r, &seen, REPLY_VARINTS, &field, &v))
            goto slow;
        switch (field) {
        case 1:
            if (v != STRATA_PROTO_VERSION)
                goto slow;
            out->version = (uint32_t)v;
            break;
        case 2:
            out->request_id = v;
            break;
        case 5:
            out->applied_seq = v;
            break;
        case 10:
        case 11:
        case 12:
        case 19:
        case 13: {
            if (out->op != STRATA_OP_NONE)
                goto slow;
            out->op = (strata_op_t)(field - 9);
            strata_bytes_t body;
            if (!read_bytes(&r, &body))
                goto slow;
            reader_t b = {body.data, body.data + body.len};
            unsigned body_seen = 0;
            while (b.p < b.end) {
                uint64_t btag;
                if (!read_varint(&b, &btag) || (btag >> 3) != 1 || (body_seen & 1))
                    goto slow;
                body_seen |= 1;
                if (field != 13) { /* WriteReply {seq = 1} */
                    if ((btag & 7) != WIRE_VARINT || !read_varint(&b, &out->seq))
                        goto slow;
                    continue;
                }
                /* GetReply {value = 1: Value {found = 1, value = 2}} */
                strata_bytes_t vb;
                if ((btag & 7) != WIRE_BYTES || !read_bytes(&b, &vb))
                    goto slow;
                reader_t vr = {vb.data, vb.data + vb.len};
                unsigned value_seen = 0;
                while (vr.p < vr.end) {
                    uint64_t vtag, found;
                    if (!read_varint(&vr, &vtag))
                        goto slow;
                    uint64_t vfield = vtag >> 3;
                    if ((vfield != 1 && vfield != 2) || (value_seen & (1u << vfield)))
                        goto slow;
                    value_seen |= 1u << vfield;
                    if (vfield == 1) {
                        if ((vtag & 7) != WIRE_VARINT || !read_varint(&vr, &found) || found > 1)
                            goto slow;
                        value.found = found == 1;
                    } else if ((vtag & 7) != WIRE_BYTES || !read_bytes(&vr, &value.value)) {
                        goto slow;
                    }
                }
                has_value = true;
            }
            if (field == 13 && !has_value)
                goto slow;
            break;
        }
        default:
            goto slow;
        }
    }
    if (out->version != STRATA_PROTO_VERSION || out->op == STRATA_OP_NONE ||
        value.value.len > STRATA_PROTO_MAX_VALUE)
        goto slow;
    out->message = "";
    if (out->op == STRATA_OP_GET) {
        strata_value_t *copy = malloc(sizeof *copy + value.value.len);
        if (!copy)
            goto slow;
        uint8_t *bytes = (uint8_t *)(copy + 1);
        if (value.value.len)
            memcpy(bytes, value.value.data, value.value.len);
        *copy = (strata_value_t){.found = value.found, .value = {bytes, value.value.len}};
        out->values = copy;
        out->n_values = 1;
    }
    out->decoded_ = (void *)&codec_fast_marker;
    return true;
slow:
    memset(out, 0, sizeof *out);
    return false;
}
