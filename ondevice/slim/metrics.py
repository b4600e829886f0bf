"""Classification metrics and model size/compute counts for slim reports."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1s = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(f1s))


def confusion(y_true, y_pred, n_classes: int) -> list[list[int]]:
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m.tolist()


def count_macs(model: nn.Module, example: tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates of conv and linear layers for one example (batch 1)."""
    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        k = mod.weight[0].numel()  # in-channels/groups x kernel, for 1-D and 2-D convs
        total += out.numel() * k

    def lin_hook(mod, inp, out):
        nonlocal total
        total += out.numel() * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in hooks:
            h.remove()
    return int(total)


def int8_bytes(model: nn.Module) -> int:
    """Bytes of the deployed INT8 weights: int8 weights, int32 biases, BN folded into the preceding conv."""
    total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total += m.weight.numel()
            out_ch = m.weight.shape[0]
            total += 4 * out_ch  # bias (BN folds into it) + per-channel scale is metadata, counted as bias-sized
    return int(total)
