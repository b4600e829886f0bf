"""``ondevice verify`` for artifacts made from an existing ``.tflite`` or ``.pte`` (no PyTorch model behind them).

The reference is the model file itself on its own runtime: the LiteRT interpreter for a ``.tflite``, the ExecuTorch
runtime for a ``.pte``. Each artifact runs on its host runtime (LiteRT, the TFLM interpreter, the mcu host build)
on the same inputs and is compared with it in output quantization steps; mcu libraries are also checked bit for
bit against the TFLM interpreter on the host build and under QEMU, as for any mcu artifact.

Inputs come from ``--data`` (a folder of ``.npz`` files, one sample each: one array per model input named after
the input, plus an integer ``label``), otherwise from N deterministic random vectors within each input's quantized
range; the report says which.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from ondevice.errors import ConfigError, DataError, OndeviceError, VerifyError
from ondevice.export.manifest import find_artifacts, read_manifest, versions
from ondevice.fsutil import write_json_atomic
from ondevice.source import ModelSource, is_file_source, random_inputs, resolve_model
from ondevice.verify.hostrt import GOAL_TOP1_AGREEMENT, RUNTIME_OF, TOL_STEPS, host_runtime
from ondevice.verify.mcu import mcu_entries
from ondevice.verify.stats import agreement, fidelity

RANDOM_N = int(os.environ.get("ONDEVICE_VERIFY_RANDOM_N", "64"))
RANDOM_SEED = 0


def file_source_for(artifacts, model) -> str | None:
    """The .tflite/.pte that ``verify`` should use as the reference, or None when the artifacts come from a run:
    ``--model`` when it is such a file, the artifact argument when it is one, else the manifests' source."""
    if is_file_source(model):
        return str(model)
    if is_file_source(artifacts) and Path(artifacts).is_file():
        return str(artifacts)
    folder = Path(artifacts)
    if model is not None or not folder.is_dir():
        return None
    srcs = set()
    for p in find_artifacts(folder):
        try:
            srcs.add(read_manifest(p).get("source_run") or "")
        except OndeviceError:
            continue
    src = next(iter(srcs)) if len(srcs) == 1 else ""
    return src if is_file_source(src) else None


# ---------------------------------------------------------------------------------------------------- inputs
def read_npz_folder(folder: Path, src: ModelSource) -> tuple[list[list[np.ndarray]], np.ndarray | None]:
    """Every ``.npz`` sample in ``folder`` (sorted by name) as input vectors in the model's own dtypes, and the
    labels when every sample has one."""
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DataError(f"--data {folder} holds no .npz files",
                        hint="one .npz per sample: one array per model input, named after it, plus `label`")
    vecs, labels = [], []
    for f in files:
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        vec = []
        for spec in src.inputs:
            a = arrays.get(spec.name)
            if a is None and len(src.inputs) == 1 and len([k for k in arrays if k != "label"]) == 1:
                a = next(v for k, v in arrays.items() if k != "label")  # one input, one array: no doubt which
            if a is None:
                raise DataError(f"{f.name}: no array {spec.name!r} (has {', '.join(sorted(arrays)) or 'none'})",
                                hint=f"name each array after the model input: {', '.join(s.name for s in src.inputs)}")
            if a.size != int(np.prod(spec.shape)):
                raise DataError(f"{f.name}: {spec.name} has shape {list(a.shape)}, the model takes {spec.shape}",
                                hint="one sample per file, shaped like the input (the batch dimension may be left out)")
            vec.append(_as_input(a.reshape(spec.shape), spec))
        vecs.append(vec)
        labels.append(int(arrays["label"]) if "label" in arrays and arrays["label"].size == 1 else None)
    y = np.asarray(labels, np.int64) if all(v is not None for v in labels) else None
    return vecs, y


def _as_input(a: np.ndarray, spec) -> np.ndarray:
    """A data array in the input's dtype: float data for an int8 input is quantized with the input's parameters."""
    if np.issubdtype(np.dtype(spec.dtype), np.integer) and np.issubdtype(a.dtype, np.floating):
        return spec.quantize(a)
    return a.astype(spec.dtype)


def _float_of(x: np.ndarray, spec) -> np.ndarray:
    if spec.scale is not None:
        return spec.dequantize(x)
    return np.asarray(x, np.float32)


def _to_artifact(vec, src: ModelSource, specs) -> list[np.ndarray]:
    """One source input vector as an artifact's inputs (the same values; re-typed if the artifact's I/O differs)."""
    out = []
    for x, s_src, s_art in zip(vec, src.inputs, specs):
        if np.dtype(s_art.dtype) == np.asarray(x).dtype:
            out.append(x)
        else:
            f = _float_of(x, s_src)
            out.append(s_art.quantize(f) if s_art.scale is not None else f.astype(s_art.dtype))
    return out


# ---------------------------------------------------------------------------------------------------- compare
def output_steps(src: ModelSource) -> list[float | None]:
    """One quantization step per output: its own scale, or the scale of the int8 tensor its DEQUANTIZE reads."""
    if src.kind != "tflite":
        return [s.scale for s in src.outputs]
    from ondevice.mcu.reader import read_tflite
    g = read_tflite(src.data, src.name)
    steps = []
    for spec, t in zip(src.outputs, g.outputs):
        if spec.scale is not None:
            steps.append(spec.scale)
            continue
        dq = next((op for op in g.ops if op.opcode == "DEQUANTIZE" and t in op.outputs), None)
        steps.append(g.tensors[dq.inputs[0]].qparams()[0] if dq is not None else None)
    return steps


def _run_all(model, vecs, src) -> list[np.ndarray]:
    """Outputs of ``model`` on every vector, dequantized to float, stacked per output: [N, ...]."""
    per = [[] for _ in model.outputs]
    for vec in vecs:
        raw = model.run(_to_artifact(vec, src, model.inputs))
        for k, (spec, y) in enumerate(zip(model.outputs, raw)):
            per[k].append(spec.dequantize(y).reshape(-1))
    return [np.stack(p) for p in per]


def compare(outs: list[np.ndarray], ref: list[np.ndarray], steps: list, y: np.ndarray | None) -> dict:
    """Max difference in output steps, and for a classifier output top-1 agreement (near ties set apart)."""
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, ref))
    in_steps = [float(np.abs(o - r).max()) / s for o, r, s in zip(outs, ref, steps) if s]
    e = {"max_abs_diff": diff, "output_step": steps[0], "max_abs_diff_steps": round(max(in_steps), 2) if in_steps
         else None, "outputs_compared": len(outs)}
    o, r = outs[0], ref[0]
    e["outputs"] = [fidelity(oo, rr) for oo, rr in zip(outs, ref)]
    if o.shape[1] > 1 and steps[0]:  # a score vector: top-1 is meaningful; near-ties as `ondevice verify` of a run
        e.update(agreement(o, r, steps[0], TOL_STEPS))
        if y is not None:
            e["accuracy"] = float((o.argmax(1) == y).mean())
    e["passed"] = (e["max_abs_diff_steps"] is None or e["max_abs_diff_steps"] <= TOL_STEPS) and \
        e.get("top1_agreement", 1.0) >= GOAL_TOP1_AGREEMENT
    return e


# ------------------------------------------------------------------------------------------------------ verify
_REFERENCE_RUNTIME = {"tflite": "litert", "pte": "executorch"}


def _reference(src: ModelSource):
    from ondevice.runtimes.base import get_runtime
    rt = get_runtime(_REFERENCE_RUNTIME[src.kind])
    return rt.load(src.path, reference_kernels=True) if src.kind == "tflite" else rt.load(src.path)


def _inputs(src: ModelSource, data) -> tuple[list, np.ndarray | None, dict]:
    if data is not None:
        folder = Path(data)
        if not folder.is_dir():
            raise ConfigError(f"--data {folder} is not a folder", "give a folder of .npz samples")
        vecs, y = read_npz_folder(folder, src)
        return vecs, y, {"source": "npz folder", "folder": str(folder), "n": len(vecs), "labels": y is not None}
    vecs = random_inputs(src, RANDOM_N, RANDOM_SEED)
    return vecs, None, {"source": "random", "n": RANDOM_N, "seed": RANDOM_SEED,
                        "note": "no --data: deterministic random inputs, uniform over each input's quantized range "
                                "(agreement only; accuracy needs --data)"}


def _artifacts(target: Path, src: ModelSource, problems: dict) -> dict[Path, dict]:
    """The artifacts to check, with their manifests; a lone model file is checked on the TFLM interpreter too."""
    if target.is_file():
        extra = {"tflite": "tflm", "pte": "executorch"}[src.kind]
        return {target: {"target": extra, "model": src.name}}
    if not target.is_dir():
        raise ConfigError(f"artifact folder {target} does not exist", "run `ondevice export --out DIR` first")
    out = {}
    for p in find_artifacts(target):
        try:
            out[p] = read_manifest(p, check_sha=True)
        except OndeviceError as e:
            problems[p.name] = str(e)
    if not out and not problems:
        raise ConfigError(f"no artifacts with manifests in {target}", "run `ondevice export --out DIR` first")
    return out


def _check(p: Path, m: dict, src, vecs, y, ref_outs, steps) -> dict:
    rt_name = RUNTIME_OF.get(m["target"])
    entry: dict = {"target": m["target"], "artifact": p.name, "runtime": rt_name}
    rt = host_runtime(m["target"], entry)
    if rt is None:
        return entry
    # LiteRT on the kernels the reference runs: XNNPACK / optimized int8 rounding differs by steps
    outs = _run_all(rt.load(p, reference_kernels=True) if rt_name == "litert" else rt.load(p), vecs, src)
    entry.update(ran=True, n=len(vecs), **compare(outs, ref_outs, steps, y))
    if p == src.path and rt_name == _REFERENCE_RUNTIME[src.kind]:  # the reference itself: it must repeat exactly
        entry["deterministic"] = entry["max_abs_diff"] == 0.0
        entry["passed"] = entry["deterministic"] and all(np.isfinite(o).all() for o in outs)
        entry["note"] = "no independent reference for a .pte: run twice on the ExecuTorch runtime, outputs finite"
    return entry


def verify_source(artifacts, spec, data=None, out=None, on_report=None) -> dict:
    """Check every artifact in ``artifacts`` (or the model file itself) against ``spec`` (.tflite/.pte) on its own
    runtime; writes ``verify_report.json``, calls ``on_report(report, path)`` and returns the report. Raises
    VerifyError after writing when one fails."""
    from ondevice.export.api import one_thread
    src = resolve_model(spec)
    target = Path(artifacts)
    problems: dict = {}
    with one_thread():
        arts = _artifacts(target, src, problems)
        names = {m.get("model") for m in arts.values()} - {None}
        if names and names != {src.name}:
            raise ConfigError(f"artifacts are of model(s) {sorted(names)}, not of {src.path.name} ({src.name!r})",
                              "pass the .tflite they were exported from with --model")
        vecs, y, desc = _inputs(src, data)
        ref = _reference(src)
        ref_outs = _run_all(ref, vecs, src)
        steps = output_steps(src)
        report: dict = {"model": src.name, "source_model": str(src.path), "source_kind": src.kind, "data": desc,
                        "reference": {"what": src.reference},
                        "goal": {"top1_agreement": GOAL_TOP1_AGREEMENT},
                        "tolerance_output_steps": TOL_STEPS, "targets": {}, "host": platform.platform(),
                        "versions": versions()}
        if src.kind == "tflite":
            report["reference"]["kernels"] = "LiteRT's reference kernels (what TFLM ports; no XNNPACK)"
        if y is not None and ref_outs[0].shape[1] > 1:
            report["reference"]["accuracy"] = float((ref_outs[0].argmax(1) == y).mean())
        for p, m in arts.items():
            key = m["target"] if m["target"] not in report["targets"] else f"{m['target']}:{p.name}"
            try:
                report["targets"][key] = _check(p, m, src, vecs, y, ref_outs, steps)
            except OndeviceError as e:
                problems[p.name] = str(e)
                report["targets"][key] = {"target": m["target"], "artifact": p.name, "ran": f"failed: {e.message}"}
        for p, m in arts.items():
            if m["target"] == "mcu" and p.is_dir():
                per_input = tuple(np.stack([v[k] for v in vecs]) for k in range(len(src.inputs)))  # [N, ...] each
                mcu_entries(report["targets"], p, per_input, problems)
    if problems:
        report["problems"] = problems
    dest = Path(out) if out is not None else (target if target.is_dir() else target.parent)
    dest = dest if dest.suffix == ".json" else dest / "verify_report.json"
    write_json_atomic(dest, report)
    if on_report is not None:
        on_report(report, dest)
    failed = [k for k, e in report["targets"].items() if e.get("ran") is True and e.get("passed") is False]
    if problems:
        first = next(iter(problems.items()))
        raise VerifyError(f"{len(problems)} artifact(s) could not be checked; first: {first[0]}: {first[1]}",
                          f"details in {dest}")
    if failed:
        e = report["targets"][failed[0]]
        raise VerifyError(f"{', '.join(failed)}: differ from {src.path.name} on {src.reference.split(' on ')[0]} "
                          f"by up to {e.get('max_abs_diff_steps')} output steps, top-1 agreement "
                          f"{e.get('top1_agreement', 1.0):.1%}", f"see {dest}")
    return report
