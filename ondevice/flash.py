"""``ondevice flash --board B``: build the firmware (portable core + port + model) and load it onto the board.

- QEMU boards (``qemu-mps2-an386``, ``qemu-mps3-an547``): the ELF becomes the board's emulated flash image (the one
  ``qemu://<machine>`` boots when no ``elf=`` is given); the emulator is booted once and must answer BOOT + HELLO.
- pyocd boards (``nucleo-f446re``): the image is programmed through a CMSIS-DAP / ST-LINK probe with pyocd and the
  target is reset. Builds here; not run on hardware.

Firmware builds are cached by the content of every source that goes into them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ondevice import log
from ondevice.boards import Port, get_port
from ondevice.errors import ConfigError, ToolMissingError, TransportError
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
    from ondevice.profiling.session import DeviceSession
    from ondevice.profiling.transports import open_transport
    dest = state_dir() / port.board / "firmware.elf"
    with atomic_path(dest) as tmp:
        shutil.copyfile(elf, tmp)
    with open_transport(f"qemu://{port.qemu_machine}", firmware=dest) as t:
        boot, hello = DeviceSession(t, timeout=10).handshake()
    write_json_atomic(dest.with_name("flashed.json"), {"board": port.board, "source_elf": str(elf),
                                                        "boot": boot, "hello": hello})
    log.info(f"{port.board}: booted under QEMU ({hello['device']} on {hello['board']}, "
             f"{hello['clock_hz']} Hz, timer unit {hello['timer_unit']}); qemu://{port.qemu_machine} now boots it")
    return {"image": str(dest), "boot": boot, "hello": hello}


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
