package dev.ondevice.jvmagent

import dev.ondevice.protocol.RunObserver

/**
 * The JVM agent's RunObserver: samples the heap every [periodMs] on its own thread while RUN times, and reports
 * one LOG line after it. It exercises the same observer path as the Android app's BatterySampler.
 */
class HeapSampler(private val periodMs: Long = 20) : RunObserver {
    @Volatile
    private var running = false
    private var thread: Thread? = null
    @Volatile
    private var maxUsed = 0L
    private var samples = 0

    override fun runStarted() {
        maxUsed = 0
        samples = 0
        running = true
        thread = Thread({
            val rt = Runtime.getRuntime()
            while (running) {
                maxUsed = maxOf(maxUsed, rt.totalMemory() - rt.freeMemory())
                samples++
                try { Thread.sleep(periodMs) } catch (e: InterruptedException) { return@Thread }
            }
        }, "ondevice-heap").apply { isDaemon = true; start() }
    }

    override fun runFinished(runs: Int): String? {
        running = false
        thread?.interrupt()
        thread?.join(500)
        return "jvm heap_used_bytes_max=$maxUsed samples=$samples runs=$runs"
    }
}
