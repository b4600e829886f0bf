/* bench_main.c: run a generated model on bare metal under QEMU and report, over UART:
 *   - the output bytes of each compiled-in input vector (checked against TFLM on the host),
 *   - instructions per inference and per op (SysTick under -icount shift=0, calibrated below),
 *   - stack high-water of od_model_invoke (stack painting).
 * QEMU does not emulate DWT CYCCNT; under -icount shift=0 SysTick advances with executed instructions. */
#include <stdint.h>
#include <string.h>

#include "od_model_api.h"
#include "port_config.h" /* the board's port folder is on -I (ondevice.mcu.qemu_bench) */
#include "cmsdk_uart.h"
#include "cortexm.h"

#define OD_BENCH_MAX_OPS 512
#define STACK_PAINT 0xA5A5A5A5u

extern const uint32_t od_bench_n_vectors;
extern const int8_t *const od_bench_vectors[]; /* [vector * n_inputs + input] */

static void uart_putc(char c) { cmsdk_uart_putc(OD_PORT_UART_BASE, (uint8_t)c); }
static void uart_puts(const char *s) {
    while (*s) uart_putc(*s++);
}
static void uart_u64(uint64_t v) {
    char buf[24];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) uart_putc(buf[--n]);
}
static void uart_hex8(uint8_t v) {
    static const char hex[] = "0123456789abcdef";
    uart_putc(hex[v >> 4]);
    uart_putc(hex[v & 15]);
}

/* 24-bit down counter plus wraps counted in the startup's SysTick interrupt. Lock-free (no cpsid, unlike
 * cm_systick_ticks): every per-op figure includes this read, so its cost stays what the recorded figures used. */
static uint64_t ticks_now(void) {
    uint32_t w1, w2, cv;
    do {
        w1 = cm_systick_wraps;
        cv = SYST_CVR;
        w2 = cm_systick_wraps;
    } while (w1 != w2);
    return (uint64_t)w1 * 0x1000000u + (0xFFFFFFu - cv);
}

/* Exactly 2 instructions per iteration (subs + bne): calibrates ticks to instructions. */
static uint64_t __attribute__((noinline)) timed_loop(uint32_t n) {
    const uint64_t t0 = ticks_now();
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b\n" : "+r"(n) : : "cc");
    return ticks_now() - t0;
}

static uint64_t op_ticks[OD_BENCH_MAX_OPS];
static uint64_t op_t0;
static void op_hook(uint32_t k, int is_end) {
    const uint64_t t = ticks_now();
    if (k >= OD_BENCH_MAX_OPS) return;
    if (!is_end) op_t0 = t;
    else op_ticks[k] += t - op_t0;
}

static void __attribute__((noinline)) paint_stack(void) {
    uint32_t *p = &_sstack;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    while (p < sp - 32) *p++ = STACK_PAINT;
}
static uint32_t stack_high_water(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) ++p;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

static void semihost_exit(void) {
    /* SYS_EXIT with ADP_Stopped_ApplicationExit: QEMU -semihosting quits with status 0. */
    register uint32_t r0 __asm__("r0") = 0x18;
    register uint32_t r1 __asm__("r1") = 0x20026;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}

/* Overrides the startup's reset-on-fault: nothing would reboot into the runner, so say so and stop QEMU. The host
 * finds no "OD_BENCH end" and reports the run as ended early. */
void cm_fault_reset(void) {
    uart_puts("OD_BENCH fault\n");
    semihost_exit();
    for (;;) {
    }
}

int main(void) {
    cmsdk_uart_init(OD_PORT_UART_BASE, OD_PORT_CLOCK_HZ, 115200u);
    cm_systick_start();
    const od_model_info_t *info = od_model_info();
    uart_puts("OD_BENCH begin model=");
    uart_puts(info->name);
    uart_puts("\n");
    const uint32_t cal_n = 1000000u;
    uart_puts("OD_BENCH calib_instructions=");
    uart_u64(2ull * cal_n);
    uart_puts(" calib_ticks=");
    uart_u64(timed_loop(cal_n));
    uart_puts("\n");
    for (uint32_t v = 0; v < od_bench_n_vectors; ++v) {
        for (uint32_t i = 0; i < info->n_inputs; ++i)
            memcpy(od_model_input((int)i), od_bench_vectors[v * info->n_inputs + i], info->inputs[i].bytes);
        od_model_set_op_hook(v == 0 ? op_hook : 0);
        paint_stack();
        const uint64_t t0 = ticks_now();
        const od_status_t st = od_model_invoke();
        const uint64_t t = ticks_now() - t0;
        const uint32_t stack = stack_high_water();
        uart_puts("OD_BENCH vector=");
        uart_u64(v);
        uart_puts(" status=");
        uart_u64((uint64_t)st);
        uart_puts(" ticks=");
        uart_u64(t);
        uart_puts(" stack=");
        uart_u64(stack);
        uart_puts(" out=");
        for (uint32_t o = 0; o < info->n_outputs; ++o) {
            const int8_t *y = od_model_output((int)o);
            for (uint32_t i = 0; i < info->outputs[o].bytes; ++i) uart_hex8((uint8_t)y[i]);
            if (o + 1 < info->n_outputs) uart_putc(',');
        }
        uart_puts("\n");
    }
    for (uint32_t k = 0; k < info->n_ops && k < OD_BENCH_MAX_OPS; ++k) {
        uart_puts("OD_BENCH op=");
        uart_u64(k);
        uart_puts(" name=");
        uart_puts(od_model_op_name(k));
        uart_puts(" ticks=");
        uart_u64(op_ticks[k]);
        uart_puts("\n");
    }
    uart_puts("OD_BENCH end\n");
    semihost_exit();
    return 0;
}
