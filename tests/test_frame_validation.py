"""PROTOCOL.md section 8 on the host: each field rule accepts what real devices send and rejects the violation,
naming message, field and value; the session fetches a violating reply again and raises only if it persists."""
from __future__ import annotations

import math

import pytest

from ondevice.errors import DeviceProtocolError, TransportError
from ondevice.profiling import protocol as P
from ondevice.profiling import validation as V
from ondevice.profiling.protocol import MsgType as T
from ondevice.profiling.inputs import make_inputs
from ondevice.profiling.session import DeviceSession
from ondevice.profiling.transports import Transport

R = P.reply_type
QEMU_HELLO = dict(version=1, caps=0x76, max_payload=512, rx_window=1, max_runs=100, timer_units=0b100,
                  default_unit=2, clock_hz=25_000_000, ram_bytes=4 << 20, flash_bytes=4 << 20, builtin_models=1,
                  boot_id=3, device="od-mcu", runtime="od-mcu", board="qemu-mps2-an386")
INFO = P.DeviceInfo.from_fields(QEMU_HELLO)
TENSORS = [{"name": "x", "shape": [1, 16], "dtype": "int8", "scale": 0.5, "zero_point": -3},
           {"name": "y", "shape": [1, 4], "dtype": "int8", "scale": 0.25, "zero_point": 5}]
MODEL_INFO = dict(sha256="00" * 32, model_bytes=1000, arena_bytes=32, name="testmodel", n_inputs=1, n_outputs=1,
                  tensors=TENSORS)
MEMORY = dict(peak_ram_bytes=74448, arena_total_bytes=32, arena_used_bytes=32, stack_total_bytes=8192,
              stack_high_water_bytes=884, flash_used_bytes=60808, model_bytes=1000, heap_peak_bytes=0)


def _mi(k=0, **tensor_changes):
    v = dict(MODEL_INFO, tensors=[dict(t) for t in TENSORS])
    v["tensors"][k].update(tensor_changes)
    return P.unpack(P.Frame(R(T.MODEL_INFO), 1, P.pack(R(T.MODEL_INFO), **v)))


def test_real_device_replies_pass():
    V.check_hello(QEMU_HELLO)
    V.check_model_info(_mi(), INFO)
    V.check_memory(MEMORY, INFO)
    V.check_run_data(dict(unit=2, total_runs=5, first_index=0, count=5, timings=[440] * 5), "RUN_REPLY", runs=5,
                     unit=2, max_payload=512, elapsed_s=0.01)
    V.check_output(dict(index=0, total=4, offset=0, data=b"abcd"), index=0, total=4, max_payload=512)
    V.check_op_timings(dict(unit=2, total_ops=2, first_op=0, count=2, ops=[]), INFO, None)


@pytest.mark.parametrize("changes,field,value", [
    (dict(dtype=99), "input 0 dtype", 99),  # issue 13: a TypeError in make_inputs before
    (dict(shape=[1, 0xFFFFFFFF]), "input 0 dims[1]", 0xFFFFFFFF),  # issue 13: numpy tried to allocate 61 TiB
    (dict(shape=[1, 0]), "input 0 dims[1]", 0),
    (dict(shape=[1] * 9), "input 0 ndim", 9),
    (dict(shape=[1, 33]), "input 0 dims", [1, 33]),  # 33 bytes in a 32-byte arena
    (dict(scale=math.inf), "input 0 scale", math.inf),
    (dict(scale=-0.5), "input 0 scale", -0.5),
    (dict(zero_point=128), "input 0 zero_point", 128),
])
def test_model_info_violations_name_field_and_value(changes, field, value):
    with pytest.raises(DeviceProtocolError) as e:
        V.check_model_info(_mi(**changes), INFO)
    assert (e.value.msg_type, e.value.field, e.value.value) == ("MODEL_INFO_REPLY", field, value)
    assert field in e.value.message and e.value.hint


def test_model_info_without_announced_buffers_still_bounds_a_tensor():
    v = dict(_mi(), arena_bytes=P.UNKNOWN_U32)
    V.check_model_info(v, None)
    v["tensors"][0] = dict(v["tensors"][0], dtype="float32", shape=[2, 1 << 28])  # 2 GiB: above the host's cap
    with pytest.raises(DeviceProtocolError, match="no RAM"):
        V.check_model_info(v, None)
    make_inputs(_mi()["tensors"][:1])  # what passed the checks is safe to allocate


@pytest.mark.parametrize("changes,field", [
    (dict(peak_ram_bytes=4_294_967_294), "peak_ram_bytes"),  # issue 13: reported as "emulated" before
    (dict(arena_used_bytes=33), "arena_used_bytes"),
    (dict(stack_high_water_bytes=9000), "stack_high_water_bytes"),
    (dict(flash_used_bytes=5 << 20), "flash_used_bytes"),
    (dict(heap_peak_bytes=5 << 20), "heap_peak_bytes"),
])
def test_memory_violations(changes, field):
    with pytest.raises(DeviceProtocolError) as e:
        V.check_memory(dict(MEMORY, **changes), INFO)
    assert e.value.field == field and e.value.value == changes[field]
    V.check_memory(dict(MEMORY, **{field: P.UNKNOWN_U32}), INFO)  # unknown is always allowed


@pytest.mark.parametrize("changes,field", [
    (dict(version=2), "version"), (dict(max_payload=63), "max_payload"), (dict(rx_window=0), "rx_window"),
    (dict(max_runs=0), "max_runs"), (dict(default_unit=0), "default_unit"), (dict(default_unit=7), "default_unit"),
    (dict(ram_bytes=0), "ram_bytes"),
])
def test_hello_violations(changes, field):
    with pytest.raises(DeviceProtocolError) as e:
        V.check_hello(dict(QEMU_HELLO, **changes))
    assert e.value.field == field


@pytest.mark.parametrize("changes,field", [
    (dict(unit=0), "unit"),  # issue 13: the last frame's unit replaced HELLO's
    (dict(unit=9), "unit"), (dict(total_runs=6), "total_runs"), (dict(first_index=3), "first_index"),
    (dict(count=63, timings=[1] * 63), "count"),
])
def test_run_frame_violations(changes, field):
    v = dict(unit=2, total_runs=5, first_index=0, count=5, timings=[440] * 5)
    with pytest.raises(DeviceProtocolError) as e:
        V.check_run_data(dict(v, **changes), "RUN_REPLY", runs=5, unit=2, max_payload=512)
    assert e.value.field == field


def test_us_timing_longer_than_the_wall_clock_is_rejected():
    v = dict(unit=0, total_runs=2, first_index=0, count=2, timings=[900, 3_000_000])
    V.check_run_data(v, "RUN_REPLY", runs=2, unit=0, max_payload=512, elapsed_s=3.0)
    with pytest.raises(DeviceProtocolError) as e:
        V.check_run_data(v, "RUN_REPLY", runs=2, unit=0, max_payload=512, elapsed_s=1.0)
    assert e.value.field == "timings[1]"


# ---- the session: fetched again, then an error ----------------------------------------------------------------

class Scripted(Transport):
    """A device that answers each request type from a script: a list of payloads used in turn (the last repeats)."""

    def __init__(self, script: dict[int, list]):
        self.script, self.out, self.dec = script, bytearray(), P.StreamDecoder()
        self.asked: dict[int, int] = {}

    def write(self, data: bytes) -> None:
        for req in self.dec.feed(data):
            k = self.asked[req.type] = self.asked.get(req.type, 0) + 1
            answers = self.script[req.type]
            for type_, flags, payload in answers[min(k, len(answers)) - 1]:
                self.out += P.encode(type_, req.seq, payload, flags)

    def read(self, n: int, timeout: float) -> bytes:
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data


def _hello():
    return [[(R(T.HELLO), 0, P.pack(R(T.HELLO), **QEMU_HELLO))]]


def _session(script) -> tuple[DeviceSession, Scripted]:
    t = Scripted({T.HELLO: _hello(), **script})
    s = DeviceSession(t, timeout=0.05, retries=2, run_timeout=0.2)
    s.hello()
    return s, t


def test_session_fetches_a_bad_model_info_again_then_names_it():
    bad = P.pack(R(T.MODEL_INFO), **dict(MODEL_INFO, tensors=[dict(TENSORS[0], dtype=99), TENSORS[1]]))
    good = P.pack(R(T.MODEL_INFO), **MODEL_INFO)
    s, t = _session({T.MODEL_INFO: [[(R(T.MODEL_INFO), 0, bad)], [(R(T.MODEL_INFO), 0, good)]]})
    assert s.model_info()["tensors"][0]["dtype"] == "int8" and s.corrupt == 1 and t.asked[T.MODEL_INFO] == 2
    s, t = _session({T.MODEL_INFO: [[(R(T.MODEL_INFO), 0, bad)]]})
    with pytest.raises(DeviceProtocolError) as e:
        s.model_info()
    assert t.asked[T.MODEL_INFO] == 3 and "MODEL_INFO_REPLY" in e.value.message and "= 99" in e.value.message


def _run_frames(units, per=3, runs=5):
    frames = [(R(T.RUN), P.FLAG_MORE, P.pack(R(T.RUN), unit=units[0], total_runs=runs, first_index=0, count=0,
                                              timings=[]))]
    for k, first in enumerate(range(0, runs, per)):
        ts = [400 + i for i in range(first, min(runs, first + per))]
        more = P.FLAG_MORE if first + per < runs else 0
        frames.append((R(T.RUN), more, P.pack(R(T.RUN), unit=units[k + 1], total_runs=runs, first_index=first,
                                               count=len(ts), timings=ts)))
    return frames


def _timings(first, count, unit=2, runs=5):
    ts = [400 + i for i in range(first, first + count)]
    return [(R(T.GET_TIMINGS), 0, P.pack(R(T.GET_TIMINGS), unit=unit, total_runs=runs, first_index=first,
                                         count=count, timings=ts))]


def test_run_with_a_different_unit_in_its_last_frame_refetches_those_timings():
    # issue 13: the host took the unit from the last frame alone and reported microseconds for instructions
    s, t = _session({T.RUN: [_run_frames([2, 2, 0])], T.GET_TIMINGS: [_timings(3, 2)]})
    assert s.run(5, 0) == ("instructions", [400, 401, 402, 403, 404])
    assert t.asked[T.GET_TIMINGS] == 1 and s.corrupt == 1


def test_malformed_run_frame_is_refetched_not_fatal():
    frames = _run_frames([2, 2, 2])
    frames[1] = (R(T.RUN), P.FLAG_MORE, frames[1][2][:12])  # count says 3 timings, 2 bytes follow
    s, t = _session({T.RUN: [frames], T.GET_TIMINGS: [_timings(0, 5)]})
    assert s.run(5, 0) == ("instructions", [400, 401, 402, 403, 404]) and s.corrupt == 1


def test_persistent_bad_unit_is_an_error_not_a_figure():
    s, t = _session({T.RUN: [_run_frames([0, 0, 0])], T.GET_TIMINGS: [_timings(0, 5, unit=0)]})
    with pytest.raises(DeviceProtocolError) as e:
        s.run(5, 0)
    assert e.value.field == "unit" and e.value.value == 0 and "instructions" in e.value.message


def test_wrong_type_replies_are_named_not_called_silence():
    wrong = [(R(T.GET_MEMORY), 0, P.pack(R(T.GET_MEMORY), **MEMORY))]
    s, t = _session({T.MODEL_INFO: [wrong], T.RUN: [wrong]})
    with pytest.raises(DeviceProtocolError) as e:
        s.model_info()
    assert "wrong type (GET_MEMORY_REPLY x3)" in e.value.message and "no reply" not in e.value.message
    with pytest.raises(DeviceProtocolError) as e:
        s.run(5, 0)
    assert "GET_MEMORY_REPLY" in e.value.message
    s, t = _session({T.MODEL_INFO: [[]]})  # true silence still says so
    with pytest.raises(TransportError, match="no reply"):
        s.model_info()


def test_bad_memory_figures_never_leave_the_session():
    bad = P.pack(R(T.GET_MEMORY), **dict(MEMORY, peak_ram_bytes=4_294_967_294))
    s, t = _session({T.GET_MEMORY: [[(R(T.GET_MEMORY), 0, bad)], [(R(T.GET_MEMORY), 0, P.pack(R(T.GET_MEMORY),
                                                                                             **MEMORY))]]})
    assert s.get_memory()["peak_ram_bytes"] == 74448
    s, t = _session({T.GET_MEMORY: [[(R(T.GET_MEMORY), 0, bad)]]})
    with pytest.raises(DeviceProtocolError, match="peak_ram_bytes = 4294967294"):
        s.get_memory()


def test_without_hello_the_first_frame_sets_the_batch_unit():
    t = Scripted({T.RUN: [_run_frames([0, 0, 3])], T.GET_TIMINGS: [_timings(3, 2, unit=0)]})
    s = DeviceSession(t, timeout=0.05, retries=2, run_timeout=0.2)
    assert s.run(5, 0) == ("us", [400, 401, 402, 403, 404]) and s.corrupt == 1
