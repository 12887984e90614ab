/* The leader side of a snapshot copy (proto/TRANSPORT.md, "Copying a
 * snapshot"): the answers to SNAPLIST and SNAPREAD from the node's snapshots
 * directory. strata-replicator's relay receives the requests on its peer
 * ROUTER and sends the answers; this module touches no socket. */
#ifndef STRATA_SNAPSERVE_H
#define STRATA_SNAPSERVE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define SNAPSERVE_MAX_READ (1u << 20) /* the largest SNAPREAD length */

typedef struct snapserve snapserve_t;

/* What one answer holds, for the relay's counters. */
typedef struct {
    bool error;          /* it is a SNAPERR */
    uint64_t data_bytes; /* file bytes in a SNAPDATA */
} snapserve_outcome_t;

/* Serves the sealed snapshots under snapshots_dir (which need not exist
 * yet). NULL when out of memory. */
snapserve_t *snapserve_new(const char *snapshots_dir);
void snapserve_destroy(snapserve_t **self_p);

/* Whether verb is one this module answers (SNAPLIST, SNAPREAD). */
bool snapserve_handles(zframe_t *verb);

/* The answer to request, whose first frame is the verb (the routing id
 * already taken off): SNAPLIST, SNAPDATA or SNAPERR and their frames. The
 * caller owns the message. Reads the disk: a SNAPSHOT file, at most
 * SNAPSERVE_MAX_READ bytes of one listed file. */
zmsg_t *snapserve_answer(snapserve_t *self, zmsg_t *request, snapserve_outcome_t *outcome);

#endif
