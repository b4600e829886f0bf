"""The Edge TPU's documented model requirements, as data (coral.ai "TensorFlow models on the Edge TPU").

Each op the compiler can map is listed with its documented limitation; a check function turns the limitation into
a yes/no on one op of our flatbuffer. Ops not listed here are not mapped. Source: the "Supported operations" table
and the general requirements (8-bit tensors, static shapes, constant parameters, at most 3 innermost dims > 1).
"""
from __future__ import annotations

from typing import Callable, Optional

from ondevice.export.tflite_util import const_values, fused_activation

MAX_NON1_DIMS = 3
SOFTMAX_MAX_ELEMENTS = 16000

# op -> documented limitation (empty when none is documented)
SUPPORTED_OPS: dict[str, str] = {
    "ADD": "", "SUB": "", "MUL": "", "MAXIMUM": "", "MINIMUM": "", "SQUARED_DIFFERENCE": "",
    "LOGISTIC": "", "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "TANH": "", "HARD_SWISH": "", "PRELU": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "MAX_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation function; a constant input must be all zeros and one of only 2 inputs",
    "CONV_2D": "", "DEPTHWISE_CONV_2D": "", "TRANSPOSE_CONV": "",
    "FULLY_CONNECTED": "only the default weights format; weights must be constant; output at most 2-D",
    "L2_NORMALIZATION": "", "LSTM": "unidirectional only",
    # Coral's "LSTM (unidirectional)" is what converters emit as this builtin
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional only",
    "MEAN": "no reduction along the batch dimension",
    "SUM": "no reduction along the batch dimension",
    "REDUCE_MAX": "no reduction along the batch dimension",
    "REDUCE_MIN": "no reduction along the batch dimension",
    "PAD": "no padding along the batch dimension",
    "PACK": "no packing along the batch dimension",
    "SPLIT": "no splitting along the batch dimension",
    "RESHAPE": "", "SQUEEZE": "", "EXPAND_DIMS": "", "TRANSPOSE": "", "SLICE": "",
    "STRIDED_SLICE": "all strides must be 1",
    "SOFTMAX": f"1-D input (softmax over the innermost axis), at most {SOFTMAX_MAX_ELEMENTS} elements",
    "RESIZE_BILINEAR": "3-D input/output", "RESIZE_NEAREST_NEIGHBOR": "3-D input/output",
    "SPACE_TO_DEPTH": "", "RSQRT": "", "QUANTIZE": "", "DEQUANTIZE": "only as the last op",
}

# Why common non-listed ops are not mapped, and what to write instead (shown in the report).
NOT_SUPPORTED_HINTS: dict[str, str] = {
    "BATCH_MATMUL": "two variable inputs; write attention as broadcast MUL + SUM or FC with constant weights",
    "GATHER": "not on the Edge TPU op list; precompute the lookup or use a one-hot FC",
    "GATHER_ND": "not on the Edge TPU op list; precompute the lookup or use a one-hot FC",
    "EXP": "not on the Edge TPU op list; use SOFTMAX or LOGISTIC",
    "DIV": "not on the Edge TPU op list; multiply by a constant reciprocal",
    "SELECT": "not on the Edge TPU op list",
    "SELECT_V2": "not on the Edge TPU op list",
}

def _fused(op) -> bool:
    return fused_activation(op) != "NONE"


def _reduce_axes(graph, op) -> Optional[list[int]]:
    if len(op.inputs) < 2:
        return None
    return const_values(graph.tensors[op.inputs[1]])


def _check_fc(graph, op) -> Optional[str]:
    w = graph.tensors[op.inputs[1]]
    if not w.is_const:
        return (f"FULLY_CONNECTED weights {w.name!r} are a variable tensor, not constant "
                "(q @ k.T lowers to this); write the product as a broadcast MUL + SUM")
    out = graph.tensors[op.outputs[0]]
    if len(out.shape) > 2:
        return f"FULLY_CONNECTED output is rank {len(out.shape)} (keep_num_dims); feed it a 2-D [T, D] input"
    fmt = op.options.get("weightsFormat", 0)
    if fmt:
        return "FULLY_CONNECTED weights use a shuffled format; only the default format maps"
    return None


def _check_no_fused(graph, op) -> Optional[str]:
    return f"{op.opcode} has a fused activation; only an unfused one maps" if _fused(op) else None


def _check_softmax(graph, op) -> Optional[str]:
    t = graph.tensors[op.inputs[0]]
    n = 1
    for d in t.shape:
        n *= d
    if n > SOFTMAX_MAX_ELEMENTS:
        return f"SOFTMAX input has {n} elements (> {SOFTMAX_MAX_ELEMENTS})"
    return None


def _check_strided(graph, op) -> Optional[str]:
    if len(op.inputs) >= 4:
        s = const_values(graph.tensors[op.inputs[3]])
        if s is not None and any(int(x) != 1 for x in s):
            return f"STRIDED_SLICE strides {list(s)} are not all 1"
    return None


def _check_concat(graph, op) -> Optional[str]:
    if _fused(op):
        return "CONCATENATION has a fused activation"
    consts = [graph.tensors[i] for i in op.inputs if graph.tensors[i].is_const]
    if consts and len(op.inputs) != 2:
        return "CONCATENATION with a constant input must have exactly 2 inputs"
    return None


def _check_batch_axis(graph, op) -> Optional[str]:
    axes = _reduce_axes(graph, op)
    if axes is None:
        return None
    rank = len(graph.tensors[op.inputs[0]].shape)
    if any((int(a) % rank if rank else 0) == 0 for a in axes) and rank >= 3:
        return f"{op.opcode} reduces along the batch axis (axes {list(axes)})"
    return None


OP_CHECKS: dict[str, Callable] = {
    "FULLY_CONNECTED": _check_fc,
    "AVERAGE_POOL_2D": _check_no_fused,
    "MAX_POOL_2D": _check_no_fused,
    "CONCATENATION": _check_concat,
    "SOFTMAX": _check_softmax,
    "STRIDED_SLICE": _check_strided,
    "MEAN": _check_batch_axis, "SUM": _check_batch_axis, "REDUCE_MAX": _check_batch_axis,
    "REDUCE_MIN": _check_batch_axis,
}

# Documented but too loosely worded to decide from the flatbuffer: reported as a caution, not as unmapped.
CAUTIONS: dict[str, Callable] = {
    "SOFTMAX": lambda g, op: ("the documented limitation reads '1-D input' and this input has more than one dim > 1; "
                              "counted as mapped (softmax runs over the innermost axis): confirm with edgetpu_compiler")
    if sum(1 for d in g.tensors[op.inputs[0]].shape if d > 1) > 1 else None,
}
