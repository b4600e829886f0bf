"""Unit tests of the slim building blocks that need no dataset."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from ondevice.errors import ConfigError
from ondevice.models import get_recipe, recipe_names
from ondevice.models.blocks import SingleHeadSelfAttention, TimePool
from ondevice.slim.checkpoint import load_run
from ondevice.models.fusion import FusionHead, LateFusion
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


@pytest.mark.parametrize("bounded", [True, False])
def test_attention_matches_reference_softmax_attention(bounded):
    torch.manual_seed(1)
    att = SingleHeadSelfAttention(t=7, d=8, bounded=bounded).eval()
    x = torch.randn(2, 7, 8) * 4
    q, k, v = att.q(x) * att.scale, att.k(x), att.v(x)
    s = q @ k.transpose(1, 2)
    if bounded:  # scores clamped to [-3, 3]; 1/sqrt(d) folded into W_q, so there is no separate scale
        assert att.scale == 1.0 and (s.abs() > 3).any()  # the clamp is exercised
        s = s.clamp(-3, 3)
    ref = x + att.o(torch.softmax(s, -1) @ v)
    torch.testing.assert_close(att(x), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(att(x[:1]), ref[:1], atol=1e-5, rtol=1e-5)


def test_bounded_attention_folds_scale_and_keeps_its_bias_on_load():
    torch.manual_seed(2)
    ref = SingleHeadSelfAttention(t=5, d=16, bounded=False)
    torch.manual_seed(2)
    att = SingleHeadSelfAttention(t=5, d=16)
    torch.testing.assert_close(att.q.weight, ref.q.weight * 16 ** -0.5)
    sd = att.state_dict()
    assert float(sd["red_d.bias"]) == 3.0
    sd["red_d.bias"] = torch.tensor([0.5])
    att.load_state_dict(sd)
    assert float(att.red_d.bias) == 3.0 and not att.red_d.bias.requires_grad

    def muls(m):
        g = torch.export.export(m.eval(), (torch.rand(1, 5, 16),)).graph
        return sum(str(n.target) == "aten.mul.Tensor" for n in g.nodes)
    assert muls(ref) - muls(att) == 1  # the q-scale MUL is gone; the two broadcast products stay


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


def test_quantizer_makes_the_reference_compute_what_tflite_computes():
    # Eval dropout is identity and litert drops it: the reference must not requantize behind it. relu6 after a
    # linear must fuse like nn.ReLU6 (one post-clamp scale), as TFLite's fused activation does.
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ondevice.slim.quantizer import make_quantizer

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.drop, self.b = nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 4)

        def forward(self, x):
            return self.b(self.drop(torch.nn.functional.relu6(self.a(x))))

    torch.manual_seed(0)
    m = M().eval()
    p = prepare_pt2e(torch.export.export(m, (torch.rand(1, 8),)).module(), make_quantizer(is_qat=False))
    calib = torch.randn(16, 1, 8) * 3
    for c in calib:
        p(c)
    conv = convert_pt2e(p, fold_quantize=False)
    nodes = [n for n in conv.graph.nodes if n.op == "call_function"]
    names = [str(n.target) for n in nodes]
    assert "aten.dropout.default" not in names and "aten.relu6.default" not in names
    qscales = [float(n.args[1]) for n in nodes if str(n.target).endswith("quantize_per_tensor.default")
               and "dequantize" not in str(n.target)]
    # input, linear+clamp (one scale, shared by both quantize nodes), output: three distinct scales
    assert len(set(qscales)) == 3, qscales
    h = next(n for n in nodes if str(n.target) == "aten.hardtanh.default")
    lin_q = h.args[0].args[0]
    assert float(lin_q.args[1]) == float(next(iter(h.users)).args[1])
    with torch.no_grad():
        torch.testing.assert_close(conv(calib[0]), m(calib[0]), atol=0.1, rtol=0.05)


def test_slim_targets_take_comma_lists():
    from ondevice.slim.train import ALL_TARGETS, _resolve_targets
    assert _resolve_targets(["tflite,mcu", "edgetpu"]) == ["tflite", "mcu", "edgetpu"]
    assert _resolve_targets(["all"]) == list(ALL_TARGETS) == _resolve_targets(["tflite,all"])
    with pytest.raises(ConfigError, match="unknown target 'gpu'"):
        _resolve_targets(["tflite,gpu"])
