"""LiteRT (TensorFlow Lite) interpreter on the host: runs ``.tflite`` artifacts (tflite and edgetpu targets).

Uses the default op resolver (optimised kernels + XNNPACK): its BUILTIN_REF int8 SUM kernel is wrong.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes._guard import guarded_load
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec


def spec_from_detail(d: dict) -> TensorSpec:
    """LiteRT tensor detail dict -> TensorSpec (per-tensor quantization; None scale for float tensors)."""
    scale, zp = d.get("quantization", (0.0, 0))
    q = scale != 0.0 and np.issubdtype(d["dtype"], np.integer)
    return TensorSpec(name=d["name"], shape=[int(x) for x in d["shape"]], dtype=np.dtype(d["dtype"]).name,
                      scale=float(scale) if q else None, zero_point=int(zp) if q else None)


class LiteRTModel(LoadedModel):
    """A ``.tflite`` loaded in ``ai_edge_litert.interpreter.Interpreter``."""

    def __init__(self, data: bytes, name: str, preserve_all_tensors: bool = False, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter
        try:
            self.interp = Interpreter(model_content=data, num_threads=num_threads,
                                      experimental_preserve_all_tensors=preserve_all_tensors)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ConfigError(f"{name} is not a loadable TFLite model ({str(e).splitlines()[0][:160]})",
                              "the file may be truncated or corrupt; re-export it with `ondevice export`") from None
        self._in = self.interp.get_input_details()
        self._out = self.interp.get_output_details()
        self.inputs = [spec_from_detail(d) for d in self._in]
        self.outputs = [spec_from_detail(d) for d in self._out]
        self.name = name

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._in):
            raise VerifyError(f"{self.name} takes {len(self._in)} inputs, got {len(inputs)}")
        for d, x in zip(self._in, inputs):
            self.interp.set_tensor(d["index"], np.ascontiguousarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        self.interp.invoke()
        return [self.interp.get_tensor(d["index"]).copy() for d in self._out]

    def tensors(self) -> list[dict]:
        """Every tensor after the last ``run`` (needs ``preserve_all_tensors=True``): index, name, spec, value."""
        out = []
        for d in self.interp.get_tensor_details():
            try:
                value = self.interp.get_tensor(d["index"])
            except ValueError:  # tensors with no data (e.g. optional inputs)
                continue
            out.append({"index": d["index"], "name": d["name"], "spec": spec_from_detail(d), "value": value.copy()})
        return out


@RUNTIMES.register("litert")
class LiteRTRuntime(Runtime):
    """LiteRT interpreter (ai-edge-litert) on the host CPU."""
    extensions = (".tflite",)

    def available(self) -> tuple[bool, str]:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError as e:
            return False, f"ai-edge-litert is not installed ({e})"
        return True, ""

    def load(self, path: str | Path, preserve_all_tensors: bool = False, num_threads: int | None = None) -> LiteRTModel:
        """Load a ``.tflite``. ``preserve_all_tensors`` keeps intermediates for layer-by-layer comparison."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path} does not exist", "run `ondevice export --target tflite` first")
        data = path.read_bytes()
        return guarded_load(lambda: LiteRTModel(data, path.name, preserve_all_tensors, num_threads), path.name,
                            ".tflite", data, "LiteRT")
