"""The multi-frame requests of :class:`~ondevice.profiling.session.DeviceSession`: windowed uploads (model,
inputs), the timed-run stream with its refetch of lost timings, and ranged downloads (outputs, per-op timings).

:class:`Transfers` is a mixin: it uses the session's ``request``, ``link``, ``validated``, ``give_up``,
``check_reset``, ``next_seq`` and its counters, and keeps the session module to the request/reply core.
"""
from __future__ import annotations

import collections
import hashlib
import time

from ondevice.errors import ProtocolError, TransportError
from ondevice.profiling import protocol as P
from ondevice.profiling import validation as V
from ondevice.profiling.link import check_received, device_error, safe_unpack
from ondevice.profiling.protocol import ErrorCode, MsgType as T


class Transfers:
    """Windowed uploads, the RUN stream and ranged downloads over the session's request/reply core."""

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
                v = safe_unpack(f)
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
            v = self.validated(f, (lambda v: check_received(v, total)) if type_ == T.LOAD_MODEL_CHUNK else None)
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
