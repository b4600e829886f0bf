"""`ondevice verify` on an mcu artifact: bit-exact with TFLM on the host gcc build and on QEMU over serial."""
from __future__ import annotations

import json

from _export_support import tiny_export
from conftest import require_tool


def test_verify_reports_mcu_bit_exactness_on_host_and_qemu(tmp_path_factory):
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc", "gcc", "espeak-ng"):
        require_tool(tool)
    from ondevice.data.synth import synth
    from ondevice.verify import verify
    base = tmp_path_factory.mktemp("verify-mcu")
    art = tiny_export(str(base), ("mcu",))
    folder = base / "artifacts"
    assert (folder / art["mcu"].name).exists()
    corpus = synth(base / "corpus", size=24, seed=3)
    report = verify(folder, data=corpus)
    host, qemu = report["targets"]["mcu"], report["targets"]["mcu-qemu"]
    assert host["ran"] is True and host["bit_exact_vs_tflm"] is True
    assert host["vectors_compared"] == report["targets"]["mcu"]["n"] > 0
    assert qemu["ran"] is True and qemu["bit_exact_vs_tflm"] is True and qemu["vectors_compared"] > 0
    on_disk = json.loads((folder / "verify_report.json").read_text())
    assert on_disk["targets"]["mcu-qemu"]["bit_exact_vs_tflm"] is True
