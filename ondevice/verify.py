"""``ondevice verify``: run every artifact on its real host runtime and compare it with the QAT PyTorch model.

For each artifact: macro-F1 and accuracy on the test split, top-1 agreement with the QAT model, and the max abs
difference of dequantized outputs. When an artifact disagrees beyond tolerance, the first diverging layer is
localised from LiteRT's preserved intermediate tensors against the PT2E graph's activations. The report goes to
``verify_report.json`` (atomic write).
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ondevice import log
from ondevice.errors import ConfigError, OndeviceError, VerifyError
from ondevice.export.manifest import find_artifacts, read_manifest, versions
from ondevice.fsutil import check_out, write_json_atomic

GOAL_TOP1_AGREEMENT = 0.99
# Beyond this many output quantization steps an artifact is "mismatched" and gets a layer localisation.
TOL_STEPS = 8
# A layer "diverges" once it is this many of its own quantization steps away from the PT2E activation.
LAYER_TOL_STEPS = 3

# target -> runtime name (the manifest's target decides, since .tflite serves three targets)
RUNTIME_OF = {"executorch": "executorch", "tflite": "litert", "edgetpu": "litert", "tflm": "tflm",
              "coreml": "coreml", "mcu": "mcu-host"}


from ondevice.verify_inputs import (SYNTH_SEED, SYNTH_SIZE, cache_dir, sample, tensor_inputs,  # noqa: E402,F401
                                    test_inputs, vectors)


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


# ------------------------------------------------------------------------------------------- localisation
def _activation_q(n):
    """The quantize node behind dequantize node ``n`` when ``n`` dequantizes an activation (not a weight), else None."""
    import torch
    if n.op != "call_function" or n.target != torch.ops.quantized_decomposed.dequantize_per_tensor.default:
        return None
    src = n.args[0]
    if getattr(src, "target", None) != torch.ops.quantized_decomposed.quantize_per_tensor.default \
            or src.args[0].op == "get_attr":
        return None
    return src


def pt2e_activations(run, x1: np.ndarray) -> list[dict]:
    """Every quantized activation of the PT2E graph in execution order: node name, scale, dequantized value."""
    import torch
    gm = run.qat_module()
    acts: list[dict] = []
    seen: set = set()

    class Rec(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            src = _activation_q(n)
            if src is not None and src not in seen:
                seen.add(src)
                acts.append({"node": src.args[0].name, "scale": float(n.args[1]), "shape": list(out.shape),
                             "value": out.detach().numpy().copy()})
            return out

    with torch.no_grad():
        Rec(gm).run(*(torch.from_numpy(x) for x in _tuple(x1)))
    return acts


def _tuple(x1) -> tuple:
    return tuple(x1) if isinstance(x1, (tuple, list)) else (x1,)


def short_name(name: str) -> str:
    """Converter tensor names are module paths joined by '/' and ';': keep the last three module names."""
    first = name.split(";")[0]
    parts = [p.rsplit(".", 1)[-1] for p in first.split("/") if p]
    return "/".join(parts[-3:]) or name


def _aligned(pt: np.ndarray, shape: list[int]) -> np.ndarray | None:
    """PT2E value laid out like the TFLite tensor (NCHW -> NHWC when that is what matches)."""
    if pt.size != int(np.prod(shape)):
        return None
    if list(pt.shape) == list(shape):
        return pt
    if pt.ndim == 4 and len(shape) == 4 and list(pt.transpose(0, 2, 3, 1).shape) == list(shape):
        return pt.transpose(0, 2, 3, 1)
    if _channels_last(list(pt.shape), list(shape)):  # e.g. a Conv1d [N,C,L] run as CONV_2D [N,1,L,C]
        return np.moveaxis(pt, 1, -1).reshape(shape)
    return pt.reshape(shape)


def _squeezed(shape) -> list[int]:
    return [int(d) for d in shape if d != 1]


def _channels_last(pt_shape: list[int], tfl_shape: list[int]) -> bool:
    """True when the TFLite tensor holds the PT2E one channels-last in another rank (size-1 dims aside)."""
    if len(pt_shape) < 3 or _squeezed(pt_shape) == _squeezed(tfl_shape):
        return False
    return _squeezed(pt_shape[:1] + pt_shape[2:] + pt_shape[1:2]) == _squeezed(tfl_shape)


def _to_pt(v: np.ndarray, pt_shape: list[int]) -> np.ndarray:
    """A TFLite value laid out like the PT2E activation (the inverse of ``_aligned``)."""
    if list(v.shape) != list(pt_shape) and v.ndim == 4 and len(pt_shape) == 4 \
            and list(v.transpose(0, 3, 1, 2).shape) == list(pt_shape):
        return np.ascontiguousarray(v.transpose(0, 3, 1, 2))
    if _channels_last(list(pt_shape), list(v.shape)):
        cl = pt_shape[:1] + pt_shape[2:] + pt_shape[1:2]
        return np.ascontiguousarray(np.moveaxis(v.reshape(cl), -1, 1))
    return v.reshape(pt_shape)


def _own_errors(run, x1: np.ndarray, tfl: dict[str, np.ndarray]) -> dict[str, float]:
    """Each matched PT2E activation computed from LiteRT's values of its inputs: max |diff| to LiteRT's own value.

    Every matched activation is replaced by LiteRT's value as the PT2E graph runs, so a layer is judged on the
    inputs the runtime actually gave it: rounding differences carried in from upstream do not count, a layer the
    converter or runtime computes differently does.
    """
    import torch
    gm = run.qat_module()
    errs: dict[str, float] = {}

    class Sub(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            src = _activation_q(n)
            name = src.args[0].name if src is not None else None
            if name in tfl:
                v = torch.from_numpy(_to_pt(tfl[name], list(out.shape))).to(out.dtype)
                errs[name] = max(errs.get(name, 0.0), float((out - v).abs().max()) / float(n.args[1]))
                out = v
            return out

    with torch.no_grad():
        Sub(gm).run(*(torch.from_numpy(x) for x in _tuple(x1)))
    return errs


def localise(artifact: Path, manifest: dict, run, x1: np.ndarray) -> dict:
    """Where LiteRT and the PT2E graph part, layer by layer, on one input.

    Two views per layer, in output steps: ``steps``, the end-to-end difference (what reached the layer, rounding
    carried from upstream included), and ``own_steps``, the difference when the PT2E layer gets LiteRT's inputs
    (what the layer itself computes differently). ``first_diverging`` is the first layer over LAYER_TOL_STEPS
    end to end; ``first_own_error`` the first layer over it on its own, the one to fix when there is one.
    """
    from ondevice.mcu.reader import read_graph
    from ondevice.runtimes.base import get_runtime
    tfl = artifact if artifact.suffix == ".tflite" else next(iter(sorted(artifact.glob("*.tflite"))), None)
    if tfl is None:
        return {"method": "none", "note": "layer localisation needs a .tflite (LiteRT intermediates)"}
    data = tfl.read_bytes()
    graph = read_graph(data, tfl.name)
    lm = get_runtime("litert").load(tfl, preserve_all_tensors=True)  # guarded: the file may be damaged
    lm.run([s.quantize(np.asarray(x).reshape(s.shape)) for s, x in zip(lm.inputs, _tuple(x1))])
    values = {t["index"]: t for t in lm.tensors()}
    acts = pt2e_activations(run, x1)
    ptr, layers, matched = 0, [], {}
    for op in graph.ops:
        for o in op.outputs:
            t = graph.tensors[o]
            if o not in values or t.scale is None or t.is_const:
                continue
            v = values[o]["spec"].dequantize(values[o]["value"])
            # the matching PT2E activation is the next one (within a short window) with the same size
            best = None
            for j in range(ptr, min(ptr + 6, len(acts))):
                a = _aligned(acts[j]["value"], list(v.shape))
                if a is None:
                    continue
                err = float(np.abs(a - v).max())
                if best is None or err < best[1]:
                    best = (j, err)
            if best is None:
                continue
            j, err = best
            ptr = j + 1
            matched[acts[j]["node"]] = v
            layers.append({"op_index": op.index, "op": op.opcode, "tflite_tensor": short_name(t.name),
                           "pt2e_node": acts[j]["node"], "shape": list(v.shape), "max_abs_diff": err,
                           "steps": round(err / float(t.scale[0]), 2)})
    own = _own_errors(run, x1, matched)
    for row in layers:  # own errors are in the PT2E activation's steps, the same scale as the TFLite tensor's
        row["own_steps"] = round(own.get(row["pt2e_node"], 0.0), 2)
    first = next((r for r in layers if r["steps"] > LAYER_TOL_STEPS), None)
    first_own = next((r for r in layers if r["own_steps"] > LAYER_TOL_STEPS), None)
    return {"method": "LiteRT experimental_preserve_all_tensors vs PT2E activations (matched by order and size); "
                      "own_steps: the PT2E layer fed LiteRT's inputs",
            "layers_compared": len(layers), "first_diverging": first, "first_own_error": first_own,
            "worst": max(layers, key=lambda r: r["steps"]) if layers else None,
            "worst_own": max(layers, key=lambda r: r["own_steps"]) if layers else None, "layers": layers}


# ------------------------------------------------------------------------------------------------- verify
def _check_one(artifact: Path, manifest: dict, run, x: tuple, y: np.ndarray, ref: np.ndarray,
               n_classes: int) -> dict:
    from ondevice.runtimes.base import RUNTIMES, get_runtime, runtime_names
    target = manifest["target"]
    rt_name = RUNTIME_OF.get(target)
    entry: dict = {"target": target, "artifact": artifact.name, "runtime": rt_name}
    runtime_names()  # imports every adapter so the registry is complete
    if rt_name is None or rt_name not in RUNTIMES:
        entry["ran"] = f"not run: no host runtime for target {target!r}"
        return entry
    rt = get_runtime(rt_name)
    ok, why = rt.available()
    if not ok:
        entry["ran"] = why
        return entry
    from ondevice.verify_stats import agreement, fidelity
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
           out: str | Path | None = None) -> dict:
    """Check every artifact in ``artifacts`` on its host runtime against the run's QAT model; returns the report.

    ``model`` is the slim run the artifacts came from (default: the manifests' ``source_run``, else the shipped
    recipe). ``data`` is a dataset folder whose test split is used (default: a cached synthetic corpus). Writes
    ``verify_report.json`` into ``out`` (a folder or a .json path; default: the artifacts folder). Raises
    VerifyError after writing the report if an artifact failed to load or missed the agreement goal.
    Artifacts made from an existing .tflite/.pte (or the file itself) are checked against that file instead.
    """
    from ondevice.verify_source import file_source_for, verify_source
    spec = file_source_for(artifacts, model)
    if spec is not None:
        return verify_source(artifacts, spec, data=data, out=out)
    from ondevice.export.api import one_thread
    if out is not None:
        check_out(out, "file_or_dir")  # before any work: a bad --out once failed after all of it
    with one_thread():
        return _verify(Path(artifacts), data, model, out)


def _verify(folder: Path, data, model, out) -> dict:
    from ondevice.export.api import load_source
    if not folder.is_dir():
        raise ConfigError(f"artifact folder {folder} does not exist", "run `ondevice export --out DIR` first")
    paths = find_artifacts(folder)
    if not paths:
        raise ConfigError(f"no artifacts with manifests in {folder}", "run `ondevice export --out DIR` first")
    manifests, problems = {}, {}
    for p in paths:
        try:
            manifests[p] = read_manifest(p, check_sha=True)
        except OndeviceError as e:
            problems[p.name] = str(e)
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
            _mcu_entries(report["targets"], p, x, problems)
    for p, m in bundles.items():
        host = report["targets"].get(m["target"])
        try:
            res = _bundled_check(p, m)
        except OndeviceError as e:
            problems[p.name] = str(e)
            res = {"artifact": p.name, "passed": False, "error": e.message}
        if host is not None:
            host["bundled_self_check"] = res
        else:
            report["targets"][f"{m['target']}:{p.name}"] = {"target": m["target"], "artifact": p.name,
                                                           "ran": True, "bundled_self_check": res}
    if problems:
        report["problems"] = problems
    dest = Path(out) if out is not None else folder
    if dest.suffix != ".json":
        dest = dest / "verify_report.json"
    write_json_atomic(dest, report)
    _print(report, dest)
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
    return report


QEMU_VECTORS = 32  # each vector boots nothing new, but two kernel variants run under TCG: keep verify quick


def _mcu_entries(targets: dict, lib: Path, x: tuple, problems: dict) -> None:
    """The generated C checked bit for bit against the TFLM interpreter: host gcc build (``mcu``, every test
    vector, reference and optimised kernels) and the firmware on QEMU mps2-an386 over its serial line
    (``mcu-qemu``, the first QEMU_VECTORS vectors)."""
    import shutil

    from ondevice.flash import verify_on_device
    from ondevice.mcu import verify_host
    host = targets.setdefault("mcu", {"target": "mcu", "artifact": lib.name})
    try:
        res = verify_host(lib, vectors(x))
        host.update(bit_exact_vs_tflm=bool(res["bit_exact_vs_tflm"]), vectors_compared=int(res["vectors"]),
                    bit_exact_detail=res)
    except OndeviceError as e:
        problems[f"{lib.name} (host build)"] = str(e)
        host.update(bit_exact_vs_tflm=False, vectors_compared=0)
    entry: dict = {"target": "mcu-qemu", "artifact": lib.name, "board": "qemu-mps2-an386"}
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        entry["ran"] = "not run: needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)"
    else:
        try:
            res = verify_on_device(lib, vectors(x, QEMU_VECTORS))
            entry.update(ran=True, bit_exact_vs_tflm=bool(res["bit_exact_vs_tflm"]),
                         vectors_compared=int(res["vectors"]), detail=res)
        except OndeviceError as e:
            problems[f"{lib.name} (qemu)"] = str(e)
            entry.update(ran=f"failed: {e.message}", bit_exact_vs_tflm=False, vectors_compared=0)
    targets["mcu-qemu"] = entry
    for key in ("mcu", "mcu-qemu"):
        e = targets[key]
        if e.get("bit_exact_vs_tflm") is False and e.get("vectors_compared"):
            problems[f"{lib.name} ({key})"] = "outputs are not bit-exact with the TFLM interpreter"


def _print(report: dict, dest: Path) -> None:
    ref = report["reference"]
    log.info(f"reference (QAT PyTorch): macro-F1 {ref['macro_f1']:.3f}, accuracy {ref['accuracy']:.3f} "
             f"on {report['data']['n']} test clips")
    for key, e in report["targets"].items():
        if e.get("ran") is True and "top1_agreement" in e:
            exact = f"  bit-exact vs TFLM: {e['bit_exact_vs_tflm']}" if "bit_exact_vs_tflm" in e else ""
            ties = f" ({e['ties_excluded']} near-tie(s) excluded)" if e.get("ties_excluded") else ""
            fid = (e.get("outputs") or [{}])[0]
            snr = f"  SNR {fid['snr_db']:.1f} dB" if fid.get("snr_db") is not None else ""
            log.info(f"{key:<12} macro-F1 {e['macro_f1']:.3f}  top-1 agreement {e['top1_agreement']:.1%}{ties}  "
                     f"max|diff| {e['max_abs_diff']:.4g}{snr}  cos {fid.get('cosine', float('nan')):.4f}  "
                     f"{'ok' if e['passed'] else 'MISMATCH'}{exact}")
            for w in e.get("warnings", []):
                log.warn(f"{'':<12} {w}")
            cc = e.get("conversion_check")
            if cc and not cc["ok"]:
                log.warn(f"{'':<12} {cc['at']} computes differently from the PyTorch layer on identical inputs "
                            f"({cc['max_own_steps']} steps): a conversion difference, not rounding")
        elif key == "mcu-qemu" and e.get("ran") is True:
            log.info(f"{key:<12} bit-exact vs TFLM: {e['bit_exact_vs_tflm']} ({e['vectors_compared']} vectors)")
        elif e.get("ran") is True:
            log.info(f"{key:<12} bundled self-check {'ok' if e['bundled_self_check'].get('passed') else 'FAILED'}")
        else:
            log.info(f"{key:<12} {e['ran']}")
    log.info(f"wrote {dest}")
