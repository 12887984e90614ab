/* The Raft metadata file: this node's current term, its vote in that term
 * and its incarnation (a random id that changes only when the disk is
 * replaced), kept double-buffered in <dir>/raft-meta.1 and raft-meta.2 so
 * that a power cut during a store leaves the previous value readable.
 * Layout, slot choice and every error: lib/raft/meta.md. Every file
 * operation goes through the strata_io_t seam. */
#ifndef STRATA_RAFT_META_H
#define STRATA_RAFT_META_H

#include <stdbool.h>
#include <stdint.h>

#include "strata/err.h"
#include "strata/io.h"

typedef struct strata_raft_meta strata_raft_meta_t;

/* Loads the metadata of dir (which must exist); io NULL is POSIX. With no
 * slot file present the disk is new: *fresh is set, term and vote are 0 and
 * a random nonzero incarnation is chosen, which the first store makes
 * durable (nothing is written before it). STRATA_ECORRUPT when no slot is
 * valid but one exists, STRATA_EVERSION when a slot is of a newer format. */
int strata_raft_meta_open(strata_io_t *io, const char *dir, strata_raft_meta_t **meta, bool *fresh,
                          strata_error_t *err);

/* Makes (term, vote) durable; returns only once they are. Refuses
 * (STRATA_EINVAL) a term lower than the stored one and a second, different
 * vote in the same term: either would let this node vote twice. After a
 * failed write or sync every later store fails with STRATA_EREADONLY (the
 * disk's state is unknown; the getters keep the last durable value). */
int strata_raft_meta_store(strata_raft_meta_t *meta, uint64_t term, uint32_t vote,
                           strata_error_t *err);

uint64_t strata_raft_meta_term(const strata_raft_meta_t *meta);
uint32_t strata_raft_meta_vote(const strata_raft_meta_t *meta);
uint64_t strata_raft_meta_incarnation(const strata_raft_meta_t *meta);
/* The sequence number of the newest durable slot (0 before the first
 * store) and its slot (1 or 2; 0 before the first store). */
uint64_t strata_raft_meta_seq(const strata_raft_meta_t *meta);
int strata_raft_meta_slot(const strata_raft_meta_t *meta);

void strata_raft_meta_close(strata_raft_meta_t **meta);

#endif
