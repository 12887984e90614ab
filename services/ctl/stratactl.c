/* stratactl: the operator's command line for a Strata node. Every verb is one
 * row of s_verbs (arity, flags, usage and help all come from that row); a
 * handler makes its client calls and prints a table, or with --json fills the
 * one JSON document main prints. Usage and exit codes: services/ctl/README.md. */
#define _GNU_SOURCE
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

/* The exit codes scripts see; --help lists them from s_exit_codes. */
enum {
    CTL_OK = 0,
    CTL_NOT_FOUND = 1,
    CTL_USAGE = 2,
    CTL_FAILED = 3,      /* the server (or the record validation it runs) said no */
    CTL_UNREACHABLE = 4, /* no reply in time */
};

static const struct {
    int code;
    const char *meaning;
} s_exit_codes[] = {
    {CTL_OK, "ok"},
    {CTL_NOT_FOUND, "not found"},
    {CTL_USAGE, "usage error"},
    {CTL_FAILED, "server error (or a record the server would refuse)"},
    {CTL_UNREACHABLE, "unreachable: no reply within --timeout"},
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

static verb_fn s_put, s_get, s_del, s_scan, s_status, s_stats, s_record_put, s_record_get, s_tail,
    s_subscribers, s_snapshot, s_snapshots, s_backup, s_restore, s_verify, s_compact, s_help;

static const verb_t s_verbs[] = {
    {"put", 2, 2, 0, true, "KEY VALUE", "write VALUE under KEY", s_put, false, NULL},
    {"get", 1, 1, FLAG_RECORD, true, "KEY [--record]",
     "print KEY's value (--record: decoded as a typed record)", s_get, false, NULL},
    {"del", 1, 1, 0, true, "KEY", "delete KEY", s_del, false, NULL},
    {"scan", 0, 2, FLAG_LIMIT | FLAG_PAGE, true, "[START [END]] [--limit N] [--page N]",
     "list keys in [START, END), paging with the cursor", s_scan, false, NULL},
    {"status", 0, 0, 0, true, "", "role, term, last and durable seq", s_status, false, NULL},
    {"stats", 0, 0, 0, true, "", "the server's counters", s_stats, false, NULL},
    {"record put", 1, 1 + MAX_RECORD_FIELDS, 0, true, "TYPE field=value ...",
     "write a typed record (proto/RECORDS.md); prints seq, topic and key", s_record_put, false,
     NULL},
    {"record get", 1, 1, 0, true, "KEY", "print KEY's value decoded as a typed record",
     s_record_get, false, NULL},
    {"tail", 0, STRATA_PROTO_MAX_TOPICS,
     FLAG_FROM | FLAG_FROM_TIME | FLAG_DELAYED | FLAG_DURABLE | FLAG_COUNT | FLAGS_DISTRIBUTOR,
     false, "[TOPIC...] [--from SEQ | --from-time T] [--delayed] [--durable NAME] [--count N]",
     "print records as they arrive from the distributor (--json: JSON lines)", s_tail, true,
     "  TOPIC is a prefix; none: every topic not beginning with '$'.\n"
     "  One line per record: seq, topic, key, value (tab-separated). A typed record's value\n"
     "  is shown as its JSON, other values as text when printable, else as 0x-hex.\n"
     "  --json prints one JSON object per line (JSON lines), not one document.\n"
     "  --from SEQ / --from-time T  replay history from there, then go on live; T is ns\n"
     "                     since the epoch or UTC ISO-8601, e.g. 2026-11-24T10:00:00Z\n"
     "  --delayed          the delayed (batched) stream instead of the live one\n"
     "  --durable NAME     a durable session: resumes after NAME's acked seq; each record\n"
     "                     is acked once printed\n"
     "  --count N          stop after N records (exit 0); Ctrl-C also exits 0\n"
     "  --live, --delayed-endpoint, --history ENDPOINT, --dir DATADIR  where the\n"
     "                     distributor is: flags, else DATADIR/distributor.endpoints,\n"
     "                     else " STRATA_SUB_DEFAULT_LIVE ", " STRATA_SUB_DEFAULT_DELAYED
     ", " STRATA_SUB_DEFAULT_HISTORY "\n"},
    {"subscribers", 0, 0, FLAG_HISTORY_EP | FLAG_DIR, false, "[--history ENDPOINT | --dir DATADIR]",
     "durable subscribers: topics, acked seq, lag, unacked, resends, connected", s_subscribers,
     false, NULL},
    {"snapshot", 0, 0, FLAG_DIR, false, "--dir DATADIR",
     "take a snapshot now through the node's strata-snapshotter; prints its seq and path",
     s_snapshot, false, NULL},
    {"snapshots", 0, 0, FLAG_DIR, false, "--dir DATADIR",
     "the node's sealed snapshots: name, seq, term, time, files, bytes", s_snapshots, false, NULL},
    {"backup", 1, 1, FLAG_DIR | FLAG_SNAPSHOT, false, "DEST --dir DATADIR [--snapshot NAME|PATH]",
     "copy the newest (or the named) snapshot to DEST, checking every file's checksum", s_backup,
     false,
     "  DEST must not exist or be an empty directory; the copy is built in DEST.tmp and\n"
     "  renamed when whole. Progress goes to stderr (not with --json or -q).\n"},
    {"restore", 2, 2, 0, false, "BACKUP DATADIR",
     "check every checksum of BACKUP, then copy it into DATADIR (new or empty)", s_restore, false,
     NULL},
    {"verify", 1, 1, 0, false, "DATADIR",
     "check every WAL entry, SSTable block and the MANIFEST (and a backup's SNAPSHOT); "
     "exit 3 on any problem",
     s_verify, false,
     "  Read-only: safe beside a running writer. One line per finding on stdout:\n"
     "  'problem FILE offset N: what' or 'warning ...' (a torn WAL tail, an orphan table:\n"
     "  nothing acknowledged is lost), then a summary line.\n"},
    {"compact", 0, 0, FLAG_DIR | FLAG_LEVEL | FLAG_RANGE, false,
     "--dir DATADIR [--level N] [--range LO..HI]",
     "compact now through the node's strata-compactor and wait, showing progress", s_compact, false,
     "  No --level: every level from L0 down to the deepest holding the range, so the\n"
     "  range ends up in one level. --level N: only L N into L N+1 (N in 0..5).\n"
     "  --range LO..HI limits L1+ to tables overlapping [LO, HI] (either side may be\n"
     "  empty); L0 always goes whole, since its tables overlap. Progress goes to stderr\n"
     "  on a terminal (not with --json or -q).\n"},
    {"help", 0, 2, 0, false, "[VERB]", "this text, or one verb's usage", s_help, false, NULL},
};

#define N_VERBS (sizeof s_verbs / sizeof s_verbs[0])

/* ---- output helpers ------------------------------------------------------ */

/* cJSON allocations cannot fail from here on: stratactl's policy on memory
 * is the services' one, abort with a message. */
static void *s_xmalloc(size_t size)
{
    void *p = malloc(size);
    if (!p) {
        fprintf(stderr, "stratactl: out of memory\n");
        abort();
    }
    return p;
}

/* Bytes for a terminal: printable ASCII as is, everything else as \xNN (and
 * the backslash doubled), so one entry stays on one line. */
static void s_print_bytes(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\')
            fputs("\\\\", out);
        else if (p[i] >= 0x20 && p[i] < 0x7f)
            fputc(p[i], out);
        else
            fprintf(out, "\\x%02x", p[i]);
    }
}

/* The same escaping into a string for a message; cut short when it fills
 * buf, which is always NUL-terminated. */
static const char *s_escape(char *buf, size_t cap, const void *data, size_t len)
{
    FILE *out = fmemopen(buf, cap, "w");
    if (!out)
        return "?";
    setbuf(out, NULL);
    s_print_bytes(out, data, len);
    fclose(out);
    buf[cap - 1] = '\0';
    return buf;
}

/* Bytes as a JSON string: each byte becomes the code point of the same value
 * (the convention of strata_record_to_json), so any bytes, NULs included,
 * survive and ASCII stays readable. Written by hand because a cJSON string
 * ends at the first NUL. */
static cJSON *s_json_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *text = s_xmalloc(6 * len + 3);
    size_t n = 0;
    text[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            text[n++] = '\\';
            text[n++] = (char)p[i];
        } else if (p[i] < 0x20 || p[i] >= 0x7f) {
            n += (size_t)sprintf(text + n, "\\u%04x", p[i]);
        } else {
            text[n++] = (char)p[i];
        }
    }
    text[n++] = '"';
    text[n] = '\0';
    cJSON *item = cJSON_CreateRaw(text);
    free(text);
    return item;
}

/* A uint64 printed exactly: cJSON numbers are doubles and lose digits past 2^53. */
static void s_json_add_u64(cJSON *obj, const char *name, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON_AddItemToObject(obj, name, cJSON_CreateRaw(text));
}

static cJSON *s_doc(ctl_t *ctl)
{
    if (!ctl->doc)
        ctl->doc = cJSON_CreateObject();
    return ctl->doc;
}

/* The one error line, and with --json the error document. Returns exit_code. */
static int s_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *verb = ctl->verb ? ctl->verb->name : ctl->verb_word;
    /* -q: a missing key is an answer, not a problem; the exit code says it. */
    bool silent = ctl->quiet && exit_code == CTL_NOT_FOUND;
    if (!silent)
        fprintf(stderr, "stratactl: %s%s%s\n", verb ? verb : "", verb ? ": " : "", message);
    if (ctl->json) {
        cJSON_Delete(ctl->doc);
        ctl->doc = cJSON_CreateObject();
        cJSON_AddStringToObject(ctl->doc, "error", message);
        cJSON_AddNumberToObject(ctl->doc, "code", exit_code);
        if (status)
            cJSON_AddNumberToObject(ctl->doc, "status", status);
        if (verb)
            cJSON_AddStringToObject(ctl->doc, "verb", verb);
    }
    return exit_code;
}

/* A failed client call: no reply is "unreachable", a missing key "not found",
 * anything else the server (or a reply we cannot read) refusing. */
static int s_fail_call(ctl_t *ctl, int rc, const strata_error_t *err)
{
    int exit_code = rc == STRATA_ETIMEDOUT   ? CTL_UNREACHABLE
                    : rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND
                                             : CTL_FAILED;
    return s_fail(ctl, exit_code, rc, "%s", err->msg[0] ? err->msg : strata_strerror(rc));
}

static strata_bytes_t s_arg_bytes(const char *arg)
{
    return (strata_bytes_t){.data = (const uint8_t *)arg, .len = strlen(arg)};
}

/* ---- usage --------------------------------------------------------------- */

/* One verb's usage: a line of text, or with --json a row of the "verbs" array. */
static void s_verb_usage(ctl_t *ctl, FILE *out, const verb_t *verb)
{
    if (ctl->json && out == stdout) {
        cJSON *verbs = cJSON_GetObjectItem(s_doc(ctl), "verbs");
        if (!verbs)
            verbs = cJSON_AddArrayToObject(ctl->doc, "verbs");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "name", verb->name);
        cJSON_AddStringToObject(row, "args", verb->args_usage);
        cJSON_AddStringToObject(row, "summary", verb->summary);
        if (verb->details)
            cJSON_AddStringToObject(row, "details", verb->details);
        cJSON_AddItemToArray(verbs, row);
        return;
    }
    fprintf(out, "usage: stratactl [flags] %s%s%s\n  %s\n%s", verb->name,
            verb->args_usage[0] ? " " : "", verb->args_usage, verb->summary,
            verb->details && out == stdout ? verb->details : "");
}

static void s_usage(ctl_t *ctl, FILE *out)
{
    if (ctl->json && out == stdout) {
        for (size_t i = 0; i < N_VERBS; i++)
            s_verb_usage(ctl, out, &s_verbs[i]);
        cJSON *codes = cJSON_AddObjectToObject(ctl->doc, "exit_codes");
        for (size_t i = 0; i < sizeof s_exit_codes / sizeof s_exit_codes[0]; i++) {
            char code[8];
            snprintf(code, sizeof code, "%d", s_exit_codes[i].code);
            cJSON_AddStringToObject(codes, code, s_exit_codes[i].meaning);
        }
        return;
    }
    fputs("usage: stratactl [flags] VERB [args]\n\nverbs:\n", out);
    /* A usage longer than the column gets its summary on the next line. */
    enum { MAX_WIDTH = 44 };
    int width = 0;
    for (size_t i = 0; i < N_VERBS; i++) {
        int len = (int)(strlen(s_verbs[i].name) + 1 + strlen(s_verbs[i].args_usage));
        width = len > width && len <= MAX_WIDTH ? len : width;
    }
    for (size_t i = 0; i < N_VERBS; i++) {
        char left[160];
        snprintf(left, sizeof left, "%s %s", s_verbs[i].name, s_verbs[i].args_usage);
        if ((int)strlen(left) > width)
            fprintf(out, "  %s\n  %-*s  %s\n", left, width, "", s_verbs[i].summary);
        else
            fprintf(out, "  %-*s  %s\n", width, left, s_verbs[i].summary);
    }
    fprintf(out,
            "\nflags:\n"
            "  -s, --server ENDPOINT  node to talk to (default $STRATA_SERVER, else %s)\n"
            "      --timeout MS       wait this long for each reply (default %d)\n"
            "      --json             print one JSON document on stdout and nothing else\n"
            "                         (tail: one JSON object per line)\n"
            "      --async            writes are acknowledged before fsync (default: sync)\n"
            "  -q, --quiet            no output for writes, no message for a missing key\n"
            "      --version          print the version\n"
            "  -h, --help             this text; `stratactl help VERB` for one verb\n"
            "  Flags may follow the verb; `--` ends them (for a key starting with '-').\n"
            "  `stratactl tail --help` lists the distributor's flags (tail, subscribers).\n"
            "\nexit codes:\n",
            STRATA_CLIENT_DEFAULT_ENDPOINT, STRATA_CLIENT_DEFAULT_TIMEOUT_MS);
    for (size_t i = 0; i < sizeof s_exit_codes / sizeof s_exit_codes[0]; i++)
        fprintf(out, "  %d  %s\n", s_exit_codes[i].code, s_exit_codes[i].meaning);
}

/* "record put" takes two words; a word that only starts such names (e.g.
 * "record") is reported as a group. Sets *words to the words consumed. */
static const verb_t *s_find_verb(int argc, char **argv, int *words, bool *is_group)
{
    *is_group = false;
    for (size_t i = 0; i < N_VERBS; i++) {
        const char *name = s_verbs[i].name;
        const char *space = strchr(name, ' ');
        if (!space && strcmp(name, argv[0]) == 0) {
            *words = 1;
            return &s_verbs[i];
        }
        if (space && strlen(argv[0]) == (size_t)(space - name) &&
            strncmp(name, argv[0], (size_t)(space - name)) == 0) {
            *is_group = true;
            if (argc > 1 && strcmp(space + 1, argv[1]) == 0) {
                *words = 2;
                return &s_verbs[i];
            }
        }
    }
    return NULL;
}

static int s_help(ctl_t *ctl, int argc, char **argv)
{
    if (argc == 0) {
        s_usage(ctl, stdout);
        return CTL_OK;
    }
    int words;
    bool is_group;
    const verb_t *verb = s_find_verb(argc, argv, &words, &is_group);
    if (verb && words == argc) {
        s_verb_usage(ctl, stdout, verb);
        return CTL_OK;
    }
    if (verb || !is_group || argc > 1)
        return s_fail(ctl, CTL_USAGE, 0, "no verb '%s%s%s'", argv[0], argc > 1 ? " " : "",
                      argc > 1 ? argv[1] : "");
    /* "help record": every verb of the group. */
    size_t group_len = strlen(argv[0]);
    for (size_t i = 0; i < N_VERBS; i++)
        if (strncmp(s_verbs[i].name, argv[0], group_len) == 0 && s_verbs[i].name[group_len] == ' ')
            s_verb_usage(ctl, stdout, &s_verbs[i]);
    return CTL_OK;
}

/* ---- typed records ------------------------------------------------------ */

/* Builds, validates and encodes a record from "field=value" pairs; *msgpack
 * is malloc'd. topic and key get what the server will derive from it. */
static int s_record_build(const char *type_name, const char *const *pairs, size_t n_pairs,
                          uint8_t **msgpack, size_t *len, char *topic, size_t topic_cap, char *key,
                          size_t key_cap, size_t *key_len, strata_error_t *err)
{
    strata_record_t rec;
    int rc = strata_record_from_fields(type_name, pairs, n_pairs, &rec, err);
    if (rc)
        return rc;
    ssize_t built = strata_record_key(&rec, key, key_cap);
    if (built < 0) {
        rc = strata_error_set(err, (int)built, "%s: key does not fit in %zu bytes", type_name,
                              key_cap);
    } else {
        *key_len = (size_t)built;
        const char *derived = strata_record_topic(&rec);
        snprintf(topic, topic_cap, "%s", derived ? derived : "");
        rc = strata_record_encode(&rec, msgpack, len, err);
    }
    strata_record_clear(&rec);
    return rc;
}

/* Decodes leniently, as a subscriber does (a newer writer's added fields are
 * skipped), and renders pretty JSON into *json (malloc'd). */
static int s_record_json(const void *value, size_t len, char **json, strata_error_t *err)
{
    strata_record_t rec;
    int rc = strata_record_decode(value, len, true, &rec, err);
    if (rc)
        return rc;
    rc = strata_record_to_json(&rec, json);
    if (rc)
        strata_error_set(err, rc, "record: cannot render as JSON");
    strata_record_clear(&rec);
    return rc;
}

/* ---- verbs --------------------------------------------------------------- */

/* What put and del print: the seq the write got. */
static int s_print_write(ctl_t *ctl, const char *key, uint64_t seq)
{
    if (ctl->json) {
        cJSON_AddItemToObject(s_doc(ctl), "key", s_json_bytes(key, strlen(key)));
        s_json_add_u64(ctl->doc, "seq", seq);
    } else if (!ctl->quiet) {
        printf("seq %" PRIu64 "\n", seq);
    }
    return CTL_OK;
}

static int s_put(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_put(ctl->client, ctl->durability, argv[0], strlen(argv[0]), argv[1],
                               strlen(argv[1]), &seq, &err);
    if (rc)
        return s_fail_call(ctl, rc, &err);
    return s_print_write(ctl, argv[0], seq);
}

static int s_del(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    uint64_t seq = 0;
    int rc =
        strata_client_delete(ctl->client, ctl->durability, argv[0], strlen(argv[0]), &seq, &err);
    if (rc)
        return s_fail_call(ctl, rc, &err);
    return s_print_write(ctl, argv[0], seq);
}

/* get and record get. want_record: the value must decode as a record, which
 * is printed instead of the raw bytes. With --json, a value that happens to
 * decode as a record gets a "record" member either way. */
static int s_get_value(ctl_t *ctl, const char *key, bool want_record)
{
    strata_error_t err;
    void *value = NULL;
    size_t len = 0;
    int rc = strata_client_get(ctl->client, key, strlen(key), &value, &len, &err);
    if (rc == STRATA_ENOTFOUND) {
        char shown[256];
        return s_fail(ctl, CTL_NOT_FOUND, rc, "%s: not found",
                      s_escape(shown, sizeof shown, key, strlen(key)));
    }
    if (rc)
        return s_fail_call(ctl, rc, &err);

    char *record_json = NULL;
    if (want_record || ctl->json) {
        rc = s_record_json(value, len, &record_json, &err);
        if (rc && want_record) {
            free(value);
            return s_fail(ctl, CTL_FAILED, rc, "value is not a record: %s", err.msg);
        }
    }
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        cJSON_AddItemToObject(doc, "key", s_json_bytes(key, strlen(key)));
        cJSON_AddItemToObject(doc, "value", s_json_bytes(value, len));
        if (record_json)
            cJSON_AddItemToObject(doc, "record", cJSON_Parse(record_json));
    } else if (want_record) {
        size_t len_json = strlen(record_json);
        fputs(record_json, stdout);
        if (len_json == 0 || record_json[len_json - 1] != '\n')
            putchar('\n');
    } else {
        s_print_bytes(stdout, value, len);
        putchar('\n');
    }
    free(record_json);
    free(value);
    return CTL_OK;
}

static int s_get(ctl_t *ctl, int argc, char **argv)
{
    return s_get_value(ctl, argv[0], ctl->record);
}

static int s_record_get(ctl_t *ctl, int argc, char **argv)
{
    return s_get_value(ctl, argv[0], true);
}

static int s_scan(ctl_t *ctl, int argc, char **argv)
{
    strata_bytes_t start = s_arg_bytes(argc > 0 ? argv[0] : "");
    strata_bytes_t end = s_arg_bytes(argc > 1 ? argv[1] : "");
    cJSON *entries = ctl->json ? cJSON_AddArrayToObject(s_doc(ctl), "entries") : NULL;
    uint64_t count = 0;
    /* The cursor lives in the previous page's reply, so two replies are kept. */
    strata_reply_t page = {0}, previous = {0};
    strata_bytes_t cursor = {0};
    bool more = true;
    int exit_code = CTL_OK;
    while (more && (ctl->limit == 0 || count < ctl->limit)) {
        uint32_t want = ctl->page; /* 0: the server's page size */
        if (ctl->limit && ctl->limit - count < (want ? want : MAX_SCAN_PAGE))
            want = (uint32_t)(ctl->limit - count);
        strata_error_t err;
        int rc = strata_client_scan(ctl->client, start, end, want, cursor, &page, &err);
        if (rc) {
            exit_code = s_fail_call(ctl, rc, &err);
            break;
        }
        for (size_t i = 0; i < page.n_entries && (!ctl->limit || count < ctl->limit); i++) {
            const strata_kv_t *e = &page.entries[i];
            if (entries) {
                cJSON *item = cJSON_CreateObject();
                cJSON_AddItemToObject(item, "key", s_json_bytes(e->key.data, e->key.len));
                cJSON_AddItemToObject(item, "value", s_json_bytes(e->value.data, e->value.len));
                cJSON_AddItemToArray(entries, item);
            } else {
                s_print_bytes(stdout, e->key.data, e->key.len);
                putchar('\t');
                s_print_bytes(stdout, e->value.data, e->value.len);
                putchar('\n');
            }
            count++;
        }
        more = page.next_cursor.len > 0;
        /* A server handing back the cursor it was given would page forever. */
        if (more && cursor.len == page.next_cursor.len &&
            memcmp(cursor.data, page.next_cursor.data, cursor.len) == 0) {
            exit_code = s_fail(ctl, CTL_FAILED, STRATA_EINVAL, "server repeated its scan cursor");
            break;
        }
        strata_reply_clear(&previous);
        previous = page;
        memset(&page, 0, sizeof page);
        cursor = previous.next_cursor;
    }
    if (exit_code == CTL_OK && ctl->json) {
        s_json_add_u64(ctl->doc, "count", count);
        cJSON_AddBoolToObject(ctl->doc, "more", more);
    }
    strata_reply_clear(&page);
    strata_reply_clear(&previous);
    return exit_code;
}

static int s_status(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    strata_reply_t reply;
    int rc = strata_client_status(ctl->client, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return s_fail_call(ctl, rc, &err);
    }
    const char *role = reply.role ? reply.role : "";
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        cJSON_AddStringToObject(doc, "endpoint", ctl->endpoint);
        cJSON_AddStringToObject(doc, "role", role);
        s_json_add_u64(doc, "term", reply.term);
        s_json_add_u64(doc, "last_seq", reply.last_seq);
        s_json_add_u64(doc, "durable_seq", reply.durable_seq);
    } else {
        printf("endpoint     %s\nrole         %s\nterm         %" PRIu64 "\nlast_seq     %" PRIu64
               "\ndurable_seq  %" PRIu64 "\n",
               ctl->endpoint, role, reply.term, reply.last_seq, reply.durable_seq);
    }
    strata_reply_clear(&reply);
    return CTL_OK;
}

static int s_stats(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    strata_reply_t reply;
    int rc = strata_client_stats(ctl->client, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return s_fail_call(ctl, rc, &err);
    }
    int width = 0;
    for (size_t i = 0; i < reply.n_pairs; i++) {
        int len = (int)strlen(reply.pairs[i].name);
        width = len > width ? len : width;
    }
    for (size_t i = 0; i < reply.n_pairs; i++) {
        if (ctl->json)
            cJSON_AddStringToObject(s_doc(ctl), reply.pairs[i].name, reply.pairs[i].value);
        else
            printf("%-*s  %s\n", width, reply.pairs[i].name, reply.pairs[i].value);
    }
    if (ctl->json)
        s_doc(ctl); /* no pairs is still one document: {} */
    strata_reply_clear(&reply);
    return CTL_OK;
}

static int s_record_put(ctl_t *ctl, int argc, char **argv)
{
    if (!strata_record_type_from_name(argv[0]))
        return s_fail(ctl, CTL_USAGE, STRATA_EINVAL, "unknown record type '%s'", argv[0]);
    uint8_t *msgpack = NULL;
    size_t len = 0, key_len = 0;
    char topic[STRATA_TOPIC_MAX + 1], key[STRATA_RECORD_KEY_MAX];
    strata_error_t err;
    int rc = s_record_build(argv[0], (const char *const *)argv + 1, (size_t)argc - 1, &msgpack,
                            &len, topic, sizeof topic, key, sizeof key, &key_len, &err);
    if (rc)
        return s_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    uint64_t seq = 0;
    rc = strata_client_record_put(ctl->client, ctl->durability, msgpack, len, &seq, &err);
    free(msgpack);
    if (rc)
        return s_fail_call(ctl, rc, &err);
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        cJSON_AddStringToObject(doc, "type", argv[0]);
        cJSON_AddStringToObject(doc, "topic", topic);
        cJSON_AddItemToObject(doc, "key", s_json_bytes(key, key_len));
        s_json_add_u64(doc, "seq", seq);
    } else if (!ctl->quiet) {
        printf("seq %" PRIu64 " topic %s key ", seq, topic);
        s_print_bytes(stdout, key, key_len);
        putchar('\n');
    }
    return CTL_OK;
}

/* ---- the distributor: tail and subscribers ------------------------------- */

typedef struct {
    char live[256], delayed[256], history[256];
} dist_endpoints_t;

/* Where the distributor listens: the flags, else what it wrote into
 * DATADIR/distributor.endpoints (--dir), else the defaults. */
static int s_distributor_endpoints(ctl_t *ctl, dist_endpoints_t *eps)
{
    const char *live = STRATA_SUB_DEFAULT_LIVE, *delayed = STRATA_SUB_DEFAULT_DELAYED,
               *history = STRATA_SUB_DEFAULT_HISTORY;
    zconfig_t *root = NULL;
    if (ctl->dir) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/distributor.endpoints", ctl->dir);
        /* The distributor writes it once ready and removes it when it stops. */
        if (!(root = zconfig_load(path)))
            return s_fail(ctl, CTL_UNREACHABLE, 0,
                          "cannot read %s (is strata-distributor running on that data dir?)", path);
        live = zconfig_get(root, "distributor/live", live);
        delayed = zconfig_get(root, "distributor/delayed", delayed);
        history = zconfig_get(root, "distributor/history", history);
    }
    snprintf(eps->live, sizeof eps->live, "%s", ctl->live_ep ? ctl->live_ep : live);
    snprintf(eps->delayed, sizeof eps->delayed, "%s", ctl->delayed_ep ? ctl->delayed_ep : delayed);
    snprintf(eps->history, sizeof eps->history, "%s", ctl->history_ep ? ctl->history_ep : history);
    zconfig_destroy(&root);
    return CTL_OK;
}

/* A typed record's JSON on one line (strata_record_to_json indents), or NULL
 * when value is not a record. Malloc'd. */
static char *s_record_line(const void *value, size_t len)
{
    char *json = NULL;
    strata_error_t err;
    if (len == 0 || s_record_json(value, len, &json, &err) != 0)
        return NULL;
    size_t out = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; json[i]; i++) {
        char c = json[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        json[out++] = c;
    }
    json[out] = '\0';
    return json;
}

static bool s_printable(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

/* One record, one line: "seq<TAB>topic<TAB>key<TAB>value", or with --json
 * one JSON object. Flushed, so a pipe sees each record as it comes. */
static void s_print_record(ctl_t *ctl, const strata_entry_t *e)
{
    bool deleted = e->type == STRATA_VALUE_DELETE;
    char *record = deleted ? NULL : s_record_line(e->value, e->value_len);
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        s_json_add_u64(obj, "seq", e->seq);
        cJSON_AddItemToObject(obj, "topic", s_json_bytes(e->topic, e->topic_len));
        cJSON_AddItemToObject(obj, "key", s_json_bytes(e->key, e->key_len));
        cJSON_AddStringToObject(obj, "op", deleted ? "delete" : "put");
        if (!deleted)
            cJSON_AddItemToObject(obj, "value", s_json_bytes(e->value, e->value_len));
        if (record)
            cJSON_AddItemToObject(obj, "record", cJSON_CreateRaw(record));
        s_json_add_u64(obj, "timestamp_ns", e->timestamp_ns);
        char *text = cJSON_PrintUnformatted(obj);
        puts(text);
        free(text);
        cJSON_Delete(obj);
    } else {
        printf("%" PRIu64 "\t", e->seq);
        s_print_bytes(stdout, e->topic, e->topic_len);
        putchar('\t');
        s_print_bytes(stdout, e->key, e->key_len);
        putchar('\t');
        if (deleted) {
            fputs("(deleted)", stdout);
        } else if (record) {
            fputs(record, stdout);
        } else if (s_printable(e->value, e->value_len)) {
            fwrite(e->value, 1, e->value_len, stdout);
        } else {
            fputs("0x", stdout);
            for (uint32_t i = 0; i < e->value_len; i++)
                printf("%02x", e->value[i]);
        }
        putchar('\n');
    }
    fflush(stdout);
    free(record);
}

/* Ctrl-C and SIGTERM end tail cleanly: the subscriber's wait sees
 * zsys_interrupted (as with czmq's own handler) and returns ECLOSED. */
static void s_on_signal(int signum)
{
    zsys_interrupted = 1;
}

static void s_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Durable: waits up to --timeout for the distributor to store the last ack,
 * so the next tail under the name starts after it. What arrives meanwhile
 * stays unacked and comes again. */
static void s_tail_settle(ctl_t *ctl, strata_sub_t *sub, uint64_t acked)
{
    zsys_interrupted = 0;
    uint64_t deadline = (uint64_t)zclock_mono() + (uint64_t)ctl->timeout_ms;
    while (strata_sub_durable_seq(sub) < acked && (uint64_t)zclock_mono() < deadline) {
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 50, &e, NULL, NULL, &err);
        if (rc && rc != STRATA_ETIMEDOUT)
            break;
    }
    if (strata_sub_durable_seq(sub) < acked)
        fprintf(stderr, "stratactl: tail: ack %" PRIu64 " not confirmed stored within %d ms\n",
                acked, ctl->timeout_ms);
}

/* Errors next() reports about one message or one repair: tail says so on
 * stderr and goes on (the subscriber repairs what a dropped message leaves). */
static bool s_tail_recoverable(const ctl_t *ctl, int rc)
{
    switch (rc) {
    case STRATA_EINVAL:
    case STRATA_EVERSION:
    case STRATA_ECORRUPT:
    case STRATA_ETOOBIG:
        return true;
    case STRATA_ETRUNCATED: /* a repair given up; for a durable session, its start */
        return !ctl->durable;
    default:
        return false;
    }
}

static int s_tail(ctl_t *ctl, int argc, char **argv)
{
    if (ctl->from_seq && ctl->from_time_ns)
        return s_fail(ctl, CTL_USAGE, 0, "--from and --from-time exclude each other");
    if (ctl->durable && (ctl->delayed || ctl->from_time_ns))
        return s_fail(ctl, CTL_USAGE, 0, "--durable takes neither --delayed nor --from-time");
    for (int i = 0; i < argc; i++)
        if (!argv[i][0] || strlen(argv[i]) > STRATA_PROTO_MAX_TOPIC)
            return s_fail(ctl, CTL_USAGE, 0, "topic %d: 1 to %u bytes", i + 1,
                          STRATA_PROTO_MAX_TOPIC);
    dist_endpoints_t eps;
    int exit_code = s_distributor_endpoints(ctl, &eps);
    if (exit_code)
        return exit_code;
    strata_sub_options_t opts = {
        .stream_endpoint = ctl->delayed ? eps.delayed : eps.live,
        .history_endpoint = eps.history,
        .topics = (const char *const *)argv,
        .n_topics = (size_t)argc,
        .from_seq = ctl->from_seq,
        .from_time_ns = ctl->from_time_ns,
        .durable = ctl->durable,
        .timeout_ms = ctl->timeout_ms,
    };
    strata_sub_t *sub = NULL;
    strata_error_t err;
    s_catch_signals();
    int rc = strata_sub_open(&opts, &sub, &err);
    if (rc) {
        bool bad_endpoint = rc == STRATA_EINVAL && strstr(err.msg, "endpoint '") != NULL;
        exit_code = rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE
                    : bad_endpoint         ? CTL_USAGE
                    : rc == STRATA_ECLOSED ? CTL_OK
                                           : CTL_FAILED;
        return exit_code == CTL_OK ? CTL_OK : s_fail(ctl, exit_code, rc, "%s", err.msg);
    }
    uint64_t printed = 0, acked = 0;
    while (exit_code == CTL_OK && (ctl->count == 0 || printed < ctl->count)) {
        strata_entry_t e;
        rc = strata_sub_next(sub, -1, &e, NULL, NULL, &err);
        if (rc == 0) {
            s_print_record(ctl, &e);
            printed++;
            if (ctl->durable && (rc = strata_sub_ack(sub, e.seq, &err)) == 0)
                acked = e.seq;
        }
        if (rc == 0)
            continue;
        if (rc == STRATA_ECLOSED && zsys_interrupted)
            break;
        if (s_tail_recoverable(ctl, rc))
            fprintf(stderr, "stratactl: tail: %s\n", err.msg);
        else
            exit_code = s_fail(ctl, rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE : CTL_FAILED, rc, "%s",
                               err.msg);
    }
    if (exit_code == CTL_OK && acked)
        s_tail_settle(ctl, sub, acked);
    strata_sub_close(&sub);
    return exit_code;
}

static int s_subscribers(ctl_t *ctl, int argc, char **argv)
{
    dist_endpoints_t eps;
    int exit_code = s_distributor_endpoints(ctl, &eps);
    if (exit_code)
        return exit_code;
    strata_client_options_t opts = {.endpoint = eps.history, .timeout_ms = ctl->timeout_ms};
    strata_error_t err;
    int rc = strata_client_connect(&opts, &ctl->client, &err);
    if (rc)
        return s_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg);
    strata_request_t req = {.op = STRATA_OP_SUBSCRIBERS};
    strata_reply_t reply;
    if ((rc = strata_client_call(ctl->client, &req, &reply, &err))) {
        strata_reply_clear(&reply);
        return s_fail_call(ctl, rc, &err);
    }
    /* Topics as one column: comma-joined, "*" for all. */
    char **topics = s_xmalloc((reply.n_subscribers + 1) * sizeof *topics);
    int name_width = 4, topics_width = 6;
    for (size_t i = 0; i < reply.n_subscribers; i++) {
        const strata_subscriber_info_t *s = &reply.subscribers[i];
        size_t len = 2;
        for (size_t t = 0; t < s->n_topics; t++)
            len += strlen(s->topics[t]) + 1;
        topics[i] = s_xmalloc(len);
        strcpy(topics[i], s->n_topics ? "" : "*");
        for (size_t t = 0; t < s->n_topics; t++)
            strcat(strcat(topics[i], t ? "," : ""), s->topics[t]);
        if ((int)strlen(s->name) > name_width)
            name_width = (int)strlen(s->name);
        if ((int)strlen(topics[i]) > topics_width)
            topics_width = (int)strlen(topics[i]);
    }
    cJSON *rows = ctl->json ? cJSON_AddArrayToObject(s_doc(ctl), "subscribers") : NULL;
    if (!ctl->json)
        printf("%-*s  %-*s  %12s  %12s  %10s  %8s  %8s  %s\n", name_width, "NAME", topics_width,
               "TOPICS", "ACKED", "LAG", "LAG_MS", "UNACKED", "RESENDS", "CONNECTED");
    for (size_t i = 0; i < reply.n_subscribers; i++) {
        const strata_subscriber_info_t *s = &reply.subscribers[i];
        if (rows) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "name", s->name);
            cJSON *list = cJSON_AddArrayToObject(row, "topics");
            for (size_t t = 0; t < s->n_topics; t++)
                cJSON_AddItemToArray(list, cJSON_CreateString(s->topics[t]));
            s_json_add_u64(row, "acked_seq", s->acked_seq);
            s_json_add_u64(row, "lag_records", s->lag_records);
            s_json_add_u64(row, "lag_ms", s->lag_ms);
            s_json_add_u64(row, "unacked", s->unacked);
            s_json_add_u64(row, "resends", s->resends);
            cJSON_AddBoolToObject(row, "connected", s->connected);
            cJSON_AddItemToArray(rows, row);
        } else {
            printf("%-*s  %-*s  %12" PRIu64 "  %12" PRIu64 "  %10" PRIu64 "  %8" PRIu64
                   "  %8" PRIu64 "  %s\n",
                   name_width, s->name, topics_width, topics[i], s->acked_seq, s->lag_records,
                   s->lag_ms, s->unacked, s->resends, s->connected ? "yes" : "no");
        }
        free(topics[i]);
    }
    if (rows)
        s_json_add_u64(ctl->doc, "count", reply.n_subscribers);
    free(topics);
    strata_reply_clear(&reply);
    return CTL_OK;
}

/* ---- snapshots, backup, restore ------------------------------------------- */

/* Where the node keeps its snapshots: what the running snapshotter wrote in
 * DATADIR/snapshotter.endpoints, else DATADIR/snapshots. */
static int s_snapshots_dir(ctl_t *ctl, char *out, size_t cap)
{
    if (!ctl->dir)
        return s_fail(ctl, CTL_USAGE, 0, "needs --dir DATADIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/snapshotter.endpoints", ctl->dir);
    zconfig_t *root = zconfig_load(path);
    const char *dir = root ? zconfig_get(root, "snapshotter/dir", "") : "";
    if (*dir)
        snprintf(out, cap, "%s", dir);
    else
        snprintf(out, cap, "%s/snapshots", ctl->dir);
    zconfig_destroy(&root);
    return CTL_OK;
}

static const char *s_pair(const strata_reply_t *reply, const char *name)
{
    for (size_t i = 0; i < reply->n_pairs; i++)
        if (!strcmp(reply->pairs[i].name, name))
            return reply->pairs[i].value;
    return "";
}

static uint64_t s_pair_u64(const strata_reply_t *reply, const char *name)
{
    return strtoull(s_pair(reply, name), NULL, 10);
}

/* Connects ctl->client to the node's strata-NAME through the endpoint it
 * wrote in DATADIR/NAME.endpoints. */
static int s_connect_service(ctl_t *ctl, const char *name, int timeout_ms)
{
    if (!ctl->dir)
        return s_fail(ctl, CTL_USAGE, 0, "needs --dir DATADIR");
    char path[PATH_MAX], key[64];
    snprintf(path, sizeof path, "%s/%s.endpoints", ctl->dir, name);
    snprintf(key, sizeof key, "%s/endpoint", name);
    zconfig_t *root = zconfig_load(path);
    if (!root)
        return s_fail(ctl, CTL_UNREACHABLE, 0,
                      "cannot read %s (is strata-%s running on that data dir?)", path, name);
    char endpoint[PATH_MAX + 32];
    snprintf(endpoint, sizeof endpoint, "%s", zconfig_get(root, key, ""));
    zconfig_destroy(&root);
    strata_client_options_t opts = {.endpoint = endpoint, .timeout_ms = timeout_ms};
    strata_error_t err;
    int rc = strata_client_connect(&opts, &ctl->client, &err);
    return rc ? s_fail(ctl, CTL_FAILED, rc, "%s", err.msg) : CTL_OK;
}

static int s_snapshot(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* A snapshot flushes the memtable first: give it more than a read. */
    int exit_code =
        s_connect_service(ctl, "snapshotter", ctl->timeout_ms > 600000 ? ctl->timeout_ms : 600000);
    if (exit_code)
        return exit_code;
    strata_reply_t reply;
    strata_error_t err;
    int rc = strata_client_control(ctl->client, "snapshot", NULL, 0, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return s_fail_call(ctl, rc, &err);
    }
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        for (size_t i = 0; i < reply.n_pairs; i++) {
            const char *name = reply.pairs[i].name, *value = reply.pairs[i].value;
            if (!strcmp(name, "name") || !strcmp(name, "path"))
                cJSON_AddStringToObject(doc, name, value);
            else if (!strcmp(name, "existed"))
                cJSON_AddBoolToObject(doc, name, !strcmp(value, "true"));
            else
                cJSON_AddItemToObject(doc, name, cJSON_CreateRaw(value));
        }
    } else {
        printf("seq %s path %s files %s bytes %s ms %s%s\n", s_pair(&reply, "seq"),
               s_pair(&reply, "path"), s_pair(&reply, "files"), s_pair(&reply, "bytes"),
               s_pair(&reply, "ms"),
               !strcmp(s_pair(&reply, "existed"), "true") ? " (no write since the last one)" : "");
    }
    strata_reply_clear(&reply);
    return CTL_OK;
}

/* ---- compact ---------------------------------------------------------------- */

static int s_compact(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int exit_code = s_connect_service(ctl, "compactor", ctl->timeout_ms);
    if (exit_code)
        return exit_code;
    char level[8];
    snprintf(level, sizeof level, "%d", ctl->level);
    const char *args[] = {ctl->level >= 0 ? level : "-", ctl->range ? ctl->range : "-"};
    strata_reply_t reply;
    strata_error_t err;
    int rc = strata_client_control(ctl->client, "compact", args, 2, &reply, &err);
    uint64_t id = rc ? 0 : s_pair_u64(&reply, "id");
    strata_reply_clear(&reply);
    if (rc)
        return s_fail_call(ctl, rc, &err);
    bool show = !ctl->json && !ctl->quiet && isatty(STDERR_FILENO);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The compactor works on; this polls its progress until our request
     * is the one finished. */
    for (;;) {
        rc = strata_client_control(ctl->client, "progress", NULL, 0, &reply, &err);
        if (rc)
            return s_fail_call(ctl, rc, &err);
        const char *state = s_pair(&reply, "manual_state");
        bool ours = s_pair_u64(&reply, "manual_id") == id;
        bool finished = ours && (!strcmp(state, "done") || !strcmp(state, "failed"));
        uint64_t done = s_pair_u64(&reply, "manual_done_bytes"),
                 total = s_pair_u64(&reply, "manual_total_bytes");
        if (show)
            fprintf(stderr, "\rcompact: %-8s %s %.1f / %.1f MB, %" PRIu64 " compactions   ",
                    ours ? state : "queued", s_pair(&reply, "manual_step"), (double)done / 1e6,
                    (double)total / 1e6, s_pair_u64(&reply, "manual_compactions"));
        if (finished) {
            if (show)
                fputc('\n', stderr);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ms =
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            if (!strcmp(state, "failed")) {
                exit_code = s_fail(ctl, CTL_FAILED, STRATA_EIO, "compaction %" PRIu64 " failed: %s",
                                   id, s_pair(&reply, "manual_error"));
            } else if (ctl->json) {
                cJSON *doc = s_doc(ctl);
                s_json_add_u64(doc, "id", id);
                cJSON_AddStringToObject(doc, "state", state);
                s_json_add_u64(doc, "compactions", s_pair_u64(&reply, "manual_compactions"));
                s_json_add_u64(doc, "bytes", done);
                cJSON_AddNumberToObject(doc, "ms", ms);
            } else {
                printf("compaction %" PRIu64 " done: %" PRIu64 " compactions, %" PRIu64
                       " input bytes, %.0f ms\n",
                       id, s_pair_u64(&reply, "manual_compactions"), done, ms);
            }
            strata_reply_clear(&reply);
            return exit_code;
        }
        strata_reply_clear(&reply);
        nanosleep(&(struct timespec){.tv_nsec = 200000000}, NULL); /* the poll period */
    }
}

static int s_snapshots(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char dir[PATH_MAX];
    int exit_code = s_snapshots_dir(ctl, dir, sizeof dir);
    if (exit_code)
        return exit_code;
    char **names = NULL;
    size_t count = 0;
    strata_error_t err;
    int rc = strata_snapshot_list(dir, &names, &count, &err);
    if (rc)
        return s_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    cJSON *rows = ctl->json ? cJSON_AddArrayToObject(s_doc(ctl), "snapshots") : NULL;
    if (!ctl->json)
        printf("%-25s  %20s  %6s  %-24s  %6s  %14s\n", "NAME", "SEQ", "TERM", "TIME (UTC)", "FILES",
               "BYTES");
    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        strata_snapshot_meta_t meta;
        if (strata_snapshot_read(path, &meta, &err) != 0)
            continue; /* removed since it was listed */
        time_t secs = (time_t)(meta.time_ns / 1000000000ull);
        struct tm tm;
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&secs, &tm));
        if (rows) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "name", names[i]);
            cJSON_AddStringToObject(row, "path", path);
            s_json_add_u64(row, "seq", meta.seq);
            s_json_add_u64(row, "term", meta.term);
            s_json_add_u64(row, "time_ns", meta.time_ns);
            s_json_add_u64(row, "files", meta.n_files);
            s_json_add_u64(row, "bytes", meta.bytes);
            cJSON_AddItemToArray(rows, row);
        } else {
            printf("%-25s  %20" PRIu64 "  %6" PRIu64 "  %-24s  %6zu  %14" PRIu64 "\n", names[i],
                   meta.seq, meta.term, when, meta.n_files, meta.bytes);
        }
        strata_snapshot_meta_free(&meta);
    }
    if (rows)
        s_json_add_u64(ctl->doc, "count", count);
    strata_snapshot_list_free(names, count);
    return CTL_OK;
}

static void s_progress(void *arg, const char *file, uint64_t done, uint64_t total)
{
    (void)arg;
    fprintf(stderr, "\r%5.1f%%  %" PRIu64 " / %" PRIu64 " bytes  %-40.40s",
            total ? 100.0 * (double)done / (double)total : 100.0, done, total, file);
    if (done == total)
        fputc('\n', stderr);
}

static void s_problem(void *arg, const char *problem)
{
    ctl_t *ctl = arg;
    if (ctl->json) {
        cJSON *list = cJSON_GetObjectItem(s_doc(ctl), "problems");
        if (!list)
            list = cJSON_AddArrayToObject(ctl->doc, "problems");
        cJSON_AddItemToArray(list, cJSON_CreateString(problem));
    } else {
        fprintf(stderr, "stratactl: %s: %s\n", ctl->verb->name, problem);
    }
}

/* Copies src to dst with the summary both verbs print. */
static int s_copy_snapshot(ctl_t *ctl, const char *src, const char *dst)
{
    strata_snapshot_meta_t meta;
    strata_error_t err;
    int rc = strata_snapshot_read(src, &meta, &err);
    if (rc)
        return s_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s", err.msg);
    bool show = !ctl->json && !ctl->quiet && isatty(STDERR_FILENO);
    rc = strata_snapshot_copy(src, dst, show ? s_progress : NULL, ctl, &err);
    if (rc) {
        strata_snapshot_meta_free(&meta);
        return s_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    }
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        cJSON_AddStringToObject(doc, "from", src);
        cJSON_AddStringToObject(doc, "to", dst);
        s_json_add_u64(doc, "seq", meta.seq);
        s_json_add_u64(doc, "files", meta.n_files);
        s_json_add_u64(doc, "bytes", meta.bytes);
    } else {
        printf("seq %" PRIu64 " files %zu bytes %" PRIu64 " to %s\n", meta.seq, meta.n_files,
               meta.bytes, dst);
    }
    strata_snapshot_meta_free(&meta);
    return CTL_OK;
}

static int s_backup(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    char dir[PATH_MAX], src[PATH_MAX * 2];
    if (ctl->snapshot && strchr(ctl->snapshot, '/')) {
        snprintf(src, sizeof src, "%s", ctl->snapshot);
    } else {
        int exit_code = s_snapshots_dir(ctl, dir, sizeof dir);
        if (exit_code)
            return exit_code;
        char **names = NULL;
        size_t count = 0;
        strata_error_t err;
        int rc = strata_snapshot_list(dir, &names, &count, &err);
        if (rc)
            return s_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
        if (count == 0 && !ctl->snapshot) {
            strata_snapshot_list_free(names, count);
            return s_fail(ctl, CTL_NOT_FOUND, 0, "no sealed snapshot in %s (stratactl snapshot)",
                          dir);
        }
        snprintf(src, sizeof src, "%s/%s", dir, ctl->snapshot ? ctl->snapshot : names[count - 1]);
        strata_snapshot_list_free(names, count);
    }
    return s_copy_snapshot(ctl, src, argv[0]);
}

static int s_restore(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    strata_error_t err;
    /* Every file is checked before anything is written: a bad backup names
     * each bad file and leaves DATADIR alone. */
    int rc = strata_snapshot_check(argv[0], s_problem, ctl, &err);
    if (rc)
        return s_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s", err.msg);
    return s_copy_snapshot(ctl, argv[0], argv[1]);
}

static void s_finding(void *arg, const strata_verify_problem_t *p)
{
    ctl_t *ctl = arg;
    if (ctl->json) {
        cJSON *list = cJSON_GetObjectItem(s_doc(ctl), p->fatal ? "problems" : "warnings");
        if (!list)
            list = cJSON_AddArrayToObject(ctl->doc, p->fatal ? "problems" : "warnings");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "file", p->file ? p->file : "");
        if (p->has_offset)
            s_json_add_u64(row, "offset", p->offset);
        cJSON_AddStringToObject(row, "kind", p->kind ? p->kind : "");
        cJSON_AddStringToObject(row, "message", p->message);
        cJSON_AddItemToArray(list, row);
    } else {
        printf("%s %s\n", p->fatal ? "problem" : "warning", p->message);
    }
}

/* A backup's or snapshot's SNAPSHOT listing, reported as findings. */
static void s_snapshot_finding(void *arg, const char *problem)
{
    strata_verify_problem_t p = {.kind = "snapshot", .message = problem, .fatal = true};
    s_finding(arg, &p);
}

static int s_verify(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    strata_verify_stats_t stats = {0};
    strata_error_t err;
    int rc = strata_db_verify(argv[0], s_finding, ctl, &stats, &err);
    if (rc && rc != STRATA_ECORRUPT)
        return s_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s", err.msg);
    uint64_t problems = stats.problems;
    char meta[PATH_MAX];
    snprintf(meta, sizeof meta, "%s/" STRATA_SNAPSHOT_FILE, argv[0]);
    bool has_meta = access(meta, F_OK) == 0;
    if (has_meta) {
        strata_error_t serr;
        int src = strata_snapshot_check(argv[0], s_snapshot_finding, ctl, &serr);
        if (src && src != STRATA_ECORRUPT) {
            strata_verify_problem_t p = {.file = STRATA_SNAPSHOT_FILE,
                                         .kind = "snapshot",
                                         .message = serr.msg,
                                         .fatal = true};
            s_finding(ctl, &p);
            problems++;
        } else if (src) {
            problems++; /* each bad file was reported */
        }
    }
    if (ctl->json) {
        cJSON *doc = s_doc(ctl);
        s_json_add_u64(doc, "wal_segments", stats.wal_segments);
        s_json_add_u64(doc, "wal_entries", stats.wal_entries);
        s_json_add_u64(doc, "tables", stats.tables);
        s_json_add_u64(doc, "table_bytes", stats.table_bytes);
        s_json_add_u64(doc, "last_seq", stats.last_seq);
        cJSON_AddBoolToObject(doc, "snapshot_checked", has_meta);
        cJSON_AddBoolToObject(doc, "ok", problems == 0);
    } else {
        printf("%s: %" PRIu64 " WAL segments, %" PRIu64 " entries; %" PRIu64 " tables, %" PRIu64
               " bytes; last seq %" PRIu64 "%s; %s\n",
               argv[0], stats.wal_segments, stats.wal_entries, stats.tables, stats.table_bytes,
               stats.last_seq, has_meta ? "; SNAPSHOT checksums checked" : "",
               problems ? "PROBLEMS FOUND" : "ok");
    }
    /* Problems are the answer, printed on stdout; the exit code says so. */
    return problems ? CTL_FAILED : CTL_OK;
}

/* ---- command line -------------------------------------------------------- */

/* A whole decimal number in [min, max]. */
static bool s_parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text[0] || text[0] == '-')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || value < min || value > max)
        return false;
    *out = value;
    return true;
}

/* ns since the epoch, or a UTC time in ISO-8601: 2026-11-24T10:00:00Z, with an
 * optional fraction of a second (2026-11-24T10:00:00.25Z). */
static bool s_parse_time(const char *text, uint64_t *out)
{
    if (s_parse_number(text, 1, UINT64_MAX, out))
        return true;
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return false;
    uint64_t fraction_ns = 0;
    if (*rest == '.') {
        uint64_t scale = 100000000;
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++) {
            if (digits == 9)
                return false;
            fraction_ns += (uint64_t)(*rest - '0') * scale;
            scale /= 10;
        }
        if (digits == 0)
            return false;
    }
    time_t seconds = timegm(&tm);
    if (strcmp(rest, "Z") != 0 || seconds <= 0)
        return false;
    *out = (uint64_t)seconds * 1000000000ull + fraction_ns;
    return true;
}

enum {
    OPT_TIMEOUT = 256,
    OPT_JSON,
    OPT_ASYNC,
    OPT_VERSION,
    OPT_LIMIT,
    OPT_PAGE,
    OPT_RECORD,
    OPT_FROM,
    OPT_FROM_TIME,
    OPT_DELAYED,
    OPT_DURABLE,
    OPT_COUNT,
    OPT_LIVE_EP,
    OPT_DELAYED_EP,
    OPT_HISTORY_EP,
    OPT_DIR,
    OPT_SNAPSHOT,
    OPT_LEVEL,
    OPT_RANGE,
};

static const struct option s_options[] = {
    {"server", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"async", no_argument, NULL, OPT_ASYNC},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"page", required_argument, NULL, OPT_PAGE},
    {"record", no_argument, NULL, OPT_RECORD},
    {"from", required_argument, NULL, OPT_FROM},
    {"from-time", required_argument, NULL, OPT_FROM_TIME},
    {"delayed", no_argument, NULL, OPT_DELAYED},
    {"durable", required_argument, NULL, OPT_DURABLE},
    {"count", required_argument, NULL, OPT_COUNT},
    {"live", required_argument, NULL, OPT_LIVE_EP},
    {"delayed-endpoint", required_argument, NULL, OPT_DELAYED_EP},
    {"history", required_argument, NULL, OPT_HISTORY_EP},
    {"dir", required_argument, NULL, OPT_DIR},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"range", required_argument, NULL, OPT_RANGE},
    {NULL, 0, NULL, 0},
};

typedef struct {
    bool help;
    bool version;
    int argc; /* the verb and its arguments, flags taken out */
    char **argv;
    char error[256]; /* the first bad flag, reported once every flag (--json too) is known */
} cmdline_t;

static void s_flag_error(cmdline_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_flag_error(cmdline_t *cmd, const char *fmt, ...)
{
    if (cmd->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd->error, sizeof cmd->error, fmt, ap);
    va_end(ap);
}

/* Flags may come before or after the verb (getopt permutes); "--" ends them,
 * for a key that starts with '-'. Returns CTL_OK or CTL_USAGE. */
static int s_parse(ctl_t *ctl, int argc, char **argv, cmdline_t *cmd)
{
    uint64_t number;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":s:qh", s_options, NULL)) != -1) {
        switch (opt) {
        case 's':
            ctl->endpoint = optarg;
            break;
        case OPT_TIMEOUT:
            if (s_parse_number(optarg, 1, INT32_MAX, &number))
                ctl->timeout_ms = (int)number;
            else
                s_flag_error(cmd, "--timeout: '%s' is not a number of ms > 0", optarg);
            break;
        case OPT_JSON:
            ctl->json = true;
            break;
        case OPT_ASYNC:
            ctl->durability = STRATA_DURABILITY_ASYNC;
            break;
        case 'q':
            ctl->quiet = true;
            break;
        case OPT_VERSION:
            cmd->version = true;
            break;
        case 'h':
            cmd->help = true;
            break;
        case OPT_LIMIT:
            if (!s_parse_number(optarg, 1, UINT64_MAX, &ctl->limit))
                s_flag_error(cmd, "--limit: '%s' is not a number > 0", optarg);
            ctl->flags_given |= FLAG_LIMIT;
            break;
        case OPT_PAGE:
            if (s_parse_number(optarg, 1, MAX_SCAN_PAGE, &number))
                ctl->page = (uint32_t)number;
            else
                s_flag_error(cmd, "--page: '%s' is not a number in 1..%u", optarg, MAX_SCAN_PAGE);
            ctl->flags_given |= FLAG_PAGE;
            break;
        case OPT_RECORD:
            ctl->record = true;
            ctl->flags_given |= FLAG_RECORD;
            break;
        case OPT_FROM:
            if (!s_parse_number(optarg, 1, UINT64_MAX, &ctl->from_seq))
                s_flag_error(cmd, "--from: '%s' is not a seq > 0", optarg);
            ctl->flags_given |= FLAG_FROM;
            break;
        case OPT_FROM_TIME:
            if (!s_parse_time(optarg, &ctl->from_time_ns))
                s_flag_error(cmd,
                             "--from-time: '%s' is neither ns since the epoch nor a UTC time "
                             "like 2026-11-24T10:00:00Z",
                             optarg);
            ctl->flags_given |= FLAG_FROM_TIME;
            break;
        case OPT_DELAYED:
            ctl->delayed = true;
            ctl->flags_given |= FLAG_DELAYED;
            break;
        case OPT_DURABLE:
            ctl->durable = optarg;
            if (!optarg[0] || strlen(optarg) > STRATA_PROTO_MAX_NAME)
                s_flag_error(cmd, "--durable: a name of 1 to %u bytes", STRATA_PROTO_MAX_NAME);
            ctl->flags_given |= FLAG_DURABLE;
            break;
        case OPT_COUNT:
            if (!s_parse_number(optarg, 1, UINT64_MAX, &ctl->count))
                s_flag_error(cmd, "--count: '%s' is not a number > 0", optarg);
            ctl->flags_given |= FLAG_COUNT;
            break;
        case OPT_LIVE_EP:
            ctl->live_ep = optarg;
            ctl->flags_given |= FLAG_LIVE_EP;
            break;
        case OPT_DELAYED_EP:
            ctl->delayed_ep = optarg;
            ctl->flags_given |= FLAG_DELAYED_EP;
            break;
        case OPT_HISTORY_EP:
            ctl->history_ep = optarg;
            ctl->flags_given |= FLAG_HISTORY_EP;
            break;
        case OPT_DIR:
            ctl->dir = optarg;
            ctl->flags_given |= FLAG_DIR;
            break;
        case OPT_SNAPSHOT:
            ctl->snapshot = optarg;
            ctl->flags_given |= FLAG_SNAPSHOT;
            break;
        case OPT_LEVEL:
            if (s_parse_number(optarg, 0, 5, &number))
                ctl->level = (int)number;
            else
                s_flag_error(cmd, "--level: '%s' is not a level in 0..5", optarg);
            ctl->flags_given |= FLAG_LEVEL;
            break;
        case OPT_RANGE: {
            const char *dots = strstr(optarg, "..");
            ctl->range = optarg;
            if (!dots || strlen(optarg) > 500)
                s_flag_error(cmd, "--range: '%s' is not LO..HI (either side may be empty)", optarg);
            else if (dots != optarg && dots[2] &&
                     strncmp(optarg, dots + 2, (size_t)(dots - optarg)) > 0)
                s_flag_error(cmd, "--range: '%s' has LO after HI", optarg);
            ctl->flags_given |= FLAG_RANGE;
            break;
        }
        case ':':
            s_flag_error(cmd, "%s needs a value", argv[optind - 1]);
            break;
        default:
            if (optopt)
                s_flag_error(cmd, "unknown flag '-%c'", optopt);
            else
                s_flag_error(cmd, "unknown flag '%s'", argv[optind - 1]);
            break;
        }
    }
    cmd->argc = argc - optind;
    cmd->argv = argv + optind;
    return cmd->error[0] ? s_fail(ctl, CTL_USAGE, 0, "%s", cmd->error) : CTL_OK;
}

static const char *const s_flag_names[] = {
    "--limit",   "--page",    "--record",   "--from",  "--from-time",
    "--delayed", "--durable", "--count",    "--live",  "--delayed-endpoint",
    "--history", "--dir",     "--snapshot", "--level", "--range"};

/* Picks the verb and checks its arity and flags: the one place they are checked. */
static int s_select(ctl_t *ctl, cmdline_t *cmd)
{
    int words = 0;
    bool is_group = false;
    const verb_t *verb = s_find_verb(cmd->argc, cmd->argv, &words, &is_group);
    ctl->verb_word = cmd->argv[0];
    if (!verb && !is_group)
        return s_fail(ctl, CTL_USAGE, 0, "unknown verb (stratactl --help lists them)");
    if (!verb)
        return s_fail(ctl, CTL_USAGE, 0, "needs a sub-verb (stratactl help %s)", cmd->argv[0]);
    ctl->verb = verb;
    cmd->argc -= words;
    cmd->argv += words;
    if (cmd->help)
        return CTL_OK;
    for (unsigned i = 0; i < sizeof s_flag_names / sizeof s_flag_names[0]; i++)
        if ((ctl->flags_given & (1u << i)) && !(verb->flags & (1u << i))) {
            s_verb_usage(ctl, stderr, verb);
            return s_fail(ctl, CTL_USAGE, 0, "%s is not a flag of %s", s_flag_names[i], verb->name);
        }
    if (cmd->argc < verb->min_args || cmd->argc > verb->max_args) {
        s_verb_usage(ctl, stderr, verb);
        if (verb->min_args == verb->max_args)
            return s_fail(ctl, CTL_USAGE, 0, "takes %d argument%s, got %d", verb->min_args,
                          verb->min_args == 1 ? "" : "s", cmd->argc);
        return s_fail(ctl, CTL_USAGE, 0, "takes %d to %d arguments, got %d", verb->min_args,
                      verb->max_args, cmd->argc);
    }
    return CTL_OK;
}

static int s_run(ctl_t *ctl, int argc, char **argv)
{
    cmdline_t cmd = {0};
    int exit_code = s_parse(ctl, argc, argv, &cmd);
    if (exit_code)
        return exit_code;
    if (cmd.argc == 0) {
        if (cmd.help) {
            s_usage(ctl, stdout);
            return CTL_OK;
        }
        if (cmd.version) {
            if (ctl->json)
                cJSON_AddStringToObject(s_doc(ctl), "version", STRATA_VERSION);
            else
                printf("stratactl %s\n", STRATA_VERSION);
            return CTL_OK;
        }
        s_usage(ctl, stderr);
        return s_fail(ctl, CTL_USAGE, 0, "no verb given");
    }
    if ((exit_code = s_select(ctl, &cmd)))
        return exit_code;
    if (cmd.help) {
        s_verb_usage(ctl, stdout, ctl->verb);
        return CTL_OK;
    }
    if (ctl->verb->needs_server) {
        strata_client_options_t opts = {.endpoint = ctl->endpoint, .timeout_ms = ctl->timeout_ms};
        strata_error_t err;
        int rc = strata_client_connect(&opts, &ctl->client, &err);
        if (rc)
            return s_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg);
    }
    return ctl->verb->handler(ctl, cmd.argc, cmd.argv);
}

int main(int argc, char **argv)
{
    /* Ctrl-C should end a stuck call at once: there is nothing to flush. */
    zsys_handler_set(NULL);
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = s_xmalloc, .free_fn = free});

    const char *env_server = getenv("STRATA_SERVER");
    ctl_t ctl = {
        .endpoint = env_server && env_server[0] ? env_server : STRATA_CLIENT_DEFAULT_ENDPOINT,
        .timeout_ms = STRATA_CLIENT_DEFAULT_TIMEOUT_MS,
        .durability = STRATA_DURABILITY_SYNC,
        .level = -1,
    };
    int exit_code = s_run(&ctl, argc, argv);
    if (ctl.json && ctl.doc) {
        /* A JSON-lines verb's error stays one line too. */
        bool one_line = ctl.verb && ctl.verb->json_lines;
        char *text = one_line ? cJSON_PrintUnformatted(ctl.doc) : cJSON_Print(ctl.doc);
        puts(text);
        free(text);
    }
    cJSON_Delete(ctl.doc);
    strata_client_destroy(&ctl.client);
    return exit_code;
}
