"""Bytes the C allocator holds, to measure what a runtime allocates for a model (glibc ``mallinfo2``).

Not a runtime adapter (the leading underscore keeps it out of the runtime registry).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _libc()


def heap_in_use() -> int | None:
    """Bytes allocated through malloc right now (heap chunks in use + mmapped chunks); None off glibc."""
    if _MALLINFO2 is None:
        return None
    m = _MALLINFO2()
    return int(m.uordblks + m.hblkhd)


@contextlib.contextmanager
def heap_growth():
    """Yields a dict whose ``bytes`` is set on exit to the growth of malloc'd bytes over the block (None off glibc).

    It counts what stays allocated, not a transient peak inside the block."""
    box: dict = {"bytes": None}
    before = heap_in_use()
    try:
        yield box
    finally:
        after = heap_in_use()
        if before is not None and after is not None:
            box["bytes"] = max(0, after - before)
