import CoreML
import CryptoKit
import Foundation
import ProtocolCore

/// Runs Core ML models (`mitsis_coreml_int8.mlpackage`) as the agent's built-in models.
///
/// An `.mlpackage` is a folder, which LOAD_MODEL cannot carry, and iOS apps ship Core ML models compiled into the
/// bundle anyway. So the host selects them by name (SELECT_BUILTIN_MODEL; `ondevice profile` does this for a
/// folder artifact), the way an MCU selects a model compiled into its firmware.
final class CoreMLBackend: AgentBackend {
    let runtime = "coreml"
    let formats: Set<Int> = []

    private let models: [URL]
    private let store: ModelStore
    private let computeUnits: MLComputeUnits
    private var model: MLModel?
    private var inputSpecs: [TensorInfo] = []
    private var outputSpecs: [TensorInfo] = []
    private var inputArrays: [MLMultiArray] = []
    private var lastOutputs: MLFeatureProvider?
    private var modelBytes: Int64 = 0
    private let footprint = FootprintPeak()

    init(store: ModelStore, computeUnits: MLComputeUnits = .all) {
        self.store = store
        self.models = store.coremlModels()
        self.computeUnits = computeUnits
    }

    /// Model names as the host derives them from artifact names: `mitsis_coreml_int8.mlpackage` -> `mitsis`.
    var builtinModels: [String] {
        models.map { String($0.deletingPathExtension().lastPathComponent.split(separator: "_").first ?? "") }
    }

    func loadBuiltin(_ index: Int) throws -> BuiltinInfo {
        unload()
        var url = models[index]
        do {
            if url.pathExtension == "mlpackage" { url = try MLModel.compileModel(at: url) }
            let config = MLModelConfiguration()
            config.computeUnits = computeUnits
            let m = try MLModel(contentsOf: url, configuration: config)
            try describe(m)
            model = m
        } catch let e as AgentError {
            throw e
        } catch {
            throw AgentError(ErrorCode.MODEL_INVALID, "Core ML could not load \(models[index].lastPathComponent): \(error)")
        }
        modelBytes = folderSize(models[index])
        footprint.reset()
        // The exporter's manifest has the artifact's SHA-256; a compiled bundle copy has none we could check.
        let sha = store.manifest(forModel: models[index]).map { hexBytes($0.sha256) } ?? [UInt8](repeating: 0, count: 32)
        return BuiltinInfo(sha256: sha.count == 32 ? sha : [UInt8](repeating: 0, count: 32), bytes: modelBytes)
    }

    func load(_ model: [UInt8], format: Int) throws {
        throw AgentError(ErrorCode.UNSUPPORTED, "Core ML models are built in: add the .mlpackage to the app target")
    }

    func inputs() -> [TensorInfo] { inputSpecs }

    func outputs() -> [TensorInfo] { outputSpecs }

    func setInput(_ index: Int, _ data: [UInt8]) throws {
        guard index < inputArrays.count else { throw AgentError(ErrorCode.BAD_INDEX, "no input \(index)") }
        let arr = inputArrays[index]
        guard data.count == inputSpecs[index].byteSize else {
            throw AgentError(ErrorCode.INVALID_INPUT_SIZE, "input \(index) needs \(inputSpecs[index].byteSize) bytes")
        }
        // A freshly allocated MLMultiArray is contiguous, so the bytes go in as they are.
        arr.withUnsafeMutableBytes { ptr, _ in ptr.copyBytes(from: data) }
    }

    func run() throws {
        guard let m = model else { throw AgentError(ErrorCode.NO_MODEL, "no model loaded") }
        var features = [String: MLFeatureValue]()
        for (spec, arr) in zip(inputSpecs, inputArrays) { features[spec.name] = MLFeatureValue(multiArray: arr) }
        do {
            let provider = try MLDictionaryFeatureProvider(dictionary: features)
            lastOutputs = try m.prediction(from: provider)
        } catch {
            throw AgentError(ErrorCode.INVOKE_FAILED, "Core ML prediction failed: \(error)")
        }
    }

    func output(_ index: Int) throws -> [UInt8] {
        guard index < outputSpecs.count, let arr = lastOutputs?.featureValue(for: outputSpecs[index].name)?.multiArrayValue else {
            throw AgentError(ErrorCode.BAD_INDEX, "no output \(index)")
        }
        // Outputs may be strided: read element by element (they are small: class scores).
        var out = [UInt8]()
        out.reserveCapacity(outputSpecs[index].byteSize)
        for i in 0..<arr.count {
            switch arr.dataType {
            case .int32: withUnsafeBytes(of: arr[i].int32Value.littleEndian) { out.append(contentsOf: $0) }
            case .float16: withUnsafeBytes(of: Float16(arr[i].floatValue).bitPattern.littleEndian) { out.append(contentsOf: $0) }
            default: withUnsafeBytes(of: arr[i].floatValue.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    func memory() -> MemoryStats {
        MemoryStats(peakRamBytes: footprint.sample(), flashBytes: modelBytes)
    }

    func unload() {
        model = nil
        lastOutputs = nil
        inputArrays = []
    }

    private func describe(_ m: MLModel) throws {
        func spec(_ name: String, _ d: MLFeatureDescription) throws -> TensorInfo {
            guard let c = d.multiArrayConstraint else {
                throw AgentError(ErrorCode.UNSUPPORTED, "Core ML feature \(name) is not a multi-array")
            }
            let dtype: String
            switch c.dataType {
            case .float32: dtype = "float32"
            case .float16: dtype = "float16"
            case .int32: dtype = "int32"
            default: throw AgentError(ErrorCode.UNSUPPORTED, "Core ML dtype of \(name) has no protocol code (float64)")
            }
            return TensorInfo(name: name, dtype: dtype, shape: c.shape.map { $0.intValue })
        }
        let desc = m.modelDescription
        inputSpecs = try desc.inputDescriptionsByName.keys.sorted().map { try spec($0, desc.inputDescriptionsByName[$0]!) }
        outputSpecs = try desc.outputDescriptionsByName.keys.sorted().map { try spec($0, desc.outputDescriptionsByName[$0]!) }
        inputArrays = try inputSpecs.map { s in
            let dt: MLMultiArrayDataType = s.dtype == "float16" ? .float16 : (s.dtype == "int32" ? .int32 : .float32)
            return try MLMultiArray(shape: s.shape.map { NSNumber(value: $0) }, dataType: dt)
        }
    }

    private func folderSize(_ url: URL) -> Int64 {
        guard let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total: Int64 = 0
        for case let f as URL in e { total += Int64((try? f.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
        return total
    }

    private func hexBytes(_ hex: String) -> [UInt8] {
        var out = [UInt8]()
        var i = hex.startIndex
        while let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex), i != hex.endIndex {
            guard let b = UInt8(hex[i..<j], radix: 16) else { return [] }
            out.append(b)
            i = j
        }
        return out
    }
}
