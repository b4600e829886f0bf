"""Late fusion of several encoders: concatenate their embeddings, then a small head.

    LateFusion(encoders={"audio": AudioEncoder(), "keyword": kws.encoder}, head=FusionHead(64, 32, 4),
               frozen={"keyword"})

Each encoder maps the model input(s) to a [B, D_i] embedding. ``inputs`` says which model input each encoder
reads (default: all of them). Frozen encoders get ``requires_grad=False`` and stay in eval mode.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn


class FusionHead(nn.Sequential):
    """Concat -> Linear -> ReLU6 -> Linear (-> softmax at export)."""

    def __init__(self, d_in: int, d_hidden: int, n_classes: int, dropout: float = 0.1):
        super().__init__(nn.Dropout(dropout), nn.Linear(d_in, d_hidden), nn.ReLU6(), nn.Linear(d_hidden, n_classes))


class LateFusion(nn.Module):
    def __init__(self, encoders: Mapping[str, nn.Module], head: nn.Module, frozen: set[str] | frozenset = frozenset(),
                 inputs: Mapping[str, int | tuple[int, ...]] | None = None, softmax: bool = True):
        super().__init__()
        if not encoders:
            raise ValueError("LateFusion needs at least one encoder")
        unknown = set(frozen) - set(encoders)
        if unknown:
            raise ValueError(f"frozen names no encoder: {sorted(unknown)}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.head = head
        self.frozen = frozenset(frozen)
        self.inputs = dict(inputs or {})
        self.softmax = softmax  # probabilities at export; training turns it off and uses logits
        for name in self.frozen:
            for p in self.encoders[name].parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:  # frozen encoders keep their BN statistics
            self.encoders[name].eval()
        return self

    def embed(self, *xs: torch.Tensor) -> torch.Tensor:
        parts = []
        for name, enc in self.encoders.items():
            sel = self.inputs.get(name)
            args = xs if sel is None else tuple(xs[i] for i in ((sel,) if isinstance(sel, int) else sel))
            parts.append(enc(*args))
        return torch.cat(parts, dim=1)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = self.head(self.embed(*xs))
        return torch.softmax(y, dim=-1) if self.softmax else y
