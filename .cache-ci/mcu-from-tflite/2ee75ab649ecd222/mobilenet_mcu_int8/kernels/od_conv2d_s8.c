/* od_conv2d_s8.c: CONV_2D int8 reference kernel (TFLite reference_integer_ops::ConvPerChannel semantics). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

od_status_t od_conv2d_s8_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                             const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int8_t *ip = in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c;
                            const int8_t *fp = filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->in_c;
                            for (int32_t ic = 0; ic < p->in_c; ++ic) {
                                acc += (int32_t)fp[ic] * ((int32_t)ip[ic] + p->input_offset);
                            }
                        }
                    }
                    if (bias) acc += bias[oc];
                    acc = od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                        (int8_t)od_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return OD_OK;
}

od_status_t od_conv2d_s8(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int8_t *out) {
#if defined(OD_KERNELS_REFERENCE)
    return od_conv2d_s8_ref(p, in, filter, bias, mult, shift, out);
#else
    return od_conv2d_s8_opt(p, in, filter, bias, mult, shift, out);
#endif
}
