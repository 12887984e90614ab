/* The consensus host. With cluster/id set the writer runs the Raft core
 * (lib/raft, rules in lib/raft/raft.md) over its own WAL: the core decides,
 * this file carries out what it asks (term and vote to the metadata file,
 * appends, cuts, commits) and moves its messages through the node's
 * election and replicator processes (proto/TRANSPORT.md). Everything here
 * runs on the writer's loop thread, so the log cannot change between what
 * the core is told and what it decides. */
#define _GNU_SOURCE
#include "writer.h"

#include "strata/raft.h"
#include "strata/raft_meta.h"
#include "strata/raft_msg.h"
#include "strata/wal.h"

enum { TR_ELECTION, TR_REPLICATOR, TR_KINDS };
static const char *const tr_name[TR_KINDS] = {"election", "replicator"};

/* The key of a leader's no-op: a node's own key (PROTOCOL.md), so no
 * client can write it and subscribers never see it. */
#define NOOP_KEY     "\0strata/raft/term"
#define NOOP_KEY_LEN (sizeof NOOP_KEY - 1)

/* Ticks come every heartbeat_ms / 5 (10 ms by default): 8192 samples of a
 * growing log reach back 80 s, which is as much lag in ms as stats shows
 * (past it, the oldest sample's age). */
#define LAG_SAMPLES 8192u

typedef struct {
    zframe_t *id; /* routing id of the latest HELLO; NULL: none yet */
    uint64_t heard_ns;
} transport_t;

struct consensus {
    strata_raft_t *core;
    strata_raft_meta_t *meta;
    cluster_options_t o;
    zsock_t *router;
    char endpoint[PATH_MAX + 32];
    transport_t tr[TR_KINDS];
    char wal_dir[PATH_MAX + 8];
    /* Entries for appends a peer is sent, read back from the WAL: a cursor
     * per peer, since two followers at different places sharing one would
     * seek at every send, and a seek outside what the cursor read in its
     * segment rereads that segment from its start. */
    struct {
        strata_wal_cursor_t *cursor;
        uint64_t next;      /* the seq the cursor returns next; 0: seek first */
        uint64_t core_next; /* where the core thinks the last append ended, plus one */
        uint64_t last_term; /* the term of the last entry that append carried */
        /* Every append and every truncation retries these alike: one line
         * each while they last. */
        svc_episode_t unreadable, beyond_retention;
    } readers[STRATA_RAFT_MSG_MAX_NODE + 1];
    uint8_t *frames;
    size_t frames_cap;
    /* The append being handled, whose frames an APPEND action stores. */
    strata_raft_entry_t entries[STRATA_RAFT_MAX_ENTRIES];
    const strata_raft_msg_t *in;
    const uint8_t *in_frames;
    size_t in_frames_len;
    strata_raft_role_t role;
    uint64_t term;
    uint32_t leader;
    uint64_t contact_ns[STRATA_RAFT_MSG_MAX_NODE + 1]; /* last message from each node */
    uint64_t noop_seq; /* this term's no-op, as leader; UINT64_MAX until written */
    /* Stats pair names hold pointers: the names live here. */
    char match_name[2 * STRATA_RAFT_MAX_NODES][32], contact_name[2 * STRATA_RAFT_MAX_NODES][32],
        lag_name[2 * STRATA_RAFT_MAX_NODES][32], lag_ms_name[2 * STRATA_RAFT_MAX_NODES][32];
    /* For /metrics, whose thread may not touch the core: per node, copied
     * at each tick. */
    pthread_mutex_t peers_mu;
    struct {
        uint32_t id;
        uint64_t match, lag, lag_ms; /* on the master; else 0 */
        uint64_t contact_ns;
    } peers[2 * STRATA_RAFT_MAX_NODES];
    /* When the master's log reached each length, sampled at ticks where it
     * grew: a follower's lag in time is how long ago the log first held the
     * entry after its match. A ring, oldest overwritten. */
    struct {
        uint64_t last_seq, at_ns;
    } grew[LAG_SAMPLES];
    uint32_t grew_head, grew_len;
    uint32_t n_peers;
    bool peers_master;
    /* Copies for the stats and /metrics threads. */
    _Atomic uint64_t term_a, commit_a, received, sent, dropped, refused;
    _Atomic int role_a;
    _Atomic uint32_t leader_a;
};

/* ---- configuration ------------------------------------------------------ */

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* "1,2,3": ids 1..255, no repeats. */
static int parse_ids(const char *key, const char *text, uint32_t *ids, uint32_t *n,
                     strata_error_t *err)
{
    *n = 0;
    for (const char *p = skip_space(text); *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        end = (char *)skip_space(end);
        if (end == p || v < 1 || v > STRATA_RAFT_MSG_MAX_NODE || (*end && *end != ','))
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: '%s': node ids 1..255 separated by commas", key, text);
        for (uint32_t i = 0; i < *n; i++)
            if (ids[i] == v)
                return strata_error_set(err, STRATA_EINVAL, "%s: node %lu appears twice", key, v);
        if (*n == STRATA_RAFT_MAX_NODES)
            return strata_error_set(err, STRATA_EINVAL, "%s: more than %u nodes", key,
                                    STRATA_RAFT_MAX_NODES);
        ids[(*n)++] = (uint32_t)v;
        p = skip_space(*end ? end + 1 : end);
    }
    return 0;
}

/* "1=tcp://a:7400,2=tcp://b:7400": *found[id] set for each, endpoints
 * copied into eps[id] when eps is not NULL. */
static int parse_peers(const char *key, const char *text, bool *found, char (*eps)[256],
                       strata_error_t *err)
{
    for (const char *p = skip_space(text); *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        const char *comma = strchr(end, ',');
        size_t len = comma ? (size_t)(comma - end) : strlen(end);
        while (len && (end[len - 1] == ' ' || end[len - 1] == '\t'))
            len--;
        if (end == p || v < 1 || v > STRATA_RAFT_MSG_MAX_NODE || *end != '=' || len < 2 ||
            len > 255)
            return strata_error_set(err, STRATA_EINVAL,
                                    "%s: '%s': needs id=endpoint items separated by commas", key,
                                    text);
        if (found[v])
            return strata_error_set(err, STRATA_EINVAL, "%s: node %lu appears twice", key, v);
        found[v] = true;
        if (eps)
            snprintf(eps[v], sizeof eps[v], "%.*s", (int)(len - 1), end + 1);
        p = comma ? skip_space(comma + 1) : end + strlen(end);
    }
    return 0;
}

/* A config without the cluster section (an embedded test's) is a single
 * node's. */
static int opt_u64(svc_config_t *cfg, const char *key, uint64_t dflt, uint64_t *out,
                   strata_error_t *err)
{
    *out = dflt;
    return svc_config_get(cfg, key) ? svc_config_u64(cfg, key, out, err) : 0;
}

static const char *opt_str(svc_config_t *cfg, const char *key)
{
    const char *v = svc_config_get(cfg, key);
    return v ? v : "";
}

int cluster_read_options(svc_config_t *cfg, cluster_options_t *o, strata_error_t *err)
{
    memset(o, 0, sizeof *o);
    uint64_t id;
    int rc;
    if ((rc = opt_u64(cfg, "cluster/id", 0, &id, err)))
        return rc;
    if (id > STRATA_RAFT_MSG_MAX_NODE)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/id: %" PRIu64 ", needs 0 (a single node) or 1..255", id);
    o->id = (uint32_t)id;
    if (!o->id)
        return 0;
    if ((rc = parse_ids("cluster/voters", opt_str(cfg, "cluster/voters"), o->voters, &o->n_voters,
                        err)) ||
        (rc = parse_ids("cluster/learners", opt_str(cfg, "cluster/learners"), o->learners,
                        &o->n_learners, err)))
        return rc;
    if (!o->n_voters)
        return strata_error_set(err, STRATA_EINVAL, "cluster/voters: empty, with cluster/id %u",
                                o->id);
    bool member = false;
    for (uint32_t i = 0; i < o->n_learners; i++) {
        for (uint32_t j = 0; j < o->n_voters; j++)
            if (o->learners[i] == o->voters[j])
                return strata_error_set(err, STRATA_EINVAL,
                                        "cluster/learners: node %u is a voter too", o->learners[i]);
        member |= o->learners[i] == o->id;
    }
    for (uint32_t j = 0; j < o->n_voters; j++)
        member |= o->voters[j] == o->id;
    if (!member)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/id: %u is neither in cluster/voters nor cluster/learners",
                                o->id);
    if (o->n_voters + o->n_learners > STRATA_RAFT_MAX_NODES)
        return strata_error_set(err, STRATA_EINVAL, "cluster: more than %u voters and learners",
                                STRATA_RAFT_MAX_NODES);
    bool found[STRATA_RAFT_MSG_MAX_NODE + 1] = {false};
    if ((rc = parse_peers("cluster/client_peers", opt_str(cfg, "cluster/client_peers"), found,
                          o->client, err)))
        return rc;
    uint32_t all[2 * STRATA_RAFT_MAX_NODES];
    uint32_t n_all = 0;
    for (uint32_t i = 0; i < o->n_voters; i++)
        all[n_all++] = o->voters[i];
    for (uint32_t i = 0; i < o->n_learners; i++)
        all[n_all++] = o->learners[i];
    for (uint32_t i = 0; i < n_all; i++)
        if (!found[all[i]])
            return strata_error_set(err, STRATA_EINVAL,
                                    "cluster/client_peers: no entry for node %u", all[i]);
    if ((rc = opt_u64(cfg, "cluster/heartbeat_ms", 50, &o->heartbeat_ms, err)) ||
        (rc = opt_u64(cfg, "cluster/election_min_ms", 500, &o->election_min_ms, err)) ||
        (rc = opt_u64(cfg, "cluster/election_max_ms", 1000, &o->election_max_ms, err)) ||
        (rc = opt_u64(cfg, "cluster/lease_ms", 400, &o->lease_ms, err)))
        return rc;
    if (o->heartbeat_ms < 1 || o->election_min_ms <= 2 * o->heartbeat_ms ||
        o->election_max_ms <= o->election_min_ms || o->election_max_ms > 600000 ||
        o->lease_ms >= o->election_min_ms)
        return strata_error_set(
            err, STRATA_EINVAL,
            "cluster timings: heartbeat_ms %" PRIu64 ", election_min_ms %" PRIu64
            ", election_max_ms %" PRIu64 ", lease_ms %" PRIu64
            ": need heartbeat_ms >= 1, election_min_ms > 2 x heartbeat_ms, election_max_ms "
            "above election_min_ms and at most 600000, lease_ms below election_min_ms",
            o->heartbeat_ms, o->election_min_ms, o->election_max_ms, o->lease_ms);
    if (svc_config_get(cfg, "cluster/bootstrap") &&
        (rc = svc_config_bool(cfg, "cluster/bootstrap", &o->bootstrap, err)))
        return rc;
    const char *mode = svc_config_get(cfg, "cluster/replication");
    if (!mode || !strcmp(mode, "quorum"))
        o->replication = STRATA_REPLICATION_QUORUM;
    else if (!strcmp(mode, "async"))
        o->replication = STRATA_REPLICATION_ASYNC;
    else
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/replication: '%s', needs quorum or async", mode);
    if ((rc = opt_u64(cfg, "cluster/max_lag_ms", 1000, &o->max_lag_ms, err)))
        return rc;
    if ((rc = opt_u64(cfg, "cluster/follower_retain_mb", 4096, &o->follower_retain_mb, err)))
        return rc;
    if (o->follower_retain_mb > 1048576)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/follower_retain_mb: %" PRIu64 " not in [0, 1048576]",
                                o->follower_retain_mb);
    bool rep_found[STRATA_RAFT_MSG_MAX_NODE + 1] = {false};
    if ((rc = parse_peers("cluster/replicator_peers", opt_str(cfg, "cluster/replicator_peers"),
                          rep_found, o->replicator, err)))
        return rc;
    if (o->max_lag_ms < 1 || o->max_lag_ms > 3600000)
        return strata_error_set(err, STRATA_EINVAL,
                                "cluster/max_lag_ms: %" PRIu64 " not in [1, 3600000]",
                                o->max_lag_ms);
    return 0;
}

/* ---- carrying out the core's actions -------------------------------------- */

static void run(writer_t *w, size_t n, const strata_raft_act_t *acts);

/* R11: what the core was told persisted must have persisted, so a failure
 * here ends the process; the restart recovers from what is on disk. */
static void fatal(const char *what, const strata_error_t *err)
{
    log_error("event=consensus_fatal what=%s error=\"%s\"", what, err ? err->msg : "");
    _exit(70);
}

static void send_role(writer_t *w, zframe_t *to)
{
    consensus_t *cx = w->cx;
    uint8_t term[8], role = (uint8_t)cx->role, leader[4], commit[8];
    uint64_t c = strata_db_commit_seq(w->db);
    for (int i = 0; i < 8; i++) {
        term[i] = (uint8_t)(cx->term >> (8 * i));
        commit[i] = (uint8_t)(c >> (8 * i));
    }
    for (int i = 0; i < 4; i++)
        leader[i] = (uint8_t)(cx->leader >> (8 * i));
    for (int k = 0; k < TR_KINDS; k++) {
        zframe_t *id = to ? to : cx->tr[k].id;
        if (!id)
            continue;
        zmsg_t *m = zmsg_new();
        zmsg_append(m, &(zframe_t *){zframe_dup(id)});
        zmsg_addstr(m, "ROLE");
        zmsg_addmem(m, term, 8);
        zmsg_addmem(m, &role, 1);
        zmsg_addmem(m, leader, 4);
        zmsg_addmem(m, commit, 8);
        zmsg_send(&m, cx->router);
        zmsg_destroy(&m);
        if (to)
            break;
    }
}

static void close_cursor(consensus_t *cx)
{
    for (size_t i = 0; i <= STRATA_RAFT_MSG_MAX_NODE; i++) {
        strata_wal_cursor_close(&cx->readers[i].cursor);
        cx->readers[i].next = 0;
        cx->readers[i].core_next = 0;
    }
}

/* The entries of an append to a peer: from *prev_seq + 1, at least n of
 * them where the log has them, ending where an atomic group ends (a
 * follower's WAL takes whole groups only), within the message caps.
 *
 * Finishing a group often carries an append past the n entries the core
 * counted, so the core's next append to that peer starts a few entries
 * before where the cursor stands. Rather than seek back (from the cursor's
 * nearest mark) and send those entries twice, such an append continues
 * from the cursor: *prev_seq and
 * *prev_term move up to the last entry sent, which the follower checks as
 * usual. Any other start (a resend after a refusal) is honoured. */
static int attach(consensus_t *cx, uint32_t peer, uint64_t *prev_seq, uint64_t *prev_term,
                  uint32_t n, size_t *len_p, uint32_t *count_p, strata_error_t *err)
{
    int rc;
    strata_wal_cursor_t **cursor = &cx->readers[peer].cursor;
    uint64_t *next = &cx->readers[peer].next;
    if (!*cursor && (rc = strata_wal_cursor_open(cx->wal_dir, 0, cursor, err)))
        return rc;
    if (*next && *prev_seq + 1 == cx->readers[peer].core_next && *next > *prev_seq + 1) {
        *prev_seq = *next - 1;
        *prev_term = cx->readers[peer].last_term;
    }
    cx->readers[peer].core_next = *prev_seq + n + 1;
    if (*next != *prev_seq + 1) {
        if ((rc = strata_wal_cursor_seek(*cursor, *prev_seq + 1, err))) {
            strata_wal_cursor_close(cursor);
            *next = 0;
            return rc;
        }
        *next = *prev_seq + 1;
    }
    size_t len = 0, boundary_len = 0;
    uint32_t count = 0, boundary_count = 0;
    uint64_t boundary_term = 0;
    while (count < STRATA_RAFT_MAX_ENTRIES) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        rc = strata_wal_cursor_next(*cursor, 0, &e, &raw, &raw_len, err);
        if (rc == STRATA_ETIMEDOUT)
            break;
        if (rc) {
            strata_wal_cursor_close(cursor);
            *next = 0;
            return rc;
        }
        if (len + raw_len > STRATA_RAFT_MSG_MAX - 64 * 1024) {
            *next = 0; /* read past what goes: seek next time */
            break;
        }
        if (len + raw_len > cx->frames_cap) {
            size_t cap = cx->frames_cap ? cx->frames_cap : 64 * 1024;
            while (cap < len + raw_len)
                cap *= 2;
            uint8_t *grown = realloc(cx->frames, cap);
            if (!grown) {
                *next = 0;
                return strata_error_set(err, STRATA_ENOMEM, "out of memory reading the WAL");
            }
            cx->frames = grown;
            cx->frames_cap = cap;
        }
        memcpy(cx->frames + len, raw, raw_len);
        len += raw_len;
        count++;
        *next = e.seq + 1;
        if (!(e.flags & STRATA_ENTRY_GROUP_CONT)) {
            boundary_len = len;
            boundary_count = count;
            boundary_term = e.term;
            if (count >= n)
                break;
        }
    }
    if (boundary_count != count)
        *next = 0;
    if (boundary_count)
        cx->readers[peer].last_term = boundary_term;
    *len_p = boundary_len;
    *count_p = boundary_count;
    return 0;
}

static void send_msg(writer_t *w, const strata_raft_msg_t *m)
{
    consensus_t *cx = w->cx;
    int kind = m->type == STRATA_RAFT_MSG_VOTE || m->type == STRATA_RAFT_MSG_VOTE_REPLY ||
                       m->type == STRATA_RAFT_MSG_TIMEOUT_NOW
                   ? TR_ELECTION
                   : TR_REPLICATOR;
    transport_t *t = &cx->tr[kind];
    uint64_t now = now_ns();
    if (!t->id || now - t->heard_ns > 10 * cx->o.heartbeat_ms * 1000000ull) {
        atomic_fetch_add(&cx->dropped, 1);
        return;
    }
    strata_raft_msg_t out = *m;
    size_t frames_len = 0;
    strata_error_t err;
    if (m->type == STRATA_RAFT_MSG_APPEND && m->n_entries) {
        uint32_t count = 0;
        int rc = attach(cx, m->to, &out.prev_seq, &out.prev_term, m->n_entries, &frames_len, &count,
                        &err);
        if (rc != 0) {
            if (svc_episode_failed(&cx->readers[m->to].unreadable, rc))
                log_warning("event=append_unreadable to=%u from_seq=%" PRIu64 " error=\"%s\"",
                            m->to, m->prev_seq + 1, err.msg);
            atomic_fetch_add(&cx->dropped, 1);
            return;
        }
        uint64_t failures = svc_episode_cleared(&cx->readers[m->to].unreadable);
        if (failures)
            log_info("event=append_readable to=%u failures=%" PRIu64, m->to, failures);
        out.n_entries = count;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (strata_raft_msg_encode(&out, cx->frames, frames_len, &buf, &len, &err) != 0) {
        log_error("event=raft_encode_failed type=%s to=%u error=\"%s\"",
                  strata_raft_msg_name(m->type), m->to, err.msg);
        atomic_fetch_add(&cx->dropped, 1);
        return;
    }
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(t->id)});
    zmsg_addstr(msg, "MSG");
    zmsg_addmem(msg, buf, len);
    free(buf);
    if (zmsg_send(&msg, cx->router) == 0)
        atomic_fetch_add(&cx->sent, 1);
    else
        atomic_fetch_add(&cx->dropped, 1);
    zmsg_destroy(&msg);
}

/* A follower stores the entries the core took from the append in hand,
 * byte for byte as the leader's WAL has them. */
static void follower_append(writer_t *w, const strata_raft_act_t *a)
{
    consensus_t *cx = w->cx;
    size_t k = (size_t)(a->entries - cx->entries);
    uint64_t off = a->entries[0].data;
    uint64_t prev_term = k ? cx->entries[k - 1].term : cx->in->prev_term;
    size_t appended = 0;
    strata_wal_hint_t hint;
    strata_error_t err;
    if (strata_db_append_entries(w->db, cx->in_frames + off, cx->in_frames_len - off,
                                 a->entries[0].seq - 1, prev_term, STRATA_ASYNC, &appended, &hint,
                                 &err) != 0)
        fatal("append", &err);
    want_sync(w, a->entries[a->n_entries - 1].seq);
}

/* R4: the leader's first entry in its term. */
static void leader_noop(writer_t *w, const strata_raft_entry_t *e)
{
    strata_db_set_term(w->db, e->term);
    strata_batch_t *b = strata_batch_new();
    char value[24];
    int vlen = snprintf(value, sizeof value, "%" PRIu64, e->term);
    uint64_t seq = 0;
    strata_error_t err;
    strata_write_options_t wo = {.durability = STRATA_ASYNC};
    if (!b || strata_batch_put_topic(b, STRATA_SYS_TOPIC, NOOP_KEY, NOOP_KEY_LEN, value,
                                     (size_t)vlen) != 0)
        fatal("noop", &(strata_error_t){.code = STRATA_ENOMEM, .msg = "out of memory"});
    if (strata_db_write(w->db, &wo, b, &seq, &err) != 0)
        fatal("noop", &err);
    strata_batch_destroy(&b);
    if (seq != e->seq) {
        strata_error_set(&err, STRATA_ECORRUPT, "the no-op got seq %" PRIu64 ", the core %" PRIu64,
                         seq, e->seq);
        fatal("noop", &err);
    }
    w->cx->noop_seq = seq;
    want_sync(w, seq);
}

/* Replies waiting for their commit. */
static void release_committed(writer_t *w, uint64_t commit)
{
    uint64_t now = now_ns();
    pending_t *p;
    bool was = w->batching;
    w->batching = true;
    while ((p = pending_front(&w->committing)) && p->seq <= commit) {
        send_write_reply(w, p);
        pthread_mutex_lock(&w->stats_mu);
        strata_histogram_record(w->stats.write_sync_ns, now - p->start_ns);
        pthread_mutex_unlock(&w->stats_mu);
        pending_pop(&w->committing);
    }
    if (!was)
        replies_flush(w);
    pthread_mutex_lock(&w->stats_mu);
    w->stats.pending = w->pending.len + w->committing.len;
    pthread_mutex_unlock(&w->stats_mu);
}

void consensus_release(writer_t *w)
{
    release_committed(w, strata_db_commit_seq(w->db));
}

/* A leader that lost its office cannot tell whether what it had not yet
 * committed will be: the next leader may keep it or cut it. Nor is an
 * async write not yet durable here safe to acknowledge any more. */
static void fail_uncommitted(writer_t *w)
{
    consensus_t *cx = w->cx;
    pending_ring_t *rings[] = {&w->committing, &w->pending};
    for (int i = 0; i < 2; i++) {
        pending_t *p;
        while ((p = pending_front(rings[i]))) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "not master: this node stopped being master in term %" PRIu64
                     " before seq %" PRIu64 " %s; the write may or may not commit (outcome "
                     "unknown)",
                     cx->term, p->seq, i ? "was durable here" : "committed");
            send_error(w, p->sock, &p->envelope, p->request_id, STRATA_ENOTMASTER, msg);
            pending_pop(rings[i]);
        }
    }
}

static void set_role(writer_t *w, const strata_raft_act_t *a)
{
    consensus_t *cx = w->cx;
    bool was_leader = cx->role == STRATA_RAFT_LEADER;
    cx->role = a->role;
    cx->term = a->term;
    cx->leader = a->leader;
    atomic_store(&cx->role_a, (int)a->role);
    atomic_store(&cx->term_a, a->term);
    atomic_store(&cx->leader_a, a->leader);
    log_info("event=role role=%s term=%" PRIu64 " leader=%u", strata_raft_role_name(a->role),
             a->term, a->leader);
    if (was_leader && a->role != STRATA_RAFT_LEADER)
        fail_uncommitted(w);
    if (!was_leader && a->role == STRATA_RAFT_LEADER)
        cx->noop_seq = UINT64_MAX;
    /* What the map holds of writes not committed may be cut now; the log
     * has the rest. */
    if (was_leader != (a->role == STRATA_RAFT_LEADER))
        sessions_forget(w);
    send_role(w, NULL);
}

static void run(writer_t *w, size_t n, const strata_raft_act_t *acts)
{
    consensus_t *cx = w->cx;
    strata_error_t err;
    for (size_t i = 0; i < n; i++) {
        const strata_raft_act_t *a = &acts[i];
        switch (a->type) {
        case STRATA_RAFT_ACT_PERSIST_META:
            if (strata_raft_meta_store(cx->meta, a->term, a->vote, &err) != 0)
                fatal("raft-meta", &err);
            break;
        case STRATA_RAFT_ACT_TRUNCATE: {
            strata_wal_cut_t cut;
            close_cursor(cx);
            if (strata_db_truncate_after(w->db, a->seq, &cut, &err) != 0)
                fatal("truncate", &err);
            /* What the sync thread covered past the cut is gone: entries
             * appended there again need a sync of their own, or the
             * follower never reports them durable. */
            pthread_mutex_lock(&w->sync_mu);
            if (w->sync_want > a->seq)
                w->sync_want = a->seq;
            if (w->sync_done > a->seq)
                w->sync_done = a->seq;
            w->sync_epoch++;
            pthread_mutex_unlock(&w->sync_mu);
            if (cut.entries)
                log_warning("event=log_truncated after_seq=%" PRIu64 " first_seq=%" PRIu64
                            " last_seq=%" PRIu64 " entries=%" PRIu64 " rollback=%s",
                            a->seq, cut.first_seq, cut.last_seq, cut.entries, cut.rollback_path);
            break;
        }
        case STRATA_RAFT_ACT_APPEND:
            if (!a->n_entries)
                break;
            if (cx->in && a->entries >= cx->entries &&
                a->entries < cx->entries + STRATA_RAFT_MAX_ENTRIES)
                follower_append(w, a);
            else
                leader_noop(w, &a->entries[0]);
            break;
        case STRATA_RAFT_ACT_SEND:
            send_msg(w, &a->msg);
            break;
        case STRATA_RAFT_ACT_COMMIT:
            if (strata_db_commit(w->db, a->seq, &err) != 0)
                fatal("commit", &err);
            atomic_store(&cx->commit_a, strata_db_commit_seq(w->db));
            release_committed(w, strata_db_commit_seq(w->db));
            break;
        case STRATA_RAFT_ACT_ROLE:
            set_role(w, a);
            break;
        case STRATA_RAFT_ACT_FETCH_SNAPSHOT:
            /* Offers repeat with every heartbeat; one copy runs at a time
             * (bootstrap_start says so). */
            if (cx->leader)
                bootstrap_start(w, cx->leader, cx->o.replicator[cx->leader], a->snap_seq);
            break;
        }
    }
}

/* ---- events --------------------------------------------------------------- */

void consensus_durable(writer_t *w)
{
    consensus_t *cx = w->cx;
    /* Not strata_db_stats: it walks every level, and this runs per sync. */
    uint64_t durable = strata_db_durable_seq(w->db), term = 0;
    if (!durable || strata_db_term_at(w->db, durable, &term) != 0)
        return;
    const strata_raft_act_t *acts;
    size_t n = strata_raft_persisted(cx->core, term, durable, now_ns(), &acts);
    run(w, n, acts);
}

void consensus_proposed(writer_t *w, uint64_t last_seq)
{
    const strata_raft_act_t *acts;
    bool ok = false;
    size_t n = strata_raft_propose(w->cx->core, last_seq, now_ns(), &ok, &acts);
    run(w, n, acts);
    if (!ok) {
        /* The log now holds entries the core does not know of: only a
         * restart makes the two agree again (it reads the log). */
        strata_error_t err;
        strata_error_set(&err, STRATA_EINVAL, "the core refused entries up to seq %" PRIu64,
                         last_seq);
        fatal("propose", &err);
    }
}

/* R4: a new master serves nothing before its no-op commits, since only
 * then has it applied everything earlier masters acknowledged. */
static bool noop_pending(writer_t *w, char *msg, size_t cap)
{
    consensus_t *cx = w->cx;
    if (cx->role != STRATA_RAFT_LEADER || strata_db_commit_seq(w->db) >= cx->noop_seq)
        return false;
    snprintf(msg, cap,
             "not master yet: elected in term %" PRIu64
             ", this node has not committed its first entry; retry in a moment",
             cx->term);
    return true;
}

bool consensus_refuse_read(writer_t *w, char *msg, size_t cap)
{
    consensus_t *cx = w->cx;
    if (!cx || cx->role != STRATA_RAFT_LEADER)
        return false; /* a slave answers from what it applied, saying which */
    if (noop_pending(w, msg, cap))
        return true;
    /* R7: a master answers only while a majority's answers hold its lease:
     * once that lapses another node may be master and have committed more.
     * Alone in its cluster it needs nobody's answer. */
    if (cx->o.n_voters == 1 || now_ns() < strata_raft_lease_until(cx->core))
        return false;
    snprintf(msg, cap,
             "not master: no read lease (no majority answered within cluster/lease_ms) in term "
             "%" PRIu64 "; retry in a moment",
             cx->term);
    return true;
}

bool consensus_refuse_write(writer_t *w, char *msg, size_t cap)
{
    consensus_t *cx = w->cx;
    if (!cx)
        return false;
    if (noop_pending(w, msg, cap))
        return true;
    if (strata_raft_accepts_proposals(cx->core))
        return false;
    if (cx->role == STRATA_RAFT_LEADER)
        snprintf(msg, cap,
                 "not master: this node is handing the office over (term %" PRIu64
                 "); retry in a moment",
                 cx->term);
    else if (cx->leader)
        snprintf(msg, cap, "not master: the master is node %u at %s (term %" PRIu64 ")", cx->leader,
                 cx->o.client[cx->leader], cx->term);
    else
        snprintf(msg, cap, "not master: no master is known in term %" PRIu64, cx->term);
    return true;
}

static strata_replication_t mode_of(const consensus_t *cx, const strata_request_t *req)
{
    return req->replication == STRATA_REPLICATION_DEFAULT ? cx->o.replication : req->replication;
}

bool consensus_at_commit(writer_t *w, const strata_request_t *req)
{
    return w->cx && mode_of(w->cx, req) == STRATA_REPLICATION_QUORUM;
}

static uint64_t lag_ms(const consensus_t *cx, uint64_t match, uint64_t last, uint64_t now);

bool consensus_lagging(writer_t *w, const strata_request_t *req, char *msg, size_t cap)
{
    consensus_t *cx = w->cx;
    if (!cx || mode_of(cx, req) != STRATA_REPLICATION_ASYNC)
        return false;
    /* Redis's min-replicas-max-lag, measured by what a failover would lose:
     * the new master is the nearest follower, so its lag bounds the loss.
     * Silence alone is not enough: a follower that answers every heartbeat
     * while its disk falls seconds behind would make a failover lose
     * seconds of writes. A node alone in its cluster has nobody to lag. */
    uint64_t now = now_ns(), last = strata_raft_last_seq(cx->core);
    uint64_t best = UINT64_MAX, best_silent = 0, best_records = 0;
    bool peers = false;
    for (uint32_t i = 0; i < cx->o.n_voters; i++) {
        uint32_t v = cx->o.voters[i];
        if (v == cx->o.id)
            continue;
        peers = true;
        if (!cx->contact_ns[v])
            continue;
        uint64_t match = strata_raft_match(cx->core, v);
        uint64_t silent = now > cx->contact_ns[v] ? (now - cx->contact_ns[v]) / 1000000 : 0;
        uint64_t behind = lag_ms(cx, match, last, now);
        uint64_t lag = silent > behind ? silent : behind;
        if (lag < best) {
            best = lag;
            best_silent = silent;
            best_records = last > match ? last - match : 0;
        }
    }
    if (!peers || best <= cx->o.max_lag_ms)
        return false;
    if (best == UINT64_MAX)
        snprintf(msg, cap,
                 "async write refused: no follower has answered yet (cluster/max_lag_ms)");
    else if (best_silent == best)
        snprintf(msg, cap,
                 "async write refused: no follower has answered for %" PRIu64
                 " ms, over cluster/max_lag_ms %" PRIu64,
                 best, cx->o.max_lag_ms);
    else
        snprintf(msg, cap,
                 "async write refused: the nearest follower is %" PRIu64 " ms (%" PRIu64
                 " records) behind, over cluster/max_lag_ms %" PRIu64,
                 best, best_records, cx->o.max_lag_ms);
    return true;
}

/* The copy /metrics reads. */
static void sample_growth(consensus_t *cx, uint64_t last, uint64_t now)
{
    if (cx->role != STRATA_RAFT_LEADER) {
        cx->grew_len = 0;
        return;
    }
    uint32_t newest = (cx->grew_head + LAG_SAMPLES - 1) % LAG_SAMPLES;
    if (cx->grew_len && cx->grew[newest].last_seq >= last)
        return;
    cx->grew[cx->grew_head].last_seq = last;
    cx->grew[cx->grew_head].at_ns = now;
    cx->grew_head = (cx->grew_head + 1) % LAG_SAMPLES;
    if (cx->grew_len < LAG_SAMPLES)
        cx->grew_len++;
}

/* Since the master's log first held the entry after match (0: it holds
 * none); the oldest sample bounds it. */
static uint64_t lag_ms(const consensus_t *cx, uint64_t match, uint64_t last, uint64_t now)
{
    if (match >= last || !cx->grew_len)
        return 0;
    /* The log grew past match since the newest sample, which may be from
     * long ago when the log stood still: less than a tick behind. */
    uint32_t newest = (cx->grew_head + LAG_SAMPLES - 1) % LAG_SAMPLES;
    if (cx->grew[newest].last_seq <= match)
        return 0;
    uint32_t oldest = (cx->grew_head + LAG_SAMPLES - cx->grew_len) % LAG_SAMPLES;
    /* The earliest sample whose log already held match + 1: the samples
     * grow, since a master's log only grows, so a binary search. */
    uint32_t lo = 0, hi = cx->grew_len - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cx->grew[(oldest + mid) % LAG_SAMPLES].last_seq > match)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint64_t since = cx->grew[(oldest + lo) % LAG_SAMPLES].at_ns;
    return now > since ? (now - since) / 1000000 : 0;
}

static void copy_peers(consensus_t *cx)
{
    uint64_t last = strata_raft_last_seq(cx->core), now = now_ns();
    sample_growth(cx, last, now);
    pthread_mutex_lock(&cx->peers_mu);
    cx->n_peers = 0;
    cx->peers_master = cx->role == STRATA_RAFT_LEADER;
    for (uint32_t i = 0; i < cx->o.n_voters + cx->o.n_learners; i++) {
        uint32_t id = i < cx->o.n_voters ? cx->o.voters[i] : cx->o.learners[i - cx->o.n_voters];
        if (id == cx->o.id)
            continue;
        uint64_t match = cx->peers_master ? strata_raft_match(cx->core, id) : 0;
        cx->peers[cx->n_peers].id = id;
        cx->peers[cx->n_peers].match = match;
        cx->peers[cx->n_peers].lag = cx->peers_master && last > match ? last - match : 0;
        cx->peers[cx->n_peers].lag_ms = cx->peers_master ? lag_ms(cx, match, last, now) : 0;
        cx->peers[cx->n_peers].contact_ns = cx->contact_ns[id];
        cx->n_peers++;
    }
    pthread_mutex_unlock(&cx->peers_mu);
}

static int on_tick_raft(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    writer_t *w = arg;
    const strata_raft_act_t *acts;
    size_t n = strata_raft_tick(w->cx->core, now_ns(), &acts);
    run(w, n, acts);
    copy_peers(w->cx);
    if (bootstrap_copied(w)) {
        /* The engine is swapped before it opens: a restart in place. */
        log_info("event=restarting reason=\"a copied snapshot to install\"");
        w->restart = w->terminating = true;
        return -1;
    }
    return 0;
}

void consensus_write_metrics(writer_t *w, FILE *out)
{
    consensus_t *cx = w->cx;
    if (!cx)
        return;
    uint64_t now = now_ns();
    pthread_mutex_lock(&cx->peers_mu);
    if (cx->peers_master) {
        fprintf(out, "# HELP strata_raft_peer_match_seq The seq up to which a follower's log "
                     "matches the master's, durably.\n# TYPE strata_raft_peer_match_seq gauge\n");
        for (uint32_t i = 0; i < cx->n_peers; i++)
            fprintf(out, "strata_raft_peer_match_seq{peer=\"%u\"} %" PRIu64 "\n", cx->peers[i].id,
                    cx->peers[i].match);
        fprintf(out, "# HELP strata_raft_peer_lag_records Entries the master has that a "
                     "follower has not confirmed.\n# TYPE strata_raft_peer_lag_records gauge\n");
        for (uint32_t i = 0; i < cx->n_peers; i++)
            fprintf(out, "strata_raft_peer_lag_records{peer=\"%u\"} %" PRIu64 "\n", cx->peers[i].id,
                    cx->peers[i].lag);
        fprintf(out, "# HELP strata_raft_peer_lag_seconds Since the master's log first held the "
                     "entry after what a follower confirmed (0: it has them all).\n# TYPE "
                     "strata_raft_peer_lag_seconds gauge\n");
        for (uint32_t i = 0; i < cx->n_peers; i++)
            fprintf(out, "strata_raft_peer_lag_seconds{peer=\"%u\"} %.3f\n", cx->peers[i].id,
                    (double)cx->peers[i].lag_ms / 1e3);
    }
    fprintf(out, "# HELP strata_raft_peer_contact_seconds Since the last message from a node "
                 "(-1: none yet).\n# TYPE strata_raft_peer_contact_seconds gauge\n");
    for (uint32_t i = 0; i < cx->n_peers; i++) {
        if (cx->peers[i].contact_ns)
            fprintf(out, "strata_raft_peer_contact_seconds{peer=\"%u\"} %.3f\n", cx->peers[i].id,
                    (double)(now - cx->peers[i].contact_ns) / 1e9);
        else
            fprintf(out, "strata_raft_peer_contact_seconds{peer=\"%u\"} -1\n", cx->peers[i].id);
    }
    pthread_mutex_unlock(&cx->peers_mu);
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void handle_hello(writer_t *w, zframe_t **id_p, zmsg_t *msg)
{
    consensus_t *cx = w->cx;
    char *kind = zmsg_popstr(msg);
    zframe_t *idf = zmsg_pop(msg);
    int k = -1;
    for (int i = 0; kind && i < TR_KINDS; i++)
        if (!strcmp(kind, tr_name[i]))
            k = i;
    if (k < 0 || !idf || zframe_size(idf) != 4 || get_le(zframe_data(idf), 4) != cx->o.id) {
        atomic_fetch_add(&cx->refused, 1);
    } else {
        transport_t *t = &cx->tr[k];
        if (!t->id || !zframe_eq(t->id, *id_p))
            log_info("event=transport_attached kind=%s", tr_name[k]);
        zframe_destroy(&t->id);
        t->id = *id_p;
        *id_p = NULL;
        t->heard_ns = now_ns();
        send_role(w, t->id);
    }
    zstr_free(&kind);
    zframe_destroy(&idf);
}

static void handle_msg(writer_t *w, zframe_t *id, zmsg_t *msg)
{
    consensus_t *cx = w->cx;
    for (int k = 0; k < TR_KINDS; k++)
        if (cx->tr[k].id && zframe_eq(cx->tr[k].id, id))
            cx->tr[k].heard_ns = now_ns();
    zframe_t *body = zmsg_pop(msg);
    strata_raft_msg_t m;
    const uint8_t *frames = NULL;
    size_t frames_len = 0;
    strata_error_t err;
    bool known = false;
    if (body && strata_raft_msg_decode(zframe_data(body), zframe_size(body), &m, cx->entries,
                                       STRATA_RAFT_MAX_ENTRIES, &frames, &frames_len, &err) == 0) {
        for (uint32_t i = 0; i < cx->o.n_voters; i++)
            known |= cx->o.voters[i] == m.from;
        for (uint32_t i = 0; i < cx->o.n_learners; i++)
            known |= cx->o.learners[i] == m.from;
    }
    if (!known || m.to != cx->o.id || m.from == cx->o.id) {
        atomic_fetch_add(&cx->refused, 1);
        zframe_destroy(&body);
        return;
    }
    atomic_fetch_add(&cx->received, 1);
    cx->contact_ns[m.from] = now_ns();
    cx->in = &m;
    cx->in_frames = frames;
    cx->in_frames_len = frames_len;
    const strata_raft_act_t *acts;
    size_t n = strata_raft_recv(cx->core, &m, now_ns(), &acts);
    run(w, n, acts);
    cx->in = NULL;
    zframe_destroy(&body);
}

static int on_raft(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    writer_t *w = arg;
    for (int i = 0; i < DRAIN_MAX && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            break;
        zframe_t *id = zmsg_pop(msg);
        char *verb = zmsg_popstr(msg);
        if (id && verb && !strcmp(verb, "HELLO"))
            handle_hello(w, &id, msg);
        else if (id && verb && !strcmp(verb, "MSG"))
            handle_msg(w, id, msg);
        else
            atomic_fetch_add(&w->cx->refused, 1);
        zstr_free(&verb);
        zframe_destroy(&id);
        zmsg_destroy(&msg);
    }
    return 0;
}

/* ---- operator verbs ------------------------------------------------------- */

static uint32_t node_at(const consensus_t *cx, uint32_t i)
{
    return i < cx->o.n_voters ? cx->o.voters[i] : cx->o.learners[i - cx->o.n_voters];
}

int consensus_transfer(writer_t *w, uint32_t *to, char *why, size_t cap)
{
    consensus_t *cx = w->cx;
    if (!cx) {
        snprintf(why, cap, "this node is not part of a cluster (cluster/id 0)");
        return STRATA_EINVAL;
    }
    if (consensus_refuse_write(w, why, cap))
        return STRATA_ENOTMASTER;
    if (!*to) {
        uint64_t best = 0;
        for (uint32_t i = 0; i < cx->o.n_voters; i++) {
            uint32_t v = cx->o.voters[i];
            uint64_t match = v == cx->o.id ? 0 : strata_raft_match(cx->core, v);
            if (v != cx->o.id && (!*to || match > best)) {
                *to = v;
                best = match;
            }
        }
        if (!*to) {
            snprintf(why, cap, "no other voter to hand over to");
            return STRATA_EINVAL;
        }
    }
    bool voter = false;
    for (uint32_t i = 0; i < cx->o.n_voters; i++)
        voter |= cx->o.voters[i] == *to;
    if (!voter || *to == cx->o.id) {
        snprintf(why, cap, "node %u is not another voter of this cluster", *to);
        return STRATA_EINVAL;
    }
    const strata_raft_act_t *acts;
    size_t n = strata_raft_transfer(cx->core, *to, now_ns(), &acts);
    run(w, n, acts);
    log_info("event=transfer to=%u term=%" PRIu64, *to, cx->term);
    return 0;
}

void consensus_peer_pairs(writer_t *w, pairs_t *p)
{
    consensus_t *cx = w->cx;
    uint64_t now = now_ns();
    for (uint32_t i = 0; i < cx->o.n_voters + cx->o.n_learners; i++) {
        uint32_t id = node_at(cx, i);
        if (id == cx->o.id)
            continue;
        snprintf(cx->match_name[i], sizeof cx->match_name[i], "peer_%u_match", id);
        snprintf(cx->contact_name[i], sizeof cx->contact_name[i], "peer_%u_contact_ms", id);
        snprintf(cx->lag_name[i], sizeof cx->lag_name[i], "peer_%u_lag", id);
        snprintf(cx->lag_ms_name[i], sizeof cx->lag_ms_name[i], "peer_%u_lag_ms", id);
        if (cx->role == STRATA_RAFT_LEADER) {
            uint64_t match = strata_raft_match(cx->core, id), last = strata_raft_last_seq(cx->core);
            pair_add(p, cx->match_name[i], "%" PRIu64, match);
            pair_add(p, cx->lag_name[i], "%" PRIu64, last > match ? last - match : 0);
            pair_add(p, cx->lag_ms_name[i], "%" PRIu64, lag_ms(cx, match, last, now));
        }
        if (cx->contact_ns[id])
            pair_add(p, cx->contact_name[i], "%" PRIu64, (now - cx->contact_ns[id]) / 1000000);
        else
            pair_add(p, cx->contact_name[i], "never");
    }
}

/* ---- start and stop ------------------------------------------------------- */

/* The term of the entry just below the log's first, from the runs (0 when
 * the runs do not reach below it). */
static uint64_t snap_term_of(uint64_t first, const uint64_t *run_first, const uint64_t *run_term,
                             size_t n_runs)
{
    uint64_t term = 0;
    for (size_t i = 0; i < n_runs && first > 1; i++)
        if (run_first[i] <= first - 1)
            term = run_term[i];
    return term;
}

uint64_t consensus_truncate_floor(writer_t *w, uint64_t below_seq)
{
    consensus_t *cx = w->cx;
    if (!cx || cx->role != STRATA_RAFT_LEADER)
        return below_seq;
    /* R10: a follower catching up reads from this log; one never heard
     * from (match 0) holds nothing back, or a dead node would keep every
     * segment. Nor does one so far behind that keeping its part of the log
     * would pass follower_retain_mb: it copies a snapshot instead. */
    uint64_t cap = cx->o.follower_retain_mb << 20;
    for (uint32_t i = 0; i < cx->o.n_voters + cx->o.n_learners; i++) {
        uint32_t peer = node_at(cx, i);
        uint64_t match = peer == cx->o.id ? 0 : strata_raft_match(cx->core, peer);
        svc_episode_t *beyond = &cx->readers[peer].beyond_retention;
        if (!match || match + 1 >= below_seq) {
            svc_episode_cleared(beyond);
            continue;
        }
        uint64_t held = strata_db_wal_bytes_from(w->db, match + 1);
        if (held <= cap) {
            below_seq = match + 1;
            svc_episode_cleared(beyond);
        } else if (svc_episode_failed(beyond, STRATA_ETOOBIG)) {
            log_warning("event=follower_retention_exceeded peer=%u match_seq=%" PRIu64
                        " wal_bytes=%" PRIu64 " follower_retain_mb=%" PRIu64
                        " error=\"the WAL node %u needs passes cluster/follower_retain_mb; it will "
                        "copy a snapshot\"",
                        peer, match, held, cx->o.follower_retain_mb, peer);
        }
    }
    return below_seq;
}

void consensus_compacted(writer_t *w)
{
    consensus_t *cx = w->cx;
    uint64_t first = 0, *run_first = NULL, *run_term = NULL;
    size_t n_runs = 0;
    strata_error_t err;
    if (!cx || strata_db_log_terms(w->db, &first, &run_first, &run_term, &n_runs, &err) != 0)
        return;
    uint64_t term = snap_term_of(first, run_first, run_term, n_runs);
    free(run_first);
    free(run_term);
    if (first > 1 && term)
        strata_raft_compacted(cx->core, first - 1, term);
    close_cursor(cx);
}

static int bind_raft(consensus_t *cx, const char *raft, strata_error_t *err)
{
    cx->router = zsock_new(ZMQ_ROUTER);
    if (!cx->router)
        return strata_error_set(err, STRATA_ENOMEM, "cannot create the raft ROUTER");
    zsock_set_maxmsgsize(cx->router, (int64_t)STRATA_RAFT_MSG_MAX + 64 * 1024);
    /* Messages, not bytes: each is at most 8 MiB and Raft resends what a
     * full queue drops, so a stalled transport holds a bounded amount. */
    zsock_set_sndhwm(cx->router, 64);
    zsock_set_rcvhwm(cx->router, 1000);
    zsock_set_linger(cx->router, 0);
    if (zsock_bind(cx->router, "%s", raft) < 0)
        return strata_error_set(err, STRATA_EIO, "writer/raft: bind %s: %s", raft,
                                zmq_strerror(zmq_errno()));
    char *last = zsock_last_endpoint(cx->router);
    snprintf(cx->endpoint, sizeof cx->endpoint, "%s", last ? last : raft);
    zstr_free(&last);
    return 0;
}

int consensus_listen(writer_t *w, strata_error_t *err)
{
    cluster_options_t o;
    int rc = cluster_read_options(w->cfg, &o, err);
    if (rc || !o.id)
        return rc;
    consensus_t *cx = calloc(1, sizeof *cx);
    if (!cx)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    pthread_mutex_init(&cx->peers_mu, NULL);
    w->cx = cx;
    cx->o = o;
    /* An ipc endpoint (the default) lives in the data dir: consensus_open
     * binds it once the dir exists. */
    const char *raft = opt_str(w->cfg, "writer/raft");
    return *raft && !svc_endpoint_is_ipc(raft) ? bind_raft(cx, raft, err) : 0;
}

int consensus_open(writer_t *w, strata_error_t *err)
{
    consensus_t *cx = w->cx;
    if (!cx)
        return 0;
    const cluster_options_t *o = &cx->o;
    int rc;
    snprintf(cx->wal_dir, sizeof cx->wal_dir, "%s/wal", w->data_dir);
    bool fresh = false;
    if ((rc = strata_raft_meta_open(NULL, w->data_dir, &cx->meta, &fresh, err)))
        return rc;
    if (fresh && o->bootstrap) {
        /* The cluster's first start (raft.md R9): every node may vote. */
        if ((rc = strata_raft_meta_store(cx->meta, 0, 0, err)))
            return rc;
        fresh = false;
        log_info("event=bootstrap id=%u", o->id);
    }
    uint64_t first = 0, *run_first = NULL, *run_term = NULL;
    size_t n_runs = 0;
    if ((rc = strata_db_log_terms(w->db, &first, &run_first, &run_term, &n_runs, err)))
        return rc;
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    uint64_t snap_term = snap_term_of(first, run_first, run_term, n_runs), mark_seq, mark_term;
    /* A log that starts at an installed snapshot: the WAL has no entry of
     * the snapshot's term, and voting needs it (R10). */
    if (!snap_term && bootstrap_mark(w->data_dir, &mark_seq, &mark_term) == 0 &&
        mark_seq == first - 1)
        snap_term = mark_term;
    /* The core takes the runs that start inside the log. */
    size_t skip = 0;
    while (skip + 1 < n_runs && run_first[skip + 1] <= first)
        skip++;
    if (n_runs && run_first[skip] < first)
        run_first[skip] = first;
    strata_raft_state_t state = {.term = strata_raft_meta_term(cx->meta),
                                 .vote = strata_raft_meta_vote(cx->meta),
                                 .incarnation = strata_raft_meta_incarnation(cx->meta),
                                 .fresh = fresh,
                                 .snap_seq = first - 1,
                                 .snap_term = first > 1 ? snap_term : 0,
                                 .last_seq = st.appended_seq,
                                 .run_first_seq = run_first + skip,
                                 .run_term = run_term + skip,
                                 .n_runs = st.appended_seq >= first ? n_runs - skip : 0,
                                 .commit_seq = strata_db_commit_seq(w->db)};
    strata_raft_config_t rcfg = {.id = o->id,
                                 .n_voters = o->n_voters,
                                 .n_learners = o->n_learners,
                                 .heartbeat_ns = o->heartbeat_ms * 1000000ull,
                                 .election_min_ns = o->election_min_ms * 1000000ull,
                                 .election_max_ns = o->election_max_ms * 1000000ull,
                                 .lease_ns = o->lease_ms * 1000000ull,
                                 .seed = state.incarnation ^ now_ns() ^ (uint64_t)getpid(),
                                 .max_entries = 64,
                                 .max_inflight = 4};
    memcpy(rcfg.voters, o->voters, sizeof o->voters);
    memcpy(rcfg.learners, o->learners, sizeof o->learners);
    strata_error_t why = {0};
    cx->core = strata_raft_new(&rcfg, &state, now_ns(), &why);
    free(run_first);
    free(run_term);
    if (!cx->core)
        return strata_error_set(err, why.code,
                                "cluster: %s (the log: first_seq %" PRIu64 ", last_seq %" PRIu64
                                ", %zu runs of terms)",
                                why.msg, first, st.appended_seq, n_runs);
    cx->role = strata_raft_role(cx->core);
    cx->term = strata_raft_term(cx->core);
    atomic_store(&cx->role_a, (int)cx->role);
    atomic_store(&cx->term_a, cx->term);
    atomic_store(&cx->commit_a, strata_db_commit_seq(w->db));

    if (!cx->router) {
        char ep[PATH_MAX + 32];
        const char *raft = opt_str(w->cfg, "writer/raft");
        if (!*raft) {
            snprintf(ep, sizeof ep, "ipc://%s/writer.raft", w->data_dir);
            raft = ep;
        }
        if ((rc = bind_raft(cx, raft, err)))
            return rc;
    }
    log_info("event=consensus id=%u voters=%s role=%s term=%" PRIu64 " fresh=%d raft=%s", o->id,
             opt_str(w->cfg, "cluster/voters"), strata_raft_role_name(cx->role), cx->term, fresh,
             cx->endpoint);
    return 0;
}

const char *consensus_endpoint(const writer_t *w)
{
    return w->cx ? w->cx->endpoint : NULL;
}

void consensus_attach(writer_t *w, zloop_t *loop)
{
    if (!w->cx)
        return;
    zloop_reader(loop, w->cx->router, on_raft, w);
    uint64_t every = w->cx->o.heartbeat_ms / 5;
    zloop_timer(loop, every ? every : 1, 0, on_tick_raft, w);
}

void consensus_close(writer_t *w)
{
    consensus_t *cx = w->cx;
    if (!cx)
        return;
    bootstrap_destroy(w);
    w->cx = NULL;
    strata_raft_free(&cx->core);
    strata_raft_meta_close(&cx->meta);
    zsock_destroy(&cx->router);
    for (int k = 0; k < TR_KINDS; k++)
        zframe_destroy(&cx->tr[k].id);
    close_cursor(cx);
    free(cx->frames);
    pthread_mutex_destroy(&cx->peers_mu);
    free(cx);
}

void consensus_stats(const writer_t *w, consensus_stats_t *s)
{
    memset(s, 0, sizeof *s);
    consensus_t *cx = w->cx;
    if (!cx)
        return;
    s->id = cx->o.id;
    s->role = strata_raft_role_name((strata_raft_role_t)atomic_load(&cx->role_a));
    s->term = atomic_load(&cx->term_a);
    s->leader = atomic_load(&cx->leader_a);
    s->commit_seq = atomic_load(&cx->commit_a);
    s->received = atomic_load(&cx->received);
    s->sent = atomic_load(&cx->sent);
    s->dropped = atomic_load(&cx->dropped);
    s->refused = atomic_load(&cx->refused);
}
