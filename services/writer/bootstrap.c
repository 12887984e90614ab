/* Snapshot bootstrap (lib/raft/raft.md R10): a follower that needs entries
 * the master's WAL no longer holds copies the master's newest snapshot and
 * starts its log after it.
 *
 * The copy runs on a thread of its own, so the loop keeps answering: it asks
 * the master's replicator for the snapshot's listing and then for each file
 * in pieces (proto/TRANSPORT.md, "Copying a snapshot"), into
 * <data_dir>/bootstrap/<name>.part. What a killed copy left there is kept
 * and continued when the master still offers the same snapshot. Every file's
 * CRC32C is checked against the listing before the directory is renamed to
 * <data_dir>/bootstrap/<name> and INSTALL names it. The writer then restarts
 * in place: the engine cannot be swapped under the threads that hold it,
 * but a writer that has not opened it yet can replace its files
 * (bootstrap_install), and a crash during that is finished by the next
 * start, since INSTALL stays until the end. */
#define _GNU_SOURCE
#include "writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "strata/crc.h"
#include "strata/snapshot.h"

#define CHUNK_BYTES     (1u << 20) /* TRANSPORT.md's cap on a SNAPREAD */
#define CALL_TIMEOUT_MS 10000
#define CALL_TRIES      3
#define RETRY_AFTER_MS  1000 /* after a failed copy, before the next may start */
#define MARK_FILE       "raft-snapshot"

struct bootstrap {
    pthread_t thread;
    bool started;
    char data_dir[PATH_MAX];
    char endpoint[256];
    uint32_t leader;
    uint64_t min_seq;
    _Atomic bool stop;
    _Atomic int state; /* BOOT_* */
    uint64_t failed_at_ns;
    char error[512];
    /* Copies retried against a leader that keeps failing them fail alike:
     * the first is logged, the rest counted. The thread's, one at a time. */
    svc_episode_t failing;
    /* Written by the thread, read after it ends. */
    _Atomic uint64_t bytes_fetched; /* also read by the loop, for stats */
    uint64_t bytes_resumed, seq, term;
    size_t files;
};

enum { BOOT_RUNNING = 1, BOOT_DONE, BOOT_FAILED };

/* ---- small durable file helpers ----------------------------------------- */

static int sync_dir(const char *dir, strata_error_t *err)
{
    int sys = strata_io_posix()->sync_dir(strata_io_posix(), dir);
    return sys < 0 ? strata_error_set(err, STRATA_EIO, "fsync %s: %s", dir, strerror(-sys)) : 0;
}

/* path's content becomes data, whole or not at all, durably. */
static int write_durable(const char *dir, const char *name, const void *data, size_t len,
                         strata_error_t *err)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return strata_error_set(err, STRATA_EIO, "create %s: %s", tmp, strerror(errno));
    int sys = strata_io_pwrite_all(strata_io_posix(), fd, data, len, 0);
    if (sys == 0 && fsync(fd) != 0)
        sys = -errno;
    close(fd);
    if (sys == 0 && rename(tmp, path) != 0)
        sys = -errno;
    if (sys)
        return strata_error_set(err, STRATA_EIO, "write %s: %s", path, strerror(-sys));
    return sync_dir(dir, err);
}

/* ---- the copy ------------------------------------------------------------ */

typedef struct {
    struct bootstrap *b;
    zsock_t *dealer;
    strata_error_t *err;
} copy_t;

static zsock_t *connect_dealer(const char *endpoint)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    if (!d)
        return NULL;
    zsock_set_linger(d, 0);
    zsock_set_maxmsgsize(d, (int64_t)CHUNK_BYTES + 64 * 1024 + 64 * (1 << 20));
    if (zsock_connect(d, "%s", endpoint) < 0)
        zsock_destroy(&d);
    return d;
}

/* Sends req (taking it) and waits for one reply. A reply that does not come
 * within the timeout is given up with the socket, so a late one cannot be
 * taken for the answer to the next request. NULL: err says why. */
static zmsg_t *call(copy_t *c, zmsg_t *req)
{
    struct bootstrap *b = c->b;
    for (int attempt = 1; attempt <= CALL_TRIES && !atomic_load(&b->stop); attempt++) {
        if (!c->dealer && !(c->dealer = connect_dealer(b->endpoint))) {
            zmsg_destroy(&req);
            strata_error_set(c->err, STRATA_EIO, "cannot connect to %s", b->endpoint);
            return NULL;
        }
        zmsg_t *copy = zmsg_dup(req);
        if (!copy || zmsg_send(&copy, c->dealer) != 0) {
            zmsg_destroy(&copy);
            break;
        }
        zpoller_t *poller = zpoller_new(c->dealer, NULL);
        uint64_t deadline = now_ns() + (uint64_t)CALL_TIMEOUT_MS * 1000000ull;
        zmsg_t *rep = NULL;
        while (!rep && !atomic_load(&b->stop) && now_ns() < deadline && poller)
            if (zpoller_wait(poller, 100))
                rep = zmsg_recv(c->dealer);
        zpoller_destroy(&poller);
        if (rep) {
            zmsg_destroy(&req);
            return rep;
        }
        zsock_destroy(&c->dealer);
        if (!b->failing.failures) /* else the copies before timed out alike */
            log_warning("event=bootstrap_timeout endpoint=%s attempt=%d", b->endpoint, attempt);
    }
    zmsg_destroy(&req);
    strata_error_set(c->err, atomic_load(&b->stop) ? STRATA_ECLOSED : STRATA_ETIMEDOUT,
                     atomic_load(&b->stop) ? "the writer is stopping"
                                           : "node %u's replicator at %s did not answer in %d s, "
                                             "%d times",
                     b->leader, b->endpoint, CALL_TIMEOUT_MS / 1000, CALL_TRIES);
    return NULL;
}

/* SNAPERR's text, or the verb that came instead of the one expected. */
static int snap_error(copy_t *c, zmsg_t *rep, const char *want)
{
    char *verb = zmsg_popstr(rep);
    char *text = verb && !strcmp(verb, "SNAPERR") ? zmsg_popstr(rep) : NULL;
    int rc =
        text ? strata_error_set(c->err, STRATA_EIO, "node %u's replicator: %s", c->b->leader, text)
             : strata_error_set(c->err, STRATA_ECORRUPT, "node %u's replicator answered %s to %s",
                                c->b->leader, verb ? verb : "(nothing)", want);
    zstr_free(&verb);
    zstr_free(&text);
    return rc;
}

static uint64_t get_u64(zframe_t *f)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | zframe_data(f)[i];
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* SNAPLIST: the name and SNAPSHOT bytes of the master's newest snapshot. */
static int list(copy_t *c, char *name, size_t name_cap, zframe_t **listing)
{
    zmsg_t *req = zmsg_new();
    zmsg_addstr(req, "SNAPLIST");
    zmsg_t *rep = call(c, req);
    if (!rep)
        return c->err->code;
    int rc = 0;
    zframe_t *verb = zmsg_first(rep);
    if (zmsg_size(rep) != 3 || !zframe_streq(verb, "SNAPLIST")) {
        rc = snap_error(c, rep, "SNAPLIST");
    } else {
        zframe_t *n = zmsg_next(rep);
        snprintf(name, name_cap, "%.*s", (int)zframe_size(n), (const char *)zframe_data(n));
        if (!strata_snapshot_name_ok(name, strlen(name)))
            rc = strata_error_set(c->err, STRATA_ECORRUPT,
                                  "node %u's replicator listed a snapshot named '%s'", c->b->leader,
                                  name);
        else
            *listing = zframe_dup(zmsg_next(rep));
    }
    zmsg_destroy(&rep);
    return rc;
}

/* Fills path (size bytes in all) from offset `have` on. */
static int fetch_file(copy_t *c, const char *name, const strata_snapshot_file_t *f,
                      const char *path, uint64_t have)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return strata_error_set(c->err, STRATA_EIO, "create %s: %s", path, strerror(errno));
    int rc = 0;
    for (uint64_t off = have; off < f->size && rc == 0;) {
        uint8_t off_le[8], len_le[4];
        uint64_t want = f->size - off < CHUNK_BYTES ? f->size - off : CHUNK_BYTES;
        put_u64(off_le, off);
        for (int i = 0; i < 4; i++)
            len_le[i] = (uint8_t)(want >> (8 * i));
        zmsg_t *req = zmsg_new();
        zmsg_addstr(req, "SNAPREAD");
        zmsg_addstr(req, name);
        zmsg_addstr(req, f->name);
        zmsg_addmem(req, off_le, 8);
        zmsg_addmem(req, len_le, 4);
        zmsg_t *rep = call(c, req);
        if (!rep) {
            rc = c->err->code;
            break;
        }
        zframe_t *verb = zmsg_first(rep), *n = zmsg_next(rep), *p = zmsg_next(rep),
                 *o = zmsg_next(rep), *data = zmsg_next(rep);
        if (zmsg_size(rep) != 5 || !zframe_streq(verb, "SNAPDATA")) {
            rc = snap_error(c, rep, "SNAPREAD");
        } else if (!zframe_streq(n, name) || !zframe_streq(p, f->name) || zframe_size(o) != 8 ||
                   get_u64(o) != off || zframe_size(data) > want ||
                   (zframe_size(data) == 0 && want > 0)) {
            rc = strata_error_set(c->err, STRATA_ECORRUPT,
                                  "node %u's replicator answered SNAPREAD %s %s at %" PRIu64
                                  " with another piece (%zu bytes)",
                                  c->b->leader, name, f->name, off, zframe_size(data));
        } else {
            int sys = strata_io_pwrite_all(strata_io_posix(), fd, zframe_data(data),
                                           zframe_size(data), off);
            if (sys)
                rc = strata_error_set(c->err, STRATA_EIO, "write %s offset %" PRIu64 ": %s", path,
                                      off, strerror(-sys));
            off += zframe_size(data);
            c->b->bytes_fetched += zframe_size(data);
        }
        zmsg_destroy(&rep);
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata_error_set(c->err, STRATA_EIO, "fdatasync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int file_crc(const char *path, uint32_t *crc, strata_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strata_error_set(err, STRATA_EIO, "open %s: %s", path, strerror(errno));
    static __thread uint8_t buf[1 << 16];
    uint32_t c = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        c = strata_crc32c(c, buf, (size_t)n);
    int saved = errno;
    close(fd);
    if (n < 0)
        return strata_error_set(err, STRATA_EIO, "read %s: %s", path, strerror(saved));
    *crc = c;
    return 0;
}

/* Every listed file present, whole and with its CRC: fetched from where a
 * killed copy stopped, and fetched again from the start once if the CRC
 * of what is there differs. */
static int copy_files(copy_t *c, const char *name, const char *part,
                      const strata_snapshot_meta_t *meta)
{
    for (size_t i = 0; i < meta->n_files && !atomic_load(&c->b->stop); i++) {
        const strata_snapshot_file_t *f = &meta->files[i];
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", part, f->name);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        int sys = strata_io_mkdirs(strata_io_posix(), path);
        *slash = '/';
        if (sys < 0)
            return strata_error_set(c->err, STRATA_EIO, "create the directory of %s: %s", path,
                                    strerror(-sys));
        for (int round = 0;; round++) {
            struct stat st;
            uint64_t have = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
            if (have > f->size) {
                if (truncate(path, 0) != 0)
                    return strata_error_set(c->err, STRATA_EIO, "truncate %s: %s", path,
                                            strerror(errno));
                have = 0;
            }
            if (round == 0)
                c->b->bytes_resumed += have;
            int rc = fetch_file(c, name, f, path, have);
            uint32_t crc = 0;
            if (rc == 0)
                rc = file_crc(path, &crc, c->err);
            if (rc)
                return rc;
            if (crc == f->crc32c)
                break;
            log_warning("event=bootstrap_crc_mismatch file=%s crc=%08x listed=%08x round=%d", path,
                        crc, f->crc32c, round);
            if (round == 1)
                return strata_error_set(c->err, STRATA_ECORRUPT,
                                        "%s: CRC32C %08x after copying it twice, the listing "
                                        "says %08x",
                                        path, crc, f->crc32c);
            if (truncate(path, 0) != 0)
                return strata_error_set(c->err, STRATA_EIO, "truncate %s: %s", path,
                                        strerror(errno));
        }
        c->b->files++;
    }
    return atomic_load(&c->b->stop) ? strata_error_set(c->err, STRATA_ECLOSED, "stopping") : 0;
}

/* Removes every entry of bootstrap/ but keep (a name, may be NULL). */
static int clear_bootstrap_dir(const char *dir, const char *keep, strata_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT
                   ? 0
                   : strata_error_set(err, STRATA_EIO, "open %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (keep && !strcmp(de->d_name, keep)))
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR)
            rc = strata_snapshot_remove(path, err);
        else if (unlink(path) != 0 && errno != ENOENT)
            rc = strata_error_set(err, STRATA_EIO, "remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    return rc;
}

static int copy(struct bootstrap *b, strata_error_t *err)
{
    copy_t c = {.b = b, .err = err};
    char name[64], dir[PATH_MAX + 16], part[PATH_MAX + 96], done[PATH_MAX + 96];
    zframe_t *listing = NULL;
    strata_snapshot_meta_t meta = {0};
    int rc = list(&c, name, sizeof name, &listing);
    if (rc)
        goto out;
    snprintf(dir, sizeof dir, "%s/bootstrap", b->data_dir);
    snprintf(part, sizeof part, "%s/%s.part", dir, name);
    snprintf(done, sizeof done, "%s/%s", dir, name);
    char part_name[96];
    snprintf(part_name, sizeof part_name, "%s.part", name);
    /* A copy of another snapshot, or of this one already whole but not
     * installed, is of no more use: the master offers this one now. */
    if ((rc = clear_bootstrap_dir(dir, part_name, err)))
        goto out;
    int sys = strata_io_mkdirs(strata_io_posix(), part);
    if (sys < 0) {
        rc = strata_error_set(err, STRATA_EIO, "create %s: %s", part, strerror(-sys));
        goto out;
    }
    /* The same listing as the part's: its files are continued. */
    char listed[PATH_MAX + 128];
    snprintf(listed, sizeof listed, "%s/SNAPSHOT", part);
    bool same = false;
    FILE *old = fopen(listed, "rb");
    if (old) {
        size_t len = zframe_size(listing);
        uint8_t *buf = malloc(len + 1);
        same = buf && fread(buf, 1, len + 1, old) == len && !memcmp(buf, zframe_data(listing), len);
        free(buf);
        fclose(old);
    }
    if (!same) {
        if ((rc = strata_snapshot_remove(part, err)))
            goto out;
        if ((sys = strata_io_mkdirs(strata_io_posix(), part)) < 0) {
            rc = strata_error_set(err, STRATA_EIO, "create %s: %s", part, strerror(-sys));
            goto out;
        }
        if ((rc = write_durable(part, "SNAPSHOT", zframe_data(listing), zframe_size(listing),
                                err)) ||
            (rc = sync_dir(dir, err)))
            goto out;
    }
    /* The reader's checks (names, counts, the CRC of the listing) guard
     * what the copy writes where. */
    if ((rc = strata_snapshot_read(part, &meta, err)))
        goto out;
    if (meta.seq < b->min_seq) {
        rc = strata_error_set(err, STRATA_EINVAL,
                              "node %u's newest snapshot %s is at seq %" PRIu64 ", below %" PRIu64
                              ", where its log begins",
                              b->leader, name, meta.seq, b->min_seq);
        goto out;
    }
    log_info("event=bootstrap_copy leader=%u snapshot=%s seq=%" PRIu64 " term=%" PRIu64
             " files=%zu bytes=%" PRIu64 " resumed=%d",
             b->leader, name, meta.seq, meta.term, meta.n_files, meta.bytes, same);
    if ((rc = copy_files(&c, name, part, &meta)))
        goto out;
    if ((rc = sync_dir(part, err)))
        goto out;
    if (rename(part, done) != 0) {
        rc = strata_error_set(err, STRATA_EIO, "rename %s: %s", part, strerror(errno));
        goto out;
    }
    char install[80];
    int n = snprintf(install, sizeof install, "%s\n", name);
    if ((rc = sync_dir(dir, err)) || (rc = write_durable(dir, "INSTALL", install, (size_t)n, err)))
        goto out;
    b->seq = meta.seq;
    b->term = meta.term;
out:
    strata_snapshot_meta_free(&meta);
    zframe_destroy(&listing);
    zsock_destroy(&c.dealer);
    return rc;
}

static void *bootstrap_main(void *arg)
{
    struct bootstrap *b = arg;
    strata_error_t err;
    strata_error_clear(&err);
    uint64_t start = now_ns();
    int rc = copy(b, &err);
    if (rc) {
        snprintf(b->error, sizeof b->error, "%s", err.msg);
        if (svc_episode_failed(&b->failing, rc))
            log_error("event=bootstrap_failed leader=%u endpoint=%s fetched=%" PRIu64
                      " error=\"%s\"",
                      b->leader, b->endpoint, atomic_load(&b->bytes_fetched), err.msg);
    } else {
        uint64_t failures = svc_episode_cleared(&b->failing);
        log_info("event=bootstrap_copied leader=%u seq=%" PRIu64 " term=%" PRIu64
                 " files=%zu fetched=%" PRIu64 " resumed_bytes=%" PRIu64
                 " ms=%.1f failed_copies=%" PRIu64,
                 b->leader, b->seq, b->term, b->files, atomic_load(&b->bytes_fetched),
                 b->bytes_resumed, (double)(now_ns() - start) / 1e6, failures);
    }
    atomic_store(&b->state, rc ? BOOT_FAILED : BOOT_DONE);
    return NULL;
}

/* ---- the loop's side ----------------------------------------------------- */

static void join(struct bootstrap *b)
{
    if (b->started) {
        pthread_join(b->thread, NULL);
        b->started = false;
    }
}

void bootstrap_start(writer_t *w, uint32_t leader, const char *endpoint, uint64_t min_seq)
{
    struct bootstrap *b = w->boot;
    if (!b && !(b = w->boot = calloc(1, sizeof *b)))
        return;
    int state = atomic_load(&b->state);
    if (state == BOOT_RUNNING || state == BOOT_DONE)
        return;
    if (state == BOOT_FAILED) {
        join(b);
        if (!b->failed_at_ns)
            b->failed_at_ns = now_ns();
        if (now_ns() - b->failed_at_ns < (uint64_t)RETRY_AFTER_MS * 1000000ull)
            return;
    }
    if (!endpoint || !*endpoint) {
        if (state != BOOT_FAILED)
            log_error("event=bootstrap_failed leader=%u error=\"cluster/replicator_peers has no "
                      "entry for node %u: nowhere to copy its snapshot from\"",
                      leader, leader);
        atomic_store(&b->state, BOOT_FAILED);
        b->failed_at_ns = now_ns();
        return;
    }
    snprintf(b->data_dir, sizeof b->data_dir, "%s", w->data_dir);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", endpoint);
    b->leader = leader;
    b->min_seq = min_seq;
    b->failed_at_ns = 0;
    atomic_store(&b->bytes_fetched, 0);
    b->bytes_resumed = b->files = 0;
    atomic_store(&b->stop, false);
    atomic_store(&b->state, BOOT_RUNNING);
    if (pthread_create(&b->thread, NULL, bootstrap_main, b) != 0) {
        log_error("event=bootstrap_failed error=\"cannot start its thread\"");
        atomic_store(&b->state, BOOT_FAILED);
        return;
    }
    b->started = true;
    log_info("event=bootstrap_started leader=%u endpoint=%s min_seq=%" PRIu64, leader, endpoint,
             min_seq);
}

bool bootstrap_copied(writer_t *w)
{
    return w->boot && atomic_load(&w->boot->state) == BOOT_DONE;
}

bool bootstrap_running(writer_t *w)
{
    return w->boot && atomic_load(&w->boot->state) == BOOT_RUNNING;
}

const char *bootstrap_progress(writer_t *w, uint64_t *bytes)
{
    static const char *const names[] = {"idle", "copying", "copied", "failed"};
    *bytes = w->boot ? atomic_load(&w->boot->bytes_fetched) : 0;
    return names[w->boot ? atomic_load(&w->boot->state) : 0];
}

void bootstrap_destroy(writer_t *w)
{
    struct bootstrap *b = w->boot;
    if (!b)
        return;
    atomic_store(&b->stop, true);
    join(b);
    free(b);
    w->boot = NULL;
}

/* ---- install, before the engine opens ------------------------------------ */

/* The engine's own files in the data dir: what a snapshot replaces. */
static bool engine_file(const char *name)
{
    if (!strcmp(name, "CURRENT") || !strcmp(name, "CURRENT.tmp") || !strncmp(name, "MANIFEST-", 9))
        return true;
    size_t digits = strspn(name, "0123456789");
    return digits > 0 && !strncmp(name + digits, ".sst", 4);
}

static int remove_engine_files(const char *data_dir, strata_error_t *err)
{
    DIR *d = opendir(data_dir);
    if (!d)
        return strata_error_set(err, STRATA_EIO, "open %s: %s", data_dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!engine_file(de->d_name))
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", data_dir, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = strata_error_set(err, STRATA_EIO, "remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    return rc ? rc : sync_dir(data_dir, err);
}

/* Whether dir exists and holds anything. */
static bool dir_has_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *de;
    bool any = false;
    while (!any && (de = readdir(d)))
        any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return any;
}

static void log_problem(void *arg, const char *problem)
{
    log_error("event=bootstrap_check snapshot=%s problem=\"%s\"", (const char *)arg, problem);
}

int bootstrap_install(const char *data_dir, strata_error_t *err)
{
    char dir[PATH_MAX + 16], marker[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/bootstrap", data_dir);
    snprintf(marker, sizeof marker, "%s/INSTALL", dir);
    FILE *f = fopen(marker, "r");
    if (!f)
        return errno == ENOENT
                   ? 0
                   : strata_error_set(err, STRATA_EIO, "open %s: %s", marker, strerror(errno));
    char name[64] = "";
    bool read_ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\n")] = '\0';
    if (!read_ok || !strata_snapshot_name_ok(name, strlen(name)))
        return strata_error_set(err, STRATA_ECORRUPT,
                                "%s: '%s' is not a snapshot name (snap- and 20 digits)", marker,
                                name);
    uint64_t start = now_ns();
    char snap[PATH_MAX + 96], before[PATH_MAX + 96], wal[PATH_MAX + 16];
    snprintf(snap, sizeof snap, "%s/%s", dir, name);
    snprintf(before, sizeof before, "%s/wal.before-%s", data_dir, name);
    snprintf(wal, sizeof wal, "%s/wal", data_dir);
    bool begun = access(before, F_OK) == 0;
    strata_snapshot_meta_t meta = {0};
    int rc = strata_snapshot_read(snap, &meta, err);
    if (rc == 0)
        rc = strata_snapshot_check(snap, log_problem, name, err);
    if (rc && !begun) {
        /* Nothing of the data dir changed yet: start on it as it is, and the
         * master's next offer starts another copy. */
        log_error("event=bootstrap_discarded snapshot=%s error=\"%s\"", snap, err->msg);
        strata_snapshot_meta_free(&meta);
        strata_error_t ignored;
        if (clear_bootstrap_dir(dir, NULL, &ignored) != 0)
            log_error("event=bootstrap_discard_failed dir=%s error=\"%s\"", dir, ignored.msg);
        return 0;
    }
    if (rc) {
        strata_snapshot_meta_free(&meta);
        return strata_error_set(err, rc,
                                "%s: the snapshot being installed is damaged (%s) and the old "
                                "log is already in %s; wipe %s and start the node again to copy "
                                "a new one",
                                snap, err->msg, before, data_dir);
    }
    /* 1. The old log is kept aside (it may hold a deposed master's
     * unreplicated tail), in one rename. Only an empty log, which a pass
     * cut short by a crash made, is removed: a log that holds anything is
     * never deleted, even when an earlier install of the same snapshot
     * left its name taken. */
    if (dir_has_entries(wal)) {
        char aside[PATH_MAX + 160];
        if (begun)
            snprintf(aside, sizeof aside, "%s.%" PRIu64, before, now_ns());
        else
            snprintf(aside, sizeof aside, "%s", before);
        if (rename(wal, aside) != 0)
            rc = strata_error_set(err, STRATA_EIO, "rename %s to %s: %s", wal, aside,
                                  strerror(errno));
        else
            log_info("event=old_log_kept dir=%s", aside);
    }
    if (rc == 0)
        rc = sync_dir(data_dir, err);
    /* 2. The old tables go; a second pass after a crash removes what the
     * first linked, and links it again. */
    if (rc == 0)
        rc = remove_engine_files(data_dir, err);
    if (rc == 0 && (rc = strata_snapshot_remove(wal, err)) == 0) {
        int sys = strata_io_mkdirs(strata_io_posix(), wal);
        if (sys < 0)
            rc = strata_error_set(err, STRATA_EIO, "create %s: %s", wal, strerror(-sys));
        else
            rc = sync_dir(data_dir, err);
    }
    /* 3. The snapshot's files, by hard link; CURRENT last, so the engine
     * finds a whole version or none. */
    for (size_t i = 0; rc == 0 && i < meta.n_files; i++) {
        const char *fname = meta.files[i].name;
        if (!engine_file(fname) || !strcmp(fname, "CURRENT"))
            continue;
        char from[PATH_MAX + 256], to[PATH_MAX + 256];
        snprintf(from, sizeof from, "%s/%s", snap, fname);
        snprintf(to, sizeof to, "%s/%s", data_dir, fname);
        if (link(from, to) != 0)
            rc = strata_error_set(err, STRATA_EIO, "link %s to %s: %s", from, to, strerror(errno));
    }
    if (rc == 0)
        rc = sync_dir(data_dir, err);
    if (rc == 0) {
        char from[PATH_MAX + 128], tmp[PATH_MAX + 32], to[PATH_MAX + 32];
        snprintf(from, sizeof from, "%s/CURRENT", snap);
        snprintf(tmp, sizeof tmp, "%s/CURRENT.tmp", data_dir);
        snprintf(to, sizeof to, "%s/CURRENT", data_dir);
        unlink(tmp);
        if (link(from, tmp) != 0 || rename(tmp, to) != 0)
            rc = strata_error_set(err, STRATA_EIO, "install %s as %s: %s", from, to,
                                  strerror(errno));
        else
            rc = sync_dir(data_dir, err);
    }
    /* 4. The log now starts after (seq, term): the WAL cannot say which
     * term that was, and the vote check needs it. */
    if (rc == 0) {
        char mark[128];
        int n = snprintf(mark, sizeof mark,
                         "strata raft-snapshot 1\nseq %" PRIu64 "\nterm %" PRIu64 "\n", meta.seq,
                         meta.term);
        rc = write_durable(data_dir, MARK_FILE, mark, (size_t)n, err);
    }
    /* 5. Done: the copy's tables live on through the links. */
    if (rc == 0 && unlink(marker) != 0)
        rc = strata_error_set(err, STRATA_EIO, "remove %s: %s", marker, strerror(errno));
    if (rc == 0)
        rc = sync_dir(dir, err);
    if (rc == 0)
        rc = strata_snapshot_remove(snap, err);
    if (rc == 0)
        log_info("event=snapshot_installed snapshot=%s seq=%" PRIu64 " term=%" PRIu64
                 " files=%zu bytes=%" PRIu64 " old_wal=%s ms=%.1f",
                 name, meta.seq, meta.term, meta.n_files, meta.bytes, before,
                 (double)(now_ns() - start) / 1e6);
    strata_snapshot_meta_free(&meta);
    return rc;
}

int bootstrap_mark(const char *data_dir, uint64_t *seq, uint64_t *term)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" MARK_FILE, data_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = fscanf(f, "strata raft-snapshot 1\nseq %" SCNu64 "\nterm %" SCNu64, seq, term);
    fclose(f);
    return n == 2 ? 0 : -1;
}
