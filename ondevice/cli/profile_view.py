"""``ondevice profile`` for humans: profile, print one metrics table per device, say where the files are."""
from __future__ import annotations

from pathlib import Path

from ondevice import log
from ondevice.errors import OndeviceError


def print_table(result: dict) -> None:
    """The terminal summary of a profile (one table per device)."""
    from rich.table import Table

    from ondevice.profiling.report import fmt_value, ordered_metrics
    results = result["devices"] if "devices" in result else [result]
    for r in results:
        d = r.get("device", {})
        title = f"{d.get('name', d.get('url'))} ({d.get('runtime', '?')}, board {d.get('board', '?')}): " \
                f"{r.get('runs', 0)} runs, {r.get('status')}"
        t = Table(title=title)
        t.add_column("metric")
        t.add_column("value", justify="right")
        t.add_column("unit")
        t.add_column("source")
        for k, m in ordered_metrics(r.get("metrics", {})):
            t.add_row(k, fmt_value(m["value"]), m["unit"], m["source"])
        log.out.print(t)
        if r.get("error"):
            log.out.print(f"error: {r['error']['message']}")


def profile_cli(artifact, device, runs, warmup, power, board, out, mode: str = "model", timeout: float | None = None,
                retries: int | None = None, run_timeout: float | None = None) -> None:
    """The ``ondevice profile`` command: profile, print the table, say where the files are (None: the defaults)."""
    from ondevice.profiling.profiler import profile
    from ondevice.profiling.session import DEFAULT_RETRIES, DEFAULT_RUN_TIMEOUT
    try:
        result = profile(artifact, device, runs=runs, warmup=warmup, power=power, board=board, out=out, mode=mode,
                         timeout=timeout, retries=DEFAULT_RETRIES if retries is None else retries,
                         run_timeout=DEFAULT_RUN_TIMEOUT if run_timeout is None else run_timeout)
    except OndeviceError:
        if out is not None and (Path(out) / "profile.json").exists():
            log.info(f"partial results kept in {Path(out) / 'profile.json'}")
        raise
    print_table(result)
    log.info(f"wrote {Path(out) / 'profile.json'} and {Path(out) / 'report.html'}")
