package dev.ondevice.protocol

import java.io.Closeable
import java.io.IOException
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.SocketException
import java.security.SecureRandom

/**
 * Serves the protocol on a local TCP port, one host connection at a time.
 *
 * Each connection is a fresh agent session, as after a device boot: it starts with a 0x00 and a BOOT frame
 * and a new boot id (the sim:// agent behaves the same). Binds to loopback by default: on a phone the host
 * reaches it through `adb forward` or usbmux, never over the network.
 */
class AgentServer(
    port: Int,
    private val newAgent: (send: (ByteArray) -> Unit, bootId: Long) -> Agent,
    bind: InetAddress = InetAddress.getLoopbackAddress()
) : Closeable {
    private val listener = ServerSocket(port, 1, bind)
    private var bootId: Long = (SecureRandom().nextInt().toLong() and 0xFFFFFFFFL).let { if (it == 0L) 1L else it }
    @Volatile
    private var closed = false
    @Volatile
    private var current: Socket? = null

    /** The bound port (useful with port 0). */
    val port: Int get() = listener.localPort

    /** Serve connections until [close]. */
    fun serveForever() {
        while (!closed) {
            try {
                serveOne()
            } catch (e: IOException) {
                if (closed) return
            }
        }
    }

    /** Accept one connection and serve it until the host disconnects. */
    fun serveOne() {
        val sock = listener.accept()
        current = sock
        try {
            sock.tcpNoDelay = true
            val out: OutputStream = sock.getOutputStream()
            // Frames are written whole and flushed at once, so RUN progress reaches the host while it runs.
            val send: (ByteArray) -> Unit = { b -> out.write(b); out.flush() }
            bootId = (bootId + 1) and 0xFFFFFFFFL
            if (bootId == 0L) bootId = 1
            val agent = newAgent(send, bootId)
            agent.boot()
            val input = sock.getInputStream()
            val decoder = StreamDecoder()
            val buf = ByteArray(4096)
            try {
                while (true) {
                    val n = input.read(buf)
                    if (n < 0) break
                    for (frame in decoder.feed(buf, 0, n)) agent.handle(frame)
                }
            } catch (e: SocketException) {
                // The host went away mid-frame: the session simply ends.
            } finally {
                agent.close()
            }
        } finally {
            current = null
            sock.close()
        }
    }

    override fun close() {
        closed = true
        current?.close()
        listener.close()
    }
}
