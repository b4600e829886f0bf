#!/usr/bin/env python3
"""The house rules for Python modules, measured: import cycles, upward imports, module and function sizes.

    python scripts/archcheck.py          # prints every violation, exits 1 when there is one
    python scripts/archcheck.py --graph  # the module import graph

Modules are named as installed: ``models/x.py`` is ``ondevice.models.x`` (pyproject's package-dir). Every import
counts, including those inside functions: a lazy import is still a dependency. A module may import modules of its
own layer or lower ones (``LAYERS``), never a higher one, and the graph has no cycle.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> package name in the wheel
PACKAGES = {"ondevice": "ondevice", "models": "ondevice.models", "runtimes": "ondevice.runtimes",
            "profiling": "ondevice.profiling"}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: lowest first; a module belongs to the layer of its longest listed dotted prefix
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["ondevice.errors", "ondevice.log", "ondevice.fsutil", "ondevice.registry", "ondevice.boards",
              "ondevice._version", "ondevice.cache", "ondevice.capture"]),
    ("primitives", ["ondevice.features", "ondevice.mcu", "ondevice.profiling.protocol",
                    "ondevice.profiling.protocol_vectors", "ondevice.profiling.validation",
                    "ondevice.profiling.metrics"]),
    ("models, data and runtimes", ["ondevice.models", "ondevice.data", "ondevice.runtimes"]),
    ("slim and export", ["ondevice.slim", "ondevice.export", "ondevice.source"]),
    ("verify, devices and profiling", ["ondevice.verify", "ondevice.profiling", "ondevice.flash", "ondevice.serve"]),
    ("the edge: CLI, library facade, benchmarks", ["ondevice", "ondevice.cli", "ondevice.__main__",
                                                   "ondevice.profiling.benchmarks"]),
]


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder, pkg in PACKAGES.items():
        for p in sorted((ROOT / folder).rglob("*.py")):
            parts = [pkg, *p.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        base = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    src = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [resolve(f"{src}.{a.name}") or resolve(src) for a in node.names]
            graph[mod].update(t for t in targets if t and t != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layer_of(mod: str) -> int | None:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def violations() -> list[str]:
    mods = modules()
    graph = import_graph(mods)
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for mod in sorted(mods):
        lm = layer_of(mod)
        if lm is None:
            out.append(f"{mod}: in no layer (add it to LAYERS in scripts/archcheck.py)")
            continue
        for dep in sorted(graph.get(mod, ())):
            ld = layer_of(dep)
            if ld is not None and ld > lm:
                out.append(f"upward import: {mod} ({LAYERS[lm][0]}) -> {dep} ({LAYERS[ld][0]})")
    for mod, path in sorted(mods.items()):
        rel = path.relative_to(ROOT)
        text = path.read_text()
        n = text.count("\n")
        if n > MAX_MODULE_LINES:
            out.append(f"{rel}: {n} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{rel}:{node.lineno} {node.name}(): {length} lines (max {MAX_FUNCTION_LINES})")
    return out


def main(argv: list[str]) -> int:
    if "--graph" in argv:
        graph = import_graph(modules())
        for mod in sorted(graph):
            print(mod, "->", ", ".join(sorted(graph[mod])))
        return 0
    found = violations()
    for v in found:
        print(v)
    print(f"{len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
