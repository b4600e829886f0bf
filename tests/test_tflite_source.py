"""An existing int8 .tflite (and .pte) through export, verify and profile, from the library and the CLI.

The .tflite files are made at test time by TensorFlow's converter (tests/tflite_zoo.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ondevice.cli import main
from ondevice.errors import ConfigError, DataError, UnsupportedOpError
from ondevice.export.mcu import mcu_artifact
from ondevice.source import input_qparams, mcu_can_run, random_inputs, resolve_model

import tflite_zoo

# Models the MCU engine runs end to end today. Float I/O (QUANTIZE/DEQUANTIZE at the edges), HARD_SWISH and
# SHAPE/PACK folding land with the MCU op-coverage work: add ("ds_cnn", False), ("resnet", False),
# ("mobilenet", False), ("mobilenet", True), ("autoencoder", False), ("autoencoder", True) here when it merges.
E2E_MODELS = [("ds_cnn", True), ("resnet", True)]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """Converted zoo files on demand, once per session: zoo(name, int8_io) -> Path."""
    folder = tmp_path_factory.mktemp("zoo")
    made: dict = {}

    def get(name: str, int8_io: bool = False) -> Path:
        if (name, int8_io) not in made:
            made[name, int8_io] = tflite_zoo.write(name, folder, int8_io)
        return made[name, int8_io]
    return get


def _cli(*args) -> int:
    return main([str(a) for a in args])


def _said(capsys) -> str:
    c = capsys.readouterr()
    return c.out + c.err


# ------------------------------------------------------------------------------------------------- resolver
def test_resolver_reads_a_tflite_with_its_own_input_names(zoo):
    src = resolve_model(zoo("ds_cnn"))
    assert src.kind == "tflite" and src.name == "ds-cnn" and src.run is None
    assert [(s.name, s.shape, s.dtype) for s in src.inputs] == [("mfcc", [1, 25, 10, 1], "float32")]
    assert src.outputs[0].shape == [1, 12] and src.outputs[0].dtype == "float32"
    # a float input is quantized by the model's first QUANTIZE: random inputs stay inside that range
    (scale, zp), = input_qparams(src)
    lo, hi = (-128 - zp) * scale, (127 - zp) * scale
    vecs = random_inputs(src, 8)
    assert all(lo <= v[0].min() and v[0].max() <= hi for v in vecs) and vecs[0][0].dtype == np.float32
    np.testing.assert_array_equal(random_inputs(src, 8)[3][0], vecs[3][0])  # deterministic
    i8 = resolve_model(zoo("ds_cnn", True))
    assert i8.inputs[0].dtype == "int8" and i8.inputs[0].scale is not None
    assert random_inputs(i8, 1)[0][0].dtype == np.int8
    assert mcu_can_run(zoo("resnet", True)) and not mcu_can_run(tflite_zoo.float_tflite(zoo("resnet", True).parent))


def test_resolver_refusals(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(tmp_path / "missing.tflite")
    with pytest.raises(ConfigError, match="model definition"):
        resolve_model("net.py:build")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a model"):
        resolve_model(tmp_path / "notes.txt")


# --------------------------------------------------------------------------------------------------- export
def test_float_tflite_is_refused_for_int8_targets_in_one_line(tmp_path, capsys):
    f = tflite_zoo.float_tflite(tmp_path)
    capsys.readouterr()
    for target in ("mcu", "tflm", "edgetpu"):
        out = tmp_path / f"out-{target}"
        assert _cli("export", "--target", target, "--model", f, "--out", out) == UnsupportedOpError.exit_code
        err = _said(capsys)
        if target == "edgetpu":  # the op-by-op pre-check stops at the first float tensor, as the compiler would
            assert "op 0 FULLY_CONNECTED cannot run on the Edge TPU" in err and "is FLOAT32" in err
        else:
            assert "is a float model" in err and "FULLY_CONNECTED (op 0)" in err and f"{target} runs int8 only" in err
        assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
        assert not out.exists() or not any(out.iterdir())


def test_unsupported_op_is_refused_naming_it_with_nothing_written(tmp_path, capsys):
    import tensorflow as tf
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    m = tf.keras.Sequential([tf.keras.Input((4, 4, 2), batch_size=1), L.UpSampling2D(interpolation="bilinear")])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.default_rng(k).uniform(-1, 1, (1, 4, 4, 2))
                                           .astype(np.float32)] for k in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    p = tmp_path / "upsampler.tflite"
    p.write_bytes(conv.convert())
    capsys.readouterr()
    out = tmp_path / "out"
    # tflm first in the list: the mcu refusal still comes before anything at all is written
    assert _cli("export", "--target", "tflm,mcu", "--model", p, "--out", out) == UnsupportedOpError.exit_code
    err = _said(capsys)
    assert "[mcu] the MCU engine cannot lower: RESIZE_BILINEAR (op " in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert not out.exists()
    assert not mcu_can_run(p)  # so `profile --device all` leaves the QEMU boards out for it


def test_pytorch_only_targets_refuse_a_tflite_and_all_means_the_tflite_targets(zoo, tmp_path, capsys):
    zoo("ds_cnn", True)
    capsys.readouterr()
    assert _cli("export", "--target", "executorch", "--model", zoo("ds_cnn", True), "--out", tmp_path / "a") == 2
    assert "cannot take ds_cnn_i8.tflite" in _said(capsys) and not (tmp_path / "a").exists()
    from ondevice.export.api import export
    done = export(zoo("ds_cnn", True), ["all"], tmp_path / "b")
    assert sorted(done) == ["edgetpu", "mcu", "tflite", "tflm"]


def test_tflm_export_uses_the_file_as_it_is_and_measures_the_arena(zoo, tmp_path):
    from ondevice.export.api import export
    from ondevice.export.manifest import read_manifest
    src = zoo("ds_cnn")  # float I/O: TFLM runs QUANTIZE/DEQUANTIZE itself
    dest = export(src, ["tflm"], tmp_path)["tflm"]
    assert (dest / "ds-cnn.tflite").read_bytes() == src.read_bytes()
    m = read_manifest(dest, check_sha=True)
    assert m["model"] == "ds-cnn" and m["source_run"] == str(src) and m["arena_bytes"] > 1000
    assert m["ops"]["QUANTIZE"] == 1 and m["ops"]["DEQUANTIZE"] == 1 and "AddQuantize" in m["resolver_ops"]
    assert m["inputs"][0]["name"] == "mfcc" and m["inputs"][0]["dtype"] == "float32"
    assert "used unchanged" in m["quantization"]["method"]
    assert "#define DS_CNN_TENSOR_ARENA_SIZE" in (dest / "model_data.h").read_text()


def test_edgetpu_keeps_a_float_models_edge_converters_on_the_cpu(zoo, tmp_path):
    from ondevice.export import edgetpu as etpu
    from ondevice.export.api import export
    from ondevice.export.manifest import read_manifest
    src = zoo("ds_cnn")
    from ondevice.export.tflite_util import op_counts
    from ondevice.mcu.reader import read_graph
    dest = export(src, ["edgetpu"], tmp_path)["edgetpu"]
    assert op_counts(read_graph(dest.read_bytes())) == op_counts(read_graph(src.read_bytes()))  # the graph as given
    rep = read_manifest(dest)["edgetpu_precheck"]
    assert [r["status"] for r in rep["ops"]][0] == [r["status"] for r in rep["ops"]][-1] == etpu.CPU_EDGE
    assert rep["first_unmapped"] is None and rep["mapped"]["CONV_2D"] == 3


# --------------------------------------------------------------------------------------------------- verify
def _npz_folder(src, folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(n):
        arrays = {s.name: rng.uniform(-1, 1, s.shape[1:]).astype(np.float32) for s in src.inputs}
        np.savez(folder / f"s{k:03d}.npz", label=np.int64(k % 3), **arrays)
    return folder


def test_verify_tflm_against_litert_with_npz_data_and_with_random_inputs(zoo, tmp_path):
    from ondevice.export.api import export
    from ondevice.verify import verify
    p = zoo("ds_cnn")
    art = tmp_path / "art"
    export(p, ["tflm"], art)
    src = resolve_model(p)
    data = _npz_folder(src, tmp_path / "data", 10)
    r = verify(art, data=data)  # the manifests name the source .tflite: no --model needed
    assert r["source_kind"] == "tflite" and r["reference"]["what"].startswith("LiteRT interpreter on ds_cnn.tflite")
    assert r["data"] == {"source": "npz folder", "folder": str(data), "n": 10, "labels": True}
    e = r["targets"]["tflm"]
    assert e["ran"] is True and e["passed"] and e["n"] == 10 and e["max_abs_diff_steps"] <= 2
    assert 0.0 <= e["accuracy"] <= 1.0 and "accuracy" in r["reference"]
    assert json.loads((art / "verify_report.json").read_text())["targets"]["tflm"]["n"] == 10
    r2 = verify(art, model=p, out=tmp_path / "r2.json")
    assert r2["data"]["source"] == "random" and r2["data"]["n"] > 0 and "random" in r2["data"]["note"]
    assert "accuracy" not in r2["targets"]["tflm"]


def test_verify_a_lone_tflite_runs_it_on_tflm_against_litert(zoo, tmp_path):
    from ondevice.verify import verify
    r = verify(zoo("resnet", True), out=tmp_path / "r.json")
    e = r["targets"]["tflm"]
    assert r["source_kind"] == "tflite" and e["runtime"] == "tflm" and e["ran"] is True
    assert e["passed"] and e["n"] == r["data"]["n"] > 0 and "deterministic" not in e


def test_verify_npz_errors_name_the_file(zoo, tmp_path):
    from ondevice.verify.source import read_npz_folder
    src = resolve_model(zoo("resnet", True))
    d = tmp_path / "bad"
    d.mkdir()
    np.savez(d / "a.npz", wrong=np.zeros((16, 16, 3), np.float32), other=np.zeros(2), label=np.int64(0))
    with pytest.raises(DataError, match=r"a.npz: no array 'image'"):
        read_npz_folder(d, src)
    np.savez(d / "a.npz", image=np.zeros((3, 3), np.float32), label=np.int64(0))
    with pytest.raises(DataError, match=r"a.npz: image has shape \[3, 3\]"):
        read_npz_folder(d, src)
    np.savez(d / "a.npz", image=np.full((16, 16, 3), 0.5, np.float32), label=np.int64(2))
    vecs, y = read_npz_folder(d, src)  # float data for an int8 input is quantized with the input's parameters
    assert vecs[0][0].dtype == np.int8 and vecs[0][0].shape == (1, 16, 16, 3) and y.tolist() == [2]


def test_verify_and_profile_a_pte(tmp_path, capsys):
    from _profiling_support import tiny_pte
    pte = tiny_pte()
    r_path = tmp_path / "v.json"
    assert _cli("verify", pte, "--out", r_path) == 0
    r = json.loads(r_path.read_text())
    e = r["targets"]["executorch"]
    assert r["source_kind"] == "pte" and e["passed"] and e["deterministic"] and e["n"] == r["data"]["n"]
    assert _cli("profile", "--device", "sim://executorch", pte, "--runs", 3, "--out", tmp_path / "p") == 0
    assert json.loads((tmp_path / "p" / "profile.json").read_text())["status"] == "ok"
    with pytest.raises(ConfigError, match="ExecuTorch program"):
        mcu_artifact(pte)
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------- sim folders
def test_sim_tflm_and_mcu_host_take_the_folders_export_writes(zoo, tmp_path):
    from ondevice.export.api import export
    from ondevice.profiling.inputs import make_inputs
    from ondevice.profiling.profiler import profile
    from ondevice.runtimes.tflm import TFLMRuntime
    p = zoo("ds_cnn", True)
    done = export(p, ["tflm", "mcu"], tmp_path / "art")
    want = None
    for url, folder in (("sim://tflm", done["tflm"]), ("sim://mcu-host", done["mcu"]),
                        ("sim://mcu-host", p)):  # a .tflite on mcu-host: its cached on-the-fly mcu build
        r = profile(folder, url, runs=3, warmup=0, out=None)
        assert r["status"] == "ok" and r["model_info"]["arena_bytes"] > 0, url
        ins = make_inputs(r["model_info"]["inputs"], seed=0)
        want = TFLMRuntime().load(p).run(ins)[0].reshape(-1).tolist() if want is None else want
        assert r["outputs"][0]["values"] == want, url  # bit-exact with the TFLM interpreter


# ---------------------------------------------------------------------------------------------- CLI, e2e
@pytest.mark.qemu
@pytest.mark.parametrize("name,int8_io", E2E_MODELS)
def test_cli_tflite_export_verify_profile_on_qemu(zoo, tmp_path, monkeypatch, name, int8_io):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    monkeypatch.setenv("ONDEVICE_VERIFY_RANDOM_N", "16")
    import ondevice.verify.source as vs
    monkeypatch.setattr(vs, "RANDOM_N", 16)
    p = zoo(name, int8_io)
    art = tmp_path / "art"
    assert _cli("export", "--target", "mcu,tflm", "--model", p, "--out", art) == 0
    assert _cli("verify", art) == 0
    r = json.loads((art / "verify_report.json").read_text())
    assert r["data"]["source"] == "random" and r["data"]["n"] == 16
    t = r["targets"]
    assert t["tflm"]["passed"] and t["mcu"]["passed"] and t["mcu"]["max_abs_diff_steps"] <= 2
    assert t["mcu"]["bit_exact_vs_tflm"] is True and t["mcu"]["vectors_compared"] == 16
    assert t["mcu-qemu"]["ran"] is True and t["mcu-qemu"]["bit_exact_vs_tflm"] is True
    out = tmp_path / "prof"
    assert _cli("profile", "--device", "qemu://mps2-an386", p, "--runs", 3, "--warmup", 1, "--out", out) == 0
    prof = json.loads((out / "profile.json").read_text())
    assert prof["status"] == "ok" and prof["runs"] == 3 and prof["device"]["board"] == "qemu-mps2-an386"
    assert prof["artifact"]["path"] == str(p) and prof["metrics"]["latency_p50_ms"]["value"] > 0
