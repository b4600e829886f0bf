# The host build: the same core on the machine's own compiler (tests, fuzzing, mcu-host runtime).
PORT_ARCH := host
PORT_CFLAGS :=
