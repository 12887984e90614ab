/* <wal dir>/LOGSTATE: how far the log is known to reach, so that recovery
 * can tell a torn tail (unacknowledged bytes a crash cut short) from loss
 * (a missing newest segment, or a tail shorter than what was durable).
 * Rewritten whole on open, on every segment roll, before a truncation and
 * at a clean close; layout and rules in lib/log/wal.md, "The log state". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coding.h"
#include "strata/crc.h"
#include "wal_impl.h"

#define STATE_NAME    "LOGSTATE"
#define STATE_MAGIC   "STRATALS"
#define STATE_VERSION 1u
#define STATE_SIZE    40u
#define STATE_CLEAN   0x1u

int wal_write_durably(strata_io_t *io, const char *dir, const char *path, const void *data,
                      size_t len, strata_error_t *err)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = 0;
    int fd = io->open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int sys = fd;
    if (fd >= 0) {
        sys = strata_io_pwrite_all(io, fd, data, len, 0);
        if (sys >= 0)
            sys = io->fdatasync(io, fd);
        io->close(io, fd);
    }
    if (sys >= 0)
        sys = io->rename(io, tmp, path);
    if (sys >= 0)
        sys = io->sync_dir(io, dir);
    if (sys < 0)
        rc = wal_io_fail(err, sys, "write", tmp);
    free(tmp);
    return rc;
}

int wal_state_load(strata_wal_t *self, strata_error_t *err)
{
    self->state_present = false;
    char *path = NULL;
    if (asprintf(&path, "%s/" STATE_NAME, self->dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    uint8_t buf[STATE_SIZE];
    uint64_t size = 0;
    int rc = 0;
    int fd = self->io->open(self->io, path, O_RDONLY, 0);
    if (fd == -ENOENT)
        goto out; /* a log from before the state file, or a new one */
    int sys = fd < 0 ? fd : self->io->file_size(self->io, fd, &size);
    if (sys >= 0 && size == STATE_SIZE)
        sys = strata_io_pread_all(self->io, fd, buf, sizeof buf, 0);
    if (fd >= 0)
        self->io->close(self->io, fd);
    if (sys < 0) {
        rc = wal_io_fail(err, sys, "read", path);
        goto out;
    }
    const char *name = display_name(path);
    if (size != STATE_SIZE) {
        rc = strata_error_set(err, STRATA_ECORRUPT, "%s: %" PRIu64 " bytes, not %u", name, size,
                              STATE_SIZE);
        goto out;
    }
    uint32_t stored = get_u32(buf + 36), computed = strata_crc32c(0, buf, 36);
    if (stored != computed) {
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s offset 36: crc mismatch (stored %08x, computed %08x)", name,
                              stored, computed);
        goto out;
    }
    if (memcmp(buf, STATE_MAGIC, 8) != 0) {
        rc = strata_error_set(err, STRATA_ECORRUPT, "%s offset 0: bad magic", name);
        goto out;
    }
    if (get_u32(buf + 8) != STATE_VERSION) {
        rc = strata_error_set(err, STRATA_ECORRUPT,
                              "%s offset 8: version %u unknown, this side "
                              "reads %u",
                              name, get_u32(buf + 8), STATE_VERSION);
        goto out;
    }
    self->state_present = true;
    self->state_clean = get_u32(buf + 12) & STATE_CLEAN;
    self->state_newest = get_u64(buf + 16);
    self->state_reach = get_u64(buf + 24);
out:
    free(path);
    return rc;
}

int wal_state_save(strata_wal_t *self, uint64_t newest_segment, uint64_t reach_seq, bool clean,
                   strata_error_t *err)
{
    uint8_t buf[STATE_SIZE] = {0};
    memcpy(buf, STATE_MAGIC, 8);
    put_u32(buf + 8, STATE_VERSION);
    put_u32(buf + 12, clean ? STATE_CLEAN : 0);
    put_u64(buf + 16, newest_segment);
    put_u64(buf + 24, reach_seq);
    put_u32(buf + 36, strata_crc32c(0, buf, 36));
    char *path = NULL;
    if (asprintf(&path, "%s/" STATE_NAME, self->dir) < 0)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    int rc = wal_write_durably(self->io, self->dir, path, buf, sizeof buf, err);
    free(path);
    if (rc == 0) {
        self->state_present = true;
        self->state_clean = clean;
        self->state_newest = newest_segment;
        self->state_reach = reach_seq;
    }
    return rc;
}
