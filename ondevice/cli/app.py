"""The `ondevice` command line. Option parsing only: every command calls one library function."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from ondevice import __version__
from ondevice.errors import OndeviceError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Take a PyTorch model to phones and microcontrollers, and prove that it works there.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: the synthetic corpus and checks of your own data.")
app.add_typer(data_app, name="data")

_state = {"debug": False}


def _versions() -> str:
    """ondevice, every package of the pinned stack (from our own metadata, so it follows pyproject.toml), and the
    toolchains flash/profile call. No backend is imported: this stays fast."""
    import re
    import shutil
    import subprocess
    from importlib.metadata import PackageNotFoundError, requires, version
    lines = [f"ondevice {__version__}"]
    try:
        reqs = requires("ondevice") or []
    except PackageNotFoundError:
        reqs = []
    for req in reqs:
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*(==\s*([^;\s]+))?[^;]*(;.*extra == \"(\w+)\")?", req)
        if not m or (m.group(5) or "") not in ("", "ios", "reference"):
            continue
        name, pin, extra = m.group(1), m.group(3), m.group(5)
        try:
            have = version(name)
            note = f" (pinned {pin})" if pin and have.split("+")[0] != pin else ""
        except PackageNotFoundError:
            have, note = "(not installed)", f" [optional: ondevice[{extra}]]" if extra else ""
        lines.append(f"{name} {have}{note}")
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "edgetpu_compiler"):
        path = shutil.which(tool)
        first = "(not on PATH)"
        if path:
            try:
                out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
                first = (out.strip().splitlines() or ["(no version)"])[0]
            except (OSError, subprocess.SubprocessError):
                first = "(version unknown)"
        lines.append(f"{tool}: {first}")
    return "\n".join(lines)


def _version_cb(value: bool):
    if value:
        typer.echo(_versions())
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True,
                                       help="Print ondevice and backend versions, then exit."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks for expected errors."),
          verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="Show third-party warnings and banners (otherwise in OUT/ondevice.log).")):
    """ondevice: slim, export, verify, flash and profile on-device models."""
    _state["debug"] = debug or bool(os.environ.get("ONDEVICE_DEBUG"))
    from ondevice import log
    log.set_verbose(verbose or log.verbose)


def _quiet(folder, command: str, create: bool = True):
    """Third-party noise of one command goes to FOLDER/ondevice.log (see ondevice.log.quiet)."""
    from ondevice import log
    return log.quiet(folder, command, create)


def _print_json(obj) -> None:
    import json
    typer.echo(json.dumps(obj, indent=2, default=str))


@data_app.command("synth")
def data_synth(out: Path = typer.Option(..., "--out", help="Folder to write WAVs, metadata.csv and splits into."),
               size: int = typer.Option(2400, "--size", min=12, help="Number of clips."),
               seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same corpus."),
               jobs: int = typer.Option(0, "--jobs", help="Parallel espeak-ng processes (0: one per core).")):
    """Write the deterministic espeak-ng audio-text emotion corpus (4 classes, 1 s 16 kHz clips)."""
    from ondevice.data.synth import synth
    synth(out, size=size, seed=seed, jobs=jobs)


@data_app.command("check")
def data_check(folder: str = typer.Argument(..., help="Dataset: metadata.csv + WAVs folder, .npz folder, "
                                                     "or path.py:make_dataset."),
               model: Optional[str] = typer.Option(None, "--model", help="path.py:build whose inputs the .npz "
                                                                          "or make_dataset samples must fit.")):
    """Validate a dataset against the model's inputs; names the first bad row or sample."""
    from ondevice.data.user import check_data
    _print_json(check_data(folder, model))


@app.command()
def lint(recipe: Optional[str] = typer.Option(None, "--recipe", help="Built-in recipe name (e.g. mitsis)."),
         model: Optional[str] = typer.Option(None, "--model", help="User model as path.py:build_fn."),
         target: List[str] = typer.Option(["all"], "--target", help="Target(s) to lint for (repeat the option "
                                                                     "or give a comma list: tflite,mcu), or 'all'."),
         fix: bool = typer.Option(False, "--fix", help="Apply the safe fixes (e.g. ReLU/GELU -> ReLU6)."),
         out: Optional[Path] = typer.Option(None, "--out", help="Write the lint report JSON here.")):
    """Check a model against each target's device constraints and say exactly what to change."""
    if out is not None:
        from ondevice.fsutil import check_out
        check_out(out, "file")
    from ondevice.cli.lint_view import lint_command
    ok = lint_command(recipe=recipe, model=model, targets=target, fix=fix, out=out)
    raise typer.Exit(0 if ok else 4)


@app.command()
def slim(recipe: Optional[str] = typer.Option(None, "--recipe", help="Built-in recipe (default: mitsis)."),
         model: Optional[str] = typer.Option(None, "--model", help="User model as path.py:build_fn."),
         data: Optional[str] = typer.Option(None, "--data", help="Dataset: metadata.csv + WAVs folder, "
                                                                  ".npz folder, or path.py:make_dataset."),
         out: Path = typer.Option(..., "--out", help="Run folder, e.g. runs/mitsis."),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="FP32 epochs (recipe default)."),
         qat_epochs: Optional[int] = typer.Option(None, "--qat-epochs", help="INT8 QAT epochs (recipe default)."),
         target: List[str] = typer.Option(["all"], "--target", help="Targets whose constraints must hold "
                                                                     "(repeat, or a comma list: tflite,mcu)."),
         fix: bool = typer.Option(False, "--fix", help="Apply safe lint fixes before training."),
         seed: int = typer.Option(0, "--seed"),
         ptq: bool = typer.Option(False, "--ptq", help="No training: calibrate the model's own weights (INT8 PTQ).")):
    """Lint, train FP32, then INT8 QAT (PT2E); writes a checkpoint and slim_report.json. torchrun-able."""
    from ondevice.cli.slim_view import show_summary
    from ondevice.slim.train import slim as run
    report = run(recipe=recipe, model=model, data=data, out=out, epochs=epochs, qat_epochs=qat_epochs,
                 targets=target, fix=fix, seed=seed, ptq=ptq)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the run
        show_summary(report, out)


@app.command()
def export(target: List[str] = typer.Option(["all"], "--target",
                                            help="executorch, tflite, edgetpu, coreml, tflm, mcu or all."),
           model: Optional[Path] = typer.Option(None, "--model", help="Slim run folder or an existing int8 .tflite "
                                                                      "(default: shipped mitsis)."),
           out: Path = typer.Option(Path("artifacts"), "--out", help="Artifact folder."),
           allow_cpu_ops: bool = typer.Option(False, "--allow-cpu-ops",
                                              help="Keep an Edge TPU model whose compiler runs ops on the CPU.")):
    """Export one QAT run to device artifacts, each with a .manifest.json beside it."""
    from ondevice.export.api import export as run
    with _quiet(out, "export"):
        run(model=model, targets=target, out=out, allow_cpu_ops=allow_cpu_ops)


@app.command()
def verify(artifacts: Path = typer.Argument(Path("artifacts"), help="Folder of exported artifacts."),
           data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder, .npz folder or "
                                                                     "path.py:make_dataset (default: synthetic test "
                                                                     "split, or the data a tensor model was slimmed "
                                                                     "on)."),
           model: Optional[Path] = typer.Option(None, "--model", help="Slim run the artifacts came from."),
           out: Optional[Path] = typer.Option(None, "--out", help="Where to write verify_report.json.")):
    """Run every artifact on its real host runtime and compare it with the QAT PyTorch model."""
    from ondevice.cli.verify_view import show
    from ondevice.verify import verify as run
    with _quiet(out.parent if out is not None and out.suffix == ".json" else (out or artifacts), "verify",
                create=out is not None):
        run(artifacts, data=data, model=model, out=out, on_report=show)


@app.command()
def profile(artifact: Path = typer.Argument(..., help="Artifact file (or folder for mcu)."),
            device: str = typer.Option(..., "--device", help="Device URL (serial://, socket://, qemu://, adb://, "
                                                             "ios://, sim://, fault://) or 'all'."),
            runs: int = typer.Option(100, "--runs", min=1), warmup: int = typer.Option(10, "--warmup", min=0),
            power: Optional[str] = typer.Option(None, "--power", help="Power monitor URL, e.g. ppk2:///dev/ttyACM1."),
            board: Optional[str] = typer.Option(None, "--board", help="Board profile for the power model."),
            out: Path = typer.Option(Path("profile"), "--out", help="Folder for profile.json and report.html."),
            mode: str = typer.Option("model", "--mode", help="model, frontend+model or frontend (audio frontend "
                                                             "on the device, timed with the model or alone)."),
            timeout: Optional[float] = typer.Option(None, "--timeout", min=0.05,
                                                    help="Seconds to wait for each reply (default: 1 s plus two "
                                                         "maximum frames at the link's baud rate)."),
            retries: Optional[int] = typer.Option(None, "--retries", min=0,
                                                  help="Re-sends of an unanswered idempotent request (default 3)."),
            run_timeout: Optional[float] = typer.Option(None, "--run-timeout", min=0.1,
                                                        help="Seconds of silence allowed during the timed runs "
                                                             "(default 10; raise it for slower models).")):
    """Measure latency (p50/p90/p99), peak RAM, flash and energy on a device over the framed protocol."""
    from ondevice.cli.profile_view import profile_cli
    with _quiet(out, "profile"):
        profile_cli(artifact=artifact, device=device, runs=runs, warmup=warmup, power=power, board=board, out=out,
                    mode=mode, timeout=timeout, retries=retries, run_timeout=run_timeout)


@app.command()
def devices():
    """List attached devices: serial ports, adb, usbmux, QEMU boards and simulators."""
    from ondevice.cli.devices_view import print_devices
    from ondevice.profiling.devices import list_devices
    print_devices(list_devices())


@app.command()
def flash(board: str = typer.Option(..., "--board", help="Board name, e.g. qemu-mps2-an386 or nucleo-f446re."),
          artifact: Optional[Path] = typer.Option(None, "--artifact", help="mcu artifact folder to build in."),
          probe: Optional[str] = typer.Option(None, "--probe", help="pyocd probe UID (real boards).")):
    """Build the firmware for a board and load it (QEMU, or a real board through a pyocd probe)."""
    from ondevice.flash import flash as run
    run(board=board, artifact=artifact, probe=probe)


@app.command()
def serve(board: str = typer.Option("qemu-mps2-an386", "--board", help="Emulated board, e.g. qemu-mps2-an386."),
          artifact: Optional[Path] = typer.Option(None, "--artifact", help="mcu artifact folder (default: the "
                                                                             "image last flashed to the board)."),
          tcp: Optional[str] = typer.Option(None, "--tcp", help="Loopback HOST:PORT to listen on (default "
                                                                "127.0.0.1 and a free port)."),
          pty: bool = typer.Option(False, "--pty", help="Expose the UART as a pseudo-terminal instead.")):
    """Boot an emulated board and expose its UART on a loopback TCP port or a pty until Ctrl-C (profile, the
    MLPerf Tiny / EEMBC runner or a terminal can connect)."""
    from ondevice.serve import serve as run
    run(board=board, artifact=artifact, tcp=tcp, pty=pty,
        on_ready=lambda info: print(f"serving {info['board']} on {info['address']}", flush=True))


def main(argv: list[str] | None = None) -> int:
    """Entry point: expected errors become one line plus a hint and a non-zero exit code; Ctrl-C exits 130."""
    with _interrupts() as interrupted:
        rc = _main(argv)
    if interrupted and rc != 130:  # a Ctrl-C that some library swallowed still stops with 130
        print("interrupted", file=sys.stderr)
        return 130
    return rc


def _in_finalizer(frame, depth: int = 64) -> bool:
    while frame is not None and depth > 0:
        if frame.f_code.co_name == "__del__":
            return True
        frame, depth = frame.f_back, depth - 1
    return False


@contextlib.contextmanager
def _interrupts():
    """Record every SIGINT; one that lands in a finalizer (where Python can only print ``Exception ignored in:
    StorageWeakRef.__del__`` and go on) is delivered again just after it, so that it stops the command."""
    seen: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    prev_alarm: list = []

    def later():
        if not prev_alarm:
            prev_alarm.append(signal.signal(signal.SIGALRM, on_sigint))
        signal.setitimer(signal.ITIMER_REAL, 0.02)

    def on_sigint(signum, frame):
        if signum == signal.SIGINT:
            seen.append(True)
        if _in_finalizer(frame):
            later()
            return
        raise KeyboardInterrupt

    def on_unraisable(u):  # raised in a finalizer some other way (e.g. a C callback): deliver it again
        if isinstance(u.exc_value, KeyboardInterrupt):
            seen.append(True)
            later()
            return
        prev_hook(u)

    prev_sig, prev_hook = signal.signal(signal.SIGINT, on_sigint), sys.unraisablehook
    sys.unraisablehook = on_unraisable
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, prev_sig)
        sys.unraisablehook = prev_hook
        if prev_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, prev_alarm[0])


def _main(argv: list[str] | None) -> int:
    try:
        # typer's own main() turns Ctrl-C into a silent exit 130; invoking the command ourselves keeps the
        # KeyboardInterrupt, and with it what the command kept
        cmd = typer.main.get_command(app)
        with cmd.make_context("ondevice", sys.argv[1:] if argv is None else list(argv)) as ctx:
            rc = cmd.invoke(ctx)
        return rc if isinstance(rc, int) else 0
    except OndeviceError as e:
        if _state["debug"]:
            raise
        from rich.markup import escape

        from ondevice.log import console, out
        if getattr(e, "details", None):
            out.print(e.details, markup=False)
        # escaped: messages start with "[target]", which rich would otherwise take for a style tag
        console.print(f"[red]error:[/red] {escape(e.message)}", markup=True)
        if e.hint:
            console.print(f"  hint: {e.hint}")
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt as e:  # the library says what it kept, e.g. "512 runs kept in profile/profile.json"
        print(f"interrupted; {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # usage errors: typer 0.29 raises its own vendored click's exceptions
        for mod in _click_exception_modules():
            if isinstance(e, mod.ClickException):
                e.show()
                return e.exit_code
            if hasattr(mod, "Abort") and isinstance(e, mod.Abort):
                return 1
        raise


def _click_exception_modules():
    import importlib
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return mods


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
