/* od_quantize_s8.c: QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32 at the graph edges
 * (TFLite reference_ops::AffineQuantize / Dequantize). */
#include "od_kernels_ext.h"

od_status_t od_quantize_f32_s8(int32_t size, const float *thresholds, const float *in, int8_t *out) {
    OD_CHECK_PTR(thresholds);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    for (int32_t i = 0; i < size; ++i) {
        const float x = in[i];
        int32_t n = 0; /* thresholds <= x; 8 halvings cover 255 entries (largest index read: 254) */
        for (int32_t step = 128; step > 0; step >>= 1) {
            if (thresholds[n + step - 1] <= x) n += step;
        }
        out[i] = (int8_t)(n - 128);
    }
    return OD_OK;
}

od_status_t od_dequantize_s8_f32(int32_t size, float scale, int32_t zp, const int8_t *in, float *out) {
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    /* Walk backwards: out (4 bytes per element) may start where in does. */
    for (int32_t i = size - 1; i >= 0; --i) out[i] = scale * (float)((int32_t)in[i] - zp);
    return OD_OK;
}
