/* od_add_fast_s8.c: ADD of two int8 tensors of the output's shape (no broadcasting), TFLite's arithmetic with the
 * cheaper exact rescaling of od_simd.h.
 *
 * TFLite: x_i = (in_i + off_i) << 20, s_i = MBQM(x_i, m_i, shift_i), out = MBQM(s_1 + s_2, m_o, shift_o) + off_o.
 * |x_i| <= 255 << 20 < 2^29 and the input multipliers are <= 0.5 (shift_i <= 0), so each MBQM is
 * od_requant_fast; a shift of 0 (the larger input scale) is run as shift -1 on the doubled high product, which
 * rounds to the same value. The code generator checks shift_o <= -1 (|s_1 + s_2| < 2^30 always holds).
 * Safe in place (element i is read before it is written). */
#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

/* MBQM(x, m, shift) for shift <= 0, |x| < 2^30: pre = 1 when shift == 0 (round (2y) / 2 = y exactly). */
static inline int32_t rescale(int32_t x2, int32_t m, int32_t pre, int32_t nr) {
    int32_t y = od_smmulr(x2, m) << pre; /* x2 = 2x */
    y += y >> 31;
    return ((y >> nr) + 1) >> 1;
}

od_status_t od_add_s8_fast(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
#if defined(OD_KERNELS_REFERENCE)
    return od_add_s8(p, in1, in2, out);
#else
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(out);
    OD_CHECK(p->left_shift == 20 && p->in1_shift <= 0 && p->in2_shift <= 0 && p->out_shift <= -1);
    int32_t n = 1;
    for (int d = 0; d < OD_MAX_DIMS; ++d) n *= p->out_shape[d];
    /* (in + off) << 21 is 2x; |.| <= 255 << 21 < 2^31. */
    const int32_t c1 = (int32_t)((uint32_t)p->in1_offset << 21), c2 = (int32_t)((uint32_t)p->in2_offset << 21);
    const int32_t m1 = p->in1_mult, m2 = p->in2_mult, mo = p->out_mult, oo = p->out_offset;
    const int32_t pre1 = p->in1_shift == 0, pre2 = p->in2_shift == 0;
    const int32_t nr1 = pre1 ? 0 : ~p->in1_shift, nr2 = pre2 ? 0 : ~p->in2_shift, so = p->out_shift;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t s1 = rescale(c1 + (int32_t)((uint32_t)(int32_t)in1[i] << 21), m1, pre1, nr1);
        const int32_t s2 = rescale(c2 + (int32_t)((uint32_t)(int32_t)in2[i] << 21), m2, pre2, nr2);
        out[i] = (int8_t)od_clamp_i32(od_requant_fast(s1 + s2, mo, so, oo), lo, hi);
    }
    return OD_OK;
#endif
}
