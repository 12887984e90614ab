/* The consensus core: Raft over the WAL, as a pure state machine.
 *
 * The host (the writer, or the simulator in tests/sim) feeds it events
 * (a tick with its monotonic time, a received message, entries it
 * appended, what became durable, a snapshot it installed) and carries
 * out the actions it returns, in order (persist term and vote, append or
 * truncate log entries, send a message, commit, role change). The core
 * never reads a clock, touches a file or a socket, and allocates only in
 * strata_raft_new. The Raft index is the WAL seq and the term is the WAL
 * entry's term. The rules, the transition table and where each rule is
 * enforced are in lib/raft/raft.md. */
#ifndef STRATA_RAFT_H
#define STRATA_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/err.h"

#define STRATA_RAFT_MAX_NODES   8u   /* voters and learners together */
#define STRATA_RAFT_MAX_NODE_ID 255u /* node ids are 1..255, what the peer codec carries */
#define STRATA_RAFT_MAX_ACTIONS 64u  /* per event, at most */
#define STRATA_RAFT_MAX_ENTRIES 256u /* per append message, at most */

typedef enum {
    STRATA_RAFT_FOLLOWER = 0,
    STRATA_RAFT_PRECANDIDATE,
    STRATA_RAFT_CANDIDATE,
    STRATA_RAFT_LEADER,
    STRATA_RAFT_LEARNER, /* copies the log, never votes or campaigns */
} strata_raft_role_t;

typedef enum {
    STRATA_RAFT_MSG_VOTE = 1,      /* term, last_seq, last_term, pre_vote, transfer */
    STRATA_RAFT_MSG_VOTE_REPLY,    /* term, granted, pre_vote */
    STRATA_RAFT_MSG_APPEND,        /* term, prev_seq, prev_term, commit_seq, entries, ctx */
    STRATA_RAFT_MSG_APPEND_REPLY,  /* term, ok, match_seq or hint_seq/hint_term, ctx */
    STRATA_RAFT_MSG_TIMEOUT_NOW,   /* term: campaign at once (leadership transfer) */
    STRATA_RAFT_MSG_SNAPSHOT_OFFER /* term, snap_seq, snap_term, ctx: the log you need is gone */
} strata_raft_msg_type_t;

/* The core looks only at seq and term; data is the host's (the simulator
 * keeps a value there, the writer the entry's place in its WAL). */
typedef struct {
    uint64_t seq, term;
    uint64_t data;
} strata_raft_entry_t;

typedef struct {
    strata_raft_msg_type_t type;
    uint32_t from, to;
    uint64_t term;
    uint64_t incarnation; /* the sender's: a node whose disk was replaced has a new one */
    /* vote */
    uint64_t last_seq, last_term;
    bool pre_vote, transfer, granted;
    /* append; in an append the core asks the host to send, entries is NULL
     * and n_entries says how many the host attaches from its log, from
     * prev_seq + 1 */
    uint64_t prev_seq, prev_term, commit_seq;
    const strata_raft_entry_t *entries;
    uint32_t n_entries;
    /* append reply */
    bool ok;
    uint64_t match_seq; /* ok: the sender's log matches the leader's up to here, durably */
    uint64_t hint_seq, hint_term; /* !ok: retry from hint_seq (its term there is hint_term) */
    /* append and offer: the leader's send time; append reply: the one of
     * the leader's messages it answers, echoed (a majority's echo starts
     * the read lease) */
    uint64_t ctx;
    /* snapshot offer */
    uint64_t snap_seq, snap_term;
} strata_raft_msg_t;

typedef enum {
    /* Make term and vote durable (file and directory) before any later
     * action of the same batch: no message of a term leaves before it. */
    STRATA_RAFT_ACT_PERSIST_META = 1,
    /* Remove every entry with seq > seq (they go to rollback/). */
    STRATA_RAFT_ACT_TRUNCATE,
    /* Append entries[0..n) (contiguous, after the log's last); a leader's
     * no-op comes this way too. Durability is reported back with
     * strata_raft_persisted. */
    STRATA_RAFT_ACT_APPEND,
    STRATA_RAFT_ACT_SEND,
    STRATA_RAFT_ACT_COMMIT, /* every entry up to seq is committed */
    STRATA_RAFT_ACT_ROLE,   /* role, term, leader changed */
    /* Install the leader's snapshot at (snap_seq, snap_term), then call
     * strata_raft_snapshot_installed. */
    STRATA_RAFT_ACT_FETCH_SNAPSHOT,
} strata_raft_act_type_t;

typedef struct {
    strata_raft_act_type_t type;
    uint64_t term, seq;                 /* persist_meta: term; truncate: seq; commit: seq */
    uint32_t vote;                      /* persist_meta */
    const strata_raft_entry_t *entries; /* append: valid until the next event */
    uint32_t n_entries;
    strata_raft_msg_t msg;   /* send */
    strata_raft_role_t role; /* role */
    uint32_t leader;         /* role: 0 when none is known */
    uint64_t snap_seq, snap_term;
} strata_raft_act_t;

/* Simulator-only planted bugs (the core is built with them only when
 * STRATA_RAFT_MUTANTS is defined; tests/sim checks that each is caught). */
enum {
    STRATA_RAFT_MUT_VOTE_NO_LOG_CHECK = 1u << 0,
    STRATA_RAFT_MUT_COMMIT_OLD_TERM = 1u << 1,
    STRATA_RAFT_MUT_ACK_BEFORE_FSYNC = 1u << 2,
    STRATA_RAFT_MUT_VOTE_UNPERSISTED = 1u << 3,
    STRATA_RAFT_MUT_NO_TRUNCATE = 1u << 4,
    STRATA_RAFT_MUT_LEADER_COUNTS_UNSYNCED = 1u << 5,
    STRATA_RAFT_MUT_NO_PREVOTE = 1u << 6,
    STRATA_RAFT_MUT_LONG_LEASE = 1u << 7,
};

typedef struct {
    uint32_t id; /* this node; every id here is 1..255 and appears once */
    uint32_t n_voters;
    uint32_t voters[STRATA_RAFT_MAX_NODES];
    uint32_t n_learners;
    uint32_t learners[STRATA_RAFT_MAX_NODES];
    uint64_t heartbeat_ns;
    uint64_t election_min_ns, election_max_ns; /* randomized in [min, max) */
    uint64_t lease_ns;     /* < election_min_ns * (1 - max_drift); 0: no read lease */
    uint64_t seed;         /* for the randomized timeouts */
    uint32_t max_entries;  /* per append message, <= STRATA_RAFT_MAX_ENTRIES */
    uint32_t max_inflight; /* append messages unanswered per follower */
    uint32_t mutants;      /* STRATA_RAFT_MUT_*; 0 outside the simulator */
} strata_raft_config_t;

/* What the host recovered: term, vote and incarnation from the metadata
 * file (fresh: there was none, the disk is new), and the WAL: its first
 * entry's predecessor (snap_seq, snap_term: 0 for a log from the start),
 * and the term of every run of entries. */
typedef struct {
    uint64_t term;
    uint32_t vote;
    uint64_t incarnation;
    bool fresh;
    uint64_t snap_seq, snap_term;
    uint64_t last_seq;
    const uint64_t *run_first_seq; /* run i holds seqs [run_first_seq[i], next run's) */
    const uint64_t *run_term;
    size_t n_runs;
    uint64_t commit_seq; /* known committed (0 is always safe) */
} strata_raft_state_t;

typedef struct strata_raft strata_raft_t;

/* Returns NULL on a bad config or state (STRATA_EINVAL, err naming the
 * field and its value) or out of memory (STRATA_ENOMEM). */
strata_raft_t *strata_raft_new(const strata_raft_config_t *cfg, const strata_raft_state_t *st,
                               uint64_t now_ns, strata_error_t *err);
void strata_raft_free(strata_raft_t **r_p);

/* Events. Each returns the number of actions written to *acts (an array
 * the core owns, valid until the next event). */
size_t strata_raft_tick(strata_raft_t *r, uint64_t now_ns, const strata_raft_act_t **acts);
size_t strata_raft_recv(strata_raft_t *r, const strata_raft_msg_t *m, uint64_t now_ns,
                        const strata_raft_act_t **acts);
/* The leader's host appended entries after its last, in the current term,
 * up to last_seq (not yet durable). Returns 0 actions and sets *ok false
 * when this node is not the leader. */
size_t strata_raft_propose(strata_raft_t *r, uint64_t last_seq, uint64_t now_ns, bool *ok,
                           const strata_raft_act_t **acts);
/* Entries up to seq, whose term there is term, are durable. */
size_t strata_raft_persisted(strata_raft_t *r, uint64_t term, uint64_t seq, uint64_t now_ns,
                             const strata_raft_act_t **acts);
/* The log now starts after (seq, term): a snapshot was installed. */
size_t strata_raft_snapshot_installed(strata_raft_t *r, uint64_t seq, uint64_t term,
                                      uint64_t now_ns, const strata_raft_act_t **acts);
/* The host dropped entries up to seq (retention): a follower that needs
 * them gets a snapshot offer. */
void strata_raft_compacted(strata_raft_t *r, uint64_t seq, uint64_t term);
/* Hands leadership to peer once it has caught up (TimeoutNow). */
size_t strata_raft_transfer(strata_raft_t *r, uint32_t peer, uint64_t now_ns,
                            const strata_raft_act_t **acts);

/* Queries. */
strata_raft_role_t strata_raft_role(const strata_raft_t *r);
uint64_t strata_raft_term(const strata_raft_t *r);
uint32_t strata_raft_leader(const strata_raft_t *r);
uint64_t strata_raft_commit(const strata_raft_t *r);
uint64_t strata_raft_last_seq(const strata_raft_t *r);
uint64_t strata_raft_durable_seq(const strata_raft_t *r);
/* The term of the entry at seq in this node's log, 0 when unknown. */
uint64_t strata_raft_term_at(const strata_raft_t *r, uint64_t seq);
/* A leader may answer reads locally until this time (its clock); 0: no
 * lease. Bounded by the election timeout, so no other leader can commit
 * before it ends as long as clocks run within the drift bound. */
uint64_t strata_raft_lease_until(const strata_raft_t *r);
uint64_t strata_raft_match(const strata_raft_t *r, uint32_t peer);
/* Whether strata_raft_propose would take entries now: a leader that is not
 * handing over (R8). The host checks before it appends client entries. */
bool strata_raft_accepts_proposals(const strata_raft_t *r);

const char *strata_raft_role_name(strata_raft_role_t role);
const char *strata_raft_msg_name(strata_raft_msg_type_t type);

#endif
