"""The fused MUL -> FULLY_CONNECTED op (ondevice/mcu/attn.py): the MUL's quantization as elementwise.py sets it
up, the FC's as conv.py does (input offset folded into the bias), gathered in one od_mul_fc_params_t."""
from __future__ import annotations

import numpy as np

from ondevice.mcu import quant
from ondevice.mcu.attn import MULFC, mul_fast_round
from ondevice.mcu.emit import Emitter, Lowered, Unsupported, broadcast_strides, c_array, ext5
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.reader import Op


def _mul_fields(e: Emitter, mul: Op) -> dict:
    ta, tb, to = (e.t(i) for i in (*mul.inputs[:2], mul.outputs[0]))
    (sa, za), (sb, zb), (so, zo) = ta.qparams(), tb.qparams(), to.qparams()
    mo, sh = quant.quantize_multiplier(quant.f64(sa) * quant.f64(sb) / quant.f64(so))
    lo, hi = quant.activation_range(mul.options.get("fusedActivationFunction", "NONE"), so, zo)
    d = to.shape[-1]
    out5 = ext5(to.shape)
    rs1, rs2 = ([s // d for s in broadcast_strides(t.shape, out5)[:4]] for t in (ta, tb))
    return dict(outer=out5[:4], in1_rs=rs1, in2_rs=rs2, depth=d, in1_rows=ta.size // d, in2_rows=tb.size // d,
                in1_offset=-za, in2_offset=-zb, mul_mult=mo, mul_shift=sh, mul_out_zp=zo, mul_lo=lo, mul_hi=hi)


def _fc_fields(e: Emitter, fc: Op) -> dict:
    ti, tw, to = e.t(fc.inputs[0]), e.t(fc.inputs[1]), e.t(fc.outputs[0])
    (si, zi), (so, zo) = ti.qparams(), to.qparams()
    (m,), (s,) = quant.per_channel_multipliers(si, tw.scale, so, 1)
    lo, hi = quant.activation_range(fc.options.get("fusedActivationFunction", "NONE"), so, zo)
    b = fc.inputs[2] if len(fc.inputs) > 2 else -1
    bias = int(e.t(b).data.astype(np.int64).reshape(-1)[0]) if b >= 0 else 0
    folded = bias - zi * int(tw.data.astype(np.int64).sum())  # sum(w * (x - zi)) + b == sum(w * x) + that
    if abs(folded) >= 2**31:
        raise Unsupported("folded bias overflows int32")
    bound = abs(folded) + 128 * int(abs(tw.data.astype(np.int64)).sum())  # |acc| for any int8 MUL row
    fast = int(s <= -1 and bound < 2**30)  # od_requant_fast's preconditions (od_simd.h)
    return dict(fc_bias=folded, fc_mult=m, fc_shift=s, fc_out_zp=zo, fc_lo=lo, fc_hi=hi, fc_fast=fast)


@lowering(MULFC)
def _mul_fc(e: Emitter, op: Op) -> Lowered:
    mul, fc = op.options["ops"]
    fields = {**_mul_fields(e, mul), **_fc_fields(e, fc)}
    rnd = mul_fast_round(e.g, mul)
    fields.update(fast=int(rnd is not None), mul_round=rnd or 0, fc_fast=fields.pop("fc_fast"))
    d = fields["depth"]
    w = np.zeros((d + 1) // 2 * 2, np.int16)
    w[:d] = e.t(fc.inputs[1]).data.reshape(-1)
    wname = f"od_w16_{op.index}"
    e.consts.append(c_array(wname, "int16_t", w, align=4))
    e.weight_bytes += int(w.nbytes)
    p = e.struct("od_mul_fc_params_t", f"od_p{op.index}", fields)
    scratch = f"(int16_t *)(void *)OD_ARENA({e.plan.offset(('scratch', op.index))})"
    a, b = mul.inputs[:2]
    return Lowered(f"od_mul_fc_s8(&{p}, {e.act(a)}, {e.act(b)}, {wname}, {e.act(op.outputs[0])}, {scratch})",
                   macs=2 * e.t(mul.outputs[0]).size)
