/* od_batch_matmul_s8.c: BATCH_MATMUL int8 x int8 -> int8 with broadcast batch dims and adjoint (transposed)
 * operands expressed as strides (TFLite reference_ops::BatchMatMul, quantized). */
#include "od_fixedpoint.h"
#include "od_kernels_ext.h"

od_status_t od_batch_matmul_s8(const od_batch_matmul_params_t *p, const int8_t *lhs, const int8_t *rhs, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(lhs);
    OD_CHECK_PTR(rhs);
    OD_CHECK_PTR(out);
    const int32_t *bs = p->batch_shape;
    for (int32_t b0 = 0; b0 < bs[0]; ++b0)
    for (int32_t b1 = 0; b1 < bs[1]; ++b1)
    for (int32_t b2 = 0; b2 < bs[2]; ++b2) {
        const int8_t *l = lhs + b0 * p->lhs_bstrides[0] + b1 * p->lhs_bstrides[1] + b2 * p->lhs_bstrides[2];
        const int8_t *r = rhs + b0 * p->rhs_bstrides[0] + b1 * p->rhs_bstrides[1] + b2 * p->rhs_bstrides[2];
        for (int32_t i = 0; i < p->rows; ++i) {
            for (int32_t j = 0; j < p->cols; ++j) {
                int32_t acc = 0;
                for (int32_t k = 0; k < p->depth; ++k) {
                    acc += ((int32_t)l[i * p->lhs_rs + k * p->lhs_cs] + p->lhs_offset) *
                           ((int32_t)r[k * p->rhs_rs + j * p->rhs_cs] + p->rhs_offset);
                }
                const int32_t y = od_mbqm(acc, p->mult, p->shift) + p->output_offset;
                *out++ = (int8_t)od_clamp_i32(y, -128, 127);
            }
        }
    }
    return OD_OK;
}
