"""Benchmark models converted with TensorFlow's TFLite converter (int8 in and out), built at run time.

- `resnet8`: the MLPerf Tiny image-classification ResNet-8 shape (32x32x3, 3x3 convs 16/32/64, 1x1 stride-2
  shortcuts, ADD, average pool, dense 10, softmax; 12.5 M MACs).
- `dscnn`: the MLPerf Tiny keyword-spotting DS-CNN shape (49x10x1, 10x4 stride-2 conv to 64 channels, four
  depthwise 3x3 + pointwise 64 blocks, average pool, dense 12, softmax; 2.7 M MACs).
Weights are random (seeded) and the representative set is random normal data: the benchmarks measure
instructions and bytes, which do not depend on training. Converted files are cached by name under ``cache``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _resnet8(tf):
    L = tf.keras.layers
    x = inp = L.Input((32, 32, 3), batch_size=1)

    def block(x, ch, stride):
        y = L.Conv2D(ch, 3, strides=stride, padding="same")(x)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(ch, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(ch, 1, strides=stride)(x)
        return L.ReLU()(L.Add()([x, y]))

    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
    x = block(x, 16, 1)
    x = block(x, 32, 2)
    x = block(x, 64, 2)
    x = L.AveragePooling2D(8)(x)
    x = L.Dense(10)(L.Reshape((64,))(x))
    return tf.keras.Model(inp, L.Softmax()(x)), (32, 32, 3)


def _dscnn(tf):
    L = tf.keras.layers
    x = inp = L.Input((49, 10, 1), batch_size=1)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, (10, 4), strides=2, padding="same")(x)))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, 1)(x)))
    x = L.AveragePooling2D((25, 5))(x)
    x = L.Dense(12)(L.Reshape((64,))(x))
    return tf.keras.Model(inp, L.Softmax()(x)), (49, 10, 1)


BUILDERS = {"resnet8": _resnet8, "dscnn": _dscnn}


def tf_model(name: str, cache: Path) -> bytes:
    """The int8 .tflite of model ``name`` (converted once, then read from ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}_tf_int8.tflite"
    if path.is_file():
        return path.read_bytes()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    model, shape = BUILDERS[name](tf)
    rng = np.random.default_rng(0)
    # One pass of BN statistics on random data, so activations have realistic ranges instead of identity BNs.
    x = rng.normal(size=(64, *shape)).astype(np.float32)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, model.predict(x, verbose=0), epochs=1, verbose=0)

    def rep():
        for i in range(32):
            yield [x[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    path.write_bytes(data)
    return data
