/* Leveled compaction (RocksDB/LevelDB style): the picker chooses what to
 * merge from a version, and the runner merges it into new tables and an
 * edit that installs them. Private to lib/, shared by db.c's compaction
 * thread (writer/compaction = internal) and compaction_job.c, which wraps
 * them for another process's compactor (strata/compaction.h). */
#ifndef STRATA_COMPACTION_H
#define STRATA_COMPACTION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/compaction.h"
#include "strata/err.h"
#include "version.h"

/* The public types (strata/compaction.h), which another process's
 * compactor fills in the same way. */
typedef strata_compaction_options_t compaction_options_t;

void compaction_options_init(compaction_options_t *opts);
/* The size limit of level (>= 1). */
uint64_t compaction_level_limit(const compaction_options_t *opts, int level);

/* Where each level's round-robin cursor stands: the largest key of the last
 * file compacted out of it, so the next pick starts after it. */
typedef struct {
    uint8_t *key[STRATA_LEVELS];
    size_t key_len[STRATA_LEVELS];
} compaction_cursor_t;
void compaction_cursor_clear(compaction_cursor_t *cursor);

typedef struct {
    int level; /* inputs[0] come from here, outputs go to level + 1 */
    vfile_t **inputs[2];
    size_t n_inputs[2];
    double score;
    bool bottom;        /* nothing below the output level overlaps */
    version_t *version; /* the version the inputs were picked from */
    /* Where the outputs go. NULL: the vset's directory under new file
     * numbers (compaction inside the writer). Else
     * "<output_dir>/<output_prefix>-N.sst" with N counting from
     * output_count + 1: a compactor in another process, whose outputs the
     * writer renames into place when it installs them (the edit's adds
     * carry those N as numbers). The caller owns both strings. */
    const char *output_dir;
    const char *output_prefix;
    uint64_t output_count;
    /* Input entries merged so far, for another thread to show progress. */
    _Atomic uint64_t progress_entries;
} compaction_t;

/* Scores every level (L0: files / trigger; Ln: bytes / limit) and picks
 * the highest scoring at or above 1, or L0 whenever force is set and L0
 * has files. *out is NULL when nothing needs compacting. */
int compaction_pick(version_t *version, const compaction_options_t *opts,
                    compaction_cursor_t *cursor, bool force, compaction_t **out);
/* A manual compaction of level into level + 1: the level's files that
 * overlap [lo, hi] (NULL: unbounded on that side), at most max_files of
 * them for level >= 1, in key order; all of L0 whatever the range. *out is
 * NULL when the level has nothing there. */
int compaction_pick_range(version_t *version, int level, const uint8_t *lo, size_t lo_len,
                          const uint8_t *hi, size_t hi_len, size_t max_files, compaction_t **out);
/* The highest level score, for stats. */
double compaction_score(const version_t *version, const compaction_options_t *opts);
void compaction_free(compaction_t **c_p);

typedef strata_compaction_stats_t compaction_stats_t;

/* Merges the inputs into new tables at level + 1, keeping for each key the
 * newest entry and any older one a snapshot at or above smallest_snapshot
 * still needs, and dropping tombstones nothing older can hide beneath.
 * Fills edit (deletes of inputs, adds of outputs) for the caller to apply;
 * on failure every output written so far is removed. */
int compaction_run(vset_t *vset, const strata_table_options_t *table_opts,
                   const compaction_options_t *opts, compaction_t *c, uint64_t smallest_snapshot,
                   edit_t *edit, compaction_stats_t *stats, strata_error_t *err);

#endif
