/* The node's verbs: snapshot, snapshots, backup, restore, verify, compact. */
#define _GNU_SOURCE
#include "ctl.h"

/* ---- snapshots, backup, restore ------------------------------------------- */

/* Where the node keeps its snapshots: what the running snapshotter wrote in
 * DATADIR/snapshotter.endpoints, else DATADIR/snapshots. */
static int s_snapshots_dir(ctl_t *ctl, char *out, size_t cap)
{
    if (!ctl->dir)
        return ctl_fail(ctl, CTL_USAGE, 0, "needs --dir DATADIR");
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

/* Connects ctl->client to the node's strata-NAME: at --control ENDPOINT,
 * else through the endpoint it wrote in DATADIR/NAME.endpoints. */
static int s_connect_service(ctl_t *ctl, const char *name, int timeout_ms)
{
    if (ctl->control && ctl->dir)
        return ctl_fail(ctl, CTL_USAGE, 0, "--dir and --control exclude each other");
    if (!ctl->control && !ctl->dir)
        return ctl_fail(ctl, CTL_USAGE, 0, "needs --dir DATADIR or --control ENDPOINT");
    char endpoint[PATH_MAX + 32];
    if (ctl->control) {
        snprintf(endpoint, sizeof endpoint, "%s", ctl->control);
    } else {
        char path[PATH_MAX], key[64];
        snprintf(path, sizeof path, "%s/%s.endpoints", ctl->dir, name);
        snprintf(key, sizeof key, "%s/endpoint", name);
        zconfig_t *root = zconfig_load(path);
        if (!root)
            return ctl_fail(ctl, CTL_UNREACHABLE, 0,
                            "cannot read %s (is strata-%s running on that data dir?)", path, name);
        snprintf(endpoint, sizeof endpoint, "%s", zconfig_get(root, key, ""));
        zconfig_destroy(&root);
    }
    strata_client_options_t opts = {.endpoint = endpoint, .timeout_ms = timeout_ms};
    strata_error_t err;
    int rc = strata_client_connect(&opts, &ctl->client, &err);
    return rc ? ctl_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg)
              : CTL_OK;
}

/* Asks the snapshotter for a snapshot now; *reply holds its pairs (the
 * caller clears it). */
static int s_take_snapshot(ctl_t *ctl, strata_reply_t *reply)
{
    /* A snapshot flushes the memtable first: without --timeout, give it
     * more than a read; with one, the user's word stands. */
    int exit_code =
        s_connect_service(ctl, "snapshotter", ctl->timeout_given ? ctl->timeout_ms : 600000);
    if (exit_code)
        return exit_code;
    strata_error_t err;
    int rc = strata_client_control(ctl->client, "snapshot", NULL, 0, reply, &err);
    if (rc) {
        strata_reply_clear(reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    return CTL_OK;
}

int ctl_snapshot(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    strata_reply_t reply;
    int exit_code = s_take_snapshot(ctl, &reply);
    if (exit_code)
        return exit_code;
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        for (size_t i = 0; i < reply.n_pairs; i++) {
            const char *name = reply.pairs[i].name, *value = reply.pairs[i].value;
            if (!strcmp(name, "name") || !strcmp(name, "path"))
                cJSON_AddStringToObject(doc, name, value);
            else if (!strcmp(name, "existed"))
                cJSON_AddBoolToObject(doc, name, !strcmp(value, "true"));
            else
                cJSON_AddItemToObject(doc, name, ctl_json_scalar(value));
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

int ctl_compact(ctl_t *ctl, int argc, char **argv)
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
        return ctl_fail_call(ctl, rc, &err);
    bool show = !ctl->json && !ctl->quiet && isatty(STDERR_FILENO);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The compactor works on; this polls its progress until our request
     * is the one finished. */
    for (;;) {
        rc = strata_client_control(ctl->client, "progress", NULL, 0, &reply, &err);
        if (rc)
            return ctl_fail_call(ctl, rc, &err);
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
                exit_code =
                    ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "compaction %" PRIu64 " failed: %s", id,
                             s_pair(&reply, "manual_error"));
            } else if (ctl->json) {
                cJSON *doc = ctl_doc(ctl);
                ctl_json_add_u64(doc, "id", id);
                cJSON_AddStringToObject(doc, "state", state);
                ctl_json_add_u64(doc, "compactions", s_pair_u64(&reply, "manual_compactions"));
                ctl_json_add_u64(doc, "bytes", done);
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

int ctl_snapshots(ctl_t *ctl, int argc, char **argv)
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
        return ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    cJSON *rows = ctl->json ? cJSON_AddArrayToObject(ctl_doc(ctl), "snapshots") : NULL;
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
            ctl_json_add_u64(row, "seq", meta.seq);
            ctl_json_add_u64(row, "term", meta.term);
            ctl_json_add_u64(row, "time_ns", meta.time_ns);
            ctl_json_add_u64(row, "files", meta.n_files);
            ctl_json_add_u64(row, "bytes", meta.bytes);
            cJSON_AddItemToArray(rows, row);
        } else {
            printf("%-25s  %20" PRIu64 "  %6" PRIu64 "  %-24s  %6zu  %14" PRIu64 "\n", names[i],
                   meta.seq, meta.term, when, meta.n_files, meta.bytes);
        }
        strata_snapshot_meta_free(&meta);
    }
    if (rows)
        ctl_json_add_u64(ctl->doc, "count", count);
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
        cJSON *list = cJSON_GetObjectItem(ctl_doc(ctl), "problems");
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
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    bool show = !ctl->json && !ctl->quiet && isatty(STDERR_FILENO);
    rc = strata_snapshot_copy(src, dst, show ? s_progress : NULL, ctl, &err);
    if (rc) {
        strata_snapshot_meta_free(&meta);
        return ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    }
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "from", src);
        cJSON_AddStringToObject(doc, "to", dst);
        ctl_json_add_u64(doc, "seq", meta.seq);
        ctl_json_add_u64(doc, "files", meta.n_files);
        ctl_json_add_u64(doc, "bytes", meta.bytes);
    } else {
        printf("seq %" PRIu64 " files %zu bytes %" PRIu64 " to %s\n", meta.seq, meta.n_files,
               meta.bytes, dst);
    }
    strata_snapshot_meta_free(&meta);
    return CTL_OK;
}

int ctl_backup(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    char dir[PATH_MAX], src[PATH_MAX * 2];
    if (ctl->control) {
        /* A running node: a snapshot now, then the copy of it. */
        if (ctl->snapshot || ctl->dir)
            return ctl_fail(ctl, CTL_USAGE, 0,
                            "--control takes a new snapshot: not with --dir or --snapshot");
        strata_reply_t reply;
        int exit_code = s_take_snapshot(ctl, &reply);
        if (exit_code)
            return exit_code;
        snprintf(src, sizeof src, "%s", s_pair(&reply, "path"));
        strata_reply_clear(&reply);
        if (!src[0])
            return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "the snapshotter named no path");
    } else if (ctl->snapshot && strchr(ctl->snapshot, '/')) {
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
            return ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
        if (count == 0 && !ctl->snapshot) {
            strata_snapshot_list_free(names, count);
            return ctl_fail(ctl, CTL_NOT_FOUND, 0, "no sealed snapshot in %s (stratactl snapshot)",
                            dir);
        }
        snprintf(src, sizeof src, "%s/%s", dir, ctl->snapshot ? ctl->snapshot : names[count - 1]);
        strata_snapshot_list_free(names, count);
    }
    return s_copy_snapshot(ctl, src, argv[0]);
}

int ctl_restore(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    strata_error_t err;
    /* Every file is checked before anything is written: a bad backup names
     * each bad file and leaves DATADIR alone. */
    int rc = strata_snapshot_check(argv[0], s_problem, ctl, &err);
    if (rc)
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    return s_copy_snapshot(ctl, argv[0], argv[1]);
}

static void s_finding(void *arg, const strata_verify_problem_t *p)
{
    ctl_t *ctl = arg;
    if (ctl->json) {
        cJSON *list = cJSON_GetObjectItem(ctl_doc(ctl), p->fatal ? "problems" : "warnings");
        if (!list)
            list = cJSON_AddArrayToObject(ctl->doc, p->fatal ? "problems" : "warnings");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "file", p->file ? p->file : "");
        if (p->has_offset)
            ctl_json_add_u64(row, "offset", p->offset);
        cJSON_AddStringToObject(row, "kind", p->kind ? p->kind : "");
        cJSON_AddStringToObject(row, "message", p->message);
        cJSON_AddItemToArray(list, row);
    } else {
        printf("%s %s\n", p->fatal ? "problem" : "warning", p->message);
    }
}

/* A backup's or snapshot's SNAPSHOT listing, reported as findings. */
typedef struct {
    ctl_t *ctl;
    unsigned reported;
} s_snapshot_findings_t;

static void s_snapshot_finding(void *arg, const char *problem)
{
    s_snapshot_findings_t *f = arg;
    strata_verify_problem_t p = {.kind = "snapshot", .message = problem, .fatal = true};
    s_finding(f->ctl, &p);
    f->reported++;
}

int ctl_verify(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    strata_verify_stats_t stats = {0};
    strata_error_t err;
    int rc = strata_db_verify(argv[0], s_finding, ctl, &stats, &err);
    if (rc && rc != STRATA_ECORRUPT)
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    uint64_t problems = stats.problems;
    char meta[PATH_MAX];
    snprintf(meta, sizeof meta, "%s/" STRATA_SNAPSHOT_FILE, argv[0]);
    bool has_meta = access(meta, F_OK) == 0;
    if (has_meta) {
        strata_error_t serr;
        s_snapshot_findings_t found = {.ctl = ctl};
        int src = strata_snapshot_check(argv[0], s_snapshot_finding, &found, &serr);
        /* A SNAPSHOT file that does not parse names no file of the listing:
         * its own error is the reason, and must be shown. */
        if (src && (src != STRATA_ECORRUPT || found.reported == 0)) {
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
        cJSON *doc = ctl_doc(ctl);
        ctl_json_add_u64(doc, "wal_segments", stats.wal_segments);
        ctl_json_add_u64(doc, "wal_entries", stats.wal_entries);
        ctl_json_add_u64(doc, "tables", stats.tables);
        ctl_json_add_u64(doc, "table_bytes", stats.table_bytes);
        ctl_json_add_u64(doc, "last_seq", stats.last_seq);
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

int ctl_keygen(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    zcert_t *cert = zcert_new();
    if (!cert)
        return ctl_fail(ctl, CTL_FAILED, STRATA_ENOMEM, "cannot make a key pair");
    zcert_set_meta(cert, "role", "%s", ctl->role ? ctl->role : "client");
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", argv[0]);
    /* The secret part is private from the moment it exists. */
    mode_t old = umask(077);
    int rc = zcert_save(cert, argv[0]);
    umask(old);
    if (rc == 0)
        rc = chmod(argv[0], 0644);
    if (rc != 0) {
        zcert_destroy(&cert);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "cannot write %s and %s", argv[0], secret);
    }
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "public_key", zcert_public_txt(cert));
        cJSON_AddStringToObject(doc, "role", ctl->role ? ctl->role : "client");
        cJSON_AddStringToObject(doc, "public", argv[0]);
        cJSON_AddStringToObject(doc, "secret", secret);
    } else if (!ctl->quiet) {
        printf("public key %s (role %s)\npublic %s\nsecret %s\n", zcert_public_txt(cert),
               ctl->role ? ctl->role : "client", argv[0], secret);
    }
    zcert_destroy(&cert);
    return CTL_OK;
}
