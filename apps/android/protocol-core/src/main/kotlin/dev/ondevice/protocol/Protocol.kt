package dev.ondevice.protocol

/** Constants of profiling/PROTOCOL.md. Names and values match the host codec `ondevice.profiling.protocol`. */
object Proto {
    const val VERSION = 1
    const val HEADER_SIZE = 7 // version u8, type u8, flags u8, seq u16, payload_len u16 (little-endian)
    const val CRC_SIZE = 4
    const val MAX_PAYLOAD = 512
    const val MIN_PAYLOAD = 64
    const val MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
    const val MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) / 254 + 1
    const val FLAG_MORE = 0x01
    const val REPLY_BIT = 0x80
    const val UNKNOWN_U32 = 0xFFFFFFFFL
    const val UNIT_DEFAULT = 0xFF
    const val AUDIO_INDEX = 0xFF
    const val RUN_DATA_FIXED = 10
    const val MAX_TIMINGS_PER_FRAME = (MAX_PAYLOAD - RUN_DATA_FIXED) / 8
}

object MsgType {
    const val HELLO = 0x01
    const val PING = 0x02
    const val RESET = 0x03
    const val LOAD_MODEL_BEGIN = 0x10
    const val LOAD_MODEL_CHUNK = 0x11
    const val LOAD_MODEL_END = 0x12
    const val SELECT_BUILTIN_MODEL = 0x13
    const val MODEL_INFO = 0x14
    const val SET_MODE = 0x20
    const val SET_INPUT = 0x21
    const val RUN = 0x22
    const val GET_TIMINGS = 0x23
    const val GET_OUTPUT = 0x24
    const val GET_MEMORY = 0x25
    const val GET_OP_TIMINGS = 0x26
    const val BOOT = 0x70
    const val LOG = 0x71
    const val ERROR = 0x7F

    fun reply(type: Int): Int = type or Proto.REPLY_BIT
}

object Caps {
    const val LOAD_MODEL = 1 shl 0
    const val BUILTIN_MODELS = 1 shl 1
    const val OP_TIMINGS = 1 shl 2
    const val FRONTEND = 1 shl 3
    const val MEMORY_STATS = 1 shl 4
    const val RESET = 1 shl 5
    const val GET_OUTPUT = 1 shl 6
    const val LOG = 1 shl 7
}

object TimerUnit {
    const val US = 0
    const val CYCLES = 1
    const val INSTRUCTIONS = 2
    const val NS = 3
}

object Mode {
    const val MODEL = 0
    const val FRONTEND_MODEL = 1
    const val FRONTEND = 2
}

object ModelFormat {
    const val RAW = 0
    const val TFLITE = 1
    const val EXECUTORCH = 2
    const val COREML = 3
    const val OD_MCU = 4
}

object ResetReason {
    const val POWER_ON = 0
    const val SOFTWARE = 1
    const val WATCHDOG = 2
    const val FAULT = 3
    const val PIN = 4
    const val UNKNOWN = 0xFF
}

/** Error codes; the host decodes them with its table, so the agent only sends the code and a short detail. */
object ErrorCode {
    const val BAD_CRC = 1
    const val BAD_SEQ = 2
    const val UNKNOWN_TYPE = 3
    const val TOO_LARGE = 4
    const val NO_MODEL = 5
    const val SHA_MISMATCH = 6
    const val BUSY = 7
    const val OUT_OF_MEMORY = 8
    const val INVALID_INPUT_SIZE = 9
    const val BAD_OFFSET = 10
    const val UNSUPPORTED = 11
    const val BAD_PAYLOAD = 12
    const val UNSUPPORTED_VERSION = 13
    const val BAD_INDEX = 14
    const val INVOKE_FAILED = 15
    const val MODEL_INVALID = 16
    const val INTERNAL = 0xFF
}

/** Tensor dtype codes on the wire. */
object Dtype {
    private val names = arrayOf("float32", "int8", "uint8", "int16", "int32", "uint16", "float16", "int64", "bool", "uint32")

    fun code(name: String): Int {
        val i = names.indexOf(name)
        require(i >= 0) { "dtype $name has no protocol code" }
        return i
    }

    fun name(code: Int): String = if (code in names.indices) names[code] else "code$code"
}

/** One decoded frame. */
class Frame(
    val type: Int,
    val seq: Int,
    val payload: ByteArray = ByteArray(0),
    val flags: Int = 0,
    val version: Int = Proto.VERSION
) {
    val isReply: Boolean get() = type and Proto.REPLY_BIT != 0 && type != MsgType.ERROR
}

/** A frame failed its COBS, length or CRC check; [kind] matches the host decoder's drop counters. */
class FrameException(val kind: String, message: String) : Exception(message)
