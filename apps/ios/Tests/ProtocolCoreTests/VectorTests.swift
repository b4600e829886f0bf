import Foundation
import XCTest
@testable import Frontend
@testable import ProtocolCore

/// The Swift twins against the same shared vectors the Kotlin JVM tests use (`swift test` on a Mac; there is
/// no Swift toolchain on the Linux CI machine). Mirrors ProtocolVectorTest.kt and FrontendVectorTest.kt.
final class VectorTests: XCTestCase {
    private let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()  // Tests/ProtocolCoreTests
        .deletingLastPathComponent().deletingLastPathComponent()  // apps/ios
        .deletingLastPathComponent().deletingLastPathComponent()  // repo root

    private func vectors(_ name: String) throws -> [[String: Any]] {
        let url = repo.appendingPathComponent("profiling/protocol_vectors/\(name)")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return doc["vectors"] as! [[String: Any]]
    }

    private func unhex(_ s: String) -> [UInt8] {
        var out = [UInt8]()
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    private func int64(_ v: Any?) -> Int64 { (v as! NSNumber).int64Value }

    func testCrc() throws {
        for v in try vectors("crc.json") {
            XCTAssertEqual(Int64(FrameCodec.crc32(unhex(v["data_hex"] as! String))), int64(v["crc32"]), v["name"] as! String)
        }
    }

    func testCobs() throws {
        for v in try vectors("cobs.json") {
            let dec = unhex(v["decoded_hex"] as! String), enc = unhex(v["encoded_hex"] as! String)
            XCTAssertEqual(Cobs.encode(dec), enc, v["name"] as! String)
            XCTAssertEqual(Cobs.decode(enc), dec, v["name"] as! String)
        }
    }

    func testFrames() throws {
        for v in try vectors("frames.json") {
            let name = v["name"] as! String
            let type = Int(int64(v["type"])), seq = Int(int64(v["seq"])), flags = Int(int64(v["flags"]))
            let version = Int(int64(v["version"] ?? 1))
            let payload = unhex(v["payload_hex"] as! String), wire = unhex(v["frame_hex"] as! String)
            XCTAssertEqual(Messages.pack(type, fields(type, v["fields"] as! [String: Any])), payload, "\(name)/pack")
            XCTAssertEqual(FrameCodec.encode(Frame(type: type, seq: seq, payload: payload, flags: flags, version: version)), wire, "\(name)/encode")
            let frames = StreamDecoder().feed(wire)
            XCTAssertEqual(frames.count, 1, "\(name)/decode")
            XCTAssertEqual(frames.first?.payload, payload, "\(name)/decode")
            XCTAssertEqual(Messages.pack(type, try Messages.unpack(type, payload)), payload, "\(name)/unpack")
        }
    }

    func testStreams() throws {
        for v in try vectors("stream.json") {
            let dec = StreamDecoder()
            let got = dec.feed(unhex(v["stream_hex"] as! String))
            let want = v["frames"] as! [[String: Any]]
            XCTAssertEqual(got.count, want.count, v["name"] as! String)
            for (g, w) in zip(got, want) {
                XCTAssertEqual(Int64(g.type), int64(w["type"]))
                XCTAssertEqual(g.payload, unhex(w["payload_hex"] as! String))
            }
            XCTAssertEqual(Int64(dec.droppedTotal), int64(v["dropped"]), v["name"] as! String)
        }
    }

    func testFrontendVectors() throws {
        let dir = repo.appendingPathComponent("tests/vectors/frontend")
        let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.first?.isNumber == true }
        XCTAssertFalse(files.isEmpty)
        for f in files {
            let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: f)) as! [String: Any]
            XCTAssertEqual(doc["config_hash"] as? String, FrontendTables.CONFIG_HASH)
            let raw = [UInt8](Data(base64Encoded: doc["wav_int16_le_b64"] as! String)!)
            let pcm = (0..<raw.count / 2).map { Int16(bitPattern: UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8) }
            let want = (doc["features"] as! [[NSNumber]]).flatMap { $0.map { $0.intValue } }
            XCTAssertEqual(Frontend.computeFeatures(pcm), want, f.lastPathComponent)
            if let q = doc["quant"] as? [String: Any] {
                let (mult, shift) = Frontend.quantMultiplier((q["scale"] as! NSNumber).doubleValue)
                XCTAssertEqual(mult, int64(q["multiplier"]))
                XCTAssertEqual(shift, Int(int64(q["shift"])))
                let i8 = Frontend.quantizeFeatures(want, scale: (q["scale"] as! NSNumber).doubleValue, zeroPoint: Int(int64(q["zero_point"])))
                XCTAssertEqual(i8.map { Int($0) }, (q["int8"] as! [[NSNumber]]).flatMap { $0.map { $0.intValue } })
            }
        }
    }

    /// JSON fields -> codec values, using the schema to know which strings are hex bytes.
    private func fields(_ type: Int, _ json: [String: Any]) -> [String: Any] {
        var out = [String: Any]()
        for fd in Messages.schema(type) ?? [] {
            guard let v = json[fd.name] else { continue }
            switch fd.kind {
            case "sha256", "bytes": out[fd.name] = unhex(v as! String)
            case "str8": out[fd.name] = v as! String
            case "u64[]": out[fd.name] = (v as! [NSNumber]).map { $0.int64Value }
            case "tensors":
                out[fd.name] = (v as! [[String: Any]]).map { t in
                    TensorInfo(name: t["name"] as? String ?? "", dtype: t["dtype"] as! String,
                               shape: (t["shape"] as! [NSNumber]).map { $0.intValue },
                               scale: (t["scale"] as? NSNumber)?.doubleValue ?? 0, zeroPoint: (t["zero_point"] as? NSNumber)?.intValue ?? 0)
                }
            case "ops":
                out[fd.name] = (v as! [[String: Any]]).map { OpTiming(name: $0["name"] as! String, time: int64($0["time"])) }
            default: out[fd.name] = int64(v)
            }
        }
        return out
    }
}
