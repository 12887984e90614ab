/* Snapshots and backups: a checkpoint directory (strata_db_checkpoint) made
 * self-describing by a SNAPSHOT file that lists every file with its size and
 * CRC32C, so a copy can be checked before it is trusted. Format: snapshot.md. */
#ifndef STRATA_SNAPSHOT_H
#define STRATA_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"

#define STRATA_SNAPSHOT_VERSION   1
#define STRATA_SNAPSHOT_FILE      "SNAPSHOT"
#define STRATA_SNAPSHOT_MAX_FILES 100000 /* cap checked before allocating */

typedef struct {
    char *name; /* relative to the snapshot directory, e.g. "000007.sst", "wal/x" */
    uint64_t size;
    uint32_t crc32c;
} strata_snapshot_file_t;

typedef struct {
    uint32_t version;
    uint64_t seq; /* consistent at this seq */
    uint64_t term;
    uint64_t time_ns; /* wall clock when taken */
    char node[128];
    strata_snapshot_file_t *files;
    size_t n_files;
    uint64_t bytes; /* sum of the file sizes */
} strata_snapshot_meta_t;

/* Writes dir/SNAPSHOT for the checkpoint in dir: every regular file under
 * it (but SNAPSHOT) with its size and CRC32C; written to a temporary name,
 * fsync'd, renamed, and the directory fsync'd. meta (may be NULL) gets what
 * was written; release it with strata_snapshot_meta_free. */
int strata_snapshot_seal(const char *dir, uint64_t seq, uint64_t term, const char *node,
                         strata_snapshot_meta_t *meta, strata_error_t *err);

/* Reads and validates dir/SNAPSHOT (its own checksum, version, caps). */
int strata_snapshot_read(const char *dir, strata_snapshot_meta_t *meta, strata_error_t *err);
void strata_snapshot_meta_free(strata_snapshot_meta_t *meta);

/* Checks every file SNAPSHOT lists: present, the size and CRC32C listed.
 * Every problem goes to fn (may be NULL) as "FILE: what"; returns 0, or
 * STRATA_ECORRUPT (err gives the count, and the first problem when fn is
 * NULL: a caller that reports each one does not repeat it). A SNAPSHOT
 * that cannot be read is the error alone (STRATA_ENOTFOUND when missing). */
typedef void (*strata_snapshot_problem_fn)(void *arg, const char *problem);
int strata_snapshot_check(const char *dir, strata_snapshot_problem_fn fn, void *arg,
                          strata_error_t *err);

/* Copies the snapshot in src to dst (which must not exist, or be an empty
 * directory), checking each file's CRC32C as it is read: a mismatch stops
 * the copy and names the file. Built under "<dst>.tmp", every file and
 * directory fsync'd, then renamed. progress (may be NULL) is called after
 * each file with the bytes copied so far and the total. */
typedef void (*strata_snapshot_progress_fn)(void *arg, const char *file, uint64_t done,
                                            uint64_t total);
int strata_snapshot_copy(const char *src, const char *dst, strata_snapshot_progress_fn progress,
                         void *arg, strata_error_t *err);

/* Whether the len bytes at name are a snapshot's name: "snap-" and exactly
 * 20 digits. What names a remote copy may ask for or be offered. */
bool strata_snapshot_name_ok(const void *name, size_t len);

/* The sealed snapshots under a snapshots directory ("snap-<seq>" entries
 * with a valid SNAPSHOT), oldest first; *names is malloc'd, each name
 * too. Others (a half-written ".tmp-*") are not listed. */
int strata_snapshot_list(const char *snapshots_dir, char ***names, size_t *count,
                         strata_error_t *err);
void strata_snapshot_list_free(char **names, size_t count);

/* Removes a snapshot (or a half-built one) and everything under it, then
 * fsyncs its parent. Quiet when it is already gone. */
int strata_snapshot_remove(const char *dir, strata_error_t *err);

#endif
