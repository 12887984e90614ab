/* The consensus core's deterministic simulator: 3 or 5 cores in one
 * process, a seeded scheduler, a network that drops, duplicates, delays
 * and reorders, partitions (one-way, majority/minority, non-transitive),
 * disks that lose what was not synced when a node crashes, clocks that
 * run at different rates. After every action it checks Raft's safety
 * properties; after the faults stop, that a leader is elected and commits
 * within a bound; with a flapping link, that the leader stays. A planted
 * bug (--mutant) must make some check fail: a mutant that survives is a
 * gap in the checks.
 *
 *   sim [--nodes N] [--schedules K] [--seed S] [--mutant NAME|all] [-v]
 *
 * Every failure prints the seed of its schedule; STRATA_TEST_SEED=S (or
 * --seed S --schedules 1) replays exactly that schedule, -v traces it. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strata/raft.h"

#define MS           1000000ull
#define MAXN         5
#define HEARTBEAT    (50 * MS)
#define ET_MIN       (500 * MS)
#define ET_MAX       (1000 * MS)
#define LEASE        (400 * MS)
#define TICK         (10 * MS)
#define DRIFT        0.05 /* clock rates within 1 +- DRIFT */
#define CHAOS        (6000 * MS)
#define SETTLE_BOUND (10000 * MS)
#define FLAP         (3000 * MS)

/* ---- a seeded generator -------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}
static bool chance(double p)
{
    return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0) < p;
}

/* ---- the world ------------------------------------------------------------ */

typedef struct {
    uint64_t seq, term, data, chain;
} ent_t;

typedef struct {
    int id;
    bool up;
    uint32_t epoch; /* events of an earlier life are ignored */
    strata_raft_t *core;
    /* disk */
    bool has_meta;
    uint64_t meta_term, incarnation;
    uint32_t meta_vote;
    ent_t *log; /* log[i] is seq snap_seq + 1 + i */
    size_t len, cap, durable_len;
    size_t sync_upto; /* the sync in flight covers the log up to here */
    uint64_t snap_seq, snap_term, snap_chain;
    bool sync_pending;
    /* clock: local = offset + rate * true */
    double rate;
    uint64_t offset;
    uint64_t commit, last_term;
    uint64_t sent_term; /* the highest term of a message it sent */
} node_t;

typedef enum { EV_TICK, EV_DELIVER, EV_SYNC, EV_PROPOSE, EV_FAULT, EV_RESTART, EV_HEAL } ev_kind_t;

typedef struct {
    strata_raft_msg_t m;
    strata_raft_entry_t entries[]; /* m.n_entries of them */
} msg_t;

typedef struct {
    uint64_t at, order;
    ev_kind_t kind;
    int node;
    uint32_t epoch;
    msg_t *msg;
} ev_t;

typedef struct {
    uint64_t term, data, chain;
    uint64_t in_term; /* the term of the leader that committed it first */
    bool set;
} committed_t;

typedef struct {
    uint64_t seq, term, data;
    int node;
} proposal_t;

static struct {
    int n;
    uint32_t mutants;
    int verbose;
    uint64_t seed;
    uint64_t now;
    node_t nodes[MAXN];
    bool link[MAXN][MAXN]; /* link[a][b]: a's messages reach b */
    double drop, dup;
    uint64_t delay_max, disk_max;
    uint32_t max_entries;
    uint8_t voted[MAXN][4096]; /* the candidate each node granted in each term */
    ev_t *heap;
    size_t heap_len, heap_cap;
    uint64_t order;
    committed_t *committed;
    size_t committed_cap;
    uint64_t max_commit;
    uint64_t leader_of_term[4096];
    /* (seq, term) -> chain hash, open addressing */
    uint64_t *chain_keys, *chain_vals;
    size_t chain_cap, chain_len;
    proposal_t props[4096];
    size_t n_props;
    uint64_t next_data;
    bool chaos;
    bool failed;
    char why[512];
    uint64_t acked;
    uint64_t steps;
} W;

static void fail(const char *fmt, ...)
{
    if (W.failed)
        return;
    W.failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(W.why, sizeof W.why, fmt, ap);
    va_end(ap);
}

static void trace(const char *fmt, ...)
{
    if (!W.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%10.3f ms  ", (double)W.now / 1e6);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t local_now(const node_t *nd)
{
    return nd->offset + (uint64_t)((double)W.now * nd->rate);
}

/* ---- events ---------------------------------------------------------------- */

static bool ev_less(const ev_t *a, const ev_t *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void push(uint64_t at, ev_kind_t kind, int node, msg_t *msg)
{
    if (W.heap_len == W.heap_cap) {
        W.heap_cap = W.heap_cap ? 2 * W.heap_cap : 1024;
        W.heap = realloc(W.heap, W.heap_cap * sizeof *W.heap);
    }
    ev_t e = {.at = at,
              .order = W.order++,
              .kind = kind,
              .node = node,
              .epoch = node >= 0 ? W.nodes[node].epoch : 0,
              .msg = msg};
    size_t i = W.heap_len++;
    while (i && ev_less(&e, &W.heap[(i - 1) / 2])) {
        W.heap[i] = W.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    W.heap[i] = e;
}

static ev_t pop(void)
{
    ev_t top = W.heap[0], last = W.heap[--W.heap_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= W.heap_len)
            break;
        if (c + 1 < W.heap_len && ev_less(&W.heap[c + 1], &W.heap[c]))
            c++;
        if (!ev_less(&W.heap[c], &last))
            break;
        W.heap[i] = W.heap[c];
        i = c;
    }
    if (W.heap_len)
        W.heap[i] = last;
    return top;
}

/* ---- checks' bookkeeping ---------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t a, uint64_t b)
{
    h ^= a + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= b + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* Log matching: two logs with an entry of the same (seq, term) hold the
 * same entries up to it, so the chain hash of that prefix must agree. */
static void chain_check(uint64_t seq, uint64_t term, uint64_t chain, int node)
{
    uint64_t key = (seq << 20 | (term & 0xfffff)) + 1; /* exact: terms stay far below 2^20 */
    if (W.chain_len * 2 >= W.chain_cap) {
        size_t cap = W.chain_cap ? 2 * W.chain_cap : 4096;
        uint64_t *k = calloc(cap, sizeof *k), *v = calloc(cap, sizeof *v);
        for (size_t i = 0; i < W.chain_cap; i++)
            if (W.chain_keys[i]) {
                size_t j = (W.chain_keys[i] * 0x9e3779b97f4a7c15ull >> 17) & (cap - 1);
                while (k[j])
                    j = (j + 1) & (cap - 1);
                k[j] = W.chain_keys[i];
                v[j] = W.chain_vals[i];
            }
        free(W.chain_keys);
        free(W.chain_vals);
        W.chain_keys = k;
        W.chain_vals = v;
        W.chain_cap = cap;
    }
    size_t j = (key * 0x9e3779b97f4a7c15ull >> 17) & (W.chain_cap - 1);
    while (W.chain_keys[j] && W.chain_keys[j] != key)
        j = (j + 1) & (W.chain_cap - 1);
    if (!W.chain_keys[j]) {
        W.chain_keys[j] = key;
        W.chain_vals[j] = chain;
        W.chain_len++;
    } else if (W.chain_vals[j] != chain) {
        if (W.verbose)
            for (int i = 0; i < W.n; i++) {
                node_t *x = &W.nodes[i];
                fprintf(stderr, "node %d snap %" PRIu64 "/%" PRIu64 " len %zu durable %zu:", x->id,
                        x->snap_seq, x->snap_term, x->len, x->durable_len);
                for (size_t k = x->len > 8 ? x->len - 8 : 0; k < x->len; k++)
                    fprintf(stderr, " %" PRIu64 "/%" PRIu64, x->log[k].seq, x->log[k].term);
                fputc('\n', stderr);
            }
        fail("log matching: node %d holds (seq %" PRIu64 ", term %" PRIu64
             ") with a prefix another node's entry there does not have",
             node + 1, seq, term);
    }
}

static committed_t *committed_at(uint64_t seq)
{
    if (seq >= W.committed_cap) {
        size_t cap = W.committed_cap ? W.committed_cap : 1024;
        while (cap <= seq)
            cap *= 2;
        W.committed = realloc(W.committed, cap * sizeof *W.committed);
        memset(W.committed + W.committed_cap, 0, (cap - W.committed_cap) * sizeof *W.committed);
        W.committed_cap = cap;
    }
    return &W.committed[seq];
}

static ent_t *entry(node_t *nd, uint64_t seq, size_t len)
{
    if (seq <= nd->snap_seq || seq > nd->snap_seq + len)
        return NULL;
    return &nd->log[seq - nd->snap_seq - 1];
}

static uint64_t chain_at(node_t *nd, uint64_t seq)
{
    if (seq == nd->snap_seq)
        return nd->snap_chain;
    ent_t *e = entry(nd, seq, nd->len);
    return e ? e->chain : 0;
}

static bool durable_has(node_t *nd, uint64_t seq, uint64_t term)
{
    if (seq <= nd->snap_seq)
        return true; /* a snapshot holds only committed entries */
    ent_t *e = entry(nd, seq, nd->durable_len);
    return e && e->term == term;
}

static void log_push(node_t *nd, uint64_t seq, uint64_t term, uint64_t data)
{
    if (seq != nd->snap_seq + nd->len + 1) {
        fail("node %d appends seq %" PRIu64 " after its last %" PRIu64, nd->id, seq,
             nd->snap_seq + nd->len);
        return;
    }
    if (nd->len == nd->cap) {
        nd->cap = nd->cap ? 2 * nd->cap : 256;
        nd->log = realloc(nd->log, nd->cap * sizeof *nd->log);
    }
    uint64_t chain = mix(chain_at(nd, seq - 1), term, data);
    if (W.verbose > 1)
        trace("node %d appends %" PRIu64 "/%" PRIu64 " data %" PRIu64, nd->id, seq, term, data);
    nd->log[nd->len++] = (ent_t){.seq = seq, .term = term, .data = data, .chain = chain};
    chain_check(seq, term, chain, nd->id - 1);
}

/* ---- the host: carrying out the core's actions ------------------------------ */

static void run_actions(node_t *nd, const strata_raft_act_t *acts, size_t n, int depth);

/* An fdatasync covers what was written before it started; what comes
 * during it waits for the next one. */
static void schedule_sync(node_t *nd)
{
    if (nd->sync_pending)
        return;
    nd->sync_pending = true;
    nd->sync_upto = nd->len;
    push(W.now + 100000 + below(W.disk_max), EV_SYNC, nd->id - 1, NULL);
}

static void send_msg(node_t *nd, const strata_raft_msg_t *m)
{
    if (!m->pre_vote && m->term > nd->sent_term)
        nd->sent_term = m->term;
    if (m->type == STRATA_RAFT_MSG_VOTE_REPLY && m->granted && !m->pre_vote && m->term < 4096) {
        /* Election safety rests on one vote per node and term, crashes
         * included. */
        uint8_t *v = &W.voted[nd->id - 1][m->term];
        if (*v && *v != m->to)
            fail("node %d votes for %d and for %u in term %" PRIu64, nd->id, *v, m->to, m->term);
        *v = (uint8_t)m->to;
    }
    size_t size = sizeof(msg_t) + m->n_entries * sizeof(strata_raft_entry_t);
    msg_t *msg = malloc(size);
    msg->m = *m;
    if (m->type == STRATA_RAFT_MSG_APPEND && m->n_entries) {
        for (uint32_t i = 0; i < m->n_entries; i++) {
            ent_t *e = entry(nd, m->prev_seq + 1 + i, nd->len);
            if (!e) {
                fail("node %d asked to send seq %" PRIu64 " it does not hold", nd->id,
                     m->prev_seq + 1 + i);
                free(msg);
                return;
            }
            msg->entries[i] =
                (strata_raft_entry_t){.seq = e->seq, .term = e->term, .data = e->data};
        }
        msg->m.entries = msg->entries;
    }
    int from = nd->id - 1, to = (int)m->to - 1;
    if (to < 0 || to >= W.n || !W.link[from][to] || chance(W.drop)) {
        free(msg);
        return;
    }
    uint64_t delay = 50000 + below(W.delay_max);
    if (chance(W.dup)) {
        msg_t *copy = malloc(size);
        memcpy(copy, msg, size);
        if (copy->m.n_entries)
            copy->m.entries = copy->entries;
        push(W.now + 50000 + below(W.delay_max), EV_DELIVER, to, copy);
    }
    push(W.now + delay, EV_DELIVER, to, msg);
}

static void commit_to(node_t *nd, uint64_t seq)
{
    if (seq <= nd->commit) {
        fail("node %d: commit goes back from %" PRIu64 " to %" PRIu64, nd->id, nd->commit, seq);
        return;
    }
    if (strata_raft_role(nd->core) == STRATA_RAFT_LEADER && seq > nd->snap_seq) {
        /* Raft 5.4.2: a leader's commit point lands on an entry of its own
         * term; older ones commit beneath it (Figure 8 is what happens
         * otherwise). */
        ent_t *top = entry(nd, seq, nd->len);
        if (top && top->term != strata_raft_term(nd->core))
            fail("leader commit rule: node %d, leader of term %" PRIu64 ", commits seq %" PRIu64
                 " of term %" PRIu64 " by counting",
                 nd->id, strata_raft_term(nd->core), seq, top->term);
    }
    for (uint64_t s = nd->commit + 1; s <= seq && !W.failed; s++) {
        if (s <= nd->snap_seq)
            continue;
        ent_t *e = entry(nd, s, nd->len);
        if (!e) {
            fail("node %d commits seq %" PRIu64 " it does not hold", nd->id, s);
            return;
        }
        committed_t *c = committed_at(s);
        if (c->set) {
            if (c->term != e->term || c->data != e->data)
                fail("state machine safety: seq %" PRIu64 " committed as term %" PRIu64
                     " on one node and term %" PRIu64 " on node %d",
                     s, c->term, e->term, nd->id);
            continue;
        }
        int durable = 0;
        for (int i = 0; i < W.n; i++)
            durable += durable_has(&W.nodes[i], s, e->term);
        if (durable < W.n / 2 + 1)
            fail("seq %" PRIu64 " (term %" PRIu64 ") committed by node %d is durable on %d of %d",
                 s, e->term, nd->id, durable, W.n);
        *c = (committed_t){.term = e->term,
                           .data = e->data,
                           .chain = e->chain,
                           .in_term = strata_raft_term(nd->core),
                           .set = true};
        if (s > W.max_commit)
            W.max_commit = s;
    }
    nd->commit = seq;
    /* Acknowledge the proposals this commit covers: only as the leader of
     * the term they were proposed in, and only if they are still there. */
    size_t keep = 0;
    for (size_t i = 0; i < W.n_props; i++) {
        proposal_t *p = &W.props[i];
        if (p->node != nd->id - 1 || p->seq > seq) {
            W.props[keep++] = *p;
            continue;
        }
        ent_t *e = entry(nd, p->seq, nd->len);
        if (e && e->term == p->term && e->data == p->data) {
            if (strata_raft_role(nd->core) != STRATA_RAFT_LEADER ||
                strata_raft_term(nd->core) != p->term)
                fail("node %d acknowledges seq %" PRIu64 " of term %" PRIu64
                     " while not its leader",
                     nd->id, p->seq, p->term);
            W.acked++;
        }
    }
    W.n_props = keep;
}

static void leader_complete(node_t *nd, uint64_t term)
{
    if (term < sizeof W.leader_of_term / sizeof W.leader_of_term[0]) {
        if (W.leader_of_term[term] && W.leader_of_term[term] != (uint64_t)nd->id)
            fail("election safety: nodes %" PRIu64 " and %d both lead term %" PRIu64,
                 W.leader_of_term[term], nd->id, term);
        W.leader_of_term[term] = (uint64_t)nd->id;
    }
    for (uint64_t s = nd->snap_seq + 1; s <= W.max_commit && !W.failed; s++) {
        committed_t *c = committed_at(s);
        ent_t *e = entry(nd, s, nd->len);
        /* Raft's leader completeness: what was committed in an earlier
         * term is in every later leader's log (a stale leader of an older
         * term may lack it, and cannot commit). */
        if (c->set && c->in_term < term && (!e || e->term != c->term))
            fail("leader completeness: node %d leads term %" PRIu64 " without seq %" PRIu64
                 ", committed in term %" PRIu64,
                 nd->id, term, s, c->in_term);
    }
}

static void install_snapshot(node_t *nd, uint64_t seq, uint64_t term, int depth)
{
    committed_t *c = committed_at(seq);
    if (!c->set || c->term != term) {
        fail("node %d was offered a snapshot at (%" PRIu64 ", %" PRIu64 ") that is not committed",
             nd->id, seq, term);
        return;
    }
    nd->snap_seq = seq;
    nd->snap_term = term;
    nd->snap_chain = c->chain;
    nd->len = nd->durable_len = nd->sync_upto = 0;
    trace("node %d installs a snapshot at %" PRIu64, nd->id, seq);
    const strata_raft_act_t *acts;
    size_t n = strata_raft_snapshot_installed(nd->core, seq, term, local_now(nd), &acts);
    run_actions(nd, acts, n, depth + 1);
}

static void crash(node_t *nd);

/* What a node had proposed and not acknowledged ends as "unknown". */
static void drop_proposals(const node_t *nd)
{
    size_t keep = 0;
    for (size_t i = 0; i < W.n_props; i++)
        if (W.props[i].node != nd->id - 1)
            W.props[keep++] = W.props[i];
    W.n_props = keep;
}

static void run_actions(node_t *nd, const strata_raft_act_t *acts, size_t n, int depth)
{
    for (size_t i = 0; i < n && !W.failed && nd->up; i++) {
        const strata_raft_act_t *a = &acts[i];
        if (W.chaos && chance(0.0005)) {
            trace("node %d crashes between its actions", nd->id);
            crash(nd);
            push(W.now + 50 * MS + below(800 * MS), EV_RESTART, nd->id - 1, NULL);
            return;
        }
        switch (a->type) {
        case STRATA_RAFT_ACT_PERSIST_META:
            if (a->term < nd->meta_term)
                fail("node %d: term goes back from %" PRIu64 " to %" PRIu64, nd->id, nd->meta_term,
                     a->term);
            nd->meta_term = a->term;
            nd->meta_vote = a->vote;
            nd->has_meta = true;
            break;
        case STRATA_RAFT_ACT_TRUNCATE:
            for (uint64_t s = a->seq + 1; s <= nd->snap_seq + nd->len; s++) {
                committed_t *c = committed_at(s);
                ent_t *e = entry(nd, s, nd->len);
                if (c->set && e && c->term == e->term)
                    fail("node %d truncates committed seq %" PRIu64, nd->id, s);
            }
            if (a->seq < nd->snap_seq) {
                fail("node %d truncates into its snapshot", nd->id);
                break;
            }
            nd->len = a->seq - nd->snap_seq;
            if (nd->durable_len > nd->len)
                nd->durable_len = nd->len;
            if (nd->sync_upto > nd->len)
                nd->sync_upto = nd->len;
            break;
        case STRATA_RAFT_ACT_APPEND:
            for (uint32_t k = 0; k < a->n_entries; k++)
                log_push(nd, a->entries[k].seq, a->entries[k].term, a->entries[k].data);
            schedule_sync(nd);
            break;
        case STRATA_RAFT_ACT_SEND:
            send_msg(nd, &a->msg);
            break;
        case STRATA_RAFT_ACT_COMMIT:
            commit_to(nd, a->seq);
            break;
        case STRATA_RAFT_ACT_ROLE:
            trace("node %d is %s in term %" PRIu64 " (leader %u)", nd->id,
                  strata_raft_role_name(a->role), a->term, a->leader);
            if (a->term < nd->last_term)
                fail("node %d: term goes back", nd->id);
            nd->last_term = a->term;
            if (a->role == STRATA_RAFT_LEADER) {
                leader_complete(nd, a->term);
            } else {
                /* A deposed leader answers what it had pending "unknown". */
                drop_proposals(nd);
            }
            break;
        case STRATA_RAFT_ACT_FETCH_SNAPSHOT:
            if (depth < 4)
                install_snapshot(nd, a->snap_seq, a->snap_term, depth);
            break;
        }
    }
}

/* ---- node lives ------------------------------------------------------------- */

static strata_raft_config_t config_for(int id)
{
    strata_raft_config_t cfg = {.id = (uint32_t)id,
                                .n_voters = (uint32_t)W.n,
                                .heartbeat_ns = HEARTBEAT,
                                .election_min_ns = ET_MIN,
                                .election_max_ns = ET_MAX,
                                .lease_ns = LEASE,
                                .seed = W.seed * 31 + (uint64_t)id + W.nodes[id - 1].epoch * 7919,
                                .max_entries = W.max_entries,
                                .max_inflight = 4,
                                .mutants = W.mutants};
    for (int i = 0; i < W.n; i++)
        cfg.voters[i] = (uint32_t)i + 1;
    return cfg;
}

static void start(node_t *nd)
{
    static uint64_t first[8192], term[8192];
    size_t runs = 0;
    for (size_t i = 0; i < nd->len && runs < 8192; i++)
        if (!runs || term[runs - 1] != nd->log[i].term) {
            first[runs] = nd->log[i].seq;
            term[runs++] = nd->log[i].term;
        }
    strata_raft_state_t st = {.term = nd->meta_term,
                              .vote = nd->meta_vote,
                              .incarnation = nd->incarnation,
                              .fresh = !nd->has_meta && nd->epoch > 0,
                              .snap_seq = nd->snap_seq,
                              .snap_term = nd->snap_term,
                              .last_seq = nd->snap_seq + nd->len,
                              .run_first_seq = first,
                              .run_term = term,
                              .n_runs = runs,
                              .commit_seq = nd->snap_seq};
    strata_raft_config_t cfg = config_for(nd->id);
    strata_error_t err = {0};
    nd->core = strata_raft_new(&cfg, &st, local_now(nd), &err);
    if (!nd->core) {
        fail("node %d: strata_raft_new refused its recovered state: %s", nd->id, err.msg);
        return;
    }
    nd->up = true;
    nd->commit = strata_raft_commit(nd->core);
    nd->sync_pending = false;
    push(W.now + below(TICK), EV_TICK, nd->id - 1, NULL);
}

static void crash(node_t *nd)
{
    /* R1: whatever it said in a term, it must still know after a crash:
     * the term, and whom it voted for in it. */
    if (nd->sent_term > nd->meta_term)
        fail("node %d sent messages in term %" PRIu64 " but only term %" PRIu64 " is durable",
             nd->id, nd->sent_term, nd->meta_term);
    if (nd->meta_term < 4096 && W.voted[nd->id - 1][nd->meta_term] &&
        W.voted[nd->id - 1][nd->meta_term] != nd->meta_vote)
        fail("node %d voted for %d in term %" PRIu64 " but its durable vote is %u", nd->id,
             W.voted[nd->id - 1][nd->meta_term], nd->meta_term, nd->meta_vote);
    strata_raft_free(&nd->core);
    nd->up = false;
    nd->epoch++;
    nd->len = nd->durable_len; /* what was not synced is gone */
    nd->sync_pending = false;
    drop_proposals(nd); /* its proposals die with it */
}

static node_t *leader_node(void)
{
    node_t *best = NULL;
    for (int i = 0; i < W.n; i++) {
        node_t *nd = &W.nodes[i];
        if (nd->up && strata_raft_role(nd->core) == STRATA_RAFT_LEADER &&
            (!best || strata_raft_term(nd->core) > strata_raft_term(best->core)))
            best = nd;
    }
    return best;
}

static void propose(void)
{
    node_t *nd = leader_node();
    if (!nd || W.n_props + 4 >= sizeof W.props / sizeof W.props[0])
        return;
    uint64_t k = 1 + below(3), last = strata_raft_last_seq(nd->core);
    bool ok;
    const strata_raft_act_t *acts;
    size_t n = strata_raft_propose(nd->core, last + k, local_now(nd), &ok, &acts);
    if (!ok)
        return;
    uint64_t term = strata_raft_term(nd->core);
    for (uint64_t s = last + 1; s <= last + k; s++) {
        uint64_t data = ++W.next_data;
        log_push(nd, s, term, data);
        W.props[W.n_props++] =
            (proposal_t){.seq = s, .term = term, .data = data, .node = nd->id - 1};
    }
    schedule_sync(nd);
    run_actions(nd, acts, n, 0);
}

static void set_links(bool all)
{
    for (int a = 0; a < W.n; a++)
        for (int b = 0; b < W.n; b++)
            W.link[a][b] = all;
}

static void fault(void)
{
    int victim = (int)below((uint64_t)W.n);
    node_t *nd = &W.nodes[victim];
    switch (below(10)) {
    case 0:
    case 1:
        if (nd->up) {
            trace("crash node %d", nd->id);
            crash(nd);
            /* half the time the process comes straight back */
            push(W.now + (chance(0.5) ? 1 * MS + below(20 * MS) : 50 * MS + below(800 * MS)),
                 EV_RESTART, victim, NULL);
        }
        break;
    case 2: /* isolate one node */
        set_links(true);
        for (int i = 0; i < W.n; i++)
            W.link[victim][i] = W.link[i][victim] = i == victim;
        trace("isolate node %d", victim + 1);
        break;
    case 3: { /* split into a random minority and majority */
        bool side[MAXN];
        for (int i = 0; i < W.n; i++)
            side[i] = chance(0.5);
        for (int a = 0; a < W.n; a++)
            for (int b = 0; b < W.n; b++)
                W.link[a][b] = side[a] == side[b];
        trace("split");
        break;
    }
    case 4: { /* one way */
        int other = (victim + 1 + (int)below((uint64_t)W.n - 1)) % W.n;
        W.link[victim][other] = false;
        trace("cut %d -> %d", victim + 1, other + 1);
        break;
    }
    case 5: { /* non-transitive: a bridge node sees both sides */
        set_links(true);
        for (int a = 0; a < W.n; a++)
            for (int b = 0; b < W.n; b++)
                if (a != victim && b != victim && (a % 2) != (b % 2))
                    W.link[a][b] = false;
        trace("bridge through node %d", victim + 1);
        break;
    }
    case 6:
        set_links(true);
        trace("heal links");
        break;
    case 7:
        W.drop = chance(0.5) ? 0 : (double)below(30) / 100.0;
        W.dup = (double)below(10) / 100.0;
        W.delay_max = (1 + below(40)) * MS;
        trace("network drop %.2f dup %.2f delay<%" PRIu64 "ms", W.drop, W.dup, W.delay_max / MS);
        break;
    case 8: /* the leader hands over */
        if ((nd = leader_node())) {
            const strata_raft_act_t *acts;
            uint32_t to = (uint32_t)(1 + (nd->id + (int)below((uint64_t)W.n - 1)) % W.n);
            trace("transfer from %d to %u", nd->id, to);
            size_t n = strata_raft_transfer(nd->core, to, local_now(nd), &acts);
            run_actions(nd, acts, n, 0);
        }
        break;
    case 9: /* retention: a node drops its committed prefix */
        if (nd->up && nd->commit > nd->snap_seq + 8 &&
            nd->commit <= nd->snap_seq + nd->durable_len) {
            uint64_t upto = nd->commit - 4;
            ent_t *e = entry(nd, upto, nd->len);
            strata_raft_compacted(nd->core, upto, e->term);
            size_t drop = upto - nd->snap_seq;
            nd->snap_chain = e->chain;
            nd->snap_term = e->term;
            nd->snap_seq = upto;
            memmove(nd->log, nd->log + drop, (nd->len - drop) * sizeof *nd->log);
            nd->len -= drop;
            nd->durable_len -= drop;
            nd->sync_upto = nd->sync_upto > drop ? nd->sync_upto - drop : 0;
            trace("node %d compacts up to %" PRIu64, nd->id, upto);
        }
        break;
    }
}

/* ---- one schedule ------------------------------------------------------------- */

typedef struct {
    bool ok;
    uint64_t election_ns; /* heal to first commit of a leader's own term */
    uint64_t failover_ns; /* the settled leader crashes: to its successor's first commit */
    uint64_t steps;
} result_t;

static void reset_world(int n, uint64_t seed, uint32_t mutants)
{
    for (int i = 0; i < MAXN; i++) {
        strata_raft_free(&W.nodes[i].core);
        free(W.nodes[i].log);
    }
    for (size_t i = 0; i < W.heap_len; i++)
        free(W.heap[i].msg);
    free(W.committed);
    free(W.chain_keys);
    free(W.chain_vals);
    free(W.heap);
    int verbose = W.verbose;
    memset(&W, 0, sizeof W);
    W.verbose = verbose;
    W.n = n;
    W.seed = seed;
    W.mutants = mutants;
    rng_state = seed;
    set_links(true);
    W.delay_max = 2 * MS;
    W.disk_max = (1 + below(20)) * MS;
    W.max_entries = chance(0.3) ? 1 + (uint32_t)below(3) : 64;
    for (int i = 0; i < n; i++) {
        node_t *nd = &W.nodes[i];
        nd->id = i + 1;
        nd->incarnation = rnd() | 1;
        nd->has_meta = true; /* the cluster's bootstrap wrote term 0 */
        nd->rate = 1.0 + DRIFT * (2.0 * (double)(rnd() >> 11) / 9007199254740992.0 - 1.0);
        nd->offset = below(1000) * MS;
    }
}

static bool step(void)
{
    ev_t e = pop();
    W.now = e.at;
    W.steps++;
    node_t *nd = e.node >= 0 ? &W.nodes[e.node] : NULL;
    bool live = nd && nd->up && e.epoch == nd->epoch;
    const strata_raft_act_t *acts;
    size_t n;
    switch (e.kind) {
    case EV_TICK:
        if (!live)
            break;
        n = strata_raft_tick(nd->core, local_now(nd), &acts);
        run_actions(nd, acts, n, 0);
        if (nd->up && e.epoch == nd->epoch)
            push(W.now + (uint64_t)((double)TICK / nd->rate), EV_TICK, e.node, NULL);
        break;
    case EV_DELIVER:
        if (nd && nd->up && W.link[e.msg->m.from - 1][e.node]) {
            n = strata_raft_recv(nd->core, &e.msg->m, local_now(nd), &acts);
            run_actions(nd, acts, n, 0);
        }
        free(e.msg);
        break;
    case EV_SYNC:
        if (!live)
            break;
        nd->sync_pending = false;
        if (nd->durable_len < nd->sync_upto) {
            nd->durable_len = nd->sync_upto;
            ent_t *last = &nd->log[nd->durable_len - 1];
            n = strata_raft_persisted(nd->core, last->term, last->seq, local_now(nd), &acts);
            run_actions(nd, acts, n, 0);
        }
        if (nd->up && e.epoch == nd->epoch && nd->durable_len < nd->len)
            schedule_sync(nd);
        break;
    case EV_PROPOSE:
        propose();
        push(W.now + 5 * MS + below(30 * MS), EV_PROPOSE, -1, NULL);
        break;
    case EV_FAULT:
        if (W.chaos) {
            fault();
            push(W.now + 50 * MS + below(400 * MS), EV_FAULT, -1, NULL);
        }
        break;
    case EV_RESTART:
        if (nd && !nd->up && e.epoch == nd->epoch) {
            trace("restart node %d", nd->id);
            start(nd);
        }
        break;
    case EV_HEAL:
        break;
    }
    /* R7: a leader answering reads from its lease holds every commit. */
    for (int i = 0; i < W.n && !W.failed; i++) {
        node_t *x = &W.nodes[i];
        if (x->up && strata_raft_lease_until(x->core) > local_now(x) && x->commit < W.max_commit)
            fail("read lease: node %d holds a lease at commit %" PRIu64 " while seq %" PRIu64
                 " is committed",
                 x->id, x->commit, W.max_commit);
    }
    return !W.failed;
}

/* A schedule takes about 10,000 steps; a hundred times that is a message
 * storm (a planted bug can make one), not progress. */
#define MAX_STEPS 1000000u

static bool run_until(uint64_t until)
{
    while (W.heap_len && W.heap[0].at <= until) {
        if (W.steps > MAX_STEPS) {
            fail("runaway: more than %u steps, %zu events pending", MAX_STEPS, W.heap_len);
            return false;
        }
        if (!step())
            return false;
    }
    W.now = until;
    return true;
}

static node_t *settled_leader(void)
{
    node_t *nd = leader_node();
    if (nd &&
        strata_raft_term_at(nd->core, strata_raft_commit(nd->core)) == strata_raft_term(nd->core))
        return nd;
    return NULL;
}

static result_t run_schedule(int n, uint64_t seed, uint32_t mutants, bool flap)
{
    reset_world(n, seed, mutants);
    result_t res = {.ok = false};
    for (int i = 0; i < n; i++)
        start(&W.nodes[i]);
    push(W.now + 10 * MS, EV_PROPOSE, -1, NULL);
    W.chaos = true;
    push(W.now + below(300 * MS), EV_FAULT, -1, NULL);
    if (!run_until(CHAOS))
        goto out;
    /* Heal: every node up, every link, a quiet network. */
    W.chaos = false;
    set_links(true);
    W.drop = W.dup = 0;
    W.delay_max = 2 * MS;
    for (int i = 0; i < n; i++)
        if (!W.nodes[i].up) {
            W.nodes[i].epoch++;
            start(&W.nodes[i]);
        }
    uint64_t healed = W.now;
    node_t *leader = NULL;
    while (!(leader = settled_leader()) && W.now < healed + SETTLE_BOUND)
        if (!run_until(W.now + TICK))
            goto out;
    if (!leader) {
        fail("liveness: no leader committed in its term %.1f s after the heal",
             (double)SETTLE_BOUND / 1e9);
        goto out;
    }
    res.election_ns = W.now - healed;
    if (flap) {
        /* A flapping link to one follower must not unseat the leader. A
         * hand-over asked for before the heal may still complete: wait
         * until that cannot be. */
        if (!run_until(W.now + ET_MAX))
            goto out;
        uint64_t since = W.now;
        while (!(leader = settled_leader()) && W.now < since + SETTLE_BOUND)
            if (!run_until(W.now + TICK))
                goto out;
        if (!leader) {
            fail("liveness: no leader committed in its term %.1f s after a deposed one",
                 (double)SETTLE_BOUND / 1e9);
            goto out;
        }
        uint64_t term = strata_raft_term(leader->core);
        int f = (leader->id) % n; /* a follower's index */
        uint64_t end = W.now + FLAP;
        while (W.now < end) {
            for (int i = 0; i < n; i++)
                W.link[f][i] = W.link[i][f] = false;
            if (!run_until(W.now + 600 * MS + below(900 * MS)))
                goto out;
            for (int i = 0; i < n; i++)
                W.link[f][i] = W.link[i][f] = true;
            if (!run_until(W.now + 50 * MS + below(250 * MS)))
                goto out;
        }
        for (int i = 0; i < n; i++)
            if (W.nodes[i].up && strata_raft_term(W.nodes[i].core) != term && i != f)
                fail("liveness: a flapping link to node %d moved the healthy majority from term "
                     "%" PRIu64 " to %" PRIu64,
                     f + 1, term, strata_raft_term(W.nodes[i].core));
        if (!W.failed && (!leader->up || strata_raft_role(leader->core) != STRATA_RAFT_LEADER))
            fail("liveness: node %d lost its leadership to a flapping link to node %d", leader->id,
                 f + 1);
    }
    /* Fail-over: the leader dies on a quiet network. */
    if (!W.failed && (leader = settled_leader())) {
        uint64_t died = W.now;
        int old = leader->id;
        crash(leader);
        node_t *next = NULL;
        while (!((next = settled_leader()) && next->id != old) && W.now < died + SETTLE_BOUND)
            if (!run_until(W.now + MS))
                goto out;
        if (!next || next->id == old) {
            fail("liveness: no new leader %.1f s after leader %d died", (double)SETTLE_BOUND / 1e9,
                 old);
            goto out;
        }
        res.failover_ns = W.now - died;
    }
    res.ok = !W.failed;
out:
    res.steps = W.steps;
    return res;
}

/* ---- the command ---------------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t bit;
} mutant_names[] = {
    {"vote_no_log_check", STRATA_RAFT_MUT_VOTE_NO_LOG_CHECK},
    {"commit_old_term", STRATA_RAFT_MUT_COMMIT_OLD_TERM},
    {"ack_before_fsync", STRATA_RAFT_MUT_ACK_BEFORE_FSYNC},
    {"vote_unpersisted", STRATA_RAFT_MUT_VOTE_UNPERSISTED},
    {"no_truncate", STRATA_RAFT_MUT_NO_TRUNCATE},
    {"leader_counts_unsynced", STRATA_RAFT_MUT_LEADER_COUNTS_UNSYNCED},
    {"no_prevote", STRATA_RAFT_MUT_NO_PREVOTE},
    {"long_lease", STRATA_RAFT_MUT_LONG_LEASE},
};
#define N_MUTANTS (sizeof mutant_names / sizeof mutant_names[0])

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Schedule i of a run: its seed, and whether it has the flapping phase. */
static uint64_t seed_of(uint64_t base, uint64_t i)
{
    uint64_t s = base + i * 0x9e3779b97f4a7c15ull;
    return s ? s : 1;
}

int main(int argc, char **argv)
{
    int nodes = 0; /* 0: alternate 3 and 5 */
    uint64_t schedules = 1000, seed = 0;
    const char *mutant = NULL;
    uint64_t mutant_limit = 3000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--schedules") && i + 1 < argc)
            schedules = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--mutant") && i + 1 < argc)
            mutant = argv[++i];
        else if (!strcmp(argv[i], "--mutant-limit") && i + 1 < argc)
            mutant_limit = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-v"))
            W.verbose = 1;
        else if (!strcmp(argv[i], "-vv"))
            W.verbose = 2;
        else {
            fprintf(stderr,
                    "usage: sim [--nodes 3|5] [--schedules K] [--seed S] [--mutant NAME|all "
                    "[--mutant-limit K]] [-v]\n");
            return 2;
        }
    }
    const char *env = getenv("STRATA_TEST_SEED");
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
        schedules = 1;
    }
    bool replay = seed != 0 && schedules == 1;
    if (!seed)
        seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)clock();
    if (nodes && nodes != 3 && nodes != 5) {
        fprintf(stderr, "sim: --nodes must be 3 or 5\n");
        return 2;
    }

    if (mutant) {
        int failed = 0;
        printf("mutant                   caught at schedule   seed                  check\n");
        for (size_t m = 0; m < N_MUTANTS; m++) {
            if (strcmp(mutant, "all") && strcmp(mutant, mutant_names[m].name))
                continue;
            uint64_t caught = 0, at_seed = 0;
            for (uint64_t i = 0; i < mutant_limit && !caught; i++) {
                uint64_t s = replay ? seed : seed_of(seed, i);
                int n = nodes ? nodes : (i % 2 ? 5 : 3);
                bool flap = mutant_names[m].bit == STRATA_RAFT_MUT_NO_PREVOTE || i % 4 == 0;
                result_t r = run_schedule(n, s, mutant_names[m].bit, flap);
                if (!r.ok) {
                    caught = i + 1;
                    at_seed = s;
                }
            }
            if (caught)
                printf("%-24s %-20" PRIu64 " 0x%-19" PRIx64 " %s\n", mutant_names[m].name, caught,
                       at_seed, W.why);
            else {
                printf("%-24s SURVIVED %" PRIu64 " schedules (base seed 0x%" PRIx64 ")\n",
                       mutant_names[m].name, mutant_limit, seed);
                failed = 1;
            }
        }
        return failed;
    }

    double t0 = wall();
    uint64_t *elections = calloc(schedules, sizeof *elections), steps = 0, n_el = 0;
    uint64_t *failovers = calloc(schedules, sizeof *failovers);
    for (uint64_t i = 0; i < schedules; i++) {
        uint64_t s = replay ? seed : seed_of(seed, i);
        int n = nodes ? nodes : (i % 2 ? 5 : 3);
        result_t r = run_schedule(n, s, 0, i % 4 == 0);
        steps += r.steps;
        if (!r.ok) {
            fprintf(stderr,
                    "sim: schedule %" PRIu64 " (%d nodes) failed: %s\n"
                    "replay: STRATA_TEST_SEED=0x%" PRIx64 " %s --nodes %d -v\n",
                    i, n, W.why, s, argv[0], n);
            return 1;
        }
        failovers[n_el] = r.failover_ns;
        elections[n_el++] = r.election_ns;
    }
    double secs = wall() - t0;
    qsort(elections, n_el, sizeof *elections, cmp_u64);
    qsort(failovers, n_el, sizeof *failovers, cmp_u64);
    printf("sim: %" PRIu64 " schedules (%s nodes, base seed 0x%" PRIx64 ") in %.1f s: %.0f "
           "schedules/s, %" PRIu64 " steps, 0 violations\n",
           schedules,
           nodes == 3   ? "3"
           : nodes == 5 ? "5"
                        : "3 and 5",
           seed, secs, (double)schedules / secs, steps);
    printf("sim: heal to first commit of a new leader (simulated): p50 %.0f ms, p99 %.0f ms, max "
           "%.0f ms; acknowledged %" PRIu64 " in the last schedule\n",
           (double)elections[n_el / 2] / 1e6, (double)elections[n_el * 99 / 100] / 1e6,
           (double)elections[n_el - 1] / 1e6, W.acked);
    printf("sim: leader killed on a quiet network, to its successor's first commit (simulated, "
           "election timeout %.0f-%.0f ms): p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
           (double)ET_MIN / 1e6, (double)ET_MAX / 1e6, (double)failovers[n_el / 2] / 1e6,
           (double)failovers[n_el * 99 / 100] / 1e6, (double)failovers[n_el - 1] / 1e6);
    free(elections);
    free(failovers);
    reset_world(3, 1, 0);
    return 0;
}
