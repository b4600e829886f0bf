"""``ondevice profile`` end to end against the sim:// agent on real host runtimes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ondevice.errors import ConfigError, DeviceError, OndeviceError
from ondevice.profiling.inputs import make_inputs
from ondevice.profiling.profiler import profile

from _profiling_support import reference_outputs, tiny_pte, tiny_tflite

METRIC_KEYS = ("latency_min_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms",
               "latency_mean_ms", "flash_bytes", "energy_per_inference_mj", "avg_power_mw")


@pytest.fixture(scope="module")
def tflite():
    return tiny_tflite()


def _check_profile(r: dict, runs: int):
    assert r["status"] == "ok"
    assert r["runs"] == runs and len(r["timings"]["values"]) == runs
    m = r["metrics"]
    for k in METRIC_KEYS:
        assert k in m, k
        assert set(m[k]) >= {"value", "unit", "source"} and m[k]["source"] in ("measured", "emulated", "modelled")
    lat = [m[f"latency_{k}_ms"]["value"] for k in ("min", "p50", "p90", "p99", "max")]
    assert lat == sorted(lat) and lat[0] > 0
    assert m["latency_min_ms"]["value"] <= m["latency_mean_ms"]["value"] <= m["latency_max_ms"]["value"]
    assert m["latency_p50_ms"]["source"] == "measured"  # host runtime, wall clock
    assert m["energy_per_inference_mj"]["source"] == "modelled"
    # energy = modelled active power x mean latency
    assert m["energy_per_inference_mj"]["value"] == pytest.approx(
        m["avg_power_mw"]["value"] * m["latency_mean_ms"]["value"] / 1e3, rel=1e-3)


@pytest.mark.parametrize("runtime", ["litert", "tflm"])
def test_profile_sim_tflite_outputs_match_host_runtime(tflite, tmp_path, runtime):
    r = profile(tflite, f"sim://{runtime}", runs=25, warmup=2, out=tmp_path)
    _check_profile(r, 25)
    assert r["device"]["runtime"] == runtime and r["device"]["board"] == "host"
    # the device computed the same outputs as the runtime run directly on the same inputs
    ins = make_inputs(r["model_info"]["inputs"], seed=0)
    want = reference_outputs(tflite, runtime, ins)
    got = np.array(r["outputs"][0]["values"], dtype=np.float32).reshape(want[0].shape)
    np.testing.assert_array_equal(got, want[0])
    on_disk = json.loads((tmp_path / "profile.json").read_text())
    assert on_disk["metrics"] == r["metrics"] and on_disk["runs"] == 25
    assert (tmp_path / "report.html").stat().st_size > 1000
    if runtime == "tflm":
        assert r["metrics"]["arena_bytes"]["value"] > 0


def test_profile_sim_executorch(tmp_path):
    pte = tiny_pte()
    r = profile(pte, "sim://executorch", runs=10, warmup=1, out=tmp_path)
    _check_profile(r, 10)
    ins = make_inputs(r["model_info"]["inputs"], seed=0)
    want = reference_outputs(pte, "executorch", ins)
    got = np.array(r["outputs"][0]["values"], dtype=np.float32).reshape(want[0].shape)
    np.testing.assert_allclose(got, want[0], rtol=0, atol=0)
    # per-op times from ExecuTorch's ETDump: real op events, each a non-negative ns figure
    ops = r["op_timings"]["ops"]
    assert r["op_timings"]["unit"] == "ns" and ops
    assert [o["index"] for o in ops] == list(range(len(ops)))
    assert all(o["time"] >= 0 and o["name"] not in ("Method::execute", "DELEGATE_CALL") for o in ops)


def test_runs_beyond_device_max_runs_are_batched(tflite, tmp_path):
    # the agent stores 64 timings at most: 150 runs go as 3 RUN requests, one warm-up phase
    r = profile(tflite, "sim://litert?max_runs=64", runs=150, warmup=1, out=None)
    assert r["runs"] == 150 and len(r["timings"]["values"]) == 150


def test_small_max_payload_device(tflite):
    # a device with 64-byte frames: the model upload takes many chunks, the timings many frames
    r = profile(tflite, "sim://litert?max_payload=64&window=1", runs=30, warmup=0, out=None)
    assert r["status"] == "ok" and r["device"]["max_payload"] == 64 and r["runs"] == 30


def test_wrong_runtime_for_artifact_is_a_device_error(tflite, tmp_path):
    with pytest.raises(DeviceError) as e:
        profile(tflite, "sim://executorch", runs=3, warmup=0, out=tmp_path)
    assert "could not parse or prepare the model" in e.value.message and e.value.hint
    assert json.loads((tmp_path / "profile.json").read_text())["status"] == "failed"


def test_bad_arguments(tflite, tmp_path):
    with pytest.raises(ConfigError):
        profile(tmp_path / "missing.tflite", "sim://litert", out=None)
    with pytest.raises(ConfigError):
        profile(tflite, "sim://nosuchruntime", out=None)
    with pytest.raises(ConfigError):
        profile(tflite, "nonsense", out=None)


def test_frontend_modes_on_the_sim_agent(tflite):
    from ondevice.features.frontend import compute_features, to_model_input
    from ondevice.profiling.inputs import make_audio
    audio = make_audio(seed=3)
    feat = compute_features(audio)
    # frontend only: the device's feature map is the Python frontend's, bit for bit
    r = profile(tflite, "sim://litert", runs=5, warmup=1, out=None, mode="frontend", audio=audio)
    assert r["status"] == "ok" and r["mode"] == "frontend"
    got = np.array(r["outputs"][0]["values"], dtype=np.uint16).reshape(49, 40)
    np.testing.assert_array_equal(got, feat)
    # frontend + model: the timed region covers both; the output is the model's on those features
    r2 = profile(tflite, "sim://litert", runs=5, warmup=1, out=None, mode="frontend+model", audio=audio)
    want = reference_outputs(tflite, "litert", [to_model_input(feat)])
    np.testing.assert_array_equal(np.array(r2["outputs"][0]["values"], np.float32).reshape(want[0].shape), want[0])
    with pytest.raises(ConfigError):
        profile(tflite, "sim://litert", runs=1, out=None, mode="audio")


def test_device_all_profiles_every_sim_runtime_for_the_artifact(tflite, tmp_path):
    r = profile(tflite, "all", runs=5, warmup=0, out=tmp_path)
    urls = [d["device"]["url"] for d in r["devices"]]
    assert "sim://litert" in urls and all(u.startswith(("sim://", "adb://", "ios://")) for u in urls)
    assert r["status"] == "ok" and all(d["status"] == "ok" for d in r["devices"])
    assert (tmp_path / "profile.json").exists() and (tmp_path / "report.html").exists()
    assert (tmp_path / "sim_litert" / "profile.json").exists()


def test_sim_agent_in_its_own_process_reports_peak_ram(tflite):
    r = profile(tflite, "sim://litert?process=1", runs=5, warmup=0, out=None)
    assert r["status"] == "ok"
    # the model's memory (LiteRT's allocations for it), not the agent process's RSS (tens of MB)
    assert 0 < r["metrics"]["peak_ram_bytes"]["value"] < 8 * 1024 * 1024
    assert r["metrics"]["peak_ram_bytes"]["source"] == "measured"
    assert r["metrics"]["peak_ram_bytes"]["basis"].startswith("litert")


def test_cli_profile_and_devices(tflite, tmp_path):
    from typer.testing import CliRunner
    from ondevice.cli import app
    res = CliRunner().invoke(app, ["profile", "--device", "sim://litert", str(tflite), "--runs", "7",
                                   "--warmup", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "profile.json").read_text())["runs"] == 7
    assert "latency_p50_ms" in res.output
    bad = CliRunner().invoke(app, ["profile", "--device", "socket://127.0.0.1:1", str(tflite), "--out",
                                   str(tmp_path / "x")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    res = CliRunner().invoke(app, ["profile", "--device", "sim://litert", str(tflite), "--runs", "3", "--mode",
                                   "frontend", "--out", str(tmp_path / "fe")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "fe" / "profile.json").read_text())["mode"] == "frontend"
    res = CliRunner().invoke(app, ["devices"])
    assert res.exit_code == 0 and "sim://litert" in res.output


def test_cli_timeout_and_retries_reach_the_session(tflite, tmp_path):
    # a device that accepts the connection and never answers: the CLI's --timeout/--retries decide how long we wait
    import socket
    import threading
    import time

    from typer.testing import CliRunner
    from ondevice.cli import app
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()), daemon=True).start()
    port = srv.getsockname()[1]
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["profile", "--device", f"socket://127.0.0.1:{port}", str(tflite), "--timeout",
                                   "0.2", "--retries", "1", "--out", str(tmp_path)])
    waited = time.monotonic() - t0
    srv.close()
    err = res.exception
    assert res.exit_code != 0 and isinstance(err, OndeviceError), res.output
    assert "after 2 attempts (0.2 s each)" in err.message and "--timeout" in err.hint, (err.message, err.hint)
    assert waited < 30  # not the default timeouts with 3 retries on every step
    bad = CliRunner().invoke(app, ["profile", "--device", "sim://litert", str(tflite), "--run-timeout", "0"])
    assert bad.exit_code != 0


def test_phone_battery_log_lines_become_measured_power():
    from ondevice.profiling.power import battery_from_logs
    logs = ["arena 1234 bytes",
            "battery current_ua_mean=-412000.0 voltage_mv_mean=3850.0 power_mw_mean=1586.2 samples=10 seconds=1.0 "
            "charging=false",
            "battery current_ua_mean=-400000.0 voltage_mv_mean=3850.0 power_mw_mean=1540.0 samples=30 seconds=3.0 "
            "charging=false"]
    p = battery_from_logs(logs)
    assert p["source"] == "measured" and p["samples"] == 40
    assert p["avg_mw"] == pytest.approx((1586.2 * 10 + 1540.0 * 30) / 40)
    assert battery_from_logs(logs[:1]) is None
    from ondevice.profiling.power import subtract_baseline
    net = subtract_baseline(p, 500.0)
    assert net["avg_mw"] == pytest.approx(p["avg_mw"] - 500.0) and net["idle_baseline_mw"] == 500.0
    assert "idle baseline" in net["basis"] and subtract_baseline(p, None) is p
    assert battery_from_logs([logs[1].replace("charging=false", "charging=true")]) is None
