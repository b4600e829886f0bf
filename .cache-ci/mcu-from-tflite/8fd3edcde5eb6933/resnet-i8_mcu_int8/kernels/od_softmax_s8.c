/* od_softmax_s8.c: SOFTMAX int8 -> int8 with the gemmlowp fixed-point exp and reciprocal (TFLite
 * reference_ops::Softmax, quantized). Fixed-point formats: input diffs Q5.26, sum of exps Q12.19, output Q0.31. */
#include "od_fixedpoint.h"
#include "od_kernels.h"

#define OD_SCALED_DIFF_INT_BITS 5
#define OD_ACCUM_INT_BITS 12

/* exp(x) for x in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = a + (1 << 28);              /* + 1/8 */
    const int32_t x2 = od_srdhm(x, x);
    const int32_t x3 = od_srdhm(x2, x);
    const int32_t x4 = od_srdhm(x2, x2);
    const int32_t x4_over_4 = od_rdbpot(x4, 2);
    const int32_t poly = od_rdbpot(od_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + od_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 in Q5.26; result Q0.31. */
static int32_t exp_on_negative_values(int32_t a) {
    const int frac_bits = 31 - OD_SCALED_DIFF_INT_BITS;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_quarter(od_sat_shl(a_mod_quarter_minus_one_quarter, OD_SCALED_DIFF_INT_BITS));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    /* Barrel shifter: multiply by exp(-2^k) for each set bit of the remainder. */
    static const int32_t kmul[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    for (int k = 0; k < 7; ++k) {
        const int exponent = k - 2;
        if (OD_SCALED_DIFF_INT_BITS > exponent) {
            if (remainder & (1 << (frac_bits + exponent))) result = od_srdhm(result, kmul[k]);
        }
    }
    return a == 0 ? OD_INT32_MAX : result;
}

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

od_status_t od_softmax_s8(const od_softmax_params_t *p, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    OD_CHECK(p->depth > 0);
    for (int32_t i = 0; i < p->outer; ++i) {
        const int8_t *x = in + i * p->depth;
        int8_t *y = out + i * p->depth;
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < p->depth; ++c) max_in_row = od_max_i32(max_in_row, x[c]);

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t rescaled = od_srdhm(diff * (1 << p->input_left_shift), p->input_multiplier);
                sum_of_exps += od_rdbpot(exp_on_negative_values(rescaled), OD_ACCUM_INT_BITS);
            }
        }
        const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int num_bits_over_unit = OD_ACCUM_INT_BITS - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);

        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t rescaled = od_srdhm(diff * (1 << p->input_left_shift), p->input_multiplier);
                const int32_t e = exp_on_negative_values(rescaled);
                const int32_t unsat = od_rdbpot(od_srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8);
                y[c] = (int8_t)od_clamp_i32(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
    return OD_OK;
}
