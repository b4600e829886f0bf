import Foundation
import ProtocolCore

/// Plugs the Swift frontend into the protocol agent for SET_MODE 1 (frontend + model) and 2 (frontend only).
/// Mirrors FrontendPipeline.kt.
public struct FrontendPipeline: FeaturePipeline {
    public init() {}

    public var samples: Int { FrontendTables.CLIP_SAMPLES }

    public func features(_ pcm: [Int16]) -> [Int] { Frontend.computeFeatures(pcm) }

    public func modelInput(_ features: [Int], _ spec: TensorInfo) throws -> [UInt8] {
        switch spec.dtype {
        case "int8":
            return Frontend.quantizeFeatures(features, scale: spec.scale, zeroPoint: spec.zeroPoint).map { UInt8(bitPattern: $0) }
        case "float32":
            var out = [UInt8]()
            out.reserveCapacity(features.count * 4)
            for f in Frontend.toModelInput(features) {
                let b = f.bitPattern.littleEndian
                withUnsafeBytes(of: b) { out.append(contentsOf: $0) }
            }
            return out
        default:
            throw AgentError(ErrorCode.UNSUPPORTED, "model input dtype \(spec.dtype) is not a frontend output")
        }
    }
}
