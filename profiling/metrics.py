"""Turn raw device timings, memory stats and power samples into named metrics with a unit and a source.

Every metric is ``{"value": ..., "unit": ..., "source": "measured" | "emulated" | "modelled"}``:
- measured: read from real hardware or a real host runtime (a wall clock, a cycle counter, a power monitor);
- emulated: counted by an emulator (QEMU instructions under ``-icount shift=0``, emulated SysTick);
- modelled: computed from a model of the board (instructions / clock, active mW x time).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

SOURCES = ("measured", "emulated", "modelled")
LATENCY_KEYS = ("min", "p50", "p90", "p99", "max", "mean")


def metric(value, unit: str, source: str, **extra) -> dict:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    m = {"value": value, "unit": unit, "source": source}
    m.update(extra)
    return m


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), ``q`` in 0..100."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def to_ms(values: Iterable[int], unit: str, clock_hz: float | None, cpi: float = 1.0) -> list[float] | None:
    """Device timings -> milliseconds; None when the unit needs a clock we do not know."""
    values = list(values)
    if unit == "us":
        return [v / 1e3 for v in values]
    if unit == "ns":
        return [v / 1e6 for v in values]
    if unit in ("cycles", "instructions"):
        if not clock_hz:
            return None
        per = cpi if unit == "instructions" else 1.0
        return [v * per / clock_hz * 1e3 for v in values]
    raise ValueError(f"unknown timer unit {unit!r}")


def latency_source(unit: str, board_kind: str) -> str:
    """How latency in ms was obtained, given the device's timer unit and the board kind."""
    if unit == "instructions":
        return "modelled"  # instructions / clock assumes a CPI; only the count itself is exact
    return "emulated" if board_kind == "emulator" else "measured"


def latency_metrics(ms: Sequence[float], source: str) -> dict[str, dict]:
    if not ms:
        return {}
    vals = {"min": min(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "max": max(ms), "mean": sum(ms) / len(ms)}
    return {f"latency_{k}_ms": metric(round(vals[k], 6), "ms", source) for k in LATENCY_KEYS}


def compute_metrics(*, timings: Sequence[int], unit: str, clock_hz: float | None, board: dict,
                    memory: dict | None = None, model_bytes: int | None = None, power: dict | None = None,
                    device_stats: dict | None = None) -> dict[str, dict]:
    """All metrics for one device. ``board`` is a loaded board profile (see :mod:`ondevice.profiling.power`)."""
    kind = board.get("kind", "hardware")
    out: dict[str, dict] = {}
    clock = clock_hz or board.get("clock_hz", {}).get("value")
    cpi = board.get("cpi", {}).get("value", 1.0)
    ms = to_ms(timings, unit, clock, cpi) if timings else None
    if ms:
        out.update(latency_metrics(ms, latency_source(unit, kind)))
    if timings and unit == "instructions":
        out["instructions_per_inference"] = metric(round(sum(timings) / len(timings), 1), "instructions",
                                                   "emulated" if kind == "emulator" else "measured")
    if timings and unit == "cycles":
        out["cycles_per_inference"] = metric(round(sum(timings) / len(timings), 1), "cycles",
                                             "emulated" if kind == "emulator" else "measured")
    mem_source = "emulated" if kind == "emulator" else "measured"
    memory = memory or {}
    stats = device_stats or {}
    if memory.get("peak_ram_bytes") is not None:
        said = {"basis": memory["peak_ram_source"]} if memory.get("peak_ram_source") else {}
        out["peak_ram_bytes"] = metric(memory["peak_ram_bytes"], "bytes", mem_source, **said)
    elif stats.get("pss_bytes") is not None:
        out["peak_ram_bytes"] = metric(stats["pss_bytes"], "bytes", "measured", note="process PSS via dumpsys")
    if memory.get("arena_used_bytes") is not None:
        out["arena_bytes"] = metric(memory["arena_used_bytes"], "bytes", mem_source)
    if memory.get("stack_high_water_bytes") is not None:
        out["stack_high_water_bytes"] = metric(memory["stack_high_water_bytes"], "bytes", mem_source)
    if memory.get("flash_used_bytes") is not None:
        out["flash_bytes"] = metric(memory["flash_used_bytes"], "bytes", mem_source)
    elif model_bytes is not None:
        out["flash_bytes"] = metric(model_bytes, "bytes", "measured", note="model file size")
    if ms:
        mean_ms = sum(ms) / len(ms)
        energy = energy_metrics(mean_ms, power, board, latency_source(unit, kind))
        out.update(energy)
    return out


def energy_metrics(mean_ms: float, power: dict | None, board: dict, latency_src: str) -> dict[str, dict]:
    """Average power and energy per inference, from a power monitor when given, else the board power model."""
    if power and power.get("avg_mw") is not None:
        src = power.get("source", "measured")
        avg = power["avg_mw"]
        e_src = src if latency_src == "measured" else "modelled"
        said = {k: power[k] for k in ("idle_baseline_mw", "basis", "note") if k in power}  # e.g. baseline subtracted
        return {"avg_power_mw": metric(round(avg, 3), "mW", src, monitor=power.get("monitor"), **said),
                "energy_per_inference_mj": metric(round(avg * mean_ms / 1e3, 6), "mJ", e_src,
                                                  monitor=power.get("monitor"), **said)}
    active = board.get("active_mw")
    if not active or active.get("value") is None:
        return {}
    mw = float(active["value"])
    return {"avg_power_mw": metric(mw, "mW", "modelled", basis=f"board {board.get('name')} active_mw"),
            "energy_per_inference_mj": metric(round(mw * mean_ms / 1e3, 6), "mJ", "modelled",
                                              basis="active_mw x latency_mean_ms")}
