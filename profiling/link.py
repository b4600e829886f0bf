"""Frames over a transport: the layer under :class:`~ondevice.profiling.session.DeviceSession`.

:class:`Link` writes encoded frames, reads whole frames and watches for BOOT (a reset) and LOG (device log lines);
:func:`device_error` turns an ERROR frame into a :class:`~ondevice.errors.DeviceError` with the table's message.
"""
from __future__ import annotations

import collections
import time

from ondevice.errors import DeviceError, DeviceResetError, ProtocolError
from ondevice.profiling import protocol as P
from ondevice.profiling import validation as V
from ondevice.profiling.protocol import ErrorCode, MsgType as T


class Link:
    """Frames over a transport: writes encoded frames, reads whole frames, watches for BOOT and LOG."""

    def __init__(self, transport):
        self.t = transport
        self.dec = P.StreamDecoder()
        self.pending: collections.deque[P.Frame] = collections.deque()
        self.expect_boot = False
        self.boots: list[dict] = []
        self.logs: list[str] = []
        self.stale = 0
        self.step = "connecting"
        self.first_write = True
        self.started = False  # BOOT before the first handshake is the device coming up, not a reset

    def send(self, type_: int, seq: int, payload: bytes = b"") -> None:
        wire = P.encode(type_, seq, payload)
        if self.first_write:  # a leading delimiter flushes whatever the device half-received before us
            wire = b"\x00" + wire
            self.first_write = False
        self.t.write(wire)

    def recv(self, timeout: float) -> P.Frame | None:
        """The next frame, or None after ``timeout`` s of silence. An unexpected BOOT raises DeviceResetError."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                f = self.pending.popleft()
                if f.type == T.BOOT:
                    v = safe_unpack(f)
                    self.boots.append(v)
                    if self.expect_boot:
                        return f
                    if not self.started:
                        continue
                    reason = v.get("reset_reason", 0xFF)
                    name = P.ResetReason(reason).name.lower() if reason in P.ResetReason._value2member_map_ else reason
                    raise DeviceResetError(
                        f"the device reset during {self.step} (reset reason: {name})",
                        "check its power supply, watchdog and stack size; the runs finished before the reset "
                        "were saved")
                if f.type == T.LOG:
                    v = safe_unpack(f)
                    self.logs.append(bytes(v.get("message", b"")).decode("utf-8", "replace"))
                    continue
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.t.read(4096, left)
            if data:
                self.pending.extend(self.dec.feed(data))


def check_received(v: dict, total: int) -> None:
    if v["received"] > total:
        raise V.violation("LOAD_MODEL_CHUNK_REPLY", "received", v["received"], f"the model has {total} bytes")


def safe_unpack(f: P.Frame) -> dict:
    try:
        return P.unpack(f)
    except ProtocolError:
        return {}


def device_error(f: P.Frame, step: str) -> DeviceError:
    """An ERROR frame -> DeviceError with the table's message and hint."""
    v = safe_unpack(f)
    code = v.get("code", ErrorCode.INTERNAL)
    msg, hint = P.describe_error(code)
    name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"0x{code:04x}"
    text = bytes(v.get("message", b"")).decode("utf-8", "replace").strip()
    detail = f": {text}" if text else ""
    return DeviceError(f"{step}: {msg} ({name}{detail})", hint, code=code)
