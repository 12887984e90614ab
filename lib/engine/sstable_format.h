/* What the SSTable writer (sstable_build.c) and reader (sstable.c) share
 * about the file layout of lib/engine/sstable.md: constants, property
 * tags, block handles. Private to lib/engine. */
#ifndef STRATA_SSTABLE_FORMAT_H
#define STRATA_SSTABLE_FORMAT_H

#include <stdint.h>

#include "block.h"

#define TABLE_MAGIC    "STRATAST"
#define TABLE_VERSION  1u
#define FOOTER_SIZE    64u
#define BLOCK_TRAILER  5u /* type byte + CRC32C */
#define BLOCK_TYPE_RAW 0u
#define BLOCK_TYPE_LZ4 1u

#define MAX_USER_KEY    (BLOCK_MAX_KEY - IKEY_TRAILER)
#define MAX_BLOCK_OPT   (64u << 20)  /* largest block_bytes a builder accepts */
#define MAX_RAW_BLOCK   (512u << 20) /* largest decompressed block a reader accepts */
#define LZ4_MAX_RATIO   255u         /* LZ4's format cannot expand data further */
#define OUT_FLUSH       (256u << 10) /* builder writes in chunks of about this */
#define GET_STACK_BYTES 16384        /* decompression buffer of a get, on its stack */

#define DEFAULT_BLOCK_BYTES      4096
#define DEFAULT_RESTART_INTERVAL 16
#define DEFAULT_BLOOM_BITS       10

/* Property tags: each record is varint tag, varint length, bytes. */
enum {
    PROP_ENTRIES = 1,
    PROP_DELETES,
    PROP_MIN_SEQ,
    PROP_MAX_SEQ,
    PROP_DATA_BLOCKS,
    PROP_RAW_KEY_BYTES,
    PROP_RAW_VALUE_BYTES,
    PROP_SMALLEST_KEY,
    PROP_LARGEST_KEY,
    PROP_LAST = PROP_LARGEST_KEY,
};

static const char *const prop_names[] __attribute__((unused)) = {
    [PROP_ENTRIES] = "entries",
    [PROP_DELETES] = "deletes",
    [PROP_MIN_SEQ] = "min_seq",
    [PROP_MAX_SEQ] = "max_seq",
    [PROP_DATA_BLOCKS] = "data_blocks",
    [PROP_RAW_KEY_BYTES] = "raw_key_bytes",
    [PROP_RAW_VALUE_BYTES] = "raw_value_bytes",
    [PROP_SMALLEST_KEY] = "smallest_key",
    [PROP_LARGEST_KEY] = "largest_key",
};

typedef struct {
    uint64_t offset;
    uint64_t size; /* of the contents, without the trailer */
} handle_t;

typedef unsigned long long ull; /* for printf */

/* The blocks the footer points at, in footer order. */
enum { META_INDEX, META_FILTER, META_PROPS, META_COUNT };
static const char *const meta_names[META_COUNT]
    __attribute__((unused)) = {"index", "filter", "properties"};

#endif
