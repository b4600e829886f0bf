"""Single-op int8 graphs for the MCU kernel tests, written with ondevice.mcu.tflite_build.

Each ``add_*`` helper appends one op (own input and output) to a builder, with random weights and
quantization parameters picked so outputs span the int8 range instead of saturating.
"""
from __future__ import annotations

import math

import numpy as np

from ondevice.mcu.reader import schema
from ondevice.mcu.tflite_build import TfliteBuilder, options

ACT = schema.ActivationFunctionType
PAD = schema.Padding
U8_STD = 74.0  # std of a uniform int8


class Case:
    """A builder plus the graph inputs/outputs it has collected."""

    def __init__(self, seed: int):
        self.b = TfliteBuilder()
        self.rng = np.random.default_rng(seed)
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def act_in(self, shape, scale=None, zp=None) -> int:
        scale = float(self.rng.uniform(0.01, 0.1)) if scale is None else scale
        zp = int(self.rng.integers(-20, 20)) if zp is None else zp
        t = self.b.tensor(shape, scale=scale, zero_point=zp)
        self.inputs.append(t)
        return t

    def act_out(self, shape, scale, zp=None) -> int:
        zp = int(self.rng.integers(-10, 10)) if zp is None else zp
        t = self.b.tensor(shape, scale=scale, zero_point=zp)
        self.outputs.append(t)
        return t

    def scale_of(self, t: int) -> float:
        return float(self.b.tensors[t].quantization.scale[0])

    def build(self) -> bytes:
        return self.b.build(self.inputs, self.outputs)

    # ---------------------------------------------------------------- ops
    def conv(self, in_shape, out_c, k, stride=1, dil=1, padding=PAD.SAME, act=ACT.NONE, per_channel=True,
             bias=True, depthwise=False, dm=1):
        r = self.rng
        n, h, w, c = in_shape
        x = self.act_in(in_shape)
        sx = self.scale_of(x)
        kh, kw = (k, k) if isinstance(k, int) else k
        if depthwise:
            out_c = c * dm
            wshape, qdim, fan = [1, kh, kw, out_c], 3, kh * kw
        else:
            wshape, qdim, fan = [out_c, kh, kw, c], 0, kh * kw * c
        ws = r.uniform(0.002, 0.02, out_c if per_channel else 1)
        wt = self.b.tensor(wshape, scale=ws, zero_point=np.zeros(len(ws), np.int64),
                           data=r.integers(-127, 128, wshape), qdim=qdim)
        ins = [x, wt]
        if bias:
            bs = sx * (ws if per_channel else np.repeat(ws, 1))
            ins.append(self.b.tensor([out_c], "int32", scale=bs, zero_point=np.zeros(len(bs), np.int64),
                                     data=r.integers(-3000, 3000, out_c), qdim=0))
        eff_h, eff_w = (kh - 1) * dil + 1, (kw - 1) * dil + 1
        if padding == PAD.SAME:
            oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        else:
            oh, ow = (h - eff_h) // stride + 1, (w - eff_w) // stride + 1
        so = 3 * math.sqrt(fan) * sx * U8_STD * float(ws.mean()) * U8_STD / 128
        y = self.act_out([n, oh, ow, out_c], so)
        if depthwise:
            opts = options("DepthwiseConv2DOptions", padding=padding, strideW=stride, strideH=stride,
                           dilationWFactor=dil, dilationHFactor=dil, fusedActivationFunction=act, depthMultiplier=dm)
            self.b.op("DEPTHWISE_CONV_2D", ins, [y], opts)
        else:
            opts = options("Conv2DOptions", padding=padding, strideW=stride, strideH=stride,
                           dilationWFactor=dil, dilationHFactor=dil, fusedActivationFunction=act)
            self.b.op("CONV_2D", ins, [y], opts)

    def fc(self, batches, in_d, out_d, per_channel=False, act=ACT.NONE, bias=True):
        r = self.rng
        x = self.act_in([batches, in_d])
        sx = self.scale_of(x)
        ws = r.uniform(0.002, 0.02, out_d if per_channel else 1)
        wt = self.b.tensor([out_d, in_d], scale=ws, zero_point=np.zeros(len(ws), np.int64),
                           data=r.integers(-127, 128, (out_d, in_d)), qdim=0)
        ins = [x, wt]
        if bias:
            ins.append(self.b.tensor([out_d], "int32", scale=sx * ws, zero_point=np.zeros(len(ws), np.int64),
                                     data=r.integers(-3000, 3000, out_d)))
        else:
            ins.append(-1)
        so = 3 * math.sqrt(in_d) * sx * U8_STD * float(ws.mean()) * U8_STD / 128
        y = self.act_out([batches, out_d], so)
        self.b.op("FULLY_CONNECTED", ins, [y], options("FullyConnectedOptions", fusedActivationFunction=act))

    def binary(self, op, shape_a, shape_b, act=ACT.NONE):
        a, b_ = self.act_in(shape_a), self.act_in(shape_b)
        sa, sb = self.scale_of(a), self.scale_of(b_)
        out_shape = list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
        so = (sa + sb) * 1.2 if op in ("ADD", "SUB") else sa * sb * U8_STD * 1.5
        y = self.act_out(out_shape, so)
        kind = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
        self.b.op(op, [a, b_], [y], options(kind, fusedActivationFunction=act))

    def minmax(self, op, shape_a, shape_b):
        a = self.act_in(shape_a, scale=0.05, zp=2)
        b_ = self.act_in(shape_b, scale=0.05, zp=2)
        y = self.act_out(list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), 0.05, zp=2)
        self.b.op(op, [a, b_], [y], options("MaximumMinimumOptions"))

    def reduce(self, op, shape, axes, keep_dims):
        x = self.act_in(shape)
        sx = self.scale_of(x)
        rank = len(shape)
        ax = sorted({a % rank for a in axes})
        out_shape = [1 if d in ax else n for d, n in enumerate(shape)] if keep_dims else \
            [n for d, n in enumerate(shape) if d not in ax]
        count = int(np.prod([shape[a] for a in ax]))
        so = sx * float(self.rng.uniform(0.6, 1.4)) * (math.sqrt(count) * 2 if op == "SUM" else 1.0)
        y = self.act_out(out_shape, so)
        at = self.b.tensor([len(axes)], "int32", data=np.asarray(axes, np.int32))
        self.b.op(op, [x, at], [y], options("ReducerOptions", keepDims=keep_dims))

    def softmax(self, shape, beta=1.0, in_scale=None):
        x = self.act_in(shape, scale=in_scale)
        y = self.act_out(shape, 1.0 / 256, zp=-128)
        self.b.op("SOFTMAX", [x], [y], options("SoftmaxOptions", beta=beta))

    def transpose(self, shape, perm):
        x = self.act_in(shape)
        y = self.act_out([shape[p] for p in perm], self.scale_of(x), zp=int(self.b.tensors[x].quantization.zeroPoint[0]))
        pt = self.b.tensor([len(perm)], "int32", data=np.asarray(perm, np.int32))
        self.b.op("TRANSPOSE", [x, pt], [y], options("TransposeOptions"))

    def strided_slice(self, shape, begin, end, strides, shrink=0):
        x = self.act_in(shape)
        idx = np.arange(int(np.prod(shape))).reshape(shape)
        sl = []
        for d in range(len(shape)):
            if shrink >> d & 1:
                sl.append(begin[d])
            else:
                sl.append(slice(begin[d], end[d], strides[d]))
        out_shape = list(idx[tuple(sl)].shape)
        q = self.b.tensors[x].quantization
        y = self.act_out(out_shape, float(q.scale[0]), zp=int(q.zeroPoint[0]))
        ts = [self.b.tensor([len(shape)], "int32", data=np.asarray(v, np.int32)) for v in (begin, end, strides)]
        self.b.op("STRIDED_SLICE", [x, *ts], [y], options("StridedSliceOptions", shrinkAxisMask=shrink))

    def concat(self, shapes, axis):
        s, zp = 0.05, 3
        xs = [self.act_in(sh, scale=s, zp=zp) for sh in shapes]
        out_shape = list(shapes[0])
        out_shape[axis] = sum(sh[axis] for sh in shapes)
        y = self.act_out(out_shape, s, zp=zp)
        self.b.op("CONCATENATION", xs, [y], options("ConcatenationOptions", axis=axis))

    def pad(self, shape, pads):
        x = self.act_in(shape)
        q = self.b.tensors[x].quantization
        y = self.act_out([n + a + b for n, (a, b) in zip(shape, pads)], float(q.scale[0]), zp=int(q.zeroPoint[0]))
        pt = self.b.tensor([len(shape), 2], "int32", data=np.asarray(pads, np.int32))
        self.b.op("PAD", [x, pt], [y], options("PadOptions"))

    def pool(self, op, shape, k, stride, padding=PAD.VALID, act=ACT.NONE):
        n, h, w, c = shape
        x = self.act_in(shape)
        q = self.b.tensors[x].quantization
        if padding == PAD.SAME:
            oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        else:
            oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
        y = self.act_out([n, oh, ow, c], float(q.scale[0]), zp=int(q.zeroPoint[0]))
        self.b.op(op, [x], [y], options("Pool2DOptions", padding=padding, strideW=stride, strideH=stride,
                                        filterWidth=k, filterHeight=k, fusedActivationFunction=act))

    def unary(self, op, shape, out_scale_ratio=1.0):
        x = self.act_in(shape)
        sx = self.scale_of(x)
        if op == "RELU6":  # TFLM's RELU6 keeps the input's quantization
            q = self.b.tensors[x].quantization
            y = self.act_out(shape, sx, zp=int(q.zeroPoint[0]))
        else:
            y = self.act_out(shape, sx * out_scale_ratio)
        self.b.op(op, [x], [y])

    def reshape(self, shape, new_shape):
        """RESHAPE between two ops so aliasing is exercised: x -> RELU -> RESHAPE -> RELU."""
        x = self.act_in(shape)
        sx = self.scale_of(x)
        q = self.b.tensors[x].quantization
        zp = int(q.zeroPoint[0])
        a = self.b.tensor(shape, scale=sx, zero_point=zp)
        self.b.op("RELU", [x], [a])
        r = self.b.tensor(new_shape, scale=sx, zero_point=zp)
        st = self.b.tensor([len(new_shape)], "int32", data=np.asarray(new_shape, np.int32))
        self.b.op("RESHAPE", [a, st], [r], options("ReshapeOptions", newShape=np.asarray(new_shape, np.int32)))
        y = self.act_out(new_shape, sx * 0.5)
        self.b.op("QUANTIZE", [r], [y])


    def chain(self, shape, pad=None, lead_relu=False):
        """[PAD ->] DEPTHWISE 3x3 -> CONV 1x1 (fewer channels) -> FC: exercises PAD fusion and the in-place
        kernels (each input dies at its consumer)."""
        r = self.rng
        n, h, w, c = shape
        x = self.act_in(shape)
        sx, zx = self.scale_of(x), int(self.b.tensors[x].quantization.zeroPoint[0])
        if lead_relu:  # the depthwise then reads an intermediate that dies there: it can run in place
            xr = self.b.tensor(list(shape), scale=sx, zero_point=zx)
            self.b.op("RELU", [x], [xr])
            x = xr
        if pad:
            t, l = pad
            xp = self.b.tensor([n, h + 2 * t, w + 2 * l, c], scale=sx, zero_point=zx)
            pt = self.b.tensor([4, 2], "int32", data=np.asarray([[0, 0], [t, t], [l, l], [0, 0]], np.int32))
            self.b.op("PAD", [x, pt], [xp], options("PadOptions"))
            x, h, w = xp, h + 2 * t, w + 2 * l
        ws = r.uniform(0.005, 0.02, c)
        wd = self.b.tensor([1, 3, 3, c], scale=ws, zero_point=np.zeros(c, np.int64),
                           data=r.integers(-127, 128, (1, 3, 3, c)), qdim=3)
        bd = self.b.tensor([c], "int32", scale=sx * ws, zero_point=np.zeros(c, np.int64), data=r.integers(-500, 500, c))
        s1 = 3 * 3 * sx * U8_STD * float(ws.mean()) * U8_STD / 128
        oh, ow = h - 2, w - 2
        d = self.b.tensor([n, oh, ow, c], scale=s1, zero_point=-3)
        self.b.op("DEPTHWISE_CONV_2D", [x, wd, bd], [d], options(
            "DepthwiseConv2DOptions", padding=PAD.VALID, strideW=1, strideH=1, dilationWFactor=1,
            dilationHFactor=1, fusedActivationFunction=ACT.RELU6, depthMultiplier=1))
        oc = c - 4
        wp_s = r.uniform(0.005, 0.02, oc)
        wp = self.b.tensor([oc, 1, 1, c], scale=wp_s, zero_point=np.zeros(oc, np.int64),
                           data=r.integers(-127, 128, (oc, 1, 1, c)))
        s2 = 3 * math.sqrt(c) * s1 * U8_STD * float(wp_s.mean()) * U8_STD / 128
        pw = self.b.tensor([n, oh, ow, oc], scale=s2, zero_point=5)
        self.b.op("CONV_2D", [d, wp], [pw], options("Conv2DOptions", padding=PAD.VALID, strideW=1, strideH=1,
                                                      dilationWFactor=1, dilationHFactor=1))
        rows = n * oh * ow
        flat = self.b.tensor([rows, oc], scale=s2, zero_point=5)
        st = self.b.tensor([2], "int32", data=np.asarray([rows, oc], np.int32))
        self.b.op("RESHAPE", [pw, st], [flat], options("ReshapeOptions", newShape=np.asarray([rows, oc], np.int32)))
        fo = oc - 3
        wf = self.b.tensor([fo, oc], scale=0.01, zero_point=0, data=r.integers(-127, 128, (fo, oc)))
        y = self.act_out([rows, fo], 3 * math.sqrt(oc) * s2 * U8_STD * 0.01 * U8_STD / 128)
        self.b.op("FULLY_CONNECTED", [flat, wf, -1], [y], options("FullyConnectedOptions"))


def random_inputs(model_inputs: list[dict], n: int, seed: int) -> list[list[np.ndarray]]:
    """n vectors of uniform int8 inputs, one array per model input."""
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, size=s["shape"]).astype(np.int8) for s in model_inputs] for _ in range(n)]

