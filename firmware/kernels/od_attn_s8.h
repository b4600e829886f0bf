/* od_attn_s8.h: MUL -> FULLY_CONNECTED fused (attention scores written as a broadcast product reduced by a
 * one-output FC): each row of the MUL's output is computed, requantized as TFLM's MUL does and dotted with the FC
 * weights in registers; the MUL's output tensor never exists. Included by od_kernels_ext.h. */
#ifndef OD_ATTN_S8_H
#define OD_ATTN_S8_H

#include "od_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[r] = FC(MUL row r): row r of the MUL's output (depth elements) is in1 row in1_row(r) times in2 row
 * in2_row(r), where r walks outer[0..3] and inN_row = sum(i_k * inN_rs[k]) (row strides, 0 where broadcast). */
typedef struct {
    int32_t outer[4], in1_rs[4], in2_rs[4];
    int32_t depth, in1_rows, in2_rows;
    int32_t in1_offset, in2_offset;                       /* -zero point of each MUL input */
    int32_t mul_mult, mul_shift, mul_out_zp, mul_lo, mul_hi;
    int32_t fc_bias;                                      /* bias - mul_out_zp * sum(w): the FC input offset folded */
    int32_t fc_mult, fc_shift, fc_out_zp, fc_lo, fc_hi;
    int32_t fast;      /* 1: mul_shift <= -1 and mul_round fits int32 (the SMMLAR requantization, exact) */
    int32_t mul_round; /* (1 + 2 * mul_out_zp) << (-mul_shift - 1) */
    int32_t fc_fast;   /* 1: fc_shift <= -1 and |accumulator| < 2^30 (od_requant_fast is exact) */
} od_mul_fc_params_t;

/* Scratch (4-byte aligned): both inputs widened to int16 rows of even length. */
int32_t od_mul_fc_scratch_bytes(int32_t depth, int32_t in1_rows, int32_t in2_rows);
/* w: the FC weights as int16, depth rounded up to even (the pad 0). */
od_status_t od_mul_fc_s8(const od_mul_fc_params_t *p, const int8_t *in1, const int8_t *in2, const int16_t *w,
                         int8_t *out, int16_t *scratch);
od_status_t od_mul_fc_s8_ref(const od_mul_fc_params_t *p, const int8_t *in1, const int8_t *in2, const int16_t *w,
                             int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* OD_ATTN_S8_H */
