"""What ``ondevice slim`` does with a user's model (loaded by ``ondevice.models.user``): softmax on or off,
the output check, and the arrays it trains on."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ondevice.data.arrays import Arrays, load_arrays
from ondevice.errors import ConfigError
from ondevice.models.user import UserModel, load_user_model


def set_softmax(net: nn.Module, on: bool) -> None:
    """Softmax on (deployed probabilities) or off (training on logits), on the model and every LateFusion in it."""
    from ondevice.models.fusion import LateFusion
    for m in net.modules():
        if isinstance(m, LateFusion) or (m is net and hasattr(m, "softmax") and isinstance(m.softmax, bool)):
            m.softmax = on


def check_output(net: nn.Module, example: tuple, n_classes: int, where: str) -> None:
    """The model must map batch-1 inputs to [1, n_classes] scores (what verify and the devices read)."""
    from ondevice.errors import ConstraintError
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            y = net(*example)
    except Exception as e:  # noqa: BLE001 - the user's forward failed on its own example inputs
        raise ConfigError(f"{where}: forward on the example inputs raised {type(e).__name__}: {str(e)[:160]}",
                          "call the model on example_inputs() in Python to see the traceback") from None
    finally:
        net.train(was)
    shape = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
    if shape != [1, n_classes]:
        raise ConstraintError(f"{where}: output is {shape}, expected [1, {n_classes}] for the {n_classes} classes "
                              "in the data",
                              "return one [batch, classes] tensor; let build(n_classes=...) size the head from "
                              "the data")


def user_arrays(data, um: UserModel) -> tuple[dict, list[str]]:
    """({split: Arrays}, class names) from an .npz folder or ``path.py:make_dataset`` for this model's inputs."""
    from ondevice.data.user import load_user_data
    splits, labels = load_user_data(data, um.input_specs())
    out = {}
    for k, s in splits.items():
        y = torch.as_tensor(s.y, dtype=torch.long)
        out[k] = Arrays(tuple(torch.from_numpy(x) for x in s.xs), y, y)
    return out, labels


def check_audio_input(um: UserModel, shape: tuple) -> None:
    """An audio corpus feeds one log-mel input; a model declaring other inputs needs tensor data."""
    got = [list(t.shape) for t in um.example_inputs]
    if got != [list(shape)]:
        raise ConfigError(f"{um.name} takes inputs {got}, but an audio corpus gives one {list(shape)} log-mel input",
                          "give --data a folder of .npz samples or path.py:make_dataset (see `ondevice data check`)")


def slim_source(recipe, model, data):
    """What ``slim`` trains: (recipe, build, {split: Arrays}, labels, keywords, input specs or None for the log-mel
    input, the UserModel or None). Tensor data (.npz, make_dataset) needs a user model; an audio corpus feeds a
    recipe or a user model taking the one log-mel input."""
    from dataclasses import replace

    from ondevice.data.user import is_user_data
    from ondevice.models import INPUT_SHAPE, get_recipe
    tensors = is_user_data(data)
    if not model:
        if tensors:
            raise ConfigError(f"--data {data} is tensor data (.npz or make_dataset), but the recipes take audio",
                              "pass your model with --model path.py:build, or an audio corpus folder")
        rec = get_recipe(recipe or "mitsis")
        arrays, labels, keywords = load_arrays(data)
        if rec.task == "keyword":  # a keyword spotter: the classes are the keywords
            labels = keywords
            arrays = {k: Arrays(a.x, a.kw, a.kw) for k, a in arrays.items()}
        return rec, rec.build, arrays, labels, keywords, None, None
    user = load_user_model(model)
    if tensors:
        arrays, labels = user_arrays(data, user)
        keywords = []
        user = load_user_model(model, n_classes=len(labels))  # build(n_classes=...) sizes its head
    else:
        check_audio_input(user, INPUT_SHAPE)
        arrays, labels, keywords = load_arrays(data)
    train = get_recipe("mitsis").train
    if tensors:  # SpecAugment is for log-mel features; other tensors are taken as they are
        train = replace(train, freq_mask=0, time_shift=0)
    rec = replace(get_recipe("mitsis"), name=Path(str(model).split(":")[0]).stem, fusion=False, arch={}, train=train)
    return rec, (lambda **kw: user.module), arrays, labels, keywords, (user.input_specs() if tensors else None), user
