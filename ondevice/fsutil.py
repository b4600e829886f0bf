"""Atomic writes: nothing half-written is left behind on a fault."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temp path beside ``dest``; rename it over ``dest`` only if the block succeeds.

    Works for files and directories (e.g. a ``.mlpackage``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if dest.is_dir() and not dest.is_symlink():
            if not tmp.is_dir():  # a folder is only ever replaced by a folder (e.g. a .mlpackage), never a file
                from ondevice.errors import ConfigError
                raise ConfigError(f"{dest} is a folder; not replacing it with a file", "give a file path")
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(dest, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_json_atomic(dest, obj, indent: int = 2) -> Path:
    return write_bytes_atomic(dest, (json.dumps(obj, indent=indent, sort_keys=False, default=_jsonable) + "\n").encode())


def _jsonable(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_out(path: str | os.PathLike, kind: str = "dir", option: str = "--out") -> Path:
    """Fail before any work starts if ``path`` cannot take the output; returns it as a Path.

    ``kind``: ``"dir"`` (a folder, made later), ``"file"`` (a file, replaced atomically) or ``"file_or_dir"``
    (a ``.json`` path is a file, anything else a folder). Nothing is created here.
    """
    from ondevice.errors import ConfigError
    p = Path(path)
    if kind == "file_or_dir":
        kind = "file" if p.suffix == ".json" else "dir"
    if kind == "dir" and p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file, not a folder", f"give a folder (new or existing), e.g. {p}.d")
    if kind == "file" and p.is_dir():
        raise ConfigError(f"{option} {p} is a folder, not a file", f"give a file path, e.g. {p / 'report.json'}")
    # the nearest existing ancestor must be a folder we can write in (parents are made later)
    anc = p if kind == "dir" else p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{option} {p} is under {anc}, which is a file", "give a path under a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {p}: cannot write in {anc}", "give a folder you can write to")
    return p
