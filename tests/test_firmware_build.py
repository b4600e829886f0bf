"""Firmware builds: every port compiles warning-free with the fixture model, a port that forgets a required
setting stops the build with #error, and the libFuzzer harness survives a short run (the 1 M run is a recorded
figure, see firmware/README.md)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from _firmware_support import FW, fixture_model_reference, make
from conftest import require_tool


@pytest.mark.parametrize("port", ["qemu-mps2-an386", "qemu-mps3-an547", "nucleo-f446re"])
def test_port_builds_warning_free(port, tmp_path):
    require_tool("arm-none-eabi-gcc")
    cmd = ["make", "-C", str(FW), "-j2", f"PORT={port}", f"O={tmp_path}", f"PYTHON={sys.executable}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning:" not in r.stdout + r.stderr
    size = (tmp_path / "size.txt").read_text()
    assert re.search(r"^\.text\s+\d+", size, re.M) and (tmp_path / "firmware.bin").stat().st_size > 1000


def test_missing_port_setting_is_a_compile_error(tmp_path):
    require_tool("cc")
    port = tmp_path / "port_config.h"
    src = (FW / "ports" / "host" / "port_config.h").read_text()
    port.write_text(src.replace("#define OD_PORT_CLOCK_HZ", "#define OD_PORT_CLOCK_HZ_MISSPELLED"))
    r = subprocess.run(["cc", "-fsyntax-only", f"-I{tmp_path}", f"-I{FW / 'core'}", str(FW / "core" / "od_stack.c")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "must define OD_PORT_CLOCK_HZ" in r.stderr


def test_fuzz_harness_short_run(tmp_path):
    """A CI-sized libFuzzer run (ASan + UBSan) over the receiver and the agent, seeded with the protocol vectors."""
    require_tool("clang")
    import json
    make("fuzz", FUZZ_O=str(tmp_path / "fz"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    vec = FW.parent / "profiling" / "protocol_vectors"
    for i, v in enumerate(json.loads((vec / "frames.json").read_text())["vectors"]):
        (corpus / f"raw{i}").write_bytes(b"\x00" + bytes.fromhex(v["frame_hex"]))
        (corpus / f"msg{i}").write_bytes(b"\x01" + bytes([v["type"]]) + bytes.fromhex(v["payload_hex"]))
    r = subprocess.run([str(tmp_path / "fz" / "od_fuzz_proto"), "-max_total_time=15", "-max_len=2048",
                        "-print_final_stats=1", str(corpus)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = int(re.search(r"stat::number_of_executed_units:\s+(\d+)", r.stderr).group(1))
    assert runs > 1000, r.stderr[-500:]


def test_one_cortexm_startup_for_agent_and_bench():
    """One vector table and reset handler (ports/common/cortexm_startup.c), and no board file in the bench runner:
    it builds from the ports' own flags, port_config.h and link.ld, so agent and bench cannot drift."""
    owners = sorted(p.relative_to(FW).as_posix() for p in FW.rglob("*.[ch]")
                    if "build" not in p.parts and re.search(r"section\(\"\.isr_vector\"\)", p.read_text()))
    assert owners == ["ports/common/cortexm_startup.c"], owners
    assert sorted(p.name for p in (FW / "bench").iterdir() if p.is_file()) == ["README.md", "bench_main.c"]
    from ondevice.mcu.qemu_bench import _bench_port
    for machine, board, cpu in (("mps2-an386", "qemu-mps2-an386", "-mcpu=cortex-m4"),
                                ("mps3-an547", "qemu-mps3-an547", "-mcpu=cortex-m55")):
        port_dir, flags = _bench_port(machine)
        assert port_dir == FW / "ports" / board and cpu in flags


def test_qemu_boards_share_one_port_and_every_port_names_existing_sources(tmp_path):
    from ondevice.boards import PORTS, Port, _check
    ports = dict(PORTS.items())
    shared = FW / "ports" / "common" / "qemu_mps.c"
    for name in ("qemu-mps2-an386", "qemu-mps3-an547"):
        assert ports[name].sources == [shared] and not (ports[name].path / "port.c").exists()
    assert ports["nucleo-f446re"].sources == [FW / "ports" / "nucleo-f446re" / "port.c"]
    # A port folder with neither port.c nor PORT_SRCS is refused, naming what is missing.
    bad = tmp_path / "myboard"
    bad.mkdir()
    (bad / "port_config.h").write_text("")
    (bad / "port.mk").write_text("PORT_ARCH := cortexm\n")
    with pytest.raises(ValueError, match="missing port.c"):
        _check("myboard", Port(board="myboard", kind="host", path=bad))
    (bad / "port.mk").write_text("PORT_ARCH := cortexm\nPORT_SRCS := $(FW)/ports/common/nothere.c\n")
    with pytest.raises(ValueError, match="missing nothere.c"):
        _check("myboard", Port(board="myboard", kind="host", path=bad))
    (bad / "port.mk").write_text("PORT_ARCH := cortexm\nPORT_SRCS := $(FW)/ports/common/qemu_mps.c\n")
    _check("myboard", Port(board="myboard", kind="host", path=bad))


def _fixture_library(tmp_path, fault: bool = False):
    """The test-fixture model as a bench library folder; ``fault`` makes its invoke hit an undefined instruction."""
    import shutil
    lib = tmp_path / ("faulty_mcu_int8" if fault else "fixture_mcu_int8")
    lib.mkdir()
    shutil.copy(FW / "include" / "od_model_api.h", lib)
    src = (FW / "core" / "testmodel" / "od_testmodel.c").read_text()
    head = "od_status_t od_model_invoke(void)\n{\n"
    assert head in src
    (lib / "od_testmodel.c").write_text(src.replace(head, head + "    __builtin_trap();\n") if fault else src)
    return lib


@pytest.mark.qemu
@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_bench_runner_on_the_shared_startup_runs_and_reports_a_fault(board, tmp_path):
    """The bench runner boots on the agent's startup: outputs match the fixture model; a fault inside invoke is
    reported at once (OD_BENCH fault, QEMU exits) instead of rebooting the runner until the host times out."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    import numpy as np
    from ondevice.errors import VerifyError
    from ondevice.mcu.qemu_bench import build_bench_elf, run_bench_elf
    x = np.arange(-8, 8, dtype=np.int8) * 7
    spec = [{"shape": [1, 4], "dtype": "int8"}]
    elf = build_bench_elf(_fixture_library(tmp_path), [[x]], tmp_path / "ok.elf", board)
    res = run_bench_elf(elf, board, "opt", spec, timeout_s=120)
    assert res.status == [0] and np.array_equal(res.outputs[0][0].reshape(4), fixture_model_reference(x))
    assert [name for name, _ in res.op_instructions] == ["FULLY_CONNECTED", "ADD"] and res.instructions[0] > 0
    elf = build_bench_elf(_fixture_library(tmp_path, fault=True), [[x]], tmp_path / "fault.elf", board)
    with pytest.raises(VerifyError, match="ended early.*OD_BENCH fault"):
        run_bench_elf(elf, board, "opt", spec, timeout_s=120)
