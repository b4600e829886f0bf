"""The integer log-mel frontend (Python twin of firmware/core/od_frontend.c). docs/FRONTEND.md is the spec.

All arithmetic is integer (numpy int64, vectorised over frames; the FFT runs on float64 holding exact integers),
so every step has one exact result that C (int32/int64) and Kotlin (Int/Long) reproduce bit for bit. Right
shifts are arithmetic (floor).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ondevice.errors import ConfigError, DataError
from ondevice.features import tables as T

_CHUNK = 256  # frames per vectorised block: keeps the FFT temporaries in cache (~1 MB each)


def num_frames(num_samples: int) -> int:
    """Frames produced for ``num_samples`` samples (49 for a 1 s clip)."""
    return 0 if num_samples < T.WINDOW else 1 + (num_samples - T.WINDOW) // T.STEP


def _bitlen(x: np.ndarray) -> np.ndarray:
    """Number of significant bits of non-negative int64 values (0 for 0), exact (no float)."""
    x = x.astype(np.int64, copy=True)
    n = np.zeros(x.shape, dtype=np.int64)
    for sh in (32, 16, 8, 4, 2, 1):
        big = (x >> sh) > 0
        n += np.where(big, sh, 0)
        x = np.where(big, x >> sh, x)
    return n + (x > 0)


def _frames(wav: np.ndarray) -> np.ndarray:
    """[..., samples] int16 -> [..., frames, WINDOW] int64 (overlapping frames, copied)."""
    nf = num_frames(wav.shape[-1])
    idx = np.arange(nf)[:, None] * T.STEP + np.arange(T.WINDOW)[None, :]
    return wav[..., idx].astype(np.int64)


def _normalise(xw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block floating point: shift each frame left so its peak has NORM_BITS bits; returns (xs, s)."""
    peak = np.abs(xw).max(axis=-1)
    s = np.where(peak == 0, 0, np.maximum(0, T.NORM_BITS - _bitlen(peak)))
    return xw << s[:, None], s


def _fft(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radix-2 decimation-in-time FFT of real int frames [F, WINDOW], zero-padded to FFT_SIZE.

    No per-stage scaling (|X| < 480 * 2^15 < 2^24 fits int32); each twiddle product is rounded
    (p + 2^14) >> 15. Returns (re, im) int64 [F, BINS].
    """
    # numpy multiplies float64 ~3x faster than int64. Every intermediate is an integer below 2^41 and the only
    # scaling is by 2^-15, so float64 holds each value exactly and floor() is the arithmetic shift: same bits.
    # Frames are the last (contiguous) axis so every stage runs long vector loops.
    f = xs.shape[0]
    x = np.zeros((T.FFT_SIZE, f), dtype=np.float64)
    x[: T.WINDOW] = xs.T
    re = x[T.bitrev().astype(np.int64)]
    im = np.zeros_like(re)
    tw_re, tw_im = (t.astype(np.float64) for t in T.twiddles_q15())
    rnd, inv = float(1 << (T.TWIDDLE_BITS - 1)), 1.0 / (1 << T.TWIDDLE_BITS)
    half = 1
    while half < T.FFT_SIZE:
        span = 2 * half
        groups = T.FFT_SIZE // span
        k = np.arange(half) * groups
        wr, wi = tw_re[k][:, None], tw_im[k][:, None]
        r4, i4 = re.reshape(groups, 2, half, f), im.reshape(groups, 2, half, f)
        ar, ai, br, bi = r4[:, 0], i4[:, 0], r4[:, 1], i4[:, 1]
        tr = np.floor((br * wr - bi * wi + rnd) * inv)
        ti = np.floor((br * wi + bi * wr + rnd) * inv)
        nre, nim = np.empty((groups, 2, half, f)), np.empty((groups, 2, half, f))
        np.add(ar, tr, out=nre[:, 0])
        np.subtract(ar, tr, out=nre[:, 1])
        np.add(ai, ti, out=nim[:, 0])
        np.subtract(ai, ti, out=nim[:, 1])
        re, im = nre.reshape(T.FFT_SIZE, f), nim.reshape(T.FFT_SIZE, f)
        half = span
    return re[: T.BINS].T.astype(np.int64), im[: T.BINS].T.astype(np.int64)


def _log2_q10(e: np.ndarray) -> np.ndarray:
    """floor-exponent + table mantissa: (p << 10) + LUT[8 bits after the leading one]; e > 0, int64."""
    p = _bitlen(e) - 1
    down = np.maximum(p - T.LOG_LUT_BITS, 0)
    up = np.maximum(T.LOG_LUT_BITS - p, 0)
    idx = ((e >> down) << up) & ((1 << T.LOG_LUT_BITS) - 1)
    return (p << T.LOG_FRAC_BITS) + T.log_lut_q10().astype(np.int64)[idx]


def _frames_to_features(frames: np.ndarray, trace: dict | None = None) -> np.ndarray:
    """[F, WINDOW] int64 samples -> [F, CHANNELS] uint16. ``trace`` collects the intermediates of frame 0."""
    w = T.window_q12().astype(np.int64)
    xw = (frames * w + (1 << (T.WINDOW_BITS - 1))) >> T.WINDOW_BITS
    xs, s = _normalise(xw)
    re, im = _fft(xs)
    power = (re * re + im * im) >> T.POWER_SHIFT
    energy = power @ T.mel_weights_q12().astype(np.int64).T  # exact: integer matmul, < 2^60
    safe = np.maximum(energy, 1)
    val = (_log2_q10(safe) - (s[:, None] << (T.LOG_FRAC_BITS + 1)) + T.LOG_OFFSET
           + (1 << (T.OUT_SHIFT - 1))) >> T.OUT_SHIFT
    out = np.where(energy == 0, 0, np.clip(val, 0, T.OUT_MAX)).astype(np.uint16)
    if trace is not None:
        trace.update(windowed=xw[0], shift=int(s[0]), fft_re=re[0], fft_im=im[0], power=power[0],
                     mel_energy=energy[0], features=out[0])
    return out


def _check_wav(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav)
    if wav.dtype != np.int16:
        raise DataError(f"the frontend takes int16 samples, got {wav.dtype}",
                        hint="read WAVs as 16-bit PCM; convert float audio with np.round(x * 32767).astype(np.int16)")
    if wav.shape[-1] < T.WINDOW:
        raise DataError(f"audio has {wav.shape[-1]} samples, fewer than one {T.WINDOW}-sample window",
                        hint="pad clips to 1 s (16000 samples) at 16 kHz")
    return wav


def compute_features(wav_int16: np.ndarray) -> np.ndarray:
    """Integer log-mel features of one clip: int16 [samples] -> uint16 [frames, 40] ((49, 40) for 1 s).

    Each value is round(64 * log2(mel power)) plus a fixed offset; see docs/FRONTEND.md for every step.
    """
    wav = _check_wav(wav_int16)
    if wav.ndim != 1:
        raise DataError(f"compute_features takes one mono clip [samples], got shape {wav.shape}",
                        hint="use compute_features_batch for [clips, samples]")
    return compute_features_batch(wav[None])[0]


def compute_features_batch(wavs: np.ndarray) -> np.ndarray:
    """Features of equal-length clips: int16 [N, samples] -> uint16 [N, frames, 40], in frame chunks."""
    wavs = _check_wav(wavs)
    if wavs.ndim != 2:
        raise DataError(f"compute_features_batch takes [clips, samples], got shape {wavs.shape}")
    n, nf = wavs.shape[0], num_frames(wavs.shape[1])
    out = np.empty((n * nf, T.CHANNELS), dtype=np.uint16)
    clips_per_chunk = max(1, _CHUNK // max(nf, 1))
    for i in range(0, n, clips_per_chunk):
        fr = _frames(wavs[i:i + clips_per_chunk]).reshape(-1, T.WINDOW)
        out[i * nf:i * nf + fr.shape[0]] = _frames_to_features(fr)
    return out.reshape(n, nf, T.CHANNELS)


def trace_frame(frame_int16: np.ndarray) -> dict:
    """Every intermediate of one WINDOW-sample frame (for twins to debug against, stage by stage)."""
    frame = np.asarray(frame_int16, dtype=np.int16)
    if frame.shape != (T.WINDOW,):
        raise DataError(f"trace_frame takes one frame of {T.WINDOW} samples, got shape {frame.shape}")
    trace: dict = {}
    _frames_to_features(frame.astype(np.int64)[None], trace)
    return trace


class StreamingFrontend:
    """Push audio in any chunk sizes, get feature frames as soon as their window is complete.

    Frames are independent (no state besides the last WINDOW - STEP samples), so the frames equal
    ``compute_features`` on the concatenated audio, as on a device reading a microphone.
    """

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append int16 samples; returns the newly completed frames, uint16 [n, 40] (n may be 0)."""
        samples = np.asarray(samples)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise DataError(f"push takes mono int16 samples, got {samples.dtype} {samples.shape}")
        self._buf = np.concatenate([self._buf, samples])
        n = num_frames(self._buf.size)
        if n == 0:
            return np.zeros((0, T.CHANNELS), dtype=np.uint16)
        out = _frames_to_features(_frames(self._buf[None, : (n - 1) * T.STEP + T.WINDOW])[0])
        self._buf = self._buf[n * T.STEP:]
        return out


def to_model_input(feat_u16: np.ndarray) -> np.ndarray:
    """The float the PyTorch model sees: feat * FEATURE_SCALE (exact in float32), shape [1, 1, frames, 40].

    A batch [N, frames, 40] gives [N, 1, frames, 40].
    """
    f = np.asarray(feat_u16)
    x = f.astype(np.float32) * np.float32(T.FEATURE_SCALE)
    return x[None, None] if f.ndim == 2 else x[:, None]


def quant_multiplier(scale: float) -> tuple[int, int]:
    """(multiplier, shift) with multiplier in [2^30, 2^31) and FEATURE_SCALE / scale ~= multiplier / 2^shift.

    Computed exactly from the float value of ``scale``, rounding half up. The C/Kotlin side receives these
    two integers (codegen/manifest), never the float.
    """
    scale = float(scale)
    if not (scale > 0.0 and np.isfinite(scale)):
        raise ConfigError(f"input quantization scale must be a positive finite number, got {scale}")
    m = Fraction(1, 1 << T.FEATURE_SCALE_LOG2) / Fraction(scale)
    shift = 30
    while m * (1 << shift) < (1 << 30):
        shift += 1
    while m * (1 << shift) >= (1 << 31):
        shift -= 1
    mult = int(m * (1 << shift) + Fraction(1, 2))
    if mult == 1 << 31:  # rounding carried into the next power of two
        mult, shift = 1 << 30, shift - 1
    if not 1 <= shift <= 62:
        raise ConfigError(f"input scale {scale} is outside what the integer feature quantizer supports",
                          hint="the model's input scale should be roughly 1e-6 .. 1e3")
    return mult, shift


def quantize_features(feat_u16: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Features -> the model's int8 input, integer only: clamp(((f * mult + 2^(shift-1)) >> shift) + zp).

    Equals clamp(round_half_up(to_model_input(f) / scale) + zero_point, -128, 127) except when the exact
    value is within 2^-20 of a .5 tie (multiplier rounding), where it may differ by one step.
    Same shape as the input ([..., frames, 40]); the caller adds batch/channel axes.
    """
    f = np.asarray(feat_u16)
    if f.dtype != np.uint16:
        raise DataError(f"quantize_features takes uint16 features, got {f.dtype}")
    mult, shift = quant_multiplier(scale)
    q = ((f.astype(np.int64) * mult + (1 << (shift - 1))) >> shift) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)
