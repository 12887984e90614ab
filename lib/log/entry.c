/* Encoding, parsing and checking of log entries (lib/log/wal.md, "Entry"):
 * the one implementation behind the WAL, its cursor, the ring, verify and
 * every reader of entry bytes in other processes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "entry.h"
#include "strata/crc.h"

void entry_encode_unsealed(uint8_t *p, uint8_t type, uint8_t flags, const void *topic,
                           uint16_t topic_len, const void *key, uint32_t key_len, const void *value,
                           uint32_t value_len)
{
    memset(p, 0, ENTRY_HEADER);
    put_u32(p + ENTRY_OFF_PAYLOAD_LEN, (uint32_t)(topic_len + key_len + value_len));
    p[ENTRY_OFF_TYPE] = type;
    p[ENTRY_OFF_FLAGS] = flags;
    put_u16(p + ENTRY_OFF_TOPIC_LEN, topic_len);
    put_u32(p + ENTRY_OFF_KEY_LEN, key_len);
    uint8_t *q = p + ENTRY_HEADER;
    if (topic_len)
        memcpy(q, topic, topic_len);
    q += topic_len;
    if (key_len)
        memcpy(q, key, key_len);
    q += key_len;
    if (value_len)
        memcpy(q, value, value_len);
}

static void entry_put_crc(uint8_t *p)
{
    put_u32(p + ENTRY_OFF_CRC,
            strata_crc32c(0, p + ENTRY_OFF_PAYLOAD_LEN, ENTRY_HEADER - 4 + entry_payload_len(p)));
}

void entry_seal(uint8_t *p, uint64_t seq, uint64_t term, uint64_t timestamp_ns)
{
    put_u64(p + ENTRY_OFF_SEQ, seq);
    put_u64(p + ENTRY_OFF_TERM, term);
    put_u64(p + ENTRY_OFF_TIMESTAMP, timestamp_ns);
    entry_put_crc(p);
}

void entry_set_flags(uint8_t *p, uint8_t flags)
{
    p[ENTRY_OFF_FLAGS] = flags;
    entry_put_crc(p);
}

void entry_header_decode(const uint8_t *p, bool with_topic, bool with_body, strata_entry_t *e)
{
    uint16_t topic_len = entry_topic_len(p);
    uint32_t key_len = entry_key_len(p);
    e->type = p[ENTRY_OFF_TYPE];
    e->flags = p[ENTRY_OFF_FLAGS];
    e->seq = entry_seq(p);
    e->term = entry_term(p);
    e->timestamp_ns = get_u64(p + ENTRY_OFF_TIMESTAMP);
    e->topic_len = topic_len;
    e->key_len = key_len;
    e->value_len = entry_payload_len(p) - topic_len - key_len;
    e->topic = with_topic ? p + ENTRY_HEADER : NULL;
    e->key = with_body ? p + ENTRY_HEADER + topic_len : NULL;
    e->value = with_body ? e->key + key_len : NULL;
}

size_t strata_entry_size(size_t topic_len, size_t key_len, size_t value_len)
{
    return ENTRY_HEADER + topic_len + key_len + value_len;
}

void strata_entry_encode(uint8_t *out, const strata_entry_t *e)
{
    entry_encode_unsealed(out, e->type, e->flags, e->topic, e->topic_len, e->key, e->key_len,
                          e->value, e->value_len);
    entry_seal(out, e->seq, e->term, e->timestamp_ns);
}

bool entry_parse(const uint8_t *p, uint64_t left, uint32_t max_entry, strata_entry_t *e,
                 uint64_t *len, const char **kind)
{
    if (left < ENTRY_HEADER) {
        bool zero = true;
        for (uint64_t i = 0; i < left && zero; i++)
            zero = p[i] == 0;
        *kind = zero ? "zero fill" : "torn header";
        return false;
    }
    uint32_t payload = entry_payload_len(p);
    uint16_t topic_len = entry_topic_len(p);
    uint32_t key_len = entry_key_len(p);
    if (get_u64(p) == 0 && get_u64(p + 8) == 0 && entry_seq(p) == 0) {
        *kind = "zero fill";
        return false;
    }
    if (payload > max_entry) {
        *kind = "oversize length";
        return false;
    }
    if ((uint64_t)topic_len + key_len > payload) {
        *kind = "bad lengths";
        return false;
    }
    if (ENTRY_HEADER + (uint64_t)payload > left) {
        *kind = "torn payload";
        return false;
    }
    if (strata_crc32c(0, p + ENTRY_OFF_PAYLOAD_LEN, ENTRY_HEADER - 4 + payload) !=
        get_u32(p + ENTRY_OFF_CRC)) {
        *kind = "bad crc";
        return false;
    }
    if ((p[ENTRY_OFF_TYPE] != STRATA_VALUE_PUT && p[ENTRY_OFF_TYPE] != STRATA_VALUE_DELETE) ||
        (p[ENTRY_OFF_FLAGS] & ~ENTRY_KNOWN_FLAGS)) {
        *kind = "unknown entry type";
        return false;
    }
    entry_header_decode(p, true, true, e);
    *len = ENTRY_HEADER + (uint64_t)payload;
    return true;
}

uint32_t entry_describe_damage(const uint8_t *p, uint64_t left, uint32_t max_entry,
                               const char *kind, char *out, size_t out_len)
{
    if (left < ENTRY_HEADER) {
        snprintf(out, out_len, "%s: entry header has %" PRIu64 " of %u bytes", kind, left,
                 ENTRY_HEADER);
        return 0;
    }
    uint32_t payload = entry_payload_len(p);
    if (strcmp(kind, "zero fill") == 0) {
        snprintf(out, out_len, "zero fill: crc, payload_len and seq are all zero");
        return 0;
    }
    if (strcmp(kind, "oversize length") == 0) {
        snprintf(out, out_len, "oversize length: payload_len %u is over the cap %u", payload,
                 max_entry);
        return 4;
    }
    if (strcmp(kind, "bad lengths") == 0) {
        snprintf(out, out_len, "bad lengths: topic_len %u + key_len %u exceed payload_len %u",
                 entry_topic_len(p), entry_key_len(p), payload);
        return 10;
    }
    if (strcmp(kind, "torn payload") == 0) {
        snprintf(out, out_len, "torn payload: payload_len %u, %" PRIu64 " bytes present", payload,
                 left - ENTRY_HEADER);
        return 4;
    }
    if (strcmp(kind, "bad crc") == 0) {
        snprintf(out, out_len, "bad crc: crc 0x%08x stored, 0x%08x computed",
                 get_u32(p + ENTRY_OFF_CRC),
                 strata_crc32c(0, p + ENTRY_OFF_PAYLOAD_LEN, ENTRY_HEADER - 4 + payload));
        return 0;
    }
    if (p[ENTRY_OFF_TYPE] != STRATA_VALUE_PUT && p[ENTRY_OFF_TYPE] != STRATA_VALUE_DELETE) {
        snprintf(out, out_len, "unknown entry type: type %u", p[ENTRY_OFF_TYPE]);
        return 8;
    }
    snprintf(out, out_len, "unknown entry type: flags 0x%02x", p[ENTRY_OFF_FLAGS]);
    return 9;
}

int strata_entry_decode(const uint8_t *buf, size_t len, uint32_t max_entry_bytes,
                        strata_entry_t *entry, size_t *used, strata_error_t *err)
{
    if ((!buf && len) || !entry)
        return strata_error_set(err, STRATA_EINVAL, "entry decode needs a buffer and an entry");
    uint32_t cap = max_entry_bytes ? max_entry_bytes : ENTRY_DEFAULT_MAX;
    uint64_t n = 0;
    const char *kind = NULL;
    if (entry_parse(buf, len, cap, entry, &n, &kind)) {
        if (used)
            *used = (size_t)n;
        return 0;
    }
    char detail[160];
    uint32_t field = entry_describe_damage(buf, len, cap, kind, detail, sizeof detail);
    return strata_error_set(err,
                            strcmp(kind, "oversize length") == 0 ? STRATA_ETOOBIG : STRATA_ECORRUPT,
                            "WAL entry offset %u: %s", field, detail);
}
