/* The one seam between the engine and the file system. Every engine file
 * operation goes through a strata_io_t, so tests can swap in a layer that
 * fails the Nth call or drops unsynced bytes at a simulated power cut.
 * Every function returns 0 / a byte count, or -errno. */
#ifndef STRATA_IO_H
#define STRATA_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct strata_io strata_io_t;
struct strata_io {
    int (*open)(strata_io_t *io, const char *path, int flags, int mode);
    int (*close)(strata_io_t *io, int fd);
    ssize_t (*pwrite)(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off);
    ssize_t (*pread)(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off);
    int (*fdatasync)(strata_io_t *io, int fd);
    int (*fsync)(strata_io_t *io, int fd);
    int (*ftruncate)(strata_io_t *io, int fd, uint64_t len);
    int (*fallocate)(strata_io_t *io, int fd, uint64_t off, uint64_t len);
    int (*file_size)(strata_io_t *io, int fd, uint64_t *size);
    int (*rename)(strata_io_t *io, const char *from, const char *to);
    int (*unlink)(strata_io_t *io, const char *path);
    int (*mkdir)(strata_io_t *io, const char *path, int mode);
    /* Durably records directory entries (create, rename, unlink) in dir. */
    int (*sync_dir)(strata_io_t *io, const char *dir);
    void *state; /* for wrappers */
};

/* The real POSIX implementation; a static object that is never freed. */
strata_io_t *strata_io_posix(void);

/* Helpers built on a strata_io_t: write/read all bytes or fail. */
int strata_io_pwrite_all(strata_io_t *io, int fd, const void *buf, size_t len, uint64_t off);
int strata_io_pread_all(strata_io_t *io, int fd, void *buf, size_t len, uint64_t off);

/* Creates dir and any missing parents through io->mkdir. */
int strata_io_mkdirs(strata_io_t *io, const char *dir);

#endif
