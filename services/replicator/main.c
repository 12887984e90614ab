/* strata-replicator: the node's transport for log entries (proto/TRANSPORT.md),
 * the relay of services/relay with the kind `replicator`. */
#include "relay.h"

static const relay_kind_t replicator = {
    .kind = "replicator",
    .peers_key = "cluster/replicator_peers",
    .prog = "strata-replicator",
    .summary = "append, append_reply and snapshot_offer messages",
    .serves_snapshots = true,
};

int main(int argc, char **argv)
{
    return relay_main(&replicator, argc, argv);
}
