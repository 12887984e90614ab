/* CRC32C (Castagnoli), the checksum of every WAL entry and SST block.
 * Backed by ISA-L's crc32_iscsi, which picks SSE4.2/PCLMUL at run time. */
#ifndef STRATA_CRC_H
#define STRATA_CRC_H

#include <stddef.h>
#include <stdint.h>

/* crc32c of data, continuing from a previous crc32c value (0 to start).
 * strata_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t strata_crc32c(uint32_t crc, const void *data, size_t len);

#endif
