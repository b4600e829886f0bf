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


# --- quiet by default: third-party noise goes to a log file -------------------------------------------------------
verbose = bool(os.environ.get("ONDEVICE_VERBOSE"))
LOG_NAME = "ondevice.log"


def set_verbose(on: bool) -> None:
    global verbose
    verbose = on
    if on:
        os.environ["ONDEVICE_VERBOSE"] = "1"  # child processes (e.g. torchrun workers) follow the root option


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def quiet(folder: str | os.PathLike | None, command: str = "", create: bool = True):
    """Send third-party output on stderr (Python warnings, logging, and C-level writes to fd 2) to
    ``<folder>/ondevice.log``; our own console keeps the real stderr. With ``--verbose`` this does nothing, nor
    when ``create`` is False and the folder is missing (the command's own check then reports it).

    fd 2 itself is redirected, because torchao's .so loader, absl, oneDNN and cpuinfo write there from C.
    """
    if verbose or folder is None or (not create and not os.path.isdir(folder)):
        yield None
        return
    import tempfile
    import time
    from pathlib import Path
    path = Path(folder) / LOG_NAME
    # collected beside, then moved in: a command refused before it made --out must not create it for a log
    logf = tempfile.NamedTemporaryFile("w", prefix=f"ondevice-{command or 'cmd'}-", suffix=".log", delete=False,
                                       buffering=1, encoding="utf-8", errors="replace")
    logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ondevice {command}\n")
    real_py, is_fd2 = sys.stderr, _stderr_is_fd2()
    if is_fd2:
        real_py.flush()
        ours = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    else:  # pytest capture, CliRunner: keep writing our lines where the caller looks
        ours = real_py
    saved_fd = os.dup(2)
    prev_file = console._file
    os.dup2(logf.fileno(), 2)
    # Python-level noise follows fd 2; the object is never closed, so handlers that cached it keep working
    if not is_fd2:
        sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")
    console.file = ours
    try:
        yield path
    finally:
        try:
            sys.stderr.flush()
        except (ValueError, OSError):
            pass
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        sys.stderr = real_py
        console._file = prev_file
        if ours is not real_py:
            ours.close()
        logf.close()
        _keep_log(Path(logf.name), path)


def _keep_log(tmp, path) -> None:
    """Append the collected log to ``path`` when the command made (or found) its folder; a command refused before
    any work leaves --out as it was, and its third-party noise is dropped with the temp file."""
    try:
        if path.parent.is_dir():
            with open(path, "ab") as dst:
                dst.write(tmp.read_bytes())
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def step(description: str):
    """One progress line per step: a spinner while it runs on a TTY; on a pipe the caller prints the result line."""
    if console.is_terminal:
        with console.status(description, spinner="dots"):
            yield
    else:
        yield
