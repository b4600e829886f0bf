/* od_conv_im2col_s8.c: CONV_2D (any kernel size, stride, padding; dilation 1) as im2col + matrix multiply.
 *
 * Two output pixels at a time: their receptive fields are widened once to int16 (input offset added, padded taps
 * written as 0 so they add nothing) into `scratch`, then every pair of output channels is a 2x2 register block
 * of SMLADs over that q15 buffer. The code generator lays the weights out in the order this kernel reads them:
 * per channel pair and group of four depths, 4 bytes of each channel as [w0 w2 w1 w3] (one SXTB16 gives
 * (w0, w1), SXTB16 ROR 8 gives (w2, w3), matching the q15 input pairs); see od_im2col_w_index. Integer sums are exact, so the result is bit-identical
 * with the reference kernel. Scratch: od_conv2d_im2col_scratch_bytes(). */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_im2col_common.h"
#include "od_kernels.h"
#include "od_kernels_ext.h"
#include "od_mve_s8.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

/* Scratch layout for R pixels (R = 2 or 4, a literal): their fields interleaved per group of four depths as 2R
 * words, [row0 (x0,x1)] .. [row R-1 (x0,x1)] [row0 (x2,x3)] .. [row R-1 (x2,x3)], so the inner loop walks one
 * pointer (LDRD for two rows, LDM for four). */
static inline int32_t q15_pos(int32_t R, int32_t r, int32_t d) {
    return (d >> 2) * 4 * R + ((d >> 1) & 1) * 2 * R + r * 2 + (d & 1);
}

/* Row r of the scratch, depths d..d+n: src[i] + off as int16 (src == NULL: zeros, a padded tap). */
OD_INLINE void put_run(int16_t *dst, int32_t R, int32_t r, int32_t d, const int8_t *src, int32_t n, int32_t off) {
    if (((d | n) & 3) == 0) { /* whole groups: two words per four values */
        uint32_t *w = (uint32_t *)(void *)dst + (d >> 2) * 2 * R + r;
        const uint32_t off2 = od_dup16(off);
        if (!src) {
            for (; n > 0; n -= 4, w += 2 * R) w[0] = w[R] = 0;
            return;
        }
        for (; n > 0; n -= 4, w += 2 * R, src += 4) {
            const uint32_t u = od_read_u32(src);
            const uint32_t a = od_sadd16(od_sxtb16(u), off2), b = od_sadd16(od_sxtb16_ror8(u), off2);
            w[0] = od_pack_lo16(a, b); /* (x0, x1) */
            w[R] = od_pack_hi16(a, b); /* (x2, x3) */
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) dst[q15_pos(R, r, d + i)] = (int16_t)(src ? src[i] + off : 0);
}

/* One output pixel's receptive field, in filter order (ky, kx, c), into row r of an R-row scratch. */
OD_INLINE void im2col_pixel(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t R, int32_t r,
                            int16_t *dst) {
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KH = p->k_h, KW = p->k_w, off = p->input_offset;
    const int32_t ox = pix % p->out_w, t = pix / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_max_i32(kx0, od_min_i32(KW, IW - x0));
    for (int32_t ky = 0, d = 0; ky < KH; ++ky, d += KW * C) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= IH || kx1 == kx0) {
            put_run(dst, R, r, d, NULL, KW * C, 0);
            continue;
        }
        if (kx0 > 0) put_run(dst, R, r, d, NULL, kx0 * C, 0);
        put_run(dst, R, r, d + kx0 * C, in + ((b * IH + iy) * IW + x0 + kx0) * C, (kx1 - kx0) * C, off);
        if (kx1 < KW) put_run(dst, R, r, d + kx1 * C, NULL, (KW - kx1) * C, 0);
    }
}

static void im2col_pixel2(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r, int16_t *dst) {
    im2col_pixel(p, in, pix, 2, r, dst);
}
static void im2col_pixel4(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r, int16_t *dst) {
    im2col_pixel(p, in, pix, 4, r, dst);
}

OD_INLINE int8_t rq(int32_t acc, int32_t m, int32_t s, int32_t out_off, int32_t lo, int32_t hi, int fast) {
    const int32_t v = fast ? od_requant_fast(acc, m, s, out_off) : od_mbqm(acc, m, s) + out_off;
    return (int8_t)od_clamp_i32(v, lo, hi);
}

/* Both scratch rows against a channel pair's interleaved weights: per group, 4 bytes of channel o
 * ([w0 w2 w1 w3]) then 4 of channel o+1; then the T tail bytes of o, then of o+1. */
OD_INLINE void dot2x2_q15(const int16_t *x, const int8_t *wp, int32_t G, int32_t T, int32_t *a) {
    int32_t s00 = a[0], s01 = a[1], s10 = a[2], s11 = a[3];
    const uint32_t *xp = (const uint32_t *)(const void *)x;
#if OD_SIMD_NATIVE
    /* 17 instructions per 16 MACs (two groups per iteration; an odd G enters at the second group); the C form
     * below lets GCC spill accumulators. wp may be unaligned: LDR only. */
    if (G > 0) {
        uint32_t w0, w1, t0, t1, xa, xb;
        int32_t n = (G + 1) >> 1;
#define OD_GROUP_ASM                                 \
    "ldr %[w1], [%[wp], #4]\n\t"                    \
    "ldr %[w0], [%[wp]], #8\n\t"                    \
    "ldrd %[xa], %[xb], [%[xp]], #8\n\t"            \
    "sxtb16 %[t0], %[w0]\n\t"                       \
    "sxtb16 %[t1], %[w1]\n\t"                       \
    "smlad %[s00], %[t0], %[xa], %[s00]\n\t"        \
    "smlad %[s10], %[t0], %[xb], %[s10]\n\t"        \
    "smlad %[s01], %[t1], %[xa], %[s01]\n\t"        \
    "smlad %[s11], %[t1], %[xb], %[s11]\n\t"        \
    "ldrd %[xa], %[xb], [%[xp]], #8\n\t"            \
    "sxtb16 %[t0], %[w0], ror #8\n\t"               \
    "sxtb16 %[t1], %[w1], ror #8\n\t"               \
    "smlad %[s00], %[t0], %[xa], %[s00]\n\t"        \
    "smlad %[s10], %[t0], %[xb], %[s10]\n\t"        \
    "smlad %[s01], %[t1], %[xa], %[s01]\n\t"        \
    "smlad %[s11], %[t1], %[xb], %[s11]\n\t"
        __asm__ volatile(
            "tst %[g], #1\n\t"
            "bne 2f\n\t"
            "1:\n\t" OD_GROUP_ASM
            "2:\n\t" OD_GROUP_ASM
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [w0] "=&r"(w0), [w1] "=&r"(w1), [t0] "=&r"(t0), [t1] "=&r"(t1), [xa] "=&r"(xa), [xb] "=&r"(xb),
              [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [xp] "+r"(xp), [wp] "+r"(wp),
              [n] "+r"(n)
            : [g] "r"(G)
            : "cc", "memory");
#undef OD_GROUP_ASM
    }
#else
    for (int32_t g = 0; g < G; ++g, xp += 4, wp += 8) {
        const uint32_t w0 = od_read_u32(wp), w1 = od_read_u32(wp + 4);
        uint32_t x0 = xp[0], x1 = xp[1];
        uint32_t t0 = od_sxtb16(w0), t1 = od_sxtb16(w1);
        s00 = od_smlad(t0, x0, s00);
        s10 = od_smlad(t0, x1, s10);
        s01 = od_smlad(t1, x0, s01);
        s11 = od_smlad(t1, x1, s11);
        x0 = xp[2];
        x1 = xp[3];
        t0 = od_sxtb16_ror8(w0);
        t1 = od_sxtb16_ror8(w1);
        s00 = od_smlad(t0, x0, s00);
        s10 = od_smlad(t0, x1, s10);
        s01 = od_smlad(t1, x0, s01);
        s11 = od_smlad(t1, x1, s11);
    }
#endif
    const int16_t *t = (const int16_t *)(const void *)xp;
    for (int32_t d = 0; d < T; ++d) {
        const int32_t v0 = t[(d >> 1) * 4 + (d & 1)], v1 = t[(d >> 1) * 4 + 2 + (d & 1)];
        s00 += wp[d] * v0;
        s10 += wp[d] * v1;
        s01 += wp[T + d] * v0;
        s11 += wp[T + d] * v1;
    }
    a[0] = s00;
    a[1] = s01;
    a[2] = s10;
    a[3] = s11;
}

/* The odd last channel: its own row ([w0 w2 w1 w3] groups, natural tail) against both scratch rows. */
static void dot2x1_q15(const int16_t *x, const int8_t *wp, int32_t G, int32_t T, int32_t *a0, int32_t *a1) {
    int32_t s0 = *a0, s1 = *a1;
    const uint32_t *xp = (const uint32_t *)(const void *)x;
    for (int32_t g = 0; g < G; ++g, xp += 4, wp += 4) {
        const uint32_t w = od_read_u32(wp);
        s0 = od_smlad(od_sxtb16(w), xp[0], s0);
        s1 = od_smlad(od_sxtb16(w), xp[1], s1);
        s0 = od_smlad(od_sxtb16_ror8(w), xp[2], s0);
        s1 = od_smlad(od_sxtb16_ror8(w), xp[3], s1);
    }
    const int16_t *t = (const int16_t *)(const void *)xp;
    for (int32_t d = 0; d < T; ++d) {
        s0 += wp[d] * t[(d >> 1) * 4 + (d & 1)];
        s1 += wp[d] * t[(d >> 1) * 4 + 2 + (d & 1)];
    }
    *a0 = s0;
    *a1 = s1;
}

/* Channels o, o+1 of one pixel (accumulators a0, a1) with od_requant_fast_s8, packed, clamped, one halfword
 * store. mode 2: the activation range is all of int8, no clamp. */
OD_INLINE void store_pair(int8_t *y, int32_t a0, int32_t a1, int32_t m0, int32_t n0, int32_t m1, int32_t n1,
                          int32_t rnd, uint32_t lo4, uint32_t hi4, int mode) {
    uint32_t w = od_pack2_s8(od_requant_fast_s8(a0, m0, n0, rnd), od_requant_fast_s8(a1, m1, n1, rnd));
    if (mode == 1) w = od_clamp4_s8(w, lo4, hi4);
    od_write_u16(y, w);
}

/* Every output channel of the pixel pair in the scratch (two: a literal, 0 for an odd last pixel written once).
 * mode (a literal per instantiation): 0 TFLite's exact requantization, 1 od_requant_fast_s8 + the activation
 * clamp, 2 od_requant_fast_s8 alone. */
OD_INLINE void pair_channels(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias,
                             const int32_t *mult, const int32_t *shift, int8_t *y0, const int16_t *scratch, int two,
                             int mode) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c;
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max, rnd = 1 + 2 * out_off;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    const int fast = mode != 0;
    int8_t *y1 = y0 + OC;
    int32_t o = 0;
    for (; o + 2 <= OC; o += 2) {
        int32_t a[4] = {0, 0, 0, 0};
        if (bias) a[0] = a[2] = bias[o], a[1] = a[3] = bias[o + 1];
        dot2x2_q15(scratch, filter + o * D, G, T, a);
        const int32_t m0 = mult[o], s0 = shift[o], m1 = mult[o + 1], s1 = shift[o + 1];
        if (mode != 0) {
            store_pair(y0 + o, a[0], a[1], m0, ~s0, m1, ~s1, rnd, lo4, hi4, mode);
            if (two) store_pair(y1 + o, a[2], a[3], m0, ~s0, m1, ~s1, rnd, lo4, hi4, mode);
            continue;
        }
        y0[o] = rq(a[0], m0, s0, out_off, lo, hi, fast);
        y0[o + 1] = rq(a[1], m1, s1, out_off, lo, hi, fast);
        if (two) {
            y1[o] = rq(a[2], m0, s0, out_off, lo, hi, fast);
            y1[o + 1] = rq(a[3], m1, s1, out_off, lo, hi, fast);
        }
    }
    if (o < OC) {
        int32_t a0 = bias ? bias[o] : 0, a1 = a0;
        dot2x1_q15(scratch, filter + o * D, G, T, &a0, &a1);
        y0[o] = rq(a0, mult[o], shift[o], out_off, lo, hi, fast);
        if (two) y1[o] = rq(a1, mult[o], shift[o], out_off, lo, hi, fast);
    }
}

OD_INLINE void conv_pairs(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch, int mode) {
    const int32_t pixels = p->batches * p->out_h * p->out_w, OC = p->out_c;
    int32_t px = 0;
    for (; px + 1 < pixels; px += 2) {
        im2col_pixel2(p, in, px, 0, scratch);
        im2col_pixel2(p, in, px + 1, 1, scratch);
        pair_channels(p, filter, bias, mult, shift, out + px * OC, scratch, 1, mode);
    }
    if (px < pixels) { /* an odd last pixel: both scratch rows, written once */
        im2col_pixel2(p, in, px, 0, scratch);
        im2col_pixel2(p, in, px, 1, scratch);
        pair_channels(p, filter, bias, mult, shift, out + px * OC, scratch, 0, mode);
    }
}

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

/* Every output channel of the four pixels in the scratch, pixel r's outputs at y + q[r]: a channel pair's
 * weights at group stride 8, an odd last channel's at 4 (ondevice/mcu/layouts.py). */
OD_INLINE void block_channels(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias,
                              const int32_t *mult, const int32_t *shift, int8_t *y, const int16_t *x,
                              const int32_t *q, int32_t o, int mode) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c;
    const uint32_t lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u, hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    int32_t s[4];
    for (; o + 2 <= OC; o += 2) {
        const int8_t *w = filter + o * D;
        for (int32_t k = 0; k < 2; ++k) {
            s[0] = s[1] = s[2] = s[3] = bias ? bias[o + k] : 0;
            dot4x1_q15(x, w + 4 * k, w + 8 * G + k * T, G, T, s, 8);
            store4(y + o + k, q, s, mult[o + k], shift[o + k], p, lo4, hi4, mode);
        }
    }
    if (o < OC) {
        const int8_t *w = filter + o * D;
        s[0] = s[1] = s[2] = s[3] = bias ? bias[o] : 0;
        dot4x1_q15(x, w, w + 4 * G, G, T, s, 4);
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
 * added only when there is one (use_off, a literal). */
OD_INLINE void rows4_1x1(int16_t *dst, const int8_t *s0, const int8_t *s1, const int8_t *s2, const int8_t *s3,
                         int32_t C, int32_t off, int use_off) {
    uint32_t *w = (uint32_t *)(void *)dst;
    const uint32_t off2 = od_dup16(off);
    for (int32_t d = 0; d < C; d += 4, w += 8) {
        widen_word(w, od_read_u32(s0 + d), off2, use_off);
        widen_word(w + 1, od_read_u32(s1 + d), off2, use_off);
        widen_word(w + 2, od_read_u32(s2 + d), off2, use_off);
        widen_word(w + 3, od_read_u32(s3 + d), off2, use_off);
    }
}

/* The state of the assembly channel-pair loop (od_conv_block4_s8.c) for this conv, or 0 where it does not apply
 * (DSP cores, od_requant_fast, a bias, D % 4 == 0); per block only the pointers and strides are set. */
static int block4_ctx(const od_conv_params_t *p, const int8_t *filter, const int16_t *x, int mode,
                      od_block4_ctx_t *c) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2;
    if (!OD_SIMD_NATIVE || mode == 0 || (D & 3) || G == 0 || p->out_c < 2) return 0;
    memset(c, 0, sizeof(*c));
    c->rnd = 1 + 2 * p->output_offset;
    c->lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u;
    c->hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    c->x = x;
    c->n = (G + 7) >> 3;
    c->wadj = 8 * G - 4;
    c->w = filter;
    c->skip = 52 * ((8 - (G & 7)) & 7);
    return 1;
}

/* Four pixels at a time; the last block repeats its last pixel in the unused rows (stored twice, same value). */
OD_INLINE void conv_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch, int mode) {
    const int32_t pixels = p->batches * p->out_h * p->out_w, OC = p->out_c, C = p->in_c;
    const int rows = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->in_h == p->out_h &&
                     p->in_w == p->out_w && (C & 3) == 0;
    od_block4_ctx_t c;
    const int fast = bias && block4_ctx(p, filter, scratch, mode, &c);
    (void)fast;
    for (int32_t px = 0; px < pixels; px += 4) {
        const int32_t last = od_min_i32(3, pixels - 1 - px);
        int32_t q[4];
        const int8_t *src[4];
        for (int32_t r = 0; r < 4; ++r) {
            q[r] = od_min_i32(r, last) * OC;
            src[r] = in + (px + od_min_i32(r, last)) * C;
            if (!rows) im2col_pixel4(p, in, px + od_min_i32(r, last), r, scratch);
        }
        if (rows && p->input_offset)
            rows4_1x1(scratch, src[0], src[1], src[2], src[3], C, p->input_offset, 1);
        else if (rows)
            rows4_1x1(scratch, src[0], src[1], src[2], src[3], C, 0, 0);
        int8_t *y = out + px * OC;
        int32_t o = 0;
#if OD_SIMD_NATIVE
        if (fast) {
            c.mult = mult, c.shift = shift, c.bias = bias, c.y = y, c.yend = y + (OC & ~1);
            c.q1 = q[1], c.q2 = q[2], c.q3 = q[3];
            if (mode == 1)
                od_block4_pairs_clamp_s8(&c);
            else
                od_block4_pairs_s8(&c);
            o = OC & ~1;
        }
#endif
        block_channels(p, filter, bias, mult, shift, y, scratch, q, o, mode);
    }
}

/* Depths up to which the four-pixel block runs: its scratch (four fields) is twice the pair kernel's, which past
 * 64 depths could raise a model's peak RAM (ondevice/mcu/layouts.py IM2COL_BLOCK_MAX_D). */
#define OD_IM2COL_BLOCK_MAX_D 64

static inline int block4(int32_t D) { return D <= OD_IM2COL_BLOCK_MAX_D; }

int32_t od_conv2d_im2col_scratch_bytes(int32_t k_h, int32_t k_w, int32_t in_c) {
    const int32_t D = k_h * k_w * in_c;
    return (block4(D) ? 32 : 16) * ((D + 3) >> 2);
}

od_status_t od_conv2d_s8_im2col_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px)
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            const int32_t acc = od_im2col_ref_acc(p, in, filter, bias, px, oc);
            out[px * p->out_c + oc] =
                (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min, p->act_max);
        }
    return OD_OK;
}

#if defined(OD_KERNELS_REFERENCE)
/* In place (1x1, stride 1, out_c <= in_c): each pixel's input is copied before its outputs overwrite it. */
static od_status_t im2col_ref_inplace(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *x) {
    const int32_t IC = p->in_c, OC = p->out_c;
    if (p->k_h != 1 || p->k_w != 1 || p->stride_h != 1 || p->stride_w != 1) /* strided in place (planner-checked) */
        return od_conv2d_s8_im2col_ref_staged(p, buf, filter, bias, mult, shift, x);
    OD_CHECK(p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && OC <= IC && x != NULL);
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px) {
        memcpy(x, buf + px * IC, (size_t)IC);
        for (int32_t oc = 0; oc < OC; ++oc) {
            int32_t acc = bias ? bias[oc] : 0;
            for (int32_t ic = 0; ic < IC; ++ic)
                acc += (int32_t)filter[od_im2col_w_index(oc, ic, IC, OC)] * ((int32_t)x[ic] + p->input_offset);
            buf[px * OC + oc] =
                (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min, p->act_max);
        }
    }
    return OD_OK;
}
#endif

/* in == out is allowed for a 1x1 stride-1 conv with out_c <= in_c (the planner's in-place case): a pixel pair's
 * inputs are in the scratch before its outputs land, at or before those inputs. */
od_status_t od_conv2d_s8_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                int16_t *scratch) {
#if defined(OD_KERNELS_REFERENCE)
    if (in == out) return im2col_ref_inplace(p, out, filter, bias, mult, shift, (int8_t *)(void *)scratch);
    return od_conv2d_s8_im2col_ref(p, in, filter, bias, mult, shift, out);
#endif
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    OD_CHECK_PTR(scratch);
    OD_CHECK(p->dil_h == 1 && p->dil_w == 1 && ((uintptr_t)scratch & 3) == 0);
#if OD_MVE
    if (od_mve_conv2d_im2col_fits(p)) return od_mve_conv2d_im2col(p, in, filter, bias, mult, shift, out, scratch);
#endif
    if (block4(p->k_h * p->k_w * p->in_c)) {
        if (p->requant_fast && p->act_min == -128 && p->act_max == 127)
            conv_block4(p, in, filter, bias, mult, shift, out, scratch, 2);
        else if (p->requant_fast)
            conv_block4(p, in, filter, bias, mult, shift, out, scratch, 1);
        else
            conv_block4(p, in, filter, bias, mult, shift, out, scratch, 0);
        return OD_OK;
    }
    if (p->requant_fast && p->act_min == -128 && p->act_max == 127)
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 2);
    else if (p->requant_fast)
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 1);
    else
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 0);
    return OD_OK;
}
