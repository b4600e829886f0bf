"""The cheaper requantization (od_requant_fast) equals TFLite's MultiplyByQuantizedMultiplier wherever the code
generator enables it, and the code generator enables it only where its preconditions hold."""
from __future__ import annotations

import subprocess

import numpy as np

from conftest import require_tool
from mcu_cases import Case
from ondevice.mcu.codegen import generate
from ondevice.mcu.layouts import requant_fast as _requant_fast
from ondevice.mcu.library import FIRMWARE_DIR
from ondevice.mcu.reader import read_tflite

HARNESS = r"""
#include <stdio.h>
#include "od_fixedpoint.h"
#include "od_simd.h"
static uint64_t st = 88172645463325252ull;
static uint64_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }
int main(void) {
    long bad = 0, n = 0;
    for (int s = -31; s <= -1; ++s) {
        for (int k = 0; k < 200000; ++k, ++n) {
            /* multipliers as QuantizeMultiplier makes them, [2^30, 2^31); inputs inside |x| < 2^30, biased
             * toward small magnitudes and exact rounding ties of both steps */
            const int32_t m = (int32_t)((1u << 30) + (uint32_t)(rnd() % (1u << 30)));
            int32_t x;
            switch (k % 4) {
                case 0: x = (int32_t)(rnd() % ((2u << 29) * 2 - 1)) - ((1 << 30) - 1); break;
                case 1: x = (int32_t)(rnd() % 200001) - 100000; break;
                case 2: x = (int32_t)((rnd() % 2 ? 1 : -1) * (int32_t)(rnd() % 4096) << (rnd() % 18)); break;
                default: x = (k & 8) ? (1 << 30) - 1 - (int32_t)(rnd() % 64) : -(1 << 30) + 1 + (int32_t)(rnd() % 64);
            }
            const int32_t off = (int32_t)(rnd() % 256) - 128;
            if (od_requant_fast(x, m, s, off) != od_mbqm(x, m, s) + off) ++bad;
            /* the saturating form the depthwise kernel packs four of */
            if (od_requant_fast_s8(x, m, ~s, 1 + 2 * off) != od_clamp_i32(od_mbqm(x, m, s) + off, -128, 127)) ++bad;
        }
        /* exhaustive small accumulators at one multiplier per shift */
        for (int32_t x = -70000; x <= 70000; ++x, ++n)
            if (od_requant_fast(x, 1518500250, s, x & 7) != od_mbqm(x, 1518500250, s) + (x & 7)) ++bad;
    }
    printf("%ld %ld\n", bad, n);
    return 0;
}
"""


def test_requant_fast_equals_tflite_multiply_by_quantized_multiplier(tmp_path):
    require_tool("gcc")
    src = tmp_path / "h.c"
    src.write_text(HARNESS)
    exe = tmp_path / "h"
    k = FIRMWARE_DIR / "kernels"
    for portable in (True, False):  # the C twin of SMMULR and (on x86 gcc) the same code path both ways
        flags = ["-DOD_SIMD_PORTABLE"] if portable else []
        subprocess.run(["gcc", "-O2", "-std=c99", *flags, f"-I{k}", f"-I{FIRMWARE_DIR / 'include'}", str(src),
                        "-o", str(exe)], check=True)
        bad, n = map(int, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split())
        assert n > 10_000_000 and bad == 0


def test_codegen_enables_fast_requant_only_when_proved():
    shifts = np.array([-3, -7])
    w = np.array([1000, 2000])
    assert _requant_fast(shifts, np.array([10, -10]), w, 0) == 1
    assert _requant_fast(np.array([-3, 0]), np.array([10, -10]), w, 0) == 0        # a channel without right shift
    assert _requant_fast(shifts, np.array([2**30 - 1000 * 128, 0]), w, 0) == 0     # |acc| can reach 2^30
    assert _requant_fast(shifts, np.array([0, 0]), np.array([5_000_000, 1]), 0) == 1
    assert _requant_fast(shifts, np.array([0, 0]), np.array([5_000_000, 1]), 127) == 0  # x + off up to 254
    c = Case(seed=3)
    c.conv([1, 6, 6, 8], 8, 3)
    c.fc(1, 32, 8)
    src = generate(read_tflite(c.build())).source
    assert src.count(".requant_fast = 1") == 2


def _adds(c: Case):
    from mcu_cases import ACT
    for ratio, act in ((1.0, ACT.NONE), (0.3, ACT.RELU), (3.0, ACT.NONE), (1.0, ACT.RELU6)):
        a = c.act_in([1, 5, 4, 8], scale=0.05)
        b = c.act_in([1, 5, 4, 8], scale=0.05 * ratio)
        y = c.act_out([1, 5, 4, 8], 0.05 * (1 + ratio) * 0.9)
        from ondevice.mcu.tflite_build import options
        c.b.op("ADD", [a, b], [y], options("AddOptions", fusedActivationFunction=act))


def test_same_shape_add_fast_bit_exact_vs_tflm_host_and_qemu(tmp_path):
    """od_add_s8_fast (equal input scales: both shifts 0; unequal: one of them), host and Cortex-M4 QEMU."""
    require_tool("gcc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from mcu_cases import random_inputs
    from ondevice.mcu.library import write_library
    from ondevice.mcu.qemu_bench import bench_qemu
    from ondevice.runtimes.tflm import TFLMModel
    from ondevice.verify.mcu import verify_host
    c = Case(seed=5)
    _adds(c)
    data = c.build()
    lib = tmp_path / "adds_mcu_int8"
    summary = write_library(data, lib, name="adds")
    assert "od_add_s8_fast" in (lib / "od_model.c").read_text()
    vecs = random_inputs(summary["inputs"], n=4, seed=3)
    vecs += [[np.full(s["shape"], v, np.int8) for s in summary["inputs"]] for v in (-128, 127)]
    rep = verify_host(lib, vecs)
    assert rep["mismatched_vectors"] == {"opt": 0, "ref": 0} and rep["bit_exact_vs_tflm"] is True, rep
    res = bench_qemu(lib, vecs[:3], "mps2-an386", "opt")
    ref = TFLMModel(data)
    for got, vec in zip(res.outputs, vecs[:3]):
        for g, w in zip(got, ref.run(vec)):
            np.testing.assert_array_equal(g, w.reshape(g.shape))


def test_one_channel_depthwise_runs_as_im2col_conv():
    """A depthwise conv of a one-channel input (kws-dscnn's first layer) is the CONV_2D of its transposed filter."""
    from mcu_cases import PAD
    c = Case(seed=4)
    c.conv([1, 12, 9, 1], 0, (4, 3), stride=2, depthwise=True, dm=8)
    c.conv([1, 7, 6, 1], 0, 3, padding=PAD.VALID, depthwise=True, dm=3)
    src = generate(read_tflite(c.build())).source
    assert src.count("od_conv2d_s8_im2col(") == 2 and "od_depthwise_conv2d_s8" not in src
