"""The tflite-micro Python interpreter as the MCU reference: run vectors, read its arena size."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Sequence

import numpy as np

from ondevice.errors import VerifyError


@contextlib.contextmanager
def _capture_fd2():
    """TFLM reports through C stderr; capture fd 2 so its text can be parsed (and kept off the console)."""
    tmp = tempfile.TemporaryFile(mode="w+b")
    saved = os.dup(2)
    os.dup2(tmp.fileno(), 2)
    box = {"text": ""}
    try:
        yield box
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        tmp.seek(0)
        box["text"] = tmp.read().decode(errors="replace")
        tmp.close()


class TflmReference:
    """One loaded TFLM interpreter for a tflite."""

    def __init__(self, tflite: bytes, arena_size: int = 4 << 20):
        from tflite_micro.python.tflite_micro import runtime

        from ondevice.mcu.reader import read_tflite
        self.n_outputs = len(read_tflite(tflite).outputs)
        with _capture_fd2() as log:
            try:
                self.interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena_size)
                err = None
            except Exception as e:  # noqa: BLE001 - reported with TFLM's own text below
                err = e
        if err is not None:
            raise VerifyError(f"TFLM interpreter could not load the model: {err}; {log['text'].strip()[-400:]}",
                              "check the tflite is fully int8 and uses TFLM-supported ops")

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # TFLM may reuse input memory during Invoke: always set every input before each invoke.
        for k, x in enumerate(inputs):
            self.interp.set_input(np.ascontiguousarray(x), k)
        with _capture_fd2() as log:
            try:
                self.interp.invoke()
                err = None
            except Exception as e:  # noqa: BLE001
                err = e
        if err is not None:
            raise VerifyError(f"TFLM invoke failed: {err}; {log['text'].strip()[-400:]}", "check the model")
        return [np.array(self.interp.get_output(k)) for k in range(self.n_outputs)]

    def arena_bytes(self) -> int:
        """Bytes TFLM's planner allocated in its arena (parsed from print_allocations)."""
        with _capture_fd2() as log:
            self.interp.print_allocations()
        m = re.search(r"Arena allocation total (\d+) bytes", log["text"])
        if not m:
            raise VerifyError("TFLM did not report its arena size", "update tflite-micro")
        return int(m.group(1))
