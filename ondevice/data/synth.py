"""The synthetic audio-text emotion corpus: espeak-ng keywords whose prosody carries arousal and whose word
carries valence, each with noise, so that neither modality alone decides the class (README.md here).

Every random choice is drawn up front from one seeded numpy Generator, so the corpus depends only on the seed
and the size, never on ``--jobs`` or scheduling. espeak-ng itself is deterministic.
"""
from __future__ import annotations

import copy
import csv
import io
import os
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ondevice import log
from ondevice.data import (CLIP_SAMPLES, KEYWORDS, LABELS, METADATA_COLUMNS, NEGATIVE_WORDS, POSITIVE_WORDS,
                           SAMPLE_RATE)
from ondevice.errors import ConfigError, DataError, ToolMissingError
from ondevice.fsutil import atomic_path, write_json_atomic

GENERATOR_VERSION = 1

# The design, as data: corpus.json records it, README.md explains it.
DESIGN = {
    "labels": {"neutral": {"arousal": "low", "valence": "positive"},
               "happy": {"arousal": "high", "valence": "positive"},
               "sad": {"arousal": "low", "valence": "negative"},
               "angry": {"arousal": "high", "valence": "negative"}},
    "p_keyword_from_own_valence_group": 0.8,
    "arousal_score": {"high_mean": 0.55, "low_mean": -0.55, "sd": 0.6},
    # espeak-ng parameter = base + slope * arousal_score + N(0, jitter), clipped to [lo, hi]
    "pitch": {"base": 50, "slope": 22, "jitter": 6, "lo": 5, "hi": 99},
    "rate_wpm": {"base": 165, "slope": 40, "jitter": 12, "lo": 110, "hi": 280},
    "amplitude": {"base": 95, "slope": 30, "jitter": 10, "lo": 40, "hi": 150},
    "voices": ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"],
    "variants_bright": ["f2", "f4", "m3", "m7"],
    "variants_calm": ["f1", "f3", "m1", "m2"],
    "p_bright_variant": {"high": 0.65, "low": 0.35},
    "gain_db": [-3.0, 3.0],  # the loudest ~5 % of clips saturate, as shouting does on a real mic
    "noise_rms_lsb": [4.0, 30.0],
    "max_offset_samples": 3200,
    "splits": {"train": 0.70, "val": 0.15, "test": 0.15},
}


def design_with(overrides: dict | None = None) -> dict:
    """DESIGN with ``overrides`` merged in (nested dicts key by key), for ablations; unknown keys are refused."""
    d = copy.deepcopy(DESIGN)
    for key, val in (overrides or {}).items():
        if key not in d:
            raise ConfigError(f"unknown corpus design key {key!r}", hint=f"keys are {', '.join(d)}")
        if isinstance(d[key], dict) and isinstance(val, dict):
            bad = [k for k in val if k not in d[key]]
            if bad:
                raise ConfigError(f"unknown key(s) {', '.join(bad)} in corpus design {key!r}",
                                  hint=f"keys are {', '.join(d[key])}")
            d[key].update(copy.deepcopy(val))
        else:
            d[key] = copy.deepcopy(val)
    return d


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip; drawn in the parent process from the seeded Generator."""
    index: int
    label: str
    keyword: str
    voice: str
    pitch: int
    rate: int
    amplitude: int
    arousal_score: float
    gain_db: float
    noise_rms: float
    offset: float      # in [-1, 1]: where the word sits relative to the centre, scaled by the free room
    noise_seed: int
    split: str

    @property
    def path(self) -> str:
        return f"wav/{self.index:05d}_{self.label}_{self.keyword}.wav"


def espeak_path() -> str:
    """Path of espeak-ng, or ToolMissingError with the install hint."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ToolMissingError("espeak-ng is not installed; the synthetic corpus is spoken by it",
                               hint="sudo apt-get install -y espeak-ng (or scripts/setup.sh as root)")
    return exe


def _draw(d: dict, z: float, rng: np.random.Generator) -> int:
    return int(np.clip(round(d["base"] + d["slope"] * z + rng.normal(0.0, d["jitter"])), d["lo"], d["hi"]))


def plan(size: int, seed: int, design: dict | None = None) -> list[ClipSpec]:
    """The per-clip random choices of a corpus: balanced labels, stratified 70/15/15 splits.

    ``design`` is a full design dict (see :func:`design_with`); default DESIGN.
    """
    D = design if design is not None else DESIGN
    if size < 3 * len(LABELS):
        raise ConfigError(f"--size {size} is too small: every split needs every class",
                          hint=f"use at least {3 * len(LABELS)} clips (3 per class)")
    rng = np.random.default_rng(seed)
    labels = [LABELS[i % len(LABELS)] for i in range(size)]
    rng.shuffle(labels)
    splits = [""] * size
    for lab in LABELS:  # stratified: each label is split 70/15/15 on its own
        idx = [i for i, l in enumerate(labels) if l == lab]
        rng.shuffle(idx)
        n_val = max(1, round(len(idx) * D["splits"]["val"]))
        n_test = max(1, min(round(len(idx) * D["splits"]["test"]), len(idx) - n_val - 1))
        for j, i in enumerate(idx):
            splits[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    specs = []
    a = D["arousal_score"]
    for i, lab in enumerate(labels):
        high = D["labels"][lab]["arousal"] == "high"
        positive = D["labels"][lab]["valence"] == "positive"
        own = rng.random() < D["p_keyword_from_own_valence_group"]
        group = POSITIVE_WORDS if positive == own else NEGATIVE_WORDS
        keyword = group[int(rng.integers(len(group)))]
        z = float(rng.normal(a["high_mean"] if high else a["low_mean"], a["sd"]))
        bright = rng.random() < D["p_bright_variant"]["high" if high else "low"]
        pool = D["variants_bright"] if bright else D["variants_calm"]
        voice = f"{D['voices'][int(rng.integers(len(D['voices'])))]}+{pool[int(rng.integers(len(pool)))]}"
        specs.append(ClipSpec(
            index=i, label=lab, keyword=keyword, voice=voice,
            pitch=_draw(D["pitch"], z, rng), rate=_draw(D["rate_wpm"], z, rng),
            amplitude=_draw(D["amplitude"], z, rng), arousal_score=round(z, 4),
            gain_db=round(float(rng.uniform(*D["gain_db"])), 3),
            noise_rms=round(float(rng.uniform(*D["noise_rms_lsb"])), 3),
            offset=round(float(rng.uniform(-1.0, 1.0)), 4), noise_seed=int(rng.integers(2**63)),
            split=splits[i]))
    return specs


def speak(text: str, voice: str, pitch: int, rate: int, amplitude: int, exe: str | None = None) -> np.ndarray:
    """espeak-ng speech resampled to 16 kHz, as float64 samples (int16 scale), silence not trimmed."""
    from scipy.signal import resample_poly  # scipy comes with litert-torch

    exe = exe or espeak_path()
    cmd = [exe, "-v", voice, "-p", str(pitch), "-s", str(rate), "-a", str(amplitude), "--stdout", text]
    try:
        res = subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise DataError(f"espeak-ng failed for voice {voice!r}: {e.stderr.decode(errors='replace').strip()}",
                        hint="check `espeak-ng --voices=en` lists the voice") from None
    with wave.open(io.BytesIO(res.stdout)) as w:
        sr = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if sr == SAMPLE_RATE:
        return x
    g = np.gcd(SAMPLE_RATE, sr)
    return resample_poly(x, SAMPLE_RATE // g, sr // g)


def place(word: np.ndarray, offset: float, length: int = CLIP_SAMPLES,
          max_offset: int = DESIGN["max_offset_samples"]) -> np.ndarray:
    """Trim the word's silence and put it in a clip of ``length`` samples, centred plus ``offset`` of the room."""
    loud = np.nonzero(np.abs(word) > 0.01 * max(np.abs(word).max(), 1.0))[0]
    word = word[loud[0]:loud[-1] + 1] if loud.size else word[:0]
    if word.size > length:  # keep the start; a 10 ms fade avoids a click at the cut
        word = word[:length].copy()
        word[-160:] *= np.linspace(1.0, 0.0, 160)
    room = length - word.size
    room_each_side = min(room // 2, max_offset)
    start = room // 2 + int(round(offset * room_each_side))
    clip = np.zeros(length)
    clip[start:start + word.size] = word
    return clip


def render(spec: ClipSpec, exe: str | None = None, max_offset: int = DESIGN["max_offset_samples"]) -> np.ndarray:
    """One clip as int16 [16000]: speech, placed, with gain and seeded white noise."""
    word = speak(spec.keyword, spec.voice, spec.pitch, spec.rate, spec.amplitude, exe)
    clip = place(word, spec.offset, max_offset=max_offset) * 10.0 ** (spec.gain_db / 20.0)
    clip += np.random.default_rng(spec.noise_seed).normal(0.0, spec.noise_rms, clip.size)
    return np.clip(np.round(clip), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit mono PCM WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def _espeak_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    return out.split(" Data at")[0]


def synth(out: str | os.PathLike, size: int = 2400, seed: int = 0, jobs: int = 0,
          design: dict | None = None) -> Path:
    """Write the corpus to ``out``: ``wav/*.wav``, ``metadata.csv``, ``clips.csv`` and ``corpus.json``.

    Deterministic for a given (size, seed). The folder appears complete or not at all: everything is written to
    a temporary sibling that is renamed over ``out`` at the end. An existing ``out`` is replaced only if it is a
    corpus (has ``corpus.json``) or empty. ``jobs`` = parallel espeak-ng processes (0: one per core).
    ``design`` overrides parts of DESIGN (ablations); corpus.json records the design actually used.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "corpus.json").exists())):
        raise ConfigError(f"{out} exists and is not a corpus folder; refusing to replace it",
                          hint="pick a new --out folder, or delete this one")
    exe = espeak_path()
    d = design_with(design)
    specs = plan(size, seed, d)
    jobs = jobs if jobs and jobs > 0 else (os.cpu_count() or 1)
    with atomic_path(out) as tmp:
        (tmp / "wav").mkdir(parents=True)

        def work(spec: ClipSpec) -> ClipSpec:
            write_wav(tmp / spec.path, render(spec, exe, d["max_offset_samples"]))
            return spec

        # Threads only wait on espeak-ng subprocesses and numpy, so they run in parallel.
        with log.progress("synth", total=len(specs)) as advance, ThreadPoolExecutor(max_workers=jobs) as pool:
            for spec in pool.map(work, specs):
                advance(1, status=spec.keyword)
        _write_csv(tmp / "metadata.csv", METADATA_COLUMNS,
                   [(s.path, s.label, s.keyword, s.keyword, s.split) for s in specs])
        fields = [f for f in ClipSpec.__dataclass_fields__ if f != "index"]
        _write_csv(tmp / "clips.csv", ("path", *fields), [(s.path, *(asdict(s)[f] for f in fields)) for s in specs])
        counts = {sp: {lab: sum(1 for s in specs if s.split == sp and s.label == lab) for lab in LABELS}
                  for sp in ("train", "val", "test")}
        write_json_atomic(tmp / "corpus.json", {
            "generator": "ondevice.data.synth", "generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
            "sample_rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES, "labels": list(LABELS),
            "keywords": list(KEYWORDS), "positive_words": list(POSITIVE_WORDS),
            "negative_words": list(NEGATIVE_WORDS), "design": d, "counts": counts,
            "espeak_ng": _espeak_version(exe),
        })
    log.info(f"wrote {size} clips to {out} (seed {seed})")
    return out


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
