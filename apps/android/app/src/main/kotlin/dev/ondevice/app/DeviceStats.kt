package dev.ondevice.app

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Debug

/** The phone-side figures the profiler needs: process RAM and battery power. */
class DeviceStats(private val context: Context) {
    private val batteryManager = context.getSystemService(Context.BATTERY_SERVICE) as BatteryManager

    /** Proportional set size of this process in bytes (what `dumpsys meminfo` reports as TOTAL PSS). */
    fun pssBytes(): Long {
        // Debug.getMemoryInfo reads our own smaps each call; ActivityManager.getProcessMemoryInfo is rate-limited
        // since Android 10 and may return a stale sample. It takes milliseconds, so never call it while timing.
        val info = Debug.MemoryInfo()
        Debug.getMemoryInfo(info)
        return info.totalPss.toLong() * 1024L
    }

    /** Native heap in use, in bytes: where the ExecuTorch and LiteRT arenas live. */
    fun nativeHeapBytes(): Long = Debug.getNativeHeapAllocatedSize()

    /** Instantaneous battery current in microamperes (negative while discharging on most phones). */
    fun batteryCurrentMicroAmps(): Long =
        batteryManager.getLongProperty(BatteryManager.BATTERY_PROPERTY_CURRENT_NOW)

    /** Battery voltage in millivolts from the sticky ACTION_BATTERY_CHANGED broadcast. */
    fun batteryVoltageMilliVolts(): Int {
        val sticky: Intent? = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        return sticky?.getIntExtra(BatteryManager.EXTRA_VOLTAGE, -1) ?: -1
    }

    /** True while on USB/AC power: battery current then says little about the model's energy. */
    fun isCharging(): Boolean {
        val sticky: Intent? = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val plugged = sticky?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0
        return plugged != 0
    }
}
