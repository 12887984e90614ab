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

typedef struct strata_iter strata_iter_t;

typedef struct {
    bool (*valid)(const strata_iter_t *it);
    void (*seek_first)(strata_iter_t *it);
    void (*seek_last)(strata_iter_t *it);
    void (*seek)(strata_iter_t *it, const void *key, size_t key_len, uint64_t seq);
    void (*next)(strata_iter_t *it);
    void (*prev)(strata_iter_t *it);
    const void *(*key)(const strata_iter_t *it, size_t *key_len);
    const void *(*value)(const strata_iter_t *it, size_t *value_len);
    uint64_t (*seq)(const strata_iter_t *it);
    strata_value_type_t (*type)(const strata_iter_t *it);
    int (*status)(const strata_iter_t *it, strata_error_t *err);
    void (*destroy)(strata_iter_t *it);
} strata_iter_ops_t;

struct strata_iter {
    const strata_iter_ops_t *ops;
};

static inline bool strata_iter_valid(const strata_iter_t *it)
{
    return it->ops->valid(it);
}
static inline void strata_iter_seek_first(strata_iter_t *it)
{
    it->ops->seek_first(it);
}
static inline void strata_iter_seek_last(strata_iter_t *it)
{
    it->ops->seek_last(it);
}
static inline void strata_iter_seek(strata_iter_t *it, const void *key, size_t key_len,
                                    uint64_t seq)
{
    it->ops->seek(it, key, key_len, seq);
}
static inline void strata_iter_next(strata_iter_t *it)
{
    it->ops->next(it);
}
static inline void strata_iter_prev(strata_iter_t *it)
{
    it->ops->prev(it);
}
static inline const void *strata_iter_key(const strata_iter_t *it, size_t *key_len)
{
    return it->ops->key(it, key_len);
}
static inline const void *strata_iter_value(const strata_iter_t *it, size_t *value_len)
{
    return it->ops->value(it, value_len);
}
static inline uint64_t strata_iter_seq(const strata_iter_t *it)
{
    return it->ops->seq(it);
}
static inline strata_value_type_t strata_iter_type(const strata_iter_t *it)
{
    return it->ops->type(it);
}
static inline int strata_iter_status(const strata_iter_t *it, strata_error_t *err)
{
    return it->ops->status(it, err);
}
void strata_iter_destroy(strata_iter_t **it_p);

/* Memtable order: key bytes, then seq descending. */
int strata_internal_compare(const void *a, size_t a_len, uint64_t a_seq, const void *b,
                            size_t b_len, uint64_t b_seq);
int strata_key_compare(const void *a, size_t a_len, const void *b, size_t b_len);

/* Each takes its own reference on what it walks. NULL when out of memory. */
strata_iter_t *strata_iter_memtable(strata_memtable_t *mem);
strata_iter_t *strata_iter_file(strata_file_t *file);
/* The files of one sorted level (L1+), opened one at a time as reached. */
strata_iter_t *strata_iter_level(strata_version_t *version, int level);
/* Merges children (takes ownership of the array's iterators, not of the
 * array). Entries equal in key and seq cannot occur across children. */
strata_iter_t *strata_iter_merge(strata_iter_t **children, size_t n);

#endif
