"""The constraint linter: checks a model against each target's device rules and says exactly what to change.

The per-target facts (op allowlists, rank limits, dtype policies, RAM/flash budgets) are data in
``ondevice/slim/rules/<target>.toml``; ``rules/tflite_ops.toml`` says which TFLite builtin each ATen op becomes.
The checks themselves are functions registered in ``RULES``. Everything runs on one ``torch.export`` graph
(shared by all targets), plus a scan of the ``nn.Module`` tree for things the graph hides (module types,
``num_heads`` attributes).

    report = lint(model, example_inputs, ["edgetpu", "tflm"])
    report.ok("edgetpu"); report.to_dict(); report.format()
    apply_fixes(model, report)          # safe module swaps only, e.g. GELU -> ReLU6

Modules: ``report`` (Violation, LintReport), ``config`` (TargetSpec, TARGETS, RULES), ``context`` (the exported
graph), ``rules`` and ``rules_ops`` (the checks), ``memory`` (modelled int8 arena and budgets), ``fixes`` (--fix),
``api`` (lint(), and what ``ondevice lint`` does before ``ondevice/cli/lint_view.py`` prints it).
"""
from ondevice.slim.lint.api import LintRun, lint, lint_model, load_model
from ondevice.slim.lint.config import (ALL, RULES, RULES_DIR, TARGETS, TargetSpec, get_target, resolve_targets,
                                       target_names)
from ondevice.slim.lint.context import LintContext
from ondevice.slim.lint.fixes import apply_fixes, reapply_fixes
from ondevice.slim.lint.memory import explicit_pad, peak_activation_bytes, weight_bytes
from ondevice.slim.lint.report import LintReport, Violation

__all__ = ["ALL", "RULES", "RULES_DIR", "TARGETS", "LintContext", "LintReport", "LintRun", "TargetSpec",
           "Violation", "apply_fixes", "explicit_pad", "get_target", "lint", "lint_model", "load_model",
           "peak_activation_bytes", "reapply_fixes", "resolve_targets", "target_names", "weight_bytes"]
