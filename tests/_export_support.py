"""Shared builders for the export/runtime/verify tests: a tiny QAT run made by project code at test time.

Builders are cached per process so several test modules share one export (the suite budget is minutes).
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn as nn

LABELS = ["neutral", "happy", "sad", "angry"]


class TinyNet(nn.Module):
    """mel [1,1,49,40] -> logits [1,4]: conv+BN+ReLU6, depthwise, pool, linear. Small enough to export in seconds."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        x = self.act(self.pw(self.dw(x)))
        x = x.mean(dim=(2, 3), keepdim=True).flatten(1)
        return self.fc(x)


class TinyExpNet(TinyNet):
    """TinyNet with an ``exp`` gate: an op the int8 quantizer leaves in float, so full-int8 targets must refuse it."""

    def forward(self, x):
        return super().forward(x) * torch.exp(-x.mean(dim=(1, 2, 3))).unsqueeze(1)


def build_tiny() -> nn.Module:
    """The user-model entry point recorded in the tiny run's recipe (``path.py:build_tiny``)."""
    return TinyNet()


def build_tiny_exp() -> nn.Module:
    return TinyExpNet()


def make_tiny_run(out: Path, name: str = "tiny", build=build_tiny) -> Path:
    """Train TinyNet a few steps, PT2E-QAT it with the project quantizer, and save a real run folder."""
    from ondevice.slim.checkpoint import save_run
    from ondevice.slim.quantizer import make_quantizer
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    calib = torch.rand(16, 1, 49, 40, generator=g) * 4 - 2
    model = build()
    # A few steps move BN stats and weights off their init, like a real QAT starting point.
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    y = torch.arange(16) % 4
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(calib), y).backward()
        opt.step()
    qm = build()
    qm.load_state_dict(model.state_dict())
    qm.train()
    prepared = prepare_qat_pt2e(torch.export.export(qm, (calib[:1],)).module(), make_quantizer(is_qat=True))
    with torch.no_grad():
        for i in range(16):
            prepared(calib[i:i + 1])
    move_exported_model_to_eval(prepared)
    converted = convert_pt2e(prepared, fold_quantize=False)
    recipe = {"name": name, "labels": list(LABELS), "input": {"name": "mel", "shape": [1, 1, 49, 40],
                                                              "dtype": "float32"},
              "arch": {}, "quantizer": "ondevice-int8", "user_model": f"{Path(__file__).resolve()}:{build.__name__}"}
    model.eval()
    return save_run(out, recipe, model, converted, calib, {"note": "test fixture"})


@functools.cache
def tiny_run_dir(root: str) -> Path:
    """A tiny run folder under ``root`` (built once per process)."""
    return make_tiny_run(Path(root) / "runs" / "tiny")


@functools.cache
def tiny_export(root: str, targets: tuple[str, ...]) -> dict:
    """Export the tiny run once per process to ``root/artifacts``; returns {target: path}."""
    from ondevice.export.api import export
    return export(model=tiny_run_dir(root), targets=list(targets), out=Path(root) / "artifacts")
