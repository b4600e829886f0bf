/* od_proto.h: the device protocol's wire format (profiling/PROTOCOL.md): constants, COBS, frame encode/decode,
 * and little-endian payload readers/writers. No I/O and no malloc: the agent and the host tests share it. */
#ifndef OD_PROTO_H
#define OD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define OD_PROTO_VERSION 1u
#define OD_HEADER_SIZE 7u
#define OD_CRC_SIZE 4u
#define OD_MAX_PAYLOAD 512u
#define OD_MIN_PAYLOAD 64u
#define OD_MAX_FRAME (OD_HEADER_SIZE + OD_MAX_PAYLOAD + OD_CRC_SIZE)     /* 523 */
#define OD_MAX_ENCODED (OD_MAX_FRAME + (OD_MAX_FRAME + 253u) / 254u + 1u) /* 527 */
#define OD_FLAG_MORE 0x01u
#define OD_REPLY_BIT 0x80u
#define OD_UNKNOWN_U32 0xFFFFFFFFu
#define OD_AUDIO_INDEX 0xFFu
#define OD_UNIT_DEFAULT 0xFFu

enum {
    OD_MSG_HELLO = 0x01,
    OD_MSG_PING = 0x02,
    OD_MSG_RESET = 0x03,
    OD_MSG_LOAD_MODEL_BEGIN = 0x10,
    OD_MSG_LOAD_MODEL_CHUNK = 0x11,
    OD_MSG_LOAD_MODEL_END = 0x12,
    OD_MSG_SELECT_BUILTIN_MODEL = 0x13,
    OD_MSG_MODEL_INFO = 0x14,
    OD_MSG_SET_MODE = 0x20,
    OD_MSG_SET_INPUT = 0x21,
    OD_MSG_RUN = 0x22,
    OD_MSG_GET_TIMINGS = 0x23,
    OD_MSG_GET_OUTPUT = 0x24,
    OD_MSG_GET_MEMORY = 0x25,
    OD_MSG_GET_OP_TIMINGS = 0x26,
    OD_MSG_BOOT = 0x70,
    OD_MSG_LOG = 0x71,
    OD_MSG_ERROR = 0x7F,
};

enum {
    OD_CAP_LOAD_MODEL = 1u << 0,
    OD_CAP_BUILTIN_MODELS = 1u << 1,
    OD_CAP_OP_TIMINGS = 1u << 2,
    OD_CAP_FRONTEND = 1u << 3,
    OD_CAP_MEMORY_STATS = 1u << 4,
    OD_CAP_RESET = 1u << 5,
    OD_CAP_GET_OUTPUT = 1u << 6,
    OD_CAP_LOG = 1u << 7,
};

enum { OD_MODE_MODEL = 0, OD_MODE_FRONTEND_MODEL = 1, OD_MODE_FRONTEND = 2 };

enum {
    OD_E_BAD_CRC = 1,
    OD_E_BAD_SEQ = 2,
    OD_E_UNKNOWN_TYPE = 3,
    OD_E_TOO_LARGE = 4,
    OD_E_NO_MODEL = 5,
    OD_E_SHA_MISMATCH = 6,
    OD_E_BUSY = 7,
    OD_E_OUT_OF_MEMORY = 8,
    OD_E_INVALID_INPUT_SIZE = 9,
    OD_E_BAD_OFFSET = 10,
    OD_E_UNSUPPORTED = 11,
    OD_E_BAD_PAYLOAD = 12,
    OD_E_UNSUPPORTED_VERSION = 13,
    OD_E_BAD_INDEX = 14,
    OD_E_INVOKE_FAILED = 15,
    OD_E_MODEL_INVALID = 16,
    OD_E_INTERNAL = 255,
};

/* Wire dtype codes (MODEL_INFO). */
enum {
    OD_WIRE_FLOAT32 = 0,
    OD_WIRE_INT8 = 1,
    OD_WIRE_UINT8 = 2,
    OD_WIRE_INT16 = 3,
    OD_WIRE_INT32 = 4,
    OD_WIRE_UINT16 = 5,
};

/* ---- COBS (canonical encoder; the decoder accepts both forms) ---- */

/* Encode n bytes into out (capacity cap, no delimiter). Returns the encoded length, or 0 if cap is too small. */
size_t od_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);
/* Decode in place (the output is never longer than the input). Returns the decoded length, or -1 if malformed. */
long od_cobs_decode_inplace(uint8_t *buf, size_t n);

/* ---- frames ---- */

typedef struct {
    uint8_t version, type, flags;
    uint16_t seq;
    uint16_t len;
    const uint8_t *payload;
} od_frame_t;

/* Stream receiver: feed bytes; a completed, valid frame is returned through *out. */
typedef struct {
    uint8_t buf[OD_MAX_ENCODED];
    uint16_t n;
    uint8_t overflow;
    uint32_t dropped_cobs, dropped_short, dropped_long, dropped_crc, dropped_length, dropped_overflow;
    uint32_t frames;
} od_rx_t;

void od_rx_init(od_rx_t *rx);
/* Returns 1 when byte completes a valid frame (then *out points into rx->buf until the next feed), else 0. */
int od_rx_feed(od_rx_t *rx, uint8_t byte, od_frame_t *out);
uint32_t od_rx_dropped(const od_rx_t *rx);

/* Build header + payload + CRC in body (the payload is already at body + OD_HEADER_SIZE). Returns the body size. */
size_t od_frame_finish(uint8_t *body, uint8_t type, uint8_t flags, uint16_t seq, uint16_t payload_len);
/* The same with an explicit header version (tests of version negotiation; the agent always sends 1). */
size_t od_frame_finish_version(uint8_t *body, uint8_t version, uint8_t type, uint8_t flags, uint16_t seq,
                               uint16_t payload_len);
/* COBS-encode body to a byte sink, followed by the 0x00 delimiter; streams so no second buffer is needed. */
void od_frame_emit(const uint8_t *body, size_t n, void (*put)(uint8_t));

/* ---- payload writer / reader ---- */

typedef struct {
    uint8_t *p;
    uint16_t cap, len;
    uint8_t overflow;
} od_w_t;

void od_w_init(od_w_t *w, uint8_t *p, uint16_t cap);
void od_w_u8(od_w_t *w, uint8_t v);
void od_w_u16(od_w_t *w, uint16_t v);
void od_w_u32(od_w_t *w, uint32_t v);
void od_w_u64(od_w_t *w, uint64_t v);
void od_w_f32(od_w_t *w, float v);
void od_w_bytes(od_w_t *w, const void *p, size_t n);
/* str8, truncated to max_len bytes (and to 255) without splitting a UTF-8 sequence. */
void od_w_str8(od_w_t *w, const char *s, size_t max_len);
/* 32 raw bytes from a 64-digit hex string; zeros when s is NULL or malformed. */
void od_w_sha256_hex(od_w_t *w, const char *s);

typedef struct {
    const uint8_t *p;
    uint16_t len, pos;
    uint8_t short_read;
} od_r_t;

void od_r_init(od_r_t *r, const uint8_t *p, uint16_t len);
uint8_t od_r_u8(od_r_t *r);
uint16_t od_r_u16(od_r_t *r);
uint32_t od_r_u32(od_r_t *r);
/* str8: returns a pointer into the payload (not terminated) and its length via *n. */
const uint8_t *od_r_str8(od_r_t *r, uint8_t *n);
/* The rest of the payload. */
const uint8_t *od_r_rest(od_r_t *r, uint16_t *n);

#endif /* OD_PROTO_H */
