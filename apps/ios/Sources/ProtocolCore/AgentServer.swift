import Foundation
import Network

/// Serves the protocol on a loopback TCP port, one host connection at a time. Mirrors AgentServer.kt.
///
/// Each connection is a fresh agent session, as after a device boot: it starts with a 0x00 and a BOOT frame
/// and a new boot id. usbmuxd delivers the host's `ios://` connection to this port on the phone's loopback,
/// so the agent never listens on the network.
public final class AgentServer {
    public typealias AgentFactory = (_ send: @escaping ([UInt8]) -> Void, _ bootId: Int64) -> Agent

    private let listener: NWListener
    private let newAgent: AgentFactory
    private let queue = DispatchQueue(label: "dev.ondevice.agent")
    private var bootId = Int64(UInt32.random(in: 1...UInt32.max))
    private var current: NWConnection?
    private var agent: Agent?
    private var decoder = StreamDecoder()

    /// Called on the agent queue with a one-line status for the UI ("listening", "host connected", ...).
    public var onStatus: ((String) -> Void)?

    public init(port: UInt16, newAgent: @escaping AgentFactory) throws {
        let params = NWParameters.tcp
        params.allowLocalEndpointReuse = true
        params.requiredLocalEndpoint = NWEndpoint.hostPort(host: .ipv4(.loopback), port: NWEndpoint.Port(rawValue: port)!)
        if let tcp = params.defaultProtocolStack.transportProtocol as? NWProtocolTCP.Options {
            tcp.noDelay = true
        }
        listener = try NWListener(using: params)
        self.newAgent = newAgent
    }

    public func start() {
        listener.stateUpdateHandler = { [weak self] state in
            if case .ready = state { self?.onStatus?("listening on 127.0.0.1:\(self?.listener.port?.rawValue ?? 0)") }
            if case .failed(let e) = state { self?.onStatus?("listener failed: \(e)") }
        }
        listener.newConnectionHandler = { [weak self] conn in self?.accept(conn) }
        listener.start(queue: queue)
    }

    public func stop() {
        queue.async {
            self.current?.cancel()
            self.agent?.close()
            self.listener.cancel()
        }
    }

    private func accept(_ conn: NWConnection) {
        // A new host connection replaces the old one (the host reconnected after a crash or timeout).
        current?.cancel()
        agent?.close()
        current = conn
        decoder = StreamDecoder()
        bootId = (bootId + 1) & 0xFFFF_FFFF
        if bootId == 0 { bootId = 1 }
        let send: ([UInt8]) -> Void = { bytes in conn.send(content: Data(bytes), completion: .contentProcessed { _ in }) }
        let a = newAgent(send, bootId)
        agent = a
        conn.stateUpdateHandler = { [weak self] state in
            switch state {
            case .ready:
                self?.onStatus?("host connected")
                a.boot()
                self?.receive(conn, a)
            case .failed, .cancelled:
                self?.onStatus?("host disconnected")
            default:
                break
            }
        }
        conn.start(queue: queue)
    }

    private func receive(_ conn: NWConnection, _ a: Agent) {
        conn.receive(minimumIncompleteLength: 1, maximumLength: 4096) { [weak self] data, _, isComplete, error in
            guard let self = self, self.current === conn else { return }
            if let data = data, !data.isEmpty {
                for frame in self.decoder.feed(data) { a.handle(frame) }
            }
            if isComplete || error != nil {
                a.close()
                conn.cancel()
                return
            }
            self.receive(conn, a)
        }
    }
}
