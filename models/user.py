"""Load a user's model from ``path.py:build_fn`` (``ondevice lint --model``, ``ondevice slim --model``, ``ondevice data
check --model``), and any ``path.py:fn`` (``make_dataset``).

The build function takes no arguments and returns either an ``nn.Module`` or ``(module, example_inputs)``.
Example inputs may instead come from ``module.example_inputs`` (a tuple, or a method returning one) or from a
top-level ``example_inputs`` in the same file; without any, the project's feature input ``[1, 1, 49, 40]``
is used (what ``ondevice.features.to_model_input`` produces) for a forward with one parameter; a forward with
several must declare them. Inputs are named after the forward's parameters (``input_<k>`` for ``*args``).
"""
from __future__ import annotations

import difflib
import importlib.util
import inspect
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
    input_names: tuple = ()

    def input_specs(self) -> list:
        """One float32 TensorSpec per input (batch 1), named after the forward's parameters."""
        from ondevice.runtimes.base import TensorSpec
        return [TensorSpec(name=n, shape=list(t.shape), dtype="float32")
                for n, t in zip(self.input_names, self.example_inputs)]


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


def load_function(spec: str, returns: str = "what is asked for"):
    """(function, "file.py:fn") for ``path.py:fn``; ConfigError naming the file for every way it can be wrong."""
    path, fn_name = parse_spec(spec)
    if not path.is_file():
        raise ConfigError(f"file {path} does not exist", "check the path before the ':'")
    if path.suffix != ".py":
        raise ConfigError(f"{path} is not a .py file", "point at the Python file, e.g. net.py:build")
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
                          f"point at a function that returns {returns}")
    return fn, f"{path.name}:{fn_name}"


def load_user_model(spec: str, n_classes: int | None = None) -> UserModel:
    """Import ``path.py``, call ``build_fn()`` and return the module with its example inputs.

    Raises ConfigError (with the file and line) for a missing file, a missing or non-callable function,
    a build that raises, or a build that does not return an ``nn.Module``. ``n_classes`` (the class count of the
    data) is passed on when the build function takes an ``n_classes`` parameter.
    """
    fn, where = load_function(spec, "an nn.Module")
    path, fn_name = parse_spec(spec)
    try:
        takes = "n_classes" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes = False
    try:
        built = fn(n_classes=n_classes) if takes and n_classes is not None else fn()
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
    default, src = False, None
    params = forward_params(built)
    if example is None and getattr(built, "example_inputs", None) is not None:
        src = built.example_inputs
        example = _as_inputs(src, f"{type(built).__name__}.example_inputs")
    mod = sys.modules[fn.__module__]
    if example is None and getattr(mod, "example_inputs", None) is not None:
        src = mod.example_inputs
        example = _as_inputs(src, f"{path.name}:example_inputs")
    if example is None and params is not None and len(params) != 1:
        raise ConfigError(f"{path.name}:{fn_name}() gives no example inputs for a forward taking "
                          f"{len(params) if params else 'any number of'} inputs",
                          "add `def example_inputs(): return (torch.zeros(1, ...), ...)` to the file, "
                          "one batch-1 tensor per forward parameter")
    if example is None:
        example, default = (torch.zeros(DEFAULT_INPUT_SHAPE),), True
    elif callable(src) and not isinstance(src, torch.Tensor):  # called twice: shapes must not move
        _check_static(example, _as_inputs(src, "example_inputs"), path.name)
    names = _check_signature(example, params, path.name)
    return UserModel(module=built, example_inputs=example, name=path.stem, source=path, default_inputs=default,
                     input_names=names)


def forward_params(module: nn.Module) -> list[str] | None:
    """The forward's positional parameter names; None when it takes ``*args``."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            names.append(p.name)
    return names


def _check_static(a: tuple, b: tuple, where: str) -> None:
    if [tuple(t.shape) for t in a] != [tuple(t.shape) for t in b]:
        raise ConfigError(f"{where}: example_inputs() returns different shapes on each call "
                          f"({[list(t.shape) for t in a]} then {[list(t.shape) for t in b]})",
                          "devices need static shapes: return fixed-size tensors")


def _check_signature(example: tuple, params: list[str] | None, where: str) -> tuple[str, ...]:
    """Names for the inputs; refuses a count that does not match forward, or a batch other than 1."""
    if params is not None and len(params) != len(example):
        raise ConfigError(f"{where}: {len(example)} example input(s) for a forward taking {len(params)} "
                          f"({', '.join(params)})", "give one batch-1 example tensor per forward parameter, in order")
    for k, t in enumerate(example):
        if t.dim() == 0 or t.shape[0] != 1 or 0 in t.shape:
            raise ConfigError(f"{where}: example input {k} has shape {list(t.shape)}, not batch 1 with fixed sizes",
                              "give each example input a leading batch dimension of 1, e.g. torch.zeros(1, 6, 64)")
    return tuple(params) if params is not None else tuple(f"input_{k}" for k in range(len(example)))
