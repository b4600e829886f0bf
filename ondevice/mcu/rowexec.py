"""Row-by-row execution schemes that cut peak RAM (issue 15), decided at code generation; the kernels are in
firmware/kernels/od_rowexec_s8.c.

- Residual block: CONV_2D P (stride 1, SAME) -> CONV_2D C (stride 1, SAME) -> ADD(x, z), where x is P's input and
  y, z have no other reader, becomes one op (``RESBLOCK``): P's output lives as a window of C's k_h rows, C's
  output row is added to x's row and written over it. Peak: x + a few rows, instead of x + y + z.
- Strided in-place conv: a CONV_2D whose every output pixel lands at or below the lowest input byte it (and any
  later pixel) reads may overwrite its dying input (e.g. 3x3 or 1x1 stride 2 with SAME padding at the top-left
  0), whatever its kernel size.
- Input inside output: a conv's dying input (a model input too) starts D bytes into its output, D the smallest
  offset no output byte reaches before it is read.
The last two rely on od_conv2d_s8_im2col reading a pixel pair's windows before storing its outputs, pixels in
increasing order: a new conv kernel picked by layouts.py must keep that or be excluded here.
"""
from __future__ import annotations

import numpy as np

from ondevice.mcu.layouts import im2col_scratch_bytes, uses_im2col
from ondevice.mcu.reader import Graph, Op

RESBLOCK = "CONV_2D+CONV_2D+ADD"


def _same_pad(n: int, k: int, stride: int, out: int, padding: str) -> int:
    return max(0, (out - 1) * stride + k - n) // 2 if padding == "SAME" else 0


def _pads(g: Graph, op: Op) -> tuple[int, int]:
    ti, to, tf = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]], g.tensors[op.inputs[1]]
    o = op.options
    pad = o.get("padding", "SAME")
    ph = _same_pad(ti.shape[1], tf.shape[1], int(o.get("strideH", 1)), to.shape[1], pad)
    pw = _same_pad(ti.shape[2], tf.shape[2], int(o.get("strideW", 1)), to.shape[2], pad)
    ex = o.get("_explicit_pad", (0, 0))
    return ph + ex[0], pw + ex[1]


def _first_reads(g: Graph, op: Op) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel (row-major over batches): its index and the lowest input byte its window reads."""
    ti, to = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    n, ih, iw, ic = ti.shape
    _, oh, ow, _ = to.shape
    ph, pw = _pads(g, op)
    sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
    b, oy, ox = np.meshgrid(np.arange(n), np.arange(oh), np.arange(ow), indexing="ij")
    iy0, ix0 = np.maximum(0, oy * sh - ph), np.maximum(0, ox * sw - pw)
    return ((b * oh + oy) * ow + ox).reshape(-1), (((b * ih + iy0) * iw + ix0) * ic).reshape(-1)


def conv_inplace_safe(g: Graph, op: Op) -> bool:
    """CONV_2D through im2col whose output may overwrite its input: for every output pixel q, the lowest input
    byte it reads is at or past q * out_c (all earlier pixels' outputs), and the reference twin's staging row
    (out_c bytes) fits in the im2col scratch."""
    if op.opcode != "CONV_2D" or not uses_im2col(g, op):
        return False
    ti, to = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if ti.dtype != "int8" or to.dtype != "int8" or to.nbytes > ti.nbytes:
        return False
    oc = to.shape[3]
    if oc > im2col_scratch_bytes(g, op):
        return False
    q, first = _first_reads(g, op)
    return bool(np.all(first >= q * oc))


def overlap_delta(g: Graph, op: Op, align: int = 16) -> int | None:
    """Where a dying input may start inside the output of an im2col conv (not in place): the smallest aligned D
    such that no output byte lands on an input byte still to be read, (q + 1) * out_c <= D + first read of q
    (the reference kernel stores channel by channel); None unless that saves bytes."""
    if not uses_im2col(g, op):
        return None
    ti, to = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if ti.dtype != "int8" or to.dtype != "int8":
        return None
    q, first = _first_reads(g, op)
    d = int(np.max((q + 1) * to.shape[3] - first))
    d = (max(d, 1) + align - 1) // align * align
    return d if d < to.nbytes else None


def _conv_ok(g: Graph, op: Op, h: int, w: int) -> bool:
    if op.opcode != "CONV_2D" or not uses_im2col(g, op) or "_explicit_pad" in op.options:
        return False
    o = op.options
    ti, to = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return (int(o.get("strideH", 1)) == 1 and int(o.get("strideW", 1)) == 1 and len(ti.shape) == 4
            and ti.shape[0] == 1 and tuple(ti.shape[1:3]) == (h, w) == tuple(to.shape[1:3])
            and ti.dtype == to.dtype == "int8")


def _match(g: Graph, add: Op, producer: dict, consumers: dict, order: dict) -> tuple[Op, Op, int] | None:
    """(P, C, x) when ``add`` closes a residual block the row scheme can run, else None."""
    if add.opcode != "ADD" or len(add.inputs) != 2:
        return None
    shapes = {tuple(g.tensors[t].shape) for t in (*add.inputs, add.outputs[0])}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        return None
    protected = set(g.inputs) | set(g.outputs)
    for z, x in (add.inputs, add.inputs[::-1]):
        c = producer.get(z)
        if c is None or consumers.get(z) != [add] or z in protected:
            continue
        y = c.inputs[0]
        p = producer.get(y)
        if p is None or consumers.get(y) != [c] or y in protected or p.inputs[0] != x or x in protected:
            continue
        if sorted(id(u) for u in consumers.get(x, [])) != sorted((id(p), id(add))) or x == z:
            continue
        _, h, w, _ = g.tensors[x].shape
        if not (_conv_ok(g, p, h, w) and _conv_ok(g, c, h, w) and order[id(p)] < order[id(c)] < order[id(add)]):
            continue
        kc, pc, pp = g.tensors[c.inputs[1]].shape[1], _pads(g, c)[0], _pads(g, p)[0]
        if kc - pc - pp >= 1 and g.tensors[c.outputs[0]].shape == g.tensors[x].shape:
            return p, c, x
    return None


def fuse_residual_blocks(g: Graph) -> int:
    """Rewrite every matching P -> C -> ADD into one RESBLOCK op at P's place; returns how many."""
    producer, consumers = g.links()
    order = {id(op): k for k, op in enumerate(g.ops)}
    fused: dict[int, Op] = {}
    gone: set[int] = set()
    for add in g.ops:
        m = _match(g, add, producer, consumers, order)
        if m is None or id(m[0]) in gone:
            continue
        p, c, x = m
        fused[id(p)] = Op(p.index, RESBLOCK, [x], [add.outputs[0]], {"ops": (p, c, add)})
        gone |= {id(p), id(c), id(add)}
    g.ops = [fused.get(id(op), op) for op in g.ops if id(op) in fused or id(op) not in gone]
    return len(fused)


def resblock_scratch_bytes(g: Graph, op: Op) -> int:
    """od_resblock_s8's scratch: k_C rows of y, one row of x (each 4-byte aligned), the larger im2col scratch."""
    p, c, _ = op.options["ops"]
    _, _, w, cy = g.tensors[p.outputs[0]].shape
    cx = g.tensors[op.inputs[0]].shape[3]
    kc = g.tensors[c.inputs[1]].shape[1]
    a4 = lambda n: (n + 3) // 4 * 4  # noqa: E731
    return a4(kc * w * cy) + a4(w * cx) + max(im2col_scratch_bytes(g, p), im2col_scratch_bytes(g, c))
