"""Export targets, one registered exporter per file.

An exporter is a small class that declares its target name, artifact extension and quantization, and turns one
slim run into one artifact::

    @register("tflite", extension=".tflite", quant="int8")
    class TFLiteExporter(Exporter):
        def export(self, run, out_dir: Path) -> Path: ...

``extension=""`` means the artifact is a folder (e.g. ``mitsis_mcu_int8/``).
"""
from __future__ import annotations

from pathlib import Path

from ondevice.errors import ConfigError
from ondevice.registry import Registry

# Modules in this package that are infrastructure, not targets.
_NOT_TARGETS = {"registry", "api", "manifest", "tflite_util", "edgetpu_rules", "metadata", "calib"}


class Exporter:
    """Base class: subclasses implement :meth:`export`. Attributes are set by :func:`register`."""
    name: str = ""
    extension: str = ""
    quant: str = ""
    description: str = ""

    def artifact_name(self, model_name: str) -> str:
        """``<model>_<target>_<quant><ext>`` (the contract in docs/CONTRACTS.md section 4)."""
        return f"{model_name}_{self.name}_{self.quant}{self.extension}"

    def artifact_path(self, run, out_dir: str | Path) -> Path:
        return Path(out_dir) / self.artifact_name(run.name)

    def export(self, run, out_dir: Path) -> Path:  # pragma: no cover - interface
        """Write the artifact and its manifest atomically into ``out_dir``; return the artifact path."""
        raise NotImplementedError


def _check(key: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Exporter)):
        raise TypeError(f"export target {key!r} must subclass Exporter")
    if cls.extension and not cls.extension.startswith("."):
        raise ValueError(f"export target {key!r}: extension must start with '.', got {cls.extension!r}")
    if not cls.quant:
        raise ValueError(f"export target {key!r} must declare its quantization (e.g. 'int8')")


TARGETS: Registry[type[Exporter]] = Registry("export target", _check, package="ondevice.export",
                                              skip=tuple(_NOT_TARGETS), entry_points="ondevice.targets")


def register(name: str, *, extension: str, quant: str, description: str = ""):
    """Class decorator: register an :class:`Exporter` subclass under ``name``. Duplicates are refused."""
    def deco(cls):
        cls.name, cls.extension, cls.quant = name, extension, quant
        doc = (cls.__doc__ or "").strip()
        cls.description = description or (doc.splitlines()[0] if doc else "")
        return TARGETS.register(name)(cls)
    return deco




def target_names() -> list[str]:
    """All registered target names, sorted."""
    return TARGETS.names()


def get_exporter(name: str) -> Exporter:
    """An instance of the exporter for ``name``; unknown names raise ConfigError with a suggestion."""
    return TARGETS.get(name)()


def resolve_targets(targets) -> list[str]:
    """Expand ``all`` and comma lists, keep order, drop repeats; unknown names raise ConfigError."""
    out: list[str] = []
    for t in targets or ["all"]:
        for name in str(t).split(","):
            name = name.strip().lower()
            if not name:
                continue
            names = TARGETS.names() if name == "all" else [name]
            for n in names:
                TARGETS.get(n)  # raises ConfigError with a hint for unknown names
                if n not in out:
                    out.append(n)
    if not out:
        raise ConfigError("no export target given", f"use --target with one of: all, {', '.join(TARGETS.names())}")
    return out
