package dev.ondevice.frontend

import dev.ondevice.protocol.FeaturePipeline
import dev.ondevice.protocol.TensorInfo
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Plugs the Kotlin frontend into the protocol agent for SET_MODE 1 (frontend + model) and 2 (frontend only). */
class FrontendPipeline : FeaturePipeline {
    override val samples: Int = FrontendTables.CLIP_SAMPLES

    override fun features(pcm: ShortArray): IntArray = Frontend.computeFeatures(pcm)

    override fun modelInput(features: IntArray, spec: TensorInfo): ByteArray = when (spec.dtype) {
        "int8" -> Frontend.quantizeFeatures(features, spec.scale, spec.zeroPoint)
        "float32" -> Frontend.toModelInput(features).let { f ->
            ByteBuffer.allocate(f.size * 4).order(ByteOrder.LITTLE_ENDIAN).also { it.asFloatBuffer().put(f) }.array()
        }
        else -> throw IllegalArgumentException("model input dtype ${spec.dtype} is not a frontend output")
    }
}
