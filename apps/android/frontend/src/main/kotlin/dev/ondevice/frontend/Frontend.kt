package dev.ondevice.frontend

import dev.ondevice.frontend.FrontendTables as T
import java.math.BigInteger

/** Every intermediate of one frame, to find the first step where a twin differs (docs/FRONTEND.md). */
class FrameTrace(
    val windowed: IntArray,
    val shift: Int,
    val fftRe: LongArray,
    val fftIm: LongArray,
    val power: LongArray,
    val melEnergy: LongArray,
    val features: IntArray
)

/**
 * Kotlin twin of `ondevice.features` (integer log-mel, 30 ms window, 20 ms step, 40 channels).
 * Each numbered step follows docs/FRONTEND.md; `shr` is the spec's arithmetic right shift.
 * Features are uint16 values held in an IntArray, row-major [frames][40].
 */
object Frontend {
    /** Frames for [numSamples] samples (49 for one second). */
    fun numFrames(numSamples: Int): Int = if (numSamples < T.WINDOW) 0 else 1 + (numSamples - T.WINDOW) / T.STEP

    /** int16 PCM -> uint16 features [frames * 40]. */
    fun computeFeatures(pcm: ShortArray): IntArray {
        require(pcm.size >= T.WINDOW) { "audio has ${pcm.size} samples, fewer than one ${T.WINDOW}-sample window" }
        val nf = numFrames(pcm.size)
        val out = IntArray(nf * T.CHANNELS)
        val scratch = Scratch()
        for (f in 0 until nf) frame(pcm, f * T.STEP, out, f * T.CHANNELS, scratch)
        return out
    }

    /** All intermediates of one [T.WINDOW]-sample frame. */
    fun traceFrame(frame: ShortArray): FrameTrace {
        require(frame.size == T.WINDOW) { "a frame has ${T.WINDOW} samples" }
        val out = IntArray(T.CHANNELS)
        val s = Scratch()
        val shift = frame(frame, 0, out, 0, s)
        return FrameTrace(s.xw.copyOf(), shift, s.re.copyOf(T.BINS), s.im.copyOf(T.BINS), s.power.copyOf(), s.energy.copyOf(), out)
    }

    /** The float the PyTorch model sees: feature * 2^-8 (exact in float32). */
    fun toModelInput(features: IntArray): FloatArray {
        val scale = 1.0f / (1 shl T.FEATURE_SCALE_LOG2)
        return FloatArray(features.size) { features[it] * scale }
    }

    /** Features -> the model's int8 input, integer only (docs/FRONTEND.md "Into the model"). */
    fun quantizeFeatures(features: IntArray, scale: Double, zeroPoint: Int): ByteArray {
        val (mult, shift) = quantMultiplier(scale)
        val round = 1L shl (shift - 1)
        return ByteArray(features.size) {
            val q = ((features[it].toLong() * mult + round) shr shift) + zeroPoint
            q.coerceIn(-128L, 127L).toByte()
        }
    }

    /**
     * (mult, shift) with mult in [2^30, 2^31) and mult / 2^shift ~= 2^-8 / scale, rounded half up,
     * computed exactly from the binary value of [scale]: scale = sm * 2^se, so 2^-8 / scale * 2^shift = 2^k / sm
     * with k = shift - 8 - se, and the one k that puts 2^k / sm in [2^30, 2^31) follows from sm's bit length.
     */
    fun quantMultiplier(scale: Double): Pair<Long, Int> {
        require(scale > 0.0 && !scale.isInfinite() && !scale.isNaN()) { "input scale must be positive and finite, got $scale" }
        val bits = java.lang.Double.doubleToLongBits(scale)
        val exp = ((bits ushr 52) and 0x7FF).toInt()
        val frac = bits and ((1L shl 52) - 1)
        val sm = if (exp == 0) frac else frac or (1L shl 52)
        val se = if (exp == 0) -1074 else exp - 1075
        val b = bitlen(sm)
        val k = 30 + if (sm and (sm - 1) == 0L) b - 1 else b
        var shift = k + T.FEATURE_SCALE_LOG2 + se
        // Round half up: floor(2^k / sm + 1/2), from the quotient and remainder.
        val qr = BigInteger.ONE.shiftLeft(k).divideAndRemainder(BigInteger.valueOf(sm))
        var mult = qr[0].toLong() + if (qr[1].toLong() * 2 >= sm) 1 else 0
        if (mult == 1L shl 31) {
            mult = 1L shl 30
            shift -= 1
        }
        require(shift in 1..62) { "input scale $scale is outside what the integer feature quantizer supports" }
        return Pair(mult, shift)
    }

    private fun bitlen(v: Long): Int = 64 - java.lang.Long.numberOfLeadingZeros(v)

    private class Scratch {
        val xw = IntArray(T.WINDOW)
        val re = LongArray(T.FFT_SIZE)
        val im = LongArray(T.FFT_SIZE)
        val power = LongArray(T.BINS)
        val energy = LongArray(T.CHANNELS)
    }

    /** One frame starting at [start]; writes 40 features at [outOff]; returns the block-float shift s. */
    private fun frame(pcm: ShortArray, start: Int, out: IntArray, outOff: Int, s: Scratch): Int {
        // 1. Window, Q12.
        var peak = 0
        for (n in 0 until T.WINDOW) {
            val v = (pcm[start + n] * T.window_q12[n] + (1 shl (T.WINDOW_BITS - 1))) shr T.WINDOW_BITS
            s.xw[n] = v
            val a = if (v < 0) -v else v
            if (a > peak) peak = a
        }
        // 2. Block floating point: keep NORM_BITS significant bits for quiet frames.
        val shift = if (peak == 0) 0 else maxOf(0, T.NORM_BITS - bitlen(peak.toLong()))
        // 3. FFT: bit-reversed load, radix-2 DIT, no per-stage scaling.
        for (m in 0 until T.FFT_SIZE) {
            val src = T.bitrev[m]
            s.re[m] = if (src < T.WINDOW) (s.xw[src].toLong() shl shift) else 0L
            s.im[m] = 0L
        }
        val rnd = 1L shl (T.TWIDDLE_BITS - 1)
        var half = 1
        while (half < T.FFT_SIZE) {
            val span = 2 * half
            val stride = T.FFT_SIZE / span
            var g = 0
            while (g < T.FFT_SIZE) {
                for (j in 0 until half) {
                    val a = g + j
                    val b = a + half
                    val wr = T.twiddle_re_q15[j * stride].toLong()
                    val wi = T.twiddle_im_q15[j * stride].toLong()
                    val tr = (s.re[b] * wr - s.im[b] * wi + rnd) shr T.TWIDDLE_BITS
                    val ti = (s.re[b] * wi + s.im[b] * wr + rnd) shr T.TWIDDLE_BITS
                    val ar = s.re[a]
                    val ai = s.im[a]
                    s.re[b] = ar - tr
                    s.im[b] = ai - ti
                    s.re[a] = ar + tr
                    s.im[a] = ai + ti
                }
                g += span
            }
            half = span
        }
        // 4. Power.
        for (k in 0 until T.BINS) s.power[k] = (s.re[k] * s.re[k] + s.im[k] * s.im[k]) shr T.POWER_SHIFT
        for (c in 0 until T.CHANNELS) {
            // 5. Mel energy (sparse triangles).
            var e = 0L
            val st = T.mel_start[c]
            val off = T.mel_offset[c]
            for (j in 0 until T.mel_len[c]) e += T.mel_weights_q12[off + j].toLong() * s.power[st + j]
            s.energy[c] = e
            if (e == 0L) {
                out[outOff + c] = 0
                continue
            }
            // 6. log2 in Q10: exponent plus an 8-bit mantissa table.
            val p = bitlen(e) - 1
            val idx = (if (p >= T.LOG_LUT_BITS) e shr (p - T.LOG_LUT_BITS) else e shl (T.LOG_LUT_BITS - p)).toInt() and 255
            val l = (p.toLong() shl T.LOG_FRAC_BITS) + T.log_lut_q10[idx]
            // 7. Undo the block-float shift (2s in the power domain) and scale to Q6.
            val v = (l - (shift.toLong() shl (T.LOG_FRAC_BITS + 1)) + T.LOG_OFFSET + (1 shl (T.OUT_SHIFT - 1))) shr T.OUT_SHIFT
            out[outOff + c] = v.coerceIn(0L, T.OUT_MAX.toLong()).toInt()
        }
        return shift
    }
}
