/* The Raft metadata file (lib/raft/meta.md): two slots, each a whole
 * record with its own CRC, written alternately, so a store torn by a power
 * cut damages only the slot it was writing and the other still holds the
 * previous (term, vote). */
#define _GNU_SOURCE
#include "strata/raft_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "coding.h"
#include "strata/crc.h"

#define META_MAGIC    "STRATARM"
#define META_VERSION  1u
#define META_SIZE     44u
#define META_MIN_SIZE 16u   /* magic, version, crc: the frame of every version */
#define META_MAX_SIZE 4096u /* no version will be larger: a bound on the read */
#define OFF_VERSION   8
#define OFF_VOTE      12
#define OFF_SEQ       16
#define OFF_TERM      24
#define OFF_INCARNATN 32
#define OFF_CRC       40

struct strata_raft_meta {
    strata_io_t *io;
    char *dir;
    char *path[2]; /* raft-meta.1, raft-meta.2 */
    bool exists[2];
    int slot; /* 1 or 2: holds the newest durable record; 0 before the first store */
    uint64_t seq, term, incarnation;
    uint32_t vote;
    /* A write or sync failed: what the disk holds is unknown, so no later
     * store may claim durability. */
    bool failed;
};

typedef enum { SLOT_ABSENT, SLOT_VALID, SLOT_INVALID } slot_state_t;

typedef struct {
    slot_state_t state;
    uint64_t seq, term, incarnation;
    uint32_t vote;
    char why[200]; /* SLOT_INVALID: the offset and field at fault */
} slot_t;

static int io_fail(strata_error_t *err, int sys_rc, const char *what, const char *path)
{
    return strata_error_set(err, STRATA_EIO, "raft meta: %s %s: %s", what, display_name(path),
                            strerror(-sys_rc));
}

static void encode(uint8_t *p, uint64_t seq, uint64_t term, uint32_t vote, uint64_t incarnation)
{
    memcpy(p, META_MAGIC, 8);
    put_u32(p + OFF_VERSION, META_VERSION);
    put_u32(p + OFF_VOTE, vote);
    put_u64(p + OFF_SEQ, seq);
    put_u64(p + OFF_TERM, term);
    put_u64(p + OFF_INCARNATN, incarnation);
    put_u32(p + OFF_CRC, strata_crc32c(0, p, OFF_CRC));
}

/* Checks in the order meta.md gives; the CRC comes before the version so
 * that only an intact record of a newer format stops the load. */
static int parse(const uint8_t *p, uint64_t size, const char *name, slot_t *s, strata_error_t *err)
{
    s->state = SLOT_INVALID;
    if (size < META_MIN_SIZE || size > META_MAX_SIZE) {
        snprintf(s->why, sizeof s->why, "%s: %" PRIu64 " bytes, not %u", name, size, META_SIZE);
        return 0;
    }
    uint64_t crc_off = size - 4;
    uint32_t stored = get_u32(p + crc_off), computed = strata_crc32c(0, p, (size_t)crc_off);
    if (stored != computed) {
        snprintf(s->why, sizeof s->why,
                 "%s offset %" PRIu64 ": crc mismatch (stored %08x, computed %08x)", name, crc_off,
                 stored, computed);
        return 0;
    }
    if (memcmp(p, META_MAGIC, 8) != 0) {
        snprintf(s->why, sizeof s->why, "%s offset 0: bad magic", name);
        return 0;
    }
    uint32_t version = get_u32(p + OFF_VERSION);
    if (version != META_VERSION)
        return strata_error_set(err, STRATA_EVERSION,
                                "%s offset 8: version %u unknown, this side reads %u", name,
                                version, META_VERSION);
    if (size != META_SIZE) {
        snprintf(s->why, sizeof s->why, "%s: %" PRIu64 " bytes, not %u", name, size, META_SIZE);
        return 0;
    }
    s->seq = get_u64(p + OFF_SEQ);
    s->term = get_u64(p + OFF_TERM);
    s->vote = get_u32(p + OFF_VOTE);
    s->incarnation = get_u64(p + OFF_INCARNATN);
    if (s->seq == 0) {
        snprintf(s->why, sizeof s->why, "%s offset 16: seq 0", name);
        return 0;
    }
    if (s->incarnation == 0) {
        snprintf(s->why, sizeof s->why, "%s offset 32: incarnation 0", name);
        return 0;
    }
    s->state = SLOT_VALID;
    return 0;
}

static int read_slot(strata_io_t *io, const char *path, slot_t *s, strata_error_t *err)
{
    memset(s, 0, sizeof *s);
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd == -ENOENT) {
        s->state = SLOT_ABSENT;
        snprintf(s->why, sizeof s->why, "%s: absent", display_name(path));
        return 0;
    }
    if (fd < 0)
        return io_fail(err, fd, "open", path);
    uint64_t size = 0;
    uint8_t buf[META_MAX_SIZE];
    int sys = io->file_size(io, fd, &size);
    if (sys >= 0 && size >= META_MIN_SIZE && size <= META_MAX_SIZE)
        sys = strata_io_pread_all(io, fd, buf, (size_t)size, 0);
    io->close(io, fd);
    if (sys < 0)
        return io_fail(err, sys, "read", path);
    return parse(buf, size, display_name(path), s, err);
}

static int random_incarnation(uint64_t *out, strata_error_t *err)
{
    uint64_t v = 0;
    while (v == 0) {
        ssize_t n = getrandom(&v, sizeof v, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof v)
            return strata_error_set(err, STRATA_EIO, "raft meta: getrandom: %s",
                                    n < 0 ? strerror(errno) : "short read");
    }
    *out = v;
    return 0;
}

/* Picks what to load from the two slots (meta.md, "Choosing a slot"). */
static int choose(strata_raft_meta_t *m, const slot_t s[2], bool *fresh, strata_error_t *err)
{
    bool valid[2] = {s[0].state == SLOT_VALID, s[1].state == SLOT_VALID};
    if (s[0].state == SLOT_ABSENT && s[1].state == SLOT_ABSENT) {
        *fresh = true;
        return random_incarnation(&m->incarnation, err);
    }
    if (!valid[0] && !valid[1])
        return strata_error_set(err, STRATA_ECORRUPT, "raft meta: no valid slot: %s; %s", s[0].why,
                                s[1].why);
    if (valid[0] && valid[1]) {
        if (s[0].incarnation != s[1].incarnation)
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "raft meta: %s offset 32: incarnation %016" PRIx64
                                    ", %s has %016" PRIx64 ": the slots come from different disks",
                                    display_name(m->path[0]), s[0].incarnation,
                                    display_name(m->path[1]), s[1].incarnation);
        if (s[0].seq == s[1].seq)
            return strata_error_set(err, STRATA_ECORRUPT,
                                    "raft meta: %s offset 16: seq %" PRIu64 ", the same as %s",
                                    display_name(m->path[0]), s[0].seq, display_name(m->path[1]));
    }
    int pick = !valid[0] || (valid[1] && s[1].seq > s[0].seq) ? 1 : 0;
    const slot_t *other = &s[1 - pick];
    if (other->state == SLOT_INVALID)
        strata_log(STRATA_LOG_WARNING, "event=raft_meta_fallback using=%s damaged=\"%s\"",
                   display_name(m->path[pick]), other->why);
    m->slot = pick + 1;
    m->seq = s[pick].seq;
    m->term = s[pick].term;
    m->vote = s[pick].vote;
    m->incarnation = s[pick].incarnation;
    return 0;
}

int strata_raft_meta_open(strata_io_t *io, const char *dir, strata_raft_meta_t **meta, bool *fresh,
                          strata_error_t *err)
{
    if (!dir || !meta || !fresh)
        return strata_error_set(err, STRATA_EINVAL, "raft meta: open needs dir, meta and fresh");
    *meta = NULL;
    *fresh = false;
    strata_raft_meta_t *m = calloc(1, sizeof *m);
    if (!m)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    m->io = io ? io : strata_io_posix();
    m->dir = strdup(dir);
    for (int i = 0; i < 2 && m->dir; i++)
        if (asprintf(&m->path[i], "%s/raft-meta.%d", dir, i + 1) < 0)
            m->path[i] = NULL;
    if (!m->dir || !m->path[0] || !m->path[1]) {
        strata_raft_meta_close(&m);
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    }
    slot_t s[2];
    int rc = read_slot(m->io, m->path[0], &s[0], err);
    if (!rc)
        rc = read_slot(m->io, m->path[1], &s[1], err);
    if (!rc)
        rc = choose(m, s, fresh, err);
    if (rc) {
        strata_raft_meta_close(&m);
        return rc;
    }
    m->exists[0] = s[0].state != SLOT_ABSENT;
    m->exists[1] = s[1].state != SLOT_ABSENT;
    *meta = m;
    return 0;
}

/* A slot's first write goes to a temporary name that is renamed once
 * synced: an existing slot file has therefore held a whole record once, so
 * a damaged one is damage, never a half-made file to ignore. */
static int create_slot(strata_raft_meta_t *m, int idx, const uint8_t *rec, strata_error_t *err)
{
    strata_io_t *io = m->io;
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", m->path[idx]) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    const char *what = "open";
    const char *on = tmp;
    int fd = io->open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int sys = fd;
    if (fd >= 0) {
        what = "write";
        sys = strata_io_pwrite_all(io, fd, rec, META_SIZE, 0);
        if (sys >= 0) {
            what = "fdatasync";
            sys = io->fdatasync(io, fd);
        }
        io->close(io, fd);
    }
    if (sys >= 0) {
        what = "rename";
        sys = io->rename(io, tmp, m->path[idx]);
    }
    if (sys >= 0) {
        what = "sync_dir";
        on = m->dir;
        sys = io->sync_dir(io, m->dir);
    }
    int rc = sys < 0 ? io_fail(err, sys, what, on) : 0;
    free(tmp);
    return rc;
}

static int overwrite_slot(strata_raft_meta_t *m, int idx, const uint8_t *rec, strata_error_t *err)
{
    strata_io_t *io = m->io;
    const char *what = "open";
    int fd = io->open(io, m->path[idx], O_WRONLY, 0);
    int sys = fd;
    if (fd >= 0) {
        what = "write";
        sys = strata_io_pwrite_all(io, fd, rec, META_SIZE, 0);
        if (sys >= 0) {
            what = "fdatasync";
            sys = io->fdatasync(io, fd);
        }
        io->close(io, fd);
    }
    return sys < 0 ? io_fail(err, sys, what, m->path[idx]) : 0;
}

int strata_raft_meta_store(strata_raft_meta_t *m, uint64_t term, uint32_t vote, strata_error_t *err)
{
    if (!m)
        return strata_error_set(err, STRATA_EINVAL, "raft meta: store needs a meta");
    if (m->failed)
        return strata_error_set(err, STRATA_EREADONLY,
                                "raft meta: an earlier write or sync failed; reopen");
    if (term < m->term)
        return strata_error_set(err, STRATA_EINVAL,
                                "raft meta: term %" PRIu64 " is below the stored term %" PRIu64,
                                term, m->term);
    if (term == m->term && m->vote != 0 && vote != m->vote)
        return strata_error_set(err, STRATA_EINVAL,
                                "raft meta: term %" PRIu64 " already has vote %u, refusing %u",
                                term, m->vote, vote);
    if (m->seq > 0 && term == m->term && vote == m->vote)
        return 0; /* already durable */
    int idx = m->slot == 1 ? 1 : 0;
    uint8_t rec[META_SIZE];
    encode(rec, m->seq + 1, term, vote, m->incarnation);
    int rc = m->exists[idx] ? overwrite_slot(m, idx, rec, err) : create_slot(m, idx, rec, err);
    if (rc) {
        m->failed = true;
        return rc;
    }
    m->exists[idx] = true;
    m->slot = idx + 1;
    m->seq++;
    m->term = term;
    m->vote = vote;
    return 0;
}

uint64_t strata_raft_meta_term(const strata_raft_meta_t *m)
{
    return m->term;
}

uint32_t strata_raft_meta_vote(const strata_raft_meta_t *m)
{
    return m->vote;
}

uint64_t strata_raft_meta_incarnation(const strata_raft_meta_t *m)
{
    return m->incarnation;
}

uint64_t strata_raft_meta_seq(const strata_raft_meta_t *m)
{
    return m->seq;
}

int strata_raft_meta_slot(const strata_raft_meta_t *m)
{
    return m->slot;
}

void strata_raft_meta_close(strata_raft_meta_t **meta)
{
    if (!meta || !*meta)
        return;
    strata_raft_meta_t *m = *meta;
    free(m->path[0]);
    free(m->path[1]);
    free(m->dir);
    free(m);
    *meta = NULL;
}
