/* od_reduce_fast_s8.c: MEAN / SUM of [rows, cols] int8 over the rows (od_reduce_fast_s8.h), bit-exact with
 * od_reduce_s8: integer sums are the same in any order. Four columns per word: two SXTAB16 add them into int16
 * lanes (256 rows of |v| <= 128 fit), flushed into the int32 sums every 256 rows. */
#include "od_reduce_fast_s8.h"

#include "od_fixedpoint.h"
#include "od_simd.h"

#if OD_SIMD_NATIVE
static inline uint32_t sxtab16(uint32_t acc, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}
static inline uint32_t sxtab16_ror8(uint32_t acc, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}
#else
static inline uint32_t sxtab16(uint32_t acc, uint32_t x) { return od_sadd16(acc, od_sxtb16(x)); }
static inline uint32_t sxtab16_ror8(uint32_t acc, uint32_t x) { return od_sadd16(acc, od_sxtb16_ror8(x)); }
#endif

/* Columns c .. c + 3 over rows [r0, r0 + n), n <= 256, added into sums. */
static void sum4(const int8_t *x, int32_t cols, int32_t n, int32_t *sums) {
    uint32_t a02 = 0, a13 = 0;
    for (int32_t r = 0; r < n; ++r, x += cols) {
        const uint32_t u = od_read_u32(x);
        a02 = sxtab16(a02, u);
        a13 = sxtab16_ror8(a13, u);
    }
    sums[0] += (int16_t)(a02 & 0xffffu);
    sums[1] += (int16_t)(a13 & 0xffffu);
    sums[2] += (int16_t)(a02 >> 16);
    sums[3] += (int16_t)(a13 >> 16);
}

od_status_t od_reduce_rows_s8(const od_reduce_params_t *p, const int8_t *in, int32_t *scratch, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(scratch);
    OD_CHECK_PTR(out);
    OD_CHECK(p->num_reduced > 0);
    const int32_t cols = p->num_outputs, rows = p->num_reduced;
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, mult = p->mult, shift = p->shift;
    for (int32_t c = 0; c < cols; ++c) scratch[c] = 0;
    for (int32_t r0 = 0; r0 < rows; r0 += 256) {
        const int32_t n = rows - r0 < 256 ? rows - r0 : 256;
        const int8_t *x = in + r0 * cols;
        int32_t c = 0;
        for (; c + 4 <= cols; c += 4) sum4(x + c, cols, n, scratch + c);
        for (; c < cols; ++c) {
            int32_t s = 0;
            for (int32_t r = 0; r < n; ++r) s += x[r * cols + c];
            scratch[c] += s;
        }
    }
    for (int32_t c = 0; c < cols; ++c) {
        /* For MEAN the 1/n is folded into mult/shift at code-generation time, as TFLM does. */
        const int32_t v = od_mbqm(scratch[c] - in_zp * rows, mult, shift);
        out[c] = (int8_t)od_clamp_i32(v + out_zp, -128, 127);
    }
    return OD_OK;
}
