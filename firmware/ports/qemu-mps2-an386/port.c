/* port.c for mps2-an386: CMSDK UART0 for the host link, SysTick scaled to instructions, reset reason from .noinit. */
#include "cmsdk_uart.h"
#include "cortexm.h"
#include "od_port.h"

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

