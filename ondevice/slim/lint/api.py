"""``lint()``: one export, every rule, every target; and what ``ondevice lint`` does before it prints."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from ondevice import log
from ondevice.errors import ConfigError
from ondevice.slim.lint import rules, rules_ops  # noqa: F401 - the rules register themselves in RULES
from ondevice.slim.lint.config import ALL, RULES, TARGETS, resolve_targets
from ondevice.slim.lint.context import LintContext
from ondevice.slim.lint.fixes import apply_fixes
from ondevice.slim.lint.memory import peak_activation_bytes, weight_bytes
from ondevice.slim.lint.report import LintReport


def lint(module: nn.Module, example_inputs: Sequence | torch.Tensor,
         targets: Sequence[str] | str | None = ALL, quant_check: bool = False) -> LintReport:
    """Check ``module`` against each target's constraints; never raises for a model problem.

    ``example_inputs`` are the fixed-shape inputs (batch 1) the model is exported with; ``targets`` are names
    from ``target_names()`` or ``"all"``. Export runs once and every target reads the same graph.
    ``quant_check`` also annotates the graph with ondevice's int8 quantizer and reports ops it leaves float
    (imports litert-torch, a few seconds).
    """
    names = resolve_targets(targets)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"lint needs an nn.Module, got {type(module).__name__}",
                          "pass the model object (e.g. recipe.build())")
    ctx = LintContext(module, tuple(example_inputs))
    report = LintReport(targets=names)
    if quant_check and any(TARGETS.get(n).int8_only for n in names):
        why = ctx.check_quantizer()
        if why:
            report.notes.append(why)
    report.stats["weight_bytes"] = weight_bytes(module)
    if not ctx.exported:
        report.notes.append("torch.export failed, so only the module-tree rules ran; fix the export first")
    else:
        peak, at = peak_activation_bytes(ctx)
        report.stats.update(peak_activation_bytes=peak, peak_at=at, source="modelled")
    specs = [TARGETS.get(n) for n in names]
    for spec in specs:
        for _, rule in RULES.items():
            report.violations.extend(rule(ctx, spec))
    return report


@dataclass
class LintRun:
    """What ``ondevice lint`` did: the model's name, its final report, and the --fix swaps made in memory."""

    name: str
    report: LintReport
    fixed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``--out`` JSON."""
        report = self.report
        return {"model": self.name, "targets": report.targets,
                "ok": {t: report.ok(t) for t in report.targets}, "fixed": self.fixed,
                "stats": report.stats, "notes": report.notes, "constraints": report.to_dict(),
                "warnings": report.to_dict("warning")}

    def write(self, out: Path) -> None:
        from ondevice.fsutil import write_json_atomic
        write_json_atomic(out, self.to_dict())
        log.info(f"wrote {out}")


def load_model(recipe: str | None, model: str | None) -> tuple[nn.Module, tuple, str]:
    """(module, example inputs, name) of a recipe or of a user's ``path.py:build``."""
    if recipe and model:
        raise ConfigError("give either --recipe or --model, not both", "lint one model at a time")
    if model:
        from ondevice.models.user import load_user_model
        um = load_user_model(model)
        if um.default_inputs:
            log.info(f"{um.name}: no example_inputs given; linting with the feature input shape "
                     f"{list(um.example_inputs[0].shape)}")
        return um.module, um.example_inputs, um.name
    from ondevice.models import get_recipe
    r = get_recipe(recipe or "mitsis")
    return r.build(**r.arch), tuple(r.example_inputs()), r.name


def lint_model(recipe: str | None = None, model: str | None = None, targets: Sequence[str] = (ALL,),
               fix: bool = False) -> LintRun:
    """What ``ondevice lint`` does before it prints: load, lint (with the int8 quantizer check), and with
    ``fix`` apply the safe swaps in memory and lint again."""
    module, example_inputs, name = load_model(recipe, model)
    report = lint(module, example_inputs, list(targets) or [ALL], quant_check=True)
    changed: list[str] = []
    if fix:
        changed = apply_fixes(module, report)
        for c in changed:
            log.info(f"fixed: {c}")
        if changed:
            log.info("the swap is in memory only: `ondevice slim --fix` applies it and fine-tunes; "
                     "edit your source to keep it")
            report = lint(module, example_inputs, report.targets, quant_check=True)
    return LintRun(name, report, changed)
