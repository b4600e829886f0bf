/* od_hosttest.c: a line-oriented driver that exposes the C codec and frontend to pytest
 * (tests/test_firmware_host.py feeds it the shared protocol vectors and the frontend vectors).
 *
 *   crc HEX                      -> crc32 as decimal
 *   cobs_enc HEX / cobs_dec HEX  -> HEX (or "error")
 *   encode VER TYPE FLAGS SEQ HEX -> the wire bytes of one frame, HEX
 *   stream HEX                   -> "frame VER TYPE SEQ FLAGS HEX" per delivered frame, then "dropped N"
 *   pack KIND:VALUE ...          -> payload HEX written with od_w_* (kinds u8 u16 u32 u64 i32 f32x str8 hex)
 *   unpack HEX KIND ...          -> one value per kind read with od_r_* ("short" on a short read)
 *   fe HEX                       -> uint16 features (little-endian HEX) of int16 LE audio
 *   qm F32HEX                    -> "MULT SHIFT" for a float32 scale given by its bits (or "none")
 *   fq F32HEX ZP HEX             -> int8 HEX of uint16 LE features quantized for that scale/zero point
 * Every answer is one line (stream: several), then "." so the driver knows it is complete.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "od_crc32.h"
#include "od_frontend.h"
#include "od_proto.h"

#define MAX_BYTES (1u << 20)
static uint8_t g_in[MAX_BYTES], g_out[MAX_BYTES + MAX_BYTES / 254 + 16];

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void puthex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static size_t g_emit_n;
static void emit_put(uint8_t c) { g_out[g_emit_n++] = c; }

static void cmd_pack(char *args)
{
    static uint8_t buf[OD_MAX_PAYLOAD * 4];
    od_w_t w;
    od_w_init(&w, buf, sizeof buf);
    for (char *tok = strtok(args, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *v = strchr(tok, ':');
        if (!v) continue;
        *v++ = 0;
        if (!strcmp(tok, "u8")) od_w_u8(&w, (uint8_t)strtoul(v, NULL, 0));
        else if (!strcmp(tok, "u16")) od_w_u16(&w, (uint16_t)strtoul(v, NULL, 0));
        else if (!strcmp(tok, "u32")) od_w_u32(&w, (uint32_t)strtoul(v, NULL, 0));
        else if (!strcmp(tok, "i32")) od_w_u32(&w, (uint32_t)strtol(v, NULL, 0));
        else if (!strcmp(tok, "u64")) od_w_u64(&w, strtoull(v, NULL, 0));
        else if (!strcmp(tok, "f32x")) {
            uint32_t bits = (uint32_t)strtoul(v, NULL, 16);
            float f;
            memcpy(&f, &bits, 4);
            od_w_f32(&w, f);
        } else if (!strcmp(tok, "str8")) { /* value is hex so spaces and UTF-8 survive the command line */
            size_t n = unhex(v, g_in, 255);
            g_in[n] = 0;
            od_w_str8(&w, (const char *)g_in, 255);
        } else if (!strcmp(tok, "sha")) {
            od_w_sha256_hex(&w, v);
        } else if (!strcmp(tok, "hex")) {
            size_t n = unhex(v, g_in, sizeof buf);
            od_w_bytes(&w, g_in, n);
        }
    }
    if (w.overflow) printf("overflow");
    else puthex(buf, w.len);
    printf("\n");
}

static void cmd_unpack(char *args)
{
    char *hex = strtok(args, " \n");
    size_t n = hex ? unhex(hex, g_in, MAX_BYTES) : 0;
    od_r_t r;
    od_r_init(&r, g_in, (uint16_t)n);
    for (char *k = strtok(NULL, " \n"); k; k = strtok(NULL, " \n")) {
        if (!strcmp(k, "u8")) printf("%u ", od_r_u8(&r));
        else if (!strcmp(k, "u16")) printf("%u ", od_r_u16(&r));
        else if (!strcmp(k, "u32")) printf("%lu ", (unsigned long)od_r_u32(&r));
        else if (!strcmp(k, "i32")) printf("%ld ", (long)(int32_t)od_r_u32(&r));
        else if (!strcmp(k, "u64")) {
            uint64_t lo = od_r_u32(&r), hi = od_r_u32(&r);
            printf("%llu ", (unsigned long long)(lo | hi << 32));
        } else if (!strcmp(k, "f32x")) printf("%08lx ", (unsigned long)od_r_u32(&r));
        else if (!strcmp(k, "sha")) {
            for (int i = 0; i < 32; i++) printf("%02x", od_r_u8(&r));
            printf(" ");
        } else if (!strcmp(k, "str8")) {
            uint8_t len;
            const uint8_t *p = od_r_str8(&r, &len);
            printf("s");
            if (p) puthex(p, len);
            printf(" ");
        } else if (!strcmp(k, "rest")) {
            uint16_t len;
            const uint8_t *p = od_r_rest(&r, &len);
            printf("h");
            puthex(p, len);
            printf(" ");
        }
    }
    printf(r.short_read ? "short\n" : "ok\n");
}

int main(void)
{
    static char line[4 * MAX_BYTES];
    while (fgets(line, sizeof line, stdin)) {
        char *sp = strchr(line, ' ');
        char *arg = sp ? sp + 1 : line + strlen(line);
        if (sp) *sp = 0;
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "crc")) {
            size_t n = unhex(arg, g_in, MAX_BYTES);
            printf("%lu\n", (unsigned long)od_crc32_update(0, g_in, n));
        } else if (!strcmp(line, "cobs_enc")) {
            size_t n = unhex(arg, g_in, MAX_BYTES);
            size_t m = od_cobs_encode(g_in, n, g_out, sizeof g_out);
            puthex(g_out, m);
            printf("\n");
        } else if (!strcmp(line, "cobs_dec")) {
            size_t n = unhex(arg, g_in, MAX_BYTES);
            long m = od_cobs_decode_inplace(g_in, n);
            if (m < 0) printf("error");
            else puthex(g_in, (size_t)m);
            printf("\n");
        } else if (!strcmp(line, "encode")) {
            unsigned ver, type, flags, seq;
            char hex[4096] = "";
            if (sscanf(arg, "%u %u %u %u %4095s", &ver, &type, &flags, &seq, hex) < 4) hex[0] = 0;
            static uint8_t body[OD_MAX_FRAME];
            size_t plen = unhex(hex, body + OD_HEADER_SIZE, OD_MAX_PAYLOAD);
            size_t n = od_frame_finish_version(body, (uint8_t)ver, (uint8_t)type, (uint8_t)flags, (uint16_t)seq,
                                               (uint16_t)plen);
            g_emit_n = 0;
            od_frame_emit(body, n, emit_put);
            puthex(g_out, g_emit_n);
            printf("\n");
        } else if (!strcmp(line, "stream")) {
            static od_rx_t rx;
            od_rx_init(&rx);
            size_t n = unhex(arg, g_in, MAX_BYTES);
            for (size_t i = 0; i < n; i++) {
                od_frame_t f;
                if (od_rx_feed(&rx, g_in[i], &f)) {
                    printf("frame %u %u %u %u ", f.version, f.type, f.seq, f.flags);
                    puthex(f.payload, f.len);
                    printf("\n");
                }
            }
            printf("dropped %lu\n", (unsigned long)od_rx_dropped(&rx));
        } else if (!strcmp(line, "pack")) {
            cmd_pack(arg);
        } else if (!strcmp(line, "unpack")) {
            cmd_unpack(arg);
        } else if (!strcmp(line, "fe")) {
            size_t n = unhex(arg, g_in, MAX_BYTES) / 2u;
            static int16_t wav[MAX_BYTES / 2];
            static uint16_t feats[MAX_BYTES / 2];
            memcpy(wav, g_in, n * 2u);
            uint32_t frames = od_frontend_compute(wav, (uint32_t)n, feats);
            puthex((const uint8_t *)feats, (size_t)frames * OD_FE_CHANNELS * 2u);
            printf("\n");
        } else if (!strcmp(line, "qm")) {
            uint32_t bits = (uint32_t)strtoul(arg, NULL, 16);
            float f;
            int32_t m, s;
            memcpy(&f, &bits, 4);
            if (od_frontend_quant_multiplier(f, &m, &s)) printf("%ld %ld\n", (long)m, (long)s);
            else printf("none\n");
        } else if (!strcmp(line, "fq")) {
            char sx[16], hex[1 << 16];
            long zp;
            if (sscanf(arg, "%15s %ld %65535s", sx, &zp, hex) != 3) {
                printf("error\n");
            } else {
                uint32_t bits = (uint32_t)strtoul(sx, NULL, 16);
                float f;
                int32_t m, s;
                memcpy(&f, &bits, 4);
                size_t n = unhex(hex, g_in, MAX_BYTES) / 2u;
                static uint16_t feats[MAX_BYTES / 2];
                static int8_t q[MAX_BYTES / 2];
                memcpy(feats, g_in, n * 2u);
                if (!od_frontend_quant_multiplier(f, &m, &s)) {
                    printf("none\n");
                } else {
                    od_frontend_quantize(feats, (uint32_t)n, m, s, (int32_t)zp, q);
                    puthex((const uint8_t *)q, n);
                    printf("\n");
                }
            }
        } else if (line[0]) {
            printf("unknown command %s\n", line);
        }
        printf(".\n");
        fflush(stdout);
    }
    return 0;
}
