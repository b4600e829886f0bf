"""Quiet by default: third-party warnings and C-level banners go to OUT/ondevice.log, ``--verbose`` shows them, and
the light commands never import torch."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from ondevice.cli import main

# What ondevice itself prints during an export: one result line per target, and the exporters' own notes.
_TARGETS = "executorch|tflite|edgetpu|coreml|tflm|mcu"
_OURS = re.compile(rf"^(warning: )?({_TARGETS})\b")
# Signatures of the third-party lines the issue counted (torchao, copyreg, coremltools, absl/oneDNN, cpuinfo).
_NOISE = ("Failed to load", "FutureWarning", "absl::InitializeLog", "oneDNN", "cpuinfo_utils", "scikit-learn")


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "ondevice", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_export_all_prints_only_our_lines(tmp_path):
    p = _run("export", "--target", "all", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    foreign = [ln for ln in lines if not _OURS.match(ln)]
    assert not foreign, "third-party lines on the console:\n" + "\n".join(foreign)
    # one result line per target
    assert sorted(ln.split()[0] for ln in lines if re.match(rf"^({_TARGETS}) +/", ln)) == \
        sorted(_TARGETS.split("|"))
    # the noise was routed, not lost: the log holds the C-level and Python-warning lines
    log = (tmp_path / "ondevice.log").read_text()
    assert "cpuinfo_utils" in log and "FutureWarning" in log and "Failed to load" in log


def test_verbose_shows_what_quiet_logs(tmp_path):
    quiet = _run("export", "--target", "tflite", "--out", str(tmp_path / "q"))
    loud = _run("--verbose", "export", "--target", "tflite", "--out", str(tmp_path / "v"))
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    # torch/torchao print these while the model loads; quiet keeps them in the log only
    assert not any(n in quiet.stderr for n in _NOISE), quiet.stderr
    assert any(n in (tmp_path / "q" / "ondevice.log").read_text() for n in _NOISE)
    assert any(n in loud.stderr for n in _NOISE), loud.stderr
    assert not (tmp_path / "v" / "ondevice.log").exists()
    for p in (quiet, loud):
        assert re.search(r"^tflite +\S+\.tflite", p.stderr, re.M), p.stderr


def test_quiet_redirects_c_level_fd2(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys, warnings, logging
        from ondevice import log
        with log.quiet({str(tmp_path)!r}, "t"):
            os.write(2, b"C-LEVEL banner\\n")
            warnings.warn("PY-WARNING text")
            logging.getLogger("thirdparty").warning("LOGGING line")
            log.info("OUR line")
        sys.stderr.write("AFTER line\\n")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == ["OUR line", "AFTER line"]
    log = (tmp_path / "ondevice.log").read_text()
    for s in ("C-LEVEL banner", "PY-WARNING text", "LOGGING line"):
        assert s in log
    assert "OUR line" not in log


def _modules_after(argv: list[str]) -> set[str]:
    code = ("import sys\nfrom ondevice.cli import main\nmain(%r)\n"
            "print('MODS', ' '.join(sorted(m for m in sys.modules if '.' not in m)))" % (argv,))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("MODS ")][-1]
    return set(line.split()[1:])


@pytest.mark.parametrize("argv", [["--help"], ["devices"], ["export", "--help"], ["--version"]])
def test_light_commands_do_not_import_torch(argv):
    mods = _modules_after(argv)
    heavy = mods & {"torch", "tensorflow", "coremltools", "torchao", "litert_torch"}
    assert not heavy, f"ondevice {' '.join(argv)} imported {heavy}"


def test_version_lists_every_pinned_package(capsys):
    from importlib.metadata import requires
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    for req in requires("ondevice"):
        if "extra ==" in req and "extra == \"ios\"" not in req and "extra == \"reference\"" not in req:
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)
        assert re.search(rf"^{re.escape(name)} ", out, re.M), f"{name} missing from --version"
    for must in ("ai-edge-litert", "tflite-micro", "torchao", "arm-none-eabi-gcc", "qemu-system-arm"):
        assert must in out


def test_flash_help_claims_only_what_flash_does(capsys):
    # flash loads QEMU images and pyocd boards; no UF2 code exists, so the help must not promise it
    assert main(["flash", "--help"]) == 0
    out = capsys.readouterr().out
    assert "UF2" not in out.upper() and "pyocd" in out and "QEMU" in out


def test_sim_profile_keeps_runtime_banners_in_the_log(tmp_path):
    from _profiling_support import tiny_tflite
    p = _run("profile", "--device", "sim://litert", str(tiny_tflite()), "--runs", "3", "--warmup", "0",
             "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    # LiteRT announces its XNNPACK delegate from C on every interpreter it builds
    assert "XNNPACK delegate" not in p.stderr + p.stdout
    assert "XNNPACK delegate" in (tmp_path / "ondevice.log").read_text()
    assert "peak_ram_bytes" in p.stdout + p.stderr
