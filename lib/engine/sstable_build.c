/* The SSTable builder: data blocks (LZ4 when it pays), the bloom filter,
 * properties, index and footer, written through the strata_io_t seam to a
 * temporary name and renamed once synced. Format: lib/engine/sstable.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bloom.h"
#include "coding.h"
#include "sstable_format.h"
#include "strata/crc.h"
#include "strata/sstable.h"

/* ==== writing ========================================================= */

struct strata_table_builder {
    strata_io_t *io;
    size_t block_bytes;
    int bloom_bits_per_key;
    bool lz4;
    char *path;
    char *tmp_path;
    int fd;
    uint64_t written; /* bytes handed to pwrite; out holds the ones after */
    sst_buf_t out;
    block_builder_t data;
    block_builder_t index;
    bloom_builder_t bloom;
    sst_buf_t last_key; /* internal key of the last entry */
    bool index_pending; /* the last flushed block waits for the next key to pick its separator */
    handle_t pending_handle;
    sst_buf_t compressed;
    sst_buf_t scratch;
    strata_table_props_t props; /* keys owned; handed to the caller at finish */
    int failed;                 /* sticky: the first I/O or memory failure */
    strata_error_t failure;
};

static int builder_fail(strata_table_builder_t *self, strata_error_t *err, int code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int builder_fail(strata_table_builder_t *self, strata_error_t *err, int code,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->failure.msg, sizeof self->failure.msg, fmt, ap);
    va_end(ap);
    self->failure.code = code;
    self->failed = code;
    if (err)
        *err = self->failure;
    return code;
}

static int builder_oom(strata_table_builder_t *self, strata_error_t *err)
{
    return builder_fail(self, err, STRATA_ENOMEM, "building %s: out of memory",
                        display_name(self->tmp_path));
}

static int write_out(strata_table_builder_t *self, const void *data, size_t len,
                     strata_error_t *err)
{
    int sys = strata_io_pwrite_all(self->io, self->fd, data, len, self->written);
    if (sys < 0)
        return builder_fail(self, err, STRATA_EIO, "write %s offset %llu: %s",
                            display_name(self->tmp_path), (ull)self->written, strerror(-sys));
    self->written += len;
    return 0;
}

static int flush_out(strata_table_builder_t *self, strata_error_t *err)
{
    int rc = self->out.len ? write_out(self, self->out.data, self->out.len, err) : 0;
    self->out.len = 0;
    return rc;
}

/* Appends contents and their trailer to the file; large contents bypass
 * the staging buffer so a 256 MiB value is not copied once more. */
static int emit_block(strata_table_builder_t *self, const uint8_t *contents, size_t len,
                      uint8_t type, handle_t *handle, strata_error_t *err)
{
    handle->offset = self->written + self->out.len;
    handle->size = len;
    uint8_t trailer[BLOCK_TRAILER];
    trailer[0] = type;
    put_u32(trailer + 1, strata_crc32c(strata_crc32c(0, contents, len), &type, 1));
    int rc = 0;
    if (len >= OUT_FLUSH) {
        rc = flush_out(self, err);
        if (rc == 0)
            rc = write_out(self, contents, len, err);
    } else if (sst_buf_append(&self->out, contents, len) < 0) {
        rc = builder_oom(self, err);
    }
    if (rc == 0 && sst_buf_append(&self->out, trailer, sizeof trailer) < 0)
        rc = builder_oom(self, err);
    if (rc == 0 && self->out.len >= OUT_FLUSH)
        rc = flush_out(self, err);
    return rc;
}

/* LZ4 is kept only when it saves at least an eighth: below that the
 * decompression on every read costs more than the bytes saved. */
static bool compress_block(strata_table_builder_t *self, const uint8_t *raw, size_t raw_len)
{
    if (raw_len > LZ4_MAX_INPUT_SIZE)
        return false;
    int bound = LZ4_compressBound((int)raw_len);
    self->compressed.len = 0;
    if (sst_buf_reserve(&self->compressed, VARINT64_MAX_BYTES + (size_t)bound) < 0)
        return false;
    size_t header = varint_put(self->compressed.data, raw_len);
    int n = LZ4_compress_default((const char *)raw, (char *)self->compressed.data + header,
                                 (int)raw_len, bound);
    if (n <= 0 || header + (size_t)n > raw_len - raw_len / 8 ||
        raw_len > (size_t)n * LZ4_MAX_RATIO + 64) /* the reader's sanity bound; never hit */
        return false;
    self->compressed.len = header + (size_t)n;
    return true;
}

static int flush_data_block(strata_table_builder_t *self, strata_error_t *err)
{
    const uint8_t *raw;
    size_t raw_len;
    if (block_builder_finish(&self->data, &raw, &raw_len) < 0)
        return builder_oom(self, err);
    int rc;
    if (self->lz4 && compress_block(self, raw, raw_len))
        rc = emit_block(self, self->compressed.data, self->compressed.len, BLOCK_TYPE_LZ4,
                        &self->pending_handle, err);
    else
        rc = emit_block(self, raw, raw_len, BLOCK_TYPE_RAW, &self->pending_handle, err);
    if (rc < 0)
        return rc;
    block_builder_reset(&self->data);
    self->index_pending = true;
    self->props.data_blocks++;
    return 0;
}

/* Writes into sep a key k with last <= k < (next_user, any seq): the
 * last key's user key cut after its first byte that differs from next,
 * that byte incremented, when that is possible; else the last key. Short
 * separators keep the index small and its binary search in cache. */
static int make_separator(sst_buf_t *sep, const uint8_t *last, size_t last_len,
                          const uint8_t *next_user, size_t next_len)
{
    size_t last_user = last_len - IKEY_TRAILER;
    size_t limit = last_user < next_len ? last_user : next_len;
    size_t i = 0;
    while (i < limit && last[i] == next_user[i])
        i++;
    sep->len = 0;
    if (i < limit && last[i] < 0xff && last[i] + 1 < next_user[i]) {
        if (sst_buf_reserve(sep, i + 1 + IKEY_TRAILER) < 0)
            return STRATA_ENOMEM;
        memcpy(sep->data, last, i);
        sep->data[i] = last[i] + 1;
        /* The largest trailer sorts first among keys with this user key. */
        put_u64(sep->data + i + 1, ikey_trailer(IKEY_MAX_SEQ, IKEY_SEEK_TYPE));
        sep->len = i + 1 + IKEY_TRAILER;
        return 0;
    }
    return sst_buf_append(sep, last, last_len);
}

/* Adds the index entry of the pending block: separator -> handle. */
static int add_index_entry(strata_table_builder_t *self, const uint8_t *sep, size_t sep_len,
                           strata_error_t *err)
{
    uint8_t value[2 * VARINT64_MAX_BYTES];
    size_t n = varint_put(value, self->pending_handle.offset);
    n += varint_put(value + n, self->pending_handle.size);
    if (block_builder_add(&self->index, sep, sep_len, value, n) < 0)
        return builder_oom(self, err);
    self->index_pending = false;
    return 0;
}

int strata_table_builder_new(const strata_table_options_t *opts, const char *path,
                             strata_table_builder_t **builder_p, strata_error_t *err)
{
    *builder_p = NULL;
    strata_table_options_t o;
    strata_table_options_init(&o);
    if (opts)
        o = *opts;
    if (o.block_bytes == 0)
        o.block_bytes = DEFAULT_BLOCK_BYTES;
    if (o.restart_interval == 0)
        o.restart_interval = DEFAULT_RESTART_INTERVAL;
    if (o.block_bytes > MAX_BLOCK_OPT || o.restart_interval < 0 || o.bloom_bits_per_key < 0 ||
        o.bloom_bits_per_key > 100)
        return strata_error_set(err, STRATA_EINVAL,
                                "table options out of range (block_bytes %zu, restart_interval "
                                "%d, bloom_bits_per_key %d)",
                                o.block_bytes, o.restart_interval, o.bloom_bits_per_key);
    strata_table_builder_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->io = o.io ? o.io : strata_io_posix();
    self->block_bytes = o.block_bytes;
    self->bloom_bits_per_key = o.bloom_bits_per_key;
    self->lz4 = o.lz4;
    self->fd = -1;
    self->props.min_seq = UINT64_MAX;
    block_builder_init(&self->data, o.restart_interval);
    /* Every index key is a restart: the binary search lands on the entry. */
    block_builder_init(&self->index, 1);
    bloom_builder_init(&self->bloom, o.bloom_bits_per_key);
    self->path = strdup(path);
    if (!self->path || asprintf(&self->tmp_path, "%s.tmp", path) < 0) {
        self->tmp_path = NULL;
        strata_table_builder_abandon(&self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    int fd = self->io->open(self->io, self->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        int rc = strata_error_set(err, STRATA_EIO, "create %s: %s", self->tmp_path, strerror(-fd));
        strata_table_builder_abandon(&self);
        return rc;
    }
    self->fd = fd;
    *builder_p = self;
    return 0;
}

int strata_table_builder_add(strata_table_builder_t *self, const void *key, size_t key_len,
                             uint64_t seq, strata_value_type_t type, const void *value,
                             size_t value_len, strata_error_t *err)
{
    if (self->failed)
        return strata_error_set(err, self->failed, "%s", self->failure.msg);
    const char *name = display_name(self->tmp_path);
    if (type != STRATA_VALUE_PUT && type != STRATA_VALUE_DELETE)
        return strata_error_set(err, STRATA_EINVAL, "%s: unknown value type %d", name, (int)type);
    if (seq > IKEY_MAX_SEQ)
        return strata_error_set(err, STRATA_EINVAL, "%s: seq %llu beyond 56 bits", name, (ull)seq);
    if (key_len > MAX_USER_KEY || value_len > BLOCK_MAX_VALUE)
        return strata_error_set(err, STRATA_ETOOBIG,
                                "%s: key of %zu bytes or value of %zu bytes beyond the caps "
                                "(%u, %u)",
                                name, key_len, value_len, MAX_USER_KEY, BLOCK_MAX_VALUE);
    uint64_t trailer = ikey_trailer(seq, type);
    uint64_t entries = self->props.entries;
    bool new_user_key = true;
    if (entries > 0) {
        if (ikey_compare(self->last_key.data, self->last_key.len, key, key_len, trailer) >= 0)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: entry %llu (seq %llu) is not after the previous one", name,
                                    (ull)entries, (ull)seq);
        new_user_key = self->last_key.len - IKEY_TRAILER != key_len ||
                       (key_len && memcmp(self->last_key.data, key, key_len) != 0);
    }

    int rc = 0;
    if (self->index_pending) {
        if (make_separator(&self->scratch, self->last_key.data, self->last_key.len, key, key_len) <
            0)
            return builder_oom(self, err);
        rc = add_index_entry(self, self->scratch.data, self->scratch.len, err);
        if (rc < 0)
            return rc;
    }
    if (new_user_key && self->bloom_bits_per_key > 0 &&
        bloom_builder_add(&self->bloom, key, key_len) < 0)
        return builder_oom(self, err);
    if (entries == 0) {
        self->props.smallest_key = dup_bytes(key, key_len);
        if (!self->props.smallest_key)
            return builder_oom(self, err);
        self->props.smallest_len = key_len;
    }
    self->last_key.len = 0;
    if (sst_buf_reserve(&self->last_key, key_len + IKEY_TRAILER) < 0)
        return builder_oom(self, err);
    if (key_len)
        memcpy(self->last_key.data, key, key_len);
    put_u64(self->last_key.data + key_len, trailer);
    self->last_key.len = key_len + IKEY_TRAILER;
    if (block_builder_add(&self->data, self->last_key.data, self->last_key.len, value, value_len) <
        0)
        return builder_oom(self, err);

    strata_table_props_t *p = &self->props;
    p->entries++;
    p->deletes += type == STRATA_VALUE_DELETE;
    p->min_seq = seq < p->min_seq ? seq : p->min_seq;
    p->max_seq = seq > p->max_seq ? seq : p->max_seq;
    p->raw_key_bytes += key_len;
    p->raw_value_bytes += value_len;
    if (block_builder_estimate(&self->data) >= self->block_bytes)
        rc = flush_data_block(self, err);
    return rc;
}

uint64_t strata_table_builder_size(const strata_table_builder_t *self)
{
    return self->written + self->out.len + block_builder_estimate(&self->data);
}

uint64_t strata_table_builder_entries(const strata_table_builder_t *self)
{
    return self->props.entries;
}

static int put_prop_u64(sst_buf_t *buf, unsigned tag, uint64_t v)
{
    uint8_t value[VARINT64_MAX_BYTES];
    size_t n = varint_put(value, v);
    if (sst_buf_append_varint(buf, tag) < 0 || sst_buf_append_varint(buf, n) < 0)
        return STRATA_ENOMEM;
    return sst_buf_append(buf, value, n);
}

static int put_prop_bytes(sst_buf_t *buf, unsigned tag, const uint8_t *data, size_t len)
{
    if (sst_buf_append_varint(buf, tag) < 0 || sst_buf_append_varint(buf, len) < 0)
        return STRATA_ENOMEM;
    return sst_buf_append(buf, data, len);
}

static int encode_props(sst_buf_t *buf, const strata_table_props_t *p)
{
    buf->len = 0;
    int rc = put_prop_u64(buf, PROP_ENTRIES, p->entries);
    rc = rc ? rc : put_prop_u64(buf, PROP_DELETES, p->deletes);
    rc = rc ? rc : put_prop_u64(buf, PROP_MIN_SEQ, p->min_seq);
    rc = rc ? rc : put_prop_u64(buf, PROP_MAX_SEQ, p->max_seq);
    rc = rc ? rc : put_prop_u64(buf, PROP_DATA_BLOCKS, p->data_blocks);
    rc = rc ? rc : put_prop_u64(buf, PROP_RAW_KEY_BYTES, p->raw_key_bytes);
    rc = rc ? rc : put_prop_u64(buf, PROP_RAW_VALUE_BYTES, p->raw_value_bytes);
    rc = rc ? rc : put_prop_bytes(buf, PROP_SMALLEST_KEY, p->smallest_key, p->smallest_len);
    rc = rc ? rc : put_prop_bytes(buf, PROP_LARGEST_KEY, p->largest_key, p->largest_len);
    return rc;
}

static void encode_footer(uint8_t *f, const handle_t meta[META_COUNT])
{
    for (int i = 0; i < META_COUNT; i++) {
        put_u64(f + 4 + 16 * i, meta[i].offset);
        put_u64(f + 12 + 16 * i, meta[i].size);
    }
    put_u32(f + 52, TABLE_VERSION);
    memcpy(f + 56, TABLE_MAGIC, 8);
    put_u32(f, strata_crc32c(0, f + 4, FOOTER_SIZE - 4));
}

/* Everything after the last entry: the blocks after the data, then the
 * file made durable under its final name. */
static int write_tail(strata_table_builder_t *self, strata_error_t *err)
{
    strata_table_props_t *p = &self->props;
    int rc = 0;
    if (!block_builder_empty(&self->data))
        rc = flush_data_block(self, err);
    if (rc == 0 && self->index_pending) /* the last block's separator is its last key */
        rc = add_index_entry(self, self->last_key.data, self->last_key.len, err);
    if (rc < 0)
        return rc;
    if (p->entries == 0) {
        p->min_seq = 0;
        p->smallest_key = dup_bytes(NULL, 0);
    }
    p->largest_len = p->entries ? self->last_key.len - IKEY_TRAILER : 0;
    p->largest_key = dup_bytes(self->last_key.data, p->largest_len);
    if (!p->smallest_key || !p->largest_key)
        return builder_oom(self, err);

    handle_t meta[META_COUNT] = {{0, 0}}; /* no filter: a zero handle */
    if (self->bloom_bits_per_key > 0) {
        size_t len = bloom_builder_size(&self->bloom);
        self->scratch.len = 0;
        if (sst_buf_reserve(&self->scratch, len) < 0)
            return builder_oom(self, err);
        bloom_builder_finish(&self->bloom, self->scratch.data);
        rc = emit_block(self, self->scratch.data, len, BLOCK_TYPE_RAW, &meta[META_FILTER], err);
        if (rc < 0)
            return rc;
    }
    if (encode_props(&self->scratch, p) < 0)
        return builder_oom(self, err);
    rc = emit_block(self, self->scratch.data, self->scratch.len, BLOCK_TYPE_RAW, &meta[META_PROPS],
                    err);
    if (rc < 0)
        return rc;
    const uint8_t *index_data;
    size_t index_len;
    if (block_builder_finish(&self->index, &index_data, &index_len) < 0)
        return builder_oom(self, err);
    rc = emit_block(self, index_data, index_len, BLOCK_TYPE_RAW, &meta[META_INDEX], err);
    if (rc < 0)
        return rc;
    uint8_t footer[FOOTER_SIZE];
    encode_footer(footer, meta);
    if (sst_buf_append(&self->out, footer, sizeof footer) < 0)
        return builder_oom(self, err);
    rc = flush_out(self, err);
    if (rc < 0)
        return rc;
    p->file_size = self->written;

    strata_io_t *io = self->io;
    const char *name = display_name(self->tmp_path);
    int sys = io->fdatasync(io, self->fd);
    if (sys < 0)
        return builder_fail(self, err, STRATA_EIO, "fdatasync %s: %s", name, strerror(-sys));
    sys = io->close(io, self->fd);
    self->fd = -1;
    if (sys < 0)
        return builder_fail(self, err, STRATA_EIO, "close %s: %s", name, strerror(-sys));
    sys = io->rename(io, self->tmp_path, self->path);
    if (sys < 0)
        return builder_fail(self, err, STRATA_EIO, "rename %s to %s: %s", name,
                            display_name(self->path), strerror(-sys));
    char *dir = parent_dir(self->path);
    sys = dir ? io->sync_dir(io, dir) : -ENOMEM;
    free(dir);
    if (sys < 0) {
        /* Not durable, so not a table: the caller sees an error and no file. */
        io->unlink(io, self->path);
        return builder_fail(self, err, STRATA_EIO, "sync directory of %s: %s",
                            display_name(self->path), strerror(-sys));
    }
    return 0;
}

static void builder_free(strata_table_builder_t *self)
{
    sst_buf_free(&self->out);
    block_builder_free(&self->data);
    block_builder_free(&self->index);
    bloom_builder_free(&self->bloom);
    sst_buf_free(&self->last_key);
    sst_buf_free(&self->compressed);
    sst_buf_free(&self->scratch);
    strata_table_props_clear(&self->props);
    free(self->path);
    free(self->tmp_path);
    free(self);
}

int strata_table_builder_finish(strata_table_builder_t **builder_p, strata_table_props_t *props,
                                strata_error_t *err)
{
    strata_table_builder_t *self = *builder_p;
    *builder_p = NULL;
    int rc = self->failed ? strata_error_set(err, self->failed, "%s", self->failure.msg)
                          : write_tail(self, err);
    if (rc < 0) {
        strata_table_builder_abandon(&self);
        return rc;
    }
    if (props) { /* hand over the keys rather than copy: nothing can fail after the rename */
        *props = self->props;
        self->props = (strata_table_props_t){0};
    }
    builder_free(self);
    return 0;
}

void strata_table_builder_abandon(strata_table_builder_t **builder_p)
{
    strata_table_builder_t *self = *builder_p;
    if (!self)
        return;
    *builder_p = NULL;
    if (self->fd >= 0)
        self->io->close(self->io, self->fd);
    if (self->tmp_path)
        self->io->unlink(self->io, self->tmp_path);
    builder_free(self);
}

/* ==== reading ========================================================= */
