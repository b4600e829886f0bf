"""The artifact being profiled: its bytes, the format the device is told, its name and its manifest."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ondevice.errors import ConfigError
from ondevice.export.manifest import manifest_path, read_manifest
from ondevice.profiling import protocol as P

_FORMATS = {".tflite": P.ModelFormat.TFLITE, ".pte": P.ModelFormat.EXECUTORCH, ".bpte": P.ModelFormat.EXECUTORCH,
            ".mlpackage": P.ModelFormat.COREML}


@dataclass
class Artifact:
    path: Path
    name: str
    model: str
    data: bytes
    fmt: int
    sha256: str
    manifest: dict

    @classmethod
    def load(cls, path: str | Path) -> "Artifact":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"artifact {path} does not exist", "run `ondevice export` first, or check the path")
        # an exported artifact's manifest, with its checks; a .tflite brought as it is (or a firmware fixture
        # folder) has none
        manifest = read_manifest(path) if manifest_path(path).is_file() else {}
        if path.is_dir():  # the mcu target: C sources compiled into firmware; the device has it built in
            data, fmt = b"", P.ModelFormat.OD_MCU
        else:
            data = path.read_bytes()
            fmt = _FORMATS.get(path.suffix, P.ModelFormat.RAW)
        from ondevice.source import is_file_source, model_name
        # a .tflite/.pte brought as it is: named as export and the on-the-fly mcu build name it
        model = manifest.get("model") or (model_name(path) if is_file_source(path) else path.name.split("_")[0])
        sha = hashlib.sha256(data).hexdigest() if data else manifest.get("sha256", "")
        return cls(path, path.name, model, data, int(fmt), sha, manifest)

    def describe(self) -> dict:
        d = {"path": str(self.path), "name": self.name, "model": self.model, "sha256": self.sha256,
             "bytes": len(self.data) if self.data else self.manifest.get("bytes")}
        for k in ("target", "quant"):
            if k in self.manifest:
                d[k] = self.manifest[k]
        return d
