"""The host side of the EEMBC / MLPerf Tiny DUT commands (the runner's role), over any device transport.

Written from the runner's public description of the DUT's UART protocol, not from its code:

- the host sends an ASCII command ended by ``%`` (``name%``, ``profile%``, ``db load N%``, ``db HEX%``,
  ``infer N W%``, ``results%``);
- the DUT answers with CRLF lines: ``m-...`` for information, ``e-[...]`` for errors, and ``m-ready`` when the
  command is done;
- ``infer N W`` runs W warm-ups, then N timed inferences between two ``m-lap-us-T`` timestamps (performance
  mode), then prints ``m-results-[v0,v1,...]``.

The firmware (firmware/core/od_eembc.c) prints each output element dequantized with 6 decimals;
:func:`expected_results` formats a RUN's raw output bytes the same way, so the two compare as strings.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ondevice.errors import DeviceError, TransportError

READY = "m-ready"
_LAP = re.compile(r"^m-lap-us-(\d+)$")
_RESULTS = re.compile(r"^m-results-\[(.*)\]$")


@dataclass
class InferResult:
    """What ``infer N W`` printed: the two timestamps, the elapsed time and the result vector (as text too)."""

    inferences: int
    warmups: int
    laps_us: list[int] = field(default_factory=list)
    results_text: list[str] = field(default_factory=list)

    @property
    def elapsed_us(self) -> int:
        return self.laps_us[-1] - self.laps_us[0] if len(self.laps_us) >= 2 else 0

    @property
    def per_inference_us(self) -> float:
        return self.elapsed_us / self.inferences

    @property
    def results(self) -> list[float]:
        return [float(v) for v in self.results_text]


class EembcHost:
    """Drive a DUT with EEMBC commands over a :class:`~ondevice.profiling.transports.Transport`."""

    def __init__(self, transport, timeout: float = 30.0, chunk_bytes: int = 64):
        self.t = transport
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes  # bytes per `db HEX%` line (the DUT takes lines up to 255 characters)
        self._buf = b""

    def _line(self, deadline: float) -> str:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"the DUT sent no {READY} within {self.timeout:.0f} s",
                                     "check it runs firmware with the EEMBC commands and the baud rate")
            self._buf += self.t.read(4096, min(left, 0.5))
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("ascii", errors="replace").strip("\r\x00")

    def command(self, cmd: str) -> list[str]:
        """Send ``cmd%``; return the ``m-``/``e-`` lines before ``m-ready``. An ``e-`` line raises DeviceError."""
        self.t.write(cmd.encode("ascii") + b"%")
        deadline = time.monotonic() + self.timeout
        lines: list[str] = []
        while True:
            line = self._line(deadline)
            if line == READY:
                break
            if line.startswith(("m-", "e-")):  # anything else is boot noise (the framed BOOT message)
                lines.append(line)
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise DeviceError(f"the DUT refused {cmd!r}: {errors[0]}", "see the EEMBC command list (help%)")
        return lines

    def name(self) -> str:
        (line,) = [ln for ln in self.command("name") if ln.startswith("m-name-")]
        return line

    def profile(self) -> dict:
        out = {}
        for ln in self.command("profile"):
            m = re.match(r"^m-(\w+)-\[(.*)\]$", ln)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    def load(self, data: bytes) -> None:
        """``db load N`` then ``db HEX`` lines until the DUT says ``m-load-done``."""
        lines = self.command(f"db load {len(data)}")
        if not any(f"Expecting {len(data)} bytes" in ln for ln in lines):
            raise DeviceError(f"the DUT did not accept a {len(data)}-byte load: {lines}")
        done = False
        for i in range(0, len(data), self.chunk_bytes):
            done = "m-load-done" in self.command("db " + data[i:i + self.chunk_bytes].hex())
        if not done:
            raise DeviceError("the DUT never said m-load-done", "the input size may not match the model")

    def infer(self, n: int, warmups: int = 0) -> InferResult:
        r = InferResult(n, warmups)
        for ln in self.command(f"infer {n} {warmups}"):
            if m := _LAP.match(ln):
                r.laps_us.append(int(m.group(1)))
            elif m := _RESULTS.match(ln):
                r.results_text = m.group(1).split(",") if m.group(1) else []
        return r

    def results(self) -> list[str]:
        for ln in self.command("results"):
            if m := _RESULTS.match(ln):
                return m.group(1).split(",") if m.group(1) else []
        raise DeviceError("the DUT printed no m-results line")


def _f6(v: np.float32) -> str:
    """The firmware's put_f6: the exact value of the float32, 6 decimals, half away from zero."""
    v = np.float32(v)
    if np.isnan(v):
        return "nan"
    sign = "-" if np.signbit(v) else ""
    if np.isinf(v) or abs(float(v)) >= 2.0 ** 43:
        return sign + "inf"
    r = math.floor(Fraction(abs(float(v))) * 10 ** 6 + Fraction(1, 2))
    return f"{sign if r else ''}{r // 1000000}.{r % 1000000:06d}"


def expected_results(outputs: list[bytes], specs: list[dict]) -> list[str]:
    """The ``m-results`` elements a DUT must print for these raw output tensors (MODEL_INFO specs: dtype, scale,
    zero_point): float32 ``(q - zero_point) * scale``, formatted as the firmware does."""
    out: list[str] = []
    for raw, spec in zip(outputs, specs):
        dt = np.dtype(spec["dtype"])
        q = np.frombuffer(raw, dt)
        if dt.kind == "f":
            vals = q.astype(np.float32)
        else:
            vals = (q.astype(np.int32) - np.int32(spec["zero_point"])).astype(np.float32) * np.float32(spec["scale"])
        out += [_f6(v) for v in vals]
    return out
