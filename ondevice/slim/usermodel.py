"""Load a user's model from ``path.py:build_fn`` (``ondevice lint --model`` and ``ondevice slim --model``).

The build function takes no arguments and returns either an ``nn.Module`` or ``(module, example_inputs)``.
Example inputs may instead come from ``module.example_inputs`` (a tuple, or a method returning one) or from a
top-level ``example_inputs`` in the same file; without any, the project's feature input ``[1, 1, 49, 40]``
is used (what ``ondevice.features.to_model_input`` produces).
"""
from __future__ import annotations

import difflib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ondevice.errors import ConfigError

DEFAULT_INPUT_SHAPE = (1, 1, 49, 40)  # features from ondevice.features.to_model_input


@dataclass
class UserModel:
    """A loaded user model: the module, fixed-shape example inputs, a name (the file stem) and its source."""

    module: nn.Module
    example_inputs: tuple
    name: str
    source: Path
    default_inputs: bool = False   # True when no example_inputs were given and DEFAULT_INPUT_SHAPE was used


def parse_spec(spec: str) -> tuple[Path, str]:
    """Split ``path.py:build_fn`` into (path, function name)."""
    path, sep, fn = spec.rpartition(":")
    if not sep or not path or not fn or not fn.isidentifier():
        raise ConfigError(f"--model {spec!r} is not of the form path.py:build_fn",
                          "name the file and the function that builds the model, e.g. my_net.py:build")
    return Path(path).expanduser(), fn


def _user_line(exc: BaseException, file: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == file.resolve()]
    return f" at {file.name}:{frames[-1].lineno}" if frames else ""


def _import_file(path: Path):
    mod_name = f"_ondevice_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}", "the model file must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(path.parent.resolve()))  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's file; say where
        sys.modules.pop(mod_name, None)
        raise ConfigError(f"importing {path} failed{_user_line(e, path)}: {type(e).__name__}: {e}",
                          "run `python " + str(path) + "` to see the full traceback") from e
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _as_inputs(obj, where: str) -> tuple:
    if callable(obj) and not isinstance(obj, torch.Tensor):
        obj = obj()
    if isinstance(obj, torch.Tensor):
        obj = (obj,)
    if not isinstance(obj, (tuple, list)) or not obj or not all(isinstance(t, torch.Tensor) for t in obj):
        raise ConfigError(f"{where} must be a tensor or a tuple of tensors, got {type(obj).__name__}",
                          "return e.g. (torch.zeros(1, 1, 49, 40),)")
    return tuple(obj)


def load_user_model(spec: str) -> UserModel:
    """Import ``path.py``, call ``build_fn()`` and return the module with its example inputs.

    Raises ConfigError (with the file and line) for a missing file, a missing or non-callable function,
    a build that raises, or a build that does not return an ``nn.Module``.
    """
    path, fn_name = parse_spec(spec)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist", "check the path before the ':' in --model")
    if path.suffix != ".py":
        raise ConfigError(f"model file {path} is not a .py file", "point --model at the Python file, e.g. net.py:build")
    mod = _import_file(path)
    fn = getattr(mod, fn_name, None)
    if fn is None:
        names = [n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n))]
        close = difflib.get_close_matches(fn_name, names, n=1)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"functions in the file: {', '.join(sorted(names)) or 'none'}")
        raise ConfigError(f"{path.name} has no function {fn_name!r}", hint)
    if not callable(fn):
        raise ConfigError(f"{path.name}:{fn_name} is a {type(fn).__name__}, not a function",
                          "point --model at a function that returns an nn.Module")
    try:
        built = fn()
    except Exception as e:  # noqa: BLE001 - the user's build failed; report where
        raise ConfigError(f"{path.name}:{fn_name}() raised{_user_line(e, path)}: {type(e).__name__}: {e}",
                          "fix the build function; it is called with no arguments") from e
    example = None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module):
        built, example = built
        example = _as_inputs(example, f"the example_inputs returned by {fn_name}()")
    if not isinstance(built, nn.Module):
        raise ConfigError(f"{path.name}:{fn_name}() returned {type(built).__name__}, not a torch.nn.Module",
                          "return the model object (or (model, example_inputs))")
    default = False
    if example is None and getattr(built, "example_inputs", None) is not None:
        example = _as_inputs(built.example_inputs, f"{type(built).__name__}.example_inputs")
    if example is None and getattr(mod, "example_inputs", None) is not None:
        example = _as_inputs(mod.example_inputs, f"{path.name}:example_inputs")
    if example is None:
        example, default = (torch.zeros(DEFAULT_INPUT_SHAPE),), True
    return UserModel(module=built, example_inputs=example, name=path.stem, source=path, default_inputs=default)
