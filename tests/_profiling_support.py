"""Tiny artifacts for the profiler tests, made by litert-torch / ExecuTorch at test time (cached per process)."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

_DIR = Path(tempfile.mkdtemp(prefix="od-prof-fixtures-"))
atexit.register(shutil.rmtree, _DIR, True)


def _module():
    import torch
    import torch.nn as nn

    class Tiny(nn.Module):
        """Features [1,1,49,40] -> [1,4]: the frontend's shape, small enough to convert in seconds."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(40, 4)

        def forward(self, x):
            return torch.relu(self.fc(x.mean(dim=2).flatten(1)))

    return Tiny().eval(), (torch.randn(1, 1, 49, 40),)


@functools.cache
def tiny_tflite() -> Path:
    import litert_torch
    m, ex = _module()
    path = _DIR / "tiny_tflite_fp32.tflite"
    litert_torch.convert(m, ex).export(str(path))
    return path


@functools.cache
def tiny_pte() -> Path:
    import torch
    from executorch.exir import to_edge
    m, ex = _module()
    path = _DIR / "tiny_executorch_fp32.pte"
    path.write_bytes(to_edge(torch.export.export(m, ex)).to_executorch().buffer)
    return path


def reference_outputs(path: Path, runtime: str, inputs):
    """What the host runtime itself computes for ``inputs``: the truth a device's outputs are checked against."""
    from ondevice.runtimes.base import get_runtime
    return get_runtime(runtime).load(path).run(inputs)
