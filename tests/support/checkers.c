/* See checkers.h and history.md. Out of memory aborts with a message: the
 * checks run in tests, where there is no one to hand an error to. */
#define _GNU_SOURCE
#include "checkers.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX

static const char *const problem_names[TS_N_PROBLEMS] = {
    "lost",           "unexpected",      "duplicated", "failed_but_present",
    "divergent",      "nonlinearizable", "unknown",    "two_masters",
    "ack_below_term", "rolled_back_ack", "malformed"};

const char *ts_problem_name(ts_problem_t kind)
{
    return (unsigned)kind < TS_N_PROBLEMS ? problem_names[kind] : "?";
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "checkers: out of memory for %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n, size_t size)
{
    p = reallocarray(p, n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "checkers: out of memory for %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

__attribute__((format(printf, 3, 4))) static void report(ts_report_t *r, ts_problem_t kind,
                                                         const char *fmt, ...)
{
    r->count[kind]++;
    if (!r->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->out, "%s: ", problem_names[kind]);
    vfprintf(r->out, fmt, ap);
    fputc('\n', r->out);
    va_end(ap);
}

/* Findings that are problems: everything but unknown. */
static size_t problems(const ts_report_t *r)
{
    size_t n = 0;
    for (int k = 0; k < TS_N_PROBLEMS; k++)
        n += k == TS_UNKNOWN ? 0 : r->count[k];
    return n;
}

/* A short list for a line ("node1 node3"), cut with "..." when long. */
typedef struct {
    char buf[200];
    size_t len;
} text_t;

__attribute__((format(printf, 2, 3))) static void text_add(text_t *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof t->buf - t->len) {
        memcpy(t->buf + sizeof t->buf - 4, "...", 4);
        t->len = sizeof t->buf - 1;
    } else {
        t->len += (size_t)n;
    }
}

static const char *key_of(const ts_op_t *op)
{
    return op->key ? op->key : "";
}

static int cmp_key_then_index(const void *a, const void *b, void *arg)
{
    const ts_op_t *ops = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(key_of(&ops[i]), key_of(&ops[j]));
    return c ? c : (i > j) - (i < j);
}

/* Indices of ops grouped by key, in history order within a key. */
static size_t *by_key(const ts_op_t *ops, size_t n)
{
    size_t *idx = xcalloc(n, sizeof *idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_key_then_index, (void *)ops);
    return idx;
}

/* The end of the group of idx[from] in an array from by_key. */
static size_t group_end(const ts_op_t *ops, const size_t *idx, size_t n, size_t from)
{
    size_t end = from + 1;
    while (end < n && !strcmp(key_of(&ops[idx[end]]), key_of(&ops[idx[from]])))
        end++;
    return end;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool holds(const int64_t *sorted, size_t n, int64_t v)
{
    return bsearch(&v, sorted, n, sizeof v, cmp_i64) != NULL;
}

/* ---- Pairing invokes with completions ---- */

/* One operation: an invoke and what became of it. */
typedef struct {
    size_t invoke;        /* history index of the invoke */
    size_t done;          /* history index of its completion; NONE when none */
    ts_op_type_t outcome; /* TS_OK, TS_FAIL or TS_INFO (also when never completed) */
} call_t;

static int cmp_process_then_index(const void *a, const void *b, void *arg)
{
    const ts_op_t *ops = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (ops[i].process != ops[j].process)
        return ops[i].process < ops[j].process ? -1 : 1;
    return (i > j) - (i < j);
}

static int cmp_call_invoke(const void *a, const void *b)
{
    size_t x = ((const call_t *)a)->invoke, y = ((const call_t *)b)->invoke;
    return (x > y) - (x < y);
}

static bool same_call(const ts_op_t *invoke, const ts_op_t *done)
{
    return invoke->f == done->f &&
           (done->f == TS_READ || (done->vkind == TS_V_INT && done->value == invoke->value));
}

/* The operations among one key's ops (idx[0..n)) whose f is in f_mask, in
 * invoke order; *calls is malloc'd. A completion without an invoke, or not
 * matching it, is malformed and dropped; an invoke left open is info. */
static size_t pair_calls(const ts_op_t *ops, const size_t *idx, size_t n, unsigned f_mask,
                         call_t **calls, ts_report_t *r)
{
    size_t *mine = xcalloc(n, sizeof *mine), m = 0, n_calls = 0;
    for (size_t i = 0; i < n; i++)
        if (f_mask & 1u << ops[idx[i]].f)
            mine[m++] = idx[i];
    qsort_r(mine, m, sizeof *mine, cmp_process_then_index, (void *)ops);
    *calls = xcalloc(m, sizeof **calls);
    size_t pending = NONE;
    for (size_t i = 0; i < m; i++) {
        const ts_op_t *op = &ops[mine[i]];
        if (i && op->process != ops[mine[i - 1]].process && pending != NONE) {
            (*calls)[n_calls++] = (call_t){pending, NONE, TS_INFO};
            pending = NONE;
        }
        if (op->type == TS_INVOKE) {
            if (pending != NONE) {
                report(r, TS_MALFORMED,
                       "key %s: p%d invokes again at line %zu while its invoke at line %zu is open",
                       key_of(op), op->process, mine[i] + 1, pending + 1);
                (*calls)[n_calls++] = (call_t){pending, NONE, TS_INFO};
            }
            pending = mine[i];
        } else if (pending == NONE) {
            report(r, TS_MALFORMED, "key %s: p%d's %s %s at line %zu completes no invoke",
                   key_of(op), op->process, ts_op_f_name(op->f), ts_op_type_name(op->type),
                   mine[i] + 1);
        } else if (!same_call(&ops[pending], op)) {
            report(r, TS_MALFORMED,
                   "key %s: p%d's %s %s at line %zu does not match its invoke at line %zu",
                   key_of(op), op->process, ts_op_f_name(op->f), ts_op_type_name(op->type),
                   mine[i] + 1, pending + 1);
            (*calls)[n_calls++] = (call_t){pending, NONE, TS_INFO};
            pending = NONE;
        } else {
            (*calls)[n_calls++] = (call_t){pending, mine[i], op->type};
            pending = NONE;
        }
    }
    if (pending != NONE)
        (*calls)[n_calls++] = (call_t){pending, NONE, TS_INFO};
    free(mine);
    qsort(*calls, n_calls, sizeof **calls, cmp_call_invoke);
    return n_calls;
}

/* ---- Append keys ---- */

typedef struct {
    int64_t value;
    int process;
    size_t invoke, done;
    ts_op_type_t outcome;
} appended_t;

static int cmp_appended(const void *a, const void *b)
{
    const appended_t *x = a, *y = b;
    return (x->value > y->value) - (x->value < y->value);
}

/* What the nodes' final reads of one key hold. */
typedef struct {
    int n_nodes;
    const int *nodes;
    const ts_op_t **read; /* per node: its final read, NULL when it has none */
    int64_t **sorted;     /* per node: its list, sorted */
} finals_t;

static size_t list_len(const finals_t *fin, int k)
{
    return fin->read[k] ? fin->read[k]->list_len : 0;
}

static const int64_t *list_of(const finals_t *fin, int k)
{
    return fin->read[k] ? fin->read[k]->list : NULL;
}

/* The nodes whose final list holds v (want true) or lacks it (want false). */
static int nodes_with(const finals_t *fin, int64_t v, bool want, text_t *t)
{
    int found = 0;
    for (int k = 0; k < fin->n_nodes; k++)
        if (holds(fin->sorted[k], list_len(fin, k), v) == want)
            text_add(t, "%snode%d", found++ ? " " : "", fin->nodes[k]);
    return found;
}

static void check_duplicates(const char *key, const finals_t *fin, ts_report_t *r)
{
    for (int k = 0; k < fin->n_nodes; k++) {
        const int64_t *s = fin->sorted[k];
        size_t len = list_len(fin, k);
        for (size_t i = 0, j; i < len; i = j) {
            for (j = i + 1; j < len && s[j] == s[i]; j++)
                ;
            if (j - i > 1)
                report(r, TS_DUPLICATED, "key %s value %" PRId64 " %zu times on node%d", key, s[i],
                       j - i, fin->nodes[k]);
        }
    }
}

static void check_unexpected(const char *key, const finals_t *fin, const appended_t *app,
                             size_t n_app, ts_report_t *r)
{
    size_t total = 0, n = 0;
    for (int k = 0; k < fin->n_nodes; k++)
        total += list_len(fin, k);
    int64_t *all = xcalloc(total, sizeof *all);
    for (int k = 0; k < fin->n_nodes; k++) {
        memcpy(all + n, fin->sorted[k], list_len(fin, k) * sizeof *all);
        n += list_len(fin, k);
    }
    qsort(all, n, sizeof *all, cmp_i64);
    for (size_t i = 0; i < n; i++) {
        if (i && all[i] == all[i - 1])
            continue;
        appended_t probe = {.value = all[i]};
        if (bsearch(&probe, app, n_app, sizeof *app, cmp_appended))
            continue;
        text_t t = {0};
        nodes_with(fin, all[i], true, &t);
        report(r, TS_UNEXPECTED, "key %s value %" PRId64 " on %s: no append of it was invoked", key,
               all[i], t.buf);
    }
    free(all);
}

static void check_divergence(const char *key, const finals_t *fin, ts_report_t *r)
{
    for (int a = 0; a < fin->n_nodes; a++)
        for (int b = a + 1; b < fin->n_nodes; b++) {
            const int64_t *la = list_of(fin, a), *lb = list_of(fin, b);
            size_t common =
                list_len(fin, a) < list_len(fin, b) ? list_len(fin, a) : list_len(fin, b);
            for (size_t i = 0; i < common; i++)
                if (la[i] != lb[i]) {
                    report(r, TS_DIVERGENT,
                           "key %s: node%d and node%d differ at index %zu (%" PRId64 " vs %" PRId64
                           ")",
                           key, fin->nodes[a], fin->nodes[b], i, la[i], lb[i]);
                    break;
                }
        }
}

/* The appends of one key, by value; a value appended twice is malformed
 * and counts by its strongest outcome (ok, then info, then fail). */
static size_t collect_appends(const ts_op_t *ops, const size_t *idx, size_t n, appended_t **out,
                              ts_report_t *r)
{
    call_t *calls;
    size_t n_calls = pair_calls(ops, idx, n, 1u << TS_APPEND, &calls, r);
    appended_t *app = xcalloc(n_calls, sizeof *app);
    for (size_t i = 0; i < n_calls; i++) {
        const ts_op_t *inv = &ops[calls[i].invoke];
        app[i] = (appended_t){inv->value, inv->process, calls[i].invoke, calls[i].done,
                              calls[i].outcome};
    }
    free(calls);
    qsort(app, n_calls, sizeof *app, cmp_appended);
    static const int strength[] = {[TS_OK] = 2, [TS_INFO] = 1, [TS_FAIL] = 0};
    size_t m = 0;
    for (size_t i = 0; i < n_calls; i++) {
        if (m && app[m - 1].value == app[i].value) {
            report(r, TS_MALFORMED, "key %s: value %" PRId64 " appended twice (lines %zu and %zu)",
                   key_of(&ops[app[i].invoke]), app[i].value, app[m - 1].invoke + 1,
                   app[i].invoke + 1);
            if (strength[app[i].outcome] > strength[app[m - 1].outcome])
                app[m - 1] = app[i];
            continue;
        }
        app[m++] = app[i];
    }
    *out = app;
    return m;
}

static void check_append_key(const char *key, const ts_op_t *ops, const size_t *idx, size_t n,
                             const finals_t *fin, ts_report_t *r)
{
    appended_t *app;
    size_t n_app = collect_appends(ops, idx, n, &app, r);
    check_duplicates(key, fin, r);
    check_unexpected(key, fin, app, n_app, r);
    for (size_t i = 0; i < n_app; i++) {
        const appended_t *a = &app[i];
        text_t t = {0};
        if (a->outcome == TS_FAIL && nodes_with(fin, a->value, true, &t))
            report(r, TS_FAILED_BUT_PRESENT,
                   "key %s value %" PRId64 " (append by p%d failed at line %zu) on %s", key,
                   a->value, a->process, a->done + 1, t.buf);
        if (a->outcome == TS_OK && nodes_with(fin, a->value, false, &t))
            report(r, TS_LOST,
                   "key %s value %" PRId64 " (appended by p%d, ok at line %zu) missing on %s", key,
                   a->value, a->process, a->done + 1, t.buf);
    }
    check_divergence(key, fin, r);
    free(app);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static bool is_final_read(const ts_op_t *op)
{
    return op->f == TS_READ && op->type == TS_OK && op->vkind == TS_V_LIST && op->node > 0;
}

/* Fills fin with the final reads of one key (fidx[0..n)). */
static void gather_finals(const ts_op_t *reads, const size_t *fidx, size_t n, finals_t *fin,
                          ts_report_t *r)
{
    for (int k = 0; k < fin->n_nodes; k++)
        fin->read[k] = NULL;
    for (size_t i = 0; i < n; i++) {
        const ts_op_t *op = &reads[fidx[i]];
        const int *at = bsearch(&op->node, fin->nodes, (size_t)fin->n_nodes, sizeof *at, cmp_int);
        int k = (int)(at - fin->nodes);
        if (fin->read[k])
            report(r, TS_MALFORMED, "key %s: node%d has two final reads (%zu and %zu)", key_of(op),
                   op->node, (size_t)(fin->read[k] - reads), fidx[i]);
        fin->read[k] = op;
    }
    for (int k = 0; k < fin->n_nodes; k++) {
        size_t len = list_len(fin, k);
        fin->sorted[k] = xrealloc(fin->sorted[k], len, sizeof **fin->sorted);
        if (len)
            memcpy(fin->sorted[k], list_of(fin, k), len * sizeof **fin->sorted);
        qsort(fin->sorted[k], len, sizeof **fin->sorted, cmp_i64);
    }
}

size_t ts_check_appends(const ts_op_t *history, size_t n, const ts_op_t *final_reads,
                        size_t n_reads, ts_report_t *r)
{
    size_t before = problems(r);
    size_t *hidx = by_key(history, n);
    /* the final reads, the odd ones out reported and left out */
    size_t *fidx_all = by_key(final_reads, n_reads), *fidx = xcalloc(n_reads, sizeof *fidx);
    size_t nf = 0;
    int *nodes = xcalloc(n_reads, sizeof *nodes), n_nodes = 0;
    for (size_t i = 0; i < n_reads; i++) {
        const ts_op_t *op = &final_reads[fidx_all[i]];
        if (!is_final_read(op)) {
            report(r, TS_MALFORMED, "final read %zu (key %s): not an ok read of a list with a node",
                   fidx_all[i], key_of(op));
            continue;
        }
        fidx[nf++] = fidx_all[i];
        nodes[n_nodes++] = op->node;
    }
    free(fidx_all);
    qsort(nodes, (size_t)n_nodes, sizeof *nodes, cmp_int);
    int distinct = 0;
    for (int i = 0; i < n_nodes; i++)
        if (!distinct || nodes[distinct - 1] != nodes[i])
            nodes[distinct++] = nodes[i];
    finals_t fin = {.n_nodes = distinct,
                    .nodes = nodes,
                    .read = xcalloc((size_t)distinct, sizeof *fin.read),
                    .sorted = xcalloc((size_t)distinct, sizeof *fin.sorted)};
    bool warned_no_nodes = false;
    /* walk the keys of both in strcmp order */
    for (size_t h = 0, f = 0; h < n || f < nf;) {
        int c = h == n    ? 1
                : f == nf ? -1
                          : strcmp(key_of(&history[hidx[h]]), key_of(&final_reads[fidx[f]]));
        size_t h_end = c <= 0 ? group_end(history, hidx, n, h) : h;
        size_t f_end = c >= 0 ? group_end(final_reads, fidx, nf, f) : f;
        bool appends = f_end > f;
        for (size_t i = h; i < h_end && !appends; i++)
            appends = history[hidx[i]].f == TS_APPEND;
        if (appends && !distinct && !warned_no_nodes) {
            report(r, TS_MALFORMED, "no final reads: nothing to check the appends against");
            warned_no_nodes = true;
        }
        if (appends && distinct) {
            const char *key = c <= 0 ? key_of(&history[hidx[h]]) : key_of(&final_reads[fidx[f]]);
            gather_finals(final_reads, fidx + f, f_end - f, &fin, r);
            check_append_key(key, history, hidx + h, h_end - h, &fin, r);
        }
        h = h_end;
        f = f_end;
    }
    for (int k = 0; k < distinct; k++)
        free(fin.sorted[k]);
    free(fin.sorted);
    free(fin.read);
    free(nodes);
    free(fidx);
    free(hidx);
    return problems(r) - before;
}

/* ---- Register keys: Wing-Gong-Lowe search ---- */

typedef struct {
    bool write;
    bool null;     /* a read that found no write */
    bool open;     /* a write of unknown outcome: may apply after its invoke, or never */
    int64_t value; /* written, or read */
    int process;
    size_t invoke, done; /* history indices; done NONE when never completed */
} reg_op_t;

typedef struct {
    bool null;
    int64_t value;
} reg_state_t;

/* The (linearized set, state) pairs the search has been in: each a row of
 * words bitset words then the value then the null flag, in one arena, found
 * through an open-addressed table of row numbers + 1. */
typedef struct {
    size_t words, row;
    uint64_t *arena;
    size_t count, cap;
    size_t *slots, n_slots;
} memo_t;

static uint64_t memo_hash(const uint64_t *row, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < len; i++) {
        h ^= row[i];
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    return h;
}

static void memo_place(memo_t *m, size_t row_no)
{
    const uint64_t *row = m->arena + row_no * m->row;
    size_t s = memo_hash(row, m->row) & (m->n_slots - 1);
    while (m->slots[s])
        s = (s + 1) & (m->n_slots - 1);
    m->slots[s] = row_no + 1;
}

/* 1 when new (and now remembered), 0 when seen before, -1 when the memo
 * already holds limit rows. */
static int memo_insert(memo_t *m, const uint64_t *lin, reg_state_t st, size_t limit)
{
    uint64_t probe[m->row];
    memcpy(probe, lin, m->words * sizeof *lin);
    probe[m->words] = (uint64_t)st.value;
    probe[m->words + 1] = st.null;
    size_t s = memo_hash(probe, m->row) & (m->n_slots - 1);
    for (; m->slots[s]; s = (s + 1) & (m->n_slots - 1))
        if (!memcmp(m->arena + (m->slots[s] - 1) * m->row, probe, sizeof probe))
            return 0;
    if (m->count >= limit)
        return -1;
    if (m->count == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->arena = xrealloc(m->arena, m->cap * m->row, sizeof *m->arena);
    }
    memcpy(m->arena + m->count * m->row, probe, sizeof probe);
    m->count++;
    if (2 * m->count <= m->n_slots) {
        m->slots[s] = m->count;
        return 1;
    }
    free(m->slots);
    m->n_slots *= 2;
    m->slots = xcalloc(m->n_slots, sizeof *m->slots);
    for (size_t i = 0; i < m->count; i++)
        memo_place(m, i);
    return 1;
}

typedef enum { LINEARIZABLE, VIOLATION, GAVE_UP } search_result_t;

/* Where the search got furthest before it had to back out: the op whose
 * completion came while it was still unordered, and the register then. */
typedef struct {
    size_t depth, op;
    reg_state_t state;
    size_t states;
} search_trace_t;

typedef struct {
    size_t *next, *prev; /* a doubly linked list of entries; 0 is the head */
} entries_t;

/* Entry 2k+1 is op k's call, 2k+2 its return. Lifting takes both out of
 * the list; unlifting puts them back, in the reverse order. */
static void lift(entries_t *e, size_t call)
{
    for (size_t x = call; x <= call + 1; x++) {
        e->next[e->prev[x]] = e->next[x];
        e->prev[e->next[x]] = e->prev[x];
    }
}

static void unlift(entries_t *e, size_t call)
{
    for (size_t x = call + 1; x >= call; x--) {
        e->next[e->prev[x]] = x;
        e->prev[e->next[x]] = x;
    }
}

typedef struct {
    size_t pos, entry;
} event_t;

static int cmp_event(const void *a, const void *b)
{
    const event_t *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return (x->entry > y->entry) - (x->entry < y->entry);
}

static search_result_t wgl(const reg_op_t *ops, size_t m, size_t max_states, search_trace_t *tr)
{
    entries_t e = {xcalloc(2 * m + 1, sizeof *e.next), xcalloc(2 * m + 1, sizeof *e.prev)};
    event_t *ev = xcalloc(2 * m, sizeof *ev);
    size_t remaining = 0;
    for (size_t k = 0; k < m; k++) {
        ev[2 * k] = (event_t){ops[k].invoke, 2 * k + 1};
        /* an open write's return is after everything: it may apply any time */
        ev[2 * k + 1] = (event_t){ops[k].open ? NONE : ops[k].done, 2 * k + 2};
        remaining += !ops[k].open;
    }
    qsort(ev, 2 * m, sizeof *ev, cmp_event);
    size_t last = 0;
    for (size_t i = 0; i < 2 * m; i++) {
        e.next[last] = ev[i].entry;
        e.prev[ev[i].entry] = last;
        last = ev[i].entry;
    }
    e.next[last] = 0;
    e.prev[0] = last;
    free(ev);

    memo_t memo = {.words = (m + 63) / 64, .n_slots = 1024};
    memo.row = memo.words + 2;
    memo.slots = xcalloc(memo.n_slots, sizeof *memo.slots);
    uint64_t *lin = xcalloc(memo.words, sizeof *lin);
    struct {
        size_t call;
        reg_state_t state;
    } *stack = xcalloc(m, sizeof *stack);
    size_t depth = 0;
    reg_state_t state = {.null = true};
    search_result_t result = LINEARIZABLE;
    *tr = (search_trace_t){0};
    bool traced = false;
    size_t entry = e.next[0];
    /* Open writes need not take effect: done when every other op is ordered. */
    while (remaining > 0) {
        /* an op still to order has its return ahead, so the walk meets it first */
        assert(entry != 0);
        if (entry % 2 == 1) {
            const reg_op_t *op = &ops[entry / 2];
            size_t k = entry / 2;
            reg_state_t after = op->write ? (reg_state_t){false, op->value} : state;
            bool fits =
                op->write || (op->null ? state.null : !state.null && state.value == op->value);
            if (fits) {
                lin[k / 64] |= 1ull << (k % 64);
                int fresh = memo_insert(&memo, lin, after, max_states);
                if (fresh < 0) {
                    result = GAVE_UP;
                    break;
                }
                if (fresh) {
                    stack[depth].call = entry;
                    stack[depth++].state = state;
                    state = after;
                    remaining -= !op->open;
                    lift(&e, entry);
                    entry = e.next[0];
                    continue;
                }
                lin[k / 64] &= ~(1ull << (k % 64));
            }
            entry = e.next[entry];
            continue;
        }
        /* a return reached with its call unordered: back out the last choice */
        if (!traced || depth > tr->depth) {
            *tr = (search_trace_t){depth, entry / 2 - 1, state, 0};
            traced = true;
        }
        if (depth == 0) {
            result = VIOLATION;
            break;
        }
        size_t call = stack[--depth].call, k = call / 2;
        state = stack[depth].state;
        lin[k / 64] &= ~(1ull << (k % 64));
        remaining += !ops[k].open;
        unlift(&e, call);
        entry = e.next[call];
    }
    tr->states = memo.count;
    free(stack);
    free(lin);
    free(memo.slots);
    free(memo.arena);
    free(e.next);
    free(e.prev);
    return result;
}

static void describe(text_t *t, const reg_op_t *op)
{
    if (op->write)
        text_add(t, "the write of %" PRId64, op->value);
    else if (op->null)
        text_add(t, "the read of null");
    else
        text_add(t, "the read of %" PRId64, op->value);
    if (op->done != NONE)
        text_add(t, " by p%d (lines %zu-%zu)", op->process, op->invoke + 1, op->done + 1);
    else
        text_add(t, " by p%d (line %zu, never completed)", op->process, op->invoke + 1);
}

static void check_register_key(const char *key, const ts_op_t *ops, const size_t *idx, size_t n,
                               size_t max_states, ts_report_t *r)
{
    call_t *calls;
    size_t n_calls = pair_calls(ops, idx, n, 1u << TS_READ | 1u << TS_WRITE, &calls, r), m = 0;
    reg_op_t *reg = xcalloc(n_calls, sizeof *reg);
    for (size_t i = 0; i < n_calls; i++) {
        const call_t *c = &calls[i];
        const ts_op_t *inv = &ops[c->invoke];
        if (c->outcome == TS_FAIL || (inv->f == TS_READ && c->outcome != TS_OK))
            continue;
        reg_op_t *op = &reg[m];
        *op = (reg_op_t){.write = inv->f == TS_WRITE,
                         .open = c->outcome != TS_OK,
                         .value = inv->value,
                         .process = inv->process,
                         .invoke = c->invoke,
                         .done = c->done};
        if (!op->write) {
            const ts_op_t *got = &ops[c->done];
            if (got->vkind == TS_V_LIST) {
                report(r, TS_MALFORMED, "key %s: the read at line %zu returned a list", key,
                       c->done + 1);
                continue;
            }
            op->null = got->vkind == TS_V_NULL;
            op->value = got->value;
        }
        m++;
    }
    free(calls);
    search_trace_t tr;
    search_result_t res = wgl(reg, m, max_states, &tr);
    if (res == GAVE_UP) {
        report(r, TS_UNKNOWN,
               "key %s: the search passed %zu states over its %zu operations; not checked", key,
               tr.states, m);
    } else if (res == VIOLATION) {
        text_t what = {0};
        describe(&what, &reg[tr.op]);
        text_t held = {0};
        if (tr.state.null)
            text_add(&held, "null");
        else
            text_add(&held, "%" PRId64, tr.state.value);
        report(r, TS_NONLINEARIZABLE,
               "key %s: no order of its %zu operations explains %s; the furthest order places "
               "%zu of them and leaves the register at %s",
               key, m, what.buf, tr.depth, held.buf);
    }
    free(reg);
}

size_t ts_check_registers(const ts_op_t *history, size_t n, size_t max_states, ts_report_t *r)
{
    size_t before = problems(r);
    if (!max_states)
        max_states = TS_REGISTER_MAX_STATES;
    size_t *idx = by_key(history, n);
    for (size_t g = 0, end; g < n; g = end) {
        end = group_end(history, idx, n, g);
        bool appends = false, writes = false, scalar_reads = false;
        for (size_t i = g; i < end; i++) {
            const ts_op_t *op = &history[idx[i]];
            appends |= op->f == TS_APPEND;
            writes |= op->f == TS_WRITE;
            scalar_reads |= op->f == TS_READ && op->type == TS_OK &&
                            (op->vkind == TS_V_INT || op->vkind == TS_V_NULL);
        }
        const char *key = key_of(&history[idx[g]]);
        if (appends && writes)
            report(r, TS_MALFORMED, "key %s has both appends and writes", key);
        else if (!appends && (writes || scalar_reads))
            check_register_key(key, history, idx + g, end - g, max_states, r);
    }
    free(idx);
    return problems(r) - before;
}

/* ---- Logs, leaders and acks ---- */

static bool log_ascends(const ts_node_log_t *log)
{
    for (size_t i = 1; i < log->n; i++)
        if (log->entries[i].seq <= log->entries[i - 1].seq)
            return false;
    return true;
}

size_t ts_check_logs(const ts_node_log_t *logs, size_t n_logs, ts_report_t *r)
{
    size_t before = problems(r);
    bool *usable = xcalloc(n_logs, sizeof *usable);
    for (size_t i = 0; i < n_logs; i++) {
        usable[i] = log_ascends(&logs[i]);
        if (!usable[i])
            report(r, TS_MALFORMED, "node%d's log is not ascending by seq", logs[i].node);
    }
    for (size_t a = 0; a < n_logs; a++)
        for (size_t b = a + 1; b < n_logs && usable[a]; b++) {
            if (!usable[b])
                continue;
            const ts_node_log_t *x = &logs[a], *y = &logs[b];
            uint64_t upto = x->commit_seq < y->commit_seq ? x->commit_seq : y->commit_seq;
            for (size_t i = 0, j = 0; i < x->n && j < y->n;) {
                const ts_log_entry_t *ex = &x->entries[i], *ey = &y->entries[j];
                if (ex->seq > upto || ey->seq > upto)
                    break;
                if (ex->seq != ey->seq) {
                    ex->seq < ey->seq ? i++ : j++;
                    continue;
                }
                if (ex->term != ey->term || ex->crc != ey->crc) {
                    report(r, TS_DIVERGENT,
                           "node%d and node%d differ at seq %" PRIu64 " (term %" PRIu64
                           " crc %08" PRIx32 " vs term %" PRIu64 " crc %08" PRIx32 ")",
                           x->node, y->node, ex->seq, ex->term, ex->crc, ey->term, ey->crc);
                    break;
                }
                i++;
                j++;
            }
        }
    free(usable);
    return problems(r) - before;
}

static int cmp_leader(const void *a, const void *b)
{
    const ts_leader_t *x = a, *y = b;
    if (x->term != y->term)
        return x->term < y->term ? -1 : 1;
    return (x->node > y->node) - (x->node < y->node);
}

size_t ts_check_leaders(const ts_leader_t *leaders, size_t n, ts_report_t *r)
{
    size_t before = problems(r);
    ts_leader_t *sorted = xcalloc(n, sizeof *sorted);
    if (n)
        memcpy(sorted, leaders, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_leader);
    for (size_t i = 0, end; i < n; i = end) {
        text_t t = {0};
        int distinct = 0;
        for (end = i; end < n && sorted[end].term == sorted[i].term; end++)
            if (end == i || sorted[end].node != sorted[end - 1].node)
                text_add(&t, "%snode%d", distinct++ ? " " : "", sorted[end].node);
        if (sorted[i].term && distinct > 1)
            report(r, TS_TWO_MASTERS, "term %" PRIu64 " led by %s", sorted[i].term, t.buf);
    }
    free(sorted);
    return problems(r) - before;
}

static int cmp_entry_seq(const void *key, const void *elem)
{
    uint64_t seq = *(const uint64_t *)key, other = ((const ts_log_entry_t *)elem)->seq;
    return (seq > other) - (seq < other);
}

size_t ts_check_acks(const ts_op_t *history, size_t n, const ts_node_log_t *logs, size_t n_logs,
                     const ts_rollback_t *rollbacks, size_t n_rollbacks, ts_report_t *r)
{
    size_t before = problems(r);
    bool *usable = xcalloc(n_logs, sizeof *usable);
    for (size_t i = 0; i < n_logs; i++)
        usable[i] = log_ascends(&logs[i]);
    for (size_t b = 0; b < n_rollbacks; b++)
        if (!rollbacks[b].terms || rollbacks[b].last_seq < rollbacks[b].first_seq)
            report(r, TS_MALFORMED, "rollback %zu (node%d): no terms or an empty seq range", b,
                   rollbacks[b].node);
    for (size_t i = 0; i < n; i++) {
        const ts_op_t *op = &history[i];
        if (op->type != TS_OK || op->f == TS_READ || !op->seq || !op->term)
            continue;
        text_t what = {0};
        text_add(&what, "key %s value %" PRId64 " (%s by p%d, ok at line %zu)", key_of(op),
                 op->value, ts_op_f_name(op->f), op->process, i + 1);
        for (size_t l = 0; l < n_logs; l++) {
            if (!usable[l] || !logs[l].n || op->seq > logs[l].commit_seq)
                continue;
            const ts_log_entry_t *at =
                bsearch(&op->seq, logs[l].entries, logs[l].n, sizeof *at, cmp_entry_seq);
            if (!at)
                continue;
            if (at->term != op->term)
                report(r, TS_ACK_BELOW_TERM,
                       "%s acknowledged seq %" PRIu64 " in term %" PRIu64
                       "; node%d's log holds term %" PRIu64 " there",
                       what.buf, op->seq, op->term, logs[l].node, at->term);
            break;
        }
        for (size_t b = 0; b < n_rollbacks; b++) {
            const ts_rollback_t *rb = &rollbacks[b];
            if (rb->terms && op->seq >= rb->first_seq && op->seq <= rb->last_seq &&
                rb->terms[op->seq - rb->first_seq] == op->term)
                report(r, TS_ROLLED_BACK_ACK,
                       "%s acknowledged seq %" PRIu64 " term %" PRIu64
                       ": node%d set it aside (seqs %" PRIu64 "-%" PRIu64 ")",
                       what.buf, op->seq, op->term, rb->node, rb->first_seq, rb->last_seq);
        }
    }
    free(usable);
    return problems(r) - before;
}

/* (key, value) pairs some final read holds, sorted for bsearch. */
typedef struct {
    const char *key;
    int64_t value;
} held_t;

static int cmp_held(const void *a, const void *b)
{
    const held_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->value > y->value) - (x->value < y->value);
}

size_t ts_check_async_appends(const ts_op_t *history, size_t n, const ts_op_t *final_reads,
                              size_t n_reads, const ts_window_t *windows, size_t n_windows,
                              size_t *excused, ts_report_t *report)
{
    size_t n_held = 0;
    for (size_t i = 0; i < n_reads; i++)
        if (final_reads[i].vkind == TS_V_LIST)
            n_held += final_reads[i].list_len;
    held_t *held = xcalloc(n_held ? n_held : 1, sizeof *held);
    n_held = 0;
    for (size_t i = 0; i < n_reads; i++)
        for (size_t j = 0; final_reads[i].vkind == TS_V_LIST && j < final_reads[i].list_len; j++)
            held[n_held++] = (held_t){key_of(&final_reads[i]), final_reads[i].list[j]};
    qsort(held, n_held, sizeof *held, cmp_held);
    ts_op_t *ops = xcalloc(n ? n : 1, sizeof *ops);
    memcpy(ops, history, n * sizeof *ops);
    size_t ex = 0;
    for (size_t i = 0; i < n; i++) {
        ts_op_t *op = &ops[i];
        if (op->type != TS_OK || op->f != TS_APPEND || op->vkind != TS_V_INT)
            continue;
        held_t want = {key_of(op), op->value};
        if (bsearch(&want, held, n_held, sizeof *held, cmp_held))
            continue;
        for (size_t w = 0; w < n_windows; w++)
            if (op->t >= windows[w].from && op->t <= windows[w].to) {
                /* lost as async mode allows: it did not happen */
                op->type = TS_FAIL;
                ex++;
                break;
            }
    }
    size_t found = ts_check_appends(ops, n, final_reads, n_reads, report);
    free(ops);
    free(held);
    if (excused)
        *excused = ex;
    return found;
}
