"""TFLite Micro's Python interpreter: the microcontroller reference for ``.tflite`` files (tflm target).

TFLM prints allocations and errors through C stderr, so fd 2 is captured around each call.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.capture import capture_fd
from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes._guard import guarded_load
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec

ARENA_RE = re.compile(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes")
DEFAULT_ARENA = 1 << 20


def _spec(d: dict, name: str = "") -> TensorSpec:
    qp = d.get("quantization_parameters") or {}
    scales, zps = qp.get("scales", []), qp.get("zero_points", [])
    q = len(scales) > 0 and float(scales[0]) != 0.0
    return TensorSpec(name=str(d.get("name") or name), shape=[int(x) for x in d["shape"]], dtype=np.dtype(d["dtype"]).name,
                      scale=float(scales[0]) if q else None, zero_point=int(zps[0]) if q else None)


class TFLMModel(LoadedModel):
    """A model in the TFLM interpreter. The arena planner reuses the input buffer, so ``run`` sets every input anew."""

    def __init__(self, data: bytes, name: str = "model.tflite", arena_size: int = DEFAULT_ARENA):
        from tflite_micro.python.tflite_micro import runtime
        self.name = name
        try:
            with capture_fd() as log:
                self.interp = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
        except Exception as e:  # noqa: BLE001 - a truncated file fails in struct/flatbuffer code with assorted types
            text = (log[0] if log else "").strip().splitlines()
            why = text[-1] if text else str(e).splitlines()[0]
            raise ConfigError(f"TFLM cannot load {name}: {why[:200]}",
                              "the file may be truncated, use an op TFLM lacks, or need a larger arena") from None
        # The interpreter has no count getter (probing past the end prints to C++ stdout); read it from the model.
        from ondevice.mcu.reader import read_graph
        g = read_graph(data, name)
        self.inputs = [_spec(self.interp.get_input_details(i), g.tensors[t].name) for i, t in enumerate(g.inputs)]
        self.outputs = [_spec(self.interp.get_output_details(i), g.tensors[t].name) for i, t in enumerate(g.outputs)]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise VerifyError(f"{self.name} takes {len(self.inputs)} inputs, got {len(inputs)}")
        for i, (s, x) in enumerate(zip(self.inputs, inputs)):
            self.interp.set_input(np.ascontiguousarray(x, dtype=s.dtype).reshape(s.shape), i)
        try:
            with capture_fd() as log:
                self.interp.invoke()
        except RuntimeError as e:
            raise VerifyError(f"TFLM invoke failed on {self.name}: {(log[0] if log else str(e)).strip()[-200:]}") from None
        return [np.array(self.interp.get_output(i)) for i in range(len(self.outputs))]

    def arena_bytes(self) -> int:
        """Arena actually used, from ``print_allocations`` (the recording allocator's total)."""
        with capture_fd() as log:
            self.interp.print_allocations()
        m = ARENA_RE.search(log[0])
        if not m:
            raise VerifyError(f"TFLM printed no arena total for {self.name}", "tflite-micro's output format changed?")
        return int(m.group(1))

    def allocations_log(self) -> str:
        """The raw ``print_allocations`` text (per-type breakdown)."""
        with capture_fd() as log:
            self.interp.print_allocations()
        return log[0]

    def memory_stats(self) -> dict:
        return {"arena_bytes": self.arena_bytes()}


@RUNTIMES.register("tflm")
class TFLMRuntime(Runtime):
    """tflite-micro's Python interpreter (reference kernels), the MCU reference on the host."""
    # .tflite files go to LiteRT by default; the tflm target's artifacts are picked by manifest.
    extensions = ()

    def available(self) -> tuple[bool, str]:
        try:
            from tflite_micro.python.tflite_micro import runtime  # noqa: F401
        except ImportError as e:
            return False, f"tflite-micro is not installed ({e})"
        return True, ""

    def load(self, path: str | Path, arena_size: int = DEFAULT_ARENA) -> TFLMModel:
        """Load a ``.tflite`` (or the ``.tflite`` kept beside a tflm artifact folder)."""
        path = Path(path)
        if path.is_dir():
            cands = sorted(path.glob("*.tflite"))
            if not cands:
                raise ConfigError(f"{path} holds no .tflite", "re-export with `ondevice export --target tflm`")
            path = cands[0]
        if not path.is_file():
            raise ConfigError(f"{path} does not exist", "run `ondevice export --target tflm` first")
        data = path.read_bytes()
        return guarded_load(lambda: TFLMModel(data, path.name, arena_size), path.name, ".tflite", data, "TFLM")
