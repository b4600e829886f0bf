"""Firmware builds: every port compiles warning-free with the fixture model, a port that forgets a required
setting stops the build with #error, and the libFuzzer harness survives a short run (the 1 M run is a recorded
figure, see firmware/README.md)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from _firmware_support import FW, make
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
