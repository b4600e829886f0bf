/* od_elementwise_s8.c: ADD and MUL int8 with broadcasting (TFLite reference_integer_ops::Add / Mul). */
#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

/* Parameters live in locals: int8 stores may alias the parameter struct, which would force reloads. */
typedef struct {
    int32_t o1, o2, oo, m1, s1, m2, s2, mo, so, ls, lo, hi, nso, rnd;
} od_bin_local_t;

static inline od_bin_local_t bin_local(const od_binary_params_t *p) {
    od_bin_local_t q = {p->in1_offset, p->in2_offset, p->out_offset, p->in1_mult, p->in1_shift, p->in2_mult,
                        p->in2_shift, p->out_mult, p->out_shift, p->left_shift, p->act_min, p->act_max,
                        ~p->out_shift, 1 + 2 * p->out_offset};
    return q;
}

static inline int32_t add_one(const od_bin_local_t q, int32_t a, int32_t b) {
    const int32_t x1 = (a + q.o1) * (1 << q.ls);
    const int32_t x2 = (b + q.o2) * (1 << q.ls);
    const int32_t s1 = od_mbqm(x1, q.m1, q.s1);
    const int32_t s2 = od_mbqm(x2, q.m2, q.s2);
    const int32_t raw = od_mbqm(s1 + s2, q.mo, q.so) + q.oo;
    return od_clamp_i32(raw, q.lo, q.hi);
}

static inline int32_t sub_one(const od_bin_local_t q, int32_t a, int32_t b) {
    const int32_t x1 = (a + q.o1) * (1 << q.ls);
    const int32_t x2 = (b + q.o2) * (1 << q.ls);
    const int32_t s1 = od_mbqm(x1, q.m1, q.s1);
    const int32_t s2 = od_mbqm(x2, q.m2, q.s2);
    const int32_t raw = od_mbqm(s1 - s2, q.mo, q.so) + q.oo;
    return od_clamp_i32(raw, q.lo, q.hi);
}

/* TFLM MAXIMUM/MINIMUM compare the raw int8 values (inputs and output share quantization). */
static inline int32_t max_one(const od_bin_local_t q, int32_t a, int32_t b) {
    (void)q;
    return a > b ? a : b;
}

static inline int32_t min_one(const od_bin_local_t q, int32_t a, int32_t b) {
    (void)q;
    return a < b ? a : b;
}

static inline int32_t mul_one(const od_bin_local_t q, int32_t a, int32_t b) {
    const int32_t prod = (a + q.o1) * (b + q.o2);
    const int32_t raw = od_mbqm(prod, q.mo, q.so) + q.oo;
    return od_clamp_i32(raw, q.lo, q.hi);
}

/* |(a + o1) * (b + o2)| <= 255 * 255 < 2^30: with a right shift (so <= -1), od_requant_fast's preconditions
 * hold for every int8 input, so the cheaper requantization is exact (od_simd.h). */
static inline int32_t mul_fast_one(const od_bin_local_t q, int32_t a, int32_t b) {
    const int32_t prod = (a + q.o1) * (b + q.o2);
    return od_clamp_i32(od_requant_fast_s8(prod, q.mo, q.nso, q.rnd), q.lo, q.hi);
}

/* A contiguous row of n elements (both inputs stride 1) with one op; returns the next output. */
#define OD_DEFINE_ROW(OP)                                                                                  \
    static inline int8_t *OP##_row(const od_bin_local_t q, const int8_t *a, const int8_t *b, int8_t *o,   \
                                   int32_t n) {                                                            \
        for (int32_t i = 0; i < n; ++i) *o++ = (int8_t)OP(q, a[i], b[i]);                                  \
        return o;                                                                                          \
    }
OD_DEFINE_ROW(add_one)
OD_DEFINE_ROW(sub_one)
OD_DEFINE_ROW(max_one)
OD_DEFINE_ROW(min_one)
OD_DEFINE_ROW(mul_one)

/* MUL, four elements per word: SXTB16 + SADD16 (a + offset fits int16), SMULBB / SMULTT, od_requant_fast_s8,
 * packed, clamped lane-wise, one store. In place is safe: four inputs are read before their outputs land. */
static inline int8_t *mul_fast_one_row(const od_bin_local_t q, const int8_t *a, const int8_t *b, int8_t *o,
                                       int32_t n) {
    const uint32_t o1 = od_dup16(q.o1), o2 = od_dup16(q.o2);
    const uint32_t lo4 = (uint32_t)(uint8_t)q.lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)q.hi * 0x01010101u;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4, o += 4) {
        const uint32_t ua = od_read_u32(a + i), ub = od_read_u32(b + i);
        const uint32_t a02 = od_sadd16(od_sxtb16(ua), o1), a13 = od_sadd16(od_sxtb16_ror8(ua), o1);
        const uint32_t b02 = od_sadd16(od_sxtb16(ub), o2), b13 = od_sadd16(od_sxtb16_ror8(ub), o2);
        const uint32_t w = od_pack4_s8(od_requant_fast_s8(od_smulbb(a02, b02), q.mo, q.nso, q.rnd),
                                       od_requant_fast_s8(od_smulbb(a13, b13), q.mo, q.nso, q.rnd),
                                       od_requant_fast_s8(od_smultt(a02, b02), q.mo, q.nso, q.rnd),
                                       od_requant_fast_s8(od_smultt(a13, b13), q.mo, q.nso, q.rnd));
        od_write_u32(o, od_clamp4_s8(w, lo4, hi4));
    }
    for (; i < n; ++i) *o++ = (int8_t)mul_fast_one(q, a[i], b[i]);
    return o;
}

/* One 5-D walk for both ops; the innermost dim is a tight loop (in place is safe: index i read before write). */
#define OD_BINARY_WALK(OP)                                                                               \
    const od_bin_local_t q = bin_local(p);                                                               \
    int32_t s[OD_MAX_DIMS], st1[OD_MAX_DIMS], st2[OD_MAX_DIMS];                                          \
    for (int d = 0; d < OD_MAX_DIMS; ++d) {                                                              \
        s[d] = p->out_shape[d];                                                                          \
        st1[d] = p->in1_strides[d];                                                                      \
        st2[d] = p->in2_strides[d];                                                                      \
    }                                                                                                    \
    int8_t *o = out;                                                                                     \
    for (int32_t i0 = 0; i0 < s[0]; ++i0)                                                                \
        for (int32_t i1 = 0; i1 < s[1]; ++i1)                                                            \
            for (int32_t i2 = 0; i2 < s[2]; ++i2)                                                        \
                for (int32_t i3 = 0; i3 < s[3]; ++i3) {                                                  \
                    const int8_t *a = in1 + i0 * st1[0] + i1 * st1[1] + i2 * st1[2] + i3 * st1[3];       \
                    const int8_t *b = in2 + i0 * st2[0] + i1 * st2[1] + i2 * st2[2] + i3 * st2[3];       \
                    const int32_t n = s[4], sa = st1[4], sb = st2[4];                                    \
                    if (sa == 1 && sb == 1) {                                                            \
                        o = OP##_row(q, a, b, o, n);                                                     \
                    } else if (sa == 1 && sb == 0) {                                                     \
                        const int32_t bv = b[0];                                                         \
                        for (int32_t i4 = 0; i4 < n; ++i4) *o++ = (int8_t)OP(q, a[i4], bv);              \
                    } else {                                                                             \
                        for (int32_t i4 = 0; i4 < n; ++i4) *o++ = (int8_t)OP(q, a[i4 * sa], b[i4 * sb]); \
                    }                                                                                    \
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
    if (p->out_shift <= -1) {
        OD_BINARY_WALK(mul_fast_one)
    } else {
        OD_BINARY_WALK(mul_one)
    }
    return OD_OK;
}

od_status_t od_sub_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_BINARY_WALK(sub_one)
    return OD_OK;
}

od_status_t od_maximum_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_BINARY_WALK(max_one)
    return OD_OK;
}

od_status_t od_minimum_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_BINARY_WALK(min_one)
    return OD_OK;
}

od_status_t od_requantize_s8(const od_requant_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    const int32_t n = p->size, in_zp = p->in_zp, out_zp = p->out_zp, m = p->mult, sh = p->shift;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = od_mbqm((int32_t)in[i] - in_zp, m, sh) + out_zp;
        out[i] = (int8_t)od_clamp_i32(v, lo, hi);
    }
    return OD_OK;
}
