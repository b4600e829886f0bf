/* od_stack.h: stack painting. Paint the free stack, run something, scan for the lowest overwritten word. */
#ifndef OD_STACK_H
#define OD_STACK_H

#include <stdint.h>

#define OD_STACK_PAINT 0xDEADBEEFu

/* Repaint the stack from its low bound up to just below the caller's frame. */
void od_stack_repaint(void);
/* Bytes of stack used since the last repaint (or boot): top of stack minus lowest overwritten word. */
uint32_t od_stack_high_water(void);
/* Total bytes reserved for the stack by the port. */
uint32_t od_stack_size(void);

#endif /* OD_STACK_H */
