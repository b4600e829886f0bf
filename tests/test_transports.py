"""Transports against real peers: a pty (serial), sockets, and fake peers at the library boundary for adb
(an adbutils-compatible device object), usbmux (a pymobiledevice3-compatible device) and the PPK2 (its serial
protocol on a pty). Behind each one runs the sim agent, so every byte goes through the real protocol."""
from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import tty
from pathlib import Path

import pytest

from ondevice.errors import ConfigError, TransportError
from ondevice.profiling import protocol as P
from ondevice.profiling.profiler import profile
from ondevice.profiling.session import DeviceSession
from ondevice.profiling.sim_agent import SimAgent, serve_socket
from ondevice.profiling.sim_io import FdIO
from ondevice.profiling.transports import open_transport, schemes
from ondevice.profiling.transports.adb import BASELINE_SAMPLES, AdbTransport, parse_dumpsys_battery, parse_pss_kb
from ondevice.profiling.transports.fault import FaultTransport
from ondevice.profiling.transports.ios import IosTransport

from _profiling_support import tiny_tflite


@pytest.fixture(scope="module")
def tflite():
    return tiny_tflite()


def _agent_listener(runtime: str = "litert") -> tuple[SimAgent, int, threading.Thread]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    agent = SimAgent(runtime)
    t = threading.Thread(target=serve_socket, args=(agent, ls), daemon=True)
    t.start()
    return agent, ls.getsockname()[1], t


def test_registry_has_every_scheme_and_rejects_unknown():
    assert {"serial", "socket", "sim", "fault", "adb", "ios"} <= set(schemes())
    with pytest.raises(ConfigError) as e:
        open_transport("sockt://127.0.0.1:1")
    assert "socket" in (e.value.hint or "")
    with pytest.raises(ConfigError):
        open_transport("not a url")


def test_transport_interface_declares_every_hook_with_a_default():
    """Every registered transport is a Transport (an ABC); the hooks the profiler calls have defaults, and only
    emulators name firmware to build (fault:// passes its inner URL's on, query keys included)."""
    from ondevice.profiling.transports import TRANSPORTS, FirmwareTarget, Transport
    for scheme, cls in TRANSPORTS.items():
        assert issubclass(cls, Transport), scheme
        assert cls.device_all in (None, "any", "extensions", "mcu"), scheme
    assert TRANSPORTS.get("socket").firmware_for("socket://127.0.0.1:1") is None
    fault = TRANSPORTS.get("fault")
    assert fault.firmware_for("fault://qemu://mps2-an386?variant=ref&drop=0.1") == FirmwareTarget("qemu-mps2-an386",
                                                                                                  "ref")
    assert fault.firmware_for("fault://sim://litert?drop=0.1") is None
    with pytest.raises(TypeError):  # read and write are abstract
        type("Half", (Transport,), {"read": lambda self, n, t: b""})()


def test_socket_transport_to_a_listening_agent(tflite):
    agent, port, _ = _agent_listener()
    r = profile(tflite, f"socket://127.0.0.1:{port}", runs=12, warmup=1, out=None)
    assert r["status"] == "ok" and r["runs"] == 12
    assert r["timings"]["values"] == agent.timings


def test_socket_refused_is_a_transport_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as e:
        open_transport(f"socket://127.0.0.1:{port}")
    assert e.value.hint


def test_serial_over_a_pty(tflite):
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo: a UART does not echo either
    agent = SimAgent("litert")
    th = threading.Thread(target=agent.serve, args=(FdIO(master),), daemon=True)
    th.start()
    try:
        path = os.ttyname(slave)
        r = profile(tflite, f"serial://{path}?baud=115200", runs=10, warmup=1, out=None)
        assert r["status"] == "ok" and r["timings"]["values"] == agent.timings
        assert r["link"]["dropped_frames"] == 0
    finally:
        agent.stop()
        th.join(timeout=5)
        os.close(slave)
        os.close(master)


def test_pyserial_loop_url_gets_no_reply_and_says_so():
    # loop:// echoes our own HELLO back: a request is not a reply, so the session times out cleanly
    t = open_transport("loop://")
    try:
        with pytest.raises(TransportError) as e:
            DeviceSession(t, timeout=0.2, retries=1).hello()
        assert "no reply" in e.value.message
    finally:
        t.close()


def test_serial_missing_port_hint():
    with pytest.raises(TransportError) as e:
        open_transport("serial:///dev/ttyDOESNOTEXIST0")
    assert e.value.hint


def test_fault_url_keeps_inner_query():
    t = open_transport("fault://sim://litert?max_payload=64&drop=0.5&seed=3")
    try:
        assert isinstance(t, FaultTransport) and t.p["drop"] == 0.5
        assert t.inner.agent.max_payload == 64
    finally:
        t.close()


# -- adb ------------------------------------------------------------------------------------------------------

MEMINFO = """Applications Memory Usage (in Kilobytes):
Uptime: 123456 Realtime: 123456

** MEMINFO in pid 4242 [dev.ondevice.app] **
                   Pss  Private  Private  SwapPss      Rss     Heap     Heap     Heap
                 Total    Dirty    Clean    Dirty    Total     Size    Alloc     Free
                ------   ------   ------   ------   ------   ------   ------   ------
  Native Heap    10236    10168        0        0    11612    16384    12340     4043
        TOTAL    48213    36900     6504        0    98112    28860    20213     8646
"""
BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  level: 87
  voltage: 3871
  temperature: 301
"""


class FakeAdbDevice:
    """An adbutils ``AdbDevice`` look-alike (shell, forward, forward_remove, push) whose phone side is the sim agent.

    ``forward`` really listens on the local port and relays to the agent, like the adb server does; a connection
    made before the agent listens is accepted and dropped, as adb does.
    """

    serial = "FAKE0001"

    def __init__(self, current_ua: int = -452000, voltage_uv: int = 3850000, idle_ua: int = -150000):
        self.idle_ua, self.battery_reads = idle_ua, 0  # the first BASELINE_SAMPLES reads: the phone is idle
        self.files: dict[str, bytes] = {}
        self.shell_log: list[str] = []
        self.device_ports: dict[int, int] = {}
        self.relays: dict[int, socket.socket] = {}
        self.agent: SimAgent | None = None
        self.current_ua, self.voltage_uv = current_ua, voltage_uv

    def shell(self, cmd, **kw):
        self.shell_log.append(cmd)
        if cmd.startswith("am start-foreground-service") and "START_AGENT" in cmd:
            port = int(re.search(r"--ei port (\d+)", cmd).group(1))
            self.agent, real, _ = _agent_listener()
            self.device_ports[port] = real
            return "Starting service: Intent { act=dev.ondevice.app.action.START_AGENT cmp=dev.ondevice.app/.AgentService }"
        if cmd.startswith("am start-foreground-service"):
            return "Starting service: Intent { act=dev.ondevice.app.action.STOP_AGENT }"
        if cmd.startswith("dumpsys meminfo"):
            return MEMINFO
        if cmd.startswith("cat /sys/class/power_supply/battery/current_now"):
            self.battery_reads += 1
            ua = self.idle_ua if self.battery_reads <= BASELINE_SAMPLES else self.current_ua
            return f"{ua}\n{self.voltage_uv}"
        if cmd == "dumpsys battery":
            return BATTERY
        return f"/system/bin/sh: {cmd.split()[0]}: not found"

    def forward(self, local: str, remote: str, norebind: bool = False):
        lport, rport = int(local.split(":")[1]), int(remote.split(":")[1])
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", lport))
        ls.listen(4)
        self.relays[lport] = ls

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def accept():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                real = self.device_ports.get(rport)
                try:
                    d = socket.create_connection(("127.0.0.1", real)) if real else None
                except OSError:
                    d = None
                if d is None:
                    c.close()
                    continue
                threading.Thread(target=pump, args=(c, d), daemon=True).start()
                threading.Thread(target=pump, args=(d, c), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def forward_remove(self, local: str, raise_non_found: bool = True):
        ls = self.relays.pop(int(local.split(":")[1]), None)
        if ls:
            ls.close()

    def push(self, src: str, dst: str):
        self.files[dst] = Path(src).read_bytes()


def test_adb_transport_profiles_through_a_fake_device(tflite, tmp_path):
    (tmp_path / "m.tflite").write_bytes(tflite.read_bytes())
    from ondevice.export.manifest import FORMAT, REQUIRED
    manifest = {k: None for k in REQUIRED} | {"format": FORMAT, "model": "tiny", "artifact": "m.tflite"}
    (tmp_path / "m.tflite.manifest.json").write_text(json.dumps(manifest))
    dev = FakeAdbDevice()
    t = AdbTransport.open("adb://FAKE0001?runtime=litert", device=dev)
    try:
        r = profile(tmp_path / "m.tflite", t, runs=20, warmup=1, out=tmp_path / "out")
    finally:
        t.close()
    assert r["status"] == "ok" and r["timings"]["values"] == dev.agent.timings
    assert any("--ei port 47474" in c and "--es runtime litert" in c for c in dev.shell_log)
    assert set(dev.files) == {"/sdcard/Android/data/dev.ondevice.app/files/m.tflite",
                              "/sdcard/Android/data/dev.ondevice.app/files/m.tflite.manifest.json"}
    assert r["device"]["board"] == "host"  # the sim agent announces its own board; the app says android-generic
    m = r["metrics"]
    # the agent (here the sim agent standing in for the app) reports the model's memory; PSS is kept beside it
    assert m["peak_ram_bytes"]["basis"].startswith("litert") and m["peak_ram_bytes"]["source"] == "measured"
    assert r["device_stats"]["pss_bytes"] == 48213 * 1024
    assert m["avg_power_mw"]["source"] == "measured"
    # the idle baseline (150 mA, sampled before the first RUN) is subtracted, and the metric says so
    assert m["avg_power_mw"]["value"] == pytest.approx((452000 - 150000) * 3850000 / 1e9)
    assert m["avg_power_mw"]["idle_baseline_mw"] == pytest.approx(150000 * 3850000 / 1e9)
    assert "idle baseline" in m["avg_power_mw"]["basis"] and "idle baseline" in m["energy_per_inference_mj"]["basis"]
    assert m["energy_per_inference_mj"]["value"] == pytest.approx(
        m["avg_power_mw"]["value"] * m["latency_mean_ms"]["value"] / 1e3, rel=1e-3)
    assert not dev.relays  # the forward was removed on close
    assert any("STOP_AGENT" in c for c in dev.shell_log)


def test_adb_agent_not_installed_is_clear():
    class NoApp(FakeAdbDevice):
        def shell(self, cmd, **kw):
            return "Error: Not found; no service started."
    with pytest.raises(TransportError) as e:
        AdbTransport.open("adb://FAKE0001", device=NoApp())
    assert "install the sample app" in e.value.hint


def test_adb_parsers():
    assert parse_pss_kb(MEMINFO) == 48213
    assert parse_pss_kb("TOTAL PSS:    51234            TOTAL RSS:   99000") == 51234
    assert parse_dumpsys_battery(BATTERY) == (None, 3871000)
    assert parse_dumpsys_battery(BATTERY + "  current now: -310000\n") == (-310000, 3871000)


# -- ios ------------------------------------------------------------------------------------------------------

class FakeMuxDevice:
    """A pymobiledevice3 ``MuxDevice`` look-alike: ``connect(port)`` returns a socket to the app's port."""

    serial = "00008110-FAKE"

    def __init__(self, port: int, real: int):
        self.port, self.real = port, real

    def connect(self, port: int):
        if port != self.port:
            raise ConnectionRefusedError(f"port {port} is closed on the device")
        return socket.create_connection(("127.0.0.1", self.real))


def test_ios_transport_profiles_through_a_fake_usbmux_device(tflite):
    agent, real, _ = _agent_listener()
    t = IosTransport.open("ios://00008110-FAKE", device=FakeMuxDevice(47474, real))
    try:
        r = profile(tflite, t, runs=15, warmup=1, out=None)
    finally:
        t.close()
    assert r["status"] == "ok" and r["timings"]["values"] == agent.timings


def test_ios_closed_port_is_clear():
    with pytest.raises(TransportError) as e:
        IosTransport.open("ios://X?port=1234", device=FakeMuxDevice(47474, 1))
    assert "open the ondevice app" in e.value.hint


# -- PPK2 -----------------------------------------------------------------------------------------------------

RANGE, ADC, R1 = 1, 1000, 101.65


def _fake_ppk2(master: int, stop: threading.Event):
    """The PPK2's serial side: calibration metadata on GET_META_DATA (0x19), 4-byte samples after AVERAGE_START."""
    meta = "".join(f"{k}{i}: {v}\n" for i in range(5) for k, v in (("GS", 0), ("GI", 1), ("O", 0), ("S", 0),
                                                                      ("I", 0), ("UG", 1)))
    meta = "Calibrated: 0\n" + f"R1: {R1}\n" + meta + "HW: 9173\nIA: 56\nEND\n"
    sample = struct.pack("<I", (RANGE << 14) | ADC)
    streaming = False
    while not stop.is_set():
        import select
        r, _, _ = select.select([master], [], [], 0.001)
        if r:
            cmd = os.read(master, 64)
            if 0x19 in cmd:
                os.write(master, meta.encode())
            if 0x06 in cmd:
                streaming = True
            if 0x07 in cmd:
                streaming = False
        if streaming:
            os.write(master, sample * 100)


def test_ppk2_power_monitor_measures_energy(tflite, tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    th = threading.Thread(target=_fake_ppk2, args=(master, stop), daemon=True)
    th.start()
    try:
        r = profile(tflite, "sim://litert", runs=300, warmup=1, out=None,
                    power=f"ppk2://{os.ttyname(slave)}?voltage=3300")
    finally:
        stop.set()
        th.join(timeout=5)
        os.close(slave)
        os.close(master)
    # expected from the PPK2 ADC formula: I = adc*4 * (1.8 / 163840) / R[range]
    ua = ADC * 4 * (1.8 / 163840) / R1 * 1e6
    m = r["metrics"]
    assert m["avg_power_mw"]["source"] == "measured"
    assert m["avg_power_mw"]["value"] == pytest.approx(ua * 3300 / 1e6, rel=1e-3)
    assert m["energy_per_inference_mj"]["source"] == "measured"
    assert m["avg_power_mw"]["monitor"].startswith("ppk2://")


def test_boards_and_devices_listing():
    from ondevice.profiling.devices import list_devices
    from ondevice.profiling.power import board_names, load_board
    for name in ("qemu-mps2-an386", "qemu-mps3-an547", "nucleo-f446re", "host", "android-generic", "ios-generic"):
        b = load_board(name)
        assert b["name"] == name
        for k in ("clock_hz", "ram_bytes", "flash_bytes", "active_mw"):
            if k in b:
                assert b[k]["source"] and b[k]["value"] > 0
    assert len(board_names()) >= 6
    with pytest.raises(ConfigError):
        load_board("qemu-mps2-an38")
    d = list_devices()
    sims = {e["url"] for e in d["sim"] if e["available"]}
    assert {"sim://litert", "sim://tflm", "sim://executorch"} <= sims
    assert isinstance(d["serial"], list) and "notes" in d


# -- session details against scripted and sim peers -------------------------------------------------------------

def test_reset_request_waits_for_boot_and_a_new_handshake_works():
    t = open_transport("sim://litert")
    try:
        s = DeviceSession(t, timeout=1.0)
        first = s.hello()
        assert s.ping(b"\x00abc\x00") == b"\x00abc\x00"
        boot = s.reset()
        assert boot["reset_reason"] == P.ResetReason.SOFTWARE and b"sim agent" in boot["banner"]
        again = s.hello()
        assert again.boot_id != first.boot_id  # the device rebooted, and the session knows it asked for it
    finally:
        t.close()


def _scripted_device(sock: socket.socket, ops: list[dict], max_payload: int):
    """A minimal device written on the codec: HELLO with OP_TIMINGS, then paged GET_OP_TIMINGS replies."""
    dec = P.StreamDecoder()
    T = P.MsgType
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return
            for f in dec.feed(data):
                if f.type == T.HELLO:
                    sock.sendall(P.message(P.reply_type(T.HELLO), f.seq, version=1, caps=int(P.Caps.OP_TIMINGS),
                                           max_payload=max_payload, rx_window=1, max_runs=16,
                                           timer_units=1 << P.TimerUnit.CYCLES, default_unit=1, clock_hz=1000000,
                                           ram_bytes=65536, flash_bytes=262144, builtin_models=1, boot_id=0,
                                           device="scripted", runtime="od-mcu", board="nucleo-f446re"))
                elif f.type == T.GET_OP_TIMINGS:
                    first = P.unpack(f)["first_op"]
                    pos = first
                    while True:  # as many entries per frame as fit, streamed with MORE
                        batch, size = [], 8
                        while pos + len(batch) < len(ops):
                            o = ops[pos + len(batch)]
                            if size + 9 + len(o["name"]) > max_payload:
                                break
                            batch.append(o)
                            size += 9 + len(o["name"])
                        done = pos + len(batch) >= len(ops)
                        sock.sendall(P.message(P.reply_type(T.GET_OP_TIMINGS), f.seq, 0 if done else P.FLAG_MORE,
                                               unit=int(P.TimerUnit.CYCLES), total_ops=len(ops), first_op=pos,
                                               count=len(batch), ops=batch))
                        pos += len(batch)
                        if done:
                            break
    except OSError:
        return


def test_op_timings_are_paged_over_small_frames():
    ops = [{"time": 1000 * i + 7, "name": f"OP_{i}_CONV_2D"} for i in range(23)]
    host, dev = socket.socketpair()
    th = threading.Thread(target=_scripted_device, args=(dev, ops, 64), daemon=True)
    th.start()
    t = _PairStream(host)
    s = DeviceSession(t, timeout=1.0)
    info = s.hello()
    assert info.has(P.Caps.OP_TIMINGS) and info.units() == ["cycles"]
    unit, got = s.get_op_timings()
    assert unit == "cycles"
    assert [(o["index"], o["name"], o["time"]) for o in got] == [(i, o["name"], o["time"]) for i, o in enumerate(ops)]
    host.close()
    dev.close()


class _PairStream:
    """A Transport over one end of a socketpair (AF_UNIX has no TCP_NODELAY)."""

    bytes_per_s = None

    def __init__(self, sock):
        self.sock = sock

    def read(self, n, timeout):
        import select
        r, _, _ = select.select([self.sock], [], [], timeout)
        return self.sock.recv(n) if r else b""

    def write(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


@pytest.mark.hardware
def test_profile_on_real_hardware(request, tflite, tmp_path):
    """The same profile on a real device: ``pytest -m hardware --device serial:///dev/ttyACM0``."""
    url = request.config.getoption("--device")
    r = profile(tflite, url, runs=20, warmup=2, out=tmp_path)
    assert r["status"] == "ok" and r["runs"] == 20
    assert all(m["source"] in ("measured", "emulated", "modelled") for m in r["metrics"].values())


def test_fault_reset_on_a_link_that_cannot_reset_the_device(tflite):
    # socket:// has no reset hook: fault:// injects a BOOT and drops the rest, as a rebooted device would
    from ondevice.errors import DeviceResetError
    _, port, _ = _agent_listener()
    t = open_transport(f"fault://socket://127.0.0.1:{port}?reset_after=4")
    try:
        with pytest.raises(DeviceResetError):
            profile(tflite, t, runs=5, warmup=0, out=None, timeout=0.5, retries=1)
        assert t.counts["reset"] == 1
    finally:
        t.close()
