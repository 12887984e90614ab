/* stratactl's shared pieces: the per-run state every verb handler gets,
 * the verb row of main.c's table, the output helpers of output.c and the
 * handlers of data.c and node.c. Private to services/ctl. */
#ifndef STRATACTL_H
#define STRATACTL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "strata/client.h"

/* The exit codes scripts see; --help lists them from s_exit_codes. */
enum {
    CTL_OK = 0,
    CTL_NOT_FOUND = 1,
    CTL_USAGE = 2,
    CTL_FAILED = 3,      /* the server (or the record validation it runs) said no */
    CTL_UNREACHABLE = 4, /* no reply in time */
};

#define MAX_RECORD_FIELDS 64
#define MAX_SCAN_PAGE     STRATA_PROTO_MAX_SCAN_LIMIT

/* Verb flags a row may accept; global flags are accepted everywhere. The
 * bits index s_flag_names. */
enum {
    FLAG_LIMIT = 1u << 0,
    FLAG_PAGE = 1u << 1,
    FLAG_RECORD = 1u << 2,
    FLAG_FROM = 1u << 3,
    FLAG_FROM_TIME = 1u << 4,
    FLAG_DELAYED = 1u << 5,
    FLAG_DURABLE = 1u << 6,
    FLAG_COUNT = 1u << 7,
    FLAG_LIVE_EP = 1u << 8,
    FLAG_DELAYED_EP = 1u << 9,
    FLAG_HISTORY_EP = 1u << 10,
    FLAG_DIR = 1u << 11,
    FLAG_SNAPSHOT = 1u << 12,
    FLAG_LEVEL = 1u << 13,
    FLAG_RANGE = 1u << 14,
};
#define FLAGS_DISTRIBUTOR (FLAG_LIVE_EP | FLAG_DELAYED_EP | FLAG_HISTORY_EP | FLAG_DIR)

typedef struct verb verb_t;

typedef struct {
    const char *endpoint;
    int timeout_ms;
    bool json;
    bool quiet;
    strata_durability_t durability;
    unsigned flags_given;                          /* FLAG_* seen on the command line */
    uint64_t limit;                                /* scan --limit; 0: none */
    uint32_t page;                                 /* scan --page; 0: the server's default */
    bool record;                                   /* get --record */
    uint64_t from_seq;                             /* tail --from */
    uint64_t from_time_ns;                         /* tail --from-time */
    bool delayed;                                  /* tail --delayed */
    const char *durable;                           /* tail --durable */
    uint64_t count;                                /* tail --count; 0: until interrupted */
    const char *live_ep, *delayed_ep, *history_ep; /* distributor endpoints given as flags */
    const char *dir;      /* --dir: a data dir holding distributor.endpoints */
    const char *snapshot; /* backup --snapshot: a name under snapshots/ or a path */
    int level;            /* compact --level; -1: every level */
    const char *range;    /* compact --range lo..hi */
    const verb_t *verb;
    const char *verb_word; /* as typed, for messages before the verb is known */
    strata_client_t *client;
    cJSON *doc; /* the --json document a handler fills */
} ctl_t;

typedef int(verb_fn)(ctl_t *ctl, int argc, char **argv);

struct verb {
    const char *name;
    int min_args;
    int max_args;
    unsigned flags; /* FLAG_* this verb accepts */
    bool needs_server;
    const char *args_usage;
    const char *summary;
    verb_fn *handler;
    bool json_lines;     /* --json prints one object per line, not one document */
    const char *details; /* more help for `VERB --help`; may be NULL */
};

/* data.c: put, get, del, scan, record put/get, tail; node.c: status, stats,
 * subscribers, snapshot(s), backup, restore, verify, compact. */
verb_fn verb_put, verb_get, verb_del, verb_scan, verb_status, verb_stats, verb_record_put,
    verb_record_get, verb_tail, verb_subscribers, verb_snapshot, verb_snapshots, verb_backup,
    verb_restore, verb_verify, verb_compact;

/* ---- output.c --------------------------------------------------------------- */

void *ctl_xmalloc(size_t size);
void ctl_print_bytes(FILE *out, const void *data, size_t len);
const char *ctl_escape(char *buf, size_t cap, const void *data, size_t len);
cJSON *ctl_json_bytes(const void *data, size_t len);
void ctl_json_add_u64(cJSON *obj, const char *name, uint64_t value);
cJSON *ctl_doc(ctl_t *ctl);
int ctl_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ctl_fail_call(ctl_t *ctl, int rc, const strata_error_t *err);
strata_bytes_t ctl_arg_bytes(const char *arg);

/* ---- data.c: where the distributor listens (tail, subscribers) ---------------- */

typedef struct {
    char live[256], delayed[256], history[256];
} dist_endpoints_t;

int ctl_distributor_endpoints(ctl_t *ctl, dist_endpoints_t *eps);

#endif
