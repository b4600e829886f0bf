"""Field rules for device replies (PROTOCOL.md section 8): what a frame with a valid CRC may still not say.

Each ``check_*`` takes a reply's decoded fields plus what the device announced (HELLO, MODEL_INFO, the RUN that
was asked) and raises :class:`~ondevice.errors.DeviceProtocolError` naming the message, the field and the value.
The session treats a violation like a corrupt frame: it fetches the reply again, and raises only if it persists.
Pure functions with no I/O, so the fuzzer and the tests drive them directly.
"""
from __future__ import annotations

import math
from typing import Any

from ondevice.errors import DeviceProtocolError
from ondevice.profiling import protocol as P

MAX_RANK = 8  # tensor dimensions in MODEL_INFO
MAX_DIM = 0x7FFFFFFF  # one dimension (int32 on every runtime)
MAX_TENSOR_BYTES = 1 << 30  # one tensor, when the device announced neither its RAM nor its arena
RAM_FIELDS = ("peak_ram_bytes", "arena_total_bytes", "arena_used_bytes", "stack_total_bytes",
              "stack_high_water_bytes", "heap_peak_bytes")
FLASH_FIELDS = ("flash_used_bytes", "model_bytes")
WALL_SLACK = (1.1, 1.0)  # a us/ns timing may exceed the host's wall clock by 10 % + 1 s (clock drift, latency)
HINT = ("the device firmware/app sends values PROTOCOL.md forbids, or the link rewrites frames: update or reflash "
        "the device; the value was not reported")
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535)}


def known(x: Any) -> bool:
    return isinstance(x, int) and x != P.UNKNOWN_U32


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF:
        return f"{value} (0x{value:x})"
    return repr(value) if isinstance(value, (str, float)) else str(value)


def violation(msg: str, field: str, value: Any, why: str) -> DeviceProtocolError:
    return DeviceProtocolError(f"the device sent {msg} with {field} = {_show(value)}: {why}", HINT, msg_type=msg,
                               field=field, value=value)


def check_hello(v: dict) -> None:
    m = "HELLO_REPLY"
    if v["version"] != P.VERSION:
        raise violation(m, "version", v["version"], f"this host speaks protocol version {P.VERSION}")
    if not P.MIN_PAYLOAD <= v["max_payload"] <= P.MAX_PAYLOAD:
        raise violation(m, "max_payload", v["max_payload"], f"must be {P.MIN_PAYLOAD}..{P.MAX_PAYLOAD}")
    for f in ("rx_window", "max_runs"):
        if v[f] < 1:
            raise violation(m, f, v[f], "must be at least 1")
    u = v["default_unit"]
    if u not in P.TimerUnit._value2member_map_ or not v["timer_units"] & (1 << u):
        raise violation(m, "default_unit", u, f"not a timer unit the device lists (timer_units = "
                                              f"0b{v['timer_units']:b})")
    for f in ("ram_bytes", "flash_bytes"):
        if v[f] == 0:
            raise violation(m, f, 0, "a size of 0 (0xFFFFFFFF means unknown)")


def _ram(info: P.DeviceInfo | None) -> int | None:
    return info.ram_bytes if info is not None and known(info.ram_bytes) else None


def check_model_info(v: dict, info: P.DeviceInfo | None) -> None:
    """dtype in the enum; 1 <= dims, rank <= MAX_RANK; each tensor within the announced arena and RAM."""
    m = "MODEL_INFO_REPLY"
    ram = _ram(info)
    arena = v["arena_bytes"] if known(v["arena_bytes"]) else None
    if arena is not None and ram is not None and arena > ram:
        raise violation(m, "arena_bytes", arena, f"above the device's announced RAM ({ram} B)")
    limits = [(x, what) for x, what in ((arena, "arena"), (ram, "RAM")) if x is not None]
    limit, what = min(limits) if limits else (MAX_TENSOR_BYTES, "host limit for a device announcing no RAM")
    total = 0
    for k, t in enumerate(v["tensors"]):
        name = f"input {k}" if k < v["n_inputs"] else f"output {k - v['n_inputs']}"
        if t["dtype"] not in P.DTYPE_SIZES:
            raise violation(m, f"{name} dtype", t["dtype"], f"not a dtype code of PROTOCOL.md (0..{len(P.DTYPES) - 1})")
        if len(t["shape"]) > MAX_RANK:
            raise violation(m, f"{name} ndim", len(t["shape"]), f"more than {MAX_RANK} dimensions")
        for d, n in enumerate(t["shape"]):
            if not 1 <= n <= MAX_DIM:
                raise violation(m, f"{name} dims[{d}]", n, f"a dimension must be 1..{MAX_DIM}")
        nbytes = P.tensor_nbytes(t)
        if nbytes > limit:
            raise violation(m, f"{name} dims", t["shape"], f"{nbytes} bytes, above the device's {what} ({limit} B)")
        total += nbytes
        scale = t["scale"]
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise violation(m, f"{name} scale", scale, "a quantization scale must be finite and positive")
        lo_hi = _INT_RANGES.get(t["dtype"])
        if scale is not None and lo_hi and not lo_hi[0] <= t["zero_point"] <= lo_hi[1]:
            raise violation(m, f"{name} zero_point", t["zero_point"], f"outside {t['dtype']}")
    if ram is not None and total > ram:
        raise violation(m, "tensors", total, f"inputs and outputs take more than the announced RAM ({ram} B)")


def check_memory(v: dict, info: P.DeviceInfo | None) -> None:
    """RAM figures at most the announced RAM; flash figures at most the announced flash; used <= total."""
    m = "GET_MEMORY_REPLY"
    ram = _ram(info)
    flash = info.flash_bytes if info is not None and known(info.flash_bytes) else None
    for fields, cap, what in ((RAM_FIELDS, ram, "RAM"), (FLASH_FIELDS, flash, "flash")):
        for f in fields:
            if cap is not None and known(v[f]) and v[f] > cap:
                raise violation(m, f, v[f], f"above the device's announced {what} ({cap} B)")
    for used, total in (("arena_used_bytes", "arena_total_bytes"), ("stack_high_water_bytes", "stack_total_bytes")):
        if known(v[used]) and known(v[total]) and v[used] > v[total]:
            raise violation(m, used, v[used], f"above {total} ({v[total]})")


def check_run_data(v: dict, msg: str, *, runs: int, unit: int | None, max_payload: int,
                   elapsed_s: float | None = None) -> None:
    """One RUN / GET_TIMINGS frame: the batch's unit (HELLO's), its run count, indices in range, and (us/ns) no
    timing longer than the time since RUN was sent."""
    if v["unit"] not in P.TimerUnit._value2member_map_:
        raise violation(msg, "unit", v["unit"], "not a timer unit of PROTOCOL.md")
    if unit is not None and v["unit"] != unit:
        raise violation(msg, "unit", v["unit"], f"this batch's unit is {P.UNIT_NAMES[P.TimerUnit(unit)]} "
                                                f"({unit}), as announced in HELLO")
    if v["total_runs"] != runs:
        raise violation(msg, "total_runs", v["total_runs"], f"the host asked for {runs} runs")
    per = (max_payload - P.RUN_DATA_FIXED) // 8
    if v["count"] > per:
        raise violation(msg, "count", v["count"], f"at most {per} timings fit a {max_payload}-byte payload")
    if v["first_index"] + v["count"] > runs:
        raise violation(msg, "first_index", v["first_index"], f"{v['count']} timings from there pass run {runs}")
    scale = {P.TimerUnit.US: 1e-6, P.TimerUnit.NS: 1e-9}.get(v["unit"])
    if scale and elapsed_s is not None and v["timings"]:
        worst = max(v["timings"])
        if worst * scale > elapsed_s * WALL_SLACK[0] + WALL_SLACK[1]:
            k = v["timings"].index(worst)
            raise violation(msg, f"timings[{v['first_index'] + k}]", worst,
                            f"longer than the {elapsed_s:.1f} s since RUN was sent")


def check_output(v: dict, *, index: int, total: int | None, max_payload: int) -> None:
    m = "GET_OUTPUT_REPLY"
    if v["index"] != index:
        raise violation(m, "index", v["index"], f"the host asked for output {index}")
    if total is not None and v["total"] != total:
        raise violation(m, "total", v["total"], f"MODEL_INFO gives output {index} {total} bytes")
    if v["offset"] + len(v["data"]) > v["total"]:
        raise violation(m, "offset", v["offset"], f"{len(v['data'])} bytes from there pass the total {v['total']}")


def check_op_timings(v: dict, info: P.DeviceInfo | None, total_ops: int | None) -> None:
    m = "GET_OP_TIMINGS_REPLY"
    u = v["unit"]
    if u not in P.TimerUnit._value2member_map_ or (info is not None and not info.timer_units & (1 << u)):
        raise violation(m, "unit", u, "not a timer unit the device announced in HELLO")
    if total_ops is not None and v["total_ops"] != total_ops:
        raise violation(m, "total_ops", v["total_ops"], f"an earlier frame said {total_ops}")
    if v["first_op"] + v["count"] > v["total_ops"]:
        raise violation(m, "first_op", v["first_op"], f"{v['count']} ops from there pass total_ops {v['total_ops']}")
