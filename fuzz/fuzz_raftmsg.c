/* The Raft peer codec's decoder (lib/raft/msg.c): any bytes give a message
 * or an error, never a crash; a message that decodes encodes again, with
 * its frames, and decodes to the same fields and entries. */
#include <stdlib.h>
#include <string.h>

#include "strata/raft_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static strata_raft_entry_t entries[STRATA_RAFT_MAX_ENTRIES],
        again_entries[STRATA_RAFT_MAX_ENTRIES];
    strata_raft_msg_t m;
    const uint8_t *frames;
    size_t frames_len;
    strata_error_t err;
    if (strata_raft_msg_decode(data, size, &m, entries, STRATA_RAFT_MAX_ENTRIES, &frames,
                               &frames_len, &err) != 0)
        return 0;
    if (frames_len && (frames < data || frames + frames_len > data + size))
        abort();
    uint8_t *buf = NULL;
    size_t len = 0;
    if (strata_raft_msg_encode(&m, frames, frames_len, &buf, &len, &err) != 0)
        abort(); /* whatever decodes must encode */
    strata_raft_msg_t again;
    const uint8_t *f2;
    size_t f2_len;
    if (strata_raft_msg_decode(buf, len, &again, again_entries, STRATA_RAFT_MAX_ENTRIES, &f2,
                               &f2_len, &err) != 0 ||
        again.type != m.type || again.term != m.term || again.from != m.from ||
        again.n_entries != m.n_entries || f2_len != frames_len ||
        (frames_len && memcmp(f2, frames, frames_len) != 0))
        abort();
    for (uint32_t i = 0; i < m.n_entries; i++)
        if (again_entries[i].seq != entries[i].seq || again_entries[i].term != entries[i].term ||
            again_entries[i].data != entries[i].data)
            abort();
    free(buf);
    return 0;
}
