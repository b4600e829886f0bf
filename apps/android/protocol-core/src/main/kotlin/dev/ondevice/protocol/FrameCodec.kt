package dev.ondevice.protocol

import java.util.zip.CRC32

/** Frame = COBS(header + payload + CRC-32 LE) + 0x00. CRC-32 is IEEE 802.3, the same as zlib's. */
object FrameCodec {
    fun crc32(data: ByteArray, off: Int = 0, len: Int = data.size - off): Long {
        val c = CRC32()
        c.update(data, off, len)
        return c.value
    }

    /** Header + payload + CRC, before COBS. */
    fun body(frame: Frame): ByteArray {
        val n = frame.payload.size
        require(n <= Proto.MAX_PAYLOAD) { "payload of $n bytes exceeds ${Proto.MAX_PAYLOAD}" }
        val out = ByteArray(Proto.HEADER_SIZE + n + Proto.CRC_SIZE)
        out[0] = frame.version.toByte()
        out[1] = frame.type.toByte()
        out[2] = frame.flags.toByte()
        out[3] = frame.seq.toByte()
        out[4] = (frame.seq ushr 8).toByte()
        out[5] = n.toByte()
        out[6] = (n ushr 8).toByte()
        System.arraycopy(frame.payload, 0, out, Proto.HEADER_SIZE, n)
        val crc = crc32(out, 0, Proto.HEADER_SIZE + n)
        for (k in 0 until 4) out[Proto.HEADER_SIZE + n + k] = (crc ushr (8 * k)).toByte()
        return out
    }

    /** The exact wire bytes, delimiter included. */
    fun encode(frame: Frame): ByteArray {
        val enc = Cobs.encode(body(frame))
        return enc.copyOf(enc.size + 1)
    }

    /** Decode one COBS block (delimiter stripped). */
    fun decodeBody(enc: ByteArray): Frame {
        val body = Cobs.decode(enc) ?: throw FrameException("cobs", "malformed COBS block")
        if (body.size < Proto.HEADER_SIZE + Proto.CRC_SIZE) {
            throw FrameException("short", "frame of ${body.size} bytes is shorter than header + CRC")
        }
        if (body.size > Proto.MAX_FRAME) throw FrameException("too_large", "frame of ${body.size} bytes")
        val end = body.size - Proto.CRC_SIZE
        var crc = 0L
        for (k in 0 until 4) crc = crc or ((body[end + k].toLong() and 0xFF) shl (8 * k))
        if (crc != crc32(body, 0, end)) throw FrameException("crc", "CRC mismatch")
        val plen = u8(body, 5) or (u8(body, 6) shl 8)
        if (plen != end - Proto.HEADER_SIZE) {
            throw FrameException("length", "payload_len $plen disagrees with frame size ${body.size}")
        }
        return Frame(
            type = u8(body, 1),
            seq = u8(body, 3) or (u8(body, 4) shl 8),
            payload = body.copyOfRange(Proto.HEADER_SIZE, end),
            flags = u8(body, 2),
            version = u8(body, 0)
        )
    }

    private fun u8(b: ByteArray, i: Int): Int = b[i].toInt() and 0xFF
}

/**
 * Incremental decoder: feed any byte chunks, get whole frames back. Garbage, bad CRCs and over-long runs
 * are dropped and counted; decoding resumes after the next 0x00.
 */
class StreamDecoder(private val maxEncoded: Int = Proto.MAX_ENCODED) {
    private val buf = java.io.ByteArrayOutputStream(maxEncoded)
    private var overflow = false
    val dropped: MutableMap<String, Int> = LinkedHashMap()

    val droppedTotal: Int get() = dropped.values.sum()

    fun feed(data: ByteArray, off: Int = 0, len: Int = data.size - off): List<Frame> {
        val frames = ArrayList<Frame>()
        for (i in off until off + len) {
            val b = data[i]
            if (b.toInt() != 0) {
                if (overflow) continue
                buf.write(b.toInt())
                if (buf.size() > maxEncoded) {
                    // Skip to the next delimiter instead of growing without bound.
                    overflow = true
                    buf.reset()
                }
                continue
            }
            if (overflow) {
                drop("too_large")
                overflow = false
            } else if (buf.size() > 0) {
                try {
                    frames.add(FrameCodec.decodeBody(buf.toByteArray()))
                } catch (e: FrameException) {
                    drop(e.kind)
                }
                buf.reset()
            }
        }
        return frames
    }

    private fun drop(kind: String) {
        dropped[kind] = (dropped[kind] ?: 0) + 1
    }
}
