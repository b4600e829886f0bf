"""mcu-host: a generated MCU library (``<model>_mcu_int8/``) built with the host C compiler and run via ctypes.

The same C that goes to the microcontroller, compiled for this machine, so `verify` checks the generated code
itself (its kernels, arena plan and quantization tables) against the TFLM interpreter.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec


class MCUHostModel(LoadedModel):
    """The generated library as a host shared object (``variant``: ``opt`` or ``ref`` kernels)."""

    def __init__(self, lib_dir: Path, variant: str = "opt"):
        from ondevice.mcu.build import HostModel, build_host
        self.lib_dir = lib_dir
        self.variant = variant
        self._m = HostModel(build_host(lib_dir, variant))
        self.inputs = [self._spec(s) for s in self._m.inputs]
        self.outputs = [self._spec(s) for s in self._m.outputs]

    @staticmethod
    def _spec(s: dict) -> TensorSpec:
        if s["dtype"] == "float32":  # float I/O (QUANTIZE/DEQUANTIZE inside): the C API says scale 0
            return TensorSpec(name=s["name"], shape=list(s["shape"]), dtype="float32")
        return TensorSpec(name=s["name"], shape=list(s["shape"]), dtype=s["dtype"], scale=s["scale"],
                          zero_point=s["zero_point"])

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._m.run(inputs)

    def memory_stats(self) -> dict:
        return {"arena_bytes": self._m.arena_bytes, "weight_bytes": self._m.weight_bytes}


@RUNTIMES.register("mcu-host")
class MCUHostRuntime(Runtime):
    """Generated MCU C code built with host gcc (bit-exact twin of the firmware build)."""
    extensions = ()  # the artifact is a folder; picked by its manifest's target "mcu"

    def available(self) -> tuple[bool, str]:
        if shutil.which("gcc") is None:
            return False, "gcc is not installed (apt-get install gcc)"
        return True, ""

    def load(self, path: str | Path, variant: str = "opt") -> MCUHostModel:
        path = Path(path)
        if not (path / "od_model.c").is_file():
            raise ConfigError(f"{path} is not an MCU library folder (no od_model.c)",
                              "run `ondevice export --target mcu` first")
        return MCUHostModel(path, variant)
