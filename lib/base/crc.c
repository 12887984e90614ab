/* CRC32C through ISA-L. Its length argument is an int, so large buffers are
 * fed in chunks to stay correct past 2 GiB. */
#include "strata/crc.h"

#include <isa-l/crc.h>

uint32_t strata_crc32c(uint32_t crc, const void *data, size_t len)
{
    /* crc32_iscsi neither pre- nor post-inverts; the CRC32C convention does
     * both, which is what makes "123456789" come out as 0xE3069283. */
    const unsigned char *p = data;
    uint32_t state = ~crc;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        state = crc32_iscsi((unsigned char *)p, chunk, state);
        p += chunk;
        len -= (size_t)chunk;
    }
    return ~state;
}
