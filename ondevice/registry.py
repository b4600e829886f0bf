"""Registries, one per axis (export targets, transports, boards, lint rules, runtimes)."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from ondevice.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named dict filled by a decorator. Refuses duplicates; unknown keys fail with a suggestion."""

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._check = check

    def register(self, key: str) -> Callable[[T], T]:
        if not key or not isinstance(key, str):
            raise ValueError(f"{self.kind} key must be a non-empty string, got {key!r}")

        def deco(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            if self._check is not None:
                self._check(key, obj)
            self._items[key] = obj
            return obj

        return deco

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            close = difflib.get_close_matches(key, self._items, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(sorted(self._items))}"
            raise ConfigError(f"unknown {self.kind} {key!r}", hint) from None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())
