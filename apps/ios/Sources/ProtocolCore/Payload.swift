import Foundation

/// Little-endian payload builder for the field kinds of PROTOCOL.md. Mirrors Payload.kt.
public final class PayloadWriter {
    private var out = [UInt8]()

    public init() { out.reserveCapacity(64) }

    @discardableResult public func u8(_ v: Int) -> PayloadWriter { out.append(UInt8(truncatingIfNeeded: v)); return self }

    @discardableResult public func u16(_ v: Int) -> PayloadWriter { u8(v).u8(v >> 8) }

    @discardableResult public func u32(_ v: Int64) -> PayloadWriter {
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * Int64(k)))) }
        return self
    }

    @discardableResult public func u64(_ v: Int64) -> PayloadWriter {
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * Int64(k)))) }
        return self
    }

    @discardableResult public func i32(_ v: Int) -> PayloadWriter { u32(Int64(Int32(truncatingIfNeeded: v))) }

    @discardableResult public func f32(_ v: Float) -> PayloadWriter { u32(Int64(v.bitPattern)) }

    @discardableResult public func sha256(_ v: [UInt8]) -> PayloadWriter {
        precondition(v.count == 32, "sha256 must be 32 bytes")
        return bytes(v)
    }

    @discardableResult public func str8(_ s: String) -> PayloadWriter {
        // Names longer than a str8 are cut rather than failing a reply.
        let b = Array(Array(s.utf8).prefix(255))
        u8(b.count)
        return bytes(b)
    }

    @discardableResult public func bytes<C: Collection>(_ b: C) -> PayloadWriter where C.Element == UInt8 {
        out.append(contentsOf: b)
        return self
    }

    public var size: Int { out.count }

    public func toBytes() -> [UInt8] { out }
}

/// Reader for the same kinds; a short payload throws AgentError with BAD_PAYLOAD. Mirrors PayloadReader.
public final class PayloadReader {
    private let p: [UInt8]
    public private(set) var pos = 0

    public init(_ p: [UInt8]) { self.p = p }

    private func need(_ n: Int) throws {
        if pos + n > p.count {
            throw AgentError(ErrorCode.BAD_PAYLOAD, "payload of \(p.count) bytes is too short at offset \(pos)")
        }
    }

    public func u8() throws -> Int { try need(1); defer { pos += 1 }; return Int(p[pos]) }

    public func u16() throws -> Int {
        let lo = try u8()
        let hi = try u8()
        return lo | (hi << 8)
    }

    public func u32() throws -> Int64 {
        try need(4)
        var v: Int64 = 0
        for k in 0..<4 { v |= Int64(p[pos + k]) << (8 * Int64(k)) }
        pos += 4
        return v
    }

    public func u64() throws -> Int64 { let lo = try u32(); let hi = try u32(); return lo | (hi << 32) }

    public func i32() throws -> Int { Int(Int32(truncatingIfNeeded: try u32())) }

    public func f32() throws -> Float { Float(bitPattern: UInt32(truncatingIfNeeded: try u32())) }

    public func sha256() throws -> [UInt8] { try need(32); defer { pos += 32 }; return Array(p[pos..<pos + 32]) }

    public func str8() throws -> String {
        let n = try u8()
        try need(n)
        defer { pos += n }
        return String(decoding: p[pos..<pos + n], as: UTF8.self)
    }

    public func rest() -> [UInt8] { defer { pos = p.count }; return Array(p[pos...]) }
}
