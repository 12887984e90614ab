/* The distributor's PUB messages (proto/DISTRIBUTION.md, "PUB messages"):
 * the meta frame (40 bytes at version 2, 32 at version 1) and the heartbeat
 * body, encoded and checked in one place. The distributor's pump encodes
 * them; the subscriber decodes. */
#ifndef STRATA_PUBFRAME_H
#define STRATA_PUBFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"

#define STRATA_PUB_META_V1_BYTES  32u /* version 1: no term */
#define STRATA_PUB_META_BYTES     40u /* version 2: version 1's fields, then the term */
#define STRATA_PUB_META_VERSION   2u  /* what the encoder writes by default */
#define STRATA_PUB_HB_TOPIC       "$hb"
#define STRATA_PUB_HB_MAX_TOPICS  256u /* topics listed in one heartbeat message */
#define STRATA_PUB_HB_HEADER      12u  /* covered_seq u64 + n u32 */
#define STRATA_PUB_TOPIC_TEXT_MAX 64u  /* bytes of a topic quoted in an error */

typedef enum { STRATA_PUB_ENTRIES = 1, STRATA_PUB_HEARTBEAT = 2 } strata_pub_kind_t;
typedef enum { STRATA_PUB_LIVE = 0, STRATA_PUB_DELAYED = 1 } strata_pub_tier_t;

/* The meta frame, decoded. */
typedef struct {
    uint8_t version;    /* decode: the frame's (1 or 2); encode: 0 or 2 writes version 2,
                           1 writes the 32-byte version 1 layout (term left out) */
    uint8_t kind;       /* strata_pub_kind_t */
    uint8_t tier;       /* strata_pub_tier_t */
    uint32_t count;     /* entries in the body; 0 for a heartbeat */
    uint64_t prev_seq;  /* entries: last seq sent on this topic and tier before */
    uint64_t instance;  /* random per distributor start */
    uint64_t start_seq; /* the first seq this instance publishes */
    uint64_t term;      /* entries: the term of the message's last entry; heartbeat: of the
                           entry at covered_seq (0: none). Version 1 frames decode as 0. */
} strata_pub_meta_t;

/* The meta frame's size at a version: 32 for 1, 40 for 2, 0 for any other. */
size_t strata_pub_meta_size(uint8_t version);

/* Writes the meta frame at meta->version (0: STRATA_PUB_META_VERSION) and
 * returns its size (out holds STRATA_PUB_META_BYTES). */
size_t strata_pub_meta_encode(const strata_pub_meta_t *meta, uint8_t out[STRATA_PUB_META_BYTES]);

/* Checks a message's topic and meta frames together: the meta's version (1
 * or 2) and its size at that version, tier and kind, start_seq > 0, a
 * heartbeat only on "$hb" with count 0, an entries message never on "$hb"
 * and with count > 0. Errors (STRATA_EINVAL, STRATA_EVERSION for another
 * meta version) name the topic, quoted as strata_pub_topic_text does. The
 * body is not read, so the term is not checked against the entries. */
int strata_pub_meta_decode(const uint8_t *topic, size_t topic_len, const uint8_t *meta,
                           size_t meta_len, strata_pub_meta_t *out, strata_error_t *err);

/* A topic for an error message: printable ASCII as is, other bytes as
 * \xNN, at most STRATA_PUB_TOPIC_TEXT_MAX bytes of it. cap >= 4 * 64 + 8. */
const char *strata_pub_topic_text(char *out, size_t cap, const uint8_t *topic, size_t len);

bool strata_pub_is_heartbeat_topic(const uint8_t *topic, size_t len);

/* Heartbeat body: covered_seq u64, n u32, then n x (topic_len u16, topic,
 * last seq u64). The encoder writes the header over the first 12 bytes
 * once the topics are in; a topic entry needs 2 + len + 8 bytes. */
void strata_pub_hb_put_header(uint8_t *body, uint64_t covered_seq, uint32_t n_topics);
size_t strata_pub_hb_put_topic(uint8_t *at, const void *topic, size_t len, uint64_t last_seq);

/* Called for each listed topic; a non-zero return stops the walk and is
 * returned. */
typedef int (*strata_pub_hb_visit_fn)(void *arg, const uint8_t *topic, size_t len,
                                      uint64_t last_seq, strata_error_t *err);

/* Checks a heartbeat body (size, the topic count cap, every topic inside
 * the body and under the topic cap, nothing after the last) and, with
 * visit, calls it per topic. covered and n_topics are set once the header
 * is read, even when a later check fails. */
int strata_pub_hb_decode(const uint8_t *body, size_t len, uint64_t *covered, uint32_t *n_topics,
                         strata_pub_hb_visit_fn visit, void *arg, strata_error_t *err);

#endif
