"""The synthetic corpus (determinism, layout, design property, atomicity) and the dataset reader."""
from __future__ import annotations

import csv
import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ondevice.data import KEYWORDS, LABELS, METADATA_COLUMNS, NEGATIVE_WORDS, POSITIVE_WORDS
from ondevice.data.dataset import check_dataset, load_split, read_wav
from ondevice.data.synth import DESIGN, design_with, plan, synth, write_wav
from ondevice.errors import ConfigError, DataError, ToolMissingError
from ondevice.features import compute_features


def _meta(folder: Path) -> list[dict]:
    with open(folder / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------- corpus

def test_corpus_layout(synth_small):
    rows = _meta(synth_small)
    assert len(rows) == 48 and list(rows[0]) == list(METADATA_COLUMNS)
    counts = {(r["split"], r["label"]) for r in rows}
    assert len(counts) == 12  # every label in every split
    for lab in LABELS:
        by = [r["split"] for r in rows if r["label"] == lab]
        assert (by.count("train"), by.count("val"), by.count("test")) == (8, 2, 2)
    starts = []
    for r in rows:
        assert r["keyword"] in KEYWORDS and r["transcript"] == r["keyword"]
        with wave.open(str(synth_small / r["path"])) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
            x = np.frombuffer(w.readframes(16000), dtype="<i2").astype(float)
        env = np.abs(x) > 0.05 * np.abs(x).max()
        starts.append(int(np.argmax(env)))
        assert np.abs(x).max() > 1000  # speech, not just the noise floor
        assert np.abs(x[:80]).max() < 0.2 * np.abs(x).max()  # word is inside the clip, not cut at the start
    assert np.std(starts) > 500  # random offsets: time shift matters
    corpus = json.loads((synth_small / "corpus.json").read_text())
    assert corpus["seed"] == 0 and corpus["size"] == 48 and corpus["keywords"] == list(KEYWORDS)
    assert corpus["design"] == json.loads(json.dumps(DESIGN))
    assert (synth_small / "clips.csv").is_file()


def test_corpus_is_deterministic_whatever_the_jobs(tmp_path):
    require_tool("espeak-ng")
    a = synth(tmp_path / "a", size=12, seed=5, jobs=1)
    b = synth(tmp_path / "b", size=12, seed=5, jobs=3)
    c = synth(tmp_path / "c", size=12, seed=6, jobs=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "metadata.csv").read_bytes() != (c / "metadata.csv").read_bytes()
    # Re-running over an existing corpus replaces it in place.
    synth(a, size=12, seed=6, jobs=2)
    assert (a / "metadata.csv").read_bytes() == (c / "metadata.csv").read_bytes()


def _bayes_accuracy(feature: list, labels: list) -> float:
    """Accuracy of the best classifier that sees only ``feature`` (a discrete value per clip)."""
    best = {}
    for f, y in zip(feature, labels):
        best.setdefault(f, {}).setdefault(y, 0)
        best[f][y] += 1
    return sum(max(c.values()) for c in best.values()) / len(labels)


def test_design_needs_both_modalities():
    specs = plan(4000, seed=0)
    labels = [s.label for s in specs]
    own = [(s.keyword in POSITIVE_WORDS) == (s.label in ("neutral", "happy")) for s in specs]
    p = DESIGN["p_keyword_from_own_valence_group"]
    assert abs(np.mean(own) - p) < 0.03
    high = np.array([s.label in ("happy", "angry") for s in specs])
    for attr in ("pitch", "rate", "amplitude"):
        v = np.array([getattr(s, attr) for s in specs])
        assert v[high].mean() > v[~high].mean() + 10  # prosody carries arousal ...
        assert v[high].min() < np.median(v[~high])    # ... with overlap
    # Oracles on the generator's own variables: the keyword alone, an arousal cue alone, and both.
    prosody = [int(s.pitch > DESIGN["pitch"]["base"]) + int(s.rate > DESIGN["rate_wpm"]["base"])
               + int(s.amplitude > DESIGN["amplitude"]["base"]) for s in specs]
    kw = _bayes_accuracy([s.keyword for s in specs], labels)
    pr = _bayes_accuracy(prosody, labels)
    fused = _bayes_accuracy(list(zip([s.keyword in NEGATIVE_WORDS for s in specs], prosody)), labels)
    assert kw < 0.45 and pr < 0.5
    assert fused > max(kw, pr) + 0.15


def test_design_overrides_for_ablations(tmp_path):
    d = design_with({"p_keyword_from_own_valence_group": 1.0, "pitch": {"slope": 0}})
    assert d["pitch"]["base"] == DESIGN["pitch"]["base"] and DESIGN["pitch"]["slope"] == 22  # DESIGN untouched
    specs = plan(400, seed=1, design=d)
    assert all((s.keyword in POSITIVE_WORDS) == (s.label in ("neutral", "happy")) for s in specs)
    with pytest.raises(ConfigError, match="unknown corpus design key"):
        design_with({"colour": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        design_with({"pitch": {"slop": 1}})
    require_tool("espeak-ng")
    out = synth(tmp_path / "abl", size=12, seed=2, jobs=2, design={"noise_rms_lsb": [0.0, 0.0]})
    assert json.loads((out / "corpus.json").read_text())["design"]["noise_rms_lsb"] == [0.0, 0.0]


def test_missing_espeak_is_a_tool_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="espeak-ng") as e:
        synth(tmp_path / "out", size=8)
    assert "apt-get install" in e.value.hint


def test_interrupted_synth_leaves_nothing(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "espeak-ng"  # an espeak-ng that fails after a few clips
    fake.parent.mkdir()
    real = require_tool("espeak-ng")
    fake.write_text(f'#!/bin/sh\nn=$(ls "{tmp_path}/calls" 2>/dev/null | wc -l)\n'
                    f'[ "$n" -ge 3 ] && {{ echo "synthetic failure" >&2; exit 1; }}\n'
                    f'mkdir -p "{tmp_path}/calls" && touch "{tmp_path}/calls/$$"\nexec "{real}" "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DataError, match="espeak-ng failed"):
        synth(tmp_path / "out", size=12, jobs=1)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_refuses_to_replace_a_non_corpus_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a corpus"):
        synth(tmp_path / "mine", size=8)
    assert (tmp_path / "mine" / "precious.txt").exists()
    with pytest.raises(ConfigError, match="too small"):
        plan(11, seed=0)
    for size in (12, 13, 50):  # every class lands in every split, whatever the size
        splits = {(s.split, s.label) for s in plan(size, seed=0)}
        assert len(splits) == 12


# ------------------------------------------------------------------------------------------- reader

def test_load_split_features_and_cache(synth_small, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(synth_small, folder)
    s = load_split(folder, "train")
    assert s.features.shape == (32, 49, 40) and s.features.dtype == np.uint16
    assert s.labels.dtype == np.int64 and s.keywords.dtype == np.int64 and len(s) == 32
    assert sorted(np.bincount(s.labels).tolist()) == [8, 8, 8, 8]
    r0 = s.rows[0]
    assert LABELS[s.labels[0]] == r0.label and KEYWORDS[s.keywords[0]] == r0.keyword
    np.testing.assert_array_equal(s.features[0], compute_features(read_wav(folder, r0)))
    caches = list((folder / ".cache").glob("features-train-*.npz"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    np.testing.assert_array_equal(load_split(folder, "train").features, s.features)
    assert caches[0].stat().st_mtime_ns == stamp  # served from the cache
    # A corrupt cache is rebuilt, not trusted; so is one whose bytes were altered.
    caches[0].write_bytes(b"not an npz")
    np.testing.assert_array_equal(load_split(folder, "train").features, s.features)
    z = dict(np.load(caches[0]))
    z["features"] = z["features"] + 1
    np.savez(caches[0], **z)
    np.testing.assert_array_equal(load_split(folder, "train").features, s.features)
    # Changing a file changes the key.
    write_wav(folder / r0.path, np.zeros(16000, np.int16))
    assert load_split(folder, "train").features[0].max() == 0
    assert len(list((folder / ".cache").glob("features-train-*.npz"))) == 1  # the stale entry is gone


def test_check_dataset_summary(synth_small):
    summary = check_dataset(synth_small)
    assert summary["rows"] == 48
    assert summary["splits"]["train"] == {lab: 8 for lab in LABELS}
    assert sum(summary["keywords"].values()) == 48
    assert summary["corpus"]["seed"] == 0


@pytest.fixture
def user_data(synth_small, tmp_path):
    """A writable copy of a few corpus rows, in the user-data layout (no corpus.json)."""
    folder = tmp_path / "mydata"
    (folder / "clips").mkdir(parents=True)
    rows = _meta(synth_small)
    keep = [next(r for r in rows if r["split"] == sp) for sp in ("train", "val", "test")]
    for i, r in enumerate(keep):
        shutil.copy(synth_small / r["path"], folder / "clips" / f"{i}.wav")
        r["path"] = f"clips/{i}.wav"
    _write_meta(folder, keep)
    return folder


def _write_meta(folder: Path, rows: list[dict], columns=METADATA_COLUMNS) -> None:
    with open(folder / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _set(folder: Path, row: int, **kw) -> None:
    rows = _meta(folder)
    rows[row].update(kw)
    _write_meta(folder, rows)


def _wav(path: Path, rate: int = 16000, channels: int = 1, width: int = 2, n: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * (n * channels * width))


def test_user_data_loads_and_short_clips_are_padded(user_data):
    _wav(user_data / "clips" / "1.wav", n=8000)
    meta = user_data / "metadata.csv"
    meta.write_bytes(b"\xef\xbb\xbf" + meta.read_bytes())  # spreadsheets save CSV with a BOM
    assert check_dataset(user_data)["rows"] == 3
    val = load_split(user_data, "val")
    assert val.features.shape == (1, 49, 40)
    assert val.features[0, -1].max() == 0  # the padded second half is digital silence


BAD_CASES = {
    "missing file": (lambda d: (d / "clips" / "1.wav").unlink(), r"row 3 \(clips/1.wav\): file not found"),
    "sample rate": (lambda d: _wav(d / "clips" / "1.wav", rate=8000), r"row 3 \(clips/1.wav\): sample rate 8000"),
    "not mono": (lambda d: _wav(d / "clips" / "1.wav", channels=2), r"row 3 \(clips/1.wav\): 2 channels"),
    "not int16": (lambda d: _wav(d / "clips" / "1.wav", width=4), r"row 3 \(clips/1.wav\): 32-bit samples"),
    "float wav": (lambda d: (d / "clips" / "1.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"),
                  r"row 3 \(clips/1.wav\): not a 16-bit PCM WAV"),
    "unknown label": (lambda d: _set(d, 1, label="bored"), r"row 3 \(clips/1.wav\): unknown label 'bored'"),
    "unknown split": (lambda d: _set(d, 2, split="dev"), r"row 4 \(clips/2.wav\): unknown split 'dev'"),
    "unknown keyword": (lambda d: _set(d, 0, keyword="banana"), r"row 2 \(clips/0.wav\): unknown keyword"),
    "missing column": (lambda d: _write_meta(d, _meta(d), ("path", "label", "transcript", "split")),
                       r"no column keyword"),
    "empty split": (lambda d: _set(d, 1, split="train"), r"split 'val' .* is empty"),
    "no metadata": (lambda d: (d / "metadata.csv").unlink(), r"metadata.csv is missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_names_the_row(user_data, case):
    breakit, pattern = BAD_CASES[case]
    breakit(user_data)
    with pytest.raises(DataError, match=pattern) as e:
        check_dataset(user_data)
    assert e.value.hint
    with pytest.raises(DataError, match=pattern):
        load_split(user_data, "val")


def test_unknown_split_name_and_missing_folder(user_data, tmp_path):
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_split(user_data, "dev")
    with pytest.raises(DataError, match="does not exist"):
        check_dataset(tmp_path / "nowhere")


def test_cli_data_check_exits_with_one_line(user_data, capsys):
    from ondevice.cli import main

    assert main(["data", "check", str(user_data)]) == 0
    assert '"rows": 3' in capsys.readouterr().out
    _set(user_data, 0, label="bored")
    assert main(["data", "check", str(user_data)]) == DataError.exit_code
    err = capsys.readouterr().err
    assert "unknown label 'bored'" in err and "Traceback" not in err


def test_cli_data_synth(tmp_path):
    require_tool("espeak-ng")
    from ondevice.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--size", "12", "--seed", "1", "--jobs", "2"]) == 0
    assert len(_meta(tmp_path / "c")) == 12
    assert check_dataset(tmp_path / "c")["corpus"]["seed"] == 1
