/* od_softmax_s8.c: SOFTMAX int8 -> int8 as TFLite reference_ops::Softmax (quantized): the gemmlowp exp of each
 * diff comes from a table the code generator fills (ondevice/mcu/lowerings/elementwise.py), the reciprocal of the
 * sum is gemmlowp's Newton-Raphson. Fixed-point formats: sum of exps Q12.19, exp and 1/sum Q0.31. */
#include "od_fixedpoint.h"
#include "od_kernels.h"

#define OD_ACCUM_INT_BITS 12

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: Newton-Raphson in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + OD_INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810;
    const int32_t cneg32_17 = -1010580540;
    int32_t x = c48_17 + od_srdhm(half_denominator, cneg32_17);
    const int32_t one_q2 = 1 << 29;
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = od_srdhm(half_denominator, x);
        const int32_t one_minus = one_q2 - hdx;
        x = x + od_sat_shl(od_srdhm(x, one_minus), 2);
    }
    return od_sat_shl(x, 1);
}

static int count_leading_zeros(uint32_t x) {
#if defined(__GNUC__)
    return x ? __builtin_clz(x) : 32;
#else
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
#endif
}

/* 1/sum as TFLM computes it: shifted_scale (Q0.31) and the output shift num_bits_over_unit + 31 - 8. */
static int32_t reciprocal_of_sum(int32_t sum_of_exps, int *out_shift) {
    const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    *out_shift = OD_ACCUM_INT_BITS - headroom_plus_one + 31 - 8;
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
    return one_over_one_plus_x(shifted_sum_minus_one);
}

static int32_t row_max(const int8_t *x, int32_t depth) {
    int32_t m = -128;
    for (int32_t c = 0; c < depth; ++c) m = od_max_i32(m, x[c]);
    return m;
}

/* The table path: every exp and its rounding are exact copies of TFLM's, and all operands are non-negative, so
 * srdhm and rdbpot reduce to add-and-shift (out_shift >= 23 since the row max alone contributes 2^19). */
static void softmax_row_lut(const int32_t *lut, int32_t lut_len, const int8_t *x, int8_t *y, int32_t depth) {
    const int32_t max_in_row = row_max(x, depth);
    int32_t sum_of_exps = 0; /* Q12.19 */
    for (int32_t c = 0; c < depth; ++c) {
        const int32_t d = max_in_row - x[c];
        if (d < lut_len) sum_of_exps += (int32_t)(((uint32_t)lut[d] + (1u << (OD_ACCUM_INT_BITS - 1))) >> OD_ACCUM_INT_BITS);
    }
    int out_shift;
    const uint64_t scale = (uint64_t)reciprocal_of_sum(sum_of_exps, &out_shift);
    const uint32_t half = 1u << (out_shift - 1);
    for (int32_t c = 0; c < depth; ++c) {
        const int32_t d = max_in_row - x[c];
        const uint32_t e = d < lut_len ? (uint32_t)lut[d] : 0u;
        const uint32_t prod = (uint32_t)((scale * e + (1u << 30)) >> 31);
        const int32_t unsat = (int32_t)(((uint64_t)prod + half) >> out_shift);
        y[c] = (int8_t)(unsat > 255 ? 127 : unsat - 128);
    }
}

od_status_t od_softmax_s8(const od_softmax_params_t *p, const int32_t *exp_lut, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(exp_lut);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    OD_CHECK(p->depth > 0 && p->lut_len > 0 && p->lut_len <= 256);
    for (int32_t i = 0; i < p->outer; ++i)
        softmax_row_lut(exp_lut, p->lut_len, in + i * p->depth, out + i * p->depth, p->depth);
    return OD_OK;
}
