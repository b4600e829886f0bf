"""The MCU engine: int8 .tflite -> generated C library (static arena, const weights) -> host or firmware.

- ``reader``: the .tflite graph through the LiteRT flatbuffer schema package.
- ``codegen`` + ``lowerings`` + ``planner``: one kernel call per op, quantization tables computed here, arena plan.
- ``library.write_library``: the self-contained C folder ``<model>_mcu_int8/``.
- ``build``: host gcc build + ctypes runner; ``qemu_bench``: the bare-metal bench runner under QEMU;
  ``firmware``: the device firmware build. Bit-exactness against the TFLM interpreter is checked in
  ``ondevice.verify.mcu``.
"""
