/* Reading a MANIFEST's version edits one by one, for tools (`stratactl dump
 * manifest`). Format: lib/engine/manifest.md; the parser is the one recovery
 * uses (lib/engine/version.c). Read-only: safe beside a running writer. */
#ifndef STRATA_MANIFEST_H
#define STRATA_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"

/* A table an edit adds; the keys point into the caller's edit. */
typedef struct {
    int level;
    uint64_t number, size, entries, min_seq, max_seq;
    const uint8_t *smallest;
    size_t smallest_len;
    const uint8_t *largest;
    size_t largest_len;
} strata_manifest_add_t;

typedef struct {
    int level;
    uint64_t number;
} strata_manifest_delete_t;

/* One version edit (one MANIFEST record); valid during the callback. */
typedef struct {
    uint64_t offset; /* of the record in the file */
    bool has_flushed_seq, has_last_seq, has_next_file;
    uint64_t flushed_seq, last_seq, next_file;
    const strata_manifest_add_t *adds;
    size_t n_adds;
    const strata_manifest_delete_t *deletes;
    size_t n_deletes;
} strata_manifest_edit_t;

/* A non-zero return stops the read with that code. */
typedef int (*strata_manifest_edit_fn)(void *arg, const strata_manifest_edit_t *edit);

/* Hands every record of the MANIFEST at path (a MANIFEST file, or a data
 * directory whose CURRENT names one) to fn in file order. *manifest (may be
 * NULL, PATH_MAX bytes) gets the file read. A torn final record is what
 * recovery ignores: not an error, *torn_offset (may be NULL) gets its
 * offset, else the file size. Damage before it is STRATA_ECORRUPT naming
 * file and offset after fn saw every good record; STRATA_ENOTFOUND when
 * path (or CURRENT) is missing. */
int strata_manifest_read(const char *path, strata_manifest_edit_fn fn, void *arg, char *manifest,
                         uint64_t *torn_offset, strata_error_t *err);

#endif
