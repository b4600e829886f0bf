"""``ondevice flash --board B``: build the firmware (portable core + port + model) and load it onto the board.

- QEMU boards (``qemu-mps2-an386``, ``qemu-mps3-an547``): the ELF becomes the board's emulated flash image (the one
  ``qemu://<machine>`` boots when no ``elf=`` is given); the emulator is booted once and must answer BOOT + HELLO.
- pyocd boards (``nucleo-f446re``): the image is programmed through a CMSIS-DAP / ST-LINK probe with pyocd and the
  target is reset. Builds here; not run on hardware.

Firmware builds are cached by the content of every source that goes into them.
"""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from ondevice import log
from ondevice.boards import Port, get_port
from ondevice.errors import ConfigError, DeviceError, ToolMissingError, TransportError
from ondevice.fsutil import atomic_path, write_json_atomic
from ondevice.mcu.firmware import build_firmware, firmware_sizes, model_dir, state_dir

def flash(board: str, artifact: str | Path | None = None, probe: str | None = None, *, variant: str = "opt",
          elf: str | Path | None = None) -> dict:
    """Build (unless ``elf`` is given) and load firmware onto ``board``; return what was flashed and how it booted."""
    port = get_port(board)
    built = elf is None
    elf = Path(elf) if elf is not None else build_firmware(board, artifact, variant=variant)
    model = model_dir(artifact).name if (artifact is not None or built) else None
    info = {"board": board, "elf": str(elf), "model": model,
            **firmware_sizes(elf), "status": port.status}
    if port.kind == "qemu":
        info.update(_flash_qemu(port, elf))
    elif port.kind == "pyocd":
        info.update(_flash_pyocd(port, elf, probe))
    else:
        raise ConfigError(f"board {board!r} cannot be flashed", "pick a QEMU or hardware board")
    log.info(f"flashed {board}: {info['flash_bytes']} bytes of flash, {info['static_ram_bytes']} bytes of static RAM")
    return info


def _flash_qemu(port: Port, elf: Path) -> dict:
    """Make ``elf`` the board's image, then boot it once: it must send BOOT and answer HELLO."""
    from ondevice.profiling.transports.qemu import QemuInstance
    dest = state_dir() / port.board / "firmware.elf"
    with atomic_path(dest) as tmp:
        shutil.copyfile(elf, tmp)
    with QemuInstance(port.qemu_machine, dest) as q:
        boot, hello = handshake(q.sock)
    write_json_atomic(dest.with_name("flashed.json"), {"board": port.board, "source_elf": str(elf),
                                                        "boot": boot, "hello": hello})
    log.info(f"{port.board}: booted under QEMU ({hello['device']} on {hello['board']}, "
             f"{hello['clock_hz']} Hz, timer unit {hello['timer_unit']}); qemu://{port.qemu_machine} now boots it")
    return {"image": str(dest), "boot": boot, "hello": hello}


def handshake(sock, timeout: float = 10.0) -> tuple[dict, dict]:
    """Wait for the BOOT frame on a fresh connection, then HELLO; return both decoded."""
    from ondevice.profiling import protocol as P
    dec = P.StreamDecoder()
    frames: list = []
    deadline = time.monotonic() + timeout

    def next_frame():
        while not frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError("the firmware sent no BOOT/HELLO frame within "
                                     f"{timeout:.0f} s", "check the port's UART settings and the ELF's board")
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                raise TransportError("the firmware closed the serial line", "check QEMU's output")
            frames.extend(dec.feed(data))
        return frames.pop(0)

    f = next_frame()
    if f.type != P.MsgType.BOOT:
        raise DeviceError(f"expected a BOOT frame after reset, got {f.type_name}", "the firmware may be too old")
    boot = P.unpack(f)
    boot = {"reset_reason": P.ResetReason(boot["reset_reason"]).name.lower()
            if boot["reset_reason"] in P.ResetReason._value2member_map_ else boot["reset_reason"],
            "boot_id": boot["boot_id"], "banner": bytes(boot["banner"]).decode(errors="replace")}
    sock.sendall(b"\x00" + P.message(P.MsgType.HELLO, 1, host_version=P.VERSION, host_max_payload=P.MAX_PAYLOAD))
    f = next_frame()
    if f.type != P.reply_type(P.MsgType.HELLO):
        raise DeviceError(f"expected HELLO_REPLY, got {f.type_name}", "the firmware may be too old")
    h = P.unpack(f)
    info = P.DeviceInfo.from_fields(h)
    hello = {"device": info.device, "runtime": info.runtime, "board": info.board, "clock_hz": info.clock_hz,
             "ram_bytes": info.ram_bytes, "flash_bytes": info.flash_bytes, "caps": info.caps,
             "timer_unit": P.UNIT_NAMES.get(info.default_unit, str(info.default_unit)), "max_runs": info.max_runs}
    return boot, hello


def _flash_pyocd(port: Port, elf: Path, probe: str | None) -> dict:
    """Program the image with pyocd (CMSIS-DAP / ST-LINK) and reset the target."""
    try:
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError:
        raise ToolMissingError("pyocd is not installed", "pip install pyocd") from None
    hexfile = elf.with_name("firmware.hex")
    try:
        probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=probe, print_wait_message=False)
    except Exception as e:  # noqa: BLE001 - pyocd raises many types; all mean "cannot reach a probe"
        raise _pyocd_error(port, e) from None
    if not probes:
        raise TransportError(f"no debug probe found for {port.board}" + (f" with UID {probe}" if probe else ""),
                             "plug the board's ST-LINK USB in; `pyocd list` shows probes (pass --probe UID)")
    if len(probes) > 1 and probe is None:
        uids = ", ".join(p.unique_id for p in probes)
        raise ConfigError(f"{len(probes)} debug probes are connected ({uids})", "pick one with --probe UID")
    try:
        session = ConnectHelper.session_with_chosen_probe(unique_id=probes[0].unique_id,
                                                          target_override=port.pyocd_target,
                                                          options={"frequency": 4_000_000})
    except Exception as e:  # noqa: BLE001
        raise _pyocd_error(port, e) from None
    try:
        with session:
            FileProgrammer(session).program(str(hexfile if hexfile.is_file() else elf))
            session.board.target.reset()
    except Exception as e:  # noqa: BLE001
        raise _pyocd_error(port, e) from None
    return {"probe": probe or "auto", "programmer": "pyocd", "pyocd_target": port.pyocd_target}


def _pyocd_error(port: Port, e: Exception) -> TransportError:
    text = str(e)
    if "target" in text.lower() and ("not" in text.lower() or "unknown" in text.lower()):
        return TransportError(f"pyocd does not know target {port.pyocd_target!r}: {text}",
                              f"install its CMSIS pack once: pyocd pack install {port.pyocd_target}")
    return TransportError(f"pyocd could not program {port.board}: {text}",
                          "check the USB cable and that no other debugger holds the probe")
