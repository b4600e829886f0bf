"""Firmware ports, one registry entry per ``firmware/ports/<board>/port.toml``.

A port says how to build and load firmware for a board (QEMU machine, pyocd target, status); the board's
numbers (clock, RAM, flash, power, each with a source) live in ``profiling/boards/<board>.toml``. Adding a board
is one port folder plus one board profile.
"""
from __future__ import annotations

import importlib.util
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ondevice.errors import ConfigError
from ondevice.registry import Registry

# The firmware folder ships as the package ondevice.firmware (repo: firmware/), so this holds in a wheel too.
FIRMWARE_DIR = Path(importlib.util.find_spec("ondevice.firmware").origin).resolve().parent
PORTS_DIR = FIRMWARE_DIR / "ports"
KINDS = ("qemu", "pyocd", "host")


@dataclass(frozen=True)
class Port:
    """How firmware is built and loaded for one board."""
    board: str
    kind: str                      # qemu | pyocd | host
    path: Path
    status: str = ""
    qemu_machine: str | None = None
    pyocd_target: str | None = None
    timer_unit: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def is_qemu(self) -> bool:
        return self.kind == "qemu"

    @property
    def sources(self) -> list[Path]:
        """The port's own C: ``PORT_SRCS`` of its port.mk (boards that share a port, e.g. the QEMU MPS images
        on ports/common/qemu_mps.c), else its port.c, as firmware/Makefile picks them."""
        mk = (self.path / "port.mk").read_text()
        m = re.search(r"^PORT_SRCS\s*:?=(.*)$", mk, re.M)
        if not m:
            return [self.path / "port.c"]
        words = m.group(1).replace("$(FW)", str(FIRMWARE_DIR)).replace("$(PORT_DIR)", str(self.path)).split()
        return [Path(w) for w in words]


def _check(name: str, port: Port) -> None:
    if port.kind not in KINDS:
        raise ValueError(f"port {name}: kind must be one of {KINDS}, got {port.kind!r}")
    if port.kind == "qemu" and not port.qemu_machine:
        raise ValueError(f"port {name}: a qemu port needs qemu_machine")
    if port.kind == "pyocd" and not port.pyocd_target:
        raise ValueError(f"port {name}: a pyocd port needs pyocd_target")
    for f in ("port_config.h", "port.mk"):
        if not (port.path / f).is_file():
            raise ValueError(f"port {name}: missing {f}")
    for src in port.sources:
        if not src.is_file():
            raise ValueError(f"port {name}: missing {src.name} (a port needs port.c, or PORT_SRCS in port.mk)")


def _load() -> None:
    """Register one port per ``firmware/ports/<board>/port.toml``."""
    for toml in sorted(PORTS_DIR.glob("*/port.toml")):
        with open(toml, "rb") as f:
            d = tomllib.load(f)
        name = d.get("board")
        if name != toml.parent.name:
            raise ConfigError(f"{toml}: board = {name!r} must match its folder name", "fix the port.toml")
        known = {"board", "kind", "status", "qemu_machine", "pyocd_target", "timer_unit"}
        PORTS.register(name)(Port(board=name, kind=d.get("kind", ""), path=toml.parent, status=d.get("status", ""),
                                  qemu_machine=d.get("qemu_machine"), pyocd_target=d.get("pyocd_target"),
                                  timer_unit=d.get("timer_unit", ""),
                                  extra={k: v for k, v in d.items() if k not in known}))


PORTS: Registry[Port] = Registry("board", _check, loader=_load)


def get_port(board: str) -> Port:
    """The port for ``board`` (e.g. ``qemu-mps2-an386``, ``nucleo-f446re``); ConfigError with a suggestion if unknown."""
    return PORTS.get(board)


def port_names() -> list[str]:
    return PORTS.names()


def qemu_port_for_machine(machine: str) -> Port:
    """The QEMU port whose machine is ``machine`` (``mps2-an386``) or whose board name is it (``qemu-mps2-an386``)."""
    for name, port in PORTS.items():
        if port.is_qemu and machine in (port.qemu_machine, name):
            return port
    machines = sorted(p.qemu_machine for _, p in PORTS.items() if p.is_qemu)
    raise ConfigError(f"no firmware port for QEMU machine {machine!r}", f"use one of: {', '.join(machines)}")
