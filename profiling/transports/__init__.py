"""Device transports, one file per URL scheme, registered in ``TRANSPORTS``.

A transport is a plain byte stream: ``read(n, timeout)``, ``write(data)``, ``close()``. Framing, retries and
sequencing live in :mod:`ondevice.profiling.session`, so a new link type is one small file::

    @TRANSPORTS.register("myscheme")
    class MyTransport(Transport):
        @classmethod
        def open(cls, url): ...
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from ondevice.errors import ConfigError
from ondevice.registry import Registry


class Transport:
    """A byte stream to a device agent. Subclasses implement ``_read``/``write``/``close``."""

    url: str = ""
    #: line rate in payload bytes/s when known (a UART at 115200 8N1 -> 11520); None for sockets
    bytes_per_s: float | None = None
    #: board profile hint (e.g. "host" for sim, "android-generic" for adb)
    board: str | None = None

    @classmethod
    def open(cls, url: str) -> "Transport":  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes; waits at most ``timeout`` s and returns b"" when nothing arrived."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def device_stats(self) -> dict:
        """Host-side measurements of the device (e.g. adb PSS, battery current); empty when not available."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check(key: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TypeError(f"transport {key!r} must subclass Transport")


TRANSPORTS: Registry[type[Transport]] = Registry("transport", _check, package=__name__,
                                                 entry_points="ondevice.transports")
#: pyserial's own URL handlers, opened through the serial transport
PYSERIAL_SCHEMES = ("loop", "rfc2217", "spy", "hwgrep", "alt", "cp2110")


def scheme_of(url: str) -> str:
    if "://" not in url:
        return "serial" if url.startswith(("/dev/", "COM")) else ""
    return url.split("://", 1)[0].lower()


def open_transport(url: str) -> Transport:
    """Open a device URL through its registered scheme (pyserial URLs go through ``serial``)."""
    scheme = scheme_of(url)
    if not scheme:
        raise ConfigError(f"{url!r} is not a device URL",
                          "use e.g. serial:///dev/ttyACM0, socket://host:port, sim://litert, adb://SERIAL")
    if scheme in PYSERIAL_SCHEMES:
        scheme = "serial"
    return TRANSPORTS.get(scheme).open(url)


def transport_class(url: str) -> type[Transport] | None:
    """The registered class for a URL's scheme, or None."""
    scheme = scheme_of(url)
    scheme = "serial" if scheme in PYSERIAL_SCHEMES else scheme
    return TRANSPORTS.find(scheme) if scheme else None


def schemes() -> list[str]:
    return TRANSPORTS.names()


def query(url: str) -> dict[str, str]:
    """The URL's query string as a flat dict (last value wins)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def split_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(scheme, the part between :// and ?, query dict)."""
    scheme, rest = url.split("://", 1)
    target, _, q = rest.partition("?")
    return scheme, target, {k: v[-1] for k, v in parse_qs(q).items()}
