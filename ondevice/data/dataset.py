"""The dataset reader: ``metadata.csv`` + 16 kHz mono int16 WAVs -> integer-frontend features, cached.

The same layout serves the synthetic corpus and users' own data (README.md here). Every problem raises
``DataError`` naming the CSV row (1-based line number in the file, header = line 1) and its path.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ondevice import log
from ondevice.data import CLIP_SAMPLES, KEYWORDS, LABELS, METADATA_COLUMNS, SAMPLE_RATE, SPLITS
from ondevice.errors import DataError
from ondevice.fsutil import atomic_path

CACHE_DIR = ".cache"
CACHE_VERSION = 1
_FORMAT_HINT = "each row needs path,label,transcript,keyword,split; see ondevice/data/README.md"


@dataclass(frozen=True)
class Row:
    """One metadata.csv row; ``line`` is its line number in the file (the header is line 1)."""
    line: int
    path: str
    label: str
    transcript: str
    keyword: str
    split: str

    def where(self) -> str:
        return f"metadata.csv row {self.line} ({self.path})"


@dataclass
class Split:
    """One split: ``features`` uint16 [N, 49, 40], ``labels`` int64 [N] (index into LABELS), ``keywords`` int64
    [N] (index into KEYWORDS, -1 when the row has no keyword), ``rows`` the metadata rows."""
    name: str
    features: np.ndarray
    labels: np.ndarray
    keywords: np.ndarray
    rows: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def read_metadata(folder: str | os.PathLike) -> list[Row]:
    """Parse and validate ``metadata.csv`` (columns, labels, keywords, splits); files are not opened."""
    folder = Path(folder)
    meta = folder / "metadata.csv"
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist",
                        hint="make one with `ondevice data synth --out DIR`, or point --data at your folder")
    if not meta.is_file():
        raise DataError(f"{meta} is missing", hint=_FORMAT_HINT)
    with io.StringIO(_read_text(meta), newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in METADATA_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{meta} has no column {', '.join(missing)} (header: {','.join(header) or 'empty'})",
                            hint=_FORMAT_HINT)
        rows = []
        for rec in reader:
            line = reader.line_num
            vals = {c: (rec.get(c) or "").strip() for c in METADATA_COLUMNS}
            row = Row(line=line, **vals)
            if not row.path:
                raise DataError(f"metadata.csv row {line} has an empty path", hint=_FORMAT_HINT)
            if row.label not in LABELS:
                raise DataError(f"{row.where()}: unknown label {row.label!r}",
                                hint=f"labels are {', '.join(LABELS)}")
            if row.split not in SPLITS:
                raise DataError(f"{row.where()}: unknown split {row.split!r}", hint=f"splits are {', '.join(SPLITS)}")
            if row.keyword and row.keyword not in KEYWORDS:
                raise DataError(f"{row.where()}: unknown keyword {row.keyword!r}",
                                hint=f"keywords are {', '.join(KEYWORDS)}; leave the column empty if none applies")
            rows.append(row)
    if not rows:
        raise DataError(f"{meta} has no rows", hint=_FORMAT_HINT)
    return rows


def _read_text(meta: Path) -> str:
    """metadata.csv as text (a BOM tolerated); DataError naming the line of the first byte that is not UTF-8."""
    data = meta.read_bytes()
    try:
        return data.decode("utf-8-sig")  # tolerate the BOM spreadsheets write
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{meta} line {line}, column {col}: byte 0x{data[e.start]:02x} is not UTF-8",
                        hint=f"save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {meta.name} > utf8.csv") from None


def read_wav(folder: Path, row: Row) -> np.ndarray:
    """One clip as int16 [16000] (zero-padded or trimmed to 1 s); DataError naming the row if it is unusable."""
    path = folder / row.path
    if not path.is_file():
        raise DataError(f"{row.where()}: file not found", hint=f"expected {path}")
    try:
        with wave.open(str(path), "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, ValueError, struct.error) as e:  # e.g. float, compressed or damaged WAV
        raise DataError(f"{row.where()}: not a 16-bit PCM WAV ({e})",
                        hint="convert with: sox in.wav -r 16000 -c 1 -b 16 -e signed-integer out.wav") from None
    # every mismatch at once, so one conversion fixes the file
    wrong = [f"{ch} channels, expected mono" if ch != 1 else "",
             f"{8 * width}-bit samples, expected int16" if width != 2 else "",
             f"sample rate {rate} Hz, expected {SAMPLE_RATE}" if rate != SAMPLE_RATE else ""]
    if any(wrong):
        raise DataError(f"{row.where()}: " + "; ".join(w for w in wrong if w),
                        hint="convert with: sox in.wav -r 16000 -c 1 -b 16 -e signed-integer out.wav")
    if n == 0:
        raise DataError(f"{row.where()}: empty WAV (no samples)", hint="re-record or drop the row")
    if len(raw) < n * ch * width:  # the header promises more audio than the file holds
        raise DataError(f"{row.where()}: truncated WAV ({len(raw) // 2} of {n} samples present)",
                        hint="the file was cut short (copy or download interrupted); restore or re-record it")
    x = np.frombuffer(raw, dtype="<i2")
    out = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    out[:min(x.size, CLIP_SAMPLES)] = x[:CLIP_SAMPLES]
    return out


def _rows_of(folder: Path, split: str, rows: list[Row] | None = None) -> list[Row]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", hint=f"splits are {', '.join(SPLITS)}")
    chosen = [r for r in (rows if rows is not None else read_metadata(folder)) if r.split == split]
    if not chosen:
        raise DataError(f"split {split!r} of {folder / 'metadata.csv'} is empty",
                        hint="give every split (train, val, test) at least one row")
    return chosen


def _cache_key(folder: Path, rows: list[Row]) -> str:
    from ondevice.features import config_hash

    h = hashlib.sha256(f"v{CACHE_VERSION}|{config_hash()}".encode())
    for r in rows:
        st = (folder / r.path).stat()
        h.update(f"|{r.path}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _load_cache(path: Path, n: int) -> np.ndarray | None:
    """Cached features, or None when absent or not trustworthy (corrupt, wrong shape, checksum mismatch)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, digest = z["features"], str(z["sha256"])
        if feats.dtype != np.uint16 or feats.shape[0] != n or feats.ndim != 3:
            return None
        if hashlib.sha256(feats.tobytes()).hexdigest() != digest:
            return None
        return feats
    except Exception:  # any unreadable cache is rebuilt, never trusted
        return None


def _save_cache(path: Path, feats: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, features=feats, sha256=np.array(hashlib.sha256(feats.tobytes()).hexdigest()))
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
    except OSError as e:  # a read-only dataset still loads, just uncached
        log.warn(f"could not write feature cache {path}: {e}")


def load_split(folder: str | os.PathLike, split: str) -> Split:
    """Features, labels and keywords of one split, computed by the integer frontend and cached.

    The cache (``folder/.cache/features-<split>-<key>.npz``) is keyed by the frontend's config hash and the
    split's file list (path, size, mtime); a corrupt or mismatched cache is rebuilt.
    """
    from ondevice.features import compute_features_batch

    folder = Path(folder)
    rows = _rows_of(folder, split)
    wavs = [read_wav(folder, r) for r in rows]  # validates every file before any cache is trusted
    cache = folder / CACHE_DIR / f"features-{split}-{_cache_key(folder, rows)}.npz"
    feats = _load_cache(cache, len(rows))
    if feats is None:
        feats = compute_features_batch(np.stack(wavs))
        _save_cache(cache, feats)
        for old in cache.parent.glob(f"features-{split}-*.npz"):  # stale keys would only pile up
            if old != cache:
                try:
                    old.unlink(missing_ok=True)
                except OSError:  # read-only dataset: leave it
                    pass
    labels = np.array([LABELS.index(r.label) for r in rows], dtype=np.int64)
    keywords = np.array([KEYWORDS.index(r.keyword) if r.keyword else -1 for r in rows], dtype=np.int64)
    return Split(name=split, features=feats, labels=labels, keywords=keywords, rows=rows)


def check_dataset(folder: str | os.PathLike) -> dict:
    """Validate a dataset folder: metadata, every WAV, non-empty splits. Returns a summary (counts per split
    and label, keyword counts, corpus.json if present); raises DataError naming the first bad row."""
    folder = Path(folder)
    rows = read_metadata(folder)
    for split in SPLITS:
        _rows_of(folder, split, rows)
    for r in rows:
        read_wav(folder, r)
    summary: dict = {
        "folder": str(folder), "rows": len(rows), "sample_rate": SAMPLE_RATE,
        "splits": {s: {lab: sum(1 for r in rows if r.split == s and r.label == lab) for lab in LABELS}
                   for s in SPLITS},
        "keywords": {k: sum(1 for r in rows if r.keyword == k) for k in KEYWORDS},
    }
    corpus = folder / "corpus.json"
    if corpus.is_file():
        try:
            c = json.loads(corpus.read_text())
            summary["corpus"] = {k: c.get(k) for k in ("generator", "generator_version", "seed", "size")}
        except ValueError:
            raise DataError(f"{corpus} is not valid JSON", hint="regenerate with `ondevice data synth`") from None
    return summary
