package dev.ondevice.app

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Build
import android.os.Bundle
import android.widget.Button
import android.widget.RadioGroup
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import androidx.core.app.ActivityCompat
import androidx.core.content.ContextCompat
import dev.ondevice.protocol.ModelLabels
import java.util.Locale
import java.util.concurrent.Executors

/** Demo screen: record one second, run the integer frontend and the model, show the emotion and latency. */
class MainActivity : AppCompatActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private lateinit var store: ModelStore
    private lateinit var stats: DeviceStats
    private var classifier: Classifier? = null
    private var classifierKey: String? = null
    private var agentRunning = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        store = ModelStore(this)
        stats = DeviceStats(this)
        val modelPath = findViewById<TextView>(R.id.model_path)
        modelPath.text = "models: ${store.dir.absolutePath}"

        findViewById<Button>(R.id.record).setOnClickListener { onRecord() }
        findViewById<Button>(R.id.agent).setOnClickListener { toggleAgent() }
        // Android 13+: without this the agent's foreground-service notification is hidden (the service still runs).
        if (Build.VERSION.SDK_INT >= 33 &&
            ContextCompat.checkSelfPermission(this, Manifest.permission.POST_NOTIFICATIONS) != PackageManager.PERMISSION_GRANTED
        ) {
            ActivityCompat.requestPermissions(this, arrayOf(Manifest.permission.POST_NOTIFICATIONS), REQ_NOTIFY)
        }
    }

    override fun onDestroy() {
        worker.shutdown()
        classifier?.close()
        super.onDestroy()
    }

    private fun target(): String =
        if (findViewById<RadioGroup>(R.id.backend).checkedRadioButtonId == R.id.backend_litert) "tflite" else "executorch"

    private fun onRecord() {
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.RECORD_AUDIO) != PackageManager.PERMISSION_GRANTED) {
            ActivityCompat.requestPermissions(this, arrayOf(Manifest.permission.RECORD_AUDIO), REQ_AUDIO)
            return
        }
        val target = target()
        val emotion = findViewById<TextView>(R.id.emotion)
        val details = findViewById<TextView>(R.id.details)
        emotion.text = "…"
        details.text = "recording 1 s"
        worker.execute {
            val text = try {
                val c = classifierFor(target)
                val r = c.classify(AudioCapture.recordOneSecond())
                val scores = r.scores.joinToString(" ") { String.format(Locale.US, "%.2f", it) }
                Pair(r.label, String.format(
                    Locale.US, "score %.2f\nfrontend %.2f ms\nmodel %.2f ms (%s)\nscores %s",
                    r.score, r.frontendMs, r.modelMs, target, scores
                ))
            } catch (e: Exception) {
                Pair("error", e.message ?: e.toString())
            }
            runOnUiThread {
                emotion.text = text.first
                details.text = text.second
            }
        }
    }

    // Loading a model takes longer than a run, so it is kept until the backend choice changes.
    private fun classifierFor(target: String): Classifier {
        val model = store.find(target)
            ?: throw IllegalStateException("no *_${target}_*.${if (target == "executorch") "pte" else "tflite"} in ${store.dir}")
        val key = model.absolutePath + model.lastModified()
        classifier?.let { if (key == classifierKey) return it }
        classifier?.close()
        val manifest = try { ArtifactManifest.besides(model) } catch (e: IllegalArgumentException) { null }
        val backend = if (target == "executorch") {
            ExecuTorchBackend(cacheDir, stats) { manifest ?: store.manifestFor(it) }
        } else {
            LiteRtBackend(cacheDir, stats)
        }
        // a .tflite carries its labels in its TFLite metadata; the manifest is the fallback and the .pte's source
        val embedded = if (model.name.endsWith(".tflite")) ModelLabels.fromTflite(model.readBytes()) else null
        return Classifier(model, backend, embedded ?: manifest?.labels ?: emptyList()).also {
            classifier = it
            classifierKey = key
        }
    }

    private fun toggleAgent() {
        val intent = Intent(this, AgentService::class.java)
        val status = findViewById<TextView>(R.id.agent_status)
        if (!agentRunning) {
            intent.action = AgentService.ACTION_START
            if (Build.VERSION.SDK_INT >= 26) startForegroundService(intent) else startService(intent)
            status.text = "agent on tcp:${AgentService.DEFAULT_PORT} (adb forward tcp:${AgentService.DEFAULT_PORT} tcp:${AgentService.DEFAULT_PORT})"
            findViewById<Button>(R.id.agent).setText(R.string.agent_stop)
        } else {
            intent.action = AgentService.ACTION_STOP
            startService(intent)
            status.text = ""
            findViewById<Button>(R.id.agent).setText(R.string.agent_start)
        }
        agentRunning = !agentRunning
    }

    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<out String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (requestCode == REQ_AUDIO && grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) onRecord()
    }

    companion object {
        private const val REQ_AUDIO = 1
        private const val REQ_NOTIFY = 2
    }
}
