package dev.ondevice.protocol

/** One tensor as the runtime holds it: raw bytes in [dtype], with its quantisation if any. */
class TensorInfo(
    val name: String,
    val dtype: String,
    val shape: IntArray,
    val scale: Double = 0.0,
    val zeroPoint: Int = 0
) {
    /** Bytes a buffer of this tensor takes. */
    val byteSize: Int
        get() = shape.fold(1) { a, d -> a * d } * dtypeBytes(dtype)

    companion object {
        /** Element size for the dtype names used by manifests and PROTOCOL.md. */
        fun dtypeBytes(dtype: String): Int = when (dtype) {
            "int8", "uint8", "bool" -> 1
            "int16", "uint16", "float16" -> 2
            "int32", "uint32", "float32" -> 4
            "int64", "float64" -> 8
            else -> throw IllegalArgumentException("unknown dtype $dtype")
        }
    }
}

/** Memory figures a backend can report; -1 means "this runtime cannot tell". */
class MemoryStats(
    val peakRamBytes: Long = -1,
    val arenaBytes: Long = -1,
    val stackBytes: Long = -1,
    val flashBytes: Long = -1
)

/** Mean time of one operator over the timed runs of the last RUN (nanoseconds from a backend, wire unit on the wire). */
class OpTiming(val name: String, val time: Long)

/**
 * What the agent needs from a runtime. The Android app implements it with ExecuTorch and LiteRT,
 * the iOS app with ExecuTorch and Core ML, and the JVM test agent with a pure-Kotlin reference.
 * Methods may throw [AgentException]; the agent turns it into a protocol error frame.
 */
interface AgentBackend {
    /** Runtime name for the handshake, e.g. "executorch", "litert". */
    val runtime: String

    /** Model formats [load] accepts ([ModelFormat] codes). */
    val formats: Set<Int>

    /** Names of the models compiled into the app, in SELECT_BUILTIN_MODEL index order. */
    val builtinModels: List<String> get() = emptyList()

    /** Load built-in model [index] (the agent has range-checked it). */
    fun loadBuiltin(index: Int): BuiltinInfo =
        throw AgentException(ErrorCode.BAD_INDEX, "no built-in model $index", index.toLong())

    /** True when [opTimings] returns per-operator times. */
    val hasOpTimings: Boolean get() = false

    /** Load a model of [format] ([ModelFormat] code) whose SHA-256 the agent has already checked. */
    fun load(model: ByteArray, format: Int)

    /** Input tensor descriptions of the loaded model. */
    fun inputs(): List<TensorInfo>

    /** Output tensor descriptions of the loaded model. */
    fun outputs(): List<TensorInfo>

    /** Copy raw bytes into input [index]; size equals inputs()[index].byteSize. */
    fun setInput(index: Int, data: ByteArray)

    /** Run one inference on the current inputs. */
    fun run()

    /** Raw bytes of output [index] after the last run. */
    fun output(index: Int): ByteArray

    /** Memory figures after the last run. */
    fun memory(): MemoryStats

    /** Called after the warm-ups, before the timed runs: start collecting per-operator times afresh. */
    fun startOpProfiling() {}

    /** Mean per-operator nanoseconds over the runs since [startOpProfiling], or null without a profiler hook. */
    fun opTimings(): List<OpTiming>? = null

    /** Free the model; the agent may load another one afterwards. */
    fun unload() {}
}

/** What MODEL_INFO reports for a built-in model: its SHA-256 (32 zero bytes when unknown) and size. */
class BuiltinInfo(val sha256: ByteArray, val bytes: Long)

/** A failure the agent reports to the host with a protocol error [code]. */
class AgentException(val code: Int, message: String, val detail: Long = 0) : Exception(message)

/**
 * Several backends behind one agent, chosen by the uploaded model's format: the host's adb:// and ios://
 * transports start the agent before they know the artifact, so one agent must take `.pte` and `.tflite` alike.
 */
class FormatDispatchBackend(private val backends: List<AgentBackend>) : AgentBackend {
    private var active: AgentBackend? = null

    override val runtime: String
        get() = active?.runtime ?: backends.joinToString("+") { it.runtime }

    override val formats: Set<Int> = backends.flatMap { it.formats }.toSet()

    // Before a load (HELLO's caps) the agent can time ops if any backend can; after it, the loaded one decides.
    override val hasOpTimings: Boolean
        get() = active?.hasOpTimings ?: backends.any { it.hasOpTimings }

    override val builtinModels: List<String>
        get() = backends.flatMap { it.builtinModels }

    override fun loadBuiltin(index: Int): BuiltinInfo {
        unload()
        var i = index
        for (b in backends) {
            if (i < b.builtinModels.size) {
                val info = b.loadBuiltin(i)
                active = b
                return info
            }
            i -= b.builtinModels.size
        }
        throw AgentException(ErrorCode.BAD_INDEX, "no built-in model $index", index.toLong())
    }

    private fun current(): AgentBackend = active ?: throw AgentException(ErrorCode.NO_MODEL, "no model loaded")

    override fun load(model: ByteArray, format: Int) {
        unload()
        val b = backends.firstOrNull { format in it.formats }
            ?: throw AgentException(ErrorCode.UNSUPPORTED, "no backend for model format $format", format.toLong())
        b.load(model, format)
        active = b
    }

    override fun inputs(): List<TensorInfo> = current().inputs()
    override fun outputs(): List<TensorInfo> = current().outputs()
    override fun setInput(index: Int, data: ByteArray) = current().setInput(index, data)
    override fun run() = current().run()
    override fun output(index: Int): ByteArray = current().output(index)
    override fun memory(): MemoryStats = active?.memory() ?: backends.first().memory()
    override fun startOpProfiling() { active?.startOpProfiling() }
    override fun opTimings(): List<OpTiming>? = active?.opTimings()

    override fun unload() {
        active?.unload()
        active = null
    }
}
