"""A man-in-the-middle TCP relay for the profile link: rewrites device frames field by field, with valid CRCs.

The host connects to ``relay.url`` (``socket://127.0.0.1:PORT``); the relay forwards host bytes to an upstream
transport (``sim://...`` or ``qemu://...``) unchanged and passes every device frame through its rules. A rule
matches a frame type and some of its occurrences, and returns a new payload (and optionally a new type); the
frame is re-encoded with a correct CRC, so only the host's field validation can catch it.
"""
from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import MsgType as T

R = P.reply_type


@dataclass
class Rule:
    """Rewrite frames of ``type`` (a wire type code) that pass ``when``: the occurrences in ``nth`` (0-based, among
    those passing ``when``), or all of them when ``nth`` is None."""
    type: int
    edit: Callable[[P.Frame], bytes]
    nth: set[int] | None = None
    new_type: int | None = None
    flags: int | None = None
    when: Callable[[P.Frame], bool] | None = None
    seen: int = 0
    applied: int = 0

    def apply(self, f: P.Frame) -> P.Frame:
        if self.when is not None and not self.when(f):
            return f
        k = self.seen
        self.seen += 1
        if self.nth is not None and k not in self.nth:
            return f
        self.applied += 1
        t = self.new_type if self.new_type is not None else f.type
        return P.Frame(t, f.seq, self.edit(f), f.flags if self.flags is None else self.flags, f.version)


# -- payload editors ---------------------------------------------------------------------------------------------

def fields(**changes) -> Callable[[P.Frame], bytes]:
    """Set named scalar fields (the frame's own schema) to new values."""
    def edit(f: P.Frame) -> bytes:
        v = P.unpack(f)
        v.update(changes)
        return P.pack_fields(P.schema_for(f.type), v)
    return edit


def _pack_tensor(t: dict) -> bytes:
    code = t["dtype"] if isinstance(t["dtype"], int) else P.DTYPE_CODES[t["dtype"]]
    dims = list(t["shape"])
    out = struct.pack("<BB", code, t.get("ndim", len(dims))) + struct.pack(f"<{len(dims)}I", *dims)
    out += struct.pack("<fi", t.get("scale") or 0.0, t.get("zero_point") or 0)
    name = t.get("name", "").encode()
    return out + bytes([len(name)]) + name


def tensor(k: int, **changes) -> Callable[[P.Frame], bytes]:
    """MODEL_INFO reply: change tensor ``k`` (inputs first): dtype (an int code), shape, ndim, scale, zero_point."""
    def edit(f: P.Frame) -> bytes:
        v = P.unpack(f)
        ts = v.pop("tensors")
        ts[k] = dict(ts[k], **changes)
        head = P.pack_fields([s for s in P.schema_for(f.type) if s[0] != "tensors"], v)
        return head + b"".join(_pack_tensor(t) for t in ts)
    return edit


def raw(fn: Callable[[bytes], bytes]) -> Callable[[P.Frame], bytes]:
    return lambda f: fn(f.payload)


def run_unit(unit: int) -> Callable[[P.Frame], bytes]:
    return fields(unit=unit)


def same() -> Callable[[P.Frame], bytes]:
    return lambda f: f.payload


# -- the relay ---------------------------------------------------------------------------------------------------

@dataclass
class Relay:
    upstream: object  # an open Transport to the real device
    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self.conn: socket.socket | None = None
        self._stop = threading.Event()
        self._buf = bytearray()
        self.frames_rx = 0
        self.rewritten = 0
        self.originals: list[P.Frame] = []
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def _serve(self) -> None:
        self.ls.settimeout(10)
        try:
            self.conn, _ = self.ls.accept()
        except OSError:
            return
        t = threading.Thread(target=self._down, daemon=True)
        t.start()
        self._threads.append(t)
        self.conn.settimeout(0.05)
        while not self._stop.is_set():  # host -> device, unchanged
            try:
                data = self.conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                self.upstream.write(data)
            except Exception:  # noqa: BLE001 - the device went away: the host sees silence
                break

    def _down(self) -> None:
        while not self._stop.is_set():  # device -> host, through the rules
            try:
                data = self.upstream.read(4096, 0.05)
            except Exception:  # noqa: BLE001
                break
            if not data:
                continue
            out = self._rewrite(data)
            if out:
                try:
                    self.conn.sendall(out)
                except OSError:
                    break

    def _rewrite(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while True:
            z = self._buf.find(0)
            if z < 0:
                return bytes(out)
            enc = bytes(self._buf[:z])
            del self._buf[:z + 1]
            if not enc:
                out += b"\x00"
                continue
            try:
                f = P.decode_body(enc)
            except P.FrameError:
                out += enc + b"\x00"
                continue
            self.frames_rx += 1
            self.originals.append(f)  # what the device really said, before any rule
            for r in self.rules:
                if r.type == f.type:
                    g = r.apply(f)
                    if g is not f:
                        self.rewritten += 1
                        f = g
            out += P.encode_frame(f)

    def device_timings(self) -> dict[int, int]:
        """Run index -> timing, from the device's own unmodified RUN and GET_TIMINGS frames (one batch)."""
        out: dict[int, int] = {}
        for f in self.originals:
            if f.type in (R(T.RUN), R(T.GET_TIMINGS)):
                v = P.unpack(f)
                for k, t in enumerate(v["timings"]):
                    assert out.setdefault(v["first_index"] + k, t) == t  # the device re-sends what it stored
        return out

    def close(self) -> None:
        self._stop.set()
        for s in (self.conn, self.ls):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=2)
        self.upstream.close()
