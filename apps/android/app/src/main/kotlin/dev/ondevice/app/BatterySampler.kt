package dev.ondevice.app

import dev.ondevice.protocol.RunObserver
import java.util.Locale

/**
 * Samples BatteryManager current and voltage every [periodMs] while RUN is timing, on its own thread,
 * and reports the mean as one LOG line after RUN:
 *   `battery current_ua_mean=<µA> voltage_mv_mean=<mV> power_mw_mean=<mW> samples=<n> seconds=<s> charging=<bool>`
 * Current is signed as the phone reports it (negative = discharging on most devices). The reading includes the
 * screen, radios and the rest of the phone: it is a whole-device figure, and meaningless while charging.
 */
class BatterySampler(private val stats: DeviceStats, private val periodMs: Long = 100) : RunObserver {
    @Volatile
    private var running = false
    private var thread: Thread? = null
    private var sumUa = 0.0
    private var sumMv = 0.0
    private var sumMw = 0.0
    private var n = 0
    private var t0 = 0L

    override fun runStarted() {
        sumUa = 0.0; sumMv = 0.0; sumMw = 0.0; n = 0
        t0 = System.nanoTime()
        running = true
        thread = Thread({
            while (running) {
                val ua = stats.batteryCurrentMicroAmps()
                val mv = stats.batteryVoltageMilliVolts()
                if (ua != Long.MIN_VALUE && mv > 0) {
                    synchronized(this) {
                        sumUa += ua; sumMv += mv; sumMw += Math.abs(ua.toDouble()) * mv / 1e6; n++
                    }
                }
                try { Thread.sleep(periodMs) } catch (e: InterruptedException) { return@Thread }
            }
        }, "ondevice-battery").apply { isDaemon = true; start() }
    }

    override fun runFinished(runs: Int): String? {
        running = false
        thread?.interrupt()
        thread?.join(500)
        val seconds = (System.nanoTime() - t0) / 1e9
        synchronized(this) {
            if (n == 0) return "battery unavailable: BatteryManager reported no current on this device"
            return String.format(
                Locale.US, "battery current_ua_mean=%.0f voltage_mv_mean=%.0f power_mw_mean=%.1f samples=%d seconds=%.2f charging=%s",
                sumUa / n, sumMv / n, sumMw / n, n, seconds, stats.isCharging()
            )
        }
    }
}
