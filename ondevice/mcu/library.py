"""Write the generated model library folder: od_model.c, the API header and the kernels it needs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ondevice.fsutil import atomic_path
from ondevice.mcu.codegen import Generated, generate
from ondevice.mcu.reader import Graph, read_tflite

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
KERNELS_DIR = FIRMWARE_DIR / "kernels"
API_HEADER = FIRMWARE_DIR / "include" / "od_model_api.h"
SUMMARY = "model.json"
SOURCE_TFLITE = "source.tflite"


def _io(g: Graph, idxs) -> list[dict]:
    out = []
    for i in idxs:
        t = g.tensors[i]
        s, zp = t.qparams()
        out.append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": s, "zero_point": zp})
    return out


def write_library(tflite, out_dir: str | Path, name: str | None = None) -> dict:
    """Generate the C library for ``tflite`` (path or bytes) into ``out_dir`` atomically; return its summary.

    The folder is self-contained: compile ``*.c`` and ``kernels/*.c`` with ``-I. -Ikernels`` on any C99 compiler.
    """
    out_dir = Path(out_dir)
    data = tflite if isinstance(tflite, (bytes, bytearray)) else Path(tflite).read_bytes()
    g = read_tflite(bytes(data), name=name or (None if isinstance(tflite, (bytes, bytearray)) else Path(tflite).stem))
    gen: Generated = generate(g, name or g.name)
    summary = {
        "model": name or g.name,
        "source_sha256": g.sha256,
        "tflite_bytes": g.tflite_bytes,
        "arena_bytes": gen.arena_bytes,
        "weight_bytes": gen.weight_bytes,
        "macs": gen.macs,
        "n_ops": gen.n_ops,
        "op_names": gen.op_names,
        "op_macs": gen.op_macs,
        "ops": gen.ops,
        "inputs": _io(g, g.inputs),
        "outputs": _io(g, g.outputs),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "od_model.c").write_text(gen.source)
        shutil.copy2(API_HEADER, tmp / API_HEADER.name)
        kdir = tmp / "kernels"
        kdir.mkdir()
        for f in sorted(KERNELS_DIR.glob("od_*.[ch]")):
            shutil.copy2(f, kdir / f.name)
        (tmp / "model.mk").write_text(
            "# Sources and include paths of this generated model library (include from a firmware Makefile).\n"
            "OD_MODEL_DIR ?= $(dir $(lastword $(MAKEFILE_LIST)))\n"
            "OD_MODEL_SRCS := $(OD_MODEL_DIR)od_model.c $(wildcard $(OD_MODEL_DIR)kernels/*.c)\n"
            "OD_MODEL_INC := -I$(OD_MODEL_DIR) -I$(OD_MODEL_DIR)kernels\n")
        # The source tflite travels with the C so verify can always re-run the TFLM reference.
        (tmp / SOURCE_TFLITE).write_bytes(bytes(data))
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_summary(lib_dir: str | Path) -> dict:
    return json.loads((Path(lib_dir) / SUMMARY).read_text())
