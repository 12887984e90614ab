/* strata_db_verify: the read-only check of a data directory behind
 * `stratactl verify`. The WAL goes through recovery's own scan in verify
 * mode, the MANIFEST through a read-only version set, each table through
 * strata_table_verify; this file only walks the directory and sorts what
 * they find into problems and warnings (lib/engine/verify.md). */
#define _GNU_SOURCE
#include "strata/verify.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata/sstable.h"
#include "strata/wal.h"
#include "version.h"

typedef struct {
    const char *dir;
    strata_verify_fn fn;
    void *arg;
    strata_verify_stats_t *stats;
    strata_error_t first_problem;
} verifier_t;

static void found(verifier_t *v, const char *kind, const char *file, bool has_offset,
                  uint64_t offset, bool fatal, const char *message)
{
    if (fatal && v->stats->problems++ == 0)
        strata_error_set(&v->first_problem, STRATA_ECORRUPT, "%s", message);
    if (!fatal)
        v->stats->warnings++;
    strata_verify_problem_t problem = {
        .file = file,
        .offset = offset,
        .has_offset = has_offset,
        .kind = kind,
        .message = message,
        .fatal = fatal,
    };
    if (v->fn)
        v->fn(v->arg, &problem);
}

/* The library's errors name the place as "<file> offset <n>: <what>". */
static bool offset_in(const char *message, uint64_t *offset)
{
    const char *at = strstr(message, " offset ");
    if (!at || !isdigit((unsigned char)at[8]))
        return false;
    char *end = NULL;
    uint64_t n = strtoull(at + 8, &end, 10);
    if (*end != ':')
        return false;
    *offset = n;
    return true;
}

/* A library error about file as a finding, with the offset it names. */
static void found_error(verifier_t *v, const char *kind, const char *file,
                        const strata_error_t *err)
{
    uint64_t offset = 0;
    bool has_offset = offset_in(err->msg, &offset);
    found(v, kind, file, has_offset, offset, true, err->msg);
}

/* ---- WAL ------------------------------------------------------------- */

static void wal_damage(void *arg, const strata_wal_damage_t *damage)
{
    found(arg, "wal", damage->file, true, damage->offset, !damage->torn_tail, damage->message);
}

/* Scans <dir>/wal; *report gets what open would find. */
static int verify_wal(verifier_t *v, strata_wal_recovery_t *report, strata_error_t *err)
{
    memset(report, 0, sizeof *report);
    char *wal_dir = NULL;
    if (asprintf(&wal_dir, "%s/wal", v->dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    struct stat st;
    int rc = 0;
    if (stat(wal_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        /* Open makes an empty one; what the tables hold is all there is. */
        found(v, "wal", "wal", false, 0, false, "wal: no log directory");
    } else {
        strata_error_t wal_err;
        rc = strata_wal_verify(wal_dir, 0, wal_damage, v, report, &wal_err);
        if (rc == STRATA_ECORRUPT) {
            rc = 0; /* each finding went through wal_damage */
        } else if (rc == STRATA_ENOMEM) {
            *err = wal_err;
        } else if (rc) {
            found_error(v, "wal", "wal", &wal_err); /* the directory cannot be listed */
            rc = 0;
        }
    }
    v->stats->wal_segments = report->segments;
    v->stats->wal_entries = report->entries_replayed;
    v->stats->wal_bytes = report->bytes_scanned;
    free(wal_dir);
    return rc;
}

/* ---- tables ---------------------------------------------------------- */

/* "000007.sst" -> 7; false for anything else ("000007.sst.tmp"). */
static bool table_number(const char *name, uint64_t *number)
{
    size_t digits = strspn(name, "0123456789");
    if (digits == 0 || digits > 19 || strcmp(name + digits, ".sst") != 0)
        return false;
    *number = strtoull(name, NULL, 10);
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The table numbers in dir, sorted, into a malloc'd array. */
static int list_tables(const char *dir, uint64_t **numbers, size_t *count, strata_error_t *err)
{
    *numbers = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return strata_error_set(err, STRATA_EIO, "open directory %s: %s", dir, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t number;
        if (!table_number(de->d_name, &number))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *grown = realloc(*numbers, cap * sizeof *grown);
            if (!grown) {
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *numbers = grown;
        }
        (*numbers)[(*count)++] = number;
    }
    closedir(d);
    if (rc) {
        free(*numbers);
        *numbers = NULL;
        *count = 0;
    } else if (*count) {
        qsort(*numbers, *count, sizeof **numbers, cmp_u64);
    }
    return rc;
}

static bool version_has(const version_t *version, uint64_t number)
{
    for (int level = 0; level < STRATA_LEVELS; level++)
        for (size_t i = 0; i < version->n_files[level]; i++)
            if (version->files[level][i]->number == number)
                return true;
    return false;
}

/* A referenced table found missing: a live writer's compaction may have
 * logged its removal and deleted it since the MANIFEST was read. It is a
 * problem only if the MANIFEST, read again, still lists it. */
static bool still_referenced(verifier_t *v, uint64_t number)
{
    vset_t *vset = NULL;
    strata_error_t ignored;
    if (vset_open_readonly(v->dir, NULL, NULL, NULL, &vset, &ignored) != 0)
        return true;
    version_t *version = vset_current(vset);
    bool listed = version_has(version, number);
    version_unref(&version);
    vset_close(&vset);
    return listed;
}

/* Opens and checks one table; expected (NULL when the MANIFEST could not
 * be read) is what the MANIFEST says about it. */
static int verify_table(verifier_t *v, uint64_t number, const vfile_t *expected,
                        const char *manifest, strata_error_t *err)
{
    char name[32];
    snprintf(name, sizeof name, "%06" PRIu64 ".sst", number);
    char *path = NULL;
    if (asprintf(&path, "%s/%s", v->dir, name) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    strata_table_options_t opts;
    strata_table_options_init(&opts);
    strata_table_t *table = NULL;
    strata_error_t table_err;
    int rc = strata_table_open(&opts, path, &table, &table_err);
    bool missing = rc && access(path, F_OK) != 0 && errno == ENOENT;
    free(path);
    if (missing) {
        /* Unless a live writer deleted it just now: after a compaction
         * it logged since the MANIFEST was read, or (with no MANIFEST to
         * go by) since the directory was listed. */
        if (expected && still_referenced(v, number)) {
            char message[160];
            snprintf(message, sizeof message, "%s: missing, and %s lists it", name, manifest);
            found(v, "sstable", name, false, 0, true, message);
        }
        return 0;
    }
    if (rc == 0)
        rc = strata_table_verify(table, &table_err);
    if (rc == STRATA_ENOMEM) {
        strata_table_close(&table);
        *err = table_err;
        return rc;
    }
    v->stats->tables++;
    if (rc) {
        found_error(v, "sstable", name, &table_err);
    } else {
        const strata_table_props_t *props = strata_table_props(table);
        v->stats->table_bytes += props->file_size;
        if (expected &&
            (props->file_size != expected->size || props->entries != expected->entries)) {
            char message[256];
            snprintf(message, sizeof message,
                     "%s: %" PRIu64 " bytes holding %" PRIu64 " entries, %s says %" PRIu64
                     " holding %" PRIu64,
                     name, props->file_size, props->entries, manifest, expected->size,
                     expected->entries);
            found(v, "sstable", name, false, 0, true, message);
        }
    }
    strata_table_close(&table);
    return 0;
}

/* Every table the version references, then the orphans beside them. */
static int verify_referenced_tables(verifier_t *v, version_t *version, const char *manifest,
                                    const uint64_t *on_disk, size_t n_on_disk, strata_error_t *err)
{
    for (int level = 0; level < STRATA_LEVELS; level++)
        for (size_t i = 0; i < version->n_files[level]; i++) {
            const vfile_t *f = version->files[level][i];
            int rc = verify_table(v, f->number, f, manifest, err);
            if (rc)
                return rc;
        }
    for (size_t i = 0; i < n_on_disk; i++) {
        if (version_has(version, on_disk[i]))
            continue;
        /* Left by a crash mid-flush or mid-compaction (or being written by
         * a live flush): open deletes it; nothing refers to it. */
        char name[32], message[160];
        snprintf(name, sizeof name, "%06" PRIu64 ".sst", on_disk[i]);
        snprintf(message, sizeof message, "%s: orphan, %s does not list it", name, manifest);
        found(v, "sstable", name, false, 0, false, message);
    }
    return 0;
}

/* ---- the directory ----------------------------------------------------- */

/* The MANIFEST, its tables and how the WAL meets them. */
static int verify_manifest_and_tables(verifier_t *v, const strata_wal_recovery_t *wal,
                                      strata_error_t *err)
{
    manifest_report_t report;
    vset_t *vset = NULL;
    strata_error_t manifest_err;
    int rc = vset_open_readonly(v->dir, NULL, NULL, &report, &vset, &manifest_err);
    if (rc == STRATA_ENOMEM) {
        *err = manifest_err;
        return rc;
    }
    char manifest[32];
    snprintf(manifest, sizeof manifest, "MANIFEST-%06" PRIu64, report.manifest_number);
    /* Listed after the MANIFEST is read, so a live writer's new table is
     * at worst an orphan and a table it deleted is not seen at all. */
    uint64_t *on_disk = NULL;
    size_t n_on_disk = 0;
    int list_rc = list_tables(v->dir, &on_disk, &n_on_disk, err);
    if (list_rc) {
        vset_close(&vset);
        return list_rc;
    }
    if (rc) {
        /* No version to go by: check every table on disk instead. */
        bool about_current = report.manifest_number == 0 ||
                             strncmp(manifest_err.msg, "CURRENT", strlen("CURRENT")) == 0;
        found_error(v, "manifest", about_current ? "CURRENT" : manifest, &manifest_err);
        rc = 0;
        for (size_t i = 0; i < n_on_disk && rc == 0; i++)
            rc = verify_table(v, on_disk[i], NULL, manifest, err);
        goto out;
    }
    v->stats->manifest_files = 1;
    if (report.torn_tail) {
        char message[160];
        snprintf(message, sizeof message,
                 "%s offset %" PRIu64 ": torn final record, an edit that never took effect",
                 manifest, report.torn_tail_offset);
        found(v, "manifest", manifest, true, report.torn_tail_offset, false, message);
    }
    version_t *version = vset_current(vset);
    rc = verify_referenced_tables(v, version, manifest, on_disk, n_on_disk, err);
    version_unref(&version);

    /* The WAL was read first, and both ends only move up, so a live
     * writer cannot make this fire: the log must pick up where the tables
     * stop. */
    uint64_t flushed = vset_flushed_seq(vset);
    if (rc == 0 && wal->first_seq > flushed + 1) {
        char message[256];
        snprintf(message, sizeof message,
                 "wal: the log starts at seq %" PRIu64 " but %s has the tables only up to seq "
                 "%" PRIu64 ": seqs %" PRIu64 "..%" PRIu64 " are missing",
                 wal->first_seq, manifest, flushed, flushed + 1, wal->first_seq - 1);
        found(v, "wal", "wal", false, 0, true, message);
    }
    if (vset_last_seq(vset) > v->stats->last_seq)
        v->stats->last_seq = vset_last_seq(vset);
out:
    vset_close(&vset);
    free(on_disk);
    return rc;
}

int strata_db_verify(const char *dir, strata_verify_fn fn, void *arg, strata_verify_stats_t *stats,
                     strata_error_t *err)
{
    strata_error_clear(err);
    strata_verify_stats_t local_stats;
    if (!stats)
        stats = &local_stats;
    memset(stats, 0, sizeof *stats);
    if (!dir)
        return strata_error_set(err, STRATA_EINVAL, "verify needs a directory");
    struct stat st;
    if (stat(dir, &st) != 0) {
        int sys = errno;
        return strata_error_set(err, sys == ENOENT ? STRATA_ENOTFOUND : STRATA_EIO, "%s: %s", dir,
                                strerror(sys));
    }
    if (!S_ISDIR(st.st_mode))
        return strata_error_set(err, STRATA_EINVAL, "%s: not a directory", dir);
    char *current = NULL;
    if (asprintf(&current, "%s/CURRENT", dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    bool has_current = stat(current, &st) == 0;
    free(current);
    if (!has_current)
        return strata_error_set(err, STRATA_ENOTFOUND,
                                "%s: no CURRENT, not a Strata data directory", dir);

    verifier_t v = {.dir = dir, .fn = fn, .arg = arg, .stats = stats};
    strata_error_clear(&v.first_problem);
    /* The WAL before the MANIFEST: see the seq check after the tables. */
    strata_wal_recovery_t wal;
    int rc = verify_wal(&v, &wal, err);
    stats->last_seq = wal.last_seq;
    if (rc == 0)
        rc = verify_manifest_and_tables(&v, &wal, err);
    if (rc)
        return rc;
    if (stats->problems) {
        if (err)
            *err = v.first_problem;
        return STRATA_ECORRUPT;
    }
    return 0;
}
