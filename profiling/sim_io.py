"""The byte streams the host simulator agent serves (a socket, a file descriptor, a paced UART) and the agent's
exceptions: :class:`AgentError` becomes an ERROR frame, :class:`StreamClosed` ends the session."""
from __future__ import annotations

import os
import select
import socket
import threading
import time


class AgentError(Exception):
    def __init__(self, code: int, message: str = "", detail: int = 0):
        super().__init__(message)
        self.code, self.detail, self.message = int(code), detail, message


class StreamClosed(Exception):
    pass


class SocketIO:
    """Agent-side byte stream over a connected socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, n: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(n)
        except OSError:
            raise StreamClosed() from None
        if not data:
            raise StreamClosed()
        return data

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            raise StreamClosed() from None


class FdIO:
    """Agent-side byte stream over a file descriptor (a pty master/slave)."""

    def __init__(self, fd: int):
        self.fd = fd

    def read(self, n: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.fd, n)
        except OSError:
            raise StreamClosed() from None
        if not data:
            raise StreamClosed()
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            except OSError:
                raise StreamClosed() from None
            view = view[n:]


class Paced:
    """Emulates a full-duplex UART at ``bytes_per_s`` (115200 8N1 moves 11520 bytes/s) on top of a fast stream.

    Receive runs in its own thread like a UART's RX interrupt filling a ring buffer: bytes are taken off the
    stream no faster than the wire would deliver them, whatever the agent is doing. Transmit blocks the caller
    until the wire would have sent each 32-byte slice. Both keep a running wire schedule, so sleep jitter does
    not accumulate.
    """

    def __init__(self, io, bytes_per_s: float, slice_bytes: int = 32):
        import queue
        self.io, self.rate, self.slice = io, float(bytes_per_s), slice_bytes
        self._rx: queue.Queue[bytes | None] = queue.Queue()
        self._tx: queue.Queue[bytes | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._rx_loop, name="uart-rx", daemon=True)
        self._thread.start()
        self._tx_thread = threading.Thread(target=self._tx_loop, name="uart-tx", daemon=True)
        self._tx_thread.start()

    def _rx_loop(self) -> None:
        free = time.monotonic()
        try:
            while not self._closed:
                t0 = time.monotonic()
                data = self.io.read(self.slice, 0.05)
                if not data:
                    continue
                if time.monotonic() - t0 > 0.001:  # we waited for these bytes: the wire was idle until now
                    free = max(free, time.monotonic())
                free += len(data) / self.rate  # bytes already queued kept the wire busy: no idle gap
                delay = free - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self._rx.put(data)
        except StreamClosed:
            pass
        self._rx.put(None)

    def _tx_loop(self) -> None:
        import queue
        free = time.monotonic()
        while True:
            try:
                piece = self._tx.get_nowait()
            except queue.Empty:  # the line goes idle until the agent writes again
                piece = self._tx.get()
                free = max(free, time.monotonic())
            if piece is None:
                return
            free += len(piece) / self.rate
            delay = free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.io.write(piece)
            except StreamClosed:
                return

    def write(self, data: bytes) -> None:
        """Queue bytes for the wire (a UART TX FIFO the agent keeps fed); they leave at the line rate."""
        for i in range(0, len(data), self.slice):
            self._tx.put(data[i:i + self.slice])

    def close(self) -> None:
        """Stop the RX thread (before the fd is closed, so it cannot read a reused fd number)."""
        self._closed = True
        self._tx.put(None)
        self._thread.join(timeout=1)
        self._tx_thread.join(timeout=5)

    def read(self, n: int, timeout: float) -> bytes:
        import queue
        try:
            data = self._rx.get(timeout=timeout)
        except queue.Empty:
            return b""
        if data is None:
            self._closed = True
            raise StreamClosed()
        return data
