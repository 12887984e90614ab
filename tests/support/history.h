/* Client operation histories for the cluster fault tests: a thread-safe
 * writer that logs one JSON line per operation and a reader that loads a
 * file back, refusing any malformed line. history.md specifies the format;
 * checkers.h holds the checks run on a loaded history. */
#ifndef STRATA_TEST_HISTORY_H
#define STRATA_TEST_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TS_INVOKE, /* the client is about to send the operation */
    TS_OK,     /* it happened, once */
    TS_FAIL,   /* it definitely did not happen */
    TS_INFO    /* unknown (a timeout): it may take effect at any time after its
                * invoke; the process never invokes again */
} ts_op_type_t;

typedef enum {
    TS_APPEND, /* add value to the key's append-only list */
    TS_READ,   /* read the key: a list (append keys) or a register */
    TS_WRITE   /* set the key's register to value */
} ts_op_f_t;

/* What the v field holds. */
typedef enum {
    TS_V_NONE, /* no v: a read's invoke, fail or info */
    TS_V_INT,  /* value: an append's or write's value, or a register read */
    TS_V_NULL, /* a register read that found the key never written */
    TS_V_LIST  /* list, list_len: what a read of an append key returned */
} ts_value_kind_t;

/* One line of a history. An invoke and the next completion (ok, fail or
 * info) of the same process on the same key form one operation. */
typedef struct {
    int process;       /* p: the client thread, >= 0 */
    ts_op_type_t type; /* type */
    ts_op_f_t f;       /* f */
    const char *key;   /* k: not empty; the writer copies it out */
    ts_value_kind_t vkind;
    int64_t value;       /* v when vkind is TS_V_INT */
    const int64_t *list; /* v when vkind is TS_V_LIST, list_len ints */
    size_t list_len;
    uint64_t t;    /* monotonic ns (CLOCK_MONOTONIC); 0 when logged: the
                    * writer stamps it under its lock */
    int node;      /* the node that answered or was read, 1-based; 0 unknown */
    uint64_t term; /* the term the answer carried; 0 unknown */
    uint64_t seq;  /* the log seq of an ok write or append; 0 unknown */
} ts_op_t;

typedef struct ts_history ts_history_t;

/* Creates (truncates) path for writing; NULL with errno set on failure. */
ts_history_t *ts_history_open(const char *path);
/* Appends op as one line and flushes it, so a test that dies leaves every
 * line logged before. Safe from any thread; lines appear in call order and,
 * when the callers leave t 0, in t order. 0, or -1 with errno set. */
int ts_history_log(ts_history_t *self, const ts_op_t *op);
/* Flushes, closes and frees *self_p and nulls it; -1 with errno set when
 * the last flush or close failed. */
int ts_history_close(ts_history_t **self_p);

/* Room for any message ts_history_load writes. */
#define TS_HISTORY_ERRMAX 512

/* Reads the whole file at path into *ops (*n of them, in file order: op i
 * is line i + 1); the caller frees them with ts_history_free. On a line that
 * is not an operation as history.md specifies, or an I/O error, returns -1
 * and writes into errbuf (errcap bytes, TS_HISTORY_ERRMAX is enough) the
 * file, the line number and the field, e.g.
 * "h.jsonl:12: field \"v\": an append needs an integer". */
int ts_history_load(const char *path, ts_op_t **ops, size_t *n, char *errbuf, size_t errcap);
/* Frees what ts_history_load returned; NULL is fine. */
void ts_history_free(ts_op_t *ops, size_t n);

/* "invoke", "append", ...: the spellings of the JSON format. */
const char *ts_op_type_name(ts_op_type_t type);
const char *ts_op_f_name(ts_op_f_t f);

#endif
