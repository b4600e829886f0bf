"""`ondevice verify` on the tiny run's artifacts: report fields, parity, localisation and failure paths."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _export_support import tiny_export, tiny_run_dir
from ondevice.errors import ConfigError, VerifyError

MINE = ("tflite", "edgetpu", "tflm", "executorch", "coreml")


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "h3-export"


@pytest.fixture(scope="session")
def exported(base) -> dict:
    return tiny_export(str(base), MINE)


@pytest.fixture(scope="session")
def corpus(base) -> Path:
    from conftest import require_tool
    require_tool("espeak-ng")
    from ondevice.data.synth import synth
    out = base / "corpus"
    if not (out / "metadata.csv").is_file():
        synth(out, size=40, seed=0)
    return out


@pytest.fixture(scope="session")
def report(exported, corpus, base) -> dict:
    from ondevice.verify import verify
    return verify(base / "artifacts", data=corpus, model=tiny_run_dir(str(base)), out=base / "verify")


def test_report_per_target(report, base):
    on_disk = json.loads((base / "verify" / "verify_report.json").read_text())
    assert on_disk["targets"].keys() == report["targets"].keys()
    assert set(report["targets"]) == set(MINE)
    assert report["data"]["n"] > 0 and report["data"]["split"] == "test"
    for t in ("tflite", "edgetpu", "tflm", "executorch"):
        e = report["targets"][t]
        assert e["ran"] is True, (t, e["ran"])
        for k in ("macro_f1", "top1_agreement", "max_abs_diff", "accuracy"):
            assert isinstance(e[k], float)
        assert e["top1_agreement"] >= 0.99 and e["passed"]
        assert e["max_abs_diff"] <= 3 * e["output_step"] + 1e-6
    for t in ("tflite", "edgetpu", "tflm"):  # every TFLite-family artifact is checked layer by layer, pass or not
        cc = report["targets"][t]["conversion_check"]
        assert cc["layers_compared"] >= 4 and cc["ok"] and cc["max_own_steps"] <= 3, (t, cc)
    assert report["targets"]["executorch"]["bundled_self_check"]["passed"]
    assert report["targets"]["tflm"]["memory"]["arena_bytes"] > 0
    cm = report["targets"]["coreml"]
    assert cm["ran"] is True or "needs macOS" in cm["ran"]


def test_short_tensor_names():
    from ondevice.verify.layers import short_name
    n = "pkg.LateFusion/pkg.Encoder_audio/pkg.DSConv_b1/torch.nn.modules.activation.ReLU6_2;;pkg.LateFusion/x;"
    assert short_name(n) == "Encoder_audio/DSConv_b1/ReLU6_2"
    assert short_name("serving_default_args_0") == "serving_default_args_0"


def test_macro_f1():
    from ondevice.verify import macro_f1
    y = np.array([0, 0, 1, 1, 2, 2])
    assert macro_f1(y, y, 4) == 1.0
    assert macro_f1(y, np.array([0, 0, 1, 1, 1, 1]), 4) == pytest.approx((1 + 2 / 3 + 0) / 3)


def _damage_first_conv(src: Path, dst: Path) -> None:
    """Negate the first conv's int8 weights: a real, localisable fault."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s
    from ondevice.mcu.reader import read_graph
    data = src.read_bytes()
    g = read_graph(data)
    op = next(o for o in g.ops if o.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    model = s.ModelT.InitFromPackedBuf(data, 0)
    buf = model.buffers[model.subgraphs[0].tensors[op.inputs[1]].buffer]
    w = np.frombuffer(bytes(bytearray(buf.data)), np.int8)
    buf.data = (-w.astype(np.int16)).clip(-127, 127).astype(np.int8).view(np.uint8).tolist()
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))


def test_localise_finds_the_damaged_layer(exported, base, tmp_path):
    from ondevice.export.api import load_source
    from ondevice.export.manifest import read_manifest
    from ondevice.mcu.reader import read_graph
    from ondevice.verify.layers import localise
    run = load_source(tiny_run_dir(str(base)))
    x1 = run.calibration()[:1].numpy()
    m = read_manifest(exported["tflite"])
    good = localise(exported["tflite"], m, run, x1)
    assert good["layers_compared"] >= 4 and good["first_diverging"] is None and good["first_own_error"] is None
    bad = tmp_path / "bad.tflite"
    _damage_first_conv(exported["tflite"], bad)
    rep = localise(bad, m, run, x1)
    first_conv = next(o for o in read_graph(bad.read_bytes()).ops if o.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert rep["first_diverging"]["op_index"] == first_conv.index
    assert rep["first_diverging"]["steps"] > 3
    # judged on the runtime's own inputs, the damaged conv is the layer at fault, not the ones it feeds
    assert rep["first_own_error"]["op_index"] == first_conv.index
    nxt = next(r for r in rep["layers"] if r["op_index"] > first_conv.index)
    assert nxt["steps"] > 3 and nxt["own_steps"] <= 3


def test_verify_fails_loudly_on_a_damaged_artifact(exported, corpus, base, tmp_path):
    from ondevice.verify import verify
    art = tmp_path / "a"
    art.mkdir()
    src = exported["tflite"]
    shutil.copy(src, art / src.name)
    shutil.copy(str(src) + ".manifest.json", art)
    (art / src.name).write_bytes(src.read_bytes()[:200])
    with pytest.raises(VerifyError) as e:
        verify(art, data=corpus, model=tiny_run_dir(str(base)))
    assert "could not be checked" in e.value.message
    rep = json.loads((art / "verify_report.json").read_text())
    assert "sha256" in rep["problems"][src.name]


def test_verify_names_the_layer_at_fault_when_agreement_drops(exported, corpus, base, tmp_path):
    # a consistent artifact (manifest re-signed) that computes the wrong thing: verify must run it, miss the goal,
    # and name the damaged conv as the first layer that differs on identical inputs
    from ondevice.export.manifest import artifact_digest
    from ondevice.mcu.reader import read_graph
    from ondevice.verify import verify
    art = tmp_path / "a"
    art.mkdir()
    src = exported["tflite"]
    dst = art / src.name
    _damage_first_conv(src, dst)
    m = json.loads(Path(str(src) + ".manifest.json").read_text())
    m["sha256"], m["bytes"] = artifact_digest(dst)
    Path(str(dst) + ".manifest.json").write_text(json.dumps(m))
    with pytest.raises(VerifyError) as e:
        verify(art, data=corpus, model=tiny_run_dir(str(base)))
    conv = next(o for o in read_graph(dst.read_bytes()).ops if o.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert "top-1 agreement down to" in e.value.message
    assert f"differs on identical inputs: op {conv.index} {conv.opcode}" in e.value.message
    entry = json.loads((art / "verify_report.json").read_text())["targets"]["tflite"]
    loc = entry["localisation"]
    assert loc["first_own_error"]["op_index"] == conv.index and len(loc["layers"]) == loc["layers_compared"]
    assert entry["conversion_check"]["ok"] is False and entry["conversion_check"]["at"].startswith(f"op {conv.index}")


def test_verify_missing_folder_and_empty_folder(tmp_path):
    from ondevice.verify import verify
    with pytest.raises(ConfigError, match="does not exist"):
        verify(tmp_path / "none")
    with pytest.raises(ConfigError, match="no artifacts"):
        verify(tmp_path)


def test_cli_verify_writes_report(exported, corpus, base, tmp_path):
    from ondevice.cli import main
    code = main(["verify", str(base / "artifacts"), "--data", str(corpus), "--model", str(tiny_run_dir(str(base))),
                 "--out", str(tmp_path / "r.json")])
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["targets"]["tflite"]["top1_agreement"] >= 0.99


def test_verify_loads_user_files_through_the_guarded_runtimes(tmp_path):
    """A damaged .bpte (verify's bundled self-check) or .pte (a model source) is a one-line error, not an abort."""
    import random

    from ondevice.errors import OndeviceError
    from ondevice.source import resolve_model
    from ondevice.verify import _bundled_check
    blob = random.Random(1).randbytes(4096)
    for name in ("damaged.bpte", "damaged.pte"):
        p = tmp_path / name
        p.write_bytes(blob[:4] + b"ET12" + blob[8:])  # an ExecuTorch-looking header over random bytes
        with pytest.raises(OndeviceError) as e:
            _bundled_check(p, {"bundled_test_cases": 1}) if p.suffix == ".bpte" else resolve_model(p)
        assert name in e.value.message and "\n" not in e.value.message


def test_cli_view_renders_the_report(report, base, capsys):
    """The CLI's verify lines come from the report alone (core returns it; cli/verify_view.py renders it)."""
    from ondevice.cli.verify_view import show
    dest = base / "verify" / "verify_report.json"
    capsys.readouterr()
    show(report, dest)
    cap = capsys.readouterr()
    text = cap.out + cap.err
    ref = report["reference"]
    assert f"reference (QAT PyTorch): macro-F1 {ref['macro_f1']:.3f}, accuracy {ref['accuracy']:.3f}" in text
    for key, e in report["targets"].items():
        line = next(ln for ln in text.splitlines() if f"{key:<12} " in ln)
        if "top1_agreement" in e:
            assert f"top-1 agreement {e['top1_agreement']:.1%}" in line and ("ok" in line) == e["passed"], line
    assert text.rstrip().endswith(f"wrote {dest}")
