/* od_eembc.h: the EEMBC / MLPerf Tiny DUT command set (`name%`, `profile%`, `db load N%`, `db HEX%`, `infer N W%`,
 * `results%`, answered by `m-...` lines and `m-ready`), beside the framed protocol on the same UART.
 *
 * Detection is per line, byte by byte: bytes are held while they are printable ASCII; a `%` ends a command line,
 * which runs here. Any other byte (a frame's version byte 0x01 is the second byte of every COBS frame, so no
 * frame is ever all text) hands the held bytes and the rest of that frame, up to its 0x00, to the framed agent
 * unchanged. Written from the runner's public description of the DUT's UART commands.
 */
#ifndef OD_EEMBC_H
#define OD_EEMBC_H

#include <stdint.h>

#ifndef OD_WITH_EEMBC
#define OD_WITH_EEMBC 1 /* 0 passes every byte to the agent and drops the database buffer */
#endif
#ifndef OD_EEMBC_LINE_MAX
#define OD_EEMBC_LINE_MAX 256u /* longest command line + 1, `%` excluded; longer lines get e-[command too long] */
#endif
/* -DOD_EEMBC_MODEL_ID='"kws01"' makes profile% name the runner's model id instead of the model's own name. */
#ifndef OD_EEMBC_ENERGY
#define OD_EEMBC_ENERGY 0 /* 1: timestamps are port_timestamp_pulse() (a GPIO edge), not m-lap-us lines */
#endif

/* Feed one received byte; bytes that are not part of a command line go on to `pass` (od_agent_feed). */
void od_eembc_feed(uint8_t byte, void (*pass)(uint8_t));

#endif /* OD_EEMBC_H */
