"""``--fix``: the safe rewrites (activation module swaps to ReLU6), and re-applying them to a rebuilt model."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from ondevice.errors import ConfigError
from ondevice.slim.lint.report import LintReport
from ondevice.slim.lint.rules import _act_name


def apply_fixes(module: nn.Module, report: LintReport) -> list[str]:
    """Apply the auto-fixable violations in place (activation module swaps to ReLU6); return what changed.

    Only parameter-free modules are swapped, so the state_dict keeps its keys; fine-tune afterwards
    (``ondevice slim --fix`` does) because the function changed.
    """
    targets: dict[int, nn.Module] = {}
    for v in report.violations:
        if not v.auto_fixable or v.rule != "activation":
            continue
        try:
            old = module.get_submodule(v.where)
        except AttributeError:
            continue
        if _act_name(old) not in (None, "relu6"):
            targets[id(old)] = old
    changed: list[str] = []
    # walk every (parent, name) edge, so a module instance registered under two names is swapped everywhere
    for path, parent in list(module.named_modules(remove_duplicate=False)):
        for attr, child in list(parent._modules.items()):
            if child is not None and id(child) in targets:
                setattr(parent, attr, nn.ReLU6(inplace=bool(getattr(child, "inplace", False))))
                changed.append(f"{path + '.' if path else ''}{attr}: {type(child).__name__} -> ReLU6")
    return changed


def reapply_fixes(module: nn.Module, changed: Sequence[str]) -> list[str]:
    """Re-apply fixes recorded by ``apply_fixes`` (e.g. from slim_report.json) to a freshly built module.

    A run built from user code with ``--fix`` must rebuild the same function before loading its weights:
    the swaps keep the state_dict keys, so a missing swap would load silently and compute something else.
    """
    done = []
    for line in changed:
        path, _, rest = line.partition(": ")
        old_name = rest.split(" -> ")[0]
        parent_path, _, attr = path.rpartition(".")
        try:
            parent = module.get_submodule(parent_path) if parent_path else module
            old = getattr(parent, attr)
        except AttributeError:
            raise ConfigError(f"cannot re-apply lint fix {line!r}: no module {path!r}",
                              "the model code changed since the run; re-run slim") from None
        if type(old).__name__ == "ReLU6":
            continue
        if type(old).__name__ != old_name:
            raise ConfigError(f"cannot re-apply lint fix {line!r}: {path} is a {type(old).__name__}",
                              "the model code changed since the run; re-run slim")
        setattr(parent, attr, nn.ReLU6(inplace=bool(getattr(old, "inplace", False))))
        done.append(line)
    return done
