package dev.ondevice.protocol

import java.security.MessageDigest

/** The device facts the agent announces in its HELLO reply. */
class DeviceDescription(
    val device: String,
    val board: String,
    val clockHz: Long = 0,
    val ramBytes: Long = Proto.UNKNOWN_U32,
    val flashBytes: Long = Proto.UNKNOWN_U32,
    val bootId: Long = 0
)

/**
 * The on-device audio frontend for SET_MODE 1 and 2. The apps wire the Kotlin/Swift twin of `ondevice.features`.
 */
interface FeaturePipeline {
    /** Input samples (int16 mono, 16 kHz) the frontend expects: the audio input is this many * 2 bytes. */
    val samples: Int

    /** int16 PCM -> uint16 feature map, flattened row-major. */
    fun features(pcm: ShortArray): IntArray

    /** Feature map -> the bytes of the model input [spec] (int8 quantised or float32). */
    fun modelInput(features: IntArray, spec: TensorInfo): ByteArray
}

/**
 * Watches RUN from outside the timed region, e.g. to sample battery current on a phone. The line [runFinished]
 * returns is sent as a LOG frame right after RUN's final frame, so it lands in the host's device log.
 */
interface RunObserver {
    fun runStarted()

    fun runFinished(runs: Int): String?
}

/**
 * The protocol state machine of PROTOCOL.md, shared by every JVM agent (Android service, JVM test agent).
 *
 * Feed it decoded frames with [handle]; it writes complete wire frames through [send]. It is single-threaded:
 * the transport calls [handle] from one reader thread, and RUN blocks that thread, as the spec allows.
 * Timing uses [clockNs] (monotonic nanoseconds) and reports microseconds by default.
 */
class Agent(
    private val backend: AgentBackend,
    private val description: DeviceDescription,
    private val send: (ByteArray) -> Unit,
    initialBootId: Long = description.bootId,
    private val pipeline: FeaturePipeline? = null,
    private val maxRuns: Int = 10000,
    private val maxModelBytes: Int = 256 * 1024 * 1024,
    private val clockNs: () -> Long = { System.nanoTime() },
    private val onReset: () -> Unit = {},
    private val observer: RunObserver? = null
) {
    var bootId: Long = initialBootId
        private set

    private var txMax = Proto.MIN_PAYLOAD

    // Upload in progress (LOAD_MODEL_*).
    private var upTotal = -1
    private var upSha = ByteArray(32)
    private var upName = ""
    private var upFormat = ModelFormat.RAW
    private var upBuf = ByteArray(0)
    private var upReceived = 0
    private var upDone = false

    // Loaded model (uploaded or built in).
    private var loaded = false
    private var modelBytes = 0L
    private var modelName = ""
    private var modelSha = ByteArray(32)
    private var inputs: List<TensorInfo> = emptyList()
    private var outputs: List<TensorInfo> = emptyList()
    private var inputBufs: Array<ByteArray> = emptyArray()
    private var audio = ByteArray(0)
    private var mode = Mode.MODEL

    // Last RUN, kept for GET_TIMINGS, GET_OUTPUT and RUN retries.
    private var timings = LongArray(0)
    private var timingUnit = TimerUnit.US
    private var lastOutputs: Array<ByteArray> = emptyArray()
    private var lastFeatures: ByteArray? = null
    private var opTimes: List<OpTiming>? = null

    // Dedup of non-idempotent requests (section 3): the last executed request and its stored reply.
    private var lastSeq = -1
    private var lastType = -1
    private var lastReply: ByteArray? = null

    val caps: Int
        get() {
            var c = Caps.LOAD_MODEL or Caps.MEMORY_STATS or Caps.GET_OUTPUT or Caps.RESET or Caps.LOG
            if (pipeline != null) c = c or Caps.FRONTEND
            if (backend.hasOpTimings) c = c or Caps.OP_TIMINGS
            if (backend.builtinModels.isNotEmpty()) c = c or Caps.BUILTIN_MODELS
            return c
        }

    /** Announce a (re)boot: a leading 0x00 ends any garbage the host holds, then BOOT. */
    fun boot(reason: Int = ResetReason.POWER_ON, banner: String = "ondevice ${backend.runtime} agent ${description.board}") {
        send(ByteArray(1))
        send(Messages.encode(MsgType.BOOT, 0, mapOf("reset_reason" to reason, "boot_id" to bootId, "banner" to banner.toByteArray())))
    }

    /** End of the session: free the model. */
    fun close() {
        backend.unload()
        clearModel()
    }

    /** Send a LOG frame (never called during RUN's timed region). */
    fun log(level: Int, message: String) {
        val b = message.toByteArray(Charsets.UTF_8)
        val n = minOf(b.size, txMax - 1)
        send(FrameCodec.encode(Frame(MsgType.LOG, 0, PayloadWriter().u8(level).bytes(b, 0, n).toByteArray())))
    }

    /** Handle one decoded frame from the host. */
    fun handle(frame: Frame) {
        if (frame.version != Proto.VERSION) {
            sendError(frame.seq, ErrorCode.UNSUPPORTED_VERSION, Proto.VERSION.toLong(), "protocol version ${frame.version}")
            return
        }
        // Frames the host never sends to a device (replies, BOOT/LOG/ERROR) are ignored.
        if (frame.type and Proto.REPLY_BIT != 0 || frame.type >= 0x70) return
        val t = frame.type
        if (Messages.schema(t) == null) {
            sendError(frame.seq, ErrorCode.UNKNOWN_TYPE, t.toLong(), "unknown message type")
            return
        }
        val once = t == MsgType.RUN || t == MsgType.RESET || t == MsgType.LOAD_MODEL_BEGIN
        if (once && frame.seq == lastSeq && t == lastType) {
            // A retry of a non-idempotent request: answer again, never execute again.
            val stored = lastReply
            when {
                stored != null -> send(stored)
                t == MsgType.RUN && timings.isNotEmpty() -> streamTimings(MsgType.RUN, frame.seq, 0, timings.size)
                else -> sendError(frame.seq, ErrorCode.BAD_SEQ, 0, "the reply to that request is gone")
            }
            return
        }
        lastSeq = frame.seq
        lastType = t
        lastReply = null
        try {
            val f = Messages.unpack(t, frame.payload)
            dispatch(t, frame.seq, f)
        } catch (e: AgentException) {
            val w = sendError(frame.seq, e.code, e.detail, e.message ?: "")
            if (once) lastReply = w
        } catch (e: RuntimeException) {
            // A backend bug must not kill the agent: the host gets INTERNAL and can reset.
            val w = sendError(frame.seq, ErrorCode.INTERNAL, 0, e.toString())
            if (once) lastReply = w
        }
    }

    private fun dispatch(t: Int, seq: Int, f: Map<String, Any>) {
        when (t) {
            MsgType.HELLO -> hello(seq, f)
            MsgType.PING -> {
                val data = f["data"] as ByteArray
                if (data.size > txMax) throw AgentException(ErrorCode.TOO_LARGE, "ping of ${data.size} bytes")
                reply(t, seq, mapOf("data" to data))
            }
            MsgType.RESET -> reset(seq)
            MsgType.LOAD_MODEL_BEGIN -> loadBegin(seq, f)
            MsgType.LOAD_MODEL_CHUNK -> loadChunk(seq, f)
            MsgType.LOAD_MODEL_END -> loadEnd(seq)
            MsgType.SELECT_BUILTIN_MODEL -> selectBuiltin(seq, f)
            MsgType.MODEL_INFO -> modelInfo(seq)
            MsgType.SET_MODE -> setMode(seq, (f["mode"] as Long).toInt())
            MsgType.SET_INPUT -> setInput(seq, f)
            MsgType.RUN -> run(seq, f)
            MsgType.GET_TIMINGS -> getTimings(seq, f)
            MsgType.GET_OUTPUT -> getOutput(seq, f)
            MsgType.GET_MEMORY -> getMemory(seq)
            MsgType.GET_OP_TIMINGS -> getOpTimings(seq, f)
            else -> throw AgentException(ErrorCode.UNKNOWN_TYPE, "unknown type $t", t.toLong())
        }
    }

    private fun hello(seq: Int, f: Map<String, Any>) {
        val hostMax = (f["host_max_payload"] as Long).toInt()
        txMax = maxOf(Proto.MIN_PAYLOAD, minOf(Proto.MAX_PAYLOAD, hostMax))
        reply(MsgType.HELLO, seq, mapOf(
            "version" to minOf(Proto.VERSION.toLong(), f["host_version"] as Long),
            "caps" to caps,
            "max_payload" to txMax,
            // Chunks land in RAM at explicit offsets, so many can be in flight over TCP.
            "rx_window" to 8,
            "max_runs" to maxRuns,
            "timer_units" to ((1 shl TimerUnit.US) or (1 shl TimerUnit.NS)),
            "default_unit" to TimerUnit.US,
            "clock_hz" to description.clockHz,
            "ram_bytes" to description.ramBytes,
            "flash_bytes" to description.flashBytes,
            "builtin_models" to backend.builtinModels.size,
            "boot_id" to bootId,
            "device" to description.device,
            "runtime" to backend.runtime,
            "board" to description.board
        ))
    }

    private fun reset(seq: Int) {
        lastReply = reply(MsgType.RESET, seq, emptyMap())
        backend.unload()
        clearModel()
        upTotal = -1
        upDone = false
        mode = Mode.MODEL
        // A software reset is a new boot: the host expects BOOT and a new boot id.
        bootId = (bootId + 1) and 0xFFFFFFFFL
        onReset()
        boot(ResetReason.SOFTWARE)
    }

    private fun loadBegin(seq: Int, f: Map<String, Any>) {
        val total = f["total_bytes"] as Long
        val format = (f["format"] as Long).toInt()
        if (total > maxModelBytes) {
            throw AgentException(ErrorCode.TOO_LARGE, "model of $total bytes > $maxModelBytes", maxModelBytes.toLong())
        }
        if (format !in backend.formats) {
            throw AgentException(ErrorCode.UNSUPPORTED, "${backend.runtime} cannot load model format $format", format.toLong())
        }
        backend.unload()
        clearModel()
        upTotal = total.toInt()
        upSha = f["sha256"] as ByteArray
        upName = f["name"] as String
        upFormat = format
        upBuf = ByteArray(upTotal)
        upReceived = 0
        upDone = false
        lastReply = reply(MsgType.LOAD_MODEL_BEGIN, seq, emptyMap())
    }

    private fun loadChunk(seq: Int, f: Map<String, Any>) {
        if (upTotal < 0) throw AgentException(ErrorCode.BAD_OFFSET, "no LOAD_MODEL_BEGIN", 0)
        val offset = f["offset"] as Long
        val data = f["data"] as ByteArray
        if (offset + data.size > upTotal) {
            throw AgentException(ErrorCode.TOO_LARGE, "chunk ends at ${offset + data.size} > $upTotal", upTotal.toLong())
        }
        if (offset > upReceived) {
            throw AgentException(ErrorCode.BAD_OFFSET, "chunk at $offset, holding $upReceived", upReceived.toLong())
        }
        val end = offset.toInt() + data.size
        if (end > upReceived) {
            System.arraycopy(data, 0, upBuf, offset.toInt(), data.size)
            upReceived = end
        }
        reply(MsgType.LOAD_MODEL_CHUNK, seq, mapOf("received" to upReceived.toLong()))
    }

    private fun loadEnd(seq: Int) {
        if (upDone) {
            reply(MsgType.LOAD_MODEL_END, seq, emptyMap())
            return
        }
        if (upTotal < 0 || upReceived != upTotal) {
            throw AgentException(ErrorCode.BAD_OFFSET, "holding $upReceived of $upTotal bytes", maxOf(upReceived, 0).toLong())
        }
        val sha = MessageDigest.getInstance("SHA-256").digest(upBuf)
        if (!sha.contentEquals(upSha)) {
            upTotal = -1
            upBuf = ByteArray(0)
            throw AgentException(ErrorCode.SHA_MISMATCH, "SHA-256 of the upload differs")
        }
        backend.load(upBuf, upFormat)
        adopt(upName, sha, upBuf.size.toLong())
        upDone = true
        upBuf = ByteArray(0)
        reply(MsgType.LOAD_MODEL_END, seq, emptyMap())
        log(1, "loaded $modelName: $modelBytes bytes on ${backend.runtime}")
    }

    private fun selectBuiltin(seq: Int, f: Map<String, Any>) {
        val names = backend.builtinModels
        if (names.isEmpty()) throw AgentException(ErrorCode.UNSUPPORTED, "this agent has no built-in models")
        val want = (f["index"] as Long).toInt()
        val name = f["name"] as String
        // 0xFF selects by name: exact first, then case-insensitively.
        val index = if (want != 0xFF) want else names.indexOf(name).let { if (it >= 0) it else names.indexOfFirst { n -> n.equals(name, ignoreCase = true) } }
        if (index < 0 || index >= names.size) {
            throw AgentException(ErrorCode.BAD_INDEX, "no built-in model ${if (want == 0xFF) name else want.toString()}", names.size.toLong())
        }
        backend.unload()
        clearModel()
        upTotal = -1
        upDone = false
        val info = backend.loadBuiltin(index)
        adopt(names[index], info.sha256, info.bytes)
        reply(MsgType.SELECT_BUILTIN_MODEL, seq, mapOf("index" to index, "name" to names[index]))
    }

    /** Take over the model the backend just loaded. */
    private fun adopt(name: String, sha: ByteArray, bytes: Long) {
        loaded = true
        modelName = name
        modelSha = sha
        modelBytes = bytes
        inputs = backend.inputs()
        outputs = backend.outputs()
        inputBufs = Array(inputs.size) { ByteArray(inputs[it].byteSize) }
        mode = Mode.MODEL
    }

    private fun clearModel() {
        loaded = false
        modelBytes = 0
        inputs = emptyList()
        outputs = emptyList()
        inputBufs = emptyArray()
        timings = LongArray(0)
        lastOutputs = emptyArray()
        lastFeatures = null
        opTimes = null
    }

    private fun requireModel() {
        if (!loaded) throw AgentException(ErrorCode.NO_MODEL, "no model loaded")
    }

    private fun modelInfo(seq: Int) {
        requireModel()
        val arena = backend.memory().arenaBytes
        val all = inputs + outputs
        // The reply must fit one frame: shorten tensor names until it does.
        var keep = 32
        while (true) {
            val ts = all.map { TensorInfo(it.name.take(keep), it.dtype, it.shape, it.scale, it.zeroPoint) }
            val values = mapOf(
                "sha256" to modelSha, "model_bytes" to modelBytes,
                "arena_bytes" to u32(arena), "name" to modelName.take(maxOf(keep, 8)),
                "n_inputs" to inputs.size, "n_outputs" to outputs.size, "tensors" to ts
            )
            val payload = Messages.pack(MsgType.reply(MsgType.MODEL_INFO), values)
            if (payload.size <= txMax || keep == 0) {
                if (payload.size > txMax) throw AgentException(ErrorCode.TOO_LARGE, "model has too many tensors for one frame")
                send(FrameCodec.encode(Frame(MsgType.reply(MsgType.MODEL_INFO), seq, payload)))
                return
            }
            keep /= 2
        }
    }

    private fun setMode(seq: Int, m: Int) {
        if (m != Mode.MODEL && (pipeline == null || (m != Mode.FRONTEND_MODEL && m != Mode.FRONTEND))) {
            throw AgentException(ErrorCode.UNSUPPORTED, "mode $m", m.toLong())
        }
        mode = m
        if (m != Mode.MODEL && audio.size != pipeline!!.samples * 2) audio = ByteArray(pipeline.samples * 2)
        reply(MsgType.SET_MODE, seq, mapOf("mode" to m))
    }

    private fun setInput(seq: Int, f: Map<String, Any>) {
        val index = (f["index"] as Long).toInt()
        val total = f["total"] as Long
        val offset = f["offset"] as Long
        val data = f["data"] as ByteArray
        val buf: ByteArray = if (index == Proto.AUDIO_INDEX) {
            if (pipeline == null) throw AgentException(ErrorCode.BAD_INDEX, "no audio input without a frontend", index.toLong())
            if (audio.size != pipeline.samples * 2) audio = ByteArray(pipeline.samples * 2)
            audio
        } else {
            requireModel()
            if (index >= inputBufs.size) throw AgentException(ErrorCode.BAD_INDEX, "input $index of ${inputBufs.size}", index.toLong())
            inputBufs[index]
        }
        if (total != buf.size.toLong() || offset + data.size > total) {
            throw AgentException(ErrorCode.INVALID_INPUT_SIZE, "input $index holds ${buf.size} bytes", buf.size.toLong())
        }
        System.arraycopy(data, 0, buf, offset.toInt(), data.size)
        reply(MsgType.SET_INPUT, seq, mapOf("index" to index, "end" to offset + data.size))
    }

    private fun run(seq: Int, f: Map<String, Any>) {
        val runs = f["runs"] as Long
        val warmup = f["warmup"] as Long
        var unit = (f["unit"] as Long).toInt()
        if (unit == Proto.UNIT_DEFAULT) unit = TimerUnit.US
        if (unit != TimerUnit.US && unit != TimerUnit.NS) throw AgentException(ErrorCode.UNSUPPORTED, "timer unit $unit", unit.toLong())
        if (runs < 1 || runs > maxRuns) throw AgentException(ErrorCode.BAD_PAYLOAD, "runs must be 1..$maxRuns", maxRuns.toLong())
        if (mode != Mode.FRONTEND) requireModel()
        if (mode == Mode.FRONTEND_MODEL && inputs.isEmpty()) throw AgentException(ErrorCode.BAD_INDEX, "model has no input")
        timings = LongArray(0)
        timingUnit = unit
        val n = runs.toInt()
        val stored = LongArray(n)
        for (i in 0 until warmup) invokeOnce()
        backend.startOpProfiling()
        val perFrame = (txMax - Proto.RUN_DATA_FIXED) / 8
        observer?.runStarted()
        try {
            send(runFrame(MsgType.RUN, seq, unit, n, 0, LongArray(0), more = true))
            var sentUpTo = 0
            var lastFrameNs = clockNs()
            for (i in 0 until n) {
                val ns = invokeOnce()
                stored[i] = if (unit == TimerUnit.US) ns / 1000 else ns
                val pending = i + 1 - sentUpTo
                val now = clockNs()
                val last = i == n - 1
                // A frame per full payload, or every second so the host's inactivity timeout never fires.
                if (pending == perFrame || now - lastFrameNs >= 1_000_000_000L || last) {
                    send(runFrame(MsgType.RUN, seq, unit, n, sentUpTo, stored.copyOfRange(sentUpTo, i + 1), more = !last))
                    sentUpTo = i + 1
                    lastFrameNs = now
                }
            }
        } catch (e: Exception) {
            // Stop the observer's sampling thread even when a run fails; its line is only sent for a whole RUN.
            observer?.runFinished(n)
            throw e
        }
        timings = stored
        observer?.runFinished(n)?.let { log(1, it) }
        lastOutputs = if (mode == Mode.FRONTEND) emptyArray() else Array(outputs.size) { backend.output(it) }
        opTimes = if (backend.hasOpTimings && mode != Mode.FRONTEND) {
            backend.opTimings()?.map { OpTiming(it.name, if (unit == TimerUnit.US) it.time / 1000 else it.time) }
        } else null
    }

    /** One invoke in the current mode; returns nanoseconds of the timed region. */
    private fun invokeOnce(): Long {
        if (mode == Mode.MODEL) {
            // Re-copy inputs before every invoke (PROTOCOL.md: runtimes may reuse input buffers).
            for (i in inputBufs.indices) backend.setInput(i, inputBufs[i])
            val t0 = clockNs()
            backend.run()
            return clockNs() - t0
        }
        val p = pipeline!!
        val pcm = pcmOf(audio)
        val t0 = clockNs()
        val feat = p.features(pcm)
        if (mode == Mode.FRONTEND_MODEL) {
            backend.setInput(0, p.modelInput(feat, inputs[0]))
            for (i in 1 until inputBufs.size) backend.setInput(i, inputBufs[i])
            backend.run()
        }
        val dt = clockNs() - t0
        lastFeatures = u16Bytes(feat)
        return dt
    }

    private fun getTimings(seq: Int, f: Map<String, Any>) {
        val first = f["first_index"] as Long
        val count = f["count"] as Long
        if (timings.isEmpty() || first > timings.size) {
            throw AgentException(ErrorCode.BAD_INDEX, "timings 0..${timings.size} stored", timings.size.toLong())
        }
        val end = minOf(timings.size.toLong(), first + count).toInt()
        streamTimings(MsgType.GET_TIMINGS, seq, first.toInt(), end)
    }

    private fun streamTimings(type: Int, seq: Int, first: Int, end: Int) {
        val perFrame = (txMax - Proto.RUN_DATA_FIXED) / 8
        var i = first
        do {
            val j = minOf(end, i + perFrame)
            send(runFrame(type, seq, timingUnit, timings.size, i, timings.copyOfRange(i, j), more = j < end))
            i = j
        } while (i < end)
    }

    private fun runFrame(type: Int, seq: Int, unit: Int, total: Int, first: Int, values: LongArray, more: Boolean): ByteArray {
        val p = PayloadWriter().u8(unit).u32(total.toLong()).u32(first.toLong()).u8(values.size)
        for (v in values) p.u64(v)
        return FrameCodec.encode(Frame(MsgType.reply(type), seq, p.toByteArray(), if (more) Proto.FLAG_MORE else 0))
    }

    private fun getOutput(seq: Int, f: Map<String, Any>) {
        val index = (f["index"] as Long).toInt()
        val data: ByteArray = if (index == Proto.AUDIO_INDEX) {
            lastFeatures ?: throw AgentException(ErrorCode.BAD_INDEX, "no features yet: RUN in mode 1 or 2 first", index.toLong())
        } else {
            requireModel()
            if (index >= outputs.size) throw AgentException(ErrorCode.BAD_INDEX, "output $index of ${outputs.size}", index.toLong())
            if (index >= lastOutputs.size) throw AgentException(ErrorCode.BAD_INDEX, "no outputs yet: RUN first", index.toLong())
            lastOutputs[index]
        }
        val offset = f["offset"] as Long
        val length = f["length"] as Long
        if (offset > data.size) throw AgentException(ErrorCode.BAD_INDEX, "offset $offset > ${data.size}", data.size.toLong())
        val end = if (length == Proto.UNKNOWN_U32) data.size else minOf(data.size.toLong(), offset + length).toInt()
        val per = txMax - 9
        var i = offset.toInt()
        do {
            val j = minOf(end, i + per)
            val p = PayloadWriter().u8(index).u32(data.size.toLong()).u32(i.toLong()).bytes(data, i, j - i)
            send(FrameCodec.encode(Frame(MsgType.reply(MsgType.GET_OUTPUT), seq, p.toByteArray(), if (j < end) Proto.FLAG_MORE else 0)))
            i = j
        } while (i < end)
    }

    private fun getMemory(seq: Int) {
        val m = backend.memory()
        reply(MsgType.GET_MEMORY, seq, mapOf(
            "peak_ram_bytes" to u32(m.peakRamBytes),
            "arena_total_bytes" to u32(m.arenaBytes),
            "arena_used_bytes" to u32(m.arenaBytes),
            "stack_total_bytes" to u32(-1),
            "stack_high_water_bytes" to u32(m.stackBytes),
            "flash_used_bytes" to u32(m.flashBytes),
            "model_bytes" to u32(if (loaded) modelBytes else -1),
            "heap_peak_bytes" to u32(-1)
        ))
    }

    private fun getOpTimings(seq: Int, f: Map<String, Any>) {
        if (!backend.hasOpTimings) throw AgentException(ErrorCode.UNSUPPORTED, "${backend.runtime} has no per-op timings")
        requireModel()
        // A RUN of the frontend alone (mode 2) ran no model ops: an empty list, not an error.
        val ops = opTimes ?: if (timings.isNotEmpty()) emptyList() else throw AgentException(ErrorCode.BAD_INDEX, "no op timings yet: RUN first")
        var i = (f["first_op"] as Long).toInt()
        if (i > ops.size) throw AgentException(ErrorCode.BAD_INDEX, "op $i of ${ops.size}", ops.size.toLong())
        do {
            val p = PayloadWriter()
            var j = i
            var size = 6
            while (j < ops.size && j - i < 255) {
                val entry = 8 + 1 + minOf(ops[j].name.toByteArray().size, 255)
                if (size + entry > txMax) break
                size += entry
                j++
            }
            p.u8(timingUnit).u16(ops.size).u16(i).u8(j - i)
            for (k in i until j) p.u64(ops[k].time).str8(ops[k].name)
            send(FrameCodec.encode(Frame(MsgType.reply(MsgType.GET_OP_TIMINGS), seq, p.toByteArray(), if (j < ops.size) Proto.FLAG_MORE else 0)))
            i = j
        } while (i < ops.size)
    }

    private fun reply(type: Int, seq: Int, values: Map<String, Any>): ByteArray {
        val wire = Messages.encode(MsgType.reply(type), seq, values)
        send(wire)
        return wire
    }

    private fun sendError(seq: Int, code: Int, detail: Long, message: String): ByteArray {
        val msg = message.toByteArray(Charsets.UTF_8)
        val p = PayloadWriter().u16(code).u32(detail).bytes(msg, 0, minOf(msg.size, txMax - 6))
        val wire = FrameCodec.encode(Frame(MsgType.ERROR, seq, p.toByteArray()))
        send(wire)
        return wire
    }

    private fun u32(v: Long): Long = when {
        v < 0 -> Proto.UNKNOWN_U32
        v >= Proto.UNKNOWN_U32 -> Proto.UNKNOWN_U32 - 1
        else -> v
    }

    private fun pcmOf(b: ByteArray): ShortArray =
        ShortArray(b.size / 2) { ((b[2 * it].toInt() and 0xFF) or (b[2 * it + 1].toInt() shl 8)).toShort() }

    private fun u16Bytes(v: IntArray): ByteArray {
        val out = ByteArray(v.size * 2)
        for (i in v.indices) {
            out[2 * i] = v[i].toByte()
            out[2 * i + 1] = (v[i] ushr 8).toByte()
        }
        return out
    }
}
