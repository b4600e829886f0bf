/* od_frontend.c: integer log-mel frontend. Every step mirrors ondevice/features/frontend.py; right shifts of
 * negative values are arithmetic (floor) on every compiler we build with (gcc, clang), as the spec requires. */
#include "od_frontend.h"
#include "od_frontend_tables.h"

#include <math.h>

#if OD_FE_FFT_SIZE != (1 << OD_FE_FFT_LOG2)
#error "frontend tables: FFT_SIZE must be 2^FFT_LOG2"
#endif

static int32_t g_re[OD_FE_FFT_SIZE];
static int32_t g_im[OD_FE_FFT_SIZE];
static int64_t g_power[OD_FE_BINS];

static int bitlen_u64(uint64_t x)
{
    int n = 0;
    while (x) {
        n++;
        x >>= 1;
    }
    return n;
}

uint32_t od_frontend_num_frames(uint32_t n_samples)
{
    return n_samples < OD_FE_WINDOW ? 0u : 1u + (n_samples - OD_FE_WINDOW) / OD_FE_STEP;
}

/* floor(log2 e) in Q10 from the exponent plus a table lookup on the 8 bits after the leading one. */
static int64_t log2_q10(int64_t e)
{
    int p = bitlen_u64((uint64_t)e) - 1;
    int down = p > OD_FE_LOG_LUT_BITS ? p - OD_FE_LOG_LUT_BITS : 0;
    int up = p < OD_FE_LOG_LUT_BITS ? OD_FE_LOG_LUT_BITS - p : 0;
    uint32_t idx = (uint32_t)(((e >> down) << up) & ((1 << OD_FE_LOG_LUT_BITS) - 1));
    return ((int64_t)p << OD_FE_LOG_FRAC_BITS) + od_fe_log_lut_q10[idx];
}

static void fft(void)
{
    const int64_t rnd = (int64_t)1 << (OD_FE_TWIDDLE_BITS - 1);
    for (uint32_t half = 1; half < OD_FE_FFT_SIZE; half <<= 1) {
        uint32_t span = half << 1;
        uint32_t stride = OD_FE_FFT_SIZE / span;
        for (uint32_t g = 0; g < OD_FE_FFT_SIZE; g += span) {
            for (uint32_t j = 0; j < half; j++) {
                int32_t wr = od_fe_twiddle_re_q15[j * stride];
                int32_t wi = od_fe_twiddle_im_q15[j * stride];
                uint32_t a = g + j, b = a + half;
                int32_t br = g_re[b], bi = g_im[b];
                /* |X| < 480 * 2^15 < 2^24 at every stage, so values stay in int32; each product is a 32x32->64
                 * multiply (one SMULL/SMLAL on Cortex-M), not a full 64x64 one. */
                int32_t tr = (int32_t)(((int64_t)br * wr - (int64_t)bi * wi + rnd) >> OD_FE_TWIDDLE_BITS);
                int32_t ti = (int32_t)(((int64_t)br * wi + (int64_t)bi * wr + rnd) >> OD_FE_TWIDDLE_BITS);
                int32_t ar = g_re[a], ai = g_im[a];
                g_re[a] = ar + tr;
                g_im[a] = ai + ti;
                g_re[b] = ar - tr;
                g_im[b] = ai - ti;
            }
        }
    }
}

void od_frontend_frame(const int16_t *samples, uint16_t *features)
{
    int32_t xw[OD_FE_WINDOW];
    uint32_t peak = 0;
    const int32_t wrnd = 1 << (OD_FE_WINDOW_BITS - 1);
    for (int n = 0; n < OD_FE_WINDOW; n++) {
        xw[n] = ((int32_t)samples[n] * od_fe_window_q12[n] + wrnd) >> OD_FE_WINDOW_BITS;
        uint32_t a = (uint32_t)(xw[n] < 0 ? -xw[n] : xw[n]);
        if (a > peak) peak = a;
    }
    /* Block floating point: the loudest sample of the frame gets NORM_BITS significant bits. */
    int s = 0;
    if (peak) {
        s = OD_FE_NORM_BITS - bitlen_u64(peak);
        if (s < 0) s = 0;
    }
    for (int k = 0; k < OD_FE_FFT_SIZE; k++) {
        uint32_t src = od_fe_bitrev[k];
        g_re[k] = src < OD_FE_WINDOW ? (int32_t)((uint32_t)xw[src] << s) : 0;
        g_im[k] = 0;
    }
    fft();
    for (int k = 0; k < OD_FE_BINS; k++) {
        int32_t r = g_re[k], i = g_im[k];
        g_power[k] = ((int64_t)r * r + (int64_t)i * i) >> OD_FE_POWER_SHIFT;
    }
    const int64_t orf = (int64_t)1 << (OD_FE_OUT_SHIFT - 1);
    for (int c = 0; c < OD_FE_CHANNELS; c++) {
        const int16_t *w = &od_fe_mel_weights_q12[od_fe_mel_offset[c]];
        const int64_t *p = &g_power[od_fe_mel_start[c]];
        int64_t energy = 0;
        for (int k = 0; k < od_fe_mel_len[c]; k++) energy += p[k] * w[k];
        if (energy == 0) {
            features[c] = 0;
            continue;
        }
        int64_t val = (log2_q10(energy) - ((int64_t)s << (OD_FE_LOG_FRAC_BITS + 1)) + OD_FE_LOG_OFFSET + orf) >>
                      OD_FE_OUT_SHIFT;
        features[c] = (uint16_t)(val < 0 ? 0 : (val > OD_FE_OUT_MAX ? OD_FE_OUT_MAX : val));
    }
}

uint32_t od_frontend_compute(const int16_t *wav, uint32_t n_samples, uint16_t *features)
{
    uint32_t nf = od_frontend_num_frames(n_samples);
    for (uint32_t f = 0; f < nf; f++) od_frontend_frame(&wav[f * OD_FE_STEP], &features[f * OD_FE_CHANNELS]);
    return nf;
}

int od_frontend_quant_multiplier(float input_scale, int32_t *multiplier, int32_t *shift)
{
    if (!(input_scale > 0.0f) || isinf(input_scale)) return 0;
    /* scale = M * 2^(e-24) with M a 24-bit integer, so 2^-FEATURE_SCALE_LOG2 / scale = 2^(24-8-e) / M exactly:
     * the multiplier is a rounded integer division, no floating point rounding involved. */
    int e;
    float f = frexpf(input_scale, &e);
    uint64_t m = (uint64_t)ldexpf(f, 24);
    while (m < (1u << 23)) { /* subnormal scales: renormalise the mantissa */
        m <<= 1;
        e--;
    }
    int k = (m == (1u << 23)) ? 53 : 54; /* the exponent that puts 2^k / M in [2^30, 2^31) */
    uint64_t mult = (((uint64_t)1 << (k + 1)) + m) / (2u * m);
    int sh = k - (24 - OD_FE_FEATURE_SCALE_LOG2) + e;
    if (mult == ((uint64_t)1 << 31)) { /* rounding carried into the next power of two */
        mult = (uint64_t)1 << 30;
        sh -= 1;
    }
    if (sh < 1 || sh > 62) return 0;
    *multiplier = (int32_t)mult;
    *shift = sh;
    return 1;
}

void od_frontend_quantize(const uint16_t *features, uint32_t n, int32_t multiplier, int32_t shift,
                          int32_t zero_point, int8_t *out)
{
    const int64_t rnd = (int64_t)1 << (shift - 1);
    for (uint32_t i = 0; i < n; i++) {
        int64_t q = (((int64_t)features[i] * multiplier + rnd) >> shift) + zero_point;
        out[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}
