"""The RAM-cutting execution schemes (ondevice/mcu/rowexec.py, od_rowexec_s8.c) are chosen where they apply and
stay bit-exact with the TFLM interpreter, reference and optimised kernels, on the host and under QEMU:
- a residual block conv -> conv -> ADD run row by row over its input;
- a strided conv written in place over its dying input;
- a conv's dying input (a model input too) placed inside its output's bytes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, PAD, U8_STD, Case, random_inputs
from ondevice.mcu.codegen import generate
from ondevice.mcu.library import write_library
from ondevice.mcu.reader import read_tflite
from ondevice.mcu.rowexec import RESBLOCK, fuse_residual_blocks
from ondevice.mcu.tflite_build import options


def _act(c: Case, shape, scale, zp) -> int:
    return c.b.tensor(list(shape), scale=scale, zero_point=zp)


def _conv(c: Case, x: int, out_c: int, k: int, stride: int = 1, act=ACT.RELU, out: int | None = None) -> int:
    """CONV_2D (SAME) reading tensor ``x``; returns its output tensor."""
    n, h, w, ic = (int(v) for v in c.b.tensors[x].shape)
    sx = c.scale_of(x)
    ws = c.rng.uniform(0.002, 0.02, out_c)
    wt = c.b.tensor([out_c, k, k, ic], scale=ws, zero_point=np.zeros(out_c, np.int64),
                    data=c.rng.integers(-127, 128, (out_c, k, k, ic)), qdim=0)
    bt = c.b.tensor([out_c], "int32", scale=sx * ws, zero_point=np.zeros(out_c, np.int64),
                    data=c.rng.integers(-3000, 3000, out_c), qdim=0)
    so = 3 * math.sqrt(k * k * ic) * sx * U8_STD * float(ws.mean()) * U8_STD / 128
    y = out if out is not None else _act(c, [n, math.ceil(h / stride), math.ceil(w / stride), out_c], so,
                                         int(c.rng.integers(-10, 10)))
    c.b.op("CONV_2D", [x, wt, bt], [y], options("Conv2DOptions", padding=PAD.SAME, strideW=stride, strideH=stride,
                                                 dilationWFactor=1, dilationHFactor=1, fusedActivationFunction=act))
    return y


def _shape(c: Case, t: int) -> list[int]:
    return [int(v) for v in c.b.tensors[t].shape]


def _resblock(c: Case, shape, mid_c: int, k: int = 3, x_first: bool = True, act=ACT.RELU) -> int:
    """input -> conv (x, an intermediate) -> conv P -> conv C -> ADD(x, z); returns the ADD output."""
    x0 = c.act_in(shape)
    x = _conv(c, x0, shape[3], 3)
    y = _conv(c, x, mid_c, k)
    z = _conv(c, y, shape[3], k, act=ACT.NONE)
    s = (c.scale_of(x) + c.scale_of(z)) * 1.1
    o = _act(c, _shape(c, x), s, int(c.rng.integers(-10, 10)))
    c.b.op("ADD", [x, z] if x_first else [z, x], [o], options("AddOptions", fusedActivationFunction=act))
    return o


def _blocks(c: Case) -> None:
    c.outputs.append(_resblock(c, [1, 9, 8, 8], 12))
    c.outputs.append(_resblock(c, [1, 6, 7, 4], 4, k=5, x_first=False, act=ACT.NONE))
    c.outputs.append(_resblock(c, [1, 1, 5, 8], 8))                     # one row: top and bottom padding at once


def _strided(c: Case) -> None:
    """Strided convs reading an intermediate that dies there (3x3 and 1x1, stride 2), then an odd-size one."""
    for shape, k in (([1, 8, 10, 8], 3), ([1, 6, 6, 16], 1), ([1, 9, 9, 8], 3)):
        x0 = c.act_in(shape)
        x = _conv(c, x0, shape[3], 1)
        c.outputs.append(_conv(c, x, 2 * shape[3], k, stride=2))


def _first_conv(c: Case) -> None:
    """A model input read only by a conv (featconv's shape, smaller): it may share the conv's output bytes."""
    c.conv([1, 13, 10, 1], 4, 3)
    c.conv([1, 8, 8, 3], 8, 3, stride=2)


SCHEMES = {"resblock": _blocks, "strided_inplace": _strided, "input_in_output": _first_conv}


def _lib(scheme: str, tmp_path):
    c = Case(seed=sum(map(ord, scheme)))
    SCHEMES[scheme](c)
    data = c.build()
    summary = write_library(data, tmp_path / f"{scheme}_mcu_int8", name=scheme)
    return data, summary, tmp_path / f"{scheme}_mcu_int8"


def test_residual_block_fuses_and_runs_over_its_input():
    c = Case(seed=3)
    _blocks(c)
    g = read_tflite(c.build())
    before = len(g.ops)
    gen = generate(g)
    assert gen.ops.get(RESBLOCK) == 3 and len(g.ops) == before - 6
    assert gen.source.count("od_resblock_s8(") == 3
    for op in g.ops:
        if op.opcode == RESBLOCK:
            p, cc, add = op.options["ops"]
            assert gen.plan.offset(op.inputs[0]) == gen.plan.offset(add.outputs[0])  # written over x
            assert op.index in gen.plan.inplace
    # Each block holds x + rows, not x + y + z: the arena is below two of the largest block's tensors.
    assert gen.arena_bytes < 2 * 9 * 8 * 12


def test_residual_block_not_fused_when_an_intermediate_is_read_elsewhere():
    c = Case(seed=4)
    o = _resblock(c, [1, 6, 6, 8], 8)
    c.outputs.append(o)
    g = read_tflite(c.build())
    add = g.ops[-1]
    g.outputs.append(add.inputs[1])  # z is also a model output (what localise_mismatch does)
    assert fuse_residual_blocks(g) == 0


def test_strided_conv_runs_in_place_when_outputs_land_below_reads():
    c = Case(seed=5)
    _strided(c)
    g = read_tflite(c.build())
    gen = generate(g)
    strided = [op for op in g.ops if op.opcode == "CONV_2D" and op.options.get("strideH") == 2]
    even = strided[:2]
    assert all(op.index in gen.plan.inplace for op in even)
    assert all(gen.plan.offset(op.inputs[0]) == gen.plan.offset(op.outputs[0]) for op in even)


def test_dying_model_input_sits_inside_the_first_conv_output():
    c = Case(seed=6)
    _first_conv(c)
    g = read_tflite(c.build())
    gen = generate(g)
    for op in g.ops:
        i, o = op.inputs[0], op.outputs[0]
        d = gen.plan.offset(i) - gen.plan.offset(o)
        ti, to = g.tensors[i], g.tensors[o]
        assert 0 < d < to.nbytes and d % 16 == 0
    # Both conv pairs fit in less than input + output + scratch.
    assert gen.arena_bytes < sum(t.nbytes for t in g.tensors if not t.is_const)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_scheme_bit_exact_vs_tflm_on_host(scheme, tmp_path):
    require_tool("gcc")
    from ondevice.verify.mcu import verify_host
    _, summary, lib = _lib(scheme, tmp_path)
    vecs = random_inputs(summary["inputs"], n=4, seed=1)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(lib, vecs)
    assert rep["vectors"] == 6 and rep["elements_compared"] > 0
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0} and rep["bit_exact_vs_tflm"] is True, rep


@pytest.mark.parametrize("board,variant", [("mps2-an386", "opt"), ("mps2-an386", "ref"), ("mps3-an547", "opt")])
def test_schemes_bit_exact_vs_tflm_under_qemu(board, variant, tmp_path):
    """All three schemes in one graph, on the emulated Cortex-M4 / M55 (native DSP instructions)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    c = Case(seed=9)
    for f in SCHEMES.values():
        f(c)
    data = c.build()
    lib = tmp_path / "rowexec_mcu_int8"
    summary = write_library(data, lib, name="rowexec")
    assert {RESBLOCK, "CONV_2D"} <= set(summary["ops"])
    vecs = random_inputs(summary["inputs"], n=2, seed=2)
    res = bench_qemu(lib, vecs, board, variant)
    ref = TFLMModel(data)
    assert len(res.outputs) == 2
    for got, vec in zip(res.outputs, vecs):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))


def test_memory_plan_segments_free_the_tail_and_place_shifted_tensors():
    """A buffer keeps each tensor's own bytes and lifetime: a 64-byte output in place over a 128-byte
    input frees the other 64 bytes for a tensor born after it; a shifted tensor moves with its buffer."""
    from ondevice.mcu.planner import MemoryPlan
    plan = MemoryPlan()
    plan.add("x", 128, 0, 1)
    plan.merge("x", "y", 64, 1, 3)                  # in place, smaller: bytes 64..128 free after op 1
    plan.add("z", 64, 2, 3)
    plan.add("a", 32, 0, 0)
    plan.merge("a", "b", 48, 0, 2, shift=16)        # a now sits 16 bytes into b's bytes
    assert plan.place() == 176  # x|y then z in the freed half; a|b above (alive with x)
    plan.check()
    assert plan.offset("y") == plan.offset("x") and plan.offset("z") == plan.offset("x") + 64
    assert plan.offset("a") == plan.offset("b") + 16
