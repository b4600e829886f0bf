import Foundation

/// Constants of profiling/PROTOCOL.md. Names and values match the host codec and Protocol.kt.
public enum Proto {
    public static let VERSION = 1
    public static let HEADER_SIZE = 7 // version u8, type u8, flags u8, seq u16, payload_len u16 (little-endian)
    public static let CRC_SIZE = 4
    public static let MAX_PAYLOAD = 512
    public static let MIN_PAYLOAD = 64
    public static let MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
    public static let MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) / 254 + 1
    public static let FLAG_MORE = 0x01
    public static let REPLY_BIT = 0x80
    public static let UNKNOWN_U32: Int64 = 0xFFFF_FFFF
    public static let UNIT_DEFAULT = 0xFF
    public static let AUDIO_INDEX = 0xFF
    public static let RUN_DATA_FIXED = 10
    public static let MAX_TIMINGS_PER_FRAME = (MAX_PAYLOAD - RUN_DATA_FIXED) / 8
}

public enum MsgType {
    public static let HELLO = 0x01
    public static let PING = 0x02
    public static let RESET = 0x03
    public static let LOAD_MODEL_BEGIN = 0x10
    public static let LOAD_MODEL_CHUNK = 0x11
    public static let LOAD_MODEL_END = 0x12
    public static let SELECT_BUILTIN_MODEL = 0x13
    public static let MODEL_INFO = 0x14
    public static let SET_MODE = 0x20
    public static let SET_INPUT = 0x21
    public static let RUN = 0x22
    public static let GET_TIMINGS = 0x23
    public static let GET_OUTPUT = 0x24
    public static let GET_MEMORY = 0x25
    public static let GET_OP_TIMINGS = 0x26
    public static let BOOT = 0x70
    public static let LOG = 0x71
    public static let ERROR = 0x7F

    public static func reply(_ type: Int) -> Int { type | Proto.REPLY_BIT }
}

public enum Caps {
    public static let LOAD_MODEL = 1 << 0
    public static let BUILTIN_MODELS = 1 << 1
    public static let OP_TIMINGS = 1 << 2
    public static let FRONTEND = 1 << 3
    public static let MEMORY_STATS = 1 << 4
    public static let RESET = 1 << 5
    public static let GET_OUTPUT = 1 << 6
    public static let LOG = 1 << 7
}

public enum TimerUnit {
    public static let US = 0
    public static let CYCLES = 1
    public static let INSTRUCTIONS = 2
    public static let NS = 3
}

public enum Mode {
    public static let MODEL = 0
    public static let FRONTEND_MODEL = 1
    public static let FRONTEND = 2
}

public enum ModelFormat {
    public static let RAW = 0
    public static let TFLITE = 1
    public static let EXECUTORCH = 2
    public static let COREML = 3
    public static let OD_MCU = 4
}

public enum ResetReason {
    public static let POWER_ON = 0
    public static let SOFTWARE = 1
    public static let WATCHDOG = 2
    public static let FAULT = 3
    public static let PIN = 4
    public static let UNKNOWN = 0xFF
}

/// Error codes; the host decodes them with its table, so the agent only sends the code and a short detail.
public enum ErrorCode {
    public static let BAD_CRC = 1
    public static let BAD_SEQ = 2
    public static let UNKNOWN_TYPE = 3
    public static let TOO_LARGE = 4
    public static let NO_MODEL = 5
    public static let SHA_MISMATCH = 6
    public static let BUSY = 7
    public static let OUT_OF_MEMORY = 8
    public static let INVALID_INPUT_SIZE = 9
    public static let BAD_OFFSET = 10
    public static let UNSUPPORTED = 11
    public static let BAD_PAYLOAD = 12
    public static let UNSUPPORTED_VERSION = 13
    public static let BAD_INDEX = 14
    public static let INVOKE_FAILED = 15
    public static let MODEL_INVALID = 16
    public static let INTERNAL = 0xFF
}

/// Tensor dtype codes on the wire.
public enum Dtype {
    private static let names = ["float32", "int8", "uint8", "int16", "int32", "uint16", "float16", "int64", "bool", "uint32"]

    public static func code(_ name: String) -> Int {
        guard let i = names.firstIndex(of: name) else { preconditionFailure("dtype \(name) has no protocol code") }
        return i
    }

    public static func name(_ code: Int) -> String { names.indices.contains(code) ? names[code] : "code\(code)" }
}

/// One decoded frame.
public struct Frame {
    public let type: Int
    public let seq: Int
    public let payload: [UInt8]
    public let flags: Int
    public let version: Int

    public init(type: Int, seq: Int, payload: [UInt8] = [], flags: Int = 0, version: Int = Proto.VERSION) {
        self.type = type
        self.seq = seq
        self.payload = payload
        self.flags = flags
        self.version = version
    }

    public var isReply: Bool { type & Proto.REPLY_BIT != 0 && type != MsgType.ERROR }
}

/// A frame failed its COBS, length or CRC check; `kind` matches the host decoder's drop counters.
public struct FrameError: Error {
    public let kind: String
    public let message: String
}
