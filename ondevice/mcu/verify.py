"""Check a generated MCU library against the TFLM interpreter, bit for bit, on the host."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import VerifyError
from ondevice.mcu.build import HostModel, build_host
from ondevice.mcu.library import SOURCE_TFLITE, read_summary
from ondevice.mcu.reader import read_tflite
from ondevice.mcu.tflm_ref import TflmReference


def _as_vectors(inputs, n_inputs: int) -> list[list[np.ndarray]]:
    if isinstance(inputs, np.ndarray):
        if n_inputs != 1:
            raise VerifyError(f"model has {n_inputs} inputs; pass a list of input lists", "see verify_host docs")
        return [[x] for x in inputs]  # first axis enumerates vectors
    vecs = []
    for v in inputs:
        vecs.append([v] if isinstance(v, np.ndarray) else list(v))
    return vecs


def _quantize(x: np.ndarray, spec: dict) -> np.ndarray:
    if spec["dtype"] == "float32":  # a float input (QUANTIZE inside the graph) takes the values as they are
        return np.asarray(x, np.float32).reshape(spec["shape"])
    if np.issubdtype(np.asarray(x).dtype, np.floating):
        info = np.iinfo(spec["dtype"])
        q = np.round(np.asarray(x, np.float64) / spec["scale"]) + spec["zero_point"]
        return np.clip(q, info.min, info.max).astype(spec["dtype"]).reshape(spec["shape"])
    return np.asarray(x, spec["dtype"]).reshape(spec["shape"])


def _compare(got, want) -> tuple[float, bool]:
    """(largest absolute difference, bit-exact?) over a vector's outputs; float outputs compare bit for bit."""
    d, same = 0, True
    for g, w in zip(got, want):
        w = np.asarray(w).reshape(g.shape)
        same = same and g.dtype == w.dtype and g.tobytes() == w.tobytes()
        diff = np.abs(g.astype(np.float64) - w.astype(np.float64)).max(initial=0)
        d = max(d, int(diff) if np.issubdtype(g.dtype, np.integer) else float(diff))
    return d, same


def verify_host(artifact_dir: str | Path, inputs, variants: Sequence[str] = ("opt", "ref")) -> dict:
    """Run the host gcc build of ``artifact_dir`` and the TFLM interpreter on the same vectors.

    ``inputs``: an array whose first axis enumerates vectors (single-input models), or a list of vectors,
    each an array or a list of arrays (one per model input). Float arrays are quantized with the input's
    scale/zero point; integer arrays are used as they are. Returns ``{"runtime": "mcu-host",
    "bit_exact_vs_tflm": bool, "vectors": n, ...}`` for the verify report.
    """
    lib = Path(artifact_dir)
    summary = read_summary(lib)
    tflite = (lib / SOURCE_TFLITE).read_bytes()
    ref = TflmReference(tflite)
    models = {v: HostModel(build_host(lib, v)) for v in variants}
    specs = summary["inputs"]
    vecs = _as_vectors(inputs, len(specs))
    if not vecs:
        raise VerifyError("no input vectors to compare", "pass at least one input vector")
    mismatched = {v: 0 for v in variants}
    max_diff = {v: 0 for v in variants}
    elements = 0
    for vec in vecs:
        q = [_quantize(x, s) for x, s in zip(vec, specs)]
        want = ref.run(q)
        elements += sum(w.size for w in want)
        for v, m in models.items():
            got = m.run(q)
            d, same = _compare(got, want)
            max_diff[v] = max(max_diff[v], d)
            mismatched[v] += int(not same)
    ok = all(n == 0 for n in mismatched.values())
    return {
        "runtime": "mcu-host",
        "bit_exact_vs_tflm": ok,
        "vectors": len(vecs),
        "elements_compared": elements,
        "mismatched_vectors": mismatched,
        "max_abs_diff_int8": max_diff,
        "kernel_variants": list(variants),
        "arena_bytes": summary["arena_bytes"],
        "weight_bytes": summary["weight_bytes"],
        "tflm_arena_bytes": ref.arena_bytes(),
        "source": "measured",
    }


def verify_qemu(artifact_dir: str | Path, inputs, board: str = "mps2-an386", variant: str = "opt") -> dict:
    """Cross-compile ``artifact_dir`` for an emulated Cortex-M, run it in QEMU and compare with TFLM.

    Same ``inputs`` convention as :func:`verify_host`. Uses the bare-metal runner in
    firmware/bench/ (outputs over UART0, instructions from SysTick under ``-icount shift=0``).
    """
    from ondevice.mcu.qemu_bench import bench_qemu
    lib = Path(artifact_dir)
    summary = read_summary(lib)
    specs = summary["inputs"]
    vecs = [[_quantize(x, s) for x, s in zip(v, specs)] for v in _as_vectors(inputs, len(specs))]
    if not vecs:
        raise VerifyError("no input vectors to compare", "pass at least one input vector")
    ref = TflmReference((lib / SOURCE_TFLITE).read_bytes())
    res = bench_qemu(lib, vecs, board, variant)
    mismatched, max_diff = 0, 0
    for got, v in zip(res.outputs, vecs):
        want = ref.run(v)
        d, same = _compare(got, want)
        max_diff = max(max_diff, d)
        mismatched += int(not same)
    return {
        "runtime": f"mcu-qemu ({board})",
        "bit_exact_vs_tflm": mismatched == 0,
        "vectors": len(vecs),
        "mismatched_vectors": mismatched,
        "max_abs_diff_int8": max_diff,
        "kernel_variant": variant,
        "instructions_per_inference": max(res.instructions),
        "stack_bytes": res.stack_bytes,
        "arena_bytes": summary["arena_bytes"],
        "source": "emulated",
    }


def expose_intermediates(tflite: bytes) -> tuple[bytes, list[tuple[int, str, int]]]:
    """The same model with every op's output also a graph output (so TFLM keeps them).

    Returns the new flatbuffer and, per added output, (op index, opcode, tensor index) in execution order.
    """
    import flatbuffers

    from ondevice.mcu.reader import schema
    m = schema.ModelT.InitFromPackedBuf(tflite, 0)
    sg = m.subgraphs[0]
    g = read_tflite(tflite)
    outs = [int(x) for x in sg.outputs]
    added = []
    for op in g.ops:
        for t in op.outputs:
            if t not in outs and g.tensors[t].dtype == "int8" and g.tensors[t].scale is not None:
                outs.append(t)
                added.append((op.index, op.opcode, t))
    sg.outputs = np.asarray(outs, np.int32)
    b = flatbuffers.Builder(len(tflite) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), added


def localise_mismatch(tflite: bytes, vector: Sequence[np.ndarray], variant: str = "opt",
                      work_dir: str | Path | None = None) -> dict | None:
    """Find the first op whose int8 output differs from TFLM for one input vector (None if all agree).

    Builds a debug library in which every intermediate tensor is a graph output, so neither side reuses it.
    """
    import tempfile

    from ondevice.mcu.library import write_library
    data, added = expose_intermediates(tflite)
    n_real = len(read_tflite(tflite).outputs)
    with tempfile.TemporaryDirectory(dir=work_dir) as d:
        lib = Path(d) / "debug_mcu_int8"
        write_library(data, lib, name="debug")
        got = HostModel(build_host(lib, variant)).run(list(vector))
    want = TflmReference(data).run(list(vector))
    for (op_index, opcode, t), g_, w_ in zip(added, got[n_real:], want[n_real:]):
        diff = int(np.abs(g_.astype(np.int32) - w_.astype(np.int32).reshape(g_.shape)).max())
        if diff:
            return {"op_index": op_index, "opcode": opcode, "tensor": t, "max_abs_diff_int8": diff,
                    "elements_differing": int((g_ != w_.reshape(g_.shape)).sum())}
    return None
