/* od_elementwise_s8.c: ADD and MUL int8 with broadcasting (TFLite reference_integer_ops::Add / Mul). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

static inline int32_t add_one(const od_binary_params_t *p, int32_t a, int32_t b) {
    const int32_t x1 = (a + p->in1_offset) * (1 << p->left_shift);
    const int32_t x2 = (b + p->in2_offset) * (1 << p->left_shift);
    const int32_t s1 = od_mbqm(x1, p->in1_mult, p->in1_shift);
    const int32_t s2 = od_mbqm(x2, p->in2_mult, p->in2_shift);
    const int32_t raw = od_mbqm(s1 + s2, p->out_mult, p->out_shift) + p->out_offset;
    return od_clamp_i32(raw, p->act_min, p->act_max);
}

static inline int32_t mul_one(const od_binary_params_t *p, int32_t a, int32_t b) {
    const int32_t prod = (a + p->in1_offset) * (b + p->in2_offset);
    const int32_t raw = od_mbqm(prod, p->out_mult, p->out_shift) + p->out_offset;
    return od_clamp_i32(raw, p->act_min, p->act_max);
}

/* One 5-D walk for both ops; the innermost dim is a tight loop (in place is safe: index i read before write). */
#define OD_BINARY_WALK(OP)                                                                           \
    const int32_t *s = p->out_shape;                                                                 \
    int8_t *o = out;                                                                                 \
    for (int32_t i0 = 0; i0 < s[0]; ++i0)                                                            \
        for (int32_t i1 = 0; i1 < s[1]; ++i1)                                                        \
            for (int32_t i2 = 0; i2 < s[2]; ++i2)                                                    \
                for (int32_t i3 = 0; i3 < s[3]; ++i3) {                                              \
                    const int8_t *a = in1 + i0 * p->in1_strides[0] + i1 * p->in1_strides[1] +        \
                                      i2 * p->in1_strides[2] + i3 * p->in1_strides[3];               \
                    const int8_t *b = in2 + i0 * p->in2_strides[0] + i1 * p->in2_strides[1] +        \
                                      i2 * p->in2_strides[2] + i3 * p->in2_strides[3];               \
                    const int32_t sa = p->in1_strides[4], sb = p->in2_strides[4];                    \
                    for (int32_t i4 = 0; i4 < s[4]; ++i4) *o++ = (int8_t)OP(p, a[i4 * sa], b[i4 * sb]); \
                }

od_status_t od_add_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_BINARY_WALK(add_one)
    return OD_OK;
}

od_status_t od_mul_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_BINARY_WALK(mul_one)
    return OD_OK;
}

od_status_t od_requantize_s8(const od_requant_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = od_mbqm((int32_t)in[i] - p->in_zp, p->mult, p->shift) + p->out_zp;
        out[i] = (int8_t)od_clamp_i32(v, p->act_min, p->act_max);
    }
    return OD_OK;
}
