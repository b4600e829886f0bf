"""The host side of a profiling session: requests over a transport, then ``profile()`` end to end.

:class:`DeviceSession` owns sequencing, timeouts, bounded retries, resync and reset detection; it knows nothing
about the link (a :class:`~ondevice.profiling.transports.Transport`). :func:`profile` drives one device (or all
attached ones) through handshake, model load/select, input, warm-ups and runs, outputs and memory, then writes
``profile.json`` and ``report.html``. Finished runs are written atomically as they arrive, so a later failure
(a reset, a timeout) never loses them.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice import log
from ondevice.errors import (ConfigError, DeviceError, DeviceProtocolError, DeviceResetError, OndeviceError,
                             ProtocolError, TransportError)
from ondevice.fsutil import check_out, write_json_atomic
from ondevice.profiling import protocol as P
from ondevice.profiling import validation as V
from ondevice.profiling.protocol import ErrorCode, MsgType as T

DEFAULT_RETRIES = 3
DEFAULT_RUN_TIMEOUT = 10.0


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
                    v = _safe_unpack(f)
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
                    v = _safe_unpack(f)
                    self.logs.append(bytes(v.get("message", b"")).decode("utf-8", "replace"))
                    continue
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.t.read(4096, left)
            if data:
                self.pending.extend(self.dec.feed(data))


def _check_received(v: dict, total: int) -> None:
    if v["received"] > total:
        raise V.violation("LOAD_MODEL_CHUNK_REPLY", "received", v["received"], f"the model has {total} bytes")


def _safe_unpack(f: P.Frame) -> dict:
    try:
        return P.unpack(f)
    except ProtocolError:
        return {}


def device_error(f: P.Frame, step: str) -> DeviceError:
    """An ERROR frame -> DeviceError with the table's message and hint."""
    v = _safe_unpack(f)
    code = v.get("code", ErrorCode.INTERNAL)
    msg, hint = P.describe_error(code)
    name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"0x{code:04x}"
    text = bytes(v.get("message", b"")).decode("utf-8", "replace").strip()
    detail = f": {text}" if text else ""
    return DeviceError(f"{step}: {msg} ({name}{detail})", hint, code=code)


class DeviceSession:
    """Request/reply over one transport with timeouts, bounded retries of idempotent requests and reset detection."""

    def __init__(self, transport, timeout: float | None = None, retries: int = DEFAULT_RETRIES,
                 run_timeout: float = DEFAULT_RUN_TIMEOUT):
        self.t = transport
        self.link = Link(transport)
        rate = getattr(transport, "bytes_per_s", None)
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
                    boot_id = _safe_unpack(f).get("boot_id", self.info.boot_id)
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

    def _windowed(self, type_: int, pieces: list[tuple[int, bytes]], step: str) -> None:
        """Send ``pieces`` ((offset, payload) in order) with up to rx_window in flight; go back on loss."""
        self.link.step = step
        window = max(1, self.info.rx_window if self.info else 1)
        want = P.reply_type(type_)
        unacked = set(range(len(pieces)))
        todo = collections.deque(range(len(pieces)))
        inflight: dict[int, int] = {}
        stalls = 0
        low = 0  # pieces below this index are known to be held by the device
        sending: set[int] = set()
        since = self.corrupt
        while unacked:
            while todo and len(inflight) < window:
                i = todo.popleft()
                if i in unacked and i not in sending:
                    seq = self.next_seq()
                    self.link.send(type_, seq, pieces[i][1])
                    inflight[seq] = i
                    sending.add(i)
            f = self.link.recv(self.timeout)
            if f is None:
                stalls += 1
                self.retried += 1
                if stalls > self.retries:
                    self.give_up(step, since, collections.Counter(), want)
                    self.check_reset(step, after_silence=True)
                    raise TransportError(f"no reply from the device during {step} after {stalls} attempts",
                                         "check the link quality; lower the baud rate or shorten the cable")
                inflight.clear()
                sending.clear()
                todo = collections.deque(sorted(unacked))
                continue
            i = inflight.pop(f.seq, None)
            sending.discard(i)
            if i is None or f.type not in (want, T.ERROR):
                self.link.stale += 1
                continue
            if f.type == T.ERROR:
                v = _safe_unpack(f)
                if v.get("code") == ErrorCode.BAD_OFFSET:
                    got = v["detail"]  # the device holds bytes [0, got): resend from there
                    for j, (off, payload) in enumerate(pieces):
                        if off + len(payload) - 4 <= got and type_ == T.LOAD_MODEL_CHUNK:
                            unacked.discard(j)
                    stalls += 1
                    if stalls > self.retries * 4:
                        raise ProtocolError(f"{step}: the device keeps reporting a gap at byte {got}",
                                            "the link drops too many frames; lower the baud rate")
                    inflight.clear()
                    sending.clear()
                    todo = collections.deque(sorted(unacked))
                    continue
                raise device_error(f, step)
            total = pieces[-1][0] + len(pieces[-1][1]) - 4 if pieces else 0
            v = self.validated(f, (lambda v: _check_received(v, total)) if type_ == T.LOAD_MODEL_CHUNK else None)
            if v is None:  # a corrupt ack acknowledges nothing: the piece goes again after the timeout
                sending.add(i)
                continue
            unacked.discard(i)
            if type_ == T.LOAD_MODEL_CHUNK:  # cumulative: everything below `received` is held
                got = v["received"]
                while low < len(pieces) and pieces[low][0] + len(pieces[low][1]) - 4 <= got:
                    unacked.discard(low)
                    low += 1
            stalls = 0

    def load_model(self, data: bytes, fmt: int, name: str) -> None:
        sha = hashlib.sha256(data).digest()
        self.request(T.LOAD_MODEL_BEGIN, P.pack(T.LOAD_MODEL_BEGIN, total_bytes=len(data), format=fmt, sha256=sha,
                                                name=name[:32]), step="model upload")
        step = self.max_payload - 4
        pieces = [(off, P.pack(T.LOAD_MODEL_CHUNK, offset=off, data=data[off:off + step]))
                  for off in range(0, len(data), step)]
        self._windowed(T.LOAD_MODEL_CHUNK, pieces, "model upload")
        # END hashes and prepares the model: allow ~10 s per MB on a slow device, on top of the link timeout
        self.request(T.LOAD_MODEL_END, step="model check (SHA-256) and prepare",
                     timeout=self.timeout + 2.0 + 10.0 * len(data) / 1e6)
        self.model_loaded = True

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

    def set_input(self, index: int, data: bytes) -> None:
        step = self.max_payload - 9
        pieces = [(off, P.pack(T.SET_INPUT, index=index, total=len(data), offset=off, data=data[off:off + step]))
                  for off, _ in P.chunks(data, step)]
        self._windowed(T.SET_INPUT, pieces, f"input {index} upload")

    def run(self, runs: int, warmup: int, unit: int = P.UNIT_DEFAULT) -> tuple[str, list[int]]:
        """RUN; returns (unit name, one timing per run). Lost or corrupt frames are refetched with GET_TIMINGS.

        Every frame of the batch must carry the unit asked for (HELLO's default for 0xFF), the run count asked
        for and indices in range (``validation.check_run_data``); a frame that does not is dropped like a lost one.
        """
        self.link.step = "the timed runs"
        seq = self.next_seq()
        payload = P.pack(T.RUN, runs=runs, warmup=warmup, unit=unit)
        want_unit = unit if unit != P.UNIT_DEFAULT else (self.info.default_unit if self.info else None)
        got: dict[int, int] = {}
        gap_max = 0.0
        attempts = 0
        progressed = False
        since, wrong = self.corrupt, collections.Counter()
        self.link.send(T.RUN, seq, payload)
        sent = last = time.monotonic()

        def check(v: dict, msg: str = "RUN_REPLY") -> None:
            V.check_run_data(v, msg, runs=runs, unit=want_unit, max_payload=self.max_payload,
                             elapsed_s=time.monotonic() - sent)

        while True:
            f = self.link.recv(max(self.run_timeout, 3 * gap_max))
            if f is None:
                if progressed:
                    break  # the final frame was lost: fill the gaps below
                attempts += 1
                self.retried += 1
                if attempts > self.retries:
                    self.give_up("the timed runs", since, wrong, P.reply_type(T.RUN))
                    self.check_reset("the timed runs", after_silence=True)
                    raise TransportError(f"no reply to RUN after {attempts} attempts "
                                         f"({max(self.run_timeout, 3 * gap_max):.0f} s of silence each)",
                                         "a run may take longer than that: raise --run-timeout (run_timeout=), "
                                         "or check the device is still alive")
                self.link.send(T.RUN, seq, payload)  # same seq: the device re-streams instead of re-running
                last = time.monotonic()  # our own wait is not device time
                continue
            if f.seq != seq or f.type not in (P.reply_type(T.RUN), T.ERROR):
                self.link.stale += 1
                if f.seq == seq and (f.is_reply or f.type >= T.BOOT):  # not an echo of our request
                    wrong[f.type_name] += 1
                continue
            if f.type == T.ERROR:
                err = device_error(f, "the timed runs")
                if err.code == ErrorCode.NO_MODEL and self.model_loaded:
                    self.check_reset("the timed runs")
                raise err
            now = time.monotonic()
            gap_max = max(gap_max, now - last)
            last = now
            progressed = True
            v = self.validated(f, check)
            if v is not None:  # a corrupt frame leaves a gap, fetched again below
                want_unit = v["unit"] if want_unit is None else want_unit  # no HELLO: the first frame's unit
                for k, t in enumerate(v["timings"]):
                    got[v["first_index"] + k] = t
            if not f.more:
                break
        for _ in range(self.retries + 1):
            missing = [i for i in range(runs) if i not in got]
            if not missing:
                break
            first = missing[0]
            frames = self.request(T.GET_TIMINGS, P.pack(T.GET_TIMINGS, first_index=first, count=runs - first),
                                  stream=True, partial_ok=True, step="timings refetch",
                                  check=lambda v: check(v, "GET_TIMINGS_REPLY"))
            for fr in frames:
                want_unit = fr.fields["unit"] if want_unit is None else want_unit
                for k, t in enumerate(fr.fields["timings"]):
                    got.setdefault(fr.fields["first_index"] + k, t)
        missing = [i for i in range(runs) if i not in got]
        if missing:
            self.give_up("the timed runs", since, collections.Counter(), P.reply_type(T.RUN))
            raise TransportError(f"{len(missing)} of {runs} timings were lost on the link", "check the link quality")
        return P.UNIT_NAMES[P.TimerUnit(want_unit)], [got[i] for i in range(runs)]

    def _output_size(self, index: int) -> int | None:
        """Output ``index``'s byte size by the validated MODEL_INFO (None for the feature map or without one)."""
        if self.mi is None or index == P.AUDIO_INDEX or index >= self.mi["n_outputs"]:
            return None
        return P.tensor_nbytes(self.mi["tensors"][self.mi["n_inputs"] + index])

    def get_output(self, index: int) -> bytes:
        buf = bytearray()
        total = None
        stalls = 0
        since = self.corrupt
        size = self._output_size(index)
        while total is None or len(buf) < total:
            frames = self.request(T.GET_OUTPUT, P.pack(T.GET_OUTPUT, index=index, offset=len(buf),
                                                       length=P.UNKNOWN_U32),
                                  stream=True, partial_ok=True, step=f"output {index} download",
                                  check=lambda v: V.check_output(v, index=index, total=size if total is None
                                                                 else total, max_payload=self.max_payload))
            before = len(buf)
            for fr in frames:
                v = fr.fields
                total = v["total"]
                if v["offset"] == len(buf):
                    buf += v["data"]
                elif v["offset"] > len(buf):
                    break  # a frame was lost: ask again from the gap
            stalls = 0 if len(buf) > before else stalls + 1
            if total is not None and len(buf) >= total:
                break
            if stalls > self.retries:
                self.give_up(f"output {index} download", since, collections.Counter(), P.reply_type(T.GET_OUTPUT))
                raise TransportError(f"output {index} download makes no progress", "check the link quality")
        return bytes(buf[:total])

    def get_memory(self) -> dict:
        f = self.request(T.GET_MEMORY, step="memory stats", check=lambda v: V.check_memory(v, self.info))[0]
        return {k: (None if x == P.UNKNOWN_U32 else x) for k, x in f.fields.items()}

    def get_op_timings(self) -> tuple[str, list[dict]]:
        ops: list[dict] = []
        unit = None
        total = None
        stalls = 0
        since = self.corrupt

        def check(v: dict) -> None:
            V.check_op_timings(v, self.info, total)
            if unit is not None and v["unit"] != unit:
                raise V.violation("GET_OP_TIMINGS_REPLY", "unit", v["unit"], f"an earlier frame said {unit}")

        while total is None or len(ops) < total:
            # an agent may profile ops on request (ETDump pass): allow it seconds between keep-alives
            frames = self.request(T.GET_OP_TIMINGS, P.pack(T.GET_OP_TIMINGS, first_op=len(ops)), stream=True,
                                  partial_ok=True, step="per-op timings", check=check,
                                  timeout=max(self.timeout, 10.0))
            before = len(ops)
            for fr in frames:
                v = fr.fields
                if fr.more and v["count"] == 0:
                    continue  # a keep-alive while the agent collects the timings
                total, unit = v["total_ops"], v["unit"]
                if v["first_op"] == len(ops):
                    ops += [dict(o, index=v["first_op"] + k) for k, o in enumerate(v["ops"])]
                else:
                    break
            stalls = 0 if len(ops) > before else stalls + 1
            if stalls > self.retries:
                self.give_up("per-op timings", since, collections.Counter(), P.reply_type(T.GET_OP_TIMINGS))
                raise TransportError("per-op timings download makes no progress", "check the link quality")
        return P.UNIT_NAMES[P.TimerUnit(unit)] if unit is not None else "us", ops


# ---------------------------------------------------------------------------------------------------------------
# Artifacts

_FORMATS = {".tflite": P.ModelFormat.TFLITE, ".pte": P.ModelFormat.EXECUTORCH, ".bpte": P.ModelFormat.EXECUTORCH,
            ".mlpackage": P.ModelFormat.COREML}


@dataclass
class Artifact:
    path: Path
    name: str
    model: str
    data: bytes
    fmt: int
    sha256: str
    manifest: dict

    @classmethod
    def load(cls, path: str | Path) -> "Artifact":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"artifact {path} does not exist", "run `ondevice export` first, or check the path")
        manifest = {}
        mpath = path.with_name(path.name + ".manifest.json")
        if mpath.is_file():
            import json
            try:
                manifest = json.loads(mpath.read_text())
            except ValueError:
                raise ConfigError(f"{mpath} is not valid JSON", "re-export the artifact") from None
        if path.is_dir():  # the mcu target: C sources compiled into firmware; the device has it built in
            data, fmt = b"", P.ModelFormat.OD_MCU
        else:
            data = path.read_bytes()
            fmt = _FORMATS.get(path.suffix, P.ModelFormat.RAW)
        from ondevice.source import is_file_source, model_name
        # a .tflite/.pte brought as it is: named as export and the on-the-fly mcu build name it
        model = manifest.get("model") or (model_name(path) if is_file_source(path) else path.name.split("_")[0])
        sha = hashlib.sha256(data).hexdigest() if data else manifest.get("sha256", "")
        return cls(path, path.name, model, data, int(fmt), sha, manifest)

    def describe(self) -> dict:
        d = {"path": str(self.path), "name": self.name, "model": self.model, "sha256": self.sha256,
             "bytes": len(self.data) if self.data else self.manifest.get("bytes")}
        for k in ("target", "quant"):
            if k in self.manifest:
                d[k] = self.manifest[k]
        return d


MODES = {"model": P.Mode.MODEL, "frontend+model": P.Mode.FRONTEND_MODEL, "frontend": P.Mode.FRONTEND}
FEATURE_SPEC = {"name": "features", "dtype": "uint16", "shape": [49, 40]}


def make_audio(seed: int = 0, samples: int = 16000) -> np.ndarray:
    """A deterministic 1 s 16 kHz int16 clip (two tones and noise) for the frontend modes."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    x = 6000 * np.sin(2 * np.pi * 300 * t) + 3000 * np.sin(2 * np.pi * 1250 * t) + rng.normal(0, 500, samples)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def make_inputs(specs: Sequence[dict], seed: int = 0) -> list[np.ndarray]:
    """Deterministic test inputs for the device's input tensors (seeded; the same on every run)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        dt = np.dtype(s["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            lo, hi = max(info.min, -128), min(info.max, 127)
            out.append(rng.integers(lo, hi + 1, size=s["shape"], dtype=np.int64).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, size=s["shape"]).astype(dt))
        else:
            out.append(rng.standard_normal(size=s["shape"]).astype(dt))
    return out


# ---------------------------------------------------------------------------------------------------------------
# profile()

def profile(artifact: str | Path, device, runs: int = 100, warmup: int = 10, power: str | None = None,
            board: str | None = None, out: str | Path | None = "profile", *, inputs: Sequence[np.ndarray] | None = None,
            seed: int = 0, timeout: float | None = None, retries: int = DEFAULT_RETRIES,
            run_timeout: float = DEFAULT_RUN_TIMEOUT, report: bool = True, mode: str = "model",
            audio: np.ndarray | None = None) -> dict:
    """Profile ``artifact`` on the device at URL ``device`` (or ``"all"``); returns the profile dict.

    ``mode``: ``model`` (the default: random inputs from ``seed``, or ``inputs``), ``frontend+model`` (int16
    ``audio``, default a seeded 1 s clip, through the device's audio frontend and the model; both are timed) or
    ``frontend`` (the frontend alone; output is the feature map). ``device`` may also be an open :class:`~ondevice.profiling.transports.Transport` (scripts and tests inject
    one; it is left open).
    Writes ``out/profile.json`` (and ``out/report.html`` when ``report``) unless ``out`` is None. The dict has
    ``device``, ``artifact``, ``runs``, ``metrics`` (each ``{"value", "unit", "source"}``) and the raw timings.
    """
    if runs < 1 or warmup < 0:
        raise ConfigError("runs must be >= 1 and warmup >= 0", "e.g. --runs 100 --warmup 10")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if out is not None:
        check_out(out)
    if device == "all":
        return profile_all(artifact, runs=runs, warmup=warmup, power=power, board=board, out=out, seed=seed,
                           timeout=timeout, retries=retries, run_timeout=run_timeout, report=report, mode=mode,
                           audio=audio)
    art = Artifact.load(artifact)
    out = Path(out) if out is not None else None
    url = device if isinstance(device, str) else getattr(device, "url", repr(device))
    result: dict = {"schema": "ondevice-profile/1", "status": "running", "device": {"url": url},
                    "artifact": art.describe(), "runs": 0, "runs_requested": runs, "warmup": warmup, "metrics": {},
                    "timings": {"unit": None, "values": []}, "started_utc": _utc()}
    session_box: list[DeviceSession] = []
    try:
        result["mode"] = mode
        _profile_into(result, art, device, runs, warmup, power, board, inputs, seed, timeout, retries, run_timeout,
                      out, session_box, mode, audio)
        result["status"] = "ok"
    except OndeviceError as e:
        result["status"] = "failed"
        result["error"] = {"type": type(e).__name__, "message": e.message, "hint": e.hint}
        raise
    except KeyboardInterrupt:
        result["status"] = "interrupted"
        kept = f"{result['runs']} runs kept in {out / 'profile.json'}" if out is not None else f"{result['runs']} runs"
        raise KeyboardInterrupt(kept) from None
    finally:
        if result["status"] != "ok":
            _drop_provisional(result)
        s = session_box[0] if session_box else None
        if s is not None:
            result["link"] = {"retries": s.retried, "stale_frames": s.link.stale, "corrupt_frames": s.corrupt,
                              "dropped_frames": s.link.dec.dropped_total, "device_logs": s.link.logs[-20:]}
        result["finished_utc"] = _utc()
        if out is not None:
            _write(result, out, report)
    return result


def _drop_provisional(result: dict) -> None:
    """A device that reports its own flash image size (firmware, not the host sim) would have replaced the model
    file's size at the end; an unfinished profile leaves the figure out rather than change its meaning."""
    flash, dev = result["metrics"].get("flash_bytes"), result["device"]
    if (flash and flash.get("note") == "model file size" and dev.get("board_kind") != "host"
            and "MEMORY_STATS" in dev.get("capabilities", [])):
        del result["metrics"]["flash_bytes"]


def _utc() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(result: dict, out: Path, report: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "profile.json", result)
    if report:
        from ondevice.profiling.report import write_html
        write_html(result, out / "report.html")


def _finish_metrics(result: dict, board_prof: dict, clock_hz, memory=None, power_res=None, stats=None) -> None:
    from ondevice.profiling.metrics import compute_metrics
    tim = result["timings"]
    result["metrics"] = compute_metrics(timings=tim["values"], unit=tim["unit"] or "us", clock_hz=clock_hz,
                                        board=board_prof, memory=memory,
                                        model_bytes=result["artifact"].get("bytes"), power=power_res,
                                        device_stats=stats)


def _profile_into(result, art: Artifact, device, runs, warmup, power, board, inputs, seed, timeout, retries,
                  run_timeout, out, session_box, mode="model", audio=None) -> None:
    from ondevice.profiling.power import load_board, open_monitor
    from ondevice.profiling.transports import open_transport

    from ondevice.profiling.transports import Transport
    monitor = None
    owned = not isinstance(device, Transport)  # an injected, already-open transport stays the caller's
    if owned:
        from ondevice.profiling.transports import transport_class
        cls = transport_class(device)
        if cls is not None and hasattr(cls, "url_for_artifact"):  # e.g. qemu:// boots firmware built for it
            device = cls.url_for_artifact(device, art.path)
    t = open_transport(device) if owned else device
    try:
        s = DeviceSession(t, timeout=timeout, retries=retries, run_timeout=run_timeout)
        session_box.append(s)
        info = s.hello()
        board_name = board or (info.board if info.board else None) or getattr(t, "board", None) or "host"
        try:
            board_prof = load_board(board_name)
        except ConfigError:
            log.warn(f"no board profile {board_name!r}; energy cannot be modelled (pass --board)")
            board_prof = {"name": board_name, "kind": "hardware"}
        result["device"].update({"name": info.device, "runtime": info.runtime, "board": board_name,
                                 "board_kind": board_prof.get("kind"), "protocol_version": info.version,
                                 "capabilities": [c.name for c in P.Caps if info.caps & c],
                                 "timer_units": info.units(), "clock_hz": info.clock_hz or None,
                                 "ram_bytes": None if info.ram_bytes == P.UNKNOWN_U32 else info.ram_bytes,
                                 "flash_bytes": None if info.flash_bytes == P.UNKNOWN_U32 else info.flash_bytes,
                                 "max_payload": info.max_payload})
        if board_prof.get("ram_bytes") and result["device"]["ram_bytes"] is None:
            result["device"]["ram_bytes"] = board_prof["ram_bytes"]["value"]
        clock_hz = info.clock_hz or (board_prof.get("clock_hz") or {}).get("value")
        # the model: uploaded when the device can take it, else a built-in one by name
        if hasattr(t, "stage") and art.path.is_file():  # e.g. adb: the app also reads the manifest from disk
            t.stage(art.path)
        if art.data and info.has(P.Caps.LOAD_MODEL):
            log.info(f"[{result['device']['url']}] uploading {art.name} ({len(art.data)} bytes)")
            s.load_model(art.data, art.fmt, art.model)
        elif info.has(P.Caps.BUILTIN_MODELS):
            sel = s.select_builtin(name=art.model)
            result["device"]["builtin_model"] = sel["name"]
        else:
            raise ConfigError(f"{device} can neither load {art.name} nor has it built in",
                              "flash firmware with this model (ondevice flash) or use a device that loads models")
        mi = s.model_info()
        if art.data and mi["sha256"] != "00" * 32 and mi["sha256"] != art.sha256:
            raise DeviceError(f"the model on the device (sha256 {mi['sha256'][:12]}) is not {art.name} "
                              f"({art.sha256[:12]})", "flash or upload the artifact you are profiling")
        n_in = mi["n_inputs"]
        in_specs, out_specs = mi["tensors"][:n_in], mi["tensors"][n_in:]
        result["model_info"] = {"name": mi["name"], "model_bytes": mi["model_bytes"],
                                "arena_bytes": None if mi["arena_bytes"] == P.UNKNOWN_U32 else mi["arena_bytes"],
                                "inputs": in_specs, "outputs": out_specs}
        if MODES[mode] != P.Mode.MODEL:
            if not info.has(P.Caps.FRONTEND):
                raise ConfigError(f"{result['device']['url']} has no on-device audio frontend",
                                  "profile the model alone (mode model)")
            pcm = np.asarray(audio if audio is not None else make_audio(seed), dtype="<i2")
            s.set_mode(MODES[mode])
            s.set_input(P.AUDIO_INDEX, pcm.tobytes())
            result["inputs"] = {"audio_sha256": hashlib.sha256(pcm.tobytes()).hexdigest(),
                                "seed": None if audio is not None else seed}
        names = [i.get("name") for i in art.manifest.get("inputs") or []]  # the model's own input names
        if isinstance(inputs, dict):  # {name: array}: ordered as the manifest lists the inputs
            missing = [n for n in names if n not in inputs]
            if missing or not names:
                raise ConfigError(f"inputs given by name, but {', '.join(missing) or 'the manifest names none'} "
                                  "missing", f"the model's inputs are {names}")
            inputs = [inputs[n] for n in names]
        arrays = [] if MODES[mode] != P.Mode.MODEL else (
            list(inputs) if inputs is not None else make_inputs(in_specs, seed))
        if MODES[mode] == P.Mode.MODEL and len(arrays) != len(in_specs):
            raise ConfigError(f"{len(arrays)} inputs given, the model takes {len(in_specs)}", "check the input list")
        for i, (a, spec) in enumerate(zip(arrays, in_specs)):
            raw = np.ascontiguousarray(a, dtype=spec["dtype"]).tobytes()
            if len(raw) != P.tensor_nbytes(spec):
                raise ConfigError(f"input {i} has {len(raw)} bytes, the model wants {P.tensor_nbytes(spec)}",
                                  f"shape {spec['shape']} dtype {spec['dtype']}")
            s.set_input(i, raw)
        if MODES[mode] == P.Mode.MODEL:
            result["inputs"] = {"seed": None if inputs is not None else seed,
                                "sha256": [hashlib.sha256(np.ascontiguousarray(a, dtype=sp["dtype"]).tobytes())
                                           .hexdigest() for a, sp in zip(arrays, in_specs)]}
            if len(names) == len(arrays):
                result["inputs"]["names"] = names
        # power: an explicit monitor, else the transport's own (adb battery), else the board model
        if power:
            monitor = open_monitor(power)
        elif hasattr(t, "power_monitor"):
            monitor = t.power_monitor()
        power_res = None
        batch = max(1, min(runs, info.max_runs or runs))
        done = 0
        with log.progress(f"{info.device} runs", runs) as advance:
            while done < runs:
                n = min(batch, runs - done)
                if monitor is not None:
                    monitor.start()
                unit, ts = s.run(n, warmup if done == 0 else 0)
                if monitor is not None:
                    res = monitor.stop()
                    if res:
                        power_res = res if power_res is None else _merge_power(power_res, res)
                tim = result["timings"]
                if tim["unit"] not in (None, unit):
                    raise ProtocolError(f"the device changed timer unit from {tim['unit']} to {unit}", "a device bug")
                tim["unit"] = unit
                tim["values"].extend(ts)
                done += n
                result["runs"] = done
                advance(n)
                _finish_metrics(result, board_prof, clock_hz, power_res=power_res)
                if out is not None:  # finished runs survive a later failure
                    _write(result, out, report=False)
        outputs = []
        if info.has(P.Caps.GET_OUTPUT):
            wanted = [(P.AUDIO_INDEX, FEATURE_SPEC)] if MODES[mode] == P.Mode.FRONTEND else list(enumerate(out_specs))
            for k, spec in wanted:
                raw = s.get_output(k)
                if len(raw) != P.tensor_nbytes(spec):
                    raise ProtocolError(f"output {k} has {len(raw)} bytes, expected {P.tensor_nbytes(spec)}",
                                        "a device bug")
                arr = np.frombuffer(raw, dtype=spec["dtype"]).reshape(spec["shape"])
                o = {"name": spec["name"], "dtype": spec["dtype"], "shape": spec["shape"],
                     "sha256": hashlib.sha256(raw).hexdigest()}
                if arr.size <= 4096:
                    o["values"] = arr.reshape(-1).tolist()
                outputs.append(o)
        result["outputs"] = outputs
        memory = s.get_memory() if info.has(P.Caps.MEMORY_STATS) else None
        if memory is not None:  # an agent may say where peak_ram_bytes comes from (PROTOCOL.md, GET_MEMORY)
            said = [ln.split("peak_ram_source=", 1)[1] for ln in s.link.logs if "peak_ram_source=" in ln]
            if said:
                memory["peak_ram_source"] = said[-1]
        result["memory"] = memory
        if info.has(P.Caps.OP_TIMINGS):
            try:  # optional figures: a device that cannot give them does not fail the profile
                unit, ops = s.get_op_timings()
                result["op_timings"] = {"unit": unit, "ops": ops}
            except DeviceError as e:
                if MODES[mode] == P.Mode.FRONTEND:  # no model ran, so no ops: expected, not a problem
                    result["op_timings"] = {"unit": None, "ops": []}
                else:
                    log.warn(f"no per-op timings: {e.message}")
                    result["op_timings_error"] = e.message
        stats = t.device_stats()
        if stats:
            result["device_stats"] = stats
        if not power:  # the app's own battery sampling covers exactly the timed region: prefer it to host polling
            phone = battery_from_logs(s.link.logs)
            if phone is not None:
                power_res = subtract_baseline(phone, getattr(monitor, "baseline_mw", None))
            elif any("charging=true" in line for line in s.link.logs):
                log.warn("the phone was charging during the runs: battery readings say nothing; energy is modelled")
                power_res = None if power_res and "battery" in str(power_res.get("monitor")) else power_res
        _finish_metrics(result, board_prof, clock_hz, memory=memory, power_res=power_res, stats=stats)
        result["board"] = {k: v for k, v in board_prof.items()}
    finally:
        if monitor is not None:
            monitor.close()
        if owned:
            t.close()


_BATTERY_LOG = re.compile(r"battery .*?power_mw_mean=(?P<mw>[-\d.]+).*?samples=(?P<n>\d+)"
                          r"(?:.*?seconds=(?P<s>[\d.]+))?(?:.*?charging=(?P<charging>true|false))?")


def battery_from_logs(logs: Sequence[str]) -> dict | None:
    """Power from the phone app's LOG lines after each RUN (sampled on the phone during the timed region):
    ``battery current_ua_mean=.. voltage_mv_mean=.. power_mw_mean=.. samples=.. seconds=.. charging=..``.
    None when there are none, or when the phone was charging (its battery current then says nothing)."""
    total_mw, total_n, seconds, charging = 0.0, 0, 0.0, False
    for line in logs:
        m = _BATTERY_LOG.search(line)
        if not m or int(m["n"]) == 0:
            continue
        charging |= m["charging"] == "true"
        total_mw += float(m["mw"]) * int(m["n"])
        total_n += int(m["n"])
        seconds += float(m["s"] or 0)
    if not total_n or charging:
        return None
    return {"avg_mw": total_mw / total_n, "samples": total_n, "seconds": seconds, "source": "measured",
            "monitor": "phone battery (sampled by the app during RUN)"}


def subtract_baseline(power: dict, baseline_mw: float | None) -> dict:
    """The app's battery figure minus the host's idle baseline (taken before the first RUN), saying so."""
    if baseline_mw is None:
        return power
    return dict(power, avg_mw=max(0.0, power["avg_mw"] - baseline_mw), idle_baseline_mw=round(baseline_mw, 3),
                basis="battery draw during the runs minus the idle baseline measured before them")


def _merge_power(a: dict, b: dict) -> dict:
    n = a.get("samples", 1) + b.get("samples", 1)
    avg = (a["avg_mw"] * a.get("samples", 1) + b["avg_mw"] * b.get("samples", 1)) / n
    return dict(a, avg_mw=avg, samples=n, seconds=a.get("seconds", 0) + b.get("seconds", 0))


def profile_all(artifact, *, runs, warmup, power, board, out, seed, timeout, retries, run_timeout, report,
                mode: str = "model", audio=None) -> dict:
    """Profile every attached device that can run ``artifact`` in parallel; one combined profile and report."""
    from ondevice.profiling.devices import urls_for_all
    from ondevice.profiling.transports import open_transport, transport_class
    urls = urls_for_all(artifact)
    if not urls:
        raise ConfigError("no attached device can run this artifact", "run `ondevice devices` to see what is attached")
    if power and len(urls) > 1:
        raise ConfigError("--power measures one device, --device all found several",
                          "profile the device on the power monitor on its own (--device URL --power ...)")
    out = Path(out) if out is not None else None

    def failure(url: str, e: OndeviceError) -> dict:
        return {"device": {"url": url}, "status": "failed", "runs": 0, "metrics": {},
                "error": {"type": type(e).__name__, "message": e.message, "hint": e.hint}}

    # opened one after another: opening may build firmware or start services that share folders and registries
    opened: dict[str, object] = {}
    for url in urls:
        cls = transport_class(url)
        target = cls.url_for_artifact(url, artifact) if cls is not None and hasattr(cls, "url_for_artifact") else url
        try:
            opened[url] = open_transport(target)
        except OndeviceError as e:
            opened[url] = failure(url, e)

    def one(url: str) -> dict:
        t = opened[url]
        if isinstance(t, dict):
            return t
        sub = out / _slug(url) if out is not None else None
        try:
            return profile(artifact, t, runs=runs, warmup=warmup, power=power, board=board, out=sub, seed=seed,
                           timeout=timeout, retries=retries, run_timeout=run_timeout, report=report, mode=mode,
                           audio=audio)
        except OndeviceError as e:
            return failure(url, e)
        finally:
            t.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(urls)) as ex:
        results = dict(zip(urls, ex.map(one, urls)))
    combined = {"schema": "ondevice-profile-all/1", "artifact": str(artifact), "devices": list(results.values()),
                "status": "ok" if all(r.get("status") == "ok" for r in results.values()) else "partial"}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "profile.json", combined)
        if report:
            from ondevice.profiling.report import write_html_all
            write_html_all(combined, out / "report.html")
    return combined


def _slug(url: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in url.replace("://", "_")).strip("_")


def profile_cli(artifact, device, runs, warmup, power, board, out, mode: str = "model", timeout: float | None = None,
                retries: int | None = None, run_timeout: float | None = None) -> None:
    """The ``ondevice profile`` command: profile, print the table, say where the files are (None: the defaults)."""
    from ondevice.profiling.report import print_table
    try:
        result = profile(artifact, device, runs=runs, warmup=warmup, power=power, board=board, out=out, mode=mode,
                         timeout=timeout, retries=DEFAULT_RETRIES if retries is None else retries,
                         run_timeout=DEFAULT_RUN_TIMEOUT if run_timeout is None else run_timeout)
    except OndeviceError:
        if out is not None and (Path(out) / "profile.json").exists():
            log.info(f"partial results kept in {Path(out) / 'profile.json'}")
        raise
    print_table(result)
    log.info(f"wrote {Path(out) / 'profile.json'} and {Path(out) / 'report.html'}")
