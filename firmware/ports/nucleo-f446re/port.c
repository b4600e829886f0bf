/* port.c for nucleo-f446re: 180 MHz from the HSI through the PLL, USART2 on PA2/PA3 (the ST-LINK virtual COM
 * port), SysTick cycles, RCC_CSR reset cause. Register addresses and the over-drive sequence follow the STM32F446
 * reference manual (RM0390). Builds here; not run on hardware. */
#include "cortexm.h"
#include "od_port.h"

#define RCC_BASE 0x40023800u
#define RCC_CR OD_REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR OD_REG32(RCC_BASE + 0x04u)
#define RCC_CFGR OD_REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR OD_REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR OD_REG32(RCC_BASE + 0x40u)
#define RCC_CSR OD_REG32(RCC_BASE + 0x74u)

#define PWR_CR OD_REG32(0x40007000u)
#define PWR_CSR OD_REG32(0x40007004u)
#define FLASH_ACR OD_REG32(0x40023C00u)

#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER OD_REG32(GPIOA_BASE + 0x00u)
#define GPIOA_AFRL OD_REG32(GPIOA_BASE + 0x20u)
#define GPIOA_BSRR OD_REG32(GPIOA_BASE + 0x18u)
#define TIMESTAMP_PIN 0u /* PA0 (Arduino A0): the EEMBC energy monitor's timestamp input, idle high */

#define USART2_BASE 0x40004400u
#define USART2_SR OD_REG32(USART2_BASE + 0x00u)
#define USART2_DR OD_REG32(USART2_BASE + 0x04u)
#define USART2_BRR OD_REG32(USART2_BASE + 0x08u)
#define USART2_CR1 OD_REG32(USART2_BASE + 0x0Cu)

#define NVIC_ISER(n) OD_REG32(0xE000E100u + 4u * (n))
#define USART2_IRQ 38u

#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)
#define BAUD 115200u

static od_reset_reason_t g_reason = OD_RESET_UNKNOWN;

/* RX ring filled by the USART2 interrupt: bytes that arrive while the agent is busy sending are kept, not overrun.
 * Single producer (IRQ) and single consumer (main loop), indices only written by their owner. */
#define RX_RING 1024u
static volatile uint8_t g_rx[RX_RING];
static volatile uint32_t g_rx_head, g_rx_tail, g_rx_lost;

void port_irq(uint32_t irq)
{
    if (irq != USART2_IRQ) return;
    uint32_t sr;
    while ((sr = USART2_SR) & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t b = (uint8_t)USART2_DR; /* SR then DR also clears an overrun */
        uint32_t next = (g_rx_head + 1u) % RX_RING;
        if (next == g_rx_tail) {
            g_rx_lost++; /* full: the frame is lost, its CRC fails and the host retries */
            continue;
        }
        g_rx[g_rx_head] = b;
        g_rx_head = next;
    }
}

static od_reset_reason_t read_and_clear_csr(void)
{
    uint32_t csr = RCC_CSR;
    RCC_CSR = csr | (1u << 24); /* RMVF: clear the flags so the next boot reads fresh ones */
    if (csr & ((1u << 29) | (1u << 30))) return OD_RESET_WATCHDOG; /* IWDG, WWDG */
    if (csr & (1u << 28)) return OD_RESET_SOFTWARE;                  /* SFTRST */
    /* BORRST comes with PORRST: the wire has no brownout code, and both mean the supply dropped. */
    if (csr & ((1u << 25) | (1u << 27))) return OD_RESET_POWER_ON;
    if (csr & (1u << 26)) return OD_RESET_PIN; /* PINRST: the reset button or the debugger */
    return OD_RESET_UNKNOWN;
}

#if !OD_F446_HSI_ONLY
/* 180 MHz needs voltage scale 1 and over-drive (RM0390 5.1.4), 5 flash wait states, APB1 /4 and APB2 /2. */
static void clock_180mhz(void)
{
    RCC_APB1ENR |= (1u << 28); /* PWR */
    (void)RCC_APB1ENR;
    PWR_CR = (PWR_CR & ~(3u << 14)) | (3u << 14); /* VOS scale 1, set while the PLL is off */
    RCC_PLLCFGR = 8u | (180u << 6) | (0u << 16) | (0u << 22) | (4u << 24) | (2u << 28); /* HSI/8*180/2 */
    RCC_CR |= (1u << 24);
    while (!(RCC_CR & (1u << 25))) {
    }
    PWR_CR |= (1u << 16); /* ODEN */
    while (!(PWR_CSR & (1u << 16))) {
    }
    PWR_CR |= (1u << 17); /* ODSWEN */
    while (!(PWR_CSR & (1u << 17))) {
    }
    FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 WS, prefetch, I- and D-cache */
    while ((FLASH_ACR & 0xFu) != 5u) {
    }
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13))) | (5u << 10) | (4u << 13);
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* SYSCLK = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u) {
    }
}
#endif

void port_init(void)
{
    g_reason = read_and_clear_csr();
    /* A software reset we asked for because of a fault says so through .noinit. */
    if (g_reason == OD_RESET_SOFTWARE && cm_noinit_reset_reason() == OD_RESET_FAULT) g_reason = OD_RESET_FAULT;
#if !OD_F446_HSI_ONLY
    clock_180mhz();
#endif
    RCC_AHB1ENR |= (1u << 0);  /* GPIOA */
    RCC_APB1ENR |= (1u << 17); /* USART2 */
    (void)RCC_APB1ENR;         /* read back: the clock must run before the peripheral is touched */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4); /* PA2, PA3 alternate function */
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8); /* AF7 = USART2 */
    GPIOA_BSRR = 1u << TIMESTAMP_PIN;                              /* high before it becomes an output */
    GPIOA_MODER = (GPIOA_MODER & ~(3u << 2 * TIMESTAMP_PIN)) | (1u << 2 * TIMESTAMP_PIN);
    USART2_BRR = (OD_PORT_APB1_HZ + BAUD / 2u) / BAUD;        /* oversampling by 16: BRR = fck / baud */
    USART2_CR1 = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2); /* UE | RXNEIE | TE | RE */
    NVIC_ISER(USART2_IRQ / 32u) = 1u << (USART2_IRQ % 32u);
    cm_systick_start();
}

void port_putc(uint8_t c)
{
    while (!(USART2_SR & USART_SR_TXE)) {
    }
    USART2_DR = c;
}

int port_getc(void)
{
    if (g_rx_tail == g_rx_head) return -1;
    int c = g_rx[g_rx_tail];
    g_rx_tail = (g_rx_tail + 1u) % RX_RING;
    return c;
}

uint64_t port_time_now(void) { return cm_systick_ticks(); }

/* EEMBC energy mode: a low pulse of about 1 us (the monitor wants at least 62.5 ns) on the timestamp pin. */
void port_timestamp_pulse(void)
{
    GPIOA_BSRR = 1u << (16u + TIMESTAMP_PIN);
    uint64_t t0 = cm_systick_ticks();
    while (cm_systick_ticks() - t0 < OD_PORT_CLOCK_HZ / 1000000u) {
    }
    GPIOA_BSRR = 1u << TIMESTAMP_PIN;
}

od_reset_reason_t port_reset_reason(void) { return g_reason; }

void port_reset(void)
{
    /* Let the RESET reply leave the shift register before the core goes down. */
    while (!(USART2_SR & USART_SR_TC)) {
    }
    cm_reset_with_reason(OD_RESET_SOFTWARE);
}

