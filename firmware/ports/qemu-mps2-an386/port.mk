# Compiler flags for this port (read by firmware/Makefile).
PORT_ARCH := cortexm
PORT_CFLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
