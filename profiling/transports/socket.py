"""``socket://host:port``: a TCP byte stream (an agent on the LAN, a forwarded adb/usbmux port, QEMU's tcp serial)."""
from __future__ import annotations

import select
import socket
from pathlib import Path

from ondevice.errors import TransportError
from ondevice.profiling.transports import TRANSPORTS, Transport, split_url


WRITE_TIMEOUT = 10.0


class SocketStream(Transport):
    """A connected TCP socket with TCP_NODELAY (without it each round trip waits ~40 ms for delayed ACKs)."""

    def __init__(self, sock: socket.socket, url: str):
        self.sock = sock
        self.url = url
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # reads wait in select() with their own timeout; this bounds a write to a peer that stopped reading
        sock.settimeout(WRITE_TIMEOUT)

    @staticmethod
    def connect(host: str, port: int, url: str, timeout: float = 5.0) -> socket.socket:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TransportError(f"cannot connect to {host}:{port} ({url}): {e}",
                                 "check the agent is running and listening on that port") from None

    def read(self, n: int, timeout: float) -> bytes:
        try:
            r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
            if not r:
                return b""
            data = self.sock.recv(n)
        except OSError as e:
            raise TransportError(f"socket read failed on {self.url}: {e}", "the agent closed the connection") from None
        if not data:
            raise TransportError(f"{self.url}: the agent closed the connection",
                                 "the device app/agent stopped or crashed; restart it and retry")
        return data

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise TransportError(f"{self.url}: the agent stopped reading ({WRITE_TIMEOUT:.0f} s write timeout)",
                                 "the device may be hung; reset it and retry") from None
        except OSError as e:
            raise TransportError(f"socket write failed on {self.url}: {e}", "the agent closed the connection") from None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@TRANSPORTS.register("socket")
class SocketTransport(SocketStream):
    @classmethod
    def open(cls, url: str, *, firmware: Path | None = None) -> "SocketTransport":
        _, target, _ = split_url(url)
        host, _, port = target.rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            from ondevice.errors import ConfigError
            raise ConfigError(f"bad socket URL {url!r}", "use socket://HOST:PORT, e.g. socket://127.0.0.1:5555")
        return cls(cls.connect(host, int(port), url), url)
