"""The house rules hold: no import cycles, no upward imports, no module over 500 lines, no function over 80."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _archcheck():
    spec = importlib.util.spec_from_file_location("archcheck", ROOT / "scripts" / "archcheck.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["archcheck"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_house_rules_hold():
    found = _archcheck().violations()
    assert found == [], "\n".join(found)


def test_archcheck_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checker itself: a planted cycle and a planted upward import are reported (so an empty list means something)."""
    ac = _archcheck()
    mods = {"ondevice.errors": tmp_path / "errors.py", "ondevice.cli": tmp_path / "cli.py"}
    mods["ondevice.errors"].write_text("from ondevice import cli\n")
    mods["ondevice.cli"].write_text("from ondevice.errors import X\n")
    graph = ac.import_graph(mods)
    assert ac.cycles(graph) == [["ondevice.cli", "ondevice.errors"]]
    assert ac.layer_of("ondevice.errors") < ac.layer_of("ondevice.cli")
    assert ac.layer_of("ondevice.verify.stats") == ac.layer_of("ondevice.verify")
