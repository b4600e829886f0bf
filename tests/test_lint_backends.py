"""The lint's view of each backend agrees with the real converters.

One small zoo model is linted, converted by litert-torch and lowered by ExecuTorch's XnnpackPartitioner; the
predicted TFLite builtins and the predicted non-delegated ops must equal what the tools really produce, so an
upgrade that changes a lowering shows up here instead of as a wrong lint report.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ondevice.slim.lint import LintContext, explicit_pad, lint
from tests.test_lint import XA, BroadcastAttention


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.fc = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.emb = nn.Embedding(10, 8)

    def forward(self, img, x, ids):
        y = F.max_pool2d(self.dw(self.conv(img)), 2)                 # CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D
        y = F.avg_pool2d(y, 2).flatten(1)                            # AVERAGE_POOL_2D, RESHAPE
        h = self.ln(self.fc(x))                                      # FULLY_CONNECTED + the LayerNorm chain
        g = F.gelu(h) + torch.sigmoid(h) * torch.tanh(h)             # GELU, LOGISTIC, TANH, MUL, ADD
        s = F.softmax(h @ x.T, dim=-1)                               # FC (variable weights), SOFTMAX
        d = x / (x.abs() + 1.0) - torch.pow(x, 3)                    # DIV, ABS, POW, SUB
        w = torch.where(x > 0, x, 0.1 * x)[:, ::2]                   # GREATER, SELECT, STRIDED_SLICE
        e = self.emb(ids)[0]                                         # EMBEDDING_LOOKUP, SLICE
        c = torch.cat([e, g], 0).permute(1, 0).amax(-1)             # CONCATENATION, TRANSPOSE, REDUCE_MAX
        return y, s, d, w, c, F.hardswish(x).mean(-1), x.sum(-1)     # HARD_SWISH, MEAN, SUM


class ZooET(Zoo):
    """Zoo plus the XNNPACK argument conditions: 4-D keepdim mean vs last-dim mean, expand, and an unsqueeze
    (delegated once the exporter has rewritten it as a reshape)."""

    def forward(self, img, x, ids):
        out = super().forward(img, x, ids)
        return out + (img.mean((2, 3), keepdim=True), x.unsqueeze(0).expand(3, 5, 8) * 2, x[1:3] * 2)


def _converted_ops(module, example) -> set[str]:
    import litert_torch

    from ondevice.export.tflite_util import op_counts
    from ondevice.mcu.reader import read_graph
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        path = Path(d) / "zoo.tflite"
        litert_torch.convert(module.eval(), example).export(str(path))
        data = path.read_bytes()
    return set(op_counts(read_graph(data)))


def _predicted_ops(module, example) -> set[str]:
    ctx = LintContext(module, example)
    out: set[str] = set()
    for node in ctx.nodes:
        bs = ctx.builtins(node)
        assert bs is not None, f"no lowering for {node.target}"
        out.update(bs)
    return out


def test_op_table_matches_litert():
    torch.manual_seed(0)
    example = (torch.randn(1, 2, 8, 8), torch.randn(5, 8), torch.randint(0, 10, (1, 5)))
    model = Zoo().eval()
    predicted, actual = _predicted_ops(model, example), _converted_ops(model, example)
    assert predicted == actual, f"lint predicts {sorted(predicted - actual)} too many, " \
                                f"misses {sorted(actual - predicted)}"


def test_edgetpu_attention_converts_to_listed_ops_only():
    model = BroadcastAttention().eval()
    actual = _converted_ops(model, XA)
    assert "BATCH_MATMUL" not in actual and actual <= _predicted_ops(model, XA)
    assert lint(model, XA, ["edgetpu"]).ok("edgetpu")


def _not_delegated(module, example) -> set[str]:
    import re

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower
    from ondevice.export.executorch import unsqueeze_to_reshape
    gm = torch.export.export(module.eval(), example, strict=False).module()
    unsqueeze_to_reshape(gm)  # what `ondevice export` lowers, and so what the lint predicts for
    ep = torch.export.export(gm, example, strict=False)
    lowered = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    df = get_delegation_info(lowered.exported_program().graph_module).get_operator_delegation_dataframe()
    names = set()
    for op, n in zip(df["op_type"], df["occurrences_in_non_delegated_graphs"]):
        if n and op.startswith("aten_"):
            # edge dialect names: aten_<op>[_copy]_<overload>; the lint speaks pre-edge ATen
            base = re.sub(r"_(default|tensor|dim|int|scalar|self|dim_int_list|tensor_scalar)$", "", op[5:])
            names.add({"native_layer_norm": "layer_norm", "mm": "matmul"}.get(base.removesuffix("_copy"),
                                                                               base.removesuffix("_copy")))
    return names


def test_delegation_matches_xnnpack_partitioner():
    torch.manual_seed(0)
    example = (torch.randn(1, 2, 8, 8), torch.randn(5, 8), torch.randint(0, 10, (1, 5)))
    model = ZooET().eval()
    report = lint(model, example, ["executorch"])
    predicted = {v.op.removeprefix("aten.") for v in report.violations if v.rule == "op-allowlist"}
    assert predicted == _not_delegated(model, example)


class Islands(nn.Module):
    """Unannotated ops in the three situations the int8-coverage rule tells apart (one submodule each)."""

    class Sandwich(nn.Module):  # single ops between quantized neighbours: the converter makes them int8
        def forward(self, h):
            h = torch.tanh(h) * 1.0
            h = (h / (h.abs() + 1.0)) * 1.0
            return h.T.reshape(5, 8) + 0.0

    class Norm(nn.Module):  # a composite op: its inner tensors have no scales
        def __init__(self):
            super().__init__()
            self.ln = nn.LayerNorm(8)

        def forward(self, h):
            return self.ln(h) * 1.0

    class Chain(nn.Module):  # two unannotated ops back to back: no QUANTIZE between them
        def forward(self, h):
            return torch.tanh(torch.abs(h)) * 1.0

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.sandwich, self.norm, self.chain = self.Sandwich(), self.Norm(), self.Chain()
        self.emb = nn.Embedding(10, 8)  # a float weight table feeding an unannotated op

    def forward(self, x, ids):
        h = self.sandwich(self.a(x))
        h = self.chain(self.norm(self.b(h)))
        return self.b(h + self.emb(ids)[0])


def _int8_tflite(module, example) -> bytes:
    """The real ondevice int8 TFLite export of ``module`` (PTQ with the project quantizer, then litert-torch)."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ondevice.slim.quantizer import make_quantizer
    q = make_quantizer(is_qat=False)
    prepared = prepare_pt2e(torch.export.export(module.eval(), example, strict=False).module(), q)
    prepared(*example)
    converted = convert_pt2e(prepared, fold_quantize=False)
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        path = Path(d) / "model.tflite"
        litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
        return path.read_bytes()


def _int8_float_ops(module, example) -> set[str]:
    """Builtins touching a float tensor in the real int8 export."""
    from ondevice.export.tflite_util import float_tensors
    from ondevice.mcu.reader import read_graph
    graph = read_graph(_int8_tflite(module, example))
    bad = {t.index for t in float_tensors(graph)}
    return {op.opcode for op in graph.ops if bad & set(op.inputs + op.outputs)}


def test_int8_coverage_matches_the_real_int8_export():
    torch.manual_seed(0)
    example = (torch.randn(5, 8), torch.randint(0, 10, (1, 5)))
    model = Islands().eval()
    report = lint(model, example, ["tflite"], quant_check=True)
    flagged = {(v.where, v.op) for v in report.violations if v.rule == "int8-coverage"}
    assert flagged == {("norm.ln", "aten.layer_norm"), ("chain", "aten.abs"), ("chain", "aten.tanh"),
                       ("emb", "aten.embedding")}, report.format()
    ctx = LintContext(model, example)
    ctx.check_quantizer()
    sandwiched = {n.name for n in ctx.nodes if ctx.module_path(n) == "sandwich"
                  and n.target.overloadpacket.__name__ in ("tanh", "div", "abs", "numpy_T")}
    assert len(sandwiched) == 4 and sandwiched <= ctx.unquantized()  # unannotated, yet int8 after conversion
    predicted = {b for n in ctx.nodes if (ctx.module_path(n), f"aten.{n.target.overloadpacket.__name__}")
                 in flagged for b in ctx.builtins(n)} - {"RESHAPE"}
    actual = _int8_float_ops(model, example) - {"QUANTIZE", "DEQUANTIZE", "RESHAPE"}
    assert predicted == actual


class SmallKws(nn.Module):
    """A DS-CNN-shaped model on the feature input: what the tflm/mcu RAM budget is about."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24), nn.ReLU6())
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        return self.fc(self.pw(self.dw(self.stem(x))).mean((2, 3)).reshape(1, 24))


def test_modelled_arena_and_pad_ops_against_the_real_export():
    import re

    from ondevice.mcu.reader import read_graph
    from ondevice.runtimes.tflm import TFLMModel
    for model, example in ((SmallKws(), (torch.rand(1, 1, 49, 40) * 20.0,)), (BroadcastAttention(), XA)):
        report = lint(model, example, ["tflm"])
        modelled = report.stats["peak_activation_bytes"]
        data = _int8_tflite(model.eval(), example)
        log = TFLMModel(data, type(model).__name__).allocations_log()
        head = int(re.search(r"Arena allocation head (\d+) bytes", log).group(1))
        # liveness in graph order is a floor for any planner; litert's other layout copies (e.g. a TRANSPOSE
        # before MEAN) and TFLM's greedy packing add 12-20 % on these two models
        assert modelled <= head <= 1.25 * modelled, (type(model).__name__, modelled, head)
        # the padding rule predicts exactly the PAD ops the converter inserts (NCHW here, NHWC there)
        graph = read_graph(data)
        pads = sorted(tuple(graph.tensors[op.outputs[0]].shape) for op in graph.ops if op.opcode == "PAD")
        ctx = LintContext(model, example)
        nchw = [explicit_pad(n)[1] for n in ctx.nodes if explicit_pad(n)]
        assert pads == sorted((n, h, w, c) for n, c, h, w in nchw)
        assert len([v for v in report.violations if v.rule == "padding"]) == len(nchw)
