"""The one Registry type: every plugin axis fills itself the same way (package modules, a loader, entry points)."""
from __future__ import annotations

import sys
from importlib import metadata

import pytest

from ondevice.errors import ConfigError
from ondevice.registry import Registry


def _plugin_package(tmp_path, name, modules):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for mod, body in modules.items():
        (pkg / f"{mod}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    return name


def test_package_modules_register_themselves_on_first_lookup(tmp_path, monkeypatch):
    reg = Registry("widget", package="odtest_widgets", skip=("helpers",))
    monkeypatch.setitem(sys.modules, "odtest_reg", type(sys)("odtest_reg"))
    sys.modules["odtest_reg"].REG = reg
    _plugin_package(tmp_path, "odtest_widgets", {
        "alpha": "from odtest_reg import REG\nREG.register('alpha')(1)\n",
        "beta": "from odtest_reg import REG\nREG.register('beta')(2)\n",
        "helpers": "raise RuntimeError('a skipped module is never imported')\n",
        "_private": "raise RuntimeError('an underscore module is never imported')\n"})
    try:
        assert reg.names() == ["alpha", "beta"]
        assert reg.get("beta") == 2 and "alpha" in reg and reg.find("gamma") is None
        with pytest.raises(ConfigError) as e:
            reg.get("alpah")
        assert "alpha" in e.value.hint
    finally:
        sys.path.remove(str(tmp_path))


def test_loader_runs_once_and_a_failed_load_is_retried():
    calls = []

    def loader():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        reg.register("b")(3)

    reg: Registry[int] = Registry("board", loader=loader)
    with pytest.raises(OSError):
        reg.names()
    assert reg.names() == ["b"] and reg.names() == ["b"]
    assert len(calls) == 2


def test_entry_points_add_third_party_plugins(monkeypatch):
    reg: Registry[str] = Registry("transport", entry_points="ondevice.test_axis")
    reg.register("builtin")("b")
    ep = metadata.EntryPoint(name="myscheme", value="odtest_ep_plugin", group="ondevice.test_axis")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep] if group == "ondevice.test_axis" else [])
    # loading the entry point imports the plugin, which registers itself
    monkeypatch.setattr(metadata.EntryPoint, "load", lambda self: reg.register(self.name)("plugin"))
    assert reg.names() == ["builtin", "myscheme"] and reg.get("myscheme") == "plugin"


@pytest.mark.parametrize("axis, expected", [
    ("ondevice.export.registry:TARGETS", {"executorch", "tflite", "edgetpu", "coreml", "tflm", "mcu"}),
    ("ondevice.runtimes.base:RUNTIMES", {"executorch", "litert", "tflm", "mcu-host", "coreml"}),
    ("ondevice.profiling.transports:TRANSPORTS", {"serial", "socket", "qemu", "adb", "ios", "sim"}),
    ("ondevice.boards:PORTS", {"qemu-mps2-an386", "qemu-mps3-an547", "nucleo-f446re"}),
    ("ondevice.models:RECIPES", {"mitsis", "kws-dscnn"}),
])
def test_every_axis_is_a_registry_with_its_builtins(axis, expected):
    import importlib
    mod, attr = axis.split(":")
    reg = getattr(importlib.import_module(mod), attr)
    assert isinstance(reg, Registry)
    assert expected <= set(reg.names())
