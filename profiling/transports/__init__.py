"""Device transports, one file per URL scheme, registered in ``TRANSPORTS``.

A transport is a plain byte stream: ``read(n, timeout)``, ``write(data)``, ``close()``. Framing, retries and
sequencing live in :mod:`ondevice.profiling.session`, so a new link type is one small file::

    @TRANSPORTS.register("myscheme")
    class MyTransport(Transport):
        @classmethod
        def open(cls, url, *, firmware=None): ...
        def read(self, n, timeout): ...
        def write(self, data): ...

Every hook the profiler uses is declared on :class:`Transport` with a default, so a transport overrides only
what its link has (``discover``, ``stage``, ``power_monitor``, ``device_stats``, ``firmware_for`` ...).
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ondevice.errors import ConfigError
from ondevice.registry import Registry


@dataclass(frozen=True)
class Attached:
    """One device ``ondevice devices`` lists: its URL, its kind (the scheme) and a human detail."""

    url: str
    kind: str
    detail: str = ""
    available: bool = True
    #: artifact suffixes a simulator runs (``--device all`` picks the sims that run the artifact)
    extensions: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["extensions"] = list(self.extensions)
        return d


@dataclass(frozen=True)
class FirmwareTarget:
    """The firmware a URL boots (an emulated board): the profiler builds it for an mcu artifact."""

    board: str
    variant: str = "opt"


class Transport(abc.ABC):
    """A byte stream to a device agent. Subclasses implement ``open``, ``read`` and ``write``."""

    url: str = ""
    #: line rate in payload bytes/s when known (a UART at 115200 8N1 -> 11520); None for sockets
    bytes_per_s: float | None = None
    #: board profile hint (e.g. "host" for sim, "android-generic" for adb)
    board: str | None = None
    #: where ``ondevice devices`` lists this kind: hardware links first, then emulators, then simulators
    list_rank: int = 50
    #: which artifacts ``--device all`` profiles on the attached devices of this kind: None (never: the link may
    #: not be an ondevice agent), "any" (phone apps), "extensions" (the ones a sim runtime lists) or "mcu" (an mcu
    #: artifact, or a .tflite the MCU engine takes: an emulated board boots firmware built for it)
    device_all: str | None = None

    # -- opening and discovery (class level) --------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, firmware: Path | None = None) -> "Transport":
        """Open ``url``. ``firmware`` is the image to boot, given only to URLs whose :meth:`firmware_for` names
        a board (emulators); the URL's own image (or the flashed one) is booted without it."""
        raise ConfigError(f"{cls.__name__} is not opened by URL", "open a registered scheme (ondevice devices)")

    @classmethod
    def discover(cls) -> list[Attached]:
        """What is attached for this scheme. Raises an OndeviceError when it cannot look (its message is shown
        as a note by ``ondevice devices``)."""
        return []

    @classmethod
    def firmware_for(cls, url: str) -> FirmwareTarget | None:
        """The firmware ``url`` boots when the profiler should build it for an mcu artifact; None otherwise."""
        return None

    @classmethod
    def url_for_artifact(cls, url: str, artifact: str | Path) -> str:
        """``url`` adjusted for profiling ``artifact`` (e.g. sim:// serves an export folder as built in)."""
        return url

    # -- the byte stream ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes; waits at most ``timeout`` s and returns b"" when nothing arrived."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""

    def close(self) -> None:
        pass

    # -- optional hooks the profiler calls ----------------------------------------------------------------------
    def device_stats(self) -> dict:
        """Host-side measurements of the device (e.g. adb PSS, battery current); empty when not available."""
        return {}

    def stage(self, artifact: Path) -> None:
        """Put the artifact file where the device agent reads it (e.g. adb push); nothing for most links."""

    def power_monitor(self):
        """The link's own power monitor (e.g. the phone's battery), or None: the board's model is used."""
        return None

    def reset_device(self) -> bool:
        """Make the device reboot as a real one would (fault:// ``reset_after``); False when this link cannot."""
        return False

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


def open_transport(url: str, *, firmware: Path | None = None) -> Transport:
    """Open a device URL through its registered scheme (pyserial URLs go through ``serial``); ``firmware`` as for
    :meth:`Transport.open`."""
    scheme = scheme_of(url)
    if not scheme:
        raise ConfigError(f"{url!r} is not a device URL",
                          "use e.g. serial:///dev/ttyACM0, socket://host:port, sim://litert, adb://SERIAL")
    if scheme in PYSERIAL_SCHEMES:
        scheme = "serial"
    return TRANSPORTS.get(scheme).open(url, firmware=firmware)


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
