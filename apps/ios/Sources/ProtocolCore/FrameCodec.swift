import Foundation

/// Frame = COBS(header + payload + CRC-32 LE) + 0x00. Mirrors FrameCodec.kt.
/// CRC-32 is IEEE 802.3 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF), the same as zlib's and
/// java.util.zip.CRC32; Swift has no CRC in Foundation, so it is computed here with a 256-entry table.
public enum FrameCodec {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func crc32(_ data: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    public static func crc32(_ data: [UInt8]) -> UInt32 { crc32(data[...]) }

    /// Header + payload + CRC, before COBS.
    public static func body(_ frame: Frame) -> [UInt8] {
        let n = frame.payload.count
        precondition(n <= Proto.MAX_PAYLOAD, "payload of \(n) bytes exceeds \(Proto.MAX_PAYLOAD)")
        var out = [UInt8]()
        out.reserveCapacity(Proto.HEADER_SIZE + n + Proto.CRC_SIZE)
        out.append(UInt8(truncatingIfNeeded: frame.version))
        out.append(UInt8(truncatingIfNeeded: frame.type))
        out.append(UInt8(truncatingIfNeeded: frame.flags))
        out.append(UInt8(truncatingIfNeeded: frame.seq))
        out.append(UInt8(truncatingIfNeeded: frame.seq >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(contentsOf: frame.payload)
        let crc = crc32(out)
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k)))) }
        return out
    }

    /// The exact wire bytes, delimiter included.
    public static func encode(_ frame: Frame) -> [UInt8] {
        var enc = Cobs.encode(body(frame))
        enc.append(0)
        return enc
    }

    /// Decode one COBS block (delimiter stripped).
    public static func decodeBody(_ enc: [UInt8]) throws -> Frame {
        guard let body = Cobs.decode(enc) else { throw FrameError(kind: "cobs", message: "malformed COBS block") }
        if body.count < Proto.HEADER_SIZE + Proto.CRC_SIZE {
            throw FrameError(kind: "short", message: "frame of \(body.count) bytes is shorter than header + CRC")
        }
        if body.count > Proto.MAX_FRAME { throw FrameError(kind: "too_large", message: "frame of \(body.count) bytes") }
        let end = body.count - Proto.CRC_SIZE
        var crc: UInt32 = 0
        for k in 0..<4 { crc |= UInt32(body[end + k]) << (8 * UInt32(k)) }
        if crc != crc32(body[0..<end]) { throw FrameError(kind: "crc", message: "CRC mismatch") }
        let plen = Int(body[5]) | (Int(body[6]) << 8)
        if plen != end - Proto.HEADER_SIZE {
            throw FrameError(kind: "length", message: "payload_len \(plen) disagrees with frame size \(body.count)")
        }
        return Frame(
            type: Int(body[1]),
            seq: Int(body[3]) | (Int(body[4]) << 8),
            payload: Array(body[Proto.HEADER_SIZE..<end]),
            flags: Int(body[2]),
            version: Int(body[0])
        )
    }
}

/// Incremental decoder: feed any byte chunks, get whole frames back. Garbage, bad CRCs and over-long runs
/// are dropped and counted; decoding resumes after the next 0x00. Mirrors StreamDecoder in FrameCodec.kt.
public final class StreamDecoder {
    private let maxEncoded: Int
    private var buf = [UInt8]()
    private var overflow = false
    public private(set) var dropped: [String: Int] = [:]

    public init(maxEncoded: Int = Proto.MAX_ENCODED) {
        self.maxEncoded = maxEncoded
        buf.reserveCapacity(maxEncoded)
    }

    public var droppedTotal: Int { dropped.values.reduce(0, +) }

    public func feed<S: Sequence>(_ data: S) -> [Frame] where S.Element == UInt8 {
        var frames = [Frame]()
        for b in data {
            if b != 0 {
                if overflow { continue }
                buf.append(b)
                if buf.count > maxEncoded {
                    // Skip to the next delimiter instead of growing without bound.
                    overflow = true
                    buf.removeAll(keepingCapacity: true)
                }
                continue
            }
            if overflow {
                drop("too_large")
                overflow = false
            } else if !buf.isEmpty {
                do {
                    frames.append(try FrameCodec.decodeBody(buf))
                } catch let e as FrameError {
                    drop(e.kind)
                } catch {
                    drop("other")
                }
                buf.removeAll(keepingCapacity: true)
            }
        }
        return frames
    }

    private func drop(_ kind: String) {
        dropped[kind, default: 0] += 1
    }
}
