"""mcu target: the int8 tflite as generated C (ondevice MCU engine), no interpreter on the device.

Writes a folder ``<model>_mcu_int8/``: ``od_model.c`` (one kernel call per op, const weights and quantization
tables, a static arena packed by lifetime), the ``od_model_api.h`` it implements, the kernels it calls, and the
source ``.tflite`` (so verify can always re-run the TFLM reference). Arena and flash go into the manifest.
"""
from __future__ import annotations

from pathlib import Path

from ondevice import log
from ondevice.cache import cache_dir
from ondevice.errors import ConfigError
from ondevice.export.manifest import build_manifest, name_inputs, write_manifest
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite import normalisation, quantization_record
from ondevice.export.tflite_util import check_int8_source, convert_tflite, with_model_names
from ondevice.fsutil import atomic_path
from ondevice.mcu.build import measure_flash
from ondevice.mcu.library import write_library
from ondevice.source import PTE_SUFFIXES


@register("mcu", extension="", quant="int8")
class MCUExporter(Exporter):
    """Generated C for Cortex-M (static arena, const weights), bit-exact with TFLM."""
    sources = ("run", "tflite")

    def precheck_source(self, run) -> None:
        """Refuse a float model, or an op the engine cannot lower (named, with its index), before writing anything."""
        from ondevice.mcu.codegen import generate
        from ondevice.mcu.reader import read_tflite
        data = convert_tflite(run)
        check_int8_source(data, self.artifact_name(run.name), self.name)
        generate(read_tflite(data, run.name), run.name)  # in memory only

    def export(self, run, out_dir: Path) -> Path:
        dest = self.artifact_path(run, out_dir)
        data = convert_tflite(run)
        check_int8_source(data, dest.name, self.name)
        with atomic_path(dest) as tmp:
            summary = write_library(data, tmp, name=run.name)
            flash = measure_flash(tmp)
            inputs, outputs = with_model_names(data, dest.name, summary["inputs"], summary["outputs"])
            manifest = build_manifest(
                tmp, run=run, target=self.name, quant=self.quant,
                inputs=name_inputs(run, inputs), outputs=outputs, ops=summary["ops"],
                delegation={"delegated": summary["ops"], "not_delegated": {},
                            "note": "every op is a generated call into the ondevice int8 kernels"},
                arena_bytes=summary["arena_bytes"], arena_source="static plan (generated code)",
                weight_bytes=summary["weight_bytes"], macs=summary["macs"], n_ops=summary["n_ops"],
                flash_bytes=flash["flash_bytes"], flash=flash,
                api_header="od_model_api.h", build="compile *.c kernels/*.c with -I. -Ikernels (see model.mk)",
                quantization=quantization_record(run), normalisation=normalisation(run))
            manifest["artifact"] = dest.name
        write_manifest(dest, manifest)
        return dest


def mcu_artifact(artifact) -> Path:
    """What an MCU device (a QEMU board, ``sim://mcu-host``) runs for ``artifact``: an mcu folder as it is, and for
    a .tflite its mcu build, made once and cached under ONDEVICE_CACHE by the file's SHA-256."""
    import hashlib
    p = Path(str(artifact))
    if p.suffix in PTE_SUFFIXES:
        raise ConfigError(f"{p.name} is an ExecuTorch program; microcontroller boards run generated C from a .tflite",
                          "profile it on sim://executorch, or bring the model as an int8 .tflite")
    if p.suffix != ".tflite" or not p.is_file():
        return p
    root = cache_dir() / "mcu-from-tflite" / hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    built = sorted(d for d in root.glob("*_mcu_int8") if d.with_name(d.name + ".manifest.json").is_file())
    if built:
        return built[0]
    from ondevice.export.api import export
    log.info(f"building the mcu library for {p.name} into {root} (cached)")
    return export(model=p, targets=["mcu"], out=root)["mcu"]
