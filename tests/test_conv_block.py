"""The im2col CONV_2D's four-pixel block (od_conv_block4_s8.c: C and Thumb-2 assembly) is bit-exact with TFLM.

One int8 graph holds a sweep of CONV_2D shapes in the block's depth range (8..64, od_im2col_block4): pixel counts that are not a
multiple of four (one pixel included), depths with D % 4 != 0, odd channel counts, 1x1 / 3x3 / 5x5 kernels,
stride 2, a one-channel depthwise run as a conv, an in-place 1x1 conv, with and without an input offset, a bias,
an activation clamp and the cheaper requantization. It runs on the host (opt and ref builds) and under QEMU on the
Cortex-M4 (the assembly) and the Cortex-M55 (whose Helium path dispatches before the block and must keep
working), against the TFLM interpreter.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, PAD, U8_STD, Case, random_inputs
from ondevice.mcu.layouts import im2col_block4
from ondevice.mcu.library import write_library
from ondevice.mcu.tflite_build import options
from ondevice.verify.mcu import verify_host


def _conv(c: Case, in_shape, out_c, k, stride=1, padding=PAD.SAME, act=ACT.NONE, bias=True, in_zp=None,
          out_ratio=1.0, x=None, last=True) -> int:
    """One CONV_2D (per-channel weights); out_ratio < 1 shrinks the output scale until a layer's multiplier
    reaches 0.5 or more, which rules out the cheaper requantization (shift >= 0). x: an existing input tensor."""
    r = c.rng
    _, h, w, ch = in_shape
    x = c.act_in(in_shape, zp=in_zp) if x is None else x
    sx = c.scale_of(x)
    kh, kw = (k, k) if isinstance(k, int) else k
    ws = r.uniform(0.002, 0.02, out_c)
    wt = c.b.tensor([out_c, kh, kw, ch], scale=ws, zero_point=np.zeros(out_c, np.int64),
                    data=r.integers(-127, 128, [out_c, kh, kw, ch]), qdim=0)
    ins = [x, wt]
    if bias:
        ins.append(c.b.tensor([out_c], "int32", scale=sx * ws, zero_point=np.zeros(out_c, np.int64),
                              data=r.integers(-3000, 3000, out_c), qdim=0))
    if padding == PAD.SAME:
        oh, ow = math.ceil(h / stride), math.ceil(w / stride)
    else:
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    so = out_ratio * 3 * math.sqrt(kh * kw * ch) * sx * U8_STD * float(ws.mean()) * U8_STD / 128
    shape = [in_shape[0], oh, ow, out_c]
    y = c.act_out(shape, so) if last else c.b.tensor(shape, scale=so, zero_point=int(r.integers(-10, 10)))
    c.b.op("CONV_2D", ins, [y], options("Conv2DOptions", padding=padding, strideW=stride, strideH=stride,
                                         dilationWFactor=1, dilationHFactor=1, fusedActivationFunction=act))
    return y


def _sweep() -> bytes:
    c = Case(seed=415)
    _conv(c, [1, 5, 5, 32], 32, 1, act=ACT.RELU6, in_zp=0)       # 25 px (one past a block), the kws/mitsis form
    _conv(c, [1, 3, 3, 64], 63, 1, act=ACT.RELU)                  # 9 px, odd channels: asm pairs + the C channel
    _conv(c, [1, 1, 1, 20], 7, 1, act=ACT.RELU)                   # one pixel, D = 20
    _conv(c, [1, 2, 3, 48], 16, 1)                                # 6 px, all of int8, input offset
    _conv(c, [1, 5, 2, 8], 9, 1, act=ACT.RELU)                    # D = 8: the assembly's shortest loop
    _conv(c, [1, 3, 3, 1], 4, 3)                                  # D = 9: the pair kernel, not the block
    _conv(c, [1, 7, 6, 2], 5, 3, stride=2, act=ACT.RELU)          # D = 18 (D % 4 = 2): the C block
    _conv(c, [1, 6, 6, 1], 9, 5, act=ACT.RELU6)                   # 5x5, D = 25 (D % 4 = 1)
    _conv(c, [1, 9, 7, 4], 16, 3, stride=2)                       # 3x3 stride 2, D = 36: padded fields, asm
    _conv(c, [1, 7, 7, 32], 17, 1, stride=2, act=ACT.RELU)        # 1x1 stride 2 (not the row path), odd
    _conv(c, [1, 4, 5, 3], 10, 3, padding=PAD.VALID)              # 3x3 valid, D = 27
    _conv(c, [1, 5, 3, 32], 12, 1, act=ACT.RELU, out_ratio=0.004)  # exact requantization (no requant_fast)
    _conv(c, [1, 3, 5, 24], 6, 3, out_ratio=0.002)                 # exact requantization, D = 216: pair kernel
    _conv(c, [1, 4, 3, 16], 8, 1, act=ACT.RELU6, bias=False)      # no bias: the C block
    c.conv([1, 15, 8, 1], 0, (10, 4), stride=2, depthwise=True, dm=11, act=ACT.RELU)  # kws first-layer form
    _conv(c, [1, 7, 5, 1], 4, 3)                                  # first layers (pair kernel): D = 9, SAME, odd w
    _conv(c, [1, 7, 7, 1], 3, 3, stride=2, padding=PAD.VALID)     # D = 9, valid, stride 2, odd channels
    _conv(c, [1, 5, 7, 1], 5, 1, act=ACT.RELU)                    # D = 1: single depths only
    _conv(c, [1, 6, 5, 3], 6, 1, stride=2)                        # D = 3, stride 2
    _conv(c, [1, 9, 7, 3], 16, 3, stride=2, act=ACT.RELU6)        # D = 27, SAME, stride 2 (kernel_bench form)
    _conv(c, [1, 5, 5, 3], 7, 3, in_zp=0, out_ratio=0.004)        # D = 27, exact requantization, odd channels
    mid = _conv(c, [1, 6, 5, 24], 24, 1, act=ACT.RELU, last=False)  # an intermediate that dies at the next conv
    _conv(c, [1, 6, 5, 24], 19, 1, act=ACT.RELU6, x=mid)           # in place: 1x1 stride 1, fewer channels
    return c.build()


def _im2col_calls(src: str) -> list[tuple[dict, str, str]]:
    """(params, input expression, output expression) of every od_conv2d_s8_im2col call in the generated C."""
    params = {m.group(1): dict(re.findall(r"\.(\w+) = (-?\d+)", m.group(2)))
              for m in re.finditer(r"od_conv_params_t (od_p\d+) = \{([^}]*)\}", src)}
    calls = re.findall(r"od_conv2d_s8_im2col\(&(od_p\d+), (OD_ARENA\(\d+\)), [^;]*?, (OD_ARENA\(\d+\)), ", src)
    return [({k: int(v) for k, v in params[p].items()}, i, o) for p, i, o in calls]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    data = _sweep()
    lib = tmp_path_factory.mktemp("conv_block") / "sweep_mcu_int8"
    summary = write_library(data, lib, name="conv_block")
    return data, lib, summary


def test_sweep_covers_the_block_cases(sweep):
    """The sweep reaches what it claims: block depths, both requantizations, clamped and full range, in place."""
    _, lib, _ = sweep
    calls = _im2col_calls((lib / "od_model.c").read_text())
    block = [p for p, _, _ in calls if im2col_block4(p["k_h"] * p["k_w"] * p["in_c"])]
    assert len(block) >= 12
    assert {p["requant_fast"] for p in block} == {0, 1}
    assert any(p["act_min"] == -128 and p["act_max"] == 127 and p["requant_fast"] for p in block)
    assert any(p["act_min"] > -128 and p["act_max"] < 127 and p["requant_fast"] for p in block)
    assert any(p["batches"] * p["out_h"] * p["out_w"] == 1 for p in block)
    assert any((p["k_h"] * p["k_w"] * p["in_c"]) % 4 for p in block)
    assert any(p["out_c"] % 2 for p in block)
    assert any(i == o for _, i, o in calls), "the in-place 1x1 conv was not planned in place"


def test_sweep_covers_the_first_layer_cases(sweep):
    """Few input channels (D = 1, 3, 9, 27: runs of single depths in the im2col), padded and valid, stride 2."""
    _, lib, _ = sweep
    calls = [p for p, _, _ in _im2col_calls((lib / "od_model.c").read_text())]
    depths = {p["k_h"] * p["k_w"] * p["in_c"] for p in calls if p["in_c"] in (1, 3)}
    assert {1, 3, 9, 27} <= depths
    assert any(p["in_c"] == 3 and p["stride_w"] == 2 and p["pad_w"] > 0 for p in calls)
    assert any(p["in_c"] == 1 and p["stride_w"] == 2 and p["pad_w"] == 0 and p["k_w"] == 3 for p in calls)


def test_block_bit_exact_on_host(sweep):
    require_tool("gcc")
    _, lib, summary = sweep
    rep = verify_host(lib, random_inputs(summary["inputs"], n=4, seed=3))
    assert rep["elements_compared"] > 0
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep
    assert rep["bit_exact_vs_tflm"] is True


def test_block_bit_exact_on_extremes_host(sweep):
    """All-min and all-max inputs: the largest accumulators, saturating requantization."""
    require_tool("gcc")
    _, lib, summary = sweep
    vecs = [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(lib, vecs)
    assert rep["bit_exact_vs_tflm"] is True, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_block_bit_exact_on_emulated_cortex_m(sweep, board):
    """The native DSP instructions and the assembly (M4), the Helium path (M55), vs TFLM."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    data, lib, summary = sweep
    vectors = random_inputs(summary["inputs"], n=2, seed=5)
    vectors.append([np.full(s["shape"], 127, np.int8) for s in summary["inputs"]])
    res = bench_qemu(lib, vectors, board, "opt")
    ref = TFLMModel(data)
    assert len(res.outputs) == len(vectors)
    for got, vec in zip(res.outputs, vectors):
        want = ref.run(vec)
        assert len(got) == len(want) == len(summary["outputs"])
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w.reshape(g.shape))
