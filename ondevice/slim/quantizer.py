"""The one PT2E quantizer behind every INT8 target: fully int8, TFLite-spec compatible.

Weights: int8 symmetric per-channel (conv, linear). Activations: int8 asymmetric per-tensor. Every compute op is
annotated (including matmul/mul/sum/mean/softmax/cat, which the stock litert quantizer leaves in float) and
shape-only ops share their input's scale (TFLite's same-scale constraint on TRANSPOSE/RESHAPE). Softmax output has
the fixed TFLite qparams (scale 1/256, zero point -128).
"""
from __future__ import annotations

import functools

import torch
from torch.fx import Node

A = torch.ops.aten

# Ops whose output gets its own observed int8 scale (inputs observed too).
_COMPUTE = {A.matmul.default, A.bmm.default, A.mm.default, A.add.Tensor, A.mul.Tensor, A.sub.Tensor,
            A.sum.dim_IntList, A.mean.dim, A.relu.default, A.hardtanh.default, A.amax.default}
_SOFTMAX = {A.softmax.int, A._softmax.default}
# Shape-only ops: output shares the input's scale.
_SHARE = {A.transpose.int, A.permute.default, A.reshape.default, A.view.default, A.flatten.using_ints,
          A.squeeze.dim, A.squeeze.dims, A.unsqueeze.default, A.slice.Tensor, A.select.int,
          A.expand.default, A.clone.default, A.contiguous.default, A.t.default, A.alias.default,
          A.max_pool2d.default, A.pad.default, A.constant_pad_nd.default,
          # TFLite int8 AVERAGE_POOL_2D requires equal input/output scales; sharing avoids a requantize op
          A.avg_pool2d.default, A.adaptive_avg_pool2d.default}


def canonicalise(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Rewrite an exported graph, in place, into the form the TFLite converter will compute; returns it.

    - Inference-mode dropout (identity, ``train=False``) is removed. Left in, the consumer's input gets its own
      observer behind it, so the PT2E reference requantizes (and clips) there while litert-torch drops the dropout
      and that requantize with it (measured on the mitsis fusion head: 9 output steps on one FC, 3% of top-1
      flipped against LiteRT).
    - ``relu6`` becomes ``hardtanh(x, 0, 6)``, the form litert's conv/linear + activation patterns match. Left as
      relu6, the linear's output is observed before the clamp on its full range while TFLite fuses the clamp and
      keeps only the post-clamp scale: the reference rounds on a grid up to 10x coarser than the artifact.
    """
    for n in list(gm.graph.nodes):
        if n.op != "call_function":
            continue
        if n.target == A.dropout.default and len(n.args) > 2 and n.args[2] is False:
            n.replace_all_uses_with(n.args[0])
            gm.graph.erase_node(n)
        elif n.target == A.relu6.default:
            n.target = A.hardtanh.default
            n.args = (n.args[0], 0.0, 6.0)
    gm.graph.lint()
    gm.recompile()
    return gm


@functools.cache
def _patch_litert_qat() -> None:
    # litert 0.10's conv+BN QAT pattern annotator passes a plain function where torch.export wants an
    # nn.Module ("Expected 'mod' to be an instance of 'torch.nn.Module'"); wrapping it fixes QAT.
    # TODO(upstream): report to litert-torch; remove when fixed there.
    from litert_torch.quantize import pt2e_quantizer_utils as lqu
    from torchao.quantization.pt2e import WrapperModule

    orig = lqu._get_aten_graph_module_for_pattern

    def patched(pattern, example_inputs, is_cuda=False, **kw):
        if not isinstance(pattern, torch.nn.Module):
            pattern = WrapperModule(pattern)
        return orig(pattern, example_inputs, is_cuda, **kw)

    lqu._get_aten_graph_module_for_pattern = patched


def make_quantizer(is_qat: bool, per_channel: bool = True):
    """Build the ondevice INT8 quantizer (a litert PT2EQuantizer subclass). Import is lazy: litert is heavy."""
    _patch_litert_qat()
    from litert_torch.quantize import pt2e_quantizer as lq
    from litert_torch.quantize import pt2e_quantizer_utils as lqu
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    class OndeviceInt8Quantizer(lq.PT2EQuantizer):
        name = "ondevice-int8"

        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return canonicalise(super().transform_for_annotation(model))

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            cfg = self.global_config
            act, fixed = cfg.input_activation, cfg.fixed_qparams
            for n in model.graph.nodes:
                if n.op != "call_function":
                    continue
                ann = n.meta.get("quantization_annotation")
                if ann is not None and ann._annotated:
                    continue
                if n.target in _COMPUTE:
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={a: act for a in n.args[:2] if isinstance(a, Node)},
                        output_qspec=act, _annotated=True)
                elif n.target in _SOFTMAX:
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={n.args[0]: act}, output_qspec=fixed, _annotated=True)
                elif n.target == A.cat.default:
                    ins = [a for a in n.args[0] if isinstance(a, Node)]
                    first = ins[0]
                    qmap = {first: act}
                    for a in ins[1:]:
                        qmap[a] = SharedQuantizationSpec((first, n))
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map=qmap, output_qspec=SharedQuantizationSpec((first, n)), _annotated=True)
                elif n.target in _SHARE:
                    prev = n.args[0]
                    if not isinstance(prev, Node):
                        continue
                    pa = prev.meta.get("quantization_annotation")
                    if pa is not None and pa.output_qspec is not None:
                        n.meta["quantization_annotation"] = QuantizationAnnotation(
                            input_qspec_map={prev: SharedQuantizationSpec(prev)},
                            output_qspec=SharedQuantizationSpec(prev), _annotated=True)
                    else:  # e.g. a graph input: quantize the edge, share the output with it
                        n.meta["quantization_annotation"] = QuantizationAnnotation(
                            input_qspec_map={prev: act},
                            output_qspec=SharedQuantizationSpec((prev, n)), _annotated=True)
            lqu.propagate_annotation(model)
            return model

    return OndeviceInt8Quantizer().set_global(
        lq.get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=is_qat))
