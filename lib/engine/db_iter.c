/* The user iterator over a db (LevelDB's DBIter): a merge of the memtables
 * and tables as of a snapshot, yielding the newest visible value of each
 * key with deletes hidden, in both directions and within bounds. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db_impl.h"
#include "iter.h"

/* A growable byte buffer for keys and values the iterator must keep. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} bytes_t;

static bool bytes_set(bytes_t *b, const void *p, size_t len)
{
    if (len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < len)
            cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown)
            return false;
        b->data = grown;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data, p, len);
    b->len = len;
    return true;
}

/* LevelDB's DBIter: forward, the internal iterator sits on the entry being
 * yielded; backward, it sits before every entry of the current key, whose
 * key and value are saved here. */
struct strata_db_iter {
    iter_t *in;
    uint64_t snapshot;
    bytes_t lower, upper;
    bool has_lower, has_upper;
    bool forward;
    bool valid;
    bytes_t saved_key, saved_value;
    int error;
    strata_error_t detail;
};

static bool below_lower(const strata_db_iter_t *it, const void *key, size_t len)
{
    return it->has_lower && key_compare(key, len, it->lower.data, it->lower.len) < 0;
}

static bool at_or_above_upper(const strata_db_iter_t *it, const void *key, size_t len)
{
    return it->has_upper && key_compare(key, len, it->upper.data, it->upper.len) >= 0;
}

static void check_status(strata_db_iter_t *it)
{
    if (!it->error)
        it->error = iter_status(it->in, &it->detail);
    if (it->error)
        it->valid = false;
}

/* Forward: settles on the newest visible entry of the next live key,
 * skipping every entry of skip_key (already yielded or deleted). */
static void find_next_user_entry(strata_db_iter_t *it, bool skipping)
{
    bytes_t *skip = &it->saved_key;
    while (iter_valid(it->in)) {
        size_t len;
        const void *key = iter_key(it->in, &len);
        if (at_or_above_upper(it, key, len))
            break;
        if (iter_seq(it->in) <= it->snapshot &&
            !(skipping && key_compare(key, len, skip->data, skip->len) <= 0)) {
            if (iter_type(it->in) == STRATA_VALUE_DELETE) {
                if (!bytes_set(skip, key, len))
                    break;
                skipping = true;
            } else {
                it->valid = true;
                return;
            }
        }
        iter_next(it->in);
    }
    it->valid = false;
    check_status(it);
}

/* Backward: collects the newest visible entry of the previous user key. */
static void find_prev_user_entry(strata_db_iter_t *it)
{
    strata_value_type_t type = STRATA_VALUE_DELETE;
    while (iter_valid(it->in)) {
        size_t len;
        const void *key = iter_key(it->in, &len);
        if (below_lower(it, key, len))
            break;
        if (iter_seq(it->in) <= it->snapshot) {
            if (type != STRATA_VALUE_DELETE &&
                key_compare(key, len, it->saved_key.data, it->saved_key.len) < 0)
                break; /* an earlier key: the saved entry is the answer */
            type = iter_type(it->in);
            if (type == STRATA_VALUE_DELETE) {
                it->saved_key.len = 0;
                it->saved_value.len = 0;
            } else {
                size_t value_len;
                const void *value = iter_value(it->in, &value_len);
                if (!bytes_set(&it->saved_key, key, len) ||
                    !bytes_set(&it->saved_value, value, value_len)) {
                    it->error = STRATA_ENOMEM;
                    strata_error_set(&it->detail, STRATA_ENOMEM, "out of memory");
                    break;
                }
            }
        }
        iter_prev(it->in);
    }
    it->valid = type != STRATA_VALUE_DELETE;
    it->forward = false;
    check_status(it);
}

strata_db_iter_t *strata_db_iter_new(strata_db_t *self, const strata_read_options_t *ro)
{
    strata_db_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->snapshot = ro && ro->snapshot_seq
                       ? ro->snapshot_seq
                       : atomic_load_explicit(&self->visible_seq, memory_order_acquire);
    if (ro && ro->lower_bound) {
        it->has_lower = bytes_set(&it->lower, ro->lower_bound, ro->lower_len);
        if (!it->has_lower)
            goto oom;
    }
    if (ro && ro->upper_bound) {
        it->has_upper = bytes_set(&it->upper, ro->upper_bound, ro->upper_len);
        if (!it->has_upper)
            goto oom;
    }
    pthread_mutex_lock(&self->mu);
    version_t *v = vset_current(self->vset);
    size_t n = 1 + self->n_immutables + v->n_files[0] + STRATA_LEVELS;
    iter_t **children = calloc(n, sizeof *children);
    size_t k = 0;
    bool ok = children != NULL;
    if (ok)
        ok = (children[k++] = iter_memtable(self->active)) != NULL;
    for (size_t i = self->n_immutables; ok && i-- > 0;)
        ok = (children[k++] = iter_memtable(self->immutables[i])) != NULL;
    pthread_mutex_unlock(&self->mu);
    for (size_t i = 0; ok && i < v->n_files[0]; i++)
        ok = (children[k++] = iter_file(v->files[0][i])) != NULL;
    for (int level = 1; ok && level < STRATA_LEVELS; level++)
        if (v->n_files[level])
            ok = (children[k++] = iter_level(v, level)) != NULL;
    version_unref(&v);
    if (!ok) {
        for (size_t i = 0; children && i < k; i++)
            iter_destroy(&children[i]);
        free(children);
        goto oom;
    }
    it->in = iter_merge(children, k);
    free(children);
    if (!it->in)
        goto oom;
    it->forward = true;
    return it;
oom:
    free(it->lower.data);
    free(it->upper.data);
    free(it);
    return NULL;
}

void strata_db_iter_destroy(strata_db_iter_t **it_p)
{
    if (!it_p || !*it_p)
        return;
    strata_db_iter_t *it = *it_p;
    iter_destroy(&it->in);
    free(it->lower.data);
    free(it->upper.data);
    free(it->saved_key.data);
    free(it->saved_value.data);
    free(it);
    *it_p = NULL;
}

void strata_db_iter_seek(strata_db_iter_t *it, const void *key, size_t key_len)
{
    if (below_lower(it, key, key_len)) {
        key = it->lower.data;
        key_len = it->lower.len;
    }
    it->forward = true;
    iter_seek(it->in, key, key_len, it->snapshot);
    find_next_user_entry(it, false);
}

void strata_db_iter_seek_first(strata_db_iter_t *it)
{
    if (it->has_lower) {
        strata_db_iter_seek(it, it->lower.data, it->lower.len);
        return;
    }
    it->forward = true;
    iter_seek_first(it->in);
    find_next_user_entry(it, false);
}

void strata_db_iter_seek_for_prev(strata_db_iter_t *it, const void *key, size_t key_len)
{
    /* (key, seq 0) is the last possible entry of key: land after it. */
    iter_seek(it->in, key, key_len, 0);
    if (iter_valid(it->in))
        iter_prev(it->in);
    else
        iter_seek_last(it->in);
    /* Entries of keys at or above the upper bound are not ours. */
    while (iter_valid(it->in)) {
        size_t len;
        const void *k = iter_key(it->in, &len);
        if (!at_or_above_upper(it, k, len))
            break;
        iter_prev(it->in);
    }
    find_prev_user_entry(it);
}

void strata_db_iter_seek_last(strata_db_iter_t *it)
{
    if (it->has_upper) {
        iter_seek(it->in, it->upper.data, it->upper.len, UINT64_MAX);
        if (iter_valid(it->in))
            iter_prev(it->in);
        else
            iter_seek_last(it->in);
    } else {
        iter_seek_last(it->in);
    }
    find_prev_user_entry(it);
}

/* Forward mode: keeps the current key, which the internal iterator is
 * about to move away from. False (and the iterator stopped) when out of
 * memory. */
static bool save_current_key(strata_db_iter_t *it)
{
    size_t len;
    const void *key = iter_key(it->in, &len);
    if (bytes_set(&it->saved_key, key, len))
        return true;
    it->valid = false;
    it->error = strata_error_set(&it->detail, STRATA_ENOMEM, "out of memory");
    return false;
}

bool strata_db_iter_valid(const strata_db_iter_t *it)
{
    return it->valid;
}

void strata_db_iter_next(strata_db_iter_t *it)
{
    if (!it->valid)
        return;
    if (!it->forward) {
        /* in sits before the current key's entries; step over them. */
        it->forward = true;
        if (iter_valid(it->in))
            iter_next(it->in);
        else
            iter_seek_first(it->in);
        find_next_user_entry(it, true);
        return;
    }
    if (!save_current_key(it))
        return;
    iter_next(it->in);
    find_next_user_entry(it, true);
}

void strata_db_iter_prev(strata_db_iter_t *it)
{
    if (!it->valid)
        return;
    if (it->forward) {
        /* Step back over every entry of the current key first. */
        if (!save_current_key(it))
            return;
        size_t len;
        for (;;) {
            iter_prev(it->in);
            if (!iter_valid(it->in))
                break;
            const void *k = iter_key(it->in, &len);
            if (key_compare(k, len, it->saved_key.data, it->saved_key.len) < 0)
                break;
        }
    }
    find_prev_user_entry(it);
}

const void *strata_db_iter_key(const strata_db_iter_t *it, size_t *key_len)
{
    if (!it->forward) {
        *key_len = it->saved_key.len;
        return it->saved_key.data;
    }
    return iter_key(it->in, key_len);
}

const void *strata_db_iter_value(const strata_db_iter_t *it, size_t *value_len)
{
    if (!it->forward) {
        *value_len = it->saved_value.len;
        return it->saved_value.data;
    }
    return iter_value(it->in, value_len);
}

int strata_db_iter_status(const strata_db_iter_t *it, strata_error_t *err)
{
    if (it->error && err)
        *err = it->detail;
    return it->error;
}
