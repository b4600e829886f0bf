"""Shared TFLite plumbing: one litert conversion per run (or the given .tflite as it is), and the checks every
int8 flatbuffer target makes.

tflite, edgetpu, tflm and mcu all start from the same fully-int8 flatbuffer, so it is converted once per run
object. Parsing is ``ondevice.mcu.reader``'s: one reader and one graph format for exporters, verify and the engine.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ondevice.errors import ExportError, UnsupportedOpError
from ondevice.mcu.reader import Graph, Op, Tensor, read_graph

FLOAT_DTYPES = ("float32", "float16", "float64", "bfloat16")


def op_counts(graph: Graph) -> dict[str, int]:
    """How many times each builtin (or ``CUSTOM:<code>``) occurs, in first-seen order."""
    return dict(Counter(op.opcode for op in graph.ops))


def float_tensors(graph: Graph) -> list[Tensor]:
    return [t for t in graph.tensors if t.dtype in FLOAT_DTYPES]


def const_values(t: Tensor) -> list[int] | None:
    """A small integer constant (axes, strides, shapes) as a flat list; None for activations and big constants."""
    if t.data is None or t.data.dtype.kind not in "iu" or t.data.size > 16:
        return None
    return [int(v) for v in t.data.reshape(-1)]


def fused_activation(op: Op) -> str:
    """The op's fused activation name (``NONE`` when it has none)."""
    return str(op.options.get("fusedActivationFunction", "NONE"))


def check_full_int8(graph: Graph, name: str) -> None:
    """Refuse a graph with any float tensor or non-int8 activation at the boundary; say which ops are to blame."""
    bad = {t.index for t in float_tensors(graph)}
    if bad:
        # ops that compute in float (QUANTIZE/DEQUANTIZE only mark the float island's edges)
        touch = [op for op in graph.ops if bad & set(op.inputs + op.outputs)]
        compute = [op for op in touch if op.opcode not in ("QUANTIZE", "DEQUANTIZE")] or touch
        where = ", ".join(f"{op.opcode} (op {op.index})" for op in compute[:8])
        raise UnsupportedOpError(
            f"{name}: {len(bad)} float tensor(s) left in what must be a fully int8 graph; ops running in float: {where}",
            "the quantizer does not annotate these ops: replace them, or add them to ondevice/slim/quantizer.py")
    for idx in graph.inputs + graph.outputs:
        t = graph.tensors[idx]
        if t.dtype not in ("int8", "int32"):
            raise UnsupportedOpError(f"{name}: graph input/output {t.name} is {t.dtype}, not int8",
                                     "quantize the model's input edge and output in the quantizer")


@contextlib.contextmanager
def _quiet(c_level: bool = False):
    """litert/coremltools print progress on stdout/stderr; keep the CLI output to our own lines.

    ``c_level`` also captures C stderr (TensorFlow/absl banners); the captured text is kept in the
    yielded list so an error can quote it.
    """
    log: list[str] = []
    if os.environ.get("ONDEVICE_DEBUG"):
        yield log
        return
    from ondevice.capture import capture_fd
    with contextlib.ExitStack() as stack:
        if c_level:
            log = stack.enter_context(capture_fd(2))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        yield log


def convert_tflite(run) -> bytes:
    """The run's QAT graph as a fully int8 .tflite (litert-torch, the run's own PT2E quantizer). Cached per run."""
    if hasattr(run, "tflite_bytes"):  # an existing .tflite: used as it is, never re-converted
        return run.tflite_bytes()
    cache = run.__dict__.setdefault("_ondevice_export_cache", {})
    if "tflite" in cache:
        return cache["tflite"]
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    ex = tuple(run.example_input())
    clog: list[str] = []
    try:
        with _quiet(c_level=True) as clog:
            edge = litert_torch.convert(run.qat_module(), ex, quant_config=QuantConfig(pt2e_quantizer=run.quantizer()))
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "model.tflite"
                edge.export(str(p))
                data = p.read_bytes()
    except Exception as e:  # noqa: BLE001 - converter errors come as assorted types; keep the first line
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        errs = [ln for ln in "".join(clog).splitlines() if "error" in ln.lower()]
        if errs:  # the MLIR converter reports the failing op on C stderr
            msg += f" ({errs[-1].strip()[:200]})"
        raise ExportError(f"litert-torch could not convert {run.name}: {msg}",
                          "run `ondevice lint --target tflite` on the model; set ONDEVICE_DEBUG=1 for the log") from e
    cache["tflite"] = data
    return data


def tensor_specs(data: bytes, name: str):
    """(inputs, outputs) TensorSpecs as the LiteRT interpreter sees them."""
    from ondevice.runtimes._guard import guarded_load
    from ondevice.runtimes.litert import LiteRTModel
    with _quiet(c_level=True):  # "Created TensorFlow Lite XNNPACK delegate" goes to C stderr
        m = guarded_load(lambda: LiteRTModel(data, name), name, ".tflite", data, "LiteRT")  # may be a user's file
    return m.inputs, m.outputs


def example_int8(run, spec, k: int = 0) -> np.ndarray:
    """The run's example input ``k`` quantized with the artifact's input qparams."""
    return spec.quantize(np.asarray(run.example_input()[k].detach().numpy(), np.float32).reshape(spec.shape))


def io_specs(data: bytes, name: str):
    """(inputs, outputs) TensorSpecs as LiteRT sees them, named after the model's signature (else its tensors)."""
    from ondevice.runtimes._guard import guarded_load
    from ondevice.runtimes.litert import LiteRTModel
    with _quiet(c_level=True):
        m = guarded_load(lambda: LiteRTModel(data, name), name, ".tflite", data, "LiteRT")  # may be a user's file
        sigs = m.interp._get_full_signature_list() or {}
    sig = next(iter(sigs.values()), {})
    names = {idx: key for part in ("inputs", "outputs") for key, idx in (sig.get(part) or {}).items()}
    for spec, d in list(zip(m.inputs, m._in)) + list(zip(m.outputs, m._out)):
        spec.name = names.get(d["index"], spec.name)
    return m.inputs, m.outputs


def with_model_names(data: bytes, name: str, inputs: list, outputs: list) -> tuple[list, list]:
    """Specs (TensorSpecs or dicts, in graph order) renamed after the model's own signature names, for manifests."""
    ins, outs = io_specs(data, name)

    def renamed(specs, named):
        out = []
        for s, n in zip(specs, named):
            if isinstance(s, dict):
                out.append(dict(s, name=n.name))
            else:
                s.name = n.name
                out.append(s)
        return out
    return renamed(inputs, ins), renamed(outputs, outs)


_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")


def check_int8_source(data: bytes, name: str, target: str) -> None:
    """Refuse, in one line, a .tflite whose ops compute in float: int8 targets need full-integer internals.

    Float graph inputs/outputs are fine when only QUANTIZE / DEQUANTIZE touch them (float I/O at the edges).
    """
    g = read_graph(data, name)
    floats = {t.index for t in g.tensors if t.dtype in FLOAT_DTYPES and not t.is_const}
    compute = [op for op in g.ops if op.opcode not in _EDGE_OPS and floats & set(op.inputs + op.outputs)]
    if compute:
        where = ", ".join(f"{op.opcode} (op {op.index})" for op in compute[:4])
        raise UnsupportedOpError(
            f"{name} is a float model ({len(compute)} op(s) compute in float: {where}); {target} runs int8 only",
            "convert it with full-integer quantization (TFLiteConverter: Optimize.DEFAULT, a representative_dataset, "
            "TFLITE_BUILTINS_INT8); in a slim run, annotate those ops in ondevice/slim/quantizer.py")
