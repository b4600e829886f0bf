"""The MCU engine: int8 .tflite -> generated C library (static arena, const weights) -> host or firmware.

- ``reader``: the .tflite graph through the LiteRT flatbuffer schema package.
- ``codegen`` + ``lowerings`` + ``planner``: one kernel call per op, quantization tables computed here, arena plan.
- ``library.write_library``: the self-contained C folder ``<model>_mcu_int8/``.
- ``build``: host gcc build + ctypes runner; ``verify_host`` / ``verify_qemu``: bit-exactness against the
  TFLM interpreter on the host build and on an emulated Cortex-M.
"""
from __future__ import annotations

from ondevice.mcu.verify import verify_host, verify_qemu  # noqa: F401
