/* od_transpose_conv_s8.c: TRANSPOSE_CONV int8 (TFLite reference_integer_ops::TransposeConv), written as a gather
 * so it needs no int32 scratch the size of the output. */
#include "od_fixedpoint.h"
#include "od_kernels_ext.h"

od_status_t od_transpose_conv_s8(const od_transpose_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(mult);
    OD_CHECK_PTR(shift);
    OD_CHECK_PTR(out);
    OD_CHECK(p->stride_h > 0 && p->stride_w > 0);
    const int32_t ic_n = p->in_c;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *img = in + b * p->in_h * p->in_w * ic_n;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t ny = oy + p->pad_h - ky; /* = iy * stride_h for a tap from input row iy */
                        if (ny < 0 || ny % p->stride_h) continue;
                        const int32_t iy = ny / p->stride_h;
                        if (iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t nx = ox + p->pad_w - kx;
                            if (nx < 0 || nx % p->stride_w) continue;
                            const int32_t ix = nx / p->stride_w;
                            if (ix >= p->in_w) continue;
                            const int8_t *x = img + (iy * p->in_w + ix) * ic_n;
                            const int8_t *w = filter + ((oc * p->k_h + ky) * p->k_w + kx) * ic_n;
                            for (int32_t ic = 0; ic < ic_n; ++ic) acc += ((int32_t)x[ic] + p->input_offset) * w[ic];
                        }
                    }
                    if (bias) acc += bias[oc];
                    const int32_t y = od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
                    *out++ = (int8_t)od_clamp_i32(y, p->act_min, p->act_max);
                }
            }
        }
    }
    return OD_OK;
}
