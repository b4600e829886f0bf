"""Measure which TFLite builtins have int8 kernels, to keep the ``float_only`` lists in the rules honest.

For each builtin a one-op TensorFlow function is converted with full-int8 post-training quantization
(TFLITE_BUILTINS_INT8). If the converter wraps the op in DEQUANTIZE/QUANTIZE it has no int8 kernel in
TFLite; otherwise the int8 model is run once in the tflite-micro interpreter to see whether TFLM takes it.
Takes about a minute; not part of the test suite.

    python ondevice/slim/rules/probe_int8.py [BUILTIN ...]
"""
from __future__ import annotations

import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cases():
    import tensorflow as tf
    pos = lambda x: tf.abs(x) + 1.0  # noqa: E731 - keep log/sqrt/pow in their domain
    return {
        "DIV": lambda x: x / pos(x), "POW": lambda x: tf.pow(pos(x), 3.3), "SQRT": lambda x: tf.sqrt(pos(x)),
        "RSQRT": lambda x: tf.math.rsqrt(pos(x)), "LOG": lambda x: tf.math.log(pos(x)),
        "SIN": tf.sin, "COS": tf.cos, "FLOOR": tf.floor, "CEIL": tf.math.ceil, "ROUND": tf.round,
        "EXP": tf.exp, "GELU": tf.nn.gelu, "ELU": tf.nn.elu, "LOG_SOFTMAX": tf.nn.log_softmax,
        "SQUARED_DIFFERENCE": lambda x: tf.math.squared_difference(x, 0.5 * x),
        "CUMSUM": lambda x: tf.cumsum(x, axis=-1), "FLOOR_DIV": lambda x: tf.math.floordiv(x, 0.7),
        "BATCH_MATMUL": lambda x: tf.matmul(tf.reshape(x, (2, 2, 2)), tf.reshape(x, (2, 2, 2))),
        "SUM": lambda x: tf.reduce_sum(x, -1), "MEAN": lambda x: tf.reduce_mean(x, -1),
        "SELECT": lambda x: tf.where(x > 0, x, 0.1 * x), "ABS": lambda x: tf.abs(x) * 2.0,
    }


def convert_int8(fn) -> bytes:
    """Full-int8 TFLite flatbuffer of ``fn`` on a [1, 8] float input."""
    import numpy as np
    import tensorflow as tf
    f = tf.function(fn, input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 8)).astype(np.float32)] for _ in range(20))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with contextlib.redirect_stderr(io.StringIO()):
        return conv.convert()


def op_dtypes(buf: bytes) -> dict[str, set[str]]:
    """builtin name -> dtypes of its tensors, straight from the flatbuffer (the project's one reader)."""
    from ondevice.mcu.reader import read_tflite
    g = read_tflite(buf)
    out: dict[str, set[str]] = {}
    for op in g.ops:
        out.setdefault(op.opcode, set()).update(g.tensors[i].dtype for i in op.inputs + op.outputs if i >= 0)
    return out


def runs_on_tflm(buf: bytes) -> bool:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime
    try:
        it = runtime.Interpreter.from_bytes(buf, arena_size=64 * 1024)
        it.set_input(np.zeros((1, 8), np.int8), 0)
        it.invoke()
        return True
    except Exception:  # noqa: BLE001 - TFLM reports unsupported types as a generic failure
        return False


def main(argv: list[str]) -> int:
    cases = _cases()
    for name in argv or list(cases):
        buf = convert_int8(cases[name])
        dts = op_dtypes(buf)
        tflite_int8 = name in dts and "float32" not in dts[name]
        tflm = runs_on_tflm(buf) if tflite_int8 else False
        print(f"{name:20s} tflite_int8={'yes' if tflite_int8 else 'NO (float)':10s} "
              f"tflm_int8={'yes' if tflm else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
