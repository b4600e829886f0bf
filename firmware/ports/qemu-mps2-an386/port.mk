# Compiler flags for this port (read by firmware/Makefile).
PORT_ARCH := cortexm
PORT_CFLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
# No port.c: the MPS boards share one port, parameterised by this folder's port_config.h.
PORT_SRCS := $(FW)/ports/common/qemu_mps.c
