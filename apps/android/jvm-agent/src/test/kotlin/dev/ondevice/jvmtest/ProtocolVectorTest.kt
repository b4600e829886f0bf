package dev.ondevice.jvmtest

import dev.ondevice.protocol.*
import java.io.File

/**
 * Checks protocol-core against the shared vectors in profiling/protocol_vectors/ (args[0] = that folder).
 * Prints one line per failure and a summary; exits 1 on any failure. Driven by tests/test_apps_kotlin.py.
 */
object ProtocolVectorTest {
    private var passed = 0
    private val failures = ArrayList<String>()

    private fun check(name: String, ok: Boolean, detail: () -> String) {
        if (ok) passed++ else failures.add("FAIL $name: ${detail()}")
    }

    @Suppress("UNCHECKED_CAST")
    private fun load(dir: File, name: String): List<Map<String, Any?>> =
        (MiniJson.parse(File(dir, name).readText()) as Map<String, Any?>)["vectors"] as List<Map<String, Any?>>

    @JvmStatic
    fun main(args: Array<String>) {
        val dir = File(args[0])
        crc(load(dir, "crc.json"))
        cobs(load(dir, "cobs.json"))
        frames(load(dir, "frames.json"))
        stream(load(dir, "stream.json"))
        failures.forEach { println(it) }
        println("protocol vectors: $passed passed, ${failures.size} failed")
        if (failures.isNotEmpty()) System.exit(1)
    }

    private fun crc(vs: List<Map<String, Any?>>) {
        for (v in vs) {
            val got = FrameCodec.crc32(unhex(v["data_hex"] as String))
            check("crc/${v["name"]}", got == v["crc32"] as Long) { "got $got" }
        }
    }

    private fun cobs(vs: List<Map<String, Any?>>) {
        for (v in vs) {
            val dec = unhex(v["decoded_hex"] as String)
            val enc = unhex(v["encoded_hex"] as String)
            val e = Cobs.encode(dec)
            check("cobs/${v["name"]}/encode", e.contentEquals(enc)) { hex(e) }
            val d = Cobs.decode(enc)
            check("cobs/${v["name"]}/decode", d != null && d.contentEquals(dec)) { d?.let { hex(it) } ?: "null" }
        }
    }

    private fun frames(vs: List<Map<String, Any?>>) {
        for (v in vs) {
            val name = "frames/${v["name"]}"
            val type = (v["type"] as Long).toInt()
            val seq = (v["seq"] as Long).toInt()
            val flags = (v["flags"] as Long).toInt()
            val version = (v["version"] as Long? ?: 1L).toInt()
            val payload = unhex(v["payload_hex"] as String)
            val wire = unhex(v["frame_hex"] as String)
            @Suppress("UNCHECKED_CAST")
            val fields = fieldsFromJson(type, v["fields"] as Map<String, Any?>)

            val packed = Messages.pack(type, fields)
            check("$name/pack", packed.contentEquals(payload)) { hex(packed) }
            val enc = FrameCodec.encode(Frame(type, seq, payload, flags, version))
            check("$name/encode", enc.contentEquals(wire)) { hex(enc) }

            val frames = StreamDecoder().feed(wire)
            val fr = frames.singleOrNull()
            check("$name/decode", fr != null && fr.type == type && fr.seq == seq && fr.flags == flags &&
                fr.version == version && fr.payload.contentEquals(payload)) { "decoded ${frames.size} frames" }
            val back = Messages.pack(type, Messages.unpack(type, payload))
            check("$name/unpack", back.contentEquals(payload)) { hex(back) }
        }
    }

    private fun stream(vs: List<Map<String, Any?>>) {
        for (v in vs) {
            val data = unhex(v["stream_hex"] as String)
            @Suppress("UNCHECKED_CAST")
            val want = v["frames"] as List<Map<String, Any?>>
            // All at once, then one byte at a time: chunking must not change the result.
            val whole = StreamDecoder()
            val a = whole.feed(data)
            val bytewise = StreamDecoder()
            val b = ArrayList<Frame>()
            for (k in data.indices) b.addAll(bytewise.feed(data, k, 1))
            for ((label, got, dec) in listOf(Triple("whole", a, whole), Triple("bytewise", b, bytewise))) {
                val n = "stream/${v["name"]}/$label"
                val same = got.size == want.size && got.indices.all { i ->
                    val w = want[i]
                    got[i].type.toLong() == w["type"] && got[i].seq.toLong() == w["seq"] &&
                        got[i].flags.toLong() == w["flags"] && hex(got[i].payload) == w["payload_hex"]
                }
                check("$n/frames", same) { "got ${got.size} frames, want ${want.size}" }
                check("$n/dropped", dec.droppedTotal.toLong() == v["dropped"]) { "dropped ${dec.dropped}" }
            }
        }
    }

    /** JSON fields -> codec values, using the schema to know which strings are hex bytes. */
    private fun fieldsFromJson(type: Int, json: Map<String, Any?>): Map<String, Any> {
        val out = LinkedHashMap<String, Any>()
        val schema = Messages.schema(type) ?: return out
        for (fd in schema) {
            val v = json[fd.name] ?: continue
            out[fd.name] = when (fd.kind) {
                "sha256", "bytes" -> unhex(v as String)
                "u64[]" -> (v as List<*>).map { (it as Number).toLong() }
                "tensors" -> (v as List<*>).map { t ->
                    @Suppress("UNCHECKED_CAST") val m = t as Map<String, Any?>
                    TensorInfo(
                        m["name"] as String? ?: "", m["dtype"] as String,
                        (m["shape"] as List<*>).map { (it as Number).toInt() }.toIntArray(),
                        (m["scale"] as Number?)?.toDouble() ?: 0.0, (m["zero_point"] as Number?)?.toInt() ?: 0
                    )
                }
                "ops" -> (v as List<*>).map { o ->
                    @Suppress("UNCHECKED_CAST") val m = o as Map<String, Any?>
                    OpTiming(m["name"] as String, (m["time"] as Number).toLong())
                }
                "str8" -> v as String
                else -> v as Number
            }
        }
        return out
    }
}
