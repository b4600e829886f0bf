"""PROTOCOL.md section 8 on the device side: the firmware agent (host build, the same C as on the MCU) checks the
host's frames by the same rules the host applies to the device's, and answers a violation with the ERROR code
the spec names (never a reply built from the bad value)."""
from __future__ import annotations

import pytest

from _firmware_support import PipeTransport, make
from conftest import require_tool
from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import ErrorCode as E
from ondevice.profiling.protocol import MsgType as T

R = P.reply_type


@pytest.fixture(scope="module")
def agent_exe(tmp_path_factory):
    require_tool("cc")
    out = tmp_path_factory.mktemp("fw_rules")
    make("host", HOST_O=str(out))
    return out / "od_agent"


@pytest.fixture()
def dev(agent_exe):
    t = PipeTransport(agent_exe)
    dec = P.StreamDecoder()
    seq = [100]

    def ask(type_, payload=b"", flags=0, version=P.VERSION) -> list[P.Frame]:
        seq[0] += 1
        t.write(P.encode_frame(P.Frame(int(type_), seq[0], payload, flags, version)))
        got: list[P.Frame] = []
        for _ in range(50):
            got += [f for f in dec.feed(t.read(4096, 0.2)) if f.seq == seq[0]]
            if got and not got[-1].more:
                return got
        raise AssertionError(f"no reply to {P.type_name(type_)}")

    t.write(b"\x00" + P.message(T.HELLO, 1, host_version=1, host_max_payload=128))
    while not [f for f in dec.feed(t.read(4096, 0.5)) if f.type == R(T.HELLO)]:
        pass
    yield ask
    t.close()


def _error(frames) -> tuple[int, int]:
    (f,) = frames
    assert f.type == T.ERROR, P.type_name(f.type)
    v = P.unpack(f)
    return v["code"], v["detail"]


def _select_and_input(ask):
    assert ask(T.SELECT_BUILTIN_MODEL, P.pack(T.SELECT_BUILTIN_MODEL, index=0, name=""))[0].type == R(
        T.SELECT_BUILTIN_MODEL)
    assert ask(T.SET_INPUT, P.pack(T.SET_INPUT, index=0, total=16, offset=0, data=bytes(16)))[0].type == R(
        T.SET_INPUT)


CASES = [
    # (name, type, payload, expected code, expected detail or None)
    ("payload above the agreed max_payload", T.GET_TIMINGS, P.pack(T.GET_TIMINGS, first_index=0, count=1)
     + bytes(130), E.TOO_LARGE, 128),
    ("RUN with an undefined timer unit", T.RUN, P.pack(T.RUN, runs=1, warmup=0, unit=9), E.UNSUPPORTED, None),
    ("RUN with a unit the device lacks", T.RUN, P.pack(T.RUN, runs=1, warmup=0, unit=P.TimerUnit.CYCLES),
     E.UNSUPPORTED, None),
    ("RUN of 0 runs", T.RUN, P.pack(T.RUN, runs=0, warmup=0, unit=0xFF), E.BAD_PAYLOAD, None),
    ("RUN of 0xFFFFFFFF runs", T.RUN, P.pack(T.RUN, runs=0xFFFFFFFF, warmup=0, unit=0xFF), E.BAD_PAYLOAD, None),
    ("RUN with 0xFFFFFFFF warm-ups", T.RUN, P.pack(T.RUN, runs=1, warmup=0xFFFFFFFF, unit=0xFF), E.BAD_PAYLOAD,
     None),
    ("RUN payload cut short", T.RUN, P.pack(T.RUN, runs=1, warmup=0, unit=0xFF)[:5], E.BAD_PAYLOAD, None),
    ("SET_INPUT total differs from the tensor", T.SET_INPUT, P.pack(T.SET_INPUT, index=0, total=0xFFFFFFFF,
                                                                     offset=0, data=b"x"), E.INVALID_INPUT_SIZE, 16),
    ("SET_INPUT past the tensor's end", T.SET_INPUT, P.pack(T.SET_INPUT, index=0, total=16, offset=0xFFFFFFF0,
                                                             data=b"x" * 20), E.INVALID_INPUT_SIZE, 16),
    ("SET_INPUT of an input that does not exist", T.SET_INPUT, P.pack(T.SET_INPUT, index=9, total=16, offset=0,
                                                                       data=b"x"), E.BAD_INDEX, 9),
    ("GET_OUTPUT offset past the end", T.GET_OUTPUT, P.pack(T.GET_OUTPUT, index=0, offset=0xFFFFFFFF, length=1),
     E.BAD_INDEX, None),
    ("GET_OUTPUT of an output that does not exist", T.GET_OUTPUT, P.pack(T.GET_OUTPUT, index=7, offset=0,
                                                                          length=1), E.BAD_INDEX, 7),
    ("GET_TIMINGS range past the stored runs", T.GET_TIMINGS, P.pack(T.GET_TIMINGS, first_index=0xFFFFFFFF,
                                                                      count=2), E.BAD_INDEX, None),
    ("SET_MODE undefined", T.SET_MODE, P.pack(T.SET_MODE, mode=9), E.UNSUPPORTED, 9),
    ("a reply type sent by the host", R(T.HELLO), b"", E.UNKNOWN_TYPE, R(T.HELLO)),
    ("an unsolicited type sent by the host", T.BOOT, b"\x00", E.UNKNOWN_TYPE, T.BOOT),
    ("SELECT_BUILTIN_MODEL with a str8 longer than the payload", T.SELECT_BUILTIN_MODEL, b"\xff\x40ab",
     E.BAD_PAYLOAD, None),
]


@pytest.mark.parametrize("name,type_,payload,code,detail", CASES, ids=[c[0] for c in CASES])
def test_agent_rejects_host_frame(dev, name, type_, payload, code, detail):
    _select_and_input(dev)
    got, got_detail = _error(dev(type_, payload))
    assert got == code, f"{name}: {E(got).name if got in E._value2member_map_ else got}"
    if detail is not None:
        assert got_detail == detail
    assert dev(T.PING, b"alive")[0].type == R(T.PING)  # and the agent carries on


def test_agent_ignores_reserved_flags_and_accepts_appended_fields(dev):
    assert P.unpack(dev(T.PING, b"ok", flags=0xFE)[0])["data"] == b"ok"
    _select_and_input(dev)
    frames = dev(T.RUN, P.pack(T.RUN, runs=2, warmup=0, unit=0xFF) + b"future")  # fields are only ever appended
    assert frames[-1].type == R(T.RUN) and P.unpack(frames[-1])["total_runs"] == 2
    assert {P.unpack(f)["unit"] for f in frames} == {P.TimerUnit.NS}  # one unit per batch, HELLO's


def test_model_info_from_the_agent_passes_the_host_rules(dev):
    from ondevice.profiling import validation as V
    _select_and_input(dev)
    hello = P.unpack(dev(T.HELLO, P.pack(T.HELLO, host_version=1, host_max_payload=128))[0])
    V.check_hello(hello)
    V.check_model_info(P.unpack(dev(T.MODEL_INFO)[0]), P.DeviceInfo.from_fields(hello))
    dev(T.RUN, P.pack(T.RUN, runs=2, warmup=0, unit=0xFF))
    V.check_memory(P.unpack(dev(T.GET_MEMORY)[0]), P.DeviceInfo.from_fields(hello))
