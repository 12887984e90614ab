/* The command line: global and verb flags, usage and help from the verb
 * table, and the checks of a verb's arity and flags. */
#define _GNU_SOURCE
#include "ctl.h"

/* ---- usage --------------------------------------------------------------- */

/* One verb's usage: a line of text, or with --json a row of the "verbs" array. */
void ctl_verb_usage(ctl_t *ctl, FILE *out, const verb_t *verb)
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

void ctl_usage(ctl_t *ctl, FILE *out)
{
    if (ctl->json && out == stdout) {
        for (size_t i = 0; i < ctl_n_verbs; i++)
            ctl_verb_usage(ctl, out, &ctl_verbs[i]);
        cJSON *codes = cJSON_AddObjectToObject(ctl->doc, "exit_codes");
        for (size_t i = 0; i < ctl_n_exit_codes; i++) {
            char code[8];
            snprintf(code, sizeof code, "%d", ctl_exit_codes[i].code);
            cJSON_AddStringToObject(codes, code, ctl_exit_codes[i].meaning);
        }
        cJSON *check = cJSON_AddObjectToObject(ctl->doc, "check_exit_codes");
        cJSON_AddStringToObject(check, "0", "OK");
        cJSON_AddStringToObject(check, "1", "WARNING");
        cJSON_AddStringToObject(check, "2", "CRITICAL");
        cJSON_AddStringToObject(check, "3", "UNKNOWN (usage errors too)");
        return;
    }
    fputs("usage: stratactl [flags] VERB [args]\n\nverbs:\n", out);
    /* A usage longer than the column gets its summary on the next line. */
    enum { MAX_WIDTH = 44 };
    int width = 0;
    for (size_t i = 0; i < ctl_n_verbs; i++) {
        int len = (int)(strlen(ctl_verbs[i].name) + 1 + strlen(ctl_verbs[i].args_usage));
        width = len > width && len <= MAX_WIDTH ? len : width;
    }
    for (size_t i = 0; i < ctl_n_verbs; i++) {
        char left[160];
        snprintf(left, sizeof left, "%s %s", ctl_verbs[i].name, ctl_verbs[i].args_usage);
        if ((int)strlen(left) > width)
            fprintf(out, "  %s\n  %-*s  %s\n", left, width, "", ctl_verbs[i].summary);
        else
            fprintf(out, "  %-*s  %s\n", width, left, ctl_verbs[i].summary);
    }
    fprintf(out,
            "\nflags:\n"
            "  -s, --server ENDPOINT  node to talk to (default $STRATA_SERVER, else %s)\n"
            "      --server-key KEY   CURVE: the server's public key (40 characters of Z85)\n"
            "                         or its public certificate file ($STRATA_SERVER_KEY)\n"
            "      --cert FILE        CURVE: this client's certificate with its secret key,\n"
            "                         as stratactl keygen writes it ($STRATA_CERT)\n"
            "      --timeout MS       any verb: wait this long for each reply (default %d;\n"
            "                         snapshot waits 600000 and check 2000 unless given)\n"
            "      --json             print one JSON document on stdout and nothing else\n"
            "                         (tail: one JSON object per line)\n"
            "      --async            writes are acknowledged before fsync (default: sync)\n"
            "  -x, --stdin            put: the value is stdin's bytes; batch: ops from stdin\n"
            "      --file PATH        put: the value is the file's bytes (at most 1 MiB)\n"
            "      --raw              get: the value's bytes exactly, nothing added\n"
            "      --hex              get, mget, scan, tail, dump: keys and values as hex\n"
            "      --stats            dump sst: the table's properties, not its entries\n"
            "      --dry-run          repair: say what is damaged, change nothing\n"
            "      --control ENDPOINT snapshot, compact, backup: the running process's\n"
            "                         control endpoint (instead of --dir DATADIR)\n"
            "  -q, --quiet            no output for writes, no message for a missing key\n"
            "      --version          print the version\n"
            "  -h, --help             this text; `stratactl help VERB` for one verb\n"
            "  Flags may follow the verb; `--` ends them (for a key starting with '-').\n"
            "  `stratactl tail --help` lists the distributor's flags (tail, subscribers).\n"
            "  `stratactl help cluster` lists the cluster verbs and their flags\n"
            "  (--servers EP,..., --cluster FILE).\n"
            "  `stratactl help dump` lists the offline dump verbs and their flags\n"
            "  (--from SEQ, --count N, --stats).\n"
            "  `stratactl help check` lists check's flags (--process, --max-lag-ms,\n"
            "  --disk-warn, --disk-crit).\n"
            "\nexit codes:\n",
            STRATA_CLIENT_DEFAULT_ENDPOINT, STRATA_CLIENT_DEFAULT_TIMEOUT_MS);
    for (size_t i = 0; i < ctl_n_exit_codes; i++)
        fprintf(out, "  %d  %s\n", ctl_exit_codes[i].code, ctl_exit_codes[i].meaning);
    fputs("check's are Nagios's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage errors too)\n", out);
}

/* "record put" takes two words; a word that only starts such names (e.g.
 * "record") is reported as a group. Sets *words to the words consumed. */
static const verb_t *s_find_verb(int argc, char **argv, int *words, bool *is_group)
{
    *is_group = false;
    for (size_t i = 0; i < ctl_n_verbs; i++) {
        const char *name = ctl_verbs[i].name;
        const char *space = strchr(name, ' ');
        if (!space && strcmp(name, argv[0]) == 0) {
            *words = 1;
            return &ctl_verbs[i];
        }
        if (space && strlen(argv[0]) == (size_t)(space - name) &&
            strncmp(name, argv[0], (size_t)(space - name)) == 0) {
            *is_group = true;
            if (argc > 1 && strcmp(space + 1, argv[1]) == 0) {
                *words = 2;
                return &ctl_verbs[i];
            }
        }
    }
    return NULL;
}

int ctl_help(ctl_t *ctl, int argc, char **argv)
{
    if (argc == 0) {
        ctl_usage(ctl, stdout);
        return CTL_OK;
    }
    int words;
    bool is_group;
    const verb_t *verb = s_find_verb(argc, argv, &words, &is_group);
    if (verb && words == argc) {
        ctl_verb_usage(ctl, stdout, verb);
        return CTL_OK;
    }
    if (verb || !is_group || argc > 1)
        return ctl_fail(ctl, CTL_USAGE, 0, "no verb '%s%s%s'", argv[0], argc > 1 ? " " : "",
                        argc > 1 ? argv[1] : "");
    /* "help record": every verb of the group. */
    size_t group_len = strlen(argv[0]);
    for (size_t i = 0; i < ctl_n_verbs; i++)
        if (strncmp(ctl_verbs[i].name, argv[0], group_len) == 0 &&
            ctl_verbs[i].name[group_len] == ' ')
            ctl_verb_usage(ctl, stdout, &ctl_verbs[i]);
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
    OPT_SERVER_KEY,
    OPT_CERT,
    OPT_ROLE,
    OPT_SERVERS,
    OPT_CLUSTER,
    OPT_PROCESS,
    OPT_MAX_LAG,
    OPT_DISK_WARN,
    OPT_DISK_CRIT,
    OPT_FILE,
    OPT_RAW,
    OPT_HEX,
    OPT_TO,
    OPT_STATS,
    OPT_DRY_RUN,
    OPT_CONTROL,
};

static const struct option s_options[] = {
    {"server", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"server-key", required_argument, NULL, OPT_SERVER_KEY},
    {"cert", required_argument, NULL, OPT_CERT},
    {"role", required_argument, NULL, OPT_ROLE},
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
    {"servers", required_argument, NULL, OPT_SERVERS},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"process", required_argument, NULL, OPT_PROCESS},
    {"max-lag-ms", required_argument, NULL, OPT_MAX_LAG},
    {"disk-warn", required_argument, NULL, OPT_DISK_WARN},
    {"disk-crit", required_argument, NULL, OPT_DISK_CRIT},
    {"stdin", no_argument, NULL, 'x'},
    {"file", required_argument, NULL, OPT_FILE},
    {"raw", no_argument, NULL, OPT_RAW},
    {"hex", no_argument, NULL, OPT_HEX},
    {"to", required_argument, NULL, OPT_TO},
    {"stats", no_argument, NULL, OPT_STATS},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"control", required_argument, NULL, OPT_CONTROL},
    {NULL, 0, NULL, 0},
};

static void s_flag_error(ctl_cmdline_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_flag_error(ctl_cmdline_t *cmd, const char *fmt, ...)
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
int ctl_parse(ctl_t *ctl, int argc, char **argv, ctl_cmdline_t *cmd)
{
    uint64_t number;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":s:qhx", s_options, NULL)) != -1) {
        switch (opt) {
        case 's':
            ctl->endpoint = optarg;
            break;
        case OPT_TIMEOUT:
            if (s_parse_number(optarg, 1, INT32_MAX, &number)) {
                ctl->timeout_ms = (int)number;
                ctl->timeout_given = true;
            } else
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
        case OPT_SERVER_KEY:
            ctl->server_key = optarg;
            break;
        case OPT_CERT:
            ctl->cert = optarg;
            break;
        case OPT_ROLE:
            if (strcmp(optarg, "client") && strcmp(optarg, "admin") && strcmp(optarg, "peer"))
                s_flag_error(cmd, "--role: '%s' is not client, admin or peer", optarg);
            ctl->role = optarg;
            ctl->flags_given |= FLAG_ROLE;
            break;
        case OPT_SERVERS:
            ctl->servers = optarg;
            ctl->flags_given |= FLAG_SERVERS;
            break;
        case OPT_CLUSTER:
            ctl->cluster = optarg;
            ctl->flags_given |= FLAG_CLUSTER;
            break;
        case OPT_PROCESS:
            ctl->processes = optarg;
            ctl->flags_given |= FLAG_PROCESS;
            break;
        case OPT_MAX_LAG:
            if (!s_parse_number(optarg, 0, UINT32_MAX, &ctl->max_lag_ms))
                s_flag_error(cmd, "--max-lag-ms: '%s' is not a number of ms", optarg);
            ctl->flags_given |= FLAG_MAX_LAG;
            break;
        case OPT_DISK_WARN:
        case OPT_DISK_CRIT:
            if (s_parse_number(optarg, 0, 100, &number))
                *(opt == OPT_DISK_WARN ? &ctl->disk_warn_pct : &ctl->disk_crit_pct) =
                    (unsigned)number;
            else
                s_flag_error(cmd, "%s: '%s' is not a percentage in 0..100",
                             opt == OPT_DISK_WARN ? "--disk-warn" : "--disk-crit", optarg);
            ctl->flags_given |= opt == OPT_DISK_WARN ? FLAG_DISK_WARN : FLAG_DISK_CRIT;
            break;
        case 'x':
            ctl->from_stdin = true;
            ctl->flags_given |= FLAG_STDIN;
            break;
        case OPT_FILE:
            ctl->file = optarg;
            ctl->flags_given |= FLAG_FILE;
            break;
        case OPT_RAW:
            ctl->raw = true;
            ctl->flags_given |= FLAG_RAW;
            break;
        case OPT_HEX:
            ctl->hex = true;
            ctl->flags_given |= FLAG_HEX;
            break;
        case OPT_TO:
            /* Digits are a seq; a time is ISO-8601 (ns since the epoch would
             * read as a seq). */
            ctl->to_word = NULL;
            if (s_parse_number(optarg, 1, UINT64_MAX, &ctl->to_seq))
                ctl->to_time_ns = 0;
            else if (!strcmp(optarg, "earliest") || !strcmp(optarg, "latest"))
                ctl->to_word = optarg, ctl->to_seq = ctl->to_time_ns = 0;
            else if (strchr(optarg, 'T') && s_parse_time(optarg, &ctl->to_time_ns))
                ctl->to_seq = 0;
            else
                s_flag_error(cmd,
                             "--to: '%s' is neither a seq > 0 nor a UTC time like "
                             "2026-11-24T10:00:00Z",
                             optarg);
            ctl->flags_given |= FLAG_TO;
            break;
        case OPT_STATS:
            ctl->stats = true;
            ctl->flags_given |= FLAG_STATS;
            break;
        case OPT_DRY_RUN:
            ctl->dry_run = true;
            ctl->flags_given |= FLAG_DRY_RUN;
            break;
        case OPT_CONTROL:
            ctl->control = optarg;
            ctl->flags_given |= FLAG_CONTROL;
            break;
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
    /* An error names the verb, and check's usage errors take its exit code. */
    if (cmd->argc > 0)
        ctl->verb_word = cmd->argv[0];
    return cmd->error[0] ? ctl_fail(ctl, CTL_USAGE, 0, "%s", cmd->error) : CTL_OK;
}

static const char *const s_flag_names[] = {
    "--limit",     "--page",      "--record",   "--from",    "--from-time",
    "--delayed",   "--durable",   "--count",    "--live",    "--delayed-endpoint",
    "--history",   "--dir",       "--snapshot", "--level",   "--range",
    "--role",      "--servers",   "--cluster",  "--process", "--max-lag-ms",
    "--disk-warn", "--disk-crit", "--stdin",    "--file",    "--raw",
    "--hex",       "--to",        "--stats",    "--dry-run", "--control"};

/* Picks the verb and checks its arity and flags: the one place they are checked. */
int ctl_select(ctl_t *ctl, ctl_cmdline_t *cmd)
{
    int words = 0;
    bool is_group = false;
    const verb_t *verb = s_find_verb(cmd->argc, cmd->argv, &words, &is_group);
    ctl->verb_word = cmd->argv[0];
    if (!verb && !is_group)
        return ctl_fail(ctl, CTL_USAGE, 0, "unknown verb (stratactl --help lists them)");
    if (!verb && cmd->help && cmd->argc == 1) {
        /* "record --help" is "help record": every verb of the group. */
        static const verb_t *help;
        for (size_t i = 0; !help && i < ctl_n_verbs; i++)
            if (ctl_verbs[i].handler == ctl_help)
                help = &ctl_verbs[i];
        ctl->verb = help;
        cmd->help = false;
        return CTL_OK;
    }
    if (!verb)
        return ctl_fail(ctl, CTL_USAGE, 0, "needs a sub-verb (stratactl help %s)", cmd->argv[0]);
    ctl->verb = verb;
    cmd->argc -= words;
    cmd->argv += words;
    if (cmd->help)
        return CTL_OK;
    for (unsigned i = 0; i < sizeof s_flag_names / sizeof s_flag_names[0]; i++)
        if ((ctl->flags_given & (1u << i)) && !(verb->flags & (1u << i))) {
            ctl_verb_usage(ctl, stderr, verb);
            return ctl_fail(ctl, CTL_USAGE, 0, "%s is not a flag of %s", s_flag_names[i],
                            verb->name);
        }
    if (ctl->raw + ctl->hex + ctl->json > 1) {
        ctl_verb_usage(ctl, stderr, verb);
        return ctl_fail(ctl, CTL_USAGE, 0, "--raw, --hex and --json exclude each other");
    }
    if (cmd->argc < verb->min_args || cmd->argc > verb->max_args) {
        ctl_verb_usage(ctl, stderr, verb);
        if (verb->min_args == verb->max_args)
            return ctl_fail(ctl, CTL_USAGE, 0, "takes %d argument%s, got %d", verb->min_args,
                            verb->min_args == 1 ? "" : "s", cmd->argc);
        return ctl_fail(ctl, CTL_USAGE, 0, "takes %d to %d arguments, got %d", verb->min_args,
                        verb->max_args, cmd->argc);
    }
    return CTL_OK;
}
