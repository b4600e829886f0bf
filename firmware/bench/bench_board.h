/* bench_board.h: the QEMU board the runner is built for (-DBOARD_AN386 / -DBOARD_AN547 from ondevice.mcu.qemu_bench)
 * as its port describes it (UART base, clock, IRQ count). Relative paths: the bench build has no port on its -I. */
#ifndef OD_BENCH_BOARD_H
#define OD_BENCH_BOARD_H

#if defined(BOARD_AN386)
#include "../ports/qemu-mps2-an386/port_config.h"
#elif defined(BOARD_AN547)
#include "../ports/qemu-mps3-an547/port_config.h"
#else
#error "define BOARD_AN386 or BOARD_AN547"
#endif

#endif /* OD_BENCH_BOARD_H */
