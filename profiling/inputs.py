"""Deterministic test inputs for a profile: seeded tensors for the model's inputs, a 1 s audio clip for the
frontend modes. The same seed gives the same bytes on every run and every machine."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def make_audio(seed: int = 0, samples: int = 16000) -> np.ndarray:
    """A deterministic 1 s 16 kHz int16 clip (two tones and noise) for the frontend modes."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    x = 6000 * np.sin(2 * np.pi * 300 * t) + 3000 * np.sin(2 * np.pi * 1250 * t) + rng.normal(0, 500, samples)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def make_inputs(specs: Sequence[dict], seed: int = 0) -> list[np.ndarray]:
    """Deterministic test inputs for the device's input tensors (seeded; the same on every run)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        dt = np.dtype(s["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            lo, hi = max(info.min, -128), min(info.max, 127)
            out.append(rng.integers(lo, hi + 1, size=s["shape"], dtype=np.int64).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, size=s["shape"]).astype(dt))
        else:
            out.append(rng.standard_normal(size=s["shape"]).astype(dt))
    return out
