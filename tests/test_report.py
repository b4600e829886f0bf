"""report.html in a real browser (headless Debian chromium) and the terminal table."""
from __future__ import annotations

import re
import subprocess

import pytest

from ondevice.cli.profile_view import print_table
from ondevice.profiling.report import write_html, write_html_all
from ondevice.profiling.profiler import profile

from _profiling_support import tiny_tflite

from conftest import require_tool

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    r = profile(tiny_tflite(), "sim://tflm", runs=60, warmup=2, out=tmp_path_factory.mktemp("prof"))
    # per-op timings come from devices with the OP_TIMINGS capability (the MCU agent); add some to draw them
    r["op_timings"] = {"unit": "us", "ops": [{"time": 120, "name": "FULLY_CONNECTED"}, {"time": 7, "name": "RELU"}]}
    r["device"]["ram_bytes"] = 131072
    return r


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    exe = require_tool("chromium")
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", *args], capture_output=True,
                          text=True, timeout=120)


def test_report_renders_in_chromium_with_all_plots(result, tmp_path):
    page = tmp_path / "report.html"
    write_html(result, page)
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for plot in ("latency-histogram", "run-timeline", "op-timings", "memory"):
        assert f'data-plot="{plot}"' in html, plot
    # the histogram has one bar per bin and the bars count every run
    hist = html.split('data-plot="latency-histogram"')[1].split("</svg>")[0]
    counts = [int(c) for c in re.findall(r": (\d+) runs</title>", hist)]
    assert sum(counts) == result["runs"] == 60
    # the timeline has one point per run
    line = re.search(r'<polyline class="line" points="([^"]+)"', html).group(1)
    assert len(line.split()) == 60
    for k in ("latency_p50_ms", "latency_p99_ms", "energy_per_inference_mj"):
        assert k in html
    assert "modelled" in html and "measured" in html


def test_report_screenshot_is_not_blank(result, tmp_path):
    page = tmp_path / "report.html"
    write_html(result, page)
    png = tmp_path / "shot.png"
    r = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,1400", page.as_uri())
    assert r.returncode == 0 and png.exists(), r.stderr[-2000:]
    from PIL import Image
    img = Image.open(png).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100  # text and bars, not an empty page
    # plots are drawn in the bar colour somewhere on the page
    import numpy as np
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    bar = (abs(rgb[..., 0] - 0x4a) < 12) & (abs(rgb[..., 1] - 0x78) < 12) & (abs(rgb[..., 2] - 0xb5) < 12)
    assert bar.sum() > 500


def test_combined_report_for_several_devices(result, tmp_path):
    other = dict(result, device=dict(result["device"], url="sim://litert", name="sim-litert"))
    failed = {"device": {"url": "adb://XYZ"}, "status": "failed", "runs": 0, "metrics": {},
              "error": {"type": "TransportError", "message": "no reply", "hint": "check the cable"}}
    page = tmp_path / "all.html"
    write_html_all({"artifact": "m.tflite", "devices": [result, other, failed]}, page)
    text = page.read_text()
    assert text.count('data-plot="latency-histogram"') == 2
    assert "no reply" in text and "check the cable" in text


def test_terminal_table_lists_every_metric(result, capsys):
    from ondevice import log
    with log.out.capture() as cap:
        print_table(result)
    out = cap.get()
    for k, m in result["metrics"].items():
        assert k in out and m["source"] in out
