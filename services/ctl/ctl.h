/* stratactl's shared declarations: the command-line state a verb handler
 * gets, the verb row, exit codes, and the helpers the verb files share.
 * main.c holds the verb table and the command line; data.c the data verbs,
 * stream.c tail and subscribers, node.c snapshots, backup, restore,
 * compact and verify, dump.c the offline dump verbs and repair, cluster.c
 * the cluster verbs, output.c the printing and JSON helpers. */
#ifndef STRATA_CTL_H
#define STRATA_CTL_H

#include <cJSON.h>
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "strata/client.h"
#include "strata/entry.h"
#include "strata/record.h"
#include "strata/snapshot.h"
#include "strata/verify.h"
#include "strata/subscriber.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif

/* The exit codes scripts see; --help lists them from ctl_exit_codes. */
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
    FLAG_ROLE = 1u << 15,
    FLAG_SERVERS = 1u << 16,
    FLAG_CLUSTER = 1u << 17,
    FLAG_PROCESS = 1u << 18,
    FLAG_MAX_LAG = 1u << 19,
    FLAG_DISK_WARN = 1u << 20,
    FLAG_DISK_CRIT = 1u << 21,
    FLAG_STDIN = 1u << 22,
    FLAG_FILE = 1u << 23,
    FLAG_RAW = 1u << 24,
    FLAG_HEX = 1u << 25,
    FLAG_TO = 1u << 26,
    FLAG_STATS = 1u << 27,
    FLAG_DRY_RUN = 1u << 28,
    FLAG_CONTROL = 1u << 29,
};
#define FLAGS_CHECK (FLAG_DIR | FLAG_PROCESS | FLAG_MAX_LAG | FLAG_DISK_WARN | FLAG_DISK_CRIT)

/* check's defaults: the data dir strata-node and deploy/node.cfg use, a
 * probe short enough for a container healthcheck, and thresholds with room
 * for a compaction's temporary doubling. */
#define CTL_CHECK_DEFAULT_DIR   "./strata-data"
#define CTL_CHECK_TIMEOUT_MS    2000
#define CTL_CHECK_MAX_LAG_MS    5000
#define CTL_CHECK_DISK_WARN_PCT 80
#define CTL_CHECK_DISK_CRIT_PCT 90
/* check's exit codes are Nagios's, usage errors included (3, UNKNOWN). */
#define CTL_CHECK_UNKNOWN 3
#define FLAGS_CLUSTER     (FLAG_SERVERS | FLAG_CLUSTER)
#define FLAGS_DISTRIBUTOR (FLAG_LIVE_EP | FLAG_DELAYED_EP | FLAG_HISTORY_EP | FLAG_DIR)

typedef struct verb verb_t;

typedef struct {
    const char *endpoint;
    int timeout_ms;
    bool timeout_given;     /* --timeout was on the command line */
    const char *server_key; /* --server-key: CURVE, the server's key or certificate */
    const char *cert;       /* --cert: CURVE, this client's secret certificate */
    const char *role;       /* keygen --role */
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
    uint64_t to_seq;                               /* tail --to SEQ; 0: none */
    uint64_t to_time_ns;                           /* tail --to TIME; 0: none */
    bool from_stdin;                               /* -x, --stdin: put's value, batch's lines */
    const char *file;                              /* put --file: the value's file */
    bool raw;                                      /* --raw: the value's bytes exactly */
    bool hex;                                      /* --hex: keys and values as hex */
    bool stats;                                    /* dump sst --stats: properties only */
    bool dry_run;                                  /* repair --dry-run */
    const char *live_ep, *delayed_ep, *history_ep; /* distributor endpoints given as flags */
    const char *dir;        /* --dir: a data dir holding distributor.endpoints */
    const char *snapshot;   /* backup --snapshot: a name under snapshots/ or a path */
    const char *control;    /* snapshot, compact, backup --control: the process's endpoint */
    int level;              /* compact --level; -1: every level */
    const char *range;      /* compact --range lo..hi */
    const char *servers;    /* cluster --servers EP1,EP2,... */
    const char *cluster;    /* cluster --cluster FILE: one client endpoint per line */
    const char *processes;  /* check --process NAME,...; NULL: every process of the node */
    uint64_t max_lag_ms;    /* check --max-lag-ms */
    unsigned disk_warn_pct; /* check --disk-warn */
    unsigned disk_crit_pct; /* check --disk-crit */
    const verb_t *verb;
    const char *verb_word; /* as typed, for messages before the verb is known */
    strata_client_t *client;
    cJSON *doc; /* the --json document a handler fills */
    /* --to earliest|latest (subscribers reset; to_seq and to_time_ns are 0) */
    const char *to_word;
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

verb_fn ctl_put, ctl_get, ctl_mget, ctl_batch, ctl_del, ctl_scan, ctl_status, ctl_stats,
    ctl_record_put, ctl_record_get, ctl_tail, ctl_subscribers, ctl_snapshot, ctl_snapshots,
    ctl_backup, ctl_restore, ctl_verify, ctl_compact, ctl_keygen, ctl_help, ctl_cluster_status,
    ctl_cluster_transfer, ctl_cluster_step_down, ctl_check, ctl_dump_wal, ctl_dump_sst,
    ctl_dump_manifest, ctl_dump_snapshot, ctl_repair;

strata_bytes_t ctl_arg_bytes(const char *arg);
cJSON *ctl_doc(ctl_t *ctl);
const char *ctl_escape(char *buf, size_t cap, const void *data, size_t len);
int ctl_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ctl_fail_call(ctl_t *ctl, int rc, const strata_error_t *err);
/* subscribers delete|reset, on ctl->client connected to the history endpoint. */
int ctl_subscribers_admin(ctl_t *ctl, int argc, char **argv);
void ctl_json_add_u64(cJSON *obj, const char *name, uint64_t value);
cJSON *ctl_json_bytes(const void *data, size_t len);
cJSON *ctl_json_scalar(const char *text);
bool ctl_utf8_valid(const void *data, size_t len);
bool ctl_is_text(const void *data, size_t len);
void ctl_print_bytes(FILE *out, const void *data, size_t len);
void ctl_print_hex(FILE *out, const void *data, size_t len);
void ctl_print_field(const ctl_t *ctl, FILE *out, const void *data, size_t len);
void ctl_print_record(ctl_t *ctl, const strata_entry_t *e);
/* What ctl_print_entry shows beside seq, key and value. */
enum { CTL_ENTRY_TERM = 1u << 0, CTL_ENTRY_TOPIC = 1u << 1, CTL_ENTRY_TIME = 1u << 2 };
void ctl_print_entry(ctl_t *ctl, const strata_entry_t *e, unsigned fields);
int ctl_record_build(const char *type_name, const char *const *pairs, size_t n_pairs,
                     uint8_t **msgpack, size_t *len, char *topic, size_t topic_cap, char *key,
                     size_t key_cap, size_t *key_len, strata_error_t *err);
int ctl_record_json(const void *value, size_t len, char **json, strata_error_t *err);
void *ctl_xmalloc(size_t size);

/* The exit codes scripts see, and the verb table (main.c). */
typedef struct {
    int code;
    const char *meaning;
} ctl_exit_code_t;
extern const ctl_exit_code_t ctl_exit_codes[];
extern const size_t ctl_n_exit_codes;
extern const verb_t ctl_verbs[];
extern const size_t ctl_n_verbs;

/* What the command line said beyond ctl_t (cmdline.c). */
typedef struct {
    bool help;
    bool version;
    int argc; /* the verb and its arguments, flags taken out */
    char **argv;
    char error[256]; /* the first bad flag, reported once every flag (--json too) is known */
} ctl_cmdline_t;
int ctl_parse(ctl_t *ctl, int argc, char **argv, ctl_cmdline_t *cmd);
int ctl_select(ctl_t *ctl, ctl_cmdline_t *cmd);
void ctl_usage(ctl_t *ctl, FILE *out);
void ctl_verb_usage(ctl_t *ctl, FILE *out, const verb_t *verb);

#endif
