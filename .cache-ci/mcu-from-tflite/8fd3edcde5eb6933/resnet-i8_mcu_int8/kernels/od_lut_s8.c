/* od_lut_s8.c: elementwise int8 activations as a 256-entry table (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU).
 * The code generator fills the table with TFLM's own integer arithmetic for every possible input. */
#include "od_kernels_ext.h"

od_status_t od_lut_s8(int32_t size, const int8_t *lut, const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(lut);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    for (int32_t i = 0; i < size; ++i) out[i] = lut[(int32_t)in[i] + 128];
    return OD_OK;
}
