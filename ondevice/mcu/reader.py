"""Read a .tflite into a small graph IR, through the maintained LiteRT flatbuffer schema (object API).

No hand-written parser: ``ai_edge_litert.schema_py_generated`` is the schema TFLite itself generates.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ondevice.errors import ConfigError, ExportError

try:  # the schema ships with ai-edge-litert (the runtime we already depend on)
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover - the stand-alone `tflite` package has the same generated schema
    import tflite as schema  # type: ignore

_TENSOR_TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NP_DTYPES = {"FLOAT32": "float32", "INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32",
              "INT64": "int64", "BOOL": "bool", "FLOAT16": "float16"}
_OPCODES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATIONS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
_PADDINGS = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}


@dataclass
class Tensor:
    """One tensor: static shape, dtype, quantization, and constant data (None for activations)."""
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray | None = None        # float32 [1] or [channels]
    zero_point: np.ndarray | None = None   # int64, same length as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def qparams(self) -> tuple[float, int]:
        """Per-tensor (scale, zero_point) as TFLite stores them (float32 scale)."""
        if self.scale is None or len(self.scale) == 0:
            raise ExportError(f"tensor {self.name!r} has no quantization parameters",
                              "export a fully int8 tflite (ondevice export --target tflite)")
        return float(self.scale[0]), int(self.zero_point[0]) if self.zero_point is not None else 0


@dataclass
class Op:
    """One operator: its builtin name, tensor indices (-1 = optional input absent) and decoded options."""
    index: int
    opcode: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    """The main subgraph of a .tflite, plus the SHA-256 of the file bytes."""
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    sha256: str
    tflite_bytes: int

    def consumers(self, tensor: int) -> list[int]:
        return [op.index for op in self.ops if tensor in op.inputs]

    def links(self) -> tuple[dict[int, Op], dict[int, list[Op]]]:
        """Each tensor's producing op, and the ops reading it (an op reading it twice is listed once)."""
        producer = {o: op for op in self.ops for o in op.outputs}
        readers: dict[int, list[Op]] = {}
        for op in self.ops:
            for i in dict.fromkeys(op.inputs):
                if i >= 0:
                    readers.setdefault(i, []).append(op)
        return producer, readers


def _options(op_t) -> dict:
    opts = op_t.builtinOptions
    if opts is None:
        return {}
    out = {}
    for k, v in vars(opts).items():
        if k.startswith("_"):
            continue
        if k == "fusedActivationFunction":
            v = _ACTIVATIONS.get(v, str(v))
        elif k == "padding":
            v = _PADDINGS.get(v, str(v))
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


def read_tflite(path_or_bytes: str | Path | bytes, name: str | None = None) -> Graph:
    """Parse a .tflite file (or its bytes) into a :class:`Graph` of its first subgraph."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
        name = name or "model"
    else:
        p = Path(path_or_bytes)
        if not p.is_file():
            raise ExportError(f"no tflite file at {p}", "export one first: ondevice export --target tflite")
        data = p.read_bytes()
        name = name or p.stem
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # noqa: BLE001 - any flatbuffer decode failure means a bad file
        raise ExportError(f"cannot parse tflite flatbuffer: {e}", "check the file is a .tflite model") from e
    if not model.subgraphs:
        raise ExportError("tflite model has no subgraph", "re-export the model")
    if len(model.subgraphs) > 1:
        raise ExportError(f"tflite model has {len(model.subgraphs)} subgraphs; the MCU engine runs one",
                          "remove control flow (IF/WHILE) from the model")
    sg = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors):
        ttype = _TENSOR_TYPES.get(t.type, str(t.type))
        dtype = _NP_DTYPES.get(ttype)
        if dtype is None:
            raise ExportError(f"tensor {i} has unsupported type {ttype}", "the MCU engine runs int8 models")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        q = t.quantization
        scale = zp = None
        qdim = 0
        if q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, np.float32)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros(len(scale)), np.int64)
            qdim = int(q.quantizedDimension)
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        arr = None
        if buf is not None:
            raw = None
            if buf.data is not None and len(buf.data):
                raw = np.asarray(buf.data, np.uint8).tobytes()
            elif buf.offset and buf.offset > 1:  # large models keep buffers after the flatbuffer
                raw = data[buf.offset:buf.offset + buf.size]
            if raw is not None:
                arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tname = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, tname, shape, dtype, scale, zp, qdim, arr))
    ops = []
    for j, o in enumerate(sg.operators or []):
        oc = model.operatorCodes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        opname = _OPCODES.get(code, f"BUILTIN_{code}")
        if opname == "CUSTOM":
            cname = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            opname = f"CUSTOM:{cname}"
        ops.append(Op(j, opname, [int(x) for x in o.inputs], [int(x) for x in o.outputs], _options(o)))
    return Graph(name=name, tensors=tensors, ops=ops, inputs=[int(x) for x in sg.inputs],
                 outputs=[int(x) for x in sg.outputs], sha256=hashlib.sha256(data).hexdigest(),
                 tflite_bytes=len(data))


def read_graph(data: bytes, name: str = "model") -> Graph:
    """Parse a .tflite flatbuffer with :func:`read_tflite`; a truncated or foreign file raises ConfigError."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ConfigError(f"{name} is not a TFLite flatbuffer (no TFL3 identifier)",
                          "the file is truncated or not a .tflite; re-export it with `ondevice export`")
    try:
        return read_tflite(data, name)
    except ExportError as e:
        raise ConfigError(f"{name} is a damaged or unsupported TFLite flatbuffer ({e.message})",
                          "the file may be truncated; re-export it with `ondevice export`") from None
