"""Write small int8 .tflite graphs directly with the LiteRT flatbuffer schema (object API).

Used to make kernel test fixtures at test time: one op, any shapes and quantization parameters, in
milliseconds, so each kernel is checked against the TFLM interpreter over many parameter sets.
"""
from __future__ import annotations

import flatbuffers
import numpy as np

from ondevice.mcu.reader import schema

_TYPES = {"int8": schema.TensorType.INT8, "int32": schema.TensorType.INT32, "uint8": schema.TensorType.UINT8,
          "int16": schema.TensorType.INT16, "float32": schema.TensorType.FLOAT32,
          "int64": schema.TensorType.INT64}


class TfliteBuilder:
    """Accumulate tensors and ops, then ``build()`` the .tflite bytes."""

    def __init__(self) -> None:
        empty = schema.BufferT()
        self.buffers = [empty]
        self.tensors: list = []
        self.ops: list = []
        self.opcodes: dict[int, int] = {}
        self.opcode_list: list = []

    def tensor(self, shape, dtype: str = "int8", scale=None, zero_point=None, data=None, qdim: int = 0,
               name: str | None = None) -> int:
        t = schema.TensorT()
        t.shape = np.asarray(shape, np.int32)
        t.type = _TYPES[dtype]
        t.name = name or f"t{len(self.tensors)}"
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = np.atleast_1d(np.asarray(scale, np.float32))
            zp = np.zeros(len(q.scale), np.int64) if zero_point is None else np.atleast_1d(zero_point)
            q.zeroPoint = np.asarray(zp, np.int64)
            q.quantizedDimension = qdim
            t.quantization = q
        if data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(np.asarray(data, dtype)).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, opname: str, inputs, outputs, options=None, options_type: str | None = None) -> None:
        code = getattr(schema.BuiltinOperator, opname)
        if code not in self.opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.opcodes[code] = len(self.opcode_list)
            self.opcode_list.append(oc)
        o = schema.OperatorT()
        o.opcodeIndex = self.opcodes[code]
        o.inputs = np.asarray(inputs, np.int32)
        o.outputs = np.asarray(outputs, np.int32)
        if options is not None:
            o.builtinOptionsType = getattr(schema.BuiltinOptions, options_type or type(options).__name__[:-1])
            o.builtinOptions = options
        self.ops.append(o)

    def build(self, inputs, outputs) -> bytes:
        sg = schema.SubGraphT()
        sg.tensors = self.tensors
        sg.operators = self.ops
        sg.inputs = np.asarray(inputs, np.int32)
        sg.outputs = np.asarray(outputs, np.int32)
        sg.name = "main"
        m = schema.ModelT()
        m.version = 3
        m.operatorCodes = self.opcode_list
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.description = "ondevice test fixture"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def options(kind: str, **fields):
    """``options("Conv2DOptions", padding=..., strideW=1)`` -> the schema options object."""
    o = getattr(schema, kind + "T")()
    for k, v in fields.items():
        if not hasattr(o, k):
            raise AttributeError(f"{kind} has no field {k}")
        setattr(o, k, v)
    return o
