// Pure Kotlin/JVM twin of ondevice.features; CI compiles it with kotlinc 1.3 and checks it bit for bit.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // Only for the FeaturePipeline interface the agent uses in SET_MODE 1 and 2.
    implementation(project(":protocol-core"))
}
