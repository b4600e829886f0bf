"""Reference recipes: an architecture, a training config, shipped weights and the slim report that made them.

    from ondevice.models import get_recipe
    recipe = get_recipe("mitsis")
    model = recipe.build()
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ondevice.registry import Registry

INPUT_SHAPE = (1, 1, 49, 40)  # [B, C, frames, mel channels] from ondevice.features


@dataclass
class TrainConfig:
    epochs: int = 16
    qat_epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-3
    qat_lr: float = 3e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    freq_mask: int = 6        # SpecAugment: max mel channels masked
    time_shift: int = 4       # max frames rolled left/right
    pretrain_epochs: int = 8   # keyword branch pre-training (frozen afterwards); converges by ~6


@dataclass
class Recipe:
    name: str
    description: str
    build: Callable[..., torch.nn.Module]           # build(n_classes=4, **arch) -> nn.Module (softmax output)
    arch: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    input_shape: tuple = INPUT_SHAPE
    fusion: bool = False                            # late fusion with a frozen keyword branch
    task: str = "emotion"                           # "emotion" (4 classes) or "keyword" (the keyword list)

    @property
    def folder(self) -> Path:
        return Path(__file__).parent / self.name.replace("-", "_")

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        return (torch.rand((batch,) + tuple(self.input_shape[1:]), generator=g) * 20.0,)


#: every sub-package of models/ is a recipe that registers itself; blocks, fusion and user are the nn building
#: blocks the recipes use and the loader of a user's ``path.py:build``, not recipes
RECIPES: Registry[Recipe] = Registry("recipe", package=__name__, skip=("blocks", "fusion", "user"),
                                     entry_points="ondevice.recipes")


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


def recipe_names() -> list[str]:
    return RECIPES.names()
