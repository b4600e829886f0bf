/* od_kernels_opt_s8.c: optimised CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED for Cortex-M4/M7 (DSP SMLAD).
 *
 * Same arithmetic as the reference kernels, reordered: 4 bytes per load, int8 pairs widened with SXTB16,
 * two MACs per SMLAD, several output channels per pass so each input word is widened once, loop bounds hoisted
 * out of the tap loops. Integer sums are exact, so results are bit-identical to the reference; on a CPU without
 * DSP the od_simd.h C twins are used. Parameters are copied to locals: int8 stores may alias the struct. */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_mve_s8.h"
#include "od_simd.h"

static void dw_block4_s8(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int32_t c, int8_t *dst, int32_t dst_stride);

/* Depth-multiplier path: windows up to this many taps are gathered on the stack (4 + 4 bytes per tap). */
#define OD_DW_MAX_TAPS 48


/* Two rows x (input offset) against two filter rows: a[r][k] += sum_d w_k[d] * (x_r[d] + off). */
/* use_off is a literal at every call site, so the compiler drops the SADD16s when the code generator has
 * folded the input offset into the bias. */
#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

/* fast is a literal on the hot paths: the code generator set requant_fast after proving od_requant_fast exact. */
OD_INLINE int8_t requant(int32_t acc, const int32_t *bias, int32_t c, int32_t m, int32_t s, int32_t out_off,
                         int32_t lo, int32_t hi, int fast) {
    if (bias) acc += bias[c];
    const int32_t v = fast ? od_requant_fast(acc, m, s, out_off) : od_mbqm(acc, m, s) + out_off;
    return (int8_t)od_clamp_i32(v, lo, hi);
}

OD_INLINE void dot2x2_s8(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1, int32_t n,
                         uint32_t off2, int32_t off, int use_off, int32_t *a00, int32_t *a01, int32_t *a10,
                         int32_t *a11) {
    int32_t s00 = *a00, s01 = *a01, s10 = *a10, s11 = *a11;
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t u0 = od_read_u32(x0 + d), u1 = od_read_u32(x1 + d);
        uint32_t p0a = od_sxtb16(u0), p0b = od_sxtb16_ror8(u0);
        uint32_t p1a = od_sxtb16(u1), p1b = od_sxtb16_ror8(u1);
        if (use_off) {
            p0a = od_sadd16(p0a, off2);
            p0b = od_sadd16(p0b, off2);
            p1a = od_sadd16(p1a, off2);
            p1b = od_sadd16(p1b, off2);
        }
        uint32_t wv = od_read_u32(w0 + d);
        uint32_t wa = od_sxtb16(wv), wb = od_sxtb16_ror8(wv);
        s00 = od_smlad(wa, p0a, s00);
        s00 = od_smlad(wb, p0b, s00);
        s10 = od_smlad(wa, p1a, s10);
        s10 = od_smlad(wb, p1b, s10);
        wv = od_read_u32(w1 + d);
        wa = od_sxtb16(wv);
        wb = od_sxtb16_ror8(wv);
        s01 = od_smlad(wa, p0a, s01);
        s01 = od_smlad(wb, p0b, s01);
        s11 = od_smlad(wa, p1a, s11);
        s11 = od_smlad(wb, p1b, s11);
    }
    for (; d < n; ++d) {
        const int32_t v0 = x0[d] + off, v1 = x1[d] + off;
        s00 += w0[d] * v0;
        s01 += w1[d] * v0;
        s10 += w0[d] * v1;
        s11 += w1[d] * v1;
    }
    *a00 = s00;
    *a01 = s01;
    *a10 = s10;
    *a11 = s11;
}

/* One row against two filter rows (with the input offset): *a0 += w0 . (x + off), *a1 += w1 . (x + off). */
OD_INLINE void dot1x2_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, uint32_t off2, int32_t off,
                         int32_t *a0, int32_t *a1) {
    int32_t s0 = *a0, s1 = *a1;
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t u = od_read_u32(x + d);
        const uint32_t xa = od_sadd16(od_sxtb16(u), off2), xb = od_sadd16(od_sxtb16_ror8(u), off2);
        uint32_t wv = od_read_u32(w0 + d);
        s0 = od_smlad(od_sxtb16(wv), xa, s0);
        s0 = od_smlad(od_sxtb16_ror8(wv), xb, s0);
        wv = od_read_u32(w1 + d);
        s1 = od_smlad(od_sxtb16(wv), xa, s1);
        s1 = od_smlad(od_sxtb16_ror8(wv), xb, s1);
    }
    for (; d < n; ++d) {
        const int32_t v = x[d] + off;
        s0 += w0[d] * v;
        s1 += w1[d] * v;
    }
    *a0 = s0;
    *a1 = s1;
}

static inline int32_t dot1_s8(const int8_t *x, const int8_t *w, int32_t n, uint32_t off2, int32_t off, int32_t acc) {
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t xv = od_read_u32(x + d);
        const uint32_t wv = od_read_u32(w + d);
        acc = od_smlad(od_sxtb16(wv), od_sadd16(od_sxtb16(xv), off2), acc);
        acc = od_smlad(od_sxtb16_ror8(wv), od_sadd16(od_sxtb16_ror8(xv), off2), acc);
    }
    for (; d < n; ++d) acc += w[d] * ((int32_t)x[d] + off);
    return acc;
}

/* rows x [D] times [O x D]^T, two rows and two output channels per pass (a matrix multiply). */
OD_INLINE void matmul_rows_impl(const int8_t *in, int32_t rows, int32_t D, const int8_t *filter, int32_t O,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                                int32_t in_off, int use_off, int32_t out_off, int32_t lo, int32_t hi, int8_t *out,
                                int fast) {
    const uint32_t off2 = od_dup16(in_off);
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const int8_t *x0 = in + r * D, *x1 = x0 + D;
        int8_t *y0 = out + r * O, *y1 = y0 + O;
        int32_t o = 0;
        for (; o + 2 <= O; o += 2) {
            int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
            dot2x2_s8(x0, x1, filter + o * D, filter + (o + 1) * D, D, off2, in_off, use_off, &a00, &a01, &a10,
                      &a11);
            const int32_t c0 = per_channel ? o : 0, c1 = per_channel ? o + 1 : 0;
            y0[o] = requant(a00, bias, o, mult[c0], shift[c0], out_off, lo, hi, fast);
            y0[o + 1] = requant(a01, bias, o + 1, mult[c1], shift[c1], out_off, lo, hi, fast);
            y1[o] = requant(a10, bias, o, mult[c0], shift[c0], out_off, lo, hi, fast);
            y1[o + 1] = requant(a11, bias, o + 1, mult[c1], shift[c1], out_off, lo, hi, fast);
        }
        for (; o < O; ++o) {
            const int32_t c = per_channel ? o : 0;
            y0[o] = requant(dot1_s8(x0, filter + o * D, D, off2, in_off, 0), bias, o, mult[c], shift[c], out_off, lo, hi, fast);
            y1[o] = requant(dot1_s8(x1, filter + o * D, D, off2, in_off, 0), bias, o, mult[c], shift[c], out_off, lo, hi, fast);
        }
    }
    for (; r < rows; ++r) {
        const int8_t *x = in + r * D;
        for (int32_t o = 0; o < O; ++o) {
            const int32_t c = per_channel ? o : 0;
            out[r * O + o] = requant(dot1_s8(x, filter + o * D, D, off2, in_off, 0), bias, o, mult[c], shift[c],
                                     out_off, lo, hi, fast);
        }
    }
}

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(OD_SIMD_PORTABLE)
#define OD_HAVE_MVE 1

#else
#define OD_HAVE_MVE 0
#endif

static void matmul_rows_s8(const int8_t *in, int32_t rows, int32_t D, const int8_t *filter, int32_t O,
                           const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                           int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int8_t *out, int fast) {
#if OD_HAVE_MVE
    od_mve_matmul_rows_s8(in, rows, D, filter, O, bias, mult, shift, per_channel, in_off, out_off, lo, hi, out, fast);
    return;
#endif
    /* Literal use_off / fast per instantiation: the compiler drops the unused arithmetic. */
    if (in_off == 0 && fast)
        matmul_rows_impl(in, rows, D, filter, O, bias, mult, shift, per_channel, 0, 0, out_off, lo, hi, out, 1);
    else if (in_off == 0)
        matmul_rows_impl(in, rows, D, filter, O, bias, mult, shift, per_channel, 0, 0, out_off, lo, hi, out, 0);
    else if (fast)
        matmul_rows_impl(in, rows, D, filter, O, bias, mult, shift, per_channel, in_off, 1, out_off, lo, hi, out, 1);
    else
        matmul_rows_impl(in, rows, D, filter, O, bias, mult, shift, per_channel, in_off, 1, out_off, lo, hi, out, 0);
}

od_status_t od_fully_connected_s8_opt(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    if (p->filter_offset != 0) return od_fully_connected_s8_ref(p, in, filter, bias, mult, shift, out);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    matmul_rows_s8(in, p->batches, p->in_depth, filter, p->out_depth, bias, mult, shift, p->per_channel,
                   p->input_offset, p->output_offset, p->act_min, p->act_max, out, p->requant_fast);
    return OD_OK;
}

/* Any kernel size and stride: one contiguous run of (kx1 - kx0) * C bytes per filter row, two channels a pass. */
OD_INLINE void conv_generic(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            const int32_t *mult, const int32_t *shift, int8_t *out, int fast) {
    const int32_t N = p->batches, IH = p->in_h, IW = p->in_w, C = p->in_c, OH = p->out_h, OW = p->out_w;
    const int32_t OC = p->out_c, KH = p->k_h, KW = p->k_w, SH = p->stride_h, SW = p->stride_w;
    const int32_t PH = p->pad_h, PW = p->pad_w, in_off = p->input_offset, out_off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    const uint32_t off2 = od_dup16(in_off);
    const int32_t fstride = KH * KW * C; /* one output channel's filter */
    for (int32_t b = 0; b < N; ++b) {
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t y0 = oy * SH - PH;
            const int32_t ky0 = od_max_i32(0, -y0), ky1 = od_min_i32(KH, IH - y0);
            for (int32_t ox = 0; ox < OW; ++ox) {
                const int32_t x0 = ox * SW - PW;
                const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_min_i32(KW, IW - x0);
                const int32_t ibase = ((b * IH + y0) * IW + x0) * C;
                int8_t *y = out + ((b * OH + oy) * OW + ox) * OC;
                int32_t oc = 0;
                for (; oc + 2 <= OC; oc += 2) {
                    int32_t a0 = 0, a1 = 0;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        /* One contiguous run per filter row: kx0..kx1 pixels of C channels. */
                        const int8_t *ip = in + ibase + (ky * IW + kx0) * C;
                        const int8_t *fp = filter + oc * fstride + (ky * KW + kx0) * C;
                        const int32_t run = (kx1 - kx0) * C;
                        dot1x2_s8(ip, fp, fp + fstride, run, off2, in_off, &a0, &a1);
                    }
                    y[oc] = requant(a0, bias, oc, mult[oc], shift[oc], out_off, lo, hi, fast);
                    y[oc + 1] = requant(a1, bias, oc + 1, mult[oc + 1], shift[oc + 1], out_off, lo, hi, fast);
                }
                for (; oc < OC; ++oc) {
                    int32_t acc = 0;
                    for (int32_t ky = ky0; ky < ky1; ++ky)
                        acc = dot1_s8(in + ibase + (ky * IW + kx0) * C, filter + oc * fstride + (ky * KW + kx0) * C,
                                      (kx1 - kx0) * C, off2, in_off, acc);
                    y[oc] = requant(acc, bias, oc, mult[oc], shift[oc], out_off, lo, hi, fast);
                }
            }
        }
    }
}

od_status_t od_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                             const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t N = p->batches, IH = p->in_h, IW = p->in_w, C = p->in_c, OH = p->out_h, OW = p->out_w;
    const int32_t OC = p->out_c, KH = p->k_h, KW = p->k_w, SH = p->stride_h, SW = p->stride_w;
    const int32_t PH = p->pad_h, PW = p->pad_w, in_off = p->input_offset, out_off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    if (p->dil_h != 1 || p->dil_w != 1) return od_conv2d_s8_ref(p, in, filter, bias, mult, shift, out);
    if (KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0 && IH == OH && IW == OW) {
        /* Pointwise: every pixel is a row of a matrix multiply. */
        matmul_rows_s8(in, N * OH * OW, C, filter, OC, bias, mult, shift, 1, in_off, out_off, lo, hi, out,
                       p->requant_fast);
        return OD_OK;
    }
    if (p->requant_fast)
        conv_generic(p, in, filter, bias, mult, shift, out, 1);
    else
        conv_generic(p, in, filter, bias, mult, shift, out, 0);
    return OD_OK;
}

od_status_t od_depthwise_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                       int8_t *out) {
    OD_CHECK_PTR(p);
    if (p->dil_h != 1 || p->dil_w != 1) return od_depthwise_conv2d_s8_ref(p, in, filter, bias, mult, shift, out);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t N = p->batches, IH = p->in_h, IW = p->in_w, IC = p->in_c, OH = p->out_h, OW = p->out_w;
    const int32_t OC = p->out_c, KH = p->k_h, KW = p->k_w, SH = p->stride_h, SW = p->stride_w;
    const int32_t PH = p->pad_h, PW = p->pad_w, DM = p->depth_multiplier;
    const int32_t in_off = p->input_offset, out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int fast = p->requant_fast;
    OD_CHECK(OC == IC * DM);
    if (DM == 1) {
        /* Channel blocks outer, pixels inner: each block's taps are widened once. */
        int32_t c = 0;
        for (; c + 4 <= IC; c += 4) dw_block4_s8(p, in, filter, bias, mult, shift, c, out + c, OC);
        for (; c < IC; ++c) {
            for (int32_t b = 0; b < N; ++b)
                for (int32_t oy = 0; oy < OH; ++oy) {
                    const int32_t y0 = oy * SH - PH;
                    const int32_t ky0 = od_max_i32(0, -y0), ky1 = od_min_i32(KH, IH - y0);
                    for (int32_t ox = 0; ox < OW; ++ox) {
                        const int32_t x0 = ox * SW - PW;
                        const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_min_i32(KW, IW - x0);
                        const int32_t ibase = ((b * IH + y0) * IW + x0) * IC;
                        int32_t acc = 0;
                        for (int32_t ky = ky0; ky < ky1; ++ky)
                            for (int32_t kx = kx0; kx < kx1; ++kx)
                                acc += (int32_t)filter[(ky * KW + kx) * OC + c] *
                                       ((int32_t)in[ibase + (ky * IW + kx) * IC + c] + in_off);
                        out[((b * OH + oy) * OW + ox) * OC + c] =
                            requant(acc, bias, c, mult[c], shift[c], out_off, lo, hi, fast);
                    }
                }
        }
        return OD_OK;
    }
    for (int32_t b = 0; b < N; ++b) {
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t y0 = oy * SH - PH;
            const int32_t ky0 = od_max_i32(0, -y0), ky1 = od_min_i32(KH, IH - y0);
            for (int32_t ox = 0; ox < OW; ++ox) {
                const int32_t x0 = ox * SW - PW;
                const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_min_i32(KW, IW - x0);
                const int32_t ibase = ((b * IH + y0) * IW + x0) * IC;
                int8_t *y = out + ((b * OH + oy) * OW + ox) * OC;
                {
                    /* Depth multiplier > 1 (e.g. a first layer on a 1-channel input): one input value feeds DM
                     * consecutive output channels; four of them per pass with the value in both lanes. */
                    for (int32_t ic = 0; ic < IC; ++ic) {
                        int32_t m = 0;
                        /* The window's (x + off) values, in both lanes, gathered once and reused by every
                         * block of four output channels; taps[] holds their filter offsets. */
                        uint32_t xd[OD_DW_MAX_TAPS];
                        int32_t taps[OD_DW_MAX_TAPS];
                        int32_t nt = 0;
                        const int gathered = (ky1 - ky0) * (kx1 - kx0) <= OD_DW_MAX_TAPS;
                        if (gathered) {
                            for (int32_t ky = ky0; ky < ky1; ++ky)
                                for (int32_t kx = kx0; kx < kx1; ++kx, ++nt) {
                                    xd[nt] = od_dup16((int32_t)in[ibase + (ky * IW + kx) * IC + ic] + in_off);
                                    taps[nt] = (ky * KW + kx) * OC;
                                }
                        }
                        for (; gathered && m + 4 <= DM; m += 4) {
                            const int32_t oc = ic * DM + m;
                            const int8_t *fbase = filter + oc;
                            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                            for (int32_t t = 0; t < nt; ++t) {
                                const uint32_t xx = xd[t];
                                const uint32_t fv = od_read_u32(fbase + taps[t]);
                                const uint32_t fa = od_sxtb16(fv), fb = od_sxtb16_ror8(fv);
                                a0 = od_smlabb(xx, fa, a0);
                                a2 = od_smlatt(xx, fa, a2);
                                a1 = od_smlabb(xx, fb, a1);
                                a3 = od_smlatt(xx, fb, a3);
                            }
                            y[oc] = requant(a0, bias, oc, mult[oc], shift[oc], out_off, lo, hi, fast);
                            y[oc + 1] = requant(a1, bias, oc + 1, mult[oc + 1], shift[oc + 1], out_off, lo, hi, fast);
                            y[oc + 2] = requant(a2, bias, oc + 2, mult[oc + 2], shift[oc + 2], out_off, lo, hi, fast);
                            y[oc + 3] = requant(a3, bias, oc + 3, mult[oc + 3], shift[oc + 3], out_off, lo, hi, fast);
                        }
                        for (; m < DM; ++m) {
                            const int32_t oc = ic * DM + m;
                            int32_t acc = 0;
                            for (int32_t ky = ky0; ky < ky1; ++ky)
                                for (int32_t kx = kx0; kx < kx1; ++kx)
                                    acc += (int32_t)filter[(ky * KW + kx) * OC + oc] *
                                           ((int32_t)in[ibase + (ky * IW + kx) * IC + ic] + in_off);
                            y[oc] = requant(acc, bias, oc, mult[oc], shift[oc], out_off, lo, hi, fast);
                        }
                    }
                }
            }
        }
    }
    return OD_OK;
}

/* Four depthwise output channels (c..c+3, depth multiplier 1) for every pixel, into dst[pixel * dst_stride + k].
 * Interior pixels of a 3x3 filter take an unrolled path: the block's filter taps are widened once (18 words),
 * and the input offset is added once per channel as off * sum(taps), which is exact for an all-inside window. */
OD_INLINE void dw_block4_impl(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                              const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t c, int8_t *dst,
                              int32_t dst_stride, int fast) {
    const int32_t N = p->batches, IH = p->in_h, IW = p->in_w, C = p->in_c, OH = p->out_h, OW = p->out_w;
    const int32_t KH = p->k_h, KW = p->k_w, SH = p->stride_h, SW = p->stride_w, PH = p->pad_h, PW = p->pad_w;
    const int32_t in_off = p->input_offset, out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t off2 = od_dup16(in_off);
    const int32_t m0 = mult[c], m1 = mult[c + 1], m2 = mult[c + 2], m3 = mult[c + 3];
    const int32_t s0 = shift[c], s1 = shift[c + 1], s2 = shift[c + 2], s3 = shift[c + 3];
    const int is3x3 = KH == 3 && KW == 3;
    uint32_t fw[18];
    int32_t w0 = 0, w1 = 0, w2 = 0, w3 = 0; /* off * sum of the 9 taps, per channel */
    if (is3x3) {
        for (int t = 0; t < 9; ++t) {
            const uint32_t fv = od_read_u32(filter + t * C + c);
            fw[2 * t] = od_sxtb16(fv);
            fw[2 * t + 1] = od_sxtb16_ror8(fv);
            w0 += filter[t * C + c];
            w1 += filter[t * C + c + 1];
            w2 += filter[t * C + c + 2];
            w3 += filter[t * C + c + 3];
        }
        w0 *= in_off;
        w1 *= in_off;
        w2 *= in_off;
        w3 *= in_off;
    }
    for (int32_t b = 0; b < N; ++b)
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t y0 = oy * SH - PH;
            const int32_t ky0 = od_max_i32(0, -y0), ky1 = od_min_i32(KH, IH - y0);
            for (int32_t ox = 0; ox < OW; ++ox, dst += dst_stride) {
                const int32_t x0 = ox * SW - PW;
                const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_min_i32(KW, IW - x0);
                const int32_t ibase = ((b * IH + y0) * IW + x0) * C + c;
                int32_t a0, a1, a2, a3;
                if (is3x3 && ky0 == 0 && kx0 == 0 && ky1 == 3 && kx1 == 3) {
                    a0 = w0;
                    a1 = w1;
                    a2 = w2;
                    a3 = w3;
                    const int8_t *row = in + ibase;
                    const uint32_t *f = fw;
                    for (int ky = 0; ky < 3; ++ky, row += IW * C) {
#define OD_DW_TAP(ptr)                                           \
    do {                                                         \
        const uint32_t xv = od_read_u32(ptr);                    \
        const uint32_t xa = od_sxtb16(xv), xb = od_sxtb16_ror8(xv); \
        a0 = od_smlabb(xa, f[0], a0);                            \
        a2 = od_smlatt(xa, f[0], a2);                            \
        a1 = od_smlabb(xb, f[1], a1);                            \
        a3 = od_smlatt(xb, f[1], a3);                            \
        f += 2;                                                  \
    } while (0)
                        OD_DW_TAP(row);
                        OD_DW_TAP(row + C);
                        OD_DW_TAP(row + 2 * C);
#undef OD_DW_TAP
                    }
                } else {
                    a0 = a1 = a2 = a3 = 0;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ibase + (ky * IW + kx0) * C;
                        const int8_t *fp = filter + (ky * KW + kx0) * C + c;
                        for (int32_t kx = kx0; kx < kx1; ++kx, ip += C, fp += C) {
                            const uint32_t xv = od_read_u32(ip), fv = od_read_u32(fp);
                            const uint32_t xa = od_sadd16(od_sxtb16(xv), off2);
                            const uint32_t xb = od_sadd16(od_sxtb16_ror8(xv), off2);
                            const uint32_t fa = od_sxtb16(fv), fb = od_sxtb16_ror8(fv);
                            a0 = od_smlabb(xa, fa, a0);
                            a2 = od_smlatt(xa, fa, a2);
                            a1 = od_smlabb(xb, fb, a1);
                            a3 = od_smlatt(xb, fb, a3);
                        }
                    }
                }
                dst[0] = requant(a0, bias, c, m0, s0, out_off, lo, hi, fast);
                dst[1] = requant(a1, bias, c + 1, m1, s1, out_off, lo, hi, fast);
                dst[2] = requant(a2, bias, c + 2, m2, s2, out_off, lo, hi, fast);
                dst[3] = requant(a3, bias, c + 3, m3, s3, out_off, lo, hi, fast);
            }
        }
}

static void dw_block4_s8(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int32_t c, int8_t *dst, int32_t dst_stride) {
    if (p->requant_fast)
        dw_block4_impl(p, in, filter, bias, mult, shift, c, dst, dst_stride, 1);
    else
        dw_block4_impl(p, in, filter, bias, mult, shift, c, dst, dst_stride, 0);
}

od_status_t od_depthwise_conv2d_s8_inplace_opt(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                               int8_t *tmp) {
    OD_CHECK_PTR(p);
    if (p->dil_h != 1 || p->dil_w != 1 || (p->in_c & 3))
        return od_depthwise_conv2d_s8_inplace_ref(p, buf, filter, bias, mult, shift, tmp);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(tmp);
    OD_CHECK(p->depth_multiplier == 1 && p->in_c == p->out_c && p->out_h * p->out_w <= p->in_h * p->in_w);
    const int32_t pixels = p->batches * p->out_h * p->out_w, C = p->out_c;
    for (int32_t c = 0; c < C; c += 4) {
        /* Input channels c..c+3 are read completely before the outputs overwrite them. */
        dw_block4_s8(p, buf, filter, bias, mult, shift, c, tmp, 4);
        for (int32_t k = 0; k < pixels; ++k) memcpy(buf + k * C + c, tmp + 4 * k, 4);
    }
    return OD_OK;
}

od_status_t od_matmul_s8_inplace_opt(const od_fc_params_t *p, int8_t *buf, const int8_t *filter,
                                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *tmp) {
    OD_CHECK_PTR(p);
    if (p->filter_offset != 0) return od_matmul_s8_inplace_ref(p, buf, filter, bias, mult, shift, tmp);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(tmp);
    OD_CHECK(p->out_depth <= p->in_depth);
    const int32_t D = p->in_depth, O = p->out_depth;
    for (int32_t r = 0; r < p->batches; r += 2) {
        const int32_t n = p->batches - r >= 2 ? 2 : 1;
        /* Rows r, r+1 are read completely before their outputs land at or before them. */
        matmul_rows_s8(buf + r * D, n, D, filter, O, bias, mult, shift, p->per_channel, p->input_offset,
                       p->output_offset, p->act_min, p->act_max, tmp, p->requant_fast);
        memcpy(buf + r * O, tmp, (size_t)(n * O));
    }
    return OD_OK;
}
