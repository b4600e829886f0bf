import Foundation
import Frontend
import ProtocolCore

/// Result of one demo inference, with the two latencies users care about kept apart.
struct Classification {
    let label: String
    let score: Float
    let scores: [Float]
    let frontendMs: Double
    let modelMs: Double
}

/// The demo pipeline: int16 audio -> integer frontend -> model input (float or int8, from the model's specs)
/// -> backend -> label. Uses the same AgentBackend the profiling agent drives. Mirrors Classifier.kt.
final class Classifier {
    static let defaultLabels = ["neutral", "happy", "sad", "angry"]

    private let backend: AgentBackend
    private let labels: [String]

    init(backend: AgentBackend, labels: [String]) {
        self.backend = backend
        self.labels = labels.isEmpty ? Classifier.defaultLabels : labels
    }

    func classify(_ pcm: [Int16]) throws -> Classification {
        guard let input = backend.inputs().first, let output = backend.outputs().first else {
            throw AgentError(ErrorCode.NO_MODEL, "no model loaded")
        }
        let t0 = Agent.monotonicNs()
        let feats = Frontend.computeFeatures(pcm)
        // Integer path for int8 inputs: identical bytes to the C, Kotlin and Python twins (docs/CONTRACTS.md, 2).
        let bytes = try FrontendPipeline().modelInput(feats, input)
        let t1 = Agent.monotonicNs()
        try backend.setInput(0, bytes)
        try backend.run()
        let raw = try backend.output(0)
        let t2 = Agent.monotonicNs()
        let scores = toFloats(raw, output)
        let best = scores.indices.max(by: { scores[$0] < scores[$1] }) ?? 0
        return Classification(label: best < labels.count ? labels[best] : "class \(best)", score: scores.isEmpty ? 0 : scores[best],
                              scores: scores, frontendMs: Double(t1 - t0) / 1e6, modelMs: Double(t2 - t1) / 1e6)
    }

    private func toFloats(_ raw: [UInt8], _ spec: TensorInfo) -> [Float] {
        switch spec.dtype {
        case "float32":
            return stride(from: 0, to: raw.count, by: 4).map { i in
                Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
            }
        case "float16":
            return stride(from: 0, to: raw.count, by: 2).map { i in Float(Float16(bitPattern: UInt16(raw[i]) | UInt16(raw[i + 1]) << 8)) }
        case "int8":
            // Dequantise with the output's own scale so int8 and float models print comparable scores.
            return raw.map { Float(Double(Int(Int8(bitPattern: $0)) - spec.zeroPoint) * spec.scale) }
        default:
            return []
        }
    }
}
