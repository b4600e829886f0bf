"""Datasets: the synthetic espeak-ng emotion corpus (:mod:`.synth`) and the dataset reader (:mod:`.dataset`).

A dataset is a folder with ``metadata.csv`` (``path,label,transcript,keyword,split``) and 16 kHz mono int16 WAVs
(docs/CONTRACTS.md section 1). The corpus design (arousal by prosody, valence by keyword) is in README.md here.
"""
from __future__ import annotations

LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Valence groups: positive words go with neutral/happy, negative words with sad/angry (each with noise).
POSITIVE_WORDS: tuple[str, ...] = ("yes", "great", "sunny", "thanks", "lovely", "bright")
NEGATIVE_WORDS: tuple[str, ...] = ("no", "stop", "lost", "broken", "gloomy", "alone")
KEYWORDS: tuple[str, ...] = POSITIVE_WORDS + NEGATIVE_WORDS

METADATA_COLUMNS: tuple[str, ...] = ("path", "label", "transcript", "keyword", "split")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000

__all__ = ["LABELS", "SPLITS", "KEYWORDS", "POSITIVE_WORDS", "NEGATIVE_WORDS", "METADATA_COLUMNS", "SAMPLE_RATE",
           "CLIP_SAMPLES"]
