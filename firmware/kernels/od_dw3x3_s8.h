/* od_dw3x3_s8.h: the 3x3, stride-w-1 block of od_dw_padded_s8.c (od_dw3x3_s8.c), internal to the kernels. */
#ifndef OD_DW3X3_S8_H
#define OD_DW3X3_S8_H

#include <stdint.h>

#include "od_kernels.h"

/* 1 when od_dw3x3_block runs this shape (3x3, stride_w 1, out_w >= 2, requant_fast): its scratch is od_dw3x3_scratch_bytes. */
int od_dw3x3_fits(const od_conv_params_t *p);
/* Scratch of the 3x3 ring: 3 rows x 4 channels x ((out_w + 1) / 2 + 1) int16 pairs (>= the generic ring). */
int32_t od_dw3x3_scratch_bytes(const od_conv_params_t *p);
/* Channels c..c+3 of batch b into dst[pixel * dst_stride + k], requantized but not yet clamped to the activation
 * range (the caller's copy does that). Returns 0, having done nothing, when a channel's multiplier or shift
 * is outside what its requantization proves exact (then the generic ring runs). */
int od_dw3x3_block(const od_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                    const int32_t *mult, const int32_t *shift, int32_t b, int32_t c, uint32_t *ring, int8_t *dst,
                    int32_t dst_stride);

#endif /* OD_DW3X3_S8_H */
