"""coreml target: an ``.mlpackage`` (mlprogram, iOS 17) with int8 weights, W8A8 where it converts.

Three ways, tried in order, and the manifest says which one was used:
1. the run's converted QAT graph itself (weight quantize ops folded): W8A8 with the QAT-trained scales, the same
   numbers every other target uses. coremltools maps its quantize/dequantize ops to iOS 17 ``quantize``/
   ``dequantize`` and int8 ``constexpr_affine_dequantize`` weights;
2. ``CoreMLQuantizer`` PTQ: the QAT-trained float weights re-prepared with Core ML's own quantizer and calibrated
   on the run's calibration set (no re-training); about 50 s of CPU for its pattern matching alone;
3. int8 weights only (float16 activations), said loudly on the console and in the manifest: never silent float.
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ondevice import log
from ondevice.errors import ExportError
from ondevice.export.manifest import build_manifest, write_manifest
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite import normalisation
from ondevice.fsutil import atomic_path
from ondevice.runtimes.coreml import spec_summary



def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:240] if s else type(e).__name__


def _w8a8(run):
    """The float model re-prepared with CoreMLQuantizer (PTQ) and calibrated on run.calibration()."""
    import copy

    import torch
    from coremltools.optimize.torch.quantization.quantization_config import LinearQuantizerConfig, QuantizationScheme
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    qcfg = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": QuantizationScheme.symmetric, "milestones": [0, 0, 10, 10],
        "activation_dtype": torch.quint8, "weight_dtype": torch.qint8, "weight_per_channel": True}})
    m = copy.deepcopy(run.float_model()).eval()
    ex = tuple(run.example_input())
    prepared = prepare_pt2e(torch.export.export(m, ex).module(), CoreMLQuantizer(qcfg))
    calib = run.calibration_inputs()
    with torch.no_grad():
        for i in range(calib[0].shape[0]):
            prepared(*(c[i:i + 1] for c in calib))
    conv = convert_pt2e(prepared)
    return torch.export.export(conv, ex).run_decompositions({}), int(calib[0].shape[0])


def _qat_graph(run):
    """The run's converted QAT graph with weight quantize ops folded into int8 constants, exported for Core ML."""
    import torch
    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint
    gm = run.qat_module()
    constant_fold(gm, _quant_node_constraint)
    return torch.export.export(gm, tuple(run.example_input())).run_decompositions({})


def _convert(ep, input_name: str):
    import logging

    import coremltools as ct
    from ondevice.export.tflite_util import _quiet
    # coremltools warns about untested torch/TF versions and draws progress bars: keep the CLI to our lines.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with _quiet():
        return ct.convert(ep, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)


def _weights_int8(mlmodel):
    import coremltools.optimize.coreml as cto
    # weight_threshold=0: the default skips tensors under 2048 elements, which would leave small layers float.
    cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                                           weight_threshold=0))
    from ondevice.export.tflite_util import _quiet
    with _quiet():
        return cto.linear_quantize_weights(mlmodel, config=cfg)


def rename_io(mlmodel, input_name, output_name: str = "output"):
    """Give the inputs and the first output stable names (converters call them x / dequantize_per_tensor_8).

    ``input_name`` is one name (the first input) or a list, one per input in order."""
    import coremltools as ct
    spec = mlmodel.get_spec()
    names = [input_name] if isinstance(input_name, str) else list(input_name)
    old_ins = [f.name for f in spec.description.input][:len(names)]
    old_out = spec.description.output[0].name
    if old_ins == names[:len(old_ins)] and old_out == output_name:
        return mlmodel
    for old, new in zip(old_ins, names):
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    if old_out != output_name:
        ct.utils.rename_feature(spec, old_out, output_name)
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=platform.system() != "Darwin")


@register("coreml", extension=".mlpackage", quant="int8")
class CoreMLExporter(Exporter):
    """Core ML mlprogram (iOS 17) with int8 weights and, where it converts, int8 activations (W8A8)."""

    def export(self, run, out_dir: Path) -> Path:
        import torch
        dest = self.artifact_path(run, out_dir)
        record: dict = {"deployment_target": "iOS17", "format": "mlprogram"}
        ml, errors = None, {}
        try:
            ml = _convert(_qat_graph(run), "mel")
            record.update(mode="W8A8", source="qat", method=(
                "run.qat_module() (the converted PT2E QAT graph, weight quantize ops folded) converted directly: "
                "QAT-trained int8 per-channel weights and int8 per-tensor activation scales; no re-calibration"))
        except Exception as e:  # noqa: BLE001 - depends on the ops; the next way is tried, and recorded
            errors["qat_graph"] = _first_line(e)
        if ml is None:
            try:
                ep, n_calib = _w8a8(run)
                ml = _convert(ep, "mel")
                record.update(mode="W8A8", source="ptq", method=(
                    "run.float_model() (QAT-trained weights) re-prepared with executorch CoreMLQuantizer (PTQ, "
                    "symmetric, per-channel int8 weights, uint8 activations) and calibrated on "
                    f"{n_calib} run.calibration() inputs; no re-training"))
                log.warn(f"coreml: the QAT graph did not convert ({errors['qat_graph']}); used CoreMLQuantizer PTQ")
            except Exception as e:  # noqa: BLE001
                errors["coreml_quantizer"] = _first_line(e)
        if errors:
            record["w8a8_errors"] = errors
        if ml is None:
            reason = "; ".join(f"{k}: {v}" for k, v in errors.items())
            log.warn(f"coreml: W8A8 did not convert ({reason}); exporting int8 weights, float16 activations")
            try:
                ep = torch.export.export(run.float_model().eval(), tuple(run.example_input())).run_decompositions({})
                ml = _weights_int8(_convert(ep, "mel"))
            except Exception as e2:  # noqa: BLE001
                raise ExportError(f"Core ML could not convert {run.name}: {_first_line(e2)}",
                                  "run `ondevice lint --target coreml`; set ONDEVICE_DEBUG=1 for the traceback") from e2
            record.update(mode="W8", source="float", w8a8_error=reason, method=(
                "run.float_model() (QAT-trained weights) converted, then coremltools linear_quantize_weights "
                "(int8 symmetric); activations stay float16 because W8A8 did not convert"))
        want = [s.name for s in run.input_specs()] if hasattr(run, "input_specs") else []
        ml = rename_io(ml, want or (getattr(run, "recipe", None) or {}).get("input", {}).get("name") or "input")
        inputs, outputs, ops = spec_summary(ml)
        n_quant = sum(v for k, v in ops.items() if k in ("quantize", "dequantize", "constexpr_affine_dequantize",
                                                          "constexpr_blockwise_shift_scale"))
        record["quant_ops"] = n_quant
        with atomic_path(dest) as tmp:
            # coremltools insists on the .mlpackage suffix, so save beside the temp name and move it in.
            staged = tmp.with_name(tmp.name + ".mlpackage")
            try:
                ml.save(str(staged))
                staged.rename(tmp)
            finally:
                if staged.exists():
                    import shutil
                    shutil.rmtree(staged, ignore_errors=True)
            m = build_manifest(tmp, run=run, target=self.name, quant=self.quant, inputs=inputs, outputs=outputs,
                               ops=ops, delegation={"delegated": {}, "not_delegated": {},
                                                    "note": "Core ML picks CPU/GPU/ANE per op at load time on device"},
                               quantization=record, normalisation=normalisation(run),
                               predict="runs only on macOS" if platform.system() != "Darwin" else "available")
        m["artifact"] = dest.name
        write_manifest(dest, m)
        return dest
