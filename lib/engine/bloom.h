/* The SSTable bloom filter over user keys (one per table): XXH3 and double
 * hashing, LevelDB's scheme with a 64-bit hash. Built by lib/engine/sstable.c at
 * finish, probed by strata_table_get; layout in lib/engine/sstable.md. */
#ifndef STRATA_BLOOM_H
#define STRATA_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Collects one hash per key until the filter's size is known. */
typedef struct {
    uint64_t *hashes;
    size_t count;
    size_t cap;
    int bits_per_key;
} bloom_builder_t;

void bloom_builder_init(bloom_builder_t *self, int bits_per_key);
void bloom_builder_free(bloom_builder_t *self);
/* Returns 0 or STRATA_ENOMEM. */
int bloom_builder_add(bloom_builder_t *self, const void *key, size_t key_len);
/* Bytes the finished filter takes: the bit array and one byte of k. */
size_t bloom_builder_size(const bloom_builder_t *self);
/* Writes the filter into out, which holds bloom_builder_size() bytes. */
void bloom_builder_finish(const bloom_builder_t *self, uint8_t *out);

uint64_t bloom_hash(const void *key, size_t key_len);
/* Whether filter (as written by finish) is well formed. */
bool bloom_filter_valid(const uint8_t *filter, size_t len);
/* False only when key (given by its bloom_hash) was never added. A filter
 * that fails bloom_filter_valid matches everything. */
bool bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash);

#endif
