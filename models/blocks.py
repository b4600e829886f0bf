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

    def __init__(self, n: int, value: float = 1.0, bias: float | None = None):
        super().__init__(n, 1, bias=bias is not None)
        nn.init.constant_(self.weight, value)
        self.weight.requires_grad_(False)
        self._bias_value = bias
        if self.bias is not None:
            nn.init.constant_(self.bias, bias)
            self.bias.requires_grad_(False)

    def _load_from_state_dict(self, *args, **kwargs):  # constant by construction; keep it so
        super()._load_from_state_dict(*args, **kwargs)
        with torch.no_grad():
            self.weight.fill_(self.weight.flatten()[0].item())
            if self.bias is not None:
                self.bias.fill_(self._bias_value)


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

    ``bounded`` (the default) clamps the scores to [-3, 3] as ``ReLU6(sum + 3)`` (softmax is shift-invariant), one
    FC with a fused ReLU6 on every target, and folds the 1/sqrt(d) into the query projection's initialisation
    instead of a separate MUL. Unbounded int8 scores get a coarse step, and one step of the softmax input then
    moves its output by many steps: integer runtimes that round differently (TFLite's fixed-point requantize vs
    PyTorch's float reference) flip the argmax. A ratio of e^6 ~ 400 between the most and least attended frame
    is still a sharp attention.
    """

    num_heads = 1

    def __init__(self, t: int, d: int, bounded: bool = True):
        super().__init__()
        self.t, self.d, self.bounded = t, d, bounded
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.red_d = FrozenOnes(d, bias=3.0 if bounded else None)
        self.red_t = FrozenOnes(t)
        self.scale = d ** -0.5
        if bounded:  # the scale lives in W_q from the start: no MUL op, one requantization fewer
            with torch.no_grad():
                self.q.weight.mul_(self.scale)
                self.q.bias.mul_(self.scale)
            self.scale = 1.0

    def _q(self, x):
        q = self.q(x)
        return q * self.scale if self.scale != 1.0 else q  # unbounded: its own MUL (keeps the FC output 2-D)

    def _scores(self, prod):
        s = self.red_d(prod)
        return F.relu6(s) if self.bounded else s

    def forward(self, x):  # [B,T,D]
        b, t, d = x.shape[0], self.t, self.d
        if b == 1:
            x2 = x.reshape(t, d)
            q = self._q(x2)
            k, v = self.k(x2), self.v(x2)
            s = self._scores((q.unsqueeze(1) * k).reshape(t * t, d)).reshape(t, t)
            p = F.softmax(s, dim=-1)
            a = self.red_t((p.unsqueeze(1) * v.transpose(0, 1)).reshape(t * d, t)).reshape(t, d)
            return (x2 + self.o(a)).reshape(1, t, d)
        q = self._q(x)
        k, v = self.k(x), self.v(x)
        s = self._scores(q.unsqueeze(2) * k.unsqueeze(1)).squeeze(-1)          # [B,T,T]
        p = F.softmax(s, dim=-1)
        a = self.red_t(p.unsqueeze(2) * v.transpose(1, 2).unsqueeze(1)).squeeze(-1)  # [B,T,D]
        return x + self.o(a)
