"""The firmware under QEMU (mps2-an386 Cortex-M4F, mps3-an547 Cortex-M55) over its real serial line, driven by the
host profiler: boot and reset reasons, the profile path end to end, the C frontend bit-exact with Python, and a
generated model (audio -> frontend -> quantize -> model on the device) bit-exact with the TFLM interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from _firmware_support import REPO, fixture_model_reference
from conftest import require_tool
from ondevice.profiling import protocol as P
from ondevice.profiling.profiler import profile
from ondevice.profiling.session import DeviceSession
from ondevice.profiling.transports import open_transport

BOARDS = ["mps2-an386", "mps3-an547"]
TESTMODEL = REPO / "firmware" / "core" / "testmodel"
pytestmark = pytest.mark.qemu


@pytest.fixture(scope="session")
def tools():
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")


@pytest.fixture(scope="session")
def fixture_elfs(tools, tmp_path_factory):
    """Firmware with the test-fixture model for both boards (built once, cached by content)."""
    from ondevice.mcu.firmware import build_firmware
    return {m: build_firmware(f"qemu-{m}") for m in BOARDS}


@pytest.fixture(scope="session")
def conv_library(tmp_path_factory):
    """A generated model library whose input is the 49x40 int8 feature map: one 3x3 CONV_2D, 4 channels."""
    from mcu_cases import Case
    from ondevice.mcu.library import write_library
    c = Case(seed=11)
    c.conv([1, 49, 40, 1], 4, 3)
    out = tmp_path_factory.mktemp("convlib") / "featconv_mcu_int8"
    write_library(c.build(), out, name="featconv")
    return out


def test_boot_hello_and_reset_reason(fixture_elfs):
    from ondevice.profiling.transports.qemu import QemuInstance
    from ondevice.profiling.transports.socket import SocketStream
    with QemuInstance("mps2-an386", fixture_elfs["mps2-an386"]) as q:
        boot, hello = DeviceSession(SocketStream(q.sock, "qemu://mps2-an386"), timeout=10).handshake()
        assert boot["reset_reason"] == "power_on" and boot["banner"].endswith("qemu-mps2-an386 testmodel")
        assert hello["board"] == "qemu-mps2-an386" and hello["clock_hz"] == 25_000_000
        assert hello["timer_unit"] == "instructions"
        q.sock.sendall(P.message(P.MsgType.RESET, 2))
        dec, frames = P.StreamDecoder(), []
        while len(frames) < 2:
            frames += dec.feed(q.sock.recv(4096))
        reply, again = frames[:2]
        assert reply.type == P.reply_type(P.MsgType.RESET) and again.type == P.MsgType.BOOT
        b = P.unpack(again)
        assert b["reset_reason"] == P.ResetReason.SOFTWARE and b["boot_id"] == boot["boot_id"] + 1
        pid = q.pid
    import os
    with pytest.raises(ProcessLookupError):  # stopped, by PID
        os.kill(pid, 0)


@pytest.mark.parametrize("machine", BOARDS)
def test_profile_fixture_model_end_to_end(machine, fixture_elfs, tmp_path):
    from ondevice.mcu.firmware import firmware_sizes
    x = np.arange(-64, 64, 8, dtype=np.int8).reshape(1, 16)
    elf = fixture_elfs[machine]
    r = profile(TESTMODEL, f"qemu://{machine}?elf={elf}", runs=5, warmup=1, out=tmp_path, inputs=[x])
    m = r["metrics"]
    assert r["status"] == "ok" and r["device"]["board"] == f"qemu-{machine}"
    assert r["timings"]["unit"] == "instructions"
    assert m["instructions_per_inference"]["source"] == "emulated" and m["instructions_per_inference"]["value"] > 100
    assert m["peak_ram_bytes"]["source"] == "emulated" and m["flash_bytes"]["source"] == "emulated"
    assert m["energy_per_inference_mj"]["source"] == "modelled"
    sizes = firmware_sizes(elf)
    # the device reports its load image; the ELF's section sum differs only by alignment padding
    assert 0 <= r["memory"]["flash_used_bytes"] - sizes["flash_bytes"] <= 16
    assert r["device_stats"]["elf_flash_bytes"] == sizes["flash_bytes"]  # host-side, from the ELF
    assert r["memory"]["peak_ram_bytes"] == sizes["static_ram_bytes"] + r["memory"]["stack_high_water_bytes"]
    assert 0 < r["memory"]["stack_high_water_bytes"] < r["memory"]["stack_total_bytes"]
    assert r["outputs"][0]["values"] == fixture_model_reference(x).tolist()
    assert [o["name"] for o in r["op_timings"]["ops"]] == ["FULLY_CONNECTED", "ADD"]
    assert (tmp_path / "profile.json").is_file() and (tmp_path / "report.html").is_file()


def test_frontend_under_qemu_bit_exact(fixture_elfs):
    """Mode 2 on the Cortex-M4: the C frontend's feature map equals ondevice.features. One shared vector (the
    'edges' one: silence, full-scale square, impulse); the host build checks all of them, and 32 KB of audio
    takes seconds over the emulated UART."""
    from ondevice.features.twins import read_vector
    paths = sorted((REPO / "tests" / "vectors" / "frontend").glob("01_*.json"))
    assert len(paths) == 1
    t = open_transport(f"qemu://mps2-an386?elf={fixture_elfs['mps2-an386']}")
    try:
        s = DeviceSession(t, timeout=10)
        s.hello()
        s.set_mode(P.Mode.FRONTEND)
        for p in paths:
            wav, feats, _ = read_vector(p)
            s.set_input(P.AUDIO_INDEX, wav.astype("<i2").tobytes())
            unit, ts = s.run(1, 0)
            assert unit == "instructions" and ts[0] > 0
            got = np.frombuffer(s.get_output(P.AUDIO_INDEX), "<u2").reshape(feats.shape)
            assert np.array_equal(got, feats), p.name
    finally:
        t.close()


@pytest.mark.parametrize("machine", BOARDS)
def test_generated_model_with_frontend_bit_exact_vs_tflm(machine, tools, conv_library):
    """Audio in, model output out, all on the emulated MCU; the reference is ondevice.features + the TFLM
    interpreter on the same tflite. Also model-only mode on random int8 inputs."""
    from ondevice.features import compute_features, quantize_features
    from ondevice.features.twins import read_vector
    from ondevice.runtimes.tflm import TFLMRuntime
    ref = TFLMRuntime().load(conv_library / "source.tflite")
    spec = ref.inputs[0]
    from ondevice.mcu.firmware import build_firmware
    t = open_transport(f"qemu://{machine}", firmware=build_firmware(f"qemu-{machine}", conv_library))
    try:
        s = DeviceSession(t, timeout=10)
        s.hello()
        assert s.select_builtin(name="featconv")["name"] == "featconv"
        s.set_mode(P.Mode.FRONTEND_MODEL)
        for p in sorted((REPO / "tests" / "vectors" / "frontend").glob("00_*.json")):
            wav, _, _ = read_vector(p)
            s.set_input(P.AUDIO_INDEX, wav.astype("<i2").tobytes())
            s.run(1, 0)
            got = np.frombuffer(s.get_output(0), np.int8)
            x = quantize_features(compute_features(wav), spec.scale, spec.zero_point).reshape(spec.shape)
            want = ref.run([x])[0].reshape(-1)
            assert np.array_equal(got, want), p.name
        s.set_mode(P.Mode.MODEL)
        rng = np.random.default_rng(5)
        for _ in range(2):
            x = rng.integers(-128, 128, spec.shape).astype(np.int8)
            s.set_input(0, x.tobytes())
            unit, ts = s.run(2, 1)
            assert unit == "instructions" and ts[0] > 70_000  # 70 560 MACs cannot take fewer instructions
            assert np.array_equal(np.frombuffer(s.get_output(0), np.int8), ref.run([x])[0].reshape(-1))
    finally:
        t.close()


def test_verify_entry_mcu_qemu_over_the_serial_line(tools, conv_library):
    """The `mcu-qemu` verify entry: reference and optimised kernels on mps2-an386, outputs over the UART,
    compared bit for bit with the TFLM interpreter."""
    from ondevice.verify.mcu import verify_on_device
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (3, 1, 49, 40, 1)).astype(np.int8)
    rep = verify_on_device(conv_library, x, board="qemu-mps2-an386")
    assert rep["runtime"] == "mcu-qemu" and rep["vectors"] == 3 and rep["elements_compared"] == 3 * 49 * 40 * 4
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0} and rep["bit_exact_vs_tflm"] is True
    assert rep["timer_unit"] == "instructions" and rep["per_inference_median"]["ref"] > 70_000


def test_nucleo_port_runs_on_qemu_stm32f405(tools):
    """The nucleo-f446re port (startup at 0x08000000, GPIOA/USART2 driver, SysTick, RCC_CSR) on QEMU's
    netduinoplus2, an STM32F405 with the same registers. QEMU has no RCC model, so the PLL is off; the 180 MHz
    path is not run anywhere, and the port is not run on hardware."""
    from ondevice.boards import get_port
    from ondevice.mcu.firmware import build_firmware
    from ondevice.profiling.transports.qemu import QemuInstance
    from ondevice.profiling.transports.socket import SocketStream
    from ondevice.features.twins import read_vector
    port = get_port("nucleo-f446re")
    smoke = port.extra
    elf = build_firmware("nucleo-f446re", extra_cflags=smoke["qemu_smoke_cflags"])
    with QemuInstance(smoke["qemu_smoke_machine"], elf, serial_index=smoke["qemu_smoke_serial_index"]) as q:
        s = DeviceSession(SocketStream(q.sock, "qemu-netduinoplus2"), timeout=10)
        boot, hello = s.handshake()
        assert boot["banner"].startswith("ondevice od-mcu") and hello["board"] == "nucleo-f446re"
        assert hello["timer_unit"] == "cycles" and hello["clock_hz"] == 16_000_000  # HSI, as built
        assert s.info.rx_window == 2  # interrupt-driven USART2 ring: uploads pipeline two chunks
        s.select_builtin(index=0)
        x = np.arange(-64, 64, 8, dtype=np.int8)
        s.set_input(0, x.tobytes())
        s.run(3, 1)
        assert np.array_equal(np.frombuffer(s.get_output(0), np.int8), fixture_model_reference(x))
        mem = s.get_memory()
        assert mem["stack_total_bytes"] == 16384 and 0 < mem["stack_high_water_bytes"] < 16384
        s.set_mode(P.Mode.FRONTEND)  # 32 KB through the USART2 receive path
        wav, feats, _ = read_vector(sorted((REPO / "tests" / "vectors" / "frontend").glob("01_*.json"))[0])
        s.set_input(P.AUDIO_INDEX, wav.astype("<i2").tobytes())
        s.run(1, 0)
        assert np.array_equal(np.frombuffer(s.get_output(P.AUDIO_INDEX), "<u2").reshape(feats.shape), feats)


def test_unannounced_reset_is_detected_by_the_host(fixture_elfs):
    """QEMU's system_reset (a reset nobody asked for) makes the firmware send BOOT with reason 'pin'; the host
    session stops with DeviceResetError instead of carrying on with a rebooted device."""
    import time

    from ondevice.errors import DeviceResetError
    from ondevice.profiling.transports.qemu import _monitor
    t = open_transport(f"qemu://mps2-an386?elf={fixture_elfs['mps2-an386']}")
    try:
        s = DeviceSession(t, timeout=5)
        s.hello()
        s.select_builtin(index=0)
        _monitor(t.qemu.proc, "system_reset")
        time.sleep(0.3)
        with pytest.raises(DeviceResetError) as e:
            s.model_info()
        assert "pin" in e.value.message
    finally:
        t.close()


def _gdb(sock, body: str) -> str:
    """One GDB remote-protocol packet to QEMU's gdbstub; returns the reply body."""
    sock.sendall(f"${body}#{sum(body.encode()) % 256:02x}".encode())
    buf = b""
    while True:
        buf += sock.recv(4096)
        i = buf.find(b"$")
        if i >= 0 and b"#" in buf[i:] and len(buf) >= buf.index(b"#", i) + 3:
            return buf[i + 1:buf.index(b"#", i)].decode()


_UDF = "00de"  # UDF #0 (Thumb): an undefined instruction, planted at od_agent_init


@pytest.mark.parametrize("machine", BOARDS)
def test_fault_is_reported_as_fault_on_the_next_boot(machine, fixture_elfs):
    """Code planted through QEMU's gdbstub faults the first boot: the fault handler records the reason in .noinit
    RAM and resets, and the next boot's BOOT frame says 'fault'."""
    import socket
    import time

    from elftools.elf.elffile import ELFFile

    from ondevice.profiling.transports.qemu import QemuInstance, _free_port
    from ondevice.profiling.transports.socket import SocketStream
    elf = fixture_elfs[machine]
    with open(elf, "rb") as f:
        addr = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name("od_agent_init")[0]["st_value"] & ~1
    gport = _free_port()
    q = QemuInstance(machine, elf, extra=["-gdb", f"tcp:127.0.0.1:{gport}"]).start(paused=True)
    try:
        for _ in range(100):
            try:
                g = socket.create_connection(("127.0.0.1", gport), timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("QEMU's gdbstub never listened")
        assert _gdb(g, f"M{addr:x},2:{_UDF}") == "OK"
        g.sendall(b"+")
        assert _gdb(g, "D") == "OK"  # detach: the CPU runs freely from here
        g.close()
        q.cont()
        boot, hello = DeviceSession(SocketStream(q.sock, f"qemu://{machine}"), timeout=10).handshake()
        assert boot["reset_reason"] == "fault" and boot["boot_id"] == 2  # the first boot never got to say hello
        assert hello["board"] == f"qemu-{machine}"  # -kernel reloads the image on reset: the planted code is gone
    finally:
        q.stop()


def test_profiling_an_mcu_folder_builds_its_firmware_and_hands_it_to_qemu(tools, conv_library):
    """``qemu://<machine>`` carries no path: the profiler builds the firmware for the artifact (``variant=ref``: the
    reference kernels) and boots it through ``QemuTransport.open(url, firmware=)``; ``--device all`` picks the
    QEMU boards for an mcu folder."""
    from ondevice.mcu.firmware import build_firmware
    from ondevice.profiling.devices import urls_for_all
    r = profile(conv_library, "qemu://mps2-an386?variant=ref", runs=2, warmup=0, out=None)
    assert r["status"] == "ok" and r["device"]["builtin_model"] == "featconv"
    assert r["device_stats"]["firmware_elf"] == str(build_firmware("qemu-mps2-an386", conv_library, variant="ref"))
    assert {"qemu://mps2-an386", "qemu://mps3-an547"} <= set(urls_for_all(conv_library))
    assert not any(u.startswith(("serial://", "socket://")) for u in urls_for_all(conv_library))
