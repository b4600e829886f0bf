"""DEPTHWISE_CONV_2D through od_dw_padded_s8.c (and its 3x3 stride-w-1 block, od_dw3x3_s8.c) is bit-exact with the
TFLM interpreter over a sweep of shapes: odd widths (1 included), stride 2, 3x3 and 5x5, SAME and VALID, 4 to 256
channels, in place, with and without the cheaper requantization, clamped and full-int8 activations; on the host
(opt and ref builds) and on QEMU Cortex-M4 and Cortex-M55 (whose Helium path takes these shapes first)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, PAD, U8_STD, Case, random_inputs
from ondevice.mcu.codegen import generate
from ondevice.mcu.library import write_library
from ondevice.mcu.reader import read_tflite
from ondevice.mcu.tflite_build import options
from ondevice.verify.mcu import verify_host


def _dw(c: Case, shape, k=3, stride=(1, 1), padding=PAD.SAME, act=ACT.NONE, inplace=False, slow=False, pow2=False):
    """One depthwise conv (multiplier 1). inplace: its input is a RELU's output that dies there; slow: an output
    scale small enough that the effective multiplier is >= 0.5 (shift >= 0: TFLite's exact requantization);
    pow2: every effective scale 2^-9, i.e. the multiplier 2^30 the 3x3 block leaves to the generic ring."""
    r = c.rng
    n, h, w, ch = shape
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = stride
    x = c.act_in(shape)
    sx, zx = c.scale_of(x), int(c.b.tensors[x].quantization.zeroPoint[0])
    if inplace:
        xr = c.b.tensor(list(shape), scale=sx, zero_point=zx)
        c.b.op("RELU", [x], [xr])
        x = xr
    ws = np.full(ch, 2.0 ** -7) if pow2 else r.uniform(0.002, 0.02, ch)
    wt = c.b.tensor([1, kh, kw, ch], scale=ws, zero_point=np.zeros(ch, np.int64),
                    data=r.integers(-127, 128, (1, kh, kw, ch)), qdim=3)
    bt = c.b.tensor([ch], "int32", scale=sx * ws, zero_point=np.zeros(ch, np.int64),
                    data=r.integers(-3000, 3000, ch), qdim=0)
    if padding == PAD.SAME:
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    so = float(sx * ws.max() * 1.5) if slow else 3 * math.sqrt(kh * kw) * sx * U8_STD * float(ws.mean()) * U8_STD / 128
    so = sx * 4.0 if pow2 else so
    y = c.act_out([n, oh, ow, ch], so)
    c.b.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], options(
        "DepthwiseConv2DOptions", padding=padding, strideW=sw, strideH=sh, dilationWFactor=1, dilationHFactor=1,
        fusedActivationFunction=act, depthMultiplier=1))


def _sweep(c: Case):
    _dw(c, [1, 25, 10, 64], act=ACT.RELU6)                    # the kws-dscnn shape
    _dw(c, [1, 5, 1, 4])                                      # width 1: one odd output per row
    _dw(c, [1, 4, 3, 8], padding=PAD.VALID, act=ACT.RELU)     # VALID, output width 1
    _dw(c, [1, 7, 5, 12], act=ACT.RELU)                       # odd width
    _dw(c, [1, 6, 9, 256], act=ACT.RELU6)                     # 256 channels, odd width
    _dw(c, [2, 5, 4, 8])                                      # two batches
    _dw(c, [1, 9, 8, 16], stride=(2, 1), act=ACT.RELU)        # stride_h 2, stride_w 1
    _dw(c, [1, 9, 7, 16], stride=(2, 2), act=ACT.RELU6)       # stride 2: the generic ring
    _dw(c, [1, 8, 6, 8], k=5)                                 # 5x5 SAME
    _dw(c, [1, 9, 9, 4], k=5, stride=(2, 2), padding=PAD.VALID, act=ACT.RELU)
    _dw(c, [1, 6, 5, 8], slow=True, act=ACT.RELU)             # exact (not fast) requantization
    _dw(c, [1, 6, 8, 8], pow2=True, act=ACT.RELU)             # multiplier 2^30: the generic ring
    _dw(c, [1, 6, 1, 8], k=5)                                 # 5x5 on one column
    _dw(c, [1, 9, 7, 32], act=ACT.RELU6, inplace=True)
    _dw(c, [1, 8, 5, 16], padding=PAD.VALID, inplace=True)
    _dw(c, [1, 12, 1, 64], act=ACT.RELU, inplace=True)        # in place, width 1
    _dw(c, [1, 11, 9, 24], stride=(2, 2), act=ACT.RELU, inplace=True)
    _dw(c, [1, 10, 6, 16], k=5, inplace=True)
    _dw(c, [1, 7, 6, 32], slow=True, inplace=True)
    _dw(c, [1, 9, 2, 16], stride=(2, 2), act=ACT.RELU, inplace=True)  # mitsis' stride-2 form, output width 1


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    c = Case(seed=15)
    _sweep(c)
    data = c.build()
    lib = tmp_path_factory.mktemp("dw") / "dw_mcu_int8"
    summary = write_library(data, lib, name="dw_sweep")
    vecs = random_inputs(summary["inputs"], n=3, seed=7)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    return data, lib, vecs


def test_sweep_runs_the_padded_kernels_in_every_mode():
    """The sweep reaches what it claims: both padded entry points, fast and exact requantization, both
    activation kinds."""
    c = Case(seed=15)
    _sweep(c)
    src = generate(read_tflite(c.build())).source
    assert src.count("od_depthwise_conv2d_s8_padded(") == 13
    assert src.count("od_depthwise_conv2d_s8_inplace_padded(") == 7
    assert ".requant_fast = 0" in src and ".requant_fast = 1" in src and "1073741824" in src
    assert ".act_min = -128, .act_max = 127" in src and ".act_max = 127" in src.replace(".act_min = -128, ", "")


def test_dw_sweep_bit_exact_on_host(sweep):
    require_tool("gcc")
    _, lib, vecs = sweep
    rep = verify_host(lib, vecs)
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0} and rep["bit_exact_vs_tflm"] is True, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_dw_sweep_bit_exact_on_qemu(sweep, board):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    data, lib, vecs = sweep
    res = bench_qemu(lib, vecs, board, "opt")
    ref = TFLMModel(data)
    assert len(res.outputs) == len(vecs)
    for got, vec in zip(res.outputs, vecs):
        want = ref.run(vec)
        assert len(got) == len(want) == 20
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w.reshape(g.shape))
