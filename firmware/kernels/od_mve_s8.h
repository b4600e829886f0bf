/* od_mve_s8.h: Helium (MVE, Cortex-M55) inner products for the int8 kernels. OD_MVE is 1 only when the compiler
 * targets MVE-I (and OD_SIMD_PORTABLE is not set); elsewhere nothing here is compiled or called. */
#ifndef OD_MVE_S8_H
#define OD_MVE_S8_H

#include <stdint.h>

#include "od_kernels.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(OD_SIMD_PORTABLE)
#define OD_MVE 1
#else
#define OD_MVE 0
#endif

#if OD_MVE
/* 1 when od_mve_conv2d_im2col fits od_conv2d_im2col_scratch_bytes() and pays (8+ depths per output). */
int od_mve_conv2d_im2col_fits(const od_conv_params_t *p);
/* od_conv2d_s8_im2col's contract (same reordered weights, same scratch, in place for 1x1), one pixel at a time
 * with VMLADAVA over 16 int8 lanes; od_requant_fast on four lanes where proven, else scalar od_mbqm. */
od_status_t od_mve_conv2d_im2col(const od_conv_params_t *p, const int8_t *in, const int8_t *filter,
                                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out,
                                 int16_t *scratch);
/* FULLY_CONNECTED / matmul rows (od_kernels_opt_s8.c's matmul_rows_s8 contract): two outputs per load of x. */
void od_mve_matmul_rows_s8(const int8_t *in, int32_t rows, int32_t D, const int8_t *filter, int32_t O,
                           const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                           int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int8_t *out, int fast);
/* DEPTHWISE_CONV_2D (multiplier 1, channels % 4 == 0, dilation 1, up to 5x5): channels c..c+3 of batch b into
 * dst[pixel * dst_stride + k], read straight from the input (so in place through a staging buffer works too). */
#define OD_MVE_DW_MAX_TAPS 25
int od_mve_dw_fits(const od_conv_params_t *p);
void od_mve_dw_block4(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                      const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, int8_t *dst,
                      int32_t dst_stride);
#endif

#endif /* OD_MVE_S8_H */
