"""``serial:///dev/ttyACM0?baud=115200`` and every pyserial URL (``loop://``, ``rfc2217://``, ``spy://``...).

Ports are opened with ``serial.serial_for_url(url, do_not_open=True)`` so pyserial's URL handlers come for free.
"""
from __future__ import annotations

import time
from pathlib import Path

from ondevice.errors import TransportError
from ondevice.profiling.transports import TRANSPORTS, Attached, Transport, split_url

DEFAULT_BAUD = 115200


@TRANSPORTS.register("serial")
class SerialTransport(Transport):
    """A UART / USB CDC port through pyserial."""

    list_rank = 10

    def __init__(self, port, url: str, baud: int):
        self.port = port
        self.url = url
        # 8N1: 10 bit times per byte
        self.bytes_per_s = baud / 10.0 if baud else None

    @classmethod
    def open(cls, url: str, *, firmware: Path | None = None) -> "SerialTransport":
        import serial
        baud = DEFAULT_BAUD
        if url.startswith("serial://"):
            _, target, q = split_url(url)
            baud = int(q.get("baud", DEFAULT_BAUD))
            pyurl = target
        else:
            pyurl = url
        try:
            port = serial.serial_for_url(pyurl, do_not_open=True)
            port.baudrate = baud
            port.timeout = 0
            port.write_timeout = 5.0
            port.open()
        except (serial.SerialException, ValueError, OSError) as e:
            text = str(e)
            hint = "check the device is plugged in and the path is right (`ondevice devices` lists ports)"
            if "busy" in text.lower() or "Errno 16" in text:
                hint = "close the other program using the port (screen, minicom, an IDE monitor)"
            elif "Permission denied" in text or "Errno 13" in text:
                hint = "add your user to the dialout group (sudo usermod -aG dialout $USER) and log in again"
            raise TransportError(f"cannot open serial port {pyurl!r}: {text}", hint) from None
        return cls(port, url, baud)

    @classmethod
    def discover(cls) -> list[Attached]:
        try:
            from serial.tools import list_ports
        except ImportError:
            return []
        out = []
        for p in list_ports.comports():
            out.append(Attached(f"serial://{p.device}", "serial",
                                " ".join(x for x in (p.description, p.product or "", p.serial_number or "") if x
                                         and x != "n/a")))
        return out

    def read(self, n: int, timeout: float) -> bytes:
        import serial
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = self.port.in_waiting
                if waiting:
                    return self.port.read(min(n, waiting))
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self.port.timeout = min(left, 0.05)
                b = self.port.read(1)
                if b:
                    return b
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"serial read failed on {self.url}: {e}",
                                 "the device was unplugged or reset; reconnect and retry") from None

    def write(self, data: bytes) -> None:
        import serial
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"serial write failed on {self.url}: {e}",
                                 "the device was unplugged or reset; reconnect and retry") from None

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # noqa: BLE001 - closing a vanished port must not mask the real error
            pass
