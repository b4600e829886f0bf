"""User data for any model: a folder of ``.npz`` samples, or ``path.py:make_dataset``.

``.npz`` folder: one sample per file, one array per model input named after the forward's parameter and shaped
like that input's example without the batch dimension, plus an integer ``label``. ``labels.txt`` (one class name
a line) is optional, as is ``split.csv`` (``file,split``); without it a stable hash of the file name splits
70/15/15 into train/val/test.

``path.py:make_dataset``: a function taking no arguments that returns ``(train, val, test)`` (or a dict with those
keys, and optionally ``labels``, the class names); each is a sequence of ``(inputs_tuple, label)`` items.

Both forms are checked against the model's inputs; every problem raises DataError naming the first bad sample.
"""
from __future__ import annotations

import csv
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.data import SPLITS
from ondevice.errors import DataError

_NPZ_HINT = ("each .npz holds one array per model input (named after forward's parameters, shaped like the "
             "example input without the batch dimension) and an integer `label`")


@dataclass
class UserSplit:
    """One split: ``xs`` one float32 [N, ...] array per model input, ``y`` int64 [N], ``where`` a name per sample."""
    name: str
    xs: tuple
    y: np.ndarray
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def is_user_data(data) -> bool:
    """True for a ``path.py:fn`` spec or a folder of .npz files (not an audio corpus with metadata.csv)."""
    s = str(data)
    if ".py:" in s:
        return True
    p = Path(s)
    return p.is_dir() and not (p / "metadata.csv").is_file() and any(p.glob("*.npz"))


def _stable_split(name: str) -> str:
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100  # same split on every machine and run
    return "train" if h < 70 else "val" if h < 85 else "test"


def _splits_of(folder: Path, files: list[Path]) -> dict[str, str]:
    csv_path = folder / "split.csv"
    if not csv_path.is_file():
        return {f.name: _stable_split(f.name) for f in files}
    out: dict[str, str] = {}
    with csv_path.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            f, s = (row.get("file") or "").strip(), (row.get("split") or "").strip()
            if not f or s not in SPLITS:
                raise DataError(f"split.csv row {line}: needs file,split with split one of {', '.join(SPLITS)}",
                                hint="header `file,split`, e.g. `a.npz,train`")
            out[f] = s
    missing = [f.name for f in files if f.name not in out]
    if missing:
        raise DataError(f"split.csv has no row for {missing[0]} ({len(missing)} file(s) missing)",
                        hint="list every .npz in split.csv, or delete it to split by file-name hash")
    return out


def _check_sample(arrays: dict, specs: Sequence, where: str) -> tuple[tuple, int]:
    xs = []
    for s in specs:
        if s.name not in arrays:
            raise DataError(f"{where}: no array {s.name!r} (has {', '.join(sorted(arrays)) or 'none'})", hint=_NPZ_HINT)
        a = np.asarray(arrays[s.name])
        if list(a.shape) != list(s.shape[1:]):
            raise DataError(f"{where}: {s.name!r} has shape {list(a.shape)}, expected {list(s.shape[1:])}",
                            hint=_NPZ_HINT)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise DataError(f"{where}: {s.name!r} has dtype {a.dtype}, not numeric", hint=_NPZ_HINT)
        xs.append(a.astype(np.float32))
    if "label" not in arrays:
        raise DataError(f"{where}: no `label`", hint=_NPZ_HINT)
    lab = np.asarray(arrays["label"])
    if lab.size != 1 or not np.issubdtype(lab.dtype, np.integer) or int(lab.reshape(-1)[0]) < 0:
        raise DataError(f"{where}: label {lab.tolist()!r} ({lab.dtype}) is not one non-negative integer",
                        hint="store the class index, e.g. np.savez(f, image=..., imu=..., label=2)")
    return tuple(xs), int(lab.reshape(-1)[0])


def _read_npz(f: Path) -> dict:
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{f.name}: cannot read ({type(e).__name__}: {e})", hint=_NPZ_HINT) from None


def _load_npz(folder: Path, specs: Sequence) -> tuple[dict[str, list], list[str] | None]:
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DataError(f"{folder} has no .npz files", hint=_NPZ_HINT)
    split_of = _splits_of(folder, files)
    items: dict[str, list] = {s: [] for s in SPLITS}
    for f in files:
        xs, y = _check_sample(_read_npz(f), specs, f.name)
        items[split_of[f.name]].append((xs, y, f.name))
    lt = folder / "labels.txt"
    labels = [ln.strip() for ln in lt.read_text().splitlines() if ln.strip()] if lt.is_file() else None
    return items, labels


def _load_fn(spec: str, specs: Sequence) -> tuple[dict[str, list], list[str] | None]:
    from ondevice.errors import ConfigError
    from ondevice.models.user import load_function
    try:
        fn, where = load_function(spec)
    except ConfigError as e:
        raise DataError(e.message, hint=e.hint) from None
    try:
        got = fn()
    except Exception as e:  # noqa: BLE001 - the user's function failed; one line says which
        raise DataError(f"{where}() raised {type(e).__name__}: {e}",
                        hint="fix make_dataset; it is called with no arguments") from e
    names = None
    if isinstance(got, dict):
        names = got.get("labels")
        got = tuple(got.get(s) for s in SPLITS)
    if not isinstance(got, (tuple, list)) or len(got) != 3 or any(d is None for d in got):
        raise DataError(f"{where}() returned {type(got).__name__}, not (train, val, test)",
                        hint="return three datasets (or a dict train/val/test) of (inputs_tuple, label) items")
    items: dict[str, list] = {s: [] for s in SPLITS}
    for split, ds in zip(SPLITS, got):
        for i, item in enumerate(_iterate(ds, f"{where}() {split}")):
            w = f"{where}() {split} item {i}"
            if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], (tuple, list)):
                raise DataError(f"{w} is {type(item).__name__}, not (inputs_tuple, label)",
                                hint="each item is ((x_input1, x_input2, ...), label)")
            xs, lab = item
            if len(xs) != len(specs):
                raise DataError(f"{w} has {len(xs)} input(s), the model takes {len(specs)}",
                                hint="one array per forward parameter, in order")
            arrays = {s.name: _np(x) for s, x in zip(specs, xs)}
            arrays["label"] = _np(lab)
            xs, y = _check_sample(arrays, specs, w)
            items[split].append((xs, y, w))
    return items, (list(map(str, names)) if names is not None else None)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _iterate(ds, where: str):
    try:
        n = len(ds)
    except TypeError:
        raise DataError(f"{where} has no len()", hint="return a list or a torch Dataset") from None
    for i in range(n):
        try:
            yield ds[i]
        except Exception as e:  # noqa: BLE001 - a user dataset failing on an item
            raise DataError(f"{where} item {i} raised {type(e).__name__}: {e}", hint="fix the dataset's __getitem__")


def load_user_data(data, specs: Sequence) -> tuple[dict[str, UserSplit], list[str]]:
    """({split: UserSplit}, class names) from an .npz folder or ``path.py:make_dataset``; specs are the inputs'."""
    items, labels = _load_fn(str(data), specs) if ".py:" in str(data) else _load_npz(Path(data), specs)
    n_classes = 1 + max((y for s in items.values() for _, y, _ in s), default=-1)
    if labels is not None:
        if len(labels) < n_classes:
            raise DataError(f"the class names list {len(labels)} classes but a label is {n_classes - 1}",
                            hint="one class name a line, in label order")
        n_classes = len(labels)
    labels = list(labels) if labels is not None else [str(k) for k in range(n_classes)]
    if n_classes < 2:
        raise DataError(f"{data}: the labels hold {n_classes} class(es)", hint="a classifier needs at least 2")
    out = {}
    for split, rows in items.items():
        if not rows:
            raise DataError(f"{data}: the {split} split is empty",
                            hint="add samples, or assign splits in split.csv (file,split)")
        xs = tuple(np.stack([r[0][k] for r in rows]) for k in range(len(specs)))
        out[split] = UserSplit(split, xs, np.array([r[1] for r in rows], np.int64), [r[2] for r in rows])
    return out, labels


def check_user_data(data, specs: Sequence) -> dict:
    """Validate user data against the model's input specs; a summary, or DataError naming the first bad sample."""
    splits, labels = load_user_data(data, specs)
    return {"data": str(data), "form": "make_dataset" if ".py:" in str(data) else "npz",
            "inputs": [{"name": s.name, "shape": list(s.shape[1:])} for s in specs], "labels": labels,
            "splits": {k: {labels[c]: int(np.sum(v.y == c)) for c in range(len(labels))} for k, v in splits.items()}}


def check_data(data: str, model: str | None = None) -> dict:
    """``ondevice data check``: an audio corpus on its own, or tensor data against ``model``'s inputs."""
    if not is_user_data(data):
        from ondevice.data.dataset import check_dataset
        return check_dataset(data)
    if model is None:
        raise DataError(f"{data} holds tensors for a model: checking it needs the model's inputs",
                        hint=f"add --model path.py:build, e.g. `ondevice data check {data} --model net.py:build`")
    from ondevice.errors import ConfigError
    from ondevice.models.user import load_user_model
    try:
        um = load_user_model(model)
    except ConfigError as e:
        raise DataError(e.message, hint=e.hint) from None
    return check_user_data(data, um.input_specs())
