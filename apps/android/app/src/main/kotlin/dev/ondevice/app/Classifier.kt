package dev.ondevice.app

import dev.ondevice.frontend.Frontend
import dev.ondevice.protocol.AgentBackend
import dev.ondevice.protocol.ModelFormat
import dev.ondevice.protocol.TensorInfo
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Result of one demo inference, with the two latencies users care about kept apart. */
class Classification(
    val label: String,
    val score: Float,
    val scores: FloatArray,
    val frontendMs: Double,
    val modelMs: Double
)

/**
 * The demo pipeline: int16 audio -> integer frontend -> model input (float or int8, from the manifest)
 * -> backend -> label. Uses the same [AgentBackend] the profiling agent drives.
 */
class Classifier(private val model: File, private val backend: AgentBackend, labels: List<String>) {
    private val labels: List<String> = if (labels.isNotEmpty()) labels else DEFAULT_LABELS
    private val input: TensorInfo
    private val output: TensorInfo

    init {
        backend.load(model.readBytes(), if (model.name.endsWith(".pte")) ModelFormat.EXECUTORCH else ModelFormat.TFLITE)
        input = backend.inputs().first()
        output = backend.outputs().first()
    }

    fun classify(pcm: ShortArray): Classification {
        val t0 = System.nanoTime()
        val feat = Frontend.computeFeatures(pcm)
        val bytes = when (input.dtype) {
            // Integer path: identical bytes to the C and Python twins (docs/CONTRACTS.md, contract 2).
            "int8" -> Frontend.quantizeFeatures(feat, input.scale, input.zeroPoint)
            "float32" -> Frontend.toModelInput(feat).let { f ->
                ByteBuffer.allocate(f.size * 4).order(ByteOrder.LITTLE_ENDIAN).also { it.asFloatBuffer().put(f) }.array()
            }
            else -> throw IllegalStateException("model input dtype ${input.dtype} is not a frontend output")
        }
        val t1 = System.nanoTime()
        backend.setInput(0, bytes)
        backend.run()
        val raw = backend.output(0)
        val t2 = System.nanoTime()
        val scores = toFloats(raw, output)
        var best = 0
        for (i in scores.indices) if (scores[i] > scores[best]) best = i
        return Classification(
            label = labels.getOrElse(best) { "class $best" },
            score = scores[best],
            scores = scores,
            frontendMs = (t1 - t0) / 1e6,
            modelMs = (t2 - t1) / 1e6
        )
    }

    fun close() = backend.unload()

    private fun toFloats(raw: ByteArray, spec: TensorInfo): FloatArray = when (spec.dtype) {
        "float32" -> FloatArray(raw.size / 4).also { ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) }
        // Dequantise with the output's own scale so int8 and float models print comparable scores.
        "int8" -> FloatArray(raw.size) { ((raw[it].toInt() - spec.zeroPoint) * spec.scale).toFloat() }
        "uint8" -> FloatArray(raw.size) { (((raw[it].toInt() and 0xFF) - spec.zeroPoint) * spec.scale).toFloat() }
        else -> throw IllegalStateException("model output dtype ${spec.dtype} is not handled by the demo")
    }

    companion object {
        /** The order of `ondevice.data` labels (docs/CONTRACTS.md, contract 1). */
        val DEFAULT_LABELS = listOf("neutral", "happy", "sad", "angry")
    }
}
