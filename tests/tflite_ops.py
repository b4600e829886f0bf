"""Single-op .tflite generators for the MCU op-coverage tests (tests/test_mcu_ops.py).

``OpCase`` extends the kernel-test ``Case`` (tests/mcu_cases.py) with the ops published TinyML models add: float
QUANTIZE/DEQUANTIZE at the edges, table activations, PRELU, SPLIT, RESIZE, BATCH_MATMUL and shape chains that
fold. Every helper appends one independent op (own inputs and outputs), so many single-op models share one
graph, one build and one QEMU boot.
"""
from __future__ import annotations

import numpy as np

from mcu_cases import ACT, PAD, Case
from ondevice.mcu.tflite_build import options


class OpCase(Case):
    def float_in(self, shape) -> int:
        t = self.b.tensor(shape, "float32")
        self.inputs.append(t)
        return t

    def qparams(self, t: int) -> tuple[float, int]:
        q = self.b.tensors[t].quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    def quantize_float(self, shape, scale, zp):
        """float in -> QUANTIZE -> DEQUANTIZE -> float out, and the int8 tensor as a second output."""
        x = self.float_in(shape)
        q = self.act_out(shape, scale, zp)
        self.b.op("QUANTIZE", [x], [q])
        y = self.b.tensor(shape, "float32")
        self.outputs.append(y)
        self.b.op("DEQUANTIZE", [q], [y])

    def quantize_uint8(self, shape, zp_in, ratio, zp_mid):
        """uint8 in -> QUANTIZE -> int8 -> QUANTIZE -> uint8 out (the uint8-I/O edges), int8 also an output."""
        x = self.b.tensor(shape, "uint8", scale=0.03, zero_point=zp_in)
        self.inputs.append(x)
        q = self.act_out(shape, 0.03 * ratio, zp_mid)
        self.b.op("QUANTIZE", [x], [q])
        y = self.b.tensor(shape, "uint8", scale=0.03 * ratio * 1.3, zero_point=zp_mid + 128)
        self.outputs.append(y)
        self.b.op("QUANTIZE", [q], [y])

    def dequantize(self, shape):
        x = self.act_in(shape)
        y = self.b.tensor(shape, "float32")
        self.outputs.append(y)
        self.b.op("DEQUANTIZE", [x], [y])

    def requantize(self, shape, ratio, zp_out):
        x = self.act_in(shape)
        y = self.act_out(shape, self.scale_of(x) * ratio, zp_out)
        self.b.op("QUANTIZE", [x], [y])

    def activation(self, op, shape, in_scale=None, alpha=None, out_ratio=1.0):
        x = self.act_in(shape, scale=in_scale)
        sx = self.scale_of(x)
        if op == "LOGISTIC":
            y = self.act_out(shape, 1.0 / 256, -128)
        elif op == "TANH":
            y = self.act_out(shape, 1.0 / 128, 0)
        else:
            y = self.act_out(shape, sx * out_ratio, int(self.rng.integers(-100, 0)))
        opts = options("LeakyReluOptions", alpha=alpha) if op == "LEAKY_RELU" else None
        self.b.op(op, [x], [y], opts)

    def prelu(self, shape, alpha_shape):
        x = self.act_in(shape)
        sx = self.scale_of(x)
        a = self.b.tensor(alpha_shape, scale=0.004, zero_point=int(self.rng.integers(-5, 5)),
                          data=self.rng.integers(-20, 120, alpha_shape))
        y = self.act_out(shape, sx * 0.8)
        self.b.op("PRELU", [x, a], [y])

    def padv2(self, shape, pads, value):
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        y = self.act_out([n + a + b for n, (a, b) in zip(shape, pads)], s, zp)
        pt = self.b.tensor([len(shape), 2], "int32", data=np.asarray(pads, np.int32))
        vt = self.b.tensor([1], scale=s, zero_point=zp, data=np.asarray([value], np.int8))
        self.b.op("PADV2", [x, pt, vt], [y], options("PadV2Options"))

    def resize_nearest(self, shape, size, align=False, half=False):
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        y = self.act_out([shape[0], *size, shape[3]], s, zp)
        st = self.b.tensor([2], "int32", data=np.asarray(size, np.int32))
        self.b.op("RESIZE_NEAREST_NEIGHBOR", [x, st], [y],
                  options("ResizeNearestNeighborOptions", alignCorners=align, halfPixelCenters=half))

    def split(self, shape, axis, sizes=None, n=None):
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        sizes = sizes or [shape[axis] // n] * n
        outs = []
        for k in sizes:
            sh = list(shape)
            sh[axis] = k
            outs.append(self.act_out(sh, s, zp))
        at = self.b.tensor([1], "int32", data=np.asarray([axis], np.int32))
        if n is not None:
            self.b.op("SPLIT", [at, x], outs, options("SplitOptions", numSplits=n))
        else:
            st = self.b.tensor([len(sizes)], "int32", data=np.asarray(sizes, np.int32))
            self.b.op("SPLIT_V", [x, st, at], outs, options("SplitVOptions", numSplits=len(sizes)))

    def reduce_max(self, shape, axes, keep_dims):
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        rank = len(shape)
        ax = sorted({a % rank for a in axes})
        out = [1 if d in ax else n for d, n in enumerate(shape)] if keep_dims else \
            [n for d, n in enumerate(shape) if d not in ax]
        y = self.act_out(out, s, zp)
        at = self.b.tensor([len(axes)], "int32", data=np.asarray(axes, np.int32))
        self.b.op("REDUCE_MAX", [x, at], [y], options("ReducerOptions", keepDims=keep_dims))

    def pack(self, shape, n, axis):
        s, zp = 0.04, -7
        xs = [self.act_in(shape, scale=s, zp=zp) for _ in range(n)]
        out = list(shape)
        out.insert(axis, n)
        y = self.act_out(out, s, zp)
        self.b.op("PACK", xs, [y], options("PackOptions", valuesCount=n, axis=axis))

    def unpack(self, shape, axis):
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        outs = [self.act_out([d for k, d in enumerate(shape) if k != axis], s, zp) for _ in range(shape[axis])]
        self.b.op("UNPACK", [x], outs, options("UnpackOptions", num=shape[axis], axis=axis))

    def squeeze(self, shape, dims):
        """x -> RELU -> SQUEEZE -> RELU, so the squeeze sits between two kernels (an alias)."""
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        a = self.b.tensor(shape, scale=s, zero_point=zp)
        self.b.op("RELU", [x], [a])
        new = [n for d, n in enumerate(shape) if d not in dims]
        q = self.b.tensor(new, scale=s, zero_point=zp)
        self.b.op("SQUEEZE", [a], [q], options("SqueezeOptions", squeezeDims=np.asarray(dims, np.int32)))
        y = self.act_out(new, s * 1.5)
        self.b.op("QUANTIZE", [q], [y])

    def batch_matmul(self, a_shape, b_shape, adj_x=False, adj_y=False, const_b=False):
        a = self.act_in(a_shape)
        if const_b:
            b_ = self.b.tensor(b_shape, scale=0.02, zero_point=0, data=self.rng.integers(-127, 128, b_shape))
        else:
            b_ = self.act_in(b_shape)
        am = np.zeros(a_shape)
        bm = np.zeros(b_shape)
        am = np.swapaxes(am, -1, -2) if adj_x else am
        bm = np.swapaxes(bm, -1, -2) if adj_y else bm
        out_shape = list(np.matmul(am, bm).shape)
        depth = am.shape[-1]
        sb = 0.02 if const_b else self.scale_of(b_)
        y = self.act_out(out_shape, 3 * np.sqrt(depth) * self.scale_of(a) * sb * 74 * 74 / 128)
        self.b.op("BATCH_MATMUL", [a, b_], [y], options("BatchMatMulOptions", adjX=adj_x, adjY=adj_y))

    def transpose_conv(self, in_shape, out_c, k, stride, padding=PAD.SAME, bias=True):
        r = self.rng
        n, h, w, c = in_shape
        x = self.act_in(in_shape)
        sx = self.scale_of(x)
        ws = r.uniform(0.002, 0.02, out_c)
        wt = self.b.tensor([out_c, k, k, c], scale=ws, zero_point=np.zeros(out_c, np.int64),
                           data=r.integers(-127, 128, (out_c, k, k, c)), qdim=0)
        oh, ow = (h * stride, w * stride) if padding == PAD.SAME else ((h - 1) * stride + k, (w - 1) * stride + k)
        shp = self.b.tensor([4], "int32", data=np.asarray([n, oh, ow, out_c], np.int32))
        ins = [shp, wt, x]
        if bias:
            ins.append(self.b.tensor([out_c], "int32", scale=sx * ws, zero_point=np.zeros(out_c, np.int64),
                                     data=r.integers(-3000, 3000, out_c)))
        taps = max(1, (k // stride) ** 2)
        y = self.act_out([n, oh, ow, out_c], 3 * np.sqrt(taps * c) * sx * 74 * float(ws.mean()) * 74 / 128)
        self.b.op("TRANSPOSE_CONV", ins, [y], options("TransposeConvOptions", padding=padding, strideW=stride,
                                                       strideH=stride))

    def shape_chain(self, shape):
        """x -> RELU -> (SHAPE -> STRIDED_SLICE -> PACK) -> RESHAPE [batch, -1] -> QUANTIZE: folds to an alias."""
        x = self.act_in(shape)
        s, zp = self.qparams(x)
        a = self.b.tensor(shape, scale=s, zero_point=zp)
        self.b.op("RELU", [x], [a])
        sh = self.b.tensor([len(shape)], "int32")
        self.b.op("SHAPE", [a], [sh], options("ShapeOptions", outType=2))
        ints = [self.b.tensor([1], "int32", data=np.asarray([v], np.int32)) for v in (0, 1, 1)]
        batch = self.b.tensor([], "int32")
        self.b.op("STRIDED_SLICE", [sh, *ints], [batch], options("StridedSliceOptions", shrinkAxisMask=1))
        minus1 = self.b.tensor([], "int32", data=np.asarray(-1, np.int32))
        target = self.b.tensor([2], "int32")
        self.b.op("PACK", [batch, minus1], [target], options("PackOptions", valuesCount=2, axis=0))
        flat = [shape[0], int(np.prod(shape[1:]))]
        r = self.b.tensor(flat, scale=s, zero_point=zp)
        self.b.op("RESHAPE", [a, target], [r], options("ReshapeOptions"))
        y = self.act_out(flat, s * 0.7)
        self.b.op("QUANTIZE", [r], [y])


def op_inputs(specs: list[dict], n: int, seed: int) -> list[list[np.ndarray]]:
    """n vectors: uniform int8 for int8 inputs; floats for float inputs, incl. exact .5 quantization ties."""
    rng = np.random.default_rng(seed)
    vecs = []
    for k in range(n):
        vec = []
        for s in specs:
            if s["dtype"] == "float32":
                x = rng.uniform(-6, 6, size=s["shape"]).astype(np.float32)
                if k % 2:  # halfway cases: the rounding rule decides
                    x = ((np.round(x * 4) + 0.5) / 4).astype(np.float32)
                x.reshape(-1)[:4] = [0.0, -0.0, 3e5, -3e5][: x.size]  # far out of range: saturates
                vec.append(x)
            else:
                info = np.iinfo(s["dtype"])
                vec.append(rng.integers(info.min, info.max + 1, size=s["shape"]).astype(s["dtype"]))
        vecs.append(vec)
    return vecs


__all__ = ["ACT", "PAD", "OpCase", "op_inputs"]


def lut_sweep(c: OpCase, params) -> None:
    """One [256] activation per (op, input scale, input zp, extra): fed with every int8 value, it checks the
    whole table of that op's parameters."""
    for op, scale, zp, extra in params:
        x = c.act_in([256], scale=scale, zp=zp)
        if op == "LOGISTIC":
            y = c.act_out([256], 1.0 / 256, -128)
        elif op == "TANH":
            y = c.act_out([256], 1.0 / 128, 0)
        else:
            y = c.act_out([256], scale * extra, int(c.rng.integers(-110, 20)))
        opts = options("LeakyReluOptions", alpha=extra / 3) if op == "LEAKY_RELU" else None
        c.b.op(op, [x], [y], opts)


def every_int8(specs: list[dict]) -> list[list[np.ndarray]]:
    """Vectors that put every int8 value through each [256] input (and its reverse)."""
    ramp = np.arange(-128, 128, dtype=np.int8)
    return [[ramp.copy() for _ in specs], [ramp[::-1].copy() for _ in specs]]


def converter_mix_tflite(seed: int = 0) -> bytes:
    """A small float-I/O, full-integer model from TensorFlow's converter that uses the TinyML op mix:
    QUANTIZE/DEQUANTIZE edges, PAD, HARD_SWISH, LEAKY_RELU, MAX_POOL_2D, RESIZE_NEAREST_NEIGHBOR, SPLIT,
    LOGISTIC, CONCATENATION, MEAN, TANH and a SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain (dynamic batch)."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)

    def w(*shape, s=0.3):
        return tf.constant(rng.normal(0, s, shape).astype(np.float32))
    w1, b1, w2, b2, w3 = w(3, 3, 3, 8), w(8, s=0.1), w(24, 10), w(10, s=0.1), w(8 * 6 * 24, 6, s=0.05)

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 12, 3], tf.float32)])
    def f(x):
        a = tf.pad(x, [[0, 0], [1, 0], [1, 1], [0, 0]])
        a = tf.nn.conv2d(a, w1, 2, "VALID") + b1
        a = a * tf.nn.relu6(a + 3.0) / 6.0  # the converter's HARD_SWISH pattern
        b = tf.image.resize(tf.nn.max_pool2d(a, 2, 2, "SAME"), [8, 6], method="nearest")
        a = tf.concat([a, b, tf.nn.leaky_relu(a, 0.15)], axis=-1)
        p, q = tf.split(a, 2, axis=-1)
        a = tf.concat([tf.nn.relu(p), tf.sigmoid(q)], axis=-1)
        h = tf.tanh(tf.matmul(tf.reduce_mean(a, axis=[1, 2]), w2) + b2)
        r = tf.reshape(a, tf.stack([tf.shape(a)[0], 8 * 6 * 24]))
        return h, tf.matmul(r, w3)

    def rep():
        for _ in range(16):
            yield [rng.normal(size=(1, 16, 12, 3)).astype(np.float32)]
    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return c.convert()
