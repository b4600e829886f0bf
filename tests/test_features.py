"""The integer frontend: spec conformance, shared vectors, C header, model-input quantization."""
from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ondevice.errors import ConfigError, DataError
from ondevice.features import (StreamingFrontend, c_tables, compute_features, compute_features_batch, config_hash, quant_multiplier,
                               quantize_features, to_model_input, trace_frame, write_vectors)
from ondevice.features import tables as T
from ondevice.features.twins import read_vector

VECTORS = Path(__file__).parent / "vectors" / "frontend"
I32 = 2**31


# --- a second, scalar reading of docs/FRONTEND.md, with Python ints (no overflow, so ranges are checked) ---

def _bitlen(v: int) -> int:
    return v.bit_length()


def spec_frame(x: list[int]) -> tuple[list[int], dict]:
    """One 480-sample frame -> 40 features, written step by step from docs/FRONTEND.md."""
    tb = T.tables()
    xw = [(x[n] * tb["window_q12"][n] + 2048) >> 12 for n in range(480)]
    peak = max(abs(v) for v in xw)
    s = 0 if peak == 0 else max(0, 15 - _bitlen(peak))
    xs = [v << s for v in xw]
    re = [xs[tb["bitrev"][m]] if tb["bitrev"][m] < 480 else 0 for m in range(512)]
    im = [0] * 512
    half = 1
    while half < 512:
        span, stride = 2 * half, 512 // (2 * half)
        for g in range(0, 512, span):
            for j in range(half):
                a, b = g + j, g + j + half
                wr, wi = tb["twiddle_re_q15"][j * stride], tb["twiddle_im_q15"][j * stride]
                tr = (re[b] * wr - im[b] * wi + 16384) >> 15
                ti = (re[b] * wi + im[b] * wr + 16384) >> 15
                re[a], re[b] = re[a] + tr, re[a] - tr
                im[a], im[b] = im[a] + ti, im[a] - ti
        assert max(max(map(abs, re)), max(map(abs, im))) < I32, "FFT data must fit int32"
        half = span
    power = [(re[k] ** 2 + im[k] ** 2) >> 4 for k in range(257)]
    energy = []
    for c in range(40):
        st, ln, off = tb["mel_start"][c], tb["mel_len"][c], tb["mel_offset"][c]
        energy.append(sum(tb["mel_weights_q12"][off + j] * power[st + j] for j in range(ln)))
    assert max(energy) < 2**60
    out = []
    for e in energy:
        if e == 0:
            out.append(0)
            continue
        p = _bitlen(e) - 1
        idx = ((e >> (p - 8)) if p >= 8 else (e << (8 - p))) & 255
        lg = (p << 10) + tb["log_lut_q10"][idx]
        out.append(min(max((lg - (s << 11) + T.LOG_OFFSET + 8) >> 4, 0), 65535))
    return out, {"shift": s, "fft_re": re[:257], "fft_im": im[:257], "power": power, "mel_energy": energy}


def _edge_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    n = np.arange(480)
    return [
        np.zeros(480, np.int16),
        np.full(480, -32768, np.int16),                                        # DC at the extreme
        np.where(np.sin(2 * np.pi * 440 * n / 16000) >= 0, 32767, -32768).astype(np.int16),
        rng.integers(-1, 2, 480).astype(np.int16),                             # +-1 LSB
        np.eye(1, 480, 240, dtype=np.int16)[0] * 32767,                        # impulse
        rng.integers(-32768, 32768, 480).astype(np.int16),                     # full-scale white noise
        (8000 * np.sin(2 * np.pi * 3000 * n / 16000)).astype(np.int16),
    ]


def test_scalar_spec_matches_vectorised_frontend():
    for frame in _edge_frames():
        want, inner = spec_frame([int(v) for v in frame])
        got = trace_frame(frame)
        assert got["features"].tolist() == want
        assert got["shift"] == inner["shift"]
        for key in ("fft_re", "fft_im", "power", "mel_energy"):
            assert got[key].tolist() == inner[key], key


def test_shapes_batch_and_lengths():
    rng = np.random.default_rng(1)
    wavs = (rng.standard_normal((3, 16000)) * 1000).astype(np.int16)
    batch = compute_features_batch(wavs)
    assert batch.shape == (3, 49, 40) and batch.dtype == np.uint16
    for i in range(3):
        np.testing.assert_array_equal(compute_features(wavs[i]), batch[i])
    assert compute_features(np.zeros(16000, np.int16)).max() == 0  # digital silence
    assert compute_features(wavs[0, :800]).shape == (2, 40)


def test_spectral_placement_and_level():
    n = np.arange(16000)
    tone = (4000 * np.sin(2 * np.pi * 1000 * n / 16000)).astype(np.int16)
    f = compute_features(tone)
    edges = np.linspace(T._hz_to_mel(T.LOWER_HZ), T._hz_to_mel(T.UPPER_HZ), T.CHANNELS + 2)
    nearest = int(np.argmin(np.abs(edges[1:-1] - T._hz_to_mel(1000.0))))
    assert abs(int(np.argmax(f[10])) - nearest) <= 1
    # Doubling the amplitude adds 64 * log2(4) = 128 where the signal dominates (block floating point keeps it).
    loud = compute_features((tone.astype(np.int32) * 2).astype(np.int16)).astype(int)
    strong = f > 1000
    assert strong.sum() > 40
    assert np.abs(loud[strong] - f[strong].astype(int) - 128).max() <= 2


def test_committed_vectors_are_current():
    files = sorted(VECTORS.glob("[0-9][0-9]_*.json"))
    assert len(files) == 3
    for path in files:
        wav, feats, doc = read_vector(path)
        assert doc["config_hash"] == config_hash(), "regenerate: python -c 'from ondevice.features import " \
                                                    "write_vectors; write_vectors(\"tests/vectors/frontend\")'"
        assert wav.shape == (16000,) and feats.shape == (49, 40)
        np.testing.assert_array_equal(compute_features(wav), feats)
        f0 = doc["trace_frame"] * T.STEP
        tr = trace_frame(wav[f0:f0 + T.WINDOW])
        for key, val in doc["trace"].items():
            assert np.asarray(tr[key]).tolist() == val, key
        q = doc["quant"]
        assert (q["multiplier"], q["shift"]) == quant_multiplier(q["scale"])
        np.testing.assert_array_equal(quantize_features(feats, q["scale"], q["zero_point"]),
                                      np.asarray(q["int8"], dtype=np.int8))
        assert path.stat().st_size < 100_000
    tables = json.loads((VECTORS / "tables.json").read_text())
    assert tables["tables"] == T.tables() and tables["constants"] == T.constants()


def test_write_vectors_roundtrip(tmp_path):
    paths = write_vectors(tmp_path, n=2, seed=3)
    assert [p.name[:2] for p in paths] == ["00", "01"]
    for p in paths:
        wav, feats, _ = read_vector(p)
        np.testing.assert_array_equal(compute_features(wav), feats)


def test_c_header_compiles_and_holds_the_tables(tmp_path):
    gcc = require_tool("gcc")
    (tmp_path / "od_frontend_tables.h").write_text(c_tables())
    names = ["od_fe_window_q12", "od_fe_twiddle_re_q15", "od_fe_twiddle_im_q15", "od_fe_bitrev", "od_fe_mel_start",
             "od_fe_mel_len", "od_fe_mel_offset", "od_fe_mel_weights_q12", "od_fe_log_lut_q10"]
    dump = "".join(f'  for (i = 0; i < sizeof {n} / sizeof {n}[0]; i++) printf("%d ", (int){n}[i]);\n'
                   f'  printf("\\n");\n' for n in names)
    (tmp_path / "dump.c").write_text(
        '#include <stdio.h>\n#include "od_frontend_tables.h"\nint main(void) {\n  unsigned i;\n' + dump +
        '  printf("%s %d %d\\n", OD_FE_CONFIG_HASH, OD_FE_LOG_OFFSET, OD_FE_MEL_WEIGHTS_LEN);\n  return 0;\n}\n')
    subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "dump"),
                    str(tmp_path / "dump.c")], check=True, cwd=tmp_path)
    lines = subprocess.run([str(tmp_path / "dump")], check=True, capture_output=True, text=True).stdout.splitlines()
    tb = T.tables()
    keys = ["window_q12", "twiddle_re_q15", "twiddle_im_q15", "bitrev", "mel_start", "mel_len", "mel_offset",
            "mel_weights_q12", "log_lut_q10"]
    for key, line in zip(keys, lines):
        assert [int(v) for v in line.split()] == tb[key], key
    assert lines[-1].split() == [config_hash(), str(T.LOG_OFFSET), str(len(tb["mel_weights_q12"]))]


def test_to_model_input_is_exact():
    f = np.arange(49 * 40, dtype=np.uint16).reshape(49, 40) * 3
    x = to_model_input(f)
    assert x.shape == (1, 1, 49, 40) and x.dtype == np.float32
    assert np.array_equal(x[0, 0].astype(np.float64) * 256, f.astype(np.float64))
    assert to_model_input(np.stack([f, f])).shape == (2, 1, 49, 40)


@pytest.mark.parametrize("scale,zp", [(0.0313725, -128), (np.float32(0.0471), -20), (0.1, 5), (1 / 256, 0)])
def test_quantize_features_matches_rational_rounding(scale, zp):
    f = np.arange(65536, dtype=np.uint16)
    got = quantize_features(f, float(scale), zp).astype(int)
    exact = [Fraction(int(v), 256) / Fraction(float(scale)) for v in range(65536)]
    want = np.array([min(max(int(e + Fraction(1, 2)) + zp, -128), 127) for e in exact])
    diff = np.nonzero(got != want)[0]
    for i in diff:  # only at near-ties, and by one step
        assert abs(got[i] - want[i]) == 1
        assert abs((exact[i] - int(exact[i])) - Fraction(1, 2)) < Fraction(1, 2**20)
    # And against the float path a PyTorch/TFLite model would take: round(x / scale) + zp.
    x = to_model_input(f[None].reshape(1, 65536))[0, 0]
    ref = np.clip(np.floor(x.astype(np.float64) / float(scale) + 0.5) + zp, -128, 127)
    assert np.abs(got - ref).max() <= 1


def test_quant_multiplier_range():
    for scale in (1e-5, 0.02, 0.5, 3.0):
        mult, shift = quant_multiplier(scale)
        assert 2**30 <= mult < 2**31
        assert abs(Fraction(mult, 2**shift) / (Fraction(1, 256) / Fraction(scale)) - 1) < Fraction(1, 2**30)


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(DataError, match="int16"):
        compute_features(np.zeros(16000, np.float32))
    with pytest.raises(DataError, match="fewer than one"):
        compute_features(np.zeros(100, np.int16))
    with pytest.raises(DataError, match="one mono clip"):
        compute_features(np.zeros((2, 16000), np.int16))
    with pytest.raises(ConfigError):
        quantize_features(np.zeros(3, np.uint16), 0.0, 0)
    with pytest.raises(DataError, match="uint16"):
        quantize_features(np.zeros(3, np.int32), 0.1, 0)


def test_generator_cli(tmp_path):
    from ondevice.features.__main__ import main

    assert main(["header", str(tmp_path / "t.h")]) == 0
    assert (tmp_path / "t.h").read_text() == c_tables()
    assert main(["vectors", str(tmp_path / "v"), "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["00_voiced.json", "tables.json"]
    assert main(["bogus"]) == 2


def test_streaming_equals_batch():
    rng = np.random.default_rng(4)
    wav = (rng.standard_normal(16000) * 2000).astype(np.int16)
    fe, got, pos = StreamingFrontend(), [], 0
    for size in rng.integers(1, 900, 100):
        got.append(fe.push(wav[pos:pos + size]))
        pos += size
        if pos >= wav.size:
            break
    np.testing.assert_array_equal(np.concatenate(got), compute_features(wav))
    with pytest.raises(DataError):
        fe.push(np.zeros(10, np.float32))
