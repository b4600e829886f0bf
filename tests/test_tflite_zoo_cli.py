"""Issue 12's must-show for the FLOAT-I/O zoo models, from the CLI: each goes `export --target mcu,tflm --model
x.tflite`, `verify` (bit-exact vs TFLM on the host build and under QEMU) and `profile` on qemu://mps2-an386 and on
the sim agents that take the exported folders.

The zoo's untrained heads give near-uniform softmax outputs on random inputs (every class the same step), which
would let a wrong input path pass unseen; `_spread` rescales each model's last Dense so its outputs vary.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ondevice.cli import main

import tflite_zoo

N_VECTORS = 16


def _spread(builder):
    """``builder`` with its last Dense rescaled (logit std ~1 over random inputs, centred): outputs that vary."""
    def build(tf):
        model, shapes = builder(tf)
        dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)][-1]
        feats = tf.keras.Model(model.inputs, dense.input)
        x = np.random.default_rng(7).uniform(-1, 1, (64,) + tuple(shapes[0][1:])).astype(np.float32)
        w, _ = dense.get_weights()
        z = feats.predict(x, verbose=0).reshape(64, -1) @ w
        k = 1.0 / max(float(z.std(0).mean()), 1e-6)
        dense.set_weights([w * k, -z.mean(0) * k])
        return model, shapes
    return build


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo-float")


def _float_model(name: str, folder: Path, monkeypatch) -> Path:
    monkeypatch.setitem(tflite_zoo.ZOO, name, _spread(tflite_zoo.ZOO[name]))
    return tflite_zoo.write(name, folder)  # float I/O: QUANTIZE / DEQUANTIZE at the edges


def _cli(*args) -> int:
    return main([str(a) for a in args])


def _profile(url: str, artifact, out: Path) -> dict:
    assert _cli("profile", "--device", url, artifact, "--runs", 3, "--warmup", 1, "--out", out) == 0, url
    prof = json.loads((out / "profile.json").read_text())
    assert prof["status"] == "ok" and prof["runs"] == 3, url
    mi = prof["model_info"]
    assert [t["dtype"] for t in mi["inputs"] + mi["outputs"]] == ["float32", "float32"], url
    assert mi["inputs"][0]["scale"] is None and mi["outputs"][0]["scale"] is None, url
    return prof


def _tflm_outputs(p: Path, prof: dict) -> np.ndarray:
    """The TFLM interpreter on the profile session's own (seeded) float32 inputs."""
    from ondevice.profiling.inputs import make_inputs
    from ondevice.runtimes.tflm import TFLMRuntime
    ins = make_inputs(prof["model_info"]["inputs"], seed=0)
    assert ins[0].dtype == np.float32
    return np.asarray(TFLMRuntime().load(p).run(ins)[0], np.float32).reshape(-1)


@pytest.mark.qemu
@pytest.mark.parametrize("name", list(tflite_zoo.ZOO))
def test_float_io_zoo_model_export_verify_profile_from_the_cli(name, zoo_dir, tmp_path, monkeypatch):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    import ondevice.verify.source as vs
    monkeypatch.setattr(vs, "RANDOM_N", N_VECTORS)
    p = _float_model(name, zoo_dir, monkeypatch)
    stem = p.stem.replace("_", "-")
    art = tmp_path / "art"
    monkeypatch.chdir(zoo_dir)  # a relative --model, as typed by a user
    assert _cli("export", "--target", "mcu,tflm", "--model", p.name, "--out", art) == 0

    for target in ("mcu", "tflm"):
        m = json.loads((art / f"{stem}_{target}_int8.manifest.json").read_text())
        assert m["source_run"] == str(p.resolve()), target  # verify finds it from any working directory
        assert [t["dtype"] for t in m["inputs"] + m["outputs"]] == ["float32", "float32"], target
    m = json.loads((art / f"{stem}_mcu_int8.manifest.json").read_text())
    assert [(t["dtype"], t["scale"]) for t in m["inputs"] + m["outputs"]] == [("float32", 0.0)] * 2

    monkeypatch.chdir(tmp_path)
    assert _cli("verify", art) == 0
    r = json.loads((art / "verify_report.json").read_text())
    assert r["data"]["source"] == "random" and r["data"]["n"] == N_VECTORS and "reference" in r["reference"]["kernels"]
    t = r["targets"]
    assert t["tflm"]["passed"] and t["mcu"]["passed"] and t["tflm"]["n"] == t["mcu"]["n"] == N_VECTORS
    # the mcu host build is bit-exact with TFLM, so it sits exactly as far from LiteRT as TFLM does
    assert t["mcu"]["max_abs_diff"] == t["tflm"]["max_abs_diff"] and t["mcu"]["max_abs_diff_steps"] <= 2
    assert t["mcu"]["ties_excluded"] < N_VECTORS  # outputs that vary: agreement means something
    assert t["mcu"]["bit_exact_vs_tflm"] is True and t["mcu"]["vectors_compared"] == N_VECTORS
    assert t["mcu-qemu"]["ran"] is True and t["mcu-qemu"]["bit_exact_vs_tflm"] is True
    assert t["mcu-qemu"]["vectors_compared"] == N_VECTORS and "problems" not in r

    prof = _profile("qemu://mps2-an386", p, tmp_path / "qemu")
    assert prof["device"]["board"] == "qemu-mps2-an386" and prof["metrics"]["latency_p50_ms"]["value"] > 0
    want = _tflm_outputs(p, prof)
    assert len(np.unique(want)) > 1
    got = np.asarray(prof["outputs"][0]["values"], np.float32)
    assert got.tobytes() == want.tobytes()  # float32 out of the board, bit for bit
    for url, folder in (("sim://tflm", art / f"{stem}_tflm_int8"), ("sim://mcu-host", art / f"{stem}_mcu_int8")):
        sim = _profile(url, folder, tmp_path / url.split("/")[-1])
        assert np.asarray(sim["outputs"][0]["values"], np.float32).tobytes() == want.tobytes(), url
    _profile("sim://litert", p, tmp_path / "litert")  # XNNPACK rounds its own way: float32 I/O, no bit check

    if name == "autoencoder":  # --data: float samples (.npz, named by input) reach the board as they are
        data = tmp_path / "samples"
        data.mkdir()
        rng = np.random.default_rng(1)
        for k in range(5):
            np.savez(data / f"s{k}.npz", frame=rng.uniform(-1, 1, 64).astype(np.float32), label=np.int64(0))
        assert _cli("verify", art, "--data", data, "--out", tmp_path / "v.json") == 0
        r = json.loads((tmp_path / "v.json").read_text())
        assert r["data"]["source"] == "npz folder" and r["data"]["n"] == 5
        assert r["targets"]["mcu"]["vectors_compared"] == r["targets"]["mcu-qemu"]["vectors_compared"] == 5
        assert r["targets"]["mcu-qemu"]["bit_exact_vs_tflm"] is True and r["targets"]["mcu"]["passed"]


@pytest.mark.qemu
def test_qemu_verify_compares_float_outputs_bit_for_bit(zoo_dir, tmp_path, monkeypatch):
    """A float32 output one ULP away from TFLM's is a mismatch on the board too (it was cast to int32 before)."""
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from ondevice.export.api import export
    from ondevice.verify.mcu import verify_on_device
    from ondevice.runtimes.tflm import TFLMModel
    p = _float_model("resnet", zoo_dir, monkeypatch)
    lib = export(p, ["mcu"], tmp_path)["mcu"]
    x = np.random.default_rng(3).uniform(-1, 1, (2, 1, 16, 16, 3)).astype(np.float32)
    assert verify_on_device(lib, x, variants=("opt",))["bit_exact_vs_tflm"] is True
    real = TFLMModel.run
    monkeypatch.setattr(TFLMModel, "run",
                        lambda self, q: [np.nextafter(o, np.float32(np.inf)) for o in real(self, q)])
    res = verify_on_device(lib, x, variants=("opt",))
    assert res["bit_exact_vs_tflm"] is False and res["mismatched_vectors"] == {"opt": 2}


def test_litert_arena_leaves_out_tensors_kept_apart_from_it():
    """A SHAPE-chain output LiteRT keeps on the heap, far from its arena, counts by its size, not by the gap
    (the gap once overflowed MODEL_INFO's u32 arena_bytes: sim://litert failed on the autoencoder)."""
    from ondevice.runtimes.litert import _arena_span
    arena = [(0x1000, 0x1100), (0x1100, 0x1140), (0x1120, 0x1200)]
    assert _arena_span(arena) == 0x200 and _arena_span([]) == 0
    assert _arena_span(arena + [(0x7F00_0000_0000, 0x7F00_0000_0008)]) == 0x208
    assert _arena_span([(0x10, 0x14)] + arena) == 0x204
