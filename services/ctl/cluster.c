/* The cluster verbs: status of every node, and transfer / step-down sent to
 * the master. The nodes are asked at once, each over its own client, so a
 * dead node costs one --timeout, not one per node. */
#define _GNU_SOURCE
#include "ctl.h"

/* Node ids are 1..255 (proto/PROTOCOL.md): no cluster has more nodes. */
#define MAX_NODES 255
#define MAX_LINE  1024

typedef struct {
    char *endpoint;
    strata_client_t *client;
    int rc; /* 0: answered; else why not (STRATA_ETIMEDOUT: unreachable) */
    char error[sizeof(strata_error_t){0}.msg];
    strata_reply_t stats;
} node_t;

typedef struct {
    node_t nodes[MAX_NODES];
    size_t n;
} nodes_t;

static void s_nodes_destroy(nodes_t **nodes_p)
{
    nodes_t *nodes = *nodes_p;
    for (size_t i = 0; nodes && i < nodes->n; i++) {
        free(nodes->nodes[i].endpoint);
        strata_client_destroy(&nodes->nodes[i].client);
        strata_reply_clear(&nodes->nodes[i].stats);
    }
    free(nodes);
    *nodes_p = NULL;
}

static int s_add(ctl_t *ctl, nodes_t *nodes, const char *from, const char *text, size_t len)
{
    if (nodes->n == MAX_NODES)
        return ctl_fail(ctl, CTL_USAGE, 0, "%s: more than %d endpoints", from, MAX_NODES);
    char *endpoint = ctl_xmalloc(len + 1);
    memcpy(endpoint, text, len);
    endpoint[len] = '\0';
    nodes->nodes[nodes->n++] = (node_t){.endpoint = endpoint};
    return CTL_OK;
}

/* --servers EP1,EP2: an empty entry is a typo, not a node to skip. */
static int s_from_servers(ctl_t *ctl, nodes_t *nodes)
{
    const char *p = ctl->servers;
    for (size_t index = 0;; index++) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return ctl_fail(ctl, CTL_USAGE, 0, "--servers: entry %zu of '%s' is empty", index + 1,
                            ctl->servers);
        int exit_code = s_add(ctl, nodes, "--servers", p, len);
        if (exit_code)
            return exit_code;
        if (!p[len])
            return CTL_OK;
        p += len + 1;
    }
}

/* --cluster FILE: one endpoint per line; blank lines and lines starting
 * with '#' are skipped, surrounding blanks trimmed. */
static int s_from_file(ctl_t *ctl, nodes_t *nodes)
{
    FILE *in = fopen(ctl->cluster, "r");
    if (!in)
        return ctl_fail(ctl, CTL_USAGE, 0, "--cluster %s: cannot read it: %s", ctl->cluster,
                        strerror(errno));
    char line[MAX_LINE];
    int exit_code = CTL_OK;
    unsigned number = 0;
    while (exit_code == CTL_OK && fgets(line, sizeof line, in)) {
        number++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            exit_code = ctl_fail(ctl, CTL_USAGE, 0, "--cluster %s: line %u is longer than %d bytes",
                                 ctl->cluster, number, MAX_LINE - 2);
            break;
        }
        const char *start = line + strspn(line, " \t\r\n");
        size_t end = strlen(start);
        while (end > 0 && strchr(" \t\r\n", start[end - 1]))
            end--;
        if (end == 0 || start[0] == '#')
            continue;
        exit_code = s_add(ctl, nodes, ctl->cluster, start, end);
    }
    fclose(in);
    if (exit_code == CTL_OK && nodes->n == 0)
        exit_code = ctl_fail(ctl, CTL_USAGE, 0, "--cluster %s: no endpoint in it", ctl->cluster);
    return exit_code;
}

/* The nodes to ask: --servers, else --cluster FILE, else -s alone. */
static int s_list(ctl_t *ctl, nodes_t *nodes)
{
    if (ctl->servers && ctl->cluster)
        return ctl_fail(ctl, CTL_USAGE, 0, "--servers and --cluster both given; use one");
    if (ctl->servers)
        return s_from_servers(ctl, nodes);
    if (ctl->cluster)
        return s_from_file(ctl, nodes);
    return s_add(ctl, nodes, "--server", ctl->endpoint, strlen(ctl->endpoint));
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends stats to every node, then collects the replies against one
 * deadline. A malformed endpoint is a usage error naming it. */
static int s_ask_all(ctl_t *ctl, nodes_t *nodes)
{
    for (size_t i = 0; i < nodes->n; i++) {
        node_t *node = &nodes->nodes[i];
        strata_client_options_t opts = {.endpoint = node->endpoint,
                                        .timeout_ms = ctl->timeout_ms,
                                        .curve_server_key = ctl->server_key,
                                        .curve_cert = ctl->cert};
        strata_error_t err;
        int rc = strata_client_connect(&opts, &node->client, &err);
        if (rc)
            return ctl_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg);
        strata_request_t req = {.op = STRATA_OP_STATS};
        if ((node->rc = strata_client_send(node->client, &req, NULL, &err)) != 0)
            snprintf(node->error, sizeof node->error, "%s", err.msg);
    }
    int64_t deadline = s_mono_ms() + ctl->timeout_ms;
    for (size_t i = 0; i < nodes->n; i++) {
        node_t *node = &nodes->nodes[i];
        if (node->rc)
            continue;
        int64_t left = deadline - s_mono_ms();
        strata_error_t err;
        node->rc = strata_client_recv(node->client, left > 0 ? (int)left : 0, &node->stats, &err);
        if (node->rc == STRATA_ETIMEDOUT)
            snprintf(node->error, sizeof node->error, "no reply from %s within %d ms",
                     node->endpoint, ctl->timeout_ms);
        else if (node->rc)
            snprintf(node->error, sizeof node->error, "%s", err.msg);
        else if (node->stats.status < 0) {
            node->rc = node->stats.status;
            snprintf(node->error, sizeof node->error, "%s", node->stats.message);
        }
    }
    return CTL_OK;
}

static const char *s_pair(const node_t *node, const char *name)
{
    for (size_t i = 0; i < node->stats.n_pairs; i++)
        if (!strcmp(node->stats.pairs[i].name, name))
            return node->stats.pairs[i].value;
    return NULL;
}

/* A number pair: absent (a standalone node has no term) or not a number
 * reads as none. */
static bool s_pair_u64(const node_t *node, const char *name, uint64_t *out)
{
    const char *text = s_pair(node, name);
    if (!text || !text[0] || text[0] == '-')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end)
        return false;
    *out = value;
    return true;
}

/* What a node says of one peer: peer_<id>_match, _lag and _lag_ms (only
 * on the master) and peer_<id>_contact_ms (ms since its last message, or
 * "never"). */
typedef struct {
    unsigned id;
    bool has_match, has_lag, has_lag_ms, has_contact, never;
    uint64_t match, lag, lag_ms, contact_ms;
} peer_t;

static size_t s_peers(const node_t *node, peer_t *peers, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < node->stats.n_pairs; i++) {
        const char *name = node->stats.pairs[i].name, *value = node->stats.pairs[i].value;
        unsigned id = 0;
        int used = 0;
        if (sscanf(name, "peer_%u_%n", &id, &used) != 1 || used == 0 || id == 0)
            continue;
        const char *what = name + used;
        bool is_match = !strcmp(what, "match"), is_contact = !strcmp(what, "contact_ms");
        bool is_lag = !strcmp(what, "lag"), is_lag_ms = !strcmp(what, "lag_ms");
        if (!is_match && !is_contact && !is_lag && !is_lag_ms)
            continue;
        size_t at = 0;
        while (at < n && peers[at].id != id)
            at++;
        if (at == n) {
            if (n == cap)
                continue;
            peers[n++] = (peer_t){.id = id};
        }
        peer_t *peer = &peers[at];
        char *end = NULL;
        uint64_t number = strtoull(value, &end, 10);
        bool numeric = value[0] && value[0] != '-' && end && !*end;
        if (is_match && numeric) {
            peer->has_match = true;
            peer->match = number;
        } else if (is_lag && numeric) {
            peer->has_lag = true;
            peer->lag = number;
        } else if (is_lag_ms && numeric) {
            peer->has_lag_ms = true;
            peer->lag_ms = number;
        } else if (is_contact && numeric) {
            peer->has_contact = true;
            peer->contact_ms = number;
        } else if (is_contact) {
            peer->never = true;
        }
    }
    return n;
}

static void s_json_number(cJSON *obj, const node_t *node, const char *name)
{
    uint64_t value;
    if (s_pair_u64(node, name, &value))
        ctl_json_add_u64(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static void s_text_number(const node_t *node, const char *name, int width)
{
    uint64_t value;
    if (s_pair_u64(node, name, &value))
        printf("  %*" PRIu64, width, value);
    else
        printf("  %*s", width, "-");
}

static void s_print(ctl_t *ctl, const nodes_t *nodes, size_t unreachable)
{
    peer_t peers[MAX_NODES];
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON *rows = cJSON_AddArrayToObject(doc, "nodes");
        for (size_t i = 0; i < nodes->n; i++) {
            const node_t *node = &nodes->nodes[i];
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "endpoint", node->endpoint);
            cJSON_AddBoolToObject(row, "reachable", node->rc != STRATA_ETIMEDOUT);
            if (node->rc) {
                cJSON_AddStringToObject(row, "error", node->error);
                cJSON_AddItemToArray(rows, row);
                continue;
            }
            s_json_number(row, node, "node_id");
            const char *role = s_pair(node, "role");
            cJSON_AddStringToObject(row, "role", role ? role : "");
            s_json_number(row, node, "term");
            s_json_number(row, node, "leader");
            s_json_number(row, node, "commit_seq");
            s_json_number(row, node, "last_seq");
            s_json_number(row, node, "durable_seq");
            cJSON *list = cJSON_AddArrayToObject(row, "peers");
            size_t n_peers = s_peers(node, peers, MAX_NODES);
            for (size_t p = 0; p < n_peers; p++) {
                cJSON *peer = cJSON_CreateObject();
                ctl_json_add_u64(peer, "node_id", peers[p].id);
                if (peers[p].has_match)
                    ctl_json_add_u64(peer, "match", peers[p].match);
                else
                    cJSON_AddNullToObject(peer, "match");
                if (peers[p].has_lag)
                    ctl_json_add_u64(peer, "lag", peers[p].lag);
                else
                    cJSON_AddNullToObject(peer, "lag");
                if (peers[p].has_lag_ms)
                    ctl_json_add_u64(peer, "lag_ms", peers[p].lag_ms);
                else
                    cJSON_AddNullToObject(peer, "lag_ms");
                if (peers[p].has_contact)
                    ctl_json_add_u64(peer, "contact_ms", peers[p].contact_ms);
                else
                    cJSON_AddNullToObject(peer, "contact_ms");
                cJSON_AddItemToArray(list, peer);
            }
            cJSON_AddItemToArray(rows, row);
        }
        ctl_json_add_u64(doc, "count", nodes->n);
        ctl_json_add_u64(doc, "unreachable", unreachable);
        return;
    }
    int width = (int)strlen("ENDPOINT");
    for (size_t i = 0; i < nodes->n; i++) {
        int len = (int)strlen(nodes->nodes[i].endpoint);
        width = len > width ? len : width;
    }
    printf("%-*s  %4s  %-12s  %6s  %6s  %12s  %12s  %12s  %s\n", width, "ENDPOINT", "NODE", "ROLE",
           "TERM", "LEADER", "COMMIT_SEQ", "LAST_SEQ", "DURABLE_SEQ", "PEERS");
    for (size_t i = 0; i < nodes->n; i++) {
        const node_t *node = &nodes->nodes[i];
        printf("%-*s", width, node->endpoint);
        if (node->rc) {
            printf("  %4s  %-12s  %6s  %6s  %12s  %12s  %12s  %s\n", "-",
                   node->rc == STRATA_ETIMEDOUT ? "unreachable" : "error", "-", "-", "-", "-", "-",
                   node->error);
            continue;
        }
        s_text_number(node, "node_id", 4);
        const char *role = s_pair(node, "role");
        printf("  %-12s", role && role[0] ? role : "-");
        s_text_number(node, "term", 6);
        s_text_number(node, "leader", 6);
        s_text_number(node, "commit_seq", 12);
        s_text_number(node, "last_seq", 12);
        s_text_number(node, "durable_seq", 12);
        size_t n_peers = s_peers(node, peers, MAX_NODES);
        printf("  ");
        if (n_peers == 0)
            printf("-");
        for (size_t p = 0; p < n_peers; p++) {
            printf("%s%u:", p ? ", " : "", peers[p].id);
            if (peers[p].has_match)
                printf(" match %" PRIu64 ",", peers[p].match);
            if (peers[p].has_lag && peers[p].has_lag_ms)
                printf(" lag %" PRIu64 " (%" PRIu64 " ms),", peers[p].lag, peers[p].lag_ms);
            if (peers[p].has_contact)
                printf(" contact %" PRIu64 " ms ago", peers[p].contact_ms);
            else
                printf(" contact never");
        }
        putchar('\n');
    }
}

/* The nodes the command line names, each asked for its stats. */
static int s_gather(ctl_t *ctl, nodes_t **nodes_p)
{
    nodes_t *nodes = ctl_xmalloc(sizeof *nodes);
    nodes->n = 0;
    int exit_code = s_list(ctl, nodes);
    if (exit_code == CTL_OK)
        exit_code = s_ask_all(ctl, nodes);
    if (exit_code)
        s_nodes_destroy(&nodes);
    *nodes_p = nodes;
    return exit_code;
}

int ctl_cluster_status(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    nodes_t *nodes = NULL;
    int exit_code = s_gather(ctl, &nodes);
    if (exit_code)
        return exit_code;
    size_t unreachable = 0, failed = 0;
    for (size_t i = 0; i < nodes->n; i++) {
        unreachable += nodes->nodes[i].rc == STRATA_ETIMEDOUT;
        failed += nodes->nodes[i].rc && nodes->nodes[i].rc != STRATA_ETIMEDOUT;
    }
    s_print(ctl, nodes, unreachable);
    /* The table is the answer; the exit code and one line on stderr say
     * that part of it is missing. */
    if (unreachable || failed) {
        exit_code = unreachable ? CTL_UNREACHABLE : CTL_FAILED;
        for (size_t i = 0; i < nodes->n; i++)
            if (nodes->nodes[i].rc) {
                fprintf(stderr, "stratactl: %s: %zu of %zu nodes %s; first: %s\n", ctl->verb->name,
                        unreachable ? unreachable : failed, nodes->n,
                        unreachable ? "unreachable" : "answered with an error",
                        nodes->nodes[i].error);
                break;
            }
    }
    s_nodes_destroy(&nodes);
    return exit_code;
}

/* Sends control verb to the master: the node that says it leads (the
 * highest term if several do) first, the other answering nodes next and
 * the silent ones last, through a failover client that follows the "not
 * master" hints from there. */
static int s_to_master(ctl_t *ctl, const char *verb, const char *const *args, size_t n_args)
{
    nodes_t *nodes = NULL;
    int exit_code = s_gather(ctl, &nodes);
    if (exit_code)
        return exit_code;
    const char *order[MAX_NODES];
    size_t n_order = 0, master = SIZE_MAX;
    uint64_t master_term = 0;
    for (size_t i = 0; i < nodes->n; i++) {
        const node_t *node = &nodes->nodes[i];
        const char *role = node->rc ? NULL : s_pair(node, "role");
        uint64_t term = 0;
        s_pair_u64(node, "term", &term);
        if (role && !strcmp(role, "leader") && (master == SIZE_MAX || term > master_term)) {
            master = i;
            master_term = term;
        }
    }
    /* Not one node answered within --timeout: asking them again would
     * double the wait the user gave. */
    size_t silent = 0;
    for (size_t i = 0; i < nodes->n; i++)
        silent += nodes->nodes[i].rc == STRATA_ETIMEDOUT;
    if (silent == nodes->n) {
        exit_code = ctl_fail(ctl, CTL_UNREACHABLE, STRATA_ETIMEDOUT, "%s", nodes->nodes[0].error);
        s_nodes_destroy(&nodes);
        return exit_code;
    }
    if (master != SIZE_MAX)
        order[n_order++] = nodes->nodes[master].endpoint;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nodes->n; i++)
            if (i != master && (nodes->nodes[i].rc == STRATA_ETIMEDOUT) == (pass == 1))
                order[n_order++] = nodes->nodes[i].endpoint;

    strata_client_options_t opts = {.endpoints = order,
                                    .n_endpoints = n_order,
                                    .timeout_ms = ctl->timeout_ms,
                                    .curve_server_key = ctl->server_key,
                                    .curve_cert = ctl->cert};
    strata_error_t err;
    int rc = strata_client_connect(&opts, &ctl->client, &err);
    if (rc) {
        exit_code = ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    } else {
        strata_reply_t reply;
        rc = strata_client_control(ctl->client, verb, args, n_args, &reply, &err);
        if (rc) {
            exit_code = ctl_fail_call(ctl, rc, &err);
        } else {
            const char *to = "";
            for (size_t i = 0; i < reply.n_pairs; i++)
                if (!strcmp(reply.pairs[i].name, "to"))
                    to = reply.pairs[i].value;
            const char *at = strata_client_endpoint(ctl->client);
            if (ctl->json) {
                cJSON *doc = ctl_doc(ctl);
                cJSON_AddStringToObject(doc, "verb", verb);
                ctl_json_add_u64(doc, "to", strtoull(to, NULL, 10));
                cJSON_AddStringToObject(doc, "master", at);
            } else if (!ctl->quiet) {
                printf("%s to node %s started by the master at %s\n", verb, to, at);
            }
        }
        strata_reply_clear(&reply);
    }
    s_nodes_destroy(&nodes);
    return exit_code;
}

int ctl_cluster_transfer(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    char *end = NULL;
    errno = 0;
    unsigned long id = strtoul(argv[0], &end, 10);
    if (!argv[0][0] || argv[0][0] == '-' || errno || *end || id < 1 || id > 255)
        return ctl_fail(ctl, CTL_USAGE, 0, "NODE: '%s' is not a node id 1..255", argv[0]);
    const char *args[] = {argv[0]};
    return s_to_master(ctl, "transfer", args, 1);
}

int ctl_cluster_step_down(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return s_to_master(ctl, "step_down", NULL, 0);
}
