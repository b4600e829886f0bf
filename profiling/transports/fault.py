"""``fault://<inner-url>?drop=&corrupt=&dup=&garbage=&stall=&stall_s=&reset_after=&seed=&dir=``: fault injection.

Wraps any transport and damages whole frames (split at the 0x00 delimiter) in both directions:
- ``drop``: probability a frame vanishes;
- ``corrupt``: probability one bit of a frame flips;
- ``dup``: probability a frame arrives twice;
- ``garbage``: probability random bytes (no delimiter) are glued in front of a frame;
- ``stall``: probability the link stalls ``stall_s`` seconds (default 0.3) before a frame;
- ``reset_after``: the device resets after that many host frames (the inner transport's ``reset_device()``
  when it has one, e.g. ``sim://``; otherwise a BOOT frame is injected and later traffic is cut, as on a reboot);
- ``dir``: ``both`` (default), ``tx`` (host -> device) or ``rx`` (device -> host); ``seed`` makes a run repeatable.
Other query keys stay with the inner URL: ``fault://sim://litert?window=1&drop=0.05``.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from ondevice.errors import ConfigError
from ondevice.profiling import protocol as P
from ondevice.profiling.transports import TRANSPORTS, FirmwareTarget, Transport, open_transport, transport_class

FAULT_KEYS = ("drop", "corrupt", "dup", "garbage", "stall", "stall_s", "reset_after", "seed", "dir")


class _Damager:
    """Applies faults to whole frames of one direction of the stream."""

    def __init__(self, owner: "FaultTransport", name: str):
        self.owner, self.name = owner, name
        self.buf = bytearray()

    def process(self, data: bytes) -> bytes:
        o = self.owner
        self.buf += data
        out = bytearray()
        while True:
            z = self.buf.find(0)
            if z < 0:
                break
            frame = bytes(self.buf[:z + 1])
            del self.buf[:z + 1]
            out += o.damage(frame, self.name)
        return bytes(out)


class FaultTransport(Transport):
    def __init__(self, inner: Transport, url: str, params: dict):
        self.inner, self.url = inner, url
        self.bytes_per_s = inner.bytes_per_s
        self.board = inner.board
        try:
            self.p = {k: float(params.get(k, 0)) for k in ("drop", "corrupt", "dup", "garbage", "stall")}
            self.stall_s = float(params.get("stall_s", 0.3))
            self.reset_after = int(params["reset_after"]) if "reset_after" in params else None
            self.rng = random.Random(int(params.get("seed", 0)))
        except ValueError as e:
            raise ConfigError(f"bad fault parameter in {url!r}: {e}", "use numbers, e.g. drop=0.05&seed=1") from None
        self.dir = params.get("dir", "both")
        if self.dir not in ("both", "tx", "rx"):
            raise ConfigError(f"dir must be both, tx or rx, got {self.dir!r}", "e.g. dir=rx")
        self.tx = _Damager(self, "tx")
        self.rx = _Damager(self, "rx")
        self.counts = {k: 0 for k in ("frames_tx", "frames_rx", "drop", "corrupt", "dup", "garbage", "stall",
                                      "reset")}
        self._injected = bytearray()
        self._dead = False

    @staticmethod
    def split(url: str) -> tuple[str, dict]:
        """(the inner URL with its own query keys, the fault parameters)."""
        rest = url.split("://", 1)[1]
        inner, _, q = rest.partition("?")
        pairs = parse_qsl(q, keep_blank_values=True)
        params = {k: v for k, v in pairs if k in FAULT_KEYS}
        passthru = [(k, v) for k, v in pairs if k not in FAULT_KEYS]
        if "://" not in inner:
            raise ConfigError(f"fault:// needs an inner device URL, got {inner!r}",
                              "e.g. fault://sim://litert?drop=0.05&seed=1")
        return inner + ("?" + urlencode(passthru) if passthru else ""), params

    @classmethod
    def open(cls, url: str, *, firmware: Path | None = None) -> "FaultTransport":
        inner_url, params = cls.split(url)
        return cls(open_transport(inner_url, firmware=firmware), url, params)

    @classmethod
    def firmware_for(cls, url: str) -> FirmwareTarget | None:
        """The inner URL's firmware: ``fault://qemu://mps2-an386`` boots what ``qemu://mps2-an386`` would."""
        inner_url, _ = cls.split(url)
        inner_cls = transport_class(inner_url)
        return inner_cls.firmware_for(inner_url) if inner_cls is not None else None

    # -- faults -------------------------------------------------------------------------------------------------
    def damage(self, frame: bytes, direction: str) -> bytes:
        if len(frame) <= 1:  # a bare delimiter carries nothing to damage
            return frame
        self.counts["frames_" + direction] += 1
        if self.dir not in ("both", direction):
            return frame
        r = self.rng.random
        out = frame
        if self.p["stall"] and r() < self.p["stall"]:
            self.counts["stall"] += 1
            time.sleep(self.stall_s)
        if self.p["drop"] and r() < self.p["drop"]:
            self.counts["drop"] += 1
            return b""
        if self.p["corrupt"] and r() < self.p["corrupt"]:
            self.counts["corrupt"] += 1
            b = bytearray(out)
            i = self.rng.randrange(len(b) - 1)  # never the delimiter itself
            b[i] ^= 1 << self.rng.randrange(8)
            out = bytes(b)
        if self.p["garbage"] and r() < self.p["garbage"]:
            self.counts["garbage"] += 1
            out = bytes(self.rng.randrange(1, 256) for _ in range(self.rng.randrange(1, 40))) + out
        if self.p["dup"] and r() < self.p["dup"]:
            self.counts["dup"] += 1
            out = out + out
        return out

    def _maybe_reset(self) -> None:
        if self.reset_after is None or self.counts["frames_tx"] < self.reset_after or self.counts["reset"]:
            return
        self.counts["reset"] += 1
        if not self.inner.reset_device():
            # a link we cannot reset: behave like a rebooted device that lost the session
            self._injected += b"\x00" + P.message(P.MsgType.BOOT, 0, reset_reason=P.ResetReason.UNKNOWN,
                                                  boot_id=0, banner=b"fault:// injected reset")
            self._dead = True

    # -- Transport ----------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        out = self.tx.process(data)
        self._maybe_reset()
        if out and not self._dead:
            self.inner.write(out)

    def read(self, n: int, timeout: float) -> bytes:
        if self._injected:
            data, self._injected = bytes(self._injected), bytearray()
            return data
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b""
            data = self.inner.read(n, left)
            if self._dead:
                continue  # a rebooted device has forgotten the session: nothing it says belongs to it
            if data:
                out = self.rx.process(data)
                if out:
                    return out

    def device_stats(self) -> dict:
        return self.inner.device_stats()

    def close(self) -> None:
        self.inner.close()


TRANSPORTS.register("fault")(FaultTransport)
