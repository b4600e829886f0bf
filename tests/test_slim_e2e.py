"""`ondevice slim` end to end on a small synthetic corpus: report, run folder, bad inputs, torchrun/DDP."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ondevice.cli import main
from ondevice.errors import ConfigError, ConstraintError
from ondevice.slim.checkpoint import load_run
from ondevice.slim.train import ALL_TARGETS, slim

REPORT_KEYS = ("fp32_macro_f1", "int8_macro_f1", "audio_only_macro_f1", "keyword_only_macro_f1", "fused_macro_f1",
               "params", "macs", "int8_bytes", "constraints")


@pytest.fixture(scope="module")
def tiny_run(synth_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("slim") / "mitsis"
    report = slim(recipe="mitsis", data=synth_small, out=out, epochs=1, qat_epochs=1, pretrain_epochs=1)
    return out, report


def test_report_has_every_figure(tiny_run):
    out, report = tiny_run
    on_disk = json.loads((out / "slim_report.json").read_text())
    for k in REPORT_KEYS:
        assert k in report and k in on_disk, k
    for k in ("fp32_macro_f1", "int8_macro_f1", "audio_only_macro_f1", "keyword_only_macro_f1"):
        assert 0.0 <= report[k] <= 1.0
    assert set(report["constraints"]) == set(ALL_TARGETS)
    assert all(v == [] for v in report["constraints"].values())  # the recipe lints clean for every target
    assert report["int8_bytes"] < 2 * 1024 * 1024
    assert report["macs"] > report["params"] > 1000


def test_qat_keeps_the_candidate_whose_int8_graph_scored_best(tiny_run, synth_small):
    out, report = tiny_run
    sel = json.loads((out / "slim_report.json").read_text())["qat_selection"]
    assert sel == report["qat_selection"]
    assert len(sel["scores"]) == len(sel["candidates"]) == 2  # before any QAT update, and the one QAT epoch
    assert sel["kept"] == int(np.argmax(sel["scores"]))
    # the kept candidate is what was saved: the shipped INT8 graph scores on the val split what the selection saw
    from ondevice.slim.metrics import macro_f1
    from ondevice.data.arrays import load_arrays
    from ondevice.slim.train import predict_b1
    arrays, labels, _ = load_arrays(synth_small)
    val = arrays["val"]
    got = macro_f1(val.y.numpy(), predict_b1(load_run(out).qat_module(), val.x), len(labels))
    assert got == pytest.approx(sel["scores"][sel["kept"]], abs=1e-6)


def test_run_folder_round_trips(tiny_run, synth_small):
    out, _ = tiny_run
    run = load_run(out)
    assert run.name == "mitsis" and run.labels == ["neutral", "happy", "sad", "angry"]
    x = run.example_input()
    assert x[0].shape == (1, 1, 49, 40)
    q = run.qat_module()
    f = run.float_model()
    with torch.no_grad():
        yq, yf = q(*x), f(*x)
    assert yq.shape == yf.shape == (1, 4)
    assert torch.allclose(yq.sum(), torch.tensor(1.0), atol=0.03)  # int8 softmax output sums to ~1
    # the converted graph really is quantized
    targets = {str(n.target) for n in q.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in t for t in targets)


def test_rerun_over_existing_folder_is_atomic(tiny_run, synth_small):
    out, _ = tiny_run
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError):
        slim(recipe="nope", data=synth_small, out=out)
    assert (out / "qat.pt2").exists() and (out / "notes.txt").read_text() == "mine"


def test_bad_inputs(synth_small, tmp_path):
    with pytest.raises(ConfigError, match="--data"):
        slim(recipe="mitsis", data=None, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="either"):
        slim(recipe="mitsis", model="m.py:build", data=synth_small, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="target"):
        slim(recipe="mitsis", data=synth_small, out=tmp_path / "x", targets=["gpu"])
    assert not (tmp_path / "x").exists()


USER_MODEL = '''
import torch.nn as nn
def build():
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.{act}(), nn.Flatten(), nn.Linear(4 * 24 * 19, 4))
'''


def test_user_model_lint_gate_and_fix(synth_small, tmp_path):
    p = tmp_path / "net.py"
    p.write_text(USER_MODEL.format(act="GELU"))
    with pytest.raises(ConstraintError):
        slim(model=f"{p}:build", data=synth_small, out=tmp_path / "u", epochs=1, qat_epochs=0)
    assert not (tmp_path / "u").exists()
    report = slim(model=f"{p}:build", data=synth_small, out=tmp_path / "u", epochs=1, qat_epochs=0, fix=True,
                  targets=["tflite"])
    assert report["lint_fixes_applied"]
    run = load_run(tmp_path / "u")
    reloaded = run.float_model()
    # the reloaded user model has the swapped activation, not the GELU its source file still builds
    assert any(isinstance(m, torch.nn.ReLU6) for m in reloaded.modules())
    assert not any(isinstance(m, torch.nn.GELU) for m in reloaded.modules())
    x = run.example_input()
    with torch.no_grad():
        assert run.qat_module()(*x).shape == reloaded(*x).shape


def test_cli_slim_missing_data_is_one_line(capsys):
    assert main(["slim", "--recipe", "mitsis", "--out", "/tmp/never"]) == ConfigError.exit_code


def test_torchrun_ddp_two_processes(synth_small, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "ondevice", "slim", "--recipe", "kws-dscnn", "--data", str(synth_small), "--out", str(out),
           "--epochs", "1", "--qat-epochs", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((out / "slim_report.json").read_text())
    assert report["world_size"] == 2
    assert load_run(out).labels == report["labels"]
