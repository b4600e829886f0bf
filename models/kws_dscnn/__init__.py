"""kws-dscnn: the MLPerf Tiny keyword-spotting DS-CNN shape (64 channels, 4 DS blocks), on 49x40 log-mel input.

MLPerf Tiny uses 49x10 MFCCs; we keep its layer shapes and take the 40-channel log-mel with a (2,4) stride in the
first conv so the DS blocks see the same 25x10 grid scale. It is also the frozen keyword branch inside `mitsis`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ondevice.models import RECIPES, Recipe, TrainConfig
from ondevice.models.blocks import ConvBNReLU6, DSConv


class DSCNNEncoder(nn.Module):
    """log-mel [B,1,49,40] -> embedding [B, channels]."""

    def __init__(self, channels: int = 64, blocks: int = 4):
        super().__init__()
        self.stem = ConvBNReLU6(1, channels, (10, 4), stride=(2, 4), padding=(5, 0))
        self.blocks = nn.Sequential(*[DSConv(channels, channels) for _ in range(blocks)])
        self.out_dim = channels

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return x.mean(dim=(2, 3), keepdim=True).flatten(1)  # 4-D mean: XNNPACK delegates this form


class KWSDSCNN(nn.Module):
    def __init__(self, n_classes: int, channels: int = 64, blocks: int = 4, softmax: bool = True):
        super().__init__()
        self.encoder = DSCNNEncoder(channels, blocks)
        self.fc = nn.Linear(channels, n_classes)
        self.softmax = softmax

    def forward(self, x):
        y = self.fc(self.encoder(x))
        return torch.softmax(y, dim=-1) if self.softmax else y


def build(n_classes: int = 4, channels: int = 64, blocks: int = 4) -> nn.Module:
    return KWSDSCNN(n_classes, channels, blocks)


RECIPES.register("kws-dscnn")(Recipe(
    name="kws-dscnn",
    description="MLPerf Tiny DS-CNN keyword spotter (64 ch, 4 DS blocks) on 49x40 log-mel; classifies keywords",
    build=build, arch={"channels": 64, "blocks": 4},
    train=TrainConfig(epochs=12, qat_epochs=3, pretrain_epochs=0),
    task="keyword",
))
