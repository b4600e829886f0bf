package dev.ondevice.protocol

/**
 * Payload layouts of every message, written once as field schemas (the same table as the host codec's SCHEMAS).
 *
 * Values: integers as Long, sha256 and bytes as ByteArray, str8 as String, u64[] as List<Long>,
 * tensors as List<TensorInfo>, ops as List<OpTiming>. Fields are only ever appended, so trailing bytes
 * beyond a schema are ignored when reading.
 */
object Messages {
    class Field(val name: String, val kind: String)

    private fun f(vararg pairs: Pair<String, String>): List<Field> = pairs.map { Field(it.first, it.second) }

    private val RUN_DATA = f("unit" to "u8", "total_runs" to "u32", "first_index" to "u32", "count" to "u8", "timings" to "u64[]")

    private val requests: Map<Int, List<Field>> = mapOf(
        MsgType.HELLO to f("host_version" to "u8", "host_max_payload" to "u16"),
        MsgType.PING to f("data" to "bytes"),
        MsgType.RESET to f(),
        MsgType.LOAD_MODEL_BEGIN to f("total_bytes" to "u32", "format" to "u8", "sha256" to "sha256", "name" to "str8"),
        MsgType.LOAD_MODEL_CHUNK to f("offset" to "u32", "data" to "bytes"),
        MsgType.LOAD_MODEL_END to f(),
        MsgType.SELECT_BUILTIN_MODEL to f("index" to "u8", "name" to "str8"),
        MsgType.MODEL_INFO to f(),
        MsgType.SET_MODE to f("mode" to "u8"),
        MsgType.SET_INPUT to f("index" to "u8", "total" to "u32", "offset" to "u32", "data" to "bytes"),
        MsgType.RUN to f("runs" to "u32", "warmup" to "u32", "unit" to "u8"),
        MsgType.GET_TIMINGS to f("first_index" to "u32", "count" to "u32"),
        MsgType.GET_OUTPUT to f("index" to "u8", "offset" to "u32", "length" to "u32"),
        MsgType.GET_MEMORY to f(),
        MsgType.GET_OP_TIMINGS to f("first_op" to "u16"),
        MsgType.BOOT to f("reset_reason" to "u8", "boot_id" to "u32", "banner" to "bytes"),
        MsgType.LOG to f("level" to "u8", "message" to "bytes"),
        MsgType.ERROR to f("code" to "u16", "detail" to "u32", "message" to "bytes")
    )

    private val replies: Map<Int, List<Field>> = mapOf(
        MsgType.HELLO to f(
            "version" to "u8", "caps" to "u32", "max_payload" to "u16", "rx_window" to "u8", "max_runs" to "u16",
            "timer_units" to "u8", "default_unit" to "u8", "clock_hz" to "u32", "ram_bytes" to "u32",
            "flash_bytes" to "u32", "builtin_models" to "u8", "boot_id" to "u32", "device" to "str8",
            "runtime" to "str8", "board" to "str8"
        ),
        MsgType.PING to f("data" to "bytes"),
        MsgType.RESET to f(),
        MsgType.LOAD_MODEL_BEGIN to f(),
        MsgType.LOAD_MODEL_CHUNK to f("received" to "u32"),
        MsgType.LOAD_MODEL_END to f(),
        MsgType.SELECT_BUILTIN_MODEL to f("index" to "u8", "name" to "str8"),
        MsgType.MODEL_INFO to f(
            "sha256" to "sha256", "model_bytes" to "u32", "arena_bytes" to "u32", "name" to "str8",
            "n_inputs" to "u8", "n_outputs" to "u8", "tensors" to "tensors"
        ),
        MsgType.SET_MODE to f("mode" to "u8"),
        MsgType.SET_INPUT to f("index" to "u8", "end" to "u32"),
        MsgType.RUN to RUN_DATA,
        MsgType.GET_TIMINGS to RUN_DATA,
        MsgType.GET_OUTPUT to f("index" to "u8", "total" to "u32", "offset" to "u32", "data" to "bytes"),
        MsgType.GET_MEMORY to f(
            "peak_ram_bytes" to "u32", "arena_total_bytes" to "u32", "arena_used_bytes" to "u32",
            "stack_total_bytes" to "u32", "stack_high_water_bytes" to "u32", "flash_used_bytes" to "u32",
            "model_bytes" to "u32", "heap_peak_bytes" to "u32"
        ),
        MsgType.GET_OP_TIMINGS to f("unit" to "u8", "total_ops" to "u16", "first_op" to "u16", "count" to "u8", "ops" to "ops")
    )

    /** The schema of frame [type]; null for a type this agent does not know. */
    fun schema(type: Int): List<Field>? {
        val isReply = type and Proto.REPLY_BIT != 0 && type != MsgType.ERROR
        return if (isReply) replies[type and 0x7F] else requests[type]
    }

    fun pack(type: Int, values: Map<String, Any>): ByteArray {
        val fields = schema(type) ?: throw IllegalArgumentException("no schema for type $type")
        val w = PayloadWriter()
        for (fd in fields) {
            val v = values[fd.name]
            when (fd.kind) {
                "u8" -> w.u8(num(v).toInt())
                "u16" -> w.u16(num(v).toInt())
                "u32" -> w.u32(num(v))
                "u64" -> w.u64(num(v))
                "i32" -> w.i32(num(v).toInt())
                "f32" -> w.f32(if (v == null) 0f else (v as Number).toFloat())
                "sha256" -> w.sha256(v as? ByteArray ?: ByteArray(32))
                "str8" -> w.str8(v as? String ?: "")
                "bytes" -> w.bytes(v as? ByteArray ?: ByteArray(0))
                "u64[]" -> for (t in v as List<*>) w.u64(num(t))
                "tensors" -> for (t in v as List<*>) writeTensor(w, t as TensorInfo)
                "ops" -> for (o in v as List<*>) (o as OpTiming).let { w.u64(it.time).str8(it.name) }
                else -> throw IllegalStateException("schema kind ${fd.kind}")
            }
        }
        return w.toByteArray()
    }

    fun unpack(type: Int, payload: ByteArray): Map<String, Any> {
        val fields = schema(type) ?: throw AgentException(ErrorCode.UNKNOWN_TYPE, "unknown frame type $type")
        val r = PayloadReader(payload)
        val out = LinkedHashMap<String, Any>()
        for (fd in fields) {
            out[fd.name] = when (fd.kind) {
                "u8" -> r.u8().toLong()
                "u16" -> r.u16().toLong()
                "u32" -> r.u32()
                "u64" -> r.u64()
                "i32" -> r.i32().toLong()
                "f32" -> r.f32()
                "sha256" -> r.sha256()
                "str8" -> r.str8()
                "bytes" -> r.rest()
                "u64[]" -> {
                    val n = (out["count"] as Long?)?.toInt() ?: (payload.size - r.pos) / 8
                    List(n) { r.u64() }
                }
                "tensors" -> {
                    val n = ((out["n_inputs"] as Long) + (out["n_outputs"] as Long)).toInt()
                    List(n) { readTensor(r) }
                }
                "ops" -> List((out["count"] as Long).toInt()) { val t = r.u64(); OpTiming(r.str8(), t) }
                else -> throw IllegalStateException("schema kind ${fd.kind}")
            }
        }
        return out
    }

    /** Wire bytes of one message. */
    fun encode(type: Int, seq: Int, values: Map<String, Any> = emptyMap(), flags: Int = 0): ByteArray =
        FrameCodec.encode(Frame(type, seq, pack(type, values), flags))

    private fun num(v: Any?): Long = if (v == null) 0L else (v as Number).toLong()

    // Wire layout: dtype u8, ndim u8, dims u32[ndim], scale f32, zero_point i32, name str8.
    private fun writeTensor(w: PayloadWriter, t: TensorInfo) {
        w.u8(Dtype.code(t.dtype)).u8(t.shape.size)
        for (d in t.shape) w.u32(d.toLong())
        w.f32(t.scale.toFloat()).i32(t.zeroPoint).str8(t.name)
    }

    private fun readTensor(r: PayloadReader): TensorInfo {
        val dtype = Dtype.name(r.u8())
        val ndim = r.u8()
        val shape = IntArray(ndim) { r.u32().toInt() }
        val scale = r.f32().toDouble()
        val zp = r.i32()
        return TensorInfo(r.str8(), dtype, shape, scale, zp)
    }
}
