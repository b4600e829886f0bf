/* od_reduce_s8.c: MEAN and SUM int8 over any set of axes (TFLM reduce, integer path: one requantization of the offset sum). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

od_status_t od_reduce_s8(const od_reduce_params_t *p, const int8_t *in, int32_t *scratch, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(scratch);
    OD_CHECK_PTR(out);
    OD_CHECK(p->num_reduced > 0);
    /* Locals: the int32 scratch stores could alias the parameter struct. */
    int32_t s[OD_MAX_DIMS], os[OD_MAX_DIMS];
    for (int d = 0; d < OD_MAX_DIMS; ++d) {
        s[d] = p->in_shape[d];
        os[d] = p->out_strides[d];
    }
    const int32_t num_out = p->num_outputs, n = p->num_reduced;
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, mult = p->mult, shift = p->shift;
    for (int32_t i = 0; i < num_out; ++i) scratch[i] = 0;
    const int8_t *x = in;
    for (int32_t i0 = 0; i0 < s[0]; ++i0)
        for (int32_t i1 = 0; i1 < s[1]; ++i1)
            for (int32_t i2 = 0; i2 < s[2]; ++i2)
                for (int32_t i3 = 0; i3 < s[3]; ++i3) {
                    int32_t *acc = scratch + i0 * os[0] + i1 * os[1] + i2 * os[2] + i3 * os[3];
                    const int32_t n4 = s[4], st = os[4];
                    if (st == 1) { /* innermost dim kept (e.g. channels of a spatial mean) */
                        for (int32_t i4 = 0; i4 < n4; ++i4) acc[i4] += x[i4];
                    } else if (st == 0) { /* innermost dim reduced */
                        int32_t sum = 0;
                        for (int32_t i4 = 0; i4 < n4; ++i4) sum += x[i4];
                        acc[0] += sum;
                    } else {
                        for (int32_t i4 = 0; i4 < n4; ++i4) acc[i4 * st] += x[i4];
                    }
                    x += n4;
                }
    for (int32_t i = 0; i < num_out; ++i) {
        int32_t v = scratch[i] - in_zp * n;
        /* For MEAN the 1/n is folded into mult/shift at code-generation time, as TFLM does. */
        v = od_mbqm(v, mult, shift);
        out[i] = (int8_t)od_clamp_i32(v + out_zp, -128, 127);
    }
    return OD_OK;
}
