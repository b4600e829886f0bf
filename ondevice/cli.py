"""The `ondevice` command line. Option parsing only: every command calls one library function."""
from __future__ import annotations

import os
import sys
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
    from importlib.metadata import PackageNotFoundError, version
    parts = [f"ondevice {__version__}"]
    for dist in ("torch", "executorch", "litert-torch", "coremltools"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return "\n".join(parts)


def _version_cb(value: bool):
    if value:
        typer.echo(_versions())
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True,
                                       help="Print ondevice and backend versions, then exit."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks for expected errors.")):
    """ondevice: slim, export, verify, flash and profile on-device models."""
    _state["debug"] = debug or bool(os.environ.get("ONDEVICE_DEBUG"))


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
         target: List[str] = typer.Option(["all"], "--target", help="Target(s) to lint for, or 'all'."),
         fix: bool = typer.Option(False, "--fix", help="Apply the safe fixes (e.g. ReLU/GELU -> ReLU6)."),
         out: Optional[Path] = typer.Option(None, "--out", help="Write the lint report JSON here.")):
    """Check a model against each target's device constraints and say exactly what to change."""
    from ondevice.slim.lint import lint_cli
    ok = lint_cli(recipe=recipe, model=model, targets=target, fix=fix, out=out)
    raise typer.Exit(0 if ok else 4)


@app.command()
def slim(recipe: Optional[str] = typer.Option(None, "--recipe", help="Built-in recipe (default: mitsis)."),
         model: Optional[str] = typer.Option(None, "--model", help="User model as path.py:build_fn."),
         data: Optional[str] = typer.Option(None, "--data", help="Dataset: metadata.csv + WAVs folder, "
                                                                  ".npz folder, or path.py:make_dataset."),
         out: Path = typer.Option(..., "--out", help="Run folder, e.g. runs/mitsis."),
         epochs: Optional[int] = typer.Option(None, "--epochs", help="FP32 epochs (recipe default)."),
         qat_epochs: Optional[int] = typer.Option(None, "--qat-epochs", help="INT8 QAT epochs (recipe default)."),
         target: List[str] = typer.Option(["all"], "--target", help="Targets whose constraints must hold."),
         fix: bool = typer.Option(False, "--fix", help="Apply safe lint fixes before training."),
         seed: int = typer.Option(0, "--seed"),
         ptq: bool = typer.Option(False, "--ptq", help="No training: calibrate the model's own weights (INT8 PTQ).")):
    """Lint, train FP32, then INT8 QAT (PT2E); writes a checkpoint and slim_report.json. torchrun-able."""
    from ondevice.slim.train import slim as run
    run(recipe=recipe, model=model, data=data, out=out, epochs=epochs, qat_epochs=qat_epochs,
        targets=target, fix=fix, seed=seed, ptq=ptq)


@app.command()
def export(target: List[str] = typer.Option(["all"], "--target",
                                            help="executorch, tflite, edgetpu, coreml, tflm, mcu or all."),
           model: Optional[Path] = typer.Option(None, "--model", help="Slim run folder (default: shipped mitsis)."),
           out: Path = typer.Option(Path("artifacts"), "--out", help="Artifact folder.")):
    """Export one QAT run to device artifacts, each with a .manifest.json beside it."""
    from ondevice.export.api import export as run
    run(model=model, targets=target, out=out)


@app.command()
def verify(artifacts: Path = typer.Argument(Path("artifacts"), help="Folder of exported artifacts."),
           data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder, .npz folder or "
                                                                     "path.py:make_dataset (default: synthetic test "
                                                                     "split, or the data a tensor model was slimmed "
                                                                     "on)."),
           model: Optional[Path] = typer.Option(None, "--model", help="Slim run the artifacts came from."),
           out: Optional[Path] = typer.Option(None, "--out", help="Where to write verify_report.json.")):
    """Run every artifact on its real host runtime and compare it with the QAT PyTorch model."""
    from ondevice.verify import verify as run
    run(artifacts, data=data, model=model, out=out)


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
    from ondevice.profiling.session import profile_cli
    profile_cli(artifact=artifact, device=device, runs=runs, warmup=warmup, power=power, board=board, out=out,
                mode=mode, timeout=timeout, retries=retries, run_timeout=run_timeout)


@app.command()
def devices():
    """List attached devices: serial ports, adb, usbmux, QEMU boards and simulators."""
    from ondevice.profiling.devices import print_devices
    print_devices()


@app.command()
def flash(board: str = typer.Option(..., "--board", help="Board name, e.g. qemu-mps2-an386 or nucleo-f446re."),
          artifact: Optional[Path] = typer.Option(None, "--artifact", help="mcu artifact folder to build in."),
          probe: Optional[str] = typer.Option(None, "--probe", help="pyocd probe UID (real boards).")):
    """Build the firmware for a board and load it (QEMU, pyocd or UF2)."""
    from ondevice.flash import flash as run
    run(board=board, artifact=artifact, probe=probe)


def main(argv: list[str] | None = None) -> int:
    """Entry point: expected errors become one line plus a hint and a non-zero exit code."""
    try:
        rc = app(args=argv, standalone_mode=False)
        # with standalone_mode=False click returns typer.Exit's code instead of raising it
        return rc if isinstance(rc, int) else 0
    except OndeviceError as e:
        if _state["debug"]:
            raise
        from ondevice.log import console
        console.print(f"[red]error:[/red] {e.message}", markup=True)
        if e.hint:
            console.print(f"  hint: {e.hint}")
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
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
