/* cortexm.c: the od_port.h hooks every Cortex-M port answers the same way (stack bounds, boot id, static RAM and
 * flash use from the linker symbols). The startup they rely on is cortexm_startup.c. */
#include <stdint.h>

#include "cortexm.h"
#include "od_port.h"

_Static_assert(CM_RESET_POWER_ON == OD_RESET_POWER_ON && CM_RESET_FAULT == OD_RESET_FAULT &&
                   CM_RESET_PIN == OD_RESET_PIN && CM_RESET_UNKNOWN == OD_RESET_UNKNOWN,
               "cortexm.h reset reasons must match od_reset_reason_t");

uint32_t port_boot_id(void) { return cm_boot_count(); }

extern uint32_t _flash_start, _flash_end;

uint32_t port_static_ram_bytes(void)
{
    return (uint32_t)((uintptr_t)&_edata - (uintptr_t)&_sdata) + (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss);
}

uint32_t port_flash_used_bytes(void) { return (uint32_t)((uintptr_t)&_flash_end - (uintptr_t)&_flash_start); }

void port_stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    *lo = (uintptr_t)&_sstack;
    *hi = (uintptr_t)&_estack;
}
