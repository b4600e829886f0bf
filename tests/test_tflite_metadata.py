"""TFLite metadata embedded in every exported .tflite, read back the way mobile tooling reads it: the model's
TFLITE_METADATA buffer (decoded here by flatc from the schema layout, not by our writer's code) and the associated
files zipped onto the model. I/O quantization is read from the model's tensors, as the metadata extractor does."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _export_support import LABELS, tiny_export
from conftest import require_tool
from ondevice.export.manifest import read_manifest
from ondevice.export.tflite_metadata import associated_files, read_metadata_buffer

SCHEMA = Path(__file__).parent / "data" / "tflite_metadata_subset.fbs"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return tiny_export(str(tmp_path_factory.mktemp("meta-export")), ("tflite", "edgetpu"))


def _decode(buf: bytes, tmp: Path) -> dict:
    flatc = require_tool("flatc")  # ships with the pinned executorch wheel
    (tmp / "meta.bin").write_bytes(buf)
    subprocess.run([flatc, "--json", "--strict-json", "--raw-binary", "-o", str(tmp), str(SCHEMA), "--",
                    str(tmp / "meta.bin")], check=True, capture_output=True, timeout=60)
    return json.loads((tmp / "meta.json").read_text())


@pytest.mark.parametrize("target", ["tflite", "edgetpu"])
def test_labels_normalisation_and_quantization_read_back(exported, tmp_path, target):
    path = exported[target]
    data = path.read_bytes()
    buf = read_metadata_buffer(data)
    assert buf is not None and buf[4:8] == b"M001"
    meta = _decode(buf, tmp_path)
    manifest = read_manifest(path, check_sha=True)  # the manifest's hash covers the model with its metadata
    assert meta["name"] == manifest["model"] and meta["version"].startswith("ondevice ")
    assert meta["min_parser_version"] == "1.0.0"
    sg = meta["subgraph_metadata"][0]
    (inp,), (out,) = sg["input_tensor_metadata"], sg["output_tensor_metadata"]
    # labels: the output's TENSOR_AXIS_LABELS file, packed in the zip appended to the model
    (af,) = out["associated_files"]
    assert af["type"] == "TENSOR_AXIS_LABELS"
    assert associated_files(data)[af["name"]].decode().splitlines() == LABELS == manifest["labels"]
    # normalisation: float input = (feature - mean) / std, the frontend's scale
    from ondevice.features import FEATURE_SCALE
    (unit,) = inp["process_units"]
    assert unit["options_type"] == "NormalizationOptions"
    assert unit["options"]["mean"] == [0.0] and unit["options"]["std"] == [pytest.approx(1 / FEATURE_SCALE)]
    # quantization: the model's tensors (where the extractor reads it) agree with the manifest and the metadata
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data)
    for detail, spec, tm in ((it.get_input_details()[0], manifest["inputs"][0], inp),
                             (it.get_output_details()[0], manifest["outputs"][0], out)):
        scale, zp = detail["quantization"]
        assert scale == pytest.approx(spec["scale"]) and zp == spec["zero_point"]
        assert tm["stats"]["min"][0] == pytest.approx((-128 - zp) * scale, rel=1e-5)
        assert tm["stats"]["max"][0] == pytest.approx((127 - zp) * scale, rel=1e-5)
        assert f"zero point {zp}" in tm["description"]


def test_embedding_again_replaces_the_entry_and_keeps_outputs(exported):
    from ondevice.export.tflite_metadata import ModelInfo, embed
    from ai_edge_litert.interpreter import Interpreter
    data = exported["tflite"].read_bytes()
    bare_end = data.rfind(b"PK\x03\x04")  # the appended zip starts with its first local header
    assert bare_end > 0

    def run(model: bytes) -> np.ndarray:
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.random.default_rng(1).integers(-128, 128, d["shape"]).astype(d["dtype"]))
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    # embedding again replaces the TFLITE_METADATA entry instead of adding a second one
    again = embed(data[:bare_end], ModelInfo("x", "2", "d", [], []))
    from ai_edge_litert import schema_py_generated as s
    m = s.Model.GetRootAs(again, 0)
    names = [m.Metadata(i).Name() for i in range(m.MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1
    np.testing.assert_array_equal(run(data), run(again))


def test_android_app_reads_the_labels_from_the_exported_tflite(exported, tmp_path):
    """The app's ModelLabels (pure Kotlin in protocol-core) finds labels.txt in the exported model, on the JVM."""
    kotlinc, java = require_tool("kotlinc"), require_tool("java")
    android = Path(__file__).resolve().parents[1] / "apps" / "android"
    jar = tmp_path / "labels.jar"
    r = subprocess.run([kotlinc, str(android / "protocol-core/src/main/kotlin/dev/ondevice/protocol/ModelLabels.kt"),
                        str(android / "jvm-agent/src/test/kotlin/dev/ondevice/jvmtest/ModelLabelsMain.kt"),
                        "-include-runtime", "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]

    def labels(path: Path) -> list[str]:
        p = subprocess.run([java, "-cp", str(jar), "dev.ondevice.jvmtest.ModelLabelsMain", str(path)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout.splitlines()

    assert labels(exported["tflite"]) == [f"LABEL {x}" for x in LABELS]
    bare = tmp_path / "bare.tflite"  # the flatbuffer alone: no zip, so no labels
    data = exported["tflite"].read_bytes()
    bare.write_bytes(data[:data.rfind(b"PK\x03\x04")])
    assert labels(bare) == ["NONE"]
