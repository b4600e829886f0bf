package dev.ondevice.app

import dev.ondevice.protocol.AgentBackend
import dev.ondevice.protocol.AgentException
import dev.ondevice.protocol.ErrorCode
import dev.ondevice.protocol.MemoryStats
import dev.ondevice.protocol.ModelFormat
import dev.ondevice.protocol.TensorInfo
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest

/**
 * Runs `.pte` programs (e.g. `mitsis_executorch_int8.pte`) with the ExecuTorch Android runtime.
 *
 * ExecuTorch's Java API takes typed arrays and reports neither input shapes nor quantisation, so tensor specs
 * come from the artifact manifest that `ondevice export` writes: [manifestFor] finds it by the model's SHA-256
 * (the demo passes the manifest beside the file; the agent looks in the app's files folder, where the README's
 * `adb push` puts it). Raw protocol bytes are little-endian, like the host's numpy buffers.
 */
class ExecuTorchBackend(
    private val workDir: File,
    private val stats: DeviceStats,
    private val manifestFor: (sha256Hex: String) -> ArtifactManifest?
) : AgentBackend {
    override val runtime: String = "executorch"
    override val formats: Set<Int> = setOf(ModelFormat.EXECUTORCH)

    private var module: Module? = null
    private var manifest: ArtifactManifest? = null
    private var inputs: Array<Tensor?> = emptyArray()
    private var outputs: Array<Tensor> = emptyArray()
    private var modelBytes: Long = 0
    private var peakPss: Long = 0

    override fun load(model: ByteArray, format: Int) {
        unload()
        val sha = MessageDigest.getInstance("SHA-256").digest(model).joinToString("") { String.format("%02x", it) }
        val m = manifestFor(sha) ?: throw AgentException(
            ErrorCode.MODEL_INVALID,
            "no manifest with sha256 ${sha.take(12)}: adb push <artifact>.manifest.json to the app's files folder"
        )
        // Module.load takes a path, so the verified bytes go to app-private storage first.
        val file = File(workDir, "agent_model.pte")
        file.writeBytes(model)
        try {
            module = Module.load(file.absolutePath)
        } catch (e: RuntimeException) {
            throw AgentException(ErrorCode.MODEL_INVALID, "ExecuTorch could not load the program: ${e.message}")
        }
        manifest = m
        modelBytes = model.size.toLong()
        inputs = arrayOfNulls(m.inputs.size)
        peakPss = stats.pssBytes()
    }

    override fun inputs(): List<TensorInfo> = manifest?.inputs ?: emptyList()

    override fun outputs(): List<TensorInfo> = manifest?.outputs ?: emptyList()

    override fun setInput(index: Int, data: ByteArray) {
        val spec = inputs().getOrNull(index) ?: throw AgentException(ErrorCode.BAD_INDEX, "no input $index")
        inputs[index] = toTensor(spec, data)
    }

    override fun run() {
        val mod = module ?: throw AgentException(ErrorCode.NO_MODEL, "no model loaded")
        val args = inputs.mapIndexed { i, t ->
            EValue.from(t ?: throw AgentException(ErrorCode.BAD_INDEX, "input $i was never set"))
        }
        try {
            outputs = mod.forward(*args.toTypedArray()).map { it.toTensor() }.toTypedArray()
        } catch (e: RuntimeException) {
            throw AgentException(ErrorCode.INVOKE_FAILED, "ExecuTorch forward failed: ${e.message}")
        }
    }

    override fun output(index: Int): ByteArray {
        val t = outputs.getOrNull(index) ?: throw AgentException(ErrorCode.BAD_INDEX, "no output $index")
        return fromTensor(t)
    }

    override fun memory(): MemoryStats {
        peakPss = maxOf(peakPss, stats.pssBytes())
        return MemoryStats(peakRamBytes = peakPss, arenaBytes = stats.nativeHeapBytes(), flashBytes = modelBytes)
    }

    override fun unload() {
        module?.destroy()
        module = null
        outputs = emptyArray()
    }

    private fun toTensor(spec: TensorInfo, data: ByteArray): Tensor {
        if (data.size != spec.byteSize) {
            throw AgentException(ErrorCode.BAD_INDEX, "input ${spec.name} needs ${spec.byteSize} bytes, got ${data.size}")
        }
        val shape = LongArray(spec.shape.size) { spec.shape[it].toLong() }
        val buf = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)
        return when (spec.dtype) {
            "int8" -> Tensor.fromBlob(data, shape)
            "uint8" -> Tensor.fromBlobUnsigned(data, shape)
            "float32" -> FloatArray(data.size / 4).also { buf.asFloatBuffer().get(it) }.let { Tensor.fromBlob(it, shape) }
            "int32" -> IntArray(data.size / 4).also { buf.asIntBuffer().get(it) }.let { Tensor.fromBlob(it, shape) }
            "int64" -> LongArray(data.size / 8).also { buf.asLongBuffer().get(it) }.let { Tensor.fromBlob(it, shape) }
            else -> throw AgentException(ErrorCode.UNSUPPORTED, "ExecuTorch input dtype ${spec.dtype} is not handled")
        }
    }

    private fun fromTensor(t: Tensor): ByteArray = when (t.dtype()) {
        org.pytorch.executorch.DType.FLOAT -> t.dataAsFloatArray.let { a ->
            ByteBuffer.allocate(a.size * 4).order(ByteOrder.LITTLE_ENDIAN).also { it.asFloatBuffer().put(a) }.array()
        }
        org.pytorch.executorch.DType.INT8 -> t.dataAsByteArray
        org.pytorch.executorch.DType.UINT8 -> t.dataAsUnsignedByteArray
        org.pytorch.executorch.DType.INT32 -> t.dataAsIntArray.let { a ->
            ByteBuffer.allocate(a.size * 4).order(ByteOrder.LITTLE_ENDIAN).also { it.asIntBuffer().put(a) }.array()
        }
        org.pytorch.executorch.DType.INT64 -> t.dataAsLongArray.let { a ->
            ByteBuffer.allocate(a.size * 8).order(ByteOrder.LITTLE_ENDIAN).also { it.asLongBuffer().put(a) }.array()
        }
        else -> throw AgentException(ErrorCode.UNSUPPORTED, "ExecuTorch output dtype ${t.dtype()} is not handled")
    }
}
