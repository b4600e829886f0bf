/* qemu_mps.c: the port for Arm's MPS2/MPS3 FPGA images under QEMU (mps2-an386, mps3-an547): CMSDK UART0 for the
 * host link, SysTick scaled to instructions, reset reason from .noinit. The boards differ only in port_config.h
 * (UART base, clock, instructions per tick, memory sizes). */
#include "cmsdk_uart.h"
#include "cortexm.h"
#include "od_port.h"

#if !defined(OD_PORT_UART_BASE) || !defined(OD_PORT_INSTR_PER_TICK_NUM) || !defined(OD_PORT_INSTR_PER_TICK_DEN)
#error "an MPS port_config.h must define OD_PORT_UART_BASE and OD_PORT_INSTR_PER_TICK_NUM / _DEN"
#endif

void port_init(void)
{
    cmsdk_uart_init(OD_PORT_UART_BASE, OD_PORT_CLOCK_HZ, 115200u);
    cm_systick_start();
}

void port_putc(uint8_t c) { cmsdk_uart_putc(OD_PORT_UART_BASE, c); }

int port_getc(void) { return cmsdk_uart_getc(OD_PORT_UART_BASE); }

/* Under -icount shift=0 one SysTick tick is a fixed number of instructions (1e9 / clock Hz). */
uint64_t port_time_now(void)
{
    return cm_systick_ticks() * OD_PORT_INSTR_PER_TICK_NUM / OD_PORT_INSTR_PER_TICK_DEN;
}

/* The FPGA images have no reset-cause register; .noinit RAM remembers what we asked for. */
od_reset_reason_t port_reset_reason(void) { return (od_reset_reason_t)cm_noinit_reset_reason(); }

void port_reset(void) { cm_reset_with_reason(OD_RESET_SOFTWARE); }
