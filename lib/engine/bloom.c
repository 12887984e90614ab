/* Bloom filter for SSTables: k probes derived from one 64-bit XXH3 hash by
 * double hashing (Kirsch and Mitzenmacher), so a probe costs one hash of
 * the key however large k is. Format in lib/engine/sstable.md. */
#include "bloom.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "strata/err.h"

#define BLOOM_MIN_BITS 64
#define BLOOM_MAX_K    30

void bloom_builder_init(bloom_builder_t *self, int bits_per_key)
{
    *self = (bloom_builder_t){.bits_per_key = bits_per_key};
}

void bloom_builder_free(bloom_builder_t *self)
{
    free(self->hashes);
    *self = (bloom_builder_t){0};
}

uint64_t bloom_hash(const void *key, size_t key_len)
{
    return XXH3_64bits(key, key_len);
}

int bloom_builder_add(bloom_builder_t *self, const void *key, size_t key_len)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        uint64_t *grown = realloc(self->hashes, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->hashes = grown;
        self->cap = cap;
    }
    self->hashes[self->count++] = bloom_hash(key, key_len);
    return 0;
}

size_t bloom_builder_size(const bloom_builder_t *self)
{
    size_t bits = self->count * (size_t)self->bits_per_key;
    if (bits < BLOOM_MIN_BITS) /* tiny tables would otherwise be all ones */
        bits = BLOOM_MIN_BITS;
    return (bits + 7) / 8 + 1;
}

/* The probe sequence: h, h + delta, h + 2 delta, ... modulo the bit count.
 * The rotation makes delta independent enough of h for double hashing. */
static inline uint64_t probe_delta(uint64_t h)
{
    return (h >> 33) | (h << 31);
}

void bloom_builder_finish(const bloom_builder_t *self, uint8_t *out)
{
    size_t len = bloom_builder_size(self);
    uint64_t bits = (uint64_t)(len - 1) * 8;
    /* k = ln 2 * bits per key minimises the false-positive rate. */
    int k = (int)(self->bits_per_key * 0.69);
    k = k < 1 ? 1 : k > BLOOM_MAX_K ? BLOOM_MAX_K : k;
    memset(out, 0, len - 1);
    out[len - 1] = (uint8_t)k;
    for (size_t i = 0; i < self->count; i++) {
        uint64_t h = self->hashes[i];
        uint64_t delta = probe_delta(h);
        for (int j = 0; j < k; j++) {
            uint64_t bit = h % bits;
            out[bit / 8] |= (uint8_t)(1u << (bit % 8));
            h += delta;
        }
    }
}

bool bloom_filter_valid(const uint8_t *filter, size_t len)
{
    return len >= 2 && filter[len - 1] >= 1 && filter[len - 1] <= BLOOM_MAX_K;
}

bool bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash)
{
    if (!bloom_filter_valid(filter, len))
        return true;
    uint64_t bits = (uint64_t)(len - 1) * 8;
    int k = filter[len - 1];
    uint64_t delta = probe_delta(hash);
    for (int j = 0; j < k; j++) {
        uint64_t bit = hash % bits;
        if (!(filter[bit / 8] & (1u << (bit % 8))))
            return false;
        hash += delta;
    }
    return true;
}
