"""Fault injection: the full profile path through fault:// around sim://.

Every case must end in either a correct result (timings equal to what the agent measured, outputs equal to the
host runtime's) or a clear OndeviceError within a bounded time; never a hang or a wrong figure.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ondevice.errors import DeviceResetError, OndeviceError
from ondevice.profiling.inputs import make_inputs
from ondevice.profiling.profiler import profile
from ondevice.profiling.transports import open_transport

from _profiling_support import reference_outputs, tiny_tflite

KINDS = {
    "drop": "drop=0.08",
    "corrupt": "corrupt=0.08",
    "dup": "dup=0.15",
    "garbage": "garbage=0.1",
    "stall": "stall=0.1&stall_s=0.2",
    "long_stall": "stall=0.05&stall_s=0.8",
    "rx_drop_heavy": "drop=0.25&dir=rx",
    "tx_corrupt_heavy": "corrupt=0.25&dir=tx",
    "mixed": "drop=0.03&corrupt=0.03&dup=0.03&garbage=0.03&stall=0.03&stall_s=0.2",
}
SEEDS = (1, 2, 3)
RUNS = 40
BOUND_S = 60  # a hang guard, far above the worst retry chain (retries x timeouts), not a speed assertion
TALLY = {"tried": 0, "ok": 0, "clear_error": 0}


@pytest.fixture(scope="module")
def tflite():
    return tiny_tflite()


def _run_case(tflite, query: str, tmp_path, **kw):
    t = open_transport(f"fault://sim://litert?window=4&{query}")
    t0 = time.monotonic()
    try:
        r = profile(tflite, t, runs=RUNS, warmup=1, out=tmp_path, timeout=0.3, retries=4, run_timeout=2.0, **kw)
        err = None
    except OndeviceError as e:
        r, err = None, e
    finally:
        t.close()
    return t, r, err, time.monotonic() - t0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fault_case(tflite, tmp_path, kind, seed):
    t, r, err, elapsed = _run_case(tflite, f"{KINDS[kind]}&seed={seed}", tmp_path)
    TALLY["tried"] += 1
    assert elapsed < BOUND_S
    if err is not None:
        TALLY["clear_error"] += 1
        assert err.hint, f"{type(err).__name__} without a hint: {err}"
        saved = json.loads((tmp_path / "profile.json").read_text())
        assert saved["status"] == "failed" and saved["error"]["message"] == err.message
        return
    TALLY["ok"] += 1
    agent = t.inner.agent
    assert r["status"] == "ok" and r["runs"] == RUNS
    # no wrong figure: exactly the timings the device measured, in order, none duplicated or lost
    assert r["timings"]["values"] == agent.timings
    want = reference_outputs(tflite, "litert", make_inputs(r["model_info"]["inputs"], seed=0))
    np.testing.assert_array_equal(np.array(r["outputs"][0]["values"], np.float32).reshape(want[0].shape), want[0])
    assert r["metrics"]["latency_p50_ms"]["value"] == pytest.approx(np.percentile(agent.timings, 50) / 1e3)
    if KINDS[kind].startswith(("drop", "corrupt")):
        assert sum(t.counts[k] for k in ("drop", "corrupt")) > 0  # faults really happened


@pytest.fixture(scope="module")
def setup_frames(tflite):
    """Host frames before the first RUN (HELLO, upload, info, inputs), counted on a clean run."""
    t = open_transport("fault://sim://litert?max_runs=10")
    try:
        r = profile(tflite, t, runs=RUNS, warmup=0, out=None)
        total = t.counts["frames_tx"]
    finally:
        t.close()
    # minus the RUN batches, GET_OUTPUT, GET_MEMORY and, when the agent announces per-op timings, GET_OP_TIMINGS
    asked_ops = "op_timings" in r or "op_timings_error" in r
    return total - RUNS // 10 - 2 - int(asked_ops)


@pytest.mark.parametrize("where,kept", [("upload", 0), ("first_run", 0), ("third_run", 20)])
def test_device_reset_is_one_clear_error_and_finished_runs_are_kept(tflite, tmp_path, setup_frames, where, kept):
    reset_after = {"upload": 3, "first_run": setup_frames + 1, "third_run": setup_frames + 3}[where]
    t = open_transport(f"fault://sim://litert?max_runs=10&reset_after={reset_after}")
    TALLY["tried"] += 1
    with pytest.raises(DeviceResetError) as e:
        profile(tflite, t, runs=RUNS, warmup=0, out=tmp_path, timeout=0.5, retries=2)
    t.close()
    TALLY["clear_error"] += 1
    assert "reset" in e.value.message and e.value.hint
    saved = json.loads((tmp_path / "profile.json").read_text())
    assert saved["status"] == "failed" and saved["error"]["type"] == "DeviceResetError"
    assert saved["runs"] == kept and len(saved["timings"]["values"]) == kept
    if kept:
        assert saved["metrics"]["latency_p50_ms"]["value"] > 0
    assert (tmp_path / "report.html").exists()


def test_dead_link_is_a_timeout_not_a_hang(tflite, tmp_path):
    TALLY["tried"] += 1
    t0 = time.monotonic()
    with pytest.raises(OndeviceError) as e:
        profile(tflite, "fault://sim://litert?drop=1.0&dir=rx", runs=5, out=tmp_path, timeout=0.2, retries=2)
    TALLY["clear_error"] += 1
    assert time.monotonic() - t0 < BOUND_S
    assert "no reply" in e.value.message and e.value.hint


def test_zz_report_fault_case_count(capsys):
    # defined last, so it runs last in this module: print the tally to the terminal (not captured) for the CI log
    with capsys.disabled():
        print(f"\nfault-injection cases tried: {TALLY['tried']} ({TALLY['ok']} correct results, "
              f"{TALLY['clear_error']} clear errors)")
    assert TALLY["tried"] >= len(KINDS) * len(SEEDS)
