/* od_frontend.h: the integer log-mel audio frontend, bit-exact C twin of ondevice.features.compute_features.
 * docs/FRONTEND.md is the spec; the tables come from ondevice.features.c_tables() (generated at build time). */
#ifndef OD_FRONTEND_H
#define OD_FRONTEND_H

#include <stdint.h>

#include "od_frontend_config.h"

/* Frames produced for n samples (49 for a 1 s clip at 16 kHz); 0 when shorter than one window. */
uint32_t od_frontend_num_frames(uint32_t n_samples);
/* One window of OD_FE_WINDOW samples -> OD_FE_CHANNELS features. Uses static scratch (not reentrant). */
void od_frontend_frame(const int16_t *samples, uint16_t *features);
/* A whole clip: features is [num_frames][OD_FE_CHANNELS]; returns the number of frames written. */
uint32_t od_frontend_compute(const int16_t *wav, uint32_t n_samples, uint16_t *features);

/* (multiplier, shift) that maps a feature to the model's input scale, exactly as
 * ondevice.features.quant_multiplier computes it from the float32 scale. Returns 0 if the scale is unusable. */
int od_frontend_quant_multiplier(float input_scale, int32_t *multiplier, int32_t *shift);
/* clamp(((f * mult + 2^(shift-1)) >> shift) + zero_point, -128, 127) for n features. */
void od_frontend_quantize(const uint16_t *features, uint32_t n, int32_t multiplier, int32_t shift,
                          int32_t zero_point, int8_t *out);

#endif /* OD_FRONTEND_H */
