import Foundation

/// Payload layouts of every message, written once as field schemas (the host codec's SCHEMAS). Mirrors Messages.kt.
///
/// Values: integers as Int64, sha256 and bytes as [UInt8], str8 as String, u64[] as [Int64],
/// tensors as [TensorInfo], ops as [OpTiming]. Trailing bytes beyond a schema are ignored when reading.
public enum Messages {
    public struct Field {
        public let name: String
        public let kind: String
    }

    private static func f(_ pairs: (String, String)...) -> [Field] { pairs.map { Field(name: $0.0, kind: $0.1) } }

    private static let RUN_DATA = f(("unit", "u8"), ("total_runs", "u32"), ("first_index", "u32"), ("count", "u8"), ("timings", "u64[]"))

    private static let requests: [Int: [Field]] = [
        MsgType.HELLO: f(("host_version", "u8"), ("host_max_payload", "u16")),
        MsgType.PING: f(("data", "bytes")),
        MsgType.RESET: f(),
        MsgType.LOAD_MODEL_BEGIN: f(("total_bytes", "u32"), ("format", "u8"), ("sha256", "sha256"), ("name", "str8")),
        MsgType.LOAD_MODEL_CHUNK: f(("offset", "u32"), ("data", "bytes")),
        MsgType.LOAD_MODEL_END: f(),
        MsgType.SELECT_BUILTIN_MODEL: f(("index", "u8"), ("name", "str8")),
        MsgType.MODEL_INFO: f(),
        MsgType.SET_MODE: f(("mode", "u8")),
        MsgType.SET_INPUT: f(("index", "u8"), ("total", "u32"), ("offset", "u32"), ("data", "bytes")),
        MsgType.RUN: f(("runs", "u32"), ("warmup", "u32"), ("unit", "u8")),
        MsgType.GET_TIMINGS: f(("first_index", "u32"), ("count", "u32")),
        MsgType.GET_OUTPUT: f(("index", "u8"), ("offset", "u32"), ("length", "u32")),
        MsgType.GET_MEMORY: f(),
        MsgType.GET_OP_TIMINGS: f(("first_op", "u16")),
        MsgType.BOOT: f(("reset_reason", "u8"), ("boot_id", "u32"), ("banner", "bytes")),
        MsgType.LOG: f(("level", "u8"), ("message", "bytes")),
        MsgType.ERROR: f(("code", "u16"), ("detail", "u32"), ("message", "bytes")),
    ]

    private static let replies: [Int: [Field]] = [
        MsgType.HELLO: f(
            ("version", "u8"), ("caps", "u32"), ("max_payload", "u16"), ("rx_window", "u8"), ("max_runs", "u16"),
            ("timer_units", "u8"), ("default_unit", "u8"), ("clock_hz", "u32"), ("ram_bytes", "u32"),
            ("flash_bytes", "u32"), ("builtin_models", "u8"), ("boot_id", "u32"), ("device", "str8"),
            ("runtime", "str8"), ("board", "str8")
        ),
        MsgType.PING: f(("data", "bytes")),
        MsgType.RESET: f(),
        MsgType.LOAD_MODEL_BEGIN: f(),
        MsgType.LOAD_MODEL_CHUNK: f(("received", "u32")),
        MsgType.LOAD_MODEL_END: f(),
        MsgType.SELECT_BUILTIN_MODEL: f(("index", "u8"), ("name", "str8")),
        MsgType.MODEL_INFO: f(
            ("sha256", "sha256"), ("model_bytes", "u32"), ("arena_bytes", "u32"), ("name", "str8"),
            ("n_inputs", "u8"), ("n_outputs", "u8"), ("tensors", "tensors")
        ),
        MsgType.SET_MODE: f(("mode", "u8")),
        MsgType.SET_INPUT: f(("index", "u8"), ("end", "u32")),
        MsgType.RUN: RUN_DATA,
        MsgType.GET_TIMINGS: RUN_DATA,
        MsgType.GET_OUTPUT: f(("index", "u8"), ("total", "u32"), ("offset", "u32"), ("data", "bytes")),
        MsgType.GET_MEMORY: f(
            ("peak_ram_bytes", "u32"), ("arena_total_bytes", "u32"), ("arena_used_bytes", "u32"),
            ("stack_total_bytes", "u32"), ("stack_high_water_bytes", "u32"), ("flash_used_bytes", "u32"),
            ("model_bytes", "u32"), ("heap_peak_bytes", "u32")
        ),
        MsgType.GET_OP_TIMINGS: f(("unit", "u8"), ("total_ops", "u16"), ("first_op", "u16"), ("count", "u8"), ("ops", "ops")),
    ]

    /// The schema of frame `type`; nil for a type this agent does not know.
    public static func schema(_ type: Int) -> [Field]? {
        let isReply = type & Proto.REPLY_BIT != 0 && type != MsgType.ERROR
        return isReply ? replies[type & 0x7F] : requests[type]
    }

    public static func pack(_ type: Int, _ values: [String: Any]) -> [UInt8] {
        guard let fields = schema(type) else { preconditionFailure("no schema for type \(type)") }
        let w = PayloadWriter()
        for fd in fields {
            let v = values[fd.name]
            switch fd.kind {
            case "u8": w.u8(Int(num(v)))
            case "u16": w.u16(Int(num(v)))
            case "u32": w.u32(num(v))
            case "u64": w.u64(num(v))
            case "i32": w.i32(Int(num(v)))
            case "f32": w.f32((v as? Float) ?? Float((v as? Double) ?? 0))
            case "sha256": w.sha256((v as? [UInt8]) ?? [UInt8](repeating: 0, count: 32))
            case "str8": w.str8((v as? String) ?? "")
            case "bytes": w.bytes((v as? [UInt8]) ?? [])
            case "u64[]": for t in (v as? [Int64]) ?? [] { w.u64(t) }
            case "tensors": for t in (v as? [TensorInfo]) ?? [] { writeTensor(w, t) }
            case "ops": for o in (v as? [OpTiming]) ?? [] { w.u64(o.time).str8(o.name) }
            default: preconditionFailure("schema kind \(fd.kind)")
            }
        }
        return w.toBytes()
    }

    public static func unpack(_ type: Int, _ payload: [UInt8]) throws -> [String: Any] {
        guard let fields = schema(type) else { throw AgentError(ErrorCode.UNKNOWN_TYPE, "unknown frame type \(type)") }
        let r = PayloadReader(payload)
        var out = [String: Any]()
        for fd in fields {
            switch fd.kind {
            case "u8": out[fd.name] = Int64(try r.u8())
            case "u16": out[fd.name] = Int64(try r.u16())
            case "u32": out[fd.name] = try r.u32()
            case "u64": out[fd.name] = try r.u64()
            case "i32": out[fd.name] = Int64(try r.i32())
            case "f32": out[fd.name] = try r.f32()
            case "sha256": out[fd.name] = try r.sha256()
            case "str8": out[fd.name] = try r.str8()
            case "bytes": out[fd.name] = r.rest()
            case "u64[]":
                let n = (out["count"] as? Int64).map { Int($0) } ?? (payload.count - r.pos) / 8
                out[fd.name] = try (0..<n).map { _ in try r.u64() }
            case "tensors":
                let n = Int((out["n_inputs"] as? Int64 ?? 0) + (out["n_outputs"] as? Int64 ?? 0))
                out[fd.name] = try (0..<n).map { _ in try readTensor(r) }
            case "ops":
                let n = Int(out["count"] as? Int64 ?? 0)
                out[fd.name] = try (0..<n).map { _ -> OpTiming in let t = try r.u64(); return OpTiming(name: try r.str8(), time: t) }
            default: preconditionFailure("schema kind \(fd.kind)")
            }
        }
        return out
    }

    /// Wire bytes of one message.
    public static func encode(_ type: Int, _ seq: Int, _ values: [String: Any] = [:], flags: Int = 0) -> [UInt8] {
        FrameCodec.encode(Frame(type: type, seq: seq, payload: pack(type, values), flags: flags))
    }

    private static func num(_ v: Any?) -> Int64 {
        switch v {
        case let x as Int64: return x
        case let x as Int: return Int64(x)
        case let x as Int32: return Int64(x)
        case let x as UInt32: return Int64(x)
        default: return 0
        }
    }

    // Wire layout: dtype u8, ndim u8, dims u32[ndim], scale f32, zero_point i32, name str8.
    private static func writeTensor(_ w: PayloadWriter, _ t: TensorInfo) {
        w.u8(Dtype.code(t.dtype)).u8(t.shape.count)
        for d in t.shape { w.u32(Int64(d)) }
        w.f32(Float(t.scale)).i32(t.zeroPoint).str8(t.name)
    }

    private static func readTensor(_ r: PayloadReader) throws -> TensorInfo {
        let dtype = Dtype.name(try r.u8())
        let ndim = try r.u8()
        let shape = try (0..<ndim).map { _ in Int(try r.u32()) }
        let scale = Double(try r.f32())
        let zp = try r.i32()
        return TensorInfo(name: try r.str8(), dtype: dtype, shape: shape, scale: scale, zeroPoint: zp)
    }
}
