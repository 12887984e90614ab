/* The Raft peer codec: strata_raft_msg_t to and from the bytes one node
 * sends another (proto/raft.proto, rules and every error in proto/RAFT.md).
 * An append carries its entries as frames: WAL entries in the WAL's own
 * encoding (lib/log/wal.md), concatenated, so a follower can hand them to
 * its WAL without re-encoding. */
#ifndef STRATA_RAFT_MSG_H
#define STRATA_RAFT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/raft.h"

#define STRATA_RAFT_MSG_VERSION  1u
#define STRATA_RAFT_MSG_MAX      (8u << 20) /* one encoded message, frames included */
#define STRATA_RAFT_MSG_MAX_NODE STRATA_RAFT_MAX_NODE_ID

/* Encodes m, with frames[0..frames_len) as an append's entries, into a
 * malloc'd *out. The frames are checked as the receiver will check them and
 * must hold exactly m->n_entries entries (m->entries is not looked at);
 * other types take no frames. STRATA_EINVAL or STRATA_ETOOBIG with the
 * field named, as decode would say. */
int strata_raft_msg_encode(const strata_raft_msg_t *m, const uint8_t *frames, size_t frames_len,
                           uint8_t **out, size_t *out_len, strata_error_t *err);

/* Decodes and checks buf into *m. For an append, entries[0..n_entries)
 * get each entry's seq and term and, in data, its byte offset within
 * *frames, which points into buf (valid as long as buf is); m->entries is
 * entries. For other types *frames is NULL and *frames_len 0. At most cap
 * entries are accepted (STRATA_ETOOBIG beyond). Errors: STRATA_EINVAL,
 * STRATA_ETOOBIG, STRATA_EVERSION, STRATA_ECORRUPT, each naming the field
 * and, for frames, the entry index and byte offset. */
int strata_raft_msg_decode(const uint8_t *buf, size_t len, strata_raft_msg_t *m,
                           strata_raft_entry_t *entries, size_t cap, const uint8_t **frames,
                           size_t *frames_len, strata_error_t *err);

#endif
