"""Guarded loads of untrusted model files: header checks first, then a trial load in a forked child.

Native loaders (ExecuTorch, LiteRT, TFLM) can abort or segfault on a damaged file; the trial load in a child turns
that into a one-line :class:`~ondevice.errors.ConfigError` instead of killing the process (and the sim agent, and
the profile that was about to record the failure).
"""
from __future__ import annotations

import faulthandler
import os
import select
import signal
import tempfile
import sys
import time
import warnings
from typing import Callable, TypeVar

from ondevice.errors import ConfigError, OndeviceError

T = TypeVar("T")

# flatbuffer file identifiers (bytes 4..8) of the formats the host runtimes load
IDENTIFIERS = {".pte": (b"ET12",), ".bpte": (b"BP08",), ".tflite": (b"TFL3",)}
_HINTS = {".pte": "re-export it with `ondevice export --target executorch`",
          ".bpte": "re-export it with `ondevice export --target executorch`",
          ".tflite": "re-export it with `ondevice export --target tflite` (or tflm, edgetpu)"}
TRIAL_TIMEOUT_S = 120.0


def check_header(data: bytes, name: str, ext: str) -> None:
    """Refuse a file whose flatbuffer header cannot be the format its extension claims."""
    want = IDENTIFIERS.get(ext)
    if want is None:
        return
    hint = "the file is truncated, corrupt or not a model; " + _HINTS[ext]
    if len(data) < 16:
        raise ConfigError(f"{name} is too short to be a {ext} model ({len(data)} bytes)", hint)
    if data[4:8] not in want:
        raise ConfigError(f"{name} is not a {ext} model (file identifier {data[4:8]!r}, expected {want[0]!r})", hint)
    root = int.from_bytes(data[0:4], "little")
    if root < 8 or root + 4 > len(data):
        raise ConfigError(f"{name} is a damaged {ext} flatbuffer (root offset {root} outside {len(data)} bytes)", hint)


def guarded_load(load: Callable[[], T], name: str, ext: str, data: bytes | None = None,
                 runtime: str = "runtime") -> T:
    """Check ``data``'s header, run ``load`` once in a forked child, then in this process; returns its result.

    A child that dies by a signal (abort, segfault) or hangs becomes a ConfigError naming the file. A child that
    raises is not an abort: the load in this process then raises the same typed error itself.
    """
    if data is not None:
        check_header(data, name, ext)
    if hasattr(os, "fork") and not os.environ.get("ONDEVICE_NO_TRIAL_LOAD"):
        _trial_in_child(load, name, runtime)
    try:
        return load()
    except OndeviceError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged file fails inside the bindings with assorted types
        why = (str(e).splitlines() or [""])[0][:160]
        raise ConfigError(f"{runtime} cannot load {name} ({type(e).__name__}: {why})",
                          "the file is damaged or not made for this runtime; re-export it with `ondevice export`") from None


def _trial_in_child(load: Callable[[], object], name: str, runtime: str, timeout: float = TRIAL_TIMEOUT_S) -> None:
    with tempfile.TemporaryFile() as err:
        r, w = os.pipe()
        with warnings.catch_warnings():  # JAX (if imported) warns on every fork; the child runs no JAX
            warnings.simplefilter("ignore", RuntimeWarning)
            pid = os.fork()
        if pid == 0:  # child: load, report one byte, never return into the caller's stack
            status = 1
            try:
                os.close(r)
                faulthandler.disable()  # a crash here is expected and reported by the parent, in one line
                os.dup2(err.fileno(), 2)
                # fresh stream objects: another thread may have held the old ones' locks at fork time
                sys.stdout = sys.stderr = open(2, "w", closefd=False)
                load()
                status = 0
            except BaseException:  # noqa: BLE001 - the parent repeats the load to raise the typed error
                pass
            finally:
                os.write(w, b"0" if status == 0 else b"1")
                os._exit(0)
        os.close(w)
        try:
            died = _wait_child(pid, r, timeout)
        finally:
            os.close(r)
        if died is None:
            return
        err.seek(0)
        lines = [ln.strip() for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "cpuinfo" not in ln), "")
        raise ConfigError(f"{runtime} cannot load {name}: the loader {died}" + (f" ({last[:160]})" if last else ""),
                          "the file is damaged or not made for this runtime; re-export it with `ondevice export`")


def _wait_child(pid: int, r: int, timeout: float) -> str | None:
    """None if the child finished its trial (either way), else why it did not (signal name or timeout)."""
    try:
        return _wait(pid, r, timeout)
    except BaseException:  # e.g. Ctrl-C while waiting: no orphan left loading
        os.kill(pid, signal.SIGKILL)  # our own child, by PID
        os.waitpid(pid, 0)
        raise


def _wait(pid: int, r: int, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    got = b""
    while not got:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)  # our own child, by PID
            os.waitpid(pid, 0)
            return f"took longer than {timeout:.0f} s"
        ready, _, _ = select.select([r], [], [], min(left, 1.0))
        if ready:
            got = os.read(r, 1) or b"EOF"
    _, status = os.waitpid(pid, 0)
    if got in (b"0", b"1"):
        return None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"crashed ({signal.Signals(sig).name})"
    return f"exited with code {os.WEXITSTATUS(status)}"
