/* Power-cut and fault injection for the strata_io_t seam. See faultio.h. */
#define _GNU_SOURCE
#include "faultio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct undo {
    struct undo *prev; /* newest first */
    uint64_t off;
    uint64_t old_size; /* file size before the change */
    size_t len;        /* bytes saved from [off, off+len) */
    uint8_t *old;
} undo_t;

typedef struct file {
    struct file *next;
    char *path;
    undo_t *undo;
    bool created; /* by us, with no directory sync since */
} file_t;

struct faultio {
    strata_io_t io;
    pthread_mutex_t mu;
    file_t *files;
    char *fd_path[1024];
    int sync_countdown;
    int write_countdown;
    unsigned sync_delay_us;
    /* Read without the mutex by the calls that only check it (fallocate,
     * rename, ...), so a crash is seen by every thread at once. */
    atomic_bool crashed;
};

static faultio_t *of(strata_io_t *io)
{
    return io->state;
}

static file_t *file_get(faultio_t *self, const char *path)
{
    for (file_t *f = self->files; f; f = f->next)
        if (strcmp(f->path, path) == 0)
            return f;
    file_t *f = calloc(1, sizeof *f);
    f->path = strdup(path);
    f->next = self->files;
    self->files = f;
    return f;
}

static void undo_clear(file_t *f)
{
    while (f->undo) {
        undo_t *u = f->undo;
        f->undo = u->prev;
        free(u->old);
        free(u);
    }
}

static uint64_t size_of_fd(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Saves what [off, off+len) holds now so a crash can put it back. */
static void remember(faultio_t *self, int fd, uint64_t off, uint64_t len)
{
    if (fd < 0 || fd >= 1024 || !self->fd_path[fd])
        return;
    file_t *f = file_get(self, self->fd_path[fd]);
    undo_t *u = calloc(1, sizeof *u);
    u->off = off;
    u->old_size = size_of_fd(fd);
    uint64_t have = u->old_size > off ? u->old_size - off : 0;
    u->len = (size_t)(have < len ? have : len);
    if (u->len) {
        u->old = malloc(u->len);
        ssize_t n = pread(fd, u->old, u->len, (off_t)off);
        u->len = n > 0 ? (size_t)n : 0;
    }
    u->prev = f->undo;
    f->undo = u;
}

static bool countdown_hits(int *countdown)
{
    if (*countdown <= 0)
        return false;
    if (*countdown == 1)
        return true; /* stays at 1: every later call fails too */
    (*countdown)--;
    return false;
}

static int f_open(strata_io_t *io, const char *path, int flags, int mode)
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    int rc;
    if (self->crashed) {
        rc = -EIO;
    } else {
        bool existed = access(path, F_OK) == 0;
        rc = open(path, flags | O_CLOEXEC, mode);
        if (rc < 0) {
            rc = -errno;
        } else if (rc < 1024) {
            char resolved[PATH_MAX];
            free(self->fd_path[rc]);
            self->fd_path[rc] = strdup(realpath(path, resolved) ? resolved : path);
            if (!existed)
                file_get(self, self->fd_path[rc])->created = true;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static int f_close(strata_io_t *io, int fd)
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    if (fd >= 0 && fd < 1024) {
        free(self->fd_path[fd]);
        self->fd_path[fd] = NULL;
    }
    pthread_mutex_unlock(&self->mu);
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t f_pwrite(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off)
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    ssize_t rc;
    if (self->crashed || countdown_hits(&self->write_countdown)) {
        rc = -EIO;
    } else {
        remember(self, fd, off, len);
        rc = pwrite(fd, buf, len, (off_t)off);
        if (rc < 0)
            rc = -errno;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static ssize_t f_pread(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off)
{
    faultio_t *self = of(io);
    if (self->crashed)
        return -EIO;
    ssize_t rc = pread(fd, buf, len, (off_t)off);
    return rc < 0 ? -errno : rc;
}

static int sync_common(strata_io_t *io, int fd, int (*sys)(int))
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    int rc;
    if (self->crashed || countdown_hits(&self->sync_countdown)) {
        rc = -EIO;
    } else {
        rc = sys(fd) < 0 ? -errno : 0;
        if (self->sync_delay_us)
            usleep(self->sync_delay_us); /* a slow disk, not synchronisation */
        if (rc == 0 && fd >= 0 && fd < 1024 && self->fd_path[fd])
            undo_clear(file_get(self, self->fd_path[fd]));
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static int f_fdatasync(strata_io_t *io, int fd)
{
    return sync_common(io, fd, fdatasync);
}

static int f_fsync(strata_io_t *io, int fd)
{
    return sync_common(io, fd, fsync);
}

static int f_ftruncate(strata_io_t *io, int fd, uint64_t len)
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    int rc;
    if (self->crashed) {
        rc = -EIO;
    } else {
        uint64_t size = size_of_fd(fd);
        if (len < size)
            remember(self, fd, len, size - len);
        else
            remember(self, fd, size, 0);
        rc = ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static int f_fallocate(strata_io_t *io, int fd, uint64_t off, uint64_t len)
{
    faultio_t *self = of(io);
    if (self->crashed)
        return -EIO;
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
        return errno == EOPNOTSUPP ? 0 : -errno;
    return 0;
}

static int f_file_size(strata_io_t *io, int fd, uint64_t *size)
{
    if (of(io)->crashed)
        return -EIO;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int f_rename(strata_io_t *io, const char *from, const char *to)
{
    if (of(io)->crashed)
        return -EIO;
    return rename(from, to) < 0 ? -errno : 0;
}

static int f_unlink(strata_io_t *io, const char *path)
{
    if (of(io)->crashed)
        return -EIO;
    return unlink(path) < 0 ? -errno : 0;
}

static int f_mkdir(strata_io_t *io, const char *path, int mode)
{
    if (of(io)->crashed)
        return -EIO;
    if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int f_sync_dir(strata_io_t *io, const char *dir)
{
    faultio_t *self = of(io);
    pthread_mutex_lock(&self->mu);
    int rc = 0;
    if (self->crashed || countdown_hits(&self->sync_countdown)) {
        rc = -EIO;
    } else {
        char resolved[PATH_MAX];
        const char *real = realpath(dir, resolved) ? resolved : dir;
        size_t n = strlen(real);
        for (file_t *f = self->files; f; f = f->next)
            if (strncmp(f->path, real, n) == 0 && f->path[n] == '/' &&
                !strchr(f->path + n + 1, '/'))
                f->created = false;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

faultio_t *faultio_new(void)
{
    faultio_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    self->io = (strata_io_t){
        .open = f_open,
        .close = f_close,
        .pwrite = f_pwrite,
        .pread = f_pread,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .ftruncate = f_ftruncate,
        .fallocate = f_fallocate,
        .file_size = f_file_size,
        .rename = f_rename,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .sync_dir = f_sync_dir,
        .state = self,
    };
    return self;
}

strata_io_t *faultio_io(faultio_t *self)
{
    return &self->io;
}

void faultio_fail_sync_after(faultio_t *self, int nth)
{
    pthread_mutex_lock(&self->mu);
    self->sync_countdown = nth;
    pthread_mutex_unlock(&self->mu);
}

void faultio_set_sync_delay_us(faultio_t *self, unsigned us)
{
    pthread_mutex_lock(&self->mu);
    self->sync_delay_us = us;
    pthread_mutex_unlock(&self->mu);
}

void faultio_fail_write_after(faultio_t *self, int nth)
{
    pthread_mutex_lock(&self->mu);
    self->write_countdown = nth;
    pthread_mutex_unlock(&self->mu);
}

uint64_t faultio_crash(faultio_t *self)
{
    uint64_t dropped = 0;
    pthread_mutex_lock(&self->mu);
    self->crashed = true;
    for (file_t *f = self->files; f; f = f->next) {
        if (f->created) {
            unlink(f->path);
            undo_clear(f);
            continue;
        }
        if (!f->undo)
            continue;
        int fd = open(f->path, O_RDWR | O_CLOEXEC);
        for (undo_t *u = f->undo; u && fd >= 0; u = u->prev) {
            uint64_t size = size_of_fd(fd);
            if (size > u->old_size)
                dropped += size - u->old_size;
            if (u->len && pwrite(fd, u->old, u->len, (off_t)u->off) != (ssize_t)u->len)
                break;
            if (ftruncate(fd, (off_t)u->old_size) < 0)
                break;
        }
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        undo_clear(f);
    }
    pthread_mutex_unlock(&self->mu);
    return dropped;
}

void faultio_destroy(faultio_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    faultio_t *self = *self_p;
    while (self->files) {
        file_t *f = self->files;
        self->files = f->next;
        undo_clear(f);
        free(f->path);
        free(f);
    }
    for (int i = 0; i < 1024; i++)
        free(self->fd_path[i]);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
