import SwiftUI

/// The ondevice sample app: a demo screen and the profiling agent (apps/ios/README.md).
@main
struct OndeviceAgentApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
