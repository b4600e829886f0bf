"""``ondevice serve``: the emulated board's UART on a loopback TCP port or a pty, as a subprocess like a user runs it.

The MLPerf Tiny / EEMBC runner's side (ondevice.profiling.eembc) and ``ondevice profile --device socket://`` drive
the served firmware; Ctrl-C (SIGINT) stops it with QEMU gone and exit code 0."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from _firmware_support import REPO
from conftest import require_tool
from ondevice.errors import ConfigError
from ondevice.profiling.eembc import EembcHost, expected_results
from test_eembc import conv_library, framed_run  # noqa: F401 - the module fixture is shared

pytestmark = pytest.mark.qemu


class Served:
    """``python -m ondevice serve ...`` in the background; ``address`` and ``qemu_pid`` from what it printed."""

    def __init__(self, *args: str):
        self.p = subprocess.Popen([sys.executable, "-m", "ondevice", "serve", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
        line = self.p.stdout.readline()  # blocks until the firmware has booted and the address is open
        m = re.match(r"serving (\S+) on (\S+)", line)
        assert m, f"serve printed {line!r}; stderr: {self._stderr_now()}"
        self.address = m.group(2)
        for _ in range(20):  # a "building firmware" line may come first
            pid = re.search(r"QEMU pid (\d+)", self.p.stderr.readline())
            if pid:
                break
        self.qemu_pid = int(pid.group(1))

    def _stderr_now(self) -> str:
        self.p.kill()
        return self.p.stderr.read()

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT, as a terminal sends it; returns (exit code, the rest of stderr)."""
        self.p.send_signal(signal.SIGINT)
        try:
            rc = self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise
        return rc, self.p.stderr.read()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def _gone(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def tools():
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")


@pytest.fixture(scope="module")
def served(tools, conv_library):  # noqa: F811
    s = Served("--board", "qemu-mps2-an386", "--artifact", str(conv_library), "--tcp", "127.0.0.1:0")
    try:
        yield s
        rc, err = s.interrupt()  # Ctrl-C: exit 0, QEMU gone, the port closed
        assert rc == 0 and "Traceback" not in err, err
        assert _gone(s.qemu_pid), "QEMU outlived serve"
        import socket
        host, port = s.address[len("socket://"):].rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5)
    finally:
        s.close()


def test_serve_tcp_eembc_runner_matches_run(served):
    from ondevice.profiling.transports import open_transport
    assert served.address.startswith("socket://127.0.0.1:")
    x = np.random.default_rng(5).integers(-128, 128, 49 * 40, dtype=np.int8).tobytes()
    t = open_transport(served.address)
    try:
        dut = EembcHost(t, timeout=120)
        assert dut.name() == "m-name-dut-[ondevice qemu-mps2-an386]"
        import socket
        host, port = served.address[len("socket://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as second:  # a UART has one other end
            assert second.recv(1) == b""
        dut.load(x)
        r = dut.infer(10, 1)
        assert r.elapsed_us > 0 and len(r.laps_us) == 2
        outs, specs = framed_run(t, [x])  # our protocol, same connection, same input
        assert r.results_text == expected_results(outs, specs)
        assert dut.results() == r.results_text
    finally:
        t.close()


def test_profile_cli_against_serve(served, conv_library, tmp_path):  # noqa: F811
    # --timeout 5: the emulated UART crawls when the shared machine is busy (1 s replies time out, then retry storms)
    r = subprocess.run([sys.executable, "-m", "ondevice", "profile", str(conv_library), "--device", served.address,
                        "--runs", "3", "--warmup", "1", "--out", str(tmp_path),
                        "--timeout", "5"], capture_output=True, text=True,
                       timeout=600)
    rep = json.loads((tmp_path / "profile.json").read_text())
    assert r.returncode == 0, (r.stderr[-2000:], rep.get("link"))
    assert rep["status"] == "ok" and rep["device"]["board"] == "qemu-mps2-an386"
    assert len(rep["timings"]["values"]) == 3 and rep["timings"]["unit"] == "instructions"


def test_serve_pty_and_ctrl_c_leaves_nothing(tools):
    s = Served("--board", "qemu-mps2-an386", "--artifact", str(REPO / "firmware/core/testmodel"),
               "--pty")
    try:
        assert s.address.startswith("/dev/pts/")
        from ondevice.profiling.transports import open_transport
        t = open_transport(f"serial://{s.address}")
        try:
            x = np.arange(-64, 64, 8, dtype=np.int8)
            dut = EembcHost(t, timeout=60)
            assert dut.profile()["model"] == "testmodel"
            dut.load(x.tobytes())
            assert len(dut.infer(10, 1).results_text) == 4
        finally:
            t.close()
        rc, err = s.interrupt()
        assert rc == 0, err
        assert "stopped qemu-mps2-an386" in err and "Traceback" not in err
        assert _gone(s.qemu_pid), "QEMU outlived serve"
        assert not os.path.exists(s.address) or not _pty_in_use(s.address)
    finally:
        s.close()


def _pty_in_use(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def test_serve_refuses_non_loopback_in_one_line():
    from ondevice.serve import parse_loopback
    for bad in ("0.0.0.0:5555", "192.168.1.2:80", "example.com:1", "5555"):
        with pytest.raises(ConfigError):
            parse_loopback(bad)
    assert parse_loopback("localhost:0") == ("127.0.0.1", 0) and parse_loopback("[::1]:9") == ("::1", 9)
    r = subprocess.run([sys.executable, "-m", "ondevice", "serve", "--tcp", "0.0.0.0:5555"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 2 and r.stderr.splitlines()[0].startswith("error: serve binds loopback addresses only")
    assert "Traceback" not in r.stderr
    import socket
    with socket.create_server(("127.0.0.1", 0)) as busy:  # a taken port: one line before QEMU is ever started
        r = subprocess.run([sys.executable, "-m", "ondevice", "serve", "--artifact",
                            str(REPO / "firmware/core/testmodel"), "--tcp", "127.0.0.1:%d" % busy.getsockname()[1]],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 2 and r.stderr.startswith("error: cannot listen on 127.0.0.1:") and "in use" in r.stderr



def test_serve_library_boots_the_flashed_image_and_stops_on_its_event(tools, tmp_path, monkeypatch):
    """``ondevice.serve.serve`` in a thread: no artifact means the image ``ondevice flash`` wrote; ``stop`` ends it."""
    import threading
    from ondevice.flash import flash
    from ondevice.profiling.transports import open_transport
    from ondevice.serve import serve
    monkeypatch.setenv("ONDEVICE_CACHE", str(tmp_path))
    flash("qemu-mps2-an386", REPO / "firmware/core/testmodel")
    ready, stop, info = threading.Event(), threading.Event(), {}

    def on_ready(i: dict) -> None:
        info.update(i)
        ready.set()

    th = threading.Thread(target=serve, args=("qemu-mps2-an386",), kwargs={"stop": stop, "on_ready": on_ready})
    th.start()
    try:
        assert ready.wait(60), "serve never became ready"
        assert info["banner"].endswith("qemu-mps2-an386 testmodel")
        t = open_transport(info["address"])
        try:
            assert EembcHost(t, timeout=30).profile()["model"] == "testmodel"
        finally:
            t.close()
    finally:
        stop.set()
        th.join(30)
    assert not th.is_alive() and _gone(info["qemu_pid"])
