"""More MCU lowerings: float I/O at the graph edges, table activations, PRELU, SPLIT, RESIZE, BATCH_MATMUL.

Registered into ``LOWERINGS`` when the registry loads this package. Quantization setup mirrors the TFLM
prepare step of each op; the kernels live in firmware/kernels/od_*_s8.c (od_kernels_ext.h).
"""
from __future__ import annotations

import math

import numpy as np

from ondevice.mcu import fixedpoint, quant
from ondevice.mcu.emit import (Emitter, Lowered, Unsupported, broadcast_strides, c_array, ext5, row_strides,
                               same_padding)
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.lowerings.elementwise import requant
from ondevice.mcu.planner import LUT_OPS
from ondevice.mcu.reader import Op


def _f32_ptr(e: Emitter, idx: int, const: bool) -> str:
    return f"({'const ' if const else ''}float *)(void *){e.act(idx)}"


@lowering("QUANTIZE")
def _quantize(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    if {e.t(i).dtype, e.t(o).dtype} == {"uint8", "int8"}:
        return _requant_u8(e, op)
    if e.t(i).dtype != "float32":
        return requant(e, op)  # int8 -> int8 requantize
    e.require_int8(op, o)
    if e.t(o).scale is not None and len(e.t(o).scale) > 1:
        raise Unsupported("per-channel QUANTIZE")
    so, zo = e.t(o).qparams()
    th = fixedpoint.quantize_thresholds(so, zo)
    name = f"od_qt{op.index}"
    vals = ",\n    ".join(", ".join(f"{float(v).hex()}f" for v in th[k:k + 6]) for k in range(0, len(th), 6))
    e.consts.append(f"static const float {name}[{len(th)}] = {{\n    {vals}\n}};")
    e.weight_bytes += 4 * len(th)
    return Lowered(f"od_quantize_f32_s8({e.t(o).size}, {name}, {_f32_ptr(e, i, True)}, {e.act(o)})")


def _requant_u8(e: Emitter, op: Op) -> Lowered:
    """QUANTIZE uint8 <-> int8 at the edges (uint8 I/O models): TFLM's Requantize as a table on the raw bytes."""
    ti, to = e.t(op.inputs[0]), e.t(op.outputs[0])
    si, zi = ti.qparams()
    so, zo = to.qparams()
    m, s = quant.quantize_multiplier(quant.f64(si) / quant.f64(so))
    lo, hi = (0, 255) if to.dtype == "uint8" else (-128, 127)
    lut = []
    for byte in range(-128, 128):  # the kernel indexes by the byte read as int8
        x = byte & 0xFF if ti.dtype == "uint8" else byte
        y = min(max(fixedpoint.mbqm(x - zi, m, s) + zo, lo), hi)
        lut.append(y - 256 if y > 127 else y)  # a uint8 result stored as its byte
    table = f"od_lut{op.index}"
    e.consts.append(c_array(table, "int8_t", np.asarray(lut, np.int8)))
    e.weight_bytes += 256
    return Lowered(f"od_lut_s8({to.size}, {table}, {e.act(op.inputs[0])}, {e.act(op.outputs[0])})")


@lowering("DEQUANTIZE")
def _dequantize(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i)
    if e.t(o).dtype != "float32":
        raise Unsupported(f"DEQUANTIZE to {e.t(o).dtype}; the MCU engine dequantizes int8 to float32 only")
    si, zi = e.t(i).qparams()
    # The exact product scale * (q - zp) fits a double, so one float32 multiply rounds like TFLM's double one.
    return Lowered(f"od_dequantize_s8_f32({e.t(i).size}, {quant.f64(si)!r}f, {zi}, {e.act(i)}, "
                   f"{_f32_ptr(e, o, False)})")


def lut_for(e: Emitter, op: Op) -> np.ndarray:
    """The 256-entry table of TFLM's int8 arithmetic for one LUT op."""
    si, zi = e.t(op.inputs[0]).qparams()
    so, zo = e.t(op.outputs[0]).qparams()
    if op.opcode == "LOGISTIC":
        if zo != -128:
            raise Unsupported(f"LOGISTIC output zero point must be -128 (got {zo})")
        return fixedpoint.logistic_lut(si, zi)
    if op.opcode == "TANH":
        if zo != 0:
            raise Unsupported(f"TANH output zero point must be 0 (got {zo})")
        return fixedpoint.tanh_lut(si, zi)
    if op.opcode == "HARD_SWISH":
        try:
            return fixedpoint.hard_swish_lut(si, zi, so, zo)
        except ValueError as ex:
            raise Unsupported(str(ex)) from None
    return fixedpoint.leaky_relu_lut(si, zi, so, zo, op.options.get("alpha", 0.0))


@lowering(*LUT_OPS)
def _lut(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i, o)
    table = f"od_lut{op.index}"
    e.consts.append(c_array(table, "int8_t", lut_for(e, op)))
    e.weight_bytes += 256
    return Lowered(f"od_lut_s8({e.t(o).size}, {table}, {e.act(i)}, {e.act(o)})")


@lowering("PRELU")
def _prelu(e: Emitter, op: Op) -> Lowered:
    i, a = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, i, a, o)
    ti, ta, to = e.t(i), e.t(a), e.t(o)
    si, zi = ti.qparams()
    sa, za = ta.qparams()
    so, zo = to.qparams()
    # TFLM divides in double here (an exact 1.25 in float32 is 1.2499999... in double: it decides ties).
    m1, s1 = quant.quantize_multiplier(quant.f64(si) / quant.f64(so))
    m2, s2 = quant.quantize_multiplier(quant.f64(si) * quant.f64(sa) / quant.f64(so))
    out5 = ext5(to.shape)
    p = e.struct("od_prelu_params_t", f"od_p{op.index}", dict(
        out_shape=out5, in_strides=broadcast_strides(ti.shape, out5),
        alpha_strides=broadcast_strides(ta.shape, out5), input_offset=-zi, alpha_offset=-za,
        output_offset=zo, mult1=m1, shift1=s1, mult2=m2, shift2=s2))
    return Lowered(f"od_prelu_s8(&{p}, {e.act(i)}, {e.act(a)}, {e.act(o)})", macs=to.size)


def _copy_group(e: Emitter, op: Op, parts: list[tuple[int, int, list[int], list[int], int]]) -> Lowered:
    """One helper function running a strided copy per (src, dst, out_shape, in_strides, base)."""
    calls = []
    for k, (src, dst, shape, strides, base) in enumerate(parts):
        shape, strides = ext5(shape), [0] * (5 - len(strides)) + list(strides)
        p = e.struct("od_strided_copy_params_t", f"od_p{op.index}_{k}", dict(
            out_shape=shape, in_strides=strides, base=base))
        calls.append(f"od_strided_copy_s8(&{p}, {e.act(src)}, {e.act(dst)})")
    fn = f"od_split{op.index}"
    body = "".join(f"    if ((st = {c}) != OD_OK) return st;\n" for c in calls)
    e.consts.append(f"static od_status_t {fn}(void) {{\n    od_status_t st;\n{body}    return OD_OK;\n}}")
    return Lowered(f"{fn}()")


@lowering("SPLIT", "SPLIT_V")
def _split(e: Emitter, op: Op) -> Lowered:
    data, axis_t = (op.inputs[1], op.inputs[0]) if op.opcode == "SPLIT" else (op.inputs[0], op.inputs[2])
    e.require_int8(op, data, *op.outputs)
    if not e.t(axis_t).is_const:
        raise Unsupported("split axis must be constant")
    ti = e.t(data)
    for o in op.outputs:
        if e.t(o).qparams() != ti.qparams():
            raise Unsupported("outputs quantized differently from the input (TFLM copies bytes)")
    axis = int(np.asarray(e.t(axis_t).data).reshape(-1)[0]) % len(ti.shape)
    st = row_strides(ti.shape)
    parts, off = [], 0
    for o in op.outputs:
        shape = list(e.t(o).shape)
        parts.append((data, o, shape, st, off * st[axis]))
        off += shape[axis]
    if off != ti.shape[axis]:
        raise Unsupported(f"split sizes add up to {off}, not {ti.shape[axis]}")
    return _copy_group(e, op, parts)


def nearest_map(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> list[int]:
    """TFLite GetNearestNeighbor, in its float32 arithmetic."""
    f32 = np.float32
    scale = (f32(in_size - 1) / f32(out_size - 1) if align_corners and out_size > 1
             else f32(in_size) / f32(out_size))
    offset = f32(0.5 if half_pixel else 0.0)
    res = []
    for v in range(out_size):
        x = (f32(v) + offset) * scale
        idx = int(quant.tflite_round(float(x))) if align_corners else int(math.floor(float(x)))
        idx = min(idx, in_size - 1)
        res.append(max(0, idx) if half_pixel else idx)
    return res


@lowering("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    if len(ti.shape) != 4 or ti.qparams() != to.qparams():
        raise Unsupported("needs a 4-D NHWC input quantized like its output")
    n, ih, iw, c = ti.shape
    _, oh, ow, _ = to.shape
    ac, hp = bool(op.options.get("alignCorners", False)), bool(op.options.get("halfPixelCenters", False))
    ym = e.table(f"od_ym{op.index}", "int32_t", nearest_map(ih, oh, ac, hp))
    xm = e.table(f"od_xm{op.index}", "int32_t", nearest_map(iw, ow, ac, hp))
    p = e.struct("od_resize_params_t", f"od_p{op.index}", dict(
        batches=n, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow))
    return Lowered(f"od_resize_nearest_s8(&{p}, {ym}, {xm}, {e.act(i)}, {e.act(o)})")


def _batch_strides(shape, batch_out: list[int]) -> list[int]:
    """Strides over the (up to 3) broadcast batch dims of one BATCH_MATMUL operand."""
    bshape = list(shape[:-2])
    mat = int(shape[-1]) * int(shape[-2])
    bshape = [1] * (3 - len(bshape)) + bshape
    st = [s * mat for s in row_strides(bshape)]
    return [st[d] if bshape[d] == batch_out[d] else 0 for d in range(3)]


@lowering("BATCH_MATMUL")
def _batch_matmul(e: Emitter, op: Op) -> Lowered:
    a, b = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, a, b, o)
    ta, tb, to = e.t(a), e.t(b), e.t(o)
    if min(len(ta.shape), len(tb.shape)) < 2 or max(len(ta.shape), len(tb.shape)) > 5:
        raise Unsupported("operands must have rank 2 to 5")
    adj_x, adj_y = bool(op.options.get("adjX", False)), bool(op.options.get("adjY", False))
    rows, depth = (ta.shape[-1], ta.shape[-2]) if adj_x else (ta.shape[-2], ta.shape[-1])
    cols = tb.shape[-2] if adj_y else tb.shape[-1]
    batch = [int(x) for x in np.broadcast_shapes(tuple(ta.shape[:-2]), tuple(tb.shape[:-2]))]
    batch = [1] * (3 - len(batch)) + batch
    if len(batch) > 3:
        raise Unsupported("more than 3 batch dims")
    sa, za = ta.qparams()
    sb, zb = tb.qparams()
    so, zo = to.qparams()
    m, s = quant.quantize_multiplier(quant.f64(sa) * quant.f64(sb) / quant.f64(so))
    p = e.struct("od_batch_matmul_params_t", f"od_p{op.index}", dict(
        batch_shape=batch, lhs_bstrides=_batch_strides(ta.shape, batch), rhs_bstrides=_batch_strides(tb.shape, batch),
        rows=rows, cols=cols, depth=depth,
        lhs_rs=1 if adj_x else depth, lhs_cs=rows if adj_x else 1,
        rhs_rs=1 if adj_y else cols, rhs_cs=depth if adj_y else 1,
        lhs_offset=-za, rhs_offset=-zb, output_offset=zo, mult=m, shift=s))
    return Lowered(f"od_batch_matmul_s8(&{p}, {e.act(a)}, {e.act(b)}, {e.act(o)})",
                   macs=int(np.prod(batch)) * rows * cols * depth)


@lowering("TRANSPOSE_CONV")
def _transpose_conv(e: Emitter, op: Op) -> Lowered:
    f, i = op.inputs[1], op.inputs[2]
    b = op.inputs[3] if len(op.inputs) > 3 else -1
    o = op.outputs[0]
    e.require_int8(op, i, f, o)
    ti, tf, to = e.t(i), e.t(f), e.t(o)
    if not tf.is_const or np.any(tf.zero_point != 0):
        raise Unsupported("filter must be constant with zero point 0")
    if len(ti.shape) != 4 or tf.shape[3] != ti.shape[3]:
        raise Unsupported("needs a 4-D NHWC input and an OHWI filter over its channels")
    n, ih, iw, ic = ti.shape
    _, oh, ow, oc = to.shape
    kh, kw = tf.shape[1], tf.shape[2]
    opts = op.options
    sh, sw = int(opts.get("strideH", 1)), int(opts.get("strideW", 1))
    pad = opts.get("padding", "SAME")
    # TFLM pads as a forward conv from the output size back to the input (ComputePaddingHeightWidth).
    pad_h = same_padding(oh, kh, sh, 1, -(-oh // sh), pad)
    pad_w = same_padding(ow, kw, sw, 1, -(-ow // sw), pad)
    si, zi = ti.qparams()
    so, zo = to.qparams()
    lo, hi = quant.activation_range(opts.get("fusedActivationFunction", "NONE"), so, zo)
    mults, shifts = quant.per_channel_multipliers(si, tf.scale, so, oc)
    p = e.struct("od_transpose_conv_params_t", f"od_p{op.index}", dict(
        batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh,
        stride_w=sw, pad_h=pad_h, pad_w=pad_w, input_offset=-zi, output_offset=zo, act_min=lo, act_max=hi))
    m = e.table(f"od_m{op.index}", "int32_t", mults)
    s = e.table(f"od_s{op.index}", "int32_t", shifts)
    bias = e.const(b) if b >= 0 else "NULL"
    return Lowered(f"od_transpose_conv_s8(&{p}, {e.act(i)}, {e.const(f)}, {bias}, {m}, {s}, {e.act(o)})",
                   macs=n * ih * iw * ic * kh * kw * oc)


def _same_quant(e: Emitter, ref: int, idxs) -> None:
    for i in idxs:
        if e.t(i).qparams() != e.t(ref).qparams():
            raise Unsupported("tensors quantized differently (TFLM copies bytes)")


@lowering("PACK")
def _pack(e: Emitter, op: Op) -> Lowered:
    """PACK of activations: a CONCATENATION along the new axis (each input is one row block)."""
    o = op.outputs[0]
    e.require_int8(op, o, *op.inputs)
    _same_quant(e, o, op.inputs)
    to = e.t(o)
    axis = int(op.options.get("axis", 0)) % len(to.shape)
    outer = int(np.prod(to.shape[:axis]))
    row = int(np.prod(to.shape[axis + 1:]))
    calls = [f"od_copy_rows_s8({e.act(i)}, {e.act(o)} + {k * row}, {outer}, {row}, {row * len(op.inputs)})"
             for k, i in enumerate(op.inputs)]
    fn = f"od_pack{op.index}"
    body = "".join(f"    if ((st = {c}) != OD_OK) return st;\n" for c in calls)
    e.consts.append(f"static od_status_t {fn}(void) {{\n    od_status_t st;\n{body}    return OD_OK;\n}}")
    return Lowered(f"{fn}()")


@lowering("UNPACK")
def _unpack(e: Emitter, op: Op) -> Lowered:
    """UNPACK: a SPLIT into size-1 slices whose axis is then dropped (same bytes)."""
    i = op.inputs[0]
    e.require_int8(op, i, *op.outputs)
    _same_quant(e, i, op.outputs)
    ti = e.t(i)
    axis = int(op.options.get("axis", 0)) % len(ti.shape)
    st = row_strides(ti.shape)
    shape = [d for k, d in enumerate(ti.shape) if k != axis]
    strides = [s for k, s in enumerate(st) if k != axis]
    return _copy_group(e, op, [(i, o, shape, strides, k * st[axis]) for k, o in enumerate(op.outputs)])


@lowering("REDUCE_MAX")
def _reduce_max(e: Emitter, op: Op) -> Lowered:
    i, ax = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, i, o)
    _same_quant(e, i, [o])
    if not e.t(ax).is_const:
        raise Unsupported("reduction axes must be constant")
    ti = e.t(i)
    rank = len(ti.shape)
    red = {int(a) % rank + 5 - rank for a in np.asarray(e.t(ax).data).reshape(-1)}
    in5 = ext5(ti.shape)
    kept = [d for d in range(5) if d not in red]
    out_strides = [0] * 5
    for d, st in zip(kept, row_strides([in5[d] for d in kept])):
        out_strides[d] = st
    p = e.struct("od_reduce_params_t", f"od_p{op.index}", dict(
        in_shape=in5, out_strides=out_strides, num_outputs=e.t(o).size, num_reduced=ti.size // max(1, e.t(o).size),
        in_zp=0, out_zp=0, mult=0, shift=0))
    return Lowered(f"od_reduce_max_s8(&{p}, {e.act(i)}, {e.act(o)})")
