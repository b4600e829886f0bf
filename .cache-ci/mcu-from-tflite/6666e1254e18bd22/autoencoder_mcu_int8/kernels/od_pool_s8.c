/* od_pool_s8.c: AVERAGE_POOL_2D and MAX_POOL_2D int8 (TFLite reference_integer_ops::AveragePool / MaxPool). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

od_status_t od_avg_pool_s8(const od_pool_params_t *p, const int8_t *in, int8_t *out) {
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
                    int32_t acc = 0, count = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy)
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            acc += in[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c];
                            ++count;
                        }
                    if (count == 0) return OD_ERR_BAD_PARAM;
                    /* Round to nearest, half away from zero, as TFLM does. */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
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
