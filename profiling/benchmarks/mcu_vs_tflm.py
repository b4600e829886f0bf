"""Benchmark: the ondevice MCU engine against TFLM (+ CMSIS-NN figures), over every model shape of the tests.

    python -m profiling.benchmarks.mcu_vs_tflm [--vectors 2] [--with-ref] [--models kws-dscnn,resnet8,...]

Models: the shipped recipes (kws-dscnn, mitsis: the exported int8 tflite from --artifacts, else converted from
`models/`), two .tflite files converted with TensorFlow at run time (profiling/benchmarks/tf_models.py: the
MLPerf Tiny ResNet-8 and DS-CNN shapes, int8 I/O), and the graphs the tests generate (tests/mcu_cases.py: the
49x40 feature conv of test_qemu, the PAD/depthwise/1x1/FC in-place chain of test_kernels). For each model:
- speed: instructions per inference on QEMU mps2-an386 (Cortex-M4) and mps3-an547 (Cortex-M55) under
         -icount shift=0 (optimised kernels; reference kernels on M4 with --with-ref); per MAC = / model MACs;
         against TFLM + CMSIS-NN where that peer was measured on the same shape (PROBE_NOTES.md / issue 15:
         2.39 instructions/MAC on the ResNet-8 shape, 2.91 on the DS-CNN shape; the peer is not rebuilt here);
- RAM:   our arena + stack high-water (QEMU, stack painting) / the TFLM interpreter's arena (tflite-micro Python
         interpreter, RecordingMicroAllocator total) for the same tflite;
- flash: our .text+.rodata+.data (arm-none-eabi-gcc -O2 Cortex-M4 link, gc-sections) / (tflite bytes + 62 KB of
         TFLM runtime, the reference-kernel build measured on mps2-an386 in PROBE_NOTES.md);
- parity: every QEMU output is compared with the TFLM interpreter on the same vectors.
Speed and stack are `emulated`, the TFLM arena and flash `measured`. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"kws-dscnn": "kws_dscnn", "mitsis": "mitsis"}
TFLM_RUNTIME_BYTES = 62 * 1024  # PROBE_NOTES.md: TFLM code with reference kernels on mps2-an386
# TFLM + CMSIS-NN instructions per MAC on mps2-an386, measured on these shapes (PROBE_NOTES.md, issue 15).
PEER_CMSIS_NN = {"resnet8": 2.39, "dscnn": 2.91}
MODELS = ["kws-dscnn", "mitsis", "resnet8", "dscnn", "featconv", "inplace-chain"]
BOARDS = {"m4": "mps2-an386", "m55": "mps3-an547"}


def _recipe_tflite(recipe: str, artifacts: Path) -> bytes:
    """The exported int8 tflite if present, else convert the shipped run (litert-torch)."""
    p = artifacts / f"{recipe}_tflite_int8.tflite"
    if p.is_file():
        return p.read_bytes()
    from ondevice.export.tflite_util import convert_tflite
    from ondevice.slim.checkpoint import load_run
    return convert_tflite(load_run(ROOT / "models" / RECIPES[recipe]))


def _test_graph(name: str) -> bytes:
    """The graphs tests/test_qemu.py (featconv) and tests/test_kernels.py (in-place chain) generate."""
    sys.path.insert(0, str(ROOT / "tests"))
    from mcu_cases import Case
    if name == "featconv":
        c = Case(seed=11)
        c.conv([1, 49, 40, 1], 4, 3)
        return c.build()
    c = Case(seed=sum(map(ord, "inplace_and_pad_fusion")))
    c.chain([1, 9, 7, 12])
    c.chain([1, 6, 5, 8], pad=(1, 1))
    c.chain([1, 7, 6, 8], lead_relu=True)
    return c.build()


def model_tflite(name: str, artifacts: Path, cache: Path) -> bytes:
    if name in RECIPES:
        return _recipe_tflite(name, artifacts)
    if name in ("resnet8", "dscnn"):
        from profiling.benchmarks.tf_models import tf_model
        return tf_model(name, cache)
    return _test_graph(name)


def bench_model(name: str, data: bytes, n_vectors: int, with_ref: bool, tflm_runtime_bytes: int, work: Path) -> dict:
    from ondevice.mcu.build import measure_flash
    from ondevice.mcu.library import write_library
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel

    lib = work / f"{name}_mcu_int8"
    summary = write_library(data, lib, name=name.replace("-", "_"))
    rng = np.random.default_rng(0)
    vecs = [[rng.integers(-128, 128, s["shape"]).astype(np.int8) for s in summary["inputs"]]
            for _ in range(n_vectors)]
    ref = TFLMModel(data)
    want = [ref.run(v) for v in vecs]
    flash = measure_flash(lib)
    out = {"macs": summary["macs"], "tflite_bytes": len(data), "arena_bytes": summary["arena_bytes"],
           "weight_bytes": summary["weight_bytes"], "flash_bytes": flash["flash_bytes"],
           "tflm_arena_bytes": ref.arena_bytes(), "peer_cmsis_nn_instr_per_mac": PEER_CMSIS_NN.get(name)}
    runs = [("m4", "opt"), ("m55", "opt")] + ([("m4", "ref")] if with_ref else [])
    stack = 0
    for cpu, variant in runs:
        r = bench_qemu(lib, vecs, BOARDS[cpu], variant)
        key = f"{cpu}_{variant}"
        out[f"instr_per_mac_{key}"] = max(r.instructions) / summary["macs"]
        out[f"instructions_{key}"] = max(r.instructions)
        out[f"bit_exact_vs_tflm_{key}"] = all(
            np.array_equal(g, w.reshape(g.shape)) for got, exp in zip(r.outputs, want) for g, w in zip(got, exp))
        out[f"per_op_{key}"] = _per_op(r.op_instructions)
        if cpu == "m4":
            stack = max(stack, r.stack_bytes)
    out["stack_bytes"] = stack
    out["peak_ram_bytes"] = summary["arena_bytes"] + stack
    out["ram_ratio"] = out["peak_ram_bytes"] / out["tflm_arena_bytes"]
    # No engine that returns the graph's outputs (or takes its inputs) can need less RAM than its largest one.
    io_bytes = [int(np.prod(s["shape"])) * np.dtype(s.get("dtype", "int8")).itemsize
                for s in summary["inputs"] + summary["outputs"]]
    out["ram_floor_ratio"] = max(io_bytes) / out["tflm_arena_bytes"]
    out["flash_ratio"] = flash["flash_bytes"] / (len(data) + tflm_runtime_bytes)
    peer = out["peer_cmsis_nn_instr_per_mac"]
    out["instr_ratio_vs_cmsis_nn"] = out["instr_per_mac_m4_opt"] / peer if peer else None
    return out


def _per_op(ops: list[tuple[str, int]]) -> dict:
    agg: dict[str, int] = {}
    for name, n in ops:
        agg[name] = agg.get(name, 0) + n
    return agg


def _line(name: str, r: dict) -> str:
    peer = f" vs CMSIS-NN {r['peer_cmsis_nn_instr_per_mac']} -> {r['instr_ratio_vs_cmsis_nn']:.2f}x" \
        if r["peer_cmsis_nn_instr_per_mac"] else ""
    ref = f", M4 ref {r['instr_per_mac_m4_ref']:.2f}" if "instr_per_mac_m4_ref" in r else ""
    exact = all(v for k, v in r.items() if k.startswith("bit_exact"))
    return (f"{name}: MACs {r['macs']:,}; instr/MAC M4 {r['instr_per_mac_m4_opt']:.2f} ({r['instructions_m4_opt']:,}),"
            f" M55 {r['instr_per_mac_m55_opt']:.2f}{ref}{peer}; RAM {r['peak_ram_bytes']:,} B (arena "
            f"{r['arena_bytes']:,} + stack {r['stack_bytes']}) / TFLM arena {r['tflm_arena_bytes']:,} B -> "
            f"{r['ram_ratio']:.2f} (floor: largest graph input/output {r['ram_floor_ratio']:.2f}); flash {r['flash_bytes']:,} B / ({r['tflite_bytes']:,} + TFLM runtime) -> "
            f"{r['flash_ratio']:.2f}; bit-exact vs TFLM {exact} [emulated]")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=2, help="input vectors per model (random int8, seed 0)")
    ap.add_argument("--with-ref", action="store_true", help="also time the reference kernels on M4")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--tflm-runtime-bytes", type=int, default=TFLM_RUNTIME_BYTES)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    a = ap.parse_args(argv)
    unknown = sorted(set(a.models.split(",")) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {','.join(MODELS)}")
    from ondevice import log
    from ondevice.cache import cache_dir
    cache = cache_dir("bench_tflite")
    res = {}
    with tempfile.TemporaryDirectory(prefix="mcu_vs_tflm_") as d:
        for name in a.models.split(","):
            data = model_tflite(name, a.artifacts, cache)
            res[name] = bench_model(name, data, a.vectors, a.with_ref, a.tflm_runtime_bytes, Path(d))
            log.out.print(_line(name, res[name]), soft_wrap=True)
    summary = {
        "ram_ratio": round(max(r["ram_ratio"] for r in res.values()), 3),
        "flash_ratio": round(max(r["flash_ratio"] for r in res.values()), 3),
        "ram_ratio_per_model": {k: round(r["ram_ratio"], 3) for k, r in res.items()},
        "ram_floor_ratio_per_model": {k: round(r["ram_floor_ratio"], 3) for k, r in res.items()},
        "bit_exact_vs_tflm": all(v for r in res.values() for k, v in r.items() if k.startswith("bit_exact")),
        "instr_per_mac_m4": {k: round(r["instr_per_mac_m4_opt"], 3) for k, r in res.items()},
        "instr_per_mac_m55": {k: round(r["instr_per_mac_m55_opt"], 3) for k, r in res.items()},
        "instr_ratio_vs_cmsis_nn": {k: round(r["instr_ratio_vs_cmsis_nn"], 3) for k, r in res.items()
                                    if r["instr_ratio_vs_cmsis_nn"]},
        "per_model": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("per_op")} for k, v in res.items()},
        "unit": "instructions (QEMU -icount shift=0: mps2-an386 Cortex-M4, mps3-an547 Cortex-M55), bytes",
        "source": "emulated (speed, stack), measured (TFLM arena on host, flash from the ELF)",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
