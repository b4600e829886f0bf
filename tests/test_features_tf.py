"""Our integer frontend against TensorFlow's audio_microfrontend op (the TFLM MicroFrontend) on espeak speech.

Not identical by design (docs/FRONTEND.md): TFLM outputs 64 ln(sqrt(E)) with a 16-bit FFT, we output
64 log2(E) with a 24-bit one. The op's adaptive stages (noise reduction, PCAN) are switched off on its side.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from ondevice.data.dataset import Row, read_wav
from ondevice.features import compute_features

EXPECTED_SLOPE = 32 * math.log(2) / 64  # 64 ln(sqrt E) per 64 log2(E)


def _tf_frontend():
    try:
        import tensorflow as tf
        from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as amf
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tensorflow-cpu is not installed; pip install -e '.[reference]'")
        pytest.skip("tensorflow-cpu not installed (pip install -e '.[reference]')")

    def run(wav: np.ndarray) -> np.ndarray:
        return amf.audio_microfrontend(tf.constant(wav), sample_rate=16000, window_size=30, window_step=20,
                                       num_channels=40, out_scale=1, out_type=tf.float32,
                                       min_signal_remaining=1.0, enable_pcan=False).numpy()
    return run


def test_agrees_with_tflm_microfrontend_on_espeak_speech(synth_small):
    tf_frontend = _tf_frontend()
    with open(synth_small / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:16]
    ours, ref = [], []
    for i, r in enumerate(rows):
        wav = read_wav(synth_small, Row(line=i + 2, **r))
        o, t = compute_features(wav).astype(np.float64), tf_frontend(wav)
        assert t.shape == o.shape == (49, 40)
        ours.append(o)
        ref.append(t)
    o, t = np.concatenate(ours).ravel(), np.concatenate(ref).ravel()
    slope, icpt = np.polyfit(o, t, 1)
    err = np.abs(slope * o + icpt - t)
    corr = float(np.corrcoef(o, t)[0, 1])
    print(f"\nTFLM microfrontend vs ours on {len(rows)} espeak clips ({o.size} values): tf = {slope:.4f} * ours "
          f"+ {icpt:.1f}; corr {corr:.5f}; |err| median {np.median(err):.2f}, p99 {np.percentile(err, 99):.1f}, "
          f"max {err.max():.1f} (tf units; 1 unit = 0.136 dB)")
    assert corr >= 0.998
    assert abs(slope / EXPECTED_SLOPE - 1) < 0.02
    assert np.median(err) <= 3.0
    assert np.percentile(err, 99) <= 45.0
