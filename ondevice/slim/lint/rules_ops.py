"""Rules on the ops a target runs: allowlists, int8 coverage, constant weights, ranks, per-op limits, padding
and dtypes. Each rule is f(ctx, spec) -> violations for that target, registered in ``RULES``."""
from __future__ import annotations

import math
from typing import Iterator

import torch

from ondevice.slim.lint.config import RULES, TargetSpec
from ondevice.slim.lint.context import LintContext, _is_static, _packet, _shape, _val
from ondevice.slim.lint.memory import explicit_pad
from ondevice.slim.lint.report import Violation
from ondevice.slim.lint.rules import _ACT_OPS, _graph_act, _group, _names


@RULES.register("op-allowlist")
def rule_ops(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Ops outside the target's list: as TFLite builtins (tflite/edgetpu/tflm/mcu) or ATen ops (executorch)."""
    if not ctx.exported:
        return
    denied, refused, unknown, float_only, portable = [], [], [], [], []
    for node in ctx.nodes:
        op = _packet(node)
        if op is None or op.startswith("hop:") or ctx.is_const(node):
            continue
        if op in spec.deny:
            denied.append((node, op))
            continue
        if op.rstrip("_") in _ACT_OPS and _graph_act(node) not in spec.activations:
            continue  # the activation rule already names it, with its fix
        if spec.lowering == "aten":
            if spec.delegated is not None and ctx.builtins(node) != [] and not _delegated(ctx, node, op, spec):
                portable.append((node, op))
            continue
        bs = ctx.builtins(node)
        if bs is None:
            unknown.append((node, op))
            continue
        bad = [b for b in dict.fromkeys(bs) if spec.allow is not None and b not in spec.allow]
        flt = [b for b in dict.fromkeys(bs) if b not in bad and spec.int8_only and b in spec.float_only]
        if bad:
            refused.append((node, f"{op}|{','.join(bad)}"))
        if flt:
            float_only.append((node, f"{op}|{','.join(flt)}"))
    for (where, op), nodes in _group(ctx, denied).items():
        yield Violation(spec.name, "op-allowlist", where, f"aten.{op} ({_names(nodes)}) is refused",
                        spec.deny[op], op=f"aten.{op}", source=ctx.source(nodes[0]))
    for (where, key), nodes in _group(ctx, refused).items():
        op, b = key.split("|")
        yield Violation(spec.name, "op-allowlist", where,
                        f"aten.{op} ({_names(nodes)}) becomes {b.replace(',', ' + ')}, which {spec.title} "
                        f"does not support", ctx.fix_for(b.split(",")[0], spec), op=f"aten.{op} -> {b}",
                        source=ctx.source(nodes[0]))
    for (where, op), nodes in _group(ctx, unknown).items():
        yield Violation(spec.name, "op-allowlist", where,
                        f"aten.{op} ({_names(nodes)}) has no known TFLite lowering",
                        f"rewrite aten.{op} with common ops (conv, linear, add, mul, mean, softmax, reshape), "
                        f"or add its lowering to ondevice/slim/rules/tflite_ops.toml",
                        op=f"aten.{op}", source=ctx.source(nodes[0]))
    for (where, key), nodes in _group(ctx, float_only).items():
        op, b = key.split("|")
        yield Violation(spec.name, "float-op", where,
                        f"aten.{op} ({_names(nodes)}) becomes {b.replace(',', ' + ')}, which has no int8 kernel: "
                        f"it stays in float with QUANTIZE/DEQUANTIZE around it", ctx.fix_for(b.split(",")[0], spec),
                        op=f"aten.{op} -> {b}", source=ctx.source(nodes[0]))
    for (where, op), nodes in _group(ctx, portable).items():
        yield Violation(spec.name, "op-allowlist", where,
                        f"aten.{op} ({_names(nodes)}) is not delegated; it runs on the slower portable kernels",
                        "express it with delegated ops (conv, linear, add, mul, 4-D mean over H,W with keepdim, "
                        "softmax, permute, cat)", severity=spec.not_delegated_severity,
                        op=f"aten.{op}", source=ctx.source(nodes[0]))


def _delegated(ctx: LintContext, node: torch.fx.Node, op: str, spec: TargetSpec) -> bool:
    """Whether the delegate takes this node: the list in rules/<target>.toml plus XNNPACK's argument conditions
    (checked against executorch 1.5's XnnpackPartitioner in tests/test_lint_backends.py)."""
    if op == "unsqueeze" and "val" in node.meta:
        return True  # `ondevice export` rewrites a static unsqueeze as a reshape (executorch.unsqueeze_to_reshape)
    if op not in spec.delegated:
        return False
    a = node.args
    if op == "mean":
        return _xnn_mean(node)
    if op == "pow":  # only x**2 (as a square)
        return len(a) > 1 and a[1] == 2
    if op in ("mm", "matmul", "linear"):  # a GEMM needs constant weights; two activations stay portable
        return ctx.is_const(a[1])
    if op == "slice":
        return (a[4] if len(a) > 4 else 1) in (1, None)
    return True


def _xnn_mean(node: torch.fx.Node) -> bool:
    # XNNPACK takes only a 4-D mean over the two innermost dims with keepdim (PROBE_NOTES).
    s = _shape(node.args[0]) or ()
    dims = node.args[1] if len(node.args) > 1 else None
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if len(s) != 4 or not isinstance(dims, (list, tuple)) or not keep:
        return False
    return sorted(d % 4 for d in dims) == [2, 3]


def _through_folded(ctx: LintContext, node: torch.fx.Node) -> torch.fx.Node:
    # BN after conv, dropout, clone...: the quantizer sees past them, so look past them too
    while isinstance(node, torch.fx.Node) and node.op == "call_function" and ctx.builtins(node) == [] \
            and node.all_input_nodes and not ctx.is_const(node):
        node = node.all_input_nodes[0]
    return node


def _float_node(n) -> bool:
    v = _val(n)
    return isinstance(v, torch.Tensor) and v.dtype.is_floating_point


@RULES.register("int8-coverage")
def rule_int8_coverage(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Ops the ondevice int8 quantizer leaves unannotated where the converter cannot recover int8.

    Measured with the real pipeline (tests/test_lint_backends.py): an unannotated single op between
    quantized neighbours still becomes int8 (the converter fuses DEQUANTIZE -> op -> QUANTIZE), so only these
    stay float: ops that lower to several builtins (their inner tensors get no scale), and ops whose float
    input or output edge touches no quantized neighbour (a weight, a graph input, another unannotated op).
    """
    missing = ctx.unquantized()
    if not spec.int8_only or not missing:
        return
    found = []
    for node in ctx.nodes:
        op = _packet(node)
        if node.name not in missing or op is None or ctx.is_const(node) or not _float_node(node):
            continue  # only float activations get int8 scales; masks and indices stay as they are
        bs = ctx.builtins(node)
        if not bs or set(bs) <= {"RESHAPE"}:
            continue  # folded away (BN after conv, dropout) or a pure reshape: nothing to quantize
        if op in _ACT_OPS and _graph_act(node) not in spec.activations:
            continue  # the activation rule names it
        if any((spec.allow is not None and b not in spec.allow) or b in spec.float_only for b in bs):
            continue  # already refused by the op list
        composite = len([b for b in bs if b != "RESHAPE"]) > 1
        ins = [_through_folded(ctx, a) for a in node.all_input_nodes if _float_node(a)]
        bare_in = any(a.op != "call_function" or ctx.is_const(a) or a.name in missing for a in ins)
        users = [u for u in node.users if u.op == "call_function" and _float_node(u)]
        bare_out = any(u.name in missing and ctx.builtins(u) != [] for u in users)
        if composite or bare_in or bare_out:
            found.append((node, op))
    for (where, op), nodes in _group(ctx, found).items():
        yield Violation(spec.name, "int8-coverage", where,
                        f"aten.{op} ({_names(nodes)}) is not annotated by the ondevice int8 quantizer and has no "
                        f"quantized neighbour to borrow scales from, so it stays float (DEQUANTIZE/QUANTIZE "
                        f"around it) in the {spec.title} export",
                        f"rewrite it with quantized ops (conv, linear, add, mul, mean, sum, softmax, cat, ReLU6, "
                        f"reshape/permute), or annotate aten.{op} in ondevice/slim/quantizer.py",
                        op=f"aten.{op}", source=ctx.source(nodes[0]))


@RULES.register("fc-weights")
def rule_fc_weights(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """FC or conv whose weights are an activation (e.g. single-head q @ k.T) on const-weight targets."""
    if not spec.const_fc_weights or not ctx.exported:
        return
    found, conv = [], []
    for node in ctx.nodes:
        op = _packet(node)
        if op == "linear" and not ctx.is_const(node.args[1]):
            found.append((node, op))
        elif op in ("matmul", "mm") and ctx.builtins(node) == ["FULLY_CONNECTED"] \
                and not ctx.is_const(node.args[0]) and not ctx.is_const(node.args[1]):
            found.append((node, op))
        elif op in ("conv1d", "conv2d", "convolution", "conv_transpose1d", "conv_transpose2d") \
                and not ctx.is_const(node.args[1]):
            conv.append((node, op))
    for (where, op), nodes in _group(ctx, found).items():
        yield Violation(spec.name, "fc-weights", where,
                        f"aten.{op} ({_names(nodes)}) multiplies two activations: it becomes a FULLY_CONNECTED "
                        f"with variable weights, and {spec.title} needs constant FC weights",
                        "write the product as a broadcast MUL + SUM, e.g. scores = (q.unsqueeze(1) * k).sum(-1), "
                        "and out = (p.unsqueeze(1) * v.T).sum(-1)", op=f"aten.{op} -> FULLY_CONNECTED",
                        source=ctx.source(nodes[0]))
    for (where, op), nodes in _group(ctx, conv).items():
        yield Violation(spec.name, "fc-weights", where,
                        f"aten.{op} ({_names(nodes)}) uses a computed (non-constant) filter; {spec.title} needs "
                        f"constant conv weights", "make the filter an nn.Parameter of an nn.Conv layer",
                        op=f"aten.{op}", source=ctx.source(nodes[0]))


@RULES.register("tensor-rank")
def rule_rank(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Tensors with more dimensions larger than 1 than the target handles (Edge TPU: 3)."""
    if spec.max_non1_dims <= 0 or not ctx.exported:
        return
    found = []
    for node in ctx.user_inputs + ctx.nodes:
        shape = _shape(node)
        if shape is None or not _is_static(shape) or (node.op == "call_function" and ctx.is_const(node)):
            continue
        if node.op == "call_function" and ctx.builtins(node) == []:
            continue  # folded away, never materialised
        big = [d for d in shape if d > 1]
        if len(big) > spec.max_non1_dims:
            found.append((node, str(list(shape))))
    for (where, shape), nodes in _group(ctx, found).items():
        yield Violation(spec.name, "tensor-rank", where,
                        f"tensor {shape} ({_names(nodes)}) has {sum(d > 1 for d in _shape(nodes[0]))} dims "
                        f"larger than 1; "
                        f"{spec.title} allows at most {spec.max_non1_dims}",
                        f"keep batch 1 and fold axes together (e.g. reshape [1,H,T,D] to [H*T,D], or use one head) "
                        f"so at most {spec.max_non1_dims} dims exceed 1",
                        op=f"aten.{_packet(nodes[0]) or 'input'}", source=ctx.source(nodes[0]))


@RULES.register("op-limits")
def rule_op_limits(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Documented per-op limits of a target (rules/<target>.toml [limits]): FC output rank, slice strides,
    softmax size."""
    lim = spec.limits
    if not lim or not ctx.exported:
        return
    fc_rank, unit_stride = lim.get("fc_max_out_rank"), lim.get("strided_slice_unit_stride", False)
    sm_max = lim.get("softmax_max_elements")
    no_batch_reduce = lim.get("no_batch_reduction", False)
    found: list[tuple[torch.fx.Node, str]] = []
    for node in ctx.nodes:
        op = _packet(node)
        if ctx.is_const(node) or op is None:
            continue
        if fc_rank and ctx.builtins(node) == ["FULLY_CONNECTED"]:
            s = _shape(node) or ()
            if len(s) > fc_rank:
                found.append((node, "fc"))
        elif unit_stride and op == "slice" and len(node.args) > 4 and node.args[4] not in (1, None):
            found.append((node, "stride"))
        elif no_batch_reduce and op in ("mean", "sum", "amax", "amin") and len(node.args) > 1:
            s = _shape(node.args[0]) or ()
            dims = node.args[1] if isinstance(node.args[1], (list, tuple)) else [node.args[1]]
            if s and s[0] != 1 and any(isinstance(d, int) and d % len(s) == 0 for d in dims):
                found.append((node, "batch"))
        elif sm_max and op in ("softmax", "_softmax", "log_softmax"):
            s = _shape(node) or ()
            if _is_static(s) and math.prod(s) > sm_max:
                found.append((node, "softmax"))
    for (where, kind), nodes in _group(ctx, found).items():
        n0, src = nodes[0], ctx.source(nodes[0])
        if kind == "fc":
            yield Violation(spec.name, "op-limits", where,
                            f"aten.{_packet(n0)} ({_names(nodes)}) gives a rank-{len(_shape(n0))} FULLY_CONNECTED "
                            f"output {list(_shape(n0))}; {spec.title} maps FC outputs of at most {fc_rank} dims",
                            "reshape the input to 2-D ([T, D] or [1, D]) before the nn.Linear and reshape back "
                            "after it", op=f"aten.{_packet(n0)} -> FULLY_CONNECTED", source=src)
        elif kind == "stride":
            yield Violation(spec.name, "op-limits", where,
                            f"slice with step {n0.args[4]} ({_names(nodes)}) becomes a STRIDED_SLICE with stride != 1, "
                            f"which {spec.title} does not map",
                            "slice contiguous ranges, or downsample with a strided conv / pooling", op="aten.slice",
                            source=src)
        elif kind == "batch":
            yield Violation(spec.name, "op-limits", where,
                            f"aten.{_packet(n0)} ({_names(nodes)}) reduces over dim 0 of {list(_shape(n0.args[0]))}, "
                            f"which TFLite treats as the batch axis; {spec.title} does not reduce along it",
                            "transpose so the reduced axis is not first (e.g. x.T.mean(-1)), or reduce with a "
                            "constant all-ones nn.Linear", op=f"aten.{_packet(n0)}", source=src)
        else:
            yield Violation(spec.name, "op-limits", where,
                            f"softmax over {math.prod(_shape(n0))} elements ({_names(nodes)}) exceeds "
                            f"{spec.title}'s {sm_max}", "shorten the sequence or split the softmax",
                            op=f"aten.{_packet(n0)} -> SOFTMAX", source=src)


@RULES.register("padding")
def rule_padding(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Conv padding that is neither VALID nor TFLite SAME: the converter adds a PAD op and a padded copy."""
    if spec.lowering != "tflite" or not ctx.exported:
        return
    found = [(n, "pad") for n in ctx.nodes if explicit_pad(n)]
    for (where, _), nodes in _group(ctx, found).items():
        nbytes, shape = explicit_pad(nodes[0])
        yield Violation(spec.name, "padding", where,
                        f"conv ({_names(nodes)}) pads symmetrically where TFLite SAME padding would not, so the "
                        f"converter inserts a PAD op and a {list(shape)} copy ({nbytes} B of int8 RAM)",
                        "choose input sizes, kernel and stride so that padding=k//2 equals SAME padding (e.g. an "
                        "odd input size for stride 2), or use padding=0", severity="warning",
                        op="aten.conv2d -> PAD + CONV_2D", source=ctx.source(nodes[0]))


_INDEX_USES = {"embedding": {1}, "index": {1}, "index_select": {2}, "gather": {2}, "embedding_bag": {1, 2}}


def _only_index_uses(node: torch.fx.Node) -> bool:
    for u in node.users:
        op = _packet(u)
        if op not in _INDEX_USES:
            return False
        pos = {i for i, a in enumerate(u.args) if a is node or (isinstance(a, (list, tuple)) and node in a)}
        if not pos or not pos <= _INDEX_USES[op]:
            return False
    return bool(node.users)


@RULES.register("dtype")
def rule_dtype(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """int64 tensors that are not indices (MCU targets have no int64 kernels) and float64 tensors."""
    if not ctx.exported:
        return
    found = []
    for node in ctx.user_inputs + ctx.nodes:
        v = _val(node)
        if not isinstance(v, torch.Tensor) or (node.op == "call_function" and ctx.is_const(node)):
            continue
        if v.dtype == torch.int64 and spec.int64 != "ignore" and not _only_index_uses(node):
            found.append((node, "int64"))
        elif v.dtype == torch.float64 and spec.float64 != "ignore":
            found.append((node, "float64"))
    fixes = {"int64": "keep integer values in int32 (x.to(torch.int32)) or compute them on the host; only "
                      "embedding/gather indices may be integers",
             "float64": "use float32 (model.float(), torch.tensor(..., dtype=torch.float32))"}
    for (where, dt), nodes in _group(ctx, found).items():
        sev = spec.int64 if dt == "int64" else spec.float64
        yield Violation(spec.name, "dtype", where,
                        f"{dt} tensor ({_names(nodes)}) from aten.{_packet(nodes[0]) or 'input'}: {spec.title} "
                        f"has no {dt} kernels", fixes[dt], severity=sev, op=f"aten.{_packet(nodes[0]) or 'input'}",
                        source=ctx.source(nodes[0]))
