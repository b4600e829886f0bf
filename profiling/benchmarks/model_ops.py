"""Benchmark: where one model's instructions go, op by op, on QEMU (the per-op breakdown behind mcu_vs_tflm).

    python -m profiling.benchmarks.model_ops kws-dscnn [--board mps2-an386] [--variant opt]

The model is any name mcu_vs_tflm knows (kws-dscnn, mitsis, resnet8, dscnn, featconv, inplace-chain). One random
int8 vector (seed 0); every op's instructions come from the bench runner's per-op counters (`-icount shift=0`,
emulated). Prints one line per op (index, name, MACs, instructions, per MAC, share) and a JSON line last.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def model_ops(name: str, board: str = "mps2-an386", variant: str = "opt", artifacts: Path = Path("artifacts")) -> dict:
    from ondevice.cache import cache_dir
    from ondevice.mcu.library import write_library
    from ondevice.mcu.qemu_bench import bench_qemu
    from profiling.benchmarks.mcu_vs_tflm import model_tflite

    data = model_tflite(name, artifacts, cache_dir("bench_tflite"))
    with tempfile.TemporaryDirectory(prefix="model_ops_") as d:
        lib = Path(d) / "lib"
        s = write_library(data, lib, name=name.replace("-", "_"))
        rng = np.random.default_rng(0)
        vec = [[rng.integers(-128, 128, x["shape"]).astype(np.int8) for x in s["inputs"]]]
        r = bench_qemu(lib, vec, board, variant)
    ops = [{"index": i, "op": n, "macs": m, "instructions": k}
           for i, ((n, k), m) in enumerate(zip(r.op_instructions, s["op_macs"]))]
    return {"model": name, "board": board, "variant": variant, "macs": s["macs"],
            "instructions": max(r.instructions), "ops": ops, "source": "emulated"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from profiling.benchmarks.mcu_vs_tflm import MODELS
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--variant", default="opt", choices=["opt", "ref"])
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    a = ap.parse_args(argv)
    from ondevice import log
    res = model_ops(a.model, a.board, a.variant, a.artifacts)
    total = res["instructions"]
    log.out.print(f"{a.model} on {a.board} ({a.variant}): {total:,} instructions, "
                  f"{total / res['macs']:.3f} per MAC [emulated]", soft_wrap=True)
    for o in res["ops"]:
        per = f"{o['instructions'] / o['macs']:.2f}/MAC" if o["macs"] else "-"
        log.out.print(f"{o['index']:3d} {o['op']:<24} {o['macs']:>10,} MACs {o['instructions']:>11,} instr "
                      f"{per:>10} {100 * o['instructions'] / total:5.1f} %", soft_wrap=True)
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
