package dev.ondevice.app

import android.annotation.SuppressLint
import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaRecorder

/** Records exactly one second of 16 kHz mono PCM16, the clip length the frontend and model expect. */
object AudioCapture {
    const val SAMPLE_RATE = 16000
    const val SAMPLES = 16000

    /**
     * Blocks for about one second and returns [SAMPLES] int16 samples.
     * The caller must hold RECORD_AUDIO (MainActivity asks for it before calling).
     */
    @SuppressLint("MissingPermission")
    fun recordOneSecond(): ShortArray {
        val minBuf = AudioRecord.getMinBufferSize(
            SAMPLE_RATE, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT
        )
        require(minBuf > 0) { "this device cannot record 16 kHz mono PCM16 (getMinBufferSize=$minBuf)" }
        val recorder = AudioRecord(
            MediaRecorder.AudioSource.VOICE_RECOGNITION, SAMPLE_RATE,
            AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT,
            maxOf(minBuf, SAMPLES * 2)
        )
        check(recorder.state == AudioRecord.STATE_INITIALIZED) { "AudioRecord failed to initialise" }
        val pcm = ShortArray(SAMPLES)
        try {
            recorder.startRecording()
            var got = 0
            while (got < SAMPLES) {
                val n = recorder.read(pcm, got, SAMPLES - got)
                check(n >= 0) { "AudioRecord.read returned error $n" }
                got += n
            }
        } finally {
            recorder.stop()
            recorder.release()
        }
        return pcm
    }
}
