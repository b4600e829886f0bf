/* od_dw3x3_s8.c: the 3x3, stride-w-1 depthwise block of od_dw_padded_s8.c (multiplier 1, requant_fast proven).
 *
 * Per block of four channels, the ring keeps 3 zero-point-padded input rows, each stored per channel as int16
 * pairs of adjacent columns: H[j] = (x[2j], x[2j+1]). Two adjacent outputs of one channel then take two words and
 * two weight words per kernel row, A = (w0, w1) and D = (w1, w2):
 *   out(2j)   += SMLAD(H[j], A) + lo(H[j+1]) * hi(D)
 *   out(2j+1) += hi(H[j]) * lo(A) + SMLAD(H[j+1], D)
 * i.e. 6 instructions per 6 MACs. The weights (and the initial sum) are doubled, so the accumulator is already the
 * 2x that od_requant_fast_s8 multiplies; outputs are requantized one channel at a time and stored unclamped. */
#include "od_dw3x3_s8.h"

#include "od_fixedpoint.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

static int32_t pairs(const od_conv_params_t *p) { return (p->out_w + 1) / 2 + 1; }

int od_dw3x3_fits(const od_conv_params_t *p) {
    return p->k_h == 3 && p->k_w == 3 && p->stride_w == 1 && p->requant_fast;
}

int32_t od_dw3x3_scratch_bytes(const od_conv_params_t *p) { return 3 * 4 * 4 * pairs(p); }

#if !defined(OD_KERNELS_REFERENCE)

/* Columns A (px) and B (px + 1), four channels each, into word j of the four channel rows (J words apart). */
OD_INLINE void put_pair(uint32_t *row, int32_t J, int32_t j, uint32_t a, uint32_t b) {
    const uint32_t la = od_sxtb16(a), lb = od_sxtb16(b), ha = od_sxtb16_ror8(a), hb = od_sxtb16_ror8(b);
    row[j] = od_pack_lo16(la, lb);
    row[J + j] = od_pack_lo16(ha, hb);
    row[2 * J + j] = od_pack_hi16(la, lb);
    row[3 * J + j] = od_pack_hi16(ha, hb);
}

/* Padded input row py of batch b, channels c..c+3, as four rows of J int16 column pairs (zero point outside). */
static void fill_pairs(const od_conv_params_t *p, const int8_t *in, int32_t b, int32_t c, int32_t py,
                       uint32_t *row, int32_t J) {
    const int32_t IW = p->in_w, C = p->in_c, iy = py - p->pad_h, x0 = p->pad_w, x1 = IW + p->pad_w;
    const int8_t zp = (int8_t)(-p->input_offset);
    const uint32_t zp4 = (uint32_t)(uint8_t)zp * 0x01010101u;
    if (iy < 0 || iy >= p->in_h) {
        const uint32_t zz = od_dup16(zp);
        for (int32_t i = 0; i < 4 * J; ++i) row[i] = zz;
        return;
    }
    const int8_t *src = in + (b * p->in_h + iy) * IW * C + c; /* input column 0 */
    const int32_t jlo = od_min_i32(J, (x0 + 1) / 2), jhi = od_max_i32(jlo, od_min_i32(J, x1 / 2));
    for (int32_t j = 0; j < J; ++j) {
        if (j == jlo) {  /* interior pairs: both columns inside the input */
            const int8_t *s = src + (2 * j - x0) * C;
            for (; j < jhi; ++j, s += 2 * C) put_pair(row, J, j, od_read_u32(s), od_read_u32(s + C));
            if (j >= J) break;
        }
        const int32_t px = 2 * j;
        const uint32_t a = px >= x0 && px < x1 ? od_read_u32(src + (px - x0) * C) : zp4;
        const uint32_t bw = px + 1 >= x0 && px + 1 < x1 ? od_read_u32(src + (px + 1 - x0) * C) : zp4;
        put_pair(row, J, j, a, bw);
    }
}

#if OD_SIMD_NATIVE
/* One kernel row of two outputs: the pair word j and j + 1 (then the row pointer moves one pair on). */
#define OD_ROW2_ASM(r, woff)                                  \
    "ldrd %[d0], %[d1], [%[" r "]], #4\n\t"                   \
    "ldrd %[wa], %[wd], [%[w], #" woff "]\n\t"                \
    "smlatb %[a1], %[d0], %[wa], %[a1]\n\t"                   \
    "smlad %[a0], %[d0], %[wa], %[a0]\n\t"                    \
    "smlabt %[a0], %[d1], %[wd], %[a0]\n\t"                   \
    "smlad %[a1], %[d1], %[wd], %[a1]\n\t"

typedef struct { uint32_t v[2]; } od_words2_t;   /* what the asm reads, so no "memory" clobber is needed */
typedef struct { uint32_t v[6]; } od_words6_t;

OD_INLINE void taps2(const uint32_t **r0, const uint32_t **r1, const uint32_t **r2, const uint32_t *w, int32_t *a0,
                     int32_t *a1) {
    uint32_t d0, d1, wa, wd;
    int32_t s0 = *a0, s1 = *a1;
    const uint32_t *p0 = *r0, *p1 = *r1, *p2 = *r2;
    __asm__(OD_ROW2_ASM("p0", "0") OD_ROW2_ASM("p1", "8") OD_ROW2_ASM("p2", "16")
            : [d0] "=&r"(d0), [d1] "=&r"(d1), [wa] "=&r"(wa), [wd] "=&r"(wd), [a0] "+r"(s0), [a1] "+r"(s1),
              [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2)
            : [w] "r"(w), "m"(*(const od_words2_t *)(const void *)p0), "m"(*(const od_words2_t *)(const void *)p1),
              "m"(*(const od_words2_t *)(const void *)p2), "m"(*(const od_words6_t *)(const void *)w));
    *a0 = s0;
    *a1 = s1;
    *r0 = p0;
    *r1 = p1;
    *r2 = p2;
}
#else
static inline int32_t lo16(uint32_t x) { return (int16_t)(x & 0xffff); }
static inline int32_t hi16(uint32_t x) { return (int16_t)(x >> 16); }

OD_INLINE void taps2(const uint32_t **r0, const uint32_t **r1, const uint32_t **r2, const uint32_t *w, int32_t *a0,
                     int32_t *a1) {
    const uint32_t **rows[3] = {r0, r1, r2};
    int32_t s0 = *a0, s1 = *a1;
    for (int ky = 0; ky < 3; ++ky) {
        const uint32_t *r = *rows[ky], wa = w[2 * ky], wd = w[2 * ky + 1];
        s1 = (int32_t)((uint32_t)s1 + (uint32_t)(hi16(r[0]) * lo16(wa)));
        s0 = od_smlad(r[0], wa, s0);
        s0 = (int32_t)((uint32_t)s0 + (uint32_t)(lo16(r[1]) * hi16(wd)));
        s1 = od_smlad(r[1], wd, s1);
        *rows[ky] = r + 1;
    }
    *a0 = s0;
    *a1 = s1;
}
#endif

/* od_requant_fast_s8 of an accumulator that already holds 2x. */
OD_INLINE int8_t rq2(int32_t acc2, int32_t m, int32_t ns, int32_t rnd) {
    int32_t y = od_smmulr(acc2, m);
    y += y >> 31;
    return (int8_t)od_ssat8_asr1((y >> ns) + rnd);
}

/* One output row of one channel: outputs in pairs, an odd last one alone (its partner is computed, not stored). */
OD_INLINE void row_channel(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *w, int32_t bi,
                           int32_t m, int32_t ns, int32_t rnd, int8_t *y, int32_t s, int32_t OW) {
    for (int32_t g = OW >> 1; g > 0; --g, y += 2 * s) {
        int32_t a0 = bi, a1 = bi;
        taps2(&r0, &r1, &r2, w, &a0, &a1);
        y[0] = rq2(a0, m, ns, rnd);
        y[s] = rq2(a1, m, ns, rnd);
    }
    if (OW & 1) {
        int32_t a0 = bi, a1 = bi;
        taps2(&r0, &r1, &r2, w, &a0, &a1);
        y[0] = rq2(a0, m, ns, rnd);
    }
}

/* Doubled weights of channel c: per kernel row A = (w0, w1), D = (w1, w2); returns 2 * (bias + off * sum(w)). */
static int32_t prep_channel(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias, int32_t c,
                            uint32_t *w) {
    const int32_t C = p->in_c;
    int32_t sum = 0;
    for (int ky = 0; ky < 3; ++ky) {
        const int32_t f0 = filter[(3 * ky) * C + c], f1 = filter[(3 * ky + 1) * C + c];
        const int32_t f2 = filter[(3 * ky + 2) * C + c];
        w[2 * ky] = (uint32_t)(uint16_t)(2 * f0) | (uint32_t)(uint16_t)(2 * f1) << 16;
        w[2 * ky + 1] = (uint32_t)(uint16_t)(2 * f1) | (uint32_t)(uint16_t)(2 * f2) << 16;
        sum += f0 + f1 + f2;
    }
    return 2 * ((bias ? bias[c] : 0) + p->input_offset * sum);
}

void od_dw3x3_block(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                    const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, uint32_t *ring, int8_t *dst,
                    int32_t dst_stride) {
    const int32_t OH = p->out_h, OW = p->out_w, SH = p->stride_h, J = pairs(p), rnd = 1 + 2 * p->output_offset;
    uint32_t w[4][6];
    int32_t bi[4];
    for (int k = 0; k < 4; ++k) bi[k] = prep_channel(p, filter, bias, c + k, w[k]);
    int32_t next = 0, top = 0; /* the next padded row not in the ring yet; ring slot of padded row oy * SH */
    for (int32_t oy = 0; oy < OH; ++oy, top = (top + SH) % 3) {
        for (int32_t py = od_max_i32(next, oy * SH); py < oy * SH + 3; ++py) {
            const int32_t sl = top + py - oy * SH;
            fill_pairs(p, in, b, c, py, ring + (sl >= 3 ? sl - 3 : sl) * 4 * J, J);
        }
        next = oy * SH + 3;
        const uint32_t *rows[3];
        for (int32_t ky = 0; ky < 3; ++ky) rows[ky] = ring + (top + ky >= 3 ? top + ky - 3 : top + ky) * 4 * J;
        int8_t *y = dst + oy * OW * dst_stride;
        for (int k = 0; k < 4; ++k)
            row_channel(rows[0] + k * J, rows[1] + k * J, rows[2] + k * J, w[k], bi[k], mult[c + k], ~shift[c + k],
                        rnd, y + k, dst_stride, OW);
    }
}

#endif
