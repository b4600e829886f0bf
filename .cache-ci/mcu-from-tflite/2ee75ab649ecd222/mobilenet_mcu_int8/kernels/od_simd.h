/* od_simd.h: the Cortex-M DSP (SIMD32) instructions the optimised kernels use, with exact portable C twins so
 * the optimised kernels also build and are tested bit-exact on the host. */
#ifndef OD_SIMD_H
#define OD_SIMD_H

#include <stdint.h>
#include <string.h>

/* Unaligned 32-bit load: one LDR on Cortex-M4/M7/M55, memcpy keeps it legal C everywhere. */
static inline uint32_t od_read_u32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if defined(__ARM_FEATURE_DSP) && !defined(OD_SIMD_PORTABLE)
#define OD_SIMD_NATIVE 1
static inline uint32_t od_sxtb16(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t od_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t od_sadd16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("sadd16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t od_smlad(uint32_t a, uint32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t od_smmulr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t od_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t od_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
#define OD_SIMD_NATIVE 0
static inline uint32_t od_pack16(int32_t lo, int32_t hi) { return ((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16); }
static inline int32_t od_lo16(uint32_t x) { return (int16_t)(x & 0xffff); }
static inline int32_t od_hi16(uint32_t x) { return (int16_t)(x >> 16); }
static inline uint32_t od_sxtb16(uint32_t x) { return od_pack16((int8_t)(x & 0xff), (int8_t)((x >> 16) & 0xff)); }
static inline uint32_t od_sxtb16_ror8(uint32_t x) { return od_sxtb16((x >> 8) | (x << 24)); }
static inline uint32_t od_sadd16(uint32_t a, uint32_t b) { return od_pack16(od_lo16(a) + od_lo16(b), od_hi16(a) + od_hi16(b)); }
static inline int32_t od_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(od_lo16(a) * od_lo16(b)) + (uint32_t)(od_hi16(a) * od_hi16(b)));
}
static inline int32_t od_smlabb(uint32_t a, uint32_t b, int32_t acc) { return acc + od_lo16(a) * od_lo16(b); }
static inline int32_t od_smmulr(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32); }
static inline int32_t od_smlatt(uint32_t a, uint32_t b, int32_t acc) { return acc + od_hi16(a) * od_hi16(b); }
#endif

/* TFLite MultiplyByQuantizedMultiplier(x, m, shift) + out_off, for shift <= -1 and |x| < 2^30 (the code
 * generator proves both per layer). SMMULR(2x, m) = floor((x*m + 2^30) / 2^31) is gemmlowp's rounding doubling
 * high multiply y; RoundingDivideByPOT(y, r), round half away from zero with r = -shift >= 1, equals
 * (((y - [y < 0]) >> (r - 1)) + 1) >> 1, and adding out_off before the last shift as 2 * out_off is exact. */
static inline int32_t od_requant_fast(int32_t x, int32_t m, int32_t shift, int32_t out_off) {
    int32_t y = od_smmulr(x * 2, m);
    y += y >> 31;
    return ((y >> ~shift) + 1 + 2 * out_off) >> 1;
}

/* (v, v) as two int16 lanes */
static inline uint32_t od_dup16(int32_t v) { return ((uint32_t)(uint16_t)v) | ((uint32_t)(uint16_t)v << 16); }

#endif /* OD_SIMD_H */
