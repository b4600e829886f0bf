/* od_kernels_ext.h: kernels for graph-edge float I/O, lookup-table activations, PRELU, RESIZE_NEAREST_NEIGHBOR
 * and BATCH_MATMUL. Same conventions as od_kernels.h: parameters come from the code generator, bit-exact
 * with TFLM's reference kernels. */
#ifndef OD_KERNELS_EXT_H
#define OD_KERNELS_EXT_H

#include "od_attn_s8.h"
#include "od_kernels.h"
#include "od_reduce_fast_s8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* QUANTIZE float32 -> int8 (TFLM's AffineQuantize: clamp(round(in / scale) + zp), float32) as a search in 255
 * ascending float thresholds: out = -128 + #{j : thresholds[j] <= in}; float compares only, no division. */
od_status_t od_quantize_f32_s8(int32_t size, const float *thresholds, const float *in, int8_t *out);
/* DEQUANTIZE int8 -> float32: scale * (in - zp), one rounding to float (the exact product fits a double). */
od_status_t od_dequantize_s8_f32(int32_t size, float scale, int32_t zp, const int8_t *in, float *out);

/* LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU: out = lut[in + 128]; the table is TFLM's integer arithmetic evaluated
 * for all 256 inputs at code generation. Safe in place. */
od_status_t od_lut_s8(int32_t size, const int8_t *lut, const int8_t *in, int8_t *out);

/* PRELU: x >= 0 ? mbqm(x, m1, s1) : mbqm(x * (alpha + alpha_offset), m2, s2), with numpy broadcasting. */
typedef struct {
    int32_t out_shape[OD_MAX_DIMS];
    int32_t in_strides[OD_MAX_DIMS], alpha_strides[OD_MAX_DIMS];
    int32_t input_offset, alpha_offset, output_offset;
    int32_t mult1, shift1, mult2, shift2;
} od_prelu_params_t;

od_status_t od_prelu_s8(const od_prelu_params_t *p, const int8_t *in, const int8_t *alpha, int8_t *out);

/* RESIZE_NEAREST_NEIGHBOR (NHWC): out[b, y, x, :] = in[b, y_map[y], x_map[x], :]. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
} od_resize_params_t;

od_status_t od_resize_nearest_s8(const od_resize_params_t *p, const int32_t *y_map, const int32_t *x_map,
                                 const int8_t *in, int8_t *out);

/* BATCH_MATMUL: out[b, i, j] = clamp(zo + mbqm(sum_k (lhs[b, i, k] + lhs_offset) * (rhs[b, k, j] + rhs_offset)));
 * batch index b walks up to 3 broadcast dims; element (i, k) of lhs is at lhs_base(b) + i * lhs_rs + k * lhs_cs. */
typedef struct {
    int32_t batch_shape[3];
    int32_t lhs_bstrides[3], rhs_bstrides[3];
    int32_t rows, cols, depth;
    int32_t lhs_rs, lhs_cs, rhs_rs, rhs_cs;
    int32_t lhs_offset, rhs_offset, output_offset, mult, shift;
} od_batch_matmul_params_t;

od_status_t od_batch_matmul_s8(const od_batch_matmul_params_t *p, const int8_t *lhs, const int8_t *rhs, int8_t *out);

/* REDUCE_MAX over any axes (od_reduce_params_t: only in_shape, out_strides and num_outputs are used). */
od_status_t od_reduce_max_s8(const od_reduce_params_t *p, const int8_t *in, int8_t *out);

/* TRANSPOSE_CONV (NHWC input, OHWI filter, per-channel): each output gathers the input taps that TFLM's
 * scatter would add into it (integer sums, so the order does not matter). */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
} od_transpose_conv_params_t;

od_status_t od_transpose_conv_s8(const od_transpose_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

/* Row-by-row execution (od_rowexec_s8.c). A residual block conv P -> conv C -> ADD(x, z) over P's input x, in
 * place over x: scratch holds k_C rows of P's output, one row of x (4-byte aligned each), then the im2col
 * scratch of the larger conv. x_first: x is the ADD's first input. */
typedef struct {
    const od_conv_params_t *p;
    const int8_t *p_w;
    const int32_t *p_b, *p_m, *p_s;
    const od_conv_params_t *c;
    const int8_t *c_w;
    const int32_t *c_b, *c_m, *c_s;
    const od_binary_params_t *add;
    int32_t add_fast, x_first;
} od_resblock_params_t;

od_status_t od_resblock_s8(const od_resblock_params_t *rb, int8_t *x, int8_t *scratch);
/* Reference in-place conv (im2col weight order) for shapes whose outputs land at or below the inputs they read:
 * stage holds out_c bytes. The planner's strided in-place and input-inside-output placements rely on
 * od_conv2d_s8_im2col reading a pixel pair's windows before storing its outputs, pixels in increasing order. */
od_status_t od_conv2d_s8_im2col_ref_staged(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                           const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                           int8_t *stage);

#ifdef __cplusplus
}
#endif

#endif /* OD_KERNELS_EXT_H */
