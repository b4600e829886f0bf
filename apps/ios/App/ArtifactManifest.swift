import Foundation
import ProtocolCore

/// The `<artifact>.manifest.json` that `ondevice export` writes beside every artifact (docs/CONTRACTS.md, section 4).
/// The ExecuTorch backend needs its tensor specs; the demo needs its labels. Mirrors ArtifactManifest.kt.
struct ArtifactManifest {
    let artifact: String
    let target: String
    let quant: String
    let sha256: String
    let inputs: [TensorInfo]
    let outputs: [TensorInfo]
    let labels: [String]

    private struct Spec: Decodable {
        let name: String?
        let shape: [Int]
        let dtype: String
        let scale: Double?
        let zero_point: Int?
    }

    private struct Doc: Decodable {
        let artifact: String
        let target: String?
        let quant: String?
        let sha256: String?
        let inputs: [Spec]
        let outputs: [Spec]
        let labels: [String]?
    }

    static func parse(_ data: Data) throws -> ArtifactManifest {
        let d = try JSONDecoder().decode(Doc.self, from: data)
        func specs(_ s: [Spec]) -> [TensorInfo] {
            s.enumerated().map { i, t in
                TensorInfo(name: t.name ?? "t\(i)", dtype: t.dtype, shape: t.shape, scale: t.scale ?? 0, zeroPoint: t.zero_point ?? 0)
            }
        }
        return ArtifactManifest(artifact: d.artifact, target: d.target ?? "", quant: d.quant ?? "", sha256: d.sha256 ?? "",
                                inputs: specs(d.inputs), outputs: specs(d.outputs), labels: d.labels ?? [])
    }

    /// Read `<model file>.manifest.json`, or nil when it was not copied with the artifact.
    static func besides(_ model: URL) -> ArtifactManifest? {
        let url = model.deletingLastPathComponent().appendingPathComponent(model.lastPathComponent + ".manifest.json")
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? parse(data)
    }
}
