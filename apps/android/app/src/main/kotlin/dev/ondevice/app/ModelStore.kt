package dev.ondevice.app

import android.content.Context
import java.io.File

/**
 * Where the demo finds artifacts: the app's external files folder, which `adb push` can write without root
 * (`/sdcard/Android/data/dev.ondevice.app/files/`), then the APK's assets as a fallback.
 */
class ModelStore(private val context: Context) {
    val dir: File = context.getExternalFilesDir(null) ?: context.filesDir

    /** The newest `*_executorch_*.pte` or `*_tflite_*.tflite` (per the `<model>_<target>_<quant>` contract). */
    fun find(target: String): File? {
        val ext = if (target == "executorch") ".pte" else ".tflite"
        copyAssets(ext)
        return dir.listFiles { f -> f.isFile && f.name.contains("_${target}_") && f.name.endsWith(ext) }
            ?.maxByOrNull { it.lastModified() }
    }

    /** The manifest in [dir] whose `sha256` is [sha256Hex], if one was pushed or bundled. */
    fun manifestFor(sha256Hex: String): ArtifactManifest? {
        copyAssets(".manifest.json")
        val files = dir.listFiles { f -> f.isFile && f.name.endsWith(".manifest.json") } ?: return null
        for (f in files) {
            val m = try { ArtifactManifest.parse(f.readText()) } catch (e: org.json.JSONException) { continue }
            if (m.sha256.equals(sha256Hex, ignoreCase = true)) return m
        }
        return null
    }

    // Assets are copied once so both runtimes can open a plain file path.
    private fun copyAssets(ext: String) {
        val names = context.assets.list("") ?: return
        for (name in names) {
            if (!name.endsWith(ext) && !name.endsWith(".manifest.json")) continue
            val dest = File(dir, name)
            if (dest.exists()) continue
            context.assets.open(name).use { input -> dest.outputStream().use { input.copyTo(it) } }
        }
    }
}
