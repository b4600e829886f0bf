"""Static memory plan: every activation tensor gets an offset in one arena, no malloc at run time.

Tensors that may share bytes are first merged into buffers (reshape aliasing, elementwise in place);
buffers are then packed greedily by size, largest first, each at the lowest offset that does not
collide with a buffer alive at the same time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ondevice.mcu.attn import MULFC, mul_fc_scratch_bytes
from ondevice.mcu.layouts import (dw_inplace_padded, dw_padded_bytes, im2col_scratch_bytes, uses_dw_padded,
                                  uses_im2col)
from ondevice.mcu.reader import Graph, Op
from ondevice.mcu.rowexec import RESBLOCK, conv_inplace_safe, overlap_delta, resblock_scratch_bytes

ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
#: 256-entry table lookups (lowerings/ops_ext.py)
LUT_OPS = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU")
# Ops whose output element i depends only on input element i: the output may overwrite that input.
INPLACE_OPS = {"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1", *LUT_OPS}
ALIGN = 16


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    """A run of arena bytes used by one or more tensors over [first, last] (op indices, inclusive)."""
    id: int
    size: int
    first: int
    last: int
    tensors: list[int] = field(default_factory=list)
    offset: int = -1
    #: (size, first, last, delta) of each tensor in it, at offset + delta: an in-place output smaller than its
    #: input frees the rest; a conv's dying input may sit inside its output's bytes (overlap_delta)
    segs: list[tuple[int, int, int, int]] = field(default_factory=list)


class MemoryPlan:
    """Union of tensors into buffers, then greedy-by-size placement."""

    def __init__(self) -> None:
        self.buffers: list[Buffer] = []
        self.of_tensor: dict[int, Buffer] = {}
        self.delta: dict = {}  # tensor -> bytes past its buffer's offset
        self.arena_bytes = 0
        self.inplace: set[int] = set()  # op indices whose output overwrites their dying input

    def add(self, tensor: int, size: int, first: int, last: int) -> Buffer:
        b = Buffer(len(self.buffers), size, first, max(first, last), [tensor],
                   segs=[(size, first, max(first, last), 0)])
        self.buffers.append(b)
        self.of_tensor[tensor] = b
        return b

    def merge(self, into: int, tensor: int, size: int, first: int, last: int, shift: int = 0) -> None:
        """Let ``tensor`` reuse the buffer of tensor ``into`` (alias or in-place result); with ``shift``, the
        buffer's tensors move ``shift`` bytes up and ``tensor`` starts at its offset."""
        b = self.of_tensor[into]
        if shift:
            b.segs = [(sz, f, l, d + shift) for sz, f, l, d in b.segs]
            for t in b.tensors:
                self.delta[t] = self.delta.get(t, 0) + shift
        b.first = min(b.first, first)
        b.last = max(b.last, last)
        b.tensors.append(tensor)
        b.segs.append((size, first, max(first, last), 0))
        b.size = max(sz + d for sz, _, _, d in b.segs)
        self.of_tensor[tensor] = b

    def place(self) -> int:
        """Assign offsets; returns the arena size in bytes."""
        placed: list[Buffer] = []
        for b in sorted(self.buffers, key=lambda b: (-b.size, b.first, b.id)):
            # b may not start where any of its segments meets a segment of a placed buffer alive at the same time
            banned = [(p.offset + pd - d - sz, p.offset + pd + psz - d) for p in placed for sz, f, l, d in b.segs
                      for psz, pf, pl, pd in p.segs if pf <= l and f <= pl]
            off = 0
            for cand in sorted({0, *(_align(hi) for _, hi in banned if hi > 0)}):
                if all(not (lo < cand < hi) for lo, hi in banned):
                    off = cand
                    break
            b.offset = off
            placed.append(b)
        self.arena_bytes = _align(max((b.offset + d + sz for b in self.buffers for sz, _, _, d in b.segs),
                                      default=0))
        return self.arena_bytes

    def offset(self, tensor) -> int:
        return self.of_tensor[tensor].offset + self.delta.get(tensor, 0)

    def check(self) -> None:
        """Assert no two live buffers overlap (a cheap self-test run on every export)."""
        bs = self.buffers
        for i, a in enumerate(bs):
            for b in bs[i + 1:]:
                for asz, af, al, ad in a.segs:
                    for bsz, bf, bl, bd in b.segs:
                        lo_a, lo_b = a.offset + ad, b.offset + bd
                        if af <= bl and bf <= al and lo_a < lo_b + bsz and lo_b < lo_a + asz:
                            raise AssertionError(f"memory plan overlap: buffers {a.id} and {b.id}")


def _live(b: Buffer, op_index: int) -> set:
    """The tensors of ``b`` still alive at ``op_index`` (a dead model input sharing it no longer counts)."""
    return {t for t, (_, _, last, _) in zip(b.tensors, b.segs) if last >= op_index}


def _dies_here(plan: MemoryPlan, g: Graph, t: int, op_index: int, outputs: set) -> bool:
    b = plan.of_tensor[t]
    live = _live(b, op_index)
    return b.last == op_index and not (live & outputs) and not (live & set(g.inputs))


def inplace_scratch_bytes(g: Graph, op: Op) -> int:
    """Scratch bytes if ``op`` has an in-place kernel for its shapes (0 if it has none)."""
    if not op.inputs or op.inputs[0] < 0:
        return 0
    ti, to = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if ti.dtype != "int8" or to.dtype != "int8" or ti.is_const:
        return 0
    if op.opcode == "DEPTHWISE_CONV_2D" and len(ti.shape) == 4:
        n, ih, iw, ic = ti.shape
        _, oh, ow, oc = to.shape
        if ic == oc and oh * ow <= ih * iw:
            if dw_inplace_padded(g, op):  # output staging, then the padded rows
                return (4 * oh * ow + 3) // 4 * 4 + dw_padded_bytes(g, op)
            return 4 * n * oh * ow
    if op.opcode == "CONV_2D" and len(ti.shape) == 4:
        f = g.tensors[op.inputs[1]]
        o = op.options
        if (f.shape[1] == 1 and f.shape[2] == 1 and o.get("strideH", 1) == 1 and o.get("strideW", 1) == 1
                and ti.shape[1:3] == to.shape[1:3] and to.shape[3] <= ti.shape[3]):
            if uses_im2col(g, op):
                return im2col_scratch_bytes(g, op)
            return min(2, n * ti.shape[1] * ti.shape[2]) * to.shape[3] if (n := ti.shape[0]) else 0
    if conv_inplace_safe(g, op):  # strided: every output lands at or below the inputs still to be read
        return im2col_scratch_bytes(g, op)
    if op.opcode == "FULLY_CONNECTED":
        f = g.tensors[op.inputs[1]]
        if f.is_const and len(f.shape) == 2 and f.shape[0] <= f.shape[1] and ti.size % f.shape[1] == 0:
            return min(2, ti.size // f.shape[1]) * f.shape[0]
    return 0


def plan_memory(g: Graph, compute_ops: list[Op]) -> MemoryPlan:
    """Lifetimes over the op order, aliasing and in-place merges, then greedy placement."""
    plan = MemoryPlan()
    n = max((op.index for op in g.ops), default=-1) + 1  # op indices survive fusion: outputs live past the last
    last_use: dict[int, int] = {}
    for op in g.ops:
        for i in op.inputs:
            if i >= 0:
                last_use[i] = op.index
    for o in g.outputs:
        last_use[o] = n
    outputs = set(g.outputs)
    for i in g.inputs:
        plan.add(i, g.tensors[i].nbytes, -1, last_use.get(i, -1))
    for op in g.ops:
        outs = [o for o in op.outputs if not g.tensors[o].is_const]
        for o in outs:
            t = g.tensors[o]
            life = (op.index, last_use.get(o, op.index))
            src = op.inputs[0] if op.inputs else -1
            if op.opcode == RESBLOCK:  # written over its input x; y and z exist only as rows of its scratch
                assert plan.of_tensor[src].last == op.index, "a fused block's input must die there"
                sb = plan.add(("scratch", op.index), resblock_scratch_bytes(g, op), op.index, op.index)
                plan.merge(src, o, t.nbytes, *life)
                p, c, _ = op.options["ops"]
                plan.of_tensor[p.outputs[0]] = plan.of_tensor[c.outputs[0]] = sb
                plan.inplace.add(op.index)
                continue
            if op.opcode in ALIAS_OPS and src in plan.of_tensor:
                plan.merge(src, o, t.nbytes, *life)
                continue
            scratch = inplace_scratch_bytes(g, op)
            # In place only when it saves bytes: the scratch must be smaller than the output it replaces.
            if 0 < scratch < t.nbytes and op.inputs[0] in plan.of_tensor and _dies_here(plan, g, op.inputs[0], op.index, outputs):
                plan.merge(op.inputs[0], o, t.nbytes, *life)
                plan.add(("scratch", op.index), scratch, op.index, op.index)
                plan.inplace.add(op.index)
                continue
            if op.opcode in INPLACE_OPS:
                cand = [i for i in op.inputs[:2] if i in plan.of_tensor and g.tensors[i].nbytes == t.nbytes
                        and g.tensors[i].shape == t.shape and plan.of_tensor[i].last == op.index
                        and not (set(plan.of_tensor[i].tensors) & outputs)
                        and not (_live(plan.of_tensor[i], op.index) & set(g.inputs))]
                if cand:
                    plan.merge(cand[0], o, t.nbytes, *life)
                    continue
            # The API lets invoke overwrite graph inputs, so a dying model input may share the first conv's bytes.
            b_in = plan.of_tensor.get(src)
            if b_in is not None and b_in.last == op.index and not (set(b_in.tensors) & outputs):
                d = overlap_delta(g, op)
                if d is not None:
                    plan.merge(src, o, t.nbytes, *life, shift=d)
                    continue
            plan.add(o, t.nbytes, *life)
        if op.opcode in ("MEAN", "SUM"):
            plan.add(("scratch", op.index), reduce_scratch_bytes(g, op), op.index, op.index)
        elif op.opcode == MULFC:
            plan.add(("scratch", op.index), mul_fc_scratch_bytes(g, op), op.index, op.index)
        elif op.index not in plan.inplace and uses_im2col(g, op):
            plan.add(("scratch", op.index), im2col_scratch_bytes(g, op), op.index, op.index)
        elif op.index not in plan.inplace and uses_dw_padded(g, op):
            plan.add(("scratch", op.index), dw_padded_bytes(g, op), op.index, op.index)
    plan.place()
    plan.check()
    return plan


def reduce_scratch_bytes(g: Graph, op: Op) -> int:
    """int32 accumulators, one per output element."""
    return 4 * g.tensors[op.outputs[0]].size

