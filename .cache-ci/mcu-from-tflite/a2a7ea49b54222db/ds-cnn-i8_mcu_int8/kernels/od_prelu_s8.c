/* od_prelu_s8.c: PRELU int8 with a broadcast alpha (TFLite reference_ops::BroadcastPrelu4DSlow). */
#include "od_fixedpoint.h"
#include "od_kernels_ext.h"

od_status_t od_prelu_s8(const od_prelu_params_t *p, const int8_t *in, const int8_t *alpha, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(alpha);
    OD_CHECK_PTR(out);
    const int32_t *s = p->out_shape;
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < s[0]; ++i0)
    for (int32_t i1 = 0; i1 < s[1]; ++i1)
    for (int32_t i2 = 0; i2 < s[2]; ++i2)
    for (int32_t i3 = 0; i3 < s[3]; ++i3) {
        const int32_t xi = i0 * p->in_strides[0] + i1 * p->in_strides[1] + i2 * p->in_strides[2] + i3 * p->in_strides[3];
        const int32_t ai = i0 * p->alpha_strides[0] + i1 * p->alpha_strides[1] + i2 * p->alpha_strides[2] +
                           i3 * p->alpha_strides[3];
        for (int32_t i4 = 0; i4 < s[4]; ++i4) {
            const int32_t x = p->input_offset + in[xi + i4 * p->in_strides[4]];
            int32_t y;
            if (x >= 0) {
                y = od_mbqm(x, p->mult1, p->shift1);
            } else {
                const int32_t a = p->alpha_offset + alpha[ai + i4 * p->alpha_strides[4]];
                y = od_mbqm(x * a, p->mult2, p->shift2);
            }
            out[o++] = (int8_t)od_clamp_i32(y + p->output_offset, -128, 127);
        }
    }
    return OD_OK;
}
