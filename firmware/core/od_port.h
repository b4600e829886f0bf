/* od_port.h: the hooks a board port provides to the portable core (od_*).
 *
 * A port is one folder under firmware/ports/<board>/ with port.c, port_config.h and (for MCUs) link.ld.
 * The core never includes board headers; it only calls these functions and reads the OD_PORT_* macros.
 */
#ifndef OD_PORT_H
#define OD_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "port_config.h"

/* Required configuration: a port that forgets one fails at compile time, not on the bench. */
#ifndef OD_PORT_BOARD
#error "port_config.h must define OD_PORT_BOARD (board name string, e.g. \"mps2-an386\")"
#endif
#ifndef OD_PORT_CPU
#error "port_config.h must define OD_PORT_CPU (e.g. \"cortex-m4\")"
#endif
#ifndef OD_PORT_CLOCK_HZ
#error "port_config.h must define OD_PORT_CLOCK_HZ (core clock in Hz)"
#endif
#ifndef OD_PORT_RAM_BYTES
#error "port_config.h must define OD_PORT_RAM_BYTES"
#endif
#ifndef OD_PORT_FLASH_BYTES
#error "port_config.h must define OD_PORT_FLASH_BYTES"
#endif
#ifndef OD_PORT_TIMER_UNIT
#error "port_config.h must define OD_PORT_TIMER_UNIT (one of the OD_TIMER_UNIT_* codes)"
#endif

/* Device time per second in OD_PORT_TIMER_UNIT (RUN sends a progress frame about once a second). */
#ifndef OD_PORT_TIME_PER_SECOND
#define OD_PORT_TIME_PER_SECOND 1000000000ull
#endif

/* Longest silence between RUN reply frames, in OD_PORT_TIMER_UNIT; an emulator's virtual second can take much
 * longer than the host's RUN inactivity timeout (10 s) on a busy machine, so emulated ports send more often. */
#ifndef OD_PORT_PROGRESS_INTERVAL
#define OD_PORT_PROGRESS_INTERVAL OD_PORT_TIME_PER_SECOND
#endif

/* Chunk requests the host may keep in flight (HELLO rx_window). The agent has one RX buffer and handles each frame
 * before reading on, so more than 1 is only safe on a link that holds bytes while we are busy (QEMU's UART
 * backpressures its socket); a real UART would overrun its 1-byte data register. */
#ifndef OD_PORT_RX_WINDOW
#define OD_PORT_RX_WINDOW 1
#endif

/* Timer units, numbered as on the wire (PROTOCOL.md). Instructions are never called cycles (QEMU -icount counts instructions). */
#define OD_TIMER_UNIT_US 0
#define OD_TIMER_UNIT_CYCLES 1
#define OD_TIMER_UNIT_INSTRUCTIONS 2
#define OD_TIMER_UNIT_NS 3

/* Reset reasons, numbered as in the BOOT frame (PROTOCOL.md). */
typedef enum {
    OD_RESET_POWER_ON = 0,
    OD_RESET_SOFTWARE = 1,
    OD_RESET_WATCHDOG = 2,
    OD_RESET_FAULT = 3,
    OD_RESET_PIN = 4,
    OD_RESET_UNKNOWN = 0xFF,
} od_reset_reason_t;

/* Bring up clocks, UART and the timer. Called once, first thing in od_main(). */
void port_init(void);
/* Blocking write of one byte to the host link. */
void port_putc(uint8_t c);
/* Non-blocking read: the byte (0..255), or -1 when nothing is waiting. */
int port_getc(void);
/* Monotonic time in OD_PORT_TIMER_UNIT, 64-bit so it never wraps during a session. */
uint64_t port_time_now(void);
/* Why the board last reset. */
od_reset_reason_t port_reset_reason(void);
/* Reset the board (never returns on hardware; the host build exits). */
void port_reset(void);
/* Stack region [*lo, *hi) for painting: the core paints below the live SP and scans from *lo upwards. */
void port_stack_bounds(uintptr_t *lo, uintptr_t *hi);
/* Changes on every boot (a counter in no-init RAM, a pid); 0 when the port cannot make it change. */
uint32_t port_boot_id(void);
/* Statically allocated RAM (.data + .bss, which holds the model arena), or 0xFFFFFFFF if unknown. */
uint32_t port_static_ram_bytes(void);
/* Bytes of the firmware image in flash (.isr_vector + .text + .rodata + .data load image), or 0xFFFFFFFF. */
uint32_t port_flash_used_bytes(void);

/* Optional: the EEMBC energy-mode timestamp, a short low pulse on the pin the energy monitor watches. The core's
 * weak default does nothing (QEMU and the host have no such pin). */
void port_timestamp_pulse(void);

#endif /* OD_PORT_H */
