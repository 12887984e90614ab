/* The consensus core (strata/raft.h): Raft as a pure state machine over
 * the WAL's (seq, term). The rule each function enforces is named in
 * lib/raft/raft.md by the same number: R1 durable term and vote ... R12. */
#include "strata/raft.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 4096u /* term runs kept; older ones count as compacted */

#ifdef STRATA_RAFT_MUTANTS
#define MUT(r, m) (((r)->cfg.mutants & STRATA_RAFT_MUT_##m) != 0)
#else
#define MUT(r, m) 0
#endif

typedef struct {
    uint32_t id;
    bool voter;
    uint64_t next, match;
    uint32_t inflight;
    uint64_t acked_ctx;   /* latest leader send time this peer echoed in an ok reply */
    uint64_t incarnation; /* 0 until heard from */
    uint64_t heard_at;    /* its last message, or the start of our term as leader */
    uint64_t progress_at; /* when match last moved, or appends went out to an idle pipeline */
    bool granted, refused;
} peer_t;

struct strata_raft {
    strata_raft_config_t cfg;
    uint64_t term, incarnation;
    uint32_t vote, leader;
    strata_raft_role_t role;
    bool voter;     /* configured as one */
    bool caught_up; /* a fresh disk may vote only once it has caught up (R9) */

    /* the log as the core sees it */
    uint64_t snap_seq, snap_term;
    uint64_t last_seq, durable_seq, commit;
    uint64_t run_first[MAX_RUNS], run_term[MAX_RUNS];
    size_t n_runs;
    uint64_t verified; /* follower: matches this term's leader up to here */
    /* follower: the latest ctx and commit of this term's leader; ctx is a
     * time on that leader's clock, so it is 0 until that leader sends one */
    uint64_t leader_ctx, leader_commit;

    /* time */
    uint64_t now, election_at, heartbeat_at, heard_leader_at;
    uint64_t votes_from; /* no vote before: a restarted node may have heard a leader */
    uint64_t rng;
    bool heard_leader;

    peer_t peers[STRATA_RAFT_MAX_NODES];
    uint32_t n_peers;
    uint32_t n_voters; /* including self when a voter */

    uint32_t transfer_to;
    uint64_t transfer_until;
    /* R7: once a TimeoutNow has left in this term, another node may win
     * without waiting out our lease: no lease for the rest of the term. */
    bool handed_over;
    bool transfer_vote; /* this candidacy came from a TimeoutNow */
    uint64_t lease_until;

    strata_raft_entry_t noop;
    strata_raft_act_t acts[STRATA_RAFT_MAX_ACTIONS];
    size_t n_acts;
};

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rnd(strata_raft_t *r)
{
    /* splitmix64: deterministic from the configured seed */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static strata_raft_act_t *act(strata_raft_t *r, strata_raft_act_type_t type)
{
    if (r->n_acts == STRATA_RAFT_MAX_ACTIONS)
        return NULL; /* only sends can be this many; the next heartbeat repeats them */
    strata_raft_act_t *a = &r->acts[r->n_acts++];
    memset(a, 0, sizeof *a);
    a->type = type;
    return a;
}

static void persist_meta(strata_raft_t *r)
{
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_PERSIST_META);
    if (a) {
        a->term = r->term;
        a->vote = r->vote;
    }
}

static void emit_role(strata_raft_t *r)
{
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_ROLE);
    if (a) {
        a->role = r->role;
        a->term = r->term;
        a->leader = r->leader;
    }
}

static void send(strata_raft_t *r, strata_raft_msg_t *m)
{
    m->from = r->cfg.id;
    m->incarnation = r->incarnation;
    if (!m->term)
        m->term = r->term;
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_SEND);
    if (a)
        a->msg = *m;
}

static peer_t *peer(strata_raft_t *r, uint32_t id)
{
    for (uint32_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == id)
            return &r->peers[i];
    return NULL;
}

static uint32_t quorum(const strata_raft_t *r)
{
    return r->n_voters / 2 + 1;
}

uint64_t strata_raft_term_at(const strata_raft_t *r, uint64_t seq)
{
    if (seq == r->snap_seq)
        return r->snap_term;
    if (seq < r->snap_seq || seq > r->last_seq || r->n_runs == 0 || seq < r->run_first[0])
        return 0;
    size_t lo = 0, hi = r->n_runs; /* last run with first <= seq */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r->run_first[mid] <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return r->run_term[lo];
}

/* The first seq of the run holding seq (its term's first entry here). */
static uint64_t run_start(const strata_raft_t *r, uint64_t seq)
{
    uint64_t first = r->snap_seq + 1;
    for (size_t i = 0; i < r->n_runs && r->run_first[i] <= seq; i++)
        first = r->run_first[i];
    return first;
}

static void log_append(strata_raft_t *r, uint64_t seq, uint64_t term)
{
    if (r->n_runs == 0 || r->run_term[r->n_runs - 1] != term) {
        if (r->n_runs == MAX_RUNS) {
            /* The oldest run is forgotten as if compacted: a peer that
             * needs it gets a snapshot offer. */
            r->snap_seq = r->run_first[1] - 1;
            r->snap_term = r->run_term[0];
            memmove(r->run_first, r->run_first + 1, (MAX_RUNS - 1) * sizeof r->run_first[0]);
            memmove(r->run_term, r->run_term + 1, (MAX_RUNS - 1) * sizeof r->run_term[0]);
            r->n_runs--;
        }
        r->run_first[r->n_runs] = seq;
        r->run_term[r->n_runs] = term;
        r->n_runs++;
    }
    r->last_seq = seq;
}

static void log_truncate(strata_raft_t *r, uint64_t seq)
{
    while (r->n_runs && r->run_first[r->n_runs - 1] > seq)
        r->n_runs--;
    r->last_seq = seq;
    if (r->durable_seq > seq)
        r->durable_seq = seq;
    if (r->verified > seq)
        r->verified = seq;
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_TRUNCATE);
    if (a)
        a->seq = seq;
}

static void reset_election(strata_raft_t *r)
{
    uint64_t span = r->cfg.election_max_ns - r->cfg.election_min_ns;
    r->election_at = r->now + r->cfg.election_min_ns + (span ? rnd(r) % span : 0);
}

static bool can_vote(const strata_raft_t *r)
{
    return r->voter && r->caught_up;
}

static void set_commit(strata_raft_t *r, uint64_t seq)
{
    if (seq <= r->commit)
        return; /* R: commit never goes back */
    r->commit = seq;
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_COMMIT);
    if (a)
        a->seq = seq;
}

/* ---- roles -------------------------------------------------------------- */

static void become_follower(strata_raft_t *r, uint64_t term, uint32_t leader)
{
    bool changed = r->role != STRATA_RAFT_FOLLOWER || r->leader != leader || term != r->term;
    if (r->leader != leader || term != r->term)
        r->leader_ctx = 0; /* R7: what it holds is a time on another leader's clock */
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
        r->verified = 0;
        r->leader_commit = 0;
        persist_meta(r); /* R1: before any message in the new term */
    }
    r->role = can_vote(r) ? STRATA_RAFT_FOLLOWER : STRATA_RAFT_LEARNER;
    r->leader = leader;
    r->transfer_to = 0;
    r->lease_until = 0;
    reset_election(r);
    if (changed)
        emit_role(r);
}

static uint64_t durable_last_term(const strata_raft_t *r)
{
    return strata_raft_term_at(r, r->durable_seq);
}

/* again: only to the voters that have not answered (a lost request
 * would otherwise cost a whole election timeout). */
static void send_vote_requests(strata_raft_t *r, bool pre, bool transfer, bool again)
{
    r->heartbeat_at = r->now + r->cfg.heartbeat_ns;
    for (uint32_t i = 0; i < r->n_peers; i++) {
        peer_t *p = &r->peers[i];
        if (!again)
            p->granted = p->refused = false;
        if (!p->voter || p->granted || p->refused)
            continue;
        /* R2: the candidate offers its fsynced tip, which it will keep. */
        strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_VOTE,
                               .to = p->id,
                               .term = pre ? r->term + 1 : r->term,
                               .last_seq = r->durable_seq,
                               .last_term = durable_last_term(r),
                               .pre_vote = pre,
                               .transfer = transfer};
        send(r, &m);
    }
}

static void become_leader(strata_raft_t *r);

static void campaign(strata_raft_t *r, bool pre, bool transfer)
{
    if (!can_vote(r))
        return;
    r->leader_ctx = 0; /* R7: it leaves its leader, and its leader's clock */
    if (pre && !MUT(r, NO_PREVOTE)) {
        /* R6: PreVote: ask whether we could win before disturbing anyone. */
        r->role = STRATA_RAFT_PRECANDIDATE;
        r->leader = 0;
        reset_election(r);
        emit_role(r);
        if (quorum(r) == 1)
            return campaign(r, false, false);
        r->transfer_vote = false;
        send_vote_requests(r, true, false, false);
        return;
    }
    r->term++;
    r->vote = r->cfg.id;
    r->verified = 0;
    r->leader_commit = 0;
    persist_meta(r); /* R1 */
    r->role = STRATA_RAFT_CANDIDATE;
    r->leader = 0;
    reset_election(r);
    emit_role(r);
    if (quorum(r) == 1)
        return become_leader(r);
    r->transfer_vote = transfer;
    send_vote_requests(r, false, transfer, false);
}

static void send_append(strata_raft_t *r, peer_t *p, bool entries);

static void become_leader(strata_raft_t *r)
{
    r->role = STRATA_RAFT_LEADER;
    r->leader = r->cfg.id;
    r->transfer_to = 0;
    r->lease_until = 0;
    r->handed_over = false;
    for (uint32_t i = 0; i < r->n_peers; i++) {
        peer_t *p = &r->peers[i];
        p->next = r->last_seq + 1;
        p->match = 0;
        p->progress_at = r->now;
        p->inflight = 0;
        p->acked_ctx = 0;
        p->heard_at = r->now; /* a new leader gives every peer a full window */
    }
    emit_role(r);
    /* R4: a no-op in the new term; entries of older terms commit only
     * under it. */
    r->noop = (strata_raft_entry_t){.seq = r->last_seq + 1, .term = r->term};
    log_append(r, r->noop.seq, r->noop.term);
    strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_APPEND);
    if (a) {
        a->entries = &r->noop;
        a->n_entries = 1;
    }
    r->heartbeat_at = r->now + r->cfg.heartbeat_ns;
    for (uint32_t i = 0; i < r->n_peers; i++)
        send_append(r, &r->peers[i], true);
}

/* ---- leader ------------------------------------------------------------- */

/* Flow control by what the follower made durable, not by messages: a
 * follower answers each append at once and again when its entries are
 * durable, so replies outnumber appends and counting them lets a follower
 * that writes slower than it receives be sent far more than it can hold;
 * its transport then drops, it refuses what follows a gap, and the leader
 * sends the same entries over and over. At most max_inflight full appends
 * past its durable match are on their way. */
static bool window_open(const strata_raft_t *r, const peer_t *p)
{
    return p->next - 1 - p->match < (uint64_t)r->cfg.max_inflight * r->cfg.max_entries;
}

static void send_append(strata_raft_t *r, peer_t *p, bool entries)
{
    if (p->next <= r->snap_seq) {
        /* R10: what it needs is gone from our log. The ctx comes back in
         * the reply, which may be a new follower's first (R7). */
        strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
                               .to = p->id,
                               .snap_seq = r->snap_seq,
                               .snap_term = r->snap_term,
                               .ctx = r->now};
        send(r, &m);
        return;
    }
    uint64_t prev = p->next - 1;
    uint32_t n = 0;
    if (entries && p->inflight < r->cfg.max_inflight && r->last_seq > prev && window_open(r, p)) {
        uint64_t avail = r->last_seq - prev;
        n = avail < r->cfg.max_entries ? (uint32_t)avail : r->cfg.max_entries;
    }
    strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_APPEND,
                           .to = p->id,
                           .prev_seq = prev,
                           .prev_term = strata_raft_term_at(r, prev),
                           .commit_seq = r->commit,
                           .n_entries = n,
                           .ctx = r->now};
    send(r, &m);
    if (n) {
        if (!p->inflight)
            p->progress_at = r->now;
        p->next = prev + n + 1; /* pipelined: the next message follows on */
        p->inflight++;
    }
}

static void send_pending(strata_raft_t *r, peer_t *p)
{
    while (r->role == STRATA_RAFT_LEADER && p->next <= r->last_seq && p->next > r->snap_seq &&
           p->inflight < r->cfg.max_inflight && window_open(r, p) &&
           r->n_acts + 4 < STRATA_RAFT_MAX_ACTIONS)
        send_append(r, p, true);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The quorum-th largest of the voters' figures, self included. */
static uint64_t quorum_value(const strata_raft_t *r, uint64_t self, bool ctx)
{
    uint64_t v[STRATA_RAFT_MAX_NODES + 1];
    uint32_t n = 0;
    if (r->voter)
        v[n++] = self;
    for (uint32_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].voter)
            v[n++] = ctx ? r->peers[i].acked_ctx : r->peers[i].match;
    qsort(v, n, sizeof v[0], cmp_desc);
    return v[quorum(r) - 1];
}

static void maybe_commit(strata_raft_t *r)
{
    if (r->role != STRATA_RAFT_LEADER)
        return;
    /* R4: the leader counts itself only for what it has fsynced. */
    uint64_t self = MUT(r, LEADER_COUNTS_UNSYNCED) ? r->last_seq : r->durable_seq;
    uint64_t q = quorum_value(r, self, false);
    if (q <= r->commit)
        return;
    /* R4: only an entry of the current term commits by counting (Raft
     * 5.4.2); older ones commit beneath it. */
    if (strata_raft_term_at(r, q) != r->term && !MUT(r, COMMIT_OLD_TERM))
        return;
    set_commit(r, q);
}

static void update_lease(strata_raft_t *r)
{
    if (r->role != STRATA_RAFT_LEADER || !r->cfg.lease_ns || r->handed_over)
        return;
    /* R7: the lease runs from when the round a majority answered was
     * sent, so it ends before any follower stops refusing votes. */
    uint64_t base = quorum_value(r, r->now, true);
    if (!base)
        return;
    uint64_t len = MUT(r, LONG_LEASE) ? 4 * r->cfg.election_max_ns : r->cfg.lease_ns;
    if (base + len > r->lease_until)
        r->lease_until = base + len;
}

static void send_timeout_now(strata_raft_t *r, peer_t *p)
{
    strata_raft_msg_t t = {.type = STRATA_RAFT_MSG_TIMEOUT_NOW, .to = p->id};
    r->handed_over = true;
    r->lease_until = 0;
    send(r, &t);
}

static void on_append_reply(strata_raft_t *r, peer_t *p, const strata_raft_msg_t *m)
{
    if (r->role != STRATA_RAFT_LEADER)
        return;
    if (p->inflight)
        p->inflight--;
    if (m->ok) {
        if (m->match_seq > p->match) {
            p->match = m->match_seq > r->last_seq ? r->last_seq : m->match_seq;
            p->progress_at = r->now;
        }
        if (p->next < p->match + 1)
            p->next = p->match + 1;
        if (p->voter && m->ctx > p->acked_ctx && m->ctx <= r->now)
            p->acked_ctx = m->ctx;
        maybe_commit(r);
        update_lease(r);
        if (r->transfer_to == p->id && p->match == r->last_seq)
            send_timeout_now(r, p);
    } else {
        /* R3: go back to where its log can match ours. */
        uint64_t next = m->hint_seq ? m->hint_seq : 1;
        if (next > p->next)
            next = p->next; /* a stale refusal must not move it on */
        if (next <= p->match)
            next = p->match + 1;
        p->next = next;
        p->inflight = 0;
        send_append(r, p, true);
    }
    send_pending(r, p);
}

/* ---- followers ---------------------------------------------------------- */

static void reply_append(strata_raft_t *r, bool ok, uint64_t hint_seq, uint64_t hint_term)
{
    strata_raft_msg_t m = {.type = STRATA_RAFT_MSG_APPEND_REPLY, .to = r->leader, .ok = ok};
    if (ok) {
        /* R3: acknowledge only what is durable and known to match. */
        uint64_t have = MUT(r, ACK_BEFORE_FSYNC) ? r->last_seq : r->durable_seq;
        m.match_seq = have < r->verified ? have : r->verified;
    } else {
        m.hint_seq = hint_seq;
        m.hint_term = hint_term;
    }
    m.ctx = r->leader_ctx;
    send(r, &m);
}

static void learn_commit(strata_raft_t *r, uint64_t leader_commit)
{
    if (leader_commit > r->leader_commit)
        r->leader_commit = leader_commit;
    set_commit(r, leader_commit < r->verified ? leader_commit : r->verified);
    /* R9: a fresh disk votes once it holds what the leader has committed. */
    if (!r->caught_up && r->leader_commit && r->durable_seq >= r->leader_commit &&
        r->verified >= r->leader_commit) {
        r->caught_up = true;
        if (r->voter && r->role == STRATA_RAFT_LEARNER) {
            r->role = STRATA_RAFT_FOLLOWER;
            emit_role(r);
        }
    }
}

static void on_append(strata_raft_t *r, const strata_raft_msg_t *m)
{
    if (r->role != STRATA_RAFT_FOLLOWER && r->role != STRATA_RAFT_LEARNER)
        become_follower(r, m->term, m->from);
    if (r->leader != m->from) {
        r->leader = m->from;
        emit_role(r);
    }
    r->heard_leader = true;
    r->heard_leader_at = r->now;
    r->leader_ctx = m->ctx;
    reset_election(r);

    uint64_t prev = m->prev_seq, prev_term = m->prev_term;
    uint32_t skip = 0;
    if (prev < r->snap_seq) {
        /* Entries our snapshot already holds are committed and equal. */
        uint64_t drop = r->snap_seq - prev;
        if (drop > m->n_entries) {
            /* All of it lies in our snapshot: committed, so it matches. */
            if (r->snap_seq > r->verified)
                r->verified = r->snap_seq;
            reply_append(r, true, 0, 0);
            return;
        }
        skip = (uint32_t)drop;
        prev = r->snap_seq;
        prev_term = skip ? m->entries[skip - 1].term : prev_term;
        if (skip && prev_term != r->snap_term) {
            reply_append(r, false, r->snap_seq + 1, 0);
            return;
        }
    }
    if (prev > r->last_seq) {
        reply_append(r, false, r->last_seq + 1, 0);
        return;
    }
    uint64_t have = strata_raft_term_at(r, prev);
    if (have != prev_term) {
        /* R3: the whole run of the term we hold there is suspect. */
        uint64_t start = run_start(r, prev);
        if (start <= r->commit)
            start = r->commit + 1;
        reply_append(r, false, start, have);
        return;
    }
    uint32_t i = skip;
    for (; i < m->n_entries; i++) {
        const strata_raft_entry_t *e = &m->entries[i];
        if (e->seq > r->last_seq)
            break;
        if (strata_raft_term_at(r, e->seq) != e->term) {
            if (MUT(r, NO_TRUNCATE)) {
                /* Planted bug: keep our conflicting suffix and carry on. */
                i = m->n_entries;
                break;
            }
            log_truncate(r, e->seq - 1); /* R3: never below commit (the leader has it all) */
            break;
        }
    }
    if (i < m->n_entries) {
        for (uint32_t j = i; j < m->n_entries; j++)
            log_append(r, m->entries[j].seq, m->entries[j].term);
        strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_APPEND);
        if (a) {
            a->entries = &m->entries[i];
            a->n_entries = m->n_entries - i;
        }
    }
    uint64_t matched = m->prev_seq + m->n_entries;
    if (matched > r->verified)
        r->verified = matched;
    learn_commit(r, m->commit_seq);
    reply_append(r, true, 0, 0);
}

static void on_vote(strata_raft_t *r, const strata_raft_msg_t *m)
{
    strata_raft_msg_t reply = {
        .type = STRATA_RAFT_MSG_VOTE_REPLY, .to = m->from, .pre_vote = m->pre_vote};
    /* R6: while a leader is heard from, nobody is elected around it
     * (unless it hands over); this is also what makes the lease safe. */
    bool sticky =
        !m->transfer &&
        ((r->heard_leader && r->leader && r->now < r->heard_leader_at + r->cfg.election_min_ns) ||
         r->now < r->votes_from);
    if (r->role == STRATA_RAFT_LEADER && !m->transfer)
        sticky = true;
    if (m->term < r->term || sticky || !can_vote(r)) {
        reply.term = r->term;
        send(r, &reply);
        return;
    }
    /* R2: grant only to a log at least as up to date as our fsynced tip. */
    uint64_t my_term = durable_last_term(r);
    bool log_ok =
        m->last_term > my_term || (m->last_term == my_term && m->last_seq >= r->durable_seq);
    if (MUT(r, VOTE_NO_LOG_CHECK))
        log_ok = true;
    if (m->pre_vote) {
        reply.term = m->term;
        reply.granted = log_ok && m->term > r->term;
        if (!reply.granted)
            reply.term = r->term;
        send(r, &reply);
        return;
    }
    if (m->term > r->term)
        become_follower(r, m->term, 0);
    reply.term = r->term;
    if (log_ok && (r->vote == 0 || r->vote == m->from)) {
        r->vote = m->from;
        if (!MUT(r, VOTE_UNPERSISTED))
            persist_meta(r); /* R1: the vote is durable before it is sent */
        reply.granted = true;
        reset_election(r);
    }
    send(r, &reply);
}

static void on_vote_reply(strata_raft_t *r, peer_t *p, const strata_raft_msg_t *m)
{
    bool pre = r->role == STRATA_RAFT_PRECANDIDATE;
    if (!pre && r->role != STRATA_RAFT_CANDIDATE)
        return;
    if (m->pre_vote != pre)
        return;
    if (pre && m->term != r->term + 1 && m->granted)
        return;
    if (!pre && m->term != r->term)
        return;
    if (m->granted)
        p->granted = true;
    else
        p->refused = true;
    uint32_t yes = r->voter ? 1 : 0, no = 0;
    for (uint32_t i = 0; i < r->n_peers; i++) {
        yes += r->peers[i].voter && r->peers[i].granted;
        no += r->peers[i].voter && r->peers[i].refused;
    }
    if (yes >= quorum(r)) {
        if (pre)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (no >= quorum(r)) {
        become_follower(r, r->term, 0);
    }
}

/* ---- events ------------------------------------------------------------- */

static size_t done(strata_raft_t *r, const strata_raft_act_t **acts)
{
    *acts = r->acts;
    return r->n_acts;
}

static void begin(strata_raft_t *r, uint64_t now)
{
    r->n_acts = 0;
    if (now > r->now)
        r->now = now; /* a clock that steps back changes nothing */
}

size_t strata_raft_tick(strata_raft_t *r, uint64_t now_ns, const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    if (r->role == STRATA_RAFT_LEADER) {
        /* R6: CheckQuorum over a sliding window: a leader that has not
         * heard from a majority for election_min steps down, within one
         * tick of that, rather than at the end of a fixed round. */
        uint32_t active = r->voter ? 1 : 0;
        for (uint32_t i = 0; i < r->n_peers; i++)
            active += r->peers[i].voter && r->now - r->peers[i].heard_at < r->cfg.election_min_ns;
        if (active < quorum(r)) {
            become_follower(r, r->term, 0);
            return done(r, acts);
        }
        if (r->transfer_to && r->now >= r->transfer_until)
            r->transfer_to = 0;
        if (r->now >= r->heartbeat_at) {
            r->heartbeat_at = r->now + r->cfg.heartbeat_ns;
            for (uint32_t i = 0; i < r->n_peers; i++) {
                peer_t *p = &r->peers[i];
                /* Appends unanswered and no progress for half the
                 * shortest election timeout: a reply may be lost, so go
                 * back to what it has and send again. Not sooner: a
                 * follower catching up on a loaded machine can take longer
                 * than a heartbeat to make an append durable, and resending
                 * what it is still writing only buries it deeper. A lost
                 * append shows sooner, as the next append or heartbeat it
                 * refuses. */
                if (p->inflight && p->next > p->match + 1 &&
                    r->now - p->progress_at >= r->cfg.election_min_ns / 2) {
                    p->next = p->match + 1;
                    p->inflight = 0;
                }
                send_append(r, p, true);
            }
        }
    } else if (r->now >= r->election_at) {
        if (can_vote(r))
            campaign(r, true, false);
        else
            reset_election(r);
    } else if ((r->role == STRATA_RAFT_PRECANDIDATE || r->role == STRATA_RAFT_CANDIDATE) &&
               r->now >= r->heartbeat_at) {
        send_vote_requests(r, r->role == STRATA_RAFT_PRECANDIDATE, r->transfer_vote, true);
    }
    return done(r, acts);
}

size_t strata_raft_recv(strata_raft_t *r, const strata_raft_msg_t *m, uint64_t now_ns,
                        const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    peer_t *p = peer(r, m->from);
    if (!p || m->to != r->cfg.id)
        return done(r, acts);
    p->heard_at = r->now;
    if (m->incarnation && p->incarnation != m->incarnation) {
        /* R9: a new disk: what it had acknowledged is gone. */
        if (p->incarnation) {
            p->match = 0;
            p->acked_ctx = 0;
            if (p->next > r->last_seq + 1 || r->role == STRATA_RAFT_LEADER)
                p->next = r->last_seq + 1;
        }
        p->incarnation = m->incarnation;
    }
    bool vote_like =
        m->type == STRATA_RAFT_MSG_VOTE || (m->type == STRATA_RAFT_MSG_VOTE_REPLY && m->pre_vote);
    if (m->term > r->term && !vote_like) {
        /* R5: a higher term deposes whatever we were. */
        bool from_leader = m->type == STRATA_RAFT_MSG_APPEND ||
                           m->type == STRATA_RAFT_MSG_TIMEOUT_NOW ||
                           m->type == STRATA_RAFT_MSG_SNAPSHOT_OFFER;
        become_follower(r, m->term, from_leader ? m->from : 0);
    }
    if (m->term < r->term && !vote_like) {
        /* R5: a stale leader learns our term and steps down. */
        if (m->type == STRATA_RAFT_MSG_APPEND || m->type == STRATA_RAFT_MSG_SNAPSHOT_OFFER) {
            strata_raft_msg_t reply = {.type = STRATA_RAFT_MSG_APPEND_REPLY, .to = m->from};
            send(r, &reply);
        }
        return done(r, acts);
    }
    switch (m->type) {
    case STRATA_RAFT_MSG_VOTE:
        on_vote(r, m);
        break;
    case STRATA_RAFT_MSG_VOTE_REPLY:
        if (m->term > r->term && !m->granted)
            become_follower(r, m->term, 0);
        else
            on_vote_reply(r, p, m);
        break;
    case STRATA_RAFT_MSG_APPEND:
        if (r->role == STRATA_RAFT_LEADER)
            break; /* two leaders in one term cannot happen; ignore */
        on_append(r, m);
        break;
    case STRATA_RAFT_MSG_APPEND_REPLY:
        on_append_reply(r, p, m);
        break;
    case STRATA_RAFT_MSG_TIMEOUT_NOW:
        if (r->role != STRATA_RAFT_LEADER && can_vote(r))
            campaign(r, false, true);
        break;
    case STRATA_RAFT_MSG_SNAPSHOT_OFFER:
        if (r->role == STRATA_RAFT_LEADER)
            break;
        if (r->role != STRATA_RAFT_FOLLOWER && r->role != STRATA_RAFT_LEARNER)
            become_follower(r, m->term, m->from);
        if (r->leader != m->from) {
            /* After a vote the leader is unknown, and this may be its
             * first word: the host learns it only from a ROLE. */
            r->leader = m->from;
            emit_role(r);
        }
        r->heard_leader = true;
        r->heard_leader_at = r->now;
        r->leader_ctx = m->ctx;
        reset_election(r);
        if (m->snap_seq <= r->commit || m->snap_seq <= r->snap_seq) {
            /* Committed here already (an offer after a stale refusal):
             * installing it would drop entries we may have acknowledged. */
            uint64_t c = r->commit > r->snap_seq ? r->commit : r->snap_seq;
            if (c > r->verified)
                r->verified = c;
            reply_append(r, true, 0, 0);
        } else if (strata_raft_term_at(r, m->snap_seq) == m->snap_term) {
            /* We hold it: it becomes durable (and acknowledged) as usual. */
            if (m->snap_seq > r->verified)
                r->verified = m->snap_seq;
            reply_append(r, true, 0, 0);
        } else {
            strata_raft_act_t *a = act(r, STRATA_RAFT_ACT_FETCH_SNAPSHOT);
            if (a) {
                a->snap_seq = m->snap_seq;
                a->snap_term = m->snap_term;
            }
        }
        break;
    }
    return done(r, acts);
}

bool strata_raft_accepts_proposals(const strata_raft_t *r)
{
    return r->role == STRATA_RAFT_LEADER && !r->transfer_to;
}

size_t strata_raft_propose(strata_raft_t *r, uint64_t last_seq, uint64_t now_ns, bool *ok,
                           const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    *ok = r->role == STRATA_RAFT_LEADER && !r->transfer_to && last_seq > r->last_seq;
    if (!*ok)
        return done(r, acts);
    for (uint64_t s = r->last_seq + 1; s <= last_seq; s++)
        log_append(r, s, r->term);
    for (uint32_t i = 0; i < r->n_peers; i++)
        send_pending(r, &r->peers[i]);
    return done(r, acts);
}

size_t strata_raft_persisted(strata_raft_t *r, uint64_t term, uint64_t seq, uint64_t now_ns,
                             const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    if (seq > r->last_seq || strata_raft_term_at(r, seq) != term || seq <= r->durable_seq)
        return done(r, acts); /* stale: that entry was truncated since */
    r->durable_seq = seq;
    if (r->role == STRATA_RAFT_LEADER) {
        maybe_commit(r);
    } else if (r->leader && r->term) {
        learn_commit(r, r->leader_commit);
        reply_append(r, true, 0, 0);
    }
    return done(r, acts);
}

size_t strata_raft_snapshot_installed(strata_raft_t *r, uint64_t seq, uint64_t term,
                                      uint64_t now_ns, const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    r->n_runs = 0;
    r->snap_seq = seq;
    r->snap_term = term;
    r->last_seq = r->durable_seq = seq;
    r->verified = seq;  /* nothing after it is ours any more */
    set_commit(r, seq); /* a snapshot holds only committed entries */
    if (r->leader && r->role != STRATA_RAFT_LEADER) {
        learn_commit(r, r->leader_commit);
        reply_append(r, true, 0, 0);
    }
    return done(r, acts);
}

void strata_raft_compacted(strata_raft_t *r, uint64_t seq, uint64_t term)
{
    if (seq <= r->snap_seq || seq > r->last_seq || strata_raft_term_at(r, seq) != term)
        return;
    size_t drop = 0; /* runs that end at or before seq */
    while (drop < r->n_runs &&
           (drop + 1 < r->n_runs ? r->run_first[drop + 1] - 1 : r->last_seq) <= seq)
        drop++;
    memmove(r->run_first, r->run_first + drop, (r->n_runs - drop) * sizeof r->run_first[0]);
    memmove(r->run_term, r->run_term + drop, (r->n_runs - drop) * sizeof r->run_term[0]);
    r->n_runs -= drop;
    if (r->n_runs && r->run_first[0] <= seq)
        r->run_first[0] = seq + 1;
    r->snap_seq = seq;
    r->snap_term = term;
}

size_t strata_raft_transfer(strata_raft_t *r, uint32_t to, uint64_t now_ns,
                            const strata_raft_act_t **acts)
{
    begin(r, now_ns);
    peer_t *p = peer(r, to);
    if (r->role != STRATA_RAFT_LEADER || !p || !p->voter)
        return done(r, acts);
    r->transfer_to = to;
    r->transfer_until = r->now + r->cfg.election_min_ns;
    if (p->match == r->last_seq) {
        send_timeout_now(r, p);
    } else {
        send_pending(r, p);
    }
    return done(r, acts);
}

/* ---- construction and queries ------------------------------------------- */

#define REFUSE(...) strata_error_set(err, STRATA_EINVAL, "raft core: " __VA_ARGS__)

static int check_config(const strata_raft_config_t *cfg, strata_error_t *err)
{
    /* Each count alone first: their sum could wrap past the bound. */
    if (cfg->n_voters > STRATA_RAFT_MAX_NODES || cfg->n_learners > STRATA_RAFT_MAX_NODES ||
        cfg->n_voters + cfg->n_learners == 0 ||
        cfg->n_voters + cfg->n_learners > STRATA_RAFT_MAX_NODES)
        return REFUSE("config.n_voters + n_learners: %u + %u, not 1..%u nodes", cfg->n_voters,
                      cfg->n_learners, STRATA_RAFT_MAX_NODES);
    if (cfg->id < 1 || cfg->id > STRATA_RAFT_MAX_NODE_ID)
        return REFUSE("config.id: %u, not a node id (1..%u)", cfg->id, STRATA_RAFT_MAX_NODE_ID);
    /* A node listed twice would be two peers of one id, the second never
     * heard from: a voter counted twice towards a majority, or one that can
     * never be part of it. */
    static const char *const list[2] = {"voters", "learners"};
    const uint32_t *ids[2] = {cfg->voters, cfg->learners};
    const uint32_t n[2] = {cfg->n_voters, cfg->n_learners};
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < n[l]; i++) {
            uint32_t id = ids[l][i];
            if (id < 1 || id > STRATA_RAFT_MAX_NODE_ID)
                return REFUSE("config.%s[%u]: %u, not a node id (1..%u)", list[l], i, id,
                              STRATA_RAFT_MAX_NODE_ID);
            for (int k = 0; k <= l; k++)
                for (uint32_t j = 0; j < (k == l ? i : n[k]); j++)
                    if (ids[k][j] == id)
                        return REFUSE("config.%s[%u]: %u, the same as config.%s[%u]", list[l], i,
                                      id, list[k], j);
        }
    if (!cfg->heartbeat_ns)
        return REFUSE("config.heartbeat_ns: 0, not above 0");
    if (cfg->election_min_ns <= cfg->heartbeat_ns)
        return REFUSE("config.election_min_ns: %" PRIu64 ", not above heartbeat_ns %" PRIu64,
                      cfg->election_min_ns, cfg->heartbeat_ns);
    if (cfg->election_max_ns < cfg->election_min_ns)
        return REFUSE("config.election_max_ns: %" PRIu64 ", below election_min_ns %" PRIu64,
                      cfg->election_max_ns, cfg->election_min_ns);
    if (cfg->lease_ns >= cfg->election_min_ns)
        return REFUSE("config.lease_ns: %" PRIu64 ", not below election_min_ns %" PRIu64,
                      cfg->lease_ns, cfg->election_min_ns);
    if (!cfg->max_entries || cfg->max_entries > STRATA_RAFT_MAX_ENTRIES)
        return REFUSE("config.max_entries: %u, not 1..%u", cfg->max_entries,
                      STRATA_RAFT_MAX_ENTRIES);
    if (!cfg->max_inflight)
        return REFUSE("config.max_inflight: 0, not above 0");
    return 0;
}

static int check_state(const strata_raft_state_t *st, strata_error_t *err)
{
    if (st->n_runs > MAX_RUNS)
        return REFUSE("state.n_runs: %zu, more than the %u kept", st->n_runs, MAX_RUNS);
    if (st->vote > STRATA_RAFT_MAX_NODE_ID)
        return REFUSE("state.vote: %u, neither 0 nor a node id (1..%u)", st->vote,
                      STRATA_RAFT_MAX_NODE_ID);
    for (size_t i = 0; i < st->n_runs; i++) {
        uint64_t first = st->run_first_seq[i];
        if (first <= st->snap_seq)
            return REFUSE("state.run_first_seq[%zu]: %" PRIu64 ", not above snap_seq %" PRIu64, i,
                          first, st->snap_seq);
        if (first > st->last_seq)
            return REFUSE("state.run_first_seq[%zu]: %" PRIu64 ", past last_seq %" PRIu64, i, first,
                          st->last_seq);
        if (i && first <= st->run_first_seq[i - 1])
            return REFUSE("state.run_first_seq[%zu]: %" PRIu64 ", not above run_first_seq[%zu] "
                          "%" PRIu64,
                          i, first, i - 1, st->run_first_seq[i - 1]);
    }
    return 0;
}

strata_raft_t *strata_raft_new(const strata_raft_config_t *cfg, const strata_raft_state_t *st,
                               uint64_t now_ns, strata_error_t *err)
{
    if (check_config(cfg, err) || check_state(st, err))
        return NULL;
    strata_raft_t *r = calloc(1, sizeof *r);
    if (!r) {
        strata_error_set(err, STRATA_ENOMEM, "raft core: out of memory");
        return NULL;
    }
    r->cfg = *cfg;
#ifndef STRATA_RAFT_MUTANTS
    r->cfg.mutants = 0;
#endif
    r->rng = cfg->seed ^ ((uint64_t)cfg->id << 32);
    r->now = now_ns;
    r->term = st->term;
    r->vote = st->vote;
    r->incarnation = st->incarnation;
    r->caught_up = !st->fresh;
    r->snap_seq = st->snap_seq;
    r->snap_term = st->snap_term;
    for (size_t i = 0; i < st->n_runs; i++) {
        r->run_first[i] = st->run_first_seq[i];
        r->run_term[i] = st->run_term[i];
    }
    r->n_runs = st->n_runs;
    r->last_seq = r->durable_seq = st->last_seq < r->snap_seq ? r->snap_seq : st->last_seq;
    r->commit = st->commit_seq < r->last_seq ? st->commit_seq : r->last_seq;
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        if (cfg->voters[i] == cfg->id)
            r->voter = true;
        else
            r->peers[r->n_peers++] = (peer_t){.id = cfg->voters[i], .voter = true};
    }
    for (uint32_t i = 0; i < cfg->n_learners; i++)
        if (cfg->learners[i] != cfg->id)
            r->peers[r->n_peers++] = (peer_t){.id = cfg->learners[i]};
    r->n_voters = cfg->n_voters;
    r->role = can_vote(r) ? STRATA_RAFT_FOLLOWER : STRATA_RAFT_LEARNER;
    /* R7: before its crash it may have heard a leader whose lease still
     * runs; it cannot know, so it waits the longest a lease can last. */
    r->votes_from = now_ns + cfg->election_min_ns;
    reset_election(r);
    return r;
}

void strata_raft_free(strata_raft_t **r_p)
{
    free(*r_p);
    *r_p = NULL;
}

strata_raft_role_t strata_raft_role(const strata_raft_t *r)
{
    return r->role;
}

uint64_t strata_raft_term(const strata_raft_t *r)
{
    return r->term;
}

uint32_t strata_raft_leader(const strata_raft_t *r)
{
    return r->leader;
}

uint64_t strata_raft_commit(const strata_raft_t *r)
{
    return r->commit;
}

uint64_t strata_raft_last_seq(const strata_raft_t *r)
{
    return r->last_seq;
}

uint64_t strata_raft_durable_seq(const strata_raft_t *r)
{
    return r->durable_seq;
}

uint64_t strata_raft_lease_until(const strata_raft_t *r)
{
    /* Only once this term's no-op is committed: before that the leader
     * may not hold every committed entry in its applied state. */
    if (r->role != STRATA_RAFT_LEADER || strata_raft_term_at(r, r->commit) != r->term)
        return 0;
    return r->lease_until;
}

uint64_t strata_raft_match(const strata_raft_t *r, uint32_t id)
{
    for (uint32_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == id)
            return r->peers[i].match;
    return id == r->cfg.id ? r->durable_seq : 0;
}

const char *strata_raft_role_name(strata_raft_role_t role)
{
    switch (role) {
    case STRATA_RAFT_FOLLOWER:
        return "follower";
    case STRATA_RAFT_PRECANDIDATE:
        return "precandidate";
    case STRATA_RAFT_CANDIDATE:
        return "candidate";
    case STRATA_RAFT_LEADER:
        return "leader";
    case STRATA_RAFT_LEARNER:
        return "learner";
    }
    return "?";
}

const char *strata_raft_msg_name(strata_raft_msg_type_t type)
{
    switch (type) {
    case STRATA_RAFT_MSG_VOTE:
        return "vote";
    case STRATA_RAFT_MSG_VOTE_REPLY:
        return "vote_reply";
    case STRATA_RAFT_MSG_APPEND:
        return "append";
    case STRATA_RAFT_MSG_APPEND_REPLY:
        return "append_reply";
    case STRATA_RAFT_MSG_TIMEOUT_NOW:
        return "timeout_now";
    case STRATA_RAFT_MSG_SNAPSHOT_OFFER:
        return "snapshot_offer";
    }
    return "?";
}
