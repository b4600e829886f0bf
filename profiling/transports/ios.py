"""``ios://<udid>``: the iOS sample app's agent (apps/ios) through usbmux (pymobiledevice3).

usbmuxd relays a TCP connection to a port the app listens on, the same way Xcode reaches a device; the app must
be in the foreground with its agent started. Query: ``port`` (default 47474, as the Android agent). pymobiledevice3
is an optional extra (``pip install 'ondevice[ios]'``) and is imported only here. Not verified on an iPhone here
(no iOS device or Swift toolchain on the build machine); tested against the sim agent behind a usbmux-compatible
device object.
"""
from __future__ import annotations

import socket
from pathlib import Path

from ondevice.errors import ConfigError, ToolMissingError, TransportError
from ondevice.profiling.transports import TRANSPORTS, Attached, split_url
from ondevice.profiling.transports.socket import SocketStream

DEVICE_PORT = 47474


def _select_device(udid: str | None):
    try:
        from pymobiledevice3 import usbmux
    except ImportError:
        raise ConfigError("ios:// needs pymobiledevice3", "pip install 'ondevice[ios]'") from None
    try:
        dev = usbmux.select_device(udid or None)
    except Exception as e:  # noqa: BLE001 - no usbmuxd, permission, ...
        raise TransportError(f"cannot reach usbmuxd ({e})",
                             "install usbmuxd (Linux) or plug the iPhone in and trust this computer") from None
    if dev is None:
        raise TransportError(f"no iOS device {udid or ''} on usbmux".replace("  ", " "),
                             "plug the iPhone in, unlock it and tap 'Trust'; `ondevice devices` lists what is seen")
    return dev


@TRANSPORTS.register("ios")
class IosTransport(SocketStream):
    board = "ios-generic"
    list_rank = 30
    device_all = "any"

    @classmethod
    def discover(cls) -> list[Attached]:
        try:
            from pymobiledevice3 import usbmux
        except ImportError:
            raise ToolMissingError("pymobiledevice3 is not installed (pip install 'ondevice[ios]')",
                                   "pip install 'ondevice[ios]'") from None
        try:
            devs = usbmux.list_devices()
        except Exception as e:  # noqa: BLE001 - no usbmuxd is a normal state on Linux
            raise TransportError(f"usbmuxd not reachable ({type(e).__name__})",
                                 "install usbmuxd (Linux) or plug the iPhone in") from None
        return [Attached(f"ios://{d.serial}", "ios", getattr(d, "connection_type", "usb")) for d in devs]

    @classmethod
    def open(cls, url: str, device=None, *, firmware: Path | None = None) -> "IosTransport":
        """Open ``ios://UDID``. ``device`` injects a usbmux device object with ``connect(port) -> socket``."""
        _, udid, q = split_url(url)
        port = int(q.get("port", DEVICE_PORT))
        dev = device if device is not None else _select_device(udid.strip("/"))
        try:
            sock = dev.connect(port)
        except Exception as e:  # noqa: BLE001 - usbmux raises ConnectionFailedError and friends
            raise TransportError(f"usbmux could not connect to port {port} on {udid or 'the device'} ({e})",
                                 "open the ondevice app on the iPhone and start its agent, then retry") from None
        if not isinstance(sock, socket.socket):
            raise TransportError("the usbmux connection is not a socket", "update pymobiledevice3")
        return cls(sock, url)
