"""Which host runtime checks an artifact, and whether it can run on this machine: one answer for both verify paths
(the trained-recipe path in ``ondevice.verify`` and the user-model path in ``ondevice.verify.source``)."""
from __future__ import annotations

# Beyond this many output quantization steps an artifact is "mismatched" and gets a layer localisation.
TOL_STEPS = 8
GOAL_TOP1_AGREEMENT = 0.99

# target -> runtime name (the manifest's target decides, since .tflite serves three targets)
RUNTIME_OF = {"executorch": "executorch", "tflite": "litert", "edgetpu": "litert", "tflm": "tflm",
              "coreml": "coreml", "mcu": "mcu-host"}


def host_runtime(target: str, entry: dict):
    """The runtime for ``target``, or None with ``entry["ran"]`` saying why it does not run here."""
    from ondevice.runtimes.base import RUNTIMES, get_runtime
    rt_name = RUNTIME_OF.get(target)
    if rt_name is None or rt_name not in RUNTIMES:
        entry["ran"] = f"not run: no host runtime for target {target!r}"
        return None
    rt = get_runtime(rt_name)
    ok, why = rt.available()
    if not ok:
        entry["ran"] = why
        return None
    return rt
