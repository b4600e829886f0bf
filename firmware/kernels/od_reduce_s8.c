/* od_reduce_s8.c: MEAN and SUM int8 over any set of axes (TFLM reduce, integer path: one requantization of the offset sum). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

od_status_t od_reduce_s8(const od_reduce_params_t *p, const int8_t *in, int32_t *scratch, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(scratch);
    OD_CHECK_PTR(out);
    OD_CHECK(p->num_reduced > 0);
    for (int32_t i = 0; i < p->num_outputs; ++i) scratch[i] = 0;
    const int32_t *s = p->in_shape;
    const int32_t *os = p->out_strides;
    const int8_t *x = in;
    for (int32_t i0 = 0; i0 < s[0]; ++i0)
        for (int32_t i1 = 0; i1 < s[1]; ++i1)
            for (int32_t i2 = 0; i2 < s[2]; ++i2)
                for (int32_t i3 = 0; i3 < s[3]; ++i3) {
                    int32_t *acc = scratch + i0 * os[0] + i1 * os[1] + i2 * os[2] + i3 * os[3];
                    for (int32_t i4 = 0; i4 < s[4]; ++i4) acc[i4 * os[4]] += *x++;
                }
    const int32_t n = p->num_reduced;
    for (int32_t i = 0; i < p->num_outputs; ++i) {
        int32_t v = scratch[i] - p->in_zp * n;
        /* For MEAN the 1/n is folded into mult/shift at code-generation time, as TFLM does. */
        v = od_mbqm(v, p->mult, p->shift);
        out[i] = (int8_t)od_clamp_i32(v + p->out_zp, -128, 127);
    }
    return OD_OK;
}
