"""The modelled int8 memory: the activation arena's peak, weight bytes, the converter's PAD copies, and the
``budget`` rule that checks them against a board (``[budget]`` in rules/<target>.toml)."""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn as nn

from ondevice.slim.lint.config import RULES, TargetSpec
from ondevice.slim.lint.context import LintContext, _is_static, _packet, _shape, _val
from ondevice.slim.lint.report import Violation


def _int8_bytes(node) -> int:
    v = _val(node)
    if not isinstance(v, torch.Tensor) or not _is_static(tuple(v.shape)):
        return 0
    per = 1 if v.dtype.is_floating_point or v.dtype in (torch.int8, torch.uint8, torch.bool) else 4
    return math.prod(v.shape) * per


# Share their input's buffer: folded ops, and activations fused into the op before. RESHAPE is a copy in TFLM
# (its planner gives it its own buffer), which is what the tflm/mcu budgets care about.
_ALIAS_BUILTINS = ([], ["RELU"], ["RELU6"], ["RELU_N1_TO_1"])


_CONV_OPS = ("conv1d", "conv2d", "convolution")


def explicit_pad(node: torch.fx.Node) -> tuple[int, tuple] | None:
    """For a 2-D conv whose padding is neither VALID nor TFLite SAME: (padded input bytes, padded shape).

    TFLite SAME pads ``max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)`` with the odd element after; any other
    symmetric padding makes the converter insert a PAD op, i.e. one more op and a padded copy in RAM.
    """
    if _packet(node) not in _CONV_OPS:
        return None
    a = node.args
    x, w = _shape(a[0]), _shape(a[1])
    if not x or not w or len(x) != 4 or not _is_static(x):
        return None
    pair = lambda v, d: tuple(v) * (2 // len(v)) if isinstance(v, (list, tuple)) and v else (d, d)  # noqa: E731
    if _packet(node) == "convolution":
        stride, padding, dilation = pair(a[3], 1), pair(a[4], 0), pair(a[5], 1)
    else:
        stride = pair(a[3] if len(a) > 3 else [1], 1)
        padding = a[4] if len(a) > 4 else [0]
        if isinstance(padding, str):  # "same"/"valid": the converter maps these directly
            return None
        padding, dilation = pair(padding, 0), pair(a[5] if len(a) > 5 else [1], 1)
    if padding == (0, 0):
        return None
    same = True
    for n, k, st, dl, p in zip(x[2:], w[2:], stride, dilation, padding):
        total = max((-(-n // st) - 1) * st + (k - 1) * dl + 1 - n, 0)
        same &= total // 2 == p and total - total // 2 == p
    if same:
        return None
    shape = (x[0], x[1], x[2] + 2 * padding[0], x[3] + 2 * padding[1])
    return math.prod(shape), shape


def peak_activation_bytes(ctx: LintContext) -> tuple[int, str]:
    """Modelled int8 arena: peak of live activation bytes in graph order, and the module where it peaks.

    Folded ops and activations fused into the previous op share their input's buffer; a conv with non-SAME
    padding gets the converter's PAD copy. This is the planned (non-persistent) part of a TFLM arena; the
    runtime adds persistent buffers (quantization params, node structs), alignment and any other layout copies
    the converter inserts, so it is an estimate, not a measurement.
    """
    owner: dict[torch.fx.Node, torch.fx.Node] = {}
    order = [n for n in ctx.user_inputs] + [n for n in ctx.nodes if not ctx.is_const(n)]
    for n in order:
        b = ctx.builtins(n) if n.op == "call_function" else ["INPUT"]
        src = next((a for a in n.all_input_nodes if a in owner), None)
        owner[n] = owner[src] if (b in _ALIAS_BUILTINS and src is not None) else n
    last: dict[torch.fx.Node, int] = {}
    for i, n in enumerate(order):
        for a in n.all_input_nodes:
            if a in owner:
                last[owner[a]] = i
        last.setdefault(owner[n], i)
    dies: dict[int, list[torch.fx.Node]] = {}
    for o, i in last.items():
        dies.setdefault(i, []).append(o)
    live, peak, at = 0, 0, "<model>"
    born: set[torch.fx.Node] = set()
    for i, n in enumerate(order):
        where = ctx.module_path(n) if n.op == "call_function" else "input"
        pad = explicit_pad(n) if n.op == "call_function" else None
        if pad:  # PAD runs first: its input and the padded copy are live together
            if live + pad[0] > peak:
                peak, at = live + pad[0], where
        o = owner[n]
        if o not in born:
            born.add(o)
            live += _int8_bytes(o)
        if pad:  # then the conv reads the padded copy; an input that dies here is already free
            own_in = owner.get(n.args[0])
            freed = _int8_bytes(own_in) if own_in is not None and last.get(own_in) == i else 0
            if live + pad[0] - freed > peak:
                peak, at = live + pad[0] - freed, where
        if live > peak:
            peak, at = live, where
        live -= sum(_int8_bytes(d) for d in dies.get(i, ()))
    return peak, at


def weight_bytes(module: nn.Module) -> int:
    """Modelled int8 weight size: 1 byte per element of >=2-D weights, 4 (int32) per bias element.

    BatchNorm is left out: it folds into the conv/linear before it.
    """
    total = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        tensors = list(m.parameters(recurse=False)) + [b for b in m.buffers(recurse=False) if b.dtype.is_floating_point]
        total += sum(t.numel() * (1 if t.dim() >= 2 else 4) for t in tensors)
    return total


@RULES.register("budget")
def rule_budget(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Modelled int8 arena and weight bytes against the target's board budget (data in rules/<target>.toml)."""
    budget = spec.budget
    if not budget or not ctx.exported:
        return
    sev = budget.get("severity", "warning")
    board = budget.get("board", spec.name)
    ram = budget.get("ram_bytes")
    if ram:
        peak, at = peak_activation_bytes(ctx)
        if peak > ram:
            yield Violation(spec.name, "budget", at,
                            f"modelled int8 activation peak {peak} B exceeds {board} RAM {ram} B",
                            "shrink the largest activations (fewer channels, stride/pool earlier, shorter "
                            "sequence; the broadcast attention form costs T*T*D bytes)", severity=sev)
    cache = budget.get("param_cache_bytes")
    if cache and weight_bytes(ctx.module) > cache:
        yield Violation(spec.name, "budget", "<model>",
                        f"modelled int8 weights {weight_bytes(ctx.module)} B exceed the {cache} B on-chip parameter "
                        f"cache of {board}: the rest streams from host memory on every inference",
                        "shrink the model below the cache, or accept the slower streamed weights", severity=sev)
    flash = budget.get("flash_bytes")
    if flash:
        wb = weight_bytes(ctx.module)
        if wb > flash:
            yield Violation(spec.name, "budget", "<model>",
                            f"modelled int8 weights {wb} B exceed {board} flash {flash} B",
                            "reduce channels / layers, or pick a board with more flash", severity=sev)
