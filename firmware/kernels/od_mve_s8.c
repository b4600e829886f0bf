/* od_mve_s8.c: Helium (MVE) versions of the int8 inner products (Cortex-M55; see od_mve_s8.h).
 *
 * CONV_2D im2col: the weights keep the layout od_conv_im2col_s8.c reads (per channel pair and group of four
 * depths, 4 bytes of channel o as [w0 w2 w1 w3] then 4 of o+1; then the tails). Each output pixel's field is
 * gathered once into a "dup" row with the same permutation and every group written twice, [g g g+1 g+1], so one
 * 16-byte load of the pair's weights meets one load of the row: VMLADAVA predicated on lanes 0-3/8-11 is channel
 * o, on 4-7/12-15 channel o+1. Padded taps hold the input zero point and the offset is added as off * sum(w), the
 * same integer sum as sum(w * (x + off)). Requantization: od_requant_fast on four lanes where the code generator
 * proved it exact (requant_fast), else the scalar TFLite arithmetic (od_mbqm).
 *
 * FULLY_CONNECTED (and the in-place matmul): two outputs per 16-byte load of the row, weight sums for the offset. */
#include "od_mve_s8.h"

#if OD_MVE
#include <arm_mve.h>

#include "od_fixedpoint.h"
#include "od_simd.h"

#define OD_MVE_INLINE static inline __attribute__((always_inline))
#define LANES_O0 ((mve_pred16_t)0x0F0F)

/* Byte j of a dup block reads byte (j >> 3) * 4 + perm(j & 3) of 8 natural depths; perm [0 2 1 3]. */
static const uint8_t DUP_OFFS[16] = {0, 2, 1, 3, 0, 2, 1, 3, 4, 6, 5, 7, 4, 6, 5, 7};
/* Byte j of the odd last channel's 16 weights (groups 4k..4k+3) is at dup + 32k + (j >> 2) * 8 + j % 4. */
static const uint8_t ODD_OFFS[16] = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};

static void mve_fill(int8_t *d, int8_t v, int32_t n) {
    const int8x16_t q = vdupq_n_s8(v);
    for (int32_t i = 0; i < n; i += 16) vstrbq_p_s8(d + i, q, vctp8q((uint32_t)(n - i)));
}

static void mve_copy(int8_t *d, const int8_t *s, int32_t n) {
    for (int32_t i = 0; i < n; i += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        vstrbq_p_s8(d + i, vldrbq_z_s8(s + i, p), p);
    }
}

/* One output pixel's receptive field in filter order (ky, kx, c), padded taps = the input zero point. */
static void nat_row(const od_conv_params_t *p, const int8_t *in, int32_t pix, int8_t *dst) {
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KW = p->k_w;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t ox = pix % p->out_w, t = pix / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_max_i32(kx0, od_min_i32(KW, IW - x0));
    for (int32_t ky = 0; ky < p->k_h; ++ky, dst += KW * C) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= IH || kx1 == kx0) {
            mve_fill(dst, zp, KW * C);
            continue;
        }
        if (kx0 > 0) mve_fill(dst, zp, kx0 * C);
        mve_copy(dst + kx0 * C, in + ((b * IH + iy) * IW + x0 + kx0) * C, (kx1 - kx0) * C);
        if (kx1 < KW) mve_fill(dst + kx1 * C, zp, (KW - kx1) * C);
    }
}

OD_MVE_INLINE int8_t rq(int32_t acc, int32_t m, int32_t s, int32_t out_off, int32_t lo, int32_t hi, int fast) {
    const int32_t v = fast ? od_requant_fast(acc, m, s, out_off) : od_mbqm(acc, m, s) + out_off;
    return (int8_t)od_clamp_i32(v, lo, hi);
}

/* od_requant_fast on four lanes, clamped (only where the code generator proved it exact: requant_fast): VRMULH is
 * SMMULR ((a * b + 2^31) >> 32), VSHL by a negative count is an arithmetic shift right, as >> in od_simd.h. */
OD_MVE_INLINE int32x4_t rq4_fast(int32x4_t acc, int32x4_t m, int32x4_t shift1, int32_t out_off, int32_t lo,
                                 int32_t hi) { /* shift1 = shift + 1 = -(~shift) */
    int32x4_t y = vrmulhq_s32(vshlq_n_s32(acc, 1), m);
    y = vaddq_s32(y, vshrq_n_s32(y, 31));
    y = vshrq_n_s32(vaddq_n_s32(vshlq_s32(y, shift1), 1 + 2 * out_off), 1);
    return vminq_s32(vmaxq_s32(y, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* Full 16-byte blocks of a channel pair (returns how many it did): a VPT block splits the VMLADAVAs into lanes
 * of o (T) and of o+1 (E); 4.5 instructions per 16 MACs, 8 with the weight sums (GCC 12's intrinsics: 9-12).
 * Every T/E switch inverts P0 and leaves it so: T E E T ends with P0 restored; after T E the next block swaps. */
OD_MVE_INLINE int32_t pair_blocks(const int8_t *x, const int8_t *w, int32_t n, int32_t *a, int32_t *ws, int use_off) {
    register int32_t a0 __asm__("r2") = a[0], a1 __asm__("r4") = a[1];
    register int32_t s0 __asm__("r6") = ws[0], s1 __asm__("r8") = ws[1];
    int8x16_t wv, xv;
    /* Writes P0 too: GCC 12 has no "vpr" clobber, and it reloads P0 (VMSR) before every predicated intrinsic. */
    if (use_off)
        __asm__ volatile("vmsr p0, %[pm]\n\t"
                         "dls lr, %[n]\n"
                         "1:\n\t"
                         "vldrb.8 %q[wv], [%[w]], #16\n\t"
                         "vldrb.8 %q[xv], [%[x]], #16\n\t"
                         "vpsteet\n\t"
                         "vmladavat.s8 %[a0], %q[xv], %q[wv]\n\t"
                         "vmladavae.s8 %[a1], %q[xv], %q[wv]\n\t"
                         "vaddvae.s8 %[s1], %q[wv]\n\t"
                         "vaddvat.s8 %[s0], %q[wv]\n\t"
                         "le lr, 1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [s0] "+r"(s0), [s1] "+r"(s1), [x] "+r"(x), [w] "+r"(w),
                           [wv] "=&w"(wv), [xv] "=&w"(xv)
                         : [n] "r"(n), [pm] "r"(0x0F0Fu)
                         : "lr", "memory", "cc");
    else if (n >= 2) /* DLS runs the body at least once */
        __asm__ volatile("vmsr p0, %[pm]\n\t"
                         "dls lr, %[n]\n"
                         "1:\n\t"
                         "vldrb.8 %q[wv], [%[w]], #16\n\t"
                         "vldrb.8 %q[xv], [%[x]], #16\n\t"
                         "vpste\n\t"
                         "vmladavat.s8 %[a0], %q[xv], %q[wv]\n\t"
                         "vmladavae.s8 %[a1], %q[xv], %q[wv]\n\t"
                         "vldrb.8 %q[wv], [%[w]], #16\n\t"
                         "vldrb.8 %q[xv], [%[x]], #16\n\t"
                         "vpste\n\t"
                         "vmladavat.s8 %[a1], %q[xv], %q[wv]\n\t"
                         "vmladavae.s8 %[a0], %q[xv], %q[wv]\n\t"
                         "le lr, 1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [x] "+r"(x), [w] "+r"(w), [wv] "=&w"(wv), [xv] "=&w"(xv)
                         : [n] "r"(n >> 1), [pm] "r"(0x0F0Fu)
                         : "lr", "memory", "cc");
    a[0] = a0, a[1] = a1, ws[0] = s0, ws[1] = s1;
    return use_off ? n : n & ~1;
}

/* Channel pair (o, o+1) against the dup row: a[0], a[1] = sums, ws[0], ws[1] = weight sums (when use_off). */
OD_MVE_INLINE void pair_dot(const int8_t *dup, const int8_t *nat, const int8_t *wp, int32_t G, int32_t T,
                            int32_t *a, int32_t *ws, int use_off) {
    uint32_t hi_lanes = 0xF0F0u;
    __asm__("" : "+r"(hi_lanes)); /* GCC 12 mis-assembles the constant 0xF0F0 as a predicate (movhi #-3856) */
    const mve_pred16_t LANES_O1 = (mve_pred16_t)hi_lanes;
    a[0] = a[1] = ws[0] = ws[1] = 0;
    int32_t b = G > 1 ? pair_blocks(dup, wp, G >> 1, a, ws, use_off) : 0;
    int32_t a0 = a[0], a1 = a[1], s0 = ws[0], s1 = ws[1];
    if (b < (G >> 1)) { /* the odd full block the two-block loop left */
        const int8x16_t w = vldrbq_s8(wp + 16 * b), x = vldrbq_s8(dup + 16 * b);
        a0 = vmladavaq_p_s8(a0, x, w, LANES_O0);
        a1 = vmladavaq_p_s8(a1, x, w, LANES_O1);
        if (use_off) s0 = vaddvaq_p_s8(s0, w, LANES_O0), s1 = vaddvaq_p_s8(s1, w, LANES_O1);
        ++b;
    }
    if (G & 1) { /* one group left: 8 bytes, the rest loaded as 0 */
        const int8x16_t w = vldrbq_z_s8(wp + 16 * b, 0x00FF), x = vldrbq_z_s8(dup + 16 * b, 0x00FF);
        a0 = vmladavaq_p_s8(a0, x, w, LANES_O0);
        a1 = vmladavaq_p_s8(a1, x, w, LANES_O1);
        if (use_off) s0 = vaddvaq_p_s8(s0, w, LANES_O0), s1 = vaddvaq_p_s8(s1, w, LANES_O1);
    }
    const int8_t *wt = wp + 8 * G, *xt = nat + 4 * G;
    for (int32_t d = 0; d < T; ++d) {
        a0 += wt[d] * xt[d];
        a1 += wt[T + d] * xt[d];
        if (use_off) s0 += wt[d], s1 += wt[T + d];
    }
    a[0] = a0, a[1] = a1, ws[0] = s0, ws[1] = s1;
}

/* The odd last channel: its row is [w0 w2 w1 w3] groups then the natural tail; its x bytes gathered from dup. */
static void odd_dot(const int8_t *dup, const int8_t *nat, const int8_t *wp, int32_t G, int32_t T, int32_t *a,
                    int32_t *ws) {
    const uint8x16_t offs = vldrbq_u8(ODD_OFFS);
    int32_t a0 = 0, s0 = 0;
    for (int32_t k = 0; 4 * k < G; ++k) {
        const mve_pred16_t p = vctp8q((uint32_t)(4 * G - 16 * k));
        const int8x16_t w = vldrbq_z_s8(wp + 16 * k, p), x = vldrbq_gather_offset_z_s8(dup + 32 * k, offs, p);
        a0 = vmladavaq_s8(a0, x, w);
        s0 = vaddvaq_s8(s0, w);
    }
    for (int32_t d = 0; d < T; ++d) a0 += wp[4 * G + d] * nat[4 * G + d], s0 += wp[4 * G + d];
    *a = a0, *ws = s0;
}

OD_MVE_INLINE void conv_pixels(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                               int8_t *dup, int use_off, int fast) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c, nb = (G + 1) >> 1;
    const int32_t pixels = p->batches * p->out_h * p->out_w, out_off = p->output_offset, off = p->input_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    int8_t *nat = dup + 16 * nb;
    const uint8x16_t offs = vldrbq_u8(DUP_OFFS);
    for (int32_t px = 0; px < pixels; ++px) {
        nat_row(p, in, px, nat);
        for (int32_t b = 0; b < nb; ++b) vstrbq_s8(dup + 16 * b, vldrbq_gather_offset_s8(nat + 8 * b, offs));
        int8_t *y = out + px * OC;
        int32_t o = 0, a[4], ws[4];
        for (; fast && o + 4 <= OC; o += 4) { /* two channel pairs, requantized on four lanes */
            pair_dot(dup, nat, filter + o * D, G, T, a, ws, use_off);
            pair_dot(dup, nat, filter + (o + 2) * D, G, T, a + 2, ws + 2, use_off);
            int32x4_t acc = vldrwq_s32(a);
            if (bias) acc = vaddq_s32(acc, vldrwq_s32(bias + o));
            if (use_off) acc = vmlaq_n_s32(acc, vldrwq_s32(ws), off);
            const int32x4_t mv = vldrwq_s32(mult + o), sv1 = vaddq_n_s32(vldrwq_s32(shift + o), 1);
            vstrbq_s32(y + o, rq4_fast(acc, mv, sv1, out_off, lo, hi));
        }
        for (; o + 2 <= OC; o += 2) {
            pair_dot(dup, nat, filter + o * D, G, T, a, ws, use_off);
            for (int k = 0; k < 2; ++k) {
                const int32_t acc = a[k] + (bias ? bias[o + k] : 0) + (use_off ? off * ws[k] : 0);
                y[o + k] = rq(acc, mult[o + k], shift[o + k], out_off, lo, hi, fast);
            }
        }
        if (o < OC) {
            odd_dot(dup, nat, filter + o * D, G, T, a, ws);
            y[o] = rq(a[0] + (bias ? bias[o] : 0) + off * ws[0], mult[o], shift[o], out_off, lo, hi, fast);
        }
    }
}

int od_mve_conv2d_im2col_fits(const od_conv_params_t *p) {
    /* Scratch is 16 * ceil(D / 4) bytes: the dup row takes 16 * ceil(G / 2) <= 8G + 8, the natural row is read up to
     * max(D, 8 * ceil(G / 2)) <= 4G + 4, so 12G + 12 <= 16G from D >= 12; D = 8..11 need 24-27 of 32-48 bytes.
     * Below 8 depths the DSP kernel stays. */
    return p->k_h * p->k_w * p->in_c >= 8;
}

od_status_t od_mve_conv2d_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                 int16_t *scratch) {
    int8_t *dup = (int8_t *)(void *)scratch;
    OD_CHECK(od_mve_conv2d_im2col_fits(p));
    const int use_off = p->input_offset != 0;
    if (use_off && p->requant_fast)
        conv_pixels(p, in, filter, bias, mult, shift, out, dup, 1, 1);
    else if (use_off)
        conv_pixels(p, in, filter, bias, mult, shift, out, dup, 1, 0);
    else if (p->requant_fast)
        conv_pixels(p, in, filter, bias, mult, shift, out, dup, 0, 1);
    else
        conv_pixels(p, in, filter, bias, mult, shift, out, dup, 0, 0);
    return OD_OK;
}
/* Two outputs' dot products against one row (weights [O][D], natural order): one load of x per 16 bytes serves
 * both; with an input offset the weight sums ride along (off * sum(w)). Full blocks unpredicated, tail by VCTP. */
OD_MVE_INLINE void dot2_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t D, int32_t *a,
                           int use_off) {
    int32_t a0 = 0, a1 = 0, s0 = 0, s1 = 0, d = 0;
    for (; d + 16 <= D; d += 16) {
        const int8x16_t xv = vldrbq_s8(x + d), u = vldrbq_s8(w0 + d), v = vldrbq_s8(w1 + d);
        a0 = vmladavaq_s8(a0, xv, u);
        a1 = vmladavaq_s8(a1, xv, v);
        if (use_off) s0 = vaddvaq_s8(s0, u), s1 = vaddvaq_s8(s1, v);
    }
    if (d < D) {
        const mve_pred16_t p = vctp8q((uint32_t)(D - d));
        const int8x16_t xv = vldrbq_z_s8(x + d, p), u = vldrbq_z_s8(w0 + d, p), v = vldrbq_z_s8(w1 + d, p);
        a0 = vmladavaq_s8(a0, xv, u);
        a1 = vmladavaq_s8(a1, xv, v);
        if (use_off) s0 = vaddvaq_s8(s0, u), s1 = vaddvaq_s8(s1, v);
    }
    a[0] = a0, a[1] = a1, a[2] = s0, a[3] = s1;
}

OD_MVE_INLINE void matmul_rows(const int8_t *in, int32_t rows, int32_t D, const int8_t *filter, int32_t O,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                               int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int8_t *out, int use_off,
                               int fast) {
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *x = in + r * D;
        int8_t *y = out + r * O;
        for (int32_t o = 0; o < O; o += 2) {
            const int32_t o1 = o + 1 < O ? o + 1 : o; /* an odd last output is computed twice, written once */
            int32_t a[4];
            dot2_s8(x, filter + o * D, filter + o1 * D, D, a, use_off);
            for (int32_t k = 0; k < 2 && o + k < O; ++k) {
                const int32_t c = per_channel ? o + k : 0;
                const int32_t acc = a[k] + (bias ? bias[o + k] : 0) + (use_off ? in_off * a[2 + k] : 0);
                y[o + k] = rq(acc, mult[c], shift[c], out_off, lo, hi, fast);
            }
        }
    }
}

void od_mve_matmul_rows_s8(const int8_t *in, int32_t rows, int32_t D, const int8_t *filter, int32_t O,
                           const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                           int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int8_t *out, int fast) {
    /* Literal use_off / fast per instantiation, so the unused arithmetic is dropped. */
    if (in_off && fast)
        matmul_rows(in, rows, D, filter, O, bias, mult, shift, per_channel, in_off, out_off, lo, hi, out, 1, 1);
    else if (in_off)
        matmul_rows(in, rows, D, filter, O, bias, mult, shift, per_channel, in_off, out_off, lo, hi, out, 1, 0);
    else if (fast)
        matmul_rows(in, rows, D, filter, O, bias, mult, shift, per_channel, 0, out_off, lo, hi, out, 0, 1);
    else
        matmul_rows(in, rows, D, filter, O, bias, mult, shift, per_channel, 0, out_off, lo, hi, out, 0, 0);
}
/* DEPTHWISE_CONV_2D, multiplier 1, channels c..c+3 of batch b (int32 lanes): per tap one widening load
 * (VLDRB.S32), VMUL by the tap's weights, VADD. Interior windows start from bias + off * sum(taps) (exact); border
 * windows add the offset per valid tap, as TFLM skips the padded ones. Where the code generator proved
 * od_requant_fast exact (requant_fast), the same steps run on the four lanes; otherwise od_mbqm per lane. */
void od_mve_dw_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                      const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, int8_t *dst,
                      int32_t dst_stride) {
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KH = p->k_h, KW = p->k_w, off = p->input_offset;
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max, fast = p->requant_fast;
    int32x4_t w[OD_MVE_DW_MAX_TAPS], sumw = vdupq_n_s32(0);
    for (int32_t t = 0; t < KH * KW; ++t) w[t] = vldrbq_s32(filter + t * C + c), sumw = vaddq_s32(sumw, w[t]);
    const int32x4_t b0 = bias ? vldrwq_s32(bias + c) : vdupq_n_s32(0), inner0 = vmlaq_n_s32(b0, sumw, off);
    const int32x4_t mv = vldrwq_s32(mult + c), sv1 = vaddq_n_s32(vldrwq_s32(shift + c), 1);
    int32_t a[4];
    for (int32_t oy = 0, pix = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        for (int32_t ox = 0; ox < p->out_w; ++ox, ++pix) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            int32x4_t acc;
            if (y0 >= 0 && x0 >= 0 && y0 + KH <= IH && x0 + KW <= IW) {
                acc = inner0;
                const int8_t *row = in + ((b * IH + y0) * IW + x0) * C + c;
                if (KH == 3 && KW == 3) { /* unrolled: each tap a load, a VMUL and a VADD */
                    for (int32_t ky = 0; ky < 3; ++ky, row += IW * C) {
                        acc = vaddq_s32(acc, vmulq_s32(vldrbq_s32(row), w[3 * ky]));
                        acc = vaddq_s32(acc, vmulq_s32(vldrbq_s32(row + C), w[3 * ky + 1]));
                        acc = vaddq_s32(acc, vmulq_s32(vldrbq_s32(row + 2 * C), w[3 * ky + 2]));
                    }
                } else {
                    for (int32_t ky = 0, t = 0; ky < KH; ++ky, row += IW * C)
                        for (int32_t kx = 0; kx < KW; ++kx, ++t)
                            acc = vaddq_s32(acc, vmulq_s32(vldrbq_s32(row + kx * C), w[t]));
                }
            } else {
                acc = b0;
                for (int32_t ky = 0; ky < KH; ++ky) {
                    const int32_t iy = y0 + ky;
                    if (iy < 0 || iy >= IH) continue;
                    for (int32_t kx = 0; kx < KW; ++kx) {
                        const int32_t ix = x0 + kx;
                        if (ix < 0 || ix >= IW) continue;
                        const int32x4_t x = vaddq_n_s32(vldrbq_s32(in + ((b * IH + iy) * IW + ix) * C + c), off);
                        acc = vaddq_s32(acc, vmulq_s32(x, w[ky * KW + kx]));
                    }
                }
            }
            if (fast) {
                vstrbq_s32(dst + pix * dst_stride, rq4_fast(acc, mv, sv1, out_off, lo, hi));
                continue;
            }
            vstrwq_s32(a, acc);
            for (int k = 0; k < 4; ++k)
                dst[pix * dst_stride + k] = rq(a[k], mult[c + k], shift[c + k], out_off, lo, hi, 0);
        }
    }
}

int od_mve_dw_fits(const od_conv_params_t *p) {
    return p->depth_multiplier == 1 && p->in_c == p->out_c && (p->in_c & 3) == 0 && p->dil_h == 1 &&
           p->dil_w == 1 && p->k_h * p->k_w <= OD_MVE_DW_MAX_TAPS;
}
#endif /* OD_MVE */
