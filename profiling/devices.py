"""``ondevice devices``: what is attached, as device URLs. Each transport discovers its own kind
(:meth:`~ondevice.profiling.transports.Transport.discover`): serial ports, adb, usbmux, QEMU boards, simulators."""
from __future__ import annotations

from pathlib import Path

from ondevice.errors import OndeviceError


def list_devices() -> dict:
    """Everything ``ondevice devices`` shows, by kind (the URL scheme, in listing order), plus ``notes`` on what
    could not be queried."""
    from ondevice.profiling.transports import TRANSPORTS
    out: dict = {}
    notes = {}
    for scheme, cls in sorted(TRANSPORTS.items(), key=lambda kv: (kv[1].list_rank, kv[0])):
        try:
            out[scheme] = [a.as_dict() for a in cls.discover()]
        except OndeviceError as e:
            out[scheme], notes[scheme] = [], e.message
    out["notes"] = notes
    return out


def urls_for_all(artifact) -> list[str]:
    """Devices ``--device all`` profiles: adb and iOS devices, the sim runtimes that run this artifact, and for an
    mcu artifact (a folder) every QEMU board (the profiler builds and boots firmware for it).

    Serial ports are left out: an arbitrary port may not be an ondevice agent, and probing it could disturb it.
    """
    path = Path(str(artifact))
    d = list_devices()
    urls = [e["url"] for e in d.get("adb", [])] + [e["url"] for e in d.get("ios", [])]
    urls += [e["url"] for e in d.get("sim", []) if e.get("available") and path.suffix in e.get("extensions", [])]
    from ondevice.source import mcu_can_run
    if path.is_dir() or (path.suffix == ".tflite" and mcu_can_run(path)):  # boots as its mcu build, made and cached
        urls += [e["url"] for e in d.get("qemu", [])]
    return urls
