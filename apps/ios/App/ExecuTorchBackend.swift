import CryptoKit
import ExecuTorch
import Foundation
import ProtocolCore

/// Runs `.pte` programs (e.g. `mitsis_executorch_int8.pte`) with the ExecuTorch Swift API. Mirrors ExecuTorchBackend.kt.
///
/// Tensor specs come from the artifact manifest, found by the model's SHA-256 (`manifestFor`), exactly as on
/// Android, so both apps treat uploads the same way. Raw protocol bytes are little-endian, as on every iPhone.
final class ExecuTorchBackend: AgentBackend {
    let runtime = "executorch"
    let formats: Set<Int> = [ModelFormat.EXECUTORCH]

    private let workDir: URL
    private let manifestFor: (String) -> ArtifactManifest?
    private var module: Module?
    private var manifest: ArtifactManifest?
    private var inputTensors: [AnyTensor?] = []
    private var outputValues: [Value] = []
    private var modelBytes: Int64 = 0
    private let footprint = FootprintPeak()

    init(workDir: URL, manifestFor: @escaping (String) -> ArtifactManifest?) {
        self.workDir = workDir
        self.manifestFor = manifestFor
    }

    func load(_ model: [UInt8], format: Int) throws {
        unload()
        let sha = SHA256.hash(data: model).map { String(format: "%02x", $0) }.joined()
        guard let m = manifestFor(sha) else {
            throw AgentError(ErrorCode.MODEL_INVALID, "no manifest with sha256 \(sha.prefix(12)): copy <artifact>.manifest.json into the app's Documents")
        }
        // Module takes a path, so the verified bytes go to app-private storage first.
        let url = workDir.appendingPathComponent("agent_model.pte")
        try Data(model).write(to: url, options: .atomic)
        let mod = Module(filePath: url.path)
        do {
            try mod.load("forward")
        } catch {
            throw AgentError(ErrorCode.MODEL_INVALID, "ExecuTorch could not load the program: \(error)")
        }
        module = mod
        manifest = m
        modelBytes = Int64(model.count)
        inputTensors = Array(repeating: nil, count: m.inputs.count)
        footprint.reset()
    }

    /// Load an artifact file directly (the demo screen).
    func load(file: URL, manifest m: ArtifactManifest) throws {
        unload()
        let mod = Module(filePath: file.path)
        try mod.load("forward")
        module = mod
        manifest = m
        modelBytes = Int64((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
        inputTensors = Array(repeating: nil, count: m.inputs.count)
        footprint.reset()
    }

    func inputs() -> [TensorInfo] { manifest?.inputs ?? [] }

    func outputs() -> [TensorInfo] { manifest?.outputs ?? [] }

    func setInput(_ index: Int, _ data: [UInt8]) throws {
        guard index < inputs().count else { throw AgentError(ErrorCode.BAD_INDEX, "no input \(index)") }
        let spec = inputs()[index]
        guard data.count == spec.byteSize else {
            throw AgentError(ErrorCode.INVALID_INPUT_SIZE, "input \(spec.name) needs \(spec.byteSize) bytes, got \(data.count)")
        }
        let dt = try dataType(spec.dtype)
        inputTensors[index] = AnyTensor(data: Data(data), shape: spec.shape, dataType: dt)
    }

    func run() throws {
        guard let mod = module else { throw AgentError(ErrorCode.NO_MODEL, "no model loaded") }
        var args = [AnyTensor]()
        for (i, t) in inputTensors.enumerated() {
            guard let t = t else { throw AgentError(ErrorCode.BAD_INDEX, "input \(i) was never set") }
            args.append(t)
        }
        do {
            outputValues = try mod.forward(args)
        } catch {
            throw AgentError(ErrorCode.INVOKE_FAILED, "ExecuTorch forward failed: \(error)")
        }
    }

    func output(_ index: Int) throws -> [UInt8] {
        guard index < outputValues.count, index < outputs().count, let t = outputValues[index].anyTensor else {
            throw AgentError(ErrorCode.BAD_INDEX, "no output \(index)")
        }
        let n = outputs()[index].byteSize
        var out = [UInt8](repeating: 0, count: n)
        t.bytes { pointer, _, _ in
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: n)) }
        }
        return out
    }

    func memory() -> MemoryStats {
        MemoryStats(peakRamBytes: footprint.sample(), flashBytes: modelBytes)
    }

    func unload() {
        module = nil
        outputValues = []
    }

    private func dataType(_ dtype: String) throws -> DataType {
        switch dtype {
        case "float32": return .float
        case "int8": return .char
        case "uint8": return .byte
        case "int32": return .int
        case "int64": return .long
        default: throw AgentError(ErrorCode.UNSUPPORTED, "ExecuTorch input dtype \(dtype) is not handled")
        }
    }
}
