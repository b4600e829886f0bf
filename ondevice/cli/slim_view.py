"""``ondevice slim`` for humans: the headline figures of the slim report."""
from __future__ import annotations

from pathlib import Path

from ondevice import log


def show_summary(report: dict, out: Path) -> None:
    """The slim report's headline figures as a table."""
    from rich.table import Table
    t = Table(title=f"slim: {report['recipe']} -> {out}", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("fp32_macro_f1", "int8_macro_f1", "int8_minus_fp32_pt", "audio_only_macro_f1", "keyword_only_macro_f1",
              "fused_macro_f1", "fusion_gain_pt", "int8_fp32_top1_agreement", "params", "macs", "int8_bytes",
              "train_seconds"):
        v = report.get(k)
        if v is None:
            continue
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else f"{v:,}")
    bad = {k: len(v) for k, v in report.get("constraints", {}).items() if v}
    t.add_row("constraint violations", str(bad or "none"))
    log.out.print(t)
