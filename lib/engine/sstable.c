/* SSTables: the mmap reader, with point gets, two-level iterators and a
 * full verify (the builder is in sstable_build.c). Format:
 * lib/engine/sstable.md. Blocks live in block.c, the filter in bloom.c. */
#define _GNU_SOURCE
#include "strata/sstable.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block.h"
#include "bloom.h"
#include "strata/crc.h"

#include "sstable_format.h"

void strata_table_options_init(strata_table_options_t *opts)
{
    *opts = (strata_table_options_t){
        .block_bytes = DEFAULT_BLOCK_BYTES,
        .restart_interval = DEFAULT_RESTART_INTERVAL,
        .bloom_bits_per_key = DEFAULT_BLOOM_BITS,
    };
}

void strata_table_props_clear(strata_table_props_t *props)
{
    free(props->smallest_key);
    free(props->largest_key);
    *props = (strata_table_props_t){0};
}

int strata_table_props_copy(strata_table_props_t *dst, const strata_table_props_t *src)
{
    strata_table_props_t copy = *src;
    copy.smallest_key = dup_bytes(src->smallest_key, src->smallest_len);
    copy.largest_key = dup_bytes(src->largest_key, src->largest_len);
    if (!copy.smallest_key || !copy.largest_key) {
        strata_table_props_clear(&copy);
        return STRATA_ENOMEM;
    }
    *dst = copy;
    return 0;
}

struct strata_table {
    char *path;
    const char *name; /* inside path, for messages */
    uint8_t *map;
    uint64_t size;
    uint64_t data_end; /* data blocks lie below the first meta block */
    handle_t meta[META_COUNT];
    block_t index;
    const uint8_t *filter; /* NULL: no filter */
    size_t filter_len;
    strata_table_props_t props;
};

static int table_oom(const strata_table_t *t, strata_error_t *err)
{
    return strata_error_set(err, STRATA_ENOMEM, "reading %s: out of memory", t->name);
}

/* Where a block's decompressed bytes go: caller storage first (a get's
 * stack), then the heap, grown as needed. */
typedef struct {
    uint8_t *data;
    size_t cap;
    bool on_heap;
} scratch_t;

static uint8_t *scratch_reserve(scratch_t *s, size_t len)
{
    if (len <= s->cap)
        return s->data;
    uint8_t *grown = malloc(len);
    if (!grown)
        return NULL;
    if (s->on_heap)
        free(s->data);
    *s = (scratch_t){grown, len, true};
    return grown;
}

static void scratch_free(scratch_t *s)
{
    if (s->on_heap)
        free(s->data);
    *s = (scratch_t){0};
}

static bool handle_fits(handle_t h, uint64_t limit)
{
    return h.size <= limit && limit - h.size >= BLOCK_TRAILER &&
           h.offset <= limit - h.size - BLOCK_TRAILER;
}

/* Returns the contents of the block at h, which must end below limit,
 * after checking its checksum; LZ4 blocks are decompressed into scratch
 * (NULL where the format stores blocks raw). */
static int read_block(const strata_table_t *t, handle_t h, uint64_t limit, const char *what,
                      scratch_t *scratch, const uint8_t **out, size_t *out_len, strata_error_t *err)
{
    if (!handle_fits(h, limit))
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: %s block of %llu bytes runs past offset %llu",
                                t->name, (ull)h.offset, what, (ull)h.size, (ull)limit);
    const uint8_t *p = t->map + h.offset;
    uint8_t type = p[h.size];
    uint32_t stored = get_u32(p + h.size + 1);
    uint32_t actual = strata_crc32c(strata_crc32c(0, p, h.size), &type, 1);
    if (stored != actual)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: %s block checksum mismatch (stored %08x, "
                                "computed %08x)",
                                t->name, (ull)h.offset, what, stored, actual);
    if (type == BLOCK_TYPE_RAW) {
        *out = p;
        *out_len = h.size;
        return 0;
    }
    if (type != BLOCK_TYPE_LZ4 || !scratch)
        return strata_error_set(err, STRATA_ECORRUPT, "%s offset %llu: %s block has block type %u",
                                t->name, (ull)h.offset, what, type);
    uint64_t raw_len;
    const uint8_t *src = varint_get(p, p + h.size, &raw_len);
    size_t src_len = src ? h.size - (size_t)(src - p) : 0;
    if (!src || raw_len > MAX_RAW_BLOCK || src_len > INT32_MAX ||
        raw_len > (uint64_t)src_len * LZ4_MAX_RATIO + 64)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: %s block has a bad uncompressed length", t->name,
                                (ull)h.offset, what);
    uint8_t *dst = scratch_reserve(scratch, raw_len);
    if (!dst)
        return table_oom(t, err);
    int n = LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)raw_len);
    if (n < 0 || (uint64_t)n != raw_len)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: %s block does not decompress", t->name,
                                (ull)h.offset, what);
    *out = dst;
    *out_len = raw_len;
    return 0;
}

static int load_data_block(const strata_table_t *t, handle_t h, scratch_t *scratch, block_t *block,
                           strata_error_t *err)
{
    const uint8_t *data;
    size_t len;
    int rc = read_block(t, h, t->data_end, "data", scratch, &data, &len, err);
    if (rc == 0 && block_parse(block, data, len) < 0)
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s offset %llu: data block restart array is malformed", t->name,
                              (ull)h.offset);
    return rc;
}

/* The error of a block iterator that stopped on a bad entry. */
static int block_iter_error(const strata_table_t *t, const char *what, uint64_t block_off,
                            const block_iter_t *bi, strata_error_t *err)
{
    if (bi->status == STRATA_ENOMEM)
        return table_oom(t, err);
    return strata_error_set(err, STRATA_ECORRUPT,
                            "%s offset %llu: %s block %s (entry at block offset %u)", t->name,
                            (ull)block_off, what, bi->problem, bi->problem_off);
}

/* The data block handle at the index iterator: 1 and *h, 0 at the end of
 * the index, or an error. */
static int index_handle(const strata_table_t *t, const block_iter_t *index, handle_t *h,
                        strata_error_t *err)
{
    if (!block_iter_valid(index))
        return index->status ? block_iter_error(t, "index", t->meta[META_INDEX].offset, index, err)
                             : 0;
    const uint8_t *p = index->value;
    const uint8_t *end = p + index->value_len;
    if (!(p = varint_get(p, end, &h->offset)) || !(p = varint_get(p, end, &h->size)) || p != end)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: index block has a bad block handle (entry at "
                                "block offset %u)",
                                t->name, (ull)t->meta[META_INDEX].offset, index->current);
    return 1;
}

static int check_entry_type(const strata_table_t *t, uint64_t block_off, const block_iter_t *bi,
                            strata_error_t *err)
{
    unsigned type = bi->key[bi->key_len - IKEY_TRAILER]; /* low byte of the LE trailer */
    if (type == STRATA_VALUE_PUT || type == STRATA_VALUE_DELETE)
        return 0;
    return strata_error_set(err, STRATA_ECORRUPT,
                            "%s offset %llu: data block entry has value type %u (entry at block "
                            "offset %u)",
                            t->name, (ull)block_off, type, bi->current);
}

static int read_footer(strata_table_t *t, strata_error_t *err)
{
    uint64_t off = t->size - FOOTER_SIZE;
    const uint8_t *f = t->map + off;
    if (memcmp(f + 56, TABLE_MAGIC, 8) != 0)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: bad magic, not a Strata table", t->name,
                                (ull)(off + 56));
    /* The version is read before the checksum: another version may lay
     * its footer out differently, and only magic and version are fixed. */
    uint32_t version = get_u32(f + 52);
    if (version != TABLE_VERSION)
        return strata_error_set(err, STRATA_EVERSION,
                                "%s offset %llu: table format version %u, this build reads %u",
                                t->name, (ull)(off + 52), version, TABLE_VERSION);
    uint32_t stored = get_u32(f), actual = strata_crc32c(0, f + 4, FOOTER_SIZE - 4);
    if (stored != actual)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: footer checksum mismatch (stored %08x, "
                                "computed %08x)",
                                t->name, (ull)off, stored, actual);
    t->data_end = off;
    for (int i = 0; i < META_COUNT; i++) {
        handle_t h = {get_u64(f + 4 + 16 * i), get_u64(f + 12 + 16 * i)};
        t->meta[i] = h;
        if (i == META_FILTER && h.size == 0)
            continue; /* no filter */
        if (!handle_fits(h, off))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: %s handle (offset %llu, %llu bytes) points "
                                    "outside the file (%llu bytes before the footer)",
                                    t->name, (ull)off, meta_names[i], (ull)h.offset, (ull)h.size,
                                    (ull)off);
        if (h.offset < t->data_end)
            t->data_end = h.offset;
    }
    return 0;
}

static int parse_props(strata_table_t *t, const uint8_t *p, size_t len, strata_error_t *err)
{
    const uint8_t *end = p + len;
    uint64_t *numbers[] = {
        [PROP_ENTRIES] = &t->props.entries,
        [PROP_DELETES] = &t->props.deletes,
        [PROP_MIN_SEQ] = &t->props.min_seq,
        [PROP_MAX_SEQ] = &t->props.max_seq,
        [PROP_DATA_BLOCKS] = &t->props.data_blocks,
        [PROP_RAW_KEY_BYTES] = &t->props.raw_key_bytes,
        [PROP_RAW_VALUE_BYTES] = &t->props.raw_value_bytes,
    };
    unsigned seen = 0;
    while (p < end) {
        uint64_t tag, vlen;
        if (!(p = varint_get(p, end, &tag)) || !(p = varint_get(p, end, &vlen)) ||
            vlen > (uint64_t)(end - p))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: properties block has a malformed record",
                                    t->name, (ull)t->meta[META_PROPS].offset);
        const uint8_t *value = p;
        p += vlen;
        if (tag == 0 || tag > PROP_LAST)
            continue; /* added by a later writer; this reader does not need it */
        const char *name = prop_names[tag];
        if (seen & (1u << tag))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: properties block repeats %s", t->name,
                                    (ull)t->meta[META_PROPS].offset, name);
        seen |= 1u << tag;
        bool ok;
        if (tag == PROP_SMALLEST_KEY || tag == PROP_LARGEST_KEY) {
            uint8_t **key =
                tag == PROP_SMALLEST_KEY ? &t->props.smallest_key : &t->props.largest_key;
            size_t *key_len =
                tag == PROP_SMALLEST_KEY ? &t->props.smallest_len : &t->props.largest_len;
            ok = vlen <= MAX_USER_KEY;
            if (ok) {
                if (!(*key = dup_bytes(value, vlen)))
                    return table_oom(t, err);
                *key_len = vlen;
            }
        } else {
            ok = varint_get(value, p, numbers[tag]) == p;
        }
        if (!ok)
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: properties block has a bad %s", t->name,
                                    (ull)t->meta[META_PROPS].offset, name);
    }
    for (unsigned tag = 1; tag <= PROP_LAST; tag++)
        if (!(seen & (1u << tag)))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: properties block lacks %s", t->name,
                                    (ull)t->meta[META_PROPS].offset, prop_names[tag]);
    return 0;
}

/* Checks the blocks open promises to check: index, filter, properties. */
static int load_meta_blocks(strata_table_t *t, strata_error_t *err)
{
    uint64_t limit = t->size - FOOTER_SIZE;
    const uint8_t *data;
    size_t len;
    int rc = read_block(t, t->meta[META_INDEX], limit, "index", NULL, &data, &len, err);
    if (rc < 0)
        return rc;
    if (block_parse(&t->index, data, len) < 0)
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s offset %llu: index block restart array is malformed", t->name,
                                (ull)t->meta[META_INDEX].offset);
    if (t->meta[META_FILTER].size > 0) {
        rc = read_block(t, t->meta[META_FILTER], limit, "filter", NULL, &data, &len, err);
        if (rc < 0)
            return rc;
        if (!bloom_filter_valid(data, len))
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "%s offset %llu: filter block is malformed", t->name,
                                    (ull)t->meta[META_FILTER].offset);
        t->filter = data;
        t->filter_len = len;
    }
    rc = read_block(t, t->meta[META_PROPS], limit, "properties", NULL, &data, &len, err);
    if (rc < 0)
        return rc;
    rc = parse_props(t, data, len, err);
    t->props.file_size = t->size;
    return rc;
}

int strata_table_open(const strata_table_options_t *opts, const char *path,
                      strata_table_t **table_p, strata_error_t *err)
{
    /* The read side maps the file itself: the io seam has no mmap, and
     * faults are injected where tables are written. */
    *table_p = NULL;
    strata_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    t->name = display_name(t->path);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = strata_error_set(err, STRATA_EIO, "open %s: %s", path, strerror(errno));
        goto out;
    }
    t->size = (uint64_t)st.st_size;
    /* Checked before mapping, so no access can fall past the end (SIGBUS). */
    if (t->size < FOOTER_SIZE) {
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s offset 0: %llu bytes, shorter than the %u-byte footer", t->name,
                              (ull)t->size, FOOTER_SIZE);
        goto out;
    }
    void *map = mmap(NULL, t->size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = strata_error_set(err, STRATA_EIO, "mmap %s: %s", path, strerror(errno));
        goto out;
    }
    t->map = map;
    rc = read_footer(t, err);
    if (rc == 0)
        rc = load_meta_blocks(t, err);
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        strata_table_close(&t);
    *table_p = t;
    return rc;
}

void strata_table_close(strata_table_t **table_p)
{
    strata_table_t *t = *table_p;
    if (!t)
        return;
    *table_p = NULL;
    if (t->map)
        munmap(t->map, t->size);
    strata_table_props_clear(&t->props);
    free(t->path);
    free(t);
}

const strata_table_props_t *strata_table_props(const strata_table_t *self)
{
    return &self->props;
}

bool strata_table_may_contain(const strata_table_t *self, const void *key, size_t key_len)
{
    if (!self->filter)
        return true;
    return bloom_may_contain(self->filter, self->filter_len, bloom_hash(key, key_len));
}

/* The trailer that sorts before every entry of a user key with seq <= seq. */
static uint64_t seek_trailer(uint64_t seq)
{
    return ikey_trailer(seq > IKEY_MAX_SEQ ? IKEY_MAX_SEQ : seq, IKEY_SEEK_TYPE);
}

int strata_table_get(strata_table_t *self, const void *key, size_t key_len, uint64_t snapshot_seq,
                     strata_value_type_t *type, void **value, size_t *value_len, uint64_t *seq,
                     strata_error_t *err)
{
    if (key_len > MAX_USER_KEY || !strata_table_may_contain(self, key, key_len))
        return 0;
    uint64_t target = seek_trailer(snapshot_seq);
    block_iter_t index, it;
    block_iter_init(&index);
    block_iter_init(&it);
    block_iter_attach(&index, &self->index);
    block_iter_seek(&index, key, key_len, target);
    handle_t h;
    int rc = index_handle(self, &index, &h, err);
    uint8_t stack[GET_STACK_BYTES];
    scratch_t scratch = {stack, sizeof stack, false};
    block_t block;
    if (rc <= 0)
        goto out;
    rc = load_data_block(self, h, &scratch, &block, err);
    if (rc < 0)
        goto out;
    block_iter_attach(&it, &block);
    block_iter_seek(&it, key, key_len, target);
    /* The separator is below the next block's first key, so an entry of
     * this key at or below the snapshot cannot be in the next block. */
    if (!block_iter_valid(&it)) {
        rc = it.status ? block_iter_error(self, "data", h.offset, &it, err) : 0;
        goto out;
    }
    size_t ulen = it.key_len - IKEY_TRAILER;
    if (ulen != key_len || (key_len && memcmp(it.key, key, key_len) != 0)) {
        rc = 0;
        goto out;
    }
    rc = check_entry_type(self, h.offset, &it, err);
    if (rc < 0)
        goto out;
    uint64_t trailer = get_u64(it.key + ulen);
    if (value) {
        *value = dup_bytes(it.value, it.value_len);
        if (!*value) {
            rc = table_oom(self, err);
            goto out;
        }
    }
    if (value_len)
        *value_len = it.value_len;
    if (type)
        *type = (strata_value_type_t)(trailer & 0xff);
    if (seq)
        *seq = trailer >> 8;
    rc = 1;
out:
    block_iter_free(&index);
    block_iter_free(&it);
    scratch_free(&scratch);
    return rc;
}

/* ---- iterator -------------------------------------------------------- */

/* Two levels: index walks the index block, data the current data block. */
struct strata_table_iter {
    strata_table_t *table;
    block_iter_t index;
    block_iter_t data;
    bool in_block; /* data walks the block index points at */
    handle_t block_handle;
    scratch_t scratch;
    int status; /* sticky: the first error stops the iterator for good */
    strata_error_t error;
};

strata_table_iter_t *strata_table_iter_new(strata_table_t *table)
{
    strata_table_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->table = table;
    block_iter_init(&it->index);
    block_iter_init(&it->data);
    block_iter_attach(&it->index, &table->index);
    return it;
}

void strata_table_iter_destroy(strata_table_iter_t **self_p)
{
    strata_table_iter_t *it = *self_p;
    if (!it)
        return;
    *self_p = NULL;
    block_iter_free(&it->index);
    block_iter_free(&it->data);
    scratch_free(&it->scratch);
    free(it);
}

/* Attaches data to the block the index points at; false at the end of the
 * index or on an error (then status is set). */
static bool load_block(strata_table_iter_t *it)
{
    it->in_block = false;
    handle_t h;
    int rc = index_handle(it->table, &it->index, &h, &it->error);
    if (rc == 1) {
        block_t block;
        rc = load_data_block(it->table, h, &it->scratch, &block, &it->error);
        if (rc == 0) {
            block_iter_attach(&it->data, &block);
            it->block_handle = h;
            it->in_block = true;
            return true;
        }
    }
    it->status = rc;
    return false;
}

/* After a move: crosses to neighbouring blocks while the current one is
 * exhausted, and checks the entry it lands on. */
static void settle(strata_table_iter_t *it, bool forward)
{
    while (!block_iter_valid(&it->data)) {
        if (it->data.status) {
            it->status =
                block_iter_error(it->table, "data", it->block_handle.offset, &it->data, &it->error);
            it->in_block = false;
            return;
        }
        if (forward)
            block_iter_next(&it->index);
        else
            block_iter_prev(&it->index);
        if (!load_block(it))
            return;
        if (forward)
            block_iter_seek_first(&it->data);
        else
            block_iter_seek_last(&it->data);
    }
    it->status = check_entry_type(it->table, it->block_handle.offset, &it->data, &it->error);
    if (it->status)
        it->in_block = false;
}

void strata_table_iter_seek_first(strata_table_iter_t *it)
{
    if (it->status)
        return;
    block_iter_seek_first(&it->index);
    if (load_block(it)) {
        block_iter_seek_first(&it->data);
        settle(it, true);
    }
}

void strata_table_iter_seek_last(strata_table_iter_t *it)
{
    if (it->status)
        return;
    block_iter_seek_last(&it->index);
    if (load_block(it)) {
        block_iter_seek_last(&it->data);
        settle(it, false);
    }
}

void strata_table_iter_seek(strata_table_iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    if (it->status)
        return;
    uint64_t target = seek_trailer(seq);
    block_iter_seek(&it->index, key, key_len, target);
    if (load_block(it)) {
        block_iter_seek(&it->data, key, key_len, target);
        settle(it, true);
    }
}

bool strata_table_iter_valid(const strata_table_iter_t *it)
{
    return it->status == 0 && it->in_block && block_iter_valid(&it->data);
}

void strata_table_iter_next(strata_table_iter_t *it)
{
    if (strata_table_iter_valid(it)) {
        block_iter_next(&it->data);
        settle(it, true);
    }
}

void strata_table_iter_prev(strata_table_iter_t *it)
{
    if (strata_table_iter_valid(it)) {
        block_iter_prev(&it->data);
        settle(it, false);
    }
}

const void *strata_table_iter_key(const strata_table_iter_t *it, size_t *key_len)
{
    if (key_len)
        *key_len = it->data.key_len - IKEY_TRAILER;
    return it->data.key;
}

const void *strata_table_iter_value(const strata_table_iter_t *it, size_t *value_len)
{
    if (value_len)
        *value_len = it->data.value_len;
    return it->data.value;
}

uint64_t strata_table_iter_seq(const strata_table_iter_t *it)
{
    return get_u64(it->data.key + it->data.key_len - IKEY_TRAILER) >> 8;
}

strata_value_type_t strata_table_iter_type(const strata_table_iter_t *it)
{
    return (strata_value_type_t)(get_u64(it->data.key + it->data.key_len - IKEY_TRAILER) & 0xff);
}

int strata_table_iter_status(const strata_table_iter_t *it, strata_error_t *err)
{
    if (it->status && err)
        *err = it->error;
    return it->status;
}

/* ---- verify ---------------------------------------------------------- */

/* Is internal key a strictly before internal key b? */
static bool ikey_before(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return ikey_compare(a, alen, b, blen - IKEY_TRAILER, get_u64(b + blen - IKEY_TRAILER)) < 0;
}

int strata_table_verify(strata_table_t *self, strata_error_t *err)
{
    /* Open checked the meta blocks; the disk under the mapping may have
     * gone bad since, so their checksums are checked again. */
    int rc = 0;
    for (int i = 0; i < META_COUNT && rc == 0; i++) {
        const uint8_t *data;
        size_t len;
        if (self->meta[i].size > 0 || i != META_FILTER)
            rc = read_block(self, self->meta[i], self->size - FOOTER_SIZE, meta_names[i], NULL,
                            &data, &len, err);
    }
    if (rc < 0)
        return rc;

    block_iter_t index, data;
    block_iter_init(&index);
    block_iter_init(&data);
    block_iter_attach(&index, &self->index);
    scratch_t scratch = {0};
    sst_buf_t prev = {0}; /* the key before the current one, or the previous separator */
    uint64_t entries = 0, blocks = 0;
    for (block_iter_seek_first(&index);; block_iter_next(&index)) {
        handle_t h;
        rc = index_handle(self, &index, &h, err);
        if (rc <= 0)
            break;
        block_t block;
        rc = load_data_block(self, h, &scratch, &block, err);
        if (rc < 0)
            break;
        blocks++;
        block_iter_attach(&data, &block);
        for (block_iter_seek_first(&data); block_iter_valid(&data); block_iter_next(&data)) {
            rc = check_entry_type(self, h.offset, &data, err);
            if (rc == 0 && prev.len && !ikey_before(prev.data, prev.len, data.key, data.key_len))
                rc = strata_error_set(err, STRATA_ECORRUPT,
                                      "%s offset %llu: data block key out of order (entry at "
                                      "block offset %u)",
                                      self->name, (ull)h.offset, data.current);
            prev.len = 0;
            if (rc == 0 && sst_buf_append(&prev, data.key, data.key_len) < 0)
                rc = table_oom(self, err);
            if (rc < 0)
                goto out;
            entries++;
        }
        if (data.status) {
            rc = block_iter_error(self, "data", h.offset, &data, err);
            goto out;
        }
        /* The block's last key must not pass its separator. */
        if (prev.len && ikey_before(index.key, index.key_len, prev.data, prev.len)) {
            rc = strata_error_set(err, STRATA_ECORRUPT,
                                  "%s offset %llu: index separator below the last key of the "
                                  "data block at offset %llu",
                                  self->name, (ull)self->meta[META_INDEX].offset, (ull)h.offset);
            goto out;
        }
        prev.len = 0;
        if (sst_buf_append(&prev, index.key, index.key_len) < 0) {
            rc = table_oom(self, err);
            goto out;
        }
    }
    if (rc == 0 && (entries != self->props.entries || blocks != self->props.data_blocks))
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s: %llu entries in %llu data blocks, the properties say %llu in "
                              "%llu",
                              self->name, (ull)entries, (ull)blocks, (ull)self->props.entries,
                              (ull)self->props.data_blocks);
out:
    block_iter_free(&index);
    block_iter_free(&data);
    scratch_free(&scratch);
    sst_buf_free(&prev);
    return rc;
}
