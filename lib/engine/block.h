/* The block layer under lib/engine/sstable.c: prefix-compressed key/value blocks
 * with restart points (builder, and an iterator that seeks, steps forward
 * and back), the internal-key order both sides share, and the little-endian
 * and varint codecs of the table format. Layout: lib/engine/sstable.md. */
#ifndef STRATA_BLOCK_H
#define STRATA_BLOCK_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "coding.h"

/* An internal key is the user key followed by an 8-byte little-endian
 * trailer (seq << 8 | type), so seqs have 56 bits. */
#define IKEY_TRAILER   8u
#define IKEY_MAX_SEQ   ((UINT64_C(1) << 56) - 1)
#define IKEY_SEEK_TYPE 0xffu /* above every value type: sorts first within a seq */

/* Caps on what a decoder accepts; a length beyond them is corruption. */
#define BLOCK_MAX_KEY   ((16u << 20) + IKEY_TRAILER)
#define BLOCK_MAX_VALUE (256u << 20)

/* ---- varint codec (fixed-width ones are in coding.h) ----------------- */

#define VARINT64_MAX_BYTES 10

/* Writes v as a LEB128 varint at p; returns the bytes written. */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Decodes a varint from [p, limit); returns the byte after it, or NULL
 * when it runs past limit or beyond 64 bits. */
static inline const uint8_t *varint_get(const uint8_t *p, const uint8_t *limit, uint64_t *v)
{
    uint64_t result = 0;
    for (unsigned shift = 0; shift <= 63 && p < limit; shift += 7) {
        uint64_t byte = *p++;
        result |= (byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

/* ---- growable byte buffer ------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} sst_buf_t;

/* Makes room for extra more bytes; returns 0 or STRATA_ENOMEM. */
int sst_buf_reserve(sst_buf_t *buf, size_t extra);
int sst_buf_append(sst_buf_t *buf, const void *data, size_t len);
int sst_buf_append_varint(sst_buf_t *buf, uint64_t v);
void sst_buf_free(sst_buf_t *buf);

/* ---- internal keys -------------------------------------------------- */

static inline uint64_t ikey_trailer(uint64_t seq, unsigned type)
{
    return seq << 8 | type;
}

/* Memtable order of internal key a (alen >= 8) against the user key
 * ukey with trailer: user key bytes ascending, then trailer descending. */
static inline int ikey_compare(const uint8_t *a, size_t alen, const uint8_t *ukey, size_t ulen,
                               uint64_t trailer)
{
    size_t alen_user = alen - IKEY_TRAILER;
    size_t n = alen_user < ulen ? alen_user : ulen;
    int r = n ? memcmp(a, ukey, n) : 0;
    if (r)
        return r;
    if (alen_user != ulen)
        return alen_user < ulen ? -1 : 1;
    uint64_t a_trailer = get_u64(a + alen_user);
    return a_trailer > trailer ? -1 : a_trailer < trailer ? 1 : 0;
}

/* ---- block builder -------------------------------------------------- */

typedef struct {
    sst_buf_t buf;      /* entries; finish appends the restart array */
    sst_buf_t restarts; /* uint32 offsets, native order until finish */
    sst_buf_t last_key;
    int restart_interval;
    int since_restart;
    uint64_t entries;
} block_builder_t;

void block_builder_init(block_builder_t *self, int restart_interval);
void block_builder_free(block_builder_t *self);
/* Empties the builder for the next block, keeping its memory. */
void block_builder_reset(block_builder_t *self);
/* Keys must come in increasing order; the caller checks. Returns 0 or
 * STRATA_ENOMEM. */
int block_builder_add(block_builder_t *self, const void *key, size_t key_len, const void *value,
                      size_t value_len);
/* Size of the block if it were finished now. */
size_t block_builder_estimate(const block_builder_t *self);
static inline bool block_builder_empty(const block_builder_t *self)
{
    return self->entries == 0;
}
/* Appends the restart array and returns the block's bytes, valid until the
 * next reset. Returns 0 or STRATA_ENOMEM. */
int block_builder_finish(block_builder_t *self, const uint8_t **data, size_t *len);

/* ---- block reader --------------------------------------------------- */

/* A parsed block: entries in [0, restarts_off), then num_restarts
 * uint32 offsets, then the count. The bytes belong to the caller. */
typedef struct {
    const uint8_t *data;
    uint32_t restarts_off;
    uint32_t num_restarts;
} block_t;

/* Checks the restart array fits; returns 0 or STRATA_ECORRUPT. */
int block_parse(block_t *block, const uint8_t *data, size_t size);

#define BLOCK_ITER_INLINE_KEY 128

/* Walks one block. Keys at restart points are read in place; others are
 * rebuilt in key_buf, which lives as long as the iterator and only grows. */
typedef struct {
    block_t block;
    uint32_t current;       /* offset of the entry; restarts_off when invalid */
    uint32_t next;          /* offset just past it */
    uint32_t restart_index; /* restart run holding current */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int status;          /* 0, STRATA_ECORRUPT or STRATA_ENOMEM */
    const char *problem; /* what was wrong, for messages */
    uint32_t problem_off;
    uint8_t *key_buf;
    size_t key_cap;
    uint8_t key_inline[BLOCK_ITER_INLINE_KEY];
} block_iter_t;

/* Prepares an iterator with no block; it must not be copied afterwards. */
void block_iter_init(block_iter_t *it);
void block_iter_free(block_iter_t *it);
/* Points the iterator at block (unpositioned) and clears its status. */
void block_iter_attach(block_iter_t *it, const block_t *block);

static inline bool block_iter_valid(const block_iter_t *it)
{
    return it->current < it->block.restarts_off;
}
void block_iter_seek_first(block_iter_t *it);
void block_iter_seek_last(block_iter_t *it);
/* First entry >= (ukey, trailer) in internal-key order. */
void block_iter_seek(block_iter_t *it, const void *ukey, size_t ulen, uint64_t trailer);
void block_iter_next(block_iter_t *it);
void block_iter_prev(block_iter_t *it);

#endif
