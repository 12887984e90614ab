/* stratactl: the operator's command line for a Strata node. Every verb is one
 * row of s_verbs (arity, flags, usage and help all come from that row); a
 * handler makes its client calls and prints a table, or with --json fills the
 * one JSON document main prints. Usage and exit codes: services/ctl/README.md. */
#define _GNU_SOURCE
#include "ctl.h"

const ctl_exit_code_t ctl_exit_codes[] = {
    {CTL_OK, "ok"},
    {CTL_NOT_FOUND, "not found"},
    {CTL_USAGE, "usage error"},
    {CTL_FAILED, "server error (or a record the server would refuse)"},
    {CTL_UNREACHABLE, "unreachable: no reply within --timeout"},
};
const size_t ctl_n_exit_codes = sizeof ctl_exit_codes / sizeof ctl_exit_codes[0];

const verb_t ctl_verbs[] = {
    {"put", 1, 2, FLAG_STDIN | FLAG_FILE, true, "KEY VALUE | KEY -x | KEY --file PATH",
     "write VALUE (or stdin's bytes, or the file's) under KEY", ctl_put, false,
     "  -x, --stdin        the value is stdin's bytes, all of them (as redis-cli -x)\n"
     "  --file PATH        the value is the file's bytes\n"
     "  A value over the protocol's cap of 1 MiB is refused before sending (exit 3).\n"},
    {"get", 1, 1, FLAG_RECORD | FLAG_RAW | FLAG_HEX, true, "KEY [--record | --raw | --hex]",
     "print KEY's value (--record: decoded as a typed record)", ctl_get, false,
     "  Text: UTF-8 as is, control characters and bytes that are not UTF-8 as \\xNN.\n"
     "  --raw              the value's bytes exactly, nothing added (no newline)\n"
     "  --hex              the value as lowercase hex, then a newline\n"},
    {"mget", 1, STRATA_PROTO_MAX_MULTI_GET, FLAG_HEX, true, "KEY... [--hex]",
     "print several keys' values read at one point (one multi_get)", ctl_mget, false,
     "  One line per key, in order: KEY<TAB>VALUE, or KEY<TAB>(not found); exit 1 when\n"
     "  any key is missing (the others are still printed).\n"},
    {"del", 1, 1, 0, true, "KEY", "delete KEY", ctl_del, false, NULL},
    {"batch", 0, 3 * STRATA_PROTO_MAX_BATCH_OPS, FLAG_STDIN, true,
     "[put KEY VALUE | del KEY]... [--stdin]", "write several puts and deletes atomically",
     ctl_batch, false,
     "  The ops of the arguments first, then with --stdin (or -x) one op per line:\n"
     "    put KEY VALUE\n"
     "    del KEY\n"
     "  Words are separated by spaces or tabs. A word is bare (its bytes as they are)\n"
     "  or \"quoted\", where \\\\ \\\" \\n \\r \\t \\0 and \\xHH are one byte each.\n"
     "  Blank lines and lines starting with # are skipped. At most 1024 ops; prints\n"
     "  'seq N ops M', N the last op's seq. A bad line writes nothing (exit 2).\n"},
    {"scan", 0, 2, FLAG_LIMIT | FLAG_PAGE | FLAG_HEX, true,
     "[START [END]] [--limit N] [--page N] [--hex]",
     "list keys in [START, END), paging with the cursor", ctl_scan, false, NULL},
    {"status", 0, 0, 0, true, "", "role, term, last and durable seq", ctl_status, false, NULL},
    {"stats", 0, 0, 0, true, "", "the server's counters", ctl_stats, false, NULL},
    {"record put", 1, 1 + MAX_RECORD_FIELDS, 0, true, "TYPE field=value ...",
     "write a typed record (proto/RECORDS.md); prints seq, topic and key", ctl_record_put, false,
     "  Every field is required. id(N): 1..N printable ASCII bytes, no '/'; f64: a\n"
     "  finite number; u64: a whole number > 0; enum: one of the names given.\n"
     "  OrderInsert (topic orders, key o/ORDER_ID): order_id id(40), user_id id(32),\n"
     "    instrument_id id(16), direction buy|sell, offset open|close, price f64 > 0,\n"
     "    volume f64 > 0, timestamp_ns u64\n"
     "  OrderCancel (orders, o/ORDER_ID): order_id, user_id, instrument_id, timestamp_ns\n"
     "  TradeExecuted (trades, t/TRADE_ID): trade_id id(40), order_id id(40),\n"
     "    exchange_order_id id(40), instrument_id, direction buy|sell, price f64 > 0,\n"
     "    volume f64 > 0, timestamp_ns\n"
     "  AccountUpdate (accounts, a/USER_ID): user_id, balance f64, available f64,\n"
     "    frozen f64 >= 0, margin f64 >= 0, timestamp_ns\n"
     "  MarketTick (market, m/INSTRUMENT_ID/TIMESTAMP_NS): instrument_id, last f64 >= 0,\n"
     "    bid f64 >= 0, ask f64 >= 0, volume f64 >= 0, timestamp_ns\n"
     "  Raw (topic and key from the record): topic id(32) not starting with $,\n"
     "    key 1..1024 bytes, data 0..1 MiB\n"
     "  e.g. stratactl record put OrderCancel order_id=A1 user_id=u1 instrument_id=X\n"
     "       timestamp_ns=1700000000000000001\n"},
    {"record get", 1, 1, 0, true, "KEY", "print KEY's value decoded as a typed record",
     ctl_record_get, false, NULL},
    {"tail", 0, STRATA_PROTO_MAX_TOPICS,
     FLAG_FROM | FLAG_FROM_TIME | FLAG_TO | FLAG_DELAYED | FLAG_DURABLE | FLAG_COUNT | FLAG_HEX |
         FLAGS_DISTRIBUTOR,
     false,
     "[TOPIC...] [--from SEQ | --from-time T] [--to SEQ|T] [--delayed] [--durable NAME] "
     "[--count N] [--hex]",
     "print records as they arrive from the distributor (--json: JSON lines)", ctl_tail, true,
     "  TOPIC is a prefix; none: every topic not beginning with '$'.\n"
     "  One line per record: seq, topic, key, value (tab-separated). A typed record's value\n"
     "  is shown as its JSON, other values as text when they are UTF-8 without control\n"
     "  characters, else as 0x-hex.\n"
     "  --json prints one JSON object per line (JSON lines), not one document.\n"
     "  --from SEQ / --from-time T  replay history from there, then go on live; T is ns\n"
     "                     since the epoch or UTC ISO-8601, e.g. 2026-11-24T10:00:00Z\n"
     "  --delayed          the delayed (batched) stream instead of the live one\n"
     "  --durable NAME     a durable session: resumes after NAME's acked seq; each record\n"
     "                     is acked once printed\n"
     "  --to SEQ | --to T  stop after seq SEQ, or after the last record committed at or\n"
     "                     before T (UTC ISO-8601 only: digits are a seq); tail ends (exit\n"
     "                     0) at SEQ itself or at the first record past either, unprinted\n"
     "  --count N          stop after N records (exit 0); Ctrl-C also exits 0\n"
     "  --hex              keys and values as lowercase hex\n"
     "  --live, --delayed-endpoint, --history ENDPOINT, --dir DATADIR  where the\n"
     "                     distributor is: flags, else DATADIR/distributor.endpoints,\n"
     "                     else " STRATA_SUB_DEFAULT_LIVE ", " STRATA_SUB_DEFAULT_DELAYED
     ", " STRATA_SUB_DEFAULT_HISTORY "\n"},
    {"subscribers", 0, 2, FLAG_HISTORY_EP | FLAG_DIR | FLAG_TO, false,
     "[delete NAME | reset NAME --to earliest|latest|SEQ] [--history ENDPOINT | --dir DATADIR]",
     "durable subscribers: topics, acked seq, lag, unacked, resends, connected", ctl_subscribers,
     false,
     "  delete NAME        remove a durable subscriber and its stored offset\n"
     "  reset NAME --to earliest|latest|SEQ  move its acked seq: the next delivered is\n"
     "                     the oldest retained seq, the next committed one, or SEQ\n"
     "  Both are refused while the subscriber's session is connected (exit 3).\n"},
    {"snapshot", 0, 0, FLAG_DIR | FLAG_CONTROL, false, "--dir DATADIR | --control ENDPOINT",
     "take a snapshot now through the node's strata-snapshotter; prints its seq and path",
     ctl_snapshot, false,
     "  --dir DATADIR      the snapshotter that published DATADIR/snapshotter.endpoints\n"
     "  --control ENDPOINT the snapshotter's control endpoint itself (ipc:// or tcp://)\n"},
    {"snapshots", 0, 0, FLAG_DIR, false, "--dir DATADIR",
     "the node's sealed snapshots: name, seq, term, time, files, bytes", ctl_snapshots, false,
     NULL},
    {"backup", 1, 1, FLAG_DIR | FLAG_SNAPSHOT | FLAG_CONTROL, false,
     "DEST --dir DATADIR [--snapshot NAME|PATH] | DEST --control ENDPOINT",
     "copy the newest (or the named, or with --control a new) snapshot to DEST, checking "
     "every file's checksum",
     ctl_backup, false,
     "  DEST must not exist or be an empty directory; the copy is built in DEST.tmp and\n"
     "  renamed when whole. Progress goes to stderr (not with --json or -q).\n"
     "  --dir DATADIR      the newest sealed snapshot on disk (or --snapshot's); no\n"
     "                     process needed\n"
     "  --control ENDPOINT ask the running snapshotter there for a snapshot now, then\n"
     "                     copy it (its directory must be readable from here)\n"},
    {"restore", 2, 2, 0, false, "BACKUP DATADIR",
     "check every checksum of BACKUP, then copy it into DATADIR (new or empty)", ctl_restore, false,
     NULL},
    {"keygen", 1, 1, FLAG_ROLE, false, "PATH",
     "write a CURVE certificate: PATH (public, for a server's clients_dir or a client's "
     "--server-key) and PATH_secret",
     ctl_keygen, false,
     "  --role client|admin|peer records the role a server grants this key (default client).\n"
     "  PATH_secret is created mode 0600; keep it where only its owner reads it.\n"},
    {"verify", 1, 1, 0, false, "DATADIR",
     "check every WAL entry, SSTable block and the MANIFEST (and a backup's SNAPSHOT); "
     "exit 3 on any problem",
     ctl_verify, false,
     "  Read-only: safe beside a running writer. One line per finding on stdout:\n"
     "  'problem FILE offset N: what' or 'warning ...' (a torn WAL tail, an orphan table:\n"
     "  nothing acknowledged is lost), then a summary line.\n"},
    {"compact", 0, 0, FLAG_DIR | FLAG_CONTROL | FLAG_LEVEL | FLAG_RANGE, false,
     "--dir DATADIR | --control ENDPOINT [--level N] [--range LO..HI]",
     "compact now through the node's strata-compactor and wait, showing progress", ctl_compact,
     false,
     "  No --level: every level from L0 down to the deepest holding the range, so the\n"
     "  range ends up in one level. --level N: only L N into L N+1 (N in 0..5).\n"
     "  --range LO..HI limits L1+ to tables overlapping [LO, HI] (either side may be\n"
     "  empty); L0 always goes whole, since its tables overlap. Progress goes to stderr\n"
     "  on a terminal (not with --json or -q).\n"
     "  --dir DATADIR finds the compactor through DATADIR/compactor.endpoints;\n"
     "  --control ENDPOINT is its control endpoint itself.\n"},
    {"cluster status", 0, 0, FLAGS_CLUSTER, false, "[--servers EP,EP,... | --cluster FILE]",
     "every node's role, term, leader, commit, last and durable seq, and its peers",
     ctl_cluster_status, false,
     "  The nodes are --servers, else the lines of --cluster FILE (one client endpoint per\n"
     "  line, as deploy/strata-cluster writes DIR/cluster.endpoints), else -s alone.\n"
     "  A node that does not answer within --timeout is shown unreachable: exit 4.\n"},
    {"cluster transfer", 1, 1, FLAGS_CLUSTER, false, "NODE [--servers EP,... | --cluster FILE]",
     "ask the master to hand its office to voter NODE", ctl_cluster_transfer, false,
     "  The master is found among the nodes as cluster status lists them, then by the\n"
     "  \"not master\" answers' hints. Success means the hand-over has started.\n"},
    {"cluster step-down", 0, 0, FLAGS_CLUSTER, false, "[--servers EP,... | --cluster FILE]",
     "ask the master to hand its office to the voter most caught up", ctl_cluster_step_down, false,
     NULL},
    {"check", 0, 0, FLAGS_CHECK, false,
     "[--dir DATADIR] [--process NAME[,NAME...]] [--max-lag-ms MS] [--disk-warn PCT] "
     "[--disk-crit PCT]",
     "the node's health for healthchecks and monitoring; Nagios exit codes", ctl_check, false,
     "  Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a usage error). The first line is\n"
     "  'STATE: summary', then one line per check, 'name: STATE: detail'.\n"
     "  --dir DATADIR      the node's data dir (default $STRATA_NODE_DATA_DIR, else\n"
     "                     " CTL_CHECK_DEFAULT_DIR ")\n"
     "  --process NAMES    only these of writer, election, replicator, compactor,\n"
     "                     distributor, snapshotter (default: the writer, a cluster node's\n"
     "                     election and replicator, and every other process that published\n"
     "                     DATADIR/NAME.endpoints)\n"
     "  --timeout MS       per probe (default 2000 for check)\n"
     "  --max-lag-ms MS    WARNING beyond this replication lag (default 5000)\n"
     "  --disk-warn PCT, --disk-crit PCT  WARNING / CRITICAL when the file system of\n"
     "                     DATADIR is this full (default 80 and 90)\n"
     "  Each process is reached through what it published in DATADIR/NAME.endpoints:\n"
     "  its HTTP /readyz, else its control endpoint; one that does not answer is\n"
     "  CRITICAL. The writer's stats give its role and term (a cluster node without a\n"
     "  master, or a learner, is a WARNING) and, in a cluster, the replication lag.\n"
     "  DATADIR must have free space and take a new file.\n"},
    {"dump wal", 1, 64, FLAG_FROM | FLAG_COUNT | FLAG_HEX, false,
     "PATH... [--from SEQ] [--count N] [--hex]",
     "print a WAL's entries offline: seq, term, topic, key, value (--json: JSON lines)",
     ctl_dump_wal, true,
     "  PATH is a data dir (its wal/), a WAL directory or one segment file. One line per\n"
     "  entry: seq, term, topic, key, value, tab-separated (values as tail shows them).\n"
     "  --from SEQ, --count N  start at seq SEQ, stop after N entries\n"
     "  Damage is named on stderr, 'problem FILE offset N: kind' (exit 3), after the\n"
     "  entries before it; a torn tail is a warning. A summary goes to stderr.\n"},
    {"dump sst", 1, 64, FLAG_FROM | FLAG_COUNT | FLAG_HEX | FLAG_STATS, false,
     "TABLE... [--stats] [--from SEQ] [--count N] [--hex]",
     "print an SSTable's entries (seq, key, value) or with --stats its properties", ctl_dump_sst,
     true,
     "  Entries in table order (key ascending, then seq descending); --from skips\n"
     "  entries below seq SEQ. --stats: entries, deletes, seq range, data blocks, key\n"
     "  and value bytes, smallest and largest key. A damaged block is named with its\n"
     "  file and offset (exit 3) after the entries before it.\n"},
    {"dump manifest", 1, 64, FLAG_HEX, false, "DATADIR|MANIFEST...",
     "print a MANIFEST's version edits: flushed, last seq, tables added and deleted",
     ctl_dump_manifest, true,
     "  A data dir's MANIFEST is the one its CURRENT names. One line per edit, then\n"
     "  one indented line per table added or deleted; a torn final record (ignored\n"
     "  by recovery) is a warning on stderr, damage before it an error (exit 3).\n"},
    {"dump snapshot", 1, 64, FLAG_HEX, false, "SNAPSHOTDIR...",
     "print a snapshot's SNAPSHOT listing, its MANIFEST's edits and each table's properties",
     ctl_dump_snapshot, true, NULL},
    {"repair", 1, 1, FLAG_DRY_RUN, false, "DATADIR [--dry-run]",
     "keep the good prefix of a damaged WAL, moving what is cut into DATADIR/wal-repair-TIME/",
     ctl_repair, false,
     "  Offline: refused while a writer holds DATADIR/LOCK. Each damaged segment is first\n"
     "  copied whole into DATADIR/wal-repair-<UTC time>/ (as NAME.before-repair), then\n"
     "  the log is cut after its last good entry and the later segments are moved\n"
     "  there too; every file and directory is fsync'd. Nothing is deleted. Prints what\n"
     "  was kept (segments, seq range, last good seq) and cut (file, offset, bytes).\n"
     "  --dry-run          only say what is damaged and what would be kept\n"},
    {"help", 0, 2, 0, false, "[VERB]", "this text, or one verb's usage", ctl_help, false, NULL},
};
const size_t ctl_n_verbs = sizeof ctl_verbs / sizeof ctl_verbs[0];

static int s_run(ctl_t *ctl, int argc, char **argv)
{
    ctl_cmdline_t cmd = {0};
    int exit_code = ctl_parse(ctl, argc, argv, &cmd);
    if (exit_code)
        return exit_code;
    if (cmd.argc == 0) {
        if (cmd.help) {
            ctl_usage(ctl, stdout);
            return CTL_OK;
        }
        if (cmd.version) {
            if (ctl->json)
                cJSON_AddStringToObject(ctl_doc(ctl), "version", STRATA_VERSION);
            else
                printf("stratactl %s\n", STRATA_VERSION);
            return CTL_OK;
        }
        ctl_usage(ctl, stderr);
        return ctl_fail(ctl, CTL_USAGE, 0, "no verb given");
    }
    if ((exit_code = ctl_select(ctl, &cmd)))
        return exit_code;
    if (cmd.help) {
        ctl_verb_usage(ctl, stdout, ctl->verb);
        return CTL_OK;
    }
    if (ctl->verb->needs_server) {
        strata_client_options_t opts = {.endpoint = ctl->endpoint,
                                        .timeout_ms = ctl->timeout_ms,
                                        .curve_server_key = ctl->server_key,
                                        .curve_cert = ctl->cert};
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
    const char *env_key = getenv("STRATA_SERVER_KEY"), *env_cert = getenv("STRATA_CERT");
    ctl_t ctl = {
        .endpoint = env_server && env_server[0] ? env_server : STRATA_CLIENT_DEFAULT_ENDPOINT,
        .server_key = env_key && env_key[0] ? env_key : NULL,
        .cert = env_cert && env_cert[0] ? env_cert : NULL,
        .timeout_ms = STRATA_CLIENT_DEFAULT_TIMEOUT_MS,
        .durability = STRATA_DURABILITY_SYNC,
        .level = -1,
        .max_lag_ms = CTL_CHECK_MAX_LAG_MS,
        .disk_warn_pct = CTL_CHECK_DISK_WARN_PCT,
        .disk_crit_pct = CTL_CHECK_DISK_CRIT_PCT,
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
