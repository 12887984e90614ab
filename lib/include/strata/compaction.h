/* Compaction outside the database's process: the node's strata-compactor
 * reads the tables a data directory's MANIFEST lists (read-only, beside a
 * live writer), picks what to merge as the writer's own compaction would,
 * merges it into tables of its own, and offers them to the writer
 * (strata_db_install_compaction, or the writer's install_compaction verb),
 * which installs them as one version edit or refuses and changes nothing.
 *
 * Leveled: 7 levels; L0 holds flushed tables that may overlap and is
 * compacted by file count, L1 and below are sorted runs compacted by size,
 * each level level_ratio times the last. Keys order bytewise. */
#ifndef STRATA_COMPACTION_PUBLIC_H
#define STRATA_COMPACTION_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/sstable.h"

#define STRATA_COMPACTION_LEVELS 7

typedef struct {
    uint32_t l0_trigger;        /* compact L0 at this many files; default 4 */
    uint64_t level1_bytes;      /* L1 size limit; default 64 MiB */
    uint32_t level_ratio;       /* each level this many times the last; default 10 */
    uint64_t target_file_bytes; /* split outputs past this; default 8 MiB */
} strata_compaction_options_t;

void strata_compaction_options_init(strata_compaction_options_t *opts);

/* One table of a level. The keys point into the view that gave them. */
typedef struct {
    uint64_t number, size, entries;
    const uint8_t *smallest, *largest; /* user keys */
    size_t smallest_len, largest_len;
} strata_table_info_t;

/* ---- a read-only view of a data directory's tables ---------------------- */

typedef struct strata_tables strata_tables_t;

/* Reads CURRENT and its MANIFEST, changing nothing and taking no lock.
 * table_opts (may be NULL: defaults) opens the tables and writes the
 * outputs of jobs picked from this view; its io, if set, must outlive the
 * view. STRATA_ENOTFOUND: no CURRENT (no database there yet). */
int strata_tables_open(const char *dir, const strata_table_options_t *table_opts,
                       strata_tables_t **tables_p, strata_error_t *err);
void strata_tables_close(strata_tables_t **tables_p);

/* L0 newest first; L1 and below in key order. level outside 0..6: 0. */
size_t strata_tables_count(const strata_tables_t *tables, int level);
void strata_tables_info(const strata_tables_t *tables, int level, size_t i,
                        strata_table_info_t *out);

/* How many of level's tables overlap [lo, hi] (NULL: unbounded on that
 * side) and their bytes; either output may be NULL. */
size_t strata_tables_in_range(const strata_tables_t *tables, int level, const void *lo,
                              size_t lo_len, const void *hi, size_t hi_len, uint64_t *bytes);

/* ---- jobs --------------------------------------------------------------- */

/* Where each level's round robin stands between picks. */
typedef struct strata_compaction_cursor strata_compaction_cursor_t;
strata_compaction_cursor_t *strata_compaction_cursor_new(void); /* NULL: out of memory */
void strata_compaction_cursor_free(strata_compaction_cursor_t **cursor_p);

/* One merge of tables at a level with the overlapping tables of the next.
 * It refers to the view it was picked from, which must stay open until the
 * job is freed. */
typedef struct strata_compaction_job strata_compaction_job_t;

/* Scores every level (L0: files / l0_trigger; Ln: bytes / its limit) and
 * picks the highest scoring at or above 1, round robin within it. *job_p is
 * NULL when nothing needs compacting. */
int strata_compaction_job_pick(strata_tables_t *tables, const strata_compaction_options_t *opts,
                               strata_compaction_cursor_t *cursor, strata_compaction_job_t **job_p);
/* A manual merge of level into level + 1: the level's tables that overlap
 * [lo, hi] (NULL: unbounded), at most max_files of them for level >= 1, in
 * key order; all of L0 whatever the range. *job_p is NULL when the level
 * has nothing there. */
int strata_compaction_job_pick_range(strata_tables_t *tables, int level, const void *lo,
                                     size_t lo_len, const void *hi, size_t hi_len, size_t max_files,
                                     strata_compaction_job_t **job_p);

/* Inputs come from level (which 0) and level + 1 (which 1). */
int strata_compaction_job_level(const strata_compaction_job_t *job);
size_t strata_compaction_job_inputs(const strata_compaction_job_t *job, int which);
void strata_compaction_job_input(const strata_compaction_job_t *job, int which, size_t i,
                                 strata_table_info_t *out);
/* Input entries merged so far, published in steps of about a thousand and
 * whole at the end of a successful run; safe to read from another thread
 * while the job runs. */
uint64_t strata_compaction_job_progress(const strata_compaction_job_t *job);

typedef struct {
    uint64_t bytes_read, bytes_written;
    uint64_t entries_in, entries_dropped;
    uint64_t tables_written;
} strata_compaction_stats_t;

/* Merges the inputs into "<output_dir>/<output_prefix>-N.sst", N counting
 * from 1, each fsync'd, split past target_file_bytes; keeps for each key the
 * newest entry and any older one a reader at smallest_snapshot or above
 * still needs, and drops tombstones that nothing older can hide beneath.
 * On failure every output written so far is removed. Run once per job. */
int strata_compaction_job_run(strata_compaction_job_t *job, const strata_compaction_options_t *opts,
                              const char *output_dir, const char *output_prefix,
                              uint64_t smallest_snapshot, strata_compaction_stats_t *stats,
                              strata_error_t *err);
/* After a successful run: the outputs' N, in key order. */
size_t strata_compaction_job_outputs(const strata_compaction_job_t *job);
uint64_t strata_compaction_job_output(const strata_compaction_job_t *job, size_t i);

void strata_compaction_job_free(strata_compaction_job_t **job_p);

#endif
