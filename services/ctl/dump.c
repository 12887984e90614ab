/* The offline verbs that read a node's files without a running process:
 * dump wal|sst|manifest|snapshot (as RocksDB's ldb dump_wal and sst_dump)
 * and repair, which keeps the good prefix of a damaged WAL. Every file is
 * read through the library's own readers: the WAL cursor and verify, the
 * SSTable iterator, strata_manifest_read, strata_snapshot_read. */
#define _GNU_SOURCE
#include "ctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "strata/manifest.h"
#include "strata/sstable.h"
#include "strata/wal.h"

/* ---- shared ------------------------------------------------------------------ */

static bool s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --from and --count: whether seq is shown, and whether the count is used up. */
typedef struct {
    uint64_t shown;
} s_window_t;

static bool s_window_done(const ctl_t *ctl, const s_window_t *w)
{
    return ctl->count && w->shown >= ctl->count;
}

static bool s_window_show(const ctl_t *ctl, s_window_t *w, uint64_t seq)
{
    if (seq < ctl->from_seq || s_window_done(ctl, w))
        return false;
    w->shown++;
    return true;
}

/* A summary or a finding: stderr in text (stdout holds only entries), and
 * with --json stderr too, since stdout holds JSON lines. */
static void s_note(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_note(const ctl_t *ctl, const char *fmt, ...)
{
    if (ctl->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stratactl: %s: ", ctl->verb->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void s_print_json_line(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    puts(text);
    free(text);
    cJSON_Delete(obj);
}

/* ---- dump wal ---------------------------------------------------------------- */

/* Where a WAL path's segments are: a data dir's wal/, a log directory, or a
 * single segment file, which gets a private directory holding a link to it
 * (the cursor reads directories). *tmp is that directory, to remove. */
static int s_wal_dir(ctl_t *ctl, const char *path, char *dir, size_t cap, char *tmp, size_t tmp_cap)
{
    tmp[0] = '\0';
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s/wal", path);
    if (s_is_dir(wal)) {
        snprintf(dir, cap, "%s", wal);
        return CTL_OK;
    }
    if (s_is_dir(path)) {
        snprintf(dir, cap, "%s", path);
        return CTL_OK;
    }
    if (access(path, R_OK) != 0)
        return ctl_fail(ctl, CTL_NOT_FOUND, STRATA_ENOTFOUND, "%s: %s", path, strerror(errno));
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char real[PATH_MAX];
    snprintf(tmp, tmp_cap, "%s/stratactl-dump-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!realpath(path, real) || !mkdtemp(tmp)) {
        tmp[0] = '\0';
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "%s: %s", path, strerror(errno));
    }
    char link[PATH_MAX + 300];
    snprintf(link, sizeof link, "%s/%s", tmp, base);
    if (symlink(real, link) != 0)
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "%s: %s", link, strerror(errno));
    snprintf(dir, cap, "%s", tmp);
    return CTL_OK;
}

static void s_wal_tmp_remove(const char *tmp)
{
    if (!tmp[0])
        return;
    DIR *d = opendir(tmp);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", tmp, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmp);
}

typedef struct {
    const ctl_t *ctl;
    const char *shown_dir; /* the path as the user gave it, for messages */
    bool single_file;
    unsigned problems;
} s_wal_findings_t;

static void s_wal_damage(void *arg, const strata_wal_damage_t *d)
{
    s_wal_findings_t *f = arg;
    const char *base = strrchr(d->file, '/') ? strrchr(d->file, '/') + 1 : d->file;
    char file[PATH_MAX + 300];
    if (f->single_file)
        snprintf(file, sizeof file, "%s", f->shown_dir);
    else
        snprintf(file, sizeof file, "%s/%s", f->shown_dir, base);
    if (!d->torn_tail)
        f->problems++;
    fprintf(stderr, "stratactl: dump wal: %s %s offset %" PRIu64 ": %s%s\n",
            d->torn_tail ? "warning" : "problem", file, d->offset, d->kind,
            d->torn_tail ? " (a torn tail: only unacknowledged writes; a writer's open cuts it)"
                         : "");
}

static int s_dump_wal_one(ctl_t *ctl, const char *path, s_window_t *w)
{
    char dir[PATH_MAX + 8], tmp[PATH_MAX];
    int exit_code = s_wal_dir(ctl, path, dir, sizeof dir, tmp, sizeof tmp);
    if (exit_code) {
        s_wal_tmp_remove(tmp);
        return exit_code;
    }
    strata_wal_cursor_t *cursor = NULL;
    strata_error_t err;
    int rc = strata_wal_cursor_open(dir, 0, &cursor, &err);
    if (rc == 0 && ctl->from_seq > strata_wal_cursor_oldest_seq(cursor))
        rc = strata_wal_cursor_seek(cursor, ctl->from_seq, &err);
    uint64_t entries = 0, last_seq = 0;
    while (rc == 0 && !s_window_done(ctl, w)) {
        strata_entry_t e;
        const uint8_t *raw;
        size_t raw_len;
        rc = strata_wal_cursor_next(cursor, 0, &e, &raw, &raw_len, &err);
        if (rc)
            break;
        entries++;
        last_seq = e.seq;
        if (s_window_show(ctl, w, e.seq))
            ctl_print_entry(ctl, &e, CTL_ENTRY_TERM | CTL_ENTRY_TOPIC | CTL_ENTRY_TIME);
    }
    strata_wal_cursor_close(&cursor);
    bool complete = rc == STRATA_ETIMEDOUT; /* the end of what is intact */
    if (rc && rc != STRATA_ETIMEDOUT && rc != STRATA_ECORRUPT) {
        s_wal_tmp_remove(tmp);
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s: %s",
                        path, err.msg);
    }
    /* The cursor stops at damage as a live reader must; verify says where
     * and what it is, naming the file and offset. */
    s_wal_findings_t found = {.ctl = ctl, .shown_dir = tmp[0] ? path : dir, .single_file = tmp[0]};
    if (complete || rc == STRATA_ECORRUPT) {
        strata_error_t verr;
        int vrc = strata_wal_verify(dir, 0, s_wal_damage, &found, NULL, &verr);
        /* Verify failing to run, or the cursor's damage that verify did
         * not see, is still reported. */
        const char *unexplained = vrc && vrc != STRATA_ECORRUPT                  ? verr.msg
                                  : rc == STRATA_ECORRUPT && found.problems == 0 ? err.msg
                                                                                 : NULL;
        if (unexplained) {
            found.problems++;
            s_note(ctl, "%s: %s", path, unexplained);
        }
    }
    s_wal_tmp_remove(tmp);
    s_note(ctl, "%s: %" PRIu64 " entries read, last seq %" PRIu64 "%s", path, entries, last_seq,
           found.problems ? "; DAMAGED (stratactl repair keeps the good prefix)" : "");
    return found.problems ? CTL_FAILED : CTL_OK;
}

/* ---- dump sst ---------------------------------------------------------------- */

static void s_print_key_text(const ctl_t *ctl, const char *label, const void *key, size_t len)
{
    printf("%s\t", label);
    ctl_print_field(ctl, stdout, key, len);
    putchar('\n');
}

static void s_table_props(ctl_t *ctl, const char *path, const strata_table_props_t *p)
{
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "table", path);
        ctl_json_add_u64(obj, "file_size", p->file_size);
        ctl_json_add_u64(obj, "entries", p->entries);
        ctl_json_add_u64(obj, "deletes", p->deletes);
        ctl_json_add_u64(obj, "min_seq", p->min_seq);
        ctl_json_add_u64(obj, "max_seq", p->max_seq);
        ctl_json_add_u64(obj, "data_blocks", p->data_blocks);
        ctl_json_add_u64(obj, "raw_key_bytes", p->raw_key_bytes);
        ctl_json_add_u64(obj, "raw_value_bytes", p->raw_value_bytes);
        cJSON_AddItemToObject(obj, "smallest_key",
                              ctl_json_bytes(p->smallest_key, p->smallest_len));
        cJSON_AddItemToObject(obj, "largest_key", ctl_json_bytes(p->largest_key, p->largest_len));
        s_print_json_line(obj);
        return;
    }
    printf("table\t%s\nfile_size\t%" PRIu64 "\nentries\t%" PRIu64 "\ndeletes\t%" PRIu64
           "\nmin_seq\t%" PRIu64 "\nmax_seq\t%" PRIu64 "\ndata_blocks\t%" PRIu64
           "\nraw_key_bytes\t%" PRIu64 "\nraw_value_bytes\t%" PRIu64 "\n",
           path, p->file_size, p->entries, p->deletes, p->min_seq, p->max_seq, p->data_blocks,
           p->raw_key_bytes, p->raw_value_bytes);
    s_print_key_text(ctl, "smallest_key", p->smallest_key, p->smallest_len);
    s_print_key_text(ctl, "largest_key", p->largest_key, p->largest_len);
}

static int s_dump_sst_one(ctl_t *ctl, const char *path, s_window_t *w)
{
    strata_table_options_t opts;
    strata_table_options_init(&opts);
    strata_table_t *table = NULL;
    strata_error_t err;
    int rc = strata_table_open(&opts, path, &table, &err);
    if (rc)
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    if (ctl->stats) {
        s_table_props(ctl, path, strata_table_props(table));
        strata_table_close(&table);
        return CTL_OK;
    }
    strata_table_iter_t *it = strata_table_iter_new(table);
    uint64_t entries = 0;
    for (strata_table_iter_seek_first(it); strata_table_iter_valid(it) && !s_window_done(ctl, w);
         strata_table_iter_next(it)) {
        entries++;
        size_t key_len = 0, value_len = 0;
        const void *key = strata_table_iter_key(it, &key_len);
        const void *value = strata_table_iter_value(it, &value_len);
        strata_entry_t e = {.seq = strata_table_iter_seq(it),
                            .type = (uint8_t)strata_table_iter_type(it),
                            .key = key,
                            .key_len = (uint32_t)key_len,
                            .value = value,
                            .value_len = (uint32_t)value_len};
        if (s_window_show(ctl, w, e.seq))
            ctl_print_entry(ctl, &e, 0);
    }
    rc = strata_table_iter_status(it, &err);
    strata_table_iter_destroy(&it);
    strata_table_close(&table);
    if (rc)
        return ctl_fail(ctl, CTL_FAILED, rc, "%s (after %" PRIu64 " good entries)", err.msg,
                        entries);
    s_note(ctl, "%s: %" PRIu64 " entries read", path, entries);
    return CTL_OK;
}

/* ---- dump manifest ------------------------------------------------------------ */

static int s_print_edit(void *arg, const strata_manifest_edit_t *e)
{
    ctl_t *ctl = arg;
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        ctl_json_add_u64(obj, "offset", e->offset);
        if (e->has_flushed_seq)
            ctl_json_add_u64(obj, "flushed_seq", e->flushed_seq);
        if (e->has_last_seq)
            ctl_json_add_u64(obj, "last_seq", e->last_seq);
        if (e->has_next_file)
            ctl_json_add_u64(obj, "next_file", e->next_file);
        cJSON *adds = cJSON_AddArrayToObject(obj, "add");
        for (size_t i = 0; i < e->n_adds; i++) {
            const strata_manifest_add_t *a = &e->adds[i];
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "level", a->level);
            ctl_json_add_u64(row, "number", a->number);
            ctl_json_add_u64(row, "size", a->size);
            ctl_json_add_u64(row, "entries", a->entries);
            ctl_json_add_u64(row, "min_seq", a->min_seq);
            ctl_json_add_u64(row, "max_seq", a->max_seq);
            cJSON_AddItemToObject(row, "smallest", ctl_json_bytes(a->smallest, a->smallest_len));
            cJSON_AddItemToObject(row, "largest", ctl_json_bytes(a->largest, a->largest_len));
            cJSON_AddItemToArray(adds, row);
        }
        cJSON *deletes = cJSON_AddArrayToObject(obj, "delete");
        for (size_t i = 0; i < e->n_deletes; i++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "level", e->deletes[i].level);
            ctl_json_add_u64(row, "number", e->deletes[i].number);
            cJSON_AddItemToArray(deletes, row);
        }
        s_print_json_line(obj);
        return 0;
    }
    printf("edit offset %" PRIu64, e->offset);
    if (e->has_flushed_seq)
        printf(" flushed_seq %" PRIu64, e->flushed_seq);
    if (e->has_last_seq)
        printf(" last_seq %" PRIu64, e->last_seq);
    if (e->has_next_file)
        printf(" next_file %" PRIu64, e->next_file);
    putchar('\n');
    for (size_t i = 0; i < e->n_adds; i++) {
        const strata_manifest_add_t *a = &e->adds[i];
        printf("  add L%d %06" PRIu64 ".sst size %" PRIu64 " entries %" PRIu64 " seq %" PRIu64
               "..%" PRIu64 " keys ",
               a->level, a->number, a->size, a->entries, a->min_seq, a->max_seq);
        ctl_print_field(ctl, stdout, a->smallest, a->smallest_len);
        fputs(" .. ", stdout);
        ctl_print_field(ctl, stdout, a->largest, a->largest_len);
        putchar('\n');
    }
    for (size_t i = 0; i < e->n_deletes; i++)
        printf("  delete L%d %06" PRIu64 ".sst\n", e->deletes[i].level, e->deletes[i].number);
    return 0;
}

static int s_dump_manifest_one(ctl_t *ctl, const char *path, s_window_t *w)
{
    (void)w; /* edits have no seq to window */
    char manifest[PATH_MAX] = "";
    uint64_t end = 0;
    strata_error_t err;
    int rc = strata_manifest_read(path, s_print_edit, ctl, manifest, &end, &err);
    fflush(stdout);
    if (rc) /* the error names the file */
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    struct stat st;
    if (stat(manifest, &st) == 0 && (uint64_t)st.st_size > end)
        s_note(ctl,
               "warning %s offset %" PRIu64 ": torn final record (an edit whose fsync never "
               "returned; recovery ignores it)",
               manifest, end);
    return CTL_OK;
}

/* ---- dump snapshot --------------------------------------------------------------- */

static int s_dump_snapshot_one(ctl_t *ctl, const char *path, s_window_t *w)
{
    strata_snapshot_meta_t meta;
    strata_error_t err;
    int rc = strata_snapshot_read(path, &meta, &err);
    if (rc) /* the error names the file */
        return ctl_fail(ctl, rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND : CTL_FAILED, rc, "%s",
                        err.msg);
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "snapshot", path);
        ctl_json_add_u64(obj, "seq", meta.seq);
        ctl_json_add_u64(obj, "term", meta.term);
        ctl_json_add_u64(obj, "time_ns", meta.time_ns);
        cJSON_AddStringToObject(obj, "node", meta.node);
        ctl_json_add_u64(obj, "bytes", meta.bytes);
        cJSON *files = cJSON_AddArrayToObject(obj, "files");
        for (size_t i = 0; i < meta.n_files; i++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "name", meta.files[i].name);
            ctl_json_add_u64(row, "size", meta.files[i].size);
            char crc[16];
            snprintf(crc, sizeof crc, "%08x", meta.files[i].crc32c);
            cJSON_AddStringToObject(row, "crc32c", crc);
            cJSON_AddItemToArray(files, row);
        }
        s_print_json_line(obj);
    } else {
        printf("snapshot %s seq %" PRIu64 " term %" PRIu64 " time_ns %" PRIu64
               " node %s files %zu bytes %" PRIu64 "\n",
               path, meta.seq, meta.term, meta.time_ns, meta.node, meta.n_files, meta.bytes);
        for (size_t i = 0; i < meta.n_files; i++)
            printf("  file %s size %" PRIu64 " crc32c %08x\n", meta.files[i].name,
                   meta.files[i].size, meta.files[i].crc32c);
    }
    /* Its MANIFEST says which tables make it up; each table's header. */
    int exit_code = s_dump_manifest_one(ctl, path, w);
    for (size_t i = 0; exit_code == CTL_OK && i < meta.n_files; i++) {
        const char *name = meta.files[i].name;
        size_t len = strlen(name);
        if (len < 4 || strcmp(name + len - 4, ".sst") != 0)
            continue;
        char table_path[PATH_MAX * 2];
        snprintf(table_path, sizeof table_path, "%s/%s", path, name);
        strata_table_options_t opts;
        strata_table_options_init(&opts);
        strata_table_t *table = NULL;
        rc = strata_table_open(&opts, table_path, &table, &err);
        if (rc) {
            exit_code = ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
            break;
        }
        s_table_props(ctl, table_path, strata_table_props(table));
        strata_table_close(&table);
    }
    strata_snapshot_meta_free(&meta);
    return exit_code;
}

/* ---- the dump verbs ------------------------------------------------------------- */

/* Dumps each path in turn, --count across them all; the worst exit code. */
static int s_dump_each(ctl_t *ctl, int argc, char **argv,
                       int (*dump)(ctl_t *, const char *, s_window_t *))
{
    s_window_t w = {0};
    int worst = CTL_OK;
    for (int i = 0; i < argc && !s_window_done(ctl, &w); i++) {
        int exit_code = dump(ctl, argv[i], &w);
        worst = exit_code > worst ? exit_code : worst;
    }
    return worst;
}

int ctl_dump_wal(ctl_t *ctl, int argc, char **argv)
{
    return s_dump_each(ctl, argc, argv, s_dump_wal_one);
}

int ctl_dump_sst(ctl_t *ctl, int argc, char **argv)
{
    return s_dump_each(ctl, argc, argv, s_dump_sst_one);
}

int ctl_dump_manifest(ctl_t *ctl, int argc, char **argv)
{
    return s_dump_each(ctl, argc, argv, s_dump_manifest_one);
}

int ctl_dump_snapshot(ctl_t *ctl, int argc, char **argv)
{
    return s_dump_each(ctl, argc, argv, s_dump_snapshot_one);
}

/* ---- repair ----------------------------------------------------------------------- */

/* fsync of a file or directory by path: what makes a rename or a copy durable. */
static int s_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies src to dst (new), fsync'd: the bytes repair is about to cut. */
static int s_copy_file(const char *src, const char *dst, uint64_t *bytes)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    *bytes = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            rc = -1;
            break;
        }
        *bytes += (uint64_t)n;
    }
    if (n < 0 || fsync(out) != 0)
        rc = -1;
    close(in);
    close(out);
    return rc;
}

/* The segments verify found damaged, by file name: what repair may cut. */
typedef struct {
    char names[16][64];
    size_t count;
    uint64_t problems;
    char first[512]; /* the first finding, for the report */
} s_repair_scan_t;

static void s_repair_damage(void *arg, const strata_wal_damage_t *d)
{
    s_repair_scan_t *scan = arg;
    const char *base = strrchr(d->file, '/') ? strrchr(d->file, '/') + 1 : d->file;
    if (!scan->first[0])
        snprintf(scan->first, sizeof scan->first, "%s", d->message);
    scan->problems += !d->torn_tail;
    for (size_t i = 0; i < scan->count; i++)
        if (!strcmp(scan->names[i], base))
            return;
    if (scan->count < sizeof scan->names / sizeof scan->names[0])
        snprintf(scan->names[scan->count++], sizeof scan->names[0], "%s", base);
}

int ctl_repair(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    const char *data_dir = argv[0];
    char wal_dir[PATH_MAX], lock[PATH_MAX];
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", data_dir);
    snprintf(lock, sizeof lock, "%s/LOCK", data_dir);
    if (!s_is_dir(wal_dir))
        return ctl_fail(ctl, CTL_NOT_FOUND, STRATA_ENOTFOUND, "%s: no WAL directory", wal_dir);
    /* The engine holds an flock on DATADIR/LOCK while it is open: take it
     * for the whole repair, so no writer opens the log under us. */
    int lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0)
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "%s: %s", lock, strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EEXIST,
                        "%s is held: a writer has %s open; stop it first", lock, data_dir);
    }
    s_repair_scan_t scan = {0};
    strata_wal_recovery_t before = {0};
    strata_error_t err;
    int rc = strata_wal_verify(wal_dir, 0, s_repair_damage, &scan, &before, &err);
    if (rc && rc != STRATA_ECORRUPT) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    }
    char aside[PATH_MAX + 64] = "";
    /* In the document at once: an error later replaces it whole. */
    cJSON *moved = ctl->json ? cJSON_AddArrayToObject(ctl_doc(ctl), "saved") : NULL;
    uint64_t moved_bytes = 0;
    if (scan.count == 0 || ctl->dry_run)
        goto report;
    /* Everything cut is kept: first a copy of each damaged segment as it
     * is, then the segments repair renames *.corrupt are moved beside it. */
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    snprintf(aside, sizeof aside, "%s/wal-repair-%s", data_dir, stamp);
    if (mkdir(aside, 0700) != 0) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "%s: %s", aside, strerror(errno));
    }
    for (size_t i = 0; i < scan.count; i++) {
        char src[PATH_MAX * 2], dst[PATH_MAX * 2];
        snprintf(src, sizeof src, "%s/%s", wal_dir, scan.names[i]);
        snprintf(dst, sizeof dst, "%s/%s.before-repair", aside, scan.names[i]);
        uint64_t bytes = 0;
        if (s_copy_file(src, dst, &bytes) != 0) {
            close(lock_fd);
            return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "copy %s to %s: %s (nothing repaired)",
                            src, dst, strerror(errno));
        }
        moved_bytes += bytes;
        if (moved)
            cJSON_AddItemToArray(moved, cJSON_CreateString(dst));
        else
            printf("saved %s (%" PRIu64 " bytes) as it was\n", dst, bytes);
    }
    if (s_fsync_path(aside) != 0 || s_fsync_path(data_dir) != 0) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "sync %s: %s (nothing repaired)", aside,
                        strerror(errno));
    }
    /* The library's repair: the good prefix stays, the damaged segment is
     * cut and fsync'd, later segments are renamed *.corrupt. */
    strata_wal_options_t opts = {.dir = wal_dir, .repair = true};
    strata_wal_t *wal = NULL;
    rc = strata_wal_open(&opts, 0, NULL, NULL, &before, &wal, &err);
    if (rc == 0)
        rc = strata_wal_close(&wal, &err);
    if (rc) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, rc, "%s (the damaged segments are saved in %s)", err.msg,
                        aside);
    }
    DIR *d = opendir(wal_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 8 || strcmp(de->d_name + len - 8, ".corrupt") != 0)
            continue;
        char src[PATH_MAX * 2], dst[PATH_MAX * 2];
        snprintf(src, sizeof src, "%s/%s", wal_dir, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", aside, de->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || rename(src, dst) != 0) {
            closedir(d);
            close(lock_fd);
            return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "move %s to %s: %s", src, dst,
                            strerror(errno));
        }
        moved_bytes += (uint64_t)st.st_size;
        if (moved)
            cJSON_AddItemToArray(moved, cJSON_CreateString(dst));
        else
            printf("moved %s (%" PRIu64 " bytes)\n", dst, (uint64_t)st.st_size);
    }
    if (d)
        closedir(d);
    if (s_fsync_path(aside) != 0 || s_fsync_path(wal_dir) != 0) {
        close(lock_fd);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "sync %s: %s", aside, strerror(errno));
    }
report:
    close(lock_fd);
    uint64_t cut = before.repaired_bytes_dropped + before.tail_bytes_dropped;
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddBoolToObject(doc, "damaged", scan.count > 0);
        cJSON_AddBoolToObject(doc, "dry_run", ctl->dry_run);
        if (scan.first[0])
            cJSON_AddStringToObject(doc, "damage", scan.first);
        ctl_json_add_u64(doc, "segments", before.segments);
        ctl_json_add_u64(doc, "first_seq", before.first_seq);
        ctl_json_add_u64(doc, "last_good_seq", before.last_seq);
        ctl_json_add_u64(doc, "bytes_cut", cut);
        if (before.tail_kind[0]) {
            cJSON_AddStringToObject(doc, "cut_file", before.tail_file);
            ctl_json_add_u64(doc, "cut_offset", before.tail_offset);
            cJSON_AddStringToObject(doc, "cut_kind", before.tail_kind);
        }
        if (aside[0])
            cJSON_AddStringToObject(doc, "aside", aside);
        ctl_json_add_u64(doc, "saved_bytes", moved_bytes);
    } else if (scan.count == 0) {
        printf("%s: the WAL is intact: %u segments, seq %" PRIu64 "..%" PRIu64
               "; nothing to repair\n",
               wal_dir, before.segments, before.first_seq, before.last_seq);
    } else if (ctl->dry_run) {
        printf("%s: damaged (%s); would keep seq %" PRIu64 "..%" PRIu64
               " and move what follows aside (--dry-run: nothing changed)\n",
               wal_dir, scan.first, before.first_seq, before.last_seq);
    } else {
        printf("%s: kept %u segments, seq %" PRIu64 "..%" PRIu64 " (last good seq %" PRIu64
               "); cut %" PRIu64 " bytes at %s offset %" PRIu64 " (%s); saved %" PRIu64
               " bytes in %s\n",
               wal_dir, before.segments, before.first_seq, before.last_seq, before.last_seq, cut,
               before.tail_file, before.tail_offset, before.tail_kind, moved_bytes, aside);
    }
    return CTL_OK;
}
