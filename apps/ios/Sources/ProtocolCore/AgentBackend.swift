import Foundation

/// One tensor as the runtime holds it: raw bytes in `dtype`, with its quantisation if any. Mirrors TensorInfo.
public struct TensorInfo {
    public let name: String
    public let dtype: String
    public let shape: [Int]
    public let scale: Double
    public let zeroPoint: Int

    public init(name: String, dtype: String, shape: [Int], scale: Double = 0, zeroPoint: Int = 0) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// Bytes a buffer of this tensor takes.
    public var byteSize: Int { shape.reduce(1, *) * TensorInfo.dtypeBytes(dtype) }

    /// Element size for the dtype names used by manifests and PROTOCOL.md.
    public static func dtypeBytes(_ dtype: String) -> Int {
        switch dtype {
        case "int8", "uint8", "bool": return 1
        case "int16", "uint16", "float16": return 2
        case "int32", "uint32", "float32": return 4
        case "int64", "float64": return 8
        default: preconditionFailure("unknown dtype \(dtype)")
        }
    }
}

/// Memory figures a backend can report; -1 means "this runtime cannot tell".
public struct MemoryStats {
    public var peakRamBytes: Int64 = -1
    public var arenaBytes: Int64 = -1
    public var stackBytes: Int64 = -1
    public var flashBytes: Int64 = -1

    public init(peakRamBytes: Int64 = -1, arenaBytes: Int64 = -1, stackBytes: Int64 = -1, flashBytes: Int64 = -1) {
        self.peakRamBytes = peakRamBytes
        self.arenaBytes = arenaBytes
        self.stackBytes = stackBytes
        self.flashBytes = flashBytes
    }
}

/// Mean time of one operator over the timed runs of the last RUN (nanoseconds from a backend, wire unit on the wire).
public struct OpTiming {
    public let name: String
    public let time: Int64

    public init(name: String, time: Int64) {
        self.name = name
        self.time = time
    }
}

/// What MODEL_INFO reports for a built-in model: its SHA-256 (32 zero bytes when unknown) and size.
public struct BuiltinInfo {
    public let sha256: [UInt8]
    public let bytes: Int64

    public init(sha256: [UInt8], bytes: Int64) {
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// A failure the agent reports to the host with a protocol error `code`. Mirrors AgentException.
public struct AgentError: Error {
    public let code: Int
    public let message: String
    public let detail: Int64

    public init(_ code: Int, _ message: String, detail: Int64 = 0) {
        self.code = code
        self.message = message
        self.detail = detail
    }
}

/// What the agent needs from a runtime. The iOS app implements it with ExecuTorch and Core ML.
/// Methods may throw `AgentError`; the agent turns it into a protocol error frame. Mirrors AgentBackend.kt.
public protocol AgentBackend: AnyObject {
    /// Runtime name for the handshake, e.g. "executorch", "coreml".
    var runtime: String { get }

    /// Model formats `load` accepts (`ModelFormat` codes).
    var formats: Set<Int> { get }

    /// Names of the models compiled into the app, in SELECT_BUILTIN_MODEL index order.
    var builtinModels: [String] { get }

    /// Load built-in model `index` (the agent has range-checked it).
    func loadBuiltin(_ index: Int) throws -> BuiltinInfo

    /// True when `opTimings` returns per-operator times.
    var hasOpTimings: Bool { get }

    /// Load a model of `format` whose SHA-256 the agent has already checked.
    func load(_ model: [UInt8], format: Int) throws

    func inputs() -> [TensorInfo]

    func outputs() -> [TensorInfo]

    /// Copy raw bytes into input `index`; size equals inputs()[index].byteSize.
    func setInput(_ index: Int, _ data: [UInt8]) throws

    /// Run one inference on the current inputs.
    func run() throws

    /// Raw bytes of output `index` after the last run.
    func output(_ index: Int) throws -> [UInt8]

    func memory() -> MemoryStats

    /// Called after the warm-ups, before the timed runs.
    func startOpProfiling()

    /// Mean per-operator nanoseconds since `startOpProfiling`, or nil without a profiler hook.
    func opTimings() -> [OpTiming]?

    /// Free the model; the agent may load another one afterwards.
    func unload()
}

public extension AgentBackend {
    var builtinModels: [String] { [] }
    func loadBuiltin(_ index: Int) throws -> BuiltinInfo {
        throw AgentError(ErrorCode.BAD_INDEX, "no built-in model \(index)", detail: Int64(index))
    }
    var hasOpTimings: Bool { false }
    func startOpProfiling() {}
    func opTimings() -> [OpTiming]? { nil }
    func unload() {}
}

/// Several backends behind one agent, chosen by the uploaded model's format (`.pte` uploads go to ExecuTorch,
/// built-in `.mlpackage` models to Core ML). Mirrors FormatDispatchBackend in AgentBackend.kt.
public final class FormatDispatchBackend: AgentBackend {
    private let backends: [AgentBackend]
    private var active: AgentBackend?

    public init(_ backends: [AgentBackend]) { self.backends = backends }

    public var runtime: String { active?.runtime ?? backends.map { $0.runtime }.joined(separator: "+") }

    public var formats: Set<Int> { backends.reduce(into: Set<Int>()) { $0.formUnion($1.formats) } }

    // Before a load (HELLO's caps) the agent can time ops if any backend can; after it, the loaded one decides.
    public var hasOpTimings: Bool { active?.hasOpTimings ?? backends.contains { $0.hasOpTimings } }

    public var builtinModels: [String] { backends.flatMap { $0.builtinModels } }

    public func loadBuiltin(_ index: Int) throws -> BuiltinInfo {
        unload()
        var i = index
        for b in backends {
            if i < b.builtinModels.count {
                let info = try b.loadBuiltin(i)
                active = b
                return info
            }
            i -= b.builtinModels.count
        }
        throw AgentError(ErrorCode.BAD_INDEX, "no built-in model \(index)", detail: Int64(index))
    }

    private func current() throws -> AgentBackend {
        guard let a = active else { throw AgentError(ErrorCode.NO_MODEL, "no model loaded") }
        return a
    }

    public func load(_ model: [UInt8], format: Int) throws {
        unload()
        guard let b = backends.first(where: { $0.formats.contains(format) }) else {
            throw AgentError(ErrorCode.UNSUPPORTED, "no backend for model format \(format)", detail: Int64(format))
        }
        try b.load(model, format: format)
        active = b
    }

    public func inputs() -> [TensorInfo] { active?.inputs() ?? [] }
    public func outputs() -> [TensorInfo] { active?.outputs() ?? [] }
    public func setInput(_ index: Int, _ data: [UInt8]) throws { try current().setInput(index, data) }
    public func run() throws { try current().run() }
    public func output(_ index: Int) throws -> [UInt8] { try current().output(index) }
    public func memory() -> MemoryStats { active?.memory() ?? backends.first?.memory() ?? MemoryStats() }
    public func startOpProfiling() { active?.startOpProfiling() }
    public func opTimings() -> [OpTiming]? { active?.opTimings() }

    public func unload() {
        active?.unload()
        active = nil
    }
}
