"""verify's inputs: the test split each model takes (log-mel from an audio corpus, or the model's own tensors).

Log-mel runs read an audio corpus (default: a cached synthetic one); tensor runs (``--model path.py:build`` slimmed
on an .npz folder or ``path.py:make_dataset``) read that data's test split. Every input set is a tuple with one
[N, ...] float array per model input.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ondevice import log
from ondevice.cache import cache_dir
from ondevice.errors import ConfigError

SYNTH_SIZE = int(os.environ.get("ONDEVICE_VERIFY_SYNTH_SIZE", "400"))
SYNTH_SEED = 0


def tensor_inputs(run) -> bool:
    """True for a run whose model takes its own tensors (an .npz folder or make_dataset), not log-mel features."""
    recipe = getattr(run, "recipe", None) or {}
    return "inputs" in recipe and not recipe.get("frontend")


def test_inputs(data, run) -> tuple:
    """(xs: one float array [N, ...] per model input, y int [N], description) from the test split.

    Log-mel runs read an audio corpus (default: a cached synthetic one); tensor runs read an .npz folder or
    ``path.py:make_dataset`` (default: the data the run was slimmed on, from recipe.json).
    """
    if not tensor_inputs(run):
        x, y, desc = _audio_test_inputs(data, run)
        return (x,), y, desc
    from ondevice.data.user import load_user_data
    data = data if data is not None else run.recipe.get("data")
    if data is None:
        raise ConfigError(f"{run.name} takes its own tensors and no --data was given",
                          "pass --data with the .npz folder or path.py:make_dataset it was slimmed on")
    splits, _ = load_user_data(str(data), run.input_specs())
    test = splits["test"]
    return test.xs, test.y, {"source": "user", "data": str(data), "split": "test", "n": int(len(test)),
                             "labels": "the run's labels"}


def _audio_test_inputs(data: str | Path | None, run) -> tuple[np.ndarray, np.ndarray, dict]:
    """(x float [N,1,49,40], y int [N], description) from a dataset's test split, or a cached synthetic corpus."""
    from ondevice.data.dataset import load_split
    from ondevice.features import to_model_input
    if data is None:
        folder = cache_dir() / f"verify-synth-{SYNTH_SIZE}-{SYNTH_SEED}"
        if not (folder / "metadata.csv").is_file():
            from ondevice.data.synth import synth
            log.info(f"verify: no --data given; generating a {SYNTH_SIZE}-clip synthetic corpus in {folder}")
            synth(folder, size=SYNTH_SIZE, seed=SYNTH_SEED)
        desc = {"source": "synthetic", "folder": str(folder), "size": SYNTH_SIZE, "seed": SYNTH_SEED}
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise ConfigError(f"--data {folder} is not a folder", "give a dataset folder with metadata.csv")
        desc = {"source": "folder", "folder": str(folder)}
    split = load_split(folder, "test")
    if len(split.labels) == 0:
        raise ConfigError(f"{folder} has no test rows", "mark some rows split=test in metadata.csv")
    x = to_model_input(split.features).astype(np.float32)
    keyword_task = (run.recipe or {}).get("task") == "keyword"
    y = np.asarray(split.keywords if keyword_task else split.labels, dtype=np.int64)
    desc.update(split="test", n=int(len(y)), labels="keywords" if keyword_task else "emotion labels")
    return x, y, desc


def sample(xs, i: int) -> tuple:
    """Sample ``i`` of every input, batch 1."""
    return tuple(np.ascontiguousarray(x[i:i + 1]) for x in xs)


def vectors(xs: tuple, n: int | None = None):
    """The MCU checkers' input form: the array itself for one input, else one list of arrays per vector."""
    n = len(xs[0]) if n is None else min(n, len(xs[0]))
    return xs[0][:n] if len(xs) == 1 else [[x[i] for x in xs] for i in range(n)]
