/* A test bed of network namespaces (root only): one namespace per node,
 * each with a veth into one bridge on the host, which also has an address
 * on the nodes' subnet so the test itself reaches every node. Names and the
 * subnet carry the creating process's pid, so beds of concurrent runs do not
 * meet and a later run can remove what a killed one left (ts_netns_sweep). */
#ifndef STRATA_TEST_NETNS_H
#define STRATA_TEST_NETNS_H

#include <stdbool.h>

#define TS_NETNS_MAX 5

typedef struct {
    int n;
    int pid;
    char bridge[24];
    char ns[TS_NETNS_MAX][24];   /* the node's namespace */
    char veth[TS_NETNS_MAX][24]; /* the host's end of its link */
    char ip[TS_NETNS_MAX][48];   /* the node's address */
    char host_ip[48];            /* the bridge's */
} ts_netns_t;

/* Runs the shell command; its exit status (-1 when it could not run). The
 * output goes to stderr, for the test's log. */
int ts_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates n namespaces on a bridge, each with lo and its link up. false,
 * with why in the log, when a step fails (not root, no iproute2); what was
 * made is removed again. */
bool ts_netns_create(ts_netns_t *bed, int n);
/* Kills every process in the namespaces, removes them and the bridge. */
void ts_netns_destroy(ts_netns_t *bed);
/* Removes the beds of processes that are gone. */
void ts_netns_sweep(void);
/* Takes node i's link down (isolated: nothing in or out, the test's own
 * connections too) or up again. */
void ts_netns_link(const ts_netns_t *bed, int i, bool up);

/* Inside node i's namespace (nftables, table inet nemesis): drop what comes
 * from node j, and with both_ways what goes to it; the test's own traffic
 * (from the bridge's address) still passes. */
void ts_netns_cut(const ts_netns_t *bed, int i, int j, bool both_ways);
/* Drop percent of what node i receives from node j, at random. */
void ts_netns_loss(const ts_netns_t *bed, int i, int j, int percent);
/* Removes every rule cut and loss put into node i's namespace. */
void ts_netns_heal(const ts_netns_t *bed, int i);

/* Processes the support library starts from now on (node.c) join this
 * namespace; NULL or "" for the test's own. */
void ts_spawn_netns(const char *ns);

#endif
