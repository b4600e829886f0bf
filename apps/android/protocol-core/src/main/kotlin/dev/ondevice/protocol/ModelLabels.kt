package dev.ondevice.protocol

import java.util.zip.Inflater

/**
 * Labels from a `.tflite`'s TFLite metadata: `ondevice export` zips `labels.txt` (the output's TENSOR_AXIS_LABELS
 * file, named in the TFLITE_METADATA buffer) onto the model, as the TFLite Support Library does. Pure Kotlin, so
 * it is tested on the JVM; the app prefers these labels to the manifest's.
 */
object ModelLabels {
    const val LABELS_FILE = "labels.txt"

    /** One label per non-empty line of the model's label file, or null when the model carries none. */
    fun fromTflite(model: ByteArray, name: String = LABELS_FILE): List<String>? {
        val data = associatedFile(model, name) ?: return null
        return String(data, Charsets.UTF_8).split('\n').map { it.trimEnd('\r') }.filter { it.isNotEmpty() }
    }

    /** The bytes of an associated file in the zip archive appended to the model, or null. */
    fun associatedFile(model: ByteArray, name: String): ByteArray? {
        val eocd = findEndOfCentralDirectory(model) ?: return null
        val cdSize = u32(model, eocd + 12).toInt()
        val cdOffset = u32(model, eocd + 16).toInt()
        // the archive may start after the model: its offsets then count from the archive's own start
        val base = eocd - cdSize - cdOffset
        if (base < 0 || cdSize < 0 || cdOffset < 0) return null
        var p = base + cdOffset
        while (p + 46 <= model.size && u32(model, p) == 0x02014b50L) {
            val method = u16(model, p + 10)
            val compressed = u32(model, p + 20).toInt()
            val size = u32(model, p + 24).toInt()
            val nameLen = u16(model, p + 28)
            val extraLen = u16(model, p + 30)
            val commentLen = u16(model, p + 32)
            val local = base + u32(model, p + 42).toInt()
            val entry = String(model, p + 46, nameLen, Charsets.UTF_8)
            if (entry == name) return read(model, local, method, compressed, size)
            p += 46 + nameLen + extraLen + commentLen
        }
        return null
    }

    private fun read(model: ByteArray, local: Int, method: Int, compressed: Int, size: Int): ByteArray? {
        if (local < 0 || local + 30 > model.size || u32(model, local) != 0x04034b50L) return null
        val start = local + 30 + u16(model, local + 26) + u16(model, local + 28)
        if (start + compressed > model.size) return null
        return when (method) {
            0 -> model.copyOfRange(start, start + compressed)
            8 -> {
                val inf = Inflater(true)
                inf.setInput(model, start, compressed)
                val out = ByteArray(size)
                val n = inf.inflate(out)
                inf.end()
                if (n == size) out else null
            }
            else -> null
        }
    }

    private fun findEndOfCentralDirectory(b: ByteArray): Int? {
        var i = b.size - 22
        val stop = maxOf(0, b.size - 22 - 65535)
        while (i >= stop) {
            if (u32(b, i) == 0x06054b50L) return i
            i--
        }
        return null
    }

    private fun u16(b: ByteArray, p: Int): Int = (b[p].toInt() and 0xFF) or ((b[p + 1].toInt() and 0xFF) shl 8)
    private fun u32(b: ByteArray, p: Int): Long =
        (u16(b, p).toLong() or (u16(b, p + 2).toLong() shl 16)) and 0xFFFFFFFFL
}
