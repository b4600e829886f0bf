"""`ondevice lint` end to end (exit codes, --fix, --out JSON) and loading user models from path.py:build_fn."""
from __future__ import annotations

import json
import textwrap

import pytest
import torch

from ondevice.cli import main
from ondevice.errors import ConfigError, ConstraintError
from ondevice.models.user import DEFAULT_INPUT_SHAPE, load_user_model

MODELS = {
    "good.py": """
        import dataclasses
        import torch, torch.nn as nn

        @dataclasses.dataclass
        class Config:  # needs the module registered in sys.modules while importing
            width: int = 4

        class Net(nn.Module):
            def __init__(self, act):
                super().__init__()
                self.conv = nn.Conv2d(1, 4, 3, padding=1)
                self.act = act
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                return self.fc(self.act(self.conv(x)).mean((2, 3)))

        def build():
            return Net(nn.ReLU6())

        def build_relu():
            return Net(nn.ReLU())

        def build_pair():
            return Net(nn.ReLU6()), torch.zeros(1, 1, 8, 8)

        def build_attr():
            net = Net(nn.ReLU6())
            net.example_inputs = lambda: (torch.zeros(1, 1, 16, 16),)
            return net

        def build_raises():
            raise ValueError("no such layer size")

        def build_int():
            return 3

        def build_bad_inputs():
            return Net(nn.ReLU6()), "not a tensor"

        NOT_A_FUNCTION = 5
    """,
    "broken.py": """
        import torch
        x = 1 / 0
    """,
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("usermodels")
    for name, text in MODELS.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def test_load_user_model_forms(model_dir):
    um = load_user_model(f"{model_dir}/good.py:build")
    assert isinstance(um.module, torch.nn.Module) and um.name == "good"
    assert um.default_inputs and um.example_inputs[0].shape == DEFAULT_INPUT_SHAPE
    assert load_user_model(f"{model_dir}/good.py:build_pair").example_inputs[0].shape == (1, 1, 8, 8)
    um = load_user_model(f"{model_dir}/good.py:build_attr")
    assert um.example_inputs[0].shape == (1, 1, 16, 16) and not um.default_inputs


@pytest.mark.parametrize("spec,needle", [
    ("{d}/missing.py:build", "does not exist"),
    ("{d}/good.py", "not of the form"),
    ("{d}/good.py:", "not of the form"),
    ("{d}/good.py:biuld", "no function 'biuld'"),
    ("{d}/good.py:NOT_A_FUNCTION", "not a function"),
    ("{d}/good.py:build_raises", "raised at good.py:"),
    ("{d}/good.py:build_int", "returned int, not a torch.nn.Module"),
    ("{d}/good.py:build_bad_inputs", "must be a tensor"),
    ("{d}/broken.py:build", "importing"),
])
def test_load_user_model_errors(model_dir, spec, needle):
    with pytest.raises(ConfigError) as e:
        load_user_model(spec.format(d=model_dir))
    assert needle in e.value.message and e.value.hint
    if "biuld" in spec:
        assert "'build'" in e.value.hint  # suggests the close name


def test_build_error_names_the_user_line(model_dir):
    with pytest.raises(ConfigError) as e:
        load_user_model(f"{model_dir}/good.py:build_raises")
    assert "ValueError: no such layer size" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_user_model(f"{model_dir}/broken.py:build")
    assert "ZeroDivisionError" in e.value.message and "broken.py:3" in e.value.message


def test_cli_exit_codes_and_json(model_dir, tmp_path, capsys):
    out = tmp_path / "lint.json"
    assert main(["lint", "--model", f"{model_dir}/good.py:build", "--target", "edgetpu", "--target", "tflm",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["constraints"] == {"edgetpu": [], "tflm": []} and doc["ok"] == {"edgetpu": True, "tflm": True}
    assert set(doc["warnings"]) == {"edgetpu", "tflm"}

    rc = main(["lint", "--model", f"{model_dir}/good.py:build_relu", "--target", "all", "--out", str(out)])
    assert rc == ConstraintError.exit_code == 4
    doc = json.loads(out.read_text())
    assert set(doc["constraints"]) == {"executorch", "tflite", "edgetpu", "coreml", "tflm", "mcu"}
    v = doc["constraints"]["edgetpu"][0]
    assert v["rule"] == "activation" and v["where"] == "act" and v["auto_fixable"] is True
    assert "activation" in capsys.readouterr().out


def test_cli_target_takes_a_comma_list(model_dir, tmp_path):
    out = tmp_path / "comma.json"
    assert main(["lint", "--model", f"{model_dir}/good.py:build", "--target", "tflite,mcu", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["targets"] == ["tflite", "mcu"] and doc["constraints"] == {"tflite": [], "mcu": []}


def test_cli_fix_swaps_activation(model_dir, tmp_path, capsys):
    out = tmp_path / "fixed.json"
    assert main(["lint", "--model", f"{model_dir}/good.py:build_relu", "--target", "edgetpu", "--fix",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["fixed"] == ["act: ReLU -> ReLU6"] and doc["constraints"] == {"edgetpu": []}
    assert "fixed: act: ReLU -> ReLU6" in capsys.readouterr().err


def test_cli_bad_input_is_one_line_error(model_dir, capsys):
    assert main(["lint", "--model", f"{model_dir}/nope.py:build"]) == ConfigError.exit_code
    assert main(["lint", "--model", f"{model_dir}/good.py:build", "--target", "edgetpuu"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "does not exist" in err and "did you mean 'edgetpu'" in err and "Traceback" not in err
    assert main(["lint", "--recipe", "mitsis", "--model", f"{model_dir}/good.py:build"]) == ConfigError.exit_code


def test_cli_recipe_is_clean(tmp_path):
    out = tmp_path / "mitsis.json"
    assert main(["lint", "--recipe", "mitsis", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert all(doc["ok"].values()) and doc["stats"]["peak_activation_bytes"] > 0
