"""Helpers shared by the firmware tests: builds of the C core, a driver for the codec test program, a pipe
transport to the host agent, and the Python twin of the test-fixture model."""
from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np

from ondevice.profiling.transports import Transport

REPO = Path(__file__).resolve().parents[1]
FW = REPO / "firmware"


def make(*targets: str, **vars: str) -> None:
    """Run the firmware Makefile; fail the test with the compiler's message on error."""
    cmd = ["make", "-s", "-C", str(FW), "-j2", f"PYTHON={sys.executable}", *targets,
           *[f"{k}={v}" for k, v in vars.items()]]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"


class HostTest:
    """Line protocol to firmware/hosttest/od_hosttest (one command in, lines up to '.' out)."""

    def __init__(self, exe: Path):
        self.p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, line: str) -> list[str]:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = []
        while True:
            ln = self.p.stdout.readline()
            assert ln, "od_hosttest exited"
            ln = ln.rstrip("\n")
            if ln == ".":
                return out
            out.append(ln)

    def one(self, line: str) -> str:
        (ans,) = self.ask(line)
        return ans

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=10)


class PipeTransport(Transport):
    """The host agent's stdin/stdout as a device byte stream (what a UART is to the MCU build)."""

    def __init__(self, exe: Path):
        self.p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.url = f"pipe://{exe.name}"
        self.board = "host"
        os.set_blocking(self.p.stdout.fileno(), False)

    def read(self, n: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.p.stdout], [], [], max(timeout, 0))
        if not r:
            return b""
        return self.p.stdout.read(n) or b""

    def write(self, data: bytes) -> None:
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# The test-fixture model of firmware/core/testmodel/od_testmodel.c, recomputed independently.
TM_W = np.array([
    [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16],
    [-3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3],
    [127] + [0] * 14 + [-128],
    [2] * 16,
], dtype=np.int64)
TM_B = np.array([100, -50, 0, 7], dtype=np.int64)


def fixture_model_reference(x: np.ndarray) -> np.ndarray:
    acc = TM_B + TM_W @ np.asarray(x, np.int64).reshape(16)
    y = np.clip((acc * 3 + 64) >> 7, -128, 127)
    return np.clip(y + 5, -128, 127).astype(np.int8)
