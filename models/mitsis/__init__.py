"""mitsis: audio-text emotion recognition after Mitsis et al. 2025 (Coral Dev Board Micro case study).

- acoustic branch: conv stem, two depthwise-separable blocks, a projection to D, one single-head self-attention
  block over time (Edge-TPU-mappable form), time pooling;
- keyword ("text") branch: a DS-CNN keyword spotter pre-trained on the corpus keywords, then frozen; its pooled
  embedding is the text feature;
- late fusion: Concat -> Linear -> ReLU6 -> Linear -> softmax.
"""
from __future__ import annotations

import torch.nn as nn

from ondevice.models import RECIPES, Recipe, TrainConfig
from ondevice.models.kws_dscnn import DSCNNEncoder
from ondevice.models.blocks import ConvBNReLU6, DSConv, SingleHeadSelfAttention, TimePool
from ondevice.models.fusion import FusionHead, LateFusion


class AcousticEncoder(nn.Module):
    """log-mel [B,1,49,40] -> [B, d]: CNN front end + compact single-head transformer block.

    ``freq_pool`` > 1 averages adjacent mel channels first: the acoustic branch then sees energy, spectral tilt and
    timing (the paralinguistic cues) at coarse frequency resolution and leaves the words to the keyword branch,
    the division of labour of the paper's acoustic and text branches.
    """

    def __init__(self, d: int = 32, stem: int = 16, width: int = 32, freq_pool: int = 1, attn_bounded: bool = True):
        super().__init__()
        self.pool_in = nn.AvgPool2d((1, freq_pool)) if freq_pool > 1 else nn.Identity()
        f = 40 // freq_pool
        s2 = (1, 2) if f >= 20 else (1, 1)
        self.stem = ConvBNReLU6(1, stem, 3, stride=s2, padding=1)            # 49 x f/2 (or f)
        f = (f + 2 - 3) // s2[1] + 1
        self.b1 = DSConv(stem, width, stride=(2, 2))                           # 25 x f/2
        f = (f + 2 - 3) // 2 + 1
        self.b2 = DSConv(width, width, stride=s2)                              # 25 x f/2 (or f)
        f = (f + 2 - 3) // s2[1] + 1
        self.t = 25
        self.proj = nn.Linear(width * f, d)
        self.act = nn.ReLU6()
        self.attn = SingleHeadSelfAttention(self.t, d, bounded=attn_bounded)
        self.pool = TimePool(self.t)
        self.out_dim = d

    def forward(self, x):
        x = self.b2(self.b1(self.stem(self.pool_in(x))))  # [B,C,25,F]
        b = x.shape[0]
        x = x.permute(0, 2, 1, 3).flatten(2)            # [B,25,C*5]; flatten, not shape unpacking (Core ML)
        # 2-D FC input: a [1,T,K] input becomes a rank-3 FC output, which the Edge TPU does not take.
        x = self.act(self.proj(x.reshape(b * self.t, -1))).reshape(b, self.t, self.out_dim)
        return self.pool(self.attn(x))


def build_keyword_encoder(channels: int = 32, blocks: int = 3) -> DSCNNEncoder:
    return DSCNNEncoder(channels, blocks)


def build(n_classes: int = 4, d: int = 32, stem: int = 16, width: int = 32, kws_channels: int = 32,
          kws_blocks: int = 3, hidden: int = 32, branches: tuple[str, ...] = ("audio", "keyword"),
          freq_pool: int = 20, attn_bounded: bool = True) -> nn.Module:
    """The fused model; ``branches`` builds the single-branch ablations with the same head shape."""
    enc = {}
    if "audio" in branches:
        enc["audio"] = AcousticEncoder(d, stem, width, freq_pool, attn_bounded)
    if "keyword" in branches:
        enc["keyword"] = build_keyword_encoder(kws_channels, kws_blocks)
    d_in = sum(e.out_dim for e in enc.values())
    return LateFusion(enc, FusionHead(d_in, hidden, n_classes), frozen={"keyword"} & set(enc))


RECIPES.register("mitsis")(Recipe(
    name="mitsis",
    description="Audio-text emotion recognition: CNN+single-head-attention acoustic branch, frozen DS-CNN keyword "
                "branch, late-fusion MLP (Mitsis et al. 2025)",
    build=build,
    arch={"d": 32, "stem": 16, "width": 32, "kws_channels": 32, "kws_blocks": 3, "hidden": 32, "freq_pool": 20,
          "attn_bounded": True},
    train=TrainConfig(qat_lr=1e-4, qat_epochs=4),
    fusion=True,
))
