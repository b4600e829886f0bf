/* od_copy_s8.c: data-movement kernels: TRANSPOSE / STRIDED_SLICE (strided copy), CONCATENATION rows, PAD. */
#include <string.h>

#include "od_kernels.h"

od_status_t od_strided_copy_s8(const od_strided_copy_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    const int32_t *s = p->out_shape, *st = p->in_strides;
    int8_t *o = out;
    for (int32_t i0 = 0; i0 < s[0]; ++i0)
        for (int32_t i1 = 0; i1 < s[1]; ++i1)
            for (int32_t i2 = 0; i2 < s[2]; ++i2)
                for (int32_t i3 = 0; i3 < s[3]; ++i3) {
                    const int8_t *x = in + p->base + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
                    if (st[4] == 1) {
                        memcpy(o, x, (size_t)s[4]);
                        o += s[4];
                    } else {
                        for (int32_t i4 = 0; i4 < s[4]; ++i4) *o++ = x[i4 * st[4]];
                    }
                }
    return OD_OK;
}

od_status_t od_copy_rows_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t row_bytes, int32_t out_row_stride) {
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    OD_CHECK(rows >= 0 && row_bytes >= 0 && out_row_stride >= row_bytes);
    for (int32_t r = 0; r < rows; ++r) memcpy(out + r * out_row_stride, in + r * row_bytes, (size_t)row_bytes);
    return OD_OK;
}

od_status_t od_pad_s8(const od_pad_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    const int32_t *is = p->in_shape, *os = p->out_shape, *pb = p->pad_before;
    memset(out, (int8_t)p->pad_value, (size_t)(os[0] * os[1] * os[2] * os[3]));
    for (int32_t a = 0; a < is[0]; ++a)
        for (int32_t b = 0; b < is[1]; ++b)
            for (int32_t c = 0; c < is[2]; ++c) {
                const int8_t *x = in + ((a * is[1] + b) * is[2] + c) * is[3];
                int8_t *y = out + (((a + pb[0]) * os[1] + b + pb[1]) * os[2] + c + pb[2]) * os[3] + pb[3];
                memcpy(y, x, (size_t)is[3]);
            }
    return OD_OK;
}
