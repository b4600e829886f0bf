"""The lint's ATen -> TFLite builtin table agrees with what litert-torch really emits.

One small zoo model is linted and converted; the predicted builtin set must equal the converted one, so a
litert upgrade that changes a lowering shows up here instead of as a wrong lint report.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ondevice.slim.lint import LintContext, lint
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


def _converted_ops(module, example) -> set[str]:
    import litert_torch

    from ondevice.export.tflite_util import read_graph
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        path = Path(d) / "zoo.tflite"
        litert_torch.convert(module.eval(), example).export(str(path))
        data = path.read_bytes()
    return set(read_graph(data).op_counts())


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
