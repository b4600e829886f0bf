"""One registry type for every plugin axis: export targets, runtimes, transports, boards, power monitors, lint
targets and rules, recipes and MCU op lowerings.

A registry fills itself on first use, in one way for every axis: it imports each public module of its
``package`` (each registers itself with a decorator), runs its ``loader`` (e.g. boards read ``port.toml`` files),
then loads the ``entry_points`` group, so a third-party package adds a target, runtime or transport with::

    [project.entry-points."ondevice.transports"]
    myscheme = "mypkg.transport"
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from ondevice.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named dict filled by a decorator. Refuses duplicates; unknown keys fail with a suggestion."""

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None, *, package: str | None = None,
                 skip: tuple[str, ...] = (), loader: Callable[[], None] | None = None,
                 entry_points: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._check = check
        self._package, self._skip, self._loader, self._group = package, skip, loader, entry_points
        self._loaded = package is None and loader is None and entry_points is None

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

    def load(self) -> "Registry[T]":
        """Import the built-in plugins once (modules register themselves as they import)."""
        if self._loaded:
            return self
        self._loaded = True  # set first: a plugin module may look the registry up while it imports
        try:
            if self._package:
                pkg = importlib.import_module(self._package)
                for m in pkgutil.iter_modules(pkg.__path__):
                    if not m.name.startswith("_") and m.name not in self._skip:
                        importlib.import_module(f"{self._package}.{m.name}")
            if self._loader:
                self._loader()
            if self._group:
                for ep in metadata.entry_points(group=self._group):
                    ep.load()
        except BaseException:
            self._loaded = False
            raise
        return self

    def get(self, key: str) -> T:
        self.load()
        try:
            return self._items[key]
        except KeyError:
            close = difflib.get_close_matches(key, self._items, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(sorted(self._items))}"
            raise ConfigError(f"unknown {self.kind} {key!r}", hint) from None

    def find(self, key: str) -> T | None:
        """The entry for ``key``, or None."""
        return self.load()._items.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.load()._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted(self.load()._items)

    def items(self):
        return sorted(self.load()._items.items())
