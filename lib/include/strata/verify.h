/* An offline, read-only check of a data directory (or a checkpoint of one)
 * for `stratactl verify`: the MANIFEST, every table it references and
 * every WAL segment. What is checked and what counts as a problem or a
 * warning: lib/engine/verify.md. */
#ifndef STRATA_VERIFY_H
#define STRATA_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "strata/err.h"

/* One finding; its strings are valid only during the callback. */
typedef struct {
    const char *file; /* relative to the directory: "MANIFEST-000004", "000007.sst",
                         "wal/0000000000000001.wal", "CURRENT" */
    uint64_t offset;  /* where in file, when has_offset */
    bool has_offset;
    const char *kind;    /* "wal", "sstable" or "manifest" */
    const char *message; /* one line naming file and offset, as the library's errors do */
    bool fatal;          /* true: a problem (data damaged or missing); false: a warning
                            (a torn WAL tail, an orphan table: nothing acknowledged is lost) */
} strata_verify_problem_t;

typedef void (*strata_verify_fn)(void *arg, const strata_verify_problem_t *problem);

typedef struct {
    uint64_t wal_segments;
    uint64_t wal_entries; /* entries whose CRC and seq were checked */
    uint64_t wal_bytes;
    uint64_t tables; /* tables opened and checked block by block */
    uint64_t table_bytes;
    uint64_t manifest_files; /* MANIFESTs read: 1, or 0 when CURRENT or it is unreadable */
    uint64_t problems;       /* findings with fatal set */
    uint64_t warnings;
    uint64_t last_seq; /* the newest seq the directory holds, in the WAL or the tables */
} strata_verify_stats_t;

/* Checks dir without changing anything in it (no truncation, no orphan
 * deletion, no new MANIFEST, no LOCK), so it may run beside a live writer;
 * what that writer is appending may show up as a warning at the WAL's
 * tail. Every finding goes to fn (may be NULL), and the check goes on past
 * each one. stats (may be NULL) gets the counts. Returns 0 when dir is
 * clean (warnings allowed), STRATA_ECORRUPT when any problem was found
 * (err names the first), or another error when the check cannot run: dir
 * missing or without a CURRENT, so not a data directory (STRATA_ENOTFOUND),
 * not a directory (STRATA_EINVAL), out of memory. */
int strata_db_verify(const char *dir, strata_verify_fn fn, void *arg, strata_verify_stats_t *stats,
                     strata_error_t *err);

#endif
