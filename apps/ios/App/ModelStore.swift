import Foundation

/// Where the app finds artifacts: its Documents folder (shared with Finder / the Files app through
/// UIFileSharingEnabled, so `mitsis_executorch_int8.pte` and its manifest can be dropped in from a Mac), then the
/// app bundle (models added to the Xcode target; Xcode compiles `.mlpackage` into `.mlmodelc`). Mirrors ModelStore.kt.
final class ModelStore {
    let documents: URL = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]

    private func files(withSuffix suffix: String) -> [URL] {
        let fm = FileManager.default
        var out = (try? fm.contentsOfDirectory(at: documents, includingPropertiesForKeys: [.contentModificationDateKey])) ?? []
        out += (try? fm.contentsOfDirectory(at: Bundle.main.bundleURL, includingPropertiesForKeys: nil)) ?? []
        return out.filter { $0.lastPathComponent.hasSuffix(suffix) }
    }

    /// The newest `*_executorch_*.pte` (per the `<model>_<target>_<quant>` contract).
    func executorchArtifact() -> URL? {
        files(withSuffix: ".pte").filter { $0.lastPathComponent.contains("_executorch_") }.max { a, b in
            let da = (try? a.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
            let db = (try? b.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
            return da < db
        }
    }

    /// Core ML models: compiled ones in the bundle and `.mlpackage` folders dropped into Documents.
    func coremlModels() -> [URL] {
        (files(withSuffix: ".mlmodelc") + files(withSuffix: ".mlpackage")).sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// The manifest whose `sha256` is `sha256Hex`, if one was copied in or bundled.
    func manifest(sha256Hex: String) -> ArtifactManifest? {
        for url in files(withSuffix: ".manifest.json") {
            guard let data = try? Data(contentsOf: url), let m = try? ArtifactManifest.parse(data) else { continue }
            if m.sha256.lowercased() == sha256Hex.lowercased() { return m }
        }
        return nil
    }

    /// The manifest of a Core ML model by its artifact name (`mitsis_coreml_int8.mlpackage.manifest.json`).
    func manifest(forModel url: URL) -> ArtifactManifest? {
        let stem = url.deletingPathExtension().lastPathComponent
        for m in files(withSuffix: ".manifest.json") where m.lastPathComponent.hasPrefix(stem + ".") {
            if let data = try? Data(contentsOf: m), let parsed = try? ArtifactManifest.parse(data) { return parsed }
        }
        return nil
    }
}
