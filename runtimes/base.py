"""The one interface every host runtime adapter implements. `verify` and `sim://` both use it.

A new runtime is one file in this folder that subclasses :class:`Runtime` and registers itself::

    @RUNTIMES.register("litert")
    class LiteRTRuntime(Runtime):
        extensions = (".tflite",)
        def load(self, path): ...
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError
from ondevice.registry import Registry


@dataclass
class TensorSpec:
    """One input or output: name, static shape, numpy dtype name, and quantization (None when float)."""
    name: str
    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> this tensor's dtype (identity cast for float tensors)."""
        if self.scale is None:
            return np.asarray(x, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, np.float64) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return np.asarray(q, np.float32)
        return ((np.asarray(q, np.int32) - self.zero_point) * self.scale).astype(np.float32)


class LoadedModel:
    """A model loaded on a runtime. ``run`` takes and returns arrays in the artifact's own dtypes."""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def run_float(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Quantize float inputs, run, dequantize outputs."""
        raw = self.run([s.quantize(x) for s, x in zip(self.inputs, inputs)])
        return [s.dequantize(y) for s, y in zip(self.outputs, raw)]

    def memory_stats(self) -> dict:
        """Runtime-reported memory, e.g. {"arena_bytes": N}; empty when the runtime cannot say."""
        return {}


class Runtime:
    name: str = ""
    extensions: tuple[str, ...] = ()

    def available(self) -> tuple[bool, str]:
        """(True, "") if this runtime can run here, else (False, reason)."""
        return True, ""

    def load(self, path: str | Path) -> LoadedModel:  # pragma: no cover - interface
        raise NotImplementedError


def _check(key: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise TypeError(f"runtime {key!r} must subclass Runtime")
    cls.name = key


RUNTIMES: Registry[type[Runtime]] = Registry("runtime", _check, package="ondevice.runtimes", skip=("base",),
                                             entry_points="ondevice.runtimes")


def get_runtime(name: str) -> Runtime:
    return RUNTIMES.get(name)()


def runtime_names() -> list[str]:
    return RUNTIMES.names()


def runtime_for(path: str | Path) -> Runtime:
    """Pick the runtime for an artifact by its extension."""
    ext = "".join(Path(path).suffixes[-1:])
    for name, cls in RUNTIMES.items():
        if ext in cls.extensions:
            return cls()
    raise ConfigError(f"no runtime runs {Path(path).name!r}", f"known runtimes: {', '.join(RUNTIMES.names())}")
