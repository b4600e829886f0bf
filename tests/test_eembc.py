"""The EEMBC / MLPerf Tiny DUT command set in the firmware core, beside the framed protocol on the same line.

The runner's side (ondevice.profiling.eembc, written from the runner's public description) drives the host build
of the agent over a pipe and the real firmware under QEMU mps2-an386; every m-results line must be the RUN outputs
of the framed protocol for the same input, to the printed digit."""
from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from _firmware_support import PipeTransport, fixture_model_reference, make
from conftest import require_tool
from ondevice.errors import DeviceError
from ondevice.profiling import protocol as P
from ondevice.profiling.eembc import EembcHost, expected_results
from ondevice.profiling.session import DeviceSession


@pytest.fixture(scope="module")
def host_agent_exe(tmp_path_factory):
    require_tool("cc")
    out = tmp_path_factory.mktemp("fw_host_eembc")
    make("host", HOST_O=str(out))
    return out / "od_agent"


@pytest.fixture()
def agent(host_agent_exe):
    t = PipeTransport(host_agent_exe)
    yield t
    t.close()


def framed_run(t, inputs: list[bytes]) -> tuple[list[bytes], list[dict]]:
    """Our protocol's path for the same input: HELLO, SET_INPUT, RUN 1, GET_OUTPUT (raw bytes + output specs)."""
    s = DeviceSession(t, timeout=10)
    s.hello()
    mi = s.model_info()
    for i, x in enumerate(inputs):
        s.set_input(i, x)
    s.run(1, 0)
    specs = mi["tensors"][mi["n_inputs"]:]
    return [s.get_output(k) for k in range(len(specs))], specs


def test_host_agent_speaks_eembc_and_frames_on_one_line(agent):
    x = np.arange(-64, 64, 8, dtype=np.int8)
    dut = EembcHost(agent, timeout=10)
    assert dut.name() == "m-name-dut-[ondevice host]"
    assert dut.profile() == {"profile": "ulp-mlperf", "model": "testmodel"}
    dut.load(x.tobytes())
    r = dut.infer(10, 1)
    assert len(r.laps_us) == 2 and r.laps_us[1] >= r.laps_us[0]
    assert dut.results() == r.results_text
    # then the framed protocol on the same line: the agent must not have lost sync
    outs, specs = framed_run(agent, [x.tobytes()])
    assert np.array_equal(np.frombuffer(outs[0], np.int8), fixture_model_reference(x))
    assert r.results_text == expected_results(outs, specs)
    # and EEMBC again after frames
    assert dut.results() == r.results_text


def test_eembc_errors_are_e_lines_and_the_line_stays_usable(agent):
    dut = EembcHost(agent, timeout=10)
    for cmd in ("bogus", "db load 3", "infer 0 0", "results", "db 0011"):
        with pytest.raises(DeviceError, match="e-\\["):
            dut.command(cmd)
    dut.command("db load 16")
    with pytest.raises(DeviceError, match="not hex"):
        dut.command("db zz" + "00" * 15)
    with pytest.raises(DeviceError, match="odd length"):
        dut.command("db 001")
    with pytest.raises(DeviceError, match="load the input"):
        dut.command("infer 1 0")
    assert dut.command("help")[0].startswith("m-[name profile")
    with pytest.raises(DeviceError, match="too long"):
        dut.command("db " + "00" * 200)
    assert dut.name().startswith("m-name-dut-")
    dut.load(bytes(16))  # the database state survived the errors
    assert dut.name().startswith("m-name-dut-")


def test_frames_carrying_percent_and_text_are_not_taken_for_commands(agent):
    """A PING whose payload is an EEMBC command line must come back as a PING, and no m- line may appear."""
    s = DeviceSession(agent, timeout=10)
    s.hello()
    for payload in (b"name%", b"\r\nname%\r\n", b"%" * 40, bytes(range(1, 200))):
        agent.write(b"\x00" + P.message(P.MsgType.PING, 77, data=payload))
        got = b""
        dec = P.StreamDecoder()
        frames = []
        while not frames:
            chunk = agent.read(4096, 5)
            assert chunk, "no PING reply"
            got += chunk
            frames = dec.feed(chunk)
        assert b"m-" not in got
        assert frames[0].type == P.reply_type(P.MsgType.PING) and bytes(frames[0].payload) == payload


def test_commands_and_frames_interleaved_at_random(agent):
    """30 random steps alternating EEMBC lines and framed requests (PINGs full of '%' and text) on one line."""
    rng = np.random.default_rng(7)
    dut, s = EembcHost(agent, timeout=10), DeviceSession(agent, timeout=5)
    s.hello()
    x = rng.integers(-128, 128, 16, dtype=np.int8)
    want = fixture_model_reference(x)
    dut.load(x.tobytes())
    expect = dut.infer(2, 0).results_text
    for step in range(30):
        op = rng.integers(0, 4)
        if op == 0:
            alphabet = np.frombuffer(b"name% infer 1 0%\r\n\x01\x00\xff", np.uint8)
            payload = rng.choice(alphabet, rng.integers(1, 120)).tobytes()
            assert s.ping(payload) == payload, step
        elif op == 1:
            assert dut.results() == expect, step
        elif op == 2:
            s.set_input(0, x.tobytes())
            s.run(1, 0)
            assert np.array_equal(np.frombuffer(s.get_output(0), np.int8), want), step
        else:
            assert dut.infer(1, 1).results_text == expect, step
    assert s.retried == 0


def test_unread_eembc_text_does_not_cost_the_next_frame(agent):
    """A framed host that never reads the m- lines: the device's 0x00 after its text keeps the next reply whole."""
    s = DeviceSession(agent, timeout=5)
    s.hello()
    for cmd in (b"name%", b"profile%", b"bogus%"):
        agent.write(cmd)
        time.sleep(0.1)  # the text is on the line before the request goes out
        assert s.ping(b"after " + cmd) == b"after " + cmd
    assert s.retried == 0


def test_energy_mode_pulses_the_port_hook_instead_of_printing_laps(tmp_path):
    """-DOD_EEMBC_ENERGY=1: infer's two timestamps are port_timestamp_pulse() calls (the host port logs them)."""
    require_tool("cc")
    make("host", HOST_O=str(tmp_path), EXTRA_CFLAGS="-DOD_EEMBC_ENERGY=1")
    x = np.arange(-64, 64, 8, dtype=np.int8)
    cmds = f"db load 16%db {x.tobytes().hex()}%infer 10 1%timestamp%".encode()
    r = subprocess.run([str(tmp_path / "od_agent")], input=cmds, capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert "m-infer-done" in out and "m-lap-us" not in out
    assert r.stderr.decode().count("od-timestamp-pulse") == 3
    results = out.split("m-results-[")[1].split("]")[0].split(",")
    assert len(results) == 4


_F6_HARNESS = r"""
#include <stdio.h>
#include "od_eembc.c"
void port_putc(uint8_t c) { putchar(c); }
uint64_t port_time_now(void) { return 0; }
static const od_model_info_t g_info;
const od_model_info_t *od_model_info(void) { return &g_info; }
int8_t *od_model_input(int i) { return 0; }
int8_t *od_model_output(int i) { return 0; }
od_status_t od_model_invoke(void) { return OD_OK; }
int main(void)
{
    unsigned b;
    g_text_out = 1;
    while (scanf("%x", &b) == 1) {
        float f;
        memcpy(&f, &b, 4);
        put_f6(f);
        putchar('\n');
    }
    return 0;
}
"""


def test_result_formatting_c_and_python_agree_on_every_kind_of_float(tmp_path):
    """put_f6 (C) against expected_results' formatter on 20k float32 bit patterns: ties, subnormals, huge, nan."""
    require_tool("cc")
    from _firmware_support import FW
    from ondevice.profiling.eembc import _f6
    (tmp_path / "h.c").write_text(_F6_HARNESS)
    subprocess.run(["cc", "-O2", "-std=c11", f"-I{FW / 'core'}", f"-I{FW / 'include'}", f"-I{FW / 'ports' / 'host'}",
                    str(tmp_path / "h.c"), "-o", str(tmp_path / "h")], check=True)
    rng = np.random.default_rng(0)
    # 1/128 * 1e6 = 7812.5 exactly: a true tie, rounded away from zero
    special = np.array([0.0, -0.0, 2.0**-21, 2.0**-20, 1 / 128, -1 / 128, 0.1, -4.9e-7, 8.7e12, 9e12, 1e30,
                        np.inf, -np.inf, np.nan, 1e-45, 127 * 0.00390625, -128 * 0.1], np.float32)
    vals = np.concatenate([special, rng.standard_normal(10000).astype(np.float32) * 50,
                           rng.integers(0, 2**32, 10000, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    r = subprocess.run([str(tmp_path / "h")], input="\n".join(f"{b:x}" for b in vals.view(np.uint32)),
                       capture_output=True, text=True, check=True)
    got = r.stdout.splitlines()
    assert got == [_f6(v) for v in vals]
    assert got[:11] == ["0.000000", "0.000000", "0.000000", "0.000001", "0.007813", "-0.007813", "0.100000",
                        "0.000000", f"{int(np.float32(8.7e12))}.000000", "inf", "inf"]


# ---- the real firmware under QEMU -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conv_library(tmp_path_factory):
    """A generated model library: one 3x3 CONV_2D over a 49x40 int8 map (1960 input bytes, 31 db lines)."""
    from mcu_cases import Case
    from ondevice.mcu.library import write_library
    c = Case(seed=11)
    c.conv([1, 49, 40, 1], 4, 3)
    out = tmp_path_factory.mktemp("eembc_lib") / "featconv_mcu_int8"
    write_library(c.build(), out, name="featconv")
    return out


@pytest.mark.qemu
def test_qemu_eembc_infer_matches_run(conv_library):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from ondevice.mcu.firmware import build_firmware
    from ondevice.profiling.transports import open_transport
    elf = build_firmware("qemu-mps2-an386", conv_library)
    x = np.random.default_rng(3).integers(-128, 128, 49 * 40, dtype=np.int8).tobytes()
    t = open_transport(f"qemu://mps2-an386?elf={elf}")
    try:
        dut = EembcHost(t, timeout=120)
        assert dut.name() == "m-name-dut-[ondevice qemu-mps2-an386]"
        assert dut.profile()["model"] == "featconv"
        dut.load(x)
        r = dut.infer(10, 1)
        # -icount shift=0: 1 instruction per virtual ns, so m-lap-us is instructions / 1000
        assert r.elapsed_us > 0 and len(r.results_text) == 49 * 40 * 4
        outs, specs = framed_run(t, [x])
        assert r.results_text == expected_results(outs, specs)
        assert dut.results() == r.results_text
    finally:
        t.close()
