"""``adb://<serial>``: the Android sample app's agent (apps/android) through adbutils.

Opening: start the app's foreground agent service (``am start-foreground-service``), ``adb forward`` a local port
to the agent's port and connect. The artifact and its manifest are pushed to the app's files folder (the app's
ExecuTorch backend reads tensor specs from the manifest). While it runs, the transport reads the app's PSS from
``dumpsys meminfo`` and samples battery current and voltage (sysfs ``current_now``/``voltage_now``, else
``dumpsys battery``) for the energy figure, minus an idle baseline sampled before the first RUN.

Query: ``port`` (agent port on the phone, default 47474), ``local_port``, ``runtime`` (litert|executorch, to pin
one backend), ``host``/``adb_port`` (the adb server). Not verified on a phone here (no Android device or SDK on
the build machine); tested against the sim agent behind an adbutils-compatible device object.
"""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from ondevice.errors import ConfigError, ToolMissingError, TransportError
from ondevice.profiling.transports import TRANSPORTS, Attached, split_url
from ondevice.profiling.transports.socket import SocketStream

PACKAGE = "dev.ondevice.app"
SERVICE = f"{PACKAGE}/.AgentService"
ACTION_START = f"{PACKAGE}.action.START_AGENT"
ACTION_STOP = f"{PACKAGE}.action.STOP_AGENT"
DEVICE_PORT = 47474
FILES_DIR = f"/sdcard/Android/data/{PACKAGE}/files"
BATTERY_SYSFS = "/sys/class/power_supply/battery"
BASELINE_SAMPLES = 20  # idle battery samples taken before the runs (0.1 s apart) and subtracted from their draw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_pss_kb(meminfo: str) -> int | None:
    """TOTAL PSS in kB from ``dumpsys meminfo <package>`` (both the 'TOTAL PSS:' summary and the table row)."""
    m = re.search(r"TOTAL PSS:\s*(\d+)", meminfo)
    if m:
        return int(m.group(1))
    m = re.search(r"^\s*TOTAL\s+(\d+)", meminfo, re.M)
    return int(m.group(1)) if m else None


def parse_dumpsys_battery(text: str) -> tuple[int | None, int | None]:
    """(current_ua, voltage_uv) from ``dumpsys battery``; voltage there is in mV, current (when shown) in uA."""
    cur = re.search(r"current now:\s*(-?\d+)", text, re.I)
    volt = re.search(r"^\s*voltage:\s*(\d+)", text, re.M | re.I)
    return (int(cur.group(1)) if cur else None, int(volt.group(1)) * 1000 if volt else None)


@TRANSPORTS.register("adb")
class AdbTransport(SocketStream):
    board = "android-generic"
    list_rank = 20
    device_all = "any"

    def __init__(self, sock, url, device, local_port: int):
        super().__init__(sock, url)
        self.device = device
        self.local_port = local_port
        self.staged: list[str] = []

    @classmethod
    def open(cls, url: str, device=None, *, firmware: Path | None = None) -> "AdbTransport":
        """Open ``adb://SERIAL``. ``device`` injects an adbutils-compatible device (scripts, tests)."""
        _, serial, q = split_url(url)
        serial = serial.strip("/")
        if device is None:
            device = cls._find_device(serial, q)
        port = int(q.get("port", DEVICE_PORT))
        cmd = f"am start-foreground-service -n {SERVICE} -a {ACTION_START} --ei port {port}"
        if q.get("runtime"):
            cmd += f" --es runtime {q['runtime']}"
        out = str(device.shell(cmd) or "")
        if "Error" in out or "not found" in out.lower():
            raise TransportError(f"cannot start the ondevice agent on {serial}: {out.strip()[:200]}",
                                 "install the sample app (apps/android) on the phone first")
        local = int(q.get("local_port") or _free_port())
        device.forward(f"tcp:{local}", f"tcp:{port}")
        sock = cls._connect_when_listening(local, url, float(q.get("start_timeout", 10)))
        return cls(sock, url, device, local)

    @classmethod
    def discover(cls) -> list[Attached]:
        try:
            import adbutils
            devs = adbutils.AdbClient(host="127.0.0.1", port=5037, socket_timeout=2).device_list()
        except ImportError:
            raise ToolMissingError("adbutils is not installed", "pip install adbutils") from None
        except Exception as e:  # noqa: BLE001 - no adb server running is a normal state
            raise TransportError(f"adb server not reachable ({type(e).__name__})",
                                 "install Android platform-tools and run `adb start-server`") from None
        out = []
        for d in devs:
            try:
                model = d.prop.model
            except Exception:  # noqa: BLE001
                model = ""
            out.append(Attached(f"adb://{d.serial}", "adb", model or "android device"))
        return out

    @staticmethod
    def _find_device(serial: str, q: dict):
        try:
            import adbutils
        except ImportError:
            raise ConfigError("adbutils is not installed", "pip install adbutils") from None
        client = adbutils.AdbClient(host=q.get("host", "127.0.0.1"), port=int(q.get("adb_port", 5037)))
        try:
            devices = client.device_list()
        except Exception as e:  # noqa: BLE001 - adbutils raises its own error types
            raise ToolMissingError(f"cannot reach the adb server ({e})",
                                   "install Android platform-tools and run `adb start-server`") from None
        serials = [d.serial for d in devices]
        if not serial:
            if len(serials) != 1:
                raise ConfigError(f"adb:// needs a serial when {len(serials)} devices are attached",
                                  f"use one of: {', '.join(serials) or '(none attached)'}")
            serial = serials[0]
        if serial not in serials:
            raise TransportError(f"no adb device {serial!r}", f"attached: {', '.join(serials) or 'none'}; "
                                 "check the USB cable and that USB debugging is allowed")
        return client.device(serial)

    @staticmethod
    def _connect_when_listening(local: int, url: str, timeout: float) -> socket.socket:
        """adb accepts a forwarded connection before the app listens, then drops it: retry until it stays up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", local), timeout=2)
            except OSError as e:
                last = str(e)
                time.sleep(0.2)
                continue
            s.settimeout(0.5)
            try:
                first = s.recv(1, socket.MSG_PEEK)
            except socket.timeout:
                first = None  # open and silent: an agent that sends no BOOT on connect
            except OSError as e:
                first, last = b"", str(e)
            if first == b"":
                s.close()
                time.sleep(0.2)
                continue
            s.settimeout(None)
            return s
        raise TransportError(f"the ondevice agent did not accept connections on {url} within {timeout:.0f} s"
                             f"{f' ({last})' if last else ''}",
                             "open the app once on the phone (notification permission), then retry")

    # -- extras used by the session -----------------------------------------------------------------------------
    def stage(self, artifact: Path) -> None:
        """Push the artifact and its manifest into the app's files folder."""
        artifact = Path(artifact)
        files = [artifact, artifact.with_name(artifact.name + ".manifest.json")]
        for f in files:
            if f.is_file():
                dest = f"{FILES_DIR}/{f.name}"
                self.device.push(str(f), dest)
                self.staged.append(dest)

    def _shell(self, cmd: str) -> str:
        try:
            return str(self.device.shell(cmd) or "")
        except Exception:  # noqa: BLE001 - a stats read must never fail the profile
            return ""

    def battery_sample(self) -> tuple[int, int] | None:
        """(current_ua, voltage_uv) now, or None when the phone does not report current."""
        raw = self._shell(f"cat {BATTERY_SYSFS}/current_now {BATTERY_SYSFS}/voltage_now").split()
        if len(raw) == 2 and all(re.fullmatch(r"-?\d+", x) for x in raw):
            return int(raw[0]), int(raw[1])
        cur, volt = parse_dumpsys_battery(self._shell("dumpsys battery"))
        if cur is None or volt is None:
            return None
        return cur, volt

    def power_monitor(self):
        from ondevice.profiling.power import CallbackMonitor
        # 20 idle samples (2 s) before the first RUN: the baseline every figure subtracts
        return CallbackMonitor(f"{self.url} battery", self.battery_sample, period=0.1, baseline_n=BASELINE_SAMPLES)

    def device_stats(self) -> dict:
        stats = {}
        pss = parse_pss_kb(self._shell(f"dumpsys meminfo {PACKAGE}"))
        if pss is not None:
            stats["pss_bytes"] = pss * 1024
        b = self.battery_sample()
        if b is not None:
            stats["battery_current_ua"], stats["battery_voltage_uv"] = b
        return stats

    def close(self) -> None:
        super().close()
        try:
            self.device.forward_remove(f"tcp:{self.local_port}")
        except Exception:  # noqa: BLE001
            pass
        self._shell(f"am start-foreground-service -n {SERVICE} -a {ACTION_STOP}")
