/* Versions and the MANIFEST (format in lib/engine/manifest.md): which SSTables
 * make up the database at each level, changed only by version edits that
 * are logged (and fsync'd) before they take effect. A version is reference
 * counted, so a read or an iterator holding an old version keeps its files
 * open and on disk; a file is deleted when no version references it.
 * Private to lib/: db.c and the compaction code use it. */
#ifndef STRATA_VERSION_H
#define STRATA_VERSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"
#include "strata/memtable.h"
#include "strata/sstable.h"

#define STRATA_LEVELS 7

typedef struct vset vset_t;

/* One SSTable, shared by every version that contains it. */
typedef struct vfile {
    uint64_t number;
    uint64_t size;
    uint64_t entries;
    uint64_t min_seq;
    uint64_t max_seq;
    uint8_t *smallest; /* user keys */
    size_t smallest_len;
    uint8_t *largest;
    size_t largest_len;
    atomic_int refs; /* versions (and edits) holding it */
    vset_t *vset;    /* for the table cache */
    bool obsolete;   /* removed from the current version: delete at last unref */
    /* The table cache, guarded by the vset's table lock: the open reader,
     * how many reads and iterators are using it (a pinned table is never
     * closed), and its place in the least-recently-used list. */
    strata_table_t *table;
    int table_pins;
    struct vfile *lru_prev, *lru_next;
} vfile_t;

typedef struct version {
    atomic_int refs;
    vset_t *vset;
    /* L0 newest first (files may overlap); L1+ sorted by smallest key and
     * disjoint. */
    vfile_t **files[STRATA_LEVELS];
    size_t n_files[STRATA_LEVELS];
} version_t;

/* A change to the current version; built by flush and compaction. */
typedef struct {
    bool has_flushed_seq;
    uint64_t flushed_seq; /* every seq <= this is in SSTables: older WAL may go */
    bool has_last_seq;
    uint64_t last_seq;
    struct {
        int level;
        vfile_t *file; /* the edit holds a reference */
    } * adds;
    size_t n_adds, cap_adds;
    struct {
        int level;
        uint64_t number;
    } * deletes;
    size_t n_deletes, cap_deletes;
} edit_t;

void edit_init(edit_t *edit);
void edit_clear(edit_t *edit);
/* Takes ownership of file's reference. */
int edit_add(edit_t *edit, int level, vfile_t *file);
int edit_delete(edit_t *edit, int level, uint64_t number);

/* A file record for a freshly built table (refs = 1), from its props. */
vfile_t *vfile_new(uint64_t number, const strata_table_props_t *props);
void vfile_unref(vfile_t **file_p);

/* Opens the version set in dir: reads CURRENT and its MANIFEST (a torn
 * last record is dropped; damage before it is STRATA_ECORRUPT naming file
 * and offset), then writes a fresh MANIFEST holding the whole current
 * version and points CURRENT at it. A new directory gets an empty one.
 * SSTables that no version references (left by a crash mid-flush or
 * mid-compaction) and temp files are deleted. */
int vset_open(const char *dir, strata_io_t *io, const strata_table_options_t *table_opts,
              vset_t **vset_p, strata_error_t *err);

/* What a read-only open found in the MANIFEST. */
typedef struct {
    uint64_t manifest_number;  /* the one CURRENT names; 0 when CURRENT is unreadable */
    bool torn_tail;            /* a final record cut short or failing its CRC: ignored as */
    uint64_t torn_tail_offset; /* open ignores it (an edit whose fdatasync never returned) */
} manifest_report_t;

/* Reads CURRENT and its MANIFEST as vset_open does and changes
 * nothing: no new MANIFEST, no orphan deletion, no lock, so it may run
 * beside a live writer (a MANIFEST replaced meanwhile is read again).
 * vset_apply on the result fails with STRATA_EREADONLY. No CURRENT
 * is STRATA_ENOTFOUND. report may be NULL. For strata_db_verify. */
int vset_open_readonly(const char *dir, strata_io_t *io, const strata_table_options_t *table_opts,
                       manifest_report_t *report, vset_t **vset_p, strata_error_t *err);
void vset_close(vset_t **vset_p);

/* Logs edit to the MANIFEST, fdatasyncs it, and installs the result as the
 * current version. Not thread-safe: one caller at a time (the writer). */
int vset_apply(vset_t *self, edit_t *edit, strata_error_t *err);

/* The current version with a reference the caller must drop. Thread-safe. */
version_t *vset_current(vset_t *self);
void version_unref(version_t **version_p);

uint64_t vset_new_file_number(vset_t *self);
uint64_t vset_flushed_seq(const vset_t *self);
/* How many edits this set has installed since open. */
uint64_t vset_generation(const vset_t *self);
uint64_t vset_last_seq(const vset_t *self);
/* "<dir>/NNNNNN.sst"; caller frees. */
char *vset_table_path(const vset_t *self, uint64_t number);

/* Newest entry of key with seq <= snapshot across the version's tables:
 * 1 found (value malloc'd, also for a delete marker), 0 none, < 0 error. */
int version_get(version_t *self, const void *key, size_t key_len, uint64_t snapshot_seq,
                strata_value_type_t *type, void **value, size_t *value_len, strata_error_t *err);

/* The opened table of a file, pinned until vfile_table_unpin: opened
 * on first use and cached, with at most max_open_tables open at once (the
 * least recently used unpinned ones are closed, to be reopened when next
 * read). */
int vfile_table(vfile_t *file, strata_table_t **table, strata_error_t *err);
void vfile_table_unpin(vfile_t *file);
/* Default 1000; set before use. */
void vset_set_max_open_tables(vset_t *self, size_t max_open);
size_t vset_open_tables(vset_t *self);

uint64_t version_level_bytes(const version_t *self, int level);

/* Writes into dest (which must exist) a CURRENT and a MANIFEST describing
 * version with the given flushed seq, and hard links to its tables: the
 * body of a checkpoint. Everything is fsync'd, dest included. */
int vset_export(vset_t *self, version_t *version, uint64_t flushed_seq, const char *dest,
                strata_error_t *err);

#endif
