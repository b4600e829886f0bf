/* port_config.h for mps3-an547: Arm MPS3 FPGA image AN547 (Cortex-M55) as emulated by QEMU, Secure state, SAU off. */
#ifndef OD_PORT_CONFIG_H
#define OD_PORT_CONFIG_H

#define OD_PORT_BOARD "qemu-mps3-an547"
#define OD_PORT_CPU "cortex-m55"
#define OD_PORT_CLOCK_HZ 32000000u
#define OD_PORT_RAM_BYTES (2u * 1024u * 1024u)
#define OD_PORT_FLASH_BYTES (512u * 1024u)
/* QEMU -icount shift=0 runs 1 instruction per ns of virtual time; SysTick ticks at the core clock. */
#define OD_PORT_TIMER_UNIT OD_TIMER_UNIT_INSTRUCTIONS
/* QEMU holds RX bytes in its socket while the guest is busy, so chunks can be pipelined (2x faster uploads). */
#define OD_PORT_RX_WINDOW 8
/* 1e8 instructions (0.1 virtual s) between RUN frames: a few wall seconds even on a loaded host. */
#define OD_PORT_PROGRESS_INTERVAL 100000000ull
#define OD_PORT_INSTR_PER_TICK_NUM 125u
#define OD_PORT_INSTR_PER_TICK_DEN 4u
#define OD_PORT_UART_BASE 0x49303000u

#endif /* OD_PORT_CONFIG_H */
