"""The host side of a device session: requests over a transport, with the device handshake.

:class:`DeviceSession` owns sequencing, timeouts, bounded retries, resync and reset detection; it knows nothing
about the link (a :class:`~ondevice.profiling.transports.Transport`). Frames go through
:class:`~ondevice.profiling.link.Link`; the multi-frame requests (uploads, the timed runs, downloads) are in
:mod:`ondevice.profiling.transfers`. :meth:`DeviceSession.handshake` is the one BOOT + HELLO handshake of a
freshly booted device (flash, serve and the QEMU tests use it). The profile orchestration is
:mod:`ondevice.profiling.profiler`.
"""
from __future__ import annotations

import collections
import random
import threading
import time

from ondevice import log
from ondevice.errors import DeviceError, DeviceProtocolError, DeviceResetError, ProtocolError, TransportError
from ondevice.profiling import protocol as P
from ondevice.profiling import validation as V
from ondevice.profiling.link import Link, device_error, safe_unpack
from ondevice.profiling.protocol import ErrorCode, MsgType as T
from ondevice.profiling.transfers import Transfers

DEFAULT_RETRIES = 3
DEFAULT_RUN_TIMEOUT = 10.0
BOOT_TIMEOUT = 10.0


class DeviceSession(Transfers):
    """Request/reply over one transport with timeouts, bounded retries of idempotent requests and reset detection."""

    def __init__(self, transport, timeout: float | None = None, retries: int = DEFAULT_RETRIES,
                 run_timeout: float = DEFAULT_RUN_TIMEOUT):
        self.t = transport
        self.link = Link(transport)
        rate = transport.bytes_per_s
        # one max frame each way at the line rate, plus a second for the device to think
        self.timeout = timeout if timeout is not None else 1.0 + (2 * P.MAX_ENCODED / rate if rate else 0.0)
        self.retries = retries
        self.run_timeout = run_timeout
        # a random start: a device that kept its dedupe memory from an earlier session never sees a matching seq
        self._seq = random.randrange(0x10000)
        self.info: P.DeviceInfo | None = None
        self.retried = 0
        self.model_loaded = False
        self.mi: dict | None = None  # the validated MODEL_INFO: output sizes are checked against it
        self.corrupt = 0  # replies with a valid CRC whose fields broke PROTOCOL.md (fetched again)
        self.last_violation: DeviceProtocolError | None = None

    # -- plumbing -----------------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    @property
    def max_payload(self) -> int:
        return self.info.max_payload if self.info else P.MIN_PAYLOAD

    def validated(self, f: P.Frame, check=None) -> dict | None:
        """The frame's fields when they decode and pass ``check`` (PROTOCOL.md section 8), else None: the
        violation is counted and kept, and the caller fetches the reply again."""
        try:
            v = P.unpack(f)
            if check is not None:
                check(v)
        except DeviceProtocolError as e:
            self._corrupt(e)
            return None
        except ProtocolError:  # the payload does not even parse
            self._corrupt(V.violation(f.type_name, "payload length", len(f.payload),
                                      "too short for the fields it declares"))
            return None
        f.fields = v
        return v

    def _corrupt(self, e: DeviceProtocolError) -> None:
        if not self.corrupt:  # once per session: the count is in profile.json ("link")
            log.warn(f"a device frame broke PROTOCOL.md and is fetched again: {e.message}")
        self.corrupt += 1
        self.last_violation = e

    def give_up(self, step: str, since: int, wrong: collections.Counter, want: int) -> None:
        """Raise the reason a request failed after its retries: a field violation that persisted, or replies of
        the wrong type; returns when the device was simply silent."""
        if self.corrupt > since and self.last_violation is not None:
            e = self.last_violation
            raise DeviceProtocolError(f"{step}: {e.message} (fetched {self.retries + 1} times)", e.hint,
                                      msg_type=e.msg_type, field=e.field, value=e.value)
        if wrong:
            names = ", ".join(f"{n} x{c}" for n, c in wrong.most_common())
            raise DeviceProtocolError(f"{step}: the device answered with frames of the wrong type ({names}), "
                                      f"never {P.type_name(want)}", V.HINT, msg_type=P.type_name(want),
                                      field="type", value=wrong.most_common(1)[0][0])

    def request(self, type_: int, payload: bytes = b"", *, stream: bool = False, partial_ok: bool = False,
                timeout: float | None = None, step: str | None = None, check=None) -> list[P.Frame]:
        """Send one request and return its reply frame(s); retried with the same seq on silence.

        With ``stream`` the frames up to the one without MORE are returned; with ``partial_ok`` a stream cut
        short by a timeout is returned as is (the caller fills the gaps with ranged requests). Each reply's
        fields are decoded and checked with ``check`` (into ``frame.fields``); a violation is a corrupt frame.
        """
        step = step or P.type_name(type_).lower()
        self.link.step = step
        seq = self.next_seq()
        want = P.reply_type(type_)
        timeout = self.timeout if timeout is None else timeout
        since, wrong = self.corrupt, collections.Counter()
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            self.link.send(type_, seq, payload)
            frames: list[P.Frame] = []
            while True:
                f = self.link.recv(timeout)
                if f is None:
                    break
                if f.seq != seq or f.type not in (want, T.ERROR):
                    self.link.stale += 1  # a late reply to an earlier attempt or request
                    if f.seq == seq and (f.is_reply or f.type >= T.BOOT):  # not an echo of our request
                        wrong[f.type_name] += 1
                    continue
                if f.type == T.ERROR:
                    err = device_error(f, step)
                    if err.code == ErrorCode.NO_MODEL and self.model_loaded:
                        self.check_reset(step)
                    raise err
                if self.validated(f, check) is None:
                    if stream and partial_ok and f.more:
                        continue  # the caller fetches the gap it leaves
                    break  # fetch it again now (the device dedupes non-idempotent requests by seq)
                frames.append(f)
                if not stream or not f.more:
                    return frames
            if frames and partial_ok:
                return frames
        self.give_up(step, since, wrong, want)
        self.check_reset(step, after_silence=True)
        raise TransportError(f"no reply from the device to {step} after {self.retries + 1} attempts "
                             f"({timeout:.1f} s each)",
                             "check the link (port, baud rate, cable) and that the agent is running; "
                             "retry with a longer --timeout")

    def check_reset(self, step: str, after_silence: bool = False) -> None:
        """Ask HELLO again; a different boot_id means the device rebooted (its BOOT frame may have been lost)."""
        if self.info is None or not self.info.boot_id:
            return
        try:
            seq = self.next_seq()
            for _ in range(2):
                self.link.send(T.HELLO, seq, P.pack(T.HELLO, host_version=P.VERSION, host_max_payload=P.MAX_PAYLOAD))
                f = self.link.recv(self.timeout)
                while f is not None and (f.seq != seq or f.type != P.reply_type(T.HELLO)):
                    f = self.link.recv(self.timeout)
                if f is not None:
                    boot_id = safe_unpack(f).get("boot_id", self.info.boot_id)
                    if boot_id != self.info.boot_id:
                        raise DeviceResetError(f"the device reset during {step} (its boot id changed)",
                                               "check its power supply, watchdog and stack size; the runs finished "
                                               "before the reset were saved")
                    return
        except (TransportError, ProtocolError) as e:
            if isinstance(e, DeviceResetError):
                raise
            if not after_silence:
                raise

    # -- requests -----------------------------------------------------------------------------------------------
    def hello(self) -> P.DeviceInfo:
        f = self.request(T.HELLO, P.pack(T.HELLO, host_version=P.VERSION, host_max_payload=P.MAX_PAYLOAD),
                         step="handshake", check=V.check_hello)[0]
        info = P.DeviceInfo.from_fields(f.fields)
        if self.info is not None and self.info.boot_id and info.boot_id != self.info.boot_id:
            raise DeviceResetError("the device reset between handshakes (its boot id changed)",
                                   "check its power supply and watchdog")
        self.info = info
        self.link.started = True
        return info

    def ping(self, data: bytes = b"") -> bytes:
        return P.unpack(self.request(T.PING, P.pack(T.PING, data=data))[0])["data"]

    def reset(self, timeout: float = 10.0) -> dict:
        """RESET and wait for the BOOT frame; returns the BOOT fields."""
        self.request(T.RESET, step="reset")
        self.link.expect_boot = True
        try:
            f = self.link.recv(timeout)
            while f is not None and f.type != T.BOOT:
                f = self.link.recv(timeout)
        finally:
            self.link.expect_boot = False
        if f is None:
            raise TransportError("the device did not boot after RESET", "power-cycle it")
        self.info = None
        self.model_loaded = False
        return P.unpack(f)

    def select_builtin(self, name: str = "", index: int = 0xFF) -> dict:
        f = self.request(T.SELECT_BUILTIN_MODEL, P.pack(T.SELECT_BUILTIN_MODEL, index=index, name=name[:32]),
                         step="select built-in model")[0]
        self.model_loaded = True
        return P.unpack(f)

    def model_info(self) -> dict:
        f = self.request(T.MODEL_INFO, step="model info", check=lambda v: V.check_model_info(v, self.info))[0]
        self.mi = f.fields
        return f.fields

    def set_mode(self, mode: int) -> None:
        self.request(T.SET_MODE, P.pack(T.SET_MODE, mode=mode), step="set mode")

    # -- the handshake of a freshly booted device ---------------------------------------------------------------
    def wait_boot(self, timeout: float = BOOT_TIMEOUT, stop: threading.Event | None = None) -> dict:
        """The BOOT frame a device sends as it comes up, which must be the first frame on a fresh connection;
        returns it described (reset reason name, boot id, banner), or {} when ``stop`` is set first."""
        deadline = time.monotonic() + timeout
        self.link.step = "boot"
        self.link.expect_boot = True
        try:
            f = None
            while f is None and (stop is None or not stop.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"the firmware sent no BOOT frame within {timeout:.0f} s",
                                         "check the port's UART settings and that the ELF was built for this board")
                f = self.link.recv(min(left, 0.2))
        finally:
            self.link.expect_boot = False
        if f is None:
            return {}
        if f.type != T.BOOT:
            raise DeviceError(f"expected a BOOT frame after reset, got {f.type_name}", "the firmware may be too old")
        return describe_boot(P.unpack(f))

    def handshake(self, timeout: float = BOOT_TIMEOUT) -> tuple[dict, dict]:
        """BOOT then HELLO on a freshly booted device; returns both described (see :func:`describe_hello`)."""
        boot = self.wait_boot(timeout)
        return boot, describe_hello(self.hello())


def describe_boot(v: dict) -> dict:
    """A BOOT frame's fields for people and JSON: the reset reason by name, the boot id, the banner as text."""
    reason = v["reset_reason"]
    return {"reset_reason": P.ResetReason(reason).name.lower() if reason in P.ResetReason._value2member_map_
            else reason, "boot_id": v["boot_id"], "banner": bytes(v["banner"]).decode(errors="replace")}


def describe_hello(info: P.DeviceInfo) -> dict:
    """What HELLO said, for people and JSON (``flashed.json``): names and figures, the timer unit by name."""
    return {"device": info.device, "runtime": info.runtime, "board": info.board, "clock_hz": info.clock_hz,
            "ram_bytes": info.ram_bytes, "flash_bytes": info.flash_bytes, "caps": info.caps,
            "timer_unit": P.UNIT_NAMES.get(info.default_unit, str(info.default_unit)), "max_runs": info.max_runs}
