/* The Raft transport relay (proto/TRANSPORT.md): one process of a node that
 * carries one kind of consensus message between the node's writer and the
 * same process on the other nodes. strata-election and strata-replicator are
 * this relay with a different kind; their main.c only names it.
 *
 * The relay is an object (relay_new/run/stop/destroy) so that a test can
 * run it in-process; relay_main is the whole of a service's main(). */
#ifndef STRATA_RELAY_H
#define STRATA_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "strata/err.h"

#define RELAY_VERSION "0.1.0"

/* What differs between the two transports: the kind sent in HELLO, which is
 * also the config section, the endpoints file's name and the metrics
 * prefix, and the peers list it reads. */
typedef struct {
    const char *kind;      /* "election" or "replicator" */
    const char *peers_key; /* "cluster/election_peers" */
    const char *prog;      /* "strata-election" */
    const char *summary;   /* one line for --help: which messages it carries */
    /* Answers SNAPLIST and SNAPREAD on the peer ROUTER from the snapshots
     * directory (snapserve.h). */
    bool serves_snapshots;
    /* Publishes the writer's role to the node's processes on an XPUB at
     * <kind>/roles (proto/TRANSPORT.md, "The node's role, published"). */
    bool publishes_roles;
} relay_kind_t;

typedef struct relay relay_t;

/* Checks cfg as relay_new would (cluster/id, the peers list against
 * cluster/voters and cluster/learners, heartbeat, bind, metrics), without
 * starting anything; the error names the key and the bad item. */
int relay_check_config(const relay_kind_t *kind, svc_config_t *cfg, strata_error_t *err);
/* Takes cfg. Binds the peer ROUTER, the control endpoint and the metrics
 * port, connects a DEALER to every other node of the peers list, and writes
 * <data_dir>/<kind>.endpoints. The writer is found later, in the loop. */
int relay_new(const relay_kind_t *kind, svc_config_t *cfg, relay_t **relay_p, strata_error_t *err);
/* Relays until SIGINT/SIGTERM or relay_stop. */
int relay_run(relay_t *r);
/* From any thread: makes relay_run return within a tick. */
void relay_stop(relay_t *r);
/* Closes everything; after a clean run also removes the endpoints file. */
void relay_destroy(relay_t **relay_p);

/* A service's main(): arguments, config, --print-config, the relay until
 * a signal. Exit codes: 0 clean stop, 1 start-up failed, 2 usage or config
 * error. */
int relay_main(const relay_kind_t *kind, int argc, char **argv);

#endif
