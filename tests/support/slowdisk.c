/* libstrata_slowdisk.so: a slow disk under one process, for tests only
 * (LD_PRELOAD). fsync and fdatasync first sleep the microseconds written in
 * the file $TS_SLOWDISK names, then do the real call. The file is read
 * at every call, so a test makes a running node's disk slow and fast again
 * without restarting it (node.h, ts_slowdisk_set); no variable, no file or
 * no number there means no delay. The engine syncs through libc's fsync and
 * fdatasync (lib/base/io.c, the WAL's sync thread included), which a
 * preloaded library interposes; a service linked statically against libc
 * would bypass it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int (*s_fsync)(int);
static int (*s_fdatasync)(int);
static const char *s_control;

__attribute__((constructor)) static void slowdisk_init(void)
{
    s_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    s_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    s_control = getenv("TS_SLOWDISK");
}

/* Opened afresh each time: the test renames a new file into place. A few
 * microseconds beside a sync. */
static unsigned long delay_us(void)
{
    if (!s_control || !*s_control)
        return 0;
    int fd = open(s_control, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtoul(buf, NULL, 10);
}

/* Straight to the kernel, so a libfaketime preloaded beside this one does
 * not scale the delay: a slow disk is slow in real time. */
static void slow_down(void)
{
    int saved = errno;
    unsigned long us = delay_us();
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (us && syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, &ts) != 0 && errno == EINTR)
        ;
    errno = saved;
}

int fsync(int fd)
{
    slow_down();
    if (!s_fsync) /* called by another library's constructor, before ours */
        slowdisk_init();
    return s_fsync(fd);
}

int fdatasync(int fd)
{
    slow_down();
    if (!s_fdatasync)
        slowdisk_init();
    return s_fdatasync(fd);
}
