/* fuzz_proto.c: libFuzzer harness for the firmware's frame receiver and protocol agent (host build).
 *
 * Input byte 0 picks the mode:
 *   even: the rest is a raw byte stream fed to the agent, as a UART would deliver it (COBS, CRC, resync);
 *   odd:  the rest is split at 0xA5 bytes into messages "type, payload...", each wrapped in a valid frame
 *         (correct COBS and CRC), so the fuzzer reaches every request handler instead of stopping at the CRC.
 * AddressSanitizer and UBSan turn any out-of-bounds access, overflow or bad shift into a crash.
 */
#include <stddef.h>
#include <stdint.h>

#include "od_agent.h"
#include "od_proto.h"

extern int od_fuzz_reset_requested;

static void feed(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        od_agent_feed(p[i]);
        if (od_fuzz_reset_requested) {
            od_fuzz_reset_requested = 0;
            od_agent_init();
        }
    }
}

static uint8_t g_body[OD_MAX_FRAME];
static uint8_t g_wire[OD_MAX_ENCODED + 8];
static size_t g_wire_n;
static void wire_put(uint8_t c) { g_wire[g_wire_n++] = c; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    od_agent_init();
    if (size == 0) return 0;
    if (!(data[0] & 1u)) {
        feed(data + 1, size - 1);
        return 0;
    }
    uint16_t seq = 0;
    size_t i = 1;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != 0xA5u) j++;
        size_t n = j - i;
        if (n > 0) {
            size_t plen = n - 1 > OD_MAX_PAYLOAD ? OD_MAX_PAYLOAD : n - 1;
            for (size_t k = 0; k < plen; k++) g_body[OD_HEADER_SIZE + k] = data[i + 1 + k];
            /* Repeat the previous seq now and then, to reach the retry (dedup) paths. */
            if (!(data[i] & 0x40u)) seq++;
            size_t len = od_frame_finish(g_body, data[i], 0, seq, (uint16_t)plen);
            g_wire_n = 0;
            od_frame_emit(g_body, len, wire_put);
            feed(g_wire, g_wire_n);
        }
        i = j + 1;
    }
    return 0;
}
