/* od_kernels_opt_s8.c: optimised CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED for Cortex-M4/M7 (DSP SMLAD).
 *
 * Same arithmetic as the reference kernels, reordered: 4 bytes per load, int8 pairs widened with SXTB16,
 * two MACs per SMLAD, four output channels per pass so each input word is widened once. Integer sums are exact,
 * so results are bit-identical to the reference; on a CPU without DSP the od_simd.h C twins are used. */
#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

/* acc[k] += sum_d w_k[d] * (x[d] + offset), for 4 filter rows at once. */
static inline void dot4_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3,
                           int32_t n, int32_t offset, int32_t acc[4]) {
    const uint32_t off2 = od_dup16(offset);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t xv = od_read_u32(x + d);
        const uint32_t xa = od_sadd16(od_sxtb16(xv), off2);
        const uint32_t xb = od_sadd16(od_sxtb16_ror8(xv), off2);
        uint32_t wv = od_read_u32(w0 + d);
        a0 = od_smlad(od_sxtb16(wv), xa, a0);
        a0 = od_smlad(od_sxtb16_ror8(wv), xb, a0);
        wv = od_read_u32(w1 + d);
        a1 = od_smlad(od_sxtb16(wv), xa, a1);
        a1 = od_smlad(od_sxtb16_ror8(wv), xb, a1);
        wv = od_read_u32(w2 + d);
        a2 = od_smlad(od_sxtb16(wv), xa, a2);
        a2 = od_smlad(od_sxtb16_ror8(wv), xb, a2);
        wv = od_read_u32(w3 + d);
        a3 = od_smlad(od_sxtb16(wv), xa, a3);
        a3 = od_smlad(od_sxtb16_ror8(wv), xb, a3);
    }
    for (; d < n; ++d) {
        const int32_t xv = (int32_t)x[d] + offset;
        a0 += w0[d] * xv;
        a1 += w1[d] * xv;
        a2 += w2[d] * xv;
        a3 += w3[d] * xv;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static inline int32_t dot1_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t offset, int32_t acc) {
    const uint32_t off2 = od_dup16(offset);
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t xv = od_read_u32(x + d);
        const uint32_t wv = od_read_u32(w + d);
        acc = od_smlad(od_sxtb16(wv), od_sadd16(od_sxtb16(xv), off2), acc);
        acc = od_smlad(od_sxtb16_ror8(wv), od_sadd16(od_sxtb16_ror8(xv), off2), acc);
    }
    for (; d < n; ++d) acc += w[d] * ((int32_t)x[d] + offset);
    return acc;
}

static inline int8_t requant(int32_t acc, const int32_t *bias, int32_t c, int32_t m, int32_t s, int32_t out_off,
                             int32_t lo, int32_t hi) {
    if (bias) acc += bias[c];
    return (int8_t)od_clamp_i32(od_mbqm(acc, m, s) + out_off, lo, hi);
}

od_status_t od_fully_connected_s8_opt(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    if (p->filter_offset != 0) return od_fully_connected_s8_ref(p, in, filter, bias, mult, shift, out);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t D = p->in_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * D;
        int8_t *y = out + b * p->out_depth;
        int32_t o = 0;
        for (; o + 4 <= p->out_depth; o += 4) {
            int32_t acc[4] = {0, 0, 0, 0};
            const int8_t *w = filter + o * D;
            dot4_s8(x, w, w + D, w + 2 * D, w + 3 * D, D, p->input_offset, acc);
            for (int k = 0; k < 4; ++k) {
                const int32_t c = p->per_channel ? o + k : 0;
                y[o + k] = requant(acc[k], bias, o + k, mult[c], shift[c], p->output_offset, p->act_min, p->act_max);
            }
        }
        for (; o < p->out_depth; ++o) {
            const int32_t acc = dot1_s8(x, filter + o * D, D, p->input_offset, 0);
            const int32_t c = p->per_channel ? o : 0;
            y[o] = requant(acc, bias, o, mult[c], shift[c], p->output_offset, p->act_min, p->act_max);
        }
    }
    return OD_OK;
}

od_status_t od_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                             const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t C = p->in_c, KW = p->k_w;
    const int32_t fstride = p->k_h * p->k_w * C; /* one output channel's filter */
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int8_t *y = out + ((b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                int32_t oc = 0;
                for (; oc + 4 <= p->out_c; oc += 4) {
                    int32_t acc[4] = {0, 0, 0, 0};
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < KW; ++kx) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int8_t *ip = in + ((b * p->in_h + iy) * p->in_w + ix) * C;
                            const int8_t *fp = filter + (oc * p->k_h * KW + ky * KW + kx) * C;
                            dot4_s8(ip, fp, fp + fstride, fp + 2 * fstride, fp + 3 * fstride, C, p->input_offset, acc);
                        }
                    }
                    for (int k = 0; k < 4; ++k)
                        y[oc + k] = requant(acc[k], bias, oc + k, mult[oc + k], shift[oc + k], p->output_offset,
                                            p->act_min, p->act_max);
                }
                for (; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < KW; ++kx) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            acc = dot1_s8(in + ((b * p->in_h + iy) * p->in_w + ix) * C,
                                          filter + (oc * p->k_h * KW + ky * KW + kx) * C, C, p->input_offset, acc);
                        }
                    }
                    y[oc] = requant(acc, bias, oc, mult[oc], shift[oc], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
    return OD_OK;
}

od_status_t od_depthwise_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                       int8_t *out) {
    OD_CHECK_PTR(p);
    if (p->depth_multiplier != 1) return od_depthwise_conv2d_s8_ref(p, in, filter, bias, mult, shift, out);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    const int32_t C = p->in_c;
    const uint32_t off2 = od_dup16(p->input_offset);
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int8_t *y = out + ((b * p->out_h + oy) * p->out_w + ox) * C;
                int32_t c = 0;
                /* Four channels per pass: lanes (c, c+2) and (c+1, c+3) after SXTB16. */
                for (; c + 4 <= C; c += 4) {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const uint32_t xv = od_read_u32(in + ((b * p->in_h + iy) * p->in_w + ix) * C + c);
                            const uint32_t fv = od_read_u32(filter + (ky * p->k_w + kx) * C + c);
                            const uint32_t xa = od_sadd16(od_sxtb16(xv), off2);
                            const uint32_t xb = od_sadd16(od_sxtb16_ror8(xv), off2);
                            const uint32_t fa = od_sxtb16(fv), fb = od_sxtb16_ror8(fv);
                            a0 = od_smlabb(xa, fa, a0);
                            a2 = od_smlatt(xa, fa, a2);
                            a1 = od_smlabb(xb, fb, a1);
                            a3 = od_smlatt(xb, fb, a3);
                        }
                    }
                    y[c] = requant(a0, bias, c, mult[c], shift[c], p->output_offset, p->act_min, p->act_max);
                    y[c + 1] = requant(a1, bias, c + 1, mult[c + 1], shift[c + 1], p->output_offset, p->act_min, p->act_max);
                    y[c + 2] = requant(a2, bias, c + 2, mult[c + 2], shift[c + 2], p->output_offset, p->act_min, p->act_max);
                    y[c + 3] = requant(a3, bias, c + 3, mult[c + 3], shift[c + 3], p->output_offset, p->act_min, p->act_max);
                }
                for (; c < C; ++c) {
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            acc += (int32_t)filter[(ky * p->k_w + kx) * C + c] *
                                   ((int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * C + c] + p->input_offset);
                        }
                    }
                    y[c] = requant(acc, bias, c, mult[c], shift[c], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
    return OD_OK;
}
