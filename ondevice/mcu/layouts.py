"""Kernel selection and weight layouts of the optimised MCU kernels (issue 15), shared by the lowerings
(lowerings/) and the memory planner (planner.py): which kernel an op runs, the scratch it needs, the order its
weights are stored in, and when the cheaper requantization is proven exact."""
from __future__ import annotations

import numpy as np

from ondevice.mcu.reader import Graph, Op


def uses_im2col(g: Graph, op: Op) -> bool:
    """CONV_2D runs as im2col + blocked matmul (od_conv_im2col_s8.c) unless dilated; so does a depthwise conv of a
    one-channel input (its depth multiplier is the output channels: a CONV_2D of that filter, transposed)."""
    o = op.options
    ti = g.tensors[op.inputs[0]]
    return ((op.opcode == "CONV_2D" or (op.opcode == "DEPTHWISE_CONV_2D" and len(ti.shape) == 4 and ti.shape[3] == 1))
            and int(o.get("dilationHFactor", 1) or 1) == 1
            and int(o.get("dilationWFactor", 1) or 1) == 1 and len(ti.shape) == 4)


def uses_dw_padded(g: Graph, op: Op) -> bool:
    """DEPTHWISE_CONV_2D through the zero-point-padded four-channel copy (od_dw_padded_s8.c)."""
    if op.opcode != "DEPTHWISE_CONV_2D":
        return False
    ti, to, tf = (g.tensors[op.inputs[0]], g.tensors[op.outputs[0]], g.tensors[op.inputs[1]])
    o = op.options
    return (op.opcode == "DEPTHWISE_CONV_2D" and len(ti.shape) == 4 and ti.shape[3] == to.shape[3]
            and ti.shape[3] % 4 == 0 and int(o.get("dilationHFactor", 1) or 1) == 1
            and int(o.get("dilationWFactor", 1) or 1) == 1 and tf.shape[1] * tf.shape[2] <= 25)


def dw_inplace_padded(g: Graph, op: Op) -> bool:
    """In-place depthwise through the padded rows, unless their scratch would cost the in-place saving."""
    to = g.tensors[op.outputs[0]]
    n, oh, ow, _ = to.shape
    return (uses_dw_padded(g, op) and n == 1
            and (4 * oh * ow + 3) // 4 * 4 + dw_padded_bytes(g, op) < to.nbytes)


def dw_padded_bytes(g: Graph, op: Op) -> int:
    """od_dw_padded_scratch_bytes: one word per pixel of the k_h padded input rows an output row reads; a 3x3
    stride-w-1 conv's ring (od_dw3x3_s8.c) holds 3 rows x 4 channels x (out_w + 1) // 2 + 1 int16 pairs."""
    to, tf = g.tensors[op.outputs[0]], g.tensors[op.inputs[1]]
    sw = int(op.options.get("strideW", 1))
    ring = 4 * tf.shape[1] * ((to.shape[2] - 1) * sw + tf.shape[2])
    if tf.shape[1] == 3 and tf.shape[2] == 3 and sw == 1:
        return max(ring, 48 * ((to.shape[2] + 1) // 2 + 1))
    return ring


def im2col_block4(d: int) -> bool:
    """od_im2col_common.h od_im2col_block4: the depths the four-pixel block (four int16 fields) runs for."""
    return d <= 64 and (d >= 16 or (d >= 8 and d % 4 == 0))


def im2col_scratch_bytes(g: Graph, op: Op) -> int:
    """Four int16 receptive fields where the four-pixel block runs, else two (od_conv2d_im2col_scratch_bytes)."""
    _, kh, kw, _ = g.tensors[op.inputs[1]].shape
    d = kh * kw * g.tensors[op.inputs[0]].shape[3]
    return (32 if im2col_block4(d) else 16) * ((d + 3) // 4)


def im2col_filter(w: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """Weights in od_conv_im2col_s8.c's read order: per channel pair and group of four depths, four bytes of each
    channel as [w0 w2 w1 w3]; then each channel's depth % 4 tail; an odd last channel alone, groups reordered."""
    if depthwise:  # [1, kh, kw, oc] of a one-channel input is the OHWI filter [oc, kh, kw, 1]
        w = np.asarray(w).transpose(3, 1, 2, 0)
    rows = np.asarray(w, np.int8).reshape(w.shape[0], -1)
    oc, d = rows.shape
    g4 = d // 4 * 4
    perm = np.concatenate([rows[:, :g4].reshape(oc, -1, 4)[:, :, [0, 2, 1, 3]].reshape(oc, g4), rows[:, g4:]], 1)
    out = []
    for o in range(0, oc - 1, 2):
        pair = perm[o:o + 2, :g4].reshape(2, -1, 4).transpose(1, 0, 2).reshape(-1)
        out += [pair, perm[o, g4:], perm[o + 1, g4:]]
    if oc % 2:
        out.append(perm[-1])
    return np.concatenate(out)


def requant_fast(shifts, bias_vals: np.ndarray, wabs: np.ndarray, in_off: int) -> int:
    """1 when od_requant_fast (od_simd.h) is exact on every channel for any int8 input: each shift <= -1 and
    |accumulator + bias| < 2^30 (bound: |bias| + sum|w| * max|x + in_off|)."""
    xmax = max(abs(-128 + in_off), abs(127 + in_off))
    bound = np.abs(bias_vals) + wabs * xmax
    return int(bool(np.all(np.asarray(shifts) <= -1)) and int(bound.max(initial=0)) < 2**30)
