"""Host runtime adapters (LiteRT, TFLM, ExecuTorch, Core ML) on artifacts exported from a tiny QAT run."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from _export_support import tiny_export, tiny_run_dir
from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes.base import get_runtime, runtime_for, runtime_names

MINE = ("tflite", "edgetpu", "tflm", "executorch", "coreml")


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict:
    return tiny_export(str(tmp_path_factory.getbasetemp() / "h3-export"), MINE)


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    from ondevice.export.api import load_source
    return load_source(tiny_run_dir(str(tmp_path_factory.getbasetemp() / "h3-export")))


@pytest.fixture(scope="session")
def samples(run):
    x = run.calibration()[:4]
    with torch.no_grad():
        ref = np.stack([run.qat_module()(x[i:i + 1]).numpy().reshape(-1) for i in range(4)])
    return x.numpy(), ref


def test_registered_and_picked_by_extension():
    names = runtime_names()
    for n in ("litert", "tflm", "executorch", "coreml"):
        assert n in names
    assert runtime_for("a.tflite").name == "litert"
    assert runtime_for("a.pte").name == "executorch" and runtime_for("a.bpte").name == "executorch"
    with pytest.raises(ConfigError):
        runtime_for("a.onnx")


@pytest.mark.parametrize("rt,target", [("litert", "tflite"), ("tflm", "tflm"), ("executorch", "executorch")])
def test_runtime_matches_qat_model(rt, target, exported, samples):
    x, ref = samples
    lm = get_runtime(rt).load(exported[target])
    assert lm.inputs[0].shape == [1, 1, 49, 40]
    step = lm.outputs[0].scale or 1e-3
    for i in range(len(x)):
        y = lm.run_float([x[i:i + 1]])[0].reshape(-1)
        # host kernels and the PT2E reference may round a couple of output steps apart, never more
        assert np.abs(y - ref[i]).max() <= 3 * step + 1e-6


def test_int8_specs_roundtrip(exported):
    lm = get_runtime("litert").load(exported["tflite"])
    s = lm.inputs[0]
    assert s.dtype == "int8" and s.scale > 0
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    assert np.abs(s.dequantize(s.quantize(x)) - x).max() <= s.scale / 2 + 1e-7


def test_tflm_refills_input_each_invoke_and_reports_arena(exported, samples):
    x, _ = samples
    tm = get_runtime("tflm").load(exported["tflm"])
    a1 = tm.run_float([x[0:1]])[0]
    tm.run_float([x[1:2]])
    again = tm.run_float([x[0:1]])[0]
    assert np.array_equal(a1, again)  # no stale state between invokes
    assert tm.memory_stats()["arena_bytes"] > 0
    assert "Arena allocation total" in tm.allocations_log()


def test_tflm_and_litert_within_two_steps(exported, samples):
    x, _ = samples
    lit = get_runtime("litert").load(exported["tflite"])
    tm = get_runtime("tflm").load(exported["tflm"])
    for i in range(len(x)):
        q = lit.inputs[0].quantize(x[i:i + 1])
        a, b = lit.run([q])[0].astype(int), tm.run([q])[0].astype(int)
        assert np.abs(a - b).max() <= 2


def test_litert_preserves_intermediates(exported, samples):
    from ondevice.runtimes.litert import LiteRTModel
    lm = LiteRTModel(exported["tflite"].read_bytes(), "t", preserve_all_tensors=True)
    lm.run([lm.inputs[0].quantize(samples[0][:1])])
    ts = lm.tensors()
    assert len(ts) > 5 and any(t["spec"].scale for t in ts)


def test_wrong_input_count_is_a_clear_error(exported, samples):
    lm = get_runtime("litert").load(exported["tflite"])
    with pytest.raises(VerifyError, match="takes 1 inputs"):
        lm.run([])


def test_coreml_off_macos_says_why(exported):
    rt = get_runtime("coreml")
    ok, why = rt.available()
    if platform.system() == "Darwin":
        assert ok
        return
    assert not ok and "macOS" in why
    m = rt.load(exported["coreml"])  # spec-only load still works
    assert m.inputs[0].shape == [1, 1, 49, 40] and m.ops
    with pytest.raises(VerifyError, match="macOS"):
        m.run([np.zeros((1, 1, 49, 40), np.float32)])
