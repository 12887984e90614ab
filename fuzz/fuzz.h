/* What the fuzz targets share: a scratch directory of their own, made once
 * per process, for the decoders that read files (segments, tables,
 * MANIFEST, SNAPSHOT), and a helper that puts the input there. */
#ifndef STRATA_FUZZ_H
#define STRATA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* The process's scratch directory (created on first use, under $TMPDIR). */
const char *fuzz_dir(void);
/* Writes data as <fuzz_dir>/name, replacing what was there; returns its path
 * (static storage, valid until the next call). */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);

#endif
