"""CI's share of the host fuzzing (the 1 M-input run is profiling/benchmarks/fuzz_host_frames.py, in RESULTS.md):
a short coverage-guided atheris run and hypothesis-generated inputs, through the same target. Any exception but
an OndeviceError is a crash."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ondevice import log
from ondevice.profiling import protocol as P
from ondevice.profiling.benchmarks import fuzz_host_frames as F

MODES = {"link": 0, "frame": 5, "structured": 10, "session": 15}


@pytest.fixture(autouse=True)
def _quiet():
    log.console.quiet, was = True, log.console.quiet
    yield
    log.console.quiet = was


def test_atheris_short_run_finds_no_crash(tmp_path):
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("atheris is not installed; pip install -e .[dev] installs it")
        pytest.skip("atheris not installed")
    p = subprocess.run([sys.executable, "-m", "ondevice.profiling.benchmarks.fuzz_host_frames", "--runs", "3000",
                        "--artifacts", str(tmp_path)], capture_output=True, text=True, timeout=900)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0 and res["crashes"] == 0, p.stderr[-3000:]
    assert res["engine"] == "atheris" and res["inputs"] == 3000
    assert not list(tmp_path.glob("crash-*"))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_hypothesis_inputs(mode):
    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=1, max_size=700))
    def run(data):
        F.one_input(bytes([MODES[mode]]) + data)
    run()


@given(st.sampled_from(F.DEVICE_TYPES), st.binary(max_size=P.MAX_PAYLOAD), st.integers(0, 255))
@settings(max_examples=500, deadline=None, derandomize=True)
def test_every_device_frame_type_with_any_payload(type_, payload, flags):
    for f in P.StreamDecoder().feed(P.encode(type_, 1, payload, flags)):
        try:
            F.check(f)
        except P.ProtocolError:  # includes DeviceProtocolError: a clean rejection
            pass


def test_seeded_random_engine_runs_the_vectors():
    assert len(F.seeds()) >= 15  # every device message type of the protocol vectors
    assert F.main(["--engine", "random", "--runs", "2000", "--seed", "7"]) == 0
