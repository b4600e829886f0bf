/* cortexm.h: Armv7-M / Armv8-M core registers shared by every Cortex-M port (no vendor SDK). */
#ifndef OD_CORTEXM_H
#define OD_CORTEXM_H

#include <stdint.h>

#define OD_REG32(a) (*(volatile uint32_t *)(a))

#define SYST_CSR OD_REG32(0xE000E010u)
#define SYST_RVR OD_REG32(0xE000E014u)
#define SYST_CVR OD_REG32(0xE000E018u)
#define SCB_ICSR OD_REG32(0xE000ED04u)
#define SCB_VTOR OD_REG32(0xE000ED08u)
#define SCB_AIRCR OD_REG32(0xE000ED0Cu)
#define SCB_CPACR OD_REG32(0xE000ED88u)

#define ICSR_PENDSTSET (1u << 26)
#define SYSTICK_MAX 0x00FFFFFFu

/* Reset reasons the startup records, numbered as od_reset_reason_t in core/od_port.h (cortexm.c checks they
 * match); the startup itself does not include the core's headers, so the benchmark runner can link it alone. */
#define CM_RESET_POWER_ON 0
#define CM_RESET_FAULT 3
#define CM_RESET_PIN 4
#define CM_RESET_UNKNOWN 0xFF

/* Linker-script symbols (ports/common/cortexm_sections.ld). */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;

/* SysTick wraps counted by its interrupt (the benchmark runner reads it directly for a lock-free tick read). */
extern volatile uint32_t cm_systick_wraps;

/* Start SysTick on the core clock, free-running, with the wrap interrupt extending it to 64 bits. */
void cm_systick_start(void);
/* Core-clock ticks since cm_systick_start(). */
uint64_t cm_systick_ticks(void);
/* Reset reason kept in .noinit RAM, for boards without a reset-cause register (QEMU). */
int cm_noinit_reset_reason(void);
/* Boots since power-on, counted in .noinit RAM. */
uint32_t cm_boot_count(void);
/* Remember why we are about to reset, then request a system reset. */
void cm_reset_with_reason(int reason) __attribute__((noreturn));

/* Where HardFault goes on a fresh stack: a reset with reason FAULT (weak, so a program can report and stop). */
void cm_fault_reset(void) __attribute__((noreturn));

/* Called for every external interrupt with its number (IPSR - 16); ports that enable IRQs define it. */
void port_irq(uint32_t irq);

static inline uint32_t cm_get_sp(void)
{
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

#endif /* OD_CORTEXM_H */
