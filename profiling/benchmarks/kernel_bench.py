"""Kernel microbenchmark: instructions per MAC (or per element) of each MCU kernel, across shapes, on QEMU.

    python -m profiling.benchmarks.kernel_bench [--boards mps2-an386,mps3-an547] [--variant opt]

One int8 graph holds every case as an independent op (own input and output), built with the same single-op
builder as the kernel tests (tests/mcu_cases.py), so one QEMU boot per board measures them all: the bench runner
times each op (SysTick under -icount shift=0, calibrated to instructions). Before timing, the QEMU outputs are
compared with the tflite-micro interpreter on the same graph (bit-exact or the run fails). Cases: CONV_2D 3x3
(3-256 channels, stride 1/2), 1x1 (8-256), 5x5, DEPTHWISE 3x3/5x5 (8-256 channels, stride 1/2, multiplier 1),
FULLY_CONNECTED, ADD, MUL, SOFTMAX. All figures are `emulated`. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# (kind, label, builder args). Spatial sizes keep each op around 0.1-1 M MACs.
CASES = [
    ("conv", "conv 3x3 s1 c3->16 32x32", dict(in_shape=[1, 32, 32, 3], out_c=16, k=3)),
    ("conv", "conv 3x3 s2 c3->16 32x32", dict(in_shape=[1, 32, 32, 3], out_c=16, k=3, stride=2)),
    ("conv", "conv 3x3 s1 c8->16 16x16", dict(in_shape=[1, 16, 16, 8], out_c=16, k=3)),
    ("conv", "conv 3x3 s1 c16->16 16x16", dict(in_shape=[1, 16, 16, 16], out_c=16, k=3)),
    ("conv", "conv 3x3 s2 c16->32 16x16", dict(in_shape=[1, 16, 16, 16], out_c=32, k=3, stride=2)),
    ("conv", "conv 3x3 s1 c32->32 8x8", dict(in_shape=[1, 8, 8, 32], out_c=32, k=3)),
    ("conv", "conv 3x3 s1 c64->64 4x4", dict(in_shape=[1, 4, 4, 64], out_c=64, k=3)),
    ("conv", "conv 5x5 s1 c8->16 12x12", dict(in_shape=[1, 12, 12, 8], out_c=16, k=5)),
    ("conv", "conv 1x1 c8->16 16x16", dict(in_shape=[1, 16, 16, 8], out_c=16, k=1)),
    ("conv", "conv 1x1 c16->32 12x12", dict(in_shape=[1, 12, 12, 16], out_c=32, k=1)),
    ("conv", "conv 1x1 c64->64 25x5", dict(in_shape=[1, 25, 5, 64], out_c=64, k=1)),
    ("conv", "conv 1x1 c128->128 4x4", dict(in_shape=[1, 4, 4, 128], out_c=128, k=1)),
    ("conv", "conv 1x1 c256->256 2x2", dict(in_shape=[1, 2, 2, 256], out_c=256, k=1)),
    ("conv", "conv 1x1 s2 c32->64 8x8", dict(in_shape=[1, 8, 8, 32], out_c=64, k=1, stride=2)),
    ("dw", "dw 3x3 s1 c8 16x16", dict(in_shape=[1, 16, 16, 8], out_c=0, k=3, depthwise=True)),
    ("dw", "dw 3x3 s1 c64 25x5", dict(in_shape=[1, 25, 5, 64], out_c=0, k=3, depthwise=True)),
    ("dw", "dw 3x3 s2 c32 16x16", dict(in_shape=[1, 16, 16, 32], out_c=0, k=3, stride=2, depthwise=True)),
    ("dw", "dw 3x3 s1 c128 8x8", dict(in_shape=[1, 8, 8, 128], out_c=0, k=3, depthwise=True)),
    ("dw", "dw 3x3 s1 c256 4x4", dict(in_shape=[1, 4, 4, 256], out_c=0, k=3, depthwise=True)),
    ("dw", "dw 5x5 s1 c32 8x8", dict(in_shape=[1, 8, 8, 32], out_c=0, k=5, depthwise=True)),
    ("dw", "dw 3x3 s1 c3 dm8 16x16", dict(in_shape=[1, 16, 16, 3], out_c=0, k=3, depthwise=True, dm=8)),
    ("fc", "fc 64->12", dict(batches=1, in_d=64, out_d=12)),
    ("fc", "fc 256->128", dict(batches=1, in_d=256, out_d=128)),
    ("fc", "fc 3x120->32 per-channel", dict(batches=3, in_d=120, out_d=32, per_channel=True)),
    ("add", "add 16x16x16", dict(shape=[1, 16, 16, 16])),
    ("add", "add 8x8x64", dict(shape=[1, 8, 8, 64])),
    ("mul", "mul 16x16x16", dict(shape=[1, 16, 16, 16])),
    ("softmax", "softmax 25x25", dict(shape=[1, 25, 25], in_scale=0.1)),
    ("softmax", "softmax 4x64", dict(shape=[4, 64], in_scale=0.05)),
]


def build_graph(seed: int = 11) -> bytes:
    """Every case as an independent op of one int8 graph (the kernel tests' builder)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from mcu_cases import ACT, Case
    c = Case(seed=seed)
    for kind, _, kw in CASES:
        if kind in ("conv", "dw"):
            c.conv(act=ACT.RELU, **kw)
        elif kind == "fc":
            c.fc(**kw)
        elif kind == "softmax":
            c.softmax(**kw)
        else:
            c.binary(kind.upper(), kw["shape"], kw["shape"])
    return c.build()


def _units(kind: str, macs: int, kw: dict) -> tuple[int, str]:
    if kind in ("add", "mul", "softmax"):
        return int(np.prod(kw["shape"])), "element"
    return macs, "MAC"


def run(boards: list[str], variant: str, work: Path) -> dict:
    from ondevice.mcu.library import write_library
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    data = build_graph()
    lib = work / "kernels_mcu_int8"
    summary = write_library(data, lib, name="kernel_bench")
    rng = np.random.default_rng(0)
    vec = [rng.integers(-128, 128, s["shape"]).astype(np.int8) for s in summary["inputs"]]
    want = TFLMModel(data).run(vec)
    rows = [{"case": label, "op": kind, "units": _units(kind, m, kw)[0], "unit": _units(kind, m, kw)[1]}
            for (kind, label, kw), m in zip(CASES, summary["op_macs"])]
    exact = {}
    for board in boards:
        r = bench_qemu(lib, [vec], board, variant)
        exact[board] = all(np.array_equal(g, w.reshape(g.shape)) for g, w in zip(r.outputs[0], want))
        if len(r.op_instructions) != len(rows):
            raise RuntimeError(f"{board}: {len(r.op_instructions)} op timings for {len(rows)} cases")
        for row, (_, n) in zip(rows, r.op_instructions):
            row[board] = round(n / row["units"], 3)
    return {"rows": rows, "bit_exact_vs_tflm": exact, "variant": variant}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="mps2-an386,mps3-an547")
    ap.add_argument("--variant", default="opt", choices=["opt", "ref"])
    a = ap.parse_args(argv)
    boards = a.boards.split(",")
    with tempfile.TemporaryDirectory(prefix="kernel_bench_") as d:
        res = run(boards, a.variant, Path(d))
    print(f"{'case':32s} {'unit':8s} " + " ".join(f"{b:>11s}" for b in boards))
    for row in res["rows"]:
        print(f"{row['case']:32s} {row['unit']:8s} " + " ".join(f"{row[b]:11.2f}" for b in boards))
    print(f"bit-exact vs TFLM: {res['bit_exact_vs_tflm']} [emulated, instructions per unit, {a.variant} kernels]")
    out = {"variant": a.variant, "bit_exact_vs_tflm": res["bit_exact_vs_tflm"],
           "instructions_per_unit": {r["case"]: {b: r[b] for b in boards} for r in res["rows"]},
           "unit": "instructions per MAC (per element for add, mul, softmax), QEMU -icount shift=0", "source": "emulated"}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
