/* od_quantize_s8.c: QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32 at the graph edges
 * (TFLite reference_ops::AffineQuantize / Dequantize). No libm: rounding is done by hand. */
#include "od_fixedpoint.h"
#include "od_kernels_ext.h"

/* std::round (half away from zero) of a double already clamped to +-2^30. x - trunc(x) is exact. */
static int32_t round_half_away(double x) {
    int32_t t = (int32_t)x;
    const double frac = x - (double)t;
    if (frac >= 0.5) t += 1;
    else if (frac <= -0.5) t -= 1;
    return t;
}

od_status_t od_quantize_f32_s8(int32_t size, double scale, int32_t zp, const float *in, int8_t *out) {
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    OD_CHECK(scale > 0.0);
    for (int32_t i = 0; i < size; ++i) {
        double v = (double)in[i] / scale;
        if (!(v > -1073741824.0)) v = -1073741824.0; /* also NaN: TFLM's cast is undefined there */
        if (v > 1073741824.0) v = 1073741824.0;
        out[i] = (int8_t)od_clamp_i32(round_half_away(v) + zp, -128, 127);
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
