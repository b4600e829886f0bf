"""The residual block run row by row (ondevice/mcu/rowexec.py): both convs' parameters as conv.py sets them up,
the ADD's as elementwise.py does, gathered in one od_resblock_params_t for od_resblock_s8 (od_rowexec_s8.c)."""
from __future__ import annotations

from ondevice.mcu.emit import Emitter, Lowered
from ondevice.mcu.layouts import im2col_filter
from ondevice.mcu.lowerings import lowering
from ondevice.mcu.lowerings.conv import _conv_common
from ondevice.mcu.lowerings.elementwise import _binary
from ondevice.mcu.reader import Op
from ondevice.mcu.rowexec import RESBLOCK


def _conv_parts(e: Emitter, op: Op) -> tuple[list[str], int]:
    """The five pointers od_resblock_params_t holds for one conv, and its MACs."""
    got: dict = {}

    def grab(e_, op_, _dw, fields, bias, m, s, macs):
        p = e_.struct("od_conv_params_t", f"od_p{op_.index}", fields)
        w = e_.reordered_const(f"od_wr{op_.index}", im2col_filter(e_.t(op_.inputs[1]).data))
        got["parts"] = [f"&{p}", w, bias, m, s]
        return Lowered("", macs=macs)

    low = _conv_common(e, op, False, call=grab)
    return got["parts"], low.macs


@lowering(RESBLOCK)
def _resblock(e: Emitter, op: Op) -> Lowered:
    p, c, add = op.options["ops"]
    x = op.inputs[0]
    p_parts, p_macs = _conv_parts(e, p)
    c_parts, c_macs = _conv_parts(e, c)
    add_call = _binary(e, add).call  # its params struct od_p<add>; the call itself is not used
    fast = int(add_call.startswith("od_add_s8_fast("))
    fields = [*p_parts, *c_parts, f"&od_p{add.index}", str(fast), str(int(add.inputs[0] == x))]
    name = f"od_rb{op.index}"
    e.consts.append(f"static const od_resblock_params_t {name} = {{{', '.join(fields)}}};")
    e.weight_bytes += 4 * len(fields)
    scratch = f"OD_ARENA({e.plan.offset(('scratch', op.index))})"
    return Lowered(f"od_resblock_s8(&{name}, {e.act(op.outputs[0])}, {scratch})", macs=p_macs + c_macs)
