"""Generate a self-contained C library (od_model_api.h) from an int8 .tflite graph.

One lowering function per TFLite op (registered in ``LOWERINGS``) turns an op into a kernel call plus the
const parameter tables it needs; quantization setup happens here, in Python, so the C side only evaluates.
Unsupported ops are collected and reported together (op, why, what to change), never a crash half-way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ondevice.errors import ExportError, UnsupportedOpError
from ondevice.mcu import quant
from ondevice.mcu.fold import fold_constants
from ondevice.mcu.layouts import (dw_inplace_padded, dw_padded_bytes, im2col_filter, im2col_scratch_bytes,
                                  requant_fast, uses_dw_padded, uses_im2col)
from ondevice.mcu.planner import MemoryPlan
from ondevice.mcu.reader import Graph, Op, Tensor
from ondevice.registry import Registry

_DTYPE_CODES = {"int8": 0, "int16": 1, "int32": 2, "uint8": 3, "float32": 4}
_C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "uint8": "uint8_t"}
ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
# Ops whose output element i depends only on input element i: the output may overwrite that input.
INPLACE_OPS = {"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1"}


@dataclass
class Lowered:
    """What one op becomes: a C expression returning od_status_t, const definitions, MACs, scratch bytes."""
    call: str
    consts: list[str] = field(default_factory=list)
    macs: int = 0


class Unsupported(Exception):
    """Raised inside a lowering; collected into one UnsupportedOpError for the whole graph."""


LoweringFn = Callable[["Emitter", Op], Lowered]
LOWERINGS: Registry[LoweringFn] = Registry("MCU op lowering")


def lowering(*names: str):
    def deco(fn: LoweringFn) -> LoweringFn:
        for n in names:
            LOWERINGS.register(n)(fn)
        return fn
    return deco


def _c_array(name: str, ctype: str, values, per_line: int = 24, align: int = 4) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] OD_ALIGNED({align}) = {{\n    {body}\n}};"


def _c_struct(ctype: str, name: str, fields: dict) -> str:
    def fmt(v):
        if isinstance(v, (list, tuple)):
            return "{" + ", ".join(str(int(x)) for x in v) + "}"
        return str(int(v))
    body = ", ".join(f".{k} = {fmt(v)}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{body}}};"


def _ext5(shape) -> list[int]:
    shape = list(shape)
    if len(shape) > 5:
        raise Unsupported(f"rank {len(shape)} > 5")
    return [1] * (5 - len(shape)) + shape


def _strides(shape) -> list[int]:
    st, acc = [], 1
    for d in reversed(list(shape)):
        st.append(acc)
        acc *= d
    return list(reversed(st))


def _same_padding(in_size: int, k: int, stride: int, dil: int, out_size: int, padding: str) -> int:
    if padding != "SAME":
        return 0
    eff = (k - 1) * dil + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


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
        self.consts.append(_c_array(name, ct, data, align=16))
        self.weight_bytes += int(np.asarray(data).nbytes)
        self._const_names[idx] = name
        return name

    def reordered_const(self, name: str, values: np.ndarray) -> str:
        """int8 weights in a kernel-specific layout (one copy per op that reads it)."""
        self.consts.append(_c_array(name, "int8_t", values, align=16))
        self.weight_bytes += int(np.asarray(values).nbytes)
        return name

    def table(self, name: str, ctype: str, values) -> str:
        self.consts.append(_c_array(name, ctype, values))
        self.weight_bytes += len(np.asarray(values).reshape(-1)) * 4
        return name

    def struct(self, ctype: str, name: str, fields: dict) -> str:
        self.consts.append(_c_struct(ctype, name, fields))
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


# --------------------------------------------------------------------------------------------- lowerings

def _conv_common(e: Emitter, op: Op, depthwise: bool) -> Lowered:
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
        pad_h=_same_padding(ih, kh, sh, dh, oh, pad) + explicit[0],
        pad_w=_same_padding(iw, kw, sw, dw, ow, pad) + explicit[1],
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
    return _conv_call(e, op, depthwise, conv_fields, bias, m, s, macs)


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
    if not depthwise and uses_im2col(e.g, op):
        w = e.reordered_const(f"od_wr{op.index}", im2col_filter(tf.data))
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


def _broadcast_strides(shape, out5) -> list[int]:
    s5 = _ext5(shape)
    st = _strides(s5)
    res = []
    for d in range(5):
        if s5[d] == out5[d]:
            res.append(st[d])
        elif s5[d] == 1:
            res.append(0)
        else:
            raise Unsupported(f"shapes {shape} and {out5} do not broadcast")
    return res


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
    out5 = _ext5(to.shape)
    fields = dict(out_shape=out5, in1_strides=_broadcast_strides(ta.shape, out5),
                  in2_strides=_broadcast_strides(tb.shape, out5), in1_offset=-za, in2_offset=-zb, out_offset=zo)
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
    in5 = _ext5(ti.shape)
    shift5 = 5 - rank
    red5 = {a + shift5 for a in axes}
    kept = [d for d in range(5) if d not in red5]
    kept_st = _strides([in5[d] for d in kept])
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
    return Lowered(f"od_reduce_s8(&{p}, {e.act(i)}, (int32_t *)(void *)OD_ARENA({scratch}), {e.act(o)})",
                   macs=ti.size)


def reduce_scratch_bytes(g: Graph, op: Op) -> int:
    """int32 accumulators, one per output element."""
    return 4 * g.tensors[op.outputs[0]].size


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
    p = e.struct("od_softmax_params_t", f"od_p{op.index}", dict(
        outer=ti.size // depth, depth=depth, input_multiplier=mult, input_left_shift=shift, diff_min=diff_min))
    return Lowered(f"od_softmax_s8(&{p}, {e.act(i)}, {e.act(o)})", macs=ti.size)


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
    st = _strides(ti.shape)
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
        pad_h=_same_padding(ih, kh, sh, 1, oh, pad), pad_w=_same_padding(iw, kw, sw, 1, ow, pad),
        act_min=lo, act_max=hi))
    fn = "od_avg_pool_s8" if op.opcode == "AVERAGE_POOL_2D" else "od_max_pool_s8"
    return Lowered(f"{fn}(&{p}, {e.act(i)}, {e.act(o)})", macs=n * oh * ow * c * kh * kw)


@lowering("RELU", "RELU6", "RELU_N1_TO_1")  # QUANTIZE: ops_ext (float or int8 input)
def _requant(e: Emitter, op: Op) -> Lowered:
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


# --------------------------------------------------------------------------------------------- graph -> C

@dataclass
class Generated:
    """The generated library and the figures that go into the manifest."""
    source: str
    arena_bytes: int
    weight_bytes: int
    macs: int
    n_ops: int
    op_names: list[str]
    op_macs: list[int]
    ops: dict[str, int]
    plan: MemoryPlan


def _fold_aliases(g: Graph) -> None:
    """A reshape of a constant is a constant (weights reshaped by the converter)."""
    for op in g.ops:
        if op.opcode in ALIAS_OPS:
            src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
            if src.is_const and not dst.is_const:
                dst.data = src.data.reshape(dst.shape)


def _dies_here(plan: MemoryPlan, g: Graph, t: int, op_index: int, outputs: set) -> bool:
    b = plan.of_tensor[t]
    return b.last == op_index and not (set(b.tensors) & outputs) and not (set(b.tensors) & set(g.inputs))


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
    if op.opcode == "FULLY_CONNECTED":
        f = g.tensors[op.inputs[1]]
        if f.is_const and len(f.shape) == 2 and f.shape[0] <= f.shape[1] and ti.size % f.shape[1] == 0:
            return min(2, ti.size // f.shape[1]) * f.shape[0]
    return 0


def _fuse_pads(g: Graph) -> None:
    """PAD (spatial, with the zero point) feeding a VALID conv becomes the conv's own padding.

    A padded value equals the input zero point, so its tap adds (zp - zp) * w = 0: skipping it, as the conv
    kernels do for out-of-range taps, is bit-exact, and the padded copy never exists in RAM.
    """
    keep = []
    consumers: dict[int, list[Op]] = {}
    for op in g.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    fused = set()
    for op in g.ops:
        if op.opcode not in ("PAD", "PADV2") or len(op.inputs) < 2:
            continue
        src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
        pads_t = g.tensors[op.inputs[1]]
        users = consumers.get(op.outputs[0], [])
        if (not pads_t.is_const or len(src.shape) != 4 or op.outputs[0] in g.outputs or len(users) != 1
                or src.scale is None or dst.scale is None or src.qparams() != dst.qparams()):
            continue
        pads = np.asarray(pads_t.data).reshape(-1, 2)
        if pads[0].any() or pads[3].any() or (pads < 0).any():
            continue
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            if int(np.asarray(g.tensors[op.inputs[2]].data).reshape(-1)[0]) != dst.qparams()[1]:
                continue
        conv = users[0]
        if conv.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv.inputs[0] != op.outputs[0]:
            continue
        if conv.options.get("padding", "SAME") != "VALID" or "_explicit_pad" in conv.options:
            continue
        conv.inputs = [op.inputs[0]] + conv.inputs[1:]
        conv.options["_explicit_pad"] = (int(pads[1][0]), int(pads[2][0]))
        fused.add(op.index)
    if fused:
        g.ops = [op for op in g.ops if op.index not in fused]


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
                        and not (set(plan.of_tensor[i].tensors) & set(g.inputs))]
                if cand:
                    plan.merge(cand[0], o, t.nbytes, *life)
                    continue
            plan.add(o, t.nbytes, *life)
        if op.opcode in ("MEAN", "SUM"):
            plan.add(("scratch", op.index), reduce_scratch_bytes(g, op), op.index, op.index)
        elif op.index not in plan.inplace and uses_im2col(g, op):
            plan.add(("scratch", op.index), im2col_scratch_bytes(g, op), op.index, op.index)
        elif op.index not in plan.inplace and uses_dw_padded(g, op):
            plan.add(("scratch", op.index), dw_padded_bytes(g, op), op.index, op.index)
    plan.place()
    plan.check()
    return plan


def generate(g: Graph, model_name: str | None = None) -> Generated:
    """Lower every op of ``g`` to kernel calls and return the C source of the model library."""
    name = model_name or g.name
    if not any(t.scale is not None and t.dtype == "int8" for t in g.tensors):
        raise UnsupportedOpError(f"{g.name} is a float (unquantized) tflite; the MCU engine runs int8 models",
                                 "convert with full-integer quantization (a representative dataset, int8 ops)")
    fold_constants(g)
    _fold_aliases(g)
    for i in list(g.inputs) + list(g.outputs):
        t = g.tensors[i]
        if t.dtype == "int16":
            raise UnsupportedOpError(f"model {'input' if i in g.inputs else 'output'} {t.name!r} is int16: int16 "
                                     "activations are not supported", "export with int8 activations (8x8)")
        if not (t.dtype in ("int8", "uint8") and t.scale is not None) and t.dtype != "float32":
            raise UnsupportedOpError(
                f"model {'input' if i in g.inputs else 'output'} {t.name!r} is {t.dtype}; the MCU engine takes "
                "int8, uint8 or float32 inputs and outputs", "export with full-integer quantization (int8 inside)")
    problems: list[str] = []
    compute = [op for op in g.ops if op.opcode not in ALIAS_OPS]
    for op in compute:
        if op.opcode not in LOWERINGS:
            problems.append(f"{_where(g, op)}: no MCU kernel")
    if problems:
        raise UnsupportedOpError("the MCU engine cannot lower: " + "; ".join(problems),
                                 "rewrite those layers with supported ops: "
                                 + ", ".join(LOWERINGS.names()))
    _fuse_pads(g)
    compute = [op for op in g.ops if op.opcode not in ALIAS_OPS]
    plan = plan_memory(g, compute)
    e = Emitter(g, plan)
    calls: list[tuple[int, str, str]] = []
    op_macs: list[int] = []
    macs = 0
    for op in compute:
        try:
            low = LOWERINGS.get(op.opcode)(e, op)
        except Unsupported as ex:
            problems.append(f"{_where(g, op)}: {ex}")
            continue
        macs += low.macs
        op_macs.append(low.macs)
        calls.append((op.index, op.opcode, low.call))
    if problems:
        raise UnsupportedOpError("the MCU engine cannot lower: " + "; ".join(problems),
                                 "change those layers or their quantization, then re-export")
    counts: dict[str, int] = {}
    for _, oc, _ in calls:
        counts[oc] = counts.get(oc, 0) + 1
    src = _render(g, name, e, plan, calls, macs)
    return Generated(src, plan.arena_bytes, e.weight_bytes, macs, len(calls), [c[1] for c in calls], op_macs, counts, plan)


def _where(g: Graph, op: Op) -> str:
    """How a refusal names an op: opcode, index, and its location (the converter's output tensor name)."""
    loc = g.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else "?"
    return f"{op.opcode} (op {op.index} at {loc!r})"


def _tensor_info(g: Graph, idx: int) -> str:
    t = g.tensors[idx]
    s, zp = t.qparams() if t.scale is not None else (0.0, 0)  # float32 I/O: not quantized
    shape = list(t.shape) + [0] * (5 - len(t.shape))
    nm = t.name.replace("\\", "\\\\").replace('"', '\\"')
    return (f'{{"{nm}", {len(t.shape)}, {{{", ".join(map(str, shape))}}}, {float(np.float32(s))!r}f, {zp}, '
            f"{t.nbytes}, {_DTYPE_CODES[t.dtype]}}}")


def _render(g: Graph, name: str, e: Emitter, plan: MemoryPlan, calls, macs: int) -> str:
    ins = ",\n    ".join(_tensor_info(g, i) for i in g.inputs)
    outs = ",\n    ".join(_tensor_info(g, i) for i in g.outputs)
    in_ptrs = "\n".join(f"        case {k}: return OD_ARENA({plan.offset(i)});" for k, i in enumerate(g.inputs))
    out_ptrs = "\n".join(f"        case {k}: return OD_ARENA({plan.offset(i)});" for k, i in enumerate(g.outputs))
    names = ", ".join(f'"{c[1]}"' for c in calls)
    body = "\n".join(f"    OD_RUN({k}, {c[2]}); /* op {c[0]} */" for k, c in enumerate(calls))
    consts = "\n".join(e.consts)
    return f"""/* Generated by `ondevice export --target mcu` from {g.name}.tflite (sha256 {g.sha256}).
 * Do not edit: re-export instead. Implements od_model_api.h with a static arena; no malloc. */
#include <stddef.h>
#include <stdint.h>

#include "od_kernels.h"
#include "od_kernels_ext.h"
#include "od_model_api.h"

#if defined(__GNUC__) || defined(__clang__)
#define OD_ALIGNED(n) __attribute__((aligned(n)))
#else
#define OD_ALIGNED(n)
#endif

#define OD_ARENA_BYTES {plan.arena_bytes}u
static int8_t od_arena[OD_ARENA_BYTES > 0 ? OD_ARENA_BYTES : 16] OD_ALIGNED(16);
#define OD_ARENA(off) (od_arena + (off))

{consts}

static const od_tensor_info_t od_inputs[{len(g.inputs)}] = {{
    {ins}
}};
static const od_tensor_info_t od_outputs[{len(g.outputs)}] = {{
    {outs}
}};
static const od_model_info_t od_info = {{
    "{name}", "{g.sha256}", OD_ARENA_BYTES, {e.weight_bytes}u, {len(g.inputs)}, {len(g.outputs)},
    od_inputs, od_outputs, {len(calls)}u, {macs}ull
}};
static const char *const od_op_names[{max(1, len(calls))}] = {{{names or '""'}}};
static od_op_hook_t od_hook;

const od_model_info_t *od_model_info(void) {{ return &od_info; }}

int8_t *od_model_input(int idx) {{
    switch (idx) {{
{in_ptrs}
        default: return NULL;
    }}
}}

int8_t *od_model_output(int idx) {{
    switch (idx) {{
{out_ptrs}
        default: return NULL;
    }}
}}

void od_model_set_op_hook(od_op_hook_t hook) {{ od_hook = hook; }}

const char *od_model_op_name(uint32_t op_index) {{
    return op_index < {len(calls)}u ? od_op_names[op_index] : NULL;
}}

#define OD_RUN(k, call)                          \\
    do {{                                         \\
        if (od_hook) od_hook((k), 0);            \\
        const od_status_t st_ = (call);          \\
        if (od_hook) od_hook((k), 1);            \\
        if (st_ != OD_OK) return st_;            \\
    }} while (0)

od_status_t od_model_invoke(void) {{
{body}
    return OD_OK;
}}
"""


from ondevice.mcu import ops_ext  # noqa: E402,F401  registers the remaining lowerings
