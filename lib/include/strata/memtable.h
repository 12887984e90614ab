/* The memtable: an arena skiplist of (key, seq) -> value, one writer and any
 * number of lock-free readers. Entries are ordered by key bytes ascending,
 * then seq descending, so the first entry at or after (key, snapshot_seq) is
 * the newest version visible to a read at snapshot_seq. A hash index beside
 * it maps each key to its newest entry, for gets. Used by db.c; the flush to
 * SSTables walks it with an iterator. */
#ifndef STRATA_MEMTABLE_H
#define STRATA_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "strata/entry.h"

typedef struct strata_memtable strata_memtable_t;
typedef struct strata_memtable_iter strata_memtable_iter_t;

/* A new memtable with refcount 1, or NULL when out of memory. */
strata_memtable_t *strata_memtable_new(void);

/* Readers that outlive the caller's own reference take one. Thread-safe. */
void strata_memtable_ref(strata_memtable_t *self);
/* Drops a reference, frees at zero, and nulls *self_p. Thread-safe. */
void strata_memtable_unref(strata_memtable_t **self_p);

/* Single writer only. Copies key and value into the arena. seq must be
 * unique per memtable. Returns 0, or STRATA_ENOMEM. */
int strata_memtable_add(strata_memtable_t *self, uint64_t seq, strata_value_type_t type,
                        const void *key, size_t key_len, const void *value, size_t value_len);

/* Bulk loading, for WAL replay: stage copies an entry into the arena as add
 * does (its bytes count at once) but leaves it unreachable; publish sorts
 * everything staged and links it in memtable order, appending past the end
 * in O(1) per entry and searching only from the previous insert otherwise,
 * where add pays a cache-missing search from the head for every entry.
 * Readers see nothing staged until publish links it, and each entry becomes
 * visible whole as with add. Single writer only, like add, which may be
 * mixed with them. A memtable must be published before anyone iterates it
 * for a flush. Publishing turns the memtable's get index off: its gets
 * search the list from then on. stage returns 0, or STRATA_ENOMEM and
 * stages nothing. */
int strata_memtable_stage(strata_memtable_t *self, uint64_t seq, strata_value_type_t type,
                          const void *key, size_t key_len, const void *value, size_t value_len);
/* Cannot fail: without memory for the sort it links entry by entry. */
void strata_memtable_publish(strata_memtable_t *self);

/* Lock-free; safe concurrently with one writer. Looks for the newest entry
 * of key with seq <= snapshot_seq. Returns 1 and fills the out parameters
 * (any of which may be NULL) when there is one, even a delete marker; returns
 * 0 when the memtable holds no such entry. *value points into the arena and
 * stays valid while the caller holds a reference to the memtable. Costs a
 * hash probe when the newest entry of key is at or below snapshot_seq or
 * there is none, a list search otherwise. Every entry whose add returned
 * before the caller learnt of its seq (through a release/acquire pair) is
 * seen. */
int strata_memtable_get(const strata_memtable_t *self, const void *key, size_t key_len,
                        uint64_t snapshot_seq, strata_value_type_t *type, const void **value,
                        size_t *value_len, uint64_t *seq);

/* Bytes used by the arena (nodes, keys, values) and the get index (21 to 43
 * bytes per distinct key): the size that triggers the switch to immutable.
 * Approximate under a concurrent writer. */
size_t strata_memtable_bytes(const strata_memtable_t *self);
/* Entries added or published so far. */
uint64_t strata_memtable_count(const strata_memtable_t *self);

/* Iterators see every entry (all versions, delete markers included) in the
 * order above; they take their own reference on the memtable. */
strata_memtable_iter_t *strata_memtable_iter_new(strata_memtable_t *self);
void strata_memtable_iter_destroy(strata_memtable_iter_t **self_p);
void strata_memtable_iter_seek_first(strata_memtable_iter_t *it);
void strata_memtable_iter_seek_last(strata_memtable_iter_t *it);
/* Positions at the first entry >= (key, seq) in memtable order; pass
 * UINT64_MAX as seq to land on the newest version of key. */
void strata_memtable_iter_seek(strata_memtable_iter_t *it, const void *key, size_t key_len,
                               uint64_t seq);
int strata_memtable_iter_valid(const strata_memtable_iter_t *it);
void strata_memtable_iter_next(strata_memtable_iter_t *it);
void strata_memtable_iter_prev(strata_memtable_iter_t *it);
/* Accessors for the current entry; pointers valid while the iterator lives. */
const void *strata_memtable_iter_key(const strata_memtable_iter_t *it, size_t *key_len);
const void *strata_memtable_iter_value(const strata_memtable_iter_t *it, size_t *value_len);
uint64_t strata_memtable_iter_seq(const strata_memtable_iter_t *it);
strata_value_type_t strata_memtable_iter_type(const strata_memtable_iter_t *it);

#endif
