/* The transport relay of proto/TRANSPORT.md: the writer's DEALER, the peer
 * ROUTER and DEALERs, the checks on what crosses them, the control
 * endpoint, /metrics and start-up. Used by strata-election and
 * strata-replicator (relay.h). */
#define _GNU_SOURCE
#include "relay.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "router.h"
#include "snapserve.h"
#include "strata/codec.h"
#include "strata/raft_msg.h"
#include "verbs.h"

/* Every raft socket takes a message of at most this: an encoded message is
 * at most 8 MiB (RAFT.md), the rest is room for the frames around it. */
#define RELAY_MAX_FRAME ((int64_t)STRATA_RAFT_MSG_MAX + (64 << 10))
/* ZeroMQ caps each connection's queues in messages, not bytes: RELAY_HWM
 * messages each way, so at most RELAY_HWM x RELAY_MAX_FRAME (about 520 MiB)
 * per connection when every message is a full append, and a few KiB for
 * votes and heartbeats. Raft resends what a full queue drops. */
#define RELAY_HWM 64
/* The writer counts as gone after this many heartbeats without a word. */
#define WRITER_SILENT_BEATS 10
#define MAX_NODE            STRATA_RAFT_MSG_MAX_NODE
/* The rows of stats and /metrics (row_template): every kind's, then the
 * snapshot server's. */
#define N_ROWS          13
#define N_SNAPSHOT_ROWS 3

typedef struct {
    bool listed; /* in the peers list */
    char endpoint[256];
    zsock_t *dealer; /* NULL for this node */
    _Atomic uint64_t sent;
} peer_t;

struct relay {
    const relay_kind_t *kind;
    svc_config_t *cfg;
    uint32_t id;
    uint64_t heartbeat_ms;
    bool member[MAX_NODE + 1]; /* voters and learners: whom a MSG may come from */
    peer_t peers[MAX_NODE + 1];
    char data_dir[PATH_MAX], writer_file[PATH_MAX + 32], endpoints_file[PATH_MAX + 32];
    char bind[300], control[PATH_MAX + 32], metrics_url[128];
    char writer_raft[PATH_MAX + 64]; /* the endpoint the writer DEALER is connected to */
    zsock_t *router, *control_sock, *writer;
    snapserve_t *snapshots; /* NULL unless the kind serves snapshots */
    zsock_t *roles;         /* XPUB; NULL unless the kind publishes roles */
    char roles_ep[PATH_MAX + 32];
    peer_t clients[MAX_NODE + 1]; /* cluster/client_peers, named in what roles says */
    uint64_t beats, last_published[4];
    bool published;
    char snapshots_dir[PATH_MAX];
    svc_http_t *http;
    zloop_t *loop;
    int64_t last_from_writer_ms, last_lookup_ms;
    svc_episode_t connect_failing; /* every beat tries again: logged once */
    /* Read by the metrics thread. */
    _Atomic uint64_t term, role, leader, commit, has_role, writer_connected;
    _Atomic uint64_t to_peers, from_peers, dropped, refused;
    _Atomic uint64_t snapshot_requests, snapshot_bytes, snapshot_errors;
    _Atomic bool ready, stop_requested;
    bool clean_stop;
    /* Built from the kind: strata_<kind>_...; the snapshot rows only for
     * a kind that serves snapshots. */
    char metric_names[N_ROWS][64];
    svc_metric_t rows[N_ROWS];
    size_t n_rows;
};

/* ---- config ---------------------------------------------------------------------- */

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* A node id 1..255 spelled as a whole decimal number. */
static bool parse_node_id(const char *s, size_t len, uint32_t *id)
{
    trim(&s, &len);
    if (len == 0 || len > 3)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v < 1 || v > MAX_NODE)
        return false;
    *id = v;
    return true;
}

/* "1,2,3" into set; the error names key and the item. */
static int parse_id_list(const svc_config_t *cfg, const char *key, bool *set, strata_error_t *err)
{
    const char *v = svc_config_get(cfg, key);
    while (*v) {
        size_t len = strcspn(v, ",");
        uint32_t id;
        if (!parse_node_id(v, len, &id))
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: item '%.*s' is not a node id (1..255) in '%s'", key,
                                    (int)len, v, svc_config_get(cfg, key));
        set[id] = true;
        v += len + (v[len] == ',');
    }
    return 0;
}

/* tcp://HOST:PORT with PORT 1..65535; the port goes to *port. */
static bool parse_tcp(const char *ep, size_t len, unsigned *port)
{
    if (len < 9 || strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *colon = memrchr(ep + 6, ':', len - 6);
    if (!colon || colon == ep + 6)
        return false;
    size_t digits = len - (size_t)(colon + 1 - ep);
    if (digits == 0 || digits > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9')
            return false;
        v = v * 10 + (unsigned)(colon[1 + i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

/* "1=tcp://host:port,2=..." into peers. */
static int parse_peers(const svc_config_t *cfg, const char *key, peer_t *peers, strata_error_t *err)
{
    const char *all = svc_config_get(cfg, key), *v = all;
    while (*v) {
        size_t len = strcspn(v, ",");
        const char *item = v;
        size_t item_len = len;
        trim(&item, &item_len);
        const char *eq = memchr(item, '=', item_len);
        uint32_t id;
        unsigned port;
        const char *ep = eq ? eq + 1 : NULL;
        size_t ep_len = eq ? item_len - (size_t)(ep - item) : 0;
        if (ep)
            trim(&ep, &ep_len);
        if (!eq || !parse_node_id(item, (size_t)(eq - item), &id) ||
            !parse_tcp(ep, ep_len, &port) || ep_len >= sizeof peers[0].endpoint)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: item '%.*s' is not ID=tcp://HOST:PORT (ID 1..255)", key,
                                    (int)item_len, item);
        if (peers[id].listed)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: item '%.*s': node %" PRIu32 " is listed twice", key,
                                    (int)item_len, item, id);
        peers[id].listed = true;
        memcpy(peers[id].endpoint, ep, ep_len);
        peers[id].endpoint[ep_len] = '\0';
        v += len + (v[len] == ',');
    }
    return 0;
}

static int check_listed(const relay_t *r, const bool *set, const char *set_key, strata_error_t *err)
{
    for (uint32_t id = 1; id <= MAX_NODE; id++)
        if (set[id] && !r->peers[id].listed)
            return strata_error_set(
                err, STRATA_EINVAL, "%s: no entry for node %" PRIu32 " of %s ('%s')",
                r->kind->peers_key, id, set_key, svc_config_get(r->cfg, r->kind->peers_key));
    return 0;
}

static int load(relay_t *r, strata_error_t *err)
{
    char key[64];
    uint64_t id;
    int rc;
    if ((rc = svc_config_u64(r->cfg, "cluster/id", &id, err)) ||
        (rc = svc_config_u64(r->cfg, "cluster/heartbeat_ms", &r->heartbeat_ms, err)))
        return rc;
    if (id == 0)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/id: 0, a node without consensus; %s needs this node's id "
                                "(1..255)",
                                r->kind->prog);
    if (id > MAX_NODE)
        return strata_error_set(err, STRATA_EINVAL, "cluster/id: %" PRIu64 ", not 1..255", id);
    r->id = (uint32_t)id;
    if (r->heartbeat_ms < 1 || r->heartbeat_ms > 60000)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/heartbeat_ms: %" PRIu64 ", not 1..60000", r->heartbeat_ms);
    bool voters[MAX_NODE + 1] = {0}, learners[MAX_NODE + 1] = {0};
    if ((rc = parse_id_list(r->cfg, "cluster/voters", voters, err)) ||
        (rc = parse_id_list(r->cfg, "cluster/learners", learners, err)) ||
        (rc = parse_peers(r->cfg, r->kind->peers_key, r->peers, err)))
        return rc;
    if (!r->peers[r->id].listed)
        return strata_error_set(
            err, STRATA_EINVAL, "%s: no entry for this node (cluster/id %" PRIu32 ") in '%s'",
            r->kind->peers_key, r->id, svc_config_get(r->cfg, r->kind->peers_key));
    if ((rc = check_listed(r, voters, "cluster/voters", err)) ||
        (rc = check_listed(r, learners, "cluster/learners", err)))
        return rc;
    for (uint32_t n = 1; n <= MAX_NODE; n++)
        r->member[n] = voters[n] || learners[n];
    snprintf(key, sizeof key, "%s/bind", r->kind->kind);
    const char *bind = svc_config_get(r->cfg, key);
    if (*bind) {
        snprintf(r->bind, sizeof r->bind, "%s", bind);
    } else {
        unsigned port = 0;
        parse_tcp(r->peers[r->id].endpoint, strlen(r->peers[r->id].endpoint), &port);
        snprintf(r->bind, sizeof r->bind, "tcp://*:%u", port);
    }
    if (r->kind->publishes_roles) {
        if ((rc = parse_peers(r->cfg, "cluster/client_peers", r->clients, err)))
            return rc;
        snprintf(key, sizeof key, "%s/roles", r->kind->kind);
        const char *roles = svc_config_get(r->cfg, key);
        if (roles && *roles)
            snprintf(r->roles_ep, sizeof r->roles_ep, "%s", roles);
    }
    snprintf(key, sizeof key, "%s/metrics", r->kind->kind);
    return svc_http_check(key, svc_config_get(r->cfg, key), err);
}

int relay_check_config(const relay_kind_t *kind, svc_config_t *cfg, strata_error_t *err)
{
    relay_t *probe = calloc(1, sizeof *probe);
    if (!probe)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    probe->kind = kind;
    probe->cfg = cfg;
    int rc = load(probe, err);
    free(probe);
    return rc;
}

static zsock_t *raft_socket(int type)
{
    zsock_t *s = zsock_new(type);
    if (!s)
        return NULL;
    zsock_set_sndhwm(s, RELAY_HWM);
    zsock_set_rcvhwm(s, RELAY_HWM);
    zsock_set_maxmsgsize(s, RELAY_MAX_FRAME);
    zsock_set_linger(s, 0);
    return s;
}

/* ---- the writer ------------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t width)
{
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void send_hello(relay_t *r)
{
    uint8_t id[4];
    put_le(id, r->id, 4);
    void *s = zsock_resolve(r->writer);
    /* A full queue means a writer that is not reading: the next beat tries again. */
    if (zmq_send(s, "HELLO", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 5) {
        zmq_send(s, r->kind->kind, strlen(r->kind->kind), ZMQ_SNDMORE);
        zmq_send(s, id, 4, 0);
    }
}

static int on_writer(zloop_t *loop, zsock_t *sock, void *arg);

/* The raft endpoint the writer published, "" when there is none yet. */
static void lookup_writer(const relay_t *r, char *out, size_t cap)
{
    zconfig_t *root = zconfig_load(r->writer_file);
    snprintf(out, cap, "%s", root ? zconfig_get(root, "writer/raft", "") : "");
    zconfig_destroy(&root);
}

/* Connects the writer DEALER to ep, replacing the one there was. */
static void connect_writer(relay_t *r, const char *ep)
{
    if (r->writer) {
        zloop_reader_end(r->loop, r->writer);
        zsock_destroy(&r->writer);
    }
    /* Not ZMQ_IMMEDIATE, unlike the peers: the HELLO said at connect must
     * wait in the queue until the connection is up. */
    zsock_t *s = raft_socket(ZMQ_DEALER);
    if (!s) {
        if (svc_episode_failed(&r->connect_failing, STRATA_ENOMEM))
            log_error("event=writer_socket_failed");
        return;
    }
    if (zsock_connect(s, "%s", ep) < 0) {
        if (svc_episode_failed(&r->connect_failing, errno))
            log_warning("event=writer_connect_failed raft=%s error=\"%s\"", ep,
                        zmq_strerror(errno));
        zsock_destroy(&s);
        return;
    }
    svc_episode_cleared(&r->connect_failing); /* the writer_connect line below says so */
    r->writer = s;
    snprintf(r->writer_raft, sizeof r->writer_raft, "%s", ep);
    zloop_reader(r->loop, r->writer, on_writer, r);
    log_info("event=writer_connect raft=%s", ep);
    send_hello(r);
}

static void writer_msg(relay_t *r, zframe_t *body)
{
    strata_raft_msg_t m;
    strata_raft_entry_t entries[STRATA_RAFT_MAX_ENTRIES];
    const uint8_t *frames;
    size_t frames_len;
    strata_error_t err;
    if (strata_raft_msg_decode(zframe_data(body), zframe_size(body), &m, entries,
                               STRATA_RAFT_MAX_ENTRIES, &frames, &frames_len, &err) != 0) {
        atomic_fetch_add(&r->refused, 1);
        log_warning("event=writer_msg_refused error=\"%s\"", err.msg);
        return;
    }
    if (m.to == r->id || !r->peers[m.to].listed) {
        atomic_fetch_add(&r->refused, 1);
        log_warning("event=writer_msg_refused to=%" PRIu32 " error=\"not in %s\"", m.to,
                    r->kind->peers_key);
        return;
    }
    peer_t *p = &r->peers[m.to];
    void *s = zsock_resolve(p->dealer);
    /* ZMQ_IMMEDIATE: no connection means no pipe, so this fails at once. */
    if (zmq_send(s, "MSG", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) != 3) {
        atomic_fetch_add(&r->dropped, 1);
        return;
    }
    zmq_send(s, zframe_data(body), zframe_size(body), 0);
    atomic_fetch_add(&r->to_peers, 1);
    atomic_fetch_add(&p->sent, 1);
}

static void writer_role(relay_t *r, zmsg_t *msg)
{
    zframe_t *f[4];
    for (int i = 0; i < 4; i++)
        f[i] = zmsg_next(msg);
    uint64_t term = get_le(zframe_data(f[0]), 8), role = get_le(zframe_data(f[1]), 1);
    uint64_t leader = get_le(zframe_data(f[2]), 4), commit = get_le(zframe_data(f[3]), 8);
    if (!atomic_load(&r->has_role) || term != atomic_load(&r->term) ||
        role != atomic_load(&r->role) || leader != atomic_load(&r->leader))
        log_info("event=writer_role term=%" PRIu64 " role=%" PRIu64 " leader=%" PRIu64, term, role,
                 leader);
    atomic_store(&r->term, term);
    atomic_store(&r->role, role);
    atomic_store(&r->leader, leader);
    atomic_store(&r->commit, commit);
    atomic_store(&r->has_role, 1);
}

/* ---- the node's role, published --------------------------------------------------- */

#define ROLE_NONE          255u /* no ROLE from the writer yet */
#define ROLES_REPEAT_BEATS 10u  /* a repeat this often tells subscribers it is alive */

/* ROLE, term (8), role (1), leader (4), writer heard (1), the master's
 * client endpoint: at every change, at every new subscription and every
 * ROLES_REPEAT_BEATS heartbeats. */
static void publish_role(relay_t *r)
{
    if (!r->roles)
        return;
    uint64_t term = atomic_load(&r->term), leader = atomic_load(&r->leader);
    uint64_t role = atomic_load(&r->has_role) ? atomic_load(&r->role) : ROLE_NONE;
    uint64_t heard = atomic_load(&r->writer_connected);
    uint8_t t[8], ro = (uint8_t)role, l[4], h = (uint8_t)heard;
    put_le(t, term, 8);
    put_le(l, leader, 4);
    const char *master = leader && leader <= MAX_NODE && r->clients[leader].listed
                             ? r->clients[leader].endpoint
                             : "";
    void *s = zsock_resolve(r->roles);
    /* A PUB never blocks: a subscriber with a full queue misses this one
     * and gets the next. */
    zmq_send(s, "ROLE", 4, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, t, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, &ro, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, l, 4, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, &h, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, master, strlen(master), ZMQ_DONTWAIT);
    r->last_published[0] = term;
    r->last_published[1] = role;
    r->last_published[2] = leader;
    r->last_published[3] = heard;
    r->published = true;
}

static void publish_if_changed(relay_t *r)
{
    uint64_t now[4] = {atomic_load(&r->term),
                       atomic_load(&r->has_role) ? atomic_load(&r->role) : ROLE_NONE,
                       atomic_load(&r->leader), atomic_load(&r->writer_connected)};
    if (!r->published || memcmp(now, r->last_published, sizeof now))
        publish_role(r);
}

/* A subscription (or its end) arrived: the new subscriber learns the role
 * at once instead of at the next change. */
static int on_roles(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    relay_t *r = arg;
    zframe_t *f = zframe_recv(sock);
    if (f && zframe_size(f) > 0 && zframe_data(f)[0] == 1)
        publish_role(r);
    zframe_destroy(&f);
    return 0;
}

static bool is_role(zmsg_t *msg)
{
    static const size_t widths[] = {8, 1, 4, 8};
    if (zmsg_size(msg) != 5)
        return false;
    zframe_t *f = zmsg_first(msg);
    for (int i = 0; i < 4; i++)
        if (zframe_size(f = zmsg_next(msg)) != widths[i])
            return false;
    zmsg_first(msg);
    return true;
}

static int on_writer(zloop_t *loop, zsock_t *sock, void *arg)
{
    relay_t *r = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return zsys_interrupted ? -1 : 0;
    zframe_t *verb = zmsg_first(msg);
    bool good = true;
    if (zframe_streq(verb, "MSG") && zmsg_size(msg) == 2)
        writer_msg(r, zmsg_next(msg));
    else if (zframe_streq(verb, "ROLE") && is_role(msg))
        writer_role(r, msg);
    else
        good = false;
    if (good) {
        r->last_from_writer_ms = zclock_mono();
        if (!atomic_exchange(&r->writer_connected, 1))
            log_info("event=writer_connected raft=%s", r->writer_raft);
        publish_if_changed(r);
    } else {
        atomic_fetch_add(&r->refused, 1);
        log_warning("event=writer_frame_refused frames=%zu", zmsg_size(msg));
    }
    zmsg_destroy(&msg);
    return 0;
}

/* Each beat: HELLO to the writer, and finding it when it is not there or
 * silent, since a restarted writer may publish another raft endpoint. */
static int on_beat(zloop_t *loop, int timer_id, void *arg)
{
    relay_t *r = arg;
    int64_t now = zclock_mono(), gone = (int64_t)(WRITER_SILENT_BEATS * r->heartbeat_ms);
    if (atomic_load(&r->writer_connected) && now - r->last_from_writer_ms >= gone) {
        atomic_store(&r->writer_connected, 0);
        log_warning("event=writer_silent raft=%s ms=%" PRId64, r->writer_raft,
                    now - r->last_from_writer_ms);
    }
    if (++r->beats % ROLES_REPEAT_BEATS == 0)
        publish_role(r);
    else
        publish_if_changed(r);
    if (!r->writer || (!atomic_load(&r->writer_connected) && now - r->last_lookup_ms >= gone)) {
        char ep[sizeof r->writer_raft];
        lookup_writer(r, ep, sizeof ep);
        r->last_lookup_ms = now;
        if (*ep && (!r->writer || strcmp(ep, r->writer_raft) != 0)) {
            connect_writer(r, ep);
            return 0; /* connect_writer said HELLO */
        }
    }
    if (r->writer)
        send_hello(r);
    return 0;
}

/* ---- peers ----------------------------------------------------------------------- */

/* A peer's MSG, checked and handed to the writer; anything else is
 * refused. msg is the routing id and the frames after it. */
static void peer_msg(relay_t *r, zmsg_t *msg)
{
    zmsg_first(msg); /* the routing id */
    zframe_t *verb = zmsg_next(msg), *body = zmsg_next(msg);
    strata_raft_msg_t m;
    strata_raft_entry_t entries[STRATA_RAFT_MAX_ENTRIES];
    const uint8_t *frames;
    size_t frames_len;
    strata_error_t err;
    strata_error_clear(&err);
    const char *why = NULL;
    if (zmsg_size(msg) != 3 || !zframe_streq(verb, "MSG"))
        why = "not MSG and one message";
    else if (strata_raft_msg_decode(zframe_data(body), zframe_size(body), &m, entries,
                                    STRATA_RAFT_MAX_ENTRIES, &frames, &frames_len, &err) != 0)
        why = err.msg;
    else if (m.to != r->id)
        why = "to is not this node";
    else if (!r->member[m.from])
        why = "from is not in cluster/voters or cluster/learners";
    if (why) {
        atomic_fetch_add(&r->refused, 1);
        log_warning("event=peer_msg_refused frames=%zu error=\"%s\"", zmsg_size(msg), why);
    } else if (!r->writer) {
        atomic_fetch_add(&r->dropped, 1);
    } else {
        void *s = zsock_resolve(r->writer);
        if (zmq_send(s, "MSG", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) != 3) {
            atomic_fetch_add(&r->dropped, 1);
        } else {
            zmq_send(s, zframe_data(body), zframe_size(body), 0);
            atomic_fetch_add(&r->from_peers, 1);
        }
    }
}

/* A SNAPLIST or SNAPREAD: the answer goes back to the requester without
 * blocking (the ROUTER is ZMQ_ROUTER_MANDATORY, so a requester gone or
 * with a full queue fails the first frame), else it is dropped and
 * counted; the requester asks again when its wait ends. */
static void peer_snapshot_request(relay_t *r, zmsg_t *msg)
{
    zframe_t *routing = zmsg_pop(msg);
    snapserve_outcome_t outcome;
    zmsg_t *answer = snapserve_answer(r->snapshots, msg, &outcome);
    atomic_fetch_add(&r->snapshot_requests, 1);
    if (outcome.error)
        atomic_fetch_add(&r->snapshot_errors, 1);
    if (zframe_send(&routing, r->router, ZFRAME_MORE | ZFRAME_DONTWAIT) != 0) {
        atomic_fetch_add(&r->dropped, 1);
        log_debug("event=snapshot_answer_dropped error=\"%s\"", zmq_strerror(errno));
        zframe_destroy(&routing);
        zmsg_destroy(&answer);
        return;
    }
    /* Past the routing id the rest of the message is queued whole. */
    zframe_t *frame;
    while ((frame = zmsg_pop(answer)) != NULL)
        if (zframe_send(&frame, r->router, (zmsg_size(answer) ? ZFRAME_MORE : 0) | ZFRAME_DONTWAIT))
            zframe_destroy(&frame);
    zmsg_destroy(&answer);
    atomic_fetch_add(&r->snapshot_bytes, outcome.data_bytes);
}

static int on_peer(zloop_t *loop, zsock_t *sock, void *arg)
{
    relay_t *r = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return zsys_interrupted ? -1 : 0;
    zmsg_first(msg); /* the routing id */
    zframe_t *verb = zmsg_next(msg);
    if (r->snapshots && verb && snapserve_handles(verb))
        peer_snapshot_request(r, msg);
    else
        peer_msg(r, msg);
    zmsg_destroy(&msg);
    return 0;
}

/* ---- stats, metrics, control ----------------------------------------------------- */

/* Everything stats and /metrics show, read at one moment. */
typedef struct {
    uint64_t node_id, term, role, leader, commit, writer_connected;
    uint64_t to_peers, from_peers, dropped, refused;
    uint64_t snapshot_requests, snapshot_bytes, snapshot_errors;
} figures_t;

static void snapshot(relay_t *r, figures_t *f)
{
    *f = (figures_t){.node_id = r->id,
                     .term = atomic_load(&r->term),
                     .role = atomic_load(&r->role),
                     .leader = atomic_load(&r->leader),
                     .commit = atomic_load(&r->commit),
                     .writer_connected = atomic_load(&r->writer_connected),
                     .to_peers = atomic_load(&r->to_peers),
                     .from_peers = atomic_load(&r->from_peers),
                     .dropped = atomic_load(&r->dropped),
                     .refused = atomic_load(&r->refused),
                     .snapshot_requests = atomic_load(&r->snapshot_requests),
                     .snapshot_bytes = atomic_load(&r->snapshot_bytes),
                     .snapshot_errors = atomic_load(&r->snapshot_errors)};
}

#define U(field) offsetof(figures_t, field), false, 0, 0
static const svc_metric_t row_template[] = {
    {"node_id", "node_id", "this node's cluster/id", SVC_GAUGE, U(node_id)},
    {"term", "term", "the writer's term, from its latest ROLE", SVC_GAUGE, U(term)},
    {"role", "role",
     "the writer's role from its latest ROLE: 0 follower, 1 pre-candidate, 2 candidate, 3 "
     "leader, 4 learner",
     SVC_GAUGE, U(role)},
    {"leader", "leader", "the leader the writer knows, 0 for none", SVC_GAUGE, U(leader)},
    {"commit_seq", "commit_seq", "the writer's commit seq, from its latest ROLE", SVC_GAUGE,
     U(commit)},
    {"writer_connected", "writer_connected", "1 while the writer has spoken within 10 heartbeats",
     SVC_GAUGE, U(writer_connected)},
    {"to_peers_total", "to_peers_total", "messages from the writer handed to a peer", SVC_COUNTER,
     U(to_peers)},
    {"from_peers_total", "from_peers_total", "messages from peers handed to the writer",
     SVC_COUNTER, U(from_peers)},
    {"dropped_total", "dropped_total", "sound messages dropped: no connection or a full queue",
     SVC_COUNTER, U(dropped)},
    {"refused_total", "refused_total",
     "messages refused: undecodable, wrong to or from, unknown verb", SVC_COUNTER, U(refused)},
    /* The last N_SNAPSHOT_ROWS: only a kind that serves snapshots shows them. */
    {"snapshot_requests_total", "snapshot_requests_total", "SNAPLIST and SNAPREAD requests",
     SVC_COUNTER, U(snapshot_requests)},
    {"snapshot_bytes_served_total", "snapshot_bytes_served_total",
     "snapshot file bytes sent in SNAPDATA answers", SVC_COUNTER, U(snapshot_bytes)},
    {"snapshot_errors_total", "snapshot_errors_total", "snapshot requests answered SNAPERR",
     SVC_COUNTER, U(snapshot_errors)},
};
_Static_assert(sizeof row_template / sizeof row_template[0] == N_ROWS, "N_ROWS is the table's");

static const char *role_name(relay_t *r)
{
    static const char *const names[] = {"follower", "pre_candidate", "candidate", "leader",
                                        "learner"};
    uint64_t role = atomic_load(&r->role);
    if (!atomic_load(&r->has_role))
        return "unknown";
    return role < 5 ? names[role] : "invalid";
}

static void write_metrics(void *arg, FILE *out)
{
    relay_t *r = arg;
    figures_t f;
    snapshot(r, &f);
    svc_metrics_prom(r->rows, r->n_rows, &f, out);
    const char *k = r->kind->kind;
    fprintf(out,
            "# HELP strata_%s_peer_sent_total messages from the writer handed to each peer\n"
            "# TYPE strata_%s_peer_sent_total counter\n",
            k, k);
    for (uint32_t id = 1; id <= MAX_NODE; id++)
        if (r->peers[id].dealer)
            fprintf(out, "strata_%s_peer_sent_total{peer=\"%" PRIu32 "\"} %" PRIu64 "\n", k, id,
                    atomic_load(&r->peers[id].sent));
}

/* Started, and the writer it carries messages for answers (node.h's rule). */
static bool is_ready(void *arg)
{
    relay_t *r = arg;
    return atomic_load(&r->ready) && svc_writer_answers(r->writer_file);
}

typedef struct {
    strata_pair_t pairs[N_ROWS + MAX_NODE + 4];
    char names[N_ROWS + MAX_NODE + 4][40];
    char values[N_ROWS + MAX_NODE + 4][64];
    size_t n;
} pairs_t;

static void add_pair(void *sink, const char *name, const char *value)
{
    pairs_t *p = sink;
    snprintf(p->names[p->n], sizeof p->names[0], "%s", name);
    snprintf(p->values[p->n], sizeof p->values[0], "%s", value);
    p->pairs[p->n] = (strata_pair_t){p->names[p->n], p->values[p->n]};
    p->n++;
}

typedef struct {
    relay_t *r;
    zframe_t *identity;
    bool delimited;
    const strata_request_t *req;
} call_t;

static void reply_pairs(call_t *c, const pairs_t *p)
{
    strata_reply_t rep = {.request_id = c->req->request_id,
                          .op = STRATA_OP_CONTROL,
                          .pairs = p->pairs,
                          .n_pairs = p->n};
    svc_router_send(c->r->control_sock, c->identity, c->delimited, &rep);
}

static void verb_stats(void *arg)
{
    call_t *c = arg;
    relay_t *r = c->r;
    pairs_t p;
    p.n = 0;
    figures_t f;
    snapshot(r, &f);
    svc_metrics_pairs(r->rows, r->n_rows, &f, add_pair, &p);
    add_pair(&p, "role_name", role_name(r));
    p.pairs[p.n++] = (strata_pair_t){"writer_raft", r->writer_raft}; /* too long to copy */
    for (uint32_t id = 1; id <= MAX_NODE; id++)
        if (r->peers[id].dealer) {
            char name[40], value[32];
            snprintf(name, sizeof name, "peer_%" PRIu32 "_sent_total", id);
            snprintf(value, sizeof value, "%" PRIu64, atomic_load(&r->peers[id].sent));
            add_pair(&p, name, value);
        }
    reply_pairs(c, &p);
}

static void verb_ping(void *arg)
{
    call_t *c = arg;
    pairs_t p;
    p.n = 0;
    add_pair(&p, "pong", "1");
    add_pair(&p, "version", RELAY_VERSION);
    add_pair(&p, "kind", c->r->kind->kind);
    reply_pairs(c, &p);
}

static const svc_verb_t verbs[] = {
    {"stats", 0, 0, false, verb_stats,
     "the writer's last ROLE, whether it is connected, and the message counters"},
    {"ping", 0, 0, false, verb_ping, "liveness, version and kind"},
};

static void handle_control(void *arg, zframe_t *identity, bool delimited,
                           const strata_request_t *req)
{
    call_t c = {.r = arg, .identity = identity, .delimited = delimited, .req = req};
    char why[512];
    /* Only the node can reach this endpoint (ipc). */
    if (!svc_verbs_dispatch(verbs, sizeof verbs / sizeof verbs[0], req, true, &c, why, sizeof why))
        svc_router_send_error(c.r->control_sock, identity, delimited, req->request_id,
                              STRATA_EINVAL, why);
}

static int on_control(zloop_t *loop, zsock_t *sock, void *arg)
{
    relay_t *r = arg;
    char wrong_op[128];
    snprintf(wrong_op, sizeof wrong_op, "request: %s serves control (stats, ping)", r->kind->prog);
    return svc_router_serve_control(sock, handle_control, arg, wrong_op);
}

/* ---- start-up and stop ----------------------------------------------------------- */

/* The peer endpoint (TCP) first, the ipc sockets in the data dir last. */
static int open_sockets(relay_t *r, strata_error_t *err)
{
    char key[64];
    snprintf(key, sizeof key, "%s/bind", r->kind->kind);
    if (!(r->router = raft_socket(ZMQ_ROUTER)) || zsock_bind(r->router, "%s", r->bind) < 0)
        return strata_error_set(err, STRATA_EIO, "%s: cannot bind %s: %s", key, r->bind,
                                zmq_strerror(errno));
    /* Snapshot answers are the only thing sent on it: a send to a requester
     * that is gone or not reading fails instead of vanishing uncounted. */
    if (r->snapshots)
        zsock_set_router_mandatory(r->router, 1);
    for (uint32_t id = 1; id <= MAX_NODE; id++) {
        peer_t *p = &r->peers[id];
        if (!p->listed || id == r->id)
            continue;
        if (!(p->dealer = raft_socket(ZMQ_DEALER)))
            return strata_error_set(err, STRATA_ENOMEM, "out of sockets");
        /* No queue for a peer that is not there: its messages drop at once. */
        zsock_set_immediate(p->dealer, 1);
        if (zsock_connect(p->dealer, "%s", p->endpoint) < 0)
            return strata_error_set(err, STRATA_EINVAL, "%s: node %" PRIu32 ": cannot connect %s",
                                    r->kind->peers_key, id, p->endpoint);
    }
    if (r->kind->publishes_roles) {
        char key_roles[64];
        snprintf(key_roles, sizeof key_roles, "%s/roles", r->kind->kind);
        if (!r->roles_ep[0])
            snprintf(r->roles_ep, sizeof r->roles_ep, "ipc://%.4000s/%s.roles", r->data_dir,
                     r->kind->kind);
        /* Each message is under 300 bytes, and ZeroMQ's default cap of
         * 1000 per subscriber bounds what one that does not read holds. */
        if (!(r->roles = zsock_new(ZMQ_XPUB)))
            return strata_error_set(err, STRATA_ENOMEM, "out of sockets");
        zsock_set_xpub_verbose(r->roles, 1);
        zsock_set_linger(r->roles, 0);
        if (zsock_bind(r->roles, "%s", r->roles_ep) < 0)
            return strata_error_set(err, STRATA_EIO, "%s: cannot bind %s: %s", key_roles,
                                    r->roles_ep, zmq_strerror(errno));
        char *last = zsock_last_endpoint(r->roles);
        if (last)
            snprintf(r->roles_ep, sizeof r->roles_ep, "%s", last);
        zstr_free(&last);
    }
    /* Its queues keep ZeroMQ's default cap of 1000 messages, each at most
     * the client protocol's message size. */
    return svc_control_bind("", r->data_dir, r->kind->kind, &r->control_sock, r->control,
                            sizeof r->control, err);
}

int relay_new(const relay_kind_t *kind, svc_config_t *cfg, relay_t **relay_p, strata_error_t *err)
{
    *relay_p = NULL;
    relay_t *r = calloc(1, sizeof *r);
    if (!r) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    r->kind = kind;
    r->cfg = cfg;
    r->n_rows = kind->serves_snapshots ? N_ROWS : N_ROWS - N_SNAPSHOT_ROWS;
    for (size_t i = 0; i < r->n_rows; i++) {
        r->rows[i] = row_template[i];
        snprintf(r->metric_names[i], sizeof r->metric_names[i], "%s_%s", kind->kind,
                 row_template[i].metric);
        r->rows[i].metric = r->metric_names[i];
    }
    int rc = load(r, err);
    if (rc)
        goto fail;
    const char *dir = svc_config_get(r->cfg, "node/data_dir");
    if (!realpath(dir, r->data_dir)) {
        rc = strata_error_set(err, STRATA_EIO, "node/data_dir %s: %s (start the writer first)", dir,
                              strerror(errno));
        goto fail;
    }
    snprintf(r->writer_file, sizeof r->writer_file, "%.4000s/writer.endpoints", r->data_dir);
    if (kind->serves_snapshots) {
        /* As strata-snapshotter reads it, which writes there. */
        const char *snapshots = svc_config_get(r->cfg, "snapshotter/dir");
        if (*snapshots)
            snprintf(r->snapshots_dir, sizeof r->snapshots_dir, "%s", snapshots);
        else
            snprintf(r->snapshots_dir, sizeof r->snapshots_dir, "%.4000s/snapshots", r->data_dir);
        if (!(r->snapshots = snapserve_new(r->snapshots_dir))) {
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
            goto fail;
        }
    }
    snprintf(r->endpoints_file, sizeof r->endpoints_file, "%.4000s/%s.endpoints", r->data_dir,
             kind->kind);
    if (!(r->loop = zloop_new())) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto fail;
    }
    /* The metrics port and the peer endpoint (open_sockets binds it
     * first) before the ipc sockets in the data dir: a port clash fails the
     * start with nothing created on disk. */
    char key[64];
    snprintf(key, sizeof key, "%s/metrics", kind->kind);
    if ((rc = svc_http_listen(key, svc_config_get(r->cfg, key), &r->http, r->metrics_url,
                              sizeof r->metrics_url, err)) ||
        (rc = open_sockets(r, err)) ||
        (rc = svc_http_serve(r->http, write_metrics, is_ready, r, err)))
        goto fail;
    char *bound = zsock_last_endpoint(r->router);
    strata_pair_t pairs[] = {{"control", r->control},
                             {"metrics", r->metrics_url},
                             {"bind", bound ? bound : r->bind},
                             {"roles", r->roles_ep}};
    rc = svc_write_endpoints(r->endpoints_file, kind->kind, pairs, r->roles ? 4 : 3, err);
    zstr_free(&bound);
    if (rc)
        goto fail;
    *relay_p = r;
    return 0;
fail:
    relay_destroy(&r);
    return rc;
}

int relay_run(relay_t *r)
{
    zloop_reader(r->loop, r->router, on_peer, r);
    zloop_reader(r->loop, r->control_sock, on_control, r);
    if (r->roles)
        zloop_reader(r->loop, r->roles, on_roles, r);
    zloop_timer(r->loop, r->heartbeat_ms, 0, on_beat, r);
    zloop_timer(r->loop, 100, 0, svc_interrupt_tick, &r->stop_requested);
    on_beat(r->loop, 0, r); /* the writer may be there already */
    atomic_store(&r->ready, true);
    log_info("event=ready node=%s kind=%s id=%" PRIu32 " bind=%s control=%s metrics=%s "
             "heartbeat_ms=%" PRIu64 " pid=%d",
             svc_config_get(r->cfg, "node/name"), r->kind->kind, r->id, r->bind, r->control,
             r->metrics_url, r->heartbeat_ms, (int)getpid());
    if (r->snapshots)
        log_info("event=serving_snapshots dir=%s", r->snapshots_dir);
    zloop_start(r->loop);
    log_info("event=stopping");
    r->clean_stop = true;
    return 0;
}

void relay_stop(relay_t *r)
{
    atomic_store(&r->stop_requested, true);
}

void relay_destroy(relay_t **relay_p)
{
    relay_t *r = *relay_p;
    if (!r)
        return;
    /* Left behind after a failed start, so that an operator sees what ran. */
    if (r->clean_stop)
        unlink(r->endpoints_file);
    svc_http_stop(&r->http);
    zloop_destroy(&r->loop);
    for (uint32_t id = 1; id <= MAX_NODE; id++)
        zsock_destroy(&r->peers[id].dealer);
    zsock_destroy(&r->writer);
    zsock_destroy(&r->router);
    zsock_destroy(&r->control_sock);
    zsock_destroy(&r->roles);
    snapserve_destroy(&r->snapshots);
    svc_config_destroy(&r->cfg);
    if (r->clean_stop)
        log_info("event=stopped");
    free(r);
    *relay_p = NULL;
}

/* ---- main ------------------------------------------------------------------------ */

static const relay_kind_t *usage_kind;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-c FILE] [--print-config] [-h] [--version]\n"
            "Carries %s\nbetween this node's writer and the same process on the other nodes\n"
            "(proto/TRANSPORT.md).\n%s",
            usage_kind->prog, usage_kind->summary,
            usage_kind->serves_snapshots
                ? "Serves this node's newest snapshot to the other nodes.\n"
                : "");
}

/* relay_main's kind, for svc_config_start's check (one kind per process). */
static const relay_kind_t *s_main_kind;

static int check_main_kind(svc_config_t *cfg, strata_error_t *err)
{
    return relay_check_config(s_main_kind, cfg, err);
}

int relay_main(const relay_kind_t *kind, int argc, char **argv)
{
    usage_kind = kind;
    const char *config_file;
    bool print_config;
    int rc =
        svc_parse_args(argc, argv, kind->prog, RELAY_VERSION, usage, &config_file, &print_config);
    if (rc >= 0)
        return rc;
    const char *const uses[] = {
        "node", "cluster", kind->kind, "log", kind->serves_snapshots ? "snapshotter/dir" : NULL,
        NULL};
    s_main_kind = kind;
    svc_config_t *cfg = NULL;
    if ((rc = svc_config_start(kind->prog, config_file, print_config, check_main_kind, uses,
                               &cfg)) >= 0)
        return rc;
    strata_error_t err;
    strata_error_clear(&err);
    zsys_init();
    relay_t *r = NULL;
    if ((rc = svc_log_init(kind->prog, svc_config_get(cfg, "log/level"),
                           svc_config_get(cfg, "log/format"), &err)) == 0)
        rc = relay_new(kind, cfg, &r, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        return 1;
    }
    relay_run(r);
    svc_notify_stopping();
    relay_destroy(&r);
    return 0;
}
