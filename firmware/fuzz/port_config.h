/* port_config.h for the libFuzzer build: no hardware, small limits so every input runs in microseconds. */
#ifndef OD_PORT_CONFIG_H
#define OD_PORT_CONFIG_H

#define OD_PORT_BOARD "fuzz"
#define OD_PORT_CPU "host"
#define OD_PORT_CLOCK_HZ 1000000u
#define OD_PORT_RAM_BYTES 65536u
#define OD_PORT_FLASH_BYTES 65536u
#define OD_PORT_TIMER_UNIT OD_TIMER_UNIT_US
#define OD_PORT_TIME_PER_SECOND 1000000ull

#define OD_MAX_RUNS 2u
#define OD_MAX_WARMUP 1u
#define OD_AUDIO_MAX_SAMPLES 1280u /* three frontend frames: the parser, not the FFT, is under test */

#endif /* OD_PORT_CONFIG_H */
