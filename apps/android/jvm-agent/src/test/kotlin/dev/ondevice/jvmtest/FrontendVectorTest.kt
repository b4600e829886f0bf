package dev.ondevice.jvmtest

import dev.ondevice.frontend.Frontend
import dev.ondevice.frontend.FrontendTables
import java.io.File
import java.util.Base64

/**
 * Checks the Kotlin frontend against vectors written by the Python one (args = folders or files):
 * clip vectors (`"format": "ondevice-frontend-vector"`: features and a per-step trace of one frame) and
 * quantisation cases (`"format": "ondevice-quant-cases"`). Exits 1 on any difference.
 */
object FrontendVectorTest {
    private var passed = 0
    private val failures = ArrayList<String>()

    private fun check(name: String, ok: Boolean, detail: () -> String) {
        if (ok) passed++ else failures.add("FAIL $name: ${detail()}")
    }

    @JvmStatic
    fun main(args: Array<String>) {
        val files = args.flatMap { a ->
            val f = File(a)
            if (f.isDirectory) f.listFiles()!!.filter { it.name.endsWith(".json") }.sortedBy { it.name } else listOf(f)
        }
        var clips = 0
        for (f in files) {
            @Suppress("UNCHECKED_CAST")
            val v = MiniJson.parse(f.readText()) as Map<String, Any?>
            when (v["format"]) {
                "ondevice-frontend-vector" -> { clip(f.name, v); clips++ }
                "ondevice-quant-cases" -> quant(f.name, v)
            }
        }
        check("clips-seen", clips > 0) { "no clip vectors in ${args.toList()}" }
        failures.take(20).forEach { println(it) }
        println("frontend vectors: $passed passed, ${failures.size} failed ($clips clips)")
        if (failures.isNotEmpty()) System.exit(1)
    }

    private fun ints(v: Any?): List<Long> = (v as List<*>).map { (it as Number).toLong() }

    private fun clip(name: String, v: Map<String, Any?>) {
        val hash = v["config_hash"]
        check("$name/config_hash", hash == FrontendTables.CONFIG_HASH) { "vector $hash, tables ${FrontendTables.CONFIG_HASH}" }
        val raw = Base64.getDecoder().decode(v["wav_int16_le_b64"] as String)
        val pcm = ShortArray(raw.size / 2) { ((raw[2 * it].toInt() and 0xFF) or (raw[2 * it + 1].toInt() shl 8)).toShort() }
        val got = Frontend.computeFeatures(pcm)
        val want = (v["features"] as List<*>).flatMap { ints(it) }
        var firstDiff = -1
        if (got.size == want.size) for (i in got.indices) if (got[i].toLong() != want[i]) { firstDiff = i; break }
        check("$name/features", got.size == want.size && firstDiff < 0) {
            if (got.size != want.size) "size ${got.size} vs ${want.size}"
            else "first difference at frame ${firstDiff / 40} channel ${firstDiff % 40}: ${got[firstDiff]} vs ${want[firstDiff]}"
        }
        @Suppress("UNCHECKED_CAST")
        val quant = v["quant"] as Map<String, Any?>?
        if (quant != null) {
            // The int8 model input the vector's author computed for a real input scale.
            val scale = (quant["scale"] as Number).toDouble()
            val zp = (quant["zero_point"] as Number).toInt()
            val (mult, shift) = Frontend.quantMultiplier(scale)
            check("$name/quant/multiplier", mult == (quant["multiplier"] as Number).toLong() &&
                shift == (quant["shift"] as Number).toInt()) { "($mult, $shift)" }
            val q = Frontend.quantizeFeatures(got, scale, zp).map { it.toLong() }
            check("$name/quant/int8", q == (quant["int8"] as List<*>).flatMap { ints(it) }) { "int8 input differs" }
        }
        @Suppress("UNCHECKED_CAST")
        val trace = v["trace"] as Map<String, Any?>? ?: return
        val tf = (v["trace_frame"] as Number).toInt()
        val t = Frontend.traceFrame(pcm.copyOfRange(tf * FrontendTables.STEP, tf * FrontendTables.STEP + FrontendTables.WINDOW))
        // Stage by stage, in order, so a failure names the first step that differs.
        val stages = listOf(
            "windowed" to t.windowed.map { it.toLong() },
            "shift" to listOf(t.shift.toLong()),
            "fft_re" to t.fftRe.toList(),
            "fft_im" to t.fftIm.toList(),
            "power" to t.power.toList(),
            "mel_energy" to t.melEnergy.toList(),
            "features" to t.features.map { it.toLong() }
        )
        for ((stage, mine) in stages) {
            val ref = trace[stage]
            val theirs = if (ref is List<*>) ints(ref) else listOf((ref as Number).toLong())
            check("$name/trace/$stage", mine == theirs) { "first diff at ${mine.indices.firstOrNull { i -> i >= theirs.size || mine[i] != theirs[i] }}" }
        }
    }

    private fun quant(name: String, v: Map<String, Any?>) {
        for ((k, c) in (v["cases"] as List<*>).withIndex()) {
            @Suppress("UNCHECKED_CAST")
            val m = c as Map<String, Any?>
            val scale = (m["scale"] as Number).toDouble()
            val zp = (m["zero_point"] as Number).toInt()
            val (mult, shift) = Frontend.quantMultiplier(scale)
            check("$name/$k/multiplier", mult == (m["mult"] as Number).toLong() && shift == (m["shift"] as Number).toInt()) {
                "scale $scale: ($mult, $shift) vs (${m["mult"]}, ${m["shift"]})"
            }
            val feats = ints(m["features"]).map { it.toInt() }.toIntArray()
            val q = Frontend.quantizeFeatures(feats, scale, zp).map { it.toLong() }
            check("$name/$k/quantize", q == ints(m["q"])) { "scale $scale zp $zp" }
            val f = Frontend.toModelInput(feats)
            val want = (m["float"] as List<*>).map { (it as Number).toFloat() }
            check("$name/$k/to_model_input", f.toList() == want) { "float mapping differs" }
        }
    }
}
