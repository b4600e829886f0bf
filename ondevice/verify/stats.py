"""verify's figures for one artifact: top-1 agreement with near-ties set apart, SNR and cosine per output.

A near-tie: the runtime's top-1 differs from the reference's on a sample where the reference's own top-1 margin
is no larger than the runtime's measured output deviation on that sample (max |runtime - reference|), and that
deviation is within the output tolerance. Such a flip says the reference itself was undecided there, not that
the artifact is wrong; it is reported as a tie and left out of the agreement (the count is in the report). A flip
whose margin exceeds the deviation, or on a sample deviating beyond the tolerance, is a mismatch.
"""
from __future__ import annotations

import numpy as np


def agreement(out: np.ndarray, ref: np.ndarray, step: float | None, tol_steps: float) -> dict:
    """Top-1 agreement of ``out`` with ``ref`` ([N, classes] each), near-ties excluded and counted."""
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    dev = np.abs(out - ref).max(1)
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    flip = pred != ref_pred
    within = dev <= tol_steps * step if step else np.ones_like(flip)
    tie = flip & (margin <= dev) & within
    counted = ~tie
    agree = float(np.mean(pred[counted] == ref_pred[counted])) if counted.any() else 1.0
    mism = np.nonzero(flip & ~tie)[0]
    ties = np.nonzero(tie)[0]
    rec: dict = {"top1_agreement": agree, "top1_agreement_raw": float(np.mean(~flip)),
                 "ties_excluded": int(tie.sum()), "n_counted": int(counted.sum()),
                 "disagreements": [int(i) for i in mism[:20]], "ties": [int(i) for i in ties[:20]],
                 "tie_rule": "a flip is a tie when the reference's top-1 margin <= the sample's max |output "
                             "deviation| and that deviation is within the tolerance; ties are left out of "
                             "top1_agreement (top1_agreement_raw counts them)"}
    if step:
        rec["disagreement_ref_margin_steps"] = [round(float(margin[i] / step), 2) for i in mism[:20]]
        rec["disagreement_deviation_steps"] = [round(float(dev[i] / step), 2) for i in mism[:20]]
        rec["tie_ref_margin_steps"] = [round(float(margin[i] / step), 2) for i in ties[:20]]
        rec["tie_deviation_steps"] = [round(float(dev[i] / step), 2) for i in ties[:20]]
    return rec


def fidelity(out: np.ndarray, ref: np.ndarray) -> dict:
    """SNR (dB, reference power over error power) and cosine similarity of one output over all samples."""
    a, b = np.asarray(out, np.float64).reshape(-1), np.asarray(ref, np.float64).reshape(-1)
    err = float(np.sum((a - b) ** 2))
    sig = float(np.sum(b ** 2))
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float(na == nb)
    if err == 0 or sig == 0:  # JSON has no infinity: say identical (or a silent reference) instead
        return {"snr_db": None, "identical": err == 0, "cosine": round(cos, 6)}
    return {"snr_db": round(float(10 * np.log10(sig / err)), 2), "cosine": round(cos, 6)}
