"""Data movement lowerings: TRANSPOSE, STRIDED_SLICE, SLICE (strided copies), CONCATENATION and PAD."""
from __future__ import annotations

import numpy as np

from ondevice.mcu.emit import Emitter, Lowered, Unsupported, row_strides
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.reader import Op


def _strided_copy(e: Emitter, op: Op, out_shape, in_strides, base: int) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    out_shape, in_strides = list(out_shape), list(in_strides)
    if len(out_shape) > 5:
        raise Unsupported("rank > 5")
    pad = 5 - len(out_shape)
    p = e.struct("od_strided_copy_params_t", f"od_p{op.index}", dict(
        out_shape=[1] * pad + out_shape, in_strides=[0] * pad + in_strides, base=base))
    return Lowered(f"od_strided_copy_s8(&{p}, {e.act(i)}, {e.act(o)})")


@lowering("TRANSPOSE")
def _transpose(e: Emitter, op: Op) -> Lowered:
    i, perm_t = op.inputs[:2]
    e.require_int8(op, i, op.outputs[0])
    if not e.t(perm_t).is_const:
        raise Unsupported("permutation must be constant")
    perm = [int(x) for x in np.asarray(e.t(perm_t).data).reshape(-1)]
    ti = e.t(i)
    st = row_strides(ti.shape)
    return _strided_copy(e, op, [ti.shape[d] for d in perm], [st[d] for d in perm], 0)


def _affine_view(idx: np.ndarray) -> tuple[list[int], list[int], int]:
    """(shape, strides, base) of an index array that is a strided view of a flat buffer."""
    shape = list(idx.shape)
    if idx.size == 0:
        raise Unsupported("empty slice")
    base = int(idx.reshape(-1)[0])
    strides = []
    for d, n in enumerate(shape):
        if n > 1:
            sl = [0] * len(shape)
            sl[d] = 1
            strides.append(int(idx[tuple(sl)]) - base)
        else:
            strides.append(0)
    return shape, strides, base


@lowering("STRIDED_SLICE")
def _strided_slice(e: Emitter, op: Op) -> Lowered:
    i, bt, et, st = op.inputs[:4]
    e.require_int8(op, i, op.outputs[0])
    for t in (bt, et, st):
        if not e.t(t).is_const:
            raise Unsupported("begin/end/strides must be constant")
    o = op.options
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0) or o.get("offset", False):
        raise Unsupported("ellipsis/new-axis/offset masks are not supported")
    ti = e.t(i)
    begin, end, strides = (np.asarray(e.t(t).data).reshape(-1).tolist() for t in (bt, et, st))
    bm, em, sm = int(o.get("beginMask", 0)), int(o.get("endMask", 0)), int(o.get("shrinkAxisMask", 0))
    sl = []
    for d, n in enumerate(ti.shape):
        b_, e_, s_ = int(begin[d]), int(end[d]), int(strides[d])
        if sm >> d & 1:
            b_ = b_ + n if b_ < 0 else b_
            sl.append(slice(b_, b_ + 1, 1))
            continue
        sl.append(slice(None if bm >> d & 1 else b_, None if em >> d & 1 else e_, s_))
    idx = np.arange(ti.size).reshape(ti.shape)[tuple(sl)]
    shape, strides_, base = _affine_view(idx)
    return _strided_copy(e, op, shape, strides_, base)


@lowering("SLICE")
def _slice(e: Emitter, op: Op) -> Lowered:
    i, bt, szt = op.inputs[:3]
    e.require_int8(op, i, op.outputs[0])
    ti = e.t(i)
    begin = np.asarray(e.t(bt).data).reshape(-1).tolist()
    size = np.asarray(e.t(szt).data).reshape(-1).tolist()
    sl = tuple(slice(int(b), ti.shape[d] if int(s) == -1 else int(b) + int(s)) for d, (b, s) in enumerate(zip(begin, size)))
    shape, strides_, base = _affine_view(np.arange(ti.size).reshape(ti.shape)[sl])
    return _strided_copy(e, op, shape, strides_, base)


@lowering("CONCATENATION")
def _concat(e: Emitter, op: Op) -> Lowered:
    o = op.outputs[0]
    e.require_int8(op, o, *op.inputs)
    to = e.t(o)
    if op.options.get("fusedActivationFunction", "NONE") not in ("NONE", None):
        raise Unsupported("fused activation on CONCATENATION")
    so, zo = to.qparams()
    for i in op.inputs:
        if e.t(i).qparams() != (so, zo):
            raise Unsupported("inputs with different quantization than the output (TFLM copies bytes)")
    axis = int(op.options.get("axis", 0)) % len(to.shape)
    outer = int(np.prod(to.shape[:axis]))
    out_row = int(np.prod(to.shape[axis:]))
    calls, off = [], 0
    for i in op.inputs:
        row = int(np.prod(e.t(i).shape[axis:]))
        calls.append(f"od_copy_rows_s8({e.act(i)}, {e.act(o)} + {off}, {outer}, {row}, {out_row})")
        off += row
    fn = f"od_concat{op.index}"
    body = "".join(f"    if ((st = {c}) != OD_OK) return st;\n" for c in calls)
    e.consts.append(f"static od_status_t {fn}(void) {{\n    od_status_t st;\n{body}    return OD_OK;\n}}")
    return Lowered(f"{fn}()")


@lowering("PAD", "PADV2")
def _pad(e: Emitter, op: Op) -> Lowered:
    i, pt = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    if not e.t(pt).is_const:
        raise Unsupported("paddings must be constant")
    pads = np.asarray(e.t(pt).data).reshape(-1, 2)
    if len(ti.shape) > 4:
        raise Unsupported("PAD of rank > 4")
    k = 4 - len(ti.shape)
    value = to.qparams()[1]
    if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(e.t(op.inputs[2]).data).reshape(-1)[0])
    p = e.struct("od_pad_params_t", f"od_p{op.index}", dict(
        in_shape=[1] * k + list(ti.shape), out_shape=[1] * k + list(to.shape),
        pad_before=[0] * k + [int(x) for x in pads[:, 0]], pad_value=value))
    return Lowered(f"od_pad_s8(&{p}, {e.act(i)}, {e.act(o)})")


