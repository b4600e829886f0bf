"""The one model-source resolver: ``--model`` (or an artifact argument) -> :class:`ModelSource`.

A source is a slim run folder (or the shipped recipe when none is given), an existing ``.tflite`` or an existing
``.pte``. Every command calls :func:`resolve_model` and works from the object it returns: inputs with names,
shapes, dtypes and quantization, the outputs, the labels, and the reference to compare against. Commands never
branch on the kind of source beyond this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ondevice.errors import ConfigError
from ondevice.runtimes.base import TensorSpec

KINDS = ("run", "tflite", "pte")
PTE_SUFFIXES = (".pte", ".bpte")


@dataclass
class ModelSource:
    """One resolved model: what every command needs to know about ``--model``."""
    kind: str                              # "run" | "tflite" | "pte"
    name: str
    path: Path
    inputs: list[TensorSpec]               # in forward-parameter / model input order, batch 1
    outputs: list[TensorSpec] | None
    labels: list[str] | None
    run: object | None = None              # the slim Run when kind == "run"
    data: bytes | None = field(default=None, repr=False)  # the file's bytes for .tflite / .pte

    @property
    def reference(self) -> str:
        """What artifacts made from this source are checked against."""
        return {"run": "QAT PyTorch model (PT2E converted graph)",
                "tflite": f"LiteRT interpreter on {self.path.name}",
                "pte": f"ExecuTorch runtime (portable + XNNPACK pybindings) on {self.path.name}"}[self.kind]

    def for_export(self):
        """What an exporter takes: the slim Run, or a :class:`TfliteModel` for an existing .tflite."""
        if self.kind == "run":
            return self.run
        if self.kind == "tflite":
            # absolute: the manifests' source_run must name the file from any working directory
            return TfliteModel(self.name, self.path.resolve(), self.data, list(self.labels or []))
        raise ConfigError(f"{self.path.name} is already an ExecuTorch program; export has nothing to convert",
                          f"verify or profile it directly: `ondevice verify {self.path}`, "
                          f"`ondevice profile --device sim://executorch {self.path}`")


@dataclass
class TfliteModel:
    """An existing .tflite as exporters see it: used as it is, never re-converted or re-quantized."""
    name: str
    path: Path
    data: bytes = field(repr=False)
    labels: list[str] = field(default_factory=list)
    recipe: dict | None = None
    kind: str = "tflite"

    @property
    def quantization(self) -> dict:
        return {"method": f"as given: {self.path.name} used unchanged (no re-conversion, no re-quantization)"}

    @property
    def normalisation(self) -> dict:
        return {"float_input": "as the given model expects (not known to ondevice)"}

    def tflite_bytes(self) -> bytes:
        return self.data


# ---------------------------------------------------------------------------------------------------- resolve
def resolve_model(spec) -> ModelSource:
    """Resolve ``--model``: None (the shipped recipe), a slim run folder, a ``.tflite``, a ``.pte``, a loaded Run,
    or an already-resolved ModelSource."""
    if isinstance(spec, ModelSource):
        return spec
    if spec is not None and not isinstance(spec, (str, Path)):
        return _from_run(spec)  # an already-loaded Run (library use and tests)
    if spec is None:
        return _from_run(_load_run(None))
    p = Path(spec)
    if p.suffix == ".tflite":
        return _from_tflite(_existing(p, "a .tflite file"))
    if p.suffix in PTE_SUFFIXES:
        return _from_pte(_existing(p, "a .pte file"))
    if ":" in str(spec) and str(spec).split(":")[0].endswith(".py"):
        raise ConfigError(f"{spec} is a model definition, not a trained model",
                          f"train and quantize it first: `ondevice slim --model {spec} --data DIR --out runs/NAME`")
    if not p.exists():
        raise ConfigError(f"model {p} does not exist",
                          "pass a slim run folder (`ondevice slim --out DIR`), a .tflite or a .pte; "
                          "omit --model for the shipped recipe")
    if p.is_file():
        raise ConfigError(f"{p.name} is not a model ondevice reads (suffix {p.suffix or 'none'})",
                          "pass a slim run folder, a .tflite or a .pte")
    return _from_run(_load_run(p))


def is_file_source(spec) -> bool:
    """True when ``spec`` names an existing-model file (.tflite / .pte) rather than a run; cheap, no parsing."""
    return isinstance(spec, (str, Path)) and Path(spec).suffix in (".tflite",) + PTE_SUFFIXES


def _existing(p: Path, what: str) -> Path:
    if not p.is_file():
        raise ConfigError(f"model {p} does not exist", f"pass the path of {what}")
    return p


def _load_run(path):
    import torchao.quantization.pt2e  # noqa: F401  registers quantized_decomposed ops that qat.pt2 needs to load
    from ondevice.slim.checkpoint import load_run
    return load_run(path)


def _from_run(run) -> ModelSource:
    specs = getattr(run, "input_specs", None)
    if specs is not None:
        inputs = list(specs())
    else:  # until Run.input_specs lands (issue 11): one float input from the example
        inputs = [TensorSpec(name=f"input_{k}", shape=list(t.shape), dtype="float32")
                  for k, t in enumerate(run.example_input())]
    return ModelSource("run", run.name, Path(getattr(run, "path", "") or "."), inputs, None,
                       list(run.labels), run=run)


def _labels_beside(p: Path) -> list[str] | None:
    """``<stem>.labels.txt`` or ``labels.txt`` beside the model, one label a line (the usual zoo layout)."""
    for cand in (p.with_name(p.stem + ".labels.txt"), p.with_name("labels.txt")):
        if cand.is_file():
            return [ln.strip() for ln in cand.read_text().splitlines() if ln.strip()]
    return None


def _from_tflite(p: Path) -> ModelSource:
    from ondevice.export.tflite_util import io_specs
    data = p.read_bytes()
    inputs, outputs = io_specs(data, p.name)
    return ModelSource("tflite", model_name(p), p, inputs, outputs, _labels_beside(p), data=data)


def _from_pte(p: Path) -> ModelSource:
    from ondevice.runtimes.base import get_runtime
    data = p.read_bytes()
    m = get_runtime("executorch").load(p)  # header check and a trial load in a child: a user's file may abort
    return ModelSource("pte", model_name(p), p, list(m.inputs), list(m.outputs), _labels_beside(p), data=data)


def model_name(p: Path) -> str:
    """The model name in artifact names: the file stem, or the manifest's model when ondevice wrote the file."""
    mp = p.with_name(p.name + ".manifest.json")
    if mp.is_file():
        try:
            return str(json.loads(mp.read_text())["model"])
        except (ValueError, KeyError, TypeError):
            pass
    return "".join(c if c.isalnum() or c in "-" else "-" for c in p.stem).strip("-") or "model"


# ------------------------------------------------------------------------------------------------- inputs
def input_range(spec: TensorSpec, qparams: tuple[float, int] | None = None) -> tuple[float, float]:
    """The float range an input can represent: its own int8 range, or the range of the QUANTIZE it feeds."""
    scale, zp = (spec.scale, spec.zero_point) if spec.scale is not None else (qparams or (None, None))
    if scale is None:
        return -1.0, 1.0
    return (-128 - zp) * scale, (127 - zp) * scale


def random_inputs(src: ModelSource, n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """``n`` deterministic input vectors, each input uniform over its quantized range, in its own dtype."""
    rng = np.random.default_rng(seed)
    qp = input_qparams(src)
    vecs = []
    for _ in range(n):
        vec = []
        for spec, q in zip(src.inputs, qp):
            if np.issubdtype(np.dtype(spec.dtype), np.integer):
                info = np.iinfo(spec.dtype)
                vec.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=spec.shape)
                           .astype(spec.dtype))
            else:
                lo, hi = input_range(spec, q)
                vec.append(rng.uniform(lo, hi, size=spec.shape).astype(spec.dtype))
        vecs.append(vec)
    return vecs


def input_qparams(src: ModelSource) -> list[tuple[float, int] | None]:
    """Per input: the (scale, zero_point) the model quantizes it with (its own, or its QUANTIZE op's output's)."""
    if src.kind != "tflite":
        return [None if s.scale is None else (s.scale, s.zero_point) for s in src.inputs]
    from ondevice.mcu.reader import read_tflite
    g = read_tflite(src.data, src.name)
    out = []
    for spec, t in zip(src.inputs, g.inputs):
        if spec.scale is not None:
            out.append((spec.scale, spec.zero_point))
            continue
        q = next((op for op in g.ops if op.opcode == "QUANTIZE" and t in op.inputs), None)
        out.append(g.tensors[q.outputs[0]].qparams() if q is not None else None)
    return out


# ------------------------------------------------------------------------------------------- on MCU devices
def mcu_can_run(path) -> bool:
    """True when the MCU engine takes this .tflite (full-integer, every op lowered): checked in memory, quickly."""
    from ondevice.errors import OndeviceError
    from ondevice.export.tflite_util import check_int8_source
    from ondevice.mcu.codegen import generate
    from ondevice.mcu.reader import read_tflite
    p = Path(str(path))
    try:
        data = p.read_bytes()
        check_int8_source(data, p.name, "mcu")
        generate(read_tflite(data, p.stem), p.stem)
    except (OndeviceError, OSError):
        return False
    return True
