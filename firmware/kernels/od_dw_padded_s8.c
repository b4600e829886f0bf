/* od_dw_padded_s8.c: DEPTHWISE_CONV_2D (depth multiplier 1, channels a multiple of 4, dilation 1) through a
 * zero-point-padded copy of four channels at a time.
 *
 * For each block of four channels, the padded input rows an output row reads are kept, one word per pixel, in a
 * ring of k_h rows in `scratch`, with a border of the input zero point: a padded value x = zp makes
 * w * (x + off) = 0, exactly the tap TFLM skips. Every window is then interior, so the input offset is added once per output as off * sum(taps) (exact), the taps are
 * widened once per block, and the 3x3 loop is unrolled with no bounds checks.
 * Scratch: od_dw_padded_scratch_bytes(); the in-place variant stages outputs in the first 4 * out_h * out_w bytes.
 */
#include <string.h>

#include "od_dw3x3_s8.h"
#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_mve_s8.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

#define OD_DWP_MAX_TAPS 25 /* up to 5x5: fw[] and rows[] live on the stack */

static int32_t padded_w(const od_conv_params_t *p) { return (p->out_w - 1) * p->stride_w + p->k_w; }

int32_t od_dw_padded_scratch_bytes(const od_conv_params_t *p) {
    const int32_t ring = 4 * p->k_h * padded_w(p); /* the 3x3 ring (od_dw3x3_s8.c) also holds this one */
    return p->k_h == 3 && p->k_w == 3 && p->stride_w == 1 ? od_max_i32(ring, od_dw3x3_scratch_bytes(p)) : ring;
}

#if !defined(OD_KERNELS_REFERENCE)


/* Padded input row py of batch b, channels c..c+3, one word per padded column (the zero point outside). */
static void fill_row(const od_conv_params_t *p, const int8_t *in, int32_t b, int32_t c, int32_t py, uint32_t *row) {
    const int32_t Wp = padded_w(p), IH = p->in_h, IW = p->in_w, C = p->in_c, iy = py - p->pad_h;
    const uint32_t zp = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
    const int32_t x0 = od_min_i32(Wp, od_max_i32(0, p->pad_w)), x1 = od_max_i32(x0, od_min_i32(Wp, IW + p->pad_w));
    if (iy < 0 || iy >= IH) {
        for (int32_t px = 0; px < Wp; ++px) row[px] = zp;
        return;
    }
    for (int32_t px = 0; px < x0; ++px) row[px] = zp;
    const int8_t *src = in + ((b * IH + iy) * IW + (x0 - p->pad_w)) * C + c;
    for (int32_t px = x0; px < x1; ++px, src += C) row[px] = od_read_u32(src);
    for (int32_t px = x1; px < Wp; ++px) row[px] = zp;
}

/* mode (a literal per instantiation): 0 TFLite's exact arithmetic, 1 od_requant_fast_s8 then the activation
 * clamp, 2 od_requant_fast_s8 alone (the activation range is all of int8). */
OD_INLINE int8_t rq(int32_t acc, int32_t m, int32_t s, int32_t ns, int32_t out_off, int32_t rnd, int32_t lo,
                    int32_t hi, int mode) {
    if (mode == 0) return (int8_t)od_clamp_i32(od_mbqm(acc, m, s) + out_off, lo, hi);
    const int32_t v = od_requant_fast_s8(acc, m, ns, rnd);
    return (int8_t)(mode == 2 ? v : od_clamp_i32(v, lo, hi));
}

/* acc[k] += the four channels of one tap: x word against the widened taps f[0] (c0, c2), f[1] (c1, c3). */
#define OD_TAP4(xw, f, a0, a1, a2, a3)                                    \
    do {                                                                  \
        const uint32_t xa_ = od_sxtb16(xw), xb_ = od_sxtb16_ror8(xw);     \
        a0 = od_smlabb(xa_, (f)[0], a0);                                  \
        a2 = od_smlatt(xa_, (f)[0], a2);                                  \
        a1 = od_smlabb(xb_, (f)[1], a1);                                  \
        a3 = od_smlatt(xb_, (f)[1], a3);                                  \
    } while (0)

#if OD_SIMD_NATIVE
/* One tap of four channels: 8 instructions (GCC hoists all nine taps' loads of the C form and spills). */
#define OD_TAP_ASM(row, xoff, foff)                            \
    "ldr %[x], [%[" row "], #" xoff "]\n\t"                    \
    "ldrd %[f0], %[f1], [%[fw], #" foff "]\n\t"                \
    "sxtb16 %[xb], %[x], ror #8\n\t"                           \
    "sxtb16 %[x], %[x]\n\t"                                    \
    "smlabb %[a0], %[x], %[f0], %[a0]\n\t"                     \
    "smlatt %[a2], %[x], %[f0], %[a2]\n\t"                     \
    "smlabb %[a1], %[xb], %[f1], %[a1]\n\t"                    \
    "smlatt %[a3], %[xb], %[f1], %[a3]\n\t"

typedef struct { uint32_t v[3]; } od_words3_t;   /* what the asm reads, so no "memory" clobber is needed */
typedef struct { uint32_t v[18]; } od_words18_t;

OD_INLINE void dw_taps9(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *fw,
                        int32_t *acc) {
    uint32_t x, xb, f0, f1;
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    __asm__(OD_TAP_ASM("r0", "0", "0") OD_TAP_ASM("r0", "4", "8") OD_TAP_ASM("r0", "8", "16")
                OD_TAP_ASM("r1", "0", "24") OD_TAP_ASM("r1", "4", "32") OD_TAP_ASM("r1", "8", "40")
                    OD_TAP_ASM("r2", "0", "48") OD_TAP_ASM("r2", "4", "56") OD_TAP_ASM("r2", "8", "64")
            : [x] "=&r"(x), [xb] "=&r"(xb), [f0] "=&r"(f0), [f1] "=&r"(f1), [a0] "+r"(s0), [a1] "+r"(s1),
              [a2] "+r"(s2), [a3] "+r"(s3)
            : [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [fw] "r"(fw), "m"(*(const od_words3_t *)(const void *)r0),
              "m"(*(const od_words3_t *)(const void *)r1), "m"(*(const od_words3_t *)(const void *)r2),
              "m"(*(const od_words18_t *)(const void *)fw));
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}
#else
OD_INLINE void dw_taps9(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2, const uint32_t *fw,
                        int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    const uint32_t *rows[3] = {r0, r1, r2};
    for (int t = 0; t < 9; ++t) OD_TAP4(rows[t / 3][t % 3], fw + 2 * t, s0, s1, s2, s3);
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}
#endif

/* One pixel's four channels: exact per byte (mode 0), or od_requant_fast_s8 packed into one word, clamped
 * lane-wise to the activation range (mode 1; mode 2: the range is all of int8) and stored at once. */
OD_INLINE void store4(int8_t *y, const int32_t *a, const int32_t *m, const int32_t *s, const int32_t *ns,
                      int32_t out_off, int32_t rnd, int32_t lo, int32_t hi, uint32_t lo4, uint32_t hi4, int mode) {
    if (mode == 0) {
        for (int k = 0; k < 4; ++k) y[k] = rq(a[k], m[k], s[k], ns[k], out_off, rnd, lo, hi, mode);
        return;
    }
    uint32_t w = od_pack4_s8(od_requant_fast_s8(a[0], m[0], ns[0], rnd), od_requant_fast_s8(a[1], m[1], ns[1], rnd),
                             od_requant_fast_s8(a[2], m[2], ns[2], rnd), od_requant_fast_s8(a[3], m[3], ns[3], rnd));
    if (mode == 1) w = od_clamp4_s8(w, lo4, hi4);
    od_write_u32(y, w);
}

OD_INLINE void block_pixels(const od_conv_params_t *p, const int8_t *in, int32_t b, int32_t c, uint32_t *strip,
                            const uint32_t *fw, const int32_t *a_init, const int32_t *m, const int32_t *s,
                            const int32_t *ns, int8_t *dst, int32_t dst_stride, int mode) {
    const int32_t OH = p->out_h, OW = p->out_w, KH = p->k_h, KW = p->k_w, SH = p->stride_h, SW = p->stride_w;
    const int32_t Wp = padded_w(p), out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int32_t rnd = 1 + 2 * out_off;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    const int is3x3 = KH == 3 && KW == 3;
    const uint32_t *rows[OD_DWP_MAX_TAPS];
    int32_t next = 0; /* the next padded row not in the ring yet */
    int32_t top = 0;  /* ring slot of padded row oy * SH (row py lives in slot py % KH) */
    for (int32_t oy = 0; oy < OH; ++oy, top = (top + SH) % KH) {
        /* A ring of KH padded rows: each output row adds only the stride_h rows it does not share. */
        for (int32_t py = od_max_i32(next, oy * SH); py < oy * SH + KH; ++py) {
            const int32_t sl = top + py - oy * SH;
            fill_row(p, in, b, c, py, strip + (sl >= KH ? sl - KH : sl) * Wp);
        }
        next = oy * SH + KH;
        for (int32_t ky = 0; ky < KH; ++ky) rows[ky] = strip + (top + ky >= KH ? top + ky - KH : top + ky) * Wp;
        int8_t *y = dst + oy * OW * dst_stride;
        if (is3x3) {
            const uint32_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
            for (int32_t ox = 0; ox < OW; ++ox, r0 += SW, r1 += SW, r2 += SW, y += dst_stride) {
                int32_t a[4] = {a_init[0], a_init[1], a_init[2], a_init[3]};
                dw_taps9(r0, r1, r2, fw, a);
                store4(y, a, m, s, ns, out_off, rnd, lo, hi, lo4, hi4, mode);
            }
            continue;
        }
        for (int32_t ox = 0, xo = 0; ox < OW; ++ox, xo += SW, y += dst_stride) {
            int32_t a[4] = {a_init[0], a_init[1], a_init[2], a_init[3]};
            const uint32_t *f = fw;
            for (int32_t ky = 0; ky < KH; ++ky)
                for (int32_t kx = 0; kx < KW; ++kx, f += 2) OD_TAP4(rows[ky][xo + kx], f, a[0], a[1], a[2], a[3]);
            store4(y, a, m, s, ns, out_off, rnd, lo, hi, lo4, hi4, mode);
        }
    }
}

/* Channels c..c+3 of every pixel of batch b into dst[pixel * dst_stride + k], through the generic ring. */
static void dw_padded_block(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, uint32_t *strip,
                            int8_t *dst, int32_t dst_stride) {
    const int32_t taps = p->k_h * p->k_w, C = p->in_c, off = p->input_offset;
    uint32_t fw[2 * OD_DWP_MAX_TAPS];
    int32_t a_init[4];
    for (int k = 0; k < 4; ++k) a_init[k] = bias ? bias[c + k] : 0;
    for (int32_t t = 0; t < taps; ++t) {
        const int8_t *f = filter + t * C + c;
        const uint32_t fv = od_read_u32(f);
        fw[2 * t] = od_sxtb16(fv);
        fw[2 * t + 1] = od_sxtb16_ror8(fv);
        for (int k = 0; k < 4; ++k) a_init[k] += off * f[k]; /* the input offset of every (interior) tap */
    }
    const int32_t ns[4] = {~shift[c], ~shift[c + 1], ~shift[c + 2], ~shift[c + 3]};
    if (p->requant_fast && p->act_min == -128 && p->act_max == 127)
        block_pixels(p, in, b, c, strip, fw, a_init, mult + c, shift + c, ns, dst, dst_stride, 2);
    else if (p->requant_fast)
        block_pixels(p, in, b, c, strip, fw, a_init, mult + c, shift + c, ns, dst, dst_stride, 1);
    else
        block_pixels(p, in, b, c, strip, fw, a_init, mult + c, shift + c, ns, dst, dst_stride, 0);
}

/* One block by the 3x3 block when fits3x3 (od_dw3x3_fits(p), asked once per op) and its proofs hold, else by the
 * generic ring; called from the entry points so that the two frames never stack. Returns 1 when the outputs are
 * still to be clamped to the activation range (the 3x3 block leaves that to the copy that follows it). */
static int run_block(const od_conv_params_t *p, int fits3x3, const int8_t *in, const int8_t *filter,
                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t b, int32_t c,
                     uint32_t *strip, int8_t *dst, int32_t dst_stride) {
    if (fits3x3 && od_dw3x3_block(p, in, filter, bias, mult, shift, b, c, strip, dst, dst_stride))
        return p->act_min != -128 || p->act_max != 127;
    dw_padded_block(p, in, filter, bias, mult, shift, b, c, strip, dst, dst_stride);
    return 0;
}

/* Four channels of n pixels from src (stride ss) to dst (stride ds), clamped lane-wise to the activation range
 * when clamp is set (src == dst is fine). */
static void copy4(const od_conv_params_t *p, const int8_t *src, int32_t ss, int8_t *dst, int32_t ds, int32_t n,
                  int clamp) {
    const uint32_t lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u, hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    if (clamp) {
        for (int32_t k = n >> 1; k > 0; --k, src += 2 * ss, dst += 2 * ds) { /* two pixels per step */
            const uint32_t a = od_read_u32(src), b = od_read_u32(src + ss);
            od_write_u32(dst, od_clamp4_s8(a, lo4, hi4));
            od_write_u32(dst + ds, od_clamp4_s8(b, lo4, hi4));
        }
        if (n & 1) od_write_u32(dst, od_clamp4_s8(od_read_u32(src), lo4, hi4));
    } else
        for (int32_t k = 0; k < n; ++k, src += ss, dst += ds) od_write_u32(dst, od_read_u32(src));
}

/* copy4 from the word-aligned staging of the in-place kernel, two pixels per step. */
static void copy_staged(const od_conv_params_t *p, const uint32_t *t, int8_t *dst, int32_t ds, int32_t n, int clamp) {
    if (!clamp) {
        for (const uint32_t *end = t + (n & ~1); t != end; t += 2, dst += 2 * ds) {
            const uint32_t a = t[0], b = t[1];
            od_write_u32(dst, a);
            od_write_u32(dst + ds, b);
        }
        if (n & 1) od_write_u32(dst, t[0]);
        return;
    }
    const uint32_t lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u, hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    for (const uint32_t *end = t + (n & ~1); t != end; t += 2, dst += 2 * ds) {
        const uint32_t a = t[0], b = t[1];
        od_write_u32(dst, od_clamp4_s8(a, lo4, hi4));
        od_write_u32(dst + ds, od_clamp4_s8(b, lo4, hi4));
    }
    if (n & 1) od_write_u32(dst, od_clamp4_s8(t[0], lo4, hi4));
}

static int padded_ok(const od_conv_params_t *p) {
    return p->depth_multiplier == 1 && p->in_c == p->out_c && (p->in_c & 3) == 0 && p->dil_h == 1 &&
           p->dil_w == 1 && p->k_h * p->k_w <= OD_DWP_MAX_TAPS;
}

#if OD_MVE
/* Helium unless the DSP 3x3 block fits and the rows are wide enough for its column pairs to pay: there it takes
 * fewer instructions on the M55 too (kernel_bench: 16x16 c8 2.9 vs 3.9 per MAC; 4x4 c256 keeps Helium). */
static int mve_dw(const od_conv_params_t *p) { return od_mve_dw_fits(p) && !(od_dw3x3_fits(p) && p->out_w >= 5); }
#endif

#endif

od_status_t od_depthwise_conv2d_s8_padded(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                          const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                          int8_t *out, int8_t *scratch) {
#if defined(OD_KERNELS_REFERENCE)
    (void)scratch;
    return od_depthwise_conv2d_s8_ref(p, in, filter, bias, mult, shift, out);
#else
    OD_CHECK_PTR(p);
    if (!padded_ok(p)) return od_depthwise_conv2d_s8_opt(p, in, filter, bias, mult, shift, out);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    OD_CHECK(scratch != NULL && ((uintptr_t)scratch & 3) == 0);
    const int32_t plane = p->out_h * p->out_w * p->out_c;
#if OD_MVE
    for (int32_t b = 0; mve_dw(p) && b < p->batches; ++b)
        for (int32_t c = 0; c < p->in_c; c += 4)
            od_mve_dw_block4(p, in, filter, bias, mult, shift, b, c, out + b * plane + c, p->out_c);
    if (mve_dw(p)) return OD_OK;
#endif
    const int32_t pixels = p->out_h * p->out_w, C = p->out_c;
    const int fits3x3 = od_dw3x3_fits(p);
    for (int32_t b = 0; b < p->batches; ++b)
        for (int32_t c = 0; c < C; c += 4) {
            int8_t *y = out + b * plane + c;
            if (run_block(p, fits3x3, in, filter, bias, mult, shift, b, c, (uint32_t *)(void *)scratch, y, C))
                copy4(p, y, C, y, C, pixels, 1);
        }
    return OD_OK;
#endif
}

/* In place (the input dies here): block c's outputs are staged in tmp[0 .. 4 * out_h * out_w) and copied over
 * input channels c..c+3 once the block has read them (its padded copy is taken first). */
od_status_t od_depthwise_conv2d_s8_inplace_padded(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                                  const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                                  int8_t *tmp) {
#if defined(OD_KERNELS_REFERENCE)
    return od_depthwise_conv2d_s8_inplace_ref(p, buf, filter, bias, mult, shift, tmp);
#else
    OD_CHECK_PTR(p);
    if (!padded_ok(p) || p->batches != 1) return od_depthwise_conv2d_s8_inplace_opt(p, buf, filter, bias, mult, shift, tmp);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK(tmp != NULL && ((uintptr_t)tmp & 3) == 0);
    OD_CHECK(p->out_h * p->out_w <= p->in_h * p->in_w);
    const int32_t pixels = p->out_h * p->out_w, C = p->out_c, stage = (4 * pixels + 3) & ~3;
#if OD_MVE
    for (int32_t c = 0; mve_dw(p) && c < C; c += 4) {
        od_mve_dw_block4(p, buf, filter, bias, mult, shift, 0, c, tmp, 4);
        for (int32_t k = 0; k < pixels; ++k) memcpy(buf + k * C + c, tmp + 4 * k, 4);
    }
    if (mve_dw(p)) return OD_OK;
#endif
    const int fits3x3 = od_dw3x3_fits(p);
    for (int32_t c = 0; c < C; c += 4) {
        const int clamp = run_block(p, fits3x3, buf, filter, bias, mult, shift, 0, c,
                                          (uint32_t *)(void *)(tmp + stage), tmp, 4);
        copy_staged(p, (const uint32_t *)(const void *)tmp, buf + c, C, pixels, clamp);
    }
    return OD_OK;
#endif
}
