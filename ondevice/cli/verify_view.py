"""``ondevice verify``'s lines for humans, from the report ``ondevice.verify.verify`` wrote."""
from __future__ import annotations

from pathlib import Path

from ondevice import log


def show(report: dict, dest: Path) -> None:
    """One line for the reference, one per artifact entry, then where the report went."""
    if "source_kind" in report:  # artifacts made from a .tflite/.pte: checked against that file
        _source_report(report, dest)
    else:
        _run_report(report, dest)


def _run_report(report: dict, dest: Path) -> None:
    ref = report["reference"]
    log.info(f"reference (QAT PyTorch): macro-F1 {ref['macro_f1']:.3f}, accuracy {ref['accuracy']:.3f} "
             f"on {report['data']['n']} test clips")
    for key, e in report["targets"].items():
        if e.get("ran") is True and "top1_agreement" in e:
            exact = f"  bit-exact vs TFLM: {e['bit_exact_vs_tflm']}" if "bit_exact_vs_tflm" in e else ""
            ties = f" ({e['ties_excluded']} near-tie(s) excluded)" if e.get("ties_excluded") else ""
            fid = (e.get("outputs") or [{}])[0]
            snr = f"  SNR {fid['snr_db']:.1f} dB" if fid.get("snr_db") is not None else ""
            log.info(f"{key:<12} macro-F1 {e['macro_f1']:.3f}  top-1 agreement {e['top1_agreement']:.1%}{ties}  "
                     f"max|diff| {e['max_abs_diff']:.4g}{snr}  cos {fid.get('cosine', float('nan')):.4f}  "
                     f"{'ok' if e['passed'] else 'MISMATCH'}{exact}")
            for w in e.get("warnings", []):
                log.warn(f"{'':<12} {w}")
            cc = e.get("conversion_check")
            if cc and not cc["ok"]:
                log.warn(f"{'':<12} {cc['at']} computes differently from the PyTorch layer on identical inputs "
                            f"({cc['max_own_steps']} steps): a conversion difference, not rounding")
        elif key == "mcu-qemu" and e.get("ran") is True:
            log.info(f"{key:<12} bit-exact vs TFLM: {e['bit_exact_vs_tflm']} ({e['vectors_compared']} vectors)")
        elif e.get("ran") is True:
            log.info(f"{key:<12} bundled self-check {'ok' if e['bundled_self_check'].get('passed') else 'FAILED'}")
        else:
            log.info(f"{key:<12} {e['ran']}")
    log.info(f"wrote {dest}")


def _source_report(report: dict, dest: Path) -> None:
    d = report["data"]
    log.info(f"reference: {report['reference']['what']}; inputs: {d['n']} "
             + ("random vectors (seed 0, no --data)" if d["source"] == "random" else f"samples from {d['folder']}"))
    for key, e in report["targets"].items():
        if e.get("ran") is True and "max_abs_diff" in e:
            top1 = f"  top-1 agreement {e['top1_agreement']:.1%}" if "top1_agreement" in e else ""
            exact = f"  bit-exact vs TFLM: {e['bit_exact_vs_tflm']}" if "bit_exact_vs_tflm" in e else ""
            log.info(f"{key:<12} max|diff| {e['max_abs_diff']:.4g} ({e['max_abs_diff_steps']} steps){top1}  "
                     f"{'ok' if e['passed'] else 'MISMATCH'}{exact}")
        elif key == "mcu-qemu" and e.get("ran") is True:
            log.info(f"{key:<12} bit-exact vs TFLM: {e['bit_exact_vs_tflm']} ({e['vectors_compared']} vectors)")
        else:
            log.info(f"{key:<12} {e.get('ran')}")
    log.info(f"wrote {dest}")
