import Darwin
import Foundation

/// Process memory as iOS accounts it: `phys_footprint` from task_vm_info, the figure Xcode's memory gauge and
/// the jetsam limit use. iOS has no public battery-current API, so energy on iPhone is modelled by the host.
enum DeviceStats {
    /// Current physical footprint of this process in bytes, or -1 if the kernel call fails.
    static func physFootprint() -> Int64 {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) { ptr in
            ptr.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        return kr == KERN_SUCCESS ? Int64(info.phys_footprint) : -1
    }

    /// Physical RAM of the phone (for HELLO; above 4 GiB the u32 field says "unknown").
    static func totalRam() -> Int64 {
        let ram = Int64(ProcessInfo.processInfo.physicalMemory)
        return ram < 0xFFFF_FFFF ? ram : 0xFFFF_FFFF
    }

    /// Hardware model identifier, e.g. "iPhone15,2".
    static func model() -> String {
        var sys = utsname()
        uname(&sys)
        return withUnsafeBytes(of: &sys.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}

/// Tracks the peak footprint between samples (sampled after load and after every RUN).
final class FootprintPeak {
    private(set) var peak: Int64 = 0

    func sample() -> Int64 {
        peak = max(peak, DeviceStats.physFootprint())
        return peak
    }

    func reset() { peak = DeviceStats.physFootprint() }
}
