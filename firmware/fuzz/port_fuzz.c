/* port_fuzz.c: the port for the libFuzzer build. Output is discarded (but counted), time is a counter. */
#include "od_port.h"

int od_fuzz_reset_requested;
static uint64_t g_now;
static uint32_t g_out_bytes;

void port_init(void) {}
void port_putc(uint8_t c) { g_out_bytes += c ? 1u : 0u; }
int port_getc(void) { return -1; }
uint64_t port_time_now(void) { return g_now += 7u; }
od_reset_reason_t port_reset_reason(void) { return OD_RESET_POWER_ON; }
void port_reset(void) { od_fuzz_reset_requested = 1; }
void port_stack_bounds(uintptr_t *lo, uintptr_t *hi) { *lo = *hi = 0; }
uint32_t port_boot_id(void) { return 1u; }
uint32_t port_static_ram_bytes(void) { return 0xFFFFFFFFu; }
uint32_t port_flash_used_bytes(void) { return 0xFFFFFFFFu; }
