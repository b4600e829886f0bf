"""Static memory plan: every activation tensor gets an offset in one arena, no malloc at run time.

Tensors that may share bytes are first merged into buffers (reshape aliasing, elementwise in place);
buffers are then packed greedily by size, largest first, each at the lowest offset that does not
collide with a buffer alive at the same time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 16


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    """A run of arena bytes used by one or more tensors over [first, last] (op indices, inclusive)."""
    id: int
    size: int
    first: int
    last: int
    tensors: list[int] = field(default_factory=list)
    offset: int = -1


class MemoryPlan:
    """Union of tensors into buffers, then greedy-by-size placement."""

    def __init__(self) -> None:
        self.buffers: list[Buffer] = []
        self.of_tensor: dict[int, Buffer] = {}
        self.arena_bytes = 0
        self.inplace: set[int] = set()  # op indices whose output overwrites their dying input

    def add(self, tensor: int, size: int, first: int, last: int) -> Buffer:
        b = Buffer(len(self.buffers), size, first, max(first, last), [tensor])
        self.buffers.append(b)
        self.of_tensor[tensor] = b
        return b

    def merge(self, into: int, tensor: int, size: int, first: int, last: int) -> None:
        """Let ``tensor`` reuse the buffer of tensor ``into`` (alias or in-place result)."""
        b = self.of_tensor[into]
        b.size = max(b.size, size)
        b.first = min(b.first, first)
        b.last = max(b.last, last)
        b.tensors.append(tensor)
        self.of_tensor[tensor] = b

    def place(self) -> int:
        """Assign offsets; returns the arena size in bytes."""
        placed: list[Buffer] = []
        for b in sorted(self.buffers, key=lambda b: (-b.size, b.first, b.id)):
            live = sorted((p for p in placed if p.first <= b.last and b.first <= p.last), key=lambda p: p.offset)
            off = 0
            for p in live:
                if off + b.size <= p.offset:
                    break
                off = max(off, _align(p.offset + p.size))
            b.offset = off
            placed.append(b)
        self.arena_bytes = _align(max((b.offset + b.size for b in self.buffers), default=0))
        return self.arena_bytes

    def offset(self, tensor: int) -> int:
        return self.of_tensor[tensor].offset

    def check(self) -> None:
        """Assert no two live buffers overlap (a cheap self-test run on every export)."""
        bs = self.buffers
        for i, a in enumerate(bs):
            for b in bs[i + 1:]:
                if a.first <= b.last and b.first <= a.last:
                    if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                        raise AssertionError(f"memory plan overlap: buffers {a.id} and {b.id}")
