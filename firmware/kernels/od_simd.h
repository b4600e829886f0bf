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
static inline int32_t od_smulbb(uint32_t a, uint32_t b) {
    int32_t r;
    __asm__("smulbb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t od_smultt(uint32_t a, uint32_t b) {
    int32_t r;
    __asm__("smultt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
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
static inline int32_t od_smulbb(uint32_t a, uint32_t b) { return od_lo16(a) * od_lo16(b); }
static inline int32_t od_smultt(uint32_t a, uint32_t b) { return od_hi16(a) * od_hi16(b); }
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

/* (lo half of a, lo half of b) and (hi half of a, hi half of b): PKHBT / PKHTB on the DSP cores. */
static inline uint32_t od_pack_lo16(uint32_t a, uint32_t b) {
#if OD_SIMD_NATIVE
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (a & 0xffffu) | (b << 16);
#endif
}
static inline uint32_t od_pack_hi16(uint32_t a, uint32_t b) {
#if OD_SIMD_NATIVE
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
#else
    return (a >> 16) | (b & 0xffff0000u);
#endif
}

/* v >> 1 saturated to int8: one SSAT with its shift operand on the DSP cores. */
static inline int32_t od_ssat8_asr1(int32_t v) {
#if OD_SIMD_NATIVE
    int32_t r;
    __asm__("ssat %0, #8, %1, asr #1" : "=r"(r) : "r"(v));
    return r;
#else
    v >>= 1;
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/* od_requant_fast saturated to [-128, 127], from ns = ~shift and rnd = 1 + 2 * out_off (both hoisted per
 * channel). Clamping to an activation range inside int8 afterwards equals clamping the unsaturated value. */
static inline int32_t od_requant_fast_s8(int32_t x, int32_t m, int32_t ns, int32_t rnd) {
    int32_t y = od_smmulr(x * 2, m);
    y += y >> 31;
    return od_ssat8_asr1((y >> ns) + rnd);
}

/* Four int8 values (each sign-extended in an int32) as one word, v0 in the lowest byte: three BFIs on the DSP
 * cores. */
static inline uint32_t od_pack4_s8(int32_t v0, int32_t v1, int32_t v2, int32_t v3) {
#if OD_SIMD_NATIVE
    uint32_t r = (uint32_t)v0;
    __asm__("bfi %0, %1, #8, #8\n\tbfi %0, %2, #16, #8\n\tbfi %0, %3, #24, #8" : "+&r"(r) : "r"(v1), "r"(v2), "r"(v3));
    return r;
#else
    return (uint32_t)(uint8_t)v0 | (uint32_t)(uint8_t)v1 << 8 | (uint32_t)(uint8_t)v2 << 16 | (uint32_t)(uint8_t)v3 << 24;
#endif
}

/* Two int8 values as the low halfword (v0 in the low byte; the upper half is don't-care): one BFI. */
static inline uint32_t od_pack2_s8(int32_t v0, int32_t v1) {
#if OD_SIMD_NATIVE
    uint32_t r = (uint32_t)v0;
    __asm__("bfi %0, %1, #8, #8" : "+r"(r) : "r"(v1));
    return r;
#else
    return (uint32_t)(uint8_t)v0 | (uint32_t)(uint8_t)v1 << 8;
#endif
}

/* Unaligned 16-bit store of the low halfword. */
static inline void od_write_u16(int8_t *p, uint32_t v) {
    const uint16_t h = (uint16_t)v;
    memcpy(p, &h, 2);
}

/* Each int8 lane of w clamped to [lo, hi] (lo4, hi4: the bounds in every lane): SSUB8 + SEL twice. */
static inline uint32_t od_clamp4_s8(uint32_t w, uint32_t lo4, uint32_t hi4) {
#if OD_SIMD_NATIVE
    uint32_t t;
    __asm__("ssub8 %1, %0, %2\n\tsel %0, %0, %2\n\tssub8 %1, %3, %0\n\tsel %0, %0, %3"
            : "+&r"(w), "=&r"(t) : "r"(lo4), "r"(hi4) : "cc");
    return w;
#else
    uint32_t r = 0;
    for (int k = 0; k < 32; k += 8) {
        int32_t v = (int8_t)(w >> k), lo = (int8_t)(lo4 >> k), hi = (int8_t)(hi4 >> k);
        v = v < lo ? lo : (v > hi ? hi : v);
        r |= (uint32_t)(uint8_t)v << k;
    }
    return r;
#endif
}

/* Unaligned 32-bit store: one STR on Cortex-M4/M7/M55. */
static inline void od_write_u32(int8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* (v, v) as two int16 lanes */
static inline uint32_t od_dup16(int32_t v) { return ((uint32_t)(uint16_t)v) | ((uint32_t)(uint16_t)v << 16); }

#endif /* OD_SIMD_H */
