"""Capture what C code writes to a file descriptor (stderr by default): native libraries (TFLM, ExecuTorch,
TensorFlow) report through fd 2, below Python's ``sys.stderr``."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def capture_fd(fd: int = 2):
    """Redirect a C-level fd (stderr by default) into a buffer; yields a list that gets the text on exit."""
    captured: list[str] = []
    if fd == 1:
        sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))
