/* od_crc32.h: CRC-32 (IEEE 802.3, reflected 0xEDB88320, init and final xor 0xFFFFFFFF), "123456789" -> 0xCBF43926. */
#ifndef OD_CRC32_H
#define OD_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0, feed any number of chunks, the return value is the finished CRC of everything so far. */
uint32_t od_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

#endif /* OD_CRC32_H */
