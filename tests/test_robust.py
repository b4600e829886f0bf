"""Bad input from outside (issue 13, sections 2-5): damaged model and data files, output paths, interrupts and
silent fallbacks. Each case that once crashed is reproduced here through the real code path."""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from ondevice.data import KEYWORDS, METADATA_COLUMNS
from ondevice.errors import ConfigError, DataError, OndeviceError

sys.path.insert(0, str(Path(__file__).parent))
from _profiling_support import tiny_pte, tiny_tflite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``ondevice ARGS`` in a fresh interpreter (real exit codes, real signals, nothing shared with pytest)."""
    e = dict(os.environ, NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "ondevice", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """stderr without the backends' import-time noise (torchao's optional kernels, torch deprecations)."""
    noise = ("Failed to load", "_pytree.py", "register_constant", "WARNING: All log messages", "port.cc",
             "oneDNN", "cpuinfo", "warnings.warn")
    return [ln for ln in stderr.splitlines() if ln.strip() and not any(n in ln for n in noise)]


# ------------------------------------------------------------------------------------ untrusted model files

def test_guard_turns_a_native_abort_into_one_line():
    from ondevice.runtimes._guard import guarded_load
    with pytest.raises(ConfigError, match=r"Fake cannot load m.pte: the loader crashed \(SIGABRT\)") as e:
        guarded_load(os.abort, "m.pte", ".pte", None, "Fake")
    assert "\n" not in e.value.message and e.value.hint
    assert guarded_load(lambda: 42, "m.pte", ".pte", None, "Fake") == 42


@pytest.mark.parametrize("runtime,ext", [("executorch", ".pte"), ("litert", ".tflite"), ("tflm", ".tflite")])
def test_random_bytes_fail_the_header_check(tmp_path, runtime, ext):
    from ondevice.runtimes.base import get_runtime
    p = tmp_path / f"rand{ext}"
    p.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(ConfigError, match=r"is not a \.(pte|tflite) model \(file identifier"):
        get_runtime(runtime).load(p)
    p.write_bytes(b"\x00" * 7)
    with pytest.raises(ConfigError, match="too short"):
        get_runtime(runtime).load(p)


@pytest.mark.parametrize("runtime", ["executorch", "tflm", "litert"])
def test_mutated_models_load_or_fail_in_one_line(tmp_path, runtime):
    """Bytes flipped behind a valid header: some of these abort or segfault the native loader in-process."""
    from ondevice.runtimes.base import get_runtime
    src = tiny_pte() if runtime == "executorch" else tiny_tflite()
    base, rng = src.read_bytes(), random.Random(1)
    rt, outcomes = get_runtime(runtime), {"ok": 0, "error": 0, "crash": 0}
    for k in range(40):
        d = bytearray(base)
        for _ in range(rng.choice([1, 2, 4, 8])):
            d[rng.randrange(8, len(d))] = rng.randrange(256)
        if k % 3 == 0:
            d = d[:rng.randrange(16, len(d))]
        p = tmp_path / f"m{src.suffix}"
        p.write_bytes(bytes(d))
        try:
            rt.load(p)
            outcomes["ok"] += 1
        except OndeviceError as e:  # anything else (or a dead process) fails the test
            assert "\n" not in e.message
            outcomes["crash" if "crashed" in e.message else "error"] += 1
    assert outcomes["error"] > 0, outcomes


def test_profile_random_pte_on_sim_executorch(tmp_path):
    """Once: SIGABRT, exit 134, no message, no profile.json, a temp folder left behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    art = tmp_path / "rand.pte"
    art.write_bytes(random.Random(0).randbytes(4096))
    r = run_cli(["profile", str(art), "--device", "sim://executorch", "--runs", "3", "--out", str(tmp_path / "p")],
                tmp_path, env={"TMPDIR": str(tmp)})
    lines = error_lines(r.stderr)
    assert r.returncode not in (0, 134) and "Traceback" not in r.stderr, r.stderr
    assert any(ln.startswith("error:") and "is not a .pte model" in ln for ln in lines), lines
    prof = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert prof["status"] == "failed" and "not a .pte model" in prof["error"]["message"]
    # nothing of ours left behind (torch may create its own torchinductor_<user> cache folder there)
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []


# ------------------------------------------------------------------------------------------------ data files

def _write_wav(path: Path, rate: int = 16000, channels: int = 1, n: int = 16000, seed: int = 0) -> None:
    x = (np.random.default_rng(seed).normal(0, 2000, n * channels)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def make_corpus(folder: Path, per_split: dict[str, int]) -> Path:
    """A noise corpus in the metadata.csv layout (no espeak needed): labels and keywords cycle."""
    from ondevice.data import LABELS
    (folder / "clips").mkdir(parents=True)
    rows, i = [], 0
    for split, n in per_split.items():
        for _ in range(n):
            p = f"clips/{i}.wav"
            _write_wav(folder / p, seed=i)
            kw = KEYWORDS[i % len(KEYWORDS)]
            rows.append({"path": p, "label": LABELS[i % len(LABELS)], "transcript": kw, "keyword": kw, "split": split})
            i += 1
    with open(folder / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(METADATA_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return folder


def test_latin1_metadata_is_one_line_naming_the_line(tmp_path):
    d = make_corpus(tmp_path / "d", {"train": 2, "val": 1, "test": 1})
    meta = d / "metadata.csv"
    lines = meta.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[2], "café")  # transcript of the 3rd row
    meta.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    r = run_cli(["data", "check", str(d)], tmp_path)
    lines = error_lines(r.stderr)
    assert r.returncode == DataError.exit_code and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("error:") and "metadata.csv line 4" in lines[0] and "0xe9 is not UTF-8" in lines[0]
    assert len(lines) == 2 and "hint:" in lines[1]


def test_truncated_wav_fails_check_and_is_never_trained_on(tmp_path):
    from ondevice.data.dataset import check_dataset, load_split
    d = make_corpus(tmp_path / "d", {"train": 2, "val": 1, "test": 1})
    wav = d / "clips" / "1.wav"
    wav.write_bytes(wav.read_bytes()[:100])  # a copy cut short
    with pytest.raises(DataError, match=r"row 3 \(clips/1.wav\): truncated WAV \(28 of 16000 samples"):
        check_dataset(d)
    with pytest.raises(DataError, match="truncated WAV"):
        load_split(d, "train")
    _write_wav(wav, n=0)
    with pytest.raises(DataError, match=r"row 3 \(clips/1.wav\): empty WAV"):
        check_dataset(d)


def test_wav_rate_and_channels_are_both_reported(tmp_path):
    from ondevice.data.dataset import check_dataset
    d = make_corpus(tmp_path / "d", {"train": 2, "val": 1, "test": 1})
    _write_wav(d / "clips" / "2.wav", rate=44100, channels=2, n=44100)
    with pytest.raises(DataError, match=r"row 4 \(clips/2.wav\): 2 channels, expected mono; "
                                        r"sample rate 44100 Hz, expected 16000") as e:
        check_dataset(d)
    assert "-r 16000 -c 1" in e.value.hint


# ---------------------------------------------------------------------------------------------- output paths

@pytest.mark.parametrize("args", [
    ["slim", "--recipe", "kws-dscnn", "--data", "DATA", "--out", "FILE"],
    ["export", "--target", "tflite", "--out", "FILE"],
    ["verify", "ARTS", "--out", "FILE"],
    ["profile", "ART", "--device", "sim://litert", "--out", "FILE"],
    ["lint", "--recipe", "kws-dscnn", "--target", "tflm", "--out", "DIR"],
    ["export", "--target", "tflite", "--out", "FILE/sub"],
], ids=["slim", "export", "verify", "profile", "lint-dir", "export-under-file"])
def test_bad_out_fails_before_any_work(tmp_path, capsys, args):
    """Once: slim trained fully and then lost the run; verify crashed after 13 s of work."""
    from ondevice.cli import main
    (tmp_path / "FILE").write_text("not a folder\n")
    (tmp_path / "DIR").mkdir()
    make_corpus(tmp_path / "DATA", {"train": 2, "val": 1, "test": 1})
    (tmp_path / "ARTS").mkdir()
    (tmp_path / "ART").write_bytes(tiny_tflite().read_bytes())
    argv = [str(tmp_path / a) if a in ("FILE", "DIR", "DATA", "ARTS", "ART", "FILE/sub") else a for a in args]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert "is a file" in err or "is a folder" in err
    assert (tmp_path / "FILE").read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ART", "ARTS", "DATA", "DIR", "FILE"]


# ------------------------------------------------------------------------------------------------ interrupts

def _sigint_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    import time
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, "never got ready"
        time.sleep(0.2)
    proc.send_signal(2)


def test_ctrl_c_in_profile_keeps_runs_and_says_so(tmp_path):
    """Once: nothing printed, and profile.json left "running"."""
    out = tmp_path / "p"
    art = tmp_path / "tiny.tflite"
    art.write_bytes(tiny_tflite().read_bytes())

    def some_runs() -> bool:
        try:
            return json.loads((out / "profile.json").read_text())["runs"] > 0
        except (OSError, ValueError):
            return False
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "profile", str(art), "--device", "sim://litert",
                             "--runs", "1000000", "--warmup", "0", "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _sigint_when(proc, some_runs)
    _, err = proc.communicate(timeout=120)
    prof = json.loads((out / "profile.json").read_text())
    assert proc.returncode == 130, err
    assert error_lines(err)[-1] == f"interrupted; {prof['runs']} runs kept in {out / 'profile.json'}"
    assert "Traceback" not in err
    assert prof["status"] == "interrupted" and prof["runs"] == len(prof["timings"]["values"]) > 0
    assert prof["metrics"]["latency_p50_ms"]["value"] > 0


def test_drop_provisional_flash_keeps_its_meaning():
    """An interrupted firmware profile has only the model file's size: it must not pass for the image's."""
    from ondevice.profiling.profiler import _drop_provisional
    flash = {"value": 2032, "unit": "bytes", "source": "measured", "note": "model file size"}
    fw = {"metrics": {"flash_bytes": dict(flash)}, "device": {"board_kind": "emulated",
                                                              "capabilities": ["MEMORY_STATS"]}}
    _drop_provisional(fw)
    assert "flash_bytes" not in fw["metrics"]
    sim = {"metrics": {"flash_bytes": dict(flash)}, "device": {"board_kind": "host", "capabilities": ["MEMORY_STATS"]}}
    _drop_provisional(sim)  # the host sim reports no image size: the file's size is its final figure too
    assert sim["metrics"]["flash_bytes"] == flash


SPIN = r'''
import sys, time
from ondevice.cli import app, main

def busy(s):
    t = time.monotonic()
    while time.monotonic() - t < s:
        pass

class Slow:
    def __del__(self):  # where a Ctrl-C used to be swallowed ("Exception ignored in ... __del__")
        print("in __del__", flush=True)
        busy(1.0)

@app.command("spin")
def spin():
    for _ in range(10):
        Slow()
        busy(0.2)
    print("finished", flush=True)

sys.exit(main(["spin"]))
'''


def test_ctrl_c_inside_a_finalizer_is_not_swallowed(tmp_path):
    import time
    proc = subprocess.Popen([sys.executable, "-c", SPIN], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in __del__"
    time.sleep(0.3)
    proc.send_signal(2)  # lands inside the finalizer
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "finished" not in out and "in __del__" not in out and "Exception ignored" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted"


# ------------------------------------------------------------------------------------------ silent fallbacks

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from _export_support import make_tiny_run
    return make_tiny_run(tmp_path_factory.mktemp("robust") / "runs" / "tiny")


def test_damaged_run_fails_every_target_before_any_work(tiny_run, tmp_path):
    """Once: Core ML fell back to PTQ from the float weights, spent 54 s, and left that artifact behind."""
    import shutil
    from ondevice.export.api import export
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    qat = run / "qat.pt2"
    qat.write_bytes(qat.read_bytes()[: qat.stat().st_size // 2])
    messages = set()
    for targets in (["all"], ["coreml"], ["tflite", "executorch"]):
        with pytest.raises(ConfigError, match=r"is damaged \(cannot load .*qat.pt2.*no target exported") as e:
            export(model=run, targets=targets, out=tmp_path / "arts")
        messages.add(e.value.message)
    assert len(messages) == 1 and not (tmp_path / "arts").exists()


FAKE_COMPILER = r'''#!{python}
"""A stand-in edgetpu_compiler: Coral's documented `-s` log for the given model, with its last {n_cpu} ops on the
CPU (the compiler stops mapping at the first op it cannot take)."""
import sys
from collections import Counter
from pathlib import Path
from ondevice.mcu.reader import read_graph
args = sys.argv[1:]
out_dir, model = Path(args[args.index("-o") + 1]), Path(args[-1])
if {fail}:
    print("Edge TPU Compiler version 16.0.384591198")
    print("Internal compiler error. Aborting!")
    sys.exit(1)
ops = [op.opcode for op in read_graph(model.read_bytes()).ops]
tpu, cpu = Counter(ops[:len(ops) - {n_cpu}]), ops[len(ops) - {n_cpu}:]
(out_dir / (model.stem + "_edgetpu.tflite")).write_bytes(model.read_bytes())
print("Edge TPU Compiler version 16.0.384591198")
print("Started a compilation timeout timer of 180 seconds.\n")
print("Model compiled successfully in 212 ms.\n")
print(f"Input model: {{model.name}}\nOutput model: {{model.stem}}_edgetpu.tflite")
print("Number of Edge TPU subgraphs: 1")
print(f"Total number of operations: {{len(ops)}}")
print(f"Operation log: {{model.stem}}_edgetpu.log\n")
if cpu:
    print("Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the "
          "model will instead run on the CPU, which is slower.")
print(f"Number of operations that will run on Edge TPU: {{sum(tpu.values())}}")
print(f"Number of operations that will run on CPU: {{len(cpu)}}\n")
print("Operator                       Count      Status\n")
for op, n in tpu.items():
    print(f"{{op:<30}} {{n:<10}} Mapped to Edge TPU")
for i, op in enumerate(cpu):
    why = ("Operation is otherwise supported, but not mapped due to some unspecified limitation" if i == 0
           else "More than one subgraph is not supported")
    print(f"{{op:<30}} {{1:<10}} {{why}}")
print("Compilation child process completed within timeout period.\nCompilation succeeded!")
'''


def _fake_compiler(folder: Path, n_cpu: int, fail: bool = False) -> None:
    folder.mkdir(exist_ok=True)
    exe = folder / "edgetpu_compiler"
    exe.write_text(FAKE_COMPILER.format(python=sys.executable, n_cpu=n_cpu, fail=fail))
    exe.chmod(0o755)


def test_edgetpu_compiler_cpu_ops_fail_unless_allowed(tiny_run, tmp_path, monkeypatch):
    """Once: the compiler put 2 ops on the CPU, the export passed and the manifest kept the pre-check's 100%."""
    from ondevice.errors import UnsupportedOpError
    from ondevice.export.api import export
    from ondevice.export.manifest import read_manifest
    bin_ = tmp_path / "bin"
    _fake_compiler(bin_, n_cpu=2)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(UnsupportedOpError, match=r"edgetpu_compiler runs 2 op\(s\) on the CPU where the pre-check "
                                                 r"predicted 0: .* x1 \(Operation is otherwise supported") as e:
        export(model=tiny_run, targets=["edgetpu"], out=tmp_path / "a")
    assert "--allow-cpu-ops" in e.value.hint
    assert not list((tmp_path / "a").glob("*.tflite")) if (tmp_path / "a").exists() else True
    art = export(model=tiny_run, targets=["edgetpu"], out=tmp_path / "b", allow_cpu_ops=True)["edgetpu"]
    m = read_manifest(art)
    comp, pre = m["edgetpu_compiler"], m["edgetpu_precheck"]
    n = len(pre["ops"])
    assert comp["source"] == "edgetpu_compiler" and comp["cpu_op_count"] == 2 and sum(comp["cpu_ops"].values()) == 2
    assert sum(comp["edgetpu_ops"].values()) == comp["edgetpu_op_count"] == n - 2
    assert m["delegation"]["source"] == "edgetpu_compiler"
    assert m["delegation"]["mapped_fraction"] == pytest.approx((n - 2) / n) and pre["mapped_fraction"] == 1.0
    assert (tmp_path / "b" / m["edgetpu_compiled_model"]).is_file()


def test_edgetpu_compiler_agreeing_or_failing(tiny_run, tmp_path, monkeypatch):
    from ondevice.errors import ExportError
    from ondevice.export.api import export
    from ondevice.export.manifest import read_manifest
    bin_ = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    _fake_compiler(bin_, n_cpu=0)
    m = read_manifest(export(model=tiny_run, targets=["edgetpu"], out=tmp_path / "a")["edgetpu"])
    assert m["edgetpu_compiler"]["cpu_ops"] == {} and m["delegation"]["mapped_fraction"] == 1.0
    _fake_compiler(bin_, n_cpu=0, fail=True)
    with pytest.raises(ExportError, match=r"edgetpu_compiler failed \(exit 1\): Internal compiler error"):
        export(model=tiny_run, targets=["edgetpu"], out=tmp_path / "b")


def test_ctrl_c_in_export_keeps_finished_artifacts(tiny_run, tmp_path):
    """Once: a Ctrl-C during export was swallowed in StorageWeakRef.__del__ and export exited 0."""
    out = tmp_path / "arts"
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "export", "--model", str(tiny_run), "--target",
                             "tflite,executorch", "--out", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _sigint_when(proc, lambda: bool(list(out.glob("*.manifest.json"))) if out.is_dir() else False)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err
    last = error_lines(err)[-1]
    assert last.startswith(f"interrupted; 1 artifact(s) kept in {out} (tiny_tflite_int8.tflite); executorch"), last
    # the finished artifact and its manifest, plus the quiet log of third-party output (ondevice.log)
    assert sorted(p.name for p in out.iterdir() if p.name != "ondevice.log") == \
        ["tiny_tflite_int8.tflite", "tiny_tflite_int8.tflite.manifest.json"]


@pytest.mark.slow
def test_slim_train_split_smaller_than_a_batch(tmp_path):
    """Once: `AssertionError: Guard failed: x.size()[0] == 24` in QAT on a 40-clip corpus (24 train clips < 32)."""
    from ondevice.slim.train import slim
    data = make_corpus(tmp_path / "d", {"train": 24, "val": 8, "test": 8})
    report = slim(recipe="kws-dscnn", data=data, out=tmp_path / "run", epochs=1, qat_epochs=1, targets=["tflm"])
    assert (tmp_path / "run" / "qat.pt2").is_file() and report["qat_selection"]["kept"] is not None


def test_atomic_write_never_replaces_a_folder_with_a_file(tmp_path):
    """Once: `lint --out EXISTING_DIR` deleted the folder and wrote the JSON in its place."""
    from ondevice.fsutil import write_json_atomic
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "precious.txt").write_text("keep")
    with pytest.raises(ConfigError, match="is a folder; not replacing it with a file"):
        write_json_atomic(tmp_path / "dd", {"a": 1})
    assert (tmp_path / "dd" / "precious.txt").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["dd"]
