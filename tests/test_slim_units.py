"""Unit tests of the slim building blocks that need no dataset."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from ondevice.errors import ConfigError
from ondevice.models import get_recipe, recipe_names
from ondevice.slim.blocks import SingleHeadSelfAttention, TimePool
from ondevice.slim.checkpoint import load_run
from ondevice.slim.fusion import FusionHead, LateFusion
from ondevice.slim.metrics import count_macs, macro_f1
from ondevice.slim.train import augment


def test_recipes_registered():
    assert {"mitsis", "kws-dscnn"} <= set(recipe_names())
    with pytest.raises(ConfigError):
        get_recipe("mitsys")


@pytest.mark.parametrize("name", ["mitsis", "kws-dscnn"])
def test_batch1_path_equals_batched_path(name):
    # The export graph (batch 1, 2-D attention) must compute what the training graph (batched) computes.
    torch.manual_seed(0)
    m = get_recipe(name).build().eval()
    x = torch.rand(5, 1, 49, 40) * 20
    with torch.no_grad():
        batched = m(x)
        single = torch.cat([m(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_attention_is_single_head_and_uses_no_matmul():
    att = SingleHeadSelfAttention(t=6, d=4).eval()
    ep = torch.export.export(att, (torch.rand(1, 6, 4),))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert att.num_heads == 1
    assert not any(("bmm" in o or "matmul" in o or ".mm." in o) for o in ops), ops


def test_attention_matches_reference_softmax_attention():
    torch.manual_seed(1)
    att = SingleHeadSelfAttention(t=7, d=8).eval()
    x = torch.randn(2, 7, 8)
    q, k, v = att.q(x) * att.scale, att.k(x), att.v(x)
    ref = x + att.o(torch.softmax(q @ k.transpose(1, 2), -1) @ v)
    torch.testing.assert_close(att(x), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(att(x[:1]), ref[:1], atol=1e-5, rtol=1e-5)


def test_timepool_is_mean_and_stays_constant_after_load():
    p = TimePool(5)
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(p(x), x.mean(1))
    sd = p.state_dict()
    sd["red.weight"] = torch.full_like(sd["red.weight"], 0.2)
    p.load_state_dict(sd)
    assert not p.red.weight.requires_grad


def test_late_fusion_freezes_and_concats():
    a, b = nn.Linear(3, 2), nn.Linear(3, 5)
    m = LateFusion({"a": a, "b": b}, FusionHead(7, 4, 3, dropout=0.0), frozen={"b"})
    assert not any(p.requires_grad for p in b.parameters())
    assert all(p.requires_grad for p in a.parameters())
    x = torch.randn(2, 3)
    assert m.embed(x).shape == (2, 7)
    y = m(x)
    torch.testing.assert_close(y.sum(-1), torch.ones(2))
    m.train()
    assert m.training and not m.encoders["b"].training
    with pytest.raises(ValueError):
        LateFusion({"a": a}, FusionHead(2, 4, 3), frozen={"zzz"})


def test_macro_f1_known_values():
    assert macro_f1([0, 1, 2, 3], [0, 1, 2, 3], 4) == 1.0
    # class 0: tp=1 fp=1 fn=0 -> 2/3; class 1: tp=0 fp=0 fn=1 -> 0
    assert macro_f1([0, 1], [0, 0], 2) == pytest.approx((2 / 3 + 0) / 2)


def test_count_macs_conv_and_linear():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    assert count_macs(m, (torch.zeros(1, 1, 5, 5),)) == 4 * 25 * 9 + 100 * 2


def test_augment_masks_and_shifts_without_changing_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(16, 1, 49, 40)
    y = augment(x, g, freq_mask=6, time_shift=4)
    assert y.shape == x.shape
    assert (y == 0).any() and (y == 1).any()
    assert torch.equal(augment(x, g, 0, 0), x)


def test_load_run_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(ConfigError, match="incomplete"):
        load_run(tmp_path / "r")
    for f in ("weights.pt", "qat.pt2", "calib.pt"):
        (tmp_path / "r" / f).write_bytes(b"junk")
    (tmp_path / "r" / "recipe.json").write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt"):
        load_run(tmp_path / "r")
    (tmp_path / "r" / "recipe.json").write_text(json.dumps({"name": "mitsis", "labels": ["a"], "input": {}}))
    run = load_run(tmp_path / "r")
    with pytest.raises(ConfigError, match="cannot load"):
        run.qat_module()
