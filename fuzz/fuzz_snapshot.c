/* A snapshot's SNAPSHOT file (lib/engine/snapshot.md), as restore, verify
 * and backup read it before trusting any listed file. */
#include "fuzz.h"
#include "strata/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(STRATA_SNAPSHOT_FILE, data, size);
    strata_snapshot_meta_t meta = {0};
    strata_error_t err;
    if (strata_snapshot_read(fuzz_dir(), &meta, &err) == 0)
        strata_snapshot_meta_free(&meta);
    return 0;
}
