/* Internal iterators: adapters over memtables, tables and sorted levels,
 * and the k-way merge that scans and compaction run on. The merge keeps
 * its children in a binary heap ordered for the current direction; a change
 * of direction repositions every child around the current key (as
 * LevelDB's merging iterator does) and rebuilds the heap. */
#include "iter.h"

#include <stdlib.h>
#include <string.h>

void iter_destroy(iter_t **it_p)
{
    if (it_p && *it_p) {
        (*it_p)->ops->destroy(*it_p);
        *it_p = NULL;
    }
}

int key_compare(const void *a, size_t a_len, const void *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

int ikey_compare_internal(const void *a, size_t a_len, uint64_t a_seq, const void *b, size_t b_len,
                          uint64_t b_seq)
{
    int c = key_compare(a, a_len, b, b_len);
    if (c)
        return c;
    return a_seq > b_seq ? -1 : a_seq < b_seq;
}

static int no_error(const iter_t *it, strata_error_t *err)
{
    (void)it;
    (void)err;
    return 0;
}

/* ---- memtable ---------------------------------------------------------- */

typedef struct {
    iter_t base;
    strata_memtable_iter_t *it;
} mem_iter_t;

#define MEM(it) (((mem_iter_t *)(it))->it)

static bool mem_valid(const iter_t *it)
{
    return strata_memtable_iter_valid(MEM(it));
}
static void mem_seek_first(iter_t *it)
{
    strata_memtable_iter_seek_first(MEM(it));
}
static void mem_seek_last(iter_t *it)
{
    strata_memtable_iter_seek_last(MEM(it));
}
static void mem_seek(iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    strata_memtable_iter_seek(MEM(it), key, key_len, seq);
}
static void mem_next(iter_t *it)
{
    strata_memtable_iter_next(MEM(it));
}
static void mem_prev(iter_t *it)
{
    strata_memtable_iter_prev(MEM(it));
}
static const void *mem_key(const iter_t *it, size_t *len)
{
    return strata_memtable_iter_key(MEM(it), len);
}
static const void *mem_value(const iter_t *it, size_t *len)
{
    return strata_memtable_iter_value(MEM(it), len);
}
static uint64_t mem_seq(const iter_t *it)
{
    return strata_memtable_iter_seq(MEM(it));
}
static strata_value_type_t mem_type(const iter_t *it)
{
    return strata_memtable_iter_type(MEM(it));
}
static void mem_destroy(iter_t *it)
{
    strata_memtable_iter_destroy(&MEM(it));
    free(it);
}

static const iter_ops_t mem_ops = {
    mem_valid, mem_seek_first, mem_seek_last, mem_seek, mem_next, mem_prev,
    mem_key,   mem_value,      mem_seq,       mem_type, no_error, mem_destroy,
};

iter_t *iter_memtable(strata_memtable_t *mem)
{
    mem_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->base.ops = &mem_ops;
    it->it = strata_memtable_iter_new(mem);
    if (!it->it) {
        free(it);
        return NULL;
    }
    return &it->base;
}

/* ---- one table --------------------------------------------------------- */

typedef struct {
    iter_t base;
    vfile_t *file; /* our reference keeps the table open and on disk */
    strata_table_iter_t *it;
    bool pinned;
    int open_error;
    strata_error_t error;
} file_iter_t;

#define FILE_IT(it) ((file_iter_t *)(it))

static bool file_valid(const iter_t *it)
{
    return FILE_IT(it)->it && strata_table_iter_valid(FILE_IT(it)->it);
}
static void file_seek_first(iter_t *it)
{
    if (FILE_IT(it)->it)
        strata_table_iter_seek_first(FILE_IT(it)->it);
}
static void file_seek_last(iter_t *it)
{
    if (FILE_IT(it)->it)
        strata_table_iter_seek_last(FILE_IT(it)->it);
}
static void file_seek(iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    if (FILE_IT(it)->it)
        strata_table_iter_seek(FILE_IT(it)->it, key, key_len, seq);
}
static void file_next(iter_t *it)
{
    strata_table_iter_next(FILE_IT(it)->it);
}
static void file_prev(iter_t *it)
{
    strata_table_iter_prev(FILE_IT(it)->it);
}
static const void *file_key(const iter_t *it, size_t *len)
{
    return strata_table_iter_key(FILE_IT(it)->it, len);
}
static const void *file_value(const iter_t *it, size_t *len)
{
    return strata_table_iter_value(FILE_IT(it)->it, len);
}
static uint64_t file_seq(const iter_t *it)
{
    return strata_table_iter_seq(FILE_IT(it)->it);
}
static strata_value_type_t file_type(const iter_t *it)
{
    return strata_table_iter_type(FILE_IT(it)->it);
}
static int file_status(const iter_t *it, strata_error_t *err)
{
    const file_iter_t *f = FILE_IT(it);
    if (f->open_error) {
        if (err)
            *err = f->error;
        return f->open_error;
    }
    return f->it ? strata_table_iter_status(f->it, err) : 0;
}
static void file_destroy(iter_t *it)
{
    strata_table_iter_destroy(&FILE_IT(it)->it);
    if (FILE_IT(it)->pinned)
        vfile_table_unpin(FILE_IT(it)->file);
    vfile_unref(&FILE_IT(it)->file);
    free(it);
}

static const iter_ops_t file_ops = {
    file_valid, file_seek_first, file_seek_last, file_seek, file_next,   file_prev,
    file_key,   file_value,      file_seq,       file_type, file_status, file_destroy,
};

iter_t *iter_file(vfile_t *file)
{
    file_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->base.ops = &file_ops;
    atomic_fetch_add(&file->refs, 1);
    it->file = file;
    strata_table_t *table = NULL;
    it->open_error = vfile_table(file, &table, &it->error);
    if (!it->open_error) {
        it->pinned = true; /* the table stays open while we walk it */
        it->it = strata_table_iter_new(table);
        if (!it->it)
            it->open_error = strata_error_set(&it->error, STRATA_ENOMEM, "out of memory");
    }
    return &it->base;
}

/* ---- a sorted level ---------------------------------------------------- */

typedef struct {
    iter_t base;
    version_t *version; /* our reference */
    int level;
    size_t index; /* file under the cursor */
    iter_t *file; /* NULL when off either end */
    int error;
    strata_error_t detail;
} level_iter_t;

#define LEVEL(it) ((level_iter_t *)(it))

static size_t level_count(const level_iter_t *l)
{
    return l->version->n_files[l->level];
}

/* Positions on file i (or past the ends). Returns false past the ends. */
static bool level_open(level_iter_t *l, size_t i)
{
    if (l->file && l->index == i)
        return true;
    iter_destroy(&l->file);
    if (i >= level_count(l))
        return false;
    l->index = i;
    l->file = iter_file(l->version->files[l->level][i]);
    if (!l->file) {
        l->error = strata_error_set(&l->detail, STRATA_ENOMEM, "out of memory");
        return false;
    }
    int rc = iter_status(l->file, &l->detail);
    if (rc) {
        l->error = rc;
        iter_destroy(&l->file);
        return false;
    }
    return true;
}

static void level_skip_forward(level_iter_t *l)
{
    while (l->file && !iter_valid(l->file)) {
        int rc = iter_status(l->file, &l->detail);
        if (rc) {
            l->error = rc;
            iter_destroy(&l->file);
            return;
        }
        if (!level_open(l, l->index + 1))
            return;
        iter_seek_first(l->file);
    }
}

static void level_skip_backward(level_iter_t *l)
{
    while (l->file && !iter_valid(l->file)) {
        int rc = iter_status(l->file, &l->detail);
        if (rc) {
            l->error = rc;
            iter_destroy(&l->file);
            return;
        }
        if (l->index == 0) {
            iter_destroy(&l->file);
            return;
        }
        level_open(l, l->index - 1);
        if (l->file)
            iter_seek_last(l->file);
    }
}

static bool level_valid(const iter_t *it)
{
    return LEVEL(it)->file && iter_valid(LEVEL(it)->file);
}
static void level_seek_first(iter_t *it)
{
    level_iter_t *l = LEVEL(it);
    if (level_open(l, 0)) {
        iter_seek_first(l->file);
        level_skip_forward(l);
    }
}
static void level_seek_last(iter_t *it)
{
    level_iter_t *l = LEVEL(it);
    size_t n = level_count(l);
    if (n && level_open(l, n - 1)) {
        iter_seek_last(l->file);
        level_skip_backward(l);
    }
}
static void level_seek(iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    level_iter_t *l = LEVEL(it);
    size_t lo = 0, hi = level_count(l);
    while (lo < hi) { /* first file whose largest key >= key */
        size_t mid = lo + (hi - lo) / 2;
        vfile_t *f = l->version->files[l->level][mid];
        if (key_compare(f->largest, f->largest_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (level_open(l, lo)) {
        iter_seek(l->file, key, key_len, seq);
        level_skip_forward(l);
    }
}
static void level_next(iter_t *it)
{
    iter_next(LEVEL(it)->file);
    level_skip_forward(LEVEL(it));
}
static void level_prev(iter_t *it)
{
    iter_prev(LEVEL(it)->file);
    level_skip_backward(LEVEL(it));
}
static const void *level_key(const iter_t *it, size_t *len)
{
    return iter_key(LEVEL(it)->file, len);
}
static const void *level_value(const iter_t *it, size_t *len)
{
    return iter_value(LEVEL(it)->file, len);
}
static uint64_t level_seq(const iter_t *it)
{
    return iter_seq(LEVEL(it)->file);
}
static strata_value_type_t level_type(const iter_t *it)
{
    return iter_type(LEVEL(it)->file);
}
static int level_status(const iter_t *it, strata_error_t *err)
{
    const level_iter_t *l = LEVEL(it);
    if (l->error) {
        if (err)
            *err = l->detail;
        return l->error;
    }
    return l->file ? iter_status(l->file, err) : 0;
}
static void level_destroy(iter_t *it)
{
    iter_destroy(&LEVEL(it)->file);
    version_unref(&LEVEL(it)->version);
    free(it);
}

static const iter_ops_t level_ops = {
    level_valid, level_seek_first, level_seek_last, level_seek, level_next,   level_prev,
    level_key,   level_value,      level_seq,       level_type, level_status, level_destroy,
};

iter_t *iter_level(version_t *version, int level)
{
    level_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->base.ops = &level_ops;
    atomic_fetch_add(&version->refs, 1);
    it->version = version;
    it->level = level;
    return &it->base;
}

/* ---- k-way merge ------------------------------------------------------- */

typedef struct {
    iter_t base;
    iter_t **children;
    size_t n;
    iter_t **heap; /* valid children; heap[0] is the current entry */
    size_t heap_len;
    bool forward;
    /* The first child error seen. It ends the merge at once: carrying on
     * without that child would serve keys it shadows, or skip keys it
     * holds, as if nothing had happened. */
    int failed;
    strata_error_t detail;
} merge_iter_t;

#define MERGE(it) ((merge_iter_t *)(it))

/* True when a should come out of the heap before b. */
static bool merge_before(const merge_iter_t *m, iter_t *a, iter_t *b)
{
    size_t a_len, b_len;
    const void *a_key = iter_key(a, &a_len);
    const void *b_key = iter_key(b, &b_len);
    int c = ikey_compare_internal(a_key, a_len, iter_seq(a), b_key, b_len, iter_seq(b));
    return m->forward ? c < 0 : c > 0;
}

static void heap_down(merge_iter_t *m, size_t i)
{
    for (;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < m->heap_len && merge_before(m, m->heap[l], m->heap[best]))
            best = l;
        if (r < m->heap_len && merge_before(m, m->heap[r], m->heap[best]))
            best = r;
        if (best == i)
            return;
        iter_t *t = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = t;
        i = best;
    }
}

/* A child that is not valid: exhausted, or failed (which fails the merge). */
static void child_ended(merge_iter_t *m, iter_t *child)
{
    if (m->failed)
        return;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = iter_status(child, &err);
    if (rc) {
        m->failed = rc;
        m->detail = err;
        m->heap_len = 0;
    }
}

static void heap_build(merge_iter_t *m)
{
    m->heap_len = 0;
    for (size_t i = 0; i < m->n && !m->failed; i++) {
        if (iter_valid(m->children[i]))
            m->heap[m->heap_len++] = m->children[i];
        else
            child_ended(m, m->children[i]);
    }
    if (m->failed) {
        m->heap_len = 0;
        return;
    }
    for (size_t i = m->heap_len / 2; i-- > 0;)
        heap_down(m, i);
}

/* After the top child moved: drop it if exhausted (ending the merge if it
 * failed), else sift it down. */
static void heap_fix_top(merge_iter_t *m)
{
    if (!iter_valid(m->heap[0])) {
        child_ended(m, m->heap[0]);
        if (m->failed)
            return;
        m->heap[0] = m->heap[--m->heap_len];
    }
    if (m->heap_len)
        heap_down(m, 0);
}

static bool merge_valid(const iter_t *it)
{
    return MERGE(it)->heap_len > 0;
}
static void merge_seek_first(iter_t *it)
{
    merge_iter_t *m = MERGE(it);
    for (size_t i = 0; i < m->n; i++)
        iter_seek_first(m->children[i]);
    m->forward = true;
    heap_build(m);
}
static void merge_seek_last(iter_t *it)
{
    merge_iter_t *m = MERGE(it);
    for (size_t i = 0; i < m->n; i++)
        iter_seek_last(m->children[i]);
    m->forward = false;
    heap_build(m);
}
static void merge_seek(iter_t *it, const void *key, size_t key_len, uint64_t seq)
{
    merge_iter_t *m = MERGE(it);
    for (size_t i = 0; i < m->n; i++)
        iter_seek(m->children[i], key, key_len, seq);
    m->forward = true;
    heap_build(m);
}

/* Puts every child on the right side of the current entry for the new
 * direction; the current child itself stays where it is. */
static void merge_turn(merge_iter_t *m, bool forward)
{
    iter_t *current = m->heap[0];
    size_t key_len;
    const void *key_src = iter_key(current, &key_len);
    uint64_t seq = iter_seq(current);
    uint8_t small[256];
    uint8_t *key = key_len <= sizeof small ? small : malloc(key_len);
    if (!key) {
        m->failed =
            strata_error_set(&m->detail, STRATA_ENOMEM,
                             "out of memory turning a merge around a %zu-byte key", key_len);
        m->heap_len = 0;
        return;
    }
    memcpy(key, key_src, key_len);
    for (size_t i = 0; i < m->n; i++) {
        iter_t *child = m->children[i];
        if (child == current)
            continue;
        iter_seek(child, key, key_len, seq);
        if (forward) {
            /* seek lands at the first entry >= current: strictly after it
             * already, since (key, seq) pairs are unique across children. */
            continue;
        }
        /* Backward: the last entry < current. */
        if (iter_valid(child))
            iter_prev(child);
        else
            iter_seek_last(child);
    }
    if (key != small)
        free(key);
    m->forward = forward;
    heap_build(m);
}

static void merge_next(iter_t *it)
{
    merge_iter_t *m = MERGE(it);
    if (m->failed)
        return;
    if (!m->forward)
        merge_turn(m, true);
    iter_next(m->heap[0]);
    heap_fix_top(m);
}
static void merge_prev(iter_t *it)
{
    merge_iter_t *m = MERGE(it);
    if (m->failed)
        return;
    if (m->forward)
        merge_turn(m, false);
    iter_prev(m->heap[0]);
    heap_fix_top(m);
}
static const void *merge_key(const iter_t *it, size_t *len)
{
    return iter_key(MERGE(it)->heap[0], len);
}
static const void *merge_value(const iter_t *it, size_t *len)
{
    return iter_value(MERGE(it)->heap[0], len);
}
static uint64_t merge_seq(const iter_t *it)
{
    return iter_seq(MERGE(it)->heap[0]);
}
static strata_value_type_t merge_type(const iter_t *it)
{
    return iter_type(MERGE(it)->heap[0]);
}
static int merge_status(const iter_t *it, strata_error_t *err)
{
    const merge_iter_t *m = MERGE(it);
    if (m->failed) {
        if (err)
            *err = m->detail;
        return m->failed;
    }
    for (size_t i = 0; i < m->n; i++) {
        int rc = iter_status(m->children[i], err);
        if (rc)
            return rc;
    }
    return 0;
}
static void merge_destroy(iter_t *it)
{
    merge_iter_t *m = MERGE(it);
    for (size_t i = 0; i < m->n; i++)
        iter_destroy(&m->children[i]);
    free(m->children);
    free(m->heap);
    free(m);
}

static const iter_ops_t merge_ops = {
    merge_valid, merge_seek_first, merge_seek_last, merge_seek, merge_next,   merge_prev,
    merge_key,   merge_value,      merge_seq,       merge_type, merge_status, merge_destroy,
};

iter_t *iter_merge(iter_t **children, size_t n)
{
    merge_iter_t *m = calloc(1, sizeof *m);
    if (m) {
        m->children = malloc((n ? n : 1) * sizeof *m->children);
        m->heap = malloc((n ? n : 1) * sizeof *m->heap);
    }
    if (!m || !m->children || !m->heap) {
        for (size_t i = 0; i < n; i++)
            iter_destroy(&children[i]);
        if (m) {
            free(m->children);
            free(m->heap);
        }
        free(m);
        return NULL;
    }
    m->base.ops = &merge_ops;
    if (n)
        memcpy(m->children, children, n * sizeof *children);
    m->n = n;
    m->forward = true;
    return &m->base;
}
