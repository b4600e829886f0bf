/* port_config.h for the host build: the agent on stdin/stdout, used by tests, fuzzing and the mcu-host runtime. */
#ifndef OD_PORT_CONFIG_H
#define OD_PORT_CONFIG_H

#define OD_PORT_BOARD "host"
#define OD_PORT_CPU "host"
#define OD_PORT_CLOCK_HZ 1000000000u
#define OD_PORT_RAM_BYTES (64u * 1024u * 1024u)
#define OD_PORT_FLASH_BYTES (64u * 1024u * 1024u)
#define OD_PORT_TIMER_UNIT OD_TIMER_UNIT_NS

#endif /* OD_PORT_CONFIG_H */
