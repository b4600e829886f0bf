package dev.ondevice.app

import dev.ondevice.protocol.AgentBackend
import dev.ondevice.protocol.AgentException
import dev.ondevice.protocol.ErrorCode
import dev.ondevice.protocol.MemoryStats
import dev.ondevice.protocol.ModelFormat
import dev.ondevice.protocol.TensorInfo
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Runs `.tflite` models (e.g. the full-int8 `mitsis_tflite_int8.tflite`) with the LiteRT Interpreter API.
 * LiteRT reports names, dtypes, shapes and quantisation itself, so no manifest is needed here.
 */
class LiteRtBackend(
    private val workDir: File,
    private val stats: DeviceStats,
    private val threads: Int = 1
) : AgentBackend {
    override val runtime: String = "litert"
    override val formats: Set<Int> = setOf(ModelFormat.TFLITE)

    private var interpreter: Interpreter? = null
    private var inputBuffers: Array<ByteBuffer> = emptyArray()
    private var outputBuffers: Array<ByteBuffer> = emptyArray()
    private var modelBytes: Long = 0
    private var peakPss: Long = 0

    override fun load(model: ByteArray, format: Int) {
        unload()
        val file = File(workDir, "agent_model.tflite")
        file.writeBytes(model)
        // One thread by default: the figure users compare against MCU and the host sim.
        val options = Interpreter.Options().setNumThreads(threads)
        val interp = try {
            Interpreter(file, options)
        } catch (e: IllegalArgumentException) {
            throw AgentException(ErrorCode.MODEL_INVALID, "LiteRT could not load the model: ${e.message}")
        }
        interp.allocateTensors()
        inputBuffers = Array(interp.inputTensorCount) { direct(interp.getInputTensor(it).numBytes()) }
        outputBuffers = Array(interp.outputTensorCount) { direct(interp.getOutputTensor(it).numBytes()) }
        interpreter = interp
        modelBytes = model.size.toLong()
        peakPss = stats.pssBytes()
    }

    override fun inputs(): List<TensorInfo> {
        val interp = interpreter ?: return emptyList()
        return (0 until interp.inputTensorCount).map { info(interp.getInputTensor(it)) }
    }

    override fun outputs(): List<TensorInfo> {
        val interp = interpreter ?: return emptyList()
        return (0 until interp.outputTensorCount).map { info(interp.getOutputTensor(it)) }
    }

    override fun setInput(index: Int, data: ByteArray) {
        val buf = inputBuffers.getOrNull(index) ?: throw AgentException(ErrorCode.BAD_INDEX, "no input $index")
        if (data.size != buf.capacity()) {
            throw AgentException(ErrorCode.BAD_INDEX, "input $index needs ${buf.capacity()} bytes, got ${data.size}")
        }
        buf.clear()
        buf.put(data)
        buf.rewind()
    }

    override fun run() {
        val interp = interpreter ?: throw AgentException(ErrorCode.NO_MODEL, "no model loaded")
        val outs = HashMap<Int, Any>()
        outputBuffers.forEachIndexed { i, b -> b.clear(); outs[i] = b }
        inputBuffers.forEach { it.rewind() }
        try {
            interp.runForMultipleInputsOutputs(inputBuffers.map { it as Any }.toTypedArray(), outs)
        } catch (e: RuntimeException) {
            throw AgentException(ErrorCode.INVOKE_FAILED, "LiteRT invoke failed: ${e.message}")
        }
    }

    override fun output(index: Int): ByteArray {
        val buf = outputBuffers.getOrNull(index) ?: throw AgentException(ErrorCode.BAD_INDEX, "no output $index")
        val out = ByteArray(buf.capacity())
        buf.rewind()
        buf.get(out)
        return out
    }

    override fun memory(): MemoryStats {
        peakPss = maxOf(peakPss, stats.pssBytes())
        return MemoryStats(peakRamBytes = peakPss, arenaBytes = stats.nativeHeapBytes(), flashBytes = modelBytes)
    }

    override fun unload() {
        interpreter?.close()
        interpreter = null
    }

    private fun direct(n: Int): ByteBuffer = ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder())

    private fun info(t: org.tensorflow.lite.Tensor): TensorInfo {
        val q = t.quantizationParams()
        return TensorInfo(t.name(), dtypeName(t.dataType()), t.shape(), q.scale.toDouble(), q.zeroPoint)
    }

    private fun dtypeName(d: DataType): String = when (d) {
        DataType.FLOAT32 -> "float32"
        DataType.INT8 -> "int8"
        DataType.UINT8 -> "uint8"
        DataType.INT16 -> "int16"
        DataType.INT32 -> "int32"
        DataType.INT64 -> "int64"
        DataType.BOOL -> "bool"
        else -> d.name.toLowerCase()
    }
}
