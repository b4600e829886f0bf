import CryptoKit
import Foundation

/// The device facts the agent announces in its HELLO reply.
public struct DeviceDescription {
    public let device: String
    public let board: String
    public let clockHz: Int64
    public let ramBytes: Int64
    public let flashBytes: Int64
    public let bootId: Int64

    public init(device: String, board: String, clockHz: Int64 = 0, ramBytes: Int64 = Proto.UNKNOWN_U32,
                flashBytes: Int64 = Proto.UNKNOWN_U32, bootId: Int64 = 0) {
        self.device = device
        self.board = board
        self.clockHz = clockHz
        self.ramBytes = ramBytes
        self.flashBytes = flashBytes
        self.bootId = bootId
    }
}

/// The on-device audio frontend for SET_MODE 1 and 2. The app wires the Swift twin of `ondevice.features`.
public protocol FeaturePipeline {
    /// Input samples (int16 mono, 16 kHz) the frontend expects: the audio input is this many * 2 bytes.
    var samples: Int { get }

    /// int16 PCM -> uint16 feature map, flattened row-major.
    func features(_ pcm: [Int16]) -> [Int]

    /// Feature map -> the bytes of the model input `spec` (int8 quantised or float32).
    func modelInput(_ features: [Int], _ spec: TensorInfo) throws -> [UInt8]
}

/// Watches RUN from outside the timed region. The line `runFinished` returns is sent as a LOG frame right after
/// RUN's final frame, so it lands in the host's device log.
public protocol RunObserver {
    func runStarted()
    func runFinished(_ runs: Int) -> String?
}

/// The protocol state machine of PROTOCOL.md. Mirrors Agent.kt line for line (same names, same order).
///
/// Feed it decoded frames with `handle`; it writes complete wire frames through `send`. It is single-threaded:
/// the transport calls `handle` from one queue, and RUN blocks that queue, as the spec allows.
/// Timing uses `clockNs` (monotonic nanoseconds) and reports microseconds by default.
public final class Agent {
    private let backend: AgentBackend
    private let description: DeviceDescription
    private let send: ([UInt8]) -> Void
    private let pipeline: FeaturePipeline?
    private let maxRuns: Int
    private let maxModelBytes: Int
    private let clockNs: () -> Int64
    private let onReset: () -> Void
    private let observer: RunObserver?

    public private(set) var bootId: Int64

    private var txMax = Proto.MIN_PAYLOAD

    // Upload in progress (LOAD_MODEL_*).
    private var upTotal = -1
    private var upSha = [UInt8](repeating: 0, count: 32)
    private var upName = ""
    private var upFormat = ModelFormat.RAW
    private var upBuf = [UInt8]()
    private var upReceived = 0
    private var upDone = false

    // Loaded model (uploaded or built in).
    private var loaded = false
    private var modelBytes: Int64 = 0
    private var modelName = ""
    private var modelSha = [UInt8](repeating: 0, count: 32)
    private var inputs: [TensorInfo] = []
    private var outputs: [TensorInfo] = []
    private var inputBufs: [[UInt8]] = []
    private var audio = [UInt8]()
    private var mode = Mode.MODEL

    // Last RUN, kept for GET_TIMINGS, GET_OUTPUT and RUN retries.
    private var timings: [Int64] = []
    private var timingUnit = TimerUnit.US
    private var lastOutputs: [[UInt8]] = []
    private var lastFeatures: [UInt8]?
    private var opTimes: [OpTiming]?

    // Dedup of non-idempotent requests (section 3): the last executed request and its stored reply.
    private var lastSeq = -1
    private var lastType = -1
    private var lastReply: [UInt8]?

    public init(backend: AgentBackend, description: DeviceDescription, send: @escaping ([UInt8]) -> Void,
                initialBootId: Int64? = nil, pipeline: FeaturePipeline? = nil, maxRuns: Int = 10000,
                maxModelBytes: Int = 256 * 1024 * 1024, clockNs: @escaping () -> Int64 = Agent.monotonicNs,
                onReset: @escaping () -> Void = {}, observer: RunObserver? = nil) {
        self.backend = backend
        self.description = description
        self.send = send
        self.bootId = initialBootId ?? description.bootId
        self.pipeline = pipeline
        self.maxRuns = maxRuns
        self.maxModelBytes = maxModelBytes
        self.clockNs = clockNs
        self.onReset = onReset
        self.observer = observer
    }

    /// Monotonic nanoseconds (the same clock as System.nanoTime on the JVM: not wall time).
    public static func monotonicNs() -> Int64 { Int64(clock_gettime_nsec_np(CLOCK_UPTIME_RAW)) }

    public var caps: Int {
        var c = Caps.LOAD_MODEL | Caps.MEMORY_STATS | Caps.GET_OUTPUT | Caps.RESET | Caps.LOG
        if pipeline != nil { c |= Caps.FRONTEND }
        if backend.hasOpTimings { c |= Caps.OP_TIMINGS }
        if !backend.builtinModels.isEmpty { c |= Caps.BUILTIN_MODELS }
        return c
    }

    /// Announce a (re)boot: a leading 0x00 ends any garbage the host holds, then BOOT.
    public func boot(reason: Int = ResetReason.POWER_ON, banner: String? = nil) {
        let text = banner ?? "ondevice \(backend.runtime) agent \(description.board)"
        send([0])
        send(Messages.encode(MsgType.BOOT, 0, ["reset_reason": Int64(reason), "boot_id": bootId, "banner": Array(text.utf8)]))
    }

    /// End of the session: free the model.
    public func close() {
        backend.unload()
        clearModel()
    }

    /// Send a LOG frame (never called during RUN's timed region).
    public func log(_ level: Int, _ message: String) {
        let b = Array(message.utf8)
        let n = min(b.count, txMax - 1)
        send(FrameCodec.encode(Frame(type: MsgType.LOG, seq: 0, payload: PayloadWriter().u8(level).bytes(b[0..<n]).toBytes())))
    }

    /// Handle one decoded frame from the host.
    public func handle(_ frame: Frame) {
        if frame.version != Proto.VERSION {
            sendError(frame.seq, ErrorCode.UNSUPPORTED_VERSION, Int64(Proto.VERSION), "protocol version \(frame.version)")
            return
        }
        // Frames the host never sends to a device (replies, BOOT/LOG/ERROR) are ignored.
        if frame.type & Proto.REPLY_BIT != 0 || frame.type >= 0x70 { return }
        let t = frame.type
        if Messages.schema(t) == nil {
            sendError(frame.seq, ErrorCode.UNKNOWN_TYPE, Int64(t), "unknown message type")
            return
        }
        let once = t == MsgType.RUN || t == MsgType.RESET || t == MsgType.LOAD_MODEL_BEGIN
        if once && frame.seq == lastSeq && t == lastType {
            // A retry of a non-idempotent request: answer again, never execute again.
            if let stored = lastReply {
                send(stored)
            } else if t == MsgType.RUN && !timings.isEmpty {
                streamTimings(MsgType.RUN, frame.seq, 0, timings.count)
            } else {
                sendError(frame.seq, ErrorCode.BAD_SEQ, 0, "the reply to that request is gone")
            }
            return
        }
        lastSeq = frame.seq
        lastType = t
        lastReply = nil
        do {
            let f = try Messages.unpack(t, frame.payload)
            try dispatch(t, frame.seq, f)
        } catch let e as AgentError {
            let w = sendError(frame.seq, e.code, e.detail, e.message)
            if once { lastReply = w }
        } catch {
            // A backend bug must not kill the agent: the host gets INTERNAL and can reset.
            let w = sendError(frame.seq, ErrorCode.INTERNAL, 0, String(describing: error))
            if once { lastReply = w }
        }
    }

    private func dispatch(_ t: Int, _ seq: Int, _ f: [String: Any]) throws {
        switch t {
        case MsgType.HELLO: hello(seq, f)
        case MsgType.PING:
            let data = f["data"] as! [UInt8]
            if data.count > txMax { throw AgentError(ErrorCode.TOO_LARGE, "ping of \(data.count) bytes") }
            reply(t, seq, ["data": data])
        case MsgType.RESET: reset(seq)
        case MsgType.LOAD_MODEL_BEGIN: try loadBegin(seq, f)
        case MsgType.LOAD_MODEL_CHUNK: try loadChunk(seq, f)
        case MsgType.LOAD_MODEL_END: try loadEnd(seq)
        case MsgType.SELECT_BUILTIN_MODEL: try selectBuiltin(seq, f)
        case MsgType.MODEL_INFO: try modelInfo(seq)
        case MsgType.SET_MODE: try setMode(seq, Int(f["mode"] as! Int64))
        case MsgType.SET_INPUT: try setInput(seq, f)
        case MsgType.RUN: try run(seq, f)
        case MsgType.GET_TIMINGS: try getTimings(seq, f)
        case MsgType.GET_OUTPUT: try getOutput(seq, f)
        case MsgType.GET_MEMORY: getMemory(seq)
        case MsgType.GET_OP_TIMINGS: try getOpTimings(seq, f)
        default: throw AgentError(ErrorCode.UNKNOWN_TYPE, "unknown type \(t)", detail: Int64(t))
        }
    }

    private func hello(_ seq: Int, _ f: [String: Any]) {
        let hostMax = Int(f["host_max_payload"] as! Int64)
        txMax = max(Proto.MIN_PAYLOAD, min(Proto.MAX_PAYLOAD, hostMax))
        reply(MsgType.HELLO, seq, [
            "version": min(Int64(Proto.VERSION), f["host_version"] as! Int64),
            "caps": Int64(caps),
            "max_payload": Int64(txMax),
            // Chunks land in RAM at explicit offsets, so many can be in flight over usbmux.
            "rx_window": Int64(8),
            "max_runs": Int64(maxRuns),
            "timer_units": Int64((1 << TimerUnit.US) | (1 << TimerUnit.NS)),
            "default_unit": Int64(TimerUnit.US),
            "clock_hz": description.clockHz,
            "ram_bytes": description.ramBytes,
            "flash_bytes": description.flashBytes,
            "builtin_models": Int64(backend.builtinModels.count),
            "boot_id": bootId,
            "device": description.device,
            "runtime": backend.runtime,
            "board": description.board,
        ])
    }

    private func reset(_ seq: Int) {
        lastReply = reply(MsgType.RESET, seq, [:])
        backend.unload()
        clearModel()
        upTotal = -1
        upDone = false
        mode = Mode.MODEL
        // A software reset is a new boot: the host expects BOOT and a new boot id.
        bootId = (bootId + 1) & 0xFFFF_FFFF
        onReset()
        boot(reason: ResetReason.SOFTWARE)
    }

    private func loadBegin(_ seq: Int, _ f: [String: Any]) throws {
        let total = f["total_bytes"] as! Int64
        let format = Int(f["format"] as! Int64)
        if total > Int64(maxModelBytes) {
            throw AgentError(ErrorCode.TOO_LARGE, "model of \(total) bytes > \(maxModelBytes)", detail: Int64(maxModelBytes))
        }
        if !backend.formats.contains(format) {
            throw AgentError(ErrorCode.UNSUPPORTED, "\(backend.runtime) cannot load model format \(format)", detail: Int64(format))
        }
        backend.unload()
        clearModel()
        upTotal = Int(total)
        upSha = f["sha256"] as! [UInt8]
        upName = f["name"] as! String
        upFormat = format
        upBuf = [UInt8](repeating: 0, count: upTotal)
        upReceived = 0
        upDone = false
        lastReply = reply(MsgType.LOAD_MODEL_BEGIN, seq, [:])
    }

    private func loadChunk(_ seq: Int, _ f: [String: Any]) throws {
        if upTotal < 0 { throw AgentError(ErrorCode.BAD_OFFSET, "no LOAD_MODEL_BEGIN", detail: 0) }
        let offset = Int(f["offset"] as! Int64)
        let data = f["data"] as! [UInt8]
        if offset + data.count > upTotal {
            throw AgentError(ErrorCode.TOO_LARGE, "chunk ends at \(offset + data.count) > \(upTotal)", detail: Int64(upTotal))
        }
        if offset > upReceived {
            throw AgentError(ErrorCode.BAD_OFFSET, "chunk at \(offset), holding \(upReceived)", detail: Int64(upReceived))
        }
        let end = offset + data.count
        if end > upReceived {
            upBuf.replaceSubrange(offset..<end, with: data)
            upReceived = end
        }
        reply(MsgType.LOAD_MODEL_CHUNK, seq, ["received": Int64(upReceived)])
    }

    private func loadEnd(_ seq: Int) throws {
        if upDone {
            reply(MsgType.LOAD_MODEL_END, seq, [:])
            return
        }
        if upTotal < 0 || upReceived != upTotal {
            throw AgentError(ErrorCode.BAD_OFFSET, "holding \(upReceived) of \(upTotal) bytes", detail: Int64(max(upReceived, 0)))
        }
        let sha = Array(SHA256.hash(data: upBuf))
        if sha != upSha {
            upTotal = -1
            upBuf = []
            throw AgentError(ErrorCode.SHA_MISMATCH, "SHA-256 of the upload differs")
        }
        try backend.load(upBuf, format: upFormat)
        adopt(upName, sha, Int64(upBuf.count))
        upDone = true
        upBuf = []
        reply(MsgType.LOAD_MODEL_END, seq, [:])
        log(1, "loaded \(modelName): \(modelBytes) bytes on \(backend.runtime)")
    }

    private func selectBuiltin(_ seq: Int, _ f: [String: Any]) throws {
        let names = backend.builtinModels
        if names.isEmpty { throw AgentError(ErrorCode.UNSUPPORTED, "this agent has no built-in models") }
        let want = Int(f["index"] as! Int64)
        let name = f["name"] as! String
        // 0xFF selects by name: exact first, then case-insensitively.
        let index = want != 0xFF ? want : (names.firstIndex(of: name) ?? names.firstIndex(where: { $0.lowercased() == name.lowercased() }) ?? -1)
        if index < 0 || index >= names.count {
            throw AgentError(ErrorCode.BAD_INDEX, "no built-in model \(want == 0xFF ? name : String(want))", detail: Int64(names.count))
        }
        backend.unload()
        clearModel()
        upTotal = -1
        upDone = false
        let info = try backend.loadBuiltin(index)
        adopt(names[index], info.sha256, info.bytes)
        reply(MsgType.SELECT_BUILTIN_MODEL, seq, ["index": Int64(index), "name": names[index]])
    }

    /// Take over the model the backend just loaded.
    private func adopt(_ name: String, _ sha: [UInt8], _ bytes: Int64) {
        loaded = true
        modelName = name
        modelSha = sha
        modelBytes = bytes
        inputs = backend.inputs()
        outputs = backend.outputs()
        inputBufs = inputs.map { [UInt8](repeating: 0, count: $0.byteSize) }
        mode = Mode.MODEL
    }

    private func clearModel() {
        loaded = false
        modelBytes = 0
        inputs = []
        outputs = []
        inputBufs = []
        timings = []
        lastOutputs = []
        lastFeatures = nil
        opTimes = nil
    }

    private func requireModel() throws {
        if !loaded { throw AgentError(ErrorCode.NO_MODEL, "no model loaded") }
    }

    private func modelInfo(_ seq: Int) throws {
        try requireModel()
        let arena = backend.memory().arenaBytes
        let all = inputs + outputs
        // The reply must fit one frame: shorten tensor names until it does.
        var keep = 32
        while true {
            let ts = all.map { TensorInfo(name: String($0.name.prefix(keep)), dtype: $0.dtype, shape: $0.shape, scale: $0.scale, zeroPoint: $0.zeroPoint) }
            let values: [String: Any] = [
                "sha256": modelSha, "model_bytes": modelBytes,
                "arena_bytes": u32(arena), "name": String(modelName.prefix(max(keep, 8))),
                "n_inputs": Int64(inputs.count), "n_outputs": Int64(outputs.count), "tensors": ts,
            ]
            let payload = Messages.pack(MsgType.reply(MsgType.MODEL_INFO), values)
            if payload.count <= txMax || keep == 0 {
                if payload.count > txMax { throw AgentError(ErrorCode.TOO_LARGE, "model has too many tensors for one frame") }
                send(FrameCodec.encode(Frame(type: MsgType.reply(MsgType.MODEL_INFO), seq: seq, payload: payload)))
                return
            }
            keep /= 2
        }
    }

    private func setMode(_ seq: Int, _ m: Int) throws {
        if m != Mode.MODEL && (pipeline == nil || (m != Mode.FRONTEND_MODEL && m != Mode.FRONTEND)) {
            throw AgentError(ErrorCode.UNSUPPORTED, "mode \(m)", detail: Int64(m))
        }
        mode = m
        if m != Mode.MODEL, let p = pipeline, audio.count != p.samples * 2 { audio = [UInt8](repeating: 0, count: p.samples * 2) }
        reply(MsgType.SET_MODE, seq, ["mode": Int64(m)])
    }

    private func setInput(_ seq: Int, _ f: [String: Any]) throws {
        let index = Int(f["index"] as! Int64)
        let total = f["total"] as! Int64
        let offset = Int(f["offset"] as! Int64)
        let data = f["data"] as! [UInt8]
        let size: Int
        if index == Proto.AUDIO_INDEX {
            guard let p = pipeline else { throw AgentError(ErrorCode.BAD_INDEX, "no audio input without a frontend", detail: Int64(index)) }
            if audio.count != p.samples * 2 { audio = [UInt8](repeating: 0, count: p.samples * 2) }
            size = audio.count
        } else {
            try requireModel()
            if index >= inputBufs.count { throw AgentError(ErrorCode.BAD_INDEX, "input \(index) of \(inputBufs.count)", detail: Int64(index)) }
            size = inputBufs[index].count
        }
        if total != Int64(size) || offset + data.count > Int(total) {
            throw AgentError(ErrorCode.INVALID_INPUT_SIZE, "input \(index) holds \(size) bytes", detail: Int64(size))
        }
        if index == Proto.AUDIO_INDEX {
            audio.replaceSubrange(offset..<offset + data.count, with: data)
        } else {
            inputBufs[index].replaceSubrange(offset..<offset + data.count, with: data)
        }
        reply(MsgType.SET_INPUT, seq, ["index": Int64(index), "end": Int64(offset + data.count)])
    }

    private func run(_ seq: Int, _ f: [String: Any]) throws {
        let runs = f["runs"] as! Int64
        let warmup = f["warmup"] as! Int64
        var unit = Int(f["unit"] as! Int64)
        if unit == Proto.UNIT_DEFAULT { unit = TimerUnit.US }
        if unit != TimerUnit.US && unit != TimerUnit.NS { throw AgentError(ErrorCode.UNSUPPORTED, "timer unit \(unit)", detail: Int64(unit)) }
        if runs < 1 || runs > Int64(maxRuns) { throw AgentError(ErrorCode.BAD_PAYLOAD, "runs must be 1..\(maxRuns)", detail: Int64(maxRuns)) }
        if mode != Mode.FRONTEND { try requireModel() }
        if mode == Mode.FRONTEND_MODEL && inputs.isEmpty { throw AgentError(ErrorCode.BAD_INDEX, "model has no input") }
        timings = []
        timingUnit = unit
        let n = Int(runs)
        var stored = [Int64](repeating: 0, count: n)
        for _ in 0..<warmup { _ = try invokeOnce() }
        backend.startOpProfiling()
        let perFrame = (txMax - Proto.RUN_DATA_FIXED) / 8
        observer?.runStarted()
        do {
            send(runFrame(MsgType.RUN, seq, unit, n, 0, [], more: true))
            var sentUpTo = 0
            var lastFrameNs = clockNs()
            for i in 0..<n {
                let ns = try invokeOnce()
                stored[i] = unit == TimerUnit.US ? ns / 1000 : ns
                let pending = i + 1 - sentUpTo
                let now = clockNs()
                let last = i == n - 1
                // A frame per full payload, or every second so the host's inactivity timeout never fires.
                if pending == perFrame || now - lastFrameNs >= 1_000_000_000 || last {
                    send(runFrame(MsgType.RUN, seq, unit, n, sentUpTo, Array(stored[sentUpTo...i]), more: !last))
                    sentUpTo = i + 1
                    lastFrameNs = now
                }
            }
        } catch {
            // Stop the observer's sampling even when a run fails; its line is only sent for a whole RUN.
            _ = observer?.runFinished(n)
            throw error
        }
        timings = stored
        if let line = observer?.runFinished(n) { log(1, line) }
        lastOutputs = try mode == Mode.FRONTEND ? [] : (0..<outputs.count).map { try backend.output($0) }
        if backend.hasOpTimings && mode != Mode.FRONTEND {
            opTimes = backend.opTimings()?.map { OpTiming(name: $0.name, time: unit == TimerUnit.US ? $0.time / 1000 : $0.time) }
        } else {
            opTimes = nil
        }
    }

    /// One invoke in the current mode; returns nanoseconds of the timed region.
    private func invokeOnce() throws -> Int64 {
        if mode == Mode.MODEL {
            // Re-copy inputs before every invoke (PROTOCOL.md: runtimes may reuse input buffers).
            for i in inputBufs.indices { try backend.setInput(i, inputBufs[i]) }
            let t0 = clockNs()
            try backend.run()
            return clockNs() - t0
        }
        let p = pipeline!
        let pcm = pcmOf(audio)
        let t0 = clockNs()
        let feat = p.features(pcm)
        if mode == Mode.FRONTEND_MODEL {
            try backend.setInput(0, try p.modelInput(feat, inputs[0]))
            for i in inputBufs.indices.dropFirst() { try backend.setInput(i, inputBufs[i]) }
            try backend.run()
        }
        let dt = clockNs() - t0
        lastFeatures = u16Bytes(feat)
        return dt
    }

    private func getTimings(_ seq: Int, _ f: [String: Any]) throws {
        let first = f["first_index"] as! Int64
        let count = f["count"] as! Int64
        if timings.isEmpty || first > Int64(timings.count) {
            throw AgentError(ErrorCode.BAD_INDEX, "timings 0..\(timings.count) stored", detail: Int64(timings.count))
        }
        let end = Int(min(Int64(timings.count), first + count))
        streamTimings(MsgType.GET_TIMINGS, seq, Int(first), end)
    }

    private func streamTimings(_ type: Int, _ seq: Int, _ first: Int, _ end: Int) {
        let perFrame = (txMax - Proto.RUN_DATA_FIXED) / 8
        var i = first
        repeat {
            let j = min(end, i + perFrame)
            send(runFrame(type, seq, timingUnit, timings.count, i, Array(timings[i..<j]), more: j < end))
            i = j
        } while i < end
    }

    private func runFrame(_ type: Int, _ seq: Int, _ unit: Int, _ total: Int, _ first: Int, _ values: [Int64], more: Bool) -> [UInt8] {
        let p = PayloadWriter().u8(unit).u32(Int64(total)).u32(Int64(first)).u8(values.count)
        for v in values { p.u64(v) }
        return FrameCodec.encode(Frame(type: MsgType.reply(type), seq: seq, payload: p.toBytes(), flags: more ? Proto.FLAG_MORE : 0))
    }

    private func getOutput(_ seq: Int, _ f: [String: Any]) throws {
        let index = Int(f["index"] as! Int64)
        let data: [UInt8]
        if index == Proto.AUDIO_INDEX {
            guard let feats = lastFeatures else { throw AgentError(ErrorCode.BAD_INDEX, "no features yet: RUN in mode 1 or 2 first", detail: Int64(index)) }
            data = feats
        } else {
            try requireModel()
            if index >= outputs.count { throw AgentError(ErrorCode.BAD_INDEX, "output \(index) of \(outputs.count)", detail: Int64(index)) }
            if index >= lastOutputs.count { throw AgentError(ErrorCode.BAD_INDEX, "no outputs yet: RUN first", detail: Int64(index)) }
            data = lastOutputs[index]
        }
        let offset = f["offset"] as! Int64
        let length = f["length"] as! Int64
        if offset > Int64(data.count) { throw AgentError(ErrorCode.BAD_INDEX, "offset \(offset) > \(data.count)", detail: Int64(data.count)) }
        let end = length == Proto.UNKNOWN_U32 ? data.count : Int(min(Int64(data.count), offset + length))
        let per = txMax - 9
        var i = Int(offset)
        repeat {
            let j = min(end, i + per)
            let p = PayloadWriter().u8(index).u32(Int64(data.count)).u32(Int64(i)).bytes(data[i..<j])
            send(FrameCodec.encode(Frame(type: MsgType.reply(MsgType.GET_OUTPUT), seq: seq, payload: p.toBytes(), flags: j < end ? Proto.FLAG_MORE : 0)))
            i = j
        } while i < end
    }

    private func getMemory(_ seq: Int) {
        let m = backend.memory()
        reply(MsgType.GET_MEMORY, seq, [
            "peak_ram_bytes": u32(m.peakRamBytes),
            "arena_total_bytes": u32(m.arenaBytes),
            "arena_used_bytes": u32(m.arenaBytes),
            "stack_total_bytes": u32(-1),
            "stack_high_water_bytes": u32(m.stackBytes),
            "flash_used_bytes": u32(m.flashBytes),
            "model_bytes": u32(loaded ? modelBytes : -1),
            "heap_peak_bytes": u32(-1),
        ])
    }

    private func getOpTimings(_ seq: Int, _ f: [String: Any]) throws {
        if !backend.hasOpTimings { throw AgentError(ErrorCode.UNSUPPORTED, "\(backend.runtime) has no per-op timings") }
        try requireModel()
        // A RUN of the frontend alone (mode 2) ran no model ops: an empty list, not an error.
        guard let ops = opTimes ?? (timings.isEmpty ? nil : []) else { throw AgentError(ErrorCode.BAD_INDEX, "no op timings yet: RUN first") }
        var i = Int(f["first_op"] as! Int64)
        if i > ops.count { throw AgentError(ErrorCode.BAD_INDEX, "op \(i) of \(ops.count)", detail: Int64(ops.count)) }
        repeat {
            let p = PayloadWriter()
            var j = i
            var size = 6
            while j < ops.count && j - i < 255 {
                let entry = 8 + 1 + min(ops[j].name.utf8.count, 255)
                if size + entry > txMax { break }
                size += entry
                j += 1
            }
            p.u8(timingUnit).u16(ops.count).u16(i).u8(j - i)
            for k in i..<j { p.u64(ops[k].time).str8(ops[k].name) }
            send(FrameCodec.encode(Frame(type: MsgType.reply(MsgType.GET_OP_TIMINGS), seq: seq, payload: p.toBytes(), flags: j < ops.count ? Proto.FLAG_MORE : 0)))
            i = j
        } while i < ops.count
    }

    @discardableResult
    private func reply(_ type: Int, _ seq: Int, _ values: [String: Any]) -> [UInt8] {
        let wire = Messages.encode(MsgType.reply(type), seq, values)
        send(wire)
        return wire
    }

    @discardableResult
    private func sendError(_ seq: Int, _ code: Int, _ detail: Int64, _ message: String) -> [UInt8] {
        let msg = Array(message.utf8)
        let p = PayloadWriter().u16(code).u32(detail).bytes(msg.prefix(txMax - 6))
        let wire = FrameCodec.encode(Frame(type: MsgType.ERROR, seq: seq, payload: p.toBytes()))
        send(wire)
        return wire
    }

    private func u32(_ v: Int64) -> Int64 {
        if v < 0 { return Proto.UNKNOWN_U32 }
        if v >= Proto.UNKNOWN_U32 { return Proto.UNKNOWN_U32 - 1 }
        return v
    }

    private func pcmOf(_ b: [UInt8]) -> [Int16] {
        (0..<b.count / 2).map { Int16(bitPattern: UInt16(b[2 * $0]) | (UInt16(b[2 * $0 + 1]) << 8)) }
    }

    private func u16Bytes(_ v: [Int]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count * 2)
        for i in v.indices {
            out[2 * i] = UInt8(truncatingIfNeeded: v[i])
            out[2 * i + 1] = UInt8(truncatingIfNeeded: v[i] >> 8)
        }
        return out
    }
}
