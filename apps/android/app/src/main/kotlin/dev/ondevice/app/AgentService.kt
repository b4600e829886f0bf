package dev.ondevice.app

import android.app.ActivityManager
import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder
import android.util.Log
import dev.ondevice.frontend.FrontendPipeline
import dev.ondevice.protocol.Agent
import dev.ondevice.protocol.AgentServer
import dev.ondevice.protocol.DeviceDescription
import dev.ondevice.protocol.FormatDispatchBackend
import dev.ondevice.protocol.Proto
import java.io.File
import java.io.IOException

/**
 * The profiling agent: PROTOCOL.md on a loopback TCP port, reached by the host through `adb forward`.
 *
 * Start (what the host's adb:// transport runs):
 *   adb shell am start-foreground-service -n dev.ondevice.app/.AgentService \
 *       -a dev.ondevice.app.action.START_AGENT --ei port 47474
 *   adb forward tcp:<local> tcp:47474
 * Stop: the same with -a dev.ondevice.app.action.STOP_AGENT (or `am stopservice`).
 * One agent serves `.pte` (ExecuTorch) and `.tflite` (LiteRT) uploads, chosen by LOAD_MODEL_BEGIN's format.
 */
class AgentService : Service() {
    private var server: AgentServer? = null
    private var thread: Thread? = null
    private var pinned: String? = null

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        // Every start-foreground-service must reach startForeground, even a STOP, or Android kills the app.
        goForeground()
        if (intent?.action == ACTION_STOP) {
            stopForeground(STOP_FOREGROUND_REMOVE)
            stopSelf()
            return START_NOT_STICKY
        }
        val port = intent?.getIntExtra(EXTRA_PORT, DEFAULT_PORT) ?: DEFAULT_PORT
        val only = intent?.getStringExtra(EXTRA_RUNTIME)
        // A second START with the same port and runtime pin keeps the running agent (and its connection).
        if (server?.port != port || pinned != only) start(port, only)
        return START_NOT_STICKY
    }

    private fun start(port: Int, only: String?) {
        server?.close()
        thread?.join(2000)
        pinned = only
        val stats = DeviceStats(this)
        val store = ModelStore(this)
        val work = File(cacheDir, "agent").apply { mkdirs() }
        val description = DeviceDescription(
            device = Build.MODEL.take(32),
            board = BOARD,
            ramBytes = totalRam(),
            flashBytes = Proto.UNKNOWN_U32
        )
        val s = try {
            AgentServer(port, { send, bootId ->
                val backends = listOf(ExecuTorchBackend(work, stats) { store.manifestFor(it) }, LiteRtBackend(work, stats))
                    .filter { only == null || it.runtime == only }
                Agent(
                    FormatDispatchBackend(backends), description, send, bootId,
                    pipeline = FrontendPipeline(), observer = BatterySampler(stats)
                )
            })
        } catch (e: IOException) {
            Log.e(TAG, "cannot listen on port $port", e)
            stopSelf()
            return
        }
        server = s
        thread = Thread({ s.serveForever() }, "ondevice-agent").apply { start() }
        Log.i(TAG, "agent listening on 127.0.0.1:${s.port}")
    }

    override fun onDestroy() {
        server?.close()
        thread?.join(2000)
        server = null
        super.onDestroy()
    }

    private fun totalRam(): Long {
        val mi = ActivityManager.MemoryInfo()
        (getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(mi)
        // u32 on the wire: phones above 4 GiB report "unknown" and the board profile fills in.
        return if (mi.totalMem in 1 until Proto.UNKNOWN_U32) mi.totalMem else Proto.UNKNOWN_U32
    }

    private fun goForeground() {
        val nm = getSystemService(Context.NOTIFICATION_SERVICE) as NotificationManager
        nm.createNotificationChannel(NotificationChannel(CHANNEL, getString(R.string.agent_channel), NotificationManager.IMPORTANCE_LOW))
        val n = Notification.Builder(this, CHANNEL)
            .setContentTitle("ondevice profiling agent")
            .setContentText("listening for the host on a local port")
            .setSmallIcon(android.R.drawable.stat_sys_data_bluetooth)
            .setOngoing(true)
            .build()
        if (Build.VERSION.SDK_INT >= 34) {
            startForeground(NOTIFICATION_ID, n, ServiceInfo.FOREGROUND_SERVICE_TYPE_SPECIAL_USE)
        } else {
            startForeground(NOTIFICATION_ID, n)
        }
    }

    companion object {
        const val ACTION_START = "dev.ondevice.app.action.START_AGENT"
        const val ACTION_STOP = "dev.ondevice.app.action.STOP_AGENT"
        const val EXTRA_PORT = "port"
        const val EXTRA_RUNTIME = "runtime"
        const val DEFAULT_PORT = 47474
        const val BOARD = "android-generic"
        private const val CHANNEL = "ondevice-agent"
        private const val NOTIFICATION_ID = 1
        private const val TAG = "ondevice"
    }
}
