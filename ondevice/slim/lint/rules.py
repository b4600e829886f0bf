"""Rules on the module tree and the graph's structure: activations, dynamic shapes, multi-head attention.
Each rule is f(ctx, spec) -> violations for that target, registered in ``RULES``."""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import torch
import torch.nn as nn

from ondevice.slim.lint.config import RULES, TargetSpec
from ondevice.slim.lint.context import LintContext, _is_static, _packet, _shape
from ondevice.slim.lint.report import Violation


# Activation module classes -> canonical names (also the ATen op names of their functional forms).
_ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.SiLU: "silu", nn.Hardswish: "hardswish",
    nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.CELU: "celu", nn.SELU: "selu", nn.Mish: "mish",
    nn.Softplus: "softplus", nn.PReLU: "prelu", nn.Hardtanh: "hardtanh", nn.Hardsigmoid: "hardsigmoid",
    nn.RReLU: "rrelu",
}
# Swapping these for ReLU6 keeps the state_dict unchanged (no parameters), so the slim fine-tune can recover.
_AUTO_FIX = {"relu", "gelu", "silu", "hardswish", "leaky_relu", "elu", "celu", "selu", "mish", "softplus",
             "hardtanh", "rrelu"}
_ACT_OPS = set(_ACT_MODULES.values()) | {"relu_", "hardtanh_", "leaky_relu_", "elu_"}
_ACT_QUALNAMES = {c.__module__ + "." + c.__qualname__ for c in _ACT_MODULES} | {c.__qualname__ for c in _ACT_MODULES}


def _act_name(m: nn.Module) -> str | None:
    name = _ACT_MODULES.get(type(m))
    if name == "hardtanh" and type(m) is nn.Hardtanh and (m.min_val, m.max_val) == (0.0, 6.0):
        return "relu6"
    return name


def _graph_act(node: torch.fx.Node) -> str | None:
    op = _packet(node)
    if op is None:
        return None
    op = op.rstrip("_")
    if op not in _ACT_OPS:
        return None
    if op in ("hardtanh",):
        a = node.args
        lo, hi = (a[1] if len(a) > 1 else -1.0), (a[2] if len(a) > 2 else 1.0)
        if (lo, hi) == (0.0, 6.0):
            return "relu6"
    return op


@RULES.register("activation")
def rule_activation(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Activations other than the target's allowed set (module tree, then functional calls in the graph)."""
    allowed = set(spec.activations)
    want = " / ".join(f"nn.{'ReLU6' if a == 'relu6' else a}" for a in spec.activations)
    for path, m in ctx.module.named_modules():
        name = _act_name(m)
        if name is None or name in allowed:
            continue
        auto = name in _AUTO_FIX and path != ""
        yield Violation(spec.name, "activation", path or "<model>",
                        f"{type(m).__name__} is not {want}: int8 targets clamp a bounded [0, 6] range into "
                        f"the conv/FC output, other activations cost extra ops or stay in float",
                        f"replace {path or 'the model'} = {type(m).__name__}(...) with nn.ReLU6()", auto,
                        op=f"nn.{type(m).__name__}")
    if not ctx.exported:
        return
    for node in ctx.nodes:
        name = _graph_act(node)
        if name is None or name in allowed:
            continue
        mtype = ctx.module_type(node) or ""
        if mtype in _ACT_QUALNAMES or mtype.rsplit(".", 1)[-1] in {c.__name__ for c in _ACT_MODULES}:
            continue  # already reported from the module tree
        src = ctx.source(node)
        yield Violation(spec.name, "activation", ctx.module_path(node),
                        f"functional {name} call (node {node.name}) is not {want}",
                        f"replace F.{name}(...) {('at ' + src) if src else ''} with F.relu6(...) or an "
                        f"nn.ReLU6 module (modules are fixed automatically by --fix)".replace("  ", " "),
                        False, op=f"aten.{name}", source=src)


_DYN_FIX = ("make every shape fixed: no Python if/while on tensor values, no boolean-mask indexing, "
            "no .item()/.tolist()/nonzero(); use arithmetic masks (x * mask) and fixed-size slices")


@RULES.register("dynamic-shape")
def rule_dynamic(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Export failure (data-dependent control flow) or symbolic shapes in the exported graph."""
    if ctx.export_error is not None:  # every target needs an exportable graph
        e = ctx.export_error
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        data_dep = any(s in f"{type(e).__name__} {e}" for s in
                       ("DataDependent", "data-dependent", "GuardOnDataDependentSymNode", "Dynamic control flow"))
        yield Violation(spec.name, "dynamic-shape" if data_dep else "export", "<model>",
                        f"torch.export failed ({type(e).__name__}: {first}); graph rules were skipped",
                        _DYN_FIX if data_dep else "make the model exportable with torch.export.export(model, "
                        "example_inputs, strict=False); fix the line named here",
                        source=ctx.export_where)
        return
    if not spec.static_shapes:
        return
    seen: set[str] = set()
    for node in ctx.nodes:
        op = _packet(node)
        if op and op.startswith("hop:"):
            key = ctx.module_path(node) + op
            if key not in seen:
                seen.add(key)
                yield Violation(spec.name, "dynamic-shape", ctx.module_path(node),
                                f"data-dependent control flow ({op[4:]}) in the graph", _DYN_FIX, op=op,
                                source=ctx.source(node))
            continue
        shape = _shape(node)
        if shape is not None and not _is_static(shape):
            key = ctx.module_path(node)
            if key in seen:
                continue
            seen.add(key)
            yield Violation(spec.name, "dynamic-shape", key,
                            f"node {node.name} (aten.{op}) has a data-dependent shape {list(map(str, shape))}",
                            _DYN_FIX, op=f"aten.{op}", source=ctx.source(node))


_HEAD_ATTRS = ("num_heads", "n_heads", "n_head", "nhead", "heads")


@RULES.register("multi-head")
def rule_multihead(ctx: LintContext, spec: TargetSpec) -> Iterator[Violation]:
    """Multi-head attention: module attributes, then batched matmuls over a heads axis in the graph."""
    if not spec.single_head:
        return
    flagged: list[str] = []
    for path, m in ctx.module.named_modules():
        heads = next((getattr(m, a) for a in _HEAD_ATTRS if isinstance(getattr(m, a, None), int)), None)
        if heads is not None and heads > 1 and not any(path.startswith(f + ".") for f in flagged):
            flagged.append(path)
            yield Violation(spec.name, "multi-head", path or "<model>",
                            f"{type(m).__name__} has {heads} heads: per-head score products become "
                            f"BATCH_MATMUL, which {spec.title} does not map",
                            f"use a single head (num_heads=1) in {path or 'the model'}, and write the scores "
                            f"as a broadcast MUL + SUM", op=type(m).__name__)
    if not ctx.exported:
        return
    for node in ctx.nodes:
        op = _packet(node)
        if op not in ("matmul", "bmm", "baddbmm", "scaled_dot_product_attention"):
            continue
        paths = ctx.module_paths(node)
        if ctx.module_path(node) in flagged or any(p == f or p.startswith(f + ".") for p in paths
                                                    for f in flagged if f):
            continue  # one finding per module
        if op == "scaled_dot_product_attention":
            s = _shape(node.args[0]) or ()
            heads = s[-3] if len(s) >= 3 else 1
        else:
            x, y = (node.args[1], node.args[2]) if op == "baddbmm" else (node.args[0], node.args[1])
            if ctx.is_const(x) or ctx.is_const(y):
                continue
            s = _shape(node) or ()
            heads = math.prod(d for d in s[:-2] if isinstance(d, int)) if len(s) > 2 else 1
        if heads > 1:
            where = ctx.module_path(node)
            flagged.append(where)
            yield Violation(spec.name, "multi-head", where,
                            f"aten.{op} (node {node.name}) multiplies two activations over {heads} heads "
                            f"(shape {list(_shape(node) or ())})",
                            "use a single head: keep q, k, v 2-D [T, D] and write the scores as "
                            "(q.unsqueeze(1) * k).sum(-1)", op=f"aten.{op}", source=ctx.source(node))


def _group(ctx: LintContext, items: Iterable[tuple[torch.fx.Node, str]]) -> dict[tuple[str, str], list]:
    """Group (node, key) findings by (module path, key) so one layer gives one line, not one per node."""
    groups: dict[tuple[str, str], list] = {}
    for node, key in items:
        groups.setdefault((ctx.module_path(node), key), []).append(node)
    return groups


def _names(nodes: list) -> str:
    names = [n.name for n in nodes]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
