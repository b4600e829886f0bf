"""Small TinyML-style .tflite files made at test time by TensorFlow's own converter (full-integer quantization).

Each generator returns the flatbuffer bytes of a model shaped like a published TinyML one, small enough to
convert in a few seconds: float I/O with QUANTIZE/DEQUANTIZE at the edges by default (how most published int8
models come), ``int8_io=True`` for int8 inputs and outputs. Weights are seeded, so a file is the same on every run.

    from tests.tflite_zoo import ZOO, make
    data = make("ds_cnn", int8_io=True)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf():
    import tensorflow as tf
    return tf


def _layers():
    return _tf().keras.layers


def ds_cnn(tf):
    """DS-CNN keyword spotter (MLPerf Tiny shape, fewer channels): conv, 2x (depthwise + 1x1), avg pool, FC."""
    L = _layers()
    x = inp = tf.keras.Input((25, 10, 1), batch_size=1, name="mfcc")
    x = L.Conv2D(16, (5, 3), strides=(2, 2), padding="same", activation="relu")(x)
    for _ in range(2):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Conv2D(16, 1, activation="relu")(x)
    x = L.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = L.Flatten()(x)
    x = L.Dense(12)(x)
    return tf.keras.Model(inp, L.Softmax()(x)), [(1, 25, 10, 1)]


def resnet(tf):
    """ResNet-style CNN: two residual blocks (ADD; the second with a strided 1x1 projection), GAP (MEAN), FC."""
    L = _layers()
    x = inp = tf.keras.Input((16, 16, 3), batch_size=1, name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    for stride, ch in ((1, 8), (2, 16)):
        y = L.Conv2D(ch, 3, strides=stride, padding="same", activation="relu")(x)
        y = L.Conv2D(ch, 3, padding="same")(y)
        sc = x if stride == 1 and ch == x.shape[-1] else L.Conv2D(ch, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([y, sc]))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    return tf.keras.Model(inp, L.Softmax()(x)), [(1, 16, 16, 3)]


def mobilenet(tf):
    """MobileNetV3-style net: strided conv with HARD_SWISH, depthwise + pointwise blocks, GAP, FC."""
    L = _layers()
    hs = tf.keras.activations.hard_swish
    x = inp = tf.keras.Input((24, 24, 3), batch_size=1, name="image")
    x = L.Activation(hs)(L.Conv2D(8, 3, strides=2, padding="same")(x))
    for stride, ch in ((1, 8), (2, 16)):
        x = L.Activation(hs)(L.DepthwiseConv2D(3, strides=stride, padding="same")(x))
        x = L.ReLU(6.0)(L.Conv2D(ch, 1)(x))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(4)(x)
    return tf.keras.Model(inp, L.Softmax()(x)), [(1, 24, 24, 3)]


def autoencoder(tf):
    """Dense anomaly-detection autoencoder; the output reshape is computed from the input's dynamic batch, so the
    converter emits SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE."""
    L = _layers()
    x = inp = tf.keras.Input((64,), name="frame")  # no batch_size: the batch stays dynamic until SHAPE reads it
    for n in (32, 8, 32):
        x = L.Dense(n, activation="relu")(x)
    x = L.Dense(64)(x)
    x = L.Lambda(lambda y: tf.reshape(y, tf.stack([tf.shape(y)[0], 8, 8])), output_shape=(8, 8))(x)
    return tf.keras.Model(inp, x), [(1, 64)]


ZOO = {"ds_cnn": ds_cnn, "resnet": resnet, "mobilenet": mobilenet, "autoencoder": autoencoder}


def make(name: str, int8_io: bool = False, seed: int = 0, calib: int = 32) -> bytes:
    """Convert zoo model ``name`` with full-integer quantization; float I/O unless ``int8_io``."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    model, shapes = ZOO[name](tf)
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(calib):
            yield [rng.uniform(-1.0, 1.0, s).astype(np.float32) for s in shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def write(name: str, folder: str | Path, int8_io: bool = False) -> Path:
    """``make`` into ``folder/<name>[_i8].tflite`` (the file stem becomes the model name)."""
    p = Path(folder) / f"{name}{'_i8' if int8_io else ''}.tflite"
    p.write_bytes(make(name, int8_io))
    return p


def float_tflite(folder: str | Path) -> Path:
    """An unquantized (float32) .tflite, for the refusal tests."""
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((8,), batch_size=1), _layers().Dense(4)])
    p = Path(folder) / "float_net.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return p
