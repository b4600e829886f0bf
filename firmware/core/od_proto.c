/* od_proto.c: COBS, frame checks and payload codecs for PROTOCOL.md. Pure functions plus a byte-at-a-time
 * receiver, so the same code runs on the MCU, in the host tests and under libFuzzer. */
#include "od_proto.h"

#include <string.h>

#include "od_crc32.h"

size_t od_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0, code_at = 0;
    uint8_t code = 1;
    if (cap == 0) return 0;
    o = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            if (o >= cap) return 0;
            code_at = o++;
            code = 1;
            continue;
        }
        if (o >= cap) return 0;
        out[o++] = in[i];
        if (++code == 0xFF) {
            out[code_at] = code;
            if (i == n - 1) return o; /* ended exactly on a full block: canonical form writes nothing more */
            if (o >= cap) return 0;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

long od_cobs_decode_inplace(uint8_t *buf, size_t n)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = buf[i];
        if (code == 0) return -1;
        size_t end = i + code;
        if (end > n) return -1;
        for (size_t k = i + 1; k < end; k++) {
            if (buf[k] == 0) return -1;
            buf[o++] = buf[k];
        }
        i = end;
        if (code < 0xFF && i < n) buf[o++] = 0;
    }
    return (long)o;
}

void od_rx_init(od_rx_t *rx) { memset(rx, 0, sizeof(*rx)); }

uint32_t od_rx_dropped(const od_rx_t *rx)
{
    return rx->dropped_cobs + rx->dropped_short + rx->dropped_long + rx->dropped_crc + rx->dropped_length +
           rx->dropped_overflow;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int od_rx_feed(od_rx_t *rx, uint8_t byte, od_frame_t *out)
{
    if (byte != 0) {
        if (rx->overflow) return 0;
        if (rx->n >= OD_MAX_ENCODED) { /* too long without a delimiter: skip to the next 0x00 */
            rx->overflow = 1;
            rx->n = 0;
            return 0;
        }
        rx->buf[rx->n++] = byte;
        return 0;
    }
    if (rx->overflow) {
        rx->overflow = 0;
        rx->dropped_overflow++;
        return 0;
    }
    size_t n = rx->n;
    rx->n = 0;
    if (n == 0) return 0; /* empty frame: a leading or repeated delimiter */
    long d = od_cobs_decode_inplace(rx->buf, n);
    if (d < 0) {
        rx->dropped_cobs++;
        return 0;
    }
    if ((size_t)d < OD_HEADER_SIZE + OD_CRC_SIZE) {
        rx->dropped_short++;
        return 0;
    }
    if ((size_t)d > OD_MAX_FRAME) {
        rx->dropped_long++;
        return 0;
    }
    size_t body = (size_t)d - OD_CRC_SIZE;
    if (od_crc32_update(0, rx->buf, body) != rd32(rx->buf + body)) {
        rx->dropped_crc++;
        return 0;
    }
    uint16_t plen = rd16(rx->buf + 5);
    if (plen != body - OD_HEADER_SIZE) {
        rx->dropped_length++;
        return 0;
    }
    out->version = rx->buf[0];
    out->type = rx->buf[1];
    out->flags = rx->buf[2];
    out->seq = rd16(rx->buf + 3);
    out->len = plen;
    out->payload = rx->buf + OD_HEADER_SIZE;
    rx->frames++;
    return 1;
}

size_t od_frame_finish(uint8_t *body, uint8_t type, uint8_t flags, uint16_t seq, uint16_t payload_len)
{
    return od_frame_finish_version(body, OD_PROTO_VERSION, type, flags, seq, payload_len);
}

size_t od_frame_finish_version(uint8_t *body, uint8_t version, uint8_t type, uint8_t flags, uint16_t seq,
                               uint16_t payload_len)
{
    body[0] = version;
    body[1] = type;
    body[2] = flags;
    body[3] = (uint8_t)seq;
    body[4] = (uint8_t)(seq >> 8);
    body[5] = (uint8_t)payload_len;
    body[6] = (uint8_t)(payload_len >> 8);
    size_t n = OD_HEADER_SIZE + payload_len;
    uint32_t crc = od_crc32_update(0, body, n);
    body[n] = (uint8_t)crc;
    body[n + 1] = (uint8_t)(crc >> 8);
    body[n + 2] = (uint8_t)(crc >> 16);
    body[n + 3] = (uint8_t)(crc >> 24);
    return n + OD_CRC_SIZE;
}

void od_frame_emit(const uint8_t *body, size_t n, void (*put)(uint8_t))
{
    size_t i = 0;
    for (;;) {
        /* One block: up to 254 non-zero bytes, ended by a zero (implied) or by the 254-byte limit. */
        size_t run = 0;
        while (i + run < n && run < 254u && body[i + run] != 0) run++;
        int full = (run == 254u);
        put(full ? 0xFF : (uint8_t)(run + 1u));
        for (size_t k = 0; k < run; k++) put(body[i + k]);
        i += run;
        if (full) {
            if (i == n) break; /* canonical: nothing after a final full block */
            continue;          /* no implied zero after a full block */
        }
        if (i == n) break;
        i++; /* skip the zero this block's code stands for */
    }
    put(0x00);
}

void od_w_init(od_w_t *w, uint8_t *p, uint16_t cap)
{
    w->p = p;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

void od_w_bytes(od_w_t *w, const void *p, size_t n)
{
    if (w->overflow || n > (size_t)(w->cap - w->len)) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, p, n);
    w->len = (uint16_t)(w->len + n);
}

void od_w_u8(od_w_t *w, uint8_t v) { od_w_bytes(w, &v, 1); }
void od_w_u16(od_w_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    od_w_bytes(w, b, 2);
}
void od_w_u32(od_w_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    od_w_bytes(w, b, 4);
}
void od_w_u64(od_w_t *w, uint64_t v)
{
    od_w_u32(w, (uint32_t)v);
    od_w_u32(w, (uint32_t)(v >> 32));
}
void od_w_f32(od_w_t *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    od_w_u32(w, u);
}

void od_w_str8(od_w_t *w, const char *s, size_t max_len)
{
    size_t n = s ? strlen(s) : 0;
    if (max_len > 255u) max_len = 255u;
    if (n > max_len) {
        n = max_len;
        while (n > 0 && ((uint8_t)s[n] & 0xC0u) == 0x80u) n--; /* do not cut a UTF-8 sequence in half */
    }
    od_w_u8(w, (uint8_t)n);
    od_w_bytes(w, s, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void od_w_sha256_hex(od_w_t *w, const char *s)
{
    uint8_t b[32] = {0};
    int ok = s != NULL;
    for (int i = 0; ok && i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) ok = 0;
        else b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok) memset(b, 0, sizeof b);
    od_w_bytes(w, b, 32);
}

void od_r_init(od_r_t *r, const uint8_t *p, uint16_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->short_read = 0;
}

static const uint8_t *take(od_r_t *r, uint16_t n)
{
    if (r->short_read || n > r->len - r->pos) {
        r->short_read = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos = (uint16_t)(r->pos + n);
    return p;
}

uint8_t od_r_u8(od_r_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}
uint16_t od_r_u16(od_r_t *r)
{
    const uint8_t *p = take(r, 2);
    return p ? rd16(p) : 0;
}
uint32_t od_r_u32(od_r_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? rd32(p) : 0;
}
const uint8_t *od_r_str8(od_r_t *r, uint8_t *n)
{
    *n = od_r_u8(r);
    const uint8_t *p = take(r, *n);
    if (!p) *n = 0;
    return p;
}
const uint8_t *od_r_rest(od_r_t *r, uint16_t *n)
{
    *n = r->short_read ? 0 : (uint16_t)(r->len - r->pos);
    const uint8_t *p = r->p + r->pos;
    r->pos = r->len;
    return p;
}
