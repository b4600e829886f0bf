/* od_conv_im2col_s8.c: CONV_2D (any kernel size, stride, padding; dilation 1) as im2col + matrix multiply.
 *
 * Two output pixels at a time: their receptive fields are widened once to int16 (input offset added, padded taps
 * written as 0 so they add nothing) into `scratch`, then every pair of output channels is a 2x2 register block
 * of SMLADs over that q15 buffer. The code generator stores each filter row's groups of four weights in the
 * order [w0 w2 w1 w3], so one SXTB16 gives (w0, w1) and one SXTB16 ROR 8 gives (w2, w3), matching the q15 input
 * pairs; a row's last depth % 4 weights keep their order. Integer sums are exact, so the result is bit-identical
 * with the reference kernel. Scratch: od_conv2d_im2col_scratch_bytes(). */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

static inline void od_write_u32(int16_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* dst[i] = src[i] + off for n int8 values, as int16 (dst may be 2-byte aligned only). */
static void widen_q15(const int8_t *src, int16_t *dst, int32_t n, int32_t off) {
    const uint32_t off2 = od_dup16(off);
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        const uint32_t u = od_read_u32(src);
        const uint32_t a = od_sadd16(od_sxtb16(u), off2), b = od_sadd16(od_sxtb16_ror8(u), off2);
        od_write_u32(dst, (a & 0xffffu) | (b << 16));             /* (x0, x1) */
        od_write_u32(dst + 2, (a >> 16) | (b & 0xffff0000u));     /* (x2, x3) */
    }
    for (; n > 0; --n) *dst++ = (int16_t)(*src++ + off);
}

/* One output pixel's receptive field, in filter order (ky, kx, c), into dst[0..KH*KW*C). */
static void im2col_pixel(const od_conv_params_t *p, const int8_t *in, int32_t pix, int16_t *dst) {
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KH = p->k_h, KW = p->k_w;
    const int32_t ox = pix % p->out_w, t = pix / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_min_i32(KW, IW - x0);
    for (int32_t ky = 0; ky < KH; ++ky, dst += KW * C) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= IH || kx1 <= kx0) {
            memset(dst, 0, (size_t)(KW * C) * 2);
            continue;
        }
        if (kx0 > 0) memset(dst, 0, (size_t)(kx0 * C) * 2);
        widen_q15(in + ((b * IH + iy) * IW + x0 + kx0) * C, dst + kx0 * C, (kx1 - kx0) * C, p->input_offset);
        if (kx1 < KW) memset(dst + kx1 * C, 0, (size_t)((KW - kx1) * C) * 2);
    }
}

OD_INLINE int8_t rq(int32_t acc, int32_t m, int32_t s, int32_t out_off, int32_t lo, int32_t hi, int fast) {
    const int32_t v = fast ? od_requant_fast(acc, m, -s) : od_mbqm(acc, m, s);
    return (int8_t)od_clamp_i32(v + out_off, lo, hi);
}

/* Rows x0, x1 (q15, D values, 4-byte aligned) against filter rows w0, w1 (reordered int8). */
OD_INLINE void dot2x2_q15(const int16_t *x0, const int16_t *x1, const int8_t *w0, const int8_t *w1, int32_t G,
                          int32_t T, int32_t *a) {
    int32_t s00 = a[0], s01 = a[1], s10 = a[2], s11 = a[3];
    const uint32_t *p0 = (const uint32_t *)(const void *)x0, *p1 = (const uint32_t *)(const void *)x1;
    for (int32_t g = 0; g < G; ++g, p0 += 2, p1 += 2, w0 += 4, w1 += 4) {
        const uint32_t xa = p0[0], xb = p0[1], ya = p1[0], yb = p1[1];
        uint32_t w = od_read_u32(w0);
        uint32_t wa = od_sxtb16(w), wb = od_sxtb16_ror8(w);
        s00 = od_smlad(wa, xa, s00);
        s00 = od_smlad(wb, xb, s00);
        s10 = od_smlad(wa, ya, s10);
        s10 = od_smlad(wb, yb, s10);
        w = od_read_u32(w1);
        wa = od_sxtb16(w);
        wb = od_sxtb16_ror8(w);
        s01 = od_smlad(wa, xa, s01);
        s01 = od_smlad(wb, xb, s01);
        s11 = od_smlad(wa, ya, s11);
        s11 = od_smlad(wb, yb, s11);
    }
    const int16_t *t0 = (const int16_t *)(const void *)p0, *t1 = (const int16_t *)(const void *)p1;
    for (int32_t d = 0; d < T; ++d) {
        s00 += w0[d] * t0[d];
        s01 += w1[d] * t0[d];
        s10 += w0[d] * t1[d];
        s11 += w1[d] * t1[d];
    }
    a[0] = s00;
    a[1] = s01;
    a[2] = s10;
    a[3] = s11;
}

OD_INLINE void conv_pairs(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch, int fast) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w, out_off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    int16_t *x0 = scratch, *x1 = scratch + ((D + 1) & ~1); /* row 1 4-byte aligned */
    for (int32_t px = 0; px < pixels; px += 2) {
        const int two = px + 1 < pixels;
        im2col_pixel(p, in, px, x0);
        if (two) im2col_pixel(p, in, px + 1, x1);
        const int16_t *r1 = two ? x1 : x0;
        int8_t *y0 = out + px * OC, *y1 = y0 + OC;
        int32_t o = 0;
        for (; o + 2 <= OC; o += 2) {
            int32_t a[4] = {0, 0, 0, 0};
            if (bias) a[0] = a[2] = bias[o], a[1] = a[3] = bias[o + 1];
            dot2x2_q15(x0, r1, filter + o * D, filter + (o + 1) * D, G, T, a);
            const int32_t m0 = mult[o], s0 = shift[o], m1 = mult[o + 1], s1 = shift[o + 1];
            y0[o] = rq(a[0], m0, s0, out_off, lo, hi, fast);
            y0[o + 1] = rq(a[1], m1, s1, out_off, lo, hi, fast);
            if (two) {
                y1[o] = rq(a[2], m0, s0, out_off, lo, hi, fast);
                y1[o + 1] = rq(a[3], m1, s1, out_off, lo, hi, fast);
            }
        }
        if (o < OC) { /* odd channel count: the last channel against itself */
            int32_t a[4] = {0, 0, 0, 0};
            if (bias) a[0] = a[1] = a[2] = a[3] = bias[o];
            dot2x2_q15(x0, r1, filter + o * D, filter + o * D, G, T, a);
            y0[o] = rq(a[0], mult[o], shift[o], out_off, lo, hi, fast);
            if (two) y1[o] = rq(a[2], mult[o], shift[o], out_off, lo, hi, fast);
        }
    }
}

int32_t od_conv2d_im2col_scratch_bytes(int32_t k_h, int32_t k_w, int32_t in_c) {
    return 4 * ((k_h * k_w * in_c + 1) & ~1);
}

/* Reference twin: TFLite's loop over the reordered filter (index d of a row is stored at od_im2col_w_index). */
static inline int32_t od_im2col_w_index(int32_t d, int32_t D) {
    return d < (D & ~3) ? (d & ~3) | ((d & 1) << 1) | ((d & 2) >> 1) : d;
}

od_status_t od_conv2d_s8_im2col_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t D = p->k_h * p->k_w * p->in_c;
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px) {
        const int32_t ox = px % p->out_w, t = px / p->out_w, oy = t % p->out_h, b = t / p->out_h;
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            int32_t acc = 0;
            for (int32_t ky = 0; ky < p->k_h; ++ky) {
                const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                for (int32_t kx = 0; kx < p->k_w; ++kx) {
                    const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                    for (int32_t ic = 0; ic < p->in_c; ++ic) {
                        const int32_t d = (ky * p->k_w + kx) * p->in_c + ic;
                        acc += (int32_t)filter[oc * D + od_im2col_w_index(d, D)] *
                               ((int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic] + p->input_offset);
                    }
                }
            }
            if (bias) acc += bias[oc];
            out[px * p->out_c + oc] =
                (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min, p->act_max);
        }
    }
    return OD_OK;
}

od_status_t od_conv2d_s8_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                int16_t *scratch) {
#if defined(OD_KERNELS_REFERENCE)
    (void)scratch;
    return od_conv2d_s8_im2col_ref(p, in, filter, bias, mult, shift, out);
#endif
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    OD_CHECK_PTR(scratch);
    OD_CHECK(p->dil_h == 1 && p->dil_w == 1 && ((uintptr_t)scratch & 3) == 0);
    if (p->requant_fast)
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 1);
    else
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 0);
    return OD_OK;
}
