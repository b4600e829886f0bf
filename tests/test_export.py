"""Exporters: each target on a tiny QAT run made at test time, manifests, and every bad-input path."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from _export_support import tiny_export, tiny_run_dir
from ondevice.errors import ConfigError, ExportError, OndeviceError, UnsupportedOpError
from ondevice.export import edgetpu as etpu
from ondevice.export.manifest import REQUIRED, artifact_digest, find_artifacts, read_manifest
from ondevice.export.registry import Exporter, TARGETS, get_exporter, register, resolve_targets, target_names
from ondevice.export.tflite_util import check_full_int8, float_tensors, op_counts
from ondevice.mcu.reader import Graph, Op, Tensor, read_graph

MINE = ("tflite", "edgetpu", "tflm", "executorch", "coreml")
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "h3-export"


@pytest.fixture(scope="session")
def exported(root) -> dict:
    return tiny_export(str(root), MINE)


@pytest.fixture(scope="session")
def run(root):
    from ondevice.export.api import load_source
    return load_source(tiny_run_dir(str(root)))


# ------------------------------------------------------------------------------------------------ registry
def test_registry_has_every_target_and_expands_all():
    names = target_names()
    for t in MINE:
        assert t in names
    assert resolve_targets(["all"]) == names
    assert resolve_targets(["tflite,tflm", "tflite"]) == ["tflite", "tflm"]


def test_unknown_target_suggests_the_close_one():
    with pytest.raises(ConfigError) as e:
        get_exporter("tflit")
    assert "tflite" in e.value.hint


def test_registry_refuses_duplicates_and_bad_entries():
    with pytest.raises(ValueError, match="twice"):
        @register("tflite", extension=".tflite", quant="int8")
        class Again(Exporter):
            pass
    with pytest.raises(TypeError):
        TARGETS.register("not-an-exporter")(object)
    with pytest.raises(ValueError, match="extension"):
        @register("h3-bad-ext", extension="tflite", quant="int8")
        class BadExt(Exporter):
            pass
    assert "h3-bad-ext" not in TARGETS


# ------------------------------------------------------------------------------------------- every target
def test_artifact_names_and_complete_manifests(exported, run):
    assert set(exported) == set(MINE)
    for target, path in exported.items():
        ext = get_exporter(target).extension
        assert path.name == f"tiny_{target}_int8{ext}"
        m = read_manifest(path, check_sha=True)
        for k in REQUIRED:
            assert k in m, (target, k)
        assert m["target"] == target and m["model"] == "tiny" and m["labels"] == run.labels
        assert m["sha256"], m["bytes"] == artifact_digest(path)
        assert m["inputs"] and m["outputs"] and m["ops"]
        assert "torch" in m["versions"] and "delegation" in m
    # nothing half-written is left behind
    assert not [p for p in exported["tflite"].parent.iterdir() if p.name.startswith(".")]


def test_tflite_is_fully_int8_with_int8_io(exported):
    data = exported["tflite"].read_bytes()
    g = read_graph(data)
    assert float_tensors(g) == []
    assert all(g.tensors[i].dtype == "int8" for i in g.inputs + g.outputs)
    m = read_manifest(exported["tflite"])
    assert m["inputs"][0]["dtype"] == "int8" and m["inputs"][0]["scale"] > 0
    assert m["outputs"][0]["dtype"] == "int8"
    assert m["ops"] == op_counts(g)
    assert m["tflite_metadata"]["embedded"] == "TFLITE_METADATA" and m["normalisation"]


def _t(i, name, shape, dtype="int8", quantized=True):
    q = (np.array([0.1], np.float32), np.array([0])) if quantized else (None, None)
    return Tensor(i, name, tuple(shape), dtype, *q)


def _g(ops, tensors):
    return Graph("m", tensors, ops, [0], [len(tensors) - 1], "", 0)


def test_full_int8_check_names_the_float_op():
    t = [_t(0, "x", [1, 4]), _t(1, "y", [1, 4], "float32", False), _t(2, "z", [1, 4])]
    g = _g([Op(0, "DEQUANTIZE", [0], [1]), Op(1, "QUANTIZE", [1], [2])], t)
    with pytest.raises(UnsupportedOpError) as e:
        check_full_int8(g, "m.tflite")
    assert "DEQUANTIZE (op 0)" in e.value.message and "1 float tensor" in e.value.message and e.value.hint


def test_edgetpu_precheck_maps_everything_and_says_compiler_absent(exported):
    m = read_manifest(exported["edgetpu"])
    rep = m["edgetpu_precheck"]
    assert rep["mapped_fraction"] == 1.0 and rep["first_unmapped"] is None
    assert len(rep["ops"]) == sum(m["ops"].values())
    assert m["delegation"]["unmapped"] == {}
    if shutil.which("edgetpu_compiler") is None:
        assert m["edgetpu_compiler"] == "not run: edgetpu_compiler not on PATH"
        assert m["edgetpu_compiled_model"] is None


def test_edgetpu_rules_variable_fc_weights_and_cpu_tail():
    t = [_t(0, "q", [25, 32]), _t(1, "k", [25, 32]), _t(2, "s", [25, 25]), _t(3, "p", [25, 25])]
    g = _g([Op(0, "FULLY_CONNECTED", [0, 1, -1], [2]), Op(1, "SOFTMAX", [2], [3])], t)
    rep = etpu.precheck(g)
    assert rep["ops"][0]["status"] == etpu.UNMAPPED and "variable" in rep["ops"][0]["why"]
    assert rep["ops"][1]["status"] == etpu.CPU_AFTER
    assert rep["mapped_fraction"] == 0.0


def test_edgetpu_rules_rank_batch_matmul_and_dtype():
    big, out = _t(0, "x", [1, 2, 3, 4, 5]), _t(1, "y", [1, 2, 3, 4, 5])
    rep = etpu.precheck(_g([Op(0, "ADD", [0, 0], [1])], [big, out]))
    assert "dims > 1" in rep["ops"][0]["why"]
    a = _t(0, "a", [4, 4])
    rep = etpu.precheck(_g([Op(0, "BATCH_MATMUL", [0, 0], [1])], [a, _t(1, "b", [4, 4], quantized=False)]))
    assert "broadcast MUL" in rep["ops"][0]["why"]
    f = _t(1, "f", [4, 4], "int16", False)
    rep = etpu.precheck(_g([Op(0, "RELU", [0], [1])], [a, f]))
    assert "8-bit" in rep["ops"][0]["why"]


def test_edgetpu_compiler_log_parser_on_documented_format():
    rep = etpu.parse_compiler_log((DATA / "edgetpu_compiler_sample.log").read_text())
    assert rep["compiler_version"] == "16.0.384591198" and rep["compiled"]
    assert rep["total_ops"] == 12 and rep["edgetpu_ops"] == 9 and rep["cpu_ops"] == 3
    assert rep["mapped_fraction"] == pytest.approx(0.75)
    assert rep["mapped"]["FULLY_CONNECTED"] == 2 and rep["unmapped"]["FULLY_CONNECTED"] == 1
    assert rep["unmapped"]["BATCH_MATMUL"] == 1 and rep["first_unmapped"]["op"] == "BATCH_MATMUL"
    assert "not supported" in rep["first_unmapped"]["why"]
    assert len(rep["ops"]) == 12
    assert "75%" in etpu.format_report(rep)


def test_edgetpu_refuses_unmappable_op_and_leaves_nothing(run, exported, tmp_path, monkeypatch):
    from ondevice.export import edgetpu_rules
    monkeypatch.delitem(edgetpu_rules.SUPPORTED_OPS, "MEAN")
    run.__dict__.setdefault("_ondevice_export_cache", {})["tflite"] = exported["tflite"].read_bytes()
    with pytest.raises(UnsupportedOpError) as e:
        get_exporter("edgetpu").export(run, tmp_path)
    assert "MEAN" in e.value.message and "CPU" in e.value.message and "ONDEVICE_EDGETPU_ALLOW_CPU" in e.value.hint
    assert list(tmp_path.iterdir()) == []
    # asked for explicitly, the partial mapping is exported and reported
    monkeypatch.setenv("ONDEVICE_EDGETPU_ALLOW_CPU", "1")
    m = read_manifest(get_exporter("edgetpu").export(run, tmp_path))
    assert m["delegation"]["first_unmapped"]["op"] == "MEAN" and m["delegation"]["mapped_fraction"] < 1.0
    assert m["delegation"]["unmapped"]["MEAN"] == 1


def test_tflm_sources_resolver_and_measured_arena(exported):
    from ondevice.runtimes.tflm import TFLMModel
    d = exported["tflm"]
    m = read_manifest(d, check_sha=True)
    data = (d / "tiny.tflite").read_bytes()
    cc = (d / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_tiny_model_data[]" in cc
    assert f"g_tiny_model_data_len = {len(data)};" in cc
    assert len(re.findall(r"0x[0-9a-f]{2}", cc)) == len(data)
    ops = set(op_counts(read_graph(data)))
    res = (d / "ops_resolver.h").read_text()
    added = re.findall(r"r\.(Add\w+)\(\)", res)
    assert len(added) == len(ops) == len(set(added))
    assert f"MicroMutableOpResolver<{len(ops)}>" in res
    arena = TFLMModel(data, "tiny").arena_bytes()
    assert m["arena_bytes"] == arena > 0
    assert f"TINY_ARENA_BYTES_MEASURED {arena}" in (d / "model_data.h").read_text()
    assert m["arena_bytes_recommended"] >= arena and m["arena_bytes_recommended"] % 16 == 0


def test_executorch_fully_delegated_with_bundled_program(exported):
    from ondevice.runtimes.executorch import ExecuTorchModel
    m = read_manifest(exported["executorch"], check_sha=True)
    d = m["delegation"]
    assert d["backend"] == "XnnpackBackend" and d["delegated"] and d["not_delegated"] == {}
    assert any("convolution" in k for k in d["delegated"])
    bpte = exported["executorch"].with_suffix(".bpte")
    bm = read_manifest(bpte, check_sha=True)
    assert bm["bundled_test_cases"] == 4 and bm["program"] == exported["executorch"].name
    assert ExecuTorchModel(bpte.read_bytes(), bpte.name, bundled=True).self_check(4, 0.0, bm["bundled_atol"]) == 4


def test_coreml_w8a8_manifest_records_spec_and_method(exported):
    m = read_manifest(exported["coreml"], check_sha=True)
    q = m["quantization"]
    # the tiny run's QAT graph converts as is: W8A8 with the QAT scales, int8 weight constants
    assert q["mode"] == "W8A8" and q["source"] == "qat" and "run.qat_module()" in q["method"]
    assert m["ops"].get("quantize", 0) > 0 and m["ops"].get("constexpr_affine_dequantize", 0) > 0
    assert m["inputs"][0]["shape"] == [1, 1, 49, 40] and m["outputs"][0]["shape"] == [1, 4]
    assert m["inputs"][0]["name"] == "mel" and m["outputs"][0]["name"] == "output"  # stable names for the app
    assert (exported["coreml"] / "Manifest.json").is_file()


def test_coreml_fallback_to_int8_weights_is_recorded(run, tmp_path, monkeypatch):
    from ondevice.export import coreml

    def fail(*a, **k):
        raise RuntimeError("unsupported op for this test")
    monkeypatch.setattr(coreml, "_qat_graph", fail)
    monkeypatch.setattr(coreml, "_w8a8", fail)
    path = get_exporter("coreml").export(run, tmp_path)
    q = read_manifest(path)["quantization"]
    assert q["mode"] == "W8" and q["source"] == "float"
    assert set(q["w8a8_errors"]) == {"qat_graph", "coreml_quantizer"} and "unsupported op" in q["w8a8_error"]
    assert read_manifest(path)["ops"].get("constexpr_affine_dequantize", 0) > 0  # weights still int8


# ---------------------------------------------------------------------------------------------- bad input
def test_float_op_is_refused_by_every_int8_flatbuffer_target(root, tmp_path):
    # exp is not annotated by the int8 quantizer: litert leaves it float, and no full-int8 target may ship that
    from _export_support import build_tiny_exp, make_tiny_run
    from ondevice.export.api import export
    run_dir = make_tiny_run(root / "runs" / "tinyexp", "tinyexp", build_tiny_exp)
    for target in ("tflite", "tflm", "edgetpu"):
        with pytest.raises(UnsupportedOpError) as e:
            export(model=run_dir, targets=[target], out=tmp_path)
        assert e.value.message.startswith(f"[{target}]") and e.value.hint
        if target == "edgetpu":  # the op-by-op pre-check stops at the first float op, where the compiler would
            assert "FLOAT32" in e.value.message and "CPU" in e.value.message
        else:
            assert "EXP" in e.value.message
    assert list(tmp_path.iterdir()) == []


def test_missing_run_folder(tmp_path):
    from ondevice.export.api import export
    with pytest.raises(ConfigError) as e:
        export(model=tmp_path / "nope", targets=["tflite"], out=tmp_path / "a")
    assert "does not exist" in e.value.message and e.value.hint
    assert not (tmp_path / "a").exists() or list((tmp_path / "a").iterdir()) == []


def test_corrupt_run_folder(root, tmp_path):
    from ondevice.export.api import export
    bad = tmp_path / "run"
    shutil.copytree(tiny_run_dir(str(root)), bad)
    (bad / "qat.pt2").write_bytes(b"not a zip")
    with pytest.raises(OndeviceError) as e:
        export(model=bad, targets=["tflite"], out=tmp_path / "a")
    assert "qat.pt2" in e.value.message and e.value.hint
    assert not (tmp_path / "a").exists() or list((tmp_path / "a").iterdir()) == []
    (bad / "recipe.json").write_text("{broken")
    with pytest.raises(ConfigError, match="recipe.json"):
        export(model=bad, targets=["tflite"], out=tmp_path / "a")


def test_unknown_target_fails_before_loading(tmp_path):
    from ondevice.export.api import export
    with pytest.raises(ConfigError) as e:
        export(model=tmp_path / "nope", targets=["tflite", "nosuch"], out=tmp_path / "a")
    assert "nosuch" in e.value.message


def test_truncated_tflite_and_pte(exported, tmp_path):
    from ondevice.runtimes.base import get_runtime
    for target, rt in (("tflite", "litert"), ("tflite", "tflm"), ("executorch", "executorch")):
        src = exported[target]
        bad = tmp_path / f"cut{src.suffix}"
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        with pytest.raises(ConfigError) as e:
            get_runtime(rt).load(bad)
        assert "truncated" in e.value.hint or "truncated" in e.value.message
    with pytest.raises(ConfigError, match="TFLite"):
        read_graph(b"\x00" * 12, "x.tflite")
    # a copy that no longer matches its manifest is caught by the sha check
    cut = tmp_path / exported["tflite"].name
    cut.write_bytes(exported["tflite"].read_bytes()[:100])
    shutil.copy(str(exported["tflite"]) + ".manifest.json", str(cut) + ".manifest.json")
    with pytest.raises(ConfigError, match="sha256"):
        read_manifest(cut, check_sha=True)
    assert find_artifacts(tmp_path) == [cut]


def test_cli_export_one_target(root, tmp_path):
    from ondevice.cli import main
    assert main(["export", "--target", "tflite", "--model", str(tiny_run_dir(str(root))), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "tiny_tflite_int8.tflite").is_file()
    assert json.loads((tmp_path / "tiny_tflite_int8.tflite.manifest.json").read_text())["target"] == "tflite"
    assert main(["export", "--target", "nosuch", "--out", str(tmp_path)]) == 2


def test_edgetpu_runs_the_compiler_when_on_path(run, exported, tmp_path, monkeypatch):
    # An emulated compiler on PATH: prints the documented log and writes <stem>_edgetpu.tflite like the real one.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "edgetpu_compiler"
    fake.write_text(f"""#!/bin/sh
# usage: edgetpu_compiler -s -o OUTDIR MODEL
out="$3"; model="$4"; base=$(basename "$model" .tflite)
cat "{DATA / 'edgetpu_compiler_sample.log'}"
cp "$model" "$out/${{base}}_edgetpu.tflite"
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    run.__dict__.setdefault("_ondevice_export_cache", {})["tflite"] = exported["tflite"].read_bytes()
    exp = get_exporter("edgetpu")
    exp.allow_cpu_fallback = True  # the sample log puts 3 ops on the CPU: refused unless allowed (issue 13)
    path = exp.export(run, tmp_path / "out")
    m = read_manifest(path, check_sha=True)
    rep = m["edgetpu_compiler"]
    assert m["delegation"]["source"] == "edgetpu_compiler" and rep["cpu_ops"]["BATCH_MATMUL"] == 1
    assert rep["compiler_version"] == "16.0.384591198" and rep["returncode"] == 0
    assert m["edgetpu_compiled_model"] == "tiny_edgetpu_int8_edgetpu.tflite"
    assert (tmp_path / "out" / m["edgetpu_compiled_model"]).is_file()
    assert m["edgetpu_precheck"]["mapped_fraction"] == 1.0  # the pre-check is kept beside the compiler's view
