"""The constraint linter: each rule fires on a small bad module and stays quiet on a good one."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ondevice.errors import ConfigError
from ondevice.slim.lint import (Violation, apply_fixes, get_target, lint, reapply_fixes, resolve_targets,
                                target_names)

X4 = (torch.randn(1, 1, 8, 8),)


def rules(report, target, rule):
    return [v for v in report.for_target(target) if v.rule == rule]


class ConvNet(nn.Module):
    """conv + BN + activation + pool + FC: the shape every recipe has."""

    def __init__(self, act: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = act if act is not None else nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


# --- Edge-TPU-friendly attention (PROBE_NOTES) vs plain matmul attention -----------------------------------
T, D = 12, 16


class BroadcastAttention(nn.Module):
    """Single head; scores and output as broadcast MUL reduced by SUM; 2-D tensors inside."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))

    def forward(self, x):
        x2 = x.reshape(T, D)
        q = self.q(x2) * D ** -0.5
        k, v = self.k(x2), self.v(x2)
        p = F.softmax((q.unsqueeze(1) * k).sum(-1), dim=-1)
        a = (p.unsqueeze(1) * v.transpose(0, 1)).sum(-1)
        return (x2 + self.o(a)).reshape(1, T, D)


class MatmulAttention(BroadcastAttention):
    def forward(self, x):
        x2 = x.reshape(T, D)
        q, k, v = self.q(x2), self.k(x2), self.v(x2)
        p = F.softmax(q @ k.T * D ** -0.5, dim=-1)
        return (x2 + self.o(p @ v)).reshape(1, T, D)


class HeadsByReshape(BroadcastAttention):
    """Multi-head written by hand, with no num_heads attribute: reshape to heads, then batched matmul."""

    def forward(self, x):
        x2 = x.reshape(T, D)
        q, k, v = (m(x2).reshape(T, 2, D // 2).transpose(0, 1) for m in (self.q, self.k, self.v))
        p = F.softmax(q @ k.transpose(1, 2), dim=-1)
        return (p @ v).transpose(0, 1).reshape(1, T, D)


XA = (torch.randn(1, T, D),)


@pytest.fixture(scope="session")
def bcast_report():
    return lint(BroadcastAttention(), XA, "all")


@pytest.fixture(scope="session")
def matmul_report():
    return lint(MatmulAttention(), XA, "all")


def test_targets_are_data():
    assert set(target_names()) == {"executorch", "tflite", "edgetpu", "coreml", "tflm", "mcu"}
    assert resolve_targets(["all"]) == target_names()
    assert resolve_targets(["edgetpu", "edgetpu", "tflm"]) == ["edgetpu", "tflm"]
    assert resolve_targets(["tflite,mcu", "edgetpu"]) == ["tflite", "mcu", "edgetpu"]  # comma lists, like export
    with pytest.raises(ConfigError) as e:
        resolve_targets(["edgtpu"])
    assert "edgetpu" in e.value.hint
    with pytest.raises(ConfigError) as e:
        resolve_targets(["tflite,edgtpu"])
    assert "edgetpu" in e.value.hint


def test_mcu_list_never_allows_what_codegen_cannot_lower():
    from ondevice.mcu import codegen
    lowered = set(codegen.LOWERINGS.names()) | set(codegen.ALIAS_OPS)
    assert get_target("mcu").allow <= lowered, sorted(get_target("mcu").allow - lowered)


def test_edgetpu_list_agrees_with_the_exporter():
    from ondevice.export import edgetpu_rules
    # the exporter names Coral's "LSTM (unidirectional)" LSTM; litert emits UNIDIRECTIONAL_SEQUENCE_LSTM
    exported = set(edgetpu_rules.SUPPORTED_OPS) | {"UNIDIRECTIONAL_SEQUENCE_LSTM"}
    assert get_target("edgetpu").allow <= exported, sorted(get_target("edgetpu").allow - exported)


def test_clean_model_is_clean_everywhere():
    r = lint(ConvNet(), X4, "all")
    assert r.violations == [], r.format()
    assert all(r.ok(t) for t in target_names())


def test_edgetpu_attention_lints_clean(bcast_report):
    assert bcast_report.ok("edgetpu"), bcast_report.format()
    assert bcast_report.for_target("edgetpu") == []


def test_matmul_attention_fails_edgetpu(matmul_report):
    assert not matmul_report.ok("edgetpu")
    fc = rules(matmul_report, "edgetpu", "fc-weights")
    assert fc and "FULLY_CONNECTED" in fc[0].op and "MUL + SUM" in fc[0].fix
    assert fc[0].source and fc[0].source.startswith("test_lint.py:")
    # TFLite and TFLM run BATCH_MATMUL / variable-weight FC fine.
    assert matmul_report.ok("tflite") and matmul_report.ok("tflm")


@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU(inplace=True), nn.GELU(), nn.SiLU(), nn.Hardswish(),
                                 nn.LeakyReLU(0.1)], ids=lambda m: repr(m))
def test_activation_rule_and_fix(act):
    net = ConvNet(act)
    keys = set(net.state_dict())
    r = lint(net, X4, ["edgetpu", "tflite"])
    for t in ("edgetpu", "tflite"):
        v = rules(r, t, "activation")
        assert len(v) == 1 and v[0].where == "act" and v[0].auto_fixable, r.format()
        assert "ReLU6" in v[0].fix
    assert not r.ok("edgetpu")
    changed = apply_fixes(net, r)
    assert changed == [f"act: {type(act).__name__} -> ReLU6"]
    assert type(net.act) is nn.ReLU6 and set(net.state_dict()) == keys
    assert lint(net, X4, ["edgetpu", "tflite"]).violations == []


def test_fix_swaps_shared_and_nested_activations():
    shared = nn.GELU()
    net = nn.Sequential(nn.Conv2d(1, 4, 3), shared, nn.Sequential(nn.Conv2d(4, 4, 1), shared, nn.SiLU()))
    r = lint(net, X4, ["mcu"])
    assert {v.where for v in rules(r, "mcu", "activation")} == {"1", "2.2"}  # the shared GELU is one module
    assert sorted(apply_fixes(net, r)) == ["1: GELU -> ReLU6", "2.1: GELU -> ReLU6", "2.2: SiLU -> ReLU6"]
    assert lint(net, X4, ["mcu"]).violations == []


def test_recorded_fixes_reapply_to_a_fresh_build():
    net = ConvNet(nn.SiLU())
    changed = apply_fixes(net, lint(net, X4, ["tflm"]))
    fresh = ConvNet(nn.SiLU())
    assert reapply_fixes(fresh, changed) == changed and type(fresh.act) is nn.ReLU6
    assert reapply_fixes(fresh, changed) == []  # idempotent
    with pytest.raises(ConfigError):
        reapply_fixes(ConvNet(nn.GELU()), changed)  # the code changed since the run


def test_functional_activation_is_found_but_not_auto_fixed():
    class Fn(ConvNet):
        def forward(self, x):
            return self.fc(F.gelu(self.conv(x)).mean((2, 3)))

    r = lint(Fn(), X4, ["tflm"])
    v = rules(r, "tflm", "activation")
    assert len(v) == 1 and not v[0].auto_fixable and "F.gelu" in v[0].fix and v[0].source
    assert apply_fixes(Fn(), r) == []
    # The GELU builtin is not reported a second time by the op list.
    assert not [x for x in r.violations if x.op and "GELU" in x.op]


def test_relu6_spellings_pass():
    class Spellings(ConvNet):
        def forward(self, x):
            y = F.hardtanh(self.conv(x), 0.0, 6.0) + F.relu6(self.conv(x)) + nn.Hardtanh(0.0, 6.0)(x)
            return y.mean((2, 3))

    assert rules(lint(Spellings(), X4, ["edgetpu"]), "edgetpu", "activation") == []


def test_data_dependent_control_flow_reports_user_line():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent
                return x * 2
            return x

    r = lint(Branchy(), X4, ["tflite", "coreml"])
    for t in ("tflite", "coreml"):
        v = rules(r, t, "dynamic-shape")
        assert len(v) == 1 and "fixed" in v[0].fix
        assert v[0].source and "test_lint.py" in v[0].source and "x.sum() > 0" in v[0].source
    assert r.notes  # says the graph rules were skipped


def test_symbolic_shape_from_boolean_mask():
    class Masked(nn.Module):
        def forward(self, x):
            return x[x > 0].sum().reshape(1)

    r = lint(Masked(), X4, ["tflm"])
    v = rules(r, "tflm", "dynamic-shape")
    assert v and "data-dependent shape" in v[0].message and v[0].op == "aten.index"
    assert rules(lint(ConvNet(), X4, ["tflm"]), "tflm", "dynamic-shape") == []


def test_multihead_module_and_attribute():
    class WithMHA(nn.Module):
        def __init__(self, heads):
            super().__init__()
            self.attn = nn.MultiheadAttention(D, heads, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    r = lint(WithMHA(2), XA, ["edgetpu", "tflite"])
    v = rules(r, "edgetpu", "multi-head")
    assert len(v) == 1 and v[0].where == "attn" and "num_heads=1" in v[0].fix
    assert rules(r, "tflite", "multi-head") == []  # TFLite runs BATCH_MATMUL; the rule is per target
    assert rules(lint(WithMHA(1), XA, ["edgetpu"]), "edgetpu", "multi-head") == []

    class Custom(BroadcastAttention):
        def __init__(self):
            super().__init__()
            self.n_heads = 4

    v = rules(lint(Custom(), XA, ["edgetpu"]), "edgetpu", "multi-head")
    assert len(v) == 1 and "4 heads" in v[0].message


def test_multihead_graph_pattern():
    r = lint(HeadsByReshape(), XA, ["edgetpu"])
    v = rules(r, "edgetpu", "multi-head")
    assert len(v) == 1 and "2 heads" in v[0].message and v[0].op == "aten.matmul"
    ops = rules(r, "edgetpu", "op-allowlist")
    assert any("BATCH_MATMUL" in x.op for x in ops)

    class Sdpa(nn.Module):
        def __init__(self, heads):
            super().__init__()
            self.h = heads

        def forward(self, x):
            q = x.reshape(1, T, self.h, D // self.h).transpose(1, 2)
            return F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(1, T, D)

    v = rules(lint(Sdpa(4), XA, ["edgetpu"]), "edgetpu", "multi-head")
    assert len(v) == 1 and "4 heads" in v[0].message
    r1 = lint(Sdpa(1), XA, ["edgetpu"])
    assert rules(r1, "edgetpu", "multi-head") == [] and not r1.ok("edgetpu")  # still BATCH_MATMUL


def test_op_allowlist_per_target():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, D)
            self.ln = nn.LayerNorm(D)

        def forward(self, ids):
            return self.ln(self.emb(ids)).mean(1)

    r = lint(Mixed(), (torch.randint(0, 10, (1, 5)),), ["edgetpu", "tflm", "tflite", "mcu"])
    et = {v.op: v for v in rules(r, "edgetpu", "op-allowlist")}
    assert "aten.embedding -> EMBEDDING_LOOKUP" in et and "one-hot" in et["aten.embedding -> EMBEDDING_LOOKUP"].fix
    assert "aten.layer_norm" in et and "BatchNorm" in et["aten.layer_norm"].fix
    assert r.ok("tflm") and r.ok("tflite")  # TFLM has EMBEDDING_LOOKUP; ids stay indices (no int64 finding)
    mcu = {v.op for v in rules(r, "mcu", "op-allowlist")}
    assert "aten.embedding -> EMBEDDING_LOOKUP" in mcu and any(o.startswith("aten.layer_norm") for o in mcu)


def test_unknown_op_is_data_not_a_crash():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumprod(x, dim=-1) + torch.fft.rfft(x).abs().sum()

    r = lint(Odd(), X4, ["edgetpu", "tflite"])
    v = [x for x in rules(r, "tflite", "op-allowlist") if "no known TFLite lowering" in x.message]
    assert v and any("cumprod" in x.op for x in v)
    assert "tflite_ops.toml" in v[0].fix


def test_float_only_ops_on_int8_targets():
    class Maths(nn.Module):
        def forward(self, x):
            # x / 4 becomes a MUL; x**2 a MUL; POW has no int8 kernel anywhere, SQRT none in TFLM
            return torch.sqrt(x.abs() + 1.0) + torch.pow(x, 3) + x / 4.0 + x ** 2

    r = lint(Maths(), X4, ["tflite", "tflm", "executorch"])
    v = rules(r, "tflite", "float-op")
    assert len(v) == 1 and v[0].op == "aten.pow -> POW" and "x * x" in v[0].fix
    assert {x.op for x in rules(r, "tflm", "float-op")} == {"aten.sqrt -> SQRT"}
    assert {x.op for x in rules(r, "tflm", "op-allowlist")} == {"aten.pow -> POW"}  # TFLM registers no POW
    assert rules(r, "executorch", "float-op") == []


def test_edgetpu_rank_limit():
    class FourD(nn.Module):
        def forward(self, x):
            return (x.reshape(1, 2, 3, 4, 5, 6) * 2.0).sum()

    r = lint(FourD(), (torch.randn(720),), ["edgetpu", "tflite", "tflm"])
    v = rules(r, "edgetpu", "tensor-rank")
    assert v and "[1, 2, 3, 4, 5, 6]" in v[0].message and "at most 3" in v[0].message
    assert rules(r, "tflite", "tensor-rank") == []
    assert rules(r, "tflm", "tensor-rank")  # 5 dims > 1 is past TFLM's 4-D kernels


def test_edgetpu_op_limits():
    class Limits(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(D, D)

        def forward(self, x):                      # x [1, T, D]
            y = self.fc(x)                         # rank-3 FULLY_CONNECTED output
            z = x.reshape(T, D)
            return y.sum(), z.mean(0), z[:, ::2]   # reduce over dim 0; strided slice

    r = lint(Limits(), XA, ["edgetpu", "tflite"])
    msgs = " | ".join(v.message for v in rules(r, "edgetpu", "op-limits"))
    assert "rank-3 FULLY_CONNECTED" in msgs and "dim 0" in msgs and "step 2" in msgs
    assert rules(r, "tflite", "op-limits") == []
    assert rules(lint(BroadcastAttention(), XA, ["edgetpu"]), "edgetpu", "op-limits") == []


@pytest.mark.parametrize("size,stride,pad,fires", [
    ((9, 9), 2, 1, False),   # odd size, stride 2: SAME pads 1 each side
    ((8, 8), 2, 1, True),    # even size, stride 2: SAME pads 0 before, 1 after
    ((8, 8), 1, 1, False),   # stride 1, k3: SAME is 1 each side
    ((8, 8), 2, 0, False),   # VALID
])
def test_padding_rule(size, stride, pad, fires):
    conv = nn.Conv2d(1, 4, 3, stride=stride, padding=pad)
    r = lint(conv, (torch.randn(1, 1, *size),), ["tflm", "coreml"])
    v = rules(r, "tflm", "padding")
    assert bool(v) == fires and all(x.severity == "warning" for x in v)
    assert rules(r, "coreml", "padding") == []  # only the TFLite family pads with an extra op


def test_int64_and_float64():
    class Ints(nn.Module):
        def forward(self, x):
            pos = torch.arange(8).reshape(1, 1, 1, 8) + x.shape[-1]
            return x + (x > 0).long() * 2 + pos

    r = lint(Ints(), X4, ["mcu", "tflm", "tflite"])
    assert rules(r, "mcu", "dtype") and rules(r, "tflm", "dtype")
    assert "int32" in rules(r, "mcu", "dtype")[0].fix
    assert rules(r, "tflite", "dtype") == []

    r = lint(ConvNet().double(), (torch.randn(1, 1, 8, 8, dtype=torch.float64),), ["coreml"])
    assert rules(r, "coreml", "dtype") and "float32" in rules(r, "coreml", "dtype")[0].fix


def test_fc_with_variable_weights():
    class Hyper(nn.Module):
        def __init__(self):
            super().__init__()
            self.gen = nn.Linear(4, 16)

        def forward(self, x):
            w = self.gen(x).reshape(4, 4)
            return F.linear(x, w)

    r = lint(Hyper(), (torch.randn(1, 4),), ["edgetpu", "tflite"])
    assert rules(r, "edgetpu", "fc-weights") and rules(r, "tflite", "fc-weights") == []

    class DynamicFilter(nn.Module):
        def __init__(self):
            super().__init__()
            self.gen = nn.Linear(64, 9)

        def forward(self, x):
            return F.conv2d(x, self.gen(x.flatten(1)).reshape(1, 1, 3, 3))

    v = rules(lint(DynamicFilter(), X4, ["mcu"]), "mcu", "fc-weights")
    assert len(v) == 1 and "non-constant" in v[0].message and v[0].op == "aten.conv2d"


def test_ram_budget_is_a_warning():
    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 64, 3, padding=1)

        def forward(self, x):
            return F.relu6(self.conv(x)).mean((2, 3))

    r = lint(Wide(), (torch.randn(1, 1, 96, 96),), ["tflm", "tflite"])
    v = rules(r, "tflm", "budget")
    assert len(v) == 1 and v[0].severity == "warning" and "RAM" in v[0].message
    assert r.ok("tflm")  # warnings do not fail a target
    assert rules(r, "tflite", "budget") == []


def test_modelled_stats():
    r = lint(ConvNet(), X4, ["tflm"])
    # conv output [1,4,8,8] int8 (BN folded, ReLU6 fused) + the input [1,1,8,8] are live together
    assert r.stats["peak_activation_bytes"] == 4 * 64 + 64 and r.stats["source"] == "modelled"
    # int8 conv and fc weights, int32 biases; BN folds away
    assert r.stats["weight_bytes"] == (4 * 9) + 4 * 4 + (3 * 4) + 3 * 4


def test_report_json_shape(matmul_report):
    d = matmul_report.to_dict()
    assert list(d) == matmul_report.targets
    json.dumps(d)
    assert all(v["severity"] == "error" for vs in d.values() for v in vs)  # constraints = errors only
    warn = matmul_report.to_dict("warning")
    assert warn["executorch"] and all(v["severity"] == "warning" for vs in warn.values() for v in vs)
    every = matmul_report.to_dict("all")
    assert sum(map(len, every.values())) == len(matmul_report.violations)
    keys = set(Violation.__dataclass_fields__)
    for t, vs in d.items():
        assert isinstance(vs, list)
        for v in vs:
            assert set(v) == keys and v["target"] == t and isinstance(v["auto_fixable"], bool)
            assert v["fix"] and v["message"] and v["where"] and v["severity"] in ("error", "warning")
    text = matmul_report.format()
    assert "edgetpu:" in text and "fix:" in text


def test_lint_does_not_change_training_modes():
    net = ConvNet()
    net.train()
    net.bn.eval()  # e.g. a frozen branch
    lint(net, X4, ["tflite"])
    assert net.training and not net.bn.training and net.conv.training


@pytest.mark.parametrize("name", ["mitsis", "kws-dscnn"])
def test_reference_recipes_meet_every_target(name):
    from ondevice.models import get_recipe
    recipe = get_recipe(name)
    r = lint(recipe.build(), recipe.example_inputs(), "all")
    assert r.ok(), r.format()
