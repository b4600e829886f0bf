import subprocess
import sys

import pytest

from ondevice.cli import app, main
from ondevice.errors import ConfigError, OndeviceError
from ondevice.registry import Registry


def test_version_lists_backends(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    for name in ("ondevice", "torch", "executorch", "litert-torch", "coremltools"):
        assert name in out


def _commands(typer_app, prefix=()):
    import typer.main
    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help(capsys):
    seen = 0
    for path, cmd in _commands(app):
        assert cmd.help, f"command {' '.join(path) or 'ondevice'} has no help text"
        assert main(list(path) + ["--help"]) == 0
        assert "Usage" in capsys.readouterr().out
        seen += 1
    assert seen >= 10


def test_unknown_command_fails():
    assert main(["no-such-command"]) != 0


def test_expected_error_prints_one_line_no_traceback():
    # A bad registry key is an expected error: one line plus a hint, exit code non-zero.
    p = subprocess.run([sys.executable, "-m", "ondevice", "export", "--target", "nosuch", "--out", "/tmp/x"],
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "error:" in p.stderr and "hint:" in p.stderr


def test_registry_refuses_duplicates_and_suggests():
    r = Registry("thing")
    r.register("alpha")(1)
    with pytest.raises(ValueError):
        r.register("alpha")(2)
    with pytest.raises(ConfigError) as e:
        r.get("alpah")
    assert "alpha" in e.value.hint
    assert isinstance(e.value, OndeviceError)


def test_usage_error_is_one_message_no_traceback():
    p = subprocess.run([sys.executable, "-m", "ondevice", "data", "synth", "--size", "4", "--out", "/tmp/never"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "--size" in p.stderr
