/* Snapshot metadata, checks and copies; see snapshot.md. Plain POSIX I/O:
 * these run in the snapshotter and stratactl, never on the write path. */
#define _GNU_SOURCE
#include "strata/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strata/crc.h"

#define CHUNK          (1u << 20)
#define MAX_META_BYTES (64u << 20)
#define MAX_NAME       1024
#define META_MAGIC     "strata-snapshot"

/* ---- small file helpers ---------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int fsync_path(const char *path, strata_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strata_error_set(err, STRATA_EIO, "open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc ? strata_error_set(err, STRATA_EIO, "fsync %s: %s", path, strerror(e)) : 0;
}

static int fsync_parent(const char *path, strata_error_t *err)
{
    char *copy = strdup(path);
    if (!copy)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    char *slash = strrchr(copy, '/');
    const char *parent = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    int rc = fsync_path(parent, err);
    free(copy);
    return rc;
}

/* Only names our own writers produce, so a crafted SNAPSHOT cannot point a
 * copy outside its directory. */
static bool name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= MAX_NAME || name[0] == '/' || strstr(name, ".."))
        return false;
    for (const char *c = name; *c; c++)
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            *c != '.' && *c != '_' && *c != '-' && *c != '/')
            return false;
    return true;
}

/* size and CRC32C of a whole file, read in CHUNK pieces into buf. */
static int file_crc(const char *path, uint8_t *buf, uint64_t *size, uint32_t *crc,
                    strata_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strata_error_set(err, errno == ENOENT ? STRATA_ENOTFOUND : STRATA_EIO, "open %s: %s",
                                path, strerror(errno));
    *size = 0;
    *crc = 0;
    for (;;) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            return strata_error_set(err, STRATA_EIO, "read %s: %s", path, strerror(e));
        }
        if (got == 0)
            break;
        *crc = strata_crc32c(*crc, buf, (size_t)got);
        *size += (uint64_t)got;
    }
    close(fd);
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void strata_snapshot_meta_free(strata_snapshot_meta_t *meta)
{
    if (!meta)
        return;
    for (size_t i = 0; i < meta->n_files; i++)
        free(meta->files[i].name);
    free(meta->files);
    memset(meta, 0, sizeof *meta);
}

static int meta_add(strata_snapshot_meta_t *meta, const char *name, uint64_t size, uint32_t crc,
                    strata_error_t *err)
{
    if (meta->n_files >= STRATA_SNAPSHOT_MAX_FILES)
        return strata_error_set(err, STRATA_ETOOBIG, "snapshot: more than %u files",
                                (unsigned)STRATA_SNAPSHOT_MAX_FILES);
    if ((meta->n_files & (meta->n_files + 1)) == 0 || meta->n_files == 0) {
        size_t cap = meta->n_files ? (meta->n_files + 1) * 2 : 16;
        strata_snapshot_file_t *grown = realloc(meta->files, cap * sizeof *grown);
        if (!grown)
            return strata_error_set(err, STRATA_ENOMEM, "out of memory");
        meta->files = grown;
    }
    char *copy = strdup(name);
    if (!copy)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    meta->files[meta->n_files++] = (strata_snapshot_file_t){copy, size, crc};
    meta->bytes += size;
    return 0;
}

/* ---- seal ------------------------------------------------------------------ */

/* Adds every regular file under root/rel (rel "" for root itself). */
static int walk(const char *root, const char *rel, uint8_t *buf, strata_snapshot_meta_t *meta,
                strata_error_t *err)
{
    char *dir_path = *rel ? path_join(root, rel) : strdup(root);
    if (!dir_path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    DIR *d = opendir(dir_path);
    if (!d) {
        int rc = strata_error_set(err, STRATA_EIO, "open %s: %s", dir_path, strerror(errno));
        free(dir_path);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!*rel &&
            (!strcmp(de->d_name, STRATA_SNAPSHOT_FILE) ||
             !strcmp(de->d_name, STRATA_SNAPSHOT_FILE ".tmp") || !strcmp(de->d_name, "LOCK")))
            continue;
        char *child_rel = *rel ? path_join(rel, de->d_name) : strdup(de->d_name);
        char *child = child_rel ? path_join(root, child_rel) : NULL;
        struct stat st;
        if (!child)
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        else if (!name_ok(child_rel))
            rc = strata_error_set(err, STRATA_EINVAL, "%s: a name snapshots do not hold", child);
        else if (lstat(child, &st) != 0)
            rc = strata_error_set(err, STRATA_EIO, "stat %s: %s", child, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = walk(root, child_rel, buf, meta, err);
        else if (!S_ISREG(st.st_mode))
            rc = strata_error_set(err, STRATA_EINVAL, "%s: not a regular file", child);
        else {
            uint64_t size;
            uint32_t crc;
            rc = file_crc(child, buf, &size, &crc, err);
            if (rc == 0)
                rc = meta_add(meta, child_rel, size, crc, err);
        }
        free(child);
        free(child_rel);
    }
    closedir(d);
    free(dir_path);
    return rc;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const strata_snapshot_file_t *)a)->name,
                  ((const strata_snapshot_file_t *)b)->name);
}

/* The SNAPSHOT text of meta, ending in its own checksum line. */
static char *meta_format(const strata_snapshot_meta_t *meta, size_t *len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    fprintf(out,
            META_MAGIC " %u\nseq %" PRIu64 "\nterm %" PRIu64 "\ntime_ns %" PRIu64
                       "\nnode %s\nfiles %zu\n",
            meta->version, meta->seq, meta->term, meta->time_ns, meta->node, meta->n_files);
    for (size_t i = 0; i < meta->n_files; i++)
        fprintf(out, "file %" PRIu64 " %08" PRIx32 " %s\n", meta->files[i].size,
                meta->files[i].crc32c, meta->files[i].name);
    fflush(out);
    uint32_t crc = strata_crc32c(0, text, size);
    fprintf(out, "end %08" PRIx32 "\n", crc);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    *len = size;
    return text;
}

static int write_file_durably(const char *path, const void *data, size_t len, strata_error_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return strata_error_set(err, STRATA_EIO, "create %s: %s", path, strerror(errno));
    int rc = write_all(fd, data, len) != 0 || fsync(fd) != 0 ? errno : 0;
    close(fd);
    return rc ? strata_error_set(err, STRATA_EIO, "write %s: %s", path, strerror(rc)) : 0;
}

int strata_snapshot_seal(const char *dir, uint64_t seq, uint64_t term, const char *node,
                         strata_snapshot_meta_t *meta_out, strata_error_t *err)
{
    strata_snapshot_meta_t meta = {.version = STRATA_SNAPSHOT_VERSION, .seq = seq, .term = term};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    meta.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    snprintf(meta.node, sizeof meta.node, "%s", node && *node ? node : "-");
    for (char *c = meta.node; *c; c++)
        if (*c <= ' ' || *c > '~')
            *c = '_';
    uint8_t *buf = malloc(CHUNK);
    if (!buf)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = walk(dir, "", buf, &meta, err);
    free(buf);
    if (rc == 0 && meta.n_files)
        qsort(meta.files, meta.n_files, sizeof *meta.files, cmp_files);
    size_t len = 0;
    char *text = rc == 0 ? meta_format(&meta, &len) : NULL;
    if (rc == 0 && !text)
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
    char *tmp = rc == 0 ? path_join(dir, STRATA_SNAPSHOT_FILE ".tmp") : NULL;
    char *final = rc == 0 ? path_join(dir, STRATA_SNAPSHOT_FILE) : NULL;
    if (rc == 0 && (!tmp || !final))
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
    if (rc == 0)
        rc = write_file_durably(tmp, text, len, err);
    if (rc == 0 && rename(tmp, final) != 0)
        rc = strata_error_set(err, STRATA_EIO, "rename %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = fsync_path(dir, err);
    free(text);
    free(tmp);
    free(final);
    if (rc == 0 && meta_out)
        *meta_out = meta;
    else
        strata_snapshot_meta_free(&meta);
    return rc;
}

/* ---- read ------------------------------------------------------------------ */

static int bad_meta(strata_error_t *err, const char *path, size_t line, const char *what)
{
    return strata_error_set(err, STRATA_ECORRUPT, "%s line %zu: %s", path, line, what);
}

static int parse_meta(const char *path, char *text, size_t len, strata_snapshot_meta_t *meta,
                      strata_error_t *err)
{
    /* The last line is "end <crc>" over every byte before it. */
    if (len < 14 || text[len - 1] != '\n')
        return bad_meta(err, path, 0, "truncated (no final end line)");
    text[len - 1] = '\0';
    char *end_line = strrchr(text, '\n');
    end_line = end_line ? end_line + 1 : text;
    uint32_t want = 0;
    if (sscanf(end_line, "end %8" SCNx32, &want) != 1)
        return bad_meta(err, path, 0, "truncated (no final end line)");
    uint32_t got = strata_crc32c(0, text, (size_t)(end_line - text));
    if (got != want) {
        char what[96];
        snprintf(what, sizeof what, "checksum %08" PRIx32 " does not match end %08" PRIx32, got,
                 want);
        return bad_meta(err, path, 0, what);
    }
    end_line[0] = '\0';
    size_t line_no = 0, declared = 0;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        char name[MAX_NAME + 1];
        uint64_t size;
        uint32_t crc;
        if (line_no == 1) {
            if (sscanf(line, META_MAGIC " %" SCNu32, &meta->version) != 1)
                rc = bad_meta(err, path, line_no, "not a Strata SNAPSHOT file");
            else if (meta->version != STRATA_SNAPSHOT_VERSION)
                rc = bad_meta(err, path, line_no, "unknown version (this build reads 1)");
        } else if (!strncmp(line, "seq ", 4)) {
            meta->seq = strtoull(line + 4, NULL, 10);
        } else if (!strncmp(line, "term ", 5)) {
            meta->term = strtoull(line + 5, NULL, 10);
        } else if (!strncmp(line, "time_ns ", 8)) {
            meta->time_ns = strtoull(line + 8, NULL, 10);
        } else if (!strncmp(line, "node ", 5)) {
            snprintf(meta->node, sizeof meta->node, "%s", line + 5);
        } else if (!strncmp(line, "files ", 6)) {
            declared = strtoull(line + 6, NULL, 10);
            if (declared > STRATA_SNAPSHOT_MAX_FILES)
                rc = bad_meta(err, path, line_no, "more files than the cap");
        } else if (sscanf(line, "file %" SCNu64 " %8" SCNx32 " %1024s", &size, &crc, name) == 3) {
            if (!name_ok(name))
                rc = bad_meta(err, path, line_no, "a file name snapshots do not hold");
            else
                rc = meta_add(meta, name, size, crc, err);
        } else {
            rc = bad_meta(err, path, line_no, "unknown line");
        }
    }
    if (rc == 0 && meta->n_files != declared)
        rc = bad_meta(err, path, line_no, "the file count does not match the files listed");
    return rc;
}

int strata_snapshot_read(const char *dir, strata_snapshot_meta_t *meta, strata_error_t *err)
{
    memset(meta, 0, sizeof *meta);
    char *path = path_join(dir, STRATA_SNAPSHOT_FILE);
    if (!path)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    char *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        rc = strata_error_set(err, errno == ENOENT ? STRATA_ENOTFOUND : STRATA_EIO, "open %s: %s",
                              path, strerror(errno));
    else if (fstat(fd, &st) != 0)
        rc = strata_error_set(err, STRATA_EIO, "stat %s: %s", path, strerror(errno));
    else if (st.st_size > MAX_META_BYTES)
        rc = strata_error_set(err, STRATA_ETOOBIG, "%s: %lld bytes, cap %u", path,
                              (long long)st.st_size, MAX_META_BYTES);
    else if (!(text = malloc((size_t)st.st_size + 1)))
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
    else if (pread(fd, text, (size_t)st.st_size, 0) != st.st_size)
        rc = strata_error_set(err, STRATA_EIO, "read %s: short", path);
    else {
        text[st.st_size] = '\0';
        rc = parse_meta(path, text, (size_t)st.st_size, meta, err);
    }
    if (fd >= 0)
        close(fd);
    free(text);
    free(path);
    if (rc)
        strata_snapshot_meta_free(meta);
    return rc;
}

/* ---- check ----------------------------------------------------------------- */

int strata_snapshot_check(const char *dir, strata_snapshot_problem_fn fn, void *arg,
                          strata_error_t *err)
{
    strata_snapshot_meta_t meta;
    int rc = strata_snapshot_read(dir, &meta, err);
    if (rc)
        return rc; /* one error, in err: the caller reports it */
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        strata_snapshot_meta_free(&meta);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    size_t problems = 0;
    char first[768] = "";
    for (size_t i = 0; i < meta.n_files; i++) {
        const strata_snapshot_file_t *f = &meta.files[i];
        char *path = path_join(dir, f->name);
        char problem[768] = "";
        uint64_t size = 0;
        uint32_t crc = 0;
        strata_error_t ferr;
        strata_error_clear(&ferr);
        if (!path)
            snprintf(problem, sizeof problem, "%s: out of memory", f->name);
        else if (file_crc(path, buf, &size, &crc, &ferr) != 0)
            snprintf(problem, sizeof problem, "%s: %s", f->name, ferr.msg);
        else if (size != f->size)
            snprintf(problem, sizeof problem, "%s: %" PRIu64 " bytes, SNAPSHOT lists %" PRIu64,
                     path, size, f->size);
        else if (crc != f->crc32c)
            snprintf(problem, sizeof problem,
                     "%s: crc32c %08" PRIx32 ", SNAPSHOT lists %08" PRIx32 " (content changed)",
                     path, crc, f->crc32c);
        free(path);
        if (problem[0]) {
            if (problems++ == 0)
                snprintf(first, sizeof first, "%s", problem);
            if (fn)
                fn(arg, problem);
        }
    }
    free(buf);
    strata_snapshot_meta_free(&meta);
    /* With fn every problem, the first too, was reported there already. */
    if (problems && fn)
        return strata_error_set(err, STRATA_ECORRUPT, "%zu of the snapshot's files are bad",
                                problems);
    if (problems)
        return strata_error_set(err, STRATA_ECORRUPT, "%zu of the snapshot's files are bad: %s",
                                problems, first);
    return 0;
}

/* ---- copy ------------------------------------------------------------------ */

/* mkdir -p of path's parents below root (path relative to root). */
static int make_parents(const char *root, const char *rel, strata_error_t *err)
{
    char *copy = strdup(rel);
    if (!copy)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    for (char *slash = strchr(copy, '/'); slash && rc == 0; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        char *dir = path_join(root, copy);
        if (!dir)
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        else if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            rc = strata_error_set(err, STRATA_EIO, "mkdir %s: %s", dir, strerror(errno));
        free(dir);
        *slash = '/';
    }
    free(copy);
    return rc;
}

/* Copies one file, checking the listed CRC of what it read, and fsyncs it. */
static int copy_file(const char *from, const char *to, const strata_snapshot_file_t *f,
                     uint8_t *buf, strata_error_t *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return strata_error_set(err, STRATA_EIO, "open %s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        close(in);
        return strata_error_set(err, STRATA_EIO, "create %s: %s", to, strerror(e));
    }
    uint32_t crc = 0;
    uint64_t size = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read(in, buf, CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = strata_error_set(err, STRATA_EIO, "read %s: %s", from, strerror(errno));
            break;
        }
        if (got == 0)
            break;
        crc = strata_crc32c(crc, buf, (size_t)got);
        size += (uint64_t)got;
        if (write_all(out, buf, (size_t)got) != 0) {
            rc = strata_error_set(err, STRATA_EIO, "write %s: %s", to, strerror(errno));
            break;
        }
    }
    if (rc == 0 && (size != f->size || crc != f->crc32c))
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s: %" PRIu64 " bytes crc32c %08" PRIx32 ", SNAPSHOT lists %" PRIu64
                              " bytes %08" PRIx32,
                              from, size, crc, f->size, f->crc32c);
    if (rc == 0 && fsync(out) != 0)
        rc = strata_error_set(err, STRATA_EIO, "fsync %s: %s", to, strerror(errno));
    close(in);
    close(out);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

int strata_snapshot_remove(const char *dir, strata_error_t *err)
{
    struct stat st;
    if (lstat(dir, &st) != 0 && errno == ENOENT)
        return 0;
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return strata_error_set(err, STRATA_EIO, "remove %s: %s", dir, strerror(errno));
    return fsync_parent(dir, err);
}

static bool empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)) != NULL)
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return empty;
}

int strata_snapshot_copy(const char *src, const char *dst, strata_snapshot_progress_fn progress,
                         void *arg, strata_error_t *err)
{
    struct stat st;
    bool dst_exists = stat(dst, &st) == 0;
    if (dst_exists && !(S_ISDIR(st.st_mode) && empty_dir(dst)))
        return strata_error_set(err, STRATA_EEXIST, "%s exists and is not an empty directory", dst);
    strata_snapshot_meta_t meta;
    int rc = strata_snapshot_read(src, &meta, err);
    if (rc)
        return rc;
    char *tmp = NULL;
    uint8_t *buf = malloc(CHUNK);
    if (!buf || asprintf(&tmp, "%s.tmp", dst) < 0) {
        free(buf);
        strata_snapshot_meta_free(&meta);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    /* A .tmp left by an interrupted copy was never renamed into place. */
    rc = strata_snapshot_remove(tmp, err);
    if (rc == 0 && mkdir(tmp, 0700) != 0)
        rc = strata_error_set(err, STRATA_EIO, "mkdir %s: %s", tmp, strerror(errno));
    /* The checkpoint's WAL directory is empty, so no file brings it along. */
    char *src_wal = path_join(src, "wal"), *dst_wal = path_join(tmp, "wal");
    struct stat wal_st;
    if (rc == 0 && src_wal && dst_wal && stat(src_wal, &wal_st) == 0 && S_ISDIR(wal_st.st_mode) &&
        mkdir(dst_wal, 0700) != 0)
        rc = strata_error_set(err, STRATA_EIO, "mkdir %s: %s", dst_wal, strerror(errno));
    free(src_wal);
    free(dst_wal);
    uint64_t done = 0;
    for (size_t i = 0; i < meta.n_files && rc == 0; i++) {
        const strata_snapshot_file_t *f = &meta.files[i];
        char *from = path_join(src, f->name), *to = path_join(tmp, f->name);
        if (!from || !to)
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        if (rc == 0)
            rc = make_parents(tmp, f->name, err);
        if (rc == 0)
            rc = copy_file(from, to, f, buf, err);
        free(from);
        free(to);
        done += f->size;
        if (rc == 0 && progress)
            progress(arg, f->name, done, meta.bytes);
    }
    /* SNAPSHOT goes last and only after every file checked out, so a copy
     * with a SNAPSHOT is a whole copy. */
    if (rc == 0) {
        char *from = path_join(src, STRATA_SNAPSHOT_FILE),
             *to = path_join(tmp, STRATA_SNAPSHOT_FILE);
        strata_snapshot_file_t whole = {0};
        uint32_t crc = 0;
        if (!from || !to)
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        else if ((rc = file_crc(from, buf, &whole.size, &crc, err)) == 0) {
            whole.crc32c = crc;
            rc = copy_file(from, to, &whole, buf, err);
        }
        free(from);
        free(to);
    }
    /* Every directory of the copy, deepest first, then the rename. */
    for (size_t i = meta.n_files; i-- > 0 && rc == 0;) {
        const char *slash = strrchr(meta.files[i].name, '/');
        if (!slash)
            continue;
        char *rel = strndup(meta.files[i].name, (size_t)(slash - meta.files[i].name));
        char *dir = rel ? path_join(tmp, rel) : NULL;
        rc = dir ? fsync_path(dir, err) : strata_error_set(err, STRATA_ENOMEM, "out of memory");
        free(rel);
        free(dir);
    }
    if (rc == 0)
        rc = fsync_path(tmp, err);
    if (rc == 0 && dst_exists && rmdir(dst) != 0)
        rc = strata_error_set(err, STRATA_EIO, "rmdir %s: %s", dst, strerror(errno));
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = strata_error_set(err, STRATA_EIO, "rename %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = fsync_parent(dst, err);
    if (rc) {
        strata_error_t ignored;
        strata_snapshot_remove(tmp, &ignored);
    }
    free(tmp);
    free(buf);
    strata_snapshot_meta_free(&meta);
    return rc;
}

/* ---- list ------------------------------------------------------------------ */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool strata_snapshot_name_ok(const void *name, size_t len)
{
    const char *s = name;
    if (len != 25 || memcmp(s, "snap-", 5) != 0)
        return false;
    for (size_t i = 5; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int strata_snapshot_list(const char *snapshots_dir, char ***names_p, size_t *count_p,
                         strata_error_t *err)
{
    *names_p = NULL;
    *count_p = 0;
    DIR *d = opendir(snapshots_dir);
    if (!d)
        return errno == ENOENT ? 0
                               : strata_error_set(err, STRATA_EIO, "open %s: %s", snapshots_dir,
                                                  strerror(errno));
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "snap-", 5) != 0 || strchr(de->d_name, '.'))
            continue;
        char *dir = path_join(snapshots_dir, de->d_name);
        strata_snapshot_meta_t meta;
        strata_error_t ignored;
        bool sealed = dir && strata_snapshot_read(dir, &meta, &ignored) == 0;
        if (sealed)
            strata_snapshot_meta_free(&meta);
        free(dir);
        if (!sealed)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = realloc(names, cap * sizeof *grown);
            if (!grown) {
                rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[count] = strdup(de->d_name)))
            rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        else
            count++;
    }
    closedir(d);
    if (rc) {
        strata_snapshot_list_free(names, count);
        return rc;
    }
    if (count)
        qsort(names, count, sizeof *names, cmp_names);
    *names_p = names;
    *count_p = count;
    return 0;
}

void strata_snapshot_list_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
