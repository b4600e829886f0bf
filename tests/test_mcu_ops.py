"""MCU engine op coverage: every op published TinyML models use is bit-exact with the TFLM interpreter, on the
host build and under QEMU, or refused in one line naming the op, its index and its location.

Single-op graphs come from tests/tflite_ops.py (many independent single ops per graph: one build, one boot).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import require_tool
from tflite_ops import ACT, PAD, OpCase, converter_mix_tflite, every_int8, lut_sweep, op_inputs
from ondevice.errors import UnsupportedOpError
from ondevice.mcu.library import write_library
from ondevice.verify.mcu import verify_host


def _float_io(c: OpCase):
    c.quantize_float([2, 40], 0.25, 3)          # exact .5 ties: round half away from zero
    c.quantize_float([1, 5, 7], 0.0473, -17)
    c.dequantize([3, 9])
    c.requantize([2, 30], 1.7, 5)                # int8 -> int8 QUANTIZE
    c.requantize([4, 8], 0.45, -20)
    c.quantize_uint8([3, 20], 128, 1.0, 0)         # the pure 128 shift
    c.quantize_uint8([2, 25], 100, 0.7, -9)


def _shape_chain(c: OpCase):
    c.shape_chain([1, 4, 5, 6])
    c.shape_chain([2, 3, 7])


def _activations(c: OpCase):
    for s in (0.01, 0.05, 0.2):
        c.activation("LOGISTIC", [2, 33], in_scale=s)
        c.activation("TANH", [3, 17], in_scale=s)
    c.activation("HARD_SWISH", [1, 6, 6, 5], out_ratio=0.6)
    c.activation("HARD_SWISH", [40], in_scale=0.2, out_ratio=1.3)
    c.activation("LEAKY_RELU", [4, 21], alpha=0.2)
    c.activation("LEAKY_RELU", [64], alpha=0.01, out_ratio=0.7)
    c.prelu([1, 5, 4, 6], [1, 1, 6])
    c.prelu([2, 3, 9], [9])
    c.prelu([1, 4, 3, 2], [4, 3, 2])


def _mean_pad_pool(c: OpCase):
    c.reduce("MEAN", [1, 6, 5, 8], [1, 2], True)
    c.reduce("MEAN", [1, 7, 9], [1], False)
    c.pad([1, 5, 5, 3], [[0, 0], [1, 2], [2, 1], [0, 0]])
    c.padv2([1, 4, 3, 2], [[0, 0], [2, 0], [1, 1], [0, 1]], -77)
    c.padv2([5, 6], [[1, 1], [0, 3]], 12)
    c.pool("MAX_POOL_2D", [1, 9, 9, 6], 3, 2, padding=PAD.SAME)
    c.pool("MAX_POOL_2D", [1, 8, 7, 3], 2, 2, padding=PAD.VALID, act=ACT.RELU)
    c.reduce_max([1, 6, 5, 8], [1, 2], False)     # global max pooling
    c.reduce_max([3, 4, 7], [0, -1], True)


def _movement(c: OpCase):
    c.resize_nearest([1, 3, 4, 5], [6, 8])
    c.resize_nearest([1, 5, 5, 2], [7, 3], align=True)
    c.resize_nearest([2, 4, 3, 3], [9, 5], half=True)
    c.split([1, 6, 4, 6], axis=3, n=3)
    c.split([4, 10], axis=1, sizes=[3, 5, 2])
    c.squeeze([1, 5, 1, 7], [0, 2])
    c.pack([2, 3, 4], 3, axis=1)
    c.pack([5], 4, axis=1)
    c.unpack([2, 3, 4], axis=2)
    c.unpack([3, 6], axis=0)
    c.concat([[2, 9]], axis=1)
    c.concat([[2, 3, 4], [2, 5, 4], [2, 1, 4]], axis=1)
    c.concat([[1, 2, 3, k] for k in range(1, 11)], axis=3)  # TFLM's limit: 10 inputs


def _batch_matmul(c: OpCase):
    c.batch_matmul([2, 4, 6], [2, 6, 5])
    c.batch_matmul([3, 5, 7], [7, 4])                   # broadcast rhs
    c.batch_matmul([1, 2, 3, 8], [2, 1, 5, 8], adj_y=True)
    c.batch_matmul([2, 6, 4], [2, 6, 3], adj_x=True)
    c.batch_matmul([4, 9], [9, 3], const_b=True)


def _transpose_conv(c: OpCase):
    c.transpose_conv([1, 4, 5, 6], 5, 3, 2)
    c.transpose_conv([1, 3, 3, 4], 3, 3, 2, padding=PAD.VALID)
    c.transpose_conv([2, 5, 4, 3], 4, 2, 2, bias=False)
    c.transpose_conv([1, 6, 6, 8], 8, 3, 1)


FAMILIES = {"float_io": _float_io, "shape_chain": _shape_chain, "activations": _activations,
            "mean_pad_pool": _mean_pad_pool, "movement": _movement, "batch_matmul": _batch_matmul,
            "transpose_conv": _transpose_conv}


def _case(families) -> OpCase:
    c = OpCase(seed=sum(map(ord, "".join(families))))
    for f in families:
        FAMILIES[f](c)
    return c


@pytest.mark.parametrize("family", list(FAMILIES))
def test_op_family_bit_exact_vs_tflm_on_host(family, tmp_path):
    require_tool("gcc")
    summary = write_library(_case([family]).build(), tmp_path / f"{family}_mcu_int8", name=family)
    vectors = op_inputs(summary["inputs"], n=4, seed=3)
    rep = verify_host(tmp_path / f"{family}_mcu_int8", vectors)
    assert rep["vectors"] == 4 and rep["elements_compared"] > 0
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep
    assert rep["bit_exact_vs_tflm"] is True


def _lut_params(seed: int):
    """Random parameter sets per table op, spanning input scales from 1e-3 to 1 and every zero point range."""
    rng = np.random.default_rng(seed)
    out = []
    for op in ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU"):
        for _ in range(8):
            # Output/input scale ratios 0.8 and 1.25 make exact .5 ties: they show float vs double setup.
            ratio = float(rng.choice([0.8, 1.25, 0.5, rng.uniform(0.3, 1.5)]))
            out.append((op, float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128)), ratio))
    return out


def test_table_activations_exhaustive_vs_tflm(tmp_path):
    """LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU: all 256 int8 inputs for 8 parameter sets each, bit for bit."""
    require_tool("gcc")
    c = OpCase(seed=11)
    lut_sweep(c, _lut_params(5))
    summary = write_library(c.build(), tmp_path / "lut_mcu_int8", name="lut")
    assert summary["ops"] == {"LOGISTIC": 8, "TANH": 8, "HARD_SWISH": 8, "LEAKY_RELU": 8}
    rep = verify_host(tmp_path / "lut_mcu_int8", every_int8(summary["inputs"]))
    assert rep["elements_compared"] == 2 * 32 * 256
    assert rep["bit_exact_vs_tflm"] is True, rep


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_all_op_families_bit_exact_under_qemu(board, tmp_path):
    """Every family and an exhaustive table sweep in one firmware image, one QEMU boot per board (M4, M55)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.verify.mcu import verify_qemu
    c = _case(list(FAMILIES))
    lut_sweep(c, _lut_params(6)[::3])
    summary = write_library(c.build(), tmp_path / "ops_mcu_int8", name="ops")
    for op in ("QUANTIZE", "DEQUANTIZE", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "PRELU", "MEAN", "PAD",
               "PADV2", "MAX_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "SPLIT", "SPLIT_V", "CONCATENATION",
               "BATCH_MATMUL", "TRANSPOSE_CONV", "PACK", "UNPACK", "REDUCE_MAX"):
        assert summary["ops"].get(op, 0) > 0, op
    # The shape chains' SHAPE / STRIDED_SLICE / PACK are folded: only the two PACKs of activations run.
    assert "SHAPE" not in summary["ops"] and "STRIDED_SLICE" not in summary["ops"] and summary["ops"]["PACK"] == 2
    vectors = op_inputs(summary["inputs"], n=2, seed=4)
    ramp = every_int8(summary["inputs"])[0]
    vectors.append([r if s["shape"] == [256] else v for r, v, s in zip(ramp, vectors[0], summary["inputs"])])
    rep = verify_qemu(tmp_path / "ops_mcu_int8", vectors, board)
    assert rep["vectors"] == 3
    assert rep["bit_exact_vs_tflm"] is True, rep


def _tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tensorflow-cpu is not installed; pip install -e '.[reference]'")
        pytest.skip("tensorflow-cpu not installed (pip install -e '.[reference]')")


def test_converter_model_float_io_and_shape_chain_bit_exact(tmp_path):
    """TensorFlow's converter output (float in/out, int8 inside, a run-time reshape target) on host and QEMU."""
    _tensorflow()
    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from ondevice.mcu.reader import read_tflite
    from ondevice.verify.mcu import verify_qemu
    data = converter_mix_tflite()
    src_ops = {op.opcode for op in read_tflite(data).ops}
    assert {"SHAPE", "PACK", "STRIDED_SLICE", "QUANTIZE", "DEQUANTIZE", "HARD_SWISH"} <= src_ops
    summary = write_library(data, tmp_path / "mix_mcu_int8", name="mix")
    assert [s["dtype"] for s in summary["inputs"] + summary["outputs"]] == ["float32"] * 3
    assert not {"SHAPE", "PACK", "STRIDED_SLICE", "RESHAPE"} & set(summary["ops"])  # folded; RESHAPE aliases
    x = list(np.random.default_rng(1).normal(size=(3, 1, 16, 12, 3)).astype(np.float32))
    rep = verify_host(tmp_path / "mix_mcu_int8", x)
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0}, rep
    rep = verify_qemu(tmp_path / "mix_mcu_int8", x, "mps2-an386")
    assert rep["bit_exact_vs_tflm"] is True and rep["vectors"] == 3, rep


def _one_op(opname: str, dtype: str = "int8") -> bytes:
    """input -> RELU -> <opname> -> output, with the op's output tensor named like a converter location."""
    c = OpCase(seed=1)
    x = c.b.tensor([1, 8], dtype, scale=0.05, zero_point=0)
    a = c.b.tensor([1, 8], dtype, scale=0.05, zero_point=0, name="model/relu")
    y = c.b.tensor([1, 8], dtype, scale=0.05, zero_point=0, name="model/block_2/unsupported_op")
    c.b.op("RELU", [x], [a])
    c.b.op(opname, [a], [y])
    return c.b.build([x], [y])


def test_unsupported_op_refused_in_one_line_naming_op_index_location(tmp_path):
    out = tmp_path / "x_mcu_int8"
    with pytest.raises(UnsupportedOpError) as ei:
        write_library(_one_op("SIN"), out, name="x")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "SIN (op 1 at 'model/block_2/unsupported_op')" in msg and "no MCU kernel" in msg
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written


def test_int16_activations_refused_clearly(tmp_path):
    """A 16x8 graph: int8 in -> QUANTIZE to int16 -> LOGISTIC int16 -> QUANTIZE to int8 out."""
    c = OpCase(seed=2)
    x = c.b.tensor([1, 8], scale=0.05, zero_point=0)
    a = c.b.tensor([1, 8], "int16", scale=0.001, zero_point=0, name="model/to16")
    h = c.b.tensor([1, 8], "int16", scale=1 / 32768, zero_point=0, name="model/sigmoid16")
    y = c.b.tensor([1, 8], scale=1 / 256, zero_point=-128)
    c.b.op("QUANTIZE", [x], [a])
    c.b.op("LOGISTIC", [a], [h])
    c.b.op("QUANTIZE", [h], [y])
    with pytest.raises(UnsupportedOpError) as ei:
        write_library(c.b.build([x], [y]), tmp_path / "y_mcu_int8", name="y")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "LOGISTIC (op 1 at 'model/sigmoid16')" in msg and "int16 activations are not supported" in msg
    assert not list(tmp_path.iterdir())


def test_agent_carries_float_io_of_a_generated_model(tmp_path):
    """The firmware agent (host port) reports float32 tensors in MODEL_INFO and runs float in -> float out."""
    require_tool("cc")
    from _firmware_support import PipeTransport, make
    from ondevice.runtimes.tflm import TFLMModel
    from ondevice.profiling.session import DeviceSession
    c = OpCase(seed=3)
    c.quantize_float([1, 24], 0.25, -3)
    data = c.build()
    lib = tmp_path / "fio_mcu_int8"
    write_library(data, lib, name="fio")
    make("host", HOST_O=str(tmp_path / "fw"), MODEL=str(lib))
    t = PipeTransport(tmp_path / "fw" / "od_agent")
    try:
        s = DeviceSession(t, timeout=10)
        s.hello()
        s.select_builtin(index=0)
        mi = s.model_info()
        assert [x["dtype"] for x in mi["tensors"]] == ["float32", "int8", "float32"]
        x = op_inputs([{"dtype": "float32", "shape": [1, 24]}], n=2, seed=5)[1][0]
        s.set_input(0, x.tobytes())
        s.run(1, 0)
        want = TFLMModel(data).run([x])
        assert np.frombuffer(s.get_output(0), np.int8).tobytes() == want[0].tobytes()
        assert np.frombuffer(s.get_output(1), np.float32).tobytes() == want[1].astype(np.float32).tobytes()
    finally:
        t.close()


def test_concatenation_beyond_tflm_input_limit_matches_numpy(tmp_path):
    """TFLM stops at 10 CONCATENATION inputs; the engine takes any count (bytes are copied: numpy is exact)."""
    require_tool("gcc")
    from ondevice.mcu.build import HostModel, build_host
    c = OpCase(seed=4)
    c.concat([[2, k, 3] for k in range(1, 14)], axis=1)
    summary = write_library(c.build(), tmp_path / "cat_mcu_int8", name="cat")
    assert summary["ops"] == {"CONCATENATION": 1}
    xs = op_inputs(summary["inputs"], n=1, seed=6)[0]
    for variant in ("opt", "ref"):
        (got,) = HostModel(build_host(tmp_path / "cat_mcu_int8", variant)).run(xs)
        np.testing.assert_array_equal(got, np.concatenate(xs, axis=1))


def test_float_model_refused_in_one_line(tmp_path):
    c = OpCase(seed=5)
    x, y = c.float_in([1, 8]), c.b.tensor([1, 8], "float32")
    c.outputs.append(y)
    c.b.op("RELU", [x], [y])
    with pytest.raises(UnsupportedOpError, match="float .unquantized. tflite") as ei:
        write_library(c.build(), tmp_path / "f_mcu_int8", name="f")
    assert "\n" not in str(ei.value) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("scale,zp", [(0.25, 3), (0.0473, -17), (0.00390625, -128), (1.7e-3, 90)])
def test_float_quantize_at_every_rounding_boundary(scale, zp, tmp_path):
    """QUANTIZE float -> int8 on each level's .5 boundary and its two float32 neighbours, vs TFLM."""
    require_tool("gcc")
    half = ((np.arange(-140, 141) + 0.5) * np.float32(scale)).astype(np.float32)
    x = np.concatenate([half, np.nextafter(half, np.float32(-np.inf)), np.nextafter(half, np.float32(np.inf))])
    c = OpCase(seed=1)
    c.quantize_float([1, x.size], scale, zp)
    write_library(c.build(), tmp_path / "q_mcu_int8", name="q")
    rep = verify_host(tmp_path / "q_mcu_int8", [[x.reshape(1, -1)]])
    assert rep["elements_compared"] == 2 * x.size and rep["bit_exact_vs_tflm"] is True, rep
