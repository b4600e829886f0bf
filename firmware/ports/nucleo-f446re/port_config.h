/* port_config.h for nucleo-f446re: STM32F446RE (Cortex-M4F) on a Nucleo-64 board. Builds here; not run on hardware.
 * OD_F446_HSI_ONLY=1 keeps the 16 MHz reset clock (a safe fallback when bringing up a new board). */
#ifndef OD_PORT_CONFIG_H
#define OD_PORT_CONFIG_H

#ifndef OD_F446_HSI_ONLY
#define OD_F446_HSI_ONLY 0
#endif

#define OD_PORT_BOARD "nucleo-f446re"
#define OD_PORT_CPU "cortex-m4"
#if OD_F446_HSI_ONLY
#define OD_PORT_CLOCK_HZ 16000000u
#define OD_PORT_APB1_HZ 16000000u
#else
#define OD_PORT_CLOCK_HZ 180000000u /* HSI 16 MHz -> PLL (M 8, N 180, P 2), over-drive on */
#define OD_PORT_APB1_HZ 45000000u   /* APB1 limit is 45 MHz: HCLK / 4 */
#endif
#define OD_PORT_RAM_BYTES (128u * 1024u)
#define OD_PORT_FLASH_BYTES (512u * 1024u)
/* On silicon SysTick on the core clock counts real cycles. */
#define OD_PORT_TIMER_UNIT OD_TIMER_UNIT_CYCLES
#define OD_PORT_TIME_PER_SECOND ((unsigned long long)OD_PORT_CLOCK_HZ)
/* USART2 receives by interrupt into a 1 KB ring, so two 527-byte frames can be in flight. */
#define OD_PORT_RX_WINDOW 2
#define OD_PORT_NUM_IRQS 97 /* STM32F446: IRQ 0..96 */

#endif /* OD_PORT_CONFIG_H */
