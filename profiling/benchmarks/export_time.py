"""Wall time of `ondevice export --target all` on the shipped reference model, as a user runs it (fresh process).

usage: python profiling/benchmarks/export_time.py [--model RUN] [--targets all]
Last line: one JSON object, e.g. {"export_all_s": 41.2, "per_target_s": {...}, ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="slim run folder (default: shipped mitsis)")
    ap.add_argument("--targets", default="all")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "ondevice", "export", "--target", args.targets, "--out", out]
        if args.model:
            cmd += ["--model", args.model]
        env = dict(os.environ, NO_COLOR="1")
        t0 = time.perf_counter()
        r0 = os.times()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        r1 = os.times()
        cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-3000:])
            raise SystemExit(f"export failed with exit code {p.returncode}")
        # the CLI logs "<target> <path>  (<wall> s, cpu <cpu> s)" per target
        per = {m.group(1): {"wall_s": float(m.group(2)), "cpu_s": float(m.group(3))} for m in
               re.finditer(r"^(\S+)\s+\S+\s+\((\d+\.\d+) s, cpu (\d+\.\d+) s\)$", p.stderr, re.M)}
        sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))
                 if os.path.isfile(os.path.join(out, f)) and not f.endswith(".json")}
    load = os.getloadavg()[0]
    for k, v in per.items():
        print(f"{k:<12} {v['wall_s']:6.1f} s wall  {v['cpu_s']:6.1f} s cpu")
    print(f"export --target {args.targets}: {wall:.1f} s wall, {cpu:.1f} s cpu (fresh process, imports included; "
          f"load avg {load:.1f})")
    print(json.dumps({"export_all_s": round(wall, 2), "export_all_cpu_s": round(cpu, 2), "per_target": per, "artifact_bytes": sizes,
                      "cpu_count": os.cpu_count(), "load_avg_1m": round(load, 2), "source": "measured"}))


if __name__ == "__main__":
    main()
