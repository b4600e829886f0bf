"""gemmlowp fixed-point arithmetic in Python integers, to evaluate TFLM's int8 activation kernels exactly.

LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU map one int8 to one int8, so the code generator evaluates TFLM's
integer arithmetic (reference_integer_ops / reference_ops, gemmlowp/fixedpoint.h) for all 256 inputs and the C
side is a table lookup. Every helper reproduces the C++ int32/int16 semantics, wrap-around included.
"""
from __future__ import annotations

import math

import numpy as np

from ondevice.mcu import quant

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1


def wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def wrap16(x: int) -> int:
    return (x + (1 << 15)) % (1 << 16) - (1 << 15)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul, int32."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(_trunc_div(ab + nudge, 1 << 31))


def srdhm16(a: int, b: int) -> int:
    if a == b == I16_MIN:
        return I16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return wrap16(_trunc_div(ab + nudge, 1 << 15))


def sdhm16(a: int, b: int) -> int:
    """SaturatingDoublingHighMul, int16 (truncating, used by HARD_SWISH)."""
    if a == b == I16_MIN:
        return I16_MAX
    return wrap16(_trunc_div(a * b, 1 << 15))


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT (half away from zero); Python's >> is arithmetic like the C++ one."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def sat_mul_pot(x: int, exponent: int, lo: int = I32_MIN, hi: int = I32_MAX) -> int:
    """SaturatingRoundingMultiplyByPOT<exponent>."""
    if exponent > 0:
        return min(max(x * (1 << exponent), lo), hi)
    if exponent < 0:
        return rdbpot(x, -exponent)
    return x


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (double rounding, TFLM's default build)."""
    left = max(shift, 0)
    return rdbpot(srdhm(wrap32(x * (1 << left)), multiplier), max(-shift, 0))


def _rescale(raw: int, src_int_bits: int, dst_int_bits: int) -> int:
    return sat_mul_pot(raw, src_int_bits - dst_int_bits)


def _exp_quarter(a: int) -> int:
    """exp on [-1/4, 0), Q0.31."""
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = sat_mul_pot(x4, -2)
    poly = sat_mul_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), 715827883) + x2), -1)
    return wrap32(1895147668 + srdhm(1895147668, wrap32(x + poly)))


_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
           (4, 242)]


def exp_on_negative_values(a: int, int_bits: int) -> int:
    """gemmlowp exp_on_negative_values: Q(int_bits) raw in, Q0.31 raw out."""
    frac = 31 - int_bits
    quarter = 1 << (frac - 2)
    a_mod = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_rescale(a_mod, int_bits, 0))
    remainder = wrap32(a_mod - a)
    for exponent, mult in _BARREL:
        if int_bits > exponent and remainder & (1 << (frac + exponent)):
            result = srdhm(result, mult)
    if int_bits > 5 and a < -(1 << (36 - int_bits)):
        result = 0
    return I32_MAX if a == 0 else result


def _nr_reciprocal(a: int) -> tuple[int, int]:
    """Newton-Raphson for 1 / half_denominator in Q2.29 (shared by the two divisions below)."""
    s = a + I32_MAX
    half = wrap32(_trunc_div(s + (1 if s >= 0 else -1), 2))
    x = wrap32(1515870810 + srdhm(half, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half, x))
        x = wrap32(x + _rescale(srdhm(x, one_minus), 4, 2))
    return x, half


def one_over_one_plus_x(a: int) -> int:
    x, _ = _nr_reciprocal(a)
    return _rescale(x, 1, 0)  # ExactMulByPot<-1> only relabels Q2.29 as Q1.30; then to Q0.31


def one_minus_x_over_one_plus_x(a: int) -> int:
    x, _ = _nr_reciprocal(a)
    return _rescale(wrap32(x - (1 << 29)), 2, 0)


def logistic_q(a: int, int_bits: int) -> int:
    """gemmlowp logistic: Q(int_bits) in, Q0.31 out."""
    if a == 0:
        return 1 << 30
    pos = one_over_one_plus_x(exp_on_negative_values(wrap32(-abs(a)) if a > 0 else wrap32(a), int_bits))
    return pos if a > 0 else wrap32(I32_MAX - pos)


def tanh_q(a: int, int_bits: int) -> int:
    """gemmlowp tanh: Q(int_bits) in, Q0.31 out."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    t = one_minus_x_over_one_plus_x(exp_on_negative_values(n, int_bits + 1))  # ExactMulByPot<1>: relabel
    return wrap32(-t) if a < 0 else t


def _input_rescale(scale: float) -> tuple[int, int, int]:
    """TFLM LOGISTIC/TANH prepare for int8: (multiplier, left shift, input range radius) with 4 integer bits."""
    real = quant.f64(scale) * float(1 << 27)
    q, shift = math.frexp(real)
    mult = int(quant.tflite_round(q * (1 << 31)))
    radius = int(math.floor(15.0 * (1 << 27) / (1 << shift)))
    return mult, shift, radius


def _lut(fn) -> np.ndarray:
    return np.asarray([fn(q) for q in range(-128, 128)], np.int8)


def logistic_lut(in_scale: float, in_zp: int) -> np.ndarray:
    """reference_integer_ops::Logistic (int8; output scale 1/256, zero point -128)."""
    mult, shift, radius = _input_rescale(in_scale)

    def one(q: int) -> int:
        x = q - in_zp
        if x <= -radius:
            return -128
        if x >= radius:
            return 127
        out = rdbpot(logistic_q(mbqm(x, mult, shift), 4), 23)
        return min(max(out - 128, -128), 127)
    return _lut(one)


def tanh_lut(in_scale: float, in_zp: int) -> np.ndarray:
    """reference_integer_ops::Tanh (int8; output scale 1/128, zero point 0)."""
    mult, shift, radius = _input_rescale(in_scale)

    def one(q: int) -> int:
        x = q - in_zp
        if x <= -radius:
            return -128
        if x >= radius:
            return 127
        return min(max(rdbpot(tanh_q(mbqm(x, mult, shift), 4), 24), -128), 127)
    return _lut(one)


def _int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return I16_MAX if m32 >= I32_MAX - (1 << 15) else (m32 + (1 << 15)) >> 16


def hard_swish_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """reference_ops::HardSwish<int8_t> with HardSwishPrepare's float32 scale arithmetic."""
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(in_scale)
    out_m, out_e = quant.quantize_multiplier(float(hires / f32(out_scale)))
    relu_m, relu_e = quant.quantize_multiplier(float(hires / f32(3.0 / 32768.0)))
    out_m16, relu_m16 = _int16_multiplier(out_m), _int16_multiplier(relu_m)
    if out_e > 0:
        raise ValueError("HARD_SWISH output multiplier exponent must be <= 0")

    def one(q: int) -> int:
        x = wrap16(q - in_zp)
        hi = wrap16(x * 128)
        pre_out = srdhm16(hi, out_m16)
        r = hi
        if relu_e > 0:
            r = min(max(r * (1 << (relu_e - 1)), I16_MIN), I16_MAX)
        r = srdhm16(r, relu_m16)
        if relu_e > 0:
            r = min(max(r * 2, I16_MIN), I16_MAX)
        if relu_e < 0:
            r = rdbpot(r, -relu_e)
        r = wrap16((r + (1 << 15)) >> 1)
        y = rdbpot(sdhm16(r, pre_out), -out_e)
        return min(max(wrap16(y + out_zp), -128), 127)
    return _lut(one)


def leaky_relu_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int, alpha: float) -> np.ndarray:
    """reference_ops::QuantizeLeakyRelu; the multipliers are set up in double (exact-tie tests decide it)."""
    m_a, s_a = quant.quantize_multiplier(quant.f64(in_scale) * quant.f64(alpha) / quant.f64(out_scale))
    m_i, s_i = quant.quantize_multiplier(quant.f64(in_scale) / quant.f64(out_scale))

    def one(q: int) -> int:
        x = q - in_zp
        y = out_zp + (mbqm(x, m_i, s_i) if x >= 0 else mbqm(x, m_a, s_a))
        return min(max(y, -128), 127)
    return _lut(one)


_MAX_KEY = 0x7F7FFFFF  # FLT_MAX's bits: the search runs over the finite float32 values, in order


def _f32_of_key(key: int) -> float:
    """The float32 with order index ``key`` (negative keys are the negative floats, mirrored)."""
    import struct
    bits = key if key >= 0 else 0x80000000 | -key
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def quantize_thresholds(scale: float, zero_point: int) -> np.ndarray:
    """QUANTIZE float32 -> int8 as 255 float32 thresholds: output = -128 + #{j : t[j] <= x}.

    TFLM computes clamp(round(float32(x / scale)) + zp) (a float32 division: the boundary test shows it), a
    non-decreasing step function of x, so the smallest float reaching each level (bisection over the ordered
    float32 values) reproduces it exactly with float compares only, and no division on the device.
    """
    s = np.float32(scale)

    def q(x: float) -> int:
        return min(max(int(quant.tflite_round(float(np.float32(x) / s))) + zero_point, -128), 127)

    out = []
    for level in range(-127, 128):
        lo, hi = -_MAX_KEY, _MAX_KEY  # q(FLT_MAX) == 127 >= level
        while lo < hi:
            mid = (lo + hi) // 2
            if q(_f32_of_key(mid)) >= level:
                hi = mid
            else:
                lo = mid + 1
        out.append(_f32_of_key(lo))
    return np.asarray(out, np.float32)
