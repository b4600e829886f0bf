package dev.ondevice.jvmagent

import dev.ondevice.frontend.FrontendPipeline
import dev.ondevice.protocol.Agent
import dev.ondevice.protocol.AgentServer
import dev.ondevice.protocol.DeviceDescription
import dev.ondevice.protocol.FormatDispatchBackend
import java.io.File
import kotlin.system.exitProcess

/**
 * The JVM agent: protocol-core + the Kotlin frontend + [DenseInt8Backend], on a loopback TCP port.
 *
 * `java -cp jvm-agent.jar dev.ondevice.jvmagent.JvmAgentMain [--port N] [--once] [--builtin FILE.odfc]...`
 * prints `PORT <n>` once it
 * listens, then serves `ondevice profile --device socket://127.0.0.1:<n>` (one connection with --once).
 * `--builtin` compiles a model in, as firmware would: it is selected by the model name the host derives from the
 * artifact name (`tinyfc_jvm_int8.odfc` -> `tinyfc`). It is the CI stand-in for the phone: the Android service runs the same Agent with ExecuTorch/LiteRT backends.
 */
object JvmAgentMain {
    @JvmStatic
    fun main(args: Array<String>) {
        var port = 0
        var once = false
        val builtins = ArrayList<Pair<String, ByteArray>>()
        var i = 0
        while (i < args.size) {
            when (args[i]) {
                "--port" -> { port = args.getOrNull(i + 1)?.toIntOrNull() ?: usage(); i++ }
                "--once" -> once = true
                "--builtin" -> {
                    val f = File(args.getOrNull(i + 1) ?: usage())
                    builtins.add(Pair(f.name.substringBefore('_').substringBefore('.'), f.readBytes()))
                    i++
                }
                else -> usage()
            }
            i++
        }
        val rt = Runtime.getRuntime()
        val description = DeviceDescription(
            device = "jvm-" + (System.getProperty("os.arch") ?: "host"),
            board = "host",
            // The heap limit is this agent's RAM budget; above 4 GiB the u32 field says "unknown".
            ramBytes = if (rt.maxMemory() < 0xFFFFFFFFL) rt.maxMemory() else 0xFFFFFFFFL
        )
        val server = AgentServer(port, { send, bootId ->
            // Behind FormatDispatchBackend, as on the phone, so CI covers the dispatch the Android service uses.
            Agent(
                FormatDispatchBackend(listOf(DenseInt8Backend(builtins))), description, send, bootId,
                pipeline = FrontendPipeline(), observer = HeapSampler()
            )
        })
        println("PORT ${server.port}")
        System.out.flush()
        server.use { if (once) it.serveOne() else it.serveForever() }
    }

    private fun usage(): Nothing {
        System.err.println("usage: JvmAgentMain [--port N] [--once] [--builtin FILE.odfc]...")
        exitProcess(2)
    }
}
