/* od_conv_block4_s8.c: the im2col CONV_2D up to 64 depths (od_im2col_block4) as four pixels x one channel blocks.
 * Four fields are widened to int16 into the scratch (od_im2col_common.h layout, R = 4), then each output channel
 * is a dot product of its weights (the code generator's channel-pair order) against all four: per group of four
 * depths one LDR of [w0 w2 w1 w3], two SXTB16, two LDM of the four rows' words, eight SMLADs (13 instructions per
 * 16 MACs), so the per-channel bias, multiplier and shift serve four outputs.
 * With od_requant_fast, a bias and D % 4 == 0 the channel pairs run in Thumb-2 assembly (DSP cores): an
 * eight-group unrolled loop entered part-way for G % 8, the four outputs requantized (SMMULR, one SSAT each) and
 * the pair's eight packed into two words, clamped lane-wise (SSUB8/SEL; without an activation to all of
 * int8, a no-op) and stored as one halfword per pixel. Registers: r0-r3 accumulators, r4/r5 weights, r6 field
 * pointer, r7 weight pointer, r8-r11 field words (LDM), r12 loop count, lr the state (od_block4_ctx_t); every
 * other value is one load from it. Other cases (and the odd last channel) take the C block (dot4x1_q15 +
 * store4): the same integer sums and od_requant_fast_s8, so both are bit-exact with TFLM. */
#include <stddef.h>
#include <string.h>

#include "od_im2col_common.h"
#include "od_simd.h"


#if OD_SIMD_NATIVE
/* The assembly addresses od_block4_ctx_t by these offsets (32-bit cores): a compile error if they drift. */
#define OD_B4_AT(f, off) (offsetof(od_block4_ctx_t, f) == (off))
typedef char od_b4_ctx_offsets_checked[(OD_B4_AT(bias, 8) && OD_B4_AT(rnd, 12) && OD_B4_AT(y, 16) &&
                                        OD_B4_AT(q1, 20) && OD_B4_AT(lo4, 32) && OD_B4_AT(x, 40) &&
                                        OD_B4_AT(n, 44) && OD_B4_AT(entry0, 48) && OD_B4_AT(wadj, 52) &&
                                        OD_B4_AT(yend, 56) && OD_B4_AT(w, 60) && OD_B4_AT(skip, 64) &&
                                        OD_B4_AT(entry1, 68) && OD_B4_AT(hold, 72))
                                           ? 1
                                           : -1];

/* One group of four depths of the four pixels: 13 instructions, all 32-bit (52 bytes, ctx.skip counts them). */
#define OD_B4_GROUP                    \
    "ldr.w r4, [r7], #8\n\t"           \
    "ldmia.w r6!, {r8-r11}\n\t"        \
    "sxtb16 r5, r4\n\t"                \
    "sxtb16 r4, r4, ror #8\n\t"        \
    "smlad r0, r5, r8, r0\n\t"         \
    "smlad r1, r5, r9, r1\n\t"         \
    "smlad r2, r5, r10, r2\n\t"        \
    "smlad r3, r5, r11, r3\n\t"        \
    "ldmia.w r6!, {r8-r11}\n\t"        \
    "smlad r0, r4, r8, r0\n\t"         \
    "smlad r1, r4, r9, r1\n\t"         \
    "smlad r2, r4, r10, r2\n\t"        \
    "smlad r3, r4, r11, r3\n\t"

/* od_requant_fast_s8 of accumulator R: m in r12, ~shift in r11, rnd in r10. */
#define OD_B4_RQ(R)                                                                                             \
    "lsl " R ", " R ", #1\n\t"                                                                                  \
    "smmulr " R ", " R ", r12\n\t"                                                                              \
    "add " R ", " R ", " R ", asr #31\n\t"                                                                      \
    "asr " R ", " R ", r11\n\t"                                                                                 \
    "add " R ", " R ", r10\n\t"                                                                                 \
    "ssat " R ", #8, " R ", asr #1\n\t"

/* The first channel's accumulators from bias[o] (the second's bias is loaded by the first: no read past the end). */
#define OD_B4_BIAS                                                                                              \
    "ldr r4, [lr, #8]\n\t"                                                                                      \
    "ldr r0, [r4], #4\n\t"                                                                                      \
    "str r4, [lr, #8]\n\t"

/* One channel from its bias in r0: the dot loop (entry at [lr, ENTRY], labels L), then the requantization with
 * r4-r6 = the mult, shift and bias pointers (advanced past this channel's mult and shift). */
#define OD_B4_CHANNEL(ENTRY, L)                                                                                 \
    "mov r1, r0\n\t"                                                                                            \
    "mov r2, r0\n\t"                                                                                            \
    "mov r3, r0\n\t"                                                                                            \
    "ldrd r6, r12, [lr, #40]\n\t"                                                                               \
    "ldr pc, [lr, #" ENTRY "]\n\t"                                                                              \
    L ":\n\t" OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP   \
    "subs r12, r12, #1\n\t"                                                                                     \
    "bne " L "b\n\t"                                                                                            \
    "ldm lr, {r4, r5, r6, r10}\n\t"                                                                             \
    "ldr r12, [r4], #4\n\t"                                                                                     \
    "ldr r11, [r5], #4\n\t"                                                                                     \
    "mvn r11, r11\n\t" OD_B4_RQ("r0") OD_B4_RQ("r1") OD_B4_RQ("r2") OD_B4_RQ("r3")

/* Clamped: channel o's four outputs wait in the state as two words [p0 . p1 .] [p2 . p3 .] ... */
#define OD_B4_HOLD                         \
    "pkhbt r0, r0, r1, lsl #16\n\t"       \
    "pkhbt r2, r2, r3, lsl #16\n\t"       \
    "strd r0, r2, [lr, #72]\n\t"

/* ... channel o + 1's fill the gaps, both words are clamped to [lo, hi] per byte (SSUB8/SEL) and each pixel's
 * two channels go out as one halfword (y advances by two channels). */
#define OD_B4_CLAMP_STORE2                 \
    "ldrd r4, r5, [lr, #72]\n\t"          \
    "bfi r4, r0, #8, #8\n\t"              \
    "bfi r4, r1, #24, #8\n\t"             \
    "bfi r5, r2, #8, #8\n\t"              \
    "bfi r5, r3, #24, #8\n\t"             \
    "ldrd r0, r1, [lr, #32]\n\t"          \
    "ssub8 r2, r4, r0\n\t"                \
    "sel r4, r4, r0\n\t"                  \
    "ssub8 r2, r1, r4\n\t"                \
    "sel r4, r4, r1\n\t"                  \
    "ssub8 r2, r5, r0\n\t"                \
    "sel r5, r5, r0\n\t"                  \
    "ssub8 r2, r1, r5\n\t"                \
    "sel r5, r5, r1\n\t"                  \
    "ldrd r8, r9, [lr, #16]\n\t"          \
    "ldrd r10, r11, [lr, #24]\n\t"        \
    "lsrs r0, r4, #16\n\t"                \
    "strh r0, [r8, r9]\n\t"               \
    "strh r5, [r8, r10]\n\t"              \
    "lsrs r1, r5, #16\n\t"                \
    "strh r1, [r8, r11]\n\t"              \
    "strh r4, [r8], #2\n\t"               \
    "str r8, [lr, #16]\n\t"

/* Entry addresses (loop start + skip, Thumb bit set), then per pair: channel o (its outputs stored or held,
 * then o + 1's bias loaded), step back to o + 1's first group, channel o + 1, step to the next pair until y
 * (r8 after the stores) reaches the end. */
#define OD_B4_PAIRS(POST0, POST1)                                                                                     \
    "push {r4-r11, lr}\n\t"                                                                                     \
    "mov lr, r0\n\t"                                                                                            \
    "ldr r5, [lr, #64]\n\t"                                                                                     \
    "adr.w r4, 30f\n\t"                                                                                         \
    "add r4, r4, r5\n\t"                                                                                        \
    "orr r4, r4, #1\n\t"                                                                                        \
    "str r4, [lr, #48]\n\t"                                                                                     \
    "adr.w r4, 40f\n\t"                                                                                         \
    "add r4, r4, r5\n\t"                                                                                        \
    "orr r4, r4, #1\n\t"                                                                                        \
    "str r4, [lr, #68]\n\t"                                                                                     \
    "ldr r7, [lr, #60]\n\t"                                                                                     \
    "20:\n\t" OD_B4_BIAS OD_B4_CHANNEL("48", "30") POST0                                                    \
    "ldr r0, [r6], #4\n\t"                                                                                      \
    "stm lr, {r4, r5, r6}\n\t"                                                                                  \
    "ldr r4, [lr, #52]\n\t"                                                                                     \
    "subs r7, r7, r4\n\t" OD_B4_CHANNEL("68", "40") "stm lr, {r4, r5}\n\t" POST1                             \
    "subs r7, r7, #4\n\t"                                                                                       \
    "ldr r4, [lr, #56]\n\t"                                                                                     \
    "cmp r8, r4\n\t"                                                                                            \
    "bne 20b\n\t"                                                                                               \
    "pop {r4-r11, pc}\n\t"

__attribute__((naked, noinline)) void od_block4_pairs_clamp_s8(od_block4_ctx_t *c) {
    (void)c;
    __asm__ volatile(".align 2\n\t" OD_B4_PAIRS(OD_B4_HOLD, OD_B4_CLAMP_STORE2));
}
#endif

#if defined(__GNUC__)
#define OD_NOINLINE __attribute__((noinline))
#else
#define OD_NOINLINE
#endif

/* Four pixels x one channel: per group of four depths one LDR of the channel's [w0 w2 w1 w3], two SXTB16, two
 * LDM of the four rows' (x0,x1) and (x2,x3) words and eight SMLADs, 13 instructions per 16 MACs; then the
 * channel's T tail weights wt. WS: the channel's group stride (8 in a pair, 4 for an odd last channel). */
OD_INLINE void dot4x1_q15(const int16_t *x, const int8_t *wp, const int8_t *wt, int32_t G, int32_t T, int32_t *s,
                          int WS) {
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    const uint32_t *xp = (const uint32_t *)(const void *)x;
#if OD_SIMD_NATIVE
    if (G > 0) { /* two groups per iteration; an odd G enters at the second. wp may be unaligned: LDR only */
        register uint32_t x0 __asm__("r8"), x1 __asm__("r9"), x2 __asm__("r10"), x3 __asm__("r11");
        uint32_t w, t;
        int32_t n = G;
#define OD_GROUP4_ASM                                            \
    "ldr %[w], [%[wp]], %[ws]\n\t"                              \
    "ldm %[xp]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"              \
    "sxtb16 %[t], %[w]\n\t"                                     \
    "sxtb16 %[w], %[w], ror #8\n\t"                             \
    "smlad %[s0], %[t], %[x0], %[s0]\n\t"                       \
    "smlad %[s1], %[t], %[x1], %[s1]\n\t"                       \
    "smlad %[s2], %[t], %[x2], %[s2]\n\t"                       \
    "smlad %[s3], %[t], %[x3], %[s3]\n\t"                       \
    "ldm %[xp]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"              \
    "smlad %[s0], %[w], %[x0], %[s0]\n\t"                       \
    "smlad %[s1], %[w], %[x1], %[s1]\n\t"                       \
    "smlad %[s2], %[w], %[x2], %[s2]\n\t"                       \
    "smlad %[s3], %[w], %[x3], %[s3]\n\t"
        __asm__ volatile(
            "adds %[n], %[n], #1\n\t" /* n = (G + 1) / 2; carry clear (G odd): enter at the second group */
            "lsrs %[n], %[n], #1\n\t"
            "bcc 2f\n\t"
            "1:\n\t" OD_GROUP4_ASM
            "2:\n\t" OD_GROUP4_ASM
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [w] "=&r"(w), [t] "=&r"(t),
              [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [xp] "+r"(xp), [wp] "+r"(wp),
              [n] "+r"(n)
            : [ws] "I"(WS)
            : "cc", "memory");
#undef OD_GROUP4_ASM
    }
#else
    for (int32_t g = 0; g < G; ++g, xp += 8, wp += WS) {
        const uint32_t w = od_read_u32(wp), t0 = od_sxtb16(w), t1 = od_sxtb16_ror8(w);
        s0 = od_smlad(t0, xp[0], s0);
        s1 = od_smlad(t0, xp[1], s1);
        s2 = od_smlad(t0, xp[2], s2);
        s3 = od_smlad(t0, xp[3], s3);
        s0 = od_smlad(t1, xp[4], s0);
        s1 = od_smlad(t1, xp[5], s1);
        s2 = od_smlad(t1, xp[6], s2);
        s3 = od_smlad(t1, xp[7], s3);
    }
#endif
    const int16_t *tx = (const int16_t *)(const void *)xp; /* a partial group: q15_pos(4, r, d) */
    for (int32_t d = 0; d < T; ++d) {
        const int16_t *c = tx + (d >> 1) * 8 + (d & 1);
        s0 += wt[d] * c[0];
        s1 += wt[d] * c[2];
        s2 += wt[d] * c[4];
        s3 += wt[d] * c[6];
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

/* The two weight strides out of line (one frame each, not both inside block_channels'). */
OD_NOINLINE static void dot4x1_w8(const int16_t *x, const int8_t *wp, const int8_t *wt, int32_t G, int32_t T,
                                  int32_t *s) {
    dot4x1_q15(x, wp, wt, G, T, s, 8);
}
OD_NOINLINE static void dot4x1_w4(const int16_t *x, const int8_t *wp, const int8_t *wt, int32_t G, int32_t T,
                                  int32_t *s) {
    dot4x1_q15(x, wp, wt, G, T, s, 4);
}

/* Channel o of the four pixels (s: accumulators) requantized and stored at y + q[r] (a repeated pixel of the
 * last block stores its own value again). mode as conv_pairs; with the clamp (1) the four are packed and clamped
 * lane-wise. */
OD_INLINE void store4(int8_t *y, const int32_t *q, const int32_t *s, int32_t m, int32_t sh,
                      const od_conv_params_t *p, uint32_t lo4, uint32_t hi4, int mode) {
    const int32_t rnd = 1 + 2 * p->output_offset, ns = ~sh;
    if (mode == 0) {
        for (int32_t r = 0; r < 4; ++r) y[q[r]] = rq(s[r], m, sh, p->output_offset, p->act_min, p->act_max, 0);
        return;
    }
    int32_t v0 = od_requant_fast_s8(s[0], m, ns, rnd), v1 = od_requant_fast_s8(s[1], m, ns, rnd);
    int32_t v2 = od_requant_fast_s8(s[2], m, ns, rnd), v3 = od_requant_fast_s8(s[3], m, ns, rnd);
    if (mode == 1) {
        const uint32_t w = od_clamp4_s8(od_pack4_s8(v0, v1, v2, v3), lo4, hi4);
        v0 = (int32_t)w, v1 = (int32_t)(w >> 8), v2 = (int32_t)(w >> 16), v3 = (int32_t)(w >> 24);
    }
    y[0] = (int8_t)v0;
    y[q[1]] = (int8_t)v1;
    y[q[2]] = (int8_t)v2;
    y[q[3]] = (int8_t)v3;
}

/* Output channels o.. of the four pixels in the scratch c->x, pixel r's outputs at c->y + q[r]: a channel pair's
 * weights at group stride 8, an odd last channel's at 4 (ondevice/mcu/layouts.py). */
OD_NOINLINE static void block_channels(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift, const od_block4_ctx_t *c,
                                       int32_t o, int mode) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c;
    const uint32_t lo4 = c->lo4, hi4 = c->hi4;
    const int32_t q[4] = {0, c->q1, c->q2, c->q3};
    const int16_t *x = c->x;
    int8_t *y = c->y;
    int32_t s[4];
    for (; o + 2 <= OC; o += 2) {
        const int8_t *w = filter + o * D;
        for (int32_t k = 0; k < 2; ++k) {
            s[0] = s[1] = s[2] = s[3] = bias ? bias[o + k] : 0;
            dot4x1_w8(x, w + 4 * k, w + 8 * G + k * T, G, T, s);
            store4(y + o + k, q, s, mult[o + k], shift[o + k], p, lo4, hi4, mode);
        }
    }
    if (o < OC) {
        const int8_t *w = filter + o * D;
        s[0] = s[1] = s[2] = s[3] = bias ? bias[o] : 0;
        dot4x1_w4(x, w, w + 4 * G, G, T, s);
        store4(y + o, q, s, mult[o], shift[o], p, lo4, hi4, mode);
    }
}

/* Input word u of one row widened (plus the offset, when use_off) into the scratch words w[0] and w[4]. */
OD_INLINE void widen_word(uint32_t *w, uint32_t u, uint32_t off2, int use_off) {
    uint32_t a = od_sxtb16(u), b = od_sxtb16_ror8(u);
    if (use_off) a = od_sadd16(a, off2), b = od_sadd16(b, off2);
    w[0] = od_pack_lo16(a, b);
    w[4] = od_pack_hi16(a, b);
}

/* A 1x1 stride-1 conv's four fields are the input rows s0..s3 (C % 4 == 0): widened group by group, the offset
 * added only when there is one. */
OD_NOINLINE static void rows4_1x1(int16_t *dst, const int8_t *s0, const int8_t *s1, const int8_t *s2,
                                   const int8_t *s3, int32_t C, int32_t off) {
    uint32_t *w = (uint32_t *)(void *)dst;
    const uint32_t off2 = od_dup16(off);
    if (off) {
        for (int32_t d = 0; d < C; d += 4, w += 8) {
            widen_word(w, od_read_u32(s0 + d), off2, 1);
            widen_word(w + 1, od_read_u32(s1 + d), off2, 1);
            widen_word(w + 2, od_read_u32(s2 + d), off2, 1);
            widen_word(w + 3, od_read_u32(s3 + d), off2, 1);
        }
        return;
    }
    for (int32_t d = 0; d < C; d += 4, w += 8) { /* no offset: no SADD16 */
        widen_word(w, od_read_u32(s0 + d), 0, 0);
        widen_word(w + 1, od_read_u32(s1 + d), 0, 0);
        widen_word(w + 2, od_read_u32(s2 + d), 0, 0);
        widen_word(w + 3, od_read_u32(s3 + d), 0, 0);
    }
}

/* The state of the assembly channel-pair loop (od_conv_block4_s8.c) for this conv, or 0 where it does not apply
 * (DSP cores, od_requant_fast, a bias, D % 4 == 0); per block only the pointers and strides are set. */
static int block4_ctx(const od_conv_params_t *p, const int8_t *filter, const int16_t *x, int mode,
                      od_block4_ctx_t *c) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2;
    memset(c, 0, sizeof(*c));
    c->rnd = 1 + 2 * p->output_offset;
    c->lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u; /* mode 2: -128 and 127, a clamp that changes nothing */
    c->hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    c->x = x;
    c->n = (G + 7) >> 3;
    c->wadj = 8 * G - 4;
    c->w = filter;
    c->skip = 52 * ((8 - (G & 7)) & 7);
    return OD_SIMD_NATIVE && mode != 0 && (D & 3) == 0 && G > 0 && p->out_c >= 2;
}

/* Four pixels at a time; the last block repeats its last pixel in the unused rows (stored twice, same value). */
static void conv_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch, int mode) {
    const int32_t pixels = p->batches * p->out_h * p->out_w, OC = p->out_c, C = p->in_c;
    const int rows = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->in_h == p->out_h &&
                     p->in_w == p->out_w && (C & 3) == 0;
    od_block4_ctx_t c;
    const int fast = block4_ctx(p, filter, scratch, mode, &c) && bias;
    int32_t k[4] = {0, 1, 2, 3}; /* pixel r's row is px + k[r] */
    (void)fast;
    c.q1 = OC, c.q2 = 2 * OC, c.q3 = 3 * OC;
    for (int32_t px = 0; px < pixels; px += 4) {
        if (px + 4 > pixels) { /* the last block: rows past the end repeat the last pixel */
            for (int32_t r = 0; r < 4; ++r) k[r] = od_min_i32(r, pixels - 1 - px);
            c.q1 = k[1] * OC, c.q2 = k[2] * OC, c.q3 = k[3] * OC;
        }
        if (!rows)
            for (int32_t r = 0; r < 4; ++r) od_im2col_pixel4_s8(p, in, px + k[r], r, scratch);
        else
            rows4_1x1(scratch, in + (px + k[0]) * C, in + (px + k[1]) * C, in + (px + k[2]) * C,
                      in + (px + k[3]) * C, C, p->input_offset);
        int8_t *y = out + px * OC;
        int32_t o = 0;
#if OD_SIMD_NATIVE
        if (fast) {
            c.mult = mult, c.shift = shift, c.bias = bias, c.y = y, c.yend = y + (OC & ~1);
            od_block4_pairs_clamp_s8(&c);
            o = OC & ~1;
        }
#endif
        c.y = y;
        if (o < OC) block_channels(p, filter, bias, mult, shift, &c, o, mode);
    }
}

od_status_t od_conv2d_s8_im2col_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                       int16_t *scratch) {
    const int mode = !p->requant_fast ? 0 : (p->act_min == -128 && p->act_max == 127) ? 2 : 1;
    conv_block4(p, in, filter, bias, mult, shift, out, scratch, mode); /* one instance: flash over speed here */
    return OD_OK;
}
