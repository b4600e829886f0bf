/* od_attn_s8.c: MUL -> FULLY_CONNECTED (one output) fused, bit-exact with TFLM's MUL then FC (od_attn_s8.h).
 *
 * Both inputs are widened once into int16 rows (in1 as 2 * (a + o1), in2 as b + o2; an odd depth padded with a
 * 0 whose weight is 0). Per element: SMULBB/TT gives 2p, p = (a + o1) * (b + o2); SMMLAR(2p, m, R) is
 * R + SaturatingRoundingDoublingHighMul(p, m) (|p| < 2^16, so no saturation); RoundingDivideByPOT by r = -shift
 * plus the zero point zo is floor((y - [y < 0] + (1 + 2 zo) 2^(r-1)) / 2^r), with R = (1 + 2 zo) 2^(r-1); and
 * [y < 0] may be read as [p < 0], since p < 0 with y >= 0 means y == 0, where the floor ignores a -1 (r >= 1).
 * One ASR, one SSAT to int8 (then the activation clamp if it is not all of int8), one SMLABB/SMLABT with the
 * weight: 7 instructions and 1.5 loads per element, no int8 MUL output stored. */
#include "od_attn_s8.h"

#include <string.h>

#include "od_fixedpoint.h"
#include "od_simd.h"

#if defined(__ARM_FEATURE_DSP) && !defined(OD_SIMD_PORTABLE)
static inline int32_t smmlar(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t ssat8(int32_t v) {
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
}
static inline int32_t smlabt(int32_t a, uint32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static inline int32_t smmlar(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32));
}
static inline int32_t ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
static inline int32_t smlabt(int32_t a, uint32_t b, int32_t acc) { return acc + (int16_t)a * (int16_t)(b >> 16); }
#endif

static inline int32_t even(int32_t n) { return (n + 1) & ~1; }

int32_t od_mul_fc_scratch_bytes(int32_t depth, int32_t in1_rows, int32_t in2_rows) {
    return 2 * even(depth) * (in1_rows + in2_rows);
}

/* rows x depth int8 -> rows of even(depth) int16 (v + off) * (dbl ? 2 : 1), the pad 0; four per word. */
static void widen_rows(const int8_t *in, int32_t rows, int32_t depth, int32_t off, int dbl, int16_t *out) {
    const int32_t d2 = even(depth);
    const uint32_t off2 = od_dup16(off);
    for (int32_t r = 0; r < rows; ++r, in += depth, out += d2) {
        int32_t d = 0;
        for (; d + 4 <= depth; d += 4) {
            const uint32_t u = od_read_u32(in + d);
            uint32_t v02 = od_sadd16(od_sxtb16(u), off2), v13 = od_sadd16(od_sxtb16_ror8(u), off2);
            if (dbl) {
                v02 = od_sadd16(v02, v02);
                v13 = od_sadd16(v13, v13);
            }
            const uint32_t w01 = od_pack_lo16(v02, v13), w23 = od_pack_hi16(v02, v13);
            memcpy(out + d, &w01, 4);
            memcpy(out + d + 2, &w23, 4);
        }
        for (; d < depth; ++d) out[d] = (int16_t)((in[d] + off) * (dbl ? 2 : 1));
        if (d2 != depth) out[depth] = 0;
    }
}

typedef struct {
    int32_t m, round, r, lo, hi;
} mfc_q_t;

/* One MUL element from 2p to its int8 value (see the header comment). */
static inline int32_t mul_elem(int32_t p2, const mfc_q_t q, int clamp) {
    const int32_t y = smmlar(p2, q.m, q.round) - (int32_t)((uint32_t)p2 >> 31);
    const int32_t v = ssat8(y >> q.r);
    return clamp ? od_clamp_i32(v, q.lo, q.hi) : v;
}

/* A word view of the int16 rows (4-byte aligned: even row lengths, aligned scratch and weights). */
#if defined(__GNUC__)
typedef uint32_t od_word_alias_t __attribute__((may_alias));
#else
typedef uint32_t od_word_alias_t;
#endif

#define OD_MFC_PAIR(k)                                                             \
    do {                                                                           \
        const uint32_t A_ = a[k], B_ = b[k], W_ = w[k];                            \
        acc = od_smlabb((uint32_t)mul_elem(od_smulbb(A_, B_), q, clamp), W_, acc);                 \
        acc = smlabt(mul_elem(od_smultt(A_, B_), q, clamp), W_, acc);                 \
    } while (0)

/* sum_d w[d] * MUL(a[d], b[d]) + acc over pairs of int16 lanes (a pre-doubled), one word load per pair and
 * row; a single index steps all three rows. */
static inline int32_t row_dot(const int16_t *a16, const int16_t *b16, const int16_t *w16, int32_t pairs,
                              int32_t acc, const mfc_q_t q, int clamp) {
    const od_word_alias_t *a = (const od_word_alias_t *)(const void *)a16;
    const od_word_alias_t *b = (const od_word_alias_t *)(const void *)b16;
    const od_word_alias_t *w = (const od_word_alias_t *)(const void *)w16;
    int32_t k = 0;
    for (; k + 2 <= pairs; k += 2) {
        OD_MFC_PAIR(k);
        OD_MFC_PAIR(k + 1);
    }
    if (k < pairs) OD_MFC_PAIR(k);
    return acc;
}

/* Two rows sharing their in1 row (in1 broadcast along the walked dim): one load of a and w feeds both. */
static inline void row_dot2(const int16_t *a16, const int16_t *b16, const int16_t *c16, const int16_t *w16,
                            int32_t pairs, int32_t *acc0, int32_t *acc1, const mfc_q_t q) {
    const od_word_alias_t *a = (const od_word_alias_t *)(const void *)a16;
    const od_word_alias_t *b = (const od_word_alias_t *)(const void *)b16;
    const od_word_alias_t *c = (const od_word_alias_t *)(const void *)c16;
    const od_word_alias_t *w = (const od_word_alias_t *)(const void *)w16;
    int32_t s0 = *acc0, s1 = *acc1;
    for (int32_t k = 0; k < pairs; ++k) {
        const uint32_t A = a[k], W = w[k], B = b[k], C = c[k];
        s0 = od_smlabb((uint32_t)mul_elem(od_smulbb(A, B), q, 0), W, s0);
        s1 = od_smlabb((uint32_t)mul_elem(od_smulbb(A, C), q, 0), W, s1);
        s0 = smlabt(mul_elem(od_smultt(A, B), q, 0), W, s0);
        s1 = smlabt(mul_elem(od_smultt(A, C), q, 0), W, s1);
    }
    *acc0 = s0;
    *acc1 = s1;
}

static inline int8_t fc_out(const od_mul_fc_params_t *p, int32_t acc) {
    return (int8_t)od_clamp_i32(od_mbqm(acc, p->fc_mult, p->fc_shift) + p->fc_out_zp, p->fc_lo, p->fc_hi);
}

#if defined(__GNUC__)
#define OD_MFC_INLINE static inline __attribute__((always_inline))
#else
#define OD_MFC_INLINE static inline
#endif

/* n output rows along the innermost outer dim, the input rows advancing by sa / sb int16 each; the FC's
 * requantization by od_requant_fast when the code generator proved it exact (fc_fast). */
OD_MFC_INLINE int8_t *fast_rows(const od_mul_fc_params_t *p, const int16_t *a, const int16_t *b, int32_t sa,
                                int32_t sb, int32_t n, const int16_t *w, int8_t *out, int clamp) {
    const mfc_q_t q = {p->mul_mult, p->mul_round, -p->mul_shift, p->mul_lo, p->mul_hi};
    const int32_t pairs = even(p->depth) / 2, bias = p->fc_bias, fm = p->fc_mult, fast = p->fc_fast;
    const int32_t fns = ~p->fc_shift, frnd = 1 + 2 * p->fc_out_zp, lo = p->fc_lo, hi = p->fc_hi;
    int32_t k = 0;
    if (!clamp && sa == 0) {
        for (; k + 2 <= n; k += 2, b += 2 * sb) {
            int32_t acc0 = bias, acc1 = bias;
            row_dot2(a, b, b + sb, w, pairs, &acc0, &acc1, q);
            *out++ = (int8_t)(fast ? od_clamp_i32(od_requant_fast_s8(acc0, fm, fns, frnd), lo, hi) : fc_out(p, acc0));
            *out++ = (int8_t)(fast ? od_clamp_i32(od_requant_fast_s8(acc1, fm, fns, frnd), lo, hi) : fc_out(p, acc1));
        }
    }
    for (; k < n; ++k, a += sa, b += sb) {
        const int32_t acc = row_dot(a, b, w, pairs, bias, q, clamp);
        *out++ = (int8_t)(fast ? od_clamp_i32(od_requant_fast_s8(acc, fm, fns, frnd), lo, hi) : fc_out(p, acc));
    }
    return out;
}

/* Inlined at both call sites so that clamp is a constant there. */
OD_MFC_INLINE void mul_fc_fast(const od_mul_fc_params_t *p, const int16_t *s1, const int16_t *s2, const int16_t *w,
                               int8_t *out, int clamp) {
    const int32_t d2 = even(p->depth);
    for (int32_t i0 = 0; i0 < p->outer[0]; ++i0)
        for (int32_t i1 = 0; i1 < p->outer[1]; ++i1)
            for (int32_t i2 = 0; i2 < p->outer[2]; ++i2) {
                const int32_t r1 = i0 * p->in1_rs[0] + i1 * p->in1_rs[1] + i2 * p->in1_rs[2];
                const int32_t r2 = i0 * p->in2_rs[0] + i1 * p->in2_rs[1] + i2 * p->in2_rs[2];
                out = fast_rows(p, s1 + r1 * d2, s2 + r2 * d2, p->in1_rs[3] * d2, p->in2_rs[3] * d2, p->outer[3],
                                w, out, clamp);
            }
}

od_status_t od_mul_fc_s8(const od_mul_fc_params_t *p, const int8_t *in1, const int8_t *in2, const int16_t *w,
                         int8_t *out, int16_t *scratch) {
#if defined(OD_KERNELS_REFERENCE)
    (void)scratch;
    return od_mul_fc_s8_ref(p, in1, in2, w, out);
#else
    OD_CHECK_PTR(p);
    if (!p->fast) return od_mul_fc_s8_ref(p, in1, in2, w, out);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(w);
    OD_CHECK_PTR(out);
    OD_CHECK_PTR(scratch);
    int16_t *s2 = scratch + even(p->depth) * p->in1_rows;
    widen_rows(in1, p->in1_rows, p->depth, p->in1_offset, 1, scratch);
    widen_rows(in2, p->in2_rows, p->depth, p->in2_offset, 0, s2);
    if (p->mul_lo > -128 || p->mul_hi < 127) {
        mul_fc_fast(p, scratch, s2, w, out, 1);
    } else {
        mul_fc_fast(p, scratch, s2, w, out, 0);
    }
    return OD_OK;
#endif
}

/* Walk the output rows; ROW(a_row, b_row) yields the accumulator of one row. */
#define OD_MFC_WALK(ROW)                                                                                 \
    for (int32_t i0 = 0; i0 < p->outer[0]; ++i0)                                                        \
        for (int32_t i1 = 0; i1 < p->outer[1]; ++i1)                                                    \
            for (int32_t i2 = 0; i2 < p->outer[2]; ++i2)                                                \
                for (int32_t i3 = 0; i3 < p->outer[3]; ++i3) {                                          \
                    const int32_t r1 = i0 * p->in1_rs[0] + i1 * p->in1_rs[1] + i2 * p->in1_rs[2] + i3 * p->in1_rs[3]; \
                    const int32_t r2 = i0 * p->in2_rs[0] + i1 * p->in2_rs[1] + i2 * p->in2_rs[2] + i3 * p->in2_rs[3]; \
                    *out++ = fc_out(p, ROW(r1, r2));                                                     \
                }

/* TFLM's MUL element then FC accumulation, in the reference arithmetic. */
static int32_t ref_row(const od_mul_fc_params_t *p, const int8_t *a, const int8_t *b, const int16_t *w) {
    int32_t acc = p->fc_bias;
    for (int32_t d = 0; d < p->depth; ++d) {
        const int32_t prod = (a[d] + p->in1_offset) * (b[d] + p->in2_offset);
        const int32_t v = od_mbqm(prod, p->mul_mult, p->mul_shift) + p->mul_out_zp;
        acc += w[d] * od_clamp_i32(v, p->mul_lo, p->mul_hi);
    }
    return acc;
}

od_status_t od_mul_fc_s8_ref(const od_mul_fc_params_t *p, const int8_t *in1, const int8_t *in2, const int16_t *w,
                             int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in1);
    OD_CHECK_PTR(in2);
    OD_CHECK_PTR(w);
    OD_CHECK_PTR(out);
    const int32_t d = p->depth;
#define OD_MFC_REF_ROW(r1, r2) ref_row(p, in1 + (r1) * d, in2 + (r2) * d, w)
    OD_MFC_WALK(OD_MFC_REF_ROW)
#undef OD_MFC_REF_ROW
    return OD_OK;
}
