package dev.ondevice.app

import dev.ondevice.protocol.TensorInfo
import org.json.JSONArray
import org.json.JSONObject
import java.io.File

/**
 * The `<artifact>.manifest.json` that `ondevice export` writes beside every artifact
 * (docs/CONTRACTS.md section 4). The app needs its tensor specs and labels: neither runtime's
 * Java API reports quantisation parameters for ExecuTorch inputs.
 */
class ArtifactManifest(
    val artifact: String,
    val target: String,
    val quant: String,
    val sha256: String,
    val inputs: List<TensorInfo>,
    val outputs: List<TensorInfo>,
    val labels: List<String>
) {
    companion object {
        /** Read `<model file>.manifest.json`; throws with the path when it is missing. */
        fun besides(model: File): ArtifactManifest {
            val f = File(model.path + ".manifest.json")
            require(f.isFile) { "no manifest at ${f.path}: push it with the artifact (ondevice export writes it)" }
            return parse(f.readText())
        }

        fun parse(text: String): ArtifactManifest {
            val o = JSONObject(text)
            return ArtifactManifest(
                artifact = o.getString("artifact"),
                target = o.optString("target"),
                quant = o.optString("quant"),
                sha256 = o.optString("sha256"),
                inputs = specs(o.getJSONArray("inputs")),
                outputs = specs(o.getJSONArray("outputs")),
                labels = strings(o.optJSONArray("labels"))
            )
        }

        private fun specs(a: JSONArray): List<TensorInfo> = (0 until a.length()).map { i ->
            val t = a.getJSONObject(i)
            val shape = t.getJSONArray("shape")
            TensorInfo(
                name = t.optString("name", "t$i"),
                dtype = t.getString("dtype"),
                shape = IntArray(shape.length()) { shape.getInt(it) },
                scale = if (t.isNull("scale")) 0.0 else t.optDouble("scale", 0.0),
                zeroPoint = if (t.isNull("zero_point")) 0 else t.optInt("zero_point", 0)
            )
        }

        private fun strings(a: JSONArray?): List<String> =
            if (a == null) emptyList() else (0 until a.length()).map { a.getString(it) }
    }
}
