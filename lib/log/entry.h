/* The one place the entry's byte layout (lib/log/wal.md, "Entry") is
 * written down in code: field offsets, the header size and the helpers that
 * read and write them. The WAL, its cursor, the ring and verify go through
 * these; nothing else computes an entry offset. Private to lib/. */
#ifndef STRATA_LOG_ENTRY_H
#define STRATA_LOG_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coding.h"
#include "strata/entry.h"

#define ENTRY_OFF_CRC         0
#define ENTRY_OFF_PAYLOAD_LEN 4
#define ENTRY_OFF_TYPE        8
#define ENTRY_OFF_FLAGS       9
#define ENTRY_OFF_TOPIC_LEN   10
#define ENTRY_OFF_KEY_LEN     12
#define ENTRY_OFF_SEQ         16
#define ENTRY_OFF_TERM        24
#define ENTRY_OFF_TIMESTAMP   32
#define ENTRY_HEADER          40u
#define ENTRY_KNOWN_FLAGS     STRATA_ENTRY_GROUP_CONT
#define ENTRY_DEFAULT_MAX     (64u << 20) /* payload cap when the caller gives none */

/* Header fields of the entry at p; p must hold ENTRY_HEADER bytes. They are
 * read as they are: only entry_parse validates. */
static inline uint32_t entry_payload_len(const uint8_t *p)
{
    return get_u32(p + ENTRY_OFF_PAYLOAD_LEN);
}
static inline uint16_t entry_topic_len(const uint8_t *p)
{
    return get_u16(p + ENTRY_OFF_TOPIC_LEN);
}
static inline uint32_t entry_key_len(const uint8_t *p)
{
    return get_u32(p + ENTRY_OFF_KEY_LEN);
}
static inline uint64_t entry_seq(const uint8_t *p)
{
    return get_u64(p + ENTRY_OFF_SEQ);
}
static inline uint64_t entry_term(const uint8_t *p)
{
    return get_u64(p + ENTRY_OFF_TERM);
}
static inline uint8_t entry_flags(const uint8_t *p)
{
    return p[ENTRY_OFF_FLAGS];
}
/* The whole entry's size as its header says. */
static inline uint64_t entry_len(const uint8_t *p)
{
    return ENTRY_HEADER + (uint64_t)entry_payload_len(p);
}

/* Fills e from the header at p without checking anything; the payload
 * pointers are set only where with_topic / with_body say the bytes follow
 * (the ring's oversize markers carry the header, and maybe the topic). */
void entry_header_decode(const uint8_t *p, bool with_topic, bool with_body, strata_entry_t *e);

/* Writes an entry with seq, term, time and crc left zero (a WAL leader
 * fills them in with entry_seal once the group's order is fixed). */
void entry_encode_unsealed(uint8_t *p, uint8_t type, uint8_t flags, const void *topic,
                           uint16_t topic_len, const void *key, uint32_t key_len, const void *value,
                           uint32_t value_len);
void entry_seal(uint8_t *p, uint64_t seq, uint64_t term, uint64_t timestamp_ns);
/* Clears or sets the group-continuation flag and recomputes the CRC. */
void entry_set_flags(uint8_t *p, uint8_t flags);

/* Parses and checks the entry at p, of which left bytes are available:
 * lengths against left and max_entry before the payload is touched, then
 * the CRC, then type and flags. On false, *kind is the damage kind wal.md
 * names ("torn header", "zero fill", "oversize length", "bad lengths",
 * "torn payload", "bad crc", "unknown entry type"). The entry's pointers
 * point into p. */
bool entry_parse(const uint8_t *p, uint64_t left, uint32_t max_entry, strata_entry_t *e,
                 uint64_t *len, const char **kind);

/* The cold path after entry_parse said no with kind: a line naming the
 * offending field and its value. Returns the field's offset in the entry. */
uint32_t entry_describe_damage(const uint8_t *p, uint64_t left, uint32_t max_entry,
                               const char *kind, char *out, size_t out_len);

#endif
