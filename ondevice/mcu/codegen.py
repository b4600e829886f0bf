"""Generate a self-contained C library (od_model_api.h) from an int8 .tflite graph.

Each op is looked up in ``LOWERINGS`` (ondevice/mcu/lowerings/: one function per TFLite op turns it into a kernel
call plus the const parameter tables it needs); quantization setup happens there, in Python, so the C side only
evaluates. Unsupported ops are collected and reported together (op, why, what to change), never a crash half-way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ondevice.errors import UnsupportedOpError
from ondevice.mcu.attn import fuse_mul_fc
from ondevice.mcu.fc_conv import fc_as_conv
from ondevice.mcu.emit import Emitter, Unsupported
from ondevice.mcu.fold import fold_constants
from ondevice.mcu.lowerings import LOWERINGS
from ondevice.mcu.planner import ALIAS_OPS, MemoryPlan, plan_memory
from ondevice.mcu.reader import Graph, Op
from ondevice.mcu.rowexec import fuse_residual_blocks

_DTYPE_CODES = {"int8": 0, "int16": 1, "int32": 2, "uint8": 3, "float32": 4}


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
    fuse_residual_blocks(g)
    fuse_mul_fc(g)
    fc_as_conv(g)
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
        calls.append((op.index, op.options.get("_name", op.opcode), low.call))  # _name: rewritten ops (fc_conv.py)
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
