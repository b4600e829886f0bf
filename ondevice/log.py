"""One console for all output. Honours NO_COLOR and non-TTY output (no colour, no live bars)."""
from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_no_color = bool(os.environ.get("NO_COLOR")) or not sys.stderr.isatty()
console = Console(stderr=True, no_color=_no_color, highlight=False, soft_wrap=True)
out = Console(no_color=bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty(), highlight=False)


def info(msg: str) -> None:
    console.print(msg)


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {msg}")


@contextlib.contextmanager
def progress(description: str, total: int | None):
    """A progress bar on a TTY; on a pipe/CI it prints nothing per step, so logs stay short."""
    p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                 console=console, disable=not console.is_terminal, transient=False)
    with p:
        task = p.add_task(description, total=total, status="")

        def advance(n: int = 1, status: str = "") -> None:
            p.update(task, advance=n, status=status)

        yield advance
