"""What a lowering writes with: the Emitter (graph, memory plan, const tables), its result ``Lowered``, the
``Unsupported`` refusal, and the C and shape helpers every lowering shares."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ondevice.mcu.planner import MemoryPlan
from ondevice.mcu.reader import Graph, Op, Tensor

_C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "uint8": "uint8_t"}


@dataclass
class Lowered:
    """What one op becomes: a C expression returning od_status_t, const definitions, MACs, scratch bytes."""
    call: str
    consts: list[str] = field(default_factory=list)
    macs: int = 0


class Unsupported(Exception):
    """Raised inside a lowering; collected into one UnsupportedOpError for the whole graph."""


def c_array(name: str, ctype: str, values, per_line: int = 24, align: int = 4) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] OD_ALIGNED({align}) = {{\n    {body}\n}};"


def c_struct(ctype: str, name: str, fields: dict) -> str:
    def fmt(v):
        if isinstance(v, (list, tuple)):
            return "{" + ", ".join(str(int(x)) for x in v) + "}"
        return str(int(v))
    body = ", ".join(f".{k} = {fmt(v)}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{body}}};"


def ext5(shape) -> list[int]:
    shape = list(shape)
    if len(shape) > 5:
        raise Unsupported(f"rank {len(shape)} > 5")
    return [1] * (5 - len(shape)) + shape


def row_strides(shape) -> list[int]:
    st, acc = [], 1
    for d in reversed(list(shape)):
        st.append(acc)
        acc *= d
    return list(reversed(st))


def same_padding(in_size: int, k: int, stride: int, dil: int, out_size: int, padding: str) -> int:
    if padding != "SAME":
        return 0
    eff = (k - 1) * dil + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def broadcast_strides(shape, out5) -> list[int]:
    s5 = ext5(shape)
    st = row_strides(s5)
    res = []
    for d in range(5):
        if s5[d] == out5[d]:
            res.append(st[d])
        elif s5[d] == 1:
            res.append(0)
        else:
            raise Unsupported(f"shapes {shape} and {out5} do not broadcast")
    return res


class Emitter:
    """Holds the graph, the memory plan and the const tables while ops are lowered."""

    def __init__(self, g: Graph, plan: MemoryPlan):
        self.g = g
        self.plan = plan
        self.weight_bytes = 0
        self._const_names: dict[int, str] = {}
        self.consts: list[str] = []

    def t(self, idx: int) -> Tensor:
        return self.g.tensors[idx]

    def act(self, idx: int) -> str:
        """C expression for an activation tensor's bytes in the arena."""
        t = self.t(idx)
        if t.is_const:
            return self.const(idx)
        return f"OD_ARENA({self.plan.offset(idx)})"

    def const(self, idx: int, values: np.ndarray | None = None, ctype: str | None = None) -> str:
        """Emit a tensor's constant data once; returns its C name."""
        if idx in self._const_names and values is None:
            return self._const_names[idx]
        t = self.t(idx)
        data = t.data if values is None else values
        if data is None:
            raise Unsupported(f"tensor {t.name!r} must be constant")
        ct = ctype or _C_TYPES.get(str(data.dtype))
        if ct is None:
            raise Unsupported(f"constant {t.name!r} has dtype {data.dtype}")
        name = f"od_w{idx}"
        self.consts.append(c_array(name, ct, data, align=16))
        self.weight_bytes += int(np.asarray(data).nbytes)
        self._const_names[idx] = name
        return name

    def reordered_const(self, name: str, values: np.ndarray) -> str:
        """int8 weights in a kernel-specific layout (one copy per op that reads it)."""
        self.consts.append(c_array(name, "int8_t", values, align=16))
        self.weight_bytes += int(np.asarray(values).nbytes)
        return name

    def table(self, name: str, ctype: str, values) -> str:
        self.consts.append(c_array(name, ctype, values))
        self.weight_bytes += len(np.asarray(values).reshape(-1)) * 4
        return name

    def struct(self, ctype: str, name: str, fields: dict) -> str:
        self.consts.append(c_struct(ctype, name, fields))
        self.weight_bytes += 4 * sum(len(v) if isinstance(v, (list, tuple)) else 1 for v in fields.values())
        return name

    def require_int8(self, op: Op, *idxs: int) -> None:
        for i in idxs:
            t = self.t(i)
            if t.dtype == "int16":
                raise Unsupported(f"tensor {t.name!r} is int16: int16 activations are not supported (int8 only)")
            if t.dtype != "int8":
                raise Unsupported(f"tensor {t.name!r} is {t.dtype}; the MCU kernels are int8")
            if t.scale is None:
                raise Unsupported(f"tensor {t.name!r} has no quantization parameters")

