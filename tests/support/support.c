/* Shared test helpers: temp dirs, seeds, small file surgery. */
#define _GNU_SOURCE
#include "support.h"

#include "strata/crc.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

strata_client_t *ts_connect(const char *endpoint, int timeout_ms)
{
    strata_client_options_t opts = {.endpoint = endpoint, .timeout_ms = timeout_ms};
    strata_client_t *client = NULL;
    strata_error_t err;
    ck_assert_msg(strata_client_connect(&opts, &client, &err) == 0, "connect %s: %s", endpoint,
                  err.msg);
    return client;
}

unsigned ts_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: cannot read", path);
    char line[8192];
    unsigned n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
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

void ts_wal_as_crashed(const char *wal_dir)
{
    /* The newest segment, by its 16-digit name. */
    DIR *d = opendir(wal_dir);
    ck_assert_msg(d != NULL, "opendir %s", wal_dir);
    unsigned long long newest = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long n;
        char tail[8];
        if (strlen(de->d_name) == 20 && sscanf(de->d_name, "%16llu%7s", &n, tail) == 2 &&
            !strcmp(tail, ".wal") && n > newest)
            newest = n;
    }
    closedir(d);
    ck_assert_msg(newest > 0, "%s holds no segment", wal_dir);
    char name[32];
    snprintf(name, sizeof name, "%016llu.wal", newest);
    char *segment = ts_path(wal_dir, name);
    uint8_t first[8];
    ts_file_read_at(segment, 24, first, 8); /* the segment header's first seq */
    free(segment);
    uint64_t first_seq = 0;
    for (int i = 7; i >= 0; i--)
        first_seq = first_seq << 8 | first[i];
    /* LOGSTATE as lib/log/wal.md lays it out: not clean, the newest
     * segment, and only what precedes it as known durable. */
    uint8_t state[40] = "STRATALS";
    uint64_t fields[2] = {newest, first_seq ? first_seq - 1 : 0};
    state[8] = 1;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 8; i++)
            state[16 + 8 * f + i] = (uint8_t)(fields[f] >> (8 * i));
    uint32_t crc = strata_crc32c(0, state, 36);
    for (int i = 0; i < 4; i++)
        state[36 + i] = (uint8_t)(crc >> (8 * i));
    char *path = ts_path(wal_dir, "LOGSTATE");
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fwrite(state, 1, sizeof state, f) == sizeof state && fclose(f) == 0,
                  "write %s", path);
    free(path);
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

char *ts_http_get(const char *url)
{
    unsigned port = 0;
    char path[128];
    ck_assert_msg(sscanf(url, "http://127.0.0.1:%u%127s", &port, path) == 2, "url %s", url);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s", url);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ssize_t got;
    while (len < cap - 1 && (got = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    return buf;
}

uint64_t ts_rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %" SCNu64, &kib) == 1)
            break;
    fclose(f);
    return kib;
}

bool ts_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

int ts_free_port(void)
{
    /* Above Linux's ephemeral range (32768..60999), as node.c's endpoints:
     * a process restarted on its port must not find it taken by an
     * outgoing connection meanwhile. */
    static uint64_t state;
    if (!state)
        state = ts_now_ns() | 1;
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = 61000 + (int)(ts_rand(&state) % 4536);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
        if (rc == 0)
            return port;
    }
    ck_abort_msg("no free port in 61000..65535");
    return -1;
}
