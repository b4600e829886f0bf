/* od_im2col_common.h: what the im2col CONV_2D (od_conv_im2col_s8.c, od_conv_block_s8.c) and its in-place
 * reference twin (od_rowexec_s8.c) share: the code generator's weight order and the reference dot product. */
#ifndef OD_IM2COL_COMMON_H
#define OD_IM2COL_COMMON_H

#include <stdint.h>

#include "od_fixedpoint.h"
#include "od_kernels.h"
#include "od_simd.h"

#if defined(__GNUC__)
#define OD_INLINE static inline __attribute__((always_inline))
#else
#define OD_INLINE static inline
#endif

/* Index of weight d of channel o in the reordered filter (ondevice/mcu/layouts.py im2col_filter): per channel pair
 * and group of four depths, 4 bytes of each channel as [w0 w2 w1 w3]; then each channel's D % 4 tail; an odd last
 * channel alone (groups reordered, natural tail). */
static inline int32_t od_im2col_w_index(int32_t o, int32_t d, int32_t D, int32_t OC) {
    const int32_t G4 = D & ~3, perm = (d & ~3) | ((d & 1) << 1) | ((d & 2) >> 1);
    if ((OC & 1) && o == OC - 1) return o * D + (d < G4 ? perm : d);
    const int32_t base = (o & ~1) * D, k = o & 1;
    return d < G4 ? base + (d >> 2) * 8 + k * 4 + (perm & 3) : base + 2 * G4 + k * (D - G4) + (d - G4);
}

/* TFLite's accumulator of output pixel px, channel oc (bias included; padded taps skipped), over the reordered
 * filter: the reference loop every im2col variant is checked against. */
static inline int32_t od_im2col_ref_acc(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                        const int32_t *bias, int32_t px, int32_t oc) {
    const int32_t D = p->k_h * p->k_w * p->in_c;
    const int32_t ox = px % p->out_w, t = px / p->out_w, oy = t % p->out_h, b = t / p->out_h;
    int32_t acc = bias ? bias[oc] : 0;
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = oy * p->stride_h - p->pad_h + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ox * p->stride_w - p->pad_w + kx * p->dil_w;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
            const int8_t *x = in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c;
            for (int32_t ic = 0; ic < p->in_c; ++ic) {
                const int32_t d = (ky * p->k_w + kx) * p->in_c + ic;
                acc += (int32_t)filter[od_im2col_w_index(oc, d, D, p->out_c)] * ((int32_t)x[ic] + p->input_offset);
            }
        }
    }
    return acc;
}

/* Depths for which the four-pixel block runs (ondevice/mcu/layouts.py im2col_block4): its scratch (four fields)
 * is twice the pair kernel's, which past 64 depths could raise a model's peak RAM; below 16 (a first layer of
 * 1-3 channels, often at the model's peak) its scratch and deeper stack would too, unless D % 4 == 0 (8, 12),
 * where the assembly pays for them. */
#define OD_IM2COL_BLOCK_MAX_D 64

static inline int od_im2col_block4(int32_t D) {
    return D <= OD_IM2COL_BLOCK_MAX_D && (D >= 16 || (D >= 8 && (D & 3) == 0));
}

/* Scratch layout for R pixels (R = 2 or 4): their fields interleaved per group of four depths as 2R words,
 * [row0 (x0,x1)] .. [row R-1 (x0,x1)] [row0 (x2,x3)] .. [row R-1 (x2,x3)], so the inner loop walks one pointer
 * (LDRD for two rows, LDM for four). Output pixel pix's receptive field, in filter order (ky, kx, c), widened to
 * int16 with the input offset added (padded taps 0) into row r of a four-row scratch (od_conv_im2col_s8.c). */
void od_im2col_pixel4_s8(const od_conv_params_t *p, const int8_t *in, int32_t pix, int32_t r, int16_t *dst);

OD_INLINE int8_t rq(int32_t acc, int32_t m, int32_t s, int32_t out_off, int32_t lo, int32_t hi, int fast) {
    const int32_t v = fast ? od_requant_fast(acc, m, s, out_off) : od_mbqm(acc, m, s) + out_off;
    return (int8_t)od_clamp_i32(v, lo, hi);
}

/* CONV_2D four pixels at a time (od_conv_block4_s8.c), for D <= OD_IM2COL_BLOCK_MAX_D; scratch as
 * od_conv2d_im2col_scratch_bytes. */
od_status_t od_conv2d_s8_im2col_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                       int16_t *scratch);

/* The four-pixel block's channel-pair loop in assembly (od_conv_block4_s8.c, DSP cores): its state in memory,
 * at the offsets the assembly uses, so every per-channel pointer and constant is one load away. */
typedef struct {
    const int32_t *mult;  /* 0 */
    const int32_t *shift; /* 4 */
    const int32_t *bias;  /* 8 */
    int32_t rnd;          /* 12: 1 + 2 * output_offset */
    int8_t *y;            /* 16: channel o of the block's first pixel */
    int32_t q1, q2, q3;   /* 20, 24, 28: the other pixels' outputs at y + q */
    uint32_t lo4, hi4;    /* 32, 36: activation bounds in every byte */
    const int16_t *x;     /* 40: the scratch */
    int32_t n;            /* 44: passes of the eight-group loop, ceil(G / 8) */
    uint32_t entry0;      /* 48: loop entry of the pair's first channel (set by the assembly) */
    int32_t wadj;         /* 52: 8G - 4, from the first channel's weight end to the second's start */
    int8_t *yend;         /* 56: y past the last channel pair */
    const int8_t *w;      /* 60: the first pair's weights */
    int32_t skip;         /* 64: bytes of the first pass skipped, 52 per group (G % 8 groups run) */
    uint32_t entry1;      /* 68: loop entry of the second channel */
    uint32_t hold[2];     /* 72: the first channel's clamped-mode outputs, waiting for the second's */
} od_block4_ctx_t;

/* Every channel pair of a four-pixel scratch with D % 4 == 0: od_requant_fast_s8, clamped to [lo, hi]. */
void od_block4_pairs_clamp_s8(od_block4_ctx_t *c);

#endif /* OD_IM2COL_COMMON_H */
