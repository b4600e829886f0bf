"""Device-friendly building blocks: ReLU6 only, static shapes, single-head attention that maps to the Edge TPU.

Every block exports (batch 1) to ops that XNNPACK, TFLite int8, the Edge TPU, TFLM and our MCU kernels accept.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class DSConv(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, each with BN and ReLU6 (MobileNet / DS-CNN block)."""

    def __init__(self, cin: int, cout: int, stride=1):
        super().__init__()
        self.dw = ConvBNReLU6(cin, cin, 3, stride=stride, padding=1, groups=cin)
        self.pw = ConvBNReLU6(cin, cout, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class FrozenOnes(nn.Linear):
    """A Linear with constant weights (all ``value``), no bias: a reduction the Edge TPU maps as an FC.

    SUM/MEAN over a non-innermost axis either fails the Edge TPU rules or loses precision in int8
    (PROBE_NOTES: MEAN relL2 0.064 vs 0.024); a constant-weight FC is exact and maps everywhere.
    """

    def __init__(self, n: int, value: float = 1.0):
        super().__init__(n, 1, bias=False)
        nn.init.constant_(self.weight, value)
        self.weight.requires_grad_(False)

    def _load_from_state_dict(self, *args, **kwargs):  # constant by construction; keep it so
        super()._load_from_state_dict(*args, **kwargs)
        with torch.no_grad():
            self.weight.fill_(self.weight.flatten()[0].item())


class TimePool(nn.Module):
    """Mean over time of [B,T,D] written as a constant 1/T FC over the transposed tensor."""

    def __init__(self, t: int):
        super().__init__()
        self.t = t
        self.red = FrozenOnes(t, 1.0 / t)

    def forward(self, x):  # [B,T,D] -> [B,D]
        b, t, d = x.shape[0], self.t, x.shape[-1]
        if b == 1:
            return self.red(x.reshape(t, d).transpose(0, 1)).reshape(1, d)
        return self.red(x.transpose(1, 2)).reshape(b, d)


class SingleHeadSelfAttention(nn.Module):
    """One head of self-attention over [B,T,D] with a residual, in Edge-TPU-mappable ops only.

    Scores and the weighted sum are broadcast products reduced by constant all-ones FCs, not BATCH_MATMUL
    (not on the Edge TPU list) and not ``q @ k.T`` (litert makes that an FC with variable weights).
    At batch 1 the block runs on 2-D [T,D] tensors: rank-3 FC outputs break the Edge TPU rules.
    """

    num_heads = 1

    def __init__(self, t: int, d: int):
        super().__init__()
        self.t, self.d = t, d
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.red_d = FrozenOnes(d)
        self.red_t = FrozenOnes(t)
        self.scale = d ** -0.5

    def forward(self, x):  # [B,T,D]
        b, t, d = x.shape[0], self.t, self.d
        if b == 1:
            x2 = x.reshape(t, d)
            q = self.q(x2) * self.scale  # its own MUL: keeps the FC output 2-D
            k, v = self.k(x2), self.v(x2)
            s = self.red_d((q.unsqueeze(1) * k).reshape(t * t, d)).reshape(t, t)
            p = F.softmax(s, dim=-1)
            a = self.red_t((p.unsqueeze(1) * v.transpose(0, 1)).reshape(t * d, t)).reshape(t, d)
            return (x2 + self.o(a)).reshape(1, t, d)
        q = self.q(x) * self.scale
        k, v = self.k(x), self.v(x)
        s = self.red_d(q.unsqueeze(2) * k.unsqueeze(1)).squeeze(-1)          # [B,T,T]
        p = F.softmax(s, dim=-1)
        a = self.red_t(p.unsqueeze(2) * v.transpose(1, 2).unsqueeze(1)).squeeze(-1)  # [B,T,D]
        return x + self.o(a)
