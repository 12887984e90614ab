/* strata-election: the node's transport for votes (proto/TRANSPORT.md),
 * the relay of services/relay with the kind `election`, which also
 * publishes the node's role to its other processes. */
#include "relay.h"

static const relay_kind_t election = {
    .kind = "election",
    .peers_key = "cluster/election_peers",
    .prog = "strata-election",
    .summary = "vote, vote_reply and timeout_now messages; publishes the node's role",
    .publishes_roles = true,
};

int main(int argc, char **argv)
{
    return relay_main(&election, argc, argv);
}
