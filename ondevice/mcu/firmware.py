"""Firmware builds: the portable core + a board's port + a generated model, compiled with arm-none-eabi-gcc.

Builds are cached under the ondevice cache by the content of every source that goes into them. An emulated board's
"flashed" image (what ``qemu://<machine>`` boots when no image is given) is kept here too.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from ondevice import log
from ondevice.boards import FIRMWARE_DIR, get_port
from ondevice.cache import cache_dir
from ondevice.errors import ConfigError, ExportError, ToolMissingError
from ondevice.fsutil import atomic_path

TESTMODEL_DIR = FIRMWARE_DIR / "core" / "testmodel"
ARM_GCC = "arm-none-eabi-gcc"


def state_dir() -> Path:
    """Where each emulated board keeps its 'flashed' image between commands."""
    return cache_dir("flashed")


def model_dir(artifact: str | Path | None) -> Path:
    if artifact is None:
        return TESTMODEL_DIR
    p = Path(artifact)
    if not p.is_dir() or not any(p.glob("*.c")):
        raise ConfigError(f"{p} is not an mcu artifact folder (C sources of a generated model)",
                          "export one with `ondevice export --target mcu`; it is named <model>_mcu_int8/")
    return p


def _digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(paths):
        h.update(str(f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build_firmware(board: str, artifact: str | Path | None = None, variant: str = "opt",
                   jobs: int = 2, extra_cflags: str = "") -> Path:
    """Build the firmware ELF for ``board`` with the model in ``artifact`` (an mcu folder; None = the test fixture).

    ``extra_cflags`` adds port options, e.g. ``-DOD_F446_HSI_ONLY=1``.
    Returns the ELF path (beside it: ``firmware.bin``, ``firmware.hex``, ``firmware.map``, ``size.txt``).
    """
    port = get_port(board)
    if port.kind == "host":
        raise ConfigError("the host port is built by `make -C firmware host`, not flashed", "pick a board")
    if variant not in ("opt", "ref"):
        raise ConfigError(f"variant must be 'opt' or 'ref', not {variant!r}")
    if shutil.which("make") is None:
        raise ToolMissingError("make is not installed", "apt-get install make")
    if shutil.which(ARM_GCC) is None:
        raise ToolMissingError(f"{ARM_GCC} is not installed",
                               "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    model = model_dir(artifact).resolve()
    from ondevice.features import config_hash
    srcs = [p for d in ("core", "include", "tools", "ports/common", f"ports/{board}")
            for p in (FIRMWARE_DIR / d).glob("*") if p.is_file()]
    srcs += [FIRMWARE_DIR / "Makefile"]
    srcs += [p for p in model.rglob("*") if p.is_file() and p.suffix in (".c", ".h")]
    if not any((model / "kernels").glob("*.c")) and model != TESTMODEL_DIR:
        srcs += list((FIRMWARE_DIR / "kernels").glob("od_*.[ch]"))
    extra = " ".join(x for x in (_agent_sizes(model), extra_cflags) if x)
    key = _digest(srcs, f"{board} {variant} {model.name} {config_hash()} {extra}")[:16]
    out = cache_dir("firmware") / f"{board}-{model.name}-{variant}-{key}"
    elf = out / "firmware.elf"
    if elf.is_file():
        return elf
    log.info(f"building firmware for {board} with {model.name} ({variant} kernels)")
    with atomic_path(out) as tmp:
        cmd = ["make", "-s", "-C", str(FIRMWARE_DIR), f"-j{jobs}", f"PORT={board}", f"MODEL={model}", f"O={tmp}",
               f"VARIANT={variant}", f"PYTHON={sys.executable}", f"EXTRA_CFLAGS={extra}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ExportError(f"firmware build for {board} failed: {(r.stderr or r.stdout).strip()[-1200:]}",
                              "if the model folder is from an older export, re-export it (ondevice export --target mcu)")
        shutil.rmtree(tmp / "obj", ignore_errors=True)
    return elf


def _agent_sizes(model: Path) -> str:
    """Compiler flags that size the agent's static input staging to the model (from the library's model.json)."""
    import json
    summary = model / "model.json"
    if not summary.is_file():
        return ""
    try:
        inputs = json.loads(summary.read_text())["inputs"]
        import numpy as np
        need = sum(int(np.prod(i["shape"])) * np.dtype(i["dtype"]).itemsize for i in inputs)
    except (ValueError, KeyError, TypeError):
        return ""
    return f"-DOD_INPUT_STAGE_BYTES={max(16, (need + 15) // 16 * 16)}u"


def firmware_sizes(elf: str | Path) -> dict:
    """Flash and static RAM of an ELF from its section headers: flash = .isr_vector + .text + .rodata + .data
    (+ .ARM.exidx), static RAM = .data + .bss (the model arena lives in .bss)."""
    from elftools.elf.elffile import ELFFile
    sizes: dict[str, int] = {}
    with open(elf, "rb") as f:
        for s in ELFFile(f).iter_sections():
            sizes[s.name] = s["sh_size"]
    flash_parts = (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data")
    return {"flash_bytes": sum(sizes.get(k, 0) for k in flash_parts),
            "text_bytes": sizes.get(".text", 0) + sizes.get(".isr_vector", 0),
            "rodata_bytes": sizes.get(".rodata", 0), "data_bytes": sizes.get(".data", 0),
            "bss_bytes": sizes.get(".bss", 0), "stack_bytes": sizes.get(".stack", 0),
            "static_ram_bytes": sizes.get(".data", 0) + sizes.get(".bss", 0)}


def flashed_image(board: str) -> Path | None:
    """The ELF last flashed to an emulated board, or None."""
    p = state_dir() / board / "firmware.elf"
    return p if p.is_file() else None


def flashed_info(board: str) -> dict | None:
    """What was last flashed to an emulated board (source ELF, BOOT and HELLO answers), or None."""
    import json
    p = state_dir() / board / "flashed.json"
    if not p.is_file() or flashed_image(board) is None:
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None
