"""``ondevice verify``: run every artifact on its real host runtime and compare it with the QAT PyTorch model.

For each artifact: macro-F1 and accuracy on the test split, top-1 agreement with the QAT model, and the max abs
difference of dequantized outputs. When an artifact disagrees beyond tolerance, the first diverging layer is
localised from LiteRT's preserved intermediate tensors against the PT2E graph's activations. The report goes to
``verify_report.json`` (atomic write); the CLI renders it (``ondevice/cli/verify_view.py``).

The package: ``inputs`` (the test split), ``stats`` (agreement, fidelity), ``layers`` (layer localisation),
``mcu`` (the generated C bit for bit against the TFLM interpreter: host build, QEMU, device) and ``source``
(artifacts made from an existing .tflite/.pte, checked against that file).
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Callable

import numpy as np

from ondevice.errors import ConfigError, OndeviceError, VerifyError
from ondevice.export.manifest import find_artifacts, read_manifest, versions
from ondevice.fsutil import check_out, write_json_atomic
from ondevice.verify.hostrt import GOAL_TOP1_AGREEMENT, RUNTIME_OF, TOL_STEPS, host_runtime
from ondevice.verify.inputs import sample, test_inputs
from ondevice.verify.layers import LAYER_TOL_STEPS, localise
from ondevice.verify.mcu import mcu_entries
from ondevice.verify.stats import agreement, fidelity



# -------------------------------------------------------------------------------------------------- metrics
def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes present in truth or prediction."""
    f1s = []
    for c in range(n_classes):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def reference_outputs(run, xs) -> np.ndarray:
    """The QAT PyTorch model's outputs, one sample at a time (the shape every artifact takes)."""
    import torch
    qat = run.qat_module()
    outs = []
    with torch.no_grad():
        for i in range(len(xs[0])):
            y = qat(*(torch.from_numpy(x) for x in sample(xs, i)))
            y = y[0] if isinstance(y, (tuple, list)) else y
            outs.append(y.detach().numpy().reshape(-1))
    return np.stack(outs)


def output_step(manifest: dict, run) -> float | None:
    """One output quantization step: from the artifact's int8 output, else from the QAT graph's last dequantize."""
    outs = manifest.get("outputs") or []
    if outs and outs[0].get("scale"):
        return float(outs[0]["scale"])
    from ondevice.export.executorch import output_scale
    try:
        return output_scale(run.qat_module())
    except (StopIteration, AttributeError, IndexError):
        return None


# ------------------------------------------------------------------------------------------------- verify
def _check_one(artifact: Path, manifest: dict, run, x: tuple, y: np.ndarray, ref: np.ndarray,
               n_classes: int) -> dict:
    target = manifest["target"]
    rt_name = RUNTIME_OF.get(target)
    entry: dict = {"target": target, "artifact": artifact.name, "runtime": rt_name}
    rt = host_runtime(target, entry)
    if rt is None:
        return entry
    lm = rt.load(artifact)
    if len(lm.inputs) != len(x):
        raise VerifyError(f"{artifact.name} takes {len(lm.inputs)} input(s), the model {len(x)}",
                          "re-export it from this run")
    outs = np.stack([np.asarray(lm.run_float([np.reshape(v, s.shape) for s, v in zip(lm.inputs, sample(x, i))])[0],
                                np.float32).reshape(-1) for i in range(len(y))])
    diff = np.abs(outs - ref)
    pred = outs.argmax(1)
    step = output_step(manifest, run)
    entry.update(ran=True, n=int(len(y)), macro_f1=macro_f1(y, pred, n_classes), accuracy=float(np.mean(pred == y)),
                 **agreement(outs, ref, step, TOL_STEPS), max_abs_diff=float(diff.max()),
                 mean_abs_diff=float(diff.mean()), output_step=step,
                 max_abs_diff_steps=round(float(diff.max()) / step, 2) if step else None,
                 outputs=[{"name": (manifest.get("outputs") or [{}])[0].get("name", "output"), **fidelity(outs, ref)}])
    if hasattr(lm, "memory_stats"):
        stats = lm.memory_stats()
        if stats:
            entry["memory"] = stats
    entry["passed"] = entry["top1_agreement"] >= GOAL_TOP1_AGREEMENT
    off = step is not None and diff.max() > TOL_STEPS * step
    if off:  # warned even when the agreement passes: the numbers are off even where top-1 is not
        entry["warnings"] = [f"an output is {diff.max() / step:.1f} steps off the reference (tolerance {TOL_STEPS})"]
    mismatch = (not entry["passed"]) or off
    if rt_name in ("litert", "tflm"):
        # Always judge the conversion layer by layer on the worst clip: a layer the converter computes
        # differently (own error) is a bug even while the top-1 agreement still passes.
        worst = int(diff.max(1).argmax())
        loc = localise(artifact, manifest, run, sample(x, worst))
        loc["sample"] = worst
        own = loc.get("worst_own")
        entry["conversion_check"] = {
            "sample": worst, "layers_compared": loc.get("layers_compared", 0),
            "max_own_steps": own["own_steps"] if own else None,
            "at": f"op {own['op_index']} {own['op']} {own['tflite_tensor']}" if own else None,
            "ok": own is None or own["own_steps"] <= LAYER_TOL_STEPS}
        if mismatch:
            entry["localisation"] = loc
    return entry


def _bundled_check(artifact: Path, manifest: dict) -> dict:
    from ondevice.runtimes.base import get_runtime
    n = int(manifest.get("bundled_test_cases", 0))
    m = get_runtime("executorch").load(artifact)  # guarded: a damaged .bpte must not abort verify
    m.self_check(n, rtol=0.0, atol=float(manifest.get("bundled_atol", 1e-2)))
    return {"artifact": artifact.name, "cases": n, "atol": manifest.get("bundled_atol"), "passed": True}


def verify(artifacts: str | Path = "artifacts", data: str | Path | None = None, model=None,
           out: str | Path | None = None, on_report: Callable[[dict, Path], None] | None = None) -> dict:
    """Check every artifact in ``artifacts`` on its host runtime against the run's QAT model; returns the report.

    ``model`` is the slim run the artifacts came from (default: the manifests' ``source_run``, else the shipped
    recipe). ``data`` is a dataset folder whose test split is used (default: a cached synthetic corpus). Writes
    ``verify_report.json`` into ``out`` (a folder or a .json path; default: the artifacts folder) and calls
    ``on_report(report, path)`` once it is written (the CLI shows it). Raises VerifyError after that if an
    artifact failed to load or missed the agreement goal.
    Artifacts made from an existing .tflite/.pte (or the file itself) are checked against that file instead.
    """
    from ondevice.verify.source import file_source_for, verify_source
    spec = file_source_for(artifacts, model)
    if spec is not None:
        return verify_source(artifacts, spec, data=data, out=out, on_report=on_report)
    from ondevice.export.api import one_thread
    if out is not None:
        check_out(out, "file_or_dir")  # before any work: a bad --out once failed after all of it
    with one_thread():
        return _verify(Path(artifacts), data, model, out, on_report)


def _manifests(folder: Path, problems: dict) -> dict[Path, dict]:
    if not folder.is_dir():
        raise ConfigError(f"artifact folder {folder} does not exist", "run `ondevice export --out DIR` first")
    paths = find_artifacts(folder)
    if not paths:
        raise ConfigError(f"no artifacts with manifests in {folder}", "run `ondevice export --out DIR` first")
    manifests = {}
    for p in paths:
        try:
            manifests[p] = read_manifest(p, check_sha=True)
        except OndeviceError as e:
            problems[p.name] = str(e)
    return manifests


def _verify(folder: Path, data, model, out, on_report) -> dict:
    from ondevice.export.api import load_source
    problems: dict = {}
    manifests = _manifests(folder, problems)
    if model is None:
        srcs = {m.get("source_run") for m in manifests.values() if m.get("source_run")}
        src = next(iter(srcs)) if len(srcs) == 1 else None
        model = src if src and Path(src).is_dir() else None
    run = load_source(model)
    names = {m["model"] for m in manifests.values()}
    if names and names != {run.name}:
        raise ConfigError(f"artifacts are of model(s) {sorted(names)}, but the reference run is {run.name!r}",
                          "pass the run they were exported from with --model")
    x, y, desc = test_inputs(data, run)
    ref = reference_outputs(run, x)
    n_classes = len(run.labels)
    report: dict = {"model": run.name, "source_run": str(getattr(run, "path", "")), "data": desc,
                    "reference": {"what": "QAT PyTorch model (PT2E converted graph)",
                                  "macro_f1": macro_f1(y, ref.argmax(1), n_classes),
                                  "accuracy": float(np.mean(ref.argmax(1) == y))},
                    "goal": {"top1_agreement": GOAL_TOP1_AGREEMENT}, "tolerance_output_steps": TOL_STEPS,
                    "targets": {}, "host": platform.platform(), "versions": versions()}
    bundles = {p: m for p, m in manifests.items() if p.suffix == ".bpte"}
    for p, m in manifests.items():
        if p in bundles:
            continue
        key = m["target"] if m["target"] not in report["targets"] else f"{m['target']}:{p.name}"
        try:
            entry = _check_one(p, m, run, x, y, ref, n_classes)
        except OndeviceError as e:
            problems[p.name] = str(e)
            entry = {"target": m["target"], "artifact": p.name, "ran": f"failed: {e.message}"}
        report["targets"][key] = entry
    for p, m in manifests.items():
        if m["target"] == "mcu" and p.is_dir():
            mcu_entries(report["targets"], p, x, problems)
    _bundle_entries(report["targets"], bundles, problems)
    if problems:
        report["problems"] = problems
    dest = Path(out) if out is not None else folder
    if dest.suffix != ".json":
        dest = dest / "verify_report.json"
    write_json_atomic(dest, report)
    if on_report is not None:
        on_report(report, dest)
    _raise_failures(report, problems, dest)
    return report


def _bundle_entries(targets: dict, bundles: dict[Path, dict], problems: dict) -> None:
    """Each bundled program's self-check, on its host entry (or an entry of its own)."""
    for p, m in bundles.items():
        host = targets.get(m["target"])
        try:
            res = _bundled_check(p, m)
        except OndeviceError as e:
            problems[p.name] = str(e)
            res = {"artifact": p.name, "passed": False, "error": e.message}
        if host is not None:
            host["bundled_self_check"] = res
        else:
            targets[f"{m['target']}:{p.name}"] = {"target": m["target"], "artifact": p.name,
                                                 "ran": True, "bundled_self_check": res}


def _raise_failures(report: dict, problems: dict, dest: Path) -> None:
    failed = [k for k, e in report["targets"].items() if e.get("ran") is True and e.get("passed") is False]
    if problems:
        first = next(iter(problems.items()))
        raise VerifyError(f"{len(problems)} artifact(s) could not be checked; first: {first[0]}: {first[1]}",
                          f"re-export them; details in {dest}")
    if failed:
        worst = min(failed, key=lambda k: report["targets"][k]["top1_agreement"])
        e = report["targets"][worst]
        located = next((report["targets"][k]["localisation"] for k in failed
                        if (report["targets"][k].get("localisation") or {}).get("worst")), None)
        at = ""
        if located:
            w, o = located["worst"], located.get("first_own_error")
            at = f"; largest layer deviation: op {w['op_index']} {w['op']} {w['tflite_tensor']} ({w['steps']} steps)"
            if o:
                at += (f"; first layer that differs on identical inputs: op {o['op_index']} {o['op']} "
                       f"{o['tflite_tensor']} ({o['own_steps']} steps)")
        raise VerifyError(f"{', '.join(failed)}: top-1 agreement down to {e['top1_agreement']:.1%} "
                          f"< {GOAL_TOP1_AGREEMENT:.0%}{at}",
                          f"see {dest} (disagreements and the reference's own margins); quantization of the layer "
                          "named is the place to look")
