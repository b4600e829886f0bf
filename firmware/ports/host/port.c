/* port.c for the host: bytes over stdin/stdout, CLOCK_MONOTONIC nanoseconds. The host has an OS-managed stack,
 * so it reports an empty painting region (stack high-water 0); peak RAM comes from the MCU ports. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "od_port.h"

#define OUT_BUF 4096
static unsigned char g_out[OUT_BUF];
static size_t g_out_n;

static void flush_out(void)
{
    size_t off = 0;
    while (off < g_out_n) {
        ssize_t w = write(1, g_out + off, g_out_n - off);
        if (w <= 0) exit(0); /* host side went away */
        off += (size_t)w;
    }
    g_out_n = 0;
}

void port_init(void) {}

void port_putc(uint8_t c)
{
    if (g_out_n == OUT_BUF) flush_out();
    g_out[g_out_n++] = c;
}

int port_getc(void)
{
    /* Flush before waiting so a reply is never stuck in our buffer while the host waits for it. */
    if (g_out_n) flush_out();
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) return -1;
    unsigned char c;
    ssize_t r = read(0, &c, 1);
    if (r <= 0) {
        flush_out();
        exit(0); /* EOF: the driver closed our stdin */
    }
    return c;
}

uint64_t port_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

od_reset_reason_t port_reset_reason(void) { return OD_RESET_POWER_ON; }

void port_reset(void)
{
    flush_out();
    exit(0);
}

void port_stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    *lo = 0;
    *hi = 0;
}

uint32_t port_boot_id(void) { return (uint32_t)getpid(); }

uint32_t port_static_ram_bytes(void) { return 0xFFFFFFFFu; }

uint32_t port_flash_used_bytes(void) { return 0xFFFFFFFFu; }

/* EEMBC energy mode: the host has no timestamp pin, so the pulse is a stderr line the tests can count. */
void port_timestamp_pulse(void) { fprintf(stderr, "od-timestamp-pulse %llu\n", (unsigned long long)port_time_now()); }
