"""Each int8 kernel, reference and optimised, is bit-exact with the TFLM interpreter.

Goldens come from the tflite-micro Python interpreter at test time, on single-op graphs written by
ondevice.mcu.tflite_build (several parameter sets per kernel, one host build per kernel family).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, PAD, Case, random_inputs
from ondevice.mcu.library import write_library
from ondevice.verify.mcu import verify_host


def _conv(c: Case):
    c.conv([1, 9, 9, 8], 16, 3, stride=2, act=ACT.RELU6)
    c.conv([1, 7, 6, 3], 5, 3, stride=1, padding=PAD.VALID, per_channel=False)
    c.conv([2, 5, 5, 12], 6, 1, act=ACT.RELU)
    c.conv([1, 10, 4, 7], 9, (4, 3), stride=2, bias=False)
    c.conv([1, 8, 8, 4], 8, 3, dil=2)
    c.conv([1, 3, 5, 64], 63, 1, act=ACT.RELU)  # 1x1, 64 depths: the Helium path on M55, odd channel
    c.conv([1, 4, 4, 40], 6, 1)  # 1x1, 40 depths: an odd count of 16-byte blocks on M55


def _dwconv(c: Case):
    c.conv([1, 9, 9, 8], 0, 3, stride=2, act=ACT.RELU6, depthwise=True)
    c.conv([1, 7, 6, 6], 0, 3, padding=PAD.VALID, depthwise=True, dm=2)
    c.conv([1, 5, 5, 13], 0, 3, stride=1, depthwise=True, act=ACT.RELU)
    c.conv([1, 10, 5, 4], 0, (10, 4), padding=PAD.VALID, depthwise=True, bias=False)
    c.conv([1, 12, 9, 1], 0, (4, 3), stride=2, depthwise=True, dm=8)   # first-layer form: 1 channel in
    c.conv([1, 15, 8, 1], 0, (10, 4), stride=2, depthwise=True, dm=7, act=ACT.RELU)  # kws form, padded, odd
    c.conv([1, 6, 7, 2], 0, 3, stride=1, depthwise=True, dm=5)         # DM blocks of 4 plus a tail


def _fc(c: Case):
    c.fc(1, 64, 12)
    c.fc(3, 37, 10, per_channel=True, act=ACT.RELU)
    c.fc(2, 5, 3, bias=False)
    c.fc(1, 128, 4, per_channel=True, act=ACT.RELU6)


def _add(c: Case):
    c.binary("ADD", [1, 4, 5, 6], [1, 4, 5, 6])
    c.binary("ADD", [2, 3, 8], [8], act=ACT.RELU)
    c.binary("ADD", [4, 1, 6], [1, 5, 1])
    c.binary("ADD", [7], [1])


def _sub_minmax(c: Case):
    c.binary("SUB", [1, 4, 5, 6], [1, 4, 5, 6])
    c.binary("SUB", [2, 3, 8], [8], act=ACT.RELU)
    c.minmax("MAXIMUM", [3, 7], [3, 7])
    c.minmax("MINIMUM", [2, 5, 4], [4])


def _mul(c: Case):
    c.binary("MUL", [1, 4, 5, 6], [1, 4, 5, 6])
    c.binary("MUL", [6, 1, 8], [6, 8])
    c.binary("MUL", [3, 5], [1], act=ACT.RELU6)


def _reduce(c: Case):
    c.reduce("MEAN", [1, 6, 5, 8], [1, 2], True)
    c.reduce("MEAN", [2, 7, 9], [-1], False)
    c.reduce("MEAN", [3, 4, 10], [0, 2], False)
    c.reduce("SUM", [6, 6, 8], [2], False)
    c.reduce("SUM", [1, 5, 3, 4], [1, 2], True)
    c.reduce("MEAN", [12, 25], [1], True)


def _softmax(c: Case):
    c.softmax([4, 10])
    c.softmax([1, 3, 24], in_scale=0.125)
    c.softmax([2, 7], beta=0.5, in_scale=0.01)
    c.softmax([1, 50], in_scale=0.3)


def _movement(c: Case):
    c.transpose([2, 3, 4], [2, 0, 1])
    c.transpose([1, 4, 5, 6], [0, 2, 1, 3])
    c.strided_slice([4, 6, 5], [1, 0, 1], [4, 6, 5], [1, 2, 2])
    c.strided_slice([3, 8], [1, 2], [2, 8], [1, 1], shrink=1)
    c.concat([[2, 3, 4], [2, 5, 4], [2, 1, 4]], axis=1)
    c.concat([[3, 2], [3, 7]], axis=-1 % 2)
    c.pad([1, 5, 5, 3], [[0, 0], [1, 2], [2, 1], [0, 0]])
    c.pad([4, 6], [[1, 1], [0, 3]])


def _pool_unary(c: Case):
    c.pool("AVERAGE_POOL_2D", [1, 8, 8, 5], 2, 2)
    c.pool("AVERAGE_POOL_2D", [1, 7, 7, 3], 3, 2, padding=PAD.SAME, act=ACT.RELU)
    c.pool("AVERAGE_POOL_2D", [1, 5, 5, 4], 5, 1, padding=PAD.VALID)
    c.pool("AVERAGE_POOL_2D", [2, 7, 6, 8], 3, 2, padding=PAD.SAME, act=ACT.RELU)  # 4 channels per word, borders
    c.pool("MAX_POOL_2D", [1, 9, 9, 6], 3, 2, padding=PAD.SAME)
    c.unary("QUANTIZE", [2, 30], 1.7)
    c.unary("QUANTIZE", [2, 30], 0.4)
    c.unary("RELU", [3, 11], 1.0)
    c.unary("RELU6", [5, 7])
    c.reshape([2, 3, 4], [6, 4])


def _inplace_chain(c: Case):
    c.chain([1, 9, 7, 12])
    c.chain([1, 6, 5, 8], pad=(1, 1))
    c.chain([1, 5, 6, 10], pad=(2, 1))
    c.chain([1, 7, 6, 8], lead_relu=True)             # in-place depthwise, 4-channel blocks
    c.chain([1, 5, 4, 9], pad=(1, 1), lead_relu=True)  # in-place depthwise, channel tail (reference path)


def _softmax_sweep(c: Case):
    """The exp table over many (input scale, beta) pairs and row lengths: every diff 0..255 gets hit."""
    for shape, beta, scale in [([3, 1], 1.0, 0.1), ([2, 2], 1.0, 1.0), ([1, 25, 25], 1.0, 0.004),
                               ([1, 25, 25], 0.5, 0.0625), ([4, 64], 2.0, 0.02), ([2, 300], 1.0, 0.05),
                               ([1, 300], 1.0, 0.25), ([2, 256], 0.7, 3.0), ([3, 40], 1.0, 0.0009),
                               ([1, 3, 17], 1.3, 0.17)]:
        c.softmax(shape, beta=beta, in_scale=scale)


FAMILIES = {"inplace_and_pad_fusion": _inplace_chain, "conv2d": _conv, "depthwise_conv2d": _dwconv, "fully_connected": _fc, "add": _add, "sub_max_min": _sub_minmax, "mul": _mul,
            "mean_sum": _reduce, "softmax": _softmax, "softmax_sweep": _softmax_sweep, "transpose_slice_concat_pad": _movement,
            "pool_quantize_relu_reshape": _pool_unary}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kernel_family_bit_exact_vs_tflm(family, tmp_path):
    require_tool("gcc")
    c = Case(seed=sum(map(ord, family)))
    FAMILIES[family](c)
    summary = write_library(c.build(), tmp_path / f"{family}_mcu_int8", name=family)
    vectors = random_inputs(summary["inputs"], n=6, seed=1)
    rep = verify_host(tmp_path / f"{family}_mcu_int8", vectors)
    assert rep["vectors"] == 6
    assert rep["elements_compared"] > 0
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep
    assert rep["bit_exact_vs_tflm"] is True


def test_requantize_extremes_saturate_like_tflm(tmp_path):
    """All-min and all-max inputs hit the saturating paths of every fixed-point helper."""
    require_tool("gcc")
    c = Case(seed=7)
    c.softmax([2, 9], in_scale=0.5)
    c.conv([1, 4, 4, 8], 8, 3, act=ACT.NONE)
    c.binary("ADD", [3, 4], [3, 4])
    c.reduce("MEAN", [2, 5, 6], [1], False)
    c.pool("AVERAGE_POOL_2D", [1, 16, 16, 4], 16, 1)  # 256 taps: the int16 lane sums' bound
    summary = write_library(c.build(), tmp_path / "sat_mcu_int8", name="sat")
    vecs = [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127, 0)]
    rep = verify_host(tmp_path / "sat_mcu_int8", vecs)
    assert rep["bit_exact_vs_tflm"] is True, rep


@pytest.mark.parametrize("family,board", [("conv2d", "mps2-an386"), ("depthwise_conv2d", "mps2-an386"),
                                          ("fully_connected", "mps2-an386"), ("inplace_and_pad_fusion", "mps2-an386"),
                                          ("mul", "mps2-an386"), ("softmax_sweep", "mps2-an386"),
                                          ("pool_quantize_relu_reshape", "mps2-an386"),
                                          ("fully_connected", "mps3-an547"), ("inplace_and_pad_fusion", "mps3-an547"),
                                          ("conv2d", "mps3-an547"), ("depthwise_conv2d", "mps3-an547")])
def test_optimised_kernels_bit_exact_on_emulated_cortex_m(family, board, tmp_path):
    """The native DSP (M4) and Helium (M55) instructions, not their host twins, against TFLM under QEMU."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    c = Case(seed=sum(map(ord, family)))
    FAMILIES[family](c)
    data = c.build()
    summary = write_library(data, tmp_path / f"{family}_mcu_int8", name=family)
    vectors = random_inputs(summary["inputs"], n=3, seed=2)
    res = bench_qemu(tmp_path / f"{family}_mcu_int8", vectors, board, "opt")
    ref = TFLMModel(data)
    assert len(res.outputs) == 3
    for got, vec in zip(res.outputs, vectors):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))
