"""``ondevice export``: one slim run -> one artifact (+ manifest) per target."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

# TensorFlow (pulled in by coremltools/litert) logs C++ banners unless told not to, before it is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ondevice import log  # noqa: E402
from ondevice.errors import ConfigError, OndeviceError  # noqa: E402
from ondevice.export.registry import get_exporter, resolve_targets  # noqa: E402
from ondevice.fsutil import check_out  # noqa: E402


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread (OMP_NUM_THREADS overrides), restoring the caller's setting after.

    Export and verify run one sample at a time; extra OpenMP threads only spin-wait, which is ~10x slower on a
    loaded machine.
    """
    import torch
    prev = torch.get_num_threads()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def load_source(model) -> object:
    """A Run from a run folder path, None (the shipped reference recipe), or an already-loaded Run."""
    if model is not None and not isinstance(model, (str, Path)):
        return model  # already a Run (library use and tests)
    _check_path(model)
    import torchao.quantization.pt2e  # noqa: F401  registers quantized_decomposed ops that qat.pt2 needs to load
    from ondevice.slim.checkpoint import load_run
    return load_run(Path(model) if model is not None else None)


def _check_path(model) -> None:
    from ondevice.source import is_file_source
    if is_file_source(model) and not Path(model).is_file():
        raise ConfigError(f"model {model} does not exist", "pass the path of an existing .tflite or .pte")
    if isinstance(model, (str, Path)) and not is_file_source(model) and not Path(model).exists():
        raise ConfigError(f"model run folder {model} does not exist",
                          "pass a folder written by `ondevice slim --out DIR`, a .tflite or a .pte, "
                          "or omit --model for the shipped recipe")


def export(model=None, targets=("all",), out: str | Path = "artifacts", allow_cpu_ops: bool = False) -> dict[str, Path]:
    """Export one QAT run to each target; returns {target: artifact path}.

    ``model`` is a slim run folder, None for the shipped reference recipe, a loaded Run, or an existing int8
    ``.tflite`` (used as it is by the tflite, edgetpu, tflm and mcu targets; ``all`` means those). ``targets`` may hold
    names, comma lists or ``all``. Each artifact is written atomically with its ``.manifest.json`` beside it; the
    first failing target stops the export with its error (artifacts already written stay, each complete).
    ``allow_cpu_ops`` keeps an Edge TPU model whose compiler puts ops on the CPU (refused by default).
    """
    raw = list(targets) if not isinstance(targets, str) else [targets]
    names = resolve_targets(raw)
    check_out(out)
    _check_path(model)  # before torch is imported: a typo should fail in a blink
    with one_thread():
        return _export(names, model, out, allow_cpu_ops,
                       wants_all=any(str(t).strip().lower() == "all" for t in raw))


def check_run(run) -> None:
    """Load every file of the run before any target starts: a damaged run fails all targets with one error,
    instead of some targets falling back to another source (e.g. PTQ from the float weights)."""
    parts = [("qat.pt2", "qat_module"), ("weights.pt", "float_model"), ("calib.pt", "calibration")]
    for part, attr in parts:
        if not hasattr(run, attr) or not hasattr(run, "path"):
            continue
        try:
            getattr(run, attr)()
        except OndeviceError as e:
            raise ConfigError(f"run {run.path} is damaged ({e.message}); no target exported",
                              e.hint or "re-run `ondevice slim` for this run folder") from None
        except Exception as e:  # noqa: BLE001 - torch raises assorted types on truncated or foreign files
            why = (str(e).splitlines() or [""])[0][:160]
            raise ConfigError(f"run {run.path} is damaged (cannot load {part}: {type(e).__name__}: {why}); "
                              "no target exported", "re-run `ondevice slim` for this run folder") from None


def _for_source(names: list[str], src, wants_all: bool) -> list[str]:
    """The targets that can take this kind of source; naming one that cannot is refused before anything runs."""
    ok = [n for n in names if src.kind in getattr(get_exporter(n), "sources", ("run",))]
    bad = [n for n in names if n not in ok]
    if bad and not wants_all or not ok:
        able = [n for n in resolve_targets(["all"]) if src.kind in getattr(get_exporter(n), "sources", ("run",))]
        raise ConfigError(f"target(s) {', '.join(bad or names)} cannot take {src.path.name} (a {src.kind}): they "
                          "convert a PyTorch model", f"use --target {','.join(able)}" if able else
                          "verify or profile the file directly")
    if bad:
        log.info(f"export: {src.path.name} goes to {', '.join(ok)} (not {', '.join(bad)}: they need a PyTorch model)")
    return ok


def _export(names: list[str], model, out, allow_cpu_ops: bool = False, wants_all: bool = False) -> dict[str, Path]:
    from ondevice.source import resolve_model
    with log.step("loading the model"):
        src = resolve_model(model)
        names = _for_source(names, src, wants_all)
        run = src.for_export()
        check_run(run)
    exps = {name: get_exporter(name) for name in names}  # one instance per target for the pre-check and export
    for exp in exps.values():
        if hasattr(exp, "allow_cpu_fallback"):
            exp.allow_cpu_fallback = allow_cpu_ops
    for name in names:  # every target's refusals (unsupported op, float model) come before anything is written
        check = getattr(exps[name], "precheck_source", None)
        if check is not None:
            _tagged(name, check, run)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file", "give a folder for the artifacts")
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    for i, name in enumerate(names, 1):
        exp = exps[name]
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with log.step(f"exporting {name} ({i}/{len(names)})"):
                path = _tagged(name, exp.export, run, out)
        except KeyboardInterrupt:  # say what is complete: each artifact is written atomically
            kept = ", ".join(p.name for p in done.values()) or "none"
            raise KeyboardInterrupt(f"{len(done)} artifact(s) kept in {out} ({kept}); {name} not written") from None
        done[name] = path
        # CPU time too: on a shared machine wall time says more about the neighbours than about the export.
        log.info(f"{name:<10} {path}  ({time.perf_counter() - t0:.1f} s, cpu {time.process_time() - c0:.1f} s)")
    return done


def _tagged(name: str, fn, *args):
    """Call ``fn``; an expected error gets the target's name in front of its message."""
    try:
        return fn(*args)
    except OndeviceError as e:
        if not e.message.startswith(f"[{name}]"):
            e.message = f"[{name}] {e.message}"
            e.args = (e.message,)
        raise
