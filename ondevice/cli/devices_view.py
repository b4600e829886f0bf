"""``ondevice devices`` for humans: the attached-devices table and the notes on what could not be queried."""
from __future__ import annotations

from ondevice import log


def print_devices(devices: dict) -> None:
    """Render :func:`ondevice.profiling.devices.list_devices`'s result (kinds in its order)."""
    from rich.markup import escape
    from rich.table import Table
    t = Table(title="attached devices")
    t.add_column("kind")
    t.add_column("url")
    t.add_column("detail")
    for kind, entries in devices.items():
        if kind == "notes":
            continue
        for e in entries:
            if e.get("available", True):
                t.add_row(kind, escape(e["url"]), escape(e.get("detail", "")))
    log.out.print(t)
    for k, why in devices["notes"].items():
        log.info(escape(f"{k}: {why}"))
