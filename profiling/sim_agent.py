"""The host simulator agent: speaks PROTOCOL.md over a real byte stream and runs models on a host runtime.

It is the reference device for ``sim://<runtime>`` and the peer behind the adb/ios transport tests and the
throughput benchmark. It behaves like a device: no shared state with the host session, only bytes.

Run standalone: ``python -m ondevice.profiling.sim_agent --runtime litert --port 0`` prints ``PORT <n>`` and serves
one connection.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import ErrorCode as E
from ondevice.profiling.protocol import MsgType as T

_EXT = {P.ModelFormat.TFLITE: ".tflite", P.ModelFormat.EXECUTORCH: ".pte", P.ModelFormat.COREML: ".mlpackage"}
UNIT_NS = {P.TimerUnit.US: 1000, P.TimerUnit.NS: 1}
AUDIO_BYTES = 16000 * 2  # 1 s of 16 kHz int16 PCM: the frontend's clip
# c10::ScalarType codes, in case a runtime adapter reports the raw enum instead of a dtype name
_SCALAR_TYPES = {"0": "uint8", "1": "int8", "2": "int16", "3": "int32", "4": "int64", "5": "float16", "6": "float32",
                 "11": "bool"}


def _spec(s) -> dict:
    d = s.to_dict()
    d["dtype"] = _SCALAR_TYPES.get(str(d["dtype"]), str(d["dtype"]))
    return d


class AgentError(Exception):
    def __init__(self, code: int, message: str = "", detail: int = 0):
        super().__init__(message)
        self.code, self.detail, self.message = int(code), detail, message


class StreamClosed(Exception):
    pass


class SocketIO:
    """Agent-side byte stream over a connected socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, n: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(n)
        except OSError:
            raise StreamClosed() from None
        if not data:
            raise StreamClosed()
        return data

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            raise StreamClosed() from None


class FdIO:
    """Agent-side byte stream over a file descriptor (a pty master/slave)."""

    def __init__(self, fd: int):
        self.fd = fd

    def read(self, n: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.fd, n)
        except OSError:
            raise StreamClosed() from None
        if not data:
            raise StreamClosed()
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            except OSError:
                raise StreamClosed() from None
            view = view[n:]


class Paced:
    """Emulates a full-duplex UART at ``bytes_per_s`` (115200 8N1 moves 11520 bytes/s) on top of a fast stream.

    Receive runs in its own thread like a UART's RX interrupt filling a ring buffer: bytes are taken off the
    stream no faster than the wire would deliver them, whatever the agent is doing. Transmit blocks the caller
    until the wire would have sent each 32-byte slice. Both keep a running wire schedule, so sleep jitter does
    not accumulate.
    """

    def __init__(self, io, bytes_per_s: float, slice_bytes: int = 32):
        import queue
        self.io, self.rate, self.slice = io, float(bytes_per_s), slice_bytes
        self._rx: queue.Queue[bytes | None] = queue.Queue()
        self._tx: queue.Queue[bytes | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._rx_loop, name="uart-rx", daemon=True)
        self._thread.start()
        self._tx_thread = threading.Thread(target=self._tx_loop, name="uart-tx", daemon=True)
        self._tx_thread.start()

    def _rx_loop(self) -> None:
        free = time.monotonic()
        try:
            while not self._closed:
                t0 = time.monotonic()
                data = self.io.read(self.slice, 0.05)
                if not data:
                    continue
                if time.monotonic() - t0 > 0.001:  # we waited for these bytes: the wire was idle until now
                    free = max(free, time.monotonic())
                free += len(data) / self.rate  # bytes already queued kept the wire busy: no idle gap
                delay = free - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self._rx.put(data)
        except StreamClosed:
            pass
        self._rx.put(None)

    def _tx_loop(self) -> None:
        import queue
        free = time.monotonic()
        while True:
            try:
                piece = self._tx.get_nowait()
            except queue.Empty:  # the line goes idle until the agent writes again
                piece = self._tx.get()
                free = max(free, time.monotonic())
            if piece is None:
                return
            free += len(piece) / self.rate
            delay = free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.io.write(piece)
            except StreamClosed:
                return

    def write(self, data: bytes) -> None:
        """Queue bytes for the wire (a UART TX FIFO the agent keeps fed); they leave at the line rate."""
        for i in range(0, len(data), self.slice):
            self._tx.put(data[i:i + self.slice])

    def close(self) -> None:
        """Stop the RX thread (before the fd is closed, so it cannot read a reused fd number)."""
        self._closed = True
        self._tx.put(None)
        self._thread.join(timeout=1)
        self._tx_thread.join(timeout=5)

    def read(self, n: int, timeout: float) -> bytes:
        import queue
        try:
            data = self._rx.get(timeout=timeout)
        except queue.Empty:
            return b""
        if data is None:
            self._closed = True
            raise StreamClosed()
        return data


class SimAgent:
    """A protocol agent backed by a host runtime (``ondevice.runtimes``: litert, executorch, tflm, ...)."""

    def __init__(self, runtime: str, *, board: str = "host", max_payload: int = P.MAX_PAYLOAD, rx_window: int = 8,
                 max_runs: int = 10000, own_process: bool = False, device: str | None = None, builtin=None):
        self.runtime_name = runtime
        self.builtin = Path(builtin) if builtin else None  # an export folder "flashed" into this agent
        self.board = board
        self.max_payload = max(P.MIN_PAYLOAD, min(max_payload, P.MAX_PAYLOAD))
        self.rx_window = rx_window
        self.max_runs = max_runs
        self.own_process = own_process
        self.device = device or f"sim-{runtime}"
        self.boot_id = int.from_bytes(os.urandom(4), "little") or 1
        self._reset_flag = threading.Event()
        self._reset_reason = P.ResetReason.WATCHDOG
        self._stop = threading.Event()
        self._tmp = tempfile.TemporaryDirectory(prefix="od-sim-")
        self.frames_in = 0
        self._clear()

    # -- state --------------------------------------------------------------------------------------------------
    def _clear(self) -> None:
        self.upload: dict | None = None
        self.blob = b""
        self.model = None
        self.model_bytes = b""
        self.model_sha = b"\x00" * 32
        self.model_name = ""
        self.inputs: list[bytearray] = []
        self.outputs: list[bytes] = []
        self.timings: list[int] = []
        self.timing_unit = P.TimerUnit.US
        self.last_key: tuple[int, int] | None = None
        self.last_reply: list[bytes] = []
        self.last_run_seq: int | None = None
        self.mode = P.Mode.MODEL
        self._ops: list[dict] | None = None
        self.audio = bytearray(AUDIO_BYTES)
        self.features = b""

    def request_reset(self, reason: int = P.ResetReason.WATCHDOG) -> None:
        """Simulate a device reset (power glitch, watchdog): state is lost and a BOOT frame follows."""
        self._reset_reason = reason
        self._reset_flag.set()

    def stop(self) -> None:
        self._stop.set()

    # -- I/O ----------------------------------------------------------------------------------------------------
    def _boot(self, io, reason: int) -> None:
        self._clear()
        self.boot_id = (self.boot_id + 1) & 0xFFFFFFFF or 1
        banner = f"ondevice sim agent ({self.runtime_name}) protocol {P.VERSION}".encode()
        # leading 0x00 flushes anything half-received on the host side
        io.write(b"\x00" + P.message(T.BOOT, 0, reset_reason=reason, boot_id=self.boot_id, banner=banner))

    def serve(self, io) -> None:
        """Serve one host connection until it closes or ``stop()`` is called."""
        dec = P.StreamDecoder()
        try:
            self._boot(io, P.ResetReason.POWER_ON)
            while not self._stop.is_set():
                if self._reset_flag.is_set():
                    self._reset_flag.clear()
                    dec = P.StreamDecoder()
                    self._boot(io, self._reset_reason)
                data = io.read(4096, 0.05)
                if not data:
                    continue
                for frame in dec.feed(data):
                    if self._reset_flag.is_set():
                        break  # a resetting device loses whatever it had not processed
                    self.frames_in += 1
                    for out in self.handle(frame):
                        if self._reset_flag.is_set() and frame.type != T.RESET:
                            break
                        io.write(out)
        except StreamClosed:
            pass
        finally:
            if hasattr(io, "close"):
                io.close()
            self._tmp.cleanup()

    # -- dispatch -----------------------------------------------------------------------------------------------
    def _reply(self, frame: P.Frame, flags: int = 0, **fields) -> bytes:
        return P.message(P.reply_type(frame.type), frame.seq, flags, **fields)

    def handle(self, frame: P.Frame):
        """Yield the wire frames answering one request (a generator, so RUN can stream while it runs)."""
        if frame.version != P.VERSION:
            yield P.message(T.ERROR, frame.seq, code=E.UNSUPPORTED_VERSION, detail=P.VERSION,
                            message=b"protocol version")
            return
        key = (frame.seq, frame.type)
        if key == self.last_key and frame.type in (T.LOAD_MODEL_BEGIN, T.RESET) and self.last_reply:
            yield from self.last_reply  # a retry: answer again, do not execute again
            return
        if key == self.last_key and frame.type == T.RUN and self.last_run_seq == frame.seq:
            yield from self._stream_timings(frame, 0, len(self.timings))
            return
        if len(frame.payload) > self.max_payload:
            yield P.message(T.ERROR, frame.seq, code=E.TOO_LARGE, detail=self.max_payload, message=b"payload")
            return
        handler = self._handlers().get(frame.type)
        if handler is None:
            yield P.message(T.ERROR, frame.seq, code=E.UNKNOWN_TYPE, detail=frame.type, message=b"")
            return
        out: list[bytes] = []
        try:
            fields = P.unpack(frame)
            for w in handler(frame, fields):
                out.append(w)
                yield w
        except AgentError as e:
            w = P.message(T.ERROR, frame.seq, code=e.code, detail=e.detail, message=e.message.encode()[:200])
            out.append(w)
            yield w
        except P.ProtocolError:
            w = P.message(T.ERROR, frame.seq, code=E.BAD_PAYLOAD, detail=0, message=b"short payload")
            out.append(w)
            yield w
        except Exception as e:  # noqa: BLE001 - a device answers INTERNAL rather than dying
            w = P.message(T.ERROR, frame.seq, code=E.INTERNAL, detail=0, message=str(e).encode()[:200])
            out.append(w)
            yield w
        self.last_key = key
        self.last_reply = out if len(out) <= 4 else []

    def _handlers(self):
        return {T.HELLO: self._hello, T.PING: self._ping, T.RESET: self._reset, T.LOAD_MODEL_BEGIN: self._begin,
                T.LOAD_MODEL_CHUNK: self._chunk, T.LOAD_MODEL_END: self._end, T.MODEL_INFO: self._info,
                T.SET_MODE: self._set_mode, T.SET_INPUT: self._set_input, T.RUN: self._run,
                T.GET_TIMINGS: self._get_timings, T.GET_OUTPUT: self._get_output, T.GET_MEMORY: self._memory,
                T.SELECT_BUILTIN_MODEL: self._select, T.GET_OP_TIMINGS: self._op_timings}

    # -- handlers -----------------------------------------------------------------------------------------------
    def _hello(self, f, v):
        caps = P.Caps.MEMORY_STATS | P.Caps.RESET | P.Caps.GET_OUTPUT | P.Caps.FRONTEND
        caps |= P.Caps.LOG  # GET_MEMORY says where its peak_ram_bytes comes from in a LOG line
        # built with an export folder, like firmware: it runs that model and takes no uploads
        caps |= P.Caps.LOAD_MODEL if self.builtin is None else 0
        if self.runtime_name in _OP_PROFILERS:
            caps |= P.Caps.OP_TIMINGS  # litert answers UNSUPPORTED with the reason, so the report says none
        if self.builtin is not None:
            caps |= P.Caps.BUILTIN_MODELS
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            ram = P.UNKNOWN_U32
        yield self._reply(f, version=min(v["host_version"], P.VERSION), caps=int(caps),
                          max_payload=self.max_payload, rx_window=self.rx_window, max_runs=self.max_runs,
                          timer_units=(1 << P.TimerUnit.US) | (1 << P.TimerUnit.NS), default_unit=int(P.TimerUnit.US),
                          clock_hz=0, ram_bytes=min(ram, P.UNKNOWN_U32 - 1), flash_bytes=P.UNKNOWN_U32,
                          builtin_models=int(self.builtin is not None), boot_id=self.boot_id, device=self.device, runtime=self.runtime_name,
                          board=self.board)

    def _ping(self, f, v):
        yield self._reply(f, data=v["data"])

    def _reset(self, f, v):
        yield self._reply(f)
        self.request_reset(P.ResetReason.SOFTWARE)

    def _select(self, f, v):
        if self.builtin is None:
            raise AgentError(E.UNSUPPORTED, "the simulator has no built-in models")
        try:  # an export folder (tflm, mcu) the runtime loads as it is, like firmware built with it
            from ondevice.runtimes.base import get_runtime
            model = get_runtime(self.runtime_name).load(self.builtin)
        except Exception as e:  # noqa: BLE001 - any load failure is MODEL_INVALID on a device
            raise AgentError(E.MODEL_INVALID, str(e)[:180]) from None
        mpath = self.builtin.with_name(self.builtin.name + ".manifest.json")
        meta = json.loads(mpath.read_text()) if mpath.is_file() else {}
        name = str(meta.get("model") or self.builtin.name)
        src = sorted(self.builtin.glob("*.tflite"))  # as firmware does: report the SHA-256 of the source .tflite
        sha = hashlib.sha256(src[0].read_bytes()).digest() if len(src) == 1 else b"\x00" * 32
        self._install(model, b"", sha, name)
        yield self._reply(f, index=0, name=name[:32])

    def _begin(self, f, v):
        if v["format"] not in _EXT and v["format"] != P.ModelFormat.RAW:
            raise AgentError(E.UNSUPPORTED, f"format {v['format']}")
        if v["total_bytes"] > 1 << 30:
            raise AgentError(E.TOO_LARGE, "model larger than 1 GiB")
        self.model = None
        self.upload = {"total": v["total_bytes"], "sha": bytes.fromhex(v["sha256"]), "format": v["format"],
                       "name": v["name"], "buf": bytearray()}
        yield self._reply(f)

    def _chunk(self, f, v):
        up = self.upload
        if up is None:
            raise AgentError(E.BAD_OFFSET, "no upload in progress", 0)
        off, data, got = v["offset"], v["data"], len(up["buf"])
        if off + len(data) > up["total"]:
            raise AgentError(E.TOO_LARGE, "chunk past total_bytes")
        if off == got:
            up["buf"] += data
        elif off > got:
            raise AgentError(E.BAD_OFFSET, "gap", got)
        elif off + len(data) > got:  # overlaps the end: keep the new tail
            up["buf"] += data[got - off:]
        yield self._reply(f, received=len(up["buf"]))

    def _end(self, f, v):
        up = self.upload
        if up is None:
            if self.model is not None:
                yield self._reply(f)  # a repeated END after success
                return
            raise AgentError(E.NO_MODEL, "no upload in progress")
        if len(up["buf"]) != up["total"]:
            raise AgentError(E.BAD_OFFSET, "upload incomplete", len(up["buf"]))
        data = bytes(up["buf"])
        if hashlib.sha256(data).digest() != up["sha"]:
            self.upload = None
            raise AgentError(E.SHA_MISMATCH, "sha256 mismatch")
        if up["format"] == P.ModelFormat.RAW:  # a blob is checked and stored, not prepared (link tests)
            self.blob, self.upload = data, None
            yield self._reply(f)
            return
        path = Path(self._tmp.name) / ((up["name"] or "model") + _EXT[up["format"]])
        path.write_bytes(data)
        try:
            from ondevice.runtimes.base import get_runtime
            model = get_runtime(self.runtime_name).load(path)
        except Exception as e:  # noqa: BLE001 - any load failure is MODEL_INVALID on a device
            raise AgentError(E.MODEL_INVALID, str(e)[:180]) from None
        self._install(model, data, up["sha"], up["name"])
        yield self._reply(f)

    def _install(self, model, data: bytes, sha: bytes, name: str) -> None:
        self.model, self.model_bytes, self.model_sha, self.model_name = model, data, sha, name
        self.in_specs = [_spec(s) for s in model.inputs]
        self.out_specs = [_spec(s) for s in model.outputs]
        self.inputs = [bytearray(P.tensor_nbytes(s)) for s in self.in_specs]
        self.outputs = [b""] * len(model.outputs)
        self.upload = None
        self.mode = P.Mode.MODEL

    def _need_model(self):
        if self.model is None:
            raise AgentError(E.NO_MODEL, "no model loaded")
        return self.model

    def _info(self, f, v):
        m = self._need_model()
        specs = self.in_specs + self.out_specs
        arena = (m.memory_stats() or {}).get("arena_bytes", P.UNKNOWN_U32)
        yield self._reply(f, sha256=self.model_sha, model_bytes=len(self.model_bytes), arena_bytes=arena,
                          name=self.model_name[:32], n_inputs=len(m.inputs), n_outputs=len(m.outputs),
                          tensors=[dict(s, name=s["name"][:24]) for s in specs])

    def _set_mode(self, f, v):
        if v["mode"] not in P.Mode._value2member_map_:
            raise AgentError(E.UNSUPPORTED, f"mode {v['mode']}", v["mode"])
        self.mode = P.Mode(v["mode"])
        yield self._reply(f, mode=v["mode"])

    def _set_input(self, f, v):
        i = v["index"]
        if i == P.AUDIO_INDEX:
            end = v["offset"] + len(v["data"])
            if v["total"] != AUDIO_BYTES or end > AUDIO_BYTES:
                raise AgentError(E.INVALID_INPUT_SIZE, f"audio is {AUDIO_BYTES} bytes", AUDIO_BYTES)
            self.audio[v["offset"]:end] = v["data"]
            yield self._reply(f, index=i, end=end)
            return
        m = self._need_model()
        if i >= len(m.inputs):
            raise AgentError(E.BAD_INDEX, "input index", i)
        buf = self.inputs[i]
        end = v["offset"] + len(v["data"])
        if v["total"] != len(buf) or end > len(buf):
            raise AgentError(E.INVALID_INPUT_SIZE, f"input {i} is {len(buf)} bytes", len(buf))
        buf[v["offset"]:end] = v["data"]
        yield self._reply(f, index=i, end=end)

    def _arrays(self, m) -> list[np.ndarray]:
        return [np.frombuffer(bytes(b), dtype=s["dtype"]).reshape(s["shape"]).copy()
                for b, s in zip(self.inputs, self.in_specs)]

    def _invoke(self, m):
        """One timed invoke in the current mode: frontend, model, or both (outputs kept for GET_OUTPUT)."""
        if self.mode == P.Mode.MODEL:
            return m.run(self._arrays(m))
        from ondevice.features import frontend
        feat = frontend.compute_features(np.frombuffer(bytes(self.audio), dtype="<i2"))
        if self.mode == P.Mode.FRONTEND:
            self.features = feat.astype("<u2").tobytes()
            return None
        spec = self.in_specs[0]
        if spec.get("scale") is not None:
            x = frontend.quantize_features(feat, spec["scale"], spec["zero_point"]).reshape(spec["shape"])
        else:
            x = frontend.to_model_input(feat).astype(spec["dtype"]).reshape(spec["shape"])
        return m.run([x])

    def _run(self, f, v):
        m = self.model if self.mode == P.Mode.FRONTEND else self._need_model()
        runs, warmup, unit = v["runs"], v["warmup"], v["unit"]
        unit = P.TimerUnit.US if unit == P.UNIT_DEFAULT else unit
        if unit not in UNIT_NS:
            raise AgentError(E.UNSUPPORTED, "timer unit", unit)
        if not 1 <= runs <= self.max_runs:
            raise AgentError(E.BAD_PAYLOAD, f"runs must be 1..{self.max_runs}", self.max_runs)
        self.timings, self.timing_unit = [], P.TimerUnit(unit)
        self._ops = None
        self.last_run_seq = None
        per_frame = (self.max_payload - P.RUN_DATA_FIXED) // 8
        try:
            beat = time.monotonic()
            for _ in range(warmup):
                if self._reset_flag.is_set():
                    return
                self._invoke(m)
                if time.monotonic() - beat > 1.0:  # liveness during long warm-ups (PROTOCOL.md, RUN)
                    yield self._reply(f, P.FLAG_MORE, unit=unit, total_runs=runs, first_index=0, count=0, timings=[])
                    beat = time.monotonic()
            yield self._reply(f, P.FLAG_MORE, unit=unit, total_runs=runs, first_index=0, count=0, timings=[])
            sent, last_flush = 0, time.monotonic()
            for i in range(runs):
                if self._reset_flag.is_set():
                    return  # the device died mid-run: no final frame, a BOOT follows
                if self.mode == P.Mode.MODEL:
                    arrays = self._arrays(m)  # inputs re-copied before every invoke
                    t0 = time.perf_counter_ns()
                    outs = m.run(arrays)
                    dt = time.perf_counter_ns() - t0
                else:  # the timed region covers the frontend too
                    t0 = time.perf_counter_ns()
                    outs = self._invoke(m)
                    dt = time.perf_counter_ns() - t0
                self.timings.append(max(1, dt // UNIT_NS[unit]))
                pending = len(self.timings) - sent
                if i < runs - 1 and (pending >= per_frame or time.monotonic() - last_flush > 1.0):
                    while sent < len(self.timings):
                        chunk = self.timings[sent:sent + per_frame]
                        yield self._reply(f, P.FLAG_MORE, unit=unit, total_runs=runs, first_index=sent,
                                          count=len(chunk), timings=chunk)
                        sent += len(chunk)
                    last_flush = time.monotonic()
            if outs is not None:
                self.outputs = [np.ascontiguousarray(o).tobytes() for o in outs]
            self.last_run_seq = f.seq
            while True:  # the rest, the last frame without MORE
                chunk = self.timings[sent:sent + per_frame]
                done = sent + len(chunk) >= runs
                yield self._reply(f, 0 if done else P.FLAG_MORE, unit=unit, total_runs=runs, first_index=sent,
                                  count=len(chunk), timings=chunk)
                sent += len(chunk)
                if done:
                    return
        except AgentError:
            raise
        except Exception as e:  # noqa: BLE001 - runtime failure -> INVOKE_FAILED
            raise AgentError(E.INVOKE_FAILED, str(e)[:180]) from None

    def _stream_timings(self, f, first: int, count: int):
        per_frame = (self.max_payload - P.RUN_DATA_FIXED) // 8
        end = min(len(self.timings), first + count)
        pos = first
        while True:
            chunk = self.timings[pos:min(end, pos + per_frame)]
            done = pos + len(chunk) >= end
            yield self._reply(f, 0 if done else P.FLAG_MORE, unit=int(self.timing_unit),
                              total_runs=len(self.timings), first_index=pos, count=len(chunk), timings=chunk)
            pos += len(chunk)
            if done:
                return

    def _get_timings(self, f, v):
        if v["first_index"] > len(self.timings):
            raise AgentError(E.BAD_INDEX, "timing index", len(self.timings))
        yield from self._stream_timings(f, v["first_index"], v["count"])

    def _get_output(self, f, v):
        i = v["index"]
        if i == P.AUDIO_INDEX:
            if self.mode != P.Mode.FRONTEND:
                raise AgentError(E.BAD_INDEX, "features are an output in frontend mode only", i)
            data = self.features
        else:
            m = self._need_model()
            if i >= len(m.outputs):
                raise AgentError(E.BAD_INDEX, "output index", i)
            data = self.outputs[i] or bytes(P.tensor_nbytes(self.out_specs[i]))
        start = min(v["offset"], len(data))
        end = len(data) if v["length"] == P.UNKNOWN_U32 else min(len(data), start + v["length"])
        step = self.max_payload - 9
        pos = start
        while True:
            piece = data[pos:min(end, pos + step)]
            done = pos + len(piece) >= end
            yield self._reply(f, 0 if done else P.FLAG_MORE, index=i, total=len(data), offset=pos, data=piece)
            pos += len(piece)
            if done:
                return

    def _op_timings(self, f, v):
        why = _OP_PROFILERS.get(self.runtime_name, f"{self.runtime_name} has no per-op profiler")
        if isinstance(why, str):  # the reason there is none
            raise AgentError(E.UNSUPPORTED, why)
        m = self._need_model()
        if not self.timings:
            raise AgentError(E.BAD_INDEX, "no RUN yet")
        if v["first_op"] == 0 or self._ops is None:
            yield from self._profile_ops(f, why, m)
        ops, first = self._ops, v["first_op"]
        if first > len(ops):
            raise AgentError(E.BAD_INDEX, "op index", len(ops))
        pos = first
        while True:  # as many entries per frame as fit
            batch, size = [], 8
            while pos + len(batch) < len(ops):
                o = ops[pos + len(batch)]
                need = 9 + len(o["name"].encode())
                if size + need > self.max_payload or len(batch) == 255:
                    break
                batch.append(o)
                size += need
            done = pos + len(batch) >= len(ops)
            yield self._reply(f, 0 if done else P.FLAG_MORE, unit=int(P.TimerUnit.NS), total_ops=len(ops),
                              first_op=pos, count=len(batch), ops=batch)
            pos += len(batch)
            if done:
                return

    def _profile_ops(self, f, profiler, m):
        """Run the op profiler in a thread; meanwhile empty MORE frames keep the host waiting (PROTOCOL.md,
        GET_OP_TIMINGS). The profiler can hold the GIL for a few seconds, so keep-alives may come late."""
        box: dict = {}

        def work():
            try:
                box["ops"] = profiler(self.model_bytes, self._arrays(m), OP_PROFILE_RUNS)
            except Exception as e:  # noqa: BLE001 - e.g. a BundledProgram, which the ETDump path does not take
                box["error"] = e

        th = threading.Thread(target=work, name="op-profiler", daemon=True)
        th.start()
        while th.is_alive():
            th.join(0.5)
            if th.is_alive():
                yield self._reply(f, P.FLAG_MORE, unit=int(P.TimerUnit.NS), total_ops=0, first_op=0, count=0, ops=[])
        if "error" in box:
            raise AgentError(E.UNSUPPORTED, f"per-op profiling failed: {str(box['error'])[:120]}")
        self._ops = box["ops"]

    def _memory(self, f, v):
        U = P.UNKNOWN_U32
        stats = (self.model.memory_stats() or {}) if self.model is not None else {}
        arena = stats.get("arena_bytes", U)
        peak, source = stats.get("peak_ram_bytes"), stats.get("peak_ram_source", "")
        if peak is None and self.own_process:  # VmHWM: the agent's whole process, only when it has one to itself
            peak, source = _vm_hwm(), "sim agent process VmHWM (not the model alone)"
        if peak is not None and source:
            yield P.message(T.LOG, 0, level=1, message=f"memory peak_ram_source={source}".encode()[:400])
        heap = stats.get("heap_bytes")
        yield self._reply(f, peak_ram_bytes=min(peak if peak is not None else U, U), arena_total_bytes=arena,
                          arena_used_bytes=arena, stack_total_bytes=U, stack_high_water_bytes=U, flash_used_bytes=U,
                          model_bytes=len(self.model_bytes) if self.model is not None else U,
                          heap_peak_bytes=min(heap if heap is not None else U, U))


def _executorch_ops(program: bytes, inputs: list[np.ndarray], runs: int) -> list[dict]:
    from ondevice.runtimes.executorch import op_timings
    return op_timings(program, inputs, runs)


OP_PROFILE_RUNS = 200  # ETDump pass length: enough runs that the mean resolves sub-microsecond ops
# per-op profiler per runtime: a function, or the reason there is none (sent as the UNSUPPORTED message)
_OP_PROFILERS = {"executorch": _executorch_ops,
                 "litert": "ai-edge-litert's Python interpreter exposes no per-op profiler; none reported"}


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def serve_socket(agent: SimAgent, listener: socket.socket, pace: float | None = None) -> None:
    """Accept one connection on ``listener`` and serve it."""
    conn, _ = listener.accept()
    listener.close()
    io = SocketIO(conn)
    try:
        agent.serve(Paced(io, pace) if pace else io)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-payload", type=int, default=P.MAX_PAYLOAD)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--board", default="host")
    ap.add_argument("--pace", type=float, default=None, help="line rate in bytes/s to emulate (e.g. 11520)")
    ap.add_argument("--builtin", default=None, help="an export folder (tflm, mcu) to serve as the built-in model")
    a = ap.parse_args(argv)
    from ondevice.runtimes.base import get_runtime
    get_runtime(a.runtime)  # import the runtime before accepting, so the first request is not slow
    ls = socket.socket()
    ls.bind(("127.0.0.1", a.port))
    ls.listen(1)
    print(f"PORT {ls.getsockname()[1]}", flush=True)
    agent = SimAgent(a.runtime, board=a.board, max_payload=a.max_payload, rx_window=a.window, own_process=True,
                     builtin=a.builtin)
    serve_socket(agent, ls, a.pace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
