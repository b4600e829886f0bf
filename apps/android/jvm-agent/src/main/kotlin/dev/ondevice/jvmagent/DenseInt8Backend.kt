package dev.ondevice.jvmagent

import dev.ondevice.protocol.AgentBackend
import dev.ondevice.protocol.AgentException
import dev.ondevice.protocol.BuiltinInfo
import dev.ondevice.protocol.ErrorCode
import dev.ondevice.protocol.MemoryStats
import dev.ondevice.protocol.ModelFormat
import dev.ondevice.protocol.OpTiming
import dev.ondevice.protocol.TensorInfo
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest

/**
 * A pure-Kotlin backend for the JVM agent: one int8 fully-connected layer in the "ODFC" raw format.
 *
 * It is not a neural-network runtime: neither ExecuTorch nor LiteRT has JVM bindings on this machine. It runs
 * real integer arithmetic on real uploaded weights, so the agent's data path (upload, SHA-256, chunked input,
 * timed runs, chunked output) is checked against numpy bit for bit. Layout (little-endian, see README):
 *
 * | off | field |
 * |----:|-------|
 * | 0 | magic "ODFC" |
 * | 4 | version u8 = 1, 3 reserved bytes |
 * | 8 | in_features u32 (N), 12: out_features u32 (M) |
 * | 16 | input zero_point i32, 20: input scale f32 |
 * | 24 | output zero_point i32, 28: output scale f32 |
 * | 32 | multiplier i32 in [2^30, 2^31), 36: shift i32 in 31..62 |
 * | 40 | weights int8 [M][N], then bias i32 [M] |
 *
 * out[o] = clamp(((acc * multiplier + 2^(shift-1)) >> shift) + out_zp, -128, 127),
 * acc = bias[o] + sum_i (x[i] - in_zp) * w[o][i], all in 64-bit integers.
 */
class DenseInt8Backend(private val builtins: List<Pair<String, ByteArray>> = emptyList()) : AgentBackend {
    override val runtime: String = "jvm-dense-int8"
    override val formats: Set<Int> = setOf(ModelFormat.RAW)
    override val hasOpTimings: Boolean = true
    override val builtinModels: List<String> = builtins.map { it.first }

    override fun loadBuiltin(index: Int): BuiltinInfo {
        val blob = builtins[index].second
        load(blob, ModelFormat.RAW)
        return BuiltinInfo(MessageDigest.getInstance("SHA-256").digest(blob), blob.size.toLong())
    }

    private var n = 0
    private var m = 0
    private var inZp = 0
    private var outZp = 0
    private var inScale = 0.0
    private var outScale = 0.0
    private var mult = 0L
    private var shift = 0
    private var weights = ByteArray(0)
    private var bias = IntArray(0)
    private var input = ByteArray(0)
    private var output = ByteArray(0)
    private var modelBytes = 0L
    private var opNs = 0L
    private var opRuns = 0L
    private var peakHeap = 0L

    override fun load(model: ByteArray, format: Int) {
        if (model.size < 40 || String(model, 0, 4, Charsets.US_ASCII) != "ODFC" || model[4].toInt() != 1) {
            throw AgentException(ErrorCode.MODEL_INVALID, "not an ODFC v1 model")
        }
        val b = ByteBuffer.wrap(model).order(ByteOrder.LITTLE_ENDIAN)
        val nIn = b.getInt(8)
        val nOut = b.getInt(12)
        if (nIn <= 0 || nOut <= 0 || model.size.toLong() != 40L + nIn.toLong() * nOut + 4L * nOut) {
            throw AgentException(ErrorCode.MODEL_INVALID, "ODFC size disagrees with ${nIn}x$nOut")
        }
        val sh = b.getInt(36)
        val mu = b.getInt(32).toLong()
        if (sh !in 31..62 || mu < (1L shl 30)) throw AgentException(ErrorCode.MODEL_INVALID, "bad requantisation ($mu, $sh)")
        n = nIn
        m = nOut
        inZp = b.getInt(16)
        inScale = b.getFloat(20).toDouble()
        outZp = b.getInt(24)
        outScale = b.getFloat(28).toDouble()
        mult = mu
        shift = sh
        weights = model.copyOfRange(40, 40 + n * m)
        bias = IntArray(m) { b.getInt(40 + n * m + 4 * it) }
        input = ByteArray(n)
        output = ByteArray(m)
        modelBytes = model.size.toLong()
        opNs = 0
        opRuns = 0
        sampleHeap()
    }

    override fun inputs(): List<TensorInfo> = listOf(TensorInfo("input", "int8", intArrayOf(1, n), inScale, inZp))

    override fun outputs(): List<TensorInfo> = listOf(TensorInfo("output", "int8", intArrayOf(1, m), outScale, outZp))

    override fun setInput(index: Int, data: ByteArray) {
        if (index != 0 || data.size != n) throw AgentException(ErrorCode.INVALID_INPUT_SIZE, "input 0 is $n bytes")
        System.arraycopy(data, 0, input, 0, n)
    }

    override fun run() {
        val t0 = System.nanoTime()
        val round = 1L shl (shift - 1)
        for (o in 0 until m) {
            var acc = bias[o].toLong()
            val row = o * n
            for (i in 0 until n) acc += (input[i] - inZp).toLong() * weights[row + i]
            val q = ((acc * mult + round) shr shift) + outZp
            output[o] = q.coerceIn(-128L, 127L).toByte()
        }
        opNs += System.nanoTime() - t0
        opRuns++
    }

    override fun output(index: Int): ByteArray {
        if (index != 0) throw AgentException(ErrorCode.BAD_INDEX, "one output")
        return output.copyOf()
    }

    override fun memory(): MemoryStats {
        sampleHeap()
        return MemoryStats(
            peakRamBytes = peakHeap,
            arenaBytes = (input.size + output.size + 4 * bias.size).toLong(),
            flashBytes = modelBytes
        )
    }

    override fun startOpProfiling() {
        opNs = 0
        opRuns = 0
    }

    override fun opTimings(): List<OpTiming>? =
        if (opRuns == 0L) null else listOf(OpTiming("FULLY_CONNECTED", opNs / opRuns))

    override fun unload() {
        weights = ByteArray(0)
        bias = IntArray(0)
        modelBytes = 0
    }

    private fun sampleHeap() {
        val r = Runtime.getRuntime()
        peakHeap = maxOf(peakHeap, r.totalMemory() - r.freeMemory())
    }
}
