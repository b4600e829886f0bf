/* od_pool_s8.c: AVERAGE_POOL_2D and MAX_POOL_2D int8 (TFLite reference_integer_ops::AveragePool / MaxPool). */
#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

static inline int32_t avg_round(int32_t acc, int32_t count) {
    /* Round to nearest, half away from zero, as TFLM does. */
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

#if !defined(OD_KERNELS_REFERENCE)
/* Four channels per word (channels % 4 == 0, at most 256 taps): the window sums in two int16x2 lanes,
 * (c0, c2) and (c1, c3), with SXTB16 + SADD16; exact, since |sum| <= 128 * 256 fits int16. */
static od_status_t avg_pool_c4(const od_pool_params_t *p, const int8_t *in, int8_t *out) {
    const int32_t C = p->channels, IH = p->in_h, IW = p->in_w, lo = p->act_min, hi = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b)
        for (int32_t oy = 0; oy < p->out_h; ++oy)
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                const int32_t fy0 = od_max_i32(0, -y0), fy1 = od_min_i32(p->k_h, IH - y0);
                const int32_t fx0 = od_max_i32(0, -x0), fx1 = od_min_i32(p->k_w, IW - x0);
                const int32_t count = od_max_i32(0, fy1 - fy0) * od_max_i32(0, fx1 - fx0);
                if (count == 0) return OD_ERR_BAD_PARAM;
                int8_t *y = out + ((b * p->out_h + oy) * p->out_w + ox) * C;
                for (int32_t c = 0; c < C; c += 4) {
                    uint32_t s02 = 0, s13 = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        const int8_t *x = in + ((b * IH + y0 + fy) * IW + x0 + fx0) * C + c;
                        for (int32_t fx = fx0; fx < fx1; ++fx, x += C) {
                            const uint32_t w = od_read_u32(x);
                            s02 = od_sadd16(s02, od_sxtb16(w));
                            s13 = od_sadd16(s13, od_sxtb16_ror8(w));
                        }
                    }
                    y[c] = (int8_t)od_clamp_i32(avg_round((int16_t)s02, count), lo, hi);
                    y[c + 1] = (int8_t)od_clamp_i32(avg_round((int16_t)s13, count), lo, hi);
                    y[c + 2] = (int8_t)od_clamp_i32(avg_round((int16_t)(s02 >> 16), count), lo, hi);
                    y[c + 3] = (int8_t)od_clamp_i32(avg_round((int16_t)(s13 >> 16), count), lo, hi);
                }
            }
    return OD_OK;
}
#endif

od_status_t od_avg_pool_s8(const od_pool_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
#if !defined(OD_KERNELS_REFERENCE)
    if ((p->channels & 3) == 0 && p->k_h * p->k_w <= 256) return avg_pool_c4(p, in, out);
#endif
    for (int32_t b = 0; b < p->batches; ++b)
        for (int32_t oy = 0; oy < p->out_h; ++oy)
            for (int32_t ox = 0; ox < p->out_w; ++ox)
                for (int32_t c = 0; c < p->channels; ++c) {
                    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                    const int32_t fy0 = od_max_i32(0, -y0), fy1 = od_min_i32(p->k_h, p->in_h - y0);
                    const int32_t fx0 = od_max_i32(0, -x0), fx1 = od_min_i32(p->k_w, p->in_w - x0);
                    int32_t acc = 0, count = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy)
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            acc += in[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c];
                            ++count;
                        }
                    if (count == 0) return OD_ERR_BAD_PARAM;
                    acc = avg_round(acc, count);
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)od_clamp_i32(acc, p->act_min, p->act_max);
                }
    return OD_OK;
}

od_status_t od_max_pool_s8(const od_pool_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    for (int32_t b = 0; b < p->batches; ++b)
        for (int32_t oy = 0; oy < p->out_h; ++oy)
            for (int32_t ox = 0; ox < p->out_w; ++ox)
                for (int32_t c = 0; c < p->channels; ++c) {
                    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                    const int32_t fy0 = od_max_i32(0, -y0), fy1 = od_min_i32(p->k_h, p->in_h - y0);
                    const int32_t fx0 = od_max_i32(0, -x0), fx1 = od_min_i32(p->k_w, p->in_w - x0);
                    int32_t m = -128;
                    for (int32_t fy = fy0; fy < fy1; ++fy)
                        for (int32_t fx = fx0; fx < fx1; ++fx)
                            m = od_max_i32(m, in[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c]);
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)od_clamp_i32(m, p->act_min, p->act_max);
                }
    return OD_OK;
}
