package dev.ondevice.protocol

import java.io.ByteArrayOutputStream

/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).
 *
 * Removes every 0x00 from a payload so 0x00 can delimit frames; a receiver that sees garbage
 * resynchronises at the next 0x00. Overhead is at most one byte per 254, plus one.
 */
object Cobs {
    /**
     * Encode [data]; the trailing 0x00 delimiter is not added. Canonical form (PROTOCOL.md): data that ends
     * exactly on a full 254-byte block gets no extra 0x01 code byte.
     */
    fun encode(data: ByteArray): ByteArray {
        val out = ByteArray(data.size + data.size / 254 + 2)
        var codeAt = 0
        var code = 1
        var o = 1
        var endedOnFullBlock = false
        for (b in data) {
            endedOnFullBlock = false
            if (b.toInt() == 0) {
                out[codeAt] = code.toByte()
                codeAt = o++
                code = 1
            } else {
                out[o++] = b
                code++
                if (code == 0xFF) {
                    // A full 254-byte block has no implied zero after it.
                    out[codeAt] = code.toByte()
                    codeAt = o++
                    code = 1
                    endedOnFullBlock = true
                }
            }
        }
        if (endedOnFullBlock) return out.copyOf(codeAt)
        out[codeAt] = code.toByte()
        return out.copyOf(o)
    }

    /** Decode one COBS block (without its 0x00 delimiter); null if it is malformed. */
    fun decode(enc: ByteArray): ByteArray? {
        val out = ByteArrayOutputStream(enc.size)
        var i = 0
        while (i < enc.size) {
            val code = enc[i].toInt() and 0xFF
            if (code == 0) return null
            val end = i + code
            if (end > enc.size) return null
            i++
            while (i < end) {
                if (enc[i].toInt() == 0) return null
                out.write(enc[i].toInt())
                i++
            }
            if (code != 0xFF && i < enc.size) out.write(0)
        }
        return out.toByteArray()
    }
}
