/* od_conv_im2col_s8.c: CONV_2D (any kernel size, stride, padding; dilation 1) as im2col + matrix multiply.
 *
 * Where od_im2col_block4 says (up to 64 depths) the four-pixel block runs (od_conv_block4_s8.c). Else two
 * output pixels at a time: their receptive fields are widened once to int16 (input offset added, padded taps
 * written as 0 so they add nothing) into `scratch`, then every pair of output channels is a 2x2 register block
 * of SMLADs over that q15 buffer. The code generator lays the weights out in the order this kernel reads them:
 * per channel pair and group of four depths, 4 bytes of each channel as [w0 w2 w1 w3] (one SXTB16 gives
 * (w0, w1), SXTB16 ROR 8 gives (w2, w3), matching the q15 input pairs); see od_im2col_w_index. Integer sums
 * are exact, so the result is bit-identical with the reference kernel. Scratch: od_conv2d_im2col_scratch_bytes()
 * (four fields where the block runs, else two). */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_im2col_common.h"
#include "od_kernels.h"
#include "od_kernels_ext.h"
#include "od_mve_s8.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_NOINLINE __attribute__((noinline))
#else
#define OD_NOINLINE
#endif


/* Position of depth d of row r in an R-row scratch (layout: od_im2col_common.h). */
static inline int32_t q15_pos(int32_t R, int32_t r, int32_t d) {
    return (d >> 2) * 4 * R + ((d >> 1) & 1) * 2 * R + r * 2 + (d & 1);
}

/* Depths d..d+n of the row at dst (the scratch + 2r int16) of an R-row scratch: src[i] + off as int16
 * (src == NULL: zeros, a padded tap). */
OD_INLINE void put_run_r(int16_t *dst, int32_t R, int32_t d, const int8_t *src, int32_t n, int32_t off) {
    if (((d | n) & 3) == 0) { /* whole groups: two words per four values */
        uint32_t *w = (uint32_t *)(void *)dst + (d >> 2) * 2 * R;
        const uint32_t off2 = od_dup16(off);
        if (!src) {
            for (; n > 0; n -= 4, w += 2 * R) w[0] = w[R] = 0;
            return;
        }
        for (; n > 0; n -= 4, w += 2 * R, src += 4) {
            const uint32_t u = od_read_u32(src);
            const uint32_t a = od_sadd16(od_sxtb16(u), off2), b = od_sadd16(od_sxtb16_ror8(u), off2);
            w[0] = od_pack_lo16(a, b); /* (x0, x1) */
            w[R] = od_pack_hi16(a, b); /* (x2, x3) */
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) dst[q15_pos(R, 0, d + i)] = (int16_t)(src ? src[i] + off : 0);
}

/* One instance per R, out of line (six arguments, as few on the stack as before). */
OD_NOINLINE static void put_run2(int16_t *dst, int32_t d, const int8_t *src, int32_t n, int32_t off) {
    put_run_r(dst, 2, d, src, n, off);
}
OD_NOINLINE static void put_run4(int16_t *dst, int32_t d, const int8_t *src, int32_t n, int32_t off) {
    put_run_r(dst, 4, d, src, n, off);
}
OD_INLINE void put_run(int16_t *dst, int32_t R, int32_t r, int32_t d, const int8_t *src, int32_t n, int32_t off) {
    if (R == 2)
        put_run2(dst + 2 * r, d, src, n, off);
    else
        put_run4(dst + 2 * r, d, src, n, off);
}

OD_INLINE void im2col_pixel(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t R, int32_t r,
                            int16_t *dst) {
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KH = p->k_h, KW = p->k_w, off = p->input_offset;
    const int32_t ox = pix % p->out_w, t = pix / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_max_i32(kx0, od_min_i32(KW, IW - x0));
    for (int32_t ky = 0, d = 0; ky < KH; ++ky, d += KW * C) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= IH || kx1 == kx0) {
            put_run(dst, R, r, d, NULL, KW * C, 0);
            continue;
        }
        if (kx0 > 0) put_run(dst, R, r, d, NULL, kx0 * C, 0);
        put_run(dst, R, r, d + kx0 * C, in + ((b * IH + iy) * IW + x0 + kx0) * C, (kx1 - kx0) * C, off);
        if (kx1 < KW) put_run(dst, R, r, d + kx1 * C, NULL, (KW - kx1) * C, 0);
    }
}

/* Byte loops stay loops: a memcpy/memset call costs more than the few bytes of a tap row. */
#if defined(__GNUC__) && !defined(__clang__)
#define OD_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define OD_NO_LIBCALLS
#endif

/* Depths up to which a pixel's field is gathered as bytes first (a first layer: C = 1..3, D = 9 or 27). */
#define OD_IM2COL_GATHER_MAX_D 32

/* Small depths: the field gathered into a byte buffer (a padded tap as -input_offset, the zero point, which
 * widens to 0; the depth rounded up to whole groups the same way), then widened a group at a time: a byte
 * copy per tap, not a run call per tap row (featconv, C = 1: 13.2 -> 10.8 instructions per MAC on the M4). */
/* Row r of an R-row scratch at dst + 2r int16 (R and r folded into two arguments: five in all, as the callers',
 * so theirs are tail calls, no frame between). One instance for both R: the flash of one. */
OD_NOINLINE OD_NO_LIBCALLS static void gather_pixel(const od_conv_params_t *p, const int8_t *in, int32_t pix,
                                                   int32_t R, int16_t *dst) {
    uint32_t buf[OD_IM2COL_GATHER_MAX_D / 4];
    const int32_t IH = p->in_h, IW = p->in_w, C = p->in_c, KW = p->k_w, off = p->input_offset;
    const int32_t ox = pix % p->out_w, t = pix / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t D = p->k_h * KW * C, G = (D + 3) >> 2;
    const uint8_t zp = (uint8_t)(-off);
    const int32_t kx0 = od_max_i32(0, -x0), kx1 = od_max_i32(kx0, od_min_i32(KW, IW - x0));
    const int32_t n0 = kx0 * C, n1 = kx1 * C, RW = KW * C; /* per row: n0 padded, n1 - n0 copied, RW - n1 padded */
    int8_t *o = (int8_t *)(void *)buf;
    buf[G - 1] = zp * 0x01010101u; /* the rounded-up tail */
    if (n0 == 0 && n1 == RW && y0 >= 0 && y0 + p->k_h <= IH) { /* an inner pixel: whole rows */
        const int8_t *src = in + ((b * IH + y0) * IW + x0) * C;
        for (int32_t ky = 0; ky < p->k_h; ++ky, o += RW, src += IW * C)
            for (int32_t i = 0; i < RW; ++i) o[i] = src[i];
    } else {
        for (int32_t ky = 0; ky < p->k_h; ++ky, o += RW) {
            const int32_t iy = y0 + ky;
            int32_t i = 0;
            if (iy >= 0 && iy < IH) {
                const int8_t *src = in + ((b * IH + iy) * IW + x0) * C; /* read from n0 on: inside the row */
                for (; i < n0; ++i) o[i] = (int8_t)zp;
                for (; i < n1; ++i) o[i] = src[i];
            }
            for (; i < RW; ++i) o[i] = (int8_t)zp;
        }
    }
    uint32_t *w = (uint32_t *)(void *)dst;
    const uint32_t off2 = od_dup16(off);
    for (int32_t g = 0; g < G; ++g, w += 2 * R) {
        const uint32_t u = buf[g];
        const uint32_t a = od_sadd16(od_sxtb16(u), off2), c = od_sadd16(od_sxtb16_ror8(u), off2);
        w[0] = od_pack_lo16(a, c); /* (x0, x1) */
        w[R] = od_pack_hi16(a, c); /* (x2, x3) */
    }
}

/* Channels in whole groups keep the run path (a word per four); the gather needs the zero point as a byte. */
OD_INLINE int gathers(const od_conv_params_t *p) {
    return (p->in_c & 3) && p->k_h * p->k_w * p->in_c <= OD_IM2COL_GATHER_MAX_D && p->input_offset >= -127 &&
           p->input_offset <= 128;
}

/* R a literal per instance (two rows here, four for od_conv_block4_s8.c). */
OD_NOINLINE static void im2col_pixel2(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r,
                                      int16_t *dst) {
    im2col_pixel(p, in, pix, 2, r, dst);
}
OD_NOINLINE static void im2col_pixel4(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r,
                                      int16_t *dst) {
    im2col_pixel(p, in, pix, 4, r, dst);
}

/* Siblings, not nested: the gather's buffer and the run path's frame are never on the stack together. */
OD_INLINE void field2(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r, int16_t *dst) {
    if (gathers(p))
        gather_pixel(p, in, pix, 2, dst + 2 * r);
    else
        im2col_pixel2(p, in, pix, r, dst);
}

void od_im2col_pixel4_s8(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r, int16_t *dst) {
    if (gathers(p))
        gather_pixel(p, in, pix, 4, dst + 2 * r);
    else
        im2col_pixel4(p, in, pix, r, dst);
}

/* Both scratch rows against a channel pair's interleaved weights: per group, 4 bytes of channel o
 * ([w0 w2 w1 w3]) then 4 of channel o+1; then the T tail bytes of o, then of o+1. */
OD_INLINE void dot2x2_q15(const int16_t *x, const int8_t *wp, int32_t G, int32_t T, int32_t *a) {
    int32_t s00 = a[0], s01 = a[1], s10 = a[2], s11 = a[3];
    const uint32_t *xp = (const uint32_t *)(const void *)x;
#if OD_SIMD_NATIVE
    /* 17 instructions per 16 MACs (two groups per iteration; an odd G enters at the second group); the C form
     * below lets GCC spill accumulators. wp may be unaligned: LDR only. */
    if (G > 0) {
        uint32_t w0, w1, t0, t1, xa, xb;
        int32_t n = (G + 1) >> 1;
#define OD_GROUP_ASM                                 \
    "ldr %[w1], [%[wp], #4]\n\t"                    \
    "ldr %[w0], [%[wp]], #8\n\t"                    \
    "ldrd %[xa], %[xb], [%[xp]], #8\n\t"            \
    "sxtb16 %[t0], %[w0]\n\t"                       \
    "sxtb16 %[t1], %[w1]\n\t"                       \
    "smlad %[s00], %[t0], %[xa], %[s00]\n\t"        \
    "smlad %[s10], %[t0], %[xb], %[s10]\n\t"        \
    "smlad %[s01], %[t1], %[xa], %[s01]\n\t"        \
    "smlad %[s11], %[t1], %[xb], %[s11]\n\t"        \
    "ldrd %[xa], %[xb], [%[xp]], #8\n\t"            \
    "sxtb16 %[t0], %[w0], ror #8\n\t"               \
    "sxtb16 %[t1], %[w1], ror #8\n\t"               \
    "smlad %[s00], %[t0], %[xa], %[s00]\n\t"        \
    "smlad %[s10], %[t0], %[xb], %[s10]\n\t"        \
    "smlad %[s01], %[t1], %[xa], %[s01]\n\t"        \
    "smlad %[s11], %[t1], %[xb], %[s11]\n\t"
        __asm__ volatile(
            "tst %[g], #1\n\t"
            "bne 2f\n\t"
            "1:\n\t" OD_GROUP_ASM
            "2:\n\t" OD_GROUP_ASM
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [w0] "=&r"(w0), [w1] "=&r"(w1), [t0] "=&r"(t0), [t1] "=&r"(t1), [xa] "=&r"(xa), [xb] "=&r"(xb),
              [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [xp] "+r"(xp), [wp] "+r"(wp),
              [n] "+r"(n)
            : [g] "r"(G)
            : "cc", "memory");
#undef OD_GROUP_ASM
    }
#else
    for (int32_t g = 0; g < G; ++g, xp += 4, wp += 8) {
        const uint32_t w0 = od_read_u32(wp), w1 = od_read_u32(wp + 4);
        uint32_t x0 = xp[0], x1 = xp[1];
        uint32_t t0 = od_sxtb16(w0), t1 = od_sxtb16(w1);
        s00 = od_smlad(t0, x0, s00);
        s10 = od_smlad(t0, x1, s10);
        s01 = od_smlad(t1, x0, s01);
        s11 = od_smlad(t1, x1, s11);
        x0 = xp[2];
        x1 = xp[3];
        t0 = od_sxtb16_ror8(w0);
        t1 = od_sxtb16_ror8(w1);
        s00 = od_smlad(t0, x0, s00);
        s10 = od_smlad(t0, x1, s10);
        s01 = od_smlad(t1, x0, s01);
        s11 = od_smlad(t1, x1, s11);
    }
#endif
    const int16_t *t = (const int16_t *)(const void *)xp;
    for (int32_t d = 0; d < T; ++d) {
        const int32_t v0 = t[(d >> 1) * 4 + (d & 1)], v1 = t[(d >> 1) * 4 + 2 + (d & 1)];
        s00 += wp[d] * v0;
        s10 += wp[d] * v1;
        s01 += wp[T + d] * v0;
        s11 += wp[T + d] * v1;
    }
    a[0] = s00;
    a[1] = s01;
    a[2] = s10;
    a[3] = s11;
}

/* The odd last channel: its own row ([w0 w2 w1 w3] groups, natural tail) against both scratch rows. */
static void dot2x1_q15(const int16_t *x, const int8_t *wp, int32_t G, int32_t T, int32_t *a0, int32_t *a1) {
    int32_t s0 = *a0, s1 = *a1;
    const uint32_t *xp = (const uint32_t *)(const void *)x;
    for (int32_t g = 0; g < G; ++g, xp += 4, wp += 4) {
        const uint32_t w = od_read_u32(wp);
        s0 = od_smlad(od_sxtb16(w), xp[0], s0);
        s1 = od_smlad(od_sxtb16(w), xp[1], s1);
        s0 = od_smlad(od_sxtb16_ror8(w), xp[2], s0);
        s1 = od_smlad(od_sxtb16_ror8(w), xp[3], s1);
    }
    const int16_t *t = (const int16_t *)(const void *)xp;
    for (int32_t d = 0; d < T; ++d) {
        s0 += wp[d] * t[(d >> 1) * 4 + (d & 1)];
        s1 += wp[d] * t[(d >> 1) * 4 + 2 + (d & 1)];
    }
    *a0 = s0;
    *a1 = s1;
}

/* Channels o, o+1 of one pixel (accumulators a0, a1) with od_requant_fast_s8, packed, clamped, one halfword
 * store. mode 2: the activation range is all of int8, no clamp. */
OD_INLINE void store_pair(int8_t *y, int32_t a0, int32_t a1, int32_t m0, int32_t n0, int32_t m1, int32_t n1,
                          int32_t rnd, uint32_t lo4, uint32_t hi4, int mode) {
    uint32_t w = od_pack2_s8(od_requant_fast_s8(a0, m0, n0, rnd), od_requant_fast_s8(a1, m1, n1, rnd));
    if (mode == 1) w = od_clamp4_s8(w, lo4, hi4);
    od_write_u16(y, w);
}

/* Every output channel of the pixel pair in the scratch (two: a literal, 0 for an odd last pixel written once).
 * mode (a literal per instantiation): 0 TFLite's exact requantization, 1 od_requant_fast_s8 + the activation
 * clamp, 2 od_requant_fast_s8 alone. */
OD_INLINE void pair_channels(const od_conv_params_t *p, const int8_t *filter, const int32_t *bias,
                             const int32_t *mult, const int32_t *shift, int8_t *y0, const int16_t *scratch, int two,
                             int mode) {
    const int32_t D = p->k_h * p->k_w * p->in_c, G = D >> 2, T = D & 3, OC = p->out_c;
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max, rnd = 1 + 2 * out_off;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    const int fast = mode != 0;
    int8_t *y1 = y0 + OC;
    int32_t o = 0;
    for (; o + 2 <= OC; o += 2) {
        int32_t a[4] = {0, 0, 0, 0};
        if (bias) a[0] = a[2] = bias[o], a[1] = a[3] = bias[o + 1];
        dot2x2_q15(scratch, filter + o * D, G, T, a);
        const int32_t m0 = mult[o], s0 = shift[o], m1 = mult[o + 1], s1 = shift[o + 1];
        if (mode != 0) {
            store_pair(y0 + o, a[0], a[1], m0, ~s0, m1, ~s1, rnd, lo4, hi4, mode);
            if (two) store_pair(y1 + o, a[2], a[3], m0, ~s0, m1, ~s1, rnd, lo4, hi4, mode);
            continue;
        }
        y0[o] = rq(a[0], m0, s0, out_off, lo, hi, fast);
        y0[o + 1] = rq(a[1], m1, s1, out_off, lo, hi, fast);
        if (two) {
            y1[o] = rq(a[2], m0, s0, out_off, lo, hi, fast);
            y1[o + 1] = rq(a[3], m1, s1, out_off, lo, hi, fast);
        }
    }
    if (o < OC) {
        int32_t a0 = bias ? bias[o] : 0, a1 = a0;
        dot2x1_q15(scratch, filter + o * D, G, T, &a0, &a1);
        y0[o] = rq(a0, mult[o], shift[o], out_off, lo, hi, fast);
        if (two) y1[o] = rq(a1, mult[o], shift[o], out_off, lo, hi, fast);
    }
}

OD_INLINE void conv_pairs(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch, int mode) {
    const int32_t pixels = p->batches * p->out_h * p->out_w, OC = p->out_c;
    int32_t px = 0;
    for (; px + 1 < pixels; px += 2) {
        field2(p, in, px, 0, scratch);
        field2(p, in, px + 1, 1, scratch);
        pair_channels(p, filter, bias, mult, shift, out + px * OC, scratch, 1, mode);
    }
    if (px < pixels) { /* an odd last pixel: both scratch rows, written once */
        field2(p, in, px, 0, scratch);
        field2(p, in, px, 1, scratch);
        pair_channels(p, filter, bias, mult, shift, out + px * OC, scratch, 0, mode);
    }
}


int32_t od_conv2d_im2col_scratch_bytes(int32_t k_h, int32_t k_w, int32_t in_c) {
    const int32_t D = k_h * k_w * in_c;
    return (od_im2col_block4(D) ? 32 : 16) * ((D + 3) >> 2);
}

od_status_t od_conv2d_s8_im2col_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px)
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            const int32_t acc = od_im2col_ref_acc(p, in, filter, bias, px, oc);
            out[px * p->out_c + oc] =
                (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min, p->act_max);
        }
    return OD_OK;
}

#if defined(OD_KERNELS_REFERENCE)
/* In place (1x1, stride 1, out_c <= in_c): each pixel's input is copied before its outputs overwrite it. */
static od_status_t im2col_ref_inplace(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *x) {
    const int32_t IC = p->in_c, OC = p->out_c;
    if (p->k_h != 1 || p->k_w != 1 || p->stride_h != 1 || p->stride_w != 1) /* strided in place (planner-checked) */
        return od_conv2d_s8_im2col_ref_staged(p, buf, filter, bias, mult, shift, x);
    OD_CHECK(p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && OC <= IC && x != NULL);
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px) {
        memcpy(x, buf + px * IC, (size_t)IC);
        for (int32_t oc = 0; oc < OC; ++oc) {
            int32_t acc = bias ? bias[oc] : 0;
            for (int32_t ic = 0; ic < IC; ++ic)
                acc += (int32_t)filter[od_im2col_w_index(oc, ic, IC, OC)] * ((int32_t)x[ic] + p->input_offset);
            buf[px * OC + oc] =
                (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min, p->act_max);
        }
    }
    return OD_OK;
}
#endif

/* The pair kernel in its own frame (the four-pixel block is a sibling call of the dispatch, not nested). */
OD_NOINLINE static od_status_t conv_pairs_any(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                              const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                              int8_t *out, int16_t *scratch) {
    if (p->requant_fast && p->act_min == -128 && p->act_max == 127)
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 2);
    else if (p->requant_fast)
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 1);
    else
        conv_pairs(p, in, filter, bias, mult, shift, out, scratch, 0);
    return OD_OK;
}

/* in == out is allowed for a 1x1 stride-1 conv with out_c <= in_c (the planner's in-place case): a pixel pair's
 * inputs are in the scratch before its outputs land, at or before those inputs. */
od_status_t od_conv2d_s8_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                int16_t *scratch) {
#if defined(OD_KERNELS_REFERENCE)
    if (in == out) return im2col_ref_inplace(p, out, filter, bias, mult, shift, (int8_t *)(void *)scratch);
    return od_conv2d_s8_im2col_ref(p, in, filter, bias, mult, shift, out);
#endif
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    OD_CHECK_PTR(scratch);
    OD_CHECK(p->dil_h == 1 && p->dil_w == 1 && ((uintptr_t)scratch & 3) == 0);
#if OD_MVE
    /* Up to 16 depths the DSP four-pixel block takes fewer instructions than Helium's duplicated field
     * (kernel_bench M55: 1x1 c8 4.68 -> 2.78, c16 2.20 -> 1.76; 3x3 c3, D = 27, stays Helium at 2.77). */
    if (od_mve_conv2d_im2col_fits(p) && !(od_im2col_block4(p->k_h * p->k_w * p->in_c) && p->k_h * p->k_w * p->in_c <= 16))
        return od_mve_conv2d_im2col(p, in, filter, bias, mult, shift, out, scratch);
#endif
    if (od_im2col_block4(p->k_h * p->k_w * p->in_c)) /* a sibling call: this frame is gone by then */
        return od_conv2d_s8_im2col_block4(p, in, filter, bias, mult, shift, out, scratch);
    return conv_pairs_any(p, in, filter, bias, mult, shift, out, scratch);
}
