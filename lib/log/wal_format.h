/* What the log's writer and recovery (wal.c) and its read-only cursor
 * (wal_cursor.c) share about the segment files of lib/log/wal.md: constants,
 * names and headers. Entries are entry.h's. Private to lib/. */
#ifndef STRATA_WAL_FORMAT_H
#define STRATA_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "strata/wal.h"

#define WAL_MAGIC            "STRATAWL"
#define WAL_VERSION          1u
#define WAL_HEADER_SIZE      64u
#define WAL_NAME_DIGITS      16
#define WAL_MAX_SEGMENT_FILE (UINT64_C(4) << 30) /* a larger file is not one of ours */

/* "<dir>/NNNNNNNNNNNNNNNN.wal", malloc'd; NULL when out of memory. */
char *wal_segment_path(const char *dir, uint64_t number);

/* Segment numbers found in dir, sorted ascending into a malloc'd array.
 * Only exact segment names count: *.corrupt and temporary files are not
 * part of the log. */
int wal_list_segments(const char *dir, uint64_t **numbers, size_t *count, strata_error_t *err);

/* Checks the size bytes read from the start of segment `number`. Returns
 * 0 with *first_seq and *created_ns (either may be NULL), STRATA_EVERSION,
 * or STRATA_ECORRUPT with *kind naming the damage ("torn segment header",
 * "bad segment header"); err names the file and offset. */
int wal_check_segment_header(const char *path, const uint8_t *buf, uint64_t size, uint64_t number,
                             uint64_t *first_seq, uint64_t *created_ns, const char **kind,
                             strata_error_t *err);

#endif
