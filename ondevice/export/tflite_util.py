"""Shared TFLite plumbing: one litert conversion per run, and a reader for the flatbuffer (ops, tensors, buffers).

tflite, edgetpu and tflm all start from the same fully-int8 flatbuffer, so it is converted once per run object.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ondevice.errors import ConfigError, ExportError, UnsupportedOpError

_TYPE_NAMES: dict[int, str] = {}
_OP_NAMES: dict[int, str] = {}


def _schema():
    from ai_edge_litert import schema_py_generated as s
    if not _OP_NAMES:
        _OP_NAMES.update({v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")})
        _TYPE_NAMES.update({v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")})
    return s


@dataclass
class TfTensor:
    index: int
    name: str
    shape: list[int]
    dtype: str          # schema name: INT8, INT32, FLOAT32, ...
    constant: bool      # has data in a buffer (weights, biases, shape constants)
    scales: list[float] = field(default_factory=list)
    zero_points: list[int] = field(default_factory=list)
    values: list[int] | None = None  # small integer constants (axes, strides, shapes)


@dataclass
class TfOp:
    index: int
    name: str           # builtin name, e.g. CONV_2D, or the custom code
    inputs: list[int]
    outputs: list[int]
    options: object = None


@dataclass
class TfGraph:
    """The main subgraph of a .tflite: tensors, ops in execution order, graph inputs/outputs."""
    tensors: list[TfTensor]
    ops: list[TfOp]
    inputs: list[int]
    outputs: list[int]

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op.name for op in self.ops))

    def float_tensors(self) -> list[TfTensor]:
        return [t for t in self.tensors if t.dtype in ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")]


def read_graph(data: bytes, name: str = "model") -> TfGraph:
    """Parse a .tflite flatbuffer; a truncated or foreign file raises ConfigError with a hint."""
    s = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ConfigError(f"{name} is not a TFLite flatbuffer (no TFL3 identifier)",
                          "the file is truncated or not a .tflite; re-export it with `ondevice export`")
    try:
        model = s.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # noqa: BLE001 - flatbuffers raises struct/index errors on short buffers
        raise ConfigError(f"{name} is a damaged TFLite flatbuffer ({type(e).__name__}: {e})",
                          "the file is truncated; re-export it with `ondevice export`") from None
    sg = model.subgraphs[0]
    bufs = model.buffers or []
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        b = bufs[t.buffer] if t.buffer is not None and t.buffer < len(bufs) else None
        const = b is not None and ((b.data is not None and len(b.data) > 0) or (b.size or 0) > 0)
        q = t.quantization
        scales = [float(x) for x in (q.scale if q is not None and q.scale is not None else [])]
        zps = [int(x) for x in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
        tname = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = [int(x) for x in (t.shape if t.shape is not None else [])]
        dtype = _TYPE_NAMES.get(t.type, str(t.type))
        values = None
        if const and dtype in ("INT32", "INT64") and b.data is not None and len(b.data) <= 64:
            values = np.frombuffer(bytes(bytearray(b.data)), dtype="<i4" if dtype == "INT32" else "<i8").tolist()
        tensors.append(TfTensor(i, tname, shape, dtype, const, scales, zps, values))
    ops = []
    for k, op in enumerate(sg.operators or []):
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        opname = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if opname == "CUSTOM":
            cc = oc.customCode
            opname = "CUSTOM:" + (cc.decode() if isinstance(cc, bytes) else str(cc))
        ins = [int(x) for x in (op.inputs if op.inputs is not None else [])]
        outs = [int(x) for x in (op.outputs if op.outputs is not None else [])]
        ops.append(TfOp(k, opname, ins, outs, op.builtinOptions))
    return TfGraph(tensors, ops, [int(x) for x in sg.inputs], [int(x) for x in sg.outputs])


def check_full_int8(graph: TfGraph, name: str) -> None:
    """Refuse a graph with any float tensor or non-int8 activation at the boundary; say which ops are to blame."""
    bad = {t.index for t in graph.float_tensors()}
    if bad:
        # ops that compute in float (QUANTIZE/DEQUANTIZE only mark the float island's edges)
        touch = [op for op in graph.ops if bad & set(op.inputs + op.outputs)]
        compute = [op for op in touch if op.name not in ("QUANTIZE", "DEQUANTIZE")] or touch
        where = ", ".join(f"{op.name} (op {op.index})" for op in compute[:8])
        raise UnsupportedOpError(
            f"{name}: {len(bad)} float tensor(s) left in what must be a fully int8 graph; ops running in float: {where}",
            "the quantizer does not annotate these ops: replace them, or add them to ondevice/slim/quantizer.py")
    for idx in graph.inputs + graph.outputs:
        t = graph.tensors[idx]
        if t.dtype not in ("INT8", "INT32"):
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
    from ondevice.runtimes.tflm import capture_fd2
    with contextlib.ExitStack() as stack:
        if c_level:
            log = stack.enter_context(capture_fd2(2))
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
    from ondevice.runtimes.litert import LiteRTModel
    with _quiet(c_level=True):  # "Created TensorFlow Lite XNNPACK delegate" goes to C stderr
        m = LiteRTModel(data, name)
    return m.inputs, m.outputs


def example_int8(run, spec) -> np.ndarray:
    """The run's example input quantized with the artifact's input qparams."""
    return spec.quantize(np.asarray(run.example_input()[0].detach().numpy(), np.float32))


def io_specs(data: bytes, name: str):
    """(inputs, outputs) TensorSpecs as LiteRT sees them, named after the model's signature (else its tensors)."""
    from ondevice.runtimes.litert import LiteRTModel
    with _quiet(c_level=True):
        m = LiteRTModel(data, name)
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
    from ondevice.mcu.reader import read_tflite
    try:
        g = read_tflite(data, name)
    except ExportError as e:
        raise ConfigError(f"{name} cannot be read: {e.message}", e.hint or "check the file is a .tflite") from None
    floats = {t.index for t in g.tensors if t.dtype in ("float32", "float16") and not t.is_const}
    compute = [op for op in g.ops if op.opcode not in _EDGE_OPS and floats & set(op.inputs + op.outputs)]
    if compute:
        where = ", ".join(f"{op.opcode} (op {op.index})" for op in compute[:4])
        raise UnsupportedOpError(
            f"{name} is a float model ({len(compute)} op(s) compute in float: {where}); {target} runs int8 only",
            "convert it with full-integer quantization: TFLiteConverter with optimizations Optimize.DEFAULT, "
            "a representative_dataset and supported_ops TFLITE_BUILTINS_INT8")
