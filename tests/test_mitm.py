"""Man-in-the-middle: device frames with valid CRCs but bad contents, rewritten field by field by a TCP relay
(tests/_mitm.py) between ``profile`` and the sim agent or the QEMU firmware.

Each case ends in a retry that gives exactly the clean run's figures, or in a clear error naming the message, the
field and the value, with profile.json marked failed; never in a figure made from a bad value.
"""
from __future__ import annotations

import json
import math
import struct
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from _firmware_support import REPO
from _mitm import R, Relay, Rule, T, fields, raw, same, tensor
from _profiling_support import reference_outputs, tiny_tflite
from conftest import require_tool
from ondevice.errors import DeviceError, DeviceProtocolError, OndeviceError
from ondevice.profiling import protocol as P
from ondevice.profiling.inputs import make_inputs
from ondevice.profiling.profiler import profile
from ondevice.profiling.transports import open_transport

RUNS = 30  # sim: 1 liveness + 3 timing frames per batch of 30 at max_payload 128 (14 timings a frame)
GiB = 1 << 30
LAST = (lambda f: not f.more)  # the final frame of a streamed reply
TIMED = (lambda f: len(f.payload) > P.RUN_DATA_FIXED)  # a RUN frame carrying timings (not the liveness one)
TABLE: dict[str, dict[str, str]] = {}


@dataclass
class Case:
    name: str
    rules: Callable[[dict], list[Rule]]
    expect: str  # "retry" (the clean figures), "ok" (ignored, clean figures) or "error"
    msg: tuple[str, ...] = ()  # error: the message type(s) it may name
    field: str = ""  # error: a substring of the field it names
    value: object = None  # error: the value it names
    stage: str = ""  # error: what was never reported (see _assert_nothing_reported)
    on: tuple[str, ...] = ("sim", "qemu")
    error: type = DeviceProtocolError
    extra: dict = dataclasses.field(default_factory=dict)


def _short(n: int):
    return raw(lambda p: p[:n])


def _ram(b) -> list[Rule]:
    """sim:// announces the host's RAM saturated to u32; a relay-announced 1 GiB gives the memory rules a bound."""
    return [Rule(R(T.HELLO), fields(ram_bytes=GiB))] if b["name"] == "sim" else []


def _err(code: int):
    return lambda f: P.pack(T.ERROR, code=code, detail=0, message=b"")


CASES = [
    # --- the cases ---
    Case("model_info_dtype_99", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, dtype=99))], "error",
         ("MODEL_INFO_REPLY",), "input 0 dtype", 99, "model_info"),
    Case("model_info_dim_ffffffff", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, shape=b["shape"][:-1] + [0xFFFFFFFF]))],
         "error", ("MODEL_INFO_REPLY",), "dims[", 0xFFFFFFFF, "model_info"),
    Case("memory_peak_above_ram", lambda b: _ram(b) + [Rule(R(T.GET_MEMORY), fields(peak_ram_bytes=4294967294))],
         "error", ("GET_MEMORY_REPLY",), "peak_ram_bytes", 4294967294, "memory"),
    Case("memory_arena_used_above_total",
         lambda b: [Rule(R(T.GET_MEMORY), fields(arena_total_bytes=1000, arena_used_bytes=5000))], "error",
         ("GET_MEMORY_REPLY",), "arena_used_bytes", 5000, "memory"),
    Case("run_last_frame_unit_once", lambda b: [Rule(R(T.RUN), fields(unit=b["bad_unit"]), {0}, when=LAST)], "retry"),
    Case("run_unit_every_frame", lambda b: [Rule(R(T.RUN), fields(unit=b["bad_unit"]), when=TIMED),
                                            Rule(R(T.GET_TIMINGS), fields(unit=b["bad_unit"]))], "error",
         ("RUN_REPLY", "GET_TIMINGS_REPLY"), "unit", None, "run"),
    Case("run_malformed_payload_once", lambda b: [Rule(R(T.RUN), _short(12), {0}, when=TIMED)], "retry"),
    Case("run_malformed_payload_always", lambda b: [Rule(R(T.RUN), _short(12), when=TIMED),
                                                    Rule(R(T.GET_TIMINGS), _short(12))], "error",
         ("RUN_REPLY", "GET_TIMINGS_REPLY"), "payload length", 12, "run"),
    Case("run_reply_wrong_type", lambda b: [Rule(R(T.RUN), same(), new_type=R(T.GET_MEMORY))], "error",
         ("RUN_REPLY",), "type", "GET_MEMORY_REPLY", "run"),
    Case("model_info_wrong_type", lambda b: [Rule(R(T.MODEL_INFO), same(), new_type=R(T.GET_OUTPUT))], "error",
         ("MODEL_INFO_REPLY",), "type", "GET_OUTPUT_REPLY", "model_info"),
    # --- MODEL_INFO ---
    Case("model_info_dtype_99_once", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, dtype=99), {0})], "retry"),
    Case("model_info_output_dtype_200", lambda b: [Rule(R(T.MODEL_INFO), tensor(1, dtype=200))], "error",
         ("MODEL_INFO_REPLY",), "output 0 dtype", 200, "model_info"),
    Case("model_info_dim_zero", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, shape=b["shape"][:-1] + [0]))], "error",
         ("MODEL_INFO_REPLY",), "dims[", 0, "model_info"),
    Case("model_info_rank_9", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, shape=[1] * 9))], "error",
         ("MODEL_INFO_REPLY",), "ndim", 9, "model_info"),
    Case("model_info_tensor_above_buffers",
         lambda b: _ram(b) + [Rule(R(T.MODEL_INFO), tensor(0, shape=b["shape"][:-1] + [b["huge_dim"]]))], "error",
         ("MODEL_INFO_REPLY",), "input 0 dims", None, "model_info"),
    Case("model_info_arena_above_ram", lambda b: _ram(b) + [Rule(R(T.MODEL_INFO), fields(arena_bytes=0xF0000000))],
         "error", ("MODEL_INFO_REPLY",), "arena_bytes", 0xF0000000, "model_info"),
    Case("model_info_scale_nan", lambda b: [Rule(R(T.MODEL_INFO), tensor(0, scale=math.nan))], "error",
         ("MODEL_INFO_REPLY",), "input 0 scale", None, "model_info"),
    Case("model_info_zero_point_outside_int8",
         lambda b: [Rule(R(T.MODEL_INFO), tensor(0, dtype=1, scale=0.5, zero_point=1000))], "error",
         ("MODEL_INFO_REPLY",), "input 0 zero_point", 1000, "model_info"),
    Case("model_info_truncated", lambda b: [Rule(R(T.MODEL_INFO), _short(40))], "error",
         ("MODEL_INFO_REPLY",), "payload length", 40, "model_info"),
    Case("model_info_reserved_flags", lambda b: [Rule(R(T.MODEL_INFO), same(), flags=0xFE)], "ok"),
    # --- HELLO ---
    Case("hello_default_unit_unlisted", lambda b: [Rule(R(T.HELLO), fields(default_unit=b["bad_unit"]))], "error",
         ("HELLO_REPLY",), "default_unit", None, "hello"),
    Case("hello_max_runs_zero", lambda b: [Rule(R(T.HELLO), fields(max_runs=0))], "error",
         ("HELLO_REPLY",), "max_runs", 0, "hello"),
    Case("hello_ram_zero", lambda b: [Rule(R(T.HELLO), fields(ram_bytes=0))], "error",
         ("HELLO_REPLY",), "ram_bytes", 0, "hello"),
    Case("hello_max_payload_once", lambda b: [Rule(R(T.HELLO), fields(max_payload=4096), {0})], "retry"),
    # --- GET_MEMORY ---
    Case("memory_once", lambda b: [Rule(R(T.GET_MEMORY), fields(arena_total_bytes=1, arena_used_bytes=9), {0})],
         "retry"),
    Case("memory_stack_above_total", lambda b: [Rule(R(T.GET_MEMORY), fields(stack_high_water_bytes=1 << 20))],
         "error", ("GET_MEMORY_REPLY",), "stack_high_water_bytes", 1 << 20, "memory", on=("qemu",)),
    Case("memory_flash_above_announced", lambda b: [Rule(R(T.GET_MEMORY), fields(flash_used_bytes=64 << 20))],
         "error", ("GET_MEMORY_REPLY",), "flash_used_bytes", 64 << 20, "memory", on=("qemu",)),
    # --- RUN / GET_TIMINGS ---
    Case("run_total_runs_once", lambda b: [Rule(R(T.RUN), fields(total_runs=RUNS + 1), {0}, when=TIMED)], "retry"),
    Case("run_index_past_end_once", lambda b: [Rule(R(T.RUN), fields(first_index=10_000), {0}, when=TIMED)],
         "retry"),
    Case("run_timing_beyond_wall_clock_once",
         lambda b: [Rule(R(T.RUN), raw(lambda p: p[:P.RUN_DATA_FIXED] + struct.pack("<Q", 1 << 62)
                                       + p[P.RUN_DATA_FIXED + 8:]), {0}, when=TIMED)], "retry", on=("sim",)),
    Case("run_timing_beyond_wall_clock_always",
         lambda b: [Rule(kind, raw(lambda p: p[:P.RUN_DATA_FIXED] + struct.pack("<Q", 1 << 62)
                                   + p[P.RUN_DATA_FIXED + 8:]), when=TIMED) for kind in (R(T.RUN), R(T.GET_TIMINGS))],
         "error", ("RUN_REPLY", "GET_TIMINGS_REPLY"), "timings[", 1 << 62, "run", on=("sim",)),
    # --- GET_OUTPUT / GET_OP_TIMINGS / LOAD_MODEL / ERROR ---
    Case("output_total_wrong", lambda b: [Rule(R(T.GET_OUTPUT), fields(total=1 << 20))], "error",
         ("GET_OUTPUT_REPLY",), "total", 1 << 20, "output"),
    Case("output_total_wrong_once", lambda b: [Rule(R(T.GET_OUTPUT), fields(total=1 << 20), {0})], "retry"),
    Case("op_timings_unit_undefined", lambda b: [Rule(R(T.GET_OP_TIMINGS), fields(unit=9))], "error",
         ("GET_OP_TIMINGS_REPLY",), "unit", 9, "op", on=("qemu",)),
    Case("op_timings_past_total", lambda b: [Rule(R(T.GET_OP_TIMINGS), fields(count=200))], "error",
         ("GET_OP_TIMINGS_REPLY",), "payload length", None, "op", on=("qemu",)),
    Case("chunk_ack_beyond_model", lambda b: [Rule(R(T.LOAD_MODEL_CHUNK), fields(received=0xFFFFFFF0))], "error",
         ("LOAD_MODEL_CHUNK_REPLY",), "received", 0xFFFFFFF0, "model_info", on=("sim",)),
    Case("chunk_ack_beyond_model_once", lambda b: [Rule(R(T.LOAD_MODEL_CHUNK), fields(received=0xFFFFFFF0), {0})],
         "retry", on=("sim",)),
    Case("error_frame_unknown_code", lambda b: [Rule(R(T.MODEL_INFO), _err(0x1234), new_type=T.ERROR)], "error",
         ("",), "", None, "model_info", error=DeviceError, extra={"text": "unknown device error code 4660"}),
]


# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_backend():
    art = tiny_tflite()
    return {"name": "sim", "url": "sim://litert?max_payload=128&max_runs=30", "artifact": art, "unit": "us",
            "bad_unit": 2, "shape": [1, 1, 49, 40], "huge_dim": 40_000_000, "inputs": None}


@pytest.fixture(scope="module")
def qemu_backend():
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from ondevice.mcu.firmware import build_firmware
    elf = build_firmware("qemu-mps2-an386")
    return {"name": "qemu", "url": f"qemu://mps2-an386?elf={elf}", "artifact": REPO / "firmware" / "core" /
            "testmodel", "unit": "instructions", "bad_unit": 0, "shape": [1, 16], "huge_dim": 64, "inputs": None}


def _profile(b: dict, rules: list[Rule], out, runs: int):
    relay = Relay(open_transport(b["url"]), rules)
    try:
        r = profile(b["artifact"], relay.url, runs=runs, warmup=1, out=out, timeout=1.0, retries=2,
                    run_timeout=3.0, report=False)
        return r, None, relay
    except OndeviceError as e:
        return None, e, relay
    finally:
        relay.close()


@pytest.fixture(scope="module")
def clean(request):
    """One clean run per backend through the relay (no rules): the figures every retried case must equal."""
    cache = {}

    def get(b, tmp):
        if b["name"] not in cache:
            r, e, _ = _profile(b, [], tmp, RUNS if b["name"] == "sim" else 5)
            assert e is None, e
            cache[b["name"]] = r
        return cache[b["name"]]
    return get


def _assert_nothing_reported(saved: dict, case: Case, b: dict) -> None:
    """The figures a failed stage would have produced are absent: a bad value never becomes a figure."""
    m = saved["metrics"]
    if case.stage in ("hello", "model_info"):
        assert m == {} and not saved["timings"]["values"] and "model_info" not in saved
    elif case.stage == "run":
        assert saved["runs"] == 0 and not saved["timings"]["values"] and saved["timings"]["unit"] in (None, b["unit"])
    elif case.stage == "memory":
        assert saved.get("memory") is None and not {"peak_ram_bytes", "arena_bytes", "stack_high_water_bytes"} & set(m)
    elif case.stage == "output":
        assert "outputs" not in saved
    elif case.stage == "op":
        assert "op_timings" not in saved
    if isinstance(case.value, int) and case.value > 100_000:  # long enough not to match by chance
        assert str(case.value) not in json.dumps({k: saved.get(k) for k in ("metrics", "memory", "model_info",
                                                                              "timings", "outputs", "op_timings")})


def _run_case(case: Case, b: dict, tmp_path, clean) -> None:
    runs = RUNS if b["name"] == "sim" else 5
    truth = clean(b, tmp_path / "clean")
    rules = case.rules(b)
    r, err, relay = _profile(b, rules, tmp_path / "out", runs)
    assert sum(x.applied for x in rules) > 0, "the relay rewrote nothing: the case tests nothing"
    saved = json.loads((tmp_path / "out" / "profile.json").read_text())
    if case.expect == "error":
        assert err is not None, f"{case.name}: a figure was reported from a bad frame"
        assert isinstance(err, case.error) and err.hint and "\n" not in err.message
        assert "no reply" not in err.message
        if case.error is DeviceProtocolError:
            assert err.msg_type in case.msg and case.field in err.field, err.message
            assert err.msg_type in err.message and err.field in err.message
            if case.value is not None:
                assert err.value == case.value and str(case.value) in err.message
        for text in case.extra.values():
            assert text in err.message
        assert saved["status"] == "failed" and saved["error"]["type"] == type(err).__name__
        _assert_nothing_reported(saved, case, b)
        TABLE.setdefault(case.name, {})[b["name"]] = f"clear error: `{err.message}`"
        return
    assert err is None, f"{case.name}: {err}"
    assert r["status"] == "ok" and r["runs"] == runs and saved["status"] == "ok"
    if case.expect == "retry":
        assert r["link"]["corrupt_frames"] >= 1 or r["link"]["retries"] >= 1
    if b["name"] == "sim":  # exactly what the agent measured and computed
        assert r["timings"]["values"] == relay.upstream.agent.timings
        want = reference_outputs(b["artifact"], "litert", make_inputs(r["model_info"]["inputs"], seed=0))
        np.testing.assert_array_equal(np.array(r["outputs"][0]["values"], np.float32).reshape(want[0].shape), want[0])
    else:  # exactly the timings the firmware sent before the relay touched them, and the clean run's outputs
        d = relay.device_timings()
        assert r["timings"]["values"] == [d[i] for i in range(runs)]
        assert r["outputs"] == truth["outputs"]
    assert r["timings"]["unit"] == truth["timings"]["unit"] == b["unit"]
    assert r["model_info"] == truth["model_info"]
    if b["name"] == "sim":  # the sim measures the model's heap afresh on each load: malloc growth varies by a few KB
        measured = ("peak_ram_bytes", "heap_peak_bytes")
        assert {k: v for k, v in r["memory"].items() if k not in measured} == \
            {k: v for k, v in truth["memory"].items() if k not in measured}
        assert all(0 < r["memory"][k] < b.get("ram", 1 << 30) for k in measured)
    else:
        assert r["memory"] == truth["memory"]
    TABLE.setdefault(case.name, {})[b["name"]] = (f"fetched again ({r['link']['corrupt_frames']} corrupt frames), "
                                                 "figures equal the clean run" if case.expect == "retry" else
                                                 "ignored, figures equal the clean run")


@pytest.mark.parametrize("case", [c for c in CASES if "sim" in c.on], ids=lambda c: c.name)
def test_mitm_sim(case, sim_backend, tmp_path, clean):
    _run_case(case, sim_backend, tmp_path, clean)


QEMU_CASES = ("model_info_dtype_99", "model_info_dim_ffffffff", "memory_peak_above_ram",
              "memory_arena_used_above_total", "run_last_frame_unit_once", "run_unit_every_frame",
              "run_malformed_payload_once", "run_malformed_payload_always", "run_reply_wrong_type",
              "model_info_wrong_type", "model_info_tensor_above_buffers", "model_info_arena_above_ram",
              "model_info_zero_point_outside_int8", "memory_stack_above_total", "memory_flash_above_announced",
              "op_timings_unit_undefined", "op_timings_past_total", "output_total_wrong", "hello_max_payload_once")


@pytest.mark.qemu
@pytest.mark.parametrize("case", [c for c in CASES if c.name in QEMU_CASES], ids=lambda c: c.name)
def test_mitm_qemu(case, qemu_backend, tmp_path, clean):
    _run_case(case, qemu_backend, tmp_path, clean)


def test_cli_prints_one_line_and_exits_7_on_a_bad_frame(sim_backend, tmp_path):
    """The issue's first case end to end: `ondevice profile` against a relay sending dtype 99 in MODEL_INFO."""
    import subprocess
    import sys
    relay = Relay(open_transport(sim_backend["url"]), [Rule(R(T.MODEL_INFO), tensor(0, dtype=99))])
    try:
        p = subprocess.run([sys.executable, "-c", "from ondevice.cli import _entry; _entry()", "profile",
                            str(sim_backend["artifact"]), "--device", relay.url, "--runs", "5", "--out",
                            str(tmp_path / "p"), "--timeout", "1", "--retries", "1"],
                           capture_output=True, text=True, timeout=300)
    finally:
        relay.close()
    err = p.stderr
    assert p.returncode == 7 and "Traceback" not in err, err[-2000:]
    assert "MODEL_INFO_REPLY with input 0 dtype = 99" in err and "hint" in err.lower()
    assert json.loads((tmp_path / "p" / "profile.json").read_text())["status"] == "failed"
    TABLE.setdefault("cli_model_info_dtype_99", {})["sim"] = "exit 7, one line + hint, profile.json `failed`"


def test_zz_mitm_table(capsys):
    # runs last in this module: the case/outcome table for the CI log (and profiling/RESULTS.md)
    with capsys.disabled():
        print("\n| case | sim:// | qemu:// |\n|---|---|---|")
        for name, row in TABLE.items():
            print(f"| {name} | {row.get('sim', '-')} | {row.get('qemu', '-')} |")
    assert len(TABLE) >= 20
