"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: quantization set up as TFLM's prepare step does, the kernel
picked by layouts.py, the input offset folded into the bias where every tap is inside the input."""
from __future__ import annotations

import numpy as np

from ondevice.mcu import quant
from ondevice.mcu.emit import Emitter, Lowered, Unsupported, same_padding
from ondevice.mcu.layouts import dw_inplace_padded, im2col_filter, requant_fast, uses_dw_padded, uses_im2col
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.reader import Op


def _conv_common(e: Emitter, op: Op, depthwise: bool, call=None) -> Lowered:
    i, f = op.inputs[0], op.inputs[1]
    b = op.inputs[2] if len(op.inputs) > 2 else -1
    o = op.outputs[0]
    e.require_int8(op, i, f, o)
    ti, tf, to = e.t(i), e.t(f), e.t(o)
    if not tf.is_const:
        raise Unsupported("filter must be constant")
    if len(ti.shape) != 4:
        raise Unsupported(f"input rank {len(ti.shape)} != 4")
    n, ih, iw, ic = ti.shape
    _, oh, ow, oc = to.shape
    kh, kw = tf.shape[1], tf.shape[2]
    if np.any(tf.zero_point != 0):
        raise Unsupported("filter zero point must be 0 (symmetric weights)")
    opts = op.options
    sh, sw = int(opts.get("strideH", 1)), int(opts.get("strideW", 1))
    dh, dw = int(opts.get("dilationHFactor", 1) or 1), int(opts.get("dilationWFactor", 1) or 1)
    pad = opts.get("padding", "SAME")
    explicit = opts.get("_explicit_pad", (0, 0))  # from a fused PAD
    in_s, in_zp = ti.qparams()
    out_s, out_zp = to.qparams()
    lo, hi = quant.activation_range(opts.get("fusedActivationFunction", "NONE"), out_s, out_zp)
    mults, shifts = quant.per_channel_multipliers(in_s, tf.scale, out_s, oc)
    if depthwise:
        dm = oc // ic
        if dm * ic != oc:
            raise Unsupported("depthwise output channels must be a multiple of input channels")
        macs = n * oh * ow * oc * kh * kw
    else:
        dm = 1
        if tf.shape[3] != ic:
            raise Unsupported("grouped convolution is not supported")
        macs = n * oh * ow * oc * kh * kw * ic
    conv_fields = dict(
        batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
        stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
        pad_h=same_padding(ih, kh, sh, dh, oh, pad) + explicit[0],
        pad_w=same_padding(iw, kw, sw, dw, ow, pad) + explicit[1],
        depth_multiplier=dm, input_offset=-in_zp, output_offset=out_zp, act_min=lo, act_max=hi)
    m = e.table(f"od_m{op.index}", "int32_t", mults)
    s = e.table(f"od_s{op.index}", "int32_t", shifts)
    no_border = (conv_fields["pad_h"] == 0 and conv_fields["pad_w"] == 0
                 and (oh - 1) * sh + (kh - 1) * dh + 1 <= ih and (ow - 1) * sw + (kw - 1) * dw + 1 <= iw)
    axes = (0, 1, 2) if depthwise else (1, 2, 3)
    wsum = tf.data.astype(np.int64).sum(axis=axes)
    bias_vals = _bias_values(e, b, oc)
    if no_border:  # every tap is inside the input: the input offset folds into the bias
        bias = _folded_bias(e, op, b, wsum, -in_zp)
        bias_vals = bias_vals + (-in_zp) * wsum
        conv_fields["input_offset"] = 0
        in_zp = 0
    else:
        bias = e.const(b) if b >= 0 else "NULL"
    conv_fields["requant_fast"] = requant_fast(
        shifts, bias_vals, np.abs(tf.data.astype(np.int64)).sum(axis=axes), conv_fields["input_offset"])
    return (call or _conv_call)(e, op, depthwise, conv_fields, bias, m, s, macs)  # call: rowexec.py's fused blocks


def _conv_call(e: Emitter, op: Op, depthwise: bool, conv_fields: dict, bias: str, m: str, s: str,
               macs: int) -> Lowered:
    """The kernel a conv runs (layouts.py decides) and its call, in place when the planner merged its buffers."""
    i, f, o = op.inputs[0], op.inputs[1], op.outputs[0]
    tf = e.t(f)
    n, oh, ow, oc = e.t(o).shape
    ic = e.t(i).shape[3]
    in_zp, out_zp = -conv_fields["input_offset"], conv_fields["output_offset"]
    lo, hi = conv_fields["act_min"], conv_fields["act_max"]
    if op.index in e.plan.inplace:
        tmp = f"OD_ARENA({e.plan.offset(('scratch', op.index))})"
        if depthwise:
            p = e.struct("od_conv_params_t", f"od_p{op.index}", conv_fields)
            fn = "od_depthwise_conv2d_s8_inplace_padded" if dw_inplace_padded(e.g, op) else "od_depthwise_conv2d_s8_inplace"
            return Lowered(f"{fn}(&{p}, {e.act(o)}, {e.const(f)}, {bias}, {m}, {s}, {tmp})", macs=macs)
        if uses_im2col(e.g, op):  # the im2col kernel reads a pixel pair before its outputs land: in == out
            p = e.struct("od_conv_params_t", f"od_p{op.index}", conv_fields)
            w = e.reordered_const(f"od_wr{op.index}", im2col_filter(tf.data))
            return Lowered(f"od_conv2d_s8_im2col(&{p}, {e.act(o)}, {w}, {bias}, {m}, {s}, {e.act(o)}, "
                           f"(int16_t *){tmp})", macs=macs)
        # A 1x1 stride-1 conv is a matmul over pixels: run it as in-place FULLY_CONNECTED rows.
        fc = e.struct("od_fc_params_t", f"od_q{op.index}", dict(
            batches=n * oh * ow, in_depth=ic, out_depth=oc, input_offset=-in_zp, filter_offset=0,
            output_offset=out_zp, act_min=lo, act_max=hi, per_channel=1,
            requant_fast=conv_fields["requant_fast"]))
        return Lowered(f"od_matmul_s8_inplace(&{fc}, {e.act(o)}, {e.const(f)}, {bias}, {m}, {s}, {tmp})", macs=macs)
    p = e.struct("od_conv_params_t", f"od_p{op.index}", conv_fields)
    if uses_im2col(e.g, op):  # a one-channel depthwise too: a conv of the transposed filter
        w = e.reordered_const(f"od_wr{op.index}", im2col_filter(tf.data, depthwise))
        tmp = f"(int16_t *)OD_ARENA({e.plan.offset(('scratch', op.index))})"
        return Lowered(f"od_conv2d_s8_im2col(&{p}, {e.act(i)}, {w}, {bias}, {m}, {s}, {e.act(o)}, {tmp})",
                       macs=macs)
    if depthwise and uses_dw_padded(e.g, op):
        tmp = f"OD_ARENA({e.plan.offset(('scratch', op.index))})"
        return Lowered(f"od_depthwise_conv2d_s8_padded(&{p}, {e.act(i)}, {e.const(f)}, {bias}, {m}, {s}, {e.act(o)}, "
                       f"{tmp})", macs=macs)
    fn = "od_depthwise_conv2d_s8" if depthwise else "od_conv2d_s8"
    return Lowered(f"{fn}(&{p}, {e.act(i)}, {e.const(f)}, {bias}, {m}, {s}, {e.act(o)})", macs=macs)


def _bias_values(e: Emitter, b: int, n: int) -> np.ndarray:
    return e.t(b).data.astype(np.int64).reshape(-1) if b >= 0 else np.zeros(n, np.int64)


def _folded_bias(e: Emitter, op: Op, b: int, wsum: np.ndarray, in_off: int) -> str:
    """bias + in_off * sum(w) per output channel: sum(w * (x + off)) + bias == sum(w * x) + that, exactly."""
    base = e.t(b).data.astype(np.int64).reshape(-1) if b >= 0 else np.zeros(len(wsum), np.int64)
    folded = base + in_off * wsum
    if np.abs(folded).max(initial=0) >= 2**31:
        raise Unsupported("folded bias overflows int32")
    return e.table(f"od_b{op.index}", "int32_t", folded)


@lowering("CONV_2D")
def _conv2d(e: Emitter, op: Op) -> Lowered:
    return _conv_common(e, op, depthwise=False)


@lowering("DEPTHWISE_CONV_2D")
def _dwconv2d(e: Emitter, op: Op) -> Lowered:
    return _conv_common(e, op, depthwise=True)


@lowering("FULLY_CONNECTED")
def _fc(e: Emitter, op: Op) -> Lowered:
    i, f = op.inputs[0], op.inputs[1]
    b = op.inputs[2] if len(op.inputs) > 2 else -1
    o = op.outputs[0]
    e.require_int8(op, i, f, o)
    ti, tf, to = e.t(i), e.t(f), e.t(o)
    if not tf.is_const:
        raise Unsupported("weights are a variable tensor (a matmul of two activations); "
                          "write attention as broadcast MUL + SUM or an FC with constant weights")
    if op.options.get("weightsFormat", 0) not in (0, None):
        raise Unsupported("shuffled weights format")
    out_d, in_d = tf.shape
    if ti.size % in_d:
        raise Unsupported("input size is not a multiple of the weights' depth")
    batches = ti.size // in_d
    in_s, in_zp = ti.qparams()
    out_s, out_zp = to.qparams()
    per_channel = len(tf.scale) > 1
    mults, shifts = quant.per_channel_multipliers(in_s, tf.scale, out_s, out_d if per_channel else 1)
    lo, hi = quant.activation_range(op.options.get("fusedActivationFunction", "NONE"), out_s, out_zp)
    in_off = -in_zp
    bias_vals = _bias_values(e, b, out_d)
    if int(tf.zero_point[0]) == 0:  # fold the input offset into the bias (exact, see _folded_bias)
        bias = _folded_bias(e, op, b, tf.data.astype(np.int64).sum(axis=1), in_off)
        bias_vals = bias_vals + in_off * tf.data.astype(np.int64).sum(axis=1)
        in_off = 0
    else:
        bias = e.const(b) if b >= 0 else "NULL"
    fast = 0 if int(tf.zero_point[0]) else requant_fast(
        shifts, bias_vals, np.abs(tf.data.astype(np.int64)).sum(axis=1), in_off)
    p = e.struct("od_fc_params_t", f"od_p{op.index}", dict(
        batches=batches, in_depth=in_d, out_depth=out_d, input_offset=in_off,
        filter_offset=-int(tf.zero_point[0]), output_offset=out_zp, act_min=lo, act_max=hi,
        per_channel=int(per_channel), requant_fast=fast))
    m = e.table(f"od_m{op.index}", "int32_t", mults)
    s = e.table(f"od_s{op.index}", "int32_t", shifts)
    if op.index in e.plan.inplace:
        tmp = f"OD_ARENA({e.plan.offset(('scratch', op.index))})"
        return Lowered(f"od_matmul_s8_inplace(&{p}, {e.act(o)}, {e.const(f)}, {bias}, {m}, {s}, {tmp})",
                       macs=batches * in_d * out_d)
    return Lowered(f"od_fully_connected_s8(&{p}, {e.act(i)}, {e.const(f)}, {bias}, {m}, {s}, {e.act(o)})",
                   macs=batches * in_d * out_d)

