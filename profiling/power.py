"""Board profiles (``profiling/boards/*.toml``) and power monitors (``--power ppk2:///dev/ttyACM1``).

A board profile is data only: clock, RAM, flash and active power, each ``{value, source}``, plus ``kind``
(``emulator`` | ``hardware`` | ``host`` | ``phone``) which decides whether timings are measured or emulated.
A power monitor samples current while the device runs and returns the average power over that window.
"""
from __future__ import annotations

import re
import threading
import time
import tomllib
from pathlib import Path
from typing import Sequence

from ondevice.errors import ConfigError, TransportError
from ondevice.registry import Registry

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
_NUMERIC = ("clock_hz", "ram_bytes", "flash_bytes", "active_mw", "cpi")
KINDS = ("emulator", "hardware", "host", "phone")


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def load_board(name: str) -> dict:
    """Load and check ``boards/<name>.toml``. Each numeric entry must carry a ``source``."""
    path = BOARDS_DIR / f"{name}.toml"
    if not path.is_file():
        import difflib
        close = difflib.get_close_matches(name, board_names(), n=1)
        raise ConfigError(f"unknown board profile {name!r}",
                          f"did you mean {close[0]!r}?" if close else f"known boards: {', '.join(board_names())}")
    with open(path, "rb") as f:
        b = tomllib.load(f)
    if b.get("name") != name:
        raise ConfigError(f"{path.name}: name = {b.get('name')!r} does not match the file name", "fix the TOML")
    if b.get("kind") not in KINDS:
        raise ConfigError(f"{path.name}: kind must be one of {KINDS}", "fix the TOML")
    for key in _NUMERIC:
        if key in b:
            e = b[key]
            if not isinstance(e, dict) or "source" not in e or "value" not in e:
                raise ConfigError(f"{path.name}: {key} needs a value and a source", "fix the TOML")
    return b


# ---------------------------------------------------------------------------------------------------------------
# Power monitors

class PowerMonitor:
    """Samples power while the device runs. ``start()`` before the timed runs, ``stop()`` after."""

    url = ""

    def start(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> dict:
        """{"avg_mw", "samples", "seconds", "source", "monitor"}."""
        raise NotImplementedError

    def close(self) -> None:
        pass


MONITORS: Registry[type] = Registry("power monitor")


def open_monitor(url: str) -> PowerMonitor:
    scheme = url.split("://", 1)[0] if "://" in url else url
    return MONITORS.get(scheme).open(url)


@MONITORS.register("ppk2")
class PPK2Monitor(PowerMonitor):
    """Nordic Power Profiler Kit II through ``ppk2-api``: source-meter mode powers the DUT at ``voltage`` mV.

    ``ppk2:///dev/ttyACM1?voltage=3300&mode=source`` (``mode=ampere`` measures a DUT powered elsewhere, at the
    given voltage). Not verified on hardware here (no PPK2 on the build machine).
    """

    def __init__(self, port: str, voltage_mv: int, mode: str):
        self.port, self.voltage_mv, self.mode = port, voltage_mv, mode
        self.url = f"ppk2://{port}"
        self._ppk = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sum = 0.0
        self._n = 0
        self._t0 = 0.0
        self._t1 = 0.0

    @classmethod
    def open(cls, url: str) -> "PPK2Monitor":
        from ondevice.profiling.transports import split_url
        _, port, q = split_url(url)
        return cls(port, int(q.get("voltage", 3300)), q.get("mode", "source"))

    def _connect(self):
        try:
            from ppk2_api.ppk2_api import PPK2_API
        except ImportError as e:
            raise ConfigError(f"ppk2-api is not installed ({e})", "pip install ppk2-api") from None
        try:
            ppk = PPK2_API(self.port, timeout=1, write_timeout=1)
        except Exception as e:  # noqa: BLE001 - pyserial raises several types
            raise TransportError(f"cannot open PPK2 at {self.port}: {e}",
                                 "check the PPK2 is on its data USB port and not open in nRF Connect") from None
        if not ppk.get_modifiers():
            raise TransportError(f"{self.port} did not answer like a PPK2 (no calibration metadata)",
                                 "pick the PPK2's port (`ondevice devices` lists serial ports)")
        if self.mode == "ampere":
            ppk.use_ampere_meter()
        else:
            ppk.use_source_meter()
        ppk.set_source_voltage(self.voltage_mv)
        if self.mode != "ampere":
            ppk.toggle_DUT_power("ON")
        return ppk

    def _loop(self) -> None:
        while not self._stop.is_set():
            data = self._ppk.get_data()
            if data:
                samples, _ = self._ppk.get_samples(data)
                self._sum += sum(samples)  # microamps
                self._n += len(samples)
            else:
                time.sleep(0.002)

    def start(self) -> None:
        if self._ppk is None:
            self._ppk = self._connect()
        self._sum, self._n = 0.0, 0
        self._stop.clear()
        self._ppk.start_measuring()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="ppk2", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._t1 = time.monotonic()
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        data = self._ppk.get_data()  # samples already buffered for the measured window
        if data:
            samples, _ = self._ppk.get_samples(data)
            self._sum += sum(samples)
            self._n += len(samples)
        self._ppk.stop_measuring()
        if not self._n:
            raise TransportError("the PPK2 delivered no samples during the runs",
                                 "check its USB connection; try a longer run (--runs)")
        avg_ua = self._sum / self._n
        return {"avg_mw": avg_ua * self.voltage_mv / 1e6, "avg_ua": avg_ua, "samples": self._n,
                "seconds": self._t1 - self._t0, "source": "measured", "monitor": self.url}

    def close(self) -> None:
        if self._ppk is not None:
            try:
                self._ppk.ser.close()
            except Exception:  # noqa: BLE001
                pass


class CallbackMonitor(PowerMonitor):
    """Samples ``read() -> (current_ua, voltage_uv) | None`` every ``period`` s in a thread (Android battery).

    With ``baseline_n`` > 0 the first ``start()`` first takes that many samples with the device idle (before any
    RUN is sent) and every result subtracts their mean: ``avg_mw`` is what the runs add over idle, and the result
    carries ``idle_baseline_mw`` so the report says so. A phone's battery draw includes its screen, radios and OS.
    """

    def __init__(self, url: str, read, period: float = 0.1, baseline_n: int = 0):
        self.url, self._read, self.period = url, read, period
        self.baseline_n = baseline_n
        self.baseline_mw: float | None = None
        self._baseline_samples = 0
        self._stop = threading.Event()
        self._samples: list[float] = []
        self._thread = None
        self._t0 = 0.0

    def _sample(self) -> float | None:
        try:
            s = self._read()
        except Exception:  # noqa: BLE001 - a missed sample is not fatal
            return None
        if s is None:
            return None
        ua, uv = s
        return abs(ua) * uv / 1e9  # uA * uV = pW; /1e9 -> mW

    def _loop(self) -> None:
        while not self._stop.is_set():
            mw = self._sample()
            if mw is not None:
                self._samples.append(mw)
            self._stop.wait(self.period)

    def measure_baseline(self) -> float | None:
        """Mean draw over ``baseline_n`` samples, ``period`` apart, while the device is idle."""
        idle = []
        for k in range(self.baseline_n):
            mw = self._sample()
            if mw is not None:
                idle.append(mw)
            if k < self.baseline_n - 1:
                time.sleep(self.period)
        self._baseline_samples = len(idle)
        self.baseline_mw = sum(idle) / len(idle) if idle else None
        return self.baseline_mw

    def start(self) -> None:
        if self.baseline_n and self.baseline_mw is None and not self._baseline_samples:
            self.measure_baseline()
        self._samples.clear()
        self._stop.clear()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if not self._samples:
            return {}
        gross = sum(self._samples) / len(self._samples)
        res = {"avg_mw": gross, "samples": len(self._samples), "seconds": time.monotonic() - self._t0,
               "source": "measured", "monitor": self.url}
        if self.baseline_mw is not None:
            res["avg_mw"] = max(0.0, gross - self.baseline_mw)
            res["idle_baseline_mw"] = round(self.baseline_mw, 3)
            res["baseline_samples"] = self._baseline_samples
            res["basis"] = "battery draw during the runs minus the idle baseline measured before them"
            if gross <= self.baseline_mw:
                res["note"] = "the runs drew no more than idle: the battery gauge cannot resolve this model"
        return res


# -- the phone app's own battery figure (LOG lines) --------------------------------------------------------------

_BATTERY_LOG = re.compile(r"battery .*?power_mw_mean=(?P<mw>[-\d.]+).*?samples=(?P<n>\d+)"
                          r"(?:.*?seconds=(?P<s>[\d.]+))?(?:.*?charging=(?P<charging>true|false))?")


def battery_from_logs(logs: Sequence[str]) -> dict | None:
    """Power from the phone app's LOG lines after each RUN (sampled on the phone during the timed region):
    ``battery current_ua_mean=.. voltage_mv_mean=.. power_mw_mean=.. samples=.. seconds=.. charging=..``.
    None when there are none, or when the phone was charging (its battery current then says nothing)."""
    total_mw, total_n, seconds, charging = 0.0, 0, 0.0, False
    for line in logs:
        m = _BATTERY_LOG.search(line)
        if not m or int(m["n"]) == 0:
            continue
        charging |= m["charging"] == "true"
        total_mw += float(m["mw"]) * int(m["n"])
        total_n += int(m["n"])
        seconds += float(m["s"] or 0)
    if not total_n or charging:
        return None
    return {"avg_mw": total_mw / total_n, "samples": total_n, "seconds": seconds, "source": "measured",
            "monitor": "phone battery (sampled by the app during RUN)"}


def subtract_baseline(power: dict, baseline_mw: float | None) -> dict:
    """The app's battery figure minus the host's idle baseline (taken before the first RUN), saying so."""
    if baseline_mw is None:
        return power
    return dict(power, avg_mw=max(0.0, power["avg_mw"] - baseline_mw), idle_baseline_mw=round(baseline_mw, 3),
                basis="battery draw during the runs minus the idle baseline measured before them")


def merge_power(a: dict, b: dict) -> dict:
    n = a.get("samples", 1) + b.get("samples", 1)
    avg = (a["avg_mw"] * a.get("samples", 1) + b["avg_mw"] * b.get("samples", 1)) / n
    return dict(a, avg_mw=avg, samples=n, seconds=a.get("seconds", 0) + b.get("seconds", 0))
