import Foundation

private typealias T = FrontendTables

/// Every intermediate of one frame, to find the first step where a twin differs (docs/FRONTEND.md).
public struct FrameTrace {
    public let windowed: [Int]
    public let shift: Int
    public let fftRe: [Int64]
    public let fftIm: [Int64]
    public let power: [Int64]
    public let melEnergy: [Int64]
    public let features: [Int]
}

/// Swift twin of `ondevice.features` (integer log-mel, 30 ms window, 20 ms step, 40 channels). Mirrors Frontend.kt.
/// Each numbered step follows docs/FRONTEND.md; `>>` on signed integers is the spec's arithmetic right shift.
/// Features are uint16 values held in [Int], row-major [frames][40].
public enum Frontend {
    /// Frames for `numSamples` samples (49 for one second).
    public static func numFrames(_ numSamples: Int) -> Int { numSamples < T.WINDOW ? 0 : 1 + (numSamples - T.WINDOW) / T.STEP }

    /// int16 PCM -> uint16 features [frames * 40].
    public static func computeFeatures(_ pcm: [Int16]) -> [Int] {
        precondition(pcm.count >= T.WINDOW, "audio has \(pcm.count) samples, fewer than one \(T.WINDOW)-sample window")
        let nf = numFrames(pcm.count)
        var out = [Int](repeating: 0, count: nf * T.CHANNELS)
        let scratch = Scratch()
        for f in 0..<nf { _ = frame(pcm, f * T.STEP, &out, f * T.CHANNELS, scratch) }
        return out
    }

    /// All intermediates of one WINDOW-sample frame.
    public static func traceFrame(_ frame: [Int16]) -> FrameTrace {
        precondition(frame.count == T.WINDOW, "a frame has \(T.WINDOW) samples")
        var out = [Int](repeating: 0, count: T.CHANNELS)
        let s = Scratch()
        let shift = Frontend.frame(frame, 0, &out, 0, s)
        return FrameTrace(windowed: s.xw, shift: shift, fftRe: Array(s.re[0..<T.BINS]), fftIm: Array(s.im[0..<T.BINS]),
                          power: s.power, melEnergy: s.energy, features: out)
    }

    /// The float the PyTorch model sees: feature * 2^-8 (exact in float32).
    public static func toModelInput(_ features: [Int]) -> [Float] {
        let scale = 1.0 / Float(1 << T.FEATURE_SCALE_LOG2)
        return features.map { Float($0) * scale }
    }

    /// Features -> the model's int8 input, integer only (docs/FRONTEND.md "Into the model").
    public static func quantizeFeatures(_ features: [Int], scale: Double, zeroPoint: Int) -> [Int8] {
        let (mult, shift) = quantMultiplier(scale)
        let round = Int64(1) << (shift - 1)
        return features.map { f in
            let q = ((Int64(f) * mult + round) >> Int64(shift)) + Int64(zeroPoint)
            return Int8(min(max(q, -128), 127))
        }
    }

    /// (mult, shift) with mult in [2^30, 2^31) and mult / 2^shift ~= 2^-8 / scale, rounded half up, computed
    /// exactly from the binary value of `scale` (scale = sm * 2^se; the quotient 2^k / sm needs 128 bits, which
    /// `dividingFullWidth` provides). Same steps as Frontend.kt.
    public static func quantMultiplier(_ scale: Double) -> (Int64, Int) {
        precondition(scale > 0 && scale.isFinite, "input scale must be positive and finite, got \(scale)")
        let bits = scale.bitPattern
        let exp = Int((bits >> 52) & 0x7FF)
        let frac = bits & ((UInt64(1) << 52) - 1)
        let sm = exp == 0 ? frac : frac | (UInt64(1) << 52)
        let se = exp == 0 ? -1074 : exp - 1075
        let b = 64 - sm.leadingZeroBitCount
        let k = 30 + ((sm & (sm - 1)) == 0 ? b - 1 : b)
        var shift = k + T.FEATURE_SCALE_LOG2 + se
        precondition(k - 64 < b - 1, "input scale \(scale) is outside what the integer feature quantizer supports")
        let num: (high: UInt64, low: UInt64) = k >= 64 ? (UInt64(1) << UInt64(k - 64), 0) : (0, UInt64(1) << UInt64(k))
        // Round half up: floor(2^k / sm + 1/2), from the quotient and remainder.
        let (q, r) = sm.dividingFullWidth(num)
        var mult = Int64(q) + (r * 2 >= sm ? 1 : 0)
        if mult == Int64(1) << 31 {
            mult = Int64(1) << 30
            shift -= 1
        }
        precondition((1...62).contains(shift), "input scale \(scale) is outside what the integer feature quantizer supports")
        return (mult, shift)
    }

    private static func bitlen(_ v: Int64) -> Int { 64 - v.leadingZeroBitCount }

    private final class Scratch {
        var xw = [Int](repeating: 0, count: T.WINDOW)
        var re = [Int64](repeating: 0, count: T.FFT_SIZE)
        var im = [Int64](repeating: 0, count: T.FFT_SIZE)
        var power = [Int64](repeating: 0, count: T.BINS)
        var energy = [Int64](repeating: 0, count: T.CHANNELS)
    }

    /// One frame starting at `start`; writes 40 features at `outOff`; returns the block-float shift s.
    private static func frame(_ pcm: [Int16], _ start: Int, _ out: inout [Int], _ outOff: Int, _ s: Scratch) -> Int {
        // 1. Window, Q12.
        var peak = 0
        for n in 0..<T.WINDOW {
            let v = (Int(pcm[start + n]) * Int(T.window_q12[n]) + (1 << (T.WINDOW_BITS - 1))) >> T.WINDOW_BITS
            s.xw[n] = v
            let a = v < 0 ? -v : v
            if a > peak { peak = a }
        }
        // 2. Block floating point: keep NORM_BITS significant bits for quiet frames.
        let shift = peak == 0 ? 0 : max(0, T.NORM_BITS - bitlen(Int64(peak)))
        // 3. FFT: bit-reversed load, radix-2 DIT, no per-stage scaling.
        for m in 0..<T.FFT_SIZE {
            let src = Int(T.bitrev[m])
            s.re[m] = src < T.WINDOW ? Int64(s.xw[src]) << Int64(shift) : 0
            s.im[m] = 0
        }
        let rnd = Int64(1) << Int64(T.TWIDDLE_BITS - 1)
        var half = 1
        while half < T.FFT_SIZE {
            let span = 2 * half
            let stride = T.FFT_SIZE / span
            var g = 0
            while g < T.FFT_SIZE {
                for j in 0..<half {
                    let a = g + j
                    let b = a + half
                    let wr = Int64(T.twiddle_re_q15[j * stride])
                    let wi = Int64(T.twiddle_im_q15[j * stride])
                    let tr = (s.re[b] * wr - s.im[b] * wi + rnd) >> Int64(T.TWIDDLE_BITS)
                    let ti = (s.re[b] * wi + s.im[b] * wr + rnd) >> Int64(T.TWIDDLE_BITS)
                    let ar = s.re[a]
                    let ai = s.im[a]
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
        for k in 0..<T.BINS { s.power[k] = (s.re[k] * s.re[k] + s.im[k] * s.im[k]) >> Int64(T.POWER_SHIFT) }
        for c in 0..<T.CHANNELS {
            // 5. Mel energy (sparse triangles).
            var e: Int64 = 0
            let st = Int(T.mel_start[c])
            let off = Int(T.mel_offset[c])
            for j in 0..<Int(T.mel_len[c]) { e += Int64(T.mel_weights_q12[off + j]) * s.power[st + j] }
            s.energy[c] = e
            if e == 0 {
                out[outOff + c] = 0
                continue
            }
            // 6. log2 in Q10: exponent plus an 8-bit mantissa table.
            let p = bitlen(e) - 1
            let idx = Int((p >= T.LOG_LUT_BITS ? e >> Int64(p - T.LOG_LUT_BITS) : e << Int64(T.LOG_LUT_BITS - p)) & 255)
            let l = (Int64(p) << Int64(T.LOG_FRAC_BITS)) + Int64(T.log_lut_q10[idx])
            // 7. Undo the block-float shift (2s in the power domain) and scale to Q6.
            let v = (l - (Int64(shift) << Int64(T.LOG_FRAC_BITS + 1)) + Int64(T.LOG_OFFSET) + Int64(1 << (T.OUT_SHIFT - 1))) >> Int64(T.OUT_SHIFT)
            out[outOff + c] = Int(min(max(v, 0), Int64(T.OUT_MAX)))
        }
        return shift
    }
}
