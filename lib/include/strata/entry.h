/* The log entry: the unit every part of Strata moves. One write is one entry
 * (seq, term, time, type, topic, key, value, CRC); the same bytes go to the
 * WAL, the memtable, the ring, the PUB streams and history pages. Layout and
 * rules: lib/log/wal.md. Used by the engine, the ring readers and the
 * subscribers of every process. */
#ifndef STRATA_ENTRY_H
#define STRATA_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"

typedef enum {
    STRATA_VALUE_PUT = 1,
    STRATA_VALUE_DELETE = 2,
} strata_value_type_t;

typedef enum {
    STRATA_SYNC = 0,  /* acknowledge after fdatasync of the group commit */
    STRATA_ASYNC = 1, /* acknowledge after write(); a timer fdatasyncs */
} strata_durability_t;

/* Another entry of the same atomic group follows this one. */
#define STRATA_ENTRY_GROUP_CONT 0x01u

/* A decoded entry; its pointers point into the bytes it was decoded from. */
typedef struct {
    uint64_t seq;
    uint64_t term;
    uint64_t timestamp_ns;
    uint8_t type;
    uint8_t flags;
    const uint8_t *topic;
    uint16_t topic_len;
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *value;
    uint32_t value_len;
} strata_entry_t;

/* Decodes one entry from a buffer holding it as wal.md lays it out,
 * checking lengths against len and max_entry_bytes (0: the default cap)
 * before the payload, then the CRC, type and flags; the error names the
 * field (STRATA_ETOOBIG for a length over the cap, else STRATA_ECORRUPT).
 * *used gets its size; entry points into buf. For ring readers, PUB
 * subscribers, replay pages and follower appends. */
int strata_entry_decode(const uint8_t *buf, size_t len, uint32_t max_entry_bytes,
                        strata_entry_t *entry, size_t *used, strata_error_t *err);

/* The encoded size of an entry with these lengths. */
size_t strata_entry_size(size_t topic_len, size_t key_len, size_t value_len);

/* Encodes e (its pointers and lengths) into out, which must hold
 * strata_entry_size() bytes, with a correct CRC. For tools and tests that
 * build entries without a WAL; the WAL encodes its own appends. */
void strata_entry_encode(uint8_t *out, const strata_entry_t *e);

#endif
