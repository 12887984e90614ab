/* A strata_io_t wrapper for crash and fault tests. It passes calls to POSIX
 * and keeps, per file, an undo log of every change not yet covered by a
 * fdatasync/fsync of that file; faultio_crash() rolls those back (a power
 * cut: the page cache is lost, the disk keeps what was synced) and removes
 * files whose creation no directory sync covered. It can also fail the Nth
 * fdatasync or write from now on. */
#ifndef STRATA_TEST_FAULTIO_H
#define STRATA_TEST_FAULTIO_H

#include "strata/io.h"

typedef struct faultio faultio_t;

faultio_t *faultio_new(void);
void faultio_destroy(faultio_t **self_p);
strata_io_t *faultio_io(faultio_t *self);

/* The nth fdatasync/fsync (1 = the next one) and every later one fail with
 * EIO; 0 disables. */
void faultio_fail_sync_after(faultio_t *self, int nth);
/* The nth pwrite (1 = the next one) and every later one fail with EIO. */
void faultio_fail_write_after(faultio_t *self, int nth);

/* Makes every successful fdatasync/fsync take at least us microseconds,
 * like a slow disk, so group commit has something to amortise. */
void faultio_set_sync_delay_us(faultio_t *self, unsigned us);

/* Simulates a power cut now. Every later call through the io fails with
 * EIO, as if the machine were gone; open a new faultio (or POSIX) to
 * "reboot". Returns the number of bytes of unsynced data dropped. */
uint64_t faultio_crash(faultio_t *self);

#endif
