"""`export --target mcu` end to end: the generated C of the reference recipes is bit-exact with the TFLM
interpreter on the test split; the memory plan is sound; unsupported ops are reported, not crashed on."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import require_tool
from mcu_cases import ACT, Case
from ondevice.errors import UnsupportedOpError
from ondevice.export.manifest import manifest_path
from ondevice.mcu.build import HostModel, build_host
from ondevice.mcu.codegen import generate
from ondevice.mcu.library import write_library
from ondevice.mcu.reader import read_tflite
from ondevice.verify.mcu import verify_host

RECIPES = ["kws_dscnn", "mitsis"]


@pytest.fixture(scope="session")
def mcu_artifacts(tmp_path_factory):
    """Both reference recipes exported with the registered `mcu` exporter (litert-torch conversion inside)."""
    require_tool("gcc")
    from ondevice.export.registry import get_exporter
    from ondevice.slim.checkpoint import load_run
    out = tmp_path_factory.mktemp("mcu_artifacts")
    return {name: get_exporter("mcu").export(load_run(f"models/{name}"), out) for name in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_bit_exact_vs_tflm_on_test_split(recipe, mcu_artifacts, synth_small):
    from ondevice.data.dataset import load_split
    from ondevice.features import quantize_features
    art = mcu_artifacts[recipe]
    man = json.loads(manifest_path(art).read_text())
    spec = man["inputs"][0]
    feats = load_split(synth_small, "test").features
    vectors = [quantize_features(f, spec["scale"], spec["zero_point"]).reshape(spec["shape"]) for f in feats]
    rep = verify_host(art, vectors)
    assert rep["vectors"] == len(feats) >= 8
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep
    assert rep["bit_exact_vs_tflm"] is True


@pytest.mark.parametrize("recipe", RECIPES)
def test_manifest_reports_static_arena_and_measured_flash(recipe, mcu_artifacts):
    art = mcu_artifacts[recipe]
    man = json.loads(manifest_path(art).read_text())
    assert art.name == f"{man['model']}_mcu_int8" and art.is_dir()
    assert man["target"] == "mcu" and man["quant"] == "int8"
    lib = HostModel(build_host(art))
    # The manifest, the summary and the compiled library agree on every figure.
    assert man["arena_bytes"] == lib.arena_bytes > 0 and man["arena_bytes"] % 16 == 0
    assert man["weight_bytes"] == lib.weight_bytes
    assert man["macs"] == lib.macs > 100_000
    assert sum(man["ops"].values()) == lib.n_ops == len(lib.op_names())
    if man["flash"]["source"].startswith("measured"):
        assert man["flash_bytes"] == man["flash"]["text"] + man["flash"]["rodata"] + man["flash"]["data"]
        assert man["flash"]["rodata"] >= man["weight_bytes"] * 0.9
    # The static arena is smaller than the TFLM interpreter's for the same tflite.
    rep = verify_host(art, [np.zeros(man["inputs"][0]["shape"], np.int8)], variants=("opt",))
    assert man["arena_bytes"] < rep["tflm_arena_bytes"]


def test_mcu_host_runtime_matches_tflm_runtime(mcu_artifacts):
    from ondevice.runtimes.base import get_runtime
    art = mcu_artifacts["kws_dscnn"]
    m = get_runtime("mcu-host").load(art)
    t = get_runtime("tflm").load(art / "source.tflite")
    x = np.random.default_rng(3).standard_normal(m.inputs[0].shape).astype(np.float32)
    np.testing.assert_array_equal(m.run_float([x])[0], t.run_float([x])[0])
    assert m.memory_stats()["arena_bytes"] > 0


@pytest.mark.parametrize("cpu,define", [("cortex-m4", "__ARM_FEATURE_DSP"), ("cortex-m55", "__ARM_FEATURE_MVE")])
def test_generated_library_cross_compiles_warning_free(cpu, define, mcu_artifacts, tmp_path):
    gcc = require_tool("arm-none-eabi-gcc")
    art = mcu_artifacts["mitsis"]
    srcs = [str(p) for p in sorted(art.glob("*.c")) + sorted((art / "kernels").glob("*.c"))]
    flags = [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=hard", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
             f"-I{art}", f"-I{art / 'kernels'}", "-c"]
    for s in srcs:
        subprocess.run([gcc, *flags, s, "-o", str(tmp_path / "x.o")], check=True)
    # The optimised kernels use the real DSP instructions on M4 (SMLAD), not the portable twins.
    r = subprocess.run([gcc, *flags, "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True, text=True, check=True)
    assert define in r.stdout
    if cpu == "cortex-m4":
        subprocess.run([gcc, *flags[:-1], "-S", str(art / "kernels" / "od_kernels_opt_s8.c"), "-o",
                        str(tmp_path / "opt.s")], check=True)
        assert "smlad" in (tmp_path / "opt.s").read_text()


def test_memory_plan_aliases_reshape_and_reuses_elementwise_in_place():
    c = Case(seed=5)
    c.reshape([2, 3, 8], [6, 8])  # RELU -> RESHAPE -> QUANTIZE
    g = read_tflite(c.build())
    gen = generate(g)
    plan = gen.plan
    relu, reshape, quant = g.ops
    # The reshape output is the relu output's bytes (no copy); QUANTIZE overwrites it in place.
    assert plan.offset(reshape.outputs[0]) == plan.offset(relu.outputs[0])
    assert plan.offset(quant.outputs[0]) == plan.offset(reshape.outputs[0])
    assert gen.n_ops == 2  # RESHAPE generates no call
    plan.check()


def test_memory_plan_packs_disjoint_lifetimes():
    c = Case(seed=6)
    x = c.act_in([1, 64])
    b = c.b
    prev = x
    for k in range(4):  # a chain of FCs: only two activations are alive at any time
        w = b.tensor([64, 64], scale=0.01, zero_point=0, data=np.ones((64, 64), np.int8))
        y = b.tensor([1, 64], scale=0.5, zero_point=0)
        from ondevice.mcu.tflite_build import options
        b.op("FULLY_CONNECTED", [prev, w, -1], [y], options("FullyConnectedOptions"))
        prev = y
    c.outputs.append(prev)
    gen = generate(read_tflite(c.build()))
    assert gen.arena_bytes == 128  # two 64-byte tensors, 16-byte aligned


def test_unsupported_ops_are_collected_with_a_hint():
    c = Case(seed=8)
    x = c.act_in([4, 8])
    y = c.act_out([4, 8], 1.0 / 128, zp=0)
    z = c.act_out([4, 8], 1.0 / 128, zp=0)
    c.b.op("SIN", [x], [y])
    c.b.op("COS", [x], [z])
    with pytest.raises(UnsupportedOpError) as ei:
        generate(read_tflite(c.build()))
    msg = str(ei.value)
    assert "SIN (op 0 at " in msg and "COS (op 1 at " in msg and "hint" in msg


def test_variable_fc_weights_are_rejected_with_attention_hint():
    c = Case(seed=9)
    x = c.act_in([4, 8])
    w = c.act_in([6, 8])  # weights fed from an activation: a matmul in disguise
    y = c.act_out([4, 6], 0.5)
    from ondevice.mcu.tflite_build import options
    c.b.op("FULLY_CONNECTED", [x, w, -1], [y], options("FullyConnectedOptions", fusedActivationFunction=ACT.NONE))
    with pytest.raises(UnsupportedOpError, match="broadcast MUL"):
        generate(read_tflite(c.build()))


@pytest.mark.parametrize("recipe,board,variant", [("kws_dscnn", "mps2-an386", "opt"), ("mitsis", "mps2-an386", "ref"),
                                                  ("mitsis", "mps3-an547", "opt")])
def test_qemu_outputs_bit_exact_vs_tflm(recipe, board, variant, mcu_artifacts, synth_small):
    """The cross-compiled library on the emulated Cortex-M gives TFLM's bytes on the test split."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.data.dataset import load_split
    from ondevice.features import quantize_features
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    art = mcu_artifacts[recipe]
    spec = json.loads(manifest_path(art).read_text())["inputs"][0]
    feats = load_split(synth_small, "test").features
    vecs = [quantize_features(f, spec["scale"], spec["zero_point"]).reshape(spec["shape"]) for f in feats]
    res = bench_qemu(art, vecs, board, variant)
    ref = TFLMModel((art / "source.tflite").read_bytes())
    assert len(res.outputs) == len(vecs) >= 8
    for got, x in zip(res.outputs, vecs):
        np.testing.assert_array_equal(got[0], ref.run([x])[0].reshape(got[0].shape))
    # Instructions are deterministic under -icount and every op is timed by the hook.
    assert min(res.instructions) > 0 and len(res.op_instructions) == json.loads(
        manifest_path(art).read_text())["n_ops"]
    assert 0 < res.stack_bytes < 4096


def test_pad_fuses_into_conv_and_dying_inputs_are_overwritten_in_place():
    c = Case(seed=11)
    c.chain([1, 6, 5, 8], pad=(1, 1))
    g = read_tflite(c.build())
    gen = generate(g)
    assert "PAD" not in gen.ops  # folded into the depthwise conv's padding
    assert gen.ops == {"DEPTHWISE_CONV_2D": 1, "CONV_2D": 1, "FULLY_CONNECTED": 1}
    by_code = {op.opcode: op for op in g.ops}
    dw, pw, fc = by_code["DEPTHWISE_CONV_2D"], by_code["CONV_2D"], by_code["FULLY_CONNECTED"]
    # The depthwise reads the graph input, which is never overwritten; what follows runs in place.
    assert dw.index not in gen.plan.inplace and {pw.index, fc.index} <= gen.plan.inplace
    assert gen.plan.offset(dw.outputs[0]) == gen.plan.offset(pw.outputs[0]) == gen.plan.offset(fc.outputs[0])
    assert "od_matmul_s8_inplace" in gen.source


def test_depthwise_runs_in_place_when_its_input_dies():
    c = Case(seed=12)
    c.chain([1, 6, 5, 8], lead_relu=True)
    g = read_tflite(c.build())
    gen = generate(g)
    dw = next(op for op in g.ops if op.opcode == "DEPTHWISE_CONV_2D")
    assert dw.index in gen.plan.inplace
    assert gen.plan.offset(dw.inputs[0]) == gen.plan.offset(dw.outputs[0])
    assert "od_depthwise_conv2d_s8_inplace" in gen.source


def test_verify_qemu_reports_bit_exact_and_count(mcu_artifacts):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.verify.mcu import verify_qemu
    art = mcu_artifacts["kws_dscnn"]
    shape = json.loads(manifest_path(art).read_text())["inputs"][0]["shape"]
    x = np.random.default_rng(4).standard_normal([3, *shape]).astype(np.float32)  # floats are quantized
    rep = verify_qemu(art, x)
    assert rep["bit_exact_vs_tflm"] is True and rep["vectors"] == 3 and rep["mismatched_vectors"] == 0
    assert rep["instructions_per_inference"] > json.loads(manifest_path(art).read_text())["macs"]


def test_localise_mismatch_names_the_first_wrong_op(monkeypatch, tmp_path):
    """Every intermediate is exposed and compared: a fault in one op's tables is pinned to that op."""
    require_tool("gcc")
    from ondevice.mcu import quant
    from ondevice.verify.mcu import localise_mismatch
    c = Case(seed=13)
    c.chain([1, 6, 5, 8], pad=(1, 1), lead_relu=True)
    data = c.build()
    x = np.random.default_rng(0).integers(-128, 128, (1, 6, 5, 8)).astype(np.int8)
    assert localise_mismatch(data, [x], work_dir=tmp_path) is None
    real = quant.per_channel_multipliers

    def broken(in_s, fs, out_s, ch):  # halve the 1x1 conv's scale only (it has 4 output channels)
        m, s = real(in_s, fs, out_s, ch)
        return (m, [v - 1 for v in s]) if ch == 4 else (m, s)
    monkeypatch.setattr(quant, "per_channel_multipliers", broken)
    bad = localise_mismatch(data, [x], work_dir=tmp_path)
    assert bad is not None and bad["opcode"] == "CONV_2D" and bad["max_abs_diff_int8"] > 0


def test_compare_with_tflm_counts_every_runner_apart(tmp_path):
    """The one compare routine: each runner's vectors are checked bit for bit against the TFLM interpreter, and a
    runner one LSB off on one vector is a mismatch of that runner only."""
    from ondevice.runtimes.tflm import TFLMModel
    from ondevice.verify.mcu import compare_with_tflm
    c = Case(seed=5)
    c.chain([1, 6, 5, 8], pad=(1, 1), lead_relu=True)
    data = c.build()
    lib = tmp_path / "cmp_mcu_int8"
    write_library(data, lib, name="cmp")
    x = np.random.default_rng(1).integers(-128, 128, (3, 1, 6, 5, 8)).astype(np.int8)
    tflm = TFLMModel(data)

    def exact(vecs):
        return [tflm.run(v) for v in vecs]

    def one_off(vecs):
        outs = exact(vecs)
        outs[1] = [o.copy() for o in outs[1]]
        flat = outs[1][0].reshape(-1)
        flat[0] = flat[0] + 1 if flat[0] < 127 else flat[0] - 1
        return outs
    res = compare_with_tflm(lib, x, {"exact": exact, "one-off": one_off})
    assert res.vectors == 3 and res.elements_compared == 3 * sum(o.size for o in tflm.run([x[0]]))
    assert res.mismatched_vectors == {"exact": 0, "one-off": 1} and res.max_abs_diff_int8 == {"exact": 0, "one-off": 1}
    assert not res.bit_exact
