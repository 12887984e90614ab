/* Answers SNAPLIST and SNAPREAD (proto/TRANSPORT.md, "Copying a snapshot")
 * from the snapshots directory: the newest sealed snapshot's SNAPSHOT, then
 * chunks of the files it lists. Only what SNAPSHOT lists is ever read, so a
 * request cannot reach outside a snapshot. Used by the replicator's relay. */
#define _GNU_SOURCE
#include "snapserve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strata/snapshot.h"

#define NAME_LEN      25          /* "snap-" and 20 digits */
#define SNAPSHOT_CAP  (64u << 20) /* snapshot.md: readers refuse a larger SNAPSHOT */
#define SHOWN_BYTES   128         /* of a client's frame quoted in an error */
#define PRINTABLE_CAP (SHOWN_BYTES * 4 + 4)
#define PATH_CAP      (2 * PATH_MAX + 64) /* the snapshots dir, a name, a listed file */

struct snapserve {
    char dir[PATH_MAX];
    /* The SNAPSHOT last read, kept while the file at its path is the same
     * one (device and inode: SNAPSHOT is only ever renamed into place), so
     * that the chunks of a copy do not parse it again each time. */
    bool cached;
    char cached_name[NAME_LEN + 1];
    dev_t cached_dev;
    ino_t cached_ino;
    strata_snapshot_meta_t meta;
    size_t last_file; /* the file of the last SNAPREAD: the next is likely the same */
    /* A follower retries a refused copy every second or so: the same
     * refusal is one line until an answer goes through. */
    svc_episode_t refusing;
};

snapserve_t *snapserve_new(const char *snapshots_dir)
{
    snapserve_t *self = calloc(1, sizeof *self);
    if (self)
        snprintf(self->dir, sizeof self->dir, "%s", snapshots_dir);
    return self;
}

static void s_forget(snapserve_t *self)
{
    if (self->cached)
        strata_snapshot_meta_free(&self->meta);
    self->cached = false;
    self->last_file = 0;
}

void snapserve_destroy(snapserve_t **self_p)
{
    snapserve_t *self = *self_p;
    if (!self)
        return;
    s_forget(self);
    free(self);
    *self_p = NULL;
}

bool snapserve_handles(zframe_t *verb)
{
    return zframe_streq(verb, "SNAPLIST") || zframe_streq(verb, "SNAPREAD");
}

/* ---- helpers --------------------------------------------------------------------- */

static uint64_t s_get_le(const uint8_t *p, size_t width)
{
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A requester's bytes quoted for an error text: printable ASCII as is, the
 * rest (and backslash) as \xHH, at most SHOWN_BYTES of them. */
static void s_printable(const void *data, size_t len, char *out, size_t cap)
{
    const uint8_t *p = data;
    size_t used = 0;
    for (size_t i = 0; i < len && i < SHOWN_BYTES && used + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            out[used++] = (char)p[i];
        else
            used += (size_t)snprintf(out + used, cap - used, "\\x%02x", p[i]);
    }
    if (len > SHOWN_BYTES && used + 4 < cap)
        used += (size_t)snprintf(out + used, cap - used, "...");
    out[used] = '\0';
}

/* FNV-1a: a refusal's text stands for its code, so that another one is a
 * new line. */
static int s_text_code(const char *text)
{
    uint32_t h = 2166136261u;
    for (const char *p = text; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return (int)(h | 1u); /* never 0 */
}

static zmsg_t *s_error(snapserve_t *self, snapserve_outcome_t *outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static zmsg_t *s_error(snapserve_t *self, snapserve_outcome_t *outcome, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (svc_episode_failed(&self->refusing, s_text_code(text)))
        log_warning("event=snapshot_refused error=\"%s\"", text);
    outcome->error = true;
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "SNAPERR");
    zmsg_addstr(reply, text);
    return reply;
}

/* The parsed SNAPSHOT of snapshot name, whose SNAPSHOT file is *st: from
 * the cache when that is the same file, else read, checked and cached. */
static int s_load(snapserve_t *self, const char *name, const struct stat *st, strata_error_t *err)
{
    if (self->cached && !strcmp(self->cached_name, name) && self->cached_dev == st->st_dev &&
        self->cached_ino == st->st_ino)
        return 0;
    s_forget(self);
    char dir[PATH_CAP], file[PATH_CAP];
    snprintf(dir, sizeof dir, "%s/%s", self->dir, name);
    snprintf(file, sizeof file, "%s/%s/" STRATA_SNAPSHOT_FILE, self->dir, name);
    int rc = strata_snapshot_read(dir, &self->meta, err);
    if (rc)
        return rc;
    /* A SNAPSHOT renamed into place while it was read: what was parsed may
     * not be *st. The requester lists again. */
    struct stat now;
    if (stat(file, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        strata_snapshot_meta_free(&self->meta);
        return strata_error_set(err, STRATA_ESTALE, "%s changed while it was read", file);
    }
    self->cached = true;
    snprintf(self->cached_name, sizeof self->cached_name, "%s", name);
    self->cached_dev = st->st_dev;
    self->cached_ino = st->st_ino;
    return 0;
}

/* ---- SNAPLIST -------------------------------------------------------------------- */

/* SNAPLIST, name, the bytes of its SNAPSHOT; NULL when that cannot be read
 * whole or does not check. */
static zmsg_t *s_offer(snapserve_t *self, const char *name)
{
    char file[PATH_CAP];
    snprintf(file, sizeof file, "%s/%s/" STRATA_SNAPSHOT_FILE, self->dir, name);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    zframe_t *bytes = NULL;
    if (fstat(fd, &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size <= SNAPSHOT_CAP)
        bytes = zframe_new(NULL, (size_t)st.st_size);
    size_t got = 0, want = bytes ? zframe_size(bytes) : 0;
    while (bytes && got < want) {
        ssize_t n = pread(fd, zframe_data(bytes) + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    strata_error_t err;
    /* The bytes sent are the file that was checked: s_load compares the
     * file it parsed with st. */
    if (!bytes || got < want || s_load(self, name, &st, &err) != 0) {
        zframe_destroy(&bytes);
        return NULL;
    }
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "SNAPLIST");
    zmsg_addstr(reply, name);
    zmsg_append(reply, &bytes);
    return reply;
}

static zmsg_t *s_list(snapserve_t *self, zmsg_t *request, snapserve_outcome_t *outcome)
{
    if (zmsg_size(request) != 1)
        return s_error(self, outcome, "SNAPLIST: %zu frames after the verb, it takes none",
                       zmsg_size(request) - 1);
    char **names;
    size_t count;
    strata_error_t err;
    if (strata_snapshot_list(self->dir, &names, &count, &err) != 0)
        return s_error(self, outcome, "%s", err.msg);
    /* Names of one width sort by seq: the newest is last. One removed or
     * damaged since it was listed gives way to the one before. */
    zmsg_t *reply = NULL;
    for (size_t i = count; i-- > 0 && !reply;)
        if (strata_snapshot_name_ok(names[i], strlen(names[i])))
            reply = s_offer(self, names[i]);
    strata_snapshot_list_free(names, count);
    return reply ? reply : s_error(self, outcome, "no snapshot in %s", self->dir);
}

/* ---- SNAPREAD -------------------------------------------------------------------- */

/* The index in meta of the file named path, or -1. */
static ssize_t s_find(snapserve_t *self, zframe_t *path)
{
    const strata_snapshot_meta_t *meta = &self->meta;
    size_t len = zframe_size(path);
    for (size_t k = 0; k < meta->n_files; k++) {
        size_t i = (self->last_file + k) % meta->n_files;
        if (strlen(meta->files[i].name) == len &&
            !memcmp(meta->files[i].name, zframe_data(path), len))
            return (ssize_t)(self->last_file = i);
    }
    return -1;
}

/* Whether snapshot name is still in the directory. */
static bool s_present(const snapserve_t *self, const char *name)
{
    char file[PATH_CAP];
    snprintf(file, sizeof file, "%s/%s/" STRATA_SNAPSHOT_FILE, self->dir, name);
    return access(file, F_OK) == 0;
}

static zmsg_t *s_read(snapserve_t *self, zmsg_t *request, snapserve_outcome_t *outcome)
{
    if (zmsg_size(request) != 5)
        return s_error(self, outcome,
                       "SNAPREAD: %zu frames after the verb, it takes 4 (name, path, offset, "
                       "length)",
                       zmsg_size(request) - 1);
    zmsg_first(request);
    zframe_t *name_frame = zmsg_next(request), *path_frame = zmsg_next(request);
    zframe_t *offset_frame = zmsg_next(request), *length_frame = zmsg_next(request);
    char shown[PRINTABLE_CAP];
    if (!strata_snapshot_name_ok(zframe_data(name_frame), zframe_size(name_frame))) {
        s_printable(zframe_data(name_frame), zframe_size(name_frame), shown, sizeof shown);
        return s_error(self, outcome, "SNAPREAD name: '%s' is not snap- and 20 digits", shown);
    }
    if (zframe_size(offset_frame) != 8)
        return s_error(self, outcome, "SNAPREAD offset: %zu bytes, not 8",
                       zframe_size(offset_frame));
    if (zframe_size(length_frame) != 4)
        return s_error(self, outcome, "SNAPREAD length: %zu bytes, not 4",
                       zframe_size(length_frame));
    uint64_t offset = s_get_le(zframe_data(offset_frame), 8);
    uint64_t length = s_get_le(zframe_data(length_frame), 4);
    if (length < 1 || length > SNAPSERVE_MAX_READ)
        return s_error(self, outcome, "SNAPREAD length: %" PRIu64 ", not 1..%u", length,
                       SNAPSERVE_MAX_READ);
    char name[NAME_LEN + 1];
    memcpy(name, zframe_data(name_frame), NAME_LEN);
    name[NAME_LEN] = '\0';

    char file[PATH_CAP];
    snprintf(file, sizeof file, "%s/%s/" STRATA_SNAPSHOT_FILE, self->dir, name);
    struct stat st;
    strata_error_t err;
    if (stat(file, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return s_error(self, outcome, "snapshot %s is gone from %s: list again", name,
                           self->dir);
        return s_error(self, outcome, "snapshot %s: stat %s: %s", name, file, strerror(errno));
    }
    if (s_load(self, name, &st, &err) != 0)
        return s_error(self, outcome, "snapshot %s is not sealed (%s): list again", name, err.msg);
    ssize_t index = s_find(self, path_frame);
    if (index < 0) {
        s_printable(zframe_data(path_frame), zframe_size(path_frame), shown, sizeof shown);
        return s_error(self, outcome, "SNAPREAD path: '%s' is not a file of snapshot %s", shown,
                       name);
    }
    /* Copied out: s_forget below frees meta. */
    uint64_t size = self->meta.files[index].size;
    char subject[PATH_MAX];
    if (snprintf(subject, sizeof subject, "%s/%s", name, self->meta.files[index].name) >=
        (int)sizeof subject)
        return s_error(self, outcome, "%s: a file name of %zu bytes, too long to open", name,
                       strlen(self->meta.files[index].name));
    if (offset > size)
        return s_error(self, outcome,
                       "SNAPREAD offset: %" PRIu64 " is past the end of %s (%" PRIu64 " bytes)",
                       offset, subject, size);
    size_t want = (size_t)(size - offset < length ? size - offset : length);

    snprintf(file, sizeof file, "%s/%s", self->dir, subject);
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int open_errno = errno;
        s_forget(self); /* the snapshot may be going: read SNAPSHOT again next time */
        if (!s_present(self, name))
            return s_error(self, outcome, "snapshot %s is gone from %s: list again", name,
                           self->dir);
        return s_error(self, outcome, "%s: open: %s", subject, strerror(open_errno));
    }
    /* The listed size, not the file's: a short file is an error, never
     * short data. */
    zframe_t *data = zframe_new(NULL, want);
    size_t got = 0;
    int read_errno = 0;
    while (got < want) {
        ssize_t n = pread(fd, zframe_data(data) + got, want - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            read_errno = errno;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got < want) {
        zframe_destroy(&data);
        if (read_errno)
            return s_error(self, outcome, "%s offset %" PRIu64 ": read: %s", subject, offset + got,
                           strerror(read_errno));
        return s_error(self, outcome,
                       "%s offset %" PRIu64 ": end of file, SNAPSHOT lists %" PRIu64 " bytes",
                       subject, offset + got, size);
    }
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "SNAPDATA");
    zmsg_append(reply, &(zframe_t *){zframe_dup(name_frame)});
    zmsg_append(reply, &(zframe_t *){zframe_dup(path_frame)});
    zmsg_append(reply, &(zframe_t *){zframe_dup(offset_frame)});
    zmsg_append(reply, &data);
    outcome->data_bytes = want;
    return reply;
}

zmsg_t *snapserve_answer(snapserve_t *self, zmsg_t *request, snapserve_outcome_t *outcome)
{
    *outcome = (snapserve_outcome_t){0};
    zmsg_t *answer = zframe_streq(zmsg_first(request), "SNAPLIST") ? s_list(self, request, outcome)
                                                                   : s_read(self, request, outcome);
    uint64_t refused = outcome->error ? 0 : svc_episode_cleared(&self->refusing);
    if (refused)
        log_info("event=snapshot_answered refused_before=%" PRIu64, refused);
    return answer;
}
