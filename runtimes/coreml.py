"""Core ML on the host through coremltools. ``predict`` exists only on macOS; elsewhere the runtime says so."""
from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec

NOT_MACOS = "not run (needs macOS: coremltools predict() runs only there)"
_DTYPE = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "DOUBLE": "float64"}


class CoreMLModel(LoadedModel):
    """An ``.mlpackage`` loaded for prediction (macOS) or for its spec only (elsewhere)."""

    def __init__(self, path: Path, load: bool):
        import coremltools as ct
        try:
            self.ml = ct.models.MLModel(str(path), skip_model_load=not load)
        except Exception as e:  # noqa: BLE001 - coremltools raises plain Exception for bad packages
            raise ConfigError(f"{path.name} is not a loadable Core ML package ({str(e).splitlines()[0][:160]})",
                              "re-export it with `ondevice export --target coreml`") from None
        self.inputs, self.outputs, self.ops = spec_summary(self.ml)
        self.name, self.loaded = path.name, load

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.loaded:
            raise VerifyError(f"{self.name}: {NOT_MACOS}", "run `ondevice verify` on a Mac for Core ML parity")
        feed = {s.name: np.asarray(x, dtype=np.float32).reshape(s.shape) for s, x in zip(self.inputs, inputs)}
        out = self.ml.predict(feed)
        return [np.asarray(out[s.name]) for s in self.outputs]


def spec_summary(mlmodel) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, int]]:
    """Inputs, outputs (from the spec) and MIL op counts of an mlprogram."""
    import coremltools as ct
    spec = mlmodel.get_spec()
    names = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name

    def specs(feats):
        return [TensorSpec(name=f.name, shape=[int(x) for x in f.type.multiArrayType.shape],
                           dtype=_DTYPE.get(names(f.type.multiArrayType.dataType), names(f.type.multiArrayType.dataType).lower()))
                for f in feats]
    ops: Counter = Counter()
    for fn in spec.mlProgram.functions.values():
        for op in fn.block_specializations[fn.opset].operations:
            ops[op.type] += 1
    return specs(spec.description.input), specs(spec.description.output), dict(ops)


@RUNTIMES.register("coreml")
class CoreMLRuntime(Runtime):
    """coremltools MLModel.predict (macOS only; spec inspection everywhere)."""
    extensions = (".mlpackage",)

    def available(self) -> tuple[bool, str]:
        if platform.system() != "Darwin":
            return False, NOT_MACOS
        try:
            import coremltools  # noqa: F401
        except ImportError as e:
            return False, f"coremltools is not installed ({e})"
        return True, ""

    def load(self, path: str | Path) -> CoreMLModel:
        """Load for prediction on macOS; elsewhere load the spec only (inputs/outputs/ops, no ``run``)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path} does not exist", "run `ondevice export --target coreml` first")
        return CoreMLModel(path, load=self.available()[0])
