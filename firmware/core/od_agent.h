/* od_agent.h: the protocol agent (PROTOCOL.md) over the linked model (od_model_api.h) and the audio frontend. */
#ifndef OD_AGENT_H
#define OD_AGENT_H

#include <stdint.h>

#include "od_port.h" /* the port may size the buffers below */

/* Static buffer sizes; override with -D to fit a board. */
#ifndef OD_MAX_RUNS
#define OD_MAX_RUNS 128u /* timings kept per RUN (8 bytes each) */
#endif
#ifndef OD_MAX_OPS
#define OD_MAX_OPS 256u /* ops with per-op timings (8 bytes each) */
#endif
#ifndef OD_MAX_WARMUP
#define OD_MAX_WARMUP 100000u /* a corrupted RUN must not lock the device up for hours */
#endif
#ifndef OD_INPUT_STAGE_BYTES
#define OD_INPUT_STAGE_BYTES 16384u /* staged copy of every model input, re-copied before each invoke */
#endif
#ifndef OD_WITH_FRONTEND
#define OD_WITH_FRONTEND 1 /* 0 drops the audio frontend and its 36 KB of buffers */
#endif
/* Longest audio input in samples (default: one clip, OD_FE_CLIP_SAMPLES); small boards may take less. */

/* Reset state and send BOOT (preceded by a 0x00 that flushes any garbage the host holds). */
void od_agent_init(void);
/* Feed one received byte; complete frames are executed and answered through port_putc. */
void od_agent_feed(uint8_t byte);
/* Frames dropped by the receiver (bad CRC, COBS, length, overflow) since boot. */
uint32_t od_agent_rx_dropped(void);

#endif /* OD_AGENT_H */
