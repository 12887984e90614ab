/* stratactl: the operator's command line for a Strata node. Every verb is one
 * row of s_verbs (arity, flags, usage and help all come from that row); a
 * handler (data.c, node.c) makes its client calls and prints a table, or with
 * --json fills the one JSON document main prints. Usage and exit codes:
 * services/ctl/README.md. */
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
#include "strata/memtable.h"
#include "strata/record.h"
#include "strata/snapshot.h"
#include "strata/verify.h"
#include "strata/subscriber.h"
#include "stratactl.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif

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

static verb_fn s_help;

static const verb_t s_verbs[] = {
    {"put", 2, 2, 0, true, "KEY VALUE", "write VALUE under KEY", verb_put, false, NULL},
    {"get", 1, 1, FLAG_RECORD, true, "KEY [--record]",
     "print KEY's value (--record: decoded as a typed record)", verb_get, false, NULL},
    {"del", 1, 1, 0, true, "KEY", "delete KEY", verb_del, false, NULL},
    {"scan", 0, 2, FLAG_LIMIT | FLAG_PAGE, true, "[START [END]] [--limit N] [--page N]",
     "list keys in [START, END), paging with the cursor", verb_scan, false, NULL},
    {"status", 0, 0, 0, true, "", "role, term, last and durable seq", verb_status, false, NULL},
    {"stats", 0, 0, 0, true, "", "the server's counters", verb_stats, false, NULL},
    {"record put", 1, 1 + MAX_RECORD_FIELDS, 0, true, "TYPE field=value ...",
     "write a typed record (proto/RECORDS.md); prints seq, topic and key", verb_record_put, false,
     NULL},
    {"record get", 1, 1, 0, true, "KEY", "print KEY's value decoded as a typed record",
     verb_record_get, false, NULL},
    {"tail", 0, STRATA_PROTO_MAX_TOPICS,
     FLAG_FROM | FLAG_FROM_TIME | FLAG_DELAYED | FLAG_DURABLE | FLAG_COUNT | FLAGS_DISTRIBUTOR,
     false, "[TOPIC...] [--from SEQ | --from-time T] [--delayed] [--durable NAME] [--count N]",
     "print records as they arrive from the distributor (--json: JSON lines)", verb_tail, true,
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
     "durable subscribers: topics, acked seq, lag, unacked, resends, connected", verb_subscribers,
     false, NULL},
    {"snapshot", 0, 0, FLAG_DIR, false, "--dir DATADIR",
     "take a snapshot now through the node's strata-snapshotter; prints its seq and path",
     verb_snapshot, false, NULL},
    {"snapshots", 0, 0, FLAG_DIR, false, "--dir DATADIR",
     "the node's sealed snapshots: name, seq, term, time, files, bytes", verb_snapshots, false,
     NULL},
    {"backup", 1, 1, FLAG_DIR | FLAG_SNAPSHOT, false, "DEST --dir DATADIR [--snapshot NAME|PATH]",
     "copy the newest (or the named) snapshot to DEST, checking every file's checksum", verb_backup,
     false,
     "  DEST must not exist or be an empty directory; the copy is built in DEST.tmp and\n"
     "  renamed when whole. Progress goes to stderr (not with --json or -q).\n"},
    {"restore", 2, 2, 0, false, "BACKUP DATADIR",
     "check every checksum of BACKUP, then copy it into DATADIR (new or empty)", verb_restore,
     false, NULL},
    {"verify", 1, 1, 0, false, "DATADIR",
     "check every WAL entry, SSTable block and the MANIFEST (and a backup's SNAPSHOT); "
     "exit 3 on any problem",
     verb_verify, false,
     "  Read-only: safe beside a running writer. One line per finding on stdout:\n"
     "  'problem FILE offset N: what' or 'warning ...' (a torn WAL tail, an orphan table:\n"
     "  nothing acknowledged is lost), then a summary line.\n"},
    {"compact", 0, 0, FLAG_DIR | FLAG_LEVEL | FLAG_RANGE, false,
     "--dir DATADIR [--level N] [--range LO..HI]",
     "compact now through the node's strata-compactor and wait, showing progress", verb_compact,
     false,
     "  No --level: every level from L0 down to the deepest holding the range, so the\n"
     "  range ends up in one level. --level N: only L N into L N+1 (N in 0..5).\n"
     "  --range LO..HI limits L1+ to tables overlapping [LO, HI] (either side may be\n"
     "  empty); L0 always goes whole, since its tables overlap. Progress goes to stderr\n"
     "  on a terminal (not with --json or -q).\n"},
    {"help", 0, 2, 0, false, "[VERB]", "this text, or one verb's usage", s_help, false, NULL},
};

#define N_VERBS (sizeof s_verbs / sizeof s_verbs[0])

/* ---- usage --------------------------------------------------------------- */

/* One verb's usage: a line of text, or with --json a row of the "verbs" array. */
static void s_verb_usage(ctl_t *ctl, FILE *out, const verb_t *verb)
{
    if (ctl->json && out == stdout) {
        cJSON *verbs = cJSON_GetObjectItem(ctl_doc(ctl), "verbs");
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
        return ctl_fail(ctl, CTL_USAGE, 0, "no verb '%s%s%s'", argv[0], argc > 1 ? " " : "",
                        argc > 1 ? argv[1] : "");
    /* "help record": every verb of the group. */
    size_t group_len = strlen(argv[0]);
    for (size_t i = 0; i < N_VERBS; i++)
        if (strncmp(s_verbs[i].name, argv[0], group_len) == 0 && s_verbs[i].name[group_len] == ' ')
            s_verb_usage(ctl, stdout, &s_verbs[i]);
    return CTL_OK;
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
    return cmd->error[0] ? ctl_fail(ctl, CTL_USAGE, 0, "%s", cmd->error) : CTL_OK;
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
        return ctl_fail(ctl, CTL_USAGE, 0, "unknown verb (stratactl --help lists them)");
    if (!verb)
        return ctl_fail(ctl, CTL_USAGE, 0, "needs a sub-verb (stratactl help %s)", cmd->argv[0]);
    ctl->verb = verb;
    cmd->argc -= words;
    cmd->argv += words;
    if (cmd->help)
        return CTL_OK;
    for (unsigned i = 0; i < sizeof s_flag_names / sizeof s_flag_names[0]; i++)
        if ((ctl->flags_given & (1u << i)) && !(verb->flags & (1u << i))) {
            s_verb_usage(ctl, stderr, verb);
            return ctl_fail(ctl, CTL_USAGE, 0, "%s is not a flag of %s", s_flag_names[i],
                            verb->name);
        }
    if (cmd->argc < verb->min_args || cmd->argc > verb->max_args) {
        s_verb_usage(ctl, stderr, verb);
        if (verb->min_args == verb->max_args)
            return ctl_fail(ctl, CTL_USAGE, 0, "takes %d argument%s, got %d", verb->min_args,
                            verb->min_args == 1 ? "" : "s", cmd->argc);
        return ctl_fail(ctl, CTL_USAGE, 0, "takes %d to %d arguments, got %d", verb->min_args,
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
                cJSON_AddStringToObject(ctl_doc(ctl), "version", STRATA_VERSION);
            else
                printf("stratactl %s\n", STRATA_VERSION);
            return CTL_OK;
        }
        s_usage(ctl, stderr);
        return ctl_fail(ctl, CTL_USAGE, 0, "no verb given");
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
            return ctl_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg);
    }
    return ctl->verb->handler(ctl, cmd.argc, cmd.argv);
}

int main(int argc, char **argv)
{
    /* Ctrl-C should end a stuck call at once: there is nothing to flush. */
    zsys_handler_set(NULL);
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = ctl_xmalloc, .free_fn = free});

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
