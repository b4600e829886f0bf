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

#include <stddef.h>

#include "od_fixedpoint.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#define OD_NOINLINE static __attribute__((noinline))
#else
#define OD_INLINE static inline
#define OD_NOINLINE static
#endif

static int32_t pairs(const od_conv_params_t *p) { return (p->out_w + 1) / 2 + 1; }

int od_dw3x3_fits(const od_conv_params_t *p) {
    return p->k_h == 3 && p->k_w == 3 && p->stride_w == 1 && p->out_w >= 2 && p->requant_fast;
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

/* What filling a padded row needs, set once per block. Pair j holds padded columns 2j and 2j + 1; padded
 * columns [x0, x1) are the input columns. Pairs [jlo, jhi) are all input; at most one pair on each side mixes
 * padding and input (jl, jr; -1 when none); the others are all padding, the same on every row (fill_ring_pad). */
typedef struct {
    const int8_t *src;     /* batch b, input row 0, column 0, channel c */
    int32_t row_bytes, C;  /* input row and pixel strides */
    int32_t jlo, jhi, jl, jr, J;
    int32_t first, last;   /* byte offsets in a row of pair jlo's first column and of input column in_w - 1 */
    int32_t pad_h, in_h;
    uint32_t zp4, zz;      /* the zero point in four bytes, and in two int16 lanes */
} od_fill_t;

static void fill_init(od_fill_t *f, const od_conv_params_t *p, const int8_t *in, int32_t b, int32_t c) {
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t x0 = p->pad_w, x1 = p->in_w + p->pad_w;
    f->row_bytes = p->in_w * p->in_c;
    f->C = p->in_c;
    f->src = in + b * p->in_h * f->row_bytes + c;
    f->J = pairs(p);
    f->jlo = od_min_i32(f->J, (x0 + 1) / 2);
    f->jhi = od_max_i32(f->jlo, od_min_i32(f->J, x1 / 2));
    f->jl = (x0 & 1) && x0 / 2 < f->J ? x0 / 2 : -1;
    f->jr = (x1 & 1) && x1 / 2 < f->J && x1 / 2 != f->jl ? x1 / 2 : -1;
    f->first = (2 * f->jlo - x0) * p->in_c;
    f->last = (p->in_w - 1) * p->in_c;
    f->pad_h = p->pad_h;
    f->in_h = p->in_h;
    f->zp4 = (uint32_t)(uint8_t)zp * 0x01010101u;
    f->zz = od_dup16(zp);
}

/* The all-padding pairs of every ring slot (3 slots of 4 channel rows), once per block. */
static void fill_ring_pad(const od_fill_t *f, uint32_t *ring) {
    const int32_t J = f->J, zl = f->jl >= 0 ? f->jl : f->jlo, zr = od_max_i32(f->jhi, f->jr + 1);
    for (int32_t r = 0; r < 3 * 4; ++r, ring += J) {
        for (int32_t j = 0; j < zl; ++j) ring[j] = f->zz;
        for (int32_t j = zr; j < J; ++j) ring[j] = f->zz;
    }
}

/* Padded input row py, channels c..c+3, as four rows of J int16 column pairs (zero point outside). */
OD_NOINLINE void fill_pairs(const od_fill_t *f, int32_t py, uint32_t *row) {
    const int32_t iy = py - f->pad_h, J = f->J, C = f->C;
    if (iy < 0 || iy >= f->in_h) {
        for (int32_t i = 0; i < 4 * J; ++i) row[i] = f->zz;
        return;
    }
    const int8_t *src = f->src + iy * f->row_bytes;
    if (f->jl >= 0) put_pair(row, J, f->jl, f->zp4, od_read_u32(src));
    if (f->jr >= 0) put_pair(row, J, f->jr, od_read_u32(src + f->last), f->zp4);
    const int8_t *s = src + f->first;
    uint32_t *q = row + f->jlo;
    for (int32_t n = f->jhi - f->jlo; n > 0; --n, s += 2 * C) /* interior pairs: both columns inside the input */
        put_pair(q++, J, 0, od_read_u32(s), od_read_u32(s + C));
}

/* Per channel: the 6 doubled weight words, then bi = 2 * (bias + off * sum(w)), m, ns = ~shift and
 * R = (1 + 2 * out_off) << ns (od_requant_fast_s8's rounding term, added before the shift: exact). */
enum { T_BI = 6, T_M, T_NS, T_R, T_WORDS };

/* One channel: its table, and where its current output row reads and writes (stage4: quads up to end, then one
 * pair when pair is set). */
typedef struct {
    uint32_t w[T_WORDS];
    const uint32_t *r[3];
    int8_t *y, *end;
    int32_t pair;
} od_chan_t;

#if OD_SIMD_NATIVE
/* One kernel row of two outputs: the pair words j and j + 1 (then the row pointer moves one pair on). */
#define OD_ROW2_ASM(r, woff, a1in)                            \
    "ldrd %[d0], %[d1], [%[" r "]], #4\n\t"                   \
    "ldrd %[wa], %[wd], [%[w], #" woff "]\n\t"                \
    "smlatb %[a1], %[d0], %[wa], %[" a1in "]\n\t"             \
    "smlad %[a0], %[d0], %[wa], %[a0]\n\t"                    \
    "smlabt %[a0], %[d1], %[wd], %[a0]\n\t"                   \
    "smlad %[a1], %[d1], %[wd], %[a1]\n\t"

/* Both outputs of a pair: the three kernel rows, then the requantization (rounding folded into SMMLAR), each
 * saturated to int8: first output in wd, second in a0. */
#define OD_PAIR2_ASM                                                                                   \
    "ldr %[a0], [%[w], #24]\n\t"                                                                       \
    OD_ROW2_ASM("r0", "0", "a0") OD_ROW2_ASM("r1", "8", "a1") OD_ROW2_ASM("r2", "16", "a1")            \
    "ldrd %[d0], %[d1], [%[w], #28]\n\t"                                                               \
    "ldr %[wa], [%[w], #36]\n\t"                                                                       \
    "smmlar %[wd], %[a0], %[d0], %[wa]\n\t"                                                            \
    "add %[wd], %[wd], %[a0], asr #31\n\t"                                                             \
    "smmlar %[a0], %[a1], %[d0], %[wa]\n\t"                                                            \
    "add %[a0], %[a0], %[a1], asr #31\n\t"                                                             \
    "asr %[wd], %[wd], %[d1]\n\t"                                                                      \
    "asr %[a0], %[a0], %[d1]\n\t"                                                                      \
    "ssat %[wd], #8, %[wd], asr #1\n\t"                                                                \
    "ssat %[a0], #8, %[a0], asr #1\n\t"

typedef struct { uint32_t v[T_WORDS]; } od_table_t;   /* what the asm reads besides the rows */

/* n output pairs of one channel and output row: y[0], y[s], then y += 2 * s. s = 0 stores the first output only
 * (an odd last one: the second is written first, then overwritten). The rows are read up to pair n. */
OD_NOINLINE void row_channel(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *w, int8_t *y,
                        int32_t s, int32_t n) {
    uint32_t d0, d1, wa, wd;
    int32_t a0, a1;
    __asm__ volatile(
        "1:\n\t"
        OD_PAIR2_ASM
        "strb %[a0], [%[y], %[s]]\n\t"
        "strb %[wd], [%[y]]\n\t"
        "add %[y], %[y], %[s], lsl #1\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [d0] "=&r"(d0), [d1] "=&r"(d1), [wa] "=&r"(wa), [wd] "=&r"(wd), [a0] "=&r"(a0), [a1] "=&r"(a1),
          [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [y] "+r"(y), [n] "+r"(n)
        : [w] "r"(w), [s] "r"(s)
        : "cc", "memory");
}

/* One kernel row of four outputs from pair words j, j + 1, j + 2 (the row pointer moves two pairs on). */
#define OD_ROW4_ASM(r, woff, i1, i2, i3)                      \
    "ldrd %[d0], %[d1], [%[" r "]], #8\n\t"                   \
    "ldrd %[wa], %[wd], [%[w], #" woff "]\n\t"                \
    "smlatb %[a1], %[d0], %[wa], %[" i1 "]\n\t"              \
    "smlad %[a2], %[d1], %[wa], %[" i2 "]\n\t"               \
    "smlatb %[a3], %[d1], %[wa], %[" i3 "]\n\t"              \
    "smlad %[a0], %[d0], %[wa], %[a0]\n\t"                    \
    "smlabt %[a0], %[d1], %[wd], %[a0]\n\t"                   \
    "smlad %[a1], %[d1], %[wd], %[a1]\n\t"                    \
    "ldr %[d0], [%[" r "]]\n\t"                               \
    "smlabt %[a2], %[d0], %[wd], %[a2]\n\t"                   \
    "smlad %[a3], %[d0], %[wd], %[a3]\n\t"

/* Requantize aK (m in d0, ns in d1, R in wa) and store it at [y, #off]. */
#define OD_RQ4_ASM(a, store)                                  \
    "smmlar %[wd], %[" a "], %[d0], %[wa]\n\t"                \
    "add %[" a "], %[wd], %[" a "], asr #31\n\t"              \
    "asr %[" a "], %[" a "], %[d1]\n\t"                       \
    "ssat %[" a "], #8, %[" a "], asr #1\n\t"                 \
    "strb %[" a "], " store "\n\t"

/* One output row of one channel into a stride-4 staging buffer: quads (59 instructions per 36 MACs) up to
 * ch->end, then one pair when ch->pair is set; everything it needs is read from ch (one argument per call). */
OD_NOINLINE void stage4(const od_chan_t *ch) {
    uint32_t d0, d1, wa, wd;
    int32_t a0, a1, a2, a3;
    const uint32_t *r0, *r1, *r2;
    int8_t *y;
    const uint32_t *w = ch->w;
    __asm__ volatile(
        "ldr %[r0], [%[w], %[o_r0]]\n\t"
        "ldr %[r1], [%[w], %[o_r1]]\n\t"
        "ldr %[r2], [%[w], %[o_r2]]\n\t"
        "ldr %[y], [%[w], %[o_y]]\n\t"
        "ldr %[d0], [%[w], %[o_end]]\n\t"
        "cmp %[y], %[d0]\n\t"
        "beq 2f\n\t"
        "1:\n\t"
        "ldr %[a0], [%[w], #24]\n\t"
        OD_ROW4_ASM("r0", "0", "a0", "a0", "a0") OD_ROW4_ASM("r1", "8", "a1", "a2", "a3")
        OD_ROW4_ASM("r2", "16", "a1", "a2", "a3")
        "ldrd %[d0], %[d1], [%[w], #28]\n\t"
        "ldr %[wa], [%[w], #36]\n\t"
        OD_RQ4_ASM("a0", "[%[y]], #16") OD_RQ4_ASM("a1", "[%[y], #-12]") OD_RQ4_ASM("a2", "[%[y], #-8]")
        OD_RQ4_ASM("a3", "[%[y], #-4]")
        "ldr %[d0], [%[w], %[o_end]]\n\t"
        "cmp %[y], %[d0]\n\t"
        "bne 1b\n\t"
        "2:\n\t"
        "ldr %[d0], [%[w], %[o_pair]]\n\t"
        "cmp %[d0], #0\n\t"
        "beq 3f\n\t"
        OD_PAIR2_ASM
        "strb %[wd], [%[y]]\n\t"
        "strb %[a0], [%[y], #4]\n\t"
        "3:\n\t"
        : [d0] "=&r"(d0), [d1] "=&r"(d1), [wa] "=&r"(wa), [wd] "=&r"(wd), [a0] "=&r"(a0), [a1] "=&r"(a1),
          [a2] "=&r"(a2), [a3] "=&r"(a3), [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [y] "=&r"(y)
        : [w] "r"(w), [o_r0] "i"(offsetof(od_chan_t, r[0])), [o_r1] "i"(offsetof(od_chan_t, r[1])),
          [o_r2] "i"(offsetof(od_chan_t, r[2])), [o_y] "i"(offsetof(od_chan_t, y)),
          [o_end] "i"(offsetof(od_chan_t, end)), [o_pair] "i"(offsetof(od_chan_t, pair))
        : "cc", "memory");
}
#else
static inline int32_t lo16(uint32_t x) { return (int16_t)(x & 0xffff); }
static inline int32_t hi16(uint32_t x) { return (int16_t)(x >> 16); }

/* The exact C twin of the asm above. */
static int8_t rq2(int32_t acc2, const uint32_t *w) {
    int32_t v = (int32_t)((uint32_t)od_smmulr(acc2, (int32_t)w[T_M]) + w[T_R]);
    v += acc2 >> 31;
    return (int8_t)od_ssat8_asr1(v >> (int32_t)w[T_NS]);
}

OD_NOINLINE void row_channel(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *w, int8_t *y,
                        int32_t s, int32_t n) {
    const uint32_t *rows[3] = {r0, r1, r2};
    for (int32_t j = 0; j < n; ++j, y += 2 * s) {
        int32_t s0 = (int32_t)w[T_BI], s1 = s0;
        for (int ky = 0; ky < 3; ++ky) {
            const uint32_t *r = rows[ky] + j, wa = w[2 * ky], wd = w[2 * ky + 1];
            s1 = (int32_t)((uint32_t)s1 + (uint32_t)(hi16(r[0]) * lo16(wa)));
            s0 = od_smlad(r[0], wa, s0);
            s0 = (int32_t)((uint32_t)s0 + (uint32_t)(lo16(r[1]) * hi16(wd)));
            s1 = od_smlad(r[1], wd, s1);
        }
        y[s] = rq2(s1, w);
        y[0] = rq2(s0, w);
    }
}

static void stage4(const od_chan_t *ch) {
    row_channel(ch->r[0], ch->r[1], ch->r[2], ch->w, ch->y, 4, (int32_t)(ch->end - ch->y) / 8 + ch->pair);
}
#endif

/* Channel c's table (T_WORDS words, see above); 0 when the folded rounding term R does not fit (the caller then
 * takes the generic ring). The multiplier must exceed 2^30 so that the sign of SMMULR's result is the sign of
 * the accumulator (even, 2x): the asm adds acc >> 31 for gemmlowp's round half away from zero. */
static int prep_channel(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias, const int32_t *mult,
                        const int32_t *shift, int32_t c, uint32_t *w) {
    const int32_t C = p->in_c, ns = ~shift[c];
    const int64_t r = (int64_t)(1 + 2 * p->output_offset) * ((int64_t)1 << (ns & 31));
    if (ns < 0 || ns > 30 || mult[c] <= (1 << 30) || r >= (1 << 30) || r <= -(1 << 30)) return 0;
    int32_t sum = 0;
    for (int ky = 0; ky < 3; ++ky) {
        const int32_t f0 = filter[(3 * ky) * C + c], f1 = filter[(3 * ky + 1) * C + c];
        const int32_t f2 = filter[(3 * ky + 2) * C + c];
        w[2 * ky] = (uint32_t)(uint16_t)(2 * f0) | (uint32_t)(uint16_t)(2 * f1) << 16;
        w[2 * ky + 1] = (uint32_t)(uint16_t)(2 * f1) | (uint32_t)(uint16_t)(2 * f2) << 16;
        sum += f0 + f1 + f2;
    }
    w[T_BI] = (uint32_t)(2 * ((bias ? bias[c] : 0) + p->input_offset * sum));
    w[T_M] = (uint32_t)mult[c];
    w[T_NS] = (uint32_t)ns;
    w[T_R] = (uint32_t)(int32_t)r;
    return 1;
}

int od_dw3x3_block(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                   const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, uint32_t *ring, int8_t *dst,
                   int32_t dst_stride) {
    const int32_t OH = p->out_h, OW = p->out_w, SH = p->stride_h, J = pairs(p);
    od_chan_t ch[4];
    for (int k = 0; k < 4; ++k)
        if (!prep_channel(p, filter, bias, mult, shift, c + k, ch[k].w)) return 0;
    od_fill_t f;
    fill_init(&f, p, in, b, c);
    fill_ring_pad(&f, ring);
    int32_t next = 0, top = 0; /* the next padded row not in the ring yet; ring slot of padded row oy * SH */
    for (int32_t oy = 0; oy < OH; ++oy, top = (top + SH) % 3) {
        for (int32_t py = od_max_i32(next, oy * SH); py < oy * SH + 3; ++py) {
            const int32_t sl = top + py - oy * SH;
            fill_pairs(&f, py, ring + (sl >= 3 ? sl - 3 : sl) * 4 * J);
        }
        next = oy * SH + 3;
        const uint32_t *r0 = ring + top * 4 * J, *r1 = ring + (top >= 2 ? top - 2 : top + 1) * 4 * J;
        const uint32_t *r2 = ring + (top >= 1 ? top - 1 : top + 2) * 4 * J;
        int8_t *y = dst + oy * OW * dst_stride;
        const int32_t q = OW >> 2, j = OW >> 1; /* quads when staged, else pairs; then an odd last output */
        for (int k = 0; k < 4; ++k, r0 += J, r1 += J, r2 += J, ++y) {
            if (dst_stride == 4 && j > 0) {
                od_chan_t *h = &ch[k];
                h->r[0] = r0;
                h->r[1] = r1;
                h->r[2] = r2;
                h->y = y;
                h->end = y + 16 * q;
                h->pair = j & 1;
                stage4(h);
            } else if (j > 0) {
                row_channel(r0, r1, r2, ch[k].w, y, dst_stride, j);
            }
            if (OW & 1) row_channel(r0 + j, r1 + j, r2 + j, ch[k].w, y + 2 * j * dst_stride, 0, 1);
        }
    }
    return 1;
}

#endif
