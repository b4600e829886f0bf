"""Benchmark: the ondevice MCU engine against TFLM, for kws-dscnn and mitsis, in one run.

    python -m ondevice.profiling.benchmarks.mcu_vs_tflm [--vectors 2] [--tflm-runtime-bytes 63488]

For each recipe: export the int8 tflite to generated C, then
- RAM:   our arena + stack high-water (QEMU mps2-an386, stack painting) / the TFLM interpreter's arena
         (tflite-micro Python interpreter, RecordingMicroAllocator total) for the same tflite;
- flash: our .text+.rodata+.data (arm-none-eabi-gcc -O2 Cortex-M4 link, gc-sections) / (tflite bytes + a stated
         TFLM runtime size: 62 KB, the TFLM reference-kernel build measured on mps2-an386 in PROBE_NOTES.md);
- speed: instructions per inference on QEMU mps2-an386 (Cortex-M4) under -icount shift=0, reference and
         optimised kernels; instructions per MAC = instructions / model MACs;
- parity: the QEMU outputs are compared with the TFLM interpreter on the same vectors (bit-exact or not).
All speed and RAM figures are `emulated`; the TFLM arena is `measured` on the host. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

RECIPES = {"kws-dscnn": "kws_dscnn", "mitsis": "mitsis"}
TFLM_RUNTIME_BYTES = 62 * 1024  # PROBE_NOTES.md: TFLM code with reference kernels on mps2-an386
MITSIS_GOAL = 17_600_000


def _tflite_for(recipe: str, artifacts: Path) -> bytes:
    """The exported int8 tflite if present, else convert the shipped run (litert-torch)."""
    p = artifacts / f"{recipe}_tflite_int8.tflite"
    if p.is_file():
        return p.read_bytes()
    from ondevice.export.tflite_util import convert_tflite
    from ondevice.slim.checkpoint import load_run
    return convert_tflite(load_run(Path(__file__).resolve().parents[2] / "models" / RECIPES[recipe]))


def _vectors(spec: dict, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, spec["shape"]).astype(np.int8) for _ in range(n)]


def bench_recipe(recipe: str, data: bytes, n_vectors: int, tflm_runtime_bytes: int, work: Path) -> dict:
    from ondevice.mcu.build import measure_flash
    from ondevice.mcu.library import write_library
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.mcu.tflm_ref import TflmReference

    lib = work / f"{recipe}_mcu_int8"
    summary = write_library(data, lib, name=recipe)
    vecs = _vectors(summary["inputs"][0], n_vectors, seed=0)
    ref = TflmReference(data)
    want = [ref.run([v]) for v in vecs]
    tflm_arena = ref.arena_bytes()
    flash = measure_flash(lib)
    out = {"macs": summary["macs"], "tflite_bytes": len(data), "arena_bytes": summary["arena_bytes"],
           "weight_bytes": summary["weight_bytes"], "flash_bytes": flash["flash_bytes"],
           "flash_text_bytes": flash["text"], "tflm_arena_bytes": tflm_arena}
    for variant in ("ref", "opt"):
        r = bench_qemu(lib, vecs, "mps2-an386", variant)
        exact = all(np.array_equal(g[0], w[0].reshape(g[0].shape)) for g, w in zip(r.outputs, want))
        out[f"instructions_{variant}"] = max(r.instructions)
        out[f"instr_per_mac_{variant}"] = max(r.instructions) / summary["macs"]
        out[f"stack_bytes_{variant}"] = r.stack_bytes
        out[f"bit_exact_vs_tflm_{variant}"] = exact
        out[f"per_op_{variant}"] = _per_op(r.op_instructions)
    peak = summary["arena_bytes"] + max(out["stack_bytes_ref"], out["stack_bytes_opt"])
    out["peak_ram_bytes"] = peak
    out["ram_ratio"] = peak / tflm_arena
    out["flash_ratio"] = flash["flash_bytes"] / (len(data) + tflm_runtime_bytes)
    return out


def _per_op(ops: list[tuple[str, int]]) -> dict:
    agg: dict[str, int] = {}
    for name, n in ops:
        agg[name] = agg.get(name, 0) + n
    return agg


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=2, help="input vectors per model (random int8, seed 0)")
    ap.add_argument("--tflm-runtime-bytes", type=int, default=TFLM_RUNTIME_BYTES)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    a = ap.parse_args(argv)
    from ondevice import log

    res = {}
    with tempfile.TemporaryDirectory(prefix="mcu_vs_tflm_") as d:
        for recipe in RECIPES:
            data = _tflite_for(recipe, a.artifacts)
            r = bench_recipe(recipe, data, a.vectors, a.tflm_runtime_bytes, Path(d))
            res[recipe] = r
            log.out.print(
                f"{recipe}: MACs {r['macs']:,}  RAM {r['peak_ram_bytes']:,} B (arena {r['arena_bytes']:,} + stack "
                f"{max(r['stack_bytes_ref'], r['stack_bytes_opt'])}) vs TFLM arena {r['tflm_arena_bytes']:,} B "
                f"-> {r['ram_ratio']:.2f}; flash {r['flash_bytes']:,} B vs tflite {r['tflite_bytes']:,} + TFLM "
                f"{a.tflm_runtime_bytes:,} B -> {r['flash_ratio']:.2f}; M4 instructions ref {r['instructions_ref']:,} "
                f"({r['instr_per_mac_ref']:.2f}/MAC), opt {r['instructions_opt']:,} ({r['instr_per_mac_opt']:.2f}/MAC); "
                f"bit-exact vs TFLM: ref {r['bit_exact_vs_tflm_ref']}, opt {r['bit_exact_vs_tflm_opt']} [emulated]", soft_wrap=True)
    kws = res["kws-dscnn"]
    summary = {
        "ram_ratio": round(max(r["ram_ratio"] for r in res.values()), 3),
        "flash_ratio": round(max(r["flash_ratio"] for r in res.values()), 3),
        "instr_per_mac_ref": round(kws["instr_per_mac_ref"], 3),
        "instr_per_mac_opt": round(kws["instr_per_mac_opt"], 3),
        "mitsis_instructions": res["mitsis"]["instructions_opt"],
        "mitsis_goal_instructions": MITSIS_GOAL,
        "per_model": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("per_op")} for k, v in res.items()},
        "unit": "instructions (QEMU mps2-an386 Cortex-M4, -icount shift=0), bytes",
        "source": "emulated (speed, stack), measured (TFLM arena on host, flash from the ELF)",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
