import CryptoKit
import Foundation
import XCTest
@testable import ProtocolCore

/// The Swift Agent driven in-process, frame by frame, as test_apps_kotlin.py drives the Kotlin one over a socket.
final class AgentSessionTests: XCTestCase {
    /// out[i] = clamp(-in[i]): a backend whose output the test can predict exactly.
    final class NegateBackend: AgentBackend {
        let runtime = "swift-negate"
        let formats: Set<Int> = [ModelFormat.RAW]
        var n = 0
        var input = [UInt8]()
        var out = [UInt8]()
        func load(_ model: [UInt8], format: Int) throws { n = model.count; input = [UInt8](repeating: 0, count: n) }
        func inputs() -> [TensorInfo] { [TensorInfo(name: "x", dtype: "int8", shape: [1, n])] }
        func outputs() -> [TensorInfo] { [TensorInfo(name: "y", dtype: "int8", shape: [1, n])] }
        func setInput(_ index: Int, _ data: [UInt8]) throws { input = data }
        func run() throws { out = input.map { UInt8(bitPattern: Int8(clamping: -Int(Int8(bitPattern: $0)))) } }
        func output(_ index: Int) throws -> [UInt8] { out }
        func memory() -> MemoryStats { MemoryStats(peakRamBytes: 1, flashBytes: Int64(n)) }
    }

    private var wire = [UInt8]()
    private var agent: Agent!
    private var seq = 0

    override func setUp() {
        wire = []
        agent = Agent(backend: NegateBackend(), description: DeviceDescription(device: "test", board: "host"),
                      send: { [unowned self] in self.wire += $0 }, initialBootId: 7)
    }

    /// Send one request; return the decoded frames the agent wrote in answer (LOG frames dropped).
    @discardableResult
    private func request(_ type: Int, _ values: [String: Any] = [:], seq fixed: Int? = nil) -> [Frame] {
        if fixed == nil { seq += 1 }
        wire = []
        let frames = StreamDecoder().feed(Messages.encode(type, fixed ?? seq, values))
        agent.handle(frames[0])
        return StreamDecoder().feed(wire).filter { $0.type != MsgType.LOG }
    }

    func testSession() throws {
        agent.boot()
        XCTAssertEqual(StreamDecoder().feed(wire).first?.type, MsgType.BOOT)
        let hello = try Messages.unpack(MsgType.reply(MsgType.HELLO), request(MsgType.HELLO, ["host_version": Int64(1), "host_max_payload": Int64(512)])[0].payload)
        XCTAssertEqual(hello["boot_id"] as? Int64, 7)
        XCTAssertEqual(hello["runtime"] as? String, "swift-negate")

        let model = [UInt8](repeating: 3, count: 700)
        request(MsgType.LOAD_MODEL_BEGIN, ["total_bytes": Int64(model.count), "format": Int64(ModelFormat.RAW),
                                           "sha256": Array(SHA256.hash(data: model)), "name": "neg"])
        for off in stride(from: 0, to: model.count, by: 500) {
            let r = request(MsgType.LOAD_MODEL_CHUNK, ["offset": Int64(off), "data": Array(model[off..<min(off + 500, model.count)])])
            XCTAssertEqual(r[0].type, MsgType.reply(MsgType.LOAD_MODEL_CHUNK))
        }
        XCTAssertEqual(request(MsgType.LOAD_MODEL_END)[0].type, MsgType.reply(MsgType.LOAD_MODEL_END))

        let x = (0..<700).map { UInt8(truncatingIfNeeded: $0 * 37) }
        for off in stride(from: 0, to: x.count, by: 400) {
            request(MsgType.SET_INPUT, ["index": Int64(0), "total": Int64(700), "offset": Int64(off), "data": Array(x[off..<min(off + 400, 700)])])
        }
        let run = request(MsgType.RUN, ["runs": Int64(130), "warmup": Int64(2), "unit": Int64(Proto.UNIT_DEFAULT)])
        XCTAssertTrue(run.allSatisfy { $0.type == MsgType.reply(MsgType.RUN) })
        let counts = try run.map { try Messages.unpack($0.type, $0.payload)["count"] as! Int64 }
        XCTAssertEqual(counts.reduce(0, +), 130)
        XCTAssertEqual(run.last?.flags, 0)
        let again = request(MsgType.RUN, ["runs": Int64(130), "warmup": Int64(2), "unit": Int64(Proto.UNIT_DEFAULT)], seq: seq)
        XCTAssertEqual(again.map { $0.payload }, run.map { $0.payload }, "a retried RUN re-streams, it does not run again")

        let out = try request(MsgType.GET_OUTPUT, ["index": Int64(0), "offset": Int64(0), "length": Proto.UNKNOWN_U32])
            .flatMap { try Messages.unpack($0.type, $0.payload)["data"] as! [UInt8] }
        XCTAssertEqual(out, x.map { UInt8(bitPattern: Int8(clamping: -Int(Int8(bitPattern: $0)))) })

        let bad = request(MsgType.SET_INPUT, ["index": Int64(0), "total": Int64(699), "offset": Int64(0), "data": [UInt8(0)]])
        XCTAssertEqual(try Messages.unpack(MsgType.ERROR, bad[0].payload)["code"] as? Int64, Int64(ErrorCode.INVALID_INPUT_SIZE))
    }
}
