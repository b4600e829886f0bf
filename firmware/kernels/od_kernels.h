/* od_kernels.h: int8 kernels of the ondevice MCU engine (TFLite int8 quantization spec, bit-exact with TFLM).
 *
 * Parameters are filled at code-generation time by ondevice/mcu (shapes, offsets, quantized multipliers and
 * shifts, activation bounds); the functions below only evaluate. Each returns an od_status_t.
 * Build with -DOD_KERNELS_REFERENCE to force the reference variants on any CPU.
 */
#ifndef OD_KERNELS_H
#define OD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "od_model_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OD_MAX_DIMS 5

/* Return OD_ERR_BAD_PARAM from the calling kernel when a precondition fails. */
#define OD_CHECK(cond)                                   \
    do {                                                 \
        if (!(cond)) return OD_ERR_BAD_PARAM;            \
    } while (0)
#define OD_CHECK_PTR(p) OD_CHECK((p) != NULL)

/* CONV_2D and DEPTHWISE_CONV_2D (NHWC input, OHWI / 1HWO filter, per-channel requantization). */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_multiplier;
    int32_t input_offset, output_offset, act_min, act_max;
    int32_t requant_fast; /* 1: codegen proved |acc| < 2^30 and shift <= -1 for every channel (od_requant_fast) */
} od_conv_params_t;

od_status_t od_conv2d_s8(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_conv2d_s8_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                             const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                             const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_depthwise_conv2d_s8(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_depthwise_conv2d_s8_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_depthwise_conv2d_s8_opt(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

/* CONV_2D (dilation 1) as im2col + 2x2-blocked matrix multiply over int16 receptive fields (od_conv_im2col_s8.c).
 * The filter rows are stored by the code generator with each group of four weights as [w0 w2 w1 w3];
 * scratch (4-byte aligned) holds od_conv2d_im2col_scratch_bytes(k_h, k_w, in_c) bytes. in == out is allowed for
 * a 1x1 stride-1 conv with out_c <= in_c (in place). */
int32_t od_conv2d_im2col_scratch_bytes(int32_t k_h, int32_t k_w, int32_t in_c);
od_status_t od_conv2d_s8_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                int16_t *scratch);
od_status_t od_conv2d_s8_im2col_ref(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

/* DEPTHWISE_CONV_2D (depth multiplier 1, channels % 4 == 0) through a zero-point-padded four-channel copy
 * (od_dw_padded_s8.c); other shapes fall back to the _opt kernels. scratch: od_dw_padded_scratch_bytes(p)
 * bytes (in place: 4 * out_h * out_w rounded up to 4, then that). */
int32_t od_dw_padded_scratch_bytes(const od_conv_params_t *p);
od_status_t od_depthwise_conv2d_s8_padded(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                          const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                          int8_t *out, int8_t *scratch);
od_status_t od_depthwise_conv2d_s8_inplace_padded(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                                  const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                                  int8_t *tmp);

/* FULLY_CONNECTED ([batches, in_depth] x [out_depth, in_depth]^T); per_channel selects mult/shift[o] vs [0]. */
typedef struct {
    int32_t batches, in_depth, out_depth;
    int32_t input_offset, filter_offset, output_offset, act_min, act_max;
    int32_t per_channel;
    int32_t requant_fast; /* as od_conv_params_t.requant_fast */
} od_fc_params_t;

od_status_t od_fully_connected_s8(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_fully_connected_s8_ref(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
od_status_t od_fully_connected_s8_opt(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

/* In-place variants (TinyEngine-style), chosen by the memory planner when the input dies at this op:
 * - depthwise (depth multiplier 1, output no larger than input): output channels overwrite their own input
 *   channels, four at a time through `tmp` (4 * out_h * out_w bytes);
 * - matmul (FULLY_CONNECTED, or a 1x1 stride-1 CONV_2D as rows x in_depth, out_depth <= in_depth): output rows
 *   overwrite consumed input rows, two at a time through `tmp` (2 * out_depth bytes). */
od_status_t od_depthwise_conv2d_s8_inplace(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                           const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                           int8_t *tmp);
od_status_t od_depthwise_conv2d_s8_inplace_ref(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                               int8_t *tmp);
od_status_t od_depthwise_conv2d_s8_inplace_opt(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                               int8_t *tmp);
od_status_t od_matmul_s8_inplace(const od_fc_params_t *p, int8_t *buf, const int8_t *filter, const int32_t *bias,
                                 const int32_t *mult, const int32_t *shift, int8_t *tmp);
od_status_t od_matmul_s8_inplace_ref(const od_fc_params_t *p, int8_t *buf, const int8_t *filter,
                                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *tmp);
od_status_t od_matmul_s8_inplace_opt(const od_fc_params_t *p, int8_t *buf, const int8_t *filter,
                                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *tmp);

/* ADD and MUL with numpy broadcasting: strides are 0 on broadcast dims (shapes extended to 5-D). */
typedef struct {
    int32_t out_shape[OD_MAX_DIMS];
    int32_t in1_strides[OD_MAX_DIMS], in2_strides[OD_MAX_DIMS];
    int32_t in1_offset, in2_offset, out_offset;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift, left_shift;
    int32_t act_min, act_max;
} od_binary_params_t;

od_status_t od_add_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
od_status_t od_mul_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
/* ADD without broadcasting (out_shape == both inputs), the code generator having checked out_shift <= -1. */
od_status_t od_add_s8_fast(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
od_status_t od_sub_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out); /* ADD's params */
od_status_t od_maximum_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
od_status_t od_minimum_s8(const od_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

/* MEAN and SUM over any axes: out_strides maps each input dim to the output (0 on reduced dims). */
typedef struct {
    int32_t in_shape[OD_MAX_DIMS];
    int32_t out_strides[OD_MAX_DIMS];
    int32_t num_outputs, num_reduced;
    int32_t in_zp, out_zp, mult, shift; /* MEAN: the multiplier already includes 1/num_reduced */
} od_reduce_params_t;

od_status_t od_reduce_s8(const od_reduce_params_t *p, const int8_t *in, int32_t *scratch, int8_t *out);

/* SOFTMAX over the last dim, int8 in, int8 out (scale 1/256, zero point -128). exp_lut[d] = the Q0.31 gemmlowp exp
 * TFLM computes for diff = -d, d < lut_len (diffs below TFLM's diff_min are past the table and count as 0). */
typedef struct {
    int32_t outer, depth, lut_len;
} od_softmax_params_t;

od_status_t od_softmax_s8(const od_softmax_params_t *p, const int32_t *exp_lut, const int8_t *in, int8_t *out);

/* TRANSPOSE, STRIDED_SLICE, GATHER-free copies: out[i0..i4] = in[base + sum(i_d * in_strides[d])]. */
typedef struct {
    int32_t out_shape[OD_MAX_DIMS];
    int32_t in_strides[OD_MAX_DIMS];
    int32_t base;
} od_strided_copy_params_t;

od_status_t od_strided_copy_s8(const od_strided_copy_params_t *p, const int8_t *in, int8_t *out);

/* CONCATENATION: copy `rows` rows of `row_bytes` from in into out with a row pitch of `out_row_stride`. */
od_status_t od_copy_rows_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t row_bytes, int32_t out_row_stride);

/* PAD / PADV2 (4-D): output filled with pad_value, input placed at pad_before. */
typedef struct {
    int32_t in_shape[4], out_shape[4], pad_before[4];
    int32_t pad_value;
} od_pad_params_t;

od_status_t od_pad_s8(const od_pad_params_t *p, const int8_t *in, int8_t *out);

/* AVERAGE_POOL_2D and MAX_POOL_2D (NHWC). */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} od_pool_params_t;

od_status_t od_avg_pool_s8(const od_pool_params_t *p, const int8_t *in, int8_t *out);
od_status_t od_max_pool_s8(const od_pool_params_t *p, const int8_t *in, int8_t *out);

/* QUANTIZE (int8 -> int8), RELU, RELU6, RELU_N1_TO_1: out = clamp(out_zp + mbqm(in - in_zp)). Safe in place. */
typedef struct {
    int32_t size;
    int32_t in_zp, out_zp, mult, shift, act_min, act_max;
} od_requant_params_t;

od_status_t od_requantize_s8(const od_requant_params_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* OD_KERNELS_H */
