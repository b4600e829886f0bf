"""TFLite quantization setup, done once at code-generation time (the C kernels only evaluate).

Each function mirrors the TFLite/TFLM prepare step it names, in the same precision (double or float32),
so the integer tables match TFLM's bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from ondevice.errors import UnsupportedOpError


def tflite_round(x: float) -> float:
    """std::round: half away from zero (Python's round() is half-to-even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = q * 2^(shift-31), q in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = int(tflite_round(frac * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def f64(x) -> float:
    """A float32 value widened to double, as TFLM does with tensor scales."""
    return float(np.float32(x))


def activation_range(act: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized (float32 arithmetic, rounding half away from zero)."""
    s = np.float32(scale)

    def q(f: float) -> int:
        return zero_point + int(tflite_round(float(np.float32(f) / s)))

    if act in (None, "NONE"):
        return qmin, qmax
    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise UnsupportedOpError(f"fused activation {act} is not supported by the MCU engine",
                             "use ReLU, ReLU6 or no activation before int8 export")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius for int8 (5 integer bits in the scaled diff)."""
    int_bits = 5
    real = min(f64(beta) * f64(input_scale) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise UnsupportedOpError("softmax input scale too small for the int8 kernel", "re-quantize the model")
    radius = ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift)
    diff_min = -int(math.floor(radius))
    return mult, left_shift, diff_min


def per_channel_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float,
                            channels: int) -> tuple[list[int], list[int]]:
    """PopulateConvolutionQuantizationParams: one (multiplier, shift) per output channel."""
    fs = np.asarray(filter_scales, np.float32)
    if len(fs) == 1:
        fs = np.repeat(fs, channels)
    mults, shifts = [], []
    for s in fs:
        m, sh = quantize_multiplier(f64(input_scale) * f64(s) / f64(output_scale))
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def fold_mean_count(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """TFLM integer MEAN: fold 1/count into (multiplier, shift) with an integer division, keeping precision."""
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << k) // count, shift - k
