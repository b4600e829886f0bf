"""The integer audio frontend: int16 16 kHz audio -> uint16 log-mel features (49, 40) per 1 s clip.

Python twin of firmware/core/od_frontend.c and the Kotlin frontend in apps/android; docs/FRONTEND.md is the
bit-exact spec, :func:`c_tables` the shared tables, :func:`write_vectors` the shared test vectors.
"""
from ondevice.features.frontend import (StreamingFrontend, compute_features, compute_features_batch, num_frames,
                                        quant_multiplier, quantize_features, to_model_input, trace_frame)
from ondevice.features.tables import CHANNELS, FEATURE_SCALE, FRAMES, SAMPLE_RATE, config_hash
from ondevice.features.twins import c_tables, write_vectors

__all__ = ["compute_features", "compute_features_batch", "to_model_input", "quantize_features", "quant_multiplier",
           "trace_frame", "num_frames", "StreamingFrontend", "c_tables", "write_vectors", "config_hash", "FEATURE_SCALE", "FRAMES",
           "CHANNELS", "SAMPLE_RATE"]
