"""The generated C checked bit for bit against the TFLM interpreter: one comparison, three runners.

:func:`compare_with_tflm` quantizes the inputs with the library's input specs, runs them through the TFLM
interpreter on the library's ``source.tflite`` (the reference) and through each runner, and counts the vectors
whose outputs differ by even one bit. A runner takes every quantized vector and returns every vector's outputs:

- :func:`verify_host`: the host gcc build (``ondevice.mcu.build``), optimised and reference kernels;
- :func:`verify_qemu`: the bare-metal bench runner on an emulated Cortex-M (``ondevice.mcu.qemu_bench``);
- :func:`verify_on_device`: the firmware on a board (QEMU or a real one) over its serial line (PROTOCOL.md).

:func:`mcu_entries` writes the ``mcu`` and ``mcu-qemu`` entries of the verify report with them;
:func:`localise_mismatch` finds the first op that differs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ondevice.errors import ConfigError, OndeviceError, VerifyError
from ondevice.mcu.build import HostModel, build_host
from ondevice.mcu.library import SOURCE_TFLITE, read_summary
from ondevice.mcu.reader import read_tflite
from ondevice.runtimes.tflm import TFLMModel

# The MCU reference interpreter's arena: roomy, so that any model an MCU library holds fits.
REF_ARENA = 4 << 20
QEMU_VECTORS = 32  # each vector boots nothing new, but two kernel variants run under TCG: keep verify quick

#: quantized vectors (one list of arrays per vector) -> each vector's outputs
Runner = Callable[[list[list[np.ndarray]]], Sequence[Sequence[np.ndarray]]]


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


@dataclass
class Comparison:
    """What :func:`compare_with_tflm` found: per runner, the vectors that differ and the largest difference."""
    summary: dict
    reference: TFLMModel
    vectors: int
    elements_compared: int
    mismatched_vectors: dict = field(default_factory=dict)
    max_abs_diff_int8: dict = field(default_factory=dict)

    @property
    def bit_exact(self) -> bool:
        return all(n == 0 for n in self.mismatched_vectors.values())

    def fields(self, variants) -> dict:
        """The verify-report keys every MCU check shares."""
        return {"bit_exact_vs_tflm": self.bit_exact, "vectors": self.vectors,
                "elements_compared": self.elements_compared, "mismatched_vectors": self.mismatched_vectors,
                "max_abs_diff_int8": self.max_abs_diff_int8, "kernel_variants": list(variants)}


def quantized_vectors(lib: Path, inputs) -> tuple[dict, list[list[np.ndarray]]]:
    """The library's summary and ``inputs`` quantized with its input specs (see :func:`verify_host`)."""
    summary = read_summary(lib)
    specs = summary["inputs"]
    vecs = [[_quantize(x, s) for x, s in zip(v, specs)] for v in _as_vectors(inputs, len(specs))]
    if not vecs:
        raise VerifyError("no input vectors to compare", "pass at least one input vector")
    return summary, vecs


def compare_with_tflm(artifact_dir: str | Path, inputs, runners: dict[str, Runner]) -> Comparison:
    """Run ``inputs`` through the TFLM interpreter on the library's ``source.tflite`` and through each runner
    (name -> runner), and compare every output bit for bit."""
    lib = Path(artifact_dir)
    summary, vecs = quantized_vectors(lib, inputs)
    ref = TFLMModel((lib / SOURCE_TFLITE).read_bytes(), SOURCE_TFLITE, arena_size=REF_ARENA)
    wants = [ref.run(q) for q in vecs]
    res = Comparison(summary, ref, len(vecs), sum(w.size for ws in wants for w in ws))
    for name, run in runners.items():
        bad, worst = 0, 0
        for got, want in zip(run(vecs), wants):
            d, same = _compare(got, want)
            worst = max(worst, d)
            bad += int(not same)
        res.mismatched_vectors[name], res.max_abs_diff_int8[name] = bad, worst
    return res


# ------------------------------------------------------------------------------------------------ runners
def _host_runner(model: HostModel) -> Runner:
    return lambda vecs: [model.run(q) for q in vecs]


def verify_host(artifact_dir: str | Path, inputs, variants: Sequence[str] = ("opt", "ref")) -> dict:
    """Run the host gcc build of ``artifact_dir`` and the TFLM interpreter on the same vectors.

    ``inputs``: an array whose first axis enumerates vectors (single-input models), or a list of vectors,
    each an array or a list of arrays (one per model input). Float arrays are quantized with the input's
    scale/zero point; integer arrays are used as they are. Returns ``{"runtime": "mcu-host",
    "bit_exact_vs_tflm": bool, "vectors": n, ...}`` for the verify report.
    """
    lib = Path(artifact_dir)
    runners = {v: _host_runner(HostModel(build_host(lib, v))) for v in variants}
    c = compare_with_tflm(lib, inputs, runners)
    return {
        "runtime": "mcu-host",
        **c.fields(variants),
        "arena_bytes": c.summary["arena_bytes"],
        "weight_bytes": c.summary["weight_bytes"],
        "tflm_arena_bytes": c.reference.arena_bytes(),
        "source": "measured",
    }


def verify_qemu(artifact_dir: str | Path, inputs, board: str = "mps2-an386", variant: str = "opt") -> dict:
    """Cross-compile ``artifact_dir`` for an emulated Cortex-M, run it in QEMU and compare with TFLM.

    Same ``inputs`` convention as :func:`verify_host`. Uses the bare-metal runner in
    firmware/bench/ (outputs over UART0, instructions from SysTick under ``-icount shift=0``).
    """
    from ondevice.mcu.qemu_bench import bench_qemu
    lib = Path(artifact_dir)
    bench: dict = {}

    def run(vecs):
        bench["res"] = bench_qemu(lib, vecs, board, variant)
        return bench["res"].outputs
    c = compare_with_tflm(lib, inputs, {variant: run})
    res = bench["res"]
    return {
        "runtime": f"mcu-qemu ({board})",
        "bit_exact_vs_tflm": c.bit_exact,
        "vectors": c.vectors,
        "mismatched_vectors": c.mismatched_vectors[variant],
        "max_abs_diff_int8": c.max_abs_diff_int8[variant],
        "kernel_variant": variant,
        "instructions_per_inference": max(res.instructions),
        "stack_bytes": res.stack_bytes,
        "arena_bytes": c.summary["arena_bytes"],
        "source": "emulated",
    }


def _device_runner(link: Callable[[], tuple[str, Path | None]], model: str, times: dict, variant: str) -> Runner:
    """Every vector through the PROTOCOL.md session of the board ``link()`` names as (URL, firmware image or None;
    called when it runs: QEMU firmware is built then); its median timing goes into ``times``."""
    from ondevice.profiling.session import DeviceSession
    from ondevice.profiling.transports import open_transport

    def run(vecs):
        url, firmware = link()
        t = open_transport(url, firmware=firmware)
        outs, ts, unit = [], [], None
        try:
            s = DeviceSession(t, timeout=10)
            s.hello()
            s.select_builtin(name=model)
            mi = s.model_info()
            specs = mi["tensors"][mi["n_inputs"]:]
            for q in vecs:
                for i, x in enumerate(q):
                    s.set_input(i, np.ascontiguousarray(x).tobytes())
                unit, tv = s.run(1, 0)
                ts += tv
                # bytes compared as they are: float32 outputs (DEQUANTIZE inside) must match bit for bit too
                outs.append([np.frombuffer(s.get_output(k), spec["dtype"]) for k, spec in enumerate(specs)])
        finally:
            t.close()
        times[variant], times["unit"] = int(np.median(ts)), unit
        return outs
    return run


def verify_on_device(artifact: str | Path, inputs, board: str = "qemu-mps2-an386",
                     variants: tuple[str, ...] = ("opt", "ref"), device: str | None = None) -> dict:
    """The ``mcu-qemu`` verify entry: the firmware runs ``artifact`` on the board and answers over its serial line;
    every output is compared bit for bit with the TFLM interpreter on the artifact's ``source.tflite``.

    ``inputs`` as for :func:`verify_host`. QEMU boards build and boot firmware per kernel variant; for a real
    board pass ``device`` (e.g. ``serial:///dev/ttyACM0``) of a board already flashed with it (then only the
    variant it was built with is checked). Returns the verify report entry.
    """
    from ondevice.boards import get_port
    from ondevice.mcu.firmware import build_firmware
    lib = Path(artifact)
    port = get_port(board)
    if device is None and not port.is_qemu:
        raise ConfigError(f"{board} is real hardware: pass the serial URL of a board flashed with {lib.name}",
                          "e.g. device='serial:///dev/ttyACM0' after `ondevice flash --board ...`")
    if device is not None:
        variants = ("as-flashed",)
    model = read_summary(lib)["model"]
    times: dict = {}

    def link(variant: str) -> tuple[str, Path | None]:
        if device is not None:
            return device, None
        return f"qemu://{port.qemu_machine}", build_firmware(board, lib, variant=variant)
    c = compare_with_tflm(lib, inputs, {v: _device_runner(lambda v=v: link(v), model, times, v) for v in variants})
    unit = times.pop("unit", None)
    return {
        "runtime": "mcu-qemu" if device is None else "mcu-device",
        "board": board,
        "link": "serial (PROTOCOL.md frames over the board's UART)",
        **c.fields(variants),
        "per_inference_median": times,
        "timer_unit": unit,
        "source": "emulated" if device is None else "measured",
    }


# ------------------------------------------------------------------------------------------ verify entries
def mcu_entries(targets: dict, lib: Path, x: tuple, problems: dict) -> None:
    """The generated C checked bit for bit against the TFLM interpreter: host gcc build (``mcu``, every test
    vector, reference and optimised kernels) and the firmware on QEMU mps2-an386 over its serial line
    (``mcu-qemu``, the first QEMU_VECTORS vectors)."""
    import shutil

    from ondevice.verify.inputs import vectors
    host = targets.setdefault("mcu", {"target": "mcu", "artifact": lib.name})
    try:
        res = verify_host(lib, vectors(x))
        host.update(bit_exact_vs_tflm=bool(res["bit_exact_vs_tflm"]), vectors_compared=int(res["vectors"]),
                    bit_exact_detail=res)
    except OndeviceError as e:
        problems[f"{lib.name} (host build)"] = str(e)
        host.update(bit_exact_vs_tflm=False, vectors_compared=0)
    entry: dict = {"target": "mcu-qemu", "artifact": lib.name, "board": "qemu-mps2-an386"}
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        entry["ran"] = "not run: needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)"
    else:
        try:
            res = verify_on_device(lib, vectors(x, QEMU_VECTORS))
            entry.update(ran=True, bit_exact_vs_tflm=bool(res["bit_exact_vs_tflm"]),
                         vectors_compared=int(res["vectors"]), detail=res)
        except OndeviceError as e:
            problems[f"{lib.name} (qemu)"] = str(e)
            entry.update(ran=f"failed: {e.message}", bit_exact_vs_tflm=False, vectors_compared=0)
    targets["mcu-qemu"] = entry
    for key in ("mcu", "mcu-qemu"):
        e = targets[key]
        if e.get("bit_exact_vs_tflm") is False and e.get("vectors_compared"):
            problems[f"{lib.name} ({key})"] = "outputs are not bit-exact with the TFLM interpreter"


# ----------------------------------------------------------------------------------------- localisation
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
    want = TFLMModel(data, "debug.tflite", arena_size=REF_ARENA).run(list(vector))
    for (op_index, opcode, t), g_, w_ in zip(added, got[n_real:], want[n_real:]):
        diff = int(np.abs(g_.astype(np.int32) - w_.astype(np.int32).reshape(g_.shape)).max())
        if diff:
            return {"op_index": op_index, "opcode": opcode, "tensor": t, "max_abs_diff_int8": diff,
                    "elements_differing": int((g_ != w_.reshape(g_.shape)).sum())}
    return None
