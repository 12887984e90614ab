/* What the log's writer and recovery (wal.c) and its read-only cursor
 * (wal_cursor.c) share about the on-disk format of lib/log/wal.md: constants,
 * segment names and headers, and the one entry parser. Private to lib/. */
#ifndef STRATA_WAL_FORMAT_H
#define STRATA_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/wal.h"

#define WAL_MAGIC               "STRATAWL"
#define WAL_VERSION             1u
#define WAL_HEADER_SIZE         64u
#define WAL_ENTRY_HEADER        40u
#define WAL_FLAG_GROUP_CONT     0x01u /* more entries of the same atomic group follow */
#define WAL_KNOWN_FLAGS         WAL_FLAG_GROUP_CONT
#define WAL_NAME_DIGITS         16
#define DEFAULT_MAX_ENTRY_BYTES (64u << 20)

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

/* Parses and checks the entry at p, of which left bytes are available:
 * lengths against left and max_entry before the payload is touched, then
 * the CRC, then type and flags. On false, *kind is the damage kind wal.md
 * names ("torn header", "zero fill", "oversize length", "bad lengths",
 * "torn payload", "bad crc", "unknown entry type"). The entry's pointers
 * point into p. */
bool wal_parse_entry(const uint8_t *p, uint64_t left, uint32_t max_entry, strata_wal_entry_t *e,
                     uint64_t *len, const char **kind);

#endif
