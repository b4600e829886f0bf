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
    """Devices ``--device all`` profiles, by each transport's ``device_all``: phones (adb, iOS), the sim runtimes
    that run this artifact, and for an mcu artifact (a folder, or a .tflite the MCU engine takes) every QEMU board
    (the profiler builds and boots firmware for it).

    Serial ports are left out: an arbitrary port may not be an ondevice agent, and probing it could disturb it.
    """
    from ondevice.profiling.transports import TRANSPORTS
    path = Path(str(artifact))
    found = list_devices()
    mcu = None  # checked once, and only when an emulated board is attached
    urls = []
    for scheme, cls in sorted(TRANSPORTS.items(), key=lambda kv: (kv[1].list_rank, kv[0])):
        for e in found.get(scheme, []):
            if cls.device_all == "mcu" and mcu is None:
                from ondevice.source import mcu_can_run
                mcu = path.is_dir() or (path.suffix == ".tflite" and mcu_can_run(path))  # runs as its cached mcu build
            if (cls.device_all == "any" or (cls.device_all == "mcu" and mcu)
                    or (cls.device_all == "extensions" and e.get("available") and path.suffix in e["extensions"])):
                urls.append(e["url"])
    return urls
