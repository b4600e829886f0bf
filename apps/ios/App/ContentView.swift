import AVFoundation
import SwiftUI

/// Demo screen: record one second, run the integer frontend and the model, show the emotion and latency;
/// below it, the profiling agent switch. Same screen as the Android app's MainActivity.
struct ContentView: View {
    enum Runtime: String, CaseIterable, Identifiable {
        case executorch = "ExecuTorch (.pte)"
        case coreml = "Core ML (.mlpackage)"
        var id: String { rawValue }
    }

    @StateObject private var agent = AgentController()
    @State private var runtime = Runtime.executorch
    @State private var emotion = ""
    @State private var details = "Copy an artifact and its manifest into the app's Documents (Finder), then record."
    @State private var busy = false
    // @State keeps one instance across view re-creation (the loaded model is cached in DemoModel).
    @State private var demo = DemoModel()
    @State private var audio = AudioCapture()

    var body: some View {
        VStack(alignment: .leading, spacing: 16) {
            Picker("Runtime", selection: $runtime) {
                ForEach(Runtime.allCases) { Text($0.rawValue).tag($0) }
            }
            .pickerStyle(.segmented)
            Button(busy ? "Recording…" : "Record 1 s and classify") { record() }
                .buttonStyle(.borderedProminent)
                .disabled(busy)
            Text(emotion).font(.system(size: 40, weight: .semibold)).frame(maxWidth: .infinity)
            Text(details).font(.system(.body, design: .monospaced))
            Divider()
            Toggle("Profiling agent on port \(AgentController.port)", isOn: Binding(get: { agent.running }, set: { _ in agent.toggle() }))
            Text(agent.status).font(.system(.footnote, design: .monospaced))
            Spacer()
        }
        .padding(24)
    }

    private func record() {
        busy = true
        emotion = "…"
        let rt = runtime  // read @State on the main thread; the callbacks run on audio queues
        AVAudioSession.sharedInstance().requestRecordPermission { granted in
            guard granted else {
                DispatchQueue.main.async { busy = false; emotion = "error"; details = "microphone permission denied" }
                return
            }
            audio.recordOneSecond { result in
                let text: (String, String)
                do {
                    let pcm = try result.get()
                    let r = try demo.classifier(for: rt).classify(pcm)
                    let scores = r.scores.map { String(format: "%.2f", $0) }.joined(separator: " ")
                    text = (r.label, String(format: "score %.2f\nfrontend %.2f ms\nmodel %.2f ms (%@)\nscores %@",
                                            r.score, r.frontendMs, r.modelMs, rt.rawValue, scores))
                } catch {
                    text = ("error", "\(error)")
                }
                DispatchQueue.main.async { busy = false; emotion = text.0; details = text.1 }
            }
        }
    }
}

/// Loads the demo's model once per runtime choice (a load takes longer than a run).
final class DemoModel {
    private let store = ModelStore()
    private var cached: (ContentView.Runtime, Classifier)?

    func classifier(for runtime: ContentView.Runtime) throws -> Classifier {
        if let c = cached, c.0 == runtime { return c.1 }
        let classifier: Classifier
        switch runtime {
        case .executorch:
            guard let url = store.executorchArtifact() else { throw DemoError("no *_executorch_*.pte in Documents or the app bundle") }
            guard let m = ArtifactManifest.besides(url) else { throw DemoError("no \(url.lastPathComponent).manifest.json beside it") }
            let backend = ExecuTorchBackend(workDir: FileManager.default.temporaryDirectory, manifestFor: { _ in m })
            try backend.load(file: url, manifest: m)
            classifier = Classifier(backend: backend, labels: m.labels)
        case .coreml:
            let backend = CoreMLBackend(store: store)
            guard !backend.builtinModels.isEmpty else { throw DemoError("no Core ML model in the app bundle or Documents") }
            _ = try backend.loadBuiltin(0)
            let labels = store.coremlModels().first.flatMap { store.manifest(forModel: $0)?.labels } ?? []
            classifier = Classifier(backend: backend, labels: labels)
        }
        cached = (runtime, classifier)
        return classifier
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
