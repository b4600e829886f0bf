package dev.ondevice.protocol

import java.io.ByteArrayOutputStream

/** Little-endian payload builder for the field kinds of PROTOCOL.md (u8 … u64, i32, f32, sha256, str8, bytes). */
class PayloadWriter {
    private val out = ByteArrayOutputStream(64)

    fun u8(v: Int): PayloadWriter { out.write(v and 0xFF); return this }

    fun u16(v: Int): PayloadWriter = u8(v).u8(v ushr 8)

    fun u32(v: Long): PayloadWriter { for (k in 0 until 4) out.write(((v ushr (8 * k)) and 0xFF).toInt()); return this }

    fun u64(v: Long): PayloadWriter { for (k in 0 until 8) out.write(((v ushr (8 * k)) and 0xFF).toInt()); return this }

    fun i32(v: Int): PayloadWriter = u32(v.toLong())

    fun f32(v: Float): PayloadWriter = u32(java.lang.Float.floatToIntBits(v).toLong())

    fun sha256(v: ByteArray): PayloadWriter {
        require(v.size == 32) { "sha256 must be 32 bytes" }
        return bytes(v)
    }

    fun str8(s: String): PayloadWriter {
        var b = s.toByteArray(Charsets.UTF_8)
        // Names longer than a str8 are cut rather than failing a reply.
        if (b.size > 255) b = b.copyOf(255)
        u8(b.size)
        return bytes(b)
    }

    fun bytes(b: ByteArray, off: Int = 0, len: Int = b.size - off): PayloadWriter { out.write(b, off, len); return this }

    val size: Int get() = out.size()

    fun toByteArray(): ByteArray = out.toByteArray()
}

/** Reader for the same kinds; a short payload raises [AgentException] with BAD_PAYLOAD. */
class PayloadReader(private val p: ByteArray) {
    var pos = 0
        private set

    private fun need(n: Int) {
        if (pos + n > p.size) {
            throw AgentException(ErrorCode.BAD_PAYLOAD, "payload of ${p.size} bytes is too short at offset $pos")
        }
    }

    fun u8(): Int { need(1); return p[pos++].toInt() and 0xFF }

    fun u16(): Int = u8() or (u8() shl 8)

    fun u32(): Long {
        need(4)
        var v = 0L
        for (k in 0 until 4) v = v or ((p[pos + k].toLong() and 0xFF) shl (8 * k))
        pos += 4
        return v
    }

    fun u64(): Long { val lo = u32(); val hi = u32(); return lo or (hi shl 32) }

    fun i32(): Int = u32().toInt()

    fun f32(): Float = java.lang.Float.intBitsToFloat(i32())

    fun sha256(): ByteArray { need(32); val v = p.copyOfRange(pos, pos + 32); pos += 32; return v }

    fun str8(): String {
        val n = u8()
        need(n)
        val s = String(p, pos, n, Charsets.UTF_8)
        pos += n
        return s
    }

    fun rest(): ByteArray { val v = p.copyOfRange(pos, p.size); pos = p.size; return v }
}
