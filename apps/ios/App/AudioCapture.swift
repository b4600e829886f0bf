import AVFoundation

/// Records exactly one second of 16 kHz mono int16, the clip length the frontend and model expect.
/// The microphone runs at the hardware rate (usually 48 kHz); AVAudioConverter resamples to 16 kHz.
final class AudioCapture {
    static let sampleRate = 16000.0
    static let samples = 16000

    private let engine = AVAudioEngine()

    /// Calls `done` on a background queue with 16000 samples, or an error.
    func recordOneSecond(_ done: @escaping (Result<[Int16], Error>) -> Void) {
        do {
            let session = AVAudioSession.sharedInstance()
            try session.setCategory(.record, mode: .measurement)
            try session.setActive(true)
            let input = engine.inputNode
            let hw = input.outputFormat(forBus: 0)
            guard let target = AVAudioFormat(commonFormat: .pcmFormatInt16, sampleRate: AudioCapture.sampleRate, channels: 1, interleaved: true),
                  let converter = AVAudioConverter(from: hw, to: target) else {
                throw NSError(domain: "ondevice", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot convert \(hw) to 16 kHz int16"])
            }
            var pcm = [Int16]()
            pcm.reserveCapacity(AudioCapture.samples)
            var finished = false
            input.installTap(onBus: 0, bufferSize: 4096, format: hw) { [weak self] buffer, _ in
                guard !finished else { return }
                let cap = AVAudioFrameCount(Double(buffer.frameLength) * AudioCapture.sampleRate / hw.sampleRate) + 16
                guard let out = AVAudioPCMBuffer(pcmFormat: target, frameCapacity: cap) else { return }
                var fed = false
                var error: NSError?
                converter.convert(to: out, error: &error) { _, status in
                    if fed { status.pointee = .noDataNow; return nil }
                    fed = true
                    status.pointee = .haveData
                    return buffer
                }
                if let ch = out.int16ChannelData {
                    pcm.append(contentsOf: UnsafeBufferPointer(start: ch[0], count: Int(out.frameLength)))
                }
                if pcm.count >= AudioCapture.samples {
                    finished = true
                    self?.engine.inputNode.removeTap(onBus: 0)
                    self?.engine.stop()
                    done(.success(Array(pcm.prefix(AudioCapture.samples))))
                }
            }
            try engine.start()
        } catch {
            done(.failure(error))
        }
    }
}
