/* Data and index blocks of an SSTable: keys prefix-compressed against the
 * previous key, with a full key every restart_interval entries so a reader
 * can binary-search the restarts and step back. Used by lib/engine/sstable.c;
 * layout in lib/engine/sstable.md. */
#include "block.h"

#include <stdlib.h>

#include "strata/err.h"

/* ---- growable byte buffer ------------------------------------------- */

int sst_buf_reserve(sst_buf_t *buf, size_t extra)
{
    if (extra <= buf->cap - buf->len)
        return 0;
    if (extra > SIZE_MAX / 2 - buf->len)
        return STRATA_ENOMEM;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + extra)
        cap *= 2;
    uint8_t *grown = realloc(buf->data, cap);
    if (!grown)
        return STRATA_ENOMEM;
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

int sst_buf_append(sst_buf_t *buf, const void *data, size_t len)
{
    int rc = sst_buf_reserve(buf, len);
    if (rc == 0 && len) {
        memcpy(buf->data + buf->len, data, len);
        buf->len += len;
    }
    return rc;
}

int sst_buf_append_varint(sst_buf_t *buf, uint64_t v)
{
    int rc = sst_buf_reserve(buf, VARINT64_MAX_BYTES);
    if (rc == 0)
        buf->len += varint_put(buf->data + buf->len, v);
    return rc;
}

void sst_buf_free(sst_buf_t *buf)
{
    free(buf->data);
    *buf = (sst_buf_t){0};
}

/* ---- builder -------------------------------------------------------- */

void block_builder_init(block_builder_t *self, int restart_interval)
{
    *self = (block_builder_t){.restart_interval = restart_interval};
}

void block_builder_free(block_builder_t *self)
{
    sst_buf_free(&self->buf);
    sst_buf_free(&self->restarts);
    sst_buf_free(&self->last_key);
}

void block_builder_reset(block_builder_t *self)
{
    self->buf.len = 0;
    self->restarts.len = 0;
    self->last_key.len = 0;
    self->since_restart = 0;
    self->entries = 0;
}

int block_builder_add(block_builder_t *self, const void *key, size_t key_len, const void *value,
                      size_t value_len)
{
    /* Reserve everything first so a failure leaves the block as it was. */
    size_t header = 3 * VARINT64_MAX_BYTES;
    if (sst_buf_reserve(&self->buf, header + key_len + value_len) < 0 ||
        sst_buf_reserve(&self->restarts, sizeof(uint32_t)) < 0 ||
        sst_buf_reserve(&self->last_key, key_len) < 0)
        return STRATA_ENOMEM;

    size_t shared = 0;
    if (self->entries == 0 || self->since_restart == self->restart_interval) {
        uint32_t restart = (uint32_t)self->buf.len;
        memcpy(self->restarts.data + self->restarts.len, &restart, sizeof restart);
        self->restarts.len += sizeof restart;
        self->since_restart = 0;
    } else {
        size_t limit = key_len < self->last_key.len ? key_len : self->last_key.len;
        const uint8_t *k = key;
        while (shared < limit && self->last_key.data[shared] == k[shared])
            shared++;
    }
    uint8_t *p = self->buf.data + self->buf.len;
    p += varint_put(p, shared);
    p += varint_put(p, key_len - shared);
    p += varint_put(p, value_len);
    memcpy(p, (const uint8_t *)key + shared, key_len - shared);
    p += key_len - shared;
    if (value_len)
        memcpy(p, value, value_len);
    p += value_len;
    self->buf.len = (size_t)(p - self->buf.data);

    self->last_key.len = shared;
    memcpy(self->last_key.data + shared, (const uint8_t *)key + shared, key_len - shared);
    self->last_key.len = key_len;
    self->since_restart++;
    self->entries++;
    return 0;
}

size_t block_builder_estimate(const block_builder_t *self)
{
    size_t restarts = self->restarts.len ? self->restarts.len : sizeof(uint32_t);
    return self->buf.len + restarts + sizeof(uint32_t);
}

int block_builder_finish(block_builder_t *self, const uint8_t **data, size_t *len)
{
    size_t n = self->restarts.len / sizeof(uint32_t);
    if (sst_buf_reserve(&self->buf, (n + 2) * sizeof(uint32_t)) < 0)
        return STRATA_ENOMEM;
    if (n == 0) { /* an empty block still has restart 0, so readers need no special case */
        put_u32(self->buf.data + self->buf.len, 0);
        self->buf.len += 4;
        n = 1;
    }
    for (size_t i = 0; i < self->restarts.len / sizeof(uint32_t); i++) {
        uint32_t restart;
        memcpy(&restart, self->restarts.data + i * sizeof restart, sizeof restart);
        put_u32(self->buf.data + self->buf.len, restart);
        self->buf.len += 4;
    }
    put_u32(self->buf.data + self->buf.len, (uint32_t)n);
    self->buf.len += 4;
    *data = self->buf.data;
    *len = self->buf.len;
    return 0;
}

/* ---- reader --------------------------------------------------------- */

static inline uint32_t restart_point(const block_t *b, uint32_t i)
{
    return get_u32(b->data + b->restarts_off + (size_t)i * 4);
}

int block_parse(block_t *block, const uint8_t *data, size_t size)
{
    if (size < 8 || size > UINT32_MAX)
        return STRATA_ECORRUPT;
    uint32_t n = get_u32(data + size - 4);
    if (n == 0 || n > (size - 4) / 4)
        return STRATA_ECORRUPT;
    *block = (block_t){
        .data = data, .restarts_off = (uint32_t)(size - 4 - (size_t)n * 4), .num_restarts = n};
    /* Checked once here so seeks can trust every restart point: the first
     * is 0, they increase, and each is the start of an entry. */
    if (restart_point(block, 0) != 0)
        return STRATA_ECORRUPT;
    if (block->restarts_off == 0)
        return n == 1 ? 0 : STRATA_ECORRUPT;
    uint32_t prev = 0;
    for (uint32_t i = 1; i < n; i++) {
        uint32_t r = restart_point(block, i);
        if (r <= prev || r >= block->restarts_off)
            return STRATA_ECORRUPT;
        prev = r;
    }
    return 0;
}

typedef struct {
    uint32_t shared;
    uint32_t unshared;
    uint32_t value_len;
    const uint8_t *delta; /* the unshared key bytes; the value follows */
} entry_t;

/* Decodes the entry at off; false when its lengths do not fit the block. */
static bool decode_entry(const block_t *b, uint32_t off, entry_t *e)
{
    const uint8_t *p = b->data + off;
    const uint8_t *limit = b->data + b->restarts_off;
    if (limit - p >= 3 && (p[0] | p[1] | p[2]) < 0x80) {
        e->shared = p[0];
        e->unshared = p[1];
        e->value_len = p[2];
        p += 3;
    } else {
        uint64_t shared, unshared, value_len;
        if (!(p = varint_get(p, limit, &shared)) || !(p = varint_get(p, limit, &unshared)) ||
            !(p = varint_get(p, limit, &value_len)))
            return false;
        if (shared > BLOCK_MAX_KEY || unshared > BLOCK_MAX_KEY || value_len > BLOCK_MAX_VALUE)
            return false;
        e->shared = (uint32_t)shared;
        e->unshared = (uint32_t)unshared;
        e->value_len = (uint32_t)value_len;
    }
    if ((uint64_t)e->unshared + e->value_len > (uint64_t)(limit - p))
        return false;
    e->delta = p;
    return true;
}

static bool fail(block_iter_t *it, int status, const char *problem, uint32_t off)
{
    it->status = status;
    it->problem = problem;
    it->problem_off = off;
    it->current = it->block.restarts_off;
    return false;
}

static void invalidate(block_iter_t *it)
{
    it->current = it->block.restarts_off;
    it->restart_index = it->block.num_restarts;
}

void block_iter_init(block_iter_t *it)
{
    memset(it, 0, offsetof(block_iter_t, key_inline));
    it->key_buf = it->key_inline;
    it->key_cap = sizeof it->key_inline;
}

void block_iter_free(block_iter_t *it)
{
    if (it->key_buf != it->key_inline)
        free(it->key_buf);
    it->key_buf = it->key_inline;
    it->key_cap = sizeof it->key_inline;
}

void block_iter_attach(block_iter_t *it, const block_t *block)
{
    it->block = *block;
    it->status = 0;
    it->problem = NULL;
    it->key_len = 0;
    invalidate(it);
}

/* Grows key_buf to cap, keeping the first keep bytes of the current key
 * when it already lives there. */
static bool key_buf_grow(block_iter_t *it, size_t cap, size_t keep)
{
    uint8_t *grown = malloc(cap);
    if (!grown)
        return false;
    if (it->key == it->key_buf) {
        memcpy(grown, it->key_buf, keep);
        it->key = grown;
    }
    if (it->key_buf != it->key_inline)
        free(it->key_buf);
    it->key_buf = grown;
    it->key_cap = cap;
    return true;
}

/* Decodes the entry at it->next, which becomes current. */
static bool parse_next(block_iter_t *it)
{
    const block_t *b = &it->block;
    uint32_t off = it->next;
    if (off >= b->restarts_off) {
        invalidate(it);
        return false;
    }
    entry_t e;
    if (!decode_entry(b, off, &e))
        return fail(it, STRATA_ECORRUPT, "entry overruns the block", off);
    if (e.shared > it->key_len)
        return fail(it, STRATA_ECORRUPT, "shared prefix longer than the previous key", off);
    size_t key_len = (size_t)e.shared + e.unshared;
    if (key_len < IKEY_TRAILER || key_len > BLOCK_MAX_KEY)
        return fail(it, STRATA_ECORRUPT, "bad key length", off);
    if (e.shared == 0) {
        it->key = e.delta; /* read in place: no copy at restarts */
    } else {
        if (key_len > it->key_cap &&
            !key_buf_grow(it, key_len > 2 * it->key_cap ? key_len : 2 * it->key_cap, e.shared))
            return fail(it, STRATA_ENOMEM, "out of memory for a key", off);
        if (it->key != it->key_buf)
            memcpy(it->key_buf, it->key, e.shared);
        memcpy(it->key_buf + e.shared, e.delta, e.unshared);
        it->key = it->key_buf;
    }
    it->key_len = key_len;
    it->value = e.delta + e.unshared;
    it->value_len = e.value_len;
    it->current = off;
    it->next = (uint32_t)(it->value + e.value_len - b->data);
    while (it->restart_index + 1 < b->num_restarts &&
           restart_point(b, it->restart_index + 1) <= off)
        it->restart_index++;
    return true;
}

static void seek_to_restart(block_iter_t *it, uint32_t index)
{
    it->key_len = 0; /* so the entry there must not claim a shared prefix */
    it->restart_index = index;
    it->next = restart_point(&it->block, index);
}

void block_iter_seek_first(block_iter_t *it)
{
    if (it->status)
        return;
    seek_to_restart(it, 0);
    parse_next(it);
}

void block_iter_seek_last(block_iter_t *it)
{
    if (it->status)
        return;
    seek_to_restart(it, it->block.num_restarts - 1);
    if (!parse_next(it))
        return;
    while (it->next < it->block.restarts_off && parse_next(it)) {
    }
}

void block_iter_seek(block_iter_t *it, const void *ukey, size_t ulen, uint64_t trailer)
{
    if (it->status)
        return;
    const block_t *b = &it->block;
    if (b->restarts_off == 0) {
        invalidate(it);
        return;
    }
    /* The last restart whose key is < target: the target is in its run or
     * (when every restart key is >= target) at the start of run 0. */
    uint32_t left = 0, right = b->num_restarts - 1;
    while (left < right) {
        uint32_t mid = left + (right - left + 1) / 2;
        uint32_t off = restart_point(b, mid);
        entry_t e;
        if (!decode_entry(b, off, &e) || e.shared != 0 || e.unshared < IKEY_TRAILER) {
            fail(it, STRATA_ECORRUPT, "bad entry at a restart point", off);
            return;
        }
        if (ikey_compare(e.delta, e.unshared, ukey, ulen, trailer) < 0)
            left = mid;
        else
            right = mid - 1;
    }
    seek_to_restart(it, left);
    while (parse_next(it))
        if (ikey_compare(it->key, it->key_len, ukey, ulen, trailer) >= 0)
            return;
}

void block_iter_next(block_iter_t *it)
{
    if (block_iter_valid(it))
        parse_next(it);
}

void block_iter_prev(block_iter_t *it)
{
    if (!block_iter_valid(it))
        return;
    uint32_t original = it->current;
    while (restart_point(&it->block, it->restart_index) >= original) {
        if (it->restart_index == 0) {
            invalidate(it);
            return;
        }
        it->restart_index--;
    }
    seek_to_restart(it, it->restart_index);
    do {
        if (!parse_next(it))
            return;
    } while (it->next < original);
    if (it->next != original)
        fail(it, STRATA_ECORRUPT, "restart points disagree with the entries", original);
}
