"""``qemu://<machine>?elf=FIRMWARE.elf``: boot firmware in qemu-system-arm and talk to it over its UART.

- ``qemu://mps2-an386`` (Cortex-M4F) and ``qemu://mps3-an547`` (Cortex-M55); ``qemu-mps2-an386`` works too.
- ``elf=`` names the firmware; ``artifact=`` builds it for an mcu artifact folder; with neither, the image last
  written by ``ondevice flash --board qemu-<machine>`` is booted (QEMU's "flash").
- QEMU runs with ``-icount shift=0``: one instruction per ns of virtual time, so SysTick counts instructions
  and every run of the same firmware gives the same numbers. DWT CYCCNT is not emulated.
- UART0 is a TCP server on 127.0.0.1 with ``nodelay=on`` (about 44 ms per round trip without it). QEMU starts
  paused (``-S``) and is continued through its monitor only once we are connected, so no boot byte is lost.
- QEMU is always stopped by PID at the end: on close, on errors and at interpreter exit.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from urllib.parse import quote

from ondevice.errors import ConfigError, ToolMissingError, TransportError
from ondevice.profiling.transports import TRANSPORTS, split_url
from ondevice.profiling.transports.socket import SocketStream

QEMU = "qemu-system-arm"
_LIVE: "weakref.WeakSet[QemuInstance]" = weakref.WeakSet()


def _stop_all() -> None:
    for inst in list(_LIVE):
        inst.stop()


atexit.register(_stop_all)


def _monitor(p: subprocess.Popen, cmd: str) -> None:
    """One command to QEMU's human monitor on its stdin (cont, quit)."""
    try:
        p.stdin.write((cmd + "\n").encode())
        p.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _die_with_parent() -> None:
    """In the child before exec: on Linux, SIGTERM QEMU if we die without cleaning up (kill -9, OOM killer), so no
    orphaned emulator keeps a core busy polling its UART."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuInstance:
    """One qemu-system-arm process with its UART0 on a local TCP socket. Use as a context manager."""

    def __init__(self, machine: str, elf: str | Path, icount: str = "shift=0", extra: list[str] | None = None,
                 connect_timeout: float = 10.0, serial_index: int = 0):
        self.machine = machine
        self.serial_index = serial_index  # which of the machine's UARTs is the host link (0 = the first)
        self.elf = Path(elf)
        self.icount = icount
        self.extra = list(extra or [])
        self.connect_timeout = connect_timeout
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.port: int | None = None
        self._err = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self, port: int) -> list[str]:
        return [QEMU, "-M", self.machine, "-display", "none", "-monitor", "stdio", "-S",
                "-icount", self.icount, "-kernel", str(self.elf), *(["-serial", "null"] * self.serial_index),
                "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on", *self.extra]

    def start(self, paused: bool = False) -> "QemuInstance":
        """Launch QEMU and connect to its UART; then let the CPU run unless ``paused`` (see :meth:`cont`)."""
        if shutil.which(QEMU) is None:
            raise ToolMissingError(f"{QEMU} is not installed",
                                   "apt-get install qemu-system-arm (scripts/setup.sh --with-tests does it)")
        if not self.elf.is_file():
            raise ConfigError(f"firmware {self.elf} does not exist", "build it with `ondevice flash --board ...`")
        last = ""
        for _ in range(3):  # the free port can be taken between our probe and QEMU's bind: retry on another
            self.port = _free_port()
            self._err = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.command(self.port), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._err, start_new_session=True, preexec_fn=_die_with_parent)
            _LIVE.add(self)
            try:
                self._connect()
                if not paused:
                    self.cont()
                return self
            except TransportError as e:
                last = str(e)
                self.stop()
                if "in use" not in last.lower():
                    raise
        raise TransportError(f"QEMU could not open its serial port: {last}", "retry; another program grabbed the port")

    def cont(self) -> None:
        """Start (or resume) the emulated CPU."""
        _monitor(self.proc, "cont")

    def _stderr(self) -> str:
        if self._err is None:
            return ""
        self._err.seek(0)
        return self._err.read().decode(errors="replace").strip()[-600:]

    def _connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            if self.proc.poll() is not None:
                raise TransportError(f"QEMU ({self.machine}) exited with code {self.proc.returncode}: {self._stderr()}",
                                     "check the ELF was built for this machine (ondevice flash --board qemu-...)")
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TransportError(f"QEMU's serial port 127.0.0.1:{self.port} never accepted a connection",
                                         "the machine may be overloaded; retry") from None
                time.sleep(0.02)

    def stop(self) -> int | None:
        """Quit QEMU (monitor, then SIGTERM, then SIGKILL, by PID); idempotent. Returns its exit code."""
        p, self.proc = self.proc, None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        _LIVE.discard(self)
        if p is None:
            return None
        if p.poll() is None:
            _monitor(p, "quit")
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.kill(p.pid, sig)
                        p.wait(timeout=2.0)
                        break
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        continue
        for f in (p.stdin, self._err):
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing after a crash must not mask the real error
                pass
        return p.returncode

    def __enter__(self) -> "QemuInstance":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        self.stop()


def resolve_firmware(target: str, q: dict[str, str]) -> tuple["object", Path]:
    """(port, ELF) for a qemu URL's machine and query: ``elf=``, else ``artifact=``, else the flashed image."""
    from ondevice.boards import qemu_port_for_machine
    port = qemu_port_for_machine(target.strip("/"))
    if q.get("elf"):
        return port, Path(q["elf"]).expanduser()
    from ondevice.mcu import firmware as fl
    if q.get("artifact"):
        return port, fl.build_firmware(port.board, q["artifact"], variant=q.get("variant", "opt"))
    elf = fl.flashed_image(port.board)
    if elf is None:
        raise ConfigError(f"no firmware has been flashed to {port.board}",
                          f"run `ondevice flash --board {port.board} --artifact artifacts/<model>_mcu_int8`, or use "
                          f"qemu://{port.qemu_machine}?artifact=artifacts/<model>_mcu_int8 (or ?elf=FIRMWARE.elf)")
    return port, elf


@TRANSPORTS.register("qemu")
class QemuTransport(SocketStream):
    """The firmware's UART under QEMU, as a socket stream; closing it stops QEMU."""

    def __init__(self, inst: QemuInstance, url: str, board: str):
        super().__init__(inst.sock, url)
        self.qemu = inst
        self.board = board

    @classmethod
    def open(cls, url: str) -> "QemuTransport":
        _, target, q = split_url(url)
        port, elf = resolve_firmware(target, q)
        inst = QemuInstance(port.qemu_machine, elf).start()
        try:
            return cls(inst, url, port.board)
        except BaseException:
            inst.stop()
            raise

    @classmethod
    def url_for_artifact(cls, url: str, artifact: str | Path) -> str:
        """The URL that boots firmware built for ``artifact`` (an mcu folder) unless the URL already names an image.

        The profiler calls this when it profiles an mcu artifact, so ``ondevice profile --device qemu://mps2-an386
        artifacts/<model>_mcu_int8`` works without a separate ``ondevice flash``.
        """
        _, _, q = split_url(url)
        if "elf" in q or "artifact" in q:
            return url
        from ondevice.export.mcu import mcu_artifact
        artifact = mcu_artifact(artifact)  # a .tflite: its mcu build, made on the fly and cached
        if not Path(artifact).is_dir():
            return url
        return url + ("&" if "?" in url else "?") + "artifact=" + quote(str(Path(artifact).resolve()))

    def device_stats(self) -> dict:
        """Host-side sizes of the booted ELF (flash = .isr_vector + .text + .rodata + .data), beside the device's."""
        from ondevice.mcu.firmware import firmware_sizes
        sizes = firmware_sizes(self.qemu.elf)
        return {"firmware_elf": str(self.qemu.elf), **{f"elf_{k}": v for k, v in sizes.items()}}

    def close(self) -> None:
        self.qemu.stop()
