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
import socket
import sys
import tempfile
import threading
from pathlib import Path

from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import ErrorCode as E
from ondevice.profiling.protocol import MsgType as T
from ondevice.profiling.sim_io import AgentError, Paced, SocketIO, StreamClosed
from ondevice.profiling.sim_runs import OP_PROFILERS, AgentRuns

_EXT = {P.ModelFormat.TFLITE: ".tflite", P.ModelFormat.EXECUTORCH: ".pte", P.ModelFormat.COREML: ".mlpackage"}
AUDIO_BYTES = 16000 * 2  # 1 s of 16 kHz int16 PCM: the frontend's clip
# c10::ScalarType codes, in case a runtime adapter reports the raw enum instead of a dtype name
_SCALAR_TYPES = {"0": "uint8", "1": "int8", "2": "int16", "3": "int32", "4": "int64", "5": "float16", "6": "float32",
                 "11": "bool"}


def _spec(s) -> dict:
    d = s.to_dict()
    d["dtype"] = _SCALAR_TYPES.get(str(d["dtype"]), str(d["dtype"]))
    return d


class SimAgent(AgentRuns):
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
        self._builtin_model = self._prepare_builtin() if self.builtin is not None else None

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
        if self.runtime_name in OP_PROFILERS:
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

    def _prepare_builtin(self):
        """Load the built-in model once, as firmware is built with its model: a slow load (an mcu-host compile)
        happens here, before the agent answers anything, not inside a request the host times out."""
        try:  # an export folder (tflm, mcu) the runtime loads as it is, like firmware built with it
            from ondevice.runtimes.base import get_runtime
            model = get_runtime(self.runtime_name).load(self.builtin)
        except Exception as e:  # noqa: BLE001 - any load failure is MODEL_INVALID on a device
            return AgentError(E.MODEL_INVALID, str(e)[:180])
        mpath = self.builtin.with_name(self.builtin.name + ".manifest.json")
        meta = json.loads(mpath.read_text()) if mpath.is_file() else {}
        name = str(meta.get("model") or self.builtin.name)
        src = sorted(self.builtin.glob("*.tflite"))  # as firmware does: report the SHA-256 of the source .tflite
        sha = hashlib.sha256(src[0].read_bytes()).digest() if len(src) == 1 else b"\x00" * 32
        return model, sha, name

    def _select(self, f, v):
        if self.builtin is None:
            raise AgentError(E.UNSUPPORTED, "the simulator has no built-in models")
        if isinstance(self._builtin_model, AgentError):
            raise self._builtin_model
        model, sha, name = self._builtin_model
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
