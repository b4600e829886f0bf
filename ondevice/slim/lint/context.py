"""The analysed model: one ``torch.export`` graph shared by every target, with the helpers the rules read
(module paths, source lines, constant folding, lowering to TFLite builtins). The ``_`` node helpers are shared
by the modules of this package only."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from ondevice.capture import capture_fd
from ondevice.slim.lint.config import TargetSpec, _op_table


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
    with capture_fd(2):
        yield


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
