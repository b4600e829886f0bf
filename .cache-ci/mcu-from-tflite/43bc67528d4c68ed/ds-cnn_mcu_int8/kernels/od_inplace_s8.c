/* od_inplace_s8.c: in-place DEPTHWISE_CONV_2D and matmul (FULLY_CONNECTED / pointwise CONV_2D), reference
 * variants and dispatch. Same arithmetic as the out-of-place reference kernels; only the memory order differs. */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_kernels.h"

/* One output channel of a depthwise conv (all pixels), reference arithmetic. */
static void dw_channel_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, int32_t c, int8_t *dst, int32_t dst_stride) {
    int32_t k = 0;
    for (int32_t b = 0; b < p->batches; ++b)
        for (int32_t oy = 0; oy < p->out_h; ++oy)
            for (int32_t ox = 0; ox < p->out_w; ++ox, ++k) {
                int32_t acc = 0;
                for (int32_t ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * ky;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * kx;
                        if (ix < 0 || ix >= p->in_w) continue;
                        acc += (int32_t)filter[(ky * p->k_w + kx) * p->out_c + c] *
                               ((int32_t)in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + c] + p->input_offset);
                    }
                }
                if (bias) acc += bias[c];
                acc = od_mbqm(acc, mult[c], shift[c]) + p->output_offset;
                dst[k * dst_stride] = (int8_t)od_clamp_i32(acc, p->act_min, p->act_max);
            }
}

od_status_t od_depthwise_conv2d_s8_inplace_ref(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                               int8_t *tmp) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(tmp);
    OD_CHECK(p->depth_multiplier == 1 && p->in_c == p->out_c && p->out_h * p->out_w <= p->in_h * p->in_w);
    const int32_t pixels = p->batches * p->out_h * p->out_w, C = p->out_c;
    for (int32_t c = 0; c < C; ++c) {
        /* Input channel c is read completely before output channel c overwrites it. */
        dw_channel_ref(p, buf, filter, bias, mult, shift, c, tmp, 1);
        for (int32_t k = 0; k < pixels; ++k) buf[k * C + c] = tmp[k];
    }
    return OD_OK;
}

od_status_t od_matmul_s8_inplace_ref(const od_fc_params_t *p, int8_t *buf, const int8_t *filter,
                                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *tmp) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(tmp);
    OD_CHECK(p->out_depth <= p->in_depth);
    od_fc_params_t row = *p;
    row.batches = 1;
    for (int32_t r = 0; r < p->batches; ++r) {
        /* Row r is read completely before its output lands at or before it. */
        const od_status_t st = od_fully_connected_s8_ref(&row, buf + r * p->in_depth, filter, bias, mult, shift, tmp);
        if (st != OD_OK) return st;
        memcpy(buf + r * p->out_depth, tmp, (size_t)p->out_depth);
    }
    return OD_OK;
}

od_status_t od_depthwise_conv2d_s8_inplace(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                           const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                           int8_t *tmp) {
#if defined(OD_KERNELS_REFERENCE)
    return od_depthwise_conv2d_s8_inplace_ref(p, buf, filter, bias, mult, shift, tmp);
#else
    return od_depthwise_conv2d_s8_inplace_opt(p, buf, filter, bias, mult, shift, tmp);
#endif
}

od_status_t od_matmul_s8_inplace(const od_fc_params_t *p, int8_t *buf, const int8_t *filter, const int32_t *bias,
                                 const int32_t *mult, const int32_t *shift, int8_t *tmp) {
#if defined(OD_KERNELS_REFERENCE)
    return od_matmul_s8_inplace_ref(p, buf, filter, bias, mult, shift, tmp);
#else
    return od_matmul_s8_inplace_opt(p, buf, filter, bias, mult, shift, tmp);
#endif
}
