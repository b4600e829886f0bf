"""The lint report: one Violation per broken constraint, grouped per target, as data, JSON dicts or plain text."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ondevice.errors import ConfigError


@dataclass(frozen=True)
class Violation:
    """One broken constraint: where it is, what is wrong, and the exact change that fixes it."""

    target: str
    rule: str
    where: str            # module path (e.g. "encoder.block1.act"), or "<model>" for whole-model findings
    message: str
    fix: str
    auto_fixable: bool = False
    severity: str = "error"   # "error" fails the target; "warning" is advice (e.g. a slower fallback kernel)
    op: str | None = None     # ATen op and/or builtin involved, e.g. "aten.bmm -> BATCH_MATMUL"
    source: str | None = None  # user source line, "model.py:42"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    """Violations per target. ``ok(target)`` is True when the target has no error-severity violation."""

    targets: list[str]
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)   # modelled int8 figures: peak_activation_bytes, weight_bytes

    def for_target(self, target: str) -> list[Violation]:
        return [v for v in self.violations if v.target == target]

    def errors(self, target: str | None = None) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error" and (target is None or v.target == target)]

    def ok(self, target: str | None = None) -> bool:
        """True if ``target`` (or every linted target when None) has no errors; warnings do not count."""
        if target is not None and target not in self.targets:
            raise ConfigError(f"target {target!r} was not linted", f"lint with targets including {target!r}")
        return not self.errors(target)

    def to_dict(self, severity: str = "error") -> dict[str, list[dict]]:
        """``{target: [violation dicts]}``, every linted target present (an empty list means clean).

        ``severity``: "error" (the constraint violations, what slim_report.json stores), "warning" (advice:
        slower fallbacks, converter PAD ops, budgets) or "all".
        """
        if severity not in ("error", "warning", "all"):
            raise ValueError(f"severity must be error, warning or all, got {severity!r}")
        return {t: [v.to_dict() for v in self.for_target(t) if severity in ("all", v.severity)]
                for t in self.targets}

    def summary(self) -> dict[str, str]:
        out = {}
        for t in self.targets:
            vs = self.for_target(t)
            n_err = sum(v.severity == "error" for v in vs)
            n_warn = len(vs) - n_err
            out[t] = "ok" if not vs else f"{n_err} error(s), {n_warn} warning(s)"
        return out

    def format(self) -> str:
        """Plain text: one block per target, one line per violation, then the fix."""
        lines = []
        for t, status in self.summary().items():
            lines.append(f"{t}: {status}")
            for v in self.for_target(t):
                src = f" ({v.source})" if v.source else ""
                auto = " [auto-fixable]" if v.auto_fixable else ""
                lines.append(f"  {v.severity:7s} {v.rule:16s} {v.where}{src}: {v.message}")
                lines.append(f"          fix: {v.fix}{auto}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)
