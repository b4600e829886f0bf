import CoreML
import Foundation
import Frontend
import ProtocolCore
import UIKit

/// Starts and stops the profiling agent on port 47474 (the host's `ios://` transport default) and keeps the
/// screen awake while it runs: iOS suspends apps in the background, so the agent works in the foreground only.
final class AgentController: ObservableObject {
    static let port: UInt16 = 47474
    static let board = "ios-generic"

    @Published var running = false
    @Published var status = "stopped"

    private var server: AgentServer?
    private let store = ModelStore()

    func toggle() {
        running ? stop() : start()
    }

    func start() {
        let store = self.store
        let work = FileManager.default.temporaryDirectory
        let description = DeviceDescription(device: DeviceStats.model(), board: AgentController.board, ramBytes: DeviceStats.totalRam())
        do {
            let s = try AgentServer(port: AgentController.port) { send, bootId in
                let backend = FormatDispatchBackend([
                    ExecuTorchBackend(workDir: work, manifestFor: { store.manifest(sha256Hex: $0) }),
                    CoreMLBackend(store: store),
                ])
                return Agent(backend: backend, description: description, send: send, initialBootId: bootId,
                             pipeline: FrontendPipeline())
            }
            s.onStatus = { [weak self] text in DispatchQueue.main.async { self?.status = text } }
            s.start()
            server = s
            running = true
            UIApplication.shared.isIdleTimerDisabled = true
        } catch {
            status = "cannot listen on \(AgentController.port): \(error)"
        }
    }

    func stop() {
        server?.stop()
        server = nil
        running = false
        status = "stopped"
        UIApplication.shared.isIdleTimerDisabled = false
    }
}
