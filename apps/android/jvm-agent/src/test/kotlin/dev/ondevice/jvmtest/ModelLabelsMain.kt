package dev.ondevice.jvmtest

import dev.ondevice.protocol.ModelLabels
import java.io.File

/** Prints the labels the app would take from a `.tflite` (one per line), or `NONE`: checked from Python. */
object ModelLabelsMain {
    @JvmStatic
    fun main(args: Array<String>) {
        val labels = ModelLabels.fromTflite(File(args[0]).readBytes())
        if (labels == null) println("NONE") else labels.forEach { println("LABEL $it") }
    }
}
