/* Offline checks of what a cluster fault test saw (history.h) and of the
 * nodes' logs afterwards. Each check writes one line per finding to a
 * report, starting with the finding's kind ("lost: key c1-3 value 7 ..."),
 * adds it to the report's counts, and returns how many problems it found.
 * history.md says what each kind means. Out of memory aborts with a message. */
#ifndef STRATA_TEST_CHECKERS_H
#define STRATA_TEST_CHECKERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "history.h"

typedef enum {
    TS_LOST,               /* an ok append missing from a node's final read */
    TS_UNEXPECTED,         /* a value read that no append of that key invoked */
    TS_DUPLICATED,         /* a value twice in one read */
    TS_FAILED_BUT_PRESENT, /* a failed append's value read */
    TS_DIVERGENT,          /* two nodes' final lists, or committed logs, that disagree */
    TS_NONLINEARIZABLE,    /* a register key no order of its operations explains */
    TS_UNKNOWN,            /* a register key the search gave up on: not a problem */
    TS_TWO_MASTERS,        /* a term with two leaders */
    TS_ACK_BELOW_TERM,     /* an ack whose seq holds another term in the log */
    TS_ROLLED_BACK_ACK,    /* an acked (seq, term) a node set aside */
    TS_MALFORMED,          /* input the checks cannot read, e.g. an ok without an invoke */
    TS_N_PROBLEMS
} ts_problem_t;

typedef struct {
    FILE *out;                   /* where the lines go; NULL for none */
    size_t count[TS_N_PROBLEMS]; /* findings so far by kind; start it zeroed */
} ts_report_t;

/* "lost", "failed_but_present", ...: the word that starts a line. */
const char *ts_problem_name(ts_problem_t kind);

/* Append keys (keys with an append in history, or read as a list in
 * final_reads), each an append-only list of values unique per key.
 * final_reads: what every node held at the end, one op per (node, key) with
 * f TS_READ, type TS_OK, vkind TS_V_LIST and node set; a node missing a key
 * holds it empty. The nodes are those final_reads names. Finds lost,
 * unexpected and failed_but_present (one per key and value, naming the
 * nodes), duplicated (one per key, value and node) and divergent (one per
 * key and pair of nodes whose lists are not one a prefix of the other).
 * Reads inside history are not checked. */
size_t ts_check_appends(const ts_op_t *history, size_t n, const ts_op_t *final_reads,
                        size_t n_reads, ts_report_t *report);

/* A stretch of the history's clock (ts_op_t.t) around one fault. */
typedef struct {
    uint64_t from, to;
} ts_window_t;

/* ts_check_appends for writes acknowledged in async replication mode,
 * which a failover may lose, but only those acknowledged close to it: an
 * ok append whose value no final read holds, acknowledged (its ok's t)
 * inside one of windows, is taken as failed rather than lost and counted
 * in *excused (may be NULL); one outside every window is reported lost, as
 * are all other findings of ts_check_appends. */
size_t ts_check_async_appends(const ts_op_t *history, size_t n, const ts_op_t *final_reads,
                              size_t n_reads, const ts_window_t *windows, size_t n_windows,
                              size_t *excused, ts_report_t *report);

/* The search budget per key that max_states 0 selects: a few hundred
 * operations per key stay well inside it. */
#define TS_REGISTER_MAX_STATES 2000000

/* Register keys (writes, or reads returning an integer or null, and no
 * append), each checked for linearizability on its own: a read returns the
 * latest write, null before any. A fail is dropped; an info (or an invoke
 * never completed) write may take effect at any point after its invoke or
 * never; an info read is dropped. Finds nonlinearizable, one per key. A key
 * whose search visits more than max_states (linearized set, value) states
 * gets an unknown line and counts, but is not among the returned problems.
 * Memory: about max_states * (ops of the key / 8 + 48) bytes at worst.
 *
 * A register only sees the latest write: a write lost and then overwritten
 * (w1 ok, w2 ok, reads of 2 forever) is linearizable, with w1 ordered just
 * before w2. Losses like that show only in append histories, where
 * ts_check_appends reports the missing value as lost. */
size_t ts_check_registers(const ts_op_t *history, size_t n, size_t max_states, ts_report_t *report);

/* One committed log entry as a node holds it. */
typedef struct {
    uint64_t seq;  /* its log seq */
    uint64_t term; /* the term it was written in */
    uint32_t crc;  /* a checksum of its bytes, by the same function on every node */
} ts_log_entry_t;

/* A node's log after the test. */
typedef struct {
    int node;                      /* its id, 1-based */
    const ts_log_entry_t *entries; /* ascending by seq; it may start late (retention) */
    size_t n;                      /* how many entries */
    uint64_t commit_seq;           /* the node's commit seq: entries above it are not compared */
} ts_node_log_t;

/* Each pair of nodes, over the seqs both hold up to the lower of their
 * commit seqs: a divergent line at the first seq where term or crc differ.
 * A log not strictly ascending by seq is malformed and skipped. */
size_t ts_check_logs(const ts_node_log_t *logs, size_t n_logs, ts_report_t *report);

/* A node that was leader in a term (a role record); repeats are fine. */
typedef struct {
    uint64_t term; /* 0 is skipped */
    int node;
} ts_leader_t;

/* two_masters: one line per term that more than one node led, naming them. */
size_t ts_check_leaders(const ts_leader_t *leaders, size_t n, ts_report_t *report);

/* Entries a node cut from its log and set aside (its WAL's rollback/). */
typedef struct {
    int node;              /* the node that cut them */
    uint64_t first_seq;    /* the first entry cut */
    uint64_t last_seq;     /* the last entry cut */
    const uint64_t *terms; /* terms[i]: the term of entry first_seq + i */
} ts_rollback_t;

/* The ok writes and appends in history that carry both seq and term:
 * ack_below_term when the first log (in logs' order) that holds seq
 * committed holds it in another term; rolled_back_ack, once per ack and
 * rollback, when a rollback set aside that seq in that term. Acks whose seq
 * no log holds committed are not checked here (ts_check_appends sees loss). */
size_t ts_check_acks(const ts_op_t *history, size_t n, const ts_node_log_t *logs, size_t n_logs,
                     const ts_rollback_t *rollbacks, size_t n_rollbacks, ts_report_t *report);

#endif
