# Compiler flags for this port (read by firmware/Makefile).
PORT_ARCH := cortexm
PORT_CFLAGS := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard
