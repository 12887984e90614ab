/* The PUB message codec of proto/DISTRIBUTION.md: the meta frame and the
 * heartbeat body. strata-distributor's pump encodes with it and the
 * subscriber (lib/client/subscriber.c) checks every message with it. */
#include "strata/pubframe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "coding.h"
#include "strata/codec.h"

size_t strata_pub_meta_size(uint8_t version)
{
    switch (version) {
    case 1:
        return STRATA_PUB_META_V1_BYTES;
    case 2:
        return STRATA_PUB_META_BYTES;
    default:
        return 0;
    }
}

size_t strata_pub_meta_encode(const strata_pub_meta_t *meta, uint8_t out[STRATA_PUB_META_BYTES])
{
    /* Version 1 stays encodable so tests can show old frames still decode. */
    uint8_t version = meta->version == 1 ? 1 : STRATA_PUB_META_VERSION;
    size_t size = strata_pub_meta_size(version);
    memset(out, 0, size);
    out[0] = version;
    out[1] = meta->kind;
    out[2] = meta->tier;
    put_u32(out + 4, meta->count);
    put_u64(out + 8, meta->prev_seq);
    put_u64(out + 16, meta->instance);
    put_u64(out + 24, meta->start_seq);
    if (version >= 2)
        put_u64(out + 32, meta->term);
    return size;
}

const char *strata_pub_topic_text(char *out, size_t cap, const uint8_t *topic, size_t len)
{
    if (len > STRATA_PUB_TOPIC_TEXT_MAX)
        len = STRATA_PUB_TOPIC_TEXT_MAX;
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        if (topic[i] >= 0x20 && topic[i] < 0x7f && topic[i] != '\\')
            out[n++] = (char)topic[i];
        else
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", topic[i]);
    }
    out[n] = '\0';
    return out;
}

bool strata_pub_is_heartbeat_topic(const uint8_t *topic, size_t len)
{
    return len == sizeof STRATA_PUB_HB_TOPIC - 1 && memcmp(topic, STRATA_PUB_HB_TOPIC, len) == 0;
}

int strata_pub_meta_decode(const uint8_t *topic, size_t topic_len, const uint8_t *meta,
                           size_t meta_len, strata_pub_meta_t *out, strata_error_t *err)
{
    memset(out, 0, sizeof *out);
    char text[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 8];
    strata_pub_topic_text(text, sizeof text, topic, topic_len);
    if (topic_len > STRATA_PROTO_MAX_TOPIC)
        return strata_error_set(err, STRATA_EINVAL, "topic of %zu bytes, cap %u", topic_len,
                                STRATA_PROTO_MAX_TOPIC);
    if (meta_len == 0)
        return strata_error_set(err, STRATA_EINVAL,
                                "topic '%s': meta of 0 bytes, expected %u (version 1) or %u "
                                "(version 2)",
                                text, STRATA_PUB_META_V1_BYTES, STRATA_PUB_META_BYTES);
    size_t want = strata_pub_meta_size(meta[0]);
    if (want == 0)
        return strata_error_set(err, STRATA_EVERSION,
                                "topic '%s': meta version %u, this build reads 1 and 2 (dropped)",
                                text, meta[0]);
    if (meta_len != want)
        return strata_error_set(err, STRATA_EINVAL,
                                "topic '%s': meta of %zu bytes, expected %zu for version %u", text,
                                meta_len, want, meta[0]);
    out->version = meta[0];
    out->kind = meta[1];
    out->tier = meta[2];
    out->count = get_u32(meta + 4);
    out->prev_seq = get_u64(meta + 8);
    out->instance = get_u64(meta + 16);
    out->start_seq = get_u64(meta + 24);
    out->term = out->version >= 2 ? get_u64(meta + 32) : 0;
    if (out->tier > STRATA_PUB_DELAYED)
        return strata_error_set(err, STRATA_EINVAL, "topic '%s': tier %u unknown", text, out->tier);
    if (out->start_seq == 0)
        return strata_error_set(err, STRATA_EINVAL, "topic '%s': start_seq 0", text);
    bool heartbeat_topic = strata_pub_is_heartbeat_topic(topic, topic_len);
    if (out->kind == STRATA_PUB_HEARTBEAT) {
        if (!heartbeat_topic || out->count != 0)
            return strata_error_set(err, STRATA_EINVAL,
                                    "heartbeat on topic '%s' with count %" PRIu32
                                    " (expected '" STRATA_PUB_HB_TOPIC "' and 0)",
                                    text, out->count);
        return 0;
    }
    if (out->kind != STRATA_PUB_ENTRIES)
        return strata_error_set(err, STRATA_EINVAL, "topic '%s': kind %u unknown", text, out->kind);
    if (heartbeat_topic || out->count == 0)
        return strata_error_set(err, STRATA_EINVAL,
                                "entries message on topic '%s' with count %" PRIu32, text,
                                out->count);
    return 0;
}

void strata_pub_hb_put_header(uint8_t *body, uint64_t covered_seq, uint32_t n_topics)
{
    put_u64(body, covered_seq);
    put_u32(body + 8, n_topics);
}

size_t strata_pub_hb_put_topic(uint8_t *at, const void *topic, size_t len, uint64_t last_seq)
{
    put_u16(at, (uint16_t)len);
    memcpy(at + 2, topic, len);
    put_u64(at + 2 + len, last_seq);
    return 2 + len + 8;
}

int strata_pub_hb_decode(const uint8_t *body, size_t len, uint64_t *covered, uint32_t *n_topics,
                         strata_pub_hb_visit_fn visit, void *arg, strata_error_t *err)
{
    const uint8_t *p = body;
    size_t left = len;
    *covered = 0;
    *n_topics = 0;
    if (left < STRATA_PUB_HB_HEADER)
        return strata_error_set(err, STRATA_EINVAL, "heartbeat of %zu bytes, at least %u", left,
                                STRATA_PUB_HB_HEADER);
    *covered = get_u64(p);
    uint32_t n = get_u32(p + 8);
    *n_topics = n;
    if (n > STRATA_PUB_HB_MAX_TOPICS)
        return strata_error_set(err, STRATA_EINVAL, "heartbeat lists %" PRIu32 " topics, cap %u", n,
                                STRATA_PUB_HB_MAX_TOPICS);
    p += STRATA_PUB_HB_HEADER;
    left -= STRATA_PUB_HB_HEADER;
    for (uint32_t i = 0; i < n; i++) {
        if (left < 2 || left - 2 < (size_t)get_u16(p) + 8)
            return strata_error_set(err, STRATA_EINVAL,
                                    "heartbeat topic %" PRIu32 " of %" PRIu32
                                    " runs past the body (%zu bytes)",
                                    i, n, len);
        size_t tl = get_u16(p);
        if (tl > STRATA_PROTO_MAX_TOPIC)
            return strata_error_set(err, STRATA_EINVAL, "heartbeat topic of %zu bytes, cap %u", tl,
                                    STRATA_PROTO_MAX_TOPIC);
        uint64_t last = get_u64(p + 2 + tl);
        if (visit) {
            int rc = visit(arg, p + 2, tl, last, err);
            if (rc)
                return rc;
        }
        p += 2 + tl + 8;
        left -= 2 + tl + 8;
    }
    if (left != 0)
        return strata_error_set(err, STRATA_EINVAL, "heartbeat has %zu bytes after its topics",
                                left);
    return 0;
}
