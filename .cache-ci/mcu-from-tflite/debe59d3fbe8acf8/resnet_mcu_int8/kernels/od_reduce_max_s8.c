/* od_reduce_max_s8.c: REDUCE_MAX int8 over any axes (TFLM compares raw values: input and output share
 * quantization), e.g. a global max pooling. */
#include "od_fixedpoint.h"
#include "od_kernels_ext.h"

od_status_t od_reduce_max_s8(const od_reduce_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    for (int32_t k = 0; k < p->num_outputs; ++k) out[k] = -128;
    const int32_t *s = p->in_shape, *os = p->out_strides;
    for (int32_t i0 = 0; i0 < s[0]; ++i0)
    for (int32_t i1 = 0; i1 < s[1]; ++i1)
    for (int32_t i2 = 0; i2 < s[2]; ++i2)
    for (int32_t i3 = 0; i3 < s[3]; ++i3) {
        int8_t *o = out + i0 * os[0] + i1 * os[1] + i2 * os[2] + i3 * os[3];
        for (int32_t i4 = 0; i4 < s[4]; ++i4) {
            const int8_t v = *in++;
            int8_t *d = o + i4 * os[4];
            if (v > *d) *d = v;
        }
    }
    return OD_OK;
}
