/* startup.c: the benchmark runner links the same Cortex-M startup as the agent firmware (vector table, reset
 * handler, SysTick wraps); ondevice.mcu.qemu_bench compiles this file, which pulls in the one implementation. */
#include "bench_board.h"
#include "../ports/common/cortexm_startup.c"
