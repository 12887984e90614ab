/* Small helpers every file format in lib/ shares: little-endian fixed-width
 * integers (all our formats are little-endian), byte copies, and the short
 * file name that error messages carry. Private to lib/. */
#ifndef STRATA_CODING_H
#define STRATA_CODING_H

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void put_u16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
}
static inline void put_u32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}
static inline void put_u64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}
static inline uint16_t get_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return le16toh(v);
}
static inline uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}
static inline uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

/* A malloc'd copy of len bytes; never NULL for len 0 unless out of memory. */
static inline uint8_t *dup_bytes(const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (copy && len)
        memcpy(copy, data, len);
    return copy;
}

/* The file and its directory, "wal/0000000000000042.wal": enough to find
 * it, short enough for a log line. Points into path. */
static inline const char *display_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return path;
    const char *start = slash;
    while (start > path && start[-1] != '/')
        start--;
    return start;
}

/* The directory holding path, as a new string ("." for a bare name), for
 * the directory fsync that makes a create or rename durable. */
static inline char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    return slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
}

#endif
