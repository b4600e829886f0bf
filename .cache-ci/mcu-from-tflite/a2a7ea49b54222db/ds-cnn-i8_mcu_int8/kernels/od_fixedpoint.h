/* od_fixedpoint.h: the TFLite int8 quantization arithmetic (gemmlowp fixed point), as static inlines.
 * Every kernel requantizes through these so reference and optimised variants round identically. */
#ifndef OD_FIXEDPOINT_H
#define OD_FIXEDPOINT_H

#include <stdint.h>

#define OD_INT32_MIN ((int32_t)0x80000000)
#define OD_INT32_MAX ((int32_t)0x7fffffff)

static inline int32_t od_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t od_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t od_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* round(a*b / 2^31) as gemmlowp's SaturatingRoundingDoublingHighMul, without its one saturating case.
 * gemmlowp truncates (ab + nudge) / 2^31 toward zero with nudge = +-2^30; that equals floor((ab + 2^30) / 2^31)
 * for every ab, i.e. one SMLAL and a shift. (>> of a negative value is arithmetic on GCC/Clang.) */
static inline int32_t od_rdhm_nosat(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), saturating the one overflow case. */
static inline int32_t od_srdhm(int32_t a, int32_t b) {
    if (a == OD_INT32_MIN && b == OD_INT32_MIN) return OD_INT32_MAX;
    return od_rdhm_nosat(a, b);
}

/* gemmlowp RoundingDivideByPOT: divide by 2^exponent, rounding half away from zero. */
static inline int32_t od_rdbpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding, the default build of TFLM). The multiplier is a
 * non-negative int32 from QuantizeMultiplier, so the saturating case of the high multiply cannot occur. */
static inline int32_t od_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return od_rdbpot(od_rdhm_nosat((int32_t)((uint32_t)x << left), multiplier), right);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: saturating left shift. */
static inline int32_t od_sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
    if (x > threshold) return OD_INT32_MAX;
    if (x < -threshold) return OD_INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

#endif /* OD_FIXEDPOINT_H */
