"""``ondevice serve``: boot an emulated board and expose its UART as a loopback TCP port or a pty, until Ctrl-C.

Anything that talks to a serial device can then use the board: ``ondevice profile --device socket://127.0.0.1:PORT``,
the MLPerf Tiny / EEMBC runner (the firmware answers its DUT commands, firmware/core/od_eembc.h), a terminal
(``socat - TCP:127.0.0.1:PORT``, ``picocom /dev/pts/N``) or a script with pyserial.

- QEMU is launched by :class:`ondevice.profiling.transports.qemu.QemuInstance` (the same launch as ``qemu://``):
  its UART is a private loopback socket that this process holds from reset, so the firmware's BOOT is checked
  before the address is printed. Bytes are relayed between it and one client at a time.
- Like a real UART, what the firmware sends while no client is connected is dropped.
- Only loopback addresses are bound: the firmware protocol has no authentication.
"""
from __future__ import annotations

import ipaddress
import os
import select
import signal
import socket
import threading
from pathlib import Path

from ondevice import log
from ondevice.errors import ConfigError, TransportError

BOOT_TIMEOUT = 15.0
_POLL = 0.2  # s between checks of the stop flag while idle


def parse_loopback(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); refuses any address that is not loopback (port 0 picks a free one)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--tcp takes HOST:PORT, not {address!r}", "e.g. --tcp 127.0.0.1:5555")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"serve binds loopback addresses only, and {host!r} is not one",
                          "use 127.0.0.1:PORT; reach it from another machine with `ssh -L PORT:127.0.0.1:PORT`")
    return host, int(port)


def _wait_boot(inst, stop: threading.Event, timeout: float = BOOT_TIMEOUT) -> str:
    """The BOOT frame the firmware sends at reset, read by the device session; returns its banner ("" if stopped
    first). The socket stays open for the relay."""
    from ondevice.profiling.session import DeviceSession
    from ondevice.profiling.transports.socket import SocketStream
    boot = DeviceSession(SocketStream(inst.sock, f"qemu://{inst.machine}")).wait_boot(timeout, stop=stop)
    return boot.get("banner", "")


class _Relay:
    """Bytes between the board's UART socket and one client (a TCP connection or a pty master)."""

    def __init__(self, uart: socket.socket):
        self.uart = uart
        self.uart.setblocking(False)

    def from_uart(self, send) -> None:
        try:
            data = self.uart.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise TransportError("QEMU closed the board's serial line", "the emulator exited; see its output")
        if send is not None:
            send(data)

    def to_uart(self, data: bytes) -> None:
        self.uart.setblocking(True)
        try:
            self.uart.sendall(data)
        finally:
            self.uart.setblocking(False)


def _serve_tcp(relay: _Relay, listener: socket.socket, stop: threading.Event) -> None:
    client: socket.socket | None = None

    def send(data: bytes) -> None:
        nonlocal client
        try:
            client.sendall(data)
        except OSError:
            client.close()
            client = None

    try:
        while not stop.is_set():
            rl = [relay.uart, listener] + ([client] if client else [])
            r, _, _ = select.select(rl, [], [], _POLL)
            if relay.uart in r:
                relay.from_uart(send if client else None)
            if client is not None and client in r:  # before accepting: a client that just left frees the line
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if data:
                    relay.to_uart(data)
                else:
                    client.close()
                    client = None
            if listener in r:
                conn, peer = listener.accept()
                if client is not None:  # a UART has one other end: a second client is turned away
                    conn.close()
                    log.info(f"refused a second client from {peer[0]}:{peer[1]}")
                else:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    client = conn
    finally:
        if client is not None:
            client.close()


def _serve_pty(relay: _Relay, master: int, stop: threading.Event) -> None:
    def send(data: bytes) -> None:
        try:
            os.write(master, data)
        except (BlockingIOError, OSError):
            pass  # nobody is reading the pty: drop, as a UART with no listener would

    while not stop.is_set():
        r, _, _ = select.select([relay.uart, master], [], [], _POLL)
        if relay.uart in r:
            relay.from_uart(send)
        if master in r:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if data:
                relay.to_uart(data)


def _listen(addr: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    try:
        return socket.create_server(addr, family=family)
    except OSError as e:
        raise ConfigError(f"cannot listen on {addr[0]}:{addr[1]}: {os.strerror(e.errno) if e.errno else e}",
                          "pick another port, or --tcp 127.0.0.1:0 for a free one") from None


def _open_pty() -> tuple[int, int, str]:
    import tty
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes as they are: no echo, no CR/LF translation (frames are binary)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def serve(board: str = "qemu-mps2-an386", artifact: str | Path | None = None, tcp: str | None = None,
          pty: bool = False, stop: threading.Event | None = None, on_ready=None) -> dict:
    """Boot ``board`` under QEMU with the firmware for ``artifact`` (an mcu folder; None = the image last flashed)
    and relay its UART on ``tcp`` (``127.0.0.1:PORT``, default a free port) or a pty, until Ctrl-C or ``stop``.

    ``on_ready(info)`` is called once the firmware has booted and the address is open (the CLI prints the address
    then); ``info`` (also returned) holds ``address`` (``socket://127.0.0.1:PORT`` or the pty path), ``board``,
    ``elf``, ``qemu_pid``, ``banner``.
    """
    from ondevice.boards import get_port
    from ondevice.mcu.firmware import build_firmware, flashed_image
    from ondevice.profiling.transports.qemu import QemuInstance
    if tcp and pty:
        raise ConfigError("pick one of --tcp and --pty", "--tcp 127.0.0.1:PORT, or --pty for a /dev/pts device")
    addr = None if pty else parse_loopback(tcp or "127.0.0.1:0")
    port = get_port(board)
    if not port.is_qemu:
        raise ConfigError(f"serve boots emulated boards; {board} is real hardware",
                          "a real board's UART is already a device: use serial:///dev/ttyACM0")
    elf = build_firmware(board, artifact) if artifact is not None else flashed_image(board)
    if elf is None:
        raise ConfigError(f"no firmware has been flashed to {board}",
                          f"pass --artifact artifacts/<model>_mcu_int8, or run `ondevice flash --board {board}` first")
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    inst = QemuInstance(port.qemu_machine, elf)
    listener = master = slave = None
    info: dict = {"board": board, "elf": str(elf)}
    try:
        if addr is not None:
            listener = _listen(addr)
            address = "socket://{}:{}".format(*listener.getsockname()[:2])
        else:
            master, slave, address = _open_pty()
        inst.start()
        banner = _wait_boot(inst, stop)
        if stop.is_set():
            return info
        relay = _Relay(inst.sock)
        info.update(address=address, qemu_pid=inst.pid, banner=banner)
        log.info(f"firmware: {banner} (QEMU pid {inst.pid}); Ctrl-C stops")
        if on_ready:
            on_ready(info)
        if listener is not None:
            _serve_tcp(relay, listener, stop)
        else:
            _serve_pty(relay, master, stop)
    except KeyboardInterrupt:
        pass
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if listener is not None:
            listener.close()
        inst.stop()
        restore()
    log.info(f"stopped {board}")
    return info


def _stop_on_signals(stop: threading.Event):
    """SIGINT / SIGTERM set ``stop`` (main thread only); returns the function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda *_: stop.set())

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)
    return restore
