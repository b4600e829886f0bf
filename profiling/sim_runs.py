"""The model-running half of the host simulator agent (:class:`~ondevice.profiling.sim_agent.SimAgent`): RUN with
its timing stream, GET_TIMINGS, GET_OUTPUT, per-op timings and memory stats.

:class:`AgentRuns` is a mixin over the agent's state (model, inputs, mode, timings); the agent keeps the
handshake, the model upload and the inputs.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import ErrorCode as E
from ondevice.profiling.protocol import MsgType as T
from ondevice.profiling.sim_io import AgentError

UNIT_NS = {P.TimerUnit.US: 1000, P.TimerUnit.NS: 1}


def _executorch_ops(program: bytes, inputs: list[np.ndarray], runs: int) -> list[dict]:
    from ondevice.runtimes.executorch import op_timings
    return op_timings(program, inputs, runs)


OP_PROFILE_RUNS = 200  # ETDump pass length: enough runs that the mean resolves sub-microsecond ops
# per-op profiler per runtime: a function, or the reason there is none (sent as the UNSUPPORTED message)
OP_PROFILERS = {"executorch": _executorch_ops,
                 "litert": "ai-edge-litert's Python interpreter exposes no per-op profiler; none reported"}


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class AgentRuns:
    """RUN, GET_TIMINGS, GET_OUTPUT, GET_OP_TIMINGS and GET_MEMORY over the agent's loaded model."""

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
        why = OP_PROFILERS.get(self.runtime_name, f"{self.runtime_name} has no per-op profiler")
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
