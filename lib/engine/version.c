/* The version set: the MANIFEST log of version edits, CURRENT, reference
 * counted versions and the table cache. Format in lib/engine/manifest.md. The
 * writer is the only process that changes the MANIFEST. */
#define _GNU_SOURCE
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coding.h"
#include "strata/crc.h"
#include "strata/manifest.h"

#define MANIFEST_MAGIC      "STRATAMF"
#define MANIFEST_VERSION    1u
#define MANIFEST_HEADER     16u
#define MANIFEST_MAX_RECORD (64u << 20)

enum {
    TAG_FLUSHED_SEQ = 1,
    TAG_NEXT_FILE = 2,
    TAG_LAST_SEQ = 3,
    TAG_ADD_FILE = 4,
    TAG_DELETE_FILE = 5,
};

struct vset {
    char *dir;
    strata_io_t *io;
    strata_table_options_t table_opts;
    pthread_mutex_t mu; /* guards current; the table cache has its own lock */
    pthread_mutex_t table_mu;
    vfile_t lru; /* sentinel: lru.lru_next is the most recent */
    size_t open_tables;
    size_t max_open_tables;
    version_t *current;
    uint64_t next_file; /* under mu: flush and compaction both take numbers */
    /* Written by the one applier, read by stats from any thread. */
    _Atomic uint64_t flushed_seq;
    _Atomic uint64_t last_seq;
    /* Bumped by every installed edit: how a compactor in another process
     * learns that the version it picked from has changed. */
    _Atomic uint64_t generation;
    uint64_t manifest_number;
    int manifest_fd;
    uint64_t manifest_offset;
};

/* ---- files and edits --------------------------------------------------- */

static vfile_t *file_alloc(uint64_t number, uint64_t size, uint64_t entries, uint64_t min_seq,
                           uint64_t max_seq, const void *smallest, size_t smallest_len,
                           const void *largest, size_t largest_len)
{
    vfile_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->number = number;
    f->size = size;
    f->entries = entries;
    f->min_seq = min_seq;
    f->max_seq = max_seq;
    f->smallest = dup_bytes(smallest, smallest_len);
    f->smallest_len = smallest_len;
    f->largest = dup_bytes(largest, largest_len);
    f->largest_len = largest_len;
    atomic_init(&f->refs, 1);
    if (!f->smallest || !f->largest) {
        free(f->smallest);
        free(f->largest);
        free(f);
        return NULL;
    }
    return f;
}

vfile_t *vfile_new(uint64_t number, const strata_table_props_t *p)
{
    return file_alloc(number, p->file_size, p->entries, p->min_seq, p->max_seq, p->smallest_key,
                      p->smallest_len, p->largest_key, p->largest_len);
}

static void file_ref(vfile_t *f)
{
    atomic_fetch_add(&f->refs, 1);
}

void vfile_unref(vfile_t **file_p)
{
    vfile_t *f = *file_p;
    *file_p = NULL;
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->table && f->vset) {
        pthread_mutex_lock(&f->vset->table_mu);
        f->lru_prev->lru_next = f->lru_next;
        f->lru_next->lru_prev = f->lru_prev;
        f->vset->open_tables--;
        pthread_mutex_unlock(&f->vset->table_mu);
    }
    strata_table_close(&f->table);
    /* Deleted only here: no version, iterator or read can still use it. */
    if (f->obsolete && f->vset) {
        char *path = vset_table_path(f->vset, f->number);
        if (path)
            f->vset->io->unlink(f->vset->io, path);
        free(path);
    }
    free(f->smallest);
    free(f->largest);
    free(f);
}

void edit_init(edit_t *edit)
{
    memset(edit, 0, sizeof *edit);
}

void edit_clear(edit_t *edit)
{
    for (size_t i = 0; i < edit->n_adds; i++)
        vfile_unref(&edit->adds[i].file);
    free(edit->adds);
    free(edit->deletes);
    edit_init(edit);
}

int edit_add(edit_t *edit, int level, vfile_t *file)
{
    if (edit->n_adds == edit->cap_adds) {
        size_t cap = edit->cap_adds ? edit->cap_adds * 2 : 4;
        void *grown = realloc(edit->adds, cap * sizeof *edit->adds);
        if (!grown)
            return STRATA_ENOMEM;
        edit->adds = grown;
        edit->cap_adds = cap;
    }
    edit->adds[edit->n_adds].level = level;
    edit->adds[edit->n_adds].file = file;
    edit->n_adds++;
    return 0;
}

int edit_delete(edit_t *edit, int level, uint64_t number)
{
    if (edit->n_deletes == edit->cap_deletes) {
        size_t cap = edit->cap_deletes ? edit->cap_deletes * 2 : 4;
        void *grown = realloc(edit->deletes, cap * sizeof *edit->deletes);
        if (!grown)
            return STRATA_ENOMEM;
        edit->deletes = grown;
        edit->cap_deletes = cap;
    }
    edit->deletes[edit->n_deletes].level = level;
    edit->deletes[edit->n_deletes].number = number;
    edit->n_deletes++;
    return 0;
}

/* ---- versions ---------------------------------------------------------- */

static version_t *version_new(vset_t *vset)
{
    version_t *v = calloc(1, sizeof *v);
    if (v) {
        atomic_init(&v->refs, 1);
        v->vset = vset;
    }
    return v;
}

void version_unref(version_t **version_p)
{
    version_t *v = *version_p;
    *version_p = NULL;
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    for (int level = 0; level < STRATA_LEVELS; level++) {
        for (size_t i = 0; i < v->n_files[level]; i++)
            vfile_unref(&v->files[level][i]);
        free(v->files[level]);
    }
    free(v);
}

static int compare_keys(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

static int cmp_l0(const void *a, const void *b)
{
    const vfile_t *x = *(vfile_t *const *)a, *y = *(vfile_t *const *)b;
    /* Newest first: a later flush or compaction output has a larger number. */
    return x->max_seq != y->max_seq ? (x->max_seq < y->max_seq ? 1 : -1)
                                    : (x->number < y->number ? 1 : -1);
}

static int cmp_by_smallest(const void *a, const void *b)
{
    const vfile_t *x = *(vfile_t *const *)a, *y = *(vfile_t *const *)b;
    return compare_keys(x->smallest, x->smallest_len, y->smallest, y->smallest_len);
}

/* base + edit -> a new version; every file in it gets a reference. */
static int version_apply(vset_t *vset, const version_t *base, const edit_t *edit, version_t **out,
                         strata_error_t *err)
{
    version_t *v = version_new(vset);
    if (!v)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    for (int level = 0; level < STRATA_LEVELS; level++) {
        size_t cap = (base ? base->n_files[level] : 0) + edit->n_adds;
        v->files[level] = cap ? malloc(cap * sizeof(vfile_t *)) : NULL;
        if (cap && !v->files[level]) {
            version_unref(&v);
            return strata_error_set(err, STRATA_ENOMEM, "out of memory");
        }
        for (size_t i = 0; base && i < base->n_files[level]; i++) {
            vfile_t *f = base->files[level][i];
            bool deleted = false;
            for (size_t d = 0; d < edit->n_deletes && !deleted; d++)
                deleted = edit->deletes[d].level == level && edit->deletes[d].number == f->number;
            if (deleted)
                continue;
            file_ref(f);
            v->files[level][v->n_files[level]++] = f;
        }
        for (size_t a = 0; a < edit->n_adds; a++) {
            if (edit->adds[a].level != level)
                continue;
            file_ref(edit->adds[a].file);
            edit->adds[a].file->vset = vset;
            v->files[level][v->n_files[level]++] = edit->adds[a].file;
        }
        if (v->n_files[level] > 1)
            qsort(v->files[level], v->n_files[level], sizeof(vfile_t *),
                  level == 0 ? cmp_l0 : cmp_by_smallest);
    }
    *out = v;
    return 0;
}

version_t *vset_current(vset_t *self)
{
    pthread_mutex_lock(&self->mu);
    version_t *v = self->current;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&self->mu);
    return v;
}

uint64_t version_level_bytes(const version_t *self, int level)
{
    uint64_t total = 0;
    for (size_t i = 0; i < self->n_files[level]; i++)
        total += self->files[level][i]->size;
    return total;
}

static void lru_unlink(vfile_t *f)
{
    f->lru_prev->lru_next = f->lru_next;
    f->lru_next->lru_prev = f->lru_prev;
}

static void lru_push_front(vset_t *vset, vfile_t *f)
{
    f->lru_next = vset->lru.lru_next;
    f->lru_prev = &vset->lru;
    vset->lru.lru_next->lru_prev = f;
    vset->lru.lru_next = f;
}

int vfile_table(vfile_t *file, strata_table_t **table, strata_error_t *err)
{
    vset_t *vset = file->vset;
    pthread_mutex_lock(&vset->table_mu);
    int rc = 0;
    if (file->table) {
        lru_unlink(file);
    } else {
        char *path = vset_table_path(vset, file->number);
        rc = path ? strata_table_open(&vset->table_opts, path, &file->table, err)
                  : strata_error_set(err, STRATA_ENOMEM, "out of memory");
        free(path);
        if (rc == 0)
            vset->open_tables++;
    }
    if (rc == 0) {
        lru_push_front(vset, file);
        file->table_pins++;
        /* Over the bound: close the least recently used tables nobody is
         * reading; pinned ones wait for their turn. */
        for (vfile_t *f = vset->lru.lru_prev;
             vset->open_tables > vset->max_open_tables && f != &vset->lru;) {
            vfile_t *prev = f->lru_prev;
            if (f->table_pins == 0) {
                lru_unlink(f);
                strata_table_close(&f->table);
                vset->open_tables--;
            }
            f = prev;
        }
    }
    *table = file->table;
    pthread_mutex_unlock(&vset->table_mu);
    return rc;
}

void vfile_table_unpin(vfile_t *file)
{
    pthread_mutex_lock(&file->vset->table_mu);
    file->table_pins--;
    pthread_mutex_unlock(&file->vset->table_mu);
}

void vset_set_max_open_tables(vset_t *self, size_t max_open)
{
    pthread_mutex_lock(&self->table_mu);
    self->max_open_tables = max_open ? max_open : 1;
    pthread_mutex_unlock(&self->table_mu);
}

size_t vset_open_tables(vset_t *self)
{
    pthread_mutex_lock(&self->table_mu);
    size_t n = self->open_tables;
    pthread_mutex_unlock(&self->table_mu);
    return n;
}

static int file_get(vfile_t *f, const void *key, size_t key_len, uint64_t snapshot,
                    strata_value_type_t *type, void **value, size_t *value_len, strata_error_t *err)
{
    if (compare_keys(key, key_len, f->smallest, f->smallest_len) < 0 ||
        compare_keys(key, key_len, f->largest, f->largest_len) > 0 || f->min_seq > snapshot)
        return 0;
    strata_table_t *table;
    int rc = vfile_table(f, &table, err);
    if (rc)
        return rc;
    rc = strata_table_get(table, key, key_len, snapshot, type, value, value_len, NULL, err);
    vfile_table_unpin(f);
    return rc;
}

int version_get(version_t *self, const void *key, size_t key_len, uint64_t snapshot_seq,
                strata_value_type_t *type, void **value, size_t *value_len, strata_error_t *err)
{
    /* L0 files overlap: newest first, and the first hit is the newest
     * version at or below the snapshot, because a newer file holds only
     * newer seqs than any older file. */
    for (size_t i = 0; i < self->n_files[0]; i++) {
        int rc =
            file_get(self->files[0][i], key, key_len, snapshot_seq, type, value, value_len, err);
        if (rc)
            return rc;
    }
    for (int level = 1; level < STRATA_LEVELS; level++) {
        size_t lo = 0, hi = self->n_files[level];
        while (lo < hi) { /* first file whose largest key >= key */
            size_t mid = lo + (hi - lo) / 2;
            vfile_t *f = self->files[level][mid];
            if (compare_keys(f->largest, f->largest_len, key, key_len) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == self->n_files[level])
            continue;
        int rc = file_get(self->files[level][lo], key, key_len, snapshot_seq, type, value,
                          value_len, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- MANIFEST encoding ------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool oom;
} buf_t;

static void buf_put(buf_t *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_u8(buf_t *b, uint8_t v)
{
    buf_put(b, &v, 1);
}
static void buf_u32(buf_t *b, uint32_t v)
{
    uint8_t le[4];
    put_u32(le, v);
    buf_put(b, le, 4);
}
static void buf_u64(buf_t *b, uint64_t v)
{
    uint8_t le[8];
    put_u64(le, v);
    buf_put(b, le, 8);
}

static void encode_add(buf_t *b, int level, const vfile_t *f)
{
    buf_u8(b, TAG_ADD_FILE);
    buf_u8(b, (uint8_t)level);
    buf_u64(b, f->number);
    buf_u64(b, f->size);
    buf_u64(b, f->entries);
    buf_u64(b, f->min_seq);
    buf_u64(b, f->max_seq);
    buf_u32(b, (uint32_t)f->smallest_len);
    buf_put(b, f->smallest, f->smallest_len);
    buf_u32(b, (uint32_t)f->largest_len);
    buf_put(b, f->largest, f->largest_len);
}

static void encode_edit(buf_t *b, const edit_t *edit, uint64_t next_file)
{
    buf_u8(b, TAG_NEXT_FILE);
    buf_u64(b, next_file);
    if (edit->has_flushed_seq) {
        buf_u8(b, TAG_FLUSHED_SEQ);
        buf_u64(b, edit->flushed_seq);
    }
    if (edit->has_last_seq) {
        buf_u8(b, TAG_LAST_SEQ);
        buf_u64(b, edit->last_seq);
    }
    for (size_t i = 0; i < edit->n_deletes; i++) {
        buf_u8(b, TAG_DELETE_FILE);
        buf_u8(b, (uint8_t)edit->deletes[i].level);
        buf_u64(b, edit->deletes[i].number);
    }
    for (size_t i = 0; i < edit->n_adds; i++)
        encode_add(b, edit->adds[i].level, edit->adds[i].file);
}

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} reader_t;

static const uint8_t *rd_take(reader_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}
static uint8_t rd_u8(reader_t *r)
{
    const uint8_t *p = rd_take(r, 1);
    return p ? *p : 0;
}
static uint32_t rd_u32(reader_t *r)
{
    const uint8_t *p = rd_take(r, 4);
    return p ? get_u32(p) : 0;
}
static uint64_t rd_u64(reader_t *r)
{
    const uint8_t *p = rd_take(r, 8);
    return p ? get_u64(p) : 0;
}

/* Decodes one record's payload into edit (+ next_file). Returns a field
 * name on malformed input, NULL when fine. */
static const char *decode_edit(const uint8_t *data, size_t len, edit_t *edit, uint64_t *next_file)
{
    reader_t r = {data, data + len, false};
    while (r.p < r.end && !r.bad) {
        uint8_t tag = rd_u8(&r);
        switch (tag) {
        case TAG_NEXT_FILE:
            *next_file = rd_u64(&r);
            break;
        case TAG_FLUSHED_SEQ:
            edit->has_flushed_seq = true;
            edit->flushed_seq = rd_u64(&r);
            break;
        case TAG_LAST_SEQ:
            edit->has_last_seq = true;
            edit->last_seq = rd_u64(&r);
            break;
        case TAG_DELETE_FILE: {
            uint8_t level = rd_u8(&r);
            uint64_t number = rd_u64(&r);
            if (r.bad)
                return "delete_file";
            if (level >= STRATA_LEVELS)
                return "delete_file.level";
            if (edit_delete(edit, level, number))
                return "out of memory";
            break;
        }
        case TAG_ADD_FILE: {
            uint8_t level = rd_u8(&r);
            uint64_t number = rd_u64(&r), size = rd_u64(&r), entries = rd_u64(&r);
            uint64_t min_seq = rd_u64(&r), max_seq = rd_u64(&r);
            uint32_t smallest_len = rd_u32(&r);
            const uint8_t *smallest = rd_take(&r, smallest_len);
            uint32_t largest_len = rd_u32(&r);
            const uint8_t *largest = rd_take(&r, largest_len);
            if (r.bad)
                return "add_file";
            if (level >= STRATA_LEVELS)
                return "add_file.level";
            vfile_t *f = file_alloc(number, size, entries, min_seq, max_seq, smallest, smallest_len,
                                    largest, largest_len);
            if (!f || edit_add(edit, level, f)) {
                vfile_unref(&f);
                return "out of memory";
            }
            break;
        }
        default:
            return "tag";
        }
    }
    return r.bad ? "truncated field" : NULL;
}

/* ---- MANIFEST files ---------------------------------------------------- */

char *vset_table_path(const vset_t *self, uint64_t number)
{
    char *path = NULL;
    return asprintf(&path, "%s/%06" PRIu64 ".sst", self->dir, number) < 0 ? NULL : path;
}

static char *manifest_path(const vset_t *self, uint64_t number)
{
    char *path = NULL;
    return asprintf(&path, "%s/MANIFEST-%06" PRIu64, self->dir, number) < 0 ? NULL : path;
}

static int append_record(vset_t *self, const buf_t *payload, strata_error_t *err)
{
    uint8_t header[8];
    put_u32(header + 4, (uint32_t)payload->len);
    put_u32(header, strata_crc32c(strata_crc32c(0, header + 4, 4), payload->data, payload->len));
    strata_io_t *io = self->io;
    int sys =
        strata_io_pwrite_all(io, self->manifest_fd, header, sizeof header, self->manifest_offset);
    if (sys == 0)
        sys = strata_io_pwrite_all(io, self->manifest_fd, payload->data, payload->len,
                                   self->manifest_offset + sizeof header);
    if (sys == 0)
        sys = io->fdatasync(io, self->manifest_fd);
    if (sys < 0)
        return strata_error_set(err, STRATA_EIO, "MANIFEST-%06" PRIu64 " write: %s",
                                self->manifest_number, strerror(-sys));
    self->manifest_offset += sizeof header + payload->len;
    return 0;
}

/* Writes a new MANIFEST holding the whole current version, makes it
 * durable, then atomically points CURRENT at it. */
static int write_new_manifest(vset_t *self, strata_error_t *err)
{
    strata_io_t *io = self->io;
    uint64_t number = self->next_file++;
    char *path = manifest_path(self, number);
    char *tmp = NULL, *current = NULL;
    buf_t snap = {0};
    int rc = 0;
    if (!path || asprintf(&tmp, "%s/CURRENT.tmp", self->dir) < 0 ||
        asprintf(&current, "%s/CURRENT", self->dir) < 0) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto out;
    }
    int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        rc = strata_error_set(err, STRATA_EIO, "create %s: %s", path, strerror(-fd));
        goto out;
    }
    uint8_t header[MANIFEST_HEADER] = {0};
    memcpy(header, MANIFEST_MAGIC, 8);
    put_u32(header + 8, MANIFEST_VERSION);
    int sys = strata_io_pwrite_all(io, fd, header, sizeof header, 0);
    if (sys < 0) {
        io->close(io, fd);
        rc = strata_error_set(err, STRATA_EIO, "write %s: %s", path, strerror(-sys));
        goto out;
    }
    int old_fd = self->manifest_fd;
    uint64_t old_number = self->manifest_number;
    self->manifest_fd = fd;
    self->manifest_number = number;
    self->manifest_offset = MANIFEST_HEADER;

    edit_t whole;
    edit_init(&whole);
    whole.has_flushed_seq = true;
    whole.flushed_seq = self->flushed_seq;
    whole.has_last_seq = true;
    whole.last_seq = self->last_seq;
    encode_edit(&snap, &whole, self->next_file);
    for (int level = 0; level < STRATA_LEVELS; level++)
        for (size_t i = 0; i < self->current->n_files[level]; i++)
            encode_add(&snap, level, self->current->files[level][i]);
    if (snap.oom) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto out;
    }
    rc = append_record(self, &snap, err);
    if (rc)
        goto out;
    /* CURRENT flips to the new MANIFEST in one rename. */
    char name[64];
    int n = snprintf(name, sizeof name, "MANIFEST-%06" PRIu64 "\n", number);
    int cfd = io->open(io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    sys = cfd < 0 ? cfd : strata_io_pwrite_all(io, cfd, name, (size_t)n, 0);
    if (sys == 0)
        sys = io->fdatasync(io, cfd);
    if (cfd >= 0)
        io->close(io, cfd);
    if (sys == 0)
        sys = io->rename(io, tmp, current);
    if (sys == 0)
        sys = io->sync_dir(io, self->dir);
    if (sys < 0) {
        rc = strata_error_set(err, STRATA_EIO, "install CURRENT -> MANIFEST-%06" PRIu64 ": %s",
                              number, strerror(-sys));
        goto out;
    }
    if (old_fd >= 0) {
        io->close(io, old_fd);
        char *old = manifest_path(self, old_number);
        if (old)
            io->unlink(io, old);
        free(old);
    }
out:
    free(snap.data);
    free(path);
    free(tmp);
    free(current);
    return rc;
}

static int read_whole(strata_io_t *io, const char *path, uint8_t **data, uint64_t *size,
                      strata_error_t *err)
{
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOENT
                   ? STRATA_ENOTFOUND
                   : strata_error_set(err, STRATA_EIO, "open %s: %s", path, strerror(-fd));
    int sys = io->file_size(io, fd, size);
    if (sys == 0 && *size > (UINT64_C(1) << 32)) {
        io->close(io, fd);
        return strata_error_set(err, STRATA_ETOOBIG, "%s: %" PRIu64 " bytes", path, *size);
    }
    *data = sys == 0 ? malloc(*size ? *size : 1) : NULL;
    if (sys == 0 && !*data)
        sys = -ENOMEM;
    if (sys == 0)
        sys = strata_io_pread_all(io, fd, *data, *size, 0);
    io->close(io, fd);
    if (sys < 0) {
        free(*data);
        *data = NULL;
        return strata_error_set(err, STRATA_EIO, "read %s: %s", path, strerror(-sys));
    }
    return 0;
}

/* The number of the MANIFEST that CURRENT names; STRATA_ENOTFOUND (with
 * no message) when there is no CURRENT. */
static int read_current(const vset_t *self, uint64_t *number, strata_error_t *err)
{
    char *current = NULL;
    if (asprintf(&current, "%s/CURRENT", self->dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    uint8_t *name = NULL;
    uint64_t name_len = 0;
    int rc = read_whole(self->io, current, &name, &name_len, err);
    free(current);
    if (rc)
        return rc;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)(name_len < 63 ? name_len : 63), (char *)name);
    free(name);
    text[strcspn(text, "\r\n")] = '\0'; /* its newline, kept out of a one-line error */
    if (sscanf(text, "MANIFEST-%" SCNu64, number) != 1)
        return strata_error_set(err, STRATA_ECORRUPT, "CURRENT: does not name a MANIFEST ('%s')",
                                text);
    return 0;
}

/* Walks a MANIFEST's records (header checked first), decoding each into an
 * edit for fn. Stops at a torn final record (*end short of size) or at
 * damage before it (STRATA_ECORRUPT naming name and offset); *end is where
 * the good records end. The one parser of the format: recovery, the
 * read-only open and strata_manifest_read all go through it. */
typedef int (*record_fn)(void *arg, uint64_t offset, edit_t *edit, uint64_t next_file,
                         strata_error_t *err);

static int manifest_scan(const uint8_t *data, uint64_t size, const char *name, record_fn fn,
                         void *arg, uint64_t *end, strata_error_t *err)
{
    *end = 0;
    if (size < MANIFEST_HEADER || memcmp(data, MANIFEST_MAGIC, 8) != 0)
        return strata_error_set(err, STRATA_ECORRUPT, "%s offset 0: bad magic", name);
    uint32_t version = get_u32(data + 8);
    if (version != MANIFEST_VERSION)
        return strata_error_set(err, STRATA_EVERSION,
                                "%s offset 8: MANIFEST format version %u, this build reads %u",
                                name, version, MANIFEST_VERSION);
    uint64_t off = MANIFEST_HEADER;
    int rc = 0;
    while (off < size) {
        /* A record cut short at the end is the tail of an edit whose
         * fdatasync never returned: it never took effect. */
        if (size - off < 8)
            break;
        uint32_t crc = get_u32(data + off);
        uint32_t len = get_u32(data + off + 4);
        if (len > MANIFEST_MAX_RECORD) {
            rc = strata_error_set(err, STRATA_ECORRUPT,
                                  "%s offset %" PRIu64 ": record length %u over the cap", name, off,
                                  len);
            break;
        }
        if (size - off - 8 < len)
            break;
        bool last = off + 8 + len == size;
        if (strata_crc32c(0, data + off + 4, 4 + (size_t)len) != crc) {
            if (last)
                break; /* torn final record */
            rc = strata_error_set(err, STRATA_ECORRUPT, "%s offset %" PRIu64 ": bad record crc",
                                  name, off);
            break;
        }
        edit_t edit;
        edit_init(&edit);
        uint64_t next_file = 0;
        const char *bad = decode_edit(data + off + 8, len, &edit, &next_file);
        if (bad) {
            edit_clear(&edit);
            rc = strata_error_set(err, STRATA_ECORRUPT, "%s offset %" PRIu64 ": bad %s", name, off,
                                  bad);
            break;
        }
        rc = fn(arg, off, &edit, next_file, err);
        edit_clear(&edit);
        if (rc)
            break;
        off += 8 + len;
    }
    *end = off;
    return rc;
}

typedef struct {
    vset_t *self;
    version_t *v;
} replay_t;

static int replay_edit(void *arg, uint64_t offset, edit_t *edit, uint64_t next_file,
                       strata_error_t *err)
{
    (void)offset;
    replay_t *r = arg;
    if (next_file)
        r->self->next_file = next_file;
    if (edit->has_flushed_seq)
        r->self->flushed_seq = edit->flushed_seq;
    if (edit->has_last_seq && edit->last_seq > r->self->last_seq)
        r->self->last_seq = edit->last_seq;
    version_t *next = NULL;
    int rc = version_apply(r->self, r->v, edit, &next, err);
    if (rc)
        return rc;
    version_unref(&r->v);
    r->v = next;
    return 0;
}

/* Replays the MANIFEST named by CURRENT into self->current. report (may
 * be NULL) gets which MANIFEST it was and any torn tail. */
static int recover_manifest(vset_t *self, manifest_report_t *report, strata_error_t *err)
{
    manifest_report_t local_report;
    if (!report)
        report = &local_report;
    memset(report, 0, sizeof *report);
    uint64_t number = 0;
    int rc = read_current(self, &number, err);
    if (rc)
        return rc;
    report->manifest_number = number;
    char *path = manifest_path(self, number);
    uint8_t *data = NULL;
    uint64_t size = 0;
    rc = path ? read_whole(self->io, path, &data, &size, err) : STRATA_ENOMEM;
    if (rc == STRATA_ENOTFOUND)
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "CURRENT names MANIFEST-%06" PRIu64 ", which is missing", number);
    if (rc) {
        free(path);
        return rc;
    }
    const char *name_only = strrchr(path, '/') + 1;
    replay_t replay = {.self = self, .v = version_new(self)};
    if (!replay.v) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t off = 0;
    rc = manifest_scan(data, size, name_only, replay_edit, &replay, &off, err);
    version_t *v = replay.v;
    if (rc) {
        version_unref(&v);
        goto out;
    }
    /* Without an error the loop stops short of the end only at a torn
     * final record. */
    report->torn_tail = off < size;
    report->torn_tail_offset = off;
    version_unref(&self->current);
    self->current = v;
    self->manifest_number = number;
    if (self->next_file <= number)
        self->next_file = number + 1;
out:
    free(data);
    free(path);
    return rc;
}

/* Removes tables no version knows (a crash between writing a table and
 * logging its edit, or after logging a compaction but before deleting its
 * inputs), temp files, and old MANIFESTs. */
static void delete_orphans(vset_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t number;
        char tail[16];
        bool orphan = false;
        if (sscanf(de->d_name, "%" SCNu64 ".ss%15s", &number, tail) == 2) {
            orphan = true;
            for (int level = 0; level < STRATA_LEVELS && orphan; level++)
                for (size_t i = 0; i < self->current->n_files[level] && orphan; i++)
                    orphan = self->current->files[level][i]->number != number;
            orphan = orphan || strcmp(tail, "t") != 0; /* "000007.sst.tmp" */
        } else if (sscanf(de->d_name, "MANIFEST-%" SCNu64, &number) == 1) {
            orphan = number != self->manifest_number;
        }
        if (!orphan)
            continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", self->dir, de->d_name) >= 0) {
            self->io->unlink(self->io, path);
            free(path);
        }
    }
    closedir(d);
}

static int vset_new(const char *dir, strata_io_t *io, const strata_table_options_t *table_opts,
                    vset_t **vset_p, strata_error_t *err)
{
    *vset_p = NULL;
    vset_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    self->dir = strdup(dir);
    self->io = io ? io : strata_io_posix();
    if (table_opts)
        self->table_opts = *table_opts;
    else
        strata_table_options_init(&self->table_opts);
    self->table_opts.io = self->io;
    self->manifest_fd = -1;
    self->next_file = 1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_mutex_init(&self->table_mu, NULL);
    self->lru.lru_next = self->lru.lru_prev = &self->lru;
    self->max_open_tables = 1000;
    self->current = version_new(self);
    if (!self->dir || !self->current) {
        vset_close(&self);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    *vset_p = self;
    return 0;
}

int vset_open(const char *dir, strata_io_t *io, const strata_table_options_t *table_opts,
              vset_t **vset_p, strata_error_t *err)
{
    vset_t *self = NULL;
    int rc = vset_new(dir, io, table_opts, &self, err);
    if (rc)
        return rc;
    rc = recover_manifest(self, NULL, err);
    if (rc == STRATA_ENOTFOUND) /* no CURRENT: a new database */
        rc = 0;
    if (rc == 0) {
        delete_orphans(self);
        rc = write_new_manifest(self, err);
    }
    if (rc == 0)
        delete_orphans(self); /* the MANIFEST we started from */
    if (rc) {
        vset_close(&self);
        return rc;
    }
    *vset_p = self;
    return 0;
}

int vset_open_readonly(const char *dir, strata_io_t *io, const strata_table_options_t *table_opts,
                       manifest_report_t *report, vset_t **vset_p, strata_error_t *err)
{
    manifest_report_t local_report;
    if (!report)
        report = &local_report;
    memset(report, 0, sizeof *report);
    for (int attempt = 0;; attempt++) {
        vset_t *self = NULL;
        int rc = vset_new(dir, io, table_opts, &self, err);
        if (rc)
            return rc;
        rc = recover_manifest(self, report, err);
        if (rc == 0) {
            *vset_p = self;
            return 0;
        }
        if (rc == STRATA_ENOTFOUND)
            rc = strata_error_set(err, STRATA_ENOTFOUND,
                                  "%s: no CURRENT, not a Strata data directory", dir);
        /* A writer that opened meanwhile wrote a new MANIFEST and deleted
         * the one CURRENT named a moment ago: read the new one. */
        uint64_t now_named = 0;
        strata_error_t ignored;
        bool replaced = rc == STRATA_ECORRUPT && attempt < 2 &&
                        read_current(self, &now_named, &ignored) == 0 &&
                        now_named != report->manifest_number;
        vset_close(&self);
        if (!replaced)
            return rc;
    }
}

void vset_close(vset_t **vset_p)
{
    vset_t *self = *vset_p;
    *vset_p = NULL;
    if (!self)
        return;
    version_unref(&self->current);
    if (self->manifest_fd >= 0)
        self->io->close(self->io, self->manifest_fd);
    pthread_mutex_destroy(&self->mu);
    pthread_mutex_destroy(&self->table_mu);
    free(self->dir);
    free(self);
}

int vset_apply(vset_t *self, edit_t *edit, strata_error_t *err)
{
    if (self->manifest_fd < 0)
        return strata_error_set(err, STRATA_EREADONLY, "version set opened read-only");
    buf_t payload = {0};
    pthread_mutex_lock(&self->mu);
    uint64_t next_file = self->next_file;
    pthread_mutex_unlock(&self->mu);
    encode_edit(&payload, edit, next_file);
    if (payload.oom) {
        free(payload.data);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    /* Logged and durable before it takes effect: a crash after this point
     * replays the edit, before it leaves the old version intact. */
    int rc = append_record(self, &payload, err);
    free(payload.data);
    if (rc)
        return rc;
    version_t *next = NULL;
    rc = version_apply(self, self->current, edit, &next, err);
    if (rc)
        return rc;
    /* Files the edit removed become obsolete: deleted at their last unref. */
    for (size_t d = 0; d < edit->n_deletes; d++) {
        int level = edit->deletes[d].level;
        for (size_t i = 0; i < self->current->n_files[level]; i++)
            if (self->current->files[level][i]->number == edit->deletes[d].number)
                self->current->files[level][i]->obsolete = true;
    }
    if (edit->has_flushed_seq)
        self->flushed_seq = edit->flushed_seq;
    if (edit->has_last_seq && edit->last_seq > self->last_seq)
        self->last_seq = edit->last_seq;
    pthread_mutex_lock(&self->mu);
    version_t *old = self->current;
    self->current = next;
    self->generation++;
    pthread_mutex_unlock(&self->mu);
    version_unref(&old);
    return 0;
}

int vset_export(vset_t *self, version_t *version, uint64_t flushed_seq, const char *dest,
                strata_error_t *err)
{
    /* A scratch set pointed at dest reuses the MANIFEST writer as is. */
    pthread_mutex_lock(&self->mu);
    uint64_t next_file = self->next_file;
    pthread_mutex_unlock(&self->mu);
    vset_t scratch = {
        .dir = (char *)dest,
        .io = self->io,
        .current = version,
        .next_file = next_file,
        .flushed_seq = flushed_seq,
        .last_seq = flushed_seq,
        .manifest_fd = -1,
    };
    int rc = 0;
    for (int level = 0; level < STRATA_LEVELS && rc == 0; level++)
        for (size_t i = 0; i < version->n_files[level] && rc == 0; i++) {
            uint64_t number = version->files[level][i]->number;
            char *from = vset_table_path(self, number);
            char *to = vset_table_path(&scratch, number);
            /* Tables are immutable, so a hard link is a copy that costs
             * nothing and stays valid after compaction deletes ours. */
            if (!from || !to)
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            else if (link(from, to) < 0)
                rc = strata_error_set(err, STRATA_EIO, "link %s -> %s: %s", from, to,
                                      strerror(errno));
            free(from);
            free(to);
        }
    if (rc == 0)
        rc = write_new_manifest(&scratch, err);
    if (scratch.manifest_fd >= 0)
        self->io->close(self->io, scratch.manifest_fd);
    return rc;
}

uint64_t vset_new_file_number(vset_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t n = self->next_file++;
    pthread_mutex_unlock(&self->mu);
    return n;
}

uint64_t vset_generation(const vset_t *self)
{
    return self->generation;
}

uint64_t vset_flushed_seq(const vset_t *self)
{
    return self->flushed_seq;
}

uint64_t vset_last_seq(const vset_t *self)
{
    return self->last_seq;
}

/* ---- reading edits for tools -------------------------------------------- */

typedef struct {
    strata_manifest_edit_fn fn;
    void *arg;
} dump_t;

static int dump_edit(void *arg, uint64_t offset, edit_t *edit, uint64_t next_file,
                     strata_error_t *err)
{
    dump_t *d = arg;
    strata_manifest_add_t *adds = calloc(edit->n_adds ? edit->n_adds : 1, sizeof *adds);
    strata_manifest_delete_t *deletes =
        calloc(edit->n_deletes ? edit->n_deletes : 1, sizeof *deletes);
    if (!adds || !deletes) {
        free(adds);
        free(deletes);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < edit->n_adds; i++) {
        const vfile_t *f = edit->adds[i].file;
        adds[i] = (strata_manifest_add_t){
            edit->adds[i].level, f->number,   f->size,         f->entries, f->min_seq,
            f->max_seq,          f->smallest, f->smallest_len, f->largest, f->largest_len};
    }
    for (size_t i = 0; i < edit->n_deletes; i++)
        deletes[i] = (strata_manifest_delete_t){edit->deletes[i].level, edit->deletes[i].number};
    strata_manifest_edit_t out = {.offset = offset,
                                  .has_flushed_seq = edit->has_flushed_seq,
                                  .has_last_seq = edit->has_last_seq,
                                  .has_next_file = next_file != 0,
                                  .flushed_seq = edit->flushed_seq,
                                  .last_seq = edit->last_seq,
                                  .next_file = next_file,
                                  .adds = adds,
                                  .n_adds = edit->n_adds,
                                  .deletes = deletes,
                                  .n_deletes = edit->n_deletes};
    int rc = d->fn(d->arg, &out);
    free(adds);
    free(deletes);
    return rc;
}

int strata_manifest_read(const char *path, strata_manifest_edit_fn fn, void *arg, char *manifest,
                         uint64_t *torn_offset, strata_error_t *err)
{
    strata_io_t *io = strata_io_posix();
    char file[PATH_MAX];
    struct stat st;
    if (stat(path, &st) != 0)
        return strata_error_set(err, STRATA_ENOTFOUND, "%s: %s", path, strerror(errno));
    snprintf(file, sizeof file, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        vset_t probe = {.dir = (char *)path, .io = io};
        uint64_t number = 0;
        strata_error_t current_err;
        int rc = read_current(&probe, &number, &current_err);
        if (rc == STRATA_ENOTFOUND)
            return strata_error_set(err, STRATA_ENOTFOUND, "%s: no CURRENT", path);
        /* Its damage names CURRENT alone: say whose, as every error here
         * names the file, so that a caller adds nothing. */
        if (rc)
            return strata_error_set(err, rc, "%s%s%s", rc == STRATA_ECORRUPT ? path : "",
                                    rc == STRATA_ECORRUPT ? "/" : "", current_err.msg);
        snprintf(file, sizeof file, "%s/MANIFEST-%06" PRIu64, path, number);
    }
    if (manifest)
        snprintf(manifest, PATH_MAX, "%s", file);
    uint8_t *data = NULL;
    uint64_t size = 0;
    int rc = read_whole(io, file, &data, &size, err);
    if (rc == STRATA_ENOTFOUND)
        return strata_error_set(err, STRATA_ENOTFOUND, "%s: missing", file);
    if (rc)
        return rc;
    dump_t d = {fn, arg};
    uint64_t end = 0;
    rc = manifest_scan(data, size, file, dump_edit, &d, &end, err);
    if (torn_offset)
        *torn_offset = end;
    free(data);
    return rc;
}
