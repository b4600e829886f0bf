"""The tensors ``ondevice slim`` trains on: one ``Arrays`` per split, from an audio corpus (log-mel features) or
from user tensor data (``ondevice.data.user``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class Arrays:
    """One split: ``xs`` one [N, ...] tensor per model input, labels ``y`` and keywords ``kw`` ([N] long)."""

    def __init__(self, x, y: torch.Tensor, kw: torch.Tensor):
        self.xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        self.y, self.kw = y, kw

    @property
    def x(self) -> torch.Tensor:
        return self.xs[0]

    def take(self, idx) -> tuple[torch.Tensor, ...]:
        return tuple(t[idx] for t in self.xs)

    def __len__(self):
        return len(self.y)


def load_arrays(data: Path) -> tuple[dict[str, Arrays], list[str], list[str]]:
    from ondevice.data import KEYWORDS, LABELS
    from ondevice.data.dataset import load_split
    from ondevice.features import to_model_input
    out = {}
    for split in ("train", "val", "test"):
        s = load_split(data, split)
        x = torch.from_numpy(np.concatenate([to_model_input(f) for f in s.features], axis=0)).float()
        out[split] = Arrays(x, torch.as_tensor(s.labels, dtype=torch.long), torch.as_tensor(s.keywords, dtype=torch.long))
    return out, list(LABELS), list(KEYWORDS)
