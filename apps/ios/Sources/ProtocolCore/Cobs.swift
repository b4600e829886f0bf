import Foundation

/// Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999). Mirrors Cobs.kt.
///
/// Removes every 0x00 from a payload so 0x00 can delimit frames; a receiver that sees garbage
/// resynchronises at the next 0x00. Overhead is at most one byte per 254, plus one.
public enum Cobs {
    /// Encode `data`; the trailing 0x00 delimiter is not added. Canonical form (PROTOCOL.md): data that ends
    /// exactly on a full 254-byte block gets no extra 0x01 code byte.
    public static func encode(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: data.count + data.count / 254 + 2)
        var codeAt = 0
        var code = 1
        var o = 1
        var endedOnFullBlock = false
        for b in data {
            endedOnFullBlock = false
            if b == 0 {
                out[codeAt] = UInt8(code)
                codeAt = o; o += 1
                code = 1
            } else {
                out[o] = b; o += 1
                code += 1
                if code == 0xFF {
                    // A full 254-byte block has no implied zero after it.
                    out[codeAt] = UInt8(code)
                    codeAt = o; o += 1
                    code = 1
                    endedOnFullBlock = true
                }
            }
        }
        if endedOnFullBlock { return Array(out[0..<codeAt]) }
        out[codeAt] = UInt8(code)
        return Array(out[0..<o])
    }

    /// Decode one COBS block (without its 0x00 delimiter); nil if it is malformed.
    public static func decode(_ enc: [UInt8]) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(enc.count)
        var i = 0
        while i < enc.count {
            let code = Int(enc[i])
            if code == 0 { return nil }
            let end = i + code
            if end > enc.count { return nil }
            i += 1
            while i < end {
                if enc[i] == 0 { return nil }
                out.append(enc[i])
                i += 1
            }
            if code != 0xFF && i < enc.count { out.append(0) }
        }
        return out
    }
}
