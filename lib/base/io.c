/* The POSIX implementation of the strata_io_t seam, and the all-or-fail
 * read/write helpers every engine module uses on top of any strata_io_t. */
#define _GNU_SOURCE
#include "strata/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_open(strata_io_t *io, const char *path, int flags, int mode)
{
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

static int sys_close(strata_io_t *io, int fd)
{
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t sys_pwrite(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off)
{
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    return n < 0 ? -errno : n;
}

static ssize_t sys_pread(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n = pread(fd, buf, len, (off_t)off);
    return n < 0 ? -errno : n;
}

static int sys_fdatasync(strata_io_t *io, int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int sys_fsync(strata_io_t *io, int fd)
{
    return fsync(fd) < 0 ? -errno : 0;
}

static int sys_ftruncate(strata_io_t *io, int fd, uint64_t len)
{
    return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

static int sys_fallocate(strata_io_t *io, int fd, uint64_t off, uint64_t len)
{
    /* KEEP_SIZE: the file's length stays the logical end of the log, so a
     * reader never mistakes the reservation for data; file systems without
     * fallocate just skip the optimisation. */
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return 0;
        return -errno;
    }
    return 0;
}

static int sys_file_size(strata_io_t *io, int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int sys_rename(strata_io_t *io, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int sys_unlink(strata_io_t *io, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int sys_mkdir(strata_io_t *io, const char *path, int mode)
{
    if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int sys_sync_dir(strata_io_t *io, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static strata_io_t posix_io = {
    .open = sys_open,
    .close = sys_close,
    .pwrite = sys_pwrite,
    .pread = sys_pread,
    .fdatasync = sys_fdatasync,
    .fsync = sys_fsync,
    .ftruncate = sys_ftruncate,
    .fallocate = sys_fallocate,
    .file_size = sys_file_size,
    .rename = sys_rename,
    .unlink = sys_unlink,
    .mkdir = sys_mkdir,
    .sync_dir = sys_sync_dir,
    .state = NULL,
};

strata_io_t *strata_io_posix(void)
{
    return &posix_io;
}

int strata_io_pwrite_all(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = io->pwrite(io, fd, p, len, off);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int strata_io_pread_all(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = io->pread(io, fd, p, len, off);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -ENODATA; /* short file: the caller names what it expected */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int strata_io_mkdirs(strata_io_t *io, const char *dir)
{
    char *path = strdup(dir);
    if (!path)
        return -ENOMEM;
    int rc = 0;
    for (char *p = path + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        rc = io->mkdir(io, path, 0700);
        *p = '/';
    }
    if (rc == 0)
        rc = io->mkdir(io, path, 0700);
    free(path);
    return rc;
}
