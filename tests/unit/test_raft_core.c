/* The consensus core's rules (lib/raft/raft.md, R1-R12), one or more named
 * tests each, driving cores by hand: every event's actions are looked at,
 * and sends are delivered only when a test says so. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "strata/raft.h"

#define MS 1000000ull

typedef struct {
    strata_raft_act_t acts[256];
    size_t n;
} out_t;

static void keep(out_t *o, const strata_raft_act_t *acts, size_t n)
{
    o->n = 0;
    for (size_t i = 0; i < n && i < 256; i++)
        o->acts[o->n++] = acts[i];
}

static strata_raft_config_t config(uint32_t id, uint32_t voters)
{
    strata_raft_config_t cfg = {.id = id,
                                .n_voters = voters,
                                .heartbeat_ns = 50 * MS,
                                .election_min_ns = 500 * MS,
                                .election_max_ns = 1000 * MS,
                                .lease_ns = 400 * MS,
                                .seed = 42,
                                .max_entries = 64,
                                .max_inflight = 4};
    for (uint32_t i = 0; i < voters; i++)
        cfg.voters[i] = i + 1;
    return cfg;
}

/* A log of one run of term `term` holding seqs 1..last (term 0: empty). */
static strata_raft_t *node(uint32_t id, uint32_t voters, uint64_t term, uint64_t last,
                           uint64_t log_term, uint64_t now)
{
    static uint64_t first[1] = {1}, terms[1];
    terms[0] = log_term;
    strata_raft_config_t cfg = config(id, voters);
    strata_raft_state_t st = {.term = term,
                              .incarnation = 100 + id,
                              .last_seq = last,
                              .run_first_seq = first,
                              .run_term = terms,
                              .n_runs = last ? 1 : 0};
    strata_raft_t *r = strata_raft_new(&cfg, &st, now, NULL);
    ck_assert_ptr_nonnull(r);
    return r;
}

static const strata_raft_act_t *find(const out_t *o, strata_raft_act_type_t type, size_t *at)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->acts[i].type == type) {
            if (at)
                *at = i;
            return &o->acts[i];
        }
    return NULL;
}

static const strata_raft_msg_t *sent(const out_t *o, strata_raft_msg_type_t type, uint32_t to)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->acts[i].type == STRATA_RAFT_ACT_SEND && o->acts[i].msg.type == type &&
            (!to || o->acts[i].msg.to == to))
            return &o->acts[i].msg;
    return NULL;
}

static void tick(strata_raft_t *r, uint64_t now, out_t *o)
{
    const strata_raft_act_t *a;
    size_t n = strata_raft_tick(r, now, &a);
    keep(o, a, n);
}

static void recv(strata_raft_t *r, const strata_raft_msg_t *m, uint64_t now, out_t *o)
{
    const strata_raft_act_t *a;
    size_t n = strata_raft_recv(r, m, now, &a);
    keep(o, a, n);
}

static void persisted(strata_raft_t *r, uint64_t term, uint64_t seq, uint64_t now, out_t *o)
{
    const strata_raft_act_t *a;
    size_t n = strata_raft_persisted(r, term, seq, now, &a);
    keep(o, a, n);
}

/* Ticks node r until it is a precandidate (its timer ran out). */
static uint64_t time_out(strata_raft_t *r, uint64_t now, out_t *o)
{
    for (int i = 0; i < 200 && strata_raft_role(r) != STRATA_RAFT_PRECANDIDATE; i++) {
        now += 10 * MS;
        tick(r, now, o);
    }
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_PRECANDIDATE);
    return now;
}

/* Node 1, a precandidate, gets the pre-votes and then the votes of nodes
 * 2..last: with its own, a majority of up to 2 * last - 1 voters. */
static void win_with_nodes_to(uint32_t last, strata_raft_t *r, uint64_t now, out_t *o)
{
    strata_raft_msg_t g = {.type = STRATA_RAFT_MSG_VOTE_REPLY,
                           .to = 1,
                           .term = strata_raft_term(r) + 1,
                           .granted = true,
                           .pre_vote = true};
    for (g.from = 2; g.from <= last; g.from++)
        recv(r, &g, now, o);
    g.pre_vote = false;
    for (g.from = 2; g.from <= last; g.from++)
        recv(r, &g, now, o);
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_LEADER);
}

/* The same with node 2 alone: a majority of three. */
static void win_with_node_2(strata_raft_t *r, uint64_t now, out_t *o)
{
    win_with_nodes_to(2, r, now, o);
}

/* Makes node 1 of a 3-node cluster the leader of term 1 with its no-op
 * durable and committed; returns the time. */
static uint64_t elect_1(strata_raft_t *n[3], out_t *o)
{
    uint64_t now = time_out(n[0], 1000 * MS, o);
    const strata_raft_msg_t *pv = sent(o, STRATA_RAFT_MSG_VOTE, 2);
    ck_assert_ptr_nonnull(pv);
    strata_raft_msg_t pre = *pv;
    out_t r;
    recv(n[1], &pre, now, &r);
    strata_raft_msg_t grant = *sent(&r, STRATA_RAFT_MSG_VOTE_REPLY, 1);
    ck_assert(grant.granted);
    recv(n[0], &grant, now, o);
    ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_CANDIDATE);
    strata_raft_msg_t vote = *sent(o, STRATA_RAFT_MSG_VOTE, 2);
    recv(n[1], &vote, now, &r);
    grant = *sent(&r, STRATA_RAFT_MSG_VOTE_REPLY, 1);
    recv(n[0], &grant, now, o);
    ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_LEADER);
    uint64_t noop = strata_raft_last_seq(n[0]);
    strata_raft_msg_t app = *sent(o, STRATA_RAFT_MSG_APPEND, 2);
    strata_raft_entry_t e = {.seq = noop, .term = strata_raft_term(n[0])};
    app.entries = &e;
    recv(n[1], &app, now, &r);
    persisted(n[1], e.term, e.seq, now, &r);
    strata_raft_msg_t ack = *sent(&r, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    recv(n[0], &ack, now, o);
    persisted(n[0], e.term, e.seq, now, o);
    ck_assert_uint_eq(strata_raft_commit(n[0]), noop);
    return now;
}

static void three(strata_raft_t *n[3])
{
    for (uint32_t i = 0; i < 3; i++)
        n[i] = node(i + 1, 3, 0, 0, 0, 0);
}

static void free3(strata_raft_t *n[3])
{
    for (int i = 0; i < 3; i++)
        strata_raft_free(&n[i]);
}

/* ---- R1 ------------------------------------------------------------------ */

START_TEST(r1_vote_is_persisted_before_the_reply)
{
    strata_raft_t *r = node(2, 3, 0, 0, 0, 0);
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 1};
    out_t o;
    recv(r, &v, 600 * MS, &o); /* past the start's wait (R7) */
    size_t meta = 0, reply = 0;
    const strata_raft_act_t *m = NULL;
    for (size_t i = 0; i < o.n; i++)
        if (o.acts[i].type == STRATA_RAFT_ACT_PERSIST_META && o.acts[i].vote == 1) {
            m = &o.acts[i];
            meta = i;
        }
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->term, 1);
    const strata_raft_act_t *s = find(&o, STRATA_RAFT_ACT_SEND, &reply);
    ck_assert(s && s->msg.granted);
    ck_assert_uint_lt(meta, reply);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r1_new_term_is_persisted_before_the_vote_requests)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = time_out(n[0], 1000 * MS, &o);
    strata_raft_msg_t grant = {.type = STRATA_RAFT_MSG_VOTE_REPLY,
                               .from = 2,
                               .to = 1,
                               .term = 1,
                               .granted = true,
                               .pre_vote = true};
    recv(n[0], &grant, now, &o);
    size_t meta, send;
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_PERSIST_META, &meta));
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_SEND, &send));
    ck_assert_uint_lt(meta, send);
    ck_assert_uint_eq(o.acts[meta].term, 1);
    ck_assert_uint_eq(o.acts[meta].vote, 1);
    free3(n);
}
END_TEST

START_TEST(r1_term_learned_from_an_append_is_persisted_before_the_reply)
{
    strata_raft_t *r = node(2, 3, 1, 1, 1, 0);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 3,
                           .prev_seq = 1,
                           .prev_term = 1};
    out_t o;
    recv(r, &a, 0, &o);
    size_t meta, reply;
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_PERSIST_META, &meta));
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_SEND, &reply));
    ck_assert_uint_eq(o.acts[meta].term, 3);
    ck_assert_uint_eq(o.acts[meta].vote, 0);
    ck_assert_uint_lt(meta, reply);
    ck_assert(o.acts[reply].msg.ok && o.acts[reply].msg.term == 3);
    strata_raft_free(&r);
}
END_TEST

/* ---- R2 ------------------------------------------------------------------ */

START_TEST(r2_vote_refused_to_a_shorter_log_at_the_same_term)
{
    strata_raft_t *r = node(2, 3, 1, 10, 1, 0);
    out_t o;
    persisted(r, 1, 10, 0, &o);
    strata_raft_msg_t v = {
        .type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 2, .last_seq = 9, .last_term = 1};
    recv(r, &v, 600 * MS, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1);
    ck_assert(rep && !rep->granted);
    v.last_seq = 10;
    v.from = 3;
    recv(r, &v, 601 * MS, &o);
    rep = sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 3);
    ck_assert(rep && rep->granted);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r2_a_higher_last_term_wins_over_a_longer_log)
{
    strata_raft_t *r = node(2, 3, 2, 10, 1, 0);
    strata_raft_msg_t v = {
        .type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 3, .last_seq = 5, .last_term = 2};
    out_t o;
    recv(r, &v, 600 * MS, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1);
    ck_assert(rep && rep->granted);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r2_one_vote_per_term)
{
    strata_raft_t *r = node(3, 3, 0, 0, 0, 0);
    out_t o;
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 3, .term = 1};
    recv(r, &v, 600 * MS, &o);
    ck_assert(sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    v.from = 2;
    recv(r, &v, 601 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 2)->granted);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r2_vote_refused_to_a_longer_log_of_an_older_term)
{
    strata_raft_t *r = node(2, 3, 2, 2, 2, 0);
    strata_raft_msg_t v = {
        .type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 3, .last_seq = 9, .last_term = 1};
    out_t o;
    recv(r, &v, 600 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r2_vote_judged_against_the_fsynced_tip)
{
    /* Entries 3 and 4 of term 2 arrived but are not durable: a candidate
     * whose log ends at (2, 1) is as up to date as what this node keeps. */
    strata_raft_entry_t e[2] = {{.seq = 3, .term = 2}, {.seq = 4, .term = 2}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 2,
                           .prev_seq = 2,
                           .prev_term = 1,
                           .entries = e,
                           .n_entries = 2};
    strata_raft_msg_t v = {
        .type = STRATA_RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 3, .last_seq = 2, .last_term = 1};
    strata_raft_t *r = node(2, 3, 1, 2, 1, 0);
    out_t o;
    recv(r, &a, 0, &o);
    ck_assert_uint_eq(strata_raft_last_seq(r), 4);
    ck_assert_uint_eq(strata_raft_durable_seq(r), 2);
    recv(r, &v, 600 * MS, &o);
    ck_assert(sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 3)->granted);
    strata_raft_free(&r);

    /* Once durable, they count. */
    r = node(2, 3, 1, 2, 1, 0);
    recv(r, &a, 0, &o);
    persisted(r, 2, 4, 0, &o);
    recv(r, &v, 600 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 3)->granted);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r2_candidate_offers_its_fsynced_tip)
{
    strata_raft_entry_t e[2] = {{.seq = 3, .term = 2}, {.seq = 4, .term = 2}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 2,
                           .to = 1,
                           .term = 2,
                           .prev_seq = 2,
                           .prev_term = 1,
                           .entries = e,
                           .n_entries = 2};
    strata_raft_t *r = node(1, 3, 1, 2, 1, 0);
    out_t o;
    recv(r, &a, 0, &o);
    time_out(r, 1000 * MS, &o);
    const strata_raft_msg_t *pv = sent(&o, STRATA_RAFT_MSG_VOTE, 3);
    ck_assert_ptr_nonnull(pv);
    ck_assert_uint_eq(pv->last_seq, 2);
    ck_assert_uint_eq(pv->last_term, 1);
    strata_raft_free(&r);
}
END_TEST

/* ---- R3 ------------------------------------------------------------------ */

START_TEST(r3_conflicting_suffix_is_truncated_before_append)
{
    /* seqs 1..5 of term 1 here; the leader of term 2 has 4..5 in term 2 */
    strata_raft_t *r = node(2, 3, 1, 5, 1, 0);
    strata_raft_entry_t e[2] = {{.seq = 4, .term = 2}, {.seq = 5, .term = 2}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 2,
                           .prev_seq = 3,
                           .prev_term = 1,
                           .entries = e,
                           .n_entries = 2};
    out_t o;
    recv(r, &a, 0, &o);
    size_t t, ap;
    const strata_raft_act_t *tr = find(&o, STRATA_RAFT_ACT_TRUNCATE, &t);
    const strata_raft_act_t *app = find(&o, STRATA_RAFT_ACT_APPEND, &ap);
    ck_assert(tr && app);
    ck_assert_uint_eq(tr->seq, 3);
    ck_assert_uint_lt(t, ap);
    ck_assert_uint_eq(app->n_entries, 2);
    ck_assert_uint_eq(strata_raft_term_at(r, 5), 2);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r3_mismatch_is_refused_with_a_hint)
{
    strata_raft_t *r = node(2, 3, 1, 5, 1, 0);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 3,
                           .prev_seq = 5,
                           .prev_term = 2};
    out_t o;
    recv(r, &a, 0, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && !rep->ok);
    ck_assert_uint_eq(rep->hint_term, 1);
    ck_assert_uint_eq(rep->hint_seq, 1); /* the first seq of our term-1 run */
    a.prev_seq = 9;
    recv(r, &a, 0, &o);
    rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && !rep->ok);
    ck_assert_uint_eq(rep->hint_seq, 6); /* where our log ends */
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_TRUNCATE, NULL));
    strata_raft_free(&r);
}
END_TEST

START_TEST(r3_follower_acks_only_durable_entries)
{
    strata_raft_t *r = node(2, 3, 1, 0, 0, 0);
    strata_raft_entry_t e[3] = {
        {.seq = 1, .term = 1}, {.seq = 2, .term = 1}, {.seq = 3, .term = 1}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 1,
                           .entries = e,
                           .n_entries = 3};
    out_t o;
    recv(r, &a, 0, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok);
    ck_assert_uint_eq(rep->match_seq, 0);
    persisted(r, 1, 2, 0, &o);
    rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok);
    ck_assert_uint_eq(rep->match_seq, 2);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r3_matching_entries_are_kept)
{
    /* A late duplicate of an earlier append must not cut what followed it. */
    strata_raft_t *r = node(2, 3, 1, 4, 1, 0);
    strata_raft_entry_t e[2] = {{.seq = 2, .term = 1}, {.seq = 3, .term = 1}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 1,
                           .prev_seq = 1,
                           .prev_term = 1,
                           .entries = e,
                           .n_entries = 2};
    out_t o;
    recv(r, &a, 0, &o);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_TRUNCATE, NULL));
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_APPEND, NULL));
    ck_assert_uint_eq(strata_raft_last_seq(r), 4);
    ck_assert(sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1)->ok);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r3_follower_acks_only_entries_the_leader_verified)
{
    /* Durable up to 4 from an older term; this term's leader vouched to 2. */
    strata_raft_t *r = node(2, 3, 1, 4, 1, 0);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 2,
                           .prev_seq = 2,
                           .prev_term = 1};
    out_t o;
    recv(r, &a, 0, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok);
    ck_assert_uint_eq(rep->match_seq, 2);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r3_leader_retries_from_the_hint)
{
    /* Leader of term 2 over seqs 1..4 of term 1; its no-op is seq 5. */
    strata_raft_t *l = node(1, 3, 1, 4, 1, 0);
    out_t o;
    uint64_t now = time_out(l, 1000 * MS, &o);
    win_with_node_2(l, now, &o);
    strata_raft_msg_t no = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                            .from = 2,
                            .to = 1,
                            .term = 2,
                            .hint_seq = 2,
                            .hint_term = 1};
    recv(l, &no, now, &o);
    const strata_raft_msg_t *a = sent(&o, STRATA_RAFT_MSG_APPEND, 2);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->prev_seq, 1);
    ck_assert_uint_eq(a->prev_term, 1);
    ck_assert_uint_eq(a->n_entries, 4);
    strata_raft_free(&l);
}
END_TEST

/* ---- R4 ------------------------------------------------------------------ */

START_TEST(r4_new_leader_appends_a_noop)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    elect_1(n, &o);
    ck_assert_uint_eq(strata_raft_last_seq(n[0]), 1);
    ck_assert_uint_eq(strata_raft_term_at(n[0], 1), strata_raft_term(n[0]));
    free3(n);
}
END_TEST

START_TEST(r4_old_term_entry_not_committed_by_counting)
{
    /* Leader of term 3 holding seq 1..5 of term 1; its no-op is seq 6. */
    strata_raft_t *l = node(1, 3, 2, 5, 1, 0);
    out_t o;
    uint64_t now = time_out(l, 1000 * MS, &o);
    win_with_node_2(l, now, &o);
    persisted(l, 1, 5, now, &o);
    /* A follower holds 1..5 (term 1) durably, not the no-op. */
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 3,
                             .ok = true,
                             .match_seq = 5};
    recv(l, &ack, now, &o);
    ck_assert_uint_eq(strata_raft_commit(l), 0);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_COMMIT, NULL));
    /* Once the no-op is on a majority, all of it commits. */
    persisted(l, 3, 6, now, &o);
    ack.match_seq = 6;
    recv(l, &ack, now, &o);
    ck_assert_uint_eq(strata_raft_commit(l), 6);
    strata_raft_free(&l);
}
END_TEST

START_TEST(r4_leader_does_not_count_its_unsynced_entries)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    bool ok;
    const strata_raft_act_t *a;
    strata_raft_propose(n[0], 3, now, &ok, &a);
    ck_assert(ok);
    /* A follower acks 3 durably; the leader has synced only up to 1. */
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 3};
    recv(n[0], &ack, now, &o);
    ck_assert_uint_eq(strata_raft_commit(n[0]), 1); /* only node 2 holds 2..3 durably */
    persisted(n[0], 1, 3, now, &o);
    ck_assert_uint_eq(strata_raft_commit(n[0]), 3);
    free3(n);
}
END_TEST

/* ---- R5 ------------------------------------------------------------------ */

START_TEST(r5_stale_leader_learns_term_and_steps_down)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    /* Node 3 has moved to term 5: its refusal carries that term. */
    strata_raft_t *f = node(3, 3, 5, 0, 0, 0);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 1};
    out_t r;
    recv(f, &a, now, &r);
    const strata_raft_msg_t *rep = sent(&r, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && !rep->ok && rep->term == 5);
    ck_assert_ptr_null(find(&r, STRATA_RAFT_ACT_APPEND, NULL));
    strata_raft_msg_t back = *rep;
    recv(n[0], &back, now, &o);
    ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_FOLLOWER);
    ck_assert_uint_eq(strata_raft_term(n[0]), 5);
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_PERSIST_META, NULL));
    strata_raft_free(&f);
    free3(n);
}
END_TEST

START_TEST(r5_stale_append_is_not_applied)
{
    strata_raft_t *r = node(2, 3, 5, 2, 1, 0);
    strata_raft_entry_t e = {.seq = 3, .term = 3};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 3,
                           .prev_seq = 2,
                           .prev_term = 1,
                           .commit_seq = 3,
                           .entries = &e,
                           .n_entries = 1};
    out_t o;
    recv(r, &a, 0, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && !rep->ok && rep->term == 5);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_APPEND, NULL));
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_COMMIT, NULL));
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_PERSIST_META, NULL));
    ck_assert_uint_eq(strata_raft_last_seq(r), 2);
    ck_assert_uint_eq(strata_raft_leader(r), 0);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r5_higher_term_append_deposes_a_leader)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND, .from = 3, .to = 1, .term = 4};
    recv(n[0], &a, now, &o);
    ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_FOLLOWER);
    ck_assert_uint_eq(strata_raft_term(n[0]), 4);
    ck_assert_uint_eq(strata_raft_leader(n[0]), 3);
    ck_assert(sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 3)->ok);
    free3(n);
}
END_TEST

/* ---- R6 ------------------------------------------------------------------ */

START_TEST(r6_prevote_does_not_change_terms)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = time_out(n[0], 1000 * MS, &o);
    ck_assert_uint_eq(strata_raft_term(n[0]), 0);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_PERSIST_META, NULL));
    strata_raft_msg_t pv = *sent(&o, STRATA_RAFT_MSG_VOTE, 2);
    ck_assert(pv.pre_vote);
    ck_assert_uint_eq(pv.term, 1);
    out_t r;
    recv(n[1], &pv, now, &r);
    ck_assert_uint_eq(strata_raft_term(n[1]), 0);
    ck_assert_ptr_null(find(&r, STRATA_RAFT_ACT_PERSIST_META, NULL));
    ck_assert(sent(&r, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    free3(n);
}
END_TEST

START_TEST(r6_leader_without_quorum_steps_down)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    for (int i = 0; i < 150 && strata_raft_role(n[0]) == STRATA_RAFT_LEADER; i++) {
        now += 10 * MS;
        tick(n[0], now, &o); /* nobody answers */
    }
    ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_FOLLOWER);
    ck_assert_uint_eq(strata_raft_term(n[0]), 1);
    free3(n);
}
END_TEST

START_TEST(r6_refused_prevote_leaves_the_term_alone)
{
    strata_raft_t *r = node(1, 3, 4, 0, 0, 0);
    out_t o;
    uint64_t now = time_out(r, 1000 * MS, &o);
    strata_raft_msg_t no = {
        .type = STRATA_RAFT_MSG_VOTE_REPLY, .from = 2, .to = 1, .term = 4, .pre_vote = true};
    recv(r, &no, now, &o);
    no.from = 3;
    recv(r, &no, now, &o);
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_FOLLOWER);
    ck_assert_uint_eq(strata_raft_term(r), 4);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_PERSIST_META, NULL));
    strata_raft_free(&r);
}
END_TEST

START_TEST(r6_leader_hearing_a_majority_stays)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 1};
    for (uint64_t t = now + 50 * MS; t <= now + 5 * 500 * MS; t += 50 * MS) {
        tick(n[0], t, &o);
        ack.ctx = t;
        recv(n[0], &ack, t, &o);
        ck_assert_int_eq(strata_raft_role(n[0]), STRATA_RAFT_LEADER);
    }
    free3(n);
}
END_TEST

START_TEST(r6_votes_refused_while_leader_heard)
{
    strata_raft_t *f = node(2, 3, 1, 0, 0, 0);
    out_t o;
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
    recv(f, &a, 1000 * MS, &o);
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 2};
    recv(f, &v, 1100 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 3)->granted);
    ck_assert_uint_eq(strata_raft_term(f), 1); /* not disturbed */
    v.transfer = true;
    recv(f, &v, 1100 * MS, &o);
    ck_assert(sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 3)->granted);
    strata_raft_free(&f);
}
END_TEST

/* ---- R7 ------------------------------------------------------------------ */

START_TEST(r7_lease_only_after_noop_commit)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = time_out(n[0], 1000 * MS, &o);
    win_with_node_2(n[0], now, &o);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 0,
                             .ctx = now};
    recv(n[0], &ack, now, &o);
    ck_assert_uint_eq(strata_raft_lease_until(n[0]), 0); /* no-op not committed */
    persisted(n[0], 1, 1, now, &o);
    ack.match_seq = 1;
    recv(n[0], &ack, now, &o);
    ck_assert_uint_eq(strata_raft_commit(n[0]), 1);
    ck_assert_uint_eq(strata_raft_lease_until(n[0]), now + 400 * MS);
    free3(n);
}
END_TEST

START_TEST(r7_lease_base_is_the_quorum_th_echoed_ctx)
{
    strata_raft_t *l = node(1, 5, 0, 0, 0, 0);
    out_t o;
    uint64_t t1 = time_out(l, 1000 * MS, &o);
    win_with_nodes_to(3, l, t1, &o); /* its first appends carry ctx t1 */
    uint64_t t2 = t1 + 50 * MS;
    tick(l, t2, &o); /* a heartbeat round with ctx t2 */
    persisted(l, 1, 1, t2, &o);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 1,
                             .ctx = t2};
    recv(l, &ack, t2 + MS, &o);
    ack.from = 3;
    ack.ctx = t1;
    recv(l, &ack, t2 + MS, &o);
    ck_assert_uint_eq(strata_raft_commit(l), 1);
    /* Of {self, t2, t1, none, none} the third is t1, not the newest echo. */
    ck_assert_uint_eq(strata_raft_lease_until(l), t1 + 400 * MS);
    ack.from = 4;
    ack.ctx = t2;
    recv(l, &ack, t2 + 2 * MS, &o);
    ck_assert_uint_eq(strata_raft_lease_until(l), t2 + 400 * MS);
    strata_raft_free(&l);
}
END_TEST

/* A lease counts from a time this leader sent something a majority
 * received. A reply that echoed the previous leader's ctx would hand the new
 * leader a time on another node's clock, which its only check (not after
 * its own now) cannot tell from one of its own. */
START_TEST(r7_offer_replies_echo_the_offering_leaders_ctx)
{
    strata_raft_t *r = node(2, 3, 4, 4, 1, 0);
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 3,
                           .to = 2,
                           .term = 4,
                           .prev_seq = 4,
                           .prev_term = 1,
                           .ctx = 777 * MS};
    out_t o;
    recv(r, &a, 1000 * MS, &o);
    /* Node 1 leads term 5 and opens with an offer of an entry we hold. */
    strata_raft_msg_t off = {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
                             .from = 1,
                             .to = 2,
                             .term = 5,
                             .snap_seq = 3,
                             .snap_term = 1,
                             .ctx = 5000 * MS};
    recv(r, &off, 1001 * MS, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok);
    ck_assert_uint_eq(rep->ctx, 5000 * MS);
    /* Then one of a snapshot we lack: the reply once it is installed. */
    off.snap_seq = 8;
    off.snap_term = 4;
    off.ctx = 5100 * MS;
    recv(r, &off, 1002 * MS, &o);
    ck_assert_ptr_nonnull(find(&o, STRATA_RAFT_ACT_FETCH_SNAPSHOT, NULL));
    const strata_raft_act_t *acts;
    size_t k = strata_raft_snapshot_installed(r, 8, 4, 1003 * MS, &acts);
    keep(&o, acts, k);
    rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok && rep->match_seq == 8);
    ck_assert_uint_eq(rep->ctx, 5100 * MS);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r7_no_ctx_echoed_to_a_leader_not_heard_from)
{
    /* Learner 4 holds a time of leader 1's clock when a higher term names
     * node 2 its leader without sending one. */
    strata_raft_config_t cfg = config(4, 3);
    cfg.n_learners = 1;
    cfg.learners[0] = 4;
    strata_raft_state_t st = {.incarnation = 1};
    strata_raft_t *l = strata_raft_new(&cfg, &st, 0, NULL);
    strata_raft_entry_t e = {.seq = 1, .term = 1};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 4,
                           .term = 1,
                           .entries = &e,
                           .n_entries = 1,
                           .ctx = 777 * MS};
    out_t o;
    recv(l, &a, 1000 * MS, &o);
    strata_raft_msg_t tn = {.type = STRATA_RAFT_MSG_TIMEOUT_NOW, .from = 2, .to = 4, .term = 2};
    recv(l, &tn, 1001 * MS, &o);
    ck_assert_uint_eq(strata_raft_leader(l), 2);
    persisted(l, 1, 1, 1002 * MS, &o);
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 2);
    ck_assert_ptr_nonnull(rep);
    ck_assert_uint_eq(rep->ctx, 0);
    strata_raft_free(&l);
}
END_TEST

START_TEST(r7_no_lease_after_timeout_now)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    ck_assert_uint_gt(strata_raft_lease_until(n[0]), now);
    const strata_raft_act_t *a;
    size_t k = strata_raft_transfer(n[0], 2, now, &a);
    keep(&o, a, k);
    ck_assert_ptr_nonnull(sent(&o, STRATA_RAFT_MSG_TIMEOUT_NOW, 2));
    ck_assert_uint_eq(strata_raft_lease_until(n[0]), 0);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 1,
                             .ctx = now + MS};
    recv(n[0], &ack, now + MS, &o);
    ck_assert_uint_eq(strata_raft_lease_until(n[0]), 0);
    free3(n);
}
END_TEST

START_TEST(r7_restarted_node_refuses_votes_for_election_min)
{
    strata_raft_t *r = node(2, 3, 1, 0, 0, 5000 * MS);
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 2};
    out_t o;
    recv(r, &v, 5400 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    recv(r, &v, 5500 * MS, &o);
    ck_assert(sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    strata_raft_free(&r);
}
END_TEST

/* ---- R8 ------------------------------------------------------------------ */

START_TEST(r8_transfer_sends_timeout_now_when_caught_up)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    bool ok;
    const strata_raft_act_t *a;
    strata_raft_propose(n[0], 2, now, &ok, &a);
    size_t k = strata_raft_transfer(n[0], 3, now, &a);
    keep(&o, a, k);
    ck_assert_ptr_null(sent(&o, STRATA_RAFT_MSG_TIMEOUT_NOW, 3)); /* 3 is behind */
    k = strata_raft_propose(n[0], 3, now, &ok, &a);
    ck_assert(!ok); /* no proposals while handing over */
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 3,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 2};
    recv(n[0], &ack, now, &o);
    ck_assert_ptr_nonnull(sent(&o, STRATA_RAFT_MSG_TIMEOUT_NOW, 3));
    /* The target campaigns at once, in a new term, flagged as a transfer. */
    strata_raft_msg_t tn = {.type = STRATA_RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 3, .term = 1};
    recv(n[2], &tn, now + 600 * MS, &o);
    ck_assert_int_eq(strata_raft_role(n[2]), STRATA_RAFT_CANDIDATE);
    const strata_raft_msg_t *v = sent(&o, STRATA_RAFT_MSG_VOTE, 2);
    ck_assert(v && v->transfer && !v->pre_vote && v->term == 2);
    free3(n);
}
END_TEST

/* ---- R9 ------------------------------------------------------------------ */

START_TEST(r9_fresh_voter_does_not_vote_until_caught_up)
{
    strata_raft_config_t cfg = config(3, 3);
    strata_raft_state_t st = {.incarnation = 7, .fresh = true};
    strata_raft_t *r = strata_raft_new(&cfg, &st, 0, NULL);
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_LEARNER);
    out_t o;
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 3, .term = 4};
    recv(r, &v, 2000 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    for (uint64_t t = 2000; t < 5000; t += 10)
        tick(r, t * MS, &o); /* never campaigns */
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_LEARNER);
    strata_raft_entry_t e[2] = {{.seq = 1, .term = 4}, {.seq = 2, .term = 4}};
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 3,
                           .term = 4,
                           .commit_seq = 2,
                           .entries = e,
                           .n_entries = 2};
    recv(r, &a, 5000 * MS, &o);
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_LEARNER);
    persisted(r, 4, 2, 5000 * MS, &o);
    ck_assert_int_eq(strata_raft_role(r), STRATA_RAFT_FOLLOWER);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r9_new_incarnation_resets_match)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    ck_assert_uint_eq(strata_raft_match(n[0], 2), 1);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 2,
                             .to = 1,
                             .term = 1,
                             .incarnation = 999,
                             .ok = true,
                             .match_seq = 0};
    recv(n[0], &ack, now, &o);
    ck_assert_uint_eq(strata_raft_match(n[0], 2), 0);
    free3(n);
}
END_TEST

/* ---- R10 ----------------------------------------------------------------- */

START_TEST(r10_behind_follower_gets_snapshot_offer)
{
    strata_raft_t *n[3];
    three(n);
    out_t o;
    uint64_t now = elect_1(n, &o);
    bool ok;
    const strata_raft_act_t *a;
    strata_raft_propose(n[0], 10, now, &ok, &a);
    persisted(n[0], 1, 10, now, &o);
    strata_raft_compacted(n[0], 8, 1);
    strata_raft_msg_t no = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                            .from = 3,
                            .to = 1,
                            .term = 1,
                            .ok = false,
                            .hint_seq = 1};
    recv(n[0], &no, now, &o);
    const strata_raft_msg_t *offer = sent(&o, STRATA_RAFT_MSG_SNAPSHOT_OFFER, 3);
    ck_assert(offer && offer->snap_seq == 8 && offer->snap_term == 1);
    /* The follower fetches it, installs it and acknowledges it. */
    strata_raft_msg_t off = *offer;
    out_t r;
    recv(n[2], &off, now, &r);
    const strata_raft_act_t *f = find(&r, STRATA_RAFT_ACT_FETCH_SNAPSHOT, NULL);
    ck_assert(f && f->snap_seq == 8);
    size_t k = strata_raft_snapshot_installed(n[2], 8, 1, now, &a);
    keep(&r, a, k);
    ck_assert_uint_eq(strata_raft_commit(n[2]), 8);
    const strata_raft_msg_t *rep = sent(&r, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok && rep->match_seq == 8);
    free3(n);
}
END_TEST

START_TEST(r10_offer_of_what_is_committed_here_is_not_installed)
{
    strata_raft_t *r = node(2, 3, 1, 10, 1, 0);
    out_t o;
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 1,
                           .prev_seq = 10,
                           .prev_term = 1,
                           .commit_seq = 10};
    recv(r, &a, 0, &o);
    ck_assert_uint_eq(strata_raft_commit(r), 10);
    strata_raft_msg_t off = {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
                             .from = 1,
                             .to = 2,
                             .term = 1,
                             .snap_seq = 6,
                             .snap_term = 1};
    recv(r, &off, 0, &o);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_FETCH_SNAPSHOT, NULL));
    ck_assert(sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1)->ok);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r10_offer_of_an_entry_held_is_answered_not_fetched)
{
    /* Holds (6, 1) durably, not known to be committed. */
    strata_raft_t *r = node(2, 3, 1, 7, 1, 0);
    strata_raft_msg_t off = {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
                             .from = 1,
                             .to = 2,
                             .term = 1,
                             .snap_seq = 6,
                             .snap_term = 1};
    out_t o;
    recv(r, &off, 0, &o);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_FETCH_SNAPSHOT, NULL));
    const strata_raft_msg_t *rep = sent(&o, STRATA_RAFT_MSG_APPEND_REPLY, 1);
    ck_assert(rep && rep->ok);
    ck_assert_uint_eq(rep->match_seq, 6);
    strata_raft_free(&r);
}
END_TEST

START_TEST(r10_an_offer_names_the_leader_to_the_host)
{
    /* Having voted in term 2, node 2 first hears the winner through an
     * offer: the host must learn who leads, as it would from an append. */
    strata_raft_t *r = node(2, 3, 1, 0, 0, 0);
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 2};
    out_t o;
    recv(r, &v, 600 * MS, &o);
    ck_assert(sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    strata_raft_msg_t off = {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
                             .from = 1,
                             .to = 2,
                             .term = 2,
                             .snap_seq = 5,
                             .snap_term = 1};
    recv(r, &off, 601 * MS, &o);
    const strata_raft_act_t *role = find(&o, STRATA_RAFT_ACT_ROLE, NULL);
    ck_assert_ptr_nonnull(role);
    ck_assert_uint_eq(role->leader, 1);
    ck_assert_uint_eq(role->term, 2);
    strata_raft_free(&r);
}
END_TEST

/* ---- R11 ----------------------------------------------------------------- */

START_TEST(r11_learner_never_votes_or_counts)
{
    strata_raft_config_t cfg = config(4, 3);
    cfg.n_learners = 1;
    cfg.learners[0] = 4;
    strata_raft_state_t st = {.incarnation = 1};
    strata_raft_t *l = strata_raft_new(&cfg, &st, 0, NULL);
    ck_assert_int_eq(strata_raft_role(l), STRATA_RAFT_LEARNER);
    out_t o;
    for (uint64_t t = 0; t < 5000; t += 10)
        tick(l, t * MS, &o);
    ck_assert_int_eq(strata_raft_role(l), STRATA_RAFT_LEARNER);
    strata_raft_msg_t v = {.type = STRATA_RAFT_MSG_VOTE, .from = 1, .to = 4, .term = 1};
    recv(l, &v, 6000 * MS, &o);
    ck_assert(!sent(&o, STRATA_RAFT_MSG_VOTE_REPLY, 1)->granted);
    strata_raft_msg_t tn = {.type = STRATA_RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 4, .term = 1};
    recv(l, &tn, 6000 * MS, &o);
    ck_assert_int_eq(strata_raft_role(l), STRATA_RAFT_LEARNER);
    ck_assert_ptr_null(sent(&o, STRATA_RAFT_MSG_VOTE, 0));
    strata_raft_free(&l);

    /* A leader of 3 voters and a learner: the learner's ack alone does not
     * commit. */
    strata_raft_config_t lc = config(1, 3);
    lc.n_learners = 1;
    lc.learners[0] = 4;
    strata_raft_state_t ls = {.incarnation = 1};
    strata_raft_t *lead = strata_raft_new(&lc, &ls, 0, NULL);
    uint64_t now = time_out(lead, 1000 * MS, &o);
    ck_assert_ptr_null(sent(&o, STRATA_RAFT_MSG_VOTE, 4)); /* learners are not asked */
    strata_raft_msg_t g = {.type = STRATA_RAFT_MSG_VOTE_REPLY,
                           .from = 4,
                           .to = 1,
                           .term = 1,
                           .granted = true,
                           .pre_vote = true};
    recv(lead, &g, now, &o);
    ck_assert_int_eq(strata_raft_role(lead), STRATA_RAFT_PRECANDIDATE); /* nor counted */
    win_with_node_2(lead, now, &o);
    persisted(lead, 1, 1, now, &o);
    strata_raft_msg_t ack = {.type = STRATA_RAFT_MSG_APPEND_REPLY,
                             .from = 4,
                             .to = 1,
                             .term = 1,
                             .ok = true,
                             .match_seq = 1};
    recv(lead, &ack, now, &o);
    ck_assert_uint_eq(strata_raft_commit(lead), 0);
    strata_raft_free(&lead);
}
END_TEST

/* ---- R12 and construction ------------------------------------------------- */

START_TEST(r12_commit_never_goes_back)
{
    strata_raft_t *r = node(2, 3, 1, 10, 1, 0);
    out_t o;
    strata_raft_msg_t a = {.type = STRATA_RAFT_MSG_APPEND,
                           .from = 1,
                           .to = 2,
                           .term = 1,
                           .prev_seq = 10,
                           .prev_term = 1,
                           .commit_seq = 8};
    recv(r, &a, 0, &o);
    ck_assert_uint_eq(strata_raft_commit(r), 8);
    a.commit_seq = 5; /* a late, reordered message */
    recv(r, &a, 0, &o);
    ck_assert_uint_eq(strata_raft_commit(r), 8);
    ck_assert_ptr_null(find(&o, STRATA_RAFT_ACT_COMMIT, NULL));
    strata_raft_free(&r);
}
END_TEST

START_TEST(r12_sends_past_the_action_cap_wait_for_the_heartbeat)
{
    strata_raft_config_t cfg = config(1, 3);
    cfg.max_entries = 1;
    cfg.max_inflight = 1000;
    strata_raft_state_t st = {.incarnation = 1};
    strata_raft_t *l = strata_raft_new(&cfg, &st, 0, NULL);
    out_t o;
    uint64_t now = time_out(l, 1000 * MS, &o);
    win_with_node_2(l, now, &o);
    const strata_raft_act_t *a;
    bool ok = false;
    size_t n = strata_raft_propose(l, 1000, now, &ok, &a);
    ck_assert(ok);
    ck_assert_uint_le(n, STRATA_RAFT_MAX_ACTIONS);
    keep(&o, a, n);
    /* node 2's window of a thousand one-entry appends filled the event */
    ck_assert_ptr_null(sent(&o, STRATA_RAFT_MSG_APPEND, 3));
    tick(l, now + 50 * MS, &o);
    ck_assert_ptr_nonnull(sent(&o, STRATA_RAFT_MSG_APPEND, 3));
    strata_raft_free(&l);
}
END_TEST

/* strata_raft_new refuses cfg with st, naming the field and its value. */
static void refused(const strata_raft_config_t *cfg, const strata_raft_state_t *st, const char *why)
{
    strata_error_t err = {0};
    ck_assert_ptr_null(strata_raft_new(cfg, st, 0, &err));
    ck_assert_int_eq(err.code, STRATA_EINVAL);
    ck_assert_str_eq(err.msg, why);
}

START_TEST(new_refuses_bad_config)
{
    strata_raft_state_t st = {0};
    strata_raft_config_t cfg = config(1, 3);
    cfg.lease_ns = cfg.election_min_ns; /* a lease as long as the election timeout */
    refused(&cfg, &st,
            "raft core: config.lease_ns: 500000000, not below election_min_ns 500000000");
    cfg = config(1, 3);
    cfg.election_min_ns = cfg.heartbeat_ns;
    refused(&cfg, &st,
            "raft core: config.election_min_ns: 50000000, not above heartbeat_ns 50000000");
    cfg = config(1, 3);
    cfg.max_entries = STRATA_RAFT_MAX_ENTRIES + 1;
    refused(&cfg, &st, "raft core: config.max_entries: 257, not 1..256");
    cfg = config(0, 3);
    refused(&cfg, &st, "raft core: config.id: 0, not a node id (1..255)");
    cfg = config(1, 3);
    cfg.n_voters = 0; /* nobody */
    refused(&cfg, &st, "raft core: config.n_voters + n_learners: 0 + 0, not 1..8 nodes");
    cfg = config(1, 3);
    cfg.n_learners = STRATA_RAFT_MAX_NODES;
    refused(&cfg, &st, "raft core: config.n_voters + n_learners: 3 + 8, not 1..8 nodes");
    cfg = config(1, 3);
    cfg.n_voters = UINT32_MAX; /* a sum that wraps to 1 */
    cfg.n_learners = 2;
    refused(&cfg, &st, "raft core: config.n_voters + n_learners: 4294967295 + 2, not 1..8 nodes");
    cfg = config(1, 3);
    cfg.heartbeat_ns = 0;
    refused(&cfg, &st, "raft core: config.heartbeat_ns: 0, not above 0");
    cfg = config(1, 3);
    cfg.election_max_ns = cfg.election_min_ns - 1;
    refused(&cfg, &st,
            "raft core: config.election_max_ns: 499999999, below election_min_ns 500000000");
    cfg = config(1, 3);
    cfg.max_entries = 0;
    refused(&cfg, &st, "raft core: config.max_entries: 0, not 1..256");
    cfg = config(1, 3);
    cfg.max_inflight = 0;
    refused(&cfg, &st, "raft core: config.max_inflight: 0, not above 0");
    /* a recovered vote no peer message could name */
    strata_raft_state_t vote = {.vote = 256};
    cfg = config(1, 3);
    refused(&cfg, &vote, "raft core: state.vote: 256, neither 0 nor a node id (1..255)");
    /* a run of terms that starts past the log's end */
    uint64_t first[1] = {9}, terms[1] = {1};
    strata_raft_state_t bad = {
        .last_seq = 5, .run_first_seq = first, .run_term = terms, .n_runs = 1};
    refused(&cfg, &bad, "raft core: state.run_first_seq[0]: 9, past last_seq 5");
    /* runs that start at the snapshot, or out of order */
    uint64_t at_snap[2] = {2, 3}, unordered[2] = {3, 3}, two_terms[2] = {1, 2};
    strata_raft_state_t runs = {.snap_seq = 2,
                                .snap_term = 1,
                                .last_seq = 4,
                                .run_first_seq = at_snap,
                                .run_term = two_terms,
                                .n_runs = 2};
    refused(&cfg, &runs, "raft core: state.run_first_seq[0]: 2, not above snap_seq 2");
    runs.snap_seq = runs.snap_term = 0;
    runs.run_first_seq = unordered;
    refused(&cfg, &runs, "raft core: state.run_first_seq[1]: 3, not above run_first_seq[0] 3");
    /* one run per entry: the core keeps 4096 runs, and a longer history
     * cannot be taken in */
    static uint64_t many[4097];
    for (uint64_t i = 0; i < 4097; i++)
        many[i] = i + 1;
    strata_raft_state_t long_history = {
        .last_seq = 4096, .run_first_seq = many, .run_term = many, .n_runs = 4096};
    strata_raft_t *r = strata_raft_new(&cfg, &long_history, 0, NULL);
    ck_assert_ptr_nonnull(r);
    strata_raft_free(&r);
    long_history.last_seq = 4097;
    long_history.n_runs = 4097;
    refused(&cfg, &long_history, "raft core: state.n_runs: 4097, more than the 4096 kept");
}
END_TEST

/* The peer codec carries ids 1..255 only, and a restart refuses a recorded
 * vote above 255: a voter 256 could never be heard, and alone it would vote
 * for itself and then fail to restart. */
START_TEST(new_refuses_node_ids_outside_1_to_255)
{
    strata_raft_state_t st = {0};
    strata_raft_config_t cfg = config(1, 3);
    cfg.id = cfg.voters[0] = 256;
    refused(&cfg, &st, "raft core: config.id: 256, not a node id (1..255)");
    cfg = config(1, 3);
    cfg.voters[2] = 300;
    refused(&cfg, &st, "raft core: config.voters[2]: 300, not a node id (1..255)");
    cfg = config(1, 3);
    cfg.voters[2] = 0;
    refused(&cfg, &st, "raft core: config.voters[2]: 0, not a node id (1..255)");
    cfg = config(1, 3);
    cfg.n_learners = 1;
    cfg.learners[0] = 256;
    refused(&cfg, &st, "raft core: config.learners[0]: 256, not a node id (1..255)");
}
END_TEST

/* A node listed twice would be two peers with one id, the second never
 * heard from: a majority that counts a voter twice, or one that cannot be
 * reached. */
START_TEST(new_refuses_a_node_listed_twice)
{
    strata_raft_state_t st = {0};
    strata_raft_config_t cfg = config(1, 3);
    cfg.voters[2] = 2;
    refused(&cfg, &st, "raft core: config.voters[2]: 2, the same as config.voters[1]");
    cfg = config(1, 3);
    cfg.voters[1] = 1;
    refused(&cfg, &st, "raft core: config.voters[1]: 1, the same as config.voters[0]");
    cfg = config(1, 3);
    cfg.n_learners = 2;
    cfg.learners[0] = 4;
    cfg.learners[1] = 3;
    refused(&cfg, &st, "raft core: config.learners[1]: 3, the same as config.voters[2]");
    cfg.learners[1] = 4;
    refused(&cfg, &st, "raft core: config.learners[1]: 4, the same as config.learners[0]");
}
END_TEST

static Suite *raft_suite(void)
{
    Suite *s = suite_create("raft_core");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, r1_vote_is_persisted_before_the_reply);
    tcase_add_test(tc, r1_new_term_is_persisted_before_the_vote_requests);
    tcase_add_test(tc, r1_term_learned_from_an_append_is_persisted_before_the_reply);
    tcase_add_test(tc, r2_vote_refused_to_a_shorter_log_at_the_same_term);
    tcase_add_test(tc, r2_a_higher_last_term_wins_over_a_longer_log);
    tcase_add_test(tc, r2_one_vote_per_term);
    tcase_add_test(tc, r2_vote_refused_to_a_longer_log_of_an_older_term);
    tcase_add_test(tc, r2_vote_judged_against_the_fsynced_tip);
    tcase_add_test(tc, r2_candidate_offers_its_fsynced_tip);
    tcase_add_test(tc, r3_conflicting_suffix_is_truncated_before_append);
    tcase_add_test(tc, r3_mismatch_is_refused_with_a_hint);
    tcase_add_test(tc, r3_follower_acks_only_durable_entries);
    tcase_add_test(tc, r3_matching_entries_are_kept);
    tcase_add_test(tc, r3_follower_acks_only_entries_the_leader_verified);
    tcase_add_test(tc, r3_leader_retries_from_the_hint);
    tcase_add_test(tc, r4_new_leader_appends_a_noop);
    tcase_add_test(tc, r4_old_term_entry_not_committed_by_counting);
    tcase_add_test(tc, r4_leader_does_not_count_its_unsynced_entries);
    tcase_add_test(tc, r5_stale_leader_learns_term_and_steps_down);
    tcase_add_test(tc, r5_stale_append_is_not_applied);
    tcase_add_test(tc, r5_higher_term_append_deposes_a_leader);
    tcase_add_test(tc, r6_prevote_does_not_change_terms);
    tcase_add_test(tc, r6_leader_without_quorum_steps_down);
    tcase_add_test(tc, r6_refused_prevote_leaves_the_term_alone);
    tcase_add_test(tc, r6_leader_hearing_a_majority_stays);
    tcase_add_test(tc, r6_votes_refused_while_leader_heard);
    tcase_add_test(tc, r7_lease_only_after_noop_commit);
    tcase_add_test(tc, r7_lease_base_is_the_quorum_th_echoed_ctx);
    tcase_add_test(tc, r7_offer_replies_echo_the_offering_leaders_ctx);
    tcase_add_test(tc, r7_no_ctx_echoed_to_a_leader_not_heard_from);
    tcase_add_test(tc, r7_no_lease_after_timeout_now);
    tcase_add_test(tc, r7_restarted_node_refuses_votes_for_election_min);
    tcase_add_test(tc, r8_transfer_sends_timeout_now_when_caught_up);
    tcase_add_test(tc, r9_fresh_voter_does_not_vote_until_caught_up);
    tcase_add_test(tc, r9_new_incarnation_resets_match);
    tcase_add_test(tc, r10_behind_follower_gets_snapshot_offer);
    tcase_add_test(tc, r10_offer_of_what_is_committed_here_is_not_installed);
    tcase_add_test(tc, r10_offer_of_an_entry_held_is_answered_not_fetched);
    tcase_add_test(tc, r10_an_offer_names_the_leader_to_the_host);
    tcase_add_test(tc, r11_learner_never_votes_or_counts);
    tcase_add_test(tc, r12_commit_never_goes_back);
    tcase_add_test(tc, r12_sends_past_the_action_cap_wait_for_the_heartbeat);
    tcase_add_test(tc, new_refuses_bad_config);
    tcase_add_test(tc, new_refuses_node_ids_outside_1_to_255);
    tcase_add_test(tc, new_refuses_a_node_listed_twice);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(raft_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
