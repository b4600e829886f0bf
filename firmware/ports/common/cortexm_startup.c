/* cortexm_startup.c: the one Cortex-M startup (no vendor SDK), linked by every MCU port and by the benchmark
 * runner (ondevice.mcu.qemu_bench compiles it beside firmware/bench/bench_main.c): vector table, reset handler, fault capture, SysTick time base.
 *
 * It only touches core registers and needs nothing but cortexm.h; board work (clocks, UART) lives in the port,
 * and the od_port.h hooks common to Cortex-M ports live in cortexm.c.
 */
#include <stdint.h>

#include "cortexm.h"
/* OD_PORT_NUM_IRQS; the benchmark runner includes its board's port_config.h itself (no port folder on its -I). */
#ifndef OD_PORT_CONFIG_H
#include "port_config.h"
#endif

extern int main(void);

#define STACK_PAINT 0xDEADBEEFu
#define NOINIT_MAGIC 0x0D0DB007u

/* Survives a system reset (not zeroed by startup) so the next boot can say why it happened. */
__attribute__((section(".noinit"))) static volatile uint32_t g_noinit_magic;
__attribute__((section(".noinit"))) static volatile uint32_t g_noinit_reason;
__attribute__((section(".noinit"))) static volatile uint32_t g_noinit_boot_count;
static int g_boot_reason = CM_RESET_UNKNOWN;
volatile uint32_t cm_systick_wraps;

void Reset_Handler(void) __attribute__((noreturn));
void Default_Handler(void);
void HardFault_Handler(void);
void SysTick_Handler(void);

#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define OD_HAS_MSPLIM 1 /* Armv8-M: a stack overflow faults instead of silently corrupting .bss */
#else
#define OD_HAS_MSPLIM 0
#endif

void Reset_Handler(void)
{
#if OD_HAS_MSPLIM
    __asm volatile("msr msplim, %0" ::"r"(&_sstack));
#endif
    /* FPU on before any compiler-generated VFP instruction can run. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n isb" ::: "memory");
    for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
    for (uint32_t *d = &_sbss; d < &_ebss;) *d++ = 0u;
    /* Paint the unused stack below our own small frame so high-water can be found by scanning. */
    uint32_t limit = cm_get_sp() - 64u;
    for (volatile uint32_t *p = &_sstack; (uint32_t)p < limit; p++) *p = STACK_PAINT;

    if (g_noinit_magic != NOINIT_MAGIC) {
        g_boot_reason = CM_RESET_POWER_ON;
        g_noinit_boot_count = 0u;
    } else {
        g_boot_reason = (int)g_noinit_reason;
    }
    g_noinit_boot_count++;
    g_noinit_magic = NOINIT_MAGIC;
    /* A reset nobody announced (debugger, reset pin, QEMU system_reset) reads as a pin reset. */
    g_noinit_reason = CM_RESET_PIN;
    main();
    for (;;) {
    }
}

int cm_noinit_reset_reason(void) { return g_boot_reason; }

uint32_t cm_boot_count(void) { return g_noinit_boot_count; }

void cm_reset_with_reason(int reason)
{
    g_noinit_magic = NOINIT_MAGIC;
    g_noinit_reason = (uint32_t)reason;
    __asm volatile("dsb" ::: "memory");
    SCB_AIRCR = (0x05FAu << 16) | (1u << 2); /* VECTKEY | SYSRESETREQ */
    __asm volatile("dsb" ::: "memory");
    for (;;) {
    }
}

/* Weak so a program without a host to reboot into (the benchmark runner) can report the fault and stop instead. */
__attribute__((weak, used, noreturn)) void cm_fault_reset(void) { cm_reset_with_reason(CM_RESET_FAULT); }

/* A fault is reported on the next boot instead of hanging silently: the host sees BOOT with reason FAULT.
 * The stack may be what failed (MSPLIM overflow), so drop the limit and take a fresh stack before any push. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile(
#if OD_HAS_MSPLIM
        "movs r0, #0        \n"
        "msr msplim, r0     \n"
#endif
        "ldr r0, =_estack   \n"
        "mov sp, r0         \n"
        "b cm_fault_reset   \n"
        ".ltorg             \n");
}

/* Ports that use interrupts override this; the IRQ number comes from IPSR so one vector table fits all. */
__attribute__((weak)) void port_irq(uint32_t irq) { (void)irq; }

static void Irq_Handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    port_irq(ipsr - 16u);
}

void Default_Handler(void)
{
    for (;;) {
    }
}

void SysTick_Handler(void) { cm_systick_wraps++; }

void cm_systick_start(void)
{
    SYST_CSR = 0u;
    SYST_RVR = SYSTICK_MAX;
    SYST_CVR = 0u;
    cm_systick_wraps = 0u;
    SYST_CSR = 0x7u; /* ENABLE | TICKINT | CLKSOURCE = core clock */
}

uint64_t cm_systick_ticks(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    uint32_t wraps = cm_systick_wraps;
    uint32_t cur = SYST_CVR;
    /* The counter wrapped but the interrupt has not run yet: count that wrap here. */
    if (SCB_ICSR & ICSR_PENDSTSET) {
        cur = SYST_CVR;
        wraps++;
    }
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return (uint64_t)wraps * (SYSTICK_MAX + 1u) + (SYSTICK_MAX - cur);
}

typedef void (*od_vec_t)(void);
#ifndef OD_PORT_NUM_IRQS
#define OD_PORT_NUM_IRQS 32
#endif

__attribute__((section(".isr_vector"), used)) const od_vec_t g_od_vectors[16 + OD_PORT_NUM_IRQS] = {
    (od_vec_t)&_estack,
    Reset_Handler,
    Default_Handler,   /* NMI */
    HardFault_Handler, /* HardFault */
    HardFault_Handler, /* MemManage */
    HardFault_Handler, /* BusFault */
    HardFault_Handler, /* UsageFault */
    HardFault_Handler, /* SecureFault (v8-M) */
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    [16 ... 16 + OD_PORT_NUM_IRQS - 1] = Irq_Handler,
};
