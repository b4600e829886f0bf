/* od_stack.c: stack painting over the region the port reports (port_stack_bounds). */
#include "od_stack.h"

#include "od_port.h"

/* Keep clear of the live frame: this function's own locals sit just below the caller's SP. */
#define OD_STACK_GUARD_BYTES 128u

__attribute__((noinline)) void od_stack_repaint(void)
{
    uintptr_t lo, hi;
    volatile uint8_t here;
    port_stack_bounds(&lo, &hi);
    if (lo == hi) return;
    uintptr_t limit = ((uintptr_t)&here - OD_STACK_GUARD_BYTES) & ~(uintptr_t)3u;
    for (volatile uint32_t *p = (volatile uint32_t *)lo; (uintptr_t)p < limit; p++) *p = OD_STACK_PAINT;
}

uint32_t od_stack_high_water(void)
{
    uintptr_t lo, hi;
    port_stack_bounds(&lo, &hi);
    const volatile uint32_t *p = (const volatile uint32_t *)lo;
    while ((uintptr_t)p < hi && *p == OD_STACK_PAINT) p++;
    return (uint32_t)(hi - (uintptr_t)p);
}

uint32_t od_stack_size(void)
{
    uintptr_t lo, hi;
    port_stack_bounds(&lo, &hi);
    return (uint32_t)(hi - lo);
}
