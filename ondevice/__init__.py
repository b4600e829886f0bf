"""ondevice: take a PyTorch model to phones and microcontrollers, and prove that it works there.

The library mirrors the CLI: each ``ondevice <command>`` calls one function importable from here.
Heavy imports (torch, executorch, litert) happen inside those functions so that ``import ondevice`` is fast.
"""
from __future__ import annotations

from ondevice._version import __version__

__all__ = ["__version__", "slim", "export", "verify", "profile", "synth"]


def slim(*args, **kwargs):
    """Lint, train FP32, then INT8 QAT. See :func:`ondevice.slim.train.slim`."""
    from ondevice.slim.train import slim as _slim
    return _slim(*args, **kwargs)


def export(*args, **kwargs):
    """Export a slim run to one or more targets. See :func:`ondevice.export.api.export`."""
    from ondevice.export.api import export as _export
    return _export(*args, **kwargs)


def verify(*args, **kwargs):
    """Check artifacts on real host runtimes. See :func:`ondevice.verify.verify`."""
    from ondevice.verify import verify as _verify
    return _verify(*args, **kwargs)


def profile(*args, **kwargs):
    """Profile an artifact on a device URL. See :func:`ondevice.profiling.profiler.profile`."""
    from ondevice.profiling.profiler import profile as _profile
    return _profile(*args, **kwargs)


def synth(*args, **kwargs):
    """Write the synthetic audio-emotion corpus. See :func:`ondevice.data.synth.synth`."""
    from ondevice.data.synth import synth as _synth
    return _synth(*args, **kwargs)
