"""``ondevice lint`` for humans: the lint report as a table on a terminal, as plain text in pipes and CI logs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ondevice import log
from ondevice.slim.lint import ALL, LintReport, lint_model


def report_table(report: LintReport):
    """A rich Table of every violation (one row each), for terminal output."""
    from rich.table import Table
    tab = Table(title="constraint lint", show_lines=False)
    for col in ("target", "sev", "rule", "where", "problem", "fix"):
        tab.add_column(col, overflow="fold")
    for v in report.violations:
        where = v.where + (f" ({v.source})" if v.source else "")
        tab.add_row(v.target, v.severity, v.rule, where, v.message,
                    v.fix + (" [auto: --fix]" if v.auto_fixable else ""))
    return tab


def show_report(report: LintReport) -> None:
    """Print the violations, the modelled memory and the notes."""
    if report.violations and log.out.is_terminal:
        log.out.print(report_table(report))
        for t, status in report.summary().items():
            log.out.print(f"{t}: {status}")
    else:  # pipes and CI logs get the plain text form
        log.out.print(report.format(), markup=False, highlight=False, soft_wrap=True)
    st = report.stats
    if "peak_activation_bytes" in st:
        log.info(f"modelled int8: activations peak {st['peak_activation_bytes'] / 1024:.1f} KiB at {st['peak_at']}, "
                 f"weights {st['weight_bytes'] / 1024:.1f} KiB (an estimate; the exporters measure the real arena)")
    for n in report.notes if log.out.is_terminal else ():  # format() already printed them
        log.warn(n)


def lint_command(recipe: str | None = None, model: str | None = None, targets: Sequence[str] = (ALL,),
                 fix: bool = False, out: Path | None = None) -> bool:
    """What ``ondevice lint`` does: load, lint, optionally fix and re-lint, print, write JSON. True if clean."""
    run = lint_model(recipe=recipe, model=model, targets=targets, fix=fix)
    show_report(run.report)
    if out is not None:
        run.write(out)
    return run.report.ok()
