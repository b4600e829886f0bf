"""Constants and integer tables of the audio frontend: the single source the C and Kotlin twins read.

Every table is derived here once, with float maths, and then frozen as integers. Twins never re-derive
them: they include the header from :func:`ondevice.features.c_tables` (or read ``tables.json`` written by
:func:`ondevice.features.write_vectors`). docs/FRONTEND.md specifies how the integers are used.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math

import numpy as np

FRONTEND_VERSION = 1

SAMPLE_RATE = 16000
WINDOW = 480              # 30 ms
STEP = 320                # 20 ms
FFT_SIZE = 512
FFT_LOG2 = 9
BINS = FFT_SIZE // 2 + 1  # 257: DC .. Nyquist
CHANNELS = 40
LOWER_HZ = 125.0
UPPER_HZ = 7500.0
CLIP_SAMPLES = SAMPLE_RATE  # 1 s clips
FRAMES = 1 + (CLIP_SAMPLES - WINDOW) // STEP  # 49

WINDOW_BITS = 12          # Hann window in Q12
NORM_BITS = 15            # each frame is shifted left until its peak has 15 significant bits
TWIDDLE_BITS = 15         # FFT twiddles in Q15, clamped to +-32767 so they fit int16
POWER_SHIFT = 4           # |X|^2 >> 4 keeps the mel sum below 2^60 (fits int64)
WEIGHT_BITS = 12          # mel weights in Q12
LOG_LUT_BITS = 8          # 8 mantissa bits index the log2 table
LOG_FRAC_BITS = 10        # log2 inside the frontend is Q10
OUT_SHIFT = 4             # output is log2(power) in Q6 (Q10 >> 4, rounded)
# -16 in log2 (Q10): puts white noise of 1 LSB rms at about 60 (~1 in log2), so quieter frames clamp to 0.
LOG_OFFSET = -16 * (1 << LOG_FRAC_BITS)
OUT_MAX = 65535

# The float the model sees is feature * FEATURE_SCALE (a power of two, so it is exact in float32).
FEATURE_SCALE_LOG2 = 8
FEATURE_SCALE = 1.0 / (1 << FEATURE_SCALE_LOG2)


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=1)
def window_q12() -> np.ndarray:
    """Periodic-offset Hann window, Q12, int16 [WINDOW]: round(4096 * (0.5 - 0.5 cos(2 pi (n + 0.5) / WINDOW)))."""
    n = np.arange(WINDOW, dtype=np.float64)
    w = np.round((0.5 - 0.5 * np.cos(2.0 * math.pi * (n + 0.5) / WINDOW)) * (1 << WINDOW_BITS))
    return w.astype(np.int16)


@functools.lru_cache(maxsize=1)
def twiddles_q15() -> tuple[np.ndarray, np.ndarray]:
    """exp(-2 pi i k / FFT_SIZE) for k < FFT_SIZE/2, Q15, clamped to [-32767, 32767]; (re, im) int16."""
    k = np.arange(FFT_SIZE // 2, dtype=np.float64)
    lim = (1 << TWIDDLE_BITS) - 1
    re = np.clip(np.round(np.cos(2.0 * math.pi * k / FFT_SIZE) * (1 << TWIDDLE_BITS)), -lim, lim)
    im = np.clip(np.round(-np.sin(2.0 * math.pi * k / FFT_SIZE) * (1 << TWIDDLE_BITS)), -lim, lim)
    return re.astype(np.int16), im.astype(np.int16)


@functools.lru_cache(maxsize=1)
def bitrev() -> np.ndarray:
    """Bit-reversal permutation of FFT_LOG2-bit indices, uint16 [FFT_SIZE]."""
    idx = np.arange(FFT_SIZE)
    out = np.zeros(FFT_SIZE, dtype=np.int64)
    for b in range(FFT_LOG2):
        out |= ((idx >> b) & 1) << (FFT_LOG2 - 1 - b)
    return out.astype(np.uint16)


@functools.lru_cache(maxsize=1)
def mel_weights_q12() -> np.ndarray:
    """Dense triangular mel filterbank, Q12, int32 [CHANNELS, BINS].

    CHANNELS + 2 edges equally spaced in mel (1127 ln(1 + f/700)) from LOWER_HZ to UPPER_HZ; bin k sits at
    k * SAMPLE_RATE / FFT_SIZE Hz. Weight = round(4096 * triangle(bin)).
    """
    edges = np.linspace(_hz_to_mel(LOWER_HZ), _hz_to_mel(UPPER_HZ), CHANNELS + 2)
    bin_mel = _hz_to_mel(np.arange(BINS) * SAMPLE_RATE / FFT_SIZE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (bin_mel[None, :] - lo) / (mid - lo)
    fall = (hi - bin_mel[None, :]) / (hi - mid)
    tri = np.clip(np.minimum(rise, fall), 0.0, None)
    w = np.round(tri * (1 << WEIGHT_BITS)).astype(np.int32)
    # The mel sum stays below 2^60 only if no channel's weights add up to more than 2^16.
    assert int(w.sum(axis=1).max()) <= 1 << 16, "filterbank too wide for the int64 headroom"
    assert (w.sum(axis=1) > 0).all(), "a mel channel has no bins"
    return w


@functools.lru_cache(maxsize=1)
def mel_sparse() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The filterbank as (start bin, length, offset into weights, weights) per channel, for the C twin."""
    w = mel_weights_q12()
    start, length, offset, flat = [], [], [], []
    for c in range(CHANNELS):
        nz = np.nonzero(w[c])[0]
        s, e = int(nz[0]), int(nz[-1]) + 1
        start.append(s)
        length.append(e - s)
        offset.append(len(flat))
        flat.extend(int(v) for v in w[c, s:e])
    return (np.array(start, np.uint16), np.array(length, np.uint16), np.array(offset, np.uint16),
            np.array(flat, np.int16))


@functools.lru_cache(maxsize=1)
def log_lut_q10() -> np.ndarray:
    """log2 of the mantissa bucket midpoint, Q10, uint16 [256]: round(1024 * log2(1 + (i + 0.5) / 256))."""
    i = np.arange(1 << LOG_LUT_BITS, dtype=np.float64)
    return np.round(np.log2(1.0 + (i + 0.5) / (1 << LOG_LUT_BITS)) * (1 << LOG_FRAC_BITS)).astype(np.uint16)


def constants() -> dict[str, int]:
    """The scalar constants, by the name the C header gives them (without the OD_FE_ prefix)."""
    return {
        "VERSION": FRONTEND_VERSION, "SAMPLE_RATE": SAMPLE_RATE, "WINDOW": WINDOW, "STEP": STEP,
        "FFT_SIZE": FFT_SIZE, "FFT_LOG2": FFT_LOG2, "BINS": BINS, "CHANNELS": CHANNELS,
        "CLIP_SAMPLES": CLIP_SAMPLES, "FRAMES": FRAMES, "WINDOW_BITS": WINDOW_BITS, "NORM_BITS": NORM_BITS,
        "TWIDDLE_BITS": TWIDDLE_BITS, "POWER_SHIFT": POWER_SHIFT, "WEIGHT_BITS": WEIGHT_BITS,
        "LOG_LUT_BITS": LOG_LUT_BITS, "LOG_FRAC_BITS": LOG_FRAC_BITS, "OUT_SHIFT": OUT_SHIFT,
        "LOG_OFFSET": LOG_OFFSET, "OUT_MAX": OUT_MAX, "FEATURE_SCALE_LOG2": FEATURE_SCALE_LOG2,
    }


def tables() -> dict[str, list[int]]:
    """Every integer table, as plain lists (what tables.json holds)."""
    tw_re, tw_im = twiddles_q15()
    start, length, offset, flat = mel_sparse()
    return {
        "window_q12": window_q12().tolist(),
        "twiddle_re_q15": tw_re.tolist(),
        "twiddle_im_q15": tw_im.tolist(),
        "bitrev": bitrev().tolist(),
        "mel_start": start.tolist(),
        "mel_len": length.tolist(),
        "mel_offset": offset.tolist(),
        "mel_weights_q12": flat.tolist(),
        "log_lut_q10": log_lut_q10().tolist(),
    }


@functools.lru_cache(maxsize=1)
def config_hash() -> str:
    """SHA-256 (first 16 hex digits) over the constants and tables: changes whenever any output bit could."""
    blob = json.dumps({"constants": constants(), "tables": tables()}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
