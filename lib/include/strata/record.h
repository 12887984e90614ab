/* Typed exchange records: the values applications write and subscribers read.
 * Each record is a self-describing msgpack map tagged with "type" and "v", so a
 * reader in any language decodes it without these headers. Schema: proto/RECORDS.md. */
#ifndef STRATA_RECORD_H
#define STRATA_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "strata/err.h"

#define STRATA_RECORD_VERSION    1
#define STRATA_ORDER_ID_MAX      40
#define STRATA_USER_ID_MAX       32
#define STRATA_INSTRUMENT_ID_MAX 16
#define STRATA_TOPIC_MAX         32
#define STRATA_RAW_KEY_MAX       1024
#define STRATA_RAW_DATA_MAX      (1u << 20)
/* Enough for every key strata_record_key builds, NUL included. */
#define STRATA_RECORD_KEY_MAX (STRATA_RAW_KEY_MAX + 1)

/* Numbered from 1 so a zeroed record is recognisably "no type". The numbers
 * never reach the wire (the type travels by name), but keep them stable. */
typedef enum {
    STRATA_RECORD_ORDER_INSERT = 1,
    STRATA_RECORD_ORDER_CANCEL = 2,
    STRATA_RECORD_TRADE_EXECUTED = 3,
    STRATA_RECORD_ACCOUNT_UPDATE = 4,
    STRATA_RECORD_MARKET_TICK = 5,
    STRATA_RECORD_RAW = 6,
} strata_record_type_t;

typedef enum { STRATA_DIRECTION_BUY = 1, STRATA_DIRECTION_SELL = 2 } strata_direction_t;
typedef enum { STRATA_OFFSET_OPEN = 1, STRATA_OFFSET_CLOSE = 2 } strata_offset_t;

/* Heap bytes owned by the record that holds them; see strata_record_clear. */
typedef struct {
    uint8_t *ptr;
    size_t len;
} strata_owned_bytes_t;

typedef struct {
    char order_id[STRATA_ORDER_ID_MAX + 1];
    char user_id[STRATA_USER_ID_MAX + 1];
    char instrument_id[STRATA_INSTRUMENT_ID_MAX + 1];
    strata_direction_t direction;
    strata_offset_t offset;
    double price;
    double volume;
    uint64_t timestamp_ns;
} strata_order_insert_t;

typedef struct {
    char order_id[STRATA_ORDER_ID_MAX + 1];
    char user_id[STRATA_USER_ID_MAX + 1];
    char instrument_id[STRATA_INSTRUMENT_ID_MAX + 1];
    uint64_t timestamp_ns;
} strata_order_cancel_t;

typedef struct {
    char trade_id[STRATA_ORDER_ID_MAX + 1];
    char order_id[STRATA_ORDER_ID_MAX + 1];
    char exchange_order_id[STRATA_ORDER_ID_MAX + 1];
    char instrument_id[STRATA_INSTRUMENT_ID_MAX + 1];
    strata_direction_t direction;
    double price;
    double volume;
    uint64_t timestamp_ns;
} strata_trade_executed_t;

typedef struct {
    char user_id[STRATA_USER_ID_MAX + 1];
    double balance;
    double available;
    double frozen;
    double margin;
    uint64_t timestamp_ns;
} strata_account_update_t;

typedef struct {
    char instrument_id[STRATA_INSTRUMENT_ID_MAX + 1];
    double last;
    double bid;
    double ask;
    double volume;
    uint64_t timestamp_ns;
} strata_market_tick_t;

typedef struct {
    char topic[STRATA_TOPIC_MAX + 1];
    strata_owned_bytes_t key;
    strata_owned_bytes_t data;
} strata_raw_t;

typedef struct {
    strata_record_type_t type;
    union {
        strata_order_insert_t order_insert;
        strata_order_cancel_t order_cancel;
        strata_trade_executed_t trade_executed;
        strata_account_update_t account_update;
        strata_market_tick_t market_tick;
        strata_raw_t raw;
    } u;
} strata_record_t;

/* "OrderInsert" etc., or NULL for a type we do not know. */
const char *strata_record_type_name(strata_record_type_t type);
/* 0 when name is not a known type. */
strata_record_type_t strata_record_type_from_name(const char *name);

/* Frees the bytes a Raw record owns and zeroes rec; safe on any record. */
void strata_record_clear(strata_record_t *rec);

/* Checks every field against proto/RECORDS.md; the message names the field,
 * e.g. "OrderInsert.price: must be finite and > 0". */
int strata_record_validate(const strata_record_t *rec, strata_error_t *err);

/* Validates rec, then encodes it as a msgpack map into *buf (malloc'd; the
 * caller frees it) of *len bytes. */
int strata_record_encode(const strata_record_t *rec, uint8_t **buf, size_t *len,
                         strata_error_t *err);

/* Decodes and validates one record filling the whole of buf. rec is
 * overwritten (clear a decoded Raw first or its bytes leak); on failure it is
 * left cleared. Strict (lenient false) rejects unknown fields by name: that is
 * the writer's check, so typos are caught. Lenient skips them: that is the
 * subscriber's mode, so a newer writer's added fields do not break old readers.
 * Malformed msgpack is STRATA_ECORRUPT; an unknown type or a "v" other than
 * STRATA_RECORD_VERSION is STRATA_EVERSION (a reader may skip such records). */
int strata_record_decode(const void *buf, size_t len, bool lenient, strata_record_t *rec,
                         strata_error_t *err);

/* The topic the record is published on: "orders", "trades", "accounts",
 * "market", or a Raw record's own topic. NULL for an unknown type. The
 * pointer lives as long as rec. */
const char *strata_record_topic(const strata_record_t *rec);

/* Writes the record's key (e.g. "o/<order_id>") into buf and NUL-terminates
 * it. Returns the key length, or STRATA_ETOOBIG when cap cannot hold it and
 * its NUL (STRATA_RECORD_KEY_MAX always can), STRATA_EINVAL for a bad record.
 * A Raw key is bytes and may contain NULs: use the returned length. */
ssize_t strata_record_key(const strata_record_t *rec, char *buf, size_t cap);

/* Builds a record of type_name from n "field=value" strings (the stratactl
 * form: order_id=A1 price=101.5), then validates it. Enum fields take their
 * names ("buy"), numbers must parse whole, Raw key/data take the text's bytes. */
int strata_record_from_fields(const char *type_name, const char *const *pairs, size_t n,
                              strata_record_t *rec, strata_error_t *err);

/* Pretty-printed JSON for humans and tools, malloc'd into *json (caller
 * frees). Bytes fields map each byte to the code point of the same value, so
 * they stay reversible and ASCII stays readable. */
int strata_record_to_json(const strata_record_t *rec, char **json);

#endif
