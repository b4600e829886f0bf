"""``ondevice devices``: what is attached, as device URLs (serial ports, adb, usbmux, QEMU boards, simulators)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ondevice import log


def serial_ports() -> list[dict]:
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    out = []
    for p in list_ports.comports():
        out.append({"url": f"serial://{p.device}", "kind": "serial",
                    "detail": " ".join(x for x in (p.description, p.product or "", p.serial_number or "") if x
                                       and x != "n/a")})
    return out


def adb_devices() -> tuple[list[dict], str | None]:
    try:
        import adbutils
        devs = adbutils.AdbClient(host="127.0.0.1", port=5037, socket_timeout=2).device_list()
    except ImportError:
        return [], "adbutils is not installed"
    except Exception as e:  # noqa: BLE001 - no adb server running is a normal state
        return [], f"adb server not reachable ({type(e).__name__})"
    out = []
    for d in devs:
        try:
            model = d.prop.model
        except Exception:  # noqa: BLE001
            model = ""
        out.append({"url": f"adb://{d.serial}", "kind": "adb", "detail": model or "android device"})
    return out, None


def usbmux_devices() -> tuple[list[dict], str | None]:
    try:
        from pymobiledevice3 import usbmux
    except ImportError:
        return [], "pymobiledevice3 is not installed (pip install 'ondevice[ios]')"
    try:
        devs = usbmux.list_devices()
    except Exception as e:  # noqa: BLE001 - no usbmuxd is a normal state on Linux
        return [], f"usbmuxd not reachable ({type(e).__name__})"
    return [{"url": f"ios://{d.serial}", "kind": "ios", "detail": getattr(d, "connection_type", "usb")}
            for d in devs], None


def qemu_boards() -> tuple[list[dict], str | None]:
    if shutil.which("qemu-system-arm") is None:
        return [], "qemu-system-arm is not installed"
    from ondevice.profiling.power import board_names, load_board
    out = []
    for name in board_names():
        b = load_board(name)
        if b.get("kind") == "emulator":
            # with no elf= the qemu transport boots the image last flashed for that board
            out.append({"url": f"qemu://{b.get('qemu_machine', name)}", "kind": "qemu",
                        "detail": b.get("description", "")})
    return out, None


def sim_runtimes() -> list[dict]:
    from ondevice.runtimes.base import get_runtime, runtime_names
    out = []
    for name in runtime_names():
        rt = get_runtime(name)
        # installed() where a runtime has it: available() may import torch, and listing must stay fast
        ok, why = getattr(rt, "installed", rt.available)()
        runs = f"runs {', '.join(rt.extensions)}" if rt.extensions else "host runtime (pick it explicitly)"
        out.append({"url": f"sim://{name}", "kind": "sim", "available": ok, "detail": runs if ok else why,
                    "extensions": list(rt.extensions)})
    return out


def list_devices() -> dict:
    """Everything ``ondevice devices`` shows, plus notes on what could not be queried."""
    notes = {}
    adb, notes["adb"] = adb_devices()
    ios, notes["ios"] = usbmux_devices()
    qemu, notes["qemu"] = qemu_boards()
    return {"serial": serial_ports(), "adb": adb, "ios": ios, "qemu": qemu, "sim": sim_runtimes(),
            "notes": {k: v for k, v in notes.items() if v}}


def print_devices() -> None:
    from rich.markup import escape
    from rich.table import Table
    d = list_devices()
    t = Table(title="attached devices")
    t.add_column("kind")
    t.add_column("url")
    t.add_column("detail")
    for kind in ("serial", "adb", "ios", "qemu", "sim"):
        for e in d[kind]:
            if e.get("available", True):
                t.add_row(kind, escape(e["url"]), escape(e.get("detail", "")))
    log.out.print(t)
    for k, why in d["notes"].items():
        log.info(escape(f"{k}: {why}"))


def urls_for_all(artifact) -> list[str]:
    """Devices ``--device all`` profiles: adb and iOS devices, the sim runtimes that run this artifact, and for an
    mcu artifact (a folder) every QEMU board (the qemu transport builds and boots firmware for it).

    Serial ports are left out: an arbitrary port may not be an ondevice agent, and probing it could disturb it.
    """
    path = Path(str(artifact))
    d = list_devices()
    urls = [e["url"] for e in d["adb"]] + [e["url"] for e in d["ios"]]
    urls += [e["url"] for e in d["sim"] if e.get("available") and path.suffix in e.get("extensions", [])]
    from ondevice.source import mcu_can_run
    if path.is_dir() or (path.suffix == ".tflite" and mcu_can_run(path)):  # boots as its mcu build, made and cached
        urls += [e["url"] for e in d["qemu"]]
    return urls
