"""Fold ops whose outputs are known at code generation: shape arithmetic and constant data movement.

Converters often compute a reshape target at run time (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE). With static
shapes those values are constants, so the ops disappear and RESHAPE stays a zero-copy alias.
"""
from __future__ import annotations

import numpy as np

from ondevice.mcu.reader import Graph, Op

# Integer arithmetic is folded only on int32/int64 tensors: quantized int8 arithmetic needs its kernel.
_INT_ARITH = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "FLOOR_DIV": np.floor_divide,
              "MAXIMUM": np.maximum, "MINIMUM": np.minimum}
_MOVES = {"PACK", "STRIDED_SLICE", "CONCATENATION", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "GATHER", "SLICE",
          "CAST", "REDUCE_PROD", "SUM"}


def _strided_slice(x: np.ndarray, begin, end, strides, o: dict) -> np.ndarray:
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0):
        raise ValueError("ellipsis/new-axis masks")
    bm, em, sm = int(o.get("beginMask", 0)), int(o.get("endMask", 0)), int(o.get("shrinkAxisMask", 0))
    sl = []
    for d in range(len(begin)):
        if sm >> d & 1:
            sl.append(int(begin[d]))
        else:
            sl.append(slice(None if bm >> d & 1 else int(begin[d]), None if em >> d & 1 else int(end[d]),
                            int(strides[d])))
    return x[tuple(sl)]


def _quant(t) -> tuple | None:
    return None if t.scale is None else (tuple(np.asarray(t.scale).tolist()), tuple(np.asarray(t.zero_point).tolist()))


def _evaluate(g: Graph, op: Op) -> np.ndarray | None:
    """The output value of ``op`` if it is computable now, else None."""
    if len(op.outputs) != 1:
        return None
    out = g.tensors[op.outputs[0]]
    if op.opcode == "SHAPE":
        return np.asarray(g.tensors[op.inputs[0]].shape)
    ins = [g.tensors[i] for i in op.inputs if i >= 0]
    if not ins or not all(t.is_const for t in ins):
        return None
    vals = [t.data for t in ins]
    o = op.options
    if op.opcode in _INT_ARITH:
        if any(t.dtype not in ("int32", "int64") for t in ins + [out]):
            return None
        return _INT_ARITH[op.opcode](vals[0], vals[1])
    if op.opcode not in _MOVES:
        return None
    if op.opcode != "CAST" and _quant(ins[0]) != _quant(out):
        return None  # a requantizing move needs its kernel
    if op.opcode == "PACK":
        return np.stack(vals, axis=int(o.get("axis", 0)))
    if op.opcode == "CONCATENATION":
        return np.concatenate(vals, axis=int(o.get("axis", 0)))
    if op.opcode == "STRIDED_SLICE":
        return _strided_slice(vals[0], *[v.reshape(-1) for v in vals[1:4]], o)
    if op.opcode == "SLICE":
        sl = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s))
                   for b, s in zip(vals[1].reshape(-1), vals[2].reshape(-1)))
        return vals[0][sl]
    if op.opcode == "GATHER":
        return np.take(vals[0], vals[1], axis=int(o.get("axis", 0)))
    if op.opcode in ("REDUCE_PROD", "SUM"):
        if out.dtype not in ("int32", "int64"):
            return None
        fn = np.prod if op.opcode == "REDUCE_PROD" else np.sum
        return fn(vals[0], axis=tuple(int(a) for a in vals[1].reshape(-1)), keepdims=bool(o.get("keepDims")))
    return vals[0]  # RESHAPE, SQUEEZE, EXPAND_DIMS, CAST: the data, reshaped below


def fold_constants(g: Graph) -> list[Op]:
    """Replace every foldable op by constant data on its output, in graph order; return the folded ops."""
    outputs = set(g.outputs)
    keep, folded = [], []
    for op in g.ops:
        val = None
        if not (set(op.outputs) & outputs):
            try:
                val = _evaluate(g, op)
            except (ValueError, IndexError, TypeError):
                val = None
        out = g.tensors[op.outputs[0]] if op.outputs else None
        if val is None or out is None or np.asarray(val).size != out.size:
            keep.append(op)
            continue
        out.data = np.asarray(val).astype(out.dtype).reshape(out.shape)
        folded.append(op)
    g.ops = keep
    _resolve_reshapes(g)
    return folded


def _resolve_reshapes(g: Graph) -> None:
    """A RESHAPE whose target was computed at run time has a placeholder shape in the file (shape_signature -1):
    take the now-constant target, resolving its -1 from the input size."""
    for op in g.ops:
        if op.opcode != "RESHAPE" or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        src, tgt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
        if not tgt.is_const or out.size == src.size:
            continue
        shape = [int(d) for d in np.asarray(tgt.data).reshape(-1)]
        known = int(np.prod([d for d in shape if d != -1]))
        if shape.count(-1) > 1 or known <= 0 or src.size % known:
            continue
        out.shape = tuple(src.size // known if d == -1 else d for d in shape)
