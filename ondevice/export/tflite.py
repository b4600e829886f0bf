"""tflite target: the run's QAT graph as a fully int8 ``.tflite`` (litert-torch), int8 inputs and outputs.

Fails the export if any float tensor is left in the flatbuffer: a "mostly int8" model silently runs float kernels
on the phone and cannot run on the Edge TPU or TFLM.
"""
from __future__ import annotations

from pathlib import Path

from ondevice.export.manifest import build_manifest, name_inputs, write_manifest
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite_util import check_full_int8, convert_tflite, op_counts, tensor_specs
from ondevice.fsutil import atomic_path
from ondevice.mcu.reader import read_graph

# The tflm target's C array carries no TFLite metadata (flash on a microcontroller is precious).
METADATA_NOTE = ("TFLite metadata not embedded in the C array (it would cost flash); labels, I/O descriptions and "
                 "normalisation are in this manifest")


def quantization_record(run) -> dict:
    """What the manifest says about how the int8 numbers were obtained."""
    if hasattr(run, "quantization"):  # an existing .tflite says it itself
        return run.quantization
    recipe = getattr(run, "recipe", None) or {}
    return {"method": "PT2E QAT (the run's own converted graph, no re-training, no re-calibration)",
            "quantizer": recipe.get("quantizer", "ondevice-int8"),
            "weights": "int8 symmetric per-channel", "activations": "int8 asymmetric per-tensor"}


def normalisation(run) -> dict:
    """How raw features become the float input (the app needs it to feed the int8 input)."""
    if hasattr(run, "normalisation"):
        return run.normalisation
    recipe = getattr(run, "recipe", None) or {}
    if "inputs" in recipe and not recipe.get("frontend"):
        return {"feature": "none: the model's own float tensors, as given to forward()",
                "float_input": "as is (quantize with each input's scale and zero_point)"}
    try:
        from ondevice.features import FEATURE_SCALE
        return {"feature": "uint16 log-mel from ondevice.features", "float_input": f"feature * {FEATURE_SCALE}"}
    except ImportError:
        return {"feature": "uint16 log-mel from ondevice.features", "float_input": "ondevice.features.to_model_input"}


def metadata_info(run, inputs, outputs):
    """The TFLite metadata of this run's model: name, version, labels, input normalisation, I/O quantization."""
    from ondevice._version import __version__
    from ondevice.export.tflite_metadata import LABELS_FILE, ModelInfo, TensorInfo
    labels = list(getattr(run, "labels", None) or [])
    audio = "log-mel" in str(normalisation(run).get("feature", ""))
    mean = std = None
    if audio:
        from ondevice.features import FEATURE_SCALE
        mean, std = [0.0], [1.0 / FEATURE_SCALE]  # float input = (feature - 0) / std
    what = "log-mel features from ondevice.features" if audio else "the model's own input tensor"

    def q(spec) -> str:
        return (f"{spec.dtype}, scale {spec.scale:.9g}, zero point {spec.zero_point}" if spec.scale is not None
                else spec.dtype)

    ins = [TensorInfo(sp.name, f"{what}; {q(sp)}", sp.scale, sp.zero_point, sp.dtype, mean, std) for sp in inputs]
    outs = [TensorInfo(sp.name, f"class scores ({', '.join(labels)}); {q(sp)}" if labels else f"output; {q(sp)}",
                       sp.scale, sp.zero_point, sp.dtype, labels_file=LABELS_FILE if k == 0 and labels else None)
            for k, sp in enumerate(outputs)]
    return ModelInfo(name=run.name, version=f"ondevice {__version__}", inputs=ins, outputs=outs,
                     description=f"{run.name}: int8 model exported by ondevice" + (f" ({len(labels)} classes)" if labels else ""),
                     files={LABELS_FILE: ("\n".join(labels) + "\n").encode()} if labels else {})


def write_tflite_artifact(exporter: Exporter, run, out_dir: Path, data: bytes, check=check_full_int8,
                          **extra) -> Path:
    """Write ``data`` as this exporter's artifact, with TFLite metadata embedded, and its manifest (shared by tflite
    and edgetpu)."""
    from ondevice.export.tflite_metadata import METADATA_NAME, embed
    dest = exporter.artifact_path(run, out_dir)
    graph = read_graph(data, dest.name)
    check(graph, dest.name)  # the target's refusal: by default anything but fully int8 with int8 I/O
    inputs, outputs = tensor_specs(data, dest.name)
    inputs = name_inputs(run, inputs)
    ops = op_counts(graph)
    info = metadata_info(run, inputs, outputs)
    data = embed(data, info)
    meta = {"embedded": METADATA_NAME, "schema": "tflite-support metadata_schema.fbs 1.0 (M001)",
            "associated_files": sorted(info.files), "name": info.name, "version": info.version}
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        extra.setdefault("delegation", {"delegated": {}, "not_delegated": ops,
                                        "note": "runs on LiteRT's built-in int8 kernels (XNNPACK on the host)"})
        manifest = build_manifest(tmp, run=run, target=exporter.name, quant=exporter.quant, inputs=inputs,
                                  outputs=outputs, ops=ops, quantization=quantization_record(run),
                                  normalisation=normalisation(run), tflite_metadata=meta, **extra)
        manifest["artifact"] = dest.name
    write_manifest(dest, manifest)
    return dest


@register("tflite", extension=".tflite", quant="int8")
class TFLiteExporter(Exporter):
    """Fully int8 TFLite flatbuffer for LiteRT on Android/iOS/Linux."""
    sources = ("run", "tflite")

    def export(self, run, out_dir: Path) -> Path:
        return write_tflite_artifact(self, run, Path(out_dir), convert_tflite(run))
