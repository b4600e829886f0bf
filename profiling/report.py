"""Reports: a self-contained ``report.html`` with inline SVG plots (the terminal table is
:mod:`ondevice.cli.profile_view`).

The HTML needs no network and no JavaScript: latency histogram, run timeline, per-op bars (when the device
reports them) and a memory bar against the board's RAM. Each plot is an ``<svg>`` with a ``data-plot`` name so
tests (and people) can find it.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from ondevice.fsutil import write_bytes_atomic
from ondevice.profiling.metrics import to_ms

METRIC_ORDER = ("latency_min_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms",
                "latency_mean_ms", "instructions_per_inference", "cycles_per_inference", "peak_ram_bytes",
                "arena_bytes", "stack_high_water_bytes", "flash_bytes", "avg_power_mw", "energy_per_inference_mj")


def fmt_value(v) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def ordered_metrics(metrics: dict) -> list[tuple[str, dict]]:
    keys = [k for k in METRIC_ORDER if k in metrics] + sorted(k for k in metrics if k not in METRIC_ORDER)
    return [(k, metrics[k]) for k in keys]


# ---------------------------------------------------------------------------------------------------------------
# SVG plots (plain strings; no plotting library, so the page is small and self-contained)

W, H, PAD = 560, 220, 44


def _axis(x0, y0, x1, y1, xlabel: str, ylabel: str) -> str:
    return (f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" class="ax"/>'
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" class="ax"/>'
            f'<text x="{(x0 + x1) / 2}" y="{H - 6}" class="lbl" text-anchor="middle">{html.escape(xlabel)}</text>'
            f'<text x="12" y="{(y0 + y1) / 2}" class="lbl" text-anchor="middle" '
            f'transform="rotate(-90 12 {(y0 + y1) / 2})">{html.escape(ylabel)}</text>')


def _svg(name: str, title: str, body: str, h: int = H) -> str:
    return (f'<figure><figcaption>{html.escape(title)}</figcaption>'
            f'<svg data-plot="{name}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" '
            f'viewBox="0 0 {W} {h}" role="img" aria-label="{html.escape(title)}">{body}</svg></figure>')


def _tick(v: float, lo: float, hi: float) -> str:
    """A tick label with enough digits to tell ``lo`` from ``hi`` (runs on an emulator differ in the 7th digit)."""
    span = hi - lo
    digits = 4 if span <= 0 or not v else max(4, int(math.ceil(math.log10(max(abs(lo), abs(hi)) / span))) + 2)
    return f"{v:.{min(digits, 12)}g}"


def histogram_svg(values: list[float], unit: str, bins: int = 20) -> str:
    lo, hi = min(values), max(values)
    span = (hi - lo) or (abs(hi) * 0.01 or 1.0)
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    x0, y0, x1, y1 = PAD, 16, W - 12, H - PAD
    bw = (x1 - x0) / bins
    bars = "".join(
        f'<rect class="bar" x="{x0 + i * bw + 1:.1f}" y="{y1 - (c / top) * (y1 - y0):.1f}" width="{bw - 2:.1f}" '
        f'height="{(c / top) * (y1 - y0):.1f}"><title>{lo + i * span / bins:.4g}-{lo + (i + 1) * span / bins:.4g} '
        f'{unit}: {c} runs</title></rect>' for i, c in enumerate(counts))
    ticks = (f'<text x="{x0}" y="{y1 + 14}" class="tk">{_tick(lo, lo, hi)}</text>'
             f'<text x="{x1}" y="{y1 + 14}" class="tk" text-anchor="end">{_tick(hi, lo, hi)}</text>'
             f'<text x="{x0 - 4}" y="{y0 + 8}" class="tk" text-anchor="end">{top}</text>')
    return _svg("latency-histogram", f"Latency histogram ({len(values)} runs)",
                bars + ticks + _axis(x0, y0, x1, y1, f"latency ({unit})", "runs"))


def timeline_svg(values: list[float], unit: str) -> str:
    lo, hi = min(values), max(values)
    span = (hi - lo) or (abs(hi) * 0.01 or 1.0)
    x0, y0, x1, y1 = PAD, 16, W - 12, H - PAD
    n = len(values)
    pts = " ".join(f"{x0 + (i / max(1, n - 1)) * (x1 - x0):.1f},{y1 - ((v - lo) / span) * (y1 - y0 - 8) - 4:.1f}"
                   for i, v in enumerate(values))
    ticks = (f'<text x="{x0 + 4}" y="{y1 - 4}" class="tk">{_tick(lo, lo, hi)}</text>'
             f'<text x="{x0 + 4}" y="{y0 + 8}" class="tk">{_tick(hi, lo, hi)}</text>'
             f'<text x="{x1}" y="{y1 + 14}" class="tk" text-anchor="end">{n}</text>')
    return _svg("run-timeline", "Run timeline", f'<polyline class="line" points="{pts}"/>' + ticks
                + _axis(x0, y0, x1, y1, "run", f"latency ({unit})"))


def ops_svg(ops: list[dict], unit: str, top: int = 15) -> str:
    ops = sorted(ops, key=lambda o: -o["time"])[:top]
    big = max(o["time"] for o in ops) or 1
    row = 18
    h = 24 + row * len(ops)
    label_w = 250
    body = ""
    for i, o in enumerate(ops):
        y = 12 + i * row
        w = (o["time"] / big) * (W - label_w - 90)
        label = f'#{o["index"]} {o["name"]}' if "index" in o else o["name"]
        body += (f'<text x="{label_w - 6}" y="{y + 12}" class="tk" text-anchor="end">{html.escape(label[:40])}'
                 f'</text><rect class="bar" x="{label_w}" y="{y}" width="{max(w, 1):.1f}" height="{row - 4}">'
                 f'<title>{html.escape(o["name"])}: {o["time"]} {unit}</title></rect>'
                 f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" class="tk">{fmt_value(o["time"])}</text>')
    return _svg("op-timings", f"Per-op time per run ({unit}; top {len(ops)})", body, h)


def memory_svg(used: dict[str, int], ram: int | None) -> str:
    total = ram or max(used.values())
    x0, x1 = 150, W - 80
    row = 26
    h = 20 + row * (len(used) + 1)
    body = ""
    items = list(used.items()) + ([("board RAM", ram)] if ram else [])
    for i, (k, v) in enumerate(items):
        y = 10 + i * row
        w = min(1.0, v / total) * (x1 - x0)
        cls = "cap" if k == "board RAM" else "bar"
        body += (f'<text x="{x0 - 6}" y="{y + 14}" class="tk" text-anchor="end">{html.escape(k)}</text>'
                 f'<rect class="{cls}" x="{x0}" y="{y}" width="{max(w, 1):.1f}" height="{row - 8}">'
                 f'<title>{k}: {v} bytes</title></rect>'
                 f'<text x="{x0 + w + 4:.1f}" y="{y + 14}" class="tk">{fmt_value(v)} B'
                 f'{f" ({100 * v / ram:.1f}%)" if ram and k != "board RAM" else ""}</text>')
    return _svg("memory", "Memory against the board's RAM" if ram else "Memory", body, h)


CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.src-measured{color:#17663a}.src-emulated{color:#8a5a00}.src-modelled{color:#7a2f8f}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}figcaption{font-weight:600;margin-bottom:4px}
svg .bar{fill:#4a78b5}svg .cap{fill:#d9d9d9}svg .line{fill:none;stroke:#4a78b5;stroke-width:1.5}
svg .ax{stroke:#555}svg .lbl{font-size:12px;fill:#333}svg .tk{font-size:11px;fill:#444}
.err{color:#a00;font-weight:600}code{background:#f3f3f3;padding:1px 4px}"""


def _device_section(r: dict) -> str:
    d = r.get("device", {})
    parts = [f'<section class="device"><h2>{html.escape(str(d.get("name", d.get("url"))))} '
             f'<small>({html.escape(str(d.get("url")))})</small></h2>']
    parts.append(f'<p>runtime <code>{html.escape(str(d.get("runtime")))}</code>, board '
                 f'<code>{html.escape(str(d.get("board")))}</code> ({html.escape(str(d.get("board_kind")))}), '
                 f'{r.get("runs", 0)} runs after {r.get("warmup", 0)} warm-ups, status '
                 f'<b>{html.escape(str(r.get("status")))}</b></p>')
    if r.get("error"):
        parts.append(f'<p class="err">{html.escape(r["error"]["message"])}'
                     f'{" (hint: " + html.escape(r["error"]["hint"]) + ")" if r["error"].get("hint") else ""}</p>')
    rows = "".join(f'<tr><td>{k}</td><td class="num">{html.escape(fmt_value(m["value"]))}</td><td>{m["unit"]}</td>'
                   f'<td class="src-{m["source"]}">{m["source"]}</td></tr>'
                   for k, m in ordered_metrics(r.get("metrics", {})))
    parts.append(f'<table class="metrics"><tr><th>metric</th><th>value</th><th>unit</th><th>source</th></tr>'
                 f'{rows}</table>')
    tim = r.get("timings") or {}
    vals = tim.get("values") or []
    if vals:
        # counted units (an emulator's instructions, a cycle counter) are plotted as counted, not as modelled ms
        ms = None if tim["unit"] in ("instructions", "cycles") else to_ms(vals, tim["unit"], None)
        values, unit = (ms, "ms") if ms else ([float(v) for v in vals], tim["unit"])
        parts.append(histogram_svg(values, unit))
        parts.append(timeline_svg(values, unit))
    ops = (r.get("op_timings") or {}).get("ops")
    if ops:
        parts.append(ops_svg(ops, r["op_timings"]["unit"]))
    mem = r.get("memory") or {}
    used = {k.replace("_bytes", "").replace("_", " "): v for k, v in mem.items()
            if v is not None and k in ("peak_ram_bytes", "arena_used_bytes", "stack_high_water_bytes")}
    if not used and "peak_ram_bytes" in r.get("metrics", {}):
        used = {"peak ram": r["metrics"]["peak_ram_bytes"]["value"]}
    if used:
        parts.append(memory_svg(used, d.get("ram_bytes")))
    parts.append("</section>")
    return "".join(parts)


def render_html(results: list[dict], title: str) -> str:
    body = "".join(_device_section(r) for r in results)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>'
            f'<p>Sources: <span class="src-measured">measured</span> on the device or host runtime, '
            f'<span class="src-emulated">emulated</span> by an emulator, <span class="src-modelled">modelled</span> '
            f'from a board profile.</p>{body}</body></html>\n')


def write_html(result: dict, path: str | Path) -> Path:
    art = result.get("artifact", {})
    title = f"ondevice profile: {art.get('name', '')}"
    return write_bytes_atomic(path, render_html([result], title).encode())


def write_html_all(combined: dict, path: str | Path) -> Path:
    title = f"ondevice profile: {Path(str(combined.get('artifact', ''))).name} on {len(combined['devices'])} devices"
    return write_bytes_atomic(path, render_html(combined["devices"], title).encode())
