"""tflite target: the run's QAT graph as a fully int8 ``.tflite`` (litert-torch), int8 inputs and outputs.

Fails the export if any float tensor is left in the flatbuffer: a "mostly int8" model silently runs float kernels
on the phone and cannot run on the Edge TPU or TFLM.
"""
from __future__ import annotations

from pathlib import Path

from ondevice.export.manifest import build_manifest, write_manifest
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite_util import check_full_int8, convert_tflite, op_counts, read_graph, tensor_specs
from ondevice.fsutil import atomic_path

# TFLite metadata (the support library's TFLITE_METADATA buffer) is not embedded: see ondevice/export/README.md.
METADATA_NOTE = ("TFLite metadata not embedded: tflite-support pins protobuf<4 and imports only with a sys.modules "
                 "workaround; labels, I/O descriptions and normalisation are in this manifest instead")


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
    try:
        from ondevice.features import FEATURE_SCALE
        return {"feature": "uint16 log-mel from ondevice.features", "float_input": f"feature * {FEATURE_SCALE}"}
    except ImportError:
        return {"feature": "uint16 log-mel from ondevice.features", "float_input": "ondevice.features.to_model_input"}


def write_tflite_artifact(exporter: Exporter, run, out_dir: Path, data: bytes, check=check_full_int8, **extra) -> Path:
    """Write ``data`` as this exporter's artifact and its manifest (shared by tflite and edgetpu)."""
    dest = exporter.artifact_path(run, out_dir)
    graph = read_graph(data, dest.name)
    check(graph, dest.name)  # the target's refusal: by default anything but fully int8 with int8 I/O
    inputs, outputs = tensor_specs(data, dest.name)
    ops = op_counts(graph)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        extra.setdefault("delegation", {"delegated": {}, "not_delegated": ops,
                                        "note": "runs on LiteRT's built-in int8 kernels (XNNPACK on the host)"})
        manifest = build_manifest(tmp, run=run, target=exporter.name, quant=exporter.quant, inputs=inputs,
                                  outputs=outputs, ops=ops, quantization=quantization_record(run),
                                  normalisation=normalisation(run), tflite_metadata=METADATA_NOTE, **extra)
        manifest["artifact"] = dest.name
    write_manifest(dest, manifest)
    return dest


@register("tflite", extension=".tflite", quant="int8")
class TFLiteExporter(Exporter):
    """Fully int8 TFLite flatbuffer for LiteRT on Android/iOS/Linux."""
    sources = ("run", "tflite")

    def export(self, run, out_dir: Path) -> Path:
        return write_tflite_artifact(self, run, Path(out_dir), convert_tflite(run))
