/* Log entries (lib/log/wal.md) as ring readers, PUB subscribers, replay
 * pages and follower appends decode them: one after another through the
 * input until one does not decode. */
#include "strata/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        strata_entry_t e;
        size_t used = 0;
        strata_error_t err;
        if (strata_entry_decode(data + off, size - off, 0, &e, &used, &err) != 0 || used == 0)
            break;
        off += used;
    }
    return 0;
}
