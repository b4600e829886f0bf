"""MUL -> FULLY_CONNECTED fusion (issue 15): attention scores written as a broadcast MUL (q[i] * k[j] over the
last axis D) whose output, reshaped to rows of D, feeds an FC with one output channel. The pair becomes one op
(``MULFC``, od_mul_fc_s8 in firmware/kernels/od_attn_s8.c) that requantizes each MUL row in registers and dots it
with the FC weights; the T x T x D product is never stored. Fused only when the MUL output (and every reshape of
it on the way) has that one reader and is no graph output, and when the kernel's fast requantization is exact
(MUL shift <= -1, its rounding constant fits int32)."""
from __future__ import annotations

from ondevice.mcu import quant
from ondevice.mcu.reader import Graph, Op

MULFC = "MUL+FULLY_CONNECTED"
_ALIASES = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def _even(n: int) -> int:
    return (n + 1) // 2 * 2


def mul_fast_round(g: Graph, mul: Op) -> int | None:
    """(1 + 2 zo) << (r - 1) for the MUL's requantization by SMMLAR, or None when that path is not exact."""
    ta, tb, to = (g.tensors[i] for i in (*mul.inputs[:2], mul.outputs[0]))
    _, shift = quant.quantize_multiplier(quant.f64(ta.qparams()[0]) * quant.f64(tb.qparams()[0])
                                         / quant.f64(to.qparams()[0]))
    if shift > -1:
        return None
    rnd = (1 + 2 * to.qparams()[1]) << (-shift - 1)
    return rnd if abs(rnd) + 65536 < 2**31 else None  # |SRDHM(p, m)| <= |p| < 2^16


def _int8_q(g: Graph, *idxs: int) -> bool:
    return all(g.tensors[i].dtype == "int8" and g.tensors[i].scale is not None for i in idxs)


def _match(g: Graph, fc: Op, producer: dict, consumers: dict) -> Op | None:
    """The MUL feeding ``fc`` through reshapes only, when the pair may run fused; else None."""
    if fc.opcode != "FULLY_CONNECTED" or len(fc.inputs) < 2:
        return None
    protected = set(g.inputs) | set(g.outputs)
    x = fc.inputs[0]
    reader = fc
    while True:
        if x in protected or consumers.get(x) != [reader]:
            return None
        op = producer.get(x)
        if op is None or op.opcode not in _ALIASES:
            break
        reader, x = op, op.inputs[0]
    mul = op
    if mul is None or mul.opcode != "MUL" or len(mul.inputs) != 2 or mul.outputs[0] != x:
        return None
    tw, to = g.tensors[fc.inputs[1]], g.tensors[x]
    if not (_int8_q(g, *mul.inputs, x, fc.inputs[0], fc.outputs[0]) and tw.is_const and tw.dtype == "int8"):
        return None
    d = to.shape[-1] if to.shape else 0
    if (len(tw.shape) != 2 or tw.shape[0] != 1 or tw.shape[1] != d or d < 1 or int(tw.zero_point[0]) != 0
            or len(to.shape) > 5 or g.tensors[fc.inputs[0]].qparams() != to.qparams()):
        return None
    if any(not g.tensors[i].shape or g.tensors[i].shape[-1] != d for i in mul.inputs):
        return None  # the last axis must be D in both inputs (contiguous rows)
    if fc.options.get("weightsFormat", 0) not in (0, None) or mul_fast_round(g, mul) is None:
        return None
    return mul


def fuse_mul_fc(g: Graph) -> int:
    """Rewrite every matching MUL -> (reshapes) -> FC into one MULFC op at the MUL's place; returns how many."""
    producer, consumers = g.links()
    fused: dict[int, Op] = {}
    gone: set[int] = set()
    for fc in g.ops:
        mul = _match(g, fc, producer, consumers)
        if mul is None or id(mul) in gone:
            continue
        chain, x = [], fc.inputs[0]
        while producer[x] is not mul:
            chain.append(producer[x])
            x = producer[x].inputs[0]
        fused[id(mul)] = Op(mul.index, MULFC, list(mul.inputs), [fc.outputs[0]], {"ops": (mul, fc)})
        gone |= {id(mul), id(fc), *(id(c) for c in chain)}
    g.ops = [fused.get(id(op), op) for op in g.ops if id(op) in fused or id(op) not in gone]
    return len(fused)


def mul_fc_scratch_bytes(g: Graph, op: Op) -> int:
    """od_mul_fc_scratch_bytes: both inputs as int16 rows of even length."""
    a, b = (g.tensors[i] for i in op.inputs[:2])
    d = a.shape[-1]
    return 2 * _even(d) * (a.size // d + b.size // d)
