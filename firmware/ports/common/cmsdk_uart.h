/* cmsdk_uart.h: the Arm CMSDK APB UART used by the MPS2/MPS3 FPGA images (and their QEMU models). */
#ifndef OD_CMSDK_UART_H
#define OD_CMSDK_UART_H

#include <stdint.h>

#define CMSDK_UART_DATA(b) (*(volatile uint32_t *)((b) + 0x00u))
#define CMSDK_UART_STATE(b) (*(volatile uint32_t *)((b) + 0x04u)) /* bit0 TX full, bit1 RX full */
#define CMSDK_UART_CTRL(b) (*(volatile uint32_t *)((b) + 0x08u))  /* bit0 TX enable, bit1 RX enable */
#define CMSDK_UART_BAUDDIV(b) (*(volatile uint32_t *)((b) + 0x10u))

static inline void cmsdk_uart_init(uint32_t base, uint32_t clock_hz, uint32_t baud)
{
    uint32_t div = clock_hz / baud;
    CMSDK_UART_BAUDDIV(base) = div < 16u ? 16u : div; /* 16 is the smallest legal divisor */
    CMSDK_UART_CTRL(base) = 0x3u;
}

static inline void cmsdk_uart_putc(uint32_t base, uint8_t c)
{
    while (CMSDK_UART_STATE(base) & 1u) {
    }
    CMSDK_UART_DATA(base) = c;
}

static inline int cmsdk_uart_getc(uint32_t base)
{
    if (!(CMSDK_UART_STATE(base) & 2u)) return -1;
    return (int)(CMSDK_UART_DATA(base) & 0xFFu);
}

#endif /* OD_CMSDK_UART_H */
