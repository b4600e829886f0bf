"""FULLY_CONNECTED as a 1x1 CONV_2D (issue 15): an FC with constant symmetric weights over B rows of D is the 1x1
conv of a [1, 1, B, D] image, so it runs through od_conv2d_s8_im2col (2x2 SMLAD blocks over the weights in
its read order, in place when its input dies) instead of the row-at-a-time FC kernel. The rewrite adds two
zero-copy reshapes (input view, output view) around the conv; quantization is the conv lowering's, which for
one weight scale repeats the FC's multiplier per channel (the same values). Bit-exact: both are
sum(w * (x + in_off)) + bias requantized per output channel with TFLM's arithmetic."""
from __future__ import annotations

from ondevice.mcu.reader import Graph, Op, Tensor

#: below these the FC kernel's row loop is cheaper: no pixel pairs or channel pairs to block (measured on QEMU M4:
#: 32 rows x 25 -> 1 costs 3x more as a conv)
MIN_ROWS, MIN_CHANNELS = 2, 8


def _convertible(g: Graph, op: Op) -> bool:
    if op.opcode != "FULLY_CONNECTED" or len(op.inputs) < 2:
        return False
    ti, tw, to = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if not (tw.is_const and len(tw.shape) == 2 and tw.dtype == "int8" and tw.zero_point is not None):
        return False
    if any(t.dtype != "int8" or t.scale is None for t in (ti, to)) or ti.is_const:
        return False
    k, d = tw.shape
    return (int(abs(tw.zero_point).max()) == 0 and op.options.get("weightsFormat", 0) in (0, None)
            and ti.size % d == 0 and ti.size // d >= MIN_ROWS and k >= MIN_CHANNELS and to.size == ti.size // d * k)


def _view(g: Graph, src: Tensor, shape: tuple) -> int:
    t = Tensor(len(g.tensors), src.name + "/as_conv", tuple(shape), src.dtype, src.scale, src.zero_point,
               src.quantized_dimension)
    g.tensors.append(t)
    return t.index


def fc_as_conv(g: Graph) -> int:
    """Rewrite each convertible FC into RESHAPE -> CONV_2D 1x1 -> RESHAPE at its place; returns how many."""
    new_ops: list[Op] = []
    n = 0
    for op in g.ops:
        if not _convertible(g, op):
            new_ops.append(op)
            continue
        x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
        tw = g.tensors[w]
        k, d = tw.shape
        rows = g.tensors[x].size // d
        x4 = _view(g, g.tensors[x], (1, 1, rows, d))
        y4 = _view(g, g.tensors[y], (1, 1, rows, k))
        w4 = _view(g, tw, (k, 1, 1, d))
        g.tensors[w4].data = tw.data.reshape(k, 1, 1, d)
        opts = {"padding": "VALID", "strideH": 1, "strideW": 1, "dilationHFactor": 1, "dilationWFactor": 1,
                "fusedActivationFunction": op.options.get("fusedActivationFunction", "NONE"),
                "_name": "FULLY_CONNECTED"}  # profiles and op counts keep the model's op name
        new_ops += [Op(op.index, "RESHAPE", [x], [x4]), Op(op.index, "CONV_2D", [x4, w4, *op.inputs[2:3]], [y4], opts),
                    Op(op.index, "RESHAPE", [y4], [y])]
        n += 1
    g.ops = new_ops
    return n
