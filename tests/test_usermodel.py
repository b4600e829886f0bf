"""Bring your own model: a two-input (image + IMU) PyTorch model and its own .npz data through the CLI.

lint --fix, slim --fix on an .npz folder, export --target all, verify, profile on sim:// and qemu://; plus the
one-line errors for bad models and bad data, --ptq, make_dataset and verify's near-ties.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ondevice.cli import main
from ondevice.errors import ConfigError, ConstraintError, DataError

from conftest import require_tool

MODEL = textwrap.dedent('''
    import torch
    import torch.nn as nn
    from ondevice.models.fusion import FusionHead, LateFusion


    class ImageEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
            self.b1 = nn.BatchNorm2d(8)
            self.act = nn.GELU()
            self.c2 = nn.Conv2d(8, 8, 3, padding=1)
            self.b2 = nn.BatchNorm2d(8)
            self.act2 = nn.GELU()
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, image):
            x = self.act(self.b1(self.c1(image)))
            x = x + self.act2(self.b2(self.c2(x)))  # residual add
            return self.pool(x).flatten(1)


    class ImuEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(6, 16, 5, stride=2, padding=2)
            self.act = nn.GELU()
            self.pool = nn.AdaptiveAvgPool1d(1)

        def forward(self, imu):
            return self.pool(self.act(self.c1(imu))).flatten(1)


    class Net(nn.Module):
        def __init__(self, n_classes=3):
            super().__init__()
            self.fusion = LateFusion(encoders={"image": ImageEncoder(), "imu": ImuEncoder()},
                                     head=FusionHead(8 + 16, 16, n_classes), inputs={"image": 0, "imu": 1})

        def forward(self, image, imu):
            return self.fusion(image, imu)


    def build(n_classes=3):
        torch.manual_seed(0)  # a user's build() that loads trained weights is deterministic too
        return Net(n_classes)


    def example_inputs():
        return (torch.zeros(1, 1, 32, 32), torch.zeros(1, 6, 64))


    def build_flat():
        return nn.Sequential(nn.Flatten(), nn.Linear(1024, 3))


    def build_wide():  # output [1, 3, 2]: not [1, classes]
        class W(nn.Module):
            def forward(self, image, imu):
                y = torch.stack([image.mean((1, 2, 3)), imu.mean((1, 2)), imu.amax((1, 2))], 1)
                return y[:, :, None].expand(1, 3, 2)
        return W()


    def build_noinputs():
        class N(nn.Module):
            def forward(self, image, imu):
                return image.mean() + imu.mean()
        return N()


    def make_dataset():
        import numpy as np
        rng = np.random.default_rng(1)
        items = [((rng.normal(size=(1, 32, 32)).astype("float32"), rng.normal(size=(6, 64)).astype("float32")), k % 3)
                 for k in range(12)]
        return items[:6], items[6:9], items[9:]


    def make_dataset_raises():
        raise RuntimeError("bucket not found")


    def make_dataset_bad_items():
        return [(1, 2, 3)], [], []
''')


def write_samples(folder: Path, n: int, seed: int = 0) -> Path:
    """A learnable 3-class set: class 0 a bright image, class 1 a sine on IMU axis 2, class 2 a dark image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        y = i % 3
        img = rng.normal(0, 0.3, (1, 32, 32)).astype(np.float32)
        imu = rng.normal(0, 0.3, (6, 64)).astype(np.float32)
        if y == 0:
            img += 2.0
        if y == 1:
            imu[2] += 3.0 * np.sin(np.linspace(0, 8 * np.pi, 64)).astype(np.float32)
        if y == 2:
            img -= 2.0
        np.savez(folder / f"s{i:04d}.npz", image=img, imu=imu, label=np.int64(y))
    (folder / "labels.txt").write_text("bright\nshake\ndark\n")
    return folder


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("byom")
    (d / "m.py").write_text(MODEL)
    write_samples(d / "data", 300)
    return d


def cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


# ------------------------------------------------------------------------------------------ models and data
def test_input_signature_named_after_forward(proj):
    from ondevice.models.user import load_user_model
    um = load_user_model(f"{proj}/m.py:build")
    assert [(s.name, s.shape) for s in um.input_specs()] == [("image", [1, 1, 32, 32]), ("imu", [1, 6, 64])]
    assert load_user_model(f"{proj}/m.py:build", n_classes=5).module(*um.example_inputs).shape == (1, 5)


def test_bad_model_inputs_one_line_errors(tmp_path, capsys):
    (tmp_path / "bad.py").write_text(textwrap.dedent('''
        import torch, torch.nn as nn
        class Two(nn.Module):
            def forward(self, a, b):
                return a.mean(1) + b.mean(1)
        def build():
            return Two()
        _n = [0]
        def build_dyn():
            return Two()
        def build_batch():
            return Two(), (torch.zeros(4, 3), torch.zeros(4, 3))
        def build_count():
            return Two(), (torch.zeros(1, 3),)
    '''))
    from ondevice.models.user import load_user_model
    with pytest.raises(ConfigError, match="no example inputs for a forward taking 2") as e:
        load_user_model(f"{tmp_path}/bad.py:build")
    assert "example_inputs" in e.value.hint
    with pytest.raises(ConfigError, match=r"shape \[4, 3\], not batch 1"):
        load_user_model(f"{tmp_path}/bad.py:build_batch")
    with pytest.raises(ConfigError, match="1 example input"):
        load_user_model(f"{tmp_path}/bad.py:build_count")
    # dynamic: example_inputs() returns a new shape on every call
    (tmp_path / "dyn.py").write_text(textwrap.dedent('''
        import torch, torch.nn as nn
        class Two(nn.Module):
            def forward(self, a, b):
                return a.mean(1) + b.mean(1)
        _n = [1]
        def example_inputs():
            _n[0] += 1
            return (torch.zeros(1, _n[0]), torch.zeros(1, 3))
        def build():
            return Two()
    '''))
    with pytest.raises(ConfigError, match="different shapes on each call"):
        load_user_model(f"{tmp_path}/dyn.py:build")
    rc, out = cli(capsys, "lint", "--model", f"{tmp_path}/bad.py:build")
    assert rc == ConfigError.exit_code and "error:" in out and "hint:" in out and "Traceback" not in out


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("imu"), "s0003.npz: no array 'imu'"),
    (lambda d: d.update(imu=np.zeros((6, 32), np.float32)),
     r"s0003.npz: 'imu' has shape \[6, 32\], expected \[6, 64\]"),
    (lambda d: d.update(label=np.float32(1.5)), "s0003.npz: label 1.5 .* is not one non-negative integer"),
])
def test_bad_npz_names_the_first_bad_sample(proj, tmp_path, capsys, mutate, needle):
    data = write_samples(tmp_path / "d", 12)
    z = dict(np.load(data / "s0003.npz"))
    mutate(z)
    np.savez(data / "s0003.npz", **z)
    from ondevice.data.user import check_data
    with pytest.raises(DataError, match=needle):
        check_data(str(data), f"{proj}/m.py:build")
    rc, out = cli(capsys, "data", "check", data, "--model", f"{proj}/m.py:build")
    assert rc == DataError.exit_code and "hint:" in out and "Traceback" not in out
    rc, out = cli(capsys, "slim", "--model", f"{proj}/m.py:build", "--data", data, "--out", tmp_path / "run")
    assert rc == DataError.exit_code and not (tmp_path / "run").exists()


def test_data_check_both_forms(proj, capsys):
    rc, out = cli(capsys, "data", "check", proj / "data", "--model", f"{proj}/m.py:build")
    summary = json.loads(out)
    assert rc == 0 and summary["form"] == "npz" and summary["labels"] == ["bright", "shake", "dark"]
    assert sum(sum(v.values()) for v in summary["splits"].values()) == 300
    rc, out = cli(capsys, "data", "check", f"{proj}/m.py:make_dataset", "--model", f"{proj}/m.py:build")
    summary = json.loads(out)
    assert rc == 0 and summary["form"] == "make_dataset" and summary["splits"]["test"] == {"0": 1, "1": 1, "2": 1}
    rc, out = cli(capsys, "data", "check", proj / "data")
    assert rc == DataError.exit_code and "--model" in out


@pytest.mark.parametrize("fn, needle", [
    ("make_dataset_raises", r"make_dataset_raises\(\) raised RuntimeError: bucket not found"),
    ("make_dataset_bad_items", r"train item 0 is tuple, not \(inputs_tuple, label\)"),
])
def test_bad_make_dataset(proj, fn, needle):
    from ondevice.data.user import check_data
    with pytest.raises(DataError, match=needle):
        check_data(f"{proj}/m.py:{fn}", f"{proj}/m.py:build")


@pytest.mark.parametrize("fn, needle", [("build_wide", r"output is \[1, 3, 2\], expected \[1, 3\]"),
                                        ("build_noinputs", r"output is \[\], expected \[1, 3\]")])
def test_model_output_not_one_by_classes(proj, tmp_path, capsys, fn, needle):
    (tmp_path / "w.py").write_text(MODEL.replace("def build(n_classes=3)", "def _b(n_classes=3)") + f"\nbuild = {fn}\n")
    rc, out = cli(capsys, "slim", "--model", f"{tmp_path}/w.py:build", "--data", proj / "data", "--out",
                  tmp_path / "run", "--epochs", "1", "--qat-epochs", "0")
    assert rc == ConstraintError.exit_code and "Traceback" not in out, out
    import re
    assert re.search(needle, out.replace("\n", " ")), out
    assert not (tmp_path / "run").exists()


def test_audio_corpus_refuses_a_tensor_model(proj, tmp_path):
    from ondevice.slim.train import slim
    (tmp_path / "metadata.csv").write_text("path,label,transcript,keyword,split\n")
    with pytest.raises(ConfigError, match="audio corpus gives one"):
        slim(model=f"{proj}/m.py:build", data=tmp_path, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ptq_calibrates_without_training(proj, tmp_path, capsys):
    import torch
    rc, out = cli(capsys, "slim", "--model", f"{proj}/m.py:build", "--data", f"{proj}/m.py:make_dataset",
                  "--out", tmp_path / "run", "--fix", "--ptq", "--target", "tflite")
    assert rc == 0, out
    assert "fixed: fusion.encoders.image.act: GELU -> ReLU6" in out
    assert "int8_macro_f1" in out  # the CLI prints the summary table (ondevice/cli/slim_view.py)
    report = json.loads((tmp_path / "run" / "slim_report.json").read_text())
    assert report["mode"] == "ptq" and report["data"]["train"] == 6 and report["labels"] == ["0", "1", "2"]
    assert report["lint_fixes_applied"]
    from ondevice.slim.checkpoint import load_run
    from ondevice.models.user import load_user_model
    run = load_run(tmp_path / "run")
    built = load_user_model(f"{proj}/m.py:build", n_classes=3).module.state_dict()
    kept = run.float_model().state_dict()
    assert all(torch.equal(built[k], kept[k]) for k in built)  # no training touched the weights
    assert [s.name for s in run.input_specs()] == ["image", "imu"]
    assert [tuple(x.shape) for x in run.example_inputs()] == [(1, 1, 32, 32), (1, 6, 64)]


def test_slim_lint_failure_prints_the_report_then_one_error(proj, tmp_path, capsys):
    """The core raises (the report rides on the error); the CLI edge prints the report, then error + hint."""
    rc, out = cli(capsys, "slim", "--model", f"{proj}/m.py:build", "--data", f"{proj}/m.py:make_dataset",
                  "--out", tmp_path / "run", "--ptq", "--target", "tflite")
    assert rc == ConstraintError.exit_code and "Traceback" not in out, out
    report_at, error_at = out.find("activation"), out.find("error: the model breaks device constraints for tflite")
    assert 0 <= report_at < error_at, out
    assert "[auto-fixable]" in out and "hint: apply the fixes listed above" in out  # plain text, not rich markup
    assert not (tmp_path / "run").exists()


def test_fix_hint_when_fix_was_given(proj):
    """With --fix given, an error that remains never tells the user to pass --fix."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from ondevice.slim.train import _lint

    class Fn(nn.Module):  # a functional GELU has no safe automatic fix
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(F.gelu(x.flatten(1)))
    net, x = Fn(), (torch.zeros(1, 16),)
    with pytest.raises(ConstraintError) as e:
        _lint(net, x, ["tflm"], fix=True)
    assert "--fix applied" in e.value.hint and "run with --fix" not in e.value.hint


# ------------------------------------------------------------------------------------------ verify near-ties
def test_near_ties_are_counted_apart_and_mismatches_are_not():
    from ondevice.verify.stats import agreement, fidelity
    step = 1 / 256
    ref = np.array([[0.60, 0.40], [0.50 + 2 * step, 0.50 - 2 * step], [0.7, 0.3], [0.9, 0.1]])
    out = ref.copy()
    out[1] = [0.50 - 1 * step, 0.50 + 1 * step]   # flip: margin 4 steps > deviation 3 steps -> a mismatch
    out[2] = [0.3, 0.7]                            # flip deviating ~100 steps, beyond tolerance -> a mismatch
    rec = agreement(out, ref, step, tol_steps=8)
    assert rec["disagreements"] == [1, 2] and rec["ties_excluded"] == 0
    out[1] = [0.50 - 3 * step, 0.50 + 3 * step]   # deviation 5 steps >= margin 4 steps, within tolerance: a tie
    rec = agreement(out, ref, step, tol_steps=8)
    assert rec["ties"] == [1] and rec["ties_excluded"] == 1 and rec["disagreements"] == [2]
    assert rec["top1_agreement"] == pytest.approx(2 / 3) and rec["top1_agreement_raw"] == pytest.approx(0.5)
    assert rec["tie_ref_margin_steps"] == [4.0] and rec["tie_deviation_steps"] == [5.0]
    f = fidelity(out, ref)
    assert 0 < f["snr_db"] < 20 and 0.5 < f["cosine"] < 1
    assert fidelity(ref, ref)["identical"] is True


# ------------------------------------------------------------------------------------------ the whole way
@pytest.mark.slow
def test_two_input_model_lint_slim_export_verify_profile(proj, tmp_path, capsys, monkeypatch):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    spec = f"{proj}/m.py:build"
    rc, out = cli(capsys, "lint", "--model", spec, "--fix")
    assert rc == 0 and "fixed: fusion.encoders.imu.act: GELU -> ReLU6" in out, out
    run, art = tmp_path / "run", tmp_path / "art"
    rc, out = cli(capsys, "slim", "--model", spec, "--data", proj / "data", "--out", run, "--fix",
                  "--epochs", "6", "--qat-epochs", "1")
    assert rc == 0, out
    assert out.count("fixed: ") == 3 and "GELU -> ReLU6" in out
    report = json.loads((run / "slim_report.json").read_text())
    assert report["labels"] == ["bright", "shake", "dark"] and report["int8_macro_f1"] >= 0.9, report
    recipe = json.loads((run / "recipe.json").read_text())
    assert [i["name"] for i in recipe["inputs"]] == ["image", "imu"] and recipe["frontend"] is None

    rc, out = cli(capsys, "export", "--target", "all", "--model", run, "--out", art)
    assert rc == 0, out
    for m in art.glob("*.manifest.json"):
        ins = json.loads(m.read_text())["inputs"]
        assert [(i["name"], i["shape"]) for i in ins] == [("image", [1, 1, 32, 32]), ("imu", [1, 6, 64])], m.name

    rc, out = cli(capsys, "verify", art, "--model", run, "--data", proj / "data")
    assert rc == 0, out
    v = json.loads((art / "verify_report.json").read_text())
    ran = {k: e for k, e in v["targets"].items() if e.get("ran") is True and "top1_agreement" in e}
    assert {"executorch", "tflite", "edgetpu", "tflm", "mcu"} <= set(ran)
    for k, e in ran.items():
        assert e["top1_agreement"] >= 0.99 and e["n"] == v["data"]["n"] > 20, (k, e)
        assert e["outputs"][0]["cosine"] > 0.99, (k, e["outputs"])
    assert v["targets"]["mcu"]["bit_exact_vs_tflm"] and v["targets"]["mcu-qemu"]["bit_exact_vs_tflm"]

    # an output beyond the tolerance warns even where every top-1 agrees (tolerance pushed below any difference)
    import shutil

    import ondevice.verify as ov
    one = tmp_path / "one"
    one.mkdir()
    for f in art.glob("m_tflite_int8.tflite*"):
        shutil.copy2(f, one / f.name)
    monkeypatch.setattr(ov, "TOL_STEPS", -1)
    e = ov.verify(one, data=proj / "data", model=run)["targets"]["tflite"]
    assert e["passed"] and "steps off the reference (tolerance -1)" in e["warnings"][0], e

    rc, out = cli(capsys, "profile", "--device", "sim://executorch", art / "m_executorch_int8.pte",
                  "--runs", "5", "--warmup", "1", "--out", tmp_path / "p_sim")
    assert rc == 0, out
    p = json.loads((tmp_path / "p_sim" / "profile.json").read_text())
    assert p["inputs"]["names"] == ["image", "imu"] and len(p["inputs"]["sha256"]) == 2
    assert p["metrics"]["latency_p50_ms"]["value"] > 0
    rc, out = cli(capsys, "profile", "--device", "qemu://mps2-an386", art / "m_mcu_int8",
                  "--runs", "3", "--warmup", "1", "--out", tmp_path / "p_qemu")
    assert rc == 0, out
    p = json.loads((tmp_path / "p_qemu" / "profile.json").read_text())
    assert len(p["model_info"]["inputs"]) == 2 and p["metrics"]["instructions_per_inference"]["value"] > 0


@pytest.mark.slow
def test_shipped_mitsis_verifies_with_its_default_data(tmp_path, capsys):
    """`ondevice verify` on the shipped model and its default data passes, with every tie inside its band."""
    require_tool("espeak-ng")
    from ondevice.verify import TOL_STEPS
    rc, out = cli(capsys, "export", "--target", "executorch", "--target", "tflite", "--target", "tflm",
                  "--out", tmp_path / "art")
    assert rc == 0, out
    rc, out = cli(capsys, "verify", tmp_path / "art")
    assert rc == 0, out
    v = json.loads((tmp_path / "art" / "verify_report.json").read_text())
    for k, e in v["targets"].items():
        if "top1_agreement" not in e:
            continue
        assert e["passed"] and e["top1_agreement_raw"] >= 0.95, (k, e)
        assert len(e["ties"]) == e["ties_excluded"] <= 3, (k, e)
        for m, d in zip(e["tie_ref_margin_steps"], e["tie_deviation_steps"]):
            assert m <= d <= TOL_STEPS, (k, m, d)
        assert e["outputs"][0]["snr_db"] > 20 and e["outputs"][0]["cosine"] > 0.99, (k, e["outputs"])
