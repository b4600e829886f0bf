"""Build a generated model library with the host C compiler and run it through ctypes."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.cache import cache_dir
from ondevice.errors import ExportError, ToolMissingError, VerifyError
from ondevice.fsutil import atomic_path

_DTYPES = {0: "int8", 1: "int16", 2: "int32", 3: "uint8", 4: "float32"}
_STATUS = {0: "OD_OK", 1: "OD_ERR_BAD_PARAM", 2: "OD_ERR_UNSUPPORTED", 3: "OD_ERR_INTERNAL"}


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("rank", ctypes.c_uint8), ("shape", ctypes.c_int32 * 5),
                ("scale", ctypes.c_float), ("zero_point", ctypes.c_int32), ("bytes", ctypes.c_uint32),
                ("dtype", ctypes.c_uint8)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("sha256_hex", ctypes.c_char_p), ("arena_bytes", ctypes.c_uint32),
                ("flash_weight_bytes", ctypes.c_uint32), ("n_inputs", ctypes.c_uint8), ("n_outputs", ctypes.c_uint8),
                ("inputs", ctypes.POINTER(_TensorInfo)), ("outputs", ctypes.POINTER(_TensorInfo)),
                ("n_ops", ctypes.c_uint32), ("macs", ctypes.c_uint64)]


def library_sources(lib_dir: Path) -> list[Path]:
    return sorted(lib_dir.glob("*.c")) + sorted((lib_dir / "kernels").glob("*.c"))


def build_host(lib_dir: str | Path, variant: str = "opt", cc: str | None = None) -> Path:
    """Compile the library in ``lib_dir`` into a shared object (cached by content); return its path.

    ``variant`` is ``"opt"`` (optimised kernels, portable SIMD twins on the host) or ``"ref"``.
    """
    lib_dir = Path(lib_dir)
    if variant not in ("opt", "ref"):
        raise ValueError(f"variant must be 'opt' or 'ref', not {variant!r}")
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise ToolMissingError(f"C compiler {cc!r} not found", "apt-get install gcc (or set CC)")
    srcs = library_sources(lib_dir)
    if not (lib_dir / "od_model.c").is_file():
        raise ExportError(f"{lib_dir} is not a generated MCU library (no od_model.c)",
                          "run: ondevice export --target mcu")
    flags = ["-std=c99", "-O2", "-fPIC", "-shared", "-Wall", "-Wno-unused-function",
             f"-I{lib_dir}", f"-I{lib_dir / 'kernels'}"]
    if variant == "ref":
        flags.append("-DOD_KERNELS_REFERENCE")
    h = hashlib.sha256(" ".join([cc] + flags[:-2]).encode())
    for f in srcs + sorted(lib_dir.glob("**/*.h")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    out = cache_dir("mcu-host") / h.hexdigest()[:24] / "libodmodel.so"
    if out.is_file():
        return out
    with atomic_path(out) as tmp:
        r = subprocess.run([cc, *flags, "-o", str(tmp), *map(str, srcs)], capture_output=True, text=True)
        if r.returncode != 0:
            raise ExportError(f"host build of {lib_dir.name} failed: {r.stderr.strip()[-800:]}",
                              "re-export the library; if it persists, report the compiler message")
    return out


class HostModel:
    """A generated model loaded from its host shared library."""

    def __init__(self, so_path: str | Path):
        self.path = Path(so_path)
        self._lib = ctypes.CDLL(str(self.path))
        lib = self._lib
        lib.od_model_info.restype = ctypes.POINTER(_ModelInfo)
        lib.od_model_input.restype = ctypes.c_void_p
        lib.od_model_input.argtypes = [ctypes.c_int]
        lib.od_model_output.restype = ctypes.c_void_p
        lib.od_model_output.argtypes = [ctypes.c_int]
        lib.od_model_invoke.restype = ctypes.c_int
        lib.od_model_op_name.restype = ctypes.c_char_p
        lib.od_model_op_name.argtypes = [ctypes.c_uint32]
        info = lib.od_model_info().contents
        self.name = info.name.decode()
        self.sha256 = info.sha256_hex.decode()
        self.arena_bytes = int(info.arena_bytes)
        self.weight_bytes = int(info.flash_weight_bytes)
        self.n_ops = int(info.n_ops)
        self.macs = int(info.macs)
        self.inputs = [self._spec(info.inputs[k]) for k in range(info.n_inputs)]
        self.outputs = [self._spec(info.outputs[k]) for k in range(info.n_outputs)]

    @staticmethod
    def _spec(t: _TensorInfo) -> dict:
        return {"name": t.name.decode(), "shape": [int(t.shape[d]) for d in range(t.rank)],
                "dtype": _DTYPES[int(t.dtype)], "scale": float(t.scale), "zero_point": int(t.zero_point),
                "bytes": int(t.bytes)}

    def op_names(self) -> list[str]:
        return [self._lib.od_model_op_name(k).decode() for k in range(self.n_ops)]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Copy inputs into the arena, invoke, copy outputs out (arrays in each tensor's dtype)."""
        if len(inputs) != len(self.inputs):
            raise VerifyError(f"model takes {len(self.inputs)} inputs, got {len(inputs)}", "pass one array per input")
        for k, (spec, x) in enumerate(zip(self.inputs, inputs)):
            a = np.ascontiguousarray(x, dtype=spec["dtype"])
            if a.nbytes != spec["bytes"]:
                raise VerifyError(f"input {k} has {a.nbytes} bytes, model expects {spec['bytes']} {spec['shape']}",
                                  "reshape the input to the model's input shape")
            ctypes.memmove(self._lib.od_model_input(k), a.ctypes.data, a.nbytes)
        st = self._lib.od_model_invoke()
        if st != 0:
            raise VerifyError(f"od_model_invoke returned {_STATUS.get(st, st)}", "a kernel rejected its parameters")
        outs = []
        for k, spec in enumerate(self.outputs):
            buf = (ctypes.c_int8 * spec["bytes"]).from_address(self._lib.od_model_output(k))
            outs.append(np.frombuffer(bytes(buf), dtype=spec["dtype"]).reshape(spec["shape"]).copy())
        return outs


def measure_flash(lib_dir: str | Path, cpu: str = "cortex-m4") -> dict:
    """Flash of the library on a Cortex-M: .text + .rodata + .data of the linked code reachable from the API.

    Built with arm-none-eabi-gcc -O2 and --gc-sections so unused kernels are not counted. Without the
    toolchain, the weights alone are reported and labelled ``modelled``.
    """
    lib_dir = Path(lib_dir)
    gcc, size = "arm-none-eabi-gcc", "arm-none-eabi-size"
    summary = json.loads((lib_dir / "model.json").read_text())
    if shutil.which(gcc) is None or shutil.which(size) is None:
        return {"flash_bytes": summary["weight_bytes"], "source": "modelled: weights only (no arm-none-eabi-gcc)"}
    fpu = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] if cpu == "cortex-m4" else []
    api = ["od_model_info", "od_model_input", "od_model_output", "od_model_set_op_hook", "od_model_op_name"]
    with tempfile.TemporaryDirectory() as d:
        elf = Path(d) / "model.elf"
        cmd = [gcc, f"-mcpu={cpu}", "-mthumb", *fpu, "-std=c99", "-O2", "-ffunction-sections", "-fdata-sections",
               f"-I{lib_dir}", f"-I{lib_dir / 'kernels'}", "--specs=nano.specs", "-nostartfiles",
               "-Wl,--gc-sections", "-Wl,-e,od_model_invoke", *[f"-Wl,--undefined={a}" for a in api],
               "-o", str(elf), *map(str, library_sources(lib_dir))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ExportError(f"cross build of {lib_dir.name} for {cpu} failed: {r.stderr.strip()[-600:]}",
                              "report the compiler message; the host build may still work")
        r = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True)
    sections = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    text, rodata, data = sections.get(".text", 0), sections.get(".rodata", 0), sections.get(".data", 0)
    return {"flash_bytes": text + rodata + data, "text": text, "rodata": rodata, "data": data,
            "bss": sections.get(".bss", 0), "cpu": cpu,
            "source": f"measured: arm-none-eabi-size of the {cpu} -O2 link (gc-sections)"}
