/* The memtable: a skiplist whose nodes live in a chained arena, written by one
 * thread and read by any number without locks. The writer links a node only
 * after filling it, with release stores; readers follow next pointers with
 * acquire loads, so a reader that reaches a node sees all of it. Nodes are
 * never unlinked or freed before the last reference goes. Beside the list, a
 * hash index from key to its newest node answers most point gets in one or
 * two cache misses instead of a search (see "the point index"). Used by db.c. */
#include "strata/memtable.h"
#include "strata/err.h"

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* With a quarter of each level promoted to the next, twelve levels index
 * 4^12 = 16M entries before searches start to slow: far beyond a memtable. */
#define MEMTABLE_MAX_HEIGHT 12
/* One transparent huge page: a block aligned to it, and advised, is mapped
 * by one fault and one TLB entry instead of 512 of each. Filling a
 * memtable (a replay most of all) spends much of its time faulting pages
 * in, and sorting and linking reach across all of it. */
#define ARENA_BLOCK_SIZE ((size_t)2 << 20)
/* An entry bigger than this gets a block of its own, so starting a fresh
 * shared block never throws away more than a quarter of the old one. */
#define ARENA_LARGE_ENTRY (ARENA_BLOCK_SIZE / 4)
#define ARENA_ALIGN       ((size_t)8)
#define CACHE_LINE        64
/* The index's first table: 4 KiB, small beside the 2 MiB arena block that
 * the first add takes anyway. */
#define INDEX_MIN_SLOTS ((size_t)512)
/* A slot holds a node pointer in its low 48 bits (user space on x86-64 and
 * arm64 Linux, checked on every insert) and 16 bits of the key's hash above
 * them, so that a probe rejects another key without touching its node. */
#define SLOT_NODE_BITS 48
#define SLOT_NODE_MASK (((uint64_t)1 << SLOT_NODE_BITS) - 1)

/* A node in the arena, from low addresses to high:
 *
 *   value_len u64 | next[height-1] .. next[0] | seq, key_len, height, type | key | value
 *
 * A node pointer points at seq. A search step reads next[level], the header
 * and the key, which for level 0 and short keys are one contiguous run that
 * the arena keeps inside one cache line; value_len is only read at the end. */
typedef struct memtable_node {
    uint64_t seq;
    uint32_t key_len;
    uint8_t height;
    uint8_t type;
} memtable_node_t;

typedef _Atomic(memtable_node_t *) memtable_link_t;

/* node_link() and node_value_len() index backwards from the header. */
_Static_assert(sizeof(memtable_node_t) % sizeof(memtable_link_t) == 0 &&
                   sizeof(memtable_link_t) == sizeof(uint64_t) &&
                   sizeof(memtable_node_t) % ARENA_ALIGN == 0,
               "node header must keep the tower and value_len aligned");

/* A staged node and the 8 bytes of its key after the staged keys' common
 * prefix, which order most pairs without touching the node. */
typedef struct {
    uint64_t window;
    memtable_node_t *node;
} staged_rec_t;

typedef struct arena_block {
    struct arena_block *older;
} arena_block_t;

/* An open-addressing table of index slots, linear probing, a power of two
 * long. A slot is 0 until its key arrives; after that only the node changes,
 * to a newer version of the same key, so a probe sequence never changes. */
typedef struct memtable_index {
    struct memtable_index *older; /* tables this one replaced */
    size_t mask;                  /* slots - 1 */
    _Atomic uint64_t slots[];
} memtable_index_t;

/* Zeroing and mapping fresh blocks was a sixth of a replay, and needs none
 * of the writer's state: while a bulk load stages, a helper thread faults
 * in the next blocks. It keeps at most this many ready, so a load holds no
 * more than 8 MiB it has not used, freed when staging ends. */
#define FILLER_AHEAD 4
/* Staging this many entries first keeps small loads (and most tests) from
 * starting a thread that would fill blocks they never reach. */
#define FILLER_START_ENTRIES 4096

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wanted; /* a block was taken, or stop was set */
    arena_block_t *ready[FILLER_AHEAD];
    size_t n_ready;
    bool stop;
} block_filler_t;

struct strata_memtable {
    /* Read by every search: a cache line of their own, so that readers do
     * not miss on the line the writer dirties with every add. */
    alignas(CACHE_LINE) memtable_node_t *head;
    _Atomic int max_height;
    /* The table gets probe, or NULL when the index is not complete (never
     * built, turned off by a bulk load, or out of memory) and gets search
     * the list. Only replaced as it grows: rarely written. */
    _Atomic(memtable_index_t *) index;

    alignas(CACHE_LINE) atomic_int refs;

    /* Written by the writer only; bytes and count are atomic so that
     * readers may ask for them. */
    alignas(CACHE_LINE) atomic_size_t bytes;
    _Atomic uint64_t count;
    char *alloc_ptr;
    size_t alloc_remaining;
    arena_block_t *blocks; /* newest first */
    uint64_t rng;

    /* The index on the writer's side: every table it ever published,
     * newest first (readers may still probe an old one, so all of them live
     * as long as the memtable), and the keys in the newest. */
    memtable_index_t *index_tables;
    size_t index_keys;
    bool index_off;

    /* Entries staged for publish, in staging order, each with the window
     * at offset 0 of its key; writer only. Every staged key shares its
     * first staged_common bytes, which the sort skips. */
    staged_rec_t *staged;
    size_t n_staged, cap_staged;
    size_t staged_common;
    block_filler_t *filler; /* while staging, when it could start */
};

struct strata_memtable_iter {
    strata_memtable_t *memtable; /* a reference of our own */
    const memtable_node_t *node; /* NULL when not valid */
};

/* Bytes in front of the header: value_len and the tower of links. */
static inline size_t node_prefix_size(int height)
{
    return sizeof(uint64_t) + (size_t)height * sizeof(memtable_link_t);
}

static inline memtable_link_t *node_link(const memtable_node_t *node, int level)
{
    return (memtable_link_t *)node - 1 - level;
}

static inline memtable_node_t *node_next(const memtable_node_t *node, int level)
{
    return atomic_load_explicit(node_link(node, level), memory_order_acquire);
}

static inline const unsigned char *node_key(const memtable_node_t *node)
{
    return (const unsigned char *)(node + 1);
}

static inline const unsigned char *node_value(const memtable_node_t *node)
{
    return node_key(node) + node->key_len;
}

static inline uint64_t node_value_len(const memtable_node_t *node)
{
    return *((const uint64_t *)node - 1 - node->height);
}

/* Memtable order: key bytes ascending with a prefix first, then seq
 * descending, so newer versions of a key come before older ones. */
static inline int node_compare(const memtable_node_t *node, const void *key, size_t key_len,
                               uint64_t seq)
{
    size_t common = node->key_len < key_len ? node->key_len : key_len;
    int cmp = common ? memcmp(node_key(node), key, common) : 0;
    if (cmp != 0)
        return cmp;
    if (node->key_len != key_len)
        return node->key_len < key_len ? -1 : 1;
    if (node->seq != seq)
        return node->seq > seq ? -1 : 1;
    return 0;
}

/* Padding that moves [base + hot_offset, + hot_len) off a cache-line
 * boundary, when it fits in one line at all. */
static inline size_t straddle_padding(const char *base, size_t hot_offset, size_t hot_len)
{
    if (hot_len > CACHE_LINE)
        return 0;
    size_t in_line = ((uintptr_t)base + hot_offset) % CACHE_LINE;
    return in_line + hot_len > CACHE_LINE ? CACHE_LINE - in_line : 0;
}

/* Faulting a block in one call costs a fifth of taking a fault on each page
 * as entries first touch it (measured under KVM: 0.36 ms against 1.9 ms per
 * MiB), and moves that cost out of all but one add in thousands. Only a
 * hint: older kernels refuse it and memory that malloc reuses is resident. */
static void prefault(void *mem, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)mem + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)mem + size) & ~(page - 1);
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#else
    (void)mem;
    (void)size;
#endif
}

/* A block of size bytes after its header, advised and faulted in, not yet
 * in any memtable's list; NULL when out of memory. */
static arena_block_t *block_map(size_t size)
{
    size_t total = sizeof(arena_block_t) + size;
    arena_block_t *block =
        total == ARENA_BLOCK_SIZE ? aligned_alloc(ARENA_BLOCK_SIZE, total) : malloc(total);
    if (!block)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (total == ARENA_BLOCK_SIZE)
        (void)madvise(block, total, MADV_HUGEPAGE); /* a hint: THP may be off */
#endif
    prefault(block, total);
    return block;
}

static void *filler_run(void *arg)
{
    block_filler_t *filler = arg;
    pthread_mutex_lock(&filler->mu);
    for (;;) {
        while (!filler->stop && filler->n_ready == FILLER_AHEAD)
            pthread_cond_wait(&filler->wanted, &filler->mu);
        if (filler->stop)
            break;
        pthread_mutex_unlock(&filler->mu);
        arena_block_t *block = block_map(ARENA_BLOCK_SIZE - sizeof(arena_block_t));
        pthread_mutex_lock(&filler->mu);
        if (!block)
            break; /* the writer maps its own from here on */
        filler->ready[filler->n_ready++] = block;
    }
    pthread_mutex_unlock(&filler->mu);
    return NULL;
}

/* Only a speed-up: without a thread the writer maps its own blocks. */
static void filler_start(strata_memtable_t *self)
{
    block_filler_t *filler = calloc(1, sizeof *filler);
    if (!filler)
        return;
    pthread_mutex_init(&filler->mu, NULL);
    pthread_cond_init(&filler->wanted, NULL);
    if (pthread_create(&filler->thread, NULL, filler_run, filler) != 0) {
        pthread_cond_destroy(&filler->wanted);
        pthread_mutex_destroy(&filler->mu);
        free(filler);
        return;
    }
    self->filler = filler;
}

/* Joins the thread and frees the blocks it filled that no one took. */
static void filler_stop(strata_memtable_t *self)
{
    block_filler_t *filler = self->filler;
    if (!filler)
        return;
    self->filler = NULL;
    pthread_mutex_lock(&filler->mu);
    filler->stop = true;
    pthread_cond_signal(&filler->wanted);
    pthread_mutex_unlock(&filler->mu);
    pthread_join(filler->thread, NULL);
    while (filler->n_ready)
        free(filler->ready[--filler->n_ready]);
    pthread_cond_destroy(&filler->wanted);
    pthread_mutex_destroy(&filler->mu);
    free(filler);
}

/* A full-size block the filler has ready, or NULL: the writer never waits
 * for it, since a helper that lags behind would only add to the wait. */
static arena_block_t *filler_take(block_filler_t *filler)
{
    pthread_mutex_lock(&filler->mu);
    arena_block_t *block = filler->n_ready ? filler->ready[--filler->n_ready] : NULL;
    pthread_cond_signal(&filler->wanted);
    pthread_mutex_unlock(&filler->mu);
    return block;
}

static char *arena_new_block(strata_memtable_t *self, size_t size)
{
    arena_block_t *block = NULL;
    if (self->filler && sizeof(arena_block_t) + size == ARENA_BLOCK_SIZE)
        block = filler_take(self->filler);
    if (!block)
        block = block_map(size);
    if (!block)
        return NULL;
    block->older = self->blocks;
    self->blocks = block;
    return (char *)(block + 1);
}

/* Only the writer adds, so a load and a store are enough for readers that
 * ask for the total. */
static void bytes_added(strata_memtable_t *self, size_t added)
{
    size_t bytes = atomic_load_explicit(&self->bytes, memory_order_relaxed);
    atomic_store_explicit(&self->bytes, bytes + added, memory_order_relaxed);
}

/* Memory for one node: 8-aligned, with its hot bytes in one cache line.
 * Only the writer calls this; the caller has checked size for overflow. */
static void *arena_alloc(strata_memtable_t *self, size_t size, size_t hot_offset, size_t hot_len)
{
    size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    size_t padding = straddle_padding(self->alloc_ptr, hot_offset, hot_len);
    char *mem;
    if (self->alloc_ptr && padding + size <= self->alloc_remaining) {
        mem = self->alloc_ptr + padding;
        self->alloc_ptr += padding + size;
        self->alloc_remaining -= padding + size;
    } else if (size > ARENA_LARGE_ENTRY) {
        /* The shared block keeps its free tail for the entries after this. */
        char *block = arena_new_block(self, size + CACHE_LINE);
        if (!block)
            return NULL;
        padding = straddle_padding(block, hot_offset, hot_len);
        mem = block + padding;
    } else {
        size_t capacity = ARENA_BLOCK_SIZE - sizeof(arena_block_t);
        char *block = arena_new_block(self, capacity);
        if (!block)
            return NULL;
        padding = straddle_padding(block, hot_offset, hot_len);
        mem = block + padding;
        self->alloc_ptr = mem + size;
        self->alloc_remaining = capacity - padding - size;
    }
    bytes_added(self, padding + size);
    return mem;
}

/* A node with its links still unset, or NULL when out of memory. */
static memtable_node_t *node_alloc(strata_memtable_t *self, int height, size_t key_len,
                                   size_t value_len)
{
    size_t prefix = node_prefix_size(height);
    size_t hot_offset = prefix - sizeof(memtable_link_t); /* next[0] */
    size_t hot_len = sizeof(memtable_link_t) + sizeof(memtable_node_t) + key_len;
    char *mem = arena_alloc(self, prefix + sizeof(memtable_node_t) + key_len + value_len,
                            hot_offset, hot_len);
    if (!mem)
        return NULL;
    memtable_node_t *node = (memtable_node_t *)(mem + prefix);
    *(uint64_t *)mem = value_len;
    node->key_len = (uint32_t)key_len;
    node->height = (uint8_t)height;
    return node;
}

/* Heights follow a geometric distribution: each level up is taken with
 * probability 1/4, two random bits a level. */
static int random_height(strata_memtable_t *self)
{
    uint64_t x = self->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    uint64_t bits = (x * 0x2545F4914F6CDD1Dull) >> 32; /* the strong high bits */
    int height = 1;
    while (height < MEMTABLE_MAX_HEIGHT && (bits & 3) == 0) {
        height++;
        bits >>= 2;
    }
    return height;
}

/* The first node at or after (key, seq), or NULL. When prev is given it
 * receives, for every level, the last node before (key, seq): the head if
 * there is none. */
static memtable_node_t *find_greater_or_equal(const strata_memtable_t *self, const void *key,
                                              size_t key_len, uint64_t seq, memtable_node_t **prev)
{
    memtable_node_t *node = self->head;
    /* A reader may see a max_height that is already raised, while the new
     * levels of the head are still NULL: it then just steps down. */
    int level = atomic_load_explicit(&self->max_height, memory_order_relaxed) - 1;
    /* The node that ended the level above is known to be >= the target;
     * meeting it again on the level below needs no second compare. */
    const memtable_node_t *known_greater = NULL;
    for (;;) {
        memtable_node_t *next = node_next(node, level);
        if (next && next != known_greater) {
            /* Start fetching where a step down would go while the step
             * right waits for next: the two misses overlap. */
            if (level > 0)
                __builtin_prefetch(node_next(node, level - 1));
            if (node_compare(next, key, key_len, seq) < 0) {
                node = next;
                continue;
            }
        }
        if (prev)
            prev[level] = node;
        if (level == 0)
            return next;
        known_greater = next;
        level--;
    }
}

/* ---- the point index ----------------------------------------------------
 *
 * A get that wants the newest version of a key finds it by hash: a probe of
 * one cache line of slots, then the node. The index maps each key to its
 * newest node; a get at an older snapshot than that node, or on a memtable
 * without a complete index, searches the list.
 *
 * Ordering. The writer fills a node, links it into the list, then stores
 * its slot with release; the caller publishes the seq only after add
 * returns. A table is published (release) only after every slot of the one
 * it replaces is copied into it, and from then on the writer stores into the
 * new one only. A reader that has seen a seq loads the table pointer with
 * acquire after it, so it gets the table current at that add or a later
 * one: either way the slot of every node up to that seq is there (or a
 * newer node of the same key), and slot loads with acquire make the node
 * whole. Hence a key absent from the table is absent from the memtable at
 * any seq the reader has seen.
 *
 * Memory: 8-byte slots at most 3/4 full, doubling when that is reached, so
 * the table holds 10.7 to 21 bytes per distinct key, and the tables it
 * replaced (kept for readers still probing them) at most as much again: 21
 * to 43 bytes per key in all, counted in the memtable's bytes. */

/* 64 bits of a key, mixed so that keys sharing a prefix and differing in a
 * few bits still spread over every slot and tag. */
static inline uint64_t hash_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t key_hash(const void *key, size_t key_len)
{
    const unsigned char *bytes = key;
    uint64_t hash = 0x9E3779B97F4A7C15ull * (key_len + 1);
    size_t i = 0;
    for (; i + sizeof(uint64_t) <= key_len; i += sizeof(uint64_t)) {
        uint64_t word;
        memcpy(&word, bytes + i, sizeof word);
        hash = (hash ^ word) * 0x9FB21C651E98DF25ull;
        hash ^= hash >> 29;
    }
    uint64_t tail = 0;
    for (size_t shift = 0; i < key_len; i++, shift += 8)
        tail |= (uint64_t)bytes[i] << shift;
    return hash_mix(hash ^ tail);
}

static inline uint64_t slot_tag(uint64_t hash)
{
    return hash & ~SLOT_NODE_MASK;
}

static inline memtable_node_t *slot_node(uint64_t slot)
{
    return (memtable_node_t *)(uintptr_t)(slot & SLOT_NODE_MASK);
}

static inline bool node_has_key(const memtable_node_t *node, const void *key, size_t key_len)
{
    return node->key_len == key_len && (key_len == 0 || memcmp(node_key(node), key, key_len) == 0);
}

/* The newest node of key in table, or NULL when key has none. */
static const memtable_node_t *index_find(const memtable_index_t *table, const void *key,
                                         size_t key_len, uint64_t hash)
{
    for (size_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        uint64_t slot = atomic_load_explicit(&table->slots[i], memory_order_acquire);
        if (slot == 0)
            return NULL;
        if (slot_tag(slot) == slot_tag(hash) && node_has_key(slot_node(slot), key, key_len))
            return slot_node(slot);
    }
}

/* Gets search the list from now on; the tables stay until the memtable goes,
 * since readers may be probing them. */
static void index_turn_off(strata_memtable_t *self)
{
    self->index_off = true;
    atomic_store_explicit(&self->index, NULL, memory_order_release);
}

/* A table twice the size of the newest (or the first), holding all of its
 * slots, published; NULL after turning the index off when out of memory. */
static memtable_index_t *index_grow(strata_memtable_t *self)
{
    const memtable_index_t *old = self->index_tables;
    size_t slots = old ? 2 * (old->mask + 1) : INDEX_MIN_SLOTS;
    size_t size = sizeof(memtable_index_t) + slots * sizeof(uint64_t);
    memtable_index_t *table = calloc(1, size);
    if (!table) {
        index_turn_off(self);
        return NULL;
    }
    table->mask = slots - 1;
    for (size_t i = 0; old && i <= old->mask; i++) {
        /* Rehashing reads every key: fetch nodes well ahead of their turn. */
        if (i + 16 <= old->mask) {
            uint64_t ahead = atomic_load_explicit(&old->slots[i + 16], memory_order_relaxed);
            if (ahead)
                __builtin_prefetch(slot_node(ahead));
        }
        uint64_t slot = atomic_load_explicit(&old->slots[i], memory_order_relaxed);
        if (slot == 0)
            continue;
        const memtable_node_t *node = slot_node(slot);
        size_t at = key_hash(node_key(node), node->key_len) & table->mask;
        while (atomic_load_explicit(&table->slots[at], memory_order_relaxed) != 0)
            at = (at + 1) & table->mask;
        atomic_store_explicit(&table->slots[at], slot, memory_order_relaxed);
    }
    table->older = self->index_tables;
    self->index_tables = table;
    bytes_added(self, size);
    atomic_store_explicit(&self->index, table, memory_order_release);
    return table;
}

/* Points key's slot at node, a node already linked into the list, unless
 * the slot holds a newer version. */
static void index_insert(strata_memtable_t *self, memtable_node_t *node, uint64_t hash)
{
    if (self->index_off)
        return;
    if ((uintptr_t)node & ~(uintptr_t)SLOT_NODE_MASK) {
        index_turn_off(self); /* an address beyond 48 bits: no room for the tag */
        return;
    }
    memtable_index_t *table = self->index_tables;
    if (!table || self->index_keys + 1 > (table->mask + 1) / 4 * 3) {
        table = index_grow(self);
        if (!table)
            return;
    }
    uint64_t packed = slot_tag(hash) | (uintptr_t)node;
    for (size_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        uint64_t slot = atomic_load_explicit(&table->slots[i], memory_order_relaxed);
        if (slot == 0) {
            self->index_keys++;
        } else if (slot_tag(slot) != slot_tag(hash) ||
                   !node_has_key(slot_node(slot), node_key(node), node->key_len)) {
            continue;
        } else if (slot_node(slot)->seq > node->seq) {
            return;
        }
        atomic_store_explicit(&table->slots[i], packed, memory_order_release);
        return;
    }
}

/* Starts fetching the slot that index_insert will want while the list
 * search misses on its own. */
static inline void index_prefetch(const strata_memtable_t *self, uint64_t hash)
{
    const memtable_index_t *table = self->index_tables;
    if (table && !self->index_off)
        __builtin_prefetch(&table->slots[hash & table->mask], 1);
}

strata_memtable_t *strata_memtable_new(void)
{
    strata_memtable_t *self = aligned_alloc(CACHE_LINE, sizeof *self);
    if (!self)
        return NULL;
    memset(self, 0, sizeof *self);
    atomic_init(&self->refs, 1);
    atomic_init(&self->max_height, 1);
    atomic_init(&self->bytes, 0);
    atomic_init(&self->count, 0);
    /* A fixed seed: the shape of the list is the same on every run, which
     * makes a performance problem reproducible. */
    self->rng = 0x9E3779B97F4A7C15ull;

    memtable_node_t *head = node_alloc(self, MEMTABLE_MAX_HEIGHT, 0, 0);
    if (!head) {
        free(self);
        return NULL;
    }
    head->seq = 0;
    head->type = 0;
    for (int level = 0; level < MEMTABLE_MAX_HEIGHT; level++)
        atomic_init(node_link(head, level), NULL);
    self->head = head;
    return self;
}

void strata_memtable_ref(strata_memtable_t *self)
{
    assert(self);
    atomic_fetch_add_explicit(&self->refs, 1, memory_order_relaxed);
}

void strata_memtable_unref(strata_memtable_t **self_p)
{
    assert(self_p);
    strata_memtable_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    /* acq_rel: the thread that frees must see every other holder's reads
     * finished; a lone acquire fence would do, but TSan does not model it. */
    if (atomic_fetch_sub_explicit(&self->refs, 1, memory_order_acq_rel) != 1)
        return;
    filler_stop(self);
    free(self->staged);
    memtable_index_t *table = self->index_tables;
    while (table) {
        memtable_index_t *older = table->older;
        free(table);
        table = older;
    }
    arena_block_t *block = self->blocks;
    while (block) {
        arena_block_t *older = block->older;
        free(block);
        block = older;
    }
    free(self);
}

/* A filled node, not yet linked, or NULL when the entry can never fit. */
static memtable_node_t *node_create(strata_memtable_t *self, uint64_t seq, strata_value_type_t type,
                                    const void *key, size_t key_len, const void *value,
                                    size_t value_len)
{
    assert(type == STRATA_VALUE_PUT || type == STRATA_VALUE_DELETE);
    /* The most a node adds to its key and value: links, header, rounding,
     * and the padding and header of a block of its own. */
    const size_t overhead = node_prefix_size(MEMTABLE_MAX_HEIGHT) + sizeof(memtable_node_t) +
                            ARENA_ALIGN + CACHE_LINE + sizeof(arena_block_t);
    /* A key beyond the node's 32-bit length field, or a size that would
     * wrap, could never be allocated: both are out of memory. */
    if (key_len > UINT32_MAX || key_len > SIZE_MAX - overhead ||
        value_len > SIZE_MAX - overhead - key_len)
        return NULL;
    int height = random_height(self);
    memtable_node_t *node = node_alloc(self, height, key_len, value_len);
    if (!node)
        return NULL;
    node->seq = seq;
    node->type = (uint8_t)type;
    /* memcpy from a NULL pointer is undefined even for zero bytes. */
    if (key_len)
        memcpy((unsigned char *)node_key(node), key, key_len);
    if (value_len)
        memcpy((unsigned char *)node_value(node), value, value_len);
    return node;
}

/* Links node after prev[level] on each of its levels, raising the list's
 * height first when node is the tallest yet. */
static void node_link_after(strata_memtable_t *self, memtable_node_t *node, memtable_node_t **prev)
{
    int height = node->height;
    int max_height = atomic_load_explicit(&self->max_height, memory_order_relaxed);
    if (height > max_height) {
        for (int level = max_height; level < height; level++)
            prev[level] = self->head;
        atomic_store_explicit(&self->max_height, height, memory_order_relaxed);
    }
    /* The node must be whole before the first release store makes it
     * reachable; linking bottom-up means a reader that finds it on some
     * level also finds it on every level below. */
    for (int level = 0; level < height; level++)
        atomic_init(node_link(node, level),
                    atomic_load_explicit(node_link(prev[level], level), memory_order_relaxed));
    for (int level = 0; level < height; level++)
        atomic_store_explicit(node_link(prev[level], level), node, memory_order_release);
}

static void count_added(strata_memtable_t *self, uint64_t added)
{
    uint64_t count = atomic_load_explicit(&self->count, memory_order_relaxed);
    atomic_store_explicit(&self->count, count + added, memory_order_relaxed);
}

/* Finds node's place by a search from the head and links it there. */
static void node_insert(strata_memtable_t *self, memtable_node_t *node)
{
    memtable_node_t *prev[MEMTABLE_MAX_HEIGHT];
    find_greater_or_equal(self, node_key(node), node->key_len, node->seq, prev);
    node_link_after(self, node, prev);
}

int strata_memtable_add(strata_memtable_t *self, uint64_t seq, strata_value_type_t type,
                        const void *key, size_t key_len, const void *value, size_t value_len)
{
    assert(self);
    memtable_node_t *node = node_create(self, seq, type, key, key_len, value, value_len);
    if (!node)
        return STRATA_ENOMEM;
    /* After node_create has checked key_len, before the search. */
    uint64_t hash = self->index_off ? 0 : key_hash(key, key_len);
    index_prefetch(self, hash);
    node_insert(self, node);
    index_insert(self, node, hash);
    count_added(self, 1);
    return 0;
}

/* ---- bulk loading -------------------------------------------------------- */

/* Big-endian, so that integer order is byte order; bytes past the end of
 * the key read as zero, and the tie that makes is broken by the full
 * compare. */
static uint64_t key_window(const unsigned char *key, size_t key_len, size_t offset)
{
    uint64_t window = 0;
    if (key_len >= offset + sizeof window) {
        memcpy(&window, key + offset, sizeof window);
        return __builtin_bswap64(window);
    }
    for (size_t i = 0; i < sizeof window; i++)
        window = window << 8 | (offset + i < key_len ? key[offset + i] : 0);
    return window;
}

int strata_memtable_stage(strata_memtable_t *self, uint64_t seq, strata_value_type_t type,
                          const void *key, size_t key_len, const void *value, size_t value_len)
{
    assert(self);
    /* Room first, so that a failure leaves no node behind. */
    if (self->n_staged == self->cap_staged) {
        size_t cap = self->cap_staged ? self->cap_staged * 2 : 1024;
        staged_rec_t *grown = realloc(self->staged, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->staged = grown;
        self->cap_staged = cap;
    }
    memtable_node_t *node = node_create(self, seq, type, key, key_len, value, value_len);
    if (!node)
        return STRATA_ENOMEM;
    if (self->n_staged == 0) {
        self->staged_common = key_len;
    } else {
        const unsigned char *first = node_key(self->staged[0].node);
        size_t common = self->staged_common < key_len ? self->staged_common : key_len;
        size_t same = 0;
        while (same < common && first[same] == ((const unsigned char *)key)[same])
            same++;
        self->staged_common = same;
    }
    /* Taken here, from the key in hand: at publish it would cost a
     * cache miss on every node. */
    self->staged[self->n_staged++] =
        (staged_rec_t){.window = key_window(key, key_len, 0), .node = node};
    if (self->n_staged == FILLER_START_ENTRIES && !self->filler)
        filler_start(self);
    return 0;
}

/* Buckets this small are finished by insertion sort: they fit in a few
 * cache lines, where another 256-way pass would cost more than it saves. */
#define SMALL_BUCKET 32

static void insertion_sort_by_window(staged_rec_t *recs, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        staged_rec_t rec = recs[i];
        size_t j = i;
        while (j > 0 && recs[j - 1].window > rec.window) {
            recs[j] = recs[j - 1];
            j--;
        }
        recs[j] = rec;
    }
}

/* One pass of the radix sort below, on the highest byte from shift down
 * on which the windows differ: scatters recs by it into count's buckets.
 * Returns that byte's shift, or -1, leaving recs as they were, when every
 * window is the same. */
static int radix_partition(staged_rec_t *recs, staged_rec_t *scratch, size_t n, int shift,
                           size_t count[256])
{
    for (; shift >= 0; shift -= 8) {
        memset(count, 0, 256 * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(recs[i].window >> shift) & 0xff]++;
        if (count[(recs[0].window >> shift) & 0xff] != n)
            break;
    }
    if (shift < 0)
        return -1;
    size_t start[256], offset = 0;
    for (int digit = 0; digit < 256; digit++) {
        start[digit] = offset;
        offset += count[digit];
    }
    for (size_t i = 0; i < n; i++)
        scratch[start[(recs[i].window >> shift) & 0xff]++] = recs[i];
    memcpy(recs, scratch, n * sizeof *recs);
    return shift;
}

static void radix_sort(staged_rec_t *recs, staged_rec_t *scratch, size_t n, int shift);

/* Sorts the buckets [first_digit, end_digit) that radix_partition left at
 * shift; recs and scratch start at the first of them. */
static void radix_sort_buckets(staged_rec_t *recs, staged_rec_t *scratch, const size_t count[256],
                               int first_digit, int end_digit, int shift)
{
    size_t offset = 0;
    for (int digit = first_digit; digit < end_digit; digit++) {
        if (count[digit] > 1)
            radix_sort(recs + offset, scratch + offset, count[digit], shift - 8);
        offset += count[digit];
    }
}

/* MSD radix sort on window, a byte per level from the top, recursing only
 * into buckets that are still big. Random keys are ordered after two
 * passes over the records, where an LSD sort makes one per byte of the
 * window; a byte that every record of a bucket shares costs only a count.
 * Equal windows end in one run, in no particular order. */
static void radix_sort(staged_rec_t *recs, staged_rec_t *scratch, size_t n, int shift)
{
    if (n <= SMALL_BUCKET) {
        if (shift >= 0)
            insertion_sort_by_window(recs, n);
        return;
    }
    size_t count[256];
    shift = radix_partition(recs, scratch, n, shift, count);
    if (shift >= 0)
        radix_sort_buckets(recs, scratch, count, 0, 256, shift);
}

static int staged_rec_compare(const void *a, const void *b)
{
    const memtable_node_t *x = ((const staged_rec_t *)a)->node;
    const memtable_node_t *y = ((const staged_rec_t *)b)->node;
    return node_compare(x, node_key(y), y->key_len, y->seq);
}

/* Orders records whose keys differ at most in length: shorter first, then
 * newer seq first. window holds the sort key here, not the key's bytes. */
static int versions_compare(const void *a, const void *b)
{
    uint64_t x = ((const staged_rec_t *)a)->window, y = ((const staged_rec_t *)b)->window;
    return x < y ? -1 : x > y;
}

/* Runs this short have their nodes in cache after the first compares. */
#define SMALL_RUN 64
/* Each level of recursion splits a run or ends it; this only bounds the
 * stack against keys built to defeat it. */
#define MAX_SORT_DEPTH 16

static void sort_by_window(staged_rec_t *recs, staged_rec_t *scratch, size_t n, size_t offset,
                           int depth);

/* Sorts a run of records that tie on the window at offset. Versions of one
 * key (the usual reason for a long run) or keys that end inside the window
 * differ only in length and seq, which go into window so that the sort
 * never touches the nodes again; keys that share more than the window are
 * sorted again on the bytes after what they share. */
static void sort_run(staged_rec_t *recs, staged_rec_t *scratch, size_t n, size_t offset, int depth)
{
    if (n <= SMALL_RUN || depth >= MAX_SORT_DEPTH) {
        qsort(recs, n, sizeof *recs, staged_rec_compare);
        return;
    }
    const memtable_node_t *first = recs[0].node;
    size_t common = first->key_len, max_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 8 < n)
            __builtin_prefetch(recs[i + 8].node);
        const memtable_node_t *node = recs[i].node;
        size_t len = node->key_len < common ? node->key_len : common;
        size_t same = offset;
        while (same < len && node_key(node)[same] == node_key(first)[same])
            same++;
        common = same;
        if (node->key_len > max_len)
            max_len = node->key_len;
    }
    if (common == max_len) {
        /* One key: newest first. */
        for (size_t i = 0; i < n; i++)
            recs[i].window = UINT64_MAX - recs[i].node->seq;
        qsort(recs, n, sizeof *recs, versions_compare);
        return;
    }
    if (max_len <= offset + sizeof(uint64_t)) {
        /* Keys that end inside the window: the bytes past offset of the
         * longer ones are zeros, so length orders them. It takes 4 bits
         * beside a seq below 2^60; seqs beyond that get the full compare. */
        const uint64_t seq_bits = ((uint64_t)1 << 60) - 1;
        bool fits = true;
        for (size_t i = 0; i < n && fits; i++) {
            const memtable_node_t *node = recs[i].node;
            fits = node->seq <= seq_bits;
            recs[i].window = (uint64_t)(node->key_len - offset) << 60 | (seq_bits - node->seq);
        }
        qsort(recs, n, sizeof *recs, fits ? versions_compare : staged_rec_compare);
        return;
    }
    if (common > offset)
        sort_by_window(recs, scratch, n, common, depth + 1);
    else
        qsort(recs, n, sizeof *recs, staged_rec_compare);
}

/* Sorts each run of equal windows in recs, which the radix sort left
 * ordered by window, on what follows the window. */
static void sort_runs(staged_rec_t *recs, staged_rec_t *scratch, size_t n, size_t offset, int depth)
{
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && recs[end].window == recs[start].window)
            end++;
        if (end - start > 1)
            sort_run(recs + start, scratch + start, end - start, offset, depth);
        start = end;
    }
}

/* Sorts recs, whose windows are set, into memtable order, given that all
 * their keys share their first offset bytes: by the window after those,
 * then each run of equal windows on its own. The result is in recs;
 * scratch is as long. */
static void sort_windowed(staged_rec_t *recs, staged_rec_t *scratch, size_t n, size_t offset,
                          int depth)
{
    radix_sort(recs, scratch, n, 56);
    sort_runs(recs, scratch, n, offset, depth);
}

/* Sets each record's window to the 8 key bytes after offset. */
static void set_windows(staged_rec_t *recs, size_t n, size_t offset)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 8 < n)
            __builtin_prefetch(recs[i + 8].node);
        recs[i].window = key_window(node_key(recs[i].node), recs[i].node->key_len, offset);
    }
}

static void sort_by_window(staged_rec_t *recs, staged_rec_t *scratch, size_t n, size_t offset,
                           int depth)
{
    set_windows(recs, n, offset);
    sort_windowed(recs, scratch, n, offset, depth);
}

/* Links sorted nodes, each after the last one on every level it shares
 * with it, searching on from there (a splice): appending past the end of
 * the list, the common case when a bulk load fills an empty memtable,
 * needs no compare at all. */
static void link_sorted(strata_memtable_t *self, const staged_rec_t *recs, size_t n,
                        memtable_node_t *prev[MEMTABLE_MAX_HEIGHT])
{
    for (int level = 0; level < MEMTABLE_MAX_HEIGHT; level++)
        prev[level] = self->head;
    for (size_t i = 0; i < n; i++) {
        /* The nodes lie in the arena in staging order, not this one. */
        if (i + 8 < n)
            __builtin_prefetch(recs[i + 8].node);
        memtable_node_t *node = recs[i].node;
        int max_height = atomic_load_explicit(&self->max_height, memory_order_relaxed);
        if (node->height > max_height)
            max_height = node->height;
        /* With nothing after prev[0], the last node linked, there is nothing
         * after prev[level] on any level either (it is the last node of
         * that level before prev[0]), so no level needs a search. */
        if (!atomic_load_explicit(node_link(prev[0], 0), memory_order_relaxed))
            max_height = 0;
        /* prev[level] is at or before the last node linked, so it is before
         * this one. Once the search moves right of it on a level, it is
         * past the last node, hence past prev of every level below. */
        memtable_node_t *from = NULL;
        for (int level = max_height - 1; level >= 0; level--) {
            memtable_node_t *at = from ? from : prev[level];
            for (;;) {
                memtable_node_t *next =
                    atomic_load_explicit(node_link(at, level), memory_order_relaxed);
                if (!next || node_compare(next, node_key(node), node->key_len, node->seq) >= 0)
                    break;
                at = next;
            }
            if (from || at != prev[level])
                from = at;
            prev[level] = at;
        }
        node_link_after(self, node, prev);
        for (int level = 0; level < node->height; level++)
            prev[level] = node;
    }
}

/* Below this many entries a second thread costs more than it saves. */
#define PUBLISH_SPLIT_MIN ((size_t)1 << 16)

/* The upper half of a split publish: buckets [first_digit, 256) of a
 * radix_partition at shift, sorted and chained on a thread of its own. */
typedef struct {
    staged_rec_t *recs, *scratch;
    size_t n;
    const size_t *count;
    int first_digit, shift;
    size_t offset; /* that every staged key shares */
    /* Each level's chain, NULL where no node reaches the level. */
    memtable_node_t *first[MEMTABLE_MAX_HEIGHT], *last[MEMTABLE_MAX_HEIGHT];
    int height;
} upper_half_t;

/* Chains sorted nodes on every level as appending them to an empty list
 * would, but in no list, so no reader can see them yet. */
static void chain_sorted(upper_half_t *half)
{
    for (size_t i = 0; i < half->n; i++) {
        if (i + 8 < half->n)
            __builtin_prefetch(half->recs[i + 8].node);
        memtable_node_t *node = half->recs[i].node;
        for (int level = 0; level < node->height; level++) {
            atomic_init(node_link(node, level), NULL);
            if (half->last[level])
                atomic_store_explicit(node_link(half->last[level], level), node,
                                      memory_order_relaxed);
            else
                half->first[level] = node;
            half->last[level] = node;
        }
        if (node->height > half->height)
            half->height = node->height;
    }
}

static void *upper_half_run(void *arg)
{
    upper_half_t *half = arg;
    radix_sort_buckets(half->recs, half->scratch, half->count, half->first_digit, 256, half->shift);
    sort_runs(half->recs, half->scratch, half->n, half->offset, 0);
    chain_sorted(half);
    return NULL;
}

/* Publishes into an empty list on two cores: after one radix pass every
 * bucket sorts on its own, so a helper sorts and chains the upper buckets
 * while this thread sorts and links the lower ones, and the upper chain
 * then hangs off the last node of each level. Sorting and linking were a
 * quarter of a replay. Returns false, having changed nothing, when the
 * windows do not split. */
static bool publish_split(strata_memtable_t *self, staged_rec_t *recs, staged_rec_t *scratch,
                          size_t n, size_t offset)
{
    size_t count[256];
    int shift = radix_partition(recs, scratch, n, 56, count);
    if (shift < 0)
        return false;
    /* The first buckets that hold half the records, or the first that
     * holds more; at least two buckets are not empty. */
    int split = 0;
    size_t lower = 0;
    while (lower + count[split] <= n / 2)
        lower += count[split++];
    if (lower == 0)
        lower = count[split++];
    upper_half_t half = {.recs = recs + lower,
                         .scratch = scratch + lower,
                         .n = n - lower,
                         .count = count,
                         .first_digit = split,
                         .shift = shift,
                         .offset = offset};
    pthread_t thread;
    bool threaded = pthread_create(&thread, NULL, upper_half_run, &half) == 0;
    radix_sort_buckets(recs, scratch, count, 0, split, shift);
    sort_runs(recs, scratch, lower, offset, 0);
    memtable_node_t *prev[MEMTABLE_MAX_HEIGHT];
    link_sorted(self, recs, lower, prev);
    if (threaded)
        pthread_join(thread, NULL);
    else
        upper_half_run(&half);
    /* As node_link_after does for one node: height first, then each level
     * bottom-up, so a reader that finds the chain on a level finds it on
     * every level below. */
    int max_height = atomic_load_explicit(&self->max_height, memory_order_relaxed);
    if (half.height > max_height)
        atomic_store_explicit(&self->max_height, half.height, memory_order_relaxed);
    for (int level = 0; level < half.height; level++)
        atomic_store_explicit(node_link(prev[level], level), half.first[level],
                              memory_order_release);
    return true;
}

void strata_memtable_publish(strata_memtable_t *self)
{
    assert(self);
    /* Staging is over: the sort and link below may want the core. */
    filler_stop(self);
    size_t n = self->n_staged;
    if (n == 0)
        return;
    /* Indexing each entry would cost replay a cache miss apiece, and the
     * index must hold every node or none: this memtable's gets search. */
    index_turn_off(self);
    staged_rec_t *recs = self->staged;
    staged_rec_t *scratch = malloc(n * sizeof *scratch);
    if (scratch) {
        size_t offset = self->staged_common;
        if (offset)
            set_windows(recs, n, offset);
        bool empty = !atomic_load_explicit(node_link(self->head, 0), memory_order_relaxed);
        if (n < PUBLISH_SPLIT_MIN || !empty || !publish_split(self, recs, scratch, n, offset)) {
            memtable_node_t *prev[MEMTABLE_MAX_HEIGHT];
            sort_windowed(recs, scratch, n, offset, 0);
            link_sorted(self, recs, n, prev);
        }
        free(scratch);
    } else {
        for (size_t i = 0; i < n; i++)
            node_insert(self, recs[i].node);
    }
    count_added(self, n);
    free(self->staged);
    self->staged = NULL;
    self->n_staged = 0;
    self->cap_staged = 0;
}

int strata_memtable_get(const strata_memtable_t *self, const void *key, size_t key_len,
                        uint64_t snapshot_seq, strata_value_type_t *type, const void **value,
                        size_t *value_len, uint64_t *seq)
{
    assert(self);
    const memtable_node_t *node = NULL;
    const memtable_index_t *table = atomic_load_explicit(&self->index, memory_order_acquire);
    if (table) {
        node = index_find(table, key, key_len, key_hash(key, key_len));
        if (!node)
            return 0;
        if (node->seq > snapshot_seq)
            node = NULL; /* an older version is wanted: only the list orders them */
    }
    if (!node) {
        node = find_greater_or_equal(self, key, key_len, snapshot_seq, NULL);
        if (!node || !node_has_key(node, key, key_len))
            return 0;
    }
    if (type)
        *type = (strata_value_type_t)node->type;
    if (value)
        *value = node_value(node);
    if (value_len)
        *value_len = (size_t)node_value_len(node);
    if (seq)
        *seq = node->seq;
    return 1;
}

size_t strata_memtable_bytes(const strata_memtable_t *self)
{
    return atomic_load_explicit(&self->bytes, memory_order_relaxed);
}

uint64_t strata_memtable_count(const strata_memtable_t *self)
{
    return atomic_load_explicit(&self->count, memory_order_relaxed);
}

strata_memtable_iter_t *strata_memtable_iter_new(strata_memtable_t *self)
{
    assert(self);
    strata_memtable_iter_t *it = malloc(sizeof *it);
    if (!it)
        return NULL;
    strata_memtable_ref(self);
    it->memtable = self;
    it->node = NULL;
    return it;
}

void strata_memtable_iter_destroy(strata_memtable_iter_t **self_p)
{
    assert(self_p);
    strata_memtable_iter_t *it = *self_p;
    if (!it)
        return;
    *self_p = NULL;
    strata_memtable_unref(&it->memtable);
    free(it);
}

void strata_memtable_iter_seek_first(strata_memtable_iter_t *it)
{
    it->node = node_next(it->memtable->head, 0);
}

void strata_memtable_iter_seek_last(strata_memtable_iter_t *it)
{
    const strata_memtable_t *self = it->memtable;
    const memtable_node_t *node = self->head;
    int level = atomic_load_explicit(&self->max_height, memory_order_relaxed) - 1;
    for (;;) {
        const memtable_node_t *next = node_next(node, level);
        if (next)
            node = next;
        else if (level > 0)
            level--;
        else
            break;
    }
    it->node = node == self->head ? NULL : node;
}

void strata_memtable_iter_seek(strata_memtable_iter_t *it, const void *key, size_t key_len,
                               uint64_t seq)
{
    it->node = find_greater_or_equal(it->memtable, key, key_len, seq, NULL);
}

int strata_memtable_iter_valid(const strata_memtable_iter_t *it)
{
    return it->node != NULL;
}

void strata_memtable_iter_next(strata_memtable_iter_t *it)
{
    assert(it->node);
    it->node = node_next(it->node, 0);
}

/* Nodes have no back pointers (a second pointer to publish per level), so
 * stepping back searches for the last node before the current one. */
void strata_memtable_iter_prev(strata_memtable_iter_t *it)
{
    assert(it->node);
    const memtable_node_t *node = it->node;
    memtable_node_t *prev[MEMTABLE_MAX_HEIGHT];
    find_greater_or_equal(it->memtable, node_key(node), node->key_len, node->seq, prev);
    it->node = prev[0] == it->memtable->head ? NULL : prev[0];
}

const void *strata_memtable_iter_key(const strata_memtable_iter_t *it, size_t *key_len)
{
    assert(it->node);
    if (key_len)
        *key_len = it->node->key_len;
    return node_key(it->node);
}

const void *strata_memtable_iter_value(const strata_memtable_iter_t *it, size_t *value_len)
{
    assert(it->node);
    if (value_len)
        *value_len = (size_t)node_value_len(it->node);
    return node_value(it->node);
}

uint64_t strata_memtable_iter_seq(const strata_memtable_iter_t *it)
{
    assert(it->node);
    return it->node->seq;
}

strata_value_type_t strata_memtable_iter_type(const strata_memtable_iter_t *it)
{
    assert(it->node);
    return (strata_value_type_t)it->node->type;
}
