"""The constraint linter: checks a model against each target's device rules and says exactly what to change.

The per-target facts (op allowlists, rank limits, dtype policies, RAM/flash budgets) are data in
``ondevice/slim/rules/<target>.toml``; ``rules/tflite_ops.toml`` says which TFLite builtin each ATen op becomes.
The checks themselves are functions registered in ``RULES``. Everything runs on one ``torch.export`` graph
(shared by all targets), plus a scan of the ``nn.Module`` tree for things the graph hides (module types,
``num_heads`` attributes).

    report = lint(model, example_inputs, ["edgetpu", "tflm"])
    report.ok("edgetpu"); report.to_dict(); print(report.format())
    apply_fixes(model, report)          # safe module swaps only, e.g. GELU -> ReLU6
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import traceback
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn as nn

from ondevice.errors import ConfigError
from ondevice.registry import Registry

RULES_DIR = Path(__file__).parent / "rules"
ALL = "all"

# ---------------------------------------------------------------------------------------------------------------
# Report types


@dataclass(frozen=True)
class Violation:
    """One broken constraint: where it is, what is wrong, and the exact change that fixes it."""

    target: str
    rule: str
    where: str            # module path (e.g. "encoder.block1.act"), or "<model>" for whole-model findings
    message: str
    fix: str
    auto_fixable: bool = False
    severity: str = "error"   # "error" fails the target; "warning" is advice (e.g. a slower fallback kernel)
    op: str | None = None     # ATen op and/or builtin involved, e.g. "aten.bmm -> BATCH_MATMUL"
    source: str | None = None  # user source line, "model.py:42"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    """Violations per target. ``ok(target)`` is True when the target has no error-severity violation."""

    targets: list[str]
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)   # modelled int8 figures: peak_activation_bytes, weight_bytes

    def for_target(self, target: str) -> list[Violation]:
        return [v for v in self.violations if v.target == target]

    def errors(self, target: str | None = None) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error" and (target is None or v.target == target)]

    def ok(self, target: str | None = None) -> bool:
        """True if ``target`` (or every linted target when None) has no errors; warnings do not count."""
        if target is not None and target not in self.targets:
            raise ConfigError(f"target {target!r} was not linted", f"lint with targets including {target!r}")
        return not self.errors(target)

    def to_dict(self, severity: str = "error") -> dict[str, list[dict]]:
        """``{target: [violation dicts]}``, every linted target present (an empty list means clean).

        ``severity``: "error" (the constraint violations, what slim_report.json stores), "warning" (advice:
        slower fallbacks, converter PAD ops, budgets) or "all".
        """
        if severity not in ("error", "warning", "all"):
            raise ValueError(f"severity must be error, warning or all, got {severity!r}")
        return {t: [v.to_dict() for v in self.for_target(t) if severity in ("all", v.severity)]
                for t in self.targets}

    def summary(self) -> dict[str, str]:
        out = {}
        for t in self.targets:
            vs = self.for_target(t)
            n_err = sum(v.severity == "error" for v in vs)
            n_warn = len(vs) - n_err
            out[t] = "ok" if not vs else f"{n_err} error(s), {n_warn} warning(s)"
        return out

    def table(self):
        """A rich Table of every violation (one row each), for terminal output."""
        from rich.table import Table
        tab = Table(title="constraint lint", show_lines=False)
        for col in ("target", "sev", "rule", "where", "problem", "fix"):
            tab.add_column(col, overflow="fold")
        for v in self.violations:
            where = v.where + (f" ({v.source})" if v.source else "")
            tab.add_row(v.target, v.severity, v.rule, where, v.message,
                        v.fix + (" [auto: --fix]" if v.auto_fixable else ""))
        return tab

    def format(self) -> str:
        """Plain text: one block per target, one line per violation, then the fix."""
        lines = []
        for t, status in self.summary().items():
            lines.append(f"{t}: {status}")
            for v in self.for_target(t):
                src = f" ({v.source})" if v.source else ""
                auto = " [auto-fixable]" if v.auto_fixable else ""
                lines.append(f"  {v.severity:7s} {v.rule:16s} {v.where}{src}: {v.message}")
                lines.append(f"          fix: {v.fix}{auto}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Targets as data


@dataclass(frozen=True)
class TargetSpec:
    """One target's constraints, loaded from ``rules/<name>.toml``."""

    name: str
    title: str
    lowering: str                       # "tflite": ops are checked as TFLite builtins; "aten": as ATen ops
    activations: tuple[str, ...]
    static_shapes: bool
    single_head: bool
    const_fc_weights: bool
    max_non1_dims: int                  # 0 = no limit
    int8_only: bool
    int64: str                          # "error" | "warning" | "ignore"
    float64: str
    allow: frozenset[str] | None        # None = every known builtin
    float_only: frozenset[str]
    delegated: frozenset[str] | None    # aten lowering: ops the delegate takes
    not_delegated_severity: str
    deny: dict[str, str]
    fixes: dict[str, str]
    budget: dict
    limits: dict = field(default_factory=dict)   # per-op limits, e.g. fc_max_out_rank, softmax_max_elements

    @classmethod
    def from_toml(cls, path: Path) -> "TargetSpec":
        d = tomllib.loads(path.read_text())
        ops = d.get("ops", {})
        allow = ops.get("allow", "*")
        delegated = ops.get("delegated")
        return cls(
            name=d["name"], title=d.get("title", d["name"]), lowering=d.get("lowering", "tflite"),
            activations=tuple(d.get("activations", ["relu6"])), static_shapes=bool(d.get("static_shapes", True)),
            single_head=bool(d.get("single_head", False)), const_fc_weights=bool(d.get("const_fc_weights", False)),
            max_non1_dims=int(d.get("max_non1_dims", 0)), int8_only=bool(d.get("int8_only", False)),
            int64=d.get("int64", "ignore"), float64=d.get("float64", "ignore"),
            allow=None if allow == "*" else frozenset(allow), float_only=frozenset(ops.get("float_only", [])),
            delegated=None if delegated is None else frozenset(delegated),
            not_delegated_severity=ops.get("not_delegated_severity", "warning"),
            deny=dict(d.get("deny", {})), fixes=dict(d.get("fixes", {})), budget=dict(d.get("budget", {})),
            limits=dict(d.get("limits", {})))


def _check_spec(name: str, spec: TargetSpec) -> None:
    if spec.lowering not in ("tflite", "aten"):
        raise ValueError(f"lint target {name}: lowering must be 'tflite' or 'aten', got {spec.lowering!r}")
    for key in ("int64", "float64", "not_delegated_severity"):
        if getattr(spec, key) not in ("error", "warning", "ignore"):
            raise ValueError(f"lint target {name}: {key} must be error|warning|ignore")


TARGETS: Registry[TargetSpec] = Registry("lint target", check=_check_spec)
RULES: Registry[Callable[["LintContext", TargetSpec], Iterable[Violation]]] = Registry("lint rule")


@lru_cache(maxsize=1)
def _load_targets() -> Registry[TargetSpec]:
    for path in sorted(RULES_DIR.glob("*.toml")):
        if path.stem == "tflite_ops":
            continue
        spec = TargetSpec.from_toml(path)
        if spec.name != path.stem:
            raise ValueError(f"{path}: name {spec.name!r} must match the file name")
        TARGETS.register(spec.name)(spec)
    return TARGETS


@lru_cache(maxsize=1)
def _op_table() -> tuple[dict[str, list[str]], dict[str, str]]:
    d = tomllib.loads((RULES_DIR / "tflite_ops.toml").read_text())
    return d["builtins"], d.get("fixes", {})


def target_names() -> list[str]:
    """Every target with a rules file, e.g. ['coreml', 'edgetpu', 'executorch', 'mcu', 'tflite', 'tflm']."""
    return _load_targets().names()


def get_target(name: str) -> TargetSpec:
    """The constraints of one target, as loaded from rules/<name>.toml."""
    return _load_targets().get(name)


def resolve_targets(targets: Sequence[str] | str | None) -> list[str]:
    """Expand ``all`` and validate names (unknown names raise ConfigError with a suggestion)."""
    reg = _load_targets()
    if targets is None or isinstance(targets, str):
        targets = [targets or ALL]
    out: list[str] = []
    for t in targets:
        for name in (reg.names() if t == ALL else [t]):
            reg.get(name)
            if name not in out:
                out.append(name)
    if not out:
        raise ConfigError("no lint target given", f"use --target with one of: {', '.join(reg.names())}, all")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The analysed model: one export shared by every target


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    # torch.export logs whole graphs at WARNING when it fails; the lint report says it in one line instead.
    names = ["torch", "torch.export", "torch._export", "torch.fx", "torch._dynamo", "torch.fx.experimental"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lvl in saved:
            lg.setLevel(lvl)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    # TensorFlow/absl (pulled in by litert) log from C++ straight to fd 2 on import; keep lint output ours.
    if os.environ.get("ONDEVICE_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _user_frame(exc: BaseException) -> str | None:
    """The innermost traceback frame outside torch and ondevice: the user's line that broke export."""
    frames = traceback.extract_tb(exc.__traceback__)
    skip = ("/torch/", "/torch\\", "/ondevice/slim/", "site-packages", "<frozen", "contextlib.py")
    user = [f for f in frames if not any(s in f.filename for s in skip)]
    if not user:
        return None
    f = user[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.line.strip() if f.line else f.name})"


def _packet(node: torch.fx.Node) -> str | None:
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        name = t.overloadpacket.__name__
        # in-place variants (relu_, hardtanh_) lower exactly like their functional op
        return name[:-1] if name.endswith("_") and not name.endswith("__") else name
    if isinstance(t, torch._ops.HigherOrderOperator):
        return f"hop:{t.name()}"
    return None


def _val(node) -> object:
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def _shape(node) -> tuple | None:
    v = _val(node)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _is_static(shape: tuple) -> bool:
    return all(isinstance(s, int) for s in shape)


_SRC_RE = re.compile(r'File "([^"]+)", line (\d+)')


class LintContext:
    """The model under lint: its module tree, its exported graph (or why export failed), and graph helpers."""

    def __init__(self, module: nn.Module, example_inputs: tuple):
        self.module = module
        self.example_inputs = tuple(example_inputs)
        self.ep = None
        self.export_error: BaseException | None = None
        self.export_where: str | None = None
        self.nodes: list[torch.fx.Node] = []
        self.user_inputs: list[torch.fx.Node] = []
        self._const_names: set[str] = set()
        self._const_memo: dict[torch.fx.Node, bool] = {}
        self._unquantized: set[str] | None = None
        self._export()

    def _export(self) -> None:
        modes = {m: m.training for m in self.module.modules()}
        self.module.eval()  # lint what is deployed: BN in inference form, dropout off
        try:
            with _quiet_torch_logs():
                self.ep = torch.export.export(self.module, self.example_inputs, strict=False)
        except Exception as e:  # noqa: BLE001 - any export failure is a finding, never a crash
            self.export_error = e
            self.export_where = _user_frame(e)
            return
        finally:
            for m, t in modes.items():
                m.training = t
        from torch.export.graph_signature import InputKind
        sig = self.ep.graph_signature
        for spec in sig.input_specs:
            name = getattr(spec.arg, "name", None)
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR) and name:
                self._const_names.add(name)
        for n in self.ep.graph.nodes:
            self.is_const(n)  # fill the memo in topological order, so is_const never recurses deeply
            if n.op == "call_function":
                self.nodes.append(n)
            elif n.op == "placeholder" and n.name not in self._const_names and isinstance(_val(n), torch.Tensor):
                self.user_inputs.append(n)

    @property
    def exported(self) -> bool:
        return self.ep is not None

    def unquantized(self) -> set[str] | None:
        """Names of graph nodes the ondevice int8 quantizer leaves unannotated (they stay float in int8 exports).

        None when not requested (``lint(..., quant_check=True)``) or when the quantizer could not run.
        """
        return self._unquantized

    def check_quantizer(self) -> str | None:
        """Annotate a copy of the graph with ondevice's PT2E quantizer; return why it could not, if it could not."""
        self._unquantized = None
        if not self.exported:
            return None
        try:
            with _quiet_native_stderr():
                from ondevice.slim.quantizer import make_quantizer
                quantizer = make_quantizer(is_qat=False)
            gm = self.ep.module()  # a copy: annotations never touch the user's module or self.ep
            with _quiet_torch_logs():
                quantizer.annotate(gm)
        except Exception as e:  # noqa: BLE001 - the report says the check did not run; lint still finishes
            return f"int8 quantizer coverage not checked ({type(e).__name__}: {str(e)[:200]})"
        names = set()
        for n in gm.graph.nodes:
            ann = n.meta.get("quantization_annotation")
            if n.op == "call_function" and not (ann is not None and ann._annotated):
                names.add(n.name)
        self._unquantized = names
        return None

    # --- node helpers -------------------------------------------------------------------------------------
    def is_const(self, n) -> bool:
        """True if ``n`` is a weight, buffer or constant, or computed only from them (folded by converters)."""
        if not isinstance(n, torch.fx.Node):
            return True
        if n in self._const_memo:
            return self._const_memo[n]
        if n.op == "placeholder":
            r = n.name in self._const_names
        elif n.op == "get_attr":
            r = True
        elif n.op == "call_function":
            ins = [a for a in n.all_input_nodes]
            r = all(self.is_const(a) for a in ins)
        else:
            r = False
        self._const_memo[n] = r
        return r

    @staticmethod
    def module_path(node: torch.fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return "<model>"
        path = list(stack.values())[-1][0]
        return path or "<model>"

    @staticmethod
    def module_paths(node: torch.fx.Node) -> list[str]:
        return [v[0] for v in (node.meta.get("nn_module_stack") or {}).values() if v[0]]

    @staticmethod
    def module_type(node: torch.fx.Node) -> str | None:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return None
        t = list(stack.values())[-1][1]
        return t if isinstance(t, str) else getattr(t, "__qualname__", str(t))

    @staticmethod
    def source(node: torch.fx.Node) -> str | None:
        trace = node.meta.get("stack_trace") or ""
        hits = [(f, ln) for f, ln in _SRC_RE.findall(trace)
                if "/torch/" not in f and "site-packages" not in f]
        if not hits:
            return None
        f, ln = hits[-1]
        return f"{Path(f).name}:{ln}"

    # --- lowering to TFLite builtins ----------------------------------------------------------------------
    def builtins(self, node: torch.fx.Node) -> list[str] | None:
        """The TFLite builtins this ATen node becomes ([] = folded away, None = no known lowering)."""
        op = _packet(node)
        if op is None or self.is_const(node):
            return []
        a = node.args
        if op in ("conv1d", "conv2d", "convolution", "_convolution"):
            if op in ("convolution", "_convolution") and len(a) > 6 and a[6]:
                return ["TRANSPOSE_CONV"]
            groups = a[8] if op in ("convolution", "_convolution") and len(a) > 8 else (a[6] if len(a) > 6 else 1)
            w = _shape(a[1])
            if groups == 1:
                return ["CONV_2D"]
            if w is not None and w[1] == 1:
                return ["DEPTHWISE_CONV_2D"]
            return ["CONV_2D_GROUPED"]
        if op == "slice":
            step = a[4] if len(a) > 4 else 1
            return ["SLICE"] if step in (1, None) else ["STRIDED_SLICE"]
        if op == "select":
            s = _shape(a[0]) or ()
            # picking the only element of a size-1 axis is just a reshape to the converter
            return ["RESHAPE"] if len(a) > 1 and s and s[a[1]] == 1 else ["SLICE", "RESHAPE"]
        if op in ("linear", "addmm"):
            return ["FULLY_CONNECTED"]
        if op in ("matmul", "mm", "bmm", "baddbmm", "einsum"):
            if op == "einsum":
                return ["BATCH_MATMUL"]
            x, y = (a[1], a[2]) if op == "baddbmm" else (a[0], a[1])
            if self.is_const(x) or self.is_const(y):
                return ["FULLY_CONNECTED"]
            sx, sy = _shape(x) or (), _shape(y) or ()
            if max(len(sx), len(sy)) <= 2:
                return ["FULLY_CONNECTED"]  # litert: 2-D q @ k.T becomes an FC whose "weights" are variable
            return ["BATCH_MATMUL"]
        if op in ("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm"):
            prev = a[0] if isinstance(a[0], torch.fx.Node) else None
            if prev is not None and _packet(prev) in ("conv1d", "conv2d", "convolution", "linear", "addmm"):
                return []  # folded into the conv/linear weights
            return ["MUL", "ADD"]
        if op == "div":
            return ["MUL"] if self.is_const(a[1]) else ["DIV"]
        if op == "pow":
            e = a[1] if len(a) > 1 else None
            if isinstance(e, (int, float)) and not isinstance(a[0], (int, float)):
                return {2: ["MUL"], 1: [], 0.5: ["SQRT"], -0.5: ["RSQRT"]}.get(e, ["POW"])
            return ["POW"]
        if op in ("hardtanh", "clamp"):
            lo = a[1] if len(a) > 1 else (-1.0 if op == "hardtanh" else None)
            hi = a[2] if len(a) > 2 else (1.0 if op == "hardtanh" else None)
            if lo == 0 and hi == 6:
                return ["RELU6"]
            if lo == 0 and hi is None:
                return ["RELU"]
            if lo == -1 and hi == 1:
                return ["RELU_N1_TO_1"]
            return ["MAXIMUM", "MINIMUM"]
        if op in ("max", "min") and len(a) > 1 and isinstance(a[1], torch.fx.Node):
            return ["MAXIMUM" if op == "max" else "MINIMUM"]
        table, _ = _op_table()
        return table.get(op)

    def fix_for(self, builtin: str, spec: TargetSpec) -> str:
        _, common = _op_table()
        return spec.fixes.get(builtin) or common.get(builtin) or \
            f"replace this op with ops on the {spec.name} list (ondevice/slim/rules/{spec.name}.toml)"


# ---------------------------------------------------------------------------------------------------------------
# Rules. Each is f(ctx, spec) -> violations for that target.

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
    (checked against executorch 1.5's XnnpackPartitioner in tests/test_lint_tflite.py)."""
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


# ---------------------------------------------------------------------------------------------------------------
# Public API


def lint(module: nn.Module, example_inputs: Sequence | torch.Tensor,
         targets: Sequence[str] | str | None = ALL, quant_check: bool = False) -> LintReport:
    """Check ``module`` against each target's constraints; never raises for a model problem.

    ``example_inputs`` are the fixed-shape inputs (batch 1) the model is exported with; ``targets`` are names
    from ``target_names()`` or ``"all"``. Export runs once and every target reads the same graph.
    ``quant_check`` also annotates the graph with ondevice's int8 quantizer and reports ops it leaves float
    (imports litert-torch, a few seconds).
    """
    names = resolve_targets(targets)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"lint needs an nn.Module, got {type(module).__name__}",
                          "pass the model object (e.g. recipe.build())")
    ctx = LintContext(module, tuple(example_inputs))
    report = LintReport(targets=names)
    if quant_check and any(TARGETS.get(n).int8_only for n in names):
        why = ctx.check_quantizer()
        if why:
            report.notes.append(why)
    report.stats["weight_bytes"] = weight_bytes(module)
    if not ctx.exported:
        report.notes.append("torch.export failed, so only the module-tree rules ran; fix the export first")
    else:
        peak, at = peak_activation_bytes(ctx)
        report.stats.update(peak_activation_bytes=peak, peak_at=at, source="modelled")
    specs = [TARGETS.get(n) for n in names]
    for spec in specs:
        for _, rule in RULES.items():
            report.violations.extend(rule(ctx, spec))
    return report


def apply_fixes(module: nn.Module, report: LintReport) -> list[str]:
    """Apply the auto-fixable violations in place (activation module swaps to ReLU6); return what changed.

    Only parameter-free modules are swapped, so the state_dict keeps its keys; fine-tune afterwards
    (``ondevice slim --fix`` does) because the function changed.
    """
    targets: dict[int, nn.Module] = {}
    for v in report.violations:
        if not v.auto_fixable or v.rule != "activation":
            continue
        try:
            old = module.get_submodule(v.where)
        except AttributeError:
            continue
        if _act_name(old) not in (None, "relu6"):
            targets[id(old)] = old
    changed: list[str] = []
    # walk every (parent, name) edge, so a module instance registered under two names is swapped everywhere
    for path, parent in list(module.named_modules(remove_duplicate=False)):
        for attr, child in list(parent._modules.items()):
            if child is not None and id(child) in targets:
                setattr(parent, attr, nn.ReLU6(inplace=bool(getattr(child, "inplace", False))))
                changed.append(f"{path + '.' if path else ''}{attr}: {type(child).__name__} -> ReLU6")
    return changed


def reapply_fixes(module: nn.Module, changed: Sequence[str]) -> list[str]:
    """Re-apply fixes recorded by ``apply_fixes`` (e.g. from slim_report.json) to a freshly built module.

    A run built from user code with ``--fix`` must rebuild the same function before loading its weights:
    the swaps keep the state_dict keys, so a missing swap would load silently and compute something else.
    """
    done = []
    for line in changed:
        path, _, rest = line.partition(": ")
        old_name = rest.split(" -> ")[0]
        parent_path, _, attr = path.rpartition(".")
        try:
            parent = module.get_submodule(parent_path) if parent_path else module
            old = getattr(parent, attr)
        except AttributeError:
            raise ConfigError(f"cannot re-apply lint fix {line!r}: no module {path!r}",
                              "the model code changed since the run; re-run slim") from None
        if type(old).__name__ == "ReLU6":
            continue
        if type(old).__name__ != old_name:
            raise ConfigError(f"cannot re-apply lint fix {line!r}: {path} is a {type(old).__name__}",
                              "the model code changed since the run; re-run slim")
        setattr(parent, attr, nn.ReLU6(inplace=bool(getattr(old, "inplace", False))))
        done.append(line)
    return done


def _load_model(recipe: str | None, model: str | None) -> tuple[nn.Module, tuple, str]:
    if recipe and model:
        raise ConfigError("give either --recipe or --model, not both", "lint one model at a time")
    if model:
        from ondevice.slim.usermodel import load_user_model
        um = load_user_model(model)
        if um.default_inputs:
            from ondevice import log
            log.info(f"{um.name}: no example_inputs given; linting with the feature input shape "
                     f"{list(um.example_inputs[0].shape)}")
        return um.module, um.example_inputs, um.name
    from ondevice.models import get_recipe
    r = get_recipe(recipe or "mitsis")
    return r.build(**r.arch), tuple(r.example_inputs()), r.name


def lint_cli(recipe: str | None = None, model: str | None = None, targets: Sequence[str] = (ALL,),
             fix: bool = False, out: Path | None = None) -> bool:
    """What ``ondevice lint`` does: load, lint, optionally fix and re-lint, print, write JSON. True if clean."""
    from ondevice import log
    from ondevice.fsutil import write_json_atomic

    module, example_inputs, name = _load_model(recipe, model)
    report = lint(module, example_inputs, list(targets) or [ALL], quant_check=True)
    changed: list[str] = []
    if fix:
        changed = apply_fixes(module, report)
        for c in changed:
            log.info(f"fixed: {c}")
        if changed:
            log.info("the swap is in memory only: `ondevice slim --fix` applies it and fine-tunes; "
                     "edit your source to keep it")
            report = lint(module, example_inputs, report.targets, quant_check=True)
    if report.violations and log.out.is_terminal:
        log.out.print(report.table())
        for t, status in report.summary().items():
            log.out.print(f"{t}: {status}")
    else:  # pipes and CI logs get the plain text form
        log.out.print(report.format(), markup=False, highlight=False, soft_wrap=True)
    st = report.stats
    if "peak_activation_bytes" in st:
        log.info(f"modelled int8: activations peak {st['peak_activation_bytes'] / 1024:.1f} KiB at {st['peak_at']}, "
                 f"weights {st['weight_bytes'] / 1024:.1f} KiB (an estimate; the exporters measure the real arena)")
    for n in report.notes if log.out.is_terminal else ():  # format() already printed them
        log.warn(n)
    if out is not None:
        write_json_atomic(out, {"model": name, "targets": report.targets,
                                "ok": {t: report.ok(t) for t in report.targets}, "fixed": changed,
                                "stats": report.stats, "notes": report.notes, "constraints": report.to_dict(),
                                "warnings": report.to_dict("warning")})
        log.info(f"wrote {out}")
    return report.ok()
