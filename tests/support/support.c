/* Shared test helpers: temp dirs, seeds, small file surgery. */
#define _GNU_SOURCE
#include "support.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *ts_tempdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/strata-%s-XXXXXX", base ? base : "/tmp", tag), 0);
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s failed", path);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ts_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *ts_path(const char *dir, const char *name)
{
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
    return path;
}

uint64_t ts_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ts_seed(const char *tag)
{
    const char *env = getenv("STRATA_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (ts_now_ns() ^ (uint64_t)getpid());
    if (seed == 0)
        seed = 1;
    fprintf(stderr, "%s: seed=%llu (replay with STRATA_TEST_SEED=%llu)\n", tag,
            (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

uint64_t ts_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

bool ts_soak(void)
{
    const char *env = getenv("STRATA_SOAK");
    return env && *env && strcmp(env, "0") != 0;
}

uint64_t ts_file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    return (uint64_t)st.st_size;
}

void ts_file_truncate(const char *path, uint64_t size)
{
    ck_assert_msg(truncate(path, (off_t)size) == 0, "truncate %s", path);
}

void ts_file_write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    ck_assert_msg(fd >= 0, "open %s", path);
    ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

void ts_file_read_at(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0, "open %s", path);
    ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

int ts_run(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

bool ts_wait_for(bool (*cond)(void *arg), void *arg, unsigned timeout_ms)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (!cond(arg)) {
        if (ts_now_ns() > deadline)
            return false;
        usleep(1000); /* polling interval, bounded by the deadline above */
    }
    return true;
}
