"""Targets as data: each ``ondevice/slim/rules/<target>.toml`` becomes a TargetSpec in ``TARGETS``; ``RULES``
holds the check functions (registered by the rules modules)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ondevice.errors import ConfigError
from ondevice.registry import Registry
from ondevice.slim.lint.report import Violation

RULES_DIR = Path(__file__).parent.parent / "rules"  # ondevice/slim/rules
ALL = "all"


@dataclass(frozen=True)
class TargetSpec:
    """One target's constraints, loaded from ``rules/<name>.toml``."""

    name: str
    title: str
    lowering: str                       # "tflite": ops are checked as TFLite builtins; "aten": as ATen ops
    activations: tuple[str, ...]
    static_shapes: bool
    single_head: bool
    const_fc_weights: bool
    max_non1_dims: int                  # 0 = no limit
    int8_only: bool
    int64: str                          # "error" | "warning" | "ignore"
    float64: str
    allow: frozenset[str] | None        # None = every known builtin
    float_only: frozenset[str]
    delegated: frozenset[str] | None    # aten lowering: ops the delegate takes
    not_delegated_severity: str
    deny: dict[str, str]
    fixes: dict[str, str]
    budget: dict
    limits: dict = field(default_factory=dict)   # per-op limits, e.g. fc_max_out_rank, softmax_max_elements

    @classmethod
    def from_toml(cls, path: Path) -> "TargetSpec":
        d = tomllib.loads(path.read_text())
        ops = d.get("ops", {})
        allow = ops.get("allow", "*")
        delegated = ops.get("delegated")
        return cls(
            name=d["name"], title=d.get("title", d["name"]), lowering=d.get("lowering", "tflite"),
            activations=tuple(d.get("activations", ["relu6"])), static_shapes=bool(d.get("static_shapes", True)),
            single_head=bool(d.get("single_head", False)), const_fc_weights=bool(d.get("const_fc_weights", False)),
            max_non1_dims=int(d.get("max_non1_dims", 0)), int8_only=bool(d.get("int8_only", False)),
            int64=d.get("int64", "ignore"), float64=d.get("float64", "ignore"),
            allow=None if allow == "*" else frozenset(allow), float_only=frozenset(ops.get("float_only", [])),
            delegated=None if delegated is None else frozenset(delegated),
            not_delegated_severity=ops.get("not_delegated_severity", "warning"),
            deny=dict(d.get("deny", {})), fixes=dict(d.get("fixes", {})), budget=dict(d.get("budget", {})),
            limits=dict(d.get("limits", {})))


def _check_spec(name: str, spec: TargetSpec) -> None:
    if spec.lowering not in ("tflite", "aten"):
        raise ValueError(f"lint target {name}: lowering must be 'tflite' or 'aten', got {spec.lowering!r}")
    for key in ("int64", "float64", "not_delegated_severity"):
        if getattr(spec, key) not in ("error", "warning", "ignore"):
            raise ValueError(f"lint target {name}: {key} must be error|warning|ignore")


def _load_targets() -> None:
    for path in sorted(RULES_DIR.glob("*.toml")):
        if path.stem == "tflite_ops":
            continue
        spec = TargetSpec.from_toml(path)
        if spec.name != path.stem:
            raise ValueError(f"{path}: name {spec.name!r} must match the file name")
        TARGETS.register(spec.name)(spec)


TARGETS: Registry[TargetSpec] = Registry("lint target", check=_check_spec, loader=_load_targets)
#: rule(ctx: LintContext, spec: TargetSpec) -> violations; filled as the rules modules import
RULES: Registry[Callable[..., Iterable[Violation]]] = Registry("lint rule")


@lru_cache(maxsize=1)
def _op_table() -> tuple[dict[str, list[str]], dict[str, str]]:
    d = tomllib.loads((RULES_DIR / "tflite_ops.toml").read_text())
    return d["builtins"], d.get("fixes", {})


def target_names() -> list[str]:
    """Every target with a rules file, e.g. ['coreml', 'edgetpu', 'executorch', 'mcu', 'tflite', 'tflm']."""
    return TARGETS.names()


def get_target(name: str) -> TargetSpec:
    """The constraints of one target, as loaded from rules/<name>.toml."""
    return TARGETS.get(name)


def resolve_targets(targets: Sequence[str] | str | None) -> list[str]:
    """Expand ``all`` and comma lists (``tflite,mcu``, as export takes them), keep order, drop repeats; unknown
    names raise ConfigError with a suggestion."""
    if targets is None or isinstance(targets, str):
        targets = [targets or ALL]
    out: list[str] = []
    for t in targets:
        for part in str(t).split(","):
            part = part.strip().lower()
            if not part:
                continue
            for name in (TARGETS.names() if part == ALL else [part]):
                TARGETS.get(name)
                if name not in out:
                    out.append(name)
    if not out:
        raise ConfigError("no lint target given", f"use --target with one of: {', '.join(TARGETS.names())}, all")
    return out
