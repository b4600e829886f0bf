"""Elementwise, pooling and reduction lowerings: ADD / SUB / MUL / MAXIMUM / MINIMUM, MEAN / SUM, SOFTMAX,
AVERAGE / MAX pooling and the requantizing activations (RELU, RELU6, RELU_N1_TO_1, int8 QUANTIZE)."""
from __future__ import annotations

import numpy as np

from ondevice.mcu import fixedpoint, quant
from ondevice.mcu.emit import Emitter, Lowered, Unsupported, broadcast_strides, ext5, same_padding, row_strides
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.reader import Op


@lowering("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")
def _binary(e: Emitter, op: Op) -> Lowered:
    a, b = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, a, b, o)
    ta, tb, to = e.t(a), e.t(b), e.t(o)
    sa, za = ta.qparams()
    sb, zb = tb.qparams()
    so, zo = to.qparams()
    lo, hi = quant.activation_range(op.options.get("fusedActivationFunction", "NONE"), so, zo)
    out5 = ext5(to.shape)
    fields = dict(out_shape=out5, in1_strides=broadcast_strides(ta.shape, out5),
                  in2_strides=broadcast_strides(tb.shape, out5), in1_offset=-za, in2_offset=-zb, out_offset=zo)
    if op.opcode in ("MAXIMUM", "MINIMUM"):
        if (sa, za) != (so, zo) or (sb, zb) != (so, zo):
            raise Unsupported("inputs and output must share quantization (TFLM compares raw values)")
        fields.update(in1_mult=0, in1_shift=0, in2_mult=0, in2_shift=0, out_mult=0, out_shift=0, left_shift=0,
                      act_min=-128, act_max=127)
        p = e.struct("od_binary_params_t", f"od_p{op.index}", fields)
        fn = "od_maximum_s8" if op.opcode == "MAXIMUM" else "od_minimum_s8"
        return Lowered(f"{fn}(&{p}, {e.act(a)}, {e.act(b)}, {e.act(o)})")
    if op.opcode in ("ADD", "SUB"):
        left_shift = 20
        twice_max = 2 * quant.f64(max(np.float32(sa), np.float32(sb)))
        m1, s1 = quant.quantize_multiplier(quant.f64(sa) / twice_max)
        m2, s2 = quant.quantize_multiplier(quant.f64(sb) / twice_max)
        mo, so_ = quant.quantize_multiplier(twice_max / ((1 << left_shift) * quant.f64(so)))
        fields.update(in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so_,
                      left_shift=left_shift)
        fn = "od_add_s8" if op.opcode == "ADD" else "od_sub_s8"
        if op.opcode == "ADD" and list(ta.shape) == list(tb.shape) == list(to.shape) and so_ <= -1:
            fn = "od_add_s8_fast"  # no broadcast: od_add_fast_s8.c's exact cheaper rescaling
    else:
        mo, so_ = quant.quantize_multiplier(quant.f64(sa) * quant.f64(sb) / quant.f64(so))
        fields.update(in1_mult=0, in1_shift=0, in2_mult=0, in2_shift=0, out_mult=mo, out_shift=so_, left_shift=0)
        fn = "od_mul_s8"
    fields.update(act_min=lo, act_max=hi)
    p = e.struct("od_binary_params_t", f"od_p{op.index}", fields)
    return Lowered(f"{fn}(&{p}, {e.act(a)}, {e.act(b)}, {e.act(o)})",
                   macs=to.size if op.opcode == "MUL" else 0)


@lowering("MEAN", "SUM")
def _reduce(e: Emitter, op: Op) -> Lowered:
    i, ax = op.inputs[:2]
    o = op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    if not e.t(ax).is_const:
        raise Unsupported("reduction axes must be constant")
    rank = len(ti.shape)
    axes = sorted({int(a) % rank for a in np.asarray(e.t(ax).data).reshape(-1)})
    in5 = ext5(ti.shape)
    shift5 = 5 - rank
    red5 = {a + shift5 for a in axes}
    kept = [d for d in range(5) if d not in red5]
    kept_st = row_strides([in5[d] for d in kept])
    out_strides = [0] * 5
    for d, st in zip(kept, kept_st):
        out_strides[d] = st
    num_out = int(np.prod([in5[d] for d in kept]))
    n = int(np.prod([in5[d] for d in red5]))
    si, zi = ti.qparams()
    so, zo = to.qparams()
    m, s = quant.quantize_multiplier(quant.f64(si) / quant.f64(so))
    if op.opcode == "MEAN":
        m, s = quant.fold_mean_count(m, s, n)
    p = e.struct("od_reduce_params_t", f"od_p{op.index}", dict(
        in_shape=in5, out_strides=out_strides, num_outputs=num_out, num_reduced=n, in_zp=zi, out_zp=zo,
        mult=m, shift=s))
    scratch = e.plan.offset(("scratch", op.index))
    big = [d for d in range(5) if in5[d] > 1]
    # every reduced axis before every kept one: the input is [n, num_out] rows (od_reduce_fast_s8.c)
    rows = all(d in red5 for d in big[:len([d for d in big if d in red5])])
    fn = "od_reduce_rows_s8" if rows else "od_reduce_s8"
    return Lowered(f"{fn}(&{p}, {e.act(i)}, (int32_t *)(void *)OD_ARENA({scratch}), {e.act(o)})",
                   macs=ti.size)


@lowering("SOFTMAX")
def _softmax(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    so, zo = to.qparams()
    if zo != -128 or abs(so - 1.0 / 256) > 1e-9:
        raise Unsupported(f"softmax output must be scale 1/256, zero point -128 (got {so}, {zo})")
    si, _ = ti.qparams()
    mult, shift, diff_min = quant.softmax_params(op.options.get("beta", 1.0), si)
    depth = ti.shape[-1]
    lut = softmax_exp_table(mult, shift, diff_min)
    p = e.struct("od_softmax_params_t", f"od_p{op.index}", dict(
        outer=ti.size // depth, depth=depth, lut_len=len(lut)))
    t = e.table(f"od_exp{op.index}", "int32_t", lut)
    return Lowered(f"od_softmax_s8(&{p}, {t}, {e.act(i)}, {e.act(o)})", macs=ti.size)


def softmax_exp_table(mult: int, shift: int, diff_min: int) -> list[int]:
    """TFLM's Q0.31 exp(diff) for diff = -d, d = 0..min(255, -diff_min): the kernel then needs no exp."""
    return [fixedpoint.exp_on_negative_values(fixedpoint.srdhm(fixedpoint.wrap32(-d * (1 << shift)), mult), 5)
            for d in range(min(256, -diff_min + 1))]


@lowering("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    n, ih, iw, c = ti.shape
    _, oh, ow, _ = to.shape
    opts = op.options
    kh, kw = int(opts["filterHeight"]), int(opts["filterWidth"])
    sh, sw = int(opts.get("strideH", 1)), int(opts.get("strideW", 1))
    so, zo = to.qparams()
    lo, hi = quant.activation_range(opts.get("fusedActivationFunction", "NONE"), so, zo)
    pad = opts.get("padding", "VALID")
    p = e.struct("od_pool_params_t", f"od_p{op.index}", dict(
        batches=n, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
        pad_h=same_padding(ih, kh, sh, 1, oh, pad), pad_w=same_padding(iw, kw, sw, 1, ow, pad),
        act_min=lo, act_max=hi))
    fn = "od_avg_pool_s8" if op.opcode == "AVERAGE_POOL_2D" else "od_max_pool_s8"
    return Lowered(f"{fn}(&{p}, {e.act(i)}, {e.act(o)})", macs=n * oh * ow * c * kh * kw)


@lowering("RELU", "RELU6", "RELU_N1_TO_1")  # QUANTIZE: ops_ext.py (float or int8 input)
def requant(e: Emitter, op: Op) -> Lowered:
    i, o = op.inputs[0], op.outputs[0]
    e.require_int8(op, i, o)
    ti, to = e.t(i), e.t(o)
    si, zi = ti.qparams()
    so, zo = to.qparams()
    if op.opcode == "RELU6":  # TFLM clamps the raw values: no rescale
        m, s, zi_ = 1 << 30, 1, 0
        lo, hi = quant.activation_range("RELU6", so, zo)
        zo_ = 0
    else:
        m, s = quant.quantize_multiplier(quant.f64(si) / quant.f64(so))
        zi_, zo_ = zi, zo
        act = {"QUANTIZE": "NONE", "RELU": "RELU", "RELU_N1_TO_1": "RELU_N1_TO_1"}[op.opcode]
        lo, hi = quant.activation_range(act, so, zo)
    p = e.struct("od_requant_params_t", f"od_p{op.index}", dict(
        size=to.size, in_zp=zi_, out_zp=zo_, mult=m, shift=s, act_min=lo, act_max=hi))
    return Lowered(f"od_requantize_s8(&{p}, {e.act(i)}, {e.act(o)})")

