"""Host latency of the reference model: ExecuTorch-XNNPACK INT8 vs LiteRT INT8 vs torch eager FP32.

torch and LiteRT run on one thread; ExecuTorch's pybindings use their default XNNPACK threadpool.

usage: python profiling/benchmarks/host_latency.py [--model RUN] [--runs 200] [--warmup 20]
Last line: one JSON object with p50 latencies (ms) and the ratios et_over_litert, et_over_torch_fp32.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def _time(fn, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        ts.append((time.perf_counter_ns() - t0) / 1e6)
    a = np.array(ts)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="slim run folder (default: shipped mitsis)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    from ondevice.export.api import export, load_source
    from ondevice.runtimes.executorch import ExecuTorchModel
    from ondevice.runtimes.litert import LiteRTModel

    run = load_source(args.model)
    with tempfile.TemporaryDirectory() as out:
        arts = export(model=run, targets=["executorch", "tflite"], out=out)
        et = ExecuTorchModel(arts["executorch"].read_bytes(), arts["executorch"].name, bundled=False)
        lit = LiteRTModel(arts["tflite"].read_bytes(), arts["tflite"].name, num_threads=1)
    x = run.example_input()[0].numpy().astype(np.float32)
    xq = lit.inputs[0].quantize(x)
    fp32 = run.float_model().eval()
    xt = torch.from_numpy(x)

    def torch_fp32():
        with torch.no_grad():
            fp32(xt)

    res = {"executorch_xnnpack_int8": _time(lambda: et.run([x]), args.runs, args.warmup),
           "litert_int8": _time(lambda: lit.run([xq]), args.runs, args.warmup),
           "torch_eager_fp32": _time(torch_fp32, args.runs, args.warmup)}
    for k, v in res.items():
        print(f"{k:<26} p50 {v['p50_ms']:.3f} ms  p90 {v['p90_ms']:.3f} ms  p99 {v['p99_ms']:.3f} ms")
    et50, lit50, pt50 = (res[k]["p50_ms"] for k in ("executorch_xnnpack_int8", "litert_int8", "torch_eager_fp32"))
    print(json.dumps({"model": run.name, "et_ms_p50": round(et50, 4), "litert_ms_p50": round(lit50, 4),
                      "torch_fp32_ms_p50": round(pt50, 4), "et_over_litert": round(et50 / lit50, 3),
                      "et_over_torch_fp32": round(et50 / pt50, 3), "threads": {"torch": 1, "litert": 1, "executorch": "pybindings default (not settable from Python)"},
                      "load_avg_1m": round(os.getloadavg()[0], 2), "details": res, "source": "measured"}))


if __name__ == "__main__":
    main()
