"""The fused MUL -> FULLY_CONNECTED kernel (ondevice/mcu/attn.py, firmware/kernels/od_attn_s8.c) bit for bit
against the tflite-micro interpreter: attention-score graphs (broadcast MUL, reshape to rows, one-output FC) on the
host (optimised and reference builds) and on QEMU Cortex-M4 and M55, every (a, b) int8 pair of the MUL's
requantization, and the graphs where the pair must not fuse."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, U8_STD, Case, random_inputs
from ondevice.mcu.library import write_library
from ondevice.mcu.tflite_build import options
from ondevice.verify.mcu import verify_host

FUSED = "MUL+FULLY_CONNECTED"


def attn(c: Case, shape_a, shape_b, mul_act=ACT.NONE, fc_act=ACT.NONE, bias=True, per_channel=False,
         mul_gain=1.5, reshape=True, extra_reader=None, mul_output=False, fc_gain=1.0):
    """MUL(a, b) -> RESHAPE [rows, D] -> FC [1, D] (-> its output). extra_reader: "relu" adds a second reader
    of the MUL output; mul_output makes it a graph output too."""
    r = c.rng
    a, b = c.act_in(shape_a), c.act_in(shape_b)
    sa, sb = c.scale_of(a), c.scale_of(b)
    out_shape = list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    d = out_shape[-1]
    rows = int(np.prod(out_shape[:-1]))
    sm, zm = sa * sb * U8_STD * mul_gain, int(r.integers(-100, 100))
    m = c.b.tensor(out_shape, scale=sm, zero_point=zm)
    c.b.op("MUL", [a, b], [m], options("MulOptions", fusedActivationFunction=mul_act))
    x = m
    if reshape:
        x = c.b.tensor([rows, d], scale=sm, zero_point=zm)
        st = c.b.tensor([2], "int32", data=np.asarray([rows, d], np.int32))
        c.b.op("RESHAPE", [m, st], [x], options("ReshapeOptions", newShape=np.asarray([rows, d], np.int32)))
    ws = r.uniform(0.002, 0.02, 1)
    w = c.b.tensor([1, d], scale=ws, zero_point=np.zeros(1, np.int64), data=r.integers(-127, 128, (1, d)),
                   qdim=0 if per_channel else 0)
    bt = c.b.tensor([1], "int32", scale=sm * ws, zero_point=np.zeros(1, np.int64),
                    data=r.integers(-3000, 3000, 1)) if bias else -1
    so = 3 * math.sqrt(d) * sm * U8_STD * float(ws[0]) * U8_STD / 128 * fc_gain
    y = c.act_out([rows, 1] if reshape else out_shape[:-1] + [1], so)
    c.b.op("FULLY_CONNECTED", [x, w, bt], [y],
           options("FullyConnectedOptions", fusedActivationFunction=fc_act, keepNumDims=not reshape))
    if extra_reader == "relu":
        z = c.act_out(out_shape, sm, zp=zm)
        c.b.op("RELU", [m], [z])
    if mul_output:
        c.outputs.append(m)


CASES = {
    "scores_32": lambda c: attn(c, [25, 1, 32], [25, 32], fc_act=ACT.RELU6),
    "mixed_25": lambda c: attn(c, [25, 1, 25], [32, 25], bias=False),
    "odd_depth_7": lambda c: attn(c, [3, 1, 7], [5, 7], mul_gain=0.3),
    "depth_1": lambda c: attn(c, [9, 1, 1], [4, 1]),
    "depth_3_batched": lambda c: attn(c, [2, 3, 1, 3], [2, 1, 5, 3], per_channel=True),
    "no_broadcast_odd_rows": lambda c: attn(c, [11, 13], [11, 13], mul_gain=4.0),
    "outer_broadcast": lambda c: attn(c, [1, 6, 10], [4, 1, 10]),
    "mul_relu_clamped": lambda c: attn(c, [5, 1, 9], [6, 9], mul_act=ACT.RELU, fc_act=ACT.RELU),
    "mul_relu6_clamped": lambda c: attn(c, [4, 1, 16], [4, 16], mul_act=ACT.RELU6, mul_gain=0.2),
    "fc_keep_dims_no_reshape": lambda c: attn(c, [4, 1, 6], [3, 6], reshape=False),
    "saturating": lambda c: attn(c, [7, 1, 12], [7, 12], mul_gain=0.05),
    "fc_rescale_above_one": lambda c: attn(c, [3, 1, 10], [4, 10], fc_gain=1e-3),  # FC shift >= 0: od_mbqm
}
#: graphs that must keep the MUL and the FC apart
UNFUSED = {
    "mul_read_twice": lambda c: attn(c, [4, 1, 8], [5, 8], extra_reader="relu"),
    "mul_is_output": lambda c: attn(c, [4, 1, 8], [5, 8], mul_output=True),
    "mul_shift_non_negative": lambda c: attn(c, [3, 1, 8], [3, 8], mul_gain=1 / 150),  # scale > 1: no fast path
}


def _build(name, fn, tmp_path):
    c = Case(seed=sum(map(ord, name)))
    fn(c)
    data = c.build()
    summary = write_library(data, tmp_path / f"{name}_mcu_int8", name=name)
    return data, summary


@pytest.mark.parametrize("name", list(CASES))
def test_fused_mul_fc_bit_exact_on_host(name, tmp_path):
    require_tool("gcc")
    _, summary = _build(name, CASES[name], tmp_path)
    assert summary["op_names"] == [FUSED], summary["op_names"]
    vecs = random_inputs(summary["inputs"], n=4, seed=3)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(tmp_path / f"{name}_mcu_int8", vecs)
    assert rep["elements_compared"] > 0
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep


@pytest.mark.parametrize("name", list(UNFUSED))
def test_mul_fc_not_fused_where_it_must_not(name, tmp_path):
    require_tool("gcc")
    _, summary = _build(name, UNFUSED[name], tmp_path)
    assert FUSED not in summary["op_names"]
    assert "MUL" in summary["op_names"] and "FULLY_CONNECTED" in summary["op_names"]
    rep = verify_host(tmp_path / f"{name}_mcu_int8", random_inputs(summary["inputs"], n=3, seed=4))
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep


@pytest.mark.parametrize("scale,zps", [(0.0219, (-5, 8, 96)), (0.097, (-128, -2, -1)), (0.45, (3, -7, 0)),
                                       (0.0011, (127, -128, -128)), (0.31, (0, 0, 127))])
def test_every_int8_pair_of_the_mul_requantization(scale, zps, tmp_path):
    """in1 [256, 1, 1] * in2 [256, 1]: one FC row per (a, b) pair; weight 1 and an FC rescale of exactly 1 make
    the FC output the MUL's int8 value (shifted), so all 65536 pairs of the fast requantization are checked."""
    require_tool("gcc")
    c = Case(seed=5)
    za, zb, zm = zps
    a = c.act_in([256, 1, 1], scale=0.05, zp=za)
    b = c.act_in([256, 1], scale=0.05, zp=zb)
    sm = 0.05 * 0.05 / scale
    m = c.b.tensor([256, 256, 1], scale=sm, zero_point=zm)
    c.b.op("MUL", [a, b], [m], options("MulOptions"))
    x = c.b.tensor([65536, 1], scale=sm, zero_point=zm)
    st = c.b.tensor([2], "int32", data=np.asarray([65536, 1], np.int32))
    c.b.op("RESHAPE", [m, st], [x], options("ReshapeOptions", newShape=np.asarray([65536, 1], np.int32)))
    w = c.b.tensor([1, 1], scale=0.5, zero_point=0, data=np.ones((1, 1), np.int8))
    y = c.act_out([65536, 1], sm * 0.5, zp=0)
    c.b.op("FULLY_CONNECTED", [x, w, -1], [y], options("FullyConnectedOptions"))
    summary = write_library(c.build(), tmp_path / "pairs_mcu_int8", name="pairs")
    assert summary["op_names"] == [FUSED]
    vec = [np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1), np.arange(-128, 128, dtype=np.int8).reshape(256, 1)]
    rep = verify_host(tmp_path / "pairs_mcu_int8", [vec])
    assert rep["elements_compared"] == 65536
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_fused_mul_fc_bit_exact_on_emulated_cortex_m(board, tmp_path):
    """The native DSP instructions (SMMLAR, SSAT, SMLABB/T), not their host twins, against TFLM under QEMU."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    c = Case(seed=11)
    for name in ("scores_32", "mixed_25", "odd_depth_7", "depth_3_batched", "mul_relu_clamped", "saturating",
                 "fc_rescale_above_one"):
        CASES[name](c)
    UNFUSED["mul_read_twice"](c)
    data = c.build()
    summary = write_library(data, tmp_path / "attn_mcu_int8", name="attn")
    assert summary["op_names"].count(FUSED) == 7
    vectors = random_inputs(summary["inputs"], n=3, seed=2)
    vectors.append([np.full(s["shape"], -128, np.int8) for s in summary["inputs"]])
    res = bench_qemu(tmp_path / "attn_mcu_int8", vectors, board, "opt")
    ref = TFLMModel(data)
    assert len(res.outputs) == len(vectors)
    for got, vec in zip(res.outputs, vectors):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))


def fc_chain(c: Case, rows, d, k, per_channel, act=ACT.NONE, bias=True, lead_relu=True):
    """[RELU ->] FC over rows of d: with the RELU the FC's input dies there, so it may run in place."""
    r = c.rng
    x = c.act_in([rows, d])
    sx, zx = c.scale_of(x), int(c.b.tensors[x].quantization.zeroPoint[0])
    if lead_relu:
        xr = c.b.tensor([rows, d], scale=sx, zero_point=zx)
        c.b.op("RELU", [x], [xr])
        x = xr
    ws = r.uniform(0.002, 0.02, k if per_channel else 1)
    w = c.b.tensor([k, d], scale=ws, zero_point=np.zeros(len(ws), np.int64), data=r.integers(-127, 128, (k, d)))
    bt = c.b.tensor([k], "int32", scale=sx * ws, zero_point=np.zeros(len(ws), np.int64),
                    data=r.integers(-3000, 3000, k)) if bias else -1
    y = c.act_out([rows, k], 3 * math.sqrt(d) * sx * U8_STD * float(ws.mean()) * U8_STD / 128)
    c.b.op("FULLY_CONNECTED", [x, w, bt], [y], options("FullyConnectedOptions", fusedActivationFunction=act))


FC_CASES = {
    "fc_inplace_25x32x32": lambda c: fc_chain(c, 25, 32, 32, False, act=ACT.RELU6),
    "fc_inplace_odd_rows_per_channel": lambda c: fc_chain(c, 7, 19, 9, True, bias=False),
    "fc_expanding": lambda c: fc_chain(c, 5, 12, 20, True, act=ACT.RELU),
    "fc_graph_input_rows_2": lambda c: fc_chain(c, 2, 33, 8, False, lead_relu=False),
}


@pytest.mark.parametrize("name", list(FC_CASES))
def test_fc_as_1x1_conv_bit_exact_on_host(name, tmp_path):
    """FULLY_CONNECTED with >= 2 rows and >= 8 outputs runs as the im2col 1x1 conv (fc_conv.py), in place where
    its input dies; the op keeps its name in profiles."""
    require_tool("gcc")
    _, summary = _build(name, FC_CASES[name], tmp_path)
    assert summary["op_names"][-1] == "FULLY_CONNECTED"
    assert "od_conv2d_s8_im2col(" in (tmp_path / f"{name}_mcu_int8" / "od_model.c").read_text()
    vecs = random_inputs(summary["inputs"], n=4, seed=6)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(tmp_path / f"{name}_mcu_int8", vecs)
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_fc_as_1x1_conv_bit_exact_on_emulated_cortex_m(board, tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    c = Case(seed=13)
    for fn in FC_CASES.values():
        fn(c)
    data = c.build()
    summary = write_library(data, tmp_path / "fcc_mcu_int8", name="fcc")
    vectors = random_inputs(summary["inputs"], n=3, seed=2)
    res = bench_qemu(tmp_path / "fcc_mcu_int8", vectors, board, "opt")
    ref = TFLMModel(data)
    for got, vec in zip(res.outputs, vectors):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))


REDUCE_ROWS = [("MEAN", [1, 25, 10, 32], [1, 2], True), ("MEAN", [1, 300, 1, 6], [1], False),
               ("SUM", [5, 3, 7], [0, 1], False), ("MEAN", [4, 1, 3, 9], [0, 1, 2], True),
               ("MEAN", [2, 5, 5, 3], [0, 1, 2, 3], False)]


def _reduce_rows(c: Case):
    for op, shape, axes, keep in REDUCE_ROWS:
        c.reduce(op, shape, axes, keep)
    c.reduce("MEAN", [2, 7, 9], [-1], False)  # innermost axis reduced: od_reduce_s8


def test_mean_over_leading_axes_runs_by_rows_bit_exact_on_host(tmp_path):
    """MEAN / SUM whose reduced axes all precede the kept ones (a spatial mean of NHWC channels) run through
    od_reduce_rows_s8: four channels per word in int16 lanes, flushed every 256 rows, odd column tails."""
    require_tool("gcc")
    _, summary = _build("reduce_rows", _reduce_rows, tmp_path)
    src = (tmp_path / "reduce_rows_mcu_int8" / "od_model.c").read_text()
    assert src.count("od_reduce_rows_s8(") == len(REDUCE_ROWS) and src.count("od_reduce_s8(") == 1
    vecs = random_inputs(summary["inputs"], n=4, seed=7)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(tmp_path / "reduce_rows_mcu_int8", vecs)
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_mean_over_leading_axes_bit_exact_on_emulated_cortex_m(board, tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    data, summary = _build("reduce_rows", _reduce_rows, tmp_path)
    vectors = random_inputs(summary["inputs"], n=2, seed=2)
    vectors.append([np.full(s["shape"], -128, np.int8) for s in summary["inputs"]])
    res = bench_qemu(tmp_path / "reduce_rows_mcu_int8", vectors, board, "opt")
    ref = TFLMModel(data)
    for got, vec in zip(res.outputs, vectors):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))
