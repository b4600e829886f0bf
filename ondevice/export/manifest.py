"""The manifest beside every artifact (docs/CONTRACTS.md section 4): what it is, how it was made, how to feed it.

``<artifact>.manifest.json`` is read by verify, profile, flash and the apps, so its keys are a contract.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import platform
from datetime import datetime, timezone
from pathlib import Path

from ondevice.errors import ConfigError
from ondevice.fsutil import sha256_file, write_json_atomic

FORMAT = "ondevice-manifest/1"
REQUIRED = ("format", "artifact", "model", "target", "quant", "sha256", "bytes", "inputs", "outputs", "labels",
            "ops", "delegation", "versions", "source_run")
_VERSIONED = ("ondevice", "torch", "torchao", "executorch", "litert-torch", "ai-edge-litert", "coremltools",
              "tflite-micro", "numpy")


def manifest_path(artifact: str | Path) -> Path:
    """``foo.tflite`` -> ``foo.tflite.manifest.json`` (folders too: ``foo_mcu_int8/`` -> ``foo_mcu_int8.manifest.json``)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".manifest.json")


def versions() -> dict[str, str]:
    """Versions of the packages that produce and run artifacts (absent ones are left out)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def artifact_digest(artifact: str | Path) -> tuple[str, int]:
    """(sha256, bytes) of a file, or of a folder's files in sorted relative-path order (path and content hashed)."""
    artifact = Path(artifact)
    if artifact.is_file():
        return sha256_file(artifact), artifact.stat().st_size
    h, total = hashlib.sha256(), 0
    for f in sorted(p for p in artifact.rglob("*") if p.is_file()):
        rel = f.relative_to(artifact).as_posix().encode()
        h.update(len(rel).to_bytes(4, "little") + rel)
        h.update(bytes.fromhex(sha256_file(f)))
        total += f.stat().st_size
    return h.hexdigest(), total


def build_manifest(artifact: str | Path, *, run, target: str, quant: str, inputs, outputs, ops: dict,
                   delegation: dict, **extra) -> dict:
    """The common manifest for ``artifact``; ``extra`` adds target-specific keys (arena_bytes, flash_bytes, ...)."""
    artifact = Path(artifact)
    sha, size = artifact_digest(artifact)
    m = {
        "format": FORMAT,
        "artifact": artifact.name,
        "model": run.name,
        "target": target,
        "quant": quant,
        "sha256": sha,
        "bytes": size,
        "inputs": [_spec(s) for s in inputs],
        "outputs": [_spec(s) for s in outputs],
        "labels": list(run.labels),
        "ops": dict(sorted(ops.items())),
        "delegation": delegation,
        "versions": versions(),
        "source_run": str(getattr(run, "path", "") or ""),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    m.update(extra)
    return m


def name_inputs(run, specs: list) -> list:
    """Name an artifact's input specs after the model's inputs (forward's parameters), checking the order.

    Converters call them ``args_0``, ``x``, ...; the manifest, verify, profile and the apps name them as the model
    does. A converter that reordered its inputs is refused rather than silently fed the wrong tensor.
    """
    import re

    from ondevice.errors import ExportError
    want = run.input_specs() if hasattr(run, "input_specs") else []
    if len(want) != len(specs):
        return specs
    def get(s, k):
        return s[k] if isinstance(s, dict) else getattr(s, k)
    idx = [re.search(r"args_(\d+)", get(s, "name") or "") for s in specs]
    if all(idx) and [int(m.group(1)) for m in idx] != list(range(len(specs))):
        raise ExportError(f"the converter reordered the inputs ({[get(s, 'name') for s in specs]})",
                          "report this with the model; the artifact would be fed the wrong tensors")
    for s, w in zip(specs, want):
        if int(np.prod(get(s, "shape"))) != int(np.prod(w.shape)):
            raise ExportError(f"artifact input {get(s, 'name')} {list(get(s, 'shape'))} does not match model input "
                              f"{w.name} {list(w.shape)}", "report this with the model; inputs may have been reordered")
        if isinstance(s, dict):
            s["name"] = w.name
        else:
            s.name = w.name
    return specs


def _spec(s) -> dict:
    return s.to_dict() if hasattr(s, "to_dict") else dict(s)


def write_manifest(artifact: str | Path, manifest: dict) -> Path:
    """Write ``manifest`` atomically beside ``artifact``; refuses one missing a contract key."""
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise ValueError(f"manifest for {Path(artifact).name} lacks {missing}")
    return write_json_atomic(manifest_path(artifact), manifest)


def read_manifest(artifact_path: str | Path, check_sha: bool = False) -> dict:
    """Read the manifest beside an artifact. ``check_sha`` also checks the artifact still matches it."""
    artifact_path = Path(artifact_path)
    mp = manifest_path(artifact_path)
    if not mp.is_file():
        raise ConfigError(f"no manifest beside {artifact_path.name} ({mp.name} is missing)",
                          "re-export it with `ondevice export`, which writes the manifest beside each artifact")
    try:
        m = json.loads(mp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"manifest {mp.name} is not valid JSON ({e})", "re-export the artifact") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ConfigError(f"{mp.name} is not an ondevice manifest (format {m.get('format') if isinstance(m, dict) else None!r})",
                          f"expected format {FORMAT!r}; re-export the artifact with this ondevice version")
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise ConfigError(f"manifest {mp.name} lacks {', '.join(missing)}", "re-export the artifact")
    if check_sha:
        if not artifact_path.exists():
            raise ConfigError(f"artifact {artifact_path.name} is missing", "re-export it")
        sha, _ = artifact_digest(artifact_path)
        if sha != m["sha256"]:
            raise ConfigError(f"{artifact_path.name} does not match its manifest (sha256 differs: truncated or edited?)",
                              "re-export it with `ondevice export`")
    return m


def find_artifacts(folder: str | Path) -> list[Path]:
    """Every artifact in ``folder`` that has a manifest beside it, sorted by name."""
    folder = Path(folder)
    suffix = ".manifest.json"
    return sorted(p.with_name(p.name[: -len(suffix)]) for p in folder.glob("*" + suffix))
