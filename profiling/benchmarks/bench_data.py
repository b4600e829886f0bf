"""Benchmark: synthetic corpus generation and integer-frontend feature extraction on this host.

    python -m ondevice.profiling.benchmarks.bench_data --size 2400 --jobs 2 [--out DIR]

Prints one JSON object; every figure is `measured` on the host CPU (wall clock).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2400)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the corpus here (default: a temp folder)")
    a = ap.parse_args(argv)

    from ondevice.data.dataset import load_split
    from ondevice.data.synth import synth
    from ondevice.features import compute_features_batch

    tmp = None
    out = a.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="bench_data_")
        out = Path(tmp) / "corpus"
    try:
        t0 = time.perf_counter()
        synth(out, size=a.size, seed=a.seed, jobs=a.jobs)
        t_synth = time.perf_counter() - t0
        shutil.rmtree(out / ".cache", ignore_errors=True)
        t0 = time.perf_counter()
        n = sum(len(load_split(out, s)) for s in ("train", "val", "test"))
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in ("train", "val", "test"):
            load_split(out, s)
        t_warm = time.perf_counter() - t0
        wavs = (np.random.default_rng(0).standard_normal((500, 16000)) * 3000).astype(np.int16)
        t0, c0 = time.perf_counter(), time.process_time()
        compute_features_batch(wavs)
        t_feat = (time.perf_counter() - t0) / 500
        c_feat = (time.process_time() - c0) / 500  # CPU time: meaningful on a shared, loaded machine
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    res = {
        "host": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "clips": n,
        "synth_s": round(t_synth, 2), "load_all_splits_cold_s": round(t_cold, 2),
        "load_all_splits_cached_s": round(t_warm, 3), "features_per_clip_ms": round(1000 * t_feat, 2),
        "features_cpu_per_clip_ms": round(1000 * c_feat, 2), "load_average_1min": round(os.getloadavg()[0], 2),
        "source": "measured",
    }
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
