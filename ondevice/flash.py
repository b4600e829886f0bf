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


def verify_on_device(artifact: str | Path, inputs, board: str = "qemu-mps2-an386",
                     variants: tuple[str, ...] = ("opt", "ref"), device: str | None = None) -> dict:
    """The ``mcu-qemu`` verify entry: the firmware runs ``artifact`` on the board and answers over its serial line;
    every output is compared bit for bit with the TFLM interpreter on the artifact's ``source.tflite``.

    ``inputs`` as for :func:`ondevice.mcu.verify.verify_host`. QEMU boards build and boot firmware per kernel
    variant; for a real board pass ``device`` (e.g. ``serial:///dev/ttyACM0``) of a board already flashed with it
    (then only the variant it was built with is checked). Returns the verify report entry.
    """
    import numpy as np

    from ondevice.errors import VerifyError
    from ondevice.mcu.library import SOURCE_TFLITE, read_summary
    from ondevice.mcu.tflm_ref import TflmReference
    from ondevice.mcu.verify import _as_vectors, _compare, _quantize
    from ondevice.profiling.session import DeviceSession
    from ondevice.profiling.transports import open_transport

    lib = Path(artifact)
    summary = read_summary(lib)
    ref = TflmReference((lib / SOURCE_TFLITE).read_bytes())
    specs = summary["inputs"]
    vecs = [[_quantize(x, s) for x, s in zip(v, specs)] for v in _as_vectors(inputs, len(specs))]
    if not vecs:
        raise VerifyError("no input vectors to compare", "pass at least one input vector")
    wants = [ref.run(q) for q in vecs]
    port = get_port(board)
    if device is None and not port.is_qemu:
        raise ConfigError(f"{board} is real hardware: pass the serial URL of a board flashed with {lib.name}",
                          "e.g. device='serial:///dev/ttyACM0' after `ondevice flash --board ...`")
    if device is not None:
        variants = ("as-flashed",)
    mismatched, max_diff, instructions, unit = {}, {}, {}, None
    for variant in variants:
        url = device or f"qemu://{port.qemu_machine}?elf={build_firmware(board, lib, variant=variant)}"
        t = open_transport(url)
        try:
            s = DeviceSession(t, timeout=10)
            s.hello()
            s.select_builtin(name=summary["model"])
            mi = s.model_info()
            outs = mi["tensors"][mi["n_inputs"]:]
            bad, worst, times = 0, 0, []
            for q, want in zip(vecs, wants):
                for i, x in enumerate(q):
                    s.set_input(i, np.ascontiguousarray(x).tobytes())
                unit, ts = s.run(1, 0)
                times += ts
                # bytes compared as they are: float32 outputs (DEQUANTIZE inside) must match bit for bit too
                got = [np.frombuffer(s.get_output(k), spec["dtype"]) for k, spec in enumerate(outs[:len(want)])]
                d, same = _compare(got, want)
                worst = max(worst, d)
                bad += int(not same)
        finally:
            t.close()
        mismatched[variant], max_diff[variant] = bad, worst
        instructions[variant] = int(np.median(times))
    return {
        "runtime": "mcu-qemu" if device is None else "mcu-device",
        "board": board,
        "link": "serial (PROTOCOL.md frames over the board's UART)",
        "bit_exact_vs_tflm": all(n == 0 for n in mismatched.values()),
        "vectors": len(vecs),
        "elements_compared": sum(w.size for ws in wants for w in ws),
        "mismatched_vectors": mismatched,
        "max_abs_diff_int8": max_diff,
        "kernel_variants": list(variants),
        "per_inference_median": instructions,
        "timer_unit": unit,
        "source": "emulated" if device is None else "measured",
    }
