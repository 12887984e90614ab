/* Internal iterators over (key, seq, type, value) entries in memtable order
 * (key ascending, seq descending): one interface over memtables, tables,
 * whole levels, and the heap-based k-way merge of any of them. db.c builds
 * user scans on top; compaction merges its inputs with the same code.
 * Private to lib/. */
#ifndef STRATA_ITER_H
#define STRATA_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/memtable.h"
#include "version.h"

typedef struct iter iter_t;

typedef struct {
    bool (*valid)(const iter_t *it);
    void (*seek_first)(iter_t *it);
    void (*seek_last)(iter_t *it);
    void (*seek)(iter_t *it, const void *key, size_t key_len, uint64_t seq);
    void (*next)(iter_t *it);
    void (*prev)(iter_t *it);
    const void *(*key)(const iter_t *it, size_t *key_len);
    const void *(*value)(const iter_t *it, size_t *value_len);
    uint64_t (*seq)(const iter_t *it);
    strata_value_type_t (*type)(const iter_t *it);
    int (*status)(const iter_t *it, strata_error_t *err);
    void (*destroy)(iter_t *it);
} iter_ops_t;

struct iter {
    const iter_ops_t *ops;
};

static inline bool iter_valid(const iter_t *it)
{
    return it->ops->valid(it);
}
static inline void iter_seek_first(iter_t *it)
{
    it->ops->seek_first(it);
}
static inline void iter_seek_last(iter_t *it)
{
    it->ops->seek_last(it);
}
static inline void iter_seek(iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    it->ops->seek(it, key, key_len, seq);
}
static inline void iter_next(iter_t *it)
{
    it->ops->next(it);
}
static inline void iter_prev(iter_t *it)
{
    it->ops->prev(it);
}
static inline const void *iter_key(const iter_t *it, size_t *key_len)
{
    return it->ops->key(it, key_len);
}
static inline const void *iter_value(const iter_t *it, size_t *value_len)
{
    return it->ops->value(it, value_len);
}
static inline uint64_t iter_seq(const iter_t *it)
{
    return it->ops->seq(it);
}
static inline strata_value_type_t iter_type(const iter_t *it)
{
    return it->ops->type(it);
}
static inline int iter_status(const iter_t *it, strata_error_t *err)
{
    return it->ops->status(it, err);
}
void iter_destroy(iter_t **it_p);

/* Memtable order: key bytes, then seq descending. */
int ikey_compare_internal(const void *a, size_t a_len, uint64_t a_seq, const void *b, size_t b_len,
                          uint64_t b_seq);
int key_compare(const void *a, size_t a_len, const void *b, size_t b_len);

/* Each takes its own reference on what it walks. NULL when out of memory. */
iter_t *iter_memtable(strata_memtable_t *mem);
iter_t *iter_file(vfile_t *file);
/* The files of one sorted level (L1+), opened one at a time as reached. */
iter_t *iter_level(version_t *version, int level);
/* Merges children (takes ownership of the array's iterators, not of the
 * array). Entries equal in key and seq cannot occur across children. */
iter_t *iter_merge(iter_t **children, size_t n);

#endif
