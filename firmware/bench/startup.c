/* startup.c: minimal Cortex-M startup for the MCU-engine benchmark runner (no vendor SDK).
 * Copies .data, zeroes .bss, enables the FPU, then calls main(); SysTick counts its own wraps. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

volatile uint32_t od_bench_systick_wraps;

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    SysTick_Handler,
};

void SysTick_Handler(void) { od_bench_systick_wraps++; }

void Default_Handler(void) {
    /* A fault in the benchmark is a bug: stop here so the host times out with a clear message. */
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CP10/CP11 full access: the hard-float ABI may touch the FPU in libc. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n isb");
    main();
    for (;;) {
    }
}
