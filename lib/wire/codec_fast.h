/* The codec's fast paths for the requests and replies a busy client sends
 * most (put, delete, get and their successful replies): the protobuf wire
 * format read and written by hand, with no allocation for a request and one
 * for a reply. Anything else, and anything unusual in these (an unknown or
 * repeated field, a value past a cap, a version not ours), is left to
 * protobuf-c, so the two always agree: tests/unit/test_codec.c checks it on
 * random and mutated frames. Private to lib/wire. */
#ifndef STRATA_CODEC_FAST_H
#define STRATA_CODEC_FAST_H

#include <stdbool.h>

#include "strata/codec.h"

/* Fills out from a put, delete or get frame whose every field is one the
 * fast path knows, each at most once, with valid enums, version 1 and keys
 * and values within their caps: key and value then point into buf. False
 * for anything else (out is zeroed), which the full decoder then takes. */
bool codec_fast_request(const uint8_t *buf, size_t len, strata_request_t *out);

/* Encodes a successful write or get reply (status 0, no message); false for
 * any other reply. On true, *rc is 0 with *buf malloc'd, or the error. */
bool codec_fast_reply(const strata_reply_t *rep, uint8_t **buf, size_t *len, int *rc,
                      strata_error_t *err);

/* Fills out from a successful write or get reply of the same plain shape
 * (what codec_fast_reply writes); a get's value is copied, with the values
 * array, into one allocation that out->decoded_ marks as the fast path's.
 * False for anything else (out is zeroed), or when out of memory. */
bool codec_fast_reply_decode(const uint8_t *buf, size_t len, strata_reply_t *out);
/* What decoded_ holds after codec_fast_reply_decode: strata_reply_clear
 * frees values and nothing else. */
extern const char codec_fast_marker;

/* The reply encoder and decoder without the fast path, for the tests'
 * comparison. */
int codec_reply_decode_pb(const void *buf, size_t len, strata_reply_t *out, strata_error_t *err);
int codec_reply_encode_pb(const strata_reply_t *rep, uint8_t **buf, size_t *len,
                          strata_error_t *err);

#endif
